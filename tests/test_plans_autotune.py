"""Plans (fastconv.plan), introspection (fastconv.choose_algorithm),
autotuning (fastconv._tuning) and the separable algorithm at the API level.

Results are compared with the float64 oracle of conftest.py (the ``ref``
fixture), never with fastconv itself: elementwise tolerances for the
direct/GEMM paths, normwise bounds (``fastconv._winograd.ERROR_BOUND``,
``fastconv.signal.FFT_NORMWISE_BOUND``) for the transform methods.

Every test runs with autotuning off and an empty autotuning cache, and
leaves them so (the ``clean_tuning`` fixture).
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _cpu, _tuning
from fastconv import _winograd as W
from fastconv.signal import FFT_NORMWISE_BOUND

DTYPES = (np.float32, np.float64)
DTYPE_IDS = ("f32", "f64")
PLAN_ALGORITHMS = ("direct", "im2col", "fft", "winograd", "auto")
TRANSFORMS = ("fft", "winograd")


@pytest.fixture(autouse=True)
def clean_tuning():
    previous = fastconv.set_autotune(False)
    fastconv.clear_autotune_cache()
    yield
    fastconv.set_autotune(False)
    fastconv.clear_autotune_cache()
    assert previous is False, "autotuning was left on by an earlier test"


@pytest.fixture
def rng():
    return np.random.default_rng(77)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def case(rng, dtype=np.float64, *, n=2, cin=6, cout=5, size=(12, 11), k=3, groups=1,
         bias=True):
    x = rng.standard_normal((n, cin, *size)).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, k, k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b


def check(ref, got, algorithm, x, w, b=None, *, context="", **kw):
    """Compare with the oracle, with the tolerance of `algorithm`."""
    exp = ref.expect(x, w, b, nd=2, **kw)
    if algorithm in TRANSFORMS:
        bound = (W.ERROR_BOUND if algorithm == "winograd" else FFT_NORMWISE_BOUND)[exp.dtype]
        assert got.shape == exp.value.shape, context
        assert got.dtype == exp.dtype, context
        err = np.abs(got.astype(np.float64) - exp.value).max()
        scale = np.abs(exp.value).max()
        assert err <= bound * scale, f"{context}: {algorithm} normwise {err / scale:.3g} > {bound}"
    else:
        ref.assert_matches(got, exp, context)


def nonfinite_mask(ref, x, cout, padding, groups=1):
    """Outputs whose 3x3 window (after zero padding) covers a NaN/Inf of x."""
    bad = (~np.isfinite(x)).astype(np.float64)
    ones = np.ones((cout, x.shape[1] // groups, 3, 3))
    return ref.conv(bad, ones, padding=padding, groups=groups, nd=2) > 0


@pytest.fixture
def prefer(monkeypatch):
    """prefer(name): make the cost model estimate `name` fastest (when it is a
    candidate), so "auto" picks it deterministically."""
    real = _cpu.CPUBackend.estimate

    def set_(name):
        def estimate(self, problem, weight=None):
            est = dict(real(self, problem, weight))
            if name == "winograd" and name not in est and W.supported(problem) is None:
                est[name] = 1.0
            if name in est:
                est[name] = min(est.values()) * 1e-3
            return est

        monkeypatch.setattr(_cpu.CPUBackend, "estimate", estimate)

    return set_



@pytest.fixture
def tune_calls(monkeypatch):
    """Count calls of fastconv._tuning.tune (the timing of the candidates)."""
    calls = []
    real = _tuning.tune

    def tune(problem, nthreads, candidates, estimates, tag=""):
        calls.append(sorted(candidates))
        return real(problem, nthreads, candidates, estimates, tag)

    monkeypatch.setattr(_tuning, "tune", tune)
    return calls


# --------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", PLAN_ALGORITHMS)
def test_plan_matches_oracle(ref, rng, algorithm, dtype):
    x, w, b = case(rng, dtype)
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm=algorithm)
    assert isinstance(p, fastconv.Plan)
    if algorithm == "auto":
        assert isinstance(p.choice, fastconv.AlgorithmChoice)
        assert p.algorithm == p.choice.algorithm
    else:
        assert p.algorithm == algorithm
        assert p.choice is None
    assert p.input_shape == x.shape
    assert p.dtype == np.dtype(dtype)
    assert p.out_shape == (2, 5, 12, 11)
    y = p(x)
    check(ref, y, p.algorithm, x, w, b, padding=1, context=algorithm)
    # other inputs of the same shape, and again the first
    for _ in range(2):
        x2 = rng.standard_normal(x.shape).astype(dtype)
        check(ref, p(x2), p.algorithm, x2, w, b, padding=1, context=f"{algorithm} x2")
    y2 = p(x)
    np.testing.assert_array_equal(y2, y)
    # results are fresh arrays, not views of a kept workspace
    assert not np.shares_memory(y, y2)


@pytest.mark.parametrize("algorithm", PLAN_ALGORITHMS)
def test_plan_repeated_calls_identical(rng, algorithm):
    x, w, b = case(rng, np.float32, n=3, size=(17, 9))
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=((2, 0), (1, 1)), algorithm=algorithm)
    first = p(x)
    for _ in range(4):
        np.testing.assert_array_equal(p(x), first)


@pytest.mark.parametrize("algorithm", PLAN_ALGORITHMS + ("separable",))
def test_plan_keeps_copy_of_weights(ref, rng, algorithm):
    if algorithm == "separable":
        x = rng.standard_normal((2, 3, 20, 20))
        g = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])
        w = np.stack([g, 2 * g, -g])[:, None].copy()
        b = rng.standard_normal(3)
        kw = dict(padding=1, groups=3)
    else:
        x, w, b = case(rng)
        kw = dict(padding=1)
    p = fastconv.plan(fastconv.conv2d, x, w, b, algorithm=algorithm, **kw)
    w0, b0 = w.copy(), b.copy()
    before = p(x)
    w *= -3.0
    w[0, 0, 0, 0] = np.nan
    b[:] = 1e6
    after = p(x)
    np.testing.assert_array_equal(after, before)
    check(ref, after, p.algorithm, x, w0, b0, context=algorithm, **kw)


@pytest.mark.parametrize("algorithm", PLAN_ALGORITHMS)
def test_plan_out(ref, rng, algorithm):
    x, w, b = case(rng, np.float32)
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding="same", algorithm=algorithm)
    out = np.full(p.out_shape, np.nan, np.float32)
    assert p(x, out) is out
    check(ref, out, p.algorithm, x, w, b, padding="same", context="out")
    fout = np.asfortranarray(np.zeros(p.out_shape, np.float32))
    assert p(x, out=fout) is fout
    np.testing.assert_array_equal(fout, out)
    with pytest.raises(ValueError, match="shape"):
        p(x, out=np.empty((2, 5, 12, 10), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        p(x, out=np.empty(p.out_shape, np.float64))
    with pytest.raises(TypeError):
        p(x, out=out.tolist())
    ro = np.empty(p.out_shape, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        p(x, out=ro)


def test_plan_input_errors(rng):
    x, w, b = case(rng, np.float32)
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
    with pytest.raises(ValueError, match="shape"):
        p(x[:, :, :-1])
    with pytest.raises(ValueError, match="shape"):
        p(x[0])
    with pytest.raises(TypeError, match="dtype"):
        p(x.astype(np.float64))
    with pytest.raises(TypeError, match="dtype"):
        p(x.astype(np.int32))
    with pytest.raises(TypeError):
        p(x.tolist())
    with pytest.raises(TypeError):
        p(None)
    with pytest.raises(TypeError):
        p(3.0)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError):
        p(torch.from_numpy(x))


def test_plan_invalid_arguments_raise_like_conv2d(rng):
    x, w, b = case(rng)
    bad = [
        dict(groups=4),
        dict(padding=-1),
        dict(stride=0),
        dict(padding_mode="mirror"),
        dict(algorithm="winograd", stride=2),
        dict(algorithm="nope"),
        dict(workers=0),
    ]
    for kw in bad:
        with pytest.raises((TypeError, ValueError)) as want:
            fastconv.conv2d(x, w, b, **kw)
        with pytest.raises(want.type) as got:
            fastconv.plan(fastconv.conv2d, x, w, b, **kw)
        assert str(got.value) == str(want.value), kw
    with pytest.raises(TypeError, match="int32"):
        fastconv.plan(fastconv.conv2d, x.astype(np.int32), w)
    for not_conv in (np.convolve, fastconv.conv_transpose2d if hasattr(fastconv, "conv_transpose2d")
                     else len, "conv2d", None, [fastconv.conv2d]):
        with pytest.raises(TypeError, match="conv"):
            fastconv.plan(not_conv, x, w)


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "fft", "winograd", "auto"])
def test_plan_workers(ref, rng, monkeypatch, algorithm):
    monkeypatch.setattr(_cpu, "MIN_WORK_PER_THREAD", 1)
    x, w, b = case(rng, n=3, size=(14, 15))
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm=algorithm, workers=1)
    for workers in (None, 1, 2, 3, -1):
        check(ref, p(x, workers=workers), p.algorithm, x, w, b, padding=1,
              context=f"workers={workers}")
    with pytest.raises(ValueError, match="workers"):
        p(x, workers=0)
    with pytest.raises(TypeError, match="workers"):
        p(x, workers="2")
    p2 = fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm=algorithm, workers=2)
    check(ref, p2(x), p2.algorithm, x, w, b, padding=1, context="plan workers=2")


def test_plan_forms_and_dimensions(ref, rng):
    # unbatched
    x, w, b = case(rng, n=1)
    p = fastconv.plan(fastconv.conv2d, x[0], w, b, padding=1)
    assert p.input_shape == x[0].shape and p.out_shape == (5, 12, 11)
    check(ref, p(x[0]), p.algorithm, x[0], w, b, padding=1)
    # plain 2-D, forced Winograd
    img = rng.standard_normal((19, 23)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    p = fastconv.plan(fastconv.conv2d, img, k, padding="same", algorithm="winograd")
    assert p.out_shape == (19, 23)
    check(ref, p(img), "winograd", img, k, padding="same")
    # conv1d and conv3d plans
    x1 = rng.standard_normal((2, 3, 40))
    w1 = rng.standard_normal((4, 3, 5))
    p1 = fastconv.plan(fastconv.conv1d, x1, w1, padding=2)
    np.testing.assert_allclose(p1(x1), ref.conv(x1, w1, padding=2, nd=1), rtol=1e-10,
                               atol=1e-10)
    x3 = rng.standard_normal((1, 2, 6, 7, 5))
    w3 = rng.standard_normal((3, 2, 3, 3, 3))
    p3 = fastconv.plan(fastconv.conv3d, x3, w3, padding=1, algorithm="im2col")
    ref.assert_matches(p3(x3), ref.expect(x3, w3, nd=3, padding=1))


def test_plan_choice_and_repr(rng):
    x, w, b = case(rng, np.float32)
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
    c = p.choice
    assert isinstance(c, fastconv.AlgorithmChoice) and isinstance(c, tuple)
    assert c.algorithm in c.seconds
    assert c.measured is False
    assert all(isinstance(v, float) and v > 0 for v in c.seconds.values())
    assert isinstance(c.unavailable, dict) and isinstance(c.note, str) and c.note == ""
    assert set(c.seconds).isdisjoint(c.unavailable)
    r = repr(p)
    for part in ("Plan", "conv2d", str(x.shape), "float32", str(p.out_shape),
                 repr(p.algorithm)):
        assert part in r, (part, r)
    pf = fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm="fft")
    assert pf.choice is None and "'fft'" in repr(pf)


def test_plan_nan_input_stays_local_when_winograd_chosen(ref, rng, prefer, ran):
    """An auto plan that chose Winograd falls back to a dense algorithm for
    an input holding NaN/Inf, so it spoils only the windows covering it."""
    prefer("winograd")
    x, w, b = case(rng, np.float32, n=2, cin=8, cout=8, size=(16, 16))
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
    assert p.algorithm == "winograd" and p.choice.algorithm == "winograd"
    check(ref, p(x), "winograd", x, w, b, padding=1)
    assert ran[-1] == "winograd"

    xn = x.copy()
    xn[0, 3, 5, 7] = np.nan
    xn[1, 0, 0, 15] = np.inf     # a corner: windows through the padding
    xn[1, 6, 10, 2] = -np.inf
    y = p(xn)
    assert ran[-1] in ("direct", "im2col")
    mask = nonfinite_mask(ref, xn, 8, 1)
    np.testing.assert_array_equal(~np.isfinite(y), mask)
    np.testing.assert_array_equal(np.isnan(y[0]), mask[0])
    want = ref.conv(xn, w, b, padding=1, nd=2)
    np.testing.assert_array_equal(~np.isfinite(want), mask)  # the oracle agrees
    np.testing.assert_allclose(y[~mask], want[~mask], rtol=1e-4, atol=1e-4 * np.abs(
        want[~mask]).max())
    # finite inputs run Winograd again
    check(ref, p(x), "winograd", x, w, b, padding=1)
    assert ran[-1] == "winograd"


def test_plan_nan_weights_at_planning(ref, rng, prefer, ran):
    prefer("winograd")
    x, w, b = case(rng, np.float64, n=1, cin=4, cout=3, size=(10, 10))
    w[1, 2, 0, 0] = np.nan
    p = fastconv.plan(fastconv.conv2d, x, w, b)
    assert p.algorithm in ("direct", "im2col")
    y = p(x)
    assert np.all(np.isnan(y[:, 1])) and np.all(np.isfinite(y[:, [0, 2]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_call_nonfinite_weights_fall_back_after_transform(ref, rng, prefer, ran, bad,
                                                               dtype):
    """A plain "auto" call that chose Winograd learns from the filter
    transform (not a separate scan) that a weight is NaN or Inf, and runs a
    dense algorithm instead: only that output channel's windows change."""
    prefer("winograd")
    x, w, b = case(rng, dtype, n=2, cin=8, cout=8, size=(9, 10))
    check(ref, fastconv.conv2d(x, w, b, padding=1), "winograd", x, w, b, padding=1)
    assert ran[-1] == "winograd"
    w[5, 2, 1, 2] = bad
    before = len(ran)
    y = fastconv.conv2d(x, w, b, padding=1)
    assert len(ran) == before + 1 and ran[-1] in ("direct", "im2col")  # Winograd never ran
    with np.errstate(invalid="ignore"):  # inf * 0 in the oracle
        want = ref.conv(x, w, b, padding=1, nd=2)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(want))
    assert not np.isfinite(y[:, 5]).any() and np.isfinite(np.delete(y, 5, axis=1)).all()
    ok = np.isfinite(want)
    np.testing.assert_allclose(y[ok], want[ok], rtol=1e-4, atol=1e-4 * np.abs(want[ok]).max())
    # forced Winograd still runs Winograd on these weights
    fastconv.conv2d(x, w, b, padding=1, algorithm="winograd")
    assert ran[-1] == "winograd"


