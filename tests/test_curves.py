"""Bayesian curve fits (experimental): input checks, and recovery on simulated curves (slow)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.curve_laws import curve_inputs, get_curve_law
from bayes_scaling.curves import fit_curves
from bayes_scaling.schedules import Schedule

TRUE = {"L0": 3.0, "A": 0.8, "alpha": 0.5, "B": 0.3, "C": 5.0, "beta": 0.5, "gamma": 0.5}
SCHEDULES = {"cosine": Schedule.cosine(1e-3, 6000, final=1e-4, warmup=300),
             "wsd": Schedule.wsd(1e-3, 6000, decay_start=4500, final=1e-4, warmup=300)}


def simulated(seed: int = 0, sigma: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for name, schedule in SCHEDULES.items():
        steps = np.arange(400, 6001, 100)
        loss = get_curve_law("multipower").loss(np, TRUE, curve_inputs(schedule, steps, peak=1e-3))
        rows.append(pd.DataFrame({"run": name, "step": steps, "loss": loss * np.exp(rng.normal(0, sigma, steps.size))}))
    return pd.concat(rows, ignore_index=True)


def test_curve_data_is_checked_before_fitting():
    data = simulated()
    with pytest.raises(ValueError, match="no schedule for run\\(s\\) 'wsd'"):
        fit_curves(data, {"cosine": SCHEDULES["cosine"]})
    with pytest.raises(ValueError, match="covers steps 1-6,000; asked about step 7,000"):
        fit_curves(pd.concat([data, pd.DataFrame({"run": ["wsd"], "step": [7000], "loss": [3.0]})]), SCHEDULES)
    with pytest.raises(ValueError, match="column\\(s\\) 'loss' not in the curve data"):
        fit_curves(data.drop(columns="loss"), SCHEDULES)
    with pytest.raises(ValueError, match="loss must be a positive number"):
        fit_curves(data.assign(loss=data["loss"].where(data.index != 3, -1.0)), SCHEDULES)
    with pytest.raises(ValueError, match="unknown noise 'pink'"):
        fit_curves(data, SCHEDULES, noise="pink")


@pytest.mark.slow
def test_a_simulated_curve_pair_is_recovered_and_forecast():
    data = simulated()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_curves(data[data["step"] <= 5000], SCHEDULES, noise="white", draws=300, tune=500, chains=2,
                            seed=1)
    table = result.summary()
    assert table.loc["L0", "lower"] < TRUE["L0"] < table.loc["L0", "upper"]
    # the rest of the wsd run, through its decay: inside the predictive interval
    rest = data[(data["run"] == "wsd") & (data["step"] > 5000)]
    forecast = result.forecast("wsd", rest["step"].to_numpy(), run="wsd")
    inside = (rest["loss"].to_numpy() >= forecast["pred_lower"]) & (rest["loss"].to_numpy() <= forecast["pred_upper"])
    assert inside.mean() >= 0.8
    assert (forecast["lower"] <= forecast["median"]).all() and (forecast["median"] <= forecast["upper"]).all()


def _fixed_fit(b: np.ndarray):
    """A CurveFit whose posterior is the simulated truth, except ``B`` per draw (no sampling)."""
    import xarray as xr

    from bayes_scaling.curves import NOISE_PRIORS, CurveFit

    law = get_curve_law("multipower")
    values = {k: np.full((1, b.size), v) for k, v in TRUE.items()}
    values["B"] = b[None, :]
    values["sigma"] = np.full((1, b.size), 0.002)
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({k: (("chain", "draw"), v) for k, v in values.items()})})
    return CurveFit(law=law, noise="white", data=simulated(), schedules=dict(SCHEDULES), peak=1e-3, idata=tree,
                    priors={**law.default_priors, "sigma": NOISE_PRIORS["sigma"]})


def test_draws_with_an_impossible_loss_are_left_out_with_a_warning():
    """A law barely constrained by the data (a decay never seen) can give draws below zero loss: said, not NaN."""
    b = np.full(50, TRUE["B"])
    b[:5] = 50.0  # five draws whose decay would take the loss below zero
    with pytest.warns(UserWarning, match="5 of 50 posterior draws give a non-positive loss"):
        table = _fixed_fit(b).forecast("wsd", [6000])
    assert np.isfinite(table[["median", "lower", "upper", "pred_lower", "pred_upper"]].to_numpy()).all()
    assert table["median"].iloc[0] == pytest.approx(
        get_curve_law("multipower").loss(np, TRUE, curve_inputs(SCHEDULES["wsd"], [6000], peak=1e-3))[0], rel=0.01)
    with pytest.raises(ValueError, match="every posterior draw gives a non-positive loss"):
        _fixed_fit(np.full(50, 50.0)).forecast("wsd", [6000])
    # a comparison leaves out the same draws (of either schedule), and says so
    with pytest.warns(UserWarning, match="posterior draws give a non-positive loss"):
        compared = _fixed_fit(b).compare("wsd", "cosine", [6000])
    assert np.isfinite(compared[["median", "lower", "upper", "pred_lower", "pred_upper"]].to_numpy()).all()


def test_a_curve_fit_round_trips_through_its_file(tmp_path):
    import bayes_scaling as bs
    from bayes_scaling.curves import load_curves

    fit = _fixed_fit(TRUE["B"] * np.linspace(0.9, 1.1, 40))
    path = fit.save(tmp_path / "curves.nc")
    with pytest.raises(FileExistsError):
        fit.save(path)
    back = bs.load(path)  # the one loader knows curve fits
    assert isinstance(back, type(fit)) and list(back.schedules) == list(fit.schedules)
    for name in fit.schedules:
        assert np.array_equal(back.schedules[name].lr, fit.schedules[name].lr)
    pd.testing.assert_frame_equal(back.data, fit.data)
    pd.testing.assert_frame_equal(back.forecast("wsd", [5000, 6000]), fit.forecast("wsd", [5000, 6000]))
    with pytest.raises(bs.FitFileError, match="not a bayes_scaling curve fit"):
        load_curves(_saved_loss_fit(tmp_path))


def _saved_loss_fit(tmp_path):
    """A netCDF file that is not a curve fit (a link fit's metadata key is absent too)."""
    import xarray as xr

    path = tmp_path / "other.nc"
    xr.DataTree.from_dict({"posterior": xr.Dataset({"x": (("chain", "draw"), np.zeros((1, 3)))})}).to_netcdf(
        path, engine="h5netcdf")
    return path


def test_step_distance_is_zero_within_the_logged_steps_and_in_widths_beyond():
    from bayes_scaling.curves import step_distance

    d = step_distance([500, 4000, 8000, 40000], 400, 4000)  # logged 400-4,000: one decade wide
    np.testing.assert_allclose(d, [0.0, 0.0, np.log10(2), 1.0])
    # a narrow logged range counts at least half a decade (as a sweep's), so a short reach is not inflated
    np.testing.assert_allclose(step_distance([2000], 900, 1000), [np.log10(2) / 0.5])


def _in_flight(bend: float):
    """The truth's posterior, with only the first 3,000 of 6,000 steps logged; ``bend`` adds an error the law
    cannot follow (growing with log-steps) to the logged points."""
    fit = _fixed_fit(TRUE["B"] * np.linspace(0.95, 1.05, 40))
    data = simulated()
    data["loss"] *= np.exp(bend * np.log(data["step"] / 400.0) ** 2)
    fit.data = data[data["step"] <= 3000].reset_index(drop=True)
    return fit


def test_the_step_term_is_learned_by_forward_chaining_and_widens_only_beyond_the_logged_steps():
    from bayes_scaling.curves import curve_fold_residuals, learn_curve_term

    kappas = {}
    for bend in (0.0, 0.03):
        fit = _in_flight(bend)
        residuals = curve_fold_residuals(fit)
        assert set(residuals["run"]) == {"cosine", "wsd"} and residuals["fold"].nunique() == 8
        assert (residuals["step"] > 1500).all() and (residuals["var_param"] > 0).all()
        term = learn_curve_term(residuals)
        kappas[bend] = term.quantiles()[1]
        fit.info["extrapolation"] = term.to_dict()
        steps = [2000, 3000, 6000]
        with_term = fit.forecast("wsd", steps, run="wsd")
        fit.info.pop("extrapolation")
        without = fit.forecast("wsd", steps, run="wsd")
        # within the logged steps nothing changes, draw for draw; beyond them the interval widens
        pd.testing.assert_frame_equal(with_term.iloc[:2], without.iloc[:2])
        assert with_term["pred_upper"].iloc[2] - with_term["pred_lower"].iloc[2] > \
            without["pred_upper"].iloc[2] - without["pred_lower"].iloc[2]
    # folds that see the law fail learn a larger term: well specified, about its prior; bent, several times it
    assert kappas[0.0] < 0.015 and kappas[0.03] > 3 * kappas[0.0]


def test_schedule_distance_is_zero_for_what_was_fitted_and_the_decay_beyond_it():
    from bayes_scaling.curves import schedule_distance

    law = get_curve_law("multipower")
    steps = np.arange(1000, 6001, 500)

    def distance(schedule, references):
        return schedule_distance(law, TRUE, curve_inputs(schedule, steps, peak=1e-3, max_terms=400), references,
                                 max_terms=400)

    fitted = list(SCHEDULES.values())
    np.testing.assert_array_equal(distance(SCHEDULES["cosine"], fitted), 0.0)  # a fitted schedule
    late = Schedule.wsd(1e-3, 6000, decay_start=5000, final=1e-4, warmup=300)
    d = distance(late, fitted)
    np.testing.assert_array_equal(d[steps <= 4500], 0.0)  # runs as the fitted wsd (and, before it, as no decay)
    assert (d[steps > 5000] > 0).all()
    # with no fitted schedule to compare with: what the schedule's own decays take off its loss
    x = curve_inputs(late, steps, peak=1e-3, max_terms=400)
    plain = law.loss(np, {**TRUE, "B": 0.0}, x)
    np.testing.assert_allclose(distance(late, []), (plain - law.loss(np, TRUE, x)) / law.loss(np, TRUE, x))
    # a fitted schedule vouches only for the steps its run logged: the cosine logged to step 3000, asked about its
    # own later steps, is as far as its decays take it (nothing logged showed them)
    cosine = curve_inputs(SCHEDULES["cosine"], steps, peak=1e-3, max_terms=400)
    logged = schedule_distance(law, TRUE, cosine, [SCHEDULES["cosine"]], max_terms=400, logged=[3000])
    np.testing.assert_array_equal(logged[steps <= 3000], 0.0)
    np.testing.assert_allclose(logged[steps > 3000], distance(SCHEDULES["cosine"], [])[steps > 3000])
    assert (logged[steps > 3000] > 0.01).all()


def test_a_run_in_flight_continued_under_its_own_schedule_is_a_new_schedule_beyond_its_logged_steps():
    """A cosine logged to half its steps: its later half is a decay no logged point showed, so the term across
    schedules widens its continuation there, and leaves it alone, draw for draw, within the logged steps."""
    from bayes_scaling.curves import learn_schedule_term

    fit = _in_flight(0.0)
    steps = [2000, 3000, 6000]
    table = fit.forecast("cosine", steps, run="cosine")
    assert (table["schedule_distance"].iloc[:2] == 0).all() and table["schedule_distance"].iloc[2] > 0.01
    fit.info["schedule_term"] = learn_schedule_term(pd.DataFrame()).to_dict()  # no run to leave out: its prior
    widened = fit.forecast("cosine", steps, run="cosine")
    pd.testing.assert_frame_equal(widened.iloc[:2], table.iloc[:2])
    assert widened["pred_upper"].iloc[2] - widened["pred_lower"].iloc[2] > \
        1.2 * (table["pred_upper"].iloc[2] - table["pred_lower"].iloc[2])


def _mismatched(factor: float):
    """The truth's posterior fitted to runs whose wsd decay falls ``factor`` times as far as the law says."""
    fit = _fixed_fit(TRUE["B"] * np.linspace(0.95, 1.05, 40))
    data = simulated()
    wsd = data["run"] == "wsd"
    x = curve_inputs(SCHEDULES["wsd"], data.loc[wsd, "step"].to_numpy(), peak=1e-3)
    law = get_curve_law("multipower")
    data.loc[wsd, "loss"] *= law.loss(np, {**TRUE, "B": TRUE["B"] * factor}, x) / law.loss(np, TRUE, x)
    fit.data = data
    return fit


def test_the_schedule_term_is_learned_from_runs_left_out_and_widens_only_new_schedules():
    from bayes_scaling.curves import learn_schedule_term, schedule_fold_residuals

    kappas = {}
    for factor in (1.0, 2.0):
        fit = _mismatched(factor)
        residuals = schedule_fold_residuals(fit)
        # each run left out in turn, scored within the other's steps: where its schedule differs (distance > 0)
        # and where it runs as no decay (the wsd run before its decay: distance 0, a new run's offset alone)
        assert set(residuals["fold"]) == {"cosine left out", "wsd left out"}
        assert (residuals["distance"] >= 0).all() and (residuals["var_param"] > 0).all()
        wsd = residuals[residuals["fold"] == "wsd left out"]
        assert (wsd.loc[wsd["step"] <= 4500, "distance"] == 0).all() and (wsd["distance"] > 0).any()
        term = learn_schedule_term(residuals)
        kappas[factor] = term.quantiles()[1]
        fit.info["schedule_term"] = term.to_dict()
        assert "across schedules: kappa" in fit.term_line()
    # runs whose decays the law cannot share learn a larger term
    assert kappas[2.0] > 1.5 * kappas[1.0]
    new = Schedule.wsd(1e-3, 6000, decay_start=3000, final=1e-4, warmup=300)
    steps = [2000, 6000]
    with_term = fit.forecast(new, steps)
    assert with_term["schedule_distance"].iloc[0] == 0.0 < with_term["schedule_distance"].iloc[1]
    fitted_with = fit.forecast("wsd", steps)
    fit.info.pop("schedule_term")
    without = fit.forecast(new, steps)
    # a fitted schedule, and a new one where it runs as a fitted one: draw for draw the same; its decay: wider
    pd.testing.assert_frame_equal(fitted_with, fit.forecast("wsd", steps))
    pd.testing.assert_frame_equal(with_term.iloc[:1], without.iloc[:1])
    assert with_term["pred_upper"].iloc[1] - with_term["pred_lower"].iloc[1] > \
        without["pred_upper"].iloc[1] - without["pred_lower"].iloc[1]
    # without a run to leave out: the prior
    alone = dataclasses.replace(fit, schedules={"wsd": SCHEDULES["wsd"]}, data=simulated().query("run == 'wsd'"))
    one = learn_schedule_term(schedule_fold_residuals(alone))
    assert one.folds == 0 and one.prior == "halfnormal(0.2)"


def _fresh_runs(shift: float, branched: bool = False) -> tuple[dict, pd.DataFrame]:
    """Three runs of the true law, each started afresh (its own noise), the constant one ``shift`` (log) off it;
    ``branched``: the wsd run continues the constant run's checkpoint, sharing its logged points up to its decay."""
    schedules = {**SCHEDULES, "constant": Schedule.constant(1e-3, 6000, warmup=300)}
    law, steps = get_curve_law("multipower"), np.arange(400, 6001, 100)
    rng = np.random.default_rng(3)
    curves = {}
    for name, schedule in schedules.items():
        loss = law.loss(np, TRUE, curve_inputs(schedule, steps, peak=1e-3, max_terms=400))
        curves[name] = loss * np.exp(rng.normal(0, 0.002, steps.size) + (shift if name == "constant" else 0.0))
    if branched:
        before = steps <= 4500
        curves["wsd"][before] = curves["constant"][before]
    data = pd.concat([pd.DataFrame({"run": n, "step": steps, "loss": v}) for n, v in curves.items()],
                     ignore_index=True)
    return schedules, data


def test_a_new_run_has_its_own_offset_learned_from_runs_left_out():
    from bayes_scaling.curves import learn_schedule_terms, schedule_fold_residuals

    taus = {}
    for shift in (0.0, 0.01):
        fit = _fixed_fit(TRUE["B"] * np.linspace(0.95, 1.05, 40))
        fit.schedules, fit.data = _fresh_runs(shift)
        kappa, tau = learn_schedule_terms(schedule_fold_residuals(fit))
        assert kappa.folds == tau.folds == 3 and tau.prior == "halfnormal(0.005)"
        taus[shift] = tau.quantiles()[1]
    # a run that lies 1% off the others all along: the left-out runs say a new run may too
    assert taus[0.01] > 2 * taus[0.0] and taus[0.01] > 0.004
    # a run branched from another's checkpoint shares its logged points up to the branch: those are not scored
    fit.schedules, fit.data = _fresh_runs(0.01, branched=True)
    residuals = schedule_fold_residuals(fit)
    for held in ("wsd", "constant"):  # either way round: each is scored only after the branch, and is scored
        scored = residuals.loc[residuals["fold"] == f"{held} left out", "step"]
        assert scored.min() > 4500 and scored.max() == 6000
    assert residuals.loc[residuals["fold"] == "cosine left out", "step"].min() == 400
    # a new run's logged loss gets the offset (its predictive interval); the law's curve and a run continued
    # from its logged points do not, draw for draw
    fit.info["run_term"] = tau.to_dict()
    assert "a new run's own offset: tau" in fit.term_line()
    steps = [3000, 6000]
    new, continued = fit.forecast("wsd", steps), fit.forecast("wsd", steps, run="wsd")
    fit.info.pop("run_term")
    plain, plain_continued = fit.forecast("wsd", steps), fit.forecast("wsd", steps, run="wsd")
    pd.testing.assert_frame_equal(continued, plain_continued)
    pd.testing.assert_frame_equal(new[["median", "lower", "upper"]], plain[["median", "lower", "upper"]])
    assert ((new["pred_upper"] - new["pred_lower"]) > 1.5 * (plain["pred_upper"] - plain["pred_lower"])).all()


def test_two_schedules_compared_with_paired_draws():
    """Every draw gives both curves: the difference's interval holds the schedules' effect only."""
    fit = _fixed_fit(TRUE["B"] * np.linspace(0.8, 1.2, 60))
    table = fit.compare("wsd", "cosine", [4000, 6000])
    law = get_curve_law("multipower")

    def truth(name, step):
        return law.loss(np, TRUE, curve_inputs(SCHEDULES[name], [step], peak=1e-3))[0]

    # before the WSD decay the cosine has decayed further (lower loss); at the end WSD's decay has caught up
    for i, step in enumerate((4000, 6000)):
        expected = truth("wsd", step) - truth("cosine", step)
        assert table["lower"].iloc[i] <= expected <= table["upper"].iloc[i]
        assert table["p_a_lower"].iloc[i] == (1.0 if expected < 0 else 0.0)
        # a run's logged losses add noise on both sides: wider than the law's difference
        assert table["pred_lower"].iloc[i] < table["lower"].iloc[i] and table["pred_upper"].iloc[i] > \
            table["upper"].iloc[i]
    same = fit.compare("wsd", "wsd", [6000])
    assert same["median"].iloc[0] == 0.0 and same["upper"].iloc[0] == 0.0  # paired: nothing but the schedule


def test_cli_curve_fit_forecast_compare(tmp_path, capsys):
    """The command line end to end on a simulated pair of runs (small draws), and its input errors."""
    import json

    from bayes_scaling.cli import main

    data = simulated().merge(pd.DataFrame({"run": ["cosine", "wsd"], "model": ["m", "m"]}))
    data = pd.concat([data, data.assign(model="other")])
    csv = tmp_path / "curves.csv"
    data.to_csv(csv, index=False)
    specs = ["--schedule", "cosine=cosine:peak=1e-3,steps=6000,final=1e-4,warmup=300",
             "--schedule", "wsd=wsd:peak=1e-3,steps=6000,decay_start=4500,final=1e-4,warmup=300"]
    out = tmp_path / "fit.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["curve", "fit", str(csv), "--where", "model=m", "--until", "5000", *specs, "--noise", "white",
                     "--draws", "200", "--tune", "300", "--chains", "2", "--seed", "1", "--out", str(out), "--json"])
    assert code == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["runs"] == {"cosine": 47, "wsd": 47}  # model=m only, steps <= 5000
    assert fitted["params"]["L0"]["lower"] < TRUE["L0"] < fitted["params"]["L0"]["upper"]
    assert fitted["info"]["extrapolation"]["folds"] == 8  # 2 runs x 4 cuts, saved with the fit
    # the compiled model outlives the fit: the same structure again reuses it, with the new data's answer
    from bayes_scaling.compiled import _CACHE
    from bayes_scaling.curves import load_curves

    assert any(key[1][0] == "curves" for key in _CACHE)
    frame = data[(data["model"] == "m") & (data["step"] <= 5000)]
    settings = {"noise": "white", "draws": 200, "tune": 300, "chains": 2, "seed": 1, "extrapolation": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fit_curves(frame, SCHEDULES, **settings)
        shifted = fit_curves(frame.assign(loss=frame["loss"] + 0.2), SCHEDULES, **settings)
    for name, values in load_curves(out).draws(["L0", "B", "sigma"]).items():
        np.testing.assert_array_equal(again.draws([name])[name], values)  # cached = fresh compile, draw for draw
    # the law's level takes the shift: the cached model reads the new data
    assert np.median(shifted.draws(["L0"])["L0"]) - np.median(again.draws(["L0"])["L0"]) == pytest.approx(0.2, abs=0.08)
    plot = tmp_path / "curve.png"
    assert main(["curve", "forecast", str(out), "--run", "wsd", "--steps", "5500,6000", "--json",
                 "--plot", str(plot)]) == 0
    forecast = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in forecast["rows"]] == [5500, 6000] and plot.stat().st_size > 0
    assert 0 < forecast["rows"][0]["distance"] < forecast["rows"][1]["distance"]  # beyond the logged 5,000 steps
    rest = data[(data["model"] == "m") & (data["run"] == "wsd") & (data["step"] == 6000)]["loss"].iloc[0]
    assert forecast["rows"][1]["pred_lower"] <= rest <= forecast["rows"][1]["pred_upper"]
    assert main(["curve", "compare", str(out), "--a", "wsd", "--b",
                 "constant:peak=1e-3,steps=6000,warmup=300", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["rows"][0]["p_a_lower"] > 0.95  # a decay ends below a constant rate
    assert main(["curve", "forecast", str(out), "--schedule", "cosine", "--anneal", "3000,1000,1e-4"]) == 0
    printed = capsys.readouterr().out
    assert "annealed at 3000" in printed and "extrapolation beyond the logged steps: kappa" in printed
    # errors: one line each, exit 2
    for argv, message in (
        (["curve", "forecast", str(out), "--schedule", "nope"], "neither a fitted run"),
        (["curve", "forecast", str(out), "--schedule", "cosine", "--steps", "7000"], "covers steps 1-6,000"),
        (["curve", "forecast", str(out), "--run", "x"], "no fitted run 'x'"),
        (["curve", "forecast", str(out), "--schedule", "cosine", "--anneal", "3000,1000"], "AT,OVER,FINAL"),
        (["curve", "fit", str(csv), "--where", "size=1"], "column 'size' is not in"),
        (["curve", "fit", str(csv), "--schedule", "cosine=cosine:peak=1e-3,steps=6000"], "no schedule for run"),
        (["curve", "fit", str(csv), "--schedule", "cosine=cos:peak=1"], "unknown schedule kind 'cos'"),
        (["curve", "fit", str(csv), *specs, "--out", str(out)], "exists"),
        (["curve", "fit", "dataset:chinchilla_epoch", *specs], "a sweep of final losses, not loss curves"),
    ):
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


# ------------------------------------------------------------------------------------------ across model sizes
def _level(N: float) -> float:
    """The simulated ladder's level: L0(N) = 1.8 + 2.0 (N / 1e8)^-0.3."""
    return 1.8 + 2.0 * (N / 1e8) ** -0.3


def _ladder(sizes=(2.5e7, 1e8, 4e8), seed: int = 0) -> pd.DataFrame:
    """Both schedules' curves for each size (runs named 'N/schedule'), the shape the same at every size."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for name, schedule in SCHEDULES.items():
            steps = np.arange(400, 6001, 100)
            loss = get_curve_law("multipower").loss(np, {**TRUE, "L0": _level(N)},
                                                    curve_inputs(schedule, steps, peak=1e-3))
            rows.append(pd.DataFrame({"run": f"{N:.0e}/{name}", "schedule": name, "N": N, "step": steps,
                                      "loss": loss * np.exp(rng.normal(0, 0.002, steps.size))}))
    return pd.concat(rows, ignore_index=True)


def _ladder_schedules(data: pd.DataFrame) -> dict:
    return {run: SCHEDULES[name] for run, name in zip(data["run"], data["schedule"], strict=True)}


def test_sizes_of_a_fit_across_sizes_are_checked_before_fitting():
    data = _ladder(sizes=(2.5e7, 1e8))
    schedules = _ladder_schedules(data)
    with pytest.raises(ValueError, match="sizes='params' is not a column"):
        fit_curves(data, schedules, sizes="params")
    with pytest.raises(ValueError, match="one size per run; run '1e\\+08/cosine' has several"):
        fit_curves(data.assign(N=np.where(data.index == 130, 2e8, data["N"])), schedules, sizes="N")
    with pytest.raises(ValueError, match="at least two model sizes"):
        fit_curves(data.assign(N=1e8), schedules, sizes="N")
    with pytest.raises(ValueError, match="no parameter count for run\\(s\\) '1e\\+08/wsd'"):
        fit_curves(data, schedules, sizes={"2e+07/cosine": 2.5e7, "2e+07/wsd": 2.5e7, "1e+08/cosine": 1e8})
    with pytest.raises(ValueError, match=r"only the positive shape parameters .* can drift with size"):
        fit_curves(data, schedules, sizes="N", drift=["L0"])
    with pytest.raises(ValueError, match="drift= is for fits across sizes"):
        fit_curves(data, schedules, drift=["alpha"])
    with pytest.raises(ValueError, match="size of run '2e\\+07/cosine' must be a positive parameter count"):
        fit_curves(data.assign(N=np.where(data["run"] == "2e+07/cosine", -1.0, data["N"])), schedules, sizes="N")


def _fixed_ladder_fit():
    """A fit across sizes whose posterior is the simulated ladder's truth, fitted on 25M and 100M (no sampling)."""
    import xarray as xr

    from bayes_scaling.curves import NOISE_PRIORS, SIZE_LEVEL_PRIORS, SIZE_SLOPE_PRIOR, CurveFit

    law = get_curve_law("multipower")
    reference = 5e7  # geometric mean of 2.5e7 and 1e8
    truth = {"E": 1.8, "log_n_term": np.log(2.0) - 0.3 * np.log(reference / 1e8), "alpha_N": 0.3, **TRUE,
             **{f"slope_{n}": 0.0 for n in TRUE}, "sigma": 0.002}
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {k: (("chain", "draw"), np.full((1, 20), v)) for k, v in truth.items()})})
    data = _ladder(sizes=(2.5e7, 1e8))
    priors = {**SIZE_LEVEL_PRIORS, **{n: law.default_priors[n] for n in TRUE},
              **{f"slope_{n}": SIZE_SLOPE_PRIOR for n in TRUE}, "sigma": NOISE_PRIORS["sigma"]}
    sizes = dict(zip(data["run"], data["N"], strict=True))
    return CurveFit(law=law, noise="white", data=data[["run", "step", "loss"]], schedules=_ladder_schedules(data),
                    peak=1e-3, idata=tree, priors=priors,
                    info={"sizes": sizes, "size_reference": reference, "drift": list(TRUE)})


