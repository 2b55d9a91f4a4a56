"""Loss-curve benchmark (``make curves``): forecasts of training curves under learning-rate schedules.

On ``../shared/data/multipower2025`` (Luo et al. 2025: 25M, 100M and 400M models, each trained under nine
schedules, :func:`bayes_scaling.schedules.multipower2025`):

* **the authors' protocol** (``--part protocol``): per size, fit ``cosine_24000``, ``constant_24000`` and
  ``wsdcon_9``, forecast the other six curves at every logged step. Scored: the relative error of the median as
  the authors score it, PredE and WorstE (each run's mean and largest error, averaged over the six runs; against
  the paper's 0.110/0.142/0.168% and 0.409/0.583/0.995%), the same pooled over points, and 90% coverage of the
  predictive interval, per point and per run (each run's coverage, averaged over runs), for each noise model;
* **a run in flight** (``--part flight``): from the first 25% and 50% of each 24k- and 72k-step run (its schedule
  known), the final loss: median relative error and 90% coverage, against a least-squares multi-power fit of the
  same partial curve (target: coverage >= 0.85 over all runs).

* **runs in flight on a second curve set** (``--part li2025``): the same question on ``li2025_misfitting``'s
  checkpoints (``load_curves``; each run its own cosine, :func:`bayes_scaling.schedules.li2025_misfitting`): the
  20 runs planned for at least 10,000 steps (25M-1B), from their first 25% and 50%.

* **across sizes** (``--part across``): one pooled fit of the 25M and 100M models' three protocol curves
  (``fit_curves(sizes=...)``, nominal sizes 25e6 and 100e6 parameters: the level follows a law in N, the shape
  drifts as a power of N), forecasting all nine 400M curves as a new model (``N=4e8``), scored as the protocol.

Coverage is also printed without the extrapolation terms (``*_no_term``: the same fit's forecast with the terms in
steps and across schedules left out), to show what they change.

Issue 30's targets: protocol errors no worse than published, coverage in [0.85, 0.95] per point and per run; in
flight coverage >= 0.85; a fit of one size's three curves <= 30 s warm. The fits are NUTS with the package's
defaults unless ``--draws`` says otherwise; seconds are printed per fit.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.curve_laws import curve_inputs, get_curve_law
from bayes_scaling.curves import CURVE_NOISE, fit_curves
from bayes_scaling.schedules import multipower2025

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIT_ON = ("cosine_24000", "constant_24000", "wsdcon_9")
#: Luo et al. 2025's PredE and WorstE (%) of the multi-power law under their protocol: each held-out run's mean and
#: largest relative error, averaged over the runs (their evaluation code).
PUBLISHED = {"25M": (0.110, 0.409), "100M": (0.142, 0.583), "400M": (0.168, 0.995)}
FLIGHT_RUNS = ("constant_24000", "cosine_24000", "wsd_20000_24000", "wsdld_20000_24000", "constant_72000",
               "cosine_72000")
FLIGHT_FRACTIONS = (0.25, 0.5)


def load(root: Path) -> pd.DataFrame:
    """The curves as (model, run, step, loss), the steps each schedule covers."""
    data = pd.read_csv(root / "multipower2025" / "data.csv").rename(columns={"schedule": "run"})
    schedules = multipower2025()
    keep = [step <= schedules[run].steps for step, run in zip(data["step"], data["run"], strict=True)]
    return data[keep].reset_index(drop=True)


def scored(fit, schedule, points: pd.DataFrame, *, seed: int, N: float | None = None) -> pd.DataFrame:
    """Per logged point of ``points``: relative error of the forecast's median, inside its 90% predictive interval
    (with and without the term in steps) and that interval's width, for a new run under ``schedule``."""
    steps, y = points["step"].to_numpy(), points["loss"].to_numpy()
    table = fit.forecast(schedule, steps, prob=0.9, seed=seed, N=N)
    plain = without_term(fit).forecast(schedule, steps, prob=0.9, seed=seed, N=N)
    low, high = table["pred_lower"].to_numpy(), table["pred_upper"].to_numpy()
    return pd.DataFrame({
        "step": steps, "rel_error_%": 100 * np.abs(table["median"].to_numpy() / y - 1),
        "covered": (y >= low) & (y <= high),
        "covered_no_term": (y >= plain["pred_lower"].to_numpy()) & (y <= plain["pred_upper"].to_numpy()),
        "width_%": 100 * (high - low) / y})


