"""fastconv.im2col / col2im against a NumPy loop oracle, the adjoint
identity, and torch.nn.functional.unfold / fold when PyTorch is installed."""
import itertools

import numpy as np
import pytest

import fastconv


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def unfold_reference(x, k, stride=1, padding=0, dilation=1):
    """Explicit loops over windows (float64), batched x."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (k, stride, padding, dilation))
    n, c, h, w = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c * kh * kw, oh * ow))
    for ci, u, v in itertools.product(range(c), range(kh), range(kw)):
        row = (ci * kh + u) * kw + v
        for i, j in itertools.product(range(oh), range(ow)):
            out[:, row, i * ow + j] = xp[:, ci, i * sh + u * dh, j * sw + v * dw]
    return out


CASES = [
    # (H, W), kernel, stride, padding, dilation
    ((6, 7), 3, 1, 0, 1),
    ((6, 7), (2, 3), (2, 1), (1, 0), 1),
    ((8, 5), 3, 2, 1, (2, 1)),
    ((5, 5), 1, 3, 2, 1),
    ((7, 9), (3, 2), 1, 2, 2),
]


@pytest.mark.parametrize("size, k, stride, padding, dilation", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_oracle_and_adjoint(size, k, stride, padding, dilation, dtype):
    rng = np.random.default_rng(sum(size))
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    ref = unfold_reference(x, k, stride, padding, dilation)
    cols = fastconv.im2col(x, k, stride, padding, dilation)
    assert cols.dtype == dtype and cols.shape == ref.shape
    np.testing.assert_array_equal(cols, ref.astype(dtype))
    np.testing.assert_array_equal(fastconv.im2col(x[1], k, stride, padding, dilation), cols[1])
    c = rng.standard_normal(ref.shape).astype(dtype)
    folded = fastconv.col2im(c, size, k, dilation, padding, stride)
    assert folded.shape == x.shape and folded.dtype == dtype
    # <im2col(x), c> == <x, col2im(c)>
    lhs = np.vdot(ref, c.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), folded.astype(np.float64))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert abs(lhs - rhs) <= tol * max(1.0, np.abs(c).sum())
    # fold of unbatched cols is the batched fold's image
    np.testing.assert_array_equal(fastconv.col2im(c[0], size, k, dilation, padding, stride),
                                  folded[0])


def test_inputs_untouched_and_noncontiguous():
    rng = np.random.default_rng(2)
    x = np.asfortranarray(rng.standard_normal((2, 3, 6, 8)))[:, :, ::-1]
    x.flags.writeable = False
    keep = x.copy()
    np.testing.assert_array_equal(fastconv.im2col(x, 3, padding=1),
                                  unfold_reference(np.ascontiguousarray(x), 3, 1, 1))
    np.testing.assert_array_equal(x, keep)
    c = rng.standard_normal((2, 27, 48))[:, :, ::-1]
    c.flags.writeable = False
    keep = c.copy()
    fastconv.col2im(c, (6, 8), 3, padding=1)
    np.testing.assert_array_equal(c, keep)
    assert fastconv.im2col(np.zeros((0, 3, 6, 8)), 3).shape == (0, 27, 24)
    assert fastconv.col2im(np.zeros((0, 27, 24)), (6, 8), 3).shape == (0, 3, 6, 8)


def test_bad_arguments():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(TypeError, match="x has dtype"):
        fastconv.im2col(x.astype(np.int32), 3)
    with pytest.raises(ValueError, match="x must be 4-D"):
        fastconv.im2col(np.zeros((5, 5)), 3)
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.im2col(x, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.im2col(x, 7)
    with pytest.raises(ValueError, match="stride"):
        fastconv.im2col(x, 3, stride=0)
    with pytest.raises(ValueError, match="padding"):
        fastconv.im2col(x, 3, padding=-1)
    with pytest.raises(TypeError, match="dilation"):
        fastconv.im2col(x, 3, dilation=1.0)
    cols = np.zeros((1, 18, 9))
    with pytest.raises(TypeError, match="cols has dtype"):
        fastconv.col2im(cols.astype(complex), (5, 5), 3)
    with pytest.raises(ValueError, match="divisible by prod"):
        fastconv.col2im(np.zeros((1, 17, 9)), (5, 5), 3)
    with pytest.raises(ValueError, match="blocks"):
        fastconv.col2im(cols, (6, 5), 3)
    with pytest.raises(ValueError, match="cols must be"):
        fastconv.col2im(np.zeros(9), (5, 5), 3)
    with pytest.raises(ValueError, match="output_size"):
        fastconv.col2im(cols, (0, 5), 3)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("k, dilation, padding, stride", [
    (3, 1, 0, 1), (3, 2, 1, 2), ((2, 3), (1, 2), (1, 0), (2, 3)), (1, 1, 0, 2), (4, 1, 2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_unfold_fold(torch, k, dilation, padding, stride, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    F = torch.nn.functional
    ref = F.unfold(torch.from_numpy(x), k, dilation, padding, stride).numpy()
    np.testing.assert_array_equal(fastconv.im2col(x, k, stride, padding, dilation), ref)
    c = rng.standard_normal(ref.shape).astype(dtype)
    reff = F.fold(torch.from_numpy(c), (9, 10), k, dilation, padding, stride).numpy()
    got = fastconv.col2im(c, (9, 10), k, dilation, padding, stride)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, reff, rtol=tol, atol=tol)
    refu = F.fold(torch.from_numpy(c[0]), (9, 10), k, dilation, padding, stride).numpy()
    np.testing.assert_allclose(fastconv.col2im(c[0], (9, 10), k, dilation, padding, stride),
                               refu, rtol=tol, atol=tol)