def test_a_fit_across_sizes_gives_the_law_at_any_size(tmp_path):
    """The level follows its law in N, a fitted run keeps its own size, a new run needs N=, the file keeps sizes."""
    import bayes_scaling as bs

    fit = _fixed_ladder_fit()
    for N in (2.5e7, 1e8, 4e8):
        params = fit.law_params(N)
        assert params["L0"][0, 0] == pytest.approx(_level(N), rel=1e-12)
        assert params["alpha"][0, 0] == pytest.approx(TRUE["alpha"], rel=1e-12)
    from bayes_scaling.curves import FORECAST_TERMS

    truth = get_curve_law("multipower").loss(np, {**TRUE, "L0": _level(4e8)}, curve_inputs(
        SCHEDULES["wsd"], [3000, 6000], peak=1e-3, max_terms=FORECAST_TERMS))
    table = fit.forecast(SCHEDULES["wsd"], [3000, 6000], N=4e8)
    assert table["median"].to_numpy() == pytest.approx(truth, rel=1e-9)
    assert fit.forecast("1e+08/wsd", [6000])["median"].iloc[0] == pytest.approx(
        fit.forecast(SCHEDULES["wsd"], [6000], N=1e8)["median"].iloc[0], rel=1e-12)  # a fitted run's own size
    with pytest.raises(ValueError, match="needs the model size: N="):
        fit.forecast(SCHEDULES["wsd"], [6000])
    with pytest.raises(ValueError, match="has 1e\\+08 parameters; N=4e\\+08 cannot continue it"):
        fit.forecast("1e+08/wsd", [6000], run="1e+08/wsd", N=4e8)
    with pytest.raises(ValueError, match="one model size; N= is for fits across sizes"):
        _fixed_fit(np.full(10, TRUE["B"])).forecast("wsd", [6000], N=1e8)
    compared = fit.compare(SCHEDULES["wsd"], SCHEDULES["cosine"], [6000], N=4e8)
    assert compared["p_a_lower"].iloc[0] in (0.0, 1.0)  # one point posterior: certain either way
    back = bs.load(fit.save(tmp_path / "ladder.nc"))
    assert back.sizes == fit.sizes
    pd.testing.assert_frame_equal(back.forecast(SCHEDULES["wsd"], [6000], N=4e8),
                                  fit.forecast(SCHEDULES["wsd"], [6000], N=4e8))


