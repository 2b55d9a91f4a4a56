"""Fault cases of a fresh clone (issue 26): inputs never overwritten, special files never replaced, forged report
markers trusted for nothing, wrong units caught, everything checkable checked before the work, honest scatter.

Sampling is avoided wherever the case is about what happens before it (the fitting function is replaced by one
that fails the test if called).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import chinchilla_like

import bayes_scaling as bs
from bayes_scaling import fitting, outputs, workflows
from bayes_scaling.cli import main
from bayes_scaling.data import DataError, load_sweep
from bayes_scaling.datasets import demo_path
from bayes_scaling.inference import Sampling

FAST = ["--draws", "60", "--tune", "60", "--chains", "2", "--seed", "3"]


def _never(*args, **kwargs):
    raise AssertionError("no fitting may start: the input should have been refused first")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working folder with the sweep and a priors file; no fitting may start."""
    (tmp_path / "sweep.csv").write_bytes(demo_path().read_bytes())
    (tmp_path / "priors.json").write_text(json.dumps({"alpha": {"dist": "LogNormal", "mu": -1.1, "sigma": 0.5}}))
    monkeypatch.chdir(tmp_path)
    import bayes_scaling.recipes

    for module, target in ((fitting, "fit"), (workflows, "fit"), (workflows, "compare_hypotheses"),
                           (workflows, "make_report"), (workflows, "explain"),
                           (bayes_scaling.recipes, "compare_recipes")):
        # keep the signature: the command line reads its defaults from it
        monkeypatch.setattr(module, target, functools.wraps(getattr(module, target))(lambda *a, **k: _never()))
    return tmp_path


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- never overwrite an input
@pytest.mark.parametrize("out", ["sweep.csv", "priors.json", "link.nc"])
def test_out_that_is_an_input_is_refused_even_with_force(work, capsys, out):
    (work / "link.nc").symlink_to(work / "sweep.csv")
    before = (work / "sweep.csv").read_bytes(), (work / "priors.json").read_bytes()
    assert main(["fit", "sweep.csv", "--priors", "priors.json", "--out", out, "--force", *FAST]) == 2
    assert "is the input" in _error(capsys)
    assert ((work / "sweep.csv").read_bytes(), (work / "priors.json").read_bytes()) == before


def test_forecast_and_fit_downstream_outputs_are_never_their_inputs(work, capsys):
    # a hard link is the same file under another name
    os.link(work / "sweep.csv", work / "hard.csv")
    assert main(["fit-downstream", "sweep.csv", "--metric", "loss", "--out", "hard.csv", "--force"]) == 2
    assert "is the input" in _error(capsys)
    assert main(["datasets", "chinchilla_epoch", "--path", "sweep.csv", "--out", "sweep.csv", "--force"]) == 2
    assert "is the input" in _error(capsys)


# ---------------------------------------------------------------- special files are never replaced
def test_fifo_and_device_outputs_are_refused_with_and_without_force(work, capsys):
    fifo = work / "pipe"
    os.mkfifo(fifo)
    for force in ([], ["--force"]):
        for out in (str(fifo), os.devnull):
            assert main(["fit", "sweep.csv", "--out", out, *force, *FAST]) == 2
            assert "not a regular file" in _error(capsys)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_dangling_symlink_out_is_refused_before_sampling_with_the_right_message(work, capsys):
    (work / "dangling.nc").symlink_to(work / "nowhere" / "x.nc")
    assert main(["fit", "sweep.csv", "--out", "dangling.nc", *FAST]) == 2
    err = _error(capsys)
    assert "symbolic link to a missing file" in err and "another process" not in err


def test_out_in_a_folder_where_nothing_can_be_created_is_refused_before_sampling(work, capsys):
    assert main(["fit", "sweep.csv", "--out", "/proc/x.nc", *FAST]) == 2
    assert "cannot create files in folder /proc" in _error(capsys)


def test_a_symlink_to_a_fit_is_replaced_through_the_link(tmp_path):
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old")
    link.symlink_to(real)
    outputs.write_file(link, lambda tmp: Path(tmp).write_text("new"), overwrite=True)
    assert link.is_symlink() and real.read_text() == "new"


