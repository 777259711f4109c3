"""Run fastconv's CUDA kernels as host C++, NumPy standing in for CuPy.

CI has no GPU, so the CuPy backend's tests that compare with the oracle
skip there.  This module lets the tests drive the backend's own Python code
(its launch configurations, tilings and layouts) and the kernels' index
arithmetic without one: each kernel instantiation the backend asks for
through ``fastconv._cuda.kernel_function`` is compiled by ``g++`` from the
same ``.cu`` source, with the CUDA keywords defined away, and a launch runs
every block and thread of the grid one after another.  Sequential threads
cannot emulate barriers, so kernels whose threads exchange data through
shared memory must be kept off that path (the direct kernel stages filters
in shared memory only when DIRECT_SHARED_BYTES allows it).

Every launch also checks that each argument has the size of the kernel
parameter it lands on (CuPy passes NumPy scalars by value with their own
size, so an int64 given for an ``int`` parameter would corrupt the call on a
GPU) and that arrays are C-contiguous.

Used through the ``cuda_host`` fixture of conftest.py.
"""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import types

import numpy as np

GXX = shutil.which("g++")

_PRELUDE = r"""
#include <cstddef>
#include <type_traits>
#include <utility>
struct fc_dim3 { unsigned x, y, z; };
static fc_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__
static inline void __syncthreads() {}
SHARED
template <typename T> static inline T __ldg(const T* p) { return *p; }
#include "SOURCE"

template <typename P> static P fc_arg(void* a) {
    if constexpr (std::is_pointer<P>::value) return static_cast<P>(a);
    else return *static_cast<P*>(a);
}
template <typename... P, std::size_t... I>
static void fc_call(void (*k)(P...), void** a, std::index_sequence<I...>) {
    k(fc_arg<P>(a[I])...);
}
template <typename... P>
static void fc_launch(void (*k)(P...), const unsigned* l, void** a) {
    gridDim = {l[0], l[1], l[2]};
    blockDim = {l[3], l[4], l[5]};
    for (unsigned bz = 0; bz < l[2]; ++bz)
    for (unsigned by = 0; by < l[1]; ++by)
    for (unsigned bx = 0; bx < l[0]; ++bx)
    for (unsigned tz = 0; tz < l[5]; ++tz)
    for (unsigned ty = 0; ty < l[4]; ++ty)
    for (unsigned tx = 0; tx < l[3]; ++tx) {
        blockIdx = {bx, by, bz};
        threadIdx = {tx, ty, tz};
        fc_call(k, a, std::index_sequence_for<P...>{});
    }
}
template <typename... P>
static int fc_sizes(void (*)(P...), int* out) {
    int i = 0;
    ((out[i++] = std::is_pointer<P>::value ? -1 : (int)sizeof(P)), ...);
    return i;
}
extern "C" void fc_host_run(const unsigned* l, void** a) { fc_launch(&KERNEL, l, a); }
extern "C" int fc_host_sizes(int* out) { return fc_sizes(&KERNEL, out); }
"""

_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _shared_definitions(code):
    """Global definitions of the source's ``extern __shared__`` arrays (the
    dynamic shared memory its kernels declare), 64 KiB each."""
    decls = re.findall(
        r"^\s*extern\s+__shared__\s+(?:__align__\([^)]*\)\s+)?([^;\[]+)\[\s*\]", code,
        re.MULTILINE)
    return "\n".join(f"alignas(16) {decl.strip()}[1 << 16];" for decl in decls)


class HostDevice:
    """Stands in for ``cupy.cuda.Device`` (a context manager doing nothing)."""

    def __init__(self, *args):
        self.args = args

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class HostArray(np.ndarray):
    """A NumPy array with CuPy's ``device.id``."""

    device = types.SimpleNamespace(id=0)


def host(a):
    """`a` as a HostArray."""
    return np.ascontiguousarray(a).view(HostArray)


def _on_device(make):
    """`make`, returning HostArrays (arrays that know their "device")."""
    return lambda *args, **kwargs: make(*args, **kwargs).view(HostArray)


