"""The unified routing law for mixture-of-experts models: data column, fit, forecasts by expert count."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import shared_csv

import bayes_scaling as bs
from bayes_scaling.data import DataError
from bayes_scaling.fitting import fit

TRUTH = {"log_loss_ref": np.log(2.6), "a": -0.08, "b": -0.03, "c": 0.004}


def _runs(rng: np.random.Generator) -> pd.DataFrame:
    n, e = np.meshgrid(np.geomspace(1.5e7, 1.3e9, 6), [1, 4, 16, 64, 256])
    N, E = n.ravel(), e.ravel()
    x_n = np.log(N) - np.mean(np.log(N))
    log_loss = TRUTH["log_loss_ref"] + TRUTH["a"] * x_n + TRUTH["b"] * np.log(E) + TRUTH["c"] * x_n * np.log(E)
    return pd.DataFrame({"N": N, "D": 1.3e11, "num_experts": E,
                         "loss": np.exp(log_loss + 0.005 * rng.standard_normal(N.size))})


def test_routing_law_recovers_its_parameters_and_forecasts_by_experts():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(_runs(np.random.default_rng(0)), law="routing", draws=400, tune=400, chains=2, seed=1)
    assert result.sweep.renamed == {"num_experts": "experts"}  # the column alias
    assert result.diagnostics().max_r_hat < 1.02
    table = result.summary(prob=0.99)
    for name in ("a", "b", "c"):
        assert table.loc[name, "lower"] <= TRUTH[name] <= table.loc[name, "upper"], name
    more = result.forecast(N=1.3e9, experts=[1, 64])
    assert more["median"].iloc[1] < more["median"].iloc[0]  # 64 experts beat the dense model
    with pytest.raises(ValueError, match="experts must be >= 1"):
        result.forecast(N=1e9, experts=0.5)
    with pytest.raises(ValueError, match="needs experts"):
        result.forecast(N=1e9)
    with pytest.raises(ValueError, match="law 'routing' uses N, experts; D is not among its inputs"):
        result.forecast(N=1e9, D=1.3e11, experts=8)  # the law holds D fixed: a D would be echoed and ignored


def test_cli_forecast_with_experts(tmp_path, capsys):
    import json

    from bayes_scaling.cli import main

    data = tmp_path / "moe.csv"
    _runs(np.random.default_rng(2)).to_csv(data, index=False)
    out = tmp_path / "moe.nc"
    assert main(["fit", str(data), "--law", "routing", "--draws", "200", "--tune", "300", "--chains", "2",
                 "--seed", "1", "--out", str(out), "--quiet"]) in (0, 1)
    capsys.readouterr()
    assert main(["forecast", str(out), "--N", "1.3e9", "--N", "1.3e9", "--experts", "1", "--experts", "64",
                 "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["experts"] for p in points] == [1, 64] and points[1]["median"] < points[0]["median"]


def test_experts_column_is_checked():
    frame = _runs(np.random.default_rng(1))
    frame["num_experts"] = frame["num_experts"].astype(float)
    frame.loc[3, "num_experts"] = 0.5
    with pytest.raises(DataError, match=r"column 'experts' must be >= 1 .*row 4 "):  # rows counted from 1
        bs.load_sweep(frame)
    frame.loc[3, "num_experts"] = 0
    with pytest.raises(DataError, match=r"column 'experts' .* must be > 0; row 4"):
        bs.load_sweep(frame)


def test_routing_law_on_clark2022():
    """Clark et al.'s S-Base routers with their dense baselines: converges, and experts help less at larger N."""
    runs = pd.read_csv(shared_csv("clark2022_routing"))
    runs = runs.query("router_type in ['Dense', 'S-Base'] and k == 1 and flop_increase == 1 "
                      "and routing_frequency == 0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(runs, law="routing", draws=500, tune=500, chains=2, seed=1)
    assert result.diagnostics().max_r_hat <= 1.01
    table = result.summary(prob=0.9)
    assert table.loc["b", "upper"] < 0 < table.loc["c", "lower"]  # Clark et al.: b < 0, c > 0
