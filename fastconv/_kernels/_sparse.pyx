"""Sparse convolution kernels (leaf code; see fc_sparse_impl.h).

``conv_sparse``: direct sparse convolution of CSR weights over a polyphase
input grid, OpenMP tasks (image, output chunk, output channel), channels
fastest so that consecutive tasks of a thread read the same input region.
``scatter_image``: a sparse CSR image scattered through a small dense
kernel, OpenMP tasks of output row bands.  ``pack_csr`` and
``count_nonzero`` lay weights out.

The caller (fastconv._sparse) has validated every size and offset, so
bounds checks are disabled.
"""
# cython: boundscheck=False, wraparound=False
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int64_t

from ._fc cimport real


cdef extern from "fc_sparse_impl.h" nogil:
    int fc_sparse_isa()
    enum: FCS_GUARD
    void fc_sparse_conv_f32(float *out, const float *x, const int64_t *off, const float *val,
                            Py_ssize_t nnz, float init, Py_ssize_t q0, Py_ssize_t q1,
                            Py_ssize_t L, Py_ssize_t OW, Py_ssize_t HqL, Py_ssize_t OH, int isa)
    void fc_sparse_conv_f64(double *out, const double *x, const int64_t *off,
                            const double *val, Py_ssize_t nnz, double init, Py_ssize_t q0,
                            Py_ssize_t q1, Py_ssize_t L, Py_ssize_t OW, Py_ssize_t HqL,
                            Py_ssize_t OH, int isa)
    int64_t fc_count_nonzero_f32(const float *a, Py_ssize_t n, int isa)
    int64_t fc_count_nonzero_f64(const double *a, Py_ssize_t n, int isa)
    void fc_sparse_pack_row_f32(const float *w, Py_ssize_t T, const int64_t *tap_off,
                                int64_t k, int64_t end, int64_t *off, float *val, int isa)
    void fc_sparse_pack_row_f64(const double *w, Py_ssize_t T, const int64_t *tap_off,
                                int64_t k, int64_t end, int64_t *off, double *val, int isa)
    void fc_sparse_scatter_f32(float *out, Py_ssize_t OW, Py_ssize_t oy0, Py_ssize_t oy1,
                               const int64_t *indptr, const int64_t *indices,
                               const float *data, Py_ssize_t R, Py_ssize_t pt, Py_ssize_t pl,
                               const float *w, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sy,
                               Py_ssize_t sx, Py_ssize_t dy, Py_ssize_t dx, float init,
                               float *buf, int isa)
    void fc_sparse_scatter_f64(double *out, Py_ssize_t OW, Py_ssize_t oy0, Py_ssize_t oy1,
                               const int64_t *indptr, const int64_t *indices,
                               const double *data, Py_ssize_t R, Py_ssize_t pt, Py_ssize_t pl,
                               const double *w, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sy,
                               Py_ssize_t sx, Py_ssize_t dy, Py_ssize_t dx, double init,
                               double *buf, int isa)


#: Guard values after each band row of the sparse-image scatter.
GUARD = FCS_GUARD


def count_nonzero(const real[::1] a):
    """Nonzero entries of a contiguous 1-D float array (NaN counts)."""
    if real is float:
        return fc_count_nonzero_f32(&a[0], a.shape[0], fc_sparse_isa()) if a.shape[0] else 0
    else:
        return fc_count_nonzero_f64(&a[0], a.shape[0], fc_sparse_isa()) if a.shape[0] else 0


def csr_rowptr(const real[:, ::1] w, int64_t[::1] rowptr, int nthreads):
    """rowptr (C_out + 1) of the CSR form of the (C_out, taps) weights;
    returns the number of nonzeros."""
    cdef Py_ssize_t co
    cdef Py_ssize_t C = w.shape[0], T = w.shape[1]
    cdef int isa = fc_sparse_isa()
    rowptr[0] = 0
    if C == 0:
        return 0
    with nogil:
        for co in prange(C, schedule='static', num_threads=nthreads):
            if real is float:
                rowptr[co + 1] = fc_count_nonzero_f32(&w[co, 0], T, isa)
            else:
                rowptr[co + 1] = fc_count_nonzero_f64(&w[co, 0], T, isa)
        for co in range(C):
            rowptr[co + 1] = rowptr[co + 1] + rowptr[co]
    return rowptr[C]


def pack_csr(const real[:, ::1] w, const int64_t[::1] tap_off, const int64_t[::1] rowptr,
             int64_t[::1] off, real[::1] val, int nthreads):
    """Fill the CSR entries of the (C_out, taps) weights with rows `rowptr`
    (from csr_rowptr): per nonzero its input offset ``tap_off[tap]`` and
    value, in tap order."""
    cdef Py_ssize_t co
    cdef Py_ssize_t C = w.shape[0], T = w.shape[1]
    cdef int isa = fc_sparse_isa()
    if C == 0 or rowptr[C] == 0:
        return
    with nogil:
        for co in prange(C, schedule='static', num_threads=nthreads):
            if real is float:
                fc_sparse_pack_row_f32(&w[co, 0], T, &tap_off[0], rowptr[co], rowptr[co + 1],
                                       &off[0], &val[0], isa)
            else:
                fc_sparse_pack_row_f64(&w[co, 0], T, &tap_off[0], rowptr[co], rowptr[co + 1],
                                       &off[0], &val[0], isa)


