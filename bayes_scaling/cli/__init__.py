"""Command line interface ``bayes-scaling``: a thin shell over the library, one module per command.

Every sub-command takes ``--json`` for machine-readable output (the result's ``to_dict()``). Errors in the
input (bad file, columns, numbers, priors) print one line ``error: ...`` to stderr and exit with status 2; no
traceback. Each command module holds its parser (``add_parser``) and its handler (``run``); ``common``
holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bayes_scaling.cli import (
    backtest,
    compare,
    curve,
    datasets,
    demo,
    explain,
    fit,
    fit_downstream,
    forecast,
    laws,
    plan,
    recipes,
    report,
    suggest,
    worker,
)
from bayes_scaling.cli.common import Parser, chatty
from bayes_scaling.data import DataError
from bayes_scaling.priors import PriorError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "USER_ERRORS", "build_parser", "chatty", "main"]

#: The commands in the order ``--help`` lists them.
COMMANDS = (fit, forecast, suggest, fit_downstream, demo, compare, plan, backtest, explain, recipes, report, curve,
            datasets, laws, worker)


#: Exit status of a usage error.
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


#: Errors that are the user's input, reported in one line.
USER_ERRORS = (DataError, PriorError, FileExistsError, FileNotFoundError, ValueError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bayes-scaling``: each command module adds its own parser."""
    parser = Parser(
        prog="bayes-scaling",
        description="Bayesian fits, forecasts and plans from neural scaling-law sweeps.",
    )
    parser.set_defaults(run_cli=main)  # for `worker serve`, which runs command lines with it
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _input_paths(args: argparse.Namespace) -> list[Path]:
    """The files a command reads: its data (when a file), priors, fit, link, candidates, local dataset copy."""
    paths = []
    data = getattr(args, "data", None)
    if data is not None and Path(data).exists():
        paths.append(Path(data))
    for name in ("priors", "fit", "downstream", "candidates", "path"):
        value = getattr(args, name, None)
        if value is not None:
            paths.append(Path(value))
    return paths


def _preflight(args: argparse.Namespace) -> None:
    """Everything checkable before the work starts: every output path, law names and regions.

    Output files (``--out``, ``--plot``) must be new or, with ``--force``, regular files, never one of the
    command's inputs; report folders (``report --out``, ``--report``) new, empty or an earlier report.
    """
    from bayes_scaling.comparison import parse_region
    from bayes_scaling.laws import get_law
    from bayes_scaling.outputs import check_figure_target, check_file_target, check_report_folder

    inputs = _input_paths(args)
    force = getattr(args, "force", False)
    out = getattr(args, "out", None)
    if out is not None and args.command == "report":
        check_report_folder(out, overwrite=force, inputs=inputs, option="--out")
    elif out is not None:
        check_file_target(out, overwrite=force, inputs=inputs, option="--out")
    if getattr(args, "plot", None) is not None:
        check_figure_target(args.plot, overwrite=force, inputs=inputs, option="--plot")
    if getattr(args, "report", None) is not None:
        check_report_folder(args.report, overwrite=force, inputs=inputs, option="--report")
    if getattr(args, "laws", None) is not None and args.command in ("compare", "report"):
        for name in (n.strip() for n in args.laws.split(",")):
            if name:
                get_law(name)
    for region in getattr(args, "region", None) or ():
        parse_region(region)


def _one_line_warnings(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                       line: str | None = None) -> None:
    """Show a warning as one ``warning: ...`` line on stderr (no file, line number or source line)."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None, *, save_to: Path | None = None, saved: dict[str, Any] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 --strict failed, 2 bad input, 130 interrupted).

    ``save_to`` (for :mod:`bayes_scaling.worker`): after every check of the real ``--out``, write the result to
    this new file instead, and record the real path and ``--force`` in the dict ``saved``; the caller publishes it.
    """
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = _one_line_warnings
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _preflight(args)
        if save_to is not None and getattr(args, "out", None) is not None:
            if saved is not None:
                saved.update(path=str(args.out), force=bool(getattr(args, "force", False)))
            args.out, args.force = save_to, False
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped, nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `| head -1`) stopped reading: not an error. Point stdout at /dev/null so that
        # Python's flush at exit does not fail again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = shown
