"""Build and runtime facts, for ``python -m fastconv info``."""
from __future__ import annotations

import importlib.util
import platform


def _blas_info() -> list:
    """threadpoolctl's view of the BLAS libraries loaded in this process."""
    import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS the kernels call)
    from threadpoolctl import threadpool_info

    return [
        {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "filepath",
                                  "architecture", "threading_layer")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]


def _gpu_info() -> str:
    if importlib.util.find_spec("cupy") is None:
        return "CuPy not installed (CPU backend only)"
    try:
        import cupy

        n = cupy.cuda.runtime.getDeviceCount()
        return f"CuPy {cupy.__version__}, {n} CUDA device(s)"
    except Exception as exc:  # no driver, no device
        return f"CuPy installed but no usable GPU ({type(exc).__name__}: {exc})"


def build_info() -> dict:
    """Facts about this build of fastconv and the machine it runs on.

    Returns
    -------
    info : dict
        Keys ``version``, ``python``, ``platform``, ``compiler``, ``c_args``
        (flags the kernels were compiled with), ``simd`` (instruction set
        the row kernels use on this CPU), ``openmp_version`` (the _OPENMP
        date), ``openmp_threads`` (OpenMP's default team size), ``threads`` (fastconv's
        current thread setting), ``blas`` (list of dicts from threadpoolctl)
        and ``gpu`` (CuPy availability).

    Examples
    --------
    >>> import fastconv
    >>> info = fastconv.build_info()
    >>> info["version"] == fastconv.__version__
    True
    """
    from . import __version__
    from ._kernels import _runtime
    from ._threads import get_num_threads

    return {
        "version": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "compiler": _runtime.compiler(),
        "c_args": _runtime.compile_args(),
        "simd": _runtime.simd_level(),
        "openmp_version": _runtime.openmp_version(),
        "openmp_threads": _runtime.openmp_max_threads(),
        "threads": get_num_threads(),
        "blas": _blas_info(),
        "gpu": _gpu_info(),
    }


def format_info(info: dict) -> str:
    """Human-readable lines for :func:`build_info`'s dictionary.

    Parameters
    ----------
    info : dict
        As returned by :func:`build_info`.

    Returns
    -------
    text : str
        One fact per line, as printed by ``python -m fastconv info``.
    """
    lines = [
        f"fastconv {info['version']} (Python {info['python']}, {info['platform']})",
        f"  compiler      : {info['compiler']}",
        f"  C flags       : {info['c_args']}",
        f"  SIMD in use   : {info['simd']} (function multiversioning, chosen at run time)",
        f"  OpenMP        : version {info['openmp_version']}, "
        f"{info['openmp_threads']} threads by default",
        f"  fastconv threads (OpenMP + BLAS budget): {info['threads']}",
    ]
    for lib in info["blas"]:
        lines.append(
            f"  BLAS          : {lib['internal_api']} {lib['version']} "
            f"({lib['architecture']}, {lib['threading_layer']}, {lib['num_threads']} threads) "
            f"{lib['filepath']}"
        )
    lines.append(f"  GPU           : {info['gpu']}")
    return "\n".join(lines)
