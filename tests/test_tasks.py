"""Pooled task links (many benchmark errors at once): recovery, tables, CLI, the extrapolation term."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs

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
    assert tasks.info["mass_matrix_update"] == 50  # TASK_SAMPLING's, kept with sampling options that do not set it
    assert list(tasks.chance) == [t[0] for t in TASK_TRUTH.values()]  # from the random_<metric> columns
    # 99%: in this data set the true leaving losses of err_b and err_c lie at the 2.5% tails of both ways of
    # sampling the widths (a 95% check of three tasks misses 14% of the time even when calibrated)
    summary = tasks.summary(prob=0.99)
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


def test_a_chain_stuck_far_below_the_others_is_found():
    """stuck_chains: a chain whose log density sits far below the others' (a trap, not a mode), never chance."""
    import xarray as xr

    from bayes_scaling.inference import STUCK_CHAIN_SDS, stuck_chains

    def tree(logp: np.ndarray) -> xr.DataTree:
        stats = xr.Dataset({"logp": (("chain", "draw"), logp)})
        return xr.DataTree.from_dict({"posterior": xr.Dataset({"x": (("chain", "draw"), np.zeros_like(logp))}),
                                      "sample_stats": stats})

    rng = np.random.default_rng(0)
    healthy = 3738 + 11 * rng.standard_normal((4, 1000))  # four chains of one posterior (sd of the log density 11)
    assert stuck_chains(tree(healthy)) == []
    trapped = healthy.copy()
    trapped[2] = 3398 + 0.5 * rng.standard_normal(1000)  # measured: 340 nats below, barely moving
    assert stuck_chains(tree(trapped)) == [2]
    near = healthy.copy()
    near[1] += 0.5 * STUCK_CHAIN_SDS * 11  # far for a chain mean, yet within the rule's margin
    assert stuck_chains(tree(near)) == []
    assert stuck_chains(tree(trapped[:1])) == []  # one chain: nothing to compare with
    assert stuck_chains(xr.DataTree.from_dict({"posterior": xr.Dataset({"x": (("chain", "draw"), healthy)})})) == []


def test_a_task_fit_with_a_stuck_chain_samples_again_from_the_next_seed(monkeypatch):
    """fit_tasks: when a chain is stuck, the fit is the next seed's, and says so in info["restart"]."""
    from bayes_scaling import downstream, inference

    data, settings = _task_data(np.random.default_rng(5)), {"draws": 150, "tune": 200, "chains": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = downstream.fit_tasks(data, list(TASK_TRUTH), seed=8, extrapolation=False, **settings)
        monkeypatch.setattr(inference, "stuck_chains", lambda idata: [1])
        restarted = downstream.fit_tasks(data, list(TASK_TRUTH), seed=7, extrapolation=False, **settings)
    assert restarted.info["restart"] == {"stuck_chains": [1], "seed": 8} and "restart" not in direct.info
    np.testing.assert_array_equal(restarted.draws()["width"], direct.draws()["width"])


def test_rising_tasks_choose_the_width_geometry_not_the_model():
    """Tasks whose rise the data trace are found; the choice changes the sampling variables, not the log density."""
    from bayes_scaling.downstream import _rising_tasks, _task_model

    data = _task_data(np.random.default_rng(5))
    metrics = list(TASK_TRUTH)
    loss, y = data["loss"].to_numpy(), data[metrics].to_numpy()
    chance = np.array([t[0] for t in TASK_TRUTH.values()])
    items = np.array([t[-1] for t in TASK_TRUTH.values()], float)
    rising = _rising_tasks(loss, y, items)
    assert rising.tolist() == [True, True, True, False]  # err_d never leaves chance
    assert not _rising_tasks(np.full(5, 3.0), np.full((5, 2), 0.5), np.array([100.0, 100.0])).any()
    # the same point in both geometries: log widths set directly (centred) or through z (non-centred)
    log_w = np.log([0.35, 0.3, 0.3, 0.35])
    values = []
    for flags in (rising, np.zeros(4, bool)):
        model = _task_model(metrics, loss, y, chance, items, flags)
        point = model.initial_point()
        mu, tau = 0.1, 0.7
        point["mu_logwidth"], point["tau_logwidth_log__"] = mu, np.log(tau)
        if flags.any():
            point["logwidth_rising"] = log_w[flags]
        point["z_width"] = (log_w[~flags] - mu) / tau
        [width_of_values] = model.replace_rvs_by_values([model["width"]])
        width = model.compile_fn(width_of_values, inputs=model.value_vars, on_unused_input="ignore")(point)
        np.testing.assert_allclose(width, np.exp(log_w))
        values.append(model.compile_logp(jacobian=True)(point))
    # the log densities differ by the Jacobian of z -> log w of the centred tasks, log(tau) each
    assert values[0] - values[1] == pytest.approx(-rising.sum() * np.log(0.7))


def test_cli_draws_default_to_more_for_a_pooled_fit(tmp_path, monkeypatch, capsys):
    import inspect

    from bayes_scaling import downstream
    from bayes_scaling.cli import main

    asked = []
    form = inspect.signature(downstream.fit_downstream).parameters["form"].default

    def record(*args, sampling=None, form=form, **options):  # the parser reads fit_downstream's default form
        asked.append(sampling.draws)
        raise ValueError("recorded")  # stop before fitting: the command reports it and exits 2

    monkeypatch.setattr(downstream, "fit_tasks", record)
    monkeypatch.setattr(downstream, "fit_downstream", record)
    data = tmp_path / "evals.csv"
    frame = _task_data(np.random.default_rng(4), n=10)
    frame.assign(N=np.geomspace(1e7, 1e9, len(frame)), D=np.geomspace(2e8, 2e10, len(frame))).to_csv(data, index=False)
    for extra in ([], ["--draws", "300"]):
        assert main(["fit-downstream", str(data), "--metric", "err_*", *extra]) == 2
        assert main(["fit-downstream", str(data), "--metric", "err_a", *extra]) == 2
    assert capsys.readouterr().err.count("error: recorded") == 4
    assert asked == [downstream.TASK_SAMPLING.draws, bs.Sampling().draws, 300, 300] == [2000, 1000, 300, 300]
