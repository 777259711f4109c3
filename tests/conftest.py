"""Shared test helpers for fastconv.

The reference implementation below is deliberately independent of fastconv:
it is a float64 N-d cross-correlation built from NumPy's
``sliding_window_view`` and ``einsum``.  It follows
``torch.nn.functional.conv{1,2,3}d`` semantics, with ``padding_mode`` applied
the way ``torch.nn.ConvNd`` does it (pad the input with ``np.pad`` first, then
correlate without padding).

The tests run with ``--import-mode=importlib``, so test modules cannot
``from conftest import ...``.  Everything is exposed through the session-scoped
``ref`` fixture (session scope keeps it usable from Hypothesis tests).  The
helper modules beside it (``oracles.py``: transposed-convolution and
weight-gradient oracles; ``cuda_host.py``: CUDA kernels as host C++) are
imported by name: this folder is put on ``sys.path`` here.
"""

import pathlib
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

# fastconv padding_mode -> np.pad mode
NP_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",  # d c b | a b c d | c b a  (edge not repeated)
    "replicate": "edge",  # a a a | a b c d | d d d
    "circular": "wrap",  # b c d | a b c d | a b c
}
PADDING_MODES = tuple(NP_PAD_MODE)
CORE_ALGORITHMS = ("direct", "im2col", "auto")


# --------------------------------------------------------------------------
# argument normalisation (test-side, torch semantics)
# --------------------------------------------------------------------------
def ntuple(value, nd):
    """int -> (int,)*nd ; sequence of nd ints -> tuple."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * nd
    t = tuple(int(v) for v in value)
    if len(t) != nd:
        raise AssertionError(f"test bug: {value!r} is not {nd} values")
    return t


def normalize_padding(padding, ksize, dilation, nd):
    """Return a list of nd (before, after) pairs, torch semantics.

    "same" puts the extra element of an odd total padding *after*, exactly
    as torch does (left = total // 2, right = total - left).
    """
    dilation = ntuple(dilation, nd)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            pairs = []
            for k, d in zip(ksize, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return pairs
        raise AssertionError(f"test bug: padding {padding!r}")
    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * nd
    padding = tuple(padding)
    if len(padding) != nd:
        raise AssertionError(f"test bug: padding {padding!r} for nd={nd}")
    pairs = []
    for p in padding:
        if isinstance(p, (int, np.integer)):
            pairs.append((int(p), int(p)))
        else:
            lo, hi = p
            pairs.append((int(lo), int(hi)))
    return pairs


def is_stride_one(stride, nd):
    return all(s == 1 for s in ntuple(stride, nd))


def output_shape(spatial, ksize, stride=1, padding=0, dilation=1):
    """torch output-size formula; None if some output size is < 1."""
    nd = len(spatial)
    stride, dilation = ntuple(stride, nd), ntuple(dilation, nd)
    pairs = normalize_padding(padding, ksize, dilation, nd)
    out = []
    for n, k, s, d, (lo, hi) in zip(spatial, ksize, stride, dilation, pairs):
        extent = d * (k - 1) + 1
        size = n + lo + hi - extent
        if size < 0:
            return None
        out.append(size // s + 1)
    return tuple(out)


def padding_ok_for_mode(spatial, ksize, padding, dilation, padding_mode):
    """torch's limits on non-zero padding modes (reflect: pad < size,
    circular: pad <= size).  Combinations outside them are not tested."""
    nd = len(spatial)
    pairs = normalize_padding(padding, ksize, dilation, nd)
    for n, (lo, hi) in zip(spatial, pairs):
        if padding_mode == "reflect" and max(lo, hi) >= n:
            return False
        if padding_mode == "circular" and max(lo, hi) > n:
            return False
    return True


# --------------------------------------------------------------------------
# the oracle
# --------------------------------------------------------------------------
def _to_batched(x, w, nd):
    """Return (x, w, form) with x (N, C, *sp) and w (O, C/g, *k)."""
    if w.ndim == nd:
        if x.ndim != nd:
            raise AssertionError("test bug: plain form needs x.ndim == nd")
        return x[None, None], w[None, None], "plain"
    if w.ndim != nd + 2:
        raise AssertionError("test bug: weight ndim")
    if x.ndim == nd + 1:
        return x[None], w, "unbatched"
    if x.ndim == nd + 2:
        return x, w, "batched"
    raise AssertionError("test bug: x ndim")


def conv_ref(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
             padding_mode="zeros", *, nd):
    """Reference N-d cross-correlation in float64 (never calls fastconv)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    xb, wb, form = _to_batched(x, w, nd)
    stride, dilation = ntuple(stride, nd), ntuple(dilation, nd)
    ksize = wb.shape[2:]
    pairs = normalize_padding(padding, ksize, dilation, nd)
    n, c = xb.shape[:2]
    o = wb.shape[0]
    if c % groups or o % groups or wb.shape[1] != c // groups:
        raise AssertionError("test bug: channels/groups")

    mode = NP_PAD_MODE[padding_mode]
    xp = np.pad(xb, [(0, 0), (0, 0)] + [tuple(p) for p in pairs], mode=mode)

    extent = tuple(d * (k - 1) + 1 for k, d in zip(ksize, dilation))
    spatial_axes = tuple(range(2, 2 + nd))
    # (N, C, *full_out, *extent)
    win = sliding_window_view(xp, extent, axis=spatial_axes)
    sl = (slice(None), slice(None))
    sl += tuple(slice(None, None, s) for s in stride)  # output stride
    sl += tuple(slice(None, None, d) for d in dilation)  # kernel dilation
    win = win[sl]  # (N, C, *out, *k)
    out_sp = win.shape[2:2 + nd]
    if any(s == 0 for s in out_sp):
        raise AssertionError("test bug: empty output")
    cg, og = c // groups, o // groups
    win = win.reshape((n, groups, cg) + out_sp + tuple(ksize))
    wg = wb.reshape((groups, og, cg) + tuple(ksize))
    ol = "ijk"[:nd]
    kl = "uvw"[:nd]
    y = np.einsum(f"ngc{ol}{kl},goc{kl}->ngo{ol}", win, wg, optimize=True)
    y = y.reshape((n, o) + out_sp)
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64).reshape((o,) + (1,) * nd)
        y = y + b
    if form == "plain":
        return y[0, 0]
    if form == "unbatched":
        return y[0]
    return y


