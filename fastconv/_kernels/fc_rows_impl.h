/*
 * fc_rows_impl.h -- the direct row kernel, one instantiation per
 * (dtype, instruction set).  Included by fc_kernels.c with
 *   FC_T        the C type (float, double)
 *   FC_NAME     the function's name, e.g. fc_conv_rows_f32_avx512
 *   FC_VBYTES   the vector width in bytes (64, 32, 16)
 *   FC_TARGET   a target attribute (or nothing)
 *   FC_HAS_FMA  1 if that target has fused multiply-add
 * defined.  Do not include it anywhere else.
 */
#define FC_VL ((ptrdiff_t)(FC_VBYTES / sizeof(FC_T)))
#define FC_NV 4 /* vectors per row in a block: 8 accumulators for 2 rows */

typedef FC_T FC_CAT(FC_NAME, vec) __attribute__((vector_size(FC_VBYTES)));
#define FC_VEC FC_CAT(FC_NAME, vec)

#define FC_LOAD(v, p) __builtin_memcpy(&(v), (p), sizeof(FC_VEC))

/* s + a*b rounded as the vector paths round it (their a += c*v is
 * contracted to one FMA where the target has FMA, -ffp-contract=fast), so
 * an output computed here equals the same output computed by a vector
 * block bit for bit: a column's value does not depend on which path (row
 * width, chunk of a Dask array) computed it.  Written out, because GCC's
 * SLP vectoriser would otherwise multiply several taps at once and add the
 * rounded products. */
#undef FC_MADD
#if FC_HAS_FMA
#define FC_MADD(a, b, s) _Generic((s), float: __builtin_fmaf, double: __builtin_fma)((a), (b), (s))
#else
#define FC_MADD(a, b, s) ((s) + (a) * (b))
#endif

/* Scalar columns [a, b) of one output row (weights wr, entries may be
 * NULL): for each column the taps that fall inside [0, W) are found once,
 * then summed without per-tap checks.  Serves the padded borders, narrow
 * rows and strided rows. */
FC_TARGET static void FC_CAT(FC_NAME, checked)(
    FC_T *out, ptrdiff_t a, ptrdiff_t b, const FC_T **rows, const FC_T **wr,
    ptrdiff_t nrows, ptrdiff_t KW, ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx,
    ptrdiff_t dx, FC_T init)
{
    for (ptrdiff_t ox = a; ox < b; ++ox) {
        const ptrdiff_t base = ox * sx - pad;
        /* kx in [k0, k1) <=> 0 <= base + kx*dx < W */
        ptrdiff_t k0 = base >= 0 ? 0 : (-base + dx - 1) / dx;
        ptrdiff_t k1 = base >= W ? 0 : (W - base + dx - 1) / dx;
        if (k1 > KW) k1 = KW;
        FC_T s = init;
        for (ptrdiff_t r = 0; r < nrows; ++r) {
            const FC_T *w = wr[r];
            if (!w)
                continue;
            const FC_T *row = rows[r] + base;
            for (ptrdiff_t kx = k0; kx < k1; ++kx)
                s = FC_MADD(w[kx], row[kx * dx], s);
        }
        out[ox] = s;
    }
}

/* Column offset of vector u in a block of NV vectors whose last vector
 * starts at LAST (LAST < (NV-1)*VL for a ragged block that overlaps). */
#define FC_OFF(u, NV, LAST) ((u) == (NV) - 1 ? (LAST) : (u) * FC_VL)

/* The taps of one input row into one row of accumulators. */
#define FC_TAPS1(NV, LAST, PW, ACC)                                               \
    for (ptrdiff_t kx = 0; kx < KW; ++kx) {                                 \
        const FC_VEC c = zero + (PW)[kx];                                   \
        const FC_T *p = src + kx * dx;                                      \
        for (int u = 0; u < NV; ++u) {                                      \
            FC_VEC v;                                                       \
            FC_LOAD(v, p + FC_OFF(u, NV, LAST));                            \
            ACC[u] += c * v;                                                \
        }                                                                   \
    }

