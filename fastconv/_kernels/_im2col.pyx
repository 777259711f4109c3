"""Cache-tiled im2col + GEMM kernel (leaf code).

For each image n and group g the output block (C_out/groups, P), with
P = OD*OH*OW, is the product of the group's weight matrix
(C_out/groups, K), K = C_in/groups * KD*KH*KW, and the im2col matrix (K, P).
The im2col matrix is never built whole: it is produced ``tile`` columns at a
time into a per-thread buffer of K*tile elements, and each tile is consumed
at once by one BLAS GEMM (``scipy.linalg.cython_blas`` sgemm/dgemm) that
writes its columns of the output in place.  Working memory is therefore
``threads * K * tile`` elements whatever the image size.

Two schedules, chosen by the caller:

* ``parallel_tiles=True``: an OpenMP ``prange`` over the (n, g, tile) tasks,
  each thread filling its own buffer and calling GEMM on it;
* ``parallel_tiles=False``: tasks in sequence, for layers with few, small
  tiles: all threads fill each tile together (OpenMP over its rows), then
  each multiplies its share of the output channels.

BLAS runs single-threaded inside the OpenMP team in both schedules (the
caller holds it at one thread with threadpoolctl), so OpenMP and BLAS
threads never compete for the cores.

A 1x1 kernel with unit stride and no padding needs no im2col: the input
itself is the (K, P) matrix and goes to GEMM directly.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

from ._fc cimport (real, fc_geometry, make_geometry, fc_im2col_tile_f32, fc_im2col_tile_f64,
                   borrow_scratch, return_scratch)
from ._gemm cimport _gemm_rowmajor


cdef inline void _tile(real *col, const real *x, const fc_geometry *g,
                       Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                       Py_ssize_t k1) noexcept nogil:
    if real is float:
        fc_im2col_tile_f32(col, P, x, g, p0, P, k0, k1)
    else:
        fc_im2col_tile_f64(col, P, x, g, p0, P, k0, k1)


cdef inline void _multiply(const real *xg, const real *wg, const real *bias_g,
                           real *outg, const real *col, Py_ssize_t cout_g, Py_ssize_t K,
                           Py_ssize_t P, Py_ssize_t p0, Py_ssize_t ptile,
                           bint identity) noexcept nogil:
    """GEMM of one filled tile (or of the input itself for ``identity``)
    into output columns p0 .. p0+ptile-1, then the bias."""
    cdef const real *B
    cdef int ldb
    cdef Py_ssize_t co, j
    cdef real b
    if identity:
        B = xg + p0
        ldb = <int> P
    else:
        B = col
        ldb = <int> ptile
    _gemm_rowmajor(<int> cout_g, <int> ptile, <int> K, wg, <int> K, B, ldb,
                   outg + p0, <int> P)
    if bias_g != NULL:
        for co in range(cout_g):
            b = bias_g[co]
            for j in range(ptile):
                outg[co * P + p0 + j] += b


cdef inline (Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) _decode(
        Py_ssize_t t, Py_ssize_t ntiles, Py_ssize_t groups, Py_ssize_t tile,
        Py_ssize_t P) noexcept nogil:
    """Task t -> (image n, group gi, first column p0, width ptile) of its tile.

    Returned, not written through pointers: inside ``prange`` the caller's
    assignment is what makes the four variables thread-private.
    """
    cdef Py_ssize_t p0 = (t % ntiles) * tile
    return (t // (ntiles * groups), (t // ntiles) % groups, p0,
            P - p0 if P - p0 < tile else tile)


def conv_im2col(const real[:, :, :, :, ::1] x, const real[:, :, :, :, ::1] weight,
                const real[::1] bias, real[:, :, :, :, ::1] out,
                tuple stride, tuple pad, tuple dilation, Py_ssize_t groups,
                Py_ssize_t tile, bint parallel_tiles, int nthreads, object workspace=None):
    """out = correlate(x, weight) + bias by tiled im2col + GEMM (5-D arrays).

    ``tile`` is the number of output pixels per im2col tile (1 <= tile <= P);
    ``bias`` has length C_out, or 0 for no bias.  The caller guarantees that
    K, P and the tile fit BLAS's 32-bit integers.  ``workspace`` (an
    allocator, see ``_fc.borrow_scratch``) lends the tile buffers; without
    one they are malloc'ed for the call.
    """
    cdef Py_ssize_t N = x.shape[0], Cin = x.shape[1], Cout = out.shape[1]
    cdef Py_ssize_t cin_g = weight.shape[1], cout_g = Cout // groups
    cdef fc_geometry g = make_geometry(
        (cin_g, x.shape[2], x.shape[3], x.shape[4]),
        (weight.shape[2], weight.shape[3], weight.shape[4]),
        (out.shape[2], out.shape[3], out.shape[4]), stride, pad, dilation)
    cdef Py_ssize_t K = cin_g * g.KD * g.KH * g.KW
    cdef Py_ssize_t P = g.OD * g.OH * g.OW
    cdef Py_ssize_t in_img = g.D * g.H * g.W
    cdef Py_ssize_t ntiles = (P + tile - 1) // tile
    cdef Py_ssize_t ntasks = N * groups * ntiles
    cdef bint identity = (g.KD == 1 and g.KH == 1 and g.KW == 1
                          and g.sd == 1 and g.sh == 1 and g.sw == 1
                          and g.pd == 0 and g.ph == 0 and g.pw == 0
                          and g.OD == g.D and g.OH == g.H and g.OW == g.W)
    cdef bint has_bias = bias.shape[0] > 0
    cdef Py_ssize_t nbuf = (nthreads if parallel_tiles else 1)
    cdef Py_ssize_t bufsize = 0 if identity else K * tile
    cdef real *col_all = NULL
    cdef real *col
    cdef Py_ssize_t t, n, gi, p0, ptile, kc, kchunk, mc, mchunk, m0, m1
    cdef const real *xg
    cdef const real *xbase = &x[0, 0, 0, 0, 0]
    cdef const real *wbase = &weight[0, 0, 0, 0, 0]
    cdef real *obase = &out[0, 0, 0, 0, 0]
    cdef const real *bbase = &bias[0] if has_bias else NULL

    if ntasks == 0 or K == 0:
        return
    cdef list keep = []
    col_all = <real *> borrow_scratch(workspace, nbuf * bufsize * sizeof(real), "im2col-tiles",
                                      keep)
    try:
        if parallel_tiles:
            with nogil, parallel(num_threads=nthreads):
                col = col_all + threadid() * bufsize
                for t in prange(ntasks, schedule='guided'):
                    n, gi, p0, ptile = _decode(t, ntiles, groups, tile, P)
                    xg = xbase + (n * Cin + gi * cin_g) * in_img
                    if not identity:
                        _tile(col, xg, &g, p0, ptile, 0, K)
                    _multiply(xg, wbase + gi * cout_g * K,
                              (bbase + gi * cout_g) if has_bias else NULL,
                              obase + (n * Cout + gi * cout_g) * P,
                              col, cout_g, K, P, p0, ptile, identity)
        else:
            kchunk = (K + nthreads - 1) // nthreads
            mchunk = (cout_g + nthreads - 1) // nthreads
            for t in range(ntasks):
                n, gi, p0, ptile = _decode(t, ntiles, groups, tile, P)
                xg = xbase + (n * Cin + gi * cin_g) * in_img
                with nogil, parallel(num_threads=nthreads):
                    if not identity:
                        # Every thread fills its share of the tile's rows ...
                        for kc in prange(nthreads, schedule='static'):
                            _tile(col_all, xg, &g, p0, ptile, kc * kchunk,
                                  min(K, (kc + 1) * kchunk))
                    # ... then multiplies its share of the output channels.
                    for mc in prange(nthreads, schedule='static'):
                        m0 = mc * mchunk
                        m1 = min(cout_g, m0 + mchunk)
                        if m1 > m0:
                            _multiply(xg, wbase + (gi * cout_g + m0) * K,
                                      (bbase + gi * cout_g + m0) if has_bias else NULL,
                                      obase + (n * Cout + gi * cout_g + m0) * P,
                                      col_all, m1 - m0, K, P, p0, ptile, identity)
    finally:
        return_scratch(col_all, keep)


def conv_im2col_banded(const real[:, :, :, :, ::1] x, const real[:, :, :, ::1] band,
                       const real[::1] bias, real[:, :, :, :, ::1] out,
                       tuple stride, tuple pad, tuple dilation, Py_ssize_t kh,
                       Py_ssize_t kw, Py_ssize_t rows, Py_ssize_t cols, int nthreads,
                       object workspace=None):
    """Banded im2col + GEMM for groups with one input and one output channel.

    With a single filter per group the ordinary im2col product is a GEMV.
    Here each task takes ``rows`` output rows of one plane at once: it
    builds the im2col matrix of the ``S = (rows-1)*sh + (kh-1)*dh + 1``
    input rows they read along the kernel's columns only (S*kw rows,
    ``cols`` output columns), and multiplies it by the group's banded
    (block-Toeplitz) weight matrix ``band[g]`` of shape (rows, S*kw), whose
    row r holds kernel row ky at input row r*sh + ky*dh.  GEMM then has
    ``rows`` rows instead of one.  All arrays are 5-D (N, C, D, H, W) with
    C == groups, kernel depth 1; ``band`` is (C, D_k = 1, rows, S*kw).
    ``workspace`` lends the tile buffers as in ``conv_im2col``.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef fc_geometry g = make_geometry(
        (1, x.shape[2], x.shape[3], x.shape[4]), (1, kh, kw),
        (out.shape[2], out.shape[3], out.shape[4]), stride, pad, dilation)
    cdef Py_ssize_t S = (rows - 1) * g.sh + (kh - 1) * g.dh + 1
    cdef Py_ssize_t K = S * kw
    # The strip's input rows seen as S one-row "channels" of a 1-D problem.
    cdef fc_geometry rowg = make_geometry(
        (S, 1, 1, g.W), (1, 1, kw), (1, 1, g.OW), (1, 1, g.sw), (0, 0, g.pw),
        (1, 1, g.dw))
    cdef Py_ssize_t strips = (g.OH + rows - 1) // rows
    cdef Py_ssize_t ctiles = (g.OW + cols - 1) // cols
    cdef Py_ssize_t ntasks = N * C * g.OD * strips * ctiles
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *col_all
    cdef real *col
    cdef Py_ssize_t t, r, n, c, od, strip, ct, oy0, ox0, m, ncol, iy0, s_lo, s_hi, idd, j
    cdef real b
    if ntasks == 0:
        return
    cdef list keep = []
    col_all = <real *> borrow_scratch(workspace, nthreads * K * cols * sizeof(real),
                                      "im2col-tiles", keep)
    try:
        with nogil, parallel(num_threads=nthreads):
            col = col_all + threadid() * K * cols
            for t in prange(ntasks, schedule='guided'):
                ct = t % ctiles
                r = t // ctiles
                strip = r % strips
                r = r // strips
                od = r % g.OD
                r = r // g.OD
                c = r % C
                n = r // C
                oy0 = strip * rows
                ox0 = ct * cols
                m = g.OH - oy0 if g.OH - oy0 < rows else rows
                ncol = g.OW - ox0 if g.OW - ox0 < cols else cols
                idd = od * g.sd - g.pd
                iy0 = oy0 * g.sh - g.ph
                # Strip rows s in [s_lo, s_hi) exist; the others are padding.
                s_lo = -iy0 if iy0 < 0 else 0
                s_hi = g.H - iy0 if g.H - iy0 < S else S
                if idd < 0 or idd >= g.D or s_hi < s_lo:
                    s_hi = s_lo
                memset(col, 0, s_lo * kw * ncol * sizeof(real))
                memset(col + s_hi * kw * ncol, 0, (S - s_hi) * kw * ncol * sizeof(real))
                if s_hi > s_lo:
                    _tile(col + s_lo * kw * ncol, &x[n, c, idd, iy0 + s_lo, 0], &rowg,
                          ox0, ncol, 0, (s_hi - s_lo) * kw)
                _gemm_rowmajor(<int> m, <int> ncol, <int> K, &band[c, 0, 0, 0], <int> K,
                               col, <int> ncol, &out[n, c, od, oy0, ox0], <int> g.OW)
                if has_bias:
                    b = bias[c]
                    for r in range(m):
                        for j in range(ncol):
                            out[n, c, od, oy0 + r, ox0 + j] += b
    finally:
        return_scratch(col_all, keep)
