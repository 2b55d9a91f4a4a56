"""Downstream links: loss -> benchmark error, fitted with PyMC and chained to loss forecasts."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.downstream import DownstreamFit, chain, fit_downstream

FAST = {"draws": 300, "tune": 500, "chains": 2, "seed": 3}
K, GAMMA, FLOOR_FRAC = 8.0, 1.1, 0.1
CHANCE = 0.75


def _truth(loss: np.ndarray) -> np.ndarray:
    """Gadre et al.'s form 0.76 - K exp(-GAMMA L), turning onto the floor 0.076 (the package's exponential link)."""
    gap, room = K * np.exp(-GAMMA * loss), 0.76 * (1 - FLOOR_FRAC)
    return 0.76 - gap / np.sqrt(1 + (gap / room) ** 2)  # the soft minimum of SATURATION_POWER 2


def _synthetic(rng: np.random.Generator, n: int = 60, sigma: float = 0.006) -> pd.DataFrame:
    loss = rng.uniform(2.7, 5.5, n)
    err = _truth(loss) + sigma * rng.standard_normal(n)
    return pd.DataFrame({"loss": loss, "err": np.clip(err, 0, 1), "random_err": CHANCE})


@pytest.fixture(scope="module")
def link() -> DownstreamFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_downstream(_synthetic(np.random.default_rng(0)), "err", form="exponential", **FAST)


def test_exponential_link_recovers_its_parameters(link):
    assert link.chance == CHANCE  # read from the random_<metric> column
    table = link.summary(prob=0.99)
    ref = link.reference
    truth = {"eps": 0.76, "gamma": GAMMA, "log_gap": np.log(K) - GAMMA * ref,  # k exp(-gamma L) at L_ref
             "floor_frac": FLOOR_FRAC}
    for name, value in truth.items():
        assert table.loc[name, "lower"] <= value <= table.loc[name, "upper"], (name, table.loc[name].to_dict())
    assert link.diagnostics().max_r_hat < 1.05
    assert link.idata["log_likelihood"]["metric"].shape[-1] == 60  # pointwise, for LOO between forms


def test_predict_pairs_loss_draws_with_link_draws(link):
    loss = np.full((500, 2), [2.8, 5.5])
    mean, pred = link.predict(loss, seed=1)
    expected = _truth(np.array([2.8, 5.5]))
    assert np.allclose(np.median(mean, axis=0), expected, atol=0.01)
    assert (pred.std(axis=0) > mean.std(axis=0)).all()  # one evaluation is noisier than the expected error
    assert ((pred >= 0) & (pred <= 1)).all()


def test_chained_forecast_carries_both_stages(link, demo_fit):
    table = chain(demo_fit, link, N=[1e9, 1e11], D=[2e10, 2e12], prob=0.9)
    assert list(table["N"]) == [1e9, 1e11]
    assert (table["loss_pred_lower"] < table["loss_median"]).all()
    assert (table["loss_median"] < table["loss_pred_upper"]).all()
    slack = 0.005  # Monte Carlo noise of the quantiles: one evaluation adds little (0.006) to a wide link term
    assert (table["pred_lower"] <= table["lower"] + slack).all()
    assert (table["upper"] <= table["pred_upper"] + slack).all()
    assert table["median"].iloc[1] < table["median"].iloc[0]  # the bigger model errs less
    assert table["p_below_chance"].between(0, 1).all()


def _saturating(rng: np.random.Generator, low: float, high: float, n: int = 50, floor: float = 0.15,
                sigma: float = 0.006) -> pd.DataFrame:
    """A task that saturates at ``floor`` error (label noise): a logistic in the loss from chance to the floor."""
    loss = rng.uniform(low, high, n)
    err = floor + (CHANCE - floor) / (1 + np.exp(-2.5 * (loss - 3.2)))
    return pd.DataFrame({"loss": loss, "err": np.clip(err + sigma * rng.standard_normal(n), 0, 1),
                         "random_err": CHANCE})


def test_a_saturating_task_is_forecast_above_its_floor_and_below_chance():
    """The plain exponential link runs to zero error far below its data; the floor keeps the forecast there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sat = fit_downstream(_saturating(np.random.default_rng(5), 2.2, 5.0), "err", **FAST)
    table = sat.summary(prob=0.9)
    assert "floor_frac" in table.index
    mean, _ = sat.predict(np.full((2000, 3), [1.0, 1.5, 2.0]), seed=2)
    floor = sat.link.floor(sat.draws(), sat.chance)
    assert (mean >= 0).all() and (mean <= CHANCE).all()
    assert np.median(mean, axis=0) == pytest.approx([0.15, 0.15, 0.155], abs=0.04)  # the floor, not 0
    assert abs(np.median(floor) - 0.15) < 0.04


