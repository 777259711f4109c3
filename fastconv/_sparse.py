"""Sparse convolution: pruned (sparse) weights and scipy.sparse images.

Two paths, both computing by the nonzeros only and never densifying the
sparse operand:

Sparse weights (``algorithm="sparse"`` of conv1d/2d/3d)
    Direct sparse convolution (Park et al., 2017, "Faster CNNs with Direct
    Sparse Convolutions and Guided Pruning", ICLR).  :func:`pack` stores
    the weights once per prepare (plans keep them) as CSR rows, one per
    output channel, over the C_in/groups * kD*kH*kW taps; each nonzero
    holds its value and one input *offset*.  The offsets are constant
    because the input is laid out as a zero-padded polyphase grid
    (:func:`grid`): the padded input (``fastconv._cpu._padded_input``) is
    split into ``sd*sy*sx`` phase channels, so that with any stride and
    dilation tap (c, kd, ky, kx) reads input element ``off + q`` for the
    output at flattened grid position q (rows of length L, a few padding
    columns and rows per plane).  The kernel (``_kernels/_sparse.pyx``,
    ``fc_sparse_impl.h``) keeps a block of consecutive outputs of one
    output channel in vector registers while the channel's nonzeros
    stream by, over OpenMP tasks (image, block of outputs, output channel).
    A tap whose weight is zero is skipped: where the input holds Inf or
    NaN under such a tap, the dense paths give NaN (0 * Inf) and this one
    does not, so ``"auto"`` runs it on finite inputs only.

Sparse images (``conv2d`` and ``fastconv.signal``'s 2-D functions)
    A SciPy sparse 2-D array or matrix (CSR, CSC or COO; converted to CSR)
    is correlated with a small dense kernel by scatter: each nonzero adds
    its value times one kernel row into each output row it reaches, over
    OpenMP tasks of output row bands.  Padding modes other than zeros
    extend the nonzeros into the padding (every padded position whose
    source is a nonzero gets a copy); a nonzero ``fillvalue`` adds
    ``fillvalue * (sum(kernel) - A @ kernel @ B.T)``, where A and B mark the
    kernel rows and columns that fall inside the image for each output row
    and column.  The result is dense, or with ``sparse_output=True`` a
    ``scipy.sparse`` CSR array (a CSR matrix for matrix input) built from
    the dense result.
"""
from __future__ import annotations

import math
import sys
from typing import NamedTuple

import numpy as np

from . import _threads
from ._kernels import _sparse as _k
from ._schedule import workspace

__all__ = ["is_sparse", "grid", "pack", "conv", "count_nonzero", "conv2d_image",
           "signal_2d"]

#: Output positions per task of the sparse-weight kernel (a multiple of its
#: 64-value register block); tasks run output channels fastest so that a
#: thread's consecutive tasks read the same input region.
CHUNK = 512
#: Bytes of the per-thread band buffer of the sparse-image scatter (a band
#: of output rows accumulates there, in cache, before it is streamed out).
BAND_BYTES = 128 * 1024
#: Densest scipy.sparse image "auto" convolves by its nonzeros; denser
#: ones are densified and run on the dense paths.  Measured (4096x4096,
#: 7x7, float32, 2 threads, out= given): scatter 4.2 / 9.3 / 18.7 / 33 ms at
#: 1 / 3 / 5 / 8 % density against 28-32 ms for toarray() + dense conv2d.
SPARSE_IMAGE_MAX_DENSITY = 0.08
_NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def is_sparse(a) -> bool:
    """Whether `a` is a SciPy sparse array or matrix.

    Never imports SciPy: an object can only be a sparse array when
    ``scipy.sparse`` is already loaded.
    """
    if a is None or type(a) is np.ndarray:
        return False
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and bool(sp.issparse(a))


# --------------------------------------------------------------------------
# sparse weights
# --------------------------------------------------------------------------

