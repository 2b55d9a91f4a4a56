"""Speed benchmark: ``python -m benchmarks [--quick]`` (or ``make bench``).

(The code lives in this module rather than ``__main__`` so that each case can run in a fresh process.)

Prints three tables.

1. NUTS fits: for each law, data size and sampler, wall time split into compile (building and
   compiling the model; nutpie only, zero when a compiled model of the same shape is reused) and
   sampling, the whole fit in a warm process, min bulk ESS, ESS per second of sampling, mean leapfrog
   steps and tree depth, divergences, and peak memory (each case runs in a fresh process, so this is the
   case's own peak resident memory). Sizes of 20,000 rows and more are fitted once (the warm fit is then
   the only fit after compiling).
2. The approximate path (``method="laplace"``) on the same data: warm time, Pareto k-hat, and its
   distance to the NUTS posterior: the largest |mean difference| in NUTS posterior sds and the range
   of sd ratios (approximate / NUTS) over the law's parameters.
3. The point-fit baseline (Huber + L-BFGS over Epoch's start grid) and its 100-resample bootstrap
   (Epoch AI's intervals), with our warm fit time as a ratio to theirs.
4. From the command line, each a new process: ``bayes-scaling fit`` the first time ever (empty PyTensor and numba
   caches; it starts the background worker, :mod:`bayes_scaling.worker`), a second and third time (through the
   worker, which kept the compiled model), once more without the worker (a new process compiling again, disk
   caches warm), and ``scaling-laws fit`` of the peer ``simple-scaling-laws`` (a benchmark-only dependency, the
   ``bench`` extra) on the same sweep, as ratios.
5. Pooled analyses from the command line, each a new process without the worker (:func:`bench_pooled`):
   ``explain`` on porian2024 RefinedWeb, ``recipes`` on marin_isoflop, the 46-task downstream fit.
6. First-pass convergence of default fits on the backtest splits' training sets, in the slope geometry and in the
   law's own parameters (:mod:`benchmarks.convergence`).
7. Sampling to an ESS target (``ess=1000``) on the largest synthetic sweep: wall time, batches, min bulk ESS.

Fits use 4 chains x 1000 draws (1000 tuning steps) and the default Student-t likelihood.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import resource
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling.compiled import clear_compiled_cache
from bayes_scaling.inference import compiled_nutpie
from bayes_scaling.model import build_model
from bayes_scaling.pointfit import bootstrap_point_fit, huber_point_fit
from bayes_scaling.simulate import reference_of, simulate_sweep

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla_epoch" / "data.csv"
TRUTH = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
SINGLE_FIT_ROWS = 20_000


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


def bench_fit(name: str, data, law: str, sampler: str = "nutpie") -> tuple[dict, bs.Fit]:
    sweep = bs.load_sweep(data)
    compile_s = float("nan")
    if sampler.startswith("nutpie"):
        clear_compiled_cache()
        start = time.perf_counter()
        model = build_model(law, sweep)
        compiled_nutpie(model, None, backend="jax" if sampler == "nutpie-jax" else "numba")
        compile_s = time.perf_counter() - start
    result = bs.fit(sweep, law=law, seed=1, warn=False, sampler=sampler)  # nutpie: compiles into the cache
    if len(sweep) < SINGLE_FIT_ROWS:
        result = bs.fit(sweep, law=law, seed=2, warn=False, sampler=sampler)  # warm: reuses what it can
    diag = result.diagnostics()
    whole = result.info["fit_seconds"]
    sampling = result.info.get("sampling_seconds", whole)
    row = {
        "data": name, "law": law, "sampler": sampler, "rows": len(sweep), "compile_s": compile_s,
        "sampling_s": sampling, "warm_fit_s": whole, "min_ess_bulk": diag.min_ess_bulk,
        "ess_per_s": diag.min_ess_bulk / sampling, "steps_per_draw": diag.mean_steps,
        "tree_depth": diag.mean_tree_depth, "divergences": diag.divergences, "max_r_hat": diag.max_r_hat,
        "peak_mb": peak_mb(),
    }
    return row, result


def bench_laplace(name: str, data, law: str, reference: bs.Fit) -> dict:
    """Warm Laplace fit and its distance to the NUTS posterior ``reference``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bs.fit(data, law=law, method="laplace", seed=1, warn=False)  # compiles into the cache
        approx = bs.fit(data, law=law, method="laplace", seed=2, warn=False)
    names = [n for n in reference.law.param_names if n in reference.sampled_names]
    nuts, lap = reference.draws(names), approx.draws(names)
    shift = max(abs(lap[n].mean() - nuts[n].mean()) / nuts[n].std() for n in names)
    ratios = [lap[n].std() / nuts[n].std() for n in names]
    return {
        "data": name, "law": law, "rows": len(reference.sweep), "laplace_s": approx.info["fit_seconds"],
        "nuts_warm_s": reference.info["fit_seconds"], "pareto_k": approx.info["approximation"]["pareto_k"],
        "max_mean_shift_sd": float(shift), "sd_ratio_min": float(min(ratios)), "sd_ratio_max": float(max(ratios)),
    }