/* Stride-1 block of NV vectors at column ox, for one row (TWO = 0) or two
 * rows sharing their input loads (TWO = 1); its last vector starts LAST
 * columns after ox. */
#define FC_BLOCK(NV, LAST, TWO)                                                   \
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
                        FC_LOAD(v, p + FC_OFF(u, NV, LAST));                \
                        a0[u] += c0 * v;                                    \
                        a1[u] += c1 * v;                                    \
                    }                                                       \
                }                                                           \
            } else if (p0) {                                                \
                FC_TAPS1(NV, LAST, p0, a0);                                       \
            } else if (p1) {                                                \
                FC_TAPS1(NV, LAST, p1, a1);                                       \
            }                                                               \
        }                                                                   \
        for (int u = 0; u < NV; ++u) {                                      \
            __builtin_memcpy(out0 + ox + FC_OFF(u, NV, LAST), &a0[u],       \
                             sizeof(FC_VEC));                               \
            if (TWO)                                                        \
                __builtin_memcpy(out1 + ox + FC_OFF(u, NV, LAST), &a1[u],   \
                                 sizeof(FC_VEC));                           \
        }                                                                   \
    } while (0)

/* Interior columns [lo, hi) in blocks of FC_NV vectors.  The remainder,
 * if at least one vector wide, is one block of 1..FC_NV vectors whose last
 * vector ends exactly at hi (overlapping columns get the same values
 * again), so short rows still keep several accumulators busy. */
#define FC_INTERIOR(TWO)                                                    \
    do {                                                                    \
        ptrdiff_t ox = lo;                                                  \
        for (; ox + FC_NV * FC_VL <= hi; ox += FC_NV * FC_VL)               \
            FC_BLOCK(FC_NV, (FC_NV - 1) * FC_VL, TWO);                      \
        const ptrdiff_t rem = hi - ox;                                      \
        if (rem >= FC_VL) {                                                 \
            const ptrdiff_t last = rem - FC_VL;                             \
            switch ((rem + FC_VL - 1) / FC_VL) {                            \
            case 1: FC_BLOCK(1, last, TWO); break;                          \
            case 2: FC_BLOCK(2, last, TWO); break;                          \
            case 3: FC_BLOCK(3, last, TWO); break;                          \
            default: FC_BLOCK(4, last, TWO); break;                         \
            }                                                               \
        } else if (rem > 0 && hi - lo >= FC_VL) {                           \
            ox = hi - FC_VL; /* one vector ending at hi, overlapping */     \
            FC_BLOCK(1, 0, TWO);                                            \
        } else if (rem > 0) {                                               \
            FC_CAT(FC_NAME, checked)(out0, ox, hi, rows, w0, nrows, KW,     \
                                     W, pad, sx, dx, init);                 \
            if (TWO)                                                        \
                FC_CAT(FC_NAME, checked)(out1, ox, hi, rows, w1, nrows,     \
                                         KW, W, pad, sx, dx, init);         \
        }                                                                   \
    } while (0)

FC_TARGET static void FC_NAME(FC_T *out0, FC_T *out1, ptrdiff_t OW,
                              const FC_T **rows, const FC_T **w0,
                              const FC_T **w1, ptrdiff_t nrows, ptrdiff_t KW,
                              ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx,
                              ptrdiff_t dx, FC_T init)
{
    /* Interior columns [lo, hi): every tap ox*sx - pad + kx*dx is in [0, W). */
    /* (64-bit division is slow: avoid it for the common unit stride) */
    ptrdiff_t lo = sx == 1 ? pad : (pad + sx - 1) / sx;
    const ptrdiff_t last = W - 1 + pad - (KW - 1) * dx;
    ptrdiff_t hi = last < 0 ? 0 : (sx == 1 ? last : last / sx) + 1;
    if (lo < 0) lo = 0; /* pad < 0: a column slice of a wider row */
    if (lo > OW) lo = OW;
    if (hi > OW) hi = OW;
    if (hi < lo) hi = lo;

    if (lo > 0 || hi < OW) {
        FC_CAT(FC_NAME, checked)(out0, 0, lo, rows, w0, nrows, KW, W, pad, sx, dx, init);
        FC_CAT(FC_NAME, checked)(out0, hi, OW, rows, w0, nrows, KW, W, pad, sx, dx, init);
        if (out1) {
            FC_CAT(FC_NAME, checked)(out1, 0, lo, rows, w1, nrows, KW, W, pad, sx, dx, init);
            FC_CAT(FC_NAME, checked)(out1, hi, OW, rows, w1, nrows, KW, W, pad, sx, dx, init);
        }
    }
    if (sx != 1) {
        /* Strided rows have no vector path: scalar columns, whose tap
         * ranges are whole in the interior. */
        FC_CAT(FC_NAME, checked)(out0, lo, hi, rows, w0, nrows, KW, W, pad, sx, dx, init);
        if (out1)
            FC_CAT(FC_NAME, checked)(out1, lo, hi, rows, w1, nrows, KW, W, pad, sx, dx, init);
        return;
    }
    const FC_VEC zero = {0};
    const FC_VEC vinit = zero + init;
    if (out1)
        FC_INTERIOR(1);
    else
        FC_INTERIOR(0);
}

