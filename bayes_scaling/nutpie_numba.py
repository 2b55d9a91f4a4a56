"""nutpie's numba compile, without the seconds its C callbacks spend compiling code that never runs.

nutpie wraps a model's log density (and its ``expand`` function) in numba C callbacks. Two parts of them cost
more to compile than the model itself, in every new process and whatever the model (the callbacks use dynamic
globals, so numba cannot cache them):

* the gradient is copied out with a slice assignment (``out[...] = grad``), whose shape-mismatch error message
  numba builds from f-strings, so ``str(int)``, ``repr`` and string concatenation are compiled for it;
* the shared data arrays are fetched with ``literal_unroll`` and one overload per array, typed one by one.

The callbacks built here are nutpie's statement for statement, except that the gradient and the expanded values
are copied element by element after checking their length, and the shared arrays are read by one generated
function of straight-line code (from the pointer, size and shape nutpie's user data record holds for each),
inlined into the callback as nutpie inlines its own (a function called instead makes numba optimise and codegen
the model's whole linked code once more: 3.8 s more on the pooled recipes model). Same numbers and return codes
(tests/test_nutpie_numba.py compares both builds at the same points and data). Measured here (numba 0.68, nutpie
0.16.11, new processes): compiling the Chinchilla law's model on the real Chinchilla sweep takes 12.3 s with
nutpie's callbacks, 9.6 s with the copy loop, 4.8-6.3 s with both changes; the log-density callback of
`recipes`' pooled model on marin_isoflop 7.8 -> 5.1 s with the inlining.

Only the two callback builders are swapped, and only while :func:`compile_model` runs (under a lock), so other
uses of nutpie in the process are unchanged. With a nutpie other than the minor versions this was checked against
(:data:`CHECKED_NUTPIE`) or without the internals it replaces (:func:`supported`), nutpie compiles as it is.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = ["CHECKED_NUTPIE", "adaptation_supported", "compile_model", "start_sampler", "supported"]

#: nutpie minor versions whose callback builders and user data layout this module was checked against.
CHECKED_NUTPIE = ("0.16",)

_LOCK = threading.Lock()
_SAMPLE_LOCK = threading.Lock()


def _module() -> Any:
    from nutpie import compile_pymc

    return compile_pymc


def _checked_version() -> bool:
    """Whether nutpie is installed in a minor version of :data:`CHECKED_NUTPIE`."""
    try:
        import nutpie
    except ImportError:
        return False
    return ".".join(str(nutpie.__version__).split(".")[:2]) in CHECKED_NUTPIE


def supported() -> bool:
    """Whether the installed nutpie builds its numba callbacks the way this module replaces."""
    if not _checked_version():
        return False
    try:
        module = _module()
    except ImportError:
        return False
    return all(callable(getattr(module, name, None)) for name in
               ("_make_c_logp_func", "_make_c_expand_func", "_compile_pymc_model_numba", "address_as_void_pointer"))


def _extraction(module: Any, inner: Any, shared_data: dict, shared_keys: list, record_dtype: np.dtype) -> Any:
    """``x, user_data -> inner(x, *shared arrays)``, as nutpie's ``make_extraction_fn`` but written out.

    nutpie walks the shared arrays with ``literal_unroll`` and an overload per array, which numba types and compiles
    one by one; here the reads are generated as straight-line code in one function (each array from the pointer,
    size and shape that nutpie's user data record holds for it), so it compiles once, and inlined into the callback
    (as nutpie's is) so that numba links and optimises the model's code once.
    """
    import numba

    namespace: dict[str, Any] = {"numba": numba, "inner": inner, "record_dtype": record_dtype,
                                 "address_as_void_pointer": module.address_as_void_pointer}
    lines = ["def extract(x, user_data_):"]
    if shared_keys:
        lines.append("    shared = numba.carray(user_data_, (), record_dtype)['shared']")
    arguments = []
    for i, key in enumerate(shared_keys):
        value = shared_data[key]
        namespace[f"dtype_{i}"] = np.dtype(value.dtype)
        shape = ", ".join(f"int(shape_{i}[{j}])" for j in range(value.ndim))
        shape = f"({shape},)" if value.ndim == 1 else f"({shape})"
        lines += [f"    data_{i} = numba.carray(address_as_void_pointer(shared['data']['{key}'][()]), "
                  f"int(shared['size']['{key}'][()]), dtype_{i})",
                  f"    shape_{i} = shared['shape']['{key}']",
                  f"    array_{i} = data_{i}.reshape({shape})"]
        arguments.append(f"array_{i}")
    lines.append(f"    return inner(x{''.join(', ' + a for a in arguments)})")
    exec(compile("\n".join(lines) + "\n", "<bayes_scaling.nutpie_numba>", "exec"), namespace)
    return numba.njit(inline="always")(namespace["extract"])


def _logp_builder(module: Any) -> Any:
    def make_c_logp_func(n_dim, logp_fn, user_data, shared_keys, shared_data):
        import numba

        extract = _extraction(module, logp_fn, shared_data, shared_keys, user_data.dtype)
        c_sig = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                                  numba.types.voidptr)

        def logp_numba(dim, x_, out_, logp_, user_data_):
            if dim != n_dim:
                return -1
            try:
                x = numba.carray(x_, (n_dim,))
                out = numba.carray(out_, (n_dim,))
                logp = numba.carray(logp_, ())
                logp_val, grad = extract(x, user_data_)
                logp[()] = logp_val
                flat = grad.ravel()
                if flat.shape[0] != n_dim:
                    return 1
                finite = True
                for i in range(n_dim):
                    out[i] = flat[i]
                    if not np.isfinite(flat[i]):
                        finite = False
                if not finite:
                    return 3
                if not np.isfinite(logp_val):
                    return 4
            except Exception:
                return 1
            return 0

        return logp_numba, c_sig

    return make_c_logp_func


def _expand_builder(module: Any) -> Any:
    def make_c_expand_func(n_dim, n_expanded, expand_fn, user_data, shared_var_keys, shared_data):
        import numba

        extract = _extraction(module, expand_fn, shared_data, shared_var_keys, user_data.dtype)
        c_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double), numba.types.voidptr)

        def expand_numba(dim, expanded, x_, out_, user_data_):
            if dim != n_dim:
                return -1
            if expanded != n_expanded:
                return -1
            try:
                x = numba.carray(x_, (n_dim,))
                out = numba.carray(out_, (n_expanded,))
                (values,) = extract(x, user_data_)
                flat = values.ravel()
                if flat.shape[0] != n_expanded:
                    return -2
                for i in range(n_expanded):
                    out[i] = flat[i]
            except Exception:
                return -2
            return 0

        return expand_numba, c_sig

    return make_c_expand_func


def compile_model(model: Any, **options: Any) -> Any:
    """``nutpie.compile_pymc_model(model, **options)`` (numba backend) with the cheaper callbacks when supported."""
    import nutpie

    if not supported():
        return nutpie.compile_pymc_model(model, **options)
    module = _module()
    with _LOCK:
        saved = module._make_c_logp_func, module._make_c_expand_func
        module._make_c_logp_func, module._make_c_expand_func = _logp_builder(module), _expand_builder(module)
        try:
            return nutpie.compile_pymc_model(model, **options)
        finally:
            module._make_c_logp_func, module._make_c_expand_func = saved


def _sample_module() -> Any:
    import importlib

    return importlib.import_module("nutpie.sample")  # the module (``nutpie.sample`` is also the function)


def adaptation_supported() -> bool:
    """Whether the installed nutpie lets :func:`start_sampler` set the low-rank adaptation's options.

    nutpie's ``sample`` forwards only some of them (not ``mass_matrix_update_freq``); they are set on the settings
    object it builds, through that object's ``as_dict``/``update_settings``, for the minor versions checked
    (:data:`CHECKED_NUTPIE`).
    """
    if not _checked_version():
        return False
    try:
        settings = _sample_module()._lib.PyNutsSettings.LowRank(0)
        options = settings.as_dict()["settings"]["adapt_options"]
    except (AttributeError, KeyError, TypeError):
        return False
    return callable(getattr(settings, "update_settings", None)) and "mass_matrix_update_freq" in options


class _Settings:
    """nutpie's settings factory, with ``adapt`` applied to the low-rank settings it makes."""

    def __init__(self, real: Any, adapt: dict[str, Any]) -> None:
        self._real, self._adapt = real, adapt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def LowRank(self, seed: Any) -> Any:  # nutpie's name
        settings = self._real.LowRank(seed)
        values = settings.as_dict()["settings"]
        values["adapt_options"].update(self._adapt)
        settings.update_settings(values)
        return settings


class _Lib:
    """nutpie's compiled module, with the settings factory of :class:`_Settings`."""

    def __init__(self, real: Any, adapt: dict[str, Any]) -> None:
        self._real, self.PyNutsSettings = real, _Settings(real.PyNutsSettings, adapt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def start_sampler(adapt: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """``nutpie.sample(*args, **kwargs)`` with the low-rank adaptation options ``adapt`` set on its settings.

    ``adapt`` holds nutpie's names, e.g. ``{"mass_matrix_update_freq": 50}``.

    Use it with ``blocking=False``: the settings are built when the sampler starts, so nutpie's module is swapped
    (under a lock, restored in ``finally``) only for that moment, not while the chains run. With ``adapt`` empty,
    or a nutpie :func:`adaptation_supported` does not know, this is ``nutpie.sample`` itself.
    """
    import nutpie

    if not adapt or not adaptation_supported():
        return nutpie.sample(*args, **kwargs)
    module = _sample_module()
    with _SAMPLE_LOCK:
        real = module._lib
        module._lib = _Lib(real, dict(adapt))
        try:
            return nutpie.sample(*args, **kwargs)
        finally:
            module._lib = real
