"""Public dataset loaders: the shared copies, conversion of source files, cache, checksums, errors.

Nothing here touches the network: downloads are served from the shared copies by replacing the one
function that fetches bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_root

import bayes_scaling as bs
from bayes_scaling.datasets import CATALOG, DatasetError, available, fetch, info, load, load_curves
from bayes_scaling.datasets.catalog import canonical_sha256

NAMES = list(CATALOG)


@pytest.fixture
def shared() -> Path:
    return shared_root()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test sees the user's cache, a user's $BAYES_SCALING_DATA or the network."""
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)

    def no_network(url):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(fetch, "_fetch_bytes", no_network)


def test_every_catalog_entry_has_its_shared_folder(shared):
    # New folders may appear in shared/data before the catalog knows them (a new sweep lands there first);
    # what must hold is the reverse: every catalogued sweep has its prepared copy there.
    missing = [name for name in NAMES if not (shared / name / "data.csv").is_file()]
    assert not missing
    table = available()
    assert list(table.index) == NAMES
    assert table["downloadable"].all()


@pytest.mark.parametrize("name", NAMES)
def test_each_dataset_loads_from_the_shared_copy(shared, name):
    entry = info(name)
    frame = load(name, path=shared)
    assert len(frame) == entry.rows
    for column in (*entry.required, *entry.groups, *([entry.run_id] if entry.run_id else [])):
        assert column in frame.columns, column
    assert frame.attrs["citation"] == entry.citation and frame.attrs["dataset"] == name
    if entry.kind == "curves":
        _check_curves(name, frame)
        return
    assert np.allclose(frame["C"], 6 * frame["N"] * frame["D"], rtol=1e-6)
    sweep = bs.load_sweep(frame)  # units and values pass validation; grouping columns are kept
    assert set(entry.groups) <= set(sweep.frame.columns)
    if name == "muennighoff2023_datablations":
        assert sweep.has_unique_tokens and sweep.renamed == {"U": "unique_tokens"}
    if entry.default_query:
        subset = load(name, path=shared, query="default")
        assert 0 < len(subset) < len(frame)


def _check_curves(name, frame):
    """A set of loss curves: steps rise along each run, the package's schedules give every logged rate, and it
    is refused as a sweep (with what to do instead)."""
    from bayes_scaling.data import DataError
    from bayes_scaling.schedules import multipower2025

    schedules = multipower2025()
    for (_, run), points in frame.groupby(["model", "schedule"]):
        assert points["step"].is_monotonic_increasing
        np.testing.assert_allclose(schedules[run].lr[points["step"].to_numpy() - 1], points["lr"], rtol=1e-6)
    assert set(frame.loc[frame["role_in_paper"] == "fit", "schedule"]) == {"constant_24000", "cosine_24000",
                                                                           "wsdcon_9"}
    with pytest.raises(DataError, match=r"training-loss curves, not a sweep.*curve fit"):
        bs.load_sweep(f"dataset:{name}")


@pytest.mark.parametrize("name", [n for n in NAMES if CATALOG[n].convert is not None])
def test_source_files_convert_to_the_prepared_table(shared, name, tmp_path):
    """The download path converts the original files; on the shared originals it must give data.csv."""
    prepared = pd.read_csv(shared / name / "data.csv")
    entry = CATALOG[name]
    folder = shared / name
    if entry.shared_sources:  # lay the files out as a download does: all under this dataset's folder
        folder = tmp_path / name
        for source in entry.sources:
            (folder / source.path).parent.mkdir(parents=True, exist_ok=True)
            (folder / source.path).symlink_to(entry.vetted_copy(shared, source.path))
    converted = entry.convert(folder)
    assert len(converted) == len(prepared)
    common = [c for c in converted.columns if c in prepared.columns]
    assert set(entry.required) <= set(common)
    keys = [c for c in ("setup", "dataset", "name", "hyper_id", "model", "schedule", "step", "N", "D", "loss",
                        "peak_lr", "sweep") if c in common]
    left = prepared[common].sort_values(keys).reset_index(drop=True)
    right = converted[common].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False, rtol=1e-9)


