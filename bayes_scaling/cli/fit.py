"""``bayes-scaling fit``: fit a law to a sweep (one sweep, or pooled with --group)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling import fitting
from bayes_scaling.approx import METHODS
from bayes_scaling.cli import common
from bayes_scaling.geometry import GEOMETRIES
from bayes_scaling.scatter import SCATTERS

#: The scatter of a fit when none is named (read from ``fit``).
SCATTER = common.default_of(fitting.fit, "scatter")
#: The coordinates NUTS samples in when none are named (read from ``fit``).
GEOMETRY = common.default_of(fitting.fit, "geometry")


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    if args.group:
        if args.method != "nuts":
            raise ValueError("--method laplace is for single fits; a hierarchical fit (--group) uses NUTS")
        if args.scatter != SCATTER:
            raise ValueError("--scatter edges is for single fits; a hierarchical fit (--group) has one scatter per "
                             "group")
        return _fit_hierarchical(args)
    sweep = common.load_data(args)
    common.say(args, f"fitting {len(sweep)} runs with {args.law} ({args.method}) ...")
    result = common.quietly(fitting.fit, sweep, law=args.law, method=args.method, warn=False,
                            scatter=args.scatter, geometry=args.geometry, **common.sampling_kwargs(args))
    if args.out is not None:
        result.save(args.out, overwrite=args.force)
    common.print_fit(result, args.json)
    if args.out is not None and not args.json:
        print(f"saved to {args.out}")
    return common.strict_status(result, args)


def _fit_hierarchical(args: argparse.Namespace) -> int:
    from bayes_scaling.hierarchical import fit_hierarchical

    shared = [n.strip() for n in args.shared.split(",") if n.strip()] if args.shared else None
    sweep = common.load_data(args)
    common.say(args, f"fitting {len(sweep)} runs with {args.law}, pooled across the groups of {args.group!r} ...")
    result = common.quietly(fit_hierarchical, sweep, args.group, law=args.law, shared=shared, warn=False,
                            geometry=args.geometry, **common.sampling_kwargs(args))
    if args.out is not None:
        result.save(args.out, overwrite=args.force)
    return common.report_fit(result, args, f"law {result.law.name}: {result.law.formula}; shared across "
                             f"{len(result.groups)} groups of {args.group!r}: {', '.join(result.shared)}",
                             "; forecast or plan one group with --group-label LABEL")


def add_parser(sub: Any) -> None:
    """Add the ``fit`` command to the sub-command parsers ``sub``."""
    from bayes_scaling.laws import laws

    p = sub.add_parser("fit", help="fit a law to a sweep CSV and print the parameter table")
    common.add_data(p)
    p.add_argument("--law", default=common.LAW, choices=list(laws()), metavar="LAW",
                   help=f"law to fit (see `bayes-scaling laws`; default {common.LAW})")
    p.add_argument("--out", type=Path, default=None, help="save the fit to this netCDF file")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--group", default=None, metavar="COLUMN",
                   help="hierarchical fit across the groups of this column: exponents shared, E and term "
                   "levels partially pooled")
    p.add_argument("--shared", default=None, metavar="NAMES",
                   help="with --group: comma-separated parameters shared by all groups (default: the exponents)")
    p.add_argument("--method", choices=METHODS, default=common.METHOD,
                   help="nuts (default), or laplace: a fast Gaussian APPROXIMATION for quick looks at large sweeps")
    p.add_argument("--scatter", choices=SCATTERS, default=SCATTER,
                   help=f"run-to-run scatter: one sigma everywhere, or growing toward the sweep's edges (tokens per "
                        f"parameter, size) (default {SCATTER})")
    p.add_argument("--geometry", choices=GEOMETRIES, default=GEOMETRY,
                   help=f"coordinates NUTS samples in, the same model: the loss level and local slopes at the "
                        f"reference point (slopes), or the law's own parameters (natural) (default {GEOMETRY})")
    common.add_json(p)
    common.add_sampling(p)
    p.set_defaults(func=run)
