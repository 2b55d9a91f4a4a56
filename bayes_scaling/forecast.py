"""Forecasts from a fitted law, vectorised over posterior draws in numpy.

Two intervals answer two questions:

* the **credible interval** of the law's mean curve: where the expected loss of a
  run at (N, D) lies, given the sweep;
* the **predictive interval** of a new run: where the loss of one more training
  run at (N, D) will land, including run-to-run scatter (the fitted noise on
  log-loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.extrapolation import distance_columns, question_directions, sweep_ranges
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table

if TYPE_CHECKING:
    from bayes_scaling.posterior import Fit

__all__ = ["Curves", "band_table", "check_law_inputs", "extrapolation_fan", "fit_curves", "forecast", "loss_draws",
           "points_frame"]

ArrayLike = float | int | np.ndarray | list[float] | pd.Series


def check_law_inputs(law: Any, given: Sequence[str]) -> None:
    """Raise ``ValueError`` when ``given`` names an input ``law`` does not use (N and D may give a law of C)."""
    used = set(law.columns)
    if "C" in used and "C" not in given:
        used |= {"N", "D"}  # C = 6 N D
    unused = [k for k in given if k not in used]
    if unused:
        raise ValueError(f"law {law.name!r} uses {', '.join(law.columns)}; {', '.join(unused)} "
                         f"{'is' if len(unused) == 1 else 'are'} not among its inputs and would be ignored: leave "
                         f"{'it' if len(unused) == 1 else 'them'} out")


def points_frame(
    *,
    N: ArrayLike | None = None,
    D: ArrayLike | None = None,
    C: ArrayLike | None = None,
    unique_tokens: ArrayLike | None = None,
    experts: ArrayLike | None = None,
) -> pd.DataFrame:
    """Broadcast query points into a table with columns N, D, C (and unique_tokens, experts).

    C defaults to 6·N·D when N and D are given; every value must be finite and > 0.
    """
    given = {k: v for k, v in {"N": N, "D": D, "C": C, "unique_tokens": unique_tokens, "experts": experts}.items()
             if v is not None}
    if not given:
        raise ValueError("give at least one of N, D, C for the points to forecast")
    try:
        arrays = np.broadcast_arrays(*[np.atleast_1d(np.asarray(v, dtype=float)) for v in given.values()])
    except ValueError:
        raise ValueError(
            "N, D and C must have the same length (or be single numbers); got lengths "
            + ", ".join(f"{k}={np.size(v)}" for k, v in given.items())
        ) from None
    except TypeError:
        raise ValueError("N, D and C must be numbers") from None
    frame = pd.DataFrame({k: a.ravel() for k, a in zip(given, arrays, strict=True)})
    for column in frame.columns:
        bad = ~(np.isfinite(frame[column]) & (frame[column] > 0))
        if bad.any():
            raise ValueError(f"{column} must be finite and > 0; got {frame[column][bad].tolist()}")
    if "experts" in frame and (frame["experts"] < 1).any():
        below = frame["experts"][frame["experts"] < 1].tolist()
        raise ValueError(f"experts must be >= 1 (1 is a dense model); got {below}")
    if "C" not in frame and {"N", "D"} <= set(frame):
        frame["C"] = FLOPS_PER_PARAM_TOKEN * frame["N"] * frame["D"]
    return frame


def loss_draws(fit: Fit, points: pd.DataFrame, seed: int | np.random.Generator | None = 0) -> dict[str, np.ndarray]:
    """Draws of the expected loss and of a new run's loss at ``points``, and where their spread comes from.

    A view of :func:`bayes_scaling.predictive.predict` (the predictive engine): the expected loss is the law's
    mean plus the extrapolation term (zero inside the sweep, growing with the distance beyond it); a new run adds
    the run-to-run scatter.

    Returns
    -------
    dict
        ``mean`` and ``pred``: arrays (draws, points) in nats/token; ``distance``: decades beyond the sweep;
        ``sd_params``, ``sd_extrapolation``: those parts' standard deviations on log-loss (about a relative
        error), per point; the run scatter as ``scatter_scale`` (posterior median of the noise scale sigma, the
        Student-t's scale) and ``scatter_68`` (half-width of the central 68% of a new run's deviation on
        log-loss): a Student-t with nu <= 2 has no standard deviation, so none is reported.
    """
    from bayes_scaling.predictive import predict

    draws = predict(fit, points, seed=seed)
    return {"mean": draws.loss("expected"), "pred": draws.loss("total"), "distance": draws.distance,
            **draws.spread()}


def band_table(fit: Fit, points: pd.DataFrame, probs: Sequence[float] = (0.5, 0.9), seed: int = 0) -> pd.DataFrame:
    """Median and nested credible/predictive bands of the loss at ``points`` (columns N, D and/or C).

    A long table: one row per point and probability ``prob`` (in the order of ``probs``). Columns: the inputs,
    ``prob``, ``median``, ``lower``/``upper`` (credible interval of the expected loss) and
    ``pred_lower``/``pred_upper`` (predictive interval of a new run).
    """
    points = points_frame(**{c: points[c].to_numpy() for c in ("N", "D", "C", "unique_tokens", "experts")
                             if c in points})
    draws = loss_draws(fit, points, seed)
    loss, pred = draws["mean"], draws["pred"]
    median = np.median(loss, axis=0)
    parts = []
    for p in map(check_prob, probs):
        out = points.copy()
        out["prob"] = p
        out["median"] = median
        out["lower"], out["upper"] = equal_tailed(loss, p)
        out["pred_lower"], out["pred_upper"] = equal_tailed(pred, p)
        parts.append(out)
    return interval_table(pd.concat(parts, ignore_index=True), long=True)


@dataclass(frozen=True)
class Curves:
    """Bands of a fitted law along one or more curves, with the runs they are drawn against (for plotting).

    Attributes
    ----------
    bands : pandas.DataFrame
        :func:`band_table` rows along the curves.
    runs : pandas.DataFrame
        The sweep's runs (N, D, C, loss, ...).
    x : str
        The column the curves run along (``"D"``, ``"N"`` or ``"C"``).
    probs : tuple of float
        The band levels in ``bands``.
    law : str
        The law's name.
    by : str or None
        The column whose values tell the curves apart (``"N"``: one curve per model size), or None for one curve.
    tokens_per_param : float or None
        For an extrapolation fan: the tokens per parameter along it.
    """

    bands: pd.DataFrame
    runs: pd.DataFrame
    x: str
    probs: tuple[float, ...]
    law: str
    by: str | None = None
    tokens_per_param: float | None = None


def fit_curves(fit: Fit, *, prob: float | None = None, max_curves: int = 8, seed: int = 0) -> Curves:
    """The fitted law against its runs: one curve per model size (loss vs tokens D), up to ``max_curves`` sizes.

    Laws without D are one curve along C (or N). Each curve spans its size's runs (a factor 2 beyond them).
    """
    prob = check_prob(prob)
    frame = fit.sweep.frame
    if "D" not in fit.law.inputs:
        x_col = "C" if "C" in fit.law.inputs else "N"
        grid = np.geomspace(frame[x_col].min() / 1.5, frame[x_col].max() * 1.5, 80)
        bands = band_table(fit, pd.DataFrame({x_col: grid}), probs=(prob,), seed=seed)
        return Curves(bands=bands, runs=frame, x=x_col, probs=(prob,), law=fit.law.name)
    sizes = np.unique(fit.sweep.column("N"))
    if len(sizes) > max_curves:
        sizes = np.unique(np.quantile(sizes, np.linspace(0, 1, max_curves), method="nearest"))
    d_grid = np.geomspace(frame["D"].min() / 1.5, frame["D"].max() * 1.5, 60)
    parts = []
    for n in sizes:
        runs = frame[np.isclose(frame["N"], n, rtol=0.02)]
        d_lo, d_hi = max(d_grid[0], runs["D"].min() / 2), min(d_grid[-1], runs["D"].max() * 2)
        d = d_grid[(d_grid >= d_lo) & (d_grid <= d_hi)]
        if len(d) < 2:
            d = np.geomspace(d_lo, d_hi, 10)
        points = pd.DataFrame({"N": n, "D": d})
        if "U" in fit.law.inputs:
            points["unique_tokens"] = d
        parts.append(band_table(fit, points, probs=(prob,), seed=seed))
    bands = interval_table(pd.concat(parts, ignore_index=True), long=True)
    return Curves(bands=bands, runs=frame, x="D", probs=(prob,), law=fit.law.name,
                  by="N")


def extrapolation_fan(fit: Fit, *, target_N: float = 1e11, tokens_per_param: float = 20.0,
                      probs: Sequence[float] = (0.5, 0.9), seed: int = 0) -> Curves:
    """Bands of the loss along D = ``tokens_per_param`` · N, from the sweep's smallest N out to ``target_N``."""
    frame = fit.sweep.frame
    n = np.geomspace(frame["N"].min(), max(target_N, frame["N"].max()), 80)
    points = pd.DataFrame({"N": n, "D": tokens_per_param * n})
    if "U" in fit.law.inputs:
        points["unique_tokens"] = points["D"]
    bands = band_table(fit, points, probs=probs, seed=seed)
    return Curves(bands=bands, runs=frame, x="N", probs=tuple(sorted(probs)), law=fit.law.name,
                  tokens_per_param=float(tokens_per_param))