def test_plan_forced_transform_does_not_fall_back(rng, ran):
    """Forcing Winograd keeps Winograd even for a NaN input (no silent switch)."""
    x, w, b = case(rng, np.float32, size=(8, 8))
    p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm="winograd")
    x[0, 0, 3, 3] = np.nan
    p(x)
    assert ran[-1] == "winograd"


def test_plan_concurrent_calls(ref, rng):
    """One plan called from several Python threads at once."""
    x, w, b = case(rng, n=2, size=(20, 20))
    plans = {a: fastconv.plan(fastconv.conv2d, x, w, b, padding=1, algorithm=a)
             for a in ("im2col", "winograd", "fft")}
    inputs = [rng.standard_normal(x.shape) for _ in range(4)]
    expected = [ref.conv(xi, w, b, padding=1, nd=2) for xi in inputs]
    errors = []

    def worker(i):
        try:
            for _ in range(3):
                for name, p in plans.items():
                    y = p(inputs[i], workers=1)
                    if np.abs(y - expected[i]).max() > 1e-9 * np.abs(expected[i]).max():
                        errors.append((name, i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --------------------------------------------------------------------------
# choose_algorithm
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape, wshape, kw", [
    ((1, 16, 32, 32), (16, 16, 3, 3), dict(padding=1)),
    ((2, 8, 20, 20), (8, 1, 3, 3), dict(groups=8)),
    ((1, 1, 64, 64), (1, 1, 7, 7), dict(padding="same")),
    ((64, 64), (3, 3), {}),
    ((1, 3, 30, 30), (8, 3, 5, 5), dict(stride=2, dilation=2)),
], ids=["3x3", "depthwise", "7x7", "plain", "strided"])
def test_choose_algorithm_fields(shape, wshape, kw):
    x = np.ones(shape, np.float32)
    w = np.ones(wshape, np.float32)
    c = fastconv.choose_algorithm(fastconv.conv2d, x, w, **kw)
    assert isinstance(c, fastconv.AlgorithmChoice)
    assert c.algorithm in c.seconds
    assert c.measured is False and c.note == ""
    assert c.seconds and all(isinstance(v, float) and v > 0 for v in c.seconds.values())
    assert c.algorithm == min(c.seconds, key=c.seconds.get)
    assert set(c.seconds) <= set(fastconv.ALGORITHMS) - {"auto"}
    assert set(c.seconds).isdisjoint(c.unavailable)
    assert all(isinstance(r, str) and r for r in c.unavailable.values())


