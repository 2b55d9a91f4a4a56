"""The shared prior of the extrapolation term: shipped data, the hierarchical pooling, leaving a source out."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_residuals

from bayes_scaling.extrapolation import drift_grid, drift_log_prior, kappa_grid, learn
from bayes_scaling.shared_prior import PRIOR_FILE, SweepLikelihood, load_shared_prior, population_prior

GRID = kappa_grid()
B_GRID = drift_grid()


def peaked(name: str, source: str, kappa: float, sharpness: float = 2e5, drift: float | None = None
           ) -> SweepLikelihood:
    """A sweep whose folds pin kappa near ``kappa`` (a Gaussian log-likelihood on the grid), and its drift near
    ``drift`` where given."""
    return SweepLikelihood(name=name, source=source, law="chinchilla", runs=50, folds=5, residuals=100,
                           log_likelihood=-0.5 * sharpness * (GRID - kappa) ** 2,
                           drift_log_likelihood=None if drift is None else -0.5 * sharpness * (B_GRID - drift) ** 2)


def test_the_shipped_prior_has_its_sources_and_provenance():
    data = json.loads(resources.files("bayes_scaling").joinpath(PRIOR_FILE).read_text())
    assert {"created", "package_version", "script", "data", "grid", "drift_grid", "sweeps"} <= set(data)
    np.testing.assert_allclose(data["grid"], GRID)  # on the term's grids
    np.testing.assert_allclose(data["drift_grid"], B_GRID)
    prior = load_shared_prior()
    assert len(prior.sources) >= 5 and len(prior.sweeps) >= len(prior.sources)
    assert prior.weights.sum() == pytest.approx(1.0) and (prior.weights >= 0).all()
    low, median, high = prior.quantiles()
    assert 0 < low < median < high <= GRID[-1]
    assert "sources" in prior.describe() and prior.to_dict()["sweeps"] == len(prior.sweeps)
    # leaving a source out: fewer sweeps, and it is said
    first = prior.sources[0]
    without = load_shared_prior(exclude=[first])
    assert first not in without.sources and without.excluded == (first,) and first in without.describe()


def test_the_population_prior_follows_what_the_sweeps_say():
    """Sweeps that all pin kappa near 0.05 give a prior centred there; near 0.01, a prior centred there."""
    high = population_prior(GRID, [peaked(f"s{i}", f"src{i}", 0.05 + 0.004 * (i - 3)) for i in range(7)])
    low = population_prior(GRID, [peaked(f"s{i}", f"src{i}", 0.01 + 0.001 * (i - 3)) for i in range(7)])
    assert high.quantiles()[1] == pytest.approx(0.05, abs=0.012)
    assert low.quantiles()[1] == pytest.approx(0.01, abs=0.005)
    assert high.mean == pytest.approx(0.05, rel=0.3)
    # sweeps that disagree give a wider prior than sweeps that agree
    spread = population_prior(GRID, [peaked(f"s{i}", f"src{i}", k) for i, k in
                                     enumerate([0.01, 0.02, 0.04, 0.06, 0.09, 0.12, 0.03])])
    width = lambda p: p.quantiles()[2] - p.quantiles()[0]  # noqa: E731
    assert width(spread) > 1.5 * width(high)


def test_each_source_counts_once():
    """Five copies of one source's sweep weigh as much as one: slices of a paper are not independent sweeps."""
    base = [peaked("a", "paperA", 0.02), peaked("b", "paperB", 0.06)]
    copies = base + [peaked(f"a{i}", "paperA", 0.02) for i in range(4)]
    np.testing.assert_allclose(population_prior(GRID, copies).weights, population_prior(GRID, base).weights)
    # as separate sources they would pull the prior toward 0.02
    separate = base + [peaked(f"a{i}", f"paperA{i}", 0.02) for i in range(4)]
    assert population_prior(GRID, separate).quantiles()[1] < population_prior(GRID, base).quantiles()[1]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="no sweep is left"):
        population_prior(GRID, [peaked("a", "paperA", 0.02)], exclude=["paperA"])
    short = SweepLikelihood("x", "y", "chinchilla", 10, 2, 5, np.zeros(10))
    with pytest.raises(ValueError, match="refresh the shared prior"):
        population_prior(GRID, [short])
    with pytest.raises(ValueError, match="unknown kappa prior 'flat'"):
        learn(pd.DataFrame(), prior="flat")


