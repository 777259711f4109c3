"""FFT convolution on the CPU: scipy.fft (pocketfft) transforms.

Three entry points, all leaf code behind a front end that has already
validated every argument:

``convolve``
    Linear convolution of two N-D arrays over some axes by one transform of
    each operand (SciPy's ``fftconvolve`` semantics: the other axes
    broadcast), cropped to "full", "same" or "valid".
``oaconvolve``
    The same result by overlap-add: for a 1-D convolution (one convolved
    axis, any batch) the longer operand is cut into blocks when that is
    cheaper, every block is transformed at a short length (the blocks in
    parallel), and the block results are added back with their overlaps.
``conv_nn``
    The ``algorithm="fft"`` path of conv1d/2d/3d: cross-correlation of an
    (N, C_in, D, H, W) batch with (C_out, C_in/groups, kD, kH, kW) filters,
    channels summed in the frequency domain, dilation by zero-inserting the
    filter, stride by sampling the stride-1 result.

Transform lengths
-----------------
A circular convolution of length ``L`` equals the linear one at index ``i``
when no term wraps onto it: with full length ``F = n1 + n2 - 1`` and wanted
outputs ``[start, stop)``, that holds for ``L >= max(stop, F - start)``.
So "valid" needs only ``L >= n1`` and "same" ``L >= n1 + n2 // 2``, not
``n1 + n2 - 1``; every length is then rounded up with
``scipy.fft.next_fast_len`` (real transforms for real data).  Real inputs use
``rfftn``/``irfftn``; float32 stays float32 (complex64 spectra).

Accuracy: the FFT's error is normwise (bounded relative to the size of the
whole result, not of each output), see ``fastconv.signal`` for the figures.
"""
from __future__ import annotations

import functools
import math

from typing import NamedTuple

import numpy as np
import scipy.fft as sfft

from . import _threads

__all__ = ["convolve", "oaconvolve", "nn_filters", "conv_nn", "mode_window", "fft_length",
           "oa_block"]


def mode_window(n1: int, n2: int, mode: str) -> tuple:
    """Where a `mode` output sits inside the full convolution, along one axis.

    Parameters
    ----------
    n1, n2 : int
        Operand lengths (``n1 >= n2`` in "valid" mode).
    mode : {"full", "same", "valid"}

    Returns
    -------
    start, length : int
    """
    if mode == "full":
        return 0, n1 + n2 - 1
    if mode == "same":
        return (n2 - 1) // 2, n1
    return n2 - 1, n1 - n2 + 1  # "valid", n1 >= n2 (the front end swapped)


def fft_length(n1: int, n2: int, mode: str, real: bool) -> int:
    """Shortest fast transform length with no wrap-around onto `mode`'s outputs.

    Parameters
    ----------
    n1, n2 : int
        Operand lengths along the axis.
    mode : {"full", "same", "valid"}
    real : bool
        Real transforms (``scipy.fft.next_fast_len(..., real=True)``).

    Returns
    -------
    length : int
    """
    start, length = mode_window(n1, n2, mode)
    need = max(start + length, n1 + n2 - 1 - start, 1)
    return sfft.next_fast_len(need, real=real)


def _spectra(a, b, axes, lengths, workers):
    """Product of the spectra of `a` and `b` over `axes` (broadcast elsewhere)."""
    real = not (np.iscomplexobj(a) or np.iscomplexobj(b))
    fwd = sfft.rfftn if real else sfft.fftn
    fa = fwd(a, lengths, axes=axes, workers=workers)
    fb = fwd(b, lengths, axes=axes, workers=workers)
    if (fa.shape == np.broadcast_shapes(fa.shape, fb.shape)
            and fa.dtype == np.result_type(fa, fb)):
        fa *= fb
    else:
        fa = fa * fb
    return fa, real


def _inverse(spec, axes, lengths, real, workers):
    inv = sfft.irfftn if real else sfft.ifftn
    return inv(spec, lengths, axes=axes, workers=workers)


def _as_float(a):
    """Integer and bool operands are transformed in float64, as SciPy does."""
    return a.astype(np.float64) if a.dtype.kind in "biu" else a


