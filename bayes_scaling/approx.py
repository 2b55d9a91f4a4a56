"""A fast approximate posterior for quick looks: the Laplace approximation, with a check of its quality.

``fit(..., method="laplace")`` finds the posterior mode on the sampler's unconstrained space (L-BFGS with
the model's compiled gradient), takes the Hessian there by central differences of the gradient, and
draws from the Gaussian it implies, mapped back through the parameter transforms. Everything downstream
(summaries, forecasts, planning) works unchanged, but the result is **approximate**: ``Fit.info["method"]``
says ``"laplace"``, the CLI prints it, and the quality is measured, not assumed: the Pareto k-hat of
importance ratios p(theta | data) / q(theta) over a subset of the draws (PSIS; k-hat < 0.7 means the
Gaussian covers the posterior well enough for means and intervals, above it the approximation is
unreliable and a warning says so). ``python -m benchmarks`` reports its distance to NUTS.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from bayes_scaling.compiled import cached
from bayes_scaling.threads import serial_blas

__all__ = ["METHODS", "ApproximationWarning", "laplace"]

METHODS = ("nuts", "laplace")
#: Above this Pareto k-hat the Laplace approximation is flagged unreliable.
KHAT_LIMIT = 0.7


class ApproximationWarning(UserWarning):
    """An approximate posterior fails its quality check (Pareto k-hat above 0.7)."""


def central_jacobian(function: Any, x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of a vector ``function`` at ``x``: column ``i`` is d function / d x_i.

    Steps of ``1e-5 * max(1, |x_i|)``.
    """
    columns = []
    for i in range(len(x)):
        step = 1e-5 * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        columns.append((np.asarray(function(up), float) - np.asarray(function(down), float)) / (2 * step))
    return np.stack(columns, axis=-1)


def _hessian(grad: Any, x: np.ndarray) -> np.ndarray:
    """Symmetrised central-difference Hessian of the log density from its gradient."""
    hess = central_jacobian(grad, x)
    return (hess + hess.T) / 2


