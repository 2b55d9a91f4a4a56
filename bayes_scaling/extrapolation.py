"""Honest extrapolation: how fast the error of a forecast grows beyond the sweep, learned from the sweep itself.

A fitted law's predictive interval holds parameter uncertainty and run-to-run scatter, and nothing for the law
being slightly wrong at scales it never saw. On real sweeps the error of extrapolating one decade (0.6-1% and more)
is several times the in-sample scatter (0.3%), so the plain interval covers far less than it says.

**Forward-chaining calibration** (the default). Inside the training sweep, refit the law on the smaller model sizes
only (cut at several sizes in the upper half of the sweep), predict the larger sizes of the same sweep, and
measure how each held-out run's error exceeds what that fold's own posterior expected (parameter uncertainty plus
scatter). For laws of N and D the same is done in the two other directions users forecast in: cut by compute
6ND (fit below a budget, forecast above it: the next compute budget) and by tokens per parameter D/N (fit the
less-trained runs, forecast the over-trained ones); :attr:`Extrapolation.directions` says what each direction's
folds alone would give. The excess is modelled as growing linearly with the distance ``d`` beyond the fold's
training range, in widths of that range (Euclidean over the law's inputs N, D, or C and, for laws of N and D,
over 6ND and D/N as well, so that a point beyond the largest budget is "out" although its N and D each lie inside
the sweep's box):

    log y - log L_fold(x)  ~  StudentT(nu, 0, sqrt(sigma^2 + v_param(x) + (kappa * d)^2))

``kappa`` (log-loss per decade) gets a posterior on a grid: a prior shared across sweeps (the population
predictive of a hierarchical model over the public sweeps' own folds, shipped with the package, see
:mod:`bayes_scaling.shared_prior`; ``prior="halfnormal"`` gives the earlier HalfNormal of scale
:data:`KAPPA_PRIOR_SD`) and the fold residuals, each held-out *model size* counting as one observation (the
runs of one size share their fold's fit error, so counting runs would overstate what the folds know). Forecasts then add
``kappa * d * z`` (``d`` now measured from the whole sweep, one ``kappa`` draw per posterior draw) to both the
credible and the predictive interval. Inside the sweep ``d = 0`` and nothing changes.

**A signed drift** (``design="drift"``): the same residuals as ``StudentT(nu, b * d, ...)``,
a joint grid posterior of ``b`` and ``kappa``; ``b`` starts from the public sweeps' drifts, pooled the same way
(:func:`drift_log_prior`), since fitted laws tend to err in one direction beyond their data (with the default
saturating law, too high on 6 of 7 public sources). Forecasts add ``b * d + kappa * d * z``.

**In the direction of the question** (``design="directional"``, :data:`DEFAULT_DESIGN`): the drift design, also
learned apart from the folds of each direction (size, compute, tokens per parameter; the same priors), and a
forecast takes the term of the direction in which it lies farthest beyond the sweep (:func:`question_directions`:
its distance in that direction's column alone, :data:`DIRECTION_COLUMNS`) where that direction's scale is the
larger, with the posterior probability that the direction errs at a rate of its own; otherwise, for a point in no
direction, or in a sweep whose folds have one direction, the term over all folds. Over all folds the size folds,
which are the most, set the term, though a sweep's next budget and its over-trained runs may err several times as
fast (marin_isoflop: 0.012-0.018 against 0.0035 per unit of distance). A direction's term only widens: its few,
nested folds extrapolating well do not show a farther forecast that way to be safer.

The fold refits use the Laplace approximation of the same model (same priors and likelihood), compiled once
per law and reused for every fold size, so calibration adds about 0.2 s to a warm fit.

**Variance inflation** (``design="inflation"``, kept for comparison): the same folds learn one factor ``lam``
by which the fold's predictive scale is too small, ``sd = lam * sqrt(sigma^2 + v_param)``, independent of
distance. ``benchmarks/backtests.py`` measures every design; the README says why ``"directional"`` is the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.intervals import KIND, SUMMARY_PROB, grid_quantiles, grid_weights
from bayes_scaling.likelihoods import student_t_log_normaliser, student_t_logpdf
from bayes_scaling.shared_prior import load_shared_prior

if TYPE_CHECKING:
    from bayes_scaling.data import Sweep

__all__ = ["DEFAULT_DESIGN", "DESIGNS", "DIRECTIONS", "DIRECTION_COLUMNS", "FOLD_QUANTILES", "KAPPA_PRIORS",
           "KAPPA_PRIOR_SD", "Extrapolation", "distance", "distance_columns", "distance_to", "drift_grid",
           "drift_log_prior", "fold_cuts", "fold_directions", "fold_log_likelihood", "kappa_grid", "kappa_log_prior",
           "learn", "learn_halfnormal", "question_directions", "sweep_ranges", "with_directions"]

#: Ways of widening forecasts beyond the data: ``"kappa"`` (error growing with distance), ``"drift"`` (the same
#: plus a learned signed drift ``b * d`` of the forecast), ``"directional"`` (:data:`DEFAULT_DESIGN`: the drift
#: design, and a forecast beyond the sweep in a direction whose own folds err faster taking that direction's term),
#: ``"inflation"`` (one factor on the predictive scale) and ``"none"`` (parameter uncertainty and scatter only).
DESIGNS = ("kappa", "drift", "directional", "inflation", "none")
#: The design :func:`bayes_scaling.fit` uses unless told otherwise: ``"directional"``, the drift design (the error
#: growing with distance plus the signed drift the folds show, from the public sweeps' drifts) where a direction's
#: own folds (size, next budget, over-training) err faster than all together taking their own term for forecasts
#: that way (README, "Honest extrapolation", has the backtests that chose it; ``"drift"`` from 2026-11-29 and
#: ``"kappa"`` before).
DEFAULT_DESIGN = "directional"
#: Prior scale of the drift ``b`` (Normal, log-loss per unit of relative distance) of the ``"drift"`` design.
DRIFT_PRIOR_SD = 0.02
_DRIFT_GRID = np.linspace(-0.12, 0.12, 97)
#: Most residuals used to learn the term (a random, seeded subset beyond this; weights are kept per model size).
MAX_RESIDUALS = 3000
#: Prior scale of kappa (HalfNormal), log-loss per decade of extrapolation: 2% per decade, several times the
#: 0.5-1% per decade seen when published laws are extrapolated, so the data, not the prior, sets it.
KAPPA_PRIOR_SD = 0.02
#: Quantiles of the distinct model sizes at which folds are cut (sizes at or above the cut are held out).
FOLD_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9)
_KAPPA_GRID = np.linspace(0.0, 0.15, 301)


def kappa_grid() -> np.ndarray:
    """The grid kappa's posterior (and the shared prior) is computed on."""
    return _KAPPA_GRID.copy()


