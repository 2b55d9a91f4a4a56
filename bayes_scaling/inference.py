"""Sampling a built model, and convergence diagnostics.

The default backend is nutpie (NUTS compiled with numba) with its low-rank
modified mass matrix, which adapts to the correlation that remains between the
irreducible loss and the power-law terms. Measured on the 245-run Chinchilla
sweep (4 chains x 1000 draws, 2 cores): about 6 leapfrog steps per draw and
bulk ESS about 2,700, against 46 steps with a diagonal mass matrix and 83 with
PyMC's own NUTS (see ``benchmarks/``). ``sampler="pymc"`` selects PyMC's sampler.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import warnings
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from bayes_scaling import nutpie_numba
from bayes_scaling.compiled import cached, exact_math

__all__ = ["AUTO_RETRY_DRAWS", "MAX_SEED", "RETRY_DRAWS_FACTOR", "RETRY_TARGET_ACCEPT", "RETRY_TUNE_FACTOR",
           "SAMPLERS", "STUCK_CHAIN_SDS", "ConvergenceWarning", "Diagnostics", "Sampling", "check_seed", "diagnose",
           "interrupt_guard", "next_seed", "quiet_pymc", "sample", "sample_unstuck", "sample_with_retry",
           "stuck_chains"]

Sampler = Literal["nutpie", "nutpie-jax", "pymc", "numpyro"]
#: NUTS backends: nutpie with numba (default, fastest to compile and on small sweeps), nutpie with a JAX
#: log density (1.8x faster per draw on 100k rows; ``pip install -e '.[jax]'``), PyMC's own NUTS, and
#: NumPyro via JAX (``[jax]`` extra). ``python -m benchmarks`` measures them.
SAMPLERS: tuple[str, ...] = ("nutpie", "nutpie-jax", "pymc", "numpyro")


@dataclass(frozen=True)
class Sampling:
    """How a posterior is sampled: the one set of sampling options and defaults.

    Used by every function that samples (:func:`bayes_scaling.fit`, :func:`bayes_scaling.fit_hierarchical`,
    :func:`bayes_scaling.fit_many`, the workflows) and by the command line. Those functions take
    ``sampling=Sampling(...)`` and/or the same names as keywords (``fit(data, draws=500)``), which override the
    object's fields.

    Attributes
    ----------
    draws, tune, chains : int
        Kept draws per chain, tuning steps per chain, number of chains.
    seed : int, optional
        Random seed; the same seed gives the same posterior.
    sampler : {"nutpie", "nutpie-jax", "pymc", "numpyro"}
        NUTS backend: nutpie with numba (default), nutpie with JAX (faster on large sweeps), PyMC's
        NUTS, or NumPyro; the JAX ones need the ``jax`` extra. See :data:`SAMPLERS`.
    target_accept : float
        Target acceptance rate of step-size adaptation.
    progress : bool
        Show the sampler's progress bar (on a terminal; nothing is drawn when stderr is not one).
    ess : int, optional
        Sample until the minimum bulk ESS over the parameters reaches this, instead of a fixed number of draws:
        batches of ``chains`` chains (each tuned, then ``batch_draws(ess)`` draws, at most ``draws``) are added
        until the target is met, ``max_seconds`` have passed, or :data:`MAX_ESS_BATCHES` batches ran. ``None``
        (default): one run of ``chains`` x ``draws``.
    max_seconds : float, optional
        With ``ess``: start no new batch after this many seconds of sampling.
    mass_matrix : {"low_rank", "diag"}
        nutpie's mass matrix adaptation: low-rank modified (default; follows correlated directions such as a
        population mean, at a higher cost per step) or diagonal (cheaper steps; for short refits whose medians and
        variances are all that is used, e.g. the pooled task fit's forward-chaining refits). Other samplers
        ignore it.
    mass_matrix_update : int, optional
        With the low-rank mass matrix: tuning draws between its updates (``None``, default: nutpie's, 20). Each
        update costs time that grows with the number of parameters: on the 46-task pooled downstream model (224
        parameters) updating every 20 draws took most of the sampling time (about 0.35 s an update and chain),
        every 50 draws cut the whole fit's sampling by a third (README, "Beyond loss"). Needs a nutpie whose
        settings :mod:`bayes_scaling.nutpie_numba` knows (:func:`~bayes_scaling.nutpie_numba.adaptation_supported`);
        with another, nutpie's own (20) is used (``Fit.info`` keeps the value asked for).
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int | None = None
    sampler: Sampler = "nutpie"
    target_accept: float = 0.9
    progress: bool = False
    ess: int | None = None
    max_seconds: float | None = None
    mass_matrix: Literal["low_rank", "diag"] = "low_rank"
    mass_matrix_update: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; use one of {', '.join(SAMPLERS)}")
        if self.mass_matrix not in ("low_rank", "diag"):
            raise ValueError(f"mass_matrix must be 'low_rank' or 'diag', got {self.mass_matrix!r}")
        for name, low in (("draws", 1), ("tune", 0), ("chains", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept}")
        if self.seed is not None:
            object.__setattr__(self, "seed", check_seed(self.seed))
        if self.ess is not None and (isinstance(self.ess, bool) or int(self.ess) != self.ess or self.ess < 1):
            raise ValueError(f"ess must be a positive integer or None, got {self.ess!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 or None, got {self.max_seconds!r}")
        update = self.mass_matrix_update
        if update is not None:
            if isinstance(update, bool) or int(update) != update or update < 1:
                raise ValueError(f"mass_matrix_update must be a positive integer or None, got {update!r}")
            object.__setattr__(self, "mass_matrix_update", int(update))

    def batch_draws(self) -> int:
        """Draws per chain of one batch when sampling to an ESS target.

        Enough for the target in one batch at 0.5 effective draws per draw (this package's reparameterised laws
        give 0.6-0.75 on real sweeps), at least :data:`MIN_BATCH_DRAWS` and at most ``draws``.
        """
        if self.ess is None:
            return self.draws
        return min(self.draws, max(MIN_BATCH_DRAWS, math.ceil(self.ess / (0.5 * self.chains))))

    @classmethod
    def of(cls, sampling: Sampling | None = None, **options: Any) -> Sampling:
        """``sampling`` (default: the defaults) with ``options`` (field names) replacing its fields."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown sampling option(s) {', '.join(map(repr, unknown))}; the options are "
                            + ", ".join(f.name for f in fields(cls)))
        return replace(sampling if sampling is not None else cls(), **options)

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (kept in ``Fit.info``)."""
        return asdict(self)


#: Largest seed: every backend (nutpie, PyMC, NumPyro) takes seeds from 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or ``ValueError`` unless it is a whole number from 0 to :data:`MAX_SEED`."""
    try:
        value = int(seed)
        whole = not isinstance(seed, bool) and value == seed
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED} (2**32 - 1), got {seed!r}")
    return value


#: Fewest draws per chain of one batch when sampling to an ESS target (fewer make ESS estimates unreliable).
MIN_BATCH_DRAWS = 100
#: Most batches when sampling to an ESS target.
MAX_ESS_BATCHES = 8

#: Thresholds under which a fit counts as converged.
MAX_R_HAT = 1.01
MIN_ESS_BULK = 400


class ConvergenceWarning(UserWarning):
    """The sampler's diagnostics say the posterior may not be trustworthy."""


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a posterior.

    Attributes
    ----------
    max_r_hat, min_ess_bulk : float
        Worst R-hat and bulk ESS over the sampled parameters.
    divergences : int
        Divergent transitions after tuning.
    mean_tree_depth : float
        Mean NUTS tree depth.
    max_tree_depth_hits : int
        Draws whose trajectory hit the maximum tree depth.
    mean_steps : float
        Mean leapfrog steps per draw.
    """

    max_r_hat: float
    min_ess_bulk: float
    divergences: int
    mean_tree_depth: float
    max_tree_depth_hits: int
    mean_steps: float

    @property
    def problems(self) -> list[str]:
        """Human descriptions of each failed check (empty when converged)."""
        out = []
        if np.isnan(self.max_r_hat):
            out.append("R-hat not computed (it needs 2 or more chains)")
        elif not self.max_r_hat <= MAX_R_HAT:
            out.append(f"max R-hat {self.max_r_hat:.3f} > {MAX_R_HAT}")
        if not self.min_ess_bulk >= MIN_ESS_BULK:
            out.append(f"min bulk ESS {self.min_ess_bulk:.0f} < {MIN_ESS_BULK}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transition{'s' if self.divergences > 1 else ''}")
        if self.max_tree_depth_hits:
            out.append(f"{self.max_tree_depth_hits} draws hit the maximum tree depth")
        return out

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict, JSON-friendly: a statistic the method lacks (tree depth of a Laplace fit) is None."""

        def number(value: float) -> float | None:
            return float(value) if np.isfinite(value) else None

        return {
            "max_r_hat": number(self.max_r_hat),
            "min_ess_bulk": number(self.min_ess_bulk),
            "divergences": int(self.divergences),
            "mean_tree_depth": number(self.mean_tree_depth),
            "max_tree_depth_hits": int(self.max_tree_depth_hits),
            "mean_steps": number(self.mean_steps),
        }


def _stat(stats: Any, *names: str) -> np.ndarray | None:
    for name in names:
        if name in stats:
            return np.asarray(stats[name].values)
    return None


def diagnose(idata: Any, var_names: list[str]) -> Diagnostics:
    """Compute :class:`Diagnostics` for ``var_names`` of a sampled DataTree."""
    import arviz as az

    posterior = idata["posterior"].to_dataset()[var_names]
    chains, draws = posterior.sizes.get("chain", 1), posterior.sizes.get("draw", 1)
    r_hat, ess = float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN statistics (one chain, fixed values)
        if chains * draws >= 8:
            ess = float(np.nanmin([float(v.min()) for v in az.ess(posterior, method="bulk").data_vars.values()]))
        if chains >= 2 and chains * draws >= 8:
            r_hat = float(np.nanmax([float(v.max()) for v in az.rhat(posterior).data_vars.values()]))
    stats = idata["sample_stats"].to_dataset()
    diverging = _stat(stats, "diverging")
    depth = _stat(stats, "depth", "tree_depth")
    hits = _stat(stats, "maxdepth_reached", "reached_max_treedepth")
    steps = _stat(stats, "n_steps", "tree_size")
    return Diagnostics(
        max_r_hat=r_hat,
        min_ess_bulk=ess,
        divergences=int(diverging.sum()) if diverging is not None else 0,
        mean_tree_depth=float(depth.mean()) if depth is not None else float("nan"),
        max_tree_depth_hits=int(hits.sum()) if hits is not None else 0,
        mean_steps=float(steps.mean()) if steps is not None else float("nan"),
    )


def _data_values(model: Any) -> dict[str, np.ndarray]:
    return {var.name: np.asarray(var.get_value()) for var in model.data_vars}


def _require_jax(sampler: str) -> None:
    missing = importlib.util.find_spec("jax") is None
    missing = missing or (sampler == "numpyro" and importlib.util.find_spec("numpyro") is None)
    if missing:
        raise ValueError(f"sampler={sampler!r} needs JAX (and NumPyro): pip install -e '.[jax]' "
                         "(or pip install jax numpyro)")


def compiled_nutpie(model: Any, cache_key: Hashable | None, backend: str = "numba") -> Any:
    """A compiled nutpie model for ``model``, from the shared cache (:mod:`bayes_scaling.compiled`) when possible."""
    import nutpie

    def build() -> Any:
        if backend == "jax":
            return nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax", freeze_model=False)
        return nutpie_numba.compile_model(model, freeze_model=False)

    def rebind(compiled: Any) -> Any:
        if hasattr(compiled, "shared_var_keys"):  # numba: the data the graph uses (unused ones are pruned)
            known = {var.name for var in compiled.shared_var_keys}
        else:  # JAX (PyFuncModel)
            known = set(compiled._shared_data)
        return compiled.with_data(**{k: v for k, v in _data_values(model).items() if k in known})

    if backend == "jax" and cache_key is not None:  # XLA specialises on shapes: one entry per data shape
        cache_key = (cache_key, tuple(np.shape(v) for v in _data_values(model).values()))
    return cached(f"nutpie-{backend}", cache_key, build, rebind)


#: Fits with at least this many draws in all (draws x chains) are retried with safer settings when their
#: diagnostics fail (``fit(retry=None)``, :func:`sample_with_retry`).
AUTO_RETRY_DRAWS = 2000
#: Step-size adaptation target of the retry.
RETRY_TARGET_ACCEPT = 0.99
#: The retry's tuning steps and draws, as multiples of the first pass's. Four times the draws: on the weakly
#: identified backtest fits (gadre2024/rw_original, li2025, muennighoff2023 on their smaller splits) twice the
#: draws still left R-hat at 1.012-1.014; four times gave 1.003-1.006 on two seeds each.
RETRY_TUNE_FACTOR = 3
RETRY_DRAWS_FACTOR = 4


def sample_with_retry(model: Any, sampling: Sampling, names: list[str], *, cache_key: Hashable | None = None,
                      retry: bool | None = None, during: Callable[[], None] | None = None
                      ) -> tuple[Any, dict[str, Any] | None]:
    """:func:`sample`, then once more with safer settings when the diagnostics of ``names`` fail.

    The retry (more tuning and draws, target acceptance :data:`RETRY_TARGET_ACCEPT`, the next seed) runs when
    ``retry`` is True, or by default when the fit draws at least :data:`AUTO_RETRY_DRAWS` in all (not for quick
    looks). Returns the posterior and, after a retry, what it was (the first pass's diagnostics and the
    settings), else None. ``during`` runs once, while the first pass's chains sample (see :func:`sample`).
    """
    idata = sample(model, sampling, cache_key=cache_key, during=during)
    if not (retry if retry is not None else sampling.draws * sampling.chains >= AUTO_RETRY_DRAWS):
        return idata, None
    first = diagnose(idata, names)
    if first.ok:
        return idata, None
    settings = {"tune": sampling.tune * RETRY_TUNE_FACTOR, "draws": sampling.draws * RETRY_DRAWS_FACTOR,
                "target_accept": RETRY_TARGET_ACCEPT}
    idata = sample(model, sampling, cache_key=cache_key, seed=next_seed(sampling.seed), **settings)
    return idata, {"first_pass": first.to_dict(), "first_problems": first.problems, **settings}


#: A chain is stuck (:func:`stuck_chains`) when its mean log density lies more than this many standard deviations
#: of the log density within a chain below the best chain's mean. Chains that sample one posterior differ in their
#: means by about one such deviation over sqrt(ESS), a tenth of one or less; ten are not reached by chance.
STUCK_CHAIN_SDS = 10.0


def next_seed(seed: int | None) -> int | None:
    """The seed of a second pass after ``seed`` (None stays None: fresh entropy)."""
    return None if seed is None else (seed + 1) % (MAX_SEED + 1)


def stuck_chains(idata: Any) -> list[int]:
    """The chains caught where the posterior has no mass: their log density far below the other chains'.

    A chain that falls into a trap while tuning (a region of tiny steps it cannot leave: nutpie then runs to its
    maximum tree depth every draw) samples there to the end. Its draws are not a second mode of the posterior: its
    log density sits far below the others' (measured on the 46-task fit of gadre2024_downstream, seed 3: 340 nats
    below, where a chain's own log density varies by about sqrt(d / 2) = 11 for its d = 238 dimensions, the
    spread of a Gaussian posterior's log density). Flagged: chains whose mean log
    density (``logp`` of nutpie, ``lp`` of PyMC) is more than :data:`STUCK_CHAIN_SDS` times the median
    within-chain standard deviation below the highest chain mean. Empty with fewer than two chains, or without
    a log density in ``sample_stats``.
    """
    stats = idata["sample_stats"] if "sample_stats" in idata.children else None
    name = next((n for n in ("logp", "lp") if stats is not None and n in stats.data_vars), None)
    if name is None:
        return []
    values = np.asarray(stats[name].values, float)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 2:
        return []
    means, spread = values.mean(axis=1), float(np.median(values.std(axis=1)))
    if not (np.all(np.isfinite(means)) and spread > 0):
        return []
    return [int(c) for c in np.flatnonzero(means < means.max() - STUCK_CHAIN_SDS * spread)]


def sample_unstuck(model: Any, sampling: Sampling, *, cache_key: Hashable | None = None
                   ) -> tuple[Any, dict[str, Any] | None]:
    """:func:`sample`, then once more from the next seed when a chain is stuck (:func:`stuck_chains`).

    Returns the posterior and, after a restart, what it was (``{"stuck_chains": [...], "seed": ...}``), else None.
    Other failed diagnostics are left to the caller (see :func:`sample_with_retry`).
    """
    idata = sample(model, sampling, cache_key=cache_key)
    stuck = stuck_chains(idata)
    if not stuck:
        return idata, None
    seed = next_seed(sampling.seed)
    return sample(model, sampling, cache_key=cache_key, seed=seed), {"stuck_chains": stuck, "seed": seed}


def sample(model: Any, sampling: Sampling | None = None, *, cache_key: Hashable | None = None,
           during: Callable[[], None] | None = None, **options: Any) -> Any:
    """Draw posterior samples of ``model`` with NUTS.

    A Ctrl-C (``KeyboardInterrupt``) while sampling is re-raised after the sampler stops: no partial posterior
    is ever returned (nutpie and PyMC would otherwise hand back the draws made so far as if they were a result).

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayes_scaling.model.build_model`.
    sampling : Sampling, optional
        Draws, tuning, chains, seed, backend, target acceptance, progress bar (default :class:`Sampling`'s).
    cache_key : hashable, optional
        With nutpie, models that share this key (same law, priors and likelihood) reuse one compiled model with
        new data, of any number of runs (every number that depends on the sweep is a data container), which
        skips the compile step (most of a small fit's time).
    during : callable, optional
        Work of the caller's that does not need the draws (e.g. the extrapolation term's refits), called once in
        this thread while nutpie's chains run in theirs after the compile (with ``ess``: during the first batch),
        so that both share the machine's cores; with the other samplers, before sampling. An exception or Ctrl-C
        in it stops the sampler and propagates; its warnings are filtered as the sampler's are.
    **options
        :class:`Sampling` fields replacing those of ``sampling`` (e.g. ``draws=500``).

    Returns
    -------
    xarray.DataTree
        ArviZ posterior with ``posterior`` (parameters and derived quantities) and ``sample_stats``. With
        ``ess``, its ``attrs["ess_sampling"]`` (JSON) says whether the target was reached, in how many batches.
    """
    config = Sampling.of(sampling, **options)
    if config.ess is not None:
        return _sample_to_ess(model, config, cache_key, during)
    return _sample_once(model, config, cache_key, during)


def _batch_seed(seed: int | None, batch: int) -> int | None:
    if seed is None or batch == 0:
        return seed
    return int(np.random.SeedSequence([int(seed), batch]).generate_state(1)[0] % (2**31))


def _sample_to_ess(model: Any, config: Sampling, cache_key: Hashable | None,
                   during: Callable[[], None] | None = None) -> Any:
    """Batches of chains until the minimum bulk ESS reaches ``config.ess`` (see :class:`Sampling`)."""
    import time

    names = [rv.name for rv in model.free_RVs]
    draws = config.batch_draws()
    start = time.perf_counter()
    parts: list[Any] = []
    ess = 0.0
    for batch in range(MAX_ESS_BATCHES):
        once = replace(config, draws=draws, seed=_batch_seed(config.seed, batch), ess=None)
        parts.append(_sample_once(model, once, cache_key, during if batch == 0 else None))
        tree = parts[0] if len(parts) == 1 else _concat_chains(parts)
        ess = diagnose(tree, names).min_ess_bulk
        elapsed = time.perf_counter() - start
        if ess >= config.ess or (config.max_seconds is not None and elapsed >= config.max_seconds):
            break
    tree.attrs = {**tree.attrs, "ess_sampling": json.dumps({
        "target": config.ess, "reached": bool(ess >= config.ess), "min_ess_bulk": float(ess),
        "batches": len(parts), "draws_per_chain": draws, "chains": config.chains * len(parts),
        "seconds": round(time.perf_counter() - start, 3)})}
    return tree


def _concat_chains(parts: list[Any]) -> Any:
    """One posterior from independent runs of the same model and settings: their chains side by side."""
    import xarray as xr

    groups = {}
    for group in ("posterior", "sample_stats"):
        datasets, offset = [], 0
        for tree in parts:
            data = tree[group].to_dataset()
            n = data.sizes["chain"]
            datasets.append(data.assign_coords(chain=np.arange(offset, offset + n)))
            offset += n
        groups[group] = xr.concat(datasets, dim="chain")
    return xr.DataTree.from_dict(groups)


def _sample_once(model: Any, config: Sampling, cache_key: Hashable | None,
                 during: Callable[[], None] | None = None) -> Any:
    import pymc as pm

    draws, tune, chains, seed = config.draws, config.tune, config.chains, config.seed
    sampler, target_accept, progress = config.sampler, config.target_accept, config.progress
    with warnings.catch_warnings(), quiet_pymc(), interrupt_guard():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        if sampler in ("nutpie-jax", "numpyro"):
            _require_jax(sampler)
        if sampler in ("nutpie", "nutpie-jax"):
            adapt = ({"mass_matrix_update_freq": config.mass_matrix_update}
                     if config.mass_matrix == "low_rank" and config.mass_matrix_update is not None else {})
            background = nutpie_numba.start_sampler(
                adapt,
                compiled_nutpie(model, cache_key, backend="jax" if sampler == "nutpie-jax" else "numba"),
                draws=int(draws),
                tune=int(tune),
                chains=int(chains),
                seed=seed,
                progress_bar=bool(progress),
                save_warmup=False,
                low_rank_modified_mass_matrix=config.mass_matrix == "low_rank",
                target_accept=target_accept,
                blocking=False,
            )
            try:
                if during is not None:  # the chains run in nutpie's threads meanwhile
                    during()
                # nutpie's blocking mode turns Ctrl-C into a partial trace; here it stops the sampler and propagates.
                return background.wait()
            except BaseException:
                background.cancel()
                raise
        if during is not None:
            during()
        if sampler == "numpyro":
            backend = {"nuts_sampler": "numpyro", "nuts_sampler_kwargs": {"chain_method": "sequential"}}
        else:
            backend = {"nuts_sampler": "pymc", "cores": min(chains, 2), "compile_kwargs": {"mode": "FAST_RUN"},
                       "quiet": True}
        with model, exact_math():  # PyMC compiles inside pm.sample
            return pm.sample(
                draws=int(draws),
                tune=int(tune),
                chains=int(chains),
                random_seed=seed,
                target_accept=target_accept,
                progressbar=bool(progress),
                compute_convergence_checks=False,
                **backend,
            )


@contextmanager
def interrupt_guard() -> Iterator[None]:
    """Re-raise a Ctrl-C that a library swallowed inside the block (samplers that return partial results).

    In the main thread, SIGINT is recorded before the usual ``KeyboardInterrupt`` is raised; if the block then
    ends normally although a SIGINT arrived, ``KeyboardInterrupt`` is raised at its end. Elsewhere (worker
    threads cannot install signal handlers) the block runs unchanged.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # someone else (a notebook, a caller) handles SIGINT
        yield
        return
    interrupted = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


@contextmanager
def quiet_pymc() -> Iterator[None]:
    """Silence PyMC's informational log lines ("Sampling: [...]") for the duration."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def warn_if_unconverged(diagnostics: Diagnostics, *, label: str = "fit") -> None:
    """Emit a :class:`ConvergenceWarning` naming every failed check."""
    if not diagnostics.ok:
        warnings.warn(
            f"{label} may not have converged: {'; '.join(diagnostics.problems)}. "
            "Try more tune/draws, a different seed, or tighter priors.",
            ConvergenceWarning,
            stacklevel=3,
        )
