"""Workflows that fit laws themselves: the one module above :func:`~bayes_scaling.fitting.fit` that samples.

Each takes data, checks what it needs up front, fits (often on a training split), and hands the fits to the
analyses that take fits (:mod:`bayes_scaling.comparison`, :mod:`bayes_scaling.scores`,
:mod:`bayes_scaling.report`):

* :func:`extrapolation_scores`: fit each law on the smaller models, score the held-out larger runs;
* :func:`compare_hypotheses`: Kaplan vs Chinchilla from one sweep (LOO, extrapolation, exponents, verdict);
* :func:`backtest`: one law on the smaller models, predictive coverage on the larger ones, against the point fit;
* :func:`calibration`: coverage of posterior intervals over simulated sweeps with known parameters;
* :func:`make_report`: fit and write the HTML/Markdown report;
* :func:`explain`: why Kaplan and Chinchilla disagree, each known cause measured on one sweep
  (:mod:`bayes_scaling.explain`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.comparison import DEFAULT_LAWS, DEFAULT_REGIONS, Hypotheses, hypotheses, parse_region
from bayes_scaling.data import load_sweep
from bayes_scaling.fitting import fit
from bayes_scaling.inference import ConvergenceWarning
from bayes_scaling.intervals import check_prob, equal_tailed
from bayes_scaling.laws import DEFAULT_LAW, get_law
from bayes_scaling.outputs import check_report_folder
from bayes_scaling.pointfit import huber_point_fit
from bayes_scaling.report import REPORT_BUDGETS, REPORT_POINTS, Report, write_report
from bayes_scaling.scores import BacktestScores, backtest_scores, holdout_scores
from bayes_scaling.simulate import reference_of, simulate_sweep

__all__ = ["backtest", "calibration", "compare_hypotheses", "explain", "extrapolation_scores", "make_report"]


def extrapolation_scores(
    data: Any,
    laws: Sequence[str],
    *,
    cutoff_N: float | None = None,
    frac: float = 0.25,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Leave-largest-out scores: fit each law on the smaller models, score the larger held-out runs.

    In-sample LOO rewards interpolation; users care about extrapolation to larger models.

    Parameters
    ----------
    data : DataFrame, path or Sweep
    laws : sequence of str
    cutoff_N : float, optional
        Hold out runs with N ≥ cutoff_N (default: the largest ``frac`` of distinct sizes).
    frac : float
        Fraction of distinct model sizes held out when no cutoff is given.
    fit_kwargs : mapping, optional
        Passed to :func:`bayes_scaling.fit` (draws, seed, ...).

    Returns
    -------
    pandas.DataFrame
        :func:`bayes_scaling.scores.holdout_scores`' table.
    """
    train, test = load_sweep(data).split_holdout(cutoff_N=cutoff_N, frac=frac)
    fits = {law: fit(train, law=law, **dict(fit_kwargs or {})) for law in laws}
    return holdout_scores(fits, test)


