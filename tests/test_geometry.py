"""Slope coordinates (bayes_scaling.geometry): the same model as the law's own parameters, sampled straighter."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.data import load_sweep
from bayes_scaling.geometry import TERMS, applies
from bayes_scaling.laws import get_law
from bayes_scaling.model import build_model, resolve_priors


def _demo_with_unique_tokens():
    demo = bs.load_demo()
    return demo.assign(unique_tokens=demo["D"] / np.where(np.arange(len(demo)) % 3 == 0, 4.0, 1.0))


@pytest.mark.parametrize("name", sorted(set(TERMS) - {"curve_level"}))  # curve_level: a curve fit's, below
def test_log_density_equals_the_original_models_point_by_point(name):
    """Jacobian determinant 1: the joint log density is the original model's at the implied parameters."""
    law = get_law(name)
    sweep = load_sweep(_demo_with_unique_tokens())
    priors = resolve_priors(law, None)
    natural = build_model(law, sweep, priors=priors)
    slopes = build_model(law, sweep, priors=priors, geometry="slopes")
    assert {v.name for v in slopes.value_vars} >= {"level", *(f"log_slope_{t[0]}" for t in TERMS[name])}
    logp_natural, logp_slopes = natural.compile_logp(), slopes.compile_logp()
    implied = slopes.compile_fn(slopes.replace_rvs_by_values([slopes[n] for n in law.param_names]),
                                inputs=slopes.value_vars, on_unused_input="ignore", point_fn=True)
    rng = np.random.default_rng(0)
    for _ in range(10):
        point = {v.name: rng.normal() for v in slopes.value_vars}
        point["level"] = np.log(3.0) + 0.3 * rng.normal()
        values = dict(zip(law.param_names, implied(point), strict=True))
        original = {}
        for var in natural.value_vars:
            base = var.name.removesuffix("_log__")
            if base in values:
                original[var.name] = np.log(values[base]) if var.name.endswith("_log__") else values[base]
            else:  # the noise, sampled the same way in both
                original[var.name] = point[var.name]
        assert logp_slopes(point) == pytest.approx(logp_natural(original), abs=1e-8)


def test_the_level_of_a_curve_fit_across_sizes_has_the_same_density_in_slope_coordinates():
    """The level law in N of ``fit_curves(sizes=...)``: its priors' joint density, point by point (Jacobian 1)."""
    import pymc as pm

    from bayes_scaling.curves import SIZE_LEVEL_PRIORS
    from bayes_scaling.geometry import slope_coordinates

    names = list(SIZE_LEVEL_PRIORS)
    with pm.Model() as natural:
        for name in names:
            SIZE_LEVEL_PRIORS[name].create(name)
    with pm.Model() as slopes:
        slope_coordinates("curve_level", names, SIZE_LEVEL_PRIORS)
    assert {v.name for v in slopes.value_vars} == {"level", "share_N", "log_slope_N"}
    logp_natural, logp_slopes = natural.compile_logp(), slopes.compile_logp()
    implied = slopes.compile_fn(slopes.replace_rvs_by_values([slopes[n] for n in names]), inputs=slopes.value_vars,
                                on_unused_input="ignore", point_fn=True)
    rng = np.random.default_rng(1)
    for _ in range(10):
        point = {v.name: rng.normal() for v in slopes.value_vars}
        values = dict(zip(names, implied(point), strict=True))
        original = {v.name: (np.log(values[v.name.removesuffix("_log__")]) if v.name.endswith("_log__")
                             else values[v.name]) for v in natural.value_vars}
        assert logp_slopes(point) == pytest.approx(logp_natural(original), abs=1e-8)


def test_same_posterior_as_the_natural_geometry_within_monte_carlo_error(demo_fit):
    assert demo_fit.info["geometry"] == "slopes"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        natural = bs.fit(bs.load_demo(), law="chinchilla", draws=500, tune=500, chains=2, seed=11,
                         geometry="natural")
    assert natural.info["geometry"] == "natural"
    a, b = demo_fit.summary(prob=0.9), natural.summary(prob=0.9)
    for name in ("E", "alpha", "beta", "sigma"):
        mcse = np.hypot(a.loc[name, "sd"] / np.sqrt(a.loc[name, "ess_bulk"]),
                        b.loc[name, "sd"] / np.sqrt(b.loc[name, "ess_bulk"]))
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < 5 * mcse, name
        assert a.loc[name, "sd"] == pytest.approx(b.loc[name, "sd"], rel=0.35), name


