"""``bayes-scaling datasets``: list or load the public reference sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling.cli import common


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling import datasets

    if args.name is None:
        table = datasets.available()
        if args.json:
            common.print_json([datasets.info(name).to_dict() for name in table.index])
        else:
            print(common.format_table(table[["rows", "groups", "downloadable", "title"]]))
        return 0
    from bayes_scaling.outputs import write_file

    entry = datasets.info(args.name)
    load = datasets.load_curves if args.curves else datasets.load
    frame = load(args.name, path=args.path, query=args.query, download=not args.no_download)
    if args.curves:
        entry = entry.curves or entry  # the curves table's own description (a curves dataset: itself)
    if args.out is not None:
        write_file(args.out, lambda tmp: frame.to_csv(tmp, index=False), overwrite=args.force)
    if args.json:
        common.print_json({**entry.to_dict(), "loaded_rows": len(frame), "source": frame.attrs["source"],
                     "out": str(args.out) if args.out else None})
        return 0
    for key, value in entry.to_dict().items():
        if key == "curves":  # a sweep's curves table: one line saying how to get it
            if value is not None:
                print(f"{key:>14}: {value['rows']} logged points ({value['title']}); --curves loads them")
            continue
        print(f"{key:>14}: {', '.join(value) if isinstance(value, list) else value}")
    print(f"{'loaded':>14}: {len(frame)} rows from {frame.attrs['source']}")
    if args.out is not None:
        print(f"{'written':>14}: {args.out}")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``datasets`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("datasets", help="list the public reference sweeps, or load one (--out writes a CSV)")
    p.add_argument("name", nargs="?", default=None, help="dataset name (omit to list them)")
    p.add_argument("--path", type=Path, default=None, help="local copy: CSV, dataset folder, or folder of datasets")
    p.add_argument("--query", default=None, help="pandas query selecting rows; 'default' for the recommended rows")
    p.add_argument("--no-download", action="store_true", help="never fetch; use local or cached copies only")
    p.add_argument("--curves", action="store_true",
                   help="the dataset's training-loss curves (one row per logged point; datasets.load_curves)")
    p.add_argument("--out", type=Path, default=None, help="write the table to this CSV")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    common.add_json(p)
    p.set_defaults(func=run)
