"""fastconv.signal errors: the exception type SciPy raises, for the same reason.

Each case first checks that scipy.signal raises (so the expectation is SciPy's,
not ours), then that fastconv.signal raises the same type with a message that
matches a stable part of SciPy's.  ``workers=`` is fastconv's own addition and
follows fastconv's convention (``fastconv._threads.resolve_workers``).
"""

import warnings

import numpy as np
import pytest
import scipy.signal as sps

import fastconv.signal as fcs

MODES = ("full", "same", "valid")
METHODS = ("direct", "fft", "auto")

# (id, function name, extra kwargs)
ND_CALLS = [
    ("convolve-direct", "convolve", {"method": "direct"}),
    ("convolve-fft", "convolve", {"method": "fft"}),
    ("convolve-auto", "convolve", {"method": "auto"}),
    ("correlate-direct", "correlate", {"method": "direct"}),
    ("correlate-fft", "correlate", {"method": "fft"}),
    ("correlate-auto", "correlate", {"method": "auto"}),
    ("fftconvolve", "fftconvolve", {}),
    ("oaconvolve", "oaconvolve", {}),
]
TWO_D_CALLS = [("convolve2d", "convolve2d", {}), ("correlate2d", "correlate2d", {})]
ALL_CALLS = ND_CALLS + TWO_D_CALLS
_nd_ids = [c[0] for c in ND_CALLS]
_all_ids = [c[0] for c in ALL_CALLS]


