"""``bayes-scaling fit-downstream``: fit a benchmark error as a function of the loss (one link or pooled tasks)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling.cli import common


def _metric_columns(spec: str, columns: list[str]) -> list[str]:
    """``--metric``: comma-separated column names or glob patterns (a pattern picks the columns with items)."""
    import fnmatch

    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if any(ch in part for ch in "*?["):
            matched = [c for c in columns if fnmatch.fnmatchcase(c, part) and f"items_{c}" in columns]
            if not matched:
                raise ValueError(f"--metric pattern {part!r} matches no column that has an items_<column> column")
            chosen += matched
        else:
            chosen.append(part)
    if not chosen:
        raise ValueError("--metric names no column")
    return list(dict.fromkeys(chosen))


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling.downstream import TASK_SAMPLING, fit_downstream, fit_tasks
    from bayes_scaling.inference import Sampling

    frame = common.load_data(args).frame
    metrics = _metric_columns(args.metric, list(frame.columns))
    common.say(args, f"fitting {', '.join(metrics)} against the loss on {len(frame)} runs ...")
    pooled = len(metrics) > 1
    if args.draws is None:  # the command's default: more draws for the pooled fit (see TASK_SAMPLING)
        args.draws = (TASK_SAMPLING if pooled else Sampling()).draws
    kwargs = common.sampling_kwargs(args)
    chance: float | str | None = args.chance
    if chance is not None:
        try:
            chance = float(chance)
        except ValueError:
            pass  # a column name
    if pooled:
        if isinstance(chance, str):
            raise ValueError("--chance with several metrics must be a number (default: the random_<metric> columns)")
        result = common.quietly(fit_tasks, frame, metrics, chance=chance, items=args.items, loss=args.loss_column,
                                **kwargs)
        heading = (f"{len(metrics)} tasks as functions of the loss, pooled: Err = top - (top - floor) "
                   f"sigmoid((midpoint - L) / width), {len(result.data)} runs; floor and leave_loss (the loss below "
                   f"which a task is 2 points under chance) with {args.prob:.0%} intervals")
    else:
        result = common.quietly(fit_downstream, frame, metrics[0], form=args.form, chance=chance, items=args.items,
                                loss=args.loss_column, **kwargs)
        heading = (f"{result.metric} as a function of the loss: {result.link.formula} (chance "
                   f"{result.chance:.3g}), {len(result.data)} runs")
    if args.out is not None:
        result.save(args.out, overwrite=args.force)
    diag = result.diagnostics()
    if args.json:
        common.print_json({**result.to_dict(args.prob), "out": str(args.out) if args.out else None})
    else:
        print(heading)
        print(common.format_table(result.summary(args.prob)))
        if len(metrics) > 1:
            print(f"diagnostics: max R-hat {diag.max_r_hat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
                  f"{diag.divergences} divergences" + ("" if diag.ok else " (NOT converged: sample longer with "
                                                         "--draws/--tune, or fit fewer tasks)"))
        if args.out is not None:
            print(f"saved to {args.out}; use it with `bayes-scaling forecast FIT.nc --N .. --D .. --downstream "
                  f"{args.out}`")
    return 0 if not args.strict or diag.ok else 1


def add_parser(sub: Any) -> None:
    """Add the ``fit-downstream`` command to the sub-command parsers ``sub``."""
    from bayes_scaling.downstream import LINKS, TASK_SAMPLING, fit_downstream
    from bayes_scaling.inference import Sampling

    p = sub.add_parser("fit-downstream", help="fit a benchmark metric (an error) as a function of the loss")
    common.add_data(p)
    p.add_argument("--metric", required=True,
                   help="the metric column: an error in [0, 1] (1 - accuracy); several (comma-separated names or "
                   "patterns such as 'err_*', which pick the columns that have items_<column>) give one pooled fit "
                   "across tasks")
    form = common.default_of(fit_downstream, "form")
    p.add_argument("--form", choices=list(LINKS), default=form, help=f"link form (default {form})")
    p.add_argument("--chance", default=None,
                   help="chance error, a number or a column (default: the column random_<metric>, else the largest)")
    p.add_argument("--items", type=int, default=None,
                   help="test items per value: binomial noise (default for several tasks: the items_<metric> columns)")
    p.add_argument("--loss-column", default="loss", metavar="COLUMN",
                   help="the loss the link reads (default loss; a per-task loss such as bpb_<task> chains "
                        "(N, D) -> task loss -> error with a loss fit of that column)")
    p.add_argument("--out", type=Path, default=None, help="save the link fit to this netCDF file")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    common.add_prob(p)
    common.add_json(p)
    common.add_sampling(p, law_options=False,
                        draws_default=f"{Sampling().draws} for one metric, {TASK_SAMPLING.draws} for several")
    p.set_defaults(func=run)