def test_choose_algorithm_matches_what_auto_runs(rng, ran):
    for shape, wshape, kw in (((1, 16, 24, 24), (16, 16, 3, 3), dict(padding=1)),
                              ((1, 1, 50, 50), (1, 1, 9, 9), {}),
                              ((2, 4, 12, 12), (4, 4, 5, 5), dict(padding=2))):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(wshape).astype(np.float32)
        c = fastconv.choose_algorithm(fastconv.conv2d, x, w, **kw)
        fastconv.conv2d(x, w, **kw)
        assert ran[-1] == c.algorithm


def test_choose_algorithm_nan_input(rng, prefer):
    prefer("winograd")
    x, w, _ = case(rng, np.float32, n=1, cin=8, cout=8, size=(16, 16))
    assert fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1).algorithm == "winograd"
    x[0, 2, 4, 4] = np.nan
    c = fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1)
    assert c.algorithm in ("direct", "im2col")
    assert min(c.seconds, key=c.seconds.get) == "winograd"
    assert c.note and "NaN" in c.note
    # a NaN where a dense method is estimated fastest: no note needed
    prefer("im2col")
    c = fastconv.choose_algorithm(fastconv.conv2d, x, w, padding=1)
    assert c.algorithm == "im2col" and c.note == ""


def test_choose_algorithm_unavailable_reasons():
    x = np.ones((1, 4, 20, 20))
    c = fastconv.choose_algorithm(fastconv.conv2d, x, np.ones((4, 4, 7, 7)))
    assert "winograd" in c.unavailable and "winograd" not in c.seconds
    assert "3x3, 5x5 or 2x2" in c.unavailable["winograd"]
    c = fastconv.choose_algorithm(fastconv.conv2d, x, np.ones((4, 4, 3, 3)), stride=2)
    assert "stride" in c.unavailable["winograd"]
    c = fastconv.choose_algorithm(fastconv.conv1d, np.ones((1, 2, 30)), np.ones((2, 2, 3)))
    assert "winograd" in c.unavailable


