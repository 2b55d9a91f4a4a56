"""A fit report a user can send to a colleague: HTML and Markdown with PNG figures, in one folder."""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_scaling.intervals import check_prob, interval_statement
from bayes_scaling.outputs import publish_folder

if TYPE_CHECKING:
    from bayes_scaling.comparison import Hypotheses
    from bayes_scaling.curves import CurveFit
    from bayes_scaling.downstream import DownstreamFit, TaskFit
    from bayes_scaling.explain import Explanation
    from bayes_scaling.posterior import Fit
    from bayes_scaling.recipes import RecipeComparison

__all__ = ["REPORT_BUDGETS", "REPORT_POINTS", "Report", "markdown_table", "write_report"]

#: Default forecast points (N, D) of a report: Chinchilla-70B on 1.4T tokens and 100B on 2T.
REPORT_POINTS: tuple[tuple[float, float], ...] = ((7e10, 1.4e12), (1e11, 2e12))
#: Default compute budgets (FLOPs) of a report's allocation table (5.76e23: Chinchilla's).
REPORT_BUDGETS: tuple[float, ...] = (1e22, 5.76e23, 1e24)


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote: the HTML and Markdown files, the figures, and the fits behind them."""

    html: Path
    markdown: Path
    figures: tuple[str, ...]
    fits: Mapping[str, Fit]


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-", border=0, classes="table")


def markdown_table(table: pd.DataFrame, *, digits: int = 4) -> str:
    """A table as Markdown (a named or non-default index becomes columns), floats to ``digits`` significant digits."""
    frame = table.reset_index() if table.index.name or not isinstance(table.index, pd.RangeIndex) else table
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    fmt = lambda v: f"{v:.{digits}g}" if isinstance(v, float | np.floating) else str(v)  # noqa: E731
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def write_report(
    fits: Mapping[str, Fit],
    out: str | Path,
    *,
    comparison: Hypotheses | None = None,
    downstream: DownstreamFit | TaskFit | None = None,
    explanation: Explanation | None = None,
    recipes: RecipeComparison | None = None,
    curves: CurveFit | None = None,
    points: Sequence[tuple[float, float]] = REPORT_POINTS,
    budgets: Sequence[float] = REPORT_BUDGETS,
    prob: float | None = None,
    overwrite: bool = False,
) -> Report:
    """Write ``index.html``, ``report.md`` and PNG figures about ``fits`` (law name -> fit) into ``out``.

    Sections: data summary, diagnostics, parameter table, figures (fit, extrapolation fan, frontier,
    iso-FLOP curves, posterior pairs, exponent posterior, comparison), forecasts at ``points`` (N, D),
    allocation for ``budgets`` (FLOPs), and, given ``comparison`` (:func:`bayes_scaling.comparison.hypotheses`),
    the comparison and its verdict; given ``downstream`` (:func:`bayes_scaling.downstream.fit_downstream`), the
    metric against the loss and its forecasts at ``points`` through the main fit (for a task fit,
    :func:`~bayes_scaling.downstream.fit_tasks`: the per-task table and forecasts, and a figure at the first
    point); given ``recipes`` (:func:`bayes_scaling.compare_recipes`), which recipe wins, by how much loss and
    compute, with the multiplier figure; given ``curves`` (:func:`bayes_scaling.curves.fit_curves`), the curve
    law's parameters, its extrapolation term in steps, where each fitted run ends (:meth:`CurveFit.ends`) and the
    first run's curve with its schedule beneath. The first fit is the main one.
    To fit and report in one step, see :func:`bayes_scaling.workflows.make_report`.

    ``out`` must be a new or empty folder, or one holding only an earlier report (recognised by its marker file
    :data:`~bayes_scaling.outputs.REPORT_MARKER`), which ``overwrite`` replaces; files the report did not write
    are never removed, and the working folder, its parents and the input's folder are refused. The files appear
    together at the end.

    Returns
    -------
    Report
    """
    prob = check_prob(prob)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayes_scaling import plots
    from bayes_scaling.comparison import exponent_draws
    from bayes_scaling.downstream import TaskFit, task_table
    from bayes_scaling.forecast import extrapolation_fan, fit_curves
    from bayes_scaling.planning import compute_optimal, isoflop_curves

    tasks = downstream if isinstance(downstream, TaskFit) else None
    if not fits:
        raise ValueError("give at least one fit to report")
    out = Path(out)
    laws = list(fits)
    main = fits[laws[0]]
    sweep = main.sweep
    inputs = [sweep.source] if Path(sweep.source).is_file() else []  # the data file read, also via a Sweep
    rendered: dict[str, Any] = {}
    figures: list[tuple[str, str]] = []

    def save(fig: Any, name: str, caption: str) -> None:
        rendered[name] = fig
        figures.append((name, caption))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        save(plots.plot_fit(fit_curves(main, prob=prob)).figure, "fit.png", "Observed losses and the fitted law")
        nd_law = {"N", "D"} <= set(main.law.inputs)
        if nd_law:
            target = max(1e11, float(np.max([p[0] for p in points])) if points else 1e11)
            save(plots.plot_extrapolation(extrapolation_fan(main, target_N=target)).figure, "extrapolation.png",
                 "Extrapolation fan at 20 tokens per parameter (50% and 90% credible, 90% predictive)")
            c_grid = np.geomspace(sweep.column("C").min(), max(max(budgets, default=1e24), 1e24), 25)
            save(plots.plot_frontier(compute_optimal(main, c_grid, prob=prob)), "frontier.png",
                 "Compute-optimal frontier with Kaplan and Chinchilla reference slopes")
            iso = np.geomspace(sweep.column("C").min(), sweep.column("C").max(), 4)
            save(plots.plot_isoflop(isoflop_curves(main, iso, prob=prob), prob=prob).figure, "isoflop.png",
                 "Iso-FLOP curves from the posterior")
        save(plots.plot_posterior(main.posterior_table(), title=f"Posterior of {main.law.name}"), "posterior.png",
             f"Posterior pairs and marginals ({main.law.name})")
        if main.law.optimal_exponents is not None:
            save(plots.plot_exponents(exponent_draws(main)["a"], label=main.law.name).figure, "exponents.png",
                 "Posterior of the compute-optimal exponent a")
        if comparison is not None:
            save(plots.plot_compare(comparison.loo), "compare.png", "Model comparison: ELPD and stacking weights")
        if tasks is not None and points and nd_law:
            first = task_table(tasks, fit=main, N=points[0][0], D=points[0][1], prob=prob)
            ax = plots.plot_tasks(first, prob=prob)
            ax.set_title(f"N = {points[0][0]:.3g}, D = {points[0][1]:.3g}")
            save(ax.figure, "tasks.png", f"Per-task error forecast at the first point ({len(tasks.metrics)} tasks)")
        elif downstream is not None and tasks is None:
            from bayes_scaling.downstream import link_curve

            ax = plots.plot_downstream(link_curve(downstream, prob=prob), downstream.data, metric=downstream.metric,
                                       chance=downstream.chance, prob=prob)
            save(ax.figure, "downstream.png", f"{downstream.metric} against the loss ({downstream.link.name} link)")

        if explanation is not None and explanation.windows is not None:
            save(plots.plot_a_by_compute(explanation.windows, prob=prob).figure, "a_by_compute.png",
                 "The compute-optimal exponent a by compute window, Kaplan's 0.73 and Chinchilla's 0.5 marked")

        if recipes is not None:
            ax = plots.plot_multiplier(recipes.curve, reference=recipes.reference,
                                       data_budgets=recipes.info.get("data_budgets"), prob=recipes.prob)
            save(ax.figure, "multiplier.png", f"Effective-compute multiplier against {recipes.reference} "
                 f"(50% and {recipes.prob:.0%} credible; shaded: the data's budgets)")

        if curves is not None:
            name = next(iter(curves.schedules))
            schedule = curves.schedules[name]
            observed = curves.data[curves.data["run"] == name]
            grid = curves.plot_steps(schedule, run=name)
            save(plots.plot_curve(curves.forecast(name, grid, run=name, prob=prob), lr=schedule.lr, observed=observed,
                                  prob=prob, title=name), "curve.png",
                 f"Run {name}: logged losses, where it goes ({prob:.0%} credible and predictive), its schedule")

    sections: list[tuple[str, pd.DataFrame | str]] = [("Data", sweep.describe())]
    diag = pd.DataFrame({name: f.diagnostics().to_dict() for name, f in fits.items()}).T
    diag.index.name = "law"
    sections.append(("Diagnostics", diag))
    sections.append((f"Parameters of {main.law.name} ({prob:.0%} intervals)", main.summary(prob)))
    if points and nd_law:
        n, d = zip(*points, strict=True)
        sections.append((f"Forecasts ({prob:.0%} intervals, nats/token)", main.forecast(N=n, D=d, prob=prob)))
    if budgets and nd_law:
        sections.append((f"Compute-optimal allocation ({prob:.0%} intervals)",
                         compute_optimal(main, list(budgets), prob=prob)))
    if downstream is not None:
        from bayes_scaling.downstream import chain

        if tasks is not None:
            title = (f"Downstream: {len(tasks.metrics)} tasks as functions of the loss, pooled (floor and leave loss "
                     f"with {prob:.0%} intervals)")
            label, through = "Downstream task forecasts", lambda n, d: task_table(tasks, fit=main, N=n, D=d, prob=prob)
        else:
            title = (f"Downstream: {downstream.metric} as a function of the loss ({downstream.link.formula}, "
                     f"chance {downstream.chance:.3g})")
            label, through = "Downstream forecasts", lambda n, d: chain(main, downstream, N=n, D=d, prob=prob)
        sections.append((title, downstream.summary(prob)))
        if points and nd_law:
            n, d = zip(*points, strict=True)
            sections.append((f"{label} through the loss ({prob:.0%} intervals)", through(list(n), list(d))))
    if explanation is not None:
        sections.append(("Why Kaplan and Chinchilla disagree", "\n".join(f"- {line}" for line in
                                                                          explanation.verdict())))
        for title, table in (("Parameter counting", explanation.counting), ("a by compute window",
                             explanation.windows), ("a by setup", explanation.protocol),
                             ("Protocol changes", explanation.effects)):
            if table is not None and len(table):
                sections.append((title, table))
    if recipes is not None:
        sections.append((f"Which recipe wins ({recipes.by}; reference {recipes.reference})",
                         "\n".join(f"- {line}" for line in recipes.verdict())))
        for title, table in ((f"Recipes at FLOP budgets ({recipes.prob:.0%} intervals)", recipes.budgets),
                             (f"Recipes at the asked points ({recipes.prob:.0%} intervals)", recipes.target),
                             ("Where the curves cross", recipes.crossing),
                             ("What differs between recipes (PSIS-LOO, stacking weights)", recipes.variants),
                             ("Noise: scatter around the law, evaluation and seed noise (log-loss)", recipes.noise)):
            if table is not None and len(table):
                sections.append((title, table))
    if curves is not None:
        across = "" if curves.sizes is None else f", across {len(set(curves.sizes.values()))} model sizes"
        sections.append((f"Loss curves: {curves.law.name} law, {curves.noise} noise, {len(curves.schedules)} run(s)"
                         f"{across} ({prob:.0%} intervals)", curves.summary(prob)))
        sections.append(("Loss curves: beyond the logged steps", curves.term_line()))
        sections.append((f"Loss curves: where each run ends ({prob:.0%} intervals, nats/token)", curves.ends(prob)))
    if comparison is not None:
        sections.append(("Comparison (PSIS-LOO)", comparison.loo))
        if comparison.extrapolation is not None:
            sections.append(("Extrapolation (leave-largest-out)", comparison.extrapolation))
        sections.append(("Verdict", comparison.verdict))

    title = f"bayes_scaling report: {html.escape(str(sweep.source))}"
    md = [f"# {title}", "", f"{len(sweep)} runs; laws: {', '.join(laws)}; likelihood {main.likelihood}.", ""]
    body = [f"<h1>{title}</h1>", f"<p>{len(sweep)} runs; laws: {', '.join(laws)}; likelihood {main.likelihood}.</p>"]
    for heading, content in sections:
        md += [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, str):
            md += [content, ""]
            body.append(f"<p>{html.escape(content)}</p>")
        else:
            md += [markdown_table(content), ""]
            body.append(_table_html(content))
            stated = interval_statement(content)
            if stated:
                md += [f"*{stated}*", ""]
                body.append(f"<p><em>{html.escape(stated)}</em></p>")
    md += ["## Figures", ""]
    body.append("<h2>Figures</h2>")
    for name, caption in figures:
        md += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        body.append(f'<figure><img src="{name}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                    "</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
             "text-align:right}img{max-width:100%}figcaption{color:#555;font-size:90%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")

    def fill(folder: Path) -> list[str]:
        for name, fig in rendered.items():
            fig.savefig(folder / name, dpi=110)
            plt.close(fig)
        (folder / "report.md").write_text("\n".join(md))
        (folder / "index.html").write_text(page)
        return [*rendered, "report.md", "index.html"]

    try:
        publish_folder(out, fill, overwrite=overwrite, inputs=inputs)
    finally:
        for fig in rendered.values():
            plt.close(fig)
    return Report(html=out / "index.html", markdown=out / "report.md", figures=tuple(name for name, _ in figures),
                  fits=fits)