/* Output rows oy0 .. oy0+nout-1 of one plane of a one-input-channel
 * correlation.  Input rows outside [0, H) are vertical zero padding and are
 * skipped; the row kernel handles the horizontal padding. */
FC_TARGET static void FC_CAT(FC_NAME, plane_rows)(
    FC_T *out, ptrdiff_t ldo, ptrdiff_t oy0, ptrdiff_t nout, ptrdiff_t OW,
    const FC_T *in, ptrdiff_t ldi, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
    ptrdiff_t pw, const FC_T *w, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,
    ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, FC_T init)
{
    const FC_T *rows[2 * FC_PLANE_MAX_KH];
    const FC_T *w0[2 * FC_PLANE_MAX_KH];
    const FC_T *w1[2 * FC_PLANE_MAX_KH];
    for (ptrdiff_t oy = oy0; oy < oy0 + nout; oy += 2) {
        const int two = oy + 1 < oy0 + nout;
        ptrdiff_t k = 0;
        for (ptrdiff_t ky = 0; ky < KH; ++ky) {
            const ptrdiff_t iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= H)
                continue;
            rows[k] = in + iy * ldi;
            w0[k] = w + ky * KW;
            w1[k] = NULL;
            ++k;
        }
        if (two) {
            const ptrdiff_t first = k;
            for (ptrdiff_t ky = 0; ky < KH; ++ky) {
                const ptrdiff_t iy = (oy + 1) * sh - ph + ky * dh;
                if (iy < 0 || iy >= H)
                    continue;
                const FC_T *row = in + iy * ldi;
                ptrdiff_t r = 0;
                while (r < first && rows[r] != row)
                    ++r;
                if (r == first) {
                    r = k++;
                    rows[r] = row;
                    w0[r] = NULL;
                }
                w1[r] = w + ky * KW;
            }
        }
        FC_NAME(out + oy * ldo, two ? out + (oy + 1) * ldo : NULL, OW, rows, w0,
                w1, k, KW, W, pw, sw, dw, init);
    }
}

/* Rows of an all-interior plane (a zero-padded copy, unit horizontal
 * stride, OW >= one vector): for each pair of output rows and each block of
 * NV vectors, loop over the taps with both rows' accumulators in registers.
 * No row lists and no border code: the lean loop for short rows. */