def convolve(a, b, axes, mode, workers):
    """Linear convolution of `a` and `b` over `axes` by one FFT of each.

    `a` and `b` have the same ndim; on axes not in `axes` their lengths are
    equal or 1 (broadcast); in "valid" mode ``a.shape[i] >= b.shape[i]`` on
    every axis in `axes`.  Returns a new C-contiguous array.
    """
    a, b = _as_float(a), _as_float(b)
    if not axes:
        return _crop(a * b, a.shape, b.shape, axes, mode)
    real = not (np.iscomplexobj(a) or np.iscomplexobj(b))
    lengths = [fft_length(a.shape[i], b.shape[i], mode, real) for i in axes]
    spec, real = _spectra(a, b, axes, lengths, workers)
    ret = _inverse(spec, axes, lengths, real, workers)
    return _crop(ret, a.shape, b.shape, axes, mode)


def _crop(ret, s1, s2, axes, mode):
    """The `mode` part of a full result; like SciPy, "same" also centres
    broadcast (non-convolved) axes on `s1`'s length."""
    index = [slice(None)] * ret.ndim
    for i in range(ret.ndim):
        if i in axes:
            start, length = mode_window(s1[i], s2[i], mode)
        elif mode == "same":
            start, length = (ret.shape[i] - s1[i]) // 2, s1[i]
        else:
            continue
        index[i] = slice(start, start + length)
    return np.ascontiguousarray(ret[tuple(index)])


def _fft_cost(n: int) -> float:
    return n * math.log2(max(n, 2))


