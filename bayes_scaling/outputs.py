"""Safe outputs: check every output path before long work, write atomically, never replace what we do not own.

Rules (the same for the Python API and the CLI):

* A **file** output (a saved fit, a CSV, a figure) is checked before any sampling: its folder exists and a file
  can be created there, the path is missing or a regular file (never a folder, device, FIFO, socket or a symbolic
  link to nothing, with or without ``overwrite``), it is none of the command's inputs (symbolic links followed),
  and it does not exist unless ``overwrite``. It is written to a temporary file in the
  same folder and then published in one step: with ``overwrite`` by an atomic rename, without it by a hard link,
  which fails if another process created the file in the meantime (create-exclusive), so two writers racing for
  one path never silently replace each other.
* A **report folder** is new, empty, or holds only an earlier report, recognised by the marker file
  :data:`REPORT_MARKER` that lists the files the report wrote. Only names the report format itself writes
  (:data:`REPORT_FILES`) that are plain regular files are trusted from the marker; ``overwrite`` replaces those
  files only; a folder holding anything else (a forged or damaged marker's other names included) is refused and
  the names are reported, and so are the working folder, its parents and any folder holding an input.
* Files and report folders get the permissions the user's umask gives new files and folders.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["FIGURE_FORMATS", "REPORT_FILES", "REPORT_MARKER", "check_figure_target", "check_file_target",
           "check_report_folder", "json_records", "publish_folder", "table_records", "write_file"]

#: File a report folder carries to say which files the report wrote (and may replace with ``overwrite``).
REPORT_MARKER = ".bayes_scaling_report.json"
#: Every file name a report may write (:func:`bayes_scaling.report.write_report`): only these are trusted from a
#: marker, so a forged or damaged marker can never make ``overwrite`` remove anything else.
REPORT_FILES = frozenset({
    "index.html", "report.md", "fit.png", "extrapolation.png", "frontier.png", "isoflop.png", "posterior.png",
    "exponents.png", "compare.png", "tasks.png", "downstream.png", "a_by_compute.png", "multiplier.png", "curve.png",
})
#: Figure file formats (by suffix) that matplotlib writes.
FIGURE_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp", "pgf")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _writable_folder(folder: Path, what: str) -> None:
    if not folder.exists():
        raise FileNotFoundError(f"folder {folder} for {what} does not exist; create it first")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} (the folder for {what}) is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"folder {folder} is not writable; cannot write {what}")
    try:  # the only sure test (/proc, read-only mounts): create a file there now, before any work
        fd, probe = tempfile.mkstemp(prefix=".bayes_scaling_probe.", dir=folder)
    except OSError as exc:
        raise PermissionError(f"cannot create files in folder {folder} ({exc.strerror or exc}); cannot write "
                              f"{what}") from None
    os.close(fd)
    os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_file_target(path: str | Path, *, overwrite: bool = False, flag: str = "--force",
                      inputs: Iterable[str | Path] = (), option: str = "--out") -> Path:
    """Raise now, before any work, if ``path`` cannot be written as a new (or, with ``overwrite``, replaced) file.

    Parameters
    ----------
    path : path
        The output file.
    overwrite : bool
        Whether an existing regular file may be replaced.
    flag : str
        The option that allows replacing, named in messages.
    inputs : iterable of path
        Files the command reads (data, priors, fits, links, candidates): ``path`` may be none of them, even with
        ``overwrite`` (symbolic links and hard links followed).
    option : str
        The option that named ``path``, named in messages.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    IsADirectoryError
        ``path`` is a folder.
    ValueError
        ``path`` is one of ``inputs``, or not a regular file (a device, FIFO, socket), or a symbolic link to
        nothing.
    FileNotFoundError, NotADirectoryError, PermissionError
        Its folder is missing, is a file, or is not writable.
    """
    path = Path(path)
    for item in inputs:
        if item is not None and _same_file(path, Path(item)):
            raise ValueError(f"{option} {path} is the input {item}; writing there would destroy it: choose another "
                             "file")
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{option} {path} is a symbolic link to a missing file ({os.readlink(path)}); remove the "
                         "link or choose another file")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as {path / 'fit.nc'}")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise ValueError(f"{option} {path} is not a regular file (a device, FIFO or socket); it is never replaced, "
                         "with or without " + flag)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; add {flag} (Python: overwrite=True) to replace it")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{path} is not writable")
    _writable_folder(path.parent if str(path.parent) else Path("."), str(path))
    return path


def check_figure_target(path: str | Path, *, overwrite: bool = False, flag: str = "--force",
                        inputs: Iterable[str | Path] = (), option: str = "--plot") -> Path:
    """:func:`check_file_target` for a figure, whose suffix must also be a format matplotlib writes."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"{option} {path}: a figure file needs one of the suffixes "
                         f"{', '.join('.' + f for f in FIGURE_FORMATS[:4])}, ... (got {path.suffix or 'none'})")
    return check_file_target(path, overwrite=overwrite, flag=flag, inputs=inputs, option=option)


