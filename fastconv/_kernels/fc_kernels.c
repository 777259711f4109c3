/*
 * fc_kernels.c -- leaf C kernels of fastconv's CPU backend (see fc_kernels.h).
 *
 * SIMD width: the direct row kernel (fc_rows_impl.h) is written with GCC
 * vector extensions and compiled once per instruction set with a target
 * attribute: AVX-512 (64-byte vectors), AVX2 + FMA (32-byte) and the SSE2
 * baseline (16-byte) on x86-64.  The best one the CPU supports is picked
 * once, at the first call (runtime dispatch), so wheels need no
 * -march=native.  The environment variable FASTCONV_SIMD=avx2|sse2 caps the
 * choice (used by the tests to exercise every variant).  Other compilers
 * and architectures (aarch64) get one portable 16-byte build.
 */
#include "fc_kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define FC_CAT2(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT2(a, b)

#if defined(__x86_64__) && defined(__GNUC__)
#define FC_X86 1
#else
#define FC_X86 0
#endif

/* ---- direct row kernels: one per (dtype, instruction set) ---------------- */

/* fc_rows_inst.h instantiates fc_rows_impl.h for float and double with the
 * FC_VBYTES / FC_TARGET / FC_ISA set here. */
#if FC_X86
#define FC_VBYTES 64
#define FC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FC_HAS_FMA 1
#define FC_ISA avx512
#include "fc_rows_inst.h"

#define FC_VBYTES 32
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_HAS_FMA 1
#define FC_ISA avx2
#include "fc_rows_inst.h"
#endif /* FC_X86 */

/* Baseline (SSE2 on x86-64) or portable build: 16-byte vectors. */
#define FC_VBYTES 16
#define FC_TARGET
#if defined(__FMA__) || defined(__aarch64__)
#define FC_HAS_FMA 1
#else
#define FC_HAS_FMA 0
#endif
#define FC_ISA base
#include "fc_rows_inst.h"

/* ---- runtime dispatch ----------------------------------------------------- */
enum { FC_ISA_BASE = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2 };

static int fc_isa(void)
{
    static int level = -1;
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l >= 0)
        return l;
    l = FC_ISA_BASE;
#if FC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        l = FC_ISA_AVX2;
    if (l == FC_ISA_AVX2 && __builtin_cpu_supports("avx512f"))
        l = FC_ISA_AVX512;
    const char *cap = getenv("FASTCONV_SIMD");
    if (cap && strcmp(cap, "sse2") == 0)
        l = FC_ISA_BASE;
    else if (cap && strcmp(cap, "avx2") == 0 && l > FC_ISA_AVX2)
        l = FC_ISA_AVX2;
#endif
    __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    return l;
}

#if FC_X86
#define FC_DISPATCH(FN, ...)                                    \
    switch (fc_isa()) {                                         \
    case FC_ISA_AVX512: FN(avx512)(__VA_ARGS__); break;         \
    case FC_ISA_AVX2: FN(avx2)(__VA_ARGS__); break;             \
    default: FN(base)(__VA_ARGS__); break;                      \
    }
#else
#define FC_DISPATCH(FN, ...) FN(base)(__VA_ARGS__)
#endif
#define FC_ROWS_F32(isa) fc_rows_f32_##isa
#define FC_ROWS_F64(isa) fc_rows_f64_##isa
#define FC_PLANE_F32(isa) fc_rows_f32_##isa##_plane
#define FC_PLANE_F64(isa) fc_rows_f64_##isa##_plane
#define FC_BLOCKED_F32(isa) fc_rows_f32_##isa##_blocked
#define FC_BLOCKED_F64(isa) fc_rows_f64_##isa##_blocked
#define FC_FLAT_F32(isa) fc_rows_f32_##isa##_blocked_flat
#define FC_FLAT_F64(isa) fc_rows_f64_##isa##_blocked_flat