def test_falls_back_to_the_laws_parameters_where_it_does_not_apply():
    law = get_law("chinchilla")
    assert applies("chinchilla", resolve_priors(law, None))
    assert not applies("chinchilla", resolve_priors(law, {"E": 1.7}))  # a fixed E: not five free parameters
    assert not applies("chinchilla", resolve_priors(law, {"alpha": {"dist": "Normal", "mu": 0.3, "sigma": 0.1}}))
    assert not applies("kaplan", resolve_priors(get_law("kaplan"), None))
    demo = bs.load_demo()
    fixed = bs.fit(demo, priors={"E": 1.7}, draws=50, tune=50, chains=1, seed=0, warn=False, extrapolation="none")
    assert fixed.info["geometry"] == "natural"
    assert "level" not in fixed.idata["posterior"]
    quick = bs.fit(demo, method="laplace", draws=50, seed=0, warn=False, extrapolation="none")
    assert quick.info["geometry"] == "natural"  # a Gaussian in other coordinates would be another approximation
    with pytest.raises(ValueError, match="geometry"):
        bs.fit(demo, geometry="curved")


def test_pooled_slopes_are_the_centred_model_point_by_point():
    """Each group in slope coordinates with the population density on its implied values: the centred model."""
    law = get_law("chinchilla")
    demo = bs.load_demo()
    sweep = load_sweep(demo.assign(setup=np.where(np.arange(len(demo)) % 2 == 0, "a", "b")))
    priors = resolve_priors(law, None)
    kwargs = {"priors": priors, "group": "setup", "shared": (), "parameterization": "centred"}
    natural, slopes = build_model(law, sweep, **kwargs), build_model(law, sweep, geometry="slopes", **kwargs)
    assert "level" in {v.name for v in slopes.value_vars}
    implied = slopes.compile_fn(slopes.replace_rvs_by_values([slopes[f"{n}_raw"] for n in law.param_names]),
                                inputs=slopes.value_vars, on_unused_input="ignore", point_fn=True)
    logp_natural, logp_slopes = natural.compile_logp(), slopes.compile_logp()
    rng = np.random.default_rng(1)
    for _ in range(5):
        point = {v.name: rng.normal(0, 0.3, size=slopes.initial_point()[v.name].shape) for v in slopes.value_vars}
        point["level"] = point["level"] + 1.0
        raw = dict(zip(law.param_names, implied(point), strict=True))
        original = {v.name: raw[v.name.removesuffix("_raw")] if v.name.endswith("_raw") else point[v.name]
                    for v in natural.value_vars}
        assert logp_slopes(point) == pytest.approx(logp_natural(original), abs=1e-8)
    # shared exponents: a group's slope would fix its exponent, so the law's parameters are sampled
    mixed = build_model(law, sweep, priors=priors, group="setup", shared=("alpha", "beta"),
                        parameterization="centred", geometry="slopes")
    assert "level" not in {v.name for v in mixed.value_vars}


def test_the_saturating_laws_coordinates_are_the_whole_level_and_slopes_at_the_reference():
    """``chinchilla_saturating``: ``level`` and the log slopes are the law's own at the reference, saturation
    included; ``saturation_N`` is the log ratio of the saturation's part of the N slope to the N term's part; a
    fixed ``K`` is sampled as before (no ``saturation_N``)."""
    law = get_law("chinchilla_saturating")
    sweep = load_sweep(bs.load_demo())
    priors = resolve_priors(law, None)
    model = build_model(law, sweep, priors=priors, geometry="slopes")
    free = {v.name for v in model.value_vars}
    assert "saturation_N" in free and "log_k" not in free
    implied = model.compile_fn(model.replace_rvs_by_values([model[n] for n in law.param_names]),
                               inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    reference = sweep.reference()
    t_ref = math.log(reference["D"] / reference["N"])
    rng = np.random.default_rng(2)
    h = 1e-5
    for ratio in (-4.0, -1.0, 0.5, 2.0):
        point = {v.name: rng.normal(0, 0.3) for v in model.value_vars}
        point.update(level=1.2 + 0.2 * rng.normal(), log_slope_D=-2.5 + 0.3 * rng.normal(),
                     log_slope_N=-2.7 + 0.3 * rng.normal(), saturation_N=ratio)
        params = dict(zip(law.param_names, implied(point), strict=True))

        def log_loss(dn: float, dd: float, p: dict = params) -> float:
            return float(law.evaluate(p, {"N": dn, "D": dd, "T": t_ref + dd - dn}))

        slope_d = -(log_loss(0, h) - log_loss(0, -h)) / (2 * h)
        slope_n = -(log_loss(h, 0) - log_loss(-h, 0)) / (2 * h)
        assert log_loss(0, 0) == pytest.approx(point["level"], abs=1e-9)
        assert math.log(slope_d) == pytest.approx(point["log_slope_D"], abs=1e-5)
        assert math.log(slope_n) == pytest.approx(point["log_slope_N"], abs=1e-5)
        # the N term's own part of the N slope, alpha a / L at the reference
        own = float(params["alpha"] * np.exp(params["log_n_term"] - log_loss(0, 0)))
        assert math.log((slope_n - own) / own) == pytest.approx(ratio, abs=1e-4)
    fixed = build_model(law, sweep, priors=resolve_priors(law, {"log_k": 4.0}), geometry="slopes")
    assert "saturation_N" not in {v.name for v in fixed.value_vars}
    assert "level" in {v.name for v in fixed.value_vars}