def _draws_transform(model: Any, outputs: list[Any]) -> tuple[bool, Any]:
    """(batched, function) giving ``outputs`` (the constrained variables and deterministics) from value variables.

    Batched: the graph vectorised over a leading axis of draws, so all draws go through one call (a per-draw loop
    was a third of a Laplace fit's time). A model whose graph does not vectorise gets the per-draw function.
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph

    try:
        draws = {v: pt.tensor(f"{v.name}_draws", shape=(None, *v.type.shape), dtype=v.dtype) for v in model.value_vars}
        vectorised = vectorize_graph(outputs, replace=draws)
        return True, pytensor.function(list(draws.values()), vectorised, mode="NUMBA", on_unused_input="ignore",
                                       trust_input=True)
    except Exception:  # any op without a vectorised form: fall back to one call per draw
        return False, model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore",
                                       point_fn=False, mode="NUMBA")


def _compiled(model: Any, cache_key: Hashable | None, data: Mapping[str, Any] | None = None
              ) -> tuple[Any, Any, Any, dict[str, np.ndarray]]:
    """(model whose data the functions read, log density + gradient, (transform, output names), start point).

    ``model`` is a PyMC model or a function building one (called only when nothing is cached under the key);
    ``data`` the values of its data containers by name (default: read from ``model``). The start point (the
    priors' support point on the unconstrained space) depends on the priors only, which are part of the cache
    key, so it is computed once per compiled model (a third of a fold refit's time).
    """

    def build() -> tuple[Any, Any, Any, dict[str, np.ndarray]]:
        nonlocal model
        if callable(model):
            model = model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logp_dlogp = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
            logp_dlogp.set_extra_values({})
            names = [rv.name for rv in model.free_RVs] + [d.name for d in model.deterministics]
            outputs = [v for v in model.unobserved_value_vars if v.name in names]
            transform = _draws_transform(model, outputs)
            # Every input is made here (a float64 vector of the unconstrained point), so PyTensor's per-call input
            # checks, 60% of a call's cost over the tens of thousands of calls a fit with its folds makes, are
            # skipped.
            function = getattr(logp_dlogp, "_pytensor_function", None)
            if hasattr(function, "trust_input"):
                function.trust_input = True
            start = model.initial_point()
        return model, logp_dlogp, (transform, [v.name for v in outputs]), start

    def rebind(entry: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any, Any]:
        cached_model = entry[0]
        if cached_model is not model:  # same structure: point the compiled functions at this model's data
            values = data
            if values is None:
                values = {v.name: v.get_value() for v in (model() if callable(model) else model).data_vars}
            for name, value in values.items():
                cached_model[name].set_value(np.asarray(value, dtype=cached_model[name].dtype))
        return entry

    return cached("laplace", cache_key, build, rebind)


def laplace(
    model: Any,
    *,
    draws: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    check_draws: int = 400,
    cache_key: Hashable | None = None,
    data: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Laplace approximation of ``model``'s posterior.

    Parameters
    ----------
    model : pymc.Model or callable
        The model, or a function building it: with ``cache_key`` and ``data`` a cached compiled model of the
        same structure is pointed at ``data`` and nothing is built.
    draws, chains : int
        Independent Gaussian draws, arranged as ``chains`` x ``draws`` like a sampler's output.
    seed : int, optional
        Seed of the start jitter and the draws.
    check_draws : int
        How many draws the quality check (PSIS k-hat) evaluates the exact log density at.
    cache_key : hashable, optional
        Models sharing this key (same law, priors, likelihood, number of runs) reuse compiled functions.
    data : mapping, optional
        The values of the model's data containers by name (see :func:`bayes_scaling.model.model_data`).

    Returns
    -------
    (xarray.DataTree, dict)
        The posterior (``posterior`` with every free variable and deterministic; an empty ``sample_stats``)
        and facts about the approximation: ``pareto_k``, ``optimizer_converged``, ``optimizer_evaluations``,
        ``log_density_at_mode``, ``seconds``.

    Raises
    ------
    RuntimeError
        When no mode with a positive-definite curvature is found.
    """
    import xarray as xr
    from arviz_stats.base import array_stats
    from pymc.blocking import DictToArrayBijection
    from scipy import optimize

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    model, logp_dlogp, (transform, output_names), point = _compiled(model, cache_key, data)
    value_vars = model.value_vars
    raveled = DictToArrayBijection.map({v.name: point[v.name] for v in value_vars})

    def value_and_grad(x: np.ndarray) -> tuple[Any, Any]:
        return logp_dlogp(np.ascontiguousarray(x, dtype=np.float64))

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(x)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(x)
        return -float(value), -np.asarray(grad, dtype=float)

    best = None
    with serial_blas():
        for attempt in range(3):  # the prior median, then two jittered starts if the first fails
            x0 = raveled.data + (0 if attempt == 0 else rng.normal(0, 0.3, raveled.data.shape))
            result = optimize.minimize(negative, x0, jac=True, method="L-BFGS-B", options={"maxiter": 10_000})
            if best is None or result.fun < best.fun:
                best = result
            if result.success:
                break
    mode = best.x
    precision = -_hessian(lambda x: np.asarray(value_and_grad(x)[1], dtype=float), mode)
    try:
        chol = np.linalg.cholesky(np.linalg.inv(precision))
    except np.linalg.LinAlgError:
        raise RuntimeError(
            "Laplace approximation failed: the log posterior is not curved like a Gaussian at its mode "
            "(Hessian not negative definite); use NUTS (method='nuts')"
        ) from None
    total = int(draws) * int(chains)
    z = rng.standard_normal((total, len(mode)))
    unconstrained = mode + z @ chol.T

    # Quality: PSIS k-hat of exact log density over the Gaussian's, on a subset of draws.
    subset = unconstrained[: min(int(check_draws), total)]
    log_p = np.array([value_and_grad(x)[0] for x in subset], dtype=float)
    log_q = -0.5 * np.sum(z[: len(subset)] ** 2, axis=1)  # up to a constant, which PSIS ignores
    log_p = np.where(np.isfinite(log_p), log_p, -np.inf)
    _, khat = array_stats.psislw(log_p - log_q)

    columns, begin = {}, 0
    for name, shape, size, _ in raveled.point_map_info:
        columns[name] = np.ascontiguousarray(unconstrained[:, begin:begin + size].reshape((total, *shape)))
        begin += size
    batched, function = transform
    if batched:  # all draws in one call
        outputs = function(*[columns[v.name] for v in value_vars])
    else:
        outputs = list(zip(*(function(*[columns[v.name][i] for v in value_vars]) for i in range(total)),
                           strict=True))
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    data_vars = {}
    for name, items in zip(output_names, outputs, strict=True):
        array = np.asarray(items, dtype=float)
        array = array.reshape((chains, draws, *array.shape[1:]))
        dims = ["chain", "draw", *[f"{name}_dim_{i}" for i in range(array.ndim - 2)]]
        data_vars[name] = (dims, array)
    posterior = xr.Dataset(data_vars, coords=coords)
    stats = xr.Dataset(coords=coords)
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    info = {
        "pareto_k": float(khat),
        "optimizer_converged": bool(best.success),
        "optimizer_evaluations": int(best.nfev),
        "log_density_at_mode": float(-best.fun),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if not np.isfinite(khat) or khat > KHAT_LIMIT:
        warnings.warn(
            f"the Laplace approximation misses this posterior's tails (Pareto k-hat {khat:.2f} > {KHAT_LIMIT}): "
            "means are usually close, intervals can be too narrow or skewed the wrong way; refit with "
            "method='nuts' before relying on them",
            ApproximationWarning,
            stacklevel=3,
        )
    return tree, info
