/*
 * fc_sparse_impl.h -- leaf kernels of fastconv's sparse paths (fastconv/_sparse.py).
 *
 * Header-only: included by _sparse.pyx alone (through `cdef extern`), so the
 * sparse kernels live in the _sparse extension and the shared fc_kernels.c
 * is not touched.  Every size, offset and pointer was validated and laid
 * out by the Python front end; these functions only do arithmetic, never
 * allocate and run without the GIL.
 *
 * 1. Direct sparse convolution (Park et al., "Faster CNNs with Direct
 *    Sparse Convolutions and Guided Pruning", ICLR 2017).  The input of one
 *    image is laid out by _sparse.py as a zero-padded *polyphase* grid:
 *    strides become phase channels and each phase is a (Dq, Hq, L) block,
 *    so that every tap (c, kd, ky, kx) of every stride and dilation is one
 *    constant offset off[j] into the flattened image, and the outputs are
 *    the positions q of a flattened grid with row length L:
 *
 *        out'[q] = init + sum_j val[j] * x[off[j] + q]
 *
 *    over the nonzero weights j of one output channel (a CSR row).  Blocks
 *    of NV vectors of consecutive q stay in registers while the nonzeros
 *    stream by (each nonzero: one broadcast, NV loads, NV FMAs); positions
 *    q whose column is >= OW or whose row is >= OH are padding of the grid
 *    and are not stored.
 *
 * 2. Scatter convolution of a sparse (CSR) image with a small dense kernel:
 *    each nonzero adds value * kernel into the output rows of a band.
 *
 * Vector width: GCC vector extensions compiled per instruction set (AVX-512,
 * AVX2+FMA, baseline) with target attributes; fc_sparse_isa() picks the
 * build that fc_kernels.c's dispatch uses (fc_blocked_lanes), so the
 * FASTCONV_SIMD cap applies here too.
 */
#ifndef FC_SPARSE_IMPL_H
#define FC_SPARSE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fc_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define FCS_X86 1
#else
#define FCS_X86 0
#endif

/* Store buf[0 .. n) (flattened grid positions q .. q+n-1, row length L,
 * Hq rows per depth plane) into the (OD, OH, OW) output plane, skipping the
 * grid's padding columns (>= OW) and rows (>= OH). */
#define FCS_STORE_DEF(T, SFX)                                                          \
    static inline void fcs_store_##SFX(T *out, const T *buf, ptrdiff_t q, ptrdiff_t n, \
                                       ptrdiff_t L, ptrdiff_t OW, ptrdiff_t HqL,       \
                                       ptrdiff_t OH)                                   \
    {                                                                                  \
        ptrdiff_t od = q / HqL, rem = q - od * HqL;                                    \
        ptrdiff_t oy = rem / L, ox = rem - oy * L;                                     \
        const ptrdiff_t Hq = HqL / L;                                                  \
        ptrdiff_t i = 0;                                                               \
        while (i < n) {                                                                \
            ptrdiff_t run = L - ox;                                                    \
            if (run > n - i) run = n - i;                                              \
            if (oy < OH && ox < OW) {                                                  \
                const ptrdiff_t m = run < OW - ox ? run : OW - ox;                     \
                memcpy(out + (od * OH + oy) * OW + ox, buf + i, m * sizeof(T));        \
            }                                                                          \
            i += run;                                                                  \
            ox = 0;                                                                    \
            if (++oy == Hq) { oy = 0; ++od; }                                          \
        }                                                                              \
    }
FCS_STORE_DEF(float, f32)
FCS_STORE_DEF(double, f64)

/* One instantiation of the sparse-weight kernel: type T, vector bytes VB,
 * NV vectors per block, target attribute TGT, name suffix SFX. */
