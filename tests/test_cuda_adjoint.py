"""The adjoint side on CuPy arrays (fastconv._cuda_adjoint): conv_transpose*,
fastconv.grad and im2col/col2im against independent NumPy oracles.

The oracles run on host copies and never call fastconv:

- transposed convolution: an explicit scatter (every input sample times
  every tap added at ``i*s - p + k*d``), float64;
- weight gradient: einsum over ``sliding_window_view`` windows;
- input gradient: the scatter of the output gradient, and the adjoint
  identity with conftest's convolution oracle (``ref.conv``);
- im2col / col2im: sliding windows, and an explicit scatter-add of the
  blocks.

Without a GPU only the host-side planning (tiles, reach boxes, cuBLAS
limits) is tested; everything else skips, saying why.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from oracles import padding_pairs, scatter_reference, weight_grad_reference

import fastconv
import fastconv.grad as G
from fastconv import _cuda_adjoint
from fastconv._transpose import plan_transpose
from fastconv._validation import plan_conv
from fastconv.signal import FFT_NORMWISE_BOUND

CT = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d,
      3: fastconv.conv_transpose3d}
INPUT_GRAD = {1: G.conv1d_input, 2: G.conv2d_input, 3: G.conv3d_input}
WEIGHT_GRAD = {1: G.conv1d_weight, 2: G.conv2d_weight, 3: G.conv3d_weight}
DTYPES = (np.float32, np.float64)
#: Elementwise tolerance of the direct / GEMM paths, relative to the result's
#: magnitude (float32: rtol 1e-4 as the design asks, float64 near rounding).
TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}


def _tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


# --------------------------------------------------------------------------
# oracles (NumPy, float64, host)
# --------------------------------------------------------------------------


def unfold_reference(x, k, stride=1, padding=0, dilation=1):
    """torch.nn.functional.unfold of batched x by sliding windows."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_tup(v, 2) for v in (k, stride, padding,
                                                                    dilation))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]          # (N, C, OH, OW, kh, kw)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def fold_reference(cols, size, k, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold by explicit scatter-add of every block."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_tup(v, 2) for v in (k, stride, padding,
                                                                    dilation))
    n, rows, _ = cols.shape
    c = rows // (kh * kw)
    h, w = size
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    blocks = cols.astype(np.float64).reshape(n, c, kh, kw, oh, ow)
    out = np.zeros((n, c, h + 2 * ph + sh + dh * kh, w + 2 * pw + sw + dw * kw))
    for u, v in itertools.product(range(kh), range(kw)):
        out[:, :, u * dh:u * dh + (oh - 1) * sh + 1:sh,
            v * dw:v * dw + (ow - 1) * sw + 1:sw] += blocks[:, :, u, v]
    return out[:, :, ph:ph + h, pw:pw + w]


def _assert_close(got, expected, dtype, context, bound=None):
    """`got` (a CuPy array) against a float64 oracle: dtype, shape, and
    |got - expected| <= tol * max|expected| (tol by dtype, or `bound`)."""
    import cupy

    assert isinstance(got, cupy.ndarray), f"{context}: got {type(got).__name__}"
    host = cupy.asnumpy(got)
    assert host.dtype == np.dtype(dtype), f"{context}: dtype {host.dtype}"
    assert host.shape == expected.shape, f"{context}: shape {host.shape} != {expected.shape}"
    tol = TOL[np.dtype(dtype)] if bound is None else bound
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(host.astype(np.float64) - expected).max(initial=0.0))
    assert err <= tol * scale, f"{context}: max error {err:.3g} > {tol:g} * {scale:.3g}"


# --------------------------------------------------------------------------
# host-side planning, no GPU needed
# --------------------------------------------------------------------------
def _reached(q0, q1, pixels, in3, out3, kernel3, stride3, pad3, dil3):
    """Every (n, oz, oy, ox) the columns q0..q1-1 reach, by enumeration."""
    hits = set()
    for q in range(q0, q1):
        n, pix = divmod(q, pixels)
        i = np.unravel_index(pix, in3)
        for tap in itertools.product(*(range(k) for k in kernel3)):
            o = tuple(ii * s - p + t * d for ii, s, p, t, d in
                      zip(i, stride3, pad3, tap, dil3))
            if all(0 <= oo < size for oo, size in zip(o, out3)):
                hits.add((n,) + o)
    return hits


