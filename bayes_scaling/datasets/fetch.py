"""Find a public sweep: a local copy, the user cache, or a checksummed download of its source files."""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import pandas as pd

from bayes_scaling.datasets.catalog import (
    CATALOG,
    SWEEP_COLUMNS,
    Dataset,
    DatasetError,
    SourceFile,
    muennighoff_extract,
)

__all__ = ["CACHE_ENV", "DATA_ENV", "DatasetError", "available", "cache_dir", "info", "load", "load_curves"]

#: Environment variable naming a folder that holds ``<name>/data.csv`` (or the source files) per dataset.
DATA_ENV = "BAYES_SCALING_DATA"
#: Environment variable overriding the download cache folder.
CACHE_ENV = "BAYES_SCALING_CACHE"
DEFAULT = "default"


def info(name: str) -> Dataset:
    """The catalog entry of ``name`` (citation, origin, licence, groups, notes)."""
    if name not in CATALOG:
        close = difflib.get_close_matches(name, list(CATALOG), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint}; known: {', '.join(CATALOG)}")
    return CATALOG[name]


def available() -> pd.DataFrame:
    """One row per public dataset: rows, groups, whether it can be downloaded, title and citation."""
    table = pd.DataFrame([d.to_dict() for d in CATALOG.values()]).set_index("name")
    return table[["rows", "groups", "downloadable", "loss", "title", "citation", "license"]]


