"""Bayesian curve fits (experimental): input checks, and recovery on simulated curves (slow)."""

from __future__ import annotations

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


def test_a_curve_fit_that_did_not_converge_says_so():
    """Too few draws for any bulk ESS target: the fit warns and names the failed check (never a silent answer)."""
    from bayes_scaling.inference import ConvergenceWarning

    data = simulated()
    with pytest.warns(ConvergenceWarning, match="curve fit of 'multipower' may not have converged: .*bulk ESS"):
        result = fit_curves(data, SCHEDULES, noise="white", draws=10, tune=10, chains=2, seed=1,
                            extrapolation=False)
    assert not result.diagnostics().ok
