"""Beyond loss: a downstream metric (benchmark error) as a function of the loss, fitted with PyMC.

Teams plan on benchmark scores, not on cross-entropy. The second stage of a two-step forecast (compute → loss →
error) maps a model's loss ``L`` to its error on a benchmark, where small models sit at chance and better models
leave it. Two link forms, each a small object like a scaling law:

* ``"exponential"`` (Gadre et al. 2024): ``Err(L) = eps - g(L)``, ``g = k * exp(-gamma * L)``, free asymptote
  ``eps``, sampled as ``g = exp(log_gap - gamma * (L - L_ref))`` with ``L_ref`` the median training loss
  (``log_gap`` is the log of the distance below ``eps`` there; ``k = exp(log_gap + gamma L_ref)``), which keeps
  ``k`` and ``gamma`` apart. **Saturation**: the error cannot fall below a learned floor ``eps * floor_frac``
  (label noise, ambiguous items; Beta(1, 4) prior, most mass near no floor), so the fall ``g`` is combined with
  the room above the floor ``h = eps - floor`` as the soft minimum ``g / (1 + (g/h)^2)^(1/2)``
  (:data:`SATURATION_POWER`): the published law while ``g << h``, the floor as ``g`` grows. Extrapolated in
  loss, the plain form runs to zero error (a 100% accuracy forecast on a task that saturates at 83%);
* ``"sigmoid"``: ``Err(L) = c - (c - floor) * sigmoid((L0 - L) / s)``, with the chance error ``c`` as the ceiling
  of the error (a model at chance) and a learned best error ``floor`` in (0, c).

The noise is a Student-t on the error (robust; the default when the number of test items is unknown, e.g. for an
average over tasks) or, given the number of items of a single task, binomial on the count of wrong answers.

:func:`chain` carries a loss forecast through the link draw by draw: the metric's interval then holds both stages
(the loss fit's parameters, run scatter and extrapolation term, and the link's parameters and noise).

Many tasks at once: :func:`fit_tasks` fits a sigmoid link per task with task-level partial pooling (a task still at
chance borrows its shape from the others) and noise from each task's test items; :func:`task_table` reports per
task the probability that a model at (N, D) is above chance and the loss at which the task leaves chance.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_scaling.inference import (
    Diagnostics,
    Sampling,
    diagnose,
    sample,
    sample_unstuck,
    sample_with_retry,
    warn_if_unconverged,
)
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.priors import Prior

if TYPE_CHECKING:
    from bayes_scaling.extrapolation import Extrapolation
    from bayes_scaling.posterior import Fit

__all__ = ["LINKS", "LINK_FAR", "SAVED_KEYS", "DownstreamFit", "Link", "TaskFit", "chain", "compare_links",
           "fit_downstream", "fit_tasks", "learn_link_term", "link_curve", "link_fold_residuals", "link_term",
           "load_downstream", "load_tasks", "loss_distance", "task_table"]

_META_KEY = "bayes_scaling_downstream"


@dataclass(frozen=True)
class Link:
    """A link form: metric (error, in [0, 1]) as a function of the loss, for numpy and PyTensor alike.

    ``mean(xp, params, loss, chance, reference)`` returns the expected error (``reference``: the median training
    loss); ``priors(loss, chance)`` the priors of the parameters given the training losses and the chance error.
    """

    name: str
    formula: str
    mean: Callable[[Any, Mapping[str, Any], Any, float, float], Any]
    priors: Callable[[np.ndarray, float], dict[str, Prior]]
    floor: Callable[[Mapping[str, Any], float], Any]


#: Sharpness of the exponential link's turn onto its floor (a soft minimum of the fall and the room above the
#: floor, ``g / (1 + (g/h)^p)^(1/p)``): 2 keeps the published law until the fall nears the room (1: a logistic
#: in the loss, which bends the law long before).
SATURATION_POWER = 2.0


def _exponential_mean(xp: Any, p: Mapping[str, Any], loss: Any, chance: float, reference: float) -> Any:
    gap = xp.exp(p["log_gap"] - p["gamma"] * (loss - reference))
    room = p["eps"] * (1.0 - p["floor_frac"])  # eps - floor: how far the error can fall
    return p["eps"] - gap / (1.0 + (gap / room) ** SATURATION_POWER) ** (1.0 / SATURATION_POWER)


def _exponential_priors(loss: np.ndarray, chance: float) -> dict[str, Prior]:
    # the distance below eps at the median training loss: median 0.05, 95% 0.003-0.9; the floor as a fraction of
    # eps: Beta(1, 4), most mass near no floor (the unsaturated law), mean 0.2 (label noise, ambiguous items)
    return {"eps": Prior("Normal", mu=chance, sigma=0.1), "log_gap": Prior("Normal", mu=math.log(0.05), sigma=1.5),
            "gamma": Prior("LogNormal", mu=0.0, sigma=0.75), "floor_frac": Prior("Beta", alpha=1.0, beta=4.0)}


def _exponential_floor(p: Mapping[str, Any], chance: float) -> Any:
    return p["eps"] * p["floor_frac"]


def _sigmoid_mean(xp: Any, p: Mapping[str, Any], loss: Any, chance: float, reference: float) -> Any:
    floor = chance * p["floor_frac"]
    z = (p["midpoint"] - loss) / p["width"]
    return chance - (chance - floor) / (1.0 + xp.exp(-z))


def _sigmoid_floor(p: Mapping[str, Any], chance: float) -> Any:
    return chance * p["floor_frac"]


def _sigmoid_priors(loss: np.ndarray, chance: float) -> dict[str, Prior]:
    return {"floor_frac": Prior("Beta", alpha=2.0, beta=2.0),
            "midpoint": Prior("Normal", mu=float(np.median(loss)), sigma=1.5),
            "width": Prior("LogNormal", mu=math.log(0.5), sigma=0.75)}


#: The link forms by name.
LINKS: dict[str, Link] = {
    "exponential": Link("exponential", "Err = eps - g / sqrt(1 + (g / h)^2), g = k exp(-gamma L), h = eps - floor",
                        _exponential_mean, _exponential_priors, _exponential_floor),
    "sigmoid": Link("sigmoid", "Err = c - (c - floor) sigmoid((L0 - L) / s)", _sigmoid_mean, _sigmoid_priors,
                    _sigmoid_floor),
}
#: Prior of the Student-t noise scale on the error (absolute, fraction of items).
SIGMA_PRIOR = Prior("HalfNormal", sigma=0.05)
#: Prior of the Student-t degrees of freedom.
NU_PRIOR = Prior("Gamma", alpha=2.0, beta=0.1)
#: Quantiles of a link's training losses at which its forward-chaining folds are cut: the models below a cut
#: (lower loss: the better models, where forecasts go) are held out and forecast by a link fitted on the rest.
LINK_FOLD_QUANTILES = (0.2, 0.35, 0.5)
#: Fewest models a fold's link is fitted on.
LINK_FOLD_MIN_MODELS = 6
#: Grid of the link term's scale ``kappa`` (absolute error per width of the link's range of losses) and its
#: HalfNormal prior scale: 5 points of error per width, several times what links fitted on one ladder miss by.
LINK_KAPPA_GRID = np.linspace(0.0, 0.5, 251)
LINK_KAPPA_PRIOR_SD = 0.05
#: Narrowest range of losses (nats) a distance is measured against.
LINK_MIN_WIDTH = 0.1
#: Held-out models within this distance (widths) of each other in one fold count as one observation.
LINK_DISTANCE_BIN = 0.1
#: Beyond this distance (widths of the link's range of losses) a forecast warns that it extrapolates far.
LINK_FAR = 1.0


def loss_distance(loss: Any, fitted: Any) -> np.ndarray:
    """How far losses lie outside the losses a link was fitted on, in widths of that range (0 inside).

    The width is the range of ``fitted`` (at least :data:`LINK_MIN_WIDTH` nats); below the range (better
    models, the usual forecast) and above it alike.
    """
    fitted = np.asarray(fitted, float)
    low, high = float(fitted.min()), float(fitted.max())
    loss = np.asarray(loss, float)
    return np.maximum(np.maximum(low - loss, loss - high), 0.0) / max(high - low, LINK_MIN_WIDTH)


@dataclass
class DownstreamFit:
    """A fitted link from loss to a downstream metric.

    Attributes
    ----------
    link : Link
    metric : str
        The metric column fitted (an error in [0, 1]).
    chance : float
        The error of random guessing.
    items : int or None
        Test items behind each value (binomial noise), or None (Student-t noise).
    data : pandas.DataFrame
        The runs fitted: ``loss`` and the metric.
    idata : xarray.DataTree
        The posterior (``posterior``, ``sample_stats``, ``log_likelihood``).
    info : dict
        Sampling options and timings.
    """

    link: Link
    metric: str
    chance: float
    items: int | None
    data: pd.DataFrame
    idata: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> float:
        """The median training loss the exponential link is centred on."""
        return float(np.median(self.data["loss"]))

    @property
    def param_names(self) -> list[str]:
        """The link's parameters and, for Student-t noise, ``sigma`` and ``nu``."""
        names = list(self.link.priors(self.data["loss"].to_numpy(), self.chance))
        return names if self.items is not None else [*names, "sigma", "nu"]

    def draws(self) -> dict[str, np.ndarray]:
        """Posterior draws of the parameters, chains concatenated."""
        posterior = self.idata["posterior"]
        return {name: np.asarray(posterior[name].values, float).reshape(-1) for name in self.param_names}

    def diagnostics(self) -> Diagnostics:
        """R-hat, bulk ESS and divergences of the link's parameters."""
        return diagnose(self.idata, self.param_names)

    def to_dict(self, prob: float | None = None) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling fit-downstream --json``): the link, its parameters, diagnostics."""
        from bayes_scaling.outputs import table_records

        return {"metric": self.metric, "form": self.link.name, "formula": self.link.formula, "chance": self.chance,
                "runs": len(self.data), "params": table_records(self.summary(prob)),
                "diagnostics": self.diagnostics().to_dict()}

    def summary(self, prob: float | None = None) -> pd.DataFrame:
        """Posterior median and equal-tailed interval of each parameter, with R-hat and bulk ESS."""
        import arviz as az

        prob = check_prob(prob)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az.summary(self.idata, var_names=self.param_names, round_to="none")
        rows = {}
        for name, values in self.draws().items():
            low, high = equal_tailed(values, prob)
            rows[name] = {"median": float(np.median(values)), "lower": float(low), "upper": float(high),
                          "r_hat": float(table.loc[name, "r_hat"]), "ess_bulk": float(table.loc[name, "ess_bulk"])}
        out = pd.DataFrame(rows).T
        out.index.name = "parameter"
        return interval_table(out, prob)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the link fit to a netCDF file (refuses to replace one unless ``overwrite``; atomic)."""
        from bayes_scaling.posterior import write_saved

        meta = {"link": self.link.name, "metric": self.metric, "chance": self.chance, "items": self.items,
                "data": json.loads(self.data.to_json(orient="split", index=False, double_precision=15)),
                "info": self.info}
        return write_saved(path, self.idata, _META_KEY, meta, overwrite=overwrite)

    @property
    def term(self) -> Extrapolation | None:
        """The link's extrapolation term (learned by forward chaining in loss), or None (fitted without it)."""
        return link_term(self)

    def predict(self, loss: np.ndarray, *, seed: int | np.random.Generator | None = 0,
                items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(expected metric, metric of one more evaluation) for draws of the loss, shape (draws, points).

        Each row of ``loss`` (a draw of the loss at every point) is paired with one posterior draw of the link
        (resampled to as many draws). Beyond the losses the link was fitted on, the link's extrapolation term
        adds ``kappa * d * z`` to the expected metric (``d``: :func:`loss_distance`, one ``kappa`` per draw),
        which then stays within [floor, chance] (the link's floor; the chance error, or the link's own top
        where the data sit above chance). The new evaluation's noise is binomial over ``items`` (default: the
        fit's) or the fitted Student-t, clipped to [0, 1].
        """
        from bayes_scaling.predictive import pair_draws

        rng = np.random.default_rng(seed)
        loss = np.atleast_2d(np.asarray(loss, float))
        params = {k: v[:, None] for k, v in pair_draws(self.draws(), loss.shape[0], rng).items()}
        mean = np.clip(self.link.mean(np, params, loss, self.chance, self.reference), 0.0, 1.0)
        term = link_term(self)
        if term is not None:
            _, kappa = term.joint_draws(loss.shape[0], rng)
            d = loss_distance(loss, self.data["loss"])
            top = np.maximum(mean, self.chance)
            floor = np.clip(self.link.floor(params, self.chance), 0.0, None)
            mean = np.clip(mean + kappa[:, None] * d * rng.standard_normal(mean.shape), floor, top)
        n = items if items is not None else self.items
        if n is not None:
            pred = rng.binomial(int(n), mean) / int(n)
        else:
            pred = np.clip(mean + params["sigma"] * rng.standard_t(np.broadcast_to(params["nu"], mean.shape)),
                           0.0, 1.0)
        return mean, pred


def link_term(link: Any) -> Extrapolation | None:
    """The extrapolation term kept in a link fit's ``info`` (None for fits made without it)."""
    from bayes_scaling.extrapolation import Extrapolation

    saved = (getattr(link, "info", None) or {}).get("extrapolation")
    return Extrapolation.from_dict(saved) if saved else None


def _loss_folds(loss: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Forward-chaining folds in loss: (fold, models above the cut, models at or below it).

    One per usable cut at the :data:`LINK_FOLD_QUANTILES` of ``loss``: at least :data:`LINK_FOLD_MIN_MODELS` to
    fit, one to score.
    """
    for fold, q in enumerate(LINK_FOLD_QUANTILES):
        cut = float(np.quantile(loss, q))
        train, test = loss > cut, loss <= cut
        if train.sum() >= LINK_FOLD_MIN_MODELS and test.any():
            yield fold, train, test


def link_fold_residuals(link: DownstreamFit, *, seed: int = 0) -> pd.DataFrame:
    """Forward-chaining residuals of a link in loss: fit on the higher-loss models, forecast the lower-loss ones.

    For each cut at the :data:`LINK_FOLD_QUANTILES` of the training losses, the link (same form, priors and
    noise) is refitted by the Laplace approximation to the models above the cut and scored on those below.

    Returns
    -------
    pandas.DataFrame
        One row per held-out model and fold: ``fold``, ``loss``, ``distance`` (below the fold's losses, in
        widths of its range: :func:`loss_distance`), ``residual`` (observed minus the fold's median expected
        metric), ``var_param`` (variance of the fold's expected metric), ``sigma`` and ``nu`` (the noise of one
        evaluation there: Student-t, or binomial as a Normal with ``nu`` infinite), and ``size`` (the distance
        bin: held-out models within :data:`LINK_DISTANCE_BIN` of each other in a fold count once).
    """
    from bayes_scaling.approx import laplace

    loss = link.data["loss"].to_numpy()
    y = link.data[link.metric].to_numpy()
    priors = link.link.priors(loss, link.chance)
    key = ("downstream-folds", link.link.name, link.items, link.chance, link.reference,
           tuple(sorted((k, repr(v)) for k, v in priors.items())))
    rows = []
    for fold, train, test in _loss_folds(loss):
        def model(train: np.ndarray = train) -> Any:
            return _build(link.link, priors, loss[train], y[train], link.chance, link.reference, link.items)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata, _ = laplace(model, draws=200, chains=1, seed=seed + fold, check_draws=50, cache_key=key,
                                   data=_link_data(loss[train], y[train], link.items))
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            continue  # no usable mode for this fold: it contributes nothing
        posterior = idata["posterior"]
        params = {n: np.asarray(posterior[n].values, float).reshape(-1, 1) for n in priors}
        expected = np.clip(link.link.mean(np, params, loss[test][None, :], link.chance, link.reference), 0.0, 1.0)
        center = np.median(expected, axis=0)
        if link.items is None:
            sigma = np.full(test.sum(), float(np.median(posterior["sigma"].values)))
            nu = float(np.median(posterior["nu"].values))
        else:
            sigma, nu = np.sqrt(np.clip(center * (1 - center), 1e-6, None) / link.items), math.inf
        distance = loss_distance(loss[test], loss[train])
        rows.append(pd.DataFrame({"fold": fold, "loss": loss[test], "distance": distance,
                                  "residual": y[test] - center, "var_param": np.var(expected, axis=0),
                                  "sigma": sigma, "nu": nu,
                                  "size": np.round(distance / LINK_DISTANCE_BIN).astype(int)}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def learn_link_term(residuals: pd.DataFrame, *, seed: int = 0) -> Extrapolation:
    """The grid posterior of the link term's scale from :func:`link_fold_residuals` (HalfNormal prior).

    The held-out error is modelled as ``Normal/Student-t(0, sqrt(noise^2 + var_param + (kappa * d)^2))``, as the
    loss law's term (:func:`bayes_scaling.extrapolation.fold_log_likelihood`), in absolute error.
    """
    from bayes_scaling.extrapolation import learn_halfnormal

    return learn_halfnormal(residuals, LINK_KAPPA_GRID, LINK_KAPPA_PRIOR_SD, seed=seed)


def load_downstream(path: str | Path) -> DownstreamFit | TaskFit:
    """Read a link fit written by :meth:`DownstreamFit.save` (or a task fit, :meth:`TaskFit.save`).

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, or neither a link nor a task fit (e.g. a loss fit).
    """
    from bayes_scaling.posterior import FitFileError, read_saved

    try:
        tree, meta = read_saved(path, _META_KEY, what="link fit", label="downstream link fit",
                                hint="; write one with `bayes-scaling fit-downstream --out`")
    except FitFileError as exc:
        if "not a downstream link fit" not in str(exc):
            raise
        try:
            return load_tasks(path)
        except FitFileError:
            raise exc from None
    try:
        result = DownstreamFit(link=LINKS[meta["link"]], metric=meta["metric"], chance=float(meta["chance"]),
                               items=meta["items"], data=pd.DataFrame(**meta["data"]), idata=tree,
                               info=meta.get("info", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise FitFileError(f"{path} holds damaged link metadata: {exc}") from None
    return result


def compare_links(fits: Mapping[str, DownstreamFit]) -> pd.DataFrame:
    """Rank link fits of the same metric on the same runs by PSIS-LOO (ArviZ), best first, with stacking weights."""
    import arviz as az

    if len(fits) < 2:
        raise ValueError("compare_links needs at least two fits")
    first = next(iter(fits.values()))
    for name, f in fits.items():
        if f.metric != first.metric or not f.data.equals(first.data):
            raise ValueError(f"fit {name!r} was made on other data; LOO compares fits of the same runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare({name: az.loo(f.idata, pointwise=True) for name, f in fits.items()},
                           method="stacking", round_to="none")
    out = table[["rank", "elpd", "se", "elpd_diff", "dse", "weight"]].astype(float)
    out.index.name = "form"
    return out


def _link_data(loss: np.ndarray, metric: np.ndarray, items: int | None) -> dict[str, np.ndarray]:
    """The values of a link model's data containers: the losses, and the metric (or wrong answers given items)."""
    return {"loss": loss, "metric_data": metric if items is None else np.rint(metric * items).astype("int64")}


def _build(link: Link, priors: Mapping[str, Prior], loss: np.ndarray, metric: np.ndarray, chance: float,
           reference: float, items: int | None) -> Any:
    """The PyMC model of a link (the losses and metric values are data containers, :func:`_link_data`)."""
    import pymc as pm
    import pytensor.tensor as pt

    values = _link_data(loss, metric, items)
    with pm.Model(coords={"run": np.arange(len(loss))}) as model:
        x = pm.Data("loss", values["loss"], dims="run")
        observed = pm.Data("metric_data", values["metric_data"], dims="run")
        params = {name: prior.create(name) for name, prior in priors.items()}
        mu = link.mean(pt, params, x, chance, reference)
        if items is None:
            sigma, nu = SIGMA_PRIOR.create("sigma"), NU_PRIOR.create("nu")
            pm.StudentT("metric", nu=nu, mu=mu, sigma=sigma, observed=observed, dims="run")
        else:
            pm.Binomial("metric", n=int(items), p=pt.clip(mu, 1e-6, 1 - 1e-6), observed=observed, dims="run")
    return model


def fit_downstream(
    data: pd.DataFrame,
    metric: str,
    *,
    form: str = "exponential",
    chance: float | str | None = None,
    items: int | None = None,
    extrapolation: bool = True,
    loss: str = "loss",
    sampling: Sampling | None = None,
    **options: Any,
) -> DownstreamFit:
    """Fit a link from ``data["loss"]`` (or another loss column) to the error ``data[metric]`` with NUTS.

    Parameters
    ----------
    data : DataFrame
        One row per evaluated model: ``loss`` (nats/token) and the metric (an error: 1 - accuracy, in [0, 1]).
    metric : str
        The metric column.
    form : {"exponential", "sigmoid"}
        The link (see the module docstring); the exponential form (default) extrapolates best on gadre2024.
    chance : float or str, optional
        The error of random guessing, or a column holding it (one value). Default: ``random_<metric>`` when
        present, else the largest observed error.
    items : int, optional
        Test items behind each value: binomial noise on the count of wrong answers (one task). Default:
        Student-t noise on the error (an average over tasks).
    extrapolation : bool
        Learn the link's extrapolation term by forward chaining in loss (default; see :func:`link_fold_residuals`):
        forecasts at losses below the fitted ones widen with the distance. ``False`` leaves it out.
    loss : str
        The column the link reads as its loss (default ``loss``, the general loss). A per-task loss (the loss or
        bits per byte of the correct answers, e.g. ``bpb_<task>``; Bhagia et al. 2024) makes the two-step chain
        (N, D) -> task loss -> error: fit the loss law to the same column
        (``fit(data.assign(loss=data["bpb_hellaswag"]))``) and :func:`chain` the two.
    sampling, **options
        Sampling options (:class:`~bayes_scaling.inference.Sampling`). A fit whose diagnostics fail is sampled
        once more with safer settings, like a loss fit (:func:`~bayes_scaling.inference.sample_with_retry`;
        ``info["escalated"]`` says so). A :class:`~bayes_scaling.inference.ConvergenceWarning` names every check
        that still fails.

    Returns
    -------
    DownstreamFit
    """
    if form not in LINKS:
        raise ValueError(f"unknown link form {form!r}; use one of {', '.join(LINKS)}")
    for column in (loss, metric):
        if column not in data.columns:
            raise ValueError(f"column {column!r} is not in the data; it has {', '.join(map(repr, data.columns))}")
    if loss == metric:
        raise ValueError(f"the loss column and the metric are the same column ({metric!r})")
    frame = data[[loss, metric]].astype(float).set_axis(["loss", metric], axis=1)
    bad = ~np.isfinite(frame.to_numpy()).all(axis=1)
    if bad.any():
        raise ValueError(f"rows {(np.flatnonzero(bad)[:5] + 1).tolist()} (counted from 1) have a missing or "
                         f"infinite loss or {metric}")
    y = frame[metric].to_numpy()
    if ((y < 0) | (y > 1)).any():
        rows = (np.flatnonzero((y < 0) | (y > 1))[:5] + 1).tolist()
        raise ValueError(f"{metric} must be an error in [0, 1] (1 - accuracy); rows {rows} (counted from 1) are "
                         "outside")
    if isinstance(chance, str):
        chance = float(data[chance].iloc[0])
    elif chance is None:
        column = f"random_{metric}"
        chance = float(data[column].iloc[0]) if column in data.columns else float(y.max())
    if not 0 < chance <= 1:
        raise ValueError(f"chance must be an error in (0, 1], got {chance}")
    if items is not None and (int(items) != items or items < 1):
        raise ValueError(f"items must be a positive integer, got {items!r}")
    config = Sampling.of(sampling, **options)
    link = LINKS[form]
    losses = frame["loss"].to_numpy()
    priors, reference = link.priors(losses, float(chance)), float(np.median(losses))
    model = _build(link, priors, losses, y, float(chance), reference, items)
    # the data are containers; the priors depend on the losses (the midpoint) and the chance error: in the key
    key = ("downstream", form, items, float(chance), reference, tuple(sorted((k, repr(v)) for k, v in priors.items())))
    names = [*priors, *(["sigma", "nu"] if items is None else [])]
    idata, escalated = sample_with_retry(model, config, names, cache_key=key)
    info = {k: v for k, v in config.to_dict().items() if k != "progress"}
    if escalated is not None:
        info.update(escalated=escalated, draws=escalated["draws"], tune=escalated["tune"],
                    target_accept=escalated["target_accept"])
    result = DownstreamFit(link=link, metric=metric, chance=float(chance), items=items,
                           data=frame.reset_index(drop=True), idata=idata, info=info)
    _attach_log_likelihood(result)
    warn_if_unconverged(result.diagnostics(), label=f"link fit of {metric!r}" + (
        " (after a retry with more tuning and target_accept=0.99)" if escalated is not None else ""))
    if extrapolation:
        term = learn_link_term(link_fold_residuals(result, seed=config.seed or 0), seed=config.seed or 0)
        result.info["extrapolation"] = term.to_dict()
    return result


def _attach_log_likelihood(result: DownstreamFit) -> None:
    """Pointwise log-likelihood (for LOO between link forms), computed in numpy."""
    import xarray as xr
    from scipy import stats

    draws = result.draws()
    loss = result.data["loss"].to_numpy()[None, :]
    y = result.data[result.metric].to_numpy()[None, :]
    mean = result.link.mean(np, {k: v[:, None] for k, v in draws.items()}, loss, result.chance, result.reference)
    if result.items is None:
        values = stats.t.logpdf(y, df=draws["nu"][:, None], loc=mean, scale=draws["sigma"][:, None])
    else:
        values = stats.binom.logpmf(np.rint(y * result.items), result.items, np.clip(mean, 1e-6, 1 - 1e-6))
    posterior = result.idata["posterior"]
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], y.shape[1])
    result.idata["log_likelihood"] = xr.DataTree(xr.Dataset(
        {"metric": (("chain", "draw", "run"), values.reshape(shape))},
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values, "run": np.arange(shape[2])}))


