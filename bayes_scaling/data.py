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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bayes_scaling.laws import ScalingLaw

__all__ = ["EXTRAPOLATION_WARNING", "FLOPS_PER_PARAM_TOKEN", "MIN_ROWS", "DataError", "Sweep", "check_identifiable",
           "load_sweep", "range_warnings"]

#: Decades outside the sweep's range of N, D or C beyond which a forecast or plan gets a warning line.
EXTRAPOLATION_WARNING = 1.5
#: Fewest runs a sweep may have.
MIN_ROWS = 6
#: Training FLOPs per parameter per token (C ≈ 6·N·D).
FLOPS_PER_PARAM_TOKEN = 6.0
REQUIRED = ("N", "D", "loss")
OPTIONAL = ("C", "unique_tokens", "experts")
_UNITS = {
    "N": "parameters",
    "D": "tokens",
    "loss": "nats per token",
    "C": "FLOPs",
    "unique_tokens": "tokens",
    "experts": "experts per routed layer (count; 1 for a dense model)",
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
    "experts": ("num_experts", "n_experts", "expert_count"),
}
#: ``load_sweep("dataset:NAME")`` (or ``"dataset:NAME:default"`` for its recommended rows) reads a public sweep.
DATASET_PREFIX = "dataset:"
#: Units a loss column may be given in, and their conversion to nats per token.
LOSS_UNITS = ("nats", "bits", "perplexity")
#: Above this a "loss" is not nats per token for a language model (perplexity or a percentage?).
MAX_PLAUSIBLE_LOSS = 20.0
#: Units N and D may be given in (``n_units=``, ``d_units=``; CLI ``--n-units``, ``--d-units``), as multipliers.
COUNT_UNITS = {"raw": 1.0, "thousands": 1e3, "millions": 1e6, "billions": 1e9}
#: The reference law used to check units: Hoffmann et al. (2022)'s fitted Chinchilla law (nats/token).
_REFERENCE_LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
#: Units are questioned when the sweep's median loss is more than this factor away from the reference law's...
_UNIT_MISFIT = 2.5
#: ...and another reading of the units brings it within this factor. On the seven public sweeps the median
#: ratio of observed to reference loss lies within a factor 1.2; N in millions or a perplexity is off by > 4x.
_UNIT_FIT = 1.6
#: A loss in bits is ln 2 = 0.69 of itself in nats, closer than the checks above look. On the public sweeps the ratio
#: of observed to reference loss is 0.87-1.25 in nats (1.25-1.80 if they were given in bits); a ratio above this,
#: which the ln 2 reading brings back into that range, is questioned as bits.
_BITS_RATIO = 1.35
#: A loss that rises with N at fixed D (or D at fixed N) this clearly (t statistic of the slope of log loss on log N
#: and log D, fitted together) is not a loss. The public sweeps give t from -90 to +1.2.
_RISING_T = 4.0


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
    """A suggestion for a missing column: a column whose name is close to it or to one of its aliases."""
    import difflib

    candidates = {_key(c): c for c in columns if c not in (*REQUIRED, *OPTIONAL)}
    names = [_key(missing), *map(_key, ALIASES.get(missing, ()))]
    best: tuple[float, str] | None = None
    for key, column in candidates.items():
        for name in names:
            score = difflib.SequenceMatcher(None, key, name).ratio()
            if len(name) >= 4 and name in key:  # 'n_parameters', 'total_tokens' hold an alias
                score = max(score, 0.8)
            if score >= 0.6 and (best is None or score > best[0]):
                best = (score, column)
    if best is not None:
        return f" (did you mean {best[1]!r}? pass columns={{{best[1]!r}: {missing!r}}})"
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

    def split_holdout(self, *, cutoff_N: float | None = None, frac: float = 0.25) -> tuple[Sweep, Sweep]:
        """(train, held-out) sweeps: the runs with N below and at or above a cutoff.

        The cutoff is ``cutoff_N``, or else the smallest of the largest ``frac`` of distinct model sizes (at least
        one size is held out).

        Raises
        ------
        ValueError
            When the sweep has one model size, or the cutoff leaves no runs on one side.
        """
        n = self.column("N")
        if cutoff_N is None:
            sizes = np.unique(n)
            if len(sizes) < 2:
                raise ValueError("the sweep has a single model size; nothing larger to hold out")
            cutoff_N = sizes[-max(1, round(frac * len(sizes)))]
        mask = n >= cutoff_N
        if mask.all() or not mask.any():
            raise ValueError(f"cutoff_N={cutoff_N:g} leaves no runs on one side (N ranges {n.min():g}–{n.max():g})")
        return self.subset(~mask), self.subset(mask)

    def decades_outside(self, points: pd.DataFrame) -> pd.DataFrame:
        """How far each point lies outside the sweep's range, in decades, per input and overall.

        Columns ``decades_N``, ``decades_D``, ``decades_C`` (those present in ``points``): log10 of the
        distance beyond the largest run (positive) or below the smallest run (negative), 0 within the range;
        ``decades_out`` is the largest of their absolute values.
        """
        out = {}
        for column in ("N", "D", "C"):
            if column in points.columns and column in self.frame.columns:
                x = np.log10(points[column].to_numpy(dtype=float))
                low, high = np.log10(self.column(column).min()), np.log10(self.column(column).max())
                out[f"decades_{column}"] = np.where(x > high, x - high, np.where(x < low, x - low, 0.0))
        frame = pd.DataFrame(out, index=points.index)
        frame["decades_out"] = frame.abs().max(axis=1) if out else 0.0
        return frame

    def describe(self) -> pd.DataFrame:
        """Range of each physical column (min, max) and the number of runs."""
        cols = [c for c in ("N", "D", "C", "loss", "unique_tokens", "experts") if c in self.frame.columns]
        table = self.frame[cols].agg(["min", "max"]).T
        table["runs"] = len(self)
        return table


