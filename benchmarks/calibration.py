"""Coverage calibration of the main laws over simulated sweeps.

Usage: ``python -m benchmarks.calibration [--sims 100] [--laws chinchilla,kaplan,compute,params]``

For each law, parameters are drawn from a realistic range around published fits, a sweep is simulated
(10 sizes x 6 token ratios, 1% Normal noise on log-loss), the law is fitted (Normal likelihood, the
true noise model), and the truth's membership of the central 50% and 90% posterior intervals is
recorded. Over the simulations the coverage of each parameter must lie in the binomial 99% band of
its nominal value. Prints one table per law and an overall line.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from bayes_scaling.scores import calibration_summary
from bayes_scaling.workflows import calibration

SIZES = np.geomspace(5e7, 1e10, 10)
RATIOS = np.array([2, 5, 10, 20, 40, 80])
N_GRID, RATIO_GRID = (a.ravel() for a in np.meshgrid(SIZES, RATIOS, indexing="ij"))
D_GRID = N_GRID * RATIO_GRID


def chinchilla(rng, ref):
    alpha, beta = rng.uniform(0.25, 0.45), rng.uniform(0.25, 0.45)
    return {"E": rng.uniform(1.5, 2.2), "alpha": alpha, "beta": beta,
            "log_n_term": math.log(rng.uniform(0.2, 0.8)), "log_d_term": math.log(rng.uniform(0.2, 0.8))}


def kaplan(rng, ref):
    return {"alpha_N": rng.uniform(0.06, 0.1), "alpha_D": rng.uniform(0.08, 0.12),
            "log_nc": math.log(rng.uniform(3e13, 3e14) / ref["N"]),
            "log_dc": math.log(rng.uniform(1e13, 1e14) / ref["D"])}


def compute(rng, ref):
    return {"E": rng.uniform(1.5, 2.2), "alpha_C": rng.uniform(0.1, 0.25),
            "log_c_term": math.log(rng.uniform(0.3, 1.0))}


def params(rng, ref):
    return {"E": rng.uniform(1.5, 2.2), "alpha": rng.uniform(0.25, 0.45), "log_n_term": math.log(rng.uniform(0.2, 0.8))}


DRAWERS = {"chinchilla": chinchilla, "kaplan": kaplan, "compute": compute, "params": params}


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--laws", default=",".join(DRAWERS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tables = []
    for law in args.laws.split(","):
        start = time.perf_counter()
        table = calibration(law, DRAWERS[law], N=N_GRID, D=D_GRID, n_sims=args.sims, seed=args.seed,
                            fit_kwargs={"draws": 500, "tune": 700, "chains": 4})
        summary = calibration_summary(table)
        summary.insert(0, "law", law)
        per_fit = table.groupby("sim")[["max_r_hat", "divergences"]].first()
        print(f"\n{law}: {args.sims} simulated sweeps in {time.perf_counter() - start:.0f} s; "
              f"fits with R-hat > 1.01: {(per_fit['max_r_hat'] > 1.01).sum()}, with divergences: "
              f"{(per_fit['divergences'] > 0).sum()}")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        tables.append(summary)
    allsum = pd.concat(tables, ignore_index=True)
    print(f"\n{allsum['ok'].sum()} of {len(allsum)} (law, parameter, level) coverages inside the binomial 99% band")
    return allsum


if __name__ == "__main__":
    main()
