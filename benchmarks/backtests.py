"""Backtests a skeptic would accept: every shared sweep, two held-out splits, this package against two baselines.

Usage: ``python -m benchmarks.backtests [--data ../shared/data] [--no-ssl] [--scatter edges] [--out table.csv]
[--plot pit.png]``
(``make backtests`` installs the benchmark-only baseline ``simple-scaling-laws`` first).

For each shared sweep (per group where losses are not comparable across groups) and each split

* ``quarter``: the largest quarter of distinct model sizes held out;
* ``eighth``: train on N below 1/8 of the largest N, hold out the rest (where at least 3 sizes remain);
* ``budget`` (the next compute budget): runs grouped into budgets (C within a factor 1.25,
  :func:`bayes_scaling.planning.group_budgets`); the largest budget with at least 3 runs and everything above it
  held out, the law fitted below it (laws of N and D);
* ``tpp`` (over-training): the largest quarter of distinct tokens-per-parameter levels (D/N rounded to 0.1
  decades) held out, where the sweep spans at least one decade of D/N (laws of N and D);

the held-out runs are forecast by

* ``bayes-<design>``: this package's Student-t NUTS fit with each extrapolation design of
  :mod:`bayes_scaling.extrapolation` (``kappa``: error growing with distance; ``drift``: the same plus a learned
  signed drift; ``inflation``: one variance-inflation factor; ``none``: what the package did before); the targets
  are checked on the default design;
* ``point-bootstrap``: the Huber + L-BFGS point fit with 100 bootstrap refits (Epoch AI's intervals), plus a
  new run's scatter resampled from the training residuals (Chinchilla-form laws only);
* ``ssl``: the PyPI package ``simple-scaling-laws``, ``separable-power`` law, ``predict(kind="new-run")``
  (its own prediction intervals for a new run, as its README says).

Scores per held-out run, from each method's predictive quantiles: coverage of the central 50/80/90/95%
intervals, absolute relative error of the median, the interval score of the 90% interval (Gneiting & Raftery
2007) and the CRPS (from 99 quantiles), both relative to the observed loss, in %, and the 90% width.
"""

from __future__ import annotations

import argparse
import inspect
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling import datasets
from bayes_scaling.data import load_sweep
from bayes_scaling.extrapolation import DESIGNS, learn
from bayes_scaling.fitting import fit, fold_residuals
from bayes_scaling.forecast import loss_draws
from bayes_scaling.laws import DEFAULT_LAW
from bayes_scaling.shared_prior import load_shared_prior

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LEVELS = (0.5, 0.8, 0.9, 0.95)
TAUS = np.unique(np.round(np.concatenate([np.linspace(0.01, 0.99, 99),
                                          [(1 - p) / 2 for p in LEVELS], [(1 + p) / 2 for p in LEVELS]]), 4))
CHINCHILLA_FORM = ("chinchilla",)
#: The package's default forecast (``fit(extrapolation=...)``), the one the targets are checked on.
DEFAULT = "bayes-" + inspect.signature(fit).parameters["extrapolation"].default


def bayes_law(case_law: str, law: str | None = None) -> str:
    """The law the Bayesian methods fit on a case of ``case_law``: ``law`` (default the package's
    :data:`~bayes_scaling.laws.DEFAULT_LAW`) on Chinchilla-form sweeps, else the case's own."""
    return (law or DEFAULT_LAW) if case_law in CHINCHILLA_FORM else case_law


