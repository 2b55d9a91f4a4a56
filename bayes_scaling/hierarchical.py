"""Hierarchical fits: one law across several sweeps, exponents shared, the other parameters partially pooled.

The model is :func:`bayes_scaling.model.build_model` with ``group=`` (see :mod:`bayes_scaling.model` for the
pooling); :func:`fit_hierarchical` samples it and returns a pooled :class:`~bayes_scaling.posterior.Fit`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bayes_scaling.data import Sweep, load_sweep
from bayes_scaling.fitting import calibrate
from bayes_scaling.geometry import GEOMETRIES, applies_pooled
from bayes_scaling.inference import Sampling, sample, warn_if_unconverged
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.model import Likelihood, build_model, resolve_priors
from bayes_scaling.posterior import Fit

__all__ = ["fit_hierarchical"]


def fit_hierarchical(
    data: pd.DataFrame | str | Sweep,
    group: str,
    law: str | ScalingLaw = "chinchilla",
    *,
    shared: Sequence[str] | None = None,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    sampling: Sampling | None = None,
    parameterization: str = "noncentred",
    geometry: str = "slopes",
    extrapolation: str = "kappa",
    warn: bool = True,
    **options: Any,
) -> Fit:
    """Fit ``law`` to every group of ``data[group]`` at once, sharing ``shared`` and pooling the rest.

    Parameters
    ----------
    data : DataFrame, CSV path or Sweep
        Runs of all groups (see :func:`bayes_scaling.load_sweep`), with the grouping column.
    group : str
        Column naming each run's group (dataset, data mix, setup, ...); at least two groups.
    law : str or ScalingLaw
        The law (default ``"chinchilla"``).
    shared : sequence of str, optional
        Parameters common to all groups; default the law's exponents (``alpha``, ``beta``, ...).
        The others must have Normal or LogNormal priors (the defaults do) and get partially pooled
        group-level values.
    parameterization : {"noncentred", "centred", "unpooled"}
        How group values are drawn (see :mod:`bayes_scaling.model`; ``"unpooled"``: each group's values from the
        law's prior on their own, as :func:`bayes_scaling.compare_recipes` does).
    geometry : {"slopes", "natural"}
        ``"slopes"`` (default): where every term parameter differs between groups (``shared=()``) and the priors are
        the poolable defaults, each group is sampled in its loss level, local slopes and shares
        (:mod:`bayes_scaling.geometry`) with the population density on its implied values: the centred model (the
        same model as the non-centred one, in other coordinates), so ``parameterization`` is then "centred" and
        ``info["geometry"]`` says "slopes". On porian2024's ten RefinedWeb setups (1,164 runs, ``shared=()``):
        non-centred in the law's parameters took 121 leapfrog steps a draw, 203 s and ended at R-hat 1.013; in slope
        coordinates 15 steps, 43 s, R-hat 1.004 (2 divergences in 4,000 draws). Elsewhere the law's own
        parameters, as asked by ``parameterization``.
    extrapolation : {"kappa", "none"}
        ``"kappa"`` (default): each group's extrapolation term from its own forward-chaining folds (what
        ``group_fit`` forecasts with); ``"none"`` skips them (for analyses of the parameters only, as ``explain``).
    priors, likelihood, sampling, warn, **options
        As in :func:`bayes_scaling.fit` (``options``: :class:`~bayes_scaling.inference.Sampling` fields). For
        pooled parameters the prior is that of the population location.

    Returns
    -------
    Fit
        Pooled (``fit.group``, ``fit.groups``, ``fit.shared``): group-level parameters have a ``group``
        dimension; ``fit.group_fit(label)`` gives one group's posterior, with the extrapolation term learned from
        that group's own forward-chaining folds.
    """
    config = Sampling.of(sampling, **options)
    sweep = load_sweep(data)
    law = get_law(law)
    resolved = resolve_priors(law, priors, likelihood)
    reference = sweep.reference()
    shared = tuple(law.exponents if shared is None else shared)
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; use one of {', '.join(GEOMETRIES)}")
    if extrapolation not in ("kappa", "none"):
        raise ValueError(f"unknown extrapolation {extrapolation!r}; use 'kappa' or 'none'")
    if geometry == "slopes" and parameterization != "unpooled" and applies_pooled(law.name, resolved, shared):
        parameterization = "centred"  # the same model; its slope coordinates are centred ones
    else:
        geometry = "natural"
    start = time.perf_counter()
    model = build_model(law, sweep, priors=resolved, likelihood=likelihood, reference=reference, group=group,
                        shared=shared, parameterization=parameterization, geometry=geometry)
    sampling_start = time.perf_counter()
    idata = sample(model, config)
    info = {**config.to_dict(), "sampling_seconds": round(time.perf_counter() - sampling_start, 3),
            "parameterization": parameterization, "geometry": geometry}
    info.pop("progress")
    result = Fit(law=law, sweep=sweep, priors=resolved, likelihood=likelihood, reference=reference, idata=idata,
                 info=info, group=group, shared=shared)
    # each group's own forward-chaining folds (refitted with the population priors) set its extrapolation term
    calibration_start = time.perf_counter()
    if extrapolation == "kappa":
        result.info["extrapolation_by_group"] = {label: calibrate(result.group_fit(label), design="kappa").to_dict()
                                                 for label in result.groups}
    result.info["extrapolation_seconds"] = round(time.perf_counter() - calibration_start, 3)
    result.info["fit_seconds"] = round(time.perf_counter() - start, 3)
    if warn:
        warn_if_unconverged(result.diagnostics(), label=f"hierarchical fit of {law.name!r}")
    return result
