"""CuPy backend: CuPy arrays, CUDA kernels of ``fastconv/_kernels/cuda``.

Status: compiled with nvcc (sm_80, sm_90) by the test suite, but **not yet
run on a GPU in this project** (issue 7 stays open).  The tests that compare
its results with the NumPy oracle skip without a GPU.

It serves conv1d/conv2d/conv3d (the neural-network family) for CuPy arrays
in float32 and float64, with every stride, padding, padding mode, dilation
and group count the front end accepts.  Results stay on the device, are
computed on CuPy's current stream and on the device of `x` (the weights are
expected on the same device), and ``out=`` takes a CuPy array.  Three
algorithms:

``"direct"``
    ``fc_conv_direct`` of ``direct.cu``: one thread per output element, the
    output channel's filter staged in shared memory when it fits
    (DIRECT_SHARED_BYTES), zero padding by bounds checks.
``"im2col"``
    ``fc_im2col`` of ``im2col.cu`` writes the im2col columns of a tile of
    output positions (all images and groups), ``cupy.matmul`` (cuBLAS)
    multiplies them by the weights as one batched GEMM per tile; tiles hold
    at most IM2COL_TILE_BYTES of columns, so memory stays bounded.
``"fft"``
    ``cupy.fft.rfftn``/``irfftn`` (cuFFT; CuPy caches the plans) with the
    math of :mod:`fastconv._fft`: the dilated, flipped filters and the
    padded input are transformed, the channels of each group summed in the
    frequency domain (one batched matrix product over the frequencies), and
    the stride-1 result sampled at the stride.

Padding modes other than zeros are applied with ``cupy.pad`` before the
kernels run.  The kernels are compiled by NVRTC through ``cupy.RawModule``
(templated on the element type through name expressions), once per device
and source file (:func:`kernel_function`).

Cost model of ``"auto"`` (:meth:`CuPyBackend.estimate`): a FLOP-rate and
bandwidth model whose constants (GPU_MODEL) are **placeholders, not
measurements**; a session with an H100 must time the three paths and fit
them.  ``"auto"`` never runs ``"fft"`` on data holding NaN or Inf.

Not served for CuPy arrays (TypeError through :attr:`CuPyBackend.adjoint`):
conv_transpose*, fastconv.grad, im2col/col2im; nor fastconv.signal.
"""
from __future__ import annotations

import functools
import math
from importlib import resources
from typing import NamedTuple

import numpy as np

from ._backends import deliver, output_target
from ._cpu import _geometry

__all__ = ["CuPyBackend", "kernel_source", "kernel_function", "CUDA_SOURCES", "GPU_MODEL"]

