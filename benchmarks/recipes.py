"""Recipe benchmark: are the calls of :func:`bayes_scaling.compare_recipes` right, and its multipliers calibrated?

``make recipes``. Two parts (issue 20):

1. **Held-out real sweeps**: for each sweep of several recipes (``marin_isoflop``'s three data mixes,
   ``gadre2024``'s C4 / RedPajama / RefinedWeb, and ``porian2024``'s four training protocols per dataset, same
   parameter count and loss), fit the runs below the largest quarter of model sizes, and at every held-out
   (N, D) that all recipes ran, ask which recipe is best. A *call* is made where one recipe has P(best) > 0.9;
   it is right when that recipe has the lowest measured loss there. Target: the calls are right (reported: how
   many calls, how many right, and the mean P of the calls, which a calibrated method matches).
2. **Simulated recipe pairs** (``--pairs``, default 36): two recipes from Chinchilla-form truths that differ in E
   only, in E and the term levels, or in every parameter (a third each), 5 IsoFLOP budgets 1e18-1e20 x 6 sizes,
   0.8% noise on log-loss. At 1e20 (the data's edge), 1e21 and 1e22 FLOPs: does the 90% interval of the
   effective-compute multiplier hold the true one? Target: coverage >= 0.85 at every budget.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.inference import ConvergenceWarning
from bayes_scaling.recipes import compare_recipes
from bayes_scaling.report import markdown_table
from bayes_scaling.simulate import optimal_loss, reference_of, simulate_sweep, true_multiplier

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BUDGETS = np.array([1e18, 3e18, 1e19, 3e19, 1e20])
QUERY = (1e20, 1e21, 1e22)
SIGMA = 0.008
KINDS = ("E", "levels", "exponents")


# ---------------------------------------------------------------------------------------------------- real sweeps
def _real_sweeps(root: Path) -> list[tuple[str, str, pd.DataFrame]]:
    """(name, recipe column, runs) of the real multi-recipe sweeps found under ``root``."""
    out = []
    marin = root / "marin_isoflop" / "data.csv"
    if marin.exists():
        out.append(("marin_isoflop (data mix)", "dataset", pd.read_csv(marin)))
    gadre = root / "gadre2024" / "data.csv"
    if gadre.exists():
        out.append(("gadre2024 (pretraining data)", "dataset", pd.read_csv(gadre)))
    porian = root / "porian2024" / "data.csv"
    if porian.exists():
        frame = pd.read_csv(porian)
        same = frame[(frame["param_count"] == "standard") & (frame["loss_type"] == "val")]
        for dataset, part in same.groupby("dataset"):
            part = part.assign(protocol=part["hparams"] + "/" + part["warmup"] + "/" + part["decay"])
            out.append((f"porian2024 {dataset} (training protocol)", "protocol", part))
    return out


def _key(frame: pd.DataFrame) -> pd.Series:
    return frame["N"].map(lambda v: f"{v:.3g}") + "/" + frame["D"].map(lambda v: f"{v:.3g}")


def held_out(name: str, by: str, frame: pd.DataFrame, *, seed: int = 0) -> dict:
    """Fit below the largest quarter of sizes; score the calls at the held-out points every recipe ran."""
    sizes = np.unique(frame["N"])
    cut = sizes[round(0.75 * (len(sizes) - 1))]
    train, test = frame[frame["N"] < cut], frame[frame["N"] >= cut].assign(key=lambda f: _key(f))
    recipes = sorted(frame[by].astype(str).unique())
    measured = test.groupby(["key", by])["loss"].mean().unstack(by)
    measured = measured.dropna()  # points every recipe ran
    points = test.drop_duplicates("key").set_index("key").loc[measured.index, ["N", "D"]].astype(float)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = compare_recipes(train, by=by, target=points, seed=seed, budgets=[float(6 * (points["N"] *
                                                                                         points["D"]).max())])
    seconds = time.perf_counter() - start
    table = result.target.assign(key=lambda f: _key(f))
    winner = measured[recipes].idxmin(axis=1)
    out = {"sweep": name, "recipes": len(recipes), "train_runs": len(train), "cut_N": float(cut),
           "points": len(measured)}
    for kind in ("", "_run"):
        best = table.loc[table.groupby("key")[f"p_best{kind}"].idxmax()].set_index("key")
        calls = best[best[f"p_best{kind}"] > 0.9]
        right = (calls["recipe"] == winner.loc[calls.index]).to_numpy()
        out.update({f"calls{kind}": len(calls), f"right{kind}": int(right.sum()),
                    f"mean_p{kind}": float(calls[f"p_best{kind}"].mean()) if len(calls) else math.nan})
    out.update({"top_winner_share": float((winner == winner.mode().iloc[0]).mean()),
                "best_variant": result.best_variant, "seconds": round(seconds, 1)})
    return out


def held_out_budgets(name: str, by: str, frame: pd.DataFrame, *, seed: int = 0) -> dict | None:
    """Fit below the largest quarter of IsoFLOP budgets; at each held-out budget, is the best recipe called right?

    The measured winner at a budget is the recipe whose best run (the minimum of its IsoFLOP curve) is lowest;
    the forecast is each recipe's compute-optimal loss. Only budgets where every recipe ran 3 or more sizes count.
    """
    column = "budget_C" if "budget_C" in frame.columns else "C"
    budget = frame[column].astype(float).map(lambda v: float(f"{v:.3g}"))
    frame = frame.assign(budget=budget)
    counts = frame.groupby(["budget", by]).size().unstack(by)
    curves = counts[(counts >= 3).all(axis=1)].index.to_numpy()
    if len(curves) < 4:
        return None
    cut = np.sort(curves)[round(0.75 * (len(curves) - 1))]
    held = curves[curves >= cut]
    train = frame[frame["budget"] < cut]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = compare_recipes(train, by=by, seed=seed, budgets=list(held))
    seconds = time.perf_counter() - start
    measured = frame[frame["budget"].isin(held)].groupby(["budget", by])["loss"].min().unstack(by)
    winner = measured.idxmin(axis=1)
    table = result.budgets.assign(budget=result.budgets["C"].map(lambda v: float(f"{v:.3g}")))
    best = table.loc[table.groupby("budget")["p_best"].idxmax()].set_index("budget")
    calls = best[best["p_best"] > 0.9]
    right = (calls["recipe"] == winner.loc[calls.index]).to_numpy()
    return {"sweep": name, "recipes": measured.shape[1], "train_runs": len(train), "cut_C": float(cut),
            "budgets": len(held), "calls": len(calls), "right": int(right.sum()),
            "share_right": float(right.mean()) if len(calls) else math.nan,
            "mean_p_of_calls": float(calls["p_best"].mean()) if len(calls) else math.nan,
            "best_variant": result.best_variant, "seconds": round(seconds, 1)}


# ---------------------------------------------------------------------------------------------------- simulation
def _truth(rng: np.random.Generator) -> dict[str, float]:
    return {"E": rng.uniform(1.6, 1.9), "A": rng.uniform(250, 600), "B": rng.uniform(250, 600),
            "alpha": rng.uniform(0.26, 0.38), "beta": rng.uniform(0.26, 0.38)}


def _other(base: dict[str, float], kind: str, rng: np.random.Generator) -> dict[str, float]:
    sign = rng.choice([-1.0, 1.0])
    if kind == "E":
        return {**base, "E": base["E"] + sign * rng.uniform(0.01, 0.06)}
    other = {**base, "E": base["E"] + sign * rng.uniform(0.0, 0.04), "A": base["A"] * math.exp(rng.uniform(-0.3, 0.3)),
             "B": base["B"] * math.exp(rng.uniform(-0.3, 0.3))}
    if kind == "exponents":
        other["alpha"] += rng.uniform(-0.03, 0.03)
        other["beta"] += rng.uniform(-0.03, 0.03)
    return other


def _centred(truth: dict[str, float], ref: dict[str, float]) -> dict[str, float]:
    """A, B as the law's log levels at the reference scale (the parameters :func:`simulate_sweep` takes)."""
    return {"E": truth["E"], "alpha": truth["alpha"], "beta": truth["beta"],
            "log_n_term": math.log(truth["A"]) - truth["alpha"] * math.log(ref["N"]),
            "log_d_term": math.log(truth["B"]) - truth["beta"] * math.log(ref["D"])}