#define FCS_CONV_DEF(T, TS, VB, NV, TGT, SFX)                                          \
    typedef T fcs_vec_##SFX __attribute__((vector_size(VB)));                          \
    TGT static void fcs_conv_##SFX(T *out, const T *x, const int64_t *off,             \
                                   const T *val, ptrdiff_t nnz, T init, ptrdiff_t q0,  \
                                   ptrdiff_t q1, ptrdiff_t L, ptrdiff_t OW,            \
                                   ptrdiff_t HqL, ptrdiff_t OH)                        \
    {                                                                                  \
        enum { VL = VB / sizeof(T), B = NV * VL };                                     \
        T buf[B] __attribute__((aligned(64)));                                         \
        if (q1 - q0 < B && q1 - q0 >= VL) { /* short range: one vector per block */    \
            for (ptrdiff_t qb = q0; qb < q1; qb += VL) {                               \
                const ptrdiff_t q = qb + VL <= q1 ? qb : q1 - VL;                      \
                fcs_vec_##SFX acc = (fcs_vec_##SFX){0} + init;                         \
                for (ptrdiff_t j = 0; j < nnz; ++j) {                                  \
                    fcs_vec_##SFX v;                                                   \
                    memcpy(&v, x + off[j] + q, sizeof v);                              \
                    acc += ((fcs_vec_##SFX){0} + val[j]) * v;                          \
                }                                                                      \
                memcpy(buf, &acc, sizeof acc);                                         \
                fcs_store_##TS(out, buf, q, VL, L, OW, HqL, OH);                       \
            }                                                                          \
            return;                                                                    \
        }                                                                              \
        if (q1 - q0 < B) { /* shorter than a vector: scalar */                         \
            for (ptrdiff_t q = q0; q < q1; ++q) {                                      \
                T s = init;                                                            \
                for (ptrdiff_t j = 0; j < nnz; ++j)                                    \
                    s += val[j] * x[off[j] + q];                                       \
                buf[q - q0] = s;                                                       \
            }                                                                          \
            fcs_store_##TS(out, buf, q0, q1 - q0, L, OW, HqL, OH);                     \
            return;                                                                    \
        }                                                                              \
        for (ptrdiff_t qb = q0; qb < q1; qb += B) {                                    \
            /* the last block overlaps the previous one instead of running short */   \
            const ptrdiff_t q = qb + B <= q1 ? qb : q1 - B;                            \
            fcs_vec_##SFX acc[NV];                                                     \
            const fcs_vec_##SFX vinit = (fcs_vec_##SFX){0} + init;                     \
            for (int u = 0; u < NV; ++u)                                               \
                acc[u] = vinit;                                                        \
            const T *xq = x + q;                                                       \
            for (ptrdiff_t j = 0; j < nnz; ++j) {                                      \
                const fcs_vec_##SFX c = (fcs_vec_##SFX){0} + val[j];                   \
                const T *p = xq + off[j];                                              \
                for (int u = 0; u < NV; ++u) {                                         \
                    fcs_vec_##SFX v;                                                   \
                    memcpy(&v, p + u * VL, sizeof v);                                  \
                    acc[u] += c * v;                                                   \
                }                                                                      \
            }                                                                          \
            memcpy(buf, acc, sizeof acc);                                              \
            fcs_store_##TS(out, buf, q, B, L, OW, HqL, OH);                            \
        }                                                                              \
    }

#if FCS_X86
#define FCS_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FCS_AVX2 __attribute__((target("avx2,fma")))
FCS_CONV_DEF(float, f32, 64, 4, FCS_AVX512, f32_avx512)
FCS_CONV_DEF(double, f64, 64, 4, FCS_AVX512, f64_avx512)
FCS_CONV_DEF(float, f32, 32, 8, FCS_AVX2, f32_avx2)
FCS_CONV_DEF(double, f64, 32, 8, FCS_AVX2, f64_avx2)
#endif
FCS_CONV_DEF(float, f32, 16, 8, , f32_base)
FCS_CONV_DEF(double, f64, 16, 8, , f64_base)

/* 2 = AVX-512, 1 = AVX2+FMA, 0 = baseline: the level fc_kernels.c dispatches
 * to (its vector width, capped by FASTCONV_SIMD). */
static inline int fc_sparse_isa(void)
{
    const int lanes = fc_blocked_lanes(4);
    return lanes >= 16 ? 2 : lanes == 8 ? 1 : 0;
}

/* Outputs q0 .. q1-1 of the flattened grid of one output channel (see 1.
 * above): x points at the group's first input channel of the image, off[j]
 * and val[j] (j < nnz) are the channel's nonzero weights, out at its
 * (OD, OH, OW) output plane.  The caller guarantees that every
 * x[off[j] + q] read lies in the image's polyphase grid. */
#define FCS_ENTRY(T, SFX)                                                              \
    static inline void fc_sparse_conv_##SFX(T *out, const T *x, const int64_t *off,    \
                                            const T *val, ptrdiff_t nnz, T init,       \
                                            ptrdiff_t q0, ptrdiff_t q1, ptrdiff_t L,   \
                                            ptrdiff_t OW, ptrdiff_t HqL, ptrdiff_t OH, \
                                            int isa)                                   \
    {                                                                                  \
        FCS_DISPATCH(SFX, out, x, off, val, nnz, init, q0, q1, L, OW, HqL, OH);        \
    }
#if FCS_X86
#define FCS_DISPATCH(SFX, ...)                                                         \
    switch (isa) {                                                                     \
    case 2: fcs_conv_##SFX##_avx512(__VA_ARGS__); break;                               \
    case 1: fcs_conv_##SFX##_avx2(__VA_ARGS__); break;                                 \
    default: fcs_conv_##SFX##_base(__VA_ARGS__); break;                                \
    }
#else
#define FCS_DISPATCH(SFX, ...) fcs_conv_##SFX##_base(__VA_ARGS__)
#endif
FCS_ENTRY(float, f32)
FCS_ENTRY(double, f64)

/* Number of nonzero entries of a[0 .. n) (NaN counts as nonzero, as in
 * numpy.count_nonzero), and the CSR entries of one weight row w[0 .. T)
 * into off/val from position k on: each nonzero tap t gives
 * (tap_off[t], w[t]).  The AVX-512 build compresses 16 (8) taps at a time
 * with masked stores that never write past the row's last entry; the
 * others write every tap and advance past nonzeros only (no branch for
 * unstructured zeros to mispredict), stopping once the row is full. */
#define FCS_SCALAR_PACK_DEF(T_, SFX, TGT)                                              \
    TGT static int64_t fcs_count_##SFX(const T_ *a, ptrdiff_t n)                       \
    {                                                                                  \
        int64_t s = 0;                                                                 \
        for (ptrdiff_t i = 0; i < n; ++i)                                              \
            s += a[i] != 0;                                                            \
        return s;                                                                      \
    }                                                                                  \
    TGT static void fcs_pack_##SFX(const T_ *w, ptrdiff_t T, const int64_t *tap_off,   \
                                   int64_t k, int64_t end, int64_t *off, T_ *val)      \
    {                                                                                  \
        for (ptrdiff_t t = 0; t < T && k < end; ++t) {                                 \
            const T_ v = w[t];                                                         \
            off[k] = tap_off[t];                                                       \
            val[k] = v;                                                                \
            k += v != 0;                                                               \
        }                                                                              \
    }