def test_a_sweep_starts_from_the_shared_prior_and_its_folds_update_it():
    shared = load_shared_prior()
    alone = learn(pd.DataFrame())  # no folds: the shared prior itself
    assert alone.prior == "shared"
    np.testing.assert_allclose(alone.quantiles(), shared.quantiles(), atol=1e-3)
    # residuals that say kappa is about 0.01 move it there from the prior's median
    frame = synthetic_residuals(0.01, 400, seed=1)
    term = learn(frame)
    assert abs(term.quantiles()[1] - 0.01) < abs(shared.quantiles()[1] - 0.01)
    assert term.quantiles()[1] == pytest.approx(0.01, abs=0.004)
    # a prior leaving a source out is recorded by name
    assert learn(frame, prior=load_shared_prior(exclude=[shared.sources[0]])).prior.startswith("shared (without")


def test_the_drifts_are_pooled_where_every_sweep_holds_one():
    """Sweeps whose folds all say the law errs low beyond them give a drift prior centred below zero; its spread
    follows how much they disagree; without drifts the design keeps its Normal(0, 0.02)."""
    low = population_prior(GRID, [peaked(f"s{i}", f"src{i}", 0.03, drift=-0.03 + 0.002 * (i - 3))
                                  for i in range(7)], drift_grid=B_GRID)
    assert low.drift_weights is not None and low.drift_weights.sum() == pytest.approx(1.0)
    assert low.drift_quantiles()[1] == pytest.approx(-0.03, abs=0.006)
    assert low.drift_mean == pytest.approx(-0.03, abs=0.006) and "of the drift" in low.describe()
    assert low.to_dict()["drift"]["median"] == pytest.approx(low.drift_quantiles()[1])
    both = population_prior(GRID, [peaked(f"s{i}", f"src{i}", 0.03, drift=b)
                                   for i, b in enumerate([-0.05, 0.04, -0.02, 0.03, 0.0, -0.04, 0.05])],
                            drift_grid=B_GRID)
    width = lambda p: p.drift_quantiles()[2] - p.drift_quantiles()[0]  # noqa: E731
    assert abs(both.drift_quantiles()[1]) < 0.015 and width(both) > 2 * width(low)
    np.testing.assert_allclose(np.exp(drift_log_prior(low)), low.drift_weights)
    # one sweep without a drift likelihood: kappa is pooled as before, the drift prior is the fixed one
    mixed = population_prior(GRID, [peaked("a", "A", 0.03, drift=-0.03), peaked("b", "B", 0.03)], drift_grid=B_GRID)
    assert mixed.drift_weights is None and np.isnan(mixed.drift_quantiles()[1])
    # no drift grid given: kappa alone
    assert population_prior(GRID, [peaked("a", "A", 0.03, drift=-0.03)]).drift_weights is None
    np.testing.assert_allclose(drift_log_prior(mixed), -0.5 * (B_GRID / 0.02) ** 2)
    np.testing.assert_allclose(drift_log_prior("halfnormal"), -0.5 * (B_GRID / 0.02) ** 2)
    with pytest.raises(ValueError, match="unknown prior 'flat'"):
        drift_log_prior("flat")
    # round trip of a sweep's drift likelihood
    back = SweepLikelihood.from_dict(peaked("a", "A", 0.03, drift=-0.03).to_dict())
    assert back.drift_log_likelihood is not None
    assert B_GRID[np.argmax(back.drift_log_likelihood)] == pytest.approx(-0.03, abs=0.003)


def test_the_drift_design_starts_from_the_shared_drift():
    """Without folds the drift design's drift is the prior's; folds that show no drift pull it toward zero."""
    prior = population_prior(GRID, [peaked(f"s{i}", f"src{i}", 0.03, drift=-0.04) for i in range(5)],
                             drift_grid=B_GRID)
    alone = learn(pd.DataFrame(), design="drift", prior=prior)
    assert alone.to_dict()["drift_mean"] == pytest.approx(-0.04, abs=0.006)
    frame = synthetic_residuals(0.01, 400, seed=2)
    moved = learn(frame, design="drift", prior=prior).to_dict()["drift_mean"]
    assert -0.04 + 0.01 < moved < 0.01
    # the shipped prior holds the public sweeps' drifts
    shipped = load_shared_prior()
    assert shipped.drift_weights is not None and len(shipped.drift_weights) == len(B_GRID)
