"""Every instruction-set variant of the direct row kernel (and of the sparse
kernel, which takes the same cap) against the oracle.

The row kernel is compiled for AVX-512, AVX2+FMA and SSE2 and the best one
is picked at run time; FASTCONV_SIMD caps that choice.  Each variant runs in
a fresh interpreter (the choice is made once per process) on cases whose
rows are wide enough for full vector blocks, single vectors and ragged
tails, and on strided and dilated rows; the cases with many output channels
run the channel-blocked kernel (rows of pixel blocks with their 1/2, 1/4 and
ragged 4-pixel remainders, and for short rows the flattened-plane blocks).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

CASES = [
    # (spatial, ksize, stride, padding, dilation, dtype, C_in, C_out)
    ((5, 203), (3, 3), 1, 1, 1, np.float32, 3, 4),
    ((6, 77), (2, 5), 1, (0, 2), (1, 2), np.float64, 3, 4),
    ((4, 130), (3, 7), 1, "same", 1, np.float32, 3, 4),
    ((7, 41), (3, 3), 2, 1, 1, np.float64, 3, 4),
    ((3, 9), (1, 3), 1, 0, 1, np.float32, 3, 4),
    # channel-blocked: 9x9, 7x7 and 3x3 planes, strided and dilated rows
    ((9, 9), (3, 3), 1, 1, 1, np.float32, 5, 24),
    ((7, 7), (3, 3), 1, 1, 1, np.float64, 8, 20),
    ((5, 5), (3, 3), 1, 0, 1, np.float32, 4, 40),
    ((16, 61), (5, 5), 2, 2, 1, np.float32, 6, 18),
    ((11, 47), (3, 3), 1, 2, 2, np.float64, 3, 17),
    # channel-blocked rows of more widths: 16 (14 + a ragged 4), 32, 17 (a
    # last block reading past the last row), 30, 75, 29 strided, 38 dilated
    ((3, 16), (3, 3), 1, 1, 1, np.float32, 4, 20),
    ((3, 32), (3, 3), 1, 1, 1, np.float64, 4, 20),
    ((3, 19), (3, 3), 1, 0, 1, np.float32, 3, 17),
    ((2, 30), (2, 3), 1, (0, 1), 1, np.float32, 3, 24),
    ((3, 75), (3, 3), 1, 1, 1, np.float32, 3, 18),
    ((4, 57), (3, 3), 2, 1, 1, np.float64, 3, 20),
    ((3, 38), (3, 3), 1, 2, 2, np.float32, 3, 17),
]

SCRIPT = r"""
import json, sys, numpy as np, fastconv
from fastconv._kernels import _runtime
cases = json.loads(sys.argv[2])
out = {}
for i, (spatial, ksize, stride, padding, dilation, dt, cin, cout) in enumerate(cases):
    rng = np.random.default_rng(i)
    x = rng.standard_normal([2, cin] + spatial).astype(dt)
    w = rng.standard_normal([cout, cin] + ksize).astype(dt)
    for algo in ("direct", "sparse"):
        out[f"{algo}{i}"] = fastconv.conv2d(
            x, w, stride=stride, padding=tuple(padding) if isinstance(padding, list) else padding,
            dilation=dilation, algorithm=algo)
np.savez(sys.argv[1], **out)
print(_runtime.simd_level())
"""


def _cases_json():
    return json.dumps([(s, k, st, p, d, np.dtype(dt).name, ci, co)
                       for s, k, st, p, d, dt, ci, co in CASES])


@pytest.mark.parametrize("cap, expect_word", [("sse2", "sse2"), ("avx2", "avx2"), ("", None)])
def test_direct_kernel_variant(cap, expect_word, ref, tmp_path):
    path = tmp_path / "res.npz"
    env = dict(os.environ, FASTCONV_SIMD=cap)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(path), _cases_json()],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    level = proc.stdout.strip().splitlines()[-1]
    if expect_word is not None and expect_word not in level:
        if expect_word == "avx2":
            pytest.skip(f"this CPU has no AVX2 (kernel level: {level})")
        pytest.fail(f"FASTCONV_SIMD={cap} ran the {level} kernel")
    got = np.load(path)
    for i, (spatial, ksize, stride, padding, dilation, dt, cin, cout) in enumerate(CASES):
        rng = np.random.default_rng(i)
        x = rng.standard_normal((2, cin) + spatial).astype(dt)
        w = rng.standard_normal((cout, cin) + ksize).astype(dt)
        exp = ref.expect(x, w, None, nd=2, stride=stride, padding=padding, dilation=dilation)
        for algo in ("direct", "sparse"):
            ref.assert_matches(got[f"{algo}{i}"], exp, context=f"{level} {algo} case {i}")


PACK_SCRIPT = r"""
import sys, numpy as np
from fastconv._kernels import _direct, _runtime
import fastconv
out = {}
# transposed convolutions by GEMM + col2im, whose kernel transposes blocks of
# columns of each group's (C_in/g, C_out/g*k*k) weight: whole and ragged
# blocks of lanes rows (C_in/g = 256, 37, 1, 16, 9), groups
for dt in ("float32", "float64"):
    for i, (cin, cout_g, k, groups) in enumerate([(256, 5, 2, 1), (37, 7, 3, 1), (1, 9, 3, 1),
                                                  (32, 3, 4, 2), (27, 8, 3, 3)]):
        rng = np.random.default_rng(i)
        x = rng.standard_normal((2, cin, 5, 6)).astype(dt)
        w = rng.standard_normal((cin, cout_g, k, k)).astype(dt)
        out[f"T{dt}-{i}-x"] = x
        out[f"T{dt}-{i}-w"] = w
        out[f"T{dt}-{i}-g"] = np.array(groups)
        out[f"T{dt}-{i}-y"] = fastconv.conv_transpose2d(x, w, stride=2, padding=1,
                                                        groups=groups, algorithm="im2col")