FCS_SCALAR_PACK_DEF(float, f32_base, )
FCS_SCALAR_PACK_DEF(double, f64_base, )
#if FCS_X86
#include <immintrin.h>
FCS_SCALAR_PACK_DEF(float, f32_avx2, FCS_AVX2)
FCS_SCALAR_PACK_DEF(double, f64_avx2, FCS_AVX2)

FCS_AVX512 static int64_t fcs_count_f32_avx512(const float *a, ptrdiff_t n)
{
    int64_t s = 0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        s += __builtin_popcount(_mm512_cmp_ps_mask(_mm512_loadu_ps(a + i),
                                                   _mm512_setzero_ps(), _CMP_NEQ_UQ));
    for (; i < n; ++i)
        s += a[i] != 0;
    return s;
}
FCS_AVX512 static int64_t fcs_count_f64_avx512(const double *a, ptrdiff_t n)
{
    int64_t s = 0;
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        s += __builtin_popcount(_mm512_cmp_pd_mask(_mm512_loadu_pd(a + i),
                                                   _mm512_setzero_pd(), _CMP_NEQ_UQ));
    for (; i < n; ++i)
        s += a[i] != 0;
    return s;
}
FCS_AVX512 static void fcs_pack_f32_avx512(const float *w, ptrdiff_t T, const int64_t *tap_off,
                                           int64_t k, int64_t end, int64_t *off, float *val)
{
    ptrdiff_t t = 0;
    for (; t + 16 <= T; t += 16) {
        const __m512 v = _mm512_loadu_ps(w + t);
        const __mmask16 m = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        if (!m)
            continue;
        const unsigned lo = m & 0xffu, hi = (unsigned)m >> 8;
        const int cnt = __builtin_popcount(m), cl = __builtin_popcount(lo);
        _mm512_mask_storeu_ps(val + k, (__mmask16)((1u << cnt) - 1),
                              _mm512_maskz_compress_ps(m, v));
        _mm512_mask_storeu_epi64(off + k, (__mmask8)((1u << cl) - 1),
                                 _mm512_maskz_compress_epi64((__mmask8)lo,
                                                             _mm512_loadu_si512(tap_off + t)));
        _mm512_mask_storeu_epi64(off + k + cl, (__mmask8)((1u << (cnt - cl)) - 1),
                                 _mm512_maskz_compress_epi64(
                                     (__mmask8)hi, _mm512_loadu_si512(tap_off + t + 8)));
        k += cnt;
    }
    fcs_pack_f32_base(w + t, T - t, tap_off + t, k, end, off, val);
}
FCS_AVX512 static void fcs_pack_f64_avx512(const double *w, ptrdiff_t T,
                                           const int64_t *tap_off, int64_t k, int64_t end,
                                           int64_t *off, double *val)
{
    ptrdiff_t t = 0;
    for (; t + 8 <= T; t += 8) {
        const __m512d v = _mm512_loadu_pd(w + t);
        const __mmask8 m = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        if (!m)
            continue;
        const int cnt = __builtin_popcount(m);
        const __mmask8 keep = (__mmask8)((1u << cnt) - 1);
        _mm512_mask_storeu_pd(val + k, keep, _mm512_maskz_compress_pd(m, v));
        _mm512_mask_storeu_epi64(off + k, keep,
                                 _mm512_maskz_compress_epi64(m, _mm512_loadu_si512(tap_off + t)));
        k += cnt;
    }
    fcs_pack_f64_base(w + t, T - t, tap_off + t, k, end, off, val);
}
#define FCS_PICK(NAME, SFX, isa)                                                       \
    ((isa) == 2 ? NAME##_##SFX##_avx512 : (isa) == 1 ? NAME##_##SFX##_avx2             \
                                                     : NAME##_##SFX##_base)
#else
#define FCS_PICK(NAME, SFX, isa) NAME##_##SFX##_base
#endif

#define FCS_PACK_ENTRY(T_, SFX)                                                        \
    static inline int64_t fc_count_nonzero_##SFX(const T_ *a, ptrdiff_t n, int isa)    \
    {                                                                                  \
        return FCS_PICK(fcs_count, SFX, isa)(a, n);                                    \
    }                                                                                  \
    static inline void fc_sparse_pack_row_##SFX(const T_ *w, ptrdiff_t T,              \
                                                const int64_t *tap_off, int64_t k,     \
                                                int64_t end, int64_t *off, T_ *val,    \
                                                int isa)                               \
    {                                                                                  \
        FCS_PICK(fcs_pack, SFX, isa)(w, T, tap_off, k, end, off, val);                 \
    }
