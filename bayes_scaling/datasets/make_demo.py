"""Regenerate the embedded demo sweep (``demo_sweep.csv``).

The demo sweep is synthetic: losses from the Chinchilla law with Epoch AI's refit
of Hoffmann et al. (2022) (Besiroglu et al. 2024): E=1.82, A=482.01, B=2085.43,
alpha=0.3478, beta=0.3658, at 12 model sizes from 70M to 16B parameters, each
trained at 2, 5, 10, 20, 40 and 80 tokens per parameter, with multiplicative
log-normal noise of 1% (seed 20240417). Run ``python -m bayes_scaling.datasets.make_demo``
to rewrite the file; the output is identical for the same numpy version.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.datasets import DEMO_TRUE_PARAMS as TRUE_PARAMS

MODEL_SIZES = np.geomspace(7e7, 1.6e10, 12)
TOKENS_PER_PARAM = (2, 5, 10, 20, 40, 80)
NOISE = 0.01
SEED = 20240417


def make_demo(seed: int = SEED) -> pd.DataFrame:
    """The demo sweep as a DataFrame with columns N, D, C, loss."""
    rng = np.random.default_rng(seed)
    n, ratio = np.meshgrid(MODEL_SIZES, TOKENS_PER_PARAM, indexing="ij")
    n = np.round(n.ravel(), -5)
    d = np.round(n * ratio.ravel(), -6)
    p = TRUE_PARAMS
    mean = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    loss = mean * np.exp(NOISE * rng.standard_normal(n.size))
    return pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": np.round(loss, 5)})


if __name__ == "__main__":
    out = Path(__file__).with_name("demo_sweep.csv")
    make_demo().to_csv(out, index=False, float_format="%.6g")
    print(f"wrote {out}")
