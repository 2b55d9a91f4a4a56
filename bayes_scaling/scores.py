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
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.results import Result

if TYPE_CHECKING:
    from bayes_scaling.data import Sweep
    from bayes_scaling.pointfit import PointFit
    from bayes_scaling.posterior import Fit

__all__ = ["BacktestScores", "CallableScores", "backtest_scores", "calibration_summary", "coverage_band",
           "holdout_scores", "log_predictive_density", "median_relative_error"]


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


class CallableScores(dict):
    """What ``BacktestScores.summary`` is: call it for the scores (a dict); indexing it directly is deprecated."""

    def __call__(self) -> dict[str, Any]:
        """The scores, as a plain dict."""
        return dict(self)

    def __getitem__(self, key: Any) -> Any:
        import warnings

        warnings.warn("BacktestScores.summary is a method now: use result.summary()[key] (or result.scores)",
                      DeprecationWarning, stacklevel=2)
        return super().__getitem__(key)


@dataclass(frozen=True)
class BacktestScores(Result):
    """A fit scored on held-out larger runs.

    Attributes
    ----------
    scores : dict
        ``law``, ``n_train``, ``n_holdout``, ``cutoff_N``, ``coverage_<p>`` (fraction of held-out runs inside
        the central ``p`` predictive interval), ``mape`` (median absolute relative error of the posterior
        median, %), ``mape_point_fit`` when a point fit was scored, ``max_r_hat`` and ``divergences``; also
        what :meth:`summary` returns.
    runs : pandas.DataFrame
        A long table: each held-out run once per probability (``prob``), with the posterior median, the
        predictive interval (``pred_lower``/``pred_upper``), whether the run fell ``inside`` it, and the point
        fit's prediction.
    fit : Fit
        The fit that was scored.
    """

    kind: ClassVar[str] = "backtest"

    scores: dict[str, Any]
    runs: pd.DataFrame
    fit: Any

    @property
    def summary(self) -> Any:
        """The scores: call it, ``result.summary()`` (the result protocol).

        Indexing it directly, as before this release (``result.summary["mape"]``), still works with a
        ``DeprecationWarning``.
        """
        return CallableScores(self.scores)

    def diagnostics(self) -> Any:
        """The scored fit's :class:`~bayes_scaling.inference.Diagnostics`."""
        return self.fit.diagnostics()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling backtest --json``): the summary scores and the held-out runs."""
        from bayes_scaling.outputs import json_records

        return {"summary": dict(self.scores), "interval": self.runs.attrs.get("interval"),
                "runs": json_records(self.runs),
                "diagnostics": self.diagnostics().to_dict()}


def backtest_scores(fit: Fit, test: Sweep, *, probs: Sequence[float] = (0.5, 0.9), seed: int = 0,
                    point: PointFit | None = None) -> BacktestScores:
    """Coverage and errors of ``fit``'s forecasts (and optionally a point fit's) on the held-out runs ``test``."""
    draws = loss_draws(fit, test.frame, seed=seed)
    pred = draws["pred"]
    loss = test.column("loss")
    held = test.frame[[c for c in ("N", "D", "C", "loss") if c in test.frame]].reset_index(drop=True)
    held["median"] = np.median(draws["mean"], axis=0)
    summary: dict[str, Any] = {"law": fit.law.name, "n_train": len(fit.sweep), "n_holdout": len(test),
                               "cutoff_N": float(test.column("N").min())}
    if point is not None:
        held["point_fit"] = point.predict(held["N"], held["D"])
    parts = []
    for p in map(check_prob, probs):
        part = held.copy()
        part.insert(len(held.columns), "prob", p)
        part["pred_lower"], part["pred_upper"] = equal_tailed(pred, p)
        part["inside"] = (loss >= part["pred_lower"]) & (loss <= part["pred_upper"])
        summary[f"coverage_{p:g}"] = float(part["inside"].mean())
        parts.append(part)
    runs = interval_table(pd.concat(parts, ignore_index=True), long=True)
    summary["mape"] = median_relative_error(held["median"], loss)
    if point is not None:
        summary["mape_point_fit"] = median_relative_error(held["point_fit"], loss)
    diagnostics = fit.diagnostics()
    summary["max_r_hat"] = diagnostics.max_r_hat
    summary["divergences"] = diagnostics.divergences
    return BacktestScores(scores=summary, runs=runs, fit=fit)


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
    out["lower"] = [b[0] for b in bands]
    out["upper"] = [b[1] for b in bands]
    out["ok"] = (out["mean"] >= out["lower"]) & (out["mean"] <= out["upper"])
    return interval_table(out.rename(columns={"mean": "coverage", "count": "sims"}), level,
                          kind="binomial band of nominal coverage")
