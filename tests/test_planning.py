"""Planning questions on fits with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import planning
from bayes_scaling.cli import main
from bayes_scaling.datasets import DEMO_TRUE_PARAMS
from bayes_scaling.simulate import simulate_sweep

TRUE = DEMO_TRUE_PARAMS


def true_optimum(C: float) -> tuple[float, float]:
    a, b = TRUE["alpha"], TRUE["beta"]
    g = (a * TRUE["A"] / (b * TRUE["B"])) ** (1 / (a + b))
    n = g * (C / 6) ** (b / (a + b))
    return n, C / (6 * n)


def test_closed_form_matches_brute_force_grid_per_draw(demo_fit):
    C = 5.76e23
    closed = planning.compute_optimal_closed_form(demo_fit, C)
    law = planning.LawDraws(demo_fit)
    grid = np.linspace(math.log(1e9), math.log(1e13), 4001)  # step 0.0023 in log N
    loss = law.loss(grid[None, :], math.log(C / 6) - grid[None, :])
    brute = np.exp(grid[np.argmin(loss, axis=1)])
    np.testing.assert_allclose(brute, closed["N"], rtol=0.003)
    # the numerical optimiser used for laws without a closed form agrees too
    numeric = np.exp(planning._optimal_log_n(law, math.log(C / 6)))
    np.testing.assert_allclose(numeric, closed["N"], rtol=1e-6)


def test_compute_optimal_interval_covers_true_allocation(demo_fit):
    table = planning.compute_optimal(demo_fit, [1e22, 5.76e23])
    assert list(table["method"]) == ["closed form", "closed form"]
    for _, row in table.iterrows():
        n_true, d_true = true_optimum(row["C"])
        assert row["N_opt_lower"] <= n_true <= row["N_opt_upper"]
        assert row["D_opt_lower"] <= d_true <= row["D_opt_upper"]
        assert row["N_opt"] * row["D_opt"] * 6 == pytest.approx(row["C"], rel=1e-6)
        assert row["tokens_per_param_lower"] < row["tokens_per_param"] < row["tokens_per_param_upper"]
    assert table["N_opt"].iloc[1] > table["N_opt"].iloc[0]
    with pytest.raises(ValueError, match="C must be finite and > 0"):
        planning.compute_optimal(demo_fit, [-1.0])


def test_hardware_flops_arithmetic():
    assert planning.hardware_flops(1000, 30, accelerator="H100", mfu=0.4) == pytest.approx(
        1000 * 30 * 86400 * 989e12 * 0.4
    )
    assert planning.hardware_flops(8, 2, accelerator="a100", mfu=0.5) == pytest.approx(8 * 2 * 86400 * 312e12 * 0.5)
    assert planning.hardware_flops(1, 1, peak_flops=1e15, mfu=1.0) == pytest.approx(86400e15)
    with pytest.raises(ValueError, match="unknown accelerator 'TPU'"):
        planning.hardware_flops(1, 1, accelerator="TPU")
    with pytest.raises(ValueError, match="mfu must be in"):
        planning.hardware_flops(1, 1, mfu=1.5)


def test_tokens_and_model_questions_agree_with_allocation(demo_fit):
    alloc = planning.compute_optimal(demo_fit, 1e23).iloc[0]
    tokens = planning.tokens_for_model(demo_fit, alloc["N_opt"], tolerance=0.02).iloc[0]
    assert tokens["D_opt"] == pytest.approx(alloc["D_opt"], rel=0.1)
    # the N-limited loss is approached only with far more data than compute-optimal
    assert tokens["D_within_tolerance"] > tokens["D_opt"]
    assert tokens["loss_limit"] < tokens["loss_at_D_opt"]
    d = demo_fit.draws(["B", "beta"])
    closed = np.median((d["B"] / 0.02) ** (1 / d["beta"]))
    assert tokens["D_within_tolerance"] == pytest.approx(closed, rel=1e-3)

    model = planning.model_for_tokens(demo_fit, alloc["D_opt"], tolerance=0.02).iloc[0]
    assert model["N_opt"] == pytest.approx(alloc["N_opt"], rel=0.1)
    assert model["N_within_tolerance"] > model["N_opt"]


def test_gain_is_computed_draw_by_draw(demo_fit):
    table = planning.gain(demo_fit, (1e10, 2e11), (1e11, 2e12), threshold=0.0)
    row = table.iloc[0]
    assert row["p_exceeds"] == 1.0 and row["gain"] > 0
    # the paired difference is tighter than differencing the two marginal intervals
    assert row["gain_upper"] - row["gain_lower"] < (row["loss_start_upper"] - row["loss_start_lower"]) + (
        row["loss_end_upper"] - row["loss_end_lower"]
    )
    above = planning.gain(demo_fit, (1e10, 2e11), (1e11, 2e12), threshold=row["gain"]).iloc[0]["p_exceeds"]
    assert 0.3 < above < 0.7
    with pytest.raises(ValueError, match="must be a pair"):
        planning.gain(demo_fit, (1e10,), (1e11, 2e12))


def test_overtrain_reduces_to_compute_optimal_without_inference(demo_fit):
    plain = planning.overtrain(demo_fit, 2.0, 0.0).iloc[0]
    alloc = planning.compute_optimal(demo_fit, plain["train_flops"]).iloc[0]
    assert plain["N"] == pytest.approx(alloc["N_opt"], rel=0.03)
    assert alloc["loss"] == pytest.approx(2.0, abs=0.003)
    served = planning.overtrain(demo_fit, 2.0, 1e13).iloc[0]
    assert served["N"] < plain["N"] and served["tokens_per_param"] > plain["tokens_per_param"]
    assert served["p_reachable"] == 1.0
    assert served["total_flops"] == pytest.approx(served["train_flops"] + served["inference_flops"], rel=0.05)
    with pytest.raises(ValueError, match="target loss 1 nats/token is unreachable"):
        planning.overtrain(demo_fit, 1.0, 1e13)


def test_isoflop_analysis_recovers_exponent():
    rows = []
    for C in np.geomspace(1e18, 1e21, 7):
        n_opt, _ = true_optimum(C)
        n = n_opt * np.geomspace(0.1, 10, 9)
        rows.append(pd.DataFrame({"N": n, "D": C / (6 * n), "budget": C}))
    grid = pd.concat(rows, ignore_index=True)
    ref = np.exp(np.log(grid[["N", "D"]]).mean())
    truth = {"E": TRUE["E"], "alpha": TRUE["alpha"], "beta": TRUE["beta"],
             "log_n_term": math.log(TRUE["A"]) - TRUE["alpha"] * math.log(ref["N"]),
             "log_d_term": math.log(TRUE["B"]) - TRUE["beta"] * math.log(ref["D"])}
    data = simulate_sweep("chinchilla", truth, N=grid["N"], D=grid["D"], sigma=0.003, seed=3)
    data["budget"] = grid["budget"]
    result = planning.isoflop_analysis(data, budget_column="budget", seed=1)
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    a = result.exponents.loc["a"]
    assert a["lower"] <= a_true <= a["upper"]
    assert a["upper"] - a["lower"] < 0.1
    assert len(result.budgets) == 7
    # grouping by C alone finds the same budgets
    grouped = planning.isoflop_analysis(data.drop(columns="budget"), seed=1)
    assert len(grouped.budgets) == 7
    with pytest.raises(ValueError, match="budget column 'nope'"):
        planning.isoflop_analysis(data, budget_column="nope")


def test_cli_plan_questions(demo_fit, tmp_path, capsys):
    path = demo_fit.save(tmp_path / "fit.nc")
    assert main(["plan", "compute", str(path), "--C", "5.76e23", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["N_opt_lower"] < row["N_opt"] < row["N_opt_upper"]
    assert main(["plan", "compute", str(path), "--gpus", "1000", "--days", "30", "--gpu", "H100", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["C"] == pytest.approx(planning.hardware_flops(1000, 30, accelerator="H100"))
    assert main(["plan", "tokens", str(path), "--N", "7e10"]) == 0
    assert "D_opt" in capsys.readouterr().out
    assert main(["plan", "overtrain", str(path), "--target-loss", "2.0", "--inference-tokens", "1e13", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["p_reachable"] == 1.0
    assert main(["plan", "compute", str(path)]) == 2
    assert "give a budget" in capsys.readouterr().err
