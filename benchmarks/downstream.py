"""Downstream benchmark: forecast benchmark error of the large models through the loss (``make downstream``).

On ``../shared/data/gadre2024_downstream`` (Gadre et al. 2024), per training set (c4_original, rpj, rw_original):
fit the loss law (Chinchilla) and the link from loss to error on the models below 1e9 parameters, then forecast
the error of the held-out 1.4B and 6.9B models (nine in all) from their N and D alone, draw by draw through both
stages (:func:`bayes_scaling.downstream.chain`). Scored for the 17-task and the 46-task averages: median absolute
error and how many of the nine fall inside the 90% predictive interval, for both link forms; and, in the same run,
the paper's point protocol (a ``curve_fit`` of ``E - a exp(-b L)`` on its five models: the four small shapes at
20 tokens per parameter and the smallest at 16x that, applied to the held-out models' *true* losses).

Targets (issue 17): median absolute error <= 0.010 and at least 7 of 9 covered, for both averages.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling import datasets
from bayes_scaling.downstream import LINKS, chain, fit_downstream
from bayes_scaling.fitting import fit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
METRICS = {"17-task average": "err_avg_subset", "46-task average": "err_avg"}
HELD_OUT_N = 1e9


def paper_protocol(train: pd.DataFrame, test: pd.DataFrame, metric: str) -> np.ndarray:
    """Gadre et al.'s point fit on their five models, evaluated at the held-out models' true losses."""
    from scipy.optimize import curve_fit

    multiplier = train["name"].str.rsplit("-", n=1).str[1].astype(float)
    small = train["N"] < 5e8
    chosen = train[small & ((multiplier == 1.0) | ((train["N"] == train["N"].min()) & (multiplier == 16.0)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params, _ = curve_fit(lambda x, e, a, b: e - a * np.exp(-b * x), chosen["loss"], chosen[metric],
                              p0=(0.75, 3.0, 1.0), maxfev=20000)
    return params[0] - params[1] * np.exp(-params[2] * test["loss"].to_numpy())


def run(root: Path, seed: int = 1) -> pd.DataFrame:
    """One row per (metric, method, held-out model): observed, median, 90% predictive interval."""
    data = datasets.load("gadre2024_downstream", path=root)
    rows = []
    for name, group in data.groupby("dataset"):
        train, test = group[group["N"] < HELD_OUT_N], group[group["N"] >= HELD_OUT_N]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_fit = fit(train, seed=seed, warn=False)
            for label, metric in METRICS.items():
                for form in LINKS:
                    link = fit_downstream(train, metric, form=form, seed=seed)
                    table = chain(loss_fit, link, N=test["N"].to_numpy(), D=test["D"].to_numpy(), prob=0.9, seed=seed)
                    for i, y in enumerate(test[metric].to_numpy()):
                        rows.append({"metric": label, "method": f"bayes {form}", "dataset": name,
                                     "N": test["N"].iloc[i], "observed": y, "median": table["median"].iloc[i],
                                     "lower": table["pred_lower"].iloc[i], "upper": table["pred_upper"].iloc[i],
                                     "max_r_hat": link.diagnostics().max_r_hat})
                point = paper_protocol(train, test, metric)
                for i, y in enumerate(test[metric].to_numpy()):
                    rows.append({"metric": label, "method": "paper point fit (true losses)", "dataset": name,
                                 "N": test["N"].iloc[i], "observed": y, "median": point[i], "lower": np.nan,
                                 "upper": np.nan, "max_r_hat": np.nan})
        print(f"{name}: {len(train)} models fitted, {len(test)} held out", flush=True)
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per metric and method: median absolute error, covered / held out, max R-hat of the links."""
    runs = runs.assign(abs_error=(runs["median"] - runs["observed"]).abs(),
                       covered=(runs["observed"] >= runs["lower"]) & (runs["observed"] <= runs["upper"]))
    return runs.groupby(["metric", "method"], sort=False).agg(
        median_abs_error=("abs_error", "median"), covered=("covered", "sum"), held_out=("observed", "size"),
        max_r_hat=("max_r_hat", "max"))


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not (args.data / "gadre2024_downstream").is_dir():
        raise SystemExit(f"no shared data at {args.data / 'gadre2024_downstream'}")
    table = summarise(run(args.data, seed=args.seed))
    with pd.option_context("display.width", 200):
        print("\nHeld-out 1.4B and 6.9B models (errors as fractions: 0.010 = 1 point):")
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nTargets (default link, exponential):")
    for label in METRICS:
        row = table.loc[(label, "bayes exponential")]
        ok = row["median_abs_error"] <= 0.010 and row["covered"] >= 7
        print(f"  [{'x' if ok else ' '}] {label}: median abs. error {row['median_abs_error']:.4f} (<= 0.010), "
              f"{int(row['covered'])} of {int(row['held_out'])} inside the 90% interval (>= 7)")
    return table


if __name__ == "__main__":
    main()
