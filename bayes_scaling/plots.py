"""Plots (matplotlib only). Each function takes computed data, draws it, and returns the Axes or Figure.

Nothing here computes a forecast, samples or calls ``plt.show()``; every function that draws one panel accepts
``ax=``. The data come from :mod:`bayes_scaling.forecast` (:func:`~bayes_scaling.forecast.fit_curves`,
:func:`~bayes_scaling.forecast.extrapolation_fan`), :mod:`bayes_scaling.planning`
(:func:`~bayes_scaling.planning.compute_optimal`, :func:`~bayes_scaling.planning.isoflop_curves`),
:mod:`bayes_scaling.comparison` (:func:`~bayes_scaling.comparison.compare`,
:func:`~bayes_scaling.comparison.exponent_draws`) and :meth:`Fit.posterior_table
<bayes_scaling.posterior.Fit.posterior_table>`::

    plots.plot_fit(fit_curves(fit))              # from bayes_scaling.forecast import fit_curves
    plots.plot_exponents(comparison.exponent_draws(fit)["a"], label=fit.law.name)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.intervals import check_prob

if TYPE_CHECKING:
    from bayes_scaling.forecast import Curves

__all__ = [
    "plot_a_by_compute",
    "plot_calibration",
    "plot_compare",
    "plot_curve",
    "plot_design",
    "plot_downstream",
    "plot_exponents",
    "plot_extrapolation",
    "plot_fit",
    "plot_frontier",
    "plot_isoflop",
    "plot_multiplier",
    "plot_posterior",
    "plot_tasks",
]

CMAP = "viridis"


def _ax(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.4)) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_fit(curves: Curves, *, ax: Axes | None = None) -> Axes:
    """Observed losses against the fitted law (:func:`bayes_scaling.forecast.fit_curves`), coloured by N.

    Each curve is the posterior median of the law's loss vs tokens D for one model size, with its
    credible band (dark) and the predictive band of a new run (light). Laws of C alone are drawn vs C.
    """
    ax = _ax(ax)
    frame, bands, prob = curves.runs, curves.bands, curves.probs[0]
    if curves.by is None:
        x_col = curves.x
        _draw_band(ax, bands, x_col, prob, color="C0", label="fitted law")
        ax.scatter(frame[x_col], frame["loss"], s=12, color="k", zorder=3, label="runs")
        ax.set_xlabel({"C": "training compute C (FLOPs)", "N": "parameters N", "D": "training tokens D"}[x_col])
    else:
        norm = LogNorm(frame[curves.by].min(), frame[curves.by].max())
        cmap = plt.get_cmap(CMAP)
        for value, part in bands.groupby(curves.by, sort=True):
            _draw_band(ax, part, curves.x, prob, color=cmap(norm(value)))
        sc = ax.scatter(frame[curves.x], frame["loss"], c=frame[curves.by], cmap=CMAP, norm=norm, s=14,
                        edgecolor="k", linewidth=0.3, zorder=3)
        ax.figure.colorbar(sc, ax=ax, label="parameters N")
        ax.set_xlabel("training tokens D")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{curves.law}: median, {prob:.0%} credible (dark) and predictive (light) bands")
    return ax


def _at(table: pd.DataFrame, prob: float) -> pd.DataFrame:
    """The rows of a long band table (one row per point and ``prob``) at one probability."""
    return table[np.isclose(table["prob"], prob)] if "prob" in table.columns else table


def _draw_band(ax: Axes, table: pd.DataFrame, x: str, prob: float, *, color: Any, label: str | None = None) -> None:
    table = _at(table, prob)
    ax.fill_between(table[x], table["pred_lower"], table["pred_upper"], color=color, alpha=0.12, linewidth=0)
    ax.fill_between(table[x], table["lower"], table["upper"], color=color, alpha=0.35, linewidth=0)
    ax.plot(table[x], table["median"], color=color, linewidth=1.2, label=label)


def plot_extrapolation(
    fan: Curves,
    *,
    x: str = "N",
    holdout: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Extrapolation fan (:func:`bayes_scaling.forecast.extrapolation_fan`): loss vs N (or C) out to the target.

    Along a fixed tokens-per-parameter ratio: nested bands (e.g. 50% and 90%) of the law's expected loss, plus
    the predictive band of a run at the widest level; the sweep's runs and any ``holdout`` runs (a DataFrame with
    N, D, loss) are overlaid.
    """
    if x not in ("N", "C"):
        raise ValueError("x must be 'N' or 'C'")
    ax = _ax(ax)
    frame, table = fan.runs, fan.bands
    tokens_per_param = fan.tokens_per_param or 20.0
    probs = sorted(fan.probs)
    widest = probs[-1]
    wide = _at(table, widest)
    ax.fill_between(wide[x], wide["pred_lower"], wide["pred_upper"], color="C0",
                    alpha=0.1, linewidth=0, label=f"{widest:.0%} predictive (one run)")
    for i, p in enumerate(reversed(probs)):
        band = _at(table, p)
        ax.fill_between(band[x], band["lower"], band["upper"], color="C0", alpha=0.25 + 0.2 * i,
                        linewidth=0, label=f"{p:.0%} credible")
    ax.plot(wide[x], wide["median"], color="C0", label="median")
    near = np.abs(np.log(frame["D"] / frame["N"] / tokens_per_param)) < np.log(2)
    ax.scatter(frame.loc[near, x], frame.loc[near, "loss"], s=12, color="0.2", zorder=3,
               label=f"runs at {tokens_per_param / 2:g}-{tokens_per_param * 2:g} tokens/param")
    ax.scatter(frame.loc[~near, x], frame.loc[~near, "loss"], s=8, color="0.75", zorder=2, label="other runs")
    if holdout is not None and len(holdout):
        hx = holdout[x] if x in holdout else FLOPS_PER_PARAM_TOKEN * holdout["N"] * holdout["D"]
        ax.scatter(hx, holdout["loss"], s=24, marker="*", color="C3", zorder=4, label="held-out runs")
    ax.axvline(table[x].iloc[-1], color="0.5", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N" if x == "N" else "training compute C (FLOPs)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"Extrapolation at {tokens_per_param:g} tokens/parameter")
    ax.legend(fontsize="small")
    return ax


