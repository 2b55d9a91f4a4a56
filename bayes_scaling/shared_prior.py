"""A shared prior for the extrapolation term: what public sweeps in general do, learned across them.

A sweep with few forward-chaining folds says little about how fast its forecasts' error grows beyond it
(:mod:`bayes_scaling.extrapolation`). Rather than a constant prior, the term's scale ``kappa`` starts from what
the public sweeps' own folds say, pooled by a hierarchical model (empirical Bayes):

    kappa_s ~ Gamma(shape k, mean m)            for each public sweep s
    folds of s | kappa_s                         (the same likelihood as a fit's own term)
    (m, k) ~ uniform on a grid (log-uniform in m)

The grid posterior of ``(m, k)`` given every sweep's fold likelihood, integrated over, gives the population
predictive of a *new* sweep's ``kappa``: the prior a fit starts from. Its own folds then update it as before
(:func:`bayes_scaling.extrapolation.learn`). Sweeps from one source (the mixes of one paper) are not independent
draws of the population, so each source counts once: a sweep's log marginal likelihood is weighted by one over
the number of sweeps from its source.

The ``"drift"`` design's signed drift ``b`` (how a law's forecasts err in one direction beyond the data) is pooled
the same way where the shipped sweeps hold its likelihood, each sweep's fold likelihood of ``b`` marginalised over
a uniform ``kappa`` on the grid:

    b_s ~ Normal(mu, tau),   (mu, tau) ~ uniform in mu, log-uniform in tau, on a grid

so a new sweep's drift starts from what the public sweeps' drifts are (:func:`bayes_scaling.extrapolation.
drift_log_prior`); without them it is Normal(0, 0.02).

The data are shipped with the package (``extrapolation_prior.json``: each public sweep's fold log-likelihood on
the ``kappa`` grid, its source and provenance) and refreshed by ``python -m benchmarks.shared_prior``
(``make extrapolation-prior``). Because the per-sweep likelihoods are kept, the prior can be rebuilt without any
source (:func:`population_prior` with ``exclude=``): the backtests forecast each sweep with the prior learned from
the *other* sources only, so no sweep is judged with a prior that saw it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from bayes_scaling.intervals import SUMMARY_PROB, grid_quantiles, grid_weights

__all__ = ["DRIFT_MEAN_GRID", "DRIFT_SCALE_GRID", "MEAN_GRID", "PRIOR_FILE", "SHAPE_GRID", "SharedPrior",
           "SweepLikelihood", "load_shared_prior", "population_prior"]

#: The shipped data, inside the package.
PRIOR_FILE = "extrapolation_prior.json"
#: Grid of the population mean ``m`` of kappa (log-spaced; log-uniform hyperprior).
MEAN_GRID = np.geomspace(0.002, 0.12, 41)
#: Grid of the population shape ``k`` of kappa's Gamma distribution (1: exponential; large: concentrated near m).
SHAPE_GRID = np.array([0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0])
#: Grid of the population mean ``mu`` of the signed drift ``b`` (uniform hyperprior), log-loss per width.
DRIFT_MEAN_GRID = np.linspace(-0.06, 0.06, 49)
#: Grid of the population spread ``tau`` of the drift (log-spaced: log-uniform hyperprior).
DRIFT_SCALE_GRID = np.geomspace(0.002, 0.08, 25)


@dataclass(frozen=True)
class SweepLikelihood:
    """One public sweep's fold log-likelihood of kappa on the grid, and where it came from."""

    name: str
    source: str
    law: str
    runs: int
    folds: int
    residuals: int
    log_likelihood: np.ndarray
    drift: float = math.nan
    median: float = math.nan
    drift_log_likelihood: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (log-likelihoods relative to their maximum, 4 decimals)."""
        ll = self.log_likelihood - self.log_likelihood.max()
        out = {"name": self.name, "source": self.source, "law": self.law, "runs": self.runs, "folds": self.folds,
               "residuals": self.residuals, "median": round(self.median, 5), "drift": round(self.drift, 5),
               "log_likelihood": [round(float(v), 4) for v in ll]}
        if self.drift_log_likelihood is not None:
            drift = self.drift_log_likelihood - self.drift_log_likelihood.max()
            out["drift_log_likelihood"] = [round(float(v), 4) for v in drift]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepLikelihood:
        """Inverse of :meth:`to_dict`."""
        return cls(name=str(data["name"]), source=str(data["source"]), law=str(data["law"]), runs=int(data["runs"]),
                   folds=int(data["folds"]), residuals=int(data["residuals"]),
                   log_likelihood=np.asarray(data["log_likelihood"], float), drift=float(data.get("drift", math.nan)),
                   median=float(data.get("median", math.nan)),
                   drift_log_likelihood=(np.asarray(data["drift_log_likelihood"], float)
                                         if "drift_log_likelihood" in data else None))


@dataclass(frozen=True)
class SharedPrior:
    """The population predictive of kappa on the grid, with the sweeps and hyperparameters behind it.

    Attributes
    ----------
    grid, weights : ndarray
        Values of kappa and their prior probabilities (summing to one).
    sweeps : list of SweepLikelihood
        The sweeps it was learned from.
    excluded : tuple of str
        Sources left out (see :func:`population_prior`).
    mean, shape : float
        Posterior means of the population's mean and shape.
    provenance : dict
        When, by which package version and script the sweeps' likelihoods were computed.
    drift_grid, drift_weights : ndarray or None
        The population predictive of a new sweep's signed drift ``b`` (the ``"drift"`` design), where every sweep
        holds its drift likelihood; else None.
    drift_mean, drift_scale : float
        Posterior means of the drifts' population mean and spread.
    """

    grid: np.ndarray
    weights: np.ndarray
    sweeps: list[SweepLikelihood]
    excluded: tuple[str, ...] = ()
    mean: float = math.nan
    shape: float = math.nan
    provenance: dict[str, Any] = field(default_factory=dict)
    drift_grid: np.ndarray | None = None
    drift_weights: np.ndarray | None = None
    drift_mean: float = math.nan
    drift_scale: float = math.nan

    @property
    def sources(self) -> list[str]:
        """The distinct sources the prior was learned from."""
        return sorted({s.source for s in self.sweeps})

    def quantiles(self, probs: Sequence[float] | None = None) -> list[float]:
        """Quantiles of kappa under the prior (:func:`~bayes_scaling.intervals.grid_quantiles`)."""
        return grid_quantiles(self.grid, self.weights, probs)

    def describe(self) -> str:
        """One line: what the prior says and what it was learned from."""
        low, median, high = self.quantiles()
        left = f"; left out {', '.join(self.excluded)}" if self.excluded else ""
        text = (f"shared prior of kappa: median {median:.4f}, {SUMMARY_PROB:.0%} [{low:.4f}, {high:.4f}] from "
                f"{len(self.sweeps)} sweeps of {len(self.sources)} sources{left}")
        if self.drift_weights is not None:
            b_low, b_median, b_high = self.drift_quantiles()
            text += (f"; of the drift: median {b_median:+.4f}, {SUMMARY_PROB:.0%} [{b_low:+.4f}, {b_high:+.4f}] "
                     f"(population mean {self.drift_mean:+.4f}, spread {self.drift_scale:.4f})")
        return text

    def drift_quantiles(self, probs: Sequence[float] | None = None) -> list[float]:
        """Quantiles of the drift ``b`` under the prior (NaN where the prior holds no drifts)."""
        if self.drift_weights is None or self.drift_grid is None:
            return [math.nan] * (3 if probs is None else len(probs))
        return grid_quantiles(self.drift_grid, self.drift_weights, probs)

    def to_dict(self) -> dict[str, Any]:
        """A short JSON-friendly summary (the sources, hyperparameters and quantiles; not the likelihoods)."""
        low, median, high = self.quantiles()
        out = {"sources": self.sources, "sweeps": len(self.sweeps), "excluded": list(self.excluded),
               "mean": self.mean, "shape": self.shape, "median": median, "lower": low, "upper": high,
               "created": self.provenance.get("created")}
        if self.drift_weights is not None:
            b_low, b_median, b_high = self.drift_quantiles()
            out["drift"] = {"mean": self.drift_mean, "scale": self.drift_scale, "median": b_median,
                            "lower": b_low, "upper": b_high}
        return out


def _cells(grid: np.ndarray, cdf: Any, lowest: float) -> np.ndarray:
    """Probability of each grid cell under the distribution of ``cdf``, normalised over the grid.

    The cells' edges lie halfway between grid points; the first cell starts at ``lowest``, the last runs to infinity.
    """
    edges = np.concatenate([[lowest], (grid[1:] + grid[:-1]) / 2, [np.inf]])
    cumulative = cdf(edges)
    cumulative[-1] = 1.0
    probs = np.diff(cumulative)
    return probs / probs.sum()


def _cell_probabilities(grid: np.ndarray, mean: float, shape: float) -> np.ndarray:
    """Probability of each grid cell under Gamma(shape, mean) (kappa's population)."""
    from scipy.special import gammainc

    return _cells(grid, lambda x: gammainc(shape, x * shape / mean), 0.0)


def _normal_cells(grid: np.ndarray, mean: float, scale: float) -> np.ndarray:
    """Probability of each grid cell under Normal(mean, scale) (the drift's population)."""
    from scipy.special import ndtr

    return _cells(grid, lambda x: ndtr((x - mean) / scale), -np.inf)


@lru_cache(maxsize=4)
def _drift_table(grid_key: tuple[float, ...]) -> np.ndarray:
    """Log p(b_j | mu, tau) for every (mu, tau) of the drift's hyper grid: shape (means, scales, b)."""
    grid = np.asarray(grid_key)
    with np.errstate(divide="ignore"):
        return np.log(np.array([[_normal_cells(grid, mu, tau) for tau in DRIFT_SCALE_GRID]
                                for mu in DRIFT_MEAN_GRID]))


def _pool(table: np.ndarray, likelihoods: Sequence[np.ndarray], counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid posterior of the hyperparameters and the population predictive on the parameter's grid.

    ``table`` holds log p(value | hyper) with shape (hyper 1, hyper 2, values); each sweep's log marginal
    likelihood is weighted by one over ``counts`` (the sweeps of its source).
    """
    log_post = np.zeros(table.shape[:2])
    for ll, count in zip(likelihoods, counts, strict=True):
        joint = table + ll[None, None, :]
        peak = joint.max(axis=2, keepdims=True)
        marginal = peak[..., 0] + np.log(np.exp(joint - peak).sum(axis=2))
        log_post += marginal / count
    post = grid_weights(log_post)
    weights = np.einsum("ms,msk->k", post, np.exp(table))
    return post, weights / weights.sum()


@lru_cache(maxsize=4)
def _hyper_table(grid_key: tuple[float, ...]) -> np.ndarray:
    """Log p(kappa_j | m, k) for every (m, k) of the hyper grid: shape (means, shapes, kappa)."""
    grid = np.asarray(grid_key)
    with np.errstate(divide="ignore"):
        return np.log(np.array([[_cell_probabilities(grid, m, k) for k in SHAPE_GRID] for m in MEAN_GRID]))


def population_prior(grid: np.ndarray, sweeps: Sequence[SweepLikelihood], *, exclude: Iterable[str] = (),
                     provenance: dict[str, Any] | None = None, drift_grid: np.ndarray | None = None) -> SharedPrior:
    """The population predictive of a new sweep's kappa from ``sweeps`` (see the module docstring).

    Parameters
    ----------
    grid : ndarray
        The kappa grid the sweeps' log-likelihoods are on.
    sweeps : sequence of SweepLikelihood
    exclude : iterable of str
        Sources (or sweep names) to leave out, e.g. the one a backtest forecasts.
    provenance : dict, optional
    drift_grid : ndarray, optional
        The grid the sweeps' drift log-likelihoods are on (the shipped file says which:
        :func:`bayes_scaling.extrapolation.drift_grid`). The drifts are pooled only where it is given and every
        sweep left holds a likelihood on it.

    Raises
    ------
    ValueError
        A sweep's likelihood is not on ``grid``, or nothing is left after ``exclude``.
    """
    grid = np.asarray(grid, float)
    excluded = tuple(sorted(set(exclude)))
    kept = [s for s in sweeps if s.source not in excluded and s.name not in excluded]
    if not kept:
        raise ValueError(f"no sweep is left to learn the shared prior from after leaving out {list(excluded)}")
    for sweep in kept:
        if sweep.log_likelihood.shape != grid.shape:
            raise ValueError(f"sweep {sweep.name!r} has a log-likelihood on {sweep.log_likelihood.size} kappa values, "
                             f"the grid has {grid.size}: refresh the shared prior (make extrapolation-prior)")
    table = _hyper_table(tuple(float(g) for g in grid))  # (means, shapes, kappa)
    counts: dict[str, int] = {}
    for sweep in kept:
        counts[sweep.source] = counts.get(sweep.source, 0) + 1
    per_sweep = [counts[sweep.source] for sweep in kept]
    post, weights = _pool(table, [sweep.log_likelihood for sweep in kept], per_sweep)
    mean = float(np.dot(post.sum(axis=1), MEAN_GRID))
    shape = float(np.dot(post.sum(axis=0), SHAPE_GRID))
    drift: dict[str, Any] = {}
    b_grid = None if drift_grid is None else np.asarray(drift_grid, float)
    if b_grid is not None and all(s.drift_log_likelihood is not None
                                  and s.drift_log_likelihood.shape == b_grid.shape for s in kept):
        b_post, b_weights = _pool(_drift_table(tuple(float(b) for b in b_grid)),
                                  [s.drift_log_likelihood for s in kept], per_sweep)
        drift = {"drift_grid": b_grid, "drift_weights": b_weights,
                 "drift_mean": float(np.dot(b_post.sum(axis=1), DRIFT_MEAN_GRID)),
                 "drift_scale": float(np.dot(b_post.sum(axis=0), DRIFT_SCALE_GRID))}
    return SharedPrior(grid=grid, weights=weights, sweeps=list(kept), excluded=excluded, mean=mean, shape=shape,
                       provenance=dict(provenance or {}), **drift)


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    text = resources.files("bayes_scaling").joinpath(PRIOR_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def load_shared_prior(*, exclude: Iterable[str] = ()) -> SharedPrior:
    """The shared prior shipped with the package (optionally without some sources).

    Pooled once per process for each set of sources left out (every fit's term starts from it; the pooling takes
    about 70 ms): the same object is returned again, so treat it as read-only.

    Raises
    ------
    FileNotFoundError
        The package's ``extrapolation_prior.json`` is missing (a broken install).
    """
    return _pooled(tuple(sorted(set(exclude))))


@lru_cache(maxsize=16)
def _pooled(exclude: tuple[str, ...]) -> SharedPrior:
    data = _shipped()
    sweeps = [SweepLikelihood.from_dict(s) for s in data["sweeps"]]
    provenance = {k: v for k, v in data.items() if k not in ("sweeps", "grid", "drift_grid")}
    drift_grid = np.asarray(data["drift_grid"], float) if "drift_grid" in data else None
    return population_prior(np.asarray(data["grid"], float), sweeps, exclude=exclude, provenance=provenance,
                            drift_grid=drift_grid)
