"""Scatter that is not constant: run-to-run scatter that grows toward the edges of the sweep.

A law fits worst at the edges of what it was fitted on: the ends of an IsoFLOP profile (very few or very many
tokens per parameter for the budget), and the smallest and largest sizes. With ``fit(scatter="edges")`` the scale
of the noise on log-loss grows there:

    sigma_i = sigma * exp(sum_c g_c * e_ic),    g_c ~ HalfNormal(EDGE_PRIOR_SD)

where ``e_ic`` in [0, 1] is how far run ``i`` lies from the middle of the sweep in direction ``c`` (0 at the
middle of the sweep's range, 1 at its edge, in log10, :func:`edge_position`), over the directions of
:func:`edge_columns`: for laws of N and D, the tokens per parameter D/N (the IsoFLOP edges, over- and
under-training) and the size N; for a law of one input, that input. ``g_c = 0`` is the constant scatter, the
special case the prior shrinks toward. New points beyond the sweep get the edge scatter (``e`` capped at 1):
what lies beyond is the extrapolation term's job (:mod:`bayes_scaling.extrapolation`), not a trend of the
scatter carried past the data.

The default stays ``"constant"``: see the README's honesty section for the PSIS-LOO and backtest comparison that
chose it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.extrapolation import TOKENS_PER_PARAM, with_directions
from bayes_scaling.priors import Prior

__all__ = ["EDGE_PRIOR_SD", "SCATTERS", "edge_columns", "edge_names", "edge_position", "edge_spec", "scatter_at"]

#: ``fit(scatter=...)``: ``"constant"`` (one sigma, the default) or ``"edges"`` (growing toward the sweep's edges).
SCATTERS = ("constant", "edges")
#: Prior scale (HalfNormal) of each growth ``g_c``: ``g = 0.7`` doubles the scatter at the edge, ``g = 1``
#: multiplies it by 2.7.
EDGE_PRIOR_SD = 1.0
#: Narrowest half-range (decades) a position is measured against.
MIN_HALFWIDTH = 0.25
_PREFIX = "sigma_edge_"
_SHORT = {TOKENS_PER_PARAM: "tpp"}


def edge_columns(law: Any) -> list[str]:
    """The directions the scatter may grow in: D/N and N for laws of N and D, else the law's one input."""
    inputs = [k for k in law.inputs if k in ("N", "D", "C")]
    if "N" in inputs and "D" in inputs:
        return [TOKENS_PER_PARAM, "N"]
    return inputs[:1]


def edge_names(spec: Mapping[str, Any] | None) -> list[str]:
    """The growth parameters' names (``sigma_edge_tpp``, ``sigma_edge_N``, ...) of a spec; none when constant."""
    if not spec:
        return []
    return [_PREFIX + _SHORT.get(c, c) for c in spec["columns"]]


def edge_spec(law: Any, runs: Any) -> dict[str, Any]:
    """The middle and half-range (log10) of each edge direction over ``runs`` (a Sweep or DataFrame)."""
    frame = with_directions(getattr(runs, "frame", runs))
    columns = [c for c in edge_columns(law) if c in frame.columns]
    if not columns:
        raise ValueError(f"law {law.name!r} has no input the scatter could grow along (N, D or C)")
    centre, half = {}, {}
    for column in columns:
        x = np.log10(frame[column].to_numpy(dtype=float))
        centre[column] = float((x.max() + x.min()) / 2)
        half[column] = float(max((x.max() - x.min()) / 2, MIN_HALFWIDTH))
    return {"design": "edges", "columns": columns, "centre": centre, "halfwidth": half}


def edge_position(points: pd.DataFrame, spec: Mapping[str, Any]) -> np.ndarray:
    """How far each point lies from the sweep's middle toward its edge, per direction: shape (columns, points).

    0 in the middle, 1 at the edge and beyond (capped).
    """
    frame = with_directions(points)
    out = []
    for column in spec["columns"]:
        if column not in frame.columns:
            raise ValueError(f"the scatter grows along {column!r}, which the points lack (they need N and D)")
        x = np.log10(frame[column].to_numpy(dtype=float))
        out.append(np.minimum(np.abs(x - spec["centre"][column]) / spec["halfwidth"][column], 1.0))
    return np.array(out).reshape(len(spec["columns"]), len(frame))


def scatter_at(noise: Mapping[str, np.ndarray], points: pd.DataFrame, spec: Mapping[str, Any] | None
               ) -> dict[str, np.ndarray]:
    """Noise draws with ``sigma`` per draw and point (shape (draws, points)); the growth parameters consumed.

    With a constant scatter (``spec`` None) ``sigma`` is broadcast to every point.
    """
    out = {k: np.asarray(v, float) for k, v in noise.items() if not k.startswith(_PREFIX)}
    sigma = out["sigma"].reshape(-1, 1)
    if not spec:
        out["sigma"] = np.broadcast_to(sigma, (sigma.shape[0], len(points)))
        return out
    position = edge_position(points, spec)
    log_factor = sum(np.asarray(noise[name], float).reshape(-1, 1) * position[i][None, :]
                     for i, name in enumerate(edge_names(spec)))
    out["sigma"] = sigma * np.exp(log_factor)
    return out


def growth_priors(spec: Mapping[str, Any] | None) -> dict[str, Prior]:
    """Default priors of the growth parameters of ``spec`` (none for a constant scatter)."""
    return {name: Prior("HalfNormal", sigma=EDGE_PRIOR_SD) for name in edge_names(spec)}


def edge_factor_range(noise: Mapping[str, np.ndarray], spec: Mapping[str, Any] | None) -> float:
    """Posterior median of the scatter's largest factor (at the edge in every direction): 1 when constant."""
    if not spec:
        return 1.0
    total = sum(np.asarray(noise[name], float) for name in edge_names(spec))
    return float(math.exp(np.median(total)))