FCS_PACK_ENTRY(float, f32)
FCS_PACK_ENTRY(double, f64)

/* dst[0 .. n) = src[0 .. n), with non-temporal (streaming) stores where
 * the CPU has them: the scattered band is complete, and a result row is
 * not read again soon, so it should not first be read into the cache. */
#if FCS_X86
#include <emmintrin.h>
static inline void fcs_stream_f32(float *dst, const float *src, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 15); ++i) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; ++i) dst[i] = src[i];
}
static inline void fcs_stream_f64(double *dst, const double *src, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i < n && ((uintptr_t)(dst + i) & 15); ++i) dst[i] = src[i];
    for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
    for (; i < n; ++i) dst[i] = src[i];
}
static inline void fcs_stream_fence(void) { _mm_sfence(); }
#else
static inline void fcs_stream_f32(float *dst, const float *src, ptrdiff_t n)
{ memcpy(dst, src, n * sizeof *dst); }
static inline void fcs_stream_f64(double *dst, const double *src, ptrdiff_t n)
{ memcpy(dst, src, n * sizeof *dst); }
static inline void fcs_stream_fence(void) {}
#endif

/*
 * Rows oy0 .. oy1-1 of the (OH, OW) correlation of a sparse image with a
 * dense KH x KW kernel w, by scatter:
 *
 *   out[oy, ox] = init + sum_{ky, kx} w[ky, kx] * xp[oy*sy + ky*dy, ox*sx + kx*dx]
 *
 * where xp is the CSR image (R rows; indptr, indices, data) shifted by pt
 * rows and pl columns into a zero background.  Each nonzero of a row that
 * feeds the band adds value * (one kernel row) to one output row, so the
 * band's rows are written by one thread only.  The band is accumulated in
 * `buf` ((oy1 - oy0) * OW values, cache-resident scratch of the thread)
 * and then streamed to out once.
 */