def cache_dir() -> Path:
    """Folder downloads are kept in.

    ``$BAYES_SCALING_CACHE``, else ``$XDG_CACHE_HOME/bayes_scaling/datasets`` (default
    ``~/.cache/bayes_scaling/datasets``).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bayes_scaling" / "datasets"


def load(
    name: str,
    *,
    path: str | Path | None = None,
    query: str | None = None,
    download: bool = True,
    cache: str | Path | None = None,
) -> pd.DataFrame:
    """Load a public sweep as a table with ``N``, ``D``, ``C``, ``loss`` and its grouping columns.

    A dataset of loss curves (``info(name).kind == "curves"``, e.g. ``multipower2025``) gives one row per logged
    point instead: its run and grouping columns, ``step``, ``lr`` and ``loss``. The curves a sweep also logged
    (li2025_misfitting's checkpoints, clark2022_routing's evaluations) come from :func:`load_curves`.

    Where it looks, in order:

    1. ``path``: a CSV file, a dataset folder (``data.csv`` or the source files), or a folder holding
       ``<name>/`` folders (the layout of the project's ``shared/data``);
    2. ``$BAYES_SCALING_DATA``: a folder holding ``<name>/`` folders;
    3. the cache (:func:`cache_dir`, or ``cache``);
    4. a download of the original source files from the authors' repository at a pinned commit, each
       checked against its SHA-256 sum before it is kept, then converted (only when ``download``).

    Parameters
    ----------
    name : str
        A name from :func:`available`, e.g. ``"chinchilla_epoch"``.
    path : str or Path, optional
        A local copy (see above).
    query : str, optional
        A :meth:`pandas.DataFrame.query` to select rows; ``"default"`` applies the dataset's
        recommended subset (e.g. ``best_lr`` for li2025_misfitting, dense models for clark2022_routing).
    download : bool
        Allow fetching from the public source when no local or cached copy exists.
    cache : str or Path, optional
        Cache folder (default :func:`cache_dir`).

    Returns
    -------
    pandas.DataFrame
        Units: N parameters, D tokens, C FLOPs (6·N·D), loss nats/token. ``frame.attrs`` holds
        ``dataset``, ``citation``, ``loss``, ``groups`` and ``source`` (where the rows were read from).

    Raises
    ------
    DatasetError
        Unknown name, no copy found and downloading disabled or impossible, a checksum mismatch, or a
        table without the N, D, C, loss columns (a curves dataset: without its run, step, loss columns).
    """
    return _load(info(name), path=path, query=query, download=download, cache=cache)


def load_curves(
    name: str,
    *,
    path: str | Path | None = None,
    query: str | None = None,
    download: bool = True,
    cache: str | Path | None = None,
) -> pd.DataFrame:
    """Load a public dataset's training-loss curves: one row per logged point (for ``curves.fit_curves``).

    A dataset of curves (``multipower2025``) as :func:`load` gives it; a sweep that also logged its runs along
    training (``li2025_misfitting``: every checkpoint of 240 runs; ``clark2022_routing``: every 10k steps) its
    ``curves`` table (``info(name).curves``: its own prepared file, ``data_all_checkpoints.csv`` /
    ``data_curves.csv``, and source files). Looked for as :func:`load` looks (``path``, ``$BAYES_SCALING_DATA``,
    the cache, a checksummed download).

    Returns
    -------
    pandas.DataFrame
        The run (``info(name).curves.run_id``), ``step``, ``loss`` (nats/token), the dataset's grouping columns and
        what else the source has (``lr`` where it logs the learning rate; where it does not, ``info(name).curves.
        schedules`` names the schedule set that rebuilds it, if any).

    Raises
    ------
    DatasetError
        Unknown name, a sweep without logged curves, or as :func:`load`.
    """
    entry = info(name)
    if entry.kind != "curves":
        if entry.curves is None:
            with_curves = [n for n, d in CATALOG.items() if d.kind == "curves" or d.curves is not None]
            raise DatasetError(f"{name} has final losses only, no loss curves; datasets with curves: "
                               f"{', '.join(with_curves)}")
        entry = entry.curves
    return _load(entry, path=path, query=query, download=download, cache=cache)


def _load(entry: Dataset, *, path: str | Path | None, query: str | None, download: bool,
          cache: str | Path | None) -> pd.DataFrame:
    name = entry.name
    frame, source = _locate(entry, path, download=download, cache=Path(cache) if cache else cache_dir())
    if entry.kind == "sweep" and all(c in frame.columns for c in SWEEP_COLUMNS):
        frame = frame.astype(dict.fromkeys(SWEEP_COLUMNS, float))  # raw counts overflow int64 in products like 6*N*D
    if entry.complete is not None:
        frame = entry.complete(frame)
    missing = [c for c in entry.required if c not in frame.columns]
    if missing:
        raise DatasetError(f"{source} has no column {', '.join(map(repr, missing))}; found {', '.join(frame.columns)}")
    if query:
        expression = entry.default_query if query == DEFAULT else query
        if expression:
            try:
                frame = frame.query(expression).reset_index(drop=True)
            except Exception as exc:
                raise DatasetError(f"query {expression!r} failed on {name}: {exc}") from None
    frame.attrs = {
        "dataset": name, "citation": entry.citation, "loss": entry.loss, "groups": list(entry.groups),
        "source": source,
    }
    return frame


# ------------------------------------------------------------------------------------------------ locate
def _locate(entry: Dataset, path: str | Path | None, *, download: bool, cache: Path) -> tuple[pd.DataFrame, str]:
    if path is not None:
        path = Path(path).expanduser()
        if path.is_file():
            return pd.read_csv(path), str(path)
        found = _read_folder(entry, path) or _read_folder(entry, path / entry.name)
        if found is None:
            raise DatasetError(
                f"{path} holds no copy of {entry.name}: expected a CSV file, a folder with {entry.table} or the source "
                f"files ({', '.join(s.path for s in entry.sources[:3]) or entry.table}), or a folder with "
                f"{entry.name}/ in it"
            )
        return found
    if os.environ.get(DATA_ENV):
        root = Path(os.environ[DATA_ENV]).expanduser()
        found = _read_folder(entry, root / entry.name)
        if found is not None:
            return found
    found = _read_folder(entry, cache / entry.name)
    if found is not None:
        return found
    if not entry.sources:
        raise DatasetError(
            f"{entry.name} cannot be downloaded ({entry.notes.split('. ')[-1].rstrip('.')}); point "
            f"${DATA_ENV} at a folder holding {entry.name}/{entry.table}, or pass path="
        )
    if not download:
        raise DatasetError(
            f"{entry.name} is not in the cache ({cache / entry.name}) and download=False; set ${DATA_ENV} "
            "or pass path= to use a local copy"
        )
    folder = cache / entry.name
    for source in entry.sources:
        _download(source, folder / source.path)
    frame = _convert(entry, folder)
    _write_atomic(folder / entry.table, frame.to_csv(index=False).encode())
    return frame, f"{folder} (downloaded from {entry.origin})"


def _read_folder(entry: Dataset, folder: Path) -> tuple[pd.DataFrame, str] | None:
    """The table in ``folder``: its prepared table (``entry.table``), else its source files verified and converted.

    None if neither is there.
    """
    if (folder / entry.table).is_file():
        return pd.read_csv(folder / entry.table), str(folder / entry.table)
    if entry.sources and all((folder / s.path).is_file() for s in entry.sources):
        for source in entry.sources:
            _verify(source, (folder / source.path).read_bytes(), where=folder / source.path)
        return _convert(entry, folder), f"{folder} (source files)"
    return None


def _convert(entry: Dataset, folder: Path) -> pd.DataFrame:
    if entry.convert is None:  # pragma: no cover - only entries with sources reach here
        raise DatasetError(f"{entry.name} has no converter for source files")
    return entry.convert(folder)


# ------------------------------------------------------------------------------------------------ fetch
def _fetch_bytes(url: str) -> bytes:
    """Download ``url`` (the one place the network is touched; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _verify(source: SourceFile, content: bytes, *, where: str | Path) -> None:
    if source.sha256 is None:  # a notebook: its extracted tables are checked, not its bytes
        try:
            muennighoff_extract(content, source.content_sha256 or {})
        except (DatasetError, ValueError) as exc:
            raise DatasetError(f"{where} fails its checksum: {exc}") from None
        return
    digest = hashlib.sha256(content).hexdigest()
    if digest != source.sha256:
        raise DatasetError(
            f"{where} fails its checksum: SHA-256 {digest[:16]}..., expected {source.sha256[:16]}... "
            f"(the file differs from the vetted original at {source.url}); delete it and load again"
        )


def _download(source: SourceFile, target: Path) -> None:
    if target.is_file():
        _verify(source, target.read_bytes(), where=target)
        return
    try:
        content = _fetch_bytes(source.url)
    except OSError as exc:
        raise DatasetError(
            f"could not download {source.url} ({exc}); set ${DATA_ENV} or pass path= to use a local copy"
        ) from None
    _verify(source, content, where=source.url)
    _write_atomic(target, content)


def _write_atomic(target: Path, content: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
