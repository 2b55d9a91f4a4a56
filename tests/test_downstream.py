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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sigmoid = fit_downstream(link.data.assign(random_err=CHANCE), "err", form="sigmoid", **FAST)
    table = compare_links({"exponential": link, "sigmoid": sigmoid})
    assert table.index[0] == "exponential"  # the data come from the exponential form
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
TASK_TRUTH = {  # per task: chance error, plateau offset, floor fraction, midpoint loss, width, items
    "err_a": (0.75, 0.00, 0.30, 3.6, 0.35, 2000),
    "err_b": (0.50, 0.01, 0.40, 3.3, 0.30, 1000),
    "err_c": (1.00, 0.00, 0.35, 3.6, 0.30, 3000),
    "err_d": (0.75, 0.00, 1.00, 3.5, 0.35, 1500),  # never leaves chance
}


def _task_truth(loss: np.ndarray, task: str) -> np.ndarray:
    chance, delta, frac, mid, width, _ = TASK_TRUTH[task]
    top = chance + delta
    return top - (top - chance * frac) / (1 + np.exp(-(mid - loss) / width))


def _true_leave_loss(task: str, margin: float = 0.02) -> float:
    chance, delta, frac, mid, width, _ = TASK_TRUTH[task]
    top = chance + delta
    q = (delta + margin) / (top - chance * frac)
    return mid - width * np.log(q / (1 - q))


def _task_data(rng: np.random.Generator, n: int = 40) -> pd.DataFrame:
    loss = rng.uniform(2.8, 5.0, n)
    frame = {"loss": loss}
    for task, (chance, *_, items) in TASK_TRUTH.items():
        p = np.clip(_task_truth(loss, task) + 0.004 * rng.standard_normal(n), 0, 1)
        frame[task] = rng.binomial(items, p) / items
        frame[f"random_{task}"], frame[f"items_{task}"] = chance, items
    return pd.DataFrame(frame)


@pytest.fixture(scope="module")
def tasks():
    from bayes_scaling.downstream import fit_tasks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_tasks(_task_data(np.random.default_rng(5)), list(TASK_TRUTH), draws=800, tune=800, chains=2,
                         seed=2)


def test_task_fit_pools_tasks_and_finds_where_they_leave_chance(tasks):
    from bayes_scaling.downstream import task_table

    assert tasks.diagnostics().max_r_hat < 1.05
    assert list(tasks.chance) == [t[0] for t in TASK_TRUTH.values()]  # from the random_<metric> columns
    summary = tasks.summary(prob=0.95)
    for task in ("err_a", "err_b", "err_c"):
        row = summary.loc[task]
        assert row["leave_loss_lower"] <= _true_leave_loss(task) <= row["leave_loss_upper"], (task, row.to_dict())
        assert row["p_leaves"] > 0.95
    table = task_table(tasks, loss=[2.9, 4.9], prob=0.9).set_index(["loss", "metric"])
    for task in ("err_a", "err_b", "err_c"):
        assert table.loc[(2.9, task), "p_above_chance"] > 0.95  # a good model has left chance
        assert table.loc[(4.9, task), "p_above_chance"] < 0.05  # a weak one sits at it
        truth = _task_truth(np.array([2.9]), task)[0]
        assert table.loc[(2.9, task), "pred_lower"] <= truth <= table.loc[(2.9, task), "pred_upper"]
    assert table.loc[(2.9, "err_d"), "p_above_chance"] < 0.5  # a task that never leaves chance
    assert (table["pred_lower"] <= table["lower"]).all() and (table["upper"] <= table["pred_upper"]).all()


def test_task_table_through_a_loss_fit_and_round_trip(tasks, demo_fit, tmp_path):
    from bayes_scaling.downstream import TaskFit, load_downstream, task_table

    table = task_table(tasks, fit=demo_fit, N=[1e8, 1e10], D=[2e9, 2e11], prob=0.9)
    assert len(table) == 2 * len(TASK_TRUTH) and set(table["N"]) == {1e8, 1e10}
    big, small = table[table["N"] == 1e10].set_index("metric"), table[table["N"] == 1e8].set_index("metric")
    assert (big["median"] <= small["median"] + 1e-9).all()  # a bigger model errs no more
    back = load_downstream(tasks.save(tmp_path / "tasks.nc"))
    assert isinstance(back, TaskFit) and back.metrics == tasks.metrics
    assert isinstance(bs.load(tmp_path / "tasks.nc"), TaskFit)  # one loader reads every kind of saved file
    with pytest.raises(bs.FitFileError, match="not a bayes_scaling fit"):
        bs.posterior.load_fit(tmp_path / "tasks.nc")
    pd.testing.assert_frame_equal(back.summary(), tasks.summary())
    with pytest.raises(ValueError, match="with a loss fit, give N and D"):
        task_table(tasks, fit=demo_fit, loss=[3.0])
    with pytest.raises(ValueError, match="give a loss fit with N and D, or loss values"):
        task_table(tasks)


