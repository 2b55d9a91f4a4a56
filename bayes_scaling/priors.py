"""Prior specifications: small declarative objects turned into PyMC variables.

A :class:`Prior` names a PyMC distribution and its parameters, e.g.
``Prior("LogNormal", mu=-1.2, sigma=0.6)``. A plain number fixes a parameter
(``priors={"a": 0.73}``). Priors can be read from Python dicts, JSON or TOML
(``{"alpha": {"dist": "LogNormal", "mu": -1.2, "sigma": 0.6}, "a": 0.73}``).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Prior", "PriorError", "as_prior", "load_priors", "merge_priors"]

#: Distributions a prior may name (all from ``pymc``).
ALLOWED_DISTRIBUTIONS = (
    "Normal",
    "HalfNormal",
    "LogNormal",
    "Gamma",
    "InverseGamma",
    "Beta",
    "TruncatedNormal",
    "StudentT",
    "HalfStudentT",
    "HalfCauchy",
    "Exponential",
    "Uniform",
    "Weibull",
)


class PriorError(ValueError):
    """A prior specification cannot be used (unknown parameter, distribution or argument)."""


@dataclass(frozen=True)
class Prior:
    """A prior: a PyMC distribution name with its keyword arguments, or a fixed value.

    Parameters
    ----------
    dist : str
        Name of a PyMC distribution (see ``ALLOWED_DISTRIBUTIONS``), or ``"Fixed"``.
    params : dict
        Keyword arguments of that distribution (for ``"Fixed"``: ``value``).

    Examples
    --------
    >>> Prior("LogNormal", mu=-1.2, sigma=0.6)
    Prior('LogNormal', mu=-1.2, sigma=0.6)
    >>> Prior.fixed(0.73).value
    0.73
    """

    dist: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __init__(self, dist: str, /, **params: float) -> None:
        if dist != "Fixed" and dist not in ALLOWED_DISTRIBUTIONS:
            raise PriorError(
                f"unknown prior distribution {dist!r}; use one of {', '.join(ALLOWED_DISTRIBUTIONS)} "
                "or a plain number to fix the parameter"
            )
        clean: dict[str, float] = {}
        for key, value in params.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise PriorError(f"prior {dist}: argument {key}={value!r} is not a number") from None
            if not math.isfinite(number):
                raise PriorError(f"prior {dist}: argument {key}={value!r} is not finite")
            clean[key] = number
        if dist == "Fixed" and set(clean) != {"value"}:
            raise PriorError("a fixed prior takes exactly one argument, value")
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", clean)

    @classmethod
    def fixed(cls, value: float) -> Prior:
        """A parameter held at ``value`` (no prior, not sampled)."""
        return cls("Fixed", value=value)

    @property
    def is_fixed(self) -> bool:
        """Whether the parameter is held constant."""
        return self.dist == "Fixed"

    @property
    def value(self) -> float:
        """The fixed value (only for fixed priors)."""
        if not self.is_fixed:
            raise PriorError(f"{self!r} is a distribution, not a fixed value")
        return self.params["value"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, the inverse of :func:`as_prior`."""
        if self.is_fixed:
            return {"value": self.value}
        return {"dist": self.dist, **self.params}

    def create(self, name: str) -> Any:
        """Create the PyMC random variable ``name`` inside the current model context."""
        import pymc as pm

        if self.is_fixed:
            return pm.Deterministic(name, pm.math.constant(self.value, dtype="float64"))
        try:
            return getattr(pm, self.dist)(name, **self.params)
        except TypeError as exc:
            raise PriorError(f"prior for {name!r}: {self.dist}({self._args()}) is invalid: {exc}") from None

    def _args(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.params.items())

    def __repr__(self) -> str:
        args = self._args()
        return f"Prior({self.dist!r}{', ' if args else ''}{args})"

    def __str__(self) -> str:
        if self.is_fixed:
            return f"fixed at {self.value:g}"
        return f"{self.dist}({self._args()})"


def as_prior(spec: Prior | Mapping[str, Any] | float | int, *, name: str = "parameter") -> Prior:
    """Turn a user's prior specification into a :class:`Prior`.

    Accepts a :class:`Prior`, a number (fixes the parameter), ``{"value": x}``,
    or a mapping ``{"dist": "Normal", "mu": 0, "sigma": 1}``.
    """
    if isinstance(spec, Prior):
        return spec
    if isinstance(spec, bool):
        raise PriorError(f"prior for {name!r}: {spec!r} is not a prior")
    if isinstance(spec, int | float):
        return Prior.fixed(float(spec))
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "dist" not in spec:
            if set(spec) == {"value"}:
                return Prior.fixed(spec["value"])
            raise PriorError(
                f"prior for {name!r}: a mapping needs a 'dist' key (e.g. "
                "{'dist': 'Normal', 'mu': 0, 'sigma': 1}) or only a 'value' key"
            )
        dist = spec.pop("dist")
        try:
            return Prior(str(dist), **spec)
        except PriorError as exc:
            raise PriorError(f"prior for {name!r}: {exc}") from None
    raise PriorError(f"prior for {name!r}: cannot read {spec!r} as a prior")


def merge_priors(
    defaults: Mapping[str, Prior],
    user: Mapping[str, Any] | None,
    *,
    law_name: str = "law",
) -> dict[str, Prior]:
    """Merge user priors over a copy of the defaults; unknown names raise :class:`PriorError`."""
    merged = dict(defaults)
    for key, spec in (user or {}).items():
        if key not in merged:
            raise PriorError(
                f"{law_name} has no parameter {key!r}; its parameters are {', '.join(merged)}"
            )
        merged[key] = as_prior(spec, name=key)
    return merged


def load_priors(path: str | Path) -> dict[str, Prior]:
    """Read priors from a JSON or TOML file (by extension; TOML otherwise JSON).

    The file maps parameter names to ``{"dist": ..., <args>}`` or to a number.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PriorError(f"cannot read priors file {path}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise PriorError(f"priors file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(raw, dict):
        raise PriorError(f"priors file {path} must map parameter names to priors")
    return {key: as_prior(value, name=key) for key, value in raw.items()}
