"""Build and run-time facts of the compiled kernels (``fastconv info``),
and the finiteness scan "auto" runs on its arguments."""
cimport openmp

from ._fc cimport real, fc_all_finite_f32, fc_all_finite_f64, fc_simd_level

cdef extern from *:
    """
    static int _openmp_date(void) {
    #ifdef _OPENMP
        return _OPENMP;
    #else
        return 0;
    #endif
    }
    """
    int _openmp_date() nogil


cdef extern from "fc_build_info.h":
    const char *FC_COMPILER
    const char *FC_C_ARGS


def simd_level():
    """The instruction set the direct row kernels use on this CPU (runtime dispatch)."""
    return fc_simd_level().decode()


def openmp_max_threads():
    """``omp_get_max_threads()``: OpenMP's own default team size."""
    return openmp.omp_get_max_threads()


def openmp_version():
    """The ``_OPENMP`` date macro of the OpenMP implementation compiled against."""
    cdef int v = 0
    with nogil:
        v = _openmp_date()
    return v


def compiler():
    """Compiler id and version used to build the kernels."""
    return FC_COMPILER.decode()


def compile_args():
    """C flags the kernels were compiled with."""
    return FC_C_ARGS.decode()


def all_finite(const real[::1] a):
    """Whether the contiguous array `a` holds no NaN or Inf (one compiled pass)."""
    cdef int ok
    with nogil:
        if real is float:
            ok = fc_all_finite_f32(&a[0], a.shape[0]) if a.shape[0] else 1
        else:
            ok = fc_all_finite_f64(&a[0], a.shape[0]) if a.shape[0] else 1
    return bool(ok)