# --------------------------------------------------------------------------
# expected values with an honest float tolerance
# --------------------------------------------------------------------------
@dataclass
class Expected:
    value: np.ndarray  # float64 exact-ish answer
    scale: float  # max of (|W| * |X| + |b|): normwise magnitude of the terms
    k_terms: int  # number of products summed per output element
    dtype: np.dtype  # dtype the result must have
    desc: str = ""

    def tolerances(self):
        if self.dtype == np.float64:
            rtol = 1e-10
            atol = 1e-10 * self.scale
        else:
            # float32: rtol 1e-4 on the value, plus the standard worst-case
            # summation bound gamma_K ~ K * eps32 relative to sum |w||x|,
            # never below 2e-5 of that magnitude.
            eps = float(np.finfo(np.float32).eps)
            rtol = 1e-4
            atol = max(2e-5, 2.0 * self.k_terms * eps) * self.scale
        return rtol, atol


def result_dtype(*arrays):
    return np.result_type(*[np.asarray(a).dtype for a in arrays if a is not None])


def expect(x, weight, bias=None, *, nd, dtype=None, **kw):
    """Oracle answer plus tolerance data for a fastconv call."""
    value = conv_ref(x, weight, bias, nd=nd, **kw)
    absb = None if bias is None else np.abs(np.asarray(bias, dtype=np.float64))
    absval = conv_ref(np.abs(np.asarray(x, dtype=np.float64)),
                      np.abs(np.asarray(weight, dtype=np.float64)), absb, nd=nd, **kw)
    scale = float(absval.max()) if absval.size else 0.0
    w = np.asarray(weight)
    ksize = w.shape[-nd:]
    cin_g = 1 if w.ndim == nd else w.shape[1]
    k_terms = int(cin_g * np.prod(ksize))
    if dtype is None:
        dtype = result_dtype(x, weight, bias)
    return Expected(value, scale, k_terms, np.dtype(dtype))


