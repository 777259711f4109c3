"""Property tests of the adjoint-side and sparse features against independent oracles.

* ``conv_transpose{1,2,3}d``: ``torch.nn.functional.conv_transpose{1,2,3}d``
  in float64 (per-side padding pairs: torch's zero-padding result, cropped).
* ``fastconv.grad``: torch autograd through ``F.pad`` + ``F.conv{nd}d``.
* ``im2col`` / ``col2im``: ``torch.nn.functional.unfold`` / ``fold``.
* ``conv_matrix`` / ``ConvOperator``: the dense matrix whose columns are the
  NumPy oracle ``ref.conv`` (tests/conftest.py) applied to unit vectors, and
  the dot-product identity ``<A x, y> == <x, A^T y>``.
* ``algorithm="sparse"``: ``ref.conv`` on pruned weights.
* scipy.sparse images: ``ref.conv`` on the densified image (conv2d) and
  ``scipy.signal`` on the densified image (fastconv.signal).

Every call also checks that the caller's arrays are left unchanged and that
results have the oracle's shape and dtype.  Tolerances: float32 rtol 1e-4,
atol 1e-5 * max|oracle|; float64 1e-10 (both).
"""
import math
import os

import numpy as np
import pytest
import scipy.signal as ss
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.grad
from fastconv import signal as fsignal

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: FASTCONV_FUZZ_SCALE=k runs k times the examples, randomly seeded (for a
#: longer hunt); the default run is derandomized, so CI is deterministic.
SCALE = int(os.environ.get("FASTCONV_FUZZ_SCALE", "1"))
SETTINGS = dict(deadline=None, database=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def examples(n):
    return dict(max_examples=n * SCALE, **SETTINGS)
MODES = ("zeros", "reflect", "replicate", "circular")
CONV = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
TRANSPOSE = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d,
             3: fastconv.conv_transpose3d}
GRAD_INPUT = {1: fastconv.grad.conv1d_input, 2: fastconv.grad.conv2d_input,
              3: fastconv.grad.conv3d_input}
GRAD_WEIGHT = {1: fastconv.grad.conv1d_weight, 2: fastconv.grad.conv2d_weight,
               3: fastconv.grad.conv3d_weight}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_SPATIAL = {1: 9, 2: 7, 3: 4}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def assert_close(got, expected, dtype, what=""):
    """got (ndarray of `dtype`) matches the float64 oracle `expected`."""
    assert isinstance(got, np.ndarray), f"{what}: result is {type(got).__name__}"
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype} != {np.dtype(dtype)}"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    if np.dtype(dtype) == np.float32:
        rtol, atol = 1e-4, 1e-5 * scale
    else:
        rtol, atol = 1e-10, 1e-10 * scale
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=atol,
                               err_msg=what)


def variant(a, kind):
    """`a` as a read-only, non-contiguous or Fortran-ordered array of the same values."""
    if kind == "plain" or a.ndim == 0:
        return a
    if kind == "readonly":
        v = a.copy()
        v.setflags(write=False)
        return v
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":  # every other element of a twice-as-long last axis
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    if kind == "reversed":  # a negative-stride view holding the same values
        return np.flip(a.copy()[..., ::-1], axis=-1)
    raise AssertionError(kind)


VARIANTS = ("plain", "readonly", "fortran", "strided", "reversed")