def drift_grid() -> np.ndarray:
    """The grid of the ``"drift"`` design's signed drift ``b`` (log-loss per unit of relative distance)."""
    return _DRIFT_GRID.copy()

_LAMBDA_GRID = np.linspace(1.0, 15.0, 281)
#: The inputs extrapolation distance is measured over, by law input key.
_DISTANCE_COLUMNS = {"N": "N", "D": "D", "C": "C"}
#: For laws of N and D, the two directions beyond N and D themselves: the compute 6ND (the next budget) and the
#: tokens per parameter D/N (over-training). A point beyond the sweep's budgets is "out" even when its N and D
#: each lie inside the sweep's box.
COMPUTE, TOKENS_PER_PARAM = "compute_6ND", "tokens_per_param"
#: The directions forward-chaining folds are cut in (held out: the runs at or above a cut), with the quantity that
#: is cut: model size N, compute 6ND, tokens per parameter D/N.
DIRECTIONS = ("size", "compute", "tokens_per_param")
#: The column in which each fold direction measures how far a point lies beyond the sweep (see
#: :func:`question_directions`).
DIRECTION_COLUMNS = {"size": "N", "compute": COMPUTE, "tokens_per_param": TOKENS_PER_PARAM}
#: Quantiles of the distinct values at which the folds of the compute and over-training directions are cut
#: (fewer than by size: they add to its folds).
EXTRA_FOLD_QUANTILES = (0.6, 0.8)


