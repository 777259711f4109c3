"""The CuPy backend (fastconv._cuda) and its CUDA sources.

Three kinds of test:

- without CuPy: routing (``import fastconv`` never imports CuPy, the
  registry entry of the CuPy namespace, mixed namespaces raise TypeError);
- where ``nvcc`` is on PATH (no GPU needed): every ``.cu`` source of
  ``fastconv/_kernels/cuda`` compiles for sm_80 and sm_90, and its kernel
  templates are instantiated for float and double;
- with CuPy and a CUDA device: CuPy results of every algorithm against the
  NumPy oracle of conftest (``ref``).  These skip, saying why, when CuPy is
  not installed or sees no GPU.
"""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import fastconv
from fastconv import _backends, _cuda
from fastconv.signal import FFT_NORMWISE_BOUND

CUDA_DIR = pathlib.Path(__file__).resolve().parents[1] / "fastconv" / "_kernels" / "cuda"
FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


# --------------------------------------------------------------------------
# routing, without CuPy
# --------------------------------------------------------------------------
def test_import_fastconv_does_not_import_cupy(tmp_path):
    code = ("import sys, numpy as np, fastconv; "
            "fastconv.conv2d(np.ones((5, 5)), np.ones((3, 3))); "
            "fastconv.conv1d(np.ones((2, 9), np.float32), np.ones((4, 2, 3), np.float32)); "
            "print('cupy' in sys.modules, 'cupyx' in sys.modules, "
            "'fastconv._cuda' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert res.stdout.split() == ["False", "False", "False"], res.stdout + res.stderr


def test_cupy_namespace_is_registered_lazily():
    entries = {name: (pred, loader) for name, pred, loader in _backends._registry}
    pred, loader = entries["cupy"]
    assert loader == "fastconv._cuda:CuPyBackend"
    assert pred(types.ModuleType("cupy"))
    assert not pred(types.ModuleType("numpy"))


class _DuckArray:
    """A minimal array of a foreign array-API namespace."""

    def __init__(self, a):
        self._a = np.asarray(a)
        self.shape, self.dtype, self.ndim = self._a.shape, self._a.dtype, self._a.ndim

    def __array_namespace__(self, api_version=None):
        return types.ModuleType("duck_namespace")


def test_two_namespaces_in_one_call_raise_type_error():
    x = np.ones((1, 1, 5, 5))
    w = _DuckArray(np.ones((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="different namespaces"):
        fastconv.conv2d(x, w)


def test_cuda_sources_are_all_listed_and_installed():
    on_disk = sorted(p.name for p in CUDA_DIR.glob("*.cu"))
    assert on_disk == sorted(_cuda.CUDA_SOURCES)
    listed = (CUDA_DIR / "meson.build").read_text()
    for name in on_disk:
        assert f"'{name}'" in listed, f"{name} is not installed by meson.build"
        # read through the installed package, as the backend does
        assert _cuda.kernel_source(name) == (CUDA_DIR / name).read_text()


# --------------------------------------------------------------------------
# nvcc, no GPU needed
# --------------------------------------------------------------------------
NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", sorted(_cuda.CUDA_SOURCES))
def test_cuda_source_compiles_with_nvcc(source, tmp_path):
    src = tmp_path / source
    src.write_text(_cuda.kernel_source(source))
    base = [NVCC, "-std=c++17", "-DFASTCONV_INSTANTIATE"]
    for arch in ("sm_80", "sm_90"):
        obj = tmp_path / f"{src.stem}.{arch}.o"
        res = subprocess.run(base + ["-c", f"-arch={arch}", str(src), "-o", str(obj)],
                             capture_output=True, text=True)
        assert res.returncode == 0, f"nvcc {arch} failed on {source}:\n{res.stderr}"
        assert obj.stat().st_size > 0
    # The instantiations really produce device code: one PTX entry per
    # kernel template and element type.
    ptx = tmp_path / f"{src.stem}.ptx"
    res = subprocess.run(base + ["-ptx", "-arch=sm_90", str(src), "-o", str(ptx)],
                         capture_output=True, text=True)
    assert res.returncode == 0, f"nvcc -ptx failed on {source}:\n{res.stderr}"
    entries = re.findall(r"\.entry\s+(\S+?)\(", ptx.read_text())
    for kernel in _cuda.CUDA_SOURCES[source]:
        for code in ("f", "d"):  # float, double in the mangled template arguments
            # the element type, then the end of the template arguments or
            # further (integer literal) ones
            mangled = re.compile(f"{len(kernel)}{kernel}I{code}[EL]")
            assert any(mangled.search(e) for e in entries), (kernel, code, entries)


# --------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------
# nd, (N, C_in, C_out, groups, spatial, kernel), keyword arguments
CASES = [
    (1, (2, 3, 4, 1, (40,), (7,)), dict(padding=3)),
    (1, (1, 4, 4, 4, (33,), (5,)), dict(stride=3, dilation=2, groups=4)),
    (1, (2, 2, 2, 1, (25,), (4,)), dict(padding="same", padding_mode="circular")),
    (2, (2, 4, 6, 2, (17, 15), (5, 3)), dict(padding=(2, 1))),
    (2, (1, 3, 5, 1, (20, 18), (4, 4)), dict(stride=2, padding=((1, 3), (0, 2)))),
    (2, (2, 6, 6, 6, (14, 16), (3, 3)), dict(dilation=(2, 3), padding=2, groups=6)),
    (2, (1, 2, 3, 1, (19, 21), (7, 5)), dict(padding="same", padding_mode="reflect")),
    (2, (1, 2, 2, 1, (12, 12), (3, 3)),
     dict(padding=1, padding_mode="replicate", stride=(1, 2))),
    (2, (3, 1, 1, 1, (9, 40), (9, 11)), dict(padding="valid")),
    (2, (2, 16, 32, 1, (12, 12), (3, 3)), dict(padding=1)),
    (3, (2, 2, 4, 2, (7, 8, 9), (3, 2, 3)), dict(padding=1, stride=(1, 2, 1))),
    (3, (1, 3, 2, 1, (6, 6, 6), (3, 3, 3)),
     dict(padding=2, dilation=2, padding_mode="circular")),
]
DTYPES = (np.float32, np.float64)


def _case(nd, shape, kw, dtype, bias, seed=0):
    n, cin, cout, groups, spatial, ksize = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin) + spatial).astype(dtype)
    w = rng.standard_normal((cout, cin // groups) + ksize).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b, dict(kw, groups=groups)


def _check(got, x, w, b, nd, kw, algorithm, ref, context):
    """`got` (a CuPy array) against the oracle: elementwise bounds for the
    direct and GEMM paths, the documented normwise bound for FFT."""
    import cupy

    assert isinstance(got, cupy.ndarray), context
    host = cupy.asnumpy(got)
    exp = ref.expect(x, w, b, nd=nd, **kw)
    if algorithm in ("direct", "im2col"):
        ref.assert_matches(host, exp, context)
        return
    assert host.shape == exp.value.shape and host.dtype == exp.dtype, context
    scale = np.abs(exp.value).max()
    err = np.abs(host.astype(np.float64) - exp.value).max()
    assert err <= FFT_NORMWISE_BOUND[exp.dtype] * scale, f"{context}: err {err:.3g}"


@pytest.mark.parametrize("algorithm", ("direct", "im2col", "fft", "auto"))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd,shape,kw", CASES)
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_cupy_matches_oracle(cp, nd, shape, kw, dtype, bias, algorithm, ref):
    x, w, b, kw = _case(nd, shape, kw, dtype, bias)
    got = FUNCS[nd](cp.asarray(x), cp.asarray(w), None if b is None else cp.asarray(b),
                    algorithm=algorithm, **kw)
    _check(got, x, w, b, nd, kw, algorithm, ref, f"{algorithm} {nd}d {kw} {np.dtype(dtype)}")


@pytest.mark.parametrize("algorithm", ("direct", "im2col", "fft"))
def test_cupy_out(cp, algorithm, ref):
    x, w, b, kw = _case(2, (2, 4, 6, 2, (11, 10), (3, 3)), dict(padding=1), np.float32, True)
    xd, wd, bd = cp.asarray(x), cp.asarray(w), cp.asarray(b)
    out = cp.full((2, 6, 11, 10), cp.nan, dtype=cp.float32)
    got = fastconv.conv2d(xd, wd, bd, algorithm=algorithm, out=out, **kw)
    assert got is out
    _check(out, x, w, b, 2, kw, algorithm, ref, "out")
    # a non-contiguous out
    big = cp.zeros((2, 6, 11, 20), dtype=cp.float32)
    view = big[..., ::2]
    got = fastconv.conv2d(xd, wd, bd, algorithm=algorithm, out=view, **kw)
    assert got is view
    _check(view, x, w, b, 2, kw, algorithm, ref, "strided out")
    assert not cp.asnumpy(big[..., 1::2]).any()
    # out of another namespace
    with pytest.raises(TypeError, match="namespace"):
        fastconv.conv2d(xd, wd, bd, out=np.empty((2, 6, 11, 10), np.float32), **kw)


def test_cupy_forms_and_promotion(cp, ref):
    rng = np.random.default_rng(1)
    img = rng.standard_normal((20, 17)).astype(np.float32)
    k = rng.standard_normal((5, 3))
    got = fastconv.conv2d(cp.asarray(img), cp.asarray(k), padding="same")
    assert got.shape == (20, 17) and got.dtype == np.float64
    _check(got, img, k, None, 2, dict(padding="same"), "direct", ref, "plain")
    x = rng.standard_normal((3, 9, 8)).astype(np.float64)
    w = rng.standard_normal((4, 3, 2, 2))
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), algorithm="im2col")
    assert got.shape == (4, 8, 7)
    _check(got, x, w, None, 2, {}, "im2col", ref, "unbatched")
    # non-contiguous input
    xt = rng.standard_normal((1, 2, 12, 14)).astype(np.float32)
    got = fastconv.conv2d(cp.asarray(xt)[..., ::-1, ::2], cp.asarray(w[:, :2]))
    _check(got, xt[..., ::-1, ::2], w[:, :2], None, 2, {}, "direct", ref, "strided input")


def test_cupy_small_tiles_and_global_weights(cp, ref, monkeypatch):
    x, w, b, kw = _case(2, (3, 4, 6, 2, (13, 11), (3, 3)), dict(padding=1, stride=(2, 1)),
                        np.float64, True)
    args = (cp.asarray(x), cp.asarray(w), cp.asarray(b))
    monkeypatch.setattr(_cuda, "IM2COL_TILE_BYTES", 1000)  # many im2col tiles
    _check(fastconv.conv2d(*args, algorithm="im2col", **kw), x, w, b, 2, kw, "im2col", ref,
           "small tiles")
    monkeypatch.setattr(_cuda, "DIRECT_SHARED_BYTES", 0)  # filters read from global memory
    _check(fastconv.conv2d(*args, algorithm="direct", **kw), x, w, b, 2, kw, "direct", ref,
           "global weights")


def test_cupy_runs_on_the_current_stream(cp, ref):
    x, w, b, kw = _case(2, (2, 8, 8, 1, (32, 32), (3, 3)), dict(padding=1), np.float32, True)
    for algorithm in ("direct", "im2col", "fft"):
        stream = cp.cuda.Stream(non_blocking=True)
        with stream:
            got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b),
                                  algorithm=algorithm, **kw)
        stream.synchronize()
        _check(got, x, w, b, 2, kw, algorithm, ref, f"stream {algorithm}")


