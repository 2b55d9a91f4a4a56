"""``bayes-scaling laws``: list the laws."""

from __future__ import annotations

import argparse
from typing import Any

from bayes_scaling.cli import common


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling.laws import laws

    registry = laws()
    if args.json:
        common.print_json({
            name: {
                "title": law.title,
                "formula": law.formula,
                "citation": law.citation,
                "columns": list(law.columns),
                "params": {p: law.default_priors[p].to_dict() for p in law.param_names},
            }
            for name, law in registry.items()
        })
    else:
        print("\n\n".join(law.describe() for law in registry.values()))
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``laws`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("laws", help="list the available laws with formulas and default priors")
    common.add_json(p)
    p.set_defaults(func=run)
