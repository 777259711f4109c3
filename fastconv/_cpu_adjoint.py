"""CPU backend: the adjoint-side computations on the compiled kernels.

The transposed convolution by GEMM + col2im, the weight gradient, im2col
and col2im (fastconv._kernels._col2im), driven for problems the front end
(fastconv._transpose) has already validated and planned.  The CPU backend
exposes this module as ``CPUBackend.adjoint``; another backend provides
the same functions for its arrays.

GEMM + col2im computes ``W^T x`` per image and group (the transposed
weight matrix times the input pixels) tile by tile, each tile's columns
added into the output by col2im, the adjoint of im2col.  The weight
gradient is ``sum_n gy_n im2col(x_n)^T`` per group, tiled, each thread
accumulating into its own copy.  BLAS runs single-threaded inside the
OpenMP team (fastconv._threads.blas_limit), so the two never oversubscribe
the cores.
"""
from __future__ import annotations

import math

import numpy as np

from . import _threads, _winograd
from ._cpu import _lift3
from ._schedule import MIN_WORK_PER_THREAD, workspace

#: Per-thread working memory of the GEMM + col2im kernel (one tile of GEMM
#: output), in bytes.
TILE_BYTES = 1 << 20
#: Narrowest tile (pixels) worth a GEMM call, budget permitting.
MIN_TILE = 64
#: Rows of W^T (output channels x kernel taps) per GEMM + col2im task.
GEMM_ROWS = 512
#: Tasks per thread the weight-gradient kernel aims for (load balance).
TASKS_PER_THREAD = 4
#: GEMM weight gradient (see wgrad_schedule): a thread's chunk buffers, the
#: narrowest chunk, the largest per-thread accumulator, and the chunk
#: buffers when the threads share each chunk (bytes, pixels).
WGRAD_CHUNK_BYTES = 1 << 20
WGRAD_MIN_CHUNK = 64
WGRAD_ACC_BYTES = 3 << 20
WGRAD_SHARED_BYTES = 8 << 20
#: Output channels per group below which the weight gradient accumulates
#: dW^T (see wgrad_transposed).
WGRAD_TRANSPOSED_BELOW = 128
#: "auto" runs GEMM + col2im for strided transposed convolutions with at
#: least this many input channels per group (the GEMM's inner dimension).
#: Measured on the 256->128 k4 s2 16x16 case (2 cores, best of 30): GEMM +
#: col2im 1.55 ms (N=1) / 13 ms (N=8) against 2.0 / 14 ms for the four
#: polyphase convolutions; with a handful of channels the GEMM degenerates.
GEMM_MIN_CHANNELS = 8
_INT_MAX = 2**31 - 1


def _kernels():
    from ._kernels import _col2im

    return _col2im


