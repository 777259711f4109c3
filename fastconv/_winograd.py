"""Winograd F(m x m, 3 x 3) convolution on the CPU: planning and filters.

Minimal filtering (Winograd 1980; for CNNs Lavin & Gray, "Fast Algorithms
for Convolutional Neural Networks", CVPR 2016): an m x m output tile of a
3 x 3 correlation is ``A^T [(G g G^T) * (B^T d B)] A`` with a = m + 2
transform points, so the multiplications per output drop from 9 to
``a^2 / m^2``: 4 for F(2x2,3x3) (2.25x fewer), 2.25 for F(4x4,3x3) (4x
fewer).  The matrices below use the interpolation points 0, +-1 (F(2,3))
and 0, +-1, +-2 (F(4,3)) plus the point at infinity, as in Lavin & Gray;
``fc_kernels.c`` holds the same B^T and A^T for the tile transforms.

F(6x6,3x3) is not offered: its points (+-1/2, +-2, ...) lose about two
more decimal digits, beyond the float32 bound below.

Accuracy: ``max|error| / max|reference|`` against a float64 direct
reference, He-scaled random weights (``w * sqrt(2 / (9 C))``),
standard-normal input, N = 1, padding 1; the worst of 10 seeds (mean in
brackets), measured on this machine:

==========  =======  =================  =================  =================
variant     dtype    64 ch, 56x56       256 ch, 14x14      512 ch, 7x7
==========  =======  =================  =================  =================
F(2x2,3x3)  float32  4.3e-7 (3.6e-7)    7.3e-7 (6.5e-7)    6.7e-7 (5.8e-7)
F(4x4,3x3)  float32  9.4e-6 (7.0e-6)    1.8e-5 (1.2e-5)    1.3e-5 (8.7e-6)
F(2x2,3x3)  float64  1.4e-15 (1.1e-15)  1.6e-15 (1.4e-15)  1.4e-15 (1.3e-15)
F(4x4,3x3)  float64  1.5e-14 (1.3e-14)  2.6e-14 (2.1e-14)  2.2e-14 (1.6e-14)
==========  =======  =================  =================  =================

(im2col gives about 5e-7 in float32 on the same layers.)  The tests hold
every variant to ``ERROR_BOUND``: 5e-5 for float32, 1e-12 for float64.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _threads
from ._kernels import _winograd
from ._schedule import workspace

__all__ = ["VARIANTS", "transform_matrices", "filter_transform", "supported", "conv",
           "ERROR_BOUND"]

#: Output tile sizes m of the F(m x m, 3 x 3) variants.
VARIANTS = (2, 4)

#: Normwise error bounds the tests hold each variant to.
ERROR_BOUND = {np.dtype(np.float32): 5e-5, np.dtype(np.float64): 1e-12}

#: Working-memory budget per task buffer (bytes): the transformed input and
#: output tiles of a run of tile rows, a*a*(C_in/g + C_out/g)*P elements.
TASK_BYTES = 2 << 20
#: Fewest tiles per task (the GEMMs' column count) while memory allows, and
#: the most memory a task may then take (see schedule).
MIN_GEMM_TILES = 96
MAX_TASK_BYTES = 16 << 20
#: Outputs (OH*OW) below which F(2x2,3x3) is used (see choose_variant).
SMALL_OUTPUT = 400


@functools.lru_cache(maxsize=None)
def transform_matrices(m: int):
    """The transform matrices of F(m, 3) (Lavin & Gray 2016).

    Parameters
    ----------
    m : {2, 4}
        Output tile size.

    Returns
    -------
    bt, g, at : ndarray of float64
        B^T (a, a), G (a, 3) and A^T (m, a), with a = m + 2; the 1-D
        correlation of d (a values) with g (3 taps) is ``at @ ((g @ w) * (bt @ d))``.

    Raises
    ------
    ValueError
        If `m` is not in VARIANTS.
    """
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
    else:
        raise ValueError(f"Winograd variant m must be one of {VARIANTS}, got {m!r}")
    return tuple(np.array(a, dtype=np.float64) for a in (bt, g, at))


def supported(problem) -> str | None:
    """Whether Winograd serves a problem.

    Parameters
    ----------
    problem : ConvProblem

    Returns
    -------
    reason : str or None
        None for conv2d with a 3x3 kernel, stride 1 and dilation 1 (any
        padding, groups, batch); otherwise why not.
    """
    if problem.nd != 2:
        return "Winograd is implemented for conv2d only"
    if tuple(problem.kernel_size) != (3, 3):
        return f"Winograd needs a 3x3 kernel, got {tuple(problem.kernel_size)}"
    if tuple(problem.stride) != (1, 1):
        return f"Winograd needs stride 1, got {tuple(problem.stride)}"
    if tuple(problem.dilation) != (1, 1):
        return f"Winograd needs dilation 1, got {tuple(problem.dilation)}"
    return None


def filter_transform(w4, groups: int, m: int, dtype, nthreads: int = 1,
                     out=None) -> np.ndarray:
    """U = G g G^T of every filter, laid out (a*a, groups, C_out/g, C_in/g).

    `w4` is (C_out, C_in/groups, 3, 3).  Computed by the compiled
    ``fc_wino_filter`` in `dtype` (for float32 that rounds G's entries such
    as 1/6 once more, an error far below ERROR_BOUND) on `nthreads` threads,
    into `out` (a 1-D buffer of at least a*a*C_out*C_in/g values) if given.
    """
    a = m + 2
    cout, cin_g = w4.shape[:2]
    flat = np.ascontiguousarray(w4, dtype=dtype).reshape(cout * cin_g, 9)
    size = a * a * cout * cin_g
    u = (np.empty(size, dtype=dtype) if out is None else out[:size]).reshape(a * a, -1)
    _winograd.filter_transform(flat, u, m, nthreads)
    return u.reshape(a * a, groups, cout // groups, cin_g)


def choose_variant(problem) -> int:
    """F(4x4,3x3) for large outputs, F(2x2,3x3) for small ones.

    F(4,3) does 2.25 multiplications per output against F(2,3)'s 4, but its
    filters take 36 values instead of 16 (transformed on every call without
    a plan) and its 4x4 tiles waste more on ragged edges; on outputs of
    fewer than SMALL_OUTPUT pixels F(2,3) measured faster here (3x3
    256-channel layers at 14x14 and 512 channels at 7x7).
    """
    oh, ow = problem.out_size
    return 2 if min(oh, ow) < 4 or oh * ow < SMALL_OUTPUT else 4


def schedule(problem, m: int, nthreads: int):
    """(rows_per_task, parallel_tasks) for conv_winograd.

    The tile rows of all images form one sequence, cut into tasks.  A task
    holds its tiles' transforms, ``a*a*(C_in/g + C_out/g)*P`` values for P
    tiles, within TASK_BYTES -- but takes at least MIN_GEMM_TILES tiles
    (memory permitting up to MAX_TASK_BYTES), because each task's GEMMs
    read all of the transformed filters, ``a*a*C_out*C_in/g`` values, once.
    With at least one task per thread, threads run whole tasks; otherwise,
    or when the transformed filters outgrow TASK_BYTES, tasks run in
    sequence with the threads sharing each one's transforms and GEMMs.
    BLAS is single-threaded inside the team either way.
    """
    a2 = (m + 2) ** 2
    oh, ow = problem.out_size
    th, tw = -(-oh // m), -(-ow // m)
    total = problem.batch * th
    if total == 0:
        return 1, False
    per_row = a2 * (problem.in_channels_per_group + problem.out_channels_per_group) * tw
    row_bytes = per_row * problem.dtype.itemsize
    cap = max(1, MAX_TASK_BYTES // row_bytes)
    filter_bytes = a2 * problem.out_channels_per_group * problem.in_channels_per_group \
        * problem.dtype.itemsize
    if filter_bytes > TASK_BYTES:
        # Transformed filters larger than a task's tiles: every task would
        # stream them through the cache again, so take the widest GEMMs the
        # memory cap allows and let the threads share each task (measured
        # here: 3x3 512-channel layers at 7x7, N=8, 8.3 ms shared vs 8.9-10.8
        # in parallel tasks; 256 channels at 14x14, N=1, 0.73 vs 0.80 ms).
        rows = min(total, cap)
        return rows, False
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
    return rows, tasks >= nthreads


def conv(x5, w5, bias, out5, pad_before, problem, nthreads, m=None, u=None):
    """Winograd convolution of laid-out operands (see fastconv._cpu).

    `x5` (N, C_in, 1, H, W), `w5` (C_out, C_in/g, 1, 3, 3), `out5`
    (N, C_out, 1, OH, OW), all C-contiguous in the problem's dtype;
    `pad_before` the leading zero padding per (D, H, W).  `u` is a
    precomputed filter transform for variant `m` (plans keep it).
    """
    m = choose_variant(problem) if m is None else m
    rows, parallel_tasks = schedule(problem, m, nthreads)
    with _threads.blas_limit(1):
        if u is None:
            u = filter_transform(w5[:, :, 0], problem.groups, m, problem.dtype, nthreads)
        _winograd.conv_winograd(x5[:, :, 0], u, bias, out5[:, :, 0], m, pad_before[1],
                                pad_before[2], problem.groups, rows, nthreads, parallel_tasks,
                                workspace)