def protocol(data: pd.DataFrame, noise: str, seed: int, sampling: dict) -> pd.DataFrame:
    """One row per held-out point: size, run, relative error of the median, inside the 90% predictive interval."""
    schedules = multipower2025()
    rows = []
    for size, curves in data.groupby("model", sort=False):
        train = curves[curves["run"].isin(FIT_ON)]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_curves(train, {n: schedules[n] for n in FIT_ON}, noise=noise, seed=seed, **sampling)
        seconds = time.perf_counter() - start
        diagnostics = fit.diagnostics()
        for run, points in curves[~curves["run"].isin(FIT_ON)].groupby("run"):
            rows.append(scored(fit, schedules[run], points, seed=seed).assign(
                noise=noise, size=size, run=run, fit_seconds=seconds, max_r_hat=diagnostics.max_r_hat))
        print(f"protocol {noise} {size}: fit {seconds:.0f} s, max R-hat {diagnostics.max_r_hat:.3f}\n  "
              + fit.term_line().replace("\n", "\n  "), flush=True)
    return pd.concat(rows, ignore_index=True)


#: Nominal parameter counts of the multipower2025 models (the paper names its sizes; exact counts unpublished).
NOMINAL = {"25M": 25e6, "100M": 100e6, "400M": 400e6}
ACROSS_FIT, ACROSS_TARGET = ("25M", "100M"), "400M"


def across(data: pd.DataFrame, noise: str, seed: int, sampling: dict) -> pd.DataFrame:
    """One row per 400M point: forecast from one fit of the smaller sizes' protocol curves (as :func:`protocol`)."""
    schedules = multipower2025()
    train = data[data["model"].isin(ACROSS_FIT) & data["run"].isin(FIT_ON)]
    train = train.assign(schedule=train["run"], run=train["model"] + "/" + train["run"],
                         N=train["model"].map(NOMINAL))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_curves(train, {r: schedules[s] for r, s in zip(train["run"], train["schedule"], strict=True)},
                         noise=noise, sizes="N", seed=seed, **sampling)
    seconds = time.perf_counter() - start
    diagnostics = fit.diagnostics()
    target = data[data["model"] == ACROSS_TARGET]
    point = point_across(data[data["model"].isin(ACROSS_FIT) & data["run"].isin(FIT_ON)], target,
                         float(fit.info["size_reference"]), fit.peak)
    point_error = pd.Series(100 * np.abs(point / np.concatenate(
        [p["loss"].to_numpy() for _, p in target.groupby("run")]) - 1))
    print(f"across sizes, point fit of the same law (least squares): average {point_error.mean():.2f}%, worst "
          f"{point_error.max():.2f}%", flush=True)
    rows = []
    for run, points in target.groupby("run"):
        rows.append(scored(fit, schedules[run], points, seed=seed, N=NOMINAL[ACROSS_TARGET]).assign(
            noise=noise, size=f"{'+'.join(ACROSS_FIT)}->{ACROSS_TARGET}", run=run, fit_seconds=seconds,
            max_r_hat=diagnostics.max_r_hat))
    print(f"across sizes {noise}: fit {seconds:.0f} s, max R-hat {diagnostics.max_r_hat:.3f}", flush=True)
    return pd.concat(rows, ignore_index=True)


