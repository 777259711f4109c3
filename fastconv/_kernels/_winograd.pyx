"""Winograd F(m x m, r x r) convolution kernel (leaf code).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
2016.  The variants are F(2x2,3x3), F(4x4,3x3), F(2x2,5x5) and F(3x3,2x2).  The output
is cut into m x m tiles; each tile needs an a x a input patch d, a = m + r - 1,
and

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A

where * is elementwise over the a x a transform domain.  Summing over the
input channels c at each of the a*a transform positions is a matrix product,
so a task (one image, one group, a run of tile rows) does

1. input transform of its tiles (fc_wino_input, one tile row and channel at
   a time) into V: (a*a, C_in/groups, P) with P = tiles of the task (its
   rows of tiles may come from several images, so small images still give
   the GEMMs many columns);
2. a*a GEMMs M[e] = U[e] @ V[e] through BLAS, U being the transformed
   filters (a*a, groups, C_out/groups, C_in/groups) that the caller keeps;
3. output transform (fc_wino_output) of M into the output rows, bias added,
   ragged edge tiles cropped.

Working memory is ``a*a * (C_in/groups + C_out/groups) * P`` elements per
buffer, P bounded by the caller's tile-row budget.  Two schedules, both
with BLAS single-threaded inside the OpenMP team: tasks in an OpenMP
``prange``, each thread with its own buffers (``parallel_tasks``), or, for
few large tasks, tasks in sequence with the threads sharing each task's
buffers and splitting its transforms (by channel) and GEMMs (by transform
position).  The weight gradient (``weight_grad_winograd``, 3 x 3 filters) runs the same
tiles the other way round, F(3 x 3, m x m): per task, the input transform V of its tiles and
the transform U = A u A^T of the output gradient's m x m blocks, then
a*a GEMMs M[e] += U[e] @ V[e]^T into the thread's accumulator, summed over
all tiles (the sum over tiles is the GEMMs' inner dimension).

The caller (fastconv._winograd) validated every size; bounds checks are off.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

from ._fc cimport (real, fc_wino_input_f32_m2, fc_wino_input_f64_m2, fc_wino_input_f32_m4,
                   fc_wino_input_f64_m4, fc_wino_output_f32_m2, fc_wino_output_f64_m2,
                   fc_wino_output_f32_m4, fc_wino_output_f64_m4, fc_wino_filter_f32_m2,
                   fc_wino_filter_f64_m2, fc_wino_filter_f32_m4, fc_wino_filter_f64_m4,
                   fc_wino_grad_output_f32_m2, fc_wino_grad_output_f64_m2,
                   fc_wino_grad_output_f32_m4, fc_wino_grad_output_f64_m4,
                   fc_wino_grad_filter_f32_m2, fc_wino_grad_filter_f64_m2,
                   fc_wino_grad_filter_f32_m4, fc_wino_grad_filter_f64_m4,
                   fc_wino_input_f32_m2r5, fc_wino_input_f64_m2r5, fc_wino_output_f32_m2r5,
                   fc_wino_output_f64_m2r5, fc_wino_filter_f32_m2r5, fc_wino_filter_f64_m2r5,
                   fc_wino_input_f32_m3r2, fc_wino_input_f64_m3r2, fc_wino_output_f32_m3r2,
                   fc_wino_output_f64_m3r2, fc_wino_filter_f32_m3r2, fc_wino_filter_f64_m3r2,
                   borrow_scratch, return_scratch)
from ._gemm cimport _gemm_rowmajor, _gemm_abt_acc


cdef inline void _input(Py_ssize_t m, Py_ssize_t r, const real *x, Py_ssize_t H,
                        Py_ssize_t W, Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t tW,
                        Py_ssize_t nty, real *V, Py_ssize_t plane,
                        real *scratch) noexcept nogil:
    if real is float:
        if r == 5:
            fc_wino_input_f32_m2r5(x, H, W, y0, x0, tW, nty, V, plane, scratch)
        elif r == 2:
            fc_wino_input_f32_m3r2(x, H, W, y0, x0, tW, nty, V, plane, scratch)
        elif m == 2:
            fc_wino_input_f32_m2(x, H, W, y0, x0, tW, nty, V, plane, scratch)
        else:
            fc_wino_input_f32_m4(x, H, W, y0, x0, tW, nty, V, plane, scratch)
    else:
        if r == 5:
            fc_wino_input_f64_m2r5(x, H, W, y0, x0, tW, nty, V, plane, scratch)
        elif r == 2:
            fc_wino_input_f64_m3r2(x, H, W, y0, x0, tW, nty, V, plane, scratch)
        elif m == 2:
            fc_wino_input_f64_m2(x, H, W, y0, x0, tW, nty, V, plane, scratch)
        else:
            fc_wino_input_f64_m4(x, H, W, y0, x0, tW, nty, V, plane, scratch)


cdef inline void _output(Py_ssize_t m, Py_ssize_t r, const real *Mt, Py_ssize_t plane,
                         Py_ssize_t tW, Py_ssize_t nty, real *y, Py_ssize_t ldy,
                         Py_ssize_t rows, Py_ssize_t cols, real bias,
                         real *scratch) noexcept nogil:
    if real is float:
        if r == 5:
            fc_wino_output_f32_m2r5(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
        elif r == 2:
            fc_wino_output_f32_m3r2(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
        elif m == 2:
            fc_wino_output_f32_m2(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
        else:
            fc_wino_output_f32_m4(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
    else:
        if r == 5:
            fc_wino_output_f64_m2r5(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
        elif r == 2:
            fc_wino_output_f64_m3r2(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
        elif m == 2:
            fc_wino_output_f64_m2(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)
        else:
            fc_wino_output_f64_m4(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch)


cdef inline void _grad_output(Py_ssize_t m, const real *gy, Py_ssize_t OH, Py_ssize_t OW,
                              Py_ssize_t y0, Py_ssize_t tW, real *U, Py_ssize_t plane,
                              real *scratch) noexcept nogil:
    if real is float:
        if m == 2:
            fc_wino_grad_output_f32_m2(gy, OH, OW, y0, tW, U, plane, scratch)
        else:
            fc_wino_grad_output_f32_m4(gy, OH, OW, y0, tW, U, plane, scratch)
    else:
        if m == 2:
            fc_wino_grad_output_f64_m2(gy, OH, OW, y0, tW, U, plane, scratch)
        else:
            fc_wino_grad_output_f64_m4(gy, OH, OW, y0, tW, U, plane, scratch)


cdef inline void _input_rows(const real[:, :, :, ::1] x, Py_ssize_t ci, Py_ssize_t m,
                             Py_ssize_t r, Py_ssize_t tH, Py_ssize_t tW, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t r0,
                             Py_ssize_t r1, real *V, Py_ssize_t plane,
                             real *scratch) noexcept nogil:
    """Input transform of channel ci for tile rows r0..r1-1 of the sequence of
    all images' tile rows; row rr lands at V + (rr - r0) * tW.  Each call
    covers up to _block_rows(tW) rows of one image."""
    cdef Py_ssize_t rr = r0, n, th, nty
    cdef Py_ssize_t cap = _block_rows(tW)
    while rr < r1:
        n = rr // tH
        th = rr - n * tH
        nty = min(r1 - rr, tH - th, cap)
        _input(m, r, &x[n, ci, 0, 0], H, W, th * m - pad_top, -pad_left, tW, nty,
               V + (rr - r0) * tW, plane, scratch)
        rr = rr + nty


cdef inline void _grad_output_rows(const real[:, :, :, ::1] gy, Py_ssize_t k, Py_ssize_t m,
                                   Py_ssize_t tH, Py_ssize_t tW, Py_ssize_t OH, Py_ssize_t OW,
                                   Py_ssize_t r0, Py_ssize_t r1, real *U, Py_ssize_t plane,
                                   real *scratch) noexcept nogil:
    """A u A^T of output-gradient channel k for tile rows r0..r1-1; row rr
    lands at U + (rr - r0) * tW."""
    cdef Py_ssize_t rr, n, th
    for rr in range(r0, r1):
        n = rr // tH
        th = rr - n * tH
        _grad_output(m, &gy[n, k, 0, 0], OH, OW, th * m, tW, U + (rr - r0) * tW, plane,
                     scratch)


cdef inline void _output_rows(real[:, :, :, ::1] out, const real[::1] bias, bint has_bias,
                              Py_ssize_t k, Py_ssize_t m, Py_ssize_t r, Py_ssize_t tH,
                              Py_ssize_t tW, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t r0,
                              Py_ssize_t r1, const real *Mt, Py_ssize_t plane,
                              real *scratch) noexcept nogil:
    """Output transform of output channel k for tile rows r0..r1-1, up to
    _block_rows(tW) rows of one image a call."""
    cdef Py_ssize_t rr = r0, n, th, nty
    cdef Py_ssize_t cap = _block_rows(tW)
    cdef real b = bias[k] if has_bias else 0
    while rr < r1:
        n = rr // tH
        th = rr - n * tH
        nty = min(r1 - rr, tH - th, cap)
        _output(m, r, Mt + (rr - r0) * tW, plane, tW, nty, &out[n, k, th * m, 0], OW,
                OH - th * m, OW, b, scratch)
        rr = rr + nty


cdef inline void _products(const real[:, :, :, ::1] U, Py_ssize_t gi, Py_ssize_t k0,
                           Py_ssize_t a2, Py_ssize_t Kp, Py_ssize_t Cg, Py_ssize_t P,
                           Py_ssize_t ldp, const real *V, real *Mb) noexcept nogil:
    """M[e] = U[e, gi, k0:k0+Kp] @ V[e] for every transform position e (BLAS
    GEMMs); V[e] is (Cg, P) and M[e] (Kp, P), rows ldp apart."""
    cdef Py_ssize_t e
    for e in range(a2):
        _gemm_rowmajor(<int> Kp, <int> P, <int> Cg, &U[e, gi, k0, 0], <int> Cg,
                       V + e * Cg * ldp, <int> ldp, Mb + e * Kp * ldp, <int> ldp)


# The tile transforms run their loops over a row's tiles to a whole number of
# 64-byte vectors (fc_winograd_impl.h): a channel's rows of V and M are
# ROW_SLACK elements longer than its P tiles, for the last row's extra
# tiles, and the transforms' scratch is sized for the padded row.
cdef enum:
    ROW_SLACK = 16


cdef inline Py_ssize_t _padded_tiles(Py_ssize_t tW) noexcept nogil:
    return (tW + ROW_SLACK - 1) // ROW_SLACK * ROW_SLACK


#: Tiles per call of the transforms of maps whose tile rows hold at most
#: half a vector of tiles (fc_wino_input/output take up to _block_rows(tW)
#: rows of them at once; fc_kernels.h).
cdef enum:
    BLOCK_TILES = 64


#: The same for Python (fastconv._cost's Winograd features).
block_tiles = BLOCK_TILES


cdef inline Py_ssize_t _block_rows(Py_ssize_t tW) noexcept nogil:
    """Tile rows per transform call: one for rows of more than half a
    vector of tiles (16 floats; the C functions take doubles' 8-lane
    rows one at a time, looping over the rows given), else up to
    BLOCK_TILES tiles' worth."""
    return 1 if 2 * tW > ROW_SLACK else max(1, BLOCK_TILES // tW)


cdef inline Py_ssize_t _input_scratch(Py_ssize_t m, Py_ssize_t r, Py_ssize_t tW) noexcept nogil:
    """Scratch elements of fc_wino_input (fc_kernels.h): 2*a rows of
    (tWv + e)*m columns for one row of tiles, or for a block of
    _block_rows(tW) short rows their zero-padded window and 2*a*a streams
    of the block's tiles."""
    cdef Py_ssize_t a = m + r - 1, nty = _block_rows(tW)
    cdef Py_ssize_t row = 2 * a * (_padded_tiles(tW) + (r - 1 + m - 1) // m) * m
    cdef Py_ssize_t block = ((nty * m + r - 1) * (tW * m + r - 1)
                             + 2 * a * a * _padded_tiles(nty * tW))
    return max(row, block)


cdef inline Py_ssize_t _output_scratch(Py_ssize_t m, Py_ssize_t r, Py_ssize_t tW) noexcept nogil:
    """Scratch elements of fc_wino_output: (a*m + m*m) streams of a row's
    or a block's tiles."""
    return (m * (m + r - 1) + m * m) * _padded_tiles(_block_rows(tW) * tW)


def filter_transform(const real[:, ::1] g, real[:, ::1] U, Py_ssize_t m, Py_ssize_t r,
                     int nthreads, bint stream=False):
    """U[xi*a + nu, f] = (G g_f G^T)[xi, nu] for the (n, r*r) filters g of
    F(m x m, r x r), on `nthreads` OpenMP threads; U is (a*a, n).  With
    `stream`, U is written with non-temporal stores (past the caches).
    Returns whether every tap of g is finite."""
    cdef Py_ssize_t n = g.shape[0]
    cdef int finite = 1
    if n == 0:
        return True
    with nogil:
        if real is float:
            if r == 5:
                finite = fc_wino_filter_f32_m2r5(&g[0, 0], n, &U[0, 0], nthreads, stream)
            elif r == 2:
                finite = fc_wino_filter_f32_m3r2(&g[0, 0], n, &U[0, 0], nthreads, stream)
            elif m == 2:
                finite = fc_wino_filter_f32_m2(&g[0, 0], n, &U[0, 0], nthreads, stream)
            else:
                finite = fc_wino_filter_f32_m4(&g[0, 0], n, &U[0, 0], nthreads, stream)
        else:
            if r == 5:
                finite = fc_wino_filter_f64_m2r5(&g[0, 0], n, &U[0, 0], nthreads, stream)
            elif r == 2:
                finite = fc_wino_filter_f64_m3r2(&g[0, 0], n, &U[0, 0], nthreads, stream)
            elif m == 2:
                finite = fc_wino_filter_f64_m2(&g[0, 0], n, &U[0, 0], nthreads, stream)
            else:
                finite = fc_wino_filter_f64_m4(&g[0, 0], n, &U[0, 0], nthreads, stream)
    return finite != 0


def grad_filter_transform(const real[:, :, ::1] acc, real[:, ::1] g, Py_ssize_t m,
                          int nthreads):
    """g[f] = G^T (sum over t of acc[t, :, f]) G, as 9 values per filter f:
    ``acc`` is (nacc, a*a, n), ``g`` (n, 9); on `nthreads` OpenMP threads."""
    cdef Py_ssize_t n = g.shape[0]
    cdef Py_ssize_t nacc = acc.shape[0], stride = acc.shape[1] * acc.shape[2]
    if n == 0 or nacc == 0:
        return
    with nogil:
        if real is float:
            if m == 2:
                fc_wino_grad_filter_f32_m2(&acc[0, 0, 0], n, nacc, stride, &g[0, 0], nthreads)
            else:
                fc_wino_grad_filter_f32_m4(&acc[0, 0, 0], n, nacc, stride, &g[0, 0], nthreads)
        else:
            if m == 2:
                fc_wino_grad_filter_f64_m2(&acc[0, 0, 0], n, nacc, stride, &g[0, 0], nthreads)
            else:
                fc_wino_grad_filter_f64_m4(&acc[0, 0, 0], n, nacc, stride, &g[0, 0], nthreads)


def conv_winograd(const real[:, :, :, ::1] x, const real[:, :, :, ::1] U,
                  const real[::1] bias, real[:, :, :, ::1] out, Py_ssize_t m,
                  Py_ssize_t r, Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t groups,
                  Py_ssize_t rows_per_task, int nthreads, bint parallel_tasks,
                  object workspace=None, Py_ssize_t parts=1):
    """out = conv(x, filters) + bias by Winograd F(m x m, r x r).

    ``x`` is (N, C_in, H, W), ``out`` (N, C_out, OH, OW), ``U`` the
    transformed filters (a*a, groups, C_out/groups, C_in/groups), ``bias``
    length C_out or 0.  Stride 1, dilation 1, r x r filters (m = 2, 4 with
    r = 3; m = 2 with r = 5; m = 3 with r = 2); ``pad_top`` and
    ``pad_left`` are the leading zero padding (trailing padding follows from
    the output size).  A task covers ``rows_per_task`` rows of tiles of the
    sequence of all images' tile rows, for one group, and with
    ``parallel_tasks`` one of ``parts`` runs of the group's output channels:
    a task transforms all input channels of its tiles, and multiplies and
    transforms back its own output channels only (tasks in (group, part,
    chunk) order, statically scheduled, so a thread's output channels are
    those whose filters it transformed; see fastconv._winograd.schedule).
    ``workspace`` (an allocator, see ``_fc.borrow_scratch``) lends the tile
    buffers; without one they are malloc'ed for the call.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t a = m + r - 1, a2 = (m + r - 1) * (m + r - 1)
    cdef Py_ssize_t Cg = C // groups, Kg = K // groups
    cdef Py_ssize_t tH = (OH + m - 1) // m, tW = (OW + m - 1) // m
    # Tile rows of all images in one sequence: a task's GEMMs may span images.
    cdef Py_ssize_t R = N * tH
    cdef Py_ssize_t chunks = (R + rows_per_task - 1) // rows_per_task
    # output channels per part (the last part may be shorter)
    cdef Py_ssize_t kpart = (Kg + parts - 1) // parts if parallel_tasks else Kg
    cdef Py_ssize_t nparts = (Kg + kpart - 1) // kpart if Kg > 0 else 1
    cdef Py_ssize_t ntasks = groups * chunks * (nparts if parallel_tasks else 1)
    cdef Py_ssize_t pmax = rows_per_task * tW
    cdef Py_ssize_t scratch_len = max(_input_scratch(m, r, tW), _output_scratch(m, r, tW))
    cdef Py_ssize_t tiles_len = a2 * (Cg + kpart) * (pmax + ROW_SLACK)
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *all_buf
    cdef real *V
    cdef real *Mb
    cdef real *scratch
    cdef Py_ssize_t t, gi, r0, r1, P, ldp, c, e, k, k0, Kp
    if ntasks == 0 or OH == 0 or OW == 0:
        return
    cdef list keep = []
    # parallel_tasks: each thread runs whole tasks in its own buffers (BLAS
    # single-threaded).  Otherwise tasks run in sequence: threads share the
    # tile buffers, each with its own scratch, and split the transforms by
    # channel and the GEMMs by transform position (BLAS single-threaded
    # inside the team).
    cdef Py_ssize_t nreal = (nthreads * (tiles_len + scratch_len) if parallel_tasks
                             else tiles_len + nthreads * scratch_len)
    all_buf = <real *> borrow_scratch(workspace, nreal * sizeof(real), "winograd-tiles", keep)
    try:
        if parallel_tasks:
            with nogil, parallel(num_threads=nthreads):
                V = all_buf + threadid() * (tiles_len + scratch_len)
                Mb = V + a2 * Cg * (pmax + ROW_SLACK)
                scratch = Mb + a2 * kpart * (pmax + ROW_SLACK)
                for t in prange(ntasks, schedule='static'):
                    r0 = (t % chunks) * rows_per_task
                    k0 = (t // chunks) % nparts * kpart
                    gi = t // (chunks * nparts)
                    r1 = min(r0 + rows_per_task, R)
                    Kp = min(kpart, Kg - k0)
                    P = (r1 - r0) * tW
                    ldp = P + ROW_SLACK
                    for c in range(Cg):
                        _input_rows(x, gi * Cg + c, m, r, tH, tW, H, W, pad_top, pad_left, r0,
                                    r1, V + c * ldp, Cg * ldp, scratch)
                    _products(U, gi, k0, a2, Kp, Cg, P, ldp, V, Mb)
                    for k in range(Kp):
                        _output_rows(out, bias, has_bias, gi * Kg + k0 + k, m, r, tH, tW, OH, OW,
                                     r0, r1, Mb + k * ldp, Kp * ldp, scratch)
        else:
            V = all_buf
            Mb = V + a2 * Cg * (pmax + ROW_SLACK)
            for t in range(ntasks):
                gi = t // chunks
                r0 = (t % chunks) * rows_per_task
                r1 = min(r0 + rows_per_task, R)
                P = (r1 - r0) * tW
                ldp = P + ROW_SLACK
                with nogil, parallel(num_threads=nthreads):
                    scratch = all_buf + tiles_len + threadid() * scratch_len
                    for c in prange(Cg, schedule='static'):
                        _input_rows(x, gi * Cg + c, m, r, tH, tW, H, W, pad_top, pad_left, r0,
                                    r1, V + c * ldp, Cg * ldp, scratch)
                    for e in prange(a2, schedule='dynamic'):
                        _gemm_rowmajor(<int> Kg, <int> P, <int> Cg, &U[e, gi, 0, 0], <int> Cg,
                                       V + e * Cg * ldp, <int> ldp, Mb + e * Kg * ldp,
                                       <int> ldp)
                    for k in prange(Kg, schedule='static'):
                        _output_rows(out, bias, has_bias, gi * Kg + k, m, r, tH, tW, OH, OW, r0,
                                     r1, Mb + k * ldp, Kg * ldp, scratch)
    finally:
        return_scratch(all_buf, keep)


def weight_grad_winograd(const real[:, :, :, ::1] x, const real[:, :, :, ::1] gy,
                         real[:, :, ::1] acc, Py_ssize_t m, Py_ssize_t pad_top,
                         Py_ssize_t pad_left, Py_ssize_t groups, Py_ssize_t rows_per_task,
                         int nthreads, bint parallel_tasks, object workspace=None):
    """acc[t, e] += the transform-domain weight gradient of thread t's tiles.

    ``x`` is the forward input (N, C_in, H, W), ``gy`` the output gradient
    (N, C_out, OH, OW) of a 3 x 3, stride-1 convolution with leading zero
    padding ``pad_top``, ``pad_left``.  ``acc`` is (nthreads, a*a,
    C_out * C_in/groups): for transform position e, row k (output channel,
    all groups in order) and column c (input channel within k's group),
    ``sum over tiles of U[e][k, tile] * V[e][c, tile]`` with U = A u A^T of
    the output-gradient blocks and V = B^T d B of the input patches.  The
    caller sums the threads and applies G^T . G.  A task covers
    ``rows_per_task`` rows of the sequence of all images' tile rows, for one
    group.  With ``parallel_tasks`` the tasks run in an OpenMP ``prange``,
    each thread accumulating into its own ``acc[t]``; otherwise (large
    channel counts, whose accumulators would not stay in cache) the tasks run
    in sequence, the threads sharing each task's buffers, splitting its
    transforms by channel and its GEMMs by transform position, all into
    ``acc[0]``.  BLAS is single-threaded inside the team either way.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = gy.shape[1], OH = gy.shape[2], OW = gy.shape[3]
    cdef Py_ssize_t a = m + 2, a2 = (m + 2) * (m + 2)
    cdef Py_ssize_t Cg = C // groups, Kg = K // groups
    cdef Py_ssize_t tH = (OH + m - 1) // m, tW = (OW + m - 1) // m
    cdef Py_ssize_t R = N * tH
    cdef Py_ssize_t chunks = (R + rows_per_task - 1) // rows_per_task
    cdef Py_ssize_t ntasks = groups * chunks
    cdef Py_ssize_t pmax = rows_per_task * tW
    cdef Py_ssize_t scratch_len = max(_input_scratch(m, 3, tW), (m + a) * tW * m)
    # V's channel rows have ROW_SLACK room for the input transform's padded
    # tile loop; U (the output-gradient blocks) is written exactly.
    cdef Py_ssize_t tiles_len = a2 * (Cg * (pmax + ROW_SLACK) + Kg * pmax)
    cdef Py_ssize_t per_thread = tiles_len + scratch_len
    cdef Py_ssize_t nreal = (nthreads * per_thread if parallel_tasks
                             else tiles_len + nthreads * scratch_len)
    cdef Py_ssize_t ldacc = acc.shape[2]
    cdef real *all_buf
    cdef real *V
    cdef real *Ub
    cdef real *scratch
    cdef real *Mt
    cdef Py_ssize_t t, gi, r0, r1, P, ldp, c, k, e
    cdef real beta
    if ntasks == 0 or OH == 0 or OW == 0 or Cg == 0 or Kg == 0:
        return
    cdef list keep = []
    all_buf = <real *> borrow_scratch(workspace, nreal * sizeof(real),
                                      "winograd-wgrad-tiles", keep)
    try:
        if not parallel_tasks:
            V = all_buf
            Ub = V + a2 * Cg * (pmax + ROW_SLACK)
            Mt = &acc[0, 0, 0]
            for t in range(ntasks):
                # a group's first task overwrites its part of the accumulator
                beta = 0 if t % chunks == 0 else 1
                gi = t // chunks
                r0 = (t % chunks) * rows_per_task
                r1 = min(r0 + rows_per_task, R)
                P = (r1 - r0) * tW
                ldp = P + ROW_SLACK
                with nogil, parallel(num_threads=nthreads):
                    scratch = all_buf + tiles_len + threadid() * scratch_len
                    for c in prange(Cg, schedule='static'):
                        _input_rows(x, gi * Cg + c, m, 3, tH, tW, H, W, pad_top, pad_left, r0,
                                    r1, V + c * ldp, Cg * ldp, scratch)
                    for k in prange(Kg, schedule='static'):
                        _grad_output_rows(gy, gi * Kg + k, m, tH, tW, OH, OW, r0, r1,
                                          Ub + k * P, Kg * P, scratch)
                    for e in prange(a2, schedule='dynamic'):
                        _gemm_abt_acc(<int> Kg, <int> Cg, <int> P, Ub + e * Kg * P, <int> P,
                                      V + e * Cg * ldp, <int> ldp,
                                      Mt + e * ldacc + gi * Kg * Cg,
                                      <int> Cg, beta)
            return
        with nogil, parallel(num_threads=nthreads):
            V = all_buf + threadid() * per_thread
            Ub = V + a2 * Cg * (pmax + ROW_SLACK)
            scratch = Ub + a2 * Kg * pmax
            Mt = &acc[threadid(), 0, 0]
            for t in prange(acc.shape[0], schedule='static'):
                memset(&acc[t, 0, 0], 0, a2 * ldacc * sizeof(real))
            for t in prange(ntasks, schedule='guided'):
                gi = t // chunks
                r0 = (t % chunks) * rows_per_task
                r1 = min(r0 + rows_per_task, R)
                P = (r1 - r0) * tW
                ldp = P + ROW_SLACK
                for c in range(Cg):
                    _input_rows(x, gi * Cg + c, m, 3, tH, tW, H, W, pad_top, pad_left, r0, r1,
                                V + c * ldp, Cg * ldp, scratch)
                for k in range(Kg):
                    _grad_output_rows(gy, gi * Kg + k, m, tH, tW, OH, OW, r0, r1, Ub + k * P,
                                      Kg * P, scratch)
                for e in range(a2):
                    _gemm_abt_acc(<int> Kg, <int> Cg, <int> P, Ub + e * Kg * P, <int> P,
                                  V + e * Cg * ldp, <int> ldp, Mt + e * ldacc + gi * Kg * Cg,
                                  <int> Cg, 1)
    finally:
        return_scratch(all_buf, keep)