def chain(fit: Fit, link: DownstreamFit, *, N: Any, D: Any, prob: float | None = None,
          seed: int | None = 0) -> pd.DataFrame:
    """Forecast the metric of new runs at (N, D): the loss forecast carried through the link, draw by draw.

    Returns
    -------
    pandas.DataFrame
        Per point: ``N``, ``D``, the loss of a new run (``loss_median``, ``loss_pred_lower``, ``loss_pred_upper``:
        predictive; ``loss_lower``/``loss_upper`` before this release), and the
        metric (``median``, ``lower``/``upper``: its credible interval, the expected error of a model with that
        loss; ``pred_lower``/``pred_upper``: one evaluation of one such model), ``p_below_chance``: the
        posterior probability that the expected error is below chance, and ``loss_distance``: how far the
        forecast loss lies beyond the losses the link was fitted on (median, in widths of their range; a warning
        above :data:`LINK_FAR`).
    """
    from bayes_scaling.forecast import points_frame
    from bayes_scaling.predictive import predict

    prob = check_prob(prob)
    points = points_frame(N=N, D=D)
    rng = np.random.default_rng(seed)
    loss = predict(fit, points, seed=rng).loss("total")  # a new run's loss: parameters, scatter, extrapolation
    mean, pred = link.predict(loss, seed=rng)
    out = points[["N", "D"]].copy()
    out["loss_pred_lower"], out["loss_median"], out["loss_pred_upper"] = equal_tailed(loss, prob, median=True)
    out["lower"], out["median"], out["upper"] = equal_tailed(mean, prob, median=True)
    out["pred_lower"], out["pred_upper"] = equal_tailed(pred, prob)
    out["p_below_chance"] = (mean < link.chance).mean(axis=0)
    out["loss_distance"] = np.median(loss_distance(loss, link.data["loss"]), axis=0)
    far = out["loss_distance"] > LINK_FAR
    if far.any():
        warnings.warn(f"{int(far.sum())} forecast(s) lie {out['loss_distance'].max():.1f} widths of the link's "
                      f"range of losses beyond the losses it was fitted on (more than {LINK_FAR:g}): the link "
                      "was never tested there, so read the interval as a guess", UserWarning, stacklevel=2)
    return interval_table(out, prob, renamed={"loss_lower": "loss_pred_lower", "loss_upper": "loss_pred_upper"})


