"""CuPy arrays in :mod:`fastconv.signal`: the GPU side of its seven functions.

fastconv.signal dispatches here when an argument is a CuPy array (after
checking that no array of another namespace is mixed in).  Every function
below mirrors the NumPy path of the function of the same name in
fastconv.signal: the same argument checks (its own helpers, called in the
same order, so errors read the same), the same result dtypes and shapes,
the same swap rule for "valid" mode.  Results are CuPy arrays on the
device of the inputs, computed on CuPy's current stream.  CuPy is imported
on the first call only.

Paths
-----
fft
    ``cupy.fft.rfftn``/``irfftn`` (cuFFT, plans cached by CuPy) for real
    data, ``fftn``/``ifftn`` for complex data, with the transform lengths of
    :mod:`fastconv._fft` (only what the output mode needs) rounded up by
    ``cupyx.scipy.fft.next_fast_len``.  Both operands are transformed by
    one batched cuFFT call when every axis is convolved, the spectra are
    multiplied in place and the mode's window is copied out once (a
    C-contiguous result, as on the CPU).  Measured on an H100 against
    ``cupyx.scipy.signal.fftconvolve`` (float32, medians of 41 interleaved
    rounds): 1-D 1M x 4097 "full" 1.05x faster, 1M x 63 "same" 1.06x, 2-D
    2048^2 x 65^2 "same" 1.19x, 4096^2 x 9^2 "same" 1.08x.  float32 stays
    float32 (complex64 spectra); integers and bool are transformed in
    float64, float16 in float32, as SciPy does.
overlap-add
    ``oaconvolve`` with one convolved axis cuts the longer operand into
    blocks along it when :func:`oa_block` estimates that cheaper; otherwise
    it is the fft path.  On an H100, blocks measured slower than the whole
    transform for every case tried (1M x 63, 1M x 4097, 100k x 5000,
    4M x 255, 20k x 31 at block lengths 1024 to 65536: e.g. 0.35 ms against
    0.23 ms for 1M x 63), and the estimate keeps the whole transform there.
direct
    The CuPy backend's direct kernels (``fc_conv2d_tiled`` of ``tiled.cu``
    for one and two axes with small kernels, else ``fc_conv_direct`` of
    ``direct.cu``) through :func:`fastconv.conv1d` / ``conv2d`` /
    ``conv3d`` on one channel, the kernel flipped for a
    convolution; more than three axes as a sum of 3-D correlations over the
    leading kernel offsets, as on the CPU.  The kernel applies zero padding
    by bounds checks (a NaN or Inf tap never meets the padding, as on the
    CPU).  Complex data run as two real channels (the complex product is a
    2x2 channel mix).  Integers are computed in float64 while every partial
    sum stays below 2**53 and rounded, else exactly in uint64 arithmetic
    (sums of shifted products, wrapping modulo 2**64 and then cast, which
    gives SciPy's wrap-around); bool and float16 in one dimension in
    float64, cast back.  ``boundary`` other than zero fill: ``cupy.pad``.

Not computed on the GPU: empty inputs (their result or error comes from the
NumPy path on the empty host copies), and the dtypes SciPy's own N-D and
2-D loops refuse (bool and float16 in N-D direct convolution and in
convolve2d/correlate2d): those raise SciPy's ValueError.

``method="auto"`` (:func:`choose`): a cost rule with first estimates of the
H100's rates (GPU_SIGNAL_MODEL), never the FFT for data holding NaN or Inf.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import _fft, _threads
from . import signal as _sig
from ._api import _convnd

__all__ = ["convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d",
           "correlate2d", "choose_conv_method", "choose", "oa_block", "GPU_SIGNAL_MODEL"]

#: Constants of the cost rule of ``method="auto"`` on the GPU.  FIRST
#: ESTIMATES, read off one noisy set of H100 timings (a shared machine:
#: repeated timings differed by up to 3x), to be fitted properly there:
#:
#: ``launch_s``: host seconds per kernel launch or cuFFT call (small
#: problems wait on the host);
#: ``fft_launches``: launches and library calls of one FFT convolution
#: (pads, three transforms, product, crop: about 0.2 ms for up to ~1M
#: points, measured);
#: ``direct_s_per_output``: seconds per output of the direct kernel
#: besides its multiply-adds;
#: ``direct_macs``: multiply-adds per second of the direct kernel on one
#: channel, by real dtype of the computation (1.0-1.4e12 measured for
#: kernels of 81 to 1023 taps in both precisions);
#: ``pass_s``: seconds per transform point of one pass over device memory
#: (cuFFT is memory-bound: a transform costs its points times its passes),
#: by real dtype;
#: ``log2_per_pass``: cuFFT runs a transform of up to ``2**log2_per_pass``
#: points along an axis in one pass, longer ones in more;
#: ``oa_copy_passes``: passes over the input that overlap-add adds (the
#: padded copy, the zeroed output, the copy and add of the blocks).
GPU_SIGNAL_MODEL = {
    "launch_s": 2e-5,
    "fft_launches": 10,
    "direct_s_per_output": 9e-11,
    "direct_macs": {np.dtype(np.float32): 1.4e12, np.dtype(np.float64): 1.2e12},
    "pass_s": {np.dtype(np.float32): 6e-12, np.dtype(np.float64): 1.4e-11},
    "log2_per_pass": 12,
    "oa_copy_passes": 3,
}

_COMPUTE = _sig._COMPUTE
_EXACT = _sig._EXACT


def _cp():
    import cupy

    return cupy


def _result_type(a, b):
    """np.result_type of two arrays (by dtype: CuPy arrays are no NumPy input)."""
    return np.result_type(a.dtype, b.dtype)


def _on_host(fn, in1, in2, *args, **kwargs):
    """`fn` (the NumPy path) on host copies, the result back on the device.

    Used for empty inputs only (nothing to copy) and for dtypes SciPy's own
    loops refuse (where it raises before anything comes back).
    """
    cp = _cp()
    return cp.asarray(fn(cp.asnumpy(in1), cp.asnumpy(in2), *args, **kwargs))


def _all_finite(*arrays) -> bool:
    """Whether the arrays hold only finite values (one reduction each)."""
    cp = _cp()
    return all(a.dtype.kind not in "fc" or bool(cp.isfinite(a).all()) for a in arrays)


def _abs_max(a) -> int:
    """max |a| of an integer or bool array, exactly (two reductions)."""
    return max(abs(int(a.max())), abs(int(a.min())))


def _int_exact(a, v) -> bool:
    """Whether every partial sum of an integer product stays below 2**53."""
    return _abs_max(a) * _abs_max(v) * min(a.size, v.size) < _EXACT


# --------------------------------------------------------------------------
# direct path: the CuPy backend's direct kernel on one channel
# --------------------------------------------------------------------------

def _conv(x, w, pads):
    """One conv{1,2,3}d call: x (N, C, *spatial), w (O, C, *kernel), zero pads."""
    return _convnd(x.ndim - 2, x, w, None, 1, tuple(pads), 1, 1, "zeros", "direct", None, None)


def _real_correlate(x, w, pads):
    """out[i] = sum_k x_p[i + k] w[k] for real float CuPy arrays, any ndim >= 1.

    `x` is (C, *spatial), `w` (O, C, *kernel); as signal._real_correlate:
    up to three spatial axes in one call, further leading axes zero-padded
    here and summed over as 3-D correlations, one per leading kernel offset,
    each over all leading output positions at once (a batch).
    """
    cp = _cp()
    nd = x.ndim - 1
    if nd <= 3:
        return _conv(x[None], w, pads)[0]
    lead = nd - 3
    x = cp.pad(x, [(0, 0)] + list(pads[:lead]) + [(0, 0)] * 3)
    klead = w.shape[2:2 + lead]
    olead = tuple(x.shape[1 + i] - klead[i] + 1 for i in range(lead))
    total = None
    for offset in np.ndindex(*klead):
        window = tuple(slice(o, o + n) for o, n in zip(offset, olead))
        slab = cp.moveaxis(x[(slice(None),) + window], 0, lead)
        batch = slab.reshape((-1,) + slab.shape[lead:])
        part = _conv(batch, w[(slice(None), slice(None)) + offset], pads[lead:])
        if total is None:
            total = part
        else:
            total += part
    out = total.reshape(olead + total.shape[1:])
    return cp.moveaxis(out, lead, 0)


def _correlate_float(a, u, pads):
    """Correlation of arrays of one _COMPUTE dtype (complex as two channels)."""
    cp = _cp()
    if a.dtype.kind != "c":
        return _real_correlate(a[None], u[None, None], pads)[0]
    rdt = _COMPUTE[a.dtype]
    x = cp.stack([a.real, a.imag]).astype(rdt, copy=False)
    ur, ui = u.real, u.imag
    w = cp.stack([cp.stack([ur, -ui]), cp.stack([ui, ur])]).astype(rdt, copy=False)
    y = _real_correlate(x, w, pads)
    out = cp.empty(y.shape[1:], dtype=a.dtype)
    out.real = y[0]
    out.imag = y[1]
    return out


def _correlate_wrapping(a, u, pads, result_dtype):
    """Exact integer correlation modulo 2**64, cast to `result_dtype`.

    Integer sums whose partial sums may pass 2**53 (beyond float64): one
    multiply-add of a shifted window per kernel element, in uint64, where
    overflow wraps (two's complement makes that the signed result too);
    the final cast wraps to the result's width, as SciPy's integer loop does.
    """
    cp = _cp()
    x = cp.pad(a.astype(cp.uint64), pads)
    uw = u.astype(cp.uint64)
    out_shape = tuple(n - k + 1 for n, k in zip(x.shape, uw.shape))
    acc = cp.zeros(out_shape, dtype=cp.uint64)
    for offset in np.ndindex(*uw.shape):
        window = tuple(slice(o, o + n) for o, n in zip(offset, out_shape))
        acc += x[window] * uw[offset]
    return acc.astype(result_dtype)


def _direct(a, u, pads, result_dtype):
    """Correlate (out[i] = sum_k a_p[i + k] u[k]) in the right precision, cast
    like the NumPy path."""
    cp = _cp()
    if result_dtype in _COMPUTE:
        return _correlate_float(a.astype(result_dtype, copy=False),
                                u.astype(result_dtype, copy=False), pads)
    if result_dtype.kind in "iu" and not _int_exact(a, u):
        return _correlate_wrapping(a, u, pads, result_dtype)
    y = _correlate_float(a.astype(cp.float64), u.astype(cp.float64), pads)
    if result_dtype.kind == "b":
        return y != 0
    if result_dtype.kind in "iu":
        return cp.rint(y).astype(cp.int64).astype(result_dtype)
    return y.astype(result_dtype)  # float16


def _scipy_has_loop(result_dtype) -> bool:
    """Whether SciPy's N-D and 2-D direct loops take this dtype (not bool, float16)."""
    return result_dtype in _COMPUTE or result_dtype.kind in "iu"


def _convolve_direct(in1, in2, mode):
    rt = _result_type(in1, in2)
    swap = _sig._swap_needed(mode, in1.shape, in2.shape)
    if in1.ndim > 1 and not _scipy_has_loop(rt):
        # The NumPy path hands these to SciPy, whose N-D loop refuses them
        # after its "valid" check (just made).
        raise ValueError("Unsupported type")
    if swap:
        in1, in2 = in2, in1
    pads = [_sig._pads(k, mode, k // 2) for k in in2.shape]
    return _direct(in1, in2[(slice(None, None, -1),) * in2.ndim], pads, rt)


# --------------------------------------------------------------------------
# FFT paths
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _fast_len(n: int) -> int:
    """cupyx.scipy.fft.next_fast_len (cuFFT's 2, 3, 5, 7-smooth lengths), memoised."""
    from cupyx.scipy import fft as cfft

    return int(cfft.next_fast_len(max(1, int(n))))


def fft_length(n1: int, n2: int, mode: str) -> int:
    """Shortest cuFFT-fast length with no wrap-around onto `mode`'s outputs
    (fastconv._fft.fft_length with cuFFT's fast lengths)."""
    start, length = _fft.mode_window(n1, n2, mode)
    return _fast_len(max(start + length, n1 + n2 - 1 - start, 1))


def _as_float(a):
    """What SciPy transforms: integers and bool in float64, float16 in float32."""
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    if a.dtype == np.float16:
        return a.astype(np.float32)
    return a


def _times(fa, fb):
    """fa * fb (spectra of equal ndim), written into whichever operand can
    hold the product; checked with tuples and promote_types because the
    host's time per call is what small transforms wait on."""
    for dst, src in ((fa, fb), (fb, fa)):
        if (dst.dtype == np.promote_types(dst.dtype, src.dtype)
                and all(d == t or t == 1 for d, t in zip(dst.shape, src.shape))):
            dst *= src
            return dst
    return fa * fb


def _forward(x, lengths, axes, real):
    """rfftn/fftn of `x` over `axes` at `lengths` (cuFFT).  One axis goes
    through the 1-D entry points, which do less work on the host per call."""
    cp = _cp()
    if len(axes) == 1:
        return (cp.fft.rfft if real else cp.fft.fft)(x, n=lengths[0], axis=axes[0])
    return (cp.fft.rfftn if real else cp.fft.fftn)(x, s=lengths, axes=axes)


def _inverse(spec, lengths, axes, real):
    """The inverse of :func:`_forward` (irfftn/ifftn)."""
    cp = _cp()
    if len(axes) == 1:
        return (cp.fft.irfft if real else cp.fft.ifft)(spec, n=lengths[0], axis=axes[0])
    return (cp.fft.irfftn if real else cp.fft.ifftn)(spec, s=lengths, axes=axes)


def _crop(ret, s1, s2, axes, mode):
    """The `mode` part of a full result, C-contiguous; "same" also centres
    broadcast (non-convolved) axes on `s1`'s length (as fastconv._fft)."""
    index = []
    for i in range(ret.ndim):
        if i in axes:
            start, length = _fft.mode_window(s1[i], s2[i], mode)
        elif mode == "same":
            start, length = (ret.shape[i] - s1[i]) // 2, s1[i]
        else:
            index.append(slice(None))
            continue
        index.append(slice(start, start + length))
    return _cp().ascontiguousarray(ret[tuple(index)])


def _spectrum_product(a, b, axes, lengths, real):
    """The product of the spectra of `a` and `b` over `axes` at `lengths`.

    When every axis is convolved and the dtypes agree, both operands are
    zero-padded into one (2, *lengths) buffer and transformed by one
    batched cuFFT call: the same device work as two transforms, but one
    library call and one memset fewer on the host, whose time per call is
    what transforms of up to a few million points wait on.  Otherwise one
    transform of each (the spectra broadcast over the other axes).
    """
    cp = _cp()
    if len(axes) == a.ndim and a.dtype == b.dtype:
        size = tuple(dict(zip(axes, lengths))[i] for i in range(a.ndim))
        buf = cp.zeros((2,) + size, dtype=a.dtype)
        # An operand longer than its transform is cut, as rfftn(s=...) does:
        # the lengths keep every wanted output clear of what is cut off.
        for k, x in enumerate((a, b)):
            window = tuple(slice(0, min(n, m)) for n, m in zip(x.shape, size))
            buf[(k,) + window] = x[window]
        spec = _forward(buf, lengths, [i + 1 for i in axes], real)
        spec[0] *= spec[1]
        return spec[0]
    return _times(_forward(a, lengths, axes, real), _forward(b, lengths, axes, real))


def _fft_whole(a, b, axes, mode):
    """fastconv._fft.convolve on the GPU: one transform of each operand."""
    a, b = _as_float(a), _as_float(b)
    if not axes:
        return _crop(a * b, a.shape, b.shape, axes, mode)
    real = a.dtype.kind != "c" and b.dtype.kind != "c"
    lengths = [fft_length(a.shape[i], b.shape[i], mode) for i in axes]
    spec = _spectrum_product(a, b, axes, lengths, real)
    return _crop(_inverse(spec, lengths, axes, real), a.shape, b.shape, axes, mode)


def _passes(lengths) -> int:
    """Passes over memory of one cuFFT transform of these axis lengths."""
    per = GPU_SIGNAL_MODEL["log2_per_pass"]
    return sum(max(1, math.ceil(math.log2(max(n, 2)) / per)) for n in lengths)


def _convolution_passes(points: int, lengths) -> int:
    """Point-passes of an FFT convolution over transforms of `lengths`:
    three transforms and the product of the spectra."""
    return points * (3 * _passes(lengths) + 1)


def oa_block(n1: int, n2: int):
    """Transform length of overlap-add blocks along one axis, or None.

    Estimated memory traffic in point-passes (:func:`_convolution_passes`):
    the whole transform at F (the fast length of ``n1 + n2 - 1``) against
    ``ceil(n1 / B)`` blocks of ``B = L - n2 + 1`` samples at a fast length
    ``L >= 2 n2``, plus the copies blocking adds
    (GPU_SIGNAL_MODEL["oa_copy_passes"] over the input).  Shorter blocks
    need fewer passes per transform but more points; None when the whole
    transform is estimated cheaper.
    """
    full = n1 + n2 - 1
    whole = _fast_len(full)
    best, best_cost = None, _convolution_passes(whole, [whole])
    extra = GPU_SIGNAL_MODEL["oa_copy_passes"] * n1
    m = 2 * n2
    while m < full:
        length = _fast_len(m)
        points = -(-n1 // (length - n2 + 1)) * length
        cost = _convolution_passes(points, [length]) + extra
        if cost < best_cost:
            best, best_cost = length, cost
        m = int(m * 1.25) + 1
    return best


def _overlap_add(y, axis, step, n_full):
    """Add the blocks on axes (axis, axis+1) = (blocks, L) back into one axis."""
    cp = _cp()
    y = cp.moveaxis(y, (axis, axis + 1), (-2, -1))
    nb, length = y.shape[-2], y.shape[-1]
    tail = length - step
    out = cp.zeros(y.shape[:-2] + ((nb + 1) * step,), dtype=y.dtype)
    out[..., :nb * step] = y[..., :step].reshape(y.shape[:-2] + (nb * step,))
    if tail:
        shifted = out[..., step:].reshape(y.shape[:-2] + (nb, step))
        shifted[..., :tail] += y[..., step:]
    return cp.moveaxis(out[..., :n_full], -1, axis)


def _fft_blocked(a, b, axes, mode):
    """fastconv._fft.oaconvolve on the GPU: one convolved axis cut into
    blocks when oa_block finds it pays, else :func:`_fft_whole`."""
    cp = _cp()
    a, b = _as_float(a), _as_float(b)
    s1, s2 = a.shape, b.shape
    length = None
    if len(axes) == 1 and s2[axes[0]] <= s1[axes[0]]:
        length = oa_block(s1[axes[0]], s2[axes[0]])
    if length is None:
        return _fft_whole(a, b, axes, mode)
    i = axes[0]
    step = length - s2[i] + 1
    nb = -(-s1[i] // step)
    pad = [(0, 0)] * a.ndim
    pad[i] = (0, nb * step - s1[i])
    # Axis i of `a` becomes (blocks, step); `b` gets a length-1 axis in the
    # blocks' place so that the spectra broadcast.
    a_blocks = cp.pad(a, pad).reshape(s1[:i] + (nb, step) + s1[i + 1:])
    b_blocks = b.reshape(s2[:i] + (1, s2[i]) + s2[i + 1:])
    real = a.dtype.kind != "c" and b.dtype.kind != "c"
    fft_axes = [i + 1]
    spec = _times(_forward(a_blocks, [length], fft_axes, real),
                  _forward(b_blocks, [length], fft_axes, real))
    y = _inverse(spec, [length], fft_axes, real)
    y = _overlap_add(y, i, step, s1[i] + s2[i] - 1)
    return _crop(y, s1, s2, axes, mode)


def _convolve_fft(in1, in2, mode):
    """convolve(method="fft"): the NumPy path's dtype and integer rounding."""
    cp = _cp()
    if _sig._swap_needed(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    axes = [i for i in range(in1.ndim) if in1.shape[i] != 1 and in2.shape[i] != 1]
    out = _fft_blocked(in1, in2, axes, mode)
    rt = _result_type(in1, in2)
    if rt.kind in "biu":
        out = cp.rint(out)
    return out.astype(rt, copy=False)


def _fft_family(in1, in2, mode, axes, workers, blocked):
    """signal._fft_family for CuPy arrays (the same checks in the same order)."""
    cp = _cp()
    if in1.ndim == in2.ndim == 0:
        return in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.size == 0 or in2.size == 0:
        return cp.array([])
    _sig._check_mode(mode)
    _threads.resolve_workers(workers)  # validated as on the CPU; the GPU takes no threads
    in1, in2, axes = _sig._normalize_axes(in1, in2, mode, axes)
    return (_fft_blocked if blocked else _fft_whole)(in1, in2, axes, mode)


# --------------------------------------------------------------------------
# method="auto"
# --------------------------------------------------------------------------

def _estimates(s1, s2, mode, real_dtype, complex_data):
    """(direct seconds, fft seconds) of GPU_SIGNAL_MODEL for operand shapes
    `s1`, `s2` (the larger first in "valid" mode)."""
    m = GPU_SIGNAL_MODEL
    if mode == "full":
        out = [a + b - 1 for a, b in zip(s1, s2)]
    elif mode == "same":
        out = list(s1)
    else:
        out = [a - b + 1 for a, b in zip(s1, s2)]
    # a complex product is four real ones (the 2x2 channel mix) into two
    # output channels
    nout = math.prod(out) * (2 if complex_data else 1)
    macs = math.prod(out) * math.prod(s2) * (4 if complex_data else 1)
    direct = (m["launch_s"] + nout * m["direct_s_per_output"]
              + macs / m["direct_macs"][real_dtype])
    lengths = [fft_length(a, b, mode) for a, b in zip(s1, s2) if a != 1 and b != 1]
    batch = math.prod(max(a, b) for a, b in zip(s1, s2) if a == 1 or b == 1)
    points = math.prod(lengths) * batch
    fft = (m["fft_launches"] * m["launch_s"]
           + _convolution_passes(points, lengths) * m["pass_s"][real_dtype])
    if complex_data:
        fft *= 2  # full complex transforms instead of half-spectrum real ones
    return direct, fft


def choose(in1, in2, mode):
    """The "auto" method for CuPy arrays (signal._choose's rules, GPU costs).

    "direct" for bool, empty or 0-d inputs and for integers whose exact
    result could pass 2**52 (as on the CPU); otherwise the smaller estimate
    of :func:`_estimates`: direct ``launch + outputs * direct_s_per_output
    + multiply-adds / direct_macs`` against FFT ``fft_launches * launch_s
    + point-passes * pass_s``, the point-passes
    of :func:`_convolution_passes` over the transform points, doubled for
    complex data (constants: GPU_SIGNAL_MODEL, first estimates).
    """
    rt = _result_type(in1, in2)
    if rt.kind == "b" or in1.size == 0 or in2.size == 0 or in1.ndim == 0 or in2.ndim == 0:
        return "direct"
    if rt.kind in "iu" and _abs_max(in1) * _abs_max(in2) * min(in1.size, in2.size) > 2 ** 52 - 1:
        return "direct"
    s1, s2 = in1.shape, in2.shape
    if mode == "valid":
        try:
            if _sig._swap_needed(mode, s1, s2):
                s1, s2 = s2, s1
        except ValueError:
            return "direct"
    real = _COMPUTE.get(rt, np.dtype(np.float64))
    direct, fft = _estimates(s1, s2, mode, real, rt.kind == "c")
    return "fft" if fft < direct else "direct"


# --------------------------------------------------------------------------
# The public functions' GPU bodies (called by fastconv.signal)
# --------------------------------------------------------------------------

def convolve(in1, in2, mode, method, workers):
    """:func:`fastconv.signal.convolve` for CuPy arrays.

    Parameters
    ----------
    in1, in2 : cupy.ndarray
        N-D arrays of one dimensionality (any dtype SciPy takes), on one
        device.
    mode : {"full", "valid", "same"}
    method : {"auto", "direct", "fft"}
    workers : int or None
        Checked as on the CPU; the GPU takes no thread count.

    Returns
    -------
    out : cupy.ndarray
        The convolution, of SciPy's result shape and dtype for `mode`.

    Raises
    ------
    ValueError
        For a bad `mode` or `method`, arrays of different dimensionality,
        or "valid" with neither array at least as large as the other
        (SciPy's messages).

    Notes
    -----
    "auto" follows :func:`choose` (never "fft" on data holding NaN or Inf);
    the paths are described in the module docstring.  Example: see
    :func:`fastconv.signal.convolve`.
    """
    if in1.ndim == in2.ndim == 0:
        return in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("volume and kernel should have the same dimensionality")
    _sig._check_mode(mode)
    _sig._check_method(method)
    if in1.size == 0 or in2.size == 0:
        return _on_host(_sig.convolve, in1, in2, mode=mode, method=method)
    _threads.resolve_workers(workers)  # validated as on the CPU; the GPU takes no threads
    if method == "auto":
        method = choose(in1, in2, mode)
        if method == "fft" and not _all_finite(in1, in2):
            method = "direct"
    if method == "fft":
        return _convolve_fft(in1, in2, mode)
    return _convolve_direct(in1, in2, mode)


def correlate(in1, in2, mode, method, workers):
    """:func:`fastconv.signal.correlate` for CuPy arrays: :func:`convolve`
    with the reversed conjugate of `in2`.

    Parameters
    ----------
    in1, in2 : cupy.ndarray
        N-D arrays of one dimensionality, on one device.
    mode : {"full", "valid", "same"}
    method : {"auto", "direct", "fft"}
    workers : int or None
        Checked as on the CPU; not used on the GPU.

    Returns
    -------
    out : cupy.ndarray
        The cross-correlation, of SciPy's result shape and dtype.

    Raises
    ------
    ValueError
        As :func:`convolve` (SciPy's messages).
    """
    if in1.ndim == in2.ndim == 0:
        return in1 * (in2.conj() if in2.dtype.kind == "c" else in2)
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    _sig._check_mode(mode)
    _sig._check_method(method)
    if in1.size == 0 or in2.size == 0:
        return _on_host(_sig.correlate, in1, in2, mode=mode, method=method)
    return convolve(in1, _sig._reverse_conj(in2), mode, method, workers)


def fftconvolve(in1, in2, mode, axes, workers):
    """:func:`fastconv.signal.fftconvolve` for CuPy arrays (cuFFT).

    Parameters
    ----------
    in1, in2 : cupy.ndarray
        N-D arrays of one dimensionality, on one device; the axes not in
        `axes` broadcast.
    mode : {"full", "valid", "same"}
    axes : int, sequence of int or None
        The convolved axes (all when None).
    workers : int or None
        Checked as on the CPU; not used on the GPU.

    Returns
    -------
    out : cupy.ndarray
        float32/complex64 for single-precision input, else float64 or
        complex128, of SciPy's result shape.

    Raises
    ------
    ValueError
        For a bad `mode` or `axes`, or shapes that do not broadcast
        (SciPy's messages).
    """
    return _fft_family(in1, in2, mode, axes, workers, blocked=False)


def oaconvolve(in1, in2, mode, axes, workers):
    """:func:`fastconv.signal.oaconvolve` for CuPy arrays: overlap-add
    along one axis where :func:`oa_block` estimates it cheaper, else the
    whole transform of :func:`fftconvolve`.

    Parameters
    ----------
    in1, in2 : cupy.ndarray
        As for :func:`fftconvolve`.
    mode : {"full", "valid", "same"}
    axes : int, sequence of int or None
    workers : int or None
        Checked as on the CPU; not used on the GPU.

    Returns
    -------
    out : cupy.ndarray
        As :func:`fftconvolve`.

    Raises
    ------
    ValueError
        As :func:`fftconvolve`.
    """
    return _fft_family(in1, in2, mode, axes, workers, blocked=True)


def _standin(dtype, own, other):
    """A NumPy array of `dtype` with 1 or 2 elements per axis, larger where
    `own` is larger than `other`: SciPy's "valid" rule reads it as the real one."""
    return np.zeros(tuple(2 if a > b else 1 for a, b in zip(own, other)), dtype=dtype)


def _refused_2d(fn, in1, in2, mode, boundary, fillvalue):
    """bool and float16 in convolve2d/correlate2d: SciPy's loop has none.

    SciPy's own error, raised in SciPy's order of checks by running `fn`
    (SciPy's function) on small stand-ins of the same dtypes; should a
    SciPy accept them, the host copies are computed by it.
    """
    s1, s2 = in1.shape, in2.shape
    fn(_standin(in1.dtype, s1, s2), _standin(in2.dtype, s2, s1), mode, boundary, fillvalue)
    return _on_host(fn, in1, in2, mode, boundary, fillvalue)


def _host_fillvalue(fillvalue):
    """A CuPy `fillvalue` as a host value (the NumPy path's checks take it)."""
    from array_api_compat import is_cupy_array

    return fillvalue.get() if is_cupy_array(fillvalue) else fillvalue


def _two_d(in1, in2, mode, boundary, fillvalue, workers, correlation, name):
    """signal._two_d for CuPy arrays (the same checks in the same order)."""
    cp = _cp()
    if not in1.ndim == in2.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays")
    fillvalue = _host_fillvalue(fillvalue)
    scipy_fn = getattr(_sig._scipy_signal, name)
    if in1.size == 0 or in2.size == 0:
        return _on_host(getattr(_sig, name), in1, in2, mode, boundary, fillvalue)
    rt = _result_type(in1, in2)
    if not _scipy_has_loop(rt):
        return _refused_2d(scipy_fn, in1, in2, mode, boundary, fillvalue)
    swapped = _sig._swap_needed(mode, in1.shape, in2.shape)
    if swapped:
        in1, in2 = in2, in1
    _sig._check_mode(mode)
    kind = _sig._check_boundary(boundary)
    fill = _sig._fillvalue(fillvalue, rt) if kind == "fill" else 0
    _threads.resolve_workers(workers)  # validated as on the CPU; the GPU takes no threads
    if correlation:
        u = in2.conj() if in2.dtype.kind == "c" else in2
        pads = [_sig._pads(k, mode, (k - 1) // 2) for k in in2.shape]
    else:
        u = in2[::-1, ::-1]
        pads = [_sig._pads(k, mode, k // 2) for k in in2.shape]
    if kind == "fill" and fill == 0:
        out = _direct(in1, u, pads, rt)
    else:
        x = in1.astype(rt, copy=False)
        if kind == "fill":
            x = cp.pad(x, pads, mode="constant", constant_values=fill.item())
        else:
            x = cp.pad(x, pads, mode=_sig._NP_PAD[kind])
        out = _direct(x, u, [(0, 0), (0, 0)], rt)
    return out[::-1, ::-1] if swapped and correlation else out


def convolve2d(in1, in2, mode, boundary, fillvalue, workers):
    """:func:`fastconv.signal.convolve2d` for CuPy arrays.

    Parameters
    ----------
    in1, in2 : cupy.ndarray
        2-D arrays on one device.
    mode : {"full", "valid", "same"}
    boundary : {"fill", "wrap", "symm"}
        Padding by ``cupy.pad`` for "wrap" and "symm".
    fillvalue : scalar or 0-d array
    workers : int or None
        Checked as on the CPU; not used on the GPU.

    Returns
    -------
    out : cupy.ndarray
        SciPy's result dtype and shape for `mode`.

    Raises
    ------
    ValueError
        For a bad `mode`, `boundary` or `fillvalue`, arrays that are not
        2-D, or dtypes SciPy's 2-D loop refuses (SciPy's messages).
    """
    return _two_d(in1, in2, mode, boundary, fillvalue, workers, False, "convolve2d")


def correlate2d(in1, in2, mode, boundary, fillvalue, workers):
    """:func:`fastconv.signal.correlate2d` for CuPy arrays: the
    cross-correlation counterpart of :func:`convolve2d` (`in2` not flipped).

    Parameters
    ----------
    in1, in2, mode, boundary, fillvalue, workers
        As for :func:`convolve2d`.

    Returns
    -------
    out : cupy.ndarray
        SciPy's result dtype and shape for `mode`.

    Raises
    ------
    ValueError
        As :func:`convolve2d`.
    """
    return _two_d(in1, in2, mode, boundary, fillvalue, workers, True, "correlate2d")


def choose_conv_method(in1, in2, mode, measure):
    """:func:`fastconv.signal.choose_conv_method` for CuPy arrays.

    Parameters
    ----------
    in1, in2 : cupy.ndarray
        N-D arrays of one dimensionality, on one device.
    mode : {"full", "valid", "same"}
    measure : bool
        Time both methods (each call waits for CuPy's current stream)
        instead of the cost rule of :func:`choose`.

    Returns
    -------
    method : {"direct", "fft"}
        With `measure`, ``(method, {"direct": s, "fft": s})`` as SciPy.

    Raises
    ------
    ValueError
        As :func:`convolve`.
    """
    cp = _cp()
    if measure:
        def run(method):
            convolve(in1, in2, mode, method, None)
            cp.cuda.get_current_stream().synchronize()

        times = {m: _sig._timeit(lambda m=m: run(m)) for m in ("fft", "direct")}
        return ("fft" if times["fft"] < times["direct"] else "direct"), times
    if in1.ndim != in2.ndim and not (in1.ndim == 0 or in2.ndim == 0):
        raise ValueError("in1 and in2 should have the same dimensionality")
    _sig._check_mode(mode)
    return choose(in1, in2, mode)
