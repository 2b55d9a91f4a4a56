"""One BLAS thread for the package's small linear algebra (bayes_scaling.threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bayes_scaling.threads import BLAS_THREAD_VARIABLES, single_blas_environment


def _blas_threads(controller) -> list[int]:
    return [info["num_threads"] for info in controller.select(user_api="blas").info()]


def test_serial_blas_sets_one_thread_and_the_last_block_to_leave_restores_the_limits():
    import scipy.optimize  # noqa: F401  (SciPy's BLAS loaded before looking)
    from threadpoolctl import ThreadpoolController

    from bayes_scaling.threads import serial_blas

    controller = ThreadpoolController()
    if not _blas_threads(controller):
        pytest.skip("no BLAS library that threadpoolctl can see")
    with controller.limit(limits=2, user_api="blas"):  # two threads before, on any machine
        assert set(_blas_threads(controller)) == {2}
        # Two blocks that overlap without nesting (as two threads' fits do): A enters, B enters, A leaves, B leaves.
        a, b = serial_blas(), serial_blas()
        a.__enter__()
        assert set(_blas_threads(controller)) == {1}
        b.__enter__()
        a.__exit__(None, None, None)
        assert set(_blas_threads(controller)) == {1}  # B still runs: the limit holds
        b.__exit__(None, None, None)
        assert set(_blas_threads(controller)) == {2}  # restored by the last to leave
        with pytest.raises(ValueError), serial_blas():  # an error inside restores them too
            raise ValueError
        assert set(_blas_threads(controller)) == {2}


def test_single_blas_environment_respects_a_number_the_user_chose():
    empty: dict[str, str] = {"PATH": "/bin"}
    assert single_blas_environment(empty) is True
    assert all(empty[name] == "1" for name in BLAS_THREAD_VARIABLES) and empty["PATH"] == "/bin"
    chosen = {"OPENBLAS_NUM_THREADS": "4"}
    assert single_blas_environment(chosen) is False
    assert chosen == {"OPENBLAS_NUM_THREADS": "4"}


@pytest.mark.parametrize("user", [None, "2"])
def test_the_console_script_runs_on_one_blas_thread_unless_the_user_set_a_number(user):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    env["BAYES_SCALING_WORKER"] = "off"  # run here, not in a worker
    if user is not None:
        env["OPENBLAS_NUM_THREADS"] = user
    report = (
        "import scipy.optimize, json\n"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']))\n"
    )
    console = ("import sys\nsys.argv = ['bayes-scaling', 'laws']\nfrom bayes_scaling.console import console_main\n"
               "try:\n    console_main()\nexcept SystemExit:\n    pass\n")

    def threads(code: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                             check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    seen, untouched = threads(console + report), threads(report)  # the same process without the console script
    if not seen:
        pytest.skip("no BLAS library that threadpoolctl can see")
    if user is None:
        assert set(seen) == {1}
    else:  # the user's number (as the libraries apply it on this machine) is left alone
        assert seen == untouched
