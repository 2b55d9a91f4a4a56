"""``bayes-scaling curve fit|forecast|compare``: loss curves under learning-rate schedules (experimental).

``curve fit`` fits a curve law to runs' logged losses, each with its full schedule (a constructor spec per run, the
logged ``lr`` column, or a named set); ``curve forecast`` gives the loss at chosen steps of a schedule (a fitted
run's, a new one, or "anneal now"), for a new run or continuing a fitted run in flight; ``curve compare`` gives the
difference between two schedules at a step with the probability that the first ends lower (paired draws).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bayes_scaling.cli import common

#: Named schedule sets ``--schedules`` knows (run name -> schedule): multipower2025's nine, and li2025_misfitting's
#: (each run's, from its name).
SCHEDULE_SETS = ("multipower2025", "li2025_misfitting")


def _named_schedules(name: str, runs: Any = ()) -> dict[str, Any]:
    """The schedules of set ``name`` (those of ``runs``, by name, for a set built from run names)."""
    from bayes_scaling.schedules import li2025_misfitting, multipower2025

    sets = {"multipower2025": lambda _runs: multipower2025(), "li2025_misfitting": li2025_misfitting}
    return sets[name](runs)


def _pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` arguments as pairs (a clear error for anything else)."""
    out = []
    for value in values or ():
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise ValueError(f"{option} takes NAME=VALUE, got {value!r}")
        out.append((name.strip(), rest.strip()))
    return out


def _read_points(args: argparse.Namespace) -> Any:
    """The logged points: the CSV, filtered by ``--where`` and ``--runs``, cut at ``--until``."""
    import pandas as pd

    from bayes_scaling.data import DATASET_PREFIX

    text = str(args.data)
    if text.startswith(DATASET_PREFIX) and not Path(text).exists():  # a public set of curves, e.g. multipower2025
        from bayes_scaling.datasets import info, load_curves

        name = text.removeprefix(DATASET_PREFIX)
        entry = info(name)
        if entry.kind != "curves" and entry.curves is None:
            raise ValueError(f"{name} is a sweep of final losses, not loss curves: fit it with `bayes-scaling fit "
                             f"dataset:{name}`")
        frame = load_curves(name)  # a sweep's own curves table where it has one (li2025_misfitting's checkpoints)
    else:
        frame = pd.read_csv(args.data, sep=args.sep)
    for column, value in _pairs(args.where, "--where"):
        if column not in frame.columns:
            raise ValueError(f"--where: column {column!r} is not in {args.data}; it has "
                             f"{', '.join(map(str, frame.columns))}")
        frame = frame[frame[column].astype(str) == value]
        if frame.empty:
            raise ValueError(f"--where {column}={value}: no row of {args.data} has that value")
    if args.run_column not in frame.columns:
        raise ValueError(f"--run-column: column {args.run_column!r} is not in {args.data}; it has "
                         f"{', '.join(map(str, frame.columns))}")
    frame = frame.assign(**{args.run_column: frame[args.run_column].astype(str)})
    if args.runs:
        wanted = [r.strip() for r in args.runs.split(",") if r.strip()]
        unknown = sorted(set(wanted) - set(frame[args.run_column]))
        if unknown:
            raise ValueError(f"--runs: no run {', '.join(map(repr, unknown))} in the data; runs: "
                             f"{', '.join(sorted(set(frame[args.run_column])))}")
        frame = frame[frame[args.run_column].isin(wanted)]
    if args.until is not None:
        frame = frame[frame[args.step_column] <= args.until]
        if frame.empty:
            raise ValueError(f"--until {args.until}: no logged point at or before that step")
    return frame


#: The column ``--size-column``'s parsed counts go to (named apart from any column of the user's data).
SIZE_KEY = "__parameters__"
#: Suffixes a model size may carry in ``--size-column`` (``25M``: 25 million parameters).
COUNT_SUFFIXES = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parse_count(value: Any) -> float:
    """A parameter count: a number, or one with a K/M/B/T suffix (``"25M"`` -> 2.5e7); ``ValueError`` otherwise."""
    text = str(value).strip()
    scale = COUNT_SUFFIXES.get(text[-1:].upper(), 1.0) if text else 1.0
    number = text[:-1] if scale != 1.0 else text
    try:
        count = float(number) * scale
    except ValueError:
        raise ValueError(f"{value!r} is not a parameter count (a number, or one with a K, M, B or T suffix such "
                         "as 25M)") from None
    if not count > 0 or count == float("inf"):
        raise ValueError(f"a parameter count must be positive and finite, got {value!r}")
    return count