def conv_sparse(const real[::1] x, const int64_t[::1] rowptr, const int64_t[::1] off,
                const real[::1] val, const real[::1] bias, real[:, :, ::1] out,
                Py_ssize_t image_stride, Py_ssize_t group_stride, Py_ssize_t groups,
                Py_ssize_t P, Py_ssize_t L, Py_ssize_t OW, Py_ssize_t HqL, Py_ssize_t OH,
                Py_ssize_t chunk, int nthreads):
    """out[n, co, :] = the sparse correlation of image n with CSR row co (+ bias).

    ``x`` is the flattened polyphase input, ``image_stride`` elements per
    image and ``group_stride`` per group of input channels; grid positions
    0 .. P-1 (row length L, HqL per depth plane) are computed in chunks of
    ``chunk`` (the last chunk takes the remainder) and the valid ones
    (column < OW, row < OH) stored into ``out`` (N, C_out, OD*OH*OW).
    ``bias`` has length C_out, or 0 for none.
    """
    cdef Py_ssize_t N = out.shape[0], Cout = out.shape[1]
    cdef Py_ssize_t cout_g = Cout // groups
    cdef Py_ssize_t nchunks = P // chunk if P >= chunk else 1
    cdef Py_ssize_t total = N * nchunks * Cout
    cdef Py_ssize_t t, r, co, k, n, q0, q1, j0
    cdef bint has_bias = bias.shape[0] > 0
    cdef int isa = fc_sparse_isa()
    cdef real init
    cdef const real *xg
    if total == 0 or P == 0:
        return
    with nogil:
        # image-major tasks, statically scheduled: a thread's images are
        # (mostly) the planes it padded (pad_volumes' static schedule), so
        # few reads cross between threads (see fastconv._winograd.schedule)
        for t in prange(total, schedule='static', num_threads=nthreads):
            co = t % Cout
            r = t // Cout
            k = r % nchunks
            n = r // nchunks
            q0 = k * chunk
            q1 = P if k == nchunks - 1 else q0 + chunk
            init = bias[co] if has_bias else 0
            j0 = rowptr[co]
            xg = &x[n * image_stride + (co // cout_g) * group_stride]
            if real is float:
                fc_sparse_conv_f32(&out[n, co, 0], xg, &off[0] + j0, &val[0] + j0,
                                   rowptr[co + 1] - j0, init, q0, q1, L, OW, HqL, OH, isa)
            else:
                fc_sparse_conv_f64(&out[n, co, 0], xg, &off[0] + j0, &val[0] + j0,
                                   rowptr[co + 1] - j0, init, q0, q1, L, OW, HqL, OH, isa)


def scatter_image(const int64_t[::1] indptr, const int64_t[::1] indices, const real[::1] data,
                  Py_ssize_t pt, Py_ssize_t pl, const real[:, ::1] w, real[:, ::1] out,
                  Py_ssize_t sy, Py_ssize_t sx, Py_ssize_t dy, Py_ssize_t dx, real init,
                  Py_ssize_t band, real[::1] scratch, int nthreads):
    """out = init + the correlation of the CSR image (shifted by pt rows and
    pl columns into a zero background) with w, at strides sy, sx and
    dilations dy, dx; tasks are bands of ``band`` output rows, each
    accumulated in its thread's part of ``scratch`` (nthreads * band *
    (OW + KW-1 + FCS_GUARD) values) and then streamed to ``out``."""
    cdef Py_ssize_t OH = out.shape[0], OW = out.shape[1]
    cdef Py_ssize_t R = indptr.shape[0] - 1
    cdef Py_ssize_t nb = (OH + band - 1) // band
    cdef Py_ssize_t b, oy0, oy1
    cdef const int64_t *ip = &indptr[0]
    cdef const int64_t *ix = &indices[0] if indices.shape[0] else NULL
    cdef const real *dp = &data[0] if data.shape[0] else NULL
    cdef real *buf
    cdef Py_ssize_t RL = OW + w.shape[1] - 1 + FCS_GUARD
    cdef int isa = fc_sparse_isa()
    if OH == 0 or OW == 0:
        return
    with nogil, parallel(num_threads=nthreads):
        buf = &scratch[threadid() * band * RL]
        for b in prange(nb, schedule='dynamic'):
            oy0 = b * band
            oy1 = oy0 + band if oy0 + band < OH else OH
            if real is float:
                fc_sparse_scatter_f32(&out[0, 0], OW, oy0, oy1, ip, ix, dp, R, pt, pl,
                                      &w[0, 0], w.shape[0], w.shape[1], sy, sx, dy, dx, init,
                                      buf, isa)
            else:
                fc_sparse_scatter_f64(&out[0, 0], OW, oy0, oy1, ip, ix, dp, R, pt, pl,
                                      &w[0, 0], w.shape[0], w.shape[1], sy, sx, dy, dx, init,
                                      buf, isa)
