"""Honest extrapolation: the forward-chaining term, its effect on forecasts, and coverage on misspecified sweeps."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_residuals

import bayes_scaling as bs
from bayes_scaling.extrapolation import DIRECTIONS, Extrapolation, distance, distance_columns, learn
from bayes_scaling.fitting import fold_residuals

FAST = {"draws": 300, "tune": 400, "chains": 2}


def bent_sweep(seed: int, *, bend: float = 0.015, n_max: float = 1e9, sigma: float = 0.005,
               held_out: bool = False) -> pd.DataFrame:
    """Runs from a Chinchilla-like law whose exponents shrink slowly with scale (curvature in log-log).

    alpha(N) = 0.34 - bend * log10(N / 1e8), beta(D) = 0.28 - bend * log10(D / 2e9): a law that a fixed-exponent
    fit matches well inside a two-decade sweep and misses beyond it (the terms stay decreasing for
    ``2 * bend * |log10(N / 1e8)| < 0.34``, so ``bend`` up to about 0.03 over these sizes). ``held_out`` gives
    runs 0.3-1 decade beyond ``n_max`` instead of the sweep.
    """
    rng = np.random.default_rng(seed)
    if held_out:
        n = np.geomspace(2 * n_max, 10 * n_max, 6)
    else:
        n = np.repeat(np.geomspace(n_max / 100, n_max, 8), 3)
    d = n * rng.choice([10.0, 20.0, 40.0], size=n.size) * rng.uniform(0.9, 1.1, n.size)
    alpha = 0.34 - bend * np.log10(n / 1e8)
    beta = 0.28 - bend * np.log10(d / 2e9)
    loss = 1.8 + 400 / n**alpha + 410 / d**beta
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, sigma, n.size))})


def test_distance_is_zero_inside_and_grows_beyond():
    # a sweep spanning N 1e8-1e10 and D 1e9-1e11: two decades in each
    sweep = bs.load_sweep(pd.DataFrame({"N": np.geomspace(1e8, 1e10, 6), "D": np.geomspace(1e9, 1e11, 6),
                                        "loss": 3.0}), check_units=False)
    points = pd.DataFrame({"N": [1e9, 1e11, 1e12, 1e7], "D": [1e10, 1e11, 1e13, 1e10]})
    outside = sweep.decades_outside(points)
    d = np.hypot(outside["decades_N"], outside["decades_D"])
    np.testing.assert_allclose(d, [0.0, 1.0, np.hypot(2, 2), 1.0])
    np.testing.assert_allclose(distance(points, sweep, ["N", "D"]), d / 2)  # both ranges span two decades


def test_beyond_the_largest_budget_or_tokens_per_parameter_is_out_though_n_and_d_are_inside():
    """The next compute budget and over-training are directions of their own (a sweep on a diagonal)."""
    n = np.geomspace(1e8, 1e10, 6)
    sweep = bs.load_sweep(pd.DataFrame({"N": n, "D": 20 * n, "loss": 3.0}), check_units=False)
    columns = distance_columns(bs.get_law("chinchilla"))
    assert columns == ["N", "D", "compute_6ND", "tokens_per_param"]
    points = pd.DataFrame({"N": [1e9, 1e10, 1e8], "D": [2e10, 1.9e11, 1.9e11]})
    inside_box = sweep.decades_outside(points)[["decades_N", "decades_D"]].abs().sum(axis=1)
    assert (inside_box == 0).all()  # each N and each D lies inside the sweep's range
    d = distance(points, sweep, columns)
    assert d[0] == 0  # on the sweep's diagonal
    assert d[1] > 0  # N and D at their largest: beyond the largest budget (log 6ND 0.98 decade past)
    assert d[2] > 0  # a small model on many tokens: beyond the sweep's 20 tokens per parameter
    assert distance(points, sweep, ["N", "D"]).max() == 0  # what the box alone saw


def test_learn_recovers_a_known_growth_rate():
    frame = synthetic_residuals(0.03, 2500, seed=0)
    term = learn(frame)
    low, median, high = term.quantiles()
    assert low < 0.03 < high and abs(median - 0.03) < 0.003
    # the same with the earlier fixed prior: enough residuals outweigh either prior
    assert abs(learn(frame, prior="halfnormal").quantiles()[1] - 0.03) < 0.003
    # no residuals: the prior alone (HalfNormal with scale 0.02)
    prior = learn(frame.iloc[:0], prior="halfnormal")
    assert 0.01 < prior.quantiles()[1] < 0.02 and prior.folds == 0 and prior.prior == "halfnormal"
    again = Extrapolation.from_dict(prior.to_dict())
    np.testing.assert_allclose(again.weights, prior.weights)
    assert again.prior == "halfnormal"


@pytest.fixture(scope="module")
def bent_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit(bent_sweep(0, bend=0.02), seed=3, **FAST)


def test_folds_see_the_error_grow_and_forecasts_widen_beyond_the_sweep(bent_fit):
    residuals = fold_residuals(bent_fit)
    assert residuals["fold"].nunique() >= 3 and (residuals["distance"] > 0).any()
    # folds in every direction a forecast may go: size, the next budget, over-training
    assert set(residuals["direction"]) == set(DIRECTIONS)
    for direction, part in residuals.groupby("direction"):
        assert (part["distance"] > 0).mean() > 0.5, direction
    term = bent_fit.info["extrapolation"]
    assert term["design"] == "directional" and term["folds"] >= 3 and term["median"] > 0  # the default design
    assert "drift_mean" in term and term["prior"] == "shared"
    assert set(term["directions"]) == set(DIRECTIONS)  # which direction drove the term, reported
    assert sum(v["folds"] for v in term["directions"].values()) == term["folds"]
    with pytest.raises(ValueError, match="unknown fold direction"):
        fold_residuals(bent_fit, directions=("width",))
    table = bent_fit.forecast(N=[1e8, 1e10, 1e11], D=[2e9, 2e11, 2e12])
    assert table.loc[0, "sd_extrapolation"] == 0  # inside the sweep nothing changes
    assert 0 < table.loc[1, "sd_extrapolation"] < table.loc[2, "sd_extrapolation"]
    plain = bs.fit(bent_fit.sweep, seed=3, extrapolation="none", warn=False, **FAST).forecast(
        N=[1e8, 1e10, 1e11], D=[2e9, 2e11, 2e12])
    width = table["pred_upper"] - table["pred_lower"]
    plain_width = plain["pred_upper"] - plain["pred_lower"]
    assert width[0] == pytest.approx(plain_width[0], rel=0.15)
    assert (width[1:] > plain_width[1:]).all()


def test_the_term_learned_while_the_chains_sample_is_the_one_learned_from_the_finished_fit(bent_fit):
    from bayes_scaling.fitting import calibrate

    after = calibrate(bent_fit, seed=3).to_dict()  # from the fitted result, after sampling
    during = {k: v for k, v in bent_fit.info["extrapolation"].items() if k != "seconds"}
    assert during == after


def test_the_term_is_saved_with_the_fit(bent_fit, tmp_path):
    loaded = bs.load(bent_fit.save(tmp_path / "bent.nc"))
    assert loaded.info["extrapolation"] == bent_fit.info["extrapolation"]
    pd.testing.assert_frame_equal(loaded.forecast(N=1e11, D=2e12), bent_fit.forecast(N=1e11, D=2e12))


def test_unknown_design_is_refused():
    with pytest.raises(ValueError, match="unknown extrapolation 'gp'"):
        bs.fit(bs.load_demo(), extrapolation="gp")


def test_coverage_of_larger_runs_on_misspecified_sweeps_and_no_needless_widening():
    """Over 50 simulated sweeps per setting: the bent law's held-out larger runs fall in the 90% predictive
    interval at least 80% of the time; on well-specified sweeps (bend 0) intervals widen by at most 30%, and the
    default design's drift (which starts from the public sweeps', mostly negative) does not push them off: their
    larger runs are covered at least 80% of the time too.

    The fits are Laplace approximations (the term and its folds are the same as after NUTS; 100 NUTS fits took
    160 s of the test run for the same conclusions)."""
    covered, covered_plain, widths_on, widths_off = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(50):
            train, test = bent_sweep(seed, bend=0.015), bent_sweep(seed, bend=0.015, held_out=True)
            result = bs.fit(train, seed=seed, method="laplace", warn=False)
            table = result.forecast(N=test["N"], D=test["D"])
            covered.extend((test["loss"] >= table["pred_lower"]) & (test["loss"] <= table["pred_upper"]))
        for seed in range(50):
            train, test = bent_sweep(100 + seed, bend=0.0), bent_sweep(100 + seed, bend=0.0, held_out=True)
            result = bs.fit(train, seed=seed, method="laplace", warn=False)
            on = result.forecast(N=test["N"], D=test["D"])
            covered_plain.extend((test["loss"] >= on["pred_lower"]) & (test["loss"] <= on["pred_upper"]))
            result.info["extrapolation"] = {"design": "none"}
            off = result.forecast(N=test["N"], D=test["D"])
            widths_on.append(np.median(on["pred_upper"] - on["pred_lower"]))
            widths_off.append(np.median(off["pred_upper"] - off["pred_lower"]))
    coverage = float(np.mean(covered))
    widening = float(np.median(np.asarray(widths_on) / np.asarray(widths_off)))
    print(f"misspecified: 90% coverage {coverage:.3f}; well specified: 90% coverage {np.mean(covered_plain):.3f}, "
          f"median width ratio {widening:.3f}")
    assert coverage >= 0.8
    assert np.mean(covered_plain) >= 0.8
    assert widening <= 1.3


def test_fits_without_the_term_say_so_beyond_the_sweep(bent_fit):
    old = bs.Fit(law=bent_fit.law, sweep=bent_fit.sweep, priors=bent_fit.priors, likelihood=bent_fit.likelihood,
                 reference=bent_fit.reference, idata=bent_fit.idata, info={})
    with pytest.warns(UserWarning, match="carries no extrapolation term"):
        old.forecast(N=1e11, D=2e12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old.forecast(N=1e8, D=2e9)  # inside the sweep: nothing to say


def test_the_drift_likelihood_is_the_student_t_density_at_every_drift_and_directions_sum_to_the_whole():
    """The drift design's fold likelihood (its normalising terms computed once) equals the Student-t density
    summed at each drift, Normal residuals mixed in; a term learned from each direction's part gives the whole's
    posterior and each direction's median as learning that direction alone."""
    from bayes_scaling import extrapolation as ex
    from bayes_scaling.likelihoods import student_t_logpdf

    frame = synthetic_residuals(0.02, 300, seed=4).assign(
        residual=lambda f: f["residual"] - 0.01 * f["distance"],
        nu=np.where(np.arange(300) % 3 == 0, np.inf, 4.0))
    grid, drifts = ex.kappa_grid(), ex.drift_grid()
    keys = frame["fold"].astype(str) + "/" + frame["size"].astype(str)
    weight = 1.0 / keys.map(keys.value_counts()).to_numpy()
    r, d, nu = (frame[c].to_numpy() for c in ("residual", "distance", "nu"))
    scale = np.sqrt(frame["sigma"].to_numpy()[None, :] ** 2 + (grid[:, None] * d[None, :]) ** 2)
    expected = np.array([(student_t_logpdf((r - b * d)[None, :], scale, nu[None, :]) * weight).sum(axis=1)
                         for b in drifts])
    got = ex.fold_log_likelihood(frame, grid, design="drift", drift=drifts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # three directions, folds numbered apart: the parts' sum is the whole
    split = frame.assign(direction=np.array(["size", "compute", "tokens_per_param"])[frame["fold"] % 3])
    whole = learn(split, design="drift", prior="halfnormal")
    assert whole.to_dict()["drift_mean"] < 0  # the residuals drift down with distance
    parts = {name: learn(part.drop(columns="direction"), design="drift", prior="halfnormal")
             for name, part in split.groupby("direction")}
    for name, alone in parts.items():
        assert whole.directions[name]["median"] == pytest.approx(alone.quantiles([0.5])[0], abs=1e-12)
        assert whole.directions[name]["folds"] == alone.folds
    plain = learn(split.drop(columns="direction"), design="drift", prior="halfnormal")
    np.testing.assert_allclose(whole.joint, plain.joint, rtol=1e-9, atol=1e-15)


def test_the_directional_design_learns_each_directions_term_and_round_trips():
    """``"directional"``: the drift term over all folds, and each direction's own drift term (as learning that
    direction alone) with the probability that it errs at its own rate (0 where its term is not the wider), saved
    and loaded with the fit's info."""
    frame = synthetic_residuals(0.004, 300, seed=5)
    folds = frame["fold"] % 3
    frame = frame.assign(direction=np.array(["size", "compute", "tokens_per_param"])[folds])
    alike = learn(frame, design="directional", prior="halfnormal")
    assert max(t.weight for t in alike.by_direction.values()) < 0.2  # one rate for all: the shared term
    frame.loc[folds == 2, "residual"] = np.random.default_rng(2).normal(0, np.sqrt(0.003**2 + (0.03 * frame.loc[
        folds == 2, "distance"]) ** 2))  # the over-training folds err ten times as fast
    term = learn(frame, design="directional", prior="halfnormal")
    assert term.by_direction["tokens_per_param"].weight > 0.9
    # the other folds err more slowly than all together, but a direction's term only widens: they keep the shared
    for name in ("size", "compute"):
        own, shared, fast = (t.quantiles([0.5])[0] for t in (term.by_direction[name], term,
                                                              term.by_direction["tokens_per_param"]))
        assert own < shared < fast
        assert term.by_direction[name].weight == 0.0
    drift = learn(frame, design="drift", prior="halfnormal")
    assert term.design == "directional" and set(term.by_direction) == set(DIRECTIONS)
    np.testing.assert_allclose(term.joint, drift.joint, rtol=1e-12, atol=1e-15)
    for name, part in frame.groupby("direction"):
        alone = learn(part.drop(columns="direction"), design="drift", prior="halfnormal")
        np.testing.assert_allclose(term.by_direction[name].joint, alone.joint, rtol=1e-9, atol=1e-15)
    size, over = (term.by_direction[k].quantiles([0.5])[0] for k in ("size", "tokens_per_param"))
    assert over > 3 * size
    back = Extrapolation.from_dict(term.to_dict())
    assert back.design == "directional"
    for name, own in term.by_direction.items():
        np.testing.assert_allclose(back.by_direction[name].joint, own.joint)
        assert back.by_direction[name].weight == own.weight
    # without directions it is the drift design
    plain = learn(frame.drop(columns="direction"), design="directional", prior="halfnormal")
    assert plain.by_direction is None


def test_a_forecast_takes_the_term_of_the_direction_it_goes_beyond_the_sweep_in(demo_fit, capsys):
    """A point beyond the sweep's tokens per parameter gets the over-training term, one beyond its sizes the size
    term, one inside neither; :func:`question_directions` says which. A direction's term is used in a share
    ``weight`` of the draws."""
    from bayes_scaling.extrapolation import distance_columns, question_directions, sweep_ranges
    from bayes_scaling.predictive import predict

    ranges = sweep_ranges(demo_fit.sweep, distance_columns(demo_fit.law))
    n_max, tpp_max = ranges["N"][1], ranges["tokens_per_param"][1]
    n_mid = np.sqrt(ranges["N"][0] * n_max)
    points = pd.DataFrame({"N": [n_max * 10, n_mid, n_mid], "D": [n_max * 10 * 20, n_mid * tpp_max * 30,
                                                                   n_mid * 20]})
    which = question_directions(points, ranges)
    assert which[0] in ("size", "compute") and which[1] == "tokens_per_param" and which[2] == ""

    def narrow(kappa: float) -> Extrapolation:
        grid = np.linspace(0.0, 0.15, 301)
        weights = np.zeros_like(grid)
        weights[round(kappa / 0.0005)] = 1.0
        joint = np.zeros((3, grid.size))
        joint[1] = weights
        return Extrapolation("drift", grid, weights, 3, 30, drift_grid=np.array([-0.0025, 0.0, 0.0025]),
                             joint=joint)

    slow, fast = narrow(0.0), narrow(0.1)
    term = Extrapolation("directional", slow.grid, slow.weights, 9, 90, drift_grid=slow.drift_grid, joint=slow.joint,
                         by_direction={"size": slow, "compute": slow, "tokens_per_param": fast})
    fit = demo_fit.__class__(law=demo_fit.law, sweep=demo_fit.sweep, priors=demo_fit.priors,
                             likelihood=demo_fit.likelihood, reference=demo_fit.reference, idata=demo_fit.idata,
                             info={**demo_fit.info, "extrapolation": term.to_dict()})
    draws = predict(fit, points, seed=1)
    assert draws.distance[1] > 0 and draws.distance[2] == 0
    assert draws.sd_extrapolation[1] == pytest.approx(0.1 * draws.distance[1], rel=0.05)
    assert draws.sd_extrapolation[0] < 0.01 * draws.distance[0] + 1e-9
    assert draws.sd_extrapolation[2] == 0
    # weight 0.5: about half the draws take the over-training term (rms 0.1 / sqrt(2) per unit of distance)
    half = Extrapolation("drift", fast.grid, fast.weights, 3, 30, drift_grid=fast.drift_grid, joint=fast.joint,
                         weight=0.5)
    mixed = Extrapolation("directional", slow.grid, slow.weights, 9, 90, drift_grid=slow.drift_grid,
                          joint=slow.joint, by_direction={"size": slow, "compute": slow, "tokens_per_param": half})
    fit.info["extrapolation"] = mixed.to_dict()
    sd = predict(fit, points, seed=1).sd_extrapolation[1] / draws.distance[1]
    assert sd == pytest.approx(0.1 / np.sqrt(2), rel=0.1)
    # the command line names the directions that take their own term, with their share of draws
    from bayes_scaling.cli.common import print_fit

    print_fit(fit, False)
    text = capsys.readouterr().out
    assert "extrapolation term (directional)" in text
    assert ("beyond the sweep's tokens per param: that direction's own term 0.1000 (drift +0.0000) in 50% of draws"
            in text)
    assert "beyond the sweep's size: that direction's own term 0.0000 (drift +0.0000) in 100% of draws" in text

