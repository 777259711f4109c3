"""One-channel image filtering benchmarks (DESIGN.md section 5).

* scikit-image's 512x512 camera photograph, float32 and float64, with
  square kernels k = 3, 5, 7, 15, 31, 63 (seeded random, non-separable,
  normalised to sum 1) and separable Gaussians (13x13 with sigma 2, 15x15
  with sigma 2.5): ``fastconv.conv2d(img, k, padding="same")`` against
  ``scipy.ndimage.correlate(img, k, mode="constant")``,
  ``scipy.signal.correlate2d(img, k, mode="same")`` (skipped when one call
  takes more than ``SIGNAL_BUDGET_S``), torch ``conv2d`` (float32 only, if
  installed) and, for the Gaussians only, two ``scipy.ndimage.correlate1d``
  passes (what a SciPy user would write for a separable kernel).
* the 15x15 Gaussian in float32 also times ``algorithm="direct"``
  (``fastconv-direct``): ``TARGETS`` asks "auto" (which should take the
  separable path) to be at least 3x faster than the direct path.
* an 8192x8192 float32 image with a 7x7 kernel, every implementation writing
  into a preallocated output: fastconv ``out=`` with ``algorithm`` "auto"
  and "im2col", ``scipy.ndimage.correlate(..., output=out)``.

All these compute the same zero-padded "same"-size cross-correlation.
FLOPs are counted as for the dense kernel (2 * H * W * kH * kW), also for
the separable Gaussians, so their GFLOP/s is an "effective" rate. The
``fastconv-auto`` benchmarks record the algorithm "auto" runs
(``fastconv.choose_algorithm``) in ``extra_info["auto_choice"]``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

SIGNAL_BUDGET_S = 3.0
KERNELS = ("k3", "k5", "k7", "k15", "k31", "k63", "gauss13", "gauss15")
GAUSS_SIGMA = {13: 2.0, 15: 2.5}  # Gaussian size -> sigma
CI_KERNELS = {"k3", "k7"}
DTYPES = ("float32", "float64")
LARGE = 8192
LARGE_K = 7

# Case (benchmark group) -> (other impl of the group, minimum speed-up of
# fastconv-auto = that impl's time / auto's time).
TARGETS = {
    "image 512x512 gauss15 float32": ("fastconv-direct", 3.0),
}
# Cases that also time fastconv's forced algorithm="direct".
DIRECT_CASES = (("float32", "gauss15"),)


def make_kernel(seeded, kname, dtype):
    if kname.startswith("gauss"):
        g = gaussian_1d(kname, np.float64)
        return np.outer(g, g).astype(dtype)
    size = int(kname[1:])
    k = seeded("image-kernel", size).random((size, size))
    return (k / k.sum()).astype(dtype)


def gaussian_1d(kname, dtype):
    size = int(kname[5:])
    r = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-0.5 * (r / GAUSS_SIGMA[size]) ** 2)
    return (g / g.sum()).astype(dtype)


def _case_params():
    return [
        pytest.param(dtype, kname, id=f"{dtype}-{kname}",
                     marks=[pytest.mark.ci] if kname in CI_KERNELS else [])
        for dtype in DTYPES
        for kname in KERNELS
    ]


def _describe(benchmark, img, k, dtype, kname, impl, role, threads):
    h, w = img.shape
    group = f"image {h}x{w} {kname} {dtype}"
    benchmark.group = group
    benchmark.extra_info.update(
        impl=impl, role=role, family=f"image-{dtype}", dtype=dtype, kernel=kname,
        image=f"{h}x{w}", flops=2 * h * w * k.shape[0] * k.shape[1], threads=threads,
    )
    if impl == "fastconv-auto" and group in TARGETS:
        peer, min_ratio = TARGETS[group]
        benchmark.extra_info["target"] = {"peer": peer, "min_ratio": min_ratio}


_REFERENCE = {}


def _reference(img, k, dtype, kname):
    """scipy.ndimage's result (double accumulation), cached per case."""
    key = (dtype, kname)
    if key not in _REFERENCE:
        _REFERENCE[key] = scipy.ndimage.correlate(img, k, mode="constant", cval=0.0)
    return _REFERENCE[key]


def _check(benchmark, result, ref, k, dtype, what):
    assert result.shape == ref.shape, (result.shape, ref.shape)
    assert result.dtype == np.dtype(dtype), result.dtype
    # Error bound relative to sum|k| * max|img| (= 1 for these kernels/images).
    err = float(np.max(np.abs(result.astype(np.float64) - ref)))
    bound = float(np.sum(np.abs(k), dtype=np.float64))
    tol = 1e-5 if dtype == "float32" else 1e-12
    benchmark.extra_info["max_abs_err_vs_ndimage"] = err
    assert err <= tol * bound, f"{what} differs from scipy.ndimage by {err:.3g}"


@pytest.fixture(scope="module")
def images(photograph):
    return {dt: np.ascontiguousarray(photograph, dtype=dt) for dt in DTYPES}


@pytest.mark.parametrize("dtype, kname", _case_params())
def test_fastconv(benchmark, fastconv_mod, n_threads, seeded, images, dtype, kname):
    img, k = images[dtype], make_kernel(seeded, kname, dtype)

    def call():
        return fastconv_mod.conv2d(img, k, padding="same")

    call()  # warm-up
    _describe(benchmark, img, k, dtype, kname, "fastconv-auto", "fastconv", n_threads)
    benchmark.extra_info["auto_choice"] = fastconv_mod.choose_algorithm(
        fastconv_mod.conv2d, img, k, padding="same").algorithm
    result = benchmark(call)
    _check(benchmark, result, _reference(img, k, dtype, kname), k, dtype, "fastconv.conv2d")