def point_across(train: pd.DataFrame, target: pd.DataFrame, reference: float, peak: float) -> np.ndarray:
    """A least-squares fit of the same law across sizes (level in N, shared shape; relative residuals, Huber):
    its forecast of every ``target`` point (the point-fit baseline of ``--part across``)."""
    from scipy.optimize import least_squares

    from bayes_scaling.curves import _at_size

    law, schedules = get_curve_law("multipower"), multipower2025()
    shape = [n for n in law.param_names if n != "L0"]
    names = ["E", "log_n_term", "alpha_N", *shape]
    parts = [(np.log(NOMINAL[m] / reference), curve_inputs(schedules[r], p["step"].to_numpy(), peak=peak),
              p["loss"].to_numpy()) for (m, r), p in train.groupby(["model", "run"])]

    def params(theta):
        return {n: (v if n == "log_n_term" else np.exp(v)) for n, v in zip(names, theta, strict=True)}

    def residual(theta):
        with np.errstate(all="ignore"):
            r = np.concatenate([law.loss(np, _at_size(np, params(theta), x, law), inputs) / y - 1
                                for x, inputs, y in parts])
        return np.where(np.isfinite(r), r, 1.0)

    start = np.log([1.5, 1.0, 0.3, 0.5, 0.5, 0.3, 1.0, 0.5, 0.5])
    start[1] = 0.0  # log_n_term itself
    best = least_squares(residual, start, loss="huber", f_scale=1e-3, max_nfev=5000)
    at = _at_size(np, params(best.x), np.log(NOMINAL[ACROSS_TARGET] / reference), law)
    return np.concatenate([law.loss(np, at, curve_inputs(schedules[r], p["step"].to_numpy(), peak=peak))
                           for r, p in target.groupby("run")])


def without_term(fit):
    """The same curve fit without its extrapolation terms (in steps, across schedules, a new run's offset).

    To show what they change."""
    import dataclasses

    return dataclasses.replace(fit, info={k: v for k, v in fit.info.items()
                                          if k not in ("extrapolation", "schedule_term", "run_term")})


def summarise_protocol(points: pd.DataFrame) -> pd.DataFrame:
    """Per noise model and size: relative errors, coverage per point and per run, fit time.

    ``pred_e_pct`` and ``worst_e_pct`` are the authors' PredE and WorstE (their evaluation code): each held-out
    run's mean and largest relative error, averaged over the runs; ``average_error_pct`` and ``worst_error_pct``
    pool the points instead (the 72k-step runs, with three times the points and the longest reach, weigh more) and
    take the largest error of any point.
    """
    runs = points.groupby(["noise", "size", "run"])
    per_run, errors = runs["covered"].mean(), runs["rel_error_%"]
    table = points.groupby(["noise", "size"], sort=False).agg(
        average_error_pct=("rel_error_%", "mean"), worst_error_pct=("rel_error_%", "max"),
        cover_90_points=("covered", "mean"), cover_90_points_no_term=("covered_no_term", "mean"),
        fit_seconds=("fit_seconds", "max"), max_r_hat=("max_r_hat", "max"))
    table.insert(0, "worst_e_pct", errors.max().groupby(["noise", "size"]).mean())
    table.insert(0, "pred_e_pct", errors.mean().groupby(["noise", "size"]).mean())
    table["cover_90_runs"] = per_run.groupby(["noise", "size"]).mean()
    sizes = table.index.get_level_values("size")
    table["published_pred_e_pct"] = [PUBLISHED.get(s, (np.nan, np.nan))[0] for s in sizes]
    table["published_worst_e_pct"] = [PUBLISHED.get(s, (np.nan, np.nan))[1] for s in sizes]
    return table


