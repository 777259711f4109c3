# Declarations shared by fastconv's Cython kernels: the fused dtype and the
# C leaf kernels of fc_kernels.h, and the scratch memory of one kernel call.

from libc.stdlib cimport malloc, free

ctypedef fused real:
    float
    double

cdef extern from "fc_kernels.h" nogil:
    ctypedef struct fc_geometry:
        Py_ssize_t C, D, H, W
        Py_ssize_t KD, KH, KW
        Py_ssize_t OD, OH, OW
        Py_ssize_t sd, sh, sw
        Py_ssize_t pd, ph, pw
        Py_ssize_t dd, dh, dw

    void fc_conv_rows_f32(float *out0, float *out1, Py_ssize_t OW,
                          const float **rows, const float **w0, const float **w1,
                          Py_ssize_t nrows, Py_ssize_t KW, Py_ssize_t W,
                          Py_ssize_t pad, Py_ssize_t sx, Py_ssize_t dx, float init)
    void fc_conv_rows_f64(double *out0, double *out1, Py_ssize_t OW,
                          const double **rows, const double **w0, const double **w1,
                          Py_ssize_t nrows, Py_ssize_t KW, Py_ssize_t W,
                          Py_ssize_t pad, Py_ssize_t sx, Py_ssize_t dx, double init)
    enum: FC_PLANE_MAX_KH
    void fc_conv_plane_f32(float *out, Py_ssize_t ldo, Py_ssize_t oy0, Py_ssize_t nout,
                           Py_ssize_t OW, const float *inp, Py_ssize_t ldi, Py_ssize_t H,
                           Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw, const float *w,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t dh, Py_ssize_t dw, float init, float *scratch,
                           Py_ssize_t scratch_len)
    void fc_conv_plane_f64(double *out, Py_ssize_t ldo, Py_ssize_t oy0, Py_ssize_t nout,
                           Py_ssize_t OW, const double *inp, Py_ssize_t ldi, Py_ssize_t H,
                           Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw, const double *w,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t dh, Py_ssize_t dw, double init, double *scratch,
                           Py_ssize_t scratch_len)
    void fc_im2col_tile_f32(float *col, Py_ssize_t ld, const float *x, const fc_geometry *g,
                            Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0, Py_ssize_t k1)
    void fc_im2col_tile_f64(double *col, Py_ssize_t ld, const double *x,
                            const fc_geometry *g, Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0,
                            Py_ssize_t k1)
    void fc_col2im_tile_f32(float *x, const float *col, const fc_geometry *g,
                            Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0, Py_ssize_t k1)
    void fc_col2im_tile_f64(double *x, const double *col, const fc_geometry *g,
                            Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0, Py_ssize_t k1)
    void fc_col2im_tile_split_f32(float *x, const float *col, const fc_geometry *g,
                                  Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0, Py_ssize_t k1)
    void fc_col2im_tile_split_f64(double *x, const double *col, const fc_geometry *g,
                                  Py_ssize_t p0, Py_ssize_t P, Py_ssize_t k0, Py_ssize_t k1)
    void fc_unsplit_rows_f32(float *out, const float *xs, Py_ssize_t rows,
                             const fc_geometry *g)
    void fc_unsplit_rows_f64(double *out, const double *xs, Py_ssize_t rows,
                             const fc_geometry *g)
    Py_ssize_t fc_split_run_f32(const fc_geometry *g)
    const char *fc_simd_level()
    int fc_all_finite_f32(const float *a, Py_ssize_t n)
    int fc_all_finite_f64(const double *a, Py_ssize_t n)
    void fc_conv_blocked_f32(float *out, Py_ssize_t ldo, Py_ssize_t nvalid, const float *x,
                             Py_ssize_t C, Py_ssize_t ldc, Py_ssize_t ldr, const float *wp,
                             Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sx, Py_ssize_t dy,
                             Py_ssize_t dx, Py_ssize_t OW, const float *bias)
    void fc_conv_blocked_f64(double *out, Py_ssize_t ldo, Py_ssize_t nvalid, const double *x,
                             Py_ssize_t C, Py_ssize_t ldc, Py_ssize_t ldr, const double *wp,
                             Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sx, Py_ssize_t dy,
                             Py_ssize_t dx, Py_ssize_t OW, const double *bias)
    void fc_pack_lanes_f32(float *dst, Py_ssize_t ldd, const float *src, Py_ssize_t lds,
                           Py_ssize_t nvalid, Py_ssize_t n, Py_ssize_t lanes)
    void fc_pack_lanes_f64(double *dst, Py_ssize_t ldd, const double *src, Py_ssize_t lds,
                           Py_ssize_t nvalid, Py_ssize_t n, Py_ssize_t lanes)
    void fc_transpose_f32(float *dst, Py_ssize_t ldd, const float *src, Py_ssize_t lds,
                          Py_ssize_t rows, Py_ssize_t cols)
    void fc_transpose_f64(double *dst, Py_ssize_t ldd, const double *src, Py_ssize_t lds,
                          Py_ssize_t rows, Py_ssize_t cols)
    int fc_blocked_lanes(int itemsize)
    int fc_blocked_pixels()
    void fc_conv_blocked_flat_f32(float *out, Py_ssize_t ldo, Py_ssize_t nvalid, const float *x,
                                  Py_ssize_t C, Py_ssize_t ldc, Py_ssize_t ldr, const float *wp,
                                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sy, Py_ssize_t sx,
                                  Py_ssize_t dy, Py_ssize_t dx, Py_ssize_t OW, Py_ssize_t q0,
                                  Py_ssize_t nq, const float *bias)
    void fc_conv_blocked_flat_f64(double *out, Py_ssize_t ldo, Py_ssize_t nvalid,
                                  const double *x, Py_ssize_t C, Py_ssize_t ldc, Py_ssize_t ldr,
                                  const double *wp, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sy,
                                  Py_ssize_t sx, Py_ssize_t dy, Py_ssize_t dx, Py_ssize_t OW,
                                  Py_ssize_t q0, Py_ssize_t nq, const double *bias)
    void fc_wino_input_f32_m2(const float *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                              Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, float *V,
                              Py_ssize_t plane, float *scratch)
    void fc_wino_input_f64_m2(const double *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                              Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, double *V,
                              Py_ssize_t plane, double *scratch)
    void fc_wino_input_f32_m4(const float *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                              Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, float *V,
                              Py_ssize_t plane, float *scratch)
    void fc_wino_input_f64_m4(const double *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                              Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, double *V,
                              Py_ssize_t plane, double *scratch)
    int fc_wino_filter_f32_m2(const float *g, Py_ssize_t n, float *U, int nthreads, int stream)
    int fc_wino_filter_f64_m2(const double *g, Py_ssize_t n, double *U, int nthreads, int stream)
    int fc_wino_filter_f32_m4(const float *g, Py_ssize_t n, float *U, int nthreads, int stream)
    int fc_wino_filter_f64_m4(const double *g, Py_ssize_t n, double *U, int nthreads, int stream)
    void fc_wino_output_f32_m2(const float *Mt, Py_ssize_t plane, Py_ssize_t tW,
                               Py_ssize_t nty, float *y, Py_ssize_t ldy, Py_ssize_t rows,
                               Py_ssize_t cols, float bias, float *scratch)
    void fc_wino_output_f64_m2(const double *Mt, Py_ssize_t plane, Py_ssize_t tW,
                               Py_ssize_t nty, double *y, Py_ssize_t ldy, Py_ssize_t rows,
                               Py_ssize_t cols, double bias, double *scratch)
    void fc_wino_output_f32_m4(const float *Mt, Py_ssize_t plane, Py_ssize_t tW,
                               Py_ssize_t nty, float *y, Py_ssize_t ldy, Py_ssize_t rows,
                               Py_ssize_t cols, float bias, float *scratch)
    void fc_wino_output_f64_m4(const double *Mt, Py_ssize_t plane, Py_ssize_t tW,
                               Py_ssize_t nty, double *y, Py_ssize_t ldy, Py_ssize_t rows,
                               Py_ssize_t cols, double bias, double *scratch)
    void fc_wino_input_f32_m2r5(const float *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                                Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, float *V,
                                Py_ssize_t plane, float *scratch)
    int fc_wino_filter_f32_m2r5(const float *g, Py_ssize_t n, float *U, int nthreads, int stream)
    void fc_wino_output_f32_m2r5(const float *Mt, Py_ssize_t plane, Py_ssize_t tW,
                                 Py_ssize_t nty, float *y, Py_ssize_t ldy, Py_ssize_t rows,
                                 Py_ssize_t cols, float bias, float *scratch)
    void fc_wino_input_f64_m2r5(const double *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                                Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, double *V,
                                Py_ssize_t plane, double *scratch)
    int fc_wino_filter_f64_m2r5(const double *g, Py_ssize_t n, double *U, int nthreads, int stream)
    void fc_wino_output_f64_m2r5(const double *Mt, Py_ssize_t plane, Py_ssize_t tW,
                                 Py_ssize_t nty, double *y, Py_ssize_t ldy, Py_ssize_t rows,
                                 Py_ssize_t cols, double bias, double *scratch)
    void fc_wino_input_f32_m3r2(const float *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                                Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, float *V,
                                Py_ssize_t plane, float *scratch)
    int fc_wino_filter_f32_m3r2(const float *g, Py_ssize_t n, float *U, int nthreads, int stream)
    void fc_wino_output_f32_m3r2(const float *Mt, Py_ssize_t plane, Py_ssize_t tW,
                                 Py_ssize_t nty, float *y, Py_ssize_t ldy, Py_ssize_t rows,
                                 Py_ssize_t cols, float bias, float *scratch)
    void fc_wino_input_f64_m3r2(const double *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t y0,
                                Py_ssize_t x0, Py_ssize_t tW, Py_ssize_t nty, double *V,
                                Py_ssize_t plane, double *scratch)
    int fc_wino_filter_f64_m3r2(const double *g, Py_ssize_t n, double *U, int nthreads, int stream)
    void fc_wino_output_f64_m3r2(const double *Mt, Py_ssize_t plane, Py_ssize_t tW,
                                 Py_ssize_t nty, double *y, Py_ssize_t ldy, Py_ssize_t rows,
                                 Py_ssize_t cols, double bias, double *scratch)
    void fc_wino_grad_output_f32_m2(const float *gy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t y0,
                                    Py_ssize_t tW, float *U, Py_ssize_t plane, float *scratch)
    void fc_wino_grad_output_f64_m2(const double *gy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t y0,
                                    Py_ssize_t tW, double *U, Py_ssize_t plane, double *scratch)
    void fc_wino_grad_output_f32_m4(const float *gy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t y0,
                                    Py_ssize_t tW, float *U, Py_ssize_t plane, float *scratch)
    void fc_wino_grad_output_f64_m4(const double *gy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t y0,
                                    Py_ssize_t tW, double *U, Py_ssize_t plane, double *scratch)
    void fc_wino_grad_filter_f32_m2(const float *M, Py_ssize_t n, Py_ssize_t nacc,
                                    Py_ssize_t acc_stride, float *g, int nthreads)
    void fc_wino_grad_filter_f64_m2(const double *M, Py_ssize_t n, Py_ssize_t nacc,
                                    Py_ssize_t acc_stride, double *g, int nthreads)
    void fc_wino_grad_filter_f32_m4(const float *M, Py_ssize_t n, Py_ssize_t nacc,
                                    Py_ssize_t acc_stride, float *g, int nthreads)
    void fc_wino_grad_filter_f64_m4(const double *M, Py_ssize_t n, Py_ssize_t nacc,
                                    Py_ssize_t acc_stride, double *g, int nthreads)


