"""CNN layer benchmarks (DESIGN.md section 5): fastconv.conv2d vs torch.

float32, batch N=1 and N=8, bias-free forward convolution of the layers

* ResNet-50 conv1: 7x7 stride 2 pad 3, 3 -> 64 channels, 224x224
* ResNet 3x3 stride 1 pad 1: 64@56, 128@28, 256@14, 512@7 (C_in = C_out)
* ResNet 3x3 stride 2 pad 1 (downsampling, as in torchvision's ResNet-50
  stage 2): 128 -> 128 at 56x56
* ResNet 1x1 bottleneck reduction: 256 -> 64 at 56x56
* MobileNet depthwise 3x3: 144 channels at 56x56, groups=144, pad 1
* VGG 3x3 64 -> 64 at 224x224 pad 1
* 5x5 pad 2 (Inception/GoogLeNet-style branch): 64 -> 64 at 28x28

fastconv runs with ``algorithm="auto"`` and with every forced algorithm of
``fastconv.ALGORITHMS`` that can serve the layer. A forced algorithm is
skipped when it raises ValueError (it cannot serve the arguments, e.g.
Winograd on a 7x7 or strided layer, "separable" on a dense layer) and when
one call would take more than ``FORCED_BUDGET_S`` (estimated from one probe
call on a single sample, scaled by N: "direct" and "fft" on the big
layers). "auto" is never skipped; its benchmark records the algorithm it
runs (``fastconv.choose_algorithm``) in ``extra_info["auto_choice"]``.
The peer is ``torch.nn.functional.conv2d`` (oneDNN) with
``torch.set_num_threads(fastconv.get_num_threads())``.

Targets (``benchmarks/report.py`` prints them):

* ``TARGETS``: ``fastconv-auto`` on every layer and batch size reaches at
  least 0.9x torch's speed (speed-up = torch time / fastconv time).
* ``GEOMEAN_TARGETS``: ``fastconv-auto`` on the 3x3 stride-1 layers (ResNet
  64/128/256/512 and VGG 64@224, N=1 and N=8: 10 cases) reaches a geometric
  mean speed-up of at least 1.2x over torch.

Every fastconv benchmark also records ``problem`` (its group) and
``algorithm``, so the report's "selector" summary gives, per layer, auto's
time over the fastest forced algorithm's.
"""

from __future__ import annotations

import numpy as np
import pytest

try:
    from fastconv import ALGORITHMS
except ImportError:  # the torch benchmarks still run; fastconv's fail in their fixture
    ALGORITHMS = ("auto",)

# A forced algorithm whose one call (probed on one sample, scaled by N) would
# take longer than this is skipped.
FORCED_BUDGET_S = 2.0

# name, C_in, C_out, H(=W), k, stride, padding, groups
LAYERS = {
    "resnet50.conv1 7x7/2 3->64 @224": (3, 64, 224, 7, 2, 3, 1),
    "resnet.3x3 64->64 @56": (64, 64, 56, 3, 1, 1, 1),
    "resnet.3x3 128->128 @28": (128, 128, 28, 3, 1, 1, 1),
    "resnet.3x3 256->256 @14": (256, 256, 14, 3, 1, 1, 1),
    "resnet.3x3 512->512 @7": (512, 512, 7, 3, 1, 1, 1),
    "resnet.3x3/2 128->128 @56": (128, 128, 56, 3, 2, 1, 1),
    "resnet.1x1 256->64 @56": (256, 64, 56, 1, 1, 0, 1),
    "mobilenet.dw3x3 144 @56": (144, 144, 56, 3, 1, 1, 144),
    "vgg.3x3 64->64 @224": (64, 64, 224, 3, 1, 1, 1),
    "5x5 64->64 @28": (64, 64, 28, 5, 1, 2, 1),
}
BATCHES = (1, 8)


def group_name(name, n):
    return f"{name} N={n}"


# Per-case targets (group -> (peer impl, minimum speed-up)) of TARGET_IMPL.
TARGET_IMPL = "fastconv-auto"
TARGETS = {group_name(name, n): ("torch", 0.9) for name in LAYERS for n in BATCHES}

# Family-level targets of TARGET_IMPL: name -> (groups, peer impl, minimum
# geometric-mean speed-up over those groups).
GEOMEAN_TARGETS = {
    "3x3 stride-1 layers (ResNet 64/128/256/512, VGG 64@224; N=1, 8)": (
        tuple(group_name(name, n)
              for name in ("resnet.3x3 64->64 @56", "resnet.3x3 128->128 @28",
                           "resnet.3x3 256->256 @14", "resnet.3x3 512->512 @7",
                           "vgg.3x3 64->64 @224")
              for n in BATCHES),
        "torch", 1.2),
}

# (layer, N) pairs in the quick CI subset.
CI_CASES = {
    ("resnet.3x3 64->64 @56", 1),
    ("mobilenet.dw3x3 144 @56", 1),
    ("resnet.1x1 256->64 @56", 1),
}

CASES = [
    pytest.param(name, n, id=f"{name.replace(' ', '_')}-N{n}",
                 marks=[pytest.mark.ci] if (name, n) in CI_CASES else [])
    for name in LAYERS
    for n in BATCHES
]

