"""Cost model behind ``method="auto"`` (signal family) and ``algorithm="auto"``.

Each path's time is estimated as a linear function of a few work counts,
``t = c . features``:

* ``direct`` (signal family and conv kernels): multiply-adds, outputs, 1
  (x4 multiply-adds for complex data, which runs as a 2x2 real channel mix);
* ``fft``: transform work ``sum M log2 M`` over the three transforms (two
  forward, one inverse; halved for real data), transform points ``sum M``
  (the copies, padding and spectrum product), 1; with the overlap-add block
  layout when that is cheaper;
* ``im2col``: multiply-adds, multiply-adds with the output channels of a
  group rounded up to GEMM_ROWS, im2col elements copied, 1;
* ``nndirect`` (the channel-blocked direct kernel, several input and output
  channels per group): multiply-adds computed (lanes and pixel blocks
  rounded up), weight-vector loads, weights packed, 1;
* ``nnpointwise`` (the channel-blocked kernel on 1x1 layers, read in
  place pixel chunk by chunk): multiply-adds computed, outputs written,
  inputs read, 1;
* ``nnrows`` (the direct row kernel on several input channels: one output
  channel per group, or 3-D kernels): vectorised and scalar (border,
  strided) multiply-adds, input-row visits, 1;
* ``nnfft`` (conv1d/2d/3d ``algorithm="fft"``): transform work, complex
  multiply-adds of the frequency-domain channel sum, 1;
* ``winograd``: transform-domain GEMM multiply-adds, transformed tile
  points (input and output transforms), filter-transform points, transform
  calls (one channel of one row of tiles each), 1; ``winogradplan`` the
  same features for a plan's calls (filters transformed once);
* ``sparse`` (sparse weights): multiply-adds by the nonzero weights over
  the polyphase grid, grid positions, input elements laid out, weight taps
  packed, 1 (:func:`sparse_time`).

The coefficients are fitted per path, dimensionality (1, 2, 3; more
dimensions use 3) and precision by ``benchmarks/fit_cost_model.py``, a
non-negative least-squares fit of timings of this package's kernels that
minimises relative error (small and large problems count alike), on the
machine named in ``_cost_model.json``.  Refit on other hardware by running
that script with ``--write``.
"""
from __future__ import annotations

import functools
import json
import math
from importlib import resources

import scipy.fft as sfft

from . import _fft
from ._schedule import channel_blocked, pointwise

#: Row block of BLAS's GEMM kernel: a GEMM with fewer rows (output channels
#: per group) costs about as much as one with this many.
GEMM_ROWS = 16

__all__ = ["coefficients", "direct_time", "fft_time", "fft_faster", "prefer_overlap_add",
           "nn_estimates", "separable_time", "sparse_time"]


@functools.lru_cache(maxsize=1)
def coefficients() -> dict:
    """The fitted model, read once from ``_cost_model.json``.

    Returns
    -------
    model : dict
        ``{path: {"<nd>d-<float32|float64>": [coefficients]}}`` plus a
        ``"machine"`` string naming where and when it was fitted.
    """
    text = resources.files("fastconv").joinpath("_cost_model.json").read_text()
    return json.loads(text)


def _key(nd: int, real_dtype) -> str:
    return f"{min(max(nd, 1), 3)}d-{'float32' if real_dtype.itemsize == 4 else 'float64'}"


def _predict(path: str, key: str, features) -> float:
    return sum(c * f for c, f in zip(coefficients()[path][key], features))


def _macs(s1, s2, mode) -> int:
    return _outputs(s1, s2, mode) * math.prod(s2)


def _outputs(s1, s2, mode) -> int:
    return math.prod(_fft.mode_window(n1, n2, mode)[1] for n1, n2 in zip(s1, s2))