def link_curve(link: DownstreamFit, *, loss: Any = None, prob: float | None = None,
               seed: int | None = 0) -> pd.DataFrame:
    """The fitted link along a grid of losses (default: the runs' range, widened by 0.5 nats on the low side).

    Returns
    -------
    pandas.DataFrame
        ``loss``, ``median``, ``lower``/``upper`` (credible interval of the expected metric) and
        ``pred_lower``/``pred_upper`` (one evaluation), for :func:`bayes_scaling.plots.plot_downstream`.
    """
    prob = check_prob(prob)
    if loss is None:
        observed = link.data["loss"]
        loss = np.linspace(observed.min() - 0.5, observed.max(), 80)
    loss = np.asarray(loss, float)
    draws = len(next(iter(link.draws().values())))
    mean, pred = link.predict(np.broadcast_to(loss, (draws, len(loss))), seed=seed)
    out = pd.DataFrame({"loss": loss})
    out["lower"], out["median"], out["upper"] = equal_tailed(mean, prob, median=True)
    out["pred_lower"], out["pred_upper"] = equal_tailed(pred, prob)
    return interval_table(out, prob)


# --------------------------------------------------------------------------------------------- many tasks
_TASKS_KEY = "bayes_scaling_tasks"
#: The metadata keys of saved link and task fits (what :func:`bayes_scaling.load` recognises them by).
SAVED_KEYS = (_META_KEY, _TASKS_KEY)
#: Per-task parameters of the pooled sigmoid link (see :class:`TaskFit` for how they are sampled).
TASK_PARAMS = ("delta", "floor_frac", "midpoint", "width", "sigma")
#: Prior of a task's best error as a share of its expected error at the lowest loss of the data: Beta(1, 4), most
#: mass near no floor (as a single link's floor). Per task, not pooled: data that stop before a task saturates say
#: little about its floor, and pooling what the data do not identify made funnels (500 leapfrog steps a draw).
TASK_FLOOR_BETA = (1.0, 4.0)
#: Sampling of the forward-chaining refits of a task fit (:func:`task_fold_residuals`): short, the fit's target
#: acceptance; medians and variances of forecasts is all they give, so a diagonal mass matrix does: on the 46 tasks
#: of gadre2024_downstream (rpj), the three refits took 6.6 s against 17.9 s with the low-rank one, and the learned
#: term's scale 0.190 [0.168, 0.216] against 0.184 [0.162, 0.208] (seed 1).
TASK_FOLD_SAMPLING = Sampling(draws=150, tune=250, chains=2, target_accept=0.95, mass_matrix="diag")
#: Default sampling of a task fit (:func:`fit_tasks` without ``sampling``; the command line's pooled
#: ``fit-downstream`` without ``--draws``): 2,000 draws a chain, and the low-rank mass matrix updated every 50 tuning
#: draws instead of nutpie's 20 (kept with any ``sampling`` that does not set it). On the 46 tasks of
#: gadre2024_downstream (rpj below 1e9 parameters, 224 parameters, seeds 1-4) the updates took most of the
#: sampling time: 1,000 draws with updates every 20 sampled in 38 s at max R-hat 1.0099 and 1.034 (seeds 1, 2);
#: these defaults in 20-33 s at 1.0036-1.0089, bulk ESS 714-1,302, 0-5 divergences (README, "Beyond loss").
TASK_SAMPLING = Sampling(draws=2000, mass_matrix_update=50)
#: Smallest NUTS target acceptance of a task fit (its population spreads make funnels that smaller steps pass).
TASK_TARGET_ACCEPT = 0.95
#: t statistic of a task's error-on-loss slope above which the data are taken to trace its rise, and its log width
#: is sampled centred (:func:`_rising_tasks`). A choice of geometry only; on the 46 tasks of gadre2024_downstream's
#: three training sets (11-13 tasks rising) no chain was trapped in 9 fits (2 of 9 before), 33-38 leapfrog steps a
#: draw (37-50 before), the population width's bulk ESS 2,000 against 620 (README, "Beyond loss").
TASK_RISING_T = 8.0
#: Population-level parameters of the pooled link.
TASK_HYPER = ("tau_delta", "mu_progress", "tau_progress", "mu_logwidth", "tau_logwidth",
              "mu_logsigma", "tau_logsigma")