/* The public entry points of fc_kernels.h for one dtype: each dispatches to
 * the instruction-set build chosen by fc_isa(). */
#define FC_ENTRY_POINTS(T, SFX, ROWS, PLANE, BLOCKED, FLAT)                     \
    void fc_conv_rows_##SFX(T *out0, T *out1, ptrdiff_t OW, const T **rows,     \
                            const T **w0, const T **w1, ptrdiff_t nrows,        \
                            ptrdiff_t KW, ptrdiff_t W, ptrdiff_t pad,           \
                            ptrdiff_t sx, ptrdiff_t dx, T init)                 \
    {                                                                           \
        FC_DISPATCH(ROWS, out0, out1, OW, rows, w0, w1, nrows, KW, W, pad, sx,  \
                    dx, init);                                                  \
    }                                                                           \
    void fc_conv_plane_##SFX(T *out, ptrdiff_t ldo, ptrdiff_t oy0,              \
                             ptrdiff_t nout, ptrdiff_t OW, const T *in,         \
                             ptrdiff_t ldi, ptrdiff_t H, ptrdiff_t W,           \
                             ptrdiff_t ph, ptrdiff_t pw, const T *w,            \
                             ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,          \
                             ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, T init,  \
                             T *scratch, ptrdiff_t scratch_len)                 \
    {                                                                           \
        FC_DISPATCH(PLANE, out, ldo, oy0, nout, OW, in, ldi, H, W, ph, pw, w,   \
                    KH, KW, sh, sw, dh, dw, init, scratch, scratch_len);        \
    }                                                                           \
    void fc_conv_blocked_##SFX(T *out, ptrdiff_t ldo, ptrdiff_t nvalid,         \
                               const T *x, ptrdiff_t C, ptrdiff_t ldc,          \
                               ptrdiff_t ldr, const T *wp, ptrdiff_t KH,        \
                               ptrdiff_t KW, ptrdiff_t sx, ptrdiff_t dy,        \
                               ptrdiff_t dx, ptrdiff_t OW, const T *bias)       \
    {                                                                           \
        FC_DISPATCH(BLOCKED, out, ldo, nvalid, x, C, ldc, ldr, wp, KH, KW, sx,  \
                    dy, dx, OW, bias);                                          \
    }                                                                           \
    void fc_conv_blocked_flat_##SFX(T *out, ptrdiff_t ldo, ptrdiff_t nvalid,    \
                                    const T *x, ptrdiff_t C, ptrdiff_t ldc,     \
                                    ptrdiff_t ldr, const T *wp, ptrdiff_t KH,   \
                                    ptrdiff_t KW, ptrdiff_t sy, ptrdiff_t sx,   \
                                    ptrdiff_t dy, ptrdiff_t dx, ptrdiff_t OW,   \
                                    ptrdiff_t q0, ptrdiff_t nq, const T *bias)  \
    {                                                                           \
        FC_DISPATCH(FLAT, out, ldo, nvalid, x, C, ldc, ldr, wp, KH, KW, sy, sx, \
                    dy, dx, OW, q0, nq, bias);                                  \
    }

FC_ENTRY_POINTS(float, f32, FC_ROWS_F32, FC_PLANE_F32, FC_BLOCKED_F32, FC_FLAT_F32)
FC_ENTRY_POINTS(double, f64, FC_ROWS_F64, FC_PLANE_F64, FC_BLOCKED_F64, FC_FLAT_F64)

/* Lane packing (fc_rows_impl.h's pack_lanes) of the instruction set whose
 * width is `lanes` elements; the scalar loop for any other width. */
