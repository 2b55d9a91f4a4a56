"""Command line interface ``bayes-scaling``: argument parsing and printing only.

Every sub-command takes ``--json`` for machine-readable output. Errors in the
input (bad file, columns, numbers, priors) print one line ``error: ...`` to
stderr and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_scaling import fitting, planning, workflows
from bayes_scaling.approx import METHODS
from bayes_scaling.comparison import DEFAULT_LAWS, DEFAULT_REGIONS
from bayes_scaling.data import FLOPS_PER_PARAM_TOKEN, DataError
from bayes_scaling.datasets import DEMO_QUESTION, DEMO_TRUE_PARAMS
from bayes_scaling.forecast import forecast as _forecast_function
from bayes_scaling.inference import SAMPLERS, Sampling
from bayes_scaling.intervals import check_prob, default_prob
from bayes_scaling.model import LIKELIHOODS
from bayes_scaling.outputs import json_records
from bayes_scaling.priors import PriorError

__all__ = ["main"]

EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Errors that are the user's input, reported in one line.
USER_ERRORS = (DataError, PriorError, FileExistsError, FileNotFoundError, ValueError, KeyError)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def _default(function: Any, name: str) -> Any:
    """The library's default of ``function``'s parameter ``name`` (the CLI never retypes a default)."""
    import inspect

    return inspect.signature(function).parameters[name].default


#: Interval probability of forecasts, plans and reports (the library's default, ``intervals.rc["prob"]``).
PROB = default_prob()
#: Law fitted when none is named, its likelihood and method (read once, at import, from ``fit``).
LAW = _default(fitting.fit, "law")
LIKELIHOOD = _default(fitting.fit, "likelihood")
METHOD = _default(fitting.fit, "method")
#: Laws of a report when none are named.
REPORT_LAWS = _default(workflows.make_report, "laws")


def _seed(text: str) -> int:
    """A seed on the command line: a whole number from 0 to 2**32 - 1 (what every sampler takes)."""
    from bayes_scaling.inference import check_seed

    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: give a whole number from 0 to 4294967295") from None


def _prob(text: str) -> float:
    try:
        return check_prob(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number between 0 and 1 (exclusive)") from None


def _add_sampling(parser: argparse.ArgumentParser, *, law_options: bool = True) -> None:
    """Sampling options; ``law_options`` adds the noise model and prior overrides of a law fit."""
    default = Sampling()
    likelihood = LIKELIHOOD
    group = parser.add_argument_group("sampling")
    group.add_argument("--draws", type=int, default=default.draws,
                       help=f"posterior draws per chain (default {default.draws})")
    group.add_argument("--tune", type=int, default=default.tune,
                       help=f"tuning steps per chain (default {default.tune})")
    group.add_argument("--chains", type=int, default=default.chains,
                       help=f"number of chains (default {default.chains})")
    group.add_argument("--seed", type=_seed, default=default.seed,
                       help="random seed for a reproducible posterior (default: a fresh random seed each run)")
    group.add_argument("--sampler", choices=SAMPLERS, default=default.sampler,
                       help=f"NUTS backend (default {default.sampler})")
    group.add_argument("--ess", type=int, default=default.ess, metavar="N",
                       help="sample until the minimum bulk ESS reaches N (batches of chains) instead of a fixed "
                            "--chains x --draws; --draws then caps the draws per chain of a batch")
    group.add_argument("--max-seconds", type=_positive_float, default=default.max_seconds, metavar="S",
                       help="with --ess: start no new batch after S seconds of sampling")
    group.add_argument("--strict", action="store_true",
                       help="exit 1 when diagnostics fail (R-hat > 1.01, bulk ESS < 400, divergences, tree depth)")
    if law_options:
        group.add_argument("--likelihood", choices=LIKELIHOODS, default=likelihood,
                           help=f"noise on log-loss (default {likelihood}, robust to outliers)")
        group.add_argument("--priors", type=Path, default=None, metavar="FILE",
                           help="JSON or TOML file of prior overrides, e.g. {\"alpha\": {\"dist\": \"LogNormal\", "
                                "\"mu\": -1.2, \"sigma\": 0.5}, \"a\": 0.73}")
    group.add_argument("--quiet", action="store_true",
                       help="no progress bar or notes on stderr (they are also off with --json or without a terminal)")


def _add_data(parser: argparse.ArgumentParser) -> None:
    from bayes_scaling.data import COUNT_UNITS, LOSS_UNITS

    parser.add_argument("data", help="CSV with columns N (parameters), D (tokens), loss (optional C), or "
                        "dataset:NAME for a public sweep (dataset:NAME:default for its recommended rows)")
    parser.add_argument("--columns", default=None, metavar="MAP",
                        help="rename columns, e.g. 'params=N,tokens=D,val_loss=loss'")
    parser.add_argument("--loss-units", choices=LOSS_UNITS, default="nats",
                        help="units of the loss column (default nats; converted to nats/token)")
    parser.add_argument("--n-units", choices=list(COUNT_UNITS), default="raw",
                        help="units of the N column (default raw parameter counts)")
    parser.add_argument("--d-units", choices=list(COUNT_UNITS), default="raw",
                        help="units of the D column (default raw token counts)")
    parser.add_argument("--sep", default=",", help="CSV field separator (default ','; e.g. ';' or '\\t')")
    parser.add_argument("--no-unit-check", action="store_true",
                        help="skip the check that N, D and loss fit together as raw counts and nats/token")


def _load(args: argparse.Namespace) -> Any:
    from bayes_scaling.data import load_sweep

    mapping = None
    if args.columns:
        pairs = [item.split("=", 1) for item in args.columns.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"--columns must look like 'params=N,tokens=D'; got {args.columns!r}")
        mapping = {k.strip(): v.strip() for k, v in pairs}
    sep = "\t" if args.sep in ("\\t", "tab") else args.sep
    sweep = load_sweep(args.data, columns=mapping, loss_units=args.loss_units, n_units=args.n_units,
                       d_units=args.d_units, sep=sep, check_units=not args.no_unit_check)
    if sweep.renamed and not getattr(args, "json", False):
        print("note: read " + ", ".join(f"column {k!r} as {v}" for k, v in sweep.renamed.items()), file=sys.stderr)
    _note_large(sweep, args)
    return sweep


def _chatty(args: argparse.Namespace) -> bool:
    """Whether to show progress and notes: on a terminal, unless --quiet or --json."""
    return not getattr(args, "quiet", False) and not getattr(args, "json", False) and sys.stderr.isatty()


def _note_large(sweep: Any, args: argparse.Namespace) -> None:
    """Say up front how long NUTS will take on a large sweep (the library's LargeSweepWarning, as one line)."""
    if getattr(args, "method", "nuts") != "nuts" or len(sweep) <= fitting.LARGE_SWEEP or getattr(args, "quiet", False):
        return
    if not hasattr(args, "draws"):
        return
    print("note: " + fitting.large_sweep_message(len(sweep), draws=args.draws, tune=args.tune, chains=args.chains),
          file=sys.stderr)


def _sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from bayes_scaling.priors import load_priors

    sampling = Sampling(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler,
                        progress=_chatty(args), ess=args.ess, max_seconds=args.max_seconds)
    if not hasattr(args, "likelihood"):
        return {"sampling": sampling}
    return {"sampling": sampling, "likelihood": args.likelihood,
            "priors": load_priors(args.priors) if args.priors else None}


def _format_table(table: pd.DataFrame) -> str:
    return table.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-")


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, allow_nan=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _print_fit(result: Any, as_json: bool) -> None:
    if as_json:
        _print_json(result.to_dict())
        return
    diag = result.diagnostics()
    if result.is_approximate:
        approx = result.info.get("approximation", {})
        khat = approx.get("pareto_k", float("nan"))
        print(f"APPROXIMATE posterior ({result.info['method']}; Pareto k-hat {khat:.2f}, reliable below 0.7): "
              "for quick looks; refit with --method nuts before relying on intervals")
    escalated = result.info.get("escalated")
    if escalated:
        print(f"note: the first pass did not converge ({'; '.join(escalated['first_problems'])}); sampled again "
              f"with tune {escalated['tune']}, draws {escalated['draws']}, target_accept "
              f"{escalated['target_accept']}")
    ess = result.info.get("ess_sampling")
    if ess:
        print(f"sampled to an ESS target of {ess['target']}: {ess['batches']} batch(es) of "
              f"{ess['chains'] // ess['batches']} chains x {ess['draws_per_chain']} draws, min bulk ESS "
              f"{ess['min_ess_bulk']:.0f}" + ("" if ess["reached"] else "  WARNING: target not reached"))
    print(f"law {result.law.name}: {result.law.formula}")
    print(f"{len(result.sweep)} runs from {result.sweep.source}; likelihood {result.likelihood}; "
          f"fit in {result.info.get('fit_seconds', float('nan')):.1f} s")
    print(_format_table(result.summary()))
    if result.is_approximate:  # no sampler: R-hat, ESS and tree depth say nothing about a Gaussian approximation
        print(f"approximation quality: Pareto k-hat {khat:.2f}" + ("" if khat <= 0.7 else
              "  WARNING: above 0.7, the Gaussian may not cover the posterior; intervals may be off"))
        return
    r_hat = "n/a (1 chain)" if math.isnan(diag.max_r_hat) else f"{diag.max_r_hat:.3f}"
    print(f"diagnostics: max R-hat {r_hat}, min bulk ESS {diag.min_ess_bulk:.0f}, "
          f"divergences {diag.divergences}, mean tree depth {diag.mean_tree_depth:.2f}"
          + ("" if diag.ok else f"  WARNING: {'; '.join(diag.problems)}"))


def cmd_fit(args: argparse.Namespace) -> int:
    if args.group:
        if args.method != "nuts":
            raise ValueError("--method laplace is for single fits; a hierarchical fit (--group) uses NUTS")
        return _fit_hierarchical(args)
    sweep = _load(args)
    _say(args, f"fitting {len(sweep)} runs with {args.law} ({args.method}) ...")
    result = _quietly(fitting.fit, sweep, law=args.law, method=args.method, warn=False, **_sampling_kwargs(args))
    if args.out is not None:
        result.save(args.out, overwrite=args.force)
    _print_fit(result, args.json)
    if args.out is not None and not args.json:
        print(f"saved to {args.out}")
    return _strict_status(result, args)


def _fit_hierarchical(args: argparse.Namespace) -> int:
    from bayes_scaling.hierarchical import fit_hierarchical

    shared = [n.strip() for n in args.shared.split(",") if n.strip()] if args.shared else None
    sweep = _load(args)
    _say(args, f"fitting {len(sweep)} runs with {args.law}, pooled across the groups of {args.group!r} ...")
    result = _quietly(fit_hierarchical, sweep, args.group, law=args.law, shared=shared, warn=False,
                      **_sampling_kwargs(args))
    if args.out is not None:
        result.save(args.out, overwrite=args.force)
    if args.json:
        _print_json(result.to_dict())
    else:
        diag = result.diagnostics()
        print(f"law {result.law.name}: {result.law.formula}; shared across {len(result.groups)} groups of "
              f"{args.group!r}: {', '.join(result.shared)}")
        print(_format_table(result.summary()))
        print(f"diagnostics: max R-hat {diag.max_r_hat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
              f"divergences {diag.divergences}" + ("" if diag.ok else f"  WARNING: {'; '.join(diag.problems)}"))
        if args.out is not None:
            print(f"saved to {args.out}; forecast or plan one group with --group-label LABEL")
    return _strict_status(result, args)


def cmd_datasets(args: argparse.Namespace) -> int:
    from bayes_scaling import datasets

    if args.name is None:
        table = datasets.available()
        if args.json:
            _print_json([datasets.info(name).to_dict() for name in table.index])
        else:
            print(_format_table(table[["rows", "groups", "downloadable", "title"]]))
        return 0
    from bayes_scaling.outputs import write_file

    entry = datasets.info(args.name)
    frame = datasets.load(args.name, path=args.path, query=args.query, download=not args.no_download)
    if args.out is not None:
        write_file(args.out, lambda tmp: frame.to_csv(tmp, index=False), overwrite=args.force)
    if args.json:
        _print_json({**entry.to_dict(), "loaded_rows": len(frame), "source": frame.attrs["source"],
                     "out": str(args.out) if args.out else None})
        return 0
    for key, value in entry.to_dict().items():
        print(f"{key:>14}: {', '.join(value) if isinstance(value, list) else value}")
    print(f"{'loaded':>14}: {len(frame)} rows from {frame.attrs['source']}")
    if args.out is not None:
        print(f"{'written':>14}: {args.out}")
    return 0


def _strict_status(results: Any, args: argparse.Namespace) -> int:
    """1 when --strict is given and any fit's diagnostics fail (each failure named on stderr), else 0."""
    if not getattr(args, "strict", False):
        return 0
    fits = results if isinstance(results, dict) else {results.law.name: results}
    failed = {name: f.diagnostics().problems for name, f in fits.items() if not f.diagnostics().ok}
    for name, problems in failed.items():
        print(f"error: diagnostics failed for {name}: {'; '.join(problems)}", file=sys.stderr)
    return 1 if failed else 0


def _points(args: argparse.Namespace) -> dict[str, Any]:
    points = {"N": args.N, "D": args.D, "C": args.C, "experts": getattr(args, "experts", None)}
    points = {k: v for k, v in points.items() if v}
    counts = {k: len(v) for k, v in points.items()}
    if len(set(counts.values())) > 1:
        raise ValueError("give the same number of each of --N, --D, --C and --experts (one --D per --N); got "
                         + ", ".join(f"{n} --{k}" for k, n in counts.items()))
    return points


def _warn_range(table: pd.DataFrame) -> list[str]:
    """Print a warning line (stderr) for each row far outside the data; return the lines (for --json)."""
    from bayes_scaling.data import range_warnings

    lines = range_warnings(table)
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    return lines


def _add_group_label(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-label", default=None, metavar="LABEL",
                        help="for a fit pooled across groups (fit --group): the group to use")


def _one_group(result: Any, args: argparse.Namespace) -> Any:
    """The fit itself, or for a pooled fit the posterior of the group named by ``--group-label``."""
    label = getattr(args, "group_label", None)
    if result.group is None:
        if label is not None:
            raise ValueError(f"--group-label {label!r}: {args.fit} is a fit of one sweep, not pooled across groups")
        return result
    if label is None:
        raise ValueError(f"{args.fit} is pooled across the groups of {result.group!r} ({', '.join(result.groups)}); "
                         "pick one with --group-label LABEL")
    try:
        return result.group_fit(label)
    except KeyError:
        raise ValueError(f"--group-label {label!r} is not a group of {args.fit}; groups: "
                         f"{', '.join(result.groups)}") from None


def cmd_forecast(args: argparse.Namespace) -> int:
    from bayes_scaling.posterior import load_fit as load

    points = _points(args)
    result = _one_group(load(args.fit), args)
    link = None
    if args.downstream is not None:
        from bayes_scaling.downstream import load_downstream

        link = load_downstream(args.downstream)
        if "N" not in points or "D" not in points:
            raise ValueError("--downstream forecasts need --N and --D")
    table = result.forecast(**points, prob=args.prob, seed=args.seed)
    warnings_ = _warn_range(table)
    metric = None
    if link is not None:
        from bayes_scaling.downstream import TaskFit, chain, task_table

        if isinstance(link, TaskFit):
            metric = task_table(link, fit=result, N=points["N"], D=points["D"], prob=args.prob, seed=args.seed)
        else:
            metric = chain(result, link, N=points["N"], D=points["D"], prob=args.prob, seed=args.seed)
    if args.json:
        payload = {"law": result.law.name, "prob": args.prob, "points": json_records(table), "warnings": warnings_}
        if metric is not None:
            if hasattr(link, "metrics"):
                payload["downstream"] = {"tasks": link.metrics, "points": json_records(metric)}
            else:
                payload["downstream"] = {"metric": link.metric, "form": link.link.name, "chance": link.chance,
                                         "points": json_records(metric)}
        _print_json(payload)
    else:
        print(f"forecast from {args.fit} (law {result.law.name}); intervals {args.prob:.0%}, loss in nats/token; "
              "sd_params, sd_extrapolation: sd of log-loss from the parameters and from extrapolating beyond the "
              "sweep; scatter_scale, scatter_68: the run scatter's scale and the half-width of its central 68%; "
              "decades_*: distance outside the sweep")
        print(_format_table(table))
        if metric is not None and hasattr(link, "metrics"):
            print(f"\n{len(link.metrics)} tasks through the loss (pooled links from {args.downstream}): expected "
                  f"error (median, lower/upper) and one evaluation (pred_*), {args.prob:.0%} intervals; "
                  "p_above_chance: probability of being 2 points or more under the chance error; leave_loss: the "
                  "loss below which the task is (inf: at any loss, -inf: never)")
            print(_format_table(metric))
        elif metric is not None:
            print(f"\n{link.metric} through the loss ({link.link.name} link from {args.downstream}; chance "
                  f"{link.chance:.3g}): median with {args.prob:.0%} credible (lower/upper) and predictive "
                  "(pred_*) intervals")
            print(_format_table(metric))
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from bayes_scaling.design import suggest_runs
    from bayes_scaling.posterior import load_fit as load

    if args.optimal_at is not None:
        if args.N is not None or args.D is not None:
            raise ValueError("give either --N and --D (the loss of that run) or --optimal-at C, not both")
        target: dict[str, float] = {"C": args.optimal_at}
    elif args.N is None or args.D is None:
        raise ValueError("give the target: --N and --D (the loss of that run) or --optimal-at C (compute-optimal N)")
    else:
        target = {"N": args.N, "D": args.D}
    if args.downstream is not None:
        from bayes_scaling.downstream import load_downstream

        if "C" in target:
            raise ValueError("--downstream needs the run as --N and --D, not --optimal-at")
        link = load_downstream(args.downstream)
        if not hasattr(link, "metric"):
            raise ValueError(f"--downstream {args.downstream} holds a fit of several tasks; give one link fit")
        target["downstream"] = link
    candidates = None
    if args.candidates is not None:
        if not args.candidates.is_file():
            raise ValueError(f"--candidates: no such file {args.candidates}")
        candidates = pd.read_csv(args.candidates)
    result = _one_group(load(args.fit), args)
    suggestion = suggest_runs(result, args.budget, target, candidates=candidates, k=args.k, prob=args.prob,
                              seed=args.seed)
    if args.json:
        _print_json(suggestion.to_dict())
        return 0
    print(suggestion.sentence())
    if suggestion.info["low_ess"]:
        print("note: the reweighted draws are few (ESS below 100); the expected widths are rough: refit after "
              "the first runs and ask again")
    if len(suggestion.runs):
        print("\nSuggested runs, in order (expected_*: the target's interval once this and the earlier runs are in):")
        print(_format_table(suggestion.runs))
    print("\nSame-cost designs:")
    print(_format_table(suggestion.baselines.set_index("design")))
    return 0


def _metric_columns(spec: str, columns: list[str]) -> list[str]:
    """``--metric``: comma-separated column names or glob patterns (a pattern picks the columns with items)."""
    import fnmatch

    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if any(ch in part for ch in "*?["):
            matched = [c for c in columns if fnmatch.fnmatchcase(c, part) and f"items_{c}" in columns]
            if not matched:
                raise ValueError(f"--metric pattern {part!r} matches no column that has an items_<column> column")
            chosen += matched
        else:
            chosen.append(part)
    if not chosen:
        raise ValueError("--metric names no column")
    return list(dict.fromkeys(chosen))


def cmd_fit_downstream(args: argparse.Namespace) -> int:
    from bayes_scaling.downstream import fit_downstream, fit_tasks

    frame = _load(args).frame
    metrics = _metric_columns(args.metric, list(frame.columns))
    _say(args, f"fitting {', '.join(metrics)} against the loss on {len(frame)} runs ...")
    kwargs = _sampling_kwargs(args)
    chance: float | str | None = args.chance
    if chance is not None:
        try:
            chance = float(chance)
        except ValueError:
            pass  # a column name
    if len(metrics) > 1:
        if isinstance(chance, str):
            raise ValueError("--chance with several metrics must be a number (default: the random_<metric> columns)")
        tasks = _quietly(fit_tasks, frame, metrics, chance=chance, items=args.items, **kwargs)
        if args.out is not None:
            tasks.save(args.out, overwrite=args.force)
        table = tasks.summary(args.prob)
        if args.json:
            _print_json({**tasks.to_dict(args.prob), "out": str(args.out) if args.out else None})
        else:
            print(f"{len(metrics)} tasks as functions of the loss, pooled: Err = top - (top - floor) "
                  f"sigmoid((midpoint - L) / width), {len(tasks.data)} runs; floor and leave_loss (the loss below "
                  f"which a task is 2 points under chance) with {args.prob:.0%} intervals")
            print(_format_table(table))
            diag = tasks.diagnostics()
            print(f"diagnostics: max R-hat {diag.max_r_hat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
                  f"{diag.divergences} divergences" + ("" if diag.ok else " (NOT converged: sample longer with "
                                                         "--draws/--tune, or fit fewer tasks)"))
            if args.out is not None:
                print(f"saved to {args.out}; use it with `bayes-scaling forecast FIT.nc --N .. --D .. --downstream "
                      f"{args.out}`")
        return 0 if not args.strict or tasks.diagnostics().ok else 1
    link = _quietly(fit_downstream, frame, metrics[0], form=args.form, chance=chance, items=args.items, **kwargs)
    if args.out is not None:
        link.save(args.out, overwrite=args.force)
    table = link.summary(args.prob)
    if args.json:
        _print_json({**link.to_dict(args.prob), "out": str(args.out) if args.out else None})
    else:
        print(f"{link.metric} as a function of the loss: {link.link.formula} (chance {link.chance:.3g}), "
              f"{len(link.data)} runs")
        print(_format_table(table))
        if args.out is not None:
            print(f"saved to {args.out}; use it with `bayes-scaling forecast FIT.nc --N .. --D .. --downstream "
                  f"{args.out}`")
    return 0 if not args.strict or link.diagnostics().ok else 1


def _sentence(row: pd.Series, prob: float) -> str:
    return (
        f"A {row['N'] / 1e9:g}B-parameter model trained on {row['D'] / 1e12:g}T tokens is expected to reach "
        f"a loss of {row['median']:.3f} nats/token (median); its expected loss lies in [{row['lower']:.3f}, "
        f"{row['upper']:.3f}] with {prob:.0%} probability, and one training run would land in "
        f"[{row['pred_lower']:.3f}, {row['pred_upper']:.3f}] ({prob:.0%} predictive interval). Spread of the "
        f"log-loss: {row['sd_params']:.2%} from the parameters, {row['sd_extrapolation']:.2%} for extrapolating "
        f"{row['decades_out']:.1f} decades beyond the sweep, {row['scatter_68']:.2%} run-to-run scatter (half-width "
        f"of its central 68%; scale sigma {row['scatter_scale']:.2%})."
    )


def _demo_question() -> str:
    n, d = DEMO_QUESTION
    return f"What loss will a {n / 1e9:g}B model trained on {d / 1e12:g}T tokens reach?"


def cmd_demo(args: argparse.Namespace) -> int:
    from bayes_scaling.datasets import demo_path

    n, d = DEMO_QUESTION
    _say(args, "fitting the demo sweep with chinchilla (the first fit compiles the model: about 10 s) ...")
    result = _quietly(fitting.fit, demo_path(), law="chinchilla", warn=False, **_sampling_kwargs(args))
    table = result.forecast(N=n, D=d, prob=args.prob)
    if args.json:
        payload = result.to_dict(args.prob)
        payload["question"] = _demo_question()
        payload["forecast"] = json_records(table)[0]
        _print_json(payload)
        return _strict_status(result, args)
    truth = ", ".join(f"{k}={v:.4g}" for k, v in DEMO_TRUE_PARAMS.items())
    print(f"Demo: the Chinchilla law fitted to the embedded synthetic sweep (generated from {truth}).")
    _print_fit(result, False)
    print()
    print("Q: " + _demo_question())
    print("A: " + _sentence(table.iloc[0], args.prob))
    return _strict_status(result, args)


def cmd_compare(args: argparse.Namespace) -> int:
    laws = [name.strip() for name in args.laws.split(",") if name.strip()]
    fit_kwargs = _sampling_kwargs(args)
    sweep = _load(args)
    _say(args, f"comparing {', '.join(laws)} on {len(sweep)} runs ...")
    result = _quietly(
        workflows.compare_hypotheses,
        sweep,
        laws,
        regions=args.region or DEFAULT_REGIONS,
        prob=args.prob,
        extrapolation=not args.no_extrapolation,
        cutoff_N=args.cutoff_N,
        fit_kwargs={**fit_kwargs, "warn": False},
    )
    if args.json:
        _print_json(result.to_dict())
        return _strict_status(result.fits, args)
    print("In-sample comparison (PSIS-LOO on log-loss, stacking weights):")
    print(_format_table(result.loo))
    if result.extrapolation is not None:
        print("\nExtrapolation (fit on the smaller models, score the held-out larger runs):")
        print(_format_table(result.extrapolation))
    if result.exponents is not None:
        print(f"\nCompute-optimal exponents under {result.exponents_law} (N_opt ~ C^a, D_opt ~ C^b):")
        print(_format_table(result.exponents))
    for name, f in result.fits.items():
        if not f.diagnostics().ok:
            print(f"warning: fit of {name}: {'; '.join(f.diagnostics().problems)}")
    print("\nVerdict: " + result.verdict)
    return _strict_status(result.fits, args)


def _print_plan(title: str, table: pd.DataFrame, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    warnings_ = _warn_range(table) if "decades_out" in table.columns else []
    if as_json:
        _print_json({"question": title, **(extra or {}), "rows": json_records(table), "warnings": warnings_})
        return
    print(title)
    print("  (loss: expected, credible interval; one run: predictive interval of a training run; both include the "
          "extrapolation term of the distance beyond the sweep)")
    for _, row in table.iterrows():
        names = [c for c in table.columns if not c.endswith(("_lower", "_upper", "_sd_extrapolation"))]
        for name in names:
            value = row[name]
            if f"{name}_lower" in table.columns:
                line = f"  {name:>20}: {value:.4g}  [{row[f'{name}_lower']:.4g}, {row[f'{name}_upper']:.4g}]"
                if f"{name}_pred_lower" in table.columns:
                    line += f"  one run [{row[f'{name}_pred_lower']:.4g}, {row[f'{name}_pred_upper']:.4g}]"
                print(line)
            else:
                print(f"  {name:>20}: {value:.4g}" if isinstance(value, float) else f"  {name:>20}: {value}")
        print()


def _budget(args: argparse.Namespace) -> list[float]:
    budgets = list(args.C or [])
    if args.gpus is not None or args.days is not None:
        if args.gpus is None or args.days is None:
            raise ValueError("give both --gpus and --days for a hardware budget")
        budgets.append(planning.hardware_flops(args.gpus, args.days, accelerator=args.gpu, peak_flops=args.peak_flops,
                                      mfu=args.mfu))
    if not budgets:
        raise ValueError("give a budget: --C FLOPS, or --gpus and --days (with --gpu/--peak-flops and --mfu)")
    return budgets


def cmd_plan(args: argparse.Namespace) -> int:
    if args.question == "flops":
        flops = planning.hardware_flops(args.gpus, args.days, accelerator=args.gpu, peak_flops=args.peak_flops,
                                        mfu=args.mfu)
        if args.json:
            _print_json({"gpus": args.gpus, "days": args.days, "gpu": args.gpu, "peak_flops": args.peak_flops,
                         "mfu": args.mfu, "flops": flops})
        else:
            print(f"{args.gpus:g} GPUs x {args.days:g} days at MFU {args.mfu:g}: {flops:.4g} FLOPs")
        return 0
    if args.question == "isoflop":
        result = planning.isoflop_analysis(_load(args), budget_column=args.budget_column, prob=args.prob,
                                           seed=args.seed)
        if args.json:
            _print_json(result.to_dict())
        else:
            print("IsoFLOP analysis (parabola per budget; bootstrap intervals):")
            print(_format_table(result.budgets))
            print("\nN_opt ~ C^a, D_opt ~ C^b:")
            print(_format_table(result.exponents))
        return 0

    from bayes_scaling.posterior import load_fit as load

    result = _one_group(load(args.fit), args)
    if args.question == "compute":
        table = planning.compute_optimal(result, _budget(args), prob=args.prob,
                                         flops_per_param_token=args.flops_per_token)
        title = "Compute-optimal allocation (N parameters, D tokens, loss in nats/token)"
    elif args.question == "tokens":
        table = planning.tokens_for_model(result, args.N, tolerance=args.tolerance, prob=args.prob)
        title = f"Tokens for a {args.N:.3g}-parameter model"
    elif args.question == "model":
        table = planning.model_for_tokens(result, args.D, tolerance=args.tolerance, prob=args.prob)
        title = f"Model size for {args.D:.3g} tokens"
    elif args.question == "gain":
        table = planning.gain(result, tuple(args.start), tuple(args.end), threshold=args.threshold, prob=args.prob)
        title = "Loss gained going from start to end (draw by draw)"
    else:
        table = planning.overtrain(result, args.target_loss, args.inference_tokens, prob=args.prob)
        title = f"Cheapest training + inference compute reaching loss {args.target_loss:g}"
    _print_plan(title, table, args.json, {"law": result.law.name, "prob": args.prob})
    return 0


def _add_plan_parsers(sub: Any) -> None:
    plan = sub.add_parser("plan", help="plan a run with uncertainty (compute, tokens, model, gain, overtrain, ...)")
    questions = plan.add_subparsers(dest="question", required=True, metavar="QUESTION")

    def common(p: argparse.ArgumentParser, *, fit: bool = True) -> None:
        if fit:
            p.add_argument("fit", type=Path, help="fit file written by `bayes-scaling fit --out`")
            _add_group_label(p)
        p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_plan)

    def hardware(p: argparse.ArgumentParser, *, required: bool) -> None:
        p.add_argument("--gpus", type=_positive_float, required=required, help="number of accelerators")
        p.add_argument("--days", type=_positive_float, required=required, help="wall-clock days")
        gpu, mfu = _default(planning.hardware_flops, "accelerator"), _default(planning.hardware_flops, "mfu")
        p.add_argument("--gpu", default=gpu, choices=list(planning.PEAK_FLOPS),
                       help=f"peak-throughput preset (default {gpu})")
        p.add_argument("--peak-flops", type=_positive_float, default=None, help="peak FLOP/s (overrides --gpu)")
        p.add_argument("--mfu", type=_prob, default=mfu, help=f"model FLOP utilisation (default {mfu:g})")

    p = questions.add_parser("compute", help="compute-optimal N, D, tokens/param and loss for FLOP budgets")
    p.add_argument("--C", type=_positive_float, action="append", help="budget in FLOPs (repeatable)")
    p.add_argument("--flops-per-token", type=_positive_float, default=FLOPS_PER_PARAM_TOKEN,
                   help=f"k in C = k N D (default {FLOPS_PER_PARAM_TOKEN:g})")
    hardware(p, required=False)
    common(p)
    p = questions.add_parser("tokens", help="tokens for a model size")
    p.add_argument("--N", type=_positive_float, required=True, help="parameters")
    p.add_argument("--tolerance", type=_positive_float, default=_default(planning.tokens_for_model, "tolerance"),
                   help="nats from the N-limited loss")
    common(p)
    p = questions.add_parser("model", help="model size for a token budget")
    p.add_argument("--D", type=_positive_float, required=True, help="tokens")
    p.add_argument("--tolerance", type=_positive_float, default=_default(planning.model_for_tokens, "tolerance"),
                   help="nats from the D-limited loss")
    common(p)
    p = questions.add_parser("gain", help="loss gained between two (N, D) configurations")
    p.add_argument("--start", type=_positive_float, nargs=2, required=True, metavar=("N", "D"))
    p.add_argument("--end", type=_positive_float, nargs=2, required=True, metavar=("N", "D"))
    p.add_argument("--threshold", type=float, default=_default(planning.gain, "threshold"),
                   help="report P(gain > threshold) (nats)")
    common(p)
    p = questions.add_parser("overtrain", help="N, D reaching a target loss at least training + inference compute")
    p.add_argument("--target-loss", type=_positive_float, required=True, help="nats/token")
    p.add_argument("--inference-tokens", type=float, required=True, help="tokens served over the model's life")
    common(p)
    p = questions.add_parser("flops", help="turn a GPU budget into FLOPs")
    hardware(p, required=True)
    common(p, fit=False)
    p = questions.add_parser("isoflop", help="IsoFLOP analysis of a sweep with several runs per budget")
    _add_data(p)
    p.add_argument("--budget-column", default=None, help="column naming each run's budget (default: group by C)")
    p.add_argument("--seed", type=_seed, default=_default(planning.isoflop_analysis, "seed"), help="bootstrap seed")
    common(p, fit=False)


def cmd_report(args: argparse.Namespace) -> int:
    laws = [name.strip() for name in args.laws.split(",") if name.strip()]
    n_values, d_values = args.N or [], args.D or []
    if len(n_values) != len(d_values):
        raise ValueError(f"give one --D per --N (got {len(n_values)} --N and {len(d_values)} --D)")
    kwargs = {}
    if n_values:
        kwargs["points"] = list(zip(n_values, d_values, strict=True))
    if args.C:
        kwargs["budgets"] = args.C
    if args.downstream is not None:
        from bayes_scaling.downstream import load_downstream

        kwargs["downstream"] = load_downstream(args.downstream)  # read before any fitting
    sweep = _load(args)
    _say(args, f"fitting {', '.join(laws)} on {len(sweep)} runs for the report ...")
    report = _quietly(workflows.make_report, sweep, args.out, laws=laws, prob=args.prob,
                      fit_kwargs=_sampling_kwargs(args), overwrite=args.force, **kwargs)
    if args.json:
        _print_json({"html": str(report.html), "markdown": str(report.markdown), "figures": list(report.figures),
                     "diagnostics": {name: f.diagnostics().to_dict() for name, f in report.fits.items()}})
    else:
        print(f"wrote {report.html} and {report.markdown}")
    return _strict_status(dict(report.fits), args)


def cmd_backtest(args: argparse.Namespace) -> int:
    sweep = _load(args)
    _say(args, f"backtesting {args.law} on {len(sweep)} runs ...")
    result = _quietly(workflows.backtest, sweep, law=args.law, cutoff_N=args.cutoff_N,
                      fit_kwargs=_sampling_kwargs(args), point_fit=not args.no_point_fit)
    summary = result.summary
    if args.json:
        _print_json(result.to_dict())
    else:
        print(f"Backtest of {args.law}: fit on {summary['n_train']} runs with N < {summary['cutoff_N']:.3g}, "
              f"scored on {summary['n_holdout']} larger runs")
        print(_format_table(result.runs))
        cover = ", ".join(f"{k.split('_')[1]}: {v:.0%}" for k, v in summary.items() if k.startswith("coverage_"))
        print(f"predictive-interval coverage ({cover}); median abs. relative error {summary['mape']:.2f}%"
              + (f" (point fit: {summary['mape_point_fit']:.2f}%)" if "mape_point_fit" in summary else ""))
    return _strict_status(result.fit, args)


def cmd_explain(args: argparse.Namespace) -> int:
    counts = [c.strip() for c in args.counts.split(",") if c.strip()] if args.counts else None
    sweep = _load(args)
    _say(args, f"explaining a on {len(sweep)} runs (several fits) ...")
    result = _quietly(workflows.explain, sweep, by=args.by, counts=counts, window=args.window, law=args.law,
                      prob=args.prob, fit_kwargs=_sampling_kwargs(args))
    if args.report is not None:
        report = _quietly(workflows.make_report, sweep, args.report, laws=[args.law], prob=args.prob,
                          fit_kwargs=_sampling_kwargs(args), overwrite=args.force, explanation=result)
        if not args.json:
            print(f"wrote {report.html} and {report.markdown}")
    if args.json:
        _print_json(result.to_dict())
        return 0
    print("Why Kaplan (a = 0.73) and Chinchilla (a = 0.5) disagree, on this sweep (N_opt ~ C^a, "
          f"{args.prob:.0%} intervals):")
    for line in result.verdict():
        print(f"- {line}")
    for title, table in (("Parameter counting", result.counting), ("a by compute window", result.windows),
                         ("a by setup", result.protocol), ("Protocol changes", result.effects)):
        if table is not None and len(table):
            print(f"\n{title}:")
            print(_format_table(table))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from bayes_scaling.recipes import VARIANTS, compare_recipes
    from bayes_scaling.report import write_report

    sweep = _load(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"--variants takes a comma-separated subset of {', '.join(VARIANTS)}; got {args.variants!r}")
    if args.interval == "none":
        interval: Any = None
    elif args.interval == "auto":
        interval = "auto"
    else:
        interval = tuple(c.strip() for c in args.interval.split(","))
        if len(interval) != 2:
            raise ValueError(f"--interval takes LOW,HIGH column names, 'auto' or 'none'; got {args.interval!r}")
    if (args.N is None) != (args.D is None) or (args.N and len(args.N) != len(args.D)):
        raise ValueError("give --N and --D together, one --D per --N")
    target = (args.N, args.D) if args.N else None
    _say(args, f"comparing the recipes in {args.by!r} on {len(sweep)} runs ...")
    result = _quietly(compare_recipes, sweep, by=args.by, target=target, budgets=args.C, reference=args.reference,
                      law=args.law, variants=variants, interval=interval, prob=args.prob, **_sampling_kwargs(args))
    if args.plot is not None:
        from bayes_scaling.outputs import write_file
        from bayes_scaling.plots import plot_multiplier

        ax = plot_multiplier(result.curve, reference=result.reference, data_budgets=result.info["data_budgets"],
                             prob=result.prob)
        write_file(args.plot, lambda tmp: ax.figure.savefig(tmp, dpi=110, format=args.plot.suffix.lstrip(".")
                                                            or "png"), overwrite=args.force)
    if args.report is not None:
        report = write_report({f"{args.law} ({result.reference})": result.reference_fit()}, args.report,
                              recipes=result, points=list(zip(args.N, args.D, strict=True)) if args.N else (),
                              budgets=result.budgets["C"].unique().tolist(), prob=args.prob, overwrite=args.force)
        if not args.json:
            print(f"wrote {report.html} and {report.markdown}")
    if args.json:
        _print_json(result.to_dict())
        return _strict_status(result.fits, args)
    print(f"Recipes in {args.by!r} against {result.reference} ({args.prob:.0%} intervals; loss in nats/token):")
    for line in result.verdict():
        print(f"- {line}")
    columns = ["C", "recipe", "loss", "loss_lower", "loss_upper", "p_best", "p_beats_reference", "diff",
               "diff_lower", "diff_upper", "multiplier", "multiplier_lower", "multiplier_upper"]
    print("\nAt FLOP budgets (compute-optimal loss of each recipe):")
    print(_format_table(result.budgets[columns]))
    if result.target is not None:
        print("\nAt the asked points:")
        print(_format_table(result.target))
    print("\nWhere the curves cross:")
    print(_format_table(result.crossing))
    print("\nWhat differs between recipes (PSIS-LOO; forecasts average the variants by stacking weight):")
    print(_format_table(result.variants))
    print("\nNoise (log-loss): scatter around the law, evaluation noise, seed noise:")
    print(_format_table(result.noise))
    return _strict_status(result.fits, args)


def cmd_laws(args: argparse.Namespace) -> int:
    from bayes_scaling.laws import laws

    registry = laws()
    if args.json:
        _print_json({
            name: {
                "title": law.title,
                "formula": law.formula,
                "citation": law.citation,
                "columns": list(law.columns),
                "params": {p: law.default_priors[p].to_dict() for p in law.param_names},
            }
            for name, law in registry.items()
        })
    else:
        print("\n\n".join(law.describe() for law in registry.values()))
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser that never accepts prefixes of long options (``--flops`` is not ``--flops-per-token``).

    Sub-command parsers inherit the class, so the rule holds for every command.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bayes-scaling``."""
    from bayes_scaling.laws import laws

    parser = _Parser(
        prog="bayes-scaling",
        description="Bayesian fits, forecasts and plans from neural scaling-law sweeps.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="fit a law to a sweep CSV and print the parameter table")
    _add_data(p)
    p.add_argument("--law", default=LAW, choices=list(laws()), metavar="LAW",
                   help=f"law to fit (see `bayes-scaling laws`; default {LAW})")
    p.add_argument("--out", type=Path, default=None, help="save the fit to this netCDF file")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--group", default=None, metavar="COLUMN",
                   help="hierarchical fit across the groups of this column: exponents shared, E and term "
                   "levels partially pooled")
    p.add_argument("--shared", default=None, metavar="NAMES",
                   help="with --group: comma-separated parameters shared by all groups (default: the exponents)")
    p.add_argument("--method", choices=METHODS, default=METHOD,
                   help="nuts (default), or laplace: a fast Gaussian APPROXIMATION for quick looks at large sweeps")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("forecast", help="forecast the loss at new (N, D) points from a saved fit")
    p.add_argument("fit", type=Path, help="fit file written by `bayes-scaling fit --out`")
    _add_group_label(p)
    p.add_argument("--N", type=_positive_float, action="append", help="parameters (repeat for more points)")
    p.add_argument("--D", type=_positive_float, action="append", help="tokens (one per --N)")
    p.add_argument("--C", type=_positive_float, action="append", help="FLOPs (for compute-only laws)")
    p.add_argument("--experts", type=_positive_float, action="append",
                   help="experts per routed layer, 1 = dense (for the routing law; one per --N)")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    seed = _default(_forecast_function, "seed")
    p.add_argument("--seed", type=_seed, default=seed, help=f"seed of the predictive noise (default {seed})")
    p.add_argument("--downstream", type=Path, default=None, metavar="LINK.nc",
                   help="also forecast a benchmark metric through the loss (a file from `fit-downstream --out`)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("suggest", help="which runs to train next within a FLOP budget to sharpen a forecast")
    p.add_argument("fit", type=Path, help="fit file written by `bayes-scaling fit --out`")
    _add_group_label(p)
    p.add_argument("--budget", type=_positive_float, required=True, help="FLOPs available for the new runs")
    p.add_argument("--N", type=_positive_float, default=None, help="target: the loss of a run with N parameters ..")
    p.add_argument("--D", type=_positive_float, default=None, help=".. trained on D tokens")
    p.add_argument("--optimal-at", type=_positive_float, default=None, metavar="C",
                   help="target instead: the compute-optimal model size at C FLOPs")
    p.add_argument("--downstream", type=Path, default=None, metavar="LINK.nc",
                   help="target instead: the benchmark error of the --N/--D run through this link fit")
    p.add_argument("--candidates", type=Path, default=None, metavar="RUNS.csv",
                   help="runs to choose from (columns N and D; default: a grid within and just beyond the sweep)")
    p.add_argument("--k", type=int, default=None, help="most runs to suggest (default: as the budget allows)")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    from bayes_scaling.design import suggest_runs

    seed = _default(suggest_runs, "seed")
    p.add_argument("--seed", type=_seed, default=seed, help=f"seed of the simulated outcomes (default {seed})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_suggest)

    from bayes_scaling.downstream import LINKS, fit_downstream

    p = sub.add_parser("fit-downstream", help="fit a benchmark metric (an error) as a function of the loss")
    _add_data(p)
    p.add_argument("--metric", required=True,
                   help="the metric column: an error in [0, 1] (1 - accuracy); several (comma-separated names or "
                   "patterns such as 'err_*', which pick the columns that have items_<column>) give one pooled fit "
                   "across tasks")
    form = _default(fit_downstream, "form")
    p.add_argument("--form", choices=list(LINKS), default=form, help=f"link form (default {form})")
    p.add_argument("--chance", default=None,
                   help="chance error, a number or a column (default: the column random_<metric>, else the largest)")
    p.add_argument("--items", type=int, default=None,
                   help="test items per value: binomial noise (default for several tasks: the items_<metric> columns)")
    p.add_argument("--out", type=Path, default=None, help="save the link fit to this netCDF file")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p, law_options=False)
    p.set_defaults(func=cmd_fit_downstream)

    p = sub.add_parser("demo", help="fit the embedded demo sweep and forecast a 100B model on 2T tokens")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("compare", help="compare laws (Kaplan vs Chinchilla) by LOO, extrapolation and exponents")
    _add_data(p)
    p.add_argument("--laws", default=",".join(DEFAULT_LAWS),
                   help=f"comma-separated laws (default {','.join(DEFAULT_LAWS)})")
    p.add_argument("--region", action="append", metavar="EXPR",
                   help="exponent region to report, e.g. 'a > 0.6' or '|a - 0.5| < 0.05' (repeatable)")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    p.add_argument("--cutoff-N", type=_positive_float, default=None,
                   help="hold out runs with N >= this for the extrapolation score (default: largest quarter of sizes)")
    p.add_argument("--no-extrapolation", action="store_true", help="skip the leave-largest-out refits")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_compare)

    _add_plan_parsers(sub)

    p = sub.add_parser("backtest", help="fit on the smaller models, score the held-out larger runs")
    _add_data(p)
    p.add_argument("--law", default=LAW, choices=list(laws()), metavar="LAW", help=f"law (default {LAW})")
    p.add_argument("--cutoff-N", type=_positive_float, default=None,
                   help="hold out runs with N >= this (default: largest quarter of model sizes)")
    p.add_argument("--no-point-fit", action="store_true", help="skip the Huber/L-BFGS point-fit baseline")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("explain", help="why Kaplan and Chinchilla disagree: counting, compute range, protocol")
    _add_data(p)
    p.add_argument("--by", default=None, help="column naming each run's setup (training protocol)")
    p.add_argument("--counts", default=None, metavar="COL,COL",
                   help="parameter-count columns to compare as N, e.g. N_total,N_nonembed")
    window = _default(workflows.explain, "window")
    p.add_argument("--window", type=int, default=window,
                   help=f"distinct budgets per rolling compute window (default {window})")
    p.add_argument("--law", default=_default(workflows.explain, "law"), choices=list(laws()), metavar="LAW",
                   help="a law with compute-optimal exponents (default chinchilla)")
    p.add_argument("--report", type=Path, default=None, metavar="OUT",
                   help="also write a report (the law's fit and this explanation) into this folder")
    p.add_argument("--force", action="store_true", help="replace an earlier report in --report")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("recipes", help="which recipe (data mix, architecture, ...) wins at scale, and by how much "
                                       "compute")
    _add_data(p)
    p.add_argument("--by", required=True, help="column naming each run's recipe")
    p.add_argument("--reference", default=None, help="recipe to measure the others against (default: first in "
                                                     "sorted order)")
    p.add_argument("--C", type=_positive_float, action="append", default=None,
                   help="FLOP budget to compare at (repeat; default: the data's largest, 10x and 100x)")
    p.add_argument("--N", type=_positive_float, action="append", help="point to compare at: parameters (repeat)")
    p.add_argument("--D", type=_positive_float, action="append", help="point to compare at: tokens (one per --N)")
    p.add_argument("--law", default=LAW, choices=list(laws()), metavar="LAW", help=f"a law of N and D (default {LAW})")
    p.add_argument("--variants", default="E,levels,exponents",
                   help="what may differ between recipes, compared by LOO and averaged (default E,levels,exponents)")
    p.add_argument("--interval", default="auto", metavar="LOW,HIGH",
                   help="columns with a confidence interval of each loss (evaluation noise); 'auto' finds "
                        "<loss>_lo95/<loss>_hi95, 'none' ignores them")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE", help="write the multiplier plot (PNG/PDF/SVG)")
    p.add_argument("--report", type=Path, default=None, metavar="OUT", help="also write a report into this folder")
    p.add_argument("--force", action="store_true", help="replace --plot or an earlier report in --report")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("report", help="write an HTML + Markdown report with figures for a sweep")
    _add_data(p)
    laws_default = ",".join(REPORT_LAWS)
    p.add_argument("--laws", default=laws_default,
                   help=f"comma-separated laws; the first is the main one (default {laws_default})")
    p.add_argument("--out", type=Path, required=True,
                   help="folder to write: new, empty, or holding an earlier report (never '.' or the input's folder)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier report in --out (only the files it wrote; other files are never removed)")
    p.add_argument("--N", type=_positive_float, action="append", help="forecast point: parameters (repeat)")
    p.add_argument("--D", type=_positive_float, action="append", help="forecast point: tokens (one per --N)")
    p.add_argument("--C", type=_positive_float, action="append", help="budget for the allocation table (repeat)")
    p.add_argument("--downstream", type=Path, default=None, metavar="LINK.nc",
                   help="add a section on a benchmark metric through the loss (a file from `fit-downstream --out`)")
    p.add_argument("--prob", type=_prob, default=PROB, help=f"interval probability (default {PROB:g})")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("datasets", help="list the public reference sweeps, or load one (--out writes a CSV)")
    p.add_argument("name", nargs="?", default=None, help="dataset name (omit to list them)")
    p.add_argument("--path", type=Path, default=None, help="local copy: CSV, dataset folder, or folder of datasets")
    p.add_argument("--query", default=None, help="pandas query selecting rows; 'default' for the recommended rows")
    p.add_argument("--no-download", action="store_true", help="never fetch; use local or cached copies only")
    p.add_argument("--out", type=Path, default=None, help="write the table to this CSV")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("laws", help="list the available laws with formulas and default priors")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_laws)
    return parser


def _input_paths(args: argparse.Namespace) -> list[Path]:
    """The files a command reads: its data (when a file), priors, fit, link, candidates, local dataset copy."""
    paths = []
    data = getattr(args, "data", None)
    if data is not None and Path(data).exists():
        paths.append(Path(data))
    for name in ("priors", "fit", "downstream", "candidates", "path"):
        value = getattr(args, name, None)
        if value is not None:
            paths.append(Path(value))
    return paths


def _preflight(args: argparse.Namespace) -> None:
    """Everything checkable before the work starts: every output path, law names and regions.

    Output files (``--out``, ``--plot``) must be new or, with ``--force``, regular files, never one of the
    command's inputs; report folders (``report --out``, ``--report``) new, empty or an earlier report.
    """
    from bayes_scaling.comparison import parse_region
    from bayes_scaling.laws import get_law
    from bayes_scaling.outputs import check_figure_target, check_file_target, check_report_folder

    inputs = _input_paths(args)
    force = getattr(args, "force", False)
    out = getattr(args, "out", None)
    if out is not None and args.command == "report":
        check_report_folder(out, overwrite=force, inputs=inputs, option="--out")
    elif out is not None:
        check_file_target(out, overwrite=force, inputs=inputs, option="--out")
    if getattr(args, "plot", None) is not None:
        check_figure_target(args.plot, overwrite=force, inputs=inputs, option="--plot")
    if getattr(args, "report", None) is not None:
        check_report_folder(args.report, overwrite=force, inputs=inputs, option="--report")
    if getattr(args, "laws", None) is not None and args.command in ("compare", "report"):
        for name in (n.strip() for n in args.laws.split(",")):
            if name:
                get_law(name)
    for region in getattr(args, "region", None) or ():
        parse_region(region)


def _say(args: argparse.Namespace, line: str) -> None:
    """A first line on a terminal before the slow part starts (nothing with --quiet, --json or a pipe)."""
    if _chatty(args):
        print(line, file=sys.stderr, flush=True)


def _one_line_warnings(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                       line: str | None = None) -> None:
    """Show a warning as one ``warning: ...`` line on stderr (no file, line number or source line)."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def _quietly(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a fitting function with its LargeSweepWarning silenced (the CLI said it up front as a note)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fitting.LargeSweepWarning)
        return function(*args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 --strict failed, 2 bad input, 130 interrupted)."""
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = _one_line_warnings
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _preflight(args)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped, nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `| head -1`) stopped reading: not an error. Point stdout at /dev/null so that
        # Python's flush at exit does not fail again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = shown


def _entry() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