def test_manifest_checksums_match_the_shared_originals(shared):
    for name in NAMES:
        for source in CATALOG[name].sources:
            assert source.url.startswith("https://raw.githubusercontent.com/")
            if source.sha256 is not None:
                fetch._verify(source, CATALOG[name].vetted_copy(shared, source.path).read_bytes(), where=source.path)
            else:  # the notebook: the vetted extract's tables carry the sums
                extract = json.loads((shared / name / "source.json").read_text())
                assert source.content_sha256 == {k: canonical_sha256(v) for k, v in extract.items()}


def _notebook(extract: dict, tamper: bool = False) -> bytes:
    """A notebook shaped like the datablations one: markdown, a magic, comments, the two table cells."""
    cells = [{"cell_type": "markdown", "source": ["#### Data loading"]},
             {"cell_type": "code", "source": ["%matplotlib inline\n", "import math\n"]}]
    for key in ("cell_1_all_points", "cell_25_outliers_removed"):
        maps = json.loads(json.dumps(extract[key]))
        if tamper and key == "cell_1_all_points":
            first = next(iter(maps["NAMES_TO_VAL_LOSSES"]))
            maps["NAMES_TO_VAL_LOSSES"][first] += 0.001
        lines = ["### DATA POINTS ###\n"]
        for name, table in maps.items():
            lines.append(f"{name} = {{\n")
            lines.append('    # "2b855b4bc4subopt": 2.700284E+00,\n')
            lines += [f"    {k!r}: {v!r},  # a comment\n" for k, v in table.items()]
            lines.append("}\n")
        cells.append({"cell_type": "code", "source": lines})
    return json.dumps({"nbformat": 4, "cells": cells}).encode()


def test_notebook_download_is_checked_by_its_tables(shared, monkeypatch, tmp_path):
    name = "muennighoff2023_datablations"
    extract = json.loads((shared / name / "source.json").read_text())
    (url,) = [s.url for s in CATALOG[name].sources]
    monkeypatch.setattr(fetch, "_fetch_bytes", lambda u: _notebook(extract, tamper=True))
    with pytest.raises(DatasetError, match=r"fails its checksum.*differs from the pinned original"):
        load(name)
    assert not any((tmp_path / "cache").rglob("*.ipynb"))
    monkeypatch.setattr(fetch, "_fetch_bytes", lambda u: _notebook(extract) if u == url else None)
    frame = load(name)
    prepared = pd.read_csv(shared / name / "data.csv")
    pd.testing.assert_frame_equal(frame[prepared.columns], prepared, check_dtype=False)


def test_environment_variable_points_at_copies(shared, monkeypatch):
    monkeypatch.setenv(fetch.DATA_ENV, str(shared))
    frame = load("gadre2024")
    assert str(shared / "gadre2024") in frame.attrs["source"]
    sweep = bs.load_sweep("dataset:li2025_misfitting:default")
    assert len(sweep) == 87 and sweep.frame["best_lr"].all()


def _serve_from(shared: Path, name: str, tamper: bool = False):
    by_url = {s.url: CATALOG[name].vetted_copy(shared, s.path) for s in CATALOG[name].sources}

    def fake(url):
        content = by_url[url].read_bytes()
        return content + b"\n0,0,0\n" if tamper else content

    return fake


def test_download_verifies_caches_and_is_reused(shared, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    monkeypatch.setattr(fetch, "_fetch_bytes", _serve_from(shared, "clark2022_routing"))
    first = load("clark2022_routing")
    assert (cache / "clark2022_routing" / "source.csv.gz").is_file()
    assert (cache / "clark2022_routing" / "data.csv").is_file()
    assert "downloaded" in first.attrs["source"]

    def offline(url):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fetch, "_fetch_bytes", offline)
    again = load("clark2022_routing")  # from the cache, no network
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again, check_dtype=False)
    shutil.rmtree(cache)
    with pytest.raises(DatasetError, match=r"could not download .*network is unreachable"):
        load("clark2022_routing")