#define FC_PBLOCK(NV, LAST)                                                 \
    do {                                                                    \
        FC_VEC a0[NV], a1[NV];                                              \
        for (int u = 0; u < NV; ++u)                                        \
            a0[u] = a1[u] = vinit;                                          \
        for (ptrdiff_t ky = 0; ky < KH; ++ky) {                             \
            const FC_T *r0 = in + (oy * sh + ky * dh) * ldi + ox;           \
            const FC_T *r1 = r0 + sh * ldi;                                 \
            const FC_T *wk = w + ky * KW;                                   \
            for (ptrdiff_t kx = 0; kx < KW; ++kx) {                         \
                const FC_VEC c = zero + wk[kx];                             \
                for (int u = 0; u < NV; ++u) {                              \
                    FC_VEC v0, v1;                                          \
                    FC_LOAD(v0, r0 + kx * dw + FC_OFF(u, NV, LAST));        \
                    a0[u] += c * v0;                                        \
                    if (two) {                                              \
                        FC_LOAD(v1, r1 + kx * dw + FC_OFF(u, NV, LAST));    \
                        a1[u] += c * v1;                                    \
                    }                                                       \
                }                                                           \
            }                                                               \
        }                                                                   \
        for (int u = 0; u < NV; ++u) {                                      \
            __builtin_memcpy(o0 + ox + FC_OFF(u, NV, LAST), &a0[u],         \
                             sizeof(FC_VEC));                               \
            if (two)                                                        \
                __builtin_memcpy(o0 + ldo + ox + FC_OFF(u, NV, LAST),       \
                                 &a1[u], sizeof(FC_VEC));                   \
        }                                                                   \
    } while (0)

FC_TARGET static void FC_CAT(FC_NAME, plane_interior)(
    FC_T *out, ptrdiff_t ldo, ptrdiff_t nout, ptrdiff_t OW, const FC_T *in,
    ptrdiff_t ldi, const FC_T *w, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,
    ptrdiff_t dh, ptrdiff_t dw, FC_T init)
{
    const FC_VEC zero = {0};
    const FC_VEC vinit = zero + init;
    for (ptrdiff_t oy = 0; oy < nout; oy += 2) {
        const int two = oy + 1 < nout;
        FC_T *o0 = out + oy * ldo;
        ptrdiff_t ox = 0;
        for (; ox + FC_NV * FC_VL <= OW; ox += FC_NV * FC_VL)
            FC_PBLOCK(FC_NV, (FC_NV - 1) * FC_VL);
        const ptrdiff_t rem = OW - ox;
        if (rem > 0) {
            if (rem < FC_VL) {
                ox = OW - FC_VL; /* one vector ending at OW, overlapping */
                FC_PBLOCK(1, 0);
            } else {
                const ptrdiff_t last = rem - FC_VL;
                switch ((rem + FC_VL - 1) / FC_VL) {
                case 1: FC_PBLOCK(1, last); break;
                case 2: FC_PBLOCK(2, last); break;
                case 3: FC_PBLOCK(3, last); break;
                default: FC_PBLOCK(4, last); break;
                }
            }
        }
    }
}
#undef FC_PBLOCK

/* The plane kernel.  When the rows a block of output rows reads fit in
 * `scratch` (scratch_len elements), they are copied there with their zero
 * padding in place, in chunks of output rows, so every output column is an
 * interior column for the lean loop above; otherwise the rows are read in
 * place and the row kernel handles the borders. */
FC_TARGET static void FC_CAT(FC_NAME, plane)(
    FC_T *out, ptrdiff_t ldo, ptrdiff_t oy0, ptrdiff_t nout, ptrdiff_t OW,
    const FC_T *in, ptrdiff_t ldi, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
    ptrdiff_t pw, const FC_T *w, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t sh,
    ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, FC_T init, FC_T *scratch,
    ptrdiff_t scratch_len)
{
    const ptrdiff_t wp = (OW - 1) * sw + (KW - 1) * dw + 1; /* columns read */
    const ptrdiff_t halo = (KH - 1) * dh + 1;                /* rows per output row */
    const int padded = pw > 0 || wp - pw > W || ph > 0 || (oy0 + nout - 1) * sh - ph + halo > H;
    /* Output rows per chunk whose input rows fit the scratch. */
    ptrdiff_t chunk = wp > 0 ? (scratch_len / wp - halo) / sh + 1 : 0;
    if (!scratch || nout < 1 || !padded || chunk < 2 || sw != 1 || OW < FC_VL) {
        FC_CAT(FC_NAME, plane_rows)(out, ldo, oy0, nout, OW, in, ldi, H, W, ph, pw,
                                    w, KH, KW, sh, sw, dh, dw, init);
        return;
    }
    chunk &= ~(ptrdiff_t)1; /* whole row pairs */
    /* Scratch column c holds input column c - pw. */
    ptrdiff_t c0 = pw, c1 = pw + W;
    if (c1 > wp) c1 = wp;
    if (c0 > c1) c0 = c1;
    for (ptrdiff_t first = oy0; first < oy0 + nout; first += chunk) {
        const ptrdiff_t n = first + chunk < oy0 + nout ? chunk : oy0 + nout - first;
        const ptrdiff_t nr = (n - 1) * sh + halo;   /* rows read by this chunk */
        const ptrdiff_t iy0 = first * sh - ph;      /* scratch row 0 = input row iy0 */
        for (ptrdiff_t r = 0; r < nr; ++r) {
            FC_T *dst = scratch + r * wp;
            const ptrdiff_t iy = iy0 + r;
            if (iy < 0 || iy >= H) {
                __builtin_memset(dst, 0, (size_t)wp * sizeof(FC_T));
                continue;
            }
            const FC_T *src = in + iy * ldi - pw;
            __builtin_memset(dst, 0, (size_t)c0 * sizeof(FC_T));
            __builtin_memcpy(dst + c0, src + c0, (size_t)(c1 - c0) * sizeof(FC_T));
            __builtin_memset(dst + c1, 0, (size_t)(wp - c1) * sizeof(FC_T));
        }
        FC_CAT(FC_NAME, plane_interior)(out + first * ldo, ldo, n, OW, scratch, wp,
                                        w, KH, KW, sh, dh, dw, init);
    }
}

