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
// fastconv._cuda computes with cupy.matmul (cuBLAS).
//
// Loaded by fastconv._cuda through cupy.RawModule (NVRTC) with the name
// expressions "fc_im2col<float>" and "fc_im2col<double>"; compiled by the
// test suite with nvcc -DFASTCONV_INSTANTIATE (instantiations at the end).

// Launch: blockIdx.y walks the (g, r, n) rows of cols (grid-stride), so a
// row's decomposition is uniform across its block; the threads along x walk
// the row's ncols positions, consecutive threads writing consecutive
// columns (fastconv._cuda.im2col_grid picks the grid).  Per element the
// position is split into (od, oh, ow) in 32-bit arithmetic when every
// extent involved is below 2^30 (64-bit division costs several times more).

template <typename T, typename I>
__device__ __forceinline__ void fc_im2col_row(
    const T* __restrict__ xc, T* __restrict__ out, I D, I H, I W, I OH, I OW,
    I sd, I sh, I sw, I dz, I dy, I dx, I p0, I ncols)
{
    for (I j = (I)blockIdx.x * blockDim.x + threadIdx.x; j < ncols;
         j += (I)gridDim.x * blockDim.x) {
        const I p = p0 + j;
        const I ow = p % OW;
        const I q = p / OW;
        const I iz = (q / OH) * sd + dz;
        const I iy = (q % OH) * sh + dy;
        const I ix = ow * sw + dx;
        T v = T(0);
        if (iz >= 0 && iz < D && iy >= 0 && iy < H && ix >= 0 && ix < W) {
            v = xc[((long long)iz * H + iy) * W + ix];
        }
        out[j] = v;
    }
}

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
    const long long rows = G * K * N;
    const long long limit = 1LL << 30;
    const bool narrow = D * H * W < limit && OD * OH * OW < limit
        && OD * stride_d + KD * dil_d < limit && OH * stride_h + KH * dil_h < limit
        && OW * stride_w + KW * dil_w < limit && pad_d < limit && pad_h < limit
        && pad_w < limit;

    for (long long row = blockIdx.y; row < rows; row += gridDim.y) {
        const long long n = row % N;
        const long long r = (row / N) % K;
        const long long g = row / (N * K);
        const long long kw = r % KW;
        const long long kh = (r / KW) % KH;
        const long long kd = (r / (KW * KH)) % KD;
        const long long c = r / (KW * KH * KD);
        const T* xc = x + (n * C + g * Cg + c) * D * H * W;
        T* out = cols + row * ncols;
        const long long dz = kd * dil_d - pad_d;
        const long long dy = kh * dil_h - pad_h;
        const long long dx = kw * dil_w - pad_w;
        if (narrow) {
            fc_im2col_row<T, int>(xc, out, (int)D, (int)H, (int)W, (int)OH, (int)OW,
                                  (int)stride_d, (int)stride_h, (int)stride_w,
                                  (int)dz, (int)dy, (int)dx, (int)p0, (int)ncols);
        } else {
            fc_im2col_row<T, long long>(xc, out, D, H, W, OH, OW, stride_d, stride_h,
                                        stride_w, dz, dy, dx, p0, ncols);
        }
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
