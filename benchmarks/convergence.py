"""Do default fits converge on their first pass? The backtest splits' training sets, sampled in each geometry.

``python -m benchmarks.convergence`` (part of ``make bench``). For every sweep and split of
:mod:`benchmarks.backtests` (fit below the largest sizes, below the largest budget, below a tokens-per-parameter
cut), the training runs are fitted as a user would (:func:`bayes_scaling.fit` defaults, 4 x 1000 draws, the
automatic retry on; the law the backtests fit, the package's default on Chinchilla-form sweeps, or ``--law``), once
per geometry (:data:`bayes_scaling.geometry.GEOMETRIES`): the law's own parameters and the loss level and local
slopes at the reference point. Reported per geometry: the share of fits that passed on their first pass (R-hat <=
1.01, bulk ESS >= 400, no divergence, no maximum tree depth), the fits that hit the maximum tree depth, mean
leapfrog steps per draw of the first pass, and seconds. Target (issue 31): >= 90% first-pass and none at the
maximum tree depth. ``--seed 1,2,3`` runs every fit once per seed and reports each seed's row: the share moves by
a few fits between seeds.

``--tasks 1,2,3`` measures the pooled 46-task downstream fit instead (:func:`run_tasks`; issue 29: max R-hat
<= 1.01 in <= 60 s).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from bayes_scaling import fit
from bayes_scaling.geometry import GEOMETRIES
from bayes_scaling.report import markdown_table
from benchmarks.backtests import DEFAULT_DATA, bayes_law, cases, splits

#: gadre2024_downstream's training sets the pooled task fits are measured on (``--tasks``).
TASK_TRAINING_SETS = ("c4_original", "rpj", "rw_original")


def one(train: pd.DataFrame, law: str, geometry: str, seed: int) -> dict:
    """The first pass's and the final diagnostics of a default fit of ``train`` in ``geometry``."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(train, law=law, seed=seed, warn=False, extrapolation="none", geometry=geometry)
    seconds = time.perf_counter() - start
    final = result.diagnostics().to_dict()
    escalated = result.info.get("escalated")
    first = escalated["first_pass"] if escalated else final
    return {"geometry": result.info["geometry"], "first_pass": escalated is None,
            "first_r_hat": first["max_r_hat"], "first_ess": first["min_ess_bulk"],
            "first_divergences": first["divergences"], "first_depth_hits": first["max_tree_depth_hits"],
            "first_steps": first.get("mean_steps"), "final_r_hat": final["max_r_hat"],
            "final_depth_hits": final["max_tree_depth_hits"], "seconds": round(seconds, 1)}


def run(root: Path, geometries: list[str], seed: int = 1, only: str | None = None,
        law: str | None = None) -> pd.DataFrame:
    """One default fit per (case, split, geometry): the law the backtests fit (:func:`benchmarks.backtests.
    bayes_law`: the package's default law on Chinchilla-form sweeps), or ``law`` where given."""
    rows = []
    for case, frame, case_law in cases(root):
        if only and only not in case:
            continue
        fitted = bayes_law(case_law, law)
        for split, train in splits(frame, case_law):
            for geometry in geometries:
                row = {"case": case, "split": split, "runs": int(train.sum()), "law": fitted,
                       **one(frame[train], fitted, geometry, seed)}
                row["asked"] = geometry
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                rows.append(row)
    return pd.DataFrame(rows)


