"""One BLAS thread for the package's small linear algebra (optimizers over a handful of parameters).

NumPy and SciPy each ship OpenBLAS with a pool of threads. For the vectors and matrices of a scaling-law fit (5-10
parameters, a few hundred runs) a second thread never helps, and synchronising it costs more than the work:
SciPy's L-BFGS-B spent 0.58 ms a call in its Fortran core with two BLAS threads on a 2-core machine whose cores
were busy (the samplers' chains, another job), against 9 us with one thread (a 9-parameter Rosenbrock, 52
iterations: 85 -> 15 ms). In a default fit of the Chinchilla sweep the Laplace refits of the forward-chaining folds
took 0.95 s with the threads and 0.27 s without, the same optimum (cores busy; on idle cores the two are the same,
so nothing is lost).

:func:`serial_blas` limits both libraries to one thread for the duration of a block (the Laplace optimizer, the
point fits, the curve laws' least squares, the forward-chaining term), then restores what the caller had; the
user's own NumPy work outside those blocks keeps its threads. The command line, whose every computation is of that
size, starts its process with one BLAS thread (:func:`single_blas_environment`, unless the user set a number).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from functools import cache
from typing import Any

__all__ = ["BLAS_THREAD_VARIABLES", "serial_blas", "single_blas_environment"]

#: Environment variables that fix a BLAS library's number of threads when it loads.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_blas_environment(environ: MutableMapping[str, str] | None = None) -> bool:
    """One BLAS thread for this process and its children, unless the user set one of :data:`BLAS_THREAD_VARIABLES`.

    Takes effect in this process only before NumPy is first imported (the console script calls it first thing);
    children started later (the command line's worker) inherit it. Returns whether it set the variables.
    """
    environ = os.environ if environ is None else environ
    if any(name in environ for name in BLAS_THREAD_VARIABLES):
        return False
    for name in BLAS_THREAD_VARIABLES:
        environ[name] = "1"
    return True


@cache
def _controller() -> Any:
    # Built once, after SciPy's linear algebra is loaded (a controller only sees the libraries loaded when made).
    import scipy.linalg
    import scipy.optimize  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_LOCK = threading.Lock()
_ACTIVE = {"depth": 0, "limiter": None}


@contextmanager
def serial_blas() -> Iterator[None]:
    """Run the block with one BLAS thread in NumPy's and SciPy's OpenBLAS (or MKL), then restore the limits.

    Nested and overlapping blocks share one limit: the first to enter sets it, the last to leave restores what was
    there before the first.
    """
    with _LOCK:
        if _ACTIVE["depth"] == 0:
            _ACTIVE["limiter"] = _controller().limit(limits=1, user_api="blas")
        _ACTIVE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE["depth"] -= 1
            if _ACTIVE["depth"] == 0:
                _ACTIVE["limiter"].restore_original_limits()
                _ACTIVE["limiter"] = None
