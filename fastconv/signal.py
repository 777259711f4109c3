r"""SciPy-compatible convolution: ``from fastconv import signal``.

A drop-in for the convolution functions of :mod:`scipy.signal`: the same
signatures, defaults, result values, shapes, dtypes and errors, with a
``workers=`` keyword on top (threads, as in :mod:`scipy.fft`).

=====================  ===================================================
``convolve``           N-D convolution, ``method`` "auto", "direct", "fft"
``correlate``          N-D cross-correlation, same methods
``fftconvolve``        N-D convolution by FFT, over chosen ``axes``
``oaconvolve``         N-D convolution by overlap-add FFT, over ``axes``
``convolve2d``         2-D convolution with ``boundary`` and ``fillvalue``
``correlate2d``        2-D cross-correlation, same options
``choose_conv_method`` "direct" or "fft" for given inputs (or measured)
=====================  ===================================================

Paths
-----
direct
    fastconv's compiled kernels (the ones behind :func:`fastconv.conv3d`)
    on one channel: 1-, 2- and 3-D directly, more dimensions as a sum of
    3-D correlations over the leading kernel axes (never SciPy's generic
    N-D loop, scipy issue 5967).  Complex data run as two real channels
    (real and imaginary parts; the complex product is a 2x2 channel mix).
    Integer and bool data are computed exactly in float64 while every
    partial sum stays below 2**53, then cast to the result dtype with
    NumPy's wrap-around, which is what integer arithmetic gives; beyond
    that bound SciPy's own integer loop runs.  Dtypes SciPy's direct path
    rejects (float16, long double, object) go to SciPy unchanged, so they
    behave (and fail) exactly as there.
fft
    :mod:`scipy.fft` (pocketfft) with ``workers`` threads, real transforms
    for real data, ``next_fast_len`` lengths shortened to what the output
    mode needs (see :mod:`fastconv._fft`), or overlap-add blocks when they
    are cheaper.

``method="auto"`` picks by a cost model fitted to this package's own
kernels (``benchmarks/fit_cost_model.py``; see :func:`choose_conv_method`).

Dask arrays: a ``dask.array.Array`` operand gives a lazy Dask array of the
same shape and dtype, computed chunk by chunk by these functions on each
chunk and the halo its windows reach (``boundary`` and ``fillvalue`` across
chunk edges included; see :mod:`fastconv._dask`).  A Dask ``in2`` is the
kernel and is materialised.

CuPy arrays: every function accepts them (both operands CuPy arrays on one
device; a CuPy array beside a NumPy array raises TypeError) and computes on
the GPU, on CuPy's current stream, with the same checks, errors, result
shapes and dtypes as for NumPy arrays (see :mod:`fastconv._cuda_signal`):
the FFT paths through cuFFT (``cupy.fft``), the direct paths on the CUDA
direct kernel of :func:`fastconv.conv3d`'s CuPy backend.

Non-finite values stay local on every automatic path: an FFT spreads one
NaN or Inf over the whole result, so when ``auto`` would take the FFT path
and an input is not all finite, the direct path runs instead and a NaN or
Inf spoils only the outputs whose window covers it (SciPy only warns).
Explicit ``method="fft"``, ``fftconvolve`` and ``oaconvolve`` keep SciPy's
FFT behaviour.

Accuracy
--------
The direct path agrees with a float64 reference to float rounding of each
output (float32: about 1e-6 relative to the sum of absolute products).
The FFT error is normwise: it is bounded relative to the largest output,
not to each output, so small outputs next to large ones carry a larger
relative error.  ``max|fft - ref| / max|ref|`` against a float64 direct
reference, measured on this machine with standard-normal data, mode
"same" (``method="fft"`` and ``oaconvolve`` alike):

=========================  ===========  ===========
case                       float32      float64
=========================  ===========  ===========
1-D 100,000 x 5,000        2.6e-7       7.6e-16
2-D 512x512 x 63x63        3.3e-7       5.1e-15
2-D 512x512 x 15x15        2.8e-7       1.8e-15
3-D 64^3 x 9^3             3.2e-7       2.1e-15
=========================  ===========  ===========

The tests hold every FFT path to ``FFT_NORMWISE_BOUND`` (1e-5 for
float32, 1e-13 for float64, about 30x and 20x above these figures).
"""
from __future__ import annotations

import operator
import timeit

import numpy as np
import scipy.signal as _scipy_signal
from array_api_compat import is_cupy_array, is_dask_array

from . import _cost, _fft, _sparse, _threads
from ._api import _convnd
from ._backends import as_arrays, backend_for
from ._validation import all_finite

__all__ = [
    "convolve",
    "correlate",
    "fftconvolve",
    "oaconvolve",
    "convolve2d",
    "correlate2d",
    "choose_conv_method",
    "FFT_NORMWISE_BOUND",
]