def snapshot(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(arrays, copies):
    for a, c in zip(arrays, copies):
        if a is not None:
            np.testing.assert_array_equal(np.asarray(a), c, err_msg="input was modified")


def per_dim(draw, nd, elements):
    if draw(st.booleans()):
        return draw(elements)
    return tuple(draw(st.lists(elements, min_size=nd, max_size=nd)))


def tup(v, nd):
    return (int(v),) * nd if isinstance(v, (int, np.integer)) else tuple(int(t) for t in v)


def pad_pairs(padding, nd):
    if isinstance(padding, (int, np.integer)):
        return [(int(padding),) * 2] * nd
    return [(p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in padding]


def draw_padding(draw, nd, pairs=True, strings=False):
    kinds = ["int", "tuple"] + (["pairs"] if pairs else []) + (["same", "valid"] if strings
                                                              else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return draw(st.integers(0, 3))
    if kind == "tuple":
        return tuple(draw(st.lists(st.integers(0, 3), min_size=nd, max_size=nd)))
    if kind == "pairs":
        return tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
    return kind


def t64(a):
    return torch.from_numpy(np.array(a, dtype=np.float64, copy=True))


# --------------------------------------------------------------------------
# conv_transpose vs torch
# --------------------------------------------------------------------------
@st.composite
def transpose_problems(draw):
    nd = draw(st.integers(1, 3))
    form = draw(st.sampled_from(["batched", "unbatched", "plain"]))
    groups = 1 if form == "plain" else draw(st.integers(1, 3))
    cin = 1 if form == "plain" else groups * draw(st.integers(1, 3 if groups > 1 else 6))
    cout_g = 1 if form == "plain" else draw(st.integers(1, 3))
    n = draw(st.integers(0, 3)) if form == "batched" else None
    size = tuple(draw(st.lists(st.integers(1, MAX_SPATIAL[nd]), min_size=nd, max_size=nd)))
    ksize = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    stride = per_dim(draw, nd, st.integers(1, 3))
    dilation = per_dim(draw, nd, st.integers(1, 3))
    padding = draw_padding(draw, nd)
    s, d = tup(stride, nd), tup(dilation, nd)
    opad = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    if draw(st.booleans()) and len(set(opad)) == 1:
        opad = opad[0]
    pairs = pad_pairs(padding, nd)
    op = tup(opad, nd)
    out = tuple((ni - 1) * si - pb - pa + di * (ki - 1) + oi + 1 for ni, si, (pb, pa), di, ki, oi
                in zip(size, s, pairs, d, ksize, op))
    assume(min(out) >= 1)
    return dict(nd=nd, form=form, groups=groups, cin=cin, cout_g=cout_g, n=n, size=size,
                ksize=ksize, stride=stride, dilation=dilation, padding=padding,
                output_padding=opad, out=out,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                bias=form != "plain" and draw(st.booleans()),
                algorithm=draw(st.sampled_from(["auto", "im2col", "direct", "fft", "sparse",
                                                "winograd", "separable"])),
                variant=draw(st.sampled_from(VARIANTS)),
                seed=draw(st.integers(0, 2**32 - 1)))


def torch_transpose(p, x, w, b):
    nd = p["nd"]
    xt, wt = t64(x), t64(w)
    if p["form"] == "plain":
        xt, wt = xt[None, None], wt[None, None]
    elif p["form"] == "unbatched":
        xt = xt[None]
    bt = None if b is None else t64(b)
    pairs = pad_pairs(p["padding"], nd)
    if all(pb == pa for pb, pa in pairs):
        y = TORCH_TRANSPOSE[nd](xt, wt, bt, stride=p["stride"],
                                padding=tuple(pb for pb, _ in pairs),
                                output_padding=p["output_padding"], groups=p["groups"],
                                dilation=p["dilation"])
    else:  # per-side padding: crop torch's unpadded result
        y = TORCH_TRANSPOSE[nd](xt, wt, bt, stride=p["stride"], padding=0,
                                output_padding=p["output_padding"], groups=p["groups"],
                                dilation=p["dilation"])
        y = y[(slice(None), slice(None))
              + tuple(slice(pb, y.shape[2 + i] - pa) for i, (pb, pa) in enumerate(pairs))]
    y = y.numpy()
    if p["form"] == "plain":
        return y[0, 0]
    if p["form"] == "unbatched":
        return y[0]
    return y


@settings(**examples(150))
@given(p=transpose_problems())
def test_conv_transpose_matches_torch(p):
    rng = np.random.default_rng(p["seed"])
    nd, dt = p["nd"], p["dtype"]
    if p["form"] == "plain":
        xs, ws = p["size"], p["ksize"]
    else:
        xs = (p["cin"],) + p["size"]
        if p["form"] == "batched":
            xs = (p["n"],) + xs
        ws = (p["cin"], p["cout_g"]) + p["ksize"]
    x = variant(rng.standard_normal(xs).astype(dt), p["variant"])
    w = variant(rng.standard_normal(ws).astype(dt), p["variant"])
    b = rng.standard_normal(p["cout_g"] * p["groups"]).astype(dt) if p["bias"] else None
    copies = snapshot(x, w, b)
    try:
        got = TRANSPOSE[nd](x, w, b, p["stride"], p["padding"], p["output_padding"],
                            p["groups"], p["dilation"], algorithm=p["algorithm"])
    except ValueError as exc:
        # documented: a forced algorithm that cannot serve a phase raises
        if p["algorithm"] in ("winograd", "separable", "fft") and "cannot serve" in str(exc):
            assert_unchanged((x, w, b), copies)
            return
        raise
    assert_unchanged((x, w, b), copies)
    assert_close(got, torch_transpose(p, x, w, b), dt, str(p))


# --------------------------------------------------------------------------
# fastconv.grad vs torch autograd
# --------------------------------------------------------------------------
@st.composite
def conv_problems(draw, modes=("zeros",), strings=True, max_spatial=None):
    """A valid forward convolution (torch semantics)."""
    nd = draw(st.integers(1, 3))
    form = draw(st.sampled_from(["batched", "unbatched", "plain"]))
    groups = 1 if form == "plain" else draw(st.integers(1, 3))
    cin = 1 if form == "plain" else groups * draw(st.integers(1, 3 if groups > 1 else 6))
    cout = 1 if form == "plain" else groups * draw(st.integers(1, 2))
    n = draw(st.integers(0, 3)) if form == "batched" else None
    ksize = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    stride = per_dim(draw, nd, st.integers(1, 3))
    dilation = per_dim(draw, nd, st.integers(1, 3))
    padding = draw_padding(draw, nd, strings=strings)
    if padding == "same":
        stride = 1
    mode = draw(st.sampled_from(modes))
    d = tup(dilation, nd)
    if isinstance(padding, str):
        pairs = []
        for k, di in zip(ksize, d):
            total = di * (k - 1) if padding == "same" else 0
            pairs.append((total // 2, total - total // 2))
    else:
        pairs = pad_pairs(padding, nd)
    size = []
    top = (max_spatial or MAX_SPATIAL)[nd]
    for k, di, (lo, hi) in zip(ksize, d, pairs):
        need = max(1, di * (k - 1) + 1 - lo - hi)
        if mode == "reflect":
            need = max(need, max(lo, hi) + 1)
        elif mode == "circular":
            need = max(need, max(lo, hi))
        assume(need <= top)
        size.append(draw(st.integers(need, top)))
    return dict(nd=nd, form=form, groups=groups, cin=cin, cout=cout, n=n, size=tuple(size),
                ksize=ksize, stride=stride, dilation=dilation, padding=padding, pairs=pairs,
                padding_mode=mode, dtype=draw(st.sampled_from([np.float32, np.float64])),
                variant=draw(st.sampled_from(VARIANTS)),
                seed=draw(st.integers(0, 2**32 - 1)))


def shapes(p):
    if p["form"] == "plain":
        return p["size"], p["ksize"]
    xs = (p["cin"],) + p["size"]
    if p["form"] == "batched":
        xs = (p["n"],) + xs
    return xs, (p["cout"], p["cin"] // p["groups"]) + p["ksize"]


def torch_forward_batched(p, xt, wt):
    """torch's convolution of batched (N, C, *sp) xt, with padding pairs via F.pad."""
    flat = []
    for lo, hi in reversed(p["pairs"]):
        flat += [lo, hi]
    mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
            "circular": "circular"}[p["padding_mode"]]
    xp = F.pad(xt, flat, mode=mode) if any(flat) else xt
    return TORCH_CONV[p["nd"]](xp, wt, None, stride=p["stride"], padding=0,
                               dilation=p["dilation"], groups=p["groups"])


def to_batched(p, a, weight=False):
    if p["form"] == "plain":
        return a[None, None]
    if p["form"] == "unbatched" and not weight:
        return a[None]
    return a


def from_batched(p, a, weight=False):
    if p["form"] == "plain":
        return a[0, 0]
    if p["form"] == "unbatched" and not weight:
        return a[0]
    return a


@settings(**examples(120))
@given(p=conv_problems())
def test_grad_matches_torch_autograd(p):
    rng = np.random.default_rng(p["seed"])
    nd, dt = p["nd"], p["dtype"]
    xs, ws = shapes(p)
    x = rng.standard_normal(xs).astype(dt)
    w = rng.standard_normal(ws).astype(dt)
    xt = to_batched(p, t64(x)).requires_grad_(True)
    wt = to_batched(p, t64(w), weight=True).requires_grad_(True)
    if p["form"] == "batched" and p["n"] == 0:
        xt = torch.zeros((0,) + xt.shape[1:], dtype=torch.float64, requires_grad=True)
    y = torch_forward_batched(p, xt, wt)
    gy = rng.standard_normal(tuple(from_batched(p, y).shape)).astype(dt)
    y.backward(to_batched(p, t64(gy)))
    gx_ref = from_batched(p, xt.grad.numpy())
    gw_ref = from_batched(p, wt.grad.numpy(), weight=True)
    xv, wv, gyv = (variant(a, p["variant"]) for a in (x, w, gy))
    copies = snapshot(xv, wv, gyv)
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              groups=p["groups"])
    gx = GRAD_INPUT[nd](xs, wv, gyv, **kw)
    gw = GRAD_WEIGHT[nd](xv, ws, gyv, **kw)
    assert_unchanged((xv, wv, gyv), copies)
    assert_close(gx, gx_ref, dt, f"input grad {p}")
    assert_close(gw, gw_ref, dt, f"weight grad {p}")


# --------------------------------------------------------------------------
# im2col / col2im vs torch unfold / fold
# --------------------------------------------------------------------------
@st.composite
def unfold_problems(draw):
    kernel = per_dim(draw, 2, st.integers(1, 4))
    stride = per_dim(draw, 2, st.integers(1, 3))
    padding = per_dim(draw, 2, st.integers(0, 3))
    dilation = per_dim(draw, 2, st.integers(1, 3))
    size = []
    for k, d, pd in zip(tup(kernel, 2), tup(dilation, 2), tup(padding, 2)):
        need = max(1, d * (k - 1) + 1 - 2 * pd)
        assume(need <= 9)
        size.append(draw(st.integers(need, 9)))
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                size=tuple(size), batched=draw(st.booleans()), n=draw(st.integers(0, 3)),
                c=draw(st.integers(1, 6)), dtype=draw(st.sampled_from([np.float32, np.float64])),
                variant=draw(st.sampled_from(VARIANTS)), seed=draw(st.integers(0, 2**32 - 1)))


@settings(**examples(100))
@given(p=unfold_problems())
def test_im2col_col2im_match_torch(p):
    rng = np.random.default_rng(p["seed"])
    dt = p["dtype"]
    xs = ((p["n"],) if p["batched"] else ()) + (p["c"],) + p["size"]
    kw = dict(kernel_size=p["kernel"], dilation=p["dilation"], padding=p["padding"],
              stride=p["stride"])
    x = variant(rng.standard_normal(xs).astype(dt), p["variant"])
    copies = snapshot(x)
    cols = fastconv.im2col(x, **kw)
    assert_unchanged((x,), copies)
    expected = F.unfold(t64(x) if p["batched"] else t64(x)[None], **kw).numpy()
    assert_close(cols, expected if p["batched"] else expected[0], dt, f"im2col {p}")

    c = variant(rng.standard_normal(cols.shape).astype(dt), p["variant"])
    copies = snapshot(c)
    img = fastconv.col2im(c, p["size"], **kw)
    assert_unchanged((c,), copies)
    expected = F.fold(t64(c) if p["batched"] else t64(c)[None], p["size"], **kw).numpy()
    assert_close(img, expected if p["batched"] else expected[0], dt, f"col2im {p}")


# --------------------------------------------------------------------------
# conv_matrix / ConvOperator vs the dense matrix of the NumPy oracle
# --------------------------------------------------------------------------
def dense_matrix(ref, p, w, xs):
    """Columns: ref.conv of the unit vectors of the input space (float64)."""
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              groups=p["groups"], padding_mode=p["padding_mode"])
    n = math.prod(xs)
    cols = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        cols.append(ref.conv(e.reshape(xs), w, None, nd=p["nd"], **kw).ravel())
    return np.stack(cols, axis=1)


@settings(**examples(80))
@given(p=conv_problems(modes=MODES, max_spatial={1: 9, 2: 6, 3: 3}),
       fmt=st.sampled_from(["csr", "csc", "coo", "lil", "dia"]))
def test_conv_matrix_and_operator(ref, p, fmt):
    rng = np.random.default_rng(p["seed"])
    dt = p["dtype"]
    if p["nd"] == 3 and p["form"] == "plain":
        # conv_matrix documents only 1-D / 2-D plain kernels; a plain volume
        # kernel is given as weight[None, None] with input_shape (1, D, H, W)
        p = dict(p, form="unbatched")
    xs, ws = shapes(p)
    if p["form"] == "batched":
        xs = (max(1, min(p["n"], 2)),) + xs[1:]
    assume(math.prod(xs) <= 160)
    w = rng.standard_normal(ws).astype(dt)
    if rng.random() < 0.3:
        w[rng.random(ws) < 0.5] = 0  # stored zeros must not matter
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              groups=p["groups"], padding_mode=p["padding_mode"])
    M = dense_matrix(ref, p, w, xs)
    wv = variant(w, p["variant"])
    copies = snapshot(wv)
    A = fastconv.conv_matrix(wv, xs, format=fmt, **kw)
    assert A.format == fmt and A.shape == M.shape and A.dtype == dt
    assert_close(A.toarray(), M, dt, f"conv_matrix {p}")

    op = fastconv.ConvOperator(wv, xs, **kw)
    assert_unchanged((wv,), copies)
    assert op.shape == M.shape and op.dtype == dt
    x = rng.standard_normal(M.shape[1]).astype(dt)
    y = rng.standard_normal(M.shape[0]).astype(dt)
    xc, yc = snapshot(x, y)
    ax = op.matvec(x)
    aty = op.rmatvec(y)
    assert_unchanged((x, y), (xc, yc))
    assert_close(ax, M @ x.astype(np.float64), dt, f"matvec {p}")
    assert_close(aty, M.T @ y.astype(np.float64), dt, f"rmatvec {p}")
    # matmat / rmatmat on two columns
    X = rng.standard_normal((M.shape[1], 2)).astype(dt)
    Y = rng.standard_normal((M.shape[0], 2)).astype(dt)
    assert_close(op.matmat(X), M @ X.astype(np.float64), dt, f"matmat {p}")
    assert_close(op.rmatmat(Y), M.T @ Y.astype(np.float64), dt, f"rmatmat {p}")
    # dot-product test of the adjoint
    lhs = float(np.dot(ax.astype(np.float64), y.astype(np.float64)))
    rhs = float(np.dot(x.astype(np.float64), aty.astype(np.float64)))
    scale = float(np.abs(ax).astype(np.float64) @ np.abs(y).astype(np.float64)) + 1e-300
    tol = 1e-4 if dt == np.float32 else 1e-10
    assert abs(lhs - rhs) <= tol * scale, (lhs, rhs, p)


# --------------------------------------------------------------------------
# algorithm="sparse" (pruned weights) vs the NumPy oracle
# --------------------------------------------------------------------------
@settings(**examples(120))
@given(p=conv_problems(modes=MODES), density=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       bias=st.booleans())
def test_sparse_weights_match_oracle(ref, p, density, bias):
    rng = np.random.default_rng(p["seed"])
    dt, nd = p["dtype"], p["nd"]
    xs, ws = shapes(p)
    bias = bias and p["form"] != "plain"
    x = rng.standard_normal(xs).astype(dt)
    w = rng.standard_normal(ws).astype(dt)
    w[rng.random(ws) >= density] = 0
    b = rng.standard_normal(p["cout"]).astype(dt) if bias else None
    xv, wv = variant(x, p["variant"]), variant(w, p["variant"])
    copies = snapshot(xv, wv, b)
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              groups=p["groups"], padding_mode=p["padding_mode"])
    got = CONV[nd](xv, wv, b, algorithm="sparse", **kw)
    assert_unchanged((xv, wv, b), copies)
    if p["form"] == "batched" and p["n"] == 0:
        one = ref.conv(np.zeros((1,) + xs[1:]), w, b, nd=nd, **kw)
        assert got.shape == (0,) + one.shape[1:] and got.dtype == dt
        return
    assert_close(got, ref.conv(x, w, b, nd=nd, **kw), dt, f"sparse density {density} {p}")


