"""Many fits at once: per group x law x cutoff, serially, in local processes, or on a Dask cluster.

Every task gets its seed from ``(seed, task number)`` before anything runs, so the draws of a task do
not depend on where or in which order it runs: serial, process-parallel and Dask results are identical.
"""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.data import DataError, Sweep, load_sweep
from bayes_scaling.inference import Sampling
from bayes_scaling.intervals import check_prob, interval_table
from bayes_scaling.laws import get_law
from bayes_scaling.model import Likelihood

__all__ = ["FitMany", "Task", "fit_many"]


@dataclass(frozen=True)
class Task:
    """One fit: which group, law and size cutoff, and its seed."""

    group: tuple[Any, ...]
    law: str
    cutoff: float | None
    seed: int

    @property
    def key(self) -> tuple[Any, ...]:
        """``(*group values, law, cutoff)``: the task's key in :class:`FitMany`."""
        return (*self.group, self.law, self.cutoff)


def _run(payload: tuple[Task, pd.DataFrame, dict[str, Any]]) -> tuple[Any, str | None]:
    """Run one task (in whichever process); returns (Fit or None, error message or None)."""
    from bayes_scaling.fitting import fit

    task, frame, options = payload
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit(frame, law=task.law, seed=task.seed, warn=False, **options), None
    except Exception as exc:  # reported per task by fit_many
        return None, f"{type(exc).__name__}: {exc}"


class FitMany:
    """Results of :func:`fit_many`: a mapping from task key ``(*group, law, cutoff)`` to a Fit.

    Attributes
    ----------
    by : list of str
        Grouping columns (empty: one group, the whole sweep).
    tasks : list of Task
    fits : dict
        Task key -> :class:`~bayes_scaling.posterior.Fit` for the tasks that succeeded.
    errors : dict
        Task key -> error message for the tasks that failed (only with ``errors="keep"``).
    """

    def __init__(self, by: list[str], tasks: list[Task], fits: dict[tuple, Any], errors: dict[tuple, str]) -> None:
        self.by, self.tasks, self.fits, self.errors = by, tasks, fits, errors

    def __len__(self) -> int:
        return len(self.fits)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fits)

    def __getitem__(self, key: tuple) -> Any:
        return self.fits[key]

    def __repr__(self) -> str:
        return f"<FitMany fits={len(self.fits)} errors={len(self.errors)} by={self.by}>"

    def table(self, names: Sequence[str] | None = None, prob: float | None = None) -> pd.DataFrame:
        """One row per fit: group columns, law, cutoff, runs, parameters and diagnostics.

        Each parameter in ``names`` (default: each law's summary quantities) gets its mean and equal-tailed
        interval at ``prob`` (``<name>_lower``, ``<name>_upper``).
        """
        prob = check_prob(prob)
        rows = []
        for task in self.tasks:
            result = self.fits.get(task.key)
            if result is None:
                continue
            summary = result.summary(prob)
            diag = result.diagnostics()
            row: dict[str, Any] = dict(zip(self.by, task.group, strict=True))
            row.update({"law": task.law, "cutoff": task.cutoff, "runs": len(result.sweep), "seed": task.seed})
            for name in names if names is not None else summary.index:
                if name in summary.index:
                    row[name] = summary.loc[name, "mean"]
                    row[f"{name}_lower"] = summary.loc[name, "lower"]
                    row[f"{name}_upper"] = summary.loc[name, "upper"]
            row.update({"max_r_hat": diag.max_r_hat, "min_ess_bulk": diag.min_ess_bulk,
                        "divergences": diag.divergences, "fit_seconds": result.info.get("fit_seconds")})
            rows.append(row)
        return interval_table(pd.DataFrame(rows), prob)


def _groups(sweep: Sweep, by: list[str]) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    missing = [c for c in by if c not in sweep.frame.columns]
    if missing:
        raise DataError(f"by= names {missing}, not columns of the sweep; it has {', '.join(sweep.frame.columns)}")
    if not by:
        return [((), sweep.frame)]
    return [((key,) if not isinstance(key, tuple) else key, part.reset_index(drop=True))
            for key, part in sweep.frame.groupby(by if len(by) > 1 else by[0], sort=True, dropna=False)]


