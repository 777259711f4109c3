"""Winograd F(m x m, 3 x 3) convolution kernel (leaf code).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
2016.  The output is cut into m x m tiles; each tile needs an (m+2) x (m+2)
input patch d, and with a = m + 2

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A

where * is elementwise over the a x a transform domain.  Summing over the
input channels c at each of the a*a transform positions is a matrix product,
so a task (one image, one group, a run of tile rows) does

1. input transform of its tiles (fc_wino_input, one tile row and channel at
   a time) into V: (a*a, C_in/groups, P) with P = tiles of the task;
2. a*a GEMMs M[e] = U[e] @ V[e] through BLAS, U being the transformed
   filters (a*a, groups, C_out/groups, C_in/groups) that the caller keeps;
3. output transform (fc_wino_output) of M into the output rows, bias added,
   ragged edge tiles cropped.

Working memory is ``a*a * (C_in/groups + C_out/groups) * P`` elements per
buffer, P bounded by the caller's tile-row budget.  Two schedules: tasks in
an OpenMP ``prange`` with single-threaded BLAS (``parallel_tasks``), or
tasks in sequence on the calling thread with BLAS using the thread budget
(few tasks, large GEMMs).  The caller (fastconv._winograd) validated every
size; bounds checks are off.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, free

from ._fc cimport (real, fc_wino_input_f32_m2, fc_wino_input_f64_m2, fc_wino_input_f32_m4,
                   fc_wino_input_f64_m4, fc_wino_output_f32_m2, fc_wino_output_f64_m2,
                   fc_wino_output_f32_m4, fc_wino_output_f64_m4)
from ._gemm cimport _gemm_rowmajor


cdef inline void _input(Py_ssize_t m, const real *x, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t tW, real *V,
                        Py_ssize_t plane, real *scratch) noexcept nogil:
    if real is float:
        if m == 2:
            fc_wino_input_f32_m2(x, H, W, y0, x0, tW, V, plane, scratch)
        else:
            fc_wino_input_f32_m4(x, H, W, y0, x0, tW, V, plane, scratch)
    else:
        if m == 2:
            fc_wino_input_f64_m2(x, H, W, y0, x0, tW, V, plane, scratch)
        else:
            fc_wino_input_f64_m4(x, H, W, y0, x0, tW, V, plane, scratch)


cdef inline void _output(Py_ssize_t m, const real *Mt, Py_ssize_t plane, Py_ssize_t tW,
                         real *y, Py_ssize_t ldy, Py_ssize_t rows, Py_ssize_t cols,
                         real bias, real *scratch) noexcept nogil:
    if real is float:
        if m == 2:
            fc_wino_output_f32_m2(Mt, plane, tW, y, ldy, rows, cols, bias, scratch)
        else:
            fc_wino_output_f32_m4(Mt, plane, tW, y, ldy, rows, cols, bias, scratch)
    else:
        if m == 2:
            fc_wino_output_f64_m2(Mt, plane, tW, y, ldy, rows, cols, bias, scratch)
        else:
            fc_wino_output_f64_m4(Mt, plane, tW, y, ldy, rows, cols, bias, scratch)


def conv_winograd(const real[:, :, :, ::1] x, const real[:, :, :, ::1] U,
                  const real[::1] bias, real[:, :, :, ::1] out, Py_ssize_t m,
                  Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t groups,
                  Py_ssize_t rows_per_task, int nthreads, bint parallel_tasks):
    """out = conv(x, filters) + bias by Winograd F(m x m, 3 x 3).

    ``x`` is (N, C_in, H, W), ``out`` (N, C_out, OH, OW), ``U`` the
    transformed filters (a*a, groups, C_out/groups, C_in/groups), ``bias``
    length C_out or 0.  Stride 1, dilation 1, 3 x 3 filters; ``pad_top`` and
    ``pad_left`` are the leading zero padding (trailing padding follows from
    the output size).  A task covers ``rows_per_task`` rows of tiles.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t a = m + 2, a2 = (m + 2) * (m + 2)
    cdef Py_ssize_t Cg = C // groups, Kg = K // groups
    cdef Py_ssize_t tH = (OH + m - 1) // m, tW = (OW + m - 1) // m
    cdef Py_ssize_t chunks = (tH + rows_per_task - 1) // rows_per_task
    cdef Py_ssize_t ntasks = N * groups * chunks
    cdef Py_ssize_t pmax = rows_per_task * tW
    cdef Py_ssize_t scratch_len = 2 * a * (tW + 1) * m + a * m * tW + m * m * tW
    cdef Py_ssize_t per = a2 * (Cg + Kg) * pmax + scratch_len
    cdef Py_ssize_t nbuf = nthreads if parallel_tasks else 1
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *all_buf
    cdef real *V
    cdef real *Mb
    cdef real *scratch
    cdef const real *xc
    cdef Py_ssize_t t, r, chunk, gi, n, th0, th1, th, P, c, e, k, nrows
    cdef real b
    if ntasks == 0 or OH == 0 or OW == 0:
        return
    all_buf = <real *> malloc(nbuf * per * sizeof(real))
    if all_buf == NULL:
        raise MemoryError("fastconv: cannot allocate the Winograd workspace")
    try:
        with nogil, parallel(num_threads=nbuf):
            V = all_buf + threadid() * per
            Mb = V + a2 * Cg * pmax
            scratch = Mb + a2 * Kg * pmax
            for t in prange(ntasks, schedule='guided'):
                chunk = t % chunks
                r = t // chunks
                gi = r % groups
                n = r // groups
                th0 = chunk * rows_per_task
                th1 = th0 + rows_per_task if th0 + rows_per_task < tH else tH
                P = (th1 - th0) * tW
                for c in range(Cg):
                    xc = &x[n, gi * Cg + c, 0, 0]
                    for th in range(th0, th1):
                        _input(m, xc, H, W, th * m - pad_top, -pad_left, tW,
                               V + c * P + (th - th0) * tW, Cg * P, scratch)
                for e in range(a2):
                    _gemm_rowmajor(<int> Kg, <int> P, <int> Cg, &U[e, gi, 0, 0], <int> Cg,
                                   V + e * Cg * P, <int> P, Mb + e * Kg * P, <int> P)
                for k in range(Kg):
                    b = bias[gi * Kg + k] if has_bias else 0
                    for th in range(th0, th1):
                        nrows = OH - th * m if OH - th * m < m else m
                        _output(m, Mb + k * P + (th - th0) * tW, Kg * P, tW,
                                &out[n, gi * Kg + k, th * m, 0], OW, nrows, OW, b, scratch)
    finally:
        free(all_buf)
