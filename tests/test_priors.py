from __future__ import annotations

import json

import pytest

from bayes_scaling.priors import Prior, PriorError, as_prior, load_priors, merge_priors


def test_forms_of_prior_specification():
    assert as_prior(0.73) == Prior.fixed(0.73)
    assert as_prior({"value": 0.5}).value == 0.5
    assert as_prior({"dist": "Normal", "mu": 0, "sigma": 2}) == Prior("Normal", mu=0.0, sigma=2.0)
    assert as_prior({"dist": "Normal", "mu": 0, "sigma": 2}).to_dict() == {"dist": "Normal", "mu": 0.0, "sigma": 2.0}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dist": "Banana", "mu": 0}, "unknown prior distribution 'Banana'"),
        ({"mu": 0}, "needs a 'dist' key"),
        ({"dist": "Normal", "mu": "zero"}, "mu='zero' is not a number"),
        ({"dist": "Normal", "mu": float("nan")}, "is not finite"),
        ("Normal", "cannot read"),
        (True, "is not a prior"),
    ],
)
def test_bad_priors_are_rejected(spec, message):
    with pytest.raises(PriorError, match=message):
        as_prior(spec, name="alpha")


def test_merge_over_defaults_without_touching_them():
    defaults = {"alpha": Prior("Normal", mu=0, sigma=1), "beta": Prior("Normal", mu=0, sigma=1)}
    merged = merge_priors(defaults, {"alpha": 0.3})
    assert merged["alpha"].is_fixed and merged["beta"] == defaults["beta"]
    assert not defaults["alpha"].is_fixed
    with pytest.raises(PriorError, match="has no parameter 'gamma'"):
        merge_priors(defaults, {"gamma": 1.0})


def test_invalid_distribution_arguments_fail_when_created():
    import pymc as pm

    with pm.Model(), pytest.raises(PriorError, match="prior for 'alpha': Normal"):
        Prior("Normal", mean=0, scale=1).create("alpha")


def test_load_priors_json_and_toml(tmp_path):
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"alpha": {"dist": "LogNormal", "mu": -1, "sigma": 0.5}, "a": 0.73}))
    toml = tmp_path / "p.toml"
    toml.write_text('a = 0.73\n[alpha]\ndist = "LogNormal"\nmu = -1\nsigma = 0.5\n')
    assert load_priors(js) == load_priors(toml)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PriorError, match="not valid json"):
        load_priors(bad)
    with pytest.raises(PriorError, match="cannot read priors file"):
        load_priors(tmp_path / "none.json")
