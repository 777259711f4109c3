"""CuPy backend: the adjoint-side computations on the GPU.

The functions of :mod:`fastconv._cpu_adjoint` for CuPy arrays
(``CuPyBackend.adjoint``), driven for problems the front end
(fastconv._transpose) has already validated and planned.  Results stay on
the device of the input, computed on CuPy's current stream.

Transposed convolution by GEMM + col2im
    ``W^T x`` per group with ``cupy.matmul`` (cuBLAS batched GEMM over the
    groups): the input is laid out once as (G, C_in/G, N*P), the input
    pixels of all images side by side, so one GEMM per tile covers every
    image.  Tiles are ranges of those N*P columns (and, when even a narrow
    tile would exceed TILE_BYTES, blocks of output channels); each tile's
    columns (G, channels * kernel volume, tile) are added into the output
    by ``fc_col2im`` of ``col2im.cu``, which gathers, for every output
    element of the box the tile can reach, the column entries landing on
    it (no atomics: deterministic).
Weight gradient
    ``sum_n gy_n im2col(x_n)^T`` per group: ``fc_im2col`` of ``im2col.cu``
    writes the columns of a tile of output positions of all images
    (G, K, N*tile), and one batched GEMM per tile multiplies the output
    gradient (G, C_out/G, N*tile) by their transpose into the (G, C_out/G,
    K) gradient.  Tiles hold at most TILE_BYTES of columns.
im2col / col2im (torch's unfold / fold)
    ``fc_im2col`` with the images as the groups of one image, which makes
    its (G, K, 1, L) layout the (N, C*kH*kW, L) result; ``fc_col2im`` with
    the blocks' own strides.

No sub-pixel kernels: the front end runs "auto" and forced algorithms
other than "im2col" through the polyphase plan on the backend's
convolutions.  32-bit cuBLAS sizes bound the GEMMs (gemm_reason,
weight_grad_reason).  `nthreads` arguments are part of the protocol and
not used on the GPU.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _cuda
from ._cpu import _geometry, _lift3
from ._cpu_adjoint import GEMM_MIN_CHANNELS

__all__ = ["col2im", "conv_transpose_gemm", "conv_weight_grad", "gemm_reason", "im2col",
           "transpose_algorithm", "weight_grad_reason"]

#: Bytes of columns per tile of the GEMM paths (the same budget as the
#: forward im2col path's _cuda.IM2COL_TILE_BYTES).
TILE_BYTES = 64 << 20
#: Narrowest GEMM + col2im tile (columns = input pixels) before the output
#: channels are split into blocks instead: the GEMM's N dimension.
MIN_TILE_COLUMNS = 1024
_INT_MAX = 2**31 - 1


def _cupy():
    return _cuda._cupy()


def _cublas_limit(*dims):
    """Why 32-bit cuBLAS cannot take matrices with these dimensions, or None."""
    if max(dims) > _INT_MAX:
        return (f"it calls 32-bit cuBLAS, which cannot multiply matrices with "
                f"{max(dims)} rows or columns")
    return None


def _launch(filename, kernel, dtype, total, args):
    """One grid-stride launch of `total` work items on the current stream."""
    grid = (max(1, min(-(-total // _cuda.BLOCK), _cuda.MAX_GRID_X)), 1, 1)
    _cuda.kernel_function(filename, kernel, dtype)(grid, (_cuda.BLOCK, 1, 1), args)


# --------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------

def transpose_algorithm(problem) -> str:
    """The path "auto" takes for a transposed convolution on the GPU.

    Parameters
    ----------
    problem : ConvProblem
        The transposed convolution (in_* are its input).

    Returns
    -------
    path : {"im2col", "polyphase"}
        GEMM + col2im for strided problems with at least GEMM_MIN_CHANNELS
        input channels per group (one batched GEMM instead of prod(stride)
        small convolutions), the polyphase plan otherwise.  The CPU's
        threshold, not measured on a GPU.
    """
    if (any(s > 1 for s in problem.stride)
            and problem.in_channels // problem.groups >= GEMM_MIN_CHANNELS
            and gemm_reason(problem) is None):
        return "im2col"
    return "polyphase"


def gemm_reason(problem):
    """Why GEMM + col2im cannot serve the transposed convolution `problem`
    (in_* are the transposed convolution's input), or None.

    Its GEMMs multiply (C_out/G * kernel volume, C_in/G) blocks of W^T by
    tiles of at most TILE_BYTES of columns, so only those two dimensions
    can exceed cuBLAS's 32-bit sizes.
    """
    cin_g = problem.in_channels // problem.groups
    rows = problem.out_channels // problem.groups * math.prod(problem.kernel_size)
    return _cublas_limit(cin_g, rows)


class _Tiles(NamedTuple):
    """GEMM + col2im schedule: output channels per block, columns per tile."""

    channels: int
    columns: int


def gemm_tiles(problem) -> _Tiles:
    """Tiles of GEMM + col2im holding at most TILE_BYTES of columns.

    All output channels of a group per tile while that leaves tiles of
    MIN_TILE_COLUMNS columns (or all N*P of them); otherwise blocks of
    output channels with tiles that wide.  A single column of one channel
    is the floor (a larger kernel volume exceeds the budget).
    """
    g = problem.groups
    cout_g = problem.out_channels // g
    kv = math.prod(problem.kernel_size)
    total = problem.batch * math.prod(problem.in_size)
    per_channel = g * kv * problem.dtype.itemsize  # bytes of one column, one channel
    wanted = min(total, MIN_TILE_COLUMNS)
    channels = min(cout_g, max(1, TILE_BYTES // (per_channel * wanted)))
    columns = min(total, max(1, TILE_BYTES // (per_channel * channels)))
    return _Tiles(channels, columns)


def reach_box(q0, q1, pixels, in3, out3, kernel3, stride3, pad3, dil3):
    """The output elements columns ``q0 .. q1-1`` can reach, or None.

    Column q is input pixel ``q % pixels`` of image ``q // pixels`` (3-D
    lifted sizes `in3`); input index i reaches outputs ``i*s - pad + k*d``.
    Returns ``(n0, nn, ((z0, zn), (y0, yn), (x0, xn)))``: images
    [n0, n0+nn) and per lifted spatial axis an output range, narrowed along
    an axis while the tile's pixels share their index on every outer axis
    (else the whole axis).  A superset of what is reached: fc_col2im skips
    columns outside the tile.
    """
    n0, n1 = q0 // pixels, (q1 - 1) // pixels
    if n0 != n1:
        return n0, n1 - n0 + 1, tuple((0, o) for o in out3)
    first, last = q0 - n0 * pixels, q1 - 1 - n0 * pixels
    ranges, narrow = [], True
    for axis, (size, out, k, s, p, d) in enumerate(zip(in3, out3, kernel3, stride3, pad3,
                                                        dil3)):
        inner = math.prod(in3[axis + 1:])
        i0, i1 = first // inner % size, last // inner % size
        if not narrow:
            ranges.append((0, out))
            continue
        lo = max(0, i0 * s - p)
        hi = min(out - 1, i1 * s - p + (k - 1) * d)
        if hi < lo:
            return None
        ranges.append((lo, hi - lo + 1))
        narrow = i0 == i1
    return n0, 1, tuple(ranges)


def _col2im(cols, y5, groups, channels_per_group, kernel3, grid3, stride3, pad3, dil3,
            col_strides, q_range, channel_block, box, accumulate):
    """Launch fc_col2im: the columns `cols` summed into the (N, C, OD, OH, OW)
    C-contiguous array `y5` (see col2im.cu for the layout arguments)."""
    n0, nn, spatial = box
    c0, cb = channel_block
    total = nn * groups * cb * math.prod(extent for _, extent in spatial)
    if total == 0:
        return
    args = ((cols, y5) + _cuda._i64(
        y5.shape[1], *y5.shape[2:], groups, channels_per_group, *kernel3, *grid3,
        *stride3, *pad3, *dil3, *col_strides, *q_range, c0, cb, n0, nn,
        *(v for rng in spatial for v in rng)) + (np.int32(accumulate),))
    _launch("col2im.cu", "fc_col2im", y5.dtype, total, args)


def conv_transpose_gemm(problem, x, weight, bias, target, nthreads):
    """GEMM + col2im of the transposed convolution `problem` into the
    C-contiguous (N, C_out, *out_size) CuPy array `target`.

    The bias (or zero) is written first; every tile then adds its columns.
    """
    cp = _cupy()
    p = problem
    nd, g, dt = p.nd, p.groups, p.dtype
    cin_g, cout_g = p.in_channels // g, p.out_channels // g
    kernel3, in3 = _lift3(p.kernel_size, nd, 1), _lift3(p.in_size, nd, 1)
    out3, stride3 = _lift3(p.out_size, nd, 1), _lift3(p.stride, nd, 1)
    pad3 = _lift3((pb for pb, _ in p.padding), nd, 0)
    dil3 = _lift3(p.dilation, nd, 1)
    kv, pixels = math.prod(kernel3), math.prod(in3)
    total = p.batch * pixels
    with cp.cuda.Device(x.device.id):
        y5 = target.reshape((p.batch, p.out_channels) + out3)
        if bias is None:
            y5[...] = 0
        else:
            y5[...] = cp.asarray(bias, dtype=dt).reshape(1, -1, 1, 1, 1)
        if cin_g == 0:  # no input channel: the bias alone
            return
        # x as (G, C_in/G, N*P): one GEMM operand for the pixels of all images
        xg = cp.ascontiguousarray(
            x.reshape(p.batch, g, cin_g, pixels).transpose(1, 2, 0, 3), dtype=dt
        ).reshape(g, cin_g, total)
        # W^T per group, (G, C_out/G * kv, C_in/G); rows are (channel, tap)
        wt = cp.asarray(weight, dtype=dt).reshape(g, cin_g, cout_g * kv).transpose(0, 2, 1)
        tiles = gemm_tiles(p)
        for c0 in range(0, cout_g, tiles.channels):
            cb = min(tiles.channels, cout_g - c0)
            w_block = wt[:, c0 * kv:(c0 + cb) * kv]
            for q0 in range(0, total, tiles.columns):
                q1 = min(total, q0 + tiles.columns)
                box = reach_box(q0, q1, pixels, in3, out3, kernel3, stride3, pad3, dil3)
                if box is None:  # every output these pixels reach is cropped
                    continue
                cols = cp.matmul(w_block, xg[:, :, q0:q1])  # (G, cb * kv, q1 - q0)
                _col2im(cols, y5, g, cout_g, kernel3, in3, stride3, pad3, dil3,
                        (cb * kv * (q1 - q0), q1 - q0, pixels), (q0, q1), (c0, cb), box,
                        accumulate=True)
                del cols  # the next tile's columns may reuse the memory


# --------------------------------------------------------------------------
# Weight gradient
# --------------------------------------------------------------------------

def weight_grad_reason(forward):
    """Why the weight gradient of the convolution `forward` cannot run.

    Parameters
    ----------
    forward : ConvProblem
        The forward convolution.

    Returns
    -------
    reason : str or None
        The 32-bit cuBLAS limit it exceeds, or None when it can run.  The
        GEMMs are (C_out/G, N*tile) by (N*tile, K) with K = C_in/G *
        kernel volume and tiles of at least one output pixel.
    """
    g = forward.groups
    return _cublas_limit(forward.in_channels // g * math.prod(forward.kernel_size),
                         forward.out_channels // g, forward.batch)


def conv_weight_grad(forward, x, grad_output, weight_size, nthreads):
    """Gradient of the convolution `forward` with respect to its weight:
    a CuPy array of `weight_size` (C_out, C_in/groups, *kernel).

    Per tile of output positions of all images: fc_im2col writes the
    columns (G, K, N*tile), one batched GEMM adds ``gy_tile @ cols^T`` to
    the (G, C_out/G, K) gradient, tiles in order (deterministic).
    """
    cp = _cupy()
    geo = _geometry(forward)
    g, dt, n = forward.groups, forward.dtype, forward.batch
    cout_g = forward.out_channels // g
    k = math.prod(geo.w5[1:])
    pixels = math.prod(geo.out5[2:])
    with cp.cuda.Device(x.device.id):
        if n == 0 or pixels == 0 or k == 0 or cout_g == 0:
            return cp.zeros(weight_size, dtype=dt)
        x5 = cp.ascontiguousarray(x.reshape(geo.x5), dtype=dt)
        # grad_output as (G, C_out/G, N, P): a tile's GEMM operand is a slice
        gy = cp.ascontiguousarray(
            grad_output.reshape(n, g, cout_g, pixels).transpose(1, 2, 0, 3), dtype=dt)
        grad = cp.zeros((g, cout_g, k), dtype=dt)
        tile = max(1, min(pixels, TILE_BYTES // (g * k * n * dt.itemsize)))
        buf = cp.empty(g * k * n * tile, dtype=dt)
        for p0 in range(0, pixels, tile):
            ncols = min(tile, pixels - p0)
            cols = buf[:g * k * n * ncols]
            _cuda.kernel_function("im2col.cu", "fc_im2col", dt)(
                _cuda.im2col_grid(g * k * n, ncols), (_cuda.BLOCK, 1, 1),
                (x5, cols) + _cuda._i64(*geo.x5, g, *geo.w5[2:], *geo.out5[2:],
                                        *geo.stride, *geo.pad_before, *geo.dilation, p0, ncols))
            gy_tile = gy[:, :, :, p0:p0 + ncols].reshape(g, cout_g, n * ncols)
            grad += cp.matmul(gy_tile, cols.reshape(g, k, n * ncols).transpose(0, 2, 1))
        return grad.reshape(weight_size)


# --------------------------------------------------------------------------
# im2col / col2im (torch.nn.functional.unfold / fold)
# --------------------------------------------------------------------------

def im2col(x4, kernel, grid, stride, padding, dilation, nthreads):
    """Blocks (N, C*kH*kW, L) of the (N, C, H, W) CuPy images `x4`
    (torch.nn.functional.unfold)."""
    cp = _cupy()
    n, c, h, w = x4.shape
    length = grid[0] * grid[1]
    with cp.cuda.Device(x4.device.id):
        out = cp.empty((n, c * kernel[0] * kernel[1], length), dtype=x4.dtype)
        if out.size:
            # The N images as the N groups of one image: fc_im2col's
            # (G, K, 1, L) columns are then exactly the (N, C*kH*kW, L) result.
            x5 = cp.ascontiguousarray(x4).reshape(1, n * c, 1, h, w)
            _cuda.kernel_function("im2col.cu", "fc_im2col", x4.dtype)(
                _cuda.im2col_grid(out.size // length, length), (_cuda.BLOCK, 1, 1),
                (x5, out) + _cuda._i64(1, n * c, 1, h, w, n, 1, *kernel, 1, *grid,
                                       1, *stride, 0, *padding, 1, *dilation, 0, length))
        return out


def col2im(cols, size, kernel, grid, stride, padding, dilation, nthreads):
    """Images (N, C, *size) summed from the CuPy blocks (N, C*kH*kW, L)
    `cols` (torch.nn.functional.fold)."""
    cp = _cupy()
    n, rows, length = cols.shape
    c = rows // (kernel[0] * kernel[1])
    with cp.cuda.Device(cols.device.id):
        out = cp.empty((n, c, 1) + tuple(size), dtype=cols.dtype)
        if out.size:
            _col2im(cp.ascontiguousarray(cols), out, 1, c, (1,) + tuple(kernel),
                    (1,) + tuple(grid), (1,) + tuple(stride), (0,) + tuple(padding),
                    (1,) + tuple(dilation), (0, length, rows * length), (0, n * length),
                    (0, c), (0, n, ((0, 1), (0, size[0]), (0, size[1]))), accumulate=False)
        return out.reshape((n, c) + tuple(size))