@pytest.mark.parametrize("in3, kernel3, stride3, pad3, dil3", [
    ((1, 1, 11), (1, 1, 3), (1, 1, 2), (0, 0, 1), (1, 1, 2)),
    ((1, 5, 6), (1, 3, 2), (1, 2, 3), (0, 2, 0), (1, 1, 2)),
    ((3, 4, 5), (2, 3, 2), (2, 1, 2), (1, 0, 1), (1, 2, 1)),
    ((1, 3, 3), (1, 4, 4), (1, 2, 2), (0, 3, 3), (1, 1, 1)),   # tiles reaching only padding
])
def test_reach_box_covers_every_reached_output(in3, kernel3, stride3, pad3, dil3):
    out3 = tuple(max(1, (i - 1) * s - 2 * p + d * (k - 1) + 1)
                 for i, k, s, p, d in zip(in3, kernel3, stride3, pad3, dil3))
    pixels, batch = int(np.prod(in3)), 2
    rng = np.random.default_rng(0)
    tiles = [(0, batch * pixels), (0, 1)] + [
        tuple(sorted(rng.choice(batch * pixels + 1, 2, replace=False))) for _ in range(40)]
    for q0, q1 in tiles:
        hits = _reached(q0, q1, pixels, in3, out3, kernel3, stride3, pad3, dil3)
        box = _cuda_adjoint.reach_box(q0, q1, pixels, in3, out3, kernel3, stride3, pad3, dil3)
        if box is None:
            assert not hits, (q0, q1)
            continue
        n0, nn, spatial = box
        for hit in hits:
            assert n0 <= hit[0] < n0 + nn, (q0, q1, hit, box)
            for o, (lo, extent) in zip(hit[1:], spatial):
                assert lo <= o < lo + extent, (q0, q1, hit, box)
        for lo, extent in spatial:
            assert extent >= 1


def test_gemm_tiles_stay_within_the_budget(monkeypatch):
    x = np.zeros((3, 16, 9, 10), np.float32)
    w = np.zeros((16, 8, 4, 4), np.float32)
    problem = plan_transpose(2, x, w, None, 2, 1, 0, 2, 1)
    per_channel = 2 * 16 * 4   # groups * kernel volume * itemsize
    total = 3 * 90
    assert _cuda_adjoint.gemm_tiles(problem) == (8, total)   # one tile: all of it fits
    monkeypatch.setattr(_cuda_adjoint, "TILE_BYTES", per_channel * 8 * 100)
    monkeypatch.setattr(_cuda_adjoint, "MIN_TILE_COLUMNS", 50)
    assert _cuda_adjoint.gemm_tiles(problem) == (8, 100)     # all channels, 100 columns
    monkeypatch.setattr(_cuda_adjoint, "MIN_TILE_COLUMNS", 200)
    assert _cuda_adjoint.gemm_tiles(problem) == (4, 200)     # channel blocks instead
    monkeypatch.setattr(_cuda_adjoint, "TILE_BYTES", 1)
    assert _cuda_adjoint.gemm_tiles(problem) == (1, 1)


def test_paths_and_cublas_limits():
    x = np.zeros((1, 16, 8, 8))
    strided = plan_transpose(2, x, np.zeros((16, 4, 4, 4)), None, 2, 1, 0, 1, 1)
    assert _cuda_adjoint.transpose_algorithm(strided) == "im2col"
    unit = plan_transpose(2, x, np.zeros((16, 4, 3, 3)), None, 1, 1, 0, 1, 1)
    assert _cuda_adjoint.transpose_algorithm(unit) == "polyphase"
    few = plan_transpose(2, x[:, :4], np.zeros((4, 4, 4, 4)), None, 2, 1, 0, 1, 1)
    assert _cuda_adjoint.transpose_algorithm(few) == "polyphase"
    assert _cuda_adjoint.gemm_reason(strided) is None
    huge = dataclasses.replace(strided, out_channels=2**31)
    assert "32-bit cuBLAS" in _cuda_adjoint.gemm_reason(huge)
    fwd = plan_conv(2, x, np.zeros((4, 16, 3, 3)), None, 1, 1, 1, 1, "zeros")
    assert _cuda_adjoint.weight_grad_reason(fwd) is None
    assert "32-bit cuBLAS" in _cuda_adjoint.weight_grad_reason(
        dataclasses.replace(fwd, batch=2**31))


