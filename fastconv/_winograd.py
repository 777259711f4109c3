"""Winograd F(m x m, r x r) convolution on the CPU: planning and filters.

Minimal filtering (Winograd 1980; for CNNs Lavin & Gray, "Fast Algorithms
for Convolutional Neural Networks", CVPR 2016): an m x m output tile of an
r x r correlation is ``A^T [(G g G^T) * (B^T d B)] A`` with a = m + r - 1
transform points, so the multiplications per output drop from r^2 to
``a^2 / m^2``: for 3x3 filters 4 with F(2x2,3x3) (2.25x fewer) and 2.25
with F(4x4,3x3) (4x fewer); for 5x5 filters 9 with F(2x2,5x5) (2.78x
fewer); for 2x2 filters 1.78 with F(3x3,2x2) (2.25x fewer).  The matrices
below use the interpolation points 0, +-1 (F(2,3), F(3,2)) and 0, +-1, +-2
(F(4,3), F(2,5)) plus the point at infinity, as in Lavin & Gray; a variant
with the same points has the same input transform B^T, and G's rows are
the points' powers scaled alike.  2x2 kernels come from the transposed
convolutions with kernel 2 x stride (fastconv._transpose's sub-pixel
path).  ``fc_kernels.c`` holds the same matrices for the tile transforms.

F(6x6,3x3) is not offered: its points (+-1/2, +-2, ...) lose about two
more decimal digits, beyond the float32 bound below.

Accuracy: ``max|error| / max|reference|`` against a float64 direct
reference, He-scaled random weights (``w * sqrt(2 / (r^2 C))``),
standard-normal input, N = 1, padding (r - 1) / 2 (1 for r = 2); the
worst of 10 seeds (mean in brackets), measured on this machine:

==========  =======  =================  =================  =================
variant     dtype    64 ch, 56x56       256 ch, 14x14      512 ch, 7x7
==========  =======  =================  =================  =================
F(2x2,3x3)  float32  4.3e-7 (3.6e-7)    7.3e-7 (6.5e-7)    6.7e-7 (5.8e-7)
F(4x4,3x3)  float32  9.4e-6 (7.0e-6)    1.8e-5 (1.2e-5)    1.3e-5 (8.7e-6)
F(2x2,5x5)  float32  7.2e-6 (4.9e-6)    9.3e-6 (8.6e-6)    1.0e-5 (6.9e-6)
F(3x3,2x2)  float32  5.3e-7 (4.4e-7)    8.8e-7 (7.5e-7)    7.4e-7 (6.3e-7)
F(2x2,3x3)  float64  1.4e-15 (1.1e-15)  1.6e-15 (1.4e-15)  1.4e-15 (1.3e-15)
F(4x4,3x3)  float64  1.5e-14 (1.3e-14)  2.6e-14 (2.1e-14)  2.2e-14 (1.6e-14)
F(2x2,5x5)  float64  1.2e-14 (8.7e-15)  2.1e-14 (1.5e-14)  1.6e-14 (1.3e-14)
F(3x3,2x2)  float64  1.6e-15 (1.3e-15)  2.0e-15 (1.6e-15)  1.7e-15 (1.4e-15)
==========  =======  =================  =================  =================

(im2col gives about 5e-7 in float32 on the same layers.)  The tests hold
every variant to ``ERROR_BOUND``: 5e-5 for float32, 1e-12 for float64.
F(4x4,5x5) (a = 8 points, adding +-1/2) is not offered, for the same
reason as F(6x6,3x3).

The weight gradient of the same layers (``weight_grad``, used by
``fastconv.grad.conv2d_weight``) runs the tiles the other way round:
F(3x3, 2x2) and F(3x3, 4x4), the transposes of F(2x2,3x3) and F(4x4,3x3),
held to the same bounds.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _threads
from ._kernels import _winograd
from ._schedule import workspace

__all__ = ["VARIANTS", "transform_matrices", "filter_transform", "supported", "conv",
           "ERROR_BOUND", "weight_grad_supported", "weight_grad"]

#: Output tile sizes m of the F(m x m, r x r) variants, per filter size r.
VARIANTS_BY_SIZE = {3: (2, 4), 5: (2,), 2: (3,)}
#: Output tile sizes m of the F(m x m, 3 x 3) variants.
VARIANTS = VARIANTS_BY_SIZE[3]

#: Normwise error bounds the tests hold each variant to.
ERROR_BOUND = {np.dtype(np.float32): 5e-5, np.dtype(np.float64): 1e-12}

#: Working-memory budget per task buffer (bytes): the transformed input and
#: output tiles of a run of tile rows, a*a*(C_in/g + C_out/g)*P elements.
TASK_BYTES = 2 << 20
#: Fewest tiles per task (the GEMMs' column count) while memory allows, and
#: the most memory a task may then take (see schedule).
MIN_GEMM_TILES = 96
MAX_TASK_BYTES = 16 << 20
#: Transformed filters larger than TASK_BYTES are split among the threads
#: by output channel (see schedule), unless the input transforms of all
#: tiles exceed TASK_BYTES and the filters exceed this many times them.
SPLIT_FILTER_RATIO = 1
#: Most threads that split the output channels: each transforms all the
#: input tiles, so the duplicated work grows with the threads (measured
#: with two; more share each task as before).
SPLIT_MAX_THREADS = 4
#: Transformed filters of more bytes than this, for problems of at least
#: STREAM_MIN_TILES tiles, are written with non-temporal stores (see
#: stream_filters).
STREAM_FILTER_BYTES = 8 << 20
STREAM_MIN_TILES = 64
#: Outputs (OH*OW) below which the weight gradient uses F(3x3,2x2) (see
#: choose_weight_grad_variant).
SMALL_OUTPUT = 400


@functools.lru_cache(maxsize=None)
def transform_matrices(m: int, r: int = 3):
    """The transform matrices of F(m, r) (Lavin & Gray 2016).

    Parameters
    ----------
    m : int
        Output tile size: 2 or 4 for ``r = 3``, 2 for ``r = 5``, 3 for
        ``r = 2``.
    r : {3, 5, 2}, default 3
        Filter size.

    Returns
    -------
    bt, g, at : ndarray of float64
        B^T (a, a), G (a, r) and A^T (m, a), with a = m + r - 1; the 1-D
        correlation of d (a values) with w (r taps) is ``at @ ((g @ w) * (bt @ d))``.

    Raises
    ------
    ValueError
        If `m` is not in ``VARIANTS_BY_SIZE[r]``.
    """
    if m not in VARIANTS_BY_SIZE.get(r, ()):
        raise ValueError(f"Winograd variant m must be one of {VARIANTS_BY_SIZE.get(r, ())} "
                         f"for {r}x{r} filters, got {m!r}")
    if r == 5:
        # The points 0, 1, -1, 2, -2 (each row of G the point's powers,
        # scaled as F(4,3)'s) and infinity.
        bt = transform_matrices(4)[0]
        scale = (1 / 4, -1 / 6, -1 / 6, 1 / 24, 1 / 24)
        g = [[s * p ** j for j in range(5)] for s, p in zip(scale, (0, 1, -1, 2, -2))]
        g.append([0, 0, 0, 0, 1])
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]]
        return bt, np.array(g, dtype=np.float64), np.array(at, dtype=np.float64)
    if r == 2:
        # F(2,3)'s points 0, 1, -1 and infinity (so its B^T), G scaled alike.
        bt = transform_matrices(2)[0]
        g = [[1, 0], [0.5, 0.5], [0.5, -0.5], [0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, -1]]
        return bt, np.array(g, dtype=np.float64), np.array(at, dtype=np.float64)
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
              [0, 1, -1, 8, -8, 1]]
    return tuple(np.array(a, dtype=np.float64) for a in (bt, g, at))


def supported(problem) -> str | None:
    """Whether Winograd serves a problem.

    Parameters
    ----------
    problem : ConvProblem

    Returns
    -------
    reason : str or None
        None for conv2d with a 3x3, 5x5 or 2x2 kernel, stride 1 and
        dilation 1 (any padding, groups, batch); otherwise why not.
    """
    if problem.nd != 2:
        return "Winograd is implemented for conv2d only"
    if tuple(problem.kernel_size) not in ((3, 3), (5, 5), (2, 2)):
        return f"Winograd needs a 3x3, 5x5 or 2x2 kernel, got {tuple(problem.kernel_size)}"
    if tuple(problem.stride) != (1, 1):
        return f"Winograd needs stride 1, got {tuple(problem.stride)}"
    if tuple(problem.dilation) != (1, 1):
        return f"Winograd needs dilation 1, got {tuple(problem.dilation)}"
    return None


def filter_transform(w4, groups: int, m: int, dtype, nthreads: int = 1,
                     out=None, return_finite: bool = False, stream: bool = False):
    """U = G g G^T of every filter, laid out (a*a, groups, C_out/g, C_in/g).

    `w4` is (C_out, C_in/groups, r, r), r = 2, 3 or 5, and a = m + r - 1.
    Computed by the compiled ``fc_wino_filter`` in `dtype` (for float32 that
    rounds G's entries such as 1/6 once more, an error far below
    ERROR_BOUND) on `nthreads` threads, into `out` (a 1-D buffer of at least
    a*a*C_out*C_in/g values) if given.  With `return_finite`, returns
    ``(U, finite)``, `finite` telling whether every weight (in `dtype`) is
    finite: the transform reads each once, so "auto" need not scan them
    again.  `stream` writes U with non-temporal stores (see
    stream_filters).
    """
    r = w4.shape[-1]
    a = m + r - 1
    cout, cin_g = w4.shape[:2]
    flat = np.ascontiguousarray(w4, dtype=dtype).reshape(cout * cin_g, r * r)
    size = a * a * cout * cin_g
    u = (np.empty(size, dtype=dtype) if out is None else out[:size]).reshape(a * a, -1)
    finite = _winograd.filter_transform(flat, u, m, r, nthreads, stream)
    u = u.reshape(a * a, groups, cout // groups, cin_g)
    return (u, finite) if return_finite else u


def stream_filters(problem, m: int) -> bool:
    """Whether the filter transform of `problem` (variant m) should write
    its output with non-temporal stores.

    Transformed filters beyond STREAM_FILTER_BYTES do not stay in the
    caches until the GEMMs read them, and plain stores first read every
    line they write: streaming them saves that read.  But the GEMMs then
    read the filters from memory, which only wide GEMMs (at least
    STREAM_MIN_TILES tiles) hide.  Measured here (float32, 2 threads,
    alternating calls, plain -> streamed): 512 channels at 7x7 (16.8 MB of
    F(2,3) filters) N=8 9.76 -> 9.03, 9.24 -> 8.92 and 8.64 -> 8.45 ms,
    N=4 6.06 -> 5.85; 256 at 14x14 (9.4 MB, F(4,3)) N=4 5.00 -> 4.25 and N=8
    6.19 -> 5.88; but 512 at 7x7 with N=1 (16 tiles) 2.49 -> 2.63 and
    2.51 -> 2.67 ms, and 256 at 14x14 N=1 (4.2 MB, F(2,3), in the caches)
    0.99 -> 1.21.
    """
    a2 = transform_size(problem, m) ** 2
    oh, ow = problem.out_size
    tiles = problem.batch * -(-oh // m) * -(-ow // m)
    filter_bytes = (a2 * problem.out_channels * problem.in_channels_per_group
                    * problem.dtype.itemsize)
    return filter_bytes > STREAM_FILTER_BYTES and tiles >= STREAM_MIN_TILES


def transform_size(problem, m: int) -> int:
    """a = m + r - 1, the transform points per dimension of F(m x m, r x r)
    on `problem` (r its kernel size)."""
    return m + problem.kernel_size[0] - 1


@functools.lru_cache(maxsize=512)
def choose_variant(problem, planned: bool = False) -> int:
    """The variant m of F(m x m, r x r) for `problem`.

    F(2x2,5x5) for 5x5 kernels and F(3x3,2x2) for 2x2 ones; for 3x3 ones
    whichever of F(2x2,3x3) and F(4x4,3x3) the cost model (fastconv._cost,
    ``winograd_time``) estimates faster.  F(4,3) does 2.25 multiplications
    per output against F(2,3)'s 4, but its filters take 36 values instead
    of 16 and its 4x4 tiles waste more on ragged edges: on one 512-channel
    7x7 image F(2,3) took 3.9 ms against 6.9, at N=8 9.6 against 10.7,
    while 256 channels at 14x14, N=8, took 5.8 ms with F(4,3) against 6.7
    (this machine, float32, 2 threads, alternating calls; at N=1 the two
    are within the machine's noise there).  A `planned` call (fastconv.plan)
    transforms its filters once and is estimated by the plan model, fitted
    on plan calls: its GEMMs still read every transformed filter, which
    on one 512-channel 7x7 image (4 tiles a GEMM) keeps F(2,3) ahead.
    """
    r = problem.kernel_size[0]
    if r != 3:
        return VARIANTS_BY_SIZE[r][0]
    from ._cost import winograd_time

    return min(VARIANTS, key=lambda m: winograd_time(problem, m, planned))


def schedule(problem, m: int, nthreads: int):
    """(rows_per_task, parallel_tasks, parts) for conv_winograd.

    The tile rows of all images form one sequence, cut into tasks.  A task
    holds its tiles' transforms, ``a*a*(C_in/g + C_out/g)*P`` values for P
    tiles, within TASK_BYTES -- but takes at least MIN_GEMM_TILES tiles
    (memory permitting up to MAX_TASK_BYTES), because each task's GEMMs
    read all of the transformed filters, ``a*a*C_out*C_in/g`` values, once.
    With at least one task per thread, threads run whole tasks; otherwise
    tasks run in sequence with the threads sharing each one's transforms
    and GEMMs.  BLAS is single-threaded inside the team either way.

    When the transformed filters outgrow TASK_BYTES, the threads split the
    output channels into ``parts``: each thread transforms every input
    channel of its tasks' tiles itself, and multiplies and transforms back
    only its own output channels, with the filters it transformed (tasks of
    TASK_BYTES, in equal chunks).  Nothing one thread writes in the call is
    then read by another.  That matters where the threads' cores share no
    cache: this development VM's two vCPUs at times sit on different dies
    (a cache line's round trip between them then takes about 330 ns instead
    of 75), and with the threads sharing each task, every GEMM reading input
    transforms both threads wrote, 256-channel 14x14 layers (N=1) took 2.2
    ms instead of 1.0 while PyTorch stayed at 1.1; split, 1.0-1.05 either
    way.  The split costs each thread the whole input transform, so at most
    SPLIT_MAX_THREADS threads split, and where those transforms are large
    (more than TASK_BYTES) and the filters larger still (more than
    SPLIT_FILTER_RATIO times them) the threads share each task, the widest
    the memory cap allows: 512 channels at
    7x7, N=8, 8.8 ms shared against 10.2 split on one die, 10.7 and 10.6
    on two; the sub-pixel form of the 256->128 k4/2 transposed convolution
    at N=8 (filters 1.8 times the transforms) 9.9 / 12.4 shared against
    11.1 / 14.6 split.  With 128 channels at 28x28, N=8 (0.33 times), the
    split won on both: 4.05 / 4.39 against 4.79 / 7.01.
    """
    a2 = transform_size(problem, m) ** 2
    oh, ow = problem.out_size
    th, tw = -(-oh // m), -(-ow // m)
    total = problem.batch * th
    if total == 0:
        return 1, False, 1
    cin_g, cout_g = problem.in_channels_per_group, problem.out_channels_per_group
    item = problem.dtype.itemsize
    filter_bytes = a2 * cout_g * cin_g * item
    tiles_bytes = a2 * cin_g * total * tw * item  # the input transforms of all tiles
    if filter_bytes > TASK_BYTES:
        if (nthreads < 2 or nthreads > SPLIT_MAX_THREADS or cout_g < 2
                or (tiles_bytes > TASK_BYTES and filter_bytes > SPLIT_FILTER_RATIO * tiles_bytes)):
            row_bytes = a2 * (cin_g + cout_g) * tw * item
            return min(total, max(1, MAX_TASK_BYTES // row_bytes)), False, 1
        parts = min(nthreads, cout_g)
        kpart = -(-cout_g // parts)
        row_bytes = a2 * (cin_g + kpart) * tw * item
        rows = max(1, TASK_BYTES // row_bytes, -(-MIN_GEMM_TILES // tw))
        rows = min(total, rows, max(1, MAX_TASK_BYTES // row_bytes))
        rows = -(-total // -(-total // rows))  # equal chunks
        return rows, True, parts
    row_bytes = a2 * (cin_g + cout_g) * tw * item
    cap = max(1, MAX_TASK_BYTES // row_bytes)
    rows = max(1, TASK_BYTES // row_bytes, -(-MIN_GEMM_TILES // tw))
    rows = min(total, rows, cap)
    per_group = -(-total // rows)
    if nthreads > 1 and problem.groups * per_group >= nthreads:
        # Round the task count up to a multiple of the threads.
        want = -(-problem.groups * per_group // nthreads) * nthreads
        per_group = min(total, max(1, -(-want // problem.groups)))
    # Equal tasks: the last one is not left with a sliver (or a double share).
    rows = -(-total // per_group)
    tasks = problem.groups * -(-total // rows)
    return rows, tasks >= nthreads, 1


def conv(x5, w5, bias, out5, pad_before, problem, nthreads, m=None, u=None):
    """Winograd convolution of laid-out operands (see fastconv._cpu).

    `x5` (N, C_in, 1, H, W), `w5` (C_out, C_in/g, 1, r, r), `out5`
    (N, C_out, 1, OH, OW), all C-contiguous in the problem's dtype;
    `pad_before` the leading zero padding per (D, H, W).  `u` is a
    precomputed filter transform for variant `m` (plans keep it).
    """
    m = choose_variant(problem) if m is None else m
    rows, parallel_tasks, parts = schedule(problem, m, nthreads)
    with _threads.blas_limit(1):
        if u is None:
            u = filter_transform(w5[:, :, 0], problem.groups, m, problem.dtype, nthreads)
        _winograd.conv_winograd(x5[:, :, 0], u, bias, out5[:, :, 0], m,
                                problem.kernel_size[0], pad_before[1],
                                pad_before[2], problem.groups, rows, nthreads, parallel_tasks,
                                workspace, parts)


#: Tile buffers per weight-gradient task (bytes): V and U of its tiles,
#: a*a*(C_in/g + C_out/g)*P elements, sized to stay in a core's L2 while
#: the task's GEMMs read them.
WGRAD_TASK_BYTES = 1 << 20
#: Weight-gradient tasks per thread, for balance.
WGRAD_TASKS_PER_THREAD = 4
#: Largest per-thread accumulator (a*a*C_out*C_in/g values, bytes), and
#: fewest tiles per task, for threads running whole tasks; otherwise the
#: threads share each task (see weight_grad_schedule).
WGRAD_ACC_BYTES = 3 << 20
WGRAD_MIN_TASK_TILES = 24
#: Tile buffers of a shared weight-gradient task (bytes).
WGRAD_SHARED_BYTES = 16 << 20
#: Fewest channels per group (input and output) for the Winograd weight
#: gradient: with fewer, its GEMMs degenerate and the GEMM path wins.
WGRAD_MIN_CHANNELS = 8


def weight_grad_supported(forward) -> str | None:
    """Whether the Winograd weight gradient serves a forward convolution.

    Parameters
    ----------
    forward : ConvProblem
        The forward convolution whose weight gradient is wanted.

    Returns
    -------
    reason : str or None
        None where Winograd serves the forward convolution with a 3x3
        kernel (conv2d, stride 1, dilation 1) and both channel counts per
        group are at least WGRAD_MIN_CHANNELS; otherwise why not.
    """
    reason = supported(forward)
    if reason is not None:
        return reason
    if tuple(forward.kernel_size) != (3, 3):
        return "the Winograd weight gradient serves 3x3 kernels only"
    g = forward.groups
    if min(forward.in_channels // g, forward.out_channels // g) < WGRAD_MIN_CHANNELS:
        return (f"the Winograd weight gradient needs at least {WGRAD_MIN_CHANNELS} "
                f"input and output channels per group")
    return None


def weight_grad(forward, x5, gy5, nthreads: int, m: int | None = None, workspace=workspace):
    """Weight gradient of a 3x3 stride-1 convolution by Winograd F(3x3, m x m).

    The gradient is a correlation of the input with the output gradient,
    summed over images and positions.  Cut into the forward pass's m x m
    output tiles, each tile contributes the correlation of an a x a input
    patch d with the m x m output-gradient block u, which is F(3 x 3, m x m):
    the transposition principle turns F(m, 3)'s matrices into
    ``G^T [(A u A^T) * (B^T d B)] G`` (Lavin & Gray 2016, section 5; the
    "update" kernels F(3x3, 2x2) and F(3x3, 4x4) of Nervana's neon).  The
    sum over tiles runs in the transform domain as a*a GEMMs of inner
    dimension "tiles", so the multiplications per tile drop from 9 m^2 to
    a^2: 2.25x fewer for m = 2, 4x for m = 4.

    Parameters
    ----------
    forward : ConvProblem
        The forward convolution (``weight_grad_supported`` is None).
    x5 : ndarray (N, C_in, 1, H, W)
    gy5 : ndarray (N, C_out, 1, OH, OW)
        C-contiguous, in the forward problem's dtype.
    nthreads : int
    m : {2, 4}, optional
        The variant; by default ``choose_weight_grad_variant``.

    Returns
    -------
    grad_weight : ndarray (C_out, C_in/groups, 3, 3)
    """
    m = choose_weight_grad_variant(forward) if m is None else m
    a = m + 2
    dt = forward.dtype
    g = forward.groups
    cin_g, cout = forward.in_channels // g, forward.out_channels
    rows, parallel_tasks = weight_grad_schedule(forward, m, nthreads)
    accs = nthreads if parallel_tasks else 1
    # The accumulators live in the thread's workspace (a fresh multi-megabyte
    # array per call costs page faults, and freeing it TLB shootdowns); the
    # kernel zeroes them.
    size = accs * a * a * cout * cin_g
    acc = workspace(size * dt.itemsize, dt, "winograd-wgrad-acc")[:size]
    acc = acc.reshape(accs, a * a, cout * cin_g)
    with _threads.blas_limit(1):
        _winograd.weight_grad_winograd(x5[:, :, 0], gy5[:, :, 0], acc, m,
                                       forward.padding[0][0], forward.padding[1][0], g,
                                       rows, nthreads, parallel_tasks, workspace)
    grad = np.empty((cout, cin_g, 3, 3), dtype=dt)
    _winograd.grad_filter_transform(acc, grad.reshape(cout * cin_g, 9), m, nthreads)
    return grad


def weight_grad_schedule(forward, m: int, nthreads: int):
    """(rows_per_task, parallel_tasks) for weight_grad_winograd.

    With parallel tasks every thread accumulates into an accumulator of its
    own, a*a*C_out*C_in/g values that each task's GEMMs read and write
    whole: P tiles per task make 2*P flops per accumulator value moved.
    Threads run whole tasks (WGRAD_TASK_BYTES of tile buffers, at least
    WGRAD_TASKS_PER_THREAD per thread) while the accumulator stays within
    WGRAD_ACC_BYTES and a task has at least WGRAD_MIN_TASK_TILES tiles.
    Otherwise (many channels, or few tiles) the tasks run in sequence, as
    large as WGRAD_SHARED_BYTES allows, the threads sharing each task and
    owning disjoint transform positions of one accumulator.  Measured here
    (float32, 2 threads, m from choose_weight_grad_variant): whole tasks won
    on 64 channels at 56x56 (N=8: 8.3 vs 11.9 ms) and 128 at 28x28 (N=8,
    2.4 MB accumulators, 28 tiles a task: 5.7 vs 7.7 ms); shared tasks on
    128 at 28x28 with N=1 (7 tiles a task: 0.71 vs 1.06 ms), 256 at 14x14
    (4 MB: N=8 7.9 vs 8.8 ms) and 512 at 7x7 (16 MB: N=1 3.4 vs 9.2 ms).
    """
    a = m + 2
    g, item = forward.groups, forward.dtype.itemsize
    cin_g, cout_g = forward.in_channels // g, forward.out_channels // g
    oh, ow = forward.out_size
    th, tw = -(-oh // m), -(-ow // m)
    total = forward.batch * th
    row_bytes = a * a * (cin_g + cout_g) * tw * item
    rows = max(1, min(total, WGRAD_TASK_BYTES // row_bytes))
    want = WGRAD_TASKS_PER_THREAD * nthreads
    while rows > 1 and g * -(-total // rows) < want:
        rows = -(-rows // 2)
    acc_bytes = a * a * g * cout_g * cin_g * item
    if nthreads > 1 and (acc_bytes > WGRAD_ACC_BYTES or rows * tw < WGRAD_MIN_TASK_TILES):
        return max(1, min(total, WGRAD_SHARED_BYTES // row_bytes)), False
    return rows, True


def choose_weight_grad_variant(forward) -> int:
    """F(3x3, 4x4) for large outputs, F(3x3, 2x2) for small ones: fewer than
    SMALL_OUTPUT pixels, or a side under 4.

    F(3x3, 4x4) needs 2.25x fewer multiplications per tile and output than
    F(3x3, 2x2) but 36 accumulated transform points per filter instead of
    16, and its 4x4 tiles waste more on ragged edges; on 256-channel 14x14
    and 512-channel 7x7 layers F(3x3, 2x2) measured faster here.
    """
    oh, ow = forward.out_size
    return 2 if min(oh, ow) < 4 or oh * ow < SMALL_OUTPUT else 4
