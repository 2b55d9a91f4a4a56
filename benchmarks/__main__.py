"""Speed benchmark: ``python -m benchmarks [--quick]`` (or ``make bench``).

Prints one table: for each law and data size, wall time split into compile (building and compiling
the model; zero when a compiled model of the same law and size is reused) and sampling, whole fit in a
warm process, min bulk ESS, ESS per second of sampling, mean leapfrog steps and tree depth,
divergences and the process's peak memory; then the point-fit baseline (Huber + L-BFGS) and its
100-resample bootstrap (Epoch AI's intervals), with our warm fit time as a ratio to theirs.
Fits use 4 chains x 1000 draws (1000 tuning steps), the default Student-t likelihood and nutpie.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling.inference import _compiled_nutpie, clear_compiled_cache
from bayes_scaling.model import build_model
from bayes_scaling.pointfit import bootstrap_point_fit, huber_point_fit
from bayes_scaling.simulate import reference_of, simulate_sweep

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla_epoch" / "data.csv"
TRUTH = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def synthetic(rows: int, seed: int = 0) -> pd.DataFrame:
    """Chinchilla-law runs with N log-uniform in 5e7-1e10 and 2-100 tokens per parameter, 1% noise."""
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(5e7), np.log(1e10), rows))
    d = n * np.exp(rng.uniform(np.log(2), np.log(100), rows))
    ref = reference_of(n, d)
    truth = {"E": TRUTH["E"], "alpha": TRUTH["alpha"], "beta": TRUTH["beta"],
             "log_n_term": np.log(TRUTH["A"]) - TRUTH["alpha"] * np.log(ref["N"]),
             "log_d_term": np.log(TRUTH["B"]) - TRUTH["beta"] * np.log(ref["D"])}
    return simulate_sweep("chinchilla", truth, N=n, D=d, sigma=0.01, seed=rng)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_fit(name: str, data, law: str) -> dict:
    sweep = bs.load_sweep(data)
    clear_compiled_cache()
    start = time.perf_counter()
    model = build_model(law, sweep)
    _compiled_nutpie(model, None)
    compile_s = time.perf_counter() - start
    bs.fit(sweep, law=law, seed=1, warn=False)  # compiles into the cache (the cold fit)
    result = bs.fit(sweep, law=law, seed=2, warn=False)  # warm: reuses the compiled model
    diag = result.diagnostics()
    whole = result.info["fit_seconds"]
    sampling = result.info.get("sampling_seconds", whole)
    return {
        "data": name, "law": law, "rows": len(sweep), "compile_s": compile_s, "sampling_s": sampling,
        "warm_fit_s": whole, "min_ess_bulk": diag.min_ess_bulk, "ess_per_s": diag.min_ess_bulk / sampling,
        "steps_per_draw": diag.mean_steps, "tree_depth": diag.mean_tree_depth, "divergences": diag.divergences,
        "max_r_hat": diag.max_r_hat, "peak_mb": peak_mb(),
    }


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 245-row real sweep (or 250 synthetic)")
    parser.add_argument("--sizes", default="5000,100000", help="synthetic sweep sizes (default 5000,100000)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    real = REAL if REAL.exists() else None
    base = ("real chinchilla", pd.read_csv(real)) if real else ("synthetic 250", synthetic(250))
    rows = []
    cases = [(base[0], base[1], law) for law in ("chinchilla", "kaplan", "compute")]
    if not args.quick:
        cases += [(f"synthetic {size}", synthetic(int(size)), "chinchilla") for size in args.sizes.split(",")]
    for name, data, law in cases:
        rows.append(bench_fit(name, data, law))
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    start = time.perf_counter()
    huber_point_fit(base[1])
    point_s = time.perf_counter() - start
    start = time.perf_counter()
    bootstrap_point_fit(base[1], n_boot=100, seed=0)
    boot_s = time.perf_counter() - start
    ours = table.loc[table["law"] == "chinchilla", "warm_fit_s"].iloc[0]
    print(f"\npoint fit (Huber + L-BFGS, {base[0]}): {point_s:.2f} s; 100-resample bootstrap: {boot_s:.1f} s")
    print(f"Bayesian fit (warm, 4x1000 draws) / point fit: {ours / point_s:.2f}; / bootstrap: {ours / boot_s:.3f}")
    return table


if __name__ == "__main__":
    main()
