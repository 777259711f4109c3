/*
 * fc_im2col_impl.h -- the im2col tile kernel, one instantiation per dtype.
 * Included by fc_kernels.c with FC_T (the C type) and FC_SFX (the name
 * suffix) defined.  Do not include it anywhere else.
 */
#define FC_FN(name) FC_CAT(name, FC_SFX)

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

#undef FC_FN
