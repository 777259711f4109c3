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
 * One output row of a direct cross-correlation, accumulated over a list of
 * input rows (one per (channel, kd, ky) triple that falls inside the input):
 *
 *   out[ox] = init + sum_r sum_kx wrows[r][kx] * rows[r][ox*sx - pad + kx*dx]
 *
 * where terms with a column index outside [0, W) are zero (zero padding).
 * Columns whose whole window lies inside the row use SIMD code (AVX-512,
 * AVX2 or SSE2, chosen at run time); the few border columns use a checked
 * scalar loop.
 */
void fc_conv_row_f32(float *out, ptrdiff_t OW, const float **rows,
                     const float **wrows, ptrdiff_t nrows, ptrdiff_t KW,
                     ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx, ptrdiff_t dx,
                     float init);
void fc_conv_row_f64(double *out, ptrdiff_t OW, const double **rows,
                     const double **wrows, ptrdiff_t nrows, ptrdiff_t KW,
                     ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx, ptrdiff_t dx,
                     double init);

/*
 * One tile of the im2col matrix of a single image and group.
 *
 * x is the (C, D, H, W) C-contiguous input of the group.  The tile holds the
 * columns p0 .. p0+P-1 of the full (C*KD*KH*KW) x (OD*OH*OW) matrix, stored
 * row-major with leading dimension P: col[k*P + j] is input element
 * (c, od*sd - pd + kd*dd, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw) for
 * k = ((c*KD + kd)*KH + ky)*KW + kx and output pixel p0 + j = (od, oy, ox),
 * or 0 where that index falls into the zero padding.
 */
typedef struct {
    ptrdiff_t C, D, H, W;          /* input of one group */
    ptrdiff_t KD, KH, KW;          /* kernel */
    ptrdiff_t OD, OH, OW;          /* output */
    ptrdiff_t sd, sh, sw;          /* stride */
    ptrdiff_t pd, ph, pw;          /* padding before each dimension */
    ptrdiff_t dd, dh, dw;          /* dilation */
} fc_geometry;

void fc_im2col_tile_f32(float *col, const float *x, const fc_geometry *g,
                        ptrdiff_t p0, ptrdiff_t P);
void fc_im2col_tile_f64(double *col, const double *x, const fc_geometry *g,
                        ptrdiff_t p0, ptrdiff_t P);

/* The instruction set the multiversioned kernels run with on this CPU:
 * "avx512f", "avx2+fma", "sse2" or "portable". */
const char *fc_simd_level(void);

#ifdef __cplusplus
}
#endif
#endif /* FC_KERNELS_H */