def run_tasks(root: Path, seeds: list[int], training_sets: tuple[str, ...] = TASK_TRAINING_SETS) -> pd.DataFrame:
    """Pooled 46-task link fits (:func:`bayes_scaling.downstream.fit_tasks`, defaults, no extrapolation term) on
    gadre2024_downstream's models below 1e9 parameters, one per training set and seed (issue 29's 46-task fit).

    Per fit: the tasks whose width is sampled centred (:func:`bayes_scaling.downstream._rising_tasks`), the seconds
    of compiling (once per training set, before the fits) and of the fit, whether a trapped chain made it sample
    again, max R-hat, min bulk ESS, divergences and leapfrog steps a draw.
    """
    from bayes_scaling import datasets, downstream, inference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = datasets.load("gadre2024_downstream", path=root)
    rows = []
    for training in training_sets:
        tasks = full[(full["dataset"] == training) & (full["N"] < 1e9)]
        metrics = [c for c in tasks.columns if c.startswith("err_") and f"items_{c}" in tasks.columns]
        chance = downstream._per_task(tasks, metrics, None, "random_", "chance")  # as fit_tasks reads them
        items = downstream._per_task(tasks, metrics, None, "items_", "items")
        loss, errors = tasks["loss"].to_numpy(), tasks[metrics].to_numpy()
        rising = downstream._rising_tasks(loss, errors, items)
        start = time.perf_counter()
        inference.compiled_nutpie(downstream._task_model(metrics, loss, errors, chance, items, rising),
                                  downstream._task_key(metrics, chance, items, rising))
        compile_s = time.perf_counter() - start
        for seed in seeds:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = downstream.fit_tasks(tasks, metrics, extrapolation=False, seed=seed)
            diagnostics = result.diagnostics()
            row = {"training": training, "tasks": len(metrics), "rising": int(rising.sum()), "seed": seed,
                   "compile_s": round(compile_s, 1), "fit_s": round(time.perf_counter() - start, 1),
                   "restarted": "restart" in result.info, "max_r_hat": round(diagnostics.max_r_hat, 4),
                   "min_ess_bulk": round(diagnostics.min_ess_bulk), "divergences": diagnostics.divergences,
                   "steps": round(diagnostics.mean_steps, 1)}
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per asked geometry (and seed, where several were run): first-pass share, fits at the maximum tree depth,
    steps and seconds."""
    keys = ["asked", "seed"] if "seed" in table and table["seed"].nunique() > 1 else ["asked"]
    out = table.groupby(keys).agg(
        fits=("case", "size"), first_pass=("first_pass", "mean"),
        depth_hit_fits_first=("first_depth_hits", lambda h: int((h > 0).sum())),
        depth_hit_fits_final=("final_depth_hits", lambda h: int((h > 0).sum())),
        max_final_r_hat=("final_r_hat", "max"), mean_first_steps=("first_steps", "mean"),
        seconds=("seconds", "sum"))
    return out.round(3)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--geometry", default=",".join(GEOMETRIES), help="comma-separated geometries to compare")
    parser.add_argument("--only", default=None, help="cases whose name contains this")
    parser.add_argument("--seed", default="1", help="seed of the fits; several comma-separated (e.g. 1,2,3) to see "
                        "how much the first-pass share moves between seeds (each seed is a full run)")
    parser.add_argument("--law", default=None, help="fit this law on the Chinchilla-form sweeps (default: the "
                        "package's default law, as the backtests do)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of every fit")
    parser.add_argument("--tasks", default=None, metavar="SEEDS",
                        help="instead: the pooled 46-task link fits on gadre2024_downstream's three training sets, "
                             "one per comma-separated seed (e.g. 1,2,3)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"no data at {args.data}: skipped")
        return pd.DataFrame()
    if args.tasks:
        table = run_tasks(args.data, [int(s) for s in args.tasks.split(",")])
        if args.out:
            table.to_csv(args.out, index=False)
        print(table.to_string(index=False))  # R-hat to 4 decimals: the table rounds to 4 significant digits
        return table
    seeds = [int(seed) for seed in args.seed.split(",")]
    table = pd.concat([run(args.data, args.geometry.split(","), seed=seed, only=args.only, law=args.law)
                       .assign(seed=seed) for seed in seeds], ignore_index=True)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = summarise(table)
    print(markdown_table(summary.reset_index()))
    return summary


if __name__ == "__main__":
    main()
