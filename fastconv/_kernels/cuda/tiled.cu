// Register-tiled direct 2-D convolution (cross-correlation) for fastconv's
// CuPy backend: the fast path of "direct" for 2-D problems with small
// kernels.
//
// Layouts: x (N, C, H, W), w (O, C/G, KH, KW), y (N, O, OH, OW), all
// C-contiguous.  Zero padding by bounds checks on the loads (pad_h, pad_w
// are the leading pads); other padding modes arrive already padded (pads 0).
//
//   y[n, o, oh, ow] = bias[o] + sum_{c, kh, kw} w[o, c, kh, kw]
//                     * x[n, g*Cg + c, oh*sh + kh*dh - ph, ow*sw + kw*dw - pw]
//
// Each thread computes one output column, R consecutive output rows and OCB
// output channels of one group of one image (R*OCB accumulators in
// registers); blocks walk the (image, group, channel block) triples along z
// with a grid-stride loop.  Per input channel of the group a thread holds
// the OCB filters of that channel in registers (KH and KW are template
// parameters, so the tap loops unroll and the filter values stay in
// registers) and reads its inputs straight from global memory through the
// read-only cache, the warp's 32 neighbouring columns sharing cache lines.
// With stride 1 and dilation 1 along H it walks the R + KH - 1 input rows
// its outputs read, loads each row's KW values once and feeds them to every
// (output row, channel) that uses them: KW loads per min(R, KH) * KW * OCB
// fused multiply-adds.  Otherwise each (row, tap) value is loaded once for
// the OCB channels.
//
// Measured on an H100 against a variant that staged the block's input tile
// in shared memory first (Podlozhnyuk, "Image Convolution with CUDA", NVIDIA
// 2007): this one was faster on every case tried (8192^2 images with 3x3 to
// 7x7 kernels, ResNet 3x3 layers, a depthwise layer), 1.3x to 2x at three
// blocks per multiprocessor; no barrier and no staging pass, the L1 cache
// serving the overlap between neighbouring threads.  The register blocking
// over output channels is the one GEMM kernels use, applied to the taps.
//
// Loaded by fastconv._cuda through cupy.RawModule (NVRTC), one module per
// (T, KH, KW, R, OCB), with the name expression
// "fc_conv2d_tiled<float, 3, 3, 8, 4>" and so on.  The test suite compiles
// this file with nvcc -DFASTCONV_INSTANTIATE (instantiations at the end).

// Blocks per multiprocessor the register allocation must allow (the
// launch bound): fastconv._cuda passes -DFC_MIN_BLOCKS.
#ifndef FC_MIN_BLOCKS
#define FC_MIN_BLOCKS 3
#endif

template <typename T, int KH, int KW, int R, int OCB>
__global__ void __launch_bounds__(256, FC_MIN_BLOCKS) fc_conv2d_tiled(
    const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
    T* __restrict__ y,
    long long N, long long C, long long H, long long W,
    long long O, long long G, long long OH, long long OW,
    int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w, int has_bias)
{
    const long long Cg = C / G;
    const long long Og = O / G;
    const long long oblocks = (Og + OCB - 1) / OCB;
    const long long ox = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long oy0 = ((long long)blockIdx.y * blockDim.y + threadIdx.y) * R;
    if (ox >= OW || oy0 >= OH) return;  // no barrier below: idle threads may leave
    const long long ix0 = ox * stride_w - pad_w;
    const long long iy0 = oy0 * stride_h - pad_h;

    for (long long z = blockIdx.z; z < N * G * oblocks; z += gridDim.z) {
        const long long n = z / (G * oblocks);
        const long long g = (z / oblocks) % G;
        const long long o_first = g * Og + (z % oblocks) * OCB;
        const long long o_last = g * Og + Og - 1;

        T acc[OCB][R];
#pragma unroll
        for (int oc = 0; oc < OCB; ++oc)
#pragma unroll
            for (int r = 0; r < R; ++r) acc[oc][r] = T(0);

        for (long long c = 0; c < Cg; ++c) {
            const T* xp = x + (n * C + g * Cg + c) * H * W;
            T wr[OCB][KH * KW];
#pragma unroll
            for (int oc = 0; oc < OCB; ++oc) {
                const long long o = o_first + oc <= o_last ? o_first + oc : o_last;
                const T* wp = w + (o * Cg + c) * (KH * KW);
#pragma unroll
                for (int t = 0; t < KH * KW; ++t) wr[oc][t] = wp[t];
            }
            bool col_in[KW];
#pragma unroll
            for (int kw = 0; kw < KW; ++kw) {
                const long long ix = ix0 + (long long)kw * dil_w;
                col_in[kw] = ix >= 0 && ix < W;
            }

            if (stride_h == 1 && dil_h == 1) {
#pragma unroll
                for (int j = 0; j < R + KH - 1; ++j) {
                    const long long iy = iy0 + j;
                    const bool row_in = iy >= 0 && iy < H;
                    const T* xrow = xp + (row_in ? iy : 0) * W + ix0;
                    T xs[KW];
#pragma unroll
                    for (int kw = 0; kw < KW; ++kw)
                        xs[kw] = (row_in && col_in[kw]) ? __ldg(xrow + kw * dil_w) : T(0);
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        const int kh = j - r;
                        if (kh < 0 || kh >= KH) continue;
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw)
#pragma unroll
                            for (int oc = 0; oc < OCB; ++oc)
                                acc[oc][r] += wr[oc][kh * KW + kw] * xs[kw];
                    }
                }
            } else {
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int kh = 0; kh < KH; ++kh) {
                        const long long iy = iy0 + (long long)r * stride_h + (long long)kh * dil_h;
                        const bool row_in = iy >= 0 && iy < H;
                        const T* xrow = xp + (row_in ? iy : 0) * W + ix0;
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const T v = (row_in && col_in[kw]) ? __ldg(xrow + kw * dil_w) : T(0);
#pragma unroll
                            for (int oc = 0; oc < OCB; ++oc)
                                acc[oc][r] += wr[oc][kh * KW + kw] * v;
                        }
                    }
            }
        }

#pragma unroll
        for (int oc = 0; oc < OCB; ++oc) {
            const long long o = o_first + oc;
            if (o > o_last) break;
            const T b = has_bias ? bias[o] : T(0);
            T* yp = y + ((n * O + o) * OH) * OW + ox;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (oy0 + r < OH) yp[(oy0 + r) * OW] = acc[oc][r] + b;
            }
        }
    }
}

#ifdef FASTCONV_INSTANTIATE
#define FC_TILED_INSTANTIATE(T, KH, KW, R, OCB)                                          \
    template __global__ void fc_conv2d_tiled<T, KH, KW, R, OCB>(                         \
        const T* __restrict__, const T* __restrict__, const T* __restrict__,             \
        T* __restrict__, long long, long long, long long, long long, long long,          \
        long long, long long, long long, int, int, int, int, int, int, int);
FC_TILED_INSTANTIATE(float, 3, 3, 8, 4)
FC_TILED_INSTANTIATE(float, 7, 7, 8, 1)
FC_TILED_INSTANTIATE(float, 8, 8, 8, 1)
FC_TILED_INSTANTIATE(double, 3, 3, 4, 2)
FC_TILED_INSTANTIATE(double, 5, 5, 4, 1)
#endif
