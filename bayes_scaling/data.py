"""Sweep data: load, validate and hold the runs a law is fitted to.

A sweep is a table with one row per training run:

========  =====================================  ==========
column    meaning                                required
========  =====================================  ==========
``N``     parameters (raw count)                 yes
``D``     training tokens (raw count)            yes
``loss``  final loss, nats per token             yes
``C``     training FLOPs                         no (6·N·D)
``unique_tokens``  unique tokens (repeated data)  only for ``data_constrained``
========  =====================================  ==========

Other columns (run ids, dataset names) are kept as they are.
Validation happens once, here; everything downstream trusts a :class:`Sweep`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FLOPS_PER_PARAM_TOKEN", "MIN_ROWS", "DataError", "Sweep", "load_sweep"]

#: Fewest runs a sweep may have.
MIN_ROWS = 6
#: Training FLOPs per parameter per token (C ≈ 6·N·D).
FLOPS_PER_PARAM_TOKEN = 6.0
REQUIRED = ("N", "D", "loss")
OPTIONAL = ("C", "unique_tokens")
_UNITS = {
    "N": "parameters",
    "D": "tokens",
    "loss": "nats per token",
    "C": "FLOPs",
    "unique_tokens": "tokens",
}


class DataError(ValueError):
    """The sweep data cannot be used; the message says which column and rows, and what was expected."""


class DataWarning(UserWarning):
    """The sweep data is usable but suspicious (e.g. duplicate runs)."""


#: Common names of each column in published sweeps (matched case-insensitively, ignoring spaces, _ and -).
ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("params", "n_params", "num_params", "nparams", "parameters", "model_size", "modelsize", "size"),
    "D": ("tokens", "n_tokens", "num_tokens", "train_tokens", "training_tokens", "data", "dataset_size"),
    "C": ("flops", "compute", "training_flop", "training_flops", "train_flops"),
    "loss": ("final_loss", "eval_loss", "val_loss", "validation_loss", "train_loss", "test_loss"),
    "unique_tokens": ("u", "unique", "unique_data", "unique_tokens_count"),
}
#: ``load_sweep("dataset:NAME")`` (or ``"dataset:NAME:default"`` for its recommended rows) reads a public sweep.
DATASET_PREFIX = "dataset:"
#: Units a loss column may be given in, and their conversion to nats per token.
LOSS_UNITS = ("nats", "bits", "perplexity")
#: Above this a "loss" is not nats per token for a language model (perplexity or a percentage?).
MAX_PLAUSIBLE_LOSS = 20.0


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _map_columns(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Apply the explicit mapping, then known aliases; returns the frame and {original: canonical}."""
    renamed: dict[str, str] = {}
    if columns:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise DataError(
                f"columns={dict(columns)!r} names {', '.join(map(repr, unknown))}, not in the data; "
                f"found {', '.join(map(repr, frame.columns))}"
            )
        bad = [v for v in columns.values() if v not in (*REQUIRED, *OPTIONAL)]
        if bad:
            raise DataError(f"columns= maps to {bad!r}; targets must be among {', '.join((*REQUIRED, *OPTIONAL))}")
        frame = frame.rename(columns=dict(columns))
        renamed.update(columns)
    present = {_key(c): c for c in frame.columns}
    for canonical in (*REQUIRED, *OPTIONAL):
        if canonical in frame.columns:
            continue
        matches = [present[k] for k in (_key(canonical), *map(_key, ALIASES[canonical])) if k in present]
        matches = [m for m in dict.fromkeys(matches) if m not in (*REQUIRED, *OPTIONAL)]
        if len(matches) == 1:
            frame = frame.rename(columns={matches[0]: canonical})
            renamed[matches[0]] = canonical
        elif len(matches) > 1:
            raise DataError(
                f"columns {', '.join(map(repr, matches))} could each be {canonical!r}; say which with "
                f"columns={{{matches[0]!r}: {canonical!r}}}"
            )
    return frame, renamed


def _hint(missing: str, columns: Sequence[str]) -> str:
    import difflib

    candidates = {_key(c): c for c in columns}
    close = difflib.get_close_matches(_key(missing), list(candidates), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {candidates[close[0]]!r}? pass columns={{{candidates[close[0]]!r}: {missing!r}}})"
    return ""