def compare_hypotheses(
    data: Any,
    laws: Sequence[str] = DEFAULT_LAWS,
    *,
    regions: Sequence[str] = DEFAULT_REGIONS,
    prob: float | None = None,
    extrapolation: bool = True,
    cutoff_N: float | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> Hypotheses:
    """Kaplan vs Chinchilla from one sweep: LOO/stacking, extrapolation, exponent posteriors, verdict.

    Parameters
    ----------
    data : DataFrame, path or Sweep
    laws : sequence of str
        Laws to fit and compare (at least two).
    regions : sequence of str
        Regions of the exponents whose posterior probability to report (see
        :func:`bayes_scaling.comparison.region_probability`).
    prob : float
        Interval probability for the exponents.
    extrapolation : bool
        Also compute leave-largest-out scores (refits every law on the smaller models).
    cutoff_N : float, optional
        Hold-out cutoff for the extrapolation scores.
    fit_kwargs : mapping, optional
        Passed to every :func:`bayes_scaling.fit` call.

    Returns
    -------
    Hypotheses
    """
    prob = check_prob(prob)
    laws = list(dict.fromkeys(laws))
    if len(laws) < 2:
        raise ValueError("give at least two laws to compare")
    for law in laws:  # names and regions before any fitting
        get_law(law)
    for region in regions:
        parse_region(region)
    sweep = load_sweep(data)
    kwargs = dict(fit_kwargs or {})
    fits = {law: fit(sweep, law=law, **kwargs) for law in laws}
    extra = extrapolation_scores(sweep, laws, cutoff_N=cutoff_N, fit_kwargs=kwargs) if extrapolation else None
    return hypotheses(fits, extrapolation=extra, regions=regions, prob=prob)


def backtest(
    data: Any,
    *,
    law: str = DEFAULT_LAW,
    cutoff_N: float | None = None,
    probs: Sequence[float] = (0.5, 0.9),
    point_fit: bool = True,
    fit_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> BacktestScores:
    """Fit on the smaller models only and score the held-out larger ones.

    Parameters
    ----------
    data : DataFrame, path or Sweep
    law : str
        Law to fit.
    cutoff_N : float, optional
        Runs with N ≥ cutoff_N are held out (default: the largest quarter of distinct sizes).
    probs : sequence of float
        Predictive-interval levels whose coverage is reported.
    point_fit : bool
        Also score the Chinchilla-style point fit (Huber on log residuals + L-BFGS) as a baseline
        (only for laws of N and D).
    fit_kwargs : mapping, optional
        Passed to :func:`bayes_scaling.fit`.
    seed : int
        Seed of the predictive noise.

    Returns
    -------
    BacktestScores
    """
    train, test = load_sweep(data).split_holdout(cutoff_N=cutoff_N)
    result = fit(train, law=law, **{"warn": False, **dict(fit_kwargs or {})})
    point = huber_point_fit(train) if point_fit and {"N", "D"} <= set(result.law.inputs) else None
    return backtest_scores(result, test, probs=probs, seed=seed, point=point)


def calibration(
    law: str,
    draw_params: Callable[[np.random.Generator, Mapping[str, float]], Mapping[str, float]],
    *,
    N: np.ndarray,
    D: np.ndarray,
    n_sims: int = 100,
    sigma: float = 0.01,
    probs: Sequence[float] = (0.5, 0.9),
    seed: int = 0,
    fit_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Coverage of posterior intervals over simulated sweeps with known parameters.

    For each simulation: draw parameters with ``draw_params(rng, reference)``, simulate runs at
    (N, D) with noise ``sigma`` on log-loss (its true value is recorded too), fit with the matching
    Normal likelihood, and record for each parameter whether the truth lies in the central ``p``
    posterior interval. Each fit's seed is drawn from ``seed`` (one in ``fit_kwargs`` is ignored).

    Returns
    -------
    pandas.DataFrame
        One row per (simulation, parameter, level): ``sim``, ``param``, ``prob``, ``inside``, plus
        the fit's ``max_r_hat`` and ``divergences`` (summarised by
        :func:`bayes_scaling.scores.calibration_summary`).
    """
    rng = np.random.default_rng(seed)
    reference = reference_of(N, D)
    rows = []
    for sim in range(n_sims):
        truth = dict(draw_params(rng, reference))
        data = simulate_sweep(law, truth, N=N, D=D, sigma=sigma, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            kwargs = {"warn": False, **dict(fit_kwargs or {}), "seed": int(rng.integers(2**31))}
            result = fit(data, law=law, likelihood="normal", **kwargs)
        diag = result.diagnostics()
        truth["sigma"] = sigma
        draws = result.draws(list(truth))
        for name, value in truth.items():
            for p in probs:
                low, high = equal_tailed(draws[name], p)
                rows.append({"sim": sim, "param": name, "prob": p, "inside": bool(low <= value <= high),
                             "max_r_hat": diag.max_r_hat, "divergences": diag.divergences})
        if progress is not None:
            progress(sim, rows[-1])
    return pd.DataFrame(rows)


def make_report(
    data: Any,
    out: str | Path,
    *,
    laws: Sequence[str] = ("chinchilla",),
    points: Sequence[tuple[float, float]] = REPORT_POINTS,
    budgets: Sequence[float] = REPORT_BUDGETS,
    prob: float | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    downstream: Any = None,
    explanation: Any = None,
    curves: Any = None,
) -> Report:
    """Fit ``laws`` to ``data`` and write the report (:func:`bayes_scaling.report.write_report`) into ``out``.

    The first law is the main one; with two or more, the report adds the comparison
    (:func:`compare_hypotheses`). ``out`` is checked before any fitting (see ``write_report`` for the rules);
    nothing is written if fitting fails or is interrupted. ``downstream``: a link fit
    (:func:`bayes_scaling.downstream.fit_downstream`) or task fit (:func:`~bayes_scaling.downstream.fit_tasks`)
    whose section the report adds; ``explanation``: an :func:`explain` result whose verdict, tables and a(C)
    figure the report adds; ``curves``: a curve fit (:func:`bayes_scaling.curves.fit_curves`) whose section (where
    each run ends) the report adds.
    """
    prob = check_prob(prob)
    out = Path(out)
    sweep = load_sweep(data)
    inputs = [sweep.source] if Path(sweep.source).is_file() else []  # the data file read, also via a Sweep
    check_report_folder(out, overwrite=overwrite, inputs=inputs)  # before any fitting
    laws = list(dict.fromkeys(laws))
    if not laws:
        raise ValueError("give at least one law")
    kwargs = {"warn": False, **dict(fit_kwargs or {})}
    comparison = compare_hypotheses(sweep, laws, prob=prob, fit_kwargs=kwargs) if len(laws) > 1 else None
    fits = comparison.fits if comparison is not None else {laws[0]: fit(sweep, law=laws[0], **kwargs)}
    return write_report(fits, out, comparison=comparison, downstream=downstream, explanation=explanation,
                        curves=curves, points=points, budgets=budgets, prob=prob, overwrite=overwrite)


def _windows(budgets: np.ndarray, size: int) -> list[np.ndarray]:
    """Rolling windows of ``size`` consecutive distinct budgets (or of log-C quantile bins when there are many)."""
    distinct = np.unique(budgets)
    if len(distinct) > 40:  # not an IsoFLOP design: bin log C into 12 equal-count bins first
        edges = np.quantile(np.log(budgets), np.linspace(0, 1, 13))
        labels = np.clip(np.searchsorted(edges, np.log(budgets), side="right") - 1, 0, 11)
        return [np.isin(labels, np.arange(i, i + size)) for i in range(0, 12 - size + 1)]
    return [np.isin(budgets, distinct[i:i + size]) for i in range(0, len(distinct) - size + 1)]


def explain(
    data: Any,
    *,
    by: str | None = None,
    counts: Sequence[str] | None = None,
    window: int = 4,
    law: str = "chinchilla",
    prob: float | None = None,
    threshold: float = 0.1,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """Measure the known causes of the Kaplan/Chinchilla disagreement on one sweep.

    Parameters
    ----------
    data : DataFrame, path or Sweep
        The runs (with the columns named in ``counts`` and ``by`` when given).
    by : str, optional
        Column naming each run's setup (training protocol): a pooled fit with setup-level exponents gives each
        setup's a and, for the protocol columns (:func:`~bayes_scaling.explain.protocol_factors`), the effect of
        changing one of them.
    counts : sequence of str, optional
        Parameter-count columns to compare as N (e.g. ``("N_total", "N_nonembed")``): the same runs fitted with
        each, compared by PSIS-LOO and leave-largest-out (the largest quarter of sizes by the first count).
    window : int
        Distinct compute budgets per rolling window for a(C) (skipped when the sweep has too few).
    law : str
        A law with compute-optimal exponents (default ``"chinchilla"``).
    prob, threshold
        Interval probability; size of a change in a that counts (``P(|delta a| > threshold)``).
    fit_kwargs : mapping, optional
        Passed to :func:`~bayes_scaling.fitting.fit` (draws, seed, ...); the fits skip the extrapolation term,
        which a and LOO do not use.

    Returns
    -------
    bayes_scaling.explain.Explanation
    """
    prob = check_prob(prob)
    from bayes_scaling.comparison import compare
    from bayes_scaling.explain import (
        Explanation,
        counting_table,
        protocol_effects,
        protocol_factors,
        protocol_table,
        window_table,
    )
    from bayes_scaling.hierarchical import fit_hierarchical

    sweep = load_sweep(data)
    frame = sweep.frame
    kwargs = {"warn": False, "extrapolation": "none", **dict(fit_kwargs or {})}
    for column in [*(counts or []), *([by] if by else [])]:
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in the data; it has {', '.join(map(repr, frame.columns))}")
    if window < 2:
        raise ValueError(f"window must be at least 2 budgets, got {window}")
    result = Explanation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if counts:
            if len(counts) < 2:
                raise ValueError("counts names two or more parameter-count columns to compare")
            size = frame[counts[0]].to_numpy(float)
            cutoff = np.quantile(np.unique(size), 0.75)
            fits, held = {}, {}
            for column in counts:
                runs = frame.drop(columns="N").rename(columns={column: "N"}) if column != "N" else frame
                runs = runs.drop(columns="C", errors="ignore")
                fits[column] = fit(runs, law=law, **kwargs)
                train = runs[size < cutoff]
                held[column] = holdout_scores({column: fit(train, law=law, **kwargs)},
                                              load_sweep(runs[size >= cutoff])).loc[column, "elpd_holdout"]
            holdout = pd.DataFrame({"elpd_holdout": pd.Series(held)})
            result.counting = counting_table(fits, loo=compare(fits), holdout=holdout, prob=prob)
        masks = _windows(sweep.column("C"), window)
        window_fits = {}
        for mask in masks:
            if mask.sum() >= 8 and len(np.unique(sweep.column("N")[mask])) >= 3:
                centre = float(np.exp(np.mean(np.log(np.unique(sweep.column("C")[mask])))))
                window_fits[centre] = fit(frame[mask], law=law, **kwargs)
        if len(window_fits) >= 2:
            result.windows = window_table(window_fits, prob=prob)
        else:
            result.notes.append(f"Compute range: fewer than {window + 1} distinct budgets with enough runs; "
                                "no rolling windows.")
        if by:
            pooled = fit_hierarchical(frame, by, law=law, shared=(), warn=False, extrapolation="none",
                                      **{k: v for k, v in kwargs.items() if k not in ("warn", "extrapolation")})
            result.protocol = protocol_table(pooled, prob=prob)
            factors = protocol_factors(frame, by)
            if factors:
                result.effects = protocol_effects(pooled, frame, factors, threshold=threshold, prob=prob)
    return result
