"""fastconv.signal on CuPy arrays (fastconv._cuda_signal) against scipy.signal.

The oracle is always scipy.signal called on the host copies of the inputs
(never fastconv itself); fastconv's GPU result must be a CuPy array of
SciPy's shape and dtype with SciPy's values:

* integer and bool results: exact (wrap-around included);
* direct paths (and "auto"): ``|got - ref| <= tol * max|ref|`` elementwise,
  tol 1e-5 for float32 / complex64, 1e-10 for float64 / complex128 (the
  bounds of tests/test_signal_scipy.py);
* FFT paths: ``max|got - ref| <= FFT_NORMWISE_BOUND * max|ref|`` by the real
  dtype of the result (an input in single precision counts as single).

Errors must be those of the NumPy path: the same type and the same message.

Two kinds of test: without CuPy (routing: importing and calling
fastconv.signal with NumPy arrays never imports CuPy or
fastconv._cuda_signal), and with CuPy and a CUDA device (the rest; skipped,
saying why, without them).
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import scipy.signal as sps

import fastconv.signal as fcs
from fastconv.signal import FFT_NORMWISE_BOUND

MODES = ("full", "same", "valid")
ROOT = pathlib.Path(__file__).resolve().parents[1]

# (id, function name, extra kwargs, tolerance kind)
ND_VARIANTS = [
    ("convolve-direct", "convolve", {"method": "direct"}, "direct"),
    ("convolve-fft", "convolve", {"method": "fft"}, "fft"),
    ("convolve-auto", "convolve", {"method": "auto"}, "auto"),
    ("correlate-direct", "correlate", {"method": "direct"}, "direct"),
    ("correlate-fft", "correlate", {"method": "fft"}, "fft"),
    ("correlate-auto", "correlate", {"method": "auto"}, "auto"),
    ("fftconvolve", "fftconvolve", {}, "fft"),
    ("oaconvolve", "oaconvolve", {}, "fft"),
]
_ids = [v[0] for v in ND_VARIANTS]
DTYPES = (np.float32, np.float64, np.complex128, np.int64)
SINGLE = (np.dtype(np.float32), np.dtype(np.complex64))
# 1-D to 4-D, odd and even kernels, a kernel larger than the input (the
# "valid" swap), length-1 axes.
SHAPES = [
    ((50,), (7,)), ((40,), (6,)), ((5,), (9,)),
    ((17, 15), (5, 3)), ((4, 5), (6, 7)), ((1, 9), (1, 4)),
    ((9, 8, 7), (3, 2, 3)), ((3, 3, 3), (4, 4, 5)),
    ((5, 4, 3, 6), (2, 3, 3, 2)),
]
_shape_ids = ["x".join(map(str, a)) + "*" + "x".join(map(str, b)) for a, b in SHAPES]


# --------------------------------------------------------------------------
# without CuPy
# --------------------------------------------------------------------------
def test_numpy_calls_never_import_cupy(tmp_path):
    code = (
        "import sys, numpy as np, fastconv.signal as s\n"
        "a, b = np.ones((9, 8)), np.ones((3, 2))\n"
        "s.convolve(a, b); s.correlate(a, b, method='fft'); s.fftconvolve(a, b, 'same')\n"
        "s.oaconvolve(a, np.ones((9, 2)), axes=1); s.convolve2d(a, b, boundary='wrap')\n"
        "s.correlate2d(a, b, 'valid'); s.choose_conv_method(a, b)\n"
        "print('cupy' in sys.modules, 'cupyx' in sys.modules,"
        " 'fastconv._cuda_signal' in sys.modules, 'fastconv._cuda' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert res.stdout.split() == ["False"] * 4, res.stdout + res.stderr


def test_gpu_module_is_installed():
    assert "'_cuda_signal.py'" in (ROOT / "fastconv" / "meson.build").read_text()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def rand(rng, shape, dtype, *, full_range=False):
    """Random array of `dtype`: small integers unless `full_range`."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        if full_range:
            info = np.iinfo(dt)
            lo = info.min + 1 if dt.kind == "i" else 0
            return rng.integers(lo, info.max, size=shape, dtype=dt, endpoint=True)
        lo = -5 if dt.kind == "i" else 0
        return rng.integers(lo, 6, size=shape).astype(dt)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def scipy_call(name, *args, **kw):
    """The oracle: scipy.signal.<name> on host arrays, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(sps, name)(*args, **kw)


def check(got, ref, kind, context="", single_input=False):
    """`got` (a CuPy array) against SciPy's `ref`: type, shape, dtype, values."""
    import cupy

    assert isinstance(got, cupy.ndarray), f"{context}: result is {type(got).__name__}"
    host = cupy.asnumpy(got)
    ref = np.asarray(ref)
    assert host.shape == ref.shape, f"{context}: shape {host.shape} != scipy {ref.shape}"
    assert host.dtype == ref.dtype, f"{context}: dtype {host.dtype} != scipy {ref.dtype}"
    if ref.dtype.kind in "biu":
        np.testing.assert_array_equal(host, ref, err_msg=context)
        return
    np.testing.assert_array_equal(np.isnan(host), np.isnan(ref), err_msg=f"{context}: NaNs")
    fin = np.isfinite(ref)
    if not fin.any():
        return
    r = ref[fin].astype(np.complex128)
    g = host[fin].astype(np.complex128)
    scale = max(float(np.abs(r).max()), np.finfo(np.float64).tiny)
    single = ref.dtype in SINGLE or single_input
    if kind == "fft":
        real = np.dtype(np.float32) if single else np.dtype(np.float64)
        bound = FFT_NORMWISE_BOUND[real]
    else:
        bound = 1e-5 if single or (kind == "auto" and single_input) else 1e-10
    err = float(np.abs(g - r).max())
    assert err <= bound * scale, f"{context}: max err {err:.3g} > {bound:.1g} * {scale:.3g}"


