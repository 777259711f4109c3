"""fastconv.conv_transpose1d/2d/3d against independent oracles.

* a NumPy scatter reference (every input sample times every tap added at
  ``i*s - p + k*d``, channel sums by einsum), float64;
* the adjoint identity <conv(x), y> == <x, conv_transpose(y)> with
  fastconv.conv{1,2,3}d, which the other suites check against oracles;
* torch.nn.functional.conv_transpose{1,2,3}d when PyTorch is installed.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oracles import scatter_reference

import fastconv

CT = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d,
      3: fastconv.conv_transpose3d}
CONV = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


def _tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


CASES = [
    # nd, size, k, stride, padding, output_padding, dilation, groups
    (1, 7, 3, 2, 1, 1, 1, 1),
    (1, 5, 4, 3, 2, 2, 1, 2),
    (1, 6, 3, 2, 0, 1, 2, 1),
    (1, 4, 5, 1, 3, 0, 1, 1),
    (2, 5, 4, 2, 1, 0, 1, 1),
    (2, 5, 3, (2, 3), (1, 0), (1, 2), 1, 2),
    (2, 6, 3, 2, 2, 1, 2, 1),
    (2, 4, (2, 3), 1, 0, 0, (2, 1), 1),
    (2, 3, 5, 3, 4, 0, 1, 1),
    (2, 5, 1, 2, 0, 1, 1, 2),
    (3, 3, 3, 2, 1, 1, 1, 1),
    (3, 3, 2, (1, 2, 2), 0, 0, (2, 1, 1), 2),
]


@pytest.mark.parametrize("nd, size, k, stride, padding, op, dilation, groups", CASES)
@pytest.mark.parametrize("algorithm", ["auto", "im2col", "direct"])
def test_scatter_reference(nd, size, k, stride, padding, op, dilation, groups, algorithm, xp):
    """Every path against the scatter oracle, in each array namespace
    (conftest's ``xp``: NumPy, the CuPy backend on host kernels, CuPy)."""
    rng = np.random.default_rng(nd * 100 + size)
    cin, cout_g = 2 * groups, 3
    x = rng.standard_normal((2, cin) + (size,) * nd)
    w = rng.standard_normal((cin, cout_g) + _tup(k, nd))
    b = rng.standard_normal(cout_g * groups)
    ref = scatter_reference(x, w, b, stride, padding, op, groups, dilation)
    y = xp.to_numpy(CT[nd](xp.asarray(x), xp.asarray(w), xp.asarray(b), stride, padding, op,
                           groups, dilation, algorithm=algorithm))
    assert y.shape == ref.shape and y.dtype == np.float64
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd, size, k, stride, padding, op, dilation, groups", CASES[::2])
def test_float32_and_promotion(nd, size, k, stride, padding, op, dilation, groups):
    rng = np.random.default_rng(7)
    cin = 4 * groups
    x = rng.standard_normal((1, cin) + (size,) * nd).astype(np.float32)
    w = rng.standard_normal((cin, 2) + _tup(k, nd)).astype(np.float32)
    ref = scatter_reference(x, w, None, stride, padding, op, groups, dilation)
    for alg in ("auto", "im2col"):
        y = CT[nd](x, w, None, stride, padding, op, groups, dilation, algorithm=alg)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    y64 = CT[nd](x, w.astype(np.float64), None, stride, padding, op, groups, dilation)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd, stride, padding, dilation, groups, size", [
    (1, 3, 2, 2, 1, 11), (2, 2, 1, 1, 2, 9), (2, (2, 3), (0, 2), (1, 2), 1, 10),
    (3, 2, 1, 1, 1, 6)])
