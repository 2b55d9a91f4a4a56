"""Recipe comparison: noise split (evaluation noise, replicates, copies), paired recipe fits, multiplier, CLI."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.data import DataError, DataWarning, load_sweep
from bayes_scaling.noise import cell_log_density, find_interval, find_split, unit_log_likelihood
from bayes_scaling.recipes import VARIANTS, compare_recipes, recipe_variant_shared
from bayes_scaling.simulate import optimal_loss, reference_of, simulate_sweep, true_multiplier

BUDGETS = np.array([1e18, 3e18, 1e19, 3e19, 1e20])
BASE = {"E": 1.8, "alpha": 0.34, "beta": 0.28, "log_n_term": math.log(0.5), "log_d_term": math.log(0.6)}
#: recipe "b": lower irreducible loss and a smaller data term (the kind of gain a better data mix gives)
BETTER = {**BASE, "E": 1.76, "log_d_term": math.log(0.5)}
EVAL_SD = 0.0005


def _grid() -> tuple[np.ndarray, np.ndarray]:
    n = np.concatenate([np.sqrt(c / 120) * np.logspace(-0.8, 0.8, 6) for c in BUDGETS])
    c = np.repeat(BUDGETS, 6)
    return n, c / (6 * n)


def _pair(seed: int = 0) -> pd.DataFrame:
    n, d = _grid()
    frames = [simulate_sweep("chinchilla", params, N=n, D=d, sigma=0.006, seed=seed + i).assign(recipe=name)
              for i, (name, params) in enumerate((("a", BASE), ("b", BETTER)))]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def comparison() -> bs.RecipeComparison:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        return compare_recipes(_pair(), by="recipe", reference="a", budgets=[1e20, 1e22], target=(7e9, 1.4e11),
                               variants=("E", "levels"), draws=300, tune=400, chains=2, seed=3)


# ---------------------------------------------------------------------------------------------------- noise split
def test_interval_columns_found_and_turned_into_log_sd():
    frame = pd.DataFrame({"N": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9], "D": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10],
                          "loss_c4": [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]})
    frame["loss"] = frame["loss_c4"]
    frame["loss_c4_lo95"] = frame["loss"] - [0.03, 0.1, 0.01, 0.01, 0.01, 0.01]
    frame["loss_c4_hi95"] = frame["loss"] + [0.03, 0.1, 0.01, 0.01, 0.01, 0.01]
    assert find_interval(frame) == ("loss_c4_lo95", "loss_c4_hi95")
    _, split = find_split(load_sweep(frame, check_units=False), ["N", "D"])
    expected = (np.log(3.03) - np.log(2.97)) / (2 * 1.959964)
    assert split.eval_sd[0] == pytest.approx(expected, rel=1e-6)
    assert not split.has_replicates and split.interval == ("loss_c4_lo95", "loss_c4_hi95")
    # an interval not holding its loss is refused, naming the rows
    bad = frame.assign(loss_c4_lo95=[3.01, 2.8, 2.79, 2.69, 2.59, 2.49])
    with pytest.raises(DataError, match=r"rows \[0\]"):
        find_split(load_sweep(bad, check_units=False), ["N", "D"])
    # no interval columns: no evaluation noise
    _, plain = find_split(load_sweep(frame[["N", "D", "loss"]], check_units=False), ["N", "D"])
    assert plain.interval is None and not plain.eval_sd.any()


def test_replicates_kept_and_exact_copies_dropped():
    frame = pd.DataFrame({"N": [1e8, 1e8, 1e8, 2e8, 2e8, 4e8, 8e8], "D": [2e9, 2e9, 2e9, 4e9, 4e9, 8e9, 1.6e10],
                          "loss": [3.00, 3.01, 3.00, 2.90, 2.91, 2.80, 2.7], "mix": ["x"] * 7})
    with pytest.warns(DataWarning, match="row 3 repeat earlier rows exactly .* were dropped"):  # as by `fit`
        sweep, split = find_split(load_sweep(frame, check_units=False), ["mix", "N", "D"])
    assert len(sweep) == 6
    assert split.n_cells == 2 and split.dropped == 0
    assert list(split.cell) == [0, 0, 1, 1, -1, -1]
    assert list(split.units) == [2, 2, 3, 3, 0, 1]


def test_cell_density_is_the_marginal_normal():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    residual = rng.normal(0, 0.02, 5)
    variance = rng.uniform(1e-5, 4e-4, 5)
    tau2 = 0.01**2
    members = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]], float)
    got = cell_log_density(np, residual[None, :], variance[None, :], np.full((1, 5), tau2), members)[0]
    for c, rows in enumerate(([0, 1, 2], [3, 4])):
        cov = tau2 + np.diag(variance[rows])
        assert got[c] == pytest.approx(multivariate_normal(np.zeros(len(rows)), cov).logpdf(residual[rows]))


def test_unit_log_likelihood_counts_a_replicate_cell_once():
    frame = pd.DataFrame({"N": [1e8, 1e8, 2e8, 4e8, 8e8, 1.6e9], "D": [2e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10],
                          "loss": [3.0, 3.01, 2.9, 2.8, 2.7, 2.6], "g": ["x"] * 6})
    _, split = find_split(load_sweep(frame, check_units=False), ["g", "N", "D"])
    residual = np.array([[0.01, 0.012, -0.005, 0.0, 0.001, 0.002]])
    values = unit_log_likelihood(residual, split, {"sigma_seed": np.array([0.002]), "nu": np.array([30.0])},
                                 np.full((1, 6), 0.01))
    assert values.shape == (1, 5)  # four runs measured once, one cell of two


# ---------------------------------------------------------------------------------------------------- the comparison
def test_variants_share_what_they_say():
    law = bs.get_law("chinchilla")
    assert recipe_variant_shared(law, "E") == ("alpha", "beta", "log_n_term", "log_d_term")
    assert recipe_variant_shared(law, "levels") == ("alpha", "beta")
    assert recipe_variant_shared(law, "exponents") == ()
    with pytest.raises(ValueError, match="unknown variant"):
        recipe_variant_shared(law, "everything")
    assert set(VARIANTS) == {"E", "levels", "exponents"}


@pytest.mark.parametrize("variant", ["E", "levels", "exponents"])
def test_one_switchable_model_is_each_variants_model(variant):
    """The variants' one compiled model: the law reads the common or own value as ``share_<name>`` says.

    Its likelihood at any point equals the plain unpooled model's at the values it uses; the unused values touch
    nothing; and the posterior it gives reads as the plain model's (scalar for shared parameters).
    """
    import xarray as xr

    from bayes_scaling.model import build_model, resolve_priors, select_shared

    law = bs.get_law("chinchilla")
    shared = recipe_variant_shared(law, variant)
    sweep, split = find_split(load_sweep(_pair()), ["recipe", "N", "D"])
    priors = resolve_priors(law, None)
    kwargs = {"priors": priors, "group": "recipe", "shared": shared, "split": split, "parameterization": "unpooled"}
    plain, switched = build_model(law, sweep, **kwargs), build_model(law, sweep, switchable=True, **kwargs)
    like_plain = plain.compile_fn(plain.datalogp, inputs=plain.value_vars, on_unused_input="ignore")
    like_switched = switched.compile_fn(switched.datalogp, inputs=switched.value_vars, on_unused_input="ignore")
    rng = np.random.default_rng(0)
    point = {v.name: rng.normal(0, 0.3, size=switched.initial_point()[v.name].shape) for v in switched.value_vars}
    used = {}
    for var in plain.value_vars:
        name = var.name.removesuffix("_log__")
        if name in law.param_names:
            source = f"{name}_common" if name in shared else f"{name}_own"
            used[var.name] = point[var.name.replace(name, source, 1)]
        else:
            used[var.name] = point[var.name]
    assert like_switched(point) == pytest.approx(like_plain(used), abs=1e-9)
    unused = next(v.name for v in switched.value_vars if ("_own" in v.name) == (v.name.split("_")[0] in shared))
    moved = {**point, unused: point[unused] + 1.0}
    assert like_switched(moved) == pytest.approx(like_switched(point), abs=1e-12)
    draws = {n: (("chain", "draw"), rng.normal(size=(1, 3))) for n in ("E_common", "alpha_common", "beta_common",
                                                                      "log_n_term_common", "log_d_term_common")}
    draws |= {n.replace("common", "own"): (("chain", "draw", "group"), rng.normal(size=(1, 3, 2))) for n in draws}
    draws |= {n: (("chain", "draw", "group"), rng.normal(size=(1, 3, 2))) for n in law.param_names}
    selected = select_shared(xr.Dataset(draws), law, priors, shared)
    assert not [n for n in selected.data_vars if n.endswith(("_common", "_own"))]
    for name in law.param_names:
        assert ("group" in selected[name].dims) == (name not in shared)


def test_simulated_truth_is_recovered(comparison):
    ref = reference_of(*_grid())
    assert comparison.recipes == ["a", "b"] and comparison.reference == "a"
    budgets = comparison.budgets.set_index(["C", "recipe"])
    for budget in (1e20, 1e22):
        row = budgets.loc[(budget, "b")]
        truth_diff = optimal_loss("chinchilla", BETTER, budget, ref) - optimal_loss("chinchilla", BASE, budget, ref)
        truth_mult = true_multiplier("chinchilla", BETTER, BASE, budget, ref)
        assert row["diff_lower"] <= truth_diff <= row["diff_upper"], (budget, truth_diff, row.to_dict())
        assert row["multiplier_lower"] <= truth_mult <= row["multiplier_upper"], (budget, truth_mult, row.to_dict())
        assert row["p_beats_reference"] > 0.95 and row["p_best"] > 0.95
        assert budgets.loc[(budget, "a"), "multiplier"] == 1.0
    # wider beyond the data than inside it
    width = lambda c: budgets.loc[(c, "b"), "multiplier_upper"] / budgets.loc[(c, "b"), "multiplier_lower"]  # noqa
    assert width(1e22) > width(1e20)
    target = comparison.target.set_index("recipe")
    assert target.loc["b", "diff_upper"] < 0 < target.loc["b", "p_beats_reference"]
    assert set(comparison.variants.index) == {"E", "levels"}
    assert comparison.variants["weight"].sum() == pytest.approx(1.0)
    assert comparison.info["paired_extrapolation"] is True  # the recipes share their (N, D) grid


def test_crossing_curve_and_outputs(comparison):
    crossing = comparison.crossing.set_index("recipe")
    assert crossing.loc["b", "leader"] == "b" and crossing.loc["b", "p_cross_within"] < 0.1
    curve = comparison.curve
    assert set(curve["recipe"]) == {"b"} and (curve["lower"] <= curve["median"]).all()
    assert curve["C"].min() == pytest.approx(comparison.info["data_budgets"][0])
    payload = json.loads(json.dumps(comparison.to_dict()))
    assert payload["reference"] == "a" and len(payload["budgets"]) == 4
    assert any("b beats a" in line for line in comparison.verdict())
    from bayes_scaling.plots import plot_multiplier

    ax = plot_multiplier(curve, reference="a", data_budgets=comparison.info["data_budgets"])
    assert ax.get_yscale() == "log" and len(ax.lines) >= 2


def test_replicates_and_eval_noise_in_the_fit():
    """Seeds repeated at every (N, D): the seed noise is recovered apart from the scatter around the law."""
    rng = np.random.default_rng(7)
    n, d = _grid()
    frames = []
    for name, params in (("a", BASE), ("b", BETTER)):
        base = simulate_sweep("chinchilla", params, N=n, D=d, sigma=0.006, seed=rng)
        for _ in range(2):  # two seeds per run: seed noise 0.002 on log-loss, evaluation noise 0.0005
            seeded = base.assign(loss=base["loss"] * np.exp(rng.normal(0, 0.002, len(base))), recipe=name)
            measured = seeded["loss"] * np.exp(rng.normal(0, EVAL_SD, len(base)))
            frames.append(seeded.assign(loss=measured, loss_lo95=measured * math.exp(-1.959964 * EVAL_SD),
                                        loss_hi95=measured * math.exp(1.959964 * EVAL_SD)))
    data = pd.concat(frames, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = compare_recipes(data, by="recipe", reference="a", budgets=[1e21], variants=("levels",),
                                 draws=300, tune=400, chains=2, seed=5)
    noise = result.noise.set_index("recipe")
    assert (noise["replicate_cells"] == 30).all()
    assert noise.loc["a", "eval_sd"] == pytest.approx(EVAL_SD, rel=1e-6)
    seed = np.asarray(result.fits["levels"].idata["posterior"]["sigma_seed"].values).ravel()
    low, high = np.quantile(seed, [0.01, 0.99])
    assert low < 0.002 < high and high < 0.004
    assert result.info["noise_split"]["replicate_runs"] == 120
    assert "log_likelihood" in result.fits["levels"].idata.children
    assert result.fits["levels"].idata["log_likelihood"]["log_loss"].sizes["unit"] == 60


def test_bad_requests_fail_before_sampling():
    data = _pair()
    with pytest.raises(DataError, match="group column 'mix'"):
        compare_recipes(data, by="mix")
    with pytest.raises(DataError, match="one recipe"):
        compare_recipes(data.assign(recipe="a"), by="recipe")
    with pytest.raises(ValueError, match="reference 'c' is not a recipe"):
        compare_recipes(data, by="recipe", reference="c")
    with pytest.raises(ValueError, match="unknown variant"):
        compare_recipes(data, by="recipe", variants=("levels", "all"))
    with pytest.raises(ValueError, match="budgets must be finite"):
        compare_recipes(data, by="recipe", budgets=[1e21, -1])
    with pytest.raises(ValueError, match="not a law of N and D"):
        compare_recipes(data, by="recipe", law="compute")
    with pytest.raises(DataError, match="too few runs"):
        compare_recipes(pd.concat([data, data.iloc[:3].assign(recipe="c")]), by="recipe")
    with pytest.raises(ValueError, match="target needs N and D"):
        compare_recipes(data, by="recipe", target={"N": 1e9})


def test_true_multiplier_sanity():
    ref = reference_of(*_grid())
    assert true_multiplier("chinchilla", BASE, BASE, 1e21, ref) == pytest.approx(1.0, rel=1e-6)
    assert true_multiplier("chinchilla", BETTER, BASE, 1e21, ref) > 1.0
    # a reference whose floor lies above the recipe's loss never gets there
    assert math.isinf(true_multiplier("chinchilla", {**BASE, "E": 1.0}, BASE, 1e24, ref))


def test_cli_recipes(tmp_path, capsys):
    csv = tmp_path / "pair.csv"
    _pair(seed=4).to_csv(csv, index=False)
    plot = tmp_path / "mult.png"
    args = [str(csv), "--by", "recipe", "--reference", "a", "--C", "1e21", "--variants", "E,levels",
            "--draws", "200", "--tune", "300", "--chains", "2", "--seed", "2", "--quiet"]
    assert main(["recipes", *args, "--json", "--plot", str(plot)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {row["recipe"] for row in payload["budgets"]} == {"a", "b"} and plot.stat().st_size > 0
    assert main(["recipes", *args, "--json", "--plot", str(plot)]) == 2  # never replaced without --force
    assert "exists" in capsys.readouterr().err
    assert main(["recipes", *args, "--variants", "E,all"]) == 2
    out = tmp_path / "report"
    assert main(["recipes", *args, "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "beats a" in text and "multiplier" in text
    report = (out / "report.md").read_text()
    assert "Which recipe wins" in report and (out / "multiplier.png").exists()


def test_a_recipes_own_loss_is_the_forecast_of_that_recipe(comparison):
    """The engine's promise: the recipe table at (N, D) and a forecast of the recipe's fit there agree."""
    for recipe in comparison.recipes:
        row = comparison.target.set_index("recipe").loc[recipe]
        forecast = comparison.fits[comparison.best_variant].group_fit(recipe).forecast(N=row["N"], D=row["D"])
        width = float(forecast["upper"].iloc[0] - forecast["lower"].iloc[0])
        assert abs(row["loss_lower"] - forecast["lower"].iloc[0]) < 0.15 * width, recipe
        assert abs(row["loss_upper"] - forecast["upper"].iloc[0]) < 0.15 * width, recipe