/* FC_VL x FC_VL transposes in registers, for the channel-blocked kernel's
 * output stores and weight packing: log2(FC_VL) stages, stage k swapping
 * bit k of the row index with bit k of the column index by two-source
 * shuffles of the row pairs (i, i + 2^k).  Stage k's shuffle indices:
 * lo takes row i's elements with bit k of the column clear and row
 * i + 2^k's with it set (shifted down by 2^k), hi the rest; the second
 * operand's elements are numbered FC_VL .. 2 FC_VL - 1. */
typedef FC_ITYPE FC_CAT(FC_NAME, ivec) __attribute__((vector_size(FC_VBYTES)));
#define FC_IVEC FC_CAT(FC_NAME, ivec)
#define FC_STAGES (FC_VL == 16 ? 4 : FC_VL == 8 ? 3 : FC_VL == 4 ? 2 : 1)

#define FC_LOI(k, j) (((j) & (1 << (k))) ? FC_VL + (j) - (1 << (k)) : (j))
#define FC_HII(k, j) (((j) & (1 << (k))) ? FC_VL + (j) : (j) + (1 << (k)))
#define FC_ROW16(F, k)                                                          \
    {F(k, 0), F(k, 1), F(k, 2), F(k, 3), F(k, 4), F(k, 5), F(k, 6), F(k, 7),    \
     F(k, 8), F(k, 9), F(k, 10), F(k, 11), F(k, 12), F(k, 13), F(k, 14), F(k, 15)}
/* Rows k < FC_STAGES, columns j < FC_VL are used; static tables rather than
 * computed vectors keep the indices out of the registers the kernel's
 * accumulators need. */
static const FC_ITYPE FC_CAT(FC_NAME, tlo)[4][16] = {
    FC_ROW16(FC_LOI, 0), FC_ROW16(FC_LOI, 1), FC_ROW16(FC_LOI, 2), FC_ROW16(FC_LOI, 3)};
static const FC_ITYPE FC_CAT(FC_NAME, thi)[4][16] = {
    FC_ROW16(FC_HII, 0), FC_ROW16(FC_HII, 1), FC_ROW16(FC_HII, 2), FC_ROW16(FC_HII, 3)};
#undef FC_ROW16
#undef FC_HII
#undef FC_LOI

FC_TARGET static inline void FC_CAT(FC_NAME, transpose_block)(FC_VEC *r)
{
    _Pragma("GCC unroll 4")
    for (int k = 0; k < FC_STAGES; ++k) {
        const int h = 1 << k;
        FC_IVEC lo, hi;
        __builtin_memcpy(&lo, FC_CAT(FC_NAME, tlo)[k], sizeof(lo));
        __builtin_memcpy(&hi, FC_CAT(FC_NAME, thi)[k], sizeof(hi));
        _Pragma("GCC unroll 16")
        for (int i = 0; i < FC_VL; ++i)
            if (!(i & h)) {
                const FC_VEC a = r[i], b = r[i + h];
                r[i] = __builtin_shuffle(a, b, lo);
                r[i + h] = __builtin_shuffle(a, b, hi);
            }
    }
}