def test_choose_algorithm_measure(rng):
    x, w, b = case(rng, np.float32, n=1, cin=4, cout=4, size=(16, 16))
    c = fastconv.choose_algorithm(fastconv.conv2d, x, w, b, padding=1, measure=True)
    assert c.measured is True
    assert c.algorithm in c.seconds
    assert c.algorithm == min(c.seconds, key=c.seconds.get)
    assert c.seconds and all(isinstance(v, float) and v > 0 for v in c.seconds.values())
    assert set(c.seconds).isdisjoint(c.unavailable)
    with pytest.raises(TypeError, match="measure"):
        fastconv.choose_algorithm(fastconv.conv2d, x, w, measure="yes")


@pytest.mark.parametrize("kw", [
    dict(groups=4),
    dict(groups=0),
    dict(padding=-1),
    dict(padding="full"),
    dict(stride=0),
    dict(dilation=(1, 0)),
    dict(padding_mode="mirror"),
    dict(padding="same", stride=2),
    dict(bias=np.ones(3)),
    dict(workers=0),
    dict(workers=1.5),
    dict(stride=1.0),
], ids=repr)
def test_choose_algorithm_invalid_like_conv2d(rng, kw):
    x, w, _ = case(rng, bias=False)
    with pytest.raises((TypeError, ValueError)) as want:
        fastconv.conv2d(x, w, **kw)
    with pytest.raises(want.type) as got:
        fastconv.choose_algorithm(fastconv.conv2d, x, w, **kw)
    assert str(got.value) == str(want.value)


