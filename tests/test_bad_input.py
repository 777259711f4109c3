"""Invalid arguments (DESIGN.md section 4) and awkward-but-valid inputs.

Every invalid value must raise TypeError or ValueError *naming the argument*
(and, where the value is distinctive, showing it) before any kernel runs.
Awkward valid inputs (empty batch, Fortran order, negative strides, slices,
read-only arrays, mixed precision) must give the oracle's answer and leave the
caller's arrays untouched.
"""

import re

import numpy as np
import pytest

import fastconv

FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
ALGOS = ("direct", "im2col", "auto")
SPATIAL = {1: (10,), 2: (8, 7), 3: (6, 5, 4)}
KSIZE = {1: (3,), 2: (3, 2), 3: (3, 2, 2)}


def _base(nd, dtype=np.float64):
    """A valid grouped call: x (2, 4, *sp), weight (6, 2, *k), groups=2."""
    rng = np.random.default_rng(nd)
    return dict(
        x=rng.standard_normal((2, 4) + SPATIAL[nd]).astype(dtype),
        weight=rng.standard_normal((6, 2) + KSIZE[nd]).astype(dtype),
        bias=rng.standard_normal(6).astype(dtype),
        groups=2,
    )


def _call(nd, **overrides):
    args = _base(nd)
    args.update(overrides)
    x, w, b = args.pop("x"), args.pop("weight"), args.pop("bias")
    return FUNCS[nd](x, w, b, **args)


def _tup(v, nd):
    return (v,) * nd


def _expected_out_shape(nd):
    return (2, 6) + tuple(s - k + 1 for s, k in zip(SPATIAL[nd], KSIZE[nd]))


def test_base_call_is_valid(ref):
    """Sanity: the unmodified base call works (so each error below is caused
    by the one argument the case changes)."""
    for nd in (1, 2, 3):
        a = _base(nd)
        got = _call(nd)
        ref.assert_matches(got, ref.expect(a["x"], a["weight"], a["bias"], nd=nd,
                                           groups=2))


