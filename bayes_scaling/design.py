"""Which runs next? Bayesian design of the next training runs for a FLOP budget.

Before a big run a team often has a little compute left for more small runs. :func:`suggest_runs` picks the runs
that are expected to narrow the interval of the forecast that matters most, per FLOP, by *preposterior analysis*
with the posterior draws already in hand (no refit per candidate):

1. For each candidate run, outcomes are simulated from the posterior predictive: ``J`` scenarios, each a
   posterior draw and the fitted run-to-run noise.
2. Each scenario reweights the posterior draws by the likelihood of the simulated outcomes (importance
   reweighting), and the target's equal-tailed interval is read from the reweighted draws. Its width, averaged
   over the scenarios, is the expected width after that run.
3. Runs are added greedily by the expected narrowing per FLOP until the budget (or ``k`` runs) is spent; a run
   that reaches beyond the sweep also shortens the extrapolation to the target, which narrows the fit's
   extrapolation term (:mod:`bayes_scaling.extrapolation`).

The same expected width is computed for baseline designs of the same cost: a 20-tokens-per-parameter ladder and
random candidates. ``benchmarks/design.py`` checks the expected widths against full refits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.extrapolation import distance_columns, sweep_ranges
from bayes_scaling.intervals import KIND, check_prob, interval_table, weighted_equal_tailed
from bayes_scaling.results import Result

if TYPE_CHECKING:
    from bayes_scaling.posterior import Fit

__all__ = ["Suggestion", "Target", "candidate_grid", "ladder_design", "random_design", "suggest_runs"]

#: Default tokens per parameter of the candidate grid.
GRID_TOKENS_PER_PARAM = (5.0, 10.0, 20.0, 40.0, 80.0)
#: How far beyond the sweep's largest model the default candidates reach (a factor on N).
GRID_REACH = 4.0
#: Below this mean effective sample size of the reweighted draws the approximation is flagged.
MIN_ESS = 100.0


@dataclass(frozen=True)
class Target:
    """What the next runs should sharpen: the loss of a run at (N, D), or the compute-optimal N at C FLOPs."""

    kind: str
    N: float | None = None
    D: float | None = None
    C: float | None = None
    link: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, target: Any) -> Target:
        """A :class:`Target` from itself or a mapping (see :func:`suggest_runs`).

        ``{"N": .., "D": ..}`` or (N, D): loss; ``{"C": ..}``: compute-optimal N; ``{"N": .., "D": ..,
        "downstream": link}``: a benchmark error through a link fit.
        """
        if isinstance(target, Target):
            return target
        if isinstance(target, Mapping):
            keys = set(target)
            if keys == {"N", "D"}:
                return cls._checked(cls("loss", N=float(target["N"]), D=float(target["D"])))
            if keys == {"N", "D", "downstream"}:
                link = target["downstream"]
                if not hasattr(link, "link") or not hasattr(link, "metric"):
                    raise ValueError("target 'downstream' must be one link fit (fit_downstream / load_downstream), "
                                     f"not {type(link).__name__}")
                return cls._checked(cls("metric", N=float(target["N"]), D=float(target["D"]), link=link))
            if keys == {"C"}:
                return cls._checked(cls("n_opt", C=float(target["C"])))
        elif isinstance(target, Sequence) and not isinstance(target, str) and len(target) == 2:
            return cls._checked(cls("loss", N=float(target[0]), D=float(target[1])))
        raise ValueError(f"target must be {{'N': .., 'D': ..}} (the loss of that run), {{'C': ..}} (the "
                         "compute-optimal N at C FLOPs), {'N': .., 'D': .., 'downstream': LINK} (a benchmark error) "
                         f"or (N, D); got {target!r}")

    @staticmethod
    def _checked(target: Target) -> Target:
        for name in ("N", "D", "C"):
            value = getattr(target, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"target {name} must be finite and > 0, got {value}")
        return target

    def describe(self) -> str:
        """The target in words."""
        if self.kind == "loss":
            return f"the loss of a {self.N:.3g}-parameter model trained on {self.D:.3g} tokens"
        if self.kind == "metric":
            return f"the {self.link.metric} of a {self.N:.3g}-parameter model trained on {self.D:.3g} tokens"
        return f"the compute-optimal model size at {self.C:.3g} FLOPs"

    @property
    def units(self) -> str:
        """Units of the target's interval width."""
        return {"loss": "nats/token", "metric": "error (fraction)"}.get(self.kind, "decades of N")


