"""Separable and low-rank kernels as 1-D passes (``algorithm="separable"``).

A 2-D kernel ``K`` (kH x kW) of rank one is an outer product ``K = c r^T``
of a column ``c`` (kH) and a row ``r`` (kW): Gaussian, box and Sobel
kernels are.  Correlating an image with it is then correlating with ``c``
down the columns and with ``r`` along the rows, kH + kW multiply-adds per
output instead of kH * kW (separable filter kernels: R. C. Gonzalez and
R. E. Woods, *Digital Image Processing*, 4th ed., Pearson 2018, sec. 3.4).
A kernel of low rank ``R`` is a short sum of such outer products; its
singular value decomposition ``K = sum_t s_t u_t v_t^T`` gives the best
rank-``R`` approximation in the Frobenius (and spectral) norm, with error
``sqrt(sum_{t >= R} s_t**2)`` (C. Eckart and G. Young, "The approximation
of one matrix by another of lower rank", *Psychometrika* 1(3), 1936).

This module serves groups with one input and one output channel (a
one-channel image, or a depthwise layer with ``C_out == groups == C_in``)
and a kernel of depth 1.  :func:`factorize` decides, from one batched SVD
over the channels, whether the kernel of every channel has a rank low
enough for the passes to pay, and returns the factors; :func:`conv_separable`
runs the passes through the compiled direct kernel
(``fastconv._kernels._direct.conv_direct``), which treats a (kH, 1) or
(1, kW) kernel like any other, with its SIMD row code and its zero padding.

Memory: one intermediate array, (N, C, OD, OH, W) when the vertical pass
runs first or (N, C, D, H, OW) when the horizontal one does, plus for
kernels of rank >= 2 one output-sized buffer for the terms after the
first; both live in the caller's reusable workspace together with the
direct kernel's per-thread scratch (see :func:`workspace_bytes`).
"""
from __future__ import annotations

import functools
import math
import operator

import numpy as np

from ._kernels import _direct
from ._schedule import MIN_WORK_PER_THREAD, PLANE_SCRATCH_BYTES, direct_schedule

__all__ = ["TOL", "default_max_rank", "factorize", "kernel_rank", "conv_separable",
           "pass_order", "workspace_bytes"]

#: Truncation tolerance of :func:`factorize`, per dtype: the singular values
#: a factorisation drops satisfy ``sqrt(sum s[r:]**2) <= TOL * s[0]``.  The
#: dropped part ``E`` of a kernel ``K`` changes an output (a window ``X``
#: correlated with ``K``) by ``|<E, X>| <= ||E||_F ||X||_F <= TOL *
#: ||K||_F ||X||_F`` (as ``s[0] <= ||K||_F``), i.e. by at most TOL of the
#: Cauchy-Schwarz bound on the output itself.  1e-6 is about 8 float32
#: epsilons, below the rounding error of the float32 sums (the project's
#: float32 tolerance is rtol 1e-4); 1e-12 leaves float64 results within
#: the float64 tolerance (1e-10) while accepting kernels that are rank one
#: up to rounding (a Gaussian computed with ``exp``, whose second singular
#: value is ~1e-17 of the first).
TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}

#: Cost of a multiply-add of a horizontally strided pass relative to one of a
#: unit-stride pass: the row kernel has no vector code for strided rows.
STRIDED_COST = 4
#: Kernels of at most this many bytes have their factorisation memoised
#: (keyed by their bytes, CACHE_SIZE of them), so that detecting a
#: separable kernel on every call costs a hash instead of an SVD.
CACHE_MAX_BYTES = 1 << 16
CACHE_SIZE = 64
#: Alignment (bytes) of the parts of the workspace.
_ALIGN = 64


