/*
 * fc_kernels.h -- leaf C kernels of fastconv's CPU backend.
 *
 * These functions do arithmetic only: every size, stride and pointer they
 * receive has been validated by the Python front end (fastconv/_validation.py)
 * and laid out by the CPU backend (fastconv/_cpu.py).  They never allocate,
 * never touch Python objects and may be called without the GIL.
 *
 * Naming: fc_<op>_<dtype>, with dtype f32 (float) or f64 (double).
 */
#ifndef FC_KERNELS_H
#define FC_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One or two output rows of a direct cross-correlation, accumulated over a
 * list of input rows (each (channel, kd, input row) that some kernel row
 * maps onto and that falls inside the input):
 *
 *   out0[ox] = init + sum_r sum_kx w0[r][kx] * rows[r][ox*sx - pad + kx*dx]
 *   out1[ox] = init + sum_r sum_kx w1[r][kx] * rows[r][ox*sx - pad + kx*dx]
 *
 * w0[r] (or w1[r]) is NULL when input row r does not feed out0 (out1);
 * out1 may be NULL, and then every w1[r] is NULL.  Terms whose column falls
 * outside [0, W) are zero (zero padding).  Two output rows share the loads
 * of the input rows they both read (register blocking across rows).
 * Columns whose whole window lies inside the row use SIMD code (AVX-512,
 * AVX2 or SSE2, chosen once at run time); the few border columns use a
 * checked scalar loop.
 */
void fc_conv_rows_f32(float *out0, float *out1, ptrdiff_t OW, const float **rows,
                      const float **w0, const float **w1, ptrdiff_t nrows,
                      ptrdiff_t KW, ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx,
                      ptrdiff_t dx, float init);
void fc_conv_rows_f64(double *out0, double *out1, ptrdiff_t OW, const double **rows,
                      const double **w0, const double **w1, ptrdiff_t nrows,
                      ptrdiff_t KW, ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx,
                      ptrdiff_t dx, double init);

/*
 * Output rows oy0 .. oy0+nout-1 of one plane of a one-input-channel
 * correlation (one-channel images, depthwise layers):
 *
 *   out[oy*ldo + ox] = init + sum_ky sum_kx w[ky*KW + kx]
 *                             * in[(oy*sh - ph + ky*dh)*ldi + ox*sw - pw + kx*dw]
 *
 * with taps outside the H x W input counting as zero.  Rows are processed
 * in pairs by the SIMD code of fc_conv_rows; the whole loop runs in C, so a
 * task costs no per-row call overhead.  KH must not exceed FC_PLANE_MAX_KH
 * (64).  `scratch` (scratch_len elements, may be NULL) is per-thread
 * workspace: when padding is needed and enough input rows fit there, they
 * are copied chunk by chunk with their zero padding in place, so that a lean
 * loop with no border code computes every column.
 */
#define FC_PLANE_MAX_KH 64
void fc_conv_plane_f32(float *out, ptrdiff_t ldo, ptrdiff_t oy0, ptrdiff_t nout,
                       ptrdiff_t OW, const float *in, ptrdiff_t ldi, ptrdiff_t H,
                       ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw, const float *w,
                       ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t sw,
                       ptrdiff_t dh, ptrdiff_t dw, float init, float *scratch,
                       ptrdiff_t scratch_len);
void fc_conv_plane_f64(double *out, ptrdiff_t ldo, ptrdiff_t oy0, ptrdiff_t nout,
                       ptrdiff_t OW, const double *in, ptrdiff_t ldi, ptrdiff_t H,
                       ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw, const double *w,
                       ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh, ptrdiff_t sw,
                       ptrdiff_t dh, ptrdiff_t dw, double init, double *scratch,
                       ptrdiff_t scratch_len);

/*
 * Channel-blocked direct convolution of one output row for one block of
 * output channels (see fc_rows_impl.h): out[l*ldo + ox] for l < nvalid and
 * ox < OW, from the zero-padded input x (channel stride ldc, row stride
 * ldr, horizontal stride sx, dilations dy/dx) and weights packed as
 * (C, KH, KW, lanes), lanes = fc_blocked_lanes(sizeof(T)).
 */
void fc_conv_blocked_f32(float *out, ptrdiff_t ldo, ptrdiff_t nvalid, const float *x,
                         ptrdiff_t C, ptrdiff_t ldc, ptrdiff_t ldr, const float *wp,
                         ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sx, ptrdiff_t dy,
                         ptrdiff_t dx, ptrdiff_t OW, const float *bias);
void fc_conv_blocked_f64(double *out, ptrdiff_t ldo, ptrdiff_t nvalid, const double *x,
                         ptrdiff_t C, ptrdiff_t ldc, ptrdiff_t ldr, const double *wp,
                         ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sx, ptrdiff_t dy,
                         ptrdiff_t dx, ptrdiff_t OW, const double *bias);
/* The same on pixels q0 .. q0+nq-1 (nq <= fc_blocked_pixels()) of the
 * flattened output plane (out[l*ldo + q]; x is row 0 of the padded image),
 * for short rows. */