def test_checksum_mismatch_keeps_nothing(shared, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "_fetch_bytes", _serve_from(shared, "chinchilla_epoch", tamper=True))
    with pytest.raises(DatasetError, match="fails its checksum"):
        load("chinchilla_epoch")
    assert not any((tmp_path / "cache").rglob("*.csv"))


def test_tampered_local_source_files_are_refused(shared, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    text = (shared / "chinchilla_epoch" / "source.csv").read_text()
    (folder / "source.csv").write_text(text.replace("5.005581996", "4.005581996"))
    with pytest.raises(DatasetError, match="fails its checksum"):
        load("chinchilla_epoch", path=folder)
    (folder / "source.csv").write_text(text)
    assert len(load("chinchilla_epoch", path=folder)) == 245


def test_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="did you mean 'chinchilla_epoch'"):
        load("chinchila_epoch")
    with pytest.raises(DatasetError, match="download=False"):
        load("gadre2024", download=False)
    with pytest.raises(DatasetError, match="holds no copy of porian2024"):
        load("porian2024", path=tmp_path)
    with pytest.raises(bs.DataError, match="unknown dataset"):
        bs.load_sweep("dataset:nope")


def test_common_layouts_map_to_canonical_columns():
    demo = bs.load_demo()
    for n_name in ("params", "n_params", "model_size"):
        frame = demo.rename(columns={"N": n_name, "D": "tokens", "C": "flops"}).assign(dataset="x", run_id=1)
        sweep = bs.load_sweep(frame)
        assert {"N", "D", "C", "loss", "dataset", "run_id"} <= set(sweep.frame.columns)
        assert sweep.renamed == {n_name: "N", "tokens": "D", "flops": "C"}
    explicit = bs.load_sweep(demo.rename(columns={"N": "width_params"}), columns={"width_params": "N"})
    assert np.array_equal(explicit.column("N"), demo["N"].to_numpy(dtype=float))


