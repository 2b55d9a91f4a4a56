"""Scaling laws as small declarative objects, and the registry of laws.

Each law is a :class:`ScalingLaw`: a name, the parameter names it samples,
default priors for exactly those names, and **one** expression for the log of
the predicted loss, written against an array namespace ``xp`` so the same code
runs on numpy arrays (forecasts over posterior draws) and on PyTensor tensors
(the PyMC model).

Parameterisation
----------------
Power-law terms are written at a *reference scale* taken from the sweep (the
geometric means ``N_ref``, ``D_ref``, ``C_ref`` of its runs). For instance the
Chinchilla term ``A / N^alpha`` is sampled as its log value at ``N_ref``,
``log_n_term = log(A) - alpha * log(N_ref)``, and evaluated as
``log_n_term - alpha * log(N / N_ref)``. With ``log N`` centred the posterior of
(level, exponent) is close to uncorrelated instead of a narrow ridge, which is
what makes NUTS fast here. The classical constants (``A``, ``B``, ``C0``, ...)
are recorded as derived quantities in the posterior.

All inputs handed to an expression are centred logs: ``x["N"] = log(N/N_ref)``,
``x["D"] = log(D/D_ref)``, ``x["C"] = log(C/C_ref)`` and, for repeated data,
``x["U"] = log(U/D_ref)`` (unique tokens, on the token reference scale). One input is not centred:
``x["T"] = log(D/N)``, the log of tokens per parameter, for laws whose data term changes with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bayes_scaling.priors import Prior

__all__ = ["DEFAULT_LAW", "ScalingLaw", "get_law", "laws", "register_law"]

#: The law a fit of one sweep uses unless told otherwise: the Chinchilla form whose data term saturates at K tokens
#: per parameter (K beyond the data is the Chinchilla form; see README, "Honest extrapolation", for the backtests
#: that chose it).
DEFAULT_LAW = "chinchilla_saturating"

Expression = Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]
Derived = Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]

#: Column each input key is read from.
INPUT_COLUMNS = {"N": "N", "D": "D", "C": "C", "U": "unique_tokens", "X": "experts"}
#: Reference scale used to centre each input key (None: not centred).
INPUT_REFERENCE: dict[str, str | None] = {"N": "N", "D": "D", "C": "C", "U": "D", "X": None}
#: Inputs computed from other inputs' columns rather than read from one: key -> (numerator, denominator) columns,
#: handed to the law as ``log(numerator / denominator)`` (not centred).
DERIVED_INPUTS: dict[str, tuple[str, str]] = {"T": ("D", "N")}


@dataclass(frozen=True)
class ScalingLaw:
    """A functional form for the loss of a training run.

    Parameters
    ----------
    name : str
        Registry name (``--law`` on the command line).
    title : str
        One-line description.
    formula : str
        The law in its classical form.
    citation : str
        Where it comes from.
    inputs : tuple of str
        Input keys the expression reads (``"N"``, ``"D"``, ``"C"``, ``"U"``, ``"X"``, ``"T"``).
    default_priors : mapping
        A :class:`~bayes_scaling.priors.Prior` for each parameter; its keys, in order, are the law's parameters
        (:attr:`param_names`), the ones the model samples (or holds fixed).
    log_loss : callable
        ``log_loss(xp, params, x)`` -> log of the predicted loss. ``xp`` is numpy
        or ``pytensor.tensor``; ``params`` maps parameter names to values; ``x``
        maps input keys to centred logs (see the module docstring).
    derived : mapping, optional
        Named quantities computed from the parameters, ``f(xp, params, log_ref)``,
        where ``log_ref`` maps ``"N"``, ``"D"``, ``"C"`` to the logs of the reference scales.
    summary_names : tuple of str, optional
        Quantities shown by ``Fit.summary()``; defaults to all parameters and derived.
    exponents : tuple of str, optional
        The law's exponent parameters: shared across groups by default in a pooled fit
        (:func:`bayes_scaling.fit_hierarchical`). Defaults to the parameters named ``alpha``, ``beta``,
        ``alpha_*`` or ``beta_*``.
    optimal_exponents : (str, str), optional
        Posterior variables (N exponent, D exponent) from which the compute-optimal exponents follow,
        ``a = d / (n + d)`` for N_opt ~ C^a; ``None`` when the law has no such pair.
    allocation : callable, optional
        Closed-form compute-optimal allocation: ``allocation(draws, log_budget)`` returns log N_opt per posterior
        draw, where ``draws(names)`` gives posterior draws by name and ``log_budget`` is log(C / k).
        ``None``: planning solves the allocation numerically.
    """

    name: str
    title: str
    formula: str
    citation: str
    inputs: tuple[str, ...]
    default_priors: Mapping[str, Prior]
    log_loss: Expression
    derived: Mapping[str, Derived] = field(default_factory=dict)
    summary_names: tuple[str, ...] = ()
    exponents: tuple[str, ...] | None = None
    optimal_exponents: tuple[str, str] | None = None
    allocation: Callable[[Callable[[Sequence[str]], Mapping[str, Any]], float], Any] | None = None

    def __post_init__(self) -> None:
        if not self.default_priors:
            raise ValueError(f"law {self.name!r}: no parameters; give default_priors, one Prior per parameter")
        bad = [k for k, v in self.default_priors.items() if not isinstance(v, Prior)]
        if bad:
            raise ValueError(f"law {self.name!r}: default priors of {bad} are not Prior objects")
        unknown = set(self.inputs) - set(INPUT_COLUMNS) - set(DERIVED_INPUTS)
        if unknown:
            raise ValueError(f"law {self.name!r}: unknown inputs {sorted(unknown)}")
        clash = set(self.derived) & set(self.param_names)
        if clash:
            raise ValueError(f"law {self.name!r}: derived names clash with parameters {sorted(clash)}")
        object.__setattr__(self, "default_priors", MappingProxyType(dict(self.default_priors)))
        object.__setattr__(self, "derived", MappingProxyType(dict(self.derived)))
        if not self.summary_names:
            object.__setattr__(self, "summary_names", tuple(self.param_names) + tuple(self.derived))
        if self.exponents is None:
            named = tuple(n for n in self.param_names
                          if n in ("alpha", "beta") or n.startswith(("alpha_", "beta_")))
            object.__setattr__(self, "exponents", named)
        unknown = set(self.exponents) - set(self.param_names)
        if unknown:
            raise ValueError(f"law {self.name!r}: exponents {sorted(unknown)} are not parameters")
        known = set(self.param_names) | set(self.derived)
        if self.optimal_exponents is not None and not set(self.optimal_exponents) <= known:
            raise ValueError(f"law {self.name!r}: optimal_exponents {self.optimal_exponents} are not in the posterior")

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickled by name (fits travel to worker processes): a law is its registry entry.
        if _REGISTRY.get(self.name) is not self:
            raise TypeError(
                f"law {self.name!r} is not registered, so it cannot be sent to another process; "
                "call register_law() on it at import time of a module the workers import"
            )
        return (get_law, (self.name,))

    @property
    def param_names(self) -> tuple[str, ...]:
        """The law's parameters: the keys of its default priors, in order."""
        return tuple(self.default_priors)

    @property
    def columns(self) -> tuple[str, ...]:
        """Sweep columns the law needs (a derived input such as ``T`` needs the columns it is computed from)."""
        needed: list[str] = []
        for key in self.inputs:
            for column in DERIVED_INPUTS.get(key, (INPUT_COLUMNS.get(key),)):
                if column not in needed:
                    needed.append(column)
        return tuple(needed)

    def evaluate(self, params: Mapping[str, Any], x: Mapping[str, Any], xp: Any = None) -> Any:
        """Log predicted loss for parameter values ``params`` at centred inputs ``x``."""
        if xp is None:
            import numpy as xp
        return self.log_loss(xp, params, x)

    def describe(self) -> str:
        """Multi-line human description: formula, parameters with priors, source."""
        lines = [f"{self.name}: {self.title}", f"  {self.formula}", f"  source: {self.citation}"]
        for key in self.param_names:
            lines.append(f"  {key} ~ {self.default_priors[key]}")
        if self.derived:
            lines.append(f"  derived: {', '.join(self.derived)}")
        return "\n".join(lines)