@functools.lru_cache(maxsize=1024)
def oa_block(n1: int, n2: int, real: bool = True, threads: int = 1, batch: int = 1):
    """Transform length for overlap-add along one axis, or None for no blocks.

    Blocks of ``B = L - n2 + 1`` samples of the long operand are each
    transformed at length ``L`` (a fast length, ``L >= 2 * n2`` so that an
    overlap never spans more than the next block).  pocketfft runs the
    transforms of a batch on parallel threads but one transform on one
    thread, so the estimated time of a layout is its rounds of parallel
    transforms times ``L log2 L``: ``ceil(blocks * batch / threads)``
    rounds for blocks, ``ceil(batch / threads)`` for one whole transform
    per signal.  The cheapest block length wins; None when the whole
    transform is cheapest.

    Only 1-D convolutions (one convolved axis, any batch) are cut into
    blocks: for 2-D, measured here, whole transforms were faster at every
    block size (512x512 with a 15x15 kernel: 2.4 ms whole, 3.8-13 ms in
    blocks of 64-256; 2048x2048: 76 ms whole, 107-135 ms in blocks).
    """
    full = n1 + n2 - 1
    whole = sfft.next_fast_len(full, real=real)
    best, best_cost = None, -(-batch // threads) * _fft_cost(whole)
    m = 2 * n2
    while m < full:
        length = sfft.next_fast_len(m, real=real)
        step = length - n2 + 1
        cost = -(-(-(-n1 // step) * batch) // threads) * _fft_cost(length)
        if cost < best_cost:
            best, best_cost = length, cost
        m = int(m * 1.15) + 1
    return best


def _overlap_add(y, axis, step, n_full):
    """Add the blocks on axes (axis, axis+1) = (blocks, L) back into one axis."""
    y = np.moveaxis(y, (axis, axis + 1), (-2, -1))
    nb, length = y.shape[-2], y.shape[-1]
    tail = length - step
    out = np.zeros(y.shape[:-2] + ((nb + 1) * step,), dtype=y.dtype)
    out[..., : nb * step] = y[..., :step].reshape(y.shape[:-2] + (nb * step,))
    if tail:
        shifted = out[..., step:].reshape(y.shape[:-2] + (nb, step))
        shifted[..., :tail] += y[..., step:]
    return np.moveaxis(out[..., :n_full], -1, axis)


def oaconvolve(a, b, axes, mode, workers):
    """Linear convolution of `a` and `b` over `axes` by overlap-add.

    Same contract as :func:`convolve`.  `a` is cut into blocks along the
    convolved axis when :func:`oa_block` finds it pays; otherwise (several
    convolved axes, or no gain) this is :func:`convolve`.
    """
    a, b = _as_float(a), _as_float(b)
    if not axes:
        return _crop(a * b, a.shape, b.shape, axes, mode)
    real = not (np.iscomplexobj(a) or np.iscomplexobj(b))
    s1, s2 = a.shape, b.shape
    plan = []  # (axis, L, step) for the blocked axis
    if len(axes) == 1 and s2[axes[0]] <= s1[axes[0]]:
        i = axes[0]
        batch = math.prod(max(p, q) for j, (p, q) in enumerate(zip(s1, s2)) if j != i)
        length = oa_block(s1[i], s2[i], real, workers, batch)
        if length is not None:
            plan.append((i, length, length - s2[i] + 1))
    if not plan:
        return convolve(a, b, axes, mode, workers)
    blocked = {i: (length, step) for i, length, step in plan}
    # Cut `a` into blocks: axis i becomes (blocks_i, step_i); `b` gets a
    # length-1 axis in the blocks' place so the spectra broadcast.
    pad = [(0, 0)] * a.ndim
    shape_a, shape_b, fft_axes, lengths = [], [], [], []
    for i in range(a.ndim):
        if i in blocked:
            length, step = blocked[i]
            nb = -(-s1[i] // step)
            pad[i] = (0, nb * step - s1[i])
            shape_a += [nb, step]
            shape_b += [1, s2[i]]
            fft_axes.append(len(shape_a) - 1)
            lengths.append(length)
        else:
            shape_a.append(s1[i])
            shape_b.append(s2[i])
            if i in axes:
                fft_axes.append(len(shape_a) - 1)
                lengths.append(sfft.next_fast_len(s1[i] + s2[i] - 1, real=real))
    a_blocks = np.pad(a, pad).reshape(shape_a)
    spec, real = _spectra(a_blocks, b.reshape(shape_b), fft_axes, lengths, workers)
    y = _inverse(spec, fft_axes, lengths, real, workers)
    # Undo the blocking from the last axis back (positions stay valid).
    pos = len(shape_a)
    for i in reversed(range(a.ndim)):
        if i in blocked:
            pos -= 2
            y = _overlap_add(y, pos, blocked[i][1], s1[i] + s2[i] - 1)
        else:
            pos -= 1
            if i in axes:
                y = y[(slice(None),) * pos + (slice(0, s1[i] + s2[i] - 1),)]
    return _crop(y, s1, s2, axes, mode)


#: Filters (C_out * C_in/g) from which nn_filters transforms the spatial axes
#: in front of the channel axes rather than behind them (see there).
LEADING_AXES_PAIRS = 16


class NNFilters(NamedTuple):
    """Filter spectra of the FFT path of conv1d/2d/3d (kept by plans).

    Attributes
    ----------
    lengths : tuple of int
        Transform length per spatial axis.
    reach : tuple of int
        ``(k - 1) * dilation + 1`` per spatial axis.
    extent : tuple of int
        Padded input extent the outputs read, per axis.
    wf : (F0*F1*F2, C_out, C_in/groups) complex ndarray
        ``rfftn`` of the dilated, flipped filters, frequency-major: each
        frequency's (C_out, C_in/g) matrix is contiguous, so conv_nn's
        per-frequency products go to BLAS.
    """

    lengths: tuple  # transform length per spatial axis
    reach: tuple    # (k - 1) * dilation + 1 per spatial axis
    extent: tuple   # padded input extent the outputs read, per axis
    wf: np.ndarray  # rfftn of the dilated, flipped filters: (F, C_out, C_in/g)


def nn_filters(w5, out_size, stride, dilation, nthreads) -> NNFilters:
    """Transform the (C_out, C_in/g, kD, kH, kW) filters for outputs of
    `out_size` (3 spatial sizes) at `stride` and `dilation`."""
    reach = tuple((k - 1) * d + 1 for k, d in zip(w5.shape[2:], dilation))
    extent = tuple((o - 1) * s + r for o, s, r in zip(out_size, stride, reach))
    lengths = tuple(sfft.next_fast_len(e, real=True) for e in extent)
    wd = np.zeros(w5.shape[:2] + reach, dtype=w5.dtype)
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w5
    wd = wd[:, :, ::-1, ::-1, ::-1]
    pairs = w5.shape[0] * w5.shape[1]
    with _threads.blas_limit(nthreads):
        if pairs >= LEADING_AXES_PAIRS:
            # Spatial axes first: the transform comes out frequency-major
            # (256 -> 128 channels of 2x2 filters for 18x18 transforms: 46
            # ms, against 82 ms plus 38 ms to transpose the spectra).
            wd = np.ascontiguousarray(wd.transpose(2, 3, 4, 0, 1))
            wf = sfft.rfftn(wd, lengths, axes=(0, 1, 2), workers=nthreads)
        else:
            # Few filters: pocketfft runs strided axes line by line (a
            # 63x63 filter for 574x574 transforms took 1.5x as long).
            wf = sfft.rfftn(wd, lengths, axes=(2, 3, 4), workers=nthreads)
            wf = np.ascontiguousarray(wf.reshape(pairs, -1).T)
    return NNFilters(lengths, reach, extent, wf.reshape((-1,) + w5.shape[:2]))


def conv_nn(x5, filters: NNFilters, bias, out5, stride, pad_before, groups, nthreads):
    """Batched, grouped cross-correlation by FFT into `out5` (conv1d/2d/3d).

    `x5` is (N, C_in, D, H, W) with any non-zero padding already applied,
    `filters` from :func:`nn_filters`, `out5` (N, C_out, oD, oH, oW);
    `pad_before` is the leading zero padding of each spatial axis (the
    trailing padding follows from the output size).  Channels are summed in
    the frequency domain as one batched matrix product per frequency.
    """
    n = x5.shape[0]
    wf = filters.wf
    c_out, cin_g = wf.shape[1:]
    cout_g = c_out // groups
    osz = out5.shape[2:]
    # x cropped/zero-padded to the padded extent the outputs read.
    index, pads = [slice(None), slice(None)], [(0, 0), (0, 0)]
    for size, before, ext in zip(x5.shape[2:], pad_before, filters.extent):
        stop = max(0, min(size, ext - before))
        index.append(slice(0, stop))
        pads.append((min(before, ext), max(0, ext - before - stop)))
    xp = np.pad(x5[tuple(index)], pads)
    axes = (2, 3, 4)
    lengths = filters.lengths
    with _threads.blas_limit(nthreads):
        xf = sfft.rfftn(xp, lengths, axes=axes, workers=nthreads)
        fshape = xf.shape[2:]
        nfreq = math.prod(fshape)
        yf = np.empty((n, c_out) + fshape, dtype=xf.dtype)
        for g in range(groups):
            xg = xf[:, g * cin_g:(g + 1) * cin_g].reshape(n, cin_g, nfreq)
            wg = wf[:, g * cout_g:(g + 1) * cout_g]  # (F, O, C)
            if cin_g == 1:
                yg = xg * wg[:, :, 0].T
            else:
                # (F, N, C) @ (F, C, O) -> (F, N, O): one small GEMM per
                # frequency.  Every matrix is contiguous in one of its axes,
                # so NumPy hands each to BLAS; with the spectra
                # channel-major it ran its own loop, 30x slower (0.26
                # against 0.008 s for 256 -> 128 channels of 2x2 filters).
                xt = np.ascontiguousarray(xg.transpose(2, 0, 1))
                yg = np.matmul(xt, wg.transpose(0, 2, 1)).transpose(1, 2, 0)
            yf[:, g * cout_g:(g + 1) * cout_g] = yg.reshape((n, cout_g) + fshape)
        y = sfft.irfftn(yf, lengths, axes=axes, workers=nthreads)
    sample = tuple(slice(r - 1, r - 1 + (o - 1) * s + 1, s)
                   for r, o, s in zip(filters.reach, osz, stride))
    result = y[(slice(None), slice(None)) + sample]
    if bias.shape[0]:
        result = result + bias.reshape(1, -1, 1, 1, 1)
    out5[...] = result
