/*
 * fc_kernels_impl.h -- dtype template for fc_kernels.c.
 *
 * Included once per dtype with FC_T (the C type) and FC_SFX (the name
 * suffix) defined.  Do not include it anywhere else.
 */
#define FC_CAT2(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT2(a, b)
#define FC_FN(name) FC_CAT(name, FC_SFX)
#define FC_VL ((ptrdiff_t)(FC_VBYTES / sizeof(FC_T)))

typedef FC_T FC_CAT(fc_vec, FC_SFX) __attribute__((vector_size(FC_VBYTES)));
#define FC_VEC FC_CAT(fc_vec, FC_SFX)

/* Checked scalar columns [a, b): used at the padded borders and for tails. */
static void FC_FN(fc_row_checked)(FC_T *out, ptrdiff_t a, ptrdiff_t b,
                                  const FC_T **rows, const FC_T **wrows,
                                  ptrdiff_t nrows, ptrdiff_t KW, ptrdiff_t W,
                                  ptrdiff_t pad, ptrdiff_t sx, ptrdiff_t dx,
                                  FC_T init)
{
    for (ptrdiff_t ox = a; ox < b; ++ox) {
        const ptrdiff_t base = ox * sx - pad;
        FC_T s = init;
        for (ptrdiff_t r = 0; r < nrows; ++r) {
            const FC_T *row = rows[r];
            const FC_T *w = wrows[r];
            for (ptrdiff_t kx = 0; kx < KW; ++kx) {
                const ptrdiff_t ix = base + kx * dx;
                if (ix >= 0 && ix < W)
                    s += w[kx] * row[ix];
            }
        }
        out[ox] = s;
    }
}

/* Stride-1 interior block of NV vectors starting at column ox. */
#define FC_BLOCK(NV)                                                        \
    do {                                                                    \
        FC_VEC acc[NV];                                                     \
        for (int u = 0; u < NV; ++u)                                        \
            acc[u] = vinit;                                                 \
        for (ptrdiff_t r = 0; r < nrows; ++r) {                             \
            const FC_T *src = rows[r] + ox - pad;                           \
            const FC_T *w = wrows[r];                                       \
            for (ptrdiff_t kx = 0; kx < KW; ++kx) {                         \
                const FC_VEC wv = zero + w[kx];                             \
                const FC_T *p = src + kx * dx;                              \
                for (int u = 0; u < NV; ++u) {                              \
                    FC_VEC v;                                               \
                    __builtin_memcpy(&v, p + u * FC_VL, sizeof v);          \
                    acc[u] += wv * v;                                       \
                }                                                           \
            }                                                               \
        }                                                                   \
        __builtin_memcpy(out + ox, acc, sizeof acc);                        \
    } while (0)

