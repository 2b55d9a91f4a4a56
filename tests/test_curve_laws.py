"""Loss-curve laws: the vectorised expression against the formula step by step, numpy against PyTensor."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bayes_scaling.curve_laws import (
    CURVE_LAWS,
    brute_force,
    curve_inputs,
    get_curve_law,
    stack_inputs,
    unstack_inputs,
    with_pairs,
)
from bayes_scaling.schedules import Schedule

PARAMS = {"multipower": {"L0": 3.0, "A": 0.9, "alpha": 0.5, "B": 0.4, "C": 2.0, "beta": 0.6, "gamma": 0.6},
          "annealing": {"L0": 3.0, "A": 0.9, "alpha": 0.5, "C": 0.3, "lam": 0.99}}
SCHEDULES = {
    "cosine": Schedule.cosine(3e-4, 400, final=3e-5, warmup=40),
    "wsd": Schedule.wsd(3e-4, 400, decay_start=300, final=3e-5, decay="geometric", warmup=40),
    "two_stage": Schedule.two_stage(3e-4, 400, switch=200, second=9e-5, warmup=40),
}
STEPS = [1, 39, 40, 41, 120, 250, 300, 301, 350, 399, 400]


@pytest.mark.parametrize("law", sorted(CURVE_LAWS))
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_expression_is_the_formula_step_by_step(law, name):
    schedule = SCHEDULES[name]
    exact = curve_inputs(schedule, STEPS, max_terms=10_000)
    np.testing.assert_allclose(get_curve_law(law).loss(np, PARAMS[law], exact),
                               brute_force(law, PARAMS[law], schedule, STEPS), rtol=1e-10)
    # merged decay terms (cosine: 360 falling steps into 40 blocks) stay within 1e-4 of the loss
    merged = curve_inputs(schedule, STEPS, max_terms=40)
    assert merged.drop.size <= 40
    np.testing.assert_allclose(get_curve_law(law).loss(np, PARAMS[law], merged),
                               brute_force(law, PARAMS[law], schedule, STEPS), rtol=1e-4)


def test_a_constant_schedule_has_no_decay_terms_and_the_loss_falls_as_a_power_of_the_area():
    schedule = Schedule.constant(1e-3, 5000, warmup=100)
    x = curve_inputs(schedule, [1000, 2000, 4000])
    assert x.drop.size == 0
    p = PARAMS["multipower"]
    expected = p["L0"] + p["A"] * (schedule.area([1000, 2000, 4000]) / 1e-3 / 1000) ** -p["alpha"]
    np.testing.assert_allclose(get_curve_law("multipower").loss(np, p, x), expected)


def test_annealing_lowers_the_loss_and_draws_broadcast():
    base = Schedule.constant(3e-4, 3000, warmup=100)
    annealed = base.anneal(at=2000, over=500, final=3e-5)
    law = get_curve_law("multipower")
    steps = [2500]
    plain = law.loss(np, PARAMS["multipower"], curve_inputs(base, steps, peak=3e-4))
    cooled = law.loss(np, PARAMS["multipower"], curve_inputs(annealed, steps, peak=3e-4))
    assert cooled[0] < plain[0]
    draws = {k: np.full((5, 1), v) for k, v in PARAMS["multipower"].items()}
    out = law.loss(np, draws, curve_inputs(annealed, [1000, 2500], peak=3e-4))
    assert out.shape == (5, 2)
    np.testing.assert_allclose(out[0], law.loss(np, PARAMS["multipower"], curve_inputs(annealed, [1000, 2500],
                                                                                          peak=3e-4)))


@pytest.mark.parametrize("law", sorted(CURVE_LAWS))
def test_numpy_and_pytensor_agree(law):
    import pytensor.tensor as pt

    x = curve_inputs(SCHEDULES["cosine"], STEPS)
    symbols = {k: pt.dscalar(k) for k in PARAMS[law]}
    expression = get_curve_law(law).loss(pt, symbols, x)
    value = expression.eval({symbols[k]: v for k, v in PARAMS[law].items()})
    np.testing.assert_allclose(value, get_curve_law(law).loss(np, PARAMS[law], x), rtol=1e-12)


@pytest.mark.parametrize("law", sorted(CURVE_LAWS))
def test_runs_stacked_into_one_set_of_arrays_give_each_runs_loss(law):
    """A fit holds its runs' inputs as one set of arrays and evaluates the law on each run's slices (PyTensor)."""
    import pytensor.tensor as pt

    constant = Schedule.constant(3e-4, 400, warmup=40)  # no decay terms: the law's power part only
    parts = [curve_inputs(SCHEDULES["cosine"], STEPS, peak=3e-4), curve_inputs(constant, [50, 200], peak=3e-4),
             curve_inputs(SCHEDULES["wsd"], STEPS[3:], peak=3e-4)]
    stacked = stack_inputs(parts)
    assert stacked.since.shape == (len(STEPS) + 2 + len(STEPS) - 3, max(x.drop.size for x in parts))
    assert stacked.drop.shape == (3, stacked.since.shape[1])
    symbols = {name: pt.as_tensor(getattr(stacked, name)) for name in ("area", "drop", "rate", "since", "lag",
                                                                       "active")}
    runs = unstack_inputs(replace(stacked, **symbols), parts)
    assert runs[1].drop.size == 0  # numpy: the power part only
    for part, run in zip(parts, runs, strict=True):
        np.testing.assert_allclose(pt.as_tensor(get_curve_law(law).loss(pt, PARAMS[law], run)).eval(),
                                   get_curve_law(law).loss(np, PARAMS[law], part), rtol=1e-12)
    with pytest.raises(ValueError, match="share the unit of their rates"):
        stack_inputs([curve_inputs(SCHEDULES["cosine"], STEPS), curve_inputs(constant, [50], peak=1e-3)])


@pytest.mark.parametrize("law", sorted(CURVE_LAWS))
def test_active_pairs_give_the_dense_loss(law):
    """A fit's model sums only the active (step, term) pairs; the loss is the dense one (numpy with draws, PyTensor
    stacked runs)."""
    import pytensor.tensor as pt

    constant = Schedule.constant(3e-4, 400, warmup=40)
    parts = [curve_inputs(SCHEDULES["cosine"], STEPS, peak=3e-4), curve_inputs(constant, [50, 200], peak=3e-4),
             curve_inputs(SCHEDULES["wsd"], STEPS, peak=3e-4)]
    paired = [with_pairs(x) for x in parts]
    wsd = paired[2]
    assert wsd.pair_row.size == np.count_nonzero(wsd.active) < wsd.active.size  # a late decay: most entries skipped
    rng = np.random.default_rng(0)
    draws = {k: v * np.exp(rng.normal(0, 0.05, (5, 1))) for k, v in PARAMS[law].items()}
    for dense, sparse in zip(parts, paired, strict=True):
        expression = get_curve_law(law).loss
        np.testing.assert_allclose(expression(np, draws, sparse), expression(np, draws, dense), rtol=1e-12)
    order = np.random.default_rng(1).permutation(paired[0].pair_row.size)  # pairs in any order: the same sums
    shuffled = replace(paired[0], **{name: getattr(paired[0], name)[order]
                                     for name in ("pair_row", "pair_term", "pair_since", "pair_lag")})
    expression = get_curve_law(law).loss
    np.testing.assert_allclose(expression(np, draws, shuffled), expression(np, draws, parts[0]), rtol=1e-12)
    stacked = stack_inputs(paired)
    assert stacked.pair_row.size == sum(x.pair_row.size for x in paired)
    names = ("area", "drop", "rate", "pair_row", "pair_term", "pair_since", "pair_lag")
    runs = unstack_inputs(replace(stacked, **{name: pt.as_tensor(getattr(stacked, name)) for name in names}), paired)
    for part, run in zip(parts, runs, strict=True):
        np.testing.assert_allclose(pt.as_tensor(get_curve_law(law).loss(pt, PARAMS[law], run)).eval(),
                                   get_curve_law(law).loss(np, PARAMS[law], part), rtol=1e-12)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown curve law 'kaplan'"):
        get_curve_law("kaplan")
    with pytest.raises(ValueError, match="covers steps 1-400"):
        curve_inputs(SCHEDULES["cosine"], [500])
    with pytest.raises(ValueError, match="steps >= 1"):
        curve_inputs(SCHEDULES["cosine"], [0, 10])
