/*
 * fc_col2im_impl.h -- the col2im tile kernel (the adjoint of fc_im2col_tile),
 * one instantiation per dtype.  Included by fc_kernels.c with FC_T (the C
 * type) and FC_SFX (the name suffix) defined, after fc_im2col_impl.h.  Do
 * not include it anywhere else.
 */
#define FC_FN(name) FC_CAT(name, FC_SFX)

/* Segments of the tile: runs of consecutive output pixels (od, oy, ox..)
 * in one row of the forward convolution's output grid.  BODY runs per
 * segment with k, kx, xc (channel c of x), id, iy (the input row the
 * segment's taps land on, inside the image), ox, n and s (the segment's
 * n values of row k of col). */
#define FC_SEGMENTS(LDR, PER_K, BODY)                                           \
    do {                                                                        \
        const ptrdiff_t ohw = g->OH * g->OW;                                    \
        const ptrdiff_t od0 = p0 / ohw, oy0 = (p0 % ohw) / g->OW;               \
        const ptrdiff_t ox0 = p0 % g->OW;                                       \
        for (ptrdiff_t k = k0; k < k1; ++k) {                                   \
            ptrdiff_t t = k;                                                    \
            const ptrdiff_t kx = t % g->KW; t /= g->KW;                         \
            const ptrdiff_t ky = t % g->KH; t /= g->KH;                         \
            const ptrdiff_t kd = t % g->KD;                                     \
            const ptrdiff_t c = t / g->KD;                                      \
            FC_T *xc = x + c * g->D * g->H * (LDR);                             \
            const FC_T *src_row = col + k * P;                                  \
            PER_K                                                               \
            ptrdiff_t od = od0, oy = oy0, ox = ox0, j = 0;                      \
            while (j < P) {                                                     \
                ptrdiff_t n = g->OW - ox;                                       \
                if (n > P - j) n = P - j;                                       \
                const ptrdiff_t id = od * g->sd - g->pd + kd * g->dd;           \
                const ptrdiff_t iy = oy * g->sh - g->ph + ky * g->dh;           \
                if (id >= 0 && id < g->D && iy >= 0 && iy < g->H) {             \
                    const FC_T *restrict s = src_row + j;                       \
                    BODY                                                        \
                }                                                               \
                j += n;                                                         \
                ox = 0;                                                         \
                if (++oy == g->OH) { oy = 0; ++od; }                            \
            }                                                                   \
        }                                                                       \
    } while (0)

FC_MULTIVERSION void FC_FN(fc_col2im_tile)(FC_T *x, const FC_T *col, const fc_geometry *g,
                           ptrdiff_t p0, ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1)
{
    const ptrdiff_t sw = g->sw;
    FC_SEGMENTS(g->W, , {
        /* Columns i in [a, b) land inside the row; the others fall into
         * the padding and are dropped: ix = ixs + i*sw in [0, W). */
        FC_T *restrict row = xc + (id * g->H + iy) * g->W;
        const ptrdiff_t ixs = ox * sw - g->pw + kx * g->dw;
        ptrdiff_t a = ixs >= 0 ? 0 : (-ixs + sw - 1) / sw;
        ptrdiff_t b = ixs >= g->W ? 0 : (g->W - ixs + sw - 1) / sw;
        if (a > n) a = n;
        if (b > n) b = n;
        if (sw == 1) {
            FC_T *restrict dst = row + ixs;
            for (ptrdiff_t i = a; i < b; ++i) dst[i] += s[i];
        } else {
            for (ptrdiff_t i = a; i < b; ++i) row[ixs + i * sw] += s[i];
        }
    });
}

/* Phase-split rows (sw > 1): a row of x holds sw runs of fc_split_run(g)
 * elements, run q the columns ix = q + sw * (m - lead) for its elements
 * m, lead = ceil(pw / sw) of them left of column 0 and as many right of
 * column W - 1 as the taps reach: every tap lands in its run, so a
 * segment's adds are one unit-stride loop with no clipping, no division
 * and no scalar remainder (on a k4 s2 transposed convolution the strided
 * adds with their per-segment clipping took a tenth of the time). */
static inline ptrdiff_t FC_FN(split_lead)(const fc_geometry *g)
{
    return (g->pw + g->sw - 1) / g->sw;
}

FC_MULTIVERSION ptrdiff_t FC_FN(fc_split_run)(const fc_geometry *g)
{
    const ptrdiff_t reach = (g->OW - 1) * g->sw - g->pw + (g->KW - 1) * g->dw;
    const ptrdiff_t last = reach >= 0 ? reach / g->sw : 0;  /* floor, in columns/sw */
    const ptrdiff_t wq = (g->W + g->sw - 1) / g->sw;
    return FC_FN(split_lead)(g) + (last + 1 > wq ? last + 1 : wq);
}

FC_MULTIVERSION void FC_FN(fc_col2im_tile_split)(FC_T *x, const FC_T *col,
                                                 const fc_geometry *g, ptrdiff_t p0,
                                                 ptrdiff_t P, ptrdiff_t k0, ptrdiff_t k1)
{
    const ptrdiff_t sw = g->sw, run = FC_FN(fc_split_run)(g), lead = FC_FN(split_lead)(g);
    FC_SEGMENTS(sw * run,
        /* column ox*sw + ix0 is element lead + mb + ox of run q */
        const ptrdiff_t ix0 = kx * g->dw - g->pw;
        const ptrdiff_t q = ((ix0 % sw) + sw) % sw;
        const ptrdiff_t off = q * run + lead + (ix0 - q) / sw;,
    {
        FC_T *restrict dst = xc + (id * g->H + iy) * sw * run + off + ox;
        for (ptrdiff_t i = 0; i < n; ++i) dst[i] += s[i];
    });
}

/* out[r*W + ix] = xs[r*sw*run + (ix % sw)*run + lead + ix / sw] for the rows
 * r < rows of a phase-split image (fc_col2im_tile_split): plain rows again. */
FC_MULTIVERSION void FC_FN(fc_unsplit_rows)(FC_T *out, const FC_T *xs, ptrdiff_t rows,
                                            const fc_geometry *g)
{
    const ptrdiff_t W = g->W, sw = g->sw;
    const ptrdiff_t run = FC_FN(fc_split_run)(g), lead = FC_FN(split_lead)(g);
    for (ptrdiff_t r = 0; r < rows; ++r) {
        const FC_T *restrict src = xs + r * sw * run + lead;
        FC_T *restrict dst = out + r * W;
        if (sw == 2) {
            const ptrdiff_t half = W / 2;
            for (ptrdiff_t m = 0; m < half; ++m) {
                dst[2 * m] = src[m];
                dst[2 * m + 1] = src[run + m];
            }
            if (W & 1) dst[W - 1] = src[half];
        } else {
            for (ptrdiff_t q = 0; q < sw; ++q)
                for (ptrdiff_t m = 0; q + m * sw < W; ++m)
                    dst[q + m * sw] = src[q * run + m];
        }
    }
}
#undef FC_SEGMENTS

#undef FC_FN