#: Narrowest range (decades) a distance is measured against, so that a sweep spanning a sliver of sizes does
#: not turn a small step beyond it into a huge relative distance.
MIN_WIDTH = 0.5


def distance_columns(law: Any) -> list[str]:
    """The columns the law's extrapolation distance is measured over.

    Its inputs among N, D, C and, for laws of N and D, the compute 6ND and the tokens per parameter D/N (see
    :func:`with_directions`).
    """
    columns = [_DISTANCE_COLUMNS[k] for k in law.inputs if k in _DISTANCE_COLUMNS]
    if "N" in columns and "D" in columns:
        columns += [COMPUTE, TOKENS_PER_PARAM]
    return columns


def with_directions(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the derived directions (``compute_6ND``, ``tokens_per_param``) where it has N and D.

    Computed from N and D, never read from a ``C`` column, so that a sweep's own compute convention and a
    forecast point's are measured alike.
    """
    if not {"N", "D"} <= set(frame.columns) or {COMPUTE, TOKENS_PER_PARAM} <= set(frame.columns):
        return frame
    n, d = frame["N"].to_numpy(dtype=float), frame["D"].to_numpy(dtype=float)
    return frame.assign(**{COMPUTE: FLOPS_PER_PARAM_TOKEN * n * d, TOKENS_PER_PARAM: d / n})


def sweep_ranges(runs: Any, columns: Sequence[str]) -> dict[str, tuple[float, float]]:
    """(smallest, largest) value of each of ``columns`` over ``runs`` (a Sweep or a DataFrame), derived ones too."""
    frame = with_directions(getattr(runs, "frame", runs))
    return {c: (float(frame[c].min()), float(frame[c].max())) for c in columns if c in frame.columns}


def distance(points: pd.DataFrame, sweep: Sweep, columns: Sequence[str]) -> np.ndarray:
    """How far points lie outside ``sweep`` in ``columns``, in widths of the sweep: Euclidean, 0 inside.

    Each column's excess (:meth:`~bayes_scaling.data.Sweep.decades_outside`) is divided by the sweep's range in
    that column (in decades, at least :data:`MIN_WIDTH`): extrapolating one decade from a sweep that spans one
    decade is a longer reach than from one spanning three, and the folds, which are narrower than the whole
    sweep, are comparable to forecasts only in these units. Points lacking a column are at distance 0.
    """
    return distance_to(points, sweep_ranges(sweep, columns), columns)


def distance_to(points: pd.DataFrame, ranges: Mapping[str, tuple[float, float]], columns: Sequence[str]) -> np.ndarray:
    """:func:`distance` against given (smallest, largest) values per column, e.g. a sweep with runs added."""
    points = with_directions(points)
    if not all(c in points.columns for c in columns):
        return np.zeros(len(points))
    total = np.zeros(len(points))
    for column in columns:
        if column not in ranges:
            continue
        low, high = (math.log10(v) for v in ranges[column])
        x = np.log10(points[column].to_numpy(dtype=float))
        outside = np.where(x > high, x - high, np.where(x < low, x - low, 0.0))
        total += (outside / max(high - low, MIN_WIDTH)) ** 2
    return np.sqrt(total)


def question_directions(points: pd.DataFrame, ranges: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """The fold direction each point extrapolates in most: ``"size"``, ``"compute"``, ``"tokens_per_param"`` or "".

    For each direction, the point's distance beyond the sweep (``ranges``) in that direction's column alone
    (:data:`DIRECTION_COLUMNS`, in widths of the sweep as in :func:`distance`); the largest wins. "" where the point
    lies inside all three (or the law has no such columns): no direction's term applies there.
    """
    points = with_directions(points)
    names, parts = [], []
    for name, column in DIRECTION_COLUMNS.items():
        if column in ranges and column in points.columns:
            names.append(name)
            parts.append(distance_to(points, ranges, [column]))
    out = np.full(len(points), "", dtype=object)
    if not parts:
        return out
    stacked = np.vstack(parts)
    best = np.argmax(stacked, axis=0)
    outside = stacked.max(axis=0) > 0
    out[outside] = np.asarray(names, dtype=object)[best[outside]]
    return out


@dataclass(frozen=True)
class Extrapolation:
    """The learned extrapolation term: a grid posterior over its scale, and how it was learned.

    Attributes
    ----------
    design : {"kappa", "drift", "directional", "inflation", "none"}
    grid, weights : ndarray
        Values of ``kappa`` (log-loss per unit of relative distance) or ``lam`` (a factor) and their marginal
        posterior probabilities.
    folds : int
        Forward-chaining folds that contributed residuals.
    residuals : int
        Held-out runs scored across the folds.
    drift_grid, joint : ndarray, optional
        ``"drift"`` design: values of ``b`` and the joint posterior over (``b``, ``kappa``), shape (b, kappa).
    directions : dict, optional
        Per fold direction (size, compute, tokens per parameter): its ``folds``, ``residuals`` and the posterior
        median of the term learned from that direction's folds alone (``median``): which direction drove it.
    by_direction : dict, optional
        ``"directional"`` design: per fold direction, the ``"drift"`` term learned from its folds alone (same
        priors), with its ``weight``; forecasts beyond the sweep in a direction (:func:`question_directions`) take
        its term with that probability and this one's (the drift design over all folds) otherwise.
    weight : float, optional
        Of a direction's own term: the posterior probability, from the fold residuals, that the direction errs
        at its own rate rather than at the one all directions share; 0 where its scale is not larger than the
        term over all folds (a direction's term only widens; see :func:`_direction_terms`).
    """

    design: str
    grid: np.ndarray
    weights: np.ndarray
    folds: int
    residuals: int
    drift_grid: np.ndarray | None = None
    joint: np.ndarray | None = None
    directions: dict[str, dict[str, float]] | None = None
    prior: str = "halfnormal"
    by_direction: dict[str, Extrapolation] | None = None
    weight: float | None = None

    @property
    def share(self) -> float:
        """The share of draws a direction's own term is used in: its ``weight``, all of them when it has none."""
        return 1.0 if self.weight is None else self.weight

    def joint_draws(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws of (drift ``b``, scale) from the grid posterior, jittered within a grid cell.

        ``b`` is zero except in the ``"drift"`` and ``"directional"`` designs (the latter: the term over all folds).
        """
        if self.design == "none":
            return np.zeros(n), np.zeros(n)
        step = self.grid[1] - self.grid[0]
        if self.joint is None or self.drift_grid is None:
            idx = rng.choice(len(self.grid), size=n, p=self.weights)
            return np.zeros(n), np.maximum(self.grid[idx] + rng.uniform(-step / 2, step / 2, n), self.grid[0])
        flat = rng.choice(self.joint.size, size=n, p=self.joint.ravel())
        i, j = np.unravel_index(flat, self.joint.shape)
        b_step = self.drift_grid[1] - self.drift_grid[0]
        b = self.drift_grid[i] + rng.uniform(-b_step / 2, b_step / 2, n)
        return b, np.maximum(self.grid[j] + rng.uniform(-step / 2, step / 2, n), self.grid[0])

    def quantiles(self, probs: Sequence[float] | None = None) -> list[float]:
        """Posterior quantiles of the scale (:func:`~bayes_scaling.intervals.grid_quantiles`)."""
        return grid_quantiles(self.grid, self.weights, probs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (kept in ``Fit.info["extrapolation"]`` and saved with the fit)."""
        low, median, high = self.quantiles()
        out = {"design": self.design, "grid": [float(g) for g in self.grid],
               "weights": [float(w) for w in self.weights], "folds": self.folds, "residuals": self.residuals,
               "median": median, "lower": low, "upper": high, "interval": {"kind": KIND, "prob": SUMMARY_PROB}}
        if self.joint is not None and self.drift_grid is not None:
            out["drift_grid"] = [float(g) for g in self.drift_grid]
            out["joint"] = [[float(w) for w in row] for row in self.joint]
            b = self.joint.sum(axis=1)
            out["drift_mean"] = float(np.dot(b, self.drift_grid))
            out["drift_lower"], out["drift_median"], out["drift_upper"] = grid_quantiles(self.drift_grid, b)
        if self.directions:
            out["directions"] = self.directions
        if self.by_direction:
            out["by_direction"] = {name: term.to_dict() for name, term in self.by_direction.items()}
        if self.weight is not None:
            out["weight"] = self.weight
        out["prior"] = self.prior
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Extrapolation:
        """Inverse of :meth:`to_dict`."""
        return cls(design=str(data["design"]), grid=np.asarray(data["grid"], float),
                   weights=np.asarray(data["weights"], float), folds=int(data["folds"]),
                   residuals=int(data["residuals"]),
                   drift_grid=np.asarray(data["drift_grid"], float) if "drift_grid" in data else None,
                   joint=np.asarray(data["joint"], float) if "joint" in data else None,
                   directions=data.get("directions"), prior=str(data.get("prior", "halfnormal")),
                   by_direction={name: cls.from_dict(term) for name, term in data["by_direction"].items()}
                   if data.get("by_direction") else None,
                   weight=float(data["weight"]) if data.get("weight") is not None else None)


def fold_cuts(sizes: np.ndarray, quantiles: Sequence[float] = FOLD_QUANTILES) -> list[float]:
    """Values at which forward-chaining folds are cut (values at or above a cut are held out).

    The cuts are ``quantiles`` of the distinct values, above the third smallest (at least three remain to fit).
    """
    distinct = np.unique(sizes)
    if len(distinct) < 4:
        return []
    cuts = {float(distinct[min(len(distinct) - 1, max(2, round(q * (len(distinct) - 1))))])
            for q in quantiles}
    return sorted(c for c in cuts if c > distinct[2])


def fold_directions(frame: pd.DataFrame) -> list[tuple[str, np.ndarray, list[float]]]:
    """The folds to cut, per direction of :data:`DIRECTIONS` the runs have: (direction, value per run, cuts).

    By size every sweep with N; by compute (6ND) and by tokens per parameter (D/N, rounded to 0.05 decades so
    that a ladder's levels count once) where the runs have N and D and span at least half a decade of D/N.
    """
    out = []
    if "N" not in frame.columns:
        return out
    n = frame["N"].to_numpy(dtype=float)
    out.append(("size", n, fold_cuts(n)))
    if "D" in frame.columns:
        d = frame["D"].to_numpy(dtype=float)
        out.append(("compute", n * d, fold_cuts(n * d, EXTRA_FOLD_QUANTILES)))
        tpp = 10 ** (np.round(np.log10(d / n) * 20) / 20)
        if np.log10(tpp.max() / tpp.min()) >= 0.5:
            out.append(("tokens_per_param", tpp, fold_cuts(tpp, EXTRA_FOLD_QUANTILES)))
    return out


#: Priors of kappa :func:`learn` knows by name: ``"shared"`` (the population predictive learned across the
#: public sweeps, :mod:`bayes_scaling.shared_prior`, the default) and ``"halfnormal"`` (HalfNormal of scale
#: :data:`KAPPA_PRIOR_SD`, what the package used before).
KAPPA_PRIORS = ("shared", "halfnormal")


def kappa_log_prior(prior: Any = "shared", grid: np.ndarray | None = None) -> np.ndarray:
    """Log prior of kappa on ``grid`` (default the term's grid).

    ``prior`` is a name of :data:`KAPPA_PRIORS` or a :class:`~bayes_scaling.shared_prior.SharedPrior` (e.g. one
    leaving a source out).
    """
    grid = _KAPPA_GRID if grid is None else grid
    if isinstance(prior, str):
        if prior not in KAPPA_PRIORS:
            raise ValueError(f"unknown kappa prior {prior!r}; use one of {', '.join(KAPPA_PRIORS)} or a SharedPrior")
        if prior == "halfnormal":
            return -0.5 * (grid / KAPPA_PRIOR_SD) ** 2
        prior = load_shared_prior()
    if not np.array_equal(np.asarray(prior.grid), grid):
        raise ValueError("the shared prior is on another kappa grid than the term's: refresh it "
                         "(make extrapolation-prior)")
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(prior.weights))


def drift_log_prior(prior: Any = "shared", grid: np.ndarray | None = None) -> np.ndarray:
    """Log prior of the ``"drift"`` design's signed drift ``b`` on ``grid`` (default :func:`drift_grid`).

    A :class:`~bayes_scaling.shared_prior.SharedPrior` that holds the public sweeps' drifts (``"shared"``, the
    default) gives their population predictive; ``"halfnormal"``, or a shared prior learned without drifts, gives
    Normal(0, :data:`DRIFT_PRIOR_SD`) (what the design used before the drifts were pooled).
    """
    grid = _DRIFT_GRID if grid is None else np.asarray(grid, float)
    if isinstance(prior, str):
        if prior not in KAPPA_PRIORS:
            raise ValueError(f"unknown prior {prior!r}; use one of {', '.join(KAPPA_PRIORS)} or a SharedPrior")
        prior = load_shared_prior() if prior == "shared" else None
    weights = getattr(prior, "drift_weights", None)
    if weights is None:
        return -0.5 * (grid / DRIFT_PRIOR_SD) ** 2
    if not np.array_equal(np.asarray(prior.drift_grid), grid):
        raise ValueError("the shared prior is on another drift grid than the term's: refresh it "
                         "(make extrapolation-prior)")
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights))