def plot_frontier(table: pd.DataFrame, *, axes: Sequence[Axes] | None = None) -> Figure:
    """Compute-optimal frontier N_opt(C) and D_opt(C) with bands, from :func:`bayes_scaling.compute_optimal`.

    Reference slopes through the median at the smallest budget: Kaplan (N ∝ C^0.73, D ∝ C^0.27) and
    Chinchilla (N ∝ C^0.5, D ∝ C^0.5).
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    else:
        fig = axes[0].figure
    c = table["C"].to_numpy()
    for ax, key, kaplan in zip(axes, ("N_opt", "D_opt"), (0.73, 0.27), strict=True):
        ax.fill_between(c, table[f"{key}_lower"], table[f"{key}_upper"], color="C0", alpha=0.3, linewidth=0,
                        label="credible interval")
        ax.plot(c, table[key], color="C0", label="posterior median")
        anchor = table[key].iloc[0]
        ax.plot(c, anchor * (c / c[0]) ** kaplan, "--", color="C3", label=f"Kaplan slope {kaplan}")
        ax.plot(c, anchor * (c / c[0]) ** 0.5, ":", color="C2", label="Chinchilla slope 0.5")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel("compute-optimal parameters N" if key == "N_opt" else "compute-optimal tokens D")
        ax.legend(fontsize="small")
    return fig


def plot_isoflop(table: pd.DataFrame, *, prob: float | None = None, ax: Axes | None = None) -> Axes:
    """Iso-FLOP curves (:func:`bayes_scaling.planning.isoflop_curves`): loss vs N at fixed C.

    Median with credible band; the median compute-optimal N of each budget is marked.
    """
    prob = check_prob(prob)
    ax = _ax(ax)
    budgets = np.unique(table["C"])
    norm = LogNorm(budgets.min(), budgets.max() * 1.0001)
    cmap = plt.get_cmap("plasma")
    for budget in budgets:
        part = _at(table[table["C"] == budget], prob)
        n, n_opt = part["N"].to_numpy(), float(part["N_opt"].iloc[0])
        color = cmap(norm(budget) * 0.85)
        ax.fill_between(n, part["lower"], part["upper"], color=color, alpha=0.3, linewidth=0)
        ax.plot(n, part["median"], color=color, label=f"C = {budget:.1e}")
        ax.scatter([n_opt], [np.interp(np.log(n_opt), np.log(n), part["median"])], color=color, marker="o",
                   edgecolor="k", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Iso-FLOP curves (dots: median compute-optimal N)")
    ax.legend(fontsize="small")
    return ax


def plot_posterior(draws: pd.DataFrame | Mapping[str, np.ndarray], *, title: str = "Posterior",
                   max_points: int = 1000, seed: int = 0) -> Figure:
    """Pairs and marginals of posterior draws, one column per quantity (:meth:`bayes_scaling.Fit.posterior_table`).

    Histograms on the diagonal, scatter of (thinned) draws below it.
    """
    draws = {k: np.asarray(v, dtype=float) for k, v in dict(draws).items()}
    names = list(draws)
    if not names:
        raise ValueError("no draws to plot")
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(1.9 * k + 1, 1.9 * k + 1), layout="constrained", squeeze=False)
    rng = np.random.default_rng(seed)
    total = len(next(iter(draws.values())))
    pick = rng.choice(total, size=min(max_points, total), replace=False)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(draws[xj], bins=40, color="C0", alpha=0.8)
                ax.set_yticks([])
            else:
                ax.scatter(draws[xj][pick], draws[yi][pick], s=2, alpha=0.4, color="C0")
            if i == k - 1:
                ax.set_xlabel(xj)
            if j == 0 and i > 0:
                ax.set_ylabel(yi)
    fig.suptitle(title)
    return fig


def plot_compare(table: pd.DataFrame, *, axes: Sequence[Axes] | None = None) -> Figure:
    """Model comparison from :func:`bayes_scaling.compare`: ELPD ± se and stacking weights."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(table) + 2), layout="constrained")
    else:
        fig = axes[0].figure
    y = np.arange(len(table))[::-1]
    axes[0].errorbar(table["elpd"], y, xerr=table["se"], fmt="o", color="C0", capsize=3)
    axes[0].set_yticks(y, table.index)
    axes[0].set_xlabel("ELPD (PSIS-LOO, higher is better)")
    axes[0].axvline(table["elpd"].iloc[0], color="0.6", linestyle=":")
    axes[1].barh(y, table["weight"], color="C1")
    axes[1].set_yticks(y, table.index)
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("stacking weight")
    return fig


