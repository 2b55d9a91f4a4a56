"""Plots run headless and draw what they should; the report writes HTML that references existing images."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection

import bayes_scaling as bs
from bayes_scaling import plots
from bayes_scaling.cli import main
from bayes_scaling.comparison import exponent_draws
from bayes_scaling.datasets import demo_path
from bayes_scaling.forecast import band_table, extrapolation_fan, fit_curves
from bayes_scaling.planning import isoflop_curves


def _count(ax, kind):
    return sum(isinstance(c, kind) for c in ax.collections)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_band_table_nests_intervals(demo_fit):
    table = band_table(demo_fit, pd.DataFrame({"N": [1e9, 1e10], "D": [2e10, 2e11]}), probs=(0.5, 0.9))
    assert list(table["prob"]) == [0.5, 0.5, 0.9, 0.9] and table.attrs["interval"]["kind"] == "equal-tailed"
    inner, outer = (table[table["prob"] == p].reset_index(drop=True) for p in (0.5, 0.9))
    assert (outer["lower"] <= inner["lower"]).all() and (inner["upper"] <= outer["upper"]).all()
    assert (outer["pred_lower"] < outer["lower"]).all()
    with pytest.raises(KeyError, match="long now"):
        table["lower_0.9"]


def test_plot_fit_one_curve_and_two_bands_per_size(demo_fit):
    curves = fit_curves(demo_fit, max_curves=6)
    assert curves.by == "N" and curves.bands["N"].nunique() == 6 and curves.x == "D"
    ax = plots.plot_fit(curves)
    assert len(ax.lines) == 6
    assert _count(ax, PolyCollection) == 12  # credible + predictive band per size
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatter) == 1 and len(scatter[0].get_offsets()) == len(demo_fit.sweep)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_plot_extrapolation_nested_bands_and_holdout(demo_fit):
    holdout = pd.DataFrame({"N": [5e10, 1e11], "D": [1e12, 2e12], "loss": [2.0, 1.95]})
    fan = extrapolation_fan(demo_fit, target_N=1e11)
    assert fan.bands["N"].max() == pytest.approx(1e11) and np.allclose(fan.bands["D"], 20 * fan.bands["N"])
    ax = plots.plot_extrapolation(fan, holdout=holdout)
    assert _count(ax, PolyCollection) == 3  # predictive 90%, credible 90%, credible 50%
    assert ax.get_xlim()[1] >= 1e11
    offsets = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(o) for o in offsets) == len(demo_fit.sweep) + 2
    with pytest.raises(ValueError, match="x must be"):
        plots.plot_extrapolation(fan, x="D")


def test_plot_frontier_and_isoflop(demo_fit):
    table = bs.compute_optimal(demo_fit, np.geomspace(1e19, 1e24, 8))
    fig = plots.plot_frontier(table)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 3 and _count(ax, PolyCollection) == 1
    iso = isoflop_curves(demo_fit, [1e19, 1e20, 1e21])
    assert sorted(iso["C"].unique()) == [1e19, 1e20, 1e21]
    assert np.allclose(6 * iso["N"] * iso["D"], iso["C"])  # every point spends its budget
    ax = plots.plot_isoflop(iso)
    assert len(ax.lines) == 3 and _count(ax, PolyCollection) == 3


def test_plot_posterior_compare_exponents(demo_fit):
    table = demo_fit.posterior_table()
    assert list(table.columns) == ["E", "A", "B", "alpha", "beta"] and len(table) == 1000
    fig = plots.plot_posterior(table)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == 15  # 5 parameters: 5 marginals + 10 pairs
    table = pd.DataFrame({"elpd": [10.0, 4.0], "se": [1.0, 1.5], "weight": [0.8, 0.2]}, index=["a", "b"])
    fig = plots.plot_compare(table)
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == 2
    ax = plots.plot_exponents(exponent_draws(demo_fit)["a"], label="chinchilla")
    assert len(ax.lines) == 2 and len(ax.patches) == 60


def test_report_writes_html_referencing_existing_images(tmp_path, capsys):
    out = tmp_path / "report"
    args = ["report", str(demo_path()), "--out", str(out), "--draws", "200", "--tune", "300", "--chains", "2",
            "--seed", "1", "--N", "1e11", "--D", "2e12", "--C", "1e23", "--json"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    html = (out / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) >= 6 and sorted(images) == sorted(payload["figures"])
    assert all((out / name).stat().st_size > 1000 for name in images)
    for heading in ("Data", "Diagnostics", "Parameters of chinchilla", "Forecasts", "Compute-optimal allocation"):
        assert f"<h2>{heading}" in html
    assert "![" in (out / "report.md").read_text()
    # the folder is not replaced without --force
    assert main(args) == 2
    assert "holds an earlier report; add --force" in capsys.readouterr().err


def test_plot_calibration_draws_pit_and_coverage():
    from bayes_scaling.plots import plot_calibration

    rng = np.random.default_rng(0)
    pit = rng.uniform(size=200)
    runs = pd.DataFrame({"method": np.repeat(["a", "b"], 100), "pit": pit,
                         **{f"cover_{p:g}": np.abs(pit - 0.5) <= p / 2 for p in (0.5, 0.9)}})
    fig = plot_calibration(runs, levels=(0.5, 0.9))
    left, right = fig.axes
    assert len(left.patches) == 2  # one PIT histogram per method
    assert [line.get_label() for line in right.get_lines()[:2]] == ["a", "b"]
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), [runs["cover_0.5"][:100].mean(),
                                                                   runs["cover_0.9"][:100].mean()])
