"""Learning-rate schedules: constructors, areas, the multipower2025 schedules reproduced, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_root

from bayes_scaling.schedules import Schedule, ScheduleError, multipower2025


def test_warmup_constant_and_area():
    s = Schedule.constant(1.0, 10, warmup=4)
    np.testing.assert_allclose(s.lr, [0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(s.area([0, 1, 4, 10]), [0, 0.25, 2.5, 8.5])
    np.testing.assert_allclose(s.at([0, 2, 10]), [0, 0.5, 1.0])
    assert s.steps == len(s) == 10 and s.peak == 1.0


def test_decays_run_from_the_peak_to_the_final_rate():
    for kind in ("cosine", "linear"):
        s = getattr(Schedule, kind)(2.0, 101, final=0.5, warmup=1)
        assert s.lr[0] == 2.0 and s.lr[-1] == pytest.approx(0.5) and np.all(np.diff(s.lr) <= 1e-15)
    geometric = Schedule.wsd(1.0, 20, decay_start=10, final=0.01, decay="geometric")
    np.testing.assert_allclose(geometric.lr[:10], 1.0)
    np.testing.assert_allclose(geometric.lr[10:], 0.01 ** (np.arange(1, 11) / 10))
    two = Schedule.two_stage(1.0, 10, switch=7, second=0.1)  # step 7 is the first at the second rate
    np.testing.assert_allclose(two.lr, [1] * 6 + [0.1] * 4)


def test_anneal_now_is_the_same_run_then_a_decay():
    base = Schedule.constant(1.0, 100, warmup=10)
    annealed = base.anneal(at=50, over=20, final=0.0)
    assert annealed.steps == 70
    np.testing.assert_array_equal(annealed.lr[:50], base.lr[:50])
    np.testing.assert_allclose(annealed.lr[50:], 1 - np.arange(1, 21) / 20)
    assert annealed.area(70) < base.area(70)


def test_from_points_interpolates_and_holds():
    s = Schedule.from_points([2, 4], [1.0, 0.5], last=6)
    np.testing.assert_allclose(s.lr, [0.5, 1.0, 0.75, 0.5, 0.5, 0.5])
    frame = pd.DataFrame({"step": [4, 2], "lr": [0.5, 1.0]})
    np.testing.assert_allclose(Schedule.from_column(frame).lr, s.lr[:4])


def test_clear_errors():
    s = Schedule.constant(1.0, 100)
    with pytest.raises(ScheduleError, match="covers steps 1-100; asked about step 150"):
        s.area([10, 150])
    with pytest.raises(ScheduleError, match="whole numbers"):
        s.at(1.5)
    with pytest.raises(ScheduleError, match="step 3 has"):
        Schedule.from_array([1.0, 1.0, np.nan])
    with pytest.raises(ScheduleError, match="geometric decay needs a positive final"):
        Schedule.wsd(1.0, 10, decay_start=5, final=0.0, decay="geometric")
    with pytest.raises(ScheduleError, match="unknown decay 'step'"):
        Schedule.wsd(1.0, 10, decay_start=5, decay="step")
    with pytest.raises(ScheduleError, match="warmup must be in"):
        Schedule.constant(1.0, 10, warmup=10)
    with pytest.raises(ScheduleError, match="increasing"):
        Schedule.from_points([3, 2], [1.0, 1.0])
    with pytest.raises(ScheduleError, match="column\\(s\\) 'lr' not in the table"):
        Schedule.from_column(pd.DataFrame({"step": [1]}))
    with pytest.raises(ScheduleError, match="positive number"):
        Schedule.constant(-1.0, 10)


def _multipower():
    root = shared_root() / "multipower2025" / "data.csv"
    if not root.is_file():
        pytest.skip("../shared/data/multipower2025 is not here")
    return pd.read_csv(root)


@pytest.mark.parametrize("name", sorted(multipower2025()))
def test_the_multipower2025_schedules_are_reproduced_at_every_logged_step(name):
    """The nine schedules of Luo et al. 2025, built by the constructors, give the logged learning rates."""
    data = _multipower()
    logged = data[(data["schedule"] == name) & (data["model"] == "25M")]
    assert len(logged) > 90
    schedule = multipower2025()[name]
    np.testing.assert_allclose(schedule.at(logged["step"].to_numpy()), logged["lr"].to_numpy(), rtol=1e-9)
