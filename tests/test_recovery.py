"""Every law recovers known parameters from a sweep simulated from it (seeded, small MCMC runs).

Each law gets its own noise realisation (seed fixed by its position in the list) and the truth must lie in
the central 99% posterior interval of every free parameter: a recovery check, not a calibration study
(coverage at nominal levels over many simulated sweeps is the job of the calibration suite).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.simulate import reference_of, simulate_sweep

SIZES = np.geomspace(5e7, 1e10, 10)
RATIOS = np.array([2, 5, 10, 20, 40, 80])
N_GRID, RATIO_GRID = (a.ravel() for a in np.meshgrid(SIZES, RATIOS, indexing="ij"))
D_GRID = N_GRID * RATIO_GRID
REF = reference_of(N_GRID, D_GRID)


def chinchilla_truth(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658):
    return {
        "E": E,
        "alpha": alpha,
        "beta": beta,
        "log_n_term": math.log(A) - alpha * math.log(REF["N"]),
        "log_d_term": math.log(B) - beta * math.log(REF["D"]),
    }


CHIN = chinchilla_truth()
TRUTHS = {
    "chinchilla": CHIN,
    "chinchilla_tied": {k: v for k, v in chinchilla_truth(beta=0.3478).items() if k != "beta"},
    "allocation": {**{k: v for k, v in CHIN.items() if k != "beta"}, "a": 0.3658 / (0.3478 + 0.3658)},
    # a fixed at 0.73: beta = 0.2 * 0.73 / 0.27 = 0.54, both terms sizeable at the reference scale
    "allocation_a073": {"E": 1.8, "alpha": 0.2, "log_n_term": math.log(0.4), "log_d_term": math.log(0.3)},
    "kaplan": {
        "alpha_N": 0.076,
        "alpha_D": 0.095,
        "log_nc": math.log(8.8e13 / REF["N"]),
        "log_dc": math.log(5.4e13 / REF["D"]),
    },
    "kaplan_e": {
        "E": 1.2,
        "alpha_N": 0.3,
        "alpha_D": 0.35,
        "log_nc": math.log(3e7 / REF["N"]),
        "log_dc": math.log(1e8 / REF["D"]),
    },
    "compute": {"E": 1.7, "alpha_C": 0.15, "log_c_term": math.log(0.6)},
    "params": {"E": 1.9, "alpha": 0.34, "log_n_term": math.log(0.5)},
    "tokens": {"E": 1.9, "beta": 0.37, "log_d_term": math.log(0.5)},
}


@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_recovers_parameters(name):
    truth = TRUTHS[name]
    data = simulate_sweep(name, truth, N=N_GRID, D=D_GRID, sigma=0.01, seed=100 + sorted(TRUTHS).index(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = bs.fit(data, law=name, draws=400, tune=600, chains=2, seed=3)
    assert result.reference == pytest.approx(REF)
    draws = result.draws(list(truth))
    for key, value in truth.items():
        low, high = np.quantile(draws[key], [0.005, 0.995])
        assert low <= value <= high, f"{name}: {key}={value:.4g} outside 99% interval [{low:.4g}, {high:.4g}]"
    diag = result.diagnostics()
    assert diag.max_r_hat < 1.05, diag


def test_data_constrained_recovers_r_star():
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(5e7, 3e9, 8), 8)
    unique = np.tile(np.geomspace(5e8, 2e10, 8), 8)
    epochs = rng.choice([1, 2, 4, 8, 16, 40], size=n.size)
    d = unique * epochs
    ref = reference_of(n, d)
    truth = {
        "E": 1.9,
        "alpha": 0.35,
        "beta": 0.37,
        "log_n_term": math.log(480.0) - 0.35 * math.log(ref["N"]),
        "log_d_term": math.log(2000.0) - 0.37 * math.log(ref["D"]),
        "r_star": 15.0,
    }
    data = simulate_sweep("data_constrained", truth, N=n, D=d, unique_tokens=unique, sigma=0.01, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = bs.fit(data, law="data_constrained", draws=400, tune=600, chains=2, seed=3)
    draws = result.draws(list(truth))
    for key, value in truth.items():
        low, high = np.quantile(draws[key], [0.005, 0.995])
        assert low <= value <= high, f"{key}={value:.4g} outside 99% interval [{low:.4g}, {high:.4g}]"


def test_saturating_law_tends_to_chinchilla_and_recovers_where_data_stop_paying():
    from bayes_scaling.planning import compute_optimal

    # K far beyond the runs is the Chinchilla form; T = D / N is computed from the columns, not read
    law = bs.get_law("chinchilla_saturating")
    assert law.columns == ("N", "D")
    n, d = np.geomspace(1e8, 1e10, 5), np.geomspace(1e9, 1e13, 5)
    flat = simulate_sweep("chinchilla", CHIN, N=n, D=d, sigma=1e-12, seed=0)["loss"]
    far = simulate_sweep(law, {**CHIN, "log_k": math.log(1e12)}, N=n, D=d, sigma=1e-12, seed=0)["loss"]
    np.testing.assert_allclose(far, flat, rtol=1e-8)
    near = simulate_sweep(law, {**CHIN, "log_k": math.log(20.0)}, N=n, D=d, sigma=1e-12, seed=0)["loss"]
    assert (near > flat).all()  # a cap on the data a model can use only ever raises the loss
    # a ladder trained from 2 to 2,000 tokens per parameter whose data term stops paying beyond about 40 of them
    sizes = np.geomspace(5e7, 3e9, 6)
    ratios = np.geomspace(2, 2000, 7)
    n, ratio = (a.ravel() for a in np.meshgrid(sizes, ratios, indexing="ij"))
    d = n * ratio
    ref = reference_of(n, d)
    truth = {**chinchilla_truth(), "log_k": math.log(40.0)}
    truth["log_n_term"] = math.log(482.01) - 0.3478 * math.log(ref["N"])
    truth["log_d_term"] = math.log(2085.43) - 0.3658 * math.log(ref["D"])
    data = simulate_sweep(law, truth, N=n, D=d, sigma=0.005, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = bs.fit(data, law="chinchilla_saturating", draws=400, tune=600, chains=2, seed=3,
                        extrapolation="none")
    draws = result.draws([*truth, "K"])
    for key, value in truth.items():
        low, high = np.quantile(draws[key], [0.005, 0.995])
        assert low <= value <= high, f"{key}={value:.4g} outside 99% interval [{low:.4g}, {high:.4g}]"
    assert np.quantile(draws["K"], 0.95) < 200  # the data pin the cap: far below the prior's upper tail (1,200)
    # forecasts and plans read T from N and D like any other input
    table = bs.forecast(result, N=1e10, D=2e13, seed=0)
    assert np.isfinite(table[["median", "pred_lower", "pred_upper"]].to_numpy()).all()
    plan = compute_optimal(result, 1e22, seed=0)
    assert 1e8 < float(plan["N_opt"].iloc[0]) < 1e12


def test_prior_predictive_covers_a_plausible_sweep_and_reacts_to_priors():
    from bayes_scaling.fitting import prior_predictive

    table = prior_predictive(bs.load_demo(), "chinchilla", draws=400, seed=1)
    assert list(table.columns) == ["N", "D", "C", "loss", "median", "lower", "upper", "inside"]
    assert table["inside"].all()
    assert (table["lower"] < table["median"]).all() and (table["median"] < table["upper"]).all()
    # a prior that pins E far below the data cannot produce these losses
    tight = prior_predictive(
        bs.load_demo(), "chinchilla", draws=400, seed=1,
        priors={"E": 0.1, "log_n_term": {"dist": "Normal", "mu": -4, "sigma": 0.01},
                "log_d_term": {"dist": "Normal", "mu": -4, "sigma": 0.01}, "sigma": 0.01},
    )
    assert not tight["inside"].any()
