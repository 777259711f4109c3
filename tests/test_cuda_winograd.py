"""The GPU Winograd path (fastconv._cuda_winograd, winograd.cu), called directly.

The module is driven the way the CuPy backend drives it: the problem from
``plan_conv``, the layout from ``fastconv._cpu._geometry``, ``prepare`` for
the transformed filters, ``run`` into a 5-D C-contiguous output.  Results are
compared with the float64 oracle of conftest.py (``ref``), never fastconv,
under the normwise Winograd bound the CPU tests use
(``fastconv._winograd.ERROR_BOUND``: 5e-5 float32, 1e-12 float64):

    max |result - reference| <= ERROR_BOUND[dtype] * max |reference|

Three kinds of test:

- plain Python: which problems are served, the variant choice, the chunking
  (tests/test_cuda.py compiles winograd.cu with nvcc, as every CUDA source);
- where ``g++`` is on PATH (no GPU needed): the source compiled as host C++
  by tests/cuda_host.py runs ``run`` with NumPy standing in for CuPy, which
  checks the kernels' index math and transforms without a GPU;
- with CuPy and a CUDA device: results against the oracle.  These skip,
  saying why, when CuPy is not installed or sees no GPU.
"""
from __future__ import annotations

import math
import pathlib

import cuda_host
import numpy as np
import pytest

from fastconv import _cpu
from fastconv import _cuda_winograd as CW
from fastconv._validation import plan_conv
from fastconv._winograd import ERROR_BOUND, transform_matrices

CUDA_DIR = pathlib.Path(__file__).resolve().parents[1] / "fastconv" / "_kernels" / "cuda"
SOURCE = CUDA_DIR / CW.SOURCE
DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("f32", "f64")


def _problem(x, w, b, padding=1, groups=1, stride=1, dilation=1, nd=2):
    return plan_conv(nd, x, w, b, stride, padding, dilation, groups, "zeros")


def _arrays(n, cin, cout, groups, size, dtype, bias, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin) + size).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b


def _assert_normwise(got, x, w, b, padding, groups, ref, context):
    """`got` (NumPy, the user's 4-D shape) against the oracle."""
    exp = ref.expect(x, w, b, nd=2, padding=padding, groups=groups)
    assert got.shape == exp.value.shape, f"{context}: shape {got.shape}"
    assert got.dtype == exp.dtype, f"{context}: dtype {got.dtype}"
    assert np.all(np.isfinite(got)), f"{context}: non-finite values (an output not written?)"
    scale = float(np.abs(exp.value).max())
    err = float(np.abs(got.astype(np.float64) - exp.value).max())
    bound = ERROR_BOUND[exp.dtype]
    assert err <= bound * scale, (f"{context}: normwise error {err / scale:.3g} > {bound:g} "
                                  f"(max|err| {err:.3g}, max|ref| {scale:.3g})")


# N, C_in, C_out, groups, (H, W), padding, bias
CASES = [
    (1, 3, 5, 1, (7, 9), 1, True),                     # partial tiles both ways
    (3, 4, 6, 2, (11, 13), 0, False),                  # groups, odd sizes, no padding
    (2, 6, 6, 6, (10, 15), 2, True),                   # depthwise, padding 2
    (3, 4, 8, 4, (9, 12), ((2, 0), (1, 3)), True),     # asymmetric, 1 in / 2 out per group
    (2, 8, 4, 1, (5, 6), "same", False),
    (1, 16, 32, 1, (28, 28), 1, True),
    (1, 2, 3, 1, (3, 3), 0, True),                     # a 1x1 output
    (1, 2, 2, 1, (1, 1), 2, True),                     # tiles mostly outside the image
]
CASE_IDS = [f"n{c[0]}-{c[1]}to{c[2]}-g{c[3]}-{c[4][0]}x{c[4][1]}-p{i}" for i, c in
            enumerate(CASES)]


# --------------------------------------------------------------------------
# plain Python
# --------------------------------------------------------------------------
@pytest.mark.parametrize("nd, shape, ksize, kw, message", [
    (1, (1, 2, 9), (3,), {}, "conv2d only"),
    (3, (1, 2, 6, 6, 6), (3, 3, 3), {}, "conv2d only"),
    (2, (1, 2, 9, 9), (5, 5), {}, "needs a 3x3 kernel, got (5, 5)"),
    (2, (1, 2, 9, 9), (2, 2), {}, "needs a 3x3 kernel, got (2, 2)"),
    (2, (1, 2, 9, 9), (3, 3), dict(stride=2), "needs stride 1, got (2, 2)"),
    (2, (1, 2, 9, 9), (3, 3), dict(dilation=(1, 2)), "needs dilation 1, got (1, 2)"),
])
def test_unsupported_reason(nd, shape, ksize, kw, message):
    x = np.zeros(shape, np.float32)
    w = np.zeros((3, shape[1]) + ksize, np.float32)
    p = _problem(x, w, None, padding=0, nd=nd, **kw)
    reason = CW.unsupported_reason(p)
    assert reason is not None and message in reason, reason


