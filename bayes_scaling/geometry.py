"""Sampling coordinates in which NUTS sees a straight posterior: a law's loss level and local slopes at its reference.

A sweep measures the loss near its middle, and how fast it falls there, much better than it measures where the
fall ends. In the law's own parameters (``E``, ``alpha``, ``beta``, ``log_n_term``, ``log_d_term``) that shows as a
long curved ridge: ``E`` can rise while the term levels fall and the exponents grow, all along a curve that keeps the
level and the slopes at the reference point. NUTS follows such a ridge with small steps and deep trees, and often
needs the automatic retry.

:func:`slope_coordinates` samples such laws (``L = E + sum of power-law terms``, :data:`TERMS`) in what the data
measure instead, at the reference point (the sweep's geometric means, where every centred input is 0). For the
Chinchilla form, with ``a = exp(log_n_term)`` and ``b = exp(log_d_term)`` the terms there:

- ``level = log L_ref``, ``L_ref = E + a + b``;
- ``log_slope_N = log(alpha a / L_ref)`` and ``log_slope_D = log(beta b / L_ref)``: minus the local slopes
  ``d log L / d log N`` and ``d log L / d log D`` there;
- ``share_D`` and ``share_N``: how ``L_ref`` splits into ``b``, ``a`` and ``E``, by stick-breaking
  (``b / L_ref = sigmoid(share_D)``, ``a / L_ref = sigmoid(-share_D) sigmoid(share_N)``, ``E`` the rest): where the
  fall ends (the curvature), the part the data say least about.

The exponents follow as slope over share (``alpha = slope_N L_ref / a``). The map from these coordinates to the
law's own sampling coordinates (``log E``, log exponents, log term levels) has a Jacobian determinant of exactly 1
in size, so with the law's priors evaluated at the implied values (plus ``log E`` and the log exponents: the densities
of positive parameters on the log scale, which is how the original model samples them) **the model is the same**:
the same posterior of every law parameter, only sampled in other coordinates (tested: the joint log density agrees
point by point with the original model's, and the posteriors agree within Monte Carlo error).

Why the D share first: when a sweep pins one term's curvature (its share), that share must be broken off first for
the other to move along a straight line; breaking ``E`` off first left both shares on a curve. On the 42 training sets
of the backtest splits (12 sweeps, ``python -m benchmarks.convergence``) the D-first order passed every
Chinchilla-form fit but one on its first pass, the N-first order failed five more (li2025's and gadre's, which pin
the D side).

The saturating law (``chinchilla_saturating``, the default of one sweep's fits) adds ``log K``, which moves the
data term's level and both of its local slopes at the reference (a model saturating at ``K N`` tokens also falls
with ``N``). Sampled as it is, ``log K`` was correlated 0.8-0.99 with the level and slopes, and half the backtest
fits needed the retry. Its slope coordinates (:func:`_saturated`) describe the whole loss at the reference, the
saturation included, and replace ``log K`` by ``saturation_N``, the log ratio of the two parts of the N slope (the
saturation's over the N term's), with the shares offset so that the exponents stay about still as the saturation
moves (:func:`_saturation_shift`). On the 42 training sets: 38-40 of 42 first passes (seeds 1-3) instead of 21.

Used by NUTS fits of one sweep (:func:`bayes_scaling.fit`) and, per group, by centred pooled fits whose every term
parameter differs between groups (:func:`applies_pooled`, :func:`slope_logs`); not by the Laplace approximation (a
Gaussian in other coordinates is another approximation). It applies when ``E``, the exponents and the term levels
are free, ``E`` and the exponents have priors on positive numbers and the term levels priors on the real line (the
defaults); otherwise the law is sampled in its own parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bayes_scaling.priors import Prior

__all__ = ["GEOMETRIES", "POSITIVE_PRIORS", "REAL_PRIORS", "SATURATING", "TERMS", "applies", "applies_pooled",
           "positive_names", "slope_coordinates", "slope_logs"]

#: Prior families on positive numbers (the geometry evaluates them at the implied E, alpha, beta).
POSITIVE_PRIORS = ("HalfNormal", "LogNormal", "Gamma", "InverseGamma", "HalfStudentT", "HalfCauchy", "Exponential",
                   "Weibull")
#: Prior families on the whole real line (the term levels).
REAL_PRIORS = ("Normal", "StudentT")
#: ``fit(geometry=...)``: ``"slopes"`` samples the Chinchilla form by :func:`slope_coordinates` where it applies,
#: ``"natural"`` in the law's own parameters.
GEOMETRIES = ("slopes", "natural")

#: Laws sampled in slope coordinates: each power-law term as (input, log level at the reference, exponent), in the
#: order the stick of L_ref is broken (the last share is E's). The D term first: on the backtest splits the D side's
#: curvature is the one sweeps pin down more often (many tokens per parameter at few sizes), and a share that the data
#: pin must come first for the free one to move along a straight line (see the module docstring).
TERMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "chinchilla": (("D", "log_d_term", "beta"), ("N", "log_n_term", "alpha")),
    "data_constrained": (("D", "log_d_term", "beta"), ("N", "log_n_term", "alpha")),
    "chinchilla_saturating": (("D", "log_d_term", "beta"), ("N", "log_n_term", "alpha")),
    "params": (("N", "log_n_term", "alpha"),),
    "tokens": (("D", "log_d_term", "beta"),),
    "compute": (("C", "log_c_term", "alpha_C"),),
    # the level of a curve fit across model sizes, L0(N) = E + exp(log_n_term - alpha_N log(N / N_ref))
    # (bayes_scaling.curves): the law in N alone, its exponent named apart from the curve law's own alpha
    "curve_level": (("N", "log_n_term", "alpha_N"),),
}
#: Laws whose data term saturates at ``K`` tokens per parameter (``log_k``); their slopes include the saturation
#: (:func:`_saturated`).
SATURATING = ("chinchilla_saturating",)
#: Where ``saturation_N`` starts: the saturation carries about 5% of the N slope (``K`` about 20 times the
#: reference's tokens per parameter at the start values).
_START_SATURATION = -3.0
#: Where the chains start (before nutpie's jitter): the default priors' medians, E 1.5, each term 0.3 nats at the
#: reference, exponents 0.3.
_START_E, _START_TERM, _START_EXPONENT = 1.5, 0.3, 0.3


def applies(law_name: str, priors: Mapping[str, Prior]) -> bool:
    """Whether :func:`slope_coordinates` can sample ``law_name`` under ``priors`` (else: the law's own parameters)."""
    terms = TERMS.get(law_name)
    if terms is None:
        return False
    positive = all(priors[name].dist in POSITIVE_PRIORS for name in positive_names(law_name))
    real = all(priors[t[1]].dist in REAL_PRIORS for t in terms)
    return positive and real


def applies_pooled(law_name: str, priors: Mapping[str, Prior], shared: Sequence[str]) -> bool:
    """Whether a centred pooled model can sample each group in slope coordinates (:func:`slope_logs` per group).

    Every term parameter and ``E`` must differ between groups (none in ``shared``) and have the poolable priors of
    the defaults (LogNormal for ``E`` and the exponents, Normal for the term levels).
    """
    terms = TERMS.get(law_name)
    if terms is None:
        return False
    names = ["E", *(t[2] for t in terms), *(t[1] for t in terms)]
    return (not set(names) & set(shared) and all(priors[n].dist == "LogNormal" for n in positive_names(law_name))
            and all(priors[t[1]].dist == "Normal" for t in terms))


def _log_density(prior: Prior, value: Any) -> Any:
    import pymc as pm

    return pm.logp(getattr(pm, prior.dist).dist(**prior.params), value)


def slope_logs(law_name: str, dims: str | None = None, size: int = 1, free: dict[str, Any] | None = None,
               shift: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Create the free slope coordinates in the current PyMC model; the law's parameters on their sampling scale.

    Returns ``log E``, each exponent's log and each term's log level (the law's own sampling coordinates, from
    which the map has Jacobian determinant 1), by parameter name. With ``dims`` (e.g. ``"group"``, of length
    ``size``) every coordinate has one value per group. ``free``, where given, receives the free variables by name.
    ``shift``, where given, is called with the free variables once they exist and returns offsets added to shares
    (by free variable name) that may depend on every free variable but the shares (so the Jacobian stays 1).
    """
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    made: dict[str, Any] = {} if free is None else free

    def flat(name: str, start: float) -> Any:
        if dims is None:
            var = pm.Flat(name, initval=start)
        else:
            var = pm.Flat(name, initval=np.full(size, start), dims=dims)
        made[name] = var
        return var

    terms = TERMS[law_name]
    total = _START_E + _START_TERM * len(terms)
    level = flat("level", math.log(total))
    left = 1.0
    for key, _, _ in terms:
        start = _START_TERM / total
        flat(f"share_{key}", math.log(start / (left - start)))
        flat(f"log_slope_{key}", math.log(_START_EXPONENT * start))
        left -= start
    offsets = shift(made) if shift is not None else {}
    logs: dict[str, Any] = {}
    rest = 0.0  # log of the share not yet broken off
    for key, level_name, exponent in terms:
        share = made[f"share_{key}"] + offsets.get(f"share_{key}", 0.0)
        log_share = rest - pt.softplus(-share)  # log sigmoid(x) = -softplus(-x)
        rest = rest - pt.softplus(share)
        logs[level_name] = level + log_share
        logs[exponent] = made[f"log_slope_{key}"] - log_share  # minus the local slope over the term's share
    logs["E"] = level + rest
    return logs


def positive_names(law_name: str) -> list[str]:
    """The parameters of :data:`TERMS` sampled on the log scale: E and the exponents."""
    return ["E", *(t[2] for t in TERMS[law_name])]


def _saturation_t(free: Mapping[str, Any]) -> Any:
    """``t = log(D_ref / (N_ref K))`` from the slope coordinates (see :func:`_saturated`)."""
    import pytensor.tensor as pt

    return free["log_slope_N"] - pt.softplus(-free["saturation_N"]) - free["log_slope_D"]


def _saturation_shift(free: dict[str, Any]) -> dict[str, Any]:
    """Create ``saturation_N``; the offsets of the shares that keep the exponents still as the saturation moves.

    With the slopes fixed, more saturation at the reference means a larger ``beta`` (``beta (1 - s)`` is the D
    slope) and a smaller part of the N slope for the N term; without offsets the shares would have to follow
    (``share_D`` up by about ``softplus(t)``, ``share_N`` down by about ``softplus(saturation_N)``) for the exponents
    to stay where their priors and the data put them. Adding those offsets to the shares (they depend on the slopes
    and ``saturation_N`` only: a unit-diagonal triangular step) leaves the exponents about still instead.
    """
    import pymc as pm
    import pytensor.tensor as pt

    free["saturation_N"] = pm.Flat("saturation_N", initval=_START_SATURATION)
    return {"share_D": pt.softplus(_saturation_t(free)), "share_N": -pt.softplus(free["saturation_N"])}


def _saturated(logs: dict[str, Any], free: Mapping[str, Any], log_ref: Mapping[str, Any]) -> None:
    """Put the data term's saturation at ``K`` tokens per parameter into the slope coordinates (in place).

    With ``t = log(D_ref / (N_ref K))`` and ``s = sigmoid(t)`` the saturation at the reference, the saturated data
    term there is ``b_eff = b exp(beta softplus(t))``; it falls with ``D`` at the local slope ``beta (1 - s)`` and,
    because it saturates at ``K N`` tokens, with ``N`` at ``beta s``. The coordinates of :func:`slope_logs` then
    describe what the data measure, saturation included: ``level`` is ``log(E + a + b_eff)``, ``share_D`` splits off
    ``b_eff`` (offset by :func:`_saturation_shift`, as ``share_N`` is), ``log_slope_D`` is the log of the whole
    local D slope, ``log_slope_N`` the log of the whole local N slope (the N term's and the saturation's), and the
    new ``saturation_N`` is the log ratio of the two parts of the N slope (the saturation's over the N term's), from
    which ``log K`` follows. Far beyond the data (``K`` large) ``saturation_N`` is minus ``log K`` plus a constant
    and the other coordinates no longer move with it.

    Each step is triangular with a unit diagonal, and ``(log_slope_N, saturation_N) -> (N term's log slope, log K)``
    has determinant -1, so the Jacobian determinant stays 1 in size: the same model, the prior of ``log K`` evaluated
    at its implied value.
    """
    import pytensor.tensor as pt

    ratio = free["saturation_N"]
    t = _saturation_t(free)
    logs["log_k"] = log_ref["D"] - log_ref["N"] - t
    logs["alpha"] = logs["alpha"] - pt.softplus(ratio)  # the N term's own slope: the whole times sigmoid(-ratio)
    logs["beta"] = logs["beta"] + pt.softplus(t)  # beta = beta (1 - s) / (1 - s), -log(1 - s) = softplus(t)
    logs["log_d_term"] = logs["log_d_term"] - pt.exp(logs["beta"]) * pt.softplus(t)


def slope_coordinates(law_name: str, param_names: Sequence[str], priors: Mapping[str, Prior],
                      log_ref: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Create the law's parameters from slope coordinates inside the current PyMC model (see the module docstring).

    Returns the law's parameters ``param_names`` by name (the sampled ones as PyMC deterministics, so they are in
    the posterior as before; parameters outside the terms, e.g. ``r_star``, from their priors as usual). The free
    variables are ``level``, ``log_slope_<input>`` per term and ``share_<input>`` per term; the priors of the term
    parameters and ``E`` enter as one potential, ``law_prior``. A law of :data:`SATURATING` whose ``log_k`` has a
    prior on the real line also samples ``saturation_N`` (see :func:`_saturated`) and needs ``log_ref``, the logs of
    the reference ``N`` and ``D``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if not applies(law_name, priors):
        raise ValueError(f"slope coordinates do not apply to law {law_name!r} with these priors")
    free: dict[str, Any] = {}
    # the saturation in the slopes where K is sampled; a fixed K leaves the other coordinates as they are
    saturating = law_name in SATURATING and priors["log_k"].dist in REAL_PRIORS
    if saturating and log_ref is None:
        raise ValueError(f"slope coordinates of law {law_name!r} need log_ref, the logs of the reference N and D")
    logs = slope_logs(law_name, free=free, shift=_saturation_shift if saturating else None)
    if saturating:
        _saturated(logs, free, log_ref)
    positive = positive_names(law_name)
    values = {name: pt.exp(value) if name in positive else value for name, value in logs.items()}
    # the priors at the implied values; E and the exponents on the log scale, as the original model samples them
    density = sum(_log_density(priors[name], value) for name, value in values.items())
    pm.Potential("law_prior", density + sum(logs[name] for name in positive))
    params = {name: pm.Deterministic(name, value) for name, value in values.items()}
    return {name: params[name] if name in params else priors[name].create(name) for name in param_names}
