"""``bayes-scaling plan``: plan a run with uncertainty."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_scaling import planning
from bayes_scaling.cli import common
from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.intervals import interval_statement


def _print_plan(title: str, table: pd.DataFrame, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    warnings_ = common.warn_range(table) if "decades_out" in table.columns else []
    if as_json:
        common.print_json({"question": title, **(extra or {}), **table.to_payload(), "warnings": warnings_})
        return
    print(title)
    print(f"  ({interval_statement(table)}; loss: expected, credible interval; one run: predictive interval of a "
          "training run; both include the extrapolation term of the distance beyond the sweep)")
    for _, row in table.iterrows():
        names = [c for c in table.columns if not c.endswith(("_lower", "_upper", "_sd_extrapolation"))]
        for name in names:
            value = row[name]
            if f"{name}_lower" in table.columns:
                line = f"  {name:>20}: {value:.4g}  [{row[f'{name}_lower']:.4g}, {row[f'{name}_upper']:.4g}]"
                if f"{name}_pred_lower" in table.columns:
                    line += f"  one run [{row[f'{name}_pred_lower']:.4g}, {row[f'{name}_pred_upper']:.4g}]"
                print(line)
            else:
                print(f"  {name:>20}: {value:.4g}" if isinstance(value, float) else f"  {name:>20}: {value}")
        print()


def _budget(args: argparse.Namespace) -> list[float]:
    budgets = list(args.C or [])
    if args.gpus is not None or args.days is not None:
        if args.gpus is None or args.days is None:
            raise ValueError("give both --gpus and --days for a hardware budget")
        budgets.append(planning.hardware_flops(args.gpus, args.days, accelerator=args.gpu, peak_flops=args.peak_flops,
                                      mfu=args.mfu))
    if not budgets:
        raise ValueError("give a budget: --C FLOPS, or --gpus and --days (with --gpu/--peak-flops and --mfu)")
    return budgets


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    if args.question == "flops":
        flops = planning.hardware_flops(args.gpus, args.days, accelerator=args.gpu, peak_flops=args.peak_flops,
                                        mfu=args.mfu)
        if args.json:
            common.print_json({"gpus": args.gpus, "days": args.days, "gpu": args.gpu, "peak_flops": args.peak_flops,
                         "mfu": args.mfu, "flops": flops})
        else:
            print(f"{args.gpus:g} GPUs x {args.days:g} days at MFU {args.mfu:g}: {flops:.4g} FLOPs")
        return 0
    if args.question == "isoflop":
        result = planning.isoflop_analysis(common.load_data(args), budget_column=args.budget_column, prob=args.prob,
                                           seed=args.seed)
        if args.json:
            common.print_json(result.to_dict())
        else:
            print("IsoFLOP analysis (parabola per budget; bootstrap intervals):")
            print(common.format_table(result.budgets))
            print("\nN_opt ~ C^a, D_opt ~ C^b:")
            print(common.format_table(result.exponents))
        return 0

    from bayes_scaling.posterior import load_fit as load

    result = common.one_group(load(args.fit), args)
    if args.question == "compute":
        table = planning.compute_optimal(result, _budget(args), prob=args.prob,
                                         flops_per_param_token=args.flops_per_token)
        title = "Compute-optimal allocation (N parameters, D tokens, loss in nats/token)"
    elif args.question == "tokens":
        table = planning.tokens_for_model(result, args.N, tolerance=args.tolerance, prob=args.prob)
        title = f"Tokens for a {args.N:.3g}-parameter model"
    elif args.question == "model":
        table = planning.model_for_tokens(result, args.D, tolerance=args.tolerance, prob=args.prob)
        title = f"Model size for {args.D:.3g} tokens"
    elif args.question == "gain":
        table = planning.gain(result, tuple(args.start), tuple(args.end), threshold=args.threshold, prob=args.prob)
        title = "Loss gained going from start to end (draw by draw)"
    else:
        table = planning.overtrain(result, args.target_loss, args.inference_tokens, prob=args.prob)
        title = f"Cheapest training + inference compute reaching loss {args.target_loss:g}"
    _print_plan(title, table, args.json, {"law": result.law.name, "prob": args.prob})
    return 0


def add_parser(sub: Any) -> None:
    """Add this command's parser to the sub-command parsers ``sub``."""
    plan = sub.add_parser("plan", help="plan a run with uncertainty (compute, tokens, model, gain, overtrain, ...)")
    questions = plan.add_subparsers(dest="question", required=True, metavar="QUESTION")

    def shared_options(p: argparse.ArgumentParser, *, fit: bool = True) -> None:
        if fit:
            p.add_argument("fit", type=Path, help="fit file written by `bayes-scaling fit --out`")
            common.add_group_label(p)
        common.add_prob(p)
        common.add_json(p)
        p.set_defaults(func=run)

    def hardware(p: argparse.ArgumentParser, *, required: bool) -> None:
        p.add_argument("--gpus", type=common.positive_float, required=required, help="number of accelerators")
        p.add_argument("--days", type=common.positive_float, required=required, help="wall-clock days")
        gpu = common.default_of(planning.hardware_flops, "accelerator")
        mfu = common.default_of(planning.hardware_flops, "mfu")
        p.add_argument("--gpu", default=gpu, choices=list(planning.PEAK_FLOPS),
                       help=f"peak-throughput preset (default {gpu})")
        p.add_argument("--peak-flops", type=common.positive_float, default=None, help="peak FLOP/s (overrides --gpu)")
        p.add_argument("--mfu", type=common.prob_arg, default=mfu, help=f"model FLOP utilisation (default {mfu:g})")

    p = questions.add_parser("compute", help="compute-optimal N, D, tokens/param and loss for FLOP budgets")
    p.add_argument("--C", type=common.positive_float, action="append", help="budget in FLOPs (repeatable)")
    p.add_argument("--flops-per-token", type=common.positive_float, default=FLOPS_PER_PARAM_TOKEN,
                   help=f"k in C = k N D (default {FLOPS_PER_PARAM_TOKEN:g})")
    hardware(p, required=False)
    shared_options(p)
    for question, given, answer, what in (("tokens", "N", planning.tokens_for_model, "tokens for a model size"),
                                          ("model", "D", planning.model_for_tokens, "model size for a token budget")):
        p = questions.add_parser(question, help=what)
        p.add_argument(f"--{given}", type=common.positive_float, required=True,
                       help="parameters" if given == "N" else "tokens")
        p.add_argument("--tolerance", type=common.positive_float, default=common.default_of(answer, "tolerance"),
                       help=f"nats from the {given}-limited loss")
        shared_options(p)
    p = questions.add_parser("gain", help="loss gained between two (N, D) configurations")
    p.add_argument("--start", type=common.positive_float, nargs=2, required=True, metavar=("N", "D"))
    p.add_argument("--end", type=common.positive_float, nargs=2, required=True, metavar=("N", "D"))
    p.add_argument("--threshold", type=float, default=common.default_of(planning.gain, "threshold"),
                   help="report P(gain > threshold) (nats)")
    shared_options(p)
    p = questions.add_parser("overtrain", help="N, D reaching a target loss at least training + inference compute")
    p.add_argument("--target-loss", type=common.positive_float, required=True, help="nats/token")
    p.add_argument("--inference-tokens", type=float, required=True, help="tokens served over the model's life")
    shared_options(p)
    p = questions.add_parser("flops", help="turn a GPU budget into FLOPs")
    hardware(p, required=True)
    shared_options(p, fit=False)
    p = questions.add_parser("isoflop", help="IsoFLOP analysis of a sweep with several runs per budget")
    common.add_data(p)
    p.add_argument("--budget-column", default=None, help="column naming each run's budget (default: group by C)")
    p.add_argument("--seed", type=common.seed_arg, default=common.default_of(planning.isoflop_analysis, "seed"),
                   help="bootstrap seed")
    shared_options(p, fit=False)