# (id, nd -> overrides, exception type(s), argument-name regex, value shown or None)
BAD = [
    # channels / groups
    ("channels-mismatch", lambda nd: dict(weight=np.ones((6, 3) + KSIZE[nd])),
     ValueError, r"\bweight\b|\bx\b", None),
    ("channels-mismatch-g1", lambda nd: dict(groups=1), ValueError,
     r"\bweight\b|\bx\b|\bgroups\b", None),
    ("groups-not-dividing-cin", lambda nd: dict(groups=3,
                                                weight=np.ones((6, 1) + KSIZE[nd])),
     ValueError, r"\bgroups\b", None),
    ("groups-not-dividing-cout", lambda nd: dict(weight=np.ones((5, 2) + KSIZE[nd])),
     ValueError, r"\bgroups\b|\bweight\b", None),
    ("groups-zero", lambda nd: dict(groups=0), ValueError, r"\bgroups\b", None),
    ("groups-negative", lambda nd: dict(groups=-2), ValueError, r"\bgroups\b", "-2"),
    ("groups-float", lambda nd: dict(groups=2.5), (TypeError, ValueError),
     r"\bgroups\b", None),
    # kernel does not fit
    ("kernel-larger-than-input",
     lambda nd: dict(weight=np.ones((6, 2) + tuple(s + 1 for s in SPATIAL[nd]))),
     ValueError, r"\bweight\b|\bkernel\b|\bx\b|\bpadding\b|\binput\b", None),
    ("dilated-kernel-larger-than-input", lambda nd: dict(dilation=5),
     ValueError, r"\bdilation\b|\bweight\b|\bkernel\b|\bx\b|\bpadding\b|\binput\b",
     None),
    # stride / dilation
    ("stride-zero", lambda nd: dict(stride=0), ValueError, r"\bstride\b", None),
    ("stride-negative", lambda nd: dict(stride=-3), ValueError, r"\bstride\b", "-3"),
    ("stride-tuple-zero", lambda nd: dict(stride=(1,) * (nd - 1) + (0,)), ValueError,
     r"\bstride\b", None),
    ("stride-wrong-length", lambda nd: dict(stride=(1,) * (nd + 1)), ValueError,
     r"\bstride\b", None),
    ("stride-float", lambda nd: dict(stride=1.5), (TypeError, ValueError),
     r"\bstride\b", None),
    ("dilation-zero", lambda nd: dict(dilation=0), ValueError, r"\bdilation\b", None),
    ("dilation-negative", lambda nd: dict(dilation=-7), ValueError, r"\bdilation\b",
     "-7"),
    ("dilation-wrong-length", lambda nd: dict(dilation=(1,) * (nd + 1)), ValueError,
     r"\bdilation\b", None),
    # padding
    ("padding-negative", lambda nd: dict(padding=-1), ValueError, r"\bpadding\b", "-1"),
    ("padding-tuple-negative", lambda nd: dict(padding=(0,) * (nd - 1) + (-2,)),
     ValueError, r"\bpadding\b", "-2"),
    ("padding-pair-negative", lambda nd: dict(padding=((0, 0),) * (nd - 1) + ((1, -4),)),
     ValueError, r"\bpadding\b", "-4"),
    ("padding-bad-string", lambda nd: dict(padding="full"), ValueError, r"\bpadding\b",
     "full"),
    ("padding-wrong-length", lambda nd: dict(padding=(1,) * (nd + 1)), ValueError,
     r"\bpadding\b", None),
    ("padding-float", lambda nd: dict(padding=1.5), (TypeError, ValueError),
     r"\bpadding\b", None),
    ("padding-same-stride-2", lambda nd: dict(padding="same", stride=2), ValueError,
     r"\bpadding\b|\bstride\b", None),
    # modes and algorithms
    ("padding-mode-bad", lambda nd: dict(padding_mode="mirror"), ValueError,
     r"\bpadding_mode\b", "mirror"),
    ("padding-mode-none", lambda nd: dict(padding_mode=None), (TypeError, ValueError),
     r"\bpadding_mode\b", None),
    ("algorithm-unknown", lambda nd: dict(algorithm="fancy"), ValueError,
     r"\balgorithm\b", "fancy"),
    ("algorithm-not-str", lambda nd: dict(algorithm=3), (TypeError, ValueError),
     r"\balgorithm\b", None),
    # workers
    ("workers-zero", lambda nd: dict(workers=0), ValueError, r"\bworkers\b", None),
    ("workers-float", lambda nd: dict(workers=1.5), (TypeError, ValueError),
     r"\bworkers\b", None),
    # out
    ("out-wrong-shape", lambda nd: dict(out=np.empty((2, 6) + (1,) * nd)), ValueError,
     r"\bout\b", None),
    ("out-wrong-dtype", lambda nd: dict(out=np.empty(_expected_out_shape(nd),
                                                     dtype=np.float32)),
     TypeError, r"\bout\b", None),
    ("out-not-array", lambda nd: dict(out=np.empty(_expected_out_shape(nd)).tolist()),
     (TypeError, ValueError), r"\bout\b", None),
    ("out-read-only", lambda nd: dict(out=_readonly(np.empty(_expected_out_shape(nd)))),
     (TypeError, ValueError), r"\bout\b", None),
    # bias
    ("bias-wrong-length", lambda nd: dict(bias=np.ones(5)), ValueError, r"\bbias\b",
     None),
    ("bias-2d", lambda nd: dict(bias=np.ones((6, 1))), ValueError, r"\bbias\b", None),
    ("bias-int", lambda nd: dict(bias=np.ones(6, dtype=np.int64)), TypeError,
     r"\bbias\b", None),
    # dimensionality
    ("x-too-many-dims", lambda nd: dict(x=np.ones((1, 2, 4) + SPATIAL[nd])), ValueError,
     r"\bx\b", None),
    ("weight-too-many-dims", lambda nd: dict(weight=np.ones((1, 6, 2) + KSIZE[nd])),
     ValueError, r"\bweight\b", None),
    ("weight-too-few-dims", lambda nd: dict(weight=np.ones((6,) + KSIZE[nd])),
     ValueError, r"\bweight\b|\bx\b", None),
    ("weight-zero-size-kernel",
     lambda nd: dict(weight=np.ones((6, 2) + (0,) + KSIZE[nd][1:])), ValueError,
     r"\bweight\b|\bkernel\b", None),
    ("x-0d", lambda nd: dict(x=np.float64(1.0)), (TypeError, ValueError), r"\bx\b",
     None),
]


def _readonly(a):
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_invalid_argument(case, nd):
    name, make, exc, arg_regex, value = case
    with pytest.raises(exc) as info:
        _call(nd, **make(nd))
    msg = str(info.value)
    assert re.search(arg_regex, msg), (
        f"{type(info.value).__name__} message does not name the argument "
        f"({arg_regex}): {msg!r}")
    if value is not None:
        assert value in msg, f"message does not show the offending value {value!r}: {msg!r}"


BAD_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.complex128, np.complex64,
              np.float16, object, "U3"]


def _dtype_named(msg, dtype):
    dt = np.dtype(dtype)
    names = {dt.name, str(dt), dt.type.__name__}
    if dt.kind == "U":
        names |= {"str", "U3", "unicode"}
    return any(n in msg for n in names)