def simulated_pair(index: int, kind: str, *, seed: int = 0, draws: int = 1000) -> list[dict]:
    rng = np.random.default_rng([seed, index])
    n = np.concatenate([np.sqrt(c / 120) * np.logspace(-0.8, 0.8, 6) for c in BUDGETS])
    d = np.repeat(BUDGETS, 6) / (6 * n)
    ref = reference_of(n, d)
    base = _truth(rng)
    truths = {"a": _centred(base, ref), "b": _centred(_other(base, kind, rng), ref)}
    frame = pd.concat([simulate_sweep("chinchilla", p, N=n, D=d, sigma=SIGMA, seed=rng).assign(recipe=r)
                       for r, p in truths.items()], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = compare_recipes(frame, by="recipe", reference="a", budgets=list(QUERY), seed=seed + index,
                                 draws=draws)
    rows = []
    for _, row in result.budgets[result.budgets["recipe"] == "b"].iterrows():
        c = float(row["C"])
        mult = true_multiplier("chinchilla", truths["b"], truths["a"], c, ref)
        diff = optimal_loss("chinchilla", truths["b"], c, ref) - optimal_loss("chinchilla", truths["a"], c, ref)
        covered = row["multiplier_lower"] <= mult <= row["multiplier_upper"] or (
            math.isinf(mult) and math.isinf(row["multiplier_upper"]))
        rows.append({"pair": index, "kind": kind, "C": c, "true_multiplier": mult,
                     "median": row["multiplier"], "lower": row["multiplier_lower"], "upper": row["multiplier_upper"],
                     "covered": bool(covered), "true_diff": diff,
                     "diff_covered": bool(row["diff_lower"] <= diff <= row["diff_upper"]),
                     "right_side": bool((row["p_beats_reference"] > 0.5) == (diff < 0)),
                     "width_decades": math.log10(row["multiplier_upper"] / row["multiplier_lower"])
                     if np.isfinite(row["multiplier_upper"]) and row["multiplier_lower"] > 0 else math.inf,
                     "best_variant": result.best_variant})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the shared public sweeps")
    parser.add_argument("--pairs", type=int, default=36, help="simulated recipe pairs (default 36)")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    parser.add_argument("--part", choices=("all", "real", "simulated"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.part in ("all", "real"):
        sweeps = _real_sweeps(args.data)
        if not sweeps:
            print(f"part 1 skipped: no shared sweeps under {args.data}")
        else:
            rows = [held_out(name, by, frame, seed=args.seed) for name, by, frame in sweeps]
            table = pd.DataFrame(rows)
            print("## Part 1a: which recipe wins at the held-out largest sizes, point by point\n")
            print("Calls where one recipe has P > 0.9: `p_best` (lowest expected loss) and `p_best_run` (lowest "
                  "loss of one new run each, which is what a measured winner is).\n")
            print(markdown_table(table, digits=3))
            for kind in ("", "_run"):
                calls, right = int(table[f"calls{kind}"].sum()), int(table[f"right{kind}"].sum())
                print(f"\nall sweeps, p_best{kind}: {right} of {calls} calls right ({right / max(calls, 1):.0%}) "
                      f"over {int(table['points'].sum())} held-out points")
            budget_rows = [row for name, by, frame in sweeps
                           if (row := held_out_budgets(name, by, frame, seed=args.seed)) is not None]
            if budget_rows:
                table = pd.DataFrame(budget_rows)
                print("\n## Part 1b: which recipe wins at the held-out largest IsoFLOP budgets (compute-optimal)\n")
                print(markdown_table(table, digits=3))
                calls, right = int(table["calls"].sum()), int(table["right"].sum())
                print(f"\nall sweeps: {right} of {calls} calls right ({right / max(calls, 1):.0%}) over "
                      f"{int(table['budgets'].sum())} held-out budgets\n")

    if args.part in ("all", "simulated"):
        start = time.perf_counter()
        rows = []
        for index in range(args.pairs):
            rows += simulated_pair(index, KINDS[index % len(KINDS)], seed=args.seed, draws=args.draws)
        runs = pd.DataFrame(rows)
        summary = runs.groupby("C").agg(pairs=("pair", "size"), multiplier_coverage=("covered", "mean"),
                                        diff_coverage=("diff_covered", "mean"), right_side=("right_side", "mean"),
                                        median_width_decades=("width_decades", "median")).reset_index()
        by_kind = runs.groupby(["kind", "C"]).agg(pairs=("pair", "size"), multiplier_coverage=("covered", "mean"),
                                                 diff_coverage=("diff_covered", "mean")).reset_index()
        print(f"## Part 2: {args.pairs} simulated recipe pairs, 90% intervals "
              f"({time.perf_counter() - start:.0f} s)\n")
        print(markdown_table(summary, digits=3))
        print("\nby what differs in truth:\n")
        print(markdown_table(by_kind, digits=3))
        ok = bool((summary["multiplier_coverage"] >= 0.85).all())
        print(f"\ntarget: multiplier coverage >= 0.85 at every budget: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
