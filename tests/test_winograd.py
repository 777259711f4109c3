"""Winograd F(2x2,3x3) and F(4x4,3x3) (fastconv._winograd) against the oracle.

(F(2x2,5x5) has its own module, test_winograd_5x5.py.)

The oracle is the float64 sliding-window correlation of conftest.py (the
``ref`` fixture), never fastconv.  Winograd's error is normwise, not
elementwise, so every case is held to

    max |result - reference| <= ERROR_BOUND[dtype] * max |reference|

with ``fastconv._winograd.ERROR_BOUND`` (5e-5 float32, 1e-12 float64).

A variant is forced by replacing ``fastconv._winograd.choose_variant``, which
``CPUBackend.prepare`` consults for ``algorithm="winograd"``; a spy on
``fastconv._winograd.conv`` checks that the Winograd kernel really ran with
that variant.  ``test_module_conv_*`` call ``fastconv._winograd.conv`` the
way ``CPUBackend.execute`` does (5-D C-contiguous operands, leading zero
padding, ``m=`` and ``u=``).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fastconv
from fastconv import _cost, _cpu
from fastconv import _winograd as W
from fastconv._validation import plan_conv

DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("f32", "f64")


@pytest.fixture
def rng():
    return np.random.default_rng(20240604)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def bound(dtype):
    return W.ERROR_BOUND[np.dtype(dtype)]


def normwise_error(got, expected):
    expected = np.asarray(expected, dtype=np.float64)
    if expected.size == 0:
        return 0.0, 0.0
    scale = float(np.abs(expected).max())
    err = float(np.abs(np.asarray(got, dtype=np.float64) - expected).max())
    return err, scale


def assert_normwise(got, expected, dtype, context=""):
    """Shape, dtype and the normwise Winograd bound against a float64 reference."""
    assert isinstance(got, np.ndarray), context
    assert got.shape == expected.shape, f"{context}: shape {got.shape} != {expected.shape}"
    assert got.dtype == np.dtype(dtype), f"{context}: dtype {got.dtype} != {np.dtype(dtype)}"
    if expected.size == 0:
        return
    assert np.all(np.isfinite(got)), f"{context}: non-finite values"
    err, scale = normwise_error(got, expected)
    assert err <= bound(dtype) * scale, (
        f"{context}: normwise error {err / scale if scale else err:.3g} > "
        f"{bound(dtype):g} (max|err| {err:.3g}, max|ref| {scale:.3g})")


def make_case(rng, dtype, *, n=2, cin=3, cout=4, groups=1, size=(7, 9), bias=True,
              ksize=(3, 3)):
    shape = (cin, *size) if n is None else (n, cin, *size)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, *ksize)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b


@pytest.fixture(params=W.VARIANTS, ids=lambda m: f"F{m}")
def variant(request, monkeypatch):
    """Force F(m x m, 3 x 3) and record the m of every Winograd kernel call."""
    m = request.param
    calls = []
    real_conv = W.conv

    def spy(*args, **kwargs):
        calls.append(kwargs.get("m"))
        return real_conv(*args, **kwargs)

    monkeypatch.setattr(W, "choose_variant", lambda problem, planned=False: m)
    monkeypatch.setattr(W, "conv", spy)

    class Variant:
        pass

    v = Variant()
    v.m, v.calls = m, calls

    def check_ran(expect_calls=True):
        if expect_calls:
            assert calls, "the Winograd kernel did not run"
            assert all(c == m for c in calls), f"variant {calls} != forced F({m})"
        else:
            assert not calls

    v.check_ran = check_ran
    return v


def wino(x, w, b=None, **kw):
    return fastconv.conv2d(x, w, b, algorithm="winograd", **kw)


# --------------------------------------------------------------------------
# the transform matrices and the filter transform
# --------------------------------------------------------------------------
@pytest.mark.parametrize("m", W.VARIANTS)
def test_transform_matrices_give_minimal_filtering(m, rng):
    """A^T [(G g) * (B^T d)] is the valid 1-D correlation of d with g, and the
    nested 2-D form is the 2-D correlation of a tile (float64, exact maths)."""
    bt, g_mat, at = W.transform_matrices(m)
    a = m + 2
    assert bt.shape == (a, a) and g_mat.shape == (a, 3) and at.shape == (m, a)
    assert bt.dtype == g_mat.dtype == at.dtype == np.float64
    for _ in range(5):
        d = rng.standard_normal(a)
        g = rng.standard_normal(3)
        y = at @ ((g_mat @ g) * (bt @ d))
        np.testing.assert_allclose(y, np.correlate(d, g, mode="valid"), rtol=0, atol=1e-12)
        d2 = rng.standard_normal((a, a))
        g2 = rng.standard_normal((3, 3))
        y2 = at @ ((g_mat @ g2 @ g_mat.T) * (bt @ d2 @ bt.T)) @ at.T
        want = np.array([[np.sum(d2[i:i + 3, j:j + 3] * g2) for j in range(m)]
                         for i in range(m)])
        np.testing.assert_allclose(y2, want, rtol=0, atol=1e-11)


@pytest.mark.parametrize("m", [0, 1, 3, 6, 8, "4"])
def test_transform_matrices_unknown_variant(m):
    with pytest.raises(ValueError, match="variant"):
        W.transform_matrices(m)


@pytest.mark.parametrize("m, r", [(4, 5), (2, 7), (2, 1), (3, 5), (2, 2), (4, 2)])
def test_transform_matrices_unknown_filter_size(m, r):
    with pytest.raises(ValueError, match="variant"):
        W.transform_matrices(m, r)


def test_variants_and_bound_constants():
    assert tuple(W.VARIANTS) == (2, 4)
    assert W.VARIANTS_BY_SIZE == {3: (2, 4), 5: (2,), 2: (3,)}
    assert W.ERROR_BOUND[np.dtype(np.float32)] == 5e-5
    assert W.ERROR_BOUND[np.dtype(np.float64)] == 1e-12


@pytest.mark.parametrize("m", W.VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("groups", [1, 2, 6])
def test_filter_transform_layout(m, dtype, groups, rng):
    """U[xi*a + nu, gi, k, c] = (G g G^T)[xi, nu] of filter (gi*Kg + k, c)."""
    _, g_mat, _ = W.transform_matrices(m)
    a = m + 2
    cout, cin_g = 6, 5
    w4 = rng.standard_normal((cout, cin_g, 3, 3)).astype(dtype)
    want = np.einsum("xi,ocij,nj->xnoc", g_mat, w4.astype(np.float64), g_mat)
    want = want.reshape(a * a, groups, cout // groups, cin_g)
    for nthreads in (1, 2):
        u = W.filter_transform(w4, groups, m, dtype, nthreads)
        assert u.shape == (a * a, groups, cout // groups, cin_g)
        assert u.dtype == np.dtype(dtype)
        tol = 1e-14 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(u, want, rtol=0, atol=tol * np.abs(want).max())
    # into a caller's (larger) flat buffer
    buf = np.full(a * a * cout * cin_g + 7, np.nan, dtype=dtype)
    u = W.filter_transform(w4, groups, m, dtype, 1, out=buf)
    assert np.shares_memory(u, buf)
    np.testing.assert_allclose(u, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert np.all(np.isnan(buf[a * a * cout * cin_g:]))


@pytest.mark.parametrize("k, m", [(3, 2), (3, 4), (5, 2), (2, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_filter_transform_reports_nonfinite_taps(k, m, dtype, rng):
    """return_finite is np.isfinite(w).all(), for every tap position, NaN
    and both infinities, in blocks of filters past the first."""
    w4 = rng.standard_normal((7, 40, k, k)).astype(dtype)
    u, finite = W.filter_transform(w4, 1, m, dtype, 2, return_finite=True)
    assert finite is True
    for f, i, j, bad in ((0, 0, 0, np.nan), (3, 0, 39, np.inf), (6, k - 1, 17, -np.inf),
                         (2, k // 2, 5, np.nan)):
        wb = w4.copy()
        wb[f, j, i, (i + j) % k] = bad
        assert W.filter_transform(wb, 1, m, dtype, 2, return_finite=True)[1] is False
    # large finite taps stay finite
    big = np.full_like(w4, np.finfo(dtype).max / 64)
    assert W.filter_transform(big, 1, m, dtype, 1, return_finite=True)[1] is True


@pytest.mark.parametrize("k, m", [(3, 2), (3, 4), (5, 2), (2, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n_filters", [1, 3, 130, 301])
@pytest.mark.parametrize("offset", [0, 1, 2])
def test_filter_transform_streamed(k, m, dtype, n_filters, offset, rng):
    """Non-temporal stores write the same values as plain ones, into
    aligned and unaligned rows (an odd filter count shifts each row; the
    buffer offset the first), with ragged blocks, and touch nothing past
    U; the finiteness flag is the same."""
    _, g_mat, _ = W.transform_matrices(m, k)
    a = m + k - 1
    w4 = rng.standard_normal((n_filters, 1, k, k)).astype(dtype)
    want = np.einsum("xi,ocij,nj->xnoc", g_mat, w4.astype(np.float64), g_mat)
    size = a * a * n_filters
    buf = np.full(size + offset + 7, np.nan, dtype=dtype)
    u, finite = W.filter_transform(w4, 1, m, dtype, 2, out=buf[offset:], return_finite=True,
                                   stream=True)
    assert finite is True
    assert np.shares_memory(u, buf)
    plain = W.filter_transform(w4, 1, m, dtype, 2)
    np.testing.assert_array_equal(u, plain)
    tol = (1e-13 if dtype == np.float64 else 1e-5) * np.abs(want).max()
    np.testing.assert_allclose(u, want.reshape(u.shape), rtol=0, atol=tol)
    assert np.all(np.isnan(buf[:offset])) and np.all(np.isnan(buf[offset + size:]))
    w4[n_filters // 2, 0, 0, k - 1] = np.inf
    assert W.filter_transform(w4, 1, m, dtype, 1, return_finite=True, stream=True)[1] is False


def test_stream_filters():
    """Streamed: large transformed filters for wide GEMMs; plain: small
    filters, or few tiles (the GEMMs would then wait on memory)."""
    def problem(n, c, size, dtype=np.float32):
        return _problem(np.zeros((n, c, size + 2, size + 2), dtype),
                        np.zeros((c, c, 3, 3), dtype))

    assert W.stream_filters(problem(8, 512, 7), 2)       # 16.8 MB, 128 tiles
    assert W.stream_filters(problem(4, 256, 14), 4)      # 9.4 MB, 64 tiles
    assert not W.stream_filters(problem(1, 512, 7), 2)   # 16 tiles
    assert not W.stream_filters(problem(8, 256, 14), 2)  # 4.2 MB
    assert not W.stream_filters(problem(8, 64, 56), 4)
    assert not W.stream_filters(problem(8, 300, 14), 2)  # 5.8 MB in float32,
    assert W.stream_filters(problem(8, 300, 14, np.float64), 2)  # 11.5 MB in float64


def test_filter_transform_empty():
    u = W.filter_transform(np.empty((0, 4, 3, 3)), 1, 2, np.float64)
    assert u.shape == (16, 1, 0, 4)


def _problem(x, w, b=None, padding=0, groups=1, padding_mode="zeros"):
    return plan_conv(2, x, w, b, 1, padding, 1, groups, padding_mode)


@pytest.mark.parametrize("size, expected", [
    ((3, 50), 2),      # min side < 4
    ((50, 3), 2),
    ((19, 20), 2),     # 380 outputs < SMALL_OUTPUT
    ((20, 20), 4),     # 400
    ((56, 56), 4),
    ((7, 7), 2),
    ((14, 14), 2),
])
def test_choose_weight_grad_variant(size, expected):
    x = np.zeros((1, 2, size[0] + 2, size[1] + 2))
    w = np.zeros((2, 2, 3, 3))
    p = _problem(x, w)
    assert p.out_size == size
    assert W.choose_weight_grad_variant(p) == expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c, size", [(1, 64, 56), (8, 64, 56), (1, 256, 14), (8, 256, 14),
                                        (1, 512, 7), (8, 512, 7), (1, 5, 8), (2, 3, 100),
                                        (1, 7, 3), (4, 33, 19)])
def test_choose_variant_follows_the_cost_model(dtype, n, c, size):
    """3x3: the variant with the smaller estimate, by the call model for a
    call and by the plan model for a plan."""
    x = np.zeros((n, c, size + 2, size + 2), dtype)
    w = np.zeros((c, c, 3, 3), dtype)
    p = _problem(x, w)
    for planned in (False, True):
        est = {m: _cost.winograd_time(p, m, planned) for m in W.VARIANTS}
        assert W.choose_variant(p, planned) == min(est, key=est.get)


def test_choose_variant_filters_decide_small_maps():
    """Transforming 512x512 filters to F(4,3)'s 36 points on every call
    costs more than its fewer multiplications save on 7x7 maps (N=8), but a
    plan transforms them once; large maps take F(4,3) either way, and one
    7x7 image (4 tiles a GEMM) F(2,3) either way."""
    def problem(n, c, size):
        return _problem(np.zeros((n, c, size + 2, size + 2), np.float32),
                        np.zeros((c, c, 3, 3), np.float32))

    for args, expected in (((8, 512, 7), (2, 4)), ((1, 64, 56), (4, 4)), ((1, 512, 7), (2, 2))):
        p = problem(*args)
        assert (W.choose_variant(p), W.choose_variant(p, True)) == expected, args


def test_plans_choose_the_planned_variant(rng, monkeypatch):
    """fastconv.plan transforms the filters once (planned=True); a call
    transforms them on every call (planned=False)."""
    seen = []
    real = W.choose_variant
    monkeypatch.setattr(W, "choose_variant",
                        lambda p, planned=False: seen.append(planned) or real(p, planned))
    x, w, b = make_case(rng, np.float32, n=1, cin=4, cout=4, size=(12, 12))
    pl = fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm="winograd")
    assert seen == [True]
    pl(x)
    wino(x, w, b, padding=1)
    assert seen == [True, False]


@pytest.mark.parametrize("m", W.VARIANTS)
@pytest.mark.parametrize("nthreads", [1, 2, 3, 8])
@pytest.mark.parametrize("shape", [(1, 64, 58, 58), (3, 4, 9, 13), (8, 512, 9, 9), (1, 3, 3, 3)])
def test_schedule_is_sane(m, nthreads, shape):
    x = np.zeros(shape, np.float32)
    w = np.zeros((shape[1], shape[1], 3, 3), np.float32)
    p = _problem(x, w)
    rows, parallel, parts = W.schedule(p, m, nthreads)
    total = p.batch * -(-p.out_size[0] // m)
    assert isinstance(parallel, (bool, np.bool_))
    assert rows >= 1
    assert rows <= max(1, total)
    assert 1 <= parts <= max(1, min(nthreads, shape[1], W.SPLIT_MAX_THREADS))
    assert parts == 1 or parallel


# --------------------------------------------------------------------------
# conv2d(..., algorithm="winograd") against the oracle
# --------------------------------------------------------------------------
PADDINGS = [0, 1, 2, (1, 0), (0, 2), ((2, 0), (1, 3)), ((0, 1), (2, 0)), "same", "valid"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("padding", PADDINGS, ids=repr)
def test_paddings(ref, rng, variant, dtype, padding):
    x, w, b = make_case(rng, dtype, size=(7, 9))
    y = wino(x, w, b, padding=padding)
    assert_normwise(y, ref.conv(x, w, b, padding=padding, nd=2), dtype, f"padding={padding!r}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, 2, ((2, 0), (1, 2)), "same"], ids=repr)
def test_padding_modes(ref, rng, variant, dtype, mode, padding):
    x, w, b = make_case(rng, dtype, size=(6, 11))
    y = wino(x, w, b, padding=padding, padding_mode=mode)
    assert_normwise(y, ref.conv(x, w, b, padding=padding, padding_mode=mode, nd=2), dtype,
                    f"{mode} padding={padding!r}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cin, cout, groups", [(4, 6, 1), (4, 6, 2), (6, 6, 3), (5, 5, 5),
                                               (4, 8, 4)],
                         ids=["g1", "g2", "g3", "depthwise", "depthwise-x2"])
@pytest.mark.parametrize("padding", [0, 1])
def test_groups(ref, rng, variant, dtype, cin, cout, groups, padding):
    x, w, b = make_case(rng, dtype, cin=cin, cout=cout, groups=groups, size=(10, 7))
    y = wino(x, w, b, padding=padding, groups=groups)
    assert_normwise(y, ref.conv(x, w, b, padding=padding, groups=groups, nd=2), dtype,
                    f"groups={groups}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [0, 1, 3])
def test_batch_sizes(ref, rng, variant, dtype, n):
    x, w, b = make_case(rng, dtype, n=n, size=(9, 6))
    y = wino(x, w, b, padding=1)
    if n == 0:
        assert y.shape == (0, 4, 9, 6) and y.dtype == np.dtype(dtype)
        return
    assert_normwise(y, ref.conv(x, w, b, padding=1, nd=2), dtype, f"n={n}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_unbatched_and_plain_forms(ref, rng, variant, dtype):
    x, w, b = make_case(rng, dtype, n=None, size=(8, 11))
    y = wino(x, w, b, padding="same")
    assert y.shape == (4, 8, 11)
    assert_normwise(y, ref.conv(x, w, b, padding="same", nd=2), dtype, "unbatched")

    img = rng.standard_normal((12, 9)).astype(dtype)
    k = rng.standard_normal((3, 3)).astype(dtype)
    for padding in (0, 1, ((1, 0), (0, 2))):
        y = wino(img, k, padding=padding)
        assert y.ndim == 2
        assert_normwise(y, ref.conv(img, k, padding=padding, nd=2), dtype, f"plain {padding}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("oh", range(1, 14))
def test_ragged_tile_edges(ref, rng, variant, dtype, oh):
    """Output sizes 1..13 in both directions: tiles that overhang the edge."""
    for ow in (oh, 14 - oh, 1 + (oh * 5) % 13):
        x, w, b = make_case(rng, dtype, n=2, cin=3, cout=2, size=(oh + 2, ow + 2))
        y = wino(x, w, b)
        assert y.shape == (2, 2, oh, ow)
        assert_normwise(y, ref.conv(x, w, b, nd=2), dtype, f"out {oh}x{ow}")
        # the same output size reached through padding only
        x, w, b = make_case(rng, dtype, n=1, cin=2, cout=3, size=(oh, ow))
        y = wino(x, w, b, padding=1)
        assert_normwise(y, ref.conv(x, w, b, padding=1, nd=2), dtype, f"same {oh}x{ow}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("width", [1, 5, 7, 9, 14, 16, 17, 33])
def test_short_tile_rows_in_blocks(ref, rng, variant, dtype, width):
    """Maps whose tile rows hold at most half a vector of tiles take their
    transforms several rows at a time (fc_wino_input/output's block form):
    tall maps of 1-33 columns, so blocks end inside an image, at its last
    row and across the batch, with ragged last tiles, padding and bias,
    under one and two threads and the task schedules."""
    # (192 channels: transformed filters larger than a task, split between
    # two threads by output channel: W.schedule)
    for n, c, height, padding, threads in ((3, 3, 150, 1, 2), (2, 3, 67, ((2, 0), (1, 1)), 1),
                                           (1, 3, 9, 0, 2), (2, 192, 23, 1, 2)):
        x, w, b = make_case(rng, dtype, n=n, cin=c, cout=c + 2, size=(height, width + 2))
        y = fastconv.conv2d(x, w, b, padding=padding, algorithm="winograd", workers=threads)
        assert_normwise(y, ref.conv(x, w, b, padding=padding, nd=2), dtype,
                        f"{height}x{width} N={n} padding={padding!r}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_tiny_images_large_padding(ref, rng, variant, dtype):
    """Images smaller than a tile, padding wider than the image."""
    for size, padding in (((1, 1), 1), ((1, 1), 2), ((2, 1), (2, 3)), ((1, 3), ((3, 0), (0, 4))),
                          ((3, 3), 0), ((2, 2), 5)):
        x, w, b = make_case(rng, dtype, n=2, size=size)
        y = wino(x, w, b, padding=padding)
        assert_normwise(y, ref.conv(x, w, b, padding=padding, nd=2), dtype,
                        f"{size} padding={padding!r}")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_without_bias_and_promotion(ref, rng, variant, dtype):
    x, w, _ = make_case(rng, dtype, bias=False, size=(11, 10))
    y = wino(x, w, padding=1)
    assert_normwise(y, ref.conv(x, w, padding=1, nd=2), dtype, "no bias")
    # mixed float32/float64 promote to float64
    other = np.float64 if dtype == np.float32 else np.float32
    b = rng.standard_normal(4).astype(other)
    y = wino(x, w.astype(other), b, padding=1)
    assert_normwise(y, ref.conv(x, w.astype(other), b, padding=1, nd=2), np.float64, "mixed")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_out_argument(ref, rng, variant, dtype):
    x, w, b = make_case(rng, dtype, n=3, size=(9, 10))
    want = ref.conv(x, w, b, padding=1, nd=2)
    out = np.full((3, 4, 9, 10), np.nan, dtype=dtype)
    y = wino(x, w, b, padding=1, out=out)
    assert y is out
    assert_normwise(out, want, dtype, "out C-order")
    # a non-contiguous out (written through a temporary)
    big = np.full((3, 8, 9, 20), np.nan, dtype=dtype)
    view = big[:, ::2, :, ::2]
    y = wino(x, w, b, padding=1, out=view)
    assert y is view
    assert_normwise(view, want, dtype, "out strided")
    assert np.all(np.isnan(big[:, 1::2])) and np.all(np.isnan(big[:, :, :, 1::2]))
    # Fortran-ordered out
    fout = np.asfortranarray(np.zeros((3, 4, 9, 10), dtype=dtype))
    assert wino(x, w, b, padding=1, out=fout) is fout
    assert_normwise(fout, want, dtype, "out Fortran")
    # unbatched
    uout = np.empty((4, 9, 10), dtype=dtype)
    assert wino(x[1], w, b, padding=1, out=uout) is uout
    assert_normwise(uout, want[1], dtype, "out unbatched")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_out_aliasing_input(ref, rng, variant, dtype):
    """out= the input itself (same shape with padding="same", C_in == C_out)."""
    x, w, b = make_case(rng, dtype, n=2, cin=4, cout=4, size=(10, 9))
    want = ref.conv(x, w, b, padding="same", nd=2)
    y = wino(x, w, b, padding="same", out=x)
    assert y is x
    assert_normwise(x, want, dtype, "out=x")
    variant.check_ran()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("size", [(3, 301), (301, 3), (5, 1000), (1, 700)])
def test_wide_and_tall_images(ref, rng, variant, dtype, size):
    x, w, b = make_case(rng, dtype, n=1, cin=2, cout=3, size=size)
    for padding in (1, ((0, 2), (3, 1))):
        y = wino(x, w, b, padding=padding)
        assert_normwise(y, ref.conv(x, w, b, padding=padding, nd=2), dtype, f"{size}")
    variant.check_ran()


def test_concurrent_python_threads(ref, rng):
    """Calls from several Python threads at once (each thread keeps its own
    scratch, the transformed filters of one call included)."""
    import threading

    cases = []
    for i in range(4):
        x, w, b = make_case(rng, np.float64, n=2, cin=3 + i, cout=5 - i % 2, size=(15 + i, 12))
        cases.append((x, w, b, ref.conv(x, w, b, padding=1, nd=2)))
    errors = []

    def work(i):
        x, w, b, want = cases[i]
        try:
            for _ in range(5):
                y = wino(x, w, b, padding=1, workers=1)
                err, scale = normwise_error(y, want)
                if err > bound(np.float64) * scale:
                    errors.append((i, err / scale))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_input_layouts_and_read_only(ref, rng, variant, dtype):
    x, w, b = make_case(rng, dtype, n=2, cin=4, cout=3, size=(12, 10))
    want = ref.conv(x, w, b, padding=1, nd=2)
    layouts = {
        "fortran": (np.asfortranarray(x), np.asfortranarray(w)),
        "strided": (np.repeat(np.repeat(x, 2, axis=2), 3, axis=3)[:, :, ::2, ::3],
                    np.repeat(w, 2, axis=1)[:, ::2]),
        "negative": (x[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1],
                     w[::-1].copy()[::-1]),
        "transposed": (np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
                       np.ascontiguousarray(w.transpose(1, 0, 3, 2)).transpose(1, 0, 3, 2)),
    }
    for name, (xi, wi) in layouts.items():
        np.testing.assert_array_equal(xi, x)
        np.testing.assert_array_equal(wi, w)
        assert_normwise(wino(xi, wi, b, padding=1), want, dtype, name)
    xr, wr, br = x.copy(), w.copy(), b.copy()
    for a in (xr, wr, br):
        a.flags.writeable = False
    assert_normwise(wino(xr, wr, br, padding=1), want, dtype, "read-only")
    # inputs are never modified
    xs, ws, bs = x.copy(), w.copy(), b.copy()
    for mode in ("zeros", "reflect"):
        wino(x, w, b, padding=1, padding_mode=mode)
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(w, ws)
    np.testing.assert_array_equal(b, bs)
    variant.check_ran()


# --------------------------------------------------------------------------
# threads and the two schedules
# --------------------------------------------------------------------------
SCHEDULES = {
    # one tile row per task: many tasks, run in parallel (threads own tasks)
    "tiny-tasks": dict(TASK_BYTES=1 << 40, MIN_GEMM_TILES=1, MAX_TASK_BYTES=1),
    # filters "larger than a task" and a few tile rows per task (see
    # _few_rows), not split by output channel: tasks in sequence, the team
    # sharing each
    "few-team": dict(TASK_BYTES=1, MIN_GEMM_TILES=1, MAX_TASK_BYTES=None, SPLIT_FILTER_RATIO=0),
    # filters "larger than a task", split among the threads by output
    # channel: one tile row per task, or all of them in one
    "parts": dict(TASK_BYTES=1, MIN_GEMM_TILES=1, SPLIT_FILTER_RATIO=1 << 40),
    "parts-whole": dict(TASK_BYTES=1, MIN_GEMM_TILES=1 << 30, MAX_TASK_BYTES=1 << 40,
                        SPLIT_FILTER_RATIO=1 << 40),
    # one task per group: the team shares it (transforms by channel, GEMMs by
    # transform position) unless there are as many groups as threads
    "one-task": dict(TASK_BYTES=1 << 40, MIN_GEMM_TILES=1 << 30, MAX_TASK_BYTES=1 << 40),
    "default": {},
}


FEW_ROWS = 3


def _apply_schedule(mp, sched, problem, m):
    for name, value in SCHEDULES[sched].items():
        if value is None:  # MAX_TASK_BYTES: FEW_ROWS tile rows per task
            ow = problem.out_size[1]
            row_bytes = ((m + 2) ** 2 * (problem.in_channels_per_group
                                         + problem.out_channels_per_group)
                         * -(-ow // m) * problem.dtype.itemsize)
            value = FEW_ROWS * row_bytes
        mp.setattr(W, name, value)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("sched", list(SCHEDULES))
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_threads_and_schedules(ref, rng, monkeypatch, variant, dtype, sched, workers, groups):
    x, w, b = make_case(rng, dtype, n=3, cin=6, cout=10, groups=groups, size=(13, 11))
    _apply_schedule(monkeypatch, sched, _problem(x, w, b, 1, groups), variant.m)
    # small problems otherwise run on fewer threads than asked
    monkeypatch.setattr(_cpu, "MIN_WORK_PER_THREAD", 1)
    seen = []
    real_schedule = W.schedule

    def spy(problem, m, nthreads):
        result = real_schedule(problem, m, nthreads)
        seen.append((nthreads, result))
        return result

    monkeypatch.setattr(W, "schedule", spy)
    y = wino(x, w, b, padding=1, groups=groups, workers=workers)
    assert_normwise(y, ref.conv(x, w, b, padding=1, groups=groups, nd=2), dtype,
                    f"{sched} workers={workers}")
    variant.check_ran()
    assert seen and seen[-1][0] == workers
    rows, parallel, parts = seen[-1][1]
    total = 3 * -(-13 // variant.m)
    if sched == "tiny-tasks":
        assert rows == 1 and parallel and parts == 1
    elif sched == "few-team":
        assert rows == FEW_ROWS and not parallel and parts == 1
    elif sched in ("parts", "parts-whole") and workers > 1:
        assert rows == (1 if sched == "parts" else total)
        assert parallel and parts == min(workers, 10 // groups)
    elif sched in ("parts", "parts-whole"):
        # one thread shares nothing with another: its tasks run unsplit
        assert not parallel and parts == 1
    elif sched == "one-task":
        assert rows == total and parts == 1
        assert bool(parallel) == (groups >= workers)


def test_threaded_results_agree(rng, monkeypatch):
    """Every thread count and schedule gives the same float64 answer (to
    rounding): no tile is skipped or written twice by a racing thread."""
    monkeypatch.setattr(_cpu, "MIN_WORK_PER_THREAD", 1)
    x, w, b = make_case(rng, np.float64, n=4, cin=8, cout=8, size=(21, 17))
    results = []
    for sched in SCHEDULES:
        with monkeypatch.context() as mp:
            problem = _problem(x, w, b, 1)
            _apply_schedule(mp, sched, problem, W.choose_variant(problem))
            for workers in (1, 2, 3):
                for _ in range(2):
                    results.append(wino(x, w, b, padding=1, workers=workers))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=0, atol=1e-12 * np.abs(results[0]).max())


# --------------------------------------------------------------------------
# fastconv._winograd.conv called as CPUBackend.execute calls it
# --------------------------------------------------------------------------
def run_module(x, w, b, padding, groups, m, nthreads, *, precompute=False):
    dtype = np.result_type(x, w)
    p = _problem(x, w, b, padding, groups)
    n, c, h, wd = x.shape
    x5 = np.ascontiguousarray(x.reshape(n, c, 1, h, wd), dtype=dtype)
    w5 = np.ascontiguousarray(w.reshape(w.shape[0], w.shape[1], 1, 3, 3), dtype=dtype)
    b1 = np.empty(0, dtype) if b is None else np.ascontiguousarray(b, dtype=dtype)
    out5 = np.full((n, w.shape[0], 1) + p.out_size, np.nan, dtype=dtype)
    pad_before = (0, p.padding[0][0], p.padding[1][0])
    u = W.filter_transform(w5[:, :, 0], groups, m, dtype, nthreads) if precompute else None
    W.conv(x5, w5, b1, out5, pad_before, p, nthreads, m=m, u=u)
    return out5[:, :, 0]


@pytest.mark.parametrize("m", W.VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_module_conv(ref, rng, m, dtype, nthreads):
    settings = ((1, 1, True, False), (((2, 0), (1, 3)), 2, False, True), (0, 4, True, True),
                ("same", 1, False, False))
    for padding, groups, bias, precompute in settings:
        x, w, b = make_case(rng, dtype, n=2, cin=4, cout=8, groups=groups, size=(11, 8),
                            bias=bias)
        y = run_module(x, w, b, padding, groups, m, nthreads, precompute=precompute)
        assert_normwise(y, ref.conv(x, w, b, padding=padding, groups=groups, nd=2), dtype,
                        f"F{m} padding={padding!r} groups={groups}")


def test_module_conv_default_variant(ref, rng, monkeypatch):
    """m=None picks choose_variant's variant."""
    picked = []
    real = W.choose_variant
    monkeypatch.setattr(W, "choose_variant",
                        lambda p, planned=False: picked.append(real(p, planned)) or picked[-1])
    x, w, b = make_case(rng, np.float64, n=1, cin=3, cout=3, size=(24, 24))
    p = _problem(x, w, b, 1)
    x5 = np.ascontiguousarray(x[:, :, None])
    w5 = np.ascontiguousarray(w[:, :, None])
    out5 = np.empty((1, 3, 1, 24, 24))
    W.conv(x5, w5, b, out5, (0, 1, 1), p, 1)
    assert picked == [4]
    assert_normwise(out5[:, :, 0], ref.conv(x, w, b, padding=1, nd=2), np.float64, "m=None")


def test_default_variant_through_conv2d(ref, rng):
    """Without forcing, conv2d(..., algorithm="winograd") uses choose_variant."""
    for size, m in (((30, 30), 4), ((8, 8), 2)):
        for dtype in DTYPES:
            x, w, b = make_case(rng, dtype, n=1, cin=5, cout=6, size=size)
            y = wino(x, w, b, padding=1)
            p = _problem(x, w, b, 1)
            assert W.choose_variant(p) == m
            assert_normwise(y, ref.conv(x, w, b, padding=1, nd=2), dtype, f"default {size}")


# --------------------------------------------------------------------------
# accuracy on CNN-like layers (He-scaled weights, standard-normal input)
# --------------------------------------------------------------------------
LAYERS = [(64, 24), (256, 10), (512, 6)]  # stand-ins for 64@56, 256@14, 512@7


@functools.lru_cache(maxsize=None)
def _layer(channels, size, dtype):
    rng = np.random.default_rng(channels * 1000 + size)
    x = rng.standard_normal((1, channels, size, size)).astype(dtype)
    w = (rng.standard_normal((channels, channels, 3, 3))
         * np.sqrt(2.0 / (9 * channels))).astype(dtype)
    return x, w


@functools.lru_cache(maxsize=None)
def _layer_ref(channels, size, dtype):
    from numpy.lib.stride_tricks import sliding_window_view

    x, w = _layer(channels, size, dtype)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (1, 1), (1, 1)])
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))
    return np.einsum("ncijuv,ocuv->noij", win, w.astype(np.float64), optimize=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("channels, size", LAYERS, ids=[f"{c}ch@{s}" for c, s in LAYERS])
def test_accuracy_cnn_layers(ref, variant, dtype, channels, size):
    x, w = _layer(channels, size, dtype)
    want = _layer_ref(channels, size, dtype)
    if channels == 64:  # the fixture's oracle agrees with the local reference
        np.testing.assert_allclose(ref.conv(x, w, padding=1, nd=2), want, rtol=1e-12,
                                   atol=1e-12)
    y = wino(x, w, padding=1)
    variant.check_ran()
    err, scale = normwise_error(y, want)
    assert y.dtype == np.dtype(dtype)
    assert err / scale <= bound(dtype), (
        f"F({variant.m}) {np.dtype(dtype).name} {channels}ch@{size}: normwise error "
        f"{err / scale:.3g} > {bound(dtype):g}")


# --------------------------------------------------------------------------
# arguments Winograd cannot serve
# --------------------------------------------------------------------------
@pytest.mark.parametrize("case, reason", [
    (dict(stride=2), "stride"),
    (dict(stride=(1, 2)), "stride"),
    (dict(dilation=2), "dilation"),
    (dict(dilation=(2, 1)), "dilation"),
    (dict(ksize=(7, 7)), "3x3, 5x5 or 2x2"),
    (dict(ksize=(3, 5)), "3x3, 5x5 or 2x2"),
    (dict(ksize=(1, 1)), "3x3, 5x5 or 2x2"),
    (dict(ksize=(5, 5), stride=2), "stride"),
], ids=["stride2", "stride1x2", "dilation2", "dilation2x1", "k7x7", "k3x5", "k1x1",
        "k5x5-stride2"])
def test_unsupported_conv2d(rng, case, reason):
    case = dict(case)
    ksize = case.pop("ksize", (3, 3))
    x = rng.standard_normal((1, 2, 12, 12))
    w = rng.standard_normal((2, 2, *ksize))
    with pytest.raises(ValueError, match=r"(?i)winograd") as info:
        fastconv.conv2d(x, w, algorithm="winograd", **case)
    assert reason in str(info.value)
    # "auto" serves the same arguments
    fastconv.conv2d(x, w, **case)


@pytest.mark.parametrize("conv, xshape, wshape", [
    (fastconv.conv1d, (1, 2, 16), (2, 2, 3)),
    (fastconv.conv3d, (1, 2, 6, 6, 6), (2, 2, 3, 3, 3)),
], ids=["conv1d", "conv3d"])
def test_unsupported_other_dimensions(rng, conv, xshape, wshape):
    x = rng.standard_normal(xshape)
    w = rng.standard_normal(wshape)
    with pytest.raises(ValueError, match=r"(?i)winograd") as info:
        conv(x, w, algorithm="winograd")
    assert "conv2d" in str(info.value)


def test_auto_does_not_offer_winograd_for_depthwise_and_other_sizes():
    x = np.ones((1, 16, 32, 32), np.float32)
    depthwise = fastconv.choose_algorithm(fastconv.conv2d, x, np.ones((16, 1, 3, 3), np.float32),
                                          groups=16, padding=1)
    assert "winograd" not in depthwise.seconds
    seven = fastconv.choose_algorithm(fastconv.conv2d, x, np.ones((16, 16, 7, 7), np.float32))
    assert "winograd" not in seven.seconds
    assert "3x3, 5x5 or 2x2" in seven.unavailable["winograd"]
    five = fastconv.choose_algorithm(fastconv.conv2d, x, np.ones((16, 16, 5, 5), np.float32))
    assert "winograd" in five.seconds
