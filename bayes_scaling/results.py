"""One result protocol for the analyses: ``summary()``, ``diagnostics()``, ``to_dict()`` and ``save()``.

Fits (:class:`~bayes_scaling.posterior.Fit`, the link and task fits of :mod:`bayes_scaling.downstream`) save
their posterior to netCDF. The analyses built on them (hypothesis comparisons, IsoFLOP analyses, recipe
comparisons, next-run designs, explanations) save what ``--json`` prints, ``to_dict()``, as a JSON file with its
kind; :func:`bayes_scaling.load` reads either, so one loader reads every file this package writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["RESULT_FORMAT", "Result", "SavedResult", "load", "load_result"]

#: Version of the JSON result format.
RESULT_FORMAT = 1


class SavedResult(dict):
    """A saved analysis read back: its ``to_dict()`` content, with ``kind`` (e.g. ``"hypotheses"``)."""

    @property
    def kind(self) -> str:
        """What analysis the file holds."""
        return str(self.get("kind", ""))


class Result:
    """Mixin of the analysis results: the protocol's defaults (``save`` writes ``to_dict()`` as JSON)."""

    #: Name of the analysis in a saved file.
    kind: ClassVar[str] = "result"

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every result overrides it
        """JSON-friendly form (what ``--json`` prints)."""
        raise NotImplementedError

    def diagnostics(self) -> Any:
        """Convergence diagnostics of the fits behind the result (None when it involves no sampling)."""
        return None

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``to_dict()`` and the kind as JSON (atomic; never replaces a file unless ``overwrite``)."""
        from bayes_scaling.outputs import write_file

        payload = {"kind": self.kind, "format_version": RESULT_FORMAT, **self.to_dict()}
        text = json.dumps(payload, indent=1, allow_nan=False, default=_plain)
        return write_file(path, lambda tmp: Path(tmp).write_text(text), overwrite=overwrite)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_result(path: str | Path) -> SavedResult:
    """Read a result written by :meth:`Result.save`.

    Raises
    ------
    FitFileError
        If the file is missing, not JSON, or not a saved result of this package.
    """
    from bayes_scaling.posterior import FitFileError

    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"no such result file: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FitFileError(f"{path} is not a readable JSON result ({exc})") from None
    if not isinstance(data, dict) or "kind" not in data or "format_version" not in data:
        raise FitFileError(f"{path} is JSON but not a saved bayes_scaling result (no kind or format_version)")
    return SavedResult(data)


def load(path: str | Path) -> Any:
    """Read any file this package saves: a fit, a link fit, a task fit, or an analysis result.

    Fits come from :meth:`~bayes_scaling.posterior.Fit.save`, curve fits from
    :meth:`~bayes_scaling.curves.CurveFit.save`, link and task fits from ``save()`` of
    :class:`~bayes_scaling.downstream.DownstreamFit` / :class:`~bayes_scaling.downstream.TaskFit` (netCDF);
    analyses (hypotheses, IsoFLOP, recipes, designs, explanations, backtests) from
    :meth:`Result.save` (JSON, read back as a :class:`SavedResult`).

    Raises
    ------
    FitFileError
        If the file is missing, unreadable, corrupted or was not written by bayes_scaling.
    """
    from bayes_scaling.curves import CURVES_KEY, load_curves
    from bayes_scaling.downstream import SAVED_KEYS, load_downstream
    from bayes_scaling.posterior import load_fit

    if _is_json(path):  # an analysis saved by Result.save
        return load_result(path)
    keys = _saved_keys(path)
    if CURVES_KEY in keys:
        return load_curves(path)
    return load_downstream(path) if keys & set(SAVED_KEYS) else load_fit(path)


def _is_json(path: str | Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def _saved_keys(path: str | Path) -> set[str]:
    """The attribute names of a netCDF file's root (empty when it cannot be read: the loader then says why)."""
    import xarray as xr

    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            return set(map(str, tree.attrs))
    except Exception:
        return set()
