"""Dask backend: Dask arrays in, lazy Dask arrays out, chunk by chunk.

A ``dask.array.Array`` passed to ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``
or the convolution functions of :mod:`fastconv.signal` gives a lazy Dask
array: nothing is computed until the caller asks.  Each output chunk is one
task that runs the in-memory fastconv function on its input chunk and the
neighbouring samples its windows reach (the *halo*), on the backend of the
chunks (NumPy chunks on the compiled CPU kernels, CuPy chunks on the CUDA
kernels of the NN family).  The halo exchange is Dask's own
(:func:`dask.array.overlap.overlap`, the first half of ``map_overlap``) with
a one-sided depth, so a 2-D chunk fetches three neighbour slivers, not eight:

* correlation (forward convolution) with kernel size k, dilation d and
  stride s along an axis: an output belongs to the chunk holding the first
  sample of its window, so a chunk needs ``d*(k-1)`` samples of the next
  chunk (right halo only) and its outputs are exactly those whose window
  starts inside it, whatever the stride (strides need not divide the
  chunks; a chunk can own no output);
* transposed convolution: an output ``u = i*s + t*d`` (before cropping)
  belongs to the chunk of input ``floor(u / s)``, so a chunk needs
  ``floor(d*(k-1) / s)`` samples of the previous chunk (left halo only).

Zero padding (and SciPy's "full"/"same" modes, ``boundary="fill"`` with a
zero fill) is applied by the edge chunks themselves; other padding
("reflect", "replicate", "circular"; "wrap", "symm", a non-zero fill) pads
the Dask array lazily with :func:`dask.array.pad`, whose edge pieces are
merged into the first and last chunks.  Chunks shorter than the halo are
merged with their neighbours first (kernels larger than a chunk work);
batch axes keep their chunks and need no halo; the channel axis of the NN
family becomes one chunk.  Weights, biases and kernels given as Dask
arrays reach the tasks as one Delayed array each, so nothing at all is
computed at call time.

Every output sums the same products in the same order as in memory: with
``algorithm="direct"`` (and the signal family's direct paths) the result
equals the in-memory result bit for bit (the direct kernels round a column
the same way whatever the width of the row that computes it).  "im2col"
agrees to rounding (BLAS tiles its GEMM by the chunk's pixel count); with
"auto" each chunk chooses for itself (on its own data, so NaN and Inf stay
local as in memory, and where "auto" takes the direct path, as for
one-channel images, the result is bitwise the in-memory one); FFT and
Winograd results agree with the in-memory ones to their documented
bounds.

Threads: a chunk task runs fastconv with :func:`task_threads` threads, the
thread budget divided among the tasks that run at once: on a
``dask.distributed`` worker the worker's ``nthreads`` slots, on Dask's
threaded scheduler the call's ``workers`` (default
:func:`fastconv.get_num_threads`) over the pool's threads, on the
synchronous scheduler the whole budget.  fastconv's own rule then keeps
OpenMP and BLAS from nesting inside each task.
"""
from __future__ import annotations

import itertools
import math
import sys
import threading

import numpy as np
from array_api_compat import array_namespace, is_dask_array

from . import _threads

__all__ = ["DaskBackend", "is_dask_array", "signal_call", "task_threads"]

