// col2im for fastconv's CuPy backend: the adjoint of im2col, in gather form.
//
// Columns hold, for every input position q of a transposed convolution (or
// every block of torch.nn.functional.fold), one value per output channel c
// and kernel tap (kd, kh, kw); that value belongs to the output element
//
//   y[n, g*Cg + c0 + c, iz*sd + kd*dd - pd, iy*sh + kh*dh - ph, ix*sw + kw*dw - pw]
//
// where q = n*P + (iz*IH + iy)*IW + ix, P = ID*IH*IW (the column grid of one
// image), and elements falling outside y are dropped.  The column of (g, c,
// tap) and q is read at
//
//   cols[g*col_g + r*col_r + n*col_n + (iz*IH + iy)*IW + ix - q0],
//   r = ((c*KD + kd)*KH + kh)*KW + kw,
//
// so one kernel serves both layouts fastconv._cuda_adjoint uses:
//   - the GEMM tiles of a transposed convolution, (G, cb*KD*KH*KW, q1 - q0):
//     col_g = cb*KD*KH*KW*(q1 - q0), col_r = q1 - q0, col_n = P;
//   - the blocks of fastconv.col2im, (N, C*KD*KH*KW, P) with G = 1:
//     col_g = 0, col_r = P, col_n = C*KD*KH*KW*P, q0 = 0, q1 = N*P.
// Only the columns q0 <= q < q1 are present (one tile); only the channels
// [c0, c0 + cb) of each group are written.
//
// Gather form: one thread per element of y inside a box (images [n0, n0+nn),
// output ranges [z0, z0+zn) x [y0, y0+yn) x [x0, x0+xn), the caller's bound
// on what the tile reaches), summing in a fixed order the column entries
// that land on it, then storing (accumulate == 0) or adding (accumulate != 0,
// for tiles after the first) the sum.  No atomics: every element has one
// writer per launch, so results are deterministic.  Grid-stride loop, 64-bit
// index arithmetic throughout.
//
// Loaded by fastconv._cuda through cupy.RawModule (NVRTC) with the name
// expressions "fc_col2im<float>" and "fc_col2im<double>"; compiled by the
// test suite with nvcc -DFASTCONV_INSTANTIATE (instantiations at the end).

template <typename T>
__global__ void fc_col2im(
    const T* __restrict__ cols, T* __restrict__ y,
    long long C, long long OD, long long OH, long long OW,
    long long G, long long Cg, long long KD, long long KH, long long KW,
    long long ID, long long IH, long long IW,
    long long stride_d, long long stride_h, long long stride_w,
    long long pad_d, long long pad_h, long long pad_w,
    long long dil_d, long long dil_h, long long dil_w,
    long long col_g, long long col_r, long long col_n, long long q0, long long q1,
    long long c0, long long cb,
    long long n0, long long nn, long long z0, long long zn,
    long long y0, long long yn, long long x0, long long xn,
    int accumulate)
{
    const long long P = ID * IH * IW;
    const long long total = nn * G * cb * zn * yn * xn;

    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        long long t = idx;
        const long long ox = x0 + t % xn;
        t /= xn;
        const long long oy = y0 + t % yn;
        t /= yn;
        const long long oz = z0 + t % zn;
        t /= zn;
        const long long c = t % cb;
        t /= cb;
        const long long g = t % G;
        const long long n = n0 + t / G;

        const long long base = g * col_g + n * col_n - q0;
        const long long first = n * P;  // q of the image's first column
        T acc = T(0);
        for (long long kd = 0; kd < KD; ++kd) {
            const long long tz = oz + pad_d - kd * dil_d;
            if (tz < 0) break;  // falls with kd: no later tap reaches oz
            if (tz % stride_d) continue;
            const long long iz = tz / stride_d;
            if (iz >= ID) continue;
            for (long long kh = 0; kh < KH; ++kh) {
                const long long ty = oy + pad_h - kh * dil_h;
                if (ty < 0) break;
                if (ty % stride_h) continue;
                const long long iy = ty / stride_h;
                if (iy >= IH) continue;
                for (long long kw = 0; kw < KW; ++kw) {
                    const long long tx = ox + pad_w - kw * dil_w;
                    if (tx < 0) break;
                    if (tx % stride_w) continue;
                    const long long ix = tx / stride_w;
                    if (ix >= IW) continue;
                    const long long pix = (iz * IH + iy) * IW + ix;
                    const long long q = first + pix;
                    if (q < q0 || q >= q1) continue;  // a column of another tile
                    const long long r = ((c * KD + kd) * KH + kh) * KW + kw;
                    acc += cols[base + r * col_r + pix];
                }
            }
        }
        const long long out = (((n * C + g * Cg + c0 + c) * OD + oz) * OH + oy) * OW + ox;
        y[out] = accumulate ? y[out] + acc : acc;
    }
}

#ifdef FASTCONV_INSTANTIATE
#define FC_COL2IM_INSTANTIATE(T)                                                         \
    template __global__ void fc_col2im<T>(                                               \
        const T* __restrict__, T* __restrict__,                                          \
        long long, long long, long long, long long,                                      \
        long long, long long, long long, long long, long long,                           \
        long long, long long, long long,                                                 \
        long long, long long, long long,                                                 \
        long long, long long, long long,                                                 \
        long long, long long, long long,                                                 \
        long long, long long, long long, long long, long long,                           \
        long long, long long,                                                            \
        long long, long long, long long, long long,                                      \
        long long, long long, long long, long long,                                      \
        int);
FC_COL2IM_INSTANTIATE(float)
FC_COL2IM_INSTANTIATE(double)
#endif
