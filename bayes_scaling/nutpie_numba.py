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

**Cached on disk.** nutpie's callbacks close over per-process objects (random keys of the data containers, the
dispatchers PyTensor generates), so numba could not cache them and every new process compiled them again. Here
they are functions without closures (the dimensions and the data reader are globals of a namespace of their own),
the data containers' keys are numbered, and numba caches them in PyTensor's numba cache folder under a key made of
PyTensor's own key of the compiled graph and everything else the machine code depends on (:func:`_cache_key`); a
graph PyTensor cannot key is compiled as before. A new process fitting the real Chinchilla sweep: fit 11.2 ->
7.5-8.1 s, the same posterior to the bit (tests/test_nutpie_numba.py loads them in a second process and compares).

nutpie's ``_compile_pymc_model_numba`` is swapped for :func:`_compile_numba` (the same steps with these callbacks)
only while :func:`compile_model` runs (under a lock), so other uses of nutpie in the process are unchanged. With a
nutpie other than the minor versions this was checked against
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
               ("_make_functions", "make_user_data", "_prepare_dims_and_coords", "CompiledPyMCModel",
                "_compile_pymc_model_numba", "address_as_void_pointer"))


def _extraction(module: Any, inner: Any, shared_data: dict, shared_keys: list, record_dtype: np.dtype
                ) -> tuple[Any, str]:
    """``x, user_data -> inner(x, *shared arrays)``, as nutpie's ``make_extraction_fn`` but written out; and its source.

    nutpie walks the shared arrays with ``literal_unroll`` and an overload per array, which numba types and compiles
    one by one; here the reads are generated as straight-line code in one function (each array from the pointer,
    size and shape that nutpie's user data record holds for it), so it compiles once, and inlined into the callback
    (as nutpie's is) so that numba links and optimises the model's code once.
    """
    import numba

    namespace: dict[str, Any] = {"__name__": __name__, "numba": numba, "inner": inner, "record_dtype": record_dtype,
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
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<bayes_scaling.nutpie_numba>", "exec"), namespace)
    return numba.njit(inline="always")(namespace["extract"]), source


#: The two C callbacks, as source run in a namespace of their own per model (``N_DIM``, ``N_EXPANDED`` and
#: ``extract`` are that namespace's globals, which numba reads as constants): functions without closures, so that
#: numba can keep them in its disk cache under the key of :func:`_cache_key`.
_CALLBACKS = """
def logp_numba(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        logp_val, grad = extract(x, user_data_)
        logp[()] = logp_val
        flat = grad.ravel()
        if flat.shape[0] != N_DIM:
            return 1
        finite = True
        for i in range(N_DIM):
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


def expand_numba(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = extract(x, user_data_)
        flat = values.ravel()
        if flat.shape[0] != N_EXPANDED:
            return -2
        for i in range(N_EXPANDED):
            out[i] = flat[i]
    except Exception:
        return -2
    return 0
"""

#: Part of every disk-cache key: raise it whenever the generated code changes meaning.
CACHE_VERSION = 1


def _cache_key(inner: Any, name: str, n_dim: int, n_expanded: int, shared_data: dict, shared_keys: list,
               record_dtype: np.dtype, extraction: str, options: dict[str, Any] | None = None) -> str | None:
    """The disk-cache key of a callback around ``inner`` (a PyTensor-compiled numba function), or None.

    Everything the callback's machine code depends on: PyTensor's own cache key of ``inner`` (its graph, constants
    and fastmath flag; None when PyTensor cannot key it, and then nothing is cached), the arguments' dtypes and
    ranks, the dimensions, the user data's layout, numba's ``options``, this module's generated code and the
    versions of nutpie, numba and PyTensor (numba adds the CPU and the function's bytecode). With PyTensor's numba
    cache off (``numba__cache``), None.
    """
    import hashlib

    import numba
    import nutpie
    import pytensor
    from pytensor import config

    if not config.numba__cache:
        return None
    try:
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
    except ImportError:
        return None
    try:
        inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    except (AttributeError, TypeError):  # not a numba function of PyTensor's
        return None
    if not isinstance(inner_key, str):
        return None
    arrays = [(str(np.dtype(shared_data[key].dtype)), int(np.ndim(shared_data[key]))) for key in shared_keys]
    text = repr((CACHE_VERSION, name, inner_key, int(n_dim), int(n_expanded), arrays, record_dtype.descr,
                 sorted((str(k), repr(v)) for k, v in (options or {}).items()), _CALLBACKS, extraction,
                 str(nutpie.__version__), str(numba.__version__), str(pytensor.__version__)))
    return "bayes_scaling_" + hashlib.sha256(text.encode()).hexdigest()


def _callback(module: Any, name: str, inner: Any, n_dim: int, n_expanded: int, user_data: Any, shared_keys: list,
              shared_data: dict, signature: Any, options: dict[str, Any]) -> Any:
    """The numba C callback ``name`` (of :data:`_CALLBACKS`) around ``inner``, from the disk cache when it holds it.

    Compiling a callback costs seconds in every new process (numba optimises the model's whole inlined code); with
    a key (:func:`_cache_key`) it is compiled once and then loaded from PyTensor's numba cache folder.
    """
    import warnings

    import numba

    extract, extraction = _extraction(module, inner, shared_data, shared_keys, user_data.dtype)
    # a module name numba can import when it rebuilds a cached callback's environment
    namespace: dict[str, Any] = {"__name__": __name__, "numba": numba, "np": np, "extract": extract,
                                 "N_DIM": int(n_dim), "N_EXPANDED": int(n_expanded)}
    exec(compile(_CALLBACKS, "<bayes_scaling.nutpie_numba>", "exec"), namespace)
    raw = namespace[name]
    key = _cache_key(inner, name, n_dim, n_expanded, shared_data, shared_keys, user_data.dtype, extraction,
                     options)
    if key is not None:
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

        CACHED_SRC_FUNCTIONS[raw] = key
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function .* as it uses dynamic globals",
                                category=numba.NumbaWarning)
        return numba.cfunc(signature, **{**options, "cache": key is not None})(raw)