# --------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------
CASES = [
    # nd, N, size, k, stride, padding, output_padding, dilation, groups
    (1, 2, 7, 3, 2, 1, 1, 1, 1),
    (1, 1, 5, 4, 3, 2, 2, 1, 2),
    (1, 2, 6, 3, 2, 0, 1, 2, 1),
    (1, 3, 4, 5, 1, 3, 0, 1, 1),
    (2, 2, 5, 4, 2, 1, 0, 1, 1),
    (2, 1, 5, 3, (2, 3), (1, 0), (1, 2), 1, 2),
    (2, 2, 6, 3, 2, 2, 1, 2, 1),
    (2, 2, 4, (2, 3), 1, 0, 0, (2, 1), 1),
    (2, 1, 3, 5, 3, 4, 0, 1, 1),
    (2, 3, 5, 1, 2, 0, 1, 1, 2),
    (3, 2, 3, 3, 2, 1, 1, 1, 1),
    (3, 1, 3, 2, (1, 2, 2), 0, 0, (2, 1, 1), 2),
]


def _transpose_case(nd, n, size, k, groups, dtype, bias, cin_g=2, cout_g=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin_g * groups) + (size,) * nd).astype(dtype)
    w = rng.standard_normal((cin_g * groups, cout_g) + _tup(k, nd)).astype(dtype)
    b = rng.standard_normal(cout_g * groups).astype(dtype) if bias else None
    return x, w, b


def _dev(cp, *arrays):
    return tuple(None if a is None else cp.asarray(a) for a in arrays)


@pytest.mark.parametrize("algorithm", ("auto", "im2col", "direct", "fft"))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("nd, n, size, k, stride, padding, op, dilation, groups", CASES)
def test_conv_transpose_matches_scatter(cp, nd, n, size, k, stride, padding, op, dilation,
                                        groups, bias, dtype, algorithm):
    x, w, b = _transpose_case(nd, n, size, k, groups, dtype, bias, seed=size * 10 + nd)
    expected = scatter_reference(x, w, b, stride, padding, op, groups, dilation)
    got = CT[nd](*_dev(cp, x, w, b), stride, padding, op, groups, dilation,
                 algorithm=algorithm)
    bound = FFT_NORMWISE_BOUND[np.dtype(dtype)] if algorithm == "fft" else None
    _assert_close(got, expected, dtype, f"{algorithm} {nd}d", bound)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_auto_runs_gemm_for_many_channels(cp, monkeypatch, dtype):
    """A strided layer with 8+ input channels per group: "auto" takes
    GEMM + col2im (spied), and agrees with the oracle."""
    calls = []
    real = _cuda_adjoint.conv_transpose_gemm
    monkeypatch.setattr(_cuda_adjoint, "conv_transpose_gemm",
                        lambda *a: calls.append(1) or real(*a))
    x, w, b = _transpose_case(2, 2, 9, 4, 2, dtype, True, cin_g=16, cout_g=8, seed=1)
    got = fastconv.conv_transpose2d(*_dev(cp, x, w, b), stride=2, padding=1, groups=2)
    assert calls == [1]
    _assert_close(got, scatter_reference(x, w, b, 2, 1, 0, 2), dtype, "auto gemm")


@pytest.mark.parametrize("nd, n, size, k, stride, padding, op, dilation, groups", [
    (1, 3, 40, 3, 2, 1, 1, 2, 1),
    (2, 2, 11, 4, (2, 3), (1, 2), (1, 0), 1, 2),
    (2, 1, 9, 3, 2, 2, 1, 2, 1),
    (3, 2, 5, 3, 2, 1, 0, 1, 1),
])
@pytest.mark.parametrize("budget, min_columns", [(1, 1), (3000, 4), (20000, 10**6)],
                         ids=["one-column", "row-tiles", "channel-blocks"])
