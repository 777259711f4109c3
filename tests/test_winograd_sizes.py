"""Winograd F(2x2,5x5) and F(3x3,2x2) (fastconv._winograd) against the oracle.

Every test runs for both filter sizes (the ``k`` fixture: 5 and 2).  The
oracle is the float64 sliding-window correlation of conftest.py (the
``ref`` fixture) or, for the transform matrices, ``np.correlate``; never
fastconv.  As for the 3x3 variants (test_winograd.py), every result is held
to the normwise bound ``max |result - reference| <= ERROR_BOUND[dtype] *
max |reference|``.  A spy on ``fastconv._winograd.conv`` checks that the
Winograd kernel ran, with the variant's tile size m.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import _cpu
from fastconv import _winograd as W
from fastconv._validation import plan_conv

DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("f32", "f64")
#: filter size r -> the variant's output tile size m
TILE = {5: 2, 2: 3}


@pytest.fixture(params=sorted(TILE), ids=lambda r: f"{r}x{r}")
def k(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def assert_normwise(got, expected, dtype, context=""):
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{context}: shape {got.shape} != {expected.shape}"
    assert got.dtype == np.dtype(dtype), f"{context}: dtype {got.dtype}"
    if expected.size == 0:
        return
    assert np.all(np.isfinite(got)), context
    scale = float(np.abs(expected).max())
    err = float(np.abs(got.astype(np.float64) - expected).max())
    bound = W.ERROR_BOUND[np.dtype(dtype)]
    assert err <= bound * scale, f"{context}: normwise error {err / scale:.3g} > {bound:g}"


def make_case(rng, dtype, k, *, n=2, cin=3, cout=4, groups=1, size=(9, 11), bias=True):
    shape = (cin, *size) if n is None else (n, cin, *size)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, k, k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b


@pytest.fixture
def spy(monkeypatch, k):
    """Records (m, kernel size) of every Winograd kernel call; ``spy.check()``
    asserts the kernel ran with the variant of k x k filters."""

    class Calls(list):
        def check(self):
            assert self, "the Winograd kernel did not run"
            assert all(c == (TILE[k], (k, k)) for c in self), list(self)

    calls = Calls()
    real_conv = W.conv

    def conv(x5, w5, bias, out5, pad_before, problem, nthreads, m=None, u=None):
        calls.append((m, tuple(problem.kernel_size)))
        return real_conv(x5, w5, bias, out5, pad_before, problem, nthreads, m=m, u=u)

    monkeypatch.setattr(W, "conv", conv)
    return calls


def wino(x, w, b=None, **kw):
    return fastconv.conv2d(x, w, b, algorithm="winograd", **kw)


def _problem(x, w, b=None, padding=0, groups=1):
    return plan_conv(2, x, w, b, 1, padding, 1, groups, "zeros")


# --------------------------------------------------------------------------
# matrices, filter transform, support and variant choice
# --------------------------------------------------------------------------
def test_transform_matrices_give_minimal_filtering(rng, k):
    m = TILE[k]
    a = m + k - 1
    bt, g_mat, at = W.transform_matrices(m, k)
    assert bt.shape == (a, a) and g_mat.shape == (a, k) and at.shape == (m, a)
    # a variant shares the input transform of the 3x3 variant with its points
    np.testing.assert_array_equal(bt, W.transform_matrices(a - 2)[0])
    for _ in range(5):
        d = rng.standard_normal(a)
        g = rng.standard_normal(k)
        y = at @ ((g_mat @ g) * (bt @ d))
        np.testing.assert_allclose(y, np.correlate(d, g, mode="valid"), rtol=0, atol=1e-12)
        d2 = rng.standard_normal((a, a))
        g2 = rng.standard_normal((k, k))
        y2 = at @ ((g_mat @ g2 @ g_mat.T) * (bt @ d2 @ bt.T)) @ at.T
        want = np.array([[np.sum(d2[i:i + k, j:j + k] * g2) for j in range(m)]
                         for i in range(m)])
        np.testing.assert_allclose(y2, want, rtol=0, atol=1e-11)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_filter_transform_layout(dtype, groups, rng, k):
    m = TILE[k]
    a = m + k - 1
    _, g_mat, _ = W.transform_matrices(m, k)
    cout, cin_g = 6, 7   # 42 filters: one full block of 32 and a ragged one
    w4 = rng.standard_normal((cout, cin_g, k, k)).astype(dtype)
    want = np.einsum("xi,ocij,nj->xnoc", g_mat, w4.astype(np.float64), g_mat)
    want = want.reshape(a * a, groups, cout // groups, cin_g)
    tol = (1e-14 if dtype == np.float64 else 1e-6) * np.abs(want).max()
    for nthreads in (1, 2):
        u = W.filter_transform(w4, groups, m, dtype, nthreads)
        assert u.shape == (a * a, groups, cout // groups, cin_g)
        assert u.dtype == np.dtype(dtype)
        np.testing.assert_allclose(u, want, rtol=0, atol=tol)
    buf = np.full(a * a * cout * cin_g + 5, np.nan, dtype=dtype)
    u = W.filter_transform(w4, groups, m, dtype, 1, out=buf)
    assert np.shares_memory(u, buf)
    np.testing.assert_allclose(u, want, rtol=0, atol=tol)
    assert np.all(np.isnan(buf[a * a * cout * cin_g:]))


@pytest.mark.parametrize("size", [(1, 1), (3, 50), (28, 28), (56, 56), (224, 224)])
def test_choose_variant(size, k):
    x = np.zeros((1, 2, size[0] + k - 1, size[1] + k - 1))
    w = np.zeros((2, 2, k, k))
    p = _problem(x, w)
    assert W.supported(p) is None
    assert W.choose_variant(p) == TILE[k]


def test_weight_gradient_stays_on_gemm(ref, rng, k):
    """The Winograd weight gradient serves 3x3 only; these are still right."""
    x = rng.standard_normal((2, 8, 12, 12))
    w = rng.standard_normal((8, 8, k, k))
    p = _problem(x, w, None, k // 2)
    assert "3x3" in W.weight_grad_supported(p)
    oh = 12 + 2 * (k // 2) - k + 1
    gy = rng.standard_normal((2, 8, oh, oh))
    got = fastconv.grad.conv2d_weight(x, w.shape, gy, padding=k // 2)
    # dW[k, c, u, v] = sum over n, i, j of gy[n, k, i, j] * xpad[n, c, i + u, j + v]
    from numpy.lib.stride_tricks import sliding_window_view
    xp = np.pad(x, [(0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)])
    want = np.einsum("ncijuv,nkij->kcuv", sliding_window_view(xp, (k, k), axis=(2, 3)), gy)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------
# conv2d(..., algorithm="winograd") against the oracle
# --------------------------------------------------------------------------
PADDINGS = [0, 1, 2, 4, (2, 0), ((4, 0), (1, 3)), ((0, 1), (2, 0)), "same", "valid"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("padding", PADDINGS, ids=repr)
def test_paddings(ref, rng, spy, k, dtype, padding):
    x, w, b = make_case(rng, dtype, k)
    y = wino(x, w, b, padding=padding)
    assert_normwise(y, ref.conv(x, w, b, padding=padding, nd=2), dtype, f"padding={padding!r}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes(ref, rng, spy, k, dtype, mode):
    x, w, b = make_case(rng, dtype, k, size=(8, 13))
    for padding in (2, ((1, 3), (4, 0))):
        y = wino(x, w, b, padding=padding, padding_mode=mode)
        assert_normwise(y, ref.conv(x, w, b, padding=padding, padding_mode=mode, nd=2), dtype,
                        f"{mode} {padding!r}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cin, cout, groups", [(4, 6, 2), (6, 6, 3), (5, 5, 5), (4, 8, 4)],
                         ids=["g2", "g3", "depthwise", "depthwise-x2"])
def test_groups(ref, rng, spy, k, dtype, cin, cout, groups):
    x, w, b = make_case(rng, dtype, k, cin=cin, cout=cout, groups=groups, size=(12, 9))
    y = wino(x, w, b, padding=2, groups=groups)
    assert_normwise(y, ref.conv(x, w, b, padding=2, groups=groups, nd=2), dtype,
                    f"groups={groups}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_batch_sizes_unbatched_and_plain(ref, rng, spy, k, dtype):
    for n in (1, 3):
        x, w, b = make_case(rng, dtype, k, n=n, size=(10, 7))
        assert_normwise(wino(x, w, b, padding=2), ref.conv(x, w, b, padding=2, nd=2), dtype,
                        f"n={n}")
    x, w, b = make_case(rng, dtype, k, n=0, size=(10, 7))
    y = wino(x, w, b, padding=2)
    assert y.shape == (0, 4, 10 + 5 - k, 7 + 5 - k) and y.dtype == np.dtype(dtype)
    x, w, b = make_case(rng, dtype, k, n=None, size=(9, 12))
    y = wino(x, w, b, padding="same")
    assert y.shape == (4, 9, 12)
    assert_normwise(y, ref.conv(x, w, b, padding="same", nd=2), dtype, "unbatched")
    img = rng.standard_normal((13, 10)).astype(dtype)
    kern = rng.standard_normal((k, k)).astype(dtype)
    for padding in (0, 2, ((3, 0), (0, 1))):
        assert_normwise(wino(img, kern, padding=padding),
                        ref.conv(img, kern, padding=padding, nd=2), dtype, f"plain {padding!r}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("oh", range(1, 10))
def test_ragged_tile_edges(ref, rng, spy, k, dtype, oh):
    """Output sizes 1..9 in both directions: tiles that overhang the edge."""
    for ow in (oh, 10 - oh, 1 + (oh * 5) % 9):
        x, w, b = make_case(rng, dtype, k, n=2, cin=3, cout=2, size=(oh + k - 1, ow + k - 1))
        y = wino(x, w, b)
        assert y.shape == (2, 2, oh, ow)
        assert_normwise(y, ref.conv(x, w, b, nd=2), dtype, f"out {oh}x{ow}")
        x, w, b = make_case(rng, dtype, k, n=1, cin=2, cout=3, size=(oh, ow))
        assert_normwise(wino(x, w, b, padding="same"),
                        ref.conv(x, w, b, padding="same", nd=2), dtype, f"same {oh}x{ow}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_tiny_images_large_padding(ref, rng, spy, k, dtype):
    for size, padding in (((1, 1), 2), ((1, 1), 3), ((2, 1), (3, 4)), ((1, 3), ((4, 0), (1, 5))),
                          ((5, 5), 0), ((2, 2), 6)):
        x, w, b = make_case(rng, dtype, k, n=2, size=size)
        assert_normwise(wino(x, w, b, padding=padding),
                        ref.conv(x, w, b, padding=padding, nd=2), dtype, f"{size} {padding!r}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("size", [(5, 301), (301, 5), (6, 1000)])
def test_wide_and_tall_images(ref, rng, spy, k, dtype, size):
    x, w, b = make_case(rng, dtype, k, n=1, cin=2, cout=3, size=size)
    for padding in (2, ((0, 4), (3, 1))):
        assert_normwise(wino(x, w, b, padding=padding),
                        ref.conv(x, w, b, padding=padding, nd=2), dtype, f"{size}")
    spy.check()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_out_layouts_read_only_and_inputs_unchanged(ref, rng, spy, k, dtype):
    x, w, b = make_case(rng, dtype, k, n=3, cin=4, cout=4, size=(11, 10))
    want = ref.conv(x, w, b, padding="same", nd=2)
    out = np.full(want.shape, np.nan, dtype=dtype)
    assert wino(x, w, b, padding="same", out=out) is out
    assert_normwise(out, want, dtype, "out")
    big = np.full((3, 8, 11, 20), np.nan, dtype=dtype)
    view = big[:, ::2, :, ::2]
    assert wino(x, w, b, padding="same", out=view) is view
    assert_normwise(view, want, dtype, "strided out")
    assert np.all(np.isnan(big[:, 1::2])) and np.all(np.isnan(big[:, :, :, 1::2]))
    for name, (xi, wi) in {
        "fortran": (np.asfortranarray(x), np.asfortranarray(w)),
        "strided": (np.repeat(x, 2, axis=3)[:, :, :, ::2], np.repeat(w, 2, axis=1)[:, ::2]),
    }.items():
        assert_normwise(wino(xi, wi, b, padding="same"), want, dtype, name)
    xr, wr, br = x.copy(), w.copy(), b.copy()
    for a in (xr, wr, br):
        a.flags.writeable = False
    assert_normwise(wino(xr, wr, br, padding="same"), want, dtype, "read-only")
    np.testing.assert_array_equal(xr, x)
    np.testing.assert_array_equal(wr, w)
    # out= the input itself
    xc = x.copy()
    assert wino(xc, w, b, padding="same", out=xc) is xc
    assert_normwise(xc, want, dtype, "out=x")
    spy.check()


SCHEDULES = {
    "tiny-tasks": dict(TASK_BYTES=1 << 40, MIN_GEMM_TILES=1, MAX_TASK_BYTES=1),
    "team": dict(TASK_BYTES=1, MIN_GEMM_TILES=1, MAX_TASK_BYTES=1 << 40, SPLIT_FILTER_RATIO=0),
    "parts": dict(TASK_BYTES=1, MIN_GEMM_TILES=1, SPLIT_FILTER_RATIO=1 << 40),
    "default": {},
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("sched", list(SCHEDULES))
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_threads_and_schedules(ref, rng, monkeypatch, spy, k, dtype, sched, workers, groups):
    for name, value in SCHEDULES[sched].items():
        monkeypatch.setattr(W, name, value)
    monkeypatch.setattr(_cpu, "MIN_WORK_PER_THREAD", 1)
    seen = []
    real_schedule = W.schedule

    def schedule(problem, m, nthreads):
        seen.append(real_schedule(problem, m, nthreads))
        return seen[-1]

    monkeypatch.setattr(W, "schedule", schedule)
    x, w, b = make_case(rng, dtype, k, n=3, cin=6, cout=10, groups=groups, size=(13, 11))
    y = wino(x, w, b, padding=2, groups=groups, workers=workers)
    assert_normwise(y, ref.conv(x, w, b, padding=2, groups=groups, nd=2), dtype,
                    f"{sched} workers={workers}")
    spy.check()
    rows, parallel, parts = seen[-1]
    if sched == "tiny-tasks":
        assert rows == 1 and parallel and parts == 1
    elif sched == "team":
        assert not parallel and parts == 1
    elif sched == "parts":
        assert bool(parallel) == (workers > 1) and parts == (min(workers, 10 // groups)
                                                              if workers > 1 else 1)


def test_plan_keeps_the_filter_transform(ref, rng, spy, k):
    x, w, b = make_case(rng, np.float32, k, n=2, cin=8, cout=8, size=(16, 16))
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=2, algorithm="winograd")
    assert p.algorithm == "winograd"
    want = ref.conv(x, w, b, padding=2, nd=2)
    for _ in range(2):
        assert_normwise(p(x), want, np.float32, "plan")
    x2 = rng.standard_normal(x.shape).astype(np.float32)
    assert_normwise(p(x2), ref.conv(x2, w, b, padding=2, nd=2), np.float32, "plan, new input")
    spy.check()


# --------------------------------------------------------------------------
# accuracy on CNN-like layers (He-scaled weights, standard-normal input)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("channels, size", [(64, 28), (256, 10), (512, 6)],
                         ids=["64ch@28", "256ch@10", "512ch@6"])
def test_accuracy_cnn_layers(ref, spy, k, dtype, channels, size):
    rng = np.random.default_rng(channels + size)
    x = rng.standard_normal((1, channels, size, size)).astype(dtype)
    w = (rng.standard_normal((channels, channels, k, k))
         * np.sqrt(2.0 / (k * k * channels))).astype(dtype)
    assert_normwise(wino(x, w, padding=k // 2), ref.conv(x, w, padding=k // 2, nd=2), dtype,
                    f"{channels}ch@{size}")
    spy.check()