def point_multipower(points: pd.DataFrame, schedule, final_step: int) -> float:
    """Least-squares multi-power fit of a partial curve (relative residuals), its loss at ``final_step``."""
    from scipy.optimize import least_squares

    law = get_curve_law("multipower")
    inputs = curve_inputs(schedule, points["step"].to_numpy())
    y = points["loss"].to_numpy()

    def params(theta):
        return dict(zip(law.param_names, [theta[0], *np.exp(theta[1:])], strict=True))

    def residual(theta):
        return law.loss(np, params(theta), inputs) / y - 1

    start = np.array([y.min() - 0.5, np.log(0.5), np.log(0.5), np.log(0.5), 0.0, np.log(0.5), np.log(0.5)])
    best = least_squares(residual, start, loss="huber", f_scale=1e-3)
    final = curve_inputs(schedule, [final_step])
    return float(law.loss(np, params(best.x), final)[0])


def flight(data: pd.DataFrame, noise: str, seed: int, sampling: dict, schedules: dict | None = None,
           runs: tuple[str, ...] = FLIGHT_RUNS) -> pd.DataFrame:
    """One row per (size, run, fraction): the final loss forecast from the run's first steps, and the point fit's.

    ``schedules``: each run's (multipower2025's by default); ``runs``: the runs to score.
    """
    schedules = multipower2025() if schedules is None else schedules
    rows = []
    for (size, run), points in data[data["run"].isin(runs)].groupby(["model", "run"], sort=False):
        schedule = schedules[run]
        final = points.iloc[-1]
        for fraction in FLIGHT_FRACTIONS:
            seen = points[points["step"] <= fraction * schedule.steps]
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_curves(seen, {run: schedule}, noise=noise, seed=seed, **sampling)
                table = fit.forecast(run, [int(final["step"])], run=run, prob=0.9, seed=seed).iloc[0]
                plain = without_term(fit).forecast(run, [int(final["step"])], run=run, prob=0.9, seed=seed).iloc[0]
            try:
                point = point_multipower(seen, schedule, int(final["step"]))
            except (ValueError, FloatingPointError):
                point = np.nan
            y = float(final["loss"])
            rows.append({"noise": noise, "size": size, "run": run, "fraction": fraction, "observed": y,
                         "median": table["median"], "lower": table["pred_lower"], "upper": table["pred_upper"],
                         "lower_no_term": plain["pred_lower"], "upper_no_term": plain["pred_upper"],
                         "kappa": fit.term.quantiles()[1] if fit.term is not None else 0.0,
                         "point": point, "fit_seconds": time.perf_counter() - start,
                         "max_r_hat": fit.diagnostics().max_r_hat})
            print(f"flight {noise} {size} {run} {fraction:.0%}: forecast {table['median']:.4f} "
                  f"[{table['pred_lower']:.4f}, {table['pred_upper']:.4f}], point {point:.4f}, observed {y:.4f}",
                  flush=True)
    return pd.DataFrame(rows)


#: li2025_misfitting's runs in flight: those planned for at least this many steps (20 runs, 25M-1B, 78-157
#: checkpoints each).
LI2025_MIN_STEPS = 10_000


def load_li2025(root: Path) -> tuple[pd.DataFrame, dict, tuple[str, ...]]:
    """li2025_misfitting's long runs' checkpoints as (model, run, step, loss), their schedules and names.

    Rows the dataset's notes flag are left out (no long run has them): repeated steps, steps past a run's end.
    """
    from bayes_scaling.datasets import load_curves
    from bayes_scaling.schedules import li2025_misfitting

    frame = load_curves("li2025_misfitting", path=root)
    twice = frame[frame.duplicated(["run", "step"], keep=False)]["run"].unique()
    frame = frame[~frame["run"].isin(twice) & (frame["step"] <= frame["total_steps"])]
    frame = frame[frame["total_steps"] >= LI2025_MIN_STEPS].sort_values(["run", "step"])
    runs = tuple(frame["run"].unique())
    return frame[["model", "run", "step", "loss"]].reset_index(drop=True), li2025_misfitting(runs), runs


