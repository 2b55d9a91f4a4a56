"""``bayes-scaling compare``: compare laws (Kaplan vs Chinchilla)."""

from __future__ import annotations

import argparse
from typing import Any

from bayes_scaling import workflows
from bayes_scaling.cli import common
from bayes_scaling.comparison import DEFAULT_LAWS, DEFAULT_REGIONS


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    laws = [name.strip() for name in args.laws.split(",") if name.strip()]
    fit_kwargs = common.sampling_kwargs(args)
    sweep = common.load_data(args)
    common.say(args, f"comparing {', '.join(laws)} on {len(sweep)} runs ...")
    result = common.quietly(
        workflows.compare_hypotheses,
        sweep,
        laws,
        regions=args.region or DEFAULT_REGIONS,
        prob=args.prob,
        extrapolation=not args.no_extrapolation,
        cutoff_N=args.cutoff_N,
        fit_kwargs={**fit_kwargs, "warn": False},
    )
    if args.json:
        common.print_json(result.to_dict())
        return common.strict_status(result.fits, args)
    print("In-sample comparison (PSIS-LOO on log-loss, stacking weights):")
    print(common.format_table(result.loo))
    if result.extrapolation is not None:
        print("\nExtrapolation (fit on the smaller models, score the held-out larger runs):")
        print(common.format_table(result.extrapolation))
    if result.exponents is not None:
        print(f"\nCompute-optimal exponents under {result.exponents_law} (N_opt ~ C^a, D_opt ~ C^b):")
        print(common.format_table(result.exponents))
    for name, f in result.fits.items():
        if not f.diagnostics().ok:
            print(f"warning: fit of {name}: {'; '.join(f.diagnostics().problems)}")
    print("\nVerdict: " + result.verdict)
    return common.strict_status(result.fits, args)


def add_parser(sub: Any) -> None:
    """Add the ``compare`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("compare", help="compare laws (Kaplan vs Chinchilla) by LOO, extrapolation and exponents")
    common.add_data(p)
    p.add_argument("--laws", default=",".join(DEFAULT_LAWS),
                   help=f"comma-separated laws (default {','.join(DEFAULT_LAWS)})")
    p.add_argument("--region", action="append", metavar="EXPR",
                   help="exponent region to report, e.g. 'a > 0.6' or '|a - 0.5| < 0.05' (repeatable)")
    common.add_prob(p)
    common.add_cutoff(p, "for the extrapolation score")
    p.add_argument("--no-extrapolation", action="store_true", help="skip the leave-largest-out refits")
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