# ---------------------------------------------------------------- forged report markers
def test_forged_marker_deletes_nothing_and_names_what_it_leaves(work, capsys):
    report = work / "report"
    report.mkdir()
    (report / "notes.txt").write_text("mine")
    (report / "sub").mkdir()
    (report / "fit.png").symlink_to(work / "sweep.csv")  # a link under a report name is not a report file either
    (report / outputs.REPORT_MARKER).write_text(json.dumps({"files": ["notes.txt", "sub", "fit.png"]}))
    assert main(["report", "sweep.csv", "--out", "report", "--force", *FAST]) == 2
    err = _error(capsys)
    assert "notes.txt" in err and "sub" in err and "fit.png" in err
    assert (report / "notes.txt").read_text() == "mine" and (report / "sub").is_dir()
    assert (work / "sweep.csv").read_bytes() == demo_path().read_bytes()

    def fill(folder):
        (folder / "index.html").write_text("x")
        return ["index.html"]

    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        outputs.publish_folder(report, fill, overwrite=True)
    assert (report / "notes.txt").read_text() == "mine"


def test_report_files_outside_the_format_are_never_published(tmp_path):
    def fill(folder):
        (folder / "notes.txt").write_text("x")
        return ["notes.txt"]

    with pytest.raises(ValueError, match=r"not in outputs\.REPORT_FILES"):
        outputs.publish_folder(tmp_path / "report", fill)
    assert list(tmp_path.iterdir()) == []


def test_written_files_and_report_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = outputs.write_file(tmp_path / "f.csv", lambda tmp: Path(tmp).write_text("x"))
        outputs.publish_folder(tmp_path / "r", lambda folder: (folder / "index.html").write_text("x") and
                               ["index.html"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "r" / "index.html").stat().st_mode) == 0o644


# ---------------------------------------------------------------- units: bits and scores that rise with scale
def test_loss_in_bits_is_caught_with_the_fixing_option(work, capsys):
    nats = chinchilla_like()
    bits = nats.assign(loss=nats["loss"] / math.log(2))
    with pytest.raises(DataError, match=r"looks like it is in bits.*--loss-units bits"):
        load_sweep(bits)
    np.testing.assert_allclose(load_sweep(bits, loss_units="bits").column("loss"), nats["loss"])
    bits.to_csv("bits.csv", index=False)
    assert main(["fit", "bits.csv", *FAST]) == 2
    assert "--loss-units bits" in _error(capsys)
    assert len(load_sweep(bits, check_units=False)) == len(bits)


@pytest.mark.parametrize("score", ["accuracy", "rises_with_d"])
def test_a_score_that_rises_with_scale_is_not_a_loss(score):
    frame = chinchilla_like()
    if score == "accuracy":
        frame = frame.assign(loss=1 - 0.25 * frame["loss"])  # an accuracy, higher for larger runs
    else:
        frame = frame.assign(loss=frame["loss"] * (frame["D"] / frame["D"].min()) ** 0.3)
    with pytest.raises(DataError, match=r"rises with .*accuracy or another score.*--no-unit-check"):
        load_sweep(frame)
    assert len(load_sweep(frame, check_units=False)) == len(frame)
    assert len(load_sweep(chinchilla_like())) == 24  # the loss itself passes


# ---------------------------------------------------------------- seeds, law inputs, names: before any work
@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5", "x"])
def test_bad_seeds_are_usage_errors(work, capsys, seed):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "sweep.csv", "--seed", seed])
    assert exc.value.code == 2 and "is not a seed" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seed must be a whole number from 0 to 4294967295"):
        Sampling(seed=int(seed) if seed.lstrip("-").isdigit() else 1.5)


def test_largest_seed_is_accepted():
    assert Sampling(seed=2**32 - 1).seed == 2**32 - 1


def test_inputs_a_law_does_not_use_are_refused(demo_fit, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"law 'chinchilla' uses N, D; experts is not among its inputs"):
        demo_fit.forecast(N=1e9, D=2e10, experts=8)
    path = demo_fit.save(tmp_path / "fit.nc")
    assert main(["forecast", str(path), "--N", "1e9", "--D", "2e10", "--experts", "8"]) == 2
    assert "not among its inputs" in _error(capsys)
    assert main(["forecast", str(path), "--N", "1e9", "--D", "2e10", "--C", "1e20"]) == 2
    assert "C is not among its inputs" in _error(capsys)
    params = bs.fit(bs.load_demo(), law="params", draws=60, tune=60, chains=1, seed=1, warn=False,
                    extrapolation="none")
    with pytest.raises(ValueError, match=r"law 'params' uses N; D is not among its inputs"):
        params.forecast(N=1e9, D=2e10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "sweep.csv", "--laws", "chinchilla,nope"], "unknown law 'nope'"),
        (["compare", "sweep.csv", "--region", "import os"], "cannot read region 'import os'"),
        (["report", "sweep.csv", "--laws", "chinchilla,nope", "--out", "r"], "unknown law 'nope'"),
        (["recipes", "sweep.csv", "--by", "mix", "--plot", "p.txt"], "a figure file needs one of the suffixes"),
        (["recipes", "sweep.csv", "--by", "mix", "--report", "."], "--report . is the working folder"),
        (["explain", "sweep.csv", "--report", "priors.json"], "is a file, not a folder; choose another --report"),
    ],
)
def test_names_regions_formats_and_folders_are_checked_before_sampling(work, capsys, args, message):
    assert main([*args, *FAST]) == 2
    assert message in _error(capsys)


