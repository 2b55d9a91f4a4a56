"""``bayes-scaling recipes``: which recipe wins at scale."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling.cli import common

#: The law ``recipes`` fits unless told otherwise: :func:`bayes_scaling.recipes.compare_recipes`' default.
RECIPES_LAW = "chinchilla"


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling.recipes import VARIANTS, compare_recipes
    from bayes_scaling.report import write_report

    sweep = common.load_data(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"--variants takes a comma-separated subset of {', '.join(VARIANTS)}; got {args.variants!r}")
    if args.interval == "none":
        interval: Any = None
    elif args.interval == "auto":
        interval = "auto"
    else:
        interval = tuple(c.strip() for c in args.interval.split(","))
        if len(interval) != 2:
            raise ValueError(f"--interval takes LOW,HIGH column names, 'auto' or 'none'; got {args.interval!r}")
    if (args.N is None) != (args.D is None) or (args.N and len(args.N) != len(args.D)):
        raise ValueError("give --N and --D together, one --D per --N")
    target = (args.N, args.D) if args.N else None
    common.say(args, f"comparing the recipes in {args.by!r} on {len(sweep)} runs ...")
    result = common.quietly(compare_recipes, sweep, by=args.by, target=target, budgets=args.C,
                            reference=args.reference, law=args.law, variants=variants, interval=interval,
                            prob=args.prob, **common.sampling_kwargs(args))
    if args.plot is not None:
        from bayes_scaling.outputs import write_file
        from bayes_scaling.plots import plot_multiplier

        ax = plot_multiplier(result.curve, reference=result.reference, data_budgets=result.info["data_budgets"],
                             prob=result.prob)
        write_file(args.plot, lambda tmp: ax.figure.savefig(tmp, dpi=110, format=args.plot.suffix.lstrip(".")
                                                            or "png"), overwrite=args.force)
    if args.report is not None:
        report = write_report({f"{args.law} ({result.reference})": result.reference_fit()}, args.report,
                              recipes=result, points=list(zip(args.N, args.D, strict=True)) if args.N else (),
                              budgets=result.budgets["C"].unique().tolist(), prob=args.prob, overwrite=args.force)
        if not args.json:
            print(f"wrote {report.html} and {report.markdown}")
    if args.json:
        common.print_json(result.to_dict())
        return common.strict_status(result.fits, args)
    print(f"Recipes in {args.by!r} against {result.reference} ({args.prob:.0%} intervals; loss in nats/token):")
    for line in result.verdict():
        print(f"- {line}")
    columns = ["C", "recipe", "loss", "loss_lower", "loss_upper", "p_best", "p_beats_reference", "diff",
               "diff_lower", "diff_upper", "multiplier", "multiplier_lower", "multiplier_upper"]
    print("\nAt FLOP budgets (compute-optimal loss of each recipe):")
    print(common.format_table(result.budgets[columns]))
    if result.target is not None:
        print("\nAt the asked points:")
        print(common.format_table(result.target))
    print("\nWhere the curves cross:")
    print(common.format_table(result.crossing))
    print("\nWhat differs between recipes (PSIS-LOO; forecasts average the variants by stacking weight):")
    print(common.format_table(result.variants))
    print("\nNoise (log-loss): scatter around the law, evaluation noise, seed noise:")
    print(common.format_table(result.noise))
    return common.strict_status(result.fits, args)


def add_parser(sub: Any) -> None:
    """Add the ``recipes`` command to the sub-command parsers ``sub``."""
    from bayes_scaling.laws import laws

    p = sub.add_parser("recipes", help="which recipe (data mix, architecture, ...) wins at scale, and by how much "
                                       "compute")
    common.add_data(p)
    p.add_argument("--by", required=True, help="column naming each run's recipe")
    p.add_argument("--reference", default=None, help="recipe to measure the others against (default: first in "
                                                     "sorted order)")
    p.add_argument("--C", type=common.positive_float, action="append", default=None,
                   help="FLOP budget to compare at (repeat; default: the data's largest, 10x and 100x)")
    p.add_argument("--N", type=common.positive_float, action="append", help="point to compare at: parameters (repeat)")
    p.add_argument("--D", type=common.positive_float, action="append", help="point to compare at: tokens (one per --N)")
    # compare_recipes' own default (not imported here, to keep the CLI's start fast; tests/test_cli.py checks)
    p.add_argument("--law", default=RECIPES_LAW, choices=list(laws()), metavar="LAW",
                   help=f"a law of N and D (default {RECIPES_LAW})")
    p.add_argument("--variants", default="E,levels,exponents",
                   help="what may differ between recipes, compared by LOO and averaged (default E,levels,exponents)")
    p.add_argument("--interval", default="auto", metavar="LOW,HIGH",
                   help="columns with a confidence interval of each loss (evaluation noise); 'auto' finds "
                        "<loss>_lo95/<loss>_hi95, 'none' ignores them")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE", help="write the multiplier plot (PNG/PDF/SVG)")
    p.add_argument("--report", type=Path, default=None, metavar="OUT", help="also write a report into this folder")
    p.add_argument("--force", action="store_true", help="replace --plot or an earlier report in --report")
    common.add_prob(p)
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
