"""One predictive engine: the same (N, D) question gets the same loss interval through every command."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling import intervals, planning
from bayes_scaling.design import suggest_runs
from bayes_scaling.forecast import points_frame
from bayes_scaling.predictive import PARTS, pair_draws, predict


def _close(a: tuple[float, float], b: tuple[float, float], tolerance: float = 0.12) -> None:
    """Two intervals agree within Monte Carlo error: bounds within ``tolerance`` of the wider one's width."""
    width = max(a[1] - a[0], b[1] - b[0])
    assert abs(a[0] - b[0]) < tolerance * width and abs(a[1] - b[1]) < tolerance * width, (a, b)


def _budget(fit: bs.Fit, times: float) -> float:
    return float(times * fit.sweep.column("C").max())


def test_parts_add_up_and_have_chain_draw_point_dims(demo_fit):
    points = points_frame(N=[1e8, 1e11], D=[2e9, 2e12])
    draws = predict(demo_fit, points, seed=3)
    np.testing.assert_allclose(draws.expected, draws.mean + draws.extrapolation)
    np.testing.assert_allclose(draws.total, draws.expected + draws.scatter)
    assert draws.distance[0] == 0 and draws.distance[1] > 0  # inside the sweep, then beyond it
    assert not draws.extrapolation[:, 0].any() and draws.extrapolation[:, 1].std() > 0
    data = draws.to_dataset()
    assert set(PARTS) <= set(data.data_vars) and data["total"].dims == ("chain", "draw", "point")
    assert data.sizes["chain"] == demo_fit.idata["posterior"].sizes["chain"]
    again = predict(demo_fit, points, seed=3)
    np.testing.assert_array_equal(again.total, draws.total)  # seeded
    shared = np.random.default_rng(0).standard_normal(draws.mean.shape[0])
    a, b = (predict(demo_fit, points, seed=s, z=shared) for s in (1, 1))
    np.testing.assert_array_equal(a.extrapolation, b.extrapolation)
    with pytest.raises(ValueError, match="part must be"):
        draws.loss("scatter")


def test_same_question_same_interval_through_every_command(demo_fit):
    """Forecast, plan compute at the plan's own N and D, suggest_runs' starting interval and chain's loss."""
    budget = _budget(demo_fit, 3.0)
    plan = planning.compute_optimal(demo_fit, budget, prob=0.9).iloc[0]
    n, d = float(plan["N_opt"]), float(plan["D_opt"])
    forecast = demo_fit.forecast(N=n, D=d, prob=0.9).iloc[0]
    assert forecast["decades_out"] > 0  # beyond the sweep, where the extrapolation term matters
    _close((plan["loss_lower"], plan["loss_upper"]), (forecast["lower"], forecast["upper"]))
    _close((plan["loss_pred_lower"], plan["loss_pred_upper"]), (forecast["pred_lower"], forecast["pred_upper"]))
    suggestion = suggest_runs(demo_fit, 1e18, {"N": n, "D": d}, prob=0.9, scenarios=16, random_designs=1)
    _close((suggestion.before["lower"], suggestion.before["upper"]), (forecast["lower"], forecast["upper"]))
    # tokens_for_model's loss is at each draw's own D_opt for this N (another question: D_opt is uncertain too),
    # but it carries the same extrapolation term as a forecast there
    tokens = planning.tokens_for_model(demo_fit, n, prob=0.9).iloc[0]
    at = demo_fit.forecast(N=n, D=tokens["D_opt"], prob=0.9).iloc[0]
    assert tokens["loss_at_D_opt_sd_extrapolation"] == pytest.approx(at["sd_extrapolation"], rel=0.1)


