"""Autotuning: time the candidate algorithms once per problem, keep the winner.

Off by default.  When on (:func:`set_autotune` or the :func:`autotune`
context manager, process-wide like ``torch.backends.cudnn.benchmark``),
the first ``algorithm="auto"`` call for a problem -- shapes, dtype, size
arguments, padding mode and thread count, and the backend's tag (the
backend for a device backend; the density class, in tenths, of pruned
weights) -- runs every algorithm that can
serve it (except those the cost model puts above PRUNE_FACTOR times the
best estimate), keeps the fastest and uses it for every later call of that
problem.  The cache is keyed by machine too, so one file can hold the
results of several machines: :func:`save_autotune_cache` writes JSON,
:func:`load_autotune_cache` merges a file back.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import threading
import time

__all__ = ["set_autotune", "get_autotune", "autotune", "save_autotune_cache",
           "load_autotune_cache", "clear_autotune_cache", "autotune_cache"]

#: Candidates estimated slower than this multiple of the best estimate are
#: not timed (a direct convolution of a large layer can take seconds).
PRUNE_FACTOR = 8.0
#: Timed runs per candidate after one warm-up run (the best is kept).
REPEAT = 2
_FORMAT = "fastconv-autotune-1"

_lock = threading.Lock()
_enabled = False
_cache: dict = {}  # machine key -> {problem key -> {"algorithm": str, "seconds": {..}}}


def set_autotune(enabled: bool) -> bool:
    """Turn autotuning on or off for the whole process.

    Parameters
    ----------
    enabled : bool
        True to time the candidates on the first ``algorithm="auto"`` call
        of each problem and reuse the winner; False for the cost model.

    Returns
    -------
    previous : bool
        The setting before this call.

    Raises
    ------
    TypeError
        If `enabled` is not a bool.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.set_autotune(False)
    False
    """
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    with _lock:
        previous, _enabled = _enabled, enabled
    return previous


def get_autotune() -> bool:
    """Whether autotuning is on (see :func:`set_autotune`).

    Returns
    -------
    enabled : bool

    Examples
    --------
    >>> import fastconv
    >>> fastconv.get_autotune()
    False
    """
    return _enabled


@contextlib.contextmanager
def autotune(enabled: bool = True):
    """Autotuning on (or off) inside a ``with`` block, restored after it.

    The setting is process-wide: other Python threads see it during the
    block too.

    Parameters
    ----------
    enabled : bool, default True

    Raises
    ------
    TypeError
        If `enabled` is not a bool.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> with fastconv.autotune():
    ...     y = fastconv.conv2d(np.ones((8, 8)), np.ones((3, 3)))
    >>> y.shape
    (6, 6)
    """
    previous = set_autotune(enabled)
    try:
        yield
    finally:
        set_autotune(previous)


def machine_key() -> str:
    """The machine part of an autotuning cache key.

    Returns
    -------
    key : str
        Architecture, CPU model, CPU count, SIMD level in use and fastconv
        version, e.g. ``"x86_64 | AMD EPYC | 2 cpus | avx512 ... | fastconv 0.1.0"``.
    """
    from . import __version__
    from ._kernels import _runtime

    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.machine()} | {model} | {os.cpu_count()} cpus | "
            f"{_runtime.simd_level()} | fastconv {__version__}")


def problem_key(problem, nthreads: int, tag: str = "") -> str:
    """The problem part of an autotuning cache key.

    Parameters
    ----------
    problem : ConvProblem
    nthreads : int
    tag : str, default ""
        The backend's ``tuning_tag(weight)``: what else decides the winner
        besides the shapes (the backend, for a device backend; the density
        class of pruned weights, whose winner differs from dense ones).
        Empty for NumPy arrays with dense weights.

    Returns
    -------
    key : str
        Readable and stable: tag, dimensionality, shapes, size arguments,
        padding mode, dtype, bias and thread count.
    """
    p = problem
    prefix = f"{tag} " if tag else ""
    return (f"{prefix}conv{p.nd}d N={p.batch} C={p.in_channels}->{p.out_channels} "
            f"in={tuple(p.in_size)} k={tuple(p.kernel_size)} s={tuple(p.stride)} "
            f"p={tuple(tuple(x) for x in p.padding)} d={tuple(p.dilation)} g={p.groups} "
            f"{p.padding_mode} {p.dtype.name} bias={p.has_bias} threads={nthreads}")


def lookup(problem, nthreads: int, tag: str = ""):
    """The cached autotuning entry of a problem on this machine.

    Parameters
    ----------
    problem : ConvProblem
    nthreads : int
    tag : str, default ""
        See `problem_key`.

    Returns
    -------
    entry : dict or None
        ``{"algorithm": str, "seconds": {name: float}}``, or None.
    """
    with _lock:
        return _cache.get(machine_key(), {}).get(problem_key(problem, nthreads, tag))


def tune(problem, nthreads: int, candidates: dict, estimates: dict, tag: str = "") -> dict:
    """Time `candidates` (algorithm -> zero-argument callable that returns
    only when its work is done: a device backend's calls synchronise), cache
    under the key of `problem` and `tag` (see `problem_key`) and return the
    entry ``{"algorithm": fastest, "seconds": {name: best}}``."""
    best_estimate = min(estimates.get(a, float("inf")) for a in candidates)
    seconds = {}
    for name, run in candidates.items():
        if estimates.get(name, 0.0) > PRUNE_FACTOR * best_estimate:
            continue
        run()
        times = []
        for _ in range(REPEAT):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        seconds[name] = min(times)
    entry = {"algorithm": min(seconds, key=seconds.get), "seconds": seconds}
    with _lock:
        _cache.setdefault(machine_key(), {})[problem_key(problem, nthreads, tag)] = entry
    return entry


def autotune_cache() -> dict:
    """A copy of the cache: ``{machine: {problem: {"algorithm", "seconds"}}}``.

    Returns
    -------
    cache : dict

    Examples
    --------
    >>> import fastconv
    >>> isinstance(fastconv.autotune_cache(), dict)
    True
    """
    with _lock:
        return json.loads(json.dumps(_cache))


def save_autotune_cache(path) -> int:
    """Write the autotuning results to a JSON file.

    Parameters
    ----------
    path : str or os.PathLike
        File to (over)write.

    Returns
    -------
    n : int
        Number of problems saved, over all machines.

    Raises
    ------
    OSError
        If the file cannot be written.

    Examples
    --------
    >>> import fastconv, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tune.json")
    >>> fastconv.save_autotune_cache(path) >= 0
    True
    """
    data = {"format": _FORMAT, "machines": autotune_cache()}
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    return sum(len(v) for v in data["machines"].values())


def load_autotune_cache(path) -> int:
    """Merge a file written by :func:`save_autotune_cache` into the cache.

    Entries for other machines are kept (and saved again) but only the
    current machine's are used.

    Parameters
    ----------
    path : str or os.PathLike
        JSON file to read.

    Returns
    -------
    n : int
        Number of problems read, over all machines.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If it is not a fastconv autotuning file.

    Examples
    --------
    >>> import fastconv, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tune.json")
    >>> n = fastconv.save_autotune_cache(path)
    >>> fastconv.load_autotune_cache(path) == n
    True
    """
    with open(path) as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path!s} is not a fastconv autotuning file: {exc}") from None
    machines = data.get("machines") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(
            machines, dict) or not all(
            isinstance(v, dict) and all(isinstance(e, dict) and isinstance(
                e.get("algorithm"), str) for e in v.values()) for v in machines.values()):
        raise ValueError(f"{path!s} is not a fastconv autotuning file ({_FORMAT})")
    with _lock:
        for machine, entries in machines.items():
            _cache.setdefault(machine, {}).update(entries)
    return sum(len(v) for v in machines.values())


def clear_autotune_cache() -> None:
    """Forget every autotuning result.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.clear_autotune_cache()
    """
    with _lock:
        _cache.clear()
