"""What every command shares: option groups, loading the data, printing tables and JSON, progress lines."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_scaling import fitting, workflows
from bayes_scaling.inference import SAMPLERS, Sampling
from bayes_scaling.intervals import check_prob, default_prob
from bayes_scaling.model import LIKELIHOODS


def positive_float(text: str) -> float:
    """An option value that must be a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def default_of(function: Any, name: str) -> Any:
    """The library's default of ``function``'s parameter ``name`` (the CLI never retypes a default)."""
    import inspect

    return inspect.signature(function).parameters[name].default


#: Interval probability of forecasts, plans and reports (the library's default, ``intervals.rc["prob"]``).
PROB = default_prob()


#: Law fitted when none is named, its likelihood and method (read once, at import, from ``fit``).
LAW = default_of(fitting.fit, "law")


LIKELIHOOD = default_of(fitting.fit, "likelihood")


METHOD = default_of(fitting.fit, "method")


#: Laws of a report when none are named.
REPORT_LAWS = default_of(workflows.make_report, "laws")


def seed_arg(text: str) -> int:
    """A seed on the command line: a whole number from 0 to 2**32 - 1 (what every sampler takes)."""
    from bayes_scaling.inference import check_seed

    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: give a whole number from 0 to 4294967295") from None


def prob_arg(text: str) -> float:
    """An interval probability on the command line (checked by :func:`bayes_scaling.intervals.check_prob`)."""
    try:
        return check_prob(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number between 0 and 1 (exclusive)") from None


def add_sampling(parser: argparse.ArgumentParser, *, law_options: bool = True, draws_default: str | None = None
                 ) -> None:
    """Sampling options; ``law_options`` adds the noise model and prior overrides of a law fit.

    ``draws_default`` says in the help what ``--draws`` defaults to when the command chooses it itself: it is then
    left ``None`` for the command to set before :func:`sampling_options` reads it.
    """
    default = Sampling()
    likelihood = LIKELIHOOD
    group = parser.add_argument_group("sampling")
    group.add_argument("--draws", type=int, default=default.draws if draws_default is None else None,
                       help=f"posterior draws per chain (default {draws_default or default.draws})")
    group.add_argument("--tune", type=int, default=default.tune,
                       help=f"tuning steps per chain (default {default.tune})")
    group.add_argument("--chains", type=int, default=default.chains,
                       help=f"number of chains (default {default.chains})")
    group.add_argument("--seed", type=seed_arg, default=default.seed,
                       help="random seed for a reproducible posterior (default: a fresh random seed each run)")
    group.add_argument("--sampler", choices=SAMPLERS, default=default.sampler,
                       help=f"NUTS backend (default {default.sampler})")
    group.add_argument("--ess", type=int, default=default.ess, metavar="N",
                       help="sample until the minimum bulk ESS reaches N (batches of chains) instead of a fixed "
                            "--chains x --draws; --draws then caps the draws per chain of a batch")
    group.add_argument("--max-seconds", type=positive_float, default=default.max_seconds, metavar="S",
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


def add_data(parser: argparse.ArgumentParser) -> None:
    """The data argument and its reading options (columns, units, separator, unit check)."""
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


def load_data(args: argparse.Namespace) -> Any:
    """The validated sweep the data options name (a note on stderr for renamed columns, large sweeps)."""
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
    note_large(sweep, args)
    return sweep


def chatty(args: argparse.Namespace) -> bool:
    """Whether to show progress and notes: on a terminal, unless --quiet or --json."""
    return not getattr(args, "quiet", False) and not getattr(args, "json", False) and sys.stderr.isatty()


def note_large(sweep: Any, args: argparse.Namespace) -> None:
    """Say up front how long NUTS will take on a large sweep (the library's LargeSweepWarning, as one line)."""
    if getattr(args, "method", "nuts") != "nuts" or len(sweep) <= fitting.LARGE_SWEEP or getattr(args, "quiet", False):
        return
    if not hasattr(args, "draws"):
        return
    print("note: " + fitting.large_sweep_message(len(sweep), draws=args.draws, tune=args.tune, chains=args.chains),
          file=sys.stderr)


def sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling options the command line sets, by :class:`Sampling` field (the rest keep the callee's defaults)."""
    return {"draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed, "sampler": args.sampler,
            "progress": chatty(args), "ess": args.ess, "max_seconds": args.max_seconds}


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling options (and a law fit's likelihood and priors) as keyword arguments."""
    from bayes_scaling.priors import load_priors

    sampling = Sampling(**sampling_options(args))
    if not hasattr(args, "likelihood"):
        return {"sampling": sampling}
    return {"sampling": sampling, "likelihood": args.likelihood,
            "priors": load_priors(args.priors) if args.priors else None}


def format_table(table: pd.DataFrame) -> str:
    """A table as text: 4 significant digits, missing values as ``-``, and the kind of its intervals under it."""
    from bayes_scaling.intervals import IntervalTable

    if isinstance(table, IntervalTable):
        return repr(table)
    return table.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-")


def print_json(payload: Any) -> None:
    """Print ``payload`` as JSON (NaN refused: results give None)."""
    print(json.dumps(payload, indent=2, allow_nan=False, default=json_default))


def json_default(value: Any) -> Any:
    """JSON for numpy scalars."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_fit(result: Any, as_json: bool) -> None:
    """Print a fit: its JSON, or the parameter table with diagnostics and notes."""
    if as_json:
        print_json(result.to_dict())
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
    print(format_table(result.summary()))
    term = result.info.get("extrapolation") or {}
    if term.get("design", "none") != "none":
        print(f"extrapolation term ({term['design']}): {term['median']:.4f} log-loss per sweep width beyond the data, "
              f"90% [{term['lower']:.4f}, {term['upper']:.4f}], from {term['folds']} folds and the "
              f"{term.get('prior', 'halfnormal')} prior")
        if "drift_median" in term:  # the signed drift: where forecasts beyond the data are moved, per width
            print(f"  drift {term['drift_median']:+.4f} log-loss per sweep width, 90% [{term['drift_lower']:+.4f}, "
                  f"{term['drift_upper']:+.4f}] (negative: the law's forecasts beyond the data are lowered)")
        from bayes_scaling.extrapolation import Extrapolation

        for name, own in (Extrapolation.from_dict(term).by_direction or {}).items():  # directions erring faster
            if own.share > 0:
                saved = term["by_direction"][name]
                print(f"  beyond the sweep's {name.replace('_', ' ')}: that direction's own term {saved['median']:.4f} "
                      f"(drift {saved['drift_median']:+.4f}) in {own.share:.0%} of draws")
    scatter = result.info.get("scatter")
    if scatter:
        print(f"scatter grows toward the sweep's edges along {', '.join(scatter['columns'])} (sigma_edge_* above)")
    if result.is_approximate:  # no sampler: R-hat, ESS and tree depth say nothing about a Gaussian approximation
        print(f"approximation quality: Pareto k-hat {khat:.2f}" + ("" if khat <= 0.7 else
              "  WARNING: above 0.7, the Gaussian may not cover the posterior; intervals may be off"))
        return
    r_hat = "n/a (1 chain)" if math.isnan(diag.max_r_hat) else f"{diag.max_r_hat:.3f}"
    print(f"diagnostics: max R-hat {r_hat}, min bulk ESS {diag.min_ess_bulk:.0f}, "
          f"divergences {diag.divergences}, mean tree depth {diag.mean_tree_depth:.2f}"
          + ("" if diag.ok else f"  WARNING: {'; '.join(diag.problems)}"))


def strict_status(results: Any, args: argparse.Namespace) -> int:
    """1 when --strict is given and any fit's diagnostics fail (each failure named on stderr), else 0."""
    if not getattr(args, "strict", False):
        return 0
    fits = results if isinstance(results, dict) else {results.law.name: results}
    failed = {name: f.diagnostics().problems for name, f in fits.items() if not f.diagnostics().ok}
    for name, problems in failed.items():
        print(f"error: diagnostics failed for {name}: {'; '.join(problems)}", file=sys.stderr)
    return 1 if failed else 0


def points_of(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--N``/``--D``/``--C``/``--experts`` points, checked to have one value each per point."""
    points = {"N": args.N, "D": args.D, "C": args.C, "experts": getattr(args, "experts", None)}
    points = {k: v for k, v in points.items() if v}
    counts = {k: len(v) for k, v in points.items()}
    if len(set(counts.values())) > 1:
        raise ValueError("give the same number of each of --N, --D, --C and --experts (one --D per --N); got "
                         + ", ".join(f"{n} --{k}" for k, n in counts.items()))
    return points


def warn_range(table: pd.DataFrame) -> list[str]:
    """Print a warning line (stderr) for each row far outside the data; return the lines (for --json)."""
    from bayes_scaling.data import range_warnings

    lines = range_warnings(table)
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    return lines


def add_group_label(parser: argparse.ArgumentParser) -> None:
    """The ``--group-label`` option (pick one group of a pooled fit)."""
    parser.add_argument("--group-label", default=None, metavar="LABEL",
                        help="for a fit pooled across groups (fit --group): the group to use")


def one_group(result: Any, args: argparse.Namespace) -> Any:
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


def report_fit(result: Any, args: argparse.Namespace, header: str, saved_hint: str = "") -> int:
    """Print a fit as the commands do; the exit status (:func:`strict_status`).

    ``--json``: its ``to_dict()``; else ``header``, the parameter table, the diagnostics and where it was saved,
    with ``saved_hint``.
    """
    if args.json:
        print_json(result.to_dict())
    else:
        diag = result.diagnostics()
        print(header)
        print(format_table(result.summary()))
        print(f"diagnostics: max R-hat {diag.max_r_hat:.3f}, min bulk ESS {diag.min_ess_bulk:.0f}, "
              f"divergences {diag.divergences}" + ("" if diag.ok else f"  WARNING: {'; '.join(diag.problems)}"))
        if getattr(args, "out", None) is not None:
            print(f"saved to {args.out}{saved_hint}")
    return strict_status(result, args)


def say(args: argparse.Namespace, line: str) -> None:
    """A first line on a terminal before the slow part starts (nothing with --quiet, --json or a pipe)."""
    if chatty(args):
        print(line, file=sys.stderr, flush=True)


def quietly(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a fitting function with its LargeSweepWarning silenced (the CLI said it up front as a note)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fitting.LargeSweepWarning)
        return function(*args, **kwargs)


class Parser(argparse.ArgumentParser):
    """An argument parser that never accepts prefixes of long options (``--flops`` is not ``--flops-per-token``).

    Sub-command parsers inherit the class, so the rule holds for every command.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def add_prob(parser: argparse.ArgumentParser) -> None:
    """The ``--prob`` option: the interval probability, defaulting to the library's (``intervals.rc``)."""
    parser.add_argument("--prob", type=prob_arg, default=PROB, help=f"interval probability (default {PROB:g})")


def add_json(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag: print the result's ``to_dict()`` as JSON instead of text."""
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_cutoff(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--cutoff-N`` option: hold out the runs with N at or above it (``what``: for what)."""
    parser.add_argument("--cutoff-N", type=positive_float, default=None,
                        help=f"hold out runs with N >= this {what} (default: largest quarter of model sizes)")
