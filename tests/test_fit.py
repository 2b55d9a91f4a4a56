"""Fit, forecast, save/load on small seeded MCMC runs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.datasets import DEMO_TRUE_PARAMS
from bayes_scaling.likelihoods import NOISE_MODELS


def test_recovers_true_parameters_of_demo_sweep(demo_fit):
    table = demo_fit.summary(prob=0.9)
    assert list(table.columns) == ["mean", "sd", "lower", "upper", "r_hat", "ess_bulk"]
    assert list(table.index) == ["E", "A", "B", "alpha", "beta", "sigma", "nu"]
    for name, truth in DEMO_TRUE_PARAMS.items():
        low, high = table.loc[name, ["lower", "upper"]]
        assert low <= truth <= high, f"{name}={truth} outside 90% HDI [{low}, {high}]"
    # the generating noise was 1% on log-loss
    assert table.loc["sigma", "lower"] < 0.011 and table.loc["sigma", "upper"] > 0.007
    diag = demo_fit.diagnostics()
    assert diag.max_r_hat < 1.02 and diag.divergences == 0


def test_forecast_intervals_are_ordered_and_predictive_is_wider(demo_fit):
    table = demo_fit.forecast(N=[1e9, 1e11, 7e10], D=[2e10, 2e12, 1.4e12], prob=0.9)
    assert list(table.columns) == ["N", "D", "C", "mean", "median", "lower", "upper", "pred_lower", "pred_upper",
                                   "sd_params", "scatter_scale", "scatter_68", "sd_extrapolation",
                                   "decades_N", "decades_D", "decades_C", "decades_out", "direction"]
    # the direction each point goes beyond the sweep in (whose folds' term it may take): none inside
    assert list(table["direction"]) == ["", "size", "size"]
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    assert (table["pred_lower"] < table["lower"]).all() and (table["pred_upper"] > table["upper"]).all()
    # further extrapolation, wider credible interval (relative)
    width = (table["upper"] - table["lower"]) / table["median"]
    assert width[1] > width[0]
    # the truth at a point inside the sweep lies in the credible interval
    p = DEMO_TRUE_PARAMS
    truth = p["E"] + p["A"] / 1e9 ** p["alpha"] + p["B"] / 2e10 ** p["beta"]
    assert table.loc[0, "lower"] <= truth <= table.loc[0, "upper"]
    # higher probability, wider interval
    wide = demo_fit.forecast(N=1e11, D=2e12, prob=0.99)
    assert wide.loc[0, "upper"] - wide.loc[0, "lower"] > table.loc[1, "upper"] - table.loc[1, "lower"]


def test_forecast_input_errors(demo_fit):
    with pytest.raises(ValueError, match="N must be finite and > 0"):
        demo_fit.forecast(N=-1, D=1e10)
    with pytest.raises(ValueError, match="prob must be between 0 and 1"):
        demo_fit.forecast(N=1e9, D=1e10, prob=1.5)
    with pytest.raises(ValueError, match="law 'chinchilla' needs D"):
        demo_fit.forecast(N=1e9)
    with pytest.raises(ValueError, match="same length"):
        demo_fit.forecast(N=[1e9, 2e9], D=[1e10, 2e10, 3e10])


def test_save_load_round_trip(demo_fit, tmp_path):
    path = demo_fit.save(tmp_path / "fit.nc")
    again = bs.load(path)
    pd.testing.assert_frame_equal(again.summary(), demo_fit.summary())
    pd.testing.assert_frame_equal(again.forecast(N=1e11, D=2e12), demo_fit.forecast(N=1e11, D=2e12))
    pd.testing.assert_frame_equal(again.sweep.frame, demo_fit.sweep.frame)
    assert again.law is demo_fit.law and again.priors == demo_fit.priors
    assert again.info["seed"] == 11 and "pymc" in again.info["versions"]
    assert "log_likelihood" in again.idata.children
    import xarray as xr

    with xr.open_datatree(path, engine="h5netcdf") as saved:  # the sweep is an ArviZ group, not JSON text
        assert set(demo_fit.sweep.frame.columns) <= set(saved["constant_data"].to_dataset().data_vars)
        assert json.loads(saved.attrs["bayes_scaling"])["format_version"] == 2


def test_files_of_the_previous_format_still_load(demo_fit, tmp_path):
    from bayes_scaling.posterior import write_saved

    meta = {**demo_fit._metadata(), "format_version": 1,
            "sweep": json.loads(demo_fit.sweep.frame.to_json(orient="split", index=False, double_precision=15))}
    meta.pop("sweep_columns")
    path = write_saved(tmp_path / "old.nc", demo_fit.idata, "bayes_scaling", meta)
    again = bs.load(path)
    pd.testing.assert_frame_equal(again.sweep.frame, demo_fit.sweep.frame, check_dtype=False)
    pd.testing.assert_frame_equal(again.summary(), demo_fit.summary())


def test_save_refuses_to_overwrite(demo_fit, tmp_path):
    path = tmp_path / "fit.nc"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        demo_fit.save(path)
    assert path.read_text() == "precious"
    demo_fit.save(path, overwrite=True)
    assert bs.load(path).law.name == "chinchilla"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]  # no temp files left


def test_load_rejects_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(bs.FitFileError, match="no such fit file"):
        bs.load(tmp_path / "nope.nc")
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"\x89HDF\r\n not really")
    with pytest.raises(bs.FitFileError, match="not a readable netCDF fit file"):
        bs.load(garbage)
    import xarray as xr

    foreign = tmp_path / "foreign.nc"
    xr.DataTree(xr.Dataset({"x": ("i", np.arange(3.0))})).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(bs.FitFileError, match="not a bayes_scaling fit"):
        bs.load(foreign)


def test_same_seed_same_posterior_and_convergence_warning():
    sweep = bs.load_demo().iloc[::2]
    with pytest.warns(bs.ConvergenceWarning, match="may not have converged"):
        first = bs.fit(sweep, law="params", draws=30, tune=30, chains=2, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        second = bs.fit(sweep, law="params", draws=30, tune=30, chains=2, seed=5)
    np.testing.assert_array_equal(first.draws(["alpha"])["alpha"], second.draws(["alpha"])["alpha"])


def test_fit_argument_errors():
    sweep = bs.load_demo()
    with pytest.raises(bs.PriorError, match="has no parameter 'gamma'"):
        bs.fit(sweep, priors={"gamma": 1.0})
    with pytest.raises(ValueError, match="unknown likelihood 'cauchy'"):
        bs.fit(sweep, likelihood="cauchy")
    with pytest.raises(ValueError, match="unknown law"):
        bs.fit(sweep, law="linear")
    with pytest.raises(bs.DataError, match="needs column 'unique_tokens'"):
        bs.fit(sweep, law="data_constrained")
    message = r"7 free parameters \(5 in the law, 2 for the noise\) but the sweep has only 6 runs"
    with pytest.raises(bs.DataError, match=message):
        bs.fit(sweep.head(6), law="kaplan_e")
    with pytest.raises(ValueError, match="draws must be an integer"):
        bs.fit(sweep, draws=0)


def test_real_chinchilla_sweep_converges_next_to_epoch_refit(chinchilla_fit):
    diag = chinchilla_fit.diagnostics()
    assert diag.max_r_hat <= 1.01 and diag.divergences == 0
    mean = chinchilla_fit.summary()["mean"]
    # Epoch AI's Huber refit: E=1.817, alpha=0.347, beta=0.367
    assert 0.32 < mean["alpha"] < 0.37 and 0.34 < mean["beta"] < 0.39 and 1.75 < mean["E"] < 1.86
    # the Student-t finds the outlying runs: heavy tails
    assert mean["nu"] < 5


def test_compiled_model_reuse_gives_the_same_posterior_as_a_fresh_compile():
    from bayes_scaling.compiled import clear_compiled_cache

    first = bs.load_demo()
    other = first.iloc[::-1].reset_index(drop=True)
    other["N"] *= 2.0  # new reference scale and new data, same number of runs
    other["loss"] *= 1.05
    kwargs = {"law": "params", "draws": 100, "tune": 200, "chains": 2, "seed": 9, "warn": False}
    bs.fit(first, **kwargs)  # compiles and caches
    reused = bs.fit(other, **kwargs)  # same law and size: reuses the compiled model with new data
    clear_compiled_cache()
    fresh = bs.fit(other, **kwargs)
    for name in ("E", "A", "alpha"):
        np.testing.assert_array_equal(reused.draws([name])[name], fresh.draws([name])[name])
    assert reused.info["fit_seconds"] < fresh.info["fit_seconds"]
    # a sweep with another number of runs reuses the same compiled model (data shapes are inputs, not constants)
    shorter = other.iloc[:50].reset_index(drop=True)
    reused = bs.fit(shorter, **kwargs)
    clear_compiled_cache()
    fresh = bs.fit(shorter, **kwargs)
    for name in ("E", "A", "alpha"):
        np.testing.assert_array_equal(reused.draws([name])[name], fresh.draws([name])[name])
    assert reused.info["fit_seconds"] < fresh.info["fit_seconds"]


def test_failed_diagnostics_trigger_one_retry_with_safer_settings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 5 tuning steps cannot adapt the step size: the first pass fails its checks
        result = bs.fit(bs.load_demo(), draws=1000, tune=5, chains=2, seed=4, extrapolation="none")
        plain = bs.fit(bs.load_demo(), draws=1000, tune=5, chains=2, seed=4, extrapolation="none", retry=False)
    escalated = result.info["escalated"]
    assert escalated["first_problems"] and escalated["tune"] == 15 and escalated["target_accept"] == 0.99
    assert result.idata["posterior"].sizes["draw"] == 4000 and result.info["draws"] == 4000
    assert "escalated" not in plain.info and plain.idata["posterior"].sizes["draw"] == 1000
    # quick looks (fewer than 2000 draws in all) are never retried
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quick = bs.fit(bs.load_demo(), draws=300, tune=5, chains=2, seed=4, extrapolation="none")
    assert "escalated" not in quick.info


@pytest.mark.parametrize(("likelihood", "scatter"), [*[(n, "constant") for n in sorted(NOISE_MODELS)],
                                                      ("student_t", "edges")])
def test_numpy_log_likelihood_matches_the_pymc_model(likelihood, scatter):
    """Every noise model's numpy log density (behind LOO) must equal its PyMC distribution's, draw by draw; the
    scatter growing toward the sweep's edges too."""
    from bayes_scaling.model import OBSERVED

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bs.fit(bs.load_demo(), likelihood=likelihood, draws=20, tune=50, chains=2, seed=6,
                        extrapolation="none", scatter=scatter)
    numpy_ll = result.log_likelihood(result.sweep.frame)
    model = bs.build_model(result.law, result.sweep, priors=result.priors, likelihood=likelihood,
                           reference=result.reference, scatter=result.info.get("scatter"))
    posterior = result.idata["posterior"].to_dataset()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logp = model.compile_fn(model.logp(vars=[model[OBSERVED]], sum=False)[0],
                                inputs=model.value_vars, on_unused_input="ignore")
    values = {v.name: v for v in model.value_vars}
    for draw in range(0, numpy_ll.shape[0], 7):
        chain, index = divmod(draw, posterior.sizes["draw"])
        point = {}
        for name, var in values.items():
            rv = model.values_to_rvs[var]
            value = posterior[rv.name].values[chain, index]
            transform = model.rvs_to_transforms.get(rv)
            point[name] = transform.forward(value, *rv.owner.inputs).eval() if transform is not None else value
        np.testing.assert_allclose(logp(point), numpy_ll[draw], rtol=1e-6, atol=1e-8)