@pytest.mark.parametrize("which", ["x", "weight"])
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).str)
def test_bad_dtype(dtype, which):
    a = _base(2)
    arr = a[which]
    if np.dtype(dtype).kind == "U":
        bad = np.full(arr.shape, "abc", dtype=dtype)
    elif np.dtype(dtype).kind == "O":
        bad = arr.astype(object)
    else:
        bad = arr.astype(dtype)
    with pytest.raises(TypeError) as info:
        _call(2, **{which: bad})
    msg = str(info.value)
    assert re.search(rf"\b{which}\b", msg), f"message does not name {which!r}: {msg!r}"
    assert _dtype_named(msg, dtype), f"message does not name dtype {dtype}: {msg!r}"


def test_bad_dtype_plain_form():
    img = np.arange(64, dtype=np.int64).reshape(8, 8)
    with pytest.raises(TypeError, match=r"\bx\b"):
        fastconv.conv2d(img, np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"\bweight\b"):
        fastconv.conv2d(img.astype(float), np.ones((3, 3), dtype=np.int32))


@pytest.mark.parametrize("nd,padding", [(1, 2**62), (2, 2**40), (3, 2**22),
                                        (2, ((0, 2**62), (0, 0)))],
                         ids=["1d-2^62", "2d-2^40", "3d-2^22", "2d-pair-2^62"])
def test_output_size_overflow_is_valueerror(nd, padding):
    """Sizes whose element count overflows int64 raise ValueError before any
    allocation is attempted (not MemoryError, not OverflowError, no crash)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1) + (4,) * nd)
    w = rng.standard_normal((1, 1) + (1,) * nd)
    with pytest.raises(ValueError):
        FUNCS[nd](x, w, padding=padding)


def test_huge_dilation_is_valueerror():
    x = np.ones((1, 1, 8, 8))
    w = np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError):
        fastconv.conv2d(x, w, dilation=2**62)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_huge_stride_is_fine(algorithm, ref):
    """A stride far larger than the input is valid: one output row."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 9, 8))
    w = rng.standard_normal((3, 2, 3, 3))
    got = fastconv.conv2d(x, w, stride=(2**40, 1), algorithm=algorithm)
    ref.assert_matches(got, ref.expect(x, w, nd=2, stride=(2**40, 1)))
    assert got.shape == (1, 3, 1, 6)


def test_kernel_fits_once_padded(ref):
    """Kernel larger than the input but not than the padded input is valid."""
    x = np.random.default_rng(2).standard_normal((1, 1, 4, 4))
    w = np.ones((1, 1, 5, 5))
    got = fastconv.conv2d(x, w, padding=1)
    ref.assert_matches(got, ref.expect(x, w, nd=2, padding=1))
    assert got.shape == (1, 1, 2, 2)


