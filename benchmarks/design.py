"""Design benchmark: do the suggested next runs sharpen the forecast more than same-cost ladders or random runs?

``make design``. Two parts (issue 18):

1. **Simulation** (``--sweeps``, default 30): per synthetic sweep with a known Chinchilla-form truth (15 runs,
   20M-300M parameters at 5, 20 and 80 tokens per parameter, 1% noise on log-loss), fit, ask
   :func:`bayes_scaling.design.suggest_runs` for runs within a budget equal to the sweep's own compute, "train"
   them (simulate from the truth), refit, and read the 90% credible interval of the loss of a 7B model on 140B
   tokens. The same for a same-cost 20-tokens-per-parameter ladder and for same-cost random candidates.
   Targets: the suggested design's interval is narrower than the ladder's and than random's in >= 70% of the
   sweeps, and it covers the truth in >= 85%. Also reported: the preposterior approximation's expected width
   against the width after the real refit (median ratio and median absolute log ratio).
2. **Replay on chinchilla_epoch**: start from the runs with N < 4e8, let the method pick among the remaining
   runs with N < 5e9 within a FLOP budget (target: the loss at the scored runs' geometric centre), refit, and
   score the runs with N >= 5e9 (median 90% predictive width and median absolute error, %); against 20 random
   same-cost picks and against simple-scaling-laws' own suggestion (its runs snapped to the nearest remaining
   run), in the same run.
3. **Speed**: one suggestion on a fit of all 245 chinchilla_epoch runs (target <= 10 s).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.design import candidate_grid, ladder_design, random_design, suggest_runs
from bayes_scaling.fitting import fit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TARGET = {"N": 7e9, "D": 1.4e11}
SIZES = np.geomspace(2e7, 3e8, 5)
RATIOS = (5.0, 20.0, 80.0)
SIGMA = 0.01


def _truth(rng: np.random.Generator) -> dict[str, float]:
    return {"E": rng.uniform(1.6, 1.9), "A": rng.uniform(250, 600), "B": rng.uniform(250, 600),
            "alpha": rng.uniform(0.26, 0.38), "beta": rng.uniform(0.26, 0.38)}


def _loss(truth: dict[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    return truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]


def _runs(truth: dict[str, float], N: np.ndarray, D: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    N, D = np.asarray(N, float), np.asarray(D, float)
    loss = _loss(truth, N, D) * np.exp(SIGMA * rng.standard_normal(len(N)))
    return pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": loss})


def _interval(result, point: dict[str, float]) -> tuple[float, float]:
    row = result.forecast(N=point["N"], D=point["D"], prob=0.9).iloc[0]
    return float(row["lower"]), float(row["upper"])


def _quiet_fit(frame: pd.DataFrame, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(frame, seed=seed, warn=False)


def simulate(sweeps: int, seed: int) -> pd.DataFrame:
    """One row per sweep and design: width, coverage of the truth, expected width (suggested only)."""
    rows = []
    for i in range(sweeps):
        rng = np.random.default_rng(seed * 1000 + i)
        truth = _truth(rng)
        n, r = np.meshgrid(SIZES, RATIOS)
        sweep = _runs(truth, n.ravel(), n.ravel() * r.ravel(), rng)
        budget = float(sweep["C"].sum())
        first = _quiet_fit(sweep, seed=i)
        t0 = time.perf_counter()
        plan = suggest_runs(first, budget, TARGET, seed=i)
        elapsed = time.perf_counter() - t0
        pool = candidate_grid(first, budget)
        spent = float(plan.runs["C"].sum())
        designs = {"suggested": plan.runs[["N", "D"]],
                   "ladder_20tpp": ladder_design(spent, pool["N"].to_numpy())[["N", "D"]],
                   "random": pool.iloc[random_design(pool, spent, rng)][["N", "D"]]}
        truth_loss = float(_loss(truth, np.array([TARGET["N"]]), np.array([TARGET["D"]]))[0])
        before = _interval(first, TARGET)
        for name, runs in designs.items():
            new = _runs(truth, runs["N"].to_numpy(), runs["D"].to_numpy(), rng)
            refit = _quiet_fit(pd.concat([sweep, new], ignore_index=True), seed=i) if len(new) else first
            low, high = _interval(refit, TARGET)
            rows.append({"sweep": i, "design": name, "runs": len(runs), "C": float(6 * (runs["N"] * runs["D"]).sum()),
                         "width": high - low, "covered": low <= truth_loss <= high,
                         "width_before": before[1] - before[0],
                         "expected_width": plan.after if name == "suggested" else np.nan, "seconds": elapsed})
        last = pd.DataFrame(rows[-3:]).set_index("design")["width"]
        print(f"sweep {i}: {len(plan.runs)} runs suggested ({spent:.2g} of {budget:.2g} FLOPs); width before "
              f"{before[1] - before[0]:.4f}, suggested {last['suggested']:.4f} (expected {plan.after:.4f}), "
              f"ladder {last['ladder_20tpp']:.4f}, random {last['random']:.4f}", flush=True)
    return pd.DataFrame(rows)


def summarise_simulation(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    wide = rows.pivot(index="sweep", columns="design", values="width")
    table = rows.groupby("design").agg(median_width=("width", "median"), coverage=("covered", "mean"),
                                       median_runs=("runs", "median"), median_C=("C", "median"))
    suggested = rows[rows["design"] == "suggested"].set_index("sweep")
    ratio = suggested["expected_width"] / suggested["width"]
    numbers = {
        "narrower_than_ladder": float((wide["suggested"] < wide["ladder_20tpp"]).mean()),
        "narrower_than_random": float((wide["suggested"] < wide["random"]).mean()),
        "coverage": float(suggested["covered"].mean()),
        "expected_over_refit_median": float(ratio.median()),
        "abs_log_ratio_median": float(np.abs(np.log(ratio)).median()),
        "suggest_seconds_median": float(suggested["seconds"].median()),
    }
    return table, numbers


def replay(root: Path, seed: int, random_picks: int = 20) -> pd.DataFrame:
    """Chinchilla replay: one row per design with the scores of the largest runs."""
    from bayes_scaling import datasets

    data = datasets.load("chinchilla_epoch", path=root)
    start = data[data["N"] < 4e8].reset_index(drop=True)
    test = data[data["N"] >= 5e9].reset_index(drop=True)
    pool = data[(data["N"] >= 4e8) & (data["N"] < 5e9)].reset_index(drop=True)
    budget = float(start["C"].sum())
    first = _quiet_fit(start, seed=seed)
    centre = {"N": float(np.exp(np.log(test["N"]).mean())), "D": float(np.exp(np.log(test["D"]).mean()))}
    plan = suggest_runs(first, budget, centre, candidates=pool[["N", "D"]], seed=seed)
    spent = float(plan.runs["C"].sum())
    chosen = plan.candidates.index[plan.candidates["chosen"]].tolist()

    def score(name: str, picks: list[int]) -> dict[str, float]:
        train = pd.concat([start, pool.iloc[picks]], ignore_index=True)
        result = _quiet_fit(train, seed=seed)
        table = result.forecast(N=test["N"].to_numpy(), D=test["D"].to_numpy(), prob=0.9)
        y = test["loss"].to_numpy()
        width = 100 * (table["pred_upper"] - table["pred_lower"]).to_numpy() / y
        error = 100 * np.abs(table["median"].to_numpy() / y - 1)
        covered = (y >= table["pred_lower"]) & (y <= table["pred_upper"])
        return {"design": name, "runs": len(picks), "C": float(pool["C"].iloc[picks].sum()),
                "median_width_%": float(np.median(width)), "median_abs_error_%": float(np.median(error)),
                "coverage": float(np.mean(covered))}

    rows = [score("suggested", chosen)]
    rng = np.random.default_rng(seed)
    randoms = []
    for _ in range(random_picks):
        randoms.append(score("random", random_design(pool, spent, rng)))
    frame = pd.DataFrame(randoms)
    rows.append({"design": f"random (mean of {random_picks})", **frame.drop(columns="design").mean().to_dict()})
    rows.append({"design": "random: share the suggestion beats on width",
                 "median_width_%": float((frame["median_width_%"] > rows[0]["median_width_%"]).mean())})
    ssl = ssl_suggestion(start, pool, spent, seed)
    if ssl is not None:
        rows.append(score("simple-scaling-laws (snapped)", ssl))
    print(f"replay: budget {budget:.3g} FLOPs, suggestion spent {spent:.3g} on {len(chosen)} runs", flush=True)
    return pd.DataFrame(rows)


def ssl_suggestion(start: pd.DataFrame, pool: pd.DataFrame, spent: float, seed: int) -> list[int] | None:
    """simple-scaling-laws' suggested runs for N* at the test budgets, each snapped to the nearest remaining run."""
    try:
        import polars as pl
        import simple_scaling_laws as ssl
        from simple_scaling_laws.cost import cost_model
        from simple_scaling_laws.design import suggest_runs as ssl_suggest
    except ImportError:
        print("simple-scaling-laws is not installed (pip install .[bench]); its row is left out")
        return None
    frame = pl.DataFrame({"training_run_id": [f"run{i}" for i in range(len(start))],
                          "model_size__n_params": start["N"].to_numpy(float),
                          "dataset_size__n_tokens": start["D"].to_numpy(float),
                          "test_loss__cross_entropy": start["loss"].to_numpy(float)})
    cost = cost_model("power", k=6.0, a=1.0, b=1.0)
    budgets = sorted(pool["C"].round(-17).unique())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ssl.fit(frame, law="separable-power", seed=seed)
        plan = ssl_suggest(model, [float(pool["C"].max()) * 10], cost, n=20,
                           candidate_budgets=budgets[:: max(1, len(budgets) // 6)])
    picks, total = [], 0.0
    logs = np.log(pool[["N", "D"]].to_numpy(float))
    for n, d in zip(plan["model_size__n_params"].to_list(), plan["dataset_size__n_tokens"].to_list(), strict=True):
        order = np.argsort(((logs - np.log([n, d])) ** 2).sum(axis=1))
        c = next((int(i) for i in order if int(i) not in picks), None)
        if c is None or total + pool["C"].iloc[c] > spent:
            continue
        picks.append(c)
        total += float(pool["C"].iloc[c])
    return picks


def speed(root: Path, seed: int) -> float:
    from bayes_scaling import datasets

    data = datasets.load("chinchilla_epoch", path=root)
    result = _quiet_fit(data, seed=seed)
    t0 = time.perf_counter()
    suggest_runs(result, 1e21, {"N": 1e11, "D": 2e12}, seed=seed)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sweeps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-simulation", action="store_true")
    args = parser.parse_args(argv)
    checks = []
    if not args.skip_simulation:
        table, numbers = summarise_simulation(simulate(args.sweeps, args.seed))
        print(f"\nSimulation ({args.sweeps} sweeps; 90% credible interval of the loss at N={TARGET['N']:.2g}, "
              f"D={TARGET['D']:.2g}):")
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
        print("expected width (preposterior) / width after the real refit: median "
              f"{numbers['expected_over_refit_median']:.3f}, median |log ratio| {numbers['abs_log_ratio_median']:.3f}; "
              f"one suggestion {numbers['suggest_seconds_median']:.2f} s")
        checks += [(f"narrower than the ladder in {numbers['narrower_than_ladder']:.0%} of sweeps (>= 70%)",
                    numbers["narrower_than_ladder"] >= 0.7),
                   (f"narrower than random in {numbers['narrower_than_random']:.0%} of sweeps (>= 70%)",
                    numbers["narrower_than_random"] >= 0.7),
                   (f"covers the truth in {numbers['coverage']:.0%} of sweeps (>= 85%)", numbers["coverage"] >= 0.85)]
    if (args.data / "chinchilla_epoch").is_dir():
        rows = replay(args.data, args.seed)
        with pd.option_context("display.width", 200):
            print("\nReplay on chinchilla_epoch (start N < 4e8; scored: N >= 5e9, 90% predictive):")
            print(rows.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        seconds = speed(args.data, args.seed)
        checks.append((f"suggestion on the 245-run fit in {seconds:.1f} s (<= 10 s)", seconds <= 10))
    else:
        print(f"no shared data at {args.data / 'chinchilla_epoch'}: replay and speed left out")
    print("\nTargets:")
    for text, ok in checks:
        print(f"  [{'x' if ok else ' '}] {text}")


if __name__ == "__main__":
    main()