#: Bounds on ``max|fft result - float64 reference| / max|reference|`` that
#: the tests hold the FFT paths to, by real dtype of the computation.
FFT_NORMWISE_BOUND = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-13}

_MODES = ("full", "same", "valid")
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symm", "symmetric": "symm"}
_NP_PAD = {"wrap": "wrap", "symm": "symmetric"}
# Result dtypes computed by fastconv's kernels, and the real dtype each uses.
_COMPUTE = {np.dtype(t): np.dtype(r) for t, r in (
    (np.float32, np.float32), (np.float64, np.float64),
    (np.complex64, np.float32), (np.complex128, np.float64))}
_EXACT = 2 ** 53


# --------------------------------------------------------------------------
# Argument checks shared with SciPy's wording
# --------------------------------------------------------------------------

def _lazy(name, in1, in2, sparse_output=False, **kwargs):
    """The lazy result for Dask inputs (fastconv._dask.signal_call), or None."""
    if sparse_output is False and (is_dask_array(in1) or is_dask_array(in2)):
        from ._dask import signal_call

        return signal_call(name, in1, in2, **kwargs)
    return None


def _gpu(*arrays):
    """fastconv._cuda_signal when a CuPy array is among `arrays`, else None.

    A CuPy array beside an array of another namespace (NumPy arrays, lists)
    raises TypeError, as in fastconv's other functions.  CuPy itself is
    never imported here: is_cupy_array looks only at arrays already made.
    """
    cupy_arrays = [is_cupy_array(a) for a in arrays]
    if not any(cupy_arrays):
        return None
    if not all(cupy_arrays):
        backend_for(*as_arrays(*arrays))  # raises the namespace TypeError
    from . import _cuda_signal

    return _cuda_signal


def _check_mode(mode):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'.")


def _check_method(method):
    if not isinstance(method, str) or method not in ("auto", "direct", "fft"):
        raise ValueError("Acceptable method flags are 'auto', 'direct', or 'fft'.")


def _check_boundary(boundary):
    """The boundary kind ("fill", "wrap" or "symm") of a valid `boundary`."""
    if not isinstance(boundary, str) or boundary not in _BOUNDARIES:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' "
                         "(or 'wrap'), and 'symmetric' (or 'symm').")
    return _BOUNDARIES[boundary]


def _swap_needed(mode, s1, s2, axes=None):
    """SciPy's rule: in "valid" mode the larger operand must come first."""
    if mode != "valid" or not s1:
        return False
    axes = range(len(s1)) if axes is None else axes
    ok1 = all(s1[i] >= s2[i] for i in axes)
    ok2 = all(s2[i] >= s1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least "
                         "as large as the other in every dimension")
    return not ok1


def _reverse_conj(x):
    x = x[(slice(None, None, -1),) * x.ndim]
    return x.conj() if x.dtype.kind == "c" else x


def _pads(k, mode, centre):
    """(before, after) zero padding of a correlation with a length-k kernel.

    `centre` is where "same" puts the kernel's origin: ``k // 2`` for
    convolve/correlate/convolve2d, ``(k - 1) // 2`` for correlate2d.
    """
    if mode == "full":
        return (k - 1, k - 1)
    if mode == "same":
        return (centre, k - 1 - centre)
    return (0, 0)


# --------------------------------------------------------------------------
# The direct path on fastconv's kernels
# --------------------------------------------------------------------------

def _int_exact(a, v) -> bool:
    """Whether every partial sum of an integer product stays below 2**53."""
    if a.size == 0 or v.size == 0:
        return True
    amax = int(np.max(np.abs(a.astype(np.float64))))
    vmax = int(np.max(np.abs(v.astype(np.float64))))
    return amax * vmax * min(a.size, v.size) < _EXACT


def _real_correlate(x, w, pads, workers):
    """out[i] = sum_k x_p[i + k] w[k] for real float arrays, any ndim >= 1.

    `x` is (C, *spatial) and `w` is (O, C, *kernel): channels are mixed as
    in conv3d.  Up to three spatial axes run as one conv{1,2,3}d call;
    further leading axes are zero-padded here and summed over as a loop of
    3-D correlations, one per leading kernel offset, each over all leading
    output positions at once (a batch).
    """
    nd = x.ndim - 1
    if nd <= 3:
        return _convnd(nd, x[None], w, None, 1, tuple(pads), 1, 1, "zeros", "direct",
                       None, workers)[0]
    lead = nd - 3
    x = np.pad(x, [(0, 0)] + list(pads[:lead]) + [(0, 0)] * 3)
    klead = w.shape[2:2 + lead]
    olead = tuple(x.shape[1 + i] - klead[i] + 1 for i in range(lead))
    total = None
    for offset in np.ndindex(*klead):
        window = tuple(slice(o, o + n) for o, n in zip(offset, olead))
        # (C, *olead, *sp3) -> batch of prod(olead) samples, C channels.
        slab = np.moveaxis(x[(slice(None),) + window], 0, lead)
        batch = slab.reshape((-1,) + slab.shape[lead:])
        part = _convnd(3, batch, w[(slice(None), slice(None)) + offset], None, 1,
                       tuple(pads[lead:]), 1, 1, "zeros", "direct", None, workers)
        total = part if total is None else total.__iadd__(part)
    out = total.reshape(olead + total.shape[1:])
    return np.moveaxis(out, lead, 0)