def test_gemm_small_tiles(cp, monkeypatch, nd, n, size, k, stride, padding, op, dilation,
                          groups, budget, min_columns):
    """Many tiles, within and across images, and channel blocks: the tiles'
    contributions meet in the output, every one exactly once."""
    monkeypatch.setattr(_cuda_adjoint, "TILE_BYTES", budget)
    monkeypatch.setattr(_cuda_adjoint, "MIN_TILE_COLUMNS", min_columns)
    x, w, b = _transpose_case(nd, n, size, k, groups, np.float64, True, cin_g=3, cout_g=5,
                              seed=size)
    got = CT[nd](*_dev(cp, x, w, b), stride, padding, op, groups, dilation,
                 algorithm="im2col")
    _assert_close(got, scatter_reference(x, w, b, stride, padding, op, groups, dilation),
                  np.float64, f"tiles {budget}")


def test_conv_transpose_forms_out_and_inputs(cp):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    xd, wd = _dev(cp, x, w)
    keep = cp.asnumpy(xd), cp.asnumpy(wd)
    for alg in ("auto", "im2col", "direct"):
        # unbatched
        _assert_close(fastconv.conv_transpose2d(xd, wd, stride=2, padding=1, algorithm=alg),
                      scatter_reference(x[None], w, None, 2, 1)[0], np.float32, "unbatched")
        # plain image and kernel
        _assert_close(fastconv.conv_transpose2d(xd[0], wd[0, 0], stride=2, algorithm=alg),
                      scatter_reference(x[None, :1], w[:1, :1], None, 2)[0, 0], np.float32,
                      "plain")
    # non-contiguous inputs; promotion float32 x float64
    xb = cp.asarray(np.repeat(x[None], 2, 0))[:, :, ::-1, ::2]
    wb = wd[:, :, ::-1, :]
    host_x, host_w = cp.asnumpy(xb), cp.asnumpy(wb)
    for alg in ("auto", "im2col"):
        _assert_close(fastconv.conv_transpose2d(xb, wb, stride=2, padding=1, algorithm=alg),
                      scatter_reference(host_x, host_w, None, 2, 1), np.float32, "strided")
    got = fastconv.conv_transpose2d(xb, wb.astype(cp.float64), stride=2, padding=1)
    _assert_close(got, scatter_reference(host_x, host_w, None, 2, 1), np.float64, "promoted")
    np.testing.assert_array_equal(cp.asnumpy(xd), keep[0])
    np.testing.assert_array_equal(cp.asnumpy(wd), keep[1])
    # out=: contiguous, then a strided view (the rest of its base untouched)
    expected = scatter_reference(host_x, host_w, None, 2, 1)
    for alg in ("auto", "im2col", "direct"):
        out = cp.full(expected.shape, cp.nan, dtype=cp.float32)
        assert fastconv.conv_transpose2d(xb, wb, stride=2, padding=1, algorithm=alg,
                                         out=out) is out
        _assert_close(out, expected, np.float32, f"out {alg}")
        big = cp.zeros(expected.shape[:3] + (2 * expected.shape[3],), dtype=cp.float32)
        view = big[..., ::2]
        assert fastconv.conv_transpose2d(xb, wb, stride=2, padding=1, algorithm=alg,
                                         out=view) is view
        _assert_close(view, expected, np.float32, f"strided out {alg}")
        assert not cp.asnumpy(big[..., 1::2]).any()
    # zero batch
    e = fastconv.conv_transpose2d(cp.zeros((0, 3, 6, 7)), cp.asarray(w), stride=2)
    assert isinstance(e, cp.ndarray) and e.shape == (0, 2, 13, 15)


def test_conv_transpose_is_deterministic(cp, monkeypatch):
    monkeypatch.setattr(_cuda_adjoint, "TILE_BYTES", 5000)
    x, w, b = _transpose_case(2, 3, 12, 4, 1, np.float32, True, cin_g=12, cout_g=6, seed=4)
    args = _dev(cp, x, w, b)
    first = cp.asnumpy(fastconv.conv_transpose2d(*args, stride=2, padding=1,
                                                 algorithm="im2col"))
    for _ in range(3):
        again = cp.asnumpy(fastconv.conv_transpose2d(*args, stride=2, padding=1,
                                                     algorithm="im2col"))
        np.testing.assert_array_equal(again, first)