#define FC_PACK_ENTRY(T, SFX)                                                   \
    void fc_pack_lanes_##SFX(T *dst, ptrdiff_t ldd, const T *src, ptrdiff_t lds, \
                             ptrdiff_t nvalid, ptrdiff_t n, ptrdiff_t lanes)    \
    {                                                                           \
        const int isa = fc_isa();                                               \
        if (FC_X86 && isa == FC_ISA_AVX512 && lanes == 64 / (ptrdiff_t)sizeof(T)) \
            FC_PACK_ISA(SFX, avx512)(dst, ldd, src, lds, nvalid, n);            \
        else if (FC_X86 && isa == FC_ISA_AVX2 && lanes == 32 / (ptrdiff_t)sizeof(T)) \
            FC_PACK_ISA(SFX, avx2)(dst, ldd, src, lds, nvalid, n);              \
        else if (lanes == 16 / (ptrdiff_t)sizeof(T))                            \
            FC_PACK_ISA(SFX, base)(dst, ldd, src, lds, nvalid, n);              \
        else                                                                    \
            for (ptrdiff_t t = 0; t < n; ++t)                                   \
                for (ptrdiff_t l = 0; l < lanes; ++l)                           \
                    dst[t * ldd + l] = l < nvalid ? src[l * lds + t] : 0;       \
    }                                                                           \
    void fc_transpose_##SFX(T *dst, ptrdiff_t ldd, const T *src, ptrdiff_t lds,   \
                            ptrdiff_t rows, ptrdiff_t cols)                     \
    {                                                                           \
        const ptrdiff_t vl = fc_isa() == FC_ISA_AVX512 ? 64 / (ptrdiff_t)sizeof(T) \
                           : fc_isa() == FC_ISA_AVX2 ? 32 / (ptrdiff_t)sizeof(T) \
                           : 16 / (ptrdiff_t)sizeof(T);                         \
        ptrdiff_t r0 = 0;                                                       \
        for (; r0 + vl <= rows; r0 += vl)                                       \
            fc_pack_lanes_##SFX(dst + r0, ldd, src + r0 * lds, lds, vl, cols, vl); \
        for (ptrdiff_t t = 0; t < cols; ++t)                                    \
            for (ptrdiff_t r = r0; r < rows; ++r)                               \
                dst[t * ldd + r] = src[r * lds + t];                            \
    }
#if FC_X86
#define FC_PACK_ISA(SFX, isa) fc_rows_##SFX##_##isa##_pack_lanes
#else
/* Only the portable build exists; the x86 branches above are dead code. */
#define FC_PACK_ISA(SFX, isa) fc_rows_##SFX##_base_pack_lanes
#endif
FC_PACK_ENTRY(float, f32)
FC_PACK_ENTRY(double, f64)
#undef FC_PACK_ENTRY
#undef FC_PACK_ISA

int fc_blocked_pixels(void)
{
    return fc_isa() == FC_ISA_AVX512 ? 28 : 12;
}

int fc_blocked_lanes(int itemsize)
{
    const int bytes = fc_isa() == FC_ISA_AVX512 ? 64 : fc_isa() == FC_ISA_AVX2 ? 32 : 16;
    return bytes / itemsize;
}

const char *fc_simd_level(void)
{
    switch (fc_isa()) {
    case FC_ISA_AVX512: return "avx512 (64-byte vectors)";
    case FC_ISA_AVX2: return "avx2+fma (32-byte vectors)";
    default: return FC_X86 ? "sse2 (16-byte vectors)" : "portable (16-byte vectors)";
    }
}

/* ---- im2col tiles and their adjoint (col2im) ----------------------------------------------------------- */
/* Plain copies that the compiler vectorises; GCC function multiversioning
 * gives them the CPU's vector width. */
#if FC_X86 && !defined(__clang__)
#define FC_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FC_MULTIVERSION
#endif
#define FC_T float
#define FC_SFX f32
#include "fc_im2col_impl.h"
#include "fc_col2im_impl.h"
#undef FC_T
#undef FC_SFX

#define FC_T double
#define FC_SFX f64
#include "fc_im2col_impl.h"
#include "fc_col2im_impl.h"
#undef FC_T
#undef FC_SFX

