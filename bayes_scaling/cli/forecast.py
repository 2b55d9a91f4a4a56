"""``bayes-scaling forecast``: forecast the loss (and a benchmark through a link) at new points."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling.cli import common
from bayes_scaling.forecast import forecast as _forecast_function


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling.posterior import load_fit as load

    points = common.points_of(args)
    result = common.one_group(load(args.fit), args)
    link = None
    if args.downstream is not None:
        from bayes_scaling.downstream import load_downstream

        link = load_downstream(args.downstream)
        if "N" not in points or "D" not in points:
            raise ValueError("--downstream forecasts need --N and --D")
    table = result.forecast(**points, prob=args.prob, seed=args.seed)
    warnings_ = common.warn_range(table)
    metric = None
    if link is not None:
        from bayes_scaling.downstream import TaskFit, chain, task_table

        if isinstance(link, TaskFit):
            metric = task_table(link, fit=result, N=points["N"], D=points["D"], prob=args.prob, seed=args.seed)
        else:
            metric = chain(result, link, N=points["N"], D=points["D"], prob=args.prob, seed=args.seed)
    if args.json:
        payload = {"law": result.law.name, "prob": args.prob, **table.to_payload("points"), "warnings": warnings_}
        if metric is not None:
            about = ({"tasks": link.metrics} if hasattr(link, "metrics") else
                     {"metric": link.metric, "form": link.link.name, "chance": link.chance})
            payload["downstream"] = {**about, **metric.to_payload("points")}
        common.print_json(payload)
    else:
        print(f"forecast from {args.fit} (law {result.law.name}); intervals {args.prob:.0%}, loss in nats/token; "
              "sd_params, sd_extrapolation: sd of log-loss from the parameters and from extrapolating beyond the "
              "sweep; scatter_scale, scatter_68: the run scatter's scale and the half-width of its central 68%; "
              "decades_*: distance outside the sweep; direction: the way it goes beyond the sweep most")
        print(common.format_table(table))
        if metric is not None and hasattr(link, "metrics"):
            print(f"\n{len(link.metrics)} tasks through the loss (pooled links from {args.downstream}): expected "
                  f"error (median, lower/upper) and one evaluation (pred_*), {args.prob:.0%} intervals; "
                  "p_above_chance: probability of being 2 points or more under the chance error; leave_loss: the "
                  "loss below which the task is (inf: at any loss, -inf: never)")
            print(common.format_table(metric))
        elif metric is not None:
            print(f"\n{link.metric} through the loss ({link.link.name} link from {args.downstream}; chance "
                  f"{link.chance:.3g}): median with {args.prob:.0%} credible (lower/upper) and predictive "
                  "(pred_*) intervals")
            print(common.format_table(metric))
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``forecast`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("forecast", help="forecast the loss at new (N, D) points from a saved fit")
    p.add_argument("fit", type=Path, help="fit file written by `bayes-scaling fit --out`")
    common.add_group_label(p)
    p.add_argument("--N", type=common.positive_float, action="append", help="parameters (repeat for more points)")
    p.add_argument("--D", type=common.positive_float, action="append", help="tokens (one per --N)")
    p.add_argument("--C", type=common.positive_float, action="append", help="FLOPs (for compute-only laws)")
    p.add_argument("--experts", type=common.positive_float, action="append",
                   help="experts per routed layer, 1 = dense (for the routing law; one per --N)")
    common.add_prob(p)
    seed = common.default_of(_forecast_function, "seed")
    p.add_argument("--seed", type=common.seed_arg, default=seed, help=f"seed of the predictive noise (default {seed})")
    p.add_argument("--downstream", type=Path, default=None, metavar="LINK.nc",
                   help="also forecast a benchmark metric through the loss (a file from `fit-downstream --out`)")
    common.add_json(p)
    p.set_defaults(func=run)
