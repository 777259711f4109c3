"""col2im, public im2col, the GEMM + col2im transposed convolution and the
weight gradient (leaf code).

Every function here receives arrays and sizes the Python front end
(fastconv._transpose) has validated: shapes agree, output sizes are exact,
matrices fit BLAS's 32-bit integers.  Bounds checks are therefore off.

* ``im2col`` / ``col2im``: the whole im2col matrix of each image (what
  ``torch.nn.functional.unfold`` returns) and its adjoint (``fold``), in
  parallel over (image, channel) so that no two threads write one element.
* ``conv_transpose_gemm``: y = W^T x followed by col2im, per image, group
  and block of output channels, tile by tile: a tile of input pixels is
  multiplied by the block's rows of W^T into a per-thread buffer (one BLAS
  GEMM), which col2im adds into the block's output planes at once.
  Different tasks own different output planes, so the scatter needs no
  atomics; working memory is ``threads * rows * tile`` elements.
* ``conv_weight_grad``: dW_g = sum over chunks of the output pixels of all
  images of gy_g[:, chunk] @ im2col(x_g)[:, chunk]^T (GEMM with beta = 1),
  each thread into its own copy of dW (summed by the caller), or for large
  dW the threads sharing each chunk and owning disjoint blocks of dW.
* ``subpixel_weights`` / ``subpixel_deal``: the sub-pixel form of a
  strided transposed convolution (fastconv._transpose): the phases'
  sub-kernels stacked into one weight, and the stacked convolution's
  channel blocks dealt to the phases of the output.

BLAS runs single-threaded inside the OpenMP teams (the caller holds it at
one thread), so OpenMP and BLAS threads never compete for the cores.
"""
# cython: boundscheck=False, wraparound=False, cdivision=True
from cython.parallel cimport prange, parallel, threadid

import numpy as np
from libc.string cimport memcpy, memset

from ._fc cimport (real, fc_geometry, make_geometry, fc_im2col_tile_f32, fc_im2col_tile_f64,
                   fc_col2im_tile_f32, fc_col2im_tile_f64, fc_col2im_tile_split_f32,
                   fc_col2im_tile_split_f64, fc_unsplit_rows_f32, fc_unsplit_rows_f64,
                   fc_split_run_f32,
                   fc_transpose_f32, fc_transpose_f64, borrow_scratch, return_scratch)
from ._gemm cimport _gemm_abt_acc, _gemm_rowmajor


cdef inline void _im2col(real *col, Py_ssize_t ld, const real *x, const fc_geometry *g,
                         Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                         Py_ssize_t k1) noexcept nogil:
    """Rows k0 .. k1-1 of the im2col tile of pixels p0 .. p0+P-1 into col
    (leading dimension ld)."""
    if real is float:
        fc_im2col_tile_f32(col, ld, x, g, p0, P, k0, k1)
    else:
        fc_im2col_tile_f64(col, ld, x, g, p0, P, k0, k1)


cdef inline void _col2im(real *x, const real *col, const fc_geometry *g,
                         Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                         Py_ssize_t k1) noexcept nogil:
    if real is float:
        fc_col2im_tile_f32(x, col, g, p0, P, k0, k1)
    else:
        fc_col2im_tile_f64(x, col, g, p0, P, k0, k1)


cdef inline void _col2im_split(real *x, const real *col, const fc_geometry *g,
                               Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                               Py_ssize_t k1) noexcept nogil:
    """col2im into phase-split rows (fc_kernels.h): unit-stride adds for
    any horizontal stride."""
    if real is float:
        fc_col2im_tile_split_f32(x, col, g, p0, P, k0, k1)
    else:
        fc_col2im_tile_split_f64(x, col, g, p0, P, k0, k1)


cdef inline void _unsplit(real *out, const real *xs, Py_ssize_t rows,
                          const fc_geometry *g) noexcept nogil:
    if real is float:
        fc_unsplit_rows_f32(out, xs, rows, g)
    else:
        fc_unsplit_rows_f64(out, xs, rows, g)