def _compile_numba(module: Any) -> Any:
    """A stand-in for nutpie's ``_compile_pymc_model_numba``, step for step, with the callbacks of :func:`_callback`.

    Two changes: the shared arrays' keys in the user data are numbered (nutpie draws random ones, which would make
    every process's callbacks different code), and the callbacks are cached on disk when they can be keyed.
    """

    def compile_pymc_model_numba(model: Any, pymc_initial_point_fn: Any, var_names: Any = None, **kwargs: Any) -> Any:
        import numba

        (n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info,
         reparameterized_names) = module._make_functions(
            model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=pymc_initial_point_fn,
            var_names=var_names)
        expand_fn, logp_fn = expand_fn_pt.vm.jit_fn, logp_fn_pt.vm.jit_fn
        shared_data: dict[str, np.ndarray] = {}
        shared_var_keys: dict[Any, str] = {}
        for val in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
            if val in shared_var_keys:
                continue
            key = f"shared_{len(shared_data):04d}"
            shared_data[key] = np.array(val.get_value(), order="C", copy=True)
            shared_var_keys[val] = key
        for value in shared_data.values():
            value.flags.writeable = False
        user_data = module.make_user_data(shared_var_keys, shared_data)
        double_p = numba.types.CPointer(numba.types.double)
        logp_signature = numba.types.int64(numba.types.uint64, double_p, double_p, double_p, numba.types.voidptr)
        expand_signature = numba.types.int64(numba.types.uint64, numba.types.uint64, double_p, double_p,
                                             numba.types.voidptr)
        logp_numba = _callback(module, "logp_numba", logp_fn, n_dim, 0, user_data,
                               [shared_var_keys[var] for var in logp_fn_pt.get_shared()], shared_data,
                               logp_signature, kwargs)
        expand_numba = _callback(module, "expand_numba", expand_fn, n_dim, n_expanded, user_data,
                                 [shared_var_keys[var] for var in expand_fn_pt.get_shared()], shared_data,
                                 expand_signature, kwargs)
        dims, coords = module._prepare_dims_and_coords(model, shape_info, reparameterized_names)
        return module.CompiledPyMCModel(
            _n_dim=n_dim, dims=dims, _coords=coords,
            _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=False)},
            compiled_logp_func=logp_numba, compiled_expand_func=expand_numba, initial_point_func=initial_point_fn,
            shared_data=shared_data, shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=n_expanded,
            shape_info=shape_info, logp_func=logp_fn_pt, expand_func=expand_fn_pt,
            reparameterized_names=reparameterized_names)

    return compile_pymc_model_numba


def compile_model(model: Any, **options: Any) -> Any:
    """``nutpie.compile_pymc_model(model, **options)`` (numba backend) with the cheaper callbacks when supported."""
    import nutpie

    if not supported():
        return nutpie.compile_pymc_model(model, **options)
    module = _module()
    with _LOCK:
        saved = module._compile_pymc_model_numba
        module._compile_pymc_model_numba = _compile_numba(module)
        try:
            return nutpie.compile_pymc_model(model, **options)
        finally:
            module._compile_pymc_model_numba = saved


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