FC_MULTIVERSION
void FC_FN(fc_conv_row)(FC_T *out, ptrdiff_t OW, const FC_T **rows,
                        const FC_T **wrows, ptrdiff_t nrows, ptrdiff_t KW,
                        ptrdiff_t W, ptrdiff_t pad, ptrdiff_t sx, ptrdiff_t dx,
                        FC_T init)
{
    /* Interior columns [lo, hi): every tap ox*sx - pad + kx*dx is in [0, W). */
    ptrdiff_t lo = (pad + sx - 1) / sx;
    const ptrdiff_t last = W - 1 + pad - (KW - 1) * dx;
    ptrdiff_t hi = last < 0 ? 0 : last / sx + 1;
    if (lo > OW) lo = OW;
    if (hi > OW) hi = OW;
    if (hi < lo) hi = lo;

    FC_FN(fc_row_checked)(out, 0, lo, rows, wrows, nrows, KW, W, pad, sx, dx, init);
    FC_FN(fc_row_checked)(out, hi, OW, rows, wrows, nrows, KW, W, pad, sx, dx, init);

    if (sx != 1) {
        for (ptrdiff_t ox = lo; ox < hi; ++ox) {
            const ptrdiff_t base = ox * sx - pad;
            FC_T s = init;
            for (ptrdiff_t r = 0; r < nrows; ++r) {
                const FC_T *row = rows[r] + base;
                const FC_T *w = wrows[r];
                for (ptrdiff_t kx = 0; kx < KW; ++kx)
                    s += w[kx] * row[kx * dx];
            }
            out[ox] = s;
        }
        return;
    }

    const FC_VEC zero = {0};
    const FC_VEC vinit = zero + init;
    ptrdiff_t ox = lo;
    for (; ox + 4 * FC_VL <= hi; ox += 4 * FC_VL)
        FC_BLOCK(4);
    for (; ox + FC_VL <= hi; ox += FC_VL)
        FC_BLOCK(1);
    if (ox < hi) {
        if (hi - lo >= FC_VL) {
            /* Ragged tail: recompute one full vector ending at hi; the
             * overlapping columns get the same values again. */
            ox = hi - FC_VL;
            FC_BLOCK(1);
        } else {
            FC_FN(fc_row_checked)(out, ox, hi, rows, wrows, nrows, KW, W, pad,
                                  sx, dx, init);
        }
    }
}
#undef FC_BLOCK

void FC_FN(fc_im2col_tile)(FC_T *col, const FC_T *x, const fc_geometry *g,
                           ptrdiff_t p0, ptrdiff_t P)
{
    const ptrdiff_t K = g->C * g->KD * g->KH * g->KW;
    const ptrdiff_t ohw = g->OH * g->OW;
    const ptrdiff_t od0 = p0 / ohw, oy0 = (p0 % ohw) / g->OW, ox0 = p0 % g->OW;

    for (ptrdiff_t k = 0; k < K; ++k) {
        ptrdiff_t t = k;
        const ptrdiff_t kx = t % g->KW; t /= g->KW;
        const ptrdiff_t ky = t % g->KH; t /= g->KH;
        const ptrdiff_t kd = t % g->KD;
        const ptrdiff_t c = t / g->KD;
        const FC_T *xc = x + c * g->D * g->H * g->W;
        FC_T *dst = col + k * P;
        ptrdiff_t od = od0, oy = oy0, ox = ox0, j = 0;
        while (j < P) {
            ptrdiff_t n = g->OW - ox;
            if (n > P - j) n = P - j;
            const ptrdiff_t id = od * g->sd - g->pd + kd * g->dd;
            const ptrdiff_t iy = oy * g->sh - g->ph + ky * g->dh;
            FC_T *d = dst + j;
            if (id < 0 || id >= g->D || iy < 0 || iy >= g->H) {
                for (ptrdiff_t i = 0; i < n; ++i) d[i] = 0;
            } else {
                const FC_T *row = xc + (id * g->H + iy) * g->W;
                const ptrdiff_t ixs = ox * g->sw - g->pw + kx * g->dw;
                if (g->sw == 1) {
                    ptrdiff_t a = -ixs, b = g->W - ixs;
                    if (a < 0) a = 0;
                    if (a > n) a = n;
                    if (b > n) b = n;
                    if (b < a) b = a;
                    for (ptrdiff_t i = 0; i < a; ++i) d[i] = 0;
                    if (b > a)
                        __builtin_memcpy(d + a, row + ixs + a, (size_t)(b - a) * sizeof(FC_T));
                    for (ptrdiff_t i = b; i < n; ++i) d[i] = 0;
                } else {
                    for (ptrdiff_t i = 0; i < n; ++i) {
                        const ptrdiff_t ix = ixs + i * g->sw;
                        d[i] = (ix >= 0 && ix < g->W) ? row[ix] : (FC_T)0;
                    }
                }
            }
            j += n;
            ox = 0;
            if (++oy == g->OH) { oy = 0; ++od; }
        }
    }
}

#undef FC_VEC
#undef FC_VL
#undef FC_FN
#undef FC_CAT
#undef FC_CAT2