def test_cupy_errors(cp):
    x = cp.ones((1, 2, 8, 8), dtype=cp.float32)
    w = cp.ones((3, 2, 3, 3), dtype=cp.float32)
    with pytest.raises(TypeError, match="different namespaces"):
        fastconv.conv2d(x, np.ones((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="not available for cupy arrays"):
        fastconv.conv2d(x, w, algorithm="separable")
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv2d(x.astype(cp.int32), w)
    # the adjoint side serves CuPy arrays too (tests/test_cuda_adjoint.py),
    # with the same dtype errors
    y = fastconv.conv_transpose2d(x, cp.ones((2, 3, 3, 3), dtype=cp.float32))
    assert isinstance(y, cp.ndarray) and y.shape == (1, 3, 10, 10)
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv_transpose2d(x.astype(cp.int32), cp.ones((2, 3, 3, 3), dtype=cp.float32))


def test_cupy_auto_avoids_fft_on_nonfinite_data(cp):
    from fastconv._validation import plan_conv

    backend = _backends.backend_for(cp.ones(1))
    x = cp.ones((1, 1, 300, 300))
    w = cp.ones((1, 1, 41, 41))
    problem = plan_conv(2, x, w, None, 1, 0, 1, 1, "zeros")
    x[0, 0, 5, 5] = cp.nan
    assert backend.auto_algorithm(problem, x, w) in ("direct", "im2col")
    got = fastconv.conv2d(x, w)
    nan = cp.asnumpy(cp.isnan(got))
    assert nan[0, 0, 0, 0] and not nan[0, 0, 100, 100]


def test_cupy_kernels_compile_once_per_device(cp):
    x = cp.ones((1, 1, 6, 6), dtype=cp.float32)
    fastconv.conv2d(x, cp.ones((1, 1, 3, 3), dtype=cp.float32), algorithm="direct")
    before = _cuda._module.cache_info()
    fastconv.conv2d(x, cp.ones((1, 1, 3, 3), dtype=cp.float32), algorithm="direct")
    after = _cuda._module.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


# The tiled 2-D direct kernel (tiled.cu): filter sizes, channel blocks that
# do not divide the output channels, strides, dilations, tiny and odd
# outputs, and grids whose z extent is capped (the grid-stride loop).
# (N, C_in, C_out, groups, spatial, kernel), keyword arguments
TILED_CASES = [
    ((1, 1, 1, 1, (67, 45), (7, 7)), dict(padding=3)),
    ((2, 3, 6, 1, (33, 40), (3, 3)), dict(padding=1)),            # Og=6, OCB=4: a partial block
    ((1, 3, 8, 1, (45, 37), (7, 7)), dict(stride=2, padding=3)),  # conv1-like, strided
    ((2, 8, 8, 8, (20, 19), (3, 3)), dict(padding=1, groups=8)),  # depthwise
    ((1, 4, 4, 2, (30, 31), (5, 3)), dict(dilation=(2, 1), padding=(4, 1))),
    ((1, 2, 5, 1, (16, 18), (2, 4)), dict(dilation=(1, 3), stride=(1, 2))),
    ((3, 2, 2, 1, (5, 7), (1, 1)), {}),
    ((1, 1, 3, 1, (7, 7), (8, 8)), dict(padding=4)),
    ((2, 4, 4, 1, (9, 70), (3, 3)), dict(stride=(3, 1), padding=(0, 1))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,kw", TILED_CASES)
@pytest.mark.parametrize("grid_z", [None, 2])
def test_cupy_tiled_direct(cp, shape, kw, dtype, grid_z, ref, monkeypatch):
    x, w, b, kw = _case(2, shape, kw, dtype, bias=True)
    calls = []
    real = _cuda.CuPyBackend._direct_tiled

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(_cuda.CuPyBackend, "_direct_tiled", staticmethod(spy))
    if grid_z is not None:
        monkeypatch.setattr(_cuda, "MAX_GRID_Y", grid_z)
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm="direct", **kw)
    taps = w.shape[2] * w.shape[3]
    if taps <= _cuda.TILED_FILTER_REGS[np.dtype(dtype)]:
        assert len(calls) == 1, "the tiled kernel did not run"
        if grid_z is not None:
            assert calls[0].grid[2] <= grid_z
    else:
        assert not calls
    _check(got, x, w, b, 2, kw, "direct", ref, f"tiled {shape} {kw} {np.dtype(dtype)}")


def test_cupy_untiled_direct_on_2d(cp, ref, monkeypatch):
    """The one-thread-per-output kernel still serves 2-D problems the tiled
    one declines (here: a filter budget of zero)."""
    monkeypatch.setattr(_cuda, "TILED_FILTER_REGS",
                        {np.dtype(np.float32): 0, np.dtype(np.float64): 0})
    x, w, b, kw = _case(2, (2, 3, 4, 1, (15, 13), (3, 3)), dict(padding=1), np.float32, True)
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm="direct", **kw)
    _check(got, x, w, b, 2, kw, "direct", ref, "untiled")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cupy_im2col_tiles_and_pointwise(cp, dtype, ref, monkeypatch):
    # tiles of 16 output positions of all 5 images: 72 positions, 5 tiles
    x, w, b, kw = _case(2, (5, 4, 6, 2, (9, 7), (3, 2)), dict(padding=1), dtype, True)
    per_col = 2 * (2 * 3 * 2) * 5 * np.dtype(dtype).itemsize  # G * K * N * itemsize
    monkeypatch.setattr(_cuda, "IM2COL_TILE_BYTES", 16 * per_col)
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm="im2col", **kw)
    _check(got, x, w, b, 2, kw, "im2col", ref, "tiles")
    # rows beyond the grid's y extent (the kernel's grid-stride loop)
    monkeypatch.setattr(_cuda, "MAX_GRID_Y", 7)
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm="im2col", **kw)
    _check(got, x, w, b, 2, kw, "im2col", ref, "capped grid")
    # 1x1 kernels at stride 1 without padding skip im2col (groups too)
    for groups, kw in ((1, {}), (2, {}), (2, dict(dilation=3))):
        x, w, b, kw = _case(2, (3, 4, 6, groups, (8, 5), (1, 1)), kw, dtype, True)
        got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b),
                              algorithm="im2col", **kw)
        _check(got, x, w, b, 2, kw, "im2col", ref, f"pointwise groups={groups}")
    # a 1x1 kernel with padding or stride still goes through im2col
    for kw in (dict(padding=1), dict(stride=2)):
        x, w, b, kw = _case(2, (2, 3, 4, 1, (6, 7), (1, 1)), kw, dtype, False)
        got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), algorithm="im2col", **kw)
        _check(got, x, w, b, 2, kw, "im2col", ref, f"1x1 {kw}")