def test_task_fit_input_errors():
    from bayes_scaling.downstream import fit_tasks

    frame = _task_data(np.random.default_rng(1), n=8)
    with pytest.raises(ValueError, match="two or more task columns"):
        fit_tasks(frame, ["err_a"])
    with pytest.raises(ValueError, match="no items for err_b"):
        fit_tasks(frame.drop(columns="items_err_b"), ["err_a", "err_b"])
    with pytest.raises(ValueError, match=r"err_b must be an error in \[0, 1\].*row 4 \(counted from 1\) holds 1.2"):
        fit_tasks(frame.assign(err_b=np.where(np.arange(8) == 3, 1.2, frame["err_b"])), ["err_a", "err_b"])
    with pytest.raises(ValueError, match=r"row 3 \(counted from 1\) has a missing or infinite err_a"):
        fit_tasks(frame.assign(err_a=np.where(np.arange(8) == 2, np.nan, frame["err_a"])), ["err_a", "err_b"])
    with pytest.raises(ValueError, match="chance= has no value for err_b"):
        fit_tasks(frame, ["err_a", "err_b"], chance={"err_a": 0.75})


def test_cli_fit_tasks_by_pattern_then_forecast_and_report(tasks, tmp_path, capsys, demo_fit):
    import matplotlib.pyplot as plt

    from bayes_scaling import plots
    from bayes_scaling.cli import main
    from bayes_scaling.downstream import task_table
    from bayes_scaling.report import write_report

    data = tmp_path / "evals.csv"
    frame = _task_data(np.random.default_rng(4), n=30)
    frame.assign(N=np.geomspace(1e7, 1e9, len(frame)), D=np.geomspace(2e8, 2e10, len(frame))).to_csv(data, index=False)
    out = tmp_path / "tasks.nc"
    assert main(["fit-downstream", str(data), "--metric", "err_*", "--out", str(out), "--draws", "200", "--tune",
                 "300", "--chains", "2", "--seed", "1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["tasks"] == list(TASK_TRUTH) and set(payload["params"]["err_a"]) >= {"floor", "leave_loss"}
    loss_path = demo_fit.save(tmp_path / "loss.nc")
    assert main(["forecast", str(loss_path), "--N", "1e9", "--D", "2e10", "--downstream", str(out), "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["downstream"]["points"]
    assert [p["metric"] for p in points] == list(TASK_TRUTH) and all(0 <= p["p_above_chance"] <= 1 for p in points)
    assert main(["fit-downstream", str(data), "--metric", "acc_*"]) == 2
    assert "matches no column" in capsys.readouterr().err
    ax = plots.plot_tasks(task_table(tasks, loss=[3.0]))
    assert len(ax.get_yticks()) == len(TASK_TRUTH)
    with pytest.raises(ValueError, match="one point"):
        plots.plot_tasks(task_table(tasks, loss=[3.0, 4.0]))
    plt.close("all")
    report = write_report({"chinchilla": demo_fit}, tmp_path / "report", downstream=tasks, points=[(1e8, 2e9)])
    assert "tasks.png" in report.figures
    assert "Downstream task forecasts through the loss" in report.html.read_text()


def test_task_links_carry_their_extrapolation_term_beyond_the_data(tasks, tmp_path):
    """Forward chaining in loss gives the pooled tasks one extrapolation scale: no wider inside the data, wider
    beyond it, with the distance reported (and a warning far out); the term survives a save."""
    import dataclasses

    from bayes_scaling.downstream import LINK_FAR, load_downstream, task_table

    term = tasks.term
    assert term is not None and term.folds >= 2 and term.to_dict()["median"] > 0
    without = dataclasses.replace(tasks, info={k: v for k, v in tasks.info.items() if k != "extrapolation"})
    losses = tasks.data["loss"]
    width = losses.max() - losses.min()
    inside, beyond = float(losses.median()), float(losses.min() - 0.5 * width)
    with_term = task_table(tasks, loss=[inside, beyond], prob=0.9).set_index(["loss", "metric"])
    plain = task_table(without, loss=[inside, beyond], prob=0.9).set_index(["loss", "metric"])
    assert (with_term.loc[inside, "loss_distance"] == 0).all()
    assert np.allclose(with_term.loc[beyond, "loss_distance"], 0.5)
    expected = ["median", "lower", "upper"]  # inside the data nothing is added to the expected error
    pd.testing.assert_frame_equal(with_term.loc[inside, expected], plain.loc[inside, expected])
    spread = (with_term.loc[beyond, "upper"] - with_term.loc[beyond, "lower"]).sum()
    assert spread > (plain.loc[beyond, "upper"] - plain.loc[beyond, "lower"]).sum()
    # within each task's floor and plateau, however wide
    assert (with_term["lower"] >= 0).all() and (with_term["upper"] <= 1).all()
    with pytest.warns(UserWarning, match="beyond the losses they were fitted on"):
        task_table(tasks, loss=[float(losses.min() - 1.5 * LINK_FAR * width)])
    back = load_downstream(tasks.save(tmp_path / "tasks.nc"))
    assert back.term is not None and back.term.to_dict() == term.to_dict()


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
