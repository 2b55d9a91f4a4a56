"""Does data stop paying at a fixed number of tokens per parameter? Point fits on the backtests' over-training splits.

Issue 28's worst misses are over-training: fitted up to ~50 tokens per parameter, the Chinchilla form keeps the
loss falling as ``B / D^beta`` at fixed N, while small models' losses flatten (marin_isoflop: the 156M model's loss
falls 3% from 82 to 2,750 tokens per parameter; the law says 12%). This benchmark compares, by Huber point fits on
each backtest split's training runs (the splits of :mod:`benchmarks.backtests`: ``tpp`` holds out the largest
tokens-per-parameter levels, ``budget`` the largest compute budget), the Chinchilla form with a form whose data
term saturates beyond ``K`` tokens per parameter::

    L = E + A / N^alpha + B / D_eff^beta,   D_eff = D (1 + D / (K N))^(-s)

``s = 0`` is the Chinchilla form; ``s = 1`` stops the data term at ``K N`` tokens ("hard"); in between, beyond
``K`` tokens per parameter the data exponent falls from ``beta`` to ``beta (1 - s)`` ("partial", ``s`` fitted).
It prints each split's median absolute relative error and mean signed error (bias) of the held-out runs, in %.
Point fits only (``scipy.optimize.least_squares``, soft-L1 on log residuals with scale 1e-3, the Huber fit's
parameters and six values of ``K`` as starts): a screen for a law to add, not a Bayesian result.

Usage: ``python -m benchmarks.saturation [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from bayes_scaling.pointfit import huber_point_fit
from benchmarks.backtests import cases, splits

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Starting values of K (tokens per parameter) for the saturating fits.
K_STARTS = (30.0, 100.0, 300.0, 1e3, 1e4, 1e6)


def saturating_loss(theta: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The saturating form at ``theta`` = (log E, log A, log B, alpha, beta, log K, s)."""
    log_e, log_a, log_b, alpha, beta, log_k, s = theta
    effective = d * (1.0 + d / (np.exp(log_k) * n)) ** (-s)
    return np.exp(log_e) + np.exp(log_a) / n**alpha + np.exp(log_b) / effective**beta


def fit_saturating(train: pd.DataFrame, *, hard: bool) -> np.ndarray:
    """Best soft-L1 fit of :func:`saturating_loss` to ``train`` (``hard``: ``s`` fixed at 1)."""
    n, d = train["N"].to_numpy(float), train["D"].to_numpy(float)
    y = np.log(train["loss"].to_numpy(float))
    start = huber_point_fit(train)
    low = [-5.0, -10.0, -10.0, 0.01, 0.01, 0.0, 0.0]
    high = [3.0, 40.0, 40.0, 3.0, 3.0, np.log(1e9), 1.0]
    free = slice(None) if not hard else slice(0, 6)  # hard: s stays at 1
    best = None
    for k in K_STARTS:
        theta = [np.log(max(start.E, 1e-3)), np.log(start.A), np.log(start.B), start.alpha, start.beta, np.log(k),
                 1.0 if hard else 0.5]

        def residuals(part: np.ndarray, theta: list = theta) -> np.ndarray:
            full = np.array(theta, float)
            full[free] = part
            return np.log(saturating_loss(full, n, d)) - y

        part0 = np.clip(np.array(theta, float)[free], np.array(low)[free] + 1e-9, np.array(high)[free] - 1e-9)
        try:
            result = least_squares(residuals, part0, loss="soft_l1", f_scale=1e-3,
                                   bounds=(np.array(low)[free], np.array(high)[free]))
        except (ValueError, FloatingPointError):
            continue
        if best is None or result.cost < best[0]:
            full = np.array(theta, float)
            full[free] = result.x
            best = (result.cost, full)
    if best is None:
        raise RuntimeError("no saturating fit converged")
    return best[1]


def run(root: Path) -> pd.DataFrame:
    """One row per sweep and split (``budget``, ``tpp``): errors of the three forms' point forecasts."""
    rows = []
    for case, frame, law in cases(root):
        if law != "chinchilla":
            continue
        frame = frame.reset_index(drop=True)
        for split, train in splits(frame, law):
            if split not in ("budget", "tpp"):
                continue
            fitted, held = frame[train], frame[~train]
            n, d, y = held["N"].to_numpy(float), held["D"].to_numpy(float), held["loss"].to_numpy(float)
            forecasts = {"chinchilla": huber_point_fit(fitted).predict(n, d)}
            hard, partial = fit_saturating(fitted, hard=True), fit_saturating(fitted, hard=False)
            forecasts["hard"], forecasts["partial"] = saturating_loss(hard, n, d), saturating_loss(partial, n, d)
            row = {"case": case, "split": split, "held_out": len(held),
                   "max_fitted_tpp": float((fitted["D"] / fitted["N"]).max()),
                   "K_hard": float(np.exp(hard[5])), "K_partial": float(np.exp(partial[5])), "s_partial": partial[6]}
            for name, forecast in forecasts.items():
                relative = forecast / y - 1
                row[f"median_error_{name}"] = 100 * float(np.median(np.abs(relative)))
                row[f"bias_{name}"] = 100 * float(np.mean(relative))
            rows.append(row)
            print(f"{case} {split}: done", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"no shared data at {args.data}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = run(args.data)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(2).to_string(index=False))
        errors = [c for c in table.columns if c.startswith("median_error_")]
        print("\nMedian over splits of the median error (%):")
        print(table.groupby("split")[errors].median().round(2).to_string())
        print("\nSplits where each form beats the Chinchilla form:")
        for name in ("hard", "partial"):
            better = table[f"median_error_{name}"] < table["median_error_chinchilla"]
            print(f"  {name}: " + ", ".join(f"{s} {int(better[table['split'] == s].sum())} of "
                                           f"{int((table['split'] == s).sum())}" for s in ("budget", "tpp")))
    return table


if __name__ == "__main__":
    main()
