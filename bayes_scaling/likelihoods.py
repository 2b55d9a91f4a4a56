"""Noise models on log-loss: one object per likelihood, used by the model, LOO, forecasts and calibration.

Each :class:`NoiseModel` holds its noise parameters with their default priors, the PyMC distribution of the
observed log-losses, the same log density in numpy (for pointwise log-likelihood and LOO, much faster than
PyMC's per draw) and a sampler of the noise of a new run (for predictive intervals). ``tests/test_fit.py``
checks that the numpy and PyMC densities agree for every entry of :data:`NOISE_MODELS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayes_scaling.priors import Prior

__all__ = ["NOISE_MODELS", "NoiseModel", "get_noise_model", "student_t_log_normaliser", "student_t_logpdf"]

#: Run-to-run scatter of log-loss: median 0.067 (6.7%), rarely above 0.2.
SIGMA_PRIOR = Prior("HalfNormal", sigma=0.1)
#: Juárez & Steel (2010) prior on degrees of freedom: mean 20, allows heavy tails.
NU_PRIOR = Prior("Gamma", alpha=2.0, beta=0.1)


def student_t_log_normaliser(nu: Any) -> np.ndarray:
    """The unit-scale Student-t density's log normalising term at each ``nu`` (the Normal's where ``nu`` is infinite).

    It depends on ``nu`` only, so it is computed at ``nu``'s own shape (once per draw, not per run).
    """
    from scipy.special import gammaln

    nu = np.asarray(nu, float)
    finite = np.isfinite(nu)
    nu_f = np.where(finite, nu, 1.0)
    return np.where(finite, gammaln((nu_f + 1) / 2) - gammaln(nu_f / 2) - 0.5 * np.log(nu_f * np.pi),
                    -0.5 * math.log(2 * math.pi))


def student_t_logpdf(x: np.ndarray, scale: Any, nu: Any) -> np.ndarray:
    """Log density of a Student-t (location 0) at ``x``; an infinite ``nu`` gives the Normal.

    Written out (the normalising term from :func:`student_t_log_normaliser`), ~20x faster than
    ``scipy.stats.t.logpdf``.
    """
    x, scale, nu = np.asarray(x, float), np.asarray(scale, float), np.asarray(nu, float)
    shape = np.broadcast_shapes(x.shape, scale.shape, nu.shape)
    z2 = (x / scale) ** 2
    log_scale = np.log(scale)
    finite = np.isfinite(nu)
    if not finite.any():  # all Normal: the Student-t kernel below would be computed and thrown away
        return np.broadcast_to(-0.5 * math.log(2 * math.pi) - log_scale - 0.5 * z2, shape).copy()
    nu_f = np.where(finite, nu, 1.0)
    t = np.broadcast_to(student_t_log_normaliser(nu) - log_scale - (nu_f + 1) / 2 * np.log1p(z2 / nu_f), shape)
    if finite.all():
        return t.copy()
    return np.where(finite, t, -0.5 * math.log(2 * math.pi) - log_scale - 0.5 * z2)


@dataclass(frozen=True)
class NoiseModel:
    """A likelihood for log-loss around the law: ``log(loss) = log L(x) + noise``.

    Attributes
    ----------
    name : str
        ``fit(likelihood=...)`` / ``--likelihood``.
    noise_priors : mapping
        Default prior of each noise parameter (``sigma``, and ``nu`` for the Student-t).
    pymc : callable
        ``pymc(name, mu, noise, observed, dims)`` creates the observed distribution in a model context;
        ``noise`` maps the noise parameter names to PyMC variables.
    """

    name: str
    noise_priors: Mapping[str, Prior]
    pymc: Callable[..., Any]

    @property
    def noise_names(self) -> tuple[str, ...]:
        """Names of the noise parameters."""
        return tuple(self.noise_priors)

    def _nu(self, noise: Mapping[str, Any]) -> Any:
        return noise["nu"] if "nu" in noise else np.inf

    def logpdf(self, residual: np.ndarray, noise: Mapping[str, Any]) -> np.ndarray:
        """Log density of log-loss residuals (observed minus the law's log mean) given noise values."""
        return student_t_logpdf(residual, noise["sigma"], self._nu(noise))

    def sample(self, rng: np.random.Generator, noise: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        """Noise of new runs: one row per draw of the noise parameters (arrays of shape (draws,)).

        ``sigma`` may also be per draw and point (shape (draws, points)): a scatter that varies over points.
        """
        sigma = np.asarray(noise["sigma"], float)
        sigma = sigma if sigma.ndim == 2 else sigma[:, None]
        if "nu" in noise:
            eps = rng.standard_t(np.broadcast_to(np.asarray(noise["nu"], float)[:, None], shape))
        else:
            eps = rng.standard_normal(shape)
        return sigma * eps


def _student_t_pymc(name: str, mu: Any, noise: Mapping[str, Any], observed: Any, dims: str) -> Any:
    import pymc as pm

    return pm.StudentT(name, nu=noise["nu"], mu=mu, sigma=noise["sigma"], observed=observed, dims=dims)


def _normal_pymc(name: str, mu: Any, noise: Mapping[str, Any], observed: Any, dims: str) -> Any:
    import pymc as pm

    return pm.Normal(name, mu=mu, sigma=noise["sigma"], observed=observed, dims=dims)


#: The noise models, by name: the robust Student-t (default) and the Normal.
NOISE_MODELS: dict[str, NoiseModel] = {
    "student_t": NoiseModel("student_t", {"sigma": SIGMA_PRIOR, "nu": NU_PRIOR}, _student_t_pymc),
    "normal": NoiseModel("normal", {"sigma": SIGMA_PRIOR}, _normal_pymc),
}


def get_noise_model(name: str) -> NoiseModel:
    """The noise model called ``name``; ``ValueError`` listing the choices otherwise."""
    if name not in NOISE_MODELS:
        raise ValueError(f"unknown likelihood {name!r}; use one of {', '.join(NOISE_MODELS)}")
    return NOISE_MODELS[name]