# ---------------------------------------------------------------------------
# zero-size batch
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("use_out", [False, True])
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_size_batch(nd, algorithm, use_out, dtype):
    a = _base(nd, dtype)
    x = a["x"][:0]
    shape = (0, 6) + tuple((s + 2 - k) // 2 + 1 for s, k in zip(SPATIAL[nd], KSIZE[nd]))
    kw = dict(groups=2, stride=2, padding=1, algorithm=algorithm)
    if use_out:
        out = np.empty(shape, dtype=dtype)
        got = FUNCS[nd](x, a["weight"], a["bias"], out=out, **kw)
        assert got is out
    else:
        got = FUNCS[nd](x, a["weight"], a["bias"], **kw)
    assert isinstance(got, np.ndarray)
    assert got.shape == shape
    assert got.dtype == dtype


# ---------------------------------------------------------------------------
# memory layouts: Fortran order, negative strides, slices, read-only
# ---------------------------------------------------------------------------
def _layouts(x, w, b):
    """Yield (name, x', w', b') holding the same values in other layouts."""
    yield "fortran", np.asfortranarray(x), np.asfortranarray(w), b
    # negative strides: reverse twice so the values are unchanged
    xr = x[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1]
    wr = w[::-1].copy()[::-1]
    br = b[::-1].copy()[::-1]
    yield "negative-strides", xr, wr, br
    # every other element of a bigger buffer
    xs = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    xs[..., 1::2] = x
    xs = xs[..., 1::2]
    ws = np.zeros((2 * w.shape[0],) + w.shape[1:], w.dtype)
    ws[::2] = w
    ws = ws[::2]
    bs = np.zeros(2 * b.shape[0], b.dtype)
    bs[1::2] = b
    bs = bs[1::2]
    yield "strided-slices", xs, ws, bs
    # channel-last buffer viewed as NCHW (non-contiguous inner axes)
    xt = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).transpose(3, 2, 0, 1)
    yield "channels-last", xt, wt, b
    xro, wro, bro = x.copy(), w.copy(), b.copy()
    for a in (xro, wro, bro):
        a.setflags(write=False)
    yield "read-only", xro, wro, bro
    # a view into a read-only buffer with a negative-stride spatial axis
    base = x[:, :, ::-1].copy()
    base.setflags(write=False)
    yield "read-only-reversed", base[:, :, ::-1], w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_layouts_give_oracle_answer(algorithm, dtype, ref):
    rng = np.random.default_rng(5)
    x, w, b = ref.random_case(rng, 2, n=2, cin=4, cout=6, groups=2, spatial=(9, 8),
                              ksize=(3, 3), dtype=dtype)
    kw = dict(stride=(2, 1), padding=1, groups=2, padding_mode="reflect")
    exp = ref.expect(x, w, b, nd=2, **kw)
    for name, xl, wl, bl in _layouts(x, w, b):
        assert np.array_equal(xl, x) and np.array_equal(wl, w) and np.array_equal(bl, b)
        got = fastconv.conv2d(xl, wl, bl, algorithm=algorithm, **kw)
        ref.assert_matches(got, exp, name)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_layouts_plain_and_unbatched(algorithm, ref):
    rng = np.random.default_rng(6)
    img = rng.standard_normal((12, 11))
    k = rng.standard_normal((3, 4))
    views = {
        "fortran": (np.asfortranarray(img), np.asfortranarray(k)),
        "reversed": (img[::-1].copy()[::-1], k[:, ::-1].copy()[:, ::-1]),
        "transposed": (img.T.copy().T, k.T.copy().T),
        "slices": (np.repeat(img, 3, axis=1)[:, ::3], np.repeat(k, 2, axis=0)[::2]),
    }
    exp = ref.expect(img, k, nd=2, padding="same")
    for name, (iv, kv) in views.items():
        ref.assert_matches(fastconv.conv2d(iv, kv, padding="same", algorithm=algorithm),
                           exp, name)
    x = rng.standard_normal((3, 10, 9))
    w = rng.standard_normal((2, 3, 3, 3))
    exp = ref.expect(x, w, nd=2, padding=1)
    ref.assert_matches(fastconv.conv2d(x[:, ::-1].copy()[:, ::-1], w, padding=1,
                                       algorithm=algorithm), exp, "unbatched reversed")
    ref.assert_matches(fastconv.conv2d(np.asfortranarray(x), w, padding=1,
                                       algorithm=algorithm), exp, "unbatched fortran")


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_inputs_not_modified(nd, algorithm, padding_mode, ref):
    a = _base(nd)
    x, w, b = a["x"], a["weight"], a["bias"]
    # also a non-contiguous view, whose base must stay intact too
    xbig = np.repeat(x, 2, axis=-1)
    xview = xbig[..., ::2]
    copies = [arr.copy() for arr in (x, w, b, xbig)]
    kw = dict(groups=2, padding=1, padding_mode=padding_mode, algorithm=algorithm)
    out = np.empty_like(FUNCS[nd](x, w, b, **kw))
    FUNCS[nd](xview, w, b, out=out, **kw)
    FUNCS[nd](x, w, b, **kw)
    for before, after, name in zip(copies, (x, w, b, xbig), ("x", "weight", "bias", "x-base")):
        assert np.array_equal(before, after), f"{name} was modified"
    ref.assert_matches(out, ref.expect(x, w, b, nd=nd, groups=2, padding=1,
                                       padding_mode=padding_mode))


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("xd,wd", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_precision_promotes_to_float64(xd, wd, algorithm, ref):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 8, 9)).astype(xd)
    w = rng.standard_normal((4, 3, 3, 3)).astype(wd)
    b = rng.standard_normal(4).astype(xd)
    got = fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm)
    assert got.dtype == np.float64
    # float64 tolerance: the float32 values are exact in float64
    ref.assert_matches(got, ref.expect(x, w, b, nd=2, padding=1, dtype=np.float64))
    out = np.empty(got.shape, np.float64)
    assert fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm, out=out) is out
    ref.assert_matches(out, ref.expect(x, w, b, nd=2, padding=1, dtype=np.float64))


def test_mixed_precision_bias_promotes(ref):
    """float32 x and weight with a float64 bias: np.result_type -> float64."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4)
    got = fastconv.conv2d(x, w, b)
    assert got.dtype == np.result_type(x, w, b)
    ref.assert_matches(got, ref.expect(x, w, b, nd=2))


def test_mixed_precision_plain_form(ref):
    rng = np.random.default_rng(10)
    img = rng.random((16, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3))
    got = fastconv.conv2d(img, k, padding="same")
    assert got.dtype == np.float64
    ref.assert_matches(got, ref.expect(img, k, nd=2, padding="same"))
