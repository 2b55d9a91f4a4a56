"""Which recipe wins at scale: a paired comparison of data mixes, architectures or optimizers.

:func:`compare_recipes` fits one law to the runs of every recipe at once (a pooled fit, see
:mod:`bayes_scaling.model`), in three variants of what differs between recipes:

* ``"E"``: only the irreducible loss (a constant offset in loss);
* ``"levels"``: E and the levels of the N and D terms (the recipes share the exponents);
* ``"exponents"``: every parameter, exponents included (recipes may scale differently and their curves cross).

The variants are compared by PSIS-LOO (one unit per run, or per replicate cell) and **averaged by their stacking
weights**, so a comparison never rests on one chosen form when the data cannot tell the forms apart. Evaluation
noise and replicate runs are split from the scatter around the law (:mod:`bayes_scaling.noise`).

The answers come from paired posterior draws (the same draw of every shared quantity for every recipe):

* at a FLOP budget C, each recipe's compute-optimal loss L_r*(C) (loss at its own best N, D = C / 6N); the
  probability that each recipe is lowest, and that it beats the ``reference``; the loss difference
  L_r* - L_ref* with its interval;
* the **effective-compute multiplier** M_r(C) = C_ref / C, where C_ref is the least compute at which the reference
  reaches L_r*(C) (M > 1: the recipe is worth M times the compute of the reference; ``inf``: the reference never
  gets there);
* where the curves of a recipe and the reference **cross**, inside the data or beyond it, with its probability;
* at a point (N, D), the same without the multiplier.

**Beyond the data.** Each recipe's forecast error grows with the distance beyond its sweep (the extrapolation
term of :mod:`bayes_scaling.extrapolation`, learned from that recipe's forward-chaining folds). Part of that error
is common to recipes trained the same way (the law's form is wrong in the same direction for all) and cancels in a
comparison; the rest does not. The part that does not is learned from the same folds: the held-out runs that two
recipes share (same fold, same N and D) give residual *differences*, and their growth with distance sets the
recipe-specific scale ``kappa_u``. When the recipes share no held-out runs, the whole term is treated as
recipe-specific (``paired=False``): wider, never narrower, intervals.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN, DataError, DataWarning, Sweep, centred_logs, load_sweep
from bayes_scaling.extrapolation import Extrapolation, distance_columns, distance_to, learn, sweep_ranges
from bayes_scaling.inference import Sampling, sample, warn_if_unconverged
from bayes_scaling.intervals import check_prob, equal_tailed, interval_table
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.model import Likelihood, build_model, group_codes, resolve_priors, select_shared
from bayes_scaling.noise import NoiseSplit, find_split, unit_log_likelihood
from bayes_scaling.posterior import Fit
from bayes_scaling.results import Result
from bayes_scaling.threads import serial_blas

__all__ = ["VARIANTS", "RecipeComparison", "compare_recipes", "recipe_variant_shared"]

#: What differs between recipes in each variant of the pooled fit.
VARIANTS: dict[str, str] = {
    "E": "only the irreducible loss E differs",
    "levels": "E and the term levels differ; exponents shared",
    "exponents": "every parameter differs, exponents included",
}
#: Grid of FLOP budgets per decade on which curves, multipliers and crossings are computed.
GRID_PER_DECADE = 24
#: How far beyond the largest asked budget (and below the smallest in the data) the reference's curve is followed
#: to find its matching compute.
REACH_DECADES = 3.0


def recipe_variant_shared(law: ScalingLaw, variant: str) -> tuple[str, ...]:
    """Parameters common to all recipes in ``variant`` (see :data:`VARIANTS`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; use any of {', '.join(VARIANTS)}")
    exponents = tuple(law.exponents or ())
    if variant == "E":
        if "E" not in law.param_names:
            raise ValueError(f"law {law.name!r} has no parameter E; use the 'levels' or 'exponents' variant")
        return tuple(p for p in law.param_names if p != "E")
    if variant == "levels":
        return exponents
    return ()


@dataclass
class RecipeComparison(Result):
    """The answer of :func:`compare_recipes`: tables, the pooled fits behind them, and how they were made.

    Attributes
    ----------
    by : str
        The column naming each run's recipe.
    recipes : list of str
    reference : str
    variants : DataFrame
        One row per variant: PSIS-LOO ``elpd``, ``se``, ``elpd_diff``, ``weight`` (stacking) and what differs.
    budgets : DataFrame
        One row per (budget ``C``, recipe): compute-optimal ``loss`` (median, ``loss_lower``, ``loss_upper``),
        ``p_best``, ``p_beats_reference``, ``diff`` (loss minus the reference's, nats, with bounds), the
        ``multiplier`` (with bounds; ``inf``: the reference never reaches that loss) and ``distance`` (how far
        beyond the recipe's sweep, in its widths).
    target : DataFrame or None
        At the asked points: per (N, D) and recipe ``loss``, ``p_best`` (lowest expected loss),
        ``p_best_run`` (lowest loss of one new run of each recipe there: adds each recipe's scatter around the
        law, the part that recipes share at the same (N, D) drawn once, see ``info["shared_scatter"]``),
        ``p_beats_reference``, ``diff``, ``distance``.
    crossing : DataFrame
        Per recipe other than the reference: ``leader`` (which is better at the smallest budget of the data),
        ``p_cross_within`` (its curve crosses the reference's inside the data's budgets), ``p_cross_beyond``
        (first crossing beyond the data, up to ``searched_to``), and the first crossing's budget ``C_cross``
        (median and bounds over the draws that cross).
    curve : DataFrame
        The multiplier against C on a grid (for :func:`bayes_scaling.plots.plot_multiplier`): ``C``, ``recipe``,
        ``prob`` (a long table: rows at ``prob`` and at 0.5), ``median``, ``lower``, ``upper``,
        ``p_beats_reference``.
    noise : DataFrame
        Per recipe: scatter around the law ``sigma``, median evaluation noise ``eval_sd`` (log-loss), runs and
        replicate cells; ``sigma_seed`` (seed noise, with replicates).
    fits : dict of Fit
        The pooled fit of each variant.
    info : dict
        Budgets of the data, the extrapolation terms, timings, sampling.
    prob : float
        Interval probability.
    """

    kind: ClassVar[str] = "recipes"

    by: str
    recipes: list[str]
    reference: str
    variants: pd.DataFrame
    budgets: pd.DataFrame
    target: pd.DataFrame | None
    crossing: pd.DataFrame
    curve: pd.DataFrame
    noise: pd.DataFrame
    fits: dict[str, Fit] = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)
    prob: float | None = None

    @property
    def best_variant(self) -> str:
        """The variant with the highest PSIS-LOO (the first row of :attr:`variants`)."""
        return str(self.variants.index[0])

    def reference_fit(self) -> Fit:
        """The reference recipe's posterior under the best variant, as a plain fit (for forecasts or a report)."""
        return self.fits[self.best_variant].group_fit(self.reference)

    def verdict(self) -> list[str]:
        """One sentence per (budget, recipe other than the reference), e.g. for a report or a terminal."""
        pct = f"{self.prob:.0%}"
        lines = []
        for _, row in self.budgets.iterrows():
            if row["recipe"] == self.reference:
                continue
            better = row["p_beats_reference"] >= 0.5
            compute = _compute_clause(self.reference, row["recipe"], row["multiplier"], row["multiplier_lower"],
                                      row["multiplier_upper"], pct)
            lines.append(
                f"At {row['C']:.3g} FLOPs, {row['recipe']} {'beats' if better else 'trails'} {self.reference} with "
                f"probability {row['p_beats_reference'] if better else 1 - row['p_beats_reference']:.2f}: loss "
                f"difference {row['diff']:+.4f} nats ({pct} interval {row['diff_lower']:+.4f} to "
                f"{row['diff_upper']:+.4f}); {compute}. P(best of all) = {row['p_best']:.2f}."
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``bayes-scaling recipes --json``)."""
        from bayes_scaling.outputs import json_records

        return {"by": self.by, "recipes": self.recipes, "reference": self.reference, "prob": self.prob,
                "interval": self.budgets.attrs.get("interval"),
                "variants": json_records(self.variants.reset_index()), "budgets": json_records(self.budgets),
                "target": json_records(self.target) if self.target is not None else None,
                "crossing": json_records(self.crossing), "noise": json_records(self.noise),
                "verdict": self.verdict(), "info": self.info}

    def summary(self) -> pd.DataFrame:
        """Per budget and recipe: compute-optimal loss, P(best), loss difference and multiplier."""
        return self.budgets

    def diagnostics(self) -> dict[str, Any]:
        """Each variant's pooled fit :class:`~bayes_scaling.inference.Diagnostics`, by variant."""
        return {name: fit_.diagnostics() for name, fit_ in self.fits.items()}


