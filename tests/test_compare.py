"""Hypothesis comparison on synthetic sweeps with a known answer."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.comparison import compare, exponent_summary, region_probability
from bayes_scaling.simulate import reference_of, simulate_sweep
from bayes_scaling.workflows import compare_hypotheses, extrapolation_scores

SIZES = np.geomspace(5e7, 1e10, 9)
RATIOS = np.array([2, 5, 10, 20, 40, 80])
N_GRID, RATIO_GRID = (a.ravel() for a in np.meshgrid(SIZES, RATIOS, indexing="ij"))
D_GRID = N_GRID * RATIO_GRID
REF = reference_of(N_GRID, D_GRID)
FAST = {"draws": 400, "tune": 500, "chains": 2, "seed": 2, "warn": False}


@pytest.fixture(scope="module")
def equal_scaling():
    """A sweep from the Chinchilla law with alpha = beta = 0.35, i.e. a = 0.5."""
    truth = {"E": 1.8, "alpha": 0.35, "beta": 0.35, "log_n_term": math.log(0.35), "log_d_term": math.log(0.3)}
    return simulate_sweep("chinchilla", truth, N=N_GRID, D=D_GRID, sigma=0.01, seed=4)


def test_equal_scaling_prefers_a050_and_covers_half(equal_scaling):
    result = compare_hypotheses(
        equal_scaling, ["chinchilla", "allocation_a073", "allocation_a050"], extrapolation=False, fit_kwargs=FAST
    )
    loo = result.loo
    assert loo["weight"].sum() == pytest.approx(1.0)
    assert loo.loc["allocation_a050", "elpd"] > loo.loc["allocation_a073", "elpd"] + 10
    assert loo.loc["allocation_a050", "weight"] > loo.loc["allocation_a073", "weight"]
    assert result.exponents_law == "chinchilla"
    a = result.exponents.loc["a"]
    assert a["lower"] <= 0.5 <= a["upper"]
    assert result.exponents.loc["b", "median"] == pytest.approx(1 - a["median"])
    assert result.regions["a > 0.6"] < 0.05
    assert result.regions["|a - 0.5| < 0.05"] > 0.9
    assert "contains Chinchilla's 0.5 but excludes Kaplan's 0.73" in result.verdict


def test_kaplan_data_prefers_kaplan_in_sample_and_out_of_sample():
    truth = {"alpha_N": 0.076, "alpha_D": 0.095, "log_nc": math.log(8.8e13 / REF["N"]),
             "log_dc": math.log(5.4e13 / REF["D"])}
    data = simulate_sweep("kaplan", truth, N=N_GRID, D=D_GRID, sigma=0.005, seed=5)
    fits = {law: bs.fit(data, law=law, **FAST) for law in ("kaplan", "chinchilla")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = compare(fits)
    assert table.index[0] == "kaplan"
    assert table["weight"].sum() == pytest.approx(1.0)
    assert list(table.columns) == ["rank", "elpd", "se", "elpd_diff", "dse", "p_loo", "weight", "n_bad_k", "reliable"]
    kaplan_a = exponent_summary(fits["kaplan"]).loc["a"]
    assert kaplan_a["lower"] <= 0.095 / (0.076 + 0.095) <= kaplan_a["upper"]

    extra = extrapolation_scores(data, ["chinchilla", "kaplan"], fit_kwargs=FAST)
    assert extra.index[0] == "kaplan" and extra["elpd_diff"].iloc[0] == 0
    assert (extra["n_holdout"] == 12).all() and (extra["n_train"] == 42).all()
    assert extra.loc["kaplan", "mape"] < extra.loc["chinchilla", "mape"]


def test_compare_refuses_different_data_and_single_fit(demo_fit):
    with pytest.raises(ValueError, match="at least two"):
        compare({"a": demo_fit})
    other = bs.fit(bs.load_demo().iloc[:40], law="params", **FAST)
    with pytest.raises(ValueError, match="different data"):
        compare({"a": demo_fit, "b": other})
    with pytest.raises(ValueError, match="no compute-optimal exponents"):
        region_probability(other, "a > 0.5")


def test_regions_and_holdout(demo_fit):
    assert region_probability(demo_fit, "a > 0") == 1.0
    p_low = region_probability(demo_fit, "a < 0.5")
    assert p_low + region_probability(demo_fit, "a > 0.5") == pytest.approx(1.0)
    assert region_probability(demo_fit, "0.4 < a < 0.6") >= region_probability(demo_fit, "|a - 0.5| < 0.05")
    with pytest.raises(ValueError, match="cannot read region"):
        region_probability(demo_fit, "alpha > 3")
    train, held_out = demo_fit.sweep.split_holdout()
    assert len(held_out) == 18 and len(train) == 54  # 3 of 12 sizes, 6 runs each
    assert held_out.column("N").min() > train.column("N").max()
    with pytest.raises(ValueError, match="leaves no runs"):
        demo_fit.sweep.split_holdout(cutoff_N=1e12)


def test_cli_compare_json(equal_scaling, tmp_path, capsys):
    path = tmp_path / "sweep.csv"
    equal_scaling.to_csv(path, index=False)
    args = ["compare", str(path), "--laws", "chinchilla,allocation_a050", "--json", "--region", "a > 0.55",
            "--draws", "300", "--tune", "400", "--chains", "2", "--seed", "1"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["loo"]) == {"chinchilla", "allocation_a050"}
    assert sum(row["weight"] for row in payload["loo"].values()) == pytest.approx(1.0)
    assert set(payload["extrapolation"]) == {"chinchilla", "allocation_a050"}
    assert set(payload["regions"]) == {"a > 0.55"}
    assert payload["verdict"].startswith("In-sample PSIS-LOO ranks")
