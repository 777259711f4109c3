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
            mangled = f"{len(kernel)}{kernel}I{code}E"
            assert any(mangled in e for e in entries), (kernel, code, entries)


# --------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cp():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install '.[cuda]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old, no device
        pytest.skip(f"CuPy cannot use a GPU here: {type(exc).__name__}: {exc}")
    if count == 0:
        pytest.skip("CuPy sees no CUDA device")
    return cupy


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
        fastconv.conv2d(x, w, algorithm="winograd")
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv2d(x.astype(cp.int32), w)
    with pytest.raises(TypeError, match="CuPy arrays"):
        fastconv.conv_transpose2d(x, cp.ones((2, 3, 3, 3), dtype=cp.float32))


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