def test_choose_algorithm_bad_arrays_and_conv(rng):
    x, w, _ = case(rng, bias=False)
    for xx, ww in ((x.astype(np.int64), w), (x, w.astype(bool)), (x, w[:, :3]),
                   (x[0, 0], w)):
        with pytest.raises((TypeError, ValueError)) as want:
            fastconv.conv2d(xx, ww)
        with pytest.raises(want.type):
            fastconv.choose_algorithm(fastconv.conv2d, xx, ww)
    for not_conv in (np.convolve, fastconv.signal.convolve, "conv2d", None, 2,
                     [fastconv.conv2d], fastconv.plan):
        with pytest.raises(TypeError, match="conv"):
            fastconv.choose_algorithm(not_conv, x, w)


# --------------------------------------------------------------------------
# separable at the API level
# --------------------------------------------------------------------------
def gaussian(k, sigma):
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_separable_gaussian_matches_oracle(ref, rng, dtype, ran):
    img = rng.standard_normal((37, 45)).astype(dtype)
    k = gaussian(9, 2.0).astype(dtype)
    for padding in ("same", 0, ((4, 1), (0, 3))):
        y = fastconv.conv2d(img, k, padding=padding, algorithm="separable")
        assert ran[-1] == "separable"
        ref.assert_matches(y, ref.expect(img, k, nd=2, padding=padding), f"padding={padding}")
    # batched depthwise, per-channel Gaussians, bias, reflect padding
    x = rng.standard_normal((2, 3, 21, 18)).astype(dtype)
    w = np.stack([gaussian(7, s) for s in (1.0, 1.5, 2.5)])[:, None].astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    y = fastconv.conv2d(x, w, b, padding=3, groups=3, padding_mode="reflect",
                        algorithm="separable")
    ref.assert_matches(y, ref.expect(x, w, b, nd=2, padding=3, groups=3,
                                     padding_mode="reflect"))


def test_separable_forced_on_full_rank_kernel(rng):
    img = rng.standard_normal((30, 30))
    k = rng.standard_normal((5, 5))
    with pytest.raises(ValueError, match="separable") as info:
        fastconv.conv2d(img, k, algorithm="separable")
    assert "rank" in str(info.value)
    # multi-channel groups cannot be separable at all
    with pytest.raises(ValueError, match="separable"):
        fastconv.conv2d(rng.standard_normal((1, 2, 9, 9)), rng.standard_normal((2, 2, 3, 3)),
                        algorithm="separable")


def test_auto_picks_separable_for_large_gaussian(ref, rng, ran):
    img = rng.standard_normal((512, 512)).astype(np.float32)
    k = gaussian(15, 3.0).astype(np.float32)
    c = fastconv.choose_algorithm(fastconv.conv2d, img, k, padding="same")
    assert c.algorithm == "separable"
    assert "separable" in c.seconds
    assert "winograd" in c.unavailable
    y = fastconv.conv2d(img, k, padding="same")
    assert ran[-1] == "separable"
    # the oracle on bands of rows (a full 512x512 15x15 oracle is slow)
    padded = np.pad(img, 7)
    for r0, r1 in ((0, 24), (244, 268), (490, 512)):
        exp = ref.expect(padded[r0:r1 + 14], k, nd=2)
        ref.assert_matches(y[r0:r1], exp, f"rows {r0}:{r1}")
    # a full-rank kernel of the same size is not offered "separable"
    c = fastconv.choose_algorithm(fastconv.conv2d, img, rng.standard_normal((15, 15)).astype(
        np.float32), padding="same")
    assert "separable" not in c.seconds and c.algorithm != "separable"


