/*
 * fc_winograd_impl.h -- Winograd F(m x m, r x r) input and output tile
 * transforms, one instantiation per (dtype, m, r): F(2x2,3x3), F(4x4,3x3),
 * F(2x2,5x5) and F(3x3,2x2).  Included by fc_kernels.c with FC_T (the C type), FC_SFX
 * (name suffix, e.g. f32_m4), FC_M (output tile size), FC_R (filter size)
 * and FC_BT, FC_AT, FC_G (the transform matrices, FC_A = FC_M + FC_R - 1
 * points) defined.  Do not include it anywhere else.
 *
 * The transforms are separable (B^T d B, A^T m A, A u A^T) and run one tile
 * row at a time with every tile of the row processed together, so each step
 * is a loop over columns or tiles that the compiler vectorises:
 *   input : zero-padded rows -> vertical B^T (over columns) -> horizontal B
 *           (over tiles, reading columns tw*m + j);
 *   output: horizontal A^T (over tiles) -> vertical A^T -> interleaved store;
 * rows of at most half a vector of tiles go several at a time instead
 * (fc_wino_input_block / fc_wino_output_block: the block's tiles gathered
 * into a*a streams, both passes over all of them);
 *   grad_output (the weight gradient's F(3 x 3, m x m), 3x3 filters only,
 *           see below): zero-padded m x m blocks of the output gradient ->
 *           vertical A (over columns) -> horizontal A (over tiles).
 * B^T depends only on the interpolation points, so F(2x2,5x5) shares
 * F(4x4,3x3)'s six points (0, +-1, +-2, inf) and its input transform, and
 * F(3x3,2x2) F(2x2,3x3)'s four (0, +-1, inf).
 */
#define FC_A (FC_M + FC_R - 1)
/* The helpers of the multiversioned entry points below are always inlined,
 * so each instruction-set clone gets its own vectorised copy (an outlined
 * static function would be compiled for the baseline target only). */
#ifndef FC_WINLINE
#if defined(__GNUC__)
#define FC_WINLINE static inline __attribute__((always_inline))
#else
#define FC_WINLINE static inline
#endif
#endif
#define FC_WFN(name) FC_CAT(name, FC_SFX)

/* The 1-D transforms written out (Lavin & Gray's matrices with common
 * subexpressions shared): B^T d for a points d0..d(a-1), and A^T s for a
 * points s0..s(a-1).  Multiplications by the matrices' zeros are never
 * issued. */
#if FC_A == 4
#define FC_BT_APPLY(D, O)                                                       \
    do {                                                                        \
        O(0, D(0) - D(2));                                                      \
        O(1, D(1) + D(2));                                                      \
        O(2, D(2) - D(1));                                                      \
        O(3, D(1) - D(3));                                                      \
    } while (0)
#else
#define FC_BT_APPLY(D, O)                                                       \
    do {                                                                        \
        const FC_T q12 = D(1) + D(2), q34 = D(3) + D(4);                        \
        const FC_T p12 = D(1) - D(2), p43 = D(4) - D(3);                        \
        const FC_T p13 = D(1) - D(3), p42 = D(4) - D(2);                        \
        O(0, 4 * D(0) - 5 * D(2) + D(4));                                       \
        O(1, q34 - 4 * q12);                                                    \
        O(2, p43 + 4 * p12);                                                    \
        O(3, p42 - 2 * p13);                                                    \
        O(4, p42 + 2 * p13);                                                    \
        O(5, 4 * D(1) - 5 * D(3) + D(5));                                       \
    } while (0)
#endif

#if FC_M == 2 && FC_A == 4
#define FC_AT_APPLY(S, O)                                                       \
    do {                                                                        \
        O(0, S(0) + S(1) + S(2));                                               \
        O(1, S(1) - S(2) - S(3));                                               \
    } while (0)
#elif FC_M == 3 /* && FC_A == 4: F(3, 2) */
#define FC_AT_APPLY(S, O)                                                       \
    do {                                                                        \
        const FC_T a12 = S(1) + S(2);                                           \
        O(0, S(0) + a12);                                                       \
        O(1, S(1) - S(2));                                                      \
        O(2, a12 - S(3));                                                       \
    } while (0)