def fold_log_likelihood(residuals: pd.DataFrame, grid: np.ndarray | None = None, *, design: str = "kappa",
                        drift: np.ndarray | None = None, seed: int = 0, extra_var: float = 0.0) -> np.ndarray:
    """Log-likelihood of the term's scale on ``grid`` (and drift values) given forward-chaining residuals.

    Each held-out model size of each fold counts once (its runs share the fold's fit error). ``extra_var``: a
    variance every residual has besides its own (e.g. a new run's offset, :func:`bayes_scaling.curves.
    learn_schedule_terms`). Returns shape (drift values, grid values); one row of zeros drift when ``drift`` is None.
    """
    grid = (_KAPPA_GRID if design != "inflation" else _LAMBDA_GRID) if grid is None else grid
    drift = np.zeros(1) if drift is None else drift
    out = np.zeros((len(drift), len(grid)))
    if not len(residuals):
        return out
    keys = residuals["fold"].astype(str) + "/" + residuals["size"].astype(str)
    weight_all = 1.0 / keys.map(keys.value_counts()).to_numpy()
    if len(residuals) > MAX_RESIDUALS:
        keep = np.random.default_rng(seed).choice(len(residuals), MAX_RESIDUALS, replace=False)
        residuals, weight_all = residuals.iloc[keep], weight_all[keep] * len(residuals) / MAX_RESIDUALS
    r = residuals["residual"].to_numpy()
    base = residuals["sigma"].to_numpy() ** 2 + residuals["var_param"].to_numpy() + extra_var
    d = residuals["distance"].to_numpy()
    nu = residuals["nu"].to_numpy()
    if design == "inflation":
        scale = grid[:, None] * np.sqrt(base)[None, :]
    else:
        scale = np.sqrt(base[None, :] + (grid[:, None] * d[None, :]) ** 2)
    if len(drift) == 1:
        density = student_t_logpdf((r - drift[0] * d)[None, :], scale, nu[None, :])
        return (density * weight_all[None, :]).sum(axis=1)[None, :]
    # many drifts: what does not depend on the drift (the normalising terms) is computed once, the rest per drift
    # as a weighted sum (the same numbers as student_t_logpdf, written out)
    finite = np.isfinite(nu)
    nu_f = np.where(finite, nu, 1.0)
    fixed = (student_t_log_normaliser(nu)[None, :] - np.log(scale)) @ weight_all
    # the Student-t residuals and the Normal ones apart (each kernel only where it applies)
    t_part, n_part = np.flatnonzero(finite), np.flatnonzero(~finite)
    t_scaled = 1.0 / (scale[:, t_part] ** 2 * nu_f[t_part][None, :])
    t_weight = -(nu_f[t_part] + 1) / 2 * weight_all[t_part]
    n_scaled = 1.0 / scale[:, n_part] ** 2
    n_weight = -0.5 * weight_all[n_part]
    for i, b in enumerate(drift):
        e2 = (r - b * d) ** 2
        out[i] = (fixed + np.log1p(e2[t_part][None, :] * t_scaled) @ t_weight
                  + (e2[n_part][None, :] * n_scaled) @ n_weight)
    return out