def _rows(mask: np.ndarray, limit: int = 8) -> str:
    """Human row numbers (data rows counted from 1) where ``mask`` is true."""
    idx = np.flatnonzero(mask) + 1
    shown = ", ".join(str(i) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{more}"


def _numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & ~raw.isna().to_numpy()
    if bad.any():
        first = raw[bad].iloc[0]
        raise DataError(
            f"column {column!r} ({_UNITS[column]}) must be numeric; {_rows(bad)} "
            f"hold{'s' if bad.sum() == 1 else ''} non-numeric values such as {first!r}"
        )
    missing = ~np.isfinite(values)
    if missing.any():
        raise DataError(
            f"column {column!r} ({_UNITS[column]}) must be finite; {_rows(missing)} "
            "hold NaN, inf or an empty cell"
        )
    nonpositive = values <= 0
    if nonpositive.any():
        raise DataError(
            f"column {column!r} ({_UNITS[column]}) must be > 0; {_rows(nonpositive)} "
            f"hold{'s' if nonpositive.sum() == 1 else ''} zero or negative values"
        )
    return values


@dataclass(frozen=True)
class Sweep:
    """A validated sweep of training runs.

    Use :func:`load_sweep` to build one. ``frame`` holds ``N``, ``D``, ``C``,
    ``loss`` (floats) and any optional or extra columns, in input order;
    ``renamed`` records columns recognised under another name (``{"params": "N"}``).
    """

    frame: pd.DataFrame
    source: str = "DataFrame"
    renamed: Mapping[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_unique_tokens(self) -> bool:
        """Whether the sweep has a ``unique_tokens`` column."""
        return "unique_tokens" in self.frame.columns

    def column(self, name: str) -> np.ndarray:
        """Values of one column as a float array."""
        return self.frame[name].to_numpy(dtype=float)

    def reference(self) -> dict[str, float]:
        """Reference scales: geometric means of N, D and C over the runs."""
        return {key: float(np.exp(np.mean(np.log(self.column(key))))) for key in ("N", "D", "C")}

    def require(self, columns: Iterable[str], *, law: str) -> None:
        """Raise :class:`DataError` unless the sweep has every one of ``columns``."""
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise DataError(
                f"law {law!r} needs column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(c) for c in missing)} ({', '.join(_UNITS[c] for c in missing)}), "
                f"which the sweep lacks; it has {', '.join(map(repr, self.frame.columns))}"
            )

    def subset(self, mask: Sequence[bool] | np.ndarray) -> Sweep:
        """The runs where ``mask`` is true (already validated; may be fewer than ``MIN_ROWS``, e.g. a held-out set)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise ValueError(f"mask must have one entry per run ({len(self)}), got shape {mask.shape}")
        frame = self.frame.loc[mask].reset_index(drop=True)
        return Sweep(frame=frame, source=self.source, renamed=dict(self.renamed))

    def describe(self) -> pd.DataFrame:
        """Range of each physical column (min, max) and the number of runs."""
        cols = [c for c in ("N", "D", "C", "loss", "unique_tokens") if c in self.frame.columns]
        table = self.frame[cols].agg(["min", "max"]).T
        table["runs"] = len(self)
        return table


def centred_logs(
    inputs: Iterable[str], columns: dict[str, np.ndarray], reference: dict[str, float]
) -> dict[str, np.ndarray]:
    """Centred log inputs ``x[key] = log(value / reference)`` for a law's input keys."""
    from bayes_scaling.laws import INPUT_COLUMNS, INPUT_REFERENCE

    return {
        key: np.log(np.asarray(columns[INPUT_COLUMNS[key]], dtype=float)) - math.log(reference[INPUT_REFERENCE[key]])
        for key in inputs
    }


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a CSV file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; expected a CSV with a header row N,D,loss") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file: {str(exc).splitlines()[0]}") from None
    return frame


def load_sweep(
    data: pd.DataFrame | str | Path | Sweep,
    *,
    columns: Mapping[str, str] | None = None,
    loss_units: str = "nats",
    source: str | None = None,
) -> Sweep:
    """Validate sweep data and return a :class:`Sweep`.

    Parameters
    ----------
    data : DataFrame, path or Sweep
        A table with columns ``N`` (parameters), ``D`` (tokens) and ``loss``
        (nats/token), optionally ``C`` (FLOPs; defaults to 6·N·D) and
        ``unique_tokens``; or the path of a CSV file holding one; or ``"dataset:NAME"``
        (``"dataset:NAME:default"`` for the recommended rows) for a public sweep, see
        :func:`bayes_scaling.datasets.load`. Common other
        names (``params``, ``tokens``, ``flops``, ``U``, ...) are recognised.
    columns : mapping, optional
        Explicit renaming ``{"your name": "N", ...}``, applied first.
    loss_units : {"nats", "bits", "perplexity"}
        Units of the loss column; converted to nats per token.
    source : str, optional
        Where the data came from (kept for reports).

    Returns
    -------
    Sweep

    Raises
    ------
    DataError
        When a required column is missing (with a hint for a close name), a value is
        non-numeric, not finite or not positive (naming the column and rows), units look
        wrong (N or D given in millions, a loss that is not nats per token), or there are
        fewer than ``MIN_ROWS`` runs.

    Warns
    -----
    DataWarning
        When runs are duplicated.
    """
    if isinstance(data, Sweep):
        return data
    if loss_units not in LOSS_UNITS:
        raise DataError(f"loss_units must be one of {', '.join(LOSS_UNITS)}; got {loss_units!r}")
    if isinstance(data, str) and data.startswith(DATASET_PREFIX) and not Path(data).exists():
        from bayes_scaling.datasets import DatasetError, load

        name, _, query = data.removeprefix(DATASET_PREFIX).partition(":")
        try:
            frame = load(name, query=query or None)
        except DatasetError as exc:
            raise DataError(str(exc)) from None
        source = source or data
    elif isinstance(data, str | Path):
        path = Path(data)
        frame = _read_csv(path)
        source = source or str(path)
    elif isinstance(data, pd.DataFrame):
        frame = data
        source = source or "DataFrame"
    else:
        raise DataError(f"expected a pandas DataFrame or a CSV path, got {type(data).__name__}")

    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    frame, renamed = _map_columns(frame, columns)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        hints = "".join(_hint(c, list(frame.columns)) for c in missing)
        raise DataError(
            f"missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}{hints}; a sweep needs N (parameters), D (tokens) and "
            f"loss (nats/token); found columns {', '.join(map(repr, frame.columns)) or 'none'}"
        )
    if len(frame) < MIN_ROWS:
        raise DataError(f"a sweep needs at least {MIN_ROWS} runs (rows); got {len(frame)}")

    for column in (*REQUIRED, *OPTIONAL):
        if column in frame.columns:
            frame[column] = _numeric_column(frame, column)
    if loss_units == "bits":
        frame["loss"] = frame["loss"] * math.log(2.0)
    elif loss_units == "perplexity":
        frame["loss"] = np.log(frame["loss"])
    _check_units(frame, loss_units)
    if "C" not in frame.columns:
        frame["C"] = FLOPS_PER_PARAM_TOKEN * frame["N"] * frame["D"]
    if "unique_tokens" in frame.columns:
        too_many = frame["unique_tokens"].to_numpy() > frame["D"].to_numpy() * (1 + 1e-9)
        if too_many.any():
            raise DataError(
                f"column 'unique_tokens' must not exceed D (tokens seen); {_rows(too_many)} have more unique "
                "tokens than training tokens"
            )
    physical = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns]
    duplicated = frame.duplicated(subset=physical, keep="first").to_numpy()
    if duplicated.any():
        warnings.warn(
            f"{_rows(duplicated)} repeat earlier runs exactly (same {', '.join(physical)}); they are kept and "
            "count as independent runs",
            DataWarning,
            stacklevel=2,
        )
    return Sweep(frame=frame.reset_index(drop=True), source=source, renamed=renamed)


def _check_units(frame: pd.DataFrame, loss_units: str) -> None:
    n_max, d_max, loss_max = frame["N"].max(), frame["D"].max(), frame["loss"].max()
    if n_max < 1e4:
        raise DataError(
            f"column 'N' must hold raw parameter counts, but its largest value is {n_max:g}; if N is in millions "
            "or billions, multiply it (e.g. 70M is 7e7)"
        )
    if d_max < 1e5:
        raise DataError(
            f"column 'D' must hold raw token counts, but its largest value is {d_max:g}; if D is in millions, "
            "billions or tokens per parameter, convert it to tokens (e.g. 1.4T is 1.4e12)"
        )
    if loss_max > MAX_PLAUSIBLE_LOSS:
        raise DataError(
            f"column 'loss' reaches {loss_max:g} nats/token, more than any language-model loss; if it is "
            "perplexity, use loss_units='perplexity' (CLI: --loss-units perplexity)"
            + ("" if loss_units == "nats" else f" (after converting from {loss_units})")
        )
