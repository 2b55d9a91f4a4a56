"""The predictive engine: the one place where draws of a loss are assembled from their parts.

Every answer about a loss (forecasts and curves, plans, next-run designs, recipe comparisons, benchmark forecasts
through a link, backtests and their scores) asks :func:`predict` for its draws, so the same question gets the same
interval whichever command asks it. On log-loss, per posterior draw and point:

* ``mean``: the law's mean at the point (the spread of the parameters);
* ``extrapolation``: the term learned from forward-chaining folds inside the sweep
  (:mod:`bayes_scaling.extrapolation`), growing with the distance beyond the sweep, zero inside it; with the
  distance it used;
* ``scatter``: a new run's deviation from its expected loss (the run-to-run noise, Student-t or Normal);
* ``expected = mean + extrapolation``: the loss a run at the point is expected to reach (credible interval);
* ``total = expected + scatter``: one new run (predictive interval).

Hooks for the analyses: ``params`` replaces the posterior draws (a subsample, reweighted draws), ``z`` is a shared
standard-normal draw of the extrapolation term (paired comparisons: the same misfit of the law at two points),
``ranges`` a hypothetical sweep's range for the distance (the sweep with suggested runs added), ``log_mean`` the
law's mean when the point itself varies per draw (a plan's compute-optimal N and D), and ``seed``.

The random numbers are drawn in one fixed order from ``seed`` (extrapolation scale, its standard normal, the
scatter), so an answer is reproducible and two calls with the same seed share their extrapolation draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_scaling.intervals import equal_tailed

if TYPE_CHECKING:
    from bayes_scaling.posterior import Fit

__all__ = ["PARTS", "SCATTER_PROB", "Predictive", "pair_draws", "predict"]

#: The named parts of a prediction, on log-loss.
PARTS = ("mean", "extrapolation", "scatter", "expected", "total")
#: Probability of the central interval used to report the run scatter (``scatter_68``): one sd either side for a
#: Normal, and defined for a Student-t of any nu (whose sd does not exist for nu <= 2).
SCATTER_PROB = 0.6826894921370859


@dataclass(frozen=True)
class Predictive:
    """Draws of the loss at points, by part (see the module docstring). Arrays have shape (draws, points).

    Attributes
    ----------
    points : pandas.DataFrame
        The points (one row each).
    mean, extrapolation, scatter : ndarray
        The parts on log-loss.
    distance : ndarray
        Per point, the distance beyond the sweep (or ``ranges``) the extrapolation term used, in widths of the
        sweep (:func:`bayes_scaling.extrapolation.distance`).
    sd_extrapolation : ndarray
        Per point, the root mean square of the extrapolation term.
    sigma : ndarray
        The noise scale's draws (the Student-t's scale), per draw and point (shape (draws, points)): the same
        for every point unless the scatter grows toward the sweep's edges.
    chains : int
        Chains the draws came from (draws are chain-major), for :meth:`to_dataset`.
    """

    points: pd.DataFrame
    mean: np.ndarray
    extrapolation: np.ndarray
    scatter: np.ndarray
    distance: np.ndarray
    sd_extrapolation: np.ndarray
    sigma: np.ndarray
    chains: int = 1

    @property
    def expected(self) -> np.ndarray:
        """Log of the expected loss: the law's mean plus the extrapolation term."""
        return self.mean + self.extrapolation

    @property
    def total(self) -> np.ndarray:
        """Log of a new run's loss: the expected loss plus the run scatter."""
        return self.expected + self.scatter

    def loss(self, part: str = "expected") -> np.ndarray:
        """A part in nats/token (``"expected"``: credible; ``"total"``: predictive; ``"mean"``: the law alone)."""
        if part not in PARTS or part in ("extrapolation", "scatter"):
            raise ValueError(f"part must be 'mean', 'expected' or 'total', got {part!r}")
        with np.errstate(over="ignore"):
            return np.exp(getattr(self, part))

    def interval(self, prob: float | None = None, part: str = "expected") -> tuple[np.ndarray, ...]:
        """Per point: (lower, median, upper) of the loss (equal-tailed; see :mod:`bayes_scaling.intervals`)."""
        return equal_tailed(self.loss(part), prob, median=True)

    def spread(self) -> dict[str, np.ndarray]:
        """Per point, where the spread comes from, on log-loss (about a relative error).

        ``sd_params`` (sd of the law's mean over draws), ``scatter_scale`` (posterior median of the noise scale),
        ``scatter_68`` (half-width of the central 68% of a new run's deviation: exists for any Student-t) and
        ``sd_extrapolation``.
        """
        low, high = equal_tailed(self.scatter, SCATTER_PROB)
        return {"sd_params": np.std(self.mean, axis=0),
                "scatter_scale": (np.median(self.sigma, axis=0) if self.sigma.ndim == 2
                                  else np.full(self.mean.shape[1], float(np.median(self.sigma)))),
                "scatter_68": (high - low) / 2,
                "sd_extrapolation": self.sd_extrapolation}

    def to_dataset(self) -> Any:
        """The parts as an xarray Dataset with dims (chain, draw, point), plus the distance per point."""
        import xarray as xr

        draws = self.mean.shape[0]
        chains = self.chains if self.chains > 0 and draws % self.chains == 0 else 1
        shape = (chains, draws // chains, self.mean.shape[1])
        data = {part: (("chain", "draw", "point"), getattr(self, part).reshape(shape)) for part in PARTS}
        data["distance"] = (("point",), self.distance)
        return xr.Dataset(data, coords={"chain": np.arange(chains), "draw": np.arange(shape[1]),
                                        "point": np.arange(shape[2])})


def predict(
    fit: Fit,
    points: pd.DataFrame,
    *,
    seed: int | np.random.Generator | None = 0,
    params: Mapping[str, np.ndarray] | None = None,
    noise: Mapping[str, np.ndarray] | None = None,
    z: np.ndarray | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    log_mean: np.ndarray | None = None,
    slope: np.ndarray | None = None,
    distance: np.ndarray | None = None,
    shared_scatter: tuple[float, np.ndarray] | None = None,
) -> Predictive:
    """Draws of the loss at ``points`` by part: the law's mean, extrapolation term, run scatter.

    Parameters
    ----------
    fit : Fit
        A fit of one sweep (a pooled fit: one group's, ``fit.group_fit(label)``).
    points : DataFrame
        The law's input columns (N, D, C, ...), one row per point.
    seed : int or Generator
        Seed of the extrapolation and scatter draws (drawn in that order).
    params, noise : mapping, optional
        Law parameters and noise parameters per draw replacing the posterior's (same number of draws each).
    z : array, optional
        Standard-normal draws of the extrapolation term, shape (draws,) or (draws, points): pass the same ``z`` to
        two calls to pair their extrapolation (the same misfit of the law).
    ranges : mapping, optional
        Column -> (smallest, largest) of a hypothetical sweep, to measure the distance from instead of the fit's.
    log_mean : array, optional
        The law's log mean per draw and point, for points that differ per draw (``points`` then gives the point
        whose distance is used).
    slope : array, optional
        Per draw, the extrapolation term per unit of distance (drift plus scale times a normal draw), replacing
        the fit's own draws: for comparisons that split the term into parts shared between fits and parts of
        their own (:func:`bayes_scaling.compare_recipes`).
    distance : array, optional
        The distance per point, or per draw and point (answers whose point differs per draw), replacing the
        one measured from ``points``.
    shared_scatter : (rho, common), optional
        A share ``rho`` of the run scatter common to several predictions: ``common`` holds standardised draws
        (scale 1) of it, shape (draws, points); the scatter is then ``sqrt(1 - rho) own + sqrt(rho) sigma common``.

    Returns
    -------
    Predictive
    """
    from bayes_scaling.extrapolation import distance_columns, distance_to, sweep_ranges
    from bayes_scaling.likelihoods import get_noise_model

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if log_mean is None:
        log_mean = fit.log_mean(points, draws=params)
    log_mean = np.asarray(log_mean, dtype=float)
    columns = distance_columns(fit.law)
    if ranges is None:
        ranges = sweep_ranges(fit.sweep, columns)
    d = distance_to(points, ranges, columns) if distance is None else np.asarray(distance, dtype=float)
    if slope is not None:
        extra = np.broadcast_to(np.asarray(slope, dtype=float).reshape(-1, 1) * d, log_mean.shape)
        sd_extra = np.sqrt(np.mean(extra**2, axis=0))
    else:
        extra, sd_extra = _extrapolation(fit, log_mean, d, rng, z, points=points, ranges=ranges)
    d = d if d.ndim == 1 else np.median(d, axis=0)
    noise_draws = dict(noise) if noise is not None else fit.draws(fit.noise_names)
    if noise is None and params is not None:  # params replaced: the noise of as many draws, in order
        noise_draws = {k: v[: log_mean.shape[0]] for k, v in noise_draws.items()}
    noise_draws = fit.noise_at(points, noise_draws)  # sigma per draw and point
    scatter = get_noise_model(fit.likelihood).sample(rng, noise_draws, log_mean.shape)
    if shared_scatter is not None:
        rho, common = shared_scatter
        scatter = np.sqrt(1 - rho) * scatter + np.sqrt(rho) * noise_draws["sigma"] * common
    chains = fit.idata["posterior"].sizes.get("chain", 1) if params is None and noise is None else 1
    return Predictive(points=points.reset_index(drop=True), mean=log_mean, extrapolation=extra, scatter=scatter,
                      distance=d, sd_extrapolation=sd_extra, sigma=np.asarray(noise_draws.get("sigma", np.zeros(1))),
                      chains=int(chains))


def _extrapolation(fit: Fit, log_mean: np.ndarray, d: np.ndarray, rng: np.random.Generator,
                   z: np.ndarray | None, *, points: pd.DataFrame | None = None,
                   ranges: Mapping[str, tuple[float, float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The extrapolation term per draw and point, and its root mean square per point (zero without a term).

    A ``"directional"`` term gives each point the term of the direction it goes beyond the sweep in
    (:func:`~bayes_scaling.extrapolation.question_directions`, from ``points`` and ``ranges``); points in no
    direction, or in one without folds, the term over all folds.
    """
    from bayes_scaling.extrapolation import Extrapolation, question_directions

    raw = fit.info.get("extrapolation")
    if not raw or raw.get("design", "none") == "none":
        return np.zeros_like(log_mean), np.zeros(log_mean.shape[1])
    term = Extrapolation.from_dict(raw)
    n = log_mean.shape[0]
    drift, scales = term.joint_draws(n, rng)
    drift, scales = drift[:, None], scales[:, None]
    if term.by_direction and points is not None and ranges is not None and len(points) == log_mean.shape[1]:
        which = question_directions(points, ranges)
        drift, scales = np.repeat(drift, len(which), axis=1), np.repeat(scales, len(which), axis=1)
        for name, own in term.by_direction.items():
            mask = which == name
            if mask.any():  # the direction's own term in a share ``weight`` of the draws, the shared one otherwise
                b, k = own.joint_draws(n, rng)
                mine = rng.random(n) < own.share
                drift[np.ix_(mine, mask)], scales[np.ix_(mine, mask)] = b[mine, None], k[mine, None]
    normal = rng.standard_normal(log_mean.shape) if z is None else np.broadcast_to(
        np.asarray(z, dtype=float).reshape(log_mean.shape[0], -1), log_mean.shape)
    if term.design in ("kappa", "drift", "directional"):
        extra = scales * d
        shift = drift * d
        return shift + extra * normal, np.sqrt(np.mean(extra**2 + shift**2, axis=0))
    # inflation: total sd = lam * sqrt(sigma^2 + v_param), so the added part has variance (lam^2 - 1) (...)
    sigma = float(np.median(fit.draws(["sigma"])["sigma"]))
    base = np.sqrt(sigma**2 + np.var(log_mean, axis=0))[None, :]
    extra = np.sqrt(np.maximum(scales**2 - 1.0, 0.0)) * base
    return extra * normal, np.sqrt(np.mean(extra**2, axis=0))


def pair_draws(draws: Mapping[str, np.ndarray], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` draws of another posterior (a benchmark link's) to pair one-to-one with ``n`` draws of the loss.

    Drawn at random (with replacement only when ``n`` exceeds the draws held), so that each loss draw meets an
    independent draw of the other posterior: the one way answers chain two posteriors (benchmark forecasts
    through a link, per-task tables, designs whose target is a benchmark error).
    """
    total = len(next(iter(draws.values())))
    pick = rng.choice(total, size=n, replace=n > total)
    return {k: np.asarray(v)[pick] for k, v in draws.items()}