def _compute_clause(reference: str, recipe: str, median: float, low: float, high: float, pct: str) -> str:
    """How much compute the reference needs to reach the recipe's loss, in words ("never" is said as such)."""
    if not np.isfinite(low):
        return f"{reference} never reaches {recipe}'s loss at any compute (in over {pct} of the draws)"
    if not np.isfinite(median):
        return (f"{reference} most likely never reaches {recipe}'s loss at any compute (where it does, it needs at "
                f"least {low:.3g}x the compute)")
    upper = f"{high:.3g}x" if np.isfinite(high) else "never in some draws"
    return f"{reference} needs {median:.3g}x the compute ({low:.3g}x to {upper}) to reach {recipe}'s loss"


def compare_recipes(
    data: pd.DataFrame | str | Sweep,
    by: str,
    *,
    target: tuple[float, float] | Mapping[str, float] | None = None,
    budgets: float | Sequence[float] | None = None,
    reference: str | None = None,
    law: str | ScalingLaw = "chinchilla",
    variants: Sequence[str] = tuple(VARIANTS),
    interval: tuple[str, str] | str | None = "auto",
    likelihood: Likelihood = "student_t",
    priors: Mapping[str, Any] | None = None,
    prob: float | None = None,
    sampling: Sampling | None = None,
    seed: int = 0,
    warn: bool = True,
    **options: Any,
) -> RecipeComparison:
    """Compare the recipes named in ``data[by]``: who wins at a budget or point, by how much, and by how much compute.

    Parameters
    ----------
    data : DataFrame, CSV path or Sweep
        Runs of all recipes (see :func:`bayes_scaling.load_sweep`) with the column ``by``.
    by : str
        Column naming each run's recipe (data mix, architecture, optimizer, ...); at least two recipes.
    target : (N, D), mapping or table with N and D, optional
        Points to compare the recipes at (numbers or arrays of equal length).
    budgets : float or sequence of float, optional
        FLOP budgets to compare at (compute-optimal loss of each recipe); default: the data's largest budget
        and 10x and 100x beyond it.
    reference : str, optional
        The recipe others are measured against (default: the first label in sorted order).
    law : str or ScalingLaw
        A law of N and D (default ``"chinchilla"``).
    variants : sequence of str
        Which variants of the pooled fit to compare and average (see :data:`VARIANTS`); one variant is used as is.
    interval : "auto", (low, high) column names, or None
        Columns with a confidence interval of each loss (evaluation noise); ``"auto"`` finds ``<x>_lo95`` /
        ``<x>_hi95`` where ``<x>`` is the loss. See :func:`bayes_scaling.noise.find_split`.
    likelihood : {"student_t", "normal"}
        Noise model of runs measured once.
    priors : mapping, optional
        Prior overrides of the law's parameters (each recipe's value gets the same prior).
    prob : float
        Interval probability (default 0.9).
    sampling, **options
        :class:`~bayes_scaling.inference.Sampling` (or its fields as keywords), e.g. ``draws=500``.
    seed : int
        Seed of sampling (unless ``sampling`` sets one) and of the extrapolation draws.
    warn : bool
        Warn when a pooled fit did not converge.

    Returns
    -------
    RecipeComparison

    Raises
    ------
    DataError
        ``by`` is missing or has empty cells, or one recipe only; a recipe has too few runs.
    ValueError
        Unknown ``reference`` or variant, a law without N and D, budgets or target not positive.
    """
    import xarray as xr

    start = time.perf_counter()
    prob = check_prob(prob)
    law = get_law(law)
    if not {"N", "D"} <= set(law.inputs):
        raise ValueError(f"law {law.name!r} is not a law of N and D; compare_recipes needs one (e.g. 'chinchilla')")
    variants = list(dict.fromkeys(variants))
    if not variants:
        raise ValueError("give at least one variant")
    shared_by_variant = {v: recipe_variant_shared(law, v) for v in variants}
    with warnings.catch_warnings():  # repeated rows are read below: as replicates, or dropped as copies
        warnings.filterwarnings("ignore", message=".*repeat earlier runs exactly", category=DataWarning)
        sweep = load_sweep(data)
    sweep.require(law.columns, law=law.name)
    codes, recipes = group_codes(sweep, by)
    if len(recipes) < 2:
        raise DataError(f"column {by!r} names one recipe ({recipes[0]!r}); a comparison needs at least two")
    reference = recipes[0] if reference is None else str(reference)
    if reference not in recipes:
        raise ValueError(f"reference {reference!r} is not a recipe in {by!r}; recipes: {', '.join(recipes)}")
    free = sum(not p.is_fixed for p in law.default_priors.values())
    counts = np.bincount(codes, minlength=len(recipes))
    few = [f"{r} ({c} runs)" for r, c in zip(recipes, counts, strict=True) if c < free + 2]
    if few:
        raise DataError(f"recipes with too few runs for law {law.name!r} ({free} parameters): {', '.join(few)}")
    points = _target_points(target)
    asked = _budgets(budgets, sweep)

    sweep, split = find_split(sweep, [by, *law.columns], interval=interval)
    codes, _ = group_codes(sweep, by)
    config = Sampling.of(sampling, **options)
    if config.seed is None:
        config = replace(config, seed=seed)
    priors = resolve_priors(law, priors, likelihood)
    prior_key = tuple(sorted((k, repr(v)) for k, v in priors.items()))
    scales = sweep.reference()
    fits: dict[str, Fit] = {}
    # The extrapolation terms need each recipe's runs, the law and the priors, not the draws (nor the variant: a
    # recipe's folds are one-sweep refits): they are learned while the first variant's chains sample.
    learned: dict[str, Any] = {}

    def learn_terms() -> None:
        if not learned:
            learned["terms"] = _extrapolation_terms(law, sweep, by, priors, likelihood, recipes, seed)

    for variant in variants:
        # one compiled model for every variant: which parameters are common is data (build_model's switchable)
        model = build_model(law, sweep, priors=priors, likelihood=likelihood, reference=scales, group=by,
                            shared=shared_by_variant[variant], split=split, parameterization="unpooled",
                            switchable=True)
        key = ("recipes", law.name, id(law), likelihood, prior_key, len(recipes), split.has_replicates,
               bool((split.cell < 0).any()))
        idata = sample(model, config, cache_key=key, during=learn_terms)
        idata["posterior"] = xr.DataTree(select_shared(idata["posterior"].to_dataset(), law, priors,
                                                       shared_by_variant[variant]))
        fit = Fit(law=law, sweep=sweep, priors=priors, likelihood=likelihood, reference=scales, idata=idata,
                  info={**config.to_dict(), "variant": variant, "noise_split": split.describe(),
                        "parameterization": "unpooled"}, group=by,
                  shared=shared_by_variant[variant])
        _attach_unit_log_likelihood(fit, codes, split)
        if warn:
            warn_if_unconverged(fit.diagnostics(), label=f"pooled fit of {law.name!r} ({variant!r} differ)")
        fits[variant] = fit
    table = _variant_table(fits)
    sampled = time.perf_counter()

    rng = np.random.default_rng(seed)
    mixed = _mixed_fits(fits, table["weight"], recipes, rng)
    best_variant = str(table.index[0])
    learn_terms()  # (already done while sampling, unless a sampler without background chains ran it first)
    terms, contrast, paired = learned["terms"]
    for pooled in fits.values():  # a recipe's own fit (group_fit) forecasts with the recipe's term, as its table
        pooled.info["extrapolation_by_group"] = {r: terms[r].to_dict() for r in recipes}
    n_draws = mixed[recipes[0]].idata["posterior"].sizes["draw"]
    coefficients = _error_coefficients(terms, contrast, paired, recipes, n_draws, rng)
    ranges = {r: sweep_ranges(mixed[r].sweep, distance_columns(law)) for r in recipes}

    data_c = FLOPS_PER_PARAM_TOKEN * sweep.column("N") * sweep.column("D")
    lo_c, hi_c = float(data_c.min()), float(data_c.max())
    top = max(max(asked), hi_c)
    grid = _grid(lo_c / 10**REACH_DECADES, top * 10**REACH_DECADES, asked)
    curves = {r: _budget_curve(mixed[r], grid, ranges[r], coefficients[r]) for r in recipes}
    budgets_table = _budget_table(curves, grid, asked, recipes, reference, prob)
    curve_table = _multiplier_curve(curves, grid, recipes, reference, lo_c, top, prob)
    crossing = _crossing_table(curves, grid, recipes, reference, lo_c, hi_c, top * 100, prob)
    rho, matched = _shared_scatter(fits[best_variant], codes)
    target_table = None
    if points is not None:
        target_table = _target_table(mixed, points, ranges, coefficients, recipes, reference, prob, rng, rho)
    noise = _noise_table(fits[best_variant], sweep, split, codes, recipes)
    info = {"law": law.name, "data_budgets": [lo_c, hi_c], "runs": len(sweep),
            "noise_split": split.describe(), "paired_extrapolation": paired,
            "shared_scatter": {"rho": rho, "matched_pairs": matched},
            "extrapolation": {r: terms[r].to_dict() | {"grid": None, "weights": None} for r in recipes},
            "contrast_kappa": contrast.to_dict() | {"grid": None, "weights": None} if contrast else None,
            "sampling_seconds": round(sampled - start, 3), "seconds": round(time.perf_counter() - start, 3),
            "sampling": config.to_dict()}
    return RecipeComparison(by=by, recipes=recipes, reference=reference, variants=table, budgets=budgets_table,
                            target=target_table, crossing=crossing, curve=curve_table, noise=noise, fits=fits,
                            info=info, prob=prob)


