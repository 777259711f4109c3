// Direct convolution (cross-correlation) for fastconv's CuPy backend.
//
// Layouts: x (N, C, D, H, W), w (O, C/G, KD, KH, KW), y (N, O, OD, OH, OW),
// all C-contiguous; conv1d and conv2d arrive lifted to three spatial
// dimensions (size-1 leading ones).  Zero padding is applied here by bounds
// checks (pad_* are the leading pads; the trailing ones follow from the
// output size); the other padding modes arrive already padded (pad_* = 0).
//
//   y[n, o, od, oh, ow] = bias[o] + sum_{c, kd, kh, kw}
//       w[o, c, kd, kh, kw] * x[n, g*Cg + c, od*sd + kd*dd - pd,
//                                            oh*sh + kh*dh - ph,
//                                            ow*sw + kw*dw - pw]
//   with g = o / (O/G), Cg = C/G, and x = 0 outside its bounds.
//
// One thread computes one output element.  blockIdx.y walks the (n, o)
// pairs (a grid-stride loop, so any N*O works), the x dimension of the grid
// walks the output positions of one (n, o) plane (grid-stride as well).  All
// threads of a block share one output channel, so that channel's filter
// (Cg*KD*KH*KW values) is staged in dynamic shared memory when the caller
// says it fits (weights_in_shared != 0); otherwise it is read from global
// memory.  Accumulation is in T.
//
// Loaded by fastconv._cuda through cupy.RawModule (NVRTC) with the name
// expressions "fc_conv_direct<float>" and "fc_conv_direct<double>".  No
// headers are included (NVRTC compiles it without a host toolchain).  The
// test suite compiles this file with nvcc -DFASTCONV_INSTANTIATE, which
// instantiates both element types at the end of the file.

template <typename T>
__global__ void fc_conv_direct(
    const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
    T* __restrict__ y,
    long long N, long long C, long long D, long long H, long long W,
    long long O, long long G, long long KD, long long KH, long long KW,
    long long OD, long long OH, long long OW,
    long long stride_d, long long stride_h, long long stride_w,
    long long pad_d, long long pad_h, long long pad_w,
    long long dil_d, long long dil_h, long long dil_w,
    int has_bias, int weights_in_shared)
{
    // Raw bytes, aligned for double: a typed extern __shared__ array would
    // clash between the float and double instantiations.
    extern __shared__ __align__(sizeof(double)) unsigned char fc_direct_smem[];
    T* w_shared = reinterpret_cast<T*>(fc_direct_smem);

    const long long Cg = C / G;
    const long long Og = O / G;
    const long long taps = KD * KH * KW;
    const long long K = Cg * taps;            // weights per output channel
    const long long P = OD * OH * OW;         // output positions per plane
    const long long plane_in = D * H * W;

    for (long long no = blockIdx.y; no < N * O; no += gridDim.y) {
        const long long n = no / O;
        const long long o = no % O;
        const long long g = o / Og;

        const T* w_o = w + o * K;
        if (weights_in_shared) {
            __syncthreads();  // the previous (n, o) pair is done with w_shared
            for (long long i = threadIdx.x; i < K; i += blockDim.x) {
                w_shared[i] = w_o[i];
            }
            __syncthreads();
            w_o = w_shared;
        }

        const T* x_ng = x + (n * C + g * Cg) * plane_in;
        T* y_no = y + no * P;
        const T b = has_bias ? bias[o] : T(0);

        for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < P;
             p += (long long)gridDim.x * blockDim.x) {
            const long long od = p / (OH * OW);
            const long long oh = (p / OW) % OH;
            const long long ow = p % OW;
            const long long z0 = od * stride_d - pad_d;
            const long long y0 = oh * stride_h - pad_h;
            const long long x0 = ow * stride_w - pad_w;

            T acc = T(0);
            for (long long c = 0; c < Cg; ++c) {
                const T* x_c = x_ng + c * plane_in;
                const T* w_c = w_o + c * taps;
                for (long long kd = 0; kd < KD; ++kd) {
                    const long long iz = z0 + kd * dil_d;
                    if (iz < 0 || iz >= D) continue;
                    for (long long kh = 0; kh < KH; ++kh) {
                        const long long iy = y0 + kh * dil_h;
                        if (iy < 0 || iy >= H) continue;
                        const T* x_row = x_c + (iz * H + iy) * W;
                        const T* w_row = w_c + (kd * KH + kh) * KW;
                        for (long long kw = 0; kw < KW; ++kw) {
                            const long long ix = x0 + kw * dil_w;
                            if (ix < 0 || ix >= W) continue;
                            acc += w_row[kw] * x_row[ix];
                        }
                    }
                }
            }
            y_no[p] = acc + b;
        }
    }
}

#ifdef FASTCONV_INSTANTIATE
template __global__ void fc_conv_direct<float>(
    const float* __restrict__, const float* __restrict__, const float* __restrict__,
    float* __restrict__,
    long long, long long, long long, long long, long long,
    long long, long long, long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    int, int);
template __global__ void fc_conv_direct<double>(
    const double* __restrict__, const double* __restrict__, const double* __restrict__,
    double* __restrict__,
    long long, long long, long long, long long, long long,
    long long, long long, long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    long long, long long, long long,
    int, int);
#endif
