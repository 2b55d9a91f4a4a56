"""Fitting a law and the :class:`Fit` result: build → sample → summarise → forecast → save/load."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.data import Sweep, load_sweep
from bayes_scaling.inference import Diagnostics, Sampler, diagnose, sample, warn_if_unconverged
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.model import Likelihood, build_model, resolve_priors
from bayes_scaling.priors import Prior, as_prior

__all__ = ["LARGE_SWEEP", "Fit", "FitFileError", "LargeSweepWarning", "check_identifiable", "fit", "load"]

_META_KEY = "bayes_scaling"
_FORMAT_VERSION = 1


class FitFileError(ValueError):
    """A saved fit cannot be read (missing, corrupted, or not written by bayes_scaling)."""


def _versions() -> dict[str, str]:
    out = {}
    for package in ("bayes_scaling", "pymc", "pytensor", "arviz", "nutpie", "numpy"):
        try:
            out[package] = metadata.version(package.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


class SummaryTable(pd.DataFrame):
    """A parameter table that prints every column: 4 significant digits, never cut to ``...`` in a terminal.

    A plain :class:`pandas.DataFrame` in every other way (notebooks render it as HTML as usual).
    """

    @property
    def _constructor(self) -> type[SummaryTable]:
        return SummaryTable

    def __repr__(self) -> str:
        return self.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-")


class Fit:
    """A law fitted to a sweep: the ArviZ posterior plus everything needed to use it.

    Attributes
    ----------
    law : ScalingLaw
    sweep : Sweep
    priors : dict of Prior
        The priors actually used (defaults merged with user overrides).
    likelihood : str
    reference : dict
        Reference scales ``N``, ``D``, ``C`` the parameters are centred on.
    idata : xarray.DataTree
        The ArviZ posterior (``posterior``, ``sample_stats``, ``log_likelihood``, ...).
    info : dict
        Seed, sampler, draws, timings and package versions.
    """

    def __init__(
        self,
        *,
        law: ScalingLaw,
        sweep: Sweep,
        priors: Mapping[str, Prior],
        likelihood: str,
        reference: Mapping[str, float],
        idata: Any,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.law = law
        self.sweep = sweep
        self.priors = dict(priors)
        self.likelihood = likelihood
        self.reference = dict(reference)
        self.idata = idata
        self.info = dict(info or {})
        self._diagnostics: Diagnostics | None = None

    def __repr__(self) -> str:
        posterior = self.idata["posterior"]
        approximate = " APPROXIMATE (laplace)" if self.is_approximate else ""
        return (
            f"<Fit law={self.law.name!r} runs={len(self.sweep)} likelihood={self.likelihood!r} "
            f"chains={posterior.sizes.get('chain')} draws={posterior.sizes.get('draw')}{approximate}>"
        )

    @property
    def is_approximate(self) -> bool:
        """Whether the posterior is an approximation (``method="laplace"``) rather than NUTS draws."""
        return self.info.get("method", "nuts") != "nuts"

    @property
    def noise_names(self) -> list[str]:
        """Names of the noise parameters (``sigma`` and, for Student-t, ``nu``)."""
        from bayes_scaling.likelihoods import get_noise_model

        return list(get_noise_model(self.likelihood).noise_names)

    @property
    def sampled_names(self) -> list[str]:
        """Parameters drawn by the sampler (fixed ones excluded)."""
        return [n for n in (*self.law.param_names, *self.noise_names) if not self.priors[n].is_fixed]

    def draws(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Posterior draws as flat arrays (chains concatenated), by name."""
        posterior = self.idata["posterior"].to_dataset()
        names = list(names) if names is not None else list(posterior.data_vars)
        out = {}
        for name in names:
            if name not in posterior:
                raise KeyError(f"{name!r} is not in the posterior; it has {', '.join(posterior.data_vars)}")
            out[name] = np.asarray(posterior[name].values, dtype=float).reshape(-1)
        return out

    def diagnostics(self) -> Diagnostics:
        """R-hat, bulk ESS, divergences and tree depth of the sampled parameters (computed once)."""
        if self._diagnostics is None:
            self._diagnostics = diagnose(self.idata, self.sampled_names)
        return self._diagnostics

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Parameter table: mean, sd, HDI at ``prob``, R-hat and bulk ESS.

        Rows are the law's classical parameters (e.g. E, A, B, alpha, beta for
        Chinchilla) followed by the noise parameters.
        """
        import arviz as az

        if not 0 < prob < 1:
            raise ValueError(f"prob must be between 0 and 1, got {prob}")
        names = [*self.law.summary_names, *self.noise_names]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # R-hat of a fixed parameter divides by zero
            table = az.summary(self.idata, var_names=names, ci_prob=prob, ci_kind="hdi", round_to="none")
        table = table.astype(float)
        low, high = [c for c in table.columns if c.startswith("hdi")][:2]
        table = table.rename(columns={low: "hdi_low", high: "hdi_high"})
        table = table[["mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk"]]
        fixed = [n for n in names if self.priors.get(n) is not None and self.priors[n].is_fixed]
        table.loc[fixed, ["sd", "r_hat", "ess_bulk"]] = np.nan
        table.index.name = "parameter"
        return SummaryTable(table.loc[names])

    def forecast(self, *, N: Any = None, D: Any = None, C: Any = None, unique_tokens: Any = None,
                 prob: float = 0.9, seed: int | None = 0) -> pd.DataFrame:
        """Forecast the loss at new points; see :func:`bayes_scaling.forecast.forecast`."""
        from bayes_scaling.forecast import forecast

        return forecast(self, N=N, D=D, C=C, unique_tokens=unique_tokens, prob=prob, seed=seed)

    def to_dict(self, prob: float = 0.9) -> dict[str, Any]:
        """JSON-friendly summary: law, parameters, diagnostics, info."""
        table = self.summary(prob)
        params = {
            name: {
                "mean": _num(row["mean"]),
                "sd": _num(row["sd"]),
                "hdi_low": _num(row["hdi_low"]),
                "hdi_high": _num(row["hdi_high"]),
                "r_hat": _num(row["r_hat"]),
                "ess_bulk": _num(row["ess_bulk"]),
            }
            for name, row in table.iterrows()
        }
        return {
            "law": self.law.name,
            "likelihood": self.likelihood,
            "runs": len(self.sweep),
            "prob": prob,
            "params": params,
            "diagnostics": self.diagnostics().to_dict(),
            "info": self.info,
        }

    # ------------------------------------------------------------------ save / load
    def _metadata(self) -> dict[str, Any]:
        return {
            "format_version": _FORMAT_VERSION,
            "law": self.law.name,
            "likelihood": self.likelihood,
            "priors": {k: v.to_dict() for k, v in self.priors.items()},
            "reference": self.reference,
            "sweep": json.loads(self.sweep.frame.to_json(orient="split", index=False, double_precision=15)),
            "sweep_source": self.sweep.source,
            "info": self.info,
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the fit to a netCDF file; refuses to replace an existing file unless ``overwrite``.

        The file is written to a temporary name in the same folder and then published in one step (see
        :func:`bayes_scaling.outputs.write_file`): an interrupted save leaves nothing behind, and without
        ``overwrite`` a file that another process created in the meantime is never replaced.
        """
        from bayes_scaling.outputs import write_file

        tree = self.idata.copy()
        tree.attrs = {**tree.attrs, _META_KEY: json.dumps(self._metadata())}
        return write_file(path, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"), overwrite=overwrite)


def _attach_observations(result: Fit, *, log_likelihood: bool) -> None:
    """Add ``observed_data`` (log-loss per run) and, if asked, pointwise ``log_likelihood`` groups."""
    import xarray as xr

    from bayes_scaling.forecast import log_likelihood_draws
    from bayes_scaling.model import OBSERVED

    tree = result.idata
    runs = np.arange(len(result.sweep))
    observed = xr.Dataset({OBSERVED: ("run", np.log(result.sweep.column("loss")))}, coords={"run": runs})
    groups = {"observed_data": observed}
    if log_likelihood:
        posterior = tree["posterior"]
        shape = (posterior.sizes["chain"], posterior.sizes["draw"], len(runs))
        values = log_likelihood_draws(result, result.sweep.frame).reshape(shape)
        groups["log_likelihood"] = xr.Dataset(
            {OBSERVED: (("chain", "draw", "run"), values)},
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values, "run": runs},
        )
    for name, dataset in groups.items():
        tree[name] = xr.DataTree(dataset)


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def load(path: str | Path) -> Fit:
    """Read a fit written by :meth:`Fit.save`.

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, corrupted or was not written by bayes_scaling.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"no such fit file: {path}")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf").load()
    except Exception as exc:
        raise FitFileError(f"{path} is not a readable netCDF fit file ({type(exc).__name__}: {exc})") from None
    raw = tree.attrs.get(_META_KEY)
    if raw is None or "posterior" not in tree.children:
        raise FitFileError(f"{path} is a netCDF file but not a bayes_scaling fit (no fit metadata or posterior)")
    try:
        meta = json.loads(raw)
        law = get_law(meta["law"])
        frame = pd.DataFrame(**meta["sweep"])
        sweep = load_sweep(frame, source=meta.get("sweep_source"), check_units=False)  # checked when fitted
        priors = {k: as_prior(v, name=k) for k, v in meta["priors"].items()}
        fit_obj = Fit(
            law=law,
            sweep=sweep,
            priors=priors,
            likelihood=meta["likelihood"],
            reference=meta["reference"],
            idata=tree,
            info=meta.get("info", {}),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise FitFileError(f"{path} holds damaged bayes_scaling metadata: {exc}") from None
    attrs = dict(tree.attrs)
    attrs.pop(_META_KEY, None)
    tree.attrs = attrs
    return fit_obj


#: Fits with at least this many draws in all (draws x chains) are retried with safer settings when their
#: diagnostics fail (``fit(retry=None)``).
AUTO_RETRY_DRAWS = 2000
#: Step-size adaptation target of the retry.
RETRY_TARGET_ACCEPT = 0.99
#: The retry's tuning steps and draws, as multiples of the first pass's. Four times the draws: on the weakly
#: identified backtest fits (gadre2024/rw_original, li2025, muennighoff2023 on their smaller splits) twice the
#: draws still left R-hat at 1.012-1.014; four times gave 1.003-1.006 on two seeds each.
RETRY_TUNE_FACTOR = 3
RETRY_DRAWS_FACTOR = 4
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


def check_identifiable(law: ScalingLaw, sweep: Sweep) -> None:
    """Raise :class:`~bayes_scaling.data.DataError` when an input of ``law`` takes a single value in ``sweep``.

    A law with a term in N (or D) cannot separate that term's level and exponent from E when every run has the
    same N (or D); the message names the law that fits such a sweep instead.
    """
    from bayes_scaling.data import DataError
    from bayes_scaling.laws import INPUT_COLUMNS

    instead = {"N": "tokens", "D": "params"}
    # a missing column is reported by the model builder
    distinct = {k: np.unique(sweep.column(INPUT_COLUMNS[k])) for k in law.inputs if INPUT_COLUMNS[k] in sweep.frame}
    for key, values in distinct.items():
        if len(values) > 1:
            continue
        column = INPUT_COLUMNS[key]
        what = {"N": "model size", "D": "token count", "C": "compute", "unique_tokens": "unique-token count"}[column]
        others = [k for k, v in distinct.items() if k != key and len(v) > 1]
        hint = (f"; fit law {instead[key]!r} (a function of {INPUT_COLUMNS['D' if key == 'N' else 'N']} alone) "
                "instead" if key in instead and others and set(law.inputs) <= {"N", "D"} else "")
        raise DataError(
            f"law {law.name!r} cannot be identified from this sweep: every run has the same {what} "
            f"({column} = {values[0]:.4g}), so the law's {column} term cannot be told apart from E; it needs runs at "
            f"two or more values of {column}{hint}"
        )


def fit(
    data: pd.DataFrame | str | Path | Sweep,
    law: str | ScalingLaw = "chinchilla",
    *,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    sampler: Sampler = "nutpie",
    target_accept: float = 0.9,
    log_likelihood: bool | None = None,
    method: str = "nuts",
    warn: bool = True,
    progress: bool = False,
    extrapolation: str = "kappa",
    retry: bool | None = None,
) -> Fit:
    """Fit a scaling law to a sweep with NUTS (or, for a quick look, a Laplace approximation).

    Parameters
    ----------
    data : DataFrame, CSV path or Sweep
        The runs: columns N (parameters), D (tokens), loss (nats/token), optional C (FLOPs).
    law : str or ScalingLaw
        Which law (``bayes_scaling.laws()`` lists them). Default ``"chinchilla"``.
    priors : mapping, optional
        Overrides by parameter name: a :class:`~bayes_scaling.priors.Prior`, a dict
        ``{"dist": ..., ...}``, or a number to fix the parameter.
    likelihood : {"student_t", "normal"}
        Noise on log-loss; Student-t (default) is robust to outlying runs.
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, number of chains.
    seed : int, optional
        Random seed (the same seed reproduces the posterior).
    sampler : {"nutpie", "nutpie-jax", "pymc", "numpyro"}
        NUTS backend: nutpie with numba (default), nutpie with JAX (faster on large sweeps), PyMC's
        NUTS, or NumPyro; the JAX ones need the ``jax`` extra. See :data:`bayes_scaling.inference.SAMPLERS`.
    target_accept : float
        Step-size adaptation target.
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
    progress : bool
        Show the sampler's progress bar on a terminal (the CLI turns it on unless ``--quiet`` or ``--json``).
    extrapolation : {"kappa", "drift", "inflation", "none"}
        How forecasts account for the law being slightly wrong beyond the sweep, learned from forward-chaining
        folds inside the sweep (see :mod:`bayes_scaling.extrapolation`): ``"kappa"`` (default) adds an error
        growing with the distance beyond the data; ``"drift"`` also a learned signed drift; ``"inflation"`` one
        factor on the predictive scale; ``"none"`` parameter uncertainty and scatter only. Stored in
        ``info["extrapolation"]``.
    retry : bool, optional
        When the NUTS diagnostics fail (R-hat, bulk ESS, divergences, tree depth), sample once more with three
        times the tuning, four times the draws and ``target_accept=0.99``: the weakly identified posteriors of real
        sweeps (one decade of N, E against the N term) are long curved ridges that the default step size
        explores slowly. ``None`` (default) retries production-size fits (``draws * chains`` of at least
        :data:`AUTO_RETRY_DRAWS`), not quick looks. ``info["escalated"]`` records the first pass's diagnostics.

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
    from bayes_scaling.approx import METHODS, laplace
    from bayes_scaling.extrapolation import DESIGNS

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if extrapolation not in DESIGNS:
        raise ValueError(f"unknown extrapolation {extrapolation!r}; use one of {', '.join(DESIGNS)}")
    sweep = load_sweep(data)
    law = get_law(law)
    resolved = resolve_priors(law, priors, likelihood)
    n_law = sum(not resolved[n].is_fixed for n in law.param_names)
    n_free = sum(not prior.is_fixed for prior in resolved.values())
    if len(sweep) <= n_free:
        from bayes_scaling.data import DataError

        raise DataError(
            f"law {law.name!r} with a {likelihood} likelihood has {n_free} free parameters ({n_law} in the law, "
            f"{n_free - n_law} for the noise) but the sweep has only {len(sweep)} runs; it needs more runs than "
            "parameters: add runs or choose a simpler law"
        )
    check_identifiable(law, sweep)
    if method == "nuts" and len(sweep) > LARGE_SWEEP:
        warnings.warn(large_sweep_message(len(sweep), draws=draws, tune=tune, chains=chains), LargeSweepWarning,
                      stacklevel=2)
    reference = sweep.reference()
    start = time.perf_counter()
    model = build_model(law, sweep, priors=resolved, likelihood=likelihood, reference=reference)
    if log_likelihood is None:
        log_likelihood = len(sweep) <= 20_000
    cache_key = (law.name, id(law), likelihood, len(sweep), tuple(sorted((k, repr(v)) for k, v in resolved.items())))
    sampling_start = time.perf_counter()
    approximation = None
    if method == "laplace":
        with warnings.catch_warnings():
            if not warn:
                warnings.simplefilter("ignore")
            idata, approximation = laplace(model, draws=draws, chains=chains, seed=seed, cache_key=cache_key)
    else:
        idata = sample(
            model,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            sampler=sampler,
            target_accept=target_accept,
            cache_key=cache_key,
            progress=progress,
        )
    escalated = None
    if method == "nuts" and (retry if retry is not None else int(draws) * int(chains) >= AUTO_RETRY_DRAWS):
        first = diagnose(idata, [n for n in resolved if not resolved[n].is_fixed])
        if not first.ok:
            settings = {"tune": int(tune) * RETRY_TUNE_FACTOR, "draws": int(draws) * RETRY_DRAWS_FACTOR,
                        "target_accept": RETRY_TARGET_ACCEPT}
            idata = sample(model, chains=chains, seed=None if seed is None else seed + 1, sampler=sampler,
                           cache_key=cache_key, progress=progress, **settings)
            escalated = {"first_pass": first.to_dict(), "first_problems": first.problems, **settings}
    sampling_seconds = time.perf_counter() - sampling_start
    info = {
        "seed": seed,
        "method": method,
        "sampler": sampler if method == "nuts" else None,
        "draws": int(draws),
        "tune": int(tune),
        "chains": int(chains),
        "target_accept": float(target_accept),
        "sampling_seconds": round(sampling_seconds, 3),
        "versions": _versions(),
    }
    if escalated is not None:
        info["escalated"] = escalated
        info.update(draws=escalated["draws"], tune=escalated["tune"], target_accept=escalated["target_accept"])
    result = Fit(
        law=law, sweep=sweep, priors=resolved, likelihood=likelihood, reference=reference, idata=idata, info=info
    )
    _attach_observations(result, log_likelihood=log_likelihood)
    if approximation is not None:
        result.info["approximation"] = approximation
    from bayes_scaling.extrapolation import calibrate

    calibration_start = time.perf_counter()
    result.info["extrapolation"] = calibrate(result, design=extrapolation, seed=0 if seed is None else seed).to_dict()
    result.info["extrapolation"]["seconds"] = round(time.perf_counter() - calibration_start, 3)
    result.info["fit_seconds"] = round(time.perf_counter() - start, 3)
    if warn and method == "nuts":
        label = f"fit of {law.name!r}" + (" (after a retry with more tuning and target_accept=0.99)"
                                           if escalated is not None else "")
        warn_if_unconverged(result.diagnostics(), label=label)
    return result
