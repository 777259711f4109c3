"""SciPy-style signal benchmarks (DESIGN.md section 5): ``fastconv.signal`` vs SciPy/NumPy.

Cases (one benchmark group each; every group times fastconv and its peers):

* ``1d``: 100,000 samples x 5,000 taps, mode "same", float64 and float32:
  ``fastconv.signal.oaconvolve`` and ``fastconv.signal.convolve`` (method
  "auto") vs ``scipy.signal.oaconvolve``, ``scipy.signal.fftconvolve`` and
  ``scipy.signal.convolve`` (method "auto").
* ``1d``: 232,523 samples x 5 taps, mode "full" (``numpy.convolve``'s
  default), float64: ``fastconv.signal.convolve`` vs ``numpy.convolve`` and
  ``scipy.signal.convolve``.
* ``convolve2d``: scikit-image's 512x512 camera photograph, float64 and
  float32, k = 3, 7, 15 (seeded random kernel normalised to sum 1), mode
  "same": ``fastconv.signal.convolve2d`` vs ``scipy.signal.convolve2d``.
* ``convolve same``: the photograph with k = 15, 31, 63, mode "same":
  ``fastconv.signal.convolve`` vs ``scipy.signal.convolve`` (method "auto")
  and ``scipy.signal.fftconvolve``.
* ``3d``: a 128^3 float32 volume with a 5^3 kernel, mode "same":
  ``fastconv.signal.convolve`` and ``fastconv.conv3d`` (one channel, the
  flipped kernel, padding 2) vs ``scipy.signal.convolve`` (method "auto")
  and ``scipy.ndimage.convolve(mode="constant")``.

All compute the same (true, flipped-kernel) convolution. FLOPs are
``2 * x.size * k.size`` - twice the multiply-adds of the direct computation:
exact for mode "full", the dense count (edge taps on zeros included) for
mode "same", as for the image benchmarks.

Every fastconv benchmark first checks its result against the case's target
peer (``TARGETS``) with ``np.testing.assert_allclose`` (tolerances
``RTOL``, absolute part relative to max |reference|, loose enough for FFT
vs direct summation), once, outside the timed loop.

``TARGETS`` (case = benchmark group -> (peer impl, minimum speed-up)) is
copied into the ``extra_info["target"]`` of each fastconv benchmark of the
case; ``benchmarks/report.py`` prints a "targets" table from it.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

DTYPES = ("float64", "float32")
LONG_N, LONG_K = 100_000, 5_000        # 1-D, mode "same"
SHORT_N, SHORT_K = 232_523, 5          # 1-D, mode "full"
CONV2D_KS = (3, 7, 15)                 # convolve2d on the photograph
SAME2D_KS = (15, 31, 63)               # convolve(mode="same") on the photograph
VOL_N, VOL_K = 128, 5                  # 3-D, float32
VOL_GROUP = f"3d {VOL_N}x{VOL_N}x{VOL_N} k{VOL_K}x{VOL_K}x{VOL_K} same float32"

# Case (benchmark group) -> (peer impl, minimum speed-up = peer time / fastconv time).
TARGETS = {
    **{f"1d {LONG_N}x{LONG_K} same {dt}": ("scipy.signal.oaconvolve", 1.5) for dt in DTYPES},
    f"1d {SHORT_N}x{SHORT_K} full float64": ("numpy.convolve", 2.0),
    **{f"convolve2d 512x512 k{k} {dt}": ("scipy.signal.convolve2d", 20.0)
       for k in CONV2D_KS for dt in DTYPES},
    **{f"convolve same 512x512 k{k} {dt}": ("scipy.signal.convolve", 1.2)
       for k in SAME2D_KS for dt in DTYPES},
    VOL_GROUP: ("scipy.signal.convolve", 5.0),
}

# Cases in the quick CI subset (marker ``ci``).
CI_GROUPS = {f"1d {SHORT_N}x{SHORT_K} full float64", "convolve2d 512x512 k7 float32"}

# Tolerance of the result check, by dtype: rtol, and atol = RTOL * max|reference|.
RTOL = {"float64": 1e-10, "float32": 1e-4}
# A peer's untimed warm-up call that takes longer than this skips its benchmark.
PEER_BUDGET_S = 5.0


# --- implementations ----------------------------------------------------------------
# label -> (role, factory); factory(modules, case, x, k) returns a zero-argument call.


def _fc_signal(name):
    def factory(mods, case, x, k):
        fn = getattr(mods["fastconv.signal"], name)
        return lambda: fn(x, k, mode=case["mode"])
    return factory


def _fc_conv3d(mods, case, x, k):
    # conv3d cross-correlates: flip the kernel; padding k//2 is mode "same" for odd k.
    assert case["mode"] == "same" and all(s % 2 for s in k.shape)
    kf = np.ascontiguousarray(k[::-1, ::-1, ::-1])
    conv3d, pad = mods["fastconv"].conv3d, k.shape[0] // 2
    return lambda: conv3d(x, kf, padding=pad)


def _scipy_signal(name):
    def factory(mods, case, x, k):
        fn = getattr(scipy.signal, name)
        return lambda: fn(x, k, mode=case["mode"])
    return factory


def _np_convolve(mods, case, x, k):
    return lambda: np.convolve(x, k, mode=case["mode"])


def _ndimage_convolve(mods, case, x, k):
    assert case["mode"] == "same" and all(s % 2 for s in k.shape)
    return lambda: scipy.ndimage.convolve(x, k, mode="constant", cval=0.0)


IMPLS = {
    "fastconv.signal.convolve": ("fastconv", _fc_signal("convolve")),
    "fastconv.signal.oaconvolve": ("fastconv", _fc_signal("oaconvolve")),
    "fastconv.signal.convolve2d": ("fastconv", _fc_signal("convolve2d")),
    "fastconv.conv3d": ("fastconv", _fc_conv3d),
    "scipy.signal.convolve": ("peer", _scipy_signal("convolve")),
    "scipy.signal.oaconvolve": ("peer", _scipy_signal("oaconvolve")),
    "scipy.signal.fftconvolve": ("peer", _scipy_signal("fftconvolve")),
    "scipy.signal.convolve2d": ("peer", _scipy_signal("convolve2d")),
    "numpy.convolve": ("peer", _np_convolve),
    "scipy.ndimage.convolve": ("peer", _ndimage_convolve),
}


# --- cases --------------------------------------------------------------------------


def _case(group, family, dtype, mode, data, impls):
    return {"group": group, "family": family, "dtype": dtype, "mode": mode,
            "data": data, "impls": impls}


def _kernel2d(seeded, size):
    k = seeded("signal-2d-kernel", size).random((size, size))
    return k / k.sum()


CASES = (
    [_case(f"1d {LONG_N}x{LONG_K} same {dt}", "signal-1d", dt, "same", ("long1d",),
           ("fastconv.signal.oaconvolve", "fastconv.signal.convolve",
            "scipy.signal.oaconvolve", "scipy.signal.fftconvolve", "scipy.signal.convolve"))
     for dt in DTYPES]
    + [_case(f"1d {SHORT_N}x{SHORT_K} full float64", "signal-1d", "float64", "full",
             ("short1d",),
             ("fastconv.signal.convolve", "numpy.convolve", "scipy.signal.convolve"))]
    + [_case(f"convolve2d 512x512 k{k} {dt}", "signal-2d", dt, "same", ("photo", k),
             ("fastconv.signal.convolve2d", "scipy.signal.convolve2d"))
       for dt in DTYPES for k in CONV2D_KS]
    + [_case(f"convolve same 512x512 k{k} {dt}", "signal-2d", dt, "same", ("photo", k),
             ("fastconv.signal.convolve", "scipy.signal.convolve", "scipy.signal.fftconvolve"))
       for dt in DTYPES for k in SAME2D_KS]
    + [_case(VOL_GROUP, "signal-3d", "float32", "same", ("volume",),
             ("fastconv.signal.convolve", "fastconv.conv3d",
              "scipy.signal.convolve", "scipy.ndimage.convolve"))]
)
_BY_GROUP = {c["group"]: c for c in CASES}

# Every target names a case and a peer that the case measures.
for _g, (_peer, _) in TARGETS.items():
    assert _g in _BY_GROUP and _peer in _BY_GROUP[_g]["impls"], (_g, _peer)
assert CI_GROUPS <= set(_BY_GROUP)


def _params():
    return [
        pytest.param(c["group"], impl,
                     id=f"{c['group'].replace(' ', '_')}-{impl}",
                     marks=[pytest.mark.ci] if c["group"] in CI_GROUPS else [])
        for c in CASES
        for impl in c["impls"]
    ]


_DATA = {}


def _arrays(request, seeded, case):
    """(x, k) of a case, in its dtype; the same arrays for every implementation."""
    key = case["group"]
    if key not in _DATA:
        kind, *rest = case["data"]
        if kind == "long1d":
            rng = seeded("signal-1d", LONG_N, LONG_K)
            x, k = rng.standard_normal(LONG_N), rng.standard_normal(LONG_K)
        elif kind == "short1d":
            rng = seeded("signal-1d", SHORT_N, SHORT_K)
            x, k = rng.standard_normal(SHORT_N), rng.standard_normal(SHORT_K)
        elif kind == "photo":
            x, k = request.getfixturevalue("photograph"), _kernel2d(seeded, rest[0])
        elif kind == "volume":
            rng = seeded("signal-3d", VOL_N, VOL_K)
            x, k = rng.standard_normal((VOL_N,) * 3), rng.standard_normal((VOL_K,) * 3)
        else:
            raise AssertionError(kind)
        dt = case["dtype"]
        _DATA[key] = (np.ascontiguousarray(x, dtype=dt), np.ascontiguousarray(k, dtype=dt))
    return _DATA[key]


_REFERENCE = {}


def _reference(mods, case, x, k):
    """The target peer's result for the case (computed once)."""
    key = case["group"]
    if key not in _REFERENCE:
        peer = TARGETS[key][0]
        _REFERENCE[key] = IMPLS[peer][1](mods, case, x, k)()
    return _REFERENCE[key]