def range_warnings(table: pd.DataFrame, *, threshold: float = EXTRAPOLATION_WARNING) -> list[str]:
    """Warnings for the rows of ``table`` (with ``decades_*`` columns) far outside the sweep's range.

    One sentence per row lying more than ``threshold`` decades outside the range of N, D or C.
    """
    lines = []
    columns = [c for c in ("N", "D", "C") if f"decades_{c}" in table.columns]
    for position, (_, row) in enumerate(table.iterrows(), start=1):
        far = [c for c in columns if abs(row[f"decades_{c}"]) > threshold]
        if not far:
            continue
        parts = []
        for c in far:
            side = "above the largest" if row[f"decades_{c}"] > 0 else "below the smallest"
            parts.append(f"{c} {abs(row[f'decades_{c}']):.1f} decades {side} run")
        lines.append(f"row {position} lies outside the data ({'; '.join(parts)}): the law was never tested "
                     "there, so read the interval as a guess")
    return lines


def centred_logs(
    inputs: Iterable[str], columns: dict[str, np.ndarray], reference: dict[str, float]
) -> dict[str, np.ndarray]:
    """Centred log inputs ``x[key] = log(value / reference)`` for a law's input keys.

    An input without a reference scale (experts) is not centred: log 1 = 0 is the dense model; a derived input
    (tokens per parameter, ``T``) is the log of its columns' ratio.
    """
    from bayes_scaling.laws import DERIVED_INPUTS, INPUT_COLUMNS, INPUT_REFERENCE

    def log_of(column: str) -> np.ndarray:
        return np.log(np.asarray(columns[column], dtype=float))

    x = {}
    for key in inputs:
        if key in DERIVED_INPUTS:
            top, bottom = DERIVED_INPUTS[key]
            x[key] = log_of(top) - log_of(bottom)
        else:
            scale = INPUT_REFERENCE[key]
            x[key] = log_of(INPUT_COLUMNS[key]) - (math.log(reference[scale]) if scale else 0.0)
    return x


_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a CSV file")
    try:
        frame = pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; expected a CSV with a header row N,D,loss") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file: {str(exc).splitlines()[0]}") from None
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for char, name in _SEPARATORS.items():
            if char != sep and char in header:
                shown = repr(char) if char != "\t" else "'\\t'"
                raise DataError(
                    f"{path} looks {name}-separated (its header is {header!r}); pass sep={shown} "
                    f"(CLI: --sep {shown}) or save it comma-separated"
                )
    return frame


