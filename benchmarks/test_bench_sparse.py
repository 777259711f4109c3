"""Sparse convolution benchmarks (issue 6): pruned weights and sparse images.

Pruned weights, float32, N=1: the ResNet 3x3 stride-1 layers 64@56,
128@28 and 256@14 (C_in = C_out, pad 1) with 50/80/90/95% of the weights
set to zero at random (unstructured).  fastconv ``algorithm="auto"`` (which
counts the nonzeros on every call), forced ``"sparse"`` and forced
``"direct"`` (dense) against ``torch.nn.functional.conv2d`` on the same
(mostly zero) weights, dense, as PyTorch runs them.

Sparse images, float32: a 4096x4096 ``scipy.sparse`` CSR array with 0.1%,
1% and 10% nonzeros correlated with a 7x7 kernel (``padding="same"``):
``fastconv.conv2d`` on the sparse array against ``fastconv.conv2d`` on the
dense array with ``algorithm="direct"``, both writing a preallocated
``out=`` (a fresh 64 MB result costs both paths the same ~15 ms of page
faults; the ``-fresh`` rows time that too).

Targets (``benchmarks/report.py``):

* ``GEOMEAN_TARGETS``: ``fastconv-auto`` at 90% sparsity, geometric mean
  over the three layers, >= 2x torch dense.
* ``TARGETS``: the 1% image, ``fastconv-sparse`` >= 10x
  ``fastconv-dense-direct``.
"""

from __future__ import annotations

import numpy as np
import pytest

LAYERS = {  # name: (C, H)
    "resnet.3x3 64->64 @56": (64, 56),
    "resnet.3x3 128->128 @28": (128, 28),
    "resnet.3x3 256->256 @14": (256, 14),
}
SPARSITIES = (0.5, 0.8, 0.9, 0.95)
IMAGE_DENSITIES = (0.001, 0.01, 0.1)
IMAGE_SIZE, IMAGE_K = 4096, 7


def layer_group(name, sparsity):
    return f"{name} {round(sparsity * 100)}% sparse N=1"


def image_group(density):
    return f"sparse image {IMAGE_SIZE}x{IMAGE_SIZE} {density:.1%} k{IMAGE_K}"


TARGETS = {image_group(0.01): ("fastconv-sparse", "fastconv-dense-direct", 10.0)}
GEOMEAN_TARGETS = {
    "90%-sparse 3x3 layers (64@56, 128@28, 256@14; N=1)": (
        tuple(layer_group(name, 0.9) for name in LAYERS), "fastconv-auto", "torch", 2.0),
}
CI_LAYER = ("resnet.3x3 256->256 @14", 0.9)

LAYER_CASES = [
    pytest.param(name, s, id=f"{name.replace(' ', '_')}-{round(s * 100)}",
                 marks=[pytest.mark.ci] if (name, s) == CI_LAYER else [])
    for name in LAYERS for s in SPARSITIES
]


def layer_arrays(seeded, name, sparsity):
    c, h = LAYERS[name]
    rng = seeded("sparse-cnn", name, sparsity)
    x = rng.standard_normal((1, c, h, h), dtype=np.float32)
    w = rng.standard_normal((c, c, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / (9 * c)))
    w[rng.random(w.shape) < sparsity] = 0
    return x, w


def _describe(benchmark, group, impl, role, threads, flops, family, **extra):
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, role=role, family=family, flops=flops,
                                threads=threads, dtype="float32", **extra)
    for tgroup, (mine, peer, ratio) in TARGETS.items():
        if tgroup == group and impl == mine:
            benchmark.extra_info["target"] = {"peer": peer, "min_ratio": ratio}
    geo = [{"name": tname, "groups": list(groups), "peer": peer, "min_ratio": ratio}
           for tname, (groups, mine, peer, ratio) in GEOMEAN_TARGETS.items()
           if group in groups and impl == mine]
    if geo:
        benchmark.extra_info["geomean_targets"] = geo


def _layer_flops(name):
    c, h = LAYERS[name]
    return 2 * c * c * 9 * h * h