def summarise_flight(runs: pd.DataFrame) -> pd.DataFrame:
    """Per noise model and fraction seen: median relative error (ours and the point fit's) and 90% coverage."""
    runs = runs.assign(error_pct=100 * (runs["median"] / runs["observed"] - 1).abs(),
                       point_error_pct=100 * (runs["point"] / runs["observed"] - 1).abs(),
                       covered=(runs["observed"] >= runs["lower"]) & (runs["observed"] <= runs["upper"]),
                       covered_no_term=(runs["observed"] >= runs["lower_no_term"])
                       & (runs["observed"] <= runs["upper_no_term"]),
                       width_pct=100 * (runs["upper"] - runs["lower"]) / runs["observed"])
    return runs.groupby(["noise", "fraction"]).agg(
        runs=("observed", "size"), median_error_pct=("error_pct", "median"),
        point_median_error_pct=("point_error_pct", "median"), cover_90=("covered", "mean"),
        cover_90_no_term=("covered_no_term", "mean"), median_width_pct=("width_pct", "median"),
        max_r_hat=("max_r_hat", "max"), fit_seconds=("fit_seconds", "median"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--part", choices=["all", "protocol", "flight", "across", "li2025"], default="all")
    parser.add_argument("--noise", default=",".join(CURVE_NOISE),
                        help=f"comma-separated noise models to score (default all: {', '.join(CURVE_NOISE)})")
    parser.add_argument("--sizes", default="25M,100M,400M")
    parser.add_argument("--draws", type=int, default=None, help="draws per chain (default the package's)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not (args.data / "multipower2025").is_dir():
        raise SystemExit(f"no shared data at {args.data / 'multipower2025'}")
    data = load(args.data)
    data = data[data["model"].isin(args.sizes.split(","))]
    sampling = {} if args.draws is None else {"draws": args.draws, "tune": args.draws}
    noises = [n.strip() for n in args.noise.split(",") if n.strip()]
    with pd.option_context("display.width", 200):
        if args.part in ("all", "protocol"):
            points = pd.concat([protocol(data, n, args.seed, sampling) for n in noises])
            table = summarise_protocol(points)
            print("\nAuthors' protocol (fit cosine_24000, constant_24000, wsdcon_9; forecast the other six):")
            print(table.to_string(float_format=lambda v: f"{v:.3g}"))
            per_run = points.groupby(["noise", "size", "run"], sort=False).agg(
                average_error_pct=("rel_error_%", "mean"), cover_90=("covered", "mean"),
                cover_90_no_term=("covered_no_term", "mean"), median_width_pct=("width_%", "median"))
            print("\nPer held-out run:")
            print(per_run.to_string(float_format=lambda v: f"{v:.3g}"))
        if args.part in ("all", "across"):
            points = pd.concat([across(data, n, args.seed, sampling) for n in noises])
            table = summarise_protocol(points)
            table["median_width_pct"] = points.groupby(["noise", "size"])["width_%"].median()
            print(f"\nAcross sizes (one fit of {' and '.join(ACROSS_FIT)}'s protocol curves; all nine "
                  f"{ACROSS_TARGET} curves forecast as a new model):")
            print(table.drop(columns=["published_pred_e_pct", "published_worst_e_pct"])
                  .to_string(float_format=lambda v: f"{v:.3g}"))
        if args.part in ("all", "flight"):
            table = summarise_flight(pd.concat([flight(data, n, args.seed, sampling) for n in noises]))
            print("\nA run in flight (the final loss from the first 25% / 50% of each 24k and 72k run):")
            print(table.to_string(float_format=lambda v: f"{v:.3g}"))
        if args.part in ("all", "li2025"):
            points, schedules, runs = load_li2025(args.data)
            table = summarise_flight(pd.concat([flight(points, n, args.seed, sampling, schedules, runs)
                                                for n in noises]))
            print(f"\nRuns in flight on li2025_misfitting (the {len(runs)} runs planned for >= {LI2025_MIN_STEPS:,} "
                  "steps, each its own cosine; the final loss from the first 25% / 50%):")
            print(table.to_string(float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
