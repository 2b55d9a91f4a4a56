"""Simulated sweeps from a law with known parameters (for recovery tests, calibration and demos)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN, centred_logs
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.likelihoods import get_noise_model

__all__ = ["optimal_loss", "reference_of", "simulate_sweep", "true_multiplier"]


def reference_of(N: np.ndarray, D: np.ndarray) -> dict[str, float]:
    """Reference scales (geometric means) a fit of runs at (N, D) will use."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    geo = lambda v: float(np.exp(np.mean(np.log(v))))  # noqa: E731
    return {"N": geo(N), "D": geo(D), "C": geo(FLOPS_PER_PARAM_TOKEN * N * D)}


def simulate_sweep(
    law: str | ScalingLaw,
    params: Mapping[str, float],
    *,
    N: np.ndarray,
    D: np.ndarray,
    unique_tokens: np.ndarray | None = None,
    sigma: float = 0.01,
    nu: float | None = None,
    seed: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Losses of runs at (N, D) from ``law`` with parameters ``params`` plus noise on log-loss.

    Parameters
    ----------
    law : str or ScalingLaw
    params : mapping
        Values of the law's sampled parameters (``law.param_names``), on the
        reference scale of these runs (see :func:`reference_of`); fixed
        parameters may be left out.
    N, D : array
        Parameters and tokens of each run.
    unique_tokens : array, optional
        Unique tokens (for ``data_constrained``).
    sigma : float
        Scale of the noise on log-loss (0.01 = 1% multiplicative).
    nu : float, optional
        Student-t degrees of freedom of the noise (Normal when ``None``).
    seed : int or Generator

    Returns
    -------
    pandas.DataFrame
        Columns N, D, C, loss (and unique_tokens).
    """
    law = get_law(law)
    values = _law_values(law, params, "simulate_sweep")
    N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
    columns = {"N": N, "D": D, "C": FLOPS_PER_PARAM_TOKEN * N * D}
    if unique_tokens is not None:
        columns["unique_tokens"] = np.broadcast_to(np.asarray(unique_tokens, float), N.shape)
    x = centred_logs(law.inputs, columns, reference_of(N, D))
    rng = np.random.default_rng(seed)
    # the same noise models as the fit's likelihood (bayes_scaling.likelihoods)
    noise_model = get_noise_model("normal" if nu is None else "student_t")
    noise_values = {"sigma": np.array([sigma], float), **({} if nu is None else {"nu": np.array([nu], float)})}
    noise = noise_model.sample(rng, noise_values, (1, N.size))[0].reshape(N.shape)
    columns["loss"] = np.exp(law.evaluate(values, x) + noise)
    return pd.DataFrame(columns)


def _law_values(law: ScalingLaw, params: Mapping[str, float], caller: str) -> dict[str, float]:
    """Every parameter of ``law``: its fixed priors' values, then ``params``; ``ValueError`` naming any missing."""
    values = {k: v.value for k, v in law.default_priors.items() if v.is_fixed}
    values.update(params)
    missing = set(law.param_names) - set(values)
    if missing:
        raise ValueError(f"{caller}: missing values for {sorted(missing)}")
    return values


def optimal_loss(law: str | ScalingLaw, params: Mapping[str, float], C: float, reference: Mapping[str, float],
                 *, span: float = 4.0, points: int = 4001) -> float:
    """The compute-optimal loss of a law with known parameters at budget ``C`` (min over N on a fine grid).

    ``params`` are on the scale of ``reference`` (as in :func:`simulate_sweep`); N is searched ``span`` decades
    either side of the Chinchilla-like split N = sqrt(C / 120).
    """
    law = get_law(law)
    values = _law_values(law, params, "optimal_loss")
    centre = np.log10(np.sqrt(C / (FLOPS_PER_PARAM_TOKEN * 20.0)))
    n = 10 ** np.linspace(centre - span, centre + span, points)
    d = C / (FLOPS_PER_PARAM_TOKEN * n)
    x = centred_logs(law.inputs, {"N": n, "D": d, "C": np.full_like(n, C)}, reference)
    return float(np.exp(np.min(law.evaluate(values, x))))


def true_multiplier(law: str | ScalingLaw, recipe: Mapping[str, float], reference_params: Mapping[str, float],
                    C: float, reference: Mapping[str, float]) -> float:
    """C_ref / C: the compute at which the reference law reaches the recipe's compute-optimal loss at ``C``.

    The truth that :func:`bayes_scaling.compare_recipes`'s multiplier estimates, for simulated recipe pairs;
    ``inf`` when the reference never reaches that loss (within 12 decades).
    """
    goal = optimal_loss(law, recipe, C, reference)
    lo, hi = np.log(C) - 12 * np.log(10), np.log(C) + 12 * np.log(10)
    if optimal_loss(law, reference_params, float(np.exp(hi)), reference) > goal:
        return float("inf")
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if optimal_loss(law, reference_params, float(np.exp(mid)), reference) > goal:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)) / C)