/* out[l * ldo + u] = acc[u][l] for l < nvalid and u < n (n <= nacc): a
 * block of pixel vectors (lanes = output channels) stored as channel rows,
 * FC_VL pixels at a time through transpose_block (the element-wise stores
 * took about a fifth of the kernel's time on 3-channel 7x7 layers). */
FC_TARGET static inline void FC_CAT(FC_NAME, store_block)(FC_T *out, ptrdiff_t ldo,
                                                         ptrdiff_t nvalid, const FC_VEC *acc,
                                                         int nacc, ptrdiff_t n)
{
    for (int g = 0; g < nacc && g < n; g += FC_VL) {
        FC_VEC r[FC_VL];
        _Pragma("GCC unroll 16")
        for (int i = 0; i < FC_VL; ++i)
            r[i] = g + i < nacc ? acc[g + i] : (FC_VEC){0};
        FC_CAT(FC_NAME, transpose_block)(r);
        const ptrdiff_t cnt = n - g < FC_VL ? n - g : FC_VL;
        if (cnt == FC_VL) {
            for (ptrdiff_t l = 0; l < nvalid; ++l)
                __builtin_memcpy(out + l * ldo + g, &r[l], sizeof(FC_VEC));
        } else {
            for (ptrdiff_t l = 0; l < nvalid; ++l)
                __builtin_memcpy(out + l * ldo + g, &r[l], (size_t)cnt * sizeof(FC_T));
        }
    }
}

/* Channel-blocked direct kernel (the layout of oneDNN's direct convolutions):
 * the FC_VL lanes of a vector hold FC_VL output channels, and UR vectors of
 * accumulators hold UR consecutive output pixels of one row.  For every
 * (input channel, ky, kx) one vector of packed weights is loaded and
 * multiplied by UR broadcast input values, so each weight load feeds UR
 * FMAs and each input value FC_VL.  Rows go in blocks of FC_UR pixels (as
 * many accumulators as the registers hold), then at most one block each of
 * FC_UR/2 and FC_UR/4, then blocks of 4, so a row wastes at most 3 pixels
 * of work and rows of 14 or 7 pixels none.  The input is zero-padded by the
 * caller (no bounds checks) with at least 4 * sx values of slack after its
 * last row (a last block of 4 may read, unused, past it).
 *
 * out:   out[l * ldo + ox] receives output channel l (l < nvalid) of the row
 * x:     first input row the row's windows read, of input channel 0;
 *        channel c row ky is x + c * ldc + ky * dy * ldr
 * wp:    packed weights (C, KH, KW, FC_VL) of this block of output channels
 * bias:  FC_VL values (zero past nvalid)
 */
