"""Dask arrays through fastconv (issue 8): lazy results, chunk by chunk.

The contract (fastconv._dask): a ``dask.array.Array`` argument makes
``conv1d/2d/3d``, ``conv_transpose1d/2d/3d`` and the ``fastconv.signal``
convolutions return a *lazy* Dask array with the in-memory result's shape,
dtype and known chunks; nothing is computed at call time; errors are raised
at call time as for NumPy input.

What is tested, and against what (the code under test is never its own
only oracle):

* values, against the **in-memory fastconv call on the same data**: bitwise
  (``assert_array_equal``) where the contract promises it -- conv
  ``algorithm="direct"``, signal ``method="direct"``,
  ``convolve2d`` / ``correlate2d`` with every boundary -- and, so that an
  error shared by the in-memory and chunked paths is still caught, against
  **independent oracles**:

  - conftest's ``ref.conv``: float64 cross-correlation from NumPy's
    ``sliding_window_view`` + ``einsum`` (padding modes through ``np.pad``);
  - ``scipy.ndimage.correlate`` (``padding="same"``, every padding mode);
  - ``scipy.signal``: ``convolve`` / ``correlate`` with ``method="direct"``
    on float64 / complex128 copies (integers: exact), ``convolve2d`` /
    ``correlate2d`` with every boundary, ``fftconvolve`` / ``oaconvolve``
    on float64 / complex128 copies;
  - ``torch.nn.functional.conv{1,2,3}d`` / ``conv_transpose{1,2,3}d``
    (those tests skip without PyTorch);
* chunk geometry: uneven chunks, kernels reaching beyond a chunk, padding
  wider than a chunk, strides not dividing the chunks, chunked batch
  (chunks kept) and channel (merged to one chunk) axes, non-convolved
  ``axes`` of the FFT functions (chunks kept);
* NaN/Inf locality of "auto" in geometries where the clean chunks take the
  FFT path: the non-finite mask equals the in-memory direct result's and an
  independent box-sum mask;
* laziness (a Dask array whose chunks raise on compute must not raise at
  call time), call-time errors with NumPy's type and message, TypeErrors
  (``out=``, plans, ``choose_algorithm``, ``fastconv.grad``, im2col/col2im,
  ``choose_conv_method``, CuPy mix);
* the per-chunk thread rule (``fastconv._dask.task_threads`` inside real
  chunk tasks) on the synchronous and threaded schedulers.

Tolerances, relative to ``max|oracle|`` (normwise): 1e-5 for float32 /
complex64 and 1e-12 for float64 / complex128 on the direct paths and
``conv_transpose``; ``fastconv.signal.FFT_NORMWISE_BOUND`` on the FFT paths;
for conv ``algorithm="auto"`` the larger of that and
``fastconv._winograd.ERROR_BOUND`` (auto may run Winograd in a chunk).
Integer results are compared exactly.

Everything runs on Dask's synchronous scheduler (an autouse fixture) except
the threaded-scheduler tests; ``test_dask_distributed.py`` covers
``dask.distributed``.
"""
import re
import zlib

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import dask
import scipy.ndimage as ndi
import scipy.signal as sps

import fastconv
import fastconv.grad
import fastconv.signal as fcs
from fastconv._winograd import ERROR_BOUND as WINOGRAD_BOUND

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
C64, C128 = np.dtype(np.complex64), np.dtype(np.complex128)
TOL = {F32: 1e-5, F64: 1e-12}
FFT_BOUND = fcs.FFT_NORMWISE_BOUND
AUTO_BOUND = {dt: max(FFT_BOUND[dt], WINOGRAD_BOUND[dt]) for dt in (F32, F64)}

CONV_NAME = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
CT_NAME = {1: "conv_transpose1d", 2: "conv_transpose2d", 3: "conv_transpose3d"}
NDI_MODE = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest",
            "circular": "wrap"}


def conv_fn(nd):
    return getattr(fastconv, CONV_NAME[nd])