cdef inline void _transpose(real *dst, Py_ssize_t ldd, const real *src, Py_ssize_t lds,
                            Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    if real is float:
        fc_transpose_f32(dst, ldd, src, lds, rows, cols)
    else:
        fc_transpose_f64(dst, ldd, src, lds, rows, cols)


def im2col(const real[:, :, :, :, ::1] x, real[:, :, ::1] out, tuple kernel,
           tuple blocks, tuple stride, tuple pad, tuple dilation, int nthreads):
    """out[n] = the (C*KD*KH*KW, OD*OH*OW) im2col matrix of image x[n].

    ``blocks`` is (OD, OH, OW), the sliding-window grid.  Tasks are
    (image, channel) pairs, each filling its channel's rows.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef fc_geometry g = make_geometry((C, x.shape[2], x.shape[3], x.shape[4]), kernel,
                                       blocks, stride, pad, dilation)
    cdef Py_ssize_t kv = g.KD * g.KH * g.KW
    cdef Py_ssize_t P = out.shape[2]
    cdef Py_ssize_t t, n, c
    cdef Py_ssize_t ntasks = N * C
    if ntasks == 0 or P == 0:
        return
    with nogil:
        for t in prange(ntasks, num_threads=nthreads, schedule='static'):
            n = t // C
            c = t % C
            _im2col(&out[n, 0, 0], P, &x[n, 0, 0, 0, 0], &g, 0, P, c * kv, (c + 1) * kv)


def col2im(const real[:, :, ::1] cols, real[:, :, :, :, ::1] out, tuple kernel,
           tuple blocks, tuple stride, tuple pad, tuple dilation, int nthreads):
    """out[n] = col2im(cols[n]): overlapping windows summed (out is zeroed here).

    ``blocks`` is (OD, OH, OW), the sliding-window grid of the columns.
    Tasks are (image, channel) pairs: a channel's rows only touch its plane.
    With a horizontal stride above 1 a task sums its plane phase-split in
    the thread's buffer (unit-stride adds, see conv_transpose_gemm) and
    interleaves it into ``out``.
    """
    cdef Py_ssize_t N = out.shape[0], C = out.shape[1]
    cdef fc_geometry g = make_geometry((C, out.shape[2], out.shape[3], out.shape[4]), kernel,
                                       blocks, stride, pad, dilation)
    cdef Py_ssize_t kv = g.KD * g.KH * g.KW
    cdef Py_ssize_t P = cols.shape[2]
    cdef Py_ssize_t plane = g.D * g.H * g.W
    cdef bint split = g.sw > 1 and P > 0
    cdef Py_ssize_t splane = g.D * g.H * g.sw * fc_split_run_f32(&g) if split else 0
    cdef Py_ssize_t t, n, c
    cdef Py_ssize_t ntasks = N * C
    cdef real *acc_all = NULL
    cdef real *acc
    if ntasks == 0 or plane == 0:
        return
    cdef list keep = []
    if split:
        acc_all = <real *> borrow_scratch(None, nthreads * splane * sizeof(real),
                                          "col2im-split", keep)
    try:
        with nogil, parallel(num_threads=nthreads):
            acc = acc_all + threadid() * splane
            for t in prange(ntasks, schedule='static'):
                n = t // C
                c = t % C
                if split:
                    # channel c's rows of cols as those of a channel 0
                    memset(acc, 0, splane * sizeof(real))
                    _col2im_split(acc, &cols[n, c * kv, 0], &g, 0, P, 0, kv)
                    _unsplit(&out[n, c, 0, 0, 0], acc, g.D * g.H, &g)
                else:
                    memset(&out[n, c, 0, 0, 0], 0, plane * sizeof(real))
                    if P > 0:
                        _col2im(&out[n, 0, 0, 0, 0], &cols[n, 0, 0], &g, 0, P, c * kv,
                                (c + 1) * kv)
    finally:
        if split:
            return_scratch(acc_all, keep)


def conv_transpose_gemm(const real[:, :, :, :, ::1] x, const real[:, :, ::1] w,
                        real[:, ::1] wt, const real[::1] bias, real[:, :, :, :, ::1] out,
                        tuple kernel, tuple stride, tuple pad, tuple dilation,
                        Py_ssize_t groups, Py_ssize_t cblock, Py_ssize_t tile, int nthreads,
                        object workspace=None):
    """out = conv_transpose(x, w) + bias by GEMM (W^T x) and col2im, tiled.

    x : (N, C_in, D, H, W) input of the transposed convolution.
    w : (groups, C_in/groups, C_out/groups * KD*KH*KW), the weight matrix
        W of each group.
    wt : (groups * C_out/groups * KD*KH*KW, C_in/groups), filled here with
        W^T (row (g, co, kd, ky, kx), column ci of group g).
    out : (N, C_out, OD, OH, OW); every element is written.
    ``pad`` is the leading padding (cropping) of the equivalent forward
    convolution out -> x; ``cblock`` output channels per task, ``tile``
    input pixels per GEMM.  ``workspace`` (an allocator, see
    ``_fc.scratch``) lends the tile buffers; without one they are malloc'ed.

    Tasks are (group, block of output channels, image), statically
    scheduled, and each thread first transposes the W^T rows of its own
    blocks: no thread reads what another wrote in the call (see
    fastconv._winograd.schedule on why that matters here).  With a
    horizontal stride above 1 a task accumulates its planes phase-split
    (``fc_col2im_tile_split``: every add unit-stride) in the thread's
    buffer and interleaves them into ``out`` at the end.
    """
    cdef Py_ssize_t N = x.shape[0], Cin = x.shape[1], Cout = out.shape[1]
    cdef Py_ssize_t cin_g = Cin // groups, cout_g = Cout // groups
    cdef fc_geometry g = make_geometry((cblock, out.shape[2], out.shape[3], out.shape[4]),
                                       kernel, (x.shape[2], x.shape[3], x.shape[4]),
                                       stride, pad, dilation)
    cdef Py_ssize_t kv = g.KD * g.KH * g.KW
    cdef Py_ssize_t P = g.OD * g.OH * g.OW
    cdef Py_ssize_t plane = g.D * g.H * g.W
    cdef Py_ssize_t nblocks = (cout_g + cblock - 1) // cblock
    cdef Py_ssize_t ntasks = N * groups * nblocks
    cdef bint split = g.sw > 1
    # a plane phase-split: D*H rows of sw runs (the run length depends on
    # the geometry only, not the dtype)
    cdef Py_ssize_t splane = g.D * g.H * g.sw * fc_split_run_f32(&g) if split else 0
    cdef Py_ssize_t tplane = splane if split else plane
    cdef Py_ssize_t bufsize = cblock * kv * tile + (cblock * splane if split else 0)
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *buf_all
    cdef real *buf
    cdef real *planes
    cdef real *acc
    cdef const real *xg
    cdef const real *xbase = &x[0, 0, 0, 0, 0]
    cdef real *wbase = &wt[0, 0]
    cdef real *obase = &out[0, 0, 0, 0, 0]
    cdef Py_ssize_t t, n, gi, blk, co0, cb, p0, ptile, i, j, bt
    cdef real b
    if ntasks == 0 or plane == 0:
        return
    cdef list keep = []
    buf_all = <real *> borrow_scratch(workspace, nthreads * bufsize * sizeof(real),
                                      "col2im-tiles", keep)
    try:
        with nogil, parallel(num_threads=nthreads):
            buf = buf_all + threadid() * bufsize
            if cin_g > 0:
                # W^T rows of each (group, block), split as the tasks below are
                for bt in prange(groups * nblocks, schedule='static'):
                    gi = bt // nblocks
                    co0 = (bt % nblocks) * cblock
                    cb = cout_g - co0 if cout_g - co0 < cblock else cblock
                    _transpose(wbase + (gi * cout_g + co0) * kv * cin_g, cin_g,
                               &w[gi, 0, co0 * kv], cout_g * kv, cin_g, cb * kv)
            for t in prange(ntasks, schedule='static'):
                n = t % N
                blk = (t // N) % nblocks
                gi = t // (N * nblocks)
                co0 = blk * cblock
                cb = cout_g - co0 if cout_g - co0 < cblock else cblock
                planes = obase + (n * Cout + gi * cout_g + co0) * plane
                if P == 0 or cin_g == 0:
                    for i in range(cb):
                        b = bias[gi * cout_g + co0 + i] if has_bias else 0
                        for j in range(plane):
                            planes[i * plane + j] = b
                    continue
                # the planes the tiles accumulate into
                acc = buf + cblock * kv * tile if split else planes
                for i in range(cb):
                    b = bias[gi * cout_g + co0 + i] if has_bias else 0
                    for j in range(tplane):
                        acc[i * tplane + j] = b
                xg = xbase + (n * Cin + gi * cin_g) * P
                p0 = 0
                while p0 < P:
                    ptile = P - p0 if P - p0 < tile else tile
                    # buf = W^T[rows of this block] @ x[:, tile]: both operands
                    # as stored (op 'N'), which OpenBLAS packs faster than an
                    # op-'T' W (0.65-0.69 vs 0.68-0.75 ms per 512x256x256 task)
                    _gemm_rowmajor(<int> (cb * kv), <int> ptile, <int> cin_g,
                                   wbase + (gi * cout_g * kv + co0 * kv) * cin_g,
                                   <int> cin_g, xg + p0, <int> P, buf, <int> ptile)
                    if split:
                        _col2im_split(acc, buf, &g, p0, ptile, 0, cb * kv)
                    else:
                        _col2im(planes, buf, &g, p0, ptile, 0, cb * kv)
                    p0 = p0 + ptile
                if split:
                    _unsplit(planes, acc, cb * g.D * g.H, &g)
    finally:
        return_scratch(buf_all, keep)


cdef inline void _gather(real *col, real *gyc, Py_ssize_t ld, const real *x,
                         const real *gy, const fc_geometry *g, Py_ssize_t Cin, Py_ssize_t Cout,
                         Py_ssize_t gi, Py_ssize_t cin_g, Py_ssize_t cout_g, Py_ssize_t P,
                         Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t k0, Py_ssize_t k1,
                         Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Positions s0 .. s1-1 of the sequence of all images' output pixels
    (image s // P, pixel s % P), group gi: rows k0 .. k1-1 of their im2col
    columns into col, and output channels c0 .. c1-1 of the output gradient
    into gyc, both with leading dimension ld."""
    cdef Py_ssize_t s = s0, n, p, m, c
    cdef Py_ssize_t in_img = g.D * g.H * g.W
    while s < s1:
        n = s // P
        p = s - n * P
        m = P - p if P - p < s1 - s else s1 - s
        if k1 > k0:
            _im2col(col + (s - s0), ld, x + (n * Cin + gi * cin_g) * in_img, g, p, m, k0, k1)
        for c in range(c0, c1):
            memcpy(gyc + c * ld + (s - s0), gy + (n * Cout + gi * cout_g + c) * P + p,
                   m * sizeof(real))
        s += m


def conv_weight_grad(const real[:, :, :, :, ::1] x, const real[:, :, :, :, ::1] gy,
                     real[:, ::1] acc, tuple kernel, tuple stride, tuple pad, tuple dilation,
                     Py_ssize_t groups, Py_ssize_t chunk, int nthreads, bint parallel_chunks,
                     bint transposed, object workspace=None):
    """acc[t] = the weight gradient, or thread t's share of it.

    x : (N, C_in, D, H, W) input of the forward convolution.
    gy : (N, C_out, OD, OH, OW) gradient of its output.
    acc : (nthreads, C_out * K) with ``parallel_chunks``, else (1, C_out * K),
        K = C_in/groups*KD*KH*KW; zeroed here.  With ``parallel_chunks`` row
        t is thread t's copy, of dW^T per group (K x C_out/groups blocks)
        if ``transposed``, else of dW (C_out x K); the caller sums the
        copies (and transposes).  Otherwise the one row is dW.
    The output pixels of all images form one sequence per group, cut into
    chunks of ``chunk`` positions (a chunk may span images, so the GEMMs'
    inner dimension stays wide on small images).  A chunk's im2col columns
    (K x chunk) and output-gradient rows (C_out/groups x chunk) are gathered
    into buffers and ``dW += gy_chunk @ col^T`` by BLAS.  With
    ``parallel_chunks`` the threads run whole (group, chunk) tasks into
    accumulators of their own (where ``chunk <= P`` the chunks are tiles of
    one image each, whose output gradient is read in place); otherwise
    (large accumulators) the chunks run in sequence, the threads sharing
    the gather (by rows) and the GEMM (by output channels, or by columns of
    dW when they are more).
    """
    cdef Py_ssize_t N = x.shape[0], Cin = x.shape[1], Cout = gy.shape[1]
    cdef Py_ssize_t cin_g = Cin // groups, cout_g = Cout // groups
    cdef fc_geometry g = make_geometry((cin_g, x.shape[2], x.shape[3], x.shape[4]), kernel,
                                       (gy.shape[2], gy.shape[3], gy.shape[4]),
                                       stride, pad, dilation)
    cdef Py_ssize_t K = cin_g * g.KD * g.KH * g.KW
    cdef Py_ssize_t P = g.OD * g.OH * g.OW
    cdef Py_ssize_t S = N * P
    cdef Py_ssize_t in_img = g.D * g.H * g.W
    # chunk <= P (parallel chunks only): `tiles` tiles per image; otherwise
    # chunks of the sequence of all images' pixels
    cdef Py_ssize_t tiles = (P + chunk - 1) // chunk
    cdef Py_ssize_t nchunks = (N * tiles if parallel_chunks and chunk <= P
                               else (S + chunk - 1) // chunk)
    cdef Py_ssize_t ntasks = groups * nchunks
    cdef Py_ssize_t per_buf = (K + cout_g) * chunk
    cdef Py_ssize_t nacc = acc.shape[0], ldacc = acc.shape[1]
    cdef real *bufs
    cdef real *col
    cdef real *gyc
    cdef real *accbase = &acc[0, 0]
    cdef real *mine
    cdef const real *xbase
    cdef const real *gbase
    cdef Py_ssize_t t, gi, s0, s1, r, pieces, by_rows, r0, r1, n, p0, m
    if K == 0 or cout_g == 0:
        return
    with nogil:
        for t in prange(nacc, schedule='static', num_threads=nthreads):
            memset(accbase + t * ldacc, 0, ldacc * sizeof(real))
    if ntasks == 0:
        return
    xbase = &x[0, 0, 0, 0, 0]
    gbase = &gy[0, 0, 0, 0, 0]
    cdef list keep = []
    bufs = <real *> borrow_scratch(
        workspace, (nthreads if parallel_chunks else 1) * per_buf * sizeof(real),
        "wgrad-chunks", keep)
    try:
        if parallel_chunks:
            # Each thread's accumulator holds dW^T per group (K x C_out/groups)
            # if `transposed`, so that BLAS multiplies with M = C_out/groups
            # (faster with few output channels), else dW (M = K).
            with nogil, parallel(num_threads=nthreads):
                col = bufs + threadid() * per_buf
                gyc = col + K * chunk
                mine = accbase + threadid() * ldacc
                for t in prange(ntasks, schedule='dynamic'):
                    gi = t // nchunks
                    if chunk <= P:
                        # tiles within one image: the output gradient is
                        # read in place
                        s0 = t % nchunks
                        n = s0 // tiles
                        p0 = (s0 - n * tiles) * chunk
                        m = P - p0 if P - p0 < chunk else chunk
                        _im2col(col, m, xbase + (n * Cin + gi * cin_g) * in_img, &g, p0, m,
                                0, K)
                        if transposed:
                            _gemm_abt_acc(<int> K, <int> cout_g, <int> m, col, <int> m,
                                          gbase + (n * Cout + gi * cout_g) * P + p0, <int> P,
                                          mine + gi * K * cout_g, <int> cout_g, 1)
                        else:
                            _gemm_abt_acc(<int> cout_g, <int> K, <int> m,
                                          gbase + (n * Cout + gi * cout_g) * P + p0, <int> P,
                                          col, <int> m, mine + gi * K * cout_g, <int> K, 1)
                    else:
                        s0 = (t % nchunks) * chunk
                        s1 = s0 + chunk if s0 + chunk < S else S
                        _gather(col, gyc, chunk, xbase, gbase, &g, Cin, Cout, gi, cin_g,
                                cout_g, P, s0, s1, 0, K, 0, cout_g)
                        if transposed:
                            _gemm_abt_acc(<int> K, <int> cout_g, <int> (s1 - s0), col,
                                          <int> chunk, gyc, <int> chunk,
                                          mine + gi * K * cout_g, <int> cout_g, 1)
                        else:
                            _gemm_abt_acc(<int> cout_g, <int> K, <int> (s1 - s0), gyc,
                                          <int> chunk, col, <int> chunk,
                                          mine + gi * K * cout_g, <int> K, 1)
            return
        col = bufs
        gyc = col + K * chunk
        # The GEMM of a chunk is split into `pieces` blocks of dW: of rows
        # (output channels) or, when dW has more columns than rows, of columns.
        by_rows = cout_g >= K
        pieces = min(nthreads, cout_g if by_rows else K)
        for t in range(ntasks):
            gi = t // nchunks
            s0 = (t % nchunks) * chunk
            s1 = s0 + chunk if s0 + chunk < S else S
            with nogil, parallel(num_threads=nthreads):
                for r in prange(pieces, schedule='static'):
                    _gather(col, gyc, chunk, xbase, gbase, &g, Cin, Cout, gi, cin_g, cout_g,
                            P, s0, s1, r * K // pieces, (r + 1) * K // pieces,
                            r * cout_g // pieces, (r + 1) * cout_g // pieces)
                for r in prange(pieces, schedule='static'):
                    if by_rows:
                        r0 = r * cout_g // pieces
                        r1 = (r + 1) * cout_g // pieces
                        _gemm_abt_acc(<int> (r1 - r0), <int> K, <int> (s1 - s0),
                                      gyc + r0 * chunk, <int> chunk, col, <int> chunk,
                                      accbase + (gi * cout_g + r0) * K, <int> K, 1)
                    else:
                        r0 = r * K // pieces
                        r1 = (r + 1) * K // pieces
                        _gemm_abt_acc(<int> cout_g, <int> (r1 - r0), <int> (s1 - s0),
                                      gyc, <int> chunk, col + r0 * chunk, <int> chunk,
                                      accbase + gi * cout_g * K + r0, <int> K, 1)
    finally:
        return_scratch(bufs, keep)


#: Input channels per task of subpixel_weights: as many sequential read
#: streams through the weight, and runs of that many filters written.
cdef enum:
    SUBPIXEL_CHANNELS = 16


def subpixel_weights(const real[:, :, :, ::1] w, real[:, :, :, :, :, ::1] out,
                     const Py_ssize_t[:, ::1] taps_h, const Py_ssize_t[:, ::1] taps_w,
                     int nthreads):
    """The sub-pixel form's stacked weight (2-D).

    ``w`` is the transposed convolution's weight (C_in, C_out/g, KH, KW);
    ``out`` is (g, P, C_out/g, C_in/g, qh, qw) with P = Ph * Pw phases,
    phase ``a * Pw + b`` taking ``w[gi*C_in/g + c, o, taps_h[a, u],
    taps_w[b, v]]`` at ``[gi, a*Pw + b, o, c, u, v]``.  The tap tables hold
    valid kernel indices (the caller built them from the phase plan).
    """
    cdef Py_ssize_t G = out.shape[0], Pw = taps_w.shape[0]
    cdef Py_ssize_t P = out.shape[1], Cog = out.shape[2], Cig = out.shape[3]
    cdef Py_ssize_t qh = out.shape[4], qw = out.shape[5], q2 = qh * qw
    cdef Py_ssize_t KW = w.shape[3], KK = w.shape[2] * w.shape[3]
    cdef Py_ssize_t nblk = (Cig + SUBPIXEL_CHANNELS - 1) // SUBPIXEL_CHANNELS
    cdef Py_ssize_t t, gi, c, c0, c1, ph, o, e
    cdef const real *src
    cdef real *dst
    if out.size == 0:
        return
    # tap offsets within a filter's KH x KW block, per phase
    cdef Py_ssize_t[::1] off = np.empty(P * q2, dtype=np.intp)
    for ph in range(P):
        for e in range(q2):
            off[ph * q2 + e] = taps_h[ph // Pw, e // qw] * KW + taps_w[ph % Pw, e % qw]
    with nogil:
        # a task per (group, block of SUBPIXEL_CHANNELS input channels):
        # output channel by output channel, the block's filters are read as
        # that many sequential streams through w and written as one run of
        # (channels, qh, qw) values per phase
        for t in prange(G * nblk, num_threads=nthreads, schedule='static'):
            gi = t // nblk
            c0 = (t % nblk) * SUBPIXEL_CHANNELS
            c1 = min(c0 + SUBPIXEL_CHANNELS, Cig)
            for o in range(Cog):
                for c in range(c0, c1):
                    src = &w[gi * Cig + c, o, 0, 0]
                    for ph in range(P):
                        dst = &out[gi, ph, o, c, 0, 0]
                        for e in range(q2):
                            dst[e] = src[off[ph * q2 + e]]


def subpixel_deal(const real[:, :, :, ::1] z, real[:, :, :, :] y, Py_ssize_t groups,
                  const Py_ssize_t[:, ::1] ph_h, const Py_ssize_t[:, ::1] ph_w,
                  Py_ssize_t sh, Py_ssize_t sw, int nthreads):
    """Deal the sub-pixel form's stacked outputs to the phases of y (2-D).

    ``z`` is (N, g*P*C_out/g, LH, LW), channel ``(gi*P + a*Pw + b)*C_out/g
    + o`` holding phase (a, b) of output channel ``gi*C_out/g + o``; ``ph_h``
    rows are (phi, count, offset) per row phase (``ph_w`` per column phase):
    ``y[n, c, phi_h + i*sh, phi_w + j*sw] = z[n, zc, off_h + i, off_w + j]``
    for i < count_h, j < count_w.  ``y`` may be any strided view; tasks own
    whole output planes.
    """
    cdef Py_ssize_t N = y.shape[0], C = y.shape[1]
    cdef Py_ssize_t Ph = ph_h.shape[0], Pw = ph_w.shape[0]
    cdef Py_ssize_t Cg = C // groups, P = Ph * Pw
    cdef Py_ssize_t ys = y.strides[3] // <Py_ssize_t> sizeof(real)
    # two column phases at columns 0 and 1 of every pair, as for stride 2:
    # each output row is the interleave of two rows of z
    cdef bint pairs = (sw == 2 and Pw == 2 and ph_w[0, 0] == 0 and ph_w[1, 0] == 1
                       and 0 <= ph_w[0, 1] - ph_w[1, 1] <= 1
                       and y.strides[3] == sizeof(real))
    cdef Py_ssize_t t, n, c, a, b, zc, i, j, r, x0, off_w, cnt_w, npair
    cdef real *yrow
    cdef const real *z0
    cdef const real *z1
    if y.size == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=nthreads, schedule='static'):
            n = t // C
            c = t % C
            for a in range(Ph):
                zc = ((c // Cg) * P + a * Pw) * Cg + c % Cg
                for i in range(ph_h[a, 1]):
                    r = ph_h[a, 0] + i * sh
                    yrow = &y[n, c, r, 0]
                    if pairs:
                        z0 = &z[n, zc, ph_h[a, 2] + i, ph_w[0, 2]]
                        z1 = &z[n, zc + Cg, ph_h[a, 2] + i, ph_w[1, 2]]
                        npair = min(ph_w[0, 1], ph_w[1, 1])
                        for j in range(npair):
                            yrow[2 * j] = z0[j]
                            yrow[2 * j + 1] = z1[j]
                        if ph_w[0, 1] > npair:
                            yrow[2 * npair] = z0[npair]
                        continue
                    for b in range(Pw):
                        x0 = ph_w[b, 0]
                        cnt_w = ph_w[b, 1]
                        off_w = ph_w[b, 2]
                        z0 = &z[n, zc + b * Cg, ph_h[a, 2] + i, off_w]
                        for j in range(cnt_w):
                            yrow[(x0 + j * sw) * ys] = z0[j]