def default_max_rank(kh: int, kw: int) -> int:
    """The largest rank whose passes do less than half the direct work.

    Parameters
    ----------
    kh, kw : int
        Kernel height and width.

    Returns
    -------
    int
        The largest ``r`` with ``r * (kh + kw) < kh * kw / 2`` (0 when even
        one pair of passes does not pay: 3x3 kernels, 1-D kernels).
        15x15 gives 3, 7x7 and 5x5 give 1.
    """
    return max(0, (kh * kw - 1) // (2 * (kh + kw)))


def factorize(w5, dtype, max_rank=None):
    """Column and row factors of a low-rank kernel, or None.

    For each output channel the (kH, kW) kernel ``K_c`` is decomposed by
    SVD, ``K_c = sum_t s_t u_t v_t^T``, and truncated to the smallest rank
    ``r_c`` whose dropped singular values satisfy
    ``sqrt(sum_{t >= r_c} s_t**2) <= TOL[dtype] * s_0`` (Eckart-Young: the
    truncation is the best rank-``r_c`` approximation; see :data:`TOL` for
    the resulting bound on each output).  One batched ``numpy.linalg.svd``
    over the channels, in float64.

    Parameters
    ----------
    w5 : (C_out, 1, 1, kH, kW) array
        The weight of a problem whose every group has one input and one
        output channel (one-channel image, depthwise layer), kernel depth 1.
        Any other shape (more than one input channel per group, kernel
        depth > 1, no channels or empty kernels) is reported as not
        separable (None).
    dtype : float32 or float64 dtype
        The problem's dtype: it selects the tolerance and the dtype of the
        factors.
    max_rank : int, optional
        Largest rank accepted.  Default: :func:`default_max_rank` of the
        kernel shape, so that the passes do less than half the work of the
        direct kernel.  Kernels with ``kH == 1`` or ``kW == 1`` are rank one
        trivially (no SVD); with the default they are not worth passes.

    Returns
    -------
    [cols, rows] or None
        ``cols`` (R, C_out, kH) and ``rows`` (R, C_out, kW), C-contiguous
        arrays of `dtype`, such that ``K_c ~= sum_t outer(cols[t, c],
        rows[t, c])``; ``R = max_c r_c`` (at least 1), and channels of lower
        rank (an all-zero kernel has rank 0) have zero terms.  The factors
        of a term share its singular value evenly (``sqrt(s_t)`` each) and
        each column factor has a non-negative sum (a Gaussian or box kernel
        gives positive factors).  None when some channel needs
        a rank above `max_rank`, when `max_rank` < 1, or when the kernel is
        not finite (NaN/Inf must reach every output as the dense sum does).
        Results for kernels of at most :data:`CACHE_MAX_BYTES` are memoised
        and shared between calls: their arrays are read-only.
    """
    w5 = np.asarray(w5)
    if w5.ndim != 5:
        raise ValueError(f"w5 must be 5-D (C_out, 1, 1, kH, kW), got shape {w5.shape}")
    dtype = np.dtype(dtype)
    if dtype not in TOL:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    cout, cin_g, kd, kh, kw = w5.shape
    if cin_g != 1 or kd != 1 or cout == 0 or kh == 0 or kw == 0:
        return None
    if max_rank is None:
        max_rank = default_max_rank(kh, kw)
    else:
        max_rank = operator.index(max_rank)
    if max_rank < 1:
        return None
    k = np.ascontiguousarray(w5, dtype=np.float64).reshape(cout, kh, kw)
    if k.nbytes <= CACHE_MAX_BYTES:
        factors = _factorize_cached(k.tobytes(), k.shape, dtype.str, max_rank)
        return None if factors is None else list(factors)
    return _factorize(k, dtype, max_rank)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _factorize_cached(data, shape, dtype, max_rank):
    """factorize of a small kernel, memoised by its float64 bytes."""
    factors = _factorize(np.frombuffer(data, dtype=np.float64).reshape(shape),
                         np.dtype(dtype), max_rank)
    if factors is None:
        return None
    for f in factors:
        f.flags.writeable = False
    return tuple(factors)


def _factorize(k, dtype, max_rank):
    """The SVD and truncation of factorize: k is the (C, kH, kW) float64 kernel."""
    cout, kh, kw = k.shape
    if not np.isfinite(k).all():
        return None
    if kh == 1 or kw == 1:
        # A 1-D kernel is its own factor; the other factor is [1].
        one = np.ones((1, cout, 1), dtype=dtype)
        flat = k.reshape(1, cout, kh * kw).astype(dtype)
        return [flat, one] if kw == 1 else [one, flat]

    u, s, vt = np.linalg.svd(k)            # (C, kH, m), (C, m), (C, m, kW)
    ranks = _ranks(s, dtype)
    rank = int(ranks.max())
    if rank > max_rank:
        return None
    rank = max(rank, 1)
    u = u[:, :, :rank]
    # Split each singular value evenly between the factors, make each column
    # factor sum to >= 0, and zero the terms a channel does not need.
    scale = np.sqrt(s[:, :rank])
    scale[u.sum(axis=1) < 0] *= -1.0
    if ranks.min() < rank:
        scale[np.arange(rank) >= ranks[:, None]] = 0.0
    cols = (u * scale[:, None, :]).transpose(2, 0, 1)                 # (R, C, kH)
    rows = (vt[:, :rank, :] * scale[:, :, None]).transpose(1, 0, 2)   # (R, C, kW)
    return [np.ascontiguousarray(cols, dtype=dtype), np.ascontiguousarray(rows, dtype=dtype)]


def _ranks(s, dtype):
    """Per-channel truncation ranks from the (C, m) singular values."""
    # Rank r is enough iff sum_{t >= r} s_t**2 <= (TOL s_0)**2; these tails
    # decrease with r, so the rank is m minus the number of small tails
    # (summed from the small end: no cancellation).
    tails = np.cumsum(s[:, ::-1] ** 2, axis=1)
    return s.shape[1] - np.count_nonzero(tails <= (TOL[dtype] * s[:, :1]) ** 2, axis=1)


def kernel_rank(w5, dtype):
    """The rank :func:`factorize` would need for `w5`, for error messages.

    Parameters
    ----------
    w5 : (C_out, 1, 1, kH, kW) array
    dtype : float32 or float64 dtype
        Selects the tolerance :data:`TOL`.

    Returns
    -------
    int or None
        The largest truncation rank over the channels (1 for a 1-D kernel,
        0 for an all-zero one), or None where :func:`factorize` never
        serves the weight (its shape, or NaN/Inf values).
    """
    w5 = np.asarray(w5)
    dtype = np.dtype(dtype)
    if w5.ndim != 5 or dtype not in TOL:
        return None
    cout, cin_g, kd, kh, kw = w5.shape
    if cin_g != 1 or kd != 1 or 0 in (cout, kh, kw):
        return None
    k = np.asarray(w5, dtype=np.float64).reshape(cout, kh, kw)
    if not np.isfinite(k).all():
        return None
    if kh == 1 or kw == 1:
        return int(k.any())
    return int(_ranks(np.linalg.svd(k, compute_uv=False), dtype).max())


def pass_order(x_shape, out_shape, kh, kw, stride) -> str:
    """Which 1-D pass runs first: ``"vertical"`` or ``"horizontal"``.

    The first pass computes the intermediate at full resolution along the
    dimension the second pass reduces: vertical first costs
    ``kH*OD*OH*W + kW*OD*OH*OW`` multiply-adds per channel, horizontal
    first ``kW*D*H*OW + kH*OD*OH*OW``.  A vertical stride therefore favours
    the vertical pass first (the horizontal pass then runs on OH rows
    only), a horizontal stride the horizontal pass first.  Horizontally
    strided passes have no SIMD code and are weighted by
    :data:`STRIDED_COST`.  Ties (square kernels at stride 1) go to vertical
    first; on the 512x512 15x15 Gaussian both orders measured the same
    (0.21 ms, 2 threads, float32).

    Parameters
    ----------
    x_shape : (N, C, D, H, W) tuple
    out_shape : (N, C, OD, OH, OW) tuple
    kh, kw : int
        Kernel height and width.
    stride : (sd, sh, sw) tuple

    Returns
    -------
    str
    """
    _, _, d, h, w = x_shape
    _, _, od, oh, ow = out_shape
    hcost = kw * (STRIDED_COST if stride[2] != 1 else 1)
    vertical_first = kh * od * oh * w + hcost * od * oh * ow
    horizontal_first = hcost * d * h * ow + kh * od * oh * ow
    return "vertical" if vertical_first <= horizontal_first else "horizontal"


def _intermediate_shape(x_shape, out_shape, order):
    n, c, d, h, w = x_shape
    od, oh, ow = out_shape[2:]
    return (n, c, od, oh, w) if order == "vertical" else (n, c, d, h, ow)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def workspace_bytes(x_shape, out_shape, kh, kw, rank, stride, itemsize, nthreads) -> int:
    """Bytes of workspace :func:`conv_separable` asks `workspace_fn` for.

    The direct kernel's per-thread scratch (``nthreads`` *
    :data:`PLANE_SCRATCH_BYTES`), the intermediate (see :func:`pass_order`)
    and, for rank >= 2, an output-sized buffer; each part 64-byte aligned
    within the buffer.  1-D kernels (kH == 1 or kW == 1) need the scratch
    only.
    """
    nbytes = _aligned(max(1, nthreads) * PLANE_SCRATCH_BYTES)
    if kh == 1 or kw == 1:
        return nbytes
    order = pass_order(x_shape, out_shape, kh, kw, stride)
    nbytes += _aligned(math.prod(_intermediate_shape(x_shape, out_shape, order)) * itemsize)
    if rank > 1:
        nbytes += _aligned(math.prod(out_shape) * itemsize)
    return nbytes


def _pass(src, w5, bias, dst, stride, pad, dilation, groups, nthreads, scratch):
    """One direct-kernel call: dst = correlate(src, w5) + bias."""
    taps = w5.shape[3] * w5.shape[4]
    nthreads = max(1, min(nthreads, dst.size * taps // MIN_WORK_PER_THREAD))
    n, c, od, oh, ow = dst.shape
    run, colw = direct_schedule(n * c * od, oh, ow, nthreads)
    _direct.conv_direct(src, w5, bias, dst, stride, pad, dilation, groups, nthreads, run,
                        scratch, colw)


def conv_separable(x5, cols, rows, bias, out5, stride, pad_before, dilation, groups,
                   nthreads, workspace_fn=None):
    """Correlate with a sum of separable kernels as 1-D passes of the direct kernel.

    Computes ``out5 = correlate(x5, sum_t outer(cols[t], rows[t])) + bias``
    with ``torch.nn.functional.conv2d``/``conv3d`` semantics (groups with
    one input and one output channel), as, for each rank term ``t``, a
    vertical pass with the (kH, 1) kernel ``cols[t]`` and a horizontal pass
    with the (1, kW) kernel ``rows[t]`` (Gonzalez & Woods; see the module
    docstring), each a call of the compiled direct kernel.  The vertical
    pass carries the depth and vertical stride, dilation and padding, the
    horizontal pass the horizontal ones; the zero padding of each
    dimension stays implicit (the direct kernel skips it), so the result
    equals the dense correlation with the rank-R kernel up to float
    rounding.  The pass order is chosen by :func:`pass_order`.

    Parameters
    ----------
    x5 : (N, C, D, H, W) C-contiguous ndarray of float32 or float64
        Input, non-zero padding modes already applied (as
        ``CPUBackend._layout`` does); D is 1 for conv2d (a depth > 1 with a
        kernel of depth 1 works too).
    cols, rows : (R, C, kH) and (R, C, kW) ndarrays
        Factors from :func:`factorize` (converted to x5's dtype here if
        needed).
    bias : (C,) ndarray, or an empty array, or None
    out5 : (N, C, OD, OH, OW) C-contiguous writeable ndarray of x5's dtype
        Receives the result; it must not overlap x5.  Output sizes follow
        PyTorch's formula from the arguments below.
    stride, pad_before, dilation : 3-tuples of int
        (depth, height, width) stride, leading zero padding (trailing
        padding is implied by the output size) and dilation.
    groups : int
        C (== C_out): 1 for a one-channel image, C for a depthwise layer.
    nthreads : int
        OpenMP threads for each pass (fewer for small passes).
    workspace_fn : callable, optional
        ``workspace_fn(nbytes, dtype)`` returns a 1-D C-contiguous array of
        `dtype` holding at least ``nbytes`` bytes, shared with no argument
        and free for this call (``fastconv._cpu.workspace``: a per-thread
        buffer reused between calls, so no fresh pages are faulted in).
        Called once, with :func:`workspace_bytes`.  Default: a new array.

    Returns
    -------
    out5 : ndarray
        The array passed as `out5`.

    Notes
    -----
    Work per channel, vertical first: ``kH*OD*OH*W + kW*OD*OH*OW``
    multiply-adds per rank term, against ``kH*kW*OD*OH*OW`` for the direct
    kernel.  Memory beyond `out5`: the intermediate, (N, C, OD, OH, W)
    vertical first or (N, C, D, H, OW) horizontal first, reused by every
    rank term; for R >= 2 one output-sized buffer per call for the terms
    after the first, which are added into `out5`; and the direct kernel's
    per-thread scratch.  A 1-D kernel (kH == 1 or kW == 1) runs as a single
    direct call with the summed kernel.

    Rounding: the factors of a term share its singular value, so for a
    rank-1 kernel ``|cols| (outer) |rows| == |K|`` and the two passes'
    float errors stay within the usual bound relative to ``sum |K||x|``.
    """
    if x5.ndim != 5 or out5.ndim != 5:
        raise ValueError("x5 and out5 must be 5-D (N, C, D, H, W)")
    dt = x5.dtype
    if dt not in TOL or out5.dtype != dt:
        raise TypeError(f"x5 and out5 must share a float32/float64 dtype, got {dt}, {out5.dtype}")
    n, c, d, h, w = x5.shape
    cols = np.ascontiguousarray(cols, dtype=dt)
    rows = np.ascontiguousarray(rows, dtype=dt)
    if cols.ndim != 3 or rows.ndim != 3 or cols.shape[:2] != rows.shape[:2]:
        raise ValueError(f"cols (R, C, kH) and rows (R, C, kW) do not match: "
                         f"{cols.shape}, {rows.shape}")
    rank, cw, kh = cols.shape
    kw = rows.shape[2]
    if not (groups == c == cw == out5.shape[1]) or out5.shape[0] != n:
        raise ValueError(
            f"conv_separable serves groups of one input and one output channel: x5 "
            f"{x5.shape}, factors for {cw} channels, out5 {out5.shape}, groups={groups}")
    if rank < 1 or kh < 1 or kw < 1:
        raise ValueError(f"empty factors: cols {cols.shape}, rows {rows.shape}")
    b = np.empty(0, dt) if bias is None else np.ascontiguousarray(bias, dtype=dt).reshape(-1)
    if b.size not in (0, c):
        raise ValueError(f"bias must have {c} values or none, got {b.size}")
    if out5.size == 0:
        return out5
    nthreads = max(1, int(nthreads))
    sd, sh, sw = stride
    pd, ph, pw = pad_before
    dd, dh, dw = dilation
    nbytes = workspace_bytes(x5.shape, out5.shape, kh, kw, rank, stride, dt.itemsize, nthreads)
    buf = np.empty(nbytes // dt.itemsize, dt) if workspace_fn is None else workspace_fn(nbytes, dt)
    step = _ALIGN // dt.itemsize
    nscratch = _aligned(nthreads * PLANE_SCRATCH_BYTES) // dt.itemsize
    scratch = buf[:nscratch]

    if kh == 1 or kw == 1:
        # One pass does it all: the summed 1-D kernel with the full geometry.
        k = np.einsum("tch,tcw->chw", cols, rows).reshape(c, 1, 1, kh, kw)
        _pass(x5, np.ascontiguousarray(k, dtype=dt), b, out5, tuple(stride),
              tuple(pad_before), tuple(dilation), groups, nthreads, scratch)
        return out5

    order = pass_order(x5.shape, out5.shape, kh, kw, stride)
    ishape = _intermediate_shape(x5.shape, out5.shape, order)
    isize = math.prod(ishape)
    mid = buf[nscratch:nscratch + isize].reshape(ishape)
    term = None
    if rank > 1:
        start = nscratch + -(-isize // step) * step
        term = buf[start:start + out5.size].reshape(out5.shape)
    empty = np.empty(0, dt)
    vgeo = ((sd, sh, 1), (pd, ph, 0), (dd, dh, 1))
    hgeo = ((1, 1, sw), (0, 0, pw), (1, 1, dw))
    for t in range(rank):
        vw = cols[t].reshape(c, 1, 1, kh, 1)
        hw = rows[t].reshape(c, 1, 1, 1, kw)
        dst = out5 if t == 0 else term
        bt = b if t == 0 else empty
        if order == "vertical":
            _pass(x5, vw, empty, mid, *vgeo, groups, nthreads, scratch)
            _pass(mid, hw, bt, dst, *hgeo, groups, nthreads, scratch)
        else:
            _pass(x5, hw, empty, mid, *hgeo, groups, nthreads, scratch)
            _pass(mid, vw, bt, dst, *vgeo, groups, nthreads, scratch)
        if t > 0:
            np.add(out5, term, out=out5)
    return out5