_GROUPS = {group_name(name, n) for name in LAYERS for n in BATCHES}
assert set(TARGETS) <= _GROUPS
for _groups, _, _ in GEOMEAN_TARGETS.values():
    assert set(_groups) <= _GROUPS, _groups


def _out_size(h, k, stride, pad):
    return (h + 2 * pad - k) // stride + 1


def layer_arrays(seeded, name, n):
    """Seeded input (N, C_in, H, W) and weight (C_out, C_in/g, k, k), float32."""
    c_in, c_out, h, k, stride, pad, groups = LAYERS[name]
    rng = seeded("cnn", name, n)
    x = rng.standard_normal((n, c_in, h, h), dtype=np.float32)
    # He-style scale keeps activations O(1) so the accuracy check is meaningful.
    fan_in = c_in // groups * k * k
    w = rng.standard_normal((c_out, c_in // groups, k, k), dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / fan_in))
    return x, w


def layer_flops(name, n):
    c_in, c_out, h, k, stride, pad, groups = LAYERS[name]
    ho = _out_size(h, k, stride, pad)
    return 2 * n * c_out * ho * ho * (c_in // groups) * k * k


def _describe(benchmark, name, n, impl, role, threads, algorithm=None):
    c_in, c_out, h, k, stride, pad, groups = LAYERS[name]
    group = group_name(name, n)
    benchmark.group = group
    benchmark.extra_info.update(
        impl=impl,
        role=role,
        family="cnn",
        layer=name,
        batch=n,
        dtype="float32",
        flops=layer_flops(name, n),
        threads=threads,
        shape=dict(c_in=c_in, c_out=c_out, h=h, w=h, k=k, stride=stride,
                   padding=pad, groups=groups),
    )
    if algorithm is not None:
        benchmark.extra_info.update(algorithm=algorithm, problem=group)
    if impl == TARGET_IMPL:
        if group in TARGETS:
            peer, min_ratio = TARGETS[group]
            benchmark.extra_info["target"] = {"peer": peer, "min_ratio": min_ratio}
        geo = [{"name": tname, "groups": list(groups_), "peer": peer, "min_ratio": min_ratio}
               for tname, (groups_, peer, min_ratio) in GEOMEAN_TARGETS.items()
               if group in groups_]
        if geo:
            benchmark.extra_info["geomean_targets"] = geo


_REFERENCE = {}


def _reference(torch_mod, x, w, name, n):
    """torch's result for the case (cached), or None without torch."""
    key = (name, n)
    if key not in _REFERENCE:
        if torch_mod is None:
            return None
        c_in, c_out, h, k, stride, pad, groups = LAYERS[name]
        with torch_mod.no_grad():
            ref = torch_mod.nn.functional.conv2d(
                torch_mod.from_numpy(x), torch_mod.from_numpy(w), None,
                stride, pad, 1, groups).numpy()
        _REFERENCE[key] = ref
    return _REFERENCE[key]


def _optional_torch(n_threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(n_threads)
    return torch


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name, n", CASES)
def test_fastconv(benchmark, fastconv_mod, n_threads, seeded, skip_if_slower, name, n, algorithm):
    c_in, c_out, h, k, stride, pad, groups = LAYERS[name]
    x, w = layer_arrays(seeded, name, n)

    def call(xx=x):
        return fastconv_mod.conv2d(xx, w, None, stride, pad, 1, groups, algorithm=algorithm)

    if algorithm != "auto":
        # Probe on one sample (also a warm-up); extrapolate to the batch.
        try:
            skip_if_slower(lambda: call(x[:1]), FORCED_BUDGET_S, scale=n,
                           what=f"fastconv {algorithm} on {name} N={n}")
        except ValueError as exc:
            pytest.skip(f"algorithm={algorithm!r} cannot serve {name}: {exc}")
    call()  # warm-up, like the torch peer's
    _describe(benchmark, name, n, f"fastconv-{algorithm}", "fastconv", n_threads, algorithm)
    if algorithm == "auto":
        choice = fastconv_mod.choose_algorithm(fastconv_mod.conv2d, x, w, None, stride, pad,
                                               1, groups)
        benchmark.extra_info["auto_choice"] = choice.algorithm
    result = benchmark(call)

    ref = _reference(_optional_torch(n_threads), x, w, name, n)
    if ref is not None:
        assert result.shape == ref.shape and result.dtype == np.float32
        scale = float(np.max(np.abs(ref))) or 1.0
        err = float(np.max(np.abs(result - ref))) / scale
        benchmark.extra_info["max_rel_err_vs_torch"] = err
        assert err < 1e-4, f"fastconv {algorithm} disagrees with torch: {err:.3g}"


@pytest.mark.parametrize("name, n", CASES)
def test_torch(benchmark, torch_mod, n_threads, seeded, name, n):
    c_in, c_out, h, k, stride, pad, groups = LAYERS[name]
    x, w = layer_arrays(seeded, name, n)
    tx, tw = torch_mod.from_numpy(x), torch_mod.from_numpy(w)
    conv2d = torch_mod.nn.functional.conv2d

    def call():
        with torch_mod.no_grad():
            return conv2d(tx, tw, None, stride, pad, 1, groups)

    call()  # warm-up (oneDNN primitive creation)
    _describe(benchmark, name, n, "torch", "peer", torch_mod.get_num_threads())
    benchmark.extra_info["version"] = torch_mod.__version__
    benchmark(call)
