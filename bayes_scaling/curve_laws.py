"""Loss-curve laws: the loss along one training run as a function of its learning-rate schedule.

Like the sweep laws (:mod:`bayes_scaling.laws`), a curve law is a small declared object: a name, its parameters
with default priors, and **one** expression written against an array namespace ``xp`` (numpy for forecasts over
posterior draws, ``pytensor.tensor`` for the PyMC model). What it reads from a schedule is computed once per
(schedule, steps) by :func:`curve_inputs`:

* ``area``: S1(t), the summed learning rate of steps 1..t (warmup included), in units of the peak rate times
  :data:`AREA_UNIT` steps, so that the parameters have the same scale for any peak rate;
* the *decay terms*: each step ``k`` after the warmup at which the rate falls, its fall ``drop_k = lr_{k-1} - lr_k``
  and rate ``lr_k`` (both relative to the peak) and, for every evaluated step ``t >= k``, the area since it,
  ``S_k(t) = S1(t) - S1(k - 1)``. Consecutive decay steps are merged into at most ``max_terms`` blocks (the fall
  summed, the rate and area at the block's middle step), which keeps 100k-step schedules cheap; a schedule
  with fewer falling steps is exact.

The laws:

* ``multipower`` (Luo et al. 2025, "A Multi-Power Law for Loss Curve Prediction Across Learning Rate
  Schedules"): ``L(t) = L0 + A (S1(t))^(-alpha) - B sum_k drop_k G(lr_k^(-gamma) S_k(t))``,
  ``G(x) = 1 - (C x + 1)^(-beta)``;
* ``annealing`` (Tissue et al. 2024, "Scaling Law with Learning Rate Annealing"):
  ``L(t) = L0 + A (S1(t))^(-alpha) - C S2(t)``, ``S2(t) = sum_k drop_k (1 - lam^(t - k + 1)) / (1 - lam)``
  (the annealing area with momentum ``lam``; ``lam`` fixed at 0.999 as in the paper unless given a prior).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bayes_scaling.priors import Prior
from bayes_scaling.schedules import Schedule

__all__ = ["AREA_UNIT", "CURVE_LAWS", "CurveInputs", "CurveLaw", "curve_inputs", "get_curve_law", "stack_inputs",
           "unstack_inputs", "with_pairs"]

#: Steps per unit of area: S1 is measured in (peak rate x 1,000 steps).
AREA_UNIT = 1000.0
#: Most decay terms kept per schedule before consecutive ones are merged.
MAX_TERMS = 2000


@dataclass(frozen=True)
class CurveInputs:
    """What a curve law reads from one schedule at the evaluated steps.

    Attributes
    ----------
    steps : ndarray
        The evaluated steps, shape (n,).
    area : ndarray
        S1 at each step (peak rate x :data:`AREA_UNIT` steps), shape (n,).
    drop, rate : ndarray
        Each decay term's fall and rate, relative to the peak, shape (m,) (runs stacked by :func:`stack_inputs`:
        one row per run).
    since : ndarray
        S_k(t): the area from term ``k`` to step ``t`` (0 where ``k`` comes after ``t``), shape (n, m).
    lag : ndarray
        ``t - k + 1`` in steps (0 where ``k`` comes after ``t``), shape (n, m).
    active : ndarray
        1.0 where term ``k`` is at or before step ``t``, shape (n, m).
    peak : float
        The schedule's peak rate (the unit of ``drop`` and ``rate``).
    pair_row, pair_term, pair_since, pair_lag : ndarray or None
        The same terms as a list of the active (step, term) pairs only (:func:`with_pairs`): each pair's row in
        ``steps``, its term, its ``since`` and its ``lag``, shape (p,). None (default): the laws use the dense
        (n, m) arrays. A fit's model uses the pairs: a schedule that decays from its start (cosine) has about
        half its (step, term) entries inactive, a late decay (WSD) most of them, and the laws then skip them.
    """

    steps: np.ndarray
    area: np.ndarray
    drop: np.ndarray
    rate: np.ndarray
    since: np.ndarray
    lag: np.ndarray
    active: np.ndarray
    peak: float
    pair_row: Any = None
    pair_term: Any = None
    pair_since: Any = None
    pair_lag: Any = None


def curve_inputs(schedule: Schedule, steps: Any, *, max_terms: int = MAX_TERMS, peak: float | None = None
                 ) -> CurveInputs:
    """The law inputs of ``schedule`` at ``steps`` (see the module docstring).

    ``peak`` is the unit of the rates (default the schedule's own peak): give the same one to schedules fitted
    together, so that their parameters mean the same.
    """
    t = schedule.check(steps).reshape(-1)
    if t.size and t.min() < 1:
        raise ValueError("curve laws are evaluated at steps >= 1 (step 0 has seen no training)")
    unit = float(peak) if peak is not None else schedule.peak
    if unit <= 0:
        raise ValueError("the schedule's peak learning rate must be positive")
    lr = schedule.lr / unit
    cumulative = np.concatenate([[0.0], np.cumsum(lr)])  # cumulative[t] = S1(t) in peak-steps
    warm = int(np.argmax(schedule.lr))  # index of the first step at the peak: the warmup ends there
    falls = np.concatenate([[0.0], lr[:-1] - lr[1:]])  # falls[i]: rate of step i minus step i+1 (0-based)
    k = np.arange(warm + 1, lr.size)  # 0-based indices of steps after the warmup's end
    k = k[falls[k] != 0]
    drop, index = falls[k], k
    if k.size > max_terms:  # merge consecutive terms into blocks, each at its middle
        edges = np.linspace(0, k.size, max_terms + 1).round().astype(int)
        drop = np.add.reduceat(falls[k], edges[:-1])
        index = k[(edges[:-1] + edges[1:] - 1) // 2]
    step_k = index + 1  # 1-based step number of each term
    active = (step_k[None, :] <= t[:, None]).astype(float)
    since = np.maximum(cumulative[t][:, None] - cumulative[step_k - 1][None, :], 0.0) * active / AREA_UNIT
    lag = np.maximum(t[:, None] - step_k[None, :] + 1, 0) * active
    return CurveInputs(steps=t, area=cumulative[t] / AREA_UNIT, drop=drop, rate=lr[index], since=since,
                       lag=lag.astype(float), active=active, peak=unit)


def with_pairs(x: CurveInputs) -> CurveInputs:
    """``x`` with its active (step, term) pairs listed (see :class:`CurveInputs`); the laws then sum only those."""
    row, term = np.nonzero(np.asarray(x.active) > 0)
    return replace(x, pair_row=row.astype(np.int64), pair_term=term.astype(np.int64),
                   pair_since=np.asarray(x.since, float)[row, term], pair_lag=np.asarray(x.lag, float)[row, term])


def stack_inputs(parts: Sequence[CurveInputs]) -> CurveInputs:
    """Several runs' inputs as one set of arrays: steps one after another, decay terms padded to one width.

    ``drop`` and ``rate`` get one row per run; ``since``, ``lag`` and ``active`` one row per step; when every run
    lists its active pairs (:func:`with_pairs`), the pairs run after one another too. The padding
    (fall 0, rate 1, area 0, inactive) adds nothing to any loss. A fit's model holds this one set of arrays
    however many runs it has and evaluates the law on each run's part of them (:func:`unstack_inputs`).
    """
    parts = list(parts)
    if not parts:
        raise ValueError("stack_inputs needs at least one run's inputs")
    if len({float(x.peak) for x in parts}) > 1:
        raise ValueError("runs stacked together must share the unit of their rates (give curve_inputs one peak=)")
    width = max(x.drop.size for x in parts)

    def padded(value: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((*value.shape[:-1], width), fill)
        out[..., :value.shape[-1]] = value
        return out

    pairs = {}
    if all(x.pair_row is not None for x in parts):  # each run's pairs one after another, indices within the run
        pairs = {name: np.concatenate([getattr(x, name) for x in parts])
                 for name in ("pair_row", "pair_term", "pair_since", "pair_lag")}
    return CurveInputs(steps=np.concatenate([x.steps for x in parts]), area=np.concatenate([x.area for x in parts]),
                       peak=parts[0].peak, **pairs,
                       **{name: np.stack([padded(getattr(x, name), fill) for x in parts])
                          for name, fill in (("drop", 0.0), ("rate", 1.0))},
                       **{name: np.concatenate([padded(getattr(x, name), 0.0) for x in parts])
                          for name in ("since", "lag", "active")})


def unstack_inputs(stacked: Any, parts: Sequence[CurveInputs]) -> list[CurveInputs]:
    """Each run's inputs as slices of ``stacked`` (numpy arrays or PyTensor variables) of :func:`stack_inputs`.

    ``parts`` gives each run's sizes (steps, decay terms). A run without decay terms gets empty numpy terms, so
    the law evaluates only its power part.
    """
    out, start, first = [], 0, 0
    for index, part in enumerate(parts):
        n, m = part.steps.size, part.drop.size
        rows = slice(start, start + n)
        if m == 0:
            out.append(replace(part, area=stacked.area[rows]))
        else:
            pairs = {}
            if stacked.pair_row is not None and part.pair_row is not None:
                taken = slice(first, first + part.pair_row.size)
                first += part.pair_row.size
                pairs = {name: getattr(stacked, name)[taken]
                         for name in ("pair_row", "pair_term", "pair_since", "pair_lag")}
            out.append(replace(part, area=stacked.area[rows], drop=stacked.drop[index, :m],
                               rate=stacked.rate[index, :m], since=stacked.since[rows, :m],
                               lag=stacked.lag[rows, :m], active=stacked.active[rows, :m], **pairs))
        start += n
    return out


Expression = Callable[[Any, Mapping[str, Any], CurveInputs], Any]


@dataclass(frozen=True)
class CurveLaw:
    """A loss-curve law: parameters with default priors and one expression for numpy and PyTensor.

    ``loss(xp, params, inputs)`` returns the loss at ``inputs.steps``; parameters may carry a leading draw
    dimension (numpy: arrays of shape (draws, 1) give shape (draws, n)).
    """

    name: str
    title: str
    formula: str
    citation: str
    default_priors: Mapping[str, Prior]
    loss: Expression

    @property
    def param_names(self) -> tuple[str, ...]:
        """The law's parameters, in order."""
        return tuple(self.default_priors)


def _power(xp: Any, p: Mapping[str, Any], x: CurveInputs) -> Any:
    return p["L0"] + p["A"] * xp.exp(-p["alpha"] * xp.log(x.area))


def _multipower_loss(xp: Any, p: Mapping[str, Any], x: CurveInputs) -> Any:
    if _no_decay(x):
        return _power(xp, p, x)
    # G(lr_k^-gamma S_k(t)) = 1 - (C lr_k^-gamma S_k(t) + 1)^-beta, per evaluated step and term (or active pair;
    # parameters of shape (draws, 1) then broadcast against the pairs, not against a step axis)
    if x.pair_row is None:
        inner = _expand(xp, p["C"]) * xp.exp(-_expand(xp, p["gamma"]) * xp.log(x.rate)) * x.since + 1.0
        g = 1.0 - xp.exp(-_expand(xp, p["beta"]) * xp.log(inner))
        drop = (g * x.active * x.drop).sum(axis=-1)
    else:
        factor = xp.exp(-p["gamma"] * xp.log(x.rate))  # lr_k^-gamma, once per term
        inner = p["C"] * factor[..., x.pair_term] * x.pair_since + 1.0
        g = 1.0 - xp.exp(-p["beta"] * xp.log(inner))
        drop = _row_sums(xp, g * x.drop[x.pair_term], x)
    return _power(xp, p, x) - p["B"] * drop


def _annealing_loss(xp: Any, p: Mapping[str, Any], x: CurveInputs) -> Any:
    if _no_decay(x):
        return _power(xp, p, x)
    if x.pair_row is None:
        lam = _expand(xp, p["lam"])
        momentum = (1.0 - xp.exp(x.lag * xp.log(lam))) / (1.0 - lam)
        s2 = (momentum * x.active * x.drop).sum(axis=-1)
    else:
        lam = p["lam"]
        momentum = (1.0 - xp.exp(x.pair_lag * xp.log(lam))) / (1.0 - lam)
        s2 = _row_sums(xp, momentum * x.drop[x.pair_term], x)
    return _power(xp, p, x) - p["C"] * s2 / AREA_UNIT


def _row_sums(xp: Any, values: Any, x: CurveInputs) -> Any:
    """Sum each active pair's ``values`` (last axis) into its step: shape (..., steps)."""
    if xp is np:
        values, rows = np.asarray(values), np.asarray(x.pair_row)
        out = np.zeros((*values.shape[:-1], np.size(x.area)))
        if not rows.size:
            return out
        if (np.diff(rows) >= 0).all():  # pairs listed step by step (:func:`with_pairs`): one pass per step
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            out[..., rows[starts]] = np.add.reduceat(values, starts, axis=-1)
        else:
            np.add.at(np.moveaxis(out, -1, 0), rows, np.moveaxis(values, -1, 0))
        return out
    if values.ndim != 1:
        raise ValueError("the PyTensor pair sums take scalar parameters")
    return xp.inc_subtensor(xp.zeros_like(x.area)[x.pair_row], values)


def _no_decay(x: CurveInputs) -> bool:
    """Whether the schedule has no decay term (a fit's inputs may be data containers: those always have some)."""
    return isinstance(x.drop, np.ndarray) and x.drop.size == 0


def _expand(xp: Any, value: Any) -> Any:
    """A parameter with a trailing axis for the decay terms: (draws, 1) -> (draws, 1, 1); scalars unchanged."""
    ndim = getattr(value, "ndim", 0)
    return value[..., None] if ndim else value


CURVE_LAWS: dict[str, CurveLaw] = {
    "multipower": CurveLaw(
        name="multipower",
        title="Multi-power law: power law in the LR area minus a saturating loss drop per LR decrease",
        formula="L(t) = L0 + A S1(t)^-alpha - B sum_k (lr_{k-1} - lr_k) [1 - (C lr_k^-gamma S_k(t) + 1)^-beta]",
        citation="Luo et al. 2025, A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules, "
                 "ICLR 2025, arXiv:2503.12811",
        default_priors={
            "L0": Prior("Normal", mu=2.5, sigma=1.5), "A": Prior("LogNormal", mu=-0.5, sigma=1.0),
            # B: the most a full decay can lower the loss (nats per unit of relative fall): median 0.22, 95%
            # 0.03-1.6 (annealing gains are a few percent of the loss); wider, a curve seen before any decay
            # (a run in flight) forecast negative losses for some draws
            "alpha": Prior("LogNormal", mu=-0.7, sigma=0.7), "B": Prior("LogNormal", mu=-1.5, sigma=1.0),
            "C": Prior("LogNormal", mu=0.0, sigma=2.0), "beta": Prior("LogNormal", mu=-0.7, sigma=0.7),
            "gamma": Prior("LogNormal", mu=-0.7, sigma=0.7),
        },
        loss=_multipower_loss,
    ),
    "annealing": CurveLaw(
        name="annealing",
        title="LR-annealing law: power law in the LR area minus the annealing area with momentum",
        formula="L(t) = L0 + A S1(t)^-alpha - C S2(t), S2(t) = sum_k (lr_{k-1} - lr_k) (1 - lam^(t-k+1)) / (1 - lam)",
        citation="Tissue et al. 2024, Scaling Law with Learning Rate Annealing, arXiv:2408.11029",
        default_priors={
            "L0": Prior("Normal", mu=2.5, sigma=1.5), "A": Prior("LogNormal", mu=-0.5, sigma=1.0),
            "alpha": Prior("LogNormal", mu=-0.7, sigma=0.7), "C": Prior("LogNormal", mu=-1.0, sigma=1.5),
            "lam": Prior.fixed(0.999),
        },
        loss=_annealing_loss,
    ),
}


def get_curve_law(name: str | CurveLaw) -> CurveLaw:
    """The curve law called ``name`` (a CurveLaw passes through); ``ValueError`` listing them otherwise."""
    if isinstance(name, CurveLaw):
        return name
    if name not in CURVE_LAWS:
        raise ValueError(f"unknown curve law {name!r}; use one of {', '.join(CURVE_LAWS)}")
    return CURVE_LAWS[name]


def brute_force(law: str, params: Mapping[str, float], schedule: Schedule, steps: Sequence[int]) -> np.ndarray:
    """The law evaluated step by step with plain loops, straight from its formula (for checking; slow)."""
    lr = schedule.lr / schedule.peak
    warm = int(np.argmax(schedule.lr))
    out = []
    for t in steps:
        s1 = lr[:t].sum() / AREA_UNIT
        value = params["L0"] + params["A"] * s1 ** (-params["alpha"])
        for i in range(warm + 1, t):  # 0-based step index i is step i + 1
            fall = lr[i - 1] - lr[i]
            if fall == 0:
                continue
            since = lr[i:t].sum() / AREA_UNIT
            if law == "multipower":
                g = 1 - (params["C"] * lr[i] ** (-params["gamma"]) * since + 1) ** (-params["beta"])
                value -= params["B"] * fall * g
            else:
                lam = params["lam"]
                value -= params["C"] * fall * (1 - lam ** (t - i)) / (1 - lam) / AREA_UNIT
        out.append(value)
    return np.array(out)
