"""Point-fit baseline, backtests (fit the smaller runs, score the larger) and coverage calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli import main
from bayes_scaling.datasets import DEMO_TRUE_PARAMS, load_demo
from bayes_scaling.pointfit import bootstrap_point_fit, huber_point_fit
from bayes_scaling.scores import calibration_summary, coverage_band
from bayes_scaling.workflows import backtest, calibration

FAST = {"draws": 300, "tune": 500, "chains": 2, "seed": 4}


def test_point_fit_reproduces_epoch_refit(chinchilla_csv):
    # Epoch AI drops the 5 highest-loss runs and gets E=1.8172, A=477.84, B=2143.86, alpha=0.34731, beta=0.36718
    df = pd.read_csv(chinchilla_csv).sort_values("loss").iloc[:240]
    point = huber_point_fit(df)
    assert point.E == pytest.approx(1.8172, abs=2e-3)
    assert point.alpha == pytest.approx(0.34731, abs=2e-3) and point.beta == pytest.approx(0.36718, abs=2e-3)
    assert point.objective == pytest.approx(1.01827e-3, rel=1e-3)


def test_point_fit_recovers_demo_truth_and_bootstraps():
    point = huber_point_fit(load_demo())
    assert point.alpha == pytest.approx(DEMO_TRUE_PARAMS["alpha"], abs=0.05)
    assert point.beta == pytest.approx(DEMO_TRUE_PARAMS["beta"], abs=0.05)
    boot = bootstrap_point_fit(load_demo(), n_boot=4, seed=1)
    assert len(boot) == 4 and boot["alpha"].std() > 0
    again = bootstrap_point_fit(load_demo(), n_boot=4, seed=1)
    pd.testing.assert_frame_equal(boot, again)


def test_backtest_on_demo_covers_held_out_runs():
    result = backtest(load_demo(), fit_kwargs=FAST)
    s = result.summary()
    assert s["n_holdout"] == 18 and s["n_train"] == 54 and s["cutoff_N"] == pytest.approx(5.96e9, rel=0.01)
    # the demo sweep is drawn from the fitted law: the 90% predictive interval covers most held-out runs
    assert s["coverage_0.9"] >= 0.75 and s["coverage_0.5"] <= s["coverage_0.9"]
    assert s["mape"] < 2.0 and s["mape_point_fit"] < 2.0
    runs = result.runs
    inner, outer = (runs[runs["prob"] == p].reset_index(drop=True) for p in (0.5, 0.9))
    assert (outer["pred_lower"] <= inner["pred_lower"]).all()
    assert outer["inside"].mean() == s["coverage_0.9"]
    with pytest.warns(DeprecationWarning, match="method"):
        assert result.summary["mape"] == s["mape"]
    assert (runs["N"] >= s["cutoff_N"]).all()


def test_backtest_cli_json(tmp_path, capsys):
    args = ["backtest", str(tmp_path / "missing.csv"), "--cutoff-N", "1e9"]
    assert main(args) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "demo.csv"
    load_demo().to_csv(path, index=False)
    assert main(["backtest", str(path), "--cutoff-N", "2e9", "--json", "--no-point-fit", "--draws", "200",
                 "--tune", "300", "--chains", "2", "--seed", "1"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["cutoff_N"] >= 2e9 and "mape_point_fit" not in payload["summary"]
    assert len(payload["runs"]) == 2 * payload["summary"]["n_holdout"]  # one row per run and probability
    assert payload["interval"]["kind"] == "equal-tailed"


def test_coverage_band():
    low, high = coverage_band(100, 0.9)
    assert 0.8 < low < 0.9 < high < 0.98
    table = pd.DataFrame({"param": ["a"] * 10, "prob": [0.5] * 10, "inside": [True] * 10})
    summary = calibration_summary(table)
    assert not summary["ok"].iloc[0]  # 10 of 10 inside a 50% interval is not calibrated


def _draw(rng, ref):
    return {"E": rng.uniform(1.6, 2.0), "alpha": rng.uniform(0.25, 0.45), "log_n_term": math.log(rng.uniform(0.2, 0.8))}


def test_calibration_smoke():
    n = np.repeat(np.geomspace(5e7, 1e10, 10), 3)
    d = n * np.tile([5, 20, 80], 10)
    table = calibration("params", _draw, N=n, D=d, n_sims=3, seed=2, fit_kwargs=FAST)
    assert set(table["param"]) == {"E", "alpha", "log_n_term", "sigma"}
    assert len(table) == 3 * 4 * 2
    assert table["inside"].dtype == bool


@pytest.mark.slow
def test_calibration_params_law_is_within_binomial_band():
    """100 simulated sweeps: coverage of every parameter inside the binomial 99% band of nominal."""
    n = np.repeat(np.geomspace(5e7, 1e10, 10), 3)
    d = n * np.tile([5, 20, 80], 10)
    table = calibration("params", _draw, N=n, D=d, n_sims=100, seed=0,
                        fit_kwargs={"draws": 500, "tune": 700, "chains": 4})
    summary = calibration_summary(table)
    assert summary["ok"].all(), summary