#if FC_VBYTES == 64
#define FC_UR 28 /* 28 accumulators + weights + broadcast of 32 registers */
#else
#define FC_UR 12 /* of 16 registers */
#endif
#define FC_BLOCKED_PIXELS(UR)                                                   \
    do {                                                                        \
        FC_VEC acc[UR];                                                         \
        _Pragma("GCC unroll 32")                                                \
        for (int u = 0; u < UR; ++u)                                            \
            acc[u] = b;                                                         \
        for (ptrdiff_t c = 0; c < C; ++c)                                       \
            for (ptrdiff_t ky = 0; ky < KH; ++ky) {                             \
                const FC_T *r = x + c * ldc + ky * dy * ldr + ox0 * sx;         \
                const FC_T *w = wp + (c * KH + ky) * KW * FC_VL;                \
                if (KH * KW == 1) {                                             \
                    /* the next block's input: one of C strided streams */    \
                    __builtin_prefetch(r + UR * sx, 0, 3);                      \
                    __builtin_prefetch(r + UR * sx + FC_VL, 0, 3);              \
                    __builtin_prefetch(r + 2 * UR * sx - 1, 0, 3);              \
                }                                                               \
                for (ptrdiff_t kx = 0; kx < KW; ++kx) {                         \
                    FC_VEC wv;                                                  \
                    FC_LOAD(wv, w + kx * FC_VL);                                \
                    const FC_T *p = r + kx * dx;                                \
                    if (sx == 1) {                                              \
                        _Pragma("GCC unroll 32")                                \
                        for (int u = 0; u < UR; ++u)                            \
                            acc[u] += wv * p[u];                                \
                    } else if (sx == 2) { /* constant offsets, no spills */     \
                        _Pragma("GCC unroll 32")                                \
                        for (int u = 0; u < UR; ++u)                            \
                            acc[u] += wv * p[2 * u];                            \
                    } else {                                                    \
                        _Pragma("GCC unroll 32")                                \
                        for (int u = 0; u < UR; ++u)                            \
                            acc[u] += wv * p[u * sx];                           \
                    }                                                           \
                }                                                               \
            }                                                                   \
        const ptrdiff_t n = OW - ox0 < UR ? OW - ox0 : UR;                      \
        FC_CAT(FC_NAME, store_block)(out + ox0, ldo, nvalid, acc, UR, n);         \
    } while (0)

FC_TARGET static void FC_CAT(FC_NAME, blocked)(FC_T *out, ptrdiff_t ldo, ptrdiff_t nvalid,
                                              const FC_T *x, ptrdiff_t C, ptrdiff_t ldc,
                                              ptrdiff_t ldr, const FC_T *wp, ptrdiff_t KH,
                                              ptrdiff_t KW, ptrdiff_t sx, ptrdiff_t dy,
                                              ptrdiff_t dx, ptrdiff_t OW, const FC_T *bias)
{
    FC_VEC b;
    FC_LOAD(b, bias);
    /* Blocks of FC_UR, FC_UR/2, FC_UR/4 pixels, then 4 or fewer: short rows
     * (14 or 7 pixels) use all their accumulators without waste. */
    ptrdiff_t ox0 = 0;
    for (; ox0 + FC_UR <= OW; ox0 += FC_UR)
        FC_BLOCKED_PIXELS(FC_UR);
    if (ox0 + FC_UR / 2 <= OW) {
        FC_BLOCKED_PIXELS(FC_UR / 2);
        ox0 += FC_UR / 2;
    }
    if (ox0 + FC_UR / 4 <= OW) {
        FC_BLOCKED_PIXELS(FC_UR / 4);
        ox0 += FC_UR / 4;
    }
    for (; ox0 < OW; ox0 += 4)
        FC_BLOCKED_PIXELS(4);
}
#undef FC_BLOCKED_PIXELS

/* The channel-blocked kernel on consecutive pixels q0 .. q0+nq-1 (nq <=
 * FC_UR) of the flattened output plane, for short rows (7 or 14 pixels)
 * whose rows alone would use few accumulators: the pixels may span rows,
 * each with its own input offset.  A full block uses FC_UR accumulators;
 * a shorter one (the plane's last) goes in blocks of FC_UR/2, FC_UR/4 and
 * 4 as the row version does, so a 7x7 plane (28 + 14 + 7) wastes nothing.
 * out[l*ldo + q] receives output channel l of pixel q; x is input channel
 * 0, row 0 of the padded image; other arguments as in the row version. */
