"""The ``bayes-scaling`` console script: the background worker for the commands it runs, else the CLI here.

Kept apart from :mod:`bayes_scaling.cli` so that a command the worker answers (:mod:`bayes_scaling.worker`)
starts without importing the library (tens of milliseconds instead of about a second).
"""

from __future__ import annotations

import sys

from bayes_scaling import worker
from bayes_scaling.threads import single_blas_environment

__all__ = ["console_main"]


def console_main() -> None:  # pragma: no cover - the console script; tested through subprocesses
    """Run ``bayes-scaling`` with ``sys.argv``: in the worker when it runs the command and answers, else here."""
    single_blas_environment()  # before NumPy loads (one BLAS thread); inherited by the worker this may start
    argv = sys.argv[1:]
    if worker.routable(argv):
        code = worker.run_remote(argv)
        if code is not None:
            sys.exit(code)
    from bayes_scaling.cli import main

    sys.exit(main(argv))