# --------------------------------------------------------------------------
# autotuning
# --------------------------------------------------------------------------
def test_autotune_off_by_default_in_a_fresh_process():
    code = ("import fastconv; print(fastconv.get_autotune(), "
            "fastconv.autotune_cache())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", check=True).stdout.split()
    assert out == ["False", "{}"]


def test_set_get_and_context_manager():
    assert fastconv.get_autotune() is False
    assert fastconv.set_autotune(True) is False
    assert fastconv.get_autotune() is True
    assert fastconv.set_autotune(True) is True
    assert fastconv.set_autotune(False) is True
    with fastconv.autotune():
        assert fastconv.get_autotune() is True
        with fastconv.autotune(False):
            assert fastconv.get_autotune() is False
        assert fastconv.get_autotune() is True
    assert fastconv.get_autotune() is False
    with pytest.raises(RuntimeError):
        with fastconv.autotune(True):
            raise RuntimeError
    assert fastconv.get_autotune() is False
    fastconv.set_autotune(True)
    with fastconv.autotune(False):
        assert fastconv.get_autotune() is False
    assert fastconv.get_autotune() is True
    fastconv.set_autotune(False)


@pytest.mark.parametrize("value", ["yes", 1, 0, None, 1.0])
def test_set_autotune_type_errors(value):
    with pytest.raises(TypeError, match="bool"):
        fastconv.set_autotune(value)
    with pytest.raises(TypeError, match="bool"):
        with fastconv.autotune(value):
            pass  # pragma: no cover
    assert fastconv.get_autotune() is False


def test_autotune_first_call_times_then_caches(ref, rng, tune_calls, ran):
    x, w, b = case(rng, np.float32, n=1, cin=8, cout=8, size=(14, 14))
    with fastconv.autotune():
        y = fastconv.conv2d(x, w, b, padding=1)
    assert len(tune_calls) == 1
    assert {"direct", "im2col", "winograd"} <= set(tune_calls[0])
    cache = fastconv.autotune_cache()
    assert list(cache) == [_tuning.machine_key()]
    (entries,) = cache.values()
    assert len(entries) == 1
    (entry,) = entries.values()
    winner = entry["algorithm"]
    assert winner in entry["seconds"]
    assert winner == min(entry["seconds"], key=entry["seconds"].get)
    assert all(isinstance(s, float) and s > 0 for s in entry["seconds"].values())
    assert ran[-1] == winner
    check(ref, y, winner, x, w, b, padding=1)

    # later calls of the same problem reuse the winner, with new values too
    with fastconv.autotune():
        for _ in range(3):
            x2 = rng.standard_normal(x.shape).astype(np.float32)
            y2 = fastconv.conv2d(x2, w, b, padding=1)
            assert ran[-1] == winner
            check(ref, y2, winner, x2, w, b, padding=1)
        c = fastconv.choose_algorithm(fastconv.conv2d, x, w, b, padding=1)
        assert c.measured is True and c.algorithm == winner and c.seconds == entry["seconds"]
        p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
        assert p.algorithm == winner and p.choice.measured is True
    assert len(tune_calls) == 1
    assert fastconv.autotune_cache() == cache

    # another problem (shape, padding, dtype or thread count) is tuned anew
    with fastconv.autotune():
        fastconv.conv2d(x, w, b, padding=0)
        fastconv.conv2d(x.astype(np.float64), w, b, padding=1)
        fastconv.conv2d(x, w, b, padding=1, workers=1)
        fastconv.conv2d(x, w, b, padding=1, workers=2)
    assert len(tune_calls) in (4, 5)  # workers=None is one of 1 or 2 here
    assert len(fastconv.autotune_cache()[_tuning.machine_key()]) == len(tune_calls)

    # with autotuning off the cache is not consulted nor extended
    fastconv.conv2d(x, w, b, padding=2)
    assert len(fastconv.autotune_cache()[_tuning.machine_key()]) == len(tune_calls)


def test_autotune_cache_is_a_copy(rng, tune_calls):
    x, w, _ = case(rng, np.float32, n=1, cin=4, cout=4, size=(8, 8), bias=False)
    with fastconv.autotune():
        fastconv.conv2d(x, w)
    cache = fastconv.autotune_cache()
    cache.clear()
    assert fastconv.autotune_cache() != {}


def _tuned_problem(rng, tune_calls):
    x, w, b = case(rng, np.float32, n=1, cin=8, cout=8, size=(16, 16))
    with fastconv.autotune():
        fastconv.conv2d(x, w, b, padding=1)
    assert len(tune_calls) == 1
    return x, w, b


