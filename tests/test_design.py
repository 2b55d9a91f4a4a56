"""Design of the next runs: preposterior suggestions within a FLOP budget."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.design import Suggestion, suggest_runs
from bayes_scaling.fitting import fit

TARGET = {"N": 7e9, "D": 1.4e11}
FAST = {"scenarios": 16, "draws": 1000, "random_designs": 5}


def _sweep(rng: np.random.Generator) -> pd.DataFrame:
    n, r = np.meshgrid(np.geomspace(2e7, 3e8, 5), (5.0, 20.0, 80.0))
    N, D = n.ravel(), n.ravel() * r.ravel()
    loss = (1.75 + 400 / N**0.34 + 410 / D**0.28) * np.exp(0.01 * rng.standard_normal(N.size))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


@pytest.fixture(scope="module")
def small_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(_sweep(np.random.default_rng(0)), draws=500, tune=500, chains=2, seed=1, warn=False)


@pytest.fixture(scope="module")
def suggestion(small_fit) -> Suggestion:
    budget = float((6 * small_fit.sweep.frame["N"] * small_fit.sweep.frame["D"]).sum())
    return suggest_runs(small_fit, budget, TARGET, seed=0, **FAST)


def test_suggestion_stays_in_budget_and_narrows_the_target(suggestion, small_fit):
    runs = suggestion.runs
    assert len(runs) >= 1 and runs["total_C"].iloc[-1] <= suggestion.budget * (1 + 1e-12)
    assert np.allclose(runs["total_C"], runs["C"].cumsum())
    assert (np.diff(runs["expected_width"]) <= 1e-12).all()  # each added run narrows the expected interval
    assert suggestion.after < suggestion.before["width"]
    assert suggestion.candidates["chosen"].sum() == len(runs)
    base = suggestion.baselines.set_index("design")
    assert list(base.index) == ["suggested", "ladder_20tpp", "random"]
    assert (base["C"] <= base.loc["suggested", "C"] * (1 + 1e-9)).all()  # same cost or less
    assert "suggested run" in suggestion.sentence()
    assert json.loads(json.dumps(suggestion.to_dict()))["after"] == pytest.approx(suggestion.after)


def test_before_is_the_fits_own_credible_interval(suggestion, small_fit):
    row = small_fit.forecast(N=TARGET["N"], D=TARGET["D"], prob=0.9).iloc[0]
    # two Monte Carlo estimates of one interval (1,000 draws, each with its own draws of the extrapolation term):
    # they agree to a few percent of its width (seeds 0-2 against forecast's: within 6%), not to 1% of the loss
    width = row["upper"] - row["lower"]
    assert suggestion.before["lower"] == pytest.approx(row["lower"], abs=0.12 * width)
    assert suggestion.before["upper"] == pytest.approx(row["upper"], abs=0.12 * width)
    assert suggestion.before["width"] == pytest.approx(width, rel=0.15)


def test_a_run_toward_the_target_beats_one_inside_the_sweep(small_fit):
    candidates = pd.DataFrame({"N": [2e7, 1.2e9], "D": [1e8, 2.4e10]})
    budget = 6 * 1.2e9 * 2.4e10
    result = suggest_runs(small_fit, budget, TARGET, candidates=candidates, k=1, seed=0, **FAST)
    assert list(result.runs["N"]) == [1.2e9]
    value = result.candidates.set_index("N")["value_per_flop"]
    assert np.isfinite(value).all()


def test_compute_optimal_target(small_fit):
    result = suggest_runs(small_fit, 1e19, {"C": 1e23}, seed=0, **FAST)
    assert result.target.kind == "n_opt" and result.target.units == "decades of N"
    assert result.before["lower"] < result.before["median"] < result.before["upper"]
    assert result.after <= result.before["width"]


def test_suggest_input_errors(small_fit):
    with pytest.raises(ValueError, match="budget must be a positive"):
        suggest_runs(small_fit, -1.0, TARGET)
    with pytest.raises(ValueError, match="target must be"):
        suggest_runs(small_fit, 1e19, {"N": 1e9})
    with pytest.raises(ValueError, match="missing D"):
        suggest_runs(small_fit, 1e19, TARGET, candidates=pd.DataFrame({"N": [1e8]}))
    with pytest.raises(ValueError, match=r"candidate rows \[1\] need finite N and D"):
        suggest_runs(small_fit, 1e19, TARGET, candidates=pd.DataFrame({"N": [1e8, -1.0], "D": [1e9, 1e9]}))
    with pytest.raises(ValueError, match="k must be at least 1"):
        suggest_runs(small_fit, 1e19, TARGET, k=0)


def test_cli_suggest_and_plot(small_fit, suggestion, tmp_path, capsys):
    import matplotlib.pyplot as plt

    from bayes_scaling import plots
    from bayes_scaling.cli import main

    path = small_fit.save(tmp_path / "fit.nc")
    candidates = tmp_path / "runs.csv"
    pd.DataFrame({"N": [5e8, 1e9], "D": [1e10, 2e10]}).to_csv(candidates, index=False)
    assert main(["suggest", str(path), "--budget", "2e20", "--N", "7e9", "--D", "1.4e11", "--candidates",
                 str(candidates), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["target"]["kind"] == "loss" and payload["before"]["width"] > 0
    assert {r["N"] for r in payload["runs"]} <= {5e8, 1e9}
    assert main(["suggest", str(path), "--budget", "2e20", "--N", "7e9", "--D", "1.4e11"]) == 0
    assert "Now the loss of a 7e+09-parameter model" in capsys.readouterr().out
    assert main(["suggest", str(path), "--budget", "2e20"]) == 2
    assert "give the target" in capsys.readouterr().err
    ax = plots.plot_design(suggestion.candidates, runs=suggestion.runs, sweep=small_fit.sweep.frame)
    assert len(ax.texts) == len(suggestion.runs) and ax.get_xscale() == "log"
    plt.close("all")


def test_downstream_metric_target(small_fit):
    from bayes_scaling.downstream import fit_downstream

    rng = np.random.default_rng(3)
    loss = rng.uniform(2.2, 4.0, 40)
    evals = pd.DataFrame({"loss": loss, "err": np.clip(0.76 - 3 * np.exp(-1.1 * loss) + 0.005
                                                       * rng.standard_normal(40), 0, 1), "random_err": 0.75})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        link = fit_downstream(evals, "err", draws=300, tune=400, chains=2, seed=1)
    result = suggest_runs(small_fit, 1e20, {**TARGET, "downstream": link}, seed=0, **FAST)
    assert result.target.kind == "metric" and result.target.units == "error (fraction)"
    assert 0 < result.before["lower"] < result.before["median"] < result.before["upper"] < 1
    assert result.after <= result.before["width"]
    assert result.to_dict()["target"]["metric"] == "err"
    with pytest.raises(ValueError, match="must be one link fit"):
        suggest_runs(small_fit, 1e20, {**TARGET, "downstream": "link.nc"})