#define FCS_SCATTER_DEF(T, TS, SFX, TGT, AXPY)                                             \
    TGT static void fcs_scatter_##SFX(                                                 \
        T *out, ptrdiff_t OW, ptrdiff_t oy0, ptrdiff_t oy1, const int64_t *indptr,     \
        const int64_t *indices, const T *data, ptrdiff_t R, ptrdiff_t pt, ptrdiff_t pl,\
        const T *w, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sy, ptrdiff_t sx,            \
        ptrdiff_t dy, ptrdiff_t dx, T init, T *buf)                                    \
    {                                                                                  \
        /* rows of RL values: KW-1 guard columns, the OW outputs, FCS_GUARD more */    \
        const ptrdiff_t G = KW - 1, RL = OW + G + FCS_GUARD;                           \
        for (ptrdiff_t i = 0; i < (oy1 - oy0) * RL; ++i)                               \
            buf[i] = init;                                                             \
        ptrdiff_t r0 = oy0 * sy - pt, r1 = (oy1 - 1) * sy + (KH - 1) * dy - pt + 1;    \
        if (r0 < 0) r0 = 0;                                                            \
        if (r1 > R) r1 = R;                                                            \
        const int unit = sx == 1 && dx == 1;                                           \
        for (ptrdiff_t r = r0; r < r1; ++r) {                                          \
            const int64_t j0 = indptr[r], j1 = indptr[r + 1];                          \
            if (j0 == j1) continue;                                                    \
            for (ptrdiff_t ky = 0; ky < KH; ++ky) {                                    \
                const ptrdiff_t t = r + pt - ky * dy;                                  \
                if (t < 0) break;                                                      \
                if (t % sy) continue;                                                  \
                const ptrdiff_t oy = t / sy;                                           \
                if (oy < oy0 || oy >= oy1) continue;                                   \
                T *restrict orow = buf + (oy - oy0) * RL + G;                          \
                const T *restrict wr = w + ky * KW;                                    \
                if (unit) {                                                            \
                    /* outputs c-KW+1 .. c: guard columns take the overhang */         \
                    AXPY                                                               \
                    continue;                                                          \
                }                                                                      \
                for (int64_t j = j0; j < j1; ++j) {                                    \
                    const T v = data[j];                                               \
                    const ptrdiff_t c = indices[j] + pl;                               \
                    for (ptrdiff_t kx = 0; kx < KW; ++kx) {                            \
                        const ptrdiff_t u = c - kx * dx;                               \
                        if (u < 0) break;                                              \
                        if (u % sx) continue;                                          \
                        if (u / sx < OW) orow[u / sx] += v * wr[kx];                   \
                    }                                                                  \
                }                                                                      \
            }                                                                          \
        }                                                                              \
        for (ptrdiff_t oy = oy0; oy < oy1; ++oy)                                       \
            fcs_stream_##TS(out + oy * OW, buf + (oy - oy0) * RL + G, OW);            \
        fcs_stream_fence();                                                            \
    }

/* Guard values after each band row of the scatter (>= KW - 1, and the
 * widest vector the AVX-512 loop stores past a nonzero's outputs). */
#define FCS_GUARD 16

/* The unit-stride inner loop: each nonzero adds v * (reversed kernel row)
 * to outputs c-KW+1 .. c; nonzeros past the last output's reach are skipped. */
