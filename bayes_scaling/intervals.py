"""Intervals: one default probability, one check, one kind of interval, one quantile helper.

Every interval this package reports is **equal-tailed**: the ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles of
the draws (the parameter table of :meth:`~bayes_scaling.posterior.Fit.summary` is the one exception, an HDI,
which its column names say: ``hdi_low``/``hdi_high``). The probability defaults to :data:`rc` ``["prob"]`` (0.9),
settable once for a session, like ArviZ 1.x's ``rcParams["stats.ci_prob"]``::

    import bayes_scaling as bs
    bs.intervals.rc["prob"] = 0.8   # every later default interval is 80%
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["KIND", "check_prob", "default_prob", "equal_tailed", "rc", "tails", "weighted_quantiles"]

#: Settings read when an interval probability is not given (``prob=None``).
rc: dict[str, Any] = {"prob": 0.9}
#: What kind of interval every table reports (stated in tables and ``--json``).
KIND = "equal-tailed"


def check_prob(prob: float | None) -> float:
    """``prob`` as a float strictly between 0 and 1 (``None``: the default, ``rc["prob"]``), else ``ValueError``."""
    if prob is None:
        prob = rc["prob"]
    try:
        value = float(prob)
    except (TypeError, ValueError):
        raise ValueError(f"prob must be a number between 0 and 1 (exclusive), got {prob!r}") from None
    if not 0 < value < 1:
        raise ValueError(f"prob must be between 0 and 1 (exclusive), got {prob!r}")
    return value


def default_prob() -> float:
    """The interval probability used when none is given (``rc["prob"]``, checked)."""
    return check_prob(None)


def tails(prob: float | None) -> tuple[float, float]:
    """The lower and upper quantile levels of an equal-tailed interval of probability ``prob``."""
    p = check_prob(prob)
    return (1 - p) / 2, (1 + p) / 2


def equal_tailed(values: Any, prob: float | None, *, axis: int | None = 0, median: bool = False,
                 finite: bool = False, skip_nan: bool = False, method: str = "linear") -> tuple[np.ndarray, ...]:
    """Lower and upper bounds (and the median between them, with ``median=True``) of an equal-tailed interval.

    Parameters
    ----------
    values : array
        Draws; the quantiles are taken along ``axis``.
    prob : float or None
        Interval probability (None: the default).
    median : bool
        Return ``(lower, median, upper)`` instead of ``(lower, upper)``.
    finite : bool
        Leave non-finite draws out (1-D ``values`` only): e.g. draws for which a target is unreachable. All NaN
        when no draw is finite.
    skip_nan : bool
        Ignore NaN draws along ``axis`` (any shape; ``numpy.nanquantile``).
    method : str
        ``numpy.quantile``'s method; ``"inverted_cdf"`` returns draws themselves (never interpolates between an
        infinite draw and a finite one).
    """
    low, high = tails(prob)
    levels: Sequence[float] = (low, 0.5, high) if median else (low, high)
    values = np.asarray(values, dtype=float)
    if finite:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return tuple(np.full((), np.nan) for _ in levels)
    quantile = np.nanquantile if skip_nan else np.quantile
    return tuple(quantile(values, levels, axis=axis, method=method))


def weighted_quantiles(values: Any, weights: Any, levels: Any) -> np.ndarray:
    """Quantiles of weighted draws: the smallest value whose cumulative weight reaches each level.

    ``values`` has shape (draws,), ``weights`` (..., draws) summing to 1 along the last axis; the result has
    shape (levels, ...). Used for reweighted posteriors (next-run designs) and grid posteriors (the
    extrapolation term's scale).
    """
    values = np.asarray(values, dtype=float)
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(weights, dtype=float)[..., order], axis=-1)
    ranked = values[order]
    return np.stack([ranked[np.minimum((cumulative < level).sum(axis=-1), len(values) - 1)]
                     for level in np.atleast_1d(levels)])
