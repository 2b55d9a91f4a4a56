"""Constant scatter against scatter growing toward the sweep's edges, by PSIS-LOO on every public sweep.

Usage: ``python -m benchmarks.scatter [--data ../shared/data] [--only NAME]`` (``make scatter``).

For each case of the backtests (:func:`benchmarks.backtests.cases`), the default law is fitted twice with the
default sampling (``fit(scatter="constant")`` and ``fit(scatter="edges")``, see :mod:`bayes_scaling.scatter`) and
compared by PSIS-LOO: the difference of expected log predictive density (edges minus constant) with its standard
error, and the posterior median of the scatter's factor at the edge. The backtests measure the same choice on
held-out runs beyond the sweep (``--scatter edges`` there).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.data import load_sweep
from bayes_scaling.fitting import fit
from bayes_scaling.scatter import edge_names
from benchmarks.backtests import DEFAULT_DATA, cases


def compare_case(frame: pd.DataFrame, law: str, seed: int) -> dict[str, float]:
    """LOO of both scatters on one sweep."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep = load_sweep(frame[[c for c in ("N", "D", "C", "loss", "unique_tokens") if c in frame]])
        fits = {s: fit(sweep, law=law, seed=seed, scatter=s, extrapolation="none", warn=False)
                for s in ("constant", "edges")}
        loos = {s: az.loo(f.idata, pointwise=True) for s, f in fits.items()}
    pointwise = {s: np.asarray(loo.elpd_i).ravel() for s, loo in loos.items()}
    elpd = {s: float(v.sum()) for s, v in pointwise.items()}
    diff = pointwise["edges"] - pointwise["constant"]
    edges = fits["edges"]
    growth = edges.draws(edge_names(edges.info["scatter"]))
    return {"runs": len(sweep), "elpd_constant": elpd["constant"], "elpd_edges": elpd["edges"],
            "diff": float(np.sum(diff)), "se": float(np.sqrt(len(diff)) * np.std(diff)),
            **{f"{k}_median": float(np.median(v)) for k, v in growth.items()},
            "r_hat_edges": edges.diagnostics().max_r_hat}


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default=None)
    args = parser.parse_args(argv)
    rows = []
    for name, frame, law in cases(args.data):
        if args.only and args.only not in name:
            continue
        start = time.perf_counter()
        frame = frame.reset_index(drop=True)
        if law.startswith("data_constrained"):
            frame = frame.rename(columns={"U": "unique_tokens"})
        row = {"case": name, **compare_case(frame, law, args.seed)}
        rows.append(row)
        print(f"{name}: elpd edges - constant {row['diff']:+.1f} (se {row['se']:.1f}) "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows).set_index("case")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3))
    better = int((table["diff"] > 2 * table["se"]).sum())
    worse = int((table["diff"] < -2 * table["se"]).sum())
    print(f"edges better by > 2 se on {better} of {len(table)} sweeps, worse on {worse}; total elpd difference "
          f"{table['diff'].sum():+.1f}")
    return table


if __name__ == "__main__":
    main()
