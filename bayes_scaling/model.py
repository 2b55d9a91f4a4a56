"""Build the PyMC model for a law and a sweep: the only place a graph is built.

The likelihood is on the log of the loss, ``log(loss_i) ~ StudentT(nu, log L(N_i, D_i), sigma)``
by default: a robust likelihood with a fitted scale ``sigma`` and fitted degrees of
freedom ``nu``, the Bayesian counterpart of the Huber loss used by Hoffmann et al.
and Epoch AI. ``likelihood="normal"`` selects a Normal instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from bayes_scaling.data import Sweep, centred_logs
from bayes_scaling.laws import ScalingLaw, get_law
from bayes_scaling.likelihoods import NOISE_MODELS, NU_PRIOR, SIGMA_PRIOR, get_noise_model
from bayes_scaling.priors import Prior, PriorError, merge_priors

__all__ = ["LIKELIHOODS", "NOISE_PRIORS", "Likelihood", "build_model", "resolve_priors"]

Likelihood = Literal["student_t", "normal"]
#: Names of the noise models (see :mod:`bayes_scaling.likelihoods`).
LIKELIHOODS: tuple[str, ...] = tuple(NOISE_MODELS)

#: Priors of the noise on log-loss: sigma (scale) and nu (Student-t degrees of freedom).
NOISE_PRIORS: dict[str, Prior] = {"sigma": SIGMA_PRIOR, "nu": NU_PRIOR}
OBSERVED = "log_loss"


def check_likelihood(likelihood: str) -> str:
    """Return ``likelihood`` if known, else raise ``ValueError`` listing the choices."""
    return get_noise_model(likelihood).name


def resolve_priors(
    law: ScalingLaw, priors: Mapping[str, Any] | None, likelihood: str = "student_t"
) -> dict[str, Prior]:
    """The full prior set of a fit: law defaults and noise priors, with user priors merged over them."""
    noise = dict(get_noise_model(likelihood).noise_priors)
    merged = merge_priors({**law.default_priors, **noise}, priors, law_name=f"law {law.name!r}")
    for key in noise:
        if merged[key].is_fixed and merged[key].value <= 0:
            raise PriorError(f"{key} must be positive, got {merged[key].value}")
    return merged


def build_model(
    law: str | ScalingLaw,
    sweep: Sweep,
    *,
    priors: Mapping[str, Any] | None = None,
    likelihood: Likelihood = "student_t",
    reference: Mapping[str, float] | None = None,
) -> Any:
    """Build the PyMC model of ``law`` for ``sweep``.

    Parameters
    ----------
    law : str or ScalingLaw
        The law (see :func:`bayes_scaling.laws`).
    sweep : Sweep
        Validated runs.
    priors : mapping, optional
        Overrides for the law's default priors and the noise priors ``sigma``/``nu``.
    likelihood : {"student_t", "normal"}
        Noise model on log-loss.
    reference : mapping, optional
        Reference scales for N, D, C (default: the sweep's geometric means).

    Returns
    -------
    pymc.Model
        With data containers for the centred inputs (``x_N``, ...), the log reference scales
        (``log_ref_N``, ...) and the observed log-losses (``log_loss_data``), the observed variable
        ``log_loss`` and deterministics for derived quantities.
    """
    import pymc as pm
    import pytensor.tensor as pt

    law = get_law(law)
    sweep.require(law.columns, law=law.name)
    resolved = resolve_priors(law, priors, likelihood)
    reference = dict(reference or sweep.reference())
    columns = {col: sweep.column(col) for col in law.columns}
    x_values = centred_logs(law.inputs, columns, reference)
    y = np.log(sweep.column("loss"))

    with pm.Model(coords={"run": np.arange(len(sweep))}) as model:
        # Every number that depends on the sweep is a data container, so a compiled model can be reused
        # for another sweep of the same size (see bayes_scaling.inference).
        x = {key: pm.Data(f"x_{key}", value, dims="run") for key, value in x_values.items()}
        log_ref = {key: pm.Data(f"log_ref_{key}", math.log(value)) for key, value in reference.items()}
        observed = pm.Data(f"{OBSERVED}_data", y, dims="run")
        params = {name: resolved[name].create(name) for name in law.param_names}
        for name, fn in law.derived.items():
            pm.Deterministic(name, fn(pt, params, log_ref))
        mu = law.log_loss(pt, params, x)
        noise_model = get_noise_model(likelihood)
        noise = {name: resolved[name].create(name) for name in noise_model.noise_names}
        noise_model.pymc(OBSERVED, mu, noise, observed, "run")
    return model