def plot_exponents(a: np.ndarray, *, label: str = "", ax: Axes | None = None) -> Axes:
    """Posterior draws of the compute-optimal exponent a = β/(α+β), Kaplan's 0.73 and Chinchilla's 0.5 marked.

    ``a``: e.g. ``bayes_scaling.comparison.exponent_draws(fit)["a"]``.
    """
    ax = _ax(ax, (6.4, 3.6))
    ax.hist(np.asarray(a, dtype=float), bins=60, color="C0", alpha=0.8, density=True,
            label=f"posterior of a ({label})" if label else "posterior of a")
    ax.axvline(0.5, color="C2", linestyle="--", label="Chinchilla a = 0.5")
    ax.axvline(0.73, color="C3", linestyle="--", label="Kaplan a = 0.73")
    ax.set_xlabel("compute-optimal exponent a (N_opt ∝ C^a)")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax


def plot_downstream(curve: pd.DataFrame, runs: pd.DataFrame, *, metric: str, chance: float,
                    prob: float | None = None, ax: Axes | None = None) -> Axes:
    """A benchmark metric against the loss (:func:`bayes_scaling.downstream.link_curve`), chance marked.

    The fitted link's median with its credible (dark) and predictive (light) bands and the runs it was fitted to;
    ``runs`` has columns ``loss`` and ``metric``. The loss axis runs from high to low (better models to the right).
    """
    prob = check_prob(prob)
    ax = _ax(ax)
    ax.fill_between(curve["loss"], curve["pred_lower"], curve["pred_upper"], color="C0", alpha=0.15, linewidth=0,
                    label=f"{prob:.0%} predictive (one evaluation)")
    ax.fill_between(curve["loss"], curve["lower"], curve["upper"], color="C0", alpha=0.4, linewidth=0,
                    label=f"{prob:.0%} credible")
    ax.plot(curve["loss"], curve["median"], color="C0", label="median")
    ax.scatter(runs["loss"], runs[metric], s=12, color="k", zorder=3, label="runs")
    ax.axhline(chance, color="C3", linestyle="--", label=f"chance ({chance:.3g})")
    ax.invert_xaxis()
    ax.set_xlabel("loss (nats/token)")
    ax.set_ylabel(f"{metric} (error)")
    ax.legend(fontsize="small")
    return ax


