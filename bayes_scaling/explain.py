"""Why Kaplan and Chinchilla disagree: the known causes, each measured with posteriors.

Kaplan et al. (2020) found a compute-optimal exponent a ≈ 0.73 (N_opt ∝ C^a), Hoffmann et al. (2022) a ≈ 0.5. Three
causes are known, and :func:`bayes_scaling.workflows.explain` measures each on a sweep:

1. **Parameter counting** (Pearce & Song 2024): N with or without embeddings. The same runs are fitted with each
   count as N and compared by PSIS-LOO and by leave-largest-out; :func:`counting_table` gives a under each.
2. **Compute range**: a local slope measured at small budgets. Fits on rolling windows of compute;
   :func:`window_table` gives a(C) with intervals.
3. **Training protocol** (Porian et al. 2024): warmup, decay, tuned hyper-parameters, counting. A pooled fit across
   setups with setup-level exponents; :func:`protocol_table` gives each setup's a and :func:`protocol_effects`
   the posterior probability that changing one factor moves a by more than ``threshold``.

This module computes tables from fits (no sampling); :func:`verdict` puts them in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.comparison import exponent_draws
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.results import Result

if TYPE_CHECKING:
    from bayes_scaling.posterior import Fit

__all__ = ["CHINCHILLA_A", "KAPLAN_A", "Explanation", "counting_table", "protocol_effects", "protocol_factors",
           "protocol_table", "verdict", "window_table"]

#: Kaplan et al.'s compute-optimal exponent.
KAPLAN_A = 0.73
#: Hoffmann et al.'s (Chinchilla) compute-optimal exponent.
CHINCHILLA_A = 0.5


def _a_row(draws: np.ndarray, prob: float) -> dict[str, float]:
    low, high = equal_tailed(draws, prob)
    return {"a": float(np.median(draws)), "a_lower": float(low), "a_upper": float(high),
            "p_above_0.6": float((draws > 0.6).mean())}


def counting_table(fits: Mapping[str, Fit], *, loo: pd.DataFrame | None = None,
                   holdout: pd.DataFrame | None = None, prob: float | None = None) -> pd.DataFrame:
    """Per parameter count (fits of the same runs, N read from each count column): a, LOO and leave-largest-out."""
    prob = check_prob(prob)
    rows = {count: _a_row(exponent_draws(f)["a"], prob) for count, f in fits.items()}
    table = pd.DataFrame(rows).T
    if loo is not None:
        table["elpd_loo"] = loo["elpd"].reindex(table.index)
        table["loo_weight"] = loo["weight"].reindex(table.index)
    if holdout is not None:
        table["elpd_holdout"] = holdout["elpd_holdout"].reindex(table.index)
    table.index.name = "count"
    return interval_table(table, prob)


def window_table(fits: Mapping[float, Fit], *, prob: float | None = None) -> pd.DataFrame:
    """The exponent a per compute window: ``fits`` maps each window's geometric-mean budget (FLOPs) to its fit."""
    prob = check_prob(prob)
    rows = []
    for centre, f in sorted(fits.items()):
        budgets = f.sweep.column("C")
        rows.append({"C": float(centre), "C_min": float(budgets.min()), "C_max": float(budgets.max()),
                     "runs": len(f.sweep), **_a_row(exponent_draws(f)["a"], prob)})
    return interval_table(pd.DataFrame(rows), prob)


def protocol_factors(data: pd.DataFrame, by: str, *, max_levels: int = 5) -> list[str]:
    """Columns that name a setup's protocol: constant within each ``by`` group, 2 to ``max_levels`` values across."""
    out = []
    for column in data.columns:
        if column == by or column in ("N", "D", "C", "loss") or data[column].dtype.kind in "fc":
            continue
        within = data.groupby(by)[column].nunique(dropna=False)
        levels = data[column].nunique(dropna=False)
        if (within == 1).all() and 2 <= levels <= max_levels:
            out.append(column)
    return out


def _group_a(pooled: Fit) -> dict[str, np.ndarray]:
    return {label: exponent_draws(pooled.group_fit(label))["a"] for label in pooled.groups}


def protocol_table(pooled: Fit, *, prob: float | None = None) -> pd.DataFrame:
    """Each group's (setup's) a from a pooled fit with group-level exponents."""
    prob = check_prob(prob)
    table = pd.DataFrame({label: _a_row(a, prob) for label, a in _group_a(pooled).items()}).T
    table.index.name = pooled.group
    return interval_table(table, prob)


