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
