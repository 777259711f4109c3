"""Transposed convolution and gradient benchmarks (DESIGN.md section 5):
fastconv vs torch, float32, side by side in one process.

* ``conv_transpose2d`` 256 -> 128 channels, kernel 4, stride 2, padding 1,
  16x16 -> 32x32 (a DCGAN / U-Net upsampling layer), N=1 and N=8:
  ``fastconv.conv_transpose2d`` (``algorithm="auto"``, and the forced
  "im2col" (GEMM + col2im), "direct" (polyphase) and "winograd" (the
  sub-pixel form: the four phases stacked into one 2x2 convolution,
  Winograd F(3x3,2x2)) paths) vs ``torch.nn.functional.conv_transpose2d``.
* The gradients of the 3x3 stride-1 pad-1 64 -> 64 layer at 56x56, N=8:
  ``fastconv.grad.conv2d_input`` / ``conv2d_weight`` vs
  ``torch.nn.grad.conv2d_input`` / ``conv2d_weight``; also the weight
  gradients of 256 -> 256 at 14x14 (N=8) and 512 -> 512 at 7x7 (N=1),
  without targets.
* ``ci``: a small transposed convolution (64 -> 32, k4 s2, 8x8, N=1).

Targets (``TARGETS``, reported by ``benchmarks/report.py``): the fastconv
auto benchmark of each case at least 1.0x torch's speed.  fastconv's
results are checked against torch's after timing (max error / max |ref|
below 1e-4).
"""
from __future__ import annotations

import numpy as np
import pytest

# name -> (kind, C_in, C_out, H, k, stride, padding, N)
CASES = {
    "conv_transpose2d 256->128 k4/2 16->32 N=1": ("transpose", 256, 128, 16, 4, 2, 1, 1),
    "conv_transpose2d 256->128 k4/2 16->32 N=8": ("transpose", 256, 128, 16, 4, 2, 1, 8),
    "grad input 3x3 64->64 @56 N=8": ("input", 64, 64, 56, 3, 1, 1, 8),
    "grad weight 3x3 64->64 @56 N=8": ("weight", 64, 64, 56, 3, 1, 1, 8),
    "grad weight 3x3 256->256 @14 N=8": ("weight", 256, 256, 14, 3, 1, 1, 8),
    "grad weight 3x3 512->512 @7 N=1": ("weight", 512, 512, 7, 3, 1, 1, 1),
    "conv_transpose2d 64->32 k4/2 8->16 N=1": ("transpose", 64, 32, 8, 4, 2, 1, 1),
}
CI_CASES = {"conv_transpose2d 64->32 k4/2 8->16 N=1"}

TARGET_IMPL = "fastconv-auto"
#: Cases without a target: more weight-gradient layers (many channels, small
#: images: the Winograd weight gradient's shared-accumulator schedule).
EXTRA = {"grad weight 3x3 256->256 @14 N=8", "grad weight 3x3 512->512 @7 N=1"}
TARGETS = {name: ("torch", 1.0) for name in CASES if name not in CI_CASES | EXTRA}

PARAMS = [pytest.param(name, id=name.replace(" ", "_"),
                       marks=[pytest.mark.ci] if name in CI_CASES else [])
          for name in CASES]
FORCED = ("im2col", "direct", "winograd")


def case_arrays(seeded, name):
    """Seeded float32 arrays: (x, weight, grad_output) as the case needs."""
    kind, cin, cout, h, k, s, p, n = CASES[name]
    rng = seeded("transpose", name)
    if kind == "transpose":
        x = rng.standard_normal((n, cin, h, h), dtype=np.float32)
        w = rng.standard_normal((cin, cout, k, k), dtype=np.float32)
        w *= np.float32(np.sqrt(1.0 / (cin * k * k)))
        return x, w, None
    x = rng.standard_normal((n, cin, h, h), dtype=np.float32)
    w = rng.standard_normal((cout, cin, k, k), dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / (cin * k * k)))
    ho = (h + 2 * p - k) // s + 1
    gy = rng.standard_normal((n, cout, ho, ho), dtype=np.float32)
    return x, w, gy