@pytest.mark.parametrize("impl", ["auto", "sparse", "direct"])
@pytest.mark.parametrize("name, sparsity", LAYER_CASES)
def test_fastconv_layer(benchmark, fastconv_mod, n_threads, seeded, name, sparsity, impl):
    x, w = layer_arrays(seeded, name, sparsity)

    def call():
        return fastconv_mod.conv2d(x, w, None, 1, 1, algorithm=impl)

    label = {"auto": "fastconv-auto", "sparse": "fastconv-sparse",
             "direct": "fastconv-dense-direct"}[impl]
    call()
    _describe(benchmark, layer_group(name, sparsity), label, "fastconv", n_threads,
              _layer_flops(name), "sparse-cnn", algorithm=impl,
              nnz=int(np.count_nonzero(w)))
    if impl == "auto":
        choice = fastconv_mod.choose_algorithm(fastconv_mod.conv2d, x, w, None, 1, 1)
        benchmark.extra_info["auto_choice"] = choice.algorithm
    result = benchmark(call)
    ref = fastconv_mod.conv2d(x, w, None, 1, 1, algorithm="im2col")
    err = float(np.max(np.abs(result - ref))) / (float(np.max(np.abs(ref))) or 1.0)
    assert err < 1e-4, f"fastconv {impl} disagrees with im2col: {err:.3g}"


@pytest.mark.parametrize("name, sparsity", LAYER_CASES)
def test_torch_layer(benchmark, torch_mod, seeded, name, sparsity):
    x, w = layer_arrays(seeded, name, sparsity)
    tx, tw = torch_mod.from_numpy(x), torch_mod.from_numpy(w)

    def call():
        with torch_mod.no_grad():
            return torch_mod.nn.functional.conv2d(tx, tw, None, 1, 1)

    call()
    _describe(benchmark, layer_group(name, sparsity), "torch", "peer",
              torch_mod.get_num_threads(), _layer_flops(name), "sparse-cnn",
              version=torch_mod.__version__)
    benchmark(call)


_IMAGES = {}


def image_arrays(seeded, density):
    """(CSR image, dense copy, kernel), cached per density (64 MB each)."""
    if density not in _IMAGES:
        import scipy.sparse as sp

        rng = seeded("sparse-image", density)
        img = sp.random_array((IMAGE_SIZE, IMAGE_SIZE), density=density, format="csr",
                              dtype=np.float32, rng=rng)
        k = rng.standard_normal((IMAGE_K, IMAGE_K), dtype=np.float32)
        _IMAGES.clear()
        _IMAGES[density] = (img, img.toarray(), k)
    return _IMAGES[density]


IMAGE_CASES = [pytest.param(d, id=f"{d:.1%}", marks=[pytest.mark.ci] if d == 0.001 else [])
               for d in IMAGE_DENSITIES]


@pytest.mark.parametrize("impl", ["sparse", "dense-direct", "sparse-fresh",
                                  "dense-direct-fresh"])
@pytest.mark.parametrize("density", IMAGE_CASES)
def test_sparse_image(benchmark, fastconv_mod, n_threads, seeded, density, impl):
    img, dense, k = image_arrays(seeded, density)
    out = np.empty((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    src = img if impl.startswith("sparse") else dense
    algorithm = "auto" if impl.startswith("sparse") else "direct"
    kw = {} if impl.endswith("fresh") else {"out": out}

    def call():
        return fastconv_mod.conv2d(src, k, padding="same", algorithm=algorithm, **kw)

    call()
    role = "fastconv"
    _describe(benchmark, image_group(density), f"fastconv-{impl}", role, n_threads,
              2 * IMAGE_SIZE * IMAGE_SIZE * IMAGE_K * IMAGE_K, "sparse-image",
              nnz=int(img.nnz))
    result = benchmark(call)
    if impl == "sparse":
        ref = fastconv_mod.conv2d(dense, k, padding="same", algorithm="direct")
        err = float(np.max(np.abs(result - ref))) / (float(np.max(np.abs(ref))) or 1.0)
        assert err < 1e-5, f"sparse image disagrees with the dense path: {err:.3g}"
