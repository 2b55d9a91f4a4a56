"""``bayes-scaling suggest``: which runs to train next within a FLOP budget."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_scaling.cli import common


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling.design import suggest_runs
    from bayes_scaling.posterior import load_fit as load

    if args.optimal_at is not None:
        if args.N is not None or args.D is not None:
            raise ValueError("give either --N and --D (the loss of that run) or --optimal-at C, not both")
        target: dict[str, float] = {"C": args.optimal_at}
    elif args.N is None or args.D is None:
        raise ValueError("give the target: --N and --D (the loss of that run) or --optimal-at C (compute-optimal N)")
    else:
        target = {"N": args.N, "D": args.D}
    if args.downstream is not None:
        from bayes_scaling.downstream import load_downstream

        if "C" in target:
            raise ValueError("--downstream needs the run as --N and --D, not --optimal-at")
        link = load_downstream(args.downstream)
        if not hasattr(link, "metric"):
            raise ValueError(f"--downstream {args.downstream} holds a fit of several tasks; give one link fit")
        target["downstream"] = link
    candidates = None
    if args.candidates is not None:
        if not args.candidates.is_file():
            raise ValueError(f"--candidates: no such file {args.candidates}")
        candidates = pd.read_csv(args.candidates)
    result = common.one_group(load(args.fit), args)
    suggestion = suggest_runs(result, args.budget, target, candidates=candidates, k=args.k, prob=args.prob,
                              seed=args.seed)
    if args.json:
        common.print_json(suggestion.to_dict())
        return 0
    print(suggestion.sentence())
    if suggestion.info["low_ess"]:
        print("note: the reweighted draws are few (ESS below 100); the expected widths are rough: refit after "
              "the first runs and ask again")
    if len(suggestion.runs):
        print("\nSuggested runs, in order (expected_*: the target's interval once this and the earlier runs are in):")
        print(common.format_table(suggestion.runs))
    print("\nSame-cost designs:")
    print(common.format_table(suggestion.baselines.set_index("design")))
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``suggest`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("suggest", help="which runs to train next within a FLOP budget to sharpen a forecast")
    p.add_argument("fit", type=Path, help="fit file written by `bayes-scaling fit --out`")
    common.add_group_label(p)
    p.add_argument("--budget", type=common.positive_float, required=True, help="FLOPs available for the new runs")
    p.add_argument("--N", type=common.positive_float, default=None,
                   help="target: the loss of a run with N parameters ..")
    p.add_argument("--D", type=common.positive_float, default=None, help=".. trained on D tokens")
    p.add_argument("--optimal-at", type=common.positive_float, default=None, metavar="C",
                   help="target instead: the compute-optimal model size at C FLOPs")
    p.add_argument("--downstream", type=Path, default=None, metavar="LINK.nc",
                   help="target instead: the benchmark error of the --N/--D run through this link fit")
    p.add_argument("--candidates", type=Path, default=None, metavar="RUNS.csv",
                   help="runs to choose from (columns N and D; default: a grid within and just beyond the sweep)")
    p.add_argument("--k", type=int, default=None, help="most runs to suggest (default: as the budget allows)")
    common.add_prob(p)
    from bayes_scaling.design import suggest_runs

    seed = common.default_of(suggest_runs, "seed")
    p.add_argument("--seed", type=common.seed_arg, default=seed,
                   help=f"seed of the simulated outcomes (default {seed})")
    common.add_json(p)
    p.set_defaults(func=run)
