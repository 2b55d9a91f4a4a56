"""Build the PyMC model for a law and a sweep: the only place a graph is built.

The likelihood is on the log of the loss, ``log(loss_i) ~ StudentT(nu, log L(N_i, D_i), sigma)``
by default: a robust likelihood with a fitted scale ``sigma`` and fitted degrees of
freedom ``nu``, the Bayesian counterpart of the Huber loss used by Hoffmann et al.
and Epoch AI. ``likelihood="normal"`` selects a Normal instead.

**Pooling across groups** (``group=``, used by :func:`bayes_scaling.fit_hierarchical`). Sweeps from different
datasets, data mixes or training setups measure different losses (another tokenizer, another eval set), so their
irreducible loss ``E`` and term levels differ; whether their exponents differ is the scientific question. The
parameters named in ``shared`` (default: the law's exponents) are common to all groups; every other law parameter
gets a value per group drawn from a common population (partial pooling; ``<name>_raw`` in the posterior holds z_g,
or theta_g / log theta_g when centred):

    theta_g = m + tau * z_g,   z_g ~ Normal(0, 1)             (Normal prior on theta)
    log theta_g = log m + tau * z_g                            (LogNormal prior on theta, e.g. E)

(the default, ``parameterization="noncentred"``; ``"centred"`` draws theta_g ~ Normal(m, tau) directly),
where the population location ``m`` takes the law's prior and the spread ``tau`` has a HalfNormal prior of
:data:`POOL_SCALE` times the prior's scale. A small sweep then borrows strength from the others: its group values
shrink toward the population where its own runs say little. Each group has its own noise scale ``sigma``;
Student-t's ``nu`` is shared. ``parameterization="unpooled"`` gives each group its own values from the law's prior
instead (no population): what :func:`bayes_scaling.compare_recipes` uses for a few recipes with many runs each.

**Noise split** (``split=``, see :mod:`bayes_scaling.noise`): known evaluation noise per run and replicate runs
are kept apart from the scatter around the law; replicate cells enter through a closed-form marginal density.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayes_scaling.data import DataError, Sweep, centred_logs
from bayes_scaling.geometry import GEOMETRIES, applies, applies_pooled, slope_coordinates, slope_logs
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.likelihoods import NOISE_MODELS, NU_PRIOR, SIGMA_PRIOR, get_noise_model
from bayes_scaling.noise import NoiseSplit
from bayes_scaling.priors import Prior, PriorError, merge_priors

__all__ = ["LIKELIHOODS", "NOISE_PRIORS", "PARAMETERIZATIONS", "POOL_SCALE", "Likelihood", "build_model",
           "group_codes", "model_data", "pooled_names", "resolve_priors", "select_shared"]

Likelihood = Literal["student_t", "normal"]
#: Names of the noise models (see :mod:`bayes_scaling.likelihoods`).
LIKELIHOODS: tuple[str, ...] = tuple(NOISE_MODELS)

#: Priors of the noise on log-loss: sigma (scale) and nu (Student-t degrees of freedom).
NOISE_PRIORS: dict[str, Prior] = {"sigma": SIGMA_PRIOR, "nu": NU_PRIOR}
OBSERVED = "log_loss"

#: Prior scale of a group-level spread tau, as a fraction of the parameter's prior scale.
POOL_SCALE = 0.5
_POOLABLE = ("Normal", "LogNormal")
#: Measured on gadre2024 and marin_isoflop (3 groups each, 4 x 1000 draws): non-centred gave 0-7 divergences,
#: centred 74-285 (the funnel between the spreads and the group values), so non-centred is the default.
#: ``"unpooled"``: each group's value drawn from the law's prior on its own (no population, no spread): for a few
#: groups with many runs each (recipes of one sweep), where a spread of 2-3 values is barely identified and its
#: funnel slows NUTS down, and a comparison should not shrink groups toward each other.
PARAMETERIZATIONS = ("noncentred", "centred", "unpooled")


def group_codes(sweep: Sweep, group: str) -> tuple[np.ndarray, list[str]]:
    """Integer code of each run's group and the sorted group labels; clear errors for a missing/empty column."""
    if group not in sweep.frame.columns:
        raise DataError(
            f"group column {group!r} is not in the sweep; it has {', '.join(map(repr, sweep.frame.columns))}"
        )
    values = sweep.frame[group]
    if values.isna().any():
        rows = np.flatnonzero(values.isna().to_numpy())[:5].tolist()
        raise DataError(f"group column {group!r} is empty in rows {rows}; every run needs a group")
    codes, labels = pd.factorize(values.astype(str), sort=True)
    return codes, [str(label) for label in labels]