#: The .cu files of fastconv/_kernels/cuda and the kernel templates each
#: defines (each instantiated for float and double through name expressions).
CUDA_SOURCES = {
    "direct.cu": ("fc_conv_direct",),
    "im2col.cu": ("fc_im2col",),
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
#: Bytes of im2col columns per tile (the im2col path's working memory).
IM2COL_TILE_BYTES = 64 << 20
_INT_MAX = 2**31 - 1
_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

#: Constants of the GPU cost model.  PLACEHOLDERS, not measured on any GPU:
#: rough orders of magnitude for an H100 (SXM) chosen so that the model
#: ranks the paths plausibly; a session with a GPU must fit them to timings
#: of the three paths.
#:
#: ``launch_s``: seconds per kernel launch or library call;
#: ``direct_flops``: FLOP/s of the direct kernel, per dtype;
#: ``gemm_flops``: FLOP/s of cupy.matmul at full width, per dtype;
#: ``gemm_full_rows``: output channels per group from which a GEMM runs at
#: full rate (fewer scale the rate down linearly: a GEMV is bandwidth-bound);
#: ``fft_flops``: FLOP/s of cuFFT, counting 2.5 n log2 n per real transform;
#: ``bandwidth``: bytes/s of device memory traffic (im2col columns, spectra).
GPU_MODEL = {
    "launch_s": 1e-5,
    "direct_flops": {np.dtype(np.float32): 4e12, np.dtype(np.float64): 2e12},
    "gemm_flops": {np.dtype(np.float32): 40e12, np.dtype(np.float64): 40e12},
    "gemm_full_rows": 64,
    "fft_flops": {np.dtype(np.float32): 5e12, np.dtype(np.float64): 3e12},
    "bandwidth": 2e12,
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
def _module(filename: str, device_id: int):
    """The RawModule of one source file for one device (NVRTC compiles it on
    first use; cached, so once per device and file)."""
    cupy = _cupy()
    names = [f"{k}<{t}>" for k in CUDA_SOURCES[filename] for t in _CTYPE.values()]
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=kernel_source(filename), options=NVRTC_OPTIONS,
                              name_expressions=names)


def kernel_function(filename: str, kernel: str, dtype):
    """The compiled kernel ``kernel<T>`` of `filename` for the current device.

    Parameters
    ----------
    filename : str
        A key of CUDA_SOURCES.
    kernel : str
        A kernel template of that file, e.g. ``"fc_conv_direct"``.
    dtype : numpy dtype
        float32 or float64 (T = float or double).

    Returns
    -------
    cupy.RawKernel
    """
    cupy = _cupy()
    device_id = cupy.cuda.runtime.getDevice()
    with cupy.cuda.Device(device_id):
        return _module(filename, device_id).get_function(f"{kernel}<{_CTYPE[np.dtype(dtype)]}>")


def _i64(*values):
    return tuple(np.int64(v) for v in values)


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
    algorithms = ("direct", "im2col", "fft")
    #: "fft" mixes a whole signal, so a NaN or Inf spreads beyond the
    #: windows that cover it: "auto" runs it on finite data only.
    finite_only = ("fft",)

    def __init__(self):
        self._cp = _cupy()

    @property
    def adjoint(self):
        """The adjoint-side computations are not served for CuPy arrays."""
        raise TypeError(
            "conv_transpose*, fastconv.grad and im2col/col2im do not take CuPy arrays "
            "(the CuPy backend serves conv1d/conv2d/conv3d only); convert with "
            "cupy.asnumpy to run them on the CPU")

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
        volume and C_out/G must fit (the tile is chosen to fit).
        """
        if algorithm == "im2col":
            k = problem.in_channels_per_group * math.prod(problem.kernel_size)
            rows = max(k, problem.out_channels_per_group, problem.batch)
            if rows > _INT_MAX:
                return (f"im2col calls 32-bit cuBLAS, which cannot multiply matrices with "
                        f"{rows} rows or columns")
        return None

    # ------------------------------------------------------------------ cost model
    def estimate(self, problem, weight=None) -> dict:
        """Estimated seconds of each candidate of "auto" on the GPU.

        A FLOP-rate and bandwidth model with the constants of GPU_MODEL,
        which are placeholders, not measurements (to be fitted on an H100):

        - direct: one launch + flops / direct_flops;
        - im2col: per tile an im2col launch and a GEMM call, flops at the
          GEMM rate (scaled down when a group has fewer than
          gemm_full_rows output channels), the columns written and read
          once at the memory bandwidth;
        - fft: the real transforms of input, filters and output at
          2.5 n log2 n flops each, the complex products over the
          frequencies at the GEMM rate, and the spectra's traffic.

        `weight` is accepted for the protocol and not used.
        """
        p = problem
        m = GPU_MODEL
        dt = np.dtype(p.dtype)
        launch = m["launch_s"]
        est = {"direct": launch + p.flops / m["direct_flops"][dt]}

        if self.unsupported_reason(p, "im2col") is None:
            k = p.in_channels_per_group * math.prod(p.kernel_size)
            npix = math.prod(p.out_size)
            col_bytes = p.groups * k * p.batch * npix * dt.itemsize
            per_col = max(1, p.groups * k * p.batch * dt.itemsize)
            tile = max(1, min(npix, IM2COL_TILE_BYTES // per_col))
            ntiles = -(-npix // tile) if npix else 0
            rate = m["gemm_flops"][dt] * min(1.0, p.out_channels_per_group / m["gemm_full_rows"])
            est["im2col"] = (2 * launch * max(1, ntiles) + p.flops / rate
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
        est["fft"] = (4 * launch + transforms * per_transform / m["fft_flops"][dt]
                      + products / m["gemm_flops"][dt] + 2 * spectra_bytes / m["bandwidth"])
        return est

    def choose_algorithm(self, problem, weight=None) -> str:
        """The "auto" choice for `problem` (before the finiteness check)."""
        est = self.estimate(problem, weight)
        return min(est, key=est.get)

    def fallback_algorithm(self, problem) -> str:
        """The faster of direct and im2col by the cost model: what "auto"
        runs when "fft" is ruled out."""
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
        p = problem
        geo = _geometry(p)
        dt = p.dtype
        with self._device_of(weight):
            w5 = cp.ascontiguousarray(cp.asarray(weight, dtype=dt).reshape(geo.w5))
            b = (cp.ascontiguousarray(cp.asarray(bias, dtype=dt)) if bias is not None
                 else cp.empty(0, dtype=dt))
            state = None
            if p.in_channels_per_group == 0 or 0 in geo.out5:
                pass
            elif algorithm == "im2col":
                k = math.prod(geo.w5[1:])
                state = w5.reshape(p.groups, p.out_channels_per_group, k)
            elif algorithm == "fft":
                state = self._fft_filters(w5, p)
        return Prepared(algorithm, p, geo, w5, b, state)

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
        algorithm, p, geo, w5, b, state = prepared
        with self._device_of(x):
            target = output_target(out, geo.out5, p.dtype, (x, w5, b), cp)
            if target.size == 0:
                pass
            elif p.in_channels_per_group == 0:
                target[...] = 0 if b.size == 0 else b.reshape(-1, 1, 1, 1)
            else:
                x5 = self._layout_input(x, p, geo)
                if algorithm == "direct":
                    self._direct(x5, w5, b, target, p, geo)
                elif algorithm == "im2col":
                    self._im2col(x5, state, b, target, p, geo)
                elif algorithm == "fft":
                    self._fft(x5, state, b, target, p, geo)
                else:
                    raise ValueError(f"algorithm={algorithm!r} is not available for cupy "
                                     f"arrays (available: {self.algorithms})")
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

    def _im2col(self, x5, wg, b, target, p, geo):
        cp = self._cp
        n, c, d, h, w = x5.shape
        kd, kh, kw = geo.w5[2:]
        od, oh, ow = geo.out5[2:]
        g, cout_g, k = wg.shape
        npix = od * oh * ow
        per_col = g * k * n * x5.dtype.itemsize
        tile = max(1, min(npix, IM2COL_TILE_BYTES // per_col))
        buf = cp.empty(g * k * n * tile, dtype=p.dtype)
        y4 = target.reshape(n, g, cout_g, npix)
        kernel = kernel_function("im2col.cu", "fc_im2col", p.dtype)
        for p0 in range(0, npix, tile):
            ncols = min(tile, npix - p0)
            cols = buf[:g * k * n * ncols]
            total = cols.size
            grid = (max(1, min(-(-total // BLOCK), MAX_GRID_X)), 1, 1)
            args = ((x5, cols) + _i64(n, c, d, h, w, g, kd, kh, kw, od, oh, ow)
                    + self._size_args(geo) + _i64(p0, ncols))
            kernel(grid, (BLOCK, 1, 1), args)
            res = cp.matmul(wg, cols.reshape(g, k, n * ncols))  # (G, C_out/G, N*ncols)
            y4[:, :, :, p0:p0 + ncols] = res.reshape(g, cout_g, n, ncols).transpose(2, 0, 1, 3)
        if b.size:
            target += b.reshape(1, -1, 1, 1, 1)

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
