"""The separable algorithm (fastconv._separable): factorize and conv_separable.

The oracle is the float64 sliding-window correlation of conftest.py (the
``ref`` fixture) with the *original* dense kernel, so each case checks the
factorisation and the 1-D passes together.  The tests call the module the
way CPUBackend lays a problem out: 5-D C-contiguous operands, non-zero
padding modes applied with np.pad beforehand, zero padding as leading pads.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastconv import _separable as S
DTYPES = (np.float32, np.float64)
NP_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------
def gauss1d(k, sigma):
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def gaussian(k, sigma=None, kw=None):
    kw = kw or k
    return np.outer(gauss1d(k, sigma or k / 5), gauss1d(kw, sigma or kw / 5))


SOBEL = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def low_rank(rng, kh, kw, rank):
    return sum(np.outer(rng.standard_normal(kh), rng.standard_normal(kw)) for _ in range(rank))


# --------------------------------------------------------------------------
# the caller's side: layout as CPUBackend does it, then conv_separable
# --------------------------------------------------------------------------
def run_separable(ref, x, w, bias=None, *, stride=1, padding=0, dilation=1,
                  padding_mode="zeros", max_rank=None, nthreads=2, workspace_fn=None,
                  check=True):
    """Correlate x (N, C, H, W) with w (C, 1, kH, kW) (groups = C) separably.

    Returns the (N, C, OH, OW) result; with check, compares it to the oracle.
    """
    dtype = np.result_type(x, w)
    n, c, h, wd = x.shape
    ksize = w.shape[2:]
    stride, dilation = ref.ntuple(stride, 2), ref.ntuple(dilation, 2)
    pairs = ref.normalize_padding(padding, ksize, dilation, 2)
    oh, ow = ref.output_shape((h, wd), ksize, stride, pairs, dilation)
    x5 = x.reshape(n, c, 1, h, wd)
    if padding_mode == "zeros":
        pad_before = (0, pairs[0][0], pairs[1][0])
    else:
        x5 = np.pad(x5, ((0, 0), (0, 0), (0, 0)) + tuple(pairs), mode=NP_PAD[padding_mode])
        pad_before = (0, 0, 0)
    x5 = np.ascontiguousarray(x5, dtype=dtype)
    factors = S.factorize(w.reshape(c, 1, 1, *ksize), dtype, max_rank)
    assert factors is not None, "kernel reported not separable"
    out5 = np.full((n, c, 1, oh, ow), np.nan, dtype=dtype)
    got = S.conv_separable(x5, *factors, bias, out5, (1, *stride), pad_before,
                           (1, *dilation), c, nthreads, workspace_fn)
    assert got is out5
    res = out5.reshape(n, c, oh, ow)
    if check:
        exp = ref.expect(x, w, bias, nd=2, stride=stride, padding=pairs, dilation=dilation,
                         groups=c, padding_mode=padding_mode)
        ref.assert_matches(res, exp)
    return res


def image(rng, dtype, n=1, c=1, h=40, w=37):
    return rng.standard_normal((n, c, h, w)).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------
# factorize
# --------------------------------------------------------------------------
def test_default_max_rank():
    assert S.default_max_rank(15, 15) == 3
    assert S.default_max_rank(7, 7) == 1
    assert S.default_max_rank(5, 5) == 1
    assert S.default_max_rank(3, 3) == 0
    assert S.default_max_rank(1, 31) == 0
    for kh in range(1, 40):
        for kw in range(1, 40):
            r = S.default_max_rank(kh, kw)
            assert r * (kh + kw) < kh * kw / 2 or r == 0
            assert (r + 1) * (kh + kw) >= kh * kw / 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gaussian", "box", "sobel", "rank2", "kh_ne_kw"])
def test_factorize_reconstructs(name, dtype, rng):
    k, max_rank, rank = {
        "gaussian": (gaussian(15), None, 1),
        "box": (np.full((15, 15), 1 / 225), None, 1),
        "sobel": (SOBEL, 1, 1),
        "rank2": (low_rank(rng, 11, 13, 2), None, 2),
        "kh_ne_kw": (gaussian(7, kw=11), None, 1),
    }[name]
    k = k.astype(dtype)
    cols, rows = S.factorize(k[None, None, None], dtype, max_rank)
    assert cols.shape == (rank, 1, k.shape[0]) and rows.shape == (rank, 1, k.shape[1])
    assert cols.dtype == dtype and rows.dtype == dtype
    assert cols.flags.c_contiguous and rows.flags.c_contiguous
    back = np.einsum("tch,tcw->chw", cols.astype(float), rows.astype(float))[0]
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(back, k, rtol=0, atol=tol * np.abs(k).max())
    if name in ("gaussian", "box"):
        assert (cols > 0).all() and (rows > 0).all()


def test_factorize_not_separable(rng):
    full = rng.standard_normal((1, 1, 1, 15, 15))
    for dtype in DTYPES:
        assert S.factorize(full, dtype) is None
        cols, rows = S.factorize(full, dtype, max_rank=15)
        assert cols.shape == (15, 1, 15)
    # Not worth passes by default (the work rule), separable when asked.
    assert S.factorize(SOBEL[None, None, None], np.float64) is None
    assert S.factorize(SOBEL[None, None, None], np.float64, max_rank=1) is not None
    assert S.factorize(low_rank(rng, 15, 15, 4)[None, None, None], np.float64) is None
    assert S.factorize(low_rank(rng, 15, 15, 3)[None, None, None], np.float64) is not None
    # Shapes the algorithm does not serve.
    assert S.factorize(np.ones((2, 3, 1, 5, 5)), np.float32) is None      # C_in/groups > 1
    assert S.factorize(np.ones((2, 1, 3, 5, 5)), np.float32) is None      # kernel depth 3
    assert S.factorize(np.ones((0, 1, 1, 5, 5)), np.float32) is None
    # Non-finite kernels are left to the dense paths.
    bad = gaussian(15)[None, None, None].copy()
    bad[..., 3, 4] = np.nan
    assert S.factorize(bad, np.float64) is None
    bad[..., 3, 4] = np.inf
    assert S.factorize(bad, np.float64) is None
    assert S.factorize(gaussian(15)[None, None, None], np.float64, max_rank=0) is None


def test_kernel_rank(rng):
    w5 = lambda k: k[None, None, None]  # noqa: E731
    assert S.kernel_rank(w5(gaussian(15)), np.float64) == 1
    assert S.kernel_rank(w5(SOBEL), np.float32) == 1
    assert S.kernel_rank(w5(low_rank(rng, 9, 11, 3)), np.float64) == 3
    assert S.kernel_rank(w5(rng.standard_normal((6, 8))), np.float64) == 6
    assert S.kernel_rank(w5(np.zeros((5, 5))), np.float64) == 0
    assert S.kernel_rank(w5(np.ones((1, 5))), np.float64) == 1
    k = np.stack([gaussian(7), low_rank(rng, 7, 7, 2)])[:, None, None]
    assert S.kernel_rank(k, np.float64) == 2
    assert S.kernel_rank(np.ones((2, 2, 1, 3, 3)), np.float64) is None
    assert S.kernel_rank(w5(np.full((3, 3), np.nan)), np.float64) is None
    # It is the rank factorize needs.
    for r in (1, 2, 3):
        k = w5(low_rank(rng, 15, 15, r))
        assert S.factorize(k, np.float64, max_rank=r) is not None
        assert S.factorize(k, np.float64, max_rank=r - 1) is None


def test_factorize_errors():
    with pytest.raises(ValueError, match="5-D"):
        S.factorize(np.ones((5, 5)), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        S.factorize(np.ones((1, 1, 1, 5, 5)), np.int32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_factorize_tolerance_honoured(dtype, rng):
    """Truncation keeps exactly the terms above TOL (Frobenius-relative to s_0)."""
    tol = S.TOL[np.dtype(dtype)]
    q1, _ = np.linalg.qr(rng.standard_normal((15, 15)))
    q2, _ = np.linalg.qr(rng.standard_normal((15, 15)))
    base = np.outer(q1[:, 0], q2[:, 0])                 # s_0 = 1
    second = np.outer(q1[:, 1], q2[:, 1])
    w5 = lambda k: k[None, None, None]  # noqa: E731
    # A second singular value at 1e-3 of the first: not rank 1 ...
    k = base + 1e-3 * second
    assert S.factorize(w5(k), np.float64, max_rank=1) is None
    assert S.factorize(w5(k), np.float32, max_rank=1) is None
    # ... but exactly rank 2.
    cols, rows = S.factorize(w5(k), np.float64, max_rank=2)
    assert cols.shape[0] == 2
    np.testing.assert_allclose(np.einsum("tch,tcw->hw", cols, rows), k, atol=1e-14)
    # Just inside / outside the tolerance.
    assert S.factorize(w5(base + 0.5 * tol * second), dtype, max_rank=1) is not None
    assert S.factorize(w5(base + 2.0 * tol * second), dtype, max_rank=1) is None
    # Noise of relative size 1e-3 over the whole kernel: full rank, so it is
    # neither rank 1 nor within the default (work-bounded) rank.
    noisy = base + 1e-3 * rng.standard_normal((15, 15)) / 15
    assert S.factorize(w5(noisy), dtype, max_rank=1) is None
    assert S.factorize(w5(noisy), dtype) is None
    # With any rank allowed, the dropped part stays within TOL * s_0.
    cols, rows = S.factorize(w5(noisy), np.float64, max_rank=15)
    s = np.linalg.svd(noisy, compute_uv=False)
    err = np.linalg.norm(noisy - np.einsum("tch,tcw->hw", cols, rows))
    assert err <= S.TOL[np.dtype(np.float64)] * s[0] * (1 + 1e-6) + 1e-15


def test_factorize_per_channel_ranks(rng):
    """Channels of lower rank get zero terms; an all-zero channel is rank 0."""
    block_sobel = SOBEL.repeat(3, 0).repeat(3, 1)                 # 9x9, rank 1
    k = np.stack([gaussian(9), low_rank(rng, 9, 9, 2), np.zeros((9, 9)), block_sobel])
    cols, rows = S.factorize(k[:, None, None], np.float64)
    assert cols.shape == (2, 4, 9) and rows.shape == (2, 4, 9)
    back = np.einsum("tch,tcw->chw", cols, rows)
    np.testing.assert_allclose(back, k, atol=1e-13)
    assert not cols[1, 0].any() and not rows[1, 0].any()          # gaussian: rank 1
    assert not cols[:, 2].any() and not rows[:, 2].any()          # zero channel
    assert not cols[1, 3].any() and not rows[1, 3].any()          # block sobel: rank 1


def test_factorize_one_dimensional_kernels():
    row = np.arange(1.0, 8.0)[None, None, None, None, :]      # 1 x 7
    col = np.arange(1.0, 6.0)[None, None, None, :, None]      # 5 x 1
    assert S.factorize(row, np.float64) is None               # not worth it by default
    cols, rows = S.factorize(row, np.float32, max_rank=1)
    assert cols.shape == (1, 1, 1) and rows.shape == (1, 1, 7) and rows.dtype == np.float32
    np.testing.assert_array_equal(np.einsum("tch,tcw->hw", cols, rows), row[0, 0, 0])
    cols, rows = S.factorize(col, np.float64, max_rank=1)
    assert cols.shape == (1, 1, 5) and rows.shape == (1, 1, 1)
    np.testing.assert_array_equal(np.einsum("tch,tcw->hw", cols, rows), col[0, 0, 0])


def test_factorize_cache_is_read_only():
    w5 = gaussian(15)[None, None, None]
    a = S.factorize(w5, np.float32)
    b = S.factorize(w5.copy(), np.float32)
    assert a is not b
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert not x.flags.writeable
        with pytest.raises(ValueError):
            x[...] = 0
    # Another dtype or max_rank is another entry.
    assert S.factorize(w5, np.float64)[0].dtype == np.float64
    assert S.factorize(w5, np.float32, max_rank=1)[0].shape == (1, 1, 15)


# --------------------------------------------------------------------------
# conv_separable against the oracle
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kernel,max_rank", [
    ("gaussian15", gaussian(15), None),
    ("box15", np.full((15, 15), 1 / 225), None),
    ("sobel3", SOBEL, 1),
    ("gaussian7x11", gaussian(7, kw=11), None),
])
def test_rank_one_kernels(ref, rng, dtype, name, kernel, max_rank):
    x = image(rng, dtype)
    w = kernel.astype(dtype)[None, None]
    kh, kw = kernel.shape
    run_separable(ref, x, w, padding=(kh // 2, kw // 2), max_rank=max_rank)
    run_separable(ref, x, w, padding=0, max_rank=max_rank)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rank_two_sum(ref, rng, dtype):
    x = image(rng, dtype, n=2, h=33, w=41)
    w = low_rank(rng, 9, 11, 2).astype(dtype)[None, None]
    b = np.array([0.75], dtype=dtype)
    run_separable(ref, x, w, b, padding=(4, 5))
    run_separable(ref, x, w, b, stride=(2, 3), padding=((1, 3), (2, 0)), dilation=(2, 1))


@pytest.mark.parametrize("order", ["vertical", "horizontal"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,dilation,padding", [
    (1, 1, 0),
    (1, 1, "same"),
    (2, 1, 3),
    ((1, 3), 1, ((0, 4), (5, 1))),
    ((3, 2), (2, 3), ((2, 0), (1, 6))),
    (1, (1, 2), ((7, 7), (0, 0))),
])
def test_geometry_both_orders(ref, rng, monkeypatch, order, dtype, stride, dilation, padding):
    monkeypatch.setattr(S, "pass_order", lambda *args: order)
    x = image(rng, dtype, n=2, h=29, w=31)
    w = (gaussian(5, kw=7) + 0.3 * low_rank(rng, 5, 7, 1)).astype(dtype)[None, None]
    run_separable(ref, x, w, np.array([-1.5], dtype), stride=stride, dilation=dilation,
                  padding=padding, max_rank=2)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_modes(ref, rng, mode, dtype):
    x = image(rng, dtype, h=24, w=27)
    w = gaussian(7, kw=5).astype(dtype)[None, None]
    run_separable(ref, x, w, padding=(3, 2), padding_mode=mode)
    run_separable(ref, x, w, padding=((1, 5), (4, 0)), padding_mode=mode, stride=(2, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise(ref, rng, dtype):
    """C = groups = C_out = 8, each channel its own kernel of rank <= 2, N = 3."""
    kernels = [gaussian(7, sigma=0.5 + c / 2) for c in range(4)]
    kernels += [low_rank(rng, 7, 7, 2), np.zeros((7, 7)), np.full((7, 7), 1 / 49),
                low_rank(rng, 7, 7, 1)]
    w = np.stack(kernels).astype(dtype)[:, None]
    x = image(rng, dtype, n=3, c=8, h=21, w=19)
    b = rng.standard_normal(8).astype(dtype)
    run_separable(ref, x, w, b, padding=3, max_rank=2)
    run_separable(ref, x, w, b, stride=2, dilation=(1, 2), padding=((2, 1), (0, 6)),
                  max_rank=2)
    run_separable(ref, x, w, None, padding=2, padding_mode="reflect", max_rank=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 9), (9, 1), (1, 1)])
def test_one_dimensional_kernels(ref, rng, dtype, shape):
    x = image(rng, dtype, n=2, c=3, h=19, w=23)
    w = rng.standard_normal((3, 1) + shape).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    run_separable(ref, x, w, b, padding=(shape[0] // 2, shape[1] // 2), max_rank=1)
    run_separable(ref, x, w, b, stride=(2, 3), dilation=2, padding=((1, 0), (2, 3)),
                  max_rank=1)


def test_kernel_taller_than_plane_path(ref, rng):
    """kH > 64 takes the direct kernel's general row path in the vertical pass."""
    x = image(rng, np.float32, h=80, w=90)
    w = gaussian(67, sigma=10, kw=5).astype(np.float32)[None, None]
    run_separable(ref, x, w, padding=(33, 2))