HALF_CASES = [
    (2, (2, 4, 6, 2, (17, 15), (3, 3)), dict(padding=1)),
    (2, (1, 3, 4, 1, (20, 18), (7, 7)), dict(stride=2, padding=3)),
    (1, (2, 3, 4, 1, (40,), (5,)), dict(padding="same", padding_mode="reflect")),
    (3, (1, 2, 3, 1, (6, 7, 5), (3, 3, 3)), dict(padding=1)),
]


@pytest.mark.parametrize("algorithm", ("direct", "im2col", "fft", "auto"))
@pytest.mark.parametrize("nd,shape,kw", HALF_CASES)
def test_cupy_float16_accumulates_in_float32(cp, nd, shape, kw, algorithm, ref):
    """float16 in, float16 out; each output is the float32-accumulated sum
    rounded once: within half an ulp of float16 of the exact value, plus
    the float32 summation bound (the FFT's normwise bound for "fft")."""
    x, w, b, kw = _case(nd, shape, kw, np.float16, bias=True)
    got = FUNCS[nd](cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm=algorithm, **kw)
    assert got.dtype == cp.float16
    host = cp.asnumpy(got).astype(np.float64)
    exp = ref.expect(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32),
                     nd=nd, **kw)
    assert host.shape == exp.value.shape
    half_ulp = 2.0 ** -11 * np.abs(exp.value)
    if algorithm == "fft":
        accumulation = 2 * FFT_NORMWISE_BOUND[np.dtype(np.float32)] * np.abs(exp.value).max()
    else:
        accumulation = 2.0 * exp.k_terms * np.finfo(np.float32).eps * exp.scale
    err = np.abs(host - exp.value)
    assert (err <= half_ulp + accumulation + 1e-30).all(), (algorithm, kw, err.max())