def _correlate_direct(a, u, pads, workers):
    """Correlation of float or complex arrays: out[i] = sum_k a_p[i + k] u[k].

    `a` and `u` have one dtype from _COMPUTE and equal ndim >= 1; `pads`
    holds (before, after) zero padding per axis.  Complex data become real
    and imaginary channels, with the complex product as a channel mix.
    """
    rdt = _COMPUTE[a.dtype]
    if a.dtype.kind != "c":
        return _real_correlate(a[None], u[None, None], pads, workers)[0]
    x = np.stack([a.real, a.imag]).astype(rdt, copy=False)
    ur, ui = u.real, u.imag
    w = np.stack([np.stack([ur, -ui]), np.stack([ui, ur])]).astype(rdt, copy=False)
    y = _real_correlate(x, w, pads, workers)
    out = np.empty(y.shape[1:], dtype=a.dtype)
    out.real, out.imag = y[0], y[1]
    return out


def _direct(a, u, pads, result_dtype, workers):
    """Correlate on our kernels in the right precision, cast like SciPy."""
    if result_dtype in _COMPUTE:
        return _correlate_direct(a.astype(result_dtype, copy=False),
                                 u.astype(result_dtype, copy=False), pads, workers)
    # bool and integers: exact in float64 (the caller checked the bound).
    y = _correlate_direct(a.astype(np.float64), u.astype(np.float64), pads, workers)
    if result_dtype.kind == "b":
        return y != 0
    return np.rint(y).astype(np.int64).astype(result_dtype)


def _kernel_dtype_ok(result_dtype) -> bool:
    return result_dtype in _COMPUTE or result_dtype.kind in "biu"