def _task_mean(xp: Any, p: Mapping[str, Any], loss: Any, chance: Any) -> Any:
    """Expected error of each task at ``loss``: the plateau ``chance + delta`` falling to ``chance * floor_frac``."""
    top = chance + p["delta"]
    return top - (top - chance * p["floor_frac"]) / (1.0 + xp.exp(-(p["midpoint"] - loss) / p["width"]))


@dataclass
class TaskFit:
    """Links from loss to the error of many tasks at once, with task-level partial pooling.

    Each task ``t`` follows ``Err_t(L) = top_t - (top_t - floor_t) sigmoid((m_t - L) / w_t)``: a plateau
    ``top_t = chance_t + delta_t`` where small models sit (near chance; ``delta_t`` lets a task sit a little above
    or below it), a best error ``floor_t = chance_t * floor_frac_t`` (below the task's error at the lowest loss of
    the data: a task flat in the data is one whose rise lies beyond it) and a rise centred on the loss
    ``m_t`` with width ``w_t``. It is sampled in what the data measure: each task's *progress* at the lowest loss
    of the data ``L_min`` (the share of its plateau it has fallen there, ``r_t``; its logit pooled across tasks,
    centred, since tasks far from rising are bounded by the data on one side only), its best error as a share of
    its error there (``floor = b_t Err_t(L_min)``, ``b_t ~ Beta(1, 4)`` per task, :data:`TASK_FLOOR_BETA`: most data
    stop before a task saturates), and ``log w_t``, ``delta_t``, ``log sigma_t`` drawn around population means
    with learned spreads, so a task that has not left chance in the data borrows its shape from the others; the
    midpoint follows, ``m_t = L_min + w_t logit(top_t r_t / (top_t - floor_t))``. Pooling the midpoints and floors
    instead (a task that has not risen has its midpoint outside the data, on a curved ridge with its floor) took
    over 500 leapfrog steps a draw on the 46 tasks of a gadre2024_downstream training set, against about 45 now.
    A task whose chance error is 1 (exact-match generation: nothing right by guessing) has its plateau at 1
    (``delta = 0``). Noise: a task's error on one model is normal with variance ``p (1 - p) / items`` (the
    binomial noise of its test items) plus ``sigma_t**2`` (model-to-model noise beyond that: the variance of a
    beta-binomial, in a form that samples well) plus ``(0.5 / items)**2`` (a count resolves no finer than one
    item).

    Attributes
    ----------
    metrics : list of str
        The task columns (errors in [0, 1]).
    chance, items : numpy.ndarray
        Per task: the error of random guessing and the number of test items.
    data : pandas.DataFrame
        The runs fitted: ``loss`` and the task columns.
    idata : xarray.DataTree
        The posterior.
    info : dict
        Sampling options.
    """

    metrics: list[str]
    chance: np.ndarray
    items: np.ndarray
    data: pd.DataFrame
    idata: Any
    info: dict[str, Any] = field(default_factory=dict)

    def draws(self) -> dict[str, np.ndarray]:
        """Posterior draws of the per-task parameters, each of shape (draws, tasks)."""
        posterior = self.idata["posterior"]
        return {name: np.asarray(posterior[name].values, float).reshape(-1, len(self.metrics))
                for name in TASK_PARAMS}

    def diagnostics(self) -> Diagnostics:
        """R-hat, bulk ESS and divergences of the per-task and population parameters."""
        return diagnose(self.idata, [*TASK_PARAMS, *TASK_HYPER])

    def _pick(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        from bayes_scaling.predictive import pair_draws

        return {k: v[:, None, :] for k, v in pair_draws(self.draws(), n, rng).items()}

    def _expected(self, loss: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(over="ignore"):  # exp overflows far from the midpoint: the sigmoid is then 0, as it should
            return np.clip(_task_mean(np, params, loss[:, :, None], self.chance), 0.0, 1.0)

    def predict(self, loss: np.ndarray, *, seed: int | np.random.Generator | None = 0) -> tuple[np.ndarray, np.ndarray]:
        """(expected error, error of one more evaluation) per task, each (draws, points, tasks).

        Beyond the losses the tasks were fitted on, the extrapolation term (:func:`task_fold_residuals`, one scale
        for all tasks) adds ``kappa * d * z`` to each task's expected error, which then stays between the task's
        floor and its plateau.
        """
        rng = np.random.default_rng(seed)
        loss = np.atleast_2d(np.asarray(loss, float))
        params = self._pick(rng, loss.shape[0])
        mean = self._expected(loss, params)
        term = link_term(self)
        if term is not None:
            _, kappa = term.joint_draws(loss.shape[0], rng)
            d = loss_distance(loss, self.data["loss"])[:, :, None]
            top = self.chance + params["delta"]
            floor = self.chance * params["floor_frac"]
            mean = np.clip(mean + kappa[:, None, None] * d * rng.standard_normal(mean.shape), floor, top)
        scale = _task_noise(np, mean, params["sigma"], self.items)
        return mean, np.clip(mean + scale * rng.standard_normal(mean.shape), 0.0, 1.0)

    @property
    def term(self) -> Extrapolation | None:
        """The tasks' extrapolation term (learned by forward chaining in loss), or None (fitted without it)."""
        return link_term(self)

    def leave_loss(self, margin: float = 0.02) -> np.ndarray:
        """Per draw and task, the loss below which the expected error is at least ``margin`` under chance.

        ``+inf`` where the task is that far under chance at any loss (its plateau is), ``-inf`` where it never
        gets there (its best error is not, or only at a loss of 0 or less). Shape (draws, tasks).
        """
        p = self.draws()
        top, floor = self.chance + p["delta"], self.chance * p["floor_frac"]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = (top - self.chance + margin) / (top - floor)
            z = np.log(q / (1 - q))
            out = p["midpoint"] - p["width"] * z
        out = np.where(q <= 0, np.inf, out)
        # never: the best error is not that far under chance, or only at a loss no model has (<= 0)
        return np.where((q >= 1) | (top <= floor) | (out <= 0), -np.inf, out)

    def to_dict(self, prob: float | None = None) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling fit-downstream --json`` with several tasks)."""
        from bayes_scaling.outputs import table_records

        return {"tasks": self.metrics, "runs": len(self.data), "params": table_records(self.summary(prob)),
                "diagnostics": self.diagnostics().to_dict()}

    def summary(self, prob: float | None = None, margin: float = 0.02) -> pd.DataFrame:
        """Per task: chance, items, the plateau and best error, the midpoint loss, sigma, and the leave loss.

        Medians with ``lower``/``upper`` bounds of the equal-tailed ``prob`` interval for the best error
        (``floor``) and for the loss where the task leaves chance by ``margin`` (``leave_loss``; ``inf``: above
        chance at any loss, ``-inf``: never), and ``p_leaves`` (the posterior probability that it ever does).
        """
        prob = check_prob(prob)
        p = self.draws()
        floor = self.chance * p["floor_frac"]
        leave = self.leave_loss(margin)
        out = pd.DataFrame({"metric": self.metrics, "chance": self.chance, "items": self.items,
                            "plateau": np.median(self.chance + p["delta"], axis=0)})
        out["floor_lower"], out["floor"], out["floor_upper"] = equal_tailed(floor, prob, median=True)
        out["midpoint"] = np.median(p["midpoint"], axis=0)
        out["width"] = np.median(p["width"], axis=0)
        out["sigma"] = np.median(p["sigma"], axis=0)
        out["leave_loss_lower"], out["leave_loss"], out["leave_loss_upper"] = equal_tailed(
            leave, prob, median=True, method="inverted_cdf")
        out["p_leaves"] = (leave > -np.inf).mean(axis=0)
        return interval_table(out.set_index("metric"), prob)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the task fit to a netCDF file (refuses to replace one unless ``overwrite``; atomic)."""
        from bayes_scaling.posterior import write_saved

        meta = {"metrics": self.metrics, "chance": self.chance.tolist(), "items": self.items.tolist(),
                "data": json.loads(self.data.to_json(orient="split", index=False, double_precision=15)),
                "info": self.info}
        return write_saved(path, self.idata, _TASKS_KEY, meta, overwrite=overwrite)


def load_tasks(path: str | Path) -> TaskFit:
    """Read a task fit written by :meth:`TaskFit.save` (a :class:`FitFileError` for anything else)."""
    from bayes_scaling.posterior import FitFileError, read_saved

    tree, meta = read_saved(path, _TASKS_KEY, what="task fit", label="downstream task fit",
                            hint="; write one with `bayes-scaling fit-downstream --metric A,B,.. --out`")
    try:
        return TaskFit(metrics=list(meta["metrics"]), chance=np.asarray(meta["chance"], float),
                       items=np.asarray(meta["items"], float), data=pd.DataFrame(**meta["data"]), idata=tree,
                       info=meta.get("info", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise FitFileError(f"{path} holds damaged task-fit metadata: {exc}") from None


def _per_task(data: pd.DataFrame, metrics: list[str], given: Any, prefix: str, what: str) -> np.ndarray:
    """A per-task constant: a number for all, a mapping by column, or (None) the ``<prefix><metric>`` columns."""
    if given is None:
        missing = [m for m in metrics if f"{prefix}{m}" not in data.columns]
        if missing:
            raise ValueError(f"no {what} for {', '.join(missing[:5])}: pass {what}= (a number or a mapping by "
                             f"column) or add the columns {prefix}<metric>")
        return np.array([float(data[f"{prefix}{m}"].iloc[0]) for m in metrics])
    if isinstance(given, Mapping):
        missing = [m for m in metrics if m not in given]
        if missing:
            raise ValueError(f"{what}= has no value for {', '.join(missing[:5])}")
        return np.array([float(given[m]) for m in metrics])
    return np.full(len(metrics), float(given))


def fit_tasks(
    data: pd.DataFrame,
    metrics: list[str],
    *,
    chance: float | Mapping[str, float] | None = None,
    items: int | Mapping[str, int] | None = None,
    extrapolation: bool = True,
    loss: str = "loss",
    sampling: Sampling | None = None,
    **options: Any,
) -> TaskFit:
    """Fit the links from ``data["loss"]`` to many task errors at once, with task-level partial pooling.

    Parameters
    ----------
    data : DataFrame
        One row per evaluated model: ``loss`` (nats/token) and one error column (1 - accuracy) per task.
    metrics : list of str
        The task columns (at least two).
    chance, items : number or mapping, optional
        Per task, the error of random guessing and the number of test items: one number for all, a mapping by
        column, or (default) the columns ``random_<metric>`` and ``items_<metric>`` (gadre2024_downstream has
        both).
    extrapolation : bool
        Learn the links' extrapolation term by forward chaining in loss (default; :func:`task_fold_residuals`),
        one scale for all tasks, kept in ``info["extrapolation"]`` and added by :meth:`TaskFit.predict`.
    loss : str
        The column the links read as their loss (default ``loss``; see :func:`fit_downstream`).
    sampling, **options
        Sampling options (:class:`~bayes_scaling.inference.Sampling`); ``target_accept`` is raised to at least
        :data:`TASK_TARGET_ACCEPT`, and ``mass_matrix_update`` defaults to :data:`TASK_SAMPLING`'s; without
        ``sampling``, :data:`TASK_SAMPLING` (2,000 draws a chain). 46 tasks x 32 models take 30-45 s on 2 cores
        with the defaults (compiling included; the extrapolation term's refits 6-7 s more, with a diagonal mass
        matrix). A chain caught in a
        trap while tuning (:func:`~bayes_scaling.inference.stuck_chains`: its log density far below the other
        chains') makes the fit sample once more from the next seed
        (:func:`~bayes_scaling.inference.sample_unstuck`; recorded in ``info["restart"]``); other failed
        diagnostics only warn.

    Returns
    -------
    TaskFit
        A :class:`~bayes_scaling.inference.ConvergenceWarning` names every failed check when its diagnostics fail.
        See :func:`task_table` for the probability of being above chance at (N, D) and the loss at which each
        task leaves chance.
    """
    metrics = list(dict.fromkeys(metrics))
    if len(metrics) < 2:
        raise ValueError("fit_tasks pools two or more task columns; use fit_downstream for one")
    for column in (loss, *metrics):
        if column not in data.columns:
            raise ValueError(f"column {column!r} is not in the data")
    if loss in metrics:
        raise ValueError(f"the loss column {loss!r} is also one of the metrics")
    frame = data[[loss, *metrics]].astype(float).set_axis(["loss", *metrics], axis=1)
    bad = ~np.isfinite(frame.to_numpy())
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"row {row + 1} (counted from 1) has a missing or infinite {frame.columns[col]} "
                         f"({bad.sum()} such cells)")
    y = frame[metrics].to_numpy()
    outside = (y < 0) | (y > 1)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise ValueError(f"{metrics[col]} must be an error in [0, 1] (1 - accuracy); row {row + 1} (counted from 1) "
                         f"holds {y[row, col]}")
    chance_ = _per_task(data, metrics, chance, "random_", "chance")
    items_ = _per_task(data, metrics, items, "items_", "items")
    if not ((chance_ > 0) & (chance_ <= 1)).all():
        raise ValueError(f"chance must be an error in (0, 1] for every task, got {chance_.tolist()}")
    if not ((items_ >= 1) & (items_ == np.round(items_))).all():
        raise ValueError(f"items must be positive integers for every task, got {items_.tolist()}")
    losses = frame["loss"].to_numpy()
    config = Sampling.of(sampling if sampling is not None else TASK_SAMPLING, **options)
    config = Sampling.of(config, target_accept=max(config.target_accept, TASK_TARGET_ACCEPT),
                         mass_matrix_update=config.mass_matrix_update or TASK_SAMPLING.mass_matrix_update)

    rising = _rising_tasks(losses, y, items_)
    model = _task_model(metrics, losses, y, chance_, items_, rising)
    idata, restart = sample_unstuck(model, config, cache_key=_task_key(metrics, chance_, items_, rising))
    info = {k: v for k, v in config.to_dict().items() if k != "progress"}
    if restart:  # a chain was caught in a trap while tuning: this is the next seed's posterior
        info["restart"] = restart
    result = TaskFit(metrics=metrics, chance=chance_, items=items_, data=frame.reset_index(drop=True), idata=idata,
                     info=info)
    warn_if_unconverged(result.diagnostics(), label=f"pooled fit of {len(metrics)} task links")
    if extrapolation:
        residuals = task_fold_residuals(result, seed=config.seed or 0)
        result.info["extrapolation"] = learn_link_term(residuals, seed=config.seed or 0).to_dict()
    return result


def task_fold_residuals(tasks: TaskFit, *, seed: int = 0) -> pd.DataFrame:
    """Forward-chaining residuals of a task fit in loss: refit on the higher-loss models, forecast the others.

    As :func:`link_fold_residuals` for one link, with every task at once: for each cut at the
    :data:`LINK_FOLD_QUANTILES` of the training losses, the pooled model (same priors and noise) is refitted to the
    models above the cut and each task is scored on the models below. The refits are short NUTS runs
    (:data:`TASK_FOLD_SAMPLING`) of the compiled model of the fit itself, pointed at each fold's data: the Laplace
    approximation finds no Gaussian mode for a pooled model this size. Held-out models of one task within
    :data:`LINK_DISTANCE_BIN` of each other in a fold count once (``size``: task and bin).
    """
    loss = tasks.data["loss"].to_numpy()
    y = tasks.data[tasks.metrics].to_numpy()
    count = len(tasks.metrics)
    rising = _rising_tasks(loss, y, tasks.items)  # the fit's own parameterisation: one compiled model for all folds
    rows = []
    for fold, train, test in _loss_folds(loss):
        config = Sampling.of(TASK_FOLD_SAMPLING, seed=seed + fold)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = sample(_task_model(tasks.metrics, loss[train], y[train], tasks.chance, tasks.items, rising),
                               config, cache_key=_task_key(tasks.metrics, tasks.chance, tasks.items, rising))
        except (RuntimeError, ValueError):
            continue  # this fold's refit failed: it contributes nothing
        posterior = idata["posterior"]
        params = {n: np.asarray(posterior[n].values, float).reshape(-1, 1, count) for n in TASK_PARAMS}
        with np.errstate(over="ignore"):
            expected = np.clip(_task_mean(np, params, loss[test][None, :, None], tasks.chance), 0.0, 1.0)
        center = np.median(expected, axis=0)
        sigma = np.median(params["sigma"], axis=0)
        noise = _task_noise(np, center, sigma, tasks.items)
        distance = loss_distance(loss[test], loss[train])
        bins = np.round(distance / LINK_DISTANCE_BIN).astype(int)
        for t, metric in enumerate(tasks.metrics):
            rows.append(pd.DataFrame({"fold": fold, "task": metric, "loss": loss[test], "distance": distance,
                                      "residual": y[test, t] - center[:, t],
                                      "var_param": np.var(expected[:, :, t], axis=0), "sigma": noise[:, t],
                                      "nu": math.inf, "size": [f"{t}/{b}" for b in bins]}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _task_noise(xp: Any, mean: Any, sigma: Any, items: Any) -> Any:
    """The sd of a task's error on one model around its expected ``mean`` (numpy or PyTensor ``xp``).

    The binomial variance of its ``items``, the task's own model-to-model noise ``sigma``, and the resolution of
    one item.
    """
    return xp.sqrt(mean * (1 - mean) / items + sigma**2 + 0.25 / items**2)


def _task_key(metrics: list[str], chance: np.ndarray, items: np.ndarray, rising: np.ndarray) -> tuple:
    """What fixes the structure of a task model (its compiled form is reused for other data of that structure)."""
    return ("tasks", len(metrics), tuple(np.asarray(chance).tolist()),
            tuple(np.asarray(items).tolist()), tuple(np.asarray(rising, bool).tolist()))


def _rising_tasks(losses: np.ndarray, y: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Which tasks' errors change with the loss far beyond their noise in the data (one flag per task).

    The t statistic of a least-squares slope of each task's error on the loss, against the binomial noise of its
    test items at the task's mean error (and 0.01 of model-to-model noise): above :data:`TASK_RISING_T`, the data
    trace the task's rise and measure its width. This only chooses how the width is sampled
    (:func:`_task_model`): the posterior is the same either way.
    """
    x = losses - losses.mean()
    spread = float(x @ x)
    if spread <= 0:
        return np.zeros(y.shape[1], bool)
    mean = y.mean(axis=0)
    slope = x @ (y - mean) / spread
    noise = np.sqrt(np.clip(mean * (1 - mean), 0.01, None) / items + 0.01**2)
    return np.abs(slope) * math.sqrt(spread) / noise > TASK_RISING_T


def _task_model(metrics: list[str], losses: np.ndarray, y: np.ndarray, chance_: np.ndarray,
                items_: np.ndarray, rising: np.ndarray) -> Any:
    """The PyMC model of :class:`TaskFit` (the losses and errors are data containers, ``loss`` and ``metric_data``).

    ``rising`` (one flag per task, :func:`_rising_tasks`) chooses how each task's log width is sampled, not what
    the model is: centred (``log w_t ~ Normal(mu, tau)``) where the data measure the width, non-centred
    (``log w_t = mu + tau z_t``) where they do not.
    """
    import pymc as pm
    import pytensor.tensor as pt

    def normal(name: str, dims: str = "task") -> Any:
        return pm.Normal(name, 0.0, 1.0, dims=dims)

    with pm.Model(coords={"task": metrics, "run": np.arange(len(losses))}) as model:
        x = pm.Data("loss", losses, dims="run")
        observed = pm.Data("metric_data", y, dims=("run", "task"))
        tau_delta = pm.HalfNormal("tau_delta", 0.1)
        # a task scored from 100% error (chance 1, e.g. exact-match generation): a model that has not learned it
        # gets nothing right, so its plateau is 1
        others = np.flatnonzero(chance_ < 1)
        offsets = pt.zeros(len(metrics))
        if len(others):
            offsets = pt.set_subtensor(offsets[others], pm.Normal("z_delta", 0.0, 1.0, shape=len(others)))
        mu_w, tau_w = pm.Normal("mu_logwidth", math.log(0.5), 0.75), pm.HalfNormal("tau_logwidth", 0.5)
        mu_r, tau_r = pm.Normal("mu_progress", -2.0, 2.0), pm.HalfNormal("tau_progress", 2.0)
        mu_s, tau_s = pm.Normal("mu_logsigma", math.log(0.01), 1.0), pm.HalfNormal("tau_logsigma", 0.5)
        log_w = pt.zeros(len(metrics))
        centred, uncentred = np.flatnonzero(rising), np.flatnonzero(~rising)
        if len(centred):
            log_w = pt.set_subtensor(log_w[centred], pm.Normal("logwidth_rising", mu_w, tau_w, shape=len(centred)))
        if len(uncentred):
            log_w = pt.set_subtensor(log_w[uncentred],
                                     mu_w + tau_w * pm.Normal("z_width", 0.0, 1.0, shape=len(uncentred)))
        width = pm.Deterministic("width", pt.exp(log_w), dims="task")
        top = chance_ + tau_delta * offsets
        # what the data measure: each task's progress at the lowest loss of the data, the share of its plateau it
        # has fallen there (logit pooled across tasks, centred: tasks far from rising are bounded on one side
        # only), and its best error as a share of the error there (Beta, per task)
        logit_progress = pm.Normal("logit_progress", mu_r, tau_r, dims="task")
        share = pm.Beta("floor_share", *TASK_FLOOR_BETA, dims="task")
        at_edge = top * pt.sigmoid(-logit_progress)
        floor = share * at_edge
        stage = (pt.log(top) + pt.log(pt.sigmoid(logit_progress)) - pt.log(at_edge) - pt.log1p(-share))
        params = {
            "delta": pm.Deterministic("delta", tau_delta * offsets, dims="task"),
            "floor_frac": pm.Deterministic("floor_frac", floor / chance_, dims="task"),
            "midpoint": pm.Deterministic("midpoint", pt.min(x) + width * stage, dims="task"),
            "width": width,
        }
        sigma = pm.Deterministic("sigma", pt.exp(mu_s + tau_s * normal("z_sigma")), dims="task")
        mean = pt.clip(_task_mean(pt, params, x[:, None], chance_), 1e-4, 1 - 1e-4)
        pm.Normal("metric", mu=mean, sigma=_task_noise(pt, mean, sigma, items_),
                  observed=observed, dims=("run", "task"))
    return model


def task_table(tasks: TaskFit, *, fit: Fit | None = None, N: Any = None, D: Any = None, loss: Any = None,
               margin: float = 0.02, prob: float | None = None, seed: int | None = 0) -> pd.DataFrame:
    """Per task and point: the forecast error, the probability of being above chance, and the leave loss.

    Give either a loss fit with ``N`` and ``D`` (the loss forecast of a new run is carried through each task's
    link draw by draw) or ``loss`` values (known losses).

    Parameters
    ----------
    margin : float
        How far under the chance error counts as above chance (absolute error; 0.02 = 2 points of accuracy).

    Returns
    -------
    pandas.DataFrame
        One row per point and task: ``N``, ``D`` (or ``loss``), ``metric``, ``chance``, the expected error
        (``median``, ``lower``/``upper``), one evaluation's error (``pred_lower``/``pred_upper``),
        ``p_above_chance`` (posterior probability that the expected error is ``margin`` or more under chance),
        the loss at which the task leaves chance (``leave_loss`` with ``leave_loss_lower``/``_upper``), and
        ``loss_distance``: how far the point's loss lies beyond the losses the tasks were fitted on (median, in
        widths of their range; a warning above :data:`LINK_FAR`).
    """
    prob = check_prob(prob)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    rng = np.random.default_rng(seed)
    if fit is not None:
        from bayes_scaling.forecast import points_frame
        from bayes_scaling.predictive import predict

        if N is None or D is None or loss is not None:
            raise ValueError("with a loss fit, give N and D (and no loss)")
        points = points_frame(N=N, D=D)[["N", "D"]]
        draws = predict(fit, points, seed=rng).loss("total")
    else:
        if loss is None:
            raise ValueError("give a loss fit with N and D, or loss values")
        points = pd.DataFrame({"loss": np.atleast_1d(np.asarray(loss, float))})
        draws = np.broadcast_to(points["loss"].to_numpy(), (4000, len(points)))
    mean, pred = tasks.predict(draws, seed=rng)
    distance = np.median(loss_distance(draws, tasks.data["loss"]), axis=0)
    if (distance > LINK_FAR).any():
        warnings.warn(f"{int((distance > LINK_FAR).sum())} point(s) lie {distance.max():.1f} widths of the tasks' "
                      f"range of losses beyond the losses they were fitted on (more than {LINK_FAR:g}): the links "
                      "were never tested there, so read the intervals as a guess", UserWarning, stacklevel=2)
    lower, median, upper = equal_tailed(mean, prob, median=True)
    pred_lower, pred_upper = equal_tailed(pred, prob)
    above = (mean <= tasks.chance - margin).mean(axis=0)
    leave = tasks.summary(prob, margin)
    rows = []
    for i in range(len(points)):
        block = pd.DataFrame({"metric": tasks.metrics, "chance": tasks.chance, "median": median[i],
                              "lower": lower[i], "upper": upper[i], "pred_lower": pred_lower[i],
                              "pred_upper": pred_upper[i], "p_above_chance": above[i],
                              "leave_loss": leave["leave_loss"].to_numpy(),
                              "leave_loss_lower": leave["leave_loss_lower"].to_numpy(),
                              "leave_loss_upper": leave["leave_loss_upper"].to_numpy(),
                              "loss_distance": distance[i]})
        for column in reversed(points.columns):
            block.insert(0, column, points[column].iloc[i])
        rows.append(block)
    return interval_table(pd.concat(rows, ignore_index=True), prob)