def test_the_link_term_widens_forecasts_below_the_links_losses(tmp_path):
    """Fitted above the bend of a saturating task, the link's folds see their own misses grow with distance."""
    from bayes_scaling.downstream import link_fold_residuals, load_downstream, loss_distance

    data = _saturating(np.random.default_rng(6), 3.0, 5.5, n=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_term = fit_downstream(data, "err", **FAST)
        without = fit_downstream(data, "err", extrapolation=False, **FAST)
    assert "extrapolation" not in without.info and without.term is None
    term = with_term.info["extrapolation"]
    assert term["folds"] >= 2 and term["residuals"] > 10 and term["median"] > 0
    residuals = link_fold_residuals(with_term)
    assert (residuals["distance"] > 0).all() and residuals["fold"].nunique() == term["folds"]
    losses = np.array([4.0, 2.6, 2.0])  # inside, beyond, far beyond the link's losses (3.0-5.5)
    np.testing.assert_allclose(loss_distance(losses, data["loss"]),
                               [0, (data["loss"].min() - 2.6) / np.ptp(data["loss"]),
                                (data["loss"].min() - 2.0) / np.ptp(data["loss"])])
    widths = []
    for f in (with_term, without):
        mean, _ = f.predict(np.broadcast_to(losses, (4000, 3)), seed=1)
        low, high = np.quantile(mean, [0.05, 0.95], axis=0)
        widths.append(high - low)
    assert widths[0][0] == pytest.approx(widths[1][0], rel=0.2)  # inside the data nothing changes
    assert widths[0][2] > widths[1][2] and widths[0][2] > widths[0][1]
    loaded = load_downstream(with_term.save(tmp_path / "link.nc"))
    assert loaded.info["extrapolation"] == term


def test_chain_reports_the_distance_in_loss_and_warns_far(link, demo_fit):
    wide_link = DownstreamFit(link=link.link, metric=link.metric, chance=link.chance, items=link.items,
                              data=pd.concat([link.data, pd.DataFrame({"loss": [1.0], "err": [0.1]})]),
                              idata=link.idata, info=link.info)
    near = chain(demo_fit, wide_link, N=[1e9], D=[2e10])
    assert near["loss_distance"].iloc[0] == 0  # the demo sweep's losses lie inside 1.0-5.5 nats
    far_link = DownstreamFit(link=link.link, metric=link.metric, chance=link.chance, items=link.items,
                             data=link.data[link.data["loss"] > 5.0].reset_index(drop=True), idata=link.idata,
                             info=link.info)
    with pytest.warns(UserWarning, match="widths of the link's range of losses beyond"):
        table = chain(demo_fit, far_link, N=[1e11], D=[2e12])
    assert table["loss_distance"].iloc[0] > 1


def test_downstream_input_errors():
    frame = _synthetic(np.random.default_rng(1), n=10)
    with pytest.raises(ValueError, match="unknown link form"):
        fit_downstream(frame, "err", form="cubic")
    with pytest.raises(ValueError, match="column 'acc' is not in the data"):
        fit_downstream(frame, "acc")
    with pytest.raises(ValueError, match=r"must be an error in \[0, 1\].*rows \[3\] \(counted from 1\)"):
        fit_downstream(frame.assign(err=np.where(np.arange(10) == 2, 1.5, frame["err"])), "err")
    with pytest.raises(ValueError, match="items must be a positive integer"):
        fit_downstream(frame, "err", items=0)


def test_link_saves_loads_and_compares_by_loo(link, tmp_path, demo_fit):
    from bayes_scaling.downstream import compare_links, load_downstream
    from bayes_scaling.posterior import FitFileError

    path = link.save(tmp_path / "link.nc")
    back = load_downstream(path)
    assert (back.metric, back.chance, back.link.name) == (link.metric, link.chance, "exponential")
    pd.testing.assert_frame_equal(back.summary(), link.summary())
    with pytest.raises(FileExistsError):
        link.save(path)
    with pytest.raises(FitFileError, match="not a downstream link fit"):
        load_downstream(demo_fit.save(tmp_path / "loss.nc"))  # a loss fit is not a link fit
    with pytest.raises(FitFileError, match="not a readable netCDF"):
        load_downstream(bs.datasets.demo_path())
    # on the fixture's losses (2.7-5.5) the two forms fit equally well (elpd within one se): a ranking there is a
    # coin toss. Up to loss 7.5 the exponential truth rises above chance (0.76 > 0.75), where no sigmoid reaches
    # (elpd 17-35 higher, 3-5 se, at seeds 0-2)
    rng = np.random.default_rng(0)
    loss = rng.uniform(2.0, 7.5, 60)
    wide = pd.DataFrame({"loss": loss, "err": np.clip(_truth(loss) + 0.004 * rng.standard_normal(60), 0, 1),
                         "random_err": CHANCE})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {form: fit_downstream(wide, "err", form=form, **FAST) for form in ("exponential", "sigmoid")}
    table = compare_links(fits)
    assert table.index[0] == "exponential"  # the data come from the exponential form
    assert table.loc["sigmoid", "elpd_diff"] < -2 * table.loc["sigmoid", "dse"]
    assert table["weight"].sum() == pytest.approx(1.0)


def test_cli_fit_downstream_then_forecast_through_it(tmp_path, capsys, demo_fit):
    from bayes_scaling.cli import main

    data = tmp_path / "evals.csv"
    frame = _synthetic(np.random.default_rng(2))
    frame.assign(N=np.geomspace(1e7, 1e9, len(frame)), D=np.geomspace(2e8, 2e10, len(frame))).to_csv(data, index=False)
    link_path, loss_path = tmp_path / "link.nc", tmp_path / "loss.nc"
    args = ["fit-downstream", str(data), "--metric", "err", "--out", str(link_path), "--draws", "200", "--tune",
            "300", "--chains", "2", "--seed", "1", "--json"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["chance"] == CHANCE and set(payload["params"]) >= {"eps", "log_gap", "gamma"}
    assert main(args) == 2 and "exists" in capsys.readouterr().err  # not replaced without --force
    demo_fit.save(loss_path)
    assert main(["forecast", str(loss_path), "--N", "1e8", "--D", "2e9", "--downstream", str(link_path),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["downstream"]
    assert out["metric"] == "err" and 0 < out["points"][0]["median"] < CHANCE
    assert main(["forecast", str(loss_path), "--N", "1e10", "--D", "2e11", "--downstream", str(loss_path)]) == 2
    assert "not a downstream link fit" in capsys.readouterr().err


def test_link_curve_plot_and_report_section(link, demo_fit, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from bayes_scaling import plots
    from bayes_scaling.downstream import link_curve
    from bayes_scaling.report import write_report

    curve = link_curve(link, prob=0.9)
    assert curve["loss"].min() < link.data["loss"].min()  # reaches beyond the best run
    slack = 0.005  # Monte Carlo noise of the quantiles (see test_chained_forecast_carries_both_stages)
    assert ((curve["pred_lower"] <= curve["lower"] + slack) & (curve["upper"] <= curve["pred_upper"] + slack)).all()
    ax = plots.plot_downstream(curve, link.data, metric="err", chance=link.chance)
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2 and ax.xaxis_inverted()
    plt.close("all")
    report = write_report({"chinchilla": demo_fit}, tmp_path / "report", downstream=link, points=[(1e8, 2e9)])
    assert "downstream.png" in report.figures
    html = report.html.read_text()
    assert "Downstream: err as a function of the loss" in html and "Downstream forecasts through the loss" in html


# ------------------------------------------------------------------------------------------- many tasks


def test_a_per_task_loss_as_the_intermediate(demo_fit):
    """(N, D) -> task loss -> error: the link reads a per-task loss column, the loss law is fitted to the same
    column, and chain carries both stages; the truth of a sweep point falls inside the chained interval."""
    rng = np.random.default_rng(4)
    sweep = bs.load_demo()
    task_loss = 1.3 * sweep["loss"] * np.exp(0.004 * rng.standard_normal(len(sweep)))  # e.g. bpb of the answers
    data = sweep.assign(bpb_task=task_loss, err=np.clip(_truth(task_loss) + 0.006 * rng.standard_normal(len(sweep)),
                                                        0, 1), random_err=CHANCE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        link = fit_downstream(data, "err", loss="bpb_task", extrapolation=False, **FAST)
        task_fit = bs.fit(data.assign(loss=data["bpb_task"])[["N", "D", "loss"]], draws=300, tune=500, chains=2,
                          seed=3, warn=False)
    np.testing.assert_allclose(link.data["loss"], task_loss)  # the link's loss is the task loss
    middle = data.iloc[[len(data) // 2]]
    table = chain(task_fit, link, N=middle["N"], D=middle["D"], prob=0.95)
    truth = _truth(1.3 * middle["loss"].to_numpy())[0]
    assert table["pred_lower"].iloc[0] <= truth <= table["pred_upper"].iloc[0]
    with pytest.raises(ValueError, match="column 'bpb_other' is not in the data"):
        fit_downstream(data, "err", loss="bpb_other")
    with pytest.raises(ValueError, match="the loss column and the metric are the same"):
        fit_downstream(data, "err", loss="err")