def pooled_names(law: ScalingLaw, priors: Mapping[str, Prior], shared: Sequence[str],
                 parameterization: str = "noncentred") -> list[str]:
    """The free variables behind a pooled fit's law parameters: shared ones, and population/spread/offsets."""
    names = []
    for name in law.param_names:
        if priors[name].is_fixed:
            continue
        pooled = name not in shared and parameterization != "unpooled"
        names += [f"{name}_pop", f"{name}_tau", f"{name}_raw"] if pooled else [name]
    return names


def resolve_priors(
    law: ScalingLaw, priors: Mapping[str, Any] | None, likelihood: str = "student_t",
    scatter: Mapping[str, Any] | None = None,
) -> dict[str, Prior]:
    """The full prior set of a fit: law defaults and noise priors, with user priors merged over them.

    ``scatter`` (an :func:`~bayes_scaling.scatter.edge_spec`) adds the priors of the scatter's growth toward the
    sweep's edges.
    """
    from bayes_scaling.scatter import growth_priors

    noise = {**get_noise_model(likelihood).noise_priors, **growth_priors(scatter)}
    merged = merge_priors({**law.default_priors, **noise}, priors, law_name=f"law {law.name!r}")
    for key in noise:
        if merged[key].is_fixed and merged[key].value <= 0:
            raise PriorError(f"{key} must be positive, got {merged[key].value}")
    return merged


