"""Bayesian fits of training-loss curves under learning-rate schedules, and forecasts with intervals.

:func:`fit_curves` fits a curve law (:mod:`bayes_scaling.curve_laws`) to one or more runs' logged losses, each with
its full schedule (:class:`~bayes_scaling.schedules.Schedule`), and :meth:`CurveFit.forecast` gives the loss at any
step of any schedule with a credible interval (the law's curve) and a predictive interval (what a run will log).

**Noise along a run.** Three models of the residuals of log-loss around the law: ``noise="white"`` (the default),
independent with scale ``sigma``; ``noise="ar1"``, an Ornstein-Uhlenbeck process along steps (marginal scale
``sigma``, correlation ``exp(-gap / ell)`` between points ``gap`` steps apart: a run's deviation persists, so 500
logged points do not count as 500 runs); ``noise="offset"``, each run's own constant offset plus white noise.
:func:`compare_noise` scores them by PSIS-LOO. White is the default, chosen on held-out curves (multipower2025:
new schedules forecast at 0.20 / 0.23 / 0.32% average error by size against ar1's 0.61 / 0.23 / 0.34%, 90%
coverage 0.96 / 0.65 / 0.70 against 0.80 / 0.64 / 0.60; runs in flight covered 0.94 against 0.97), and for a reason
that holds on any curve set: with few runs, a correlation as long as a run (or an offset) is the same quantity as
the law's level, which then floats (three 25M curves: ar1's ``ell`` went to 36k steps, longer than the runs, and
L0 to 3.26 against 3.17 by least squares). What white noise leaves out, that a curve's points are not independent
runs, matters where forecasts leave the data, and there the extrapolation terms below are learned from held-out
points, not from the posterior's own width.

**A run in flight**: :meth:`CurveFit.forecast` with ``run=`` continues that run (``ar1``: its last residual carries
on with the fitted correlation, decaying toward the law; ``offset``: the run's offset; ``white``: the law's curve,
which the run's own points fitted).

**Beyond the logged steps the law itself may be wrong**, as a sweep law is beyond its sweep, and a posterior
fitted to the first part of a curve does not know by how much. As for the loss law
(:mod:`bayes_scaling.extrapolation`), the error is learned by forward chaining inside the data: each fitted run's
curve is cut at :data:`CURVE_FOLD_FRACTIONS` of its logged steps, the law is refitted (a MAP point fit with the
fit's priors and noise scale) to the points before each cut and scored on those after it, and the held-out error
beyond the fold's noise is modelled as growing with the distance ``d`` beyond the fitted steps, in widths of
their log range (:func:`step_distance`): ``kappa * d``, with kappa's grid posterior (HalfNormal prior,
:data:`CURVE_KAPPA_PRIOR_SD`) kept in ``info["extrapolation"]``. Forecasts add ``kappa * d * z`` to the law's
log-loss per draw; within the logged steps ``d = 0`` and nothing changes. A fold's own parameter uncertainty
(Laplace, at its mode, treating its points as independent) is counted before kappa: with correlated points it is
too small, so kappa also holds part of it and the term errs wide, not narrow.

**A schedule the law was not fitted to** is an extrapolation too: on multipower2025 the law fitted to three
schedules misses a fourth by up to several tenths of a percent while its posterior is sure to a tenth. The term
across schedules is learned from runs left out (:func:`schedule_fold_residuals`): per model size, the law is
refitted (MAP, as above) to all runs but one and scored on the one left out (within the others' steps); the
excess error is modelled as ``kappa * d`` (plus a new run's offset, below) with ``d`` =
:func:`schedule_distance`, how far the schedule's curve lies from the nearest fitted one's (or from the law's curve
with no decay) relative to its loss, each left-out run counting once, HalfNormal(:data:`SCHEDULE_KAPPA_PRIOR_SD`)
prior on kappa (:func:`learn_schedule_terms`; kept in ``info["schedule_term"]``). Forecasts add ``kappa * d * z``
with one ``z`` per draw along the whole curve (an error in the law's decays is one error, shared by the two
schedules of a comparison); ``d = 0`` for a fitted schedule and wherever a schedule runs as a fitted one, up to
that run's last logged step: a fitted schedule shows the law's curve only where its run was logged, so a run in
flight continued under its own schedule is unchanged within its logged steps and, beyond them, as far from what
was logged as its coming decays take it (the second half of a cosine is a decay the first half never showed).

**A new run is not one of the fitted runs**: started afresh (another seed, another data order) its curve lies a
little above or below theirs all along, which white noise around the fitted runs does not hold (on multipower2025
a second 100M constant-LR run lies 0.1% below the first over the same steps, three times the fitted scatter). The
same left-out runs measure it: their residuals' variance is modelled as the fold's own plus ``tau**2`` plus
``(kappa d)**2``, with a joint grid posterior over ``tau`` (HalfNormal(:data:`RUN_TERM_PRIOR_SD`)) and the term
across schedules' ``kappa`` (:func:`learn_schedule_terms`; ``tau`` kept in ``info["run_term"]``). A left-out run's
points that are the same numbers as a fitted run's at the same step (a run branched from another's checkpoint, e.g.
a WSD decay started from a constant-LR run) are fitted data, not held-out evidence, and are not scored. A new run's
logged loss (the predictive interval of :meth:`CurveFit.forecast` without ``run=``) adds ``tau * z``, one ``z`` per
run along its curve; the law's curve (the credible interval) and a run continued from its logged points do not.

**Across model sizes** (``fit_curves(sizes=...)``: each run's parameter count ``N``): one pooled fit of several
sizes' curves (white noise by default: see ``fit_curves``' ``noise``). The law's level ``L0`` (its loss at unlimited
learning-rate area, i.e. unlimited data for that model) follows the package's sweep law in N, ``L0(N) = E +
exp(log_n_term - alpha_N log(N / N_ref))`` with the sweep laws' default priors (``N_ref``: the geometric mean of the
fitted sizes; sampled in the sweep laws' slope coordinates, :mod:`bayes_scaling.geometry`), and the rest of the law
is shared by all sizes: in the Chinchilla form ``E + A/N^a + B/D^b`` the data term does not depend on N, and the
power law in the learning-rate area is that term. Shape parameters named in ``drift=`` change as a power of N
instead, ``theta(N) = theta (N / N_ref)^slope_theta`` (``theta`` at ``N_ref`` with the law's prior, ``slope_theta
~`` :data:`SIZE_SLOPE_PRIOR`). A larger model's curve is forecast with ``N=``. Tokens enter through the steps (the
law's learning-rate area): a fixed number of tokens per step only rescales it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.curve_laws import CurveLaw, curve_inputs, get_curve_law, stack_inputs, unstack_inputs, with_pairs
from bayes_scaling.extrapolation import (
    KAPPA_PRIOR_SD,
    MIN_WIDTH,
    Extrapolation,
    fold_log_likelihood,
    learn,
)
from bayes_scaling.geometry import applies, slope_coordinates
from bayes_scaling.inference import Sampling, diagnose, sample, warn_if_unconverged
from bayes_scaling.intervals import check_prob, equal_tailed, grid_weights, interval_table
from bayes_scaling.laws import PRIOR_E, PRIOR_EXPONENT, PRIOR_LOG_TERM, get_law
from bayes_scaling.priors import Prior, merge_priors
from bayes_scaling.schedules import Schedule
from bayes_scaling.threads import serial_blas

__all__ = ["CURVES_KEY", "CURVE_FOLD_FRACTIONS", "CURVE_NOISE", "CURVE_TARGET_ACCEPT", "NOISE_PARAMS",
           "RUN_TERM_GRID", "RUN_TERM_PRIOR_SD", "SCHEDULE_KAPPA_GRID", "SCHEDULE_KAPPA_PRIOR_SD",
           "SIZE_LEVEL_PRIORS", "SIZE_SLOPE_PRIOR", "CurveFit",
           "compare_noise",
           "curve_fold_residuals", "fit_curves", "learn_curve_term", "learn_schedule_term", "learn_schedule_terms",
           "load_curves",
           "schedule_distance", "schedule_fold_residuals", "step_distance"]

#: The metadata key of a saved curve fit (what :func:`bayes_scaling.load` recognises it by).
CURVES_KEY = "bayes_scaling_curves"
#: The group of a saved curve fit that holds every run's schedule (one variable per run, every step's rate).
SCHEDULES_GROUP = "schedules"

#: Residual models along a run's steps (see the module docstring).
CURVE_NOISE = ("white", "ar1", "offset")
#: Default priors of the noise: scale of log-loss residuals, correlation length in steps, spread of run offsets.
NOISE_PRIORS = {"sigma": Prior("HalfNormal", sigma=0.02), "ell": Prior("LogNormal", mu=math.log(2000.0), sigma=1.5),
                "tau": Prior("HalfNormal", sigma=0.02)}
#: The noise parameters of each residual model.
NOISE_PARAMS = {"ar1": ("sigma", "ell"), "white": ("sigma",), "offset": ("sigma", "tau")}
#: NUTS's step-size target for curve fits (unless given): the decay parameters (C, beta, gamma), which a few curves
#: identify weakly, curve the posterior; at the package's 0.9, default fits of three multipower2025 curves (100M,
#: seeds 1-2) each had 3 divergent transitions, at 0.95 none, for 15% more time. Fits across sizes keep 0.9: their
#: chains stick at either (25M+100M: R-hat 1.06 at 0.9, 1.02 at 0.95, in 364 and 429 s).
CURVE_TARGET_ACCEPT = 0.95
#: Decay terms kept per schedule in a fit (consecutive ones merged; see :func:`~bayes_scaling.curve_laws.curve_inputs`).
#: On the multipower2025 schedules 100 terms change the law's loss by at most 1e-4 relative to all of them (cosine
#: over 72k steps; 5e-5 over 24k), a ninth of the smallest scatter fitted there (9e-4), at a quarter of the cost
#: of 400. Forecasts use :data:`FORECAST_TERMS`.
FIT_TERMS = 100
#: Decay terms per schedule in a forecast (1e-5 relative to all of them on those schedules).
FORECAST_TERMS = 400
#: Draws x steps x terms evaluated at once in a forecast (about 200 MB of float64 per array).
FORECAST_CELLS = 25_000_000
#: Where each fitted run's observed curve is cut for the forward-chaining folds of the extrapolation term in
#: steps (fractions of its last logged step; the points after a cut are held out).
CURVE_FOLD_FRACTIONS = (0.5, 0.6, 0.7, 0.8)
#: Fewest logged points a fold is fitted on.
CURVE_FOLD_MIN_POINTS = 8
#: Prior scale (HalfNormal) of the term's kappa: log-loss per width of the fitted log-steps (a forecast from a
#: quarter of a run to its end is about a third of a width): 2% per width, the loss law's ``"halfnormal"`` prior.
CURVE_KAPPA_PRIOR_SD = KAPPA_PRIOR_SD
#: Grid and HalfNormal prior scale of the term across schedules' kappa: the law's error on a schedule it was not
#: fitted to, as a fraction of how much that schedule's curve differs from the nearest fitted one's
#: (:func:`schedule_distance`). 0.2: a forecast of a new schedule's annealing gain is right to about a fifth of it
#: (one sd) before any held-out run is seen; the folds of a fit with several schedules update it.
SCHEDULE_KAPPA_GRID = np.linspace(0.0, 1.0, 401)
SCHEDULE_KAPPA_PRIOR_SD = 0.2
#: Grid and HalfNormal prior scale of a new run's own offset (log-loss, one per run along its whole curve): how far
#: a run started afresh (another seed, another data order) lies from the law fitted to other runs, beyond what the
#: law's error on its schedule explains. 0.005: seeds move a language model's loss by a few tenths of a percent,
#: and more than 1% is unlikely (95% of the prior lies below 0.0098); the runs left out update it.
RUN_TERM_GRID = np.linspace(0.0, 0.02, 201)
RUN_TERM_PRIOR_SD = 0.005
#: A fit across sizes: the level ``L0(N) = E + exp(log_n_term - alpha_N log(N / N_ref))``, with the sweep laws'
#: default priors of ``E``, the N term's log at the reference size, and its exponent.
SIZE_LEVEL_PRIORS = {"E": PRIOR_E, "log_n_term": PRIOR_LOG_TERM, "alpha_N": PRIOR_EXPONENT}
#: A fit across sizes: prior of each positive shape parameter's power of N, ``theta(N) = theta (N/N_ref)^slope``.
#: Weakly informative: one sd is a factor of 2 per 4x in N (per-size fits of multipower2025 change A and alpha by
#: less than 25% across 16x; the decay parameters, which three curves barely identify, by factors of 5-13).
SIZE_SLOPE_PRIOR = Prior("Normal", mu=0.0, sigma=0.5)


@dataclass
class CurveFit:
    """A posterior over a curve law and its noise, with the runs and schedules it was fitted to.

    Attributes
    ----------
    law : CurveLaw
    noise : str
        One of :data:`CURVE_NOISE`.
    data : DataFrame
        The runs' points: ``run``, ``step``, ``loss``.
    schedules : dict of str to Schedule
    peak : float
        The unit of learning rates in the law (the largest peak of the fitted schedules).
    idata : xarray.DataTree
        The posterior.
    priors : dict of str to Prior
    info : dict
        Sampling settings, the extrapolation term in steps and, for a fit across sizes, ``sizes`` (each run's
        parameter count), ``size_reference`` (N_ref) and ``drift``.
    """

    law: CurveLaw
    noise: str
    data: pd.DataFrame
    schedules: dict[str, Schedule]
    peak: float
    idata: Any
    priors: dict[str, Prior]
    info: dict[str, Any] = field(default_factory=dict)

    def draws(self, names: Any = None) -> dict[str, np.ndarray]:
        """Posterior draws as flat arrays (chains concatenated), by name."""
        posterior = self.idata["posterior"].to_dataset()
        names = list(names) if names is not None else [n for n in posterior.data_vars if n != "offset"]
        return {n: np.asarray(posterior[n].values, float).reshape(-1) if posterior[n].ndim == 2 else
                np.asarray(posterior[n].values, float).reshape(-1, posterior[n].shape[-1]) for n in names}

    @property
    def sizes(self) -> dict[str, float] | None:
        """Each fitted run's parameter count in a fit across sizes (``fit_curves(sizes=...)``), else None."""
        saved = self.info.get("sizes")
        return {str(k): float(v) for k, v in saved.items()} if saved else None

    @property
    def param_names(self) -> list[str]:
        """The fit's own parameters (the law's, or across sizes the level's law, the shape at N_ref and slopes)."""
        return [n for n in self.priors if n not in NOISE_PRIORS]

    def _total_draws(self) -> int:
        posterior = self.idata["posterior"]
        return int(posterior.sizes["chain"] * posterior.sizes["draw"])

    def law_params(self, N: float | None = None) -> dict[str, np.ndarray]:
        """The law's parameters per draw, shape (draws, 1) each (fixed ones broadcast).

        A fit across sizes gives them at the model size ``N`` (parameters; required); a fit of one size takes no
        ``N``.
        """
        posterior = self.idata["posterior"].to_dataset()
        total = self._total_draws()

        def values(n: str) -> np.ndarray:
            if n in posterior:
                return np.asarray(posterior[n].values, float).reshape(-1, 1)
            return np.full((total, 1), self.priors[n].value)

        sizes = self.sizes
        if sizes is None:
            if N is not None:
                raise ValueError("this curve fit is of one model size; N= is for fits across sizes "
                                 "(fit_curves(sizes=...))")
            return {n: values(n) for n in self.law.param_names}
        if N is None:
            raise ValueError("a curve fit across sizes needs the model size: N= (parameters), or run= a fitted run")
        N = float(N)
        if not (math.isfinite(N) and N > 0):
            raise ValueError(f"N must be a positive parameter count, got {N!r}")
        x = math.log(N / float(self.info["size_reference"]))
        return _at_size(np, {n: values(n) for n in self.param_names}, x, self.law)

    def diagnostics(self) -> Any:
        """R-hat, bulk ESS, divergences and tree depth of the sampled parameters."""
        names = [n for n in self.param_names if not self.priors[n].is_fixed] + self.noise_names
        return diagnose(self.idata, names)

    @property
    def noise_names(self) -> list[str]:
        """The noise parameters of the fit's noise model."""
        return list(NOISE_PARAMS[self.noise])

    def summary(self, prob: float | None = None) -> pd.DataFrame:
        """Parameter table: mean, sd, equal-tailed interval, R-hat and bulk ESS."""
        import arviz as az

        prob = check_prob(prob)
        names = [n for n in (*self.param_names, *self.noise_names) if not self.priors[n].is_fixed]
        posterior = self.idata["posterior"].to_dataset()[names]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r_hat, ess = az.rhat(posterior), az.ess(posterior, method="bulk")
        rows = {}
        for name, values in self.draws(names).items():
            low, high = equal_tailed(values, prob)
            rows[name] = {"mean": float(np.mean(values)), "sd": float(np.std(values)), "lower": float(low),
                          "upper": float(high), "r_hat": float(r_hat[name]), "ess_bulk": float(ess[name])}
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "parameter"
        return interval_table(table, prob)

    def forecast(self, schedule: Schedule | str, steps: Any, *, run: str | None = None, prob: float | None = None,
                 seed: int | None = 0, N: float | None = None) -> pd.DataFrame:
        """The loss at ``steps`` under ``schedule``: the law's curve (credible) and a run's loss (predictive).

        Parameters
        ----------
        schedule : Schedule or str
            A schedule, or the name of a fitted run (its schedule).
        steps : array-like
            Steps (whole numbers the schedule covers).
        run : str, optional
            A fitted run this forecast continues (a run in flight): the predictive interval conditions on its
            observed residuals. Default: a new run.
        prob : float, optional
            Interval probability (default the package's).
        seed : int, optional
        N : float, optional
            A fit across sizes: the model size (parameters) of a new run; a fitted run's (``run=``, or a schedule
            given by a fitted run's name) is its own.

        Returns
        -------
        IntervalTable
            Per step: ``step``, ``median``, ``lower``, ``upper`` (the law's curve), ``pred_lower``, ``pred_upper``
            (a run's logged loss), ``distance`` (beyond the logged steps, in widths: :meth:`distance`; the
            extrapolation term grows with it) and ``schedule_distance`` (how far the schedule's curve lies from the
            fitted schedules', relative: :meth:`schedule_distance`; the term across schedules grows with it).
        """
        prob = check_prob(prob)
        (draws,) = _positive(self.loss_draws(schedule, steps, run=run, seed=seed, N=N))
        low, median, high = equal_tailed(draws["mean"], prob, median=True)
        plow, phigh = equal_tailed(draws["pred"], prob)
        flat = np.asarray(steps).reshape(-1)
        out = pd.DataFrame({"step": flat, "median": median, "lower": low, "upper": high,
                            "pred_lower": plow, "pred_upper": phigh, "distance": self.distance(flat, run),
                            "schedule_distance": self.schedule_distance(schedule, flat, run=run, N=N)})
        return interval_table(out, prob)

    def plot_steps(self, schedule: Schedule, run: str | None = None, points: int = 200) -> np.ndarray:
        """Steps to draw a forecast under ``schedule`` at, ``points`` of them up to the schedule's end.

        From the first logged step (of ``run``, else of every fitted run): before it, e.g. in warmup, the law is
        not meant to hold.
        """
        logged = self.data if run is None else self.data[self.data["run"] == run]
        start = min(int(logged["step"].min()), schedule.steps)
        return np.unique(np.linspace(start, schedule.steps, points).round().astype(int))

    def ends(self, prob: float | None = None, seed: int | None = 0) -> pd.DataFrame:
        """Where each fitted run ends: its loss at its schedule's last step, continuing it from its logged points.

        Returns
        -------
        IntervalTable
            One row per fitted run: ``run``, ``logged_to`` (its last logged step), ``step`` (its schedule's last),
            ``N`` (a fit across sizes), and the forecast's columns (:meth:`forecast` with ``run=``).
        """
        prob = check_prob(prob)
        rows = []
        for name, schedule in self.schedules.items():
            row = self.forecast(name, [schedule.steps], run=name, prob=prob, seed=seed)
            row.insert(0, "logged_to", int(self.data.loc[self.data["run"] == name, "step"].max()))
            row.insert(0, "run", name)
            if self.sizes is not None:
                row.insert(1, "N", self.sizes[name])
            rows.append(pd.DataFrame(row))
        return interval_table(pd.concat(rows, ignore_index=True), prob)

    def compare(self, a: Schedule | str, b: Schedule | str, steps: Any, *, prob: float | None = None,
                seed: int | None = 0, N: float | None = None) -> pd.DataFrame:
        """Schedule ``a`` against ``b`` at ``steps``: the loss difference ``a - b`` and P(``a`` ends lower).

        A fit across sizes compares them at the model size ``N`` (a schedule named by a fitted run, at that run's
        size when ``N`` is not given).

        Paired draws: each posterior draw of the law gives both curves, so what the two share (the law's level)
        cancels and the difference's interval is the uncertainty about the schedules' effect alone.

        Returns
        -------
        IntervalTable
            Per step: ``step``, the law's loss under each (``loss_a``, ``loss_b``: medians), the difference of the
            expected losses (``median``, ``lower``, ``upper``), of two new runs' logged losses (``pred_lower``,
            ``pred_upper``), and ``p_a_lower`` (posterior probability that ``a``'s expected loss is lower).
        """
        prob = check_prob(prob)
        rng = np.random.default_rng(seed)
        shared = self._term_draws(len(np.asarray(steps).reshape(-1)), rng)  # the same misfit of the law for both
        one, two = _positive(self.loss_draws(a, steps, seed=rng, term=shared, N=N),
                             self.loss_draws(b, steps, seed=rng, term=shared, N=N))
        diff, pred = one["mean"] - two["mean"], one["pred"] - two["pred"]
        low, median, high = equal_tailed(diff, prob, median=True)
        plow, phigh = equal_tailed(pred, prob)
        out = pd.DataFrame({"step": np.asarray(steps).reshape(-1),
                            "loss_a": np.median(one["mean"], axis=0), "loss_b": np.median(two["mean"], axis=0),
                            "median": median, "lower": low, "upper": high, "pred_lower": plow, "pred_upper": phigh,
                            "p_a_lower": (diff < 0).mean(axis=0)})
        return interval_table(out, prob)

    def to_dict(self, prob: float | None = None) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling curve fit --json``): law, noise, runs, parameters, diagnostics."""
        from bayes_scaling.outputs import table_records

        return {"law": self.law.name, "noise": self.noise, "runs": {n: int((self.data["run"] == n).sum())
                                                                   for n in self.schedules},
                "points": len(self.data), "params": table_records(self.summary(prob)),
                "diagnostics": self.diagnostics().to_dict(), "info": self.info}

    def save(self, path: Any, *, overwrite: bool = False) -> Any:
        """Write the curve fit to netCDF: posterior, points and every run's full schedule.

        Atomic, and never replaces a file unless ``overwrite``; read it back with :func:`load_curves` or
        :func:`bayes_scaling.load`.
        """
        import xarray as xr

        from bayes_scaling.posterior import write_saved

        names = list(self.schedules)
        tree = self.idata.copy()
        tree[SCHEDULES_GROUP] = xr.DataTree(xr.Dataset(
            {f"lr_{i}": (f"step_{i}", self.schedules[n].lr) for i, n in enumerate(names)}))
        meta = {"law": self.law.name, "noise": self.noise, "peak": self.peak, "runs": names,
                "schedule_names": [self.schedules[n].name for n in names],
                "priors": {k: v.to_dict() for k, v in self.priors.items()},
                "data": json.loads(self.data.to_json(orient="split", index=False, double_precision=15)),
                "info": self.info}
        return write_saved(path, tree, CURVES_KEY, meta, overwrite=overwrite)

    @property
    def term(self) -> Extrapolation | None:
        """The extrapolation term in steps (an :class:`~bayes_scaling.extrapolation.Extrapolation`), or None."""
        saved = self.info.get("extrapolation")
        return Extrapolation.from_dict(saved) if saved else None

    def distance(self, steps: Any, run: str | None = None) -> np.ndarray:
        """How far ``steps`` lie beyond the logged steps (of ``run``, else of every fitted run), in widths."""
        points = self.data if run is None else self.data[self.data["run"] == run]
        observed = points["step"].to_numpy(float)
        return step_distance(steps, observed.min(), observed.max())

    @property
    def schedule_term(self) -> Extrapolation | None:
        """The extrapolation term across schedules (:func:`learn_schedule_term`), or None."""
        saved = self.info.get("schedule_term")
        return Extrapolation.from_dict(saved) if saved else None

    @property
    def run_term(self) -> Extrapolation | None:
        """A new run's own offset from the law (``tau``, log-loss; :func:`learn_schedule_terms`), or None."""
        saved = self.info.get("run_term")
        return Extrapolation.from_dict(saved) if saved else None

    def schedule_distance(self, schedule: Schedule | str, steps: Any, *, run: str | None = None,
                          N: float | None = None) -> np.ndarray:
        """How far ``schedule``'s curve lies from the fitted schedules' at ``steps`` (relative loss).

        :func:`schedule_distance` at the posterior medians (in a fit across sizes at the size of ``run``, of a
        schedule named by a fitted run, or ``N``, as :meth:`forecast`); 0 for a fitted schedule.
        """
        inputs, N = self._inputs(schedule, steps, run, N)
        return self._schedule_distance(inputs, N)

    def _inputs(self, schedule: Schedule | str, steps: Any, run: str | None, N: float | None
                ) -> tuple[Any, float | None]:
        """The law inputs of ``schedule`` (or of the fitted run it names) at ``steps``, and the size they are at."""
        named = schedule if isinstance(schedule, str) else None
        if named is not None:
            if named not in self.schedules:
                raise KeyError(f"no fitted run {named!r}; runs: {', '.join(self.schedules)}")
            schedule = self.schedules[named]
        return (with_pairs(curve_inputs(schedule, steps, peak=self.peak, max_terms=FORECAST_TERMS)),
                self._size_of(run, named, N))

    def _schedule_distance(self, inputs: Any, N: float | None) -> np.ndarray:
        medians = {n: float(np.median(v)) for n, v in self.law_params(N).items()}
        last = self.data.groupby("run")["step"].max()
        return schedule_distance(self.law, medians, inputs, list(self.schedules.values()),
                                 logged=[last[r] for r in self.schedules])

    def term_line(self) -> str:
        """The extrapolation terms in steps and across schedules and a new run's offset, a line each (printouts)."""
        term = self.term
        if term is None:
            lines = ["no extrapolation term: beyond the logged steps only the posterior's and the noise's uncertainty"]
        else:
            low, median, high = term.quantiles()
            lines = [f"extrapolation beyond the logged steps: kappa {median:.4f} [{low:.4f}, {high:.4f}] log-loss per "
                     f"width of log-steps, from {term.folds} forward-chaining folds ({term.residuals} held-out points)"]

        def source(learned: Extrapolation) -> str:
            return (f"{learned.folds} runs left out ({learned.residuals} points)" if learned.folds else
                    f"its prior only ({learned.prior}: no run could be left out)")

        across, offset = self.schedule_term, self.run_term
        if across is not None:
            low, median, high = across.quantiles()
            lines.append(f"across schedules: kappa {median:.3f} [{low:.3f}, {high:.3f}] of how far a schedule's curve "
                         f"lies from the fitted ones', from {source(across)}")
        if offset is not None:
            low, median, high = offset.quantiles()
            lines.append(f"a new run's own offset: tau {median:.4f} [{low:.4f}, {high:.4f}] log-loss (in its "
                         f"predictive interval), from {source(offset)}")
        return "\n".join(lines)

    def _term_draws(self, n_steps: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """Draws of each extrapolation term, or None without it.

        ``"steps"``: (kappa per draw, a standard normal per draw and step); ``"schedule"``: (kappa per draw, one
        standard normal per draw: the law's error on a schedule's decays is one error along the whole curve,
        shared by the schedules a comparison pairs); ``"run"``: tau per draw (a new run's offset; each new run
        draws its own standard normal, :meth:`loss_draws`).
        """
        total = self._total_draws()
        term, across, offset = self.term, self.schedule_term, self.run_term
        steps = None if term is None else (term.joint_draws(total, rng)[1], rng.standard_normal((total, n_steps)))
        schedule = None if across is None else (across.joint_draws(total, rng)[1], rng.standard_normal((total, 1)))
        run = None if offset is None else offset.joint_draws(total, rng)[1]
        return {"steps": steps, "schedule": schedule, "run": run}

    def loss_draws(self, schedule: Schedule | str, steps: Any, *, run: str | None = None,
                   seed: int | np.random.Generator | None = 0, term: Any = None, N: float | None = None
                   ) -> dict[str, np.ndarray]:
        """Draws of the law's loss (``mean``) and of a run's logged loss (``pred``) at ``steps``: (draws, steps).

        Beyond the logged steps the extrapolation term adds ``kappa * d * z`` to the log-loss of both, and where the
        schedule differs from the fitted ones the term across schedules adds its own (``term``: draws of the terms
        from ``_term_draws``, to pair two calls; default drawn from ``seed``). A new run (no ``run``) also has its own
        offset, ``tau * z`` with one ``z`` per call, in ``pred``. ``N``: see :meth:`forecast`.
        """
        inputs, N = self._inputs(schedule, steps, run, N)
        mean = self._law_loss(inputs, N)
        with np.errstate(invalid="ignore"):
            log_mean = np.log(mean)
        rng = np.random.default_rng(seed)
        noise = self.draws(self.noise_names)
        sigma = noise["sigma"][:, None]
        shape = log_mean.shape
        if run is None:
            if self.noise == "offset":
                scatter = np.sqrt(sigma**2 + noise["tau"][:, None] ** 2) * rng.standard_normal(shape)
            else:
                scatter = sigma * rng.standard_normal(shape)
        else:
            scatter = self._continue(run, inputs.steps, noise, log_mean.shape, rng, N)
        if term is None:  # drawn after the scatter: where both terms are 0 the draws are those without them
            term = self._term_draws(shape[1], rng)
        if term["steps"] is not None:
            kappa, z = term["steps"]
            log_mean = log_mean + kappa[:, None] * self.distance(inputs.steps, run)[None, :] * z
        if term["schedule"] is not None:
            kappa, z = term["schedule"]
            log_mean = log_mean + kappa[:, None] * self._schedule_distance(inputs, N)[None, :] * z
        if run is None and term.get("run") is not None:  # a new run's own level, along its whole curve
            scatter = scatter + term["run"][:, None] * rng.standard_normal((shape[0], 1))
        return {"mean": np.exp(log_mean), "pred": np.exp(log_mean + scatter)}

    def _size_of(self, run: str | None, named: str | None, N: float | None) -> float | None:
        """The model size a forecast is at: ``N``, else a continued run's, else a named fitted run's (or None)."""
        sizes = self.sizes
        if sizes is None:
            return N  # law_params refuses an N for a fit of one size
        if run is not None:
            if run not in sizes:
                raise KeyError(f"no fitted run {run!r}; runs: {', '.join(self.schedules)}")
            if N is not None and float(N) != sizes[run]:
                raise ValueError(f"run {run!r} has {sizes[run]:.4g} parameters; N={float(N):.4g} cannot continue it")
            return sizes[run]
        if N is None and named is not None:
            return sizes[named]
        return N

    def _law_loss(self, inputs: Any, N: float | None = None) -> np.ndarray:
        """The law's loss per posterior draw at ``inputs``' steps, (draws, steps), a block of draws at a time."""
        params = self.law_params(N)
        total = len(next(iter(params.values())))
        cells = inputs.since.size if inputs.pair_row is None else inputs.pair_row.size + inputs.steps.size
        chunk = max(1, int(FORECAST_CELLS // max(1, cells)))  # draws per pass, bounding memory
        return np.concatenate([np.asarray(self.law.loss(np, {k: v[i:i + chunk] for k, v in params.items()}, inputs),
                                          float) for i in range(0, total, chunk)])

    def _continue(self, run: str, steps: np.ndarray, noise: Mapping[str, np.ndarray], shape: tuple[int, int],
                  rng: np.random.Generator, N: float | None = None) -> np.ndarray:
        """A fitted run's residuals carried on to ``steps``, per draw (conditioned on its last observed point)."""
        if run not in self.schedules:
            raise KeyError(f"no fitted run {run!r}; runs: {', '.join(self.schedules)}")
        sigma = noise["sigma"][:, None]
        if self.noise == "white":
            return sigma * rng.standard_normal(shape)
        if self.noise == "offset":
            index = list(self.schedules).index(run)
            offset = self.draws(["offset"])["offset"][:, index][:, None]
            return offset + sigma * rng.standard_normal(shape)
        # ar1: the run's last observed residual carries on, decaying toward the law
        last = self.data[self.data["run"] == run].sort_values("step").iloc[-1:]
        inputs = curve_inputs(self.schedules[run], last["step"].to_numpy(), peak=self.peak, max_terms=FORECAST_TERMS)
        residual = np.log(last["loss"].to_numpy())[None, :] - np.log(self._law_loss(inputs, N))
        gap = np.abs(steps[None, :] - float(last["step"].iloc[0]))
        rho = np.exp(-gap / noise["ell"][:, None])
        return rho * residual + sigma * np.sqrt(1 - rho**2) * rng.standard_normal(shape)


def step_distance(steps: Any, first: float, last: float) -> np.ndarray:
    """How far ``steps`` lie beyond ``last``, in widths of the logged log-steps [``first``, ``last``]; 0 within.

    The width is at least :data:`~bayes_scaling.extrapolation.MIN_WIDTH` decades, as a sweep's.
    """
    first, last = max(float(first), 1.0), max(float(last), 1.0)
    width = max(math.log10(last / first), MIN_WIDTH)
    with np.errstate(divide="ignore"):
        beyond = np.log10(np.maximum(np.asarray(steps, float), 1.0) / last)
    return np.maximum(beyond, 0.0) / width


def _map_fit(law: CurveLaw, priors: Mapping[str, Prior], inputs: Any, y: np.ndarray, start: Mapping[str, float],
             sigma: float) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """A MAP point fit of ``law`` to log-losses ``y`` (Normal noise ``sigma``; Normal/LogNormal/HalfNormal priors).

    ``inputs``: one run's :class:`~bayes_scaling.curve_laws.CurveInputs`, or a list of several runs' (``y`` then
    holds their points in that order).

    Started at ``start`` (the full fit's medians); parameters with a positive prior are fitted on the log scale.
    Returns (``unpack``: fitted coordinates to the law's parameters, the fitted coordinates, their covariance by
    the Laplace approximation at the mode), or None when the optimizer finds nothing finite.
    """
    from scipy.optimize import least_squares

    free = [n for n in law.param_names if not priors[n].is_fixed]
    logged = [priors[n].dist != "Normal" and start[n] > 0 for n in free]

    def unpack(theta: np.ndarray) -> dict[str, float]:
        values = {n: (math.exp(t) if lg else float(t)) for n, t, lg in zip(free, theta, logged, strict=True)}
        return {n: values[n] if n in values else float(priors[n].value) for n in law.param_names}

    def penalties(theta: np.ndarray) -> list[float]:
        out = []
        for n, t, lg in zip(free, theta, logged, strict=True):
            prior = priors[n]
            if prior.dist == "Normal" or (prior.dist == "LogNormal" and lg):
                out.append((t - prior.params["mu"]) / prior.params["sigma"])
            elif prior.dist == "HalfNormal":
                out.append((math.exp(t) if lg else t) / prior.params["sigma"])
        return out

    parts = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

    def residuals(theta: np.ndarray) -> np.ndarray:
        p = unpack(theta)
        with np.errstate(all="ignore"):
            fitted = np.concatenate([np.asarray(law.loss(np, p, x), float).reshape(-1) for x in parts])
            r = (y - np.log(fitted)) / sigma
        return np.r_[np.where(np.isfinite(r), r, 1e3), penalties(theta)]

    theta0 = np.array([math.log(start[n]) if lg else start[n] for n, lg in zip(free, logged, strict=True)])
    try:
        with np.errstate(all="ignore"), serial_blas():
            best = least_squares(residuals, theta0, method="trf", max_nfev=200 * (len(free) + 1))
    except (ValueError, FloatingPointError):
        return None
    if not np.isfinite(best.x).all() or not all(math.isfinite(v) for v in unpack(best.x).values()):
        return None
    jac = np.asarray(best.jac, float)
    return unpack, best.x, np.linalg.pinv(jac.T @ jac)


def _predicted(law: CurveLaw, unpack: Any, theta: np.ndarray, cov: np.ndarray, inputs: Any
               ) -> tuple[np.ndarray, np.ndarray]:
    """The point fit's log-loss at ``inputs``, and its variance from the fitted coordinates' covariance.

    By the delta method, with central differences.
    """

    def log_loss(t: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.log(np.asarray(law.loss(np, unpack(t), inputs), float))

    from bayes_scaling.approx import central_jacobian

    grad = central_jacobian(log_loss, theta)
    return log_loss(theta), np.einsum("ik,kl,il->i", grad, cov, grad)


def curve_fold_residuals(fit: CurveFit, fractions: Any = CURVE_FOLD_FRACTIONS) -> pd.DataFrame:
    """Forward-chaining residuals along each fitted run: fit its points before a cut, score those after it.

    For each run and each fraction of its last logged step, the law is refitted by :func:`_map_fit` (the fit's
    priors and median noise scale, started from its medians) to the points up to the cut (at least
    :data:`CURVE_FOLD_MIN_POINTS`) and scored at every later logged point, with the variance of its forecast
    there by the Laplace approximation at the fold's mode (points taken as independent, so it errs narrow and
    kappa holds the rest).

    Returns
    -------
    pandas.DataFrame
        One row per held-out point and fold: ``fold`` (run and cut), ``run``, ``step``, ``distance`` (beyond the
        fold's steps: :func:`step_distance`), ``residual`` (observed minus the fold's log-loss), ``var_param`` (its
        variance from the fold's fit), ``sigma``, ``nu`` (Normal noise: infinite) and ``size`` (0: a fold's
        points share its fit error and count once together).
    """
    sizes = fit.sizes
    priors = {n: fit.priors.get(n, fit.law.default_priors[n]) for n in fit.law.param_names}  # L0 across sizes
    sigma = float(np.median(fit.draws(["sigma"])["sigma"]))
    rows = []
    for name, points in fit.data.groupby("run", sort=False):
        medians = {n: float(np.median(v)) for n, v in fit.law_params(sizes[name] if sizes else None).items()}
        steps = points["step"].to_numpy(float)
        y = np.log(points["loss"].to_numpy(float))
        schedule = fit.schedules[name]
        for fraction in fractions:
            train = steps <= fraction * steps.max()
            if train.sum() < CURVE_FOLD_MIN_POINTS or train.all():
                continue
            inputs = curve_inputs(schedule, steps[train], peak=fit.peak, max_terms=FIT_TERMS)
            point = _map_fit(fit.law, priors, inputs, y[train], medians, sigma)
            if point is None:
                continue
            later = curve_inputs(schedule, steps[~train], peak=fit.peak, max_terms=FIT_TERMS)
            predicted, var_param = _predicted(fit.law, *point, later)
            if not (np.isfinite(predicted).all() and np.isfinite(var_param).all()):
                continue
            rows.append(pd.DataFrame({
                "fold": f"{name}@{fraction:g}", "run": name, "step": steps[~train],
                "distance": step_distance(steps[~train], steps[train].min(), steps[train].max()),
                "residual": y[~train] - predicted, "var_param": var_param, "sigma": sigma, "nu": math.inf,
                "size": 0}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def learn_curve_term(residuals: pd.DataFrame, *, seed: int = 0) -> Extrapolation:
    """The term's grid posterior from :func:`curve_fold_residuals`.

    The loss law's :func:`~bayes_scaling.extrapolation.learn` with its HalfNormal prior
    (:data:`CURVE_KAPPA_PRIOR_SD`). The held-out error is ``Normal(0, sqrt(sigma^2 + var_param + (kappa d)^2))``,
    as for the loss law (:func:`bayes_scaling.extrapolation.fold_log_likelihood`), each fold counting once.
    """
    return learn(residuals, prior="halfnormal", seed=seed)


def _decay(law: CurveLaw, params: Mapping[str, Any], inputs: Any) -> np.ndarray:
    """What the schedule's learning-rate decays take off the law's loss at ``inputs``' steps.

    The law with every fall set to zero, minus the law.
    """
    flat = replace(inputs, drop=np.zeros_like(inputs.drop))
    return np.asarray(law.loss(np, params, flat), float) - np.asarray(law.loss(np, params, inputs), float)


def schedule_distance(law: CurveLaw, params: Mapping[str, Any], inputs: Any, references: Any, *,
                      max_terms: int = FORECAST_TERMS, logged: Any = None) -> np.ndarray:
    """How far a schedule's curve lies from what the fitted schedules showed, at ``inputs``' steps (relative loss).

    The smallest of: what the schedule's own decays change (its distance from the law's curve with no decay, the
    curve every run follows before its first decay), and its distance from each fitted schedule in ``references``
    that reaches the step (the whole law's loss under each, at the same parameters). 0 where the schedule runs as
    one that was fitted (e.g. a WSD run before its decay, or a fitted schedule itself); as large as the decay's
    effect for a decay shape no fitted run had. In units of the schedule's loss there.

    A fitted schedule shows the law's curve only where its run was logged: with ``logged`` (each reference's last
    logged step) a reference vouches for steps up to that step, not for the rest of its schedule. A run in flight
    forecast under its own schedule is then 0 within its logged steps and, beyond them, as far as its coming decays
    take it from anything logged (the second half of a cosine is a decay the first half never showed).

    Parameters
    ----------
    law : CurveLaw
    params : mapping
        The law's parameters (scalars: e.g. posterior medians, or a fold's fit).
    inputs : CurveInputs
        The schedule's law inputs at the steps asked about.
    references : sequence of Schedule
        The fitted runs' schedules.
    max_terms : int
        Decay terms per reference schedule (:func:`~bayes_scaling.curve_laws.curve_inputs`): those ``inputs`` were
        made with, so that a fitted schedule's distance is exactly 0.
    logged : sequence of int, optional
        Each reference's last logged step (default: its schedule's last step, as if logged to the end).
    """
    loss = np.asarray(law.loss(np, params, inputs), float)
    gap = np.abs(_decay(law, params, inputs))
    reach = [r.steps for r in references] if logged is None else [min(int(n), r.steps) for n, r in
                                                                   zip(logged, references, strict=True)]
    for reference, last in zip(references, reach, strict=True):
        inside = inputs.steps <= last
        if inside.any():
            other = curve_inputs(reference, inputs.steps[inside], peak=inputs.peak, max_terms=max_terms)
            gap[inside] = np.minimum(gap[inside], np.abs(loss[inside] - np.asarray(law.loss(np, params, other),
                                                                                     float)))
    return gap / loss


def schedule_fold_residuals(fit: CurveFit) -> pd.DataFrame:
    """Held-out-run residuals across schedules: fit all runs of a size but one, score the one left out.

    For each model size with at least two fitted runs (a fit of one size: all its runs), each run in turn is left
    out, the law refitted to the others by :func:`_map_fit` (the fit's priors and median noise scale, started from
    its medians) and scored at the left-out run's logged points that lie within the others' steps (beyond them is
    the term in steps' question), with the variance of its forecast there by the Laplace approximation at the
    fold's mode. Points that are a fitted run's own (the same loss at the same step: a run branched from another's
    checkpoint shares its curve up to the branch) are not scored: they are training data.

    Returns
    -------
    pandas.DataFrame
        As :func:`curve_fold_residuals`, with ``distance`` from :func:`schedule_distance` (0 where the schedule runs
        as a fitted one: there only a new run's own offset is scored); each left-out run (a fold) counts once.
    """
    sizes = fit.sizes
    priors = {n: fit.priors.get(n, fit.law.default_priors[n]) for n in fit.law.param_names}
    sigma = float(np.median(fit.draws(["sigma"])["sigma"]))
    groups: dict[float | None, list[str]] = {}
    for name in fit.schedules:
        groups.setdefault(sizes[name] if sizes else None, []).append(name)
    points = {name: part for name, part in fit.data.groupby("run", sort=False)}
    rows = []
    for size, names in groups.items():
        if len(names) < 2:
            continue
        medians = {n: float(np.median(v)) for n, v in fit.law_params(size).items()}
        for held in names:
            train = [n for n in names if n != held]
            parts = [curve_inputs(fit.schedules[n], points[n]["step"].to_numpy(), peak=fit.peak, max_terms=FIT_TERMS)
                     for n in train]
            y = np.log(np.concatenate([points[n]["loss"].to_numpy(float) for n in train]))
            point = _map_fit(fit.law, priors, parts, y, medians, sigma)
            if point is None:
                continue
            steps = points[held]["step"].to_numpy()
            within = steps <= max(int(points[n]["step"].max()) for n in train)
            if not within.any():
                continue
            inputs = curve_inputs(fit.schedules[held], steps[within], peak=fit.peak, max_terms=FIT_TERMS)
            distance = schedule_distance(fit.law, point[0](point[1]), inputs, [fit.schedules[n] for n in train],
                                         max_terms=FIT_TERMS, logged=[points[n]["step"].max() for n in train])
            predicted, var_param = _predicted(fit.law, *point, inputs)
            copied = _copied(points[held], [points[n] for n in train])[within]
            keep = ~copied & np.isfinite(predicted) & np.isfinite(var_param)
            if not keep.any():
                continue
            rows.append(pd.DataFrame({
                "fold": f"{held} left out", "run": held, "step": steps[within][keep], "distance": distance[keep],
                "residual": np.log(points[held]["loss"].to_numpy(float)[within][keep]) - predicted[keep],
                "var_param": var_param[keep], "sigma": sigma, "nu": math.inf, "size": 0}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _copied(held: pd.DataFrame, others: list[pd.DataFrame]) -> np.ndarray:
    """Which of ``held``'s logged points are also another run's: the same loss (to 1e-9) at the same step."""
    steps, loss = held["step"].to_numpy(), held["loss"].to_numpy(float)
    copied = np.zeros(len(steps), bool)
    for other in others:
        logged = other.drop_duplicates("step").set_index("step")["loss"]
        at = np.isin(steps, logged.index)
        copied[at] |= np.isclose(loss[at], logged.reindex(steps[at]).to_numpy(float), rtol=1e-9, atol=0.0)
    return copied


def learn_schedule_terms(residuals: pd.DataFrame, *, seed: int = 0) -> tuple[Extrapolation, Extrapolation]:
    """The term across schedules and a new run's own offset, from :func:`schedule_fold_residuals`.

    Each left-out run's residuals have the fold's variance plus ``tau**2 + (kappa d)**2``: a joint grid posterior
    over ``tau`` (:data:`RUN_TERM_GRID`, HalfNormal(:data:`RUN_TERM_PRIOR_SD`)) and ``kappa``
    (:data:`SCHEDULE_KAPPA_GRID`, HalfNormal(:data:`SCHEDULE_KAPPA_PRIOR_SD`)), the likelihood
    :func:`~bayes_scaling.extrapolation.fold_log_likelihood`'s (each left-out run counting once). The priors alone
    when no run could be left out (e.g. a fit of one run).

    Returns
    -------
    (Extrapolation, Extrapolation)
        ``kappa``'s and ``tau``'s marginal posteriors (forecasts draw them independently: a little wider than the
        joint, since the two trade off against each other).
    """
    log_post = (-0.5 * (RUN_TERM_GRID[:, None] / RUN_TERM_PRIOR_SD) ** 2
                - 0.5 * (SCHEDULE_KAPPA_GRID[None, :] / SCHEDULE_KAPPA_PRIOR_SD) ** 2)
    if len(residuals):
        for i, tau in enumerate(RUN_TERM_GRID):
            log_post[i] += fold_log_likelihood(residuals, SCHEDULE_KAPPA_GRID, seed=seed, extra_var=tau**2)[0]
    joint = grid_weights(log_post)
    folds = int(residuals["fold"].nunique()) if len(residuals) else 0

    def term(grid: np.ndarray, weights: np.ndarray, prior_sd: float) -> Extrapolation:
        return Extrapolation("kappa", grid.copy(), weights, folds, len(residuals), prior=f"halfnormal({prior_sd:g})")

    return (term(SCHEDULE_KAPPA_GRID, joint.sum(axis=0), SCHEDULE_KAPPA_PRIOR_SD),
            term(RUN_TERM_GRID, joint.sum(axis=1), RUN_TERM_PRIOR_SD))


def learn_schedule_term(residuals: pd.DataFrame, *, seed: int = 0) -> Extrapolation:
    """The term across schedules alone: ``kappa``'s marginal of :func:`learn_schedule_terms`."""
    return learn_schedule_terms(residuals, seed=seed)[0]


def _positive(*draws: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The draws (of :meth:`CurveFit.loss_draws`, paired across ``draws``) whose losses are all positive.

    A law barely constrained where it is asked (a decay the fitted curves never saw) can give non-positive losses
    (NaN on the log scale): those draws are left out with a warning, and a clear error is raised when all are.
    """
    usable = np.all([np.isfinite(v).all(axis=1) for d in draws for v in d.values()], axis=0)
    if not usable.any():
        raise ValueError("every posterior draw gives a non-positive loss at these steps: the law is not "
                         "constrained there (e.g. a decay the fitted curves never saw); give tighter priors")
    if not usable.all():
        warnings.warn(f"{int((~usable).sum())} of {usable.size} posterior draws give a non-positive loss at "
                      "these steps and are left out: the data barely constrain the law there", UserWarning,
                      stacklevel=3)
    return [{k: v[usable] for k, v in d.items()} for d in draws]


def _drifting(law: CurveLaw) -> list[str]:
    """The law's shape parameters that drift with size in a fit across sizes: all but ``L0`` with a positive prior."""
    return [n for n in law.param_names
            if n != "L0" and not law.default_priors[n].is_fixed and law.default_priors[n].dist != "Normal"]


def _size_priors(law: CurveLaw, drift: Any) -> dict[str, Prior]:
    """The default priors of a fit across sizes (the level's sweep law, the law's shape at N_ref, the slopes)."""
    if "L0" not in law.param_names:
        raise ValueError(f"curve law {law.name!r} has no level L0 to follow a law in N; fit one size at a time")
    drift = list(dict.fromkeys(drift))
    unknown = [n for n in drift if n not in _drifting(law)]
    if unknown:
        raise ValueError(f"drift= names {', '.join(map(repr, unknown))}: only the positive shape parameters of "
                         f"curve law {law.name!r} can drift with size ({', '.join(_drifting(law))})")
    shape = {n: law.default_priors[n] for n in law.param_names if n != "L0"}
    return {**SIZE_LEVEL_PRIORS, **shape, **{f"slope_{n}": SIZE_SLOPE_PRIOR for n in drift}}


def _at_size(xp: Any, p: Mapping[str, Any], x: Any, law: CurveLaw) -> dict[str, Any]:
    """The law's parameters at ``x = log(N / N_ref)`` from a fit across sizes' parameters ``p`` (numpy or PyTensor)."""
    level = get_law("params").log_loss(xp, {"E": p["E"], "log_n_term": p["log_n_term"], "alpha": p["alpha_N"]},
                                       {"N": x})  # the sweep law in N itself, its exponent named alpha_N here
    out = {"L0": xp.exp(level)}
    for n in law.param_names:
        if n != "L0":
            out[n] = p[n] * xp.exp(p[f"slope_{n}"] * x) if f"slope_{n}" in p else p[n]
    return out


def _run_sizes(data: pd.DataFrame, frame: pd.DataFrame, sizes: Mapping[str, float] | str, run: str
               ) -> dict[str, float]:
    """Each fitted run's parameter count from ``sizes`` (a mapping by run, or a column constant within each run)."""
    names = list(dict.fromkeys(frame["run"]))
    if isinstance(sizes, str):
        if sizes not in data.columns:
            raise ValueError(f"sizes={sizes!r} is not a column of the curve data; it has "
                             f"{', '.join(map(repr, data.columns))}")
        values = pd.to_numeric(data[sizes], errors="coerce")
        per_run = pd.DataFrame({"run": data[run].astype(str), "N": values}).groupby("run")["N"]
        mixed = [n for n, v in per_run if v.nunique(dropna=False) > 1]
        if mixed:
            raise ValueError(f"column {sizes!r} must hold one size per run; run {mixed[0]!r} has several")
        given = per_run.first().to_dict()
    else:
        given = {str(k): v for k, v in dict(sizes).items()}
        missing = [n for n in names if n not in given]
        if missing:
            raise ValueError(f"sizes= has no parameter count for run(s) {', '.join(map(repr, missing[:5]))}")
    out = {}
    for name in names:
        try:
            value = float(given[name])
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"the size of run {name!r} must be a positive parameter count, got {given[name]!r}")
        out[name] = value
    if len(set(out.values())) < 2:
        raise ValueError("a fit across sizes needs runs of at least two model sizes; without sizes= the runs share "
                         "one set of parameters")
    return out


def _as_data(parts: list[Any]) -> list[Any]:
    """The fitted runs' law inputs as data containers (``pm.Data``), so a compiled model serves other curves.

    One set of containers for all runs (:func:`~bayes_scaling.curve_laws.stack_inputs`), each run's inputs
    slices of it: nutpie's compile grows with the number of containers (three 100M multipower2025 curves, a set
    each: 44 s; one set: 35 s), while the law evaluated per run computes each term's rate factor once per run,
    not once per point (3x the sampling time). The decay terms enter as their active (step, term) pairs only
    (:func:`~bayes_scaling.curve_laws.with_pairs`): on the protocol's three multipower2025 curves (cosine, constant,
    WSD) 8,583 of the 17,209 dense entries are active, and skipping the rest halves the time a draw takes.
    """
    import pymc as pm

    parts = [with_pairs(x) for x in parts]
    stacked = stack_inputs(parts)
    names = ("area", "drop", "rate", "pair_row", "pair_term", "pair_since", "pair_lag") if stacked.drop.size \
        else ("area",)  # no decay
    return unstack_inputs(replace(stacked, **{name: pm.Data(name, getattr(stacked, name)) for name in names}), parts)


def _prepare(data: pd.DataFrame, schedules: Mapping[str, Schedule], run: str, step: str, loss: str
             ) -> pd.DataFrame:
    """The points as (run, step, loss), checked: columns, positive losses, steps the run's schedule covers."""
    missing = [c for c in (run, step, loss) if c not in data.columns]
    if missing:
        raise ValueError(f"column(s) {', '.join(map(repr, missing))} not in the curve data; it has "
                         f"{', '.join(map(repr, data.columns))}")
    frame = pd.DataFrame({"run": data[run].astype(str), "step": data[step], "loss": data[loss].astype(float)})
    bad = frame.index[~np.isfinite(frame["loss"]) | (frame["loss"] <= 0)]
    if len(bad):
        raise ValueError(f"loss must be a positive number; row {bad[0]} has {data.loc[bad[0], loss]!r}")
    unknown = sorted(set(frame["run"]) - set(schedules))
    if unknown:
        raise ValueError(f"no schedule for run(s) {', '.join(map(repr, unknown))}; give one per run in schedules=")
    for name, part in frame.groupby("run"):
        schedules[name].check(part["step"].to_numpy())  # a clear error for steps beyond the schedule
        if part["step"].duplicated().any():
            raise ValueError(f"run {name!r} logs step {int(part['step'][part['step'].duplicated()].iloc[0])} twice")
    return frame.sort_values(["run", "step"], kind="stable").reset_index(drop=True)


def fit_curves(
    data: pd.DataFrame,
    schedules: Mapping[str, Schedule],
    law: str | CurveLaw = "multipower",
    *,
    noise: str = "white",
    priors: Mapping[str, Any] | None = None,
    run: str = "run",
    step: str = "step",
    loss: str = "loss",
    sampling: Sampling | None = None,
    extrapolation: bool = True,
    sizes: Mapping[str, float] | str | None = None,
    drift: Any = (),
    **options: Any,
) -> CurveFit:
    """Fit a curve law to runs' logged losses under their schedules, with NUTS.

    Parameters
    ----------
    data : DataFrame
        One row per logged point: the run's name (``run``), the optimizer step (``step``) and the loss
        (``loss``, nats/token).
    schedules : mapping of str to Schedule
        The full schedule of each run (every step's learning rate, warmup included).
    law : {"multipower", "annealing"} or CurveLaw
    noise : {"white", "ar1", "offset"}
        Residuals along a run (see the module docstring; default ``"white"``). Across sizes the reason is
        sharper: a deviation that persists along a whole run (``ar1``'s long correlations, ``offset``) is the
        same quantity as its size's level when a size has few runs, so the runs' levels would not inform the law
        in N (on multipower2025, 25M and 100M to 400M: 10.6% error with ``ar1``, 7.5% with ``offset``, 0.37%
        ``white``).
    priors : mapping, optional
        Overrides of the law's or the noise's priors by name (a Prior, a dict, or a number to fix it).
    run, step, loss : str
        Column names.
    sampling : Sampling, optional
        Sampling options (or as keywords: ``draws``, ``tune``, ``chains``, ``seed``, ...). Without a Sampling,
        ``target_accept`` defaults to :data:`CURVE_TARGET_ACCEPT` for a fit of one size.
    extrapolation : bool
        Learn the extrapolation terms in steps and across schedules (see the module docstring; default).
        ``False``: forecasts beyond the logged steps and of schedules unlike the fitted ones carry the posterior's
        and the noise's uncertainty only.
    sizes : mapping of str to float, or str, optional
        Each run's parameter count N (a mapping by run, or a column of ``data`` constant within each run): one
        fit across model sizes (at least two), the level following a sweep law in N (see the module docstring);
        forecast another size with ``N=``. Default: every run shares one set of parameters (one model size).
    drift : sequence of str
        With ``sizes``: the law's shape parameters that change as a power of N (default none: the shape is the
        same at every size, as the Chinchilla form's data term is).

    Returns
    -------
    CurveFit
        A :class:`~bayes_scaling.inference.ConvergenceWarning` names every failed check when its diagnostics fail
        (R-hat, bulk ESS, divergences, tree depth; :meth:`CurveFit.diagnostics`).

    Raises
    ------
    ValueError
        A missing column, a run without a schedule, a step beyond its schedule, a non-positive loss, an unknown
        law or noise model; with ``sizes``, a run without a positive size or fewer than two sizes.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if noise not in CURVE_NOISE:
        raise ValueError(f"unknown noise {noise!r}; use one of {', '.join(CURVE_NOISE)}")
    law = get_curve_law(law)
    schedules = dict(schedules)
    frame = _prepare(data, schedules, run, step, loss)
    names = list(dict.fromkeys(frame["run"]))
    schedules = {n: schedules[n] for n in names}
    noise_priors = {k: NOISE_PRIORS[k] for k in NOISE_PARAMS[noise]}
    run_sizes = _run_sizes(data, frame, sizes, run) if sizes is not None else None
    if drift and not run_sizes:
        raise ValueError("drift= is for fits across sizes (give sizes=)")
    defaults = _size_priors(law, drift) if run_sizes else dict(law.default_priors)
    resolved = merge_priors({**defaults, **noise_priors}, priors, law_name=f"curve law {law.name!r}")
    for name in drift:
        if resolved[name].is_fixed and f"slope_{name}" not in (priors or {}):
            resolved[f"slope_{name}"] = Prior.fixed(0.0)  # a parameter fixed by the user stays fixed at every size
    peak = max(s.peak for s in schedules.values())
    parts = {n: curve_inputs(schedules[n], frame.loc[frame["run"] == n, "step"].to_numpy(), peak=peak,
                             max_terms=FIT_TERMS) for n in names}
    if sampling is None and sizes is None:
        options.setdefault("target_accept", CURVE_TARGET_ACCEPT)
    config = Sampling.of(sampling, **options)
    y = np.log(frame["loss"].to_numpy())
    steps = frame["step"].to_numpy(dtype=float)
    first = np.r_[True, frame["run"].to_numpy()[1:] != frame["run"].to_numpy()[:-1]]
    gaps = np.where(first, np.inf, np.r_[np.inf, np.diff(steps)])
    codes = pd.Categorical(frame["run"], categories=names).codes
    reference = math.exp(float(np.mean(np.log(sorted(set(run_sizes.values())))))) if run_sizes else None
    with pm.Model(coords={"point": np.arange(len(frame)), "run": names}) as model:
        inputs = _as_data([parts[n] for n in names])
        if run_sizes:
            level = list(SIZE_LEVEL_PRIORS)
            if applies("curve_level", resolved):  # sampled in what the sizes measure (the sweep laws' geometry)
                base = slope_coordinates("curve_level", level, resolved)
            else:
                base = {n: resolved[n].create(n) for n in level}
            base.update({n: resolved[n].create(n) for n in defaults if n not in level})
            size_x = pm.Data("size_x", np.log([run_sizes[n] / reference for n in names]))
            mean = pt.concatenate([law.loss(pt, _at_size(pt, base, size_x[i], law), x)
                                   for i, x in enumerate(inputs)])
        else:
            params = {n: resolved[n].create(n) for n in law.param_names}
            mean = pt.concatenate([law.loss(pt, params, x) for x in inputs])
        residual = pm.Data("log_loss", y) - pt.log(mean)
        sigma = resolved["sigma"].create("sigma")
        if noise == "ar1":
            ell = resolved["ell"].create("ell")
            rho = pt.exp(-pm.Data("gap", np.where(np.isinf(gaps), 1e30, gaps)) / ell)
            previous = pt.concatenate([pt.zeros(1), residual[:-1]])
            mu = rho * previous
            scale = sigma * pt.sqrt(1.0 - rho**2 + 1e-12)
        elif noise == "offset":
            tau = resolved["tau"].create("tau")
            offset = pm.Normal("offset", 0.0, tau, dims="run")
            mu, scale = offset[pm.Data("run_code", codes.astype("int64"))], sigma
        else:
            mu, scale = 0.0, sigma
        pm.Potential("curve_likelihood", pm.logp(pm.Normal.dist(mu, scale), residual).sum())
        pm.Deterministic("pointwise", pm.logp(pm.Normal.dist(mu, scale), residual), dims="point")
    # what fixes the compiled model: the law, noise, priors, and each run's points, decay terms and active pairs
    # (the slices of the data containers; the pointwise log density has one value per point); the same curves'
    # structure at another size or seed, or other curves logged at the same steps, reuse it
    cache_key = ("curves", law.name, id(law), noise, tuple(sorted((k, repr(v)) for k, v in resolved.items())),
                 tuple(drift), bool(run_sizes),
                 tuple((x.area.size, x.drop.size, int(np.count_nonzero(x.active))) for x in parts.values()),
                 tuple(names) if noise == "offset" else None)  # the offsets' coordinates are the runs' names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = sample(model, config, cache_key=cache_key)
    info = {"seed": config.seed, "draws": config.draws, "tune": config.tune, "chains": config.chains,
            "runs": len(names), "points": len(frame), "fit_terms": FIT_TERMS}
    if run_sizes:
        info.update(sizes=run_sizes, size_reference=reference, drift=list(dict.fromkeys(drift)))
    result = CurveFit(law=law, noise=noise, data=frame, schedules=schedules, peak=peak, idata=idata,
                      priors=resolved, info=info)
    warn_if_unconverged(result.diagnostics(), label=f"curve fit of {law.name!r}")
    if extrapolation:
        term = learn_curve_term(curve_fold_residuals(result), seed=config.seed or 0)
        result.info["extrapolation"] = term.to_dict()
        across, offset = learn_schedule_terms(schedule_fold_residuals(result), seed=config.seed or 0)
        result.info["schedule_term"] = across.to_dict()
        if noise != "offset":  # that noise model has its runs' offsets already (its tau)
            result.info["run_term"] = offset.to_dict()
    return result


def compare_noise(fits: Mapping[str, CurveFit]) -> pd.DataFrame:
    """PSIS-LOO of curve fits with different noise models (of the same points): elpd, its se, and the difference.

    Each point's log density is conditional on the run's earlier points under ``ar1``, so the comparison scores
    one-step-ahead prediction along each run.
    """
    import arviz as az
    import xarray as xr

    loos = {}
    for name, f in fits.items():
        pointwise = f.idata["posterior"]["pointwise"]
        tree = f.idata.copy()
        tree["log_likelihood"] = xr.DataTree(xr.Dataset({"loss": pointwise.to_dataset()["pointwise"]}))
        loos[name] = az.loo(tree, pointwise=True)
    rows = {n: {"elpd": float(np.asarray(v.elpd_i).sum()), "se": float(np.sqrt(np.asarray(v.elpd_i).size)
                                                                          * np.std(np.asarray(v.elpd_i)))}
            for n, v in loos.items()}
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("elpd", ascending=False)
    table["difference"] = table["elpd"] - table["elpd"].iloc[0]
    return table


def load_curves(path: Any) -> CurveFit:
    """Read a curve fit written by :meth:`CurveFit.save`.

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, damaged or not a curve fit.
    """
    from bayes_scaling.posterior import FitFileError, read_saved
    from bayes_scaling.priors import as_prior

    tree, meta = read_saved(path, CURVES_KEY, what="curve fit", label="bayes_scaling curve fit",
                            hint="; write one with `bayes-scaling curve fit --out`")
    try:
        group = tree[SCHEDULES_GROUP].to_dataset()
        schedules = {n: Schedule(np.asarray(group[f"lr_{i}"].values, float), name=label)
                     for i, (n, label) in enumerate(zip(meta["runs"], meta["schedule_names"], strict=True))}
        idata = tree.copy()
        del idata[SCHEDULES_GROUP]
        return CurveFit(law=get_curve_law(meta["law"]), noise=meta["noise"], data=pd.DataFrame(**meta["data"]),
                        schedules=schedules, peak=float(meta["peak"]), idata=idata,
                        priors={k: as_prior(v, name=k) for k, v in meta["priors"].items()}, info=meta["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FitFileError(f"{path} holds damaged curve-fit metadata: {exc}") from None