# ---------------------------------------------------------------------------------------------------- inputs
def _target_points(target: Any) -> pd.DataFrame | None:
    """Points (N, D) from a pair, a mapping or a table; numbers or arrays of equal length."""
    from bayes_scaling.forecast import points_frame

    if target is None:
        return None
    if isinstance(target, pd.DataFrame | Mapping):
        missing = [k for k in ("N", "D") if k not in target]
        if missing:
            raise ValueError(f"target needs N and D; missing {', '.join(missing)}")
        n, d = target["N"], target["D"]
    else:
        try:
            n, d = target
        except (TypeError, ValueError):
            raise ValueError(f"target must be (N, D) or a mapping with N and D; got {target!r}") from None
    return points_frame(N=n, D=d)[["N", "D"]]


def _budgets(budgets: Any, sweep: Sweep) -> list[float]:
    if budgets is None:
        top = float((FLOPS_PER_PARAM_TOKEN * sweep.column("N") * sweep.column("D")).max())
        return [top, 10 * top, 100 * top]
    values = np.atleast_1d(np.asarray(budgets, dtype=float)).ravel()
    bad = values[~(np.isfinite(values) & (values > 0))]
    if len(bad) or not len(values):
        raise ValueError(f"budgets must be finite FLOP counts > 0; got {values.tolist()}")
    return sorted(float(v) for v in values)


