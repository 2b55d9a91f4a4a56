"""Hierarchical fits: one law across several sweeps, exponents shared, the other parameters partially pooled.

Sweeps from different datasets, data mixes or training setups measure different losses (another
tokenizer, another eval set), so their irreducible loss ``E`` and term levels differ; whether their
exponents differ is the scientific question. :func:`fit_hierarchical` shares the parameters named in
``shared`` (default: the law's exponents) across groups and gives every other law parameter a value per
group drawn from a common population (partial pooling; ``<name>_raw`` in the posterior holds z_g, or
theta_g / log theta_g when centred):

    theta_g = m + tau * z_g,   z_g ~ Normal(0, 1)             (Normal prior on theta)
    log theta_g = log m + tau * z_g                            (LogNormal prior on theta, e.g. E)

(the default, ``parameterization="noncentred"``; ``"centred"`` draws theta_g ~ Normal(m, tau) directly),
where the population location ``m`` takes the law's prior and the spread ``tau`` has a HalfNormal prior of
half the prior's scale. A small sweep then borrows strength from the others: its
group values shrink toward the population where its own runs say little. Each group has its own noise
scale ``sigma``; Student-t's ``nu`` is shared.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.data import DataError, Sweep, centred_logs, load_sweep
from bayes_scaling.inference import Diagnostics, Sampler, diagnose, sample, warn_if_unconverged
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.likelihoods import get_noise_model
from bayes_scaling.model import OBSERVED, Likelihood, resolve_priors
from bayes_scaling.priors import Prior, PriorError

__all__ = ["POOL_SCALE", "HierarchicalFit", "build_hierarchical_model", "fit_hierarchical"]

#: Prior scale of a group-level spread tau, as a fraction of the parameter's prior scale.
POOL_SCALE = 0.5
_POOLABLE = ("Normal", "LogNormal")
#: Measured on gadre2024 and marin_isoflop (3 groups each, 4 x 1000 draws): non-centred gave 0-7 divergences,
#: centred 74-285 (the funnel between the spreads and the group values), so non-centred is the default.
PARAMETERIZATIONS = ("noncentred", "centred")


def _group_codes(sweep: Sweep, group: str) -> tuple[np.ndarray, list[str]]:
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


def _centred(parameterization: str) -> bool:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}, got {parameterization!r}")
    return parameterization == "centred"


def build_hierarchical_model(
    law: str | ScalingLaw,
    sweep: Sweep,
    group: str,
    *,
    shared: Sequence[str] | None = None,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    reference: Mapping[str, float] | None = None,
    parameterization: str = "noncentred",
) -> Any:
    """The PyMC model of :func:`fit_hierarchical` (coordinates ``run`` and ``group``)."""
    import pymc as pm
    import pytensor.tensor as pt

    law = get_law(law)
    sweep.require(law.columns, law=law.name)
    resolved = resolve_priors(law, priors, likelihood)
    shared = tuple(law.exponents if shared is None else shared)
    unknown = [n for n in shared if n not in law.param_names]
    if unknown:
        raise PriorError(f"shared= names {unknown} that law {law.name!r} lacks; its parameters: {law.param_names}")
    codes, labels = _group_codes(sweep, group)
    if len(labels) < 2:
        raise DataError(f"column {group!r} has one group ({labels[0]!r}); a hierarchical fit needs at least two")
    centred = _centred(parameterization)
    reference = dict(reference or sweep.reference())
    columns = {col: sweep.column(col) for col in law.columns}
    x_values = centred_logs(law.inputs, columns, reference)

    with pm.Model(coords={"run": np.arange(len(sweep)), "group": labels}) as model:
        x = {key: pm.Data(f"x_{key}", value, dims="run") for key, value in x_values.items()}
        log_ref = {key: pm.Data(f"log_ref_{key}", math.log(value)) for key, value in reference.items()}
        observed = pm.Data(f"{OBSERVED}_data", np.log(sweep.column("loss")), dims="run")
        index = pm.Data("group_index", codes, dims="run")
        per_group: dict[str, Any] = {}
        per_run: dict[str, Any] = {}
        for name in law.param_names:
            prior = resolved[name]
            if name in shared or prior.is_fixed:
                per_group[name] = per_run[name] = prior.create(name)
                continue
            if prior.dist not in _POOLABLE:
                raise PriorError(
                    f"partial pooling of {name!r} needs a Normal or LogNormal prior, got {prior}; share it "
                    f"(shared=[..., {name!r}]) or give it a Normal/LogNormal prior"
                )
            location = pm.Normal(f"{name}_pop", mu=prior.params["mu"], sigma=prior.params["sigma"])
            spread = pm.HalfNormal(f"{name}_tau", sigma=POOL_SCALE * prior.params["sigma"])
            if centred:
                value = pm.Normal(f"{name}_raw", mu=location, sigma=spread, dims="group")
            else:
                value = location + spread * pm.Normal(f"{name}_raw", 0.0, 1.0, dims="group")
            per_group[name] = pm.Deterministic(name, pt.exp(value) if prior.dist == "LogNormal" else value,
                                               dims="group")
            per_run[name] = per_group[name][index]
        for name, fn in law.derived.items():
            value = fn(pt, per_group, log_ref)
            pm.Deterministic(name, value, dims="group" if value.ndim == 1 else None)
        mu = law.log_loss(pt, per_run, x)
        noise = resolved["sigma"]
        if noise.is_fixed:
            sigma = noise.create("sigma")
        else:
            sigma = getattr(pm, noise.dist)("sigma", **noise.params, dims="group")[index]
        noise_model = get_noise_model(likelihood)
        shared_noise = {name: resolved[name].create(name) for name in noise_model.noise_names if name != "sigma"}
        noise_model.pymc(OBSERVED, mu, {**shared_noise, "sigma": sigma}, observed, "run")
    return model


class HierarchicalFit:
    """A law fitted across groups with shared exponents (see the module docstring).

    Attributes
    ----------
    law : ScalingLaw
    sweep : Sweep
        All runs, with the ``group`` column.
    group : str
        The grouping column.
    groups : list of str
        Group labels (sorted).
    shared : tuple of str
        Parameters shared across groups.
    idata : xarray.DataTree
        Posterior: group-level parameters have a ``group`` dimension.
    """

    def __init__(self, *, law: ScalingLaw, sweep: Sweep, group: str, groups: list[str], shared: tuple[str, ...],
                 priors: Mapping[str, Prior], likelihood: str, reference: Mapping[str, float], idata: Any,
                 info: Mapping[str, Any]) -> None:
        self.law, self.sweep, self.group, self.groups, self.shared = law, sweep, group, groups, shared
        self.priors, self.likelihood, self.reference = dict(priors), likelihood, dict(reference)
        self.idata, self.info = idata, dict(info)
        self._diagnostics: Diagnostics | None = None

    def __repr__(self) -> str:
        return (f"<HierarchicalFit law={self.law.name!r} groups={len(self.groups)} runs={len(self.sweep)} "
                f"shared={list(self.shared)}>")

    @property
    def sampled_names(self) -> list[str]:
        """Free variables of the sampler (population locations, spreads, offsets, shared, noise)."""
        posterior = self.idata["posterior"]
        names = []
        for name in self.law.param_names:
            if self.priors[name].is_fixed:
                continue
            names += [name] if name in self.shared else [f"{name}_pop", f"{name}_tau", f"{name}_raw"]
        names += [n for n in ("sigma", "nu") if n in posterior and not self.priors[n].is_fixed]
        return names

    def diagnostics(self) -> Diagnostics:
        """R-hat, bulk ESS, divergences and tree depth over every sampled variable (computed once)."""
        if self._diagnostics is None:
            self._diagnostics = diagnose(self.idata, self.sampled_names)
        return self._diagnostics

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Table indexed by (parameter, group): mean, sd, HDI at ``prob``, R-hat, bulk ESS.

        Shared parameters have group ``"(shared)"``; ``<name>_tau`` rows give the spread across groups.
        """
        import arviz as az

        if not 0 < prob < 1:
            raise ValueError(f"prob must be between 0 and 1, got {prob}")
        posterior = self.idata["posterior"]
        noise = [n for n in ("sigma", "nu") if n in posterior]
        spreads = [f"{n}_tau" for n in self.law.param_names if f"{n}_tau" in posterior]
        names = [*self.law.summary_names, *noise, *spreads]
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in names:
                table = az.summary(self.idata, var_names=[name], ci_prob=prob, ci_kind="hdi", round_to="none")
                table = table.astype(float)
                low, high = [c for c in table.columns if c.startswith("hdi")][:2]
                has_group = "group" in posterior[name].dims
                for label, (_, row) in zip(self.groups if has_group else ["(shared)"], table.iterrows(), strict=True):
                    rows.append({"parameter": name, "group": label, "mean": row["mean"], "sd": row["sd"],
                                 "hdi_low": row[low], "hdi_high": row[high], "r_hat": row["r_hat"],
                                 "ess_bulk": row["ess_bulk"]})
        return pd.DataFrame(rows).set_index(["parameter", "group"])

    def to_dict(self, prob: float = 0.9) -> dict[str, Any]:
        """JSON-friendly summary: law, groups, shared names, parameters by group, diagnostics, info."""
        params: dict[str, dict[str, dict[str, float | None]]] = {}
        for (name, label), row in self.summary(prob).iterrows():
            params.setdefault(name, {})[label] = {
                key: (float(value) if np.isfinite(value) else None) for key, value in row.items()
            }
        return {"law": self.law.name, "group_column": self.group, "groups": self.groups,
                "shared": list(self.shared), "likelihood": self.likelihood, "runs": len(self.sweep), "prob": prob,
                "params": params, "diagnostics": self.diagnostics().to_dict(), "info": self.info}

    def group_fit(self, label: str) -> Any:
        """The posterior of one group as a plain :class:`~bayes_scaling.results.Fit` (forecasts, planning).

        The group's runs are its sweep; shared parameters keep all their draws.
        """
        import xarray as xr

        from bayes_scaling.results import Fit, _attach_observations

        if label not in self.groups:
            raise KeyError(f"no group {label!r}; groups: {', '.join(self.groups)}")
        posterior = self.idata["posterior"].to_dataset()
        keep = [*self.law.param_names, *self.law.derived, *[n for n in ("sigma", "nu") if n in posterior]]
        selected = xr.Dataset({
            name: posterior[name].sel(group=label, drop=True) if "group" in posterior[name].dims else posterior[name]
            for name in keep
        })
        tree = xr.DataTree.from_dict({"posterior": selected, "sample_stats": self.idata["sample_stats"].to_dataset()})
        sweep = self.sweep.subset(self.sweep.frame[self.group].astype(str).to_numpy() == label)
        result = Fit(law=self.law, sweep=sweep, priors=self.priors, likelihood=self.likelihood,
                     reference=self.reference, idata=tree,
                     info={**self.info, "hierarchical_group": label, "group_column": self.group})
        _attach_observations(result, log_likelihood=len(sweep) <= 20_000)
        from bayes_scaling.extrapolation import calibrate

        # the group's own forward-chaining folds (refitted with the population priors) set its extrapolation term
        result.info["extrapolation"] = calibrate(result).to_dict()
        return result


