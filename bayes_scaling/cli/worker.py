"""``bayes-scaling worker status|stop``: the background worker that keeps compiled models between commands.

``worker serve`` is what the command line's client starts (:mod:`bayes_scaling.worker`); not for typing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling.cli import common
from bayes_scaling.cli.common import positive_float


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    from bayes_scaling import worker

    if args.action == "serve":
        if args.socket is None:
            raise ValueError("worker serve needs --socket PATH")
        worker.serve(args.socket, args.run_cli, idle=args.idle or worker.idle_seconds())
        return 0
    if args.action == "stop":
        stopped = worker.stop()
        if args.json:
            common.print_json({"stopped": stopped})
        else:
            print("worker stopped" if stopped else "no worker is running")
        return 0
    state = worker.status()
    if args.json:
        common.print_json({"running": state is not None, "enabled": worker.enabled(),
                           "socket": str(worker.socket_path()), **(state or {})})
    elif state is None:
        when = "it starts with the next fit" if worker.enabled() else f"off: ${worker.ENV_SWITCH}"
        print(f"no worker is running ({when}); socket {worker.socket_path()}")
    else:
        print(f"worker {state['pid']}: {state['served']} commands served, ends after {state['idle_seconds']:g} s "
              f"idle; socket {state['socket']}")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``worker`` command to the sub-command parsers ``sub``."""
    p = sub.add_parser("worker", help="show or stop the background worker that keeps compiled models (fast "
                       "second fits)")
    p.add_argument("action", choices=("status", "stop", "serve"),
                   help="status: is one running; stop: end it now (serve: what the client starts)")
    p.add_argument("--socket", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--idle", type=positive_float, default=None, help=argparse.SUPPRESS)
    common.add_json(p)
    p.set_defaults(func=run)