@dataclass
class Suggestion(Result):
    """The runs :func:`suggest_runs` chose, with the expected interval of the target before and after.

    Attributes
    ----------
    target : Target
    budget : float
        FLOPs available for the new runs.
    prob : float
        Probability of the target's interval.
    before : dict
        The target's interval now: ``median``, ``lower``, ``upper``, ``width``.
    runs : pandas.DataFrame
        The chosen runs in order: ``N``, ``D``, ``C``, ``tokens_per_param``, ``total_C`` (cumulative),
        ``expected_width`` (the target's expected interval width once this and the earlier runs are in),
        ``expected_lower``/``expected_upper`` (mean bounds), ``ess`` (mean effective sample size of the reweighted
        draws).
    baselines : pandas.DataFrame
        Per design (``suggested``; ``ladder_20tpp``: the candidates' sizes at 20 tokens per parameter, largest
        first; ``random``: random candidates, averaged), each within the suggested design's cost: ``runs``, ``C``
        and ``expected_width``.
    candidates : pandas.DataFrame
        Every candidate: ``N``, ``D``, ``C``, ``value_per_flop`` (the width it removes per FLOP as the first run;
        NaN if over budget) and ``chosen``.
    info : dict
        Scenarios, draws used, seed.
    """

    kind: ClassVar[str] = "suggestion"

    target: Target
    budget: float
    prob: float
    before: dict[str, float]
    runs: pd.DataFrame
    baselines: pd.DataFrame
    candidates: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def after(self) -> float:
        """Expected width of the target's interval after all chosen runs (the current width if none)."""
        return float(self.runs["expected_width"].iloc[-1]) if len(self.runs) else self.before["width"]

    def sentence(self) -> str:
        """The suggestion in plain words."""
        t, b = self.target, self.before
        unit = t.units
        now = (f"Now {t.describe()} is {_fmt(b['median'], t)} with a {self.prob:.0%} interval "
               f"[{_fmt(b['lower'], t)}, {_fmt(b['upper'], t)}] (width {b['width']:.3g} {unit}).")
        if not len(self.runs):
            return now + f" No candidate run within {self.budget:.3g} FLOPs is expected to narrow it."
        base = self.baselines.set_index("design")["expected_width"]
        cost = float(self.runs["total_C"].iloc[-1])
        return (now + f" After the {len(self.runs)} suggested run(s) ({cost:.3g} FLOPs of {self.budget:.3g}) the "
                f"width is expected to be {self.after:.3g} {unit} ({(self.after / b['width'] - 1):+.0%}); a "
                f"20-tokens-per-parameter ladder of the same cost: {base.get('ladder_20tpp', float('nan')):.3g}; "
                f"random candidates of the same cost: {base.get('random', float('nan')):.3g}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the CLI's ``--json``)."""
        from bayes_scaling.outputs import json_records

        link = self.target.link
        return {"target": {"kind": self.target.kind, "N": self.target.N, "D": self.target.D, "C": self.target.C,
                           "metric": link.metric if link is not None else None, "units": self.target.units},
                "budget": self.budget, "prob": self.prob, "interval": {"kind": KIND, "prob": self.prob},
                "before": self.before, "after": self.after,
                "runs": json_records(self.runs), "baselines": json_records(self.baselines), "info": self.info,
                "sentence": self.sentence()}

    def summary(self) -> pd.DataFrame:
        """The suggested runs in order, with the target's expected interval after each."""
        return self.runs


def _fmt(value: float, target: Target) -> str:
    return f"{value:.4g}" if target.kind in ("loss", "metric") else f"{value:.3g}"


def candidate_grid(fit: Fit, budget: float, *, tokens_per_param: Sequence[float] = GRID_TOKENS_PER_PARAM,
                   sizes: int = 10, reach: float = GRID_REACH,
                   flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> pd.DataFrame:
    """Default candidates: model sizes from the sweep's smallest to ``reach`` x its largest, at several ratios.

    ``sizes`` sizes, each at every ``tokens_per_param``, that fit in ``budget`` FLOPs. Columns ``N``, ``D``, ``C``.
    """
    n = fit.sweep.column("N")
    grid = np.geomspace(n.min(), n.max() * reach, sizes)
    rows = [(N, N * tpp) for N in grid for tpp in tokens_per_param]
    frame = pd.DataFrame(rows, columns=["N", "D"])
    frame["C"] = flops_per_param_token * frame["N"] * frame["D"]
    return frame[frame["C"] <= budget].reset_index(drop=True)


class _Preposterior:
    """Posterior draws, simulated outcomes and reweighting for one fit and target."""

    def __init__(self, fit: Fit, target: Target, *, prob: float, scenarios: int, draws: int,
                 flops_per_param_token: float, rng: np.random.Generator) -> None:
        from bayes_scaling.forecast import points_frame
        from bayes_scaling.likelihoods import get_noise_model

        self.fit, self.target, self.rng = fit, target, rng
        self.prob = prob
        law_draws = fit.draws(fit.law.param_names)
        noise_draws = fit.draws(fit.noise_names)
        total = len(next(iter(law_draws.values())))
        pick = rng.choice(total, size=min(draws, total), replace=False)
        self.params = {k: v[pick] for k, v in law_draws.items()}
        self.noise = {k: v[pick] for k, v in noise_draws.items()}
        self.S = len(pick)
        self.noise_model = get_noise_model(fit.likelihood)
        self.scenario_draws = rng.choice(self.S, size=scenarios, replace=scenarios > self.S)
        self.columns = distance_columns(fit.law)
        self.ranges = sweep_ranges(fit.sweep, self.columns)
        # the target per draw: the expected loss from the predictive engine (law's mean plus the extrapolation
        # term, whose distance the sweep's range sets), or log N_opt; one engine seed, so every design is
        # scored against the same extrapolation draws
        if target.kind in ("loss", "metric"):
            self.point = points_frame(N=target.N, D=target.D, C=flops_per_param_token * target.N * target.D)
            self.engine_seed = int(rng.integers(2**31))
            if target.kind == "metric":
                from bayes_scaling.predictive import pair_draws

                self.link_params = pair_draws(target.link.draws(), self.S, rng)
        else:
            from bayes_scaling.planning import optimal_n_draws

            n_opt = optimal_n_draws(fit, target.C, flops_per_param_token=flops_per_param_token)
            self.base = np.log(n_opt[pick])
            if not np.isfinite(self.base).all():
                raise ValueError(f"the compute-optimal N at {target.C:.3g} FLOPs is undefined for some draws")

    def values(self, ranges: Mapping[str, tuple[float, float]]) -> np.ndarray:
        """The target per draw given the sweep's ranges (they set the extrapolation distance)."""
        if self.target.kind == "n_opt":
            return self.base
        from bayes_scaling.predictive import predict

        values = predict(self.fit, self.point, params=self.params, noise=self.noise, seed=self.engine_seed,
                         ranges=ranges).expected[:, 0]
        if self.target.kind == "metric":  # the error through the link, one link draw paired with each loss draw
            link = self.target.link
            with np.errstate(over="ignore"):
                return np.clip(link.link.mean(np, self.link_params, np.exp(values), link.chance, link.reference),
                               0.0, 1.0)
        return values

    def extended(self, ranges: Mapping[str, tuple[float, float]], runs: pd.DataFrame) -> dict[str, tuple[float, float]]:
        added = sweep_ranges(runs, list(ranges))
        return {c: (min(low, added[c][0]), max(high, added[c][1])) for c, (low, high) in ranges.items()}

    def log_likelihoods(self, runs: pd.DataFrame) -> np.ndarray:
        """Per run, scenario and draw: the log density of the scenario's simulated outcome under the draw.

        Shape (runs, scenarios, draws). Outcomes: the scenario's draw of the law plus the fitted noise.
        """
        log_mean = self.fit.log_mean(runs, draws=self.params)  # (draws, runs)
        j = self.scenario_draws
        outcomes = log_mean[j, :] + self.noise_model.sample(self.rng, {k: v[j] for k, v in self.noise.items()},
                                                            (len(j), len(runs)))
        residual = outcomes.T[:, :, None] - log_mean.T[:, None, :]  # (runs, scenarios, draws)
        noise = {k: v[None, None, :] for k, v in self.noise.items()}
        return self.noise_model.logpdf(residual, noise)

    def interval(self, log_weights: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per scenario: lower and upper bounds of the reweighted target, its width, and the weights' ESS."""
        w = np.exp(log_weights - log_weights.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        lo, hi = weighted_equal_tailed(values, w, self.prob)
        ess = 1.0 / (w**2).sum(axis=-1)
        lower, upper = self._scale(lo), self._scale(hi)
        return lower, upper, self._width(lower, upper), ess

    def _scale(self, values: np.ndarray) -> np.ndarray:
        return values if self.target.kind == "metric" else np.exp(values)

    def _width(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        return np.log10(upper / lower) if self.target.kind == "n_opt" else upper - lower

    def expected(self, runs: pd.DataFrame) -> dict[str, float]:
        """Expected interval of the target after ``runs`` (columns N, D, C)."""
        ranges = self.extended(self.ranges, runs) if len(runs) else self.ranges
        log_w = self.log_likelihoods(runs).sum(axis=0) if len(runs) else np.zeros((len(self.scenario_draws), self.S))
        lower, upper, width, ess = self.interval(log_w, self.values(ranges))
        return {"expected_width": float(width.mean()), "expected_lower": float(lower.mean()),
                "expected_upper": float(upper.mean()), "ess": float(ess.mean())}


def ladder_design(cost: float, sizes: np.ndarray, *,
                  flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> pd.DataFrame:
    """A 20-tokens-per-parameter ladder over ``sizes``, largest first, costing at most ``cost`` FLOPs.

    The baseline design of :func:`suggest_runs`. Columns ``N``, ``D``, ``C``.
    """
    rows, total = [], 0.0
    for n in np.sort(np.unique(sizes))[::-1]:
        c = flops_per_param_token * 20.0 * n * n
        if total + c <= cost:
            rows.append((n, 20.0 * n, c))
            total += c
    return pd.DataFrame(rows, columns=["N", "D", "C"])


def random_design(pool: pd.DataFrame, cost: float, rng: np.random.Generator) -> list[int]:
    """Positions of random candidates of ``pool`` (column ``C``), taken in random order while they fit ``cost``."""
    picks, total = [], 0.0
    for c in rng.permutation(len(pool)):
        run_cost = float(pool["C"].iloc[c])
        if total + run_cost <= cost:
            picks.append(int(c))
            total += run_cost
    return picks


def _greedy(pre: _Preposterior, pool: pd.DataFrame, ll: np.ndarray, width: float, budget: float, k: int | None,
            *, per_flop: bool) -> tuple[list[int], list[dict[str, Any]], np.ndarray]:
    """Add runs one at a time by expected narrowing of the target (per FLOP, or alone) while the budget lasts."""
    log_w = np.zeros((len(pre.scenario_draws), pre.S))
    ranges, spent = pre.ranges, 0.0
    chosen: list[int] = []
    rows: list[dict[str, Any]] = []
    value = np.full(len(pool), np.nan)
    costs = pool["C"].to_numpy(float)
    while k is None or len(chosen) < k:
        best, best_score, best_stats = None, 0.0, None
        for c in range(len(pool)):
            if c in chosen or spent + costs[c] > budget:
                continue
            trial = pre.extended(ranges, pool.iloc[[c]])
            lower, upper, w, ess = pre.interval(log_w + ll[c], pre.values(trial))
            gain = width - float(w.mean())
            if not chosen:
                value[c] = gain / costs[c]
            score = gain / costs[c] if per_flop else gain
            if gain > 0 and score > best_score:
                best, best_score = c, score
                best_stats = (float(lower.mean()), float(upper.mean()), float(w.mean()), float(ess.mean()), trial)
        if best is None or best_stats is None:
            break
        lower_m, upper_m, width, ess_m, ranges = best_stats
        log_w = log_w + ll[best]
        spent += costs[best]
        chosen.append(best)
        run = pool.iloc[best]
        rows.append({"N": run["N"], "D": run["D"], "C": run["C"], "tokens_per_param": run["D"] / run["N"],
                     "total_C": spent, "expected_width": width, "expected_lower": lower_m,
                     "expected_upper": upper_m, "ess": ess_m})
    return chosen, rows, value


def suggest_runs(
    fit: Fit,
    budget: float,
    target: Any,
    *,
    candidates: pd.DataFrame | None = None,
    k: int | None = None,
    prob: float | None = None,
    scenarios: int = 32,
    draws: int = 2000,
    random_designs: int = 20,
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
    seed: int | None = 0,
) -> Suggestion:
    """Choose the next training runs within ``budget`` FLOPs that are expected to sharpen ``target`` most.

    Parameters
    ----------
    fit : Fit
        A fit of a law of N and D (one sweep, not pooled).
    budget : float
        FLOPs available for the new runs (each costs ``flops_per_param_token * N * D``).
    target : mapping, tuple or Target
        ``{"N": .., "D": ..}`` or ``(N, D)``: the loss of that run (its credible interval, with the extrapolation
        term); ``{"C": ..}``: the compute-optimal model size at C FLOPs; ``{"N": .., "D": .., "downstream": link}``:
        the expected benchmark error of that run through a link fit (:func:`~bayes_scaling.downstream.fit_downstream`;
        new runs sharpen the loss, the link's own spread stays).
    candidates : DataFrame, optional
        Runs to choose from (columns ``N`` and ``D``, e.g. the shapes a code base supports). Default:
        :func:`candidate_grid` (sizes from the sweep's smallest to 4x its largest, 5-80 tokens per parameter).
    k : int, optional
        Most runs to choose (default: as many as the budget allows and help).
    prob : float
        Probability of the target's interval.
    scenarios : int
        Simulated outcomes per candidate (more: smoother expected widths, slower).
    draws : int
        Posterior draws used (a random subset).
    random_designs : int
        Random same-cost designs averaged for the baseline.
    seed : int, optional

    Returns
    -------
    Suggestion
        The chosen runs, the target's interval before and expected after each, baselines of the same cost.
    """
    prob = check_prob(prob)
    if fit.group is not None:
        raise ValueError("suggest_runs takes a fit of one sweep; pick a group with fit.group_fit(label)")
    if not {"N", "D"} <= set(fit.law.inputs):
        raise ValueError(f"suggest_runs needs a law of N and D; {fit.law.name!r} takes {', '.join(fit.law.inputs)}")
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a positive number of FLOPs, got {budget}")
    prob = check_prob(prob)
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    goal = Target.of(target)
    if candidates is None:
        pool = candidate_grid(fit, budget, flops_per_param_token=flops_per_param_token)
    else:
        missing = [c for c in ("N", "D") if c not in candidates.columns]
        if missing:
            raise ValueError(f"candidates need columns N and D; missing {', '.join(missing)}")
        pool = candidates[["N", "D"]].astype(float).reset_index(drop=True)
        bad = ~(np.isfinite(pool.to_numpy()) & (pool.to_numpy() > 0)).all(axis=1)
        if bad.any():
            raise ValueError(f"candidate rows {np.flatnonzero(bad)[:5].tolist()} need finite N and D > 0")
        pool["C"] = flops_per_param_token * pool["N"] * pool["D"]
    rng = np.random.default_rng(seed)
    pre = _Preposterior(fit, goal, prob=prob, scenarios=scenarios, draws=draws,
                        flops_per_param_token=flops_per_param_token, rng=rng)
    now = pre.expected(pool.iloc[:0])
    median = float(pre._scale(np.median(pre.values(pre.ranges))))
    before = {"median": median, "lower": now["expected_lower"], "upper": now["expected_upper"],
              "width": now["expected_width"]}

    ll = pre.log_likelihoods(pool) if len(pool) else np.zeros((0, scenarios, pre.S))
    # greedy by narrowing per FLOP can spend the budget on cheap runs that help little; greedy by narrowing alone
    # can miss many cheap good runs: both are run and the design that ends narrower is kept
    designs = [_greedy(pre, pool, ll, before["width"], budget, k, per_flop=per_flop) for per_flop in (True, False)]
    chosen, rows, _ = min(designs, key=lambda d: (d[1][-1]["expected_width"] if d[1] else before["width"],
                                                  sum(r["C"] for r in d[1])))
    value = designs[0][2]  # the first step's narrowing per FLOP of every candidate
    runs = interval_table(pd.DataFrame(rows, columns=["N", "D", "C", "tokens_per_param", "total_C", "expected_width",
                                                      "expected_lower", "expected_upper", "ess"]), prob)
    spent = float(runs["C"].sum())
    table = pool.assign(value_per_flop=value, chosen=[i in chosen for i in range(len(pool))])

    baselines = [{"design": "suggested", "runs": len(runs), "C": spent, "expected_width": runs["expected_width"]
                  .iloc[-1] if len(runs) else before["width"]}]
    if spent > 0:
        ladder = ladder_design(spent, pool["N"].to_numpy(), flops_per_param_token=flops_per_param_token)
        baselines.append({"design": "ladder_20tpp", "runs": len(ladder), "C": float(ladder["C"].sum()),
                          "expected_width": pre.expected(ladder)["expected_width"]})
        widths, costs, counts = [], [], []
        for _ in range(random_designs):
            runs_ = pool.iloc[random_design(pool, spent, rng)]
            widths.append(pre.expected(runs_)["expected_width"])
            costs.append(float(runs_["C"].sum()))
            counts.append(len(runs_))
        baselines.append({"design": "random", "runs": float(np.mean(counts)), "C": float(np.mean(costs)),
                          "expected_width": float(np.mean(widths))})
    low_ess = bool(len(runs) and runs["ess"].min() < MIN_ESS)
    info = {"scenarios": scenarios, "draws": pre.S, "seed": seed, "candidates": len(pool),
            "low_ess": low_ess, "flops_per_param_token": flops_per_param_token}
    return Suggestion(target=goal, budget=float(budget), prob=prob, before=before, runs=runs,
                      baselines=pd.DataFrame(baselines), candidates=table, info=info)
