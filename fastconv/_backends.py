"""Backend registry: the array namespace of the inputs picks the backend.

A backend computes validated problems; it never validates user arguments.
It is registered with a predicate on the array namespace returned by
``array_api_compat.array_namespace`` and the dotted path of its class, which
is imported on first use only (so registering a CuPy or Dask backend imports
neither CuPy nor Dask).  Adding a backend touches no front-end code.

A backend class provides:

``name``
    Short name, e.g. ``"numpy"``.
``algorithms``
    The algorithm names it implements (``"auto"`` excluded).
``finite_only``
    Those ``"auto"`` runs on finite data only (the transform methods
    spread a NaN or Inf; the sparse path skips zero weights, so 0 * Inf
    gives no NaN there).
``is_array(a) -> bool``
    Whether `a` is an array it can write into (for ``out=``).
``unsupported_reason(problem, algorithm) -> str | None``
    Why `algorithm` cannot serve `problem`, or None if it can.
``estimate(problem) -> dict``
    Estimated seconds of each candidate of ``"auto"`` (its cost model).
``choose_algorithm(problem) -> str``
    The algorithm ``"auto"`` picks before looking at the data.
``all_finite(*arrays) -> bool``
    Whether the arrays hold only finite values (``"auto"`` avoids
    ``finite_only`` algorithms on other data).
``auto_algorithm(problem, x, weight) -> str``
    The algorithm ``"auto"`` runs for these arrays.
``fallback_algorithm(problem) -> str``
    What ``"auto"`` runs when the transform methods are ruled out.
``prepare(problem, algorithm, weight, bias, nthreads) -> state``
    Weights laid out (and transformed) for `algorithm`; plans keep it.
``execute(state, x, out, nthreads) -> array``
    The convolution of `x` with prepared weights.
``conv(x, weight, bias, problem, algorithm, out, nthreads) -> array``
    ``execute(prepare(...), x, out, nthreads)``.
``tuning_tag(weight) -> str``
    What the autotuning cache key adds to the shapes for these weights
    (the backend, the density class of pruned weights; "" for none).
``synchronize()`` (device backends only)
    Wait for the queued work, so that autotuning times finished calls.
``adjoint``
    A module of the adjoint-side computations: ``transpose_algorithm``,
    ``gemm_reason``, ``conv_transpose_gemm``, ``weight_grad_reason``,
    ``conv_weight_grad``, ``im2col``, ``col2im`` (fastconv._cpu_adjoint
    on the CPU).
``conv_transpose(x, weight, bias, problem, algorithm, out, nthreads)`` (optional)
    A whole planned transposed convolution, for a backend that runs it its
    own way (the Dask backend, chunk by chunk); without it the front end
    runs the polyphase or GEMM plan on the backend's kernels.

Dask arrays are served by a wrapping backend, fastconv._dask.DaskBackend,
around the backend of their chunks' namespace (NumPy or CuPy): arrays of
that namespace may be mixed with Dask arrays in one call (an in-memory
kernel with a chunked image), any other mix raises TypeError.
"""
from __future__ import annotations

import importlib
import math
import threading

import array_api_compat
import numpy as np

__all__ = ["register_backend", "backend_for", "as_arrays", "output_target", "deliver"]

_registry: list = []  # (name, predicate, "module:Class")
_instances: dict = {}
_lock = threading.Lock()


def register_backend(name: str, is_namespace, loader: str) -> None:
    """Register a backend class for the namespaces `is_namespace` accepts.

    Parameters
    ----------
    name : str
        Backend name, used in error messages and ``fastconv info``.
    is_namespace : callable
        ``is_namespace(xp) -> bool`` on an array-api-compat namespace.
    loader : str
        ``"package.module:ClassName"``, imported lazily on first use.
    """
    _registry.append((name, is_namespace, loader))


