"""``bayes-scaling report``: write an HTML + Markdown report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling import workflows
from bayes_scaling.cli import common


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    laws = [name.strip() for name in args.laws.split(",") if name.strip()]
    n_values, d_values = args.N or [], args.D or []
    if len(n_values) != len(d_values):
        raise ValueError(f"give one --D per --N (got {len(n_values)} --N and {len(d_values)} --D)")
    kwargs = {}
    if n_values:
        kwargs["points"] = list(zip(n_values, d_values, strict=True))
    if args.C:
        kwargs["budgets"] = args.C
    if args.downstream is not None:
        from bayes_scaling.downstream import load_downstream

        kwargs["downstream"] = load_downstream(args.downstream)  # read before any fitting
    if args.curves is not None:
        from bayes_scaling.curves import load_curves

        kwargs["curves"] = load_curves(args.curves)
    sweep = common.load_data(args)
    common.say(args, f"fitting {', '.join(laws)} on {len(sweep)} runs for the report ...")
    report = common.quietly(workflows.make_report, sweep, args.out, laws=laws, prob=args.prob,
                      fit_kwargs=common.sampling_kwargs(args), overwrite=args.force, **kwargs)
    if args.json:
        common.print_json({"html": str(report.html), "markdown": str(report.markdown), "figures": list(report.figures),
                     "diagnostics": {name: f.diagnostics().to_dict() for name, f in report.fits.items()}})
    else:
        print(f"wrote {report.html} and {report.markdown}")
    return common.strict_status(dict(report.fits), args)


def add_parser(sub: Any) -> None:
    """Add the ``report`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("report", help="write an HTML + Markdown report with figures for a sweep")
    common.add_data(p)
    laws_default = ",".join(common.REPORT_LAWS)
    p.add_argument("--laws", default=laws_default,
                   help=f"comma-separated laws; the first is the main one (default {laws_default})")
    p.add_argument("--out", type=Path, required=True,
                   help="folder to write: new, empty, or holding an earlier report (never '.' or the input's folder)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier report in --out (only the files it wrote; other files are never removed)")
    p.add_argument("--N", type=common.positive_float, action="append", help="forecast point: parameters (repeat)")
    p.add_argument("--D", type=common.positive_float, action="append", help="forecast point: tokens (one per --N)")
    p.add_argument("--C", type=common.positive_float, action="append", help="budget for the allocation table (repeat)")
    p.add_argument("--downstream", type=Path, default=None, metavar="LINK.nc",
                   help="add a section on a benchmark metric through the loss (a file from `fit-downstream --out`)")
    p.add_argument("--curves", type=Path, default=None, metavar="CURVES.nc",
                   help="add a section on loss curves: where each run ends (a file from `curve fit --out`)")
    common.add_prob(p)
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
