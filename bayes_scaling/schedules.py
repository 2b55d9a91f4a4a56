"""Learning-rate schedules: the full per-step learning rate of a training run.

A loss-curve law sums the learning rate over every optimizer step (warmup included), not only over the steps at
which the loss was logged, so a schedule holds the learning rate of *every* step: ``lr[t - 1]`` is the rate of step
``t`` for ``t = 1 .. steps``. Build one with a named constructor (the schedules of the curve literature), from an
array, or from logged (step, lr) points:

>>> from bayes_scaling.schedules import Schedule
>>> cosine = Schedule.cosine(3e-4, 24_000, final=3e-5, warmup=2_160)
>>> wsd = Schedule.wsd(3e-4, 24_000, decay_start=20_000, final=3e-5, decay="geometric", warmup=2_160)
>>> cosine.area([1_000, 24_000])       # S1: the summed learning rate up to each step
>>> Schedule.constant(3e-4, 24_000, warmup=2_160).anneal(at=12_000, over=2_000, final=3e-5)   # "anneal now"

Warmup is linear from 0 to the peak over ``warmup`` steps (``lr_t = peak * t / warmup``). Decays run from the
peak at their start step to ``final`` at the last step: cosine ``final + (peak - final)(1 + cos(pi p)) / 2``,
linear, or geometric ``peak (final / peak)^p`` with ``p`` the fraction of the decay done.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DECAYS", "LI2025_FINAL_RATIO", "LI2025_WARMUP", "Schedule", "ScheduleError", "li2025_misfitting",
           "multipower2025"]

#: Shapes of a decay (``Schedule.wsd(decay=...)``, ``Schedule.anneal(kind=...)``).
DECAYS = ("linear", "cosine", "geometric")


class ScheduleError(ValueError):
    """A schedule that cannot be built or does not cover the steps asked about."""


def _positive(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ScheduleError(f"{what} must be a positive number, got {value!r}")
    return value


def _steps(value: Any, what: str = "steps") -> int:
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise ScheduleError(f"{what} must be a positive whole number of steps, got {value!r}")
    return int(value)


def _decay(kind: str, start: float, final: float, progress: np.ndarray) -> np.ndarray:
    """Learning rate along a decay from ``start`` to ``final`` at ``progress`` in [0, 1]."""
    if kind not in DECAYS:
        raise ScheduleError(f"unknown decay {kind!r}; use one of {', '.join(DECAYS)}")
    if kind == "linear":
        return start + (final - start) * progress
    if kind == "cosine":
        return final + (start - final) * 0.5 * (1.0 + np.cos(np.pi * progress))
    if final <= 0:
        raise ScheduleError("a geometric decay needs a positive final learning rate (it never reaches 0)")
    return start * (final / start) ** progress


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimizer step of one run.

    Attributes
    ----------
    lr : ndarray
        ``lr[t - 1]`` is the learning rate of step ``t`` (``t = 1 .. steps``); finite and non-negative.
    name : str
        A label (the constructor and its arguments, or the user's).
    """

    lr: np.ndarray
    name: str = "custom"
    _area: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lr = np.asarray(self.lr, dtype=float).reshape(-1)
        if lr.size == 0:
            raise ScheduleError("a schedule needs at least one step")
        bad = np.flatnonzero(~np.isfinite(lr) | (lr < 0))
        if bad.size:
            raise ScheduleError(f"learning rates must be finite and >= 0; step {bad[0] + 1} has {lr[bad[0]]!r}"
                                + (f" (and {bad.size - 1} more steps)" if bad.size > 1 else ""))
        lr.setflags(write=False)
        object.__setattr__(self, "lr", lr)
        area = np.cumsum(lr)
        area.setflags(write=False)
        object.__setattr__(self, "_area", area)

    def __len__(self) -> int:
        return int(self.lr.size)

    @property
    def steps(self) -> int:
        """The number of steps the schedule covers."""
        return len(self)

    @property
    def peak(self) -> float:
        """The largest learning rate."""
        return float(self.lr.max())

    def check(self, steps: Any) -> np.ndarray:
        """``steps`` as whole numbers in [0, ``self.steps``]; a clear error for any the schedule does not cover."""
        values = np.asarray(steps, dtype=float)
        flat = values.reshape(-1)
        if not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)):
            raise ScheduleError("steps must be whole numbers")
        beyond = flat[(flat > self.steps) | (flat < 0)]
        if beyond.size:
            raise ScheduleError(f"schedule {self.name!r} covers steps 1-{self.steps:,}; asked about step "
                                f"{int(beyond.max() if beyond.max() > self.steps else beyond.min()):,}: give the "
                                "schedule of the whole run (e.g. its planned length)")
        return values.astype(int)

    def at(self, steps: Any) -> np.ndarray:
        """The learning rate at ``steps`` (1-based; step 0 has rate 0: nothing has been trained)."""
        t = self.check(steps)
        padded = np.concatenate([[0.0], self.lr])
        return padded[t]

    def area(self, steps: Any = None) -> np.ndarray:
        """S1: the summed learning rate of steps 1..t, warmup included (every step when ``steps`` is None)."""
        if steps is None:
            return self._area.copy()
        t = self.check(steps)
        padded = np.concatenate([[0.0], self._area])
        return padded[t]

    def truncate(self, steps: int) -> Schedule:
        """The first ``steps`` steps."""
        steps = _steps(steps)
        self.check(steps)
        return Schedule(self.lr[:steps], name=f"{self.name}[:{steps}]")

    def anneal(self, at: int, over: int, final: float, kind: str = "linear") -> Schedule:
        """The schedule up to step ``at``, then a decay over ``over`` steps to ``final``; the run ends there.

        The counterfactual "anneal now": the same run, decayed from its rate at step ``at``.
        """
        at, over = _steps(at, "at"), _steps(over, "over")
        self.check(at)
        final = float(final)
        if final < 0:
            raise ScheduleError(f"final must be >= 0, got {final!r}")
        start = float(self.lr[at - 1])
        progress = np.arange(1, over + 1) / over
        tail = _decay(kind, start, final, progress)
        return Schedule(np.concatenate([self.lr[:at], tail]), name=f"{self.name} annealed at {at} ({kind}, {over})")

    # ---- constructors --------------------------------------------------------------------------------------
    @staticmethod
    def _warm(peak: float, steps: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
        """(step numbers 1..steps, learning rate with the warmup filled and the peak elsewhere)."""
        if warmup < 0 or warmup >= steps:
            raise ScheduleError(f"warmup must be in [0, steps); got {warmup} of {steps} steps")
        t = np.arange(1, steps + 1, dtype=float)
        lr = np.full(steps, peak)
        if warmup:
            lr[:warmup] = peak * t[:warmup] / warmup
        return t, lr

    @classmethod
    def constant(cls, peak: float, steps: int, *, warmup: int = 0) -> Schedule:
        """A constant rate after a linear warmup."""
        peak, steps = _positive(peak, "peak"), _steps(steps)
        _, lr = cls._warm(peak, steps, int(warmup))
        return cls(lr, name=f"constant({peak:g}, {steps})")

    @classmethod
    def cosine(cls, peak: float, steps: int, *, final: float = 0.0, warmup: int = 0) -> Schedule:
        """Cosine from the peak (at the end of warmup) to ``final`` at the last step."""
        return cls._decayed("cosine", peak, steps, final=final, warmup=warmup, start=None)

    @classmethod
    def linear(cls, peak: float, steps: int, *, final: float = 0.0, warmup: int = 0) -> Schedule:
        """Linear from the peak (at the end of warmup) to ``final`` at the last step."""
        return cls._decayed("linear", peak, steps, final=final, warmup=warmup, start=None)

    @classmethod
    def wsd(cls, peak: float, steps: int, *, decay_start: int, final: float = 0.0, decay: str = "linear",
            warmup: int = 0) -> Schedule:
        """Warmup-stable-decay: the peak until ``decay_start``, then a ``decay`` to ``final`` at the last step."""
        return cls._decayed(decay, peak, steps, final=final, warmup=warmup, start=_steps(decay_start, "decay_start"))

    @classmethod
    def _decayed(cls, kind: str, peak: float, steps: int, *, final: float, warmup: int, start: int | None
                 ) -> Schedule:
        peak, steps, warmup = _positive(peak, "peak"), _steps(steps), int(warmup)
        final = float(final)
        if not 0 <= final <= peak:
            raise ScheduleError(f"final must be in [0, peak={peak:g}], got {final!r}")
        t, lr = cls._warm(peak, steps, warmup)
        begin = warmup if start is None else start
        if not warmup <= begin < steps:
            raise ScheduleError(f"the decay must start after the warmup ({warmup}) and before the last step "
                                f"({steps}); got {begin}")
        late = t > begin
        lr[late] = _decay(kind, peak, final, (t[late] - begin) / (steps - begin))
        label = kind if start is None else f"wsd-{kind}"
        return cls(lr, name=f"{label}({peak:g}, {steps}" + (f", decay from {start}" if start else "") + ")")

    @classmethod
    def two_stage(cls, peak: float, steps: int, *, switch: int, second: float, warmup: int = 0) -> Schedule:
        """The peak before step ``switch``, then a constant ``second`` rate from step ``switch`` to the last."""
        peak, steps, switch = _positive(peak, "peak"), _steps(steps), _steps(switch, "switch")
        second = _positive(second, "second")
        if not int(warmup) < switch <= steps:
            raise ScheduleError(f"switch must be after the warmup and before the last step; got {switch}")
        t, lr = cls._warm(peak, steps, int(warmup))
        lr[t >= switch] = second
        return cls(lr, name=f"two_stage({peak:g} -> {second:g} at {switch}, {steps})")

    @classmethod
    def parse(cls, spec: str) -> Schedule:
        """A schedule from a one-line spec, ``KIND:name=value,...`` (the command line's ``--schedule``).

        ``KIND`` is a constructor: ``constant``, ``cosine``, ``linear``, ``wsd``, ``two_stage``, with its arguments
        by name, e.g. ``cosine:peak=3e-4,steps=24000,final=3e-5,warmup=2160`` or
        ``wsd:peak=3e-4,steps=24000,decay_start=20000,final=3e-5,decay=geometric``.
        """
        kind, _, rest = str(spec).partition(":")
        kind = kind.strip()
        builders = {"constant": cls.constant, "cosine": cls.cosine, "linear": cls.linear, "wsd": cls.wsd,
                    "two_stage": cls.two_stage}
        if kind not in builders:
            raise ScheduleError(f"unknown schedule kind {kind!r} in {spec!r}; use one of {', '.join(builders)} "
                                "as KIND:name=value,... (e.g. cosine:peak=3e-4,steps=24000,warmup=2000)")
        args: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ScheduleError(f"schedule {spec!r}: {part!r} is not name=value")
            key = key.strip()
            if key == "decay":
                args[key] = value.strip()
                continue
            try:
                number = float(value)
            except ValueError:
                raise ScheduleError(f"schedule {spec!r}: {key}={value!r} is not a number") from None
            args[key] = int(number) if key in ("steps", "warmup", "decay_start", "switch") else number
        if "peak" not in args or "steps" not in args:
            raise ScheduleError(f"schedule {spec!r} needs peak= and steps=")
        peak, steps = args.pop("peak"), args.pop("steps")
        try:
            return builders[kind](peak, steps, **args)
        except TypeError as exc:
            raise ScheduleError(f"schedule {spec!r}: {exc}") from None

    @classmethod
    def from_array(cls, lr: Sequence[float] | np.ndarray, *, name: str = "custom") -> Schedule:
        """A schedule from the learning rate of every step (``lr[0]`` is step 1)."""
        return cls(np.asarray(lr, dtype=float), name=name)

    @classmethod
    def from_points(cls, steps: Sequence[float] | np.ndarray, lr: Sequence[float] | np.ndarray, *,
                    last: int | None = None, name: str = "logged") -> Schedule:
        """A schedule from logged (step, lr) points: linear between them, from rate 0 at step 0 to the first.

        Logged points are sparse (every 128 steps, say); the rates between them are interpolated linearly, which
        is exact for constant, linear and two-stage schedules and close for smooth ones. ``last`` (default the
        last logged step) is the run's final step; the rate is held after the last point. Give the schedule from
        its constructor where it is known: the warmup before the first logged step is guessed as linear from 0.
        """
        x = np.asarray(steps, dtype=float).reshape(-1)
        y = np.asarray(lr, dtype=float).reshape(-1)
        if x.size != y.size or x.size == 0:
            raise ScheduleError(f"steps and lr need the same, non-zero length; got {x.size} and {y.size}")
        if np.any(~np.isfinite(x)) or np.any(np.diff(x) <= 0) or x[0] < 1:
            raise ScheduleError("logged steps must be increasing whole numbers >= 1")
        end = int(x[-1]) if last is None else _steps(last, "last")
        if end < x[-1]:
            raise ScheduleError(f"last ({end}) is before the last logged step ({int(x[-1])})")
        t = np.arange(1, end + 1, dtype=float)
        rate = np.interp(t, np.concatenate([[0.0], x]), np.concatenate([[0.0], y]))
        return cls(rate, name=name)

    @classmethod
    def from_column(cls, frame: Any, *, step: str = "step", lr: str = "lr", last: int | None = None) -> Schedule:
        """:meth:`from_points` from a table's ``step`` and ``lr`` columns (clear errors for missing ones)."""
        missing = [c for c in (step, lr) if c not in frame.columns]
        if missing:
            raise ScheduleError(f"column(s) {', '.join(map(repr, missing))} not in the table; it has "
                                f"{', '.join(map(repr, frame.columns))}")
        ordered = frame.sort_values(step)
        return cls.from_points(ordered[step].to_numpy(), ordered[lr].to_numpy(), last=last, name=f"column {lr!r}")


def multipower2025() -> dict[str, Schedule]:
    """The nine schedules of Luo et al. 2025's released curves (dataset ``multipower2025``), by its names.

    Peak 3e-4 after 2,160 warmup steps; cosine and WSD end at 3e-5 (WSD decays over its last 4,000 of 24,000 steps,
    geometric for ``wsd``, linear for ``wsdld``); ``wsdcon_<k>`` steps down to k e-5 at step 8,000 of 16,000. Each
    reproduces the logged learning rate at every logged step (tested).
    """
    peak, final, warmup = 3e-4, 3e-5, 2_160
    out = {f"constant_{n}": Schedule.constant(peak, n, warmup=warmup) for n in (24_000, 72_000)}
    out.update({f"cosine_{n}": Schedule.cosine(peak, n, final=final, warmup=warmup) for n in (24_000, 72_000)})
    for name, decay in (("wsd", "geometric"), ("wsdld", "linear")):
        out[f"{name}_20000_24000"] = Schedule.wsd(peak, 24_000, decay_start=20_000, final=final, decay=decay,
                                                  warmup=warmup)
    for k in (3, 9, 18):
        out[f"wsdcon_{k}"] = Schedule.two_stage(peak, 16_000, switch=8_000, second=k * 1e-5, warmup=warmup)
    return out


#: li2025_misfitting's warmup (steps) and final learning rate (a fraction of the peak): ``NUM_WARMUP_STEPS`` and
#: ``END_LR_RATIO`` of the sweep configuration (``open_lm/constants/slurm_constants.py`` of
#: github.com/hadasah/scaling_laws at the dataset's pinned commit; ``--lr-cooldown-end-ratio`` of open_lm's cosine).
LI2025_WARMUP = 50
LI2025_FINAL_RATIO = 0.1
_LI2025_RUN = re.compile(r"^(?P<model>.+)_steps(?P<steps>\d+)_lr(?P<peak>[0-9.]+(?:e-?\d+)?)$")


def li2025_misfitting(runs: Iterable[str]) -> dict[str, Schedule]:
    """The schedules of li2025_misfitting's runs (``load_curves("li2025_misfitting")``), by run name.

    A run ``<model>_steps<n>_lr<peak>`` ran open_lm's cosine schedule planned for its ``n`` steps: linear warmup
    over :data:`LI2025_WARMUP` steps to ``peak``, then a cosine to :data:`LI2025_FINAL_RATIO` x ``peak`` at step
    ``n``. The data do not log the learning rate: this is the repository's sweep configuration at the pinned
    commit, read as its training script passes it. The data's checkpoint interval (128 steps) is not that file's
    64, so the file may not hold every run's exact settings: a cosine to 0 instead of 0.1 x peak would have 9% less
    summed rate at a run's end. Names that are not such runs are left out.
    """
    out = {}
    for run in runs:
        match = _LI2025_RUN.match(str(run))
        if match is None:
            continue
        peak, steps = float(match["peak"]), int(match["steps"])
        out[str(run)] = Schedule.cosine(peak, steps, final=LI2025_FINAL_RATIO * peak, warmup=min(LI2025_WARMUP,
                                                                                                  steps - 1))
    return out