_REGISTRY: dict[str, ScalingLaw] = {}


def register_law(law: ScalingLaw, *, overwrite: bool = False) -> ScalingLaw:
    """Add a law to the registry (refuses to replace one unless ``overwrite``)."""
    if law.name in _REGISTRY and not overwrite:
        raise ValueError(f"a law named {law.name!r} is already registered")
    _REGISTRY[law.name] = law
    return law


def laws() -> dict[str, ScalingLaw]:
    """All registered laws, by name."""
    return dict(_REGISTRY)


def get_law(law: str | ScalingLaw) -> ScalingLaw:
    """Look a law up by name (a :class:`ScalingLaw` is returned as is)."""
    if isinstance(law, ScalingLaw):
        return law
    try:
        return _REGISTRY[law]
    except KeyError:
        raise ValueError(f"unknown law {law!r}; available: {', '.join(_REGISTRY)}") from None


# ---------------------------------------------------------------------------
# Shared pieces: default priors (loss in nats per token) and term helpers.
# ---------------------------------------------------------------------------

#: Irreducible loss E: median 1.5 nats, 95% between about 0.35 and 6.5.
PRIOR_E = Prior("LogNormal", mu=math.log(1.5), sigma=0.75)
#: Exponent of a Chinchilla-style term: median 0.3, 95% between about 0.09 and 1.
PRIOR_EXPONENT = Prior("LogNormal", mu=math.log(0.3), sigma=0.6)
#: Log of a reducible term at the reference scale: median 0.3 nats, 95% 0.016-5.7.
PRIOR_LOG_TERM = Prior("Normal", mu=math.log(0.3), sigma=1.5)


