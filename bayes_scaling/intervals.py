"""Intervals: one default probability, one check, one kind of interval, one column scheme, one quantile helper.

Every interval this package reports is **equal-tailed**: the ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles of
the draws, parameter tables included. The probability defaults to :data:`rc` ``["prob"]`` (0.9), settable once
for a session, like ArviZ 1.x's ``rcParams["stats.ci_prob"]``::

    import bayes_scaling as bs
    bs.intervals.rc["prob"] = 0.8   # every later default interval is 80%

**One column scheme** for the bounds, in every table, ``--json`` payload and report::

    [<quantity>_][pred_](lower|upper)

``lower``/``upper`` bound the table's main quantity (a forecast's loss, a parameter); ``<quantity>_lower`` another
one (``loss_lower``, ``N_lower``); ``pred_`` marks the predictive interval of one new run, beside the credible
interval of the expected value. A table holding several probabilities is long: one row per point and
probability, with a ``prob`` column. Every table states its interval in ``table.attrs["interval"]`` (kind and
probability) and prints it under the table. Old column names (``hdi_low``/``hdi_high``, ``band_low``/``band_high``,
``q05``/``q95``, ``<name>_low``/``<name>_high``) still work for one release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BOOTSTRAP", "DEPRECATED_COLUMNS", "KIND", "SUMMARY_PROB", "IntervalTable", "check_prob", "default_prob",
           "equal_tailed", "grid_quantiles", "grid_weights", "interval_statement", "interval_table", "rc", "tails",
           "weighted_equal_tailed", "weighted_quantiles"]

#: Settings read when an interval probability is not given (``prob=None``).
rc: dict[str, Any] = {"prob": 0.9}
#: What kind of interval every table reports (stated in tables and ``--json``).
KIND = "equal-tailed"
#: The kind of the intervals of bootstrap resamples (IsoFLOP analyses), not of a posterior.
BOOTSTRAP = "equal-tailed (bootstrap)"


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


#: Probability of the interval that the saved summary of a grid posterior states (the extrapolation term's scale,
#: the shared prior's): fixed, so a saved file says the same whatever ``rc["prob"]`` is set to.
SUMMARY_PROB = 0.9


def weighted_equal_tailed(values: Any, weights: Any, prob: float | None, *, median: bool = False
                          ) -> tuple[np.ndarray, ...]:
    """:func:`equal_tailed` for weighted draws or a grid posterior (:func:`weighted_quantiles`).

    Returns ``(lower, upper)``, or ``(lower, median, upper)`` with ``median=True``, each of shape ``weights``'
    leading shape.
    """
    low, high = tails(prob)
    return tuple(weighted_quantiles(values, weights, (low, 0.5, high) if median else (low, high)))


def grid_weights(log_density: Any) -> np.ndarray:
    """The probabilities of a grid posterior (any shape) from its unnormalised log density, summing to one."""
    log_density = np.asarray(log_density, float)
    weights = np.exp(log_density - log_density.max())
    return weights / weights.sum()


def grid_quantiles(grid: Any, weights: Any, probs: Sequence[float] | None = None) -> list[float]:
    """Quantiles of a grid posterior at ``probs``; by default its :data:`SUMMARY_PROB` interval.

    The default is ``[lower, median, upper]`` of the equal-tailed interval, what the extrapolation term and the
    shared prior report.
    """
    if probs is None:
        return [float(q) for q in weighted_equal_tailed(grid, weights, SUMMARY_PROB, median=True)]
    return [float(q) for q in weighted_quantiles(grid, weights, probs)]


#: Column names of earlier releases, read through :class:`IntervalTable` with a ``DeprecationWarning``.
DEPRECATED_COLUMNS: dict[str, str] = {"hdi_low": "lower", "hdi_high": "upper", "band_low": "lower",
                                      "band_high": "upper", "q05": "lower", "q95": "upper",
                                      "C_low": "C_min", "C_high": "C_max"}
_OLD_SUFFIX = re.compile(r"^(?P<name>.+)_(?P<end>low|high)$")
_OLD_WIDE = re.compile(r"^(?P<bound>(?:pred_)?(?:lower|upper))_(?P<prob>0?\.\d+)$")


class IntervalTable(pd.DataFrame):
    """A table of estimates with interval bounds: a :class:`pandas.DataFrame` that states its interval.

    ``attrs["interval"]`` holds the kind (:data:`KIND`) and the probability, printed under the table. Columns
    renamed in this release (:data:`DEPRECATED_COLUMNS`, ``<name>_low``/``<name>_high``, and a table's own
    ``attrs["renamed"]``) are still read, with a
    ``DeprecationWarning``; the wide columns of several probabilities (``lower_0.9``) raise a ``KeyError`` that
    says how to select them from the long table.
    """

    @property
    def _constructor(self) -> type[IntervalTable]:
        return IntervalTable

    def _current(self, key: Any) -> Any:
        if not isinstance(key, str) or key in self.columns:
            return key
        new = self.attrs.get("renamed", {}).get(key, DEPRECATED_COLUMNS.get(key))
        match = _OLD_SUFFIX.match(key)
        if new is None and match is not None:
            new = f"{match['name']}_{'lower' if match['end'] == 'low' else 'upper'}"
        if new is not None and new in self.columns:
            warnings.warn(f"column {key!r} is now {new!r} (one scheme for interval bounds: "
                          "[<quantity>_][pred_](lower|upper)); the old name goes in the next release",
                          DeprecationWarning, stacklevel=3)
            return new
        wide = _OLD_WIDE.match(key)
        if wide is not None and "prob" in self.columns:
            raise KeyError(f"{key!r}: tables of several probabilities are long now, one row per point and prob; "
                           f"use table[table['prob'] == {float(wide['prob']):g}][{wide['bound']!r}]")
        return key

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, list):
            key = [self._current(k) for k in key]
        return super().__getitem__(self._current(key))

    def to_payload(self, rows: str = "rows") -> dict[str, Any]:
        """JSON-ready form, what ``--json`` prints: ``{"interval": {"kind", "prob"}, rows: [...]}``."""
        from bayes_scaling.outputs import json_records

        flat = pd.DataFrame(self).reset_index() if self.index.name or self.index.nlevels > 1 else pd.DataFrame(self)
        return {"interval": dict(self.attrs.get("interval", {})), rows: json_records(flat)}

    def __repr__(self) -> str:
        text = self.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-")
        stated = interval_statement(self)
        return f"{text}\n[{stated}]" if stated else text


def interval_statement(table: Any) -> str:
    """How a table's intervals were made, in words (``"intervals: equal-tailed, 90%"``); ``""`` if it says not."""
    interval = getattr(table, "attrs", {}).get("interval")
    if not interval:
        return ""
    level = "probability by row (prob)" if interval.get("prob") is None else f"{interval['prob']:.0%}"
    return f"intervals: {interval['kind']}, {level}"


def interval_table(table: pd.DataFrame, prob: float | None = None, *, long: bool = False,
                   kind: str = KIND, renamed: dict[str, str] | None = None) -> IntervalTable:
    """``table`` as an :class:`IntervalTable` that states its interval.

    The probability is ``prob`` (None: the default), or with ``long=True`` several probabilities, one per row in
    the table's ``prob`` column. ``renamed`` maps this table's old column names to new ones (read with a
    ``DeprecationWarning``).
    """
    out = IntervalTable(table)
    out.attrs = {**table.attrs, "interval": {"kind": kind, "prob": None if long else check_prob(prob)}}
    if renamed:
        out.attrs["renamed"] = dict(renamed)
    return out
