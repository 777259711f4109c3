"""Winograd F(2x2,3x3) and F(4x4,3x3) convolution for CuPy arrays.

Minimal filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016): an m x m output tile of a 3x3 correlation is
``A^T [(G g G^T) * (B^T d B)] A`` over a = m + 2 transform points, so a
tile's multiplications drop from 9 m^2 to a^2 (2.25x fewer for m = 2, 4x
for m = 4).  The transform matrices are those of
:func:`fastconv._winograd.transform_matrices` (the CPU path's).  Summed over
the input channels, the elementwise products become, for each of the
T = a^2 points and each group, one matrix product, so the path runs as

1. ``prepare``: the filter transforms ``U = G g G^T`` (once per plan; a
   cupy.matmul in float64, rounded to the dtype), laid out
   (T, G, C_out/G, C_in/G);
2. per chunk of tiles, ``fc_winograd_input`` of ``winograd.cu``: the input
   transforms ``V = B^T d B`` of every (image, channel, tile), zero outside
   the image, laid out (T, G, C_in/G, tiles);
3. one batched ``cupy.matmul`` (cuBLAS, batched over T*G):
   ``M = U @ V`` -> (T, G, C_out/G, tiles); for one input channel per group
   (depthwise layers) a broadcast elementwise product instead;
4. ``fc_winograd_output``: ``A^T M A`` + bias per (image, output channel,
   tile), the outputs of partial edge tiles beyond OH x OW dropped, written
   into the (N, C_out, 1, OH, OW) output.

The tiles of all images form one sequence, cut into equal chunks whose V and
M take at most TILE_BYTES, so the working memory stays bounded whatever the
batch and image size.  Everything runs on CuPy's current stream.

It serves the problems of the CPU path with a 3x3 kernel: conv2d, stride 1,
dilation 1, any batch, groups and padding (zero padding by the kernels; the
other modes arrive padded, with padding 0), float32 and float64 (see
:func:`unsupported_reason`).  Accuracy is that of the CPU path
(:data:`fastconv._winograd.ERROR_BOUND`: normwise 5e-5 in float32, 1e-12
in float64); the tests hold it to that bound.  With ``CUPY_TF32=1`` cuBLAS
multiplies float32 in TF32, far outside that bound.

Timings on an H100 (float32, padding 1, no bias, ``run`` alone against
``fastconv.conv2d`` with CuPy arrays; cupyx.profiler.benchmark, GPU time):

==========================  ===========  ===========  ========  ========
layer                       F(2x2,3x3)   F(4x4,3x3)   im2col    direct
==========================  ===========  ===========  ========  ========
N=32, 64->64, 56x56         0.72 ms      0.34 ms      2.21 ms   0.75 ms
N=8, 256->256, 14x14        0.18 ms      0.17 ms      0.41 ms   0.52 ms
N=8, 128->128, 28x28        0.15 ms      0.16 ms      0.51 ms   0.33 ms
==========================  ===========  ===========  ========  ========
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _cuda
from ._winograd import transform_matrices

__all__ = ["WinogradFilters", "unsupported_reason", "choose_m", "prepare", "run",
           "chunk_tiles", "TILE_BYTES", "VARIANTS", "SOURCE", "KERNELS"]

#: Output tile sizes m of the variants F(m x m, 3 x 3) served.
VARIANTS = (2, 4)
#: The CUDA source of the tile transforms and its kernel templates
#: (``kernel<T, m>``, T float or double, m in VARIANTS).
SOURCE = "winograd.cu"
KERNELS = ("fc_winograd_input", "fc_winograd_output")
#: Bytes of tile transforms per chunk: the chunk's V and M together,
#: ``(m + 2)^2 * (C_in + C_out) * tiles`` values (at least one tile).
TILE_BYTES = 64 << 20
#: The kernels index tiles, sizes and tile corners with 32-bit ints.
_INT_LIMIT = 2**30
_INT_MAX = 2**31 - 1


class WinogradFilters(NamedTuple):
    """Transformed filters of the GPU Winograd path (what plans keep).

    Attributes
    ----------
    m : int
        The variant: F(m x m, 3 x 3), m in VARIANTS.
    u : cupy array (T, G, C_out/G, C_in/G), C-contiguous
        ``G g G^T`` of every filter, T = (m + 2)^2 points (row-major over
        the a x a transform), in the problem's dtype.
    """

    m: int
    u: object


def _cupy():
    """CuPy, through the backend's import (one place to stand in for it)."""
    return _cuda._cupy()