def mismatch(got, exp: Expected):
    """Return None if got matches exp, else a short description."""
    if not isinstance(got, np.ndarray):
        return f"result is {type(got).__name__}, not ndarray"
    if got.shape != exp.value.shape:
        return f"shape {got.shape} != expected {exp.value.shape}"
    if got.dtype != exp.dtype:
        return f"dtype {got.dtype} != expected {exp.dtype}"
    g = got.astype(np.float64)
    if not np.all(np.isfinite(g)):
        return f"non-finite values in result ({np.count_nonzero(~np.isfinite(g))})"
    rtol, atol = exp.tolerances()
    err = np.abs(g - exp.value)
    bad = err > atol + rtol * np.abs(exp.value)
    if bad.any():
        idx = np.unravel_index(int(np.argmax(err - rtol * np.abs(exp.value))), err.shape)
        return (f"{np.count_nonzero(bad)}/{bad.size} elements off; worst at {idx}: "
                f"got {g[idx]!r}, expected {exp.value[idx]!r} "
                f"(max abs err {err.max():.3g}, atol {atol:.3g}, rtol {rtol:g})")
    return None


def assert_matches(got, exp: Expected, context=""):
    msg = mismatch(got, exp)
    if msg is not None:
        raise AssertionError(f"{context}: {msg}" if context else msg)


def random_case(rng, nd, *, n=2, cin=4, cout=6, groups=1, spatial=None, ksize=None,
                dtype=np.float64, bias=True):
    """Random x (n, cin, *spatial), weight (cout, cin/groups, *ksize), bias."""
    spatial = spatial or (9, 8, 7)[:nd]
    ksize = ksize or (3, 2, 3)[:nd]
    shape = (cin, *spatial) if n is None else (n, cin, *spatial)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((cout, cin // groups, *ksize)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    return x, w, b


@pytest.fixture(scope="session")
def cp():
    """CuPy with a usable GPU; skips, saying why, without CuPy or a device
    (the CuPy tests of tests/test_cuda*.py)."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install '.[cuda]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old, no device
        pytest.skip(f"CuPy cannot use a GPU here: {type(exc).__name__}: {exc}")
    if count == 0:
        pytest.skip("CuPy sees no CUDA device")
    return cupy


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """CUDA kernels built as host C++ (tests/cuda_host.py), shared by the
    tests of a session (each instantiation is compiled once)."""
    import cuda_host

    if cuda_host.GXX is None:
        pytest.skip("g++ is not on PATH (the host build of the CUDA kernels)")
    cuda = pathlib.Path(__file__).resolve().parents[1] / "fastconv" / "_kernels" / "cuda"
    return cuda_host.HostKernels(cuda, tmp_path_factory.mktemp("cuda_host"))


@pytest.fixture(params=["numpy", "cupy-host", "cupy"])
def xp(request, monkeypatch):
    """The array namespace a test runs in: ``asarray`` puts its NumPy
    inputs there, ``to_numpy`` brings results back for the oracle.

    - "numpy": the CPU backend;
    - "cupy-host": the CuPy backend with NumPy standing in for CuPy and the
      CUDA kernels run as host C++ (tests/cuda_host.py): the GPU side's code
      without a GPU;
    - "cupy": CuPy on a GPU (skips without CuPy or a device).
    """
    name = request.param
    if name == "numpy":
        return types.SimpleNamespace(name=name, asarray=np.asarray, to_numpy=np.asarray)
    if name == "cupy-host":
        import cuda_host

        cuda_host.install(monkeypatch, request.getfixturevalue("host_kernels"))
        return types.SimpleNamespace(name=name, asarray=cuda_host.host, to_numpy=np.asarray)
    cupy = request.getfixturevalue("cp")
    return types.SimpleNamespace(name=name, asarray=cupy.asarray, to_numpy=cupy.asnumpy)


@pytest.fixture(scope="session")
def ref():
    """Namespace of oracle helpers (see module docstring)."""
    return types.SimpleNamespace(
        conv=conv_ref,
        expect=expect,
        mismatch=mismatch,
        assert_matches=assert_matches,
        normalize_padding=normalize_padding,
        ntuple=ntuple,
        output_shape=output_shape,
        padding_ok_for_mode=padding_ok_for_mode,
        is_stride_one=is_stride_one,
        random_case=random_case,
        result_dtype=result_dtype,
        Expected=Expected,
        NP_PAD_MODE=NP_PAD_MODE,
        PADDING_MODES=PADDING_MODES,
        CORE_ALGORITHMS=CORE_ALGORITHMS,
    )


@pytest.fixture
def ran(monkeypatch):
    """The algorithms the CPU backend's execute runs, in call order."""
    from fastconv import _cpu

    seen = []
    real = _cpu.CPUBackend.execute

    def execute(self, prepared, x, out, nthreads):
        seen.append(prepared.algorithm)
        return real(self, prepared, x, out, nthreads)

    monkeypatch.setattr(_cpu.CPUBackend, "execute", execute)
    return seen