def _convolve_direct(in1, in2, mode, workers):
    """SciPy's direct convolve: true convolution, "same" centred on in1."""
    rt = np.result_type(in1, in2)
    if (rt.kind == "b" or not _kernel_dtype_ok(rt)
            or (rt.kind in "iu" and not _int_exact(in1, in2))
            or (in1.ndim == 1 and not all_finite(in2 if in1.size >= in2.size else in1))):
        # SciPy's own direct path: bool and exotic dtypes (it accepts them in
        # 1-D through numpy.convolve and refuses them in N-D), integers beyond
        # float64's exact range, and 1-D kernels holding NaN/Inf, whose taps
        # numpy.convolve never multiplies by the zero padding.
        return _scipy_signal.convolve(in1, in2, mode=mode, method="direct")
    if _swap_needed(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    pads = [_pads(k, mode, k // 2) for k in in2.shape]
    return _direct(in1, in2[(slice(None, None, -1),) * in2.ndim], pads, rt, workers)


# --------------------------------------------------------------------------
# FFT paths
# --------------------------------------------------------------------------

def _normalize_axes(in1, in2, mode, axes):
    """SciPy's axes handling for fftconvolve/oaconvolve; returns (in1, in2, axes)."""
    ndim = in1.ndim
    if axes is None:
        axes = list(range(ndim))
    else:
        seq = [axes] if np.isscalar(axes) else list(axes)
        if not seq:
            raise ValueError("when provided, axes cannot be empty")
        try:
            seq = [operator.index(a) for a in seq]
        except TypeError:
            raise ValueError("axes must be a scalar or iterable of integers") from None
        if any(a >= ndim or a < -ndim for a in seq):
            raise ValueError("axes exceeds dimensionality of input")
        seq = [a % ndim for a in seq]
        if len(set(seq)) != len(seq):
            raise ValueError("all axes must be unique")
        axes = seq
    s1, s2 = in1.shape, in2.shape
    axes = [a for a in axes if s1[a] != 1 and s2[a] != 1]
    if not all(s1[a] == s2[a] or s1[a] == 1 or s2[a] == 1
               for a in range(ndim) if a not in axes):
        raise ValueError(f"incompatible shapes for in1 and in2: {s1} and {s2}")
    if _swap_needed(mode, s1, s2, axes):
        in1, in2 = in2, in1
    return in1, in2, axes


def _fft_family(in1, in2, mode, axes, workers, blocked):
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if in1.ndim == in2.ndim == 0:
        return in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.size == 0 or in2.size == 0:
        return np.array([])
    _check_mode(mode)
    nthreads = _threads.resolve_workers(workers)
    in1, in2, axes = _normalize_axes(in1, in2, mode, axes)
    run = _fft.oaconvolve if blocked else _fft.convolve
    return run(in1, in2, axes, mode, nthreads)


def _convolve_fft(in1, in2, mode, workers):
    """convolve(method="fft"): SciPy's result dtype and rounding for integers."""
    if _swap_needed(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    nthreads = _threads.resolve_workers(workers)
    axes = [i for i in range(in1.ndim) if in1.shape[i] != 1 and in2.shape[i] != 1]
    blocked = _cost.prefer_overlap_add(in1.shape, in2.shape, nthreads)
    run = _fft.oaconvolve if blocked else _fft.convolve
    out = run(in1, in2, axes, mode, nthreads)
    rt = np.result_type(in1, in2)
    if rt.kind in "biu":
        out = np.rint(out)
    return out.astype(rt, copy=False)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------

def convolve(in1, in2, mode="full", method="auto", *, workers=None, sparse_output=False):
    """Convolve two N-D arrays, like :func:`scipy.signal.convolve`.

    Parameters
    ----------
    in1 : array_like, any shape
        First input (bool, integer, float or complex).
    in2 : array_like, same ndim as `in1`
        Second input.
    mode : {"full", "valid", "same"}, default "full"
        "full": the whole linear convolution, shape ``n1 + n2 - 1`` per axis.
        "valid": only outputs that need no zero padding, shape
        ``|n1 - n2| + 1`` (one input must be at least as large as the other
        on every axis).  "same": the centre of "full" with `in1`'s shape.
    method : {"auto", "direct", "fft"}, default "auto"
        "direct" sums products on fastconv's compiled kernels; "fft" uses
        scipy.fft (or overlap-add blocks when cheaper); "auto" picks by
        :func:`choose_conv_method` and never takes the FFT path when an
        input holds NaN or Inf.
    workers : int, optional
        Threads for this call (default :func:`fastconv.get_num_threads`;
        a negative value counts back from the CPUs available).
    sparse_output : bool, default False
        With a scipy.sparse `in1`: return a ``scipy.sparse`` CSR array (a
        CSR matrix for a sparse matrix `in1`) built from the dense result.

    Returns
    -------
    out : ndarray or scipy.sparse CSR
        The convolution, dtype ``np.result_type(in1, in2)`` as in SciPy
        (integers rounded on the FFT path).

    Raises
    ------
    ValueError
        If the inputs differ in ndim, `mode` or `method` is unknown, or
        "valid" mode gets inputs neither of which is at least as large as
        the other on every axis; `workers` out of range; a sparse `in1`
        with an `in2` that is not 2-D, integer sparse data whose sums could
        exceed 2**53, or ``sparse_output=True`` with a dense `in1`.
    TypeError
        If `workers` is not an int or `sparse_output` not a bool; a sparse
        `in1` whose result dtype is not float32/float64 or integer.

    Notes
    -----
    A SciPy sparse 2-D array or matrix `in1` (CSR, CSC or COO) is convolved
    by its nonzeros with any `method` (each nonzero scattered through the
    kernel; :mod:`fastconv._sparse`); a sparse `in2` is densified, so pass
    the sparse operand first.  Where SciPy's "valid" rule swaps the
    operands (a sparse `in1` smaller than `in2`), `in1` is densified.

    Algorithms: direct summation on the kernels of :func:`fastconv.conv3d`
    (vectorised, OpenMP), FFT convolution through pocketfft (Cooley-Tukey
    and Bluestein, via :mod:`scipy.fft`) and overlap-add (Oppenheim &
    Schafer, *Discrete-Time Signal Processing*, 3rd ed., section 8.7.3).
    See the module docstring for accuracy.

    CuPy arrays are accepted and computed on the GPU, giving a CuPy array:
    "direct" on the CUDA direct kernel of fastconv's CuPy backend (one
    channel of :func:`fastconv.conv3d`), "fft" through cuFFT
    (``cupy.fft.rfftn``), "auto" by a GPU cost rule
    (:func:`fastconv._cuda_signal.choose`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    lazy = _lazy("convolve", in1, in2, sparse_output, mode=mode, method=method, workers=workers)
    if lazy is not None:
        return lazy
    gpu = _gpu(in1, in2) if sparse_output is False else None
    if gpu is not None:
        return gpu.convolve(in1, in2, mode, method, workers)
    if _sparse.is_sparse(in1) or _sparse.is_sparse(in2) or sparse_output is not False:
        _check_method(method)
        return _sparse_2d(in1, in2, mode, "fill", 0, workers, False, sparse_output,
                          lambda a, b: convolve(a, b, mode, method, workers=workers))
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if in1.ndim == in2.ndim == 0:
        return in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("volume and kernel should have the same dimensionality")
    _check_mode(mode)
    _check_method(method)
    if in1.size == 0 or in2.size == 0:
        return _scipy_signal.convolve(in1, in2, mode=mode, method=method)
    if method == "auto":
        method = _choose(in1, in2, mode, _threads.resolve_workers(workers))
        if method == "fft" and not all_finite(in1, in2):
            method = "direct"
    if method == "fft":
        rt = np.result_type(in1, in2)
        if not _kernel_dtype_ok(rt):
            return _scipy_signal.convolve(in1, in2, mode=mode, method="fft")
        return _convolve_fft(in1, in2, mode, workers)
    return _convolve_direct(in1, in2, mode, workers)


def correlate(in1, in2, mode="full", method="auto", *, workers=None, sparse_output=False):
    """Cross-correlate two N-D arrays, like :func:`scipy.signal.correlate`.

    ``out[k] = sum_l in1[l] * conj(in2[l - k])`` with the output index
    shifted per `mode` as in SciPy (equal to
    ``convolve(in1, in2[::-1, ...].conj(), mode)``).  CuPy arrays are
    accepted and computed on the GPU as in :func:`convolve` (CUDA direct
    kernel or cuFFT), giving a CuPy array.

    Parameters
    ----------
    in1 : array_like, any shape
        First input.
    in2 : array_like, same ndim as `in1`
        Second input (conjugated).
    mode : {"full", "valid", "same"}, default "full"
        Output size, as in :func:`convolve`.
    method : {"auto", "direct", "fft"}, default "auto"
        As in :func:`convolve`.
    workers : int, optional
        Threads for this call.
    sparse_output : bool, default False
        As in :func:`convolve` (a scipy.sparse `in1` is correlated by its
        nonzeros).

    Returns
    -------
    out : ndarray or scipy.sparse CSR
        The cross-correlation, dtype ``np.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        As :func:`convolve`.
    TypeError
        As :func:`convolve`.

    Examples
    --------
    >>> from fastconv import signal
    >>> signal.correlate([1.0, 2.0, 3.0], [0.0, 1.0, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    """
    lazy = _lazy("correlate", in1, in2, sparse_output, mode=mode, method=method,
                 workers=workers)
    if lazy is not None:
        return lazy
    gpu = _gpu(in1, in2) if sparse_output is False else None
    if gpu is not None:
        return gpu.correlate(in1, in2, mode, method, workers)
    if _sparse.is_sparse(in1) or _sparse.is_sparse(in2) or sparse_output is not False:
        _check_method(method)
        if _sparse.is_sparse(in2):
            in2 = in2.toarray()
        return convolve(in1, _reverse_conj(np.asarray(in2)), mode, method, workers=workers,
                        sparse_output=sparse_output)
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if in1.ndim == in2.ndim == 0:
        return in1 * (in2.conj() if in2.dtype.kind == "c" else in2)
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    _check_mode(mode)
    _check_method(method)
    if in1.size == 0 or in2.size == 0:
        return _scipy_signal.correlate(in1, in2, mode=mode, method=method)
    return convolve(in1, _reverse_conj(in2), mode, method, workers=workers)


def fftconvolve(in1, in2, mode="full", axes=None, *, workers=None):
    """Convolve two N-D arrays by FFT, like :func:`scipy.signal.fftconvolve`.

    Parameters
    ----------
    in1 : array_like, any shape
        First input.
    in2 : array_like, same ndim as `in1`
        Second input.  On axes not in `axes` the two lengths must be equal
        or one of them 1 (broadcast).
    mode : {"full", "valid", "same"}, default "full"
        Output size along `axes`, as in :func:`convolve`.
    axes : int or sequence of int, optional
        Axes to convolve over (default all).
    workers : int, optional
        Threads for the transforms.

    Returns
    -------
    out : ndarray
        Float or complex result as scipy.fft produces it (float32 stays
        float32; integers give float64).

    Raises
    ------
    ValueError
        Different ndims, bad `mode`, empty, out-of-range or repeated
        `axes`, incompatible non-convolved shapes, or the "valid" size rule.

    Notes
    -----
    The transform lengths are ``next_fast_len`` of only what `mode` needs
    (see :mod:`fastconv._fft`); real transforms for real inputs.  Errors
    are normwise (module docstring).  NaN or Inf anywhere in an input
    spreads over the whole result, as in SciPy.  CuPy arrays are accepted
    and computed on the GPU by cuFFT (``cupy.fft.rfftn``/``irfftn``, or
    ``fftn``/``ifftn`` for complex data, at ``cupyx.scipy.fft.next_fast_len``
    lengths), giving a CuPy array.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> np.round(signal.fftconvolve([1.0, 2.0, 3.0], [1.0, 1.0]), 12)
    array([1., 3., 5., 3.])
    """
    lazy = _lazy("fftconvolve", in1, in2, mode=mode, axes=axes, workers=workers)
    if lazy is not None:
        return lazy
    gpu = _gpu(in1, in2)
    if gpu is not None:
        return gpu.fftconvolve(in1, in2, mode, axes, workers)
    return _fft_family(in1, in2, mode, axes, workers, blocked=False)


def oaconvolve(in1, in2, mode="full", axes=None, *, workers=None):
    """Convolve two N-D arrays by overlap-add, like :func:`scipy.signal.oaconvolve`.

    For a 1-D convolution (one convolved axis, any batch) the longer input
    is cut into blocks when that lowers the estimated time (blocks are
    transformed in parallel; block length by ``rounds * L log L``, see
    :func:`fastconv._fft.oa_block`); convolutions over several axes are
    transformed whole, which measured faster here.  Either way the result
    equals :func:`fftconvolve`'s to rounding.  CuPy arrays are accepted and
    computed on the GPU by cuFFT: overlap-add blocks along one convolved
    axis when a GPU estimate finds them cheaper
    (:func:`fastconv._cuda_signal.oa_block`), otherwise the whole-transform
    path of :func:`fftconvolve`.

    Parameters
    ----------
    in1, in2, mode, axes, workers
        As in :func:`fftconvolve`.

    Returns
    -------
    out : ndarray
        As in :func:`fftconvolve`.

    Raises
    ------
    ValueError
        As :func:`fftconvolve`.

    Notes
    -----
    Overlap-add: Oppenheim & Schafer, *Discrete-Time Signal Processing*,
    section 8.7.3; transforms by pocketfft through :mod:`scipy.fft`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> x = np.ones(1000)
    >>> signal.oaconvolve(x, np.ones(3), mode="valid").round(9)[:3]
    array([3., 3., 3.])
    """
    lazy = _lazy("oaconvolve", in1, in2, mode=mode, axes=axes, workers=workers)
    if lazy is not None:
        return lazy
    gpu = _gpu(in1, in2)
    if gpu is not None:
        return gpu.oaconvolve(in1, in2, mode, axes, workers)
    return _fft_family(in1, in2, mode, axes, workers, blocked=True)


def _fillvalue(fillvalue, dtype):
    """`fillvalue` as a 0-d array of `dtype`, accepted and refused as SciPy does.

    SciPy converts with NumPy's array constructor and no forced cast:
    Python scalars by value (truncating floats into integers, refusing
    out-of-range integers), arrays only by a safe cast; a value that cannot
    be converted directly gets SciPy's "via complex" error.
    """
    try:
        if isinstance(fillvalue, np.ndarray):
            if not np.can_cast(fillvalue.dtype, dtype, "safe"):
                raise TypeError("unsafe cast")
            fill = fillvalue.astype(dtype)
        else:
            fill = np.array(fillvalue, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        np.asarray(fillvalue, dtype=np.complex128)  # SciPy's own error if even this fails
        raise ValueError("could not cast `fillvalue` directly to the output type "
                         "(it was first converted to complex).") from None
    if fill.size == 0:
        raise ValueError("`fillvalue` cannot be an empty array.")
    if fill.size != 1:
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    return fill.reshape(())


def _sparse_2d(in1, in2, mode, boundary, fillvalue, workers, correlation, sparse_output,
               dense_fn):
    """A scipy.sparse `in1` (fastconv._sparse.signal_2d): convolve2d's
    kernel flip and "same" centre, or correlate2d's."""
    if not _sparse.is_sparse(in1):
        raise ValueError("sparse_output=True needs a scipy.sparse in1, got "
                        f"{type(in1).__name__}")
    if correlation:
        return _sparse.signal_2d(in1, in2, mode, boundary, fillvalue, workers, False,
                                 lambda k: (k - 1) // 2, sparse_output, dense_fn)
    return _sparse.signal_2d(in1, in2, mode, boundary, fillvalue, workers, True,
                             lambda k: k // 2, sparse_output, dense_fn)


def _two_d(in1, in2, mode, boundary, fillvalue, workers, correlation, name,
           sparse_output=False):
    if _sparse.is_sparse(in1) or _sparse.is_sparse(in2) or sparse_output is not False:
        fn = correlate2d if correlation else convolve2d
        return _sparse_2d(in1, in2, mode, boundary, fillvalue, workers, correlation,
                          sparse_output,
                          lambda a, b: fn(a, b, mode, boundary, fillvalue, workers=workers))
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if not in1.ndim == in2.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays")
    rt = np.result_type(in1, in2)
    if (in1.size == 0 or in2.size == 0 or rt.kind == "b" or not _kernel_dtype_ok(rt)
            or (rt.kind in "iu" and not _int_exact(in1, in2))):
        # Empty inputs, and the dtypes SciPy's loop serves (or refuses) itself.
        fn = _scipy_signal.correlate2d if correlation else _scipy_signal.convolve2d
        return fn(in1, in2, mode, boundary, fillvalue)
    swapped = _swap_needed(mode, in1.shape, in2.shape)
    if swapped:
        in1, in2 = in2, in1
    _check_mode(mode)
    kind = _check_boundary(boundary)
    fill = _fillvalue(fillvalue, rt) if kind == "fill" else 0
    if correlation:
        u = in2.conj() if in2.dtype.kind == "c" else in2
        pads = [_pads(k, mode, (k - 1) // 2) for k in in2.shape]
    else:
        u = in2[::-1, ::-1]
        pads = [_pads(k, mode, k // 2) for k in in2.shape]
    if kind == "fill" and fill == 0:
        out = _direct(in1, u, pads, rt, workers)
    else:
        x = in1.astype(rt, copy=False)
        if kind == "fill":
            x = np.pad(x, pads, mode="constant", constant_values=fill)
        else:
            x = np.pad(x, pads, mode=_NP_PAD[kind])
        out = _direct(x, u, [(0, 0), (0, 0)], rt, workers)
    return out[::-1, ::-1] if swapped and correlation else out


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, workers=None,
               sparse_output=False):
    """Convolve two 2-D arrays, like :func:`scipy.signal.convolve2d`.

    Parameters
    ----------
    in1 : (M, N) array_like
        First input (integer, float or complex).
    in2 : (P, Q) array_like
        Second input.
    mode : {"full", "valid", "same"}, default "full"
        Output size, as in :func:`convolve`.
    boundary : {"fill", "wrap", "circular", "symm", "symmetric"}, default "fill"
        How `in1` is extended past its edges: with `fillvalue`, periodically,
        or mirrored with the edge sample repeated.
    fillvalue : scalar, default 0
        Value of the "fill" extension, cast to the result dtype.
    workers : int, optional
        Threads for this call.
    sparse_output : bool, default False
        With a scipy.sparse `in1`: return a ``scipy.sparse`` CSR array (a
        CSR matrix for a sparse matrix `in1`) built from the dense result.

    Returns
    -------
    out : 2-D ndarray or scipy.sparse CSR
        dtype ``np.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        Non-2-D inputs, bad `mode` or `boundary`, a non-scalar or
        uncastable `fillvalue`, the "valid" size rule, a dtype SciPy's
        convolve2d does not support (bool, float16, object), integer
        sparse data whose sums could exceed 2**53, or
        ``sparse_output=True`` with a dense `in1`.
    TypeError
        A sparse `in1` whose result dtype is not float32/float64 or
        integer, or a `sparse_output` that is not a bool.

    Notes
    -----
    A SciPy sparse 2-D array or matrix `in1` (CSR, CSC or COO) is convolved
    by its nonzeros (each scattered through the kernel) for every `mode`
    and `boundary`: "wrap" and "symm" extend the nonzeros into the
    boundary, a nonzero `fillvalue` adds its constant part in closed form.
    A sparse `in2` is densified.

    CuPy arrays are accepted and computed on the GPU by the CUDA direct
    kernel of fastconv's CuPy backend (``boundary`` other than a zero fill
    applied with ``cupy.pad``), giving a CuPy array.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.convolve2d(np.eye(3), np.ones((2, 2)), mode="same")
    array([[1., 1., 0.],
           [1., 2., 1.],
           [0., 1., 2.]])
    """
    lazy = _lazy("convolve2d", in1, in2, sparse_output, mode=mode, boundary=boundary,
                 fillvalue=fillvalue, workers=workers)
    if lazy is not None:
        return lazy
    gpu = _gpu(in1, in2) if sparse_output is False else None
    if gpu is not None:
        return gpu.convolve2d(in1, in2, mode, boundary, fillvalue, workers)
    return _two_d(in1, in2, mode, boundary, fillvalue, workers, False, "convolve2d",
                  sparse_output)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, workers=None,
                sparse_output=False):
    """Cross-correlate two 2-D arrays, like :func:`scipy.signal.correlate2d`.

    ``in2`` is conjugated; "same" centres the kernel at ``(k - 1) // 2`` on
    each axis and a swapped "valid" call reverses the result, both exactly
    as SciPy does.  CuPy arrays are accepted and computed on the GPU as in
    :func:`convolve2d` (CUDA direct kernel), giving a CuPy array.

    Parameters
    ----------
    in1, in2, mode, boundary, fillvalue, workers, sparse_output
        As in :func:`convolve2d` (a scipy.sparse `in1` is correlated by its
        nonzeros).

    Returns
    -------
    out : 2-D ndarray or scipy.sparse CSR
        dtype ``np.result_type(in1, in2)``.

    Raises
    ------
    ValueError
        As :func:`convolve2d`.
    TypeError
        As :func:`convolve2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.correlate2d(np.eye(3), np.ones((2, 2)), mode="valid")
    array([[2., 1.],
           [1., 2.]])
    """
    lazy = _lazy("correlate2d", in1, in2, sparse_output, mode=mode, boundary=boundary,
                 fillvalue=fillvalue, workers=workers)
    if lazy is not None:
        return lazy
    gpu = _gpu(in1, in2) if sparse_output is False else None
    if gpu is not None:
        return gpu.correlate2d(in1, in2, mode, boundary, fillvalue, workers)
    return _two_d(in1, in2, mode, boundary, fillvalue, workers, True, "correlate2d",
                  sparse_output)


def _timeit(fn, repeat=3, floor=5e-3):
    """Best seconds per call of `fn`: calls are batched until one batch takes
    `floor` seconds (like SciPy's _timeit_fast), then `repeat` batches run."""
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= floor or number >= 10**6:
            break
        number *= 10
    return min([elapsed] + timer.repeat(repeat - 1, number)) / number


def choose_conv_method(in1, in2, mode="full", measure=False):
    """The faster of "direct" and "fft" for convolve/correlate of these inputs.

    Like :func:`scipy.signal.choose_conv_method`, with the estimate from a
    cost model of fastconv's own kernels.  For CuPy arrays the choice is
    the GPU's (:func:`fastconv._cuda_signal.choose`: the direct CUDA kernel
    against cuFFT), and ``measure=True`` times both on the GPU.

    Parameters
    ----------
    in1 : array_like
        First input of the convolution.
    in2 : array_like, same ndim
        Second input.
    mode : {"full", "valid", "same"}, default "full"
        Output size.
    measure : bool, default False
        Time both methods on these inputs instead of estimating.

    Returns
    -------
    method : {"direct", "fft"}
        The faster method.
    times : dict, only with ``measure=True``
        ``{"direct": seconds, "fft": seconds}``, best of three timings.

    Raises
    ------
    ValueError
        As :func:`convolve`.

    Notes
    -----
    The estimate: direct time ``c_d * (multiply-adds)`` plus a fixed cost,
    FFT time ``c_f * sum(L log2 L)`` over the transforms plus a fixed cost,
    with constants per dimensionality and precision fitted by least squares
    to timings of this package (``benchmarks/fit_cost_model.py``, data in
    ``fastconv/_cost_model.json``).  Integer inputs whose exact result
    could exceed 2**52 and bool inputs always get "direct", as in SciPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.choose_conv_method(np.ones(100_000), np.ones(3))
    'direct'
    >>> signal.choose_conv_method(np.ones(100_000), np.ones(5_000))
    'fft'
    """
    if is_dask_array(in1) or is_dask_array(in2):
        raise TypeError("choose_conv_method takes in-memory arrays: each chunk of a Dask array "
                        "chooses for itself; pass one chunk (x.blocks[0].compute())")
    gpu = _gpu(in1, in2)
    if gpu is not None:
        return gpu.choose_conv_method(in1, in2, mode, measure)
    in1, in2 = np.asarray(in1), np.asarray(in2)
    if measure:
        times = {m: _timeit(lambda m=m: convolve(in1, in2, mode=mode, method=m))
                 for m in ("fft", "direct")}
        return ("fft" if times["fft"] < times["direct"] else "direct"), times
    if in1.ndim != in2.ndim and not (in1.ndim == 0 or in2.ndim == 0):
        raise ValueError("in1 and in2 should have the same dimensionality")
    _check_mode(mode)
    return _choose(in1, in2, mode, _threads.get_num_threads())


def _choose(in1, in2, mode, threads):
    """choose_conv_method's estimate for a call running on `threads` threads."""
    rt = np.result_type(in1, in2)
    if rt.kind == "b" or in1.size == 0 or in2.size == 0 or in1.ndim == 0:
        return "direct"
    if rt.kind in "iu":
        amax = int(np.max(np.abs(in1.astype(np.float64))))
        vmax = int(np.max(np.abs(in2.astype(np.float64))))
        if amax * vmax * min(in1.size, in2.size) > 2 ** 52 - 1:
            return "direct"
    if rt.kind not in "iufc":
        return "direct"
    s1, s2 = in1.shape, in2.shape
    if mode == "valid":
        try:
            if _swap_needed(mode, s1, s2):
                s1, s2 = s2, s1
        except ValueError:
            return "direct"
    real = _COMPUTE.get(rt, np.dtype(np.float64))
    return "fft" if _cost.fft_faster(s1, s2, mode, real, rt.kind == "c", threads) else "direct"
