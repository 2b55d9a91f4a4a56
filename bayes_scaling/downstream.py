"""Beyond loss: a downstream metric (benchmark error) as a function of the loss, fitted with PyMC.

Teams plan on benchmark scores, not on cross-entropy. The second stage of a two-step forecast (compute → loss →
error) maps a model's loss ``L`` to its error on a benchmark, where small models sit at chance and better models
leave it. Two link forms, each a small object like a scaling law:

* ``"exponential"`` (Gadre et al. 2024): ``Err(L) = eps - k * exp(-gamma * L)``, free asymptote ``eps``, sampled as
  ``eps - exp(log_gap - gamma * (L - L_ref))`` with ``L_ref`` the median training loss (``log_gap`` is the log of
  the distance below ``eps`` there; ``k = exp(log_gap + gamma L_ref)``), which keeps ``k`` and ``gamma`` apart;
* ``"sigmoid"``: ``Err(L) = c - (c - floor) * sigmoid((L0 - L) / s)``, with the chance error ``c`` as the ceiling
  of the error (a model at chance) and a learned best error ``floor`` in (0, c).

The noise is a Student-t on the error (robust; the default when the number of test items is unknown, e.g. for an
average over tasks) or, given the number of items of a single task, binomial on the count of wrong answers.

:func:`chain` carries a loss forecast through the link draw by draw: the metric's interval then holds both stages
(the loss fit's parameters, run scatter and extrapolation term, and the link's parameters and noise).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_scaling.inference import Diagnostics, Sampling, diagnose, sample
from bayes_scaling.priors import Prior

if TYPE_CHECKING:
    from bayes_scaling.posterior import Fit

__all__ = ["LINKS", "DownstreamFit", "Link", "chain", "compare_links", "fit_downstream", "link_curve",
           "load_downstream"]

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


def _exponential_mean(xp: Any, p: Mapping[str, Any], loss: Any, chance: float, reference: float) -> Any:
    return p["eps"] - xp.exp(p["log_gap"] - p["gamma"] * (loss - reference))


def _exponential_priors(loss: np.ndarray, chance: float) -> dict[str, Prior]:
    # the distance below eps at the median training loss: median 0.05, 95% 0.003-0.9
    return {"eps": Prior("Normal", mu=chance, sigma=0.1), "log_gap": Prior("Normal", mu=math.log(0.05), sigma=1.5),
            "gamma": Prior("LogNormal", mu=0.0, sigma=0.75)}


def _sigmoid_mean(xp: Any, p: Mapping[str, Any], loss: Any, chance: float, reference: float) -> Any:
    floor = chance * p["floor_frac"]
    z = (p["midpoint"] - loss) / p["width"]
    return chance - (chance - floor) / (1.0 + xp.exp(-z))


def _sigmoid_priors(loss: np.ndarray, chance: float) -> dict[str, Prior]:
    return {"floor_frac": Prior("Beta", alpha=2.0, beta=2.0),
            "midpoint": Prior("Normal", mu=float(np.median(loss)), sigma=1.5),
            "width": Prior("LogNormal", mu=math.log(0.5), sigma=0.75)}


#: The link forms by name.
LINKS: dict[str, Link] = {
    "exponential": Link("exponential", "Err = eps - k exp(-gamma L)", _exponential_mean, _exponential_priors),
    "sigmoid": Link("sigmoid", "Err = c - (c - floor) sigmoid((L0 - L) / s)", _sigmoid_mean, _sigmoid_priors),
}
#: Prior of the Student-t noise scale on the error (absolute, fraction of items).
SIGMA_PRIOR = Prior("HalfNormal", sigma=0.05)
#: Prior of the Student-t degrees of freedom.
NU_PRIOR = Prior("Gamma", alpha=2.0, beta=0.1)


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

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Posterior median and equal-tailed interval of each parameter, with R-hat and bulk ESS."""
        import arviz as az

        tails = [(1 - prob) / 2, (1 + prob) / 2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az.summary(self.idata, var_names=self.param_names, round_to="none")
        rows = {}
        for name, values in self.draws().items():
            low, high = np.quantile(values, tails)
            rows[name] = {"median": float(np.median(values)), "lower": float(low), "upper": float(high),
                          "r_hat": float(table.loc[name, "r_hat"]), "ess_bulk": float(table.loc[name, "ess_bulk"])}
        out = pd.DataFrame(rows).T
        out.index.name = "parameter"
        return out

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the link fit to a netCDF file (refuses to replace one unless ``overwrite``; atomic)."""
        from bayes_scaling.posterior import write_saved

        meta = {"link": self.link.name, "metric": self.metric, "chance": self.chance, "items": self.items,
                "data": json.loads(self.data.to_json(orient="split", index=False, double_precision=15)),
                "info": self.info}
        return write_saved(path, self.idata, _META_KEY, meta, overwrite=overwrite)

    def predict(self, loss: np.ndarray, *, seed: int | np.random.Generator | None = 0,
                items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(expected metric, metric of one more evaluation) for draws of the loss, shape (draws, points).

        Each row of ``loss`` (a draw of the loss at every point) is paired with one posterior draw of the link
        (resampled to as many draws). The new evaluation's noise is binomial over ``items`` (default: the fit's)
        or the fitted Student-t, clipped to [0, 1].
        """
        rng = np.random.default_rng(seed)
        loss = np.atleast_2d(np.asarray(loss, float))
        draws = self.draws()
        total = len(next(iter(draws.values())))
        pick = rng.choice(total, size=loss.shape[0], replace=loss.shape[0] > total)
        params = {k: v[pick][:, None] for k, v in draws.items()}
        mean = np.clip(self.link.mean(np, params, loss, self.chance, self.reference), 0.0, 1.0)
        n = items if items is not None else self.items
        if n is not None:
            pred = rng.binomial(int(n), mean) / int(n)
        else:
            pred = np.clip(mean + params["sigma"] * rng.standard_t(np.broadcast_to(params["nu"], mean.shape)),
                           0.0, 1.0)
        return mean, pred


def load_downstream(path: str | Path) -> DownstreamFit:
    """Read a link fit written by :meth:`DownstreamFit.save`.

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, or not a downstream link fit (e.g. a loss fit).
    """
    from bayes_scaling.posterior import FitFileError, read_saved

    tree, meta = read_saved(path, _META_KEY, what="link fit", label="downstream link fit",
                            hint="; write one with `bayes-scaling fit-downstream --out`")
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


def _build(link: Link, priors: Mapping[str, Prior], loss: np.ndarray, metric: np.ndarray, chance: float,
           reference: float, items: int | None) -> Any:
    """The PyMC model of a link (the losses and metric values are data containers)."""
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model(coords={"run": np.arange(len(loss))}) as model:
        x = pm.Data("loss", loss, dims="run")
        params = {name: prior.create(name) for name, prior in priors.items()}
        mu = link.mean(pt, params, x, chance, reference)
        if items is None:
            sigma, nu = SIGMA_PRIOR.create("sigma"), NU_PRIOR.create("nu")
            observed = pm.Data("metric_data", metric, dims="run")
            pm.StudentT("metric", nu=nu, mu=mu, sigma=sigma, observed=observed, dims="run")
        else:
            observed = pm.Data("metric_data", np.rint(metric * items).astype("int64"), dims="run")
            pm.Binomial("metric", n=int(items), p=pt.clip(mu, 1e-6, 1 - 1e-6), observed=observed, dims="run")
    return model


def fit_downstream(
    data: pd.DataFrame,
    metric: str,
    *,
    form: str = "exponential",
    chance: float | str | None = None,
    items: int | None = None,
    sampling: Sampling | None = None,
    **options: Any,
) -> DownstreamFit:
    """Fit a link from ``data["loss"]`` to the error ``data[metric]`` with NUTS.

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
    sampling, **options
        Sampling options (:class:`~bayes_scaling.inference.Sampling`).

    Returns
    -------
    DownstreamFit
    """
    if form not in LINKS:
        raise ValueError(f"unknown link form {form!r}; use one of {', '.join(LINKS)}")
    for column in ("loss", metric):
        if column not in data.columns:
            raise ValueError(f"column {column!r} is not in the data; it has {', '.join(map(repr, data.columns))}")
    frame = data[["loss", metric]].astype(float)
    bad = ~np.isfinite(frame.to_numpy()).all(axis=1)
    if bad.any():
        raise ValueError(f"rows {np.flatnonzero(bad)[:5].tolist()} have a missing or infinite loss or {metric}")
    y = frame[metric].to_numpy()
    if ((y < 0) | (y > 1)).any():
        rows = np.flatnonzero((y < 0) | (y > 1))[:5].tolist()
        raise ValueError(f"{metric} must be an error in [0, 1] (1 - accuracy); rows {rows} are outside")
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
    idata = sample(model, config, cache_key=key)
    result = DownstreamFit(link=link, metric=metric, chance=float(chance), items=items,
                           data=frame.reset_index(drop=True), idata=idata,
                           info={k: v for k, v in config.to_dict().items() if k != "progress"})
    _attach_log_likelihood(result)
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


def chain(fit: Fit, link: DownstreamFit, *, N: Any, D: Any, prob: float = 0.9,
          seed: int | None = 0) -> pd.DataFrame:
    """Forecast the metric of new runs at (N, D): the loss forecast carried through the link, draw by draw.

    Returns
    -------
    pandas.DataFrame
        Per point: ``N``, ``D``, the loss (``loss_median``, ``loss_lower``, ``loss_upper``: predictive), and the
        metric (``median``, ``lower``/``upper``: its credible interval, the expected error of a model with that
        loss; ``pred_lower``/``pred_upper``: one evaluation of one such model), and ``p_below_chance``: the
        posterior probability that the expected error is below chance.
    """
    from bayes_scaling.forecast import loss_draws, points_frame

    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob}")
    points = points_frame(N=N, D=D)
    rng = np.random.default_rng(seed)
    loss = loss_draws(fit, points, seed=rng)["pred"]  # a new run's loss: parameters, scatter, extrapolation
    mean, pred = link.predict(loss, seed=rng)
    tails = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
    out = points[["N", "D"]].copy()
    out["loss_lower"], out["loss_median"], out["loss_upper"] = np.quantile(loss, tails, axis=0)
    out["lower"], out["median"], out["upper"] = np.quantile(mean, tails, axis=0)
    out["pred_lower"], _, out["pred_upper"] = np.quantile(pred, tails, axis=0)
    out["p_below_chance"] = (mean < link.chance).mean(axis=0)
    return out


def link_curve(link: DownstreamFit, *, loss: Any = None, prob: float = 0.9, seed: int | None = 0) -> pd.DataFrame:
    """The fitted link along a grid of losses (default: the runs' range, widened by 0.5 nats on the low side).

    Returns
    -------
    pandas.DataFrame
        ``loss``, ``median``, ``lower``/``upper`` (credible interval of the expected metric) and
        ``pred_lower``/``pred_upper`` (one evaluation), for :func:`bayes_scaling.plots.plot_downstream`.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob}")
    if loss is None:
        observed = link.data["loss"]
        loss = np.linspace(observed.min() - 0.5, observed.max(), 80)
    loss = np.asarray(loss, float)
    draws = len(next(iter(link.draws().values())))
    mean, pred = link.predict(np.broadcast_to(loss, (draws, len(loss))), seed=seed)
    tails = [(1 - prob) / 2, 0.5, (1 + prob) / 2]
    out = pd.DataFrame({"loss": loss})
    out["lower"], out["median"], out["upper"] = np.quantile(mean, tails, axis=0)
    out["pred_lower"], _, out["pred_upper"] = np.quantile(pred, tails, axis=0)
    return out
