/*
 * fc_im2col_impl.h -- the im2col tile kernel, one instantiation per dtype.
 * Included by fc_kernels.c with FC_T (the C type) and FC_SFX (the name
 * suffix) defined.  Do not include it anywhere else.
 */
#define FC_FN(name) FC_CAT(name, FC_SFX)

FC_MULTIVERSION void FC_FN(fc_im2col_tile)(FC_T *col, ptrdiff_t ld, const FC_T *x,
                                           const fc_geometry *g, ptrdiff_t p0, ptrdiff_t P,
                                           ptrdiff_t k0, ptrdiff_t k1)
{
    const ptrdiff_t ohw = g->OH * g->OW;
    const ptrdiff_t od0 = p0 / ohw, oy0 = (p0 % ohw) / g->OW, ox0 = p0 % g->OW;

    for (ptrdiff_t k = k0; k < k1; ++k) {
        ptrdiff_t t = k;
        const ptrdiff_t kx = t % g->KW; t /= g->KW;
        const ptrdiff_t ky = t % g->KH; t /= g->KH;
        const ptrdiff_t kd = t % g->KD;
        const ptrdiff_t c = t / g->KD;
        const FC_T *xc = x + c * g->D * g->H * g->W;
        FC_T *dst = col + k * ld;
        ptrdiff_t od = od0, oy = oy0, ox = ox0, j = 0;
        while (j < P) {
            ptrdiff_t n = g->OW - ox;
            if (n > P - j) n = P - j;
            const ptrdiff_t id = od * g->sd - g->pd + kd * g->dd;
            const ptrdiff_t iy = oy * g->sh - g->ph + ky * g->dh;
            FC_T *restrict d = dst + j;
            if (id < 0 || id >= g->D || iy < 0 || iy >= g->H) {
                for (ptrdiff_t i = 0; i < n; ++i) d[i] = 0;
            } else {
                /* Columns i in [a, b) read inside the row, the rest are padding:
                 * ix = ixs + i*sw in [0, W). */
                const FC_T *restrict row = xc + (id * g->H + iy) * g->W;
                const ptrdiff_t sw = g->sw;
                const ptrdiff_t ixs = ox * sw - g->pw + kx * g->dw;
                ptrdiff_t a = ixs >= 0 ? 0 : (-ixs + sw - 1) / sw;
                ptrdiff_t b = ixs >= g->W ? 0 : (g->W - ixs + sw - 1) / sw;
                if (a > n) a = n;
                if (b > n) b = n;
                if (b < a) b = a;
                for (ptrdiff_t i = 0; i < a; ++i) d[i] = 0;
                if (sw == 1) {
                    const FC_T *restrict src = row + ixs;
                    for (ptrdiff_t i = a; i < b; ++i) d[i] = src[i];
                } else {
                    for (ptrdiff_t i = a; i < b; ++i) d[i] = row[ixs + i * sw];
                }
                for (ptrdiff_t i = b; i < n; ++i) d[i] = 0;
            }
            j += n;
            ox = 0;
            if (++oy == g->OH) { oy = 0; ++od; }
        }
    }
}

#undef FC_FN