def test_adjoint_identity(nd, stride, padding, dilation, groups, size):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> with fastconv.conv{nd}d."""
    rng = np.random.default_rng(3)
    cin, cout = 2 * groups, 3 * groups
    w = rng.standard_normal((cout, cin // groups) + (3,) * nd)
    x = rng.standard_normal((2, cin) + (size,) * nd)
    fx = CONV[nd](x, w, None, stride, padding, dilation, groups)
    y = rng.standard_normal(fx.shape)
    s, p, d = (_tup(v, nd) for v in (stride, padding, dilation))
    base = tuple((o - 1) * ss - 2 * pp + dd * 2 + 1 for o, ss, pp, dd in zip(fx.shape[2:], s, p, d))
    op = tuple(n - bb for n, bb in zip(x.shape[2:], base))
    ty = CT[nd](y, w, None, stride, padding, op, groups, dilation)
    assert ty.shape == x.shape
    lhs, rhs = np.vdot(fx, y), np.vdot(x, ty)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_forms_out_and_inputs_untouched():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    ref = scatter_reference(x[None], w, None, 2, 1)[0]
    # unbatched
    np.testing.assert_allclose(fastconv.conv_transpose2d(x, w, stride=2, padding=1), ref,
                               rtol=1e-5, atol=1e-5)
    # plain image and kernel
    plain = fastconv.conv_transpose2d(x[0], w[0, 0], stride=2)
    np.testing.assert_allclose(plain, scatter_reference(x[None, :1], w[:1, :1], None, 2)[0, 0],
                               rtol=1e-5, atol=1e-5)
    # non-contiguous, read-only, Fortran-ordered inputs; caller's arrays unchanged
    xb = np.asfortranarray(np.repeat(x[None], 2, 0))[:, :, ::-1]
    wb = w[:, :, ::-1, :]
    xb.flags.writeable = False
    keep = xb.copy(), wb.copy()
    for alg in ("auto", "im2col"):
        y = fastconv.conv_transpose2d(xb, wb, stride=2, padding=1, algorithm=alg)
        np.testing.assert_allclose(y, scatter_reference(np.ascontiguousarray(xb), wb, None, 2, 1),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(xb, keep[0])
    np.testing.assert_array_equal(wb, keep[1])
    # out=
    out = np.empty((2, 2, 11, 13), np.float32)
    r = fastconv.conv_transpose2d(xb, wb, stride=2, padding=1, out=out)
    assert r is out
    np.testing.assert_allclose(out, y, rtol=1e-6, atol=1e-6)
    # zero batch
    e = fastconv.conv_transpose2d(np.zeros((0, 3, 6, 7)), w, stride=2)
    assert e.shape == (0, 2, 13, 15)


def test_winograd_and_forced_algorithms():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 16, 12, 12))
    w = rng.standard_normal((16, 16, 3, 3))
    ref = scatter_reference(x, w, None, 1, 1)
    y = fastconv.conv_transpose2d(x, w, padding=1, algorithm="winograd")
    assert np.abs(y - ref).max() <= 1e-9 * np.abs(ref).max()
    with pytest.raises(ValueError, match="winograd.*cannot serve"):
        fastconv.conv_transpose2d(x, w[:, :, :2, :2], stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        fastconv.conv_transpose2d(x, w, algorithm="bogus")
    y = fastconv.conv_transpose2d(x, w, stride=2, padding=1, algorithm="fft")
    ref = scatter_reference(x, w, None, 2, 1)
    assert np.abs(y - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(output_padding=2, stride=2), ValueError, "output_padding"),
    (dict(output_padding=-1), ValueError, "output_padding"),
    (dict(stride=0), ValueError, "stride"),
    (dict(dilation=(1,)), ValueError, "dilation"),
    (dict(padding="same"), ValueError, "padding"),
    (dict(padding=1.5), TypeError, "padding"),
    (dict(groups=3), ValueError, "groups"),
    (dict(groups=True), TypeError, "groups"),
    (dict(bias=np.zeros(3)), ValueError, "bias"),
    (dict(padding=5), ValueError, "padding"),
    (dict(out=np.zeros((1, 4, 9, 9))), ValueError, "out"),
    (dict(out=np.zeros((1, 4, 10, 10), np.float32)), TypeError, "out"),
    (dict(workers=0), ValueError, "workers"),
])
def test_bad_arguments(kwargs, exc, match):
    x = np.zeros((1, 4, 8, 8))
    w = np.zeros((4, 4, 3, 3))
    with pytest.raises(exc, match=match):
        fastconv.conv_transpose2d(x, w, **kwargs)


def test_bad_arrays():
    with pytest.raises(TypeError, match="x has dtype int64"):
        fastconv.conv_transpose2d(np.zeros((1, 2, 4, 4), np.int64), np.zeros((2, 1, 3, 3)))
    with pytest.raises(TypeError, match="weight has dtype"):
        fastconv.conv_transpose2d(np.zeros((1, 2, 4, 4)), np.zeros((2, 1, 3, 3), bool))
    with pytest.raises(ValueError, match=r"weight.shape\[0\]=3"):
        fastconv.conv_transpose2d(np.zeros((1, 2, 4, 4)), np.zeros((3, 1, 3, 3)))
    with pytest.raises(ValueError, match="x must be"):
        fastconv.conv_transpose2d(np.zeros((1, 1, 2, 4, 4)), np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="weight must be 4-D"):
        fastconv.conv_transpose2d(np.zeros((2, 4, 4)), np.zeros((3, 3)))


@pytest.fixture(scope="module")
def tfn():
    t = pytest.importorskip("torch")
    return t


TORCH_GRID = [
    (nd, s, p, op, d, g)
    for nd in (1, 2, 3)
    for s, p, op, d, g in [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (2, 0, 0, 2, 2), (3, 2, 2, 1, 1),
                           (2, 2, 1, 3, 2), (1, 1, 1, 2, 1)]
]


@pytest.mark.parametrize("nd, s, p, op, d, g", TORCH_GRID)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch(tfn, nd, s, p, op, d, g, dtype):
    rng = np.random.default_rng(11)
    size = 6 if nd < 3 else 4
    x = rng.standard_normal((2, 4) + (size,) * nd).astype(dtype)
    w = rng.standard_normal((4, 3) + (3,) * nd).astype(dtype)
    b = rng.standard_normal(3 * g).astype(dtype)
    tf = getattr(tfn.nn.functional, f"conv_transpose{nd}d")
    ref = tf(tfn.from_numpy(x), tfn.from_numpy(w), tfn.from_numpy(b), s, p, op, g, d).numpy()
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for alg in ("auto", "im2col", "direct"):
        y = CT[nd](x, w, b, s, p, op, g, d, algorithm=alg)
        assert y.shape == ref.shape and y.dtype == dtype
        np.testing.assert_allclose(y, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    # unbatched form, as torch accepts
    yu = CT[nd](x[0], w, b, s, p, op, g, d)
    refu = tf(tfn.from_numpy(x[0]), tfn.from_numpy(w), tfn.from_numpy(b), s, p, op, g, d).numpy()
    np.testing.assert_allclose(yu, refu, rtol=rtol, atol=rtol * np.abs(refu).max())


def test_torch_benchmark_shape(tfn):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 64, 8, 8), dtype=np.float32)
    w = rng.standard_normal((64, 32, 4, 4), dtype=np.float32)
    ref = tfn.nn.functional.conv_transpose2d(tfn.from_numpy(x), tfn.from_numpy(w), None, 2,
                                             1).numpy()
    y = fastconv.conv_transpose2d(x, w, stride=2, padding=1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# --------------------------------------------------------------------------
# the sub-pixel form (kernel = q x stride, dilation 1): the phases stacked
# into one convolution, forced by algorithm="winograd" and taken by "auto"
# where its estimate wins
# --------------------------------------------------------------------------
SUBPIXEL_CASES = [
    # size, k, stride, padding, output_padding, groups
    (16, 4, 2, 1, 0, 1),
    (7, 4, 2, 0, 1, 1),
    (9, 6, 3, 2, 2, 2),
    ((5, 8), (4, 6), (2, 3), (1, 2), (1, 0), 1),
    (8, 6, 2, 2, 1, 1),        # 3x3 sub-kernels: F(4x4,3x3) / F(2x2,3x3)
    (6, 10, 2, 4, 0, 1),       # 5x5 sub-kernels: F(2x2,5x5)
    (4, 4, 2, 3, 0, 1),        # padding past the first phase's taps
    (3, 4, 2, 0, 1, 3),
    (1, 4, 2, 1, 0, 1),
]


def _subpixel_case(rng, dtype, size, k, stride, groups, n=2, cin_g=3):
    size = _tup(size, 2)
    x = rng.standard_normal((n, cin_g * groups) + size).astype(dtype)
    w = rng.standard_normal((cin_g * groups, 2) + _tup(k, 2)).astype(dtype)
    b = rng.standard_normal(2 * groups).astype(dtype)
    return x, w, b


@pytest.fixture
def subpixel_spy(monkeypatch):
    from fastconv import _transpose

    calls = []
    real = _transpose._run_subpixel

    def spy(backend, plan, problem, target, nthreads):
        calls.append(plan[0].algorithm)
        return real(backend, plan, problem, target, nthreads)

    monkeypatch.setattr(_transpose, "_run_subpixel", spy)
    return calls


@pytest.mark.parametrize("size, k, stride, padding, op, groups", SUBPIXEL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subpixel_winograd(subpixel_spy, size, k, stride, padding, op, groups, dtype):
    from fastconv._winograd import ERROR_BOUND

    rng = np.random.default_rng(31)
    x, w, b = _subpixel_case(rng, dtype, size, k, stride, groups)
    ref = scatter_reference(x, w, b, stride, padding, op, groups)
    xs, ws = x.copy(), w.copy()
    y = fastconv.conv_transpose2d(x, w, b, stride, padding, op, groups, algorithm="winograd")
    assert subpixel_spy == ["winograd"]
    assert y.shape == ref.shape and y.dtype == dtype
    assert np.abs(y - ref).max() <= ERROR_BOUND[np.dtype(dtype)] * np.abs(ref).max()
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(w, ws)
    # into a strided out=, no bias
    ref0 = scatter_reference(x, w, None, stride, padding, op, groups)
    big = np.full(ref.shape[:3] + (2 * ref.shape[3],), np.nan, dtype=dtype)
    view = big[..., ::2]
    assert fastconv.conv_transpose2d(x, w, None, stride, padding, op, groups,
                                     algorithm="winograd", out=view) is view
    assert np.abs(view - ref0).max() <= ERROR_BOUND[np.dtype(dtype)] * np.abs(ref0).max()
    assert np.all(np.isnan(big[..., 1::2]))


@pytest.mark.parametrize("size, k, stride, padding, op, groups", SUBPIXEL_CASES)
def test_subpixel_auto(monkeypatch, subpixel_spy, size, k, stride, padding, op, groups):
    """"auto" with the sub-pixel form always preferred runs it (the stacked
    convolution's own "auto" choice) and agrees with the reference; with
    it never preferred, GEMM + col2im runs.  (Where "auto" weighs it: a
    strided problem with GEMM_MIN_CHANNELS input channels per group.)"""
    from fastconv import _transpose

    rng = np.random.default_rng(32)
    x, w, b = _subpixel_case(rng, np.float64, size, k, stride, groups, n=3, cin_g=8)
    ref = scatter_reference(x, w, b, stride, padding, op, groups)
    monkeypatch.setattr(_transpose, "SUBPIXEL_MARGIN", 1e30)
    y = fastconv.conv_transpose2d(x, w, b, stride, padding, op, groups)
    assert len(subpixel_spy) == 1
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    monkeypatch.setattr(_transpose, "SUBPIXEL_MARGIN", 0.0)
    y = fastconv.conv_transpose2d(x, w, b, stride, padding, op, groups)
    assert len(subpixel_spy) == 1
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_subpixel_not_for_dilation_or_ragged_kernels(subpixel_spy, monkeypatch):
    """No sub-pixel form where the phases' sub-kernels differ (k not a
    multiple of the stride) or taps are dilated: the polyphase path runs."""
    from fastconv import _transpose

    monkeypatch.setattr(_transpose, "SUBPIXEL_MARGIN", 1e30)
    rng = np.random.default_rng(33)
    x = rng.standard_normal((2, 4, 6, 6))
    for k, s, d in ((3, 2, 1), (4, 2, 2), (5, 3, 1)):
        w = rng.standard_normal((4, 2, k, k))
        y = fastconv.conv_transpose2d(x, w, None, s, 1, 0, 1, d)
        ref = scatter_reference(x, w, None, s, 1, 0, 1, d)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    assert subpixel_spy == []


# Random sub-pixel layouts (kernel = q x stride per dimension, dilation 1)
# against the scatter oracle: forced Winograd (q = 2 or 3, which Winograd
# serves) and "auto" with the sub-pixel form always preferred (whatever
# algorithm "auto" then picks for the stacked convolution).
@st.composite
def subpixel_problems(draw):
    s = tuple(draw(st.lists(st.integers(1, 3), min_size=2, max_size=2)))
    q = draw(st.sampled_from([2, 3]))
    k = tuple(q * si for si in s)
    groups = draw(st.integers(1, 2))
    size = tuple(draw(st.lists(st.integers(1, 7), min_size=2, max_size=2)))
    padding = tuple(draw(st.integers(0, kk - 1)) for kk in k)
    op = tuple(draw(st.integers(0, si - 1)) for si in s)
    out = tuple((n - 1) * si - 2 * p + kk + o
                for n, si, p, kk, o in zip(size, s, padding, k, op))
    assume(all(o > 0 for o in out))
    # 8 or more input channels per group in about half the draws: where
    # "auto" weighs the sub-pixel form against GEMM + col2im
    return dict(n=draw(st.integers(1, 3)), cin=groups * draw(st.sampled_from([1, 3, 8, 9])),
                cout_g=draw(st.integers(1, 3)), groups=groups, size=size, k=k, s=s,
                padding=padding, op=op, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31 - 1)))


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(case=subpixel_problems())
def test_subpixel_random_layouts(case):
    from fastconv import _cpu_adjoint, _transpose
    from fastconv._winograd import ERROR_BOUND

    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["cin"]) + case["size"])
    w = rng.standard_normal((case["cin"], case["cout_g"]) + case["k"])
    b = rng.standard_normal(case["cout_g"] * case["groups"]) if case["bias"] else None
    args = (case["s"], case["padding"], case["op"], case["groups"])
    ref = scatter_reference(x, w, b, *args)
    problem = _transpose.plan_transpose(2, x, w, b, *args, 1)
    has_form = _transpose._subpixel_layout(problem) is not None
    weighed = (_cpu_adjoint.transpose_algorithm(problem) == "im2col")
    ran = []
    real_run, saved = _transpose._run_subpixel, _transpose.SUBPIXEL_MARGIN
    _transpose._run_subpixel = lambda *a: ran.append(1) or real_run(*a)
    try:
        y = fastconv.conv_transpose2d(x, w, b, *args, algorithm="winograd")
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() <= ERROR_BOUND[np.dtype(np.float64)] * np.abs(ref).max()
        assert len(ran) == has_form
        _transpose.SUBPIXEL_MARGIN = 1e30
        y = fastconv.conv_transpose2d(x, w, b, *args)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
        # "auto" weighs the form only where it would otherwise run GEMM +
        # col2im (and declines where im2col is no candidate for the stacked
        # convolution); test_subpixel_auto pins the routing down
        assert has_form <= len(ran) <= has_form * (1 + weighed)
    finally:
        _transpose._run_subpixel, _transpose.SUBPIXEL_MARGIN = real_run, saved