def _nthreads(nthreads, work):
    """Fewer threads for small calls: a tiny call should not wake a team."""
    return max(1, min(nthreads, work // MIN_WORK_PER_THREAD))


def _blas_limit(*dims):
    """Why 32-bit BLAS cannot take matrices with these dimensions, or None."""
    if max(dims) > _INT_MAX:
        return (f"it calls 32-bit BLAS, which cannot multiply matrices with "
                f"{max(dims)} rows or columns")
    return None


def gemm_reason(problem):
    """Why GEMM + col2im cannot serve the transposed convolution `problem`
    (in_* are the transposed convolution's input), or None."""
    cin_g = problem.in_channels // problem.groups
    rows = problem.out_channels // problem.groups * math.prod(problem.kernel_size)
    return _blas_limit(cin_g, rows, math.prod(problem.in_size))


def weight_grad_reason(forward):
    """Why the weight gradient of the convolution `forward` cannot run.

    Parameters
    ----------
    forward : ConvProblem
        The forward convolution.

    Returns
    -------
    reason : str or None
        The 32-bit BLAS limit it exceeds, or None when it can run.
    """
    g = forward.groups
    return _blas_limit(forward.in_channels // g * math.prod(forward.kernel_size),
                       math.prod(forward.out_size), forward.out_channels // g)


def transpose_algorithm(problem) -> str:
    """The path "auto" takes for a transposed convolution.

    Parameters
    ----------
    problem : ConvProblem
        The transposed convolution (in_* are its input).

    Returns
    -------
    path : {"im2col", "polyphase"}
        GEMM + col2im for strided problems with at least GEMM_MIN_CHANNELS
        input channels per group (one large GEMM beats several small
        convolutions), the polyphase decomposition otherwise.
    """
    if (any(s > 1 for s in problem.stride)
            and problem.in_channels // problem.groups >= GEMM_MIN_CHANNELS
            and gemm_reason(problem) is None):
        return "im2col"
    return "polyphase"


def _gemm_schedule(problem, nthreads):
    """Output channels per task and input pixels per GEMM tile.

    Tasks of about GEMM_ROWS rows of W^T (output channels x taps), fewer
    when there would be fewer tasks than threads; tiles of at most
    TILE_BYTES of GEMM output.  Measured on the 256->128 k4 s2 16x16 case
    (2 cores, N=1): 512 rows 1.55 ms, 256 rows 1.6 ms, 128 rows 1.7 ms,
    2048 rows (one task per image) 3.2 ms.
    """
    cout_g = problem.out_channels // problem.groups
    kv = math.prod(problem.kernel_size)
    p = math.prod(problem.in_size)
    item = problem.dtype.itemsize
    images = problem.batch * problem.groups
    cblock = max(1, min(cout_g, -(-GEMM_ROWS // kv)))
    while cblock > 1 and images * -(-cout_g // cblock) < nthreads:
        cblock = -(-cblock // 2)
    tile = min(p, max(MIN_TILE, TILE_BYTES // (cblock * kv * item)))
    return cblock, max(1, tile)


def conv_transpose_gemm(problem, x, weight, bias, target, nthreads):
    """GEMM + col2im of the transposed convolution `problem` into the
    C-contiguous (N, C_out, *out_size) array `target`."""
    p = problem
    nd, g, dt = p.nd, p.groups, p.dtype
    cout_g = p.out_channels // g
    kv = math.prod(p.kernel_size)
    x5 = np.ascontiguousarray(
        np.asarray(x).reshape((p.batch, p.in_channels) + _lift3(p.in_size, nd, 1)), dtype=dt)
    wm = np.ascontiguousarray(weight, dtype=dt).reshape(g, p.in_channels // g, cout_g * kv)
    # W^T per group, the GEMM's op-'N' operand (the kernel fills it), in the
    # thread's workspace
    size = wm.size
    wt = workspace(size * dt.itemsize, dt, "transpose-wt")[:size].reshape(
        g, cout_g * kv, p.in_channels // g)
    b = np.ascontiguousarray(bias, dtype=dt) if bias is not None else np.empty(0, dt)
    nthreads = _nthreads(nthreads, p.batch * p.in_channels * cout_g * kv
                         * math.prod(p.in_size))
    cblock, tile = _gemm_schedule(p, nthreads)
    with _threads.blas_limit(1):
        _kernels().conv_transpose_gemm(
            x5, wm, wt.reshape(g * cout_g * kv, p.in_channels // g), b,
            target.reshape(target.shape[:2] + _lift3(p.out_size, nd, 1)),
            _lift3(p.kernel_size, nd, 1), _lift3(p.stride, nd, 1),
            _lift3((pb for pb, _ in p.padding), nd, 0), _lift3(p.dilation, nd, 1), g,
            cblock, tile, nthreads, workspace)


def conv_weight_grad(forward, x, grad_output, weight_size, nthreads):
    """Gradient of the convolution `forward` with respect to its weight:
    an array of `weight_size` (C_out, C_in/groups, *kernel).

    3x3 stride-1 2-D problems with enough channels run Winograd
    (fastconv._winograd.weight_grad); the others ``gy @ im2col(x)^T`` in
    chunks of output pixels that span images (see wgrad_schedule).
    """
    nd, g, dt = forward.nd, forward.groups, forward.dtype
    kernel3 = _lift3(forward.kernel_size, nd, 1)
    k = forward.in_channels // g * math.prod(kernel3)
    p = math.prod(forward.out_size)
    if forward.batch == 0 or p == 0 or k == 0 or forward.out_channels == 0:
        return np.zeros(weight_size, dtype=dt)
    x5 = np.ascontiguousarray(
        np.asarray(x).reshape((forward.batch, forward.in_channels)
                              + _lift3(forward.in_size, nd, 1)), dtype=dt)
    gy5 = np.ascontiguousarray(
        np.asarray(grad_output).reshape((forward.batch, forward.out_channels)
                                        + _lift3(forward.out_size, nd, 1)), dtype=dt)
    nthreads = _nthreads(nthreads, forward.flops // 2)
    if _winograd.weight_grad_supported(forward) is None:
        return _winograd.weight_grad(forward, x5, gy5, nthreads).reshape(weight_size)
    chunk, parallel_chunks = wgrad_schedule(forward, nthreads)
    transposed = parallel_chunks and wgrad_transposed(forward)
    accs = nthreads if parallel_chunks else 1
    size = accs * forward.out_channels * k
    acc = workspace(size * dt.itemsize, dt, "wgrad-acc")[:size].reshape(
        accs, forward.out_channels * k)
    with _threads.blas_limit(1):
        _kernels().conv_weight_grad(
            x5, gy5, acc, kernel3, _lift3(forward.stride, nd, 1),
            _lift3((pb for pb, _ in forward.padding), nd, 0), _lift3(forward.dilation, nd, 1),
            g, chunk, nthreads, parallel_chunks, transposed, workspace)
    grad = acc[0].copy()  # acc is the thread's workspace: never hand it out
    for t in range(1, accs):
        grad += acc[t]
    if transposed:
        # Each group's block is dW^T (K x C_out/groups); the result is (C_out, K...).
        cout_g = forward.out_channels // g
        grad = np.ascontiguousarray(grad.reshape(g, k, cout_g).transpose(0, 2, 1))
    return grad.reshape(weight_size)


def wgrad_transposed(forward) -> bool:
    """Whether the per-thread accumulators of the GEMM weight gradient hold
    dW^T (BLAS's M = C_out/groups) rather than dW (M = K).

    OpenBLAS's sgemm favours the orientation whose M is the output
    channels when they are few.  Measured here (N=8, float32, 2 threads,
    dW^T time / dW time): 0.85-0.91 with 32-64 output channels (5x5 at
    28x28 and 64x64, 7x7/2 from 3 channels, 1x1 256->64), 0.96-1.02 with
    128, 1.01-1.25 with 256 (3x3/2 256->256 at 14x14: 4.7 vs 3.8 ms).
    """
    return forward.out_channels // forward.groups < WGRAD_TRANSPOSED_BELOW


def wgrad_schedule(forward, nthreads):
    """(chunk, parallel_chunks) for the GEMM weight gradient.

    The output pixels of all images form one sequence per group, cut into
    chunks whose buffers (im2col columns and output-gradient rows,
    ``(K + C_out/g) * chunk`` values) fit WGRAD_CHUNK_BYTES, at least
    WGRAD_MIN_CHUNK pixels wide (the GEMMs' inner dimension; chunks span
    images, so small images do not make narrow GEMMs).  Threads run whole
    chunks into accumulators of their own (C_out*K values each) while one
    fits WGRAD_ACC_BYTES and there are TASKS_PER_THREAD chunks per thread;
    otherwise the threads share each chunk, one accumulator, and chunks of
    WGRAD_SHARED_BYTES.
    """
    g, item = forward.groups, forward.dtype.itemsize
    k = forward.in_channels // g * math.prod(forward.kernel_size)
    cout_g = forward.out_channels // g
    total = forward.batch * math.prod(forward.out_size)
    per_pixel = (k + cout_g) * item
    chunk = min(total, max(WGRAD_MIN_CHUNK, WGRAD_CHUNK_BYTES // per_pixel))
    while chunk > WGRAD_MIN_CHUNK and g * -(-total // chunk) < TASKS_PER_THREAD * nthreads:
        chunk = max(WGRAD_MIN_CHUNK, chunk // 2)
    acc_bytes = forward.out_channels * k * item
    if nthreads > 1 and (acc_bytes > WGRAD_ACC_BYTES or g * -(-total // chunk) < nthreads):
        return min(total, max(WGRAD_MIN_CHUNK, WGRAD_SHARED_BYTES // per_pixel)), False
    return chunk, True


def im2col(x4, kernel, grid, stride, padding, dilation, nthreads):
    """Blocks (N, C*kH*kW, L) of the (N, C, H, W) images `x4`
    (torch.nn.functional.unfold)."""
    n, c = x4.shape[:2]
    out = np.empty((n, c * kernel[0] * kernel[1], grid[0] * grid[1]), dtype=x4.dtype)
    if out.size:
        x5 = np.ascontiguousarray(x4.reshape((n, c, 1) + x4.shape[2:]))
        _kernels().im2col(x5, out, (1,) + kernel, (1,) + grid, (1,) + stride, (0,) + padding,
                          (1,) + dilation, _nthreads(nthreads, out.size))
    return out


def col2im(cols, size, kernel, grid, stride, padding, dilation, nthreads):
    """Images (N, C, *size) summed from the blocks (N, C*kH*kW, L) `cols`
    (torch.nn.functional.fold)."""
    n, rows, _ = cols.shape
    c = rows // (kernel[0] * kernel[1])
    out = np.empty((n, c, 1) + tuple(size), dtype=cols.dtype)
    if out.size:
        _kernels().col2im(np.ascontiguousarray(cols), out, (1,) + kernel, (1,) + grid,
                          (1,) + stride, (0,) + padding, (1,) + dilation,
                          _nthreads(nthreads, cols.size))
    return out.reshape((n, c) + tuple(size))


def subpixel_weight(problem, weight, taps, nthreads):
    """The sub-pixel form's stacked weight of a 2-D transposed convolution,
    in the calling thread's workspace (valid for one call).

    `taps` holds per dimension a (phases, q) table of kernel indices (see
    fastconv._transpose._subpixel_plan).  Returns the forward weight
    (g*P*C_out/g, C_in/g, qh, qw), P = phases: group gi, phase (a, b) and
    output channel o at row ``(gi*P + a*Pw + b)*C_out/g + o``, holding
    ``weight[gi*C_in/g + c, o, taps_h[a, u], taps_w[b, v]]``.
    """
    g, dt = problem.groups, problem.dtype
    cin_g, cout_g = problem.in_channels // g, problem.out_channels // g
    taps_h, taps_w = (np.ascontiguousarray(t, dtype=np.intp) for t in taps)
    w4 = np.ascontiguousarray(weight, dtype=dt).reshape(
        (problem.in_channels, cout_g) + problem.kernel_size)
    shape = (g, taps_h.shape[0] * taps_w.shape[0], cout_g, cin_g, taps_h.shape[1],
             taps_w.shape[1])
    # one call's weight: the calling thread's workspace, not fresh pages
    size = math.prod(shape)
    out = workspace(size * dt.itemsize, dt, "subpixel-w")[:size].reshape(shape)
    _kernels().subpixel_weights(w4, out, taps_h, taps_w, _nthreads(nthreads, 16 * size))
    return out.reshape((-1, cin_g) + out.shape[4:])


def subpixel_buffer(shape, dtype):
    """The sub-pixel form's stacked output, in the calling thread's
    workspace (a fresh multi-megabyte array per call costs page faults)."""
    size = math.prod(shape)
    return workspace(size * np.dtype(dtype).itemsize, dtype, "subpixel-z")[:size].reshape(shape)


def subpixel_deal(problem, z, target, phases, nthreads):
    """Deal the stacked outputs `z` to the phases of `target` (2-D).

    `phases` holds per dimension a (phases, 3) table of (phi, count,
    offset): ``target[..., phi_h + i*s_h, phi_w + j*s_w]`` of output
    channel ``gi*C_out/g + o`` is ``z[..., (gi*P + a*Pw + b)*C_out/g + o,
    off_h + i, off_w + j]``.
    """
    ph_h, ph_w = (np.ascontiguousarray(t, dtype=np.intp) for t in phases)
    _kernels().subpixel_deal(z, target, problem.groups, ph_h, ph_w, problem.stride[0],
                             problem.stride[1], _nthreads(nthreads, target.size // 16))