#elif FC_M == 4 && FC_A == 6
#define FC_AT_APPLY(S, O)                                                       \
    do {                                                                        \
        const FC_T a12 = S(1) + S(2), s12 = S(1) - S(2);                        \
        const FC_T a34 = S(3) + S(4), s34 = S(3) - S(4);                        \
        O(0, S(0) + a12 + a34);                                                 \
        O(1, s12 + 2 * s34);                                                    \
        O(2, a12 + 4 * a34);                                                    \
        O(3, s12 + 8 * s34 + S(5));                                             \
    } while (0)
#else /* FC_M == 2 && FC_A == 6: F(2, 5) */
#define FC_AT_APPLY(S, O)                                                       \
    do {                                                                        \
        const FC_T a12 = S(1) + S(2), s12 = S(1) - S(2);                        \
        const FC_T a34 = S(3) + S(4), s34 = S(3) - S(4);                        \
        O(0, S(0) + a12 + a34);                                                 \
        O(1, s12 + 2 * s34 + S(5));                                             \
    } while (0)
#endif

/* A u for the weight gradient's F(3 x 3, m x m), 3x3 filters only. */
#if FC_R == 3 && FC_M == 2
#define FC_A_APPLY(S, O)                                                        \
    do {                                                                        \
        O(0, S(0));                                                             \
        O(1, S(0) + S(1));                                                      \
        O(2, S(0) - S(1));                                                      \
        O(3, -S(1));                                                            \
    } while (0)
#elif FC_R == 3
#define FC_A_APPLY(S, O)                                                        \
    do {                                                                        \
        const FC_T e02 = S(0) + S(2), o13 = S(1) + S(3);                        \
        const FC_T e4 = S(0) + 4 * S(2), o8 = 2 * S(1) + 8 * S(3);              \
        O(0, S(0));                                                             \
        O(1, e02 + o13);                                                        \
        O(2, e02 - o13);                                                        \
        O(3, e4 + o8);                                                          \
        O(4, e4 - o8);                                                          \
        O(5, S(3));                                                             \
    } while (0)
#endif

/* rows[i*Wt + c] = plane[y0 + i][x0 + c] for i < nrows and c < Wp, zero
 * where that falls outside the H x W plane and for Wp <= c < Wt. */
static inline void FC_WFN(fc_wino_rows)(const FC_T *plane, ptrdiff_t H, ptrdiff_t W,
                                        ptrdiff_t y0, ptrdiff_t x0, int nrows, ptrdiff_t Wp,
                                        ptrdiff_t Wt, FC_T *rows)
{
    ptrdiff_t c0 = x0 < 0 ? -x0 : 0, c1 = W - x0;
    if (c1 > Wp) c1 = Wp;
    for (int i = 0; i < nrows; ++i) {
        FC_T *r = rows + i * Wt;
        const ptrdiff_t y = y0 + i;
        if (y < 0 || y >= H || c1 <= c0) {
            memset(r, 0, (size_t)Wt * sizeof(FC_T));
            continue;
        }
        memset(r, 0, (size_t)c0 * sizeof(FC_T));
        memcpy(r + c0, plane + y * W + x0 + c0, (size_t)(c1 - c0) * sizeof(FC_T));
        memset(r + c1, 0, (size_t)(Wt - c1) * sizeof(FC_T));
    }
}

/* The tile-transform passes, each a loop over columns or tiles that the
 * compiler vectorises.  Each of a pass's a (or m) streams is a
 * restrict-qualified parameter of its own: with one base pointer and six
 * row offsets GCC 12 vectorises none of the a = 6 passes ("no vectype"),
 * and without restrict it gives up on the run-time alias checks.  The
 * loops over a row's tW tiles run to FC_VPAD(tW), a whole number of 64-byte
 * vectors: rows of 4-14 tiles (7x7 to 56x56 maps) would otherwise run
 * mostly in the scalar remainder loop.  The extra tiles read zero padding
 * or neighbouring data and are never stored to the image; the caller
 * leaves room for them (see fc_kernels.h). */