/* ---- finiteness scans ------------------------------------------------------------------------------------- */
/* Whether a[0 .. n) holds no NaN or Inf: an OR over "exponent bits all
 * set" of the raw bits, an integer reduction the compiler vectorises (a
 * float sum would need reassociation, and numpy's pairwise sum runs 3-4x
 * slower).  "auto" scans the input on every call, and the weights but
 * for Winograd (whose filter transform reports non-finite taps). */
FC_MULTIVERSION int fc_all_finite_f32(const float *a, ptrdiff_t n)
{
    const uint32_t *restrict u = (const uint32_t *)(const void *)a;
    uint32_t bad = 0;
    for (ptrdiff_t i = 0; i < n; ++i)
        bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
    return !bad;
}

FC_MULTIVERSION int fc_all_finite_f64(const double *a, ptrdiff_t n)
{
    const uint64_t *restrict u = (const uint64_t *)(const void *)a;
    uint64_t bad = 0;
    for (ptrdiff_t i = 0; i < n; ++i)
        bad |= (u[i] & 0x7ff0000000000000u) == 0x7ff0000000000000u;
    return !bad;
}

/* ---- Winograd F(m x m, r x r) tile transforms ------------------------------- */
/* Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR
 * 2016): F(2,3) and F(3,2) with interpolation points 0, 1, -1, inf; F(4,3)
 * and F(2,5) with 0, 1, -1, 2, -2, inf (the same B^T for the same points;
 * G's rows are the points' powers, scaled as in F(2,3) and F(4,3)).  fastconv/_winograd.py holds the same matrices and
 * the tests check them. */
static const double fc_bt2[4][4] = {
    {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double fc_at2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const double fc_bt4[6][6] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const double fc_at4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
static const double fc_g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double fc_g4[6][3] = {
    {1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
static const double fc_at3r2[3][4] = {{1, 1, 1, 0}, {0, 1, -1, 0}, {0, 1, 1, -1}};
static const double fc_g3r2[4][2] = {{1, 0}, {0.5, 0.5}, {0.5, -0.5}, {0, 1}};
static const double fc_at2r5[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
static const double fc_g2r5[6][5] = {
    {1.0 / 4, 0, 0, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
    {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
    {0, 0, 0, 0, 1}};

/* Copy n bytes from src to dst with non-temporal (streaming) stores where
 * the CPU has them (SSE2: every x86-64), the stores bypassing the caches:
 * 16-byte stores from the first 16-byte boundary of dst on, plain copies
 * around them.  The filter transform writes large transformed filters this
 * way (see fastconv._winograd.stream_filters).  The caller fences. */
static inline void fc_stream_copy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
#if defined(__SSE2__)
    size_t head = (size_t)(-(uintptr_t)d & 15);
    if (head < n) {
        memcpy(d, s, head);
        d += head, s += head, n -= head;
        for (; n >= 16; d += 16, s += 16, n -= 16)
            _mm_stream_si128((__m128i *)(void *)d,
                             _mm_loadu_si128((const __m128i *)(const void *)s));
    }
#endif
    memcpy(d, s, n);
}

static inline void fc_stream_fence(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

#define FC_M 2
#define FC_R 3
#define FC_MNAME m2
#define FC_BT fc_bt2
#define FC_AT fc_at2
#define FC_G fc_g2
#include "fc_winograd_inst.h"

#define FC_M 4
#define FC_R 3
#define FC_MNAME m4
#define FC_BT fc_bt4
#define FC_AT fc_at4
#define FC_G fc_g4
#include "fc_winograd_inst.h"

#define FC_M 2
#define FC_R 5
#define FC_MNAME m2r5
#define FC_BT fc_bt4
#define FC_AT fc_at2r5
#define FC_G fc_g2r5
#include "fc_winograd_inst.h"

#define FC_M 3
#define FC_R 2
#define FC_MNAME m3r2
#define FC_BT fc_bt2
#define FC_AT fc_at3r2
#define FC_G fc_g3r2
#include "fc_winograd_inst.h"
