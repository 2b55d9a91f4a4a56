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
from bayes_scaling.datasets import CATALOG, DatasetError, available, fetch, info, load
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
