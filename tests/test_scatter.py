"""Scatter that grows toward the sweep's edges: positions, recovery on a sweep that has it, and the errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.scatter import edge_columns, edge_names, edge_position, edge_spec, scatter_at

FAST = {"draws": 400, "tune": 500, "chains": 2}


def edgy_sweep(seed: int, *, growth: float) -> pd.DataFrame:
    """IsoFLOP-like runs whose scatter is 0.004 at the middle tokens per parameter and exp(growth) times that at
    the ends (the law itself exact)."""
    rng = np.random.default_rng(seed)
    budgets = np.geomspace(1e18, 1e21, 7)
    rows = []
    for c in budgets:
        n = np.geomspace(0.15, 6.0, 11) * np.sqrt(c / 6 / 20)
        rows += [(ni, c / (6 * ni)) for ni in n]
    n, d = np.array(rows).T
    position = np.minimum(np.abs(np.log10(d / n) - np.log10(d / n).mean()) / (np.ptp(np.log10(d / n)) / 2), 1)
    loss = 1.8 + 400 / n**0.34 + 410 / d**0.28
    return pd.DataFrame({"N": n, "D": d, "loss": loss * np.exp(rng.normal(0, 0.004 * np.exp(growth * position)))})


def test_positions_are_zero_in_the_middle_one_at_the_edge_and_capped_beyond():
    sweep = pd.DataFrame({"N": [1e8, 1e9, 1e10], "D": [1e9, 1e11, 1e13], "loss": 3.0})
    law = bs.get_law("chinchilla")
    assert edge_columns(law) == ["tokens_per_param", "N"] and edge_columns(bs.get_law("params")) == ["N"]
    spec = edge_spec(law, sweep)
    assert edge_names(spec) == ["sigma_edge_tpp", "sigma_edge_N"] and edge_names(None) == []
    points = pd.DataFrame({"N": [1e9, 1e8, 1e12], "D": [1e11, 1e9, 1e10]})
    position = edge_position(points, spec)
    np.testing.assert_allclose(position[0], [0.0, 1.0, 1.0])  # tpp 100 (middle), 10 (edge), 0.01 (beyond: capped)
    np.testing.assert_allclose(position[1], [0.0, 1.0, 1.0])  # N 1e9 (middle), 1e8 (edge), 1e12 (beyond)
    noise = scatter_at({"sigma": np.array([0.01, 0.02]), "sigma_edge_tpp": np.array([np.log(2), 0.0]),
                        "sigma_edge_N": np.array([0.0, np.log(3)]), "nu": np.array([5.0, 6.0])}, points, spec)
    np.testing.assert_allclose(noise["sigma"], [[0.01, 0.02, 0.02], [0.02, 0.06, 0.06]])
    assert set(noise) == {"sigma", "nu"}
    constant = scatter_at({"sigma": np.array([0.01, 0.02])}, points, None)
    assert constant["sigma"].shape == (2, 3)


@pytest.fixture(scope="module")
def edgy_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = edgy_sweep(0, growth=1.4)
        return {s: bs.fit(frame, scatter=s, seed=2, extrapolation="none", **FAST) for s in ("constant", "edges")}


def test_a_scatter_growing_at_the_isoflop_ends_is_recovered_and_widens_intervals_there(edgy_fits):
    edges = edgy_fits["edges"]
    assert edges.info["scatter"]["design"] == "edges"
    table = edges.summary()
    assert "sigma_edge_tpp" in table.index and "sigma_edge_N" in table.index
    growth = table.loc["sigma_edge_tpp"]  # true growth 1.4 along tokens per parameter, none along N
    assert growth["lower"] > 0.3 and abs(growth["mean"] - 1.4) < 2 * growth["sd"]
    assert table.loc["sigma_edge_N", "mean"] < growth["mean"]
    assert table.loc["sigma", "lower"] < 0.004 < table.loc["sigma", "upper"]
    # at one budget: the middle of the profile and its end
    c = 1e20
    points = pd.DataFrame({"N": [np.sqrt(c / 120), 0.15 * np.sqrt(c / 120)]})
    points["D"] = c / (6 * points["N"])
    forecast = edges.forecast(N=points["N"], D=points["D"])
    width = (forecast["pred_upper"] - forecast["pred_lower"]) / forecast["median"]
    assert width[1] > 1.8 * width[0]
    assert forecast.loc[1, "scatter_scale"] > 2 * forecast.loc[0, "scatter_scale"]
    plain = edgy_fits["constant"].forecast(N=points["N"], D=points["D"])
    assert plain.loc[0, "scatter_scale"] == pytest.approx(plain.loc[1, "scatter_scale"])


def test_loo_prefers_the_growing_scatter_where_the_sweep_has_it(edgy_fits):
    import arviz as az

    loo = {k: float(np.asarray(az.loo(f.idata, pointwise=True).elpd_i).sum()) for k, f in edgy_fits.items()}
    assert loo["edges"] > loo["constant"] + 4


def test_the_scatter_is_saved_and_its_folds_use_it(edgy_fits, tmp_path):
    edges = edgy_fits["edges"]
    loaded = bs.load(edges.save(tmp_path / "edges.nc"))
    assert loaded.info["scatter"] == edges.info["scatter"] and "sigma_edge_N" in loaded.noise_names
    pd.testing.assert_frame_equal(loaded.forecast(N=1e9, D=1e10), edges.forecast(N=1e9, D=1e10))
    from bayes_scaling.fitting import fold_residuals

    residuals = fold_residuals(edges, directions=("compute",))
    assert residuals["sigma"].nunique() > 1  # the fold's scatter at each held-out run


def test_bad_scatter_choices_are_refused():
    with pytest.raises(ValueError, match="unknown scatter 'wide'"):
        bs.fit(bs.load_demo(), scatter="wide")
    sweep = bs.load_demo()
    spec = edge_spec(bs.get_law("chinchilla"), bs.load_sweep(sweep))
    frame = bs.load_demo().assign(mix=np.arange(len(sweep)) % 2)
    with pytest.raises(ValueError, match="not a pooled fit"):
        bs.build_model("chinchilla", bs.load_sweep(frame), group="mix", scatter=spec)
