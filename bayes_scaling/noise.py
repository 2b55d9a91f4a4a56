"""Measurement noise split in its parts: evaluation noise, run-to-run (seed) noise, and the scatter around the law.

A run's measured log-loss differs from the law for three reasons: the eval set is finite (**evaluation noise**,
known when the data gives a confidence interval of each loss, e.g. ``loss_c4_val_lo95``/``loss_c4_val_hi95`` in
Gadre et al. 2024), training the same model again with another seed gives another loss (**seed noise**, seen
only where the sweep repeats a run: rows with the same inputs in the same group), and the law is not exact at
that point (**scatter** around the law, ``sigma``). A paired comparison of recipes must not read either kind of
measurement noise as a recipe effect, and it must not read repeated runs as independent evidence about the law.

:class:`NoiseSplit` describes this for a sweep; :func:`bayes_scaling.model.build_model` (``split=``) then uses

* for a run measured once: ``log y ~ StudentT(nu, log L(x), sqrt(sigma^2 + seed^2 + s_i^2))``;
* for the runs of a **replicate cell** (same group and inputs): a shared cell effect ``eta ~ Normal(0, sigma)``
  and ``log y_j = log L(x) + eta + e_j``, ``e_j ~ Normal(0, seed^2 + s_j^2)``, integrated over ``eta`` in closed
  form (so a cell of k runs counts once for the law, not k times, and LOO leaves whole cells out);

where ``s_i`` is the known evaluation noise of run i (0 without an interval) and ``seed`` the seed noise, a free
parameter only when the sweep has replicate cells. Rows that repeat another row exactly (same inputs, same loss
to the last digit) are copies of one run, not replicates: :func:`find_split` drops them with a warning, since
two identical losses would otherwise read as proof of zero seed noise.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.data import DataError, DataWarning, Sweep

__all__ = ["NoiseSplit", "cell_log_density", "find_interval", "find_split", "replicate_members",
           "unit_log_likelihood"]

_INTERVAL = re.compile(r"^(?P<base>.+)_lo(?P<level>\d\d)$")


@dataclass(frozen=True)
class NoiseSplit:
    """How a sweep's measurement noise splits (see the module docstring).

    Attributes
    ----------
    eval_sd : ndarray
        Per run: standard deviation of the evaluation noise on log-loss (0 where unknown).
    cell : ndarray of int
        Per run: index of its replicate cell, or -1 for a run measured once.
    n_cells : int
        Number of replicate cells (groups of two or more runs with the same group and inputs).
    interval : (str, str) or None
        The columns the evaluation noise came from.
    dropped : int
        Exact copies removed from the sweep before fitting.
    """

    eval_sd: np.ndarray
    cell: np.ndarray
    n_cells: int
    interval: tuple[str, str] | None = None
    dropped: int = 0

    @property
    def has_replicates(self) -> bool:
        """Whether some runs repeat others (then seed noise is a free parameter)."""
        return self.n_cells > 0

    @property
    def units(self) -> np.ndarray:
        """Per run: its unit of the likelihood (runs of one replicate cell share one), numbered from 0."""
        single = self.cell < 0
        out = np.empty(len(self.cell), dtype=int)
        out[single] = np.arange(int(single.sum()))
        out[~single] = int(single.sum()) + self.cell[~single]
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        known = self.eval_sd[self.eval_sd > 0]
        return {"interval_columns": list(self.interval) if self.interval else None,
                "eval_sd_median": float(np.median(known)) if len(known) else 0.0,
                "replicate_cells": self.n_cells, "replicate_runs": int((self.cell >= 0).sum()),
                "copies_dropped": self.dropped}


def find_interval(frame: pd.DataFrame) -> tuple[str, str] | None:
    """Columns ``<x>_loNN``/``<x>_hiNN`` giving an NN% interval of the loss (``<x>`` is ``loss`` or equals it)."""
    loss = frame["loss"].to_numpy(dtype=float)
    for column in frame.columns:
        match = _INTERVAL.match(str(column))
        if not match:
            continue
        base, level = match["base"], match["level"]
        high = f"{base}_hi{level}"
        if high not in frame.columns:
            continue
        if base == "loss" or (base in frame.columns and np.allclose(
                pd.to_numeric(frame[base], errors="coerce").to_numpy(dtype=float), loss, rtol=1e-9, equal_nan=False)):
            return str(column), high
    return None


def _eval_sd(frame: pd.DataFrame, interval: tuple[str, str]) -> np.ndarray:
    """Per-run sd of the evaluation noise on log-loss, from a two-sided interval of the loss."""
    from scipy.stats import norm

    for name in interval:
        if name not in frame.columns:
            raise DataError(f"interval column {name!r} is not in the sweep")
    low_col, high_col = interval
    match = _INTERVAL.match(low_col)
    z = float(norm.ppf(0.5 + (int(match["level"]) if match else 95) / 200))  # 1.96 for a 95% interval
    loss = frame["loss"].to_numpy(dtype=float)
    out = np.zeros(len(frame))
    low = pd.to_numeric(frame[low_col], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(frame[high_col], errors="coerce").to_numpy(dtype=float)
    given = np.isfinite(low) & np.isfinite(high)
    bad = given & ~((low <= loss) & (loss <= high) & (low > 0))
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(f"rows {rows}: the loss interval [{low_col}, {high_col}] must hold the loss and be > 0; "
                        f"got {[(float(low[i]), float(loss[i]), float(high[i])) for i in rows]}")
    out[given] = (np.log(high[given]) - np.log(low[given])) / (2 * z)
    return out


def find_split(sweep: Sweep, keys: Sequence[str], *, interval: tuple[str, str] | str | None = "auto",
               ) -> tuple[Sweep, NoiseSplit]:
    """The sweep without exact copies, and its :class:`NoiseSplit`.

    Parameters
    ----------
    sweep : Sweep
    keys : sequence of str
        Columns that make two runs the same experiment (the group column and the law's inputs).
    interval : "auto", (low, high) column names, or None
        Where the evaluation noise comes from: ``"auto"`` finds ``<x>_lo95``/``<x>_hi95`` columns whose ``<x>``
        is the loss (:func:`find_interval`); None ignores evaluation noise.

    Warns
    -----
    DataWarning
        When exact copies were dropped.
    """
    frame = sweep.frame
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise DataError(f"columns {missing} are not in the sweep")
    copies = frame.duplicated([*keys, "loss"], keep="first").to_numpy()
    if copies.any():
        rows = np.flatnonzero(copies)[:8].tolist()
        warnings.warn(f"dropped {int(copies.sum())} rows that repeat another row exactly (same {', '.join(keys)} "
                      f"and loss; rows {rows}): copies of one run, not replicates", DataWarning, stacklevel=2)
        sweep = sweep.subset(~copies)
        frame = sweep.frame
    if interval == "auto":
        interval = find_interval(frame)
    elif isinstance(interval, str):
        raise ValueError(f"interval must be 'auto', a (low, high) pair of columns or None; got {interval!r}")
    eval_sd = _eval_sd(frame, tuple(interval)) if interval else np.zeros(len(frame))
    rounded = frame[list(keys)].copy()
    for key in keys:  # inputs equal to 6 significant digits are the same experiment
        if pd.api.types.is_numeric_dtype(rounded[key]):
            rounded[key] = [float(f"{v:.6g}") for v in rounded[key].to_numpy(dtype=float)]
    ids = rounded.groupby(list(keys), sort=True, dropna=False).ngroup().to_numpy()
    repeated = np.bincount(ids)[ids] > 1
    cell = np.full(len(frame), -1, dtype=int)
    if repeated.any():
        cell[repeated] = pd.factorize(ids[repeated], sort=True)[0]
    return sweep, NoiseSplit(eval_sd=eval_sd, cell=cell, n_cells=int(cell.max() + 1),
                             interval=tuple(interval) if interval else None, dropped=int(copies.sum()))


def cell_log_density(xp: Any, residual: Any, variance: Any, tau2: Any, members: Any) -> Any:
    """Log density of replicate cells: residuals ``r_j`` with own variances ``v_j`` plus a shared effect.

    ``members`` is the (cells, runs) 0/1 matrix of the cells' runs; ``tau2`` the variance of the shared cell effect
    per run (the group's sigma^2). With ``w = 1/v``, ``W = sum w``, ``S = sum w r``:
    ``log p = -0.5 (sum w r^2 - tau2_c S^2 / (1 + tau2_c W)) - 0.5 (sum log v + log(1 + tau2_c W)) - k/2 log 2 pi``
    (the Normal with covariance ``tau2 11' + diag(v)``, by Sherman-Morrison). Works on the last axis for numpy
    (leading draw axes allowed) and on vectors in PyTensor; returns one value per cell.
    """
    w = 1.0 / variance
    def by_cell(a: Any) -> Any:  # sums over each cell's runs (last axis), in numpy and PyTensor alike
        return xp.dot(a, members.T)

    big_w, s1, s2 = by_cell(w), by_cell(w * residual), by_cell(w * residual**2)
    log_v, count = by_cell(xp.log(variance)), members.sum(axis=1)
    # tau2 is per run; every run of a cell has the same, so the cell's value is its mean over members
    tau2_c = by_cell(tau2 * xp.ones_like(residual)) / count
    quad = s2 - tau2_c * s1**2 / (1.0 + tau2_c * big_w)
    return -0.5 * quad - 0.5 * (log_v + xp.log1p(tau2_c * big_w)) - 0.5 * count * math.log(2 * math.pi)


def unit_log_likelihood(residual: np.ndarray, split: NoiseSplit, noise: Mapping[str, np.ndarray],
                        sigma_run: np.ndarray) -> np.ndarray:
    """Pointwise log-likelihood per unit (a single run or a whole replicate cell): shape (draws, units).

    ``residual`` is (draws, runs) of log-loss minus the law's log mean, ``sigma_run`` (draws, runs) each run's
    scatter sigma (its group's), ``noise`` holds ``nu`` (Student-t) and ``sigma_seed`` (with replicates), each
    of shape (draws,).
    """
    from bayes_scaling.likelihoods import student_t_logpdf

    seed2 = noise["sigma_seed"][:, None] ** 2 if "sigma_seed" in noise else 0.0
    eval2 = split.eval_sd[None, :] ** 2
    single = split.cell < 0
    nu = noise["nu"][:, None] if "nu" in noise else np.inf
    parts = [student_t_logpdf(residual[:, single], np.sqrt(sigma_run[:, single] ** 2 + seed2 + eval2[:, single]),
                              nu)]
    if split.has_replicates:
        members = replicate_members(split)
        rep = ~single
        variance = np.broadcast_to(seed2 + eval2[:, rep], residual[:, rep].shape)
        parts.append(cell_log_density(np, residual[:, rep], variance, sigma_run[:, rep] ** 2, members))
    return np.concatenate(parts, axis=1)


def replicate_members(split: NoiseSplit) -> np.ndarray:
    """(cells, replicate runs) 0/1 matrix, runs in sweep order."""
    cells = split.cell[split.cell >= 0]
    return (cells[None, :] == np.arange(split.n_cells)[:, None]).astype(float)