def as_arrays(*objs):
    """Arrays stay as they are; other array-likes (lists, scalars) become NumPy.

    Parameters
    ----------
    *objs : array, array-like or None

    Returns
    -------
    arrays : tuple
        The same objects, array-likes converted with ``numpy.asarray``.
    """
    return tuple(
        o if o is None or array_api_compat.is_array_api_obj(o) else np.asarray(o) for o in objs
    )


def backend_for(*arrays):
    """The backend instance serving these arrays (None entries ignored).

    Raises
    ------
    TypeError
        If the arrays come from different namespaces, or no backend serves
        their namespace.
    """
    present = [a for a in arrays if a is not None]
    if all(type(a) is np.ndarray for a in present) and "numpy" in _instances:
        return _instances["numpy"]  # the common case, without namespace inspection
    lazy = [a for a in present if array_api_compat.is_dask_array(a)]
    if lazy:
        return _dask_backend(lazy, [a for a in present if not array_api_compat.is_dask_array(a)])
    try:
        xp = array_api_compat.array_namespace(*present)
    except TypeError as exc:
        kinds = sorted({f"{type(a).__module__}.{type(a).__name__}" for a in present})
        raise TypeError(
            f"arrays from different namespaces cannot be mixed in one call: {', '.join(kinds)}"
        ) from exc
    for name, is_namespace, loader in _registry:
        if is_namespace(xp):
            inst = _instances.get(name)
            if inst is None:
                with _lock:
                    inst = _instances.get(name)
                    if inst is None:
                        module, cls = loader.split(":")
                        inst = _instances[name] = getattr(importlib.import_module(module), cls)()
            return inst
    raise TypeError(f"no fastconv backend for arrays of namespace {xp.__name__}")


def _dask_backend(lazy, eager):
    """The Dask backend around the backend of the chunks' namespace."""
    for a in lazy:
        if any(math.isnan(n) for n in a.shape):
            raise ValueError(
                f"a Dask array of shape {a.shape} has unknown chunk sizes; call its "
                "compute_chunk_sizes() first")
    try:
        inner = backend_for(*[a._meta for a in lazy], *eager)
    except TypeError:
        kinds = sorted({f"{type(a._meta).__module__}.{type(a._meta).__name__} (Dask chunks)"
                        for a in lazy} | {f"{type(a).__module__}.{type(a).__name__}"
                                          for a in eager})
        raise TypeError(
            "arrays from different namespaces cannot be mixed in one call: "
            f"{', '.join(kinds)}") from None
    key = "dask:" + inner.name
    inst = _instances.get(key)
    if inst is None:
        with _lock:
            inst = _instances.get(key)
            if inst is None:
                from ._dask import DaskBackend

                inst = _instances[key] = DaskBackend(inner)
    return inst


register_backend("numpy", array_api_compat.is_numpy_namespace, "fastconv._cpu:CPUBackend")
# CuPy arrays: fastconv._cuda imports CuPy, which happens on the first call
# with CuPy arrays only (is_cupy_namespace compares names, importing nothing).
register_backend("cupy", array_api_compat.is_cupy_namespace, "fastconv._cuda:CuPyBackend")


def output_target(out, shape, dtype, inputs, xp):
    """The array a backend's kernels write the result into.

    `out` itself, reshaped to the kernels' `shape`, when they can write
    into it directly: C-contiguous, writeable (arrays without that flag,
    such as CuPy's, count as writeable) and sharing no memory with
    `inputs` (None entries skipped); else a new array of `xp` (NumPy or
    CuPy), which `deliver` copies into `out`.
    """
    if (out is not None and out.flags.c_contiguous
            and getattr(out.flags, "writeable", True)
            and not any(xp.may_share_memory(out, a) for a in inputs if a is not None)):
        return out.reshape(shape)
    return xp.empty(shape, dtype=dtype)


def deliver(target, user_shape, out, xp):
    """The result in the user's form: `target` reshaped to `user_shape`,
    or `out` (filled from it unless the kernels wrote there already)."""
    result = target.reshape(user_shape)
    if out is None:
        return result
    if not xp.may_share_memory(result, out):
        out[...] = result
    return out
