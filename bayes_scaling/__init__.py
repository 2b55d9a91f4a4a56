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


def __getattr__(name: str) -> object:
    """``bs.plots`` on first use (matplotlib is imported only by those who draw)."""
    if name == "plots":
        import importlib

        return importlib.import_module("bayes_scaling.plots")
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")
