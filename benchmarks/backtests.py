"""Backtests on the real public sweeps in ../shared/data: fit on smaller models, score the larger ones.

Usage: ``python -m benchmarks.backtests [--data ../shared/data]``

For each sweep (split by its grouping column where losses are not comparable across groups) the law is
fitted to runs below the cutoff (the largest quarter of model sizes is held out) and the held-out runs
are scored: coverage of the 50% and 90% predictive intervals, median absolute relative error of the
posterior median, and the same error for the Chinchilla-style point fit (Huber + L-BFGS).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from bayes_scaling.validation import backtest

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cases(root: Path):
    """(name, frame, law) for each backtest."""
    chin = pd.read_csv(root / "chinchilla_epoch" / "data.csv")
    yield "chinchilla_epoch", chin, "chinchilla"
    gadre = pd.read_csv(root / "gadre2024" / "data.csv")
    for name, group in gadre.groupby("dataset"):
        yield f"gadre2024/{name}", group, "chinchilla"
    li = pd.read_csv(root / "li2025_misfitting" / "data.csv")
    yield "li2025_misfitting", li, "chinchilla"
    marin = pd.read_csv(root / "marin_isoflop" / "data.csv")
    for name, group in marin.groupby("dataset"):
        yield f"marin_isoflop/{name}", group, "chinchilla"
    porian = pd.read_csv(root / "porian2024" / "data.csv")
    setup = sorted(porian["setup"].unique())[0]
    yield f"porian2024/{setup.split('/')[0]}-first-setup", porian[porian["setup"] == setup], "chinchilla"
    mu = pd.read_csv(root / "muennighoff2023_datablations" / "data.csv")
    yield "muennighoff2023 (paper fit set)", mu[mu["in_paper_fit"]].rename(columns={"U": "unique_tokens"}), \
        "data_constrained"
    clark = pd.read_csv(root / "clark2022_routing" / "data.csv")
    dense = clark[clark["num_experts"] == 1]
    yield "clark2022_routing (dense)", dense[["N", "D", "C", "loss"]], "params"


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    for name, frame, law in cases(args.data):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                summary = backtest(frame.reset_index(drop=True), law=law, fit_kwargs={"seed": args.seed})["summary"]
            except ValueError as exc:
                print(f"{name}: skipped ({exc})")
                continue
        summary = {"dataset": name, **summary, "seconds": round(time.perf_counter() - start, 1)}
        rows.append(summary)
        print(summary, flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return table


if __name__ == "__main__":
    main()