def test_large_gaussian_float32(ref):
    """The benchmark case: 15x15 Gaussian, 512x512 float32, padding 7."""
    x = np.random.default_rng(0).random((1, 1, 512, 512)).astype(np.float32) * 255
    w = gaussian(15, sigma=3).astype(np.float32)[None, None]
    run_separable(ref, x, w, padding=7)


def test_depth_dimension(ref, rng):
    """A conv3d problem with kernel depth 1: depth stride/padding go to the vertical pass."""
    x = rng.standard_normal((2, 3, 5, 11, 12))
    sobel3x5 = SOBEL[:, [0, 1, 2, 2, 1]]                         # rank 1
    k = np.stack([gaussian(3, kw=5), low_rank(rng, 3, 5, 1), sobel3x5])
    w = k[:, None, None]                                   # (3, 1, 1, 3, 5)
    b = rng.standard_normal(3)
    cols, rows = S.factorize(w, np.float64, max_rank=2)
    stride, pad, dil = (2, 1, 2), (1, 1, 2), (1, 2, 1)
    exp = ref.expect(x, w, b, nd=3, stride=stride, padding=((1, 1), (1, 0), (2, 2)),
                     dilation=dil, groups=3)
    for order in ("vertical", "horizontal"):
        out5 = np.full(exp.value.shape, np.nan)
        saved = S.pass_order
        S.pass_order = lambda *a: order
        try:
            S.conv_separable(x, cols, rows, b, out5, stride, pad, dil, 3, 2, None)
        finally:
            S.pass_order = saved
        ref.assert_matches(out5, exp)


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_threads_and_workspace(ref, rng, nthreads):
    """A dirty workspace (NaN-filled) and any thread count give the same result."""
    calls = []

    def dirty_workspace(nbytes, dtype):
        calls.append((nbytes, np.dtype(dtype)))
        return np.full(nbytes // np.dtype(dtype).itemsize + 3, np.nan, dtype=dtype)

    x = image(rng, np.float64, n=2, c=2, h=37, w=35)
    w = np.stack([gaussian(9), low_rank(rng, 9, 9, 2)])[:, None]
    got = run_separable(ref, x, w, padding=4, nthreads=nthreads,
                        workspace_fn=dirty_workspace)
    assert calls == [(S.workspace_bytes((2, 2, 1, 37, 35), (2, 2, 1, 37, 35), 9, 9, 2,
                                        (1, 1, 1), 8, nthreads), np.dtype(np.float64))]
    from fastconv import _cpu
    again = run_separable(ref, x, w, padding=4, nthreads=nthreads, workspace_fn=_cpu.workspace)
    np.testing.assert_array_equal(got, again)


def test_result_dtype_and_shape(ref, rng):
    for dtype in DTYPES:
        x = image(rng, dtype, n=2, c=1, h=30, w=20)
        w = gaussian(5).astype(dtype)[None, None]
        res = run_separable(ref, x, w, stride=(2, 3), padding=1)
        assert res.dtype == dtype and res.shape == (2, 1, 14, 6)


def test_factors_of_other_dtype_are_converted(ref, rng):
    x = image(rng, np.float32)
    k = gaussian(9)
    cols, rows = S.factorize(k[None, None, None], np.float64)
    out5 = np.empty((1, 1, 1, 40, 37), np.float32)
    S.conv_separable(x.reshape(1, 1, 1, 40, 37), cols, rows, None, out5, (1, 1, 1),
                     (0, 4, 4), (1, 1, 1), 1, 2)
    ref.assert_matches(out5.reshape(1, 1, 40, 37),
                       ref.expect(x, k[None, None].astype(np.float32), padding=4, nd=2))


def test_empty_batch():
    cols, rows = S.factorize(gaussian(9)[None, None, None], np.float64)
    out5 = np.empty((0, 1, 1, 5, 5))
    assert S.conv_separable(np.empty((0, 1, 1, 5, 5)), cols, rows, None, out5, (1, 1, 1),
                            (0, 4, 4), (1, 1, 1), 1, 2) is out5


def test_conv_separable_errors():
    cols, rows = S.factorize(gaussian(9)[None, None, None], np.float64)
    x5 = np.zeros((1, 1, 1, 12, 12))
    out5 = np.zeros((1, 1, 1, 4, 4))
    args = ((1, 1, 1), (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="one input and one output channel"):
        S.conv_separable(np.zeros((1, 2, 1, 12, 12)), cols, rows, None,
                         np.zeros((1, 2, 1, 4, 4)), *args, 2, 1)
    with pytest.raises(ValueError, match="one input and one output channel"):
        S.conv_separable(x5, cols, rows, None, out5, *args, 2, 1)
    with pytest.raises(ValueError, match="do not match"):
        S.conv_separable(x5, cols, rows[:, :, None], None, out5, *args, 1, 1)
    with pytest.raises(TypeError, match="dtype"):
        S.conv_separable(x5, cols, rows, None, out5.astype(np.float32), *args, 1, 1)
    with pytest.raises(ValueError, match="bias"):
        S.conv_separable(x5, cols, rows, np.ones(3), out5, *args, 1, 1)


def test_pass_order_rule():
    x, out = (1, 1, 1, 512, 512), (1, 1, 1, 512, 512)
    assert S.pass_order(x, out, 15, 15, (1, 1, 1)) == "vertical"             # tie
    assert S.pass_order(x, (1, 1, 1, 256, 512), 15, 15, (1, 2, 1)) == "vertical"
    assert S.pass_order(x, (1, 1, 1, 512, 128), 15, 15, (1, 1, 4)) == "horizontal"
    assert S.pass_order(x, out, 3, 15, (1, 1, 1)) == "vertical"
    assert S.pass_order((1, 1, 1, 512, 600), out, 3, 15, (1, 1, 1)) == "horizontal"


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_input_spreads_like_dense(ref, rng, dtype):
    """A NaN pixel reaches exactly the outputs whose window holds it."""
    x = image(rng, dtype, n=1, c=2, h=26, w=24)
    x[0, 0, 10, 12] = np.nan
    x[0, 1, 25, 0] = np.nan
    w = np.stack([gaussian(7, kw=5), low_rank(rng, 7, 5, 2)]).astype(dtype)[:, None]
    res = run_separable(ref, x, w, padding=(3, 2), max_rank=2, check=False)
    exp = ref.conv(x, w, padding=(3, 2), groups=2, nd=2)
    np.testing.assert_array_equal(np.isnan(res), np.isnan(exp))
    assert np.isnan(exp).sum() == 7 * 5 + 4 * 3
    ok = ~np.isnan(exp)
    np.testing.assert_allclose(res[ok], exp[ok], rtol=1e-4, atol=1e-4 * np.abs(exp[ok]).max())
