"""One-channel images and signals against SciPy (a second, independent oracle).

conv2d(img, k) in the plain 2-D form is compared with scipy.ndimage.correlate
(padding="same", every padding mode) and scipy.signal.correlate2d
(padding=0 / "valid") on crops of scikit-image's camera photograph.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sps

import fastconv

skdata = pytest.importorskip("skimage.data")

ALGOS = ("direct", "im2col", "auto")
DTYPES = (np.float32, np.float64)
# fastconv padding_mode -> scipy.ndimage boundary mode
NDI_MODE = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest",
            "circular": "wrap"}
KSIZES = [(3, 3), (5, 5), (7, 7), (4, 4), (3, 6), (15, 15)]


@pytest.fixture(scope="module")
def camera_crops():
    cam = skdata.camera().astype(np.float64) / 255.0
    return [cam[100:196, 200:280], cam[300:341, 17:70]]


def _ndi_origin(kshape):
    # ndimage centres a window of length k at k // 2; torch "same" at (k-1) // 2
    return [(k - 1) // 2 - k // 2 for k in kshape]


def _scipy_expected(ref, value, absvalue, k, dtype):
    return ref.Expected(np.asarray(value, dtype=np.float64), float(absvalue.max()),
                        int(k.size), np.dtype(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("padding_mode", list(NDI_MODE))
def test_same_vs_ndimage_correlate(camera_crops, padding_mode, algorithm, dtype, ref):
    rng = np.random.default_rng(21)
    failures = []
    for img64 in camera_crops:
        img = img64.astype(dtype)
        for kshape in KSIZES:
            k = rng.standard_normal(kshape).astype(dtype)
            i64, k64 = img.astype(np.float64), k.astype(np.float64)
            origin = _ndi_origin(kshape)
            want = ndi.correlate(i64, k64, mode=NDI_MODE[padding_mode], cval=0.0,
                                 origin=origin)
            absw = ndi.correlate(np.abs(i64), np.abs(k64), mode=NDI_MODE[padding_mode],
                                 cval=0.0, origin=origin)
            got = fastconv.conv2d(img, k, padding="same", padding_mode=padding_mode,
                                  algorithm=algorithm)
            msg = ref.mismatch(got, _scipy_expected(ref, want, absw, k, dtype))
            if msg:
                failures.append(f"img {img.shape} k {kshape}: {msg}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("padding", [0, "valid"])
def test_valid_vs_signal_correlate2d(camera_crops, padding, algorithm, dtype, ref):
    rng = np.random.default_rng(22)
    for img64 in camera_crops:
        img = img64.astype(dtype)
        for kshape in KSIZES:
            k = rng.standard_normal(kshape).astype(dtype)
            i64, k64 = img.astype(np.float64), k.astype(np.float64)
            want = sps.correlate2d(i64, k64, mode="valid")
            absw = sps.correlate2d(np.abs(i64), np.abs(k64), mode="valid")
            got = fastconv.conv2d(img, k, padding=padding, algorithm=algorithm)
            ref.assert_matches(got, _scipy_expected(ref, want, absw, k, dtype),
                               f"img {img.shape} k {kshape}")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_full_padding_vs_signal_correlate2d(camera_crops, algorithm, ref):
    """padding = k - 1 on each side is scipy's mode='full'."""
    rng = np.random.default_rng(23)
    img = camera_crops[1]
    for kshape in [(3, 3), (4, 6), (9, 2)]:
        k = rng.standard_normal(kshape)
        want = sps.correlate2d(img, k, mode="full")
        absw = sps.correlate2d(np.abs(img), np.abs(k), mode="full")
        got = fastconv.conv2d(img, k, padding=(kshape[0] - 1, kshape[1] - 1),
                              algorithm=algorithm)
        ref.assert_matches(got, _scipy_expected(ref, want, absw, k, np.float64),
                           f"k {kshape}")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_true_convolution_via_flipped_kernel(camera_crops, algorithm, ref):
    """Flipping the kernel turns the NN cross-correlation into scipy's
    convolve2d (same mode, odd kernels)."""
    rng = np.random.default_rng(24)
    img = camera_crops[0]
    k = rng.standard_normal((5, 3))
    want = sps.convolve2d(img, k, mode="same")
    absw = sps.convolve2d(np.abs(img), np.abs(k), mode="same")
    got = fastconv.conv2d(img, k[::-1, ::-1], padding="same", algorithm=algorithm)
    ref.assert_matches(got, _scipy_expected(ref, want, absw, k, np.float64))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGOS)
def test_conv1d_vs_numpy_correlate(algorithm, dtype, ref):
    rng = np.random.default_rng(25)
    sig = rng.standard_normal(500).astype(dtype)
    for taps in (1, 2, 5, 31):
        h = rng.standard_normal(taps).astype(dtype)
        s64, h64 = sig.astype(np.float64), h.astype(np.float64)
        want = np.correlate(s64, h64, mode="valid")
        absw = np.correlate(np.abs(s64), np.abs(h64), mode="valid")
        got = fastconv.conv1d(sig, h, algorithm=algorithm)
        ref.assert_matches(got, _scipy_expected(ref, want, absw, h, dtype), f"taps {taps}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGOS)
def test_conv3d_vs_ndimage_correlate(algorithm, dtype, ref):
    rng = np.random.default_rng(26)
    vol = rng.random((14, 12, 10)).astype(dtype)
    for kshape in [(3, 3, 3), (5, 2, 3)]:
        k = rng.standard_normal(kshape).astype(dtype)
        v64, k64 = vol.astype(np.float64), k.astype(np.float64)
        origin = _ndi_origin(kshape)
        for mode in ("zeros", "replicate"):
            want = ndi.correlate(v64, k64, mode=NDI_MODE[mode], origin=origin)
            absw = ndi.correlate(np.abs(v64), np.abs(k64), mode=NDI_MODE[mode],
                                 origin=origin)
            got = fastconv.conv3d(vol, k, padding="same", padding_mode=mode,
                                  algorithm=algorithm)
            ref.assert_matches(got, _scipy_expected(ref, want, absw, k, dtype),
                               f"k {kshape} {mode}")