def write_file(path: str | Path, writer: Callable[[str], None], *, overwrite: bool = False) -> Path:
    """Write a file atomically: ``writer(tmp_path)`` fills a temporary file that is then published as ``path``.

    Without ``overwrite`` the publication is create-exclusive (a hard link), so a file created by someone else
    between the check and the write is never replaced: :class:`FileExistsError` is raised instead. An interrupted
    or failed write leaves nothing behind.
    """
    path = check_file_target(path, overwrite=overwrite)
    if path.is_symlink():  # replace the file the link points to, keep the user's link
        path = path.resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets what the umask gives
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"{path} was created by another process while this one was writing; nothing was replaced"
                ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _owned_files(folder: Path) -> set[str] | None:
    """The files an earlier report listed in its marker, or None if ``folder`` holds no (readable) marker."""
    marker = folder / REPORT_MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        files = json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list):
        return None
    return {f for f in files if isinstance(f, str) and f in REPORT_FILES and _plain_file(folder / f)}


def _plain_file(path: Path) -> bool:
    """A regular file, not a link, folder, device or FIFO."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _contains(folder: Path, path: Path) -> bool:
    return folder == path or folder in path.parents


def check_report_folder(out: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = (),
                        option: str = "--out") -> Path:
    """Raise now, before any fitting, unless ``out`` may receive a report.

    ``out`` may be a new folder (its parent must exist and be writable), an empty folder, or a folder holding
    only an earlier report (then ``overwrite`` is needed). It may never be the working folder or one of its
    parents, nor a folder that holds one of ``inputs`` (the data files read).
    """
    out = Path(out)
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if _contains(resolved, cwd):
        raise ValueError(f"{option} {out} is the working folder or a parent of it; a report needs a folder of its "
                         f"own, e.g. {option} report")
    for item in inputs:
        data = Path(item).resolve()
        if _contains(resolved, data):
            raise ValueError(f"{option} {out} holds the input {item}; write the report to a folder of its own")
    if not out.exists():
        parent = resolved.parent
        while not parent.exists():
            parent = parent.parent
        _writable_folder(parent, f"report {out}")
        return out
    if not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is a file, not a folder; choose another {option}")
    content = set(os.listdir(out))
    if not content:
        _writable_folder(out, f"report {out}")
        return out
    owned = _owned_files(out)
    if owned is None:
        shown = ", ".join(sorted(content)[:5]) + (" ..." if len(content) > 5 else "")
        raise FileExistsError(f"{out} is not empty and holds no earlier report ({shown}); choose a new or empty "
                              "folder (--force never deletes files a report did not write)")
    foreign = sorted(content - owned - {REPORT_MARKER})
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise FileExistsError(f"{out} holds an earlier report and other files ({shown}); --force replaces only a "
                              "report's own files (regular files the report format names): move the others or choose "
                              "another folder")
    if not overwrite:
        raise FileExistsError(f"{out} holds an earlier report; add --force (Python: overwrite=True) to replace it")
    _writable_folder(out, f"report {out}")
    return out


def publish_folder(out: str | Path, fill: Callable[[Path], Iterable[str]], *, overwrite: bool = False,
                   inputs: Iterable[str | Path] = ()) -> list[str]:
    """Write a report folder: ``fill(tmp)`` writes its files into a temporary folder and returns their names.

    The files are then moved into ``out`` (checked again with :func:`check_report_folder`), earlier report files
    that the new report no longer has are removed, and the marker is written last. Nothing reaches ``out`` if
    ``fill`` fails or is interrupted.
    """
    out = Path(out)
    inputs = list(inputs)
    check_report_folder(out, overwrite=overwrite, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.resolve().parent))
    renamed = False  # once tmp has become ``out`` it is the user's report, never to be removed here
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the report folder gets what the umask gives
        files = sorted(dict.fromkeys(fill(tmp)))
        unknown = [f for f in files if f not in REPORT_FILES]
        if unknown:
            raise ValueError(f"report files {unknown} are not in outputs.REPORT_FILES; add them there")
        for name in [*files]:
            os.chmod(tmp / name, 0o666 & ~_umask())
        (tmp / REPORT_MARKER).write_text(json.dumps({"writer": "bayes_scaling report", "files": files}, indent=1))
        check_report_folder(out, overwrite=overwrite, inputs=inputs)  # again: someone may have written there
        if not out.exists():
            try:
                os.rename(tmp, out)
                renamed = True
                return files
            except OSError:
                if not out.exists():
                    raise
                check_report_folder(out, overwrite=overwrite, inputs=inputs)
        old = _owned_files(out) or set()
        for name in sorted(old - set(files)):
            (out / name).unlink(missing_ok=True)
        for name in [*files, REPORT_MARKER]:
            os.replace(tmp / name, out / name)
        return files
    finally:
        # only the temporary folder this call created with mkdtemp (holding only what fill() wrote) is removed
        if not renamed and tmp.is_dir():
            shutil.rmtree(tmp)


def table_records(table: Any) -> dict[str, Any] | None:
    """A table keyed by its index (``{row label: {column: value}}``), JSON-ready; None for no table."""
    if table is None:
        return None
    return {str(k): v for k, v in zip(table.index, json_records(table), strict=True)}


def json_records(table: Any) -> list[dict[str, Any]]:
    """The rows of a DataFrame as JSON-ready dicts: NaN and infinite floats (which JSON lacks) become None."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in table.to_dict(orient="records")]