for dt in ("float32", "float64"):
    lanes = _direct.blocked_lanes(np.dtype(dt).itemsize)
    # (groups, C_out per group, taps): ragged taps (not a multiple of the
    # lanes), a last block of 1 to lanes - 1 channels, one tap, groups
    for i, (groups, cout_g, taps) in enumerate([(1, 40, 45), (1, 3 * lanes, 4 * lanes),
                                                (2, lanes + 1, 7), (3, 5, 1), (1, 1, 33)]):
        w = np.random.default_rng(i).standard_normal((groups * cout_g, taps)).astype(dt)
        nb = -(-cout_g // lanes)
        packed = np.full((groups, nb, taps, lanes), np.nan, dt)
        _direct.pack_blocked(w, packed, cout_g, 2)
        out[f"{dt}-{i}-w"] = w
        out[f"{dt}-{i}-packed"] = packed
np.savez(sys.argv[1], **out)
print(_runtime.simd_level())
"""


def _transposed_scatter(x, w, groups, stride=2, padding=1):
    """conv_transpose2d by explicit scatter in float64 (the NumPy oracle):
    every input pixel adds its weighted kernel into the full output, which
    is then cropped by the padding."""
    n, cin, h, wd = x.shape
    cout_g, k = w.shape[1], w.shape[2]
    cin_g = cin // groups
    full = np.zeros((n, groups * cout_g, (h - 1) * stride + k, (wd - 1) * stride + k))
    for g in range(groups):
        xs = x[:, g * cin_g:(g + 1) * cin_g].astype(np.float64)
        ws = w[g * cin_g:(g + 1) * cin_g].astype(np.float64)
        contrib = np.einsum("nchw,cokl->nohwkl", xs, ws)
        for ky in range(k):
            for kx in range(k):
                full[:, g * cout_g:(g + 1) * cout_g, ky:ky + (h - 1) * stride + 1:stride,
                     kx:kx + (wd - 1) * stride + 1:stride] += contrib[..., ky, kx]
    return full[:, :, padding:full.shape[2] - padding, padding:full.shape[3] - padding]


@pytest.mark.parametrize("cap", ["sse2", "avx2", ""])
def test_weight_lane_packing_variant(cap, tmp_path):
    """The blocked kernel's weight packing against NumPy's transpose, and the
    transposed convolution's GEMM + col2im, whose kernel transposes blocks
    of the weight's columns, against a NumPy scatter (in-register lanes x
    lanes transposes, one build per instruction set)."""
    path = tmp_path / "pack.npz"
    env = dict(os.environ, FASTCONV_SIMD=cap)
    proc = subprocess.run([sys.executable, "-c", PACK_SCRIPT, str(path)], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = np.load(path)
    transposes = sorted({k.rsplit("-", 1)[0] for k in got.files if k.startswith("T")})
    assert len(transposes) == 10
    for name in transposes:
        x, w, y = got[f"{name}-x"], got[f"{name}-w"], got[f"{name}-y"]
        want = _transposed_scatter(x, w, int(got[f"{name}-g"]))
        tol = 1e-5 if x.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, want, rtol=tol, atol=tol * np.abs(want).max(),
                                   err_msg=name)
    names = sorted({k.rsplit("-", 1)[0] for k in got.files if not k.startswith("T")})
    assert len(names) == 10
    for name in names:
        w, packed = got[f"{name}-w"], got[f"{name}-packed"]
        groups, nb, taps, lanes = packed.shape
        cout_g = w.shape[0] // groups
        padded = np.zeros((groups, nb * lanes, taps), w.dtype)
        padded[:, :cout_g] = w.reshape(groups, cout_g, taps)
        expect = padded.reshape(groups, nb, lanes, taps).transpose(0, 1, 3, 2)
        np.testing.assert_array_equal(packed, expect, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, out_dhw, front, top, left", [
    ((3, 1, 7, 9), (1, 9, 11), 0, 1, 1),       # planes padded on every side
    ((2, 1, 8, 8), (1, 10, 7), 0, 2, 0),       # the right columns cropped (never read)
    ((1, 1, 5, 6), (1, 3, 6), 0, 0, 0),        # bottom rows cropped
    ((4, 1, 3, 4), (1, 12, 13), 0, 4, 5),      # rows of zeros above and below
    ((2, 1, 4, 4), (1, 6, 3), 0, 1, 3),        # left padding leaves no input column
    ((2, 3, 4, 5), (7, 6, 8), 2, 1, 2),        # volumes: zero planes before and after
    ((1, 5, 3, 3), (3, 4, 4), 0, 1, 0),        # the last planes cropped
    ((2, 2, 3, 3), (3, 3, 3), 4, 0, 0),        # front padding leaves no input plane
])
def test_pad_volumes(dtype, shape, out_dhw, front, top, left):
    """The direct and sparse kernels' zero-padded input copy against a NumPy
    oracle."""
    from fastconv._kernels import _direct

    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = np.full((shape[0],) + out_dhw, np.nan, dtype)
    _direct.pad_volumes(x, out, front, top, left, 2)
    big = np.zeros((shape[0],) + tuple(b + s_ + o for b, s_, o in
                                       zip((front, top, left), shape[1:], out_dhw)), dtype)
    big[:, front:front + shape[1], top:top + shape[2], left:left + shape[3]] = x
    np.testing.assert_array_equal(out, big[:, :out_dhw[0], :out_dhw[1], :out_dhw[2]])