#define FC_VW ((ptrdiff_t)(64 / sizeof(FC_T)))
#define FC_VPAD(n) (((n) + FC_VW - 1) / FC_VW * FC_VW)
/* Stream i of the pass's pointer family n, and the parameter lists (Q the
 * qualified pointer type) and arguments (rows of b, s apart) for 4 or 6
 * streams; FC_PA/FC_RA have a streams, FC_PM/FC_RM m streams. */
#define FC_ST2(n, i) n##i
#define FC_ST(n, i) FC_ST2(n, i)
#define FC_P2(Q, n) Q n##0, Q n##1
#define FC_P3(Q, n) FC_P2(Q, n), Q n##2
#define FC_P4(Q, n) FC_P3(Q, n), Q n##3
#define FC_P6(Q, n) FC_P4(Q, n), Q n##4, Q n##5
#define FC_R2(b, s) (b), (b) + (s)
#define FC_R3(b, s) FC_R2(b, s), (b) + 2 * (s)
#define FC_R4(b, s) FC_R3(b, s), (b) + 3 * (s)
#define FC_R6(b, s) FC_R4(b, s), (b) + 4 * (s), (b) + 5 * (s)
#if FC_A == 4
#define FC_PA FC_P4
#define FC_RA FC_R4
#else
#define FC_PA FC_P6
#define FC_RA FC_R6
#endif
#if FC_M == 2
#define FC_PM FC_P2
#define FC_RM FC_R2
#elif FC_M == 3
#define FC_PM FC_P3
#define FC_RM FC_R3
#else
#define FC_PM FC_P4
#define FC_RM FC_R4
#endif

/* t_i[c] = (B^T d)[i] for the n columns c of the a rows d_0 .. d_(a-1). */
static inline void FC_WFN(fc_wino_bt_cols)(FC_PA(const FC_T *restrict, d),
                                           FC_PA(FC_T *restrict, t), ptrdiff_t n)
{
#define FC_D(i) FC_ST(d, i)[c]
#define FC_O(i, v) FC_ST(t, i)[c] = (v)
    for (ptrdiff_t c = 0; c < n; ++c)
        FC_BT_APPLY(FC_D, FC_O);
#undef FC_D
#undef FC_O
}

/* ph[p*np + k] = tx[k*m + p]: a row of np*m columns split by column phase,
 * so that tile tw's column tw*m + j is ph[(j % m)*np + tw + j / m]. */
static inline void FC_WFN(fc_wino_phases)(const FC_T *restrict tx, FC_T *restrict ph,
                                          ptrdiff_t np)
{
    for (ptrdiff_t k = 0; k < np; ++k)
        for (int p = 0; p < FC_M; ++p)
            ph[p * np + k] = tx[k * FC_M + p];
}

/* v_nu[tw] = (row B)[nu] over the columns tw*m .. tw*m + a - 1 of a row
 * split by phase (ph, np columns per phase), for tw < tWv: every read is
 * unit-stride in tw. */
static inline void FC_WFN(fc_wino_bt_tiles)(const FC_T *restrict ph, ptrdiff_t np,
                                            FC_PA(FC_T *restrict, v), ptrdiff_t tWv)
{
#define FC_D(j) ph[((j) % FC_M) * np + tw + (j) / FC_M]
#define FC_O(nu, val) FC_ST(v, nu)[tw] = (val)
    for (ptrdiff_t tw = 0; tw < tWv; ++tw)
        FC_BT_APPLY(FC_D, FC_O);
#undef FC_D
#undef FC_O
}