void fc_conv_blocked_flat_f32(float *out, ptrdiff_t ldo, ptrdiff_t nvalid, const float *x,
                              ptrdiff_t C, ptrdiff_t ldc, ptrdiff_t ldr, const float *wp,
                              ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sy, ptrdiff_t sx,
                              ptrdiff_t dy, ptrdiff_t dx, ptrdiff_t OW, ptrdiff_t q0,
                              ptrdiff_t nq, const float *bias);
void fc_conv_blocked_flat_f64(double *out, ptrdiff_t ldo, ptrdiff_t nvalid, const double *x,
                              ptrdiff_t C, ptrdiff_t ldc, ptrdiff_t ldr, const double *wp,
                              ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sy, ptrdiff_t sx,
                              ptrdiff_t dy, ptrdiff_t dx, ptrdiff_t OW, ptrdiff_t q0,
                              ptrdiff_t nq, const double *bias);
/* dst[t*ldd + l] = src[l*lds + t] for t < n, l < nvalid (<= lanes), zero
 * for nvalid <= l < lanes (ldd >= lanes): weights packed for the blocked
 * kernel (ldd = lanes). */
void fc_pack_lanes_f32(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds,
                       ptrdiff_t nvalid, ptrdiff_t n, ptrdiff_t lanes);
void fc_pack_lanes_f64(double *dst, ptrdiff_t ldd, const double *src, ptrdiff_t lds,
                       ptrdiff_t nvalid, ptrdiff_t n, ptrdiff_t lanes);
/* dst (cols, rows) = src (rows, cols) transposed, rows ldd and lds
 * elements apart, by the same in-register block transposes. */
void fc_transpose_f32(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds,
                      ptrdiff_t rows, ptrdiff_t cols);
void fc_transpose_f64(double *dst, ptrdiff_t ldd, const double *src, ptrdiff_t lds,
                      ptrdiff_t rows, ptrdiff_t cols);
/* Output channels per block of the blocked kernel on this CPU, and the
 * pixels per block of its flattened form. */
int fc_blocked_lanes(int itemsize);
int fc_blocked_pixels(void);

/*
 * One tile of the im2col matrix of a single image and group.
 *
 * x is the (C, D, H, W) C-contiguous input of the group.  The tile holds the
 * columns p0 .. p0+P-1 of the full (C*KD*KH*KW) x (OD*OH*OW) matrix, stored
 * row-major with leading dimension ld >= P: col[k*ld + j] is input element
 * (c, od*sd - pd + kd*dd, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw) for
 * k = ((c*KD + kd)*KH + ky)*KW + kx and output pixel p0 + j = (od, oy, ox),
 * or 0 where that index falls into the zero padding.  Only rows
 * k0 <= k < k1 are written, so threads can share one tile.
 */
typedef struct {
    ptrdiff_t C, D, H, W;          /* input of one group */
    ptrdiff_t KD, KH, KW;          /* kernel */
    ptrdiff_t OD, OH, OW;          /* output */
    ptrdiff_t sd, sh, sw;          /* stride */
    ptrdiff_t pd, ph, pw;          /* padding before each dimension */
    ptrdiff_t dd, dh, dw;          /* dilation */
} fc_geometry;

void fc_im2col_tile_f32(float *col, ptrdiff_t ld, const float *x, const fc_geometry *g,
                        ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1);
void fc_im2col_tile_f64(double *col, ptrdiff_t ld, const double *x, const fc_geometry *g,
                        ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1);

/*
 * The adjoint of fc_im2col_tile (col2im): adds the tile's rows k0 <= k < k1
 * back into the (C, D, H, W) image x, summing overlapping windows:
 * x[c, od*sd - pd + kd*dd, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw] +=
 * col[k*P + j] for output pixel p0 + j = (od, oy, ox); entries that fall
 * into the padding are dropped.  Rows of different channels c touch
 * disjoint parts of x, so threads given whole channels never write the same
 * element.
 */
void fc_col2im_tile_f32(float *x, const float *col, const fc_geometry *g,
                        ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1);
void fc_col2im_tile_f64(double *x, const double *col, const fc_geometry *g,
                        ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1);
/* The same into a phase-split image (sw > 1): each row (c, d, h) stored
 * as sw runs of fc_split_run(g) elements, run q holding the columns
 * q, q + sw, q + 2 sw, ... from ceil(pw / sw) elements in, with room on
 * both sides for the taps that fall into the padding; fc_unsplit_rows
 * writes `rows` such rows back as plain rows of W. */
ptrdiff_t fc_split_run_f32(const fc_geometry *g);
ptrdiff_t fc_split_run_f64(const fc_geometry *g);
void fc_col2im_tile_split_f32(float *x, const float *col, const fc_geometry *g,
                              ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1);
void fc_col2im_tile_split_f64(double *x, const double *col, const fc_geometry *g,
                              ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1);
void fc_unsplit_rows_f32(float *out, const float *xs, ptrdiff_t rows, const fc_geometry *g);
void fc_unsplit_rows_f64(double *out, const double *xs, ptrdiff_t rows, const fc_geometry *g);

