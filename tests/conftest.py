"""Shared fixtures: headless matplotlib, session-scoped small real fits reused by many tests."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from bayes_scaling.threads import single_blas_environment

# One BLAS thread in the test processes, as the command line runs (bayes_scaling.threads): set before NumPy loads,
# and inherited by pytest-xdist's workers, which start after this file is read.
single_blas_environment()

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

matplotlib.use("Agg")
threadpool_limits(1, user_api="blas")  # NumPy may have loaded before this file (by a plugin): limit it now too

# No test starts the background worker of the command line unless it says so (tests/test_worker.py does).
os.environ["BAYES_SCALING_WORKER"] = "off"

import bayes_scaling as bs  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHINCHILLA_CSV = SHARED_DATA / "chinchilla_epoch" / "data.csv"


def _skip_without(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"needs the real public sweeps in ../shared/data beside the project; {path} is absent")


def shared_root() -> Path:
    """The shared data folder; skips the test (saying why, in one line) when it is absent."""
    _skip_without(SHARED_DATA / "README.md")
    return SHARED_DATA


def shared_csv(name: str) -> Path:
    """Path of a shared real sweep; skips the test (saying why, in one line) when it is absent."""
    path = SHARED_DATA / name / "data.csv"
    _skip_without(path)
    return path


@pytest.fixture(scope="session")
def demo_fit() -> bs.Fit:
    """Chinchilla law on the embedded demo sweep (generated from known parameters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        return bs.fit(bs.load_demo(), law="chinchilla", draws=500, tune=500, chains=2, seed=11)


@pytest.fixture(scope="session")
def chinchilla_csv() -> Path:
    """The real reconstructed Chinchilla sweep (skips when ../shared/data is absent)."""
    return shared_csv("chinchilla_epoch")


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_csv: Path) -> bs.Fit:
    """Chinchilla law on the real 245-run sweep."""
    return bs.fit(chinchilla_csv, law="chinchilla", draws=500, tune=700, chains=4, seed=1)


def chinchilla_like(n_runs: int = 24) -> pd.DataFrame:
    """A small Chinchilla-like sweep (N 7e7-1.6e10, about 20 tokens per parameter, 1% scatter), for unit checks."""
    rng = np.random.default_rng(0)
    n = np.geomspace(7e7, 1.6e10, n_runs)
    d = 20 * n * rng.uniform(0.5, 2, n_runs)
    loss = 1.82 + 482 / n**0.348 + 2085 / d**0.366
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, 0.01, n_runs))})


def synthetic_residuals(kappa: float, n: int, seed: int = 0, sigma: float = 0.003):
    """Forward-chaining residuals whose error grows as ``kappa`` per unit of distance (for the term's tests)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 1.5, n)
    return pd.DataFrame({"fold": rng.integers(0, 5, d.size), "size": np.arange(d.size), "distance": d,
                         "residual": rng.normal(0, np.sqrt(sigma**2 + (kappa * d) ** 2)), "var_param": 0.0,
                         "sigma": sigma, "nu": np.inf})
