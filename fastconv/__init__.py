"""fastconv: fast convolution for Python arrays.

Architecture::

    fastconv.signal.convolve / correlate / ... SciPy-compatible family (fastconv.signal):
            |  SciPy's checks, then            direct -> conv kernels below, one channel
            |                                  fft -> fastconv._fft (scipy.fft, overlap-add)
            |                                  auto -> fastconv._cost (fitted cost model)
    fastconv.conv1d / conv2d / conv3d          public API (fastconv._api)
    fastconv.conv_transpose*d, grad, im2col    fastconv._transpose, fastconv.grad
    fastconv.conv_matrix, ConvOperator         fastconv._operator (scipy.sparse, LinearOperator)
            |  validate + plan once            fastconv._validation -> ConvProblem
            v                                  (shapes, padding, dtype)
    backend registry by array namespace        fastconv._backends (array-api-compat)
            |
            +-- NumPy  -> CPUBackend           fastconv._cpu: layout, padding modes,
            |                                  algorithm rule, thread budget;
            |                                  .adjoint = fastconv._cpu_adjoint
            |               |
            |               v
            |         compiled leaf kernels    fastconv._kernels: _direct (SIMD rows,
            |                                  channel-blocked), _im2col / _col2im (tiled,
            |                                  BLAS GEMM), _winograd, _sparse (CSR),
            |                                  fc_kernels.c (SIMD C, per-ISA builds);
            |                                  FFT path: fastconv._fft (pocketfft)
            +-- CuPy   -> CuPyBackend          fastconv._cuda (imported on first use):
            |                                  _kernels/cuda/*.cu by NVRTC, cupy.fft
            +-- Dask   -> DaskBackend          fastconv._dask (imported on first use):
                                               wraps the backend of the chunks; lazy
                                               chunk tasks with halos (dask overlap)

    thread budget (OpenMP + BLAS together)     fastconv._threads

The front end validates and plans, backends compute, kernels are leaf code.
"""
from ._api import ALGORITHMS, conv1d, conv2d, conv3d
from ._info import build_info
from ._operator import ConvOperator, conv_matrix
from ._plan import AlgorithmChoice, Plan, choose_algorithm, plan
from ._threads import get_num_threads, set_num_threads, threads
from ._transpose import col2im, conv_transpose1d, conv_transpose2d, conv_transpose3d, im2col
from ._tuning import (autotune, autotune_cache, clear_autotune_cache, get_autotune,
                      load_autotune_cache, save_autotune_cache, set_autotune)

__version__ = "0.1.0"


def __getattr__(name):
    # ``fastconv.signal`` loads on first use (it imports scipy.signal), and so
    # does ``fastconv.grad``.
    if name in ("signal", "grad"):
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALGORITHMS",
    "AlgorithmChoice",
    "ConvOperator",
    "Plan",
    "autotune",
    "autotune_cache",
    "build_info",
    "choose_algorithm",
    "clear_autotune_cache",
    "col2im",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_matrix",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "get_autotune",
    "get_num_threads",
    "grad",
    "im2col",
    "load_autotune_cache",
    "plan",
    "save_autotune_cache",
    "set_autotune",
    "set_num_threads",
    "signal",
    "threads",
    "__version__",
]