def test_chain_loss_columns_are_the_forecast_of_a_new_run(demo_fit):
    from bayes_scaling.downstream import DownstreamFit, chain

    class Link:  # the loss side of chain needs only a link's draws and mean
        metric, chance, reference = "err", 0.75, 3.0
        data = pd.DataFrame({"loss": [1.5, 4.0]})  # the losses the link was fitted on (for the distance)
        link = type("L", (), {"mean": staticmethod(lambda xp, p, loss, chance, ref: 0.5 + 0 * loss)})()
        items = 1000

        def draws(self):
            return {"a": np.zeros(400)}

        predict = DownstreamFit.predict

    table = chain(demo_fit, Link(), N=[1e9, 5e10], D=[2e10, 1e12], prob=0.9, seed=4)
    forecast = demo_fit.forecast(N=[1e9, 5e10], D=[2e10, 1e12], prob=0.9, seed=4)
    np.testing.assert_allclose(table["loss_pred_lower"], forecast["pred_lower"])
    np.testing.assert_allclose(table["loss_pred_upper"], forecast["pred_upper"])


def test_a_plan_far_beyond_the_sweep_is_as_wide_as_the_forecast_there(demo_fit):
    """Before the engine, plans had no extrapolation term: at 10x the largest budget they were far narrower."""
    plan = planning.compute_optimal(demo_fit, _budget(demo_fit, 10.0)).iloc[0]
    forecast = demo_fit.forecast(N=plan["N_opt"], D=plan["D_opt"]).iloc[0]
    plan_width, forecast_width = plan["loss_upper"] - plan["loss_lower"], forecast["upper"] - forecast["lower"]
    assert 0.85 < plan_width / forecast_width < 1.15, (plan_width, forecast_width)
    law_only = planning.LawDraws(demo_fit)
    log_n = np.log(planning.optimal_n_draws(demo_fit, _budget(demo_fit, 10.0)))
    mean = law_only.loss(log_n[:, None], np.log(_budget(demo_fit, 10.0) / 6) - log_n[:, None])[:, 0]
    low, high = intervals.equal_tailed(mean, 0.9)
    # the law's mean alone (the old plan) is narrower; on this synthetic sweep (the law is the truth) the term is
    # small; on the real Chinchilla sweep at its 5.76e23 FLOPs the widths are 0.026 against 0.134
    assert high - low < plan_width and plan["loss_sd_extrapolation"] > 0


def test_gain_and_overtrain_carry_the_extrapolation_term(demo_fit):
    near = planning.gain(demo_fit, (1e8, 2e9), (2e8, 4e9)).iloc[0]
    far = planning.gain(demo_fit, (1e8, 2e9), (1e11, 2e12)).iloc[0]
    assert near["gain_upper"] - near["gain_lower"] < far["gain_upper"] - far["gain_lower"]
    assert far["loss_end_pred_lower"] < far["loss_end_lower"] < far["loss_end_upper"] < far["loss_end_pred_upper"]
    target = float(demo_fit.forecast(N=3e10, D=6e11)["median"].iloc[0])
    answer = planning.overtrain(demo_fit, target, 1e12).iloc[0]
    assert answer["decades_out"] > 0 and answer["N_lower"] < answer["N"] < answer["N_upper"]


def test_one_interval_default_settable_once(demo_fit, monkeypatch):
    monkeypatch.setitem(intervals.rc, "prob", 0.5)
    narrow = planning.compute_optimal(demo_fit, 1e21).iloc[0]
    monkeypatch.setitem(intervals.rc, "prob", 0.9)
    wide = planning.compute_optimal(demo_fit, 1e21).iloc[0]
    assert wide["loss_upper"] - wide["loss_lower"] > narrow["loss_upper"] - narrow["loss_lower"]
    for bad in (0, 1, 1.5, "x"):
        with pytest.raises(ValueError, match="prob must be"):
            intervals.check_prob(bad)
    assert intervals.tails(0.9) == pytest.approx((0.05, 0.95))