def _with_sizes(args: argparse.Namespace, frame: Any) -> tuple[Any, dict[str, str]]:
    """``--size-column``: runs renamed SIZE/RUN (a schedule name may repeat across sizes) with a numeric ``N``.

    Returns the frame and each new run name's original name (for its schedule).
    """
    column = args.size_column
    if column not in frame.columns:
        raise ValueError(f"--size-column: column {column!r} is not in {args.data}; it has "
                         f"{', '.join(map(str, frame.columns))}")
    labels, names = frame[column].astype(str), frame[args.run_column]
    runs = labels + "/" + names
    counts = []
    for row, label in enumerate(labels, start=1):
        try:
            counts.append(parse_count(label))
        except ValueError as exc:
            raise ValueError(f"--size-column {column}: row {row} (counted from 1, after --where/--runs): {exc}"
                             ) from None
    return frame.assign(**{args.run_column: runs, SIZE_KEY: counts}), dict(zip(runs, names, strict=True))


def _schedules(args: argparse.Namespace, frame: Any, original: dict[str, str] | None = None) -> dict[str, Any]:
    """Each run's schedule: ``--schedule RUN=SPEC`` first, then the named set, then the logged ``--lr-column``.

    ``original``: with ``--size-column``, each run's name before its size was prefixed (named sets and
    ``--schedule`` know runs by it).
    """
    from bayes_scaling.schedules import Schedule

    runs = list(dict.fromkeys(frame[args.run_column]))
    original = original or {}
    out: dict[str, Any] = {}
    if args.schedules:
        named = _named_schedules(args.schedules, [original.get(r, r) for r in runs])
        out.update({r: named[original.get(r, r)] for r in runs if original.get(r, r) in named})
    for run, spec in _pairs(args.schedule, "--schedule"):
        schedule = Schedule.parse(spec)
        out[run] = schedule
        out.update({r: schedule for r in runs if original.get(r) == run})
    if args.lr_column:
        if args.lr_column not in frame.columns:
            raise ValueError(f"--lr-column: column {args.lr_column!r} is not in {args.data}")
        for run in runs:
            if run not in out:
                part = frame[frame[args.run_column] == run]
                out[run] = Schedule.from_column(part, step=args.step_column, lr=args.lr_column)
    missing = [r for r in runs if r not in out]
    if missing:
        raise ValueError(f"no schedule for run(s) {', '.join(map(repr, missing))}: give --schedule RUN=SPEC, "
                         f"--schedules NAME ({', '.join(SCHEDULE_SETS)}) or --lr-column")
    return out


def _fit(args: argparse.Namespace) -> int:
    from bayes_scaling.curves import fit_curves

    frame, original = _read_points(args), None
    if args.size_column:
        frame, original = _with_sizes(args, frame)
    schedules = _schedules(args, frame, original)
    schedules = {r: schedules[r] for r in dict.fromkeys(frame[args.run_column])}  # _schedules checked each run
    common.say(args, f"fitting {len(frame)} logged points of {len(schedules)} run(s) with {args.law} ...")
    # as keywords, not a Sampling: what the command line leaves unset keeps fit_curves' defaults (its step size)
    result = fit_curves(frame, schedules, args.law, noise=args.noise, run=args.run_column, step=args.step_column,
                        loss=args.loss_column, extrapolation=args.extrapolation,
                        sizes=SIZE_KEY if args.size_column else None, **common.sampling_options(args))
    if args.out is not None:
        result.save(args.out, overwrite=args.force)
    sizes = result.sizes
    across = "" if sizes is None else (f"; across {len(set(sizes.values()))} model sizes (level by a law in N: "
                                       "forecast another size with --N)")
    return common.report_fit(result, args, f"curve law {result.law.name}, {result.noise} noise: {len(result.data)} "
                             f"points of {len(result.schedules)} run(s) ({', '.join(result.schedules)}){across}\n"
                             + result.term_line())


def _schedule_of(result: Any, spec: str) -> Any:
    """A fitted run's schedule (by name), a named set's (multipower2025's ``wsd_20000_24000``) or a spec's."""
    from bayes_scaling.schedules import Schedule

    if spec in result.schedules:
        return result.schedules[spec]
    for name in SCHEDULE_SETS:
        known = _named_schedules(name, [spec])
        if spec in known:
            return known[spec]
    if ":" not in spec:
        raise ValueError(f"schedule {spec!r} is neither a fitted run ({', '.join(result.schedules)}), nor one of "
                         f"the named sets' ({', '.join(SCHEDULE_SETS)}), nor a spec KIND:name=value,... (e.g. "
                         "cosine:peak=3e-4,steps=24000,warmup=2000)")
    return Schedule.parse(spec)


def _size_for(result: Any, spec: str | None, N: float | None) -> float | None:
    """``--N``, else (a fit across sizes) the size of the fitted run a schedule is named by."""
    sizes = result.sizes
    if N is None and sizes is not None and spec in sizes:
        return sizes[spec]
    return N


