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

from bayes_scaling import datasets
from bayes_scaling.batch import FitMany, fit_many
from bayes_scaling.comparison import compare, exponent_summary
from bayes_scaling.data import DataError, DataWarning, Sweep, load_sweep
from bayes_scaling.datasets import load_demo
from bayes_scaling.fitting import fit, prior_predictive
from bayes_scaling.forecast import forecast
from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.inference import ConvergenceWarning, Diagnostics, Sampling
from bayes_scaling.laws import ScalingLaw, get_law, laws, register_law
from bayes_scaling.model import build_model
from bayes_scaling.planning import compute_optimal, hardware_flops
from bayes_scaling.posterior import Fit, FitFileError, load
from bayes_scaling.priors import Prior, PriorError
from bayes_scaling.recipes import RecipeComparison, compare_recipes
from bayes_scaling.workflows import compare_hypotheses, extrapolation_scores

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "Diagnostics",
    "Fit",
    "FitFileError",
    "FitMany",
    "Prior",
    "PriorError",
    "RecipeComparison",
    "Sampling",
    "ScalingLaw",
    "Sweep",
    "build_model",
    "compare",
    "compare_hypotheses",
    "compare_recipes",
    "compute_optimal",
    "datasets",
    "exponent_summary",
    "extrapolation_scores",
    "fit",
    "fit_hierarchical",
    "fit_many",
    "forecast",
    "get_law",
    "hardware_flops",
    "laws",
    "load",
    "load_demo",
    "load_sweep",
    "prior_predictive",
    "register_law",
]