def cases(root: Path):
    """(name, frame, law) for each sweep (group) with comparable losses."""
    def load(name, query=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return datasets.load(name, path=root, query=query)

    yield "chinchilla_epoch", load("chinchilla_epoch"), "chinchilla"
    for name, group in load("gadre2024").groupby("dataset"):
        yield f"gadre2024/{name}", group, "chinchilla"
    yield "li2025_misfitting (best_lr)", load("li2025_misfitting", "default"), "chinchilla"
    for name, group in load("marin_isoflop").groupby("dataset"):
        yield f"marin_isoflop/{name}", group, "chinchilla"
    for name, group in load("porian2024", "default").groupby("setup"):
        yield f"porian2024/{name.split('/')[0]}", group, "chinchilla"
    yield "muennighoff2023 (paper fit)", load("muennighoff2023_datablations", "default"), "data_constrained"
    yield "clark2022_routing (dense)", load("clark2022_routing", "default"), "params"


def source_of(case: str) -> str:
    """The catalog dataset a case comes from (its sweeps share a source: the shared prior counts it once)."""
    stem = case.split("/")[0].split(" ")[0]
    return next((name for name in datasets.CATALOG if name == stem or name.startswith(stem + "_")), stem)


#: The splits, in the order they are run (``--splits`` picks some).
SPLITS = ("quarter", "eighth", "budget", "tpp")


def _trainable(train: np.ndarray, n: np.ndarray) -> bool:
    """Enough runs and sizes left to fit a law of N and D."""
    return bool(train.sum() >= 10 and len(np.unique(n[train])) >= 3 and (~train).sum() >= 3)


def splits(frame: pd.DataFrame, law: str = "chinchilla"):
    """(split name, train mask) for each split of :data:`SPLITS` the sweep allows."""
    from bayes_scaling.laws import get_law

    n = frame["N"].to_numpy(float)
    sizes = np.unique(n)
    k = max(1, round(0.25 * len(sizes)))
    quarter = n < sizes[-k]
    yield "quarter", quarter
    eighth = n < n.max() / 8
    if len(np.unique(n[eighth])) >= 3 and eighth.sum() >= 10 and not np.array_equal(eighth, quarter):
        yield "eighth", eighth
    if "D" not in get_law(law).inputs:
        return
    from bayes_scaling.planning import group_budgets

    c = frame["C"].to_numpy(float)
    groups = group_budgets(c, 0.25)
    full = [g for g in np.unique(groups) if (groups == g).sum() >= 3]
    if full:
        budget = c < c[groups == max(full)].min()
        if _trainable(budget, n):
            yield "budget", budget
    log_tpp = np.round(np.log10(frame["D"].to_numpy(float) / n), 1)
    levels = np.unique(log_tpp)
    if levels[-1] - levels[0] >= 1 and len(levels) >= 4:
        tpp = log_tpp < levels[-max(1, round(0.25 * len(levels)))]
        if _trainable(tpp, n):
            yield "tpp", tpp


def _quantiles_from_draws(draws: np.ndarray) -> np.ndarray:
    return np.quantile(draws, TAUS, axis=0)


def bayes_methods(train: pd.DataFrame, test: pd.DataFrame, law: str, seed: int, source: str,
                  scatter: str = "constant") -> dict[str, tuple]:
    """Quantiles of each Bayesian variant: one NUTS fit, the extrapolation designs.

    kappa's shared prior is rebuilt without the case's own source (:mod:`bayes_scaling.shared_prior`), so no
    sweep is forecast with a prior that saw it (the drift's shared prior likewise); ``bayes-kappa-halfnormal`` is the
    ``kappa`` design with the earlier fixed prior.
    """
    result = fit(train, law=law, seed=seed, warn=False, extrapolation="none", scatter=scatter)
    residuals = fold_residuals(result, seed=seed)
    prior = load_shared_prior(exclude=[source])
    out, terms = {}, {}
    base_info = dict(result.info)
    for design in (*DESIGNS, "kappa-halfnormal"):
        method = f"bayes-{design}"
        if design == "kappa-halfnormal":
            term = learn(residuals, prior="halfnormal")
        else:
            term = learn(residuals, design=design, prior=prior) if design != "none" else None
        terms[design] = term
        result.info = {**base_info, "extrapolation": term.to_dict() if term is not None else {"design": "none"}}
        draws = loss_draws(result, test, seed=seed)
        out[method] = (_quantiles_from_draws(draws["pred"]), np.median(draws["mean"], axis=0))
    diag = result.diagnostics()
    drift = terms["drift"].to_dict()  # the terms above, reported (not learned again)
    out["_diagnostics"] = {"max_r_hat": diag.max_r_hat, "min_ess_bulk": diag.min_ess_bulk,
                           "divergences": diag.divergences, "first_pass": "escalated" not in base_info,
                           "max_tree_depth_hits": diag.max_tree_depth_hits,
                           "kappa": terms["kappa"].quantiles()[1],
                           "drift": drift["drift_mean"], "folds": drift["folds"]}
    return out


def point_bootstrap(train: pd.DataFrame, test: pd.DataFrame, seed: int, n_boot: int = 100) -> tuple:
    """Huber point fit, bootstrap refits, plus a new run's scatter resampled from the training residuals."""
    from bayes_scaling.pointfit import bootstrap_point_fit, huber_point_fit

    point = huber_point_fit(train)
    boot = bootstrap_point_fit(train, n_boot=n_boot, seed=seed)
    n, d = test["N"].to_numpy(float), test["D"].to_numpy(float)
    means = np.array([r.E + r.A / n**r.alpha + r.B / d**r.beta for r in boot.itertuples()])
    residuals = np.log(train["loss"].to_numpy(float)) - np.log(point.predict(train["N"], train["D"]))
    rng = np.random.default_rng(seed)
    reps = 20
    noise = rng.choice(residuals, size=(len(means) * reps, len(test)))
    pred = np.repeat(means, reps, axis=0) * np.exp(noise)
    return _quantiles_from_draws(pred), point.predict(n, d)


def ssl_baseline(train: pd.DataFrame, test: pd.DataFrame, law: str, seed: int) -> tuple:
    """simple-scaling-laws' separable-power fit and its new-run prediction intervals."""
    import polars as pl
    import simple_scaling_laws as ssl

    predictors = {"model_size__n_params": "N"} if law == "params" else \
        {"model_size__n_params": "N", "dataset_size__n_tokens": "D"}
    frame = pl.DataFrame({"training_run_id": [f"run{i}" for i in range(len(train))],
                          **{k: train[v].to_numpy(float) for k, v in predictors.items()},
                          "test_loss__cross_entropy": train["loss"].to_numpy(float)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ssl.fit(frame, law="separable-power", seed=seed)
        points = pl.DataFrame({k: test[v].to_numpy(float) for k, v in predictors.items()})
        predicted = model.predict(points, kind="new-run", quantiles=list(TAUS), seed=seed)
    from simple_scaling_laws.model import quantile_suffix

    quantiles = np.array([predicted[f"test_loss__cross_entropy__{quantile_suffix(float(t))}"].to_numpy()
                          for t in TAUS])
    return quantiles, predicted["test_loss__cross_entropy__median"].to_numpy()


def score(quantiles: np.ndarray, median: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per held-out run: coverage at each level, |relative error| of the median, interval score, CRPS, width."""
    out = {}
    quantiles = np.sort(quantiles, axis=0)  # guard against crossing quantiles
    index = {round(float(t), 4): i for i, t in enumerate(TAUS)}
    for p in LEVELS:
        low, high = quantiles[index[round((1 - p) / 2, 4)]], quantiles[index[round((1 + p) / 2, 4)]]
        out[f"cover_{p:g}"] = (y >= low) & (y <= high)
    low, high = quantiles[index[0.05]], quantiles[index[0.95]]
    alpha = 0.1
    interval = (high - low) + 2 / alpha * (low - y) * (y < low) + 2 / alpha * (y - high) * (y > high)
    out["interval_score_%"] = 100 * interval / y
    pinball = np.maximum(TAUS[:, None] * (y - quantiles), (TAUS[:, None] - 1) * (y - quantiles))
    out["crps_%"] = 100 * 2 * pinball.mean(axis=0) / y
    out["abs_error_%"] = 100 * np.abs(median / y - 1)
    out["width90_%"] = 100 * (high - low) / y
    out["pit"] = (quantiles < y).mean(axis=0)
    return pd.DataFrame(out)


def run(root: Path, *, seed: int = 1, use_ssl: bool = True, only: str | None = None,
        which: tuple[str, ...] = SPLITS, scatter: str = "constant", law: str | None = None) -> pd.DataFrame:
    """Score every method on every case and split; one row per (case, split, method, held-out run).

    The Bayesian methods fit the package's default law (:data:`bayes_scaling.laws.DEFAULT_LAW`) on the cases of
    Chinchilla-form sweeps, or ``law`` where given (e.g. ``"chinchilla"``); the baselines keep theirs.
    """
    rows = []
    for name, frame, case_law in cases(root):
        if only and only not in name:
            continue
        fitted_law = bayes_law(case_law, law)  # the baselines keep the Chinchilla form
        frame = frame.reset_index(drop=True)
        if case_law.startswith("data_constrained"):
            frame = frame.rename(columns={"U": "unique_tokens"})
        frame = load_sweep(frame[[c for c in ("N", "D", "C", "loss", "unique_tokens") if c in frame]]).frame
        for split, mask in splits(frame, case_law):
            if split not in which:
                continue
            train, test = frame[mask].reset_index(drop=True), frame[~mask].reset_index(drop=True)
            y = test["loss"].to_numpy(float)
            decades = np.log10(test["N"].to_numpy(float) / train["N"].max())
            start = time.perf_counter()
            methods = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bayes = bayes_methods(train, test, fitted_law, seed, source_of(name), scatter)
                diagnostics = bayes.pop("_diagnostics")
                methods.update(bayes)
                if case_law in CHINCHILLA_FORM:
                    methods["point-bootstrap"] = point_bootstrap(train, test, seed)
                if use_ssl and case_law in ("chinchilla", "params"):
                    try:
                        methods["ssl"] = ssl_baseline(train, test, case_law, seed)
                    except Exception as exc:
                        print(f"  ssl failed on {name}/{split}: {type(exc).__name__}: {exc}")
            for method, (quantiles, median) in methods.items():
                table = score(quantiles, median, y)
                table.insert(0, "decades_N", decades)
                for key in ("max_r_hat", "min_ess_bulk", "divergences", "first_pass", "max_tree_depth_hits"):
                    table[key] = diagnostics[key]  # the case's NUTS fit (the same for every method)
                table.insert(0, "method", method)
                table.insert(0, "split", split)
                table.insert(0, "case", name)
                rows.append(table)
            seconds = time.perf_counter() - start
            print(f"{name} / {split}: {len(train)} train, {len(test)} held out, {diagnostics['folds']} folds, "
                  f"kappa {diagnostics['kappa']:.3f}, drift {diagnostics['drift']:+.3f}, "
                  f"R-hat {diagnostics['max_r_hat']:.3f}, ESS {diagnostics['min_ess_bulk']:.0f}, "
                  f"divergences {diagnostics['divergences']}, "
                  f"{'first pass' if diagnostics['first_pass'] else 'after the retry'}, "
                  f"{diagnostics['max_tree_depth_hits']} max-depth draws ({seconds:.0f} s)", flush=True)
    return pd.concat(rows, ignore_index=True)


def by_split(per_case: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per split kind and method: run-pooled 90% coverage, split-equal 50% and 90% coverage, mean interval score,
    median error, and the number of (sweep, split) cases and held-out runs."""
    cases = per_case.reset_index()
    equal = cases.groupby(["split", "method"], sort=False).agg(
        cases=("case", "size"), cover_50_split_equal=("cover_0.5", "mean"), cover_90_split_equal=("cover_0.9", "mean"))
    pooled = runs.groupby(["split", "method"], sort=False).agg(
        runs=("pit", "size"), cover_90_pooled=("cover_0.9", "mean"), interval_score=("interval_score_%", "mean"),
        median_error=("abs_error_%", "median"))
    return equal.join(pooled)


def summarise(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per case/split/method means and medians, and the pooled table (every held-out run counts once)."""
    agg = {**{f"cover_{p:g}": "mean" for p in LEVELS}, "abs_error_%": "median", "interval_score_%": "mean",
           "crps_%": "mean", "width90_%": "median"}
    per_case = runs.groupby(["case", "split", "method"], sort=False).agg({**agg, "pit": "size"}).rename(
        columns={"pit": "runs"})
    pooled = runs.groupby("method", sort=False).agg(agg)
    near = runs[(runs["decades_N"] >= 0.5) & (runs["decades_N"] <= 1.5)]
    pooled["width90_at_1_decade_%"] = near.groupby("method", sort=False)["width90_%"].median()
    pooled["runs"] = runs.groupby("method", sort=False).size()
    return per_case, pooled


def targets(runs: pd.DataFrame, per_case: pd.DataFrame, pooled: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """The issue's targets, each with whether it holds and the number behind it."""
    b = pooled.loc[DEFAULT]
    ours = per_case.xs(DEFAULT, level="method")
    equal50 = float(ours["cover_0.5"].mean())
    out = [("run-pooled 90% coverage in [0.85, 0.95]", 0.85 <= b["cover_0.9"] <= 0.95, f"{b['cover_0.9']:.3f}"),
           ("split-equal 50% coverage in [0.40, 0.60]", 0.40 <= equal50 <= 0.60,
            f"{equal50:.3f} (run-pooled {b['cover_0.5']:.3f})")]
    big = ours[ours["runs"] >= 10]
    if len(big):
        worst = big["cover_0.9"].min()
        out.append(("no split with >= 10 held-out runs below 0.75 (90%)", worst >= 0.75,
                    f"min {worst:.3f} ({'/'.join(big['cover_0.9'].idxmin())})"))
    if "point-bootstrap" in per_case.index.get_level_values("method"):  # not with --only on other sweeps
        point = per_case.xs("point-bootstrap", level="method")["abs_error_%"]
        ratio = (ours["abs_error_%"].reindex(point.index) / point).dropna()
        case, split = ratio.idxmax()
        paired = runs[(runs["case"] == case) & (runs["split"] == split)]
        mine = paired[paired["method"] == DEFAULT]["abs_error_%"].to_numpy()
        theirs = paired[paired["method"] == "point-bootstrap"]["abs_error_%"].to_numpy()
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(mine), size=(2000, len(mine)))  # the same held-out runs for both (paired)
        boot = np.median(mine[picks], axis=1) / np.median(theirs[picks], axis=1)
        low, high = np.quantile(boot, [0.05, 0.95])
        out.append(("median error <= 1.05 x point fit's on every sweep", bool((ratio <= 1.05).all()),
                    f"max ratio {ratio.max():.2f} ({case}/{split}; paired bootstrap over its {len(mine)} runs: "
                    f"90% interval [{low:.2f}, {high:.2f}])"))
    for baseline in ("point-bootstrap", "ssl"):
        if baseline in pooled.index:
            common = runs[runs["method"].isin([DEFAULT, baseline])]
            keys = common.groupby(["case", "split"]).filter(lambda g: g["method"].nunique() == 2)
            ours_is, theirs = (keys[keys["method"] == m]["interval_score_%"].mean() for m in (DEFAULT, baseline))
            out.append((f"interval score better than {baseline} (same runs)", ours_is < theirs,
                        f"{ours_is:.2f} vs {theirs:.2f}"))
            kinds = keys.groupby(["split", "method"])["interval_score_%"].mean().unstack("method")
            wins = int((kinds[DEFAULT] < kinds[baseline]).sum())
            out.append((f"interval score better than {baseline} on at least 3 of {len(kinds)} split kinds",
                        wins >= min(3, len(kinds)), f"{wins} of {len(kinds)}: " + ", ".join(
                            f"{k} {kinds.loc[k, DEFAULT]:.2f} vs {kinds.loc[k, baseline]:.2f}" for k in kinds.index)))
    if "max_r_hat" in runs.columns:
        fits = runs[runs["method"] == DEFAULT].groupby(["case", "split"])[["max_r_hat", "min_ess_bulk", "divergences"]]
        worst = fits.first()
        ok = bool((worst["max_r_hat"] <= 1.01).all() and (worst["min_ess_bulk"] >= 400).all()
                  and (worst["divergences"] == 0).all())
        out.append(("every default fit converges (R-hat <= 1.01, bulk ESS >= 400, no divergences)", ok,
                    f"max R-hat {worst['max_r_hat'].max():.3f}, min ESS {worst['min_ess_bulk'].min():.0f}, "
                    f"divergences {int(worst['divergences'].sum())} over {len(worst)} fits"))
    if "first_pass" in runs.columns:  # issue 31: a geometry that converges the first time
        fits = runs[runs["method"] == DEFAULT].groupby(["case", "split"])[["first_pass", "max_tree_depth_hits"]]
        first = fits.first()
        share = float(first["first_pass"].astype(bool).mean())
        hits = int((first["max_tree_depth_hits"] > 0).sum())
        out.append(("at least 90% of default fits pass on their first pass, none hits the maximum tree depth",
                    share >= 0.9 and hits == 0,
                    f"{share:.0%} first pass ({int(first['first_pass'].astype(bool).sum())} of {len(first)}), "
                    f"{hits} fits with max-depth draws"))
    return out


def plot_pit(runs: pd.DataFrame, path: Path) -> None:
    """PIT histograms and coverage curves per method (computed here, drawn by bayes_scaling.plots)."""
    import matplotlib

    matplotlib.use("Agg")
    from bayes_scaling.plots import plot_calibration

    fig = plot_calibration(runs, levels=LEVELS)
    fig.savefig(path, dpi=110)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-ssl", action="store_true", help="skip the simple-scaling-laws baseline")
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help=f"comma-separated splits to run (default: all of {','.join(SPLITS)})")
    parser.add_argument("--scatter", default="constant", choices=("constant", "edges"),
                        help="the Bayesian fits' run-to-run scatter (fit(scatter=...))")
    parser.add_argument("--law", default=None,
                        help="the law of the Bayesian methods on Chinchilla-form sweeps (default: the package's "
                        "default law; e.g. chinchilla); the baselines keep theirs")
    parser.add_argument("--out", type=Path, default=None, help="write the per-run scores to this CSV")
    parser.add_argument("--plot", type=Path, default=None, help="write the PIT/coverage figure to this PNG")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"no shared data at {args.data}")
    use_ssl = not args.no_ssl
    if use_ssl:
        try:
            import simple_scaling_laws  # noqa: F401
        except ImportError:
            print("simple-scaling-laws is not installed (pip install -e '.[bench]'); skipping that baseline")
            use_ssl = False
    which = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    unknown = sorted(set(which) - set(SPLITS))
    if unknown:
        raise SystemExit(f"unknown split(s) {', '.join(unknown)}; choose from {', '.join(SPLITS)}")
    runs = run(args.data, seed=args.seed, use_ssl=use_ssl, only=args.only, which=which, scatter=args.scatter,
               law=args.law)
    per_case, pooled = summarise(runs)
    fmt = lambda v: f"{v:.3g}"  # noqa: E731
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 20):
        print("\nPer sweep and split (coverage: fraction of held-out runs inside; errors and scores in % of loss):")
        print(per_case.to_string(float_format=fmt))
        print("\nPooled over every held-out run:")
        print(pooled.to_string(float_format=fmt))
        print("\nBy kind of split (split-equal: each sweep's split counts once; pooled: each held-out run once):")
        print(by_split(per_case, runs).to_string(float_format=fmt))
    print("\nTargets:")
    for text, ok, number in targets(runs, per_case, pooled):
        print(f"  [{'x' if ok else ' '}] {text}: {number}")
    if args.out:
        runs.to_csv(args.out, index=False)
    if args.plot:
        plot_pit(runs, args.plot)
    return runs


if __name__ == "__main__":
    main()