def test_one_sampling_object_with_keyword_overrides():
    from bayes_scaling.inference import Sampling

    base = Sampling(draws=200, chains=2, seed=3)
    assert Sampling.of(base, draws=100) == Sampling(draws=100, chains=2, seed=3)
    with pytest.raises(TypeError, match=r"unknown sampling option.*'draw'"):
        bs.fit(bs.load_demo(), draw=100)
    with pytest.raises(ValueError, match="chains must be an integer >= 1"):
        Sampling(chains=0)
    with pytest.raises(ValueError, match="unknown sampler"):
        bs.fit(bs.load_demo(), sampler="stan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bs.fit(bs.load_demo(), sampling=base, tune=200, extrapolation="none", warn=False)
    info = result.info
    assert (info["draws"], info["chains"], info["tune"], info["seed"]) == (200, 2, 200, 3)
    assert result.idata["posterior"].sizes["draw"] == 200


def test_mass_matrix_option_reaches_nutpie(monkeypatch):
    import nutpie

    from bayes_scaling.inference import Sampling

    with pytest.raises(ValueError, match="mass_matrix must be 'low_rank' or 'diag'"):
        Sampling(mass_matrix="dense")
    asked = []
    real = nutpie.sample

    def spy(compiled, **options):
        asked.append(options["low_rank_modified_mass_matrix"])
        return real(compiled, **options)

    monkeypatch.setattr(nutpie, "sample", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mass_matrix in ("diag", "low_rank"):
            result = bs.fit(bs.load_demo(), draws=100, tune=100, chains=2, seed=1, extrapolation="none",
                            warn=False, retry=False, mass_matrix=mass_matrix)
            assert result.info["mass_matrix"] == mass_matrix
            assert result.idata["posterior"].sizes["draw"] == 100
    assert asked == [False, True]


def test_mass_matrix_update_reaches_nutpies_settings_and_nutpie_is_restored(monkeypatch):
    import importlib

    import nutpie

    from bayes_scaling import nutpie_numba
    from bayes_scaling.inference import Sampling

    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="mass_matrix_update must be a positive integer"):
            Sampling(mass_matrix_update=bad)
    if not nutpie_numba.adaptation_supported():
        pytest.skip("this nutpie's settings are not known to bayes_scaling.nutpie_numba")
    module = importlib.import_module("nutpie.sample")
    real_lib, real_sample, seen = module._lib, nutpie.sample, []

    def spy(compiled, **options):  # what a low-rank sampler started now would be set to
        seen.append(module._lib.PyNutsSettings.LowRank(1).as_dict()["settings"]["adapt_options"]
                    ["mass_matrix_update_freq"])
        return real_sample(compiled, **options)

    monkeypatch.setattr(nutpie, "sample", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for update in (None, 37):
            result = bs.fit(bs.load_demo(), draws=100, tune=100, chains=2, seed=1, extrapolation="none",
                            warn=False, retry=False, mass_matrix_update=update)
            assert result.info["mass_matrix_update"] == update
            assert result.idata["posterior"].sizes["draw"] == 100
    assert seen == [20, 37]  # nutpie's default, then the option
    assert module._lib is real_lib  # swapped only while the sampler started

    def broken(compiled, **options):
        raise RuntimeError("nutpie failed to start")

    monkeypatch.setattr(nutpie, "sample", broken)
    with pytest.raises(RuntimeError, match="failed to start"):
        nutpie_numba.start_sampler({"mass_matrix_update_freq": 5}, None)
    assert module._lib is real_lib


def test_work_given_to_sample_runs_once_while_the_chains_run_and_its_failure_stops_them():
    from bayes_scaling.inference import Sampling, sample
    from bayes_scaling.model import build_model

    sweep = bs.load_sweep(bs.load_demo())
    model = build_model("chinchilla", sweep, reference=sweep.reference())
    calls = []
    settings = Sampling(draws=100, tune=100, chains=2, seed=1, progress=False)
    plain = sample(model, settings, cache_key=("during-test",))
    tree = sample(model, settings, cache_key=("during-test",), during=lambda: calls.append(1))
    assert calls == [1]
    # the same draws: the work ran beside the chains, not in them
    np.testing.assert_array_equal(tree["posterior"]["E"].values, plain["posterior"]["E"].values)

    def broken() -> None:
        raise RuntimeError("refits failed")

    with pytest.raises(RuntimeError, match="refits failed"):
        sample(model, settings, cache_key=("during-test",), during=broken)
    again = sample(model, settings, cache_key=("during-test",))  # the stopped sampler left nothing behind
    np.testing.assert_array_equal(again["posterior"]["E"].values, plain["posterior"]["E"].values)


def test_sampling_to_an_ess_target_adds_batches_until_it_is_met(capsys):
    from bayes_scaling.cli import main

    kwargs = {"ess": 600, "draws": 150, "chains": 2, "tune": 300, "seed": 3, "extrapolation": "none",
              "law": "chinchilla"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bs.fit(bs.load_demo(), **kwargs)
        again = bs.fit(bs.load_demo(), **kwargs)
    done = result.info["ess_sampling"]
    assert done["reached"] and result.diagnostics().min_ess_bulk >= 600
    assert done["batches"] >= 2 and result.idata["posterior"].sizes["chain"] == 2 * done["batches"]
    assert result.idata["posterior"].sizes["draw"] == 150 and result.info["chains"] == done["chains"]
    np.testing.assert_array_equal(result.draws(["E"])["E"], again.draws(["E"])["E"])  # reproducible
    assert "ess_sampling" not in result.idata.attrs  # moved into info, not left in the saved file's attributes
    with pytest.warns(bs.ConvergenceWarning, match="below the target"):
        far = bs.fit(bs.load_demo(), ess=10**6, draws=100, chains=2, tune=100, seed=3, max_seconds=0.01,
                     extrapolation="none")
    assert far.info["ess_sampling"]["batches"] == 1 and not far.info["ess_sampling"]["reached"]
    assert main(["fit", str(bs.datasets.demo_path()), "--ess", "300", "--draws", "100", "--chains", "2", "--tune",
                 "200", "--seed", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["ess_sampling"]["target"] == 300


def test_student_t_logpdf_matches_scipy_with_broadcasting_and_normal_limits():
    """Per draw nu and sigma against per run residuals (the shapes of a fit's log-likelihood); inf nu is Normal."""
    from scipy import stats

    from bayes_scaling.likelihoods import student_t_logpdf

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.05, size=(6, 7))
    scale = rng.uniform(0.01, 0.1, size=(6, 1))
    nu = rng.gamma(2.0, 10.0, size=(6, 1))
    expected = stats.t.logpdf(x, df=nu, scale=scale)
    np.testing.assert_allclose(student_t_logpdf(x, scale, nu), expected, rtol=1e-10)
    mixed = nu.copy()
    mixed[2] = np.inf
    out = student_t_logpdf(x, scale, mixed)
    assert out.shape == (6, 7)
    np.testing.assert_allclose(out[2], stats.norm.logpdf(x[2], scale=scale[2]), rtol=1e-10)
    np.testing.assert_allclose(np.delete(out, 2, axis=0), np.delete(expected, 2, axis=0), rtol=1e-10)
    normal = student_t_logpdf(x, scale, np.inf)
    assert normal.shape == (6, 7) and normal.flags.writeable
    np.testing.assert_allclose(normal, stats.norm.logpdf(x, scale=scale), rtol=1e-10)
    # nu with the larger shape: a grid of nu values for one residual
    grid = student_t_logpdf(0.02, 0.05, np.array([1.0, 5.0, np.inf]))
    np.testing.assert_allclose(grid, [stats.t.logpdf(0.02, 1.0, scale=0.05), stats.t.logpdf(0.02, 5.0, scale=0.05),
                                      stats.norm.logpdf(0.02, scale=0.05)], rtol=1e-10)
