"""nutpie's numba callbacks built without their error-message string routines give nutpie's numbers and codes."""

from __future__ import annotations

import ctypes

import numpy as np
import pymc as pm
import pytest

from bayes_scaling import nutpie_numba

nutpie = pytest.importorskip("nutpie")

DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def _model(scale: float = 1.0) -> pm.Model:
    """Shared data of every rank and an integer index, a transformed parameter and a deterministic."""
    rng = np.random.default_rng(0)
    with pm.Model(coords={"group": ["a", "b", "c"]}) as model:
        x = pm.Data("x", rng.normal(size=12))
        table = pm.Data("table", rng.normal(size=(12, 3)))
        offset = pm.Data("offset", np.asarray(0.5 * scale))
        group = pm.Data("group_index", np.arange(12) % 3)
        slope = pm.Normal("slope", 0, 1, dims="group")
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Deterministic("spread", 2 * sigma)
        mu = offset + slope[group] * x + table.sum(axis=1) * 0.1
        pm.Normal("y", mu, sigma, observed=rng.normal(size=12) * scale)
    return model


def _logp(compiled, x: np.ndarray) -> tuple[int, float, np.ndarray]:
    n = len(x)
    out, logp = np.zeros(n), np.zeros(())
    x = np.ascontiguousarray(x, float)
    code = compiled.compiled_logp_func.ctypes(n, x.ctypes.data_as(DOUBLE_P), out.ctypes.data_as(DOUBLE_P),
                                              logp.ctypes.data_as(DOUBLE_P), compiled.user_data.ctypes.data)
    return int(code), float(logp), out


def _expand(compiled, x: np.ndarray) -> tuple[int, np.ndarray]:
    out = np.zeros(compiled.n_expanded)
    x = np.ascontiguousarray(x, float)
    code = compiled.compiled_expand_func.ctypes(len(x), compiled.n_expanded, x.ctypes.data_as(DOUBLE_P),
                                                out.ctypes.data_as(DOUBLE_P), compiled.user_data.ctypes.data)
    return int(code), out


@pytest.fixture(scope="module")
def both():
    if not nutpie_numba.supported():
        pytest.skip("this nutpie builds its callbacks differently: nutpie_numba compiles with nutpie's own")
    model = _model()
    return (nutpie.compile_pymc_model(model, freeze_model=False),
            nutpie_numba.compile_model(model, freeze_model=False))


def test_the_callbacks_give_nutpies_log_density_gradient_and_draws(both):
    plain, fast = both
    assert fast.n_dim == plain.n_dim == 4
    rng = np.random.default_rng(1)
    points = [rng.normal(size=4) for _ in range(5)] + [np.array([0.0, 0.0, 0.0, 800.0]), np.full(4, np.nan)]
    for x in points:
        code, logp, grad = _logp(fast, x)
        want = _logp(plain, x)
        assert code == want[0]
        np.testing.assert_array_equal(grad, want[2])
        assert logp == want[1] or (np.isnan(logp) and np.isnan(want[1]))
        code, values = _expand(fast, x)
        want_code, want_values = _expand(plain, x)
        assert code == want_code
        np.testing.assert_array_equal(values, want_values)
    assert _logp(fast, np.full(4, np.nan))[0] == 3  # a gradient that is not finite: nutpie's code 3
    # a wrong dimension is refused, as by nutpie
    assert fast.compiled_logp_func.ctypes(3, None, None, None, fast.user_data.ctypes.data) == -1


def test_new_data_is_read_through_the_callbacks(both):
    plain, fast = both
    rng = np.random.default_rng(2)
    data = {"x": rng.normal(size=12), "table": rng.normal(size=(12, 3)), "offset": np.asarray(-1.5)}
    plain, fast = plain.with_data(**data), fast.with_data(**data)
    x = rng.normal(size=4)
    assert _logp(fast, x)[1] == _logp(plain, x)[1]
    np.testing.assert_array_equal(_logp(fast, x)[2], _logp(plain, x)[2])
    assert _logp(fast, x)[1] != _logp(both[1], x)[1]  # the new data changed the density
    a = nutpie.sample(fast, draws=50, tune=50, chains=1, seed=3, progress_bar=False)
    b = nutpie.sample(plain, draws=50, tune=50, chains=1, seed=3, progress_bar=False)
    np.testing.assert_array_equal(a["posterior"]["slope"].values, b["posterior"]["slope"].values)


def test_a_model_without_shared_data_and_nutpie_left_as_it_was():
    module = nutpie_numba._module()
    before = module._make_c_logp_func, module._make_c_expand_func
    with pm.Model() as model:
        pm.Normal("z", 0, 1, shape=2)
    compiled = nutpie_numba.compile_model(model)
    code, logp, grad = _logp(compiled, np.array([1.0, -2.0]))
    assert code == 0
    assert logp == pytest.approx(-2.5 - np.log(2 * np.pi))
    np.testing.assert_allclose(grad, [-1.0, 2.0])
    assert (module._make_c_logp_func, module._make_c_expand_func) == before