# ---------------------------------------------------------------- scatter: a scale and a quantile spread
def test_scatter_is_a_scale_and_a_central_68_percent_half_width(demo_fit):
    table = demo_fit.forecast(N=[1e9, 1e11], D=[2e10, 2e12])
    assert "sd_scatter" not in table.columns
    sigma = np.median(demo_fit.draws(["sigma"])["sigma"])
    np.testing.assert_allclose(table["scatter_scale"], sigma)
    nu = np.median(demo_fit.draws(["nu"])["nu"])
    # a Student-t's central 68% is at least as wide as its scale, and finite for any nu
    assert (table["scatter_68"] >= 0.95 * sigma).all() and np.isfinite(table["scatter_68"]).all(), nu


def test_scatter_68_exists_when_the_student_t_has_no_variance(demo_fit):
    from bayes_scaling.forecast import loss_draws, points_frame

    heavy = demo_fit.draws(["nu"])
    assert heavy["nu"].size > 0
    draws = dict(demo_fit.draws(demo_fit.noise_names))
    draws["nu"] = np.full_like(draws["nu"], 1.6)  # no variance: an sd would be a different number every time
    from bayes_scaling.likelihoods import get_noise_model

    rng = np.random.default_rng(0)
    a = get_noise_model("student_t").sample(rng, draws, (draws["nu"].size, 2000))
    b = get_noise_model("student_t").sample(np.random.default_rng(1), draws, (draws["nu"].size, 2000))
    half = [np.subtract(*np.quantile(x, [0.8413, 0.1587])) / 2 for x in (a, b)]
    assert abs(half[0] - half[1]) < 0.05 * half[0]  # the quantile spread is stable across seeds
    assert loss_draws(demo_fit, points_frame(N=1e9, D=2e10))["scatter_68"].shape == (1,)


# ---------------------------------------------------------------- command-line manners
def test_warnings_print_as_one_line(work, capsys, monkeypatch):
    frame = pd.read_csv("sweep.csv")
    pd.concat([frame, frame.iloc[[0]]]).to_csv("dup.csv", index=False)
    monkeypatch.setattr(fitting, "fit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["fit", "dup.csv", *FAST]) == 130
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "repeat earlier rows" in x)
    assert line.startswith("warning: ") and "bayes_scaling/cli" not in err and "DataWarning" not in err


def test_a_first_line_on_a_terminal_before_the_slow_part(work, monkeypatch):
    tty = type("Tty", (io.StringIO,), {"isatty": lambda self: True})()
    monkeypatch.setattr("sys.stderr", tty)
    monkeypatch.setattr(fitting, "fit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["fit", "sweep.csv", *FAST]) == 130
    assert tty.getvalue().startswith(f"fitting {len(load_sweep('sweep.csv'))} runs with chinchilla")


def test_recipe_verdict_says_never_in_words():
    from bayes_scaling.recipes import _compute_clause

    assert "never reaches B's loss at any compute" in _compute_clause("A", "B", math.inf, math.inf, math.inf, "90%")
    assert "most likely never" in _compute_clause("A", "B", math.inf, 2.0, math.inf, "90%")
    text = _compute_clause("A", "B", 3.0, 2.0, math.inf, "90%")
    assert "3x the compute (2x to never in some draws)" in text and "never (never" not in text


# ---------------------------------------------------------------- a damaged saved fit is detected
def test_random_bytes_inside_a_saved_fit_are_detected(demo_fit, tmp_path):
    path = demo_fit.save(tmp_path / "fit.nc")
    assert bs.load(path).summary().equals(demo_fit.summary())
    data = bytearray(path.read_bytes())
    alpha = np.ascontiguousarray(demo_fit.idata["posterior"]["alpha"].values).tobytes()
    start = data.find(alpha[:64])
    assert start > 0  # the draws are stored uncompressed
    data[start:start + 64] = np.random.default_rng(0).bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(bs.FitFileError, match="is damaged"):
        bs.load(path)
