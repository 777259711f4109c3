"""The CuPy backend's kernels and launches without a GPU (tests/cuda_host.py).

The backend (fastconv._cuda, fastconv._cuda_adjoint) runs with NumPy
standing in for CuPy and each CUDA kernel compiled by ``g++`` as host code,
every block and thread of its grids run in turn; the public functions are
called with the backend swapped in for the NumPy one.  This checks on the
CPU machine what CI can check of the GPU side: the launch configurations,
the tilings (tiled direct kernel, im2col tiles, col2im reach boxes), the
kernels' index arithmetic and the size of every kernel argument.  The
numbers are compared with independent oracles, never with fastconv:

- convolutions: conftest's NumPy oracle (``ref.expect``; for "winograd" its
  normwise bound); "sparse" multiplies with scipy.sparse in place of
  cupyx.scipy.sparse;
- transposed convolution, weight gradient, col2im: the adjoint identities
  ``<A x, z> = <x, A^T z>`` with ``A`` the oracle's convolution (or the
  sliding-window unfold), checked on random vectors.

GPU timing, streams and cuBLAS itself are not covered (tests/test_cuda*.py
check those on a GPU).  Skips where ``g++`` is missing.
"""
from __future__ import annotations

import pathlib

import cuda_host
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastconv
import fastconv.grad as G
from fastconv import _cuda

CUDA_DIR = pathlib.Path(__file__).resolve().parents[1] / "fastconv" / "_kernels" / "cuda"

pytestmark = pytest.mark.skipif(cuda_host.GXX is None, reason="g++ is not on PATH")
CONV = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return cuda_host.HostKernels(CUDA_DIR, tmp_path_factory.mktemp("cuda_host"))


@pytest.fixture
def backend(kernels, monkeypatch):
    """The CuPy backend on NumPy and host kernels, serving every call."""
    return cuda_host.install(monkeypatch, kernels)


