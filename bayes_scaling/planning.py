"""Planning with uncertainty: every answer is computed per posterior draw and reported with an interval.

Questions answered (N parameters, D tokens, C FLOPs with C ≈ k·N·D, k = 6 by default; loss in nats/token):

* :func:`compute_optimal` — N_opt, D_opt, tokens per parameter and the loss reached for a budget C;
* :func:`hardware_flops` — a GPU budget (count × days × peak FLOP/s × MFU) turned into FLOPs;
* :func:`tokens_for_model` — the compute-optimal D for a model size N, and the D needed to come within a
  tolerance of the loss N can reach with unlimited data;
* :func:`model_for_tokens` — the compute-optimal N for a token budget D, and the N beyond which more
  parameters gain less than a tolerance;
* :func:`gain` — the loss difference between two configurations, draw by draw, and P(gain > threshold);
* :func:`overtrain` — the (N, D) that reaches a target loss at the least training + inference compute;
* :func:`isoflop_analysis` — Chinchilla's approach 2 on sweeps with several runs per budget.

For laws of the Chinchilla form the allocation has a closed form (Hoffmann et al. 2022, eq. 4); for other
laws of N and D it is found numerically, per draw, from the optimality condition along the iso-FLOP line
∂L/∂log N = ∂L/∂log D (vectorised bisection).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN, load_sweep
from bayes_scaling.forecast import band_table, check_finite
from bayes_scaling.intervals import BOOTSTRAP, equal_tailed, interval_table
from bayes_scaling.laws import DERIVED_INPUTS
from bayes_scaling.posterior import Fit
from bayes_scaling.results import Result

__all__ = [
    "PEAK_FLOPS",
    "IsoflopAnalysis",
    "LawDraws",
    "compute_optimal",
    "compute_optimal_closed_form",
    "gain",
    "group_budgets",
    "hardware_flops",
    "isoflop_analysis",
    "isoflop_curves",
    "model_for_tokens",
    "overtrain",
    "tokens_for_model",
]

#: Dense BF16 peak throughput per accelerator, FLOP/s (vendor data sheets, SXM parts, no sparsity).
PEAK_FLOPS: dict[str, float] = {"A100": 312e12, "H100": 989e12, "H200": 989e12}
_LOG_RANGE = (math.log(1e3), math.log(1e18))  # search range for N or D (log scale)
_LOG_UNLIMITED = _LOG_RANGE[1] + 30.0  # log N or log D standing in for "unlimited" (~1e31)


def _positive(name: str, values: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.size == 0 or not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} must be finite and > 0; got {values!r}")
    return arr


def _check_nd_law(fit: Fit) -> None:
    if not {"N", "D"} <= set(fit.law.inputs):
        raise ValueError(
            f"law {fit.law.name!r} is not a law of both N and D; planning needs one (e.g. chinchilla, kaplan)"
        )


def _wide(quantities: Mapping[str, np.ndarray], prob: float | None) -> dict[str, float]:
    """One row: each quantity's median as ``name``, its interval as ``name_lower``/``name_upper``.

    Equal-tailed over the draws; NaN draws (e.g. unreachable targets) are left out.
    """
    out: dict[str, float] = {}
    for name, values in quantities.items():
        low, median, high = equal_tailed(values, prob, median=True, finite=True)
        out[name], out[f"{name}_lower"], out[f"{name}_upper"] = float(median), float(low), float(high)
    return out


def _loss_columns(fit: Fit, name: str, log_mean: np.ndarray, point: Mapping[str, float], prob: float | None,
                  seed: int | np.random.Generator | None, z: np.ndarray | None = None,
                  ) -> tuple[dict[str, float], np.ndarray]:
    """A planned run's loss through the predictive engine: expected (credible) and one run (predictive).

    ``log_mean`` is the law's log mean per draw at the draw's own answer (N, D); the extrapolation term is that
    of ``point`` (the reported answer), as for a forecast there. Columns ``name`` (median expected loss),
    ``name_lower``/``name_upper`` (credible), ``name_pred_lower``/``name_pred_upper`` (a new run's) and
    ``name_sd_extrapolation``; and the draws of the expected loss (for answers built on them, e.g. a gain).
    """
    from bayes_scaling.predictive import predict

    frame = pd.DataFrame({k: [float(v)] for k, v in point.items()})
    if "C" not in frame:
        frame["C"] = FLOPS_PER_PARAM_TOKEN * frame["N"] * frame["D"]
    draws = predict(fit, frame, log_mean=np.asarray(log_mean, float).reshape(-1, 1), seed=seed, z=z)
    expected = draws.loss("expected")[:, 0]
    low, high = equal_tailed(draws.loss("total")[:, 0], prob, finite=True)
    return {**_wide({name: expected}, prob), f"{name}_pred_lower": float(low), f"{name}_pred_upper": float(high),
            f"{name}_sd_extrapolation": float(draws.sd_extrapolation[0])}, expected


_SEARCH = f"searched {math.exp(_LOG_RANGE[0]):.0e} to {math.exp(_LOG_RANGE[1]):.0e}"


def _finish(table: pd.DataFrame, fit: Fit, answer: Mapping[str, str], *, reason: str,
            prob: float | None) -> pd.DataFrame:
    """Refuse non-finite answers (outside the law's domain) and add how far the answer lies outside the data.

    Returns the table as an :class:`~bayes_scaling.intervals.IntervalTable` stating its ``prob`` intervals.
    ``answer`` maps ``N``, ``D`` (and optionally ``C``) to the table's columns holding the planned run.
    """
    main = [c for c in table.columns if not c.endswith(("_lower", "_upper")) and table[c].dtype.kind == "f"]
    points = pd.DataFrame({key: table[column].to_numpy(dtype=float) for key, column in answer.items()})
    if "C" not in points:
        points["C"] = FLOPS_PER_PARAM_TOKEN * points["N"] * points["D"]
    values = pd.concat([points, table[[c for c in main if c not in points.columns]].reset_index(drop=True)], axis=1)
    check_finite(values, main, what="answer", reason=reason)
    return interval_table(pd.concat([table, fit.sweep.decades_outside(points).set_axis(table.index)], axis=1), prob)


class LawDraws:
    """The fitted law as a function of (log N, log D) for every posterior draw."""

    def __init__(self, fit: Fit) -> None:
        _check_nd_law(fit)
        self.fit = fit
        self.params = {k: v[:, None] for k, v in fit.draws(fit.law.param_names).items()}
        self.n_draws = next(iter(self.params.values())).shape[0]
        self.log_ref_n = math.log(fit.reference["N"])
        self.log_ref_d = math.log(fit.reference["D"])

    def log_loss(self, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
        """Log L for arrays broadcastable to (draws, k); data_constrained assumes fresh data (U = D)."""
        logs = {"N": np.asarray(log_n), "D": np.asarray(log_d)}
        x = {"N": logs["N"] - self.log_ref_n, "D": logs["D"] - self.log_ref_d}
        x["U"] = x["D"]
        for key, (top, bottom) in DERIVED_INPUTS.items():  # tokens per parameter, as data.centred_logs makes it
            x[key] = logs[top] - logs[bottom]
        with np.errstate(invalid="ignore", over="ignore"):  # NaN where the law has no value: reported by _finish
            return self.fit.law.log_loss(np, self.params, x)

    def loss(self, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
        """L for arrays broadcastable to (draws, k)."""
        return np.exp(self.log_loss(log_n, log_d))

    def loss_along(self, fixed_log: float, v: np.ndarray, *, vary: str) -> np.ndarray:
        """Per-draw loss with log N (``vary="N"``) or log D (``vary="D"``) set to ``v`` (one value per draw)."""
        fixed = np.full_like(v, fixed_log)[:, None]
        pair = (fixed, v[:, None]) if vary == "D" else (v[:, None], fixed)
        return self.loss(*pair)[:, 0]

    def slopes(self, log_n: np.ndarray, log_d: np.ndarray, h: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
        """dL/dlogN and dL/dlogD (central differences)."""
        dn = (self.loss(log_n + h, log_d) - self.loss(log_n - h, log_d)) / (2 * h)
        dd = (self.loss(log_n, log_d + h) - self.loss(log_n, log_d - h)) / (2 * h)
        return dn, dd


def _bisect(fn: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray, iters: int = 70) -> np.ndarray:
    """Vectorised bisection for a root of ``fn`` (positive at ``lo``, negative at ``hi``); NaN where not bracketed."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float))
    lo, hi = lo.copy(), hi.copy()
    f_lo, f_hi = fn(lo), fn(hi)
    bracketed = (f_lo > 0) & (f_hi < 0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        positive = fn(mid) > 0
        lo = np.where(positive, mid, lo)
        hi = np.where(positive, hi, mid)
    return np.where(bracketed, 0.5 * (lo + hi), np.nan)


def compute_optimal_closed_form(fit: Fit, C: float, *, flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> dict:
    """Per-draw N_opt and D_opt from the law's closed-form allocation (``ScalingLaw.allocation``).

    For the Chinchilla form (Hoffmann et al. 2022, eq. 4): N_opt = G (C/k)^a, D_opt = (C/k)^b / G with
    G = (αA/(βB))^(1/(α+β)), a = β/(α+β), b = α/(α+β).
    """
    if fit.law.allocation is None:
        from bayes_scaling.laws import laws

        having = [name for name, law in laws().items() if law.allocation is not None]
        raise ValueError(f"law {fit.law.name!r} has no closed-form allocation; laws with one: {', '.join(having)}")
    log_budget = math.log(C / flops_per_param_token)
    log_n = np.asarray(fit.law.allocation(fit.draws, log_budget), dtype=float)
    return {"N": np.exp(log_n), "D": np.exp(log_budget - log_n)}


def _optimal_log_n(law: LawDraws, log_budget: float) -> np.ndarray:
    """Per-draw log N minimising L(N, budget/N) along the iso-FLOP line (numerically)."""

    def condition(log_n: np.ndarray) -> np.ndarray:
        dn, dd = law.slopes(log_n, log_budget - log_n)
        return -(dn - dd)  # dL/dlogN along the line is dn - dd: negative below the optimum

    lo = np.full(law.n_draws, max(_LOG_RANGE[0], log_budget - _LOG_RANGE[1]))
    hi = np.full(law.n_draws, min(_LOG_RANGE[1], log_budget - _LOG_RANGE[0]))
    return _bisect(lambda v: condition(v[:, None])[:, 0], lo, hi)


def optimal_n_draws(fit: Fit, C: float, *, flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> np.ndarray:
    """Per-draw compute-optimal N at budget ``C`` (closed form where the law has one, else numerically)."""
    if fit.law.allocation is not None:
        return compute_optimal_closed_form(fit, C, flops_per_param_token=flops_per_param_token)["N"]
    _check_nd_law(fit)
    return np.exp(_optimal_log_n(LawDraws(fit), math.log(C / flops_per_param_token)))


def compute_optimal(
    fit: Fit,
    C: float | Sequence[float],
    *,
    prob: float | None = None,
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
    seed: int = 0,
) -> pd.DataFrame:
    """Compute-optimal allocation for FLOP budgets, with intervals over the posterior.

    Parameters
    ----------
    fit : Fit
        A law of N and D.
    C : float or sequence
        Training budgets in FLOPs.
    prob : float, optional
        Interval probability (default :data:`bayes_scaling.intervals.rc` ``["prob"]``, 0.9).
    flops_per_param_token : float
        k in C = k·N·D (6 for dense transformers).
    seed : int
        Seed of the extrapolation and scatter draws of the loss (the predictive engine's).

    Returns
    -------
    pandas.DataFrame
        One row per budget: ``N_opt``, ``D_opt``, ``tokens_per_param`` (posterior medians with
        ``_lower``/``_upper``) and ``loss``: the expected loss at the optimum with its credible interval
        (``loss_lower``/``loss_upper``) and a training run's predictive interval (``loss_pred_lower``/
        ``loss_pred_upper``), both through :func:`bayes_scaling.predictive.predict`, so they carry the
        extrapolation term of the answer's distance beyond the sweep (``decades_*``) like a forecast at the
        plan's own N and D; ``method`` (closed form or numerical).
    """
    budgets = _positive("C", C)
    _positive("flops_per_param_token", flops_per_param_token)
    law = LawDraws(fit)
    rows: list[dict[str, Any]] = []
    for budget in budgets:
        log_budget = math.log(budget / flops_per_param_token)
        if fit.law.allocation is not None:
            log_n = np.log(compute_optimal_closed_form(fit, budget, flops_per_param_token=flops_per_param_token)["N"])
            method = "closed form"
        else:
            log_n = _optimal_log_n(law, log_budget)
            method = "numerical"
        log_d = log_budget - log_n
        row = _wide({"N_opt": np.exp(log_n), "D_opt": np.exp(log_d), "tokens_per_param": np.exp(log_d - log_n)},
                    prob)
        point = {"N": row["N_opt"], "D": row["D_opt"], "C": float(budget)}
        loss, _ = _loss_columns(fit, "loss", law.log_loss(log_n[:, None], log_d[:, None])[:, 0], point, prob, seed)
        rows.append({**row, **loss, "C": float(budget), "method": method})
    table = pd.DataFrame(rows)
    table = table[["C", *[c for c in table.columns if c not in ("C", "method")], "method"]]
    return _finish(table, fit, {"N": "N_opt", "D": "D_opt", "C": "C"},
                   reason=f"no optimum for this budget: {_SEARCH} parameters", prob=prob)


def isoflop_curves(fit: Fit, budgets: Sequence[float], *, prob: float | None = None, span: float = 30.0,
                   flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> pd.DataFrame:
    """Iso-FLOP curves from the posterior: the loss against N at each fixed budget C (D = C/(k N)).

    Each curve spans a factor ``span`` either side of the budget's median compute-optimal N.

    Returns
    -------
    pandas.DataFrame
        :func:`bayes_scaling.forecast.band_table` rows with ``C`` (the budget), ``N``, ``D`` and ``N_opt`` (the
        budget's median compute-optimal N).
    """
    alloc = compute_optimal(fit, list(budgets), flops_per_param_token=flops_per_param_token)
    parts = []
    for budget, n_opt in zip(alloc["C"], alloc["N_opt"], strict=True):
        n = np.geomspace(n_opt / span, n_opt * span, 60)
        points = pd.DataFrame({"N": n, "D": budget / (flops_per_param_token * n)})
        if "U" in fit.law.inputs:
            points["unique_tokens"] = points["D"]
        table = band_table(fit, points, probs=(prob,))
        table["C"], table["N_opt"] = budget, n_opt
        parts.append(table)
    return interval_table(pd.concat(parts, ignore_index=True), prob)


def hardware_flops(
    gpus: float, days: float, *, accelerator: str | None = "H100", peak_flops: float | None = None, mfu: float = 0.4
) -> float:
    """Training FLOPs from a hardware budget: gpus × days × 86,400 s × peak FLOP/s × MFU.

    Parameters
    ----------
    gpus, days : float
        Number of accelerators and wall-clock days.
    accelerator : str, optional
        A preset of :data:`PEAK_FLOPS` (A100, H100, H200; dense BF16).
    peak_flops : float, optional
        Peak FLOP/s per accelerator; overrides ``accelerator``.
    mfu : float
        Model FLOP utilisation in (0, 1] (0.3–0.5 is typical for large runs).
    """
    _positive("gpus", gpus)
    _positive("days", days)
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    if peak_flops is None:
        key = (accelerator or "").upper()
        if key not in PEAK_FLOPS:
            raise ValueError(f"unknown accelerator {accelerator!r}; use one of {', '.join(PEAK_FLOPS)} or peak_flops=")
        peak_flops = PEAK_FLOPS[key]
    _positive("peak_flops", peak_flops)
    return float(gpus) * float(days) * 86_400.0 * float(peak_flops) * float(mfu)


def _within_tolerance(law: LawDraws, fixed_log: float, tolerance: float, *, vary: str) -> np.ndarray:
    """Per-draw log of the N (or D) beyond which the loss is within ``tolerance`` nats of its limit."""
    limit = law.loss_along(fixed_log, np.full(law.n_draws, _LOG_UNLIMITED), vary=vary)

    def excess(v: np.ndarray) -> np.ndarray:
        return law.loss_along(fixed_log, v, vary=vary) - limit - tolerance

    return _bisect(excess, np.full(law.n_draws, _LOG_RANGE[0]), np.full(law.n_draws, _LOG_RANGE[1]))


def _balanced(law: LawDraws, fixed_log: float, *, vary: str) -> np.ndarray:
    """Per-draw log of D (``vary="D"``, N fixed) or N (``vary="N"``, D fixed) at which the pair is compute-optimal.

    Optimality along the iso-FLOP line means dL/dlog N = dL/dlog D. The varied term's slope is the steeper
    one while that quantity is short and the flatter one once it is plentiful, which brackets the root.
    """

    def balance(v: np.ndarray) -> np.ndarray:
        fixed = np.full_like(v, fixed_log)[:, None]
        dn, dd = law.slopes(fixed, v[:, None]) if vary == "D" else law.slopes(v[:, None], fixed)
        return (dn - dd)[:, 0] if vary == "D" else (dd - dn)[:, 0]

    return _bisect(balance, np.full(law.n_draws, _LOG_RANGE[0]), np.full(law.n_draws, _LOG_RANGE[1]))


def tokens_for_model(fit: Fit, N: float, *, tolerance: float = 0.01, prob: float | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """Answer "I plan an N-parameter model: how many tokens?".

    Returns the compute-optimal D for this N (the D at which N is the optimal size for C = k·N·D) and
    the D needed for the loss to come within ``tolerance`` nats of what N reaches with unlimited data,
    each with median and interval; ``loss_at_D_opt`` with credible and predictive intervals through the
    predictive engine (extrapolation term included); ``loss_limit`` is the law's own limit (no extrapolation
    term: it lies infinitely far beyond any sweep).
    """
    n = float(_positive("N", N)[0])
    _positive("tolerance", tolerance)
    law = LawDraws(fit)
    log_n = math.log(n)

    log_d_opt = _balanced(law, log_n, vary="D")
    log_d_tol = _within_tolerance(law, log_n, tolerance, vary="D")
    row = _wide({"D_opt": np.exp(log_d_opt), "tokens_per_param": np.exp(log_d_opt - log_n)}, prob)
    row.update(_loss_columns(fit, "loss_at_D_opt", np.log(law.loss_along(log_n, log_d_opt, vary="D")),
                             {"N": n, "D": row["D_opt"]}, prob, seed)[0])
    row.update(_wide({
        "D_within_tolerance": np.exp(log_d_tol),
        "loss_limit": law.loss_along(log_n, np.full(law.n_draws, _LOG_UNLIMITED), vary="D"),
    }, prob))
    return _finish(pd.DataFrame([{**row, "N": n, "tolerance": tolerance}]), fit, {"N": "N", "D": "D_opt"},
                   reason=f"no D in the searched range ({_SEARCH} tokens) answers it; is N or the tolerance extreme?",
                   prob=prob)


def model_for_tokens(fit: Fit, D: float, *, tolerance: float = 0.01, prob: float | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """Answer "I have D tokens: how large a model?".

    Returns the N that is compute-optimal for training on D tokens, and the N beyond which more
    parameters bring the loss less than ``tolerance`` nats closer to what D tokens allow; ``loss_at_N_opt``
    with credible and predictive intervals through the predictive engine; ``loss_limit`` the law's own limit.
    """
    d = float(_positive("D", D)[0])
    _positive("tolerance", tolerance)
    law = LawDraws(fit)
    log_d = math.log(d)

    log_n_opt = _balanced(law, log_d, vary="N")
    log_n_tol = _within_tolerance(law, log_d, tolerance, vary="N")
    row = _wide({"N_opt": np.exp(log_n_opt), "tokens_per_param": np.exp(log_d - log_n_opt)}, prob)
    row.update(_loss_columns(fit, "loss_at_N_opt", np.log(law.loss_along(log_d, log_n_opt, vary="N")),
                             {"N": row["N_opt"], "D": d}, prob, seed)[0])
    row.update(_wide({
        "N_within_tolerance": np.exp(log_n_tol),
        "loss_limit": law.loss_along(log_d, np.full(law.n_draws, _LOG_UNLIMITED), vary="N"),
    }, prob))
    return _finish(pd.DataFrame([{**row, "D": d, "tolerance": tolerance}]), fit, {"N": "N_opt", "D": "D"},
                   reason=f"no N in the searched range ({_SEARCH} parameters) answers it; is D or the tolerance "
                   "extreme?", prob=prob)


def gain(
    fit: Fit,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    threshold: float = 0.0,
    prob: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Loss gained going from configuration ``start`` = (N, D) to ``end`` = (N, D).

    The expected losses come from the predictive engine with one shared extrapolation draw (the same misfit
    of the law at both points, growing with each one's distance beyond the sweep), and the difference
    ``loss(start) - loss(end)`` is computed draw by draw, so its interval accounts for the correlation between
    the two forecasts; ``p_exceeds`` is P(gain > threshold). ``loss_start``/``loss_end`` also carry a run's
    predictive interval (``*_pred_lower``/``*_pred_upper``).
    """
    law = LawDraws(fit)
    configs = [_positive(name, c) for name, c in (("start", start), ("end", end))]
    for name, c in zip(("start", "end"), configs, strict=True):
        if c.size != 2:
            raise ValueError(f"{name} must be a pair (N, D); got {c.tolist()}")
    (n1, d1), (n2, d2) = configs
    z = np.random.default_rng([seed, 1]).standard_normal(law.n_draws)  # one misfit of the law for both points
    expected, row = [], {}
    for name, n, d in (("loss_start", n1, d1), ("loss_end", n2, d2)):
        log_mean = law.log_loss(np.log(n), np.full((law.n_draws, 1), np.log(d)))[:, 0]
        columns, draws = _loss_columns(fit, name, log_mean, {"N": n, "D": d}, prob, seed, z=z)
        row.update({k: v for k, v in columns.items() if not k.endswith("_sd_extrapolation")})
        expected.append(draws)
    loss1, loss2 = expected
    delta = loss1 - loss2
    row.update(_wide({"gain": delta, "relative_gain": delta / loss1}, prob))
    extra = {"N_start": n1, "D_start": d1, "N_end": n2, "D_end": d2, "threshold": threshold,
             "p_exceeds": float(np.mean(delta > threshold))}
    return _finish(pd.DataFrame([{**row, **extra}]), fit, {"N": "N_end", "D": "D_end"},
                   reason="the law gives no finite loss there", prob=prob)


def overtrain(
    fit: Fit,
    target_loss: float,
    inference_tokens: float,
    *,
    prob: float | None = None,
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
    inference_flops_per_param_token: float = 2.0,
    grid: int = 160,
    seed: int = 0,
) -> pd.DataFrame:
    """Model size and tokens reaching ``target_loss`` at the least training + inference compute.

    Minimises k·N·D + 2·N·T_inf subject to L(N, D) = target (Sardana & Frankle 2023; the LLaMA argument
    for training small models long), per posterior draw: for each N on a grid the D that reaches the
    target is found by bisection, then the cheapest N is taken. The expected loss a run reaches is the law's
    times the extrapolation term of the predictive engine (at the answer's distance beyond the sweep), so each
    draw solves ``L(N, D) = target / exp(term)``: beyond the sweep the answer's interval widens as a forecast's
    does. Draws for which the target is below what any model can reach are counted in ``p_reachable`` and left
    out of the intervals.
    """
    target = float(_positive("target_loss", target_loss)[0])
    t_inf = float(np.atleast_1d(np.asarray(inference_tokens, dtype=float))[0])
    if not (math.isfinite(t_inf) and t_inf >= 0):
        raise ValueError(f"inference_tokens must be finite and >= 0; got {inference_tokens!r}")
    law = LawDraws(fit)
    log_n_grid = np.linspace(math.log(1e6), math.log(1e14), grid)
    targets = np.full(law.n_draws, target)
    log_n_best, log_d_best = _cheapest(law, targets, log_n_grid, t_inf, flops_per_param_token,
                                       inference_flops_per_param_token)
    if np.isfinite(log_d_best).any():  # the law's answer sets the distance of the extrapolation term
        from bayes_scaling.predictive import predict

        n_mid, d_mid = (float(np.exp(np.nanmedian(v))) for v in (log_n_best, log_d_best))
        point = pd.DataFrame({"N": [n_mid], "D": [d_mid], "C": [flops_per_param_token * n_mid * d_mid]})
        term = predict(fit, point, log_mean=np.zeros((law.n_draws, 1)), seed=seed).extrapolation[:, 0]
        if term.any():
            log_n_best, log_d_best = _cheapest(law, target * np.exp(-term), log_n_grid, t_inf,
                                               flops_per_param_token, inference_flops_per_param_token)
    reachable = np.isfinite(log_d_best)
    n_best = np.where(reachable, np.exp(log_n_best), np.nan)
    d_best = np.exp(log_d_best)
    train = flops_per_param_token * n_best * d_best
    inference = inference_flops_per_param_token * n_best * t_inf
    row = _wide({"N": n_best, "D": d_best, "tokens_per_param": d_best / n_best, "train_flops": train,
                 "inference_flops": inference, "total_flops": train + inference}, prob)
    extra = {"target_loss": target, "inference_tokens": t_inf, "p_reachable": float(reachable.mean())}
    if not reachable.any():
        unlimited = np.full((law.n_draws, 1), _LOG_UNLIMITED)
        floor = np.median(law.loss(unlimited, unlimited))
        raise ValueError(f"target loss {target:g} nats/token is unreachable: it lies below what any model reaches "
                         f"under the fitted law (the loss floor, about {floor:.3g} nats/token, for every posterior "
                         "draw); choose a higher target")
    return _finish(pd.DataFrame([{**row, **extra}]), fit, {"N": "N", "D": "D"},
                   reason="the target is unreachable for most draws", prob=prob)


def _cheapest(law: LawDraws, targets: np.ndarray, log_n_grid: np.ndarray, t_inf: float, k_train: float,
              k_inference: float) -> tuple[np.ndarray, np.ndarray]:
    """Per draw: log N and log D reaching ``targets`` (one per draw) at the least training + inference compute."""
    grid = len(log_n_grid)
    shape = (law.n_draws, grid)
    target = targets[:, None]

    def excess(log_d: np.ndarray) -> np.ndarray:  # L(N, D) - target changes sign from + to - along D
        return law.loss(log_n_grid[None, :], log_d) - target

    log_d = _bisect(excess, np.full(shape, _LOG_RANGE[0]), np.full(shape, _LOG_UNLIMITED), iters=60)
    cost = k_train * np.exp(log_n_grid[None, :] + log_d) + k_inference * np.exp(log_n_grid)[None, :] * t_inf
    cost = np.where(np.isfinite(cost), cost, np.inf)
    best = np.clip(np.argmin(cost, axis=1), 1, grid - 2)
    rows_idx = np.arange(law.n_draws)
    # refine the grid minimum by a parabola through log cost at the three nearest grid points
    with np.errstate(invalid="ignore", divide="ignore"):
        y0, y1, y2 = (np.log(cost[rows_idx, best + k]) for k in (-1, 0, 1))
        curvature = y0 - 2 * y1 + y2
        shift = np.where(np.isfinite(curvature) & (curvature > 0), 0.5 * (y0 - y2) / curvature, 0.0)
    step = log_n_grid[1] - log_n_grid[0]
    log_n_best = log_n_grid[best] + np.clip(shift, -1, 1) * step
    log_d_best = _bisect(lambda v: law.loss(log_n_best[:, None], v[:, None])[:, 0] - targets,
                         np.full(law.n_draws, _LOG_RANGE[0]), np.full(law.n_draws, _LOG_UNLIMITED), iters=80)
    return log_n_best, log_d_best


def group_budgets(c: np.ndarray, rel_tol: float) -> np.ndarray:
    """Group runs whose C lie within a factor (1 + rel_tol) of their group's smallest C."""
    order = np.argsort(c)
    groups = np.empty(len(c), dtype=int)
    group, start = 0, c[order[0]]
    for i in order:
        if c[i] > start * (1 + rel_tol):
            group, start = group + 1, c[i]
        groups[i] = group
    return groups


@dataclass(frozen=True)
class IsoflopAnalysis(Result):
    """Result of :func:`isoflop_analysis`.

    Attributes
    ----------
    budgets : pandas.DataFrame
        Per budget: ``C``, ``runs``, ``N_opt`` with ``N_opt_lower``/``N_opt_upper``, ``loss_at_opt``, ``D_opt``.
    exponents : pandas.DataFrame
        ``a`` (N_opt ∝ C^a) and ``b`` (D_opt ∝ C^b): ``estimate``, ``lower``, ``upper``.
    skipped : pandas.DataFrame
        Budgets left out (``C``, ``runs``, ``reason``: too few runs or no interior minimum).
    """

    kind: ClassVar[str] = "isoflop"

    budgets: pd.DataFrame
    exponents: pd.DataFrame
    skipped: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling plan isoflop --json``)."""
        from bayes_scaling.outputs import json_records, table_records

        return {"interval": self.budgets.attrs.get("interval"), "budgets": json_records(self.budgets),
                "exponents": table_records(self.exponents),
                "skipped": json_records(self.skipped)}

    def summary(self) -> pd.DataFrame:
        """The loss-minimising N per budget, with bootstrap intervals."""
        return self.budgets


def isoflop_analysis(
    data: Any,
    *,
    budget_column: str | None = None,
    rel_tol: float = 0.25,
    min_runs: int = 3,
    n_boot: int = 500,
    prob: float | None = None,
    seed: int | np.random.Generator | None = 0,
) -> IsoflopAnalysis:
    """IsoFLOP analysis (Hoffmann et al. 2022, approach 2) with bootstrap intervals.

    Runs are grouped by compute budget (``budget_column``, or C values within a factor 1 + ``rel_tol``);
    in each budget with at least ``min_runs`` runs a parabola of log loss in log N gives the loss-minimising
    N; a straight line through log N_opt vs log C gives N_opt ∝ C^a, and D_opt = C/(6 N_opt) ∝ C^b.
    Intervals come from ``n_boot`` resamples of the runs within each budget.

    Returns
    -------
    IsoflopAnalysis
    """
    sweep = load_sweep(data)
    frame = sweep.frame
    if budget_column is not None:
        if budget_column not in frame.columns:
            raise ValueError(f"budget column {budget_column!r} is not in the data; columns: {list(frame.columns)}")
        groups = pd.factorize(frame[budget_column])[0]
    else:
        groups = group_budgets(sweep.column("C"), rel_tol)
    rng = np.random.default_rng(seed)
    log_n, log_loss, log_c = np.log(sweep.column("N")), np.log(sweep.column("loss")), np.log(sweep.column("C"))
    budgets, boots, skipped = [], [], []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        c_mean = float(np.exp(log_c[idx].mean()))
        vertex = _vertex(log_n[idx], log_loss[idx])
        if len(idx) < min_runs or vertex is None:
            skipped.append({"C": c_mean, "runs": len(idx),
                            "reason": "too few runs" if len(idx) < min_runs else "no interior minimum"})
            continue
        resampled = (_vertex(log_n[s], log_loss[s]) for s in (rng.choice(idx, size=len(idx)) for _ in range(n_boot)))
        draws = np.array([v[0] if v is not None else np.nan for v in resampled])
        budgets.append({"C": c_mean, "runs": len(idx), "log_n_opt": vertex[0], "loss_at_opt": math.exp(vertex[1])})
        boots.append(draws)
    if len(budgets) < 2:
        raise ValueError(f"isoFLOP analysis needs at least 2 budgets with >= {min_runs} runs and an interior "
                         f"minimum; found {len(budgets)}")
    table = pd.DataFrame(budgets)
    boot = np.vstack(boots).T  # (n_boot, budgets)
    x = np.log(table["C"].to_numpy())
    a_hat = np.polyfit(x, table["log_n_opt"].to_numpy(), 1)[0]
    slopes = np.array([_slope(x, row) for row in boot])
    slopes = slopes[np.isfinite(slopes)]
    a_low, a_high = equal_tailed(slopes, prob)
    table["N_opt"] = np.exp(table["log_n_opt"])
    table["N_opt_lower"], table["N_opt_upper"] = np.exp(equal_tailed(boot, prob, skip_nan=True))
    table["D_opt"] = table["C"] / (FLOPS_PER_PARAM_TOKEN * table["N_opt"])
    exponents = pd.DataFrame(
        {"estimate": [a_hat, 1 - a_hat], "lower": [a_low, 1 - a_high], "upper": [a_high, 1 - a_low]},
        index=pd.Index(["a", "b"], name="exponent"),
    )
    return IsoflopAnalysis(budgets=interval_table(table.drop(columns="log_n_opt"), prob, kind=BOOTSTRAP),
                           exponents=interval_table(exponents, prob, kind=BOOTSTRAP),
                           skipped=pd.DataFrame(skipped))


def _vertex(log_n: np.ndarray, log_loss: np.ndarray) -> tuple[float, float] | None:
    """Minimum (log N, log loss) of a parabola fitted to one budget's runs, if it lies inside their range."""
    if len(np.unique(log_n)) < 3:
        return None
    c2, c1, c0 = np.polyfit(log_n, log_loss, 2)
    if c2 <= 0:
        return None
    x = -c1 / (2 * c2)
    if not log_n.min() <= x <= log_n.max():
        return None
    return float(x), float(c0 + c1 * x + c2 * x * x)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])