class Grid(NamedTuple):
    """The polyphase input grid of a problem (per image, per input channel).

    Attributes
    ----------
    L, Hq, Dq : int
        Row length, rows and depth planes of one phase.
    phases : int
        ``sd * sy * sx``.
    P : int
        Grid positions computed per output plane (the valid outputs and the
        grid's padding columns and rows between them).
    """

    L: int
    Hq: int
    Dq: int
    phases: int
    P: int

    @property
    def channel(self) -> int:
        """Elements per input channel."""
        return self.phases * self.Dq * self.Hq * self.L


def grid(geo) -> Grid:
    """The polyphase grid of a laid-out problem.

    Parameters
    ----------
    geo : fastconv._cpu._Geometry
        The problem's 5-D layout (kernel, output, stride, dilation).

    Returns
    -------
    grid : Grid
        Row length L, rows per plane, planes, phase channels
        (sd*sy*sx) and grid positions per channel: each tap of any stride
        and dilation reads input element ``offset + q`` for grid position q.
    """
    (kd, kh, kw), (od, oh, ow) = geo.w5[2:], geo.out5[2:]
    (sd, sy, sx), (dd, dy, dx) = geo.stride, geo.dilation
    L = ow + (kw - 1) * dx // sx
    hq = oh + (kh - 1) * dy // sy
    dq = od + (kd - 1) * dd // sd
    p = (od - 1) * hq * L + (oh - 1) * L + ow
    return Grid(L, hq, dq, sd * sy * sx, p)