def load_sweep(
    data: pd.DataFrame | str | Path | Sweep,
    *,
    columns: Mapping[str, str] | None = None,
    loss_units: str = "nats",
    n_units: str = "raw",
    d_units: str = "raw",
    sep: str = ",",
    check_units: bool = True,
    source: str | None = None,
    drop_copies: bool = True,
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
    n_units, d_units : {"raw", "thousands", "millions", "billions"}
        Units of the N and D columns (and ``unique_tokens`` with D); converted to raw counts.
    sep : str
        Field separator of a CSV file (default ``","``).
    check_units : bool
        Check that N, D and loss are in the expected units by comparing the losses with what a reference law
        (Hoffmann et al. 2022) gives at the runs' N and D, and raise naming the option that fixes it when
        another reading (N in millions, a perplexity, ...) fits far better. Turn off for unusual sweeps.
    source : str, optional
        Where the data came from (kept for reports).
    drop_copies : bool
        Drop rows that repeat an earlier row exactly (default). Loading a saved fit keeps the sweep as it was
        fitted (``False``).

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
        When rows repeat an earlier row exactly (every column): they are dropped, as copies of one run.
    """
    if isinstance(data, Sweep):
        return data
    if loss_units not in LOSS_UNITS:
        raise DataError(f"loss_units must be one of {', '.join(LOSS_UNITS)}; got {loss_units!r}")
    for option, value in (("n_units", n_units), ("d_units", d_units)):
        if value not in COUNT_UNITS:
            raise DataError(f"{option} must be one of {', '.join(COUNT_UNITS)}; got {value!r}")
    if isinstance(data, str) and data.startswith(DATASET_PREFIX) and not Path(data).exists():
        from bayes_scaling.datasets import DatasetError, info, load

        name, _, query = data.removeprefix(DATASET_PREFIX).partition(":")
        try:
            if info(name).kind != "sweep":
                raise DataError(f"{name} holds training-loss curves, not a sweep of final losses: fit them with "
                                "bayes_scaling.curves.fit_curves or `bayes-scaling curve fit dataset:" + name + "`")
            frame = load(name, query=query or None)
        except DatasetError as exc:
            raise DataError(str(exc)) from None
        source = source or data
    elif isinstance(data, str | Path):
        path = Path(data)
        frame = _read_csv(path, sep=sep)
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
        if (frame["loss"] < 1).any():
            raise DataError(f"column 'loss' read as perplexity must be >= 1; {_rows(frame['loss'].to_numpy() < 1)} "
                            "are below 1 (is it a loss in nats?)")
        frame["loss"] = np.log(frame["loss"])
    frame["N"] = frame["N"] * COUNT_UNITS[n_units]
    for column in ("D", "unique_tokens"):
        if column in frame.columns:
            frame[column] = frame[column] * COUNT_UNITS[d_units]
    if check_units:
        _check_unit_relation(frame, {"loss_units": loss_units, "n_units": n_units, "d_units": d_units})
        _check_units(frame, loss_units)
        _check_bits(frame, loss_units)
        _check_falls_with_scale(frame)
    if "C" not in frame.columns:
        frame["C"] = FLOPS_PER_PARAM_TOKEN * frame["N"] * frame["D"]
    if "experts" in frame.columns and (frame["experts"].to_numpy() < 1).any():
        raise DataError(f"column 'experts' must be >= 1 (a dense model has 1 expert); "
                        f"{_rows(frame['experts'].to_numpy() < 1)} are below 1")
    if "unique_tokens" in frame.columns:
        too_many = frame["unique_tokens"].to_numpy() > frame["D"].to_numpy() * (1 + 1e-9)
        if too_many.any():
            raise DataError(
                f"column 'unique_tokens' must not exceed D (tokens seen); {_rows(too_many)} have more unique "
                "tokens than training tokens"
            )
    duplicated = frame.duplicated(keep="first").to_numpy()
    if drop_copies and duplicated.any():
        warnings.warn(
            f"{_rows(duplicated)} repeat earlier rows exactly (every column, the loss included) and were dropped: "
            "copies of one run, not replicates (a re-run with another seed differs in its loss)",
            DataWarning,
            stacklevel=2,
        )
        frame = frame[~duplicated]
        if len(frame) < MIN_ROWS:
            raise DataError(f"a sweep needs at least {MIN_ROWS} distinct runs; got {len(frame)} after dropping "
                            "exact copies")
    return Sweep(frame=frame.reset_index(drop=True), source=source, renamed=renamed)


def _reference_misfit(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> float:
    """Median log ratio of observed loss to the reference law's loss at (n, d)."""
    p = _REFERENCE_LAW
    with np.errstate(over="ignore", divide="ignore"):
        predicted = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
        return float(np.median(np.log(loss / predicted)))


def _check_unit_relation(frame: pd.DataFrame, given: Mapping[str, str]) -> None:
    """Raise when another reading of the units fits the loss-N-D relation far better than the one given.

    Not a threshold on one column: the losses are compared with a reference law evaluated at the runs' own N
    and D, so a 1e5-parameter model with loss 8 passes, while losses of 2.5 at N = 57 ("57M" without the M)
    or losses of 8-19 at N = 1e9 (a perplexity) do not.
    """
    n, d, loss = (frame[c].to_numpy(dtype=float) for c in ("N", "D", "loss"))
    current = abs(_reference_misfit(n, d, loss))
    if current <= math.log(_UNIT_MISFIT):
        return
    readings = []
    for n_name, n_mult in COUNT_UNITS.items():
        for d_name, d_mult in COUNT_UNITS.items():
            for perplexity in (False, True):
                if n_mult == d_mult == 1 and not perplexity:
                    continue
                if perplexity and (loss < 1).any():
                    continue
                misfit = abs(_reference_misfit(n * n_mult, d * d_mult, np.log(loss) if perplexity else loss))
                readings.append((misfit, n_name, d_name, perplexity))
    misfit, n_name, d_name, perplexity = min(readings)
    if misfit > math.log(_UNIT_FIT) or current - misfit < math.log(2.0):
        return
    fixes, options = [], []
    if n_name != "raw":
        now = given["n_units"]
        fixes.append(f"N looks like it is in {n_name}" + ("" if now == "raw" else f" of {now}"))
        options.append("--n-units " + n_name if now == "raw" else "a larger --n-units")
    if d_name != "raw":
        now = given["d_units"]
        fixes.append(f"D looks like it is in {d_name}" + ("" if now == "raw" else f" of {now}"))
        options.append("--d-units " + d_name if now == "raw" else "a larger --d-units")
    if perplexity:
        fixes.append("the loss column looks like a perplexity, not a loss")
        options.append("--loss-units perplexity")
    python = ", ".join(
        o.replace("--", "").replace("-", "_").replace(" ", "='", 1) + "'" for o in options if "larger" not in o
    )
    raise DataError(
        f"{'; '.join(fixes)}: the losses ({loss.min():.3g}-{loss.max():.3g}) are {math.exp(current):.0f}x away from "
        f"what language models of N = {n.min():.3g}-{n.max():.3g} parameters trained on D = {d.min():.3g}-"
        f"{d.max():.3g} tokens reach, and within {math.exp(misfit):.2f}x when read that way. Fix it with "
        f"{' and '.join(options)}" + (f" (Python: {python})" if python else "")
        + "; if the units are right, turn this check off with --no-unit-check (check_units=False)"
    )


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


def _check_bits(frame: pd.DataFrame, loss_units: str) -> None:
    """Raise when the losses read as nats are far above the reference law and read as bits fit it."""
    if loss_units != "nats":
        return
    n, d, loss = (frame[c].to_numpy(dtype=float) for c in ("N", "D", "loss"))
    ratio = math.exp(_reference_misfit(n, d, loss))
    as_bits = ratio * math.log(2.0)
    if ratio > _BITS_RATIO and 1 / _UNIT_FIT < as_bits < _BITS_RATIO:
        raise DataError(
            f"the loss column looks like it is in bits, not nats: the losses ({loss.min():.3g}-{loss.max():.3g}) are "
            f"{ratio:.2f}x what language models of N = {n.min():.3g}-{n.max():.3g} parameters trained on D = "
            f"{d.min():.3g}-{d.max():.3g} tokens reach, and {as_bits:.2f}x when multiplied by ln 2. Fix it with "
            "--loss-units bits (Python: loss_units='bits'); if the losses are nats, turn this check off with "
            "--no-unit-check (check_units=False)"
        )


def _check_falls_with_scale(frame: pd.DataFrame) -> None:
    """Raise when the 'loss' clearly rises with N at fixed D, or with D at fixed N: an accuracy or a score.

    The slope of log loss along scale (log N + log D) is checked, and the slopes on log N and log D estimated
    together (least squares) unless N and D move together (|correlation| above 0.98, e.g. a fixed
    tokens-per-parameter ladder).
    Multi-epoch sweeps (``unique_tokens`` below D) are not checked: repeating data can make larger runs worse.
    """
    if "unique_tokens" in frame.columns and (frame["unique_tokens"] < frame["D"] * (1 - 1e-9)).any():
        return
    y = np.log(frame["loss"].to_numpy(dtype=float))
    log_n, log_d = (np.log(frame[c].to_numpy(dtype=float)) for c in ("N", "D"))
    varies = [name for name, x in (("N", log_n), ("D", log_d)) if np.ptp(x) > 0]
    if not varies:
        return
    fits: list[dict[str, np.ndarray]] = [{"scale (N and D together)": log_n + log_d}] if len(varies) == 2 else []
    if len(varies) == 1 or abs(np.corrcoef(log_n, log_d)[0, 1]) <= 0.98:
        fits.append({f"{name} at fixed {'D' if name == 'N' else 'N'}" if len(varies) == 2 else name:
                     log_n if name == "N" else log_d for name in varies})
    for slopes in fits:
        _check_slopes(y, slopes)


def _check_slopes(y: np.ndarray, slopes: Mapping[str, np.ndarray]) -> None:
    """Raise when log loss clearly rises along any of ``slopes`` (least squares on all of them together)."""
    design = np.column_stack([np.ones_like(y), *(x - x.mean() for x in slopes.values())])
    if len(y) <= design.shape[1] + 1:
        return
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    variance = residual @ residual / (len(y) - design.shape[1])
    cov = variance * np.linalg.pinv(design.T @ design)
    for k, what in enumerate(slopes, start=1):
        t = coef[k] / math.sqrt(max(cov[k, k], 1e-300))
        if coef[k] > 0 and t > _RISING_T:
            raise DataError(
                f"column 'loss' rises with {what} (slope of log-loss on log {what.split(' ')[0]} {coef[k]:+.3f}, "
                f"t = {t:.1f}): a loss falls as models and data grow. Is it an accuracy or another score where "
                "higher is better? Give the loss in nats/token (a benchmark error, 1 - accuracy, goes to "
                "fit-downstream); if the column is a loss, turn this check off with --no-unit-check "
                "(check_units=False)"
            )


def check_identifiable(law: ScalingLaw, sweep: Sweep) -> None:
    """Raise :class:`DataError` when an input of ``law`` takes a single value in ``sweep``.

    A law with a term in N (or D) cannot separate that term's level and exponent from E when every run has the
    same N (or D); the message names the law that fits such a sweep instead.
    """
    from bayes_scaling.laws import INPUT_COLUMNS

    instead = {"N": "tokens", "D": "params"}
    # a missing column is reported by the model builder
    distinct = {k: np.unique(sweep.column(INPUT_COLUMNS[k])) for k in law.inputs
                if k in INPUT_COLUMNS and INPUT_COLUMNS[k] in sweep.frame}
    for key, values in distinct.items():
        if len(values) > 1:
            continue
        column = INPUT_COLUMNS[key]
        what = {"N": "model size", "D": "token count", "C": "compute", "unique_tokens": "unique-token count",
                "experts": "expert count"}[column]
        others = [k for k, v in distinct.items() if k != key and len(v) > 1]
        hint = (f"; fit law {instead[key]!r} (a function of {INPUT_COLUMNS['D' if key == 'N' else 'N']} alone) "
                "instead" if key in instead and others and set(law.inputs) <= {"N", "D", "T"} else "")
        raise DataError(
            f"law {law.name!r} cannot be identified from this sweep: every run has the same {what} "
            f"({column} = {values[0]:.4g}), so the law's {column} term cannot be told apart from E; it needs runs at "
            f"two or more values of {column}{hint}"
        )
