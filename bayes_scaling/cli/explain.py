"""``bayes-scaling explain``: why Kaplan and Chinchilla disagree."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling import workflows
from bayes_scaling.cli import common


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    counts = [c.strip() for c in args.counts.split(",") if c.strip()] if args.counts else None
    sweep = common.load_data(args)
    common.say(args, f"explaining a on {len(sweep)} runs (several fits) ...")
    result = common.quietly(workflows.explain, sweep, by=args.by, counts=counts, window=args.window, law=args.law,
                      prob=args.prob, fit_kwargs=common.sampling_kwargs(args))
    if args.report is not None:
        report = common.quietly(workflows.make_report, sweep, args.report, laws=[args.law], prob=args.prob,
                          fit_kwargs=common.sampling_kwargs(args), overwrite=args.force, explanation=result)
        if not args.json:
            print(f"wrote {report.html} and {report.markdown}")
    if args.json:
        common.print_json(result.to_dict())
        return 0
    print("Why Kaplan (a = 0.73) and Chinchilla (a = 0.5) disagree, on this sweep (N_opt ~ C^a, "
          f"{args.prob:.0%} intervals):")
    for line in result.verdict():
        print(f"- {line}")
    for title, table in (("Parameter counting", result.counting), ("a by compute window", result.windows),
                         ("a by setup", result.protocol), ("Protocol changes", result.effects)):
        if table is not None and len(table):
            print(f"\n{title}:")
            print(common.format_table(table))
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``explain`` command to the sub-command parsers ``sub``."""
    from bayes_scaling.laws import laws

    p = sub.add_parser("explain", help="why Kaplan and Chinchilla disagree: counting, compute range, protocol")
    common.add_data(p)
    p.add_argument("--by", default=None, help="column naming each run's setup (training protocol)")
    p.add_argument("--counts", default=None, metavar="COL,COL",
                   help="parameter-count columns to compare as N, e.g. N_total,N_nonembed")
    window = common.default_of(workflows.explain, "window")
    p.add_argument("--window", type=int, default=window,
                   help=f"distinct budgets per rolling compute window (default {window})")
    p.add_argument("--law", default=common.default_of(workflows.explain, "law"), choices=list(laws()), metavar="LAW",
                   help="a law with compute-optimal exponents (default chinchilla)")
    p.add_argument("--report", type=Path, default=None, metavar="OUT",
                   help="also write a report (the law's fit and this explanation) into this folder")
    p.add_argument("--force", action="store_true", help="replace an earlier report in --report")
    common.add_prob(p)
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