def learn(residuals: pd.DataFrame, *, design: str = "kappa", seed: int = 0, prior: Any = "shared") -> Extrapolation:
    """The grid posterior of the extrapolation term from forward-chaining residuals (see the module docstring).

    ``prior`` is kappa's prior (``"kappa"`` and ``"drift"`` designs): ``"shared"`` (default, learned across the
    public sweeps, see :mod:`bayes_scaling.shared_prior`), ``"halfnormal"``, or a
    :class:`~bayes_scaling.shared_prior.SharedPrior`; in the ``"drift"`` design it also sets the drift's prior
    (:func:`drift_log_prior`). The ``"inflation"`` factor keeps its LogNormal prior.
    """
    if design not in DESIGNS:
        raise ValueError(f"unknown extrapolation design {design!r}; use one of {', '.join(DESIGNS)}")
    if design == "none":
        return Extrapolation("none", np.array([0.0, 1e-12]), np.array([1.0, 0.0]), 0, 0, prior="none")
    directional = design == "directional"
    if directional:  # the drift design over all folds, and over each direction's folds alone
        design = "drift"
    grid = _KAPPA_GRID if design != "inflation" else _LAMBDA_GRID
    if prior == "shared" and design != "inflation":
        prior = load_shared_prior()  # once: the per-direction terms below reuse it
    if design == "inflation":
        log_prior = -0.5 * (np.log(grid) / 0.7) ** 2  # LogNormal(0, 0.7) on the factor, truncated at 1
    else:
        log_prior = kappa_log_prior(prior, grid)
    drift = _DRIFT_GRID if design == "drift" else np.zeros(1)
    log_prior = log_prior[None, :] + (drift_log_prior(prior, drift)[:, None] if design == "drift" else 0.0)
    by_direction = _direction_likelihoods(residuals, grid, design, drift, seed)
    if by_direction is not None:  # the same sum, each direction's part kept for the report below
        likelihood = sum(ll for _, ll in by_direction.values())
    else:
        likelihood = fold_log_likelihood(residuals, grid, design=design, drift=drift, seed=seed)
    folds = int(residuals["fold"].nunique()) if len(residuals) else 0
    joint = grid_weights(log_prior + likelihood)
    parts = by_direction
    if parts is None and "direction" in residuals and residuals["direction"].nunique() > 1:
        # each direction's own likelihood (the whole's was subsampled, or its folds span directions)
        parts = {str(name): (part, fold_log_likelihood(part, grid, design=design, drift=drift, seed=seed))
                 for name, part in residuals.groupby("direction", sort=False)}
    directions = alone = None
    if parts is not None:  # what each direction's folds alone give: which direction drove the term
        alone = {name: grid_weights(log_prior + ll) for name, (_, ll) in parts.items()}
        directions = {name: {"folds": int(part["fold"].nunique()), "residuals": len(part),
                             "median": grid_quantiles(grid, alone[name].sum(axis=0), [0.5])[0]}
                      for name, (part, _) in parts.items()}
    if design == "drift":
        whole = Extrapolation("directional" if directional else design, grid, joint.sum(axis=0), folds,
                              len(residuals), drift_grid=drift, joint=joint, directions=directions,
                              prior=_prior_name(prior))
        if directional and parts is not None:
            whole = replace(whole, by_direction=_direction_terms(parts, alone, log_prior, grid, drift, prior,
                                                                 whole.quantiles([0.5])[0]))
        return whole
    return Extrapolation(design, grid, joint[0], folds, len(residuals), directions=directions,
                         prior=_prior_name(prior) if design != "inflation" else "lognormal")


