"""nutpie's numba callbacks built without their error-message string routines give nutpie's numbers and codes."""

from __future__ import annotations

import ctypes

import numpy as np
import pymc as pm
import pytest

from bayes_scaling import nutpie_numba

nutpie = pytest.importorskip("nutpie")

DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def _model(scale: float = 1.0, shift: float = 0.0) -> pm.Model:
    """Shared data of every rank and an integer index, a transformed parameter and a deterministic.

    ``scale`` changes the observed values (constants of the graph), ``shift`` only a data container's value.
    """
    rng = np.random.default_rng(0)
    with pm.Model(coords={"group": ["a", "b", "c"]}) as model:
        x = pm.Data("x", rng.normal(size=12))
        table = pm.Data("table", rng.normal(size=(12, 3)))
        offset = pm.Data("offset", np.asarray(0.5 * scale + shift))
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
    before = module._compile_pymc_model_numba
    with pm.Model() as model:
        pm.Normal("z", 0, 1, shape=2)
    compiled = nutpie_numba.compile_model(model)
    code, logp, grad = _logp(compiled, np.array([1.0, -2.0]))
    assert code == 0
    assert logp == pytest.approx(-2.5 - np.log(2 * np.pi))
    np.testing.assert_allclose(grad, [-1.0, 2.0])
    assert module._compile_pymc_model_numba is before


# A new process compiles the callbacks of _model() under a PyTensor cache folder and prints what it got, at one point
# with the model's data and with another value in a data container.
_COMPILE_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_nutpie_numba as t
from bayes_scaling import nutpie_numba
from bayes_scaling.compiled import exact_math
with exact_math():  # as every compile of the package (bayes_scaling.compiled.cached)
    compiled = nutpie_numba.compile_model(t._model(), freeze_model=False)
x = np.linspace(-0.5, 0.7, compiled.n_dim)
numbers = []
for model in (compiled, compiled.with_data(offset=np.asarray(1.5))):
    code, logp, grad = t._logp(model, x)
    numbers.append([code, logp, grad.tolist(), t._expand(model, x)[1].tolist()])
print(json.dumps({"hits": [compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits],
                  "numbers": numbers}))
"""


def _compile_elsewhere(folder) -> dict:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, str(Path(__file__).parent)],
                         env={**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={folder}"}, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_the_callbacks_from_the_disk_cache_and_gets_the_same_numbers(tmp_path, both):
    first = _compile_elsewhere(tmp_path)
    assert first["hits"] == [0, 0]  # compiled, then saved
    saved = sorted(p.name for p in (tmp_path / "numba").glob("bayes_scaling.*_numba-*"))
    assert len(saved) == 4  # an index and a data file per callback
    second = _compile_elsewhere(tmp_path)
    assert second["hits"] == [1, 1]  # both callbacks loaded, none compiled
    assert second["numbers"] == first["numbers"]  # the same density, gradient and values, to the bit
    assert second["numbers"][1][1] != second["numbers"][0][1]  # new data is read by the loaded callbacks
    assert sorted(p.name for p in (tmp_path / "numba").glob("bayes_scaling.*_numba-*")) == saved
    # ... and they are this process's numbers (compiled here with fastmath: equal to rounding)
    code, logp, grad = _logp(both[1], np.linspace(-0.5, 0.7, 4))
    assert code == second["numbers"][0][0] and logp == pytest.approx(second["numbers"][0][1], rel=1e-12)
    np.testing.assert_allclose(grad, second["numbers"][0][2], rtol=1e-12)


def test_the_cache_key_holds_what_the_machine_code_depends_on(both):
    import pytensor
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    compiled = both[1]
    inner = compiled.logp_func.vm.jit_fn
    assert isinstance(CACHED_SRC_FUNCTIONS.get(inner.py_func), str)  # PyTensor keyed the model's function
    keys = list(compiled.shared_data)
    args = (inner, "logp_numba", compiled.n_dim, 0, compiled.shared_data, keys, compiled.user_data.dtype, "src")
    key = nutpie_numba._cache_key(*args)
    assert key is not None and key == nutpie_numba._cache_key(*args)
    assert nutpie_numba._cache_key(inner, "logp_numba", compiled.n_dim + 1, *args[3:]) != key  # dimension
    assert nutpie_numba._cache_key(*args[:7], "other source") != key  # generated code
    as_float32 = {**compiled.shared_data, keys[0]: compiled.shared_data[keys[0]].astype(np.float32)}
    assert nutpie_numba._cache_key(*args[:4], as_float32, *args[5:]) != key  # an argument's dtype
    assert nutpie_numba._cache_key(compiled.expand_func.vm.jit_fn, *args[1:]) != key  # another graph
    assert nutpie_numba._cache_key(lambda x: x, *args[1:]) is None  # no PyTensor key: nothing cached
    with pytensor.config.change_flags(numba__cache=False):
        assert nutpie_numba._cache_key(*args) is None