def test_cupy_float16_mixed_and_errors(cp, ref):
    x, w, _, kw = _case(2, (1, 2, 3, 1, (9, 9), (3, 3)), dict(padding=1), np.float16, False)
    # float16 with float32 promotes to float32, as NumPy's result_type
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w.astype(np.float32)), **kw)
    assert got.dtype == cp.float32
    _check(got, x.astype(np.float32), w.astype(np.float32), None, 2, kw, "direct", ref,
           "float16 x float32")
    # out= must be float16 for a float16 result
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv2d(cp.asarray(x), cp.asarray(w), out=cp.empty((1, 3, 9, 9), cp.float32),
                        **kw)
    # float16 stays refused on the CPU
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv2d(x, w, **kw)


WINOGRAD_CASES = [
    ((2, 4, 6, 2, (17, 15), (3, 3)), dict(padding=1)),
    ((1, 3, 5, 1, (9, 11), (3, 3)), dict(padding="same", padding_mode="reflect")),
    ((3, 8, 8, 8, (12, 13), (3, 3)), dict(padding=(2, 0))),
    ((1, 16, 32, 1, (7, 7), (3, 3)), dict(padding=1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,kw", WINOGRAD_CASES)
def test_cupy_winograd_through_conv2d(cp, shape, kw, dtype, ref):
    """algorithm="winograd" routed by the backend (the kernels themselves:
    tests/test_cuda_winograd.py), within the CPU path's normwise bound."""
    from fastconv._winograd import ERROR_BOUND

    x, w, b, kw = _case(2, shape, kw, dtype, bias=True)
    got = fastconv.conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm="winograd",
                          **kw)
    exp = ref.expect(x, w, b, nd=2, **kw)
    host = cp.asnumpy(got)
    assert host.shape == exp.value.shape and host.dtype == exp.dtype
    err = np.abs(host.astype(np.float64) - exp.value).max()
    assert err <= ERROR_BOUND[np.dtype(dtype)] * np.abs(exp.value).max(), err
    # float16 in, computed in float32
    got16 = fastconv.conv2d(cp.asarray(x.astype(np.float16)), cp.asarray(w.astype(np.float16)),
                            algorithm="winograd", **kw)
    assert got16.dtype == cp.float16


def test_cupy_winograd_refusals_and_auto(cp):
    x = cp.ones((1, 2, 9, 9), dtype=cp.float32)
    with pytest.raises(ValueError, match="3x3 kernel"):
        fastconv.conv2d(x, cp.ones((2, 2, 5, 5), dtype=cp.float32), algorithm="winograd")
    with pytest.raises(ValueError, match="stride 1"):
        fastconv.conv2d(x, cp.ones((2, 2, 3, 3), dtype=cp.float32), stride=2,
                        algorithm="winograd")
    # "auto" never runs a tile-mixing path on data holding NaN
    from fastconv._validation import plan_conv

    backend = _backends.backend_for(x)
    xs = cp.ones((32, 64, 56, 56), dtype=cp.float32)
    ws = cp.ones((64, 64, 3, 3), dtype=cp.float32)
    problem = plan_conv(2, xs, ws, None, 1, 1, 1, 1, "zeros")
    assert backend.choose_algorithm(problem) == "winograd"
    xs[0, 0, 3, 3] = cp.nan
    assert backend.auto_algorithm(problem, xs, ws) not in backend.finite_only


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd,shape,kw", [CASES[0], CASES[4], CASES[9], CASES[10]])
def test_cupy_sparse_weights(cp, nd, shape, kw, dtype, ref):
    """algorithm="sparse": pruned weights by cuSPARSE, against the oracle."""
    x, w, b, kw = _case(nd, shape, kw, dtype, bias=True)
    w[np.random.default_rng(4).random(w.shape) < 0.8] = 0
    got = FUNCS[nd](cp.asarray(x), cp.asarray(w), cp.asarray(b), algorithm="sparse", **kw)
    _check(got, x, w, b, nd, kw, "direct", ref, f"sparse {nd}d {kw}")
    # "auto" never picks it: its GPU rate is not measured
    from fastconv._validation import plan_conv

    problem = plan_conv(nd, x, w, b, 1, 0, 1, kw["groups"], "zeros")
    assert "sparse" not in _backends.backend_for(cp.asarray(x)).estimate(problem)
