"""Cross-check against torch.nn.functional.conv{1,2,3}d (the reference
semantics the API promises).  Skipped when PyTorch is not installed."""

import numpy as np
import pytest

import fastconv

torch = pytest.importorskip("torch")
F = torch.nn.functional

FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                  "circular": "circular"}
ALGOS = ("direct", "im2col", "auto")

# torch warns that "same" with even kernels copies the input; harmless here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def torch_conv(x, w, b, *, nd, stride=1, padding=0, dilation=1, groups=1,
               padding_mode="zeros", ref):
    """What torch.nn.ConvNd(padding_mode=...) computes, in x's dtype."""
    xt = torch.from_numpy(np.ascontiguousarray(x))
    wt = torch.from_numpy(np.ascontiguousarray(w))
    bt = None if b is None else torch.from_numpy(np.ascontiguousarray(b))
    conv = TORCH_CONV[nd]
    symmetric_ints = (isinstance(padding, int)
                      or (isinstance(padding, tuple)
                          and all(isinstance(p, int) for p in padding)))
    if padding_mode == "zeros" and (isinstance(padding, str) or symmetric_ints):
        # torch's own padding handling, including "same" / "valid"
        return conv(xt, wt, bt, stride, padding, dilation, groups).numpy()
    ksize = w.shape[2:]
    pairs = ref.normalize_padding(padding, ksize, dilation, nd)
    flat = [v for pair in reversed(pairs) for v in pair]  # last dim first
    xt = F.pad(xt, flat, mode=TORCH_PAD_MODE[padding_mode])
    return conv(xt, wt, bt, stride, 0, dilation, groups).numpy()


def _random_layer(rng, nd, ref):
    """A random valid layer (shapes, stride, padding, dilation, groups, mode)."""
    while True:
        groups = int(rng.choice([1, 1, 2, 3, 4]))
        cin = groups * int(rng.integers(1, 4))
        cout = groups * int(rng.integers(1, 4))
        if rng.random() < 0.2:  # depthwise
            cin = groups
            cout = groups * int(rng.integers(1, 3))
        ksize = tuple(int(v) for v in rng.integers(1, {1: 8, 2: 5, 3: 4}[nd], nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        stride = tuple(int(v) for v in rng.integers(1, 4, nd))
        kind = rng.integers(0, 5)
        if kind == 0:
            padding = int(rng.integers(0, 3))
        elif kind == 1:
            padding = tuple(int(v) for v in rng.integers(0, 3, nd))
        elif kind == 2:
            padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (nd, 2)))
        elif kind == 3:
            padding = "same"
            stride = 1
        else:
            padding = "valid"
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        spatial = tuple(int(v) for v in rng.integers(3, {1: 40, 2: 14, 3: 8}[nd], nd))
        if ref.output_shape(spatial, ksize, stride, padding, dilation) is None:
            continue
        if not ref.padding_ok_for_mode(spatial, ksize, padding, dilation, mode):
            continue
        n = int(rng.integers(1, 4))
        return dict(n=n, cin=cin, cout=cout, groups=groups, ksize=ksize, spatial=spatial,
                    kw=dict(stride=stride, padding=padding, dilation=dilation,
                            groups=groups, padding_mode=mode))


def _abs_scale(x, w, b, nd, kw, ref):
    """max of |W| * |X| + |b| (normwise magnitude), computed with torch in float64."""
    return float(np.abs(torch_conv(np.abs(x.astype(np.float64)),
                                   np.abs(w.astype(np.float64)),
                                   None if b is None else np.abs(b.astype(np.float64)),
                                   nd=nd, ref=ref, **kw)).max())


def _compare(got, want, scale, dtype, k_terms, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch {want.shape}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}"
    if dtype == np.float32:
        # both sides carry float32 rounding: rtol 1e-4 plus the summation bound
        rtol = 1e-4
        atol = 2 * max(2e-5, 2 * k_terms * float(np.finfo(np.float32).eps)) * scale
    else:
        rtol, atol = 1e-10, 1e-10 * scale
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_random_layers_vs_torch(nd, algorithm, dtype, ref):
    rng = np.random.default_rng(100 * nd + ALGOS.index(algorithm))
    for trial in range(25):
        layer = _random_layer(rng, nd, ref)
        x, w, b = ref.random_case(rng, nd, n=layer["n"], cin=layer["cin"],
                                  cout=layer["cout"], groups=layer["groups"],
                                  spatial=layer["spatial"], ksize=layer["ksize"],
                                  dtype=dtype, bias=bool(trial % 3))
        kw = layer["kw"]
        want = torch_conv(x, w, b, nd=nd, ref=ref, **kw)
        got = FUNCS[nd](x, w, b, algorithm=algorithm, **kw)
        k_terms = (layer["cin"] // layer["groups"]) * int(np.prod(layer["ksize"]))
        _compare(got, want, _abs_scale(x, w, b, nd, kw, ref), np.dtype(dtype), k_terms,
                 f"trial {trial}: x {x.shape} w {w.shape} {kw}")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_cnn_layers_vs_torch(algorithm, ref):
    """Scaled-down versions of the benchmark layers (float32)."""
    rng = np.random.default_rng(7)
    layers = [
        # (x shape, w shape, kwargs)
        ((1, 3, 32, 32), (8, 3, 7, 7), dict(stride=2, padding=3)),  # resnet conv1
        ((2, 16, 14, 14), (16, 16, 3, 3), dict(padding=1)),  # 3x3 stride 1
        ((2, 32, 7, 7), (32, 32, 3, 3), dict(padding=1)),
        ((1, 32, 14, 14), (8, 32, 1, 1), {}),  # 1x1
        ((2, 24, 14, 14), (24, 1, 3, 3), dict(padding=1, groups=24)),  # depthwise
        ((1, 24, 15, 15), (24, 1, 3, 3), dict(padding=1, stride=2, groups=24)),
        ((1, 8, 20, 20), (8, 8, 3, 3), dict(padding=2, dilation=2)),  # dilated
    ]
    for xs, ws, kw in layers:
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        want = torch_conv(x, w, b, nd=2, ref=ref, **kw)
        got = fastconv.conv2d(x, w, b, algorithm=algorithm, **kw)
        _compare(got, want, _abs_scale(x, w, b, 2, kw, ref), np.dtype(np.float32),
                 int(np.prod(ws[1:])), f"x {xs} w {ws} {kw}")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_oracle_agrees_with_torch(nd, ref):
    """Validates the test oracle itself against torch (float64, tight)."""
    rng = np.random.default_rng(900 + nd)
    for _ in range(40):
        layer = _random_layer(rng, nd, ref)
        x, w, b = ref.random_case(rng, nd, n=layer["n"], cin=layer["cin"],
                                  cout=layer["cout"], groups=layer["groups"],
                                  spatial=layer["spatial"], ksize=layer["ksize"])
        want = torch_conv(x, w, b, nd=nd, ref=ref, **layer["kw"])
        mine = ref.conv(x, w, b, nd=nd, **layer["kw"])
        np.testing.assert_allclose(mine, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_unbatched_vs_torch(algorithm, ref):
    """torch also accepts unbatched (C, H, W) input."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 11, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, 2, 1).numpy()
    got = fastconv.conv2d(x, w, stride=2, padding=1, algorithm=algorithm)
    _compare(got, want, _abs_scale(x[None], w, None, 2, dict(stride=2, padding=1), ref),
             np.dtype(np.float32), 27, "unbatched")
