"""``bayes-scaling demo``: the embedded demo sweep, answered in words."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from bayes_scaling import fitting
from bayes_scaling.cli import common
from bayes_scaling.datasets import DEMO_QUESTION, DEMO_TRUE_PARAMS


def _sentence(row: pd.Series, prob: float) -> str:
    return (
        f"A {row['N'] / 1e9:g}B-parameter model trained on {row['D'] / 1e12:g}T tokens is expected to reach "
        f"a loss of {row['median']:.3f} nats/token (median); its expected loss lies in [{row['lower']:.3f}, "
        f"{row['upper']:.3f}] with {prob:.0%} probability, and one training run would land in "
        f"[{row['pred_lower']:.3f}, {row['pred_upper']:.3f}] ({prob:.0%} predictive interval). Spread of the "
        f"log-loss: {row['sd_params']:.2%} from the parameters, {row['sd_extrapolation']:.2%} for extrapolating "
        f"{row['decades_out']:.1f} decades beyond the sweep, {row['scatter_68']:.2%} run-to-run scatter (half-width "
        f"of its central 68%; scale sigma {row['scatter_scale']:.2%})."
    )


def _demo_question() -> str:
    n, d = DEMO_QUESTION
    return f"What loss will a {n / 1e9:g}B model trained on {d / 1e12:g}T tokens reach?"


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling.datasets import demo_path

    n, d = DEMO_QUESTION
    common.say(args, "fitting the demo sweep with chinchilla (the first fit compiles the model: about 10 s) ...")
    result = common.quietly(fitting.fit, demo_path(), law="chinchilla", warn=False, **common.sampling_kwargs(args))
    table = result.forecast(N=n, D=d, prob=args.prob)
    if args.json:
        payload = result.to_dict(args.prob)
        payload["question"] = _demo_question()
        payload["forecast"] = table.to_payload()["rows"][0]
        common.print_json(payload)
        return common.strict_status(result, args)
    truth = ", ".join(f"{k}={v:.4g}" for k, v in DEMO_TRUE_PARAMS.items())
    print(f"Demo: the Chinchilla law fitted to the embedded synthetic sweep (generated from {truth}).")
    common.print_fit(result, False)
    print()
    print("Q: " + _demo_question())
    print("A: " + _sentence(table.iloc[0], args.prob))
    return common.strict_status(result, args)


def add_parser(sub: Any) -> None:
    """Add the ``demo`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("demo", help="fit the embedded demo sweep and forecast a 100B model on 2T tokens")
    common.add_prob(p)
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