def learn_halfnormal(residuals: pd.DataFrame, grid: np.ndarray, prior_sd: float, *, seed: int = 0) -> Extrapolation:
    """The grid posterior of a ``"kappa"`` term's scale on ``grid`` under a HalfNormal(``prior_sd``) prior.

    For terms other than the loss law's (a benchmark link's, a curve law's across schedules), whose kappa has its
    own units and scale; the likelihood is :func:`fold_log_likelihood`'s. Without residuals: the prior.
    """
    log_post = -0.5 * (grid / prior_sd) ** 2
    if len(residuals):
        log_post = log_post + fold_log_likelihood(residuals, grid, seed=seed)[0]
    folds = int(residuals["fold"].nunique()) if len(residuals) else 0
    return Extrapolation("kappa", np.asarray(grid, float).copy(), grid_weights(log_post), folds, len(residuals),
                         prior=f"halfnormal({prior_sd:g})")


def _prior_name(prior: Any) -> str:
    if isinstance(prior, str):
        return prior
    left = getattr(prior, "excluded", ())
    return "shared" + (f" (without {', '.join(left)})" if left else "")


def _direction_likelihoods(residuals: pd.DataFrame, grid: np.ndarray, design: str, drift: np.ndarray,
                           seed: int) -> dict[str, tuple[pd.DataFrame, np.ndarray]] | None:
    """Each direction's residuals and fold log-likelihood, where their sum is the whole's (else None).

    Folds are numbered apart across directions, so a fold and size (what counts once) lie in one direction and the
    weights are the same in a part as in the whole; beyond :data:`MAX_RESIDUALS` the whole is subsampled, so not.
    """
    if ("direction" not in residuals or residuals["direction"].nunique() < 2 or len(residuals) > MAX_RESIDUALS
            or residuals.groupby("fold")["direction"].nunique().max() > 1):
        return None
    return {str(name): (part, fold_log_likelihood(part, grid, design=design, drift=drift, seed=seed))
            for name, part in residuals.groupby("direction", sort=False)}