#define FCS_AXPY_SCALAR                                                                \
    for (int64_t j = j0; j < j1; ++j) {                                                \
        const ptrdiff_t c = indices[j] + pl;                                           \
        if (c >= OW + G) continue;                                                     \
        const T v = data[j];                                                           \
        T *restrict o = orow + c - G;                                                  \
        for (ptrdiff_t i = 0; i < KW; ++i)                                             \
            o[i] += v * wr[KW - 1 - i];                                                \
    }
#define T float
FCS_SCATTER_DEF(float, f32, f32_base, , FCS_AXPY_SCALAR)
#undef T
#define T double
FCS_SCATTER_DEF(double, f64, f64_base, , FCS_AXPY_SCALAR)
#undef T

#if FCS_X86
/* AVX-512: the reversed kernel row, zero past KW, in one register; one
 * unmasked load-FMA-store per nonzero (kernels up to 16 (float) / 8
 * (double) wide) into the band row, whose right guard (FCS_GUARD values)
 * takes the vector's overhang.  The zero lanes add v * 0 = 0, exactly,
 * for finite v; a NaN or Inf value takes the scalar loop, which touches
 * only its KW outputs. */
#define FCS_AXPY_512(VT, SUF, NL)                                                      \
    if (KW <= NL) {                                                                    \
        T rev[NL] = {0};                                                               \
        for (ptrdiff_t i = 0; i < KW; ++i) rev[i] = wr[KW - 1 - i];                    \
        const VT wv = _mm512_loadu_##SUF(rev);                                         \
        for (int64_t j = j0; j < j1; ++j) {                                            \
            const ptrdiff_t c = indices[j] + pl;                                       \
            if (c >= OW + G) continue;                                                 \
            const T v = data[j];                                                       \
            T *o = orow + c - G;                                                       \
            if (__builtin_isfinite(v)) {                                               \
                _mm512_storeu_##SUF(o, _mm512_fmadd_##SUF(_mm512_set1_##SUF(v), wv,    \
                                                          _mm512_loadu_##SUF(o)));     \
            } else {                                                                   \
                for (ptrdiff_t i = 0; i < KW; ++i)                                     \
                    o[i] += v * wr[KW - 1 - i];                                        \
            }                                                                          \
        }                                                                              \
    } else {                                                                           \
        FCS_AXPY_SCALAR                                                                \
    }
#define T float
FCS_SCATTER_DEF(float, f32, f32_avx512, FCS_AVX512, FCS_AXPY_512(__m512, ps, 16))
#undef T
#define T double
FCS_SCATTER_DEF(double, f64, f64_avx512, FCS_AVX512, FCS_AXPY_512(__m512d, pd, 8))
#undef T
#define FCS_SCATTER_PICK(SFX, isa) ((isa) == 2 ? fcs_scatter_##SFX##_avx512 : fcs_scatter_##SFX##_base)
#else
#define FCS_SCATTER_PICK(SFX, isa) fcs_scatter_##SFX##_base
#endif

/* Band rows oy0 .. oy1-1 (see above); buf holds (oy1 - oy0) * (OW + KW-1 + FCS_GUARD)
 * values. */
#define FCS_SCATTER_ENTRY(T_, SFX)                                                     \
    static inline void fc_sparse_scatter_##SFX(                                        \
        T_ *out, ptrdiff_t OW, ptrdiff_t oy0, ptrdiff_t oy1, const int64_t *indptr,    \
        const int64_t *indices, const T_ *data, ptrdiff_t R, ptrdiff_t pt,             \
        ptrdiff_t pl, const T_ *w, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sy,           \
        ptrdiff_t sx, ptrdiff_t dy, ptrdiff_t dx, T_ init, T_ *buf, int isa)           \
    {                                                                                  \
        FCS_SCATTER_PICK(SFX, isa)(out, OW, oy0, oy1, indptr, indices, data, R, pt,    \
                                   pl, w, KH, KW, sy, sx, dy, dx, init, buf);          \
    }
FCS_SCATTER_ENTRY(float, f32)
FCS_SCATTER_ENTRY(double, f64)

#endif /* FC_SPARSE_IMPL_H */
