// Winograd F(2x2,3x3) and F(4x4,3x3) tile transforms for fastconv's CuPy
// backend (fastconv._cuda_winograd).
//
// Minimal filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", CVPR 2016): an M x M output tile of a 3x3 correlation is
//
//     Y = A^T [ (G g G^T) (*) (B^T d B) ] A
//
// with d the A x A input patch (A = M + 2 transform points), g the filter and
// (*) the elementwise product.  The interpolation points are 0, +-1 (M = 2)
// and 0, +-1, +-2 (M = 4) plus the point at infinity, the matrices of
// fastconv._winograd.transform_matrices (the CPU's fc_winograd_impl.h writes
// out the same ones).  The sum over input channels of the elementwise
// products is done by cuBLAS between these kernels: for each of the A*A
// points and each group one GEMM (C_out/G x C_in/G) @ (C_in/G x tiles).
//
// Tiles: output tile (ty, tx) of image n covers output rows ty*M .. ty*M+M-1
// and columns tx*M .. tx*M+M-1 and reads the input patch whose corner is
// (ty*M - pad_h, tx*M - pad_w); input values outside the image are zero
// (zero padding, and the partial tiles at the bottom and right edges, whose
// outputs beyond OH x OW are computed and dropped).  The tiles of all images
// are numbered q = n * tiles + ty * tiles_w + tx; the host runs them in
// chunks of nq consecutive tiles starting at q0 = n0 * tiles + t0
// (0 <= t0 < tiles), so the transformed tiles of one chunk stay within a
// byte budget.  Thread ql (blockIdx.x * blockDim.x + threadIdx.x) of a chunk
// handles its tile q0 + ql, for the channels blockIdx.y, blockIdx.y +
// gridDim.y, ... (a grid-stride loop, so any channel count works).
//
// Layouts (all C-contiguous):
//   x (N, C, H, W)            input, per channel plane `plane` = H * W values
//   v (A*A, C, nq)            input transforms of a chunk: v[k, c, ql]
//                             (= (A*A, G, C/G, nq): the GEMMs' right operand)
//   m (A*A, O, nq)            products of a chunk (= (A*A, G, O/G, nq))
//   y (N, O, OH, OW)          output, per channel plane `oplane` = OH * OW
// Index math is 32-bit except for the offsets of image/channel planes and
// rows inside them (64-bit products, no 64-bit division): the host checks
// that A*A*C*nq, A*A*O*nq, tiles + nq, N, the tile corners and the sizes
// fit in an int.
//
// Loaded by fastconv._cuda_winograd through cupy.RawModule (NVRTC) with the
// name expressions "fc_winograd_input<T, M>" and "fc_winograd_output<T, M>"
// (T float or double, M 2 or 4).  No headers are included (NVRTC compiles it
// without a host toolchain).  The test suite compiles this file with nvcc
// -DFASTCONV_INSTANTIATE, which instantiates every (T, M) at the end of the
// file.

// 1-D B^T: o[i * os] = sum_k B^T[i][k] d[k * ds], for the A = M + 2 points.
template <typename T, int M>
__device__ __forceinline__ void fc_wino_bt_1d(const T* d, int ds, T* o, int os)
{
    if constexpr (M == 2) {
        // B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        o[0 * os] = d[0 * ds] - d[2 * ds];
        o[1 * os] = d[1 * ds] + d[2 * ds];
        o[2 * os] = d[2 * ds] - d[1 * ds];
        o[3 * os] = d[1 * ds] - d[3 * ds];
    } else {
        // B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        //        [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        const T q12 = d[1 * ds] + d[2 * ds], q34 = d[3 * ds] + d[4 * ds];
        const T p12 = d[1 * ds] - d[2 * ds], p43 = d[4 * ds] - d[3 * ds];
        const T p13 = d[1 * ds] - d[3 * ds], p42 = d[4 * ds] - d[2 * ds];
        o[0 * os] = T(4) * d[0] - T(5) * d[2 * ds] + d[4 * ds];
        o[1 * os] = q34 - T(4) * q12;
        o[2 * os] = p43 + T(4) * p12;
        o[3 * os] = p42 - T(2) * p13;
        o[4 * os] = p42 + T(2) * p13;
        o[5 * os] = T(4) * d[1 * ds] - T(5) * d[3 * ds] + d[5 * ds];
    }
}

// 1-D A^T: o[i * os] = sum_k A^T[i][k] s[k * ss], i < M.
template <typename T, int M>
__device__ __forceinline__ void fc_wino_at_1d(const T* s, int ss, T* o, int os)
{
    if constexpr (M == 2) {
        // A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
        o[0 * os] = s[0] + s[1 * ss] + s[2 * ss];
        o[1 * os] = s[1 * ss] - s[2 * ss] - s[3 * ss];
    } else {
        // A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
        //        [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
        const T a12 = s[1 * ss] + s[2 * ss], d12 = s[1 * ss] - s[2 * ss];
        const T a34 = s[3 * ss] + s[4 * ss], d34 = s[3 * ss] - s[4 * ss];
        o[0 * os] = s[0] + a12 + a34;
        o[1 * os] = d12 + T(2) * d34;
        o[2 * os] = a12 + T(4) * a34;
        o[3 * os] = d12 + T(8) * d34 + s[5 * ss];
    }
}

// The tile of chunk thread ql: image n, corner row/column (in tile units).
__device__ __forceinline__ void fc_wino_tile(int ql, int n0, int t0, int tiles, int tiles_w,
                                             int* n, int* ty, int* tx)
{
    const int tq = t0 + ql;
    const int t = tq % tiles;
    *n = n0 + tq / tiles;
    *ty = t / tiles_w;
    *tx = t - *ty * tiles_w;
}