FC_WINLINE void FC_WFN(fc_wino_input_row)(const FC_T *x, ptrdiff_t H, ptrdiff_t W,
                                             ptrdiff_t y0, ptrdiff_t x0, ptrdiff_t tW,
                                             FC_T *V, ptrdiff_t plane, FC_T *scratch)
{
    const ptrdiff_t Wp = tW * FC_M + FC_R - 1;    /* input columns the row of tiles reads */
    const ptrdiff_t tWv = FC_VPAD(tW);
    /* columns the padded tile loop reads, in whole tiles: (tWv + e) * m */
    const ptrdiff_t Wt = (tWv + (FC_R - 1 + FC_M - 1) / FC_M) * FC_M;
    FC_T *rows = scratch;                     /* FC_A x Wt; then the phase-split row */
    FC_T *t = rows + FC_A * Wt;               /* FC_A x Wt, vertical transform */

    FC_WFN(fc_wino_rows)(x, H, W, y0, x0, FC_A, Wp, Wt, rows);
    FC_WFN(fc_wino_bt_cols)(FC_RA(rows, Wt), FC_RA(t, Wt), Wt);
    for (int xi = 0; xi < FC_A; ++xi) {
        FC_WFN(fc_wino_phases)(t + xi * Wt, rows, Wt / FC_M);
        FC_WFN(fc_wino_bt_tiles)(rows, Wt / FC_M, FC_RA(V + xi * FC_A * plane, plane), tWv);
    }
}

/* Maps whose rows hold at most half a vector of tiles (7x7 and 14x14 maps
 * with m = 2: 4 and 7 tiles) would leave most lanes of the row version
 * idle.  Here the nty rows' T = nty*tW tiles go together: the
 * zero-padded window is copied once, each tile's a x a patch gathered into
 * a*a streams over the tiles (d_ij[k] = patch (i, j) of tile k), and both
 * passes of B^T d B run over all T tiles (rounded up to whole vectors). */
FC_WINLINE void FC_WFN(fc_wino_input_block)(const FC_T *x, ptrdiff_t H, ptrdiff_t W,
                                               ptrdiff_t y0, ptrdiff_t x0, ptrdiff_t tW,
                                               ptrdiff_t nty, FC_T *V, ptrdiff_t plane,
                                               FC_T *scratch)
{
    const ptrdiff_t Wp = tW * FC_M + FC_R - 1, Hp = nty * FC_M + FC_R - 1;
    const ptrdiff_t T = nty * tW, Tv = FC_VPAD(T);
    FC_T *win = scratch;                      /* Hp x Wp window */
    FC_T *d = win + Hp * Wp;                  /* a*a streams of Tv tiles */
    FC_T *t = d + FC_A * FC_A * Tv;           /* a*a streams: vertical transform */

    FC_WFN(fc_wino_rows)(x, H, W, y0, x0, (int)Hp, Wp, Wp, win);
    for (int i = 0; i < FC_A; ++i)
        for (int j = 0; j < FC_A; ++j) {
            FC_T *dij = d + (i * FC_A + j) * Tv;
            for (ptrdiff_t ty = 0; ty < nty; ++ty) {
                const FC_T *src = win + (ty * FC_M + i) * Wp + j;
                for (ptrdiff_t tx = 0; tx < tW; ++tx)
                    dij[ty * tW + tx] = src[tx * FC_M];
            }
            for (ptrdiff_t k = T; k < Tv; ++k)
                dij[k] = 0;
        }
    /* t[xi][j] = (B^T d)[xi][j], then V[xi][nu] = (t B)[xi][nu] = B^T along j */
    for (int j = 0; j < FC_A; ++j)
        FC_WFN(fc_wino_bt_cols)(FC_RA(d + j * Tv, FC_A * Tv), FC_RA(t + j * Tv, FC_A * Tv), Tv);
    for (int xi = 0; xi < FC_A; ++xi)
        FC_WFN(fc_wino_bt_cols)(FC_RA(t + xi * FC_A * Tv, Tv),
                                FC_RA(V + xi * FC_A * plane, plane), Tv);
}

FC_MULTIVERSION void FC_WFN(fc_wino_input)(const FC_T *x, ptrdiff_t H, ptrdiff_t W,
                                          ptrdiff_t y0, ptrdiff_t x0, ptrdiff_t tW,
                                          ptrdiff_t nty, FC_T *V, ptrdiff_t plane,
                                          FC_T *scratch)
{
    if (2 * tW <= FC_VW && nty > 1) {
        FC_WFN(fc_wino_input_block)(x, H, W, y0, x0, tW, nty, V, plane, scratch);
        return;
    }
    for (ptrdiff_t i = 0; i < nty; ++i)   /* ascending: a row's padding tiles land */
        FC_WFN(fc_wino_input_row)(x, H, W, y0 + i * FC_M, x0, tW, V + i * tW, plane,
                                  scratch);   /* where the next row then writes */
}

