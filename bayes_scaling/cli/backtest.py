"""``bayes-scaling backtest``: fit on the smaller models, score the larger ones."""

from __future__ import annotations

import argparse
from typing import Any

from bayes_scaling import workflows
from bayes_scaling.cli import common


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    sweep = common.load_data(args)
    common.say(args, f"backtesting {args.law} on {len(sweep)} runs ...")
    result = common.quietly(workflows.backtest, sweep, law=args.law, cutoff_N=args.cutoff_N,
                      fit_kwargs=common.sampling_kwargs(args), point_fit=not args.no_point_fit)
    summary = result.summary()
    if args.json:
        common.print_json(result.to_dict())
    else:
        print(f"Backtest of {args.law}: fit on {summary['n_train']} runs with N < {summary['cutoff_N']:.3g}, "
              f"scored on {summary['n_holdout']} larger runs")
        print(common.format_table(result.runs))
        cover = ", ".join(f"{k.split('_')[1]}: {v:.0%}" for k, v in summary.items() if k.startswith("coverage_"))
        print(f"predictive-interval coverage ({cover}); median abs. relative error {summary['mape']:.2f}%"
              + (f" (point fit: {summary['mape_point_fit']:.2f}%)" if "mape_point_fit" in summary else ""))
    return common.strict_status(result.fit, args)


def add_parser(sub: Any) -> None:
    """Add the ``backtest`` command to the sub-command parsers ``sub``."""
    from bayes_scaling.laws import laws

    p = sub.add_parser("backtest", help="fit on the smaller models, score the held-out larger runs")
    common.add_data(p)
    p.add_argument("--law", default=common.LAW, choices=list(laws()), metavar="LAW", help=f"law (default {common.LAW})")
    common.add_cutoff(p, "to score")
    p.add_argument("--no-point-fit", action="store_true", help="skip the Huber/L-BFGS point-fit baseline")
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
