"""Direct cross-correlation kernel (leaf code).

Every output row (n, c_out, od, oy) is one independent task of an OpenMP
``prange``.  Its task gathers the input rows its window touches, skipping
rows that fall into the zero padding, and hands them to the SIMD row kernel
``fc_conv_row`` (fc_kernels.c), which keeps a block of outputs in vector
registers while it streams over the taps.  One-channel images and depthwise
layers (one input channel per group) are the case this path is built for:
their rows need no channel loop at all.

The caller (fastconv._cpu) has validated all sizes and passes C-contiguous
(N, C, D, H, W) arrays, so bounds checks are disabled.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, free

from ._fc cimport real, fc_geometry, make_geometry, fc_conv_row_f32, fc_conv_row_f64


cdef inline void _row(real *out, Py_ssize_t OW, const real **rows,
                      const real **wrows, Py_ssize_t nrows, const fc_geometry *g,
                      real init) noexcept nogil:
    if real is float:
        fc_conv_row_f32(out, OW, rows, wrows, nrows, g.KW, g.W, g.pw, g.sw, g.dw, init)
    else:
        fc_conv_row_f64(out, OW, rows, wrows, nrows, g.KW, g.W, g.pw, g.sw, g.dw, init)


def conv_direct(const real[:, :, :, :, ::1] x, const real[:, :, :, :, ::1] weight,
                const real[::1] bias, real[:, :, :, :, ::1] out,
                tuple stride, tuple pad, tuple dilation, Py_ssize_t groups,
                int nthreads):
    """out = correlate(x, weight) + bias, all arrays 5-D (N, C, D, H, W).

    ``bias`` has length C_out, or 0 for no bias.  ``pad`` holds the leading
    padding of each spatial dimension; trailing padding is implied by the
    output shape.
    """
    cdef Py_ssize_t N = x.shape[0], Cout = out.shape[1]
    cdef Py_ssize_t cin_g = weight.shape[1], cout_g = Cout // groups
    cdef fc_geometry g = make_geometry(
        (cin_g, x.shape[2], x.shape[3], x.shape[4]),
        (weight.shape[2], weight.shape[3], weight.shape[4]),
        (out.shape[2], out.shape[3], out.shape[4]), stride, pad, dilation)
    cdef Py_ssize_t per_thread = cin_g * g.KD * g.KH
    cdef Py_ssize_t total = N * Cout * g.OD * g.OH
    cdef bint has_bias = bias.shape[0] > 0
    cdef const real **rows_all
    cdef const real **wrows_all
    cdef const real **rows
    cdef const real **wrows
    cdef Py_ssize_t t, r, n, co, od, oy, gi, ci, kd, ky, idd, iy, k
    cdef real init

    if total == 0:
        return
    if nthreads < 1:
        nthreads = 1
    if per_thread < 1:
        per_thread = 1
    rows_all = <const real **> malloc(nthreads * per_thread * sizeof(real *))
    wrows_all = <const real **> malloc(nthreads * per_thread * sizeof(real *))
    if rows_all == NULL or wrows_all == NULL:
        free(rows_all)
        free(wrows_all)
        raise MemoryError("fastconv: cannot allocate the direct kernel's row tables")
    try:
        with nogil, parallel(num_threads=nthreads):
            rows = rows_all + threadid() * per_thread
            wrows = wrows_all + threadid() * per_thread
            for t in prange(total, schedule='static'):
                oy = t % g.OH
                r = t // g.OH
                od = r % g.OD
                r = r // g.OD
                co = r % Cout
                n = r // Cout
                gi = co // cout_g
                k = 0
                for ci in range(cin_g):
                    for kd in range(g.KD):
                        idd = od * g.sd - g.pd + kd * g.dd
                        if idd < 0 or idd >= g.D:
                            continue
                        for ky in range(g.KH):
                            iy = oy * g.sh - g.ph + ky * g.dh
                            if iy < 0 or iy >= g.H:
                                continue
                            rows[k] = &x[n, gi * cin_g + ci, idd, iy, 0]
                            wrows[k] = &weight[co, ci, kd, ky, 0]
                            k = k + 1
                init = bias[co] if has_bias else 0
                _row(&out[n, co, od, oy, 0], g.OW, rows, wrows, k, &g, init)
    finally:
        free(rows_all)
        free(wrows_all)