# nd, N, size, k, stride, padding, dilation, groups (the convolution's)
GRAD_CASES = [
    (1, 2, 9, 3, 2, 1, 1, 1),
    (1, 2, 10, 2, 3, 0, 2, 2),
    (2, 2, 7, 3, 1, 1, 1, 1),
    (2, 2, 8, 3, 2, 1, 1, 2),
    (2, 1, 9, (2, 3), (3, 2), (0, 2), (2, 1), 1),
    (2, 2, 7, 3, 1, "same", 2, 1),
    (2, 3, 6, 3, 1, "valid", 1, 1),
    (2, 2, 8, 3, 1, 1, 1, 1),
    (3, 2, 5, 3, 2, 1, 1, 1),
    (3, 1, 5, 2, 1, 0, (1, 2, 1), 2),
]


def _grad_case(nd, n, size, k, stride, padding, dilation, groups, dtype, ref, seed,
               cin_g=2, cout_g=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin_g * groups) + (size,) * nd).astype(dtype)
    w = rng.standard_normal((cout_g * groups, cin_g) + _tup(k, nd)).astype(dtype)
    y = ref.conv(x, w, None, stride, padding, dilation, groups, nd=nd)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, gy


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd, n, size, k, stride, padding, dilation, groups", GRAD_CASES)
def test_grads_match_oracles(cp, ref, nd, n, size, k, stride, padding, dilation, groups,
                             dtype):
    x, w, gy = _grad_case(nd, n, size, k, stride, padding, dilation, groups, dtype, ref,
                          seed=size * 10 + nd)
    xd, wd, gyd = _dev(cp, x, w, gy)
    pads = padding_pairs(padding, k, dilation, nd)
    # weight gradient vs the sliding-window einsum
    gw = WEIGHT_GRAD[nd](xd, w.shape, gyd, stride, padding, dilation, groups)
    _assert_close(gw, weight_grad_reference(x, gy, w.shape, stride, pads, dilation, groups),
                  dtype, f"weight grad {nd}d")
    # input gradient vs the scatter of gy (the output padding recovering x's size)
    gi = INPUT_GRAD[nd](x.shape, wd, gyd, stride, padding, dilation, groups)
    s, d, ks = _tup(stride, nd), _tup(dilation, nd), _tup(k, nd)
    big = np.zeros((n, x.shape[1]) + tuple(
        max(xs + pb, (o - 1) * ss + dd * (kk - 1) + 1)
        for xs, (pb, _), o, ss, dd, kk in zip(x.shape[2:], pads, gy.shape[2:], s, d, ks)))
    full = scatter_reference(gy, w, None, stride, 0, 0, groups, dilation)
    big[(slice(None), slice(None)) + tuple(slice(0, f) for f in full.shape[2:])] = full
    expected = big[(slice(None), slice(None)) + tuple(
        slice(pb, pb + xs) for (pb, _), xs in zip(pads, x.shape[2:]))]
    _assert_close(gi, expected, dtype, f"input grad {nd}d")
    # and the adjoint identity <conv(x'), gy> == <x', grad_input> (conftest's oracle)
    x2 = np.random.default_rng(1).standard_normal(x.shape)
    lhs = np.vdot(ref.conv(x2, w, None, stride, padding, dilation, groups, nd=nd),
                  gy.astype(np.float64))
    rhs = np.vdot(x2, cp.asnumpy(gi).astype(np.float64))
    assert abs(lhs - rhs) <= TOL[np.dtype(dtype)] * np.abs(x2).sum() * np.abs(expected).max()