/* s_j[tw] = bias + (A^T mx)[j] of the a streams mx_nu[tw], tw < tW. */
static inline void FC_WFN(fc_wino_at_tiles)(FC_PA(const FC_T *restrict, mx),
                                            FC_PM(FC_T *restrict, s), ptrdiff_t tW, FC_T bias)
{
#define FC_S(nu) FC_ST(mx, nu)[tw]
#define FC_O(j, v) FC_ST(s, j)[tw] = (v) + bias
    for (ptrdiff_t tw = 0; tw < tW; ++tw)
        FC_AT_APPLY(FC_S, FC_O);
#undef FC_S
#undef FC_O
}

/* y[i*ldy + tw*m + j] = o[(i*m + j)*ldo + tw] for the first `rows` rows
 * and `cols` columns: the tiles' m x m outputs interleaved into image rows. */
static inline void FC_WFN(fc_wino_store)(const FC_T *restrict o, ptrdiff_t ldo,
                                         FC_T *restrict y, ptrdiff_t ldy, ptrdiff_t rows,
                                         ptrdiff_t cols)
{
    const ptrdiff_t full = cols / FC_M;
    for (ptrdiff_t i = 0; i < rows; ++i) {
        FC_T *restrict yr = y + i * ldy;
        const FC_T *restrict oi = o + i * FC_M * ldo;
        for (ptrdiff_t tw = 0; tw < full; ++tw)
            for (int j = 0; j < FC_M; ++j)
                yr[tw * FC_M + j] = oi[j * ldo + tw];
        for (ptrdiff_t c = full * FC_M; c < cols; ++c)
            yr[c] = oi[(c % FC_M) * ldo + c / FC_M];
    }
}

FC_WINLINE void FC_WFN(fc_wino_output_row)(const FC_T *Mt, ptrdiff_t plane, ptrdiff_t tW,
                                              FC_T *y, ptrdiff_t ldy, ptrdiff_t rows,
                                              ptrdiff_t cols, FC_T bias, FC_T *scratch)
{
    const ptrdiff_t tWv = FC_VPAD(tW);
    FC_T *s = scratch;                        /* FC_A x FC_M x tWv: A^T along nu */
    FC_T *o = s + FC_A * FC_M * tWv;          /* FC_M x FC_M x tWv */
    /* s[xi][j] = A^T along nu of row xi; then o[i][j] = A^T along xi of s[.][j] */
    for (int xi = 0; xi < FC_A; ++xi)
        FC_WFN(fc_wino_at_tiles)(FC_RA(Mt + xi * FC_A * plane, plane),
                                 FC_RM(s + xi * FC_M * tWv, tWv), tWv, 0);
    for (int j = 0; j < FC_M; ++j)
        FC_WFN(fc_wino_at_tiles)(FC_RA(s + j * tWv, FC_M * tWv),
                                 FC_RM(o + j * tWv, FC_M * tWv), tWv, bias);
    FC_WFN(fc_wino_store)(o, tWv, y, ldy, rows, cols);
}

/* The output transform of nty rows of short tile rows at once (see
 * fc_wino_input_block): A^T M A over all T tiles, then each tile's m x m
 * outputs stored into the image. */
FC_WINLINE void FC_WFN(fc_wino_output_block)(const FC_T *Mt, ptrdiff_t plane, ptrdiff_t tW,
                                                ptrdiff_t nty, FC_T *y, ptrdiff_t ldy,
                                                ptrdiff_t rows, ptrdiff_t cols, FC_T bias,
                                                FC_T *scratch)
{
    const ptrdiff_t T = nty * tW, Tv = FC_VPAD(T);
    FC_T *s = scratch;                        /* a*m streams of Tv tiles */
    FC_T *o = s + FC_A * FC_M * Tv;           /* m*m streams: o[i*m + j][k] */
    for (int xi = 0; xi < FC_A; ++xi)
        FC_WFN(fc_wino_at_tiles)(FC_RA(Mt + xi * FC_A * plane, plane),
                                 FC_RM(s + xi * FC_M * Tv, Tv), Tv, 0);
    for (int j = 0; j < FC_M; ++j)
        FC_WFN(fc_wino_at_tiles)(FC_RA(s + j * Tv, FC_M * Tv), FC_RM(o + j * Tv, FC_M * Tv),
                                 Tv, bias);
    for (ptrdiff_t ty = 0; ty < nty; ++ty)
        for (int i = 0; i < FC_M && ty * FC_M + i < rows; ++i) {
            FC_T *restrict yr = y + (ty * FC_M + i) * ldy;
            for (int j = 0; j < FC_M; ++j) {
                const FC_T *restrict oij = o + (i * FC_M + j) * Tv + ty * tW;
                for (ptrdiff_t tx = 0; tx < tW && tx * FC_M + j < cols; ++tx)
                    yr[tx * FC_M + j] = oij[tx];
            }
        }
}

