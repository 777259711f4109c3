"""conv1d / conv2d / conv3d against the independent NumPy oracle (conftest.py).

The argument grid is walked inside a few parametrized tests (one per
dimensionality x padding_mode x dtype) so that the whole cross product runs
in seconds; every failing combination is reported, not only the first.
"""

import itertools

import numpy as np
import pytest

import fastconv

ALGOS = ("direct", "im2col", "auto")
MODES = ("zeros", "reflect", "replicate", "circular")
DTYPES = (np.float32, np.float64)

# Small geometries with non-square kernels so that swapped axes show up.
GEOM = {
    1: dict(spatial=(11,), k=(3,),
            strides=[1, 2, (3,)],
            dilations=[1, 2, (3,)],
            paddings=[0, 1, (2,), ((0, 2),), "same", "valid"]),
    2: dict(spatial=(7, 8), k=(3, 2),
            strides=[1, 2, (1, 2)],
            dilations=[1, 2, (2, 1)],
            paddings=[0, 1, (1, 0), ((0, 2), (1, 0)), "same", "valid"]),
    3: dict(spatial=(5, 6, 5), k=(2, 3, 2),
            strides=[1, 2, (2, 1, 3)],
            dilations=[1, 2, (1, 2, 2)],
            paddings=[0, 1, (1, 0, 2), ((1, 0), (0, 2), (2, 1)), "same", "valid"]),
}
CIN = 4
# (groups, C_out): plain, grouped, depthwise (multiplier 1), depthwise x2
GROUPS = [(1, 5), (2, 6), (4, 4), (4, 8)]


def _func(nd):
    return {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}[nd]


def _grid(nd):
    g = GEOM[nd]
    for stride, dil, pad, (groups, cout) in itertools.product(
            g["strides"], g["dilations"], g["paddings"], GROUPS):
        if pad == "same" and stride != 1:
            continue
        yield stride, dil, pad, groups, cout


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_argument_grid(nd, padding_mode, dtype, ref, xp):
    """Every stride x padding x dilation x groups combination, bias on/off,
    all three algorithms, against the oracle, in each array namespace
    (conftest's ``xp``: NumPy, the CuPy backend on host kernels, CuPy)."""
    conv = _func(nd)
    geom = GEOM[nd]
    rng = np.random.default_rng(1000 * nd + MODES.index(padding_mode))
    failures = []
    ncalls = 0
    for i, (stride, dil, pad, groups, cout) in enumerate(_grid(nd)):
        assert ref.output_shape(geom["spatial"], geom["k"], stride, pad, dil) is not None
        assert ref.padding_ok_for_mode(geom["spatial"], geom["k"], pad, dil, padding_mode)
        x, w, b = ref.random_case(rng, nd, n=2, cin=CIN, cout=cout, groups=groups,
                                  spatial=geom["spatial"], ksize=geom["k"],
                                  dtype=dtype, bias=((i + i // 4) % 2 == 0))
        kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups,
                  padding_mode=padding_mode)
        exp = ref.expect(x, w, b, nd=nd, **kw)
        for algo in ALGOS:
            ncalls += 1
            desc = f"algorithm={algo!r} bias={b is not None} {kw}"
            try:
                got = xp.to_numpy(conv(xp.asarray(x), xp.asarray(w),
                                       None if b is None else xp.asarray(b),
                                       stride=stride, padding=pad, dilation=dil, groups=groups,
                                       padding_mode=padding_mode, algorithm=algo))
            except Exception as e:  # report every failing combination
                failures.append(f"{desc}: raised {type(e).__name__}: {e}")
                continue
            msg = ref.mismatch(got, exp)
            if msg:
                failures.append(f"{desc}: {msg}")
    assert not failures, (f"{len(failures)} of {ncalls} calls disagree with the oracle:\n"
                          + "\n".join(failures[:40]))


# ---------------------------------------------------------------------------
# input forms (batched / unbatched / plain) and out=
# ---------------------------------------------------------------------------
FORM_GEOMS = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=1, padding="same", dilation=2, padding_mode="reflect"),
    dict(stride=(2,), padding=((1, 0),), padding_mode="circular"),  # expanded per nd below
    dict(padding="valid", dilation=(2,), padding_mode="replicate"),
]