def model_data(law: ScalingLaw, sweep: Sweep, *, reference: Mapping[str, float] | None = None,
               scatter: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values of the data containers :func:`build_model` gives a one-sweep model, by container name.

    A compiled model of the same structure reads another sweep when these are set (see
    :mod:`bayes_scaling.compiled`), without building a PyMC model for it.
    """
    from bayes_scaling.scatter import edge_names, edge_position

    reference = dict(reference or sweep.reference())
    columns = {col: sweep.column(col) for col in law.columns}
    values: dict[str, Any] = {f"x_{key}": value for key, value in centred_logs(law.inputs, columns, reference).items()}
    values.update({f"log_ref_{key}": math.log(value) for key, value in reference.items()})
    values[f"{OBSERVED}_data"] = np.log(sweep.column("loss"))
    if scatter is not None:
        position = edge_position(sweep.frame, scatter)
        values.update({f"edge_{name}": position[i] for i, name in enumerate(edge_names(scatter))})
    return values


def build_model(
    law: str | ScalingLaw,
    sweep: Sweep,
    *,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    reference: Mapping[str, float] | None = None,
    group: str | None = None,
    shared: Sequence[str] | None = None,
    parameterization: str = "noncentred",
    split: NoiseSplit | None = None,
    scatter: Mapping[str, Any] | None = None,
    geometry: str = "natural",
    switchable: bool = False,
) -> Any:
    """Build the PyMC model of ``law`` for ``sweep``, one set of parameters or pooled across groups.

    Parameters
    ----------
    law : str or ScalingLaw
        The law (see :func:`bayes_scaling.laws`).
    sweep : Sweep
        Validated runs.
    priors : mapping, optional
        Overrides for the law's default priors and the noise priors ``sigma``/``nu``.
    likelihood : {"student_t", "normal"}
        Noise model on log-loss.
    reference : mapping, optional
        Reference scales for N, D, C (default: the sweep's geometric means).
    group : str, optional
        Column naming each run's group: pool the law across groups (see the module docstring); at least two.
    shared : sequence of str, optional
        With ``group``: the parameters common to all groups (default: the law's exponents). The others need
        Normal or LogNormal priors.
    parameterization : {"noncentred", "centred", "unpooled"}
        With ``group``: how group values are drawn (``"unpooled"``: each from the law's prior, no population).
    split : NoiseSplit, optional
        Evaluation noise and replicate runs of ``sweep`` (:func:`bayes_scaling.noise.find_split`): the likelihood
        then separates them from the scatter around the law (see :mod:`bayes_scaling.noise`); ``sigma`` is that
        scatter, and with replicates a ``sigma_seed`` is added. The observed variable covers the runs measured
        once (dimension ``single``) and a potential ``replicate_cells`` the rest.
    geometry : {"natural", "slopes"}
        The coordinates NUTS samples a one-sweep model in: the law's own parameters, or (``"slopes"``, where
        :func:`bayes_scaling.geometry.applies`) the loss level and local slopes at the reference point, the same
        model (see :mod:`bayes_scaling.geometry`). A pooled model uses it with ``parameterization="centred"`` when
        every term parameter differs between groups (``shared=()``; :func:`~bayes_scaling.geometry.applies_pooled`),
        else the law's parameters.
    switchable : bool
        With ``parameterization="unpooled"``: every free law parameter is drawn both common to all groups
        (``<name>_common``) and per group (``<name>_own``), and a data container ``share_<name>`` (1 for the names
        in ``shared``) says which one the law uses; the other follows its prior and touches nothing. One compiled
        model then serves every choice of ``shared`` (:func:`bayes_scaling.compare_recipes`' variants);
        :func:`select_shared` turns its posterior into that of the plain unpooled model.

    Returns
    -------
    pymc.Model
        With data containers for the centred inputs (``x_N``, ...), the log reference scales
        (``log_ref_N``, ...) and the observed log-losses (``log_loss_data``), the observed variable
        ``log_loss`` and deterministics for derived quantities; with ``group``, also ``group_index`` and the
        coordinate ``group``.

    Raises
    ------
    PriorError
        ``shared`` names a parameter the law lacks, or a pooled parameter's prior is not Normal/LogNormal.
    DataError
        The group column is missing, has empty cells, or holds one group.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from bayes_scaling.scatter import edge_names

    law = get_law(law)
    sweep.require(law.columns, law=law.name)
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    if scatter is not None and group is not None:
        raise ValueError("a scatter growing toward the edges is for a fit of one sweep, not a pooled fit (group=)")
    resolved = resolve_priors(law, priors, likelihood, scatter)
    reference = dict(reference or sweep.reference())
    values = model_data(law, sweep, reference=reference, scatter=scatter if group is None else None)
    coords: dict[str, Any] = {"run": np.arange(len(sweep))}
    if group is not None:
        shared = tuple(law.exponents if shared is None else shared)
        unknown = [n for n in shared if n not in law.param_names]
        if unknown:
            raise PriorError(f"shared= names {unknown} that law {law.name!r} lacks; its parameters: {law.param_names}")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}, "
                             f"got {parameterization!r}")
        codes, labels = group_codes(sweep, group)
        if len(labels) < 2:
            raise DataError(f"column {group!r} has one group ({labels[0]!r}); a pooled fit needs at least two")
        coords["group"] = labels

    with pm.Model(coords=coords) as model:
        # Every number that depends on the sweep is a data container, so a compiled model can be reused
        # for another sweep of the same size (see bayes_scaling.compiled).
        x = {key: pm.Data(f"x_{key}", values[f"x_{key}"], dims="run") for key in law.inputs}
        log_ref = {key: pm.Data(f"log_ref_{key}", values[f"log_ref_{key}"]) for key in reference}
        observed = pm.Data(f"{OBSERVED}_data", values[f"{OBSERVED}_data"], dims="run")
        noise_model = get_noise_model(likelihood)
        if group is None:
            if geometry == "slopes" and applies(law.name, resolved):
                params = slope_coordinates(law.name, law.param_names, resolved, log_ref=log_ref)
            else:
                params = {name: resolved[name].create(name) for name in law.param_names}
            for name, fn in law.derived.items():
                pm.Deterministic(name, fn(pt, params, log_ref))
            noise = {name: resolved[name].create(name) for name in noise_model.noise_names}
            if scatter is not None:
                growth = sum(resolved[name].create(name) * pm.Data(f"edge_{name}", values[f"edge_{name}"],
                                                                   dims="run")
                             for name in edge_names(scatter))
                noise["sigma"] = noise["sigma"] * pt.exp(growth)
        else:
            index = pm.Data("group_index", codes, dims="run")
            if switchable and parameterization != "unpooled":
                raise ValueError("switchable=True is for parameterization='unpooled'")
            per_group, params = _pooled_params(law, resolved, shared, index, parameterization, switchable,
                                               slopes=geometry == "slopes")
            for name, fn in law.derived.items():
                value = fn(pt, per_group, log_ref)
                pm.Deterministic(name, value, dims="group" if value.ndim == 1 else None)
            noise = {}
            for name in noise_model.noise_names:  # each group its own run-to-run scatter sigma; nu is shared
                prior = resolved[name]
                noise[name] = (getattr(pm, prior.dist)(name, **prior.params, dims="group")[index]
                               if name == "sigma" and not prior.is_fixed else prior.create(name))
        mu = law.log_loss(pt, params, x)
        if split is None:
            noise_model.pymc(OBSERVED, mu, noise, observed, "run")
        else:
            _split_likelihood(noise_model, mu, noise, values[f"{OBSERVED}_data"], split)
    return model


def select_shared(posterior: Any, law: ScalingLaw, priors: Mapping[str, Prior], shared: Sequence[str]) -> Any:
    """The posterior of a ``switchable`` model as the plain unpooled model's (``build_model(switchable=True)``).

    A shared parameter becomes one value per draw (its ``<name>_common`` draws), the others keep their value per
    group; the ``_common``/``_own`` variables go. ``posterior`` is an xarray Dataset; a new one is returned.
    """
    out = posterior.copy()
    for name in law.param_names:
        if priors[name].is_fixed:
            continue
        if name in shared:
            out[name] = posterior[f"{name}_common"]
        out = out.drop_vars([f"{name}_common", f"{name}_own"])
    return out


def _split_likelihood(noise_model: Any, mu: Any, noise: Mapping[str, Any], y: np.ndarray, split: NoiseSplit) -> None:
    """The likelihood with evaluation noise and replicate cells apart (inside the model context).

    Every number from the data is a data container (``eval_var``; with replicate cells also the runs measured once
    and the cells' runs, their log-losses, evaluation variances and membership), so the compiled model can be
    reused for another sweep with the same structure (with or without replicate cells).
    """
    import pymc as pm
    import pytensor.tensor as pt

    from bayes_scaling.noise import cell_log_density, replicate_members

    if len(split.cell) != len(y):
        raise ValueError(f"split= describes {len(split.cell)} runs, the sweep has {len(y)}")
    sigma_run = noise["sigma"] * pt.ones_like(mu)
    if not split.has_replicates:
        eval_var = pm.Data("eval_var", split.eval_sd**2, dims="run")
        observed = pm.modelcontext(None)[f"{OBSERVED}_data"]
        noise_model.pymc(OBSERVED, mu, {**noise, "sigma": pt.sqrt(sigma_run**2 + eval_var)}, observed, "run")
        return
    single, repeated = np.flatnonzero(split.cell < 0), np.flatnonzero(split.cell >= 0)
    eval2 = split.eval_sd**2
    seed2 = pm.HalfNormal("sigma_seed", sigma=SIGMA_PRIOR.params["sigma"]) ** 2
    model = pm.modelcontext(None)
    if len(single):
        model.add_coord("single", single)
        index = pm.Data("single_index", single, dims="single")
        observed = pm.Data(f"{OBSERVED}_single", y[single], dims="single")
        scale = pt.sqrt(sigma_run[index] ** 2 + seed2 + pm.Data("eval_var_single", eval2[single], dims="single"))
        noise_model.pymc(OBSERVED, mu[index], {**noise, "sigma": scale}, observed, "single")
    index = pm.Data("replicate_index", repeated)
    residual = pm.Data(f"{OBSERVED}_replicates", y[repeated]) - mu[index]
    variance = seed2 + pm.Data("eval_var_replicates", eval2[repeated])
    members = pm.Data("replicate_members", replicate_members(split))
    density = cell_log_density(pt, residual, variance * pt.ones_like(residual), sigma_run[index] ** 2, members)
    pm.Potential("replicate_cells", density.sum())


def _pooled_params(law: ScalingLaw, resolved: Mapping[str, Prior], shared: Sequence[str], index: Any,
                   parameterization: str, switchable: bool = False,
                   slopes: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(value per group, value per run) of each law parameter of a pooled model (inside its model context).

    ``slopes`` with ``parameterization="centred"`` (where :func:`bayes_scaling.geometry.applies_pooled`): each
    group's values are sampled in slope coordinates, and the population density of each (log) group value enters
    as a potential ``<name>_population``: the centred model, whose sampling coordinates the map reaches with
    Jacobian determinant 1; ``<name>_raw`` holds the group values on the sampling scale as before.
    """
    import pymc as pm
    import pytensor.tensor as pt

    per_group: dict[str, Any] = {}
    per_run: dict[str, Any] = {}
    sloped: dict[str, Any] = {}
    if slopes and parameterization == "centred" and applies_pooled(law.name, resolved, shared):
        sloped = slope_logs(law.name, dims="group", size=len(pm.modelcontext(None).coords["group"]))
    for name in law.param_names:
        prior = resolved[name]
        if switchable and not prior.is_fixed:
            common = getattr(pm, prior.dist)(f"{name}_common", **prior.params)
            own = getattr(pm, prior.dist)(f"{name}_own", **prior.params, dims="group")
            switch = pm.Data(f"share_{name}", float(name in shared))
            per_group[name] = pm.Deterministic(name, switch * common + (1.0 - switch) * own, dims="group")
            per_run[name] = per_group[name][index]
            continue
        if name in shared or prior.is_fixed:
            per_group[name] = per_run[name] = prior.create(name)
            continue
        if parameterization == "unpooled":
            per_group[name] = getattr(pm, prior.dist)(name, **prior.params, dims="group")
            per_run[name] = per_group[name][index]
            continue
        if prior.dist not in _POOLABLE:
            raise PriorError(
                f"partial pooling of {name!r} needs a Normal or LogNormal prior, got {prior}; share it "
                f"(shared=[..., {name!r}]) or give it a Normal/LogNormal prior"
            )
        location = pm.Normal(f"{name}_pop", mu=prior.params["mu"], sigma=prior.params["sigma"])
        spread = pm.HalfNormal(f"{name}_tau", sigma=POOL_SCALE * prior.params["sigma"])
        if name in sloped:  # centred, the group values from slope coordinates
            value = pm.Deterministic(f"{name}_raw", sloped[name], dims="group")
            pm.Potential(f"{name}_population", pm.logp(pm.Normal.dist(location, spread), value).sum())
        elif parameterization == "centred":
            value = pm.Normal(f"{name}_raw", mu=location, sigma=spread, dims="group")
        else:
            value = location + spread * pm.Normal(f"{name}_raw", 0.0, 1.0, dims="group")
        per_group[name] = pm.Deterministic(name, pt.exp(value) if prior.dist == "LogNormal" else value, dims="group")
        per_run[name] = per_group[name][index]
    return per_group, per_run
