"""Sparse convolution: algorithm="sparse" (pruned weights) and scipy.sparse images.

Oracles: the NumPy reference of conftest (``ref``) and the dense paths for
sparse weights; SciPy's ``scipy.signal`` functions and the NumPy reference
on the densified image for sparse images.
"""
import numpy as np
import pytest
import scipy.signal as ss
import scipy.sparse as sp

import fastconv
from fastconv import signal as fsignal

DENSITIES = (0.0, 0.05, 0.1, 0.5, 1.0)
FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


def pruned(rng, shape, density, dtype):
    w = rng.standard_normal(shape).astype(dtype)
    w[rng.random(shape) >= density] = 0
    return w


# --------------------------------------------------------------------------
# sparse weights
# --------------------------------------------------------------------------
CASES = [  # nd, (N, C_in, C_out, spatial, kernel), kwargs
    (2, (2, 4, 6, (12, 11), (3, 3)), dict(padding=1)),
    (2, (1, 4, 6, (13, 10), (3, 2)), dict(stride=2, padding=(1, 2))),
    (2, (2, 6, 4, (12, 12), (3, 3)), dict(dilation=2, padding="same", groups=2)),
    (2, (1, 4, 8, (11, 9), (2, 3)), dict(stride=(3, 2), dilation=(2, 1), groups=4)),
    (2, (2, 3, 5, (9, 9), (3, 3)), dict(padding=2, padding_mode="reflect")),
    (2, (1, 3, 5, (8, 10), (3, 3)), dict(padding=((1, 2), (0, 3)), padding_mode="circular",
                                         stride=2)),
    (2, (1, 3, 3, (7, 9), (3, 3)), dict(padding=1, padding_mode="replicate")),
    (1, (2, 4, 6, (30,), (5,)), dict(padding="same")),
    (1, (1, 4, 4, (29,), (3,)), dict(stride=3, dilation=2, padding=2, groups=2,
                                     padding_mode="circular")),
    # grids of several register blocks plus a remainder: 14x14 (224 = 3
    # blocks of 64 + 32 in float32), 20x20 (440 = 6 x 64 + 56)
    (2, (1, 5, 6, (14, 14), (3, 3)), dict(padding=1)),
    (2, (2, 4, 3, (20, 20), (3, 3)), dict(padding=1)),
    (3, (1, 3, 4, (6, 7, 5), (3, 2, 3)), dict(padding=1)),
    (3, (2, 4, 4, (7, 6, 8), (2, 3, 3)), dict(stride=(2, 1, 2), dilation=(1, 2, 1),
                                             padding=1, groups=2, padding_mode="replicate")),
]


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("nd, shape, kw", CASES)
def test_sparse_weights_match_oracle(ref, nd, shape, kw, dtype, density):
    rng = np.random.default_rng(hash((nd, shape[1], density)) % 2**32)
    n, cin, cout, spatial, ksize = shape
    groups = kw.get("groups", 1)
    x = rng.standard_normal((n, cin, *spatial)).astype(dtype)
    w = pruned(rng, (cout, cin // groups, *ksize), density, dtype)
    b = rng.standard_normal(cout).astype(dtype)
    exp = ref.expect(x, w, b, nd=nd, **kw)
    got = FUNCS[nd](x, w, b, algorithm="sparse", **kw)
    ref.assert_matches(got, exp, f"sparse {kw} density {density}")
    dense = FUNCS[nd](x, w, b, algorithm="direct", **kw)
    np.testing.assert_allclose(got, dense, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=exp.tolerances()[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_sparse_forms_batch_and_threads(ref, workers):
    """Unbatched and plain forms, no bias, wide rows (several vector blocks
    and a ragged tail), an empty batch, out=."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 150, 70)).astype(np.float32)
    w = pruned(rng, (5, 3, 3, 5), 0.3, np.float32)
    got = fastconv.conv2d(x, w, padding=(1, 2), algorithm="sparse", workers=workers)
    ref.assert_matches(got, ref.expect(x, w, nd=2, padding=(1, 2)))
    img = rng.standard_normal((40, 300))
    k = pruned(rng, (4, 4), 0.4, np.float64)
    ref.assert_matches(fastconv.conv2d(img, k, algorithm="sparse", workers=workers),
                       ref.expect(img, k, nd=2))
    empty = fastconv.conv2d(np.ones((0, 3, 8, 8)), pruned(rng, (2, 3, 3, 3), 0.5, np.float64),
                            algorithm="sparse")
    assert empty.shape == (0, 2, 6, 6)
    out = np.empty(got.shape, np.float32)
    res = fastconv.conv2d(x, w, padding=(1, 2), algorithm="sparse", out=out)
    assert res is out
    np.testing.assert_array_equal(out, got)


def test_plan_keeps_packed_weights(ref, monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 8, 10, 10)).astype(np.float32)
    w = pruned(rng, (8, 8, 3, 3), 0.1, np.float32)
    p = fastconv.plan(fastconv.conv2d, x, w, padding=1, algorithm="sparse")
    from fastconv import _sparse

    def no_pack(*a, **k):
        raise AssertionError("the plan packed the weights again")

    monkeypatch.setattr(_sparse, "pack", no_pack)
    w[...] = 0  # the plan keeps its own copy, packed once
    for _ in range(2):
        ref.assert_matches(p(x), ref.expect(x, p._weight, nd=2, padding=1))
    assert p.algorithm == "sparse"
    assert p._prepared.state.val.size == np.count_nonzero(p._weight)


def layer(rng, c, h, density):
    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    w = pruned(rng, (c, c, 3, 3), density, np.float32)
    return x, w


def test_auto_picks_sparse_on_pruned_layer_only():
    rng = np.random.default_rng(7)
    x, w = layer(rng, 256, 14, 0.1)
    choice = fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1)
    assert choice.algorithm == "sparse", choice
    assert "sparse" in choice.seconds
    dense = rng.standard_normal(w.shape).astype(np.float32)
    choice = fastconv.choose_algorithm(fastconv.conv2d, x, dense, padding=1)
    assert "sparse" in choice.seconds and choice.algorithm != "sparse", choice
    x, w = layer(rng, 64, 56, 0.1)
    assert fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1).algorithm == "sparse"


def test_auto_sparse_result_and_nonfinite_input(ref):
    rng = np.random.default_rng(8)
    x, w = layer(rng, 256, 14, 0.1)
    ref.assert_matches(fastconv.conv2d(x, w, padding=1), ref.expect(x, w, nd=2, padding=1))
    # a NaN under zero weights: dense semantics (NaN wherever the window
    # covers it), so "auto" does not run the sparse path
    x[0, 0, 5, 5] = np.nan
    got = fastconv.conv2d(x, w, padding=1)
    assert np.isnan(got[0, :, 4:7, 4:7]).all()
    choice = fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1)
    assert choice.algorithm != "sparse" and "NaN" in choice.note


@pytest.mark.parametrize("bad, where", [(np.inf, (0, 3, 0, 0)), (-np.inf, (0, 255, 13, 7)),
                                        (np.nan, (0, 17, 6, 13))])
def test_auto_sparse_falls_back_when_the_padded_copy_finds_nonfinite(ref, ran, bad, where):
    """"auto" does not scan the input before "sparse": the input's padded
    copy reports NaN/Inf and the call reruns on the dense fallback, whose
    result has dense semantics everywhere."""
    rng = np.random.default_rng(9)
    x, w = layer(rng, 256, 14, 0.1)
    fastconv.conv2d(x, w, padding=1)
    assert ran == ["sparse"]
    x[where] = bad
    got = fastconv.conv2d(x, w, padding=1)
    assert ran[1] == "sparse" and ran[2] in ("direct", "im2col") and len(ran) == 3
    with np.errstate(invalid="ignore"):
        want = ref.conv(x, w, padding=1, nd=2)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-4 * np.abs(want[ok]).max())


# --------------------------------------------------------------------------
# sparse images
# --------------------------------------------------------------------------
FORMATS = [sp.csr_array, sp.csc_array, sp.coo_array, sp.csr_matrix, sp.csc_matrix,
           sp.coo_matrix]


def sparse_image(rng, shape, density, dtype):
    d = np.where(rng.random(shape) < density, rng.standard_normal(shape), 0)
    return d.astype(dtype)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("kw", [
    dict(), dict(padding="same"), dict(stride=2, padding=(1, 2)),
    dict(dilation=(2, 1), padding=2), dict(stride=(3, 2), dilation=2, padding=((2, 0), (1, 3))),
    dict(padding=2, padding_mode="reflect"), dict(padding=(3, 1), padding_mode="replicate"),
    dict(padding=((2, 3), (1, 4)), padding_mode="circular", stride=2),
], ids=str)
def test_conv2d_sparse_image(ref, fmt, kw):
    rng = np.random.default_rng(9)
    for dtype in (np.float32, np.float64):
        d = sparse_image(rng, (19, 23), 0.06, dtype)  # "auto" scatters up to 8%
        k = rng.standard_normal((3, 4)).astype(dtype)
        exp = ref.expect(d, k, nd=2, **kw)
        ref.assert_matches(fastconv.conv2d(fmt(d), k, **kw), exp)
        res = fastconv.conv2d(fmt(d), k, **kw, sparse_output=True)
        assert sp.issparse(res) and res.format == "csr"
        assert isinstance(res, sp.spmatrix) == isinstance(fmt(d), sp.spmatrix)
        ref.assert_matches(res.toarray(), exp)


@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 1.0])
def test_conv2d_sparse_image_bias_out_kernels(ref, density):
    rng = np.random.default_rng(10)
    d = sparse_image(rng, (40, 70), density, np.float32)
    b = np.array([0.25], np.float32)
    for ksize in ((1, 1), (5, 7), (7, 17), (9, 3)):  # 17: wider than a vector
        k = rng.standard_normal(ksize).astype(np.float32)
        exp = ref.expect(d, k, b, nd=2, padding="same")
        ref.assert_matches(fastconv.conv2d(sp.csr_array(d), k, b, padding="same",
                                           algorithm="sparse"), exp)
        out = np.empty(exp.value.shape, np.float32)
        assert fastconv.conv2d(sp.csr_array(d), k, b, padding="same", out=out) is out
        ref.assert_matches(out, exp)
    # a sparse kernel is densified (one-channel plain form)
    k = sp.csr_array(sparse_image(rng, (3, 3), 0.5, np.float32))
    ref.assert_matches(fastconv.conv2d(d, k), ref.expect(d, k.toarray(), nd=2))


def test_sparse_image_density_rule(ref, monkeypatch):
    """"auto" scatters images up to SPARSE_IMAGE_MAX_DENSITY and densifies
    denser ones; both give the oracle's result, "sparse" always scatters."""
    from fastconv import _sparse

    rng = np.random.default_rng(13)
    k = rng.standard_normal((5, 5))
    calls = []
    real = _sparse._scatter
    monkeypatch.setattr(_sparse, "_scatter", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for density, scatters in ((0.04, True), (0.2, False)):
        d = sparse_image(rng, (30, 40), density, np.float64)
        exp = ref.expect(d, k, nd=2, padding=2)
        calls.clear()
        ref.assert_matches(fastconv.conv2d(sp.csr_array(d), k, padding=2), exp)
        assert bool(calls) == scatters
        calls.clear()
        ref.assert_matches(fastconv.conv2d(sp.csr_array(d), k, padding=2, algorithm="sparse"),
                           exp)
        assert calls
        calls.clear()
        np.testing.assert_allclose(fsignal.convolve2d(sp.csr_array(d), k, "same"),
                                   ss.convolve2d(d, k, "same"), rtol=1e-12, atol=1e-12)
        assert bool(calls) == scatters


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_sparse_image_empty_rows_padding_modes(ref, mode):
    """Empty first/last rows (CSR rows with no entries) extended into the padding."""
    d = np.zeros((8, 9))
    d[2, 3], d[5, 0], d[5, 8] = 1.5, -2.0, 0.5
    k = np.arange(1.0, 10.0).reshape(3, 3)
    exp = ref.expect(d, k, nd=2, padding=2, padding_mode=mode)
    ref.assert_matches(fastconv.conv2d(sp.csr_array(d), k, padding=2, padding_mode=mode,
                                       algorithm="sparse"), exp)


def test_conv2d_sparse_image_nonfinite_values():
    d = np.zeros((9, 9))
    d[4, 4] = np.inf
    k = np.ones((3, 3))
    got = fastconv.conv2d(sp.csr_array(d), k, padding=1)
    np.testing.assert_array_equal(np.isinf(got), fastconv.conv2d(d, k, padding=1) == np.inf)


MODES = ("full", "same", "valid")


@pytest.mark.parametrize("fmt", [sp.csr_array, sp.csc_matrix, sp.coo_array],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64],
                         ids=["float32", "float64", "int64"])
def test_signal_2d_sparse_vs_scipy(fmt, dtype):
    rng = np.random.default_rng(11)
    if dtype == np.int64:
        d = ((rng.random((23, 19)) < 0.06) * rng.integers(-5, 6, (23, 19))).astype(dtype)
        k = rng.integers(-3, 4, (4, 5)).astype(dtype)
    else:
        d = sparse_image(rng, (23, 19), 0.06, dtype)  # scattered, not densified
        k = rng.standard_normal((4, 5)).astype(dtype)
    s = fmt(d)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for mode in MODES:
        for name in ("convolve2d", "correlate2d"):
            for boundary, fill in (("fill", 0), ("fill", 2), ("wrap", 0), ("symm", 0),
                                   ("circular", 0), ("symmetric", 0)):
                want = getattr(ss, name)(d, k, mode, boundary, fill)
                got = getattr(fsignal, name)(s, k, mode, boundary, fill)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_allclose(got, want, **tol, err_msg=f"{name} {mode} {boundary}")
        for name in ("convolve", "correlate"):
            want = getattr(ss, name)(d, k, mode)
            got = getattr(fsignal, name)(s, k, mode)
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, **tol, err_msg=f"{name} {mode}")
            res = getattr(fsignal, name)(s, k, mode, sparse_output=True)
            assert sp.issparse(res) and res.format == "csr"
            np.testing.assert_allclose(res.toarray(), want, **tol)
    # "valid" with the sparse operand the smaller one: SciPy swaps them
    np.testing.assert_allclose(fsignal.correlate2d(fmt(k), d, "valid"),
                               ss.correlate2d(k, d, "valid"), **tol)


def test_sparse_bad_inputs():
    rng = np.random.default_rng(12)
    s = sp.csr_array(sparse_image(rng, (10, 10), 0.2, np.float64))
    k = np.ones((3, 3))
    with pytest.raises(ValueError, match="x must be 4-D"):
        fastconv.conv2d(s, np.ones((2, 1, 3, 3)))  # a sparse image takes a 2-D kernel
    with pytest.raises(ValueError, match="larger than the padded input"):
        fastconv.conv2d(s, np.ones((11, 3)))
    with pytest.raises(TypeError, match="int64"):
        fastconv.conv2d(sp.csr_array(np.eye(4, dtype=np.int64)), k)
    with pytest.raises(ValueError, match="cannot serve a scipy.sparse x"):
        fastconv.conv2d(s, k, algorithm="direct")
    with pytest.raises(TypeError, match="only conv2d takes sparse"):
        fastconv.conv1d(s, np.ones(3))
    with pytest.raises(TypeError, match="only conv2d takes sparse"):
        fastconv.plan(fastconv.conv2d, s, k)
    with pytest.raises(TypeError, match="2-D kernel of a plain 2-D image"):
        fastconv.conv2d(np.ones((1, 4, 5, 5)), sp.csr_array(np.ones((4, 4))))
    with pytest.raises(ValueError, match="groups"):
        fastconv.conv2d(s, k, groups=2)
    with pytest.raises(ValueError, match="out cannot be combined"):
        fastconv.conv2d(s, k, sparse_output=True, out=np.empty((8, 8)))
    with pytest.raises(ValueError, match="out has shape"):
        fastconv.conv2d(s, k, out=np.empty((9, 9)))
    with pytest.raises(ValueError, match="sparse_output=True needs"):
        fastconv.conv2d(np.ones((5, 5)), k, sparse_output=True)
    with pytest.raises(TypeError, match="sparse_output must be a bool"):
        fastconv.conv2d(s, k, sparse_output=1)
    with pytest.raises(ValueError, match="Acceptable mode"):
        fsignal.convolve2d(s, k, mode="middle")
    with pytest.raises(ValueError, match="Acceptable boundary"):
        fsignal.correlate2d(s, k, boundary="mirror")
    with pytest.raises(ValueError, match="in2 must be 2-D"):
        fsignal.convolve(s, np.ones(3))
    with pytest.raises(TypeError, match="result dtype"):
        fsignal.convolve2d(sp.csr_array(np.eye(3, dtype=np.complex128)), k)
    with pytest.raises(ValueError, match="sparse_output=True needs"):
        fsignal.convolve2d(np.ones((4, 4)), k, sparse_output=True)
    # sparse weights: a groups mismatch is refused before any packing
    x = np.ones((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="groups"):
        fastconv.conv2d(x, np.zeros((6, 4, 3, 3), np.float32), groups=4, algorithm="sparse")
    with pytest.raises(TypeError, match="int32"):
        fastconv.conv2d(x, np.zeros((6, 4, 3, 3), np.int32), algorithm="sparse")


def test_nonzero_estimate_exact_for_pruned_weights():
    """"auto"'s nonzero count: exact for small or pruned weights (unstructured
    or whole channels), the sample's estimate only for large dense ones."""
    from fastconv import _sparse

    rng = np.random.default_rng(14)
    dense = rng.standard_normal((256, 256, 3, 3)).astype(np.float32)
    assert dense.size >= 16 * _sparse.SAMPLE
    est = _sparse.nonzeros_for_estimate(dense)
    assert abs(est - np.count_nonzero(dense)) <= 0.02 * dense.size
    pruned = np.where(rng.random(dense.shape) < 0.1, dense, 0).astype(np.float32)
    assert _sparse.nonzeros_for_estimate(pruned) == np.count_nonzero(pruned)
    channels = dense.copy()
    channels[::2] = 0  # every other output channel pruned: half the entries zero
    channels[1::4] = 0
    assert _sparse.nonzeros_for_estimate(channels) == np.count_nonzero(channels)
    small = rng.standard_normal((8, 8, 3, 3))
    assert _sparse.nonzeros_for_estimate(small) == np.count_nonzero(small)
