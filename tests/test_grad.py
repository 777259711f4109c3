"""fastconv.grad against independent oracles: NumPy (weight gradient by
einsum over sliding windows, input gradient through the adjoint identity
with fastconv.conv{1,2,3}d) and torch.nn.grad when PyTorch is installed."""
import numpy as np
import pytest
from oracles import padding_pairs, weight_grad_reference

import fastconv
import fastconv.grad as G

CONV = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


def _tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


CASES = [
    # nd, size, k, stride, padding, dilation, groups
    (1, 9, 3, 2, 1, 1, 1),
    (1, 10, 2, 3, 0, 2, 2),
    (2, 7, 3, 1, 1, 1, 1),
    (2, 8, 3, 2, 1, 1, 2),
    (2, 9, (2, 3), (3, 2), (0, 2), (2, 1), 1),
    (2, 7, 3, 1, "same", 2, 1),
    (2, 7, 4, 1, "same", 1, 2),
    (2, 6, 3, 1, "valid", 1, 1),
    (3, 5, 3, 2, 1, 1, 1),
    (3, 5, 2, 1, 0, (1, 2, 1), 2),
]


@pytest.mark.parametrize("nd, size, k, stride, padding, dilation, groups", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_oracles(nd, size, k, stride, padding, dilation, groups, dtype, ref, xp):
    """Both gradients against NumPy oracles, in each array namespace
    (conftest's ``xp``): the weight gradient against the sliding-window
    einsum, the input gradient (and the weight gradient once more) through
    the adjoint identities with conftest's convolution oracle."""
    rng = np.random.default_rng(size * 10 + nd)
    x = rng.standard_normal((2, 2 * groups) + (size,) * nd).astype(dtype)
    w = rng.standard_normal((3 * groups, 2) + _tup(k, nd)).astype(dtype)
    conv_kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = ref.conv(x, w, None, nd=nd, **conv_kw)
    gy = rng.standard_normal(y.shape).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    # weight gradient vs the sliding-window einsum
    gw = xp.to_numpy(getattr(G, f"conv{nd}d_weight")(
        xp.asarray(x), w.shape, xp.asarray(gy), stride, padding, dilation, groups))
    expected = weight_grad_reference(x, gy, w.shape, stride,
                                     padding_pairs(padding, k, dilation, nd), dilation, groups)
    assert gw.shape == w.shape and gw.dtype == dtype
    np.testing.assert_allclose(gw, expected, rtol=tol, atol=tol * np.abs(expected).max())
    # input gradient: <conv(x'), gy> == <x', grad_input> for random x'
    gi = xp.to_numpy(getattr(G, f"conv{nd}d_input")(
        x.shape, xp.asarray(w), xp.asarray(gy), stride, padding, dilation, groups))
    assert gi.shape == x.shape and gi.dtype == dtype
    x2 = rng.standard_normal(x.shape)
    lhs = np.vdot(ref.conv(x2, w.astype(np.float64), None, nd=nd, **conv_kw),
                  gy.astype(np.float64))
    rhs = np.vdot(x2, gi.astype(np.float64))
    assert abs(lhs - rhs) <= tol * max(1.0, np.abs(x2).sum() * np.abs(gi).max())
    # the gradient of the weight is linear in x: check the adjoint the other way too
    w2 = rng.standard_normal(w.shape)
    lhs = np.vdot(ref.conv(x.astype(np.float64), w2, None, nd=nd, **conv_kw),
                  gy.astype(np.float64))
    assert abs(lhs - np.vdot(w2, gw.astype(np.float64))) <= tol * max(1.0, abs(lhs)) * 10


def test_unbatched_and_inputs_untouched():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((4, 5, 4))
    xr = x[:, ::-1]  # negatively strided
    xr.flags.writeable = False
    keep = xr.copy()
    gw = G.conv2d_weight(xr, w.shape, gy, stride=2, padding=1)
    ref = weight_grad_reference(np.ascontiguousarray(xr)[None], gy[None], w.shape, 2,
                                ((1, 1), (1, 1)), 1, 1)
    np.testing.assert_allclose(gw, ref, rtol=1e-11, atol=1e-11)
    np.testing.assert_array_equal(xr, keep)
    gi = G.conv2d_input(x.shape, w, gy, stride=2, padding=1)
    gib = G.conv2d_input((1,) + x.shape, w, gy[None], stride=2, padding=1)
    np.testing.assert_allclose(gi, gib[0], rtol=1e-12, atol=1e-12)
    # mixed dtypes promote
    assert G.conv2d_input(x.shape, w.astype(np.float32), gy, 2, 1).dtype == np.float64
    assert G.conv2d_weight(x.astype(np.float32), w.shape, gy.astype(np.float32), 2,
                           1).dtype == np.float32


def test_bad_arguments():
    x = np.zeros((1, 2, 6, 6))
    w = np.zeros((3, 2, 3, 3))
    gy = np.zeros((1, 3, 4, 4))
    with pytest.raises(ValueError, match="grad_output has shape"):
        G.conv2d_input(x.shape, w, np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="grad_output has shape"):
        G.conv2d_weight(x, w.shape, np.zeros((1, 2, 4, 4)))
    with pytest.raises(TypeError, match="input_size"):
        G.conv2d_input((1, 2, 6.0, 6), w, gy)
    with pytest.raises(TypeError, match="input_size"):
        G.conv2d_input(6, w, gy)
    with pytest.raises(TypeError, match="weight_size"):
        G.conv2d_weight(x, "3233", gy)
    with pytest.raises(TypeError, match="grad_output has dtype"):
        G.conv2d_input(x.shape, w, gy.astype(np.int32))
    with pytest.raises(TypeError, match="x has dtype"):
        G.conv2d_weight(x.astype(np.int64), w.shape, gy)
    with pytest.raises(ValueError, match="groups"):
        G.conv2d_weight(x, w.shape, gy, groups=2)
    with pytest.raises(ValueError, match="stride"):
        G.conv2d_input(x.shape, w, gy, stride=0)
    with pytest.raises(ValueError, match="padding='same'"):
        G.conv2d_input(x.shape, w, gy, stride=2, padding="same")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


TORCH_GRID = [
    (nd, s, p, d, g)
    for nd in (1, 2, 3)
    for s, p, d, g in [(1, 0, 1, 1), (2, 1, 1, 1), (3, 2, 1, 2), (2, 0, 2, 1), (1, 2, 2, 2)]
]


@pytest.mark.parametrize("nd, s, p, d, g", TORCH_GRID)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_nn_grad(torch, nd, s, p, d, g, dtype):
    rng = np.random.default_rng(nd + 10 * s)
    size = 8 if nd < 3 else 5
    x = rng.standard_normal((2, 2 * g) + (size + s - 1,) * nd).astype(dtype)
    w = rng.standard_normal((3 * g, 2) + (3,) * nd).astype(dtype)
    tconv = getattr(torch.nn.functional, f"conv{nd}d")
    y = tconv(torch.from_numpy(x), torch.from_numpy(w), None, s, p, d, g)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    tg = torch.from_numpy(gy)
    ri = getattr(torch.nn.grad, f"conv{nd}d_input")(x.shape, torch.from_numpy(w), tg, s, p,
                                                    d, g).numpy()
    rw = getattr(torch.nn.grad, f"conv{nd}d_weight")(torch.from_numpy(x), w.shape, tg, s, p,
                                                     d, g).numpy()
    gi = getattr(G, f"conv{nd}d_input")(x.shape, w, gy, s, p, d, g)
    gw = getattr(G, f"conv{nd}d_weight")(x, w.shape, gy, s, p, d, g)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert gi.dtype == dtype and gw.dtype == dtype
    np.testing.assert_allclose(gi, ri, rtol=tol, atol=tol * np.abs(ri).max())
    np.testing.assert_allclose(gw, rw, rtol=tol, atol=tol * np.abs(rw).max())


def test_torch_autograd_layer(torch):
    """The two gradients of a 3x3 layer agree with torch's autograd backward."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 14, 14), dtype=np.float32)
    w = rng.standard_normal((16, 16, 3, 3), dtype=np.float32)
    gy = rng.standard_normal((2, 16, 14, 14), dtype=np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(w).requires_grad_()
    torch.nn.functional.conv2d(tx, tw, None, 1, 1).backward(torch.from_numpy(gy))
    gi = G.conv2d_input(x.shape, w, gy, 1, 1)
    gw = G.conv2d_weight(x, w.shape, gy, 1, 1)
    ri, rw = tx.grad.numpy(), tw.grad.numpy()
    np.testing.assert_allclose(gi, ri, rtol=1e-4, atol=1e-4 * np.abs(ri).max())
    np.testing.assert_allclose(gw, rw, rtol=1e-4, atol=1e-4 * np.abs(rw).max())


# --------------------------------------------------------------------------
# The Winograd weight gradient (3x3, stride 1, dilation 1, >= 8 channels per
# group): F(3x3, 2x2) and F(3x3, 4x4), both schedules, against the float64
# sliding-window oracle, held to the forward Winograd's normwise bounds.
# --------------------------------------------------------------------------

WINO_CASES = [
    # N, C_in, C_out, H, W, padding, groups
    (2, 8, 16, 9, 11, 1, 1),         # ragged tiles both ways
    (1, 16, 8, 13, 7, 0, 1),         # "valid"
    (3, 16, 24, 10, 10, 2, 2),       # more padding than the kernel needs, groups
    (2, 8, 8, 8, 9, (0, 2), 1),      # asymmetric padding per axis
    (1, 32, 32, 23, 21, "same", 4),  # m = 4 by default (output >= 400 pixels)
]


@pytest.mark.parametrize("n, cin, cout, h, w, padding, groups", WINO_CASES)
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("schedule", ["parallel", "shared", "default"])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_weight_grad(monkeypatch, n, cin, cout, h, w, padding, groups, m, schedule,
                              workers, dtype):
    from fastconv import _winograd

    calls = []
    run = _winograd.weight_grad

    def spy(*args, **kwargs):
        calls.append(1)
        return run(*args, **kwargs)

    monkeypatch.setattr(_winograd, "weight_grad", spy)
    monkeypatch.setattr(_winograd, "choose_weight_grad_variant", lambda forward: m)
    if schedule != "default":
        # shared: every accumulator counts as too large for per-thread copies
        monkeypatch.setattr(_winograd, "WGRAD_ACC_BYTES",
                            1 << 40 if schedule == "parallel" else 0)
        monkeypatch.setattr(_winograd, "WGRAD_MIN_TASK_TILES",
                            0 if schedule == "parallel" else 1)
        # one row of tiles per task: many tasks, each accumulating onto the last
        monkeypatch.setattr(_winograd, "WGRAD_TASK_BYTES", 1)
        monkeypatch.setattr(_winograd, "WGRAD_SHARED_BYTES", 1)
    rng = np.random.default_rng(n * 100 + cin + h)
    x = rng.standard_normal((n, cin, h, w)).astype(dtype)
    wshape = (cout, cin // groups, 3, 3)
    y = fastconv.conv2d(x, np.zeros(wshape, dtype), None, 1, padding, 1, groups)
    gy = rng.standard_normal(y.shape).astype(dtype)
    keep = (x.copy(), gy.copy())
    with fastconv.threads(workers):
        gw = G.conv2d_weight(x, wshape, gy, 1, padding, 1, groups)
    assert calls, "the Winograd weight gradient did not run"
    ref = weight_grad_reference(x, gy, wshape, 1, padding_pairs(padding, 3, 1, 2), 1, groups)
    assert gw.shape == wshape and gw.dtype == dtype
    err = np.abs(gw - ref).max() / np.abs(ref).max()
    assert err <= _winograd.ERROR_BOUND[np.dtype(dtype)], f"normwise error {err:.3g}"
    np.testing.assert_array_equal(x, keep[0])
    np.testing.assert_array_equal(gy, keep[1])


def test_winograd_weight_grad_layer_bound():
    """A 64-channel layer at 56x56 (the benchmark's, N=2), float32, by the
    default variant and schedule: within the Winograd bound of float64."""
    from fastconv import _winograd

    rng = np.random.default_rng(56)
    x = rng.standard_normal((2, 64, 56, 56), dtype=np.float32)
    gy = rng.standard_normal((2, 64, 56, 56), dtype=np.float32)
    gw = G.conv2d_weight(x, (64, 64, 3, 3), gy, 1, 1)
    ref = weight_grad_reference(x, gy, (64, 64, 3, 3), 1, ((1, 1), (1, 1)), 1, 1)
    err = np.abs(gw - ref).max() / np.abs(ref).max()
    assert err <= _winograd.ERROR_BOUND[np.dtype(np.float32)], f"normwise error {err:.3g}"


def test_small_channels_keep_the_gemm_path(monkeypatch):
    """Fewer than WGRAD_MIN_CHANNELS channels per group (depthwise here)
    take the GEMM path, and still match the oracle."""
    from fastconv import _winograd

    def fail(*args, **kwargs):
        raise AssertionError("Winograd ran for a depthwise weight gradient")

    monkeypatch.setattr(_winograd, "weight_grad", fail)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 12, 12))
    gy = rng.standard_normal((2, 16, 12, 12))
    gw = G.conv2d_weight(x, (16, 1, 3, 3), gy, 1, 1, 1, 16)
    ref = weight_grad_reference(x, gy, (16, 1, 3, 3), 1, ((1, 1), (1, 1)), 1, 16)
    np.testing.assert_allclose(gw, ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())


# --------------------------------------------------------------------------
# The GEMM weight gradient's schedules: chunks of output pixels that span
# images, per-thread accumulators or one shared accumulator split by rows
# (output channels) or columns (taps) of dW.
# --------------------------------------------------------------------------

GEMM_CASES = [
    # nd, N, C_in, C_out, size, k, stride, padding, dilation, groups
    (2, 3, 3, 8, 7, 1, 1, 0, 1, 1),          # 1x1, more rows (C_out) than taps
    (2, 2, 4, 6, 9, 3, 2, 1, 1, 2),          # strided, groups, more taps than rows
    (2, 3, 2, 4, 8, (2, 3), 1, (1, 0), 2, 1),
    (1, 4, 3, 5, 11, 3, 2, 1, 1, 1),
    (3, 2, 2, 4, 5, 2, 1, 1, 1, 2),
]


@pytest.mark.parametrize("nd, n, cin, cout, size, k, stride, padding, dilation, groups",
                         GEMM_CASES)
@pytest.mark.parametrize("schedule", ["parallel", "parallel-transposed", "shared"])
@pytest.mark.parametrize("chunks", ["tiles", "spanning"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_weight_grad_schedules(monkeypatch, nd, n, cin, cout, size, k, stride, padding,
                                    dilation, groups, schedule, chunks, dtype):
    from fastconv import _cpu_adjoint

    rng = np.random.default_rng(size * 7 + cin)
    x = rng.standard_normal((n, cin) + (size,) * nd).astype(dtype)
    wshape = (cout, cin // groups) + _tup(k, nd)
    y = CONV[nd](x, np.zeros(wshape, dtype), None, stride, padding, dilation, groups)
    pixels = int(np.prod(y.shape[2:]))
    monkeypatch.setattr(_cpu_adjoint, "MIN_WORK_PER_THREAD", 1)   # 2 threads even here
    # tiles: 5 pixels, within one image; spanning: a chunk ends inside the
    # next image
    monkeypatch.setattr(_cpu_adjoint, "WGRAD_MIN_CHUNK", 5 if chunks == "tiles" else pixels + 3)
    monkeypatch.setattr(_cpu_adjoint, "WGRAD_CHUNK_BYTES", 1)
    monkeypatch.setattr(_cpu_adjoint, "WGRAD_SHARED_BYTES", 1)
    monkeypatch.setattr(_cpu_adjoint, "WGRAD_ACC_BYTES",
                        0 if schedule == "shared" else 1 << 40)
    monkeypatch.setattr(_cpu_adjoint, "WGRAD_TRANSPOSED_BELOW",
                        1 << 40 if schedule == "parallel-transposed" else 0)
    monkeypatch.setattr(_cpu_adjoint, "TASKS_PER_THREAD", 1)
    gy = rng.standard_normal(y.shape).astype(dtype)
    with fastconv.threads(2):
        gw = getattr(G, f"conv{nd}d_weight")(x, wshape, gy, stride, padding, dilation, groups)
    ref = weight_grad_reference(x, gy, wshape, stride, padding_pairs(padding, k, dilation, nd),
                                dilation, groups)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert gw.shape == wshape and gw.dtype == dtype
    np.testing.assert_allclose(gw, ref, rtol=tol, atol=tol * np.abs(ref).max())