def test_pair_draws_pairs_each_loss_draw_with_one_link_draw():
    rng = np.random.default_rng(0)
    few = pair_draws({"a": np.arange(10.0)}, 25, rng)["a"]
    many = pair_draws({"a": np.arange(100.0)}, 25, rng)["a"]
    assert few.shape == many.shape == (25,) and len(np.unique(many)) == 25
    assert set(np.unique(few)) <= set(range(10))
    assert isinstance(pd.DataFrame(many), pd.DataFrame)


def test_results_share_one_protocol_and_one_loader(demo_fit, tmp_path):
    suggestion = suggest_runs(demo_fit, 1e19, {"N": 3e10, "D": 6e11}, scenarios=8, random_designs=1)
    assert isinstance(suggestion, bs.results.Result)
    assert suggestion.summary().equals(suggestion.runs) and suggestion.diagnostics() is None
    path = suggestion.save(tmp_path / "next.json")
    with pytest.raises(FileExistsError):
        suggestion.save(path)
    back = bs.load(path)
    assert back.kind == "suggestion" and back["sentence"] == suggestion.sentence()
    assert isinstance(bs.load(demo_fit.save(tmp_path / "fit.nc")), bs.Fit)
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(bs.FitFileError, match="not a saved bayes_scaling result"):
        bs.load(tmp_path / "other.json")


BOUND = re.compile(r"^(?:.+_)?(?:pred_)?(?:lower|upper)$")


def test_every_table_states_its_interval_and_uses_one_bound_scheme(demo_fit):
    """Parameter table, forecast, bands, plans and exponents: equal-tailed, stated, bounds named one way."""
    from bayes_scaling.comparison import exponent_summary
    from bayes_scaling.forecast import band_table

    tables = {"summary": demo_fit.summary(0.8), "forecast": demo_fit.forecast(N=1e10, D=2e11, prob=0.8),
              "plan": planning.compute_optimal(demo_fit, 1e21, prob=0.8),
              "exponents": exponent_summary(demo_fit, prob=0.8),
              "bands": band_table(demo_fit, pd.DataFrame({"N": [1e9], "D": [2e10]}), probs=(0.5, 0.8))}
    for name, table in tables.items():
        assert isinstance(table, intervals.IntervalTable), name
        stated = table.attrs["interval"]
        assert stated["kind"] == "equal-tailed" and stated["prob"] == (None if name == "bands" else 0.8), name
        assert "intervals: equal-tailed" in repr(table), name
        bounds = [c for c in table.columns if re.search(r"(low|high|upper|q\d\d)(_|$)", str(c))]
        assert bounds and all(BOUND.match(c) for c in bounds), (name, bounds)
    # the parameter table is equal-tailed now: its bounds are the draws' 10% and 90% quantiles
    alpha = demo_fit.draws(["alpha"])["alpha"]
    assert tables["summary"].loc["alpha", ["lower", "upper"]].tolist() == pytest.approx(
        np.quantile(alpha, [0.1, 0.9]), rel=1e-6)
    assert demo_fit.to_dict(0.8)["interval"] == {"kind": "equal-tailed", "prob": 0.8}
    payload = tables["forecast"].to_payload()
    assert payload["interval"]["prob"] == 0.8 and payload["rows"][0]["pred_lower"] < payload["rows"][0]["lower"]


def test_old_bound_names_still_read_with_a_deprecation_warning(demo_fit):
    summary = demo_fit.summary()
    with pytest.warns(DeprecationWarning, match="'hdi_low' is now 'lower'"):
        assert summary["hdi_low"].equals(summary["lower"])
    with pytest.warns(DeprecationWarning):
        assert summary[["mean", "hdi_high"]]["upper"].equals(summary["upper"])
    plan = planning.compute_optimal(demo_fit, 1e21)
    with pytest.warns(DeprecationWarning, match="'N_opt_low' is now 'N_opt_lower'"):
        assert plan["N_opt_low"].iloc[0] == plan["N_opt_lower"].iloc[0]
    with pytest.raises(KeyError):
        plan["no_such_column"]