@pytest.mark.parametrize("dtype, kname", DIRECT_CASES)
def test_fastconv_direct(benchmark, fastconv_mod, n_threads, seeded, images, dtype, kname):
    """fastconv's forced direct path, the reference of auto's target on the Gaussian."""
    img, k = images[dtype], make_kernel(seeded, kname, dtype)

    def call():
        return fastconv_mod.conv2d(img, k, padding="same", algorithm="direct")

    call()  # warm-up
    _describe(benchmark, img, k, dtype, kname, "fastconv-direct", "fastconv", n_threads)
    benchmark.extra_info["algorithm"] = "direct"
    result = benchmark(call)
    _check(benchmark, result, _reference(img, k, dtype, kname), k, dtype,
           "fastconv.conv2d(algorithm='direct')")


@pytest.mark.parametrize("dtype, kname", _case_params())
def test_ndimage_correlate(benchmark, seeded, images, dtype, kname):
    img, k = images[dtype], make_kernel(seeded, kname, dtype)
    _describe(benchmark, img, k, dtype, kname, "scipy.ndimage.correlate", "peer", 1)
    benchmark(scipy.ndimage.correlate, img, k, mode="constant", cval=0.0)


@pytest.mark.parametrize("dtype, kname", _case_params())
def test_signal_correlate2d(benchmark, seeded, skip_if_slower, images, dtype, kname):
    img, k = images[dtype], make_kernel(seeded, kname, dtype)

    def call():
        return scipy.signal.correlate2d(img, k, mode="same", boundary="fill")

    skip_if_slower(call, SIGNAL_BUDGET_S, what=f"scipy.signal.correlate2d {kname} {dtype}")
    _describe(benchmark, img, k, dtype, kname, "scipy.signal.correlate2d", "peer", 1)
    benchmark(call)


@pytest.mark.parametrize(
    "dtype, kname", [p for p in _case_params() if p.values[0] == "float32"])
def test_torch(benchmark, torch_mod, seeded, images, dtype, kname):
    img, k = images[dtype], make_kernel(seeded, kname, dtype)
    tx = torch_mod.from_numpy(img)[None, None]
    tk = torch_mod.from_numpy(k)[None, None]
    pad = (k.shape[0] // 2, k.shape[1] // 2)
    conv2d = torch_mod.nn.functional.conv2d

    def call():
        with torch_mod.no_grad():
            return conv2d(tx, tk, None, 1, pad)

    call()  # warm-up
    _describe(benchmark, img, k, dtype, kname, "torch", "peer", torch_mod.get_num_threads())
    benchmark(call)


@pytest.mark.parametrize("kname", [kn for kn in KERNELS if kn.startswith("gauss")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ndimage_separable(benchmark, images, dtype, kname):
    """A Gaussian as two 1-D ndimage passes: a strong SciPy peer for separable kernels."""
    img = images[dtype]
    g = gaussian_1d(kname, dtype)
    k2 = np.outer(g, g)

    def call():
        tmp = scipy.ndimage.correlate1d(img, g, axis=0, mode="constant", cval=0.0)
        return scipy.ndimage.correlate1d(tmp, g, axis=1, mode="constant", cval=0.0)

    _describe(benchmark, img, k2, dtype, kname, "scipy.ndimage.correlate1d x2", "peer", 1)
    benchmark(call)


# --- 8192 x 8192 float32, k = 7, preallocated outputs -------------------------------


@pytest.fixture(scope="module")
def large_case(seeded):
    rng = seeded("large-image", LARGE)
    img = rng.random((LARGE, LARGE), dtype=np.float32)
    k = seeded("image-kernel", LARGE_K).random((LARGE_K, LARGE_K))
    k = (k / k.sum()).astype(np.float32)
    return img, k


def _describe_large(benchmark, img, k, impl, role, threads, algorithm=None):
    h, w = img.shape
    benchmark.group = f"image {h}x{w} k{k.shape[0]} float32 out="
    benchmark.extra_info.update(
        impl=impl, role=role, family="image-large-out", dtype="float32",
        kernel=f"k{k.shape[0]}", image=f"{h}x{w}",
        flops=2 * h * w * k.shape[0] * k.shape[1], threads=threads,
    )
    if algorithm:
        benchmark.extra_info["algorithm"] = algorithm


@pytest.mark.parametrize("algorithm", ("auto", "im2col"))
def test_large_fastconv_out(benchmark, fastconv_mod, n_threads, large_case, algorithm):
    img, k = large_case
    out = np.empty_like(img)
    out.fill(0)  # fault the pages in before timing

    def call():
        return fastconv_mod.conv2d(img, k, padding="same", algorithm=algorithm, out=out)

    assert call() is out  # warm-up; out= must be returned
    _describe_large(benchmark, img, k, f"fastconv-{algorithm}", "fastconv", n_threads, algorithm)
    benchmark(call)
    # Check a stripe of rows: rows < 512 - k//2 of a 512-row crop are exact.
    rows = 512
    ref = scipy.ndimage.correlate(img[:rows], k, mode="constant", cval=0.0)
    good = rows - k.shape[0] // 2
    err = float(np.max(np.abs(out[:good].astype(np.float64) - ref[:good])))
    benchmark.extra_info["max_abs_err_vs_ndimage_stripe"] = err
    assert err <= 1e-5, f"fastconv {algorithm} (out=) differs from scipy.ndimage by {err:.3g}"


def test_large_ndimage_out(benchmark, large_case):
    img, k = large_case
    out = np.empty_like(img)
    out.fill(0)
    _describe_large(benchmark, img, k, "scipy.ndimage.correlate", "peer", 1)
    benchmark(scipy.ndimage.correlate, img, k, output=out, mode="constant", cval=0.0)
