"""The point-fit baseline: Chinchilla's Huber loss on log residuals minimised with L-BFGS (and Epoch's bootstrap).

Hoffmann et al. (2022, approach 3) and Besiroglu et al. (2024) fit
``log L ≈ logsumexp(a − α log N, b − β log D, e)`` (A = e^a, B = e^b, E = e^e) by minimising the
Huber loss (δ = 1e-3) of the log residuals with L-BFGS from a grid of starting points; Epoch AI
gets intervals by refitting bootstrap resamples of the runs. This module is that workflow, used as the
baseline in backtests and benchmarks.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.data import DataWarning, load_sweep
from bayes_scaling.threads import serial_blas

__all__ = ["PointFit", "bootstrap_point_fit", "huber_point_fit"]

#: Epoch AI's start grid (Besiroglu et al. 2024): e, a, b, alpha, beta.
START_GRID = (
    np.arange(-1.0, 1.5, 0.5),
    np.arange(0.0, 30.0, 5.0),
    np.arange(0.0, 30.0, 5.0),
    np.arange(0.0, 2.5, 0.5),
    np.arange(0.0, 2.5, 0.5),
)


@dataclass(frozen=True)
class PointFit:
    """Chinchilla-law point estimate: E, A, B, alpha, beta and the objective value."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float

    def predict(self, N: Any, D: Any) -> np.ndarray:
        """Loss (nats/token) at (N, D)."""
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def to_dict(self) -> dict[str, float]:
        """Plain dict of the parameters and objective."""
        return {k: float(getattr(self, k)) for k in ("E", "A", "B", "alpha", "beta", "objective")}


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    """Huber loss of log residuals (summed) and its gradient for theta = (e, a, b, alpha, beta)."""
    e, a, b, alpha, beta = theta
    t = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = t.max(axis=0)
    w = np.exp(t - top)
    total = w.sum(axis=0)
    pred = top + np.log(total)
    r = pred - log_l
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.where(small, r, delta * np.sign(r))
    soft = w / total  # d pred / d term
    grad = np.array([
        (dr * soft[2]).sum(),
        (dr * soft[0]).sum(),
        (dr * soft[1]).sum(),
        -(dr * soft[0] * log_n).sum(),
        -(dr * soft[1] * log_d).sum(),
    ])
    return loss, grad


def huber_point_fit(data: Any, *, delta: float = 1e-3, n_best_starts: int = 10) -> PointFit:
    """Fit the Chinchilla law by Huber loss on log residuals with L-BFGS (Hoffmann et al.; Epoch AI).

    The objective is evaluated on Epoch's full start grid (3,600 points here), and L-BFGS is run
    from the ``n_best_starts`` best of them; the best optimum is returned.
    """
    from scipy.optimize import minimize

    sweep = load_sweep(data)
    log_n, log_d = np.log(sweep.column("N")), np.log(sweep.column("D"))
    log_l = np.log(sweep.column("loss"))
    grid = np.array(list(itertools.product(*START_GRID)))
    scores = np.array([_objective(theta, log_n, log_d, log_l, delta)[0] for theta in grid])
    best = None
    with serial_blas():
        for theta in grid[np.argsort(scores)[:n_best_starts]]:
            res = minimize(_objective, theta, args=(log_n, log_d, log_l, delta), jac=True, method="L-BFGS-B")
            if best is None or res.fun < best.fun:
                best = res
    e, a, b, alpha, beta = best.x
    return PointFit(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=float(alpha), beta=float(beta),
                    objective=float(best.fun))


def bootstrap_point_fit(
    data: Any, *, n_boot: int = 100, seed: int | np.random.Generator | None = 0, **kwargs: Any
) -> pd.DataFrame:
    """Epoch AI's intervals: refit ``n_boot`` resamples (with replacement) of the runs; one row per resample."""
    sweep = load_sweep(data)
    rng = np.random.default_rng(seed)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # resamples repeat runs by design
        for _ in range(n_boot):
            idx = rng.integers(0, len(sweep), len(sweep))
            rows.append(huber_point_fit(sweep.frame.iloc[idx].reset_index(drop=True), **kwargs).to_dict())
    return pd.DataFrame(rows)
