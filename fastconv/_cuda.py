"""CuPy backend: CuPy arrays, CUDA kernels of ``fastconv/_kernels/cuda``.

Status: run on an NVIDIA H100 (CuPy 14.2, CUDA 13) in the session of
2026-11-23, where the CuPy test files (tests/test_cuda*.py) passed; the
"sparse" algorithm, the one-row launch of the tiled kernel and Winograd's
filter transform as two GEMMs came later and have not run on a GPU.
Without a GPU the CuPy tests skip; the test suite compiles every CUDA
source with nvcc for sm_80 and sm_90 and runs this backend with its
kernels built as host C++ (tests/cuda_host.py).

It serves conv1d/conv2d/conv3d (the neural-network family) for CuPy arrays
in float32 and float64, and float16 (computed in float32: the inputs
converted, every output accumulated in float32 and rounded once), with
every stride, padding, padding mode, dilation and group count the front
end accepts.  Results stay on the device, are computed on CuPy's current
stream and on the device of `x` (the weights are expected on the same
device), and ``out=`` takes a CuPy array.  Five algorithms:

``"direct"``
    2-D problems with filters of at most 64 taps (32 in float64):
    ``fc_conv2d_tiled`` of ``tiled.cu``, register tiling (R output rows by
    OCB output channels per thread, the filters in registers, inputs read
    through the read-only cache; see :func:`tiled_config`).  Otherwise
    ``fc_conv_direct`` of ``direct.cu``: one thread per output element, the
    output channel's filter staged in shared memory when it fits
    (DIRECT_SHARED_BYTES).  Zero padding by bounds checks in both.
``"im2col"``
    ``fc_im2col`` of ``im2col.cu`` writes the im2col columns of a tile of
    output positions (all images and groups), ``cupy.matmul`` (cuBLAS)
    multiplies them by the weights as one wide GEMM per group and tile;
    tiles hold at most IM2COL_TILE_BYTES of columns, so memory stays
    bounded.  1x1 kernels at stride 1 without padding skip the columns (the
    input is its own im2col matrix).
``"fft"``
    ``cupy.fft.rfftn``/``irfftn`` (cuFFT; CuPy caches the plans) with the
    math of :mod:`fastconv._fft`: the dilated, flipped filters and the
    padded input are transformed, the channels of each group summed in the
    frequency domain (one batched matrix product over the frequencies), and
    the stride-1 result sampled at the stride.
``"winograd"``
    F(2x2,3x3) and F(4x4,3x3) for 3x3 conv2d at stride 1 and dilation 1
    (:mod:`fastconv._cuda_winograd`: transform kernels of ``winograd.cu``,
    the transform-domain products as batched cuBLAS GEMMs).
``"sparse"``
    Pruned weights: each group's (C_out/G, K) weights as a
    ``cupyx.scipy.sparse`` CSR matrix (built once per prepare), times the
    im2col tiles of ``"im2col"`` (cuSPARSE SpMM).  Zero weights are
    skipped, so a NaN or Inf input under a zero weight gives no NaN (as on
    the CPU).  Only when asked for: "auto" does not consider it (its rate
    on the GPU has not been measured).

Padding modes other than zeros are applied with ``cupy.pad`` before the
kernels run.  The kernels are compiled by NVRTC through ``cupy.RawModule``
(templated on the element type, and the tiled and Winograd kernels on
their sizes, through name expressions), once per device and instantiation
(:func:`kernel_function`).

Cost model of ``"auto"`` (:meth:`CuPyBackend.estimate`): a FLOP-rate and
bandwidth model whose constants (GPU_MODEL) were fitted by hand to one
run of benchmarks/gpu_bench.py on an H100.  ``"auto"`` never runs
``"fft"`` or ``"winograd"`` on data holding NaN or Inf.

The adjoint side (conv_transpose*, fastconv.grad, im2col/col2im) is served
for CuPy arrays too, through :attr:`CuPyBackend.adjoint`, the module
:mod:`fastconv._cuda_adjoint`: GEMM + col2im (``fc_col2im`` of
``col2im.cu``) and the weight gradient on cuBLAS, im2col by ``fc_im2col``;
the polyphase transposed plan runs on this backend's convolutions.
fastconv.signal serves CuPy arrays through :mod:`fastconv._cuda_signal`.
Not served on the GPU: the "separable" algorithm (ValueError naming the
available ones).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from importlib import resources
from typing import NamedTuple

import numpy as np

from ._backends import deliver, output_target
from ._cpu import _geometry

__all__ = ["CuPyBackend", "kernel_source", "kernel_function", "tiled_config", "im2col_grid",
           "CUDA_SOURCES", "GPU_MODEL"]

#: The .cu files of fastconv/_kernels/cuda and the kernel templates each
#: defines (each instantiated for float and double through name expressions).
CUDA_SOURCES = {
    "direct.cu": ("fc_conv_direct",),
    "tiled.cu": ("fc_conv2d_tiled",),
    "winograd.cu": ("fc_winograd_input", "fc_winograd_output"),
    "im2col.cu": ("fc_im2col",),
    "col2im.cu": ("fc_col2im",),
}
_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
#: NVRTC options of every module.
NVRTC_OPTIONS = ("-std=c++17",)

#: Threads per block of both kernels.
BLOCK = 256
#: Largest grid extents used (the kernels loop over the rest).
MAX_GRID_X = 65535
MAX_GRID_Y = 65535
#: A filter of at most this many bytes is staged in shared memory by the
#: direct kernel (48 KiB: the dynamic shared memory a kernel may use
#: without an opt-in attribute).
DIRECT_SHARED_BYTES = 48 * 1024
#: The tiled 2-D direct kernel (tiled.cu) keeps the filters of OCB output
#: channels in registers: at most TILED_FILTER_REGS values per dtype
#: (KH * KW * OCB), OCB at most TILED_MAX_OCB, R output rows per thread.
TILED_FILTER_REGS = {np.dtype(np.float32): 64, np.dtype(np.float64): 32}
TILED_MAX_OCB = 4
TILED_ROWS = {np.dtype(np.float32): 8, np.dtype(np.float64): 4}
#: Threads per block of the tiled kernel (at most; small outputs use fewer).
TILED_THREADS = 256
#: Blocks of TILED_THREADS per multiprocessor its register use must allow
#: (its launch bound).  Measured on an H100 (8192^2 image, 7x7 kernel):
#: 1.65 ms at 1, 1.10 at 2, 0.72 at 3.
TILED_MIN_BLOCKS = 3
#: Bytes of im2col columns per tile (the im2col path's working memory).
IM2COL_TILE_BYTES = 64 << 20
_INT_MAX = 2**31 - 1
_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)

#: Constants of the GPU cost model of "auto" (CuPyBackend.estimate), fitted
#: by hand to timings on one H100 80GB HBM3 (float32; CUDA events, medians
#: of 10 calls after 3 warm-ups, benchmarks/gpu_bench.py --quick): the
#: 8192^2 one-channel image with 3x3, 5x5, 7x7 and 15x15 kernels and the
#: CNN layers of DESIGN.md section 5 at N=1 and N=32.  The float64 rates
#: are the float32 ones halved, not measured.  The fit is rough (one
#: machine, one run of each case, runs that varied by up to 30%): it ranks
#: the paths, it does not predict times closely.
#:
#: ``call_s``: each path's host-side floor per call (its CuPy operations'
#: launches and Python work, which overlap the GPU's work: an estimate is
#: the larger of the two), read off the N=1 layers;
#: ``launch_s``: seconds per further kernel launch or library call (tiles);
#: ``gpu_blocks_full``: blocks of the tiled kernel that fill the GPU (132
#: multiprocessors, TILED_MIN_BLOCKS each): fewer scale its rate down;
#: ``tiled_flops``: FLOP/s of the tiled direct kernel (tiled.cu) on outputs
#: of at least ``tiled_full_pixels`` positions per plane; smaller planes
#: scale it by (pixels / tiled_full_pixels) ** 0.2 (partly empty blocks);
#: strides above 1 along H divide it by ``tiled_strided_penalty`` (one load
#: per tap instead of the sliding rows), and fewer than ``tiled_full_reuse``
#: multiply-adds per load (KH * KW * OCB: 1x1 kernels) scale it by the
#: square root of their share;
#: ``direct_flops``: FLOP/s of the one-thread-per-output kernel (direct.cu:
#: 3-D problems, filters beyond the register budget);
#: ``direct_bandwidth``: bytes/s at which the direct kernels read the input
#: and write the output (the 3x3 image case is bound by it);
#: ``gemm_flops``: FLOP/s of the im2col and Winograd products (cupy.matmul);
#: ``fft_flops``: FLOP/s of cuFFT, counting 2.5 n log2 n per real transform;
#: ``product_flops``: FLOP/s of the FFT path's complex channel products;
#: ``bandwidth``: bytes/s of the im2col columns and the FFT spectra;
#: ``winograd_bandwidth``: bytes/s of the Winograd path's traffic (its
#: transform kernels stream V and M).
GPU_MODEL = {
    "call_s": {"direct": 7e-5, "im2col": 1.5e-4, "fft": 6e-4, "winograd": 3e-4},
    "launch_s": 1e-5,
    "gpu_blocks_full": 132 * TILED_MIN_BLOCKS,
    "tiled_flops": {_F32: 18e12, _F64: 9e12},
    "tiled_full_pixels": 224 * 224,
    "tiled_strided_penalty": 3.0,
    "tiled_full_reuse": 16,
    "direct_flops": {_F32: 2e12, _F64: 1e12},
    "direct_bandwidth": 1.3e12,
    "gemm_flops": {_F32: 7e12, _F64: 3.5e12},
    "fft_flops": {_F32: 2.4e12, _F64: 1.2e12},
    "product_flops": {_F32: 15e12, _F64: 7.5e12},
    "bandwidth": 1.5e12,
    "winograd_bandwidth": 2.5e12,
}


def _cupy():
    import cupy

    return cupy


def kernel_source(filename: str) -> str:
    """The CUDA C++ source of one file of ``fastconv/_kernels/cuda``.

    Parameters
    ----------
    filename : str
        A key of CUDA_SOURCES, e.g. ``"direct.cu"``.

    Returns
    -------
    source : str
    """
    if filename not in CUDA_SOURCES:
        raise ValueError(f"unknown CUDA source {filename!r} (known: {tuple(CUDA_SOURCES)})")
    return resources.files("fastconv._kernels").joinpath("cuda", filename).read_text()


@functools.lru_cache(maxsize=None)
def _module(filename: str, name: str, device_id: int, options: tuple):
    """The RawModule of one kernel instantiation for one device: NVRTC
    compiles `filename` for the name expression `name` with `options` on
    first use (cached, so once per device, instantiation and options)."""
    cupy = _cupy()
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=kernel_source(filename), options=options,
                              name_expressions=[name])


def kernel_function(filename: str, kernel: str, dtype, *params: int):
    """The compiled kernel ``kernel<T, params...>`` of `filename` for the
    current device.

    Parameters
    ----------
    filename : str
        A key of CUDA_SOURCES.
    kernel : str
        A kernel template of that file, e.g. ``"fc_conv_direct"``.
    dtype : numpy dtype
        float32 or float64 (T = float or double).
    *params : int
        The template's further (integer) arguments, e.g. the filter size
        of ``fc_conv2d_tiled``.

    Returns
    -------
    cupy.RawKernel
    """
    cupy = _cupy()
    device_id = cupy.cuda.runtime.getDevice()
    name = f"{kernel}<{', '.join([_CTYPE[np.dtype(dtype)]] + [str(int(v)) for v in params])}>"
    with cupy.cuda.Device(device_id):
        options = NVRTC_OPTIONS + (f"-DFC_MIN_BLOCKS={TILED_MIN_BLOCKS}",)
        return _module(filename, name, device_id, options).get_function(name)


#: The dtype each problem dtype is computed in: float16 in float32 (its
#: inputs converted, every output accumulated in float32 and rounded once).
_COMPUTE_DTYPE = {np.dtype(np.float16): np.dtype(np.float32)}


def _computed(problem):
    """`problem` with the dtype its kernels compute in."""
    dt = _COMPUTE_DTYPE.get(np.dtype(problem.dtype))
    return problem if dt is None else dataclasses.replace(problem, dtype=dt)


def _sparse_module():
    """cupyx.scipy.sparse (cuSPARSE), imported on first use of "sparse"."""
    import cupyx.scipy.sparse

    return cupyx.scipy.sparse


def _winograd_module():
    """fastconv._cuda_winograd (imported on first use: it imports this module)."""
    from . import _cuda_winograd

    return _cuda_winograd


def _i64(*values):
    return tuple(np.int64(v) for v in values)


class TiledConfig(NamedTuple):
    """Launch of the tiled 2-D direct kernel (tiled.cu).

    Attributes
    ----------
    rows, ocb : int
        Output rows per thread (R) and output channels per thread (OCB).
    block, grid : tuple of int
        CUDA block (BX, BY, 1) and grid.
    """

    rows: int
    ocb: int
    block: tuple
    grid: tuple


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def _pow2_ceil(n: int) -> int:
    return 1 << (max(1, n) - 1).bit_length()


def im2col_grid(rows: int, ncols: int) -> tuple:
    """Grid of fc_im2col (blocks of BLOCK threads) for `rows` rows of
    `ncols` columns: y walks the rows, x a row's columns (both capped,
    the kernel loops over the rest)."""
    return (max(1, min(-(-ncols // BLOCK), MAX_GRID_X)), max(1, min(rows, MAX_GRID_Y)), 1)


def pointwise(geo) -> bool:
    """Whether a convolution is a plain matrix product per image: a 1x1(x1)
    kernel at stride 1 with no zero padding the kernels apply."""
    return (geo.w5[2:] == (1, 1, 1) and geo.stride == (1, 1, 1)
            and geo.pad_before == (0, 0, 0) and geo.out5[2:] == geo.x5[2:])


def tiled_config(dtype, x5, w5, geo):
    """The tiled kernel's launch for a direct convolution, or None when it
    does not serve it (the one-thread-per-output kernel of direct.cu runs).

    It serves 2-D problems (depth 1 and kernel depth 1 after lifting) whose
    filters fit the register budget (TILED_FILTER_REGS values with OCB = 1)
    and whose grid fits CUDA's limits.  OCB is the largest power of two up
    to TILED_MAX_OCB within the budget and the output channels per group; a
    block is BX = min(32, OW rounded up to a power of two) columns by BY
    thread rows of R output rows each (at most TILED_THREADS threads);
    outputs of at most R rows (conv1d) take R = OH rounded up to a power of
    two and blocks up to TILED_THREADS wide.
    """
    dt = np.dtype(dtype)
    if dt not in TILED_ROWS:
        return None
    _, c, d, _, _ = x5
    o, cin_g, kd, kh, kw = w5
    n, _, od, oh, ow = geo.out5
    taps = kh * kw
    budget = TILED_FILTER_REGS[dt]
    if d != 1 or kd != 1 or od != 1 or taps > budget:
        return None
    og = o // (c // cin_g)
    ocb = _pow2_floor(min(TILED_MAX_OCB, budget // taps, og))
    rows = min(TILED_ROWS[dt], _pow2_ceil(oh))  # conv1d: one row, no idle rows
    # one block row covers the output's height: the block widens instead
    bx = min(32 if oh > rows else TILED_THREADS, _pow2_ceil(ow))
    by = min(TILED_THREADS // bx, _pow2_ceil(-(-oh // rows)))
    grid = (-(-ow // bx), -(-oh // (by * rows)),
            min(n * (c // cin_g) * -(-og // ocb), MAX_GRID_Y))
    if grid[1] > MAX_GRID_Y or grid[0] > _INT_MAX:
        return None
    return TiledConfig(rows, ocb, (bx, by, 1), grid)


class FFTFilters(NamedTuple):
    """Filter spectra of the FFT path (what plans keep).

    Attributes
    ----------
    lengths : tuple of int
        Transform length per spatial axis (3 axes).
    reach : tuple of int
        ``(k - 1) * dilation + 1`` per spatial axis.
    extent : tuple of int
        Padded input extent the outputs read, per axis.
    wt : cupy array
        Spectra of the dilated, flipped filters: (G, C_out/G, F) when each
        group has one input channel, else (F, G, C_in/G, C_out/G) for the
        batched product over the F frequencies.
    """

    lengths: tuple
    reach: tuple
    extent: tuple
    wt: object


class Prepared(NamedTuple):
    """A convolution laid out for one algorithm (see CuPyBackend.prepare).

    Attributes
    ----------
    algorithm : str
    problem : ConvProblem
    geometry : fastconv._cpu._Geometry
        The 5-D layout (the same as the CPU backend's).
    w5 : cupy array (C_out, C_in/groups, KD, KH, KW), C-contiguous
    bias : cupy array (C_out,) or (0,)
    state : object
        im2col: the weights as (G, C_out/G, K); fft: FFTFilters; else None.
    """

    algorithm: str
    problem: object
    geometry: object
    w5: object
    bias: object
    state: object


def _fast_len(n: int) -> int:
    """cuFFT's fast transform length >= n (cupyx.scipy.fft.next_fast_len:
    2^a 3^b 5^c 7^d; computed on the host)."""
    from cupyx.scipy import fft as cfft

    return int(cfft.next_fast_len(max(1, n)))


def _fft_lengths(problem):
    geo = _geometry(problem)
    reach = tuple((k - 1) * d + 1 for k, d in zip(geo.w5[2:], geo.dilation))
    extent = tuple((o - 1) * s + r for o, s, r in zip(geo.out5[2:], geo.stride, reach))
    return reach, extent


class CuPyBackend:
    """Backend for CuPy arrays (see the module docstring).

    Implements the backend protocol of :mod:`fastconv._backends`.  Creating
    it imports CuPy (the registry does so on the first call with CuPy
    arrays only).
    """

    name = "cupy"
    algorithms = ("direct", "im2col", "fft", "winograd", "sparse")
    #: float16 inputs are accepted (computed in float32).
    accepts_half = True
    #: "fft" mixes a whole signal and "winograd" a whole tile, so a NaN or
    #: Inf spreads beyond the windows that cover it, and "sparse" skips zero
    #: weights (0 * Inf gives no NaN there): "auto" runs them on finite
    #: data only.
    finite_only = ("fft", "winograd", "sparse")

    def __init__(self):
        self._cp = _cupy()

    @property
    def adjoint(self):
        """fastconv._cuda_adjoint (imported on first use: it needs this module)."""
        from . import _cuda_adjoint

        return _cuda_adjoint

    def _device_of(self, a):
        """The CUDA device holding `a`, as a context manager."""
        return self._cp.cuda.Device(a.device.id)

    def is_array(self, a) -> bool:
        return isinstance(a, self._cp.ndarray)

    def unsupported_reason(self, problem, algorithm):
        """Why `algorithm` cannot serve `problem` on the GPU, or None.

        "direct" and "fft" serve every valid problem.  "im2col" multiplies
        (C_out/G, K) weights by (K, N * tile) columns with cuBLAS, whose
        matrix sizes are 32-bit ints (as the CPU's BLAS): K = C_in/G * kernel
        volume and C_out/G must fit (the tile is chosen to fit); "sparse"
        likewise with cuSPARSE's 32-bit indices.  "winograd"
        serves 2-D 3x3 kernels at stride 1 and dilation 1
        (fastconv._cuda_winograd.unsupported_reason).
        """
        if algorithm in ("im2col", "sparse"):
            k = problem.in_channels_per_group * math.prod(problem.kernel_size)
            rows = max(k, problem.out_channels_per_group, problem.batch)
            if algorithm == "sparse":  # the CSR arrays' nonzeros too
                rows = max(rows, problem.out_channels_per_group * k)
            if rows > _INT_MAX:
                library = "cuBLAS" if algorithm == "im2col" else "cuSPARSE"
                return (f"{algorithm} calls 32-bit {library}, which cannot multiply matrices "
                        f"with {rows} rows, columns or entries")
        if algorithm == "winograd":
            return _winograd_module().unsupported_reason(_computed(problem))
        return None

    # ------------------------------------------------------------------ cost model
    def estimate(self, problem, weight=None) -> dict:
        """Estimated seconds of each candidate of "auto" on the GPU.

        A FLOP-rate and bandwidth model with the constants of GPU_MODEL
        (fitted on an H100; float16 problems are costed as the float32 they
        compute in):

        - direct: the tiled kernel's rate when it serves the problem
          (:func:`tiled_config`; scaled down for grids that do not fill the
          GPU), else the one-thread-per-output kernel's, plus the input and
          output at the direct bandwidth;
        - im2col: the GEMM flops, the columns written and read once, a
          launch and a GEMM call per tile;
        - fft: the real transforms of input, filters and output at
          2.5 n log2 n flops each, the complex channel products, the
          spectra's traffic, or the path's host-side floor if larger;
        - winograd (where it serves): the transform-domain GEMMs (or
          elementwise products for one input channel per group) and the
          traffic of the input, the transformed tiles V and M, the output;

        each at least the path's host-side floor (``call_s``).  `weight` is
        accepted for the protocol and not used.
        """
        p = _computed(problem)
        m = GPU_MODEL
        dt = np.dtype(p.dtype)
        launch = m["launch_s"]
        geo = _geometry(p)
        npix = math.prod(p.out_size)
        io_bytes = (math.prod(geo.x5) + math.prod(geo.out5)) * dt.itemsize
        est = {"direct": p.flops / self._direct_rate(p, geo) + io_bytes / m["direct_bandwidth"]}

        if self.unsupported_reason(p, "im2col") is None:
            k = p.in_channels_per_group * math.prod(p.kernel_size)
            col_bytes = p.groups * k * p.batch * npix * dt.itemsize
            per_col = max(1, p.groups * k * p.batch * dt.itemsize)
            tile = max(1, min(npix, IM2COL_TILE_BYTES // per_col))
            ntiles = -(-npix // tile) if npix else 0
            if pointwise(geo):
                col_bytes, ntiles = 0, 1  # the input is its own im2col matrix
            est["im2col"] = (2 * launch * max(1, ntiles) + p.flops / m["gemm_flops"][dt]
                             + 2 * col_bytes / m["bandwidth"])

        reach, extent = _fft_lengths(p)
        lengths = [_fast_len(e) for e in extent]
        points = math.prod(lengths)
        freqs = math.prod(lengths[:-1]) * (lengths[-1] // 2 + 1)
        per_transform = 2.5 * points * math.log2(max(points, 2))
        transforms = p.batch * p.in_channels + p.out_channels * p.in_channels_per_group \
            + p.batch * p.out_channels
        products = 8.0 * p.batch * p.out_channels * p.in_channels_per_group * freqs
        spectra_bytes = 2 * dt.itemsize * freqs * transforms
        est["fft"] = (transforms * per_transform / m["fft_flops"][dt]
                      + products / m["product_flops"][dt] + 2 * spectra_bytes / m["bandwidth"])

        if self.unsupported_reason(p, "winograd") is None:
            wino = _winograd_module()
            tm = wino.choose_m(p)
            oh, ow = p.out_size
            tiles = p.batch * -(-oh // tm) * -(-ow // tm)
            tpoints = (tm + 2) ** 2
            gemm = 2.0 * tpoints * tiles * p.out_channels * p.in_channels_per_group
            rate = m["gemm_flops"][dt] if p.in_channels_per_group > 1 else m["bandwidth"]
            transformed = tpoints * tiles * (p.in_channels + p.out_channels) * dt.itemsize
            chunks = -(-tiles // wino.chunk_tiles(p, tm))
            est["winograd"] = (3 * launch * chunks + gemm / rate
                               + (2 * transformed + io_bytes) / m["winograd_bandwidth"])
        return {a: max(m["call_s"][a], t) for a, t in est.items()}

    @staticmethod
    def _direct_rate(p, geo) -> float:
        """FLOP/s of the direct path on `p` (see GPU_MODEL)."""
        m = GPU_MODEL
        dt = np.dtype(p.dtype)
        config = tiled_config(dt, geo.x5, geo.w5, geo)
        if config is None:
            return m["direct_flops"][dt]
        plane = math.prod(geo.out5[2:])
        rate = m["tiled_flops"][dt] * min(1.0, plane / m["tiled_full_pixels"]) ** 0.2
        if geo.stride[1] > 1 or geo.dilation[1] > 1:
            rate /= m["tiled_strided_penalty"]
        reuse = geo.w5[3] * geo.w5[4] * config.ocb
        gx, gy, _ = config.grid
        blocks = gx * gy * geo.out5[0] * (geo.x5[1] // geo.w5[1]) * -(-(
            geo.w5[0] // (geo.x5[1] // geo.w5[1])) // config.ocb)
        fill = min(1.0, blocks / m["gpu_blocks_full"])
        return rate * fill * min(1.0, reuse / m["tiled_full_reuse"]) ** 0.5

    def choose_algorithm(self, problem, weight=None) -> str:
        """The "auto" choice for `problem` (before the finiteness check)."""
        est = self.estimate(problem, weight)
        return min(est, key=est.get)

    def fallback_algorithm(self, problem) -> str:
        """The fastest algorithm outside finite_only by the cost model: what
        "auto" runs on data holding NaN or Inf."""
        est = self.estimate(problem)
        return min((a for a in est if a not in self.finite_only), key=est.get)

    def all_finite(self, *arrays) -> bool:
        """Whether every given array (None skipped) holds only finite values
        (``cupy.isfinite(a).all()``: one reduction and a device-to-host copy
        of its result per array)."""
        cp = self._cp
        for a in arrays:
            if a is not None and not bool(cp.isfinite(a).all()):
                return False
        return True

    def auto_algorithm(self, problem, x, weight) -> str:
        """The algorithm "auto" runs for these arrays: the estimated fastest,
        but never "fft" when an input holds NaN or Inf."""
        algorithm = self.choose_algorithm(problem, weight)
        if algorithm in self.finite_only and not self.all_finite(x, weight):
            algorithm = self.fallback_algorithm(problem)
        return algorithm

    # ------------------------------------------------------------------ running
    def prepare(self, problem, algorithm, weight, bias, nthreads=1, transient=False) -> Prepared:
        """Lay out the weights for `algorithm` (not "auto") once: the weights
        in the problem's dtype, and for "im2col" the (G, C_out/G, K) view,
        for "fft" the filter spectra.  `nthreads` and `transient` are part of
        the protocol and not used on the GPU."""
        cp = self._cp
        p = _computed(problem)
        geo = _geometry(p)
        dt = p.dtype
        with self._device_of(weight):
            w5 = cp.ascontiguousarray(cp.asarray(weight, dtype=dt).reshape(geo.w5))
            b = (cp.ascontiguousarray(cp.asarray(bias, dtype=dt)) if bias is not None
                 else cp.empty(0, dtype=dt))
            state = None  # direct, and where no kernel runs (empty output or channels)
            computed = p.in_channels_per_group > 0 and 0 not in geo.out5
            if computed and algorithm == "im2col":
                k = math.prod(geo.w5[1:])
                state = w5.reshape(p.groups, p.out_channels_per_group, k)
            elif computed and algorithm == "fft":
                state = self._fft_filters(w5, p)
            elif computed and algorithm == "winograd":
                wino = _winograd_module()
                state = wino.prepare(w5, p, wino.choose_m(p))
            elif computed and algorithm == "sparse":
                k = math.prod(geo.w5[1:])
                wg = w5.reshape(p.groups, p.out_channels_per_group, k)
                state = tuple(_sparse_module().csr_matrix(wg[i]) for i in range(p.groups))
        return Prepared(algorithm, problem, geo, w5, b, state)

    @staticmethod
    def tuning_tag(weight) -> str:
        """Autotuning entries of this backend are its own (see fastconv._tuning)."""
        return "cupy"

    def synchronize(self):
        """Wait for CuPy's current stream (autotuning times finished work)."""
        self._cp.cuda.get_current_stream().synchronize()

    def conv(self, x, weight, bias, problem, algorithm, out, nthreads):
        if algorithm == "auto":
            algorithm = self.auto_algorithm(problem, x, weight)
        prepared = self.prepare(problem, algorithm, weight, bias, nthreads, transient=True)
        return self.execute(prepared, x, out, nthreads)

    def execute(self, prepared: Prepared, x, out, nthreads=1):
        """Run a prepared convolution on `x` (validated against its problem),
        on the device of `x` and CuPy's current stream."""
        cp = self._cp
        algorithm, user_problem, geo, w5, b, state = prepared
        p = _computed(user_problem)
        with self._device_of(x):
            target = output_target(out, geo.out5, user_problem.dtype, (x, w5, b), cp)
            # float16 is computed in float32 and rounded once at the end
            work = target if p.dtype == target.dtype else cp.empty(geo.out5, dtype=p.dtype)
            if target.size and p.in_channels_per_group == 0:
                work[...] = 0 if b.size == 0 else b.reshape(-1, 1, 1, 1)
            elif target.size:
                x5 = self._layout_input(x, p, geo)
                if algorithm == "direct":
                    self._direct(x5, w5, b, work, p, geo)
                elif algorithm == "im2col":
                    self._im2col(x5, state, b, work, p, geo)
                elif algorithm == "fft":
                    self._fft(x5, state, b, work, p, geo)
                elif algorithm == "winograd":
                    _winograd_module().run(x5, state, b, work, p, geo)
                elif algorithm == "sparse":
                    self._sparse(x5, state, b, work, p, geo)
                else:
                    raise ValueError(f"algorithm={algorithm!r} is not available for cupy "
                                     f"arrays (available: {self.algorithms})")
            if work is not target:
                target[...] = work
            return deliver(target, p.user_out_shape, out, cp)

    def _layout_input(self, x, p, geo):
        """5-D C-contiguous input in the problem's dtype, non-zero padding applied."""
        cp = self._cp
        x5 = cp.asarray(x).reshape(geo.x5)
        if p.padding_mode != "zeros":
            x5 = cp.pad(x5, geo.pad_widths, mode=_PAD_MODE[p.padding_mode])
        return cp.ascontiguousarray(x5, dtype=p.dtype)

    @staticmethod
    def _size_args(geo):
        """Strides, leading zero pads and dilations (3 each) as int64 kernel
        arguments."""
        return _i64(*geo.stride, *geo.pad_before, *geo.dilation)

    def _direct(self, x5, w5, b, target, p, geo):
        config = tiled_config(p.dtype, x5.shape, w5.shape, geo)
        if config is not None:
            self._direct_tiled(x5, w5, b, target, geo, config)
            return
        n, c, d, h, w = x5.shape
        o, cin_g, kd, kh, kw = w5.shape
        od, oh, ow = geo.out5[2:]
        npix = od * oh * ow
        filter_bytes = cin_g * kd * kh * kw * w5.dtype.itemsize
        shared = filter_bytes <= DIRECT_SHARED_BYTES
        grid = (min(-(-npix // BLOCK), MAX_GRID_X), min(n * o, MAX_GRID_Y), 1)
        kernel = kernel_function("direct.cu", "fc_conv_direct", p.dtype)
        args = ((x5, w5, b, target) + _i64(n, c, d, h, w, o, p.groups, kd, kh, kw, od, oh, ow)
                + self._size_args(geo) + (np.int32(b.size > 0), np.int32(shared)))
        kernel(grid, (BLOCK, 1, 1), args, shared_mem=filter_bytes if shared else 0)

    @staticmethod
    def _direct_tiled(x5, w5, b, target, geo, config):
        n, c, _, h, w = x5.shape
        o, _, _, kh, kw = w5.shape
        oh, ow = geo.out5[3:]
        kernel = kernel_function("tiled.cu", "fc_conv2d_tiled", x5.dtype, kh, kw,
                                 config.rows, config.ocb)
        groups = c // w5.shape[1]
        args = ((x5, w5, b, target) + _i64(n, c, h, w, o, groups, oh, ow)
                + tuple(np.int32(v) for v in (*geo.stride[1:], *geo.pad_before[1:],
                                              *geo.dilation[1:], b.size > 0)))
        kernel(config.grid, config.block, args)

    def _im2col(self, x5, wg, b, target, p, geo):
        cp = self._cp
        n = x5.shape[0]
        g, cout_g, k = wg.shape
        npix = math.prod(geo.out5[2:])
        y4 = target.reshape(n, g, cout_g, npix)
        if pointwise(geo):
            # A 1x1 convolution at stride 1 without padding: the input is its
            # own im2col matrix.
            cp.matmul(wg, x5.reshape(n, g, k, npix), out=y4)
        else:
            # (G, C_out/G, K) @ (G, K, columns): one wide GEMM per group
            self._im2col_tiles(x5, y4, geo, k, lambda cols: cp.matmul(wg, cols))
        if b.size:
            target += b.reshape(1, -1, 1, 1, 1)

    def _sparse(self, x5, csr, b, target, p, geo):
        """Pruned weights: per im2col tile and group, the CSR weights times
        the dense columns (cuSPARSE SpMM through cupyx.scipy.sparse)."""
        cp = self._cp
        n = x5.shape[0]
        g, cout_g = p.groups, p.out_channels_per_group
        k = p.in_channels_per_group * math.prod(p.kernel_size)
        y4 = target.reshape(n, g, cout_g, math.prod(geo.out5[2:]))

        def multiply(cols):  # (G, K, columns) -> (G, C_out/G, columns)
            return cp.stack([csr[i] @ cols[i] for i in range(g)])

        self._im2col_tiles(x5, y4, geo, k, multiply)
        if b.size:
            target += b.reshape(1, -1, 1, 1, 1)

    def _im2col_tiles(self, x5, y4, geo, k, multiply):
        """Tiles of output positions of every image (at most
        IM2COL_TILE_BYTES of columns): fc_im2col writes the tile's (G, K,
        N * ncols) columns, ``multiply(cols)`` returns the weights times
        them, (G, C_out/G, N * ncols), moved into the (N, G, C_out/G, P)
        output `y4`."""
        cp = self._cp
        n, c, d, h, w = x5.shape
        kd, kh, kw = geo.w5[2:]
        od, oh, ow = geo.out5[2:]
        _, g, cout_g, npix = y4.shape
        per_col = g * k * n * x5.dtype.itemsize
        tile = max(1, min(npix, IM2COL_TILE_BYTES // per_col))
        buf = cp.empty(g * k * n * tile, dtype=x5.dtype)
        kernel = kernel_function("im2col.cu", "fc_im2col", x5.dtype)
        for p0 in range(0, npix, tile):
            ncols = min(tile, npix - p0)
            cols = buf[:g * k * n * ncols]
            args = ((x5, cols) + _i64(n, c, d, h, w, g, kd, kh, kw, od, oh, ow)
                    + self._size_args(geo) + _i64(p0, ncols))
            kernel(im2col_grid(g * k * n, ncols), (BLOCK, 1, 1), args)
            res = multiply(cols.reshape(g, k, n * ncols))
            y4[:, :, :, p0:p0 + ncols] = res.reshape(g, cout_g, n, ncols).transpose(2, 0, 1, 3)

    def _fft_filters(self, w5, p) -> FFTFilters:
        """Spectra of the dilated, flipped filters (as fastconv._fft.nn_filters)."""
        cp = self._cp
        geo = _geometry(p)
        reach, extent = _fft_lengths(p)
        lengths = tuple(_fast_len(e) for e in extent)
        wd = cp.zeros(w5.shape[:2] + reach, dtype=w5.dtype)
        wd[(slice(None), slice(None)) + tuple(slice(None, None, dl) for dl in geo.dilation)] = w5
        wd = wd[:, :, ::-1, ::-1, ::-1]
        wf = cp.fft.rfftn(wd, s=lengths, axes=(2, 3, 4))
        g, cout_g, cin_g = p.groups, p.out_channels_per_group, p.in_channels_per_group
        nfreq = math.prod(wf.shape[2:])
        wf = wf.reshape(g, cout_g, cin_g, nfreq)
        if cin_g == 1:
            wt = cp.ascontiguousarray(wf[:, :, 0])                   # (G, O/G, F)
        else:
            wt = cp.ascontiguousarray(wf.transpose(3, 0, 2, 1))     # (F, G, C/G, O/G)
        return FFTFilters(lengths, reach, extent, wt)

    def _fft(self, x5, filters: FFTFilters, b, target, p, geo):
        """Batched, grouped cross-correlation by FFT into `target` (the math
        of fastconv._fft.conv_nn)."""
        cp = self._cp
        n = x5.shape[0]
        g, cin_g = p.groups, p.in_channels_per_group
        # x cropped / zero-padded to the padded extent the outputs read.
        index, pads = [slice(None), slice(None)], [(0, 0), (0, 0)]
        for size, before, ext in zip(x5.shape[2:], geo.pad_before, filters.extent):
            stop = max(0, min(size, ext - before))
            index.append(slice(0, stop))
            pads.append((min(before, ext), max(0, ext - before - stop)))
        xp = cp.pad(x5[tuple(index)], pads)
        axes, lengths = (2, 3, 4), filters.lengths
        xf = cp.fft.rfftn(xp, s=lengths, axes=axes)
        fshape = xf.shape[2:]
        nfreq = math.prod(fshape)
        xg = xf.reshape(n, g, cin_g, nfreq)
        if cin_g == 1:
            yf = xg * filters.wt[None]                               # (N, G, O/G, F)
        else:
            # (F, G, N, C/G) @ (F, G, C/G, O/G) -> (F, G, N, O/G)
            yf = cp.matmul(xg.transpose(3, 1, 0, 2), filters.wt).transpose(2, 1, 3, 0)
        yf = cp.ascontiguousarray(yf).reshape((n, p.out_channels) + fshape)
        y = cp.fft.irfftn(yf, s=lengths, axes=axes)
        sample = tuple(slice(r - 1, r - 1 + (o - 1) * s + 1, s)
                       for r, o, s in zip(filters.reach, geo.out5[2:], geo.stride))
        result = y[(slice(None), slice(None)) + sample]
        if b.size:
            result = result + b.reshape(1, -1, 1, 1, 1)
        target[...] = result.astype(p.dtype, copy=False)