def test_unsupported_reason_accepts_and_rejects_dtypes():
    w = np.zeros((4, 1, 3, 3))
    for dtype in DTYPES:
        x = np.zeros((2, 4, 9, 9), dtype)
        p = _problem(x, w.astype(dtype), None, padding=((0, 2), (1, 1)), groups=4)
        assert CW.unsupported_reason(p) is None
    x16 = np.zeros((1, 4, 9, 9), np.float16)
    p = plan_conv(2, x16, w.astype(np.float16), None, 1, 1, 1, 4, "zeros", half=True)
    assert "float32 and float64" in CW.unsupported_reason(p)


@pytest.mark.parametrize("size, expected", [
    ((58, 58), 4), ((9, 9), 4), ((5, 40), 4), ((3, 3), 4),  # F(4x4) does fewer points
    ((1, 1), 2), ((2, 30), 2), ((30, 2), 2),                # a side of at most 2
    ((5, 5), 2), ((6, 6), 2),                               # ties go to F(2x2)
])
def test_choose_m(size, expected):
    x = np.zeros((1, 1) + size, np.float32)
    p = _problem(x, np.zeros((1, 1, 3, 3), np.float32), None, padding=1)
    assert CW.choose_m(p) == expected


@pytest.mark.parametrize("m", CW.VARIANTS)
def test_chunk_tiles_bounds_memory_in_equal_chunks(m, monkeypatch):
    x = np.zeros((3, 8, 30, 31), np.float64)
    p = _problem(x, np.zeros((16, 8, 3, 3)), None)
    total = 3 * math.ceil(30 / m) * math.ceil(31 / m)
    per_tile = (m + 2) ** 2 * (8 + 16) * 8
    assert CW.chunk_tiles(p, m) == total  # all tiles in one chunk by default
    for budget in (1, per_tile, 7 * per_tile + 5, 100 * per_tile):
        monkeypatch.setattr(CW, "TILE_BYTES", budget)
        nq = CW.chunk_tiles(p, m)
        assert 1 <= nq <= max(1, budget // per_tile)
        chunks = math.ceil(total / nq)
        assert chunks == math.ceil(total / max(1, budget // per_tile))  # no extra chunk
        assert nq * (chunks - 1) < total  # the last chunk is not empty


def test_prepare_rejects_other_variants():
    x = np.zeros((1, 1, 8, 8), np.float32)
    w = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"must be one of \(2, 4\)"):
        CW.prepare(w.reshape(1, 1, 1, 3, 3), _problem(x, w, None), 6)


# --------------------------------------------------------------------------
# the kernels as host C++ (g++), NumPy standing in for CuPy
# --------------------------------------------------------------------------


@pytest.mark.skipif(cuda_host.GXX is None, reason="g++ is not on PATH")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("m", CW.VARIANTS, ids=lambda m: f"F{m}")
def test_kernels_on_the_host(monkeypatch, tmp_path, ref, m, dtype):
    from fastconv import _cuda

    monkeypatch.setattr(_cuda, "_cupy", lambda: cuda_host.NAMESPACE)
    monkeypatch.setattr(_cuda, "kernel_function",
                        cuda_host.HostKernels(SOURCE.parent, tmp_path))
    # small blocks and grids, so that the grid-stride loops over channels run
    monkeypatch.setattr(_cuda, "BLOCK", 32)
    monkeypatch.setattr(_cuda, "MAX_GRID_Y", 3)
    for i, (n, cin, cout, groups, size, padding, bias) in enumerate(CASES[:5]):
        x, w, b = _arrays(n, cin, cout, groups, size, dtype, bias, seed=i)
        p = _problem(x, w, b, padding, groups)
        geo = _cpu._geometry(p)
        filters = CW.prepare(cuda_host.host(w.reshape(geo.w5)), p, m)
        bias_arg = b if b is not None else np.empty(0, dtype=dtype)
        for budget in (CW.TILE_BYTES, 1, 3000):  # one chunk, one tile a chunk, a few
            monkeypatch.setattr(CW, "TILE_BYTES", budget)
            target = np.full(geo.out5, np.nan, dtype=dtype)
            CW.run(x.reshape(geo.x5), filters, bias_arg, target, p, geo)
            _assert_normwise(target.reshape(p.out_shape), x, w, b, padding, groups, ref,
                             f"host F{m} case {i} budget {budget}")


# --------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------
def _run_gpu(cp, x, w, b, padding, groups, m):
    """prepare + run as the backend calls them; the result on the host (4-D)."""
    p = _problem(x, w, b, padding, groups)
    assert CW.unsupported_reason(p) is None
    geo = _cpu._geometry(p)
    filters = CW.prepare(cp.asarray(w).reshape(geo.w5), p, m)
    bias = cp.asarray(b) if b is not None else cp.empty(0, dtype=x.dtype)
    target = cp.full(geo.out5, cp.nan, dtype=x.dtype)
    CW.run(cp.asarray(x).reshape(geo.x5), filters, bias, target, p, geo)
    return cp.asnumpy(target).reshape(p.out_shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("m", CW.VARIANTS, ids=lambda m: f"F{m}")
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gpu_matches_oracle(cp, ref, case, m, dtype):
    n, cin, cout, groups, size, padding, bias = case
    x, w, b = _arrays(n, cin, cout, groups, size, dtype, bias)
    got = _run_gpu(cp, x, w, b, padding, groups, m)
    _assert_normwise(got, x, w, b, padding, groups, ref, f"F{m} {case} {np.dtype(dtype)}")


@pytest.mark.parametrize("m", CW.VARIANTS, ids=lambda m: f"F{m}")
def test_gpu_filter_transform(cp, m):
    x, w, _ = _arrays(1, 6, 4, 2, (8, 8), np.float64, False)
    p = _problem(x, w, None, 1, 2)
    filters = CW.prepare(cp.asarray(w).reshape(4, 3, 1, 3, 3), p, m)
    a = m + 2
    g = transform_matrices(m)[1]
    expected = np.einsum("ai,ocij,bj->aboc", g, w, g).reshape(a * a, 2, 2, 3)
    assert filters.m == m and filters.u.flags.c_contiguous
    assert filters.u.shape == (a * a, 2, 2, 3) and filters.u.dtype == np.float64
    np.testing.assert_allclose(cp.asnumpy(filters.u), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gpu_chunks_one_batched_matmul_each(cp, ref, monkeypatch, dtype):
    """Small byte budgets cut the tiles into chunks (crossing image
    boundaries); each chunk makes one batched cupy.matmul."""
    x, w, b = _arrays(3, 6, 10, 2, (13, 17), dtype, True, seed=3)
    calls = []
    real = cp.matmul
    monkeypatch.setattr(cp, "matmul", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    for m in CW.VARIANTS:
        a2 = (m + 2) ** 2
        tiles = 3 * math.ceil(13 / m) * math.ceil(17 / m)
        per_tile = a2 * (6 + 10) * np.dtype(dtype).itemsize
        for budget in (1, 5 * per_tile, 40 * per_tile, CW.TILE_BYTES):
            monkeypatch.setattr(CW, "TILE_BYTES", budget)
            calls.clear()
            got = _run_gpu(cp, x, w, b, 1, 2, m)
            _assert_normwise(got, x, w, b, 1, 2, ref, f"F{m} budget {budget}")
            # prepare's two filter products, then one (T, G, C_out/G, C_in/G) per chunk
            chunks = [s for s in calls if s == (a2, 2, 5, 3)]
            assert len(chunks) == math.ceil(tiles / max(1, min(tiles, budget // per_tile)))


def test_gpu_depthwise_uses_no_matmul(cp, ref, monkeypatch):
    x, w, b = _arrays(2, 4, 8, 4, (9, 10), np.float32, True, seed=4)
    p = _problem(x, w, b, 1, 4)
    geo = _cpu._geometry(p)
    filters = CW.prepare(cp.asarray(w).reshape(geo.w5), p, 4)
    monkeypatch.setattr(cp, "matmul", lambda *a, **k: pytest.fail("matmul called"))
    target = cp.empty(geo.out5, dtype=cp.float32)
    CW.run(cp.asarray(x).reshape(geo.x5), filters, cp.asarray(b), target, p, geo)
    _assert_normwise(cp.asnumpy(target).reshape(p.out_shape), x, w, b, 1, 4, ref, "depthwise")


def test_gpu_default_variant_and_no_bias(cp, ref):
    for size in ((40, 36), (2, 9)):
        x, w, _ = _arrays(2, 5, 7, 1, size, np.float32, False, seed=5)
        p = _problem(x, w, None, 1, 1)
        got = _run_gpu(cp, x, w, None, 1, 1, CW.choose_m(p))
        _assert_normwise(got, x, w, None, 1, 1, ref, f"choose_m {size}")


def test_gpu_empty_batch(cp):
    x, w, b = _arrays(0, 3, 4, 1, (6, 6), np.float32, True)
    assert _run_gpu(cp, x, w, b, 1, 1, 4).shape == (0, 4, 6, 6)


def test_gpu_runs_on_the_current_stream(cp, ref):
    x, w, b = _arrays(2, 8, 8, 1, (32, 32), np.float32, True, seed=6)
    for m in CW.VARIANTS:
        stream = cp.cuda.Stream(non_blocking=True)
        with stream:
            assert cp.cuda.get_current_stream().ptr == stream.ptr
            p = _problem(x, w, b, 1, 1)
            geo = _cpu._geometry(p)
            filters = CW.prepare(cp.asarray(w).reshape(geo.w5), p, m)
            target = cp.empty(geo.out5, dtype=cp.float32)
            CW.run(cp.asarray(x).reshape(geo.x5), filters, cp.asarray(b), target, p, geo)
        stream.synchronize()
        _assert_normwise(cp.asnumpy(target).reshape(p.out_shape), x, w, b, 1, 1, ref,
                         f"stream F{m}")