def _sum_terms(xp: Any, *log_terms: Any) -> Any:
    """log(sum(exp(t))) for two or more log-terms, stable in numpy and PyTensor."""
    total = log_terms[0]
    for term in log_terms[1:]:
        total = xp.logaddexp(total, term)
    return total


def _power_constant(level: str, exponent: str, scale: str) -> Derived:
    """Constant K of K / X^exponent from its log level at the reference scale."""

    def constant(xp: Any, p: Mapping[str, Any], log_ref: Mapping[str, Any]) -> Any:
        return xp.exp(p[level] + p[exponent] * log_ref[scale])

    return constant


def _chinchilla(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    return _sum_terms(
        xp,
        xp.log(p["E"]),
        p["log_n_term"] - p["alpha"] * x["N"],
        p["log_d_term"] - p["beta"] * x["D"],
    )


def chinchilla_allocation(draws: Callable[[Sequence[str]], Mapping[str, Any]], log_budget: float) -> Any:
    """Per-draw log N_opt of the Chinchilla form (Hoffmann et al. 2022, eq. 4).

    N_opt = G (C/k)^a with G = (alpha A / (beta B))^(1/(alpha + beta)) and a = beta / (alpha + beta).
    """
    import numpy as np

    d = draws(["A", "B", "alpha", "beta"])
    s = d["alpha"] + d["beta"]
    log_g = (np.log(d["alpha"] * d["A"]) - np.log(d["beta"] * d["B"])) / s
    return log_g + d["beta"] / s * log_budget


_CHINCHILLA_FORM = {"optimal_exponents": ("alpha", "beta"), "allocation": chinchilla_allocation}

_CHINCHILLA_DERIVED = {
    "A": _power_constant("log_n_term", "alpha", "N"),
    "B": _power_constant("log_d_term", "beta", "D"),
}
_CHINCHILLA_SUMMARY = ("E", "A", "B", "alpha", "beta")
#: The Chinchilla form's parameters and default priors, in order (laws built on it add theirs after these).
_CHINCHILLA_PRIORS = {
    "E": PRIOR_E,
    "alpha": PRIOR_EXPONENT,
    "beta": PRIOR_EXPONENT,
    "log_n_term": PRIOR_LOG_TERM,
    "log_d_term": PRIOR_LOG_TERM,
}

register_law(
    ScalingLaw(
        name="chinchilla",
        title="Chinchilla law L(N, D) with separate exponents",
        formula="L = E + A / N^alpha + B / D^beta",
        citation="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (Approach 3)",
        inputs=("N", "D"),
        default_priors=_CHINCHILLA_PRIORS,
        log_loss=_chinchilla,
        derived=_CHINCHILLA_DERIVED,
        summary_names=_CHINCHILLA_SUMMARY,
        **_CHINCHILLA_FORM,
    )
)


def _chinchilla_tied(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    return _chinchilla(xp, {**p, "beta": p["alpha"]}, x)


register_law(
    ScalingLaw(
        name="chinchilla_tied",
        title="Chinchilla law with one exponent for N and D (equal-scaling hypothesis)",
        formula="L = E + A / N^alpha + B / D^alpha",
        citation="Hoffmann et al. 2022; a = b = 0.5 hypothesis",
        inputs=("N", "D"),
        default_priors={
            "E": PRIOR_E,
            "alpha": PRIOR_EXPONENT,
            "log_n_term": PRIOR_LOG_TERM,
            "log_d_term": PRIOR_LOG_TERM,
        },
        log_loss=_chinchilla_tied,
        derived={
            "beta": lambda xp, p, log_ref: p["alpha"] * 1.0,
            "A": _power_constant("log_n_term", "alpha", "N"),
            "B": _power_constant("log_d_term", "alpha", "D"),
        },
        summary_names=_CHINCHILLA_SUMMARY,
        **_CHINCHILLA_FORM,
    )
)


def _allocation_beta(xp: Any, p: Mapping[str, Any], log_ref: Mapping[str, Any] | None = None) -> Any:
    return p["alpha"] * p["a"] / (1.0 - p["a"])


def _allocation(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    return _chinchilla(xp, {**p, "beta": _allocation_beta(xp, p)}, x)


def _allocation_law(name: str, a: Prior, title: str, citation: str) -> ScalingLaw:
    return ScalingLaw(
        name=name,
        title=title,
        formula="L = E + A / N^alpha + B / D^beta, beta = alpha * a / (1 - a), a = beta / (alpha + beta)",
        citation=citation,
        inputs=("N", "D"),
        default_priors={
            "E": PRIOR_E,
            "alpha": PRIOR_EXPONENT,
            "a": a,
            "log_n_term": PRIOR_LOG_TERM,
            "log_d_term": PRIOR_LOG_TERM,
        },
        log_loss=_allocation,
        derived={
            "beta": _allocation_beta,
            "A": _power_constant("log_n_term", "alpha", "N"),
            "B": lambda xp, p, log_ref: xp.exp(p["log_d_term"] + _allocation_beta(xp, p) * log_ref["D"]),
        },
        summary_names=(*_CHINCHILLA_SUMMARY, "a"),
        **_CHINCHILLA_FORM,
    )


register_law(
    _allocation_law(
        "allocation",
        Prior("Beta", alpha=2.0, beta=2.0),
        "Chinchilla law parameterised by the compute-optimal exponent a (N_opt ~ C^a)",
        "Hoffmann et al. 2022; a = beta / (alpha + beta)",
    )
)
register_law(
    _allocation_law(
        "allocation_a073",
        Prior.fixed(0.73),
        "Chinchilla law with a fixed at 0.73 (Kaplan's N_opt ~ C^0.73)",
        "Kaplan et al. 2020, Scaling Laws for Neural Language Models",
    )
)
register_law(
    _allocation_law(
        "allocation_a050",
        Prior.fixed(0.5),
        "Chinchilla law with a fixed at 0.5 (Chinchilla's N_opt ~ C^0.5)",
        "Hoffmann et al. 2022",
    )
)

#: Kaplan's exponents are small (alpha_N ~ 0.076, alpha_D ~ 0.095): median 0.1, 95% 0.02-0.45.
PRIOR_KAPLAN_EXPONENT = Prior("LogNormal", mu=math.log(0.1), sigma=0.75)
#: log(N_c / N_ref) and log(D_c / D_ref): Kaplan's N_c ~ 8.8e13, D_c ~ 5.4e13 lie far above sweeps.
PRIOR_KAPLAN_LOG_SCALE = Prior("Normal", mu=8.0, sigma=4.0)


def _kaplan_core(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    ratio = p["alpha_N"] / p["alpha_D"]
    return p["alpha_D"] * _sum_terms(xp, ratio * (p["log_nc"] - x["N"]), p["log_dc"] - x["D"])


def _kaplan_e(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    return _sum_terms(xp, xp.log(p["E"]), _kaplan_core(xp, p, x))


_KAPLAN_PRIORS = {
    "alpha_N": PRIOR_KAPLAN_EXPONENT,
    "alpha_D": PRIOR_KAPLAN_EXPONENT,
    "log_nc": PRIOR_KAPLAN_LOG_SCALE,
    "log_dc": PRIOR_KAPLAN_LOG_SCALE,
}
_KAPLAN_DERIVED = {
    "N_c": lambda xp, p, log_ref: xp.exp(p["log_nc"] + log_ref["N"]),
    "D_c": lambda xp, p, log_ref: xp.exp(p["log_dc"] + log_ref["D"]),
}

register_law(
    ScalingLaw(
        name="kaplan",
        title="Kaplan L(N, D) without an irreducible term",
        formula="L = [ (N_c / N)^(alpha_N / alpha_D) + D_c / D ]^alpha_D",
        citation="Kaplan et al. 2020, Scaling Laws for Neural Language Models, eq. 1.5",
        inputs=("N", "D"),
        optimal_exponents=("alpha_N", "alpha_D"),
        default_priors=_KAPLAN_PRIORS,
        log_loss=_kaplan_core,
        derived=_KAPLAN_DERIVED,
        summary_names=("N_c", "D_c", "alpha_N", "alpha_D"),
    )
)
register_law(
    ScalingLaw(
        name="kaplan_e",
        title="Kaplan L(N, D) plus an irreducible term E",
        formula="L = E + [ (N_c / N)^(alpha_N / alpha_D) + D_c / D ]^alpha_D",
        citation="Kaplan et al. 2020 with the irreducible loss of Henighan et al. 2020",
        inputs=("N", "D"),
        optimal_exponents=("alpha_N", "alpha_D"),
        default_priors={"E": PRIOR_E, **_KAPLAN_PRIORS},
        log_loss=_kaplan_e,
        derived=_KAPLAN_DERIVED,
        summary_names=("E", "N_c", "D_c", "alpha_N", "alpha_D"),
    )
)


def _single(variable: str, level: str, exponent: str) -> Expression:
    def expression(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        return _sum_terms(xp, xp.log(p["E"]), p[level] - p[exponent] * x[variable])

    return expression


register_law(
    ScalingLaw(
        name="compute",
        title="Compute-only law L(C)",
        formula="L = E + (C0 / C)^alpha_C",
        citation="Henighan et al. 2020, Scaling Laws for Autoregressive Generative Modeling",
        inputs=("C",),
        default_priors={
            "E": PRIOR_E,
            "alpha_C": Prior("LogNormal", mu=math.log(0.15), sigma=0.75),
            "log_c_term": PRIOR_LOG_TERM,
        },
        log_loss=_single("C", "log_c_term", "alpha_C"),
        derived={"C0": lambda xp, p, log_ref: xp.exp(p["log_c_term"] / p["alpha_C"] + log_ref["C"])},
        summary_names=("E", "C0", "alpha_C"),
    )
)
register_law(
    ScalingLaw(
        name="params",
        title="Parameter-only law L(N) (data not limiting)",
        formula="L = E + A / N^alpha",
        citation="Kaplan et al. 2020 (L(N)); Hoffmann et al. 2022",
        inputs=("N",),
        default_priors={"E": PRIOR_E, "alpha": PRIOR_EXPONENT, "log_n_term": PRIOR_LOG_TERM},
        log_loss=_single("N", "log_n_term", "alpha"),
        derived={"A": _power_constant("log_n_term", "alpha", "N")},
        summary_names=("E", "A", "alpha"),
    )
)
register_law(
    ScalingLaw(
        name="tokens",
        title="Token-only law L(D) (model size not limiting)",
        formula="L = E + B / D^beta",
        citation="Kaplan et al. 2020 (L(D)); Hoffmann et al. 2022",
        inputs=("D",),
        default_priors={"E": PRIOR_E, "beta": PRIOR_EXPONENT, "log_d_term": PRIOR_LOG_TERM},
        log_loss=_single("D", "log_d_term", "beta"),
        derived={"B": _power_constant("log_d_term", "beta", "D")},
        summary_names=("E", "B", "beta"),
    )
)


def _data_constrained(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    # Repetitions beyond the first epoch, R = D/U - 1 (>= 0 after validation).
    repeats = xp.exp(x["D"] - x["U"]) - 1.0
    r_star = p["r_star"]
    # D' = U + U R* (1 - exp(-R/R*)), on the centred log scale of D.
    log_effective = x["U"] + xp.log1p(-r_star * xp.expm1(-repeats / r_star))
    return _chinchilla(xp, p, {"N": x["N"], "D": log_effective})


register_law(
    ScalingLaw(
        name="data_constrained",
        title="Chinchilla law on effective data for repeated epochs",
        formula="L = E + A / N^alpha + B / D'^beta,  D' = U + U R* (1 - exp(-R / R*)),  R = D / U - 1",
        citation="Muennighoff et al. 2023, Scaling Data-Constrained Language Models (eq. 5)",
        inputs=("N", "D", "U"),
        optimal_exponents=("alpha", "beta"),
        default_priors={
            **_CHINCHILLA_PRIORS,
            # Muennighoff et al. fit R*_D ~ 15.4: median 15, 95% 2-100 epochs.
            "r_star": Prior("LogNormal", mu=math.log(15.0), sigma=1.0),
        },
        log_loss=_data_constrained,
        derived=_CHINCHILLA_DERIVED,
        summary_names=(*_CHINCHILLA_SUMMARY, "r_star"),
    )
)


def _saturating(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    # 1 / D_eff = 1 / D + 1 / (K N): log D_eff = log D - log(1 + T / K), T = D / N; on the centred log scale of D
    log_effective = x["D"] - xp.logaddexp(0.0, x["T"] - p["log_k"])
    return _chinchilla(xp, p, {"N": x["N"], "D": log_effective})


register_law(
    ScalingLaw(
        name="chinchilla_saturating",
        title="Chinchilla law whose data term saturates at K tokens per parameter (over-training)",
        formula="L = E + A / N^alpha + B / D_eff^beta,  1 / D_eff = 1 / D + 1 / (K N)",
        citation=("Hoffmann et al. 2022 with a model of N parameters able to use at most about K N tokens: "
                  "D_eff = D below K tokens per parameter, K N far beyond; K -> infinity is the Chinchilla form"),
        inputs=("N", "D", "T"),
        default_priors={
            **_CHINCHILLA_PRIORS,
            # log K, K in tokens per parameter: median 100 (5x Chinchilla's compute-optimal 20), 90% about 8-1,200
            "log_k": Prior("Normal", mu=math.log(100.0), sigma=1.5),
        },
        log_loss=_saturating,
        derived={**_CHINCHILLA_DERIVED, "K": lambda xp, p, log_ref: xp.exp(p["log_k"])},
        summary_names=(*_CHINCHILLA_SUMMARY, "K"),
    )
)


def _routing(xp: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
    return p["log_loss_ref"] + p["a"] * x["N"] + p["b"] * x["X"] + p["c"] * x["N"] * x["X"]


register_law(
    ScalingLaw(
        name="routing",
        title="Unified routing law for mixture-of-experts models, L(N, E) at a fixed token count",
        formula="log L = log L_ref + a log(N / N_ref) + b log E + c log(N / N_ref) log E",
        citation="Clark et al. 2022, Unified Scaling Laws for Routed Language Models (eq. 1, with E for E-hat)",
        inputs=("N", "X"),
        default_priors={
            "log_loss_ref": Prior("Normal", mu=math.log(3.0), sigma=0.5),  # a dense model at the reference N
            "a": Prior("Normal", mu=-0.08, sigma=0.1),  # log-loss per log dense parameter
            "b": Prior("Normal", mu=-0.03, sigma=0.1),  # log-loss per log expert count at the reference N
            "c": Prior("Normal", mu=0.0, sigma=0.03),  # how the experts' gain changes with N
        },
        log_loss=_routing,
        derived={"L_ref": lambda xp, p, log_ref: xp.exp(p["log_loss_ref"])},
    )
)
