"""algorithm="fft" of conv1d/2d/3d, and the FFT accuracy bounds.

Oracles: the float64 sliding_window_view + einsum reference of conftest
(`ref`), SciPy's direct convolution for the signal family.  FFT errors are
normwise, so every check is ``max|got - ref| <= bound * max|ref|`` with the
bound fastconv documents (``fastconv.signal.FFT_NORMWISE_BOUND``).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

import fastconv
from fastconv import signal as fsignal

BOUND = fsignal.FFT_NORMWISE_BOUND
DTYPES = (np.float32, np.float64)
FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


def assert_normwise(got, expected, dtype, context=""):
    expected = np.asarray(expected)
    assert got.shape == expected.shape, context
    assert got.dtype == np.dtype(dtype), context
    scale = np.abs(expected).max() if expected.size else 0.0
    err = np.abs(got.astype(np.float64) - expected).max() if expected.size else 0.0
    assert err <= BOUND[np.dtype(dtype)] * scale, f"{context}: err {err:.3g}, scale {scale:.3g}"


# Each case: nd, (N, C_in, C_out, groups, spatial, kernel), keyword arguments.
CASES = [
    (1, (2, 3, 4, 1, (40,), (7,)), dict(padding=3)),
    (1, (1, 4, 4, 4, (33,), (5,)), dict(stride=3, dilation=2, groups=4)),
    (1, (2, 2, 2, 1, (25,), (4,)), dict(padding="same", padding_mode="circular")),
    (2, (2, 4, 6, 2, (17, 15), (5, 3)), dict(padding=(2, 1))),
    (2, (1, 3, 5, 1, (20, 18), (4, 4)), dict(stride=2, padding=((1, 3), (0, 2)))),
    (2, (2, 6, 6, 6, (14, 16), (3, 3)), dict(dilation=(2, 3), padding=2, groups=6)),
    (2, (1, 2, 3, 1, (19, 21), (7, 5)), dict(padding="same", padding_mode="reflect")),
    (2, (1, 2, 2, 1, (12, 12), (3, 3)), dict(padding=1, padding_mode="replicate", stride=(1, 2))),
    (2, (3, 1, 1, 1, (9, 40), (9, 11)), dict(padding="valid")),
    (3, (2, 2, 4, 2, (7, 8, 9), (3, 2, 3)), dict(padding=1, stride=(1, 2, 1))),
    (3, (1, 3, 2, 1, (6, 6, 6), (3, 3, 3)), dict(padding=2, dilation=2, padding_mode="circular")),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd,shape,kw", CASES)
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_fft_algorithm_matches_oracle(nd, shape, kw, dtype, bias, ref):
    n, cin, cout, groups, spatial, ksize = shape
    rng = np.random.default_rng(hash((nd, spatial, ksize)) % 2**32)
    x = rng.standard_normal((n, cin) + spatial).astype(dtype)
    w = rng.standard_normal((cout, cin // groups) + ksize).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    kw = dict(kw, groups=groups)
    got = FUNCS[nd](x, w, b, algorithm="fft", **kw)
    exp = ref.expect(x, w, b, nd=nd, **kw)
    assert_normwise(got, exp.value, dtype, f"{nd}d {kw}")


def test_fft_algorithm_forms_and_out(ref):
    rng = np.random.default_rng(5)
    img = rng.standard_normal((30, 31))
    k = rng.standard_normal((6, 5))
    got = fastconv.conv2d(img, k, padding="same", algorithm="fft")
    assert_normwise(got, ref.conv(img[None, None], k[None, None], nd=2, padding="same")[0, 0],
                    np.float64, "plain 2-D")
    x = rng.standard_normal((3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    out = np.full((2, 10, 10), np.nan, np.float32)
    res = fastconv.conv2d(x, w, algorithm="fft", out=out)
    assert res is out
    assert_normwise(out, ref.conv(x[None], w, nd=2)[0], np.float32, "unbatched out=")
    x0 = np.zeros((0, 3, 12, 12))
    assert fastconv.conv2d(x0, w.astype(np.float64), algorithm="fft").shape == (0, 2, 10, 10)


def test_fft_algorithm_does_not_write_inputs():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 16, 16))
    w = rng.standard_normal((3, 2, 5, 5))
    x.flags.writeable = False
    w.flags.writeable = False
    before = (x.copy(), w.copy())
    fastconv.conv2d(x, w, padding=2, algorithm="fft")
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])


def test_auto_picks_fft_for_large_kernels_and_stays_local_with_nan(ref):
    """auto takes the FFT for a 31x31 multi-channel kernel, but a NaN in the
    input makes it fall back so that only windows covering the NaN are NaN."""
    from fastconv._cpu import CPUBackend
    from fastconv._validation import plan_conv

    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 4, 96, 96))
    w = rng.standard_normal((4, 4, 31, 31))
    problem = plan_conv(2, x, w, None, 1, 15, 1, 1, "zeros")
    assert CPUBackend().choose_algorithm(problem) == "fft"
    got = fastconv.conv2d(x, w, padding=15)
    assert_normwise(got, ref.conv(x, w, nd=2, padding=15), np.float64, "auto fft")
    x[0, 1, 10, 12] = np.nan
    got = fastconv.conv2d(x, w, padding=15)
    bad = np.isnan(got[0, 0])
    rows, cols = np.nonzero(bad)
    # Exactly the outputs whose 31x31 window covers (10, 12).
    assert rows.min() == 0 and rows.max() == 10 + 15
    assert cols.min() == 0 and cols.max() == 12 + 15
    assert bad.sum() == (10 + 15 + 1) * (12 + 15 + 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("s1,s2", [((20_000,), (1_500,)), ((200, 180), (31, 25)),
                                   ((40, 36, 30), (7, 9, 5))])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_signal_fft_paths_hold_documented_bound(s1, s2, mode, dtype):
    """method="fft", fftconvolve and oaconvolve against SciPy's direct
    convolution computed in float64, within FFT_NORMWISE_BOUND."""
    rng = np.random.default_rng(len(s1) * 100 + s2[0])
    a = rng.standard_normal(s1)
    v = rng.standard_normal(s2)
    expected = scipy.signal.convolve(a, v, mode, method="direct")
    a32, v32 = a.astype(dtype), v.astype(dtype)
    for name, got in (
        ("convolve fft", fsignal.convolve(a32, v32, mode, method="fft")),
        ("fftconvolve", fsignal.fftconvolve(a32, v32, mode)),
        ("oaconvolve", fsignal.oaconvolve(a32, v32, mode)),
    ):
        assert_normwise(got, expected, dtype, f"{name} {s1} {s2} {mode}")


def test_overlap_add_blocks_match_direct():
    """1-D shapes where oaconvolve really cuts blocks (checked), alone and
    batched over a leading axis, in both argument orders."""
    from fastconv import _fft

    rng = np.random.default_rng(8)
    for s1, s2, axes in [((6000,), (40,), None), ((50_000,), (3000,), None),
                         ((3, 8000), (1, 50), 1), ((4, 9000), (4, 70), -1)]:
        ax = (len(s1) - 1) if axes is not None else 0
        assert _fft.oa_block(s1[ax], s2[ax], True, 2, 1), (s1, s2)
        a, v = rng.standard_normal(s1), rng.standard_normal(s2)
        for mode in ("full", "same", "valid"):
            expected = scipy.signal.oaconvolve(a, v, mode, axes=axes)
            with fastconv.threads(2):
                got = fsignal.oaconvolve(a, v, mode, axes=axes)
                swapped = fsignal.oaconvolve(v, a, mode, axes=axes)
            assert_normwise(got, expected, np.float64, f"{s1} {s2} {mode}")
            assert_normwise(swapped, scipy.signal.oaconvolve(v, a, mode, axes=axes),
                            np.float64, f"swapped {s1} {s2} {mode}")
