"""Scoring fits on runs they did not see: held-out predictive density, errors, interval coverage, calibration.

Every function here takes fits (and a held-out :class:`~bayes_scaling.data.Sweep`) or tables of results and
returns numbers or tables; none samples. The workflows that refit on a training split and then call these are in
:mod:`bayes_scaling.workflows`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.forecast import loss_draws
from bayes_scaling.intervals import equal_tailed
from bayes_scaling.results import Result

if TYPE_CHECKING:
    from bayes_scaling.data import Sweep
    from bayes_scaling.pointfit import PointFit
    from bayes_scaling.posterior import Fit

__all__ = ["BacktestScores", "backtest_scores", "calibration_summary", "coverage_band", "holdout_scores",
           "log_predictive_density", "median_relative_error"]


def log_predictive_density(fit: Fit, sweep: Sweep) -> np.ndarray:
    """Pointwise log predictive density of runs in ``sweep`` under ``fit``'s posterior.

    ``log( mean_s p(log loss_i | θ_s) )`` for each run, on the log-loss scale (the same
    scale as the likelihood and PSIS-LOO), averaged over posterior draws θ_s.
    """
    from scipy import special

    logp = fit.log_likelihood(sweep.frame)
    return special.logsumexp(logp, axis=0) - math.log(logp.shape[0])


def median_relative_error(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Median absolute relative error of predicted losses, in percent."""
    return float(np.median(np.abs(np.asarray(predicted) / np.asarray(observed) - 1)) * 100)


def _sum_se(values: np.ndarray) -> float:
    """Standard error of a sum of pointwise values."""
    return float(math.sqrt(len(values)) * values.std(ddof=1)) if len(values) > 1 else float("nan")


def holdout_scores(fits: Mapping[str, Fit], test: Sweep) -> pd.DataFrame:
    """Score fits of several laws (to the same training runs) on held-out runs.

    Returns
    -------
    pandas.DataFrame
        Per law, best first: ``elpd_holdout`` (summed log predictive density of the held-out runs) with ``se``,
        ``elpd_diff`` to the best and ``dse`` (standard error of the paired difference to the best law), ``mape``
        (median absolute relative error of the posterior median forecast, in %), ``n_train``, ``n_holdout`` and
        ``cutoff_N`` (the smallest held-out N).
    """
    if not fits:
        raise ValueError("give at least one fit to score")
    rows, pointwise = [], {}
    for name, result in fits.items():
        lpd = pointwise[name] = log_predictive_density(result, test)
        median = np.median(np.exp(result.log_mean(test.frame)), axis=0)
        rows.append({"law": name, "elpd_holdout": float(lpd.sum()), "se": _sum_se(lpd),
                     "mape": median_relative_error(median, test.column("loss")), "n_train": len(result.sweep),
                     "n_holdout": len(test), "cutoff_N": float(test.column("N").min())})
    table = pd.DataFrame(rows).set_index("law").sort_values("elpd_holdout", ascending=False)
    best = pointwise[table.index[0]]
    table.insert(2, "elpd_diff", table["elpd_holdout"] - table["elpd_holdout"].iloc[0])
    table.insert(3, "dse", [_sum_se(pointwise[name] - best) for name in table.index])
    return table


@dataclass(frozen=True)
class BacktestScores(Result):
    """A fit scored on held-out larger runs.

    Attributes
    ----------
    summary : dict
        ``law``, ``n_train``, ``n_holdout``, ``cutoff_N``, ``coverage_<p>`` (fraction of held-out runs inside
        the central ``p`` predictive interval), ``mape`` (median absolute relative error of the posterior
        median, %), ``mape_point_fit`` when a point fit was scored, ``max_r_hat`` and ``divergences``.
    runs : pandas.DataFrame
        The held-out runs with the posterior median, the predictive intervals and the point fit's prediction.
    fit : Fit
        The fit that was scored.
    """

    kind: ClassVar[str] = "backtest"

    summary: dict[str, Any]
    runs: pd.DataFrame
    fit: Any

    def diagnostics(self) -> Any:
        """The scored fit's :class:`~bayes_scaling.inference.Diagnostics`."""
        return self.fit.diagnostics()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling backtest --json``): the summary scores and the held-out runs."""
        from bayes_scaling.outputs import json_records

        return {"summary": self.summary, "runs": json_records(self.runs),
                "diagnostics": self.diagnostics().to_dict()}


def backtest_scores(fit: Fit, test: Sweep, *, probs: Sequence[float] = (0.5, 0.9), seed: int = 0,
                    point: PointFit | None = None) -> BacktestScores:
    """Coverage and errors of ``fit``'s forecasts (and optionally a point fit's) on the held-out runs ``test``."""
    draws = loss_draws(fit, test.frame, seed=seed)
    pred = draws["pred"]
    loss = test.column("loss")
    runs = test.frame[[c for c in ("N", "D", "C", "loss") if c in test.frame]].copy()
    runs["median"] = np.median(draws["mean"], axis=0)
    summary: dict[str, Any] = {"law": fit.law.name, "n_train": len(fit.sweep), "n_holdout": len(test),
                               "cutoff_N": float(test.column("N").min())}
    for p in probs:
        low, high = equal_tailed(pred, p)
        runs[f"pred_lower_{p:g}"], runs[f"pred_upper_{p:g}"] = low, high
        summary[f"coverage_{p:g}"] = float(np.mean((loss >= low) & (loss <= high)))
    summary["mape"] = median_relative_error(runs["median"], loss)
    if point is not None:
        runs["point_fit"] = point.predict(runs["N"], runs["D"])
        summary["mape_point_fit"] = median_relative_error(runs["point_fit"], loss)
    diagnostics = fit.diagnostics()
    summary["max_r_hat"] = diagnostics.max_r_hat
    summary["divergences"] = diagnostics.divergences
    return BacktestScores(summary=summary, runs=runs, fit=fit)


def coverage_band(n: int, p: float, level: float = 0.99) -> tuple[float, float]:
    """Central binomial interval for the coverage fraction of ``n`` independent checks at nominal ``p``."""
    from scipy import stats

    tail = (1 - level) / 2
    return stats.binom.ppf(tail, n, p) / n, stats.binom.ppf(1 - tail, n, p) / n


def calibration_summary(table: pd.DataFrame, level: float = 0.99) -> pd.DataFrame:
    """Coverage per parameter and level, with the binomial band of nominal coverage and whether it is inside.

    ``table`` is :func:`bayes_scaling.workflows.calibration`'s: one row per (simulation, parameter, level).
    """
    out = table.groupby(["param", "prob"])["inside"].agg(["mean", "count"]).reset_index()
    bands = [coverage_band(int(n), p, level) for n, p in zip(out["count"], out["prob"], strict=True)]
    out["band_low"] = [b[0] for b in bands]
    out["band_high"] = [b[1] for b in bands]
    out["ok"] = (out["mean"] >= out["band_low"]) & (out["mean"] <= out["band_high"])
    return out.rename(columns={"mean": "coverage", "count": "sims"})