#define FC_FLAT_PIXELS(UR)                                                      \
    do {                                                                        \
        const ptrdiff_t n = q1 - q < UR ? q1 - q : UR;                          \
        ptrdiff_t off[UR];                                                      \
        for (int u = 0; u < UR; ++u) {                                          \
            const ptrdiff_t qu = q + (u < n ? u : n - 1);                       \
            off[u] = (qu / OW) * sy * ldr + (qu % OW) * sx;                     \
        }                                                                       \
        FC_VEC acc[UR];                                                         \
        _Pragma("GCC unroll 32")                                                \
        for (int u = 0; u < UR; ++u)                                            \
            acc[u] = b;                                                         \
        for (ptrdiff_t c = 0; c < C; ++c)                                       \
            for (ptrdiff_t ky = 0; ky < KH; ++ky) {                             \
                const FC_T *r = x + c * ldc + ky * dy * ldr;                    \
                const FC_T *w = wp + (c * KH + ky) * KW * FC_VL;                \
                for (ptrdiff_t kx = 0; kx < KW; ++kx) {                         \
                    FC_VEC wv;                                                  \
                    FC_LOAD(wv, w + kx * FC_VL);                                \
                    const FC_T *p = r + kx * dx;                                \
                    _Pragma("GCC unroll 32")                                    \
                    for (int u = 0; u < UR; ++u)                                \
                        acc[u] += wv * p[off[u]];                               \
                }                                                               \
            }                                                                   \
        FC_CAT(FC_NAME, store_block)(out + q, ldo, nvalid, acc, UR, n);           \
        q += n;                                                                 \
    } while (0)

FC_TARGET static void FC_CAT(FC_NAME, blocked_flat)(FC_T *out, ptrdiff_t ldo, ptrdiff_t nvalid,
                                                   const FC_T *x, ptrdiff_t C, ptrdiff_t ldc,
                                                   ptrdiff_t ldr, const FC_T *wp, ptrdiff_t KH,
                                                   ptrdiff_t KW, ptrdiff_t sy, ptrdiff_t sx,
                                                   ptrdiff_t dy, ptrdiff_t dx, ptrdiff_t OW,
                                                   ptrdiff_t q0, ptrdiff_t nq, const FC_T *bias)
{
    FC_VEC b;
    FC_LOAD(b, bias);
    ptrdiff_t q = q0;
    const ptrdiff_t q1 = q0 + nq;
    if (q1 - q >= FC_UR)
        FC_FLAT_PIXELS(FC_UR);
    if (q1 - q >= FC_UR / 2)
        FC_FLAT_PIXELS(FC_UR / 2);
    if (q1 - q >= FC_UR / 4)
        FC_FLAT_PIXELS(FC_UR / 4);
    while (q < q1)
        FC_FLAT_PIXELS(4);
}
#undef FC_FLAT_PIXELS
#undef FC_UR

/* Lane packing of the channel-blocked kernel's weights: dst[t * ldd + l]
 * = src[l * lds + t] for t < T and l < nvalid, 0 for nvalid <= l < FC_VL
 * (a (nvalid, T) block transposed to (T, FC_VL) with row stride ldd >=
 * FC_VL; ldd = FC_VL packs, a larger ldd is one block of a transpose), in
 * FC_VL x FC_VL register blocks (transpose_block).  The scalar transpose it
 * replaces ran at a quarter of the memory bandwidth on 512x512x3x3
 * weights. */
FC_TARGET static void FC_CAT(FC_NAME, pack_lanes)(FC_T *restrict dst, ptrdiff_t ldd,
                                                 const FC_T *restrict src,
                                                 ptrdiff_t lds, ptrdiff_t nvalid,
                                                 ptrdiff_t T)
{
    ptrdiff_t t0 = 0;
    for (; t0 + FC_VL <= T; t0 += FC_VL) {
        FC_VEC r[FC_VL];
        _Pragma("GCC unroll 16")
        for (int l = 0; l < FC_VL; ++l) {
            if (l < nvalid)
                FC_LOAD(r[l], src + l * lds + t0);
            else
                r[l] = (FC_VEC){0};
        }
        FC_CAT(FC_NAME, transpose_block)(r);
        _Pragma("GCC unroll 16")
        for (int j = 0; j < FC_VL; ++j)
            __builtin_memcpy(dst + (t0 + j) * ldd, &r[j], sizeof(FC_VEC));
    }
    for (; t0 < T; ++t0)
        for (ptrdiff_t l = 0; l < FC_VL; ++l)
            dst[t0 * ldd + l] = l < nvalid ? src[l * lds + t0] : 0;
}

#undef FC_STAGES
#undef FC_IVEC
#undef FC_INTERIOR
#undef FC_BLOCK
#undef FC_TAPS1
#undef FC_OFF
#undef FC_LOAD
#undef FC_VEC
#undef FC_NV
#undef FC_VL