// Input transform: v[k, c, ql] = (B^T d B)[k / A, k % A] for the patch d of
// channel c under tile q0 + ql.
template <typename T, int M>
__global__ void fc_winograd_input(
    const T* __restrict__ x, T* __restrict__ v,
    int C, int H, int W, long long plane, int tiles, int tiles_w,
    int pad_h, int pad_w, int n0, int t0, int nq)
{
    constexpr int A = M + 2;
    const int ql = blockIdx.x * blockDim.x + threadIdx.x;
    if (ql >= nq) {
        return;
    }
    int n, ty, tx;
    fc_wino_tile(ql, n0, t0, tiles, tiles_w, &n, &ty, &tx);
    const int y0 = ty * M - pad_h;
    const int x0 = tx * M - pad_w;
    // Which rows and columns of the patch lie inside the image.
    bool row_in[A], col_in[A];
#pragma unroll
    for (int i = 0; i < A; ++i) {
        row_in[i] = y0 + i >= 0 && y0 + i < H;
        col_in[i] = x0 + i >= 0 && x0 + i < W;
    }
    const int cstride = C * nq;  // between transform points in v

    for (int c = blockIdx.y; c < C; c += gridDim.y) {
        const T* xc = x + ((long long)n * C + c) * plane;
        T d[A][A];
#pragma unroll
        for (int i = 0; i < A; ++i) {
            const T* row = xc + (long long)(y0 + i) * W + x0;
#pragma unroll
            for (int j = 0; j < A; ++j) {
                d[i][j] = (row_in[i] && col_in[j]) ? row[j] : T(0);
            }
        }
        T e[A][A];  // B^T d (down the columns)
#pragma unroll
        for (int j = 0; j < A; ++j) {
            fc_wino_bt_1d<T, M>(&d[0][j], A, &e[0][j], A);
        }
        T f[A][A];  // (B^T d) B (along the rows)
#pragma unroll
        for (int i = 0; i < A; ++i) {
            fc_wino_bt_1d<T, M>(&e[i][0], 1, &f[i][0], 1);
        }
        T* vc = v + c * nq + ql;
#pragma unroll
        for (int i = 0; i < A; ++i) {
#pragma unroll
            for (int j = 0; j < A; ++j) {
                vc[(i * A + j) * cstride] = f[i][j];
            }
        }
    }
}

// Output transform: y[n, o, ty*M + i, tx*M + j] = (A^T s A)[i, j] + bias[o]
// with s[k] = m[k, o, ql], for the outputs of the tile inside OH x OW.
template <typename T, int M>
__global__ void fc_winograd_output(
    const T* __restrict__ m, const T* __restrict__ bias, T* __restrict__ y,
    int O, int OH, int OW, long long oplane, int tiles, int tiles_w,
    int n0, int t0, int nq, int has_bias)
{
    constexpr int A = M + 2;
    const int ql = blockIdx.x * blockDim.x + threadIdx.x;
    if (ql >= nq) {
        return;
    }
    int n, ty, tx;
    fc_wino_tile(ql, n0, t0, tiles, tiles_w, &n, &ty, &tx);
    const int oy0 = ty * M;
    const int ox0 = tx * M;
    const int rows = OH - oy0;  // outputs of the tile inside the image: min(M, .)
    const int cols = OW - ox0;
    const int ostride = O * nq;  // between transform points in m

    for (int o = blockIdx.y; o < O; o += gridDim.y) {
        const T* mo = m + o * nq + ql;
        T s[A][A];
#pragma unroll
        for (int i = 0; i < A; ++i) {
#pragma unroll
            for (int j = 0; j < A; ++j) {
                s[i][j] = mo[(i * A + j) * ostride];
            }
        }
        T r[M][A];  // A^T s (down the columns)
#pragma unroll
        for (int j = 0; j < A; ++j) {
            fc_wino_at_1d<T, M>(&s[0][j], A, &r[0][j], A);
        }
        T out[M][M];  // (A^T s) A (along the rows)
#pragma unroll
        for (int i = 0; i < M; ++i) {
            fc_wino_at_1d<T, M>(&r[i][0], 1, &out[i][0], 1);
        }
        const T b = has_bias ? bias[o] : T(0);
        T* yo = y + ((long long)n * O + o) * oplane + (long long)oy0 * OW + ox0;
#pragma unroll
        for (int i = 0; i < M; ++i) {
#pragma unroll
            for (int j = 0; j < M; ++j) {
                if (i < rows && j < cols) {
                    yo[(long long)i * OW + j] = out[i][j] + b;
                }
            }
        }
    }
}

#ifdef FASTCONV_INSTANTIATE
#define FC_WINO_INSTANTIATE(T, M)                                                          \
    template __global__ void fc_winograd_input<T, M>(                                      \
        const T* __restrict__, T* __restrict__, int, int, int, long long, int, int, int,   \
        int, int, int, int);                                                               \
    template __global__ void fc_winograd_output<T, M>(                                     \
        const T* __restrict__, const T* __restrict__, T* __restrict__, int, int, int,      \
        long long, int, int, int, int, int, int);
FC_WINO_INSTANTIATE(float, 2)
FC_WINO_INSTANTIATE(float, 4)
FC_WINO_INSTANTIATE(double, 2)
FC_WINO_INSTANTIATE(double, 4)
#undef FC_WINO_INSTANTIATE
#endif
