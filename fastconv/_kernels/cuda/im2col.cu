// im2col for fastconv's CuPy backend: one tile of output positions of every
// image and group, laid out for one batched GEMM per tile.
//
// Layouts: x (N, C, D, H, W) C-contiguous (conv1d/conv2d lifted to three
// spatial dimensions; padding modes other than zeros already applied, so
// pad_* are then 0).  The tile covers the output positions [p0, p0 + ncols)
// of the flattened (OD, OH, OW) grid.  It is written as
//
//   cols[g, r, n, j],  shape (G, K, N, ncols),  K = (C/G) * KD * KH * KW,
//   r = ((c * KD + kd) * KH + kh) * KW + kw,     p = p0 + j,
//   od = p / (OH*OW), oh = (p / OW) % OH, ow = p % OW,
//   cols[g, r, n, j] = x[n, g*Cg + c, od*sd + kd*dd - pd,
//                                     oh*sh + kh*dh - ph,
//                                     ow*sw + kw*dw - pw]   (0 outside x)
//
// so that, with the weights viewed as (G, O/G, K), the tile's outputs are
// matmul(w, cols.reshape(G, K, N * ncols)) -> (G, O/G, N * ncols), which
// fastconv._cuda computes with cupy.matmul (cuBLAS).  One thread writes one
// element of cols (grid-stride loop over all G*K*N*ncols of them).
//
// Loaded by fastconv._cuda through cupy.RawModule (NVRTC) with the name
// expressions "fc_im2col<float>" and "fc_im2col<double>"; compiled by the
// test suite with nvcc -DFASTCONV_INSTANTIATE (instantiations at the end).

template <typename T>
__global__ void fc_im2col(
    const T* __restrict__ x, T* __restrict__ cols,
    long long N, long long C, long long D, long long H, long long W,
    long long G, long long KD, long long KH, long long KW,
    long long OD, long long OH, long long OW,
    long long stride_d, long long stride_h, long long stride_w,
    long long pad_d, long long pad_h, long long pad_w,
    long long dil_d, long long dil_h, long long dil_w,
    long long p0, long long ncols)
{
    const long long Cg = C / G;
    const long long K = Cg * KD * KH * KW;
    const long long total = G * K * N * ncols;
    (void)OD;  // the tile never reaches past the last output position

    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long j = idx % ncols;
        long long t = idx / ncols;
        const long long n = t % N;
        t /= N;
        const long long r = t % K;
        const long long g = t / K;

        const long long kw = r % KW;
        const long long kh = (r / KW) % KH;
        const long long kd = (r / (KW * KH)) % KD;
        const long long c = r / (KW * KH * KD);

        const long long p = p0 + j;
        const long long od = p / (OH * OW);
        const long long oh = (p / OW) % OH;
        const long long ow = p % OW;

        const long long iz = od * stride_d + kd * dil_d - pad_d;
        const long long iy = oh * stride_h + kh * dil_h - pad_h;
        const long long ix = ow * stride_w + kw * dil_w - pad_w;

        T v = T(0);
        if (iz >= 0 && iz < D && iy >= 0 && iy < H && ix >= 0 && ix < W) {
            v = x[(((n * C + g * Cg + c) * D + iz) * H + iy) * W + ix];
        }
        cols[idx] = v;
    }
}

#ifdef FASTCONV_INSTANTIATE
template __global__ void fc_im2col<float>(
    const float* __restrict__, float* __restrict__,
    long long, long long, long long, long long, long long,
    long long, long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long);
template __global__ void fc_im2col<double>(
    const double* __restrict__, double* __restrict__,
    long long, long long, long long, long long, long long,
    long long, long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long);
#endif