def forecast(
    fit: Fit,
    *,
    N: ArrayLike | None = None,
    D: ArrayLike | None = None,
    C: ArrayLike | None = None,
    unique_tokens: ArrayLike | None = None,
    experts: ArrayLike | None = None,
    prob: float | None = None,
    seed: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Forecast the loss at new points with credible and predictive intervals.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    N, D, C, unique_tokens, experts : float or array
        Query points (broadcast together); C defaults to 6·N·D; ``experts`` for the routing law.
    prob : float
        Probability mass of the (equal-tailed) intervals.
    seed : int or Generator
        Seed for the run-to-run noise of the predictive interval.

    Returns
    -------
    pandas.DataFrame
        One row per point: the inputs, ``mean`` and ``median`` of the expected
        loss, ``lower``/``upper`` (its credible interval) and
        ``pred_lower``/``pred_upper`` (predictive interval of a new run), in nats; where the spread comes from
        (``sd_params``, ``sd_extrapolation``: standard deviations on log-loss, i.e. roughly relative errors, of the
        parameters and of the extrapolation term that grows with the distance beyond the sweep, see
        :mod:`bayes_scaling.extrapolation`; the run-to-run scatter as ``scatter_scale``, the noise scale sigma,
        and ``scatter_68``, the half-width of its central 68% on log-loss, which exists for any Student-t nu
        where a standard deviation may not); then how far the point
        lies outside the sweep (``decades_N``, ``decades_D``, ``decades_C``: decades above the largest run,
        negative below the smallest, 0 within; ``decades_out``: the largest of them) and ``direction``, the
        direction it goes beyond the sweep in most (``"size"``, ``"compute"``, ``"tokens_per_param"``;
        :func:`~bayes_scaling.extrapolation.question_directions`; empty inside the sweep): whose folds' term the
        default ``"directional"`` design may give it.

    Raises
    ------
    ValueError
        When the law gives no finite loss at a point (outside its domain), or an input is given that the law does
        not use (e.g. ``experts`` for Chinchilla, ``D`` for ``params``): it would be echoed in the table and ignored.
    """
    prob = check_prob(prob)
    given = {"N": N, "D": D, "C": C, "unique_tokens": unique_tokens, "experts": experts}
    check_law_inputs(fit.law, [k for k, v in given.items() if v is not None])
    points = points_frame(**given)
    draws = loss_draws(fit, points, seed)
    loss, pred = draws["mean"], draws["pred"]
    lower, upper = equal_tailed(loss, prob)
    pred_lower, pred_upper = equal_tailed(pred, prob)
    out = points.copy()
    out["mean"] = loss.mean(axis=0)
    out["median"] = np.median(loss, axis=0)
    out["lower"] = lower
    out["upper"] = upper
    out["pred_lower"] = pred_lower
    out["pred_upper"] = pred_upper
    for part in ("sd_params", "scatter_scale", "scatter_68", "sd_extrapolation"):
        out[part] = draws[part]
    if "extrapolation" not in fit.info and (draws["distance"] > 0).any():
        import warnings

        warnings.warn(
            "this fit carries no extrapolation term (saved by a version before it existed): beyond the sweep its "
            "intervals hold parameter uncertainty and run scatter only, and are too narrow; refit to add it",
            UserWarning,
            stacklevel=2,
        )
    check_finite(out, ["mean", "median", "lower", "upper", "pred_lower", "pred_upper"], what="forecast")
    table = pd.concat([out, fit.sweep.decades_outside(out)], axis=1)
    table["direction"] = question_directions(points, sweep_ranges(fit.sweep, distance_columns(fit.law)))
    return interval_table(table, prob)


def check_finite(table: pd.DataFrame, columns: Sequence[str], *, what: str, reason: str = "") -> None:
    """Raise ``ValueError`` naming the first row where one of ``columns`` is not finite (outside the law's domain)."""
    values = table[list(columns)].to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        inputs = ", ".join(f"{c}={table[c].iloc[row]:.3g}" for c in ("N", "D", "C") if c in table.columns)
        raise ValueError(f"no finite {what} at row {row + 1} ({inputs}): the point lies outside the law's domain"
                         + (f" ({reason})" if reason else "") + "; choose values closer to the sweep")