/*
 * Winograd F(m x m, r x r) tile transforms for nty rows of tW tiles of one
 * channel: suffix m2 is F(2x2,3x3), m4 F(4x4,3x3), m2r5 F(2x2,5x5), m3r2
 * F(3x3,2x2); a = m + r - 1 points.  Let VW = 64 / sizeof(T) (16 floats,
 * 8 doubles) and vpad(n) = n rounded up to a multiple of VW.
 *
 * fc_wino_input: tile (ty, tx)'s a x a input patch starts at row y0 + ty*m
 * and column x0 + tx*m of the H x W plane x (entries outside it are zero
 * padding); V[(xi*a + nu)*plane + ty*tW + tx] receives (B^T d B)[xi][nu]
 * of that tile.  Rows of more than VW / 2 tiles go one at a time (tile
 * loops run to vpad(tW)); shorter rows go nty together (loops to
 * vpad(nty*tW)).  Either way up to VW - 1 values past the last tile are
 * overwritten: the caller leaves that room.  scratch holds at least
 * 2*a*(vpad(tW) + ceil((r - 1) / m))*m elements, and with 2*tW <= VW and
 * nty > 1 also (nty*m + r - 1)*(tW*m + r - 1) + 2*a*a*vpad(nty*tW).
 *
 * fc_wino_output: Mt[(xi*a + nu)*plane + ty*tW + tx] is the transform-domain
 * product of tile (ty, tx); y[(ty*m + i)*ldy + tx*m + j] = bias + (A^T M
 * A)[i][j] for the first `rows` rows and `cols` columns of y.  Mt is read
 * up to VW - 1 values past the last tile (read, never stored, so Mt needs
 * the same room as V).  scratch holds (a*m + m*m)*vpad(tW) elements, and
 * with 2*tW <= VW and nty > 1 (a*m + m*m)*vpad(nty*tW).
 *
 * fc_wino_filter: U[(xi*a + nu)*n + f] = (G g_f G^T)[xi][nu] for the n r x r
 * filters g_f stored one after another (r*r values each), on nthreads
 * threads, with non-temporal stores if `stream`; returns 1 if every tap is
 * finite, else 0.
 *
 * fc_wino_grad_output (weight gradient, F(3 x 3, m x m), m2 and m4 only):
 * the m x m blocks of rows y0 .. y0+m-1 (y0 >= 0) and columns
 * tw*m .. tw*m+m-1 of the OH x OW output-gradient plane gy (zero outside it);
 * U[(xi*a + nu)*plane + tw] receives (A u A^T)[xi][nu] of block tw.
 * scratch holds (m + a)*m*tW elements.
 *
 * fc_wino_grad_filter: g[f*9 + k*3 + l] = (G^T M_f G)[k][l], M_f the sum
 * over t < nacc of M[t*acc_stride + (xi*a + nu)*n + f], on nthreads threads.
 */
#define FC_WINO_FWD_DECL(T, SFX)                                                \
    void fc_wino_input_##SFX(const T *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t y0,\
                             ptrdiff_t x0, ptrdiff_t tW, ptrdiff_t nty, T *V,   \
                             ptrdiff_t plane, T *scratch);                      \
    void fc_wino_output_##SFX(const T *Mt, ptrdiff_t plane, ptrdiff_t tW,       \
                              ptrdiff_t nty, T *y, ptrdiff_t ldy, ptrdiff_t rows, \
                              ptrdiff_t cols, T bias, T *scratch);              \
    int fc_wino_filter_##SFX(const T *g, ptrdiff_t n, T *U, int nthreads, int stream);
#define FC_WINO_DECL(T, SFX)                                                    \
    FC_WINO_FWD_DECL(T, SFX)                                                    \
    void fc_wino_grad_output_##SFX(const T *gy, ptrdiff_t OH, ptrdiff_t OW,     \
                                   ptrdiff_t y0, ptrdiff_t tW, T *U,           \
                                   ptrdiff_t plane, T *scratch);             \
    void fc_wino_grad_filter_##SFX(const T *M, ptrdiff_t n, ptrdiff_t nacc,     \
                                   ptrdiff_t acc_stride, T *g, int nthreads);
FC_WINO_DECL(float, f32_m2)
FC_WINO_DECL(double, f64_m2)
FC_WINO_DECL(float, f32_m4)
FC_WINO_DECL(double, f64_m4)
FC_WINO_FWD_DECL(float, f32_m2r5)
FC_WINO_FWD_DECL(double, f64_m2r5)
FC_WINO_FWD_DECL(float, f32_m3r2)
FC_WINO_FWD_DECL(double, f64_m3r2)
#undef FC_WINO_DECL
#undef FC_WINO_FWD_DECL

/* The instruction set the row kernels run with on this CPU. */
const char *fc_simd_level(void);

/* Whether a[0 .. n) holds only finite values (no NaN, no Inf). */
int fc_all_finite_f32(const float *a, ptrdiff_t n);
int fc_all_finite_f64(const double *a, ptrdiff_t n);

#ifdef __cplusplus
}
#endif
#endif /* FC_KERNELS_H */
