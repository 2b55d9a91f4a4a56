"""Refresh the shared prior of the extrapolation term (``bayes_scaling/extrapolation_prior.json``).

Usage: ``python -m benchmarks.shared_prior [--data ../shared/data] [--check]`` (``make extrapolation-prior``).

For every public sweep the backtests use (:func:`benchmarks.backtests.cases`: one case per group whose losses are
comparable), the default law is fitted to the whole sweep (Laplace approximation: the folds only need its law,
priors and likelihood), its forward-chaining folds are scored in every direction
(:func:`bayes_scaling.fitting.fold_residuals`) and their log-likelihood of kappa on the term's grid (and of the
``"drift"`` design's signed drift on its grid, kappa marginalised uniformly) is saved with the sweep's source and
size. :mod:`bayes_scaling.shared_prior` turns these into the population prior at import.
``--check`` recomputes and compares with the shipped file without writing it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

import bayes_scaling
from bayes_scaling import datasets
from bayes_scaling.data import load_sweep
from bayes_scaling.extrapolation import drift_grid, fold_log_likelihood, kappa_grid, learn
from bayes_scaling.fitting import fit, fold_residuals
from bayes_scaling.intervals import weighted_quantiles
from bayes_scaling.shared_prior import PRIOR_FILE, SweepLikelihood, population_prior
from benchmarks.backtests import DEFAULT_DATA, bayes_law, cases, source_of

TARGET = Path(bayes_scaling.__file__).resolve().parent / PRIOR_FILE


def sweep_likelihoods(root: Path, seed: int = 0) -> list[SweepLikelihood]:
    """Each public sweep's fold log-likelihood of kappa (and its own drift and kappa, for the record)."""
    grid = kappa_grid()
    out = []
    for name, frame, case_law in cases(root):
        law = bayes_law(case_law)  # the law the backtests' fits use
        start = time.perf_counter()
        frame = frame.reset_index(drop=True)
        if law.startswith("data_constrained"):
            frame = frame.rename(columns={"U": "unique_tokens"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sweep = load_sweep(frame[[c for c in ("N", "D", "C", "loss", "unique_tokens") if c in frame]])
            result = fit(sweep, law=law, method="laplace", seed=seed, extrapolation="none", warn=False)
            residuals = fold_residuals(result, seed=seed)
        ll = fold_log_likelihood(residuals, grid, seed=seed)[0]
        # the drift's likelihood, kappa marginalised under a uniform prior on its grid
        joint = fold_log_likelihood(residuals, grid, design="drift", drift=drift_grid(), seed=seed)
        drift_ll = logsumexp(joint, axis=1) - np.log(joint.shape[1])
        flat = np.exp(ll - ll.max())
        median = float(weighted_quantiles(grid, flat / flat.sum(), 0.5)[0])
        drift = learn(residuals, design="drift", prior="halfnormal").to_dict().get("drift_mean", float("nan"))
        item = SweepLikelihood(name=name, source=source_of(name), law=law, runs=len(sweep),
                               folds=int(residuals["fold"].nunique()) if len(residuals) else 0,
                               residuals=len(residuals), log_likelihood=ll, drift=float(drift), median=median,
                               drift_log_likelihood=drift_ll)
        print(f"{name}: {item.runs} runs, {item.folds} folds, {item.residuals} residuals, own kappa {median:.4f}, "
              f"drift {item.drift:+.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        out.append(item)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, do not write")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"no shared data at {args.data}; pass --data")
    sweeps = sweep_likelihoods(args.data, args.seed)
    provenance = {
        "description": "Forward-chaining fold log-likelihoods of the extrapolation term's scale kappa, per public "
                       "sweep; bayes_scaling.shared_prior pools them into the prior of a new sweep's kappa.",
        "created": datetime.date.today().isoformat(),
        "package_version": bayes_scaling.__version__,
        "script": "python -m benchmarks.shared_prior (make extrapolation-prior)",
        "data": {s.source: datasets.info(s.source).citation for s in sweeps if s.source in datasets.CATALOG},
    }
    prior = population_prior(kappa_grid(), sweeps, provenance=provenance, drift_grid=drift_grid())
    print(prior.describe())
    print(f"population mean {prior.mean:.4f}, shape {prior.shape:.2f}")
    if prior.drift_weights is not None:
        print(f"drift: population mean {prior.drift_mean:+.4f}, spread {prior.drift_scale:.4f}")
    for source in prior.sources:
        without = population_prior(kappa_grid(), sweeps, exclude=[source], drift_grid=drift_grid())
        print(f"  without {source}: {without.describe()}")
    payload = {**provenance, "grid": [float(g) for g in kappa_grid()], "drift_grid": [float(b) for b in drift_grid()],
               "sweeps": [s.to_dict() for s in sweeps]}
    if args.check:
        shipped = json.loads(TARGET.read_text())
        old = {s["name"]: s["median"] for s in shipped["sweeps"]}
        for s in sweeps:
            print(f"  {s.name}: shipped kappa {old.get(s.name, float('nan')):.4f}, now {s.median:.4f}")
        return
    TARGET.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