def test_save_load_round_trip(rng, tmp_path, tune_calls, ran):
    x, w, b = _tuned_problem(rng, tune_calls)
    cache = fastconv.autotune_cache()
    path = tmp_path / "tune.json"
    assert fastconv.save_autotune_cache(path) == 1
    data = json.loads(path.read_text())
    assert data["machines"] == cache
    assert isinstance(data.get("format"), str)
    fastconv.clear_autotune_cache()
    assert fastconv.autotune_cache() == {}
    assert fastconv.load_autotune_cache(str(path)) == 1
    assert fastconv.autotune_cache() == cache
    with fastconv.autotune():
        fastconv.conv2d(x, w, b, padding=1)
    assert len(tune_calls) == 1  # the loaded entry was used, nothing re-timed
    # loading again merges (no duplicates)
    assert fastconv.load_autotune_cache(path) == 1
    assert fastconv.autotune_cache() == cache


@pytest.mark.parametrize("forced", ["direct", "fft", "winograd"])
def test_loaded_winner_is_used(ref, rng, tmp_path, tune_calls, ran, forced):
    x, w, b = _tuned_problem(rng, tune_calls)
    cache = fastconv.autotune_cache()
    (machine,) = cache
    (key,) = cache[machine]
    cache[machine][key]["algorithm"] = forced
    path = tmp_path / "edited.json"
    path.write_text(json.dumps({"format": _tuning._FORMAT, "machines": cache}))
    fastconv.clear_autotune_cache()
    fastconv.load_autotune_cache(path)
    start = len(ran)
    with fastconv.autotune():
        y = fastconv.conv2d(x, w, b, padding=1)
        p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
    assert ran[start:] == [forced] and p.algorithm == forced
    check(ref, y, forced, x, w, b, padding=1)
    check(ref, p(x), forced, x, w, b, padding=1)
    assert len(tune_calls) == 1
    # with autotuning off the loaded entry is ignored
    c = fastconv.choose_algorithm(fastconv.conv2d, x, w, b, padding=1)
    assert c.measured is False


def test_other_machines_entries_kept_not_used(rng, tmp_path, tune_calls):
    x, w, b = case(rng, np.float32, n=1, cin=4, cout=4, size=(12, 12))
    with fastconv.autotune():
        fastconv.conv2d(x, w, b, padding=1)
    mine = fastconv.autotune_cache()
    (key,) = mine[_tuning.machine_key()]
    fastconv.clear_autotune_cache()
    foreign = {"format": _tuning._FORMAT,
               "machines": {"some other machine": {key: {"algorithm": "fft",
                                                         "seconds": {"fft": 1e-9}}}}}
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(foreign))
    assert fastconv.load_autotune_cache(path) == 1
    with fastconv.autotune():
        fastconv.conv2d(x, w, b, padding=1)
    assert len(tune_calls) == 2  # the foreign entry was not used
    cache = fastconv.autotune_cache()
    assert set(cache) == {"some other machine", _tuning.machine_key()}
    out = tmp_path / "both.json"
    assert fastconv.save_autotune_cache(out) == 2
    assert json.loads(out.read_text())["machines"]["some other machine"] == \
        foreign["machines"]["some other machine"]


@pytest.mark.parametrize("content", [
    "not json at all",
    "",
    '{"machines": {}}',                                  # no format marker
    '{"format": "something-else", "machines": {}}',
    '{"format": "fastconv-autotune-1"}',                 # no machines
    '{"format": "fastconv-autotune-1", "machines": []}',
    '{"format": "fastconv-autotune-1", "machines": {"m": {"k": {"seconds": {}}}}}',
    '{"format": "fastconv-autotune-1", "machines": {"m": {"k": "fft"}}}',
    '[1, 2, 3]',                                         # JSON, not an object
    '"fastconv-autotune-1"',
    'null',
], ids=["text", "empty", "no-format", "other-format", "no-machines", "machines-list",
        "no-algorithm", "entry-not-dict", "json-list", "json-string", "json-null"])
