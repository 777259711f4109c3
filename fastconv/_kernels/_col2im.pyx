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
* ``conv_weight_grad``: dW_g = sum over images and tiles of
  gy_g[:, tile] @ im2col(x_g)[:, tile]^T, each thread accumulating into its
  own copy of dW (GEMM with beta = 1); the caller sums the copies.

BLAS runs single-threaded inside the OpenMP teams (the caller holds it at
one thread), so OpenMP and BLAS threads never compete for the cores.
"""
# cython: boundscheck=False, wraparound=False, cdivision=True
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

from ._fc cimport (real, fc_geometry, make_geometry, fc_im2col_tile_f32, fc_im2col_tile_f64,
                   fc_col2im_tile_f32, fc_col2im_tile_f64, borrow_scratch, return_scratch)


cdef inline void _im2col(real *col, const real *x, const fc_geometry *g,
                         Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                         Py_ssize_t k1) noexcept nogil:
    if real is float:
        fc_im2col_tile_f32(col, x, g, p0, P, k0, k1)
    else:
        fc_im2col_tile_f64(col, x, g, p0, P, k0, k1)


cdef inline void _col2im(real *x, const real *col, const fc_geometry *g,
                         Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                         Py_ssize_t k1) noexcept nogil:
    if real is float:
        fc_col2im_tile_f32(x, col, g, p0, P, k0, k1)
    else:
        fc_col2im_tile_f64(x, col, g, p0, P, k0, k1)


cdef inline void _gemm_nt_acc(int M, int Ncols, int K, const real *A, int lda,
                              const real *B, int ldb, real *C, int ldc) noexcept nogil:
    """C[M, Ncols] += A[M, K] @ B[Ncols, K]^T, all row-major.

    Column-major BLAS sees C^T (Ncols x M) += B (Ncols x K) @ A^T: B is
    stored as its transpose (K x Ncols, ldb), hence op 'T'.
    """
    cdef char tb = b'T', na = b'N'
    cdef real one = 1
    if real is float:
        sgemm(&tb, &na, &Ncols, &M, &K, &one, <float *> B, &ldb, <float *> A, &lda,
              &one, C, &ldc)
    else:
        dgemm(&tb, &na, &Ncols, &M, &K, &one, <double *> B, &ldb, <double *> A, &lda,
              &one, C, &ldc)


cdef inline void _gemm_wt_x(int M, int Ncols, int K, const real *W, int ldw,
                            const real *X, int ldx, real *C) noexcept nogil:
    """C[M, Ncols] = W[K, M]^T @ X[K, Ncols], row-major, C dense (ldc = Ncols).

    Column-major BLAS sees C^T (Ncols x M) = X^T (Ncols x K) @ W (K x M):
    X as stored is X^T column-major (op 'N'), W as stored is W^T
    column-major (op 'T').
    """
    cdef char nx = b'N', tw = b'T'
    cdef real one = 1, zero = 0
    if real is float:
        sgemm(&nx, &tw, &Ncols, &M, &K, &one, <float *> X, &ldx, <float *> W, &ldw,
              &zero, C, &Ncols)
    else:
        dgemm(&nx, &tw, &Ncols, &M, &K, &one, <double *> X, &ldx, <double *> W, &ldw,
              &zero, C, &Ncols)


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
            _im2col(&out[n, 0, 0], &x[n, 0, 0, 0, 0], &g, 0, P, c * kv, (c + 1) * kv)


def col2im(const real[:, :, ::1] cols, real[:, :, :, :, ::1] out, tuple kernel,
           tuple blocks, tuple stride, tuple pad, tuple dilation, int nthreads):
    """out[n] = col2im(cols[n]): overlapping windows summed (out is zeroed here).

    ``blocks`` is (OD, OH, OW), the sliding-window grid of the columns.
    Tasks are (image, channel) pairs: a channel's rows only touch its plane.
    """
    cdef Py_ssize_t N = out.shape[0], C = out.shape[1]
    cdef fc_geometry g = make_geometry((C, out.shape[2], out.shape[3], out.shape[4]), kernel,
                                       blocks, stride, pad, dilation)
    cdef Py_ssize_t kv = g.KD * g.KH * g.KW
    cdef Py_ssize_t P = cols.shape[2]
    cdef Py_ssize_t plane = g.D * g.H * g.W
    cdef Py_ssize_t t, n, c
    cdef Py_ssize_t ntasks = N * C
    if ntasks == 0 or plane == 0:
        return
    with nogil:
        for t in prange(ntasks, num_threads=nthreads, schedule='static'):
            n = t // C
            c = t % C
            memset(&out[n, c, 0, 0, 0], 0, plane * sizeof(real))
            if P > 0:
                _col2im(&out[n, 0, 0, 0, 0], &cols[n, 0, 0], &g, 0, P, c * kv, (c + 1) * kv)


def conv_transpose_gemm(const real[:, :, :, :, ::1] x, const real[:, ::1] w,
                        const real[::1] bias, real[:, :, :, :, ::1] out, tuple kernel,
                        tuple stride, tuple pad, tuple dilation, Py_ssize_t groups,
                        Py_ssize_t cblock, Py_ssize_t tile, int nthreads,
                        object workspace=None):
    """out = conv_transpose(x, w) + bias by GEMM (W^T x) and col2im, tiled.

    x : (N, C_in, D, H, W) input of the transposed convolution.
    w : (C_in, C_out/groups * KD*KH*KW), the weight as a matrix: rows
        g*C_in/groups .. of group g, column (co, kd, ky, kx); its
        transpose W^T is read in place (GEMM op 'T').
    out : (N, C_out, OD, OH, OW); every element is written.
    ``pad`` is the leading padding (cropping) of the equivalent forward
    convolution out -> x; ``cblock`` output channels per task, ``tile``
    input pixels per GEMM.  ``workspace`` (an allocator, see
    ``_fc.scratch``) lends the tile buffers; without one they are malloc'ed.
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
    cdef Py_ssize_t bufsize = cblock * kv * tile
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *buf_all
    cdef real *buf
    cdef real *planes
    cdef const real *xg
    cdef const real *xbase = &x[0, 0, 0, 0, 0]
    cdef const real *wbase = &w[0, 0]
    cdef real *obase = &out[0, 0, 0, 0, 0]
    cdef Py_ssize_t t, n, gi, blk, co0, cb, p0, ptile, i, j
    cdef real b
    if ntasks == 0 or plane == 0:
        return
    cdef list keep = []
    buf_all = <real *> borrow_scratch(workspace, nthreads * bufsize * sizeof(real),
                                      "col2im-tiles", keep)
    try:
        with nogil, parallel(num_threads=nthreads):
            buf = buf_all + threadid() * bufsize
            for t in prange(ntasks, schedule='dynamic'):
                blk = t % nblocks
                gi = (t // nblocks) % groups
                n = t // (nblocks * groups)
                co0 = blk * cblock
                cb = cout_g - co0 if cout_g - co0 < cblock else cblock
                planes = obase + (n * Cout + gi * cout_g + co0) * plane
                for i in range(cb):
                    b = bias[gi * cout_g + co0 + i] if has_bias else 0
                    for j in range(plane):
                        planes[i * plane + j] = b
                if P == 0 or cin_g == 0:
                    continue
                xg = xbase + (n * Cin + gi * cin_g) * P
                p0 = 0
                while p0 < P:
                    ptile = P - p0 if P - p0 < tile else tile
                    _gemm_wt_x(<int> (cb * kv), <int> ptile, <int> cin_g,
                               wbase + gi * cin_g * cout_g * kv + co0 * kv,
                               <int> (cout_g * kv), xg + p0, <int> P, buf)
                    _col2im(planes, buf, &g, p0, ptile, 0, cb * kv)
                    p0 = p0 + ptile
    finally:
        return_scratch(buf_all, keep)


def conv_weight_grad(const real[:, :, :, :, ::1] x, const real[:, :, :, :, ::1] gy,
                     real[:, ::1] acc, tuple kernel, tuple stride, tuple pad, tuple dilation,
                     Py_ssize_t groups, Py_ssize_t tile, int nthreads,
                     object workspace=None):
    """acc[thread] += the weight gradient of the tasks each thread ran.

    x : (N, C_in, D, H, W) input of the forward convolution.
    gy : (N, C_out, OD, OH, OW) gradient of its output.
    acc : (nthreads, C_out * C_in/groups * KD*KH*KW), zeroed by the caller;
        per group g the block ``[g*K*cout_g, (g+1)*K*cout_g)`` holds the
        transposed gradient (K x C_out/groups, K = C_in/groups*KD*KH*KW),
        summed over threads by the caller.
    Tasks are (image, group, tile of output pixels); each fills the tile's
    im2col matrix (K x tile) in its buffer and multiplies it into its
    thread's accumulator.
    """
    cdef Py_ssize_t N = x.shape[0], Cin = x.shape[1], Cout = gy.shape[1]
    cdef Py_ssize_t cin_g = Cin // groups, cout_g = Cout // groups
    cdef fc_geometry g = make_geometry((cin_g, x.shape[2], x.shape[3], x.shape[4]), kernel,
                                       (gy.shape[2], gy.shape[3], gy.shape[4]),
                                       stride, pad, dilation)
    cdef Py_ssize_t K = cin_g * g.KD * g.KH * g.KW
    cdef Py_ssize_t P = g.OD * g.OH * g.OW
    cdef Py_ssize_t in_img = g.D * g.H * g.W
    cdef Py_ssize_t ntiles = (P + tile - 1) // tile
    cdef Py_ssize_t ntasks = N * groups * ntiles
    cdef real *col_all
    cdef real *col
    cdef real *accbase = &acc[0, 0]
    cdef const real *xbase
    cdef const real *gbase
    cdef Py_ssize_t t, n, gi, p0, ptile, tid
    if ntasks == 0 or K == 0 or cout_g == 0:
        return
    xbase = &x[0, 0, 0, 0, 0]
    gbase = &gy[0, 0, 0, 0, 0]
    cdef list keep = []
    col_all = <real *> borrow_scratch(workspace, nthreads * K * tile * sizeof(real),
                                      "im2col-tiles", keep)
    try:
        with nogil, parallel(num_threads=nthreads):
            tid = threadid()
            col = col_all + tid * K * tile
            for t in prange(ntasks, schedule='dynamic'):
                p0 = (t % ntiles) * tile
                gi = (t // ntiles) % groups
                n = t // (ntiles * groups)
                ptile = P - p0 if P - p0 < tile else tile
                _im2col(col, xbase + (n * Cin + gi * cin_g) * in_img, &g, p0, ptile, 0, K)
                # acc's group block is dW^T (K x C_out/groups): BLAS then
                # multiplies with M = C_out/groups, N = K (measured 10-60%
                # faster with OpenBLAS than the transposed orientation).
                _gemm_nt_acc(<int> K, <int> cout_g, <int> ptile,
                             col, <int> ptile,
                             gbase + (n * Cout + gi * cout_g) * P + p0, <int> P,
                             accbase + tid * Cout * K + gi * cout_g * K, <int> cout_g)
    finally:
        return_scratch(col_all, keep)