def plot_curve(table: pd.DataFrame, *, lr: np.ndarray | None = None, observed: pd.DataFrame | None = None,
               prob: float | None = None, title: str = "", axes: Sequence[Axes] | None = None) -> Figure:
    """A loss curve forecast (:meth:`bayes_scaling.curves.CurveFit.forecast`) with its schedule beneath.

    ``table`` has ``step``, ``median``, ``lower``/``upper`` (the law's curve, credible) and
    ``pred_lower``/``pred_upper`` (a run's logged loss, predictive); ``lr`` is the schedule's rate of every step
    (``Schedule.lr``) and ``observed`` the logged points (``step``, ``loss``) to draw over it.
    """
    prob = check_prob(prob if prob is not None else table.attrs.get("interval", {}).get("prob"))
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, height_ratios=(3, 1), layout="constrained")
    else:
        fig = axes[0].figure
    top, bottom = axes
    step = table["step"].to_numpy()
    top.fill_between(step, table["pred_lower"], table["pred_upper"], color="C0", alpha=0.15, linewidth=0,
                     label=f"{prob:.0%} predictive (the run's logged loss)")
    top.fill_between(step, table["lower"], table["upper"], color="C0", alpha=0.4, linewidth=0,
                     label=f"{prob:.0%} credible (the law's curve)")
    top.plot(step, table["median"], color="C0", label="median")
    if observed is not None and len(observed):
        top.scatter(observed["step"], observed["loss"], s=6, color="k", zorder=3, label="logged")
    top.set_ylabel("loss (nats/token)")
    top.legend(fontsize="small")
    if title:
        top.set_title(title)
    if lr is not None:
        bottom.plot(np.arange(1, len(lr) + 1), lr, color="C1")
    bottom.set_xlabel("step")
    bottom.set_ylabel("learning rate")
    return fig


