"""The approximate path (method='laplace'): close to NUTS on a well-identified sweep, labelled, checked."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.approx import ApproximationWarning
from bayes_scaling.cli import main
from bayes_scaling.compiled import clear_compiled_cache
from bayes_scaling.fitting import fold_residuals


@pytest.fixture(scope="module")
def approx() -> bs.Fit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximationWarning)
        return bs.fit(bs.load_demo(), law="chinchilla", method="laplace", seed=3)  # as demo_fit


def test_laplace_is_close_to_nuts_and_labelled(approx, demo_fit):
    assert approx.is_approximate and not demo_fit.is_approximate
    assert "APPROXIMATE" in repr(approx) and approx.info["method"] == "laplace"
    facts = approx.info["approximation"]
    assert facts["optimizer_converged"] and np.isfinite(facts["pareto_k"])
    nuts, lap = demo_fit.draws(), approx.draws()
    for name in ("E", "alpha", "beta", "log_n_term", "log_d_term", "sigma"):
        assert abs(lap[name].mean() - nuts[name].mean()) < 0.5 * nuts[name].std(), name
        assert 0.6 < lap[name].std() / nuts[name].std() < 1.6, name
    assert lap["A"].shape == (4000,) and np.all(lap["A"] > 0)  # derived quantities come along
    table = approx.forecast(N=1e11, D=2e12)
    assert table["pred_lower"].iloc[0] < table["mean"].iloc[0] < table["pred_upper"].iloc[0]


def test_laplace_saves_and_loads(approx, tmp_path):
    path = approx.save(tmp_path / "approx.nc")
    again = bs.load(path)
    assert again.is_approximate and again.info["approximation"]["pareto_k"] == approx.info["approximation"]["pareto_k"]
    assert np.array_equal(again.draws()["alpha"], approx.draws()["alpha"])


def test_laplace_cache_reuse_matches_a_fresh_compile():
    other = bs.load_demo().assign(loss=lambda d: d["loss"] * 1.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximationWarning)
        bs.fit(bs.load_demo(), method="laplace", seed=1)  # compiled functions now cached
        reused = bs.fit(other, method="laplace", seed=1).draws()
        clear_compiled_cache()
        fresh = bs.fit(other, method="laplace", seed=1).draws()
    for name in ("E", "alpha", "A"):
        np.testing.assert_allclose(reused[name], fresh[name], rtol=1e-10)
    assert reused["E"].mean() > 1.83  # the new data was used (losses 2% higher)
    # the extrapolation term's fold refits set each fold's data on the cached model without building one
    fit = bs.fit(other, method="laplace", seed=1, warn=False)
    clear_compiled_cache()
    cold = fold_residuals(fit)
    pd.testing.assert_frame_equal(fold_residuals(fit), cold)
    assert len(cold) > 100 and cold["fold"].nunique() >= 5


def test_unknown_method_and_missing_numpyro():
    with pytest.raises(ValueError, match="unknown method 'vi'"):
        bs.fit(bs.load_demo(), method="vi")
    if importlib.util.find_spec("numpyro") is None:
        with pytest.raises(ValueError, match=r"pip install -e '\.\[jax\]'"):
            bs.fit(bs.load_demo(), sampler="numpyro", draws=50, tune=50)
    if importlib.util.find_spec("jax") is None:
        with pytest.raises(ValueError, match=r"needs JAX"):
            bs.fit(bs.load_demo(), sampler="nutpie-jax", draws=50, tune=50)


def test_cli_labels_the_approximation(capsys, tmp_path):
    assert main(["fit", str(bs.datasets.demo_path()), "--method", "laplace", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("APPROXIMATE posterior (laplace; Pareto k-hat")
    assert main(["fit", str(bs.datasets.demo_path()), "--method", "laplace", "--seed", "1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["info"]["method"] == "laplace" and "pareto_k" in payload["info"]["approximation"]


def test_nutpie_jax_backend_reuses_its_compiled_model():
    pytest.importorskip("jax")
    other = bs.load_demo().assign(loss=lambda d: d["loss"] * 1.02)
    options = {"sampler": "nutpie-jax", "draws": 200, "tune": 200, "chains": 2, "seed": 1, "warn": False}
    bs.fit(bs.load_demo(), **options)
    reused = bs.fit(other, **options).draws()["E"]
    clear_compiled_cache()
    fresh = bs.fit(other, **options).draws()["E"]
    np.testing.assert_allclose(reused, fresh, rtol=1e-10)
    assert reused.mean() > 1.83


def _blas_threads(controller) -> list[int]:
    return [info["num_threads"] for info in controller.select(user_api="blas").info()]


def test_laplace_optimizes_with_one_blas_thread(monkeypatch):
    from scipy import optimize
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    if not _blas_threads(controller):
        pytest.skip("no BLAS library that threadpoolctl can see")
    seen = []
    original = optimize.minimize

    def spy(*args, **kwargs):
        seen.append(_blas_threads(controller))
        return original(*args, **kwargs)

    monkeypatch.setattr(optimize, "minimize", spy)
    # two threads around the fit (the test processes run on one, see conftest): the optimizer must drop to one
    with warnings.catch_warnings(), controller.limit(limits=2, user_api="blas"):
        warnings.simplefilter("ignore", ApproximationWarning)
        bs.fit(bs.load_demo(), law="chinchilla", method="laplace", seed=3, extrapolation="none")
        assert set(_blas_threads(controller)) == {2}  # and the caller's limit is back afterwards
    assert seen and all(set(threads) == {1} for threads in seen)