cdef inline fc_geometry make_geometry(tuple in_shape, tuple kernel, tuple out_shape,
                                      tuple stride, tuple pad, tuple dilation):
    """Pack (C, D, H, W), (KD, KH, KW), (OD, OH, OW) and the per-dimension
    stride / leading padding / dilation triples into an fc_geometry."""
    cdef fc_geometry g
    g.C, g.D, g.H, g.W = in_shape
    g.KD, g.KH, g.KW = kernel
    g.OD, g.OH, g.OW = out_shape
    g.sd, g.sh, g.sw = stride
    g.pd, g.ph, g.pw = pad
    g.dd, g.dh, g.dw = dilation
    return g


cdef inline void *borrow_scratch(object workspace, Py_ssize_t nbytes, str slot,
                                 list keep) except NULL:
    """`nbytes` of scratch memory for one kernel call.

    With an allocator (fastconv._schedule.workspace, passed by the backend:
    buffers kept per Python thread and slot, so repeated calls reuse warm
    pages instead of faulting in a fresh multi-megabyte block each time) the
    buffer is appended to `keep`, which holds it alive for the call; without
    one, malloc'ed memory that the caller frees (`keep` stays empty).
    """
    cdef unsigned char[::1] buf
    cdef void *p
    if workspace is None:
        p = malloc(nbytes if nbytes > 0 else 1)
        if p == NULL:
            raise MemoryError(f"fastconv: cannot allocate {nbytes} bytes of {slot} scratch")
        return p
    buf = workspace(nbytes if nbytes > 0 else 1, "u1", slot)
    keep.append(buf)
    return <void *> &buf[0]


cdef inline void return_scratch(void *p, list keep) noexcept:
    """Free what `borrow_scratch` malloc'ed (nothing when an allocator lent it)."""
    if not keep:
        free(p)
