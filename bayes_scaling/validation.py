"""Is the uncertainty honest? Backtests on held-out larger runs and coverage calibration on simulated sweeps."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.comparison import median_relative_error, split_holdout
from bayes_scaling.data import load_sweep
from bayes_scaling.fitting import fit
from bayes_scaling.forecast import loss_draws
from bayes_scaling.inference import ConvergenceWarning
from bayes_scaling.pointfit import huber_point_fit
from bayes_scaling.simulate import reference_of, simulate_sweep

__all__ = ["backtest", "calibration", "calibration_summary", "coverage_band"]


def backtest(
    data: Any,
    *,
    law: str = "chinchilla",
    cutoff_N: float | None = None,
    probs: Sequence[float] = (0.5, 0.9),
    point_fit: bool = True,
    fit_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit on the smaller models only and score the held-out larger ones.

    Parameters
    ----------
    data : DataFrame, path or Sweep
    law : str
        Law to fit.
    cutoff_N : float, optional
        Runs with N ≥ cutoff_N are held out (default: the largest quarter of distinct sizes).
    probs : sequence of float
        Predictive-interval levels whose coverage is reported.
    point_fit : bool
        Also score the Chinchilla-style point fit (Huber on log residuals + L-BFGS) as a baseline
        (only for the Chinchilla law's form).
    fit_kwargs : mapping, optional
        Passed to :func:`bayes_scaling.fit`.
    seed : int
        Seed of the predictive noise.

    Returns
    -------
    dict
        ``summary``: n_train, n_holdout, cutoff_N, coverage at each level (fraction of held-out runs
        inside the predictive interval), ``mape`` (median absolute relative error of the posterior
        median, %) and ``mape_point_fit``; ``runs``: the held-out runs with forecasts; ``fit``.
    """
    train, test = split_holdout(load_sweep(data), cutoff_N=cutoff_N)
    result = fit(train, law=law, **{"warn": False, **dict(fit_kwargs or {})})
    draws = loss_draws(result, test.frame, seed=seed)
    pred = draws["pred"]
    loss = test.column("loss")
    runs = test.frame[["N", "D", "C", "loss"]].copy()
    runs["median"] = np.median(draws["mean"], axis=0)
    summary: dict[str, Any] = {
        "law": law,
        "n_train": len(train),
        "n_holdout": len(test),
        "cutoff_N": float(test.column("N").min()),
    }
    for p in probs:
        low, high = np.quantile(pred, [(1 - p) / 2, (1 + p) / 2], axis=0)
        runs[f"pred_lower_{p:g}"], runs[f"pred_upper_{p:g}"] = low, high
        summary[f"coverage_{p:g}"] = float(np.mean((loss >= low) & (loss <= high)))
    summary["mape"] = median_relative_error(runs["median"], loss)
    if point_fit and {"N", "D"} <= set(result.law.inputs):
        point = huber_point_fit(train)
        runs["point_fit"] = point.predict(runs["N"], runs["D"])
        summary["mape_point_fit"] = median_relative_error(runs["point_fit"], loss)
    summary["max_r_hat"] = result.diagnostics().max_r_hat
    summary["divergences"] = result.diagnostics().divergences
    return {"summary": summary, "runs": runs, "fit": result}


def coverage_band(n: int, p: float, level: float = 0.99) -> tuple[float, float]:
    """Central binomial interval for the coverage fraction of ``n`` independent checks at nominal ``p``."""
    from scipy import stats

    tail = (1 - level) / 2
    return stats.binom.ppf(tail, n, p) / n, stats.binom.ppf(1 - tail, n, p) / n


def calibration(
    law: str,
    draw_params: Callable[[np.random.Generator, Mapping[str, float]], Mapping[str, float]],
    *,
    N: np.ndarray,
    D: np.ndarray,
    n_sims: int = 100,
    sigma: float = 0.01,
    probs: Sequence[float] = (0.5, 0.9),
    seed: int = 0,
    fit_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Coverage of posterior intervals over simulated sweeps with known parameters.

    For each simulation: draw parameters with ``draw_params(rng, reference)``, simulate runs at
    (N, D) with noise ``sigma`` on log-loss (its true value is recorded too), fit with the matching
    Normal likelihood, and record for each parameter whether the truth lies in the central ``p``
    posterior interval. Each fit's seed is drawn from ``seed`` (one in ``fit_kwargs`` is ignored).

    Returns
    -------
    pandas.DataFrame
        One row per (simulation, parameter, level): ``sim``, ``param``, ``prob``, ``inside``, plus
        the fit's ``max_r_hat`` and ``divergences``.
    """
    rng = np.random.default_rng(seed)
    reference = reference_of(N, D)
    rows = []
    for sim in range(n_sims):
        truth = dict(draw_params(rng, reference))
        data = simulate_sweep(law, truth, N=N, D=D, sigma=sigma, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            kwargs = {"warn": False, **dict(fit_kwargs or {}), "seed": int(rng.integers(2**31))}
            result = fit(data, law=law, likelihood="normal", **kwargs)
        diag = result.diagnostics()
        truth["sigma"] = sigma
        draws = result.draws(list(truth))
        for name, value in truth.items():
            for p in probs:
                low, high = np.quantile(draws[name], [(1 - p) / 2, (1 + p) / 2])
                rows.append({"sim": sim, "param": name, "prob": p, "inside": bool(low <= value <= high),
                             "max_r_hat": diag.max_r_hat, "divergences": diag.divergences})
        if progress is not None:
            progress(sim, rows[-1])
    return pd.DataFrame(rows)


def calibration_summary(table: pd.DataFrame, level: float = 0.99) -> pd.DataFrame:
    """Coverage per parameter and level, with the binomial band of nominal coverage and whether it is inside."""
    out = table.groupby(["param", "prob"])["inside"].agg(["mean", "count"]).reset_index()
    bands = [coverage_band(int(n), p, level) for n, p in zip(out["count"], out["prob"], strict=True)]
    out["band_low"] = [b[0] for b in bands]
    out["band_high"] = [b[1] for b in bands]
    out["ok"] = (out["mean"] >= out["band_low"]) & (out["mean"] <= out["band_high"])
    return out.rename(columns={"mean": "coverage", "count": "sims"})