def _arrays(shape, dtype, seed, bias=True):
    n, cin, cout, groups, spatial, ksize = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin) + spatial).astype(dtype)
    w = rng.standard_normal((cout, cin // groups) + ksize).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b


# nd, (N, C_in, C_out, groups, spatial, kernel), keyword arguments, the kernel
# expected to run (its name's prefix)
CONV_CASES = [
    (2, (2, 3, 6, 1, (11, 13), (3, 3)), dict(padding=1), "fc_conv2d_tiled"),
    (2, (1, 4, 4, 4, (9, 10), (3, 3)), dict(padding=1, groups=4), "fc_conv2d_tiled"),
    (2, (1, 3, 5, 1, (15, 12), (7, 7)), dict(stride=2, padding=3), "fc_conv2d_tiled"),
    (2, (1, 2, 3, 1, (12, 11), (3, 2)), dict(dilation=(2, 3), padding=(2, 1)),
     "fc_conv2d_tiled"),
    (2, (1, 1, 1, 1, (30, 9), (9, 9)), dict(padding=4), "fc_conv_direct"),
    (1, (2, 2, 3, 1, (70,), (7,)), dict(padding=3), "fc_conv2d_tiled"),
    (3, (1, 2, 2, 2, (5, 6, 7), (3, 3, 3)), dict(padding=1, groups=2), "fc_conv_direct"),
    (2, (1, 2, 3, 1, (8, 9), (3, 3)), dict(padding="same", padding_mode="reflect"),
     "fc_conv2d_tiled"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd,shape,kw,kernel", CONV_CASES)
def test_direct(backend, kernels, ref, nd, shape, kw, kernel, dtype):
    x, w, b = _arrays(shape, dtype, seed=len(kernels.launches))
    kw = dict(kw, groups=shape[3])
    got = CONV[nd](cuda_host.host(x), cuda_host.host(w), cuda_host.host(b),
                   algorithm="direct", **kw)
    if np.dtype(dtype) == np.float64 and shape[5] == (7, 7):
        kernel = "fc_conv_direct"  # beyond the float64 register budget
    assert [name for name, _, _ in kernels.launches] and \
        kernels.launches[0][0].startswith(kernel + "<"), kernels.launches
    ref.assert_matches(np.asarray(got), ref.expect(x, w, b, nd=nd, **kw), f"{kernel} {kw}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,kw", [
    ((3, 4, 6, 2, (9, 7), (3, 2)), dict(padding=1)),
    ((2, 3, 4, 1, (6, 7), (1, 1)), {}),                # pointwise: no im2col
    ((2, 3, 4, 1, (6, 7), (1, 1)), dict(stride=2)),
    ((1, 2, 3, 1, (13, 11), (3, 3)), dict(dilation=2, padding=2, stride=(1, 2))),
])
def test_im2col(backend, kernels, ref, monkeypatch, shape, kw, dtype):
    x, w, b = _arrays(shape, dtype, seed=3)
    kw = dict(kw, groups=shape[3])
    # tiles of 5 output positions
    per_col = shape[3] * (shape[1] // shape[3]) * np.prod(shape[5]) * shape[0] * x.itemsize
    monkeypatch.setattr(_cuda, "IM2COL_TILE_BYTES", int(5 * per_col))
    got = fastconv.conv2d(cuda_host.host(x), cuda_host.host(w), cuda_host.host(b),
                          algorithm="im2col", **kw)
    ref.assert_matches(np.asarray(got), ref.expect(x, w, b, nd=2, **kw), f"im2col {kw}")


def _dot(a, b):
    return float(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def _adjoint_close(lhs, rhs, scale, dtype):
    tol = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}[np.dtype(dtype)]
    assert abs(lhs - rhs) <= tol * scale, (lhs, rhs, scale)


TRANSPOSE_CASES = [
    (2, (2, 4, 6, 2, (5, 6), (3, 3)), dict(stride=2, padding=1, output_padding=1)),
    (2, (1, 3, 4, 1, (4, 5), (4, 4)), dict(stride=2, padding=1)),
    (1, (2, 2, 3, 1, (9,), (5,)), dict(stride=3, padding=2, dilation=2)),
    (3, (1, 2, 2, 1, (3, 4, 3), (2, 3, 2)), dict(stride=(2, 1, 2))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd,shape,kw", TRANSPOSE_CASES)
def test_conv_transpose_gemm_is_the_adjoint(backend, kernels, ref, nd, shape, kw, dtype):
    """GEMM + col2im (fc_col2im): <conv_transpose(x), z> = <x, conv(z)>."""
    n, cin, cout, groups, spatial, ksize = shape
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, cin) + spatial).astype(dtype)
    w = rng.standard_normal((cin, cout // groups) + ksize).astype(dtype)  # (C_in, C_out/G, k)
    fn = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d,
          3: fastconv.conv_transpose3d}[nd]
    y = np.asarray(fn(cuda_host.host(x), cuda_host.host(w), groups=groups,
                      algorithm="im2col", **kw))
    assert any(name.startswith("fc_col2im<") for name, _, _ in kernels.launches)
    conv_kw = {k: v for k, v in kw.items() if k != "output_padding"}
    for seed in range(3):
        z = np.random.default_rng(seed).standard_normal(y.shape)
        az = ref.conv(z, w.astype(np.float64), None, nd=nd, groups=groups, **conv_kw)
        scale = np.abs(y).sum() * np.abs(z).max() + 1.0
        _adjoint_close(_dot(y, z), _dot(x, az), scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_weight_grad_is_the_adjoint(backend, kernels, ref, dtype):
    """conv2d_weight: <dW, V> = <gy, conv(x, V)> for random V."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 9, 8)).astype(dtype)
    gy = rng.standard_normal((2, 6, 5, 4)).astype(dtype)
    kw = dict(stride=2, padding=1, groups=2)
    dw = np.asarray(G.conv2d_weight(cuda_host.host(x), (6, 2, 3, 3), cuda_host.host(gy), **kw))
    assert any(name.startswith("fc_im2col<") for name, _, _ in kernels.launches)
    for seed in range(3):
        v = np.random.default_rng(seed).standard_normal(dw.shape)
        conv = ref.conv(x.astype(np.float64), v, None, nd=2, **kw)
        scale = np.abs(dw).sum() * np.abs(v).max() + 1.0
        _adjoint_close(_dot(dw, v), _dot(gy, conv), scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_im2col_col2im(backend, dtype):
    """im2col against sliding windows; col2im as its adjoint."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    k, stride, padding, dilation = (3, 2), (2, 1), (1, 2), (1, 2)
    cols = np.asarray(fastconv.im2col(cuda_host.host(x), k, stride=stride, padding=padding,
                                      dilation=dilation))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::1, ::1, ::2]
    expected = win.transpose(0, 1, 4, 5, 2, 3).reshape(cols.shape)
    np.testing.assert_array_equal(cols, expected)
    c = rng.standard_normal(cols.shape).astype(dtype)
    folded = np.asarray(fastconv.col2im(cuda_host.host(c), (9, 10), k, stride=stride,
                                        padding=padding, dilation=dilation))
    scale = np.abs(c).sum() * np.abs(x).max()
    _adjoint_close(_dot(folded, x), _dot(c, expected), scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_weights(backend, ref, monkeypatch, dtype):
    """Pruned weights: CSR per group times the im2col tiles."""
    x, w, b = _arrays((2, 4, 6, 2, (9, 8), (3, 3)), dtype, seed=8)
    w[np.random.default_rng(9).random(w.shape) < 0.7] = 0  # 70 % pruned
    monkeypatch.setattr(_cuda, "IM2COL_TILE_BYTES", 4 * 18 * 2 * x.itemsize * 7)
    kw = dict(padding=1, stride=(1, 2), groups=2)
    got = fastconv.conv2d(cuda_host.host(x), cuda_host.host(w), cuda_host.host(b),
                          algorithm="sparse", **kw)
    ref.assert_matches(np.asarray(got), ref.expect(x, w, b, nd=2, **kw), "sparse")
    # a NaN under zero weights only stays out of the result, as on the CPU
    x[0, 0, 4, 4] = np.nan
    w[:, 0] = 0
    got = np.asarray(fastconv.conv2d(cuda_host.host(x), cuda_host.host(w), algorithm="sparse",
                                     **kw))
    assert np.isfinite(got).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_winograd(backend, kernels, ref, dtype):
    from fastconv._winograd import ERROR_BOUND

    x, w, b = _arrays((2, 3, 5, 1, (10, 9), (3, 3)), dtype, seed=10)
    got = np.asarray(fastconv.conv2d(cuda_host.host(x), cuda_host.host(w), cuda_host.host(b),
                                     padding=1, algorithm="winograd"))
    assert any(name.startswith("fc_winograd_output<") for name, _, _ in kernels.launches)
    exp = ref.expect(x, w, b, nd=2, padding=1)
    err = np.abs(got.astype(np.float64) - exp.value).max()
    assert err <= ERROR_BOUND[np.dtype(dtype)] * np.abs(exp.value).max(), err


@pytest.mark.parametrize("algorithm", ("direct", "im2col", "winograd"))
def test_float16_in_float32(backend, ref, algorithm):
    """float16 inputs: float16 result within half an ulp of the float32
    accumulation (plus the path's float32 error)."""
    x, w, b = _arrays((1, 3, 4, 1, (8, 9), (3, 3)), np.float16, seed=11)
    got = fastconv.conv2d(cuda_host.host(x), cuda_host.host(w), cuda_host.host(b), padding=1,
                          algorithm=algorithm)
    assert got.dtype == np.float16
    exp = ref.expect(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), nd=2,
                     padding=1)
    err = np.abs(np.asarray(got, np.float64) - exp.value)
    assert (err <= 2.0 ** -11 * np.abs(exp.value) + 1e-4 * exp.scale).all(), err.max()