def _anneal(schedule: Any, text: str | None) -> Any:
    if text is None:
        return schedule
    parts = text.split(",")
    if len(parts) not in (3, 4):
        raise ValueError(f"--anneal takes AT,OVER,FINAL[,KIND] (e.g. 12000,2000,3e-5), got {text!r}")
    try:
        at, over, final = int(float(parts[0])), int(float(parts[1])), float(parts[2])
    except ValueError:
        raise ValueError(f"--anneal takes numbers AT,OVER,FINAL[,KIND], got {text!r}") from None
    return schedule.anneal(at, over, final, *(parts[3:] or ["linear"]))


def _steps(text: str | None, schedule: Any) -> list[int]:
    if text is None:
        return [schedule.steps]
    try:
        return [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--steps takes whole numbers separated by commas, got {text!r}") from None


def _load(path: Path) -> Any:
    from bayes_scaling.curves import load_curves

    return load_curves(path)


def _forecast(args: argparse.Namespace) -> int:
    result = _load(args.fit)
    if args.schedule is None and args.run is None:
        raise ValueError("give --schedule (a fitted run's name or a spec such as cosine:peak=3e-4,steps=24000) "
                         "or --run RUN (continue a fitted run in flight)")
    if args.run is not None and args.run not in result.schedules:
        raise ValueError(f"--run: no fitted run {args.run!r}; runs: {', '.join(result.schedules)}")
    schedule = _anneal(_schedule_of(result, args.schedule or args.run), args.anneal)
    steps = _steps(args.steps, schedule)
    size = args.N if args.run is not None else _size_for(result, args.schedule, args.N)  # a run keeps its own
    table = result.forecast(schedule, steps, run=args.run, prob=args.prob, seed=args.seed, N=size)
    if args.plot is not None:
        from bayes_scaling.outputs import write_file
        from bayes_scaling.plots import plot_curve

        curve = result.forecast(schedule, result.plot_steps(schedule), run=args.run, prob=args.prob, seed=args.seed,
                                N=size)
        observed = None
        if args.run:  # the run's logged points the drawn schedule covers
            observed = result.data[(result.data["run"] == args.run) & (result.data["step"] <= schedule.steps)]
        fig = plot_curve(curve, lr=schedule.lr, observed=observed, prob=args.prob, title=schedule.name)
        write_file(args.plot, lambda tmp: fig.savefig(tmp, dpi=110, format=args.plot.suffix.lstrip(".") or "png"),
                   overwrite=args.force)
    if args.json:
        common.print_json({"schedule": schedule.name, "run": args.run, "N": size, **table.to_payload()})
    else:
        what = f"run {args.run!r} continued" if args.run else "a new run"
        at = "" if result.sizes is None else f", {size or result.sizes[args.run]:.4g} parameters"
        print(f"{what} under {schedule.name} (curve law {result.law.name}, {result.noise} noise{at})")
        print(result.term_line())
        print(common.format_table(table))
    return 0


def _compare(args: argparse.Namespace) -> int:
    result = _load(args.fit)
    a = _anneal(_schedule_of(result, args.a), args.anneal_a)
    b = _anneal(_schedule_of(result, args.b), args.anneal_b)
    steps = _steps(args.steps, a if a.steps <= b.steps else b)
    size = _size_for(result, args.a, args.N)
    if size is None:
        size = _size_for(result, args.b, None)
    table = result.compare(a, b, steps, prob=args.prob, seed=args.seed, N=size)
    if args.json:
        common.print_json({"a": a.name, "b": b.name, **table.to_payload()})
    else:
        print(f"A = {a.name}\nB = {b.name}\nloss difference A - B (negative: A lower); p_a_lower = P(A's expected "
              "loss is lower), paired posterior draws")
        print(common.format_table(table))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command with parsed ``args``; returns the exit status."""
    return {"fit": _fit, "forecast": _forecast, "compare": _compare}[args.curve_command](args)


def add_parser(sub: Any) -> None:
    """Add the ``curve`` command (``fit``, ``forecast``, ``compare``) to the sub-command parsers ``sub``."""
    from bayes_scaling.curve_laws import CURVE_LAWS
    from bayes_scaling.curves import CURVE_NOISE

    p = sub.add_parser("curve", help="loss curves under learning-rate schedules: fit, forecast, compare "
                       "(experimental)")
    actions = p.add_subparsers(dest="curve_command", required=True, metavar="ACTION")

    f = actions.add_parser("fit", help="fit a curve law to logged losses with their schedules")
    f.add_argument("data", type=Path, help="CSV with one row per logged point: run, step, loss (and lr); or "
                                           "dataset:NAME for a public set of curves (dataset:multipower2025, or "
                                           "a sweep's own: dataset:li2025_misfitting, dataset:clark2022_routing)")
    f.add_argument("--run-column", default="run", help="column naming each run (default run)")
    f.add_argument("--step-column", default="step", help="column of optimizer steps (default step)")
    f.add_argument("--loss-column", default="loss", help="column of losses, nats/token (default loss)")
    f.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="keep the rows where COLUMN equals VALUE (repeatable), e.g. model=25M")
    f.add_argument("--runs", default=None, metavar="A,B,..", help="fit only these runs")
    f.add_argument("--until", type=int, default=None, metavar="STEP",
                   help="use the points logged up to STEP only (runs in flight)")
    f.add_argument("--schedule", action="append", metavar="RUN=SPEC",
                   help="a run's full schedule, e.g. 'cos1=cosine:peak=3e-4,steps=24000,final=3e-5,warmup=2000' "
                        "(kinds: constant, cosine, linear, wsd, two_stage; repeatable)")
    f.add_argument("--schedules", choices=SCHEDULE_SETS, default=None,
                   help="a named set of schedules, by run name (multipower2025: the nine of Luo et al. 2025; "
                        "li2025_misfitting: each run's cosine, from its name)")
    f.add_argument("--lr-column", default=None, metavar="COLUMN",
                   help="otherwise each run's schedule from its logged rates (linear between logged steps, a "
                        "linear warmup from 0 before the first)")
    f.add_argument("--law", choices=list(CURVE_LAWS), default="multipower", help="curve law (default multipower)")
    f.add_argument("--noise", choices=CURVE_NOISE, default="white",
                   help="residuals along a run (default white; ar1: correlated along steps; offset: one per run "
                        "plus white noise)")
    f.add_argument("--no-extrapolation", dest="extrapolation", action="store_false",
                   help="learn no extrapolation terms (by default one in steps, by forward chaining along each "
                        "run, widens forecasts beyond the logged steps, and one across schedules, from runs left "
                        "out, widens forecasts of schedules unlike the fitted ones)")
    f.add_argument("--size-column", default=None, metavar="COLUMN",
                   help="each run's model size in parameters (a number or with a K/M/B/T suffix, e.g. 25M): one "
                        "fit across sizes, the level following a law in N; runs are then named SIZE/RUN")
    f.add_argument("--sep", default=",", help="CSV field separator (default ',')")
    f.add_argument("--out", type=Path, default=None, help="save the curve fit to this netCDF file")
    f.add_argument("--force", action="store_true", help="replace --out if it exists")
    common.add_json(f)
    common.add_sampling(f, law_options=False)

    for name, text in (("forecast", "the loss at steps of a schedule: a new run, a fitted run in flight, or "
                                    "'anneal now'"),
                       ("compare", "two schedules at a step: the loss difference and P(the first ends lower)")):
        q = actions.add_parser(name, help=text)
        q.add_argument("fit", type=Path, help="a curve fit saved by `bayes-scaling curve fit --out`")
        q.add_argument("--steps", default=None, metavar="S1,S2,..",
                       help="steps to forecast (default: the schedule's last step)")
        common.add_prob(q)
        q.add_argument("--seed", type=common.seed_arg, default=0, help="seed of the predictive draws (default 0)")
        q.add_argument("--N", type=parse_count, default=None, metavar="PARAMS",
                       help="a fit across sizes: the model size of a new run (e.g. 4e8 or 400M); a fitted run's "
                            "is its own")
        common.add_json(q)
        if name == "forecast":
            q.add_argument("--schedule", default=None, metavar="RUN|SPEC",
                           help="a fitted run's schedule by name, a named set's (e.g. wsd_20000_24000 of "
                                "multipower2025), or a new one (a spec, as in curve fit)")
            q.add_argument("--run", default=None, help="continue this fitted run (in flight) instead of a new run")
            q.add_argument("--anneal", default=None, metavar="AT,OVER,FINAL[,KIND]",
                           help="anneal now: the schedule up to step AT, then a decay over OVER steps to FINAL")
            q.add_argument("--plot", type=Path, default=None, metavar="FILE",
                           help="draw the curve with its bands and the schedule beneath (PNG/PDF/SVG)")
            q.add_argument("--force", action="store_true", help="replace --plot if it exists")
        else:
            for side in ("a", "b"):
                q.add_argument(f"--{side}", required=True, metavar="RUN|SPEC",
                               help=f"schedule {side.upper()}: a fitted run's name or a spec")
                q.add_argument(f"--anneal-{side}", default=None, metavar="AT,OVER,FINAL[,KIND]",
                               help=f"anneal schedule {side.upper()} at step AT over OVER steps to FINAL")
    p.set_defaults(func=run)
