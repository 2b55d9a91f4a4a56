"""The command line's background worker: same answer as in-process, files published by the client, safe fallback."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

import bayes_scaling as bs
from bayes_scaling import worker
from bayes_scaling.cli import main

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="the worker needs Unix sockets")

SCRIPT = Path(sys.executable).parent / "bayes-scaling"
FIT = ["--draws", "200", "--tune", "300", "--chains", "2", "--seed", "3", "--json"]
TIMING = ("sampling_seconds", "fit_seconds", "seconds")


def _no_timings(value):
    """A JSON answer without its wall-clock fields (the only part that may differ between two equal fits)."""
    if isinstance(value, dict):
        return {k: _no_timings(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_no_timings(v) for v in value]
    return value


@pytest.fixture
def cache(monkeypatch):
    """A private cache folder for this test's worker (short: a socket's path has at most ~100 characters)."""
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="bsw-"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(where))
    monkeypatch.setenv(worker.ENV_SWITCH, "on")
    yield where
    shutil.rmtree(where)


def test_which_commands_go_to_the_worker(monkeypatch):
    monkeypatch.setenv(worker.ENV_SWITCH, "on")
    assert worker.routable(["fit", "runs.csv", "--json"])
    assert not worker.routable(["fit", "runs.csv", "--group", "dataset"])
    assert not worker.routable(["fit", "runs.csv", "--group=dataset"])
    assert not worker.routable(["fit", "--help"])
    assert not worker.routable(["fit", "runs.csv", "--progress"])
    assert not worker.routable(["forecast", "fit.nc", "--N", "1e9", "--D", "1e10"])
    assert worker.routable(["recipes", "runs.csv", "--by", "dataset", "--json"])
    assert worker.routable(["explain", "runs.csv", "--by", "setup"])
    assert not worker.routable(["recipes", "runs.csv", "--by", "dataset", "--plot", "m.png"])
    assert not worker.routable(["explain", "runs.csv", "--report=out"])
    assert not worker.routable([])
    assert worker.routable(["curve", "fit", "curves.csv", "--schedules", "multipower2025", "--out", "c.nc"])
    assert not worker.routable(["curve", "forecast", "c.nc", "--schedule", "cosine_24000"])
    assert not worker.routable(["curve", "fit", "curves.csv", "--progress"])
    assert not worker.routable(["curve"])
    monkeypatch.setenv(worker.ENV_SWITCH, "off")
    assert not worker.routable(["fit", "runs.csv"])
    monkeypatch.setenv(worker.ENV_IDLE, "soon")
    with pytest.raises(ValueError, match="BAYES_SCALING_WORKER_IDLE must be a number"):
        worker.idle_seconds()


@pytest.mark.skipif(not SCRIPT.exists(), reason="needs the installed console script")
def test_worker_fits_equal_in_process_fits_and_the_client_saves(tmp_path, cache, capsys):
    import subprocess

    if len(str(worker.socket_path())) > worker.MAX_SOCKET_PATH:
        pytest.skip("the temporary folder's path is too long for a Unix socket here")
    csv = tmp_path / "demo.csv"
    bs.load_demo().to_csv(csv, index=False)
    env = {**os.environ, worker.ENV_IDLE: "120"}

    def cli(*args):
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=300)

    try:
        first = cli("fit", "demo.csv", *FIT, "--out", "a.nc")
        assert first.returncode == 0, first.stderr
        second = cli("fit", "demo.csv", *FIT, "--out", "b.nc")
        assert second.returncode == 0, second.stderr
        state = json.loads(cli("worker", "status", "--json").stdout)
        assert state["running"] and state["served"] == 2  # both fits ran in one worker
        assert (tmp_path / "a.nc").is_file() and (tmp_path / "b.nc").is_file()
        # an existing --out is refused before any work (exit 2, one line), and left as it was
        before = (tmp_path / "a.nc").read_bytes()
        again = cli("fit", "demo.csv", *FIT, "--out", "a.nc")
        assert again.returncode == 2 and again.stderr.startswith("error: ") and "exists" in again.stderr
        assert (tmp_path / "a.nc").read_bytes() == before
        assert json.loads(cli("worker", "status", "--json").stdout)["served"] == 3
        stopped = cli("worker", "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
    finally:
        cli("worker", "stop")
    assert not list((cache / "bayes_scaling" / "worker").glob("*.sock"))  # the worker removed its socket
    assert not list((cache / "bayes_scaling" / "worker").glob("scratch-*"))  # and its scratch folder

    os.environ[worker.ENV_SWITCH] = "off"
    assert main(["fit", str(csv), *FIT, "--out", str(tmp_path / "local.nc")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert _no_timings(json.loads(first.stdout)) == _no_timings(local)  # same seed, same draws
    assert _no_timings(json.loads(second.stdout)) == _no_timings(local)
    remote, here = bs.load(tmp_path / "b.nc"), bs.load(tmp_path / "local.nc")
    for name in ("E", "alpha", "beta"):
        assert (remote.idata.posterior[name].values == here.idata.posterior[name].values).all()


def test_a_worker_that_dies_mid_request_hands_the_command_back(tmp_path, cache, capsys):
    """A worker that closes the connection without answering: the client says so and runs the command itself."""
    worker._private_folder()
    path = worker.socket_path()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def crash():
        conn, _ = listener.accept()
        conn.recv(1 << 16)
        conn.close()

    thread = threading.Thread(target=crash)
    thread.start()
    try:
        out = tmp_path / "fit.nc"
        assert worker.run_remote(["fit", "demo.csv", "--out", str(out)]) is None
    finally:
        thread.join(5)
        listener.close()
        path.unlink()
    assert "the background worker stopped" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written: the caller's own run saves it


def test_a_folder_others_can_open_is_never_used(tmp_path, cache):
    where = worker.folder()
    where.mkdir(parents=True)
    where.chmod(0o755)
    assert worker.run_remote(["fit", "demo.csv"]) is None  # runs in-process; no worker started there
    assert list(where.iterdir()) == []


def test_an_idle_worker_ends_and_removes_its_socket(cache):
    worker._private_folder()
    path = worker.socket_path()
    assert worker.serve(path, main, idle=0.2) == 0
    assert list(path.parent.iterdir()) == []


def test_a_worker_that_fails_hands_the_command_back_and_keeps_serving(cache, capsys):
    """An exception in the worker (not a command's error, which it reports as the CLI would) makes the client run
    the command itself; the worker stays up for the next one."""
    calls = []

    def run(argv, *, save_to, saved):
        calls.append(list(argv))
        if len(calls) == 1:
            raise RuntimeError("compiled model lost")
        print("fine")
        return 0

    worker._private_folder()
    path = worker.socket_path()
    server = threading.Thread(target=worker.serve, args=(path, run), kwargs={"idle": 3.0})
    server.start()
    try:
        for _ in range(100):  # wait for the socket
            if path.exists():
                break
            threading.Event().wait(0.02)
        assert worker.run_remote(["fit", "a.csv"]) is None
        assert "the background worker failed (RuntimeError: compiled model lost)" in capsys.readouterr().err
        assert worker.run_remote(["fit", "b.csv"]) == 0
        assert capsys.readouterr().out == "fine\n"
        assert calls == [["fit", "a.csv"], ["fit", "b.csv"]]
    finally:
        worker.stop()
        server.join(10)
    assert not path.exists()