def test_grads_forms_tiles_and_promotion(cp, ref, monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((4, 5, 4))
    xd, wd, gyd = _dev(cp, x, w, gy)
    expected = weight_grad_reference(x[None], gy[None], w.shape, 2, ((1, 1), (1, 1)), 1, 1)
    # unbatched, negatively strided input
    xr = cp.asarray(x[:, ::-1].copy())[:, ::-1]
    _assert_close(G.conv2d_weight(xr, w.shape, gyd, stride=2, padding=1), expected,
                  np.float64, "unbatched weight grad")
    # many weight-gradient tiles (one output pixel each)
    monkeypatch.setattr(_cuda_adjoint, "TILE_BYTES", 1)
    _assert_close(G.conv2d_weight(xd, w.shape, gyd, stride=2, padding=1), expected,
                  np.float64, "one-pixel tiles")
    gi = G.conv2d_input(x.shape, wd, gyd, stride=2, padding=1)
    gib = G.conv2d_input((1,) + x.shape, wd, gyd[None], stride=2, padding=1)
    np.testing.assert_allclose(cp.asnumpy(gi), cp.asnumpy(gib)[0], rtol=1e-12, atol=1e-12)
    # mixed dtypes promote
    assert G.conv2d_input(x.shape, wd.astype(cp.float32), gyd, 2, 1).dtype == np.float64
    assert G.conv2d_weight(xd.astype(cp.float32), w.shape, gyd.astype(cp.float32), 2,
                           1).dtype == np.float32
    # zero batch
    gz = G.conv2d_weight(cp.zeros((0, 3, 9, 8)), w.shape, cp.zeros((0, 4, 5, 4)), 2, 1)
    assert isinstance(gz, cp.ndarray) and gz.shape == w.shape and not cp.asnumpy(gz).any()


IM2COL_CASES = [
    # (H, W), kernel, stride, padding, dilation
    ((6, 7), 3, 1, 0, 1),
    ((6, 7), (2, 3), (2, 1), (1, 0), 1),
    ((8, 5), 3, 2, 1, (2, 1)),
    ((5, 5), 1, 3, 2, 1),
    ((7, 9), (3, 2), 1, 2, 2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size, k, stride, padding, dilation", IM2COL_CASES)
def test_im2col_col2im(cp, size, k, stride, padding, dilation, dtype):
    rng = np.random.default_rng(sum(size))
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    expected = unfold_reference(x, k, stride, padding, dilation)
    cols = fastconv.im2col(cp.asarray(x), k, stride, padding, dilation)
    assert isinstance(cols, cp.ndarray) and cols.dtype == dtype
    np.testing.assert_array_equal(cp.asnumpy(cols), expected.astype(dtype))
    np.testing.assert_array_equal(
        cp.asnumpy(fastconv.im2col(cp.asarray(x[1]), k, stride, padding, dilation)),
        expected[1].astype(dtype))
    c = rng.standard_normal(expected.shape).astype(dtype)
    folded = fastconv.col2im(cp.asarray(c), size, k, dilation, padding, stride)
    _assert_close(folded, fold_reference(c, size, k, dilation, padding, stride), dtype, "fold")
    _assert_close(fastconv.col2im(cp.asarray(c[0]), size, k, dilation, padding, stride),
                  fold_reference(c[:1], size, k, dilation, padding, stride)[0], dtype,
                  "unbatched fold")
    # round trip: <im2col(x), c> == <x, col2im(c)>
    lhs = np.vdot(expected, c.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), cp.asnumpy(folded).astype(np.float64))
    assert abs(lhs - rhs) <= TOL[np.dtype(dtype)] * max(1.0, np.abs(c).sum())
    # col2im(im2col(x)) counts each pixel once per window that covers it
    ones = fold_reference(unfold_reference(np.ones_like(x), k, stride, padding, dilation),
                          size, k, dilation, padding, stride)
    _assert_close(fastconv.col2im(cols, size, k, dilation, padding, stride), x * ones, dtype,
                  "round trip")


def test_im2col_col2im_noncontiguous_and_empty(cp):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 8))
    xd = cp.asarray(x)[:, :, ::-1]
    np.testing.assert_array_equal(cp.asnumpy(fastconv.im2col(xd, 3, padding=1)),
                                  unfold_reference(x[:, :, ::-1], 3, 1, 1))
    c = rng.standard_normal((2, 27, 48))
    cd = cp.asarray(c)[:, :, ::-1]
    _assert_close(fastconv.col2im(cd, (6, 8), 3, padding=1),
                  fold_reference(c[:, :, ::-1], (6, 8), 3, padding=1), np.float64, "strided")
    assert fastconv.im2col(cp.zeros((0, 3, 6, 8)), 3).shape == (0, 27, 24)
    assert fastconv.col2im(cp.zeros((0, 27, 24)), (6, 8), 3).shape == (0, 3, 6, 8)