def unsupported_reason(problem) -> str | None:
    """Why the GPU Winograd path cannot serve `problem`, or None.

    Parameters
    ----------
    problem : ConvProblem

    Returns
    -------
    reason : str or None
        None for conv2d in float32 or float64 with a 3x3 kernel, stride 1
        and dilation 1 (any batch, groups, padding) whose sizes fit the
        kernels' 32-bit indices; otherwise why not (the CPU path's messages
        where its rules apply).
    """
    p = problem
    if p.nd != 2:
        return "Winograd is implemented for conv2d only"
    if tuple(p.kernel_size) != (3, 3):
        return f"Winograd on the GPU needs a 3x3 kernel, got {tuple(p.kernel_size)}"
    if tuple(p.stride) != (1, 1):
        return f"Winograd needs stride 1, got {tuple(p.stride)}"
    if tuple(p.dilation) != (1, 1):
        return f"Winograd needs dilation 1, got {tuple(p.dilation)}"
    if np.dtype(p.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        return f"Winograd on the GPU serves float32 and float64, got {np.dtype(p.dtype)}"
    oh, ow = p.out_size
    m = min(VARIANTS)
    tiles = -(-oh // m) * -(-ow // m)
    padded = max(size + before + after for size, (before, after) in zip(p.in_size, p.padding))
    points = (max(VARIANTS) + 2) ** 2
    if (max(padded, tiles, p.batch) >= _INT_LIMIT
            or points * max(p.in_channels, p.out_channels) > _INT_MAX):
        return "Winograd on the GPU indexes tiles with 32-bit ints: the problem is too large"
    return None


def choose_m(problem) -> int:
    """The variant for `problem`: 4 unless the output is tiny.

    A variant's GEMM flops and the traffic of V and M are proportional to
    its transform points, ``ceil(OH/m) * ceil(OW/m) * (m + 2)^2``: 2.25 per
    output for m = 4 against 4 for m = 2 on large outputs, so F(4x4,3x3)
    wins there.  When that count is not smaller for m = 4 (an output side
    of at most 2, or 5x5 and 6x6 outputs, where the 4x4 tiles are mostly
    padding), F(2x2,3x3) is chosen: no more work, and about ten times more
    accurate (see fastconv._winograd).  Not tuned by measurement.
    """
    oh, ow = problem.out_size

    def points(m):
        return -(-oh // m) * -(-ow // m) * (m + 2) ** 2

    return 4 if points(4) < points(2) else 2


def chunk_tiles(problem, m: int) -> int:
    """Tiles per chunk of :func:`run`: the most whose V and M fit in
    TILE_BYTES (at least one, and within the kernels' 32-bit indices),
    then evened out so that the chunks of the N * tiles tiles are of equal
    size."""
    oh, ow = problem.out_size
    total = problem.batch * -(-oh // m) * -(-ow // m)
    if total == 0:
        return 1
    points = (m + 2) ** 2
    channels = problem.in_channels + problem.out_channels
    per_tile = points * channels * np.dtype(problem.dtype).itemsize
    nq = max(1, TILE_BYTES // max(1, per_tile))
    nq = min(nq, total, _INT_LIMIT,
             _INT_MAX // (points * max(1, problem.in_channels, problem.out_channels)))
    chunks = -(-total // nq)
    return -(-total // chunks)


def prepare(w5, problem, m: int) -> WinogradFilters:
    """Transform the filters for F(m x m, 3 x 3): ``U = G g G^T``.

    Parameters
    ----------
    w5 : cupy array (C_out, C_in/groups, 1, 3, 3)
        The weights (as the CuPy backend lays them out), on the device
        that runs the convolution.
    problem : ConvProblem
        A problem :func:`unsupported_reason` accepts.
    m : {2, 4}
        The variant (see :func:`choose_m`).

    Returns
    -------
    WinogradFilters
        ``u`` (T, G, C_out/G, C_in/G), T = (m + 2)^2, in the problem's
        dtype; computed in float64 and rounded once.

    Raises
    ------
    ValueError
        If `m` is not in VARIANTS.
    """
    if m not in VARIANTS:
        raise ValueError(f"Winograd variant m must be one of {VARIANTS} for 3x3 filters, "
                         f"got {m!r}")
    cp = _cupy()
    _, gmat, _ = transform_matrices(m)
    a = m + 2
    g = problem.groups
    cout, cin_g = w5.shape[:2]
    with cp.cuda.Device(w5.device.id):
        gd = cp.asarray(gmat)                                        # (a, 3) float64
        w = w5.reshape(cout, cin_g, 3, 3).astype(cp.float64)
        # Two plain GEMMs over all the filters: a broadcast matmul would be
        # O * C/G tiny products, measured at 3 ms for 512x512 filters.
        u = cp.tensordot(w, gd, axes=([3], [1]))                     # (O, C/G, 3, a): g G^T
        u = cp.tensordot(gd, u, axes=([1], [2]))                     # (a, O, C/G, a)
        u = u.transpose(0, 3, 1, 2).reshape(a * a, g, cout // g, cin_g)
        u = cp.ascontiguousarray(u.astype(problem.dtype, copy=False))
    return WinogradFilters(m, u)


def _kernel(kernel: str, dtype, m: int):
    """``kernel<T, m>`` of winograd.cu for the current device."""
    return _cuda.kernel_function(SOURCE, kernel, dtype, m)


def run(x5, filters: WinogradFilters, bias, target, problem, geometry) -> None:
    """Winograd convolution of laid-out CuPy operands, written into `target`.

    Parameters
    ----------
    x5 : cupy array (N, C_in, 1, H, W)
        The input in the problem's dtype (padded already for padding modes
        other than zeros), C-contiguous.
    filters : WinogradFilters
        From :func:`prepare` for this problem.
    bias : cupy array (C_out,), or of size 0, or None
    target : cupy array (N, C_out, 1, OH, OW), C-contiguous
        The output; every element is written.
    problem : ConvProblem
    geometry : fastconv._cpu._Geometry
        ``fastconv._cpu._geometry(problem)``: the leading zero padding the
        kernels apply (``pad_before``).

    Notes
    -----
    Runs on CuPy's current stream and device.  Working memory: two buffers
    of at most TILE_BYTES together (V and M of one chunk of tiles; see
    :func:`chunk_tiles`).
    """
    cp = _cupy()
    if not target.flags.c_contiguous:
        raise ValueError("the Winograd output must be C-contiguous")
    dt = np.dtype(problem.dtype)
    m, u = filters.m, filters.u
    a2 = (m + 2) ** 2
    n, c, _, h, w = x5.shape
    _, o, _, oh, ow = target.shape
    g = problem.groups
    cin_g, cout_g = c // g, o // g
    has_bias = bias is not None and bias.size > 0
    if target.size == 0:
        return
    if cin_g == 0:
        target[...] = bias.reshape(1, -1, 1, 1, 1) if has_bias else 0
        return
    x5 = cp.ascontiguousarray(x5, dtype=dt)
    tiles_w = -(-ow // m)
    tiles = -(-oh // m) * tiles_w
    total = n * tiles
    nq = chunk_tiles(problem, m)
    vbuf = cp.empty(a2 * c * nq, dtype=dt)
    mbuf = cp.empty(a2 * o * nq, dtype=dt)
    pad_h, pad_w = geometry.pad_before[1:]
    k_in = _kernel("fc_winograd_input", dt, m)
    k_out = _kernel("fc_winograd_output", dt, m)
    b = bias if has_bias else target  # not read without a bias
    block = (_cuda.BLOCK, 1, 1)
    i32 = np.int32
    for q0 in range(0, total, nq):
        k = min(nq, total - q0)
        n0, t0 = divmod(q0, tiles)
        v = vbuf[:a2 * c * k].reshape(a2, g, cin_g, k)
        prod = mbuf[:a2 * o * k].reshape(a2, g, cout_g, k)
        gx = -(-k // _cuda.BLOCK)
        k_in((gx, min(c, _cuda.MAX_GRID_Y), 1), block,
             (x5, v, i32(c), i32(h), i32(w), np.int64(h * w), i32(tiles), i32(tiles_w),
              i32(pad_h), i32(pad_w), i32(n0), i32(t0), i32(k)))
        if cin_g == 1:
            cp.multiply(u, v, out=prod)          # (T,G,O/G,1) * (T,G,1,k)
        else:
            cp.matmul(u, v, out=prod)            # (T,G,O/G,C/G) @ (T,G,C/G,k)
        k_out((gx, min(o, _cuda.MAX_GRID_Y), 1), block,
              (prod, b, target, i32(o), i32(oh), i32(ow), np.int64(oh * ow), i32(tiles),
               i32(tiles_w), i32(n0), i32(t0), i32(k), i32(has_bias)))