def test_cli_lists_and_writes(shared, tmp_path, capsys):
    from bayes_scaling.cli import main

    assert main(["datasets", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [item["name"] for item in listing] == NAMES
    out = tmp_path / "li.csv"
    assert main(["datasets", "li2025_misfitting", "--path", str(shared), "--query", "default", "--out", str(out)]) == 0
    assert "87 rows" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 87
    assert main(["datasets", "li2025_misfitting", "--path", str(shared), "--out", str(out)]) == 2  # no overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["datasets", "gadre2024", "--no-download"]) == 2
    assert "download=False" in capsys.readouterr().err
    curves = tmp_path / "li_curves.csv"
    assert main(["datasets", "li2025_misfitting", "--path", str(shared), "--curves", "--out", str(curves)]) == 0
    text = capsys.readouterr().out
    assert "4843 rows" in text and "data_all_checkpoints.csv" in text
    assert {"run", "step", "loss"} <= set(pd.read_csv(curves).columns)
    assert main(["datasets", "clark2022_routing", "--path", str(shared)]) == 0
    assert "5553 logged points" in capsys.readouterr().out
    assert main(["datasets", "chinchilla_epoch", "--path", str(shared), "--curves"]) == 2
    assert "final losses only" in capsys.readouterr().err


def test_a_dataset_sharing_another_ones_files_downloads_and_converts(shared, monkeypatch, tmp_path):
    """gadre2024_downstream fetches gadre2024's model records next to its own evals and rebuilds data.csv."""
    monkeypatch.setattr(fetch, "_fetch_bytes", _serve_from(shared, "gadre2024_downstream"))
    frame = load("gadre2024_downstream")
    assert "downloaded" in frame.attrs["source"]
    assert (tmp_path / "cache" / "gadre2024_downstream" / "source" / "models").is_dir()
    prepared = pd.read_csv(shared / "gadre2024_downstream" / "data.csv")
    pd.testing.assert_frame_equal(frame[prepared.columns].sort_values("name").reset_index(drop=True),
                                  prepared.sort_values("name").reset_index(drop=True), check_dtype=False, rtol=1e-9)
    assert frame["err_avg_subset"].between(0, 1).all() and frame["random_err_avg"].iloc[0] == 0.75


def test_gadre_downstream_task_columns_match_the_eval_metadata(shared):
    """Each task's chance error and test items (constants in the catalog) agree with the source's metadata."""
    meta = pd.read_csv(shared / "gadre2024_downstream" / "source" / "eval_metadata.csv").set_index("Eval Task")
    frame = load("gadre2024_downstream", path=shared)
    tasks = [c.removeprefix("items_err_") for c in frame.columns if c.startswith("items_err_")]
    assert len(tasks) == 46
    for task in tasks:
        assert frame[f"items_err_{task}"].iloc[0] == meta.loc[task, "#datapoints"], task
        assert frame[f"random_err_{task}"].iloc[0] == pytest.approx(1 - meta.loc[task, "Random baseline"] / 100)
    assert frame["random_err_avg"].iloc[0] == pytest.approx(frame[[f"random_err_{t}" for t in tasks]].iloc[0].mean())


CURVES = [n for n in NAMES if CATALOG[n].curves is not None]


@pytest.mark.parametrize("name", CURVES)
def test_a_sweeps_curves_load_convert_and_end_at_the_sweep(shared, name):
    """A sweep's curves table: loads from the shared copy, its checksummed originals convert to that copy, and each
    run's last logged point is the sweep's row for the run."""
    entry = CATALOG[name].curves
    assert entry.kind == "curves" and entry.name == name and entry.table != "data.csv"
    frame = load_curves(name, path=shared)
    assert len(frame) == entry.rows and frame.attrs["dataset"] == name
    for column in (*entry.required, *entry.groups):
        assert column in frame.columns, column
    assert (frame["loss"] > 0).all() and (frame["step"] > 0).all()
    for source in entry.sources:
        fetch._verify(source, entry.vetted_copy(shared, source.path).read_bytes(), where=source.path)
    prepared = pd.read_csv(shared / name / entry.table)
    converted = entry.convert(shared / name)
    assert list(converted.columns) == list(prepared.columns)
    keys = [c for c in ("hyper_id", "model", "total_steps", "peak_lr", "current_steps", "step", "loss")
            if c in prepared.columns]
    pd.testing.assert_frame_equal(prepared.sort_values(keys).reset_index(drop=True),
                                  converted.sort_values(keys).reset_index(drop=True), check_dtype=False, rtol=1e-9)
    sweep = load(name, path=shared)
    last = frame.sort_values([entry.run_id, "step"], kind="stable").groupby(entry.run_id).tail(1)
    if name == "li2025_misfitting":  # runs end at their planned steps: those rows are the sweep's
        last = frame[frame["final"]]
        assert (last["step"] == last["total_steps"]).all()
    on = [c for c in ("hyper_id", "model", "peak_lr", "D", "loss") if c in sweep.columns]
    ends = last[on].sort_values(on).reset_index(drop=True)
    pd.testing.assert_frame_equal(ends, sweep[on].sort_values(on).reset_index(drop=True), check_dtype=False,
                                  rtol=1e-9)


def test_load_curves_of_a_curves_dataset_and_clear_errors(shared):
    curves = load_curves("multipower2025", path=shared)
    pd.testing.assert_frame_equal(curves, load("multipower2025", path=shared))
    with pytest.raises(DatasetError, match=r"chinchilla_epoch has final losses only.*li2025_misfitting"):
        load_curves("chinchilla_epoch", path=shared)
    with pytest.raises(DatasetError, match="did you mean 'clark2022_routing'"):
        load_curves("clark2022_routin")
    with pytest.raises(DatasetError, match=r"holds no copy of li2025_misfitting.*source_all_checkpoints.csv"):
        load_curves("li2025_misfitting", path=shared / "chinchilla_epoch")


def test_curves_download_beside_the_sweep_and_are_reused(shared, monkeypatch, tmp_path):
    cache = tmp_path / "cache" / "li2025_misfitting"
    served = {**{s.url: CATALOG["li2025_misfitting"].vetted_copy(shared, s.path)
                 for s in CATALOG["li2025_misfitting"].sources},
              **{s.url: CATALOG["li2025_misfitting"].vetted_copy(shared, s.path)
                 for s in CATALOG["li2025_misfitting"].curves.sources}}
    monkeypatch.setattr(fetch, "_fetch_bytes", lambda url: served[url].read_bytes())
    curves = load_curves("li2025_misfitting")
    assert "downloaded" in curves.attrs["source"] and len(curves) == 4843
    sweep = load("li2025_misfitting")  # the sweep's own files and table, in the same folder
    assert len(sweep) == 253 and "run" not in sweep.columns
    assert {"source.csv", "data.csv", "source_all_checkpoints.csv", "data_all_checkpoints.csv"} <= {
        p.name for p in cache.iterdir()}
    monkeypatch.setattr(fetch, "_fetch_bytes", lambda url: (_ for _ in ()).throw(OSError("offline")))
    again = load_curves("li2025_misfitting")  # from the cache
    assert str(cache / "data_all_checkpoints.csv") in again.attrs["source"]
    pd.testing.assert_frame_equal(curves.reset_index(drop=True), again, check_dtype=False)


def test_li2025_schedules_cover_every_checkpoint_and_the_cli_reads_a_sweeps_curves(shared, monkeypatch, capsys):
    import argparse

    from bayes_scaling.cli import curve, main
    from bayes_scaling.curves import _prepare
    from bayes_scaling.schedules import LI2025_FINAL_RATIO, LI2025_WARMUP, li2025_misfitting

    frame = load_curves("li2025_misfitting", path=shared)
    schedules = li2025_misfitting(frame["run"].unique())
    assert len(schedules) == 240
    runs = frame.drop_duplicates("run")
    for run, steps, peak in zip(runs["run"], runs["total_steps"], runs["peak_lr"], strict=True):
        schedule = schedules[run]
        assert schedule.steps == steps
        assert schedule.at([LI2025_WARMUP])[0] == pytest.approx(peak)
        assert schedule.at([steps])[0] == pytest.approx(LI2025_FINAL_RATIO * peak)
    twice = frame[frame.duplicated(["run", "step"], keep=False)]["run"].unique()
    beyond = frame["step"] > frame["total_steps"]
    # as the notes say: the 17M sweep's repeated steps, two 70M checkpoints past their run's end; the rest fits
    assert len(twice) == 13 and beyond.sum() == 2
    with pytest.raises(ValueError, match="covers steps 1-250; asked about step 256"):
        _prepare(frame[beyond], schedules, "run", "step", "loss")
    clean = frame[~frame["run"].isin(twice) & ~beyond]
    checked = _prepare(clean, schedules, "run", "step", "loss")  # every logged step within its run's schedule
    assert len(checked) == len(clean)
    assert li2025_misfitting(["cosine_24000", "misfitting_1b_steps40000_lr0.0004"]).keys() == {
        "misfitting_1b_steps40000_lr0.0004"}

    monkeypatch.setenv(fetch.DATA_ENV, str(shared))
    args = argparse.Namespace(data="dataset:li2025_misfitting", sep=",", where=["model=misfitting_100m"],
                              run_column="run", runs=None, until=None, step_column="step",
                              schedules="li2025_misfitting", schedule=None, lr_column=None)
    points = curve._read_points(args)
    assert set(points["model"]) == {"misfitting_100m"}
    assert set(curve._schedules(args, points)) == set(points["run"])
    # a sweep's curves without a known schedule: the command says what to give
    assert main(["curve", "fit", "dataset:clark2022_routing", "--run-column", "hyper_id", "--runs", "128"]) == 2
    assert "no schedule for run(s) '128'" in capsys.readouterr().err
    assert main(["curve", "fit", "dataset:chinchilla_epoch"]) == 2
    assert "not loss curves" in capsys.readouterr().err