def raises_like_scipy(exc_type, match, name, *args, **kw):
    """SciPy raises exc_type matching `match`; so must fastconv."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc_type, match=match):
            getattr(sps, name)(*args, **kw)
    with pytest.raises(exc_type, match=match):
        getattr(fcs, name)(*args, **kw)


def _pair(ndim):
    rng = np.random.default_rng(ndim)
    return (rng.standard_normal((9, 8, 7)[:ndim]), rng.standard_normal((3, 2, 2)[:ndim]))


# --------------------------------------------------------------------------
# mode, method, boundary
# --------------------------------------------------------------------------
BAD_MODES = ["bogus", "FULL", "Same", "", None, 1, 2.0]


@pytest.mark.parametrize("mode", BAD_MODES, ids=repr)
@pytest.mark.parametrize("call", ALL_CALLS, ids=_all_ids)
@pytest.mark.parametrize("ndim", [1, 2])
def test_bad_mode(call, mode, ndim):
    _, name, kw = call
    x, h = _pair(2 if name.endswith("2d") else ndim)
    raises_like_scipy(ValueError, "mode flags are", name, x, h, mode=mode, **kw)


@pytest.mark.parametrize("mode", BAD_MODES, ids=repr)
def test_bad_mode_choose_conv_method(mode):
    x, h = _pair(1)
    raises_like_scipy(ValueError, "mode flags are", "choose_conv_method", x, h, mode=mode)


@pytest.mark.parametrize("method", ["bogus", "Direct", "FFT", "", None, 0, "overlap-add"],
                         ids=repr)
@pytest.mark.parametrize("name", ["convolve", "correlate"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_bad_method(name, method, ndim):
    x, h = _pair(ndim)
    for mode in MODES:
        raises_like_scipy(ValueError, "method flags are", name, x, h, mode=mode,
                          method=method)


@pytest.mark.parametrize("boundary", ["bogus", "reflect", "Fill", "", None, 0],
                         ids=repr)
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_bad_boundary(name, boundary):
    x, h = _pair(2)
    for mode in MODES:
        raises_like_scipy(ValueError, "[Bb]oundary", name, x, h, mode=mode,
                          boundary=boundary)


# --------------------------------------------------------------------------
# dimensionality
# --------------------------------------------------------------------------
@pytest.mark.parametrize("call", ND_CALLS, ids=_nd_ids)
@pytest.mark.parametrize("shapes", [((5,), (2, 2)), ((4, 4), (3,)), ((4, 4, 4), (2, 2)),
                                    ((), (3,)), ((3,), ())],
                         ids=lambda s: f"{s[0]}*{s[1]}")
def test_ndim_mismatch(call, shapes):
    _, name, kw = call
    x, h = np.ones(shapes[0]), np.ones(shapes[1])
    for mode in MODES:
        raises_like_scipy(ValueError, "same dimensionality", name, x, h, mode=mode, **kw)


@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("shapes", [((5,), (2,)), ((4, 4, 4), (2, 2, 2)), ((4, 4), (3,)),
                                    ((5,), (2, 2)), ((), ()), ((4, 4), ()),
                                    ((2, 3, 4, 5), (1, 1, 1, 1))],
                         ids=lambda s: f"{s[0]}*{s[1]}")
def test_2d_needs_2d(name, shapes):
    x, h = np.ones(shapes[0]), np.ones(shapes[1])
    for mode in MODES:
        raises_like_scipy(ValueError, "2-D arrays", name, x, h, mode=mode)


# --------------------------------------------------------------------------
# "valid" with neither input at least as large in every dimension
# --------------------------------------------------------------------------
@pytest.mark.parametrize("call", ALL_CALLS, ids=_all_ids)
@pytest.mark.parametrize("shapes", [((6, 2), (3, 3)), ((3, 3), (6, 2)), ((3, 5), (4, 2)),
                                    ((4, 5, 6), (5, 4, 6)), ((2, 3, 2, 2), (3, 2, 2, 2))],
                         ids=lambda s: f"{s[0]}*{s[1]}")
def test_valid_needs_one_larger(call, shapes):
    _, name, kw = call
    if name.endswith("2d") and len(shapes[0]) != 2:
        shapes = ((6, 2), (2, 6))
    x, h = np.ones(shapes[0]), np.ones(shapes[1])
    raises_like_scipy(ValueError, "at least as large as the other", name, x, h,
                      mode="valid", **kw)
    raises_like_scipy(ValueError, "at least as large as the other", name, x, h, "valid")
    for dtype in (np.complex128, np.int32, np.float32):
        raises_like_scipy(ValueError, "at least as large as the other", name,
                          x.astype(dtype), h.astype(dtype), mode="valid", **kw)


# --------------------------------------------------------------------------
# axes (fftconvolve / oaconvolve)
# --------------------------------------------------------------------------
BAD_AXES = [
    (3, "exceeds dimensionality"),
    (-4, "exceeds dimensionality"),
    ([0, 3], "exceeds dimensionality"),
    ([0, 0], "must be unique"),
    ((0, -3), "must be unique"),
    ([], "cannot be empty"),
    ((), "cannot be empty"),
    (1.5, "scalar or iterable of integers"),
    ([1.0], "scalar or iterable of integers"),
    ("a", "scalar or iterable of integers"),
    ([[1]], "scalar or iterable of integers"),
]


@pytest.mark.parametrize("axes,match", BAD_AXES, ids=lambda v: repr(v))
@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
def test_bad_axes(name, axes, match):
    rng = np.random.default_rng(3)
    x, h = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 2, 2))
    for mode in MODES:
        raises_like_scipy(ValueError, match, name, x, h, mode=mode, axes=axes)


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
@pytest.mark.parametrize("s1,s2,axes", [
    ((3, 4, 5), (3, 2, 2), 1),        # axis 2 not convolved: 5 vs 2
    ((3, 4, 5), (2, 2, 2), [1, 2]),   # axis 0: 3 vs 2
    ((2, 4), (3, 6), [-1]),
    ((2, 4), (3, 6), np.int64(1)),
], ids=lambda v: repr(v))
def test_incompatible_non_convolved_axes(name, s1, s2, axes):
    x, h = np.ones(s1), np.ones(s2)
    for mode in MODES:
        raises_like_scipy(ValueError, "incompatible shapes", name, x, h, mode=mode, axes=axes)


# --------------------------------------------------------------------------
# fill values SciPy rejects
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8], ids=str)
def test_complex_fillvalue_for_real_output(name, dtype):
    x, h = np.ones((5, 6), dtype), np.ones((3, 3), dtype)
    for mode in MODES:
        raises_like_scipy(ValueError, "fillvalue", name, x, h, mode=mode, fillvalue=1 + 2j)


@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
@pytest.mark.parametrize("fillvalue", [[1, 2], np.zeros(3), np.ones((2, 2))], ids=repr)
def test_non_scalar_fillvalue(name, fillvalue):
    x, h = np.ones((5, 6)), np.ones((3, 3))
    raises_like_scipy(ValueError, "fillvalue", name, x, h, mode="same", fillvalue=fillvalue)


# --------------------------------------------------------------------------
# non-numeric inputs
# --------------------------------------------------------------------------
@pytest.mark.parametrize("call", ALL_CALLS, ids=_all_ids)
def test_non_numeric_inputs(call):
    """String and object arrays fail as in SciPy (ValueError or TypeError)."""
    _, name, kw = call
    for x, h in [(np.array([["a", "b"], ["c", "d"]]), np.array([["a"]])),
                 (np.array([[object(), 1]], dtype=object), np.array([[1]], dtype=object))]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                getattr(sps, name)(x, h, **kw)
        except (ValueError, TypeError):
            with pytest.raises((ValueError, TypeError)):
                getattr(fcs, name)(x, h, **kw)


# --------------------------------------------------------------------------
# workers (fastconv's convention)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("call", ALL_CALLS, ids=_all_ids)
@pytest.mark.parametrize("workers,exc", [
    (0, ValueError), (-1000, ValueError), (10**6, ValueError),
    (1.5, TypeError), ("2", TypeError), (2.0, TypeError), (True, TypeError),
    ([2], TypeError),
], ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__)
def test_bad_workers(call, workers, exc):
    _, name, kw = call
    x, h = _pair(2)
    with pytest.raises(exc, match="workers"):
        getattr(fcs, name)(x, h, mode="same", workers=workers, **kw)


@pytest.mark.parametrize("call", ALL_CALLS, ids=_all_ids)
def test_workers_keyword_only(call):
    """workers comes after SciPy's parameters and only by keyword."""
    _, name, kw = call
    x, h = _pair(2)
    extra = {"convolve": ("full", "auto"), "correlate": ("full", "auto"),
             "fftconvolve": ("full", None), "oaconvolve": ("full", None),
             "convolve2d": ("full", "fill", 0), "correlate2d": ("full", "fill", 0)}[name]
    with pytest.raises(TypeError):
        getattr(fcs, name)(x, h, *extra, 1)


def test_choose_conv_method_has_no_workers_side_effects():
    """choose_conv_method keeps SciPy's signature: measure is its 4th argument."""
    x, h = _pair(1)
    assert fcs.choose_conv_method(x, h, "full", False) in ("direct", "fft")
    with pytest.raises(TypeError):
        fcs.choose_conv_method(x, h, "full", False, 1)