# ---------------------------------------------------------------------------------------------------- fits
def _group_params(fit: Fit, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Per draw and run: each law parameter (its recipe's value for recipe-level ones)."""
    posterior = fit.idata["posterior"].to_dataset()
    out = {}
    for name in [*fit.law.param_names, "sigma"]:
        values = np.asarray(posterior[name].values, dtype=float)
        if "group" in posterior[name].dims:
            out[name] = values.reshape(-1, values.shape[-1])[:, codes]
        else:
            out[name] = values.reshape(-1)[:, None]
    return out


def _run_residuals(fit: Fit, codes: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Log loss minus the law's log mean per draw and run of a pooled fit, and the parameters per draw and run.

    Each run is evaluated under its own recipe's values (:func:`_group_params`).
    """
    params = _group_params(fit, codes)
    sweep = fit.sweep
    x = centred_logs(fit.law.inputs, {c: sweep.column(c) for c in fit.law.columns}, fit.reference)
    mu = np.asarray(fit.law.log_loss(np, params, {k: v[None, :] for k, v in x.items()}))
    return np.log(sweep.column("loss"))[None, :] - mu, params


def _attach_unit_log_likelihood(fit: Fit, codes: np.ndarray, split: NoiseSplit) -> None:
    """Pointwise log-likelihood per unit (run measured once, or replicate cell) into ``fit.idata``."""
    import xarray as xr

    residual, params = _run_residuals(fit, codes)
    posterior = fit.idata["posterior"]
    noise = {k: np.asarray(posterior[k].values, float).reshape(-1) for k in ("nu", "sigma_seed") if k in posterior}
    values = unit_log_likelihood(residual, split, noise, np.broadcast_to(params["sigma"], residual.shape))
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], values.shape[1])
    fit.idata["log_likelihood"] = xr.DataTree(xr.Dataset(
        {"log_loss": (("chain", "draw", "unit"), values.reshape(shape))},
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                "unit": np.arange(values.shape[1])}))


def _variant_table(fits: Mapping[str, Fit]) -> pd.DataFrame:
    """PSIS-LOO of each variant and stacking weights (one variant: weight 1)."""
    import arviz as az

    if len(fits) == 1:
        (name, fit), = fits.items()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(fit.idata)
        table = pd.DataFrame({"elpd": [float(loo.elpd)], "se": [float(loo.se)], "elpd_diff": [0.0],
                              "dse": [0.0], "p_loo": [float(loo.p)], "weight": [1.0]}, index=[name])
    else:
        from bayes_scaling.comparison import compare

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            table = compare(dict(fits))
        table = table[["elpd", "se", "elpd_diff", "dse", "p_loo", "weight", "n_bad_k"]]
    table.index.name = "variant"
    table["differs"] = [VARIANTS[v] for v in table.index]
    return table


def _mixed_fits(fits: Mapping[str, Fit], weights: pd.Series, recipes: Sequence[str],
                rng: np.random.Generator) -> dict[str, Fit]:
    """Each recipe's posterior averaged over the variants by their weights; draws paired across recipes."""
    import xarray as xr

    total = min(f.idata["posterior"].sizes["chain"] * f.idata["posterior"].sizes["draw"] for f in fits.values())
    counts = np.floor(np.asarray([weights[v] for v in fits]) * total).astype(int)
    counts[int(np.argmax(counts))] += total - counts.sum()
    picks = {v: rng.choice(total, size=c, replace=False) for v, c in zip(fits, counts, strict=True) if c > 0}
    out = {}
    for recipe in recipes:
        parts = []
        for variant, index in picks.items():
            single = fits[variant].group_fit(recipe)
            draws = single.draws([*single.law.param_names, *single.law.derived, *single.noise_names])
            parts.append({k: v[index] for k, v in draws.items()})
        merged = {k: np.concatenate([p[k] for p in parts])[None, :] for k in parts[0]}
        posterior = xr.Dataset({k: (("chain", "draw"), v) for k, v in merged.items()},
                               coords={"chain": [0], "draw": np.arange(total)})
        base = fits[next(iter(picks))]
        mask = base.sweep.frame[base.group].astype(str).to_numpy() == recipe
        out[recipe] = Fit(law=base.law, sweep=base.sweep.subset(mask), priors=base.priors,
                          likelihood=base.likelihood, reference=base.reference,
                          idata=xr.DataTree.from_dict({"posterior": posterior}), info={"hierarchical_group": recipe})
    return out


# ---------------------------------------------------------------------------------------------------- beyond the data
def _extrapolation_terms(law: ScalingLaw, sweep: Sweep, by: str, priors: Mapping[str, Any], likelihood: Likelihood,
                         recipes: Sequence[str], seed: int
                         ) -> tuple[dict[str, Extrapolation], Extrapolation | None, bool]:
    """Each recipe's extrapolation term, and the recipe-specific part learned from paired fold residuals.

    A recipe's folds are one-sweep refits of its own runs under the law's priors (:func:`fold_residuals`): the
    same whichever variant of the pooled fit is chosen, and known before any is sampled.
    """
    from bayes_scaling.fitting import fold_residuals

    labels = sweep.frame[by].astype(str).to_numpy()
    reference = sweep.reference()
    residuals = {}
    with serial_blas():  # small refits (see calibrate)
        for r in recipes:
            skeleton = Fit(law=law, sweep=sweep.subset(labels == r), priors=priors, likelihood=likelihood,
                           reference=reference, idata=None)
            residuals[r] = fold_residuals(skeleton, seed=seed)
    terms = {r: learn(residuals[r], seed=seed) for r in recipes}
    pairs = []
    for i, first in enumerate(recipes):
        for second in recipes[i + 1:]:
            a, b = residuals[first], residuals[second]
            if a.empty or b.empty:
                continue
            keys = ["cut", "size", "tokens"]
            left = a.assign(**{k: a[k].map(lambda v: float(f"{v:.4g}")) for k in keys})
            right = b.assign(**{k: b[k].map(lambda v: float(f"{v:.4g}")) for k in keys})
            left = left.groupby(keys, as_index=False).first()  # one row per run key (replicates: the first)
            right = right.groupby(keys, as_index=False).first()
            both = left.merge(right, on=keys, suffixes=("_a", "_b"))
            if both.empty:
                continue
            pairs.append(pd.DataFrame({
                "fold": f"{first}/{second}/" + both["cut"].astype(str),
                "size": both["size"],
                "distance": 0.5 * (both["distance_a"] + both["distance_b"]),
                "residual": both["residual_a"] - both["residual_b"],
                "var_param": both["var_param_a"] + both["var_param_b"],
                "sigma": np.sqrt(both["sigma_a"] ** 2 + both["sigma_b"] ** 2),
                "nu": np.minimum(both["nu_a"], both["nu_b"]),
            }))
    if not pairs:
        return terms, None, False
    return terms, learn(pd.concat(pairs, ignore_index=True), seed=seed), True


def _error_coefficients(terms: Mapping[str, Extrapolation], contrast: Extrapolation | None, paired: bool,
                        recipes: Sequence[str], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per recipe and draw: the slope of its forecast error against distance (drift + common part + own part).

    ``error_r = d_r * (b_r + kappa_c,r * z0 + kappa_u * z_r)`` (``b_r`` the recipe's drift, zero unless its term
    was learned with ``extrapolation="drift"`` or ``"directional"``): ``z0`` shared by all recipes in a draw,
    ``z_r`` each recipe's own; ``kappa_u`` (recipe-specific) is the contrast's scale over sqrt(2), since a
    difference of two recipes carries two independent parts; ``kappa_c,r^2 = kappa_r^2 - kappa_u^2`` (at least 0).
    """
    z0 = rng.standard_normal(n)
    own = contrast.joint_draws(n, rng)[1] / math.sqrt(2) if paired and contrast is not None else None
    out = {}
    for recipe in recipes:
        drift, kappa = terms[recipe].joint_draws(n, rng)
        kappa_u = kappa if own is None else own
        kappa_c = np.sqrt(np.maximum(kappa**2 - kappa_u**2, 0.0))
        out[recipe] = drift + kappa_c * z0 + kappa_u * rng.standard_normal(n)
    return out


# ---------------------------------------------------------------------------------------------------- curves
def _grid(low: float, high: float, asked: Sequence[float]) -> np.ndarray:
    decades = math.log10(high) - math.log10(low)
    grid = np.logspace(math.log10(low), math.log10(high), max(int(decades * GRID_PER_DECADE), 2) + 1)
    return np.unique(np.concatenate([grid, np.asarray(asked, float)]))


def _budget_curve(fit: Fit, grid: np.ndarray, ranges: Mapping[str, tuple[float, float]],
                  slope: np.ndarray) -> np.ndarray:
    """Per draw and budget: log of the recipe's compute-optimal loss, extrapolation error included."""
    from bayes_scaling.planning import LawDraws, optimal_n_draws
    from bayes_scaling.predictive import predict

    law = LawDraws(fit)
    log_n = np.stack([np.log(optimal_n_draws(fit, budget)) for budget in grid], axis=1)  # (draws, budgets)
    log_d = np.log(np.asarray(grid, float) / FLOPS_PER_PARAM_TOKEN)[None, :] - log_n
    optimum = pd.DataFrame({"N": np.exp(log_n).ravel(), "D": np.exp(log_d).ravel()})  # draw-major, a row each
    distance = distance_to(optimum, ranges, distance_columns(fit.law)).reshape(log_n.shape)
    # every budget at once (the expected part is the law plus slope x distance: the same numbers budget by budget)
    draws = predict(fit, optimum.iloc[: len(grid)].reset_index(drop=True), log_mean=law.log_loss(log_n, log_d),
                    slope=slope, distance=distance)
    return draws.expected


def _needed(reference: np.ndarray, targets: np.ndarray, log_grid: np.ndarray) -> np.ndarray:
    """Per draw: log of the least budget at which the reference's curve reaches each target (inf: never)."""
    best = np.minimum.accumulate(reference, axis=1)  # the best loss reachable with at most that compute
    out = np.full(targets.shape, np.inf)
    for i in range(best.shape[0]):
        curve = best[i]
        ok = np.isfinite(curve)
        if not ok.any():
            out[i] = np.nan
            continue
        x, y = log_grid[ok], curve[ok]
        reach = targets[i] >= y[-1]
        # -y is non-decreasing in the budget: interpolate the budget at which it passes -target
        out[i, reach] = np.interp(-targets[i, reach], -y, x)
    return out


def _quantiles(values: np.ndarray, prob: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, median, high = equal_tailed(values, prob, axis=axis, median=True, method="inverted_cdf")
    return median, low, high


def _multipliers(curves: Mapping[str, np.ndarray], log_grid: np.ndarray, recipe: str, reference: str,
                 columns: np.ndarray) -> np.ndarray:
    """Per draw and grid column: C_ref / C for the recipe's loss at that column (1 for the reference itself)."""
    if recipe == reference:
        return np.ones((curves[recipe].shape[0], len(columns)))
    needed = _needed(curves[reference], curves[recipe][:, columns], log_grid)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(needed - log_grid[columns][None, :])


def _budget_table(curves: Mapping[str, np.ndarray], grid: np.ndarray, asked: Sequence[float],
                  recipes: Sequence[str], reference: str, prob: float) -> pd.DataFrame:
    log_grid = np.log(grid)
    columns = np.searchsorted(grid, asked)
    stacked = np.stack([curves[r][:, columns] for r in recipes])  # (recipes, draws, budgets)
    winner = np.argmin(np.where(np.isfinite(stacked), stacked, np.inf), axis=0)
    rows = []
    for j, recipe in enumerate(recipes):
        loss = np.exp(curves[recipe][:, columns])
        diff = loss - np.exp(curves[reference][:, columns])
        mult = _multipliers(curves, log_grid, recipe, reference, columns)
        for k, budget in enumerate(asked):
            lm, ll, lu = _quantiles(loss[:, k], prob)
            dm, dl, du = _quantiles(diff[:, k], prob)
            mm, ml, mu = _quantiles(mult[:, k], prob)
            rows.append({"C": budget, "recipe": recipe, "loss": lm, "loss_lower": ll, "loss_upper": lu,
                         "p_best": float(np.mean(winner[:, k] == j)),
                         "p_beats_reference": float(np.mean(diff[:, k] < 0)) if recipe != reference else np.nan,
                         "diff": dm, "diff_lower": dl, "diff_upper": du,
                         "multiplier": mm, "multiplier_lower": ml, "multiplier_upper": mu,
                         "p_multiplier_infinite": float(np.mean(~np.isfinite(mult[:, k])))})
    return interval_table(pd.DataFrame(rows), prob)


def _multiplier_curve(curves: Mapping[str, np.ndarray], grid: np.ndarray, recipes: Sequence[str], reference: str,
                      low: float, high: float, prob: float) -> pd.DataFrame:
    log_grid = np.log(grid)
    columns = np.flatnonzero((grid >= low * (1 - 1e-9)) & (grid <= high * (1 + 1e-9)))
    rows = []
    for recipe in recipes:
        if recipe == reference:
            continue
        mult = _multipliers(curves, log_grid, recipe, reference, columns)
        beats = np.mean(curves[recipe][:, columns] < curves[reference][:, columns], axis=0)
        for level in (prob, 0.5):
            median, lower, upper = _quantiles(mult, level)
            rows.append(pd.DataFrame({"C": grid[columns], "recipe": recipe, "prob": level, "median": median,
                                      "lower": lower, "upper": upper, "p_beats_reference": beats}))
    return interval_table(pd.concat(rows, ignore_index=True), long=True)


def _crossing_table(curves: Mapping[str, np.ndarray], grid: np.ndarray, recipes: Sequence[str], reference: str,
                    low: float, high: float, search_to: float, prob: float) -> pd.DataFrame:
    columns = np.flatnonzero((grid >= low * (1 - 1e-9)) & (grid <= search_to))
    within = grid[columns] <= high * (1 + 1e-9)
    rows = []
    for recipe in recipes:
        if recipe == reference:
            continue
        delta = curves[recipe][:, columns] - curves[reference][:, columns]
        sign = np.sign(delta)
        flipped = sign != sign[:, :1]
        crosses = flipped.any(axis=1)
        first = np.where(crosses, np.argmax(flipped, axis=1), -1)
        at = np.where(crosses, grid[columns][np.maximum(first, 0)], np.nan)
        inside = crosses & within[np.maximum(first, 0)]
        cm, cl, cu = _quantiles(at[crosses], prob) if crosses.any() else (np.nan, np.nan, np.nan)
        leads = float(np.mean(delta[:, 0] < 0))
        rows.append({"recipe": recipe, "reference": reference,
                     "leader": recipe if leads >= 0.5 else reference, "p_leader": max(leads, 1 - leads),
                     "p_cross_within": float(np.mean(inside)),
                     "p_cross_beyond": float(np.mean(crosses & ~inside)),
                     "C_cross": cm, "C_cross_lower": cl, "C_cross_upper": cu, "searched_to": float(search_to)})
    return interval_table(pd.DataFrame(rows), prob)


def _shared_scatter(fit: Fit, codes: np.ndarray) -> tuple[float, int]:
    """How much of the scatter around the law recipes share at the same (N, D): (correlation, matched pairs).

    From the in-sample residuals (log loss minus the posterior median of the law) of runs at the same N and D in
    different recipes: ``rho = sum r_a r_b / sqrt(sum r_a^2 sum r_b^2)``, clipped to [0, 0.95]; 0 with fewer
    than 5 pairs.
    """
    residual, _ = _run_residuals(fit, codes)
    sweep = fit.sweep
    frame = pd.DataFrame({"recipe": codes, "residual": np.median(residual, axis=0),
                          "key": [f"{n:.4g}/{d:.4g}" for n, d in zip(sweep.column("N"), sweep.column("D"),
                                                                      strict=True)]})
    cells = frame.groupby(["key", "recipe"])["residual"].mean().unstack("recipe")
    first, second = [], []
    columns = list(cells.columns)
    for i, a in enumerate(columns):
        for b in columns[i + 1:]:
            both = cells[[a, b]].dropna()
            first += both[a].tolist()
            second += both[b].tolist()
    if len(first) < 5:
        return 0.0, len(first)
    first_a, second_a = np.asarray(first), np.asarray(second)
    rho = float(np.sum(first_a * second_a) / np.sqrt(np.sum(first_a**2) * np.sum(second_a**2)))
    return float(np.clip(rho, 0.0, 0.95)), len(first)


def _target_table(mixed: Mapping[str, Fit], points: pd.DataFrame, ranges: Mapping[str, Any],
                  coefficients: Mapping[str, np.ndarray], recipes: Sequence[str], reference: str,
                  prob: float, rng: np.random.Generator, rho: float = 0.0) -> pd.DataFrame:
    from bayes_scaling.likelihoods import get_noise_model
    from bayes_scaling.predictive import predict

    logs, runs, distances = {}, {}, {}
    shape = (mixed[reference].idata["posterior"].sizes["draw"], len(points))
    first = mixed[reference]
    common = get_noise_model(first.likelihood).sample(rng, {**first.draws(first.noise_names),
                                                           "sigma": np.ones(shape[0])}, shape)
    for recipe in recipes:
        # one run of each recipe: its scatter around the law, the part recipes share at a point drawn once
        draws = predict(mixed[recipe], points, seed=rng, ranges=ranges[recipe], slope=coefficients[recipe],
                        shared_scatter=(rho, common))
        distances[recipe], logs[recipe], runs[recipe] = draws.distance, draws.expected, draws.total
    winner = np.argmin(np.stack([logs[r] for r in recipes]), axis=0)  # (draws, points)
    run_winner = np.argmin(np.stack([runs[r] for r in recipes]), axis=0)
    rows = []
    for k, (n, d) in enumerate(points[["N", "D"]].itertuples(index=False)):
        for j, recipe in enumerate(recipes):
            loss = np.exp(logs[recipe][:, k])
            diff = loss - np.exp(logs[reference][:, k])
            lm, ll, lu = _quantiles(loss, prob)
            dm, dl, du = _quantiles(diff, prob)
            rows.append({"N": n, "D": d, "recipe": recipe, "loss": lm, "loss_lower": ll, "loss_upper": lu,
                         "p_best": float(np.mean(winner[:, k] == j)),
                         "p_best_run": float(np.mean(run_winner[:, k] == j)),
                         "p_beats_reference": float(np.mean(diff < 0)) if recipe != reference else np.nan,
                         "diff": dm, "diff_lower": dl, "diff_upper": du, "distance": float(distances[recipe][k])})
    return interval_table(pd.DataFrame(rows), prob)


def _noise_table(fit: Fit, sweep: Sweep, split: NoiseSplit, codes: np.ndarray, recipes: Sequence[str]) -> pd.DataFrame:
    posterior = fit.idata["posterior"]
    sigma = np.asarray(posterior["sigma"].values, float).reshape(-1, len(recipes))
    seed = (np.asarray(posterior["sigma_seed"].values, float).reshape(-1) if "sigma_seed" in posterior else None)
    rows = []
    for j, recipe in enumerate(recipes):
        mine = codes == j
        known = split.eval_sd[mine][split.eval_sd[mine] > 0]
        rows.append({"recipe": recipe, "runs": int(mine.sum()),
                     "replicate_cells": len(np.unique(split.cell[mine & (split.cell >= 0)])),
                     "sigma": float(np.median(sigma[:, j])), "eval_sd": float(np.median(known)) if len(known) else 0.0,
                     "sigma_seed": float(np.median(seed)) if seed is not None else np.nan})
    return pd.DataFrame(rows)
