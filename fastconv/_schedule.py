"""Work split and scratch memory of the direct kernel, shared by the CPU paths
that call it (fastconv._cpu, fastconv._separable)."""
from __future__ import annotations

import threading

import numpy as np

__all__ = ["MIN_COLUMN_CHUNK", "MIN_WORK_PER_THREAD", "PLANE_SCRATCH_BYTES",
           "POINTWISE_BLOCK_BYTES", "POINTWISE_CHUNK", "POINTWISE_WEIGHT_BYTES",
           "TASKS_PER_THREAD", "channel_blocked", "direct_schedule", "pointwise", "workspace"]

#: Narrowest column chunk when the direct kernel splits rows across threads.
MIN_COLUMN_CHUNK = 2048
#: Multiply-adds below which another thread costs more than it saves
#: (an OpenMP fork/join is a few microseconds; this is about ten).
MIN_WORK_PER_THREAD = 1 << 18
#: Per-thread scratch (bytes) of the direct kernel's one-input-channel path:
#: zero-padded copies of the input rows a chunk of output rows reads (see
#: fc_conv_plane), kept between calls.
PLANE_SCRATCH_BYTES = 512 * 1024
#: Tasks per thread the direct kernel aims for (load balance vs. setup cost).
TASKS_PER_THREAD = 16


def direct_schedule(planes: int, oh: int, ow: int, nthreads: int):
    """Row pairs and output columns per task of the direct kernel.

    `planes` output planes of `oh` x `ow`.  Long runs amortise a task's
    setup (index arithmetic, dispatch); about TASKS_PER_THREAD tasks per
    thread keep the guided schedule balanced.  When there are fewer row
    pairs than threads (a long 1-D signal, a few wide rows), rows are split
    into column chunks of at least MIN_COLUMN_CHUNK outputs instead.

    Returns
    -------
    run, colw : int
        Row pairs per task and output columns per task.
    """
    pairs = (oh + 1) // 2
    run = max(1, min(pairs, planes * pairs // (TASKS_PER_THREAD * nthreads)))
    colw = ow
    if nthreads > 1 and planes * pairs < nthreads:
        chunks = min(TASKS_PER_THREAD * nthreads // (planes * pairs), ow // MIN_COLUMN_CHUNK)
        if chunks > 1:
            colw = -(-ow // chunks)
    return run, max(colw, 1)


_workspaces = threading.local()


def workspace(nbytes: int, dtype, slot: str = "kernel") -> np.ndarray:
    """A scratch array of `nbytes` bytes for the calling Python thread.

    The buffer is kept per Python thread and `slot` (independent uses in one
    call take different slots) and grown on demand, so repeated calls do
    not pay for fresh pages (a new multi-megabyte allocation is
    page-faulted in on every call).
    """
    bufs = getattr(_workspaces, "bufs", None)
    if bufs is None:
        bufs = _workspaces.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.nbytes < nbytes:
        buf = bufs[slot] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[: nbytes - nbytes % np.dtype(dtype).itemsize].view(dtype)


def channel_blocked(problem) -> bool:
    """Whether the direct path uses the channel-blocked kernel.

    It serves layers with several input channels and at least half a
    vector of output channels per group (at most half the lanes idle), and
    a kernel, input and output of depth 1 (conv1d, conv2d; a conv3d of
    depth 1 without depth padding): output channels fill the vector lanes,
    so each input value feeds a whole vector of FMAs.
    One-channel planes keep the plane kernel, and groups with few output
    channels the row kernel.
    """
    from ._kernels import _direct

    lanes = _direct.blocked_lanes(problem.dtype.itemsize)
    return (problem.in_channels_per_group > 1 and 2 * problem.out_channels_per_group >= lanes
            and (problem.nd < 3 or (problem.kernel_size[0] == 1 and problem.in_size[0] == 1
                                    and problem.padding[0] == (0, 0))))


#: Pixels per task of the pointwise kernel (_direct.conv_pointwise): one
#: block of the channel-blocked kernel (28 float32 pixels on AVX-512).
#: Chunks of 28, 56, 112, 224 and 448 pixels measured within noise of each
#: other on 256 -> 64 channels at 56x56 (N=1 and 8).
POINTWISE_CHUNK = 28

#: Packed-weight bytes up to which a 1x1 layer runs the pointwise kernel:
#: in all, and per block of output channels.  Every task streams all the
#: weights past its pixels, so they must stay in the L2 cache: 2048 -> 512
#: channels at 7x7 (4 MB of weights) ran at 0.7x the speed of im2col's
#: GEMM, which blocks them for the cache.  A block is read again for every
#: 28 pixels; beyond the L1 cache (512 or more input channels) the kernel's
#: speed against im2col varied with the shape, 0.88x-1.36x of its time,
#: and one linear cost model did not capture both regimes (fitted on all of
#: them, its error range grew from 0.87-1.11 to 0.67-1.19 and it ranked the
#: 256 -> 64 layer wrongly), so those layers stay on im2col.
POINTWISE_WEIGHT_BYTES = 256 << 10
POINTWISE_BLOCK_BYTES = 16 << 10


def pointwise(problem, packed=None) -> bool:
    """Whether "direct" runs the pointwise kernel: a 1x1 unit-stride layer
    without padding on the channel-blocked kernel, whose packed weights
    (`packed`, or their size for `problem`) fit POINTWISE_WEIGHT_BYTES in
    all and POINTWISE_BLOCK_BYTES per block of output channels.

    The kernel reads the input in place (no padded copy), pixel chunk by
    chunk, and runs every output-channel block over each chunk while it is
    in the cache.
    """
    if not (all(k == 1 for k in problem.kernel_size) and all(s == 1 for s in problem.stride)
            and all(pad == (0, 0) for pad in problem.padding) and channel_blocked(problem)):
        return False
    from ._kernels import _direct

    lanes = _direct.blocked_lanes(problem.dtype.itemsize)
    block = lanes * problem.in_channels_per_group * problem.dtype.itemsize
    if packed is not None:
        size = packed.nbytes
    else:
        size = problem.groups * -(-problem.out_channels_per_group // lanes) * block
    return size <= POINTWISE_WEIGHT_BYTES and block <= POINTWISE_BLOCK_BYTES
