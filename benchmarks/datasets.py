"""Fit every public sweep: exponents per dataset (and per group), then one hierarchical fit across them.

Usage: ``python -m benchmarks.datasets [--data ../shared/data] [--processes 2] [--draws 1000]``
(or ``make datasets``). Each dataset is loaded with :func:`bayes_scaling.datasets.load` and its
recommended rows (``query="default"``), split by its grouping column, and fitted with the law that suits
it (Chinchilla form for L(N, D) sweeps, the data-constrained law for Muennighoff et al., L(N) for Clark
et al.'s fixed-token dense models) via :func:`bayes_scaling.fit_many`. The hierarchical fit shares alpha and
beta across every L(N, D) group (Muennighoff's single-epoch runs included) with E and the term levels
partially pooled.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import pandas as pd

import bayes_scaling as bs
from bayes_scaling.datasets import load

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: dataset -> (law, rows query or "default", grouping column or None)
PLAN: dict[str, tuple[str, str | None, str | None]] = {
    "chinchilla_epoch": ("chinchilla", None, None),
    "gadre2024": ("chinchilla", None, "dataset"),
    "li2025_misfitting": ("chinchilla", "default", None),
    "marin_isoflop": ("chinchilla", None, "dataset"),
    "muennighoff2023_datablations": ("data_constrained", "default", None),
    "porian2024": ("chinchilla", "default", "setup"),
    "clark2022_routing": ("params", "default", None),
}
EXPONENTS = ("alpha", "beta")


def _fmt(row: pd.Series, name: str) -> str:
    if name not in row or pd.isna(row[name]):
        return ""
    return f"{row[name]:.3f} [{row[f'{name}_lower']:.3f}, {row[f'{name}_upper']:.3f}]"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the shared sweeps")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (4 chains)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    pd.set_option("display.width", 250)
    rows, pooled = [], []
    for name, (law, query, group) in PLAN.items():
        frame = load(name, path=args.data, query=query)
        start = time.perf_counter()
        many = bs.fit_many(frame, by=group, laws=law, seed=0, processes=args.processes, draws=args.draws,
                           tune=args.draws)
        table = many.table([*EXPONENTS, "E"])
        for _, row in table.iterrows():
            rows.append({
                "dataset": name, "group": row[group] if group else "", "law": law, "runs": int(row["runs"]),
                **{e: _fmt(row, e) for e in EXPONENTS if e in table.columns}, "E": _fmt(row, "E"),
                "max_r_hat": round(row["max_r_hat"], 3), "min_ess": int(row["min_ess_bulk"]),
                "divergences": int(row["divergences"]),
            })
        print(f"{name}: {len(table)} fits in {time.perf_counter() - start:.0f} s", flush=True)
        if law == "chinchilla" or name == "muennighoff2023_datablations":
            part = frame if law == "chinchilla" else frame[frame["epochs"] <= 1]
            label = part[group].astype(str) if group else ""
            pooled.append(part[["N", "D", "C", "loss"]].assign(sweep=(name + (":" + label if group else ""))))
    print("\nPer dataset (90% equal-tailed intervals):")
    print(pd.DataFrame(rows).fillna("").to_string(index=False))

    everything = pd.concat(pooled, ignore_index=True)
    start = time.perf_counter()
    hier = bs.fit_hierarchical(everything, "sweep", seed=0, draws=args.draws, tune=args.draws, warn=False)
    diag = hier.diagnostics()
    print(f"\nHierarchical chinchilla fit across {len(hier.groups)} sweeps ({len(everything)} runs) in "
          f"{time.perf_counter() - start:.0f} s; max R-hat {diag.max_r_hat:.3f}, min ESS {diag.min_ess_bulk:.0f}, "
          f"divergences {diag.divergences}")
    print(hier.summary().loc[["alpha", "beta", "E", "E_tau", "log_n_term_tau", "log_d_term_tau"]]
          .to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