def fit_hierarchical(
    data: pd.DataFrame | str | Sweep,
    group: str,
    law: str | ScalingLaw = "chinchilla",
    *,
    shared: Sequence[str] | None = None,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    sampler: Sampler = "nutpie",
    target_accept: float = 0.9,
    parameterization: str = "noncentred",
    warn: bool = True,
    progress: bool = False,
) -> HierarchicalFit:
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
    parameterization : {"noncentred", "centred"}
        How group values are drawn (see the module docstring).
    priors, likelihood, draws, tune, chains, seed, sampler, target_accept, warn, progress
        As in :func:`bayes_scaling.fit`. For pooled parameters the prior is that of the population location.

    Returns
    -------
    HierarchicalFit
    """
    sweep = load_sweep(data)
    law = get_law(law)
    resolved = resolve_priors(law, priors, likelihood)
    reference = sweep.reference()
    shared = tuple(law.exponents if shared is None else shared)
    start = time.perf_counter()
    model = build_hierarchical_model(law, sweep, group, shared=shared, priors=resolved, likelihood=likelihood,
                                     reference=reference, parameterization=parameterization)
    sampling_start = time.perf_counter()
    idata = sample(model, draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler,
                   target_accept=target_accept, progress=progress)
    info = {"seed": seed, "sampler": sampler, "draws": int(draws), "tune": int(tune), "chains": int(chains),
            "sampling_seconds": round(time.perf_counter() - sampling_start, 3),
            "parameterization": parameterization}
    result = HierarchicalFit(law=law, sweep=sweep, group=group, groups=[str(g) for g in model.coords["group"]],
                             shared=shared, priors=resolved, likelihood=likelihood,
                             reference=reference, idata=idata, info=info)
    result.info["fit_seconds"] = round(time.perf_counter() - start, 3)
    if warn:
        warn_if_unconverged(result.diagnostics(), label=f"hierarchical fit of {law.name!r}")
    return result