def test_runs_on_the_current_stream(cp):
    """Every adjoint function on a non-default, non-blocking stream."""
    x, w, b = _transpose_case(2, 2, 16, 4, 1, np.float32, True, cin_g=16, cout_g=8, seed=7)
    rng = np.random.default_rng(8)
    xf = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    wf = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        assert cp.cuda.get_current_stream().ptr == stream.ptr
        args = _dev(cp, x, w, b)
        results = {alg: fastconv.conv_transpose2d(*args, stride=2, padding=1, algorithm=alg)
                   for alg in ("im2col", "direct", "fft")}
        xfd, wfd, gyd = _dev(cp, xf, wf, gy)
        gw = G.conv2d_weight(xfd, wf.shape, gyd, stride=2, padding=1)
        gi = G.conv2d_input(xf.shape, wfd, gyd, stride=2, padding=1)
        cols = fastconv.im2col(xfd, 3, 2, 1)
        folded = fastconv.col2im(cols, (12, 12), 3, 1, 1, 2)
    stream.synchronize()
    expected = scatter_reference(x, w, b, 2, 1)
    for alg, got in results.items():
        bound = FFT_NORMWISE_BOUND[np.dtype(np.float32)] if alg == "fft" else None
        _assert_close(got, expected, np.float32, f"stream {alg}", bound)
    _assert_close(gw, weight_grad_reference(xf, gy, wf.shape, 2, ((1, 1), (1, 1)), 1, 1),
                  np.float32, "stream weight grad")
    gi_expected = scatter_reference(gy, wf, None, 2, 1, 1)
    _assert_close(gi, gi_expected, np.float32, "stream input grad")
    unfolded = unfold_reference(xf, 3, 2, 1)
    _assert_close(cols, unfolded, np.float32, "stream im2col")
    _assert_close(folded, fold_reference(unfolded, (12, 12), 3, 1, 1, 2), np.float32,
                  "stream col2im")


def test_errors(cp):
    x = cp.ones((1, 2, 8, 8), dtype=cp.float32)
    w = cp.ones((2, 3, 3, 3), dtype=cp.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv_transpose2d(x.astype(cp.int32), w)
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv_transpose2d(x, w.astype(cp.float16))
    with pytest.raises(TypeError, match="different namespaces"):
        fastconv.conv_transpose2d(x, np.ones((2, 3, 3, 3), np.float32))
    with pytest.raises(TypeError, match="namespace"):
        fastconv.conv_transpose2d(x, w, out=np.empty((1, 3, 10, 10), np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        fastconv.conv_transpose2d(x, w, out=cp.empty((1, 3, 10, 10), cp.float64))
    with pytest.raises(ValueError, match="out has shape"):
        fastconv.conv_transpose2d(x, w, out=cp.empty((1, 3, 9, 10), cp.float32))
    with pytest.raises(ValueError, match="not available for cupy arrays"):
        fastconv.conv_transpose2d(x, w, algorithm="separable")
    with pytest.raises(ValueError, match=r"weight.shape\[0\]=3"):
        fastconv.conv_transpose2d(x, cp.ones((3, 3, 3, 3), dtype=cp.float32))
    with pytest.raises(ValueError, match="output_padding"):
        fastconv.conv_transpose2d(x, w, stride=2, output_padding=2)
    gy = cp.ones((1, 3, 6, 6), dtype=cp.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        G.conv2d_input(x.shape, cp.ones((3, 2, 3, 3), dtype=cp.int64), gy)
    with pytest.raises(TypeError, match="float32 or float64"):
        G.conv2d_weight(x.astype(cp.int8), (3, 2, 3, 3), gy)
    with pytest.raises(TypeError, match="different namespaces"):
        G.conv2d_weight(x, (3, 2, 3, 3), np.ones((1, 3, 6, 6), np.float32))
    with pytest.raises(ValueError, match="grad_output has shape"):
        G.conv2d_input(x.shape, cp.ones((3, 2, 3, 3), dtype=cp.float32), gy[..., :5])
    with pytest.raises(TypeError, match="x has dtype"):
        fastconv.im2col(x.astype(cp.int32), 3)
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.im2col(x, 9)
    with pytest.raises(TypeError, match="cols has dtype"):
        fastconv.col2im(cp.zeros((1, 18, 9), dtype=cp.complex64), (5, 5), 3)
    with pytest.raises(ValueError, match="blocks"):
        fastconv.col2im(cp.zeros((1, 18, 9), dtype=cp.float32), (6, 5), 3)