def case_flops(name):
    """2 x multiply-adds of the dense computation (same for every kind)."""
    kind, cin, cout, h, k, s, p, n = CASES[name]
    if kind == "transpose":
        return 2 * n * cin * cout * h * h * k * k
    ho = (h + 2 * p - k) // s + 1
    return 2 * n * cout * ho * ho * cin * k * k


def _describe(benchmark, name, impl, role, threads, algorithm=None):
    kind, cin, cout, h, k, s, p, n = CASES[name]
    benchmark.group = name
    benchmark.extra_info.update(
        impl=impl, role=role, family="transpose-grad", case=kind, batch=n, dtype="float32",
        flops=case_flops(name), threads=threads,
        shape=dict(c_in=cin, c_out=cout, h=h, w=h, k=k, stride=s, padding=p))
    if algorithm is not None:
        benchmark.extra_info.update(algorithm=algorithm, problem=name)
    if impl == TARGET_IMPL and name in TARGETS:
        peer, min_ratio = TARGETS[name]
        benchmark.extra_info["target"] = {"peer": peer, "min_ratio": min_ratio}


def _fastconv_call(fc, name, x, w, gy, algorithm):
    kind, cin, cout, h, k, s, p, n = CASES[name]
    if kind == "transpose":
        return lambda: fc.conv_transpose2d(x, w, None, s, p, algorithm=algorithm)
    if kind == "input":
        return lambda: fc.grad.conv2d_input(x.shape, w, gy, s, p)
    return lambda: fc.grad.conv2d_weight(x, w.shape, gy, s, p)


def _torch_call(torch, name, x, w, gy):
    kind, cin, cout, h, k, s, p, n = CASES[name]
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    if kind == "transpose":
        def call():
            with torch.no_grad():
                return torch.nn.functional.conv_transpose2d(tx, tw, None, s, p)
        return call
    tg = torch.from_numpy(gy)
    if kind == "input":
        return lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, s, p)
    return lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg, s, p)


_REFERENCE = {}


def _reference(name, x, w, gy, n_threads):
    if name not in _REFERENCE:
        try:
            import torch
        except ImportError:
            return None
        torch.set_num_threads(n_threads)
        _REFERENCE[name] = _torch_call(torch, name, x, w, gy)().numpy()
    return _REFERENCE[name]


@pytest.mark.parametrize("algorithm", ("auto",) + FORCED)
@pytest.mark.parametrize("name", PARAMS)
def test_fastconv(benchmark, fastconv_mod, n_threads, seeded, name, algorithm):
    if CASES[name][0] != "transpose" and algorithm != "auto":
        pytest.skip("the gradients have no algorithm argument")
    x, w, gy = case_arrays(seeded, name)
    call = _fastconv_call(fastconv_mod, name, x, w, gy, algorithm)
    call()  # warm-up, like the torch peer's
    _describe(benchmark, name, f"fastconv-{algorithm}", "fastconv", n_threads, algorithm)
    result = benchmark(call)
    ref = _reference(name, x, w, gy, n_threads)
    if ref is not None:
        assert result.shape == ref.shape and result.dtype == np.float32
        err = float(np.max(np.abs(result - ref))) / (float(np.max(np.abs(ref))) or 1.0)
        benchmark.extra_info["max_rel_err_vs_torch"] = err
        assert err < 1e-4, f"fastconv disagrees with torch on {name}: {err:.3g}"


@pytest.mark.parametrize("name", PARAMS)
def test_torch(benchmark, torch_mod, n_threads, seeded, name):
    x, w, gy = case_arrays(seeded, name)
    call = _torch_call(torch_mod, name, x, w, gy)
    call()  # warm-up (oneDNN primitive creation)
    _describe(benchmark, name, "torch", "peer", torch_mod.get_num_threads())
    benchmark.extra_info["version"] = torch_mod.__version__
    benchmark(call)
