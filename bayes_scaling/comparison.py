"""Comparing fitted laws: PSIS-LOO and stacking (ArviZ), compute-optimal exponents, hypothesis verdicts.

The central question users ask of a sweep: does model size dominate (Kaplan et al. 2020,
N_opt ∝ C^0.73) or do parameters and data scale equally (Hoffmann et al. 2022, a ≈ 0.5)?
For the Chinchilla law with C = 6·N·D the compute-optimal allocation is
N_opt ∝ C^a, D_opt ∝ C^b with a = β/(α+β), b = α/(α+β); for Kaplan's L(N, D) the same
holds with (α, β) → (α_N, α_D).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.laws import laws as registered_laws
from bayes_scaling.results import Result

if TYPE_CHECKING:
    from bayes_scaling.posterior import Fit

__all__ = ["DEFAULT_LAWS", "DEFAULT_REGIONS", "Hypotheses", "compare", "exponent_draws", "exponent_summary",
           "hypotheses", "parse_region", "region_probability"]

#: Default hypotheses of a Kaplan-vs-Chinchilla comparison.
DEFAULT_LAWS = ("chinchilla", "kaplan", "allocation_a073", "allocation_a050")
DEFAULT_REGIONS = ("a > 0.6", "|a - 0.5| < 0.05", "|a - 0.73| < 0.05")

#: Pareto k above which a PSIS-LOO point is unreliable.
PARETO_K_BAD = 0.7


def compare(fits: Mapping[str, Fit], *, method: str = "stacking") -> pd.DataFrame:
    """Rank fitted laws by PSIS-LOO expected log predictive density.

    Parameters
    ----------
    fits : mapping of name to Fit
        Fits of different laws **to the same sweep** (with log-likelihood stored).
    method : str
        Weighting method passed to :func:`arviz.compare` (``"stacking"`` by default).

    Returns
    -------
    pandas.DataFrame
        One row per law, best first: ``rank``, ``elpd`` (PSIS-LOO, log-loss scale) and its
        ``se``, ``elpd_diff`` and ``dse`` to the best, ``p_loo`` (effective parameters),
        ``weight`` (stacking weights, summing to 1), ``n_bad_k`` (points with Pareto k >
        0.7) and ``reliable`` (False when LOO should not be trusted).
    """
    import arviz as az

    if len(fits) < 2:
        raise ValueError("compare needs at least two fits")
    sizes = {name: len(f.sweep) for name, f in fits.items()}
    first = next(iter(fits.values()))
    for name, f in fits.items():
        if "log_likelihood" not in f.idata.children:
            raise ValueError(f"fit {name!r} has no stored log-likelihood; refit with log_likelihood=True")
        if sizes[name] != len(first.sweep) or not np.allclose(f.sweep.column("loss"), first.sweep.column("loss")):
            raise ValueError(f"fit {name!r} was made on different data; LOO compares fits to the same sweep")
    loos = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, f in fits.items():
            loos[name] = az.loo(f.idata, pointwise=True)
        table = az.compare(loos, method=method, round_to="none")
    bad = {name: int((np.asarray(loo.pareto_k) > PARETO_K_BAD).sum()) for name, loo in loos.items()}
    out = pd.DataFrame(
        {
            "rank": table["rank"].astype(int),
            "elpd": table["elpd"].astype(float),
            "se": table["se"].astype(float),
            "elpd_diff": table["elpd_diff"].astype(float),
            "dse": table["dse"].astype(float),
            "p_loo": table["p"].astype(float),
            "weight": table["weight"].astype(float),
        }
    )
    out["n_bad_k"] = [bad[name] for name in out.index]
    out["reliable"] = [bad[name] == 0 for name in out.index]
    out.index.name = "law"
    unreliable = [name for name in out.index if not out.loc[name, "reliable"]]
    if unreliable:
        warnings.warn(
            "PSIS-LOO is unreliable for "
            + ", ".join(f"{n} ({bad[n]} points with Pareto k > {PARETO_K_BAD})" for n in unreliable)
            + "; prefer the extrapolation scores or K-fold cross-validation for these laws",
            UserWarning,
            stacklevel=2,
        )
    return out


def exponent_draws(fit_: Fit) -> dict[str, np.ndarray]:
    """Posterior draws of the compute-optimal exponents ``a`` (N_opt ∝ C^a) and ``b`` (D_opt ∝ C^b)."""
    names = fit_.law.optimal_exponents
    if names is None:
        having = [name for name, law in registered_laws().items() if law.optimal_exponents is not None]
        raise ValueError(
            f"law {fit_.law.name!r} has no compute-optimal exponents; use one of {', '.join(having)}"
        )
    draws = fit_.draws(names)
    n_exp, d_exp = draws[names[0]], draws[names[1]]
    return {"a": d_exp / (n_exp + d_exp), "b": n_exp / (n_exp + d_exp)}


def exponent_summary(fit_: Fit, *, prob: float | None = None) -> pd.DataFrame:
    """Median, mean, sd and equal-tailed interval of a and b."""
    prob = check_prob(prob)
    rows = {}
    for key, values in exponent_draws(fit_).items():
        low, high = equal_tailed(values, prob)
        rows[key] = {"median": np.median(values), "mean": values.mean(), "sd": values.std(), "lower": low,
                     "upper": high}
    table = pd.DataFrame(rows).T
    table.index.name = "exponent"
    return interval_table(table, prob)


_REGION = re.compile(
    r"^\s*(?:(?P<lo>[-+\d.eE]+)\s*<\s*)?(?P<var>[ab])\s*(?P<op>[<>])\s*(?P<x>[-+\d.eE]+)\s*$"
    r"|^\s*\|\s*(?P<var2>[ab])\s*-\s*(?P<c>[-+\d.eE]+)\s*\|\s*<\s*(?P<w>[-+\d.eE]+)\s*$"
)


def parse_region(region: str) -> tuple[str, float, float]:
    """Read a region of an exponent: ``(variable, low, high)`` with the open interval ``low < variable < high``.

    Regions read like ``"a > 0.6"``, ``"b < 0.4"``, ``"0.45 < a < 0.55"`` or ``"|a - 0.5| < 0.05"``; anything
    else raises ``ValueError`` (checked before any fitting by :func:`bayes_scaling.workflows.compare_hypotheses`).
    """
    match = _REGION.match(region) if isinstance(region, str) else None
    if match is None:
        raise ValueError(
            f"cannot read region {region!r}; write e.g. 'a > 0.6', 'b < 0.4', '0.45 < a < 0.55' or '|a - 0.5| < 0.05'"
        )
    try:
        if match["var2"]:
            centre, width = float(match["c"]), float(match["w"])
            return match["var2"], centre - width, centre + width
        x = float(match["x"])
        if match["lo"] is not None:
            if match["op"] != "<":
                raise ValueError("write 'low < a < high'")
            return match["var"], float(match["lo"]), x
        return (match["var"], x, math.inf) if match["op"] == ">" else (match["var"], -math.inf, x)
    except ValueError as exc:
        raise ValueError(f"cannot read region {region!r}: {exc}") from None


def region_probability(fit_: Fit, region: str) -> float:
    """Posterior probability of a region of the exponents (see :func:`parse_region` for how regions read)."""
    var, low, high = parse_region(region)
    values = exponent_draws(fit_)[var]
    return float(((values > low) & (values < high)).mean())


@dataclass(frozen=True)
class Hypotheses(Result):
    """Kaplan vs Chinchilla from one sweep (see :func:`hypotheses`).

    Attributes
    ----------
    fits : dict
        Law name -> :class:`~bayes_scaling.posterior.Fit` on the whole sweep.
    loo : pandas.DataFrame
        :func:`compare`'s table.
    extrapolation : pandas.DataFrame or None
        Leave-largest-out scores (:func:`bayes_scaling.scores.holdout_scores`), when computed.
    exponents_law : str or None
        The law whose compute-optimal exponents are reported (the first in which a is free).
    exponents : pandas.DataFrame or None
        :func:`exponent_summary` of that law.
    regions : dict
        Region -> posterior probability.
    verdict : str
        The answer in plain words.
    """

    kind: ClassVar[str] = "hypotheses"

    fits: dict[str, Any]
    loo: pd.DataFrame
    extrapolation: pd.DataFrame | None
    exponents_law: str | None
    exponents: pd.DataFrame | None
    regions: dict[str, float]
    verdict: str

    def diagnostics(self) -> dict[str, Any]:
        """Each law's fit :class:`~bayes_scaling.inference.Diagnostics`, by law name."""
        return {name: fit_.diagnostics() for name, fit_ in self.fits.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling compare --json``)."""
        from bayes_scaling.outputs import table_records

        return {"laws": list(self.fits), "loo": table_records(self.loo),
                "extrapolation": table_records(self.extrapolation), "exponents_law": self.exponents_law,
                "exponents": table_records(self.exponents),
                "interval": getattr(self.exponents, "attrs", {}).get("interval"),
                "regions": self.regions,
                "diagnostics": {name: d.to_dict() for name, d in self.diagnostics().items()},
                "verdict": self.verdict}

    def summary(self) -> pd.DataFrame:
        """The laws compared by PSIS-LOO (stacking weights)."""
        return self.loo


def hypotheses(
    fits: Mapping[str, Fit],
    *,
    extrapolation: pd.DataFrame | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
    prob: float | None = None,
) -> Hypotheses:
    """Compare fits of competing laws to one sweep: LOO/stacking, exponent posteriors, region probabilities, verdict.

    ``extrapolation`` adds leave-largest-out scores to the verdict; :func:`bayes_scaling.workflows.compare_hypotheses`
    makes the fits and those scores from a sweep.
    """
    prob = check_prob(prob)
    if len(fits) < 2:
        raise ValueError("give at least two laws to compare")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loo = compare(fits)
    # report a from the first law in which it is free (not fixed, as in allocation_a050 or chinchilla_tied)
    free_a = [law for law, f in fits.items() if f.law.optimal_exponents is not None
              and np.ptp(exponent_draws(f)["a"]) > 0]
    exponents_law = free_a[0] if free_a else None
    exponents = exponent_summary(fits[exponents_law], prob=prob) if exponents_law else None
    probabilities = {r: region_probability(fits[exponents_law], r) for r in regions} if exponents_law else {}
    verdict = _verdict(loo, extrapolation, exponents_law, exponents, probabilities, prob)
    return Hypotheses(fits=dict(fits), loo=loo, extrapolation=extrapolation, exponents_law=exponents_law,
                      exponents=exponents, regions=probabilities, verdict=verdict)


def _verdict(
    loo: pd.DataFrame,
    extra: pd.DataFrame | None,
    exponents_law: str | None,
    exponents: pd.DataFrame | None,
    probabilities: Mapping[str, float],
    prob: float,
) -> str:
    best = loo.index[0]
    parts = [
        f"In-sample PSIS-LOO ranks {best} first with stacking weight {loo.loc[best, 'weight']:.2f}"
    ]
    if len(loo) > 1:
        second = loo.index[1]
        diff, dse = -loo.loc[second, "elpd_diff"], loo.loc[second, "dse"]
        if diff < 4:
            clear = "a small difference: below 4 ELPD LOO cannot separate the two reliably"
        elif diff > 2 * dse:
            clear = "a clear margin"
        else:
            clear = "a margin within about two standard errors"
        parts[0] += f"; the runner-up {second} trails by {diff:.1f} ± {dse:.1f} ELPD ({clear})"
    if not loo["reliable"].all():
        parts[0] += " (LOO is unreliable for " + ", ".join(loo.index[~loo["reliable"]]) + ")"
    parts[0] += "."
    if extra is not None:
        top = extra.index[0]
        parts.append(
            f"Fitted on models below {extra['cutoff_N'].iloc[0]:.3g} parameters and scored on the "
            f"{int(extra['n_holdout'].iloc[0])} larger runs, {top} extrapolates best "
            f"(median error {extra.loc[top, 'mape']:.2f}%)"
            + (f", ahead of {extra.index[1]} by {-extra['elpd_diff'].iloc[1]:.1f} ± {extra['dse'].iloc[1]:.1f} ELPD"
               if len(extra) > 1 else "")
            + "."
        )
    if exponents is not None:
        a = exponents.loc["a"]
        inside = [name for name, value in (("Kaplan's 0.73", 0.73), ("Chinchilla's 0.5", 0.5))
                  if a["lower"] <= value <= a["upper"]]
        outside = [name for name, value in (("Kaplan's 0.73", 0.73), ("Chinchilla's 0.5", 0.5))
                   if not a["lower"] <= value <= a["upper"]]
        sentence = (
            f"Under {exponents_law}, the compute-optimal exponent a (N_opt ∝ C^a) has median {a['median']:.3f} "
            f"and {prob:.0%} interval [{a['lower']:.3f}, {a['upper']:.3f}]"
        )
        if inside:
            sentence += f", which contains {' and '.join(inside)}"
        if outside:
            sentence += f"{' but' if inside else ','} excludes {' and '.join(outside)}"
        parts.append(sentence + ".")
        if probabilities:
            parts.append("Posterior probabilities: " + "; ".join(f"P({r}) = {p:.3f}" for r, p in probabilities.items())
                         + ".")
    parts.append(
        "These probabilities hold within the chosen law family and priors; a sweep that does not reach the "
        "target scale cannot rule out a change of regime there."
    )
    return " ".join(parts)
