"""Bayesian curve fits (experimental): input checks, and recovery on simulated curves (slow)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.curve_laws import curve_inputs, get_curve_law
from bayes_scaling.curves import fit_curves
from bayes_scaling.schedules import Schedule

TRUE = {"L0": 3.0, "A": 0.8, "alpha": 0.5, "B": 0.3, "C": 5.0, "beta": 0.5, "gamma": 0.5}
SCHEDULES = {"cosine": Schedule.cosine(1e-3, 6000, final=1e-4, warmup=300),
             "wsd": Schedule.wsd(1e-3, 6000, decay_start=4500, final=1e-4, warmup=300)}


def simulated(seed: int = 0, sigma: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for name, schedule in SCHEDULES.items():
        steps = np.arange(400, 6001, 100)
        loss = get_curve_law("multipower").loss(np, TRUE, curve_inputs(schedule, steps, peak=1e-3))
        rows.append(pd.DataFrame({"run": name, "step": steps, "loss": loss * np.exp(rng.normal(0, sigma, steps.size))}))
    return pd.concat(rows, ignore_index=True)


def test_curve_data_is_checked_before_fitting():
    data = simulated()
    with pytest.raises(ValueError, match="no schedule for run\\(s\\) 'wsd'"):
        fit_curves(data, {"cosine": SCHEDULES["cosine"]})
    with pytest.raises(ValueError, match="covers steps 1-6,000; asked about step 7,000"):
        fit_curves(pd.concat([data, pd.DataFrame({"run": ["wsd"], "step": [7000], "loss": [3.0]})]), SCHEDULES)
    with pytest.raises(ValueError, match="column\\(s\\) 'loss' not in the curve data"):
        fit_curves(data.drop(columns="loss"), SCHEDULES)
    with pytest.raises(ValueError, match="loss must be a positive number"):
        fit_curves(data.assign(loss=data["loss"].where(data.index != 3, -1.0)), SCHEDULES)
    with pytest.raises(ValueError, match="unknown noise 'pink'"):
        fit_curves(data, SCHEDULES, noise="pink")


@pytest.mark.slow
def test_a_simulated_curve_pair_is_recovered_and_forecast():
    data = simulated()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_curves(data[data["step"] <= 5000], SCHEDULES, noise="white", draws=300, tune=500, chains=2,
                            seed=1)
    table = result.summary()
    assert table.loc["L0", "lower"] < TRUE["L0"] < table.loc["L0", "upper"]
    # the rest of the wsd run, through its decay: inside the predictive interval
    rest = data[(data["run"] == "wsd") & (data["step"] > 5000)]
    forecast = result.forecast("wsd", rest["step"].to_numpy(), run="wsd")
    inside = (rest["loss"].to_numpy() >= forecast["pred_lower"]) & (rest["loss"].to_numpy() <= forecast["pred_upper"])
    assert inside.mean() >= 0.8
    assert (forecast["lower"] <= forecast["median"]).all() and (forecast["median"] <= forecast["upper"]).all()


def _fixed_fit(b: np.ndarray):
    """A CurveFit whose posterior is the simulated truth, except ``B`` per draw (no sampling)."""
    import xarray as xr

    from bayes_scaling.curves import NOISE_PRIORS, CurveFit

    law = get_curve_law("multipower")
    values = {k: np.full((1, b.size), v) for k, v in TRUE.items()}
    values["B"] = b[None, :]
    values["sigma"] = np.full((1, b.size), 0.002)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({k: (("chain", "draw"), v) for k, v in values.items()})})
    return CurveFit(law=law, noise="white", data=simulated(), schedules=dict(SCHEDULES), peak=1e-3, idata=tree,
                    priors={**law.default_priors, "sigma": NOISE_PRIORS["sigma"]})


def test_draws_with_an_impossible_loss_are_left_out_with_a_warning():
    """A law barely constrained by the data (a decay never seen) can give draws below zero loss: said, not NaN."""
    b = np.full(50, TRUE["B"])
    b[:5] = 50.0  # five draws whose decay would take the loss below zero
    with pytest.warns(UserWarning, match="5 of 50 posterior draws give a non-positive loss"):
        table = _fixed_fit(b).forecast("wsd", [6000])
    assert np.isfinite(table[["median", "lower", "upper", "pred_lower", "pred_upper"]].to_numpy()).all()
    assert table["median"].iloc[0] == pytest.approx(
        get_curve_law("multipower").loss(np, TRUE, curve_inputs(SCHEDULES["wsd"], [6000], peak=1e-3))[0], rel=0.01)
    with pytest.raises(ValueError, match="every posterior draw gives a non-positive loss"):
        _fixed_fit(np.full(50, 50.0)).forecast("wsd", [6000])