def direct_features(s1, s2, mode, complex_=False) -> tuple:
    """(multiply-adds, outputs, 1) of the direct path.

    Parameters
    ----------
    s1, s2 : tuple of int
        Shapes of the two operands (same length; `s1` the larger in "valid").
    mode : {"full", "same", "valid"}
        Output size, as in :func:`fastconv.signal.convolve`.
    complex_ : bool
        Complex data (four real multiply-adds per complex one).

    Returns
    -------
    features : tuple of int
    """
    return (_macs(s1, s2, mode) * (4 if complex_ else 1), _outputs(s1, s2, mode), 1)


def _transforms(points: int, real: bool) -> tuple:
    half = 0.5 if real else 1.0
    return 3 * half * points * math.log2(max(points, 2)), 3 * half * points


def fft_features(s1, s2, mode, complex_=False, threads=1) -> tuple:
    """(transform work, transform points, 1) of the FFT path.

    1-D problems count the overlap-add layout when it is cheaper
    (:func:`fastconv._fft.oa_block`), with its blocks spread over `threads`.
    """
    real = not complex_
    whole = math.prod(_fft.fft_length(n1, n2, mode, real) for n1, n2 in zip(s1, s2))
    work = _transforms(whole, real)
    if len(s1) == 1 and s2[0] <= s1[0]:
        length = _fft.oa_block(s1[0], s2[0], real, threads)
        if length is not None:
            blocks = -(-s1[0] // (length - s2[0] + 1))
            rounds = -(-blocks // threads)
            work = tuple(w * rounds for w in _transforms(length, real))
    return work + (1,)


def direct_time(s1, s2, mode, real_dtype, complex_=False) -> float:
    """Estimated seconds of the direct path of the signal family.

    Parameters
    ----------
    s1, s2 : tuple of int
        Shapes of the two operands (same length; `s1` the larger in "valid").
    mode : {"full", "same", "valid"}
        Output size, as in :func:`fastconv.signal.convolve`.
    real_dtype : numpy.dtype
        float32 or float64: the precision computed in.
    complex_ : bool
        Complex data.

    Returns
    -------
    seconds : float
    """
    return _predict("direct", _key(len(s1), real_dtype), direct_features(s1, s2, mode, complex_))


def fft_time(s1, s2, mode, real_dtype, complex_=False, threads=1) -> float:
    """Estimated seconds of the FFT path of the signal family.

    Parameters
    ----------
    s1, s2 : tuple of int
        Shapes of the two operands (same length; `s1` the larger in "valid").
    mode : {"full", "same", "valid"}
        Output size, as in :func:`fastconv.signal.convolve`.
    real_dtype : numpy.dtype
        float32 or float64.
    complex_ : bool
        Complex data (full, not real, transforms).
    threads : int
        Threads the transforms run on (overlap-add blocks run in parallel).

    Returns
    -------
    seconds : float
    """
    return _predict("fft", _key(len(s1), real_dtype),
                    fft_features(s1, s2, mode, complex_, threads))


def fft_faster(s1, s2, mode, real_dtype, complex_=False, threads=1) -> bool:
    """Whether the FFT path is estimated faster than the direct one.

    Parameters
    ----------
    s1, s2, mode, real_dtype, complex_, threads
        As in :func:`fft_time`.

    Returns
    -------
    bool
    """
    direct = direct_time(s1, s2, mode, real_dtype, complex_)
    if direct < coefficients()["fft"][_key(len(s1), real_dtype)][-1]:
        return False  # cheaper than the FFT's fixed cost alone
    return fft_time(s1, s2, mode, real_dtype, complex_, threads) < direct


def prefer_overlap_add(s1, s2, threads=1) -> bool:
    """Whether a 1-D convolution is cheaper in overlap-add blocks.

    Parameters
    ----------
    s1, s2 : tuple of int
        Operand shapes; only 1-D problems are ever blocked.
    threads : int
        Threads the block transforms can run on.

    Returns
    -------
    bool
    """
    return len(s1) == 1 and s2[0] <= s1[0] and _fft.oa_block(
        s1[0], s2[0], True, threads) is not None


def nn_fft_features(problem) -> tuple:
    """(transform work, complex multiply-adds, 1) of the FFT path of conv1d/2d/3d.

    Parameters
    ----------
    problem : ConvProblem
        The validated problem (fastconv._validation).

    Returns
    -------
    features : tuple
        ``sum M log2 M / 2`` over the real transforms (inputs, filters,
        outputs), the frequency-domain channel-sum multiply-adds, and 1.
    """
    freq = 1
    for k, d, s, o in zip(problem.kernel_size, problem.dilation, problem.stride,
                          problem.out_size):
        freq *= sfft.next_fast_len((o - 1) * s + (k - 1) * d + 1, real=True)
    n, cin, cout = problem.batch, problem.in_channels, problem.out_channels
    transforms = n * cin + cout * problem.in_channels_per_group + n * cout
    work = transforms * freq * math.log2(max(freq, 2)) * 0.5
    mix = n * cout * problem.in_channels_per_group * (freq // 2 + 1)
    return work, mix, 1


#: The vector width in bytes the Winograd tile loops are padded to
#: (fc_winograd_impl.h FC_VW).
WINOGRAD_VECTOR_BYTES = 64


def winograd_features(problem, m: int | None = None) -> tuple:
    """(GEMM multiply-adds, transformed tile points, filter-transform points,
    transform calls, 1) of Winograd F(m x m, r x r) for `problem` (by
    default m as fastconv._winograd picks for one call).  A transform call
    handles one channel of one row of tiles, or, where a row holds at most
    half a vector of tiles, of up to ``_winograd.block_tiles`` tiles of
    several rows of one image; its tile loops run to whole vectors, so the
    tile points count the padded tiles, and layers with few channels pay
    the call's fixed cost per point.  F(2x2,5x5) and F(3x3,2x2) share
    these features (a = 6 and 4 points per dimension)."""
    from ._kernels import _winograd
    from ._winograd import choose_variant, transform_size

    if m is None:
        m = choose_variant(problem)
    a2 = transform_size(problem, m) ** 2
    oh, ow = problem.out_size
    th, tw = -(-oh // m), -(-ow // m)
    lanes = WINOGRAD_VECTOR_BYTES // problem.dtype.itemsize
    if 2 * tw <= lanes:
        per_call = max(1, min(th, _winograd.block_tiles // tw))
        calls = -(-th // per_call)
        padded = calls * -(-per_call * tw // lanes) * lanes
    else:
        calls, padded = th, th * -(-tw // lanes) * lanes
    cin_g = problem.in_channels_per_group
    k = problem.out_channels
    channels = problem.in_channels + k
    tiles = problem.batch * th * tw
    return (a2 * k * cin_g * tiles, a2 * channels * problem.batch * padded,
            a2 * k * cin_g, problem.batch * calls * channels, 1)


def winograd_time(problem, m: int, planned: bool = False) -> float:
    """Estimated seconds of Winograd F(m x m, r x r) on `problem`: a call
    (the ``winograd`` path), or with `planned` a call of a plan, which
    reuses its transformed filters (``winogradplan``, fitted on plan calls
    of 3x3 layers: its GEMMs still read all filters, so the
    filter-transform points stay a feature)."""
    return _predict("winogradplan" if planned else "winograd", _key(2, problem.dtype),
                    winograd_features(problem, m))


def im2col_features(problem) -> tuple:
    """(multiply-adds, multiply-adds with C_out/g rounded up to a multiple of
    GEMM_ROWS, im2col elements copied, 1) of the im2col path: BLAS runs
    GEMMs with few rows (output channels) well below its peak, and nothing
    is copied for a 1x1 kernel with unit stride and no padding."""
    macs = problem.flops // 2
    cout_g = problem.out_channels_per_group
    padded = macs // max(1, cout_g) * (-(-cout_g // GEMM_ROWS) * GEMM_ROWS)
    identity = (all(k == 1 for k in problem.kernel_size) and all(st == 1 for st in problem.stride)
                and all(pad == (0, 0) for pad in problem.padding))
    copies = 0 if identity else (problem.batch * problem.in_channels
                                 * math.prod(problem.kernel_size) * math.prod(problem.out_size))
    return (macs, padded, copies, 1)


def _blocked_row(ow: int, vector_bytes: int) -> tuple:
    """(pixels computed, pixel blocks) for one output row (or flattened
    plane) of the blocked kernel: blocks of 28 (64-byte vectors) or 12
    pixels, then at most one of half and one of a quarter of that, then
    blocks of 4 (fc_rows_impl.h)."""
    ur = 28 if vector_bytes == 64 else 12
    ladder = (ur, ur // 2, ur // 4)
    full = ow // ladder[0]
    done, blocks = full * ladder[0], full
    for ur in ladder[1:]:
        if ow - done >= ur:
            done, blocks = done + ur, blocks + 1
    rest = -(-(ow - done) // 4)
    return done + 4 * rest, blocks + rest


def nnrows_features(problem) -> tuple:
    """(vectorised multiply-adds, scalar multiply-adds, input-row visits, 1)
    of the direct row kernel on several input channels (groups with one
    output channel, 3-D kernels): each pair of output rows lists and streams
    C_in/g * kD*kH input rows, a fixed cost per row that short rows cannot
    hide; border and strided columns run scalar code."""
    macs = problem.flops // 2
    scalar = macs * _scalar_fraction(problem)
    outputs = problem.batch * problem.out_channels * math.prod(problem.out_size)
    rows = outputs // max(1, problem.out_size[-1])
    visits = rows * problem.in_channels_per_group * math.prod(problem.kernel_size[:-1])
    return (macs - scalar, scalar, visits, 1)


def _scalar_fraction(problem) -> float:
    """Share of the row kernel's outputs computed by its scalar code: the
    columns whose taps reach into the zero padding, and every column of a
    horizontally strided row (the row kernel vectorises unit stride only)."""
    ow = problem.out_size[-1]
    if problem.stride[-1] != 1:
        return 1.0
    if ow == 0 or problem.padding_mode != "zeros":
        return 0.0  # other modes are padded explicitly: no border columns
    pw = problem.padding[-1][0]
    last = problem.in_size[-1] - 1 + pw - (problem.kernel_size[-1] - 1) * problem.dilation[-1]
    lo = min(pw, ow)
    hi = max(lo, 0 if last < 0 else min(last + 1, ow))
    return (lo + ow - hi) / ow


def nndirect_features(problem) -> tuple:
    """(multiply-adds computed, weight-vector loads, packed weights, 1) of the
    channel-blocked direct kernel (several input and output channels per
    group): output channels are rounded up to the vector lanes and each
    row's (or, for short rows, the plane's) pixels to the kernel's blocks;
    every pixel block loads one weight
    vector per tap and input channel, which short rows cannot amortise, and
    every call packs the weights into the kernel's layout first."""
    from ._kernels import _direct

    lanes = _direct.blocked_lanes(problem.dtype.itemsize)
    cout_g, cin_g = problem.out_channels_per_group, problem.in_channels_per_group
    blocks_oc = problem.groups * -(-cout_g // lanes)
    ow = problem.out_size[-1]
    ur = 28 if lanes * problem.dtype.itemsize == 64 else 12
    if 2 * ow < ur:  # short rows: blocks of the flattened plane
        rows = problem.batch * math.prod(problem.out_size[:-2])
        plane = (problem.out_size[-2] if problem.nd >= 2 else 1) * ow
        pixels, pblocks = _blocked_row(plane, lanes * problem.dtype.itemsize)
    else:
        rows = problem.batch * math.prod(problem.out_size[:-1])
        pixels, pblocks = _blocked_row(ow, lanes * problem.dtype.itemsize)
    taps = cin_g * math.prod(problem.kernel_size)
    return (blocks_oc * lanes * rows * pixels * taps, blocks_oc * rows * pblocks * taps,
            blocks_oc * lanes * taps, 1)


def nnpointwise_features(problem) -> tuple:
    """(multiply-adds computed, outputs written, inputs read, 1) of the
    pointwise kernel (fastconv._schedule.pointwise): output channels are
    rounded up to the vector lanes and each plane's pixels to the kernel's
    blocks, as in :func:`nndirect_features`; the outputs are stored as
    transposed register blocks, and every input is read once from memory,
    which layers with few input or output channels per output cannot
    amortise."""
    from ._kernels import _direct

    lanes = _direct.blocked_lanes(problem.dtype.itemsize)
    cout_g, cin_g = problem.out_channels_per_group, problem.in_channels_per_group
    blocks_oc = problem.groups * -(-cout_g // lanes)
    plane = math.prod(problem.out_size)
    pixels, _ = _blocked_row(plane, lanes * problem.dtype.itemsize)
    outputs = problem.batch * problem.out_channels * plane
    inputs = problem.batch * problem.in_channels * plane
    return (blocks_oc * lanes * problem.batch * pixels * cin_g, outputs, inputs, 1)


@functools.lru_cache(maxsize=512)
def nn_estimates(problem, candidates: tuple) -> dict:
    """Estimated seconds of each of `candidates` (names among "direct",
    "im2col", "fft", "winograd") for a conv1d/2d/3d problem.

    The direct kernel has two models: one-input-channel planes (the
    signal family's "direct", fitted on one-channel problems) and the
    multi-channel row kernel ("nndirect").  Cached per problem: do not
    modify the returned dict.
    """
    macs = problem.flops // 2
    outputs = problem.batch * problem.out_channels * math.prod(problem.out_size)
    key = _key(2, problem.dtype)
    est = {}
    for name in candidates:
        if name == "direct":
            if problem.in_channels_per_group == 1:
                est[name] = _predict("direct", _key(problem.nd, problem.dtype),
                                     (macs, outputs, 1))
            elif pointwise(problem):
                est[name] = _predict("nnpointwise", key, nnpointwise_features(problem))
            elif channel_blocked(problem):
                est[name] = _predict("nndirect", key, nndirect_features(problem))
            else:
                est[name] = _predict("nnrows", key, nnrows_features(problem))
        elif name == "im2col":
            est[name] = _predict("im2col", key, im2col_features(problem))
        elif name == "fft":
            est[name] = _predict("nnfft", key, nn_fft_features(problem))
        elif name == "winograd":
            est[name] = _predict("winograd", key, winograd_features(problem))
    return est


def sparse_time(problem, nnz: int) -> float:
    """Estimated seconds of the sparse-weight path with `nnz` nonzero weights.

    Features (fastconv._sparse.features): multiply-adds over the polyphase
    grid (nnz times the grid positions per image), grid positions stored,
    input elements laid out, weight taps packed (every call counts and
    packs the weights), 1.  Fitted for 2-D layers per precision, also used
    for 1-D and 3-D.
    """
    fixed, per_nonzero = _sparse_line(problem)
    return fixed + per_nonzero * nnz


@functools.lru_cache(maxsize=512)
def _sparse_line(problem) -> tuple:
    """The sparse model of `problem` as (seconds at no nonzeros, seconds per
    nonzero): it is linear in nnz, and "auto" asks it on every call."""
    from ._sparse import features

    key = _key(2, problem.dtype)
    fixed = _predict("sparse", key, features(problem, 0))
    return fixed, _predict("sparse", key, features(problem, 1)) - fixed


def separable_time(problem, rank: int) -> float:
    """Estimated seconds of the separable path: two direct passes per rank
    term, vertical (kH taps over OH x W) then horizontal (kW over OH x OW),
    each paying the direct kernel's fixed cost."""
    kh, kw = problem.kernel_size[-2:]
    oh, ow = problem.out_size[-2:]
    w = problem.in_size[-1]
    planes = problem.batch * problem.out_channels * math.prod(problem.out_size[:-2])
    macs = rank * planes * oh * (kh * w + kw * ow)
    outputs = rank * planes * oh * (w + ow)
    key = _key(2, problem.dtype)
    fixed = coefficients()["direct"][key][-1]
    return _predict("direct", key, (macs, outputs, 1)) + (2 * rank - 1) * fixed
