"""One in-memory cache of compiled models, shared by every sampler (nutpie, nutpie-jax, Laplace).

Compiling a PyMC model to numba or JAX takes ~10 s, sampling it ~1 s. Every number that depends on the sweep is a
``pm.Data`` container (see :mod:`bayes_scaling.model`), so a model compiled once can be reused for another sweep
of the same structure, of any number of runs, by pointing it at the new data (tested to give the draws of a fresh
compile). Entries are keyed by what fixes the structure: the caller's key (law, priors, likelihood) plus the
backend (``"nutpie-numba"``, ``"nutpie-jax"`` with the data shapes, ``"laplace"``), and the least recently used
entry is dropped beyond :data:`CACHE_SIZE`.

**Same seed, same draws.** Every model is compiled with exact IEEE arithmetic (:func:`exact_math`: PyTensor's
``numba__fastmath`` off). With fastmath, LLVM may reorder sums and fuse multiply-adds differently in a kernel compiled
fresh and in the same kernel loaded from PyTensor's on-disk cache, so the same seed gave different draws depending
on what had been compiled before (on the pooled fit of ``tests/test_hierarchical.py``: sd of alpha 0.0344 with a cold
cache, 0.0360 with a warm one). MCMC amplifies any rounding difference into other draws. Without fastmath the two
agree to the bit; sampling the 245-run Chinchilla sweep took as long (1.2 s against 1.2-1.4 s for 4 x 2000 steps).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CACHE_SIZE", "cached", "clear_compiled_cache", "exact_math"]

#: How many compiled models to keep in memory (all backends together).
CACHE_SIZE = 48

_CACHE: OrderedDict[Hashable, Any] = OrderedDict()


def cached(backend: str, key: Hashable | None, build: Callable[[], Any], rebind: Callable[[Any], Any]) -> Any:
    """The compiled object of ``backend`` for ``key``: ``rebind(entry)`` on a hit, else ``build()`` (then stored).

    ``rebind`` points a cached entry at the current model's data and returns what the caller uses. A ``None`` key
    never caches.
    """
    if key is None:
        with exact_math():
            return rebind(build())
    full = (backend, key)
    if full in _CACHE:
        _CACHE.move_to_end(full)
    else:
        with exact_math():
            _CACHE[full] = build()
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return rebind(_CACHE[full])


def clear_compiled_cache() -> None:
    """Forget every compiled model, NUTS and Laplace (the next fit of each law compiles again)."""
    _CACHE.clear()


@contextmanager
def exact_math() -> Iterator[None]:
    """Compile inside this block with IEEE arithmetic (no fastmath), so that draws do not depend on the cache.

    See the module docstring. Only PyTensor's flag is changed, for the duration of the block.
    """
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False):
        yield