def _log_evidence(log_prior: np.ndarray, log_likelihood: np.ndarray) -> float:
    """Log marginal likelihood on the grid: the likelihood averaged over the (normalised) prior."""
    from scipy.special import logsumexp

    return float(logsumexp(log_prior + log_likelihood) - logsumexp(log_prior))


def _direction_terms(parts: Mapping[str, tuple[pd.DataFrame, np.ndarray]], alone: Mapping[str, np.ndarray],
                     log_prior: np.ndarray, grid: np.ndarray, drift: np.ndarray, prior: Any,
                     shared_scale: float) -> dict[str, Extrapolation]:
    """Each direction's own drift term and its weight (``"directional"`` design).

    ``parts``: each direction's residuals and fold log-likelihood; ``alone``: its joint grid posterior from them
    (the one :func:`learn` reports in ``directions``).

    The weight is the posterior probability (even prior odds) that a direction's folds err at a rate of their
    own, the other directions sharing one, against all directions sharing one: the ratio of the marginal
    likelihoods of its residuals and the others' under the two, each a grid integral over the same prior. Where
    a direction's folds are few or agree with the others, the shared term keeps most of the weight.

    **A direction's term only widens**: where its own scale is not larger than the shared one (posterior medians of
    kappa; ``shared_scale``) its weight is 0. A direction's two or three folds are nested cuts of the same runs,
    reaching less far than the forecasts asked of it; that they happened to extrapolate well does not show that a
    farther forecast that way is safer than the law's other extrapolations, while folds that err faster show a
    failure the shared term misses (``make backtests``: chinchilla's over-training split covered 0.73 when its
    folds' narrower term was used, 1.00 with the shared). The scale decides, not the drift: a drift moves a
    forecast, it does not make it less sure.
    """
    total = sum(ll for _, ll in parts.values())
    shared = _log_evidence(log_prior, total)
    out = {}
    for name, (part, ll) in parts.items():
        apart = _log_evidence(log_prior, ll) + _log_evidence(log_prior, total - ll)
        weight = float(1.0 / (1.0 + math.exp(min(shared - apart, 700.0))))
        own = alone[name]
        term = Extrapolation("drift", grid, own.sum(axis=0), int(part["fold"].nunique()), len(part),
                             drift_grid=drift, joint=own, prior=_prior_name(prior))
        out[name] = replace(term, weight=weight if term.quantiles([0.5])[0] > shared_scale else 0.0)
    return out