def _expand(kw, nd):
    """Make the per-dim tuples in FORM_GEOMS the right length for nd."""
    out = {}
    for key, val in kw.items():
        if isinstance(val, tuple) and len(val) == 1:
            out[key] = val * nd
        else:
            out[key] = val
    return out


@pytest.mark.parametrize("use_out", [False, True], ids=["ret", "out"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("form", ["batched", "unbatched", "plain"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_input_forms_and_out(nd, form, algorithm, dtype, use_out, ref, xp):
    conv = _func(nd)
    rng = np.random.default_rng(7 * nd + len(form))
    spatial = (10, 9, 8)[:nd]
    ksize = (3, 2, 3)[:nd]
    failures = []
    for geom in FORM_GEOMS:
        kw = _expand(geom, nd)
        if form == "plain":
            x = rng.standard_normal(spatial).astype(dtype)
            w = rng.standard_normal(ksize).astype(dtype)
            b = None
        else:
            x, w, b = ref.random_case(rng, nd, n=None if form == "unbatched" else 3,
                                      cin=3, cout=4, spatial=spatial, ksize=ksize,
                                      dtype=dtype)
        exp = ref.expect(x, w, b, nd=nd, **kw)
        desc = f"{form} {kw}"
        args = (xp.asarray(x), xp.asarray(w), None if b is None else xp.asarray(b))
        try:
            if use_out:
                out = xp.asarray(np.full(exp.value.shape, np.nan, dtype=dtype))
                got = conv(*args, algorithm=algorithm, out=out, **kw)
                if got is not out:
                    failures.append(f"{desc}: returned array is not out")
                    continue
            else:
                got = conv(*args, algorithm=algorithm, **kw)
            got = xp.to_numpy(got)
        except Exception as e:
            failures.append(f"{desc}: raised {type(e).__name__}: {e}")
            continue
        msg = ref.mismatch(got, exp)
        if msg:
            failures.append(f"{desc}: {msg}")
    assert not failures, "\n".join(failures)


def test_plain_2d_image_keywords(ref):
    """conv2d(img, k) with all keyword defaults equals the 'valid' correlation."""
    rng = np.random.default_rng(3)
    img = rng.random((20, 17))
    k = rng.standard_normal((5, 4))
    got = fastconv.conv2d(img, k)
    ref.assert_matches(got, ref.expect(img, k, nd=2))
    assert got.shape == (16, 14)


# ---------------------------------------------------------------------------
# special shapes: 1x1 kernels, kernel == input, big strides, odd channel
# counts (SIMD / tile tails), size-1 spatial dims, wider channel counts
# ---------------------------------------------------------------------------
SPECIAL = [
    # nd, N, cin, cout, groups, spatial, ksize, kwargs
    (2, 2, 5, 7, 1, (6, 6), (1, 1), {}),
    (2, 3, 8, 6, 2, (5, 7), (1, 1), {}),  # grouped pointwise (one GEMM per group)
    # 1x1 layers on the pointwise kernel ("direct"): ragged channel blocks,
    # planes with and without a remainder past whole pixel blocks, more
    # channel blocks than tasks, groups, 1-D and depth-1 3-D
    (2, 2, 12, 20, 1, (9, 7), (1, 1), {}),
    (2, 1, 24, 32, 1, (40, 30), (1, 1), {}),
    (2, 1, 8, 64, 1, (5, 5), (1, 1), {}),
    (2, 3, 8, 18, 2, (6, 10), (1, 1), {}),
    (1, 2, 6, 16, 1, (75,), (1,), {}),
    (3, 1, 4, 8, 1, (1, 5, 6), (1, 1, 1), {}),
    (1, 2, 6, 9, 3, (11,), (1,), {}),
    (2, 1, 3, 2, 1, (5, 4), (5, 4), {}),  # kernel == input -> 1x1 output
    (2, 1, 3, 2, 1, (5, 4), (5, 4), dict(padding="same")),
    (2, 2, 2, 3, 1, (9, 9), (2, 2), dict(stride=4)),  # stride > kernel
    (2, 1, 2, 3, 1, (5, 5), (3, 3), dict(stride=7)),  # stride > input
    (2, 1, 1, 1, 1, (1, 13), (1, 3), dict(padding=(0, 1))),  # H == 1
    (2, 3, 33, 17, 1, (6, 5), (3, 3), dict(padding=1)),  # odd, wider channels
    (2, 2, 16, 16, 16, (12, 12), (3, 3), dict(padding=1)),  # depthwise
    (2, 2, 16, 32, 16, (12, 12), (3, 3), dict(stride=2, padding=1)),
    (2, 1, 6, 6, 3, (8, 8), (3, 3), dict(dilation=3, padding=3)),
    (2, 1, 8, 8, 1, (19, 23), (7, 7), dict(stride=2, padding=3)),  # resnet conv1-ish
    (2, 1, 3, 4, 1, (7, 7), (3, 3), dict(padding=((3, 0), (0, 3)))),  # pad >= kernel
    (1, 2, 3, 5, 1, (40,), (9,), dict(padding=4, dilation=2)),
    (1, 1, 1, 1, 1, (1,), (1,), {}),
    (1, 2, 4, 4, 4, (17,), (5,), dict(padding="same")),
    (3, 1, 2, 3, 1, (4, 4, 4), (1, 1, 1), {}),
    (3, 1, 2, 2, 2, (6, 5, 4), (3, 3, 3), dict(padding=1, stride=(1, 2, 3))),
    (3, 2, 3, 2, 1, (3, 4, 5), (3, 4, 5), {}),  # kernel == input
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("case", SPECIAL, ids=lambda c: f"{c[0]}d-{c[5]}-k{c[6]}-{c[7]}")
def test_special_shapes(case, algorithm, dtype, ref):
    nd, n, cin, cout, groups, spatial, ksize, kw = case
    rng = np.random.default_rng(hash((cin, cout, spatial)) % 2**32)
    x, w, b = ref.random_case(rng, nd, n=n, cin=cin, cout=cout, groups=groups,
                              spatial=spatial, ksize=ksize, dtype=dtype)
    got = _func(nd)(x, w, b, groups=groups, algorithm=algorithm, **kw)
    ref.assert_matches(got, ref.expect(x, w, b, nd=nd, groups=groups, **kw))


def test_bias_none_vs_zero_bias(ref):
    rng = np.random.default_rng(11)
    x, w, _ = ref.random_case(rng, 2, bias=False)
    for algo in ALGOS:
        got = fastconv.conv2d(x, w, None, padding=1, algorithm=algo)
        ref.assert_matches(got, ref.expect(x, w, nd=2, padding=1), algo)
        got0 = fastconv.conv2d(x, w, np.zeros(w.shape[0]), padding=1, algorithm=algo)
        ref.assert_matches(got0, ref.expect(x, w, nd=2, padding=1), algo)


def test_keyword_arguments(ref):
    """All documented keywords can be passed by name."""
    rng = np.random.default_rng(12)
    x, w, b = ref.random_case(rng, 2, cin=4, cout=6, groups=2)
    got = fastconv.conv2d(x=x, weight=w, bias=b, stride=(1, 2), padding=(1, 0),
                          dilation=(2, 1), groups=2, padding_mode="replicate",
                          algorithm="direct", out=None, workers=1)
    ref.assert_matches(got, ref.expect(x, w, b, nd=2, stride=(1, 2), padding=(1, 0),
                                       dilation=(2, 1), groups=2,
                                       padding_mode="replicate"))


def test_numpy_integer_arguments(ref):
    """np.int64 values are accepted wherever Python ints are."""
    rng = np.random.default_rng(13)
    x, w, b = ref.random_case(rng, 2, cin=4, cout=6, groups=2)
    i = np.int64
    got = fastconv.conv2d(x, w, b, stride=(i(2), i(1)), padding=i(1),
                          dilation=i(1), groups=i(2))
    ref.assert_matches(got, ref.expect(x, w, b, nd=2, stride=(2, 1), padding=1, groups=2))


def test_algorithms_tuple():
    algos = fastconv.ALGORITHMS
    assert isinstance(algos, tuple)
    for name in ("auto", "direct", "im2col"):
        assert name in algos


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_listed_algorithm(dtype, ref):
    """Each name in fastconv.ALGORITHMS gives the oracle's answer or, when it
    cannot serve the arguments, a ValueError that names the algorithm."""
    rng = np.random.default_rng(14)
    configs = [
        (2, dict(cin=4, cout=6, spatial=(12, 12), ksize=(3, 3)), dict(padding=1)),
        (2, dict(cin=4, cout=6, groups=2, spatial=(12, 10), ksize=(3, 3)),
         dict(stride=2, dilation=2, groups=2)),
        (1, dict(cin=2, cout=3, spatial=(30,), ksize=(5,)), dict(padding="same")),
        (3, dict(cin=2, cout=3, spatial=(6, 6, 6), ksize=(3, 3, 3)), dict(padding=1)),
    ]
    served = {a: 0 for a in fastconv.ALGORITHMS}
    for nd, shape_kw, kw in configs:
        x, w, b = ref.random_case(rng, nd, dtype=dtype, **shape_kw)
        exp = ref.expect(x, w, b, nd=nd, **kw)
        for algo in fastconv.ALGORITHMS:
            try:
                got = _func(nd)(x, w, b, algorithm=algo, **kw)
            except ValueError as e:
                assert algo not in ("auto", "direct", "im2col"), (algo, e)
                assert algo in str(e) or "algorithm" in str(e), str(e)
                continue
            served[algo] += 1
            if algo in ("auto", "direct", "im2col"):
                ref.assert_matches(got, exp, f"{algo} {kw}")
            else:
                # transform-based algorithms (Winograd, FFT) have normwise
                # error bounds: compare relative to the magnitude scale
                assert got.shape == exp.value.shape and got.dtype == exp.dtype
                tol = (1e-3 if dtype == np.float32 else 1e-9) * exp.scale
                err = np.abs(got.astype(np.float64) - exp.value).max()
                assert err <= tol, f"{algo} {kw}: max err {err} > {tol}"
    for name in ("auto", "direct", "im2col"):
        assert served[name] == len(configs)


# ---------------------------------------------------------------------------
# shapes that reach the kernels' inner paths: wide rows (several SIMD blocks
# plus ragged tails), and im2col problems split into several tiles (tile
# boundaries in the middle of an output row / depth plane), for several
# thread counts
# ---------------------------------------------------------------------------
WIDE = [
    # spatial, ksize, kwargs
    ((5, 150), (3, 3), {}),
    ((4, 131), (2, 5), dict(padding=(1, 2))),
    ((6, 97), (3, 4), dict(padding="same", dilation=(1, 3))),
    ((5, 140), (3, 3), dict(stride=(1, 2), padding=1)),
    ((3, 200), (1, 1), {}),
    ((7, 67), (3, 7), dict(padding=((0, 1), (6, 0)))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_wide_rows(algorithm, workers, dtype, ref):
    rng = np.random.default_rng(61)
    for spatial, ksize, kw in WIDE:
        for cin, cout, groups in [(1, 1, 1), (3, 5, 1), (4, 4, 4)]:
            x, w, b = ref.random_case(rng, 2, n=2, cin=cin, cout=cout, groups=groups,
                                      spatial=spatial, ksize=ksize, dtype=dtype)
            got = fastconv.conv2d(x, w, b, groups=groups, algorithm=algorithm,
                                  workers=workers, **kw)
            ref.assert_matches(got, ref.expect(x, w, b, nd=2, groups=groups, **kw),
                               f"{spatial} k{ksize} cin={cin} groups={groups} {kw}")
    # the same for 1-D signals and 3-D volumes with wide last axes
    x, w, b = ref.random_case(rng, 1, n=2, cin=3, cout=2, spatial=(301,), ksize=(7,),
                              dtype=dtype)
    got = fastconv.conv1d(x, w, b, padding=3, algorithm=algorithm, workers=workers)
    ref.assert_matches(got, ref.expect(x, w, b, nd=1, padding=3), "1d")
    x, w, b = ref.random_case(rng, 3, n=1, cin=2, cout=3, spatial=(3, 4, 90),
                              ksize=(2, 3, 3), dtype=dtype)
    got = fastconv.conv3d(x, w, b, padding=(0, 1, 1), algorithm=algorithm,
                          workers=workers)
    ref.assert_matches(got, ref.expect(x, w, b, nd=3, padding=(0, 1, 1)), "3d")


TILED = [
    # nd, N, cin, cout, groups, spatial, ksize, kwargs
    (2, 1, 64, 8, 1, (21, 23), (3, 3), {}),  # K=576 -> several tiles
    (2, 2, 64, 6, 2, (25, 19), (3, 3), dict(padding=1, stride=(1, 2))),
    (2, 1, 40, 4, 1, (30, 31), (5, 5), dict(padding=2, dilation=(2, 1))),
    (3, 1, 16, 4, 1, (10, 11, 12), (3, 3, 3), {}),  # tile boundary across depth
    (1, 3, 128, 5, 1, (700,), (9,), dict(padding=4)),
    (2, 1, 64, 8, 1, (40, 41), (1, 1), {}),  # 1x1: GEMM straight on the input
    (2, 2, 32, 8, 4, (33, 30), (1, 1), {}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_large_reductions_and_tiles(algorithm, workers, dtype, ref):
    rng = np.random.default_rng(62)
    for nd, n, cin, cout, groups, spatial, ksize, kw in TILED:
        x, w, b = ref.random_case(rng, nd, n=n, cin=cin, cout=cout, groups=groups,
                                  spatial=spatial, ksize=ksize, dtype=dtype)
        got = _func(nd)(x, w, b, groups=groups, algorithm=algorithm, workers=workers,
                        **kw)
        ref.assert_matches(got, ref.expect(x, w, b, nd=nd, groups=groups, **kw),
                           f"{nd}d x{x.shape} w{w.shape} {kw}")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_out_aliasing_input(algorithm, ref):
    """out= may be the input array itself (in-place layer with C_out == C_in
    and "same" padding): the result is the convolution of the original x."""
    rng = np.random.default_rng(63)
    x, w, b = ref.random_case(rng, 2, n=2, cin=4, cout=4, spatial=(9, 10), ksize=(3, 3))
    exp = ref.expect(x, w, b, nd=2, padding="same")
    xin = x.copy()
    got = fastconv.conv2d(xin, w, b, padding="same", algorithm=algorithm, out=xin)
    assert got is xin
    ref.assert_matches(xin, exp)
    # out overlapping x only partly: both are views of one buffer, shifted
    # by one column
    big = rng.standard_normal((2, 4, 9, 11))
    xv, outv = big[..., :10], big[..., 1:]
    exp = ref.expect(xv.copy(), w, b, nd=2, padding="same")
    got = fastconv.conv2d(xv, w, b, padding="same", algorithm=algorithm, out=outv)
    assert got is outv
    ref.assert_matches(outv, exp)


@pytest.mark.parametrize("shape, wshape", [
    ((1, 1, 600, 640), (1, 1, 7, 7)),      # one channel: thousands of GEMV tiles
    ((3, 16, 72, 80), (24, 16, 3, 3)),     # many (image, tile) tasks per thread
])
def test_im2col_many_parallel_tiles(ref, shape, wshape):
    """Many tiles shared out to two threads: each task's tile must be its own
    (a race on the task variables would scramble columns)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    exp = ref.expect(x, w, None, nd=2, padding="same")
    for _ in range(3):
        got = fastconv.conv2d(x, w, padding="same", algorithm="im2col", workers=2)
        ref.assert_matches(got, exp, context=f"im2col {shape} x {wshape}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, dilation, padding", [
    (1, 1, "same"),
    ((2, 1), (2, 1), ((3, 1), (2, 2))),
    ((3, 2), (1, 3), ((0, 4), (1, 0))),
])
def test_im2col_one_filter_per_group_banded(ref, dtype, stride, dilation, padding):
    """One input and one output channel per group (one-channel images and
    depthwise layers) take the banded im2col form: strips of output rows,
    vertical padding at both ends, several column tiles per row."""
    rng = np.random.default_rng(11)
    cases = [((1, 1, 37, 4100), (1, 1, 3, 5), 1),   # wide: several column tiles
             ((2, 6, 23, 19), (6, 1, 4, 3), 6)]     # depthwise, ragged strips
    for xs, ws, groups in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        exp = ref.expect(x, w, b, nd=2, stride=stride, padding=padding,
                         dilation=dilation, groups=groups)
        got = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                              algorithm="im2col")
        ref.assert_matches(got, exp, context=f"banded im2col {xs} x {ws}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, dilation", [(1, 1), ((2, 1), (1, 2)), ((3, 1), (2, 1))])
def test_direct_one_channel_padded_chunks(ref, dtype, stride, dilation):
    """Rows so wide that the padded copies of the one-channel path come in
    several chunks per task (and depthwise planes that fit whole)."""
    rng = np.random.default_rng(5)
    cases = [((1, 1, 41, 20000), (1, 1, 3, 3), 1), ((2, 5, 19, 33), (5, 1, 3, 4), 5)]
    for xs, ws, groups in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        pad = ((2, 1), (3, 2))
        exp = ref.expect(x, w, b, nd=2, stride=stride, padding=pad, dilation=dilation,
                         groups=groups)
        got = fastconv.conv2d(x, w, b, stride, pad, dilation, groups, algorithm="direct")
        ref.assert_matches(got, exp, context=f"direct {xs} x {ws}")


@pytest.mark.parametrize("stride,dilation,padding", [(1, 1, 4), (2, 1, ((3, 9),)), (1, 3, 0),
                                                     (3, 2, "valid")])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_long_rows_split_into_column_chunks(stride, dilation, padding, dtype, ref):
    """One long signal (fewer row pairs than threads): the direct kernel cuts
    the row into column chunks run on different threads; chunk edges fall
    inside the row and at the padded borders alike."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, 1, 50_003)).astype(dtype)
    w = rng.standard_normal((1, 1, 5)).astype(dtype)
    b = rng.standard_normal(1).astype(dtype)
    kw = dict(stride=stride, dilation=dilation, padding=padding)
    for workers in (1, 2, 3):
        got = fastconv.conv1d(x, w, b, algorithm="direct", workers=workers, **kw)
        ref.assert_matches(got, ref.expect(x, w, b, nd=1, **kw), f"workers={workers} {kw}")
    # Two channels and a 2-D image of one row take the same split.
    x2 = rng.standard_normal((1, 2, 1, 40_000)).astype(dtype)
    w2 = rng.standard_normal((3, 2, 1, 7)).astype(dtype)
    got = fastconv.conv2d(x2, w2, padding=(0, 3), algorithm="direct", workers=2)
    ref.assert_matches(got, ref.expect(x2, w2, None, nd=2, padding=(0, 3)), "2-D one row")
