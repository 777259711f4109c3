/*
 * fc_rows_impl.h -- the direct row kernel, one instantiation per
 * (dtype, instruction set).  Included by fc_kernels.c with
 *   FC_T        the C type (float, double)
 *   FC_NAME     the function's name, e.g. fc_conv_rows_f32_avx512
 *   FC_VBYTES   the vector width in bytes (64, 32, 16)
 *   FC_TARGET   a target attribute (or nothing)
 * defined.  Do not include it anywhere else.
 */
#define FC_VL ((ptrdiff_t)(FC_VBYTES / sizeof(FC_T)))
#define FC_NV 4 /* vectors per row in a block: 8 accumulators for 2 rows */

typedef FC_T FC_CAT(FC_NAME, vec) __attribute__((vector_size(FC_VBYTES)));
#define FC_VEC FC_CAT(FC_NAME, vec)

#define FC_LOAD(v, p) __builtin_memcpy(&(v), (p), sizeof(FC_VEC))

/* Checked scalar columns [a, b) of one output row (weights wr, may be NULL). */
FC_TARGET static void FC_CAT(FC_NAME, checked)(
    FC_T *out, ptrdiff_t a, ptrdiff_t b, const FC_T **rows, const FC_T **wr,
    ptrdiff_t nrows, ptrdiff_t KW, ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx,
    ptrdiff_t dx, FC_T init)
{
    for (ptrdiff_t ox = a; ox < b; ++ox) {
        const ptrdiff_t base = ox * sx - pad;
        FC_T s = init;
        for (ptrdiff_t r = 0; r < nrows; ++r) {
            const FC_T *w = wr[r];
            if (!w)
                continue;
            const FC_T *row = rows[r];
            for (ptrdiff_t kx = 0; kx < KW; ++kx) {
                const ptrdiff_t ix = base + kx * dx;
                if (ix >= 0 && ix < W)
                    s += w[kx] * row[ix];
            }
        }
        out[ox] = s;
    }
}

/* Strided interior columns [a, b) of one output row: no bounds checks. */
FC_TARGET static void FC_CAT(FC_NAME, strided)(
    FC_T *out, ptrdiff_t a, ptrdiff_t b, const FC_T **rows, const FC_T **wr,
    ptrdiff_t nrows, ptrdiff_t KW, ptrdiff_t pad, ptrdiff_t sx, ptrdiff_t dx,
    FC_T init)
{
    for (ptrdiff_t ox = a; ox < b; ++ox) {
        const ptrdiff_t base = ox * sx - pad;
        FC_T s = init;
        for (ptrdiff_t r = 0; r < nrows; ++r) {
            const FC_T *w = wr[r];
            if (!w)
                continue;
            const FC_T *row = rows[r] + base;
            for (ptrdiff_t kx = 0; kx < KW; ++kx)
                s += w[kx] * row[kx * dx];
        }
        out[ox] = s;
    }
}

/* The taps of one input row into one row of accumulators. */
#define FC_TAPS1(NV, PW, ACC)                                               \
    for (ptrdiff_t kx = 0; kx < KW; ++kx) {                                 \
        const FC_VEC c = zero + (PW)[kx];                                   \
        const FC_T *p = src + kx * dx;                                      \
        for (int u = 0; u < NV; ++u) {                                      \
            FC_VEC v;                                                       \
            FC_LOAD(v, p + u * FC_VL);                                      \
            ACC[u] += c * v;                                                \
        }                                                                   \
    }

/* Stride-1 block of NV vectors at column ox, for one row (TWO = 0) or two
 * rows sharing their input loads (TWO = 1). */
