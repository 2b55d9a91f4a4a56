"""Registry-wide checks over every law: no sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import bayes_scaling as bs
from bayes_scaling.data import centred_logs

LAWS = sorted(bs.laws())
REF = {"N": 1e9, "D": 2e10, "C": 1.2e20}
LOG_REF = {k: np.log(v) for k, v in REF.items()}


def prior_means(law: bs.ScalingLaw) -> dict[str, float]:
    """A typical parameter point: the prior median of each parameter."""
    out = {}
    for name in law.param_names:
        prior = law.default_priors[name]
        if prior.is_fixed:
            out[name] = prior.value
        elif prior.dist == "LogNormal":
            out[name] = float(np.exp(prior.params["mu"]))
        elif prior.dist == "Beta":
            out[name] = prior.params["alpha"] / (prior.params["alpha"] + prior.params["beta"])
        else:
            out[name] = prior.params["mu"]
    return out


def inputs(law: bs.ScalingLaw, n: np.ndarray, d: np.ndarray) -> dict[str, np.ndarray]:
    cols = {"N": n, "D": d, "C": 6 * n * d, "unique_tokens": d / 4, "experts": np.full(np.shape(n), 8.0)}
    return centred_logs(law.inputs, cols, REF)


def test_registry_lists_required_laws():
    required = {"chinchilla", "chinchilla_tied", "kaplan", "kaplan_e", "compute", "params", "tokens",
                "allocation", "allocation_a073", "allocation_a050", "data_constrained", "routing"}
    assert required <= set(LAWS)
    with pytest.raises(ValueError, match="unknown law 'nope'; available: chinchilla"):
        bs.get_law("nope")


@pytest.mark.parametrize("name", LAWS)
def test_priors_match_parameters(name):
    law = bs.get_law(name)
    assert set(law.default_priors) == set(law.param_names)
    assert law.formula and law.citation and law.title


@pytest.mark.parametrize("name", LAWS)
def test_numpy_and_pytensor_agree(name):
    law = bs.get_law(name)
    params = prior_means(law)
    x = inputs(law, np.geomspace(1e7, 1e11, 7), np.geomspace(1e8, 1e13, 7))
    expected = law.evaluate(params, x)
    p_sym = {k: pt.scalar(k, dtype="float64") for k in params}
    x_sym = {k: pt.vector(f"x_{k}", dtype="float64") for k in x}
    out = law.log_loss(pt, p_sym, x_sym)
    fn = pytensor.function([*p_sym.values(), *x_sym.values()], out, on_unused_input="ignore")
    got = fn(*params.values(), *x.values())
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert np.all(np.isfinite(expected))


@pytest.mark.parametrize("name", LAWS)
def test_loss_decreases_with_scale(name):
    law = bs.get_law(name)
    params = prior_means(law)
    grid = np.geomspace(1e7, 1e12, 12)
    if "N" in law.inputs or "C" in law.inputs:
        loss_n = np.exp(law.evaluate(params, inputs(law, grid, np.full(12, 1e11))))
        assert np.all(np.diff(loss_n) < 0)
    if "D" in law.inputs or "C" in law.inputs:
        loss_d = np.exp(law.evaluate(params, inputs(law, np.full(12, 1e9), grid * 10)))
        assert np.all(np.diff(loss_d) < 0)


def test_chinchilla_matches_classical_formula_through_derived_constants():
    law = bs.get_law("chinchilla")
    p = {"E": 1.8, "alpha": 0.34, "beta": 0.37, "log_n_term": -1.0, "log_d_term": -0.7}
    a = law.derived["A"](np, p, LOG_REF)
    b = law.derived["B"](np, p, LOG_REF)
    n, d = np.array([7e10]), np.array([1.4e12])
    classical = 1.8 + a / n**0.34 + b / d**0.37
    np.testing.assert_allclose(np.exp(law.evaluate(p, inputs(law, n, d))), classical, rtol=1e-12)


def test_kaplan_matches_classical_formula():
    law = bs.get_law("kaplan")
    p = {"alpha_N": 0.076, "alpha_D": 0.095, "log_nc": 11.0, "log_dc": 8.0}
    nc = law.derived["N_c"](np, p, LOG_REF)
    dc = law.derived["D_c"](np, p, LOG_REF)
    n, d = np.array([1e9, 1e10]), np.array([1e10, 1e11])
    classical = ((nc / n) ** (0.076 / 0.095) + dc / d) ** 0.095
    np.testing.assert_allclose(np.exp(law.evaluate(p, inputs(law, n, d))), classical, rtol=1e-12)


def test_compute_law_matches_classical_formula():
    law = bs.get_law("compute")
    p = {"E": 1.7, "alpha_C": 0.05, "log_c_term": 0.2}
    c0 = law.derived["C0"](np, p, LOG_REF)
    n, d = np.array([1e9]), np.array([2e10])
    classical = 1.7 + (c0 / (6 * n * d)) ** 0.05
    np.testing.assert_allclose(np.exp(law.evaluate(p, inputs(law, n, d))), classical, rtol=1e-12)


def test_data_constrained_effective_tokens():
    law = bs.get_law("data_constrained")
    p = {"E": 1.8, "alpha": 0.34, "beta": 0.37, "log_n_term": -1.0, "log_d_term": -0.7, "r_star": 15.0}
    chin = bs.get_law("chinchilla")
    n = np.array([1e9, 1e9])
    d = np.array([4e10, 4e10])
    u = np.array([4e10, 1e10])  # one epoch (no repeats), and four epochs
    x = {"N": np.log(n / REF["N"]), "D": np.log(d / REF["D"]), "U": np.log(u / REF["D"])}
    got = law.evaluate(p, x)
    r = d / u - 1
    d_eff = u + u * 15 * (1 - np.exp(-r / 15))
    want = chin.evaluate(p, {"N": x["N"], "D": np.log(d_eff / REF["D"])})
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == pytest.approx(chin.evaluate(p, {"N": x["N"][:1], "D": x["D"][:1]})[0])
    assert got[1] > got[0]  # repeated data is worth less than fresh data


def test_allocation_exponent_relation():
    law = bs.get_law("allocation_a073")
    assert law.default_priors["a"].value == 0.73
    beta = law.derived["beta"](np, {"alpha": 0.3, "a": 0.73}, REF)
    assert beta / (0.3 + beta) == pytest.approx(0.73)


def test_law_definition_checks():
    with pytest.raises(ValueError, match="no parameters"):
        bs.ScalingLaw(name="bad", title="t", formula="f", citation="c", inputs=("N",),
                      default_priors={}, log_loss=lambda xp, p, x: x["N"])
    with pytest.raises(ValueError, match="not Prior objects"):
        bs.ScalingLaw(name="bad", title="t", formula="f", citation="c", inputs=("N",),
                      default_priors={"E": 1.5}, log_loss=lambda xp, p, x: x["N"])
    with pytest.raises(ValueError, match="already registered"):
        bs.register_law(bs.get_law("chinchilla"))


def test_laws_declare_their_exponents_and_allocation():
    from bayes_scaling.laws import laws

    registry = laws()
    for name, law in registry.items():
        assert set(law.exponents) <= set(law.param_names), name
        assert law.param_names == tuple(law.default_priors), name  # parameter names come from the priors
    assert registry["chinchilla"].exponents == ("alpha", "beta")
    assert registry["kaplan"].optimal_exponents == ("alpha_N", "alpha_D")
    assert registry["compute"].optimal_exponents is None and registry["compute"].allocation is None
    assert all(registry[n].allocation is not None for n in ("chinchilla", "chinchilla_tied", "allocation"))


def test_a_new_chinchilla_like_law_keeps_exponents_and_closed_form(monkeypatch):
    """A law that declares itself gets the exponent report and the closed-form allocation without any table."""
    import dataclasses
    import importlib

    from bayes_scaling.comparison import exponent_draws
    from bayes_scaling.planning import compute_optimal

    laws_module = importlib.import_module("bayes_scaling.laws")  # the package exports a function of this name
    mine = dataclasses.replace(bs.get_law("chinchilla"), name="my_chinchilla")
    monkeypatch.setitem(laws_module._REGISTRY, "my_chinchilla", mine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bs.fit(bs.load_demo(), law="my_chinchilla", draws=200, tune=300, chains=2, seed=2,
                        extrapolation="none")
    a = exponent_draws(result)["a"]
    assert 0.4 < np.median(a) < 0.6  # the demo's a = 0.366 / (0.348 + 0.366) = 0.51
    assert compute_optimal(result, 1e23)["method"].iloc[0] == "closed form"
    with pytest.raises(ValueError, match="bad_exponent"):
        dataclasses.replace(mine, name="broken", exponents=("bad_exponent",))