class _Namespace:
    """CuPy's functions as NumPy's, for the code paths under test: array
    creation gives HostArrays, ``asnumpy`` a NumPy array, ``cuda`` the
    device and stream calls (no-ops); everything else is NumPy's."""

    asarray = staticmethod(_on_device(np.asarray))
    ascontiguousarray = staticmethod(_on_device(np.ascontiguousarray))
    empty = staticmethod(_on_device(np.empty))
    zeros = staticmethod(_on_device(np.zeros))
    asnumpy = staticmethod(np.asarray)
    cuda = types.SimpleNamespace(
        Device=HostDevice, runtime=types.SimpleNamespace(getDevice=lambda: 0),
        get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None))

    def __getattr__(self, name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def on_device(*args, **kwargs):  # NumPy's results as HostArrays
            result = attr(*args, **kwargs)
            return result.view(HostArray) if type(result) is np.ndarray else result
        return on_device


#: Stands in for the ``cupy`` module.
NAMESPACE = _Namespace()


class HostKernels:
    """``kernel_function`` for host builds of the CUDA sources.

    Parameters
    ----------
    source_dir : pathlib.Path
        fastconv/_kernels/cuda.
    build_dir : pathlib.Path
        Where the shared libraries go (one per instantiation, cached).
    """

    def __init__(self, source_dir, build_dir):
        self.source_dir, self.build_dir = source_dir, build_dir
        self.launches = []  # (kernel name, grid, block) of every launch
        self._libs = {}

    def __call__(self, filename, kernel, dtype, *params):
        targs = ", ".join([_CTYPE[np.dtype(dtype)]] + [str(int(p)) for p in params])
        name = f"{kernel}<{targs}>"
        lib = self._libs.get((filename, name))
        if lib is None:
            lib = self._libs[(filename, name)] = self._build(filename, name)
        return self._launcher(lib, name)

    def _build(self, filename, name):
        tag = f"k{len(self._libs)}"
        src = self.build_dir / f"{tag}.cpp"
        source = self.source_dir / filename
        src.write_text(_PRELUDE.replace("SOURCE", str(source)).replace("KERNEL", name)
                       .replace("SHARED", _shared_definitions(source.read_text())))
        lib = self.build_dir / f"{tag}.so"
        res = subprocess.run([GXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-w",
                              str(src), "-o", str(lib)], capture_output=True, text=True)
        if res.returncode != 0:
            raise AssertionError(f"g++ failed on {filename} ({name}):\n{res.stderr}")
        lib = ctypes.CDLL(str(lib))
        sizes = (ctypes.c_int * 64)()
        lib.sizes = tuple(sizes[:lib.fc_host_sizes(sizes)])
        return lib

    def _launcher(self, lib, name):
        def launch(grid, block, args, shared_mem=0):
            assert len(args) == len(lib.sizes), (name, len(args), len(lib.sizes))
            pointers, keep = [], []
            for i, (a, size) in enumerate(zip(args, lib.sizes)):
                if size < 0:
                    assert isinstance(a, np.ndarray) and a.flags.c_contiguous, (name, i)
                    pointers.append(a.ctypes.data)
                else:
                    value = np.array(a)
                    assert value.ndim == 0 and value.dtype.itemsize == size, (
                        f"{name}: argument {i} is {value.dtype}, the parameter has "
                        f"{size} bytes")
                    keep.append(value)
                    pointers.append(value.ctypes.data)
            grid3 = tuple(grid) + (1,) * (3 - len(grid))
            block3 = tuple(block) + (1,) * (3 - len(block))
            self.launches.append((name, grid3, block3))
            lib.fc_host_run((ctypes.c_uint * 6)(*grid3, *block3),
                            (ctypes.c_void_p * len(pointers))(*pointers))
        return launch


def install(monkeypatch, kernels):
    """Make fastconv's CuPy backend serve every call, on NumPy and `kernels`.

    The backend's CuPy (and fastconv._cuda_signal's) becomes NAMESPACE,
    cupyx.scipy.sparse becomes scipy.sparse and cuFFT's fast lengths
    scipy.fft's; blocks and grids are made small so that the kernels'
    grid-stride loops run; the front ends' backend lookup returns the
    backend whatever the arrays, and fastconv.signal takes HostArrays for
    CuPy arrays.  Undone by `monkeypatch`.

    Returns
    -------
    fastconv._cuda.CuPyBackend
    """
    import scipy.fft
    import scipy.sparse

    from fastconv import _api, _cuda, _cuda_signal, _transpose, signal

    monkeypatch.setattr(_cuda, "_cupy", lambda: NAMESPACE)
    monkeypatch.setattr(_cuda, "_sparse_module", lambda: scipy.sparse)
    monkeypatch.setattr(_cuda, "_fast_len", lambda n: int(scipy.fft.next_fast_len(max(1, n))))
    monkeypatch.setattr(_cuda, "kernel_function", kernels)
    # sequential host threads cannot share a filter staged in shared memory
    monkeypatch.setattr(_cuda, "DIRECT_SHARED_BYTES", 0)
    monkeypatch.setattr(_cuda, "BLOCK", 32)
    monkeypatch.setattr(_cuda, "MAX_GRID_X", 5)
    monkeypatch.setattr(_cuda, "MAX_GRID_Y", 3)
    backend = _cuda.CuPyBackend()
    for module in (_api, _transpose):
        monkeypatch.setattr(module, "backend_for", lambda *arrays: backend)
    # host arrays reach the backend as they are, as CuPy arrays do
    monkeypatch.setattr(_transpose, "_plain", lambda a: a)
    # fastconv.signal: HostArrays take its CuPy path
    monkeypatch.setattr(signal, "is_cupy_array", lambda a: isinstance(a, HostArray))
    monkeypatch.setattr(_cuda_signal, "_cp", lambda: NAMESPACE)
    monkeypatch.setattr(_cuda_signal, "_fast_len",
                        lambda n: int(scipy.fft.next_fast_len(max(1, n))))
    kernels.launches.clear()
    return backend