FC_MULTIVERSION void FC_WFN(fc_wino_output)(const FC_T *Mt, ptrdiff_t plane, ptrdiff_t tW,
                                           ptrdiff_t nty, FC_T *y, ptrdiff_t ldy,
                                           ptrdiff_t rows, ptrdiff_t cols, FC_T bias,
                                           FC_T *scratch)
{
    if (2 * tW <= FC_VW && nty > 1) {
        FC_WFN(fc_wino_output_block)(Mt, plane, tW, nty, y, ldy, rows, cols, bias, scratch);
        return;
    }
    for (ptrdiff_t i = 0; i < nty && i * FC_M < rows; ++i)
        FC_WFN(fc_wino_output_row)(Mt + i * tW, plane, tW, y + i * FC_M * ldy, ldy,
                                   rows - i * FC_M < FC_M ? rows - i * FC_M : FC_M, cols,
                                   bias, scratch);
}


#if FC_R == 3
/* The weight gradient dW = sum over tiles of the correlation of an a x a
 * input patch d with the m x m block u of the output gradient at the same
 * tile.  By the transposition principle (Lavin & Gray 2016, section 5, the
 * F(3x3, 2x2) "update" of Nervana's neon kernels), that correlation is
 * F(3 x 3, m x m) with the roles of the matrices swapped:
 *     dW_tile = G^T [ (A u A^T) * (B^T d B) ] G,
 * so the input transform above serves unchanged and the sum over tiles
 * runs in the transform domain.  fc_wino_grad_output applies A u A^T to
 * one row of tW blocks: rows y0 .. y0+m-1 and columns tw*m .. tw*m+m-1 of
 * the OH x OW plane gy (entries outside it are zero; y0 >= 0), into
 * U[(xi*a + nu)*plane + tw].  scratch holds (m + a) * tW * m elements. */
FC_MULTIVERSION void FC_WFN(fc_wino_grad_output)(const FC_T *gy, ptrdiff_t OH, ptrdiff_t OW,
                                                ptrdiff_t y0, ptrdiff_t tW, FC_T *U,
                                                ptrdiff_t plane, FC_T *scratch)
{
    const ptrdiff_t Wt = tW * FC_M;
    FC_T *rows = scratch;                     /* FC_M x Wt */
    FC_T *t = rows + FC_M * Wt;               /* FC_A x Wt, vertical transform */
    FC_WFN(fc_wino_rows)(gy, OH, OW, y0, 0, FC_M, Wt, Wt, rows);
    /* t[xi][c] = (A u)[xi] over every column c */
#define FC_S(i) rows[(i) * Wt + c]
#define FC_O(i, v) t[(i) * Wt + c] = (v)
    for (ptrdiff_t c = 0; c < Wt; ++c)
        FC_A_APPLY(FC_S, FC_O);
#undef FC_S
#undef FC_O
    /* U[xi][nu][tw] = (t[xi] A^T)[nu] for the columns tw*m .. tw*m + m - 1 */
    for (int xi = 0; xi < FC_A; ++xi) {
        const FC_T *tx = t + xi * Wt;
        FC_T *ux = U + xi * FC_A * plane;
#define FC_S(j) tx[tw * FC_M + (j)]
#define FC_O(nu, v) ux[(nu) * plane + tw] = (v)
        for (ptrdiff_t tw = 0; tw < tW; ++tw)
            FC_A_APPLY(FC_S, FC_O);
#undef FC_S
#undef FC_O
    }
}

