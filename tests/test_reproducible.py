"""Same seed, same draws: whatever ran before in the process, with a cold or warm compile cache, on any core count.

This is exactly the README's claim (section "Backtests and reproducibility"): on one machine with the same package
versions. Across machines (another CPU) or versions the draws may differ within Monte Carlo error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np

import bayes_scaling as bs
from bayes_scaling.compiled import clear_compiled_cache

KWARGS = {"law": "chinchilla", "draws": 150, "tune": 250, "chains": 2, "seed": 7, "extrapolation": "none",
          "warn": False, "retry": False}

CHILD = """
import json, os, sys, warnings
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
import bayes_scaling as bs
kwargs = json.loads(sys.argv[1])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = bs.fit(bs.load_demo(), **kwargs)
print(json.dumps(result.draws(["alpha"])["alpha"].tolist()))
"""


def _alpha(**extra) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit(bs.load_demo(), **{**KWARGS, **extra}).draws(["alpha"])["alpha"]


def test_same_seed_same_draws_whatever_ran_before(tmp_path):
    first = _alpha()
    # other models compiled in between (another likelihood and law), then the same fit from the cache and fresh
    _alpha(likelihood="normal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bs.fit(bs.load_demo(), law="kaplan", draws=100, tune=100, chains=1, seed=1, extrapolation="none", warn=False)
    np.testing.assert_array_equal(_alpha(), first)
    clear_compiled_cache()
    np.testing.assert_array_equal(_alpha(), first)
    assert not np.array_equal(_alpha(seed=8), first)  # the seed matters


def test_same_draws_in_new_processes_on_one_core_with_a_cold_then_warm_compile_cache(tmp_path):
    """With fastmath, a kernel compiled fresh and the same kernel loaded from the disk cache gave other draws."""
    first = _alpha()
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'cache'}"}
    for run in ("cold", "warm"):
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(KWARGS)], capture_output=True, text=True,
                              env=env, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (tmp_path / "cache" / "numba").is_dir()  # the child compiled into (then read) its own cache
        child = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
        np.testing.assert_array_equal(child, first, err_msg=f"{run} cache")