_TORCH_PADS = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def task_threads(budget: int, concurrency_hint: int) -> int:
    """Threads one chunk task gives fastconv's kernels.

    Parameters
    ----------
    budget : int
        Threads the call may use in this process (its ``workers``, default
        :func:`fastconv.get_num_threads`); ignored on a distributed worker,
        whose own ``nthreads`` is the budget.
    concurrency_hint : int
        Number of chunk tasks of the call (at most that many run at once).

    Returns
    -------
    n : int
        ``max(1, budget // min(slots, concurrency_hint))`` where ``slots``
        is the number of tasks that run at once: the worker's ``nthreads``
        on ``dask.distributed``, the thread pool's size (Dask's
        ``num_workers`` setting, else its CPU count) on the threaded
        scheduler; the whole `budget` on the synchronous scheduler (the
        task runs in the main thread).
    """
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not inside a worker task
            worker = None
        if worker is not None:
            slots = max(1, worker.state.nthreads)
            return max(1, slots // max(1, min(slots, concurrency_hint)))
    if threading.current_thread() is threading.main_thread():
        return budget
    import dask
    import dask.system

    slots = dask.config.get("num_workers", None) or dask.system.CPU_COUNT
    return max(1, budget // max(1, min(slots, concurrency_hint)))


# --------------------------------------------------------------------------
# Per-axis chunk plans
# --------------------------------------------------------------------------

def _min_chunks(chunks, size, depth):
    """Chunks along one axis with every chunk at least `depth` long (merged)."""
    if depth <= 0:
        return tuple(chunks)
    if depth >= size:
        return (size,)
    from dask.array.overlap import ensure_minimum_chunksize

    return tuple(ensure_minimum_chunksize(depth, tuple(chunks)))


def _bounds(chunks):
    return list(itertools.pairwise(np.cumsum((0,) + tuple(chunks)).tolist()))


class _Batch:
    """An axis without halo: output chunk i is the input chunk i's slice."""

    depth = (0, 0)

    def __init__(self, chunks):
        self.chunks = tuple(chunks)
        self.out_chunks = self.chunks
        self.pieces = _bounds(self.chunks)


class _Whole:
    """An axis computed whole (channels): one chunk in, `out_len` out."""

    depth = (0, 0)

    def __init__(self, size, out_len):
        self.chunks = (size,)
        self.out_chunks = (out_len,)
        self.pieces = [(0, out_len)]


class _Window:
    """Correlation axis: output chunk i holds the outputs of input chunk i.

    Output j reads the window ``[j*s - before, j*s - before + reach]`` of
    the array (``before`` = all padding before it, of which `shift` is
    already part of the array, padded lazily, and ``pads[0]`` is zero
    padding the edge chunk adds).  Chunk [a, b) owns the outputs from
    ``ceil((a - shift) / s)`` on, so for stride 1 and "same" padding the
    output chunks are the input chunks, and ``to_zarr`` or ``da.store``
    need no rechunking.  Halo: ``before`` samples of the previous chunk and
    ``reach - before`` of the next (one-sided for "valid" and "full").

    ``pieces[i] = (start, stop, pad_before, pad_after, count)``: the slice
    of the chunk's block (halo included) the chunk's outputs need, the zero
    padding to add before and after it, and the number of outputs.
    """

    def __init__(self, chunks, size, reach, stride, pads, out_len, shift=0):
        chunks = _min_chunks(chunks, size, max(shift + pads[0], reach - shift - pads[0]))
        while True:
            self._plan(chunks, size, reach, stride, pads, out_len, shift)
            # A chunk that owns no output (the tail of a "valid" correlation,
            # a chunk shorter than the stride) joins the chunk before it.
            empty = [i for i, n in enumerate(self.out_chunks) if n == 0 and i]
            if not empty:
                break
            i = empty[0]
            chunks = chunks[:i - 1] + (chunks[i - 1] + chunks[i],) + chunks[i + 1:]

    def _plan(self, chunks, size, reach, stride, pads, out_len, shift):
        pb = pads[0]
        before = shift + pb
        left, right = before, max(0, reach - before)
        self.chunks = tuple(chunks)
        bounds = _bounds(self.chunks)
        if len(bounds) == 1:
            left = right = 0
        self.depth = (left, right)
        owned = [0] + [min(out_len, max(0, -(-(a - shift) // stride))) for a, _ in bounds[1:]]
        owned.append(out_len)
        self.pieces = []
        for i, (a, b) in enumerate(bounds):
            lo, hi = owned[i], max(owned[i], owned[i + 1])
            if hi == lo:
                self.pieces.append((0, 0, 0, 0, 0))
                continue
            origin = a - left if i else 0           # where the block starts
            start = lo * stride - pb                # array coordinates needed
            stop = (hi - 1) * stride - pb + reach + 1
            self.pieces.append((max(start, 0) - origin, min(stop, size) - origin,
                                max(0, -start), max(0, stop - size), hi - lo))
        self.out_chunks = tuple(p[4] for p in self.pieces)


class _Scatter:
    """Transposed-convolution axis: uncropped outputs u in [a*s, b*s) belong
    to chunk [a, b) (the last chunk takes the tail); left halo
    ``floor(reach / s)``.

    ``pieces[i] = (offset, count)``: where the chunk's outputs start in the
    transposed convolution of its block (halo included, no padding), and
    how many there are.
    """

    def __init__(self, chunks, size, reach, stride, crop_before, out_len):
        halo = reach // stride
        self.chunks = _min_chunks(chunks, size, halo)
        self.depth = (halo if len(self.chunks) > 1 else 0, 0)
        bounds = _bounds(self.chunks)
        last = len(bounds) - 1
        self.pieces = []
        for i, (a, b) in enumerate(bounds):
            first_in = max(0, a - self.depth[0])
            lo = max(a * stride, crop_before)
            hi = crop_before + out_len if i == last else min(b * stride, crop_before + out_len)
            self.pieces.append((lo - first_in * stride, max(0, hi - lo)))
        self.out_chunks = tuple(p[1] for p in self.pieces)


def _run_blocks(x, axes, fn, dtype, meta, operands=()):
    """Apply ``fn(block, pieces, *operands)`` to every block of `x` with the
    halos of `axes` (one plan object per axis of `x`); `pieces` holds each
    axis' entry for the block, `operands` are in-memory arrays or Delayed
    ones (see :func:`_operand`), given to the tasks as arrays.  Returns the
    lazy result."""
    import dask.array as da
    from dask.array.overlap import overlap

    x = x.rechunk(tuple(ax.chunks for ax in axes))
    depth = {i: ax.depth for i, ax in enumerate(axes) if ax.depth != (0, 0)}
    if depth:
        x = overlap(x, depth=depth, boundary="none", allow_rechunk=False)
    out_chunks = tuple(ax.out_chunks for ax in axes)

    def block_fn(block, *arrays, block_id=None):
        pieces = tuple(ax.pieces[i] for ax, i in zip(axes, block_id))
        shape = tuple(c[i] for c, i in zip(out_chunks, block_id))
        if 0 in shape:
            return array_namespace(block).zeros(shape, dtype=dtype)
        return fn(block, pieces, *arrays)

    return da.map_blocks(block_fn, x, *operands, chunks=out_chunks, dtype=dtype, meta=meta,
                         token="fastconv-" + fn.__name__.replace("_chunk", ""))


def _meta(x, dtype, ndim):
    xp = array_namespace(x._meta)
    return xp.empty((0,) * ndim, dtype=dtype)


def _nblocks(axes):
    return math.prod(len(ax.out_chunks) for ax in axes)


def _lazy(a):
    """`a` as a Dask array (one chunk if it is in memory)."""
    import dask.array as da

    return a if is_dask_array(a) else da.from_array(a, chunks=a.shape)


def _operand(a):
    """A small argument (weight, bias, kernel) as the tasks receive it: a
    Dask array becomes one Delayed array, computed with the result and not
    before; in-memory arrays and None stay as they are."""
    if not is_dask_array(a):
        return a
    return a.rechunk(a.shape).to_delayed().ravel()[0]


def _stand_in(a):
    """Zeros of `a`'s shape and dtype (for checks that need no values)."""
    return np.zeros(a.shape, dtype=a.dtype) if is_dask_array(a) else a


def _pad_lazily(x, first_axis, pads, mode, **kwargs):
    """`x` padded along the axes from `first_axis` on by ``dask.array.pad``,
    its edge pieces merged into the first and last chunks."""
    import dask.array as da

    width = [(0, 0)] * first_axis + [tuple(p) for p in pads]
    padded = da.pad(x, width, mode=mode, **kwargs)
    chunks = list(x.chunks[:first_axis])
    for c, (pb, pa) in zip(x.chunks[first_axis:], pads):
        c = list(c)
        c[0] += pb
        c[-1] += pa
        chunks.append(tuple(c))
    return padded.rechunk(tuple(chunks))


# --------------------------------------------------------------------------
# The backend of the neural-network family
# --------------------------------------------------------------------------

class DaskBackend:
    """Backend for Dask arrays whose chunks another backend serves.

    Created by :func:`fastconv._backends.backend_for` around the backend of
    the chunks' namespace (``inner``).  It validates nothing itself (the
    front end did) and computes nothing at call time: :meth:`conv` and
    :meth:`conv_transpose` return lazy Dask arrays whose chunk tasks call
    fastconv's in-memory functions.

    Parameters
    ----------
    inner : backend
        The backend of the chunks (``fastconv._cpu.CPUBackend`` for NumPy
        chunks).
    """

    finite_only = ()

    def __init__(self, inner):
        self.inner = inner
        self.name = f"dask[{inner.name}]"
        self.algorithms = inner.algorithms

    @property
    def adjoint(self):
        """Gradients and im2col/col2im do not take Dask arrays."""
        raise TypeError(
            "fastconv.grad and im2col/col2im do not take Dask arrays (conv*, conv_transpose* "
            "and fastconv.signal do); compute them first (x.compute())")

    def is_array(self, a) -> bool:
        """Dask arrays are immutable: ``out=`` is refused (TypeError)."""
        raise TypeError(
            "out= cannot be used with Dask arrays (they are immutable): store the lazy "
            "result instead (dask.array.store, to_zarr)")

    def unsupported_reason(self, problem, algorithm):
        """The chunks' backend's reason (the same arguments run on every chunk)."""
        return self.inner.unsupported_reason(problem, algorithm)

    def _in_memory_only(self, *args, **kwargs):
        raise TypeError(
            "plans, choose_algorithm and autotuning take in-memory arrays: each chunk of a "
            "Dask array runs 'auto' on its own data; pass one chunk "
            "(x.blocks[0].compute()) to see its choice")

    estimate = choose_algorithm = prepare = execute = _in_memory_only

    def all_finite(self, *arrays) -> bool:
        """False: a lazy array is never scanned (that would compute it).

        The front end therefore never autotunes or trusts a whole-array
        choice; each chunk's backend applies the NaN/Inf rule to its own
        data, which is the same rule (a window either holds a NaN or not).
        """
        return False

    def auto_algorithm(self, problem, x, weight) -> str:
        """"auto": every chunk chooses for itself."""
        return "auto"

    fallback_algorithm = auto_algorithm

    @staticmethod
    def tuning_tag(weight) -> str:
        return "dask"

    # -- the computations ---------------------------------------------------

    @staticmethod
    def _batched(x, problem):
        """x as a (N, C_in, *spatial) Dask array."""
        lead = {"batched": 0, "unbatched": 1, "plain": 2}[problem.form]
        return _lazy(x)[(None,) * lead]

    @staticmethod
    def _unbatched(y, problem):
        return y[(0,) * {"batched": 0, "unbatched": 1, "plain": 2}[problem.form]]

    def conv(self, x, weight, bias, problem, algorithm, out, nthreads):
        """Lazy ``conv{nd}d``: every chunk through the in-memory function.

        Parameters
        ----------
        x : Dask array (or in-memory, with Dask `weight`/`bias`)
        weight, bias : arrays (Dask ones are materialised: they are small)
        problem : ConvProblem
        algorithm : str
            Passed to every chunk ("auto" decides per chunk).
        out : None
        nthreads : int
            Thread budget of the call (:func:`task_threads`).

        Returns
        -------
        y : dask.array.Array of ``problem.user_out_shape``, ``problem.dtype``
        """
        from . import _api

        p = problem
        xb = self._batched(x, p)
        if p.padding_mode != "zeros":
            xb = _pad_lazily(xb, 2, p.padding, _TORCH_PADS[p.padding_mode])
            sizes = tuple(n + pb + pa for n, (pb, pa) in zip(p.in_size, p.padding))
            pads, shifts = ((0, 0),) * p.nd, tuple(pb for pb, _ in p.padding)
        else:
            sizes, pads, shifts = p.in_size, p.padding, (0,) * p.nd
        axes = [_Batch(xb.chunks[0]), _Whole(p.in_channels, p.out_channels)]
        for i in range(p.nd):
            axes.append(_Window(xb.chunks[2 + i], sizes[i], p.dilation[i] * (p.kernel_size[i] - 1),
                                p.stride[i], pads[i], p.out_size[i], shifts[i]))
        conv = {1: _api.conv1d, 2: _api.conv2d, 3: _api.conv3d}[p.nd]
        hint = _nblocks(axes)

        def conv_chunk(block, pieces, weight, bias):
            if weight.ndim == p.nd:
                weight = weight[(None, None)]
            window = (slice(None), slice(None)) + tuple(slice(q[0], q[1]) for q in pieces[2:])
            return conv(block[window], weight, bias, p.stride, tuple(q[2:4] for q in pieces[2:]),
                        p.dilation, p.groups, algorithm=algorithm,
                        workers=task_threads(nthreads, hint))

        y = _run_blocks(xb, axes, conv_chunk, p.dtype, _meta(xb, p.dtype, p.nd + 2),
                        (_operand(weight), _operand(bias)))
        return self._unbatched(y, p)

    def conv_transpose(self, x, weight, bias, problem, algorithm, out, nthreads):
        """Lazy ``conv_transpose{nd}d``: every chunk through the in-memory function.

        Each chunk's block (with its left halo) is transposed-convolved
        without padding; the chunk's outputs are cut from that (zeros where
        no input reaches, e.g. ``output_padding``) and the bias is added.

        Returns
        -------
        y : dask.array.Array of ``problem.user_out_shape``, ``problem.dtype``
        """
        from . import _transpose

        try:
            self.inner.adjoint  # noqa: B018 (the chunks' backend must serve transposes)
        except TypeError as exc:
            raise TypeError(f"conv_transpose* cannot run on Dask arrays of {self.inner.name} "
                            f"chunks: {exc}") from None
        p = problem
        xb = self._batched(x, p)
        axes = [_Batch(xb.chunks[0]), _Whole(p.in_channels, p.out_channels)]
        for i in range(p.nd):
            axes.append(_Scatter(xb.chunks[2 + i], p.in_size[i],
                                 p.dilation[i] * (p.kernel_size[i] - 1), p.stride[i],
                                 p.padding[i][0], p.out_size[i]))
        transpose = getattr(_transpose, f"conv_transpose{p.nd}d")
        hint = _nblocks(axes)
        bias_shape = (-1,) + (1,) * p.nd

        def transpose_chunk(block, pieces, weight, bias):
            xp = array_namespace(block)
            if weight.ndim == p.nd:
                weight = weight[(None, None)]
            full = transpose(block, weight, None, p.stride, 0, 0, p.groups, p.dilation,
                             algorithm=algorithm, workers=task_threads(nthreads, hint))
            shape = full.shape[:2] + tuple(q[1] for q in pieces[2:])
            have = tuple(slice(q[0], min(q[0] + q[1], n)) for q, n in zip(pieces[2:], full.shape[2:]))
            part = full[(slice(None), slice(None)) + have]
            if part.shape != shape:
                y = xp.zeros(shape, dtype=full.dtype)
                y[tuple(slice(0, n) for n in part.shape)] = part
            else:
                y = xp.ascontiguousarray(part)
            if bias is not None:
                y += bias.reshape(bias_shape)
            return y

        y = _run_blocks(xb, axes, transpose_chunk, p.dtype, _meta(xb, p.dtype, p.nd + 2),
                        (_operand(weight), _operand(bias)))
        return self._unbatched(y, p)


# --------------------------------------------------------------------------
# The signal family
# --------------------------------------------------------------------------

def signal_call(name, in1, in2, mode, *, method="auto", axes=None, boundary="fill",
                fillvalue=0, workers=None):
    """Lazy ``fastconv.signal.<name>`` for Dask inputs.

    Parameters
    ----------
    name : {"convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d", "correlate2d"}
        The function of :mod:`fastconv.signal` to run on every chunk.
    in1 : Dask or NumPy array
        Chunked along every axis (a NumPy `in1` becomes one chunk).
    in2 : Dask or NumPy array
        The kernel, given whole to every chunk task (a Dask `in2` is
        computed with the result, as one array).
    mode, method, axes, boundary, fillvalue, workers
        As for the function `name`.

    Returns
    -------
    out : dask.array.Array
        The same shape and dtype as ``name(in1, in2, ...)`` in memory.

    Raises
    ------
    TypeError
        If a chunk namespace is not NumPy (the signal family runs on the
        CPU), or as the in-memory function.
    ValueError
        As the in-memory function, before anything is computed.
    """
    from . import signal as sig

    fn = getattr(sig, name)
    in1 = _lazy(in1)
    kernel_operand = _operand(in2 if is_dask_array(in2) else np.asarray(in2))
    in2 = np.asarray(_stand_in(in2))  # shape and dtype only, from here on
    if not isinstance(in1._meta, np.ndarray):
        raise TypeError(f"fastconv.signal.{name} takes Dask arrays of NumPy chunks, got chunks "
                        f"of {type(in1._meta).__module__}.{type(in1._meta).__name__}")
    two_d = name.endswith("2d")
    fft = name in ("fftconvolve", "oaconvolve")
    kwargs = ({"boundary": boundary, "fillvalue": fillvalue} if two_d
              else {"axes": axes} if fft else {"method": method})

    def whole(a, kernel):
        return fn(a, kernel, mode, **kwargs, workers=workers)

    # Argument checks and the result's dtype, as in memory, on stand-ins.
    if two_d:
        if not in1.ndim == in2.ndim == 2:
            raise ValueError(f"{name} inputs must both be 2-D arrays")
    elif in1.ndim != in2.ndim:
        raise ValueError("volume and kernel should have the same dimensionality"
                         if name == "convolve" else
                         "in1 and in2 should have the same dimensionality")
    sig._check_mode(mode)
    if not (two_d or fft):
        sig._check_method(method)
    if in1.ndim == 0 or in1.size == 0 or in2.size == 0:
        return _whole_block(in1, whole, in2, kernel_operand)
    if fft:
        _, _, conv_axes = sig._normalize_axes(in1, in2, mode, axes)
        swapped = sig._swap_needed(mode, in1.shape, in2.shape, conv_axes)
    else:
        conv_axes = list(range(in1.ndim))
        swapped = sig._swap_needed(mode, in1.shape, in2.shape)
    if two_d and (not isinstance(boundary, str) or boundary not in sig._BOUNDARIES):
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' "
                         "(or 'wrap'), and 'symmetric' (or 'symm').")
    probe = np.zeros(tuple(max(k, 1) for k in in2.shape), dtype=in1.dtype)
    dtype = fn(probe, in2, "valid", **kwargs).dtype
    if swapped:
        # SciPy's "valid" rule makes in2 the sliding operand: in1 is the
        # smaller one, so it fits in memory as one block.
        return _whole_block(in1, whole, in2, kernel_operand)

    # Non-convolved axes (fftconvolve/oaconvolve): broadcast, no halo.
    shape1 = list(in1.shape)
    for ax in range(in1.ndim):
        if ax not in conv_axes and shape1[ax] == 1 and in2.shape[ax] > 1:
            shape1[ax] = in2.shape[ax]
    if tuple(shape1) != in1.shape:
        import dask.array as da

        in1 = da.broadcast_to(in1, tuple(shape1))
    centre = (lambda k: (k - 1) // 2) if name == "correlate2d" else (lambda k: k // 2)
    pads = [sig._pads(in2.shape[ax], mode, centre(in2.shape[ax])) if ax in conv_axes
            else (0, 0) for ax in range(in1.ndim)]
    kind = sig._BOUNDARIES[boundary] if two_d else "fill"
    fill = sig._fillvalue(fillvalue, dtype) if kind == "fill" and two_d else 0
    sizes = list(in1.shape)
    shifts = [0] * in1.ndim
    if kind != "fill" or fill != 0:
        x = in1.astype(dtype) if kind == "fill" else in1
        mode_kw = ({"mode": "constant", "constant_values": fill} if kind == "fill"
                   else {"mode": sig._NP_PAD[kind]})
        in1 = _pad_lazily(x, 0, pads, **mode_kw)
        sizes = [n + pb + pa for n, (pb, pa) in zip(sizes, pads)]
        shifts = [pb for pb, _ in pads]
        pads = [(0, 0)] * in1.ndim
    out_len = [sizes[ax] + pads[ax][0] + pads[ax][1] - in2.shape[ax] + 1 if ax in conv_axes
               else sizes[ax] for ax in range(in1.ndim)]
    plan = [_Window(in1.chunks[ax], sizes[ax], in2.shape[ax] - 1, 1, pads[ax], out_len[ax],
                    shifts[ax]) if ax in conv_axes else _Batch(in1.chunks[ax]) for ax in range(in1.ndim)]
    # in2 sliced along the non-convolved axes where it is not broadcast.
    sliced = [ax for ax in range(in1.ndim) if ax not in conv_axes and in2.shape[ax] > 1]
    hint = _nblocks(plan)
    budget = _threads.resolve_workers(workers)
    chunk_kwargs = dict(kwargs)
    if two_d:
        chunk_kwargs = {"boundary": "fill", "fillvalue": 0}

    def signal_chunk(block, pieces, in2):
        window, widths = [], []
        for ax, q in enumerate(pieces):
            if ax in conv_axes:
                window.append(slice(q[0], q[1]))
                widths.append((q[2], q[3]))
            else:
                window.append(slice(None))
                widths.append((0, 0))
        part = block[tuple(window)]
        if any(w != (0, 0) for w in widths):
            part = np.pad(part, widths)
        kernel = in2
        if sliced:
            kernel = in2[tuple(slice(*pieces[ax]) if ax in sliced else slice(None)
                               for ax in range(in2.ndim))]
        return fn(part, kernel, "valid", **chunk_kwargs, workers=task_threads(budget, hint))

    signal_chunk.__name__ = name
    return _run_blocks(in1, plan, signal_chunk, dtype, np.empty((0,) * in1.ndim, dtype=dtype),
                       (kernel_operand,))


def _whole_block(in1, whole, stand_in, kernel):
    """``whole(in1, kernel)`` computed lazily as one block (small `in1` only);
    its shape and dtype from a call on zeros and the kernel's `stand_in`."""
    import dask
    import dask.array as da

    probe = np.asarray(whole(np.zeros(in1.shape, dtype=in1.dtype), stand_in))
    task = dask.delayed(lambda b, k: np.asarray(whole(b, k)), pure=True)(in1, kernel)
    return da.from_delayed(task, shape=probe.shape, dtype=probe.dtype,
                           meta=np.empty((0,) * probe.ndim, probe.dtype))