/* Inverse of the filter transform for the weight gradient: the n filters
 * g_f (9 values each) = G^T [sum over the nacc accumulators t of
 * M_t[(xi*a + nu)*n + f]] G, with accumulator t at M + t * acc_stride.
 * Blocks of FC_WF_BLOCK filters on `nthreads` OpenMP threads. */
#define FC_WF_BLOCK 32
FC_MULTIVERSION void FC_WFN(fc_wino_grad_filter)(const FC_T *M, ptrdiff_t n, ptrdiff_t nacc,
                                                ptrdiff_t acc_stride, FC_T *g, int nthreads)
{
    const ptrdiff_t nblocks = (n + FC_WF_BLOCK - 1) / FC_WF_BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (ptrdiff_t blk = 0; blk < nblocks; ++blk) {
        const ptrdiff_t f0 = blk * FC_WF_BLOCK;
        const ptrdiff_t nb = n - f0 < FC_WF_BLOCK ? n - f0 : FC_WF_BLOCK;
        FC_T m[FC_A][FC_A][FC_WF_BLOCK], t[3][FC_A][FC_WF_BLOCK], o[9][FC_WF_BLOCK];
        for (int xi = 0; xi < FC_A; ++xi)
            for (int nu = 0; nu < FC_A; ++nu) {
                const FC_T *src = M + (xi * FC_A + nu) * n + f0;
                for (ptrdiff_t q = 0; q < nb; ++q)
                    m[xi][nu][q] = src[q];
                for (ptrdiff_t a = 1; a < nacc; ++a)
                    for (ptrdiff_t q = 0; q < nb; ++q)
                        m[xi][nu][q] += src[a * acc_stride + q];
            }
        for (int k = 0; k < 3; ++k)
            for (int nu = 0; nu < FC_A; ++nu)
                for (ptrdiff_t q = 0; q < nb; ++q) {
                    FC_T s = 0;
                    for (int xi = 0; xi < FC_A; ++xi)
                        s += (FC_T)FC_G[xi][k] * m[xi][nu][q];
                    t[k][nu][q] = s;
                }
        for (int k = 0; k < 3; ++k)
            for (int l = 0; l < 3; ++l)
                for (ptrdiff_t q = 0; q < nb; ++q) {
                    FC_T s = 0;
                    for (int nu = 0; nu < FC_A; ++nu)
                        s += (FC_T)FC_G[nu][l] * t[k][nu][q];
                    o[k * 3 + l][q] = s;
                }
        for (ptrdiff_t q = 0; q < nb; ++q)
            for (int i = 0; i < 9; ++i)
                g[(f0 + q) * 9 + i] = o[i][q];
    }
}
#undef FC_WF_BLOCK

#endif /* FC_R == 3 */

/* Filter transform U = G g G^T of n r x r filters g (n x r*r, row-major
 * each): U[(xi*a + nu)*n + f] for filter f.  Filters go in blocks of
 * FC_WF_BLOCK, gathered so that every step is a unit-stride loop over the
 * block, and blocks are spread over `nthreads` OpenMP threads.  Returns
 * whether every tap is finite (v - v == 0 fails for NaN and Inf only),
 * so "auto" need not scan the weights for the transform's sake.  With
 * `stream` the rows of U go out with non-temporal stores (fc_stream_copy). */
