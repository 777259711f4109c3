"""CPU backend: NumPy arrays, compiled OpenMP kernels, BLAS through SciPy.

The backend lays validated problems out for the kernels: every problem is
lifted to three spatial dimensions (size-1 leading dimensions for conv1d and
conv2d), made C-contiguous in the result dtype, and padded explicitly only
for the non-zero padding modes (zero padding is done inside the kernels, so
large images cost no padded copy).  It then runs one kernel of
``fastconv._kernels`` under the thread budget of the call.

Algorithm choice for ``"auto"``: the candidate with the least estimated
time by the cost model of :mod:`fastconv._cost` (linear models fitted to
this package's timings by ``benchmarks/fit_cost_model.py``): direct, FFT,
im2col when each group has more than one output channel, Winograd (3x3,
stride 1, dilation 1) when it has 8 or more input and output channels,
and, when the weights have a low enough rank, separable.  The transform
methods (FFT, Winograd) are dropped for inputs holding NaN or Inf: they
mix a whole tile or signal, so a NaN or Inf would spoil outputs whose
window does not cover it.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from . import _cost, _fft, _separable, _sparse, _threads, _winograd
from ._backends import deliver, output_target
from ._schedule import (MIN_WORK_PER_THREAD, PLANE_SCRATCH_BYTES, POINTWISE_CHUNK,
                        channel_blocked, direct_schedule, pointwise, workspace)
from ._validation import all_finite
from ._kernels import _direct, _im2col

#: Per-thread im2col workspace budget in bytes (one tile of K x tile values).
TILE_BYTES = 1 << 20
#: Smallest tile (output pixels) worth a GEMM call, budget permitting.
MIN_TILE = 128
#: Narrowest tile that the parallel-tiles schedule accepts.
MIN_PARALLEL_TILE = 64
#: Output rows per strip of the banded im2col (one filter per group) and its
#: per-thread tile budget.  Measured on the 8192x8192 7x7 case (2 cores):
#: 4 rows / 256 KiB took 105-115 ms; 2 rows 180 ms; 8 rows 145 ms; 16 rows
#: 260 ms (the band's extra multiply-adds grow with the strip height); the
#: plain GEMV form took 260-285 ms.
BAND_ROWS = 4
BAND_TILE_BYTES = 256 * 1024
_INT_MAX = 2**31 - 1
#: Fewest input and output channels per group for "auto" to weigh Winograd
#: (9 -> 6 channels at 37x37 measured 2.2x slower than im2col).
WINOGRAD_MIN_CHANNELS = 8
#: "auto" looks at the weights' rank (an SVD, cached) only when the dense
#: estimate exceeds this: below it the check costs as much as it can save.
SEPARABLE_MIN_SECONDS = 1e-4
#: "auto" counts the weights' nonzeros (one pass over them) for the sparse
#: estimate only when the dense estimate exceeds this.
SPARSE_MIN_SECONDS = 5e-5
_NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _lift3(values, nd, fill):
    return (fill,) * (3 - nd) + tuple(values)


class _Geometry(NamedTuple):
    """A problem laid out for the kernels: 5-D shapes, 3-D size arguments."""

    x5: tuple          # (N, C_in, D, H, W) before the non-zero padding modes
    w5: tuple          # (C_out, C_in/groups, KD, KH, KW)
    out5: tuple        # (N, C_out, OD, OH, OW)
    stride: tuple
    dilation: tuple
    pad_before: tuple  # leading zero padding the kernels apply
    pad_widths: tuple  # np.pad widths of the 5-D input, for the other modes


@functools.lru_cache(maxsize=512)
def _geometry(p) -> _Geometry:
    """The kernel-side layout of a (hashable, frozen) ConvProblem, cached."""
    zeros = p.padding_mode == "zeros"
    return _Geometry(
        x5=(p.batch, p.in_channels) + _lift3(p.in_size, p.nd, 1),
        w5=(p.out_channels, p.in_channels_per_group) + _lift3(p.kernel_size, p.nd, 1),
        out5=(p.batch, p.out_channels) + _lift3(p.out_size, p.nd, 1),
        stride=_lift3(p.stride, p.nd, 1),
        dilation=_lift3(p.dilation, p.nd, 1),
        pad_before=_lift3((pb for pb, _ in p.padding), p.nd, 0) if zeros else (0, 0, 0),
        pad_widths=((0, 0),) * (5 - p.nd) + tuple(p.padding),
    )


def im2col_tile(problem, nthreads):
    """Tile width (output pixels) and schedule for the im2col path.

    Returns ``(tile, parallel_tiles)``: tiles of at most TILE_BYTES of
    workspace (but not narrower than MIN_TILE pixels), of equal width, and
    when there are few (image, group, tile) tasks, a multiple of the thread
    count of them.  OpenMP runs the tasks in parallel when there are at
    least as many as threads and tiles are at least MIN_PARALLEL_TILE wide;
    otherwise the threads fill each tile together and split its GEMM by
    output channels.
    """
    k = problem.in_channels_per_group * math.prod(problem.kernel_size)
    p = math.prod(problem.out_size)
    tile = max(MIN_TILE, TILE_BYTES // max(1, k * problem.dtype.itemsize))
    tile = min(tile, p)
    images = problem.batch * problem.groups
    ntiles = -(-p // tile)
    if nthreads == 1:
        return tile, False
    if images * ntiles < 8 * nthreads:
        # Few tasks: round their count up to a multiple of the threads so
        # no thread idles while another finishes a last tile ...
        want = -(-images * ntiles // nthreads) * nthreads
        balanced = -(-p // min(p, -(-want // images)))
        if balanced < MIN_PARALLEL_TILE:
            # ... unless that makes tiles too narrow for a good GEMM: then
            # the threads share each (full-width) tile instead.
            return tile, False
        tile = balanced
    return tile, images * -(-p // tile) >= nthreads


def banded_im2col(problem) -> bool:
    """Whether the im2col path uses its banded form (see band_matrix).

    Parameters
    ----------
    problem : ConvProblem

    Returns
    -------
    bool
        True for groups with one input and one output channel (one-channel
        images, depthwise layers) and a kernel of depth 1.
    """
    return (problem.in_channels_per_group == 1 and problem.out_channels_per_group == 1
            and problem.nd >= 2 and (problem.nd == 2 or problem.kernel_size[0] == 1))


def band_matrix(w5, problem):
    """Strip height, tile width and banded weights for the banded im2col.

    A group with one input and one output channel would give GEMM a single
    row (a GEMV, bound by the bandwidth of re-reading KH*KW copied values per
    output).  Instead, BAND_ROWS output rows are computed together: the
    im2col matrix runs along the kernel's columns only, over the S input
    rows the strip reads, and the weight becomes the (rows, S*KW) banded
    (block-Toeplitz, as in the seed's matrix view of convolution) matrix
    whose row r holds kernel row ky at input row r*sh + ky*dh.  The band
    costs S/KH times the dense multiply-adds (S = (rows-1)*sh + (KH-1)*dh + 1),
    at GEMM speed, and S*KW/rows copied values per output instead of KH*KW.

    Returns
    -------
    rows, cols : int
        Output rows per strip and output columns per tile.
    band : (C_out, 1, rows, S*KW) ndarray
        The banded weights of each group.
    """
    cout, _, _, kh, kw = w5.shape
    sh, dh = problem.stride[-2], problem.dilation[-2]
    oh, ow = problem.out_size[-2], problem.out_size[-1]
    rows = min(oh, BAND_ROWS)
    s = (rows - 1) * sh + (kh - 1) * dh + 1
    k = s * kw
    cols = int(min(ow, max(16, BAND_TILE_BYTES // (k * problem.dtype.itemsize))))
    r = np.arange(rows)[:, None, None]
    ky = np.arange(kh)[None, :, None]
    kx = np.arange(kw)[None, None, :]
    band = np.zeros((cout, 1, rows, k), dtype=w5.dtype)
    band[:, 0, r, (r * sh + ky * dh) * kw + kx] = w5[:, 0, 0][:, None, :, :]
    return rows, cols, band


def direct_run(problem, nthreads):
    """Row pairs and output columns per task of the direct kernel (see
    fastconv._schedule.direct_schedule)."""
    planes = problem.batch * problem.out_channels * math.prod(problem.out_size[:-2])
    oh = problem.out_size[-2] if problem.nd >= 2 else 1
    return direct_schedule(planes, oh, problem.out_size[-1], nthreads)


class CPUBackend:
    """Backend for NumPy arrays (see the module docstring).

    Implements the backend protocol of :mod:`fastconv._backends`:
    ``algorithms``, ``is_array(a)``, ``unsupported_reason(problem,
    algorithm)``, ``choose_algorithm(problem)`` and ``conv(x, weight, bias,
    problem, algorithm, out, nthreads)``, which returns the result array
    (``out`` itself when given) in the form the user passed `x`; and
    ``adjoint``, the module of the transposed convolution's GEMM path, the
    weight gradient and im2col/col2im (fastconv._cpu_adjoint).
    """

    name = "numpy"
    algorithms = ("direct", "im2col", "fft", "winograd", "separable", "sparse")
    #: Algorithms "auto" runs on finite inputs only: the transform methods
    #: spread a NaN or Inf beyond the windows that cover it, and "sparse"
    #: skips zero weights, so 0 * Inf gives no NaN there.
    finite_only = ("fft", "winograd", "sparse")

    @property
    def adjoint(self):
        """fastconv._cpu_adjoint (imported on first use: it needs this module)."""
        from . import _cpu_adjoint

        return _cpu_adjoint

    @staticmethod
    def is_array(a) -> bool:
        return isinstance(a, np.ndarray)

    @staticmethod
    def unsupported_reason(problem, algorithm):
        return _unsupported_reason(problem, algorithm)

    def estimate(self, problem, weight=None) -> dict:
        """Estimated seconds of each candidate of "auto" (fastconv._cost).

        "separable" is a candidate only when `weight` is given and its
        kernels have a low enough rank (fastconv._separable.factorize);
        "sparse" when `weight` is given (its nonzeros are counted, or for
        large clearly dense weights sampled, on every call: no cache can
        tell that an array's values changed).
        """
        est = dict(_cost.nn_estimates(problem, _auto_candidates(problem)))
        if weight is not None and min(est.values()) > SPARSE_MIN_SECONDS:
            est["sparse"] = _cost.sparse_time(problem, _sparse.nonzeros_for_estimate(weight))
        if (weight is not None and _separable_shape_reason(problem) is None
                and min(est.values()) > SEPARABLE_MIN_SECONDS):
            geo = _geometry(problem)
            factors = _separable.factorize(np.asarray(weight).reshape(geo.w5), problem.dtype)
            if factors is not None:
                est["separable"] = _cost.separable_time(problem, factors[0].shape[0])
        return est

    def choose_algorithm(self, problem, weight=None) -> str:
        """The "auto" choice for `problem` (before the finiteness check)."""
        est = self.estimate(problem, weight)
        return min(est, key=est.get)

    def fallback_algorithm(self, problem) -> str:
        """The faster of direct and im2col by the cost model: what "auto"
        runs when the transform methods are ruled out."""
        est = _cost.nn_estimates(problem, _auto_candidates(problem, transforms=False))
        return min(est, key=est.get)

    def _layout_input(self, x, p, geo):
        """5-D C-contiguous input in the result dtype, non-zero padding applied."""
        x5 = np.asarray(x).reshape(geo.x5)
        if p.padding_mode != "zeros":
            x5 = np.pad(x5, geo.pad_widths, mode=_NP_PAD_MODE[p.padding_mode])
        return np.ascontiguousarray(x5, dtype=p.dtype)

    def prepare(self, problem, algorithm, weight, bias, nthreads, transient=False) -> "Prepared":
        """Lay out the weights for `algorithm` (not "auto") once.

        The returned state holds what does not depend on the input: the
        weights in the problem's dtype and layout, and per algorithm the
        Winograd-domain filters, the filter spectra of the FFT path, or the
        banded weights of the banded im2col.  Plans keep it between calls;
        a `transient` state (one call's) may live in reused scratch memory.
        """
        p = problem
        geo = _geometry(p)
        dt = p.dtype
        w5 = np.ascontiguousarray(weight, dtype=dt).reshape(geo.w5)
        b = np.ascontiguousarray(bias, dtype=dt) if bias is not None else np.empty(0, dt)
        state = None
        if p.in_channels_per_group == 0 or 0 in geo.out5:
            pass
        elif algorithm == "winograd":
            m = _winograd.choose_variant(p, planned=not transient)
            r = p.kernel_size[0]
            buf = (workspace((m + r - 1) ** 2 * w5.size // r ** 2 * dt.itemsize, dt,
                             "winograd-filters")
                   if transient else None)
            state = (m,) + _winograd.filter_transform(
                w5[:, :, 0], p.groups, m, dt, nthreads, buf, return_finite=True,
                stream=_winograd.stream_filters(p, m))
        elif algorithm == "fft":
            state = _fft.nn_filters(w5, geo.out5[2:], geo.stride, geo.dilation, nthreads)
        elif algorithm == "direct" and channel_blocked(p):
            # Packed weights; one call's (not the pointwise kernel's) are
            # packed by the kernel's tasks instead (see execute).
            state = _pack_blocked(w5, b, p, nthreads, transient,
                                  weights=not transient or pointwise(p))
        elif algorithm == "im2col" and banded_im2col(p):
            state = band_matrix(w5, p)
        elif algorithm == "sparse":
            state = _sparse.pack(w5, geo, nthreads)
        elif algorithm == "separable":
            kh, kw = geo.w5[3:]
            state = _separable.factorize(w5, dt, max(1, _separable.default_max_rank(kh, kw)))
            if state is None:
                rank = _separable.kernel_rank(w5, dt)
                raise ValueError(
                    f"algorithm='separable' cannot serve these arguments: the kernel has "
                    f"rank {rank}, too high for 1-D passes to save work on a {kh}x{kw} kernel")
        return Prepared(algorithm, p, geo, w5, b, state)

    @staticmethod
    def tuning_tag(weight) -> str:
        """What the autotuning key adds to the shapes: the density class of
        pruned weights (tenths: "sparse"'s speed follows the nonzeros), or
        nothing for weights at least DENSE_SAMPLE nonzero."""
        size = np.size(weight)
        density = _sparse.nonzeros_for_estimate(weight) / size if size else 1.0
        return "" if density >= _sparse.DENSE_SAMPLE else f"density~{density:.1f}"

    @staticmethod
    def all_finite(*arrays) -> bool:
        """Whether every given array holds only finite values."""
        return all_finite(*arrays)

    def auto_algorithm(self, problem, x, weight) -> str:
        """The algorithm "auto" runs for these arrays: the estimated fastest,
        but never a transform method when an input holds NaN or Inf."""
        algorithm = self.choose_algorithm(problem, weight)
        # "sparse" differs from the dense sum only where a zero weight meets
        # an Inf or NaN input (its nonzero weights multiply every input).
        if algorithm in self.finite_only and not all_finite(
                x, None if algorithm == "sparse" else weight):
            algorithm = self.fallback_algorithm(problem)
        return algorithm

    def conv(self, x, weight, bias, problem, algorithm, out, nthreads):
        if algorithm == "auto":
            prepared = self._prepare_auto(problem, x, weight, bias, nthreads)
        else:
            prepared = self.prepare(problem, algorithm, weight, bias, nthreads, transient=True)
        return self.execute(prepared, x, out, nthreads)

    def _prepare_auto(self, problem, x, weight, bias, nthreads) -> "Prepared":
        """One call's preparation of what "auto" runs (see auto_algorithm).

        Winograd's filter transform reads every weight and reports whether
        all are finite, so for Winograd only `x` is scanned before it, and
        non-finite weights fall back after it: on 256-channel 3x3 layers
        the separate scan of the weights cost about 40 us per call, and on
        512 channels at N=8 about 0.3 ms (its reads also evict the caches
        the transform then refills).  "sparse" needs finite inputs only,
        and its padded copy of the input reports them: the prepared call
        carries the fallback that execute runs when they are not (a
        separate scan of a 7.3 MB input cost about 0.14 ms).
        """
        algorithm = self.choose_algorithm(problem, weight)
        if algorithm == "winograd":
            if all_finite(x):
                prepared = self.prepare(problem, algorithm, weight, bias, nthreads,
                                        transient=True)
                if prepared.state is None or prepared.state[2]:
                    return prepared
            algorithm = self.fallback_algorithm(problem)
        elif algorithm == "sparse":
            # the input's padded copy reports NaN/Inf; execute then falls back
            prepared = self.prepare(problem, algorithm, weight, bias, nthreads, transient=True)
            return prepared._replace(fallback=self.fallback_algorithm(problem))
        elif algorithm in self.finite_only and not all_finite(x, weight):
            algorithm = self.fallback_algorithm(problem)
        return self.prepare(problem, algorithm, weight, bias, nthreads, transient=True)

    def execute(self, prepared: "Prepared", x, out, nthreads):
        """Run a prepared convolution on `x` (validated against its problem)."""
        algorithm, p, geo, w5, b, state, fallback = prepared
        # Small problems run on fewer threads: a tiny call should not wake
        # (or wait for) a whole team.
        nthreads = max(1, min(nthreads, p.flops // (2 * MIN_WORK_PER_THREAD)))

        target = output_target(out, geo.out5, p.dtype, (x, w5, b), np)
        if target.size == 0:
            pass
        elif p.in_channels_per_group == 0:
            target[...] = 0 if b.size == 0 else b.reshape(-1, 1, 1, 1)
        else:
            x5 = self._layout_input(x, p, geo)
            args = (geo.stride, geo.pad_before, geo.dilation)
            if algorithm == "direct" and state is not None and pointwise(p, state[0]):
                wp, bp = state
                n, c = x5.shape[:2]
                _direct.conv_pointwise(x5.reshape(n, c, -1), wp, bp,
                                       target.reshape(target.shape[0], target.shape[1], -1),
                                       p.groups, POINTWISE_CHUNK, nthreads)
            elif algorithm == "direct" and state is not None:
                wp, bp = state
                n, c, _, h, w = x5.shape
                packed_bytes = bp.size * w5[0].size * w5.itemsize  # wp's size, packed
                xp, hp, wpad, by_image = _blocked_buffers(x5, geo, packed_bytes, nthreads)
                raw = None
                if wp is None and by_image:  # threads run whole images: pack once
                    wp = _pack_blocked(w5, b, p, nthreads, True)[0]
                elif wp is None:  # each thread packs its blocks as its tasks reach them
                    raw = w5.reshape(w5.shape[0], -1)
                    shape = (nthreads, 1, w5.shape[1], w5.shape[3], w5.shape[4], bp.shape[-1])
                    size = math.prod(shape)
                    wp = workspace(size * p.dtype.itemsize, p.dtype,
                                   "blocked-weights")[:size].reshape(shape)
                _direct.conv_blocked(x5.reshape(n * c, h, w), xp, hp, wpad, geo.pad_before[1],
                                     geo.pad_before[2], wp, bp, target[:, :, 0], geo.stride[1],
                                     geo.stride[2], geo.dilation[1], geo.dilation[2], p.groups,
                                     nthreads, by_image, raw)
            elif algorithm == "direct":
                plane = p.in_channels_per_group == 1
                scratch = workspace(nthreads * PLANE_SCRATCH_BYTES if plane else 0, p.dtype)
                run, colw = direct_run(p, nthreads)
                _direct.conv_direct(x5, w5, b, target, *args, p.groups, nthreads, run,
                                    scratch, colw)
            elif algorithm == "sparse":
                xp, finite = _padded_input(x5, geo, nthreads)
                if not finite and fallback is not None:
                    return self.execute(self.prepare(p, fallback, w5, b, nthreads, True), x,
                                        out, nthreads)
                _sparse.conv(xp, state, b, target, p, geo, nthreads, workspace)
            elif algorithm == "separable":
                cols, rows = state
                _separable.conv_separable(x5, cols, rows, b, target, geo.stride, geo.pad_before,
                                          geo.dilation, p.groups, nthreads, workspace)
            elif algorithm == "winograd":
                m, u, _ = state
                _winograd.conv(x5, w5, b, target, geo.pad_before, p, nthreads, m=m, u=u)
            elif algorithm == "fft":
                _fft.conv_nn(x5, state, b, target, geo.stride, geo.pad_before, p.groups,
                             nthreads)
            elif state is not None:  # banded im2col
                rows, cols, band = state
                with _threads.blas_limit(1):
                    _im2col.conv_im2col_banded(x5, band, b, target, *args, geo.w5[3],
                                               geo.w5[4], rows, cols, nthreads, workspace)
            else:
                tile, parallel_tiles = im2col_tile(p, nthreads)
                with _threads.blas_limit(1):
                    _im2col.conv_im2col(x5, w5, b, target, *args, p.groups, tile,
                                        parallel_tiles, nthreads, workspace)

        return deliver(target, p.user_out_shape, out, np)


def _pack_blocked(w5, b, problem, nthreads=1, transient=False, weights=True):
    """Weights (groups, blocks, C_in/g, KH, KW, lanes) and bias (groups,
    blocks, lanes) of the channel-blocked kernel, zero past C_out/g; a
    `transient` packing (one call's) lives in reused scratch memory.
    Without `weights`, the weights are None (the kernel's tasks pack them:
    see _direct.conv_blocked)."""
    lanes = _direct.blocked_lanes(problem.dtype.itemsize)
    groups, cout_g = problem.groups, problem.out_channels_per_group
    nb = -(-cout_g // lanes)
    cin_g, kh, kw = w5.shape[1], w5.shape[3], w5.shape[4]
    bp = np.zeros((groups, nb * lanes), dtype=w5.dtype)
    if b.size:
        bp[:, :cout_g] = b.reshape(groups, cout_g)
    bp = bp.reshape(groups, nb, lanes)
    if not weights:
        return None, bp
    shape = (groups, nb, cin_g * kh * kw, lanes)
    if transient:
        size = math.prod(shape)
        wp = workspace(size * w5.dtype.itemsize, w5.dtype, "blocked-weights")[:size]
        wp = wp.reshape(shape)
    else:
        wp = np.empty(shape, dtype=w5.dtype)
    _direct.pack_blocked(w5.reshape(w5.shape[0], -1), wp, cout_g, nthreads)
    return wp.reshape(groups, nb, cin_g, kh, kw, lanes), bp


#: Elements after the padded input that the channel-blocked kernel may read
#: (its last block of output pixels overhangs the row; see fc_rows_impl.h).
_BLOCKED_SLACK = 8


#: Padded-input bytes (all copies) up to which every thread of the
#: channel-blocked kernel pads its own copy of the input (see
#: _blocked_split and _direct.conv_blocked).
PRIVATE_INPUT_BYTES = 8 << 20


def _blocked_split(images, input_bytes, weight_bytes, nthreads):
    """How the channel-blocked kernel's threads split a call: ``(copies,
    by_image)`` (see _direct.conv_blocked).  By image, padding their own
    images into one shared buffer, when there are at least as many images
    as threads and the padded input outweighs the packed weights; else by
    channel block, with one padded copy per thread while they total at most
    PRIVATE_INPUT_BYTES, else one shared copy.  Either way a thread reads
    little of what another wrote in the call."""
    if nthreads < 2:
        return 1, False
    if images >= nthreads and input_bytes > weight_bytes:
        return 1, True
    return (nthreads if nthreads * input_bytes <= PRIVATE_INPUT_BYTES else 1), False


def _padded_extent(geo):
    """(Dp, Hp, Wp): the extent of the padded input that the outputs read."""
    return tuple((o - 1) * s + (k - 1) * d + 1
                 for o, s, k, d in zip(geo.out5[2:], geo.stride, geo.w5[2:], geo.dilation))


def _blocked_buffers(x5, geo, weight_bytes, nthreads):
    """The channel-blocked kernel's padded-input buffers: ``(buffers, Hp, Wp,
    by_image)``, buffers (copies, length) in reused scratch, each row
    holding the (N, C, Hp, Wp) padded input with zeroed slack after it
    (copies and by_image from _blocked_split)."""
    n, c = x5.shape[:2]
    _, hp, wpad = _padded_extent(geo)
    size = n * c * hp * wpad
    length = size + _BLOCKED_SLACK * geo.stride[2] + _BLOCKED_SLACK
    item = x5.dtype.itemsize
    copies, by_image = _blocked_split(n, length * item, weight_bytes, nthreads)
    buf = workspace(copies * length * item, x5.dtype, "blocked-input")[:copies * length]
    bufs = buf.reshape(copies, length)
    bufs[:, size:] = 0
    return bufs, hp, wpad, by_image


def _padded_input(x5, geo, nthreads=1):
    """``(xp, finite)``: x5 zero-padded to the extent the outputs read, (N,
    C, Dp, Hp, Wp) in reused scratch with slack after the last row, for the
    sparse kernel, and whether every value it copied is finite."""
    n, c, d, h, w = x5.shape
    dp, hp, wpad = _padded_extent(geo)
    size = n * c * dp * hp * wpad
    slack = _BLOCKED_SLACK * geo.stride[2] + _BLOCKED_SLACK
    buf = workspace((size + slack) * x5.dtype.itemsize, x5.dtype, "sparse-input")
    buf[size:] = 0
    xp = buf[:size].reshape(n, c, dp, hp, wpad)
    # one compiled pass, the output planes over the threads
    finite = _direct.pad_volumes(x5.reshape(n * c, d, h, w), xp.reshape(n * c, dp, hp, wpad),
                                 *geo.pad_before, nthreads)
    return xp, finite


def _unsupported_reason(problem, algorithm):
    """Why `algorithm` cannot serve `problem` on the CPU, or None."""
    if algorithm == "winograd":
        return _winograd.supported(problem)
    if algorithm == "separable":
        return _separable_shape_reason(problem)
    if algorithm == "im2col":
        k = problem.in_channels_per_group * math.prod(problem.kernel_size)
        p = math.prod(problem.out_size)
        if max(k, p, problem.out_channels) > _INT_MAX:
            return (
                f"im2col calls 32-bit BLAS, which cannot multiply matrices with "
                f"{max(k, p, problem.out_channels)} rows or columns"
            )
    return None


@functools.lru_cache(maxsize=1024)
def _auto_candidates(problem, transforms=True) -> tuple:
    """The algorithms "auto" weighs for `problem` (weights aside), cached
    per problem: they depend on its shapes only.

    im2col is in when each group has several output channels, Winograd
    when it has WINOGRAD_MIN_CHANNELS input and output channels or more:
    with fewer, their GEMMs are (nearly) matrix-vector products and the
    transforms dominate; they measured slower than the direct kernel,
    which keeps a row of outputs in registers, or im2col.  Forcing
    either still works.
    """
    names = ["direct"]
    if (_unsupported_reason(problem, "im2col") is None
            and problem.out_channels_per_group > 1):
        names.append("im2col")
        if (_identity_gemm(problem) and problem.in_channels_per_group > 1
                and not pointwise(problem)):
            names.remove("direct")  # a 1x1 unit-stride layer is one plain GEMM
    if transforms:
        names.append("fft")
        if (_winograd.supported(problem) is None
                and problem.in_channels_per_group >= WINOGRAD_MIN_CHANNELS
                and problem.out_channels_per_group >= WINOGRAD_MIN_CHANNELS):
            names.append("winograd")
    return tuple(names)


def _identity_gemm(problem) -> bool:
    """A 1x1 kernel with unit stride and no padding: im2col copies nothing
    and the layer is one GEMM per image and group."""
    return (all(k == 1 for k in problem.kernel_size) and all(st == 1 for st in problem.stride)
            and all(pad == (0, 0) for pad in problem.padding))


def _separable_shape_reason(problem):
    """Why the shape rules out "separable" (None when the weights decide)."""
    if problem.nd == 1:
        return "separable needs a 2-D kernel; a 1-D kernel is already one pass"
    if problem.in_channels_per_group != 1 or problem.out_channels_per_group != 1:
        return ("separable serves groups of one input and one output channel "
                "(one-channel images, depthwise layers)")
    if problem.nd == 3 and problem.kernel_size[0] != 1:
        return "separable serves kernels of depth 1"
    return None


class Prepared(NamedTuple):
    """A convolution laid out for one algorithm (see CPUBackend.prepare).

    Attributes
    ----------
    algorithm : str
        The algorithm it runs (never "auto").
    problem : ConvProblem
        The validated problem.
    geometry : _Geometry
        Its 5-D kernel-side layout.
    w5 : (C_out, C_in/groups, KD, KH, KW) ndarray
        The weights in the problem's dtype, C-contiguous.
    bias : (C_out,) or (0,) ndarray
        The bias, or an empty array.
    state : object
        Per algorithm: Winograd ``(m, U, finite)`` (`finite`: every weight
        is), FFT ``NNFilters``, banded im2col
        ``(rows, cols, band)``, separable ``(cols, rows)`` factors, or None.
    fallback : str or None
        For "sparse" chosen by "auto" without scanning the input: the
        algorithm to run instead when the input turns out to hold NaN or
        Inf (its padded copy reports them); else None.
    """

    algorithm: str
    problem: object
    geometry: _Geometry
    w5: np.ndarray
    bias: np.ndarray
    state: object
    fallback: object = None