def ct_fn(nd):
    return getattr(fastconv, CT_NAME[nd])


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def rand(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-5, 6, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def real_of(dtype):
    dtype = np.dtype(dtype)
    return np.dtype(np.finfo(dtype).dtype) if dtype.kind in "fc" else F64


def hi(a):
    """float64 / complex128 copy (oracle inputs)."""
    a = np.asarray(a)
    return a.astype(C128 if a.dtype.kind == "c" else F64)


def _boom(block):
    raise RuntimeError("poisoned chunk computed")


def poisoned(shape, dtype, chunks):
    """A Dask array of known shape/dtype/chunks whose every chunk raises."""
    dtype = np.dtype(dtype)
    base = da.zeros(shape, dtype=dtype, chunks=chunks)
    return base.map_blocks(_boom, dtype=dtype, meta=np.empty((0,) * len(shape), dtype))


def materialise(y, like):
    """Check the lazy result's metadata against `like` (the in-memory result)
    without computing, then compute it."""
    assert isinstance(y, da.Array), f"result is {type(y).__name__}, not a dask array"
    assert y.shape == like.shape, f"lazy shape {y.shape} != in-memory {like.shape}"
    assert y.dtype == like.dtype, f"lazy dtype {y.dtype} != in-memory {like.dtype}"
    assert not any(np.isnan(c) for cs in y.chunks for c in cs), f"unknown chunks {y.chunks}"
    assert tuple(sum(cs) for cs in y.chunks) == y.shape, f"chunks {y.chunks} vs {y.shape}"
    got = y.compute()
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == like.shape and got.dtype == like.dtype, (got.shape, got.dtype)
    return got


def assert_close(got, want, tol, what=""):
    """max|got - want| <= tol * max|want| (normwise)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale, err_msg=what)


def several_chunks(xd, axes):
    """Test-setup sanity: the chunking really splits these axes."""
    assert any(len(xd.chunks[a]) > 1 for a in axes), xd.chunks


# --------------------------------------------------------------------------
# conv1d / conv2d / conv3d: algorithm="direct" bitwise + float64 oracle
# --------------------------------------------------------------------------
# (id, nd, x shape, dask chunks, weight shape, bias, conv kwargs)
CONV_CASES = [
    ("2d-b-k3-p1", 2, (2, 3, 30, 28), (1, 3, 7, 7), (4, 3, 3, 3), True, {"padding": 1}),
    ("2d-uneven-pairs", 2, (2, 3, 29, 31), ((2,), (3,), (5, 11, 13), (7, 3, 12, 9)),
     (4, 3, 3, 5), False, {"padding": ((1, 2), (0, 3))}),
    ("2d-kernel-beyond-chunk", 2, (1, 2, 40, 36), (1, 2, 4, 5), (3, 2, 7, 6), True,
     {"padding": 3, "dilation": (2, 1)}),
    ("2d-batch-chunked", 2, (5, 2, 20, 22), ((2, 1, 2), 2, 10, 11), (3, 2, 3, 3), False,
     {"padding": (1, 0)}),
    ("2d-channel-chunked", 2, (2, 6, 21, 20), (1, (1, 2, 3), 8, 8), (4, 6, 3, 3), True,
     {"padding": 1}),
    ("2d-stride2", 2, (2, 3, 31, 29), (1, 3, 7, 7), (4, 3, 3, 3), True,
     {"stride": 2, "padding": 1}),
    ("2d-stride3-uneven", 2, (1, 3, 31, 29), ((1,), (3,), (10, 4, 17), (6, 6, 6, 11)),
     (2, 3, 4, 4), False, {"stride": 3, "padding": 2}),
    ("2d-stride23-dil12", 2, (2, 2, 33, 34), (1, 1, 8, 9), (3, 2, 3, 4), True,
     {"stride": (2, 3), "dilation": (1, 2), "padding": (2, 1)}),
    ("2d-dil32-same", 2, (1, 3, 27, 30), (1, 3, 7, 8), (2, 3, 3, 4), False,
     {"dilation": (3, 2), "padding": "same"}),
    ("2d-same-even", 2, (2, 3, 24, 25), (1, 3, 9, 7), (4, 3, 4, 2), True,
     {"padding": "same"}),
    ("2d-valid", 2, (2, 3, 24, 25), (2, 3, 7, 7), (4, 3, 5, 3), False,
     {"padding": "valid"}),
    ("2d-pad-beyond-chunk", 2, (1, 2, 22, 21), (1, 2, 7, 7), (3, 2, 3, 3), True,
     {"padding": 9}),
    ("2d-groups2", 2, (2, 4, 23, 22), (1, 4, 8, 7), (6, 2, 3, 3), True,
     {"groups": 2, "padding": 1}),
    ("2d-depthwise", 2, (2, 4, 23, 22), (1, (2, 2), 8, 7), (8, 1, 3, 3), True,
     {"groups": 4, "padding": 1, "stride": (1, 2)}),
    ("2d-circular-stride2", 2, (1, 3, 26, 25), (1, 3, 7, 6), (2, 3, 3, 3), True,
     {"padding": 2, "stride": 2, "padding_mode": "circular"}),
    ("2d-unbatched", 2, (3, 26, 27), ((1, 2), 7, 9), (4, 3, 3, 3), True, {"padding": 1}),
    ("2d-plain", 2, (40, 33), (9, 10), (5, 4), False, {"padding": 2}),
    ("2d-plain-stride-dil", 2, (40, 33), (9, 10), (3, 3), False,
     {"stride": 2, "dilation": 2, "padding": (1, 3)}),
    ("1d-batched", 1, (3, 2, 70), (2, 2, 9), (4, 2, 5), True, {"stride": 3, "padding": 2}),
    ("1d-unbatched-dil-same", 1, (2, 64), (1, 13), (3, 2, 4), False,
     {"dilation": 3, "padding": "same"}),
    ("1d-plain-pairs", 1, (65,), (8,), (11,), False, {"padding": ((4, 6),)}),
    ("1d-depthwise", 1, (2, 3, 50), (1, 3, 7), (6, 1, 5), True, {"groups": 3, "padding": 2}),
    ("3d-batched", 3, (2, 2, 14, 13, 15), (1, 1, 5, 6, 7), (3, 2, 3, 3, 3), True,
     {"padding": 1}),
    ("3d-unbatched-stride2", 3, (2, 13, 14, 12), (2, 4, 5, 5), (3, 2, 3, 2, 3), False,
     {"stride": 2, "dilation": (1, 2, 1), "padding": (1, 1, 0)}),
    ("3d-plain-same", 3, (16, 15, 14), (5, 5, 5), (3, 4, 2), False, {"padding": "same"}),
    ("3d-kernel-beyond-chunk", 3, (1, 1, 12, 11, 13), (1, 1, 3, 3, 4), (2, 1, 5, 4, 5),
     True, {"padding": (2, 1, 3)}),
]
CONV_IDS = [c[0] for c in CONV_CASES]
CONV_BY_ID = {c[0]: c for c in CONV_CASES}


def conv_data(case, dtype):
    name, _nd, xshape, chunks, wshape, bias, _kw = case
    rng = rng_for(name, str(dtype))
    x = rand(rng, xshape, dtype)
    w = rand(rng, wshape, dtype)
    b = rand(rng, (wshape[0],), dtype) if bias else None
    return x, w, b, da.from_array(x, chunks=chunks)


def _spatial_axes(xd, nd):
    return tuple(range(xd.ndim - nd, xd.ndim))


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_direct_bitwise(case, dtype, ref):
    name, nd, xshape, _chunks, wshape, _, kw = case
    x, w, b, xd = conv_data(case, dtype)
    several_chunks(xd, _spatial_axes(xd, nd))
    fn = conv_fn(nd)
    y = fn(xd, w, b, algorithm="direct", **kw)
    mem = fn(x, w, b, algorithm="direct", **kw)
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, b, nd=nd, **kw), TOL[dtype], name)
    if len(wshape) == nd + 2:
        # the channel axis is one chunk; batch axis chunks are kept (no halo)
        batched = len(xshape) == nd + 2
        assert y.chunks[int(batched)] == (wshape[0],), y.chunks
        if batched:
            assert y.chunks[0] == xd.chunks[0], (y.chunks, xd.chunks)


# --------------------------------------------------------------------------
# padding modes across chunk edges (dask.array.pad), every nd
# --------------------------------------------------------------------------
# nd -> (x shape, chunks, weight shape)
# (edge chunks shorter than the padding of "pad6-beyond-chunk")
PM_SHAPES = {
    1: ((2, 3, 41), (1, 3, (5, 15, 16, 5)), (4, 3, 4)),
    2: ((1, 3, 23, 26), (1, 3, (5, 13, 5), (14, 12)), (4, 3, 4, 3)),
    3: ((1, 2, 13, 12, 14), (1, 2, (5, 8), (7, 5), 14), (3, 2, 2, 3, 4)),
}
PAD_VARIANTS = {
    "int2-s1": lambda nd: {"padding": 2},
    "pairs-s2": lambda nd: {"padding": ((1, 3), (0, 2), (2, 1))[:nd], "stride": 2},
    "same": lambda nd: {"padding": "same"},
    "pad6-beyond-chunk-s3": lambda nd: {"padding": 6, "stride": 3},
}
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@pytest.mark.parametrize("variant", list(PAD_VARIANTS))
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_padding_modes(nd, padding_mode, variant, ref):
    xshape, chunks, wshape = PM_SHAPES[nd]
    kw = dict(PAD_VARIANTS[variant](nd), padding_mode=padding_mode)
    rng = rng_for("pm", nd, padding_mode, variant)
    x, w, b = rand(rng, xshape, F64), rand(rng, wshape, F64), rand(rng, wshape[:1], F64)
    xd = da.from_array(x, chunks=chunks)
    fn = conv_fn(nd)
    y = fn(xd, w, b, algorithm="direct", **kw)
    mem = fn(x, w, b, algorithm="direct", **kw)
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, b, nd=nd, **kw), TOL[F64])


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_same_vs_scipy_ndimage(nd, padding_mode):
    """Plain image, odd kernel, padding="same" == scipy.ndimage.correlate."""
    shape, chunks, k = {1: ((57,), (8,), (7,)), 2: ((45, 38), (8, 9), (5, 3)),
                        3: ((12, 13, 11), (4, 5, 4), (3, 5, 3))}[nd]
    rng = rng_for("ndi", nd, padding_mode)
    x, w = rand(rng, shape, F64), rand(rng, k, F64)
    y = conv_fn(nd)(da.from_array(x, chunks=chunks), w, padding="same",
                    padding_mode=padding_mode, algorithm="direct")
    want = ndi.correlate(x, w, mode=NDI_MODE[padding_mode], cval=0.0)
    got = materialise(y, want)
    assert_close(got, want, TOL[F64])


# --------------------------------------------------------------------------
# other algorithms
# --------------------------------------------------------------------------
ALGO_CASE_IDS = ["2d-uneven-pairs", "2d-kernel-beyond-chunk", "2d-stride3-uneven",
                 "2d-groups2", "2d-circular-stride2", "1d-batched", "3d-batched"]


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("algorithm", ["im2col", "fft", "auto"])
@pytest.mark.parametrize("case_id", ALGO_CASE_IDS)
def test_conv_algorithms(case_id, algorithm, dtype, ref):
    case = CONV_BY_ID[case_id]
    _, nd, _, _, _, _, kw = case
    x, w, b, xd = conv_data(case, dtype)
    fn = conv_fn(nd)
    y = fn(xd, w, b, algorithm=algorithm, **kw)
    mem = fn(x, w, b, algorithm=algorithm, **kw)
    got = materialise(y, mem)
    want = ref.conv(x, w, b, nd=nd, **kw)
    if algorithm == "im2col":
        # Not bitwise: BLAS tiles the GEMM by the chunk's pixel count, so
        # the order of its partial sums follows the chunk's shape.
        assert_close(mem, want, TOL[dtype], "in-memory (test sanity)")
        assert_close(got, want, TOL[dtype])
    else:
        bound = (FFT_BOUND if algorithm == "fft" else AUTO_BOUND)[dtype]
        assert_close(mem, want, bound, "in-memory (test sanity)")
        assert_close(got, want, bound, "dask")


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_conv2d_winograd(dtype, ref):
    rng = rng_for("winograd", str(dtype))
    x, w, b = rand(rng, (2, 3, 30, 27), dtype), rand(rng, (4, 3, 3, 3), dtype), None
    xd = da.from_array(x, chunks=(1, 3, 9, 8))
    y = fastconv.conv2d(xd, w, b, padding=1, algorithm="winograd")
    mem = fastconv.conv2d(x, w, b, padding=1, algorithm="winograd")
    got = materialise(y, mem)
    assert_close(got, ref.conv(x, w, b, padding=1, nd=2), WINOGRAD_BOUND[dtype])


# --------------------------------------------------------------------------
# torch.nn.functional cross-check (independent of NumPy too)
# --------------------------------------------------------------------------
TORCH_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
             "circular": "circular"}


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_vs_torch(nd, padding_mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    shape, chunks, wshape = {1: ((2, 4, 47), (1, 2, 8), (6, 2, 5)),
                             2: ((2, 4, 21, 23), (1, 4, 6, 7), (6, 2, 3, 4)),
                             3: ((1, 4, 11, 12, 10), (1, 4, 4, 5, 4), (6, 2, 3, 2, 3))}[nd]
    pad = (2, 1, 3)[:nd]
    stride = (2, 3, 1)[:nd]
    dil = (1, 2, 1)[:nd]
    rng = rng_for("torch", nd, padding_mode)
    x, w, b = rand(rng, shape, F64), rand(rng, wshape, F64), rand(rng, wshape[:1], F64)
    y = conv_fn(nd)(da.from_array(x, chunks=chunks), w, b, stride=stride, padding=pad,
                    dilation=dil, groups=2, padding_mode=padding_mode, algorithm="direct")
    flat = [p for p in reversed(pad) for _ in range(2)]
    xt = F.pad(torch.from_numpy(x), flat, mode=TORCH_PAD[padding_mode])
    tconv = getattr(F, CONV_NAME[nd])
    want = tconv(xt, torch.from_numpy(w), torch.from_numpy(b), stride, 0, dil, 2).numpy()
    got = materialise(y, want)
    assert_close(got, want, TOL[F64])


# --------------------------------------------------------------------------
# dtypes, Dask weights/bias, NumPy x with Dask weight, zarr, threads
# --------------------------------------------------------------------------
def test_conv_mixed_precision_promotes_like_numpy(ref):
    rng = rng_for("mixed")
    x, w = rand(rng, (2, 3, 20, 21), F32), rand(rng, (4, 3, 3, 3), F64)
    xd = da.from_array(x, chunks=(1, 3, 7, 7))
    y = fastconv.conv2d(xd, w, padding=1, algorithm="direct")
    mem = fastconv.conv2d(x, w, padding=1, algorithm="direct")
    assert mem.dtype == F64
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, padding=1, nd=2), TOL[F64])


def test_conv_dask_weight_and_bias(ref):
    rng = rng_for("dask-weight")
    x, w, b = rand(rng, (2, 3, 20, 21), F64), rand(rng, (4, 3, 3, 3), F64), rand(rng, (4,), F64)
    xd = da.from_array(x, chunks=(1, 3, 7, 7))
    wd, bd = da.from_array(w, chunks=(2, 3, 3, 3)), da.from_array(b, chunks=2)
    mem = fastconv.conv2d(x, w, b, padding=1, algorithm="direct")
    got = materialise(fastconv.conv2d(xd, wd, bd, padding=1, algorithm="direct"), mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, b, padding=1, nd=2), TOL[F64])


def test_numpy_x_with_dask_weight_is_lazy(ref):
    rng = rng_for("np-x-dask-w")
    x, w = rand(rng, (1, 2, 18, 17), F32), rand(rng, (3, 2, 3, 3), F32)
    y = fastconv.conv2d(x, da.from_array(w), stride=2, algorithm="direct")
    mem = fastconv.conv2d(x, w, stride=2, algorithm="direct")
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, stride=2, nd=2), TOL[F32])


def test_conv_from_zarr(tmp_path, ref):
    pytest.importorskip("zarr")
    rng = rng_for("zarr")
    x, w = rand(rng, (2, 2, 30, 26), F32), rand(rng, (3, 2, 5, 5), F32)
    da.from_array(x, chunks=(1, 2, 8, 7)).to_zarr(str(tmp_path / "x.zarr"))
    xd = da.from_zarr(str(tmp_path / "x.zarr"))
    several_chunks(xd, (2, 3))
    mem = fastconv.conv2d(x, w, padding=2, padding_mode="reflect", algorithm="direct")
    y = fastconv.conv2d(xd, w, padding=2, padding_mode="reflect", algorithm="direct")
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, padding=2, padding_mode="reflect", nd=2), TOL[F32])


@pytest.mark.parametrize("workers", [None, 1, 2])
def test_threaded_scheduler_conv2d(workers, ref):
    rng = rng_for("threads", workers)
    x, w, b = rand(rng, (3, 4, 40, 38), F32), rand(rng, (6, 4, 5, 3), F32), rand(rng, (6,), F32)
    xd = da.from_array(x, chunks=(1, 2, 11, 13))
    kw = {"stride": (1, 2), "padding": (2, 1), "padding_mode": "replicate", "algorithm": "direct"}
    y = fastconv.conv2d(xd, w, b, workers=workers, **kw)
    mem = fastconv.conv2d(x, w, b, **kw)
    with dask.config.set(scheduler="threads", num_workers=2):
        got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, ref.conv(x, w, b, nd=2, **{k: v for k, v in kw.items()
                                                 if k != "algorithm"}), TOL[F32])


def test_threaded_scheduler_signal():
    rng = rng_for("threads-signal")
    a, k = rand(rng, (50, 47), F64), rand(rng, (7, 6), F64)
    y = fcs.correlate2d(da.from_array(a, chunks=(12, 10)), k, mode="same", boundary="symm")
    mem = fcs.correlate2d(a, k, mode="same", boundary="symm")
    with dask.config.set(scheduler="threads", num_workers=2):
        got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, sps.correlate2d(a, k, mode="same", boundary="symm"), TOL[F64])


def _task_threads_block(block, budget, hint):
    task_threads = fastconv._dask.task_threads
    return np.full(block.shape, task_threads(budget, hint))


@pytest.mark.parametrize(("scheduler", "budget", "hint", "expected"), [
    ("synchronous", 6, 4, 6),   # the task runs in the caller's thread: whole budget
    ("threads", 6, 4, 3),       # budget // min(pool size 2, chunks 4)
    ("threads", 6, 1, 6),       # one chunk: the whole budget
    ("threads", 5, 8, 2),
    ("threads", 1, 4, 1),       # never below 1
])
def test_task_threads_rule(scheduler, budget, hint, expected):
    """The contract's per-chunk thread count, run inside real chunk tasks
    (fastconv._dask.task_threads, the helper the chunk tasks call)."""
    import fastconv._dask

    if not hasattr(fastconv._dask, "task_threads"):
        pytest.skip("fastconv._dask exposes no task_threads helper")
    a = da.zeros(4, chunks=1).map_blocks(_task_threads_block, budget, hint, dtype=int)
    with dask.config.set(scheduler=scheduler, num_workers=2):
        assert set(a.compute().tolist()) == {expected}


# --------------------------------------------------------------------------
# NaN / Inf locality with algorithm / method "auto"
# --------------------------------------------------------------------------
def _finite_close(got, want, tol):
    fin = np.isfinite(want)
    assert_close(got[fin], want[fin], tol)


def _spoiled(bad, kshape):
    """Outputs of a "same" correlation/convolution with a kernel of odd
    sizes `kshape` whose window covers a True of `bad` (an independent mask:
    box sums of the indicator)."""
    counts = sps.fftconvolve(bad.astype(np.float64), np.ones(kshape), mode="same")
    return counts > 0.5


def test_conv_auto_nan_locality():
    """algorithm="auto": the clean chunks of this geometry take the FFT path
    (checked), the chunks whose blocks hold the NaN / Inf must not, so only
    windows covering them are non-finite (as with the direct in-memory call)."""
    rng = rng_for("nan-conv")
    k, p = 41, 20
    x, w = rand(rng, (1, 3, 160, 150), F64), rand(rng, (4, 3, k, k), F64)
    # test setup: a clean chunk block (chunk (1, 0) with its overlap: rows
    # 80 - p .. 159 + p rows of padding, columns 0 .. 74 + p after p columns
    # of padding) takes the FFT path under "auto" (the cost model puts it
    # at about half the direct kernel's time)
    assert fastconv.choose_algorithm(fastconv.conv2d, x[:, :, 80 - p:, :75 + p], w,
                                     padding=((0, p), (p, 0))).algorithm == "fft"
    x[0, 1, 20, 70] = np.nan      # spoils outputs of chunks (0, 0) and (0, 1)
    x[0, 2, 140, 130] = np.inf    # spoils outputs of chunk (1, 1) only
    xd = da.from_array(x, chunks=(1, 3, 80, 75))
    y = fastconv.conv2d(xd, w, padding=p, algorithm="auto")
    direct = fastconv.conv2d(x, w, padding=p, algorithm="direct")
    got = materialise(y, direct)
    bad = _spoiled((~np.isfinite(x[0])).any(axis=0), w.shape[2:])
    assert 0 < bad.sum() < bad.size // 4  # test sanity: local damage only
    for o in range(w.shape[0]):
        np.testing.assert_array_equal(~np.isfinite(got[0, o]), bad)
    np.testing.assert_array_equal(~np.isfinite(got), ~np.isfinite(direct))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    # finite outputs: scipy.signal's float64 FFT correlation, summed over channels
    clean = np.nan_to_num(x[0], nan=0.0, posinf=0.0)
    want = np.stack([sum(sps.correlate(clean[c], w[o, c], mode="same", method="fft")
                         for c in range(3)) for o in range(4)])[None]
    want[~np.isfinite(direct)] = np.nan
    _finite_close(got, want, FFT_BOUND[F64])


def test_conv_auto_nan_locality_multichannel_f32(ref):
    rng = rng_for("nan-conv-mc")
    x, w = rand(rng, (2, 3, 48, 50), F32), rand(rng, (4, 3, 7, 7), F32)
    x[1, 2, 30, 12] = np.nan
    xd = da.from_array(x, chunks=(1, (1, 2), 12, 10))
    y = fastconv.conv2d(xd, w, padding=3, algorithm="auto")
    direct = fastconv.conv2d(x, w, padding=3, algorithm="direct")
    got = materialise(y, direct)
    want = ref.conv(x, w, padding=3, nd=2)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    _finite_close(got, want, AUTO_BOUND[F32])


def test_signal_auto_nan_locality():
    """method="auto": clean chunks of this geometry take the FFT path (checked)."""
    rng = rng_for("nan-signal")
    a, k = rand(rng, (256, 240), F64), rand(rng, (63, 61), F64)
    # test setup: a clean chunk block (128 + 62 halo rows, 120 + 60 cols) -> FFT
    assert fcs.choose_conv_method(a[:190, :180], k, mode="valid") == "fft"
    a[40, 100] = np.nan   # spoils outputs of chunks (0, 0) and (0, 1) only
    y = fcs.convolve(da.from_array(a, chunks=(128, 120)), k, mode="same", method="auto")
    direct = fcs.convolve(a, k, mode="same", method="direct")
    got = materialise(y, direct)
    bad = _spoiled(np.isnan(a), k.shape)
    assert 0 < bad.sum() < bad.size // 4
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    np.testing.assert_array_equal(np.isnan(got), bad)
    want = sps.fftconvolve(np.nan_to_num(a, nan=0.0), k, mode="same")
    want[bad] = np.nan
    _finite_close(got, want, FFT_BOUND[F64])


# --------------------------------------------------------------------------
# conv_transpose1d/2d/3d
# --------------------------------------------------------------------------
# (id, nd, x shape, chunks, weight shape (C_in, C_out/g, *k), bias, kwargs)
CT_CASES = [
    ("1d-s3-p2-op1", 1, (2, 4, 30), (1, 2, 7), (4, 3, 5), True,
     {"stride": 3, "padding": 2, "output_padding": 1}),
    ("1d-plain-dil", 1, (41,), (9,), (4,), False, {"stride": 2, "dilation": 3, "padding": 1}),
    ("2d-s23-groups2", 2, (2, 4, 17, 19), (1, 4, 5, 6), (4, 2, 3, 4), True,
     {"stride": (2, 3), "padding": (1, 2), "output_padding": (1, 0), "groups": 2,
      "dilation": (1, 2)}),
    ("2d-kernel-beyond-chunk", 2, (1, 3, 20, 18), ((1,), (3,), (3, 9, 8), (5, 3, 10)),
     (3, 2, 5, 5), False, {"dilation": 2, "padding": 1}),
    ("2d-unbatched-depthwise", 2, (4, 15, 16), ((1, 3), 4, 5), (4, 2, 3, 3), True,
     {"stride": 2, "padding": 1, "output_padding": 1, "groups": 4}),
    ("2d-plain-s2", 2, (20, 18), (6, 7), (3, 3), False, {"stride": 2}),
    ("3d-s2-p1-op", 3, (1, 2, 8, 9, 7), (1, 1, 3, 4, 3), (2, 3, 3, 2, 3), True,
     {"stride": 2, "padding": 1, "output_padding": (1, 0, 1)}),
]
CT_IDS = [c[0] for c in CT_CASES]


def ct_data(case, dtype):
    name, _nd, xshape, chunks, wshape, bias, kw = case
    rng = rng_for("ct", name, str(dtype))
    x, w = rand(rng, xshape, dtype), rand(rng, wshape, dtype)
    groups = kw.get("groups", 1)
    b = rand(rng, (wshape[1] * groups,), dtype) if bias else None
    return x, w, b, da.from_array(x, chunks=chunks)


@pytest.mark.parametrize("algorithm", ["direct", "auto"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("case", CT_CASES, ids=CT_IDS)
def test_conv_transpose_vs_in_memory(case, dtype, algorithm):
    _, nd, _, _, _, _, kw = case
    x, w, b, xd = ct_data(case, dtype)
    y = ct_fn(nd)(xd, w, b, algorithm=algorithm, **kw)
    mem = ct_fn(nd)(x, w, b, algorithm=algorithm, **kw)
    got = materialise(y, mem)
    # direct is not promised bitwise for conv_transpose: rounding (normwise)
    bound = TOL[dtype] if algorithm == "direct" else AUTO_BOUND[dtype]
    assert_close(got, hi(mem), bound)


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("case", CT_CASES, ids=CT_IDS)
def test_conv_transpose_vs_torch(case, dtype):
    torch = pytest.importorskip("torch")
    _, nd, xshape, _, wshape, _, kw = case
    x, w, b, xd = ct_data(case, dtype)
    y = ct_fn(nd)(xd, w, b, algorithm="direct", **kw)
    plain = len(wshape) == nd
    xt = torch.from_numpy(hi(x))
    wt = torch.from_numpy(hi(w))
    if plain:
        xt, wt = xt[None, None], wt[None, None]
    elif len(xshape) == nd + 1:
        xt = xt[None]
    bt = None if b is None else torch.from_numpy(hi(b))
    tfn = getattr(torch.nn.functional, CT_NAME[nd])
    want = tfn(xt, wt, bt, kw.get("stride", 1), kw.get("padding", 0),
               kw.get("output_padding", 0), kw.get("groups", 1), kw.get("dilation", 1))
    want = want.numpy()
    want = want[0, 0] if plain else (want[0] if len(xshape) == nd + 1 else want)
    assert y.shape == want.shape
    got = materialise(y, want.astype(dtype))
    assert_close(got, want, TOL[dtype])


# --------------------------------------------------------------------------
# fastconv.signal: convolve / correlate
# --------------------------------------------------------------------------
# nd -> (in1 shape, chunks, in2 shape); 2-D: in2 rows 9 > chunk rows 7, uneven chunks
SIG_SHAPES = {
    1: ((70,), (9,), (7,)),
    2: ((33, 40), ((7, 7, 12, 7), 11), (9, 6)),
    3: ((14, 13, 15), (4, 5, 6), (3, 4, 2)),
    4: ((6, 7, 8, 9), (3, 4, 4, 5), (2, 3, 2, 3)),
}
# (nd, dtype, functions): every mode x method for each
SIG_COMBOS = [
    (2, np.dtype(np.int64), ("convolve", "correlate")),
    (2, F64, ("convolve", "correlate")),
    (2, F32, ("correlate",)),
    (2, C128, ("convolve",)),
    (1, np.dtype(np.int32), ("correlate",)),
    (1, F64, ("convolve",)),
    (3, F64, ("correlate",)),
    (3, C64, ("convolve",)),
    (4, F64, ("convolve",)),
]
SIG_PARAMS = [pytest.param(nd, dt, fn, id=f"{fn}-{nd}d-{dt}")
              for nd, dt, fns in SIG_COMBOS for fn in fns]

def sig_data(key, nd, dtype):
    s1, chunks, s2 = SIG_SHAPES[nd]
    rng = rng_for("sig", key, nd, str(dtype))
    return rand(rng, s1, dtype), rand(rng, s2, dtype), chunks


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize(("nd", "dtype", "fn"), SIG_PARAMS)
def test_signal_convolve_correlate(nd, dtype, fn, method, mode):
    a, k, chunks = sig_data(fn, nd, dtype)
    ad = da.from_array(a, chunks=chunks)
    several_chunks(ad, range(nd))
    y = getattr(fcs, fn)(ad, k, mode=mode, method=method)
    mem = getattr(fcs, fn)(a, k, mode=mode, method=method)
    got = materialise(y, mem)
    if dtype.kind in "iu":
        oracle = getattr(sps, fn)(a, k, mode=mode, method="direct")
        assert oracle.dtype == got.dtype
        np.testing.assert_array_equal(got, oracle)
        return
    oracle = getattr(sps, fn)(hi(a), hi(k), mode=mode, method="direct")
    if method == "direct":
        np.testing.assert_array_equal(got, mem)
        assert_close(got, oracle, TOL[real_of(dtype)])
    else:
        assert_close(got, oracle, FFT_BOUND[real_of(dtype)])


# --------------------------------------------------------------------------
# fftconvolve / oaconvolve, incl. axes with a chunked non-convolved axis
# --------------------------------------------------------------------------
# (id, in1 shape, chunks, in2 shape, axes, dtype)
FFT_CASES = [
    ("2d-all-axes-f32", (40, 33), (9, 8), (6, 5), None, F32),
    ("2d-all-axes-f64", (40, 33), (9, 8), (6, 5), None, F64),
    ("2d-all-axes-c128", (40, 33), (9, 8), (6, 5), None, C128),
    ("3d-axes12-broadcast0-f64", (6, 30, 28), (2, 9, 11), (1, 5, 4), (1, 2), F64),
    ("2d-axis1-broadcast0-f32", (8, 50), (3, 12), (1, 7), 1, F32),
    ("2d-axis1-broadcast0-c128", (8, 50), (3, 12), (1, 7), 1, C128),
    ("3d-axes-neg-paired0-f64", (4, 22, 19), (2, 7, 6), (4, 3, 5), (-1, -2), F64),
]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("fn", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("case", FFT_CASES, ids=[c[0] for c in FFT_CASES])
def test_signal_fft_family(case, fn, mode):
    name, s1, chunks, s2, axes, dtype = case
    rng = rng_for("fft", name, fn, mode, str(dtype))
    a, k = rand(rng, s1, dtype), rand(rng, s2, dtype)
    ad = da.from_array(a, chunks=chunks)
    y = getattr(fcs, fn)(ad, k, mode=mode, axes=axes)
    mem = getattr(fcs, fn)(a, k, mode=mode, axes=axes)
    got = materialise(y, mem)
    oracle = getattr(sps, fn)(hi(a), hi(k), mode=mode, axes=axes)
    assert_close(got, oracle, FFT_BOUND[real_of(dtype)])
    if axes is not None:
        # the non-convolved axis 0 stays chunked as in1, without halos
        assert y.chunks[0] == ad.chunks[0], (y.chunks, ad.chunks)


# --------------------------------------------------------------------------
# convolve2d / correlate2d: every boundary and mode, vs scipy.signal
# --------------------------------------------------------------------------
FILL = {np.dtype(np.int32): 3, F64: 2.5, C128: 1.5 - 2j}
BOUNDARIES = ["fill0", "fill", "wrap", "symm"]


# float64: every mode; int32 and complex128: one mode each
TWO_D_PARAMS = [pytest.param(dt, mode, id=f"{dt}-{mode}")
                for dt, modes in ((F64, ("full", "same", "valid")),
                                  (np.dtype(np.int32), ("same",)), (C128, ("full",)))
                for mode in modes]


@pytest.mark.parametrize(("dtype", "mode"), TWO_D_PARAMS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("fn", ["convolve2d", "correlate2d"])
def test_signal_2d_boundaries(fn, boundary, mode, dtype):
    rng = rng_for("2d", fn, boundary, mode, str(dtype))
    a, k = rand(rng, (30, 27), dtype), rand(rng, (9, 4), dtype)  # 9 > chunk rows 7
    ad = da.from_array(a, chunks=(7, 8))
    kw = {"mode": mode, "boundary": "fill" if boundary.startswith("fill") else boundary,
              "fillvalue": FILL[dtype] if boundary == "fill" else 0}
    y = getattr(fcs, fn)(ad, k, **kw)
    mem = getattr(fcs, fn)(a, k, **kw)
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    oracle = getattr(sps, fn)(a, k, **kw)
    assert oracle.dtype == got.dtype
    if dtype.kind in "iu":
        np.testing.assert_array_equal(got, oracle)
    else:
        assert_close(got, oracle, TOL[real_of(dtype)])


# --------------------------------------------------------------------------
# NumPy in1 with a Dask in2 (the kernel): lazy result
# --------------------------------------------------------------------------
NUMPY_IN1_CALLS = [
    ("convolve-direct", "convolve", {"mode": "same", "method": "direct"}, True),
    ("correlate-fft", "correlate", {"mode": "full", "method": "fft"}, False),
    ("fftconvolve", "fftconvolve", {"mode": "valid"}, False),
    ("oaconvolve", "oaconvolve", {"mode": "same"}, False),
    ("convolve2d-symm", "convolve2d", {"mode": "same", "boundary": "symm"}, True),
    ("correlate2d-fill", "correlate2d", {"mode": "full", "fillvalue": -1.25}, True),
]


@pytest.mark.parametrize("call", NUMPY_IN1_CALLS, ids=[c[0] for c in NUMPY_IN1_CALLS])
def test_numpy_in1_dask_in2_is_lazy(call):
    _, fn, kw, bitwise = call
    rng = rng_for("np-in1", fn)
    a, k = rand(rng, (31, 29), F64), rand(rng, (5, 6), F64)
    y = getattr(fcs, fn)(a, da.from_array(k, chunks=(2, 3)), **kw)
    mem = getattr(fcs, fn)(a, k, **kw)
    got = materialise(y, mem)
    oracle = getattr(sps, fn)(a, k, **kw)
    if bitwise:
        np.testing.assert_array_equal(got, mem)
        assert_close(got, oracle, TOL[F64])
    else:
        assert_close(got, oracle, FFT_BOUND[F64])


def test_dask_in1_and_dask_in2():
    rng = rng_for("both-dask")
    a, k = rand(rng, (31, 29), F64), rand(rng, (5, 6), F64)
    ad, kd = da.from_array(a, chunks=(8, 9)), da.from_array(k, chunks=(2, 3))
    y = fcs.correlate(ad, kd, mode="same", method="direct")
    mem = fcs.correlate(a, k, mode="same", method="direct")
    got = materialise(y, mem)
    np.testing.assert_array_equal(got, mem)
    assert_close(got, sps.correlate(a, k, mode="same", method="direct"), TOL[F64])


SWAPPED_VALID = [
    ("convolve", {"method": "direct"}),
    ("correlate", {"method": "direct"}),
    ("correlate", {"method": "fft"}),
    ("fftconvolve", {}),
    ("convolve2d", {}),
    ("correlate2d", {}),
]


@pytest.mark.parametrize(("fn", "kw"), SWAPPED_VALID,
                         ids=[f"{f}-{'-'.join(k.values()) or 'default'}" for f, k in SWAPPED_VALID])
def test_valid_mode_with_smaller_dask_in1(fn, kw):
    """SciPy's "valid" rule swaps the operands when in1 is the smaller one."""
    rng = rng_for("swapped", fn, str(kw))
    a, k = rand(rng, (6, 5), F64), rand(rng, (20, 17), F64)
    y = getattr(fcs, fn)(da.from_array(a, chunks=(3, 3)), k, mode="valid", **kw)
    mem = getattr(fcs, fn)(a, k, mode="valid", **kw)
    got = materialise(y, mem)
    oracle = getattr(sps, fn)(a, k, mode="valid", **kw)
    if kw.get("method") == "fft" or fn == "fftconvolve":
        assert_close(got, oracle, FFT_BOUND[F64])
    else:
        np.testing.assert_array_equal(got, mem)
        assert_close(got, oracle, TOL[F64])


# --------------------------------------------------------------------------
# laziness: nothing is computed at call time
# --------------------------------------------------------------------------
def _p(shape, dtype=F64, chunks=5):
    return poisoned(shape, dtype, chunks)


_W2 = np.ones((3, 2, 3, 3))
LAZY_CALLS = {
    "conv2d-auto": lambda: fastconv.conv2d(_p((2, 2, 20, 20)), _W2, padding=1),
    "conv2d-direct-reflect": lambda: fastconv.conv2d(
        _p((2, 2, 20, 20)), _W2, padding=2, padding_mode="reflect", algorithm="direct"),
    "conv1d-circular-stride": lambda: fastconv.conv1d(
        _p((2, 30)), np.ones((3, 2, 4)), stride=3, padding=3, padding_mode="circular"),
    "conv3d-fft": lambda: fastconv.conv3d(_p((1, 12, 12, 12)), np.ones((2, 1, 3, 3, 3)),
                                          algorithm="fft"),
    "conv2d-poisoned-weight": lambda: fastconv.conv2d(
        np.ones((2, 2, 20, 20)), _p((3, 2, 3, 3), chunks=3), padding=1),
    "conv2d-poisoned-bias": lambda: fastconv.conv2d(
        da.ones((2, 2, 20, 20), chunks=5), _W2, _p((3,), chunks=3), padding=1),
    "conv_transpose2d": lambda: fastconv.conv_transpose2d(
        _p((2, 3, 10, 10)), np.ones((3, 2, 3, 3)), stride=2, output_padding=1),
    "convolve-auto": lambda: fcs.convolve(_p((30, 30)), np.ones((5, 5))),
    "convolve-direct-int": lambda: fcs.convolve(_p((30, 30), np.int64), np.ones((5, 5), int),
                                                method="direct"),
    "correlate-fft-same": lambda: fcs.correlate(_p((40,)), np.ones(7), "same", "fft"),
    "fftconvolve-axes": lambda: fcs.fftconvolve(_p((4, 30, 30)), np.ones((1, 5, 5)),
                                                axes=(1, 2)),
    "oaconvolve": lambda: fcs.oaconvolve(_p((30, 30)), np.ones((5, 5)), "valid"),
    "convolve2d-int-symm": lambda: fcs.convolve2d(_p((30, 30), np.int32),
                                                  np.ones((3, 3), np.int32), boundary="symm"),
    "correlate2d-fill": lambda: fcs.correlate2d(_p((30, 30)), np.ones((3, 3)), "same",
                                                fillvalue=2.0),
    "convolve-poisoned-in2": lambda: fcs.convolve(np.ones((30, 30)), _p((5, 5), chunks=3)),
}


@pytest.mark.parametrize("name", list(LAZY_CALLS))
def test_call_is_lazy(name):
    y = LAZY_CALLS[name]()  # must not compute (the chunks raise)
    assert isinstance(y, da.Array), type(y)
    assert not any(np.isnan(c) for cs in y.chunks for c in cs)
    with pytest.raises(RuntimeError, match="poisoned chunk computed"):
        y.compute()


# --------------------------------------------------------------------------
# errors at call time, as for NumPy input
# --------------------------------------------------------------------------
def _sig(shape, dtype=F64):
    return np.ones(shape, dtype)


# (id, function, in1 shape, in2, kwargs); in1 is poisoned on the Dask side
SIGNAL_ERRORS = [
    ("convolve-bad-mode", "convolve", (20, 20), _sig((3, 3)), {"mode": "bogus"}),
    ("correlate-bad-method", "correlate", (20, 20), _sig((3, 3)), {"method": "nope"}),
    ("convolve-ndim-mismatch", "convolve", (20, 20), _sig((3,)), {}),
    ("convolve-valid-size", "convolve", (10, 3), _sig((4, 5)), {"mode": "valid"}),
    ("correlate-valid-size-fft", "correlate", (10, 3), _sig((4, 5)),
     {"mode": "valid", "method": "fft"}),
    ("fftconvolve-bad-mode", "fftconvolve", (20, 20), _sig((3, 3)), {"mode": "bogus"}),
    ("fftconvolve-ndim-mismatch", "fftconvolve", (20, 20), _sig((3,)), {}),
    ("fftconvolve-valid-size", "fftconvolve", (10, 3), _sig((4, 5)), {"mode": "valid"}),
    ("oaconvolve-bad-axes", "oaconvolve", (20, 20), _sig((3, 3)), {"axes": 5}),
    ("oaconvolve-incompatible-axes", "oaconvolve", (6, 20), _sig((4, 3)), {"axes": 1}),
    ("convolve2d-bad-boundary", "convolve2d", (20, 20), _sig((3, 3)),
     {"boundary": "edge"}),
    ("correlate2d-bad-mode", "correlate2d", (20, 20), _sig((3, 3)), {"mode": "bogus"}),
    ("convolve2d-fillvalue-two", "convolve2d", (20, 20), _sig((3, 3)),
     {"fillvalue": [1.0, 2.0]}),
    ("convolve2d-fillvalue-empty", "convolve2d", (20, 20), _sig((3, 3)),
     {"fillvalue": np.array([])}),
    ("correlate2d-fillvalue-complex-into-float", "correlate2d", (20, 20), _sig((3, 3)),
     {"fillvalue": 1j}),
    ("convolve2d-3d", "convolve2d", (20, 20, 3), _sig((3, 3, 3)), {}),
    ("correlate2d-valid-size", "correlate2d", (10, 3), _sig((4, 5)), {"mode": "valid"}),
]


@pytest.mark.parametrize("case", SIGNAL_ERRORS, ids=[c[0] for c in SIGNAL_ERRORS])
def test_signal_errors_at_call_time(case):
    _, fn, shape, in2, kw = case
    with pytest.raises(Exception) as info:  # the NumPy call defines the expected type
        getattr(fcs, fn)(np.ones(shape), in2, **kw)
    exc_type, msg = type(info.value), str(info.value)
    assert exc_type is not Exception
    with pytest.raises(exc_type, match=re.escape(msg)):
        getattr(fcs, fn)(poisoned(shape, F64, 4), in2, **kw)


# (id, nd, x shape, weight shape, kwargs)
CONV_ERRORS = [
    ("bad-padding-mode", 2, (1, 2, 20, 20), (3, 2, 3, 3),
     {"padding": 1, "padding_mode": "mirror"}),
    ("channel-mismatch", 2, (1, 2, 20, 20), (3, 4, 3, 3), {}),
    ("groups-not-dividing", 2, (1, 4, 20, 20), (3, 2, 3, 3), {"groups": 2}),
    ("same-with-stride", 1, (1, 2, 20), (3, 2, 3), {"padding": "same", "stride": 2}),
    ("bad-algorithm", 3, (1, 1, 9, 9, 9), (1, 1, 3, 3, 3), {"algorithm": "magic"}),
    ("kernel-larger-than-input", 2, (1, 2, 5, 20), (3, 2, 7, 3), {}),
    ("bias-shape", 2, (1, 2, 20, 20), (3, 2, 3, 3), {"bias": np.ones(4)}),
]


@pytest.mark.parametrize("case", CONV_ERRORS, ids=[c[0] for c in CONV_ERRORS])
def test_conv_errors_at_call_time(case):
    _, nd, xshape, wshape, kw = case
    w = np.ones(wshape)
    with pytest.raises(Exception) as info:  # the NumPy call defines the expected type
        conv_fn(nd)(np.ones(xshape), w, **kw)
    exc_type = type(info.value)
    assert exc_type is not Exception
    with pytest.raises(exc_type):
        conv_fn(nd)(poisoned(xshape, F64, 5), w, **kw)


def test_out_with_dask_raises_typeerror():
    xd = da.ones((1, 2, 20, 20), chunks=5)
    w = np.ones((3, 2, 3, 3))
    with pytest.raises(TypeError):
        fastconv.conv2d(xd, w, out=np.empty((1, 3, 18, 18)))
    with pytest.raises(TypeError):
        fastconv.conv2d(xd, w, out=da.empty((1, 3, 18, 18)))
    with pytest.raises(TypeError):
        fastconv.conv1d(da.ones((2, 20), chunks=5), np.ones((3, 2, 3)),
                        out=np.empty((3, 18)))


def test_out_with_dask_conv_transpose_raises_typeerror():
    xd = da.ones((1, 2, 10, 10), chunks=5)
    with pytest.raises(TypeError):
        fastconv.conv_transpose2d(xd, np.ones((2, 3, 3, 3)), out=np.empty((1, 3, 12, 12)))


def test_plan_and_choose_algorithm_refuse_dask():
    xd = da.ones((1, 2, 20, 20), chunks=5)
    w = np.ones((3, 2, 3, 3))
    with pytest.raises(TypeError):
        fastconv.plan(fastconv.conv2d, xd, w)
    with pytest.raises(TypeError):
        fastconv.choose_algorithm(fastconv.conv2d, xd, w)


NOT_DASK_CALLS = {
    "grad-conv2d_input": lambda: fastconv.grad.conv2d_input(
        (1, 2, 20, 20), np.ones((3, 2, 3, 3)), da.ones((1, 3, 18, 18), chunks=6)),
    "grad-conv2d_weight": lambda: fastconv.grad.conv2d_weight(
        da.ones((1, 2, 20, 20), chunks=5), (3, 2, 3, 3), np.ones((1, 3, 18, 18))),
    "grad-conv1d_input-dask-weight": lambda: fastconv.grad.conv1d_input(
        (1, 2, 20), da.ones((3, 2, 3)), np.ones((1, 3, 18))),
    "im2col": lambda: fastconv.im2col(da.ones((1, 2, 20, 20), chunks=5), 3),
    "col2im": lambda: fastconv.col2im(da.ones((1, 18, 324), chunks=9), (20, 20), 3),
    "choose_conv_method": lambda: fcs.choose_conv_method(da.ones((20, 20), chunks=5),
                                                         np.ones((3, 3))),
}


@pytest.mark.parametrize("name", list(NOT_DASK_CALLS))
def test_non_issue8_functions_refuse_dask(name):
    with pytest.raises(TypeError, match="(?i)dask"):
        NOT_DASK_CALLS[name]()


def test_dask_mixed_with_cupy_raises_typeerror():
    cp = pytest.importorskip("cupy")
    try:
        w = cp.ones((3, 2, 3, 3))
    except Exception as exc:  # noqa: BLE001 - no usable GPU
        pytest.skip(f"cupy unusable here: {exc}")
    with pytest.raises(TypeError):
        fastconv.conv2d(da.ones((1, 2, 20, 20), chunks=5), w)