def plot_tasks(table: pd.DataFrame, *, prob: float | None = None, ax: Axes | None = None) -> Axes:
    """Per task at one point: the forecast error with its intervals, chance marked, ordered by the median.

    ``table`` holds one row per task (:func:`bayes_scaling.downstream.task_table` at one point): ``metric``,
    ``chance``, ``median``, ``lower``/``upper`` and ``pred_lower``/``pred_upper``. Tasks likely above chance
    (``p_above_chance`` >= 0.9) are drawn in the first colour, the others grey.
    """
    prob = check_prob(prob)
    if table["metric"].duplicated().any():
        raise ValueError("plot_tasks draws one point: select the rows of one (N, D) or loss first")
    rows = table.sort_values("median").reset_index(drop=True)
    ax = _ax(ax)
    if ax.figure.get_figheight() < 0.22 * len(rows):
        ax.figure.set_size_inches(ax.figure.get_figwidth(), 0.22 * len(rows) + 1.0)
    y = np.arange(len(rows))
    colours = np.where(rows.get("p_above_chance", pd.Series(0.0, index=rows.index)) >= 0.9, "C0", "0.55")
    ax.hlines(y, rows["pred_lower"], rows["pred_upper"], colors=colours, alpha=0.35, linewidth=5,
              label=f"{prob:.0%} predictive (one evaluation)")
    ax.hlines(y, rows["lower"], rows["upper"], colors=colours, linewidth=2, label=f"{prob:.0%} credible")
    ax.scatter(rows["median"], y, c=list(colours), s=14, zorder=3)
    ax.scatter(rows["chance"], y, marker="|", color="C3", s=60, zorder=4, label="chance")
    ax.set_yticks(y, [m.removeprefix("err_") for m in rows["metric"]], fontsize="small")
    ax.set_xlabel("error (1 - accuracy)")
    ax.legend(fontsize="small", loc="lower right")
    return ax


def plot_design(candidates: pd.DataFrame, *, runs: pd.DataFrame | None = None, sweep: pd.DataFrame | None = None,
                ax: Axes | None = None) -> Axes:
    """Candidate runs in (N, D), coloured by the target's expected narrowing per FLOP, the chosen ones numbered.

    ``candidates``: :attr:`bayes_scaling.design.Suggestion.candidates` (``N``, ``D``, ``value_per_flop``,
    ``chosen``); ``runs``: the chosen runs in order (:attr:`~bayes_scaling.design.Suggestion.runs`), numbered
    by the order they were picked; ``sweep``: the runs already trained (``N``, ``D``), drawn in grey.
    """
    ax = _ax(ax)
    if sweep is not None:
        ax.scatter(sweep["N"], sweep["D"], s=12, color="0.6", label="sweep", zorder=2)
    value = candidates["value_per_flop"].to_numpy(float)
    shown = np.isfinite(value)
    points = ax.scatter(candidates["N"][shown], candidates["D"][shown], c=np.log10(np.maximum(value[shown], 1e-300)),
                        cmap="viridis", s=40, marker="s", label="candidates", zorder=3)
    ax.figure.colorbar(points, ax=ax, label="log10 expected narrowing per FLOP (first run)")
    if runs is not None and len(runs):
        ax.scatter(runs["N"], runs["D"], s=140, facecolors="none", edgecolors="C3", linewidths=1.5,
                   label="suggested", zorder=4)
        for i, (n, d) in enumerate(zip(runs["N"], runs["D"], strict=True), start=1):
            ax.annotate(str(i), (n, d), textcoords="offset points", xytext=(6, 6), fontsize="small", color="C3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (parameters)")
    ax.set_ylabel("D (tokens)")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def plot_a_by_compute(windows: pd.DataFrame, *, prob: float | None = None, ax: Axes | None = None) -> Axes:
    """The compute-optimal exponent a against compute, one point per window, with Kaplan's and Chinchilla's marked.

    ``windows``: :attr:`bayes_scaling.explain.Explanation.windows` (``C``, ``a``, ``a_lower``, ``a_upper``).
    """
    prob = check_prob(prob)
    ax = _ax(ax)
    order = windows.sort_values("C")
    ax.fill_between(order["C"], order["a_lower"], order["a_upper"], color="C0", alpha=0.3, linewidth=0,
                    label=f"{prob:.0%} credible")
    ax.plot(order["C"], order["a"], "o-", color="C0", label="a (median) per compute window")
    ax.axhline(0.73, color="C3", linestyle="--", label="Kaplan et al. 0.73")
    ax.axhline(0.5, color="C2", linestyle="--", label="Chinchilla 0.5")
    ax.set_xscale("log")
    ax.set_xlabel("C (FLOPs, window centre)")
    ax.set_ylabel("a in N_opt ~ C^a")
    ax.legend(fontsize="small")
    return ax


