"""One thread setting for the whole package.

The number of threads fastconv uses governs both its OpenMP kernels and the
BLAS library that the im2col path calls, so the two never oversubscribe the
cores: a kernel that runs its own OpenMP team holds BLAS at one thread
(threadpoolctl) for its duration, and a kernel that leaves parallelism to
BLAS gives BLAS the whole budget.

Resolution order for one call: the call's ``workers=`` argument, then the
innermost :func:`threads` context of the calling Python thread, then the
process-wide :func:`set_num_threads` value, then the number of CPUs this
process may use (affinity mask and cgroup quota).
"""
from __future__ import annotations

import contextlib
import functools
import math
import operator
import os
import threading

__all__ = ["get_num_threads", "set_num_threads", "threads"]

#: Largest thread count accepted, as a multiple of the CPUs available.
MAX_OVERSUBSCRIPTION = 4

_global_threads: int | None = None
_local = threading.local()
_controller = None
_controller_lock = threading.Lock()


def _cgroup_cpu_limit() -> int | None:
    """CPU quota of this process's cgroup (v2 ``cpu.max`` or v1), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


@functools.lru_cache(maxsize=None)
def cpu_count() -> int:
    """CPUs this process may use: affinity mask, capped by the cgroup quota.

    Returns
    -------
    n : int
        At least 1.  Computed once per process (cached).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def _check_count(n, name: str) -> int:
    """Validate a thread count: a non-zero int, negatives counting back."""
    if isinstance(n, bool):
        raise TypeError(f"{name} must be an int, got bool {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {type(n).__name__} {n!r}") from None
    if n == 0:
        raise ValueError(f"{name} must be a non-zero int, got 0")
    cpus = cpu_count()
    if n < 0:
        if -n > cpus:
            raise ValueError(f"{name}={n} asks for more CPUs than the {cpus} available")
        n = cpus + 1 + n
    if n > MAX_OVERSUBSCRIPTION * cpus:
        raise ValueError(
            f"{name}={n} is more than {MAX_OVERSUBSCRIPTION}x the {cpus} CPUs available; "
            "more threads than that only oversubscribe the cores"
        )
    return n


def get_num_threads() -> int:
    """Number of threads fastconv's kernels use in the calling thread.

    Returns
    -------
    n : int
        The innermost :func:`threads` setting of this Python thread, else the
        value of :func:`set_num_threads`, else the CPUs this process may use.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.get_num_threads() >= 1
    True
    """
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    if _global_threads is not None:
        return _global_threads
    return cpu_count()


def set_num_threads(n: int | None) -> int:
    """Set the process-wide number of threads for OpenMP kernels and BLAS.

    Parameters
    ----------
    n : int or None
        Threads to use.  Negative values count back from the CPUs available
        (-1 means all of them); None restores the default (all CPUs this
        process may use).

    Returns
    -------
    previous : int
        The setting in force before the call.

    Raises
    ------
    TypeError
        If `n` is not an int or None.
    ValueError
        If `n` is 0 or asks for more CPUs than exist (when negative).

    Examples
    --------
    >>> import fastconv
    >>> old = fastconv.set_num_threads(1)
    >>> fastconv.get_num_threads()
    1
    >>> _ = fastconv.set_num_threads(None)
    """
    global _global_threads
    previous = get_num_threads()
    _global_threads = None if n is None else _check_count(n, "n")
    return previous


@contextlib.contextmanager
def threads(n: int):
    """Context manager: use `n` threads in this Python thread inside the block.

    Parameters
    ----------
    n : int
        Threads to use; negative values count back from the CPUs available.

    Raises
    ------
    TypeError
        If `n` is not an int.
    ValueError
        If `n` is 0.

    Notes
    -----
    The setting is thread-local (like ``scipy.fft.set_workers``): other
    Python threads keep their own.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> with fastconv.threads(1):
    ...     y = fastconv.conv2d(np.ones((8, 8)), np.ones((3, 3)))
    >>> y.shape
    (6, 6)
    """
    n = _check_count(n, "n")
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(n)
    try:
        yield n
    finally:
        stack.pop()


def resolve_workers(workers) -> int:
    """The thread count for one call, from its ``workers=`` argument.

    Parameters
    ----------
    workers : int or None
        None for the current setting (:func:`get_num_threads`); a positive
        int; or a negative int counting back from the CPUs available.

    Returns
    -------
    n : int
        Threads to use, >= 1.

    Raises
    ------
    TypeError
        If `workers` is not an int or None.
    ValueError
        If `workers` is 0 or out of range.
    """
    if workers is None:
        return get_num_threads()
    return _check_count(workers, "workers")


class _BlasLimit:
    """Hold every loaded BLAS library at `n` threads inside a ``with`` block.

    BLAS thread counts are process-wide state.  Blocks asking for the same
    count share it and run at once (the chunk tasks of a Dask computation
    all ask for one thread, say); a block asking for another count waits
    until the blocks holding the current one have left.  The first block
    of a group saves the libraries' settings and the last one restores
    them, so no call sees or disturbs another's temporary value.
    threadpoolctl finds the libraries once; each use then costs a few
    ``get_num_threads``/``set_num_threads`` calls on them.
    """

    __slots__ = ("n",)
    _cond = threading.Condition()
    _holders = 0      # blocks inside, all at _current threads
    _current = None
    _saved = ()

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        cls = type(self)
        with cls._cond:
            while cls._holders and cls._current != self.n:
                cls._cond.wait()
            if not cls._holders:
                saved = []
                try:
                    for lib in _blas_libraries():
                        old = lib.get_num_threads()
                        saved.append((lib, old))
                        if old != self.n:
                            lib.set_num_threads(self.n)
                except BaseException:
                    _restore(saved)
                    raise
                cls._saved, cls._current = saved, self.n
            cls._holders += 1
        return self

    def __exit__(self, *exc):
        cls = type(self)
        with cls._cond:
            cls._holders -= 1
            if not cls._holders:
                try:
                    _restore(cls._saved)
                finally:
                    cls._saved, cls._current = [], None
                    cls._cond.notify_all()
        return False


def _restore(saved):
    for lib, old in saved:
        if lib.get_num_threads() != old:
            lib.set_num_threads(old)


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries in this process."""
    global _controller
    if _controller is None:
        with _controller_lock:
            if _controller is None:
                # Load SciPy's BLAS (the one the kernels call) before
                # threadpoolctl scans the process.
                import scipy.linalg.cython_blas  # noqa: F401
                from threadpoolctl import ThreadpoolController

                _controller = [
                    lib for lib in ThreadpoolController().lib_controllers
                    if lib.user_api == "blas"
                ]
    return _controller


def blas_limit(n: int) -> _BlasLimit:
    """Context manager holding every loaded BLAS library at `n` threads.

    Parameters
    ----------
    n : int
        BLAS threads inside the block (the kernels pass 1).

    Returns
    -------
    limit : context manager
        Restores the libraries' settings when the last block holding this
        count leaves; blocks with other counts wait for that.
    """
    return _BlasLimit(n)