def protocol_effects(pooled: Fit, data: pd.DataFrame, factors: Sequence[str], *,
                     threshold: float = 0.1, prob: float | None = None) -> pd.DataFrame:
    """Per factor: the change in a between setups that differ in that factor alone, draw by draw.

    Every pair of groups whose protocol columns agree except ``factor`` contributes its paired draws of the
    difference in a (the pooled posterior's joint draws). Columns: the two levels, ``pairs``, ``delta_a`` (median of
    a(level_2) - a(level_1) over the pooled pair draws), its interval and ``p_moves`` (posterior probability that
    the change exceeds ``threshold`` in size).
    """
    prob = check_prob(prob)
    a = _group_a(pooled)
    levels = data.groupby(pooled.group)[list(factors)].first()
    rows = []
    for factor in factors:
        others = [f for f in factors if f != factor]
        for first, second in combinations(sorted(levels[factor].astype(str).unique()), 2):
            diffs = []
            for g1, g2 in combinations(levels.index, 2):
                l1, l2 = str(levels.loc[g1, factor]), str(levels.loc[g2, factor])
                if {l1, l2} != {first, second} or any(levels.loc[g1, o] != levels.loc[g2, o] for o in others):
                    continue
                lo, hi = (g1, g2) if l1 == first else (g2, g1)
                diffs.append(a[str(hi)] - a[str(lo)])
            if not diffs:
                continue
            d = np.concatenate(diffs)
            low, high = equal_tailed(d, prob)
            rows.append({"factor": factor, "from": first, "to": second, "pairs": len(diffs),
                         "delta_a": float(np.median(d)), "delta_lower": float(low), "delta_upper": float(high),
                         "p_moves": float((np.abs(d) > threshold).mean())})
    return interval_table(pd.DataFrame(rows, columns=["factor", "from", "to", "pairs", "delta_a", "delta_lower",
                                                      "delta_upper", "p_moves"]), prob)


@dataclass
class Explanation(Result):
    """The causes measured on one sweep (each table None where not asked or not measurable)."""

    kind: ClassVar[str] = "explanation"

    counting: pd.DataFrame | None = None
    windows: pd.DataFrame | None = None
    protocol: pd.DataFrame | None = None
    effects: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def verdict(self) -> list[str]:
        """One line per cause, in words with numbers."""
        return verdict(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        from bayes_scaling.outputs import json_records

        def records(table: pd.DataFrame | None, index: bool = True) -> Any:
            if table is None:
                return None
            return json_records(table.reset_index() if index else table)

        stated = next((t.attrs["interval"] for t in (self.counting, self.windows, self.protocol, self.effects)
                       if t is not None and "interval" in t.attrs), None)
        return {"interval": stated, "counting": records(self.counting), "windows": records(self.windows, index=False),
                "protocol": records(self.protocol), "effects": records(self.effects, index=False),
                "notes": self.notes, "verdict": self.verdict()}

    def summary(self) -> pd.DataFrame:
        """The findings, one per line (:meth:`verdict`)."""
        return pd.DataFrame({"finding": self.verdict()})


def _fmt(row: pd.Series) -> str:
    return f"a = {row['a']:.2f} [{row['a_lower']:.2f}, {row['a_upper']:.2f}]"


def verdict(explanation: Explanation) -> list[str]:
    """Short verdict lines per cause."""
    lines = []
    counting = explanation.counting
    if counting is not None and len(counting) >= 2:
        best = counting["elpd_loo"].idxmax() if "elpd_loo" in counting else None
        parts = "; ".join(f"{c}: {_fmt(r)}" for c, r in counting.iterrows())
        high, low = counting["a"].idxmax(), counting["a"].idxmin()
        lines.append(f"Parameter counting: {parts}. Counting by {high} gives the higher a (by "
                     f"{counting.loc[high, 'a'] - counting.loc[low, 'a']:.2f})"
                     + (f"; LOO prefers {best} (stacking weight {counting.loc[best, 'loo_weight']:.2f})"
                        if best is not None else "") + ".")
    windows = explanation.windows
    if windows is not None and len(windows) >= 2:
        first, last = windows.iloc[0], windows.iloc[-1]
        inside = bool(((windows["a_lower"] <= KAPLAN_A) & (KAPLAN_A <= windows["a_upper"])).any())
        lines.append(f"Compute range: at {first['C']:.2g} FLOPs {_fmt(first)}, at {last['C']:.2g} FLOPs "
                     f"{_fmt(last)} ({len(windows)} windows); Kaplan's {KAPLAN_A} is "
                     + ("inside some window's interval." if inside else "outside every window's interval."))
    effects = explanation.effects
    if effects is not None and len(effects):
        parts = "; ".join(f"{r['factor']} {r['from']} -> {r['to']}: delta a {r['delta_a']:+.2f} "
                          f"[{r['delta_lower']:+.2f}, {r['delta_upper']:+.2f}], P(|delta a| > 0.1) {r['p_moves']:.2f}"
                          for _, r in effects.iterrows())
        lines.append(f"Protocol: {parts}.")
    elif explanation.protocol is not None:
        table = explanation.protocol
        lines.append(f"Protocol: a ranges from {table['a'].min():.2f} to {table['a'].max():.2f} across "
                     f"{len(table)} setups.")
    return lines + explanation.notes