def compare(cp, name, args, kw, kind, context=""):
    """scipy.signal.<name> on host copies against fastconv.signal on CuPy arrays."""
    ref = scipy_call(name, *args, **kw)
    got = getattr(fcs, name)(*[cp.asarray(a) for a in args], **kw)
    single = any(np.asarray(a).dtype in SINGLE for a in args)
    check(got, ref, kind, context or f"{name}{kw}", single_input=single)
    return got


def same_error(cp, name, args, kw):
    """The CuPy call raises what the NumPy call raises: type and message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((TypeError, ValueError)) as host:
            getattr(fcs, name)(*args, **kw)
        with pytest.raises(host.type) as dev:
            getattr(fcs, name)(*[cp.asarray(a) for a in args], **kw)
    assert str(dev.value) == str(host.value), (name, kw)


# --------------------------------------------------------------------------
# N-D functions: modes, shapes, dtypes, swaps
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", SHAPES, ids=_shape_ids)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("variant", ND_VARIANTS, ids=_ids)
def test_nd_matches_scipy(cp, variant, dtype, shapes):
    _, name, kw, kind = variant
    rng = np.random.default_rng(zlib.crc32(repr((name, shapes, dtype)).encode()))
    x, h = rand(rng, shapes[0], dtype), rand(rng, shapes[1], dtype)
    for mode in MODES:
        compare(cp, name, (x, h), dict(mode=mode, **kw), kind, f"{name}{kw} {mode}")
        compare(cp, name, (h, x), dict(mode=mode, **kw), kind, f"swapped {name}{kw} {mode}")


@pytest.mark.parametrize("variant", ND_VARIANTS, ids=_ids)
@pytest.mark.parametrize("pair", [(np.float32, np.float64), (np.int16, np.float32),
                                  (np.float32, np.complex64), (np.int8, np.uint8),
                                  (np.complex64, np.complex128), (np.float64, np.complex64)],
                         ids=lambda p: f"{np.dtype(p[0]).name}+{np.dtype(p[1]).name}")
def test_mixed_dtypes(cp, variant, pair):
    _, name, kw, kind = variant
    rng = np.random.default_rng(3)
    for s1, s2 in [((30,), (5,)), ((9, 7), (3, 4))]:
        x, h = rand(rng, s1, pair[0]), rand(rng, s2, pair[1])
        for mode in MODES:
            compare(cp, name, (x, h), dict(mode=mode, **kw), kind, f"{s1} {mode}")


@pytest.mark.parametrize("variant", [v for v in ND_VARIANTS if v[3] != "fft"],
                         ids=[v[0] for v in ND_VARIANTS if v[3] != "fft"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64],
                         ids=lambda d: np.dtype(d).name)
def test_integer_wraparound_exact(cp, variant, dtype):
    """Full-range integers (sums far beyond 2**53): exact, wrapping like SciPy."""
    _, name, kw, kind = variant
    rng = np.random.default_rng(5)
    for s1, s2 in [((40,), (7,)), ((9, 8), (3, 4)), ((5, 4, 6), (2, 3, 3))]:
        x = rand(rng, s1, dtype, full_range=True)
        h = rand(rng, s2, dtype, full_range=True)
        for mode in MODES:
            compare(cp, name, (x, h), dict(mode=mode, **kw), kind, f"{s1} {mode}")


@pytest.mark.parametrize("variant", [v for v in ND_VARIANTS if v[3] == "fft"],
                         ids=[v[0] for v in ND_VARIANTS if v[3] == "fft"])
@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.uint8, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_integer_fft_paths(cp, variant, dtype):
    """method="fft" rounds back to the integer dtype; fftconvolve gives float64."""
    _, name, kw, kind = variant
    rng = np.random.default_rng(6)
    for s1, s2 in [((300,), (41,)), ((20, 17), (5, 6))]:
        x, h = rand(rng, s1, dtype), rand(rng, s2, dtype)
        for mode in MODES:
            args = (x, h)
            if name in ("convolve", "correlate") and dtype == np.bool_:
                # SciPy casts its unrounded FFT output to bool; the rounded
                # float64 result is the oracle (as in test_signal_scipy.py).
                ref = np.round(scipy_call(name, x.astype(float), h.astype(float),
                                          mode=mode, **kw)).astype(bool)
                check(getattr(fcs, name)(cp.asarray(x), cp.asarray(h), mode=mode, **kw),
                      ref, kind, f"bool {mode}")
                continue
            compare(cp, name, args, dict(mode=mode, **kw), kind, f"{s1} {mode}")


@pytest.mark.parametrize("name", ["convolve", "correlate"])
@pytest.mark.parametrize("dtype", [np.bool_, np.float16], ids=lambda d: np.dtype(d).name)
def test_bool_and_float16_direct(cp, name, dtype):
    """1-D: computed (SciPy's numpy.convolve result); N-D: SciPy's ValueError."""
    rng = np.random.default_rng(7)
    x, h = rand(rng, (30,), dtype), rand(rng, (5,), dtype)
    for mode in MODES:
        ref = scipy_call(name, x, h, mode=mode, method="direct")
        got = getattr(fcs, name)(cp.asarray(x), cp.asarray(h), mode=mode, method="direct")
        if dtype == np.float16:
            assert got.dtype == np.float16 and got.shape == ref.shape
            np.testing.assert_allclose(cp.asnumpy(got).astype(float), ref.astype(float),
                                       rtol=2e-3, atol=2e-3 * np.abs(ref).max())
        else:
            check(got, ref, "direct", f"{name} bool {mode}")
    x2, h2 = rand(rng, (6, 5), dtype), rand(rng, (2, 3), dtype)
    for mode in MODES:
        with pytest.raises(ValueError, match="Unsupported type"):
            scipy_call(name, x2, h2, mode=mode, method="direct")
        same_error(cp, name, (x2, h2), dict(mode=mode, method="direct"))


def test_empty_and_zero_d(cp):
    for name in ("convolve", "correlate", "fftconvolve", "oaconvolve"):
        for s1, s2 in [((0,), (3,)), ((3,), (0,)), ((0, 3), (2, 2)), ((0,), (0,))]:
            x, h = np.ones(s1), np.ones(s2)
            for mode in MODES:
                try:
                    ref = fcs.__dict__[name](x, h, mode=mode)  # the NumPy path's answer
                except (ValueError, IndexError):
                    same_error(cp, name, (x, h), dict(mode=mode))
                    continue
                check(getattr(fcs, name)(cp.asarray(x), cp.asarray(h), mode=mode), ref,
                      "direct", f"{name} {s1} {s2} {mode}")
        for x, h in [(np.array(2.5), np.array(-1.25)), (np.array(2.0), np.array(3 + 1j)),
                     (np.array(5, np.int8), np.array(7, np.int8))]:
            got = getattr(fcs, name)(cp.asarray(x), cp.asarray(h))
            ref = scipy_call(name, x, h)
            assert isinstance(got, cp.ndarray) and got.dtype == np.asarray(ref).dtype
            np.testing.assert_allclose(cp.asnumpy(got), ref)


# --------------------------------------------------------------------------
# fftconvolve / oaconvolve: axes and the overlap-add blocks
# --------------------------------------------------------------------------
AXES_CASES = [
    ((4, 30), (4, 7), 1), ((4, 30), (1, 7), [1]), ((6, 20, 5), (6, 4, 1), (1,)),
    ((6, 20, 5), (1, 4, 3), [1, 2]), ((7, 9), (3, 9), 0), ((5, 8, 6), (2, 8, 3), (-1, 0)),
    ((7, 9), (3, 4), (1, 0)), ((6, 5, 7), (2, 3, 4), (2, 0, 1)),
]


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", AXES_CASES, ids=repr)
def test_axes(cp, name, dtype, case):
    s1, s2, axes = case
    rng = np.random.default_rng(8)
    x, h = rand(rng, s1, dtype), rand(rng, s2, dtype)
    for mode in MODES:
        compare(cp, name, (x, h), dict(mode=mode, axes=axes), "fft", f"{case} {mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("block", [64, 100, 256, None], ids=lambda b: f"L{b}")
def test_overlap_add_blocks(cp, dtype, block, monkeypatch):
    """The blocked path at several block lengths (forced: oa_block returns
    `block`; None is the whole-transform path), long and short operands."""
    from fastconv import _cuda_signal

    monkeypatch.setattr(_cuda_signal, "oa_block", lambda n1, n2: block)
    rng = np.random.default_rng(9)
    for s1, s2, axes in [((2000,), (31,), None), ((3, 2000), (3, 31), 1),
                         ((2000, 2), (31, 1), 0), ((2000, 3), (1, 3), 0),
                         ((31,), (2000,), None)]:
        x, h = rand(rng, s1, dtype), rand(rng, s2, dtype)
        for mode in MODES:
            if mode == "valid" and s1[0] < s2[0]:
                continue
            compare(cp, "oaconvolve", (x, h), dict(mode=mode, axes=axes), "fft", f"{s1} {mode}")
        compare(cp, "convolve", (x, h), dict(mode="same", method="fft"), "fft", f"{s1} conv")


# --------------------------------------------------------------------------
# convolve2d / correlate2d
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("dtype", DTYPES + (np.complex64,), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("boundary,fillvalue", [("fill", 0), ("fill", 2), ("fill", np.nan),
                                                ("wrap", 0), ("symm", 0), ("circular", 0),
                                                ("symmetric", 0)],
                         ids=lambda v: repr(v))
def test_2d_matches_scipy(cp, name, dtype, boundary, fillvalue):
    if fillvalue is np.nan and np.dtype(dtype).kind in "iu":
        return  # not castable to integers (an error; see test_errors_like_numpy)
    rng = np.random.default_rng(10)
    for s1, s2 in [((17, 15), (5, 3)), ((12, 12), (4, 4)), ((3, 4), (5, 6)), ((3, 4), (3, 7)),
                   ((1, 1), (4, 3))]:
        x, h = rand(rng, s1, dtype), rand(rng, s2, dtype)
        for mode in MODES:
            compare(cp, name, (x, h), dict(mode=mode, boundary=boundary, fillvalue=fillvalue),
                    "direct", f"{s1} {s2} {boundary} {fillvalue} {mode}")


@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_2d_integer_wraparound_and_cupy_fillvalue(cp, name):
    rng = np.random.default_rng(11)
    x = rand(rng, (9, 8), np.int64, full_range=True)
    h = rand(rng, (3, 4), np.int64, full_range=True)
    for boundary in ("fill", "wrap", "symm"):
        for mode in MODES:
            compare(cp, name, (x, h), dict(mode=mode, boundary=boundary, fillvalue=3),
                    "direct", f"{boundary} {mode}")
    xf, hf = rand(rng, (9, 8), np.float64), rand(rng, (3, 4), np.float64)
    ref = scipy_call(name, xf, hf, "same", "fill", 1.5)
    got = getattr(fcs, name)(cp.asarray(xf), cp.asarray(hf), "same", "fill", cp.asarray(1.5))
    check(got, ref, "direct", "cupy fillvalue")


# --------------------------------------------------------------------------
# method="auto", choose_conv_method, non-finite data
# --------------------------------------------------------------------------
def test_choose_conv_method(cp):
    rng = np.random.default_rng(12)
    small = cp.asarray(rand(rng, (1000,), np.float64)), cp.asarray(rand(rng, (3,), np.float64))
    large = (cp.asarray(rand(rng, (200_000,), np.float32)),
             cp.asarray(rand(rng, (5000,), np.float32)))
    assert fcs.choose_conv_method(*small) == "direct"
    assert fcs.choose_conv_method(*large) == "fft"
    method, times = fcs.choose_conv_method(*small, mode="same", measure=True)
    assert method in ("direct", "fft") and set(times) == {"direct", "fft"}
    assert min(times.values()) > 0
    big = cp.asarray(np.full(100, 2**40, np.int64))
    assert fcs.choose_conv_method(big, big) == "direct"


def test_auto_keeps_non_finite_local(cp):
    """"auto" never takes the FFT for data holding NaN or Inf: SciPy's direct
    result is the oracle (a NaN spoils only the windows covering it)."""
    rng = np.random.default_rng(13)
    x = rand(rng, (200_000,), np.float32)
    h = rand(rng, (5000,), np.float32)
    assert fcs.choose_conv_method(cp.asarray(x), cp.asarray(h)) == "fft"  # premise
    x[1000] = np.nan
    x[150_000] = np.inf
    got = fcs.convolve(cp.asarray(x), cp.asarray(h), "same")
    ref = scipy_call("convolve", x, h, "same", method="direct")
    check(got, ref, "auto", "non-finite", single_input=True)


# --------------------------------------------------------------------------
# errors: those of the NumPy path
# --------------------------------------------------------------------------
ERROR_CASES = [
    ("convolve", ((9, 8), (3, 2)), dict(mode="bogus")),
    ("convolve", ((9, 8), (3, 2)), dict(method="FFT")),
    ("convolve", ((9,), (3, 2)), {}),
    ("convolve", ((6, 2), (3, 3)), dict(mode="valid")),
    ("convolve", ((6, 2), (3, 3)), dict(mode="valid", method="fft")),
    ("convolve", ((9, 8), (3, 2)), dict(workers=0)),
    ("convolve", ((9, 8), (3, 2)), dict(workers=1.5)),
    ("correlate", ((9,), (3, 2)), {}),
    ("correlate", ((6, 2), (3, 3)), dict(mode="valid", method="direct")),
    ("correlate", ((9, 8), (3, 2)), dict(mode=None)),
    ("fftconvolve", ((3, 4, 5), (3, 2, 2)), dict(axes=3)),
    ("fftconvolve", ((3, 4, 5), (3, 2, 2)), dict(axes=[0, 0])),
    ("fftconvolve", ((3, 4, 5), (3, 2, 2)), dict(axes=[])),
    ("fftconvolve", ((3, 4, 5), (3, 2, 2)), dict(axes=1.5)),
    ("fftconvolve", ((3, 4, 5), (3, 2, 2)), dict(axes=1)),
    ("oaconvolve", ((3, 4, 5), (2, 2, 2)), dict(axes=[1, 2])),
    ("oaconvolve", ((4, 5, 6), (5, 4, 6)), dict(mode="valid")),
    ("oaconvolve", ((9,), (3, 2)), {}),
    ("oaconvolve", ((9, 8), (3, 2)), dict(mode="Same")),
    ("convolve2d", ((5,), (2,)), {}),
    ("convolve2d", ((9, 8), (3, 2)), dict(boundary="reflect")),
    ("convolve2d", ((9, 8), (3, 2)), dict(mode="bogus")),
    ("convolve2d", ((6, 2), (2, 6)), dict(mode="valid")),
    ("convolve2d", ((9, 8), (3, 2)), dict(fillvalue=[1, 2])),
    ("convolve2d", ((9, 8), (3, 2)), dict(fillvalue=1 + 2j)),
    ("correlate2d", ((9, 8), (3, 2)), dict(boundary=None)),
    ("correlate2d", ((9, 8), (3, 2)), dict(fillvalue=np.zeros(3))),
    ("correlate2d", ((9, 8), (3, 2)), dict(workers=-1000)),
    ("choose_conv_method", ((9, 8), (3,)), {}),
    ("choose_conv_method", ((9, 8), (3, 2)), dict(mode="bogus")),
]


@pytest.mark.parametrize("name,shapes,kw", ERROR_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(ERROR_CASES)])
def test_errors_like_numpy(cp, name, shapes, kw):
    rng = np.random.default_rng(14)
    args = tuple(rand(rng, s, np.float64) for s in shapes)
    same_error(cp, name, args, kw)


@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("dtype", [np.bool_, np.float16], ids=lambda d: np.dtype(d).name)
def test_2d_refused_dtypes_like_numpy(cp, name, dtype):
    x, h = np.ones((5, 6), dtype), np.ones((3, 3), dtype)
    for kw in (dict(mode="same"), dict(mode="valid"), dict(mode="bogus"),
               dict(fillvalue=[1, 2]), dict(boundary="bogus")):
        same_error(cp, name, (x, h), kw)
    same_error(cp, name, (np.ones((6, 2), dtype), np.ones((2, 6), dtype)), dict(mode="valid"))


@pytest.mark.parametrize("name", ["convolve", "correlate", "fftconvolve", "oaconvolve",
                                  "convolve2d", "correlate2d", "choose_conv_method"])
def test_mixed_namespaces_raise_type_error(cp, name):
    x, h = np.ones((6, 5)), np.ones((2, 3))
    for a, b in [(cp.asarray(x), h), (x, cp.asarray(h)), (cp.asarray(x), h.tolist())]:
        with pytest.raises(TypeError, match="different namespaces"):
            getattr(fcs, name)(a, b)


# --------------------------------------------------------------------------
# streams, devices, layouts
# --------------------------------------------------------------------------
def test_non_default_stream(cp):
    rng = np.random.default_rng(15)
    x, h = rand(rng, (300, 200), np.float32), rand(rng, (9, 7), np.float32)
    calls = [("convolve", dict(method="direct"), "direct"),
             ("convolve", dict(method="fft"), "fft"), ("fftconvolve", {}, "fft"),
             ("oaconvolve", {}, "fft"), ("convolve2d", dict(boundary="wrap"), "direct"),
             ("correlate2d", {}, "direct")]
    for name, kw, kind in calls:
        stream = cp.cuda.Stream(non_blocking=True)
        with stream:
            xd, hd = cp.asarray(x), cp.asarray(h)
            got = getattr(fcs, name)(xd, hd, mode="same", **kw)
        stream.synchronize()
        check(got, scipy_call(name, x, h, mode="same", **kw), kind, f"stream {name}")


def test_result_on_input_device_and_strided_inputs(cp):
    rng = np.random.default_rng(16)
    x, h = rand(rng, (40, 30), np.float64), rand(rng, (5, 4), np.float64)
    dev = cp.cuda.runtime.getDeviceCount() - 1
    with cp.cuda.Device(dev):
        xd, hd = cp.asarray(x), cp.asarray(h)
    for method in ("direct", "fft"):
        got = fcs.convolve(xd, hd, "same", method)
        assert got.device.id == dev
        assert got.flags.c_contiguous
    # negatively strided and non-contiguous views
    xs, hs = x[::-1, ::2], h[:, ::-1]
    for name, kw, kind in [("convolve", dict(method="direct"), "direct"),
                           ("correlate", dict(method="fft"), "fft"),
                           ("oaconvolve", {}, "fft"), ("correlate2d", {}, "direct")]:
        ref = scipy_call(name, xs, hs, mode="full", **kw)
        got = getattr(fcs, name)(cp.asarray(x)[::-1, ::2], cp.asarray(h)[:, ::-1],
                                 mode="full", **kw)
        check(got, ref, kind, f"strided {name}")