def plot_multiplier(curve: pd.DataFrame, *, reference: str, data_budgets: Sequence[float] | None = None,
                    prob: float | None = None, ax: Axes | None = None) -> Axes:
    """The effective-compute multiplier of each recipe against the reference's, with 50% and ``prob`` bands.

    ``curve``: :attr:`bayes_scaling.recipes.RecipeComparison.curve` (``C``, ``recipe``, ``prob``, ``median``,
    ``lower``, ``upper``: rows at ``prob`` and at 0.5); ``data_budgets`` (smallest, largest FLOPs of the sweep)
    shades the data's range. Above 1: the recipe is worth more than the reference's compute. Infinite bounds (the
    reference never reaches the recipe's loss) are drawn at the top of the axes.
    """
    prob = check_prob(prob)
    ax = _ax(ax)
    for i, (recipe, rows) in enumerate(curve.groupby("recipe", sort=False)):
        part, inner = _at(rows, prob).sort_values("C"), _at(rows, 0.5).sort_values("C")
        color = f"C{i}"
        finite = part["upper"].to_numpy(dtype=float)
        cap = 10 * float(np.max(finite[np.isfinite(finite)])) if np.isfinite(finite).any() else 10.0

        def capped(values: pd.Series, cap: float = cap) -> np.ndarray:
            return np.where(np.isfinite(values), values, cap)

        ax.fill_between(part["C"], capped(part["lower"]), capped(part["upper"]), color=color, alpha=0.2,
                        linewidth=0, label=f"{recipe}: {prob:.0%} credible")
        if len(inner) and not np.isclose(prob, 0.5):
            ax.fill_between(inner["C"], capped(inner["lower"]), capped(inner["upper"]), color=color, alpha=0.35,
                            linewidth=0)
        ax.plot(part["C"], capped(part["median"]), color=color, label=f"{recipe} (median)")
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label=f"{reference} (reference)")
    if data_budgets is not None:
        ax.axvspan(*data_budgets, color="grey", alpha=0.12, label="budgets in the data")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("C (FLOPs)")
    ax.set_ylabel(f"compute {reference} needs / C")
    ax.set_title(f"Effective-compute multiplier against {reference}")
    ax.legend(fontsize="small")
    return ax


def plot_calibration(runs: pd.DataFrame, *, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95),
                     axes: Sequence[Axes] | None = None) -> Figure:
    """PIT histograms and coverage against nominal, one line per method, from backtest scores.

    ``runs`` has one row per held-out run and method: ``method``, ``pit`` (the fraction of the method's
    predictive quantiles below the observed loss) and ``cover_<p>`` (whether the central ``p`` interval holds
    it), as written by ``benchmarks/backtests.py``. A calibrated forecaster has a flat PIT histogram and its
    coverage on the diagonal.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    left, right = axes
    fig = left.figure
    methods = list(dict.fromkeys(runs["method"]))
    bins = np.linspace(0, 1, 11)
    for method in methods:
        part = runs[runs["method"] == method]
        hist, _ = np.histogram(part["pit"], bins=bins)
        left.stairs(hist / max(len(part), 1) * len(hist), bins, label=method)
        cover = [part[f"cover_{p:g}"].mean() for p in levels]
        right.plot(levels, cover, marker="o", label=method)
    left.axhline(1.0, color="black", lw=0.8, ls="--")
    left.set(xlabel="PIT (share of predictive quantiles below the observed loss)", ylabel="density",
             title="PIT of held-out runs (flat = calibrated)")
    right.plot([0.4, 1.0], [0.4, 1.0], color="black", lw=0.8, ls="--")
    right.set(xlabel="nominal coverage", ylabel="observed coverage", title="Coverage of held-out runs",
              xlim=(0.4, 1.0), ylim=(0.0, 1.02))
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