#define FC_BLOCK(NV, TWO)                                                   \
    do {                                                                    \
        FC_VEC a0[NV], a1[NV];                                              \
        for (int u = 0; u < NV; ++u)                                        \
            a0[u] = a1[u] = vinit;                                          \
        for (ptrdiff_t r = 0; r < nrows; ++r) {                             \
            const FC_T *src = rows[r] + ox - pad;                           \
            const FC_T *p0 = w0[r];                                         \
            const FC_T *p1 = TWO ? w1[r] : NULL;                            \
            if (p0 && p1) {                                                 \
                for (ptrdiff_t kx = 0; kx < KW; ++kx) {                     \
                    const FC_VEC c0 = zero + p0[kx], c1 = zero + p1[kx];    \
                    const FC_T *p = src + kx * dx;                          \
                    for (int u = 0; u < NV; ++u) {                          \
                        FC_VEC v;                                           \
                        FC_LOAD(v, p + u * FC_VL);                          \
                        a0[u] += c0 * v;                                    \
                        a1[u] += c1 * v;                                    \
                    }                                                       \
                }                                                           \
            } else if (p0) {                                                \
                FC_TAPS1(NV, p0, a0);                                       \
            } else if (p1) {                                                \
                FC_TAPS1(NV, p1, a1);                                       \
            }                                                               \
        }                                                                   \
        __builtin_memcpy(out0 + ox, a0, sizeof(FC_VEC) * NV);               \
        if (TWO)                                                            \
            __builtin_memcpy(out1 + ox, a1, sizeof(FC_VEC) * NV);           \
    } while (0)

#define FC_INTERIOR(TWO)                                                    \
    do {                                                                    \
        ptrdiff_t ox = lo;                                                  \
        for (; ox + FC_NV * FC_VL <= hi; ox += FC_NV * FC_VL)               \
            FC_BLOCK(FC_NV, TWO);                                           \
        for (; ox + FC_VL <= hi; ox += FC_VL)                               \
            FC_BLOCK(1, TWO);                                               \
        if (ox < hi) {                                                      \
            if (hi - lo >= FC_VL) {                                         \
                /* Ragged tail: one full vector ending at hi; the columns   \
                 * it shares with the previous block get the same values. */\
                ox = hi - FC_VL;                                            \
                FC_BLOCK(1, TWO);                                           \
            } else {                                                        \
                FC_CAT(FC_NAME, checked)(out0, ox, hi, rows, w0, nrows, KW, \
                                         W, pad, sx, dx, init);             \
                if (TWO)                                                    \
                    FC_CAT(FC_NAME, checked)(out1, ox, hi, rows, w1, nrows, \
                                             KW, W, pad, sx, dx, init);     \
            }                                                               \
        }                                                                   \
    } while (0)

FC_TARGET static void FC_NAME(FC_T *out0, FC_T *out1, ptrdiff_t OW,
                              const FC_T **rows, const FC_T **w0,
                              const FC_T **w1, ptrdiff_t nrows, ptrdiff_t KW,
                              ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx,
                              ptrdiff_t dx, FC_T init)
{
    /* Interior columns [lo, hi): every tap ox*sx - pad + kx*dx is in [0, W). */
    ptrdiff_t lo = (pad + sx - 1) / sx;
    const ptrdiff_t last = W - 1 + pad - (KW - 1) * dx;
    ptrdiff_t hi = last < 0 ? 0 : last / sx + 1;
    if (lo > OW) lo = OW;
    if (hi > OW) hi = OW;
    if (hi < lo) hi = lo;

    FC_CAT(FC_NAME, checked)(out0, 0, lo, rows, w0, nrows, KW, W, pad, sx, dx, init);
    FC_CAT(FC_NAME, checked)(out0, hi, OW, rows, w0, nrows, KW, W, pad, sx, dx, init);
    if (out1) {
        FC_CAT(FC_NAME, checked)(out1, 0, lo, rows, w1, nrows, KW, W, pad, sx, dx, init);
        FC_CAT(FC_NAME, checked)(out1, hi, OW, rows, w1, nrows, KW, W, pad, sx, dx, init);
    }
    if (sx != 1) {
        FC_CAT(FC_NAME, strided)(out0, lo, hi, rows, w0, nrows, KW, pad, sx, dx, init);
        if (out1)
            FC_CAT(FC_NAME, strided)(out1, lo, hi, rows, w1, nrows, KW, pad, sx, dx, init);
        return;
    }
    const FC_VEC zero = {0};
    const FC_VEC vinit = zero + init;
    if (out1)
        FC_INTERIOR(1);
    else
        FC_INTERIOR(0);
}

#undef FC_INTERIOR
#undef FC_BLOCK
#undef FC_TAPS1
#undef FC_LOAD
#undef FC_VEC
#undef FC_NV
#undef FC_VL