def tap_offsets(geo, g: Grid) -> np.ndarray:
    """Input offset (int64, within a group's channels) of every tap
    ``((c*KD + kd)*KH + ky)*KW + kx`` on the polyphase grid `g`."""
    cin_g, kd, kh, kw = geo.w5[1:]
    (sd, sy, sx), (dd, dy, dx) = geo.stride, geo.dilation
    z = np.arange(kd, dtype=np.int64) * dd
    y = np.arange(kh, dtype=np.int64) * dy
    x = np.arange(kw, dtype=np.int64) * dx
    plane = g.Dq * g.Hq * g.L
    phase = ((z % sd)[:, None, None] * sy + (y % sy)[None, :, None]) * sx + (x % sx)
    shift = ((z // sd)[:, None, None] * g.Hq + (y // sy)[None, :, None]) * g.L + x // sx
    per_channel = (phase * plane + shift).ravel()
    c = np.arange(cin_g, dtype=np.int64)[:, None] * g.channel
    return np.ascontiguousarray((c + per_channel).ravel())


class SparseWeights(NamedTuple):
    """Weights packed for the sparse kernel (see :func:`pack`).

    Attributes
    ----------
    rowptr : (C_out + 1,) int64 ndarray
        CSR row pointers, one row per output channel.
    off : (nnz,) int64 ndarray
        Input offset of each nonzero on the polyphase grid.
    val : (nnz,) ndarray
        The nonzero weights.
    grid : Grid
        The grid the offsets refer to.
    """

    rowptr: np.ndarray
    off: np.ndarray
    val: np.ndarray
    grid: Grid


def count_nonzero(weight) -> int:
    """Nonzero entries of a float32/float64 array (NaN counts), in one pass
    of compiled code (numpy.count_nonzero on floats is several times
    slower, and "auto" runs this on every call)."""
    a = np.asarray(weight)
    if a.dtype in (np.float32, np.float64) and a.dtype.isnative and a.flags.c_contiguous:
        return int(_k.count_nonzero(a.reshape(-1)))
    return int(np.count_nonzero(a))


#: Weights of at least this many entries are first sampled (SAMPLE
#: entries, evenly strided) by nonzeros_for_estimate; when the sample is at
#: least DENSE_SAMPLE nonzero the full count is skipped.
SAMPLE = 4096
DENSE_SAMPLE = 0.5


def nonzeros_for_estimate(weight) -> int:
    """The nonzero count "auto" gives the sparse cost model: exact, or for a
    large weight whose strided sample is at least DENSE_SAMPLE nonzero the
    sample's estimate (there the sparse path is far from winning, and
    counting every entry would cost "auto" a full pass over the weights on
    every call; pruned weights, unstructured or by whole channels, show
    their zeros in the sample and are counted exactly)."""
    a = np.asarray(weight)
    if a.size >= 16 * SAMPLE and a.flags.c_contiguous:
        sample = a.reshape(-1)[::a.size // SAMPLE]
        density = np.count_nonzero(sample) / sample.size
        if density >= DENSE_SAMPLE:
            return int(round(density * a.size))
    return count_nonzero(a)


def pack(w5, geo, nthreads=1) -> SparseWeights:
    """CSR weights of the (C_out, C_in/groups, KD, KH, KW) array `w5` (the
    problem's dtype, C-contiguous) on the polyphase grid of `geo`; zero
    weights are left out.  Counted, then filled, in compiled code."""
    g = grid(geo)
    w2 = w5.reshape(w5.shape[0], -1)
    rowptr = np.empty(w5.shape[0] + 1, dtype=np.int64)
    nnz = _k.csr_rowptr(w2, rowptr, nthreads)
    off = np.empty(max(nnz, 1), dtype=np.int64)
    val = np.empty(max(nnz, 1), dtype=w5.dtype)
    _k.pack_csr(w2, tap_offsets(geo, g), rowptr, off, val, nthreads)
    return SparseWeights(rowptr, off, val, g)


def phase_input(xp, geo, g: Grid, workspace) -> np.ndarray:
    """The (N, C, phases, Dq, Hq, L) polyphase grid of the zero-padded input
    ``xp`` (N, C, Dp, Hp, Wp), flattened.  With unit strides it is `xp`
    itself; otherwise each phase ``xp[..., pd::sd, py::sy, px::sx]`` is
    copied into its zero-filled block of reused scratch memory."""
    sd, sy, sx = geo.stride
    if sd == sy == sx == 1:
        return xp.reshape(-1)
    n, c = xp.shape[:2]
    size = n * c * g.channel
    buf = workspace(size * xp.dtype.itemsize, xp.dtype, "sparse-phases")[:size]
    ph = buf.reshape(n, c, sd, sy, sx, g.Dq, g.Hq, g.L)
    ph.fill(0)
    for pd in range(sd):
        for py in range(sy):
            for px in range(sx):
                src = xp[:, :, pd::sd, py::sy, px::sx]
                ph[:, :, pd, py, px, :src.shape[2], :src.shape[3], :src.shape[4]] = src
    return buf


def conv(xp, state: SparseWeights, bias, target, problem, geo, nthreads, workspace):
    """target (N, C_out, OD, OH, OW) = the sparse correlation of the padded
    input ``xp`` (N, C_in, Dp, Hp, Wp) with the packed weights, plus bias."""
    g = state.grid
    x = phase_input(xp, geo, g, workspace)
    n, cout = target.shape[:2]
    od, oh, ow = target.shape[2:]
    chunk = CHUNK if g.P >= 2 * CHUNK else g.P
    _k.conv_sparse(x, state.rowptr, state.off, state.val, bias,
                   target.reshape(n, cout, od * oh * ow), problem.in_channels * g.channel,
                   problem.in_channels_per_group * g.channel, problem.groups, g.P, g.L, ow,
                   g.Hq * g.L, oh, max(chunk, 1), nthreads)


def features(problem, nnz: int) -> tuple:
    """Work counts of the sparse-weight path (see fastconv._cost.sparse_time):
    (multiply-adds over the grid, grid positions, input elements laid out,
    weight taps packed, 1)."""
    from ._cpu import _geometry

    geo = _geometry(problem)
    g = grid(geo)
    n = problem.batch
    macs = n * nnz * g.P
    positions = n * problem.out_channels * g.P
    laid = n * problem.in_channels * g.channel
    taps = problem.out_channels * problem.in_channels_per_group * math.prod(problem.kernel_size)
    return (macs, positions, laid, taps, 1)


# --------------------------------------------------------------------------
# sparse images
# --------------------------------------------------------------------------

def _ranges(starts, lengths):
    """Concatenated ``arange(s, s + n)`` for each (s, n), vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    steps = np.ones(total, dtype=np.int64)
    first = ends - lengths
    nz = lengths > 0
    steps[first[nz]] = np.asarray(starts, dtype=np.int64)[nz] - np.concatenate(
        ([0], (np.asarray(starts, dtype=np.int64)[nz] + lengths[nz] - 1)[:-1]))
    return np.cumsum(steps)


def _source_map(n, before, after, np_mode):
    """For each source index i < n, the padded positions that copy it:
    (order, counts, starts) with positions ``order[starts[i]:starts[i]+counts[i]]``."""
    src = np.pad(np.arange(n, dtype=np.int64), (before, after), mode=np_mode)
    order = np.argsort(src, kind="stable")
    counts = np.bincount(src, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return order, counts, starts


def _csr_parts(img, dtype):
    """(indptr, indices, data) of a sparse image as int64 / `dtype` CSR."""
    csr = img.tocsr()
    return (np.ascontiguousarray(csr.indptr, dtype=np.int64),
            np.ascontiguousarray(csr.indices, dtype=np.int64),
            np.ascontiguousarray(csr.data, dtype=dtype))


def _padded_csr(parts, shape, pads, np_mode):
    """The CSR image extended into its padding by `np_mode` (as np.pad would
    extend the dense image), in padded coordinates."""
    indptr, indices, data = parts
    h, w = shape
    (pt, pb), (pl, pr) = pads
    xorder, xcount, xstart = _source_map(w, pl, pr, np_mode)
    # columns: each nonzero becomes one entry per padded column copying it
    per = xcount[indices]
    cols = xorder[_ranges(xstart[indices], per)]
    vals = np.repeat(data, per)
    cum = np.concatenate(([0], np.cumsum(per, dtype=np.int64)))
    rowlen = cum[indptr[1:]] - cum[indptr[:-1]]  # padded entries per source row
    rowstart = np.concatenate(([0], np.cumsum(rowlen)[:-1]))
    # rows: padded row p copies source row src[p]
    srcrow = np.pad(np.arange(h, dtype=np.int64), (pt, pb), mode=np_mode)
    take = _ranges(rowstart[srcrow], rowlen[srcrow])
    new_ptr = np.concatenate(([0], np.cumsum(rowlen[srcrow]))).astype(np.int64)
    return new_ptr, np.ascontiguousarray(cols[take]), np.ascontiguousarray(vals[take])


def _scatter(parts, shape, pads, np_mode, kernel, stride, dilation, out_shape, dtype,
             init, nthreads, out=None):
    """Dense (OH, OW) correlation of a CSR image with a dense kernel."""
    if np_mode is None:
        (pt, _), (pl, _) = pads
    else:
        parts = _padded_csr(parts, shape, pads, np_mode)
        pt = pl = 0
    target = out if out is not None else np.empty(out_shape, dtype=dtype)
    w = np.ascontiguousarray(kernel, dtype=dtype)
    rl = max(1, out_shape[1]) + w.shape[1] - 1 + _k.GUARD  # a band row with its guards
    band = max(1, min(out_shape[0], BAND_BYTES // (rl * dtype.itemsize)))
    scratch = workspace(nthreads * band * rl * dtype.itemsize, dtype, "sparse-bands")
    _k.scatter_image(*parts, pt, pl, w, target, stride[0], stride[1], dilation[0],
                     dilation[1], dtype.type(init), band, scratch, nthreads)
    return target


def _as_sparse_result(dense, like):
    """A CSR of `dense`, a matrix when `like` is a sparse matrix."""
    import scipy.sparse as sp

    if isinstance(like, sp.spmatrix):
        return sp.csr_matrix(dense)
    return sp.csr_array(dense)


def _dense_enough(x) -> bool:
    """Whether the scipy.sparse image `x` is too dense to gain from its
    nonzeros (SPARSE_IMAGE_MAX_DENSITY)."""
    return x.nnz > SPARSE_IMAGE_MAX_DENSITY * max(1, x.shape[0] * x.shape[1])


def _check_image(x, name):
    if len(x.shape) != 2:
        raise ValueError(f"{name} must be a 2-D sparse image, got shape {x.shape}")


def dense_kernel(weight, x):
    """A scipy.sparse conv2d `weight` as a dense array: accepted only as the
    2-D kernel of a plain 2-D image (a small kernel; C_out x C_in/groups x
    kH x kW weights have no scipy.sparse form)."""
    _check_image(weight, "weight")
    if len(getattr(x, "shape", np.shape(x))) != 2:
        raise TypeError(
            "a scipy.sparse weight is accepted only as the 2-D kernel of a plain 2-D image "
            f"(x has shape {tuple(getattr(x, 'shape', np.shape(x)))}); pass a dense weight, "
            "and algorithm='sparse' for pruned weights")
    return weight.toarray()


def conv2d_image(x, weight, bias, stride, padding, dilation, groups, padding_mode,
                 algorithm, out, workers, sparse_output):
    """conv2d of a scipy.sparse image `x` (H, W) with a 2-D `weight`.

    Validated exactly as dense conv2d (fastconv._validation.plan_conv);
    `weight` may be sparse too (it is densified: it is a small kernel).
    "auto" densifies an image denser than SPARSE_IMAGE_MAX_DENSITY;
    "sparse" always scatters its nonzeros.
    """
    from ._backends import as_arrays
    from ._validation import check_out, plan_conv

    if is_sparse(weight):
        weight = dense_kernel(weight, x)
    if not is_sparse(x):
        if sparse_output is not False:
            raise ValueError("sparse_output=True needs a scipy.sparse image x, got "
                             f"{type(x).__name__}")
        from ._api import conv2d

        return conv2d(x, weight, bias, stride, padding, dilation, groups,
                      padding_mode=padding_mode, algorithm=algorithm, out=out,
                      workers=workers)
    _check_image(x, "x")
    weight, bias = as_arrays(weight, bias)
    for name, a in (("weight", weight), ("bias", bias), ("out", out)):
        if a is not None and not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array with a scipy.sparse x, got "
                            f"{type(a).__name__}")
    problem = plan_conv(2, x, weight, bias, stride, padding, dilation, groups, padding_mode)
    if algorithm not in ("auto", "sparse"):
        raise ValueError(
            f"algorithm={algorithm!r} cannot serve a scipy.sparse x: sparse images are "
            "convolved by their nonzeros (algorithm 'auto' or 'sparse'); pass "
            "x.toarray() for the dense algorithms")
    if not isinstance(sparse_output, bool):
        raise TypeError(f"sparse_output must be a bool, got {type(sparse_output).__name__}")
    if sparse_output and out is not None:
        raise ValueError("out cannot be combined with sparse_output=True")
    if out is not None:
        check_out(out, problem, lambda a: isinstance(a, np.ndarray))
    if algorithm == "auto" and _dense_enough(x):
        from ._api import conv2d

        res = conv2d(x.toarray(), weight, bias, stride, padding, dilation, groups,
                     padding_mode=padding_mode, out=out, workers=workers)
        return _as_sparse_result(res, x) if sparse_output else res
    nthreads = _threads.resolve_workers(workers)
    dt = problem.dtype
    np_mode = None if problem.padding_mode == "zeros" else _NP_PAD_MODE[problem.padding_mode]
    target = out if out is not None and out.flags.c_contiguous else None
    init = 0 if bias is None else np.asarray(bias, dtype=dt).reshape(-1)[0]
    res = _scatter(_csr_parts(x, dt), x.shape, problem.padding, np_mode,
                   np.asarray(weight, dtype=dt), problem.stride, problem.dilation,
                   problem.out_size, dt, init, nthreads, target)
    if out is not None:
        if res is not out:
            out[...] = res
        return out
    return _as_sparse_result(res, x) if sparse_output else res


def signal_2d(in1, in2, mode, boundary, fillvalue, workers, flip, centre, sparse_output,
              dense_fn):
    """The 2-D signal functions on a scipy.sparse `in1` (see fastconv.signal);
    an image denser than SPARSE_IMAGE_MAX_DENSITY runs densified.

    `flip`: true convolution (the kernel is reversed); `centre(k)`: where
    "same" puts the kernel origin.  `dense_fn(in1, in2)` computes the dense
    call, used when SciPy's "valid" rule swaps the operands (then the
    sparse operand is the smaller one, and it is densified).
    """
    from . import signal as _sig

    if is_sparse(in2):
        _check_image(in2, "in2")
        in2 = in2.toarray()
    _check_image(in1, "in1")
    in2 = np.asarray(in2)
    if in2.ndim != 2:
        raise ValueError(f"in2 must be 2-D with a sparse 2-D in1, got {in2.ndim}-D")
    if not isinstance(sparse_output, bool):
        raise TypeError(f"sparse_output must be a bool, got {type(sparse_output).__name__}")
    _sig._check_mode(mode)
    if not isinstance(boundary, str) or boundary not in _sig._BOUNDARIES:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' "
                         "(or 'wrap'), and 'symmetric' (or 'symm').")
    rt = np.result_type(in1.dtype, in2.dtype)
    if rt.kind not in "fiu" or (rt.kind == "f" and rt.itemsize not in (4, 8)):
        raise TypeError(f"a scipy.sparse in1 is convolved for real float32/float64 and "
                        f"integer results; the result dtype here would be {rt}")
    if _sig._swap_needed(mode, in1.shape, in2.shape) or _dense_enough(in1):
        res = dense_fn(in1.toarray(), in2)
        return _as_sparse_result(res, in1) if sparse_output else res
    kind = _sig._BOUNDARIES[boundary]
    fill = _sig._fillvalue(fillvalue, rt) if kind == "fill" else 0
    dt = rt if rt.kind == "f" else np.dtype(np.float64)
    if rt.kind != "f":
        amax = float(np.max(np.abs(in1.data))) if in1.nnz else 0.0
        fmax = abs(float(fill))
        bound = max(amax, fmax) * float(np.max(np.abs(in2))) * in2.size if in2.size else 0.0
        if bound >= 2.0 ** 53:
            raise ValueError("integer sparse convolution: partial sums could exceed 2**53, "
                             "beyond exact float64 arithmetic; pass float data")
    u = np.asarray(in2[::-1, ::-1] if flip else in2, dtype=dt)
    pads = tuple(_sig._pads(k, mode, centre(k)) for k in in2.shape)
    h, w = in1.shape
    out_shape = tuple(n + a + b - k + 1 for n, (a, b), k in zip(in1.shape, pads, in2.shape))
    nthreads = _threads.resolve_workers(workers)
    if in1.size == 0 or in2.size == 0 or min(out_shape) <= 0:
        res = dense_fn(in1.toarray(), in2)
        return _as_sparse_result(res, in1) if sparse_output else res
    np_mode = None if kind == "fill" else _sig._NP_PAD[kind]
    res = _scatter(_csr_parts(in1, dt), in1.shape, pads, np_mode, u, (1, 1), (1, 1),
                   out_shape, dt, 0, nthreads)
    if kind == "fill" and fill != 0:
        # The fill region's part: fill * (sum(u) - A u B^T), A/B marking the
        # kernel rows/columns inside the image for each output row/column.
        (pt, _), (pl, _) = pads
        kh, kw = u.shape
        ty = np.arange(out_shape[0])[:, None] + np.arange(kh) - pt
        tx = np.arange(out_shape[1])[:, None] + np.arange(kw) - pl
        a = ((ty >= 0) & (ty < h)).astype(dt)
        b = ((tx >= 0) & (tx < w)).astype(dt)
        with _threads.blas_limit(nthreads):
            inside = (a @ u) @ b.T
        res += dt.type(fill) * (u.sum(dtype=dt) - inside)
    if rt.kind != "f":
        res = np.rint(res).astype(rt)
    return _as_sparse_result(res, in1) if sparse_output else res
