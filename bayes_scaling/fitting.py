"""Fit a law to a sweep: the one place a posterior is sampled from data.

:func:`fit` builds the model, samples it (once more with safer settings when the checks fail), learns the
extrapolation term from forward-chaining folds inside the sweep (:func:`fold_residuals`, :func:`calibrate`) and
returns a :class:`~bayes_scaling.posterior.Fit`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.approx import METHODS, laplace
from bayes_scaling.data import DataError, Sweep, check_identifiable, load_sweep
from bayes_scaling.extrapolation import (
    DEFAULT_DESIGN,
    DESIGNS,
    DIRECTIONS,
    KAPPA_PRIORS,
    Extrapolation,
    distance,
    distance_columns,
    fold_directions,
    learn,
)
from bayes_scaling.geometry import GEOMETRIES, applies
from bayes_scaling.inference import (
    AUTO_RETRY_DRAWS,
    ConvergenceWarning,
    Sampling,
    quiet_pymc,
    sample_with_retry,
    warn_if_unconverged,
)
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.laws import DEFAULT_LAW, ScalingLaw, get_law
from bayes_scaling.model import OBSERVED, Likelihood, build_model, model_data, resolve_priors
from bayes_scaling.posterior import Fit, attach_observations, package_versions
from bayes_scaling.scatter import SCATTERS, edge_spec
from bayes_scaling.threads import serial_blas

__all__ = ["AUTO_RETRY_DRAWS", "LARGE_SWEEP", "LargeSweepWarning", "calibrate", "fit", "fold_residuals",
           "large_sweep_message", "prior_predictive"]

#: Above this many runs a NUTS fit says up front how long it will take (and that ``method="laplace"`` exists).
LARGE_SWEEP = 20_000
#: Wall seconds per run per (draw + tuning step) per chain of a NUTS fit on this project's 2-core machine
#: (measured: 4 x (1000 + 1000) iterations of the Chinchilla law on 100,000 runs took 273 s with nutpie).
_SECONDS_PER_RUN_ITERATION = 273.0 / (100_000 * 4 * 2000)


class LargeSweepWarning(UserWarning):
    """A NUTS fit of a large sweep will take long; the message says how long and what is faster."""


def large_sweep_message(runs: int, *, draws: int = 1000, tune: int = 1000, chains: int = 4) -> str:
    """What a NUTS fit of ``runs`` runs will cost here, and the faster alternatives."""
    seconds = runs * chains * (draws + tune) * _SECONDS_PER_RUN_ITERATION
    minutes = seconds / 60
    when = f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {seconds:.0f} s"
    return (f"{runs:,} runs: a NUTS fit with {chains} chains x ({tune} tuning + {draws} draws) takes {when} on a "
            "2-core machine (time grows with runs x draws); method='laplace' (CLI: --method laplace) gives an "
            "approximate posterior in seconds, and fewer --draws/--tune shorten NUTS")


def fit(
    data: pd.DataFrame | str | Path | Sweep,
    law: str | ScalingLaw = DEFAULT_LAW,
    *,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    sampling: Sampling | None = None,
    log_likelihood: bool | None = None,
    method: str = "nuts",
    warn: bool = True,
    extrapolation: str = DEFAULT_DESIGN,
    extrapolation_prior: str = "shared",
    scatter: str = "constant",
    retry: bool | None = None,
    geometry: str = "slopes",
    **options: Any,
) -> Fit:
    """Fit a scaling law to a sweep with NUTS (or, for a quick look, a Laplace approximation).

    Parameters
    ----------
    data : DataFrame, CSV path or Sweep
        The runs: columns N (parameters), D (tokens), loss (nats/token), optional C (FLOPs).
    law : str or ScalingLaw
        Which law (``bayes_scaling.laws()`` lists them). Default :data:`~bayes_scaling.laws.DEFAULT_LAW`,
        ``"chinchilla_saturating"``: the Chinchilla form whose data term saturates at ``K`` tokens per parameter
        (``K`` beyond the data is the Chinchilla form); ``"chinchilla"`` for the classical form.
    priors : mapping, optional
        Overrides by parameter name: a :class:`~bayes_scaling.priors.Prior`, a dict
        ``{"dist": ..., ...}``, or a number to fix the parameter.
    likelihood : {"student_t", "normal"}
        Noise on log-loss; Student-t (default) is robust to outlying runs.
    sampling : Sampling, optional
        Sampling options (:class:`~bayes_scaling.inference.Sampling`: ``draws``, ``tune``, ``chains``, ``seed``,
        ``sampler``, ``target_accept``, ``progress``); default 4 chains x 1000 draws after 1000 tuning steps with
        nutpie, no seed.
    **options
        The same options as keywords, replacing those of ``sampling``: ``fit(data, draws=500, seed=1)``.
    log_likelihood : bool, optional
        Keep pointwise log-likelihood (for LOO); default: when the sweep has ≤ 20,000 runs.
    method : {"nuts", "laplace"}
        ``"nuts"`` samples the posterior (default). ``"laplace"`` is a fast **approximation** for quick
        looks on large sweeps (Gaussian at the posterior mode, see :mod:`bayes_scaling.approx`):
        ``info["method"]`` records it and ``info["approximation"]["pareto_k"]`` measures its quality.
    warn : bool
        Warn (:class:`~bayes_scaling.inference.ConvergenceWarning`) when R-hat > 1.01,
        bulk ESS < 400, or there are divergences; with ``method="laplace"``
        (:class:`~bayes_scaling.approx.ApproximationWarning`) when Pareto k-hat > 0.7.
    extrapolation : {"kappa", "drift", "directional", "inflation", "none"}
        How forecasts account for the law being slightly wrong beyond the sweep, learned from forward-chaining
        folds inside the sweep (see :mod:`bayes_scaling.extrapolation`): ``"drift"`` adds an error growing with
        the distance beyond the data and the signed drift the folds show (both starting from what the public
        sweeps' folds say, :mod:`bayes_scaling.shared_prior`); ``"directional"`` (default) the same, and where the
        folds of one direction (size, next budget, over-training) err faster than all together, a forecast that
        goes beyond the sweep in that direction takes their term (with the probability the folds give that the
        direction errs at its own rate); ``"kappa"`` the growing error only; ``"inflation"`` one factor on the
        predictive scale; ``"none"`` parameter uncertainty and scatter only. Stored in ``info["extrapolation"]``.
    extrapolation_prior : {"shared", "halfnormal"}
        Prior of the term's scale (and drift): ``"shared"`` (default) is learned across the public sweeps' own
        folds and shipped with the package (:mod:`bayes_scaling.shared_prior`), so a sweep with few folds starts
        from what sweeps in general do; ``"halfnormal"`` is the earlier fixed HalfNormal(0.02) (and a drift
        Normal(0, 0.02)).
    scatter : {"constant", "edges"}
        The run-to-run scatter: one ``sigma`` everywhere (default), or growing toward the sweep's edges (tokens per
        parameter and size for laws of N and D: the ends of IsoFLOP profiles), with parameters
        ``sigma_edge_*`` (see :mod:`bayes_scaling.scatter`). Stored in ``info["scatter"]``.
    retry : bool, optional
        When the NUTS diagnostics fail (R-hat, bulk ESS, divergences, tree depth), sample once more with three
        times the tuning, four times the draws and ``target_accept=0.99``: the weakly identified posteriors of real
        sweeps (one decade of N, E against the N term) are long curved ridges that the default step size
        explores slowly. ``None`` (default) retries production-size fits (``draws * chains`` of at least
        :data:`AUTO_RETRY_DRAWS`), not quick looks. ``info["escalated"]`` records the first pass's diagnostics.
    geometry : {"slopes", "natural"}
        The coordinates NUTS samples in (the model is the same): ``"slopes"`` (default) samples the Chinchilla
        form as its loss level and local slopes at the sweep's reference point plus where the fall ends
        (:mod:`bayes_scaling.geometry`), which straightens the curved ridge of ``E`` against the terms (the
        saturating law with its whole level and slopes at the reference, and ``log K`` as the log ratio of the
        saturation's part of the N slope to the N term's); ``"natural"`` samples the law's own parameters. Other
        laws, fixed or unusual priors and the Laplace approximation always use the law's parameters.
        ``info["geometry"]`` records what was sampled.

    Returns
    -------
    Fit

    Raises
    ------
    DataError
        When the sweep has no more runs than free parameters, or an input of the law does not vary (a single N
        or a single D), so that the law cannot be identified.
    KeyboardInterrupt
        On Ctrl-C while sampling: nothing partial is returned.

    Warns
    -----
    LargeSweepWarning
        Before sampling more than :data:`LARGE_SWEEP` runs with NUTS: the expected time, and the fast
        ``method="laplace"``.
    """
    config = Sampling.of(sampling, **options)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if extrapolation not in DESIGNS:
        raise ValueError(f"unknown extrapolation {extrapolation!r}; use one of {', '.join(DESIGNS)}")
    if extrapolation_prior not in KAPPA_PRIORS:
        raise ValueError(f"unknown extrapolation_prior {extrapolation_prior!r}; use one of {', '.join(KAPPA_PRIORS)}")
    if scatter not in SCATTERS:
        raise ValueError(f"unknown scatter {scatter!r}; use one of {', '.join(SCATTERS)}")
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; use one of {', '.join(GEOMETRIES)}")
    sweep = load_sweep(data)
    law = get_law(law)
    spec = edge_spec(law, sweep) if scatter == "edges" else None
    resolved = resolve_priors(law, priors, likelihood, spec)
    n_law = sum(not resolved[n].is_fixed for n in law.param_names)
    n_free = sum(not prior.is_fixed for prior in resolved.values())
    if len(sweep) <= n_free:
        raise DataError(
            f"law {law.name!r} with a {likelihood} likelihood has {n_free} free parameters ({n_law} in the law, "
            f"{n_free - n_law} for the noise) but the sweep has only {len(sweep)} runs; it needs more runs than "
            "parameters: add runs or choose a simpler law"
        )
    check_identifiable(law, sweep)
    if method == "nuts" and len(sweep) > LARGE_SWEEP:
        warnings.warn(large_sweep_message(len(sweep), draws=config.draws, tune=config.tune, chains=config.chains),
                      LargeSweepWarning, stacklevel=2)
    reference = sweep.reference()
    start = time.perf_counter()
    if method != "nuts" or not applies(law.name, resolved):
        geometry = "natural"
    model = build_model(law, sweep, priors=resolved, likelihood=likelihood, reference=reference, scatter=spec,
                        geometry=geometry)
    if log_likelihood is None:
        log_likelihood = len(sweep) <= 20_000
    # the structure, not the data: a compiled model is reused for any sweep of this law (any number of runs)
    cache_key = (law.name, id(law), likelihood, tuple(sorted((k, repr(v)) for k, v in resolved.items())), scatter,
                 geometry)
    sampling_start = time.perf_counter()
    approximation = None
    if method == "laplace":
        with warnings.catch_warnings():
            if not warn:
                warnings.simplefilter("ignore")
            idata, approximation = laplace(model, draws=config.draws, chains=config.chains, seed=config.seed,
                                           cache_key=cache_key)
    # The extrapolation term's refits need the law, the sweep and the priors, not the draws: with NUTS they run while
    # the chains sample (one core each), so that a first fit's compile of the refits' model costs no extra time.
    learned: dict[str, Any] = {}

    def learn_term() -> None:
        begin = time.perf_counter()
        skeleton = Fit(law=law, sweep=sweep, priors=resolved, likelihood=likelihood, reference=reference, idata=None,
                       info={"scatter": spec} if spec is not None else None)
        learned["term"] = calibrate(skeleton, design=extrapolation, seed=0 if config.seed is None else config.seed,
                                    prior=extrapolation_prior)
        learned["seconds"] = time.perf_counter() - begin

    escalated = None
    if method == "nuts":
        idata, escalated = sample_with_retry(model, config, [n for n in resolved if not resolved[n].is_fixed],
                                             cache_key=cache_key, retry=retry, during=learn_term)
    sampling_seconds = time.perf_counter() - sampling_start  # compile and sampling (the term's refits ran meanwhile)
    ess_sampling = idata.attrs.get("ess_sampling") if method == "nuts" else None
    if ess_sampling is not None:
        idata.attrs = {k: v for k, v in idata.attrs.items() if k != "ess_sampling"}
    info = {
        "seed": config.seed,
        "method": method,
        "sampler": config.sampler if method == "nuts" else None,
        "draws": config.draws,
        "tune": config.tune,
        "chains": config.chains,
        "target_accept": config.target_accept,
        "mass_matrix": config.mass_matrix if method == "nuts" else None,
        "mass_matrix_update": config.mass_matrix_update if method == "nuts" else None,
        "sampling_seconds": round(sampling_seconds, 3),
        "versions": package_versions(),
        "geometry": geometry,
    }
    if spec is not None:
        info["scatter"] = spec
    if escalated is not None:
        info["escalated"] = escalated
        info.update(draws=escalated["draws"], tune=escalated["tune"], target_accept=escalated["target_accept"])
    if ess_sampling is not None:  # what was drawn (also after a retry): batches of chains
        info["ess_sampling"] = json.loads(ess_sampling)
        info["draws"] = info["ess_sampling"]["draws_per_chain"]
        info["chains"] = info["ess_sampling"]["chains"]
    result = Fit(
        law=law, sweep=sweep, priors=resolved, likelihood=likelihood, reference=reference, idata=idata, info=info
    )
    attach_observations(result, log_likelihood=log_likelihood)
    if approximation is not None:
        result.info["approximation"] = approximation
    if "term" not in learned:
        learn_term()
    result.info["extrapolation"] = learned["term"].to_dict()
    result.info["extrapolation"]["seconds"] = round(learned["seconds"], 3)
    result.info["fit_seconds"] = round(time.perf_counter() - start, 3)
    if warn and ess_sampling is not None and not result.info["ess_sampling"]["reached"]:
        done = result.info["ess_sampling"]
        warnings.warn(f"min bulk ESS {done['min_ess_bulk']:.0f} is below the target {done['target']} after "
                      f"{done['batches']} batches ({done['seconds']:.0f} s); raise max_seconds or lower ess",
                      ConvergenceWarning, stacklevel=2)
    if warn and method == "nuts":
        label = f"fit of {law.name!r}" + (" (after a retry with more tuning and target_accept=0.99)"
                                           if escalated is not None else "")
        warn_if_unconverged(result.diagnostics(), label=label)
    return result


def fold_residuals(fit: Fit, *, seed: int = 0, directions: Sequence[str] = DIRECTIONS) -> pd.DataFrame:
    """Forward-chaining residuals inside the fit's sweep, in each direction a forecast may go.

    For each cut, the law is refitted (Laplace approximation, the fit's priors and likelihood) to the runs below
    the cut and scored on the runs at or above it. Cuts are made by model size (in the upper half of the sweep),
    and for laws of N and D also by compute 6ND (the next budget) and by tokens per parameter D/N
    (over-training): see :func:`~bayes_scaling.extrapolation.fold_directions`. ``directions`` picks some.

    Returns
    -------
    pandas.DataFrame
        One row per held-out run and fold: ``fold``, ``direction`` (what the fold was cut by), ``cut`` (the
        fold's smallest held-out value in that direction), ``size`` (its
        model size N), ``tokens`` (its D, NaN for laws without one), ``distance`` (beyond the
        fold's training range, in its widths, see :func:`distance`), ``residual`` (log loss minus the fold's
        posterior median of log mean), ``var_param`` (variance of the fold's log mean), ``sigma`` and ``nu``
        (the fold's noise at that run, ``nu`` infinite for a Normal likelihood).
    """
    sweep, law = fit.sweep, fit.law
    if "N" not in sweep.frame.columns:
        return pd.DataFrame()
    unknown = sorted(set(directions) - set(DIRECTIONS))
    if unknown:
        raise ValueError(f"unknown fold direction(s) {', '.join(unknown)}; use {', '.join(DIRECTIONS)}")
    free = sum(not p.is_fixed for p in fit.priors.values())
    scatter = fit.info.get("scatter")
    cache_key = ("extrapolation-folds", law.name, id(law), fit.likelihood,
                 tuple(sorted((k, repr(v)) for k, v in fit.priors.items())), scatter is not None)
    folds = [(direction, values, cut) for direction, values, cuts in fold_directions(sweep.frame)
             if direction in directions for cut in cuts]
    rows = []
    for fold, (direction, values, cut) in enumerate(folds):
        train, test = sweep.subset(values < cut), sweep.subset(values >= cut)
        if len(train) <= free + 2:
            continue
        try:
            check_identifiable(law, train)
        except DataError:
            continue  # too few distinct sizes below this cut
        reference = train.reference()
        spec = edge_spec(law, train) if scatter is not None else None

        def model(train: Sweep = train, reference: dict = reference, spec: Any = spec) -> Any:
            return build_model(law, train, priors=fit.priors, likelihood=fit.likelihood, reference=reference,
                               scatter=spec)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the fold's own data set on the law's compiled model
                idata, _ = laplace(model, draws=200, chains=1, seed=seed + fold, check_draws=100,
                                   cache_key=cache_key, data=model_data(law, train, reference=reference, scatter=spec))
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            continue  # no usable mode for this fold: it contributes nothing
        fold_fit = Fit(law=law, sweep=train, priors=fit.priors, likelihood=fit.likelihood, reference=reference,
                       idata=idata, info={"scatter": spec} if spec is not None else None)
        log_mean = fold_fit.log_mean(test.frame)
        noise = fold_fit.noise_at(test.frame)
        frame = pd.DataFrame({
            "fold": fold,
            "direction": direction,
            "cut": cut,
            "size": test.column("N"),
            "tokens": test.column("D") if "D" in test.frame.columns else np.nan,
            "distance": distance(test.frame, train, distance_columns(law)),
            "residual": np.log(test.column("loss")) - np.median(log_mean, axis=0),
            "var_param": np.var(log_mean, axis=0),
            "sigma": np.median(noise["sigma"], axis=0),
            "nu": float(np.median(noise["nu"])) if "nu" in noise else math.inf,
        })
        rows.append(frame[np.isfinite(frame["residual"])])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def calibrate(fit: Fit, *, design: str = DEFAULT_DESIGN, seed: int = 0, prior: Any = "shared") -> Extrapolation:
    """Learn the extrapolation term of ``fit`` from forward-chaining folds inside its own sweep.

    See :mod:`bayes_scaling.extrapolation` for the designs and ``prior`` (kappa's prior).
    """
    if design == "none":
        return learn(pd.DataFrame(), design="none")
    with serial_blas():  # small refits and grid sums (matrix-vector products): one BLAS thread is faster
        return learn(fold_residuals(fit, seed=seed), design=design, seed=seed, prior=prior)


def prior_predictive(
    data: Any,
    law: Any = DEFAULT_LAW,
    *,
    priors: Any = None,
    likelihood: Likelihood = "student_t",
    draws: int = 500,
    prob: float | None = None,
    seed: int | None = None,
) -> Any:
    """What the priors imply for the sweep's losses, before fitting.

    Parameters
    ----------
    data : DataFrame, CSV path or Sweep
        The runs (their N, D, C are used; ``loss`` is shown for comparison).
    law, priors, likelihood
        As for :func:`bayes_scaling.fit`.
    draws : int
        Prior draws.
    prob : float
        Probability of the equal-tailed intervals.
    seed : int, optional

    Returns
    -------
    pandas.DataFrame
        Per run: N, D, observed ``loss``, prior-predictive ``median``, ``lower`` and
        ``upper`` loss, and ``inside`` (whether the observed loss lies in the interval).
    """
    prob = check_prob(prob)
    import pymc as pm

    prob = check_prob(prob)
    sweep = load_sweep(data)
    model = build_model(law, sweep, priors=priors, likelihood=likelihood)
    with warnings.catch_warnings(), quiet_pymc(), model:
        warnings.simplefilter("ignore")
        tree = pm.sample_prior_predictive(draws=int(draws), random_seed=seed, var_names=[OBSERVED])
    log_loss = np.asarray(tree["prior_predictive"][OBSERVED].values).reshape(-1, len(sweep))
    with np.errstate(over="ignore"):
        loss = np.exp(log_loss)
    lower, median, upper = equal_tailed(loss, prob, median=True)
    out = sweep.frame[["N", "D", "C", "loss"]].copy()
    out["median"], out["lower"], out["upper"] = median, lower, upper
    out["inside"] = (out["loss"] >= lower) & (out["loss"] <= upper)
    return interval_table(out, prob)
