"""bayes_scaling: Bayesian, uncertainty-aware fitting of neural scaling laws.

Typical use::

    import bayes_scaling as bs
    result = bs.fit("sweep.csv", law="chinchilla", seed=1)
    result.summary()
    result.forecast(N=1e11, D=2e12)
    result.save("fit.nc")
    same = bs.load("fit.nc")
    chinchilla = bs.datasets.load("chinchilla_epoch")   # public reference sweeps
"""

import importlib
import importlib.util
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it (``bayes_scaling`` itself: the name is a sub-module). Imported on first
#: use, so ``import bayes_scaling`` (and the command line's client, see :mod:`bayes_scaling.worker`) costs no
#: PyMC, pandas or matplotlib import until a name is used; ``from bayes_scaling import fit`` works as before.
_HERE = Path(__file__).parent
_EXPORTS: dict[str, str] = {
    "datasets": "bayes_scaling",
    "intervals": "bayes_scaling",
    "predictive": "bayes_scaling",
    "results": "bayes_scaling",
    "FitMany": "bayes_scaling.batch",
    "fit_many": "bayes_scaling.batch",
    "compare": "bayes_scaling.comparison",
    "exponent_summary": "bayes_scaling.comparison",
    "DataError": "bayes_scaling.data",
    "DataWarning": "bayes_scaling.data",
    "Sweep": "bayes_scaling.data",
    "load_sweep": "bayes_scaling.data",
    "load_demo": "bayes_scaling.datasets",
    "Suggestion": "bayes_scaling.design",
    "suggest_runs": "bayes_scaling.design",
    "DownstreamFit": "bayes_scaling.downstream",
    "TaskFit": "bayes_scaling.downstream",
    "chain": "bayes_scaling.downstream",
    "fit_downstream": "bayes_scaling.downstream",
    "fit_tasks": "bayes_scaling.downstream",
    "load_downstream": "bayes_scaling.downstream",
    "task_table": "bayes_scaling.downstream",
    "fit": "bayes_scaling.fitting",
    "prior_predictive": "bayes_scaling.fitting",
    "forecast": "bayes_scaling.forecast",
    "fit_hierarchical": "bayes_scaling.hierarchical",
    "ConvergenceWarning": "bayes_scaling.inference",
    "Diagnostics": "bayes_scaling.inference",
    "Sampling": "bayes_scaling.inference",
    "ScalingLaw": "bayes_scaling.laws",
    "get_law": "bayes_scaling.laws",
    "laws": "bayes_scaling.laws",
    "register_law": "bayes_scaling.laws",
    "build_model": "bayes_scaling.model",
    "compute_optimal": "bayes_scaling.planning",
    "hardware_flops": "bayes_scaling.planning",
    "Fit": "bayes_scaling.posterior",
    "FitFileError": "bayes_scaling.posterior",
    "Predictive": "bayes_scaling.predictive",
    "predict": "bayes_scaling.predictive",
    "Prior": "bayes_scaling.priors",
    "PriorError": "bayes_scaling.priors",
    "RecipeComparison": "bayes_scaling.recipes",
    "compare_recipes": "bayes_scaling.recipes",
    "load": "bayes_scaling.results",
    "backtest": "bayes_scaling.workflows",
    "compare_hypotheses": "bayes_scaling.workflows",
    "explain": "bayes_scaling.workflows",
    "extrapolation_scores": "bayes_scaling.workflows",
    "make_report": "bayes_scaling.workflows",
}

#: Public functions named like the module that holds them: the function wins (``bs.forecast(...)``, ``bs.laws()``),
#: also after something imports the module of that name.
_FUNCTIONS_OVER_MODULES = frozenset(
    n for n, m in _EXPORTS.items()
    if m != "bayes_scaling" and any((_HERE / f).exists() for f in (f"{n}.py", f"{n}/__init__.py")))

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from bayes_scaling import datasets, intervals, predictive, results
    from bayes_scaling.batch import FitMany, fit_many
    from bayes_scaling.comparison import compare, exponent_summary
    from bayes_scaling.data import DataError, DataWarning, Sweep, load_sweep
    from bayes_scaling.datasets import load_demo
    from bayes_scaling.design import Suggestion, suggest_runs
    from bayes_scaling.downstream import (
        DownstreamFit,
        TaskFit,
        chain,
        fit_downstream,
        fit_tasks,
        load_downstream,
        task_table,
    )
    from bayes_scaling.fitting import fit, prior_predictive
    from bayes_scaling.forecast import forecast
    from bayes_scaling.hierarchical import fit_hierarchical
    from bayes_scaling.inference import ConvergenceWarning, Diagnostics, Sampling
    from bayes_scaling.laws import ScalingLaw, get_law, laws, register_law
    from bayes_scaling.model import build_model
    from bayes_scaling.planning import compute_optimal, hardware_flops
    from bayes_scaling.posterior import Fit, FitFileError
    from bayes_scaling.predictive import Predictive, predict
    from bayes_scaling.priors import Prior, PriorError
    from bayes_scaling.recipes import RecipeComparison, compare_recipes
    from bayes_scaling.results import load
    from bayes_scaling.workflows import backtest, compare_hypotheses, explain, extrapolation_scores, make_report

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "Diagnostics",
    "DownstreamFit",
    "Fit",
    "FitFileError",
    "FitMany",
    "Predictive",
    "Prior",
    "PriorError",
    "RecipeComparison",
    "Sampling",
    "ScalingLaw",
    "Suggestion",
    "Sweep",
    "TaskFit",
    "backtest",
    "build_model",
    "chain",
    "compare",
    "compare_hypotheses",
    "compare_recipes",
    "compute_optimal",
    "datasets",
    "explain",
    "exponent_summary",
    "extrapolation_scores",
    "fit",
    "fit_downstream",
    "fit_hierarchical",
    "fit_many",
    "fit_tasks",
    "forecast",
    "get_law",
    "hardware_flops",
    "intervals",
    "laws",
    "load",
    "load_demo",
    "load_downstream",
    "load_sweep",
    "make_report",
    "plots",
    "predict",
    "predictive",
    "prior_predictive",
    "register_law",
    "results",
    "suggest_runs",
    "task_table",
]


class _Package(types.ModuleType):
    """The package module: a sub-module import never hides the public function of the same name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS_OVER_MODULES and isinstance(value, types.ModuleType):
            return  # the sub-module stays reachable as sys.modules["bayes_scaling.<name>"]
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    """A public name (or any sub-module, e.g. ``bs.plots``) on first use."""
    module = _EXPORTS.get(name)
    if module == "bayes_scaling" or (module is None and importlib.util.find_spec(f"bayes_scaling.{name}")):
        value = importlib.import_module(f"bayes_scaling.{name}")
    elif module is not None:
        value = getattr(importlib.import_module(module), name)
    else:
        raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _Package