#define FC_WF_BLOCK 128
FC_MULTIVERSION int FC_WFN(fc_wino_filter)(const FC_T *g, ptrdiff_t n, FC_T *U, int nthreads,
                                           int stream)
{
    const ptrdiff_t nblocks = (n + FC_WF_BLOCK - 1) / FC_WF_BLOCK;
    int bad = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(|:bad)
    for (ptrdiff_t blk = 0; blk < nblocks; ++blk) {
        const ptrdiff_t f0 = blk * FC_WF_BLOCK;
        const ptrdiff_t nb = n - f0 < FC_WF_BLOCK ? n - f0 : FC_WF_BLOCK;
        FC_T gin[FC_R * FC_R][FC_WF_BLOCK], t[FC_A][FC_R][FC_WF_BLOCK];
#if FC_R == 3
        /* gin[i*3 + j][q] = tap (i, j) of filter f0 + q, as two passes of
         * stride-3 loads, which the compiler vectorises (a stride-9 gather
         * it does not, and that took about half of the transform's time):
         * h[j][p] = g[(3 f0 + p)*3 + j] over the filters' rows p, then
         * gin[i*3 + j][q] = h[j][3q + i]. */
        FC_T h[3][3 * FC_WF_BLOCK];
        const FC_T *gb = g + f0 * 9;
        for (ptrdiff_t p = 0; p < 3 * nb; ++p) {
            h[0][p] = gb[p * 3];
            h[1][p] = gb[p * 3 + 1];
            h[2][p] = gb[p * 3 + 2];
        }
        for (int j = 0; j < 3; ++j)
            for (ptrdiff_t q = 0; q < nb; ++q) {
                gin[j][q] = h[j][q * 3];
                gin[3 + j][q] = h[j][q * 3 + 1];
                gin[6 + j][q] = h[j][q * 3 + 2];
            }
#else
        for (ptrdiff_t q = 0; q < nb; ++q)
            for (int i = 0; i < FC_R * FC_R; ++i)
                gin[i][q] = g[(f0 + q) * FC_R * FC_R + i];
#endif
        for (int i = 0; i < FC_R * FC_R; ++i)
            for (ptrdiff_t q = 0; q < nb; ++q)
                bad |= !(gin[i][q] - gin[i][q] == 0);
        /* t = G g (along the rows of each filter), then U = t G^T, as
         * straight-line sums of FC_R terms so that every q loop vectorises */
#if FC_R == 2
#define FC_GSUM(row, X) ((FC_T)FC_G[row][0] * X(0) + (FC_T)FC_G[row][1] * X(1))
#elif FC_R == 3
#define FC_GSUM(row, X) ((FC_T)FC_G[row][0] * X(0) + (FC_T)FC_G[row][1] * X(1)        \
                         + (FC_T)FC_G[row][2] * X(2))
#else
#define FC_GSUM(row, X) ((FC_T)FC_G[row][0] * X(0) + (FC_T)FC_G[row][1] * X(1)        \
                         + (FC_T)FC_G[row][2] * X(2) + (FC_T)FC_G[row][3] * X(3)    \
                         + (FC_T)FC_G[row][4] * X(4))
#endif
        for (int xi = 0; xi < FC_A; ++xi)
            for (int j = 0; j < FC_R; ++j) {
#define FC_X(i) gin[(i) * FC_R + j][q]
                for (ptrdiff_t q = 0; q < nb; ++q)
                    t[xi][j][q] = FC_GSUM(xi, FC_X);
#undef FC_X
            }
        for (int xi = 0; xi < FC_A; ++xi)
            for (int nu = 0; nu < FC_A; ++nu) {
                FC_T *restrict u = U + (xi * FC_A + nu) * n + f0;
#define FC_X(j) t[xi][j][q]
                if (stream) {
                    FC_T ub[FC_WF_BLOCK];
                    for (ptrdiff_t q = 0; q < nb; ++q)
                        ub[q] = FC_GSUM(nu, FC_X);
                    fc_stream_copy(u, ub, (size_t)nb * sizeof(FC_T));
                } else {
                    for (ptrdiff_t q = 0; q < nb; ++q)
                        u[q] = FC_GSUM(nu, FC_X);
                }
#undef FC_X
            }
#undef FC_GSUM
    }
    if (stream)
        fc_stream_fence();
    return !bad;
}
#undef FC_WF_BLOCK

#undef FC_VPAD
#undef FC_VW
#undef FC_ST2
#undef FC_ST
#undef FC_P2
#undef FC_P3
#undef FC_P4
#undef FC_P6
#undef FC_R2
#undef FC_R3
#undef FC_R4
#undef FC_R6
#undef FC_PA
#undef FC_RA
#undef FC_PM
#undef FC_RM
#undef FC_BT_APPLY
#undef FC_AT_APPLY
#undef FC_A_APPLY
#undef FC_A
#undef FC_WFN