class _Progress:
    """A one-line counter on stderr, redrawn in place: ``fits done: k/n``."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self._draw()

    def _draw(self) -> None:
        sys.stderr.write(f"\rfits done: {self.done}/{self.total}")
        sys.stderr.flush()

    def step(self) -> None:
        self.done += 1
        self._draw()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def fit_many(
    data: pd.DataFrame | str | Sweep,
    *,
    by: str | Sequence[str] | None = None,
    laws: str | Sequence[str] = ("chinchilla",),
    cutoffs: Sequence[float | None] = (None,),
    seed: int = 0,
    processes: int | None = None,
    client: Any = None,
    errors: str = "raise",
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    sampling: Sampling | None = None,
    progress: bool = False,
    **options: Any,
) -> FitMany:
    """Fit every combination of group x law x cutoff.

    Parameters
    ----------
    data : DataFrame, CSV path or Sweep
        All runs (see :func:`bayes_scaling.load_sweep`).
    by : str or sequence of str, optional
        Grouping column(s): one fit per group (e.g. ``"dataset"``). Default: the whole sweep.
    laws : str or sequence of str
        Law names.
    cutoffs : sequence of float or None
        Fit only runs with ``N <= cutoff`` (for extrapolation studies); ``None`` means all runs.
    seed : int
        Master seed; task ``i`` uses a seed derived from ``(seed, i)``, whatever runs it.
    processes : int, optional
        Run tasks in this many local worker processes (``None`` or 1: serially in this process).
    client : dask.distributed.Client, optional
        Run tasks on this Dask cluster instead (workers need bayes_scaling installed).
    errors : {"raise", "keep"}
        Whether a failed task raises (after all tasks finished) or is recorded in ``FitMany.errors``.
    priors, likelihood
        As in :func:`bayes_scaling.fit`, for every task.
    sampling : Sampling, optional
        Sampling options of every task (:class:`~bayes_scaling.inference.Sampling`); its seed is replaced by the
        task's seed and its progress bar is off.
    progress : bool
        Print ``fits done: k/n`` on stderr as tasks finish (serial and local processes; with Dask, use
        its dashboard).
    **options
        Sampling options as keywords (``draws=500``), replacing those of ``sampling``.

    Returns
    -------
    FitMany
    """
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    if processes is not None and (int(processes) != processes or processes < 1):
        raise ValueError(f"processes must be a positive integer, got {processes!r}")
    if client is not None and processes not in (None, 1):
        raise ValueError("give either processes= (local) or client= (Dask), not both")
    sweep = load_sweep(data)
    by_list = [by] if isinstance(by, str) else list(by or [])
    law_names = [laws] if isinstance(laws, str) else list(laws)
    for name in law_names:
        get_law(name)  # unknown names fail here, before any work
    cutoff_list = list(cutoffs) or [None]
    config = Sampling.of(sampling, **options).to_dict()
    config.pop("seed")
    config["progress"] = False
    options = {"priors": priors, "likelihood": likelihood, **config}
    payloads = []
    for group, frame in _groups(sweep, by_list):
        for law in law_names:
            for cutoff in cutoff_list:
                part = frame if cutoff is None else frame[frame["N"] <= float(cutoff)].reset_index(drop=True)
                task_seed = int(np.random.SeedSequence([int(seed), len(payloads)]).generate_state(1)[0])
                task = Task(group=group, law=law, cutoff=None if cutoff is None else float(cutoff), seed=task_seed)
                payloads.append((task, part, options))
    report = _Progress(len(payloads)) if progress else None
    if client is not None:
        outcomes = client.gather(client.map(_run, payloads, pure=False))
    elif processes and processes > 1 and len(payloads) > 1:
        context = multiprocessing.get_context("spawn")  # a clean interpreter per worker (nutpie uses threads)
        with ProcessPoolExecutor(max_workers=min(processes, len(payloads)), mp_context=context) as pool:
            futures = [pool.submit(_run, payload) for payload in payloads]
            if report is not None:
                for _ in as_completed(futures):
                    report.step()
            outcomes = [future.result() for future in futures]
    else:
        outcomes = []
        for payload in payloads:
            outcomes.append(_run(payload))
            if report is not None:
                report.step()
    if report is not None:
        report.close()
    tasks = [payload[0] for payload in payloads]
    fits = {t.key: result for t, (result, _) in zip(tasks, outcomes, strict=True) if result is not None}
    failed = {t.key: error for t, (_, error) in zip(tasks, outcomes, strict=True) if error is not None}
    if failed and errors == "raise":
        lines = "; ".join(f"{key}: {error}" for key, error in failed.items())
        raise RuntimeError(f"{len(failed)} of {len(tasks)} fits failed (pass errors='keep' to keep the rest): {lines}")
    return FitMany(by_list, tasks, fits, failed)
