"""Datasets: the embedded demo sweep and loaders for the public reference sweeps.

``load(name)`` returns one of the public sweeps (``available()`` lists them, ``info(name)`` gives the
citation, origin, licence and quirks); see :mod:`bayes_scaling.datasets.fetch` for where it looks.
``load_curves(name)`` returns the training-loss curves of a dataset that logged them (``multipower2025``, and the
checkpoints of ``li2025_misfitting`` and ``clark2022_routing``).

``load_demo()`` returns a synthetic sweep generated from the Chinchilla law with
Epoch AI's published refit (E=1.82, A=482.01, B=2085.43, alpha=0.3478,
beta=0.3658), 72 runs from 70M to 16B parameters at 2-80 tokens per parameter,
with 1% multiplicative noise. See :mod:`bayes_scaling.datasets.make_demo`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from bayes_scaling.datasets.catalog import CATALOG, Dataset
from bayes_scaling.datasets.fetch import DatasetError, available, cache_dir, info, load, load_curves

__all__ = [
    "CATALOG", "DEMO_QUESTION", "DEMO_TRUE_PARAMS", "Dataset", "DatasetError", "available", "cache_dir", "demo_path",
    "info", "load", "load_curves", "load_demo",
]

#: The demo's question, (N, D): what loss will a 100B-parameter model trained on 2T tokens reach?
DEMO_QUESTION = (1e11, 2e12)
#: Parameters the demo sweep was generated from.
DEMO_TRUE_PARAMS = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def demo_path() -> Path:
    """Path of the embedded demo sweep CSV."""
    return Path(str(resources.files("bayes_scaling.datasets").joinpath("demo_sweep.csv")))


def load_demo() -> pd.DataFrame:
    """The embedded demo sweep (columns N, D, C, loss)."""
    return pd.read_csv(demo_path())
