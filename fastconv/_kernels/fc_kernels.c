/*
 * fc_kernels.c -- leaf C kernels of fastconv's CPU backend (see fc_kernels.h).
 *
 * SIMD width: the row kernels are written with GCC vector extensions of 64
 * bytes and compiled several times by function multiversioning
 * (target_clones): x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the
 * baseline.  The dynamic loader picks the best clone for the CPU at run
 * time, so wheels need no -march=native.  Other compilers and
 * architectures (aarch64) get one portable build of the same code.
 */
#include "fc_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FC_HAVE_CLONES 1
#define FC_MULTIVERSION \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FC_HAVE_CLONES 0
#define FC_MULTIVERSION
#endif

#define FC_VBYTES 64

#define FC_T float
#define FC_SFX f32
#include "fc_kernels_impl.h"
#undef FC_T
#undef FC_SFX

#define FC_T double
#define FC_SFX f64
#include "fc_kernels_impl.h"
#undef FC_T
#undef FC_SFX

const char *fc_simd_level(void)
{
#if FC_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "avx512 (x86-64-v4)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "avx2+fma (x86-64-v3)";
    return "sse2 (x86-64 baseline)";
#else
    return "portable (compiler auto-vectorisation)";
#endif
}