def run_case(case: tuple) -> tuple[dict, dict | None]:
    """One case in this (fresh) process: the NUTS fit and, if asked, the Laplace comparison."""
    warnings.simplefilter("ignore")
    name, data, law, sampler, with_laplace = case
    row, result = bench_fit(name, data, law, sampler)
    approx = bench_laplace(name, data, law, result) if with_laplace else None
    row["peak_mb"] = peak_mb()
    return row, approx


def _print_row(row: dict) -> None:
    """A result row as it comes, floats to 3 decimals."""
    print({k: round(float(v), 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    import subprocess

    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done.returncode


def bench_cli(csv: Path) -> pd.DataFrame:
    """Wall time of command-line fits of ``csv``, each in a new process (see the module docstring).

    The first fit ever starts the background worker (:mod:`bayes_scaling.worker`) with empty compile caches and
    compiles there; the second process hands its fit to that worker. The same second fit without the worker
    (``BAYES_SCALING_WORKER=off``: compile again in the new process, numba's disk cache warm) is the route it
    replaces. The worker is stopped at the end.
    """
    import os
    import shutil
    import sys
    import tempfile

    bin_dir = Path(sys.executable).parent
    rows = []
    tmp = tempfile.mkdtemp(prefix="bsb-")  # short: the worker's socket lives under it
    try:
        # base_compiledir, not compiledir: PyTensor keeps its numba cache (and ours of nutpie's callbacks) beside
        # its compile folder, under base_compiledir; with only compiledir set it stayed warm in ~/.pytensor, and
        # "first ever" measured a new process with warm numba caches (16.4 s) rather than a new installation
        env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp}/pytensor", "NUMBA_CACHE_DIR": f"{tmp}/numba",
               "XDG_CACHE_HOME": f"{tmp}/cache", "BAYES_SCALING_WORKER": "on"}
        ours = [str(bin_dir / "bayes-scaling"), "fit", str(csv), "--seed", "1", "--quiet", "--json"]
        for label in ("bayes-scaling fit, first ever (empty caches; starts the worker)",
                      "bayes-scaling fit, second process (through the worker)",
                      "bayes-scaling fit, third process (through the worker)"):
            seconds, code = _timed(ours, env)
            rows.append({"command": label, "wall_s": seconds, "exit": code})
        seconds, code = _timed(ours, {**env, "BAYES_SCALING_WORKER": "off"})
        rows.append({"command": "bayes-scaling fit, new process without the worker (compiles again)",
                     "wall_s": seconds, "exit": code})
        _timed([str(bin_dir / "bayes-scaling"), "worker", "stop"], env)
        peer = shutil.which("scaling-laws", path=str(bin_dir))
        if peer is None:
            print("simple-scaling-laws is not installed (pip install -e '.[bench]'); its CLI row is skipped")
        else:
            frame = pd.read_csv(csv)
            table = Path(tmp) / "runs.csv"
            pd.DataFrame({"training_run_id": [f"run{i}" for i in range(len(frame))],
                          "model_size__n_params": frame["N"], "dataset_size__n_tokens": frame["D"],
                          "test_loss__cross_entropy": frame["loss"]}).to_csv(table, index=False)
            seconds, code = _timed([peer, "fit", str(table), "--output", f"{tmp}/fit.slaw", "--quiet"], env)
            rows.append({"command": "scaling-laws fit (simple-scaling-laws, separable-power, 1000 bootstrap draws)",
                         "wall_s": seconds, "exit": code})
    finally:
        shutil.rmtree(tmp)
    out = pd.DataFrame(rows)
    reference = out["wall_s"].iloc[-1] if peer is not None else float("nan")
    out["ratio_to_simple_scaling_laws"] = out["wall_s"] / reference
    return out


def bench_pooled(root: Path) -> pd.DataFrame:
    """Wall time of the pooled analyses users wait for, each a new command-line process (issue 31's targets).

    ``explain`` on porian2024's RefinedWeb setups (1,164 runs, 10 setups, two parameter counts), ``recipes`` on
    marin_isoflop's three data mixes at 1e22 FLOPs, and the 46-task pooled downstream fit on gadre2024_downstream's
    RedPajama models below 1e9 parameters (``fit-downstream --metric 'err_*'``, with its max R-hat). Without the
    background worker: every command compiles what it needs. Then ``explain`` and ``recipes`` (the pooled commands
    :mod:`bayes_scaling.worker` takes) twice each through a worker of the benchmark's own (its socket in a folder
    of its own, the compile caches as they are): the first call starts it and compiles there, the second is what
    a user repeating the command waits for. The worker is stopped at the end.
    """
    import json
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    from bayes_scaling import datasets

    cli = str(Path(sys.executable).parent / "bayes-scaling")
    tmp = Path(tempfile.mkdtemp(prefix="bsp-"))
    env = {**os.environ, "BAYES_SCALING_WORKER": "off", "BAYES_SCALING_DATA": str(root)}
    rows = []
    try:
        porian = pd.read_csv(root / "porian2024" / "data.csv")
        refinedweb = porian[porian["dataset"] == "refinedweb"].drop(columns=["C"])
        refinedweb.to_csv(tmp / "refinedweb.csv", index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tasks = datasets.load("gadre2024_downstream", path=root)
        tasks = tasks[(tasks["dataset"] == "rpj") & (tasks["N"] < 1e9)]
        tasks.to_csv(tmp / "tasks.csv", index=False)
        commands = {
            "explain porian2024 RefinedWeb (--by setup --counts N_total,N_nonembed)":
                ([cli, "explain", str(tmp / "refinedweb.csv"), "--by", "setup", "--counts", "N_total,N_nonembed"], 90),
            "recipes marin_isoflop (--by dataset --C 1e22)":
                ([cli, "recipes", "dataset:marin_isoflop", "--by", "dataset", "--C", "1e22"], 20),
            "fit-downstream, 46 tasks pooled (gadre2024 rpj < 1e9)":
                ([cli, "fit-downstream", str(tmp / "tasks.csv"), "--metric", "err_*"], 60),
        }
        for label, (command, target) in commands.items():
            start = time.perf_counter()
            done = subprocess.run([*command, "--json", "--quiet", "--seed", "1"], env=env, capture_output=True,
                                  text=True, check=False)
            seconds = time.perf_counter() - start
            row = {"command": label, "wall_s": seconds, "target_s": target, "exit": done.returncode}
            if done.returncode == 0 and "fit-downstream" in label:
                row["max_r_hat"] = json.loads(done.stdout).get("diagnostics", {}).get("max_r_hat")
            elif done.returncode != 0:
                print(done.stderr[-2000:])
            rows.append(row)
            _print_row(row)
        through = {**env, "BAYES_SCALING_WORKER": "on", "XDG_CACHE_HOME": str(tmp / "cache")}
        try:
            for label, (command, target) in commands.items():
                if command[1] not in ("explain", "recipes"):
                    continue
                for call in ("first", "second"):
                    seconds, code = _timed([*command, "--json", "--quiet", "--seed", "1"], through)
                    row = {"command": f"{label}, {call} call through the worker", "wall_s": seconds,
                           "target_s": target, "exit": code}
                    rows.append(row)
                    _print_row(row)
        finally:
            _timed([cli, "worker", "stop"], through)
    finally:
        shutil.rmtree(tmp)
    return pd.DataFrame(rows)


def bench_ess(rows: int, ess: int = 1000) -> dict:
    """A fit of ``rows`` synthetic runs sampled to an ESS target, in this (fresh) process."""
    warnings.simplefilter("ignore")
    data = synthetic(rows)
    start = time.perf_counter()
    result = bs.fit(data, law="chinchilla", seed=1, warn=False, ess=ess, log_likelihood=False)
    done = result.info["ess_sampling"]
    return {"rows": rows, "ess_target": ess, "wall_s": time.perf_counter() - start,
            "sampling_s": result.info["sampling_seconds"], "batches": done["batches"], "chains": done["chains"],
            "draws_per_chain": done["draws_per_chain"], "min_ess_bulk": result.diagnostics().min_ess_bulk,
            "max_r_hat": result.diagnostics().max_r_hat, "reached": done["reached"]}


def _show(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 245-row real sweep (or 250 synthetic)")
    parser.add_argument("--sizes", default="5000,100000", help="synthetic sweep sizes (default 5000,100000)")
    parser.add_argument("--samplers", default="nutpie,nutpie-jax,pymc,numpyro",
                        help="NUTS backends compared on the base sweep (JAX ones skipped if not installed)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    pd.set_option("display.width", 250)
    real = REAL if REAL.exists() else None
    base = ("real chinchilla", pd.read_csv(real)) if real else ("synthetic 250", synthetic(250))
    installed = {"numpyro": importlib.util.find_spec("numpyro"), "nutpie-jax": importlib.util.find_spec("jax")}
    samplers = [s for s in args.samplers.split(",") if s and installed.get(s, True)]
    cases = [(base[0], base[1], law, "nutpie") for law in ("chinchilla", "kaplan", "compute")]
    cases += [(base[0], base[1], "chinchilla", s) for s in samplers if s != "nutpie"]
    if not args.quick:
        for size in args.sizes.split(","):
            data = synthetic(int(size))
            cases += [(f"synthetic {size}", data, "chinchilla", s) for s in samplers if s.startswith("nutpie")]
    rows, approx_rows = [], []
    context = multiprocessing.get_context("spawn")
    for name, data, law, sampler in cases:
        with_laplace = sampler == "nutpie" and (law == "chinchilla" or name == base[0])
        # A fresh (non-daemonic: PyMC's sampler starts its own processes) process per case: its own compile
        # cache and peak memory.
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            row, approx = pool.submit(run_case, (name, data, law, sampler, with_laplace)).result()
        rows.append(row)
        _print_row(row)
        if approx is not None:
            approx_rows.append(approx)
            _print_row(approx)
    table = pd.DataFrame(rows)
    _show("NUTS fits (4 chains x 1000 draws, Student-t)", table)
    _show("Approximate path: method='laplace' (warm) vs the NUTS posterior above", pd.DataFrame(approx_rows))

    start = time.perf_counter()
    huber_point_fit(base[1])
    point_s = time.perf_counter() - start
    start = time.perf_counter()
    bootstrap_point_fit(base[1], n_boot=100, seed=0)
    boot_s = time.perf_counter() - start
    ours = table.loc[(table["law"] == "chinchilla") & (table["sampler"] == "nutpie"), "warm_fit_s"].iloc[0]
    print(f"\npoint fit (Huber + L-BFGS, {base[0]}): {point_s:.2f} s; 100-resample bootstrap: {boot_s:.1f} s")
    print(f"Bayesian fit (warm, 4x1000 draws) / point fit: {ours / point_s:.2f}; / bootstrap: {ours / boot_s:.3f}")

    if real is not None:
        cli = bench_cli(real)
        _show("Command line, each fit a new process (real Chinchilla sweep)", cli)
        first, second, later = cli["wall_s"].iloc[0], cli["wall_s"].iloc[1], cli["wall_s"].iloc[3]
        print(f"targets: first CLI fit ever {first:.1f} s (<= 15 s: {'yes' if first <= 15 else 'NO'}; every cache "
              f"empty); a new process with the caches on disk, as after the worker's idle timeout, {later:.1f} s "
              f"(<= 15 s: {'yes' if later <= 15 else 'NO'}); second process {second:.1f} s (<= 3 s: "
              f"{'yes' if second <= 3 else 'NO'}; no slower than simple-scaling-laws: "
              f"{'yes' if cli['ratio_to_simple_scaling_laws'].iloc[1] <= 1 else 'NO'})")
    if not args.quick and REAL.parents[1].exists():
        pooled = bench_pooled(REAL.parents[1])
        _show("Pooled analyses, each a new command-line process (targets: issue 31)", pooled)
        from benchmarks.convergence import run as convergence_run
        from benchmarks.convergence import summarise as convergence_summary

        first = convergence_summary(convergence_run(REAL.parents[1], ["slopes", "natural"]))
        _show("First-pass convergence of default fits on the backtest splits' training sets", first.reset_index())
        ours = first.loc["slopes"]
        print(f"target: >= 90% of default fits pass on their first pass: {ours['first_pass']:.0%} "
              f"({'yes' if ours['first_pass'] >= 0.9 else 'NO'}); none at the maximum tree depth: "
              f"{'yes' if ours['depth_hit_fits_first'] == 0 and ours['depth_hit_fits_final'] == 0 else 'NO'}")
    if not args.quick:
        largest = max(int(size) for size in args.sizes.split(","))
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            ess_row = pool.submit(bench_ess, largest).result()
        _show("Sampling to an ESS target (nutpie, Chinchilla law)", pd.DataFrame([ess_row]))
        print(f"target: min bulk ESS >= 1,000 within 60 s at {largest:,} rows: "
              f"{'yes' if ess_row['reached'] and ess_row['wall_s'] <= 60 else 'NO'}")
    return table


if __name__ == "__main__":
    main()
