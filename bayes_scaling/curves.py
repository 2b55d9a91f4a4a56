"""Bayesian fits of training-loss curves under learning-rate schedules, and forecasts with intervals.

:func:`fit_curves` fits a curve law (:mod:`bayes_scaling.curve_laws`) to one or more runs' logged losses, each with
its full schedule (:class:`~bayes_scaling.schedules.Schedule`), and :meth:`CurveFit.forecast` gives the loss at any
step of any schedule with a credible interval (the law's curve) and a predictive interval (what a run will log).

**Checkpoints of one run are not independent.** The residuals of log-loss around the law are modelled per run as
an Ornstein-Uhlenbeck process along steps (``noise="ar1"``, the default): marginal scale ``sigma`` and correlation
``exp(-gap / ell)`` between points ``gap`` steps apart, so that a curve of 500 logged points does not count as
500 independent runs and a run's deviation from the law persists. ``noise="white"`` treats points as independent
(the special case ``ell -> 0``) and ``noise="offset"`` gives each run its own constant offset plus white noise;
:func:`compare_noise` scores the three by PSIS-LOO.

**A run in flight**: :meth:`CurveFit.forecast` with ``run=`` conditions on that run's observed curve: its last
residual carries on with the fitted correlation (offset: the run's offset), decaying toward the law.

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
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.curve_laws import CurveLaw, curve_inputs, get_curve_law
from bayes_scaling.extrapolation import KAPPA_PRIOR_SD, MIN_WIDTH, Extrapolation, learn
from bayes_scaling.inference import Sampling, diagnose, sample, warn_if_unconverged
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.priors import Prior, merge_priors
from bayes_scaling.schedules import Schedule

__all__ = ["CURVES_KEY", "CURVE_FOLD_FRACTIONS", "CURVE_NOISE", "NOISE_PARAMS", "CurveFit", "compare_noise",
           "curve_fold_residuals", "fit_curves", "learn_curve_term", "load_curves", "step_distance"]

#: The metadata key of a saved curve fit (what :func:`bayes_scaling.load` recognises it by).
CURVES_KEY = "bayes_scaling_curves"
#: The group of a saved curve fit that holds every run's schedule (one variable per run, every step's rate).
SCHEDULES_GROUP = "schedules"

#: Residual models along a run's steps (see the module docstring).
CURVE_NOISE = ("ar1", "white", "offset")
#: Default priors of the noise: scale of log-loss residuals, correlation length in steps, spread of run offsets.
NOISE_PRIORS = {"sigma": Prior("HalfNormal", sigma=0.02), "ell": Prior("LogNormal", mu=math.log(2000.0), sigma=1.5),
                "tau": Prior("HalfNormal", sigma=0.02)}
#: The noise parameters of each residual model.
NOISE_PARAMS = {"ar1": ("sigma", "ell"), "white": ("sigma",), "offset": ("sigma", "tau")}
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

    def law_params(self) -> dict[str, np.ndarray]:
        """The law's parameters per draw, shape (draws, 1) each (fixed ones broadcast)."""
        posterior = self.idata["posterior"].to_dataset()
        total = posterior.sizes["chain"] * posterior.sizes["draw"]
        return {n: (np.asarray(posterior[n].values, float).reshape(-1, 1) if n in posterior
                    else np.full((total, 1), self.priors[n].value)) for n in self.law.param_names}

    def diagnostics(self) -> Any:
        """R-hat, bulk ESS, divergences and tree depth of the sampled parameters."""
        names = [n for n in self.law.param_names if not self.priors[n].is_fixed] + self.noise_names
        return diagnose(self.idata, names)

    @property
    def noise_names(self) -> list[str]:
        """The noise parameters of the fit's noise model."""
        return list(NOISE_PARAMS[self.noise])

    def summary(self, prob: float | None = None) -> pd.DataFrame:
        """Parameter table: mean, sd, equal-tailed interval, R-hat and bulk ESS."""
        import arviz as az

        prob = check_prob(prob)
        names = [n for n in (*self.law.param_names, *self.noise_names) if not self.priors[n].is_fixed]
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
                 seed: int | None = 0) -> pd.DataFrame:
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

        Returns
        -------
        IntervalTable
            Per step: ``step``, ``median``, ``lower``, ``upper`` (the law's curve), ``pred_lower``, ``pred_upper``
            (a run's logged loss), ``distance`` (beyond the logged steps, in widths: :meth:`distance`; the
            extrapolation term grows with it).
        """
        prob = check_prob(prob)
        (draws,) = _positive(self.loss_draws(schedule, steps, run=run, seed=seed))
        low, median, high = equal_tailed(draws["mean"], prob, median=True)
        plow, phigh = equal_tailed(draws["pred"], prob)
        out = pd.DataFrame({"step": np.asarray(steps).reshape(-1), "median": median, "lower": low, "upper": high,
                            "pred_lower": plow, "pred_upper": phigh,
                            "distance": self.distance(np.asarray(steps).reshape(-1), run)})
        return interval_table(out, prob)

    def compare(self, a: Schedule | str, b: Schedule | str, steps: Any, *, prob: float | None = None,
                seed: int | None = 0) -> pd.DataFrame:
        """Schedule ``a`` against ``b`` at ``steps``: the loss difference ``a - b`` and P(``a`` ends lower).

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
        one, two = _positive(self.loss_draws(a, steps, seed=rng, term=shared),
                             self.loss_draws(b, steps, seed=rng, term=shared))
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

    def term_line(self) -> str:
        """One line on the extrapolation term in steps (for printouts)."""
        term = self.term
        if term is None:
            return "no extrapolation term: beyond the logged steps only the posterior's and the noise's uncertainty"
        low, median, high = term.quantiles()
        return (f"extrapolation beyond the logged steps: kappa {median:.4f} [{low:.4f}, {high:.4f}] log-loss per "
                f"width of log-steps, from {term.folds} forward-chaining folds ({term.residuals} held-out points)")

    def _term_draws(self, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """(kappa per draw, standard normal per draw and step) of the term, or None without one."""
        term = self.term
        if term is None:
            return None
        total = len(next(iter(self.law_params().values())))
        return term.joint_draws(total, rng)[1], rng.standard_normal((total, n_steps))

    def loss_draws(self, schedule: Schedule | str, steps: Any, *, run: str | None = None,
                   seed: int | np.random.Generator | None = 0, term: Any = None) -> dict[str, np.ndarray]:
        """Draws of the law's loss (``mean``) and of a run's logged loss (``pred``) at ``steps``: (draws, steps).

        Beyond the logged steps the extrapolation term adds ``kappa * d * z`` to the log-loss of both (``term``:
        given (kappa, z) draws, to pair two calls; default drawn from ``seed``).
        """
        if isinstance(schedule, str):
            if schedule not in self.schedules:
                raise KeyError(f"no fitted run {schedule!r}; runs: {', '.join(self.schedules)}")
            schedule = self.schedules[schedule]
        inputs = curve_inputs(schedule, steps, peak=self.peak, max_terms=FORECAST_TERMS)
        mean = self._law_loss(inputs)
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
            scatter = self._continue(run, inputs.steps, noise, log_mean.shape, rng)
        if term is None:  # drawn after the scatter: within the logged steps the draws are those without a term
            term = self._term_draws(shape[1], rng)
        if term is not None:
            kappa, z = term
            log_mean = log_mean + kappa[:, None] * self.distance(inputs.steps, run)[None, :] * z
        return {"mean": np.exp(log_mean), "pred": np.exp(log_mean + scatter)}

    def _law_loss(self, inputs: Any) -> np.ndarray:
        """The law's loss per posterior draw at ``inputs``' steps, (draws, steps), a block of draws at a time."""
        params = self.law_params()
        total = len(next(iter(params.values())))
        chunk = max(1, int(FORECAST_CELLS // max(1, inputs.since.size)))  # draws per pass, bounding memory
        return np.concatenate([np.asarray(self.law.loss(np, {k: v[i:i + chunk] for k, v in params.items()}, inputs),
                                          float) for i in range(0, total, chunk)])

    def _continue(self, run: str, steps: np.ndarray, noise: Mapping[str, np.ndarray], shape: tuple[int, int],
                  rng: np.random.Generator) -> np.ndarray:
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
        residual = np.log(last["loss"].to_numpy())[None, :] - np.log(self._law_loss(inputs))
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

    def residuals(theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = (y - np.log(np.asarray(law.loss(np, unpack(theta), inputs), float))) / sigma
        return np.r_[np.where(np.isfinite(r), r, 1e3), penalties(theta)]

    theta0 = np.array([math.log(start[n]) if lg else start[n] for n, lg in zip(free, logged, strict=True)])
    try:
        with np.errstate(all="ignore"):
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
    medians = {n: float(np.median(v)) for n, v in fit.law_params().items()}
    sigma = float(np.median(fit.draws(["sigma"])["sigma"]))
    rows = []
    for name, points in fit.data.groupby("run", sort=False):
        steps = points["step"].to_numpy(float)
        y = np.log(points["loss"].to_numpy(float))
        schedule = fit.schedules[name]
        for fraction in fractions:
            train = steps <= fraction * steps.max()
            if train.sum() < CURVE_FOLD_MIN_POINTS or train.all():
                continue
            inputs = curve_inputs(schedule, steps[train], peak=fit.peak, max_terms=FIT_TERMS)
            point = _map_fit(fit.law, fit.priors, inputs, y[train], medians, sigma)
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
    noise: str = "ar1",
    priors: Mapping[str, Any] | None = None,
    run: str = "run",
    step: str = "step",
    loss: str = "loss",
    sampling: Sampling | None = None,
    extrapolation: bool = True,
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
    noise : {"ar1", "white", "offset"}
        Residuals along a run (see the module docstring).
    priors : mapping, optional
        Overrides of the law's or the noise's priors by name (a Prior, a dict, or a number to fix it).
    run, step, loss : str
        Column names.
    sampling : Sampling, optional
        Sampling options (or as keywords: ``draws``, ``tune``, ``chains``, ``seed``, ...).
    extrapolation : bool
        Learn the extrapolation term in steps (see the module docstring; default). ``False``: forecasts beyond
        the logged steps carry the posterior's and the noise's uncertainty only.

    Returns
    -------
    CurveFit
        A :class:`~bayes_scaling.inference.ConvergenceWarning` names every failed check when its diagnostics fail
        (R-hat, bulk ESS, divergences, tree depth; :meth:`CurveFit.diagnostics`).

    Raises
    ------
    ValueError
        A missing column, a run without a schedule, a step beyond its schedule, a non-positive loss, an unknown
        law or noise model.
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
    resolved = merge_priors({**law.default_priors, **noise_priors}, priors, law_name=f"curve law {law.name!r}")
    peak = max(s.peak for s in schedules.values())
    parts = {n: curve_inputs(schedules[n], frame.loc[frame["run"] == n, "step"].to_numpy(), peak=peak,
                             max_terms=FIT_TERMS) for n in names}
    config = Sampling.of(sampling, **options)
    y = np.log(frame["loss"].to_numpy())
    steps = frame["step"].to_numpy(dtype=float)
    first = np.r_[True, frame["run"].to_numpy()[1:] != frame["run"].to_numpy()[:-1]]
    gaps = np.where(first, np.inf, np.r_[np.inf, np.diff(steps)])
    codes = pd.Categorical(frame["run"], categories=names).codes
    with pm.Model(coords={"point": np.arange(len(frame)), "run": names}) as model:
        params = {n: resolved[n].create(n) for n in law.param_names}
        mean = pt.concatenate([law.loss(pt, params, parts[n]) for n in names])
        residual = pt.as_tensor_variable(y) - pt.log(mean)
        sigma = resolved["sigma"].create("sigma")
        if noise == "ar1":
            ell = resolved["ell"].create("ell")
            rho = pt.exp(-pt.as_tensor_variable(np.where(np.isinf(gaps), 1e30, gaps)) / ell)
            previous = pt.concatenate([pt.zeros(1), residual[:-1]])
            mu = rho * previous
            scale = sigma * pt.sqrt(1.0 - rho**2 + 1e-12)
        elif noise == "offset":
            tau = resolved["tau"].create("tau")
            offset = pm.Normal("offset", 0.0, tau, dims="run")
            mu, scale = offset[codes], sigma
        else:
            mu, scale = 0.0, sigma
        pm.Potential("curve_likelihood", pm.logp(pm.Normal.dist(mu, scale), residual).sum())
        pm.Deterministic("pointwise", pm.logp(pm.Normal.dist(mu, scale), residual), dims="point")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = sample(model, config)
    info = {"seed": config.seed, "draws": config.draws, "tune": config.tune, "chains": config.chains,
            "runs": len(names), "points": len(frame), "fit_terms": FIT_TERMS}
    result = CurveFit(law=law, noise=noise, data=frame, schedules=schedules, peak=peak, idata=idata,
                      priors=resolved, info=info)
    warn_if_unconverged(result.diagnostics(), label=f"curve fit of {law.name!r}")
    if extrapolation:
        term = learn_curve_term(curve_fold_residuals(result), seed=config.seed or 0)
        result.info["extrapolation"] = term.to_dict()
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