# --------------------------------------------------------------------------
# scipy.sparse images
# --------------------------------------------------------------------------
SPARSE_KINDS = ("csr_array", "csc_array", "coo_array", "csr_matrix", "coo_matrix")


def sparse_image(rng, shape, density, dtype, kind):
    dense = rng.standard_normal(shape)
    if np.dtype(dtype).kind in "iu":
        dense = np.round(dense * 4)
    dense[rng.random(shape) >= density] = 0
    dense = dense.astype(dtype)
    return getattr(sp, kind)(dense), dense


@st.composite
def image_problems(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = per_dim(draw, 2, st.integers(1, 3))
    dilation = per_dim(draw, 2, st.integers(1, 3))
    padding = draw_padding(draw, 2, strings=True)
    if padding == "same":
        stride = 1
    mode = draw(st.sampled_from(MODES))
    d = tup(dilation, 2)
    if isinstance(padding, str):
        pairs = [((di * (k - 1)) // 2, di * (k - 1) - (di * (k - 1)) // 2)
                 if padding == "same" else (0, 0) for k, di in zip((kh, kw), d)]
    else:
        pairs = pad_pairs(padding, 2)
    size = []
    for k, di, (lo, hi) in zip((kh, kw), d, pairs):
        need = max(1, di * (k - 1) + 1 - lo - hi)
        if mode == "reflect":
            need = max(need, max(lo, hi) + 1)
        elif mode == "circular":
            need = max(need, max(lo, hi))
        size.append(draw(st.integers(need, 24)))
    return dict(ksize=(kh, kw), stride=stride, dilation=dilation, padding=padding,
                padding_mode=mode, size=tuple(size),
                density=draw(st.sampled_from([0.0, 0.02, 0.05, 0.3])),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                kind=draw(st.sampled_from(SPARSE_KINDS)),
                algorithm=draw(st.sampled_from(["auto", "sparse"])),
                sparse_output=draw(st.booleans()), bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def assert_sparse_unchanged(img, dense):
    np.testing.assert_array_equal(img.toarray(), dense, err_msg="sparse input was modified")


@settings(**examples(100))
@given(p=image_problems())
def test_conv2d_sparse_image_matches_oracle(ref, p):
    rng = np.random.default_rng(p["seed"])
    dt = p["dtype"]
    img, dense = sparse_image(rng, p["size"], p["density"], dt, p["kind"])
    w = rng.standard_normal(p["ksize"]).astype(dt)
    b = rng.standard_normal(1).astype(dt) if p["bias"] else None
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              padding_mode=p["padding_mode"])
    got = fastconv.conv2d(img, w, b, algorithm=p["algorithm"],
                          sparse_output=p["sparse_output"], **kw)
    assert_sparse_unchanged(img, dense)
    expected = ref.conv(dense, w, None, nd=2, **kw)
    if b is not None:
        expected = expected + float(b[0])
    if p["sparse_output"]:
        assert sp.issparse(got) and got.format == "csr"
        assert isinstance(got, sp.spmatrix) == isinstance(img, sp.spmatrix)
        got = got.toarray()
    assert_close(got, expected, dt, str(p))


@st.composite
def signal_problems(draw):
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    if mode == "valid":
        assume((h >= kh and w >= kw) or (h <= kh and w <= kw))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    return dict(size=(h, w), ksize=(kh, kw), mode=mode,
                boundary=draw(st.sampled_from(["fill", "wrap", "symm"])),
                fillvalue=draw(st.sampled_from([0, 0, 1.5, -2])),
                func=draw(st.sampled_from(["convolve2d", "correlate2d", "convolve",
                                           "correlate"])),
                density=draw(st.sampled_from([0.0, 0.02, 0.05, 0.3])), dtype=dtype,
                kdtype=np.float32 if dtype == np.float32 else dtype,
                kind=draw(st.sampled_from(SPARSE_KINDS)),
                sparse_output=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@settings(**examples(150))
@given(p=signal_problems())
def test_signal_sparse_image_matches_scipy(p):
    rng = np.random.default_rng(p["seed"])
    img, dense = sparse_image(rng, p["size"], p["density"], p["dtype"], p["kind"])
    k = rng.standard_normal(p["ksize"])
    if np.dtype(p["kdtype"]).kind in "iu":
        k = np.round(k * 3)
    k = k.astype(p["kdtype"])
    kc = k.copy()
    name = p["func"]
    if name.endswith("2d"):
        args = (p["mode"], p["boundary"], p["fillvalue"])
        if p["boundary"] != "fill" and np.dtype(p["dtype"]).kind in "iu":
            args = (p["mode"], p["boundary"], 0)
    else:
        args = (p["mode"],)
    expected = getattr(ss, name)(dense, k, *args)
    if expected.dtype.kind == "f":  # the values in float64, the dtype of the original call
        expected = getattr(ss, name)(dense.astype(np.float64), k.astype(np.float64),
                                     *args).astype(np.float64), expected.dtype
    else:
        expected = expected, expected.dtype
    expected, expected_dtype = expected
    got = getattr(fsignal, name)(img, k, *args, sparse_output=p["sparse_output"])
    assert_sparse_unchanged(img, dense)
    np.testing.assert_array_equal(k, kc)
    if p["sparse_output"]:
        assert sp.issparse(got) and got.format == "csr"
        assert isinstance(got, sp.spmatrix) == isinstance(img, sp.spmatrix)
        got = got.toarray()
    if expected_dtype.kind in "iu":
        assert got.dtype == expected_dtype, (got.dtype, expected_dtype)
        np.testing.assert_array_equal(got, expected, err_msg=str(p))
    else:
        assert_close(got, expected, expected_dtype, str(p))


# --------------------------------------------------------------------------
# larger problems: several threads, tiles, register blocks, chunks and bands
# --------------------------------------------------------------------------
@st.composite
def large_problems(draw, modes=("zeros",)):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 10))
    cout = groups * draw(st.integers(1, 6))
    n = draw(st.integers(1, 3))
    ksize = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
    stride = per_dim(draw, nd, st.integers(1, 3))
    dilation = per_dim(draw, nd, st.integers(1, 2))
    padding = draw_padding(draw, nd)
    mode = draw(st.sampled_from(modes))
    top = {1: 1500, 2: 40, 3: 12}[nd]
    pairs = pad_pairs(padding, nd)
    size = []
    for k, di, (lo, hi) in zip(ksize, tup(dilation, nd), pairs):
        need = max(1, di * (k - 1) + 1 - lo - hi, max(lo, hi) + 1, top // 4)
        size.append(draw(st.integers(need, top)))
    return dict(nd=nd, groups=groups, cin=cin, cout=cout, n=n, size=tuple(size), ksize=ksize,
                stride=stride, dilation=dilation, padding=padding, pairs=pairs,
                padding_mode=mode, form="batched",
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                workers=draw(st.sampled_from([1, 2, 3])), seed=draw(st.integers(0, 2**32 - 1)))


@settings(**examples(25))
@given(p=large_problems(modes=MODES), density=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_sparse_weights_large(ref, p, density):
    rng = np.random.default_rng(p["seed"])
    dt, nd = p["dtype"], p["nd"]
    xs, ws = shapes(p)
    x = rng.standard_normal(xs).astype(dt)
    w = rng.standard_normal(ws).astype(dt)
    w[rng.random(ws) >= density] = 0
    b = rng.standard_normal(p["cout"]).astype(dt)
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              groups=p["groups"], padding_mode=p["padding_mode"])
    got = CONV[nd](x, w, b, algorithm="sparse", workers=p["workers"], **kw)
    assert_close(got, ref.conv(x, w, b, nd=nd, **kw), dt, f"sparse density {density} {p}")


@settings(**examples(25))
@given(p=large_problems(), data=st.data())
def test_transpose_and_grad_large(p, data):
    """GEMM + col2im tiles and polyphase phases on larger problems, mixed
    dtypes (promotion), `out=` and several threads, against torch."""
    rng = np.random.default_rng(p["seed"])
    nd = p["nd"]
    xs, ws = shapes(p)
    wdt = data.draw(st.sampled_from([np.float32, np.float64]))
    dt = np.result_type(p["dtype"], wdt)
    # transposed convolution: x is the forward output's shape
    s, d = tup(p["stride"], nd), tup(p["dilation"], nd)
    opad = tuple(data.draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    cin_t = p["cin"]
    xt_shape = (p["n"], cin_t) + tuple(max(1, n // 3) for n in p["size"])
    wt_shape = (cin_t, p["cout"] // p["groups"]) + p["ksize"]
    out_size = tuple((n - 1) * si - pb - pa + di * (k - 1) + o + 1 for n, si, (pb, pa), di, k, o
                     in zip(xt_shape[2:], s, p["pairs"], d, p["ksize"], opad))
    if min(out_size) >= 1:
        x = rng.standard_normal(xt_shape).astype(p["dtype"])
        w = rng.standard_normal(wt_shape).astype(wdt)
        b = rng.standard_normal(p["cout"]).astype(wdt)
        q = dict(nd=nd, form="batched", padding=p["padding"], stride=p["stride"],
                 output_padding=opad, groups=p["groups"], dilation=p["dilation"])
        expected = torch_transpose(q, x, w, b)
        out = np.full(expected.shape, np.nan, dtype=dt)
        algorithm = data.draw(st.sampled_from(["auto", "im2col", "direct"]))
        got = TRANSPOSE[nd](x, w, b, p["stride"], p["padding"], opad, p["groups"],
                            p["dilation"], algorithm=algorithm, out=out, workers=p["workers"])
        assert got is out
        assert_close(got, expected, dt, f"transpose {algorithm} {p}")
    # gradients
    x = rng.standard_normal(xs).astype(p["dtype"])
    w = rng.standard_normal(ws).astype(wdt)
    xt = t64(x).requires_grad_(True)
    wt = t64(w).requires_grad_(True)
    if any(n + lo + hi < di * (k - 1) + 1 for n, (lo, hi), di, k
           in zip(p["size"], p["pairs"], d, p["ksize"])):
        return
    y = torch_forward_batched(p, xt, wt)
    gy = rng.standard_normal(tuple(y.shape)).astype(p["dtype"])
    y.backward(t64(gy))
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
              groups=p["groups"])
    assert_close(GRAD_INPUT[nd](xs, w, gy, **kw), xt.grad.numpy(), dt, f"input grad {p}")
    assert_close(GRAD_WEIGHT[nd](x, ws, gy, **kw), wt.grad.numpy(), p["dtype"],
                 f"weight grad {p}")


@settings(**examples(25))
@given(h=st.integers(1, 60), w=st.integers(500, 3000), kh=st.integers(1, 5), kw=st.integers(1, 7),
       mode=st.sampled_from(MODES), pad=st.integers(0, 3), stride=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]), workers=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_sparse_image_bands(ref, h, w, kh, kw, mode, pad, stride, dtype, workers, seed):
    """Wide images: the scatter runs over several bands of output rows."""
    assume(h + 2 * pad >= kh and w + 2 * pad >= kw)
    if mode == "reflect":
        assume(pad < min(h, w))
    elif mode == "circular":
        assume(pad <= min(h, w))
    rng = np.random.default_rng(seed)
    img, dense = sparse_image(rng, (h, w), 0.02, dtype, "csr_array")
    k = rng.standard_normal((kh, kw)).astype(dtype)
    kwargs = dict(stride=stride, padding=pad, padding_mode=mode)
    got = fastconv.conv2d(img, k, algorithm="sparse", workers=workers, **kwargs)
    assert_close(got, ref.conv(dense, k, nd=2, **kwargs), dtype, "conv2d")
    if stride == 1 and pad == 0 and mode == "zeros":
        for boundary in ("fill", "wrap", "symm"):
            got = fsignal.correlate2d(img, k, "same", boundary, 0.5, workers=workers)
            expected = ss.correlate2d(dense.astype(np.float64), k.astype(np.float64), "same",
                                      boundary, 0.5)
            assert_close(got, expected, dtype, f"correlate2d {boundary}")


# --------------------------------------------------------------------------
# regression: found by test_conv_matrix_and_operator under FASTCONV_SIMD=sse2
# --------------------------------------------------------------------------
# fastconv._schedule.channel_blocked admitted a conv3d with input and kernel
# depth 1 but ignored padding in depth (output depth > 1, or a single output
# plane reading the padding); the channel-blocked kernel then computed only
# output plane 0 from x's plane 0 (fastconv._cpu.CPUBackend.execute passes
# target[:, :, 0]): a ValueError ("ndarray is not C-contiguous") for a
# batch, wrong values for one image.  Fixed: channel_blocked requires no
# depth padding.


@pytest.mark.parametrize("shape, padding, stride", [
    ((1, 2, 1, 4, 4), 1, 1), ((2, 1, 1, 1), 1, 1),
    ((1, 3, 1, 5, 5), ((1, 0), (1, 1), (1, 1)), (2, 1, 1)),  # one output plane, all padding
    ((1, 3, 1, 5, 5), ((0, 1), (0, 0), (1, 1)), (2, 1, 1)),
])
def test_conv3d_direct_depth_one_with_depth_padding(ref, shape, padding, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    # 8 output channels per group: the blocked kernel's lanes (AVX-512 float64)
    w = rng.standard_normal((8, shape[-4], 1, 3, 3) if len(shape) == 5 else (8, 2, 1, 1, 1))
    got = fastconv.conv3d(x, w, stride=stride, padding=padding, algorithm="direct")
    assert_close(got, ref.conv(x, w, nd=3, stride=stride, padding=padding), np.float64,
                 "direct")