@pytest.mark.slow
def test_a_ladder_of_two_sizes_forecasts_a_larger_model():
    """NUTS on two sizes' curves: the level's law is recovered and the 4x larger model's curve is covered."""
    data = _ladder()
    train = data[data["N"] < 3e8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_curves(train, _ladder_schedules(train), noise="white", sizes="N", draws=300, tune=500, chains=2,
                         seed=1, extrapolation=False)
    assert fit.sizes == {"2e+07/cosine": 2.5e7, "2e+07/wsd": 2.5e7, "1e+08/cosine": 1e8, "1e+08/wsd": 1e8}
    level = fit.law_params(1e8)["L0"][:, 0]
    assert np.quantile(level, 0.05) < _level(1e8) < np.quantile(level, 0.95)
    for name in SCHEDULES:
        held = data[data["run"] == f"4e+08/{name}"].iloc[::5]
        table = fit.forecast(SCHEDULES[name], held["step"].to_numpy(), N=4e8)
        y = held["loss"].to_numpy()
        assert ((y >= table["pred_lower"]) & (y <= table["pred_upper"])).mean() >= 0.9
        assert (table["pred_upper"] - table["pred_lower"]).median() / y.mean() > 0.005  # wider than the noise


def test_cli_curve_fit_across_sizes(tmp_path, capsys):
    """--size-column: one fit of two sizes' runs (a schedule name repeated per size), --N forecasts a larger model."""
    import json

    from bayes_scaling.cli import main
    from bayes_scaling.cli.curve import parse_count

    assert parse_count("25M") == 25e6 and parse_count("1.5b") == 1.5e9 and parse_count("4e8") == 4e8
    with pytest.raises(ValueError, match="'big' is not a parameter count"):
        parse_count("big")
    data = _ladder(sizes=(2.5e7, 1e8))
    data = data.assign(model=data["N"].map({2.5e7: "25M", 1e8: "100M"}), run=data["schedule"])
    csv = tmp_path / "ladder.csv"
    data[["model", "run", "step", "loss"]].to_csv(csv, index=False)
    specs = ["--schedule", "cosine=cosine:peak=1e-3,steps=6000,final=1e-4,warmup=300",
             "--schedule", "wsd=wsd:peak=1e-3,steps=6000,decay_start=4500,final=1e-4,warmup=300"]
    out = tmp_path / "ladder.nc"
    code = main(["curve", "fit", str(csv), "--size-column", "model", *specs, "--noise", "white", "--draws", "150",
                 "--tune", "250", "--chains", "2", "--seed", "1", "--no-extrapolation", "--out", str(out), "--json"])
    assert code == 0
    captured = capsys.readouterr()
    # 300 draws cannot reach the bulk ESS target (400): a fit that did not converge says so, never silently
    assert "warning: curve fit of 'multipower' may not have converged" in captured.err
    fitted = json.loads(captured.out)
    assert fitted["info"]["sizes"] == {"25M/cosine": 25e6, "25M/wsd": 25e6, "100M/cosine": 1e8, "100M/wsd": 1e8}
    assert {"E", "log_n_term", "alpha_N", "alpha"} <= set(fitted["params"]) and "L0" not in fitted["params"]
    assert main(["curve", "forecast", str(out), "--schedule", "100M/wsd", "--N", "400M", "--steps", "6000",
                 "--json"]) == 0
    bigger = json.loads(capsys.readouterr().out)
    assert bigger["N"] == 4e8
    assert main(["curve", "forecast", str(out), "--schedule", "100M/wsd", "--steps", "6000", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert bigger["rows"][0]["median"] < own["rows"][0]["median"]  # a larger model ends lower
    assert main(["curve", "forecast", str(out), "--schedule", "wsd:peak=1e-3,steps=6000,decay_start=4500",
                 "--steps", "6000"]) == 2
    assert "needs the model size: N=" in capsys.readouterr().err
    assert main(["curve", "fit", str(csv), "--size-column", "size", *specs, "--draws", "10"]) == 2
    assert "--size-column: column 'size' is not in" in capsys.readouterr().err


def test_where_each_run_ends_and_the_report_section(tmp_path):
    """CurveFit.ends continues every fitted run to its schedule's end; the report adds the curves' section."""
    import bayes_scaling as bs
    from bayes_scaling.report import write_report

    fit = _fixed_fit(np.full(40, TRUE["B"]))
    cut = fit.data[fit.data["step"] <= 5000].reset_index(drop=True)
    fit = type(fit)(**{**fit.__dict__, "data": cut})  # runs logged to step 5,000 of their 6,000
    ends = fit.ends(prob=0.9)
    assert list(ends["run"]) == ["cosine", "wsd"] and (ends["logged_to"] == 5000).all() and (ends["step"] == 6000).all()
    for name, row in ends.set_index("run").iterrows():
        truth = get_curve_law("multipower").loss(np, TRUE, curve_inputs(SCHEDULES[name], [6000], peak=1e-3))[0]
        assert row["pred_lower"] < truth < row["pred_upper"]
        assert row["median"] == pytest.approx(truth, rel=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep_fit = bs.fit(bs.load_demo(), method="laplace", seed=0)
    report = write_report({"chinchilla": sweep_fit}, tmp_path / "report", curves=fit, points=[(1e8, 2e9)])
    assert "curve.png" in report.figures
    text = report.markdown.read_text()
    assert "Loss curves: where each run ends (90% intervals" in text and "Loss curves: multipower law" in text
