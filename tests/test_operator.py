"""The linear-operator view: fastconv.conv_matrix and fastconv.ConvOperator.

Oracles, all independent of the code under test:

* the dense matrix of the convolution built column by column from the
  ``ref.conv`` oracle of conftest.py (``np.pad`` + ``sliding_window_view`` +
  ``einsum``, in float64) applied to the unit vectors of the input space;
* ``fastconv.conv{1,2,3}d`` on random inputs (matvec);
* the matrix's transpose (rmatvec) and the dot-product test
  ``<A x, y> == <x, A^T y>``;
* ``np.pad`` for the padding adjoints; the DFT for circulant matrices;
* ``scipy.signal.correlate`` for one-channel images.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.signal

import fastconv
from fastconv._operator import SPARSE_FORMATS, pad_adjoint

MODES = ("zeros", "reflect", "replicate", "circular")
DTYPES = (np.float32, np.float64)

# name -> (input_shape, weight_shape, kwargs) per spatial rank; every config is
# valid for every padding mode (reflect pads < size, circular pads <= size).
CONFIGS = {
    1: {
        "s1-p1": ((3, 7), (4, 3, 3), dict(padding=1)),
        "s2-g2-pairs": ((4, 9), (6, 2, 3), dict(stride=2, padding=((1, 2),), groups=2)),
        "d2-same": ((2, 8), (3, 2, 4), dict(dilation=2, padding="same")),
        "batched-dw-s3d2": ((2, 3, 10), (3, 1, 3), dict(stride=3, dilation=2, padding=2,
                                                        groups=3)),
        "plain-valid": ((9,), (4,), dict(padding="valid")),
    },
    2: {
        "s1-p1": ((2, 5, 6), (3, 2, 3, 3), dict(padding=1)),
        "s2-g2-pairs": ((4, 6, 5), (2, 2, 3, 2), dict(stride=(2, 1), padding=((2, 1), (0, 1)),
                                                      groups=2)),
        "d2-same": ((2, 6, 7), (2, 2, 2, 3), dict(dilation=(2, 1), padding="same")),
        "batched-dw-s2d2": ((2, 2, 7, 6), (4, 1, 3, 2), dict(stride=2, dilation=(1, 2),
                                                             padding=(1, 2), groups=2)),
        "plain-same": ((6, 7), (3, 4), dict(padding="same")),
    },
    3: {
        "s1-p1": ((2, 4, 4, 5), (2, 2, 3, 2, 3), dict(padding=1)),
        "s2-g2-pairs": ((2, 5, 4, 4), (2, 1, 2, 3, 2), dict(stride=(2, 1, 2),
                                                            padding=((1, 0), (1, 1), (0, 2)),
                                                            groups=2)),
        "d2-same": ((1, 5, 4, 5), (2, 1, 2, 2, 3), dict(dilation=(2, 1, 1), padding="same")),
        "batched-s1d2": ((2, 2, 4, 5, 4), (2, 2, 1, 2, 2), dict(dilation=2, padding=1)),
    },
}
CASES = [(nd, name) for nd in CONFIGS for name in CONFIGS[nd]]


def _case(nd, name, dtype, rng):
    input_shape, wshape, kw = CONFIGS[nd][name]
    w = rng.standard_normal(wshape).astype(dtype)
    return input_shape, w, kw


def _nn_form(input_shape, w, nd):
    """(batched input shape, (C_out, C_in/g, *k) weight) of any accepted form."""
    if w.ndim == nd:
        return (1, 1) + tuple(input_shape), w[None, None]
    if len(input_shape) == nd + 1:
        return (1,) + tuple(input_shape), w
    return tuple(input_shape), w


def dense_oracle(ref, w, input_shape, nd, **kw):
    """The dense matrix of the convolution: ref.conv of every unit vector."""
    xs, wb = _nn_form(input_shape, w, nd)
    n_in = math.prod(input_shape)
    basis = np.eye(n_in).reshape((n_in * xs[0],) + xs[1:])
    cols = ref.conv(basis, wb.astype(np.float64), nd=nd, **kw)
    return cols.reshape(n_in, -1).T


def _conv(nd):
    return getattr(fastconv, f"conv{nd}d")


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-6


# --------------------------------------------------------------------------
# conv_matrix
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nd, name", CASES)
def test_conv_matrix_equals_dense_oracle(ref, nd, name, mode, dtype):
    rng = np.random.default_rng([nd, len(name), MODES.index(mode)])
    input_shape, w, kw = _case(nd, name, dtype, rng)
    kw = dict(kw, padding_mode=mode)
    a = fastconv.conv_matrix(w, input_shape, **kw)
    assert isinstance(a, sp.csr_array)
    assert a.dtype == dtype
    dense = dense_oracle(ref, w, input_shape, nd, **kw)
    assert a.shape == dense.shape
    scale = np.abs(w).max()
    np.testing.assert_allclose(a.toarray(), dense, rtol=0, atol=_tol(dtype) * scale * 4)
    # no stored entry where the oracle has none (the pattern is the taps)
    rows, cols = a.nonzero()
    assert np.all(dense[rows, cols] != 0) and a.nnz == np.count_nonzero(dense)

    # A @ x.ravel() == conv(x).ravel(), checked against fastconv and the oracle
    x = rng.standard_normal(input_shape).astype(dtype)
    y = _conv(nd)(x, w, **kw)
    got = a @ x.ravel()
    assert got.dtype == dtype
    exp = ref.expect(x, w, nd=nd, **kw)
    ref.assert_matches(got.reshape(y.shape), exp, f"conv_matrix @ x, {nd}d {name} {mode}")
    ref.assert_matches(y, exp, f"conv{nd}d, {nd}d {name} {mode}")


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_conv_matrix_formats(fmt):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 2, 3, 3))
    kw = dict(padding=1, padding_mode="replicate", stride=(1, 2))
    base = fastconv.conv_matrix(w, (2, 5, 6), **kw)
    a = fastconv.conv_matrix(w, (2, 5, 6), format=fmt, **kw)
    assert a.format == fmt and isinstance(a, sp.sparray)
    # duplicates (replicate borders) may be summed in another order
    np.testing.assert_allclose(a.toarray(), base.toarray(), rtol=1e-15, atol=0)
    if fmt == "coo":  # duplicates (replicate borders) summed
        assert a.has_canonical_format and a.nnz == base.nnz


def test_conv_matrix_stores_no_zeros():
    lap = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    for fmt in ("csr", "coo", "csc"):
        a = fastconv.conv_matrix(lap, (6, 7), padding="same", padding_mode="circular",
                                 format=fmt)
        assert a.nnz == 5 * 42
    # reflect: taps k[0] and k[2] both land on x[1] for output 0 and cancel
    a = fastconv.conv_matrix(np.array([1.0, 5.0, -1.0]), (4,), padding=1,
                             padding_mode="reflect")
    np.testing.assert_array_equal(a.toarray()[0], [5.0, 0.0, 0.0, 0.0])
    assert a[[0], :].nnz == 1


def test_conv_matrix_dtype_argument():
    w = np.arange(9.0).reshape(3, 3)
    a = fastconv.conv_matrix(w, (5, 5), dtype=np.float32)
    assert a.dtype == np.float32
    b = fastconv.conv_matrix(w.astype(np.float32), (5, 5))
    assert b.dtype == np.float32
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    assert fastconv.conv_matrix(w, (5, 5), dtype="float64").dtype == np.float64


def test_zero_padding_is_toeplitz_and_block_toeplitz():
    rng = np.random.default_rng(5)
    k = rng.standard_normal(4)
    t = fastconv.conv_matrix(k, (9,), padding=2).toarray()
    # constant diagonals: T[i, j] == T[i+1, j+1]
    np.testing.assert_array_equal(t[:-1, :-1], t[1:, 1:])
    assert t[0, 0] == k[2] and t[0, 1] == k[3] and t[2, 0] == k[0]
    # 2-D: (H_out x H) blocks of (W_out x W) Toeplitz blocks, block Toeplitz
    k2 = rng.standard_normal((3, 2))
    h, w_ = 5, 6
    a = fastconv.conv_matrix(k2, (h, w_), padding=1).toarray()
    oh, ow = h, w_ + 1
    blocks = a.reshape(oh, ow, h, w_).transpose(0, 2, 1, 3)  # (block row, block col, ow, w)
    np.testing.assert_array_equal(blocks[:-1, :-1], blocks[1:, 1:])
    for b in blocks.reshape(-1, ow, w_):
        np.testing.assert_array_equal(b[:-1, :-1], b[1:, 1:])


@pytest.mark.parametrize("k, dilation", [(3, 1), (4, 1), (3, 2)])
def test_circular_1d_is_circulant_and_dft_diagonal(k, dilation):
    rng = np.random.default_rng(k + dilation)
    n = 11
    kern = rng.standard_normal(k)
    c = fastconv.conv_matrix(kern, (n,), padding="same", dilation=dilation,
                             padding_mode="circular").toarray()
    assert c.shape == (n, n)
    # circulant: each row is the previous one cyclically shifted right
    np.testing.assert_array_equal(np.roll(c, 1, axis=(0, 1)), c)
    # diagonalised by the DFT, eigenvalues = DFT of the first column
    f = np.fft.fft(np.eye(n), axis=0)
    d = f @ c @ np.linalg.inv(f)
    lam = np.fft.fft(c[:, 0])
    np.testing.assert_allclose(d, np.diag(lam), atol=1e-12 * n * np.abs(kern).sum())


def test_circular_2d_is_doubly_block_circulant():
    rng = np.random.default_rng(7)
    h, w_ = 5, 6
    kern = rng.standard_normal((3, 4))
    c = fastconv.conv_matrix(kern, (h, w_), padding="same", padding_mode="circular").toarray()
    assert c.shape == (h * w_, h * w_)

    # commutes with the cyclic shifts of the image along each axis
    def shift(axis):
        return np.roll(np.eye(h * w_).reshape(h * w_, h, w_), 1, axis=axis + 1).reshape(
            h * w_, h * w_)

    for axis in (0, 1):
        s = shift(axis)
        np.testing.assert_allclose(c @ s, s @ c, atol=1e-13)
    # blocks: circulant arrangement of circulant blocks
    blocks = c.reshape(h, w_, h, w_).transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(np.roll(blocks, 1, axis=(0, 1)), blocks)
    for b in blocks.reshape(-1, w_, w_):
        np.testing.assert_array_equal(np.roll(b, 1, axis=(0, 1)), b)
    # diagonalised by the 2-D DFT
    f = np.kron(np.fft.fft(np.eye(h)), np.fft.fft(np.eye(w_)))
    d = f @ c @ np.linalg.inv(f)
    np.testing.assert_allclose(d - np.diag(np.diag(d)), 0, atol=1e-11)
    lam = np.fft.fft2(c[:, 0].reshape(h, w_)).ravel()
    np.testing.assert_allclose(np.diag(d), lam, atol=1e-11)


def test_multichannel_circular_commutes_with_spatial_shifts():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((3, 2, 3, 3))
    c = fastconv.conv_matrix(w, (2, 4, 5), padding=1, padding_mode="circular").toarray()
    x = rng.standard_normal((2, 4, 5))
    for axis in (1, 2):
        lhs = (c @ np.roll(x, 1, axis=axis).ravel()).reshape(3, 4, 5)
        rhs = np.roll((c @ x.ravel()).reshape(3, 4, 5), 1, axis=axis)
        np.testing.assert_allclose(lhs, rhs, atol=1e-12)


def test_conv_matrix_against_scipy_signal():
    rng = np.random.default_rng(9)
    img = rng.standard_normal((12, 10))
    k = rng.standard_normal((5, 3))
    a = fastconv.conv_matrix(k, img.shape)  # "valid"
    np.testing.assert_allclose((a @ img.ravel()).reshape(8, 8),
                               scipy.signal.correlate(img, k, mode="valid"), atol=1e-12)
    a = fastconv.conv_matrix(k, img.shape, padding="same")
    np.testing.assert_allclose((a @ img.ravel()).reshape(img.shape),
                               scipy.signal.correlate(img, k, mode="same"), atol=1e-12)


def test_batched_matrix_is_block_diagonal():
    rng = np.random.default_rng(10)
    w = rng.standard_normal((2, 3, 3))
    one = fastconv.conv_matrix(w, (3, 8), padding=1, padding_mode="reflect")
    many = fastconv.conv_matrix(w, (4, 3, 8), padding=1, padding_mode="reflect")
    np.testing.assert_array_equal(many.toarray(), sp.block_diag([one] * 4).toarray())


def test_conv_matrix_empty_batch_and_groups_channels():
    w = np.ones((2, 1, 3))
    a = fastconv.conv_matrix(w, (0, 2, 5), groups=2)
    assert a.shape == (0, 0) and a.nnz == 0


# --------------------------------------------------------------------------
# padding adjoints
# --------------------------------------------------------------------------
NP_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, pads", [
    ((7,), [(2, 3)]),
    ((1, 5), [(4, 0)]),
    ((2, 5, 6), [(1, 3), (4, 2)]),
    ((4, 4, 5), [(0, 3), (2, 2), (3, 1)]),
])
def test_pad_adjoint_dot_product(mode, shape, pads):
    rng = np.random.default_rng(len(shape) + MODES.index(mode))
    nd = len(pads)
    x = rng.standard_normal(shape)
    width = [(0, 0)] * (len(shape) - nd) + [tuple(p) for p in pads]
    px = np.pad(x, width, mode=NP_MODE[mode])
    z = rng.standard_normal(px.shape)
    pz = pad_adjoint(z.copy(), pads, mode)
    assert pz.shape == x.shape
    np.testing.assert_allclose(np.vdot(px, z), np.vdot(x, pz), rtol=1e-12)
    # and exactly the transpose of the padding matrix
    eye = np.eye(x.size).reshape((x.size,) + shape)
    pmat = np.pad(eye, [(0, 0)] + width, mode=NP_MODE[mode]).reshape(x.size, -1)
    np.testing.assert_allclose(pz.ravel(), pmat @ z.ravel(), atol=1e-12)


# --------------------------------------------------------------------------
# ConvOperator
# --------------------------------------------------------------------------
def _operator_case(nd, name, mode, dtype):
    rng = np.random.default_rng([nd, len(name), MODES.index(mode), 1])
    input_shape, w, kw = _case(nd, name, dtype, rng)
    kw = dict(kw, padding_mode=mode)
    op = fastconv.ConvOperator(w, input_shape, **kw)
    mat = fastconv.conv_matrix(w, input_shape, **kw)
    return rng, input_shape, w, kw, op, mat


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nd, name", CASES)
def test_operator_matvec_matmat(nd, name, mode, dtype):
    rng, input_shape, w, kw, op, mat = _operator_case(nd, name, mode, dtype)
    assert op.shape == mat.shape and op.dtype == dtype
    assert op.input_shape == tuple(input_shape)
    x = rng.standard_normal(op.shape[1]).astype(dtype)
    got = op.matvec(x)
    assert got.shape == (op.shape[0],) and got.dtype == dtype
    np.testing.assert_allclose(got, mat @ x, rtol=0,
                               atol=_tol(dtype) * 50 * np.abs(w).max() * np.abs(x).max())
    y = _conv(nd)(x.reshape(input_shape), w, **kw)
    assert op.output_shape == y.shape
    np.testing.assert_array_equal(got, y.ravel())  # the same convolution, bit for bit
    xs = rng.standard_normal((op.shape[1], 3)).astype(dtype)
    np.testing.assert_allclose(op.matmat(xs), mat @ xs, rtol=0,
                               atol=_tol(dtype) * 50 * np.abs(w).max() * np.abs(xs).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nd, name", CASES)
def test_operator_adjoint(nd, name, mode, dtype):
    rng, input_shape, w, kw, op, mat = _operator_case(nd, name, mode, dtype)
    x = rng.standard_normal(op.shape[1]).astype(dtype)
    y = rng.standard_normal(op.shape[0]).astype(dtype)
    aty = op.rmatvec(y)
    assert aty.shape == (op.shape[1],) and aty.dtype == dtype
    tol = _tol(dtype) * 50 * np.abs(w).max() * np.abs(y).max()
    np.testing.assert_allclose(aty, mat.T @ y, rtol=0, atol=tol)
    # dot-product test, in float64 arithmetic on the operator's results
    lhs = np.dot((op @ x).astype(np.float64), y.astype(np.float64))
    rhs = np.dot(x.astype(np.float64), aty.astype(np.float64))
    norm = np.linalg.norm(op @ x) * np.linalg.norm(y) + np.linalg.norm(x) * np.linalg.norm(aty)
    assert abs(lhs - rhs) <= (1e-12 if dtype == np.float64 else 1e-5) * norm
    np.testing.assert_allclose(op.H @ y, aty, rtol=0, atol=0)
    ys = rng.standard_normal((op.shape[0], 2)).astype(dtype)
    np.testing.assert_allclose(op.rmatmat(ys), mat.T @ ys, rtol=0, atol=tol * 2)


def test_operator_matches_dense_adjoint_of_the_oracle(ref):
    # rmatvec against the oracle's dense matrix (not conv_matrix), asymmetric
    # zero padding that output_padding cannot absorb and strided reflect
    rng = np.random.default_rng(11)
    for kw in (dict(padding=((0, 3), (2, 0)), stride=2),
               dict(padding=((1, 2), (2, 1)), stride=(2, 3), padding_mode="reflect",
                    dilation=(1, 2))):
        w = rng.standard_normal((2, 3, 3, 2))
        op = fastconv.ConvOperator(w, (3, 7, 8), **kw)
        dense = dense_oracle(ref, w, (3, 7, 8), 2, **kw)
        y = rng.standard_normal(op.shape[0])
        np.testing.assert_allclose(op.rmatvec(y), dense.T @ y, atol=1e-12)


def test_operator_solvers_and_shapes():
    rng = np.random.default_rng(12)
    k = rng.random((3, 3)) + 0.1
    op = fastconv.ConvOperator(k, (8, 9), padding="same", padding_mode="circular")
    assert repr(op) == "<72x72 ConvOperator with dtype=float64>"
    assert isinstance(op, sp.linalg.LinearOperator)
    x = rng.standard_normal((8, 9))
    # column vectors and (N, 1) shapes as LinearOperator promises
    assert (op @ x.ravel()[:, None]).shape == (72, 1)
    np.testing.assert_array_equal(op.tosparse().toarray(),
                                  fastconv.conv_matrix(k, (8, 9), padding="same",
                                                       padding_mode="circular").toarray())
    # complex vectors: real and imaginary parts
    z = x.ravel() + 1j * rng.standard_normal(72)
    np.testing.assert_allclose(op @ z, op.tosparse() @ z, atol=1e-12)
    np.testing.assert_allclose(op.H @ z, op.tosparse().T @ z, atol=1e-12)
    # integer vectors are promoted
    np.testing.assert_allclose(op @ np.arange(72), op.tosparse() @ np.arange(72.0))
    # float32 operator
    op32 = fastconv.ConvOperator(k.astype(np.float32), (8, 9), padding=1)
    assert op32.dtype == np.float32
    assert (op32 @ x.ravel().astype(np.float32)).dtype == np.float32
    # a float64 vector on a float32 operator: computed in float64, as conv2d promotes
    got = op32 @ x.ravel()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, fastconv.conv2d(x, k.astype(np.float32), padding=1).ravel(),
                               rtol=1e-12)


def test_operator_keeps_a_copy_of_the_weight():
    k = np.ones((3, 3))
    op = fastconv.ConvOperator(k, (5, 5))
    x = np.ones(25)
    before = op @ x
    k[:] = 2.0
    np.testing.assert_array_equal(op @ x, before)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("make", [fastconv.conv_matrix, fastconv.ConvOperator])
@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((np.ones((3, 3), np.int64), (5, 5)), {}, TypeError, "weight"),
    (([[1, 2], [3, 4]], (5, 5)), {}, TypeError, "weight"),
    ((np.ones((3, 3)), 25), {}, TypeError, "input_shape"),
    ((np.ones((3, 3)), (5.0, 5)), {}, TypeError, "input_shape"),
    ((np.ones((3, 3)), (5, True)), {}, TypeError, "input_shape"),
    ((np.ones((3, 3)), (5, -5)), {}, ValueError, "input_shape"),
    ((np.ones((3, 3)), (1, 5, 5)), {}, ValueError, "input_shape"),
    ((np.ones((2, 3, 3, 3)), (5, 5)), {}, ValueError, "input_shape"),
    ((np.ones((2, 3, 3, 3)), (4, 5, 5)), {}, ValueError, "input channels"),
    ((np.ones((3, 2, 3, 3)), (4, 5, 5)), dict(groups=2), ValueError, "groups"),
    ((np.ones((2, 2, 3, 3)), (4, 5, 5)), dict(groups=0), ValueError, "groups"),
    ((np.ones((3, 3)), (5, 5)), dict(stride=0), ValueError, "stride"),
    ((np.ones((3, 3)), (5, 5)), dict(dilation=1.5), TypeError, "dilation"),
    ((np.ones((3, 3)), (5, 5)), dict(padding=-1), ValueError, "padding"),
    ((np.ones((3, 3)), (5, 5)), dict(padding="full"), ValueError, "padding"),
    ((np.ones((3, 3)), (5, 5)), dict(padding="same", stride=2), ValueError, "same"),
    ((np.ones((3, 3)), (5, 5)), dict(padding_mode="wrap"), ValueError, "padding_mode"),
    ((np.ones((3, 3)), (5, 5)), dict(padding=5, padding_mode="reflect"), ValueError,
     "reflect"),
    ((np.ones((7, 7)), (5, 5)), {}, ValueError, "larger than the padded input"),
    ((np.ones((3, 3, 3, 3, 3, 3)), (3, 5, 5)), {}, ValueError, "weight"),
    ((np.ones(()), (5,)), {}, ValueError, "weight"),
])
def test_bad_arguments(make, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make(*args, **kwargs)


def test_conv_matrix_bad_format_and_dtype():
    with pytest.raises(ValueError, match="format"):
        fastconv.conv_matrix(np.ones((3, 3)), (5, 5), format="dense")
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv_matrix(np.ones((3, 3)), (5, 5), dtype=np.int32)
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv_matrix(np.ones((3, 3)), (5, 5), dtype="no such dtype")


def test_conv_matrix_refuses_huge_matrices_before_allocating(monkeypatch):
    # 64 -> 64 channels, 3x3, 2048x2048: 2.4e10 entries, refused at once
    w = np.broadcast_to(np.ones((), np.float32), (64, 64, 3, 3))
    with pytest.raises(ValueError, match="MAX_COO_BYTES"):
        fastconv.conv_matrix(w, (64, 2048, 2048), padding=1)
    # and the bound is the documented constant
    import fastconv._operator as mod
    monkeypatch.setattr(mod, "MAX_COO_BYTES", 1000)
    with pytest.raises(ValueError, match="ConvOperator"):
        fastconv.conv_matrix(np.ones((3, 3)), (10, 10))
    monkeypatch.setattr(mod, "MAX_COO_BYTES", 576 * (8 + 4 + 4))  # 8x8 outputs x 9 taps
    assert fastconv.conv_matrix(np.ones((3, 3)), (10, 10)).nnz == 576


def test_operator_bad_workers_and_vectors():
    with pytest.raises(ValueError, match="workers"):
        fastconv.ConvOperator(np.ones((3, 3)), (5, 5), workers=0)
    with pytest.raises(TypeError, match="workers"):
        fastconv.ConvOperator(np.ones((3, 3)), (5, 5), workers=1.5)
    op = fastconv.ConvOperator(np.ones((3, 3)), (5, 5))
    with pytest.raises(ValueError):
        op.matvec(np.ones(24))
    with pytest.raises(ValueError):
        op.rmatvec(np.ones(25))
    with pytest.raises(TypeError, match="dtype"):
        op.matvec(np.array(["a"] * 25))


# --------------------------------------------------------------------------
# the README's deblurring example, on a crop and with few iterations
# --------------------------------------------------------------------------
def test_readme_deblur_example():
    data = pytest.importorskip("skimage.data")
    from scipy.sparse.linalg import LinearOperator, cg, lsqr

    truth = data.camera()[64:192, 192:320] / 255.0         # 128x128 crop: the cameraman
    psf = np.full((1, 11), 1 / 11)                          # 11-pixel horizontal motion blur
    A = fastconv.ConvOperator(psf, truth.shape, padding="same", padding_mode="reflect")
    rng = np.random.default_rng(0)
    b = A @ truth.ravel() + 0.002 * rng.standard_normal(truth.size)

    def psnr(img):
        return 10 * np.log10(1.0 / np.mean((img.reshape(truth.shape) - truth) ** 2))

    residuals, gains = [np.linalg.norm(b)], []
    for iters in (5, 20):
        x, istop, itn, r1norm = lsqr(A, b, damp=0.05, iter_lim=iters)[:4]
        assert itn == iters
        residuals.append(np.linalg.norm(b - A @ x))
        gains.append(psnr(x) - psnr(b))
    assert residuals[0] > residuals[1] > residuals[2]
    assert residuals[2] < 0.01 * residuals[0]
    assert 0 < gains[0] < gains[1] and gains[1] > 3.0  # dB over the blurred image

    # CG on the damped normal equations (A^T A + damp^2 I) x = A^T b, through A.H
    normal = A.H @ A + LinearOperator(A.shape, matvec=lambda v: 0.05**2 * v, dtype=A.dtype)
    x_cg, info = cg(normal, A.H @ b, maxiter=20)
    assert psnr(x_cg) - psnr(b) > 3.0
    assert np.linalg.norm(b - A @ x_cg) < 0.01 * residuals[0]
