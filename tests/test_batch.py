"""fit_many: per group x law x cutoff, serial = local processes = Dask for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.batch import fit_many

FAST = {"draws": 150, "tune": 200, "chains": 2}


def _data():
    demo = bs.load_demo()
    return demo.assign(mix=np.where(np.arange(len(demo)) % 2 == 0, "even", "odd"))


def _same(left, right) -> bool:
    """Draws agree to 1e-3 posterior sd.

    The seed of each task is fixed before anything runs, so serial, process and Dask runs follow the same NUTS
    trajectories; but each process compiles the log density anew (numba) and the floating-point rounding of
    its reductions may differ in the last bits, which a long trajectory can carry to ~1e-6 in a draw (seen in
    about one run in three under CPU load). A wrong seed or task order moves draws by a whole posterior sd,
    so 1e-3 sd separates the two cases with room on both sides.
    """
    if left.keys() != right.keys():
        return False
    for name, a in left.items():
        b = right[name]
        scale = max(float(np.std(a)), 1e-12)
        if a.shape != b.shape or not np.all(np.abs(a - b) <= 1e-3 * scale):
            return False
    return True


@pytest.fixture(scope="module")
def serial():
    return fit_many(_data(), by="mix", laws=["chinchilla", "compute"], seed=7, **FAST)


@pytest.fixture(scope="module")
def serial_compute(serial):
    """The compute law alone, serially (the tasks' seeds follow the task list; its model is compiled already).

    The process and Dask runs fit this one law: each worker process compiles what it fits, which is their time.
    """
    return fit_many(_data(), by="mix", laws=["compute"], seed=7, **FAST)


def test_tasks_and_table(serial):
    assert len(serial) == 4 and not serial.errors
    assert set(serial) == {(m, law, None) for m in ("even", "odd") for law in ("chinchilla", "compute")}
    assert len({t.seed for t in serial.tasks}) == 4  # each task its own seed
    table = serial.table(["alpha", "E"])
    assert list(table["mix"]) == ["even", "even", "odd", "odd"]
    chinchilla = table[table["law"] == "chinchilla"]
    assert ((chinchilla["alpha_lower"] < 0.3478) & (0.3478 < chinchilla["alpha_upper"])).all()
    assert (table["runs"] == 36).all()


def test_processes_match_serial(serial_compute):
    parallel = fit_many(_data(), by="mix", laws=["compute"], seed=7, processes=2, **FAST)
    assert len(parallel) == 2
    for key in serial_compute:
        assert _same(serial_compute[key].draws(), parallel[key].draws()), key


def test_dask_matches_serial(serial_compute):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = fit_many(_data(), by="mix", laws=["compute"], seed=7, client=client, **FAST)
    assert len(remote) == 2
    for key in serial_compute:
        assert _same(serial_compute[key].draws(), remote[key].draws()), key


def test_cutoffs_and_errors():
    data = _data()
    # 6 runs have N <= 1e8: too few for the 7 free parameters of chinchilla + Student-t noise
    kept = fit_many(data, laws="chinchilla", cutoffs=[3e9, 1e8], errors="keep", **FAST)
    assert len(kept[("chinchilla", 3e9)].sweep) == (data["N"] <= 3e9).sum() < len(data)
    assert list(kept.errors) == [("chinchilla", 1e8)] and "needs more runs" in kept.errors[("chinchilla", 1e8)]
    with pytest.raises(RuntimeError, match="1 of 2 fits failed"):
        fit_many(data, laws="chinchilla", cutoffs=[3e9, 1e8], **FAST)
    with pytest.raises(ValueError, match="unknown law"):
        fit_many(data, laws="chinchila")
    with pytest.raises(bs.DataError, match="by= names"):
        fit_many(data, by="dataset")
    with pytest.raises(ValueError, match="not both"):
        fit_many(data, processes=2, client=object())