def test_load_rejects_foreign_files(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        fastconv.load_autotune_cache(path)
    assert fastconv.autotune_cache() == {}


def test_load_missing_file(tmp_path):
    with pytest.raises(OSError):
        fastconv.load_autotune_cache(tmp_path / "missing.json")


def test_autotune_nan_input_not_timed_and_local(ref, rng, tmp_path, tune_calls, ran):
    x, w, b = case(rng, np.float32, n=1, cin=8, cout=8, size=(16, 16))
    xn = x.copy()
    xn[0, 1, 7, 0] = np.nan
    xn[0, 5, 15, 15] = np.inf
    mask = nonfinite_mask(ref, xn, 8, 1)
    with fastconv.autotune():
        y = fastconv.conv2d(xn, w, b, padding=1)
    assert tune_calls == [] and fastconv.autotune_cache() == {}
    np.testing.assert_array_equal(~np.isfinite(y), mask)
    assert ran[-1] in ("direct", "im2col")

    # even with a cached Winograd (or FFT) winner for this very problem
    for winner in ("winograd", "fft"):
        with fastconv.autotune():
            fastconv.conv2d(x, w, b, padding=1)          # tune (finite data) once
        cache = fastconv.autotune_cache()
        (machine,) = cache
        (key,) = cache[machine]
        cache[machine][key]["algorithm"] = winner
        path = tmp_path / f"{winner}.json"
        path.write_text(json.dumps({"format": _tuning._FORMAT, "machines": cache}))
        fastconv.load_autotune_cache(path)
        with fastconv.autotune():
            y = fastconv.conv2d(xn, w, b, padding=1)
            assert ran[-1] in ("direct", "im2col")
            np.testing.assert_array_equal(~np.isfinite(y), mask)
            c = fastconv.choose_algorithm(fastconv.conv2d, xn, w, b, padding=1)
            assert c.algorithm in ("direct", "im2col") and c.note
            p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
            assert p.algorithm == winner
            np.testing.assert_array_equal(~np.isfinite(p(xn)), mask)
            assert ran[-1] in ("direct", "im2col")
            check(ref, p(x), winner, x, w, b, padding=1)
            assert ran[-1] == winner
    assert len(tune_calls) == 1


def test_autotune_plan_and_choose_do_not_time_nan_inputs(rng, tune_calls):
    """With autotuning on, a NaN example input is not timed by plan() or
    choose_algorithm() either, as conv2d does not time it ("tuned on finite
    data only", fastconv._api._auto): nothing enters the cache."""
    x, w, b = case(rng, np.float32, n=1, cin=8, cout=8, size=(16, 16))
    x[0, 0, 3, 3] = np.nan
    with fastconv.autotune():
        p = fastconv.plan(fastconv.conv2d, x, w, b, padding=1)
        c = fastconv.choose_algorithm(fastconv.conv2d, x, w, b, padding=1)
    assert p.algorithm in ("direct", "im2col") and c.algorithm in ("direct", "im2col")
    assert tune_calls == []
    assert fastconv.autotune_cache() == {}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_finiteness_scan_matches_isfinite(dtype):
    """The compiled scan "auto" runs (fastconv._validation.all_finite) against
    np.isfinite: every non-finite kind at every position of a vector block
    and of the scalar tail, extremes that are finite, and the array forms
    that take the reduction instead (strided, big-endian, integer, complex)."""
    from fastconv._validation import all_finite

    info = np.finfo(dtype)
    finite_extremes = (info.max, -info.max, info.tiny, info.tiny / 2, -0.0, 1e30)
    for n in (1, 7, 16, 37, 100):
        for pos in sorted({0, n // 2, n - 1}):
            for v in (np.nan, np.inf, -np.inf) + finite_extremes:
                a = np.ones(n, dtype)
                a[pos] = v
                assert all_finite(a) == bool(np.isfinite(a).all()), (n, pos, v)
    assert all_finite(np.empty(0, dtype))
    a = np.ones((4, 6), dtype)
    a[1, 3] = np.inf
    assert not all_finite(a[:, 1::2]) and all_finite(a[:, ::2])
    assert not all_finite(a.astype(a.dtype.newbyteorder(">")))
    assert all_finite(np.arange(5), np.ones(3, bool), None)
    assert not all_finite(np.array([1 + 1j, complex(0, np.nan)]))


def test_autotune_keys_carry_the_backend_and_weight_density(rng):
    """Each backend times and caches its own algorithms, and pruned weights
    are tuned apart from dense ones of the same shape (their winner may be
    "sparse"); dense weights keep the plain key."""
    x = rng.standard_normal((1, 8, 9, 9))
    w = rng.standard_normal((8, 8, 3, 3))
    problem = fastconv._validation.plan_conv(2, x, w, None, 1, 1, 1, 1, "zeros")
    cpu = _cpu.CPUBackend()
    pruned = np.where(rng.random(w.shape) < 0.1, w, 0.0)
    assert cpu.tuning_tag(w) == ""
    assert cpu.tuning_tag(pruned).startswith("density~0.")
    keys = {_tuning.problem_key(problem, 2, tag) for tag in ("", cpu.tuning_tag(pruned), "cupy")}
    assert len(keys) == 3
    entry = _tuning.tune(problem, 2, {"direct": lambda: None}, {"direct": 1.0}, "cupy")
    assert _tuning.lookup(problem, 2, "cupy") == entry
    assert _tuning.lookup(problem, 2) is None
    with fastconv.autotune():
        fastconv.conv2d(x, w, padding=1)
        fastconv.conv2d(x, pruned, padding=1)
    keys = [k for entries in fastconv.autotune_cache().values() for k in entries
            if not k.startswith("cupy ")]
    assert len(keys) == 2 and sum(k.startswith("density~") for k in keys) == 1