@pytest.fixture(scope="session")
def mods(fastconv_mod):
    """fastconv and fastconv.signal (imported here: the peers' benchmarks run without it)."""
    import fastconv.signal

    return {"fastconv": fastconv_mod, "fastconv.signal": fastconv.signal}


@pytest.mark.parametrize("group, impl", _params())
def test_signal(benchmark, request, seeded, skip_if_slower, n_threads, group, impl):
    case = _BY_GROUP[group]
    role, factory = IMPLS[impl]
    x, k = _arrays(request, seeded, case)
    info = dict(impl=impl, role=role, family=case["family"], dtype=case["dtype"],
                mode=case["mode"], shape="x".join(map(str, x.shape)),
                kernel="x".join(map(str, k.shape)), flops=2 * x.size * k.size)

    if role == "fastconv":
        mods = request.getfixturevalue("mods")
        call = factory(mods, case, x, k)
        result = call()  # warm-up and result check, untimed
        ref = _reference(mods, case, x, k)
        assert result.shape == ref.shape, (result.shape, ref.shape)
        assert result.dtype == ref.dtype, (result.dtype, ref.dtype)
        scale = float(np.max(np.abs(ref)))
        rtol = RTOL[case["dtype"]]
        np.testing.assert_allclose(result, ref, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{impl} vs {TARGETS[group][0]} ({group})")
        err = float(np.max(np.abs(result.astype(np.float64) - ref.astype(np.float64))))
        info.update(threads=n_threads, max_rel_err_vs_peer=err / scale)
        if group in TARGETS:
            peer, min_ratio = TARGETS[group]
            info["target"] = {"peer": peer, "min_ratio": min_ratio}
    else:
        call = factory(None, case, x, k)
        skip_if_slower(call, PEER_BUDGET_S, what=f"{impl} ({group})")  # warm-up
        info.update(threads=1)  # NumPy, scipy.ndimage, scipy.signal (scipy.fft workers=1)

    benchmark.group = group
    benchmark.extra_info.update(info)
    benchmark(call)
