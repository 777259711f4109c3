# Row-major GEMM through SciPy's BLAS (scipy.linalg.cython_blas), shared by
# the im2col and Winograd kernels.
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

from ._fc cimport real


cdef inline void _gemm_rowmajor(int M, int Ncols, int K, const real *A, int lda,
                                const real *B, int ldb, real *C, int ldc) noexcept nogil:
    """C[M, Ncols] = A[M, K] @ B[K, Ncols], all row-major.

    BLAS is column-major, so compute C^T = B^T A^T with the operands swapped.
    A single output row (M == 1, one output channel per group) is the
    matrix-vector product C^T = B^T a, done by GEMV.
    """
    cdef char trans = b'N'
    cdef real one = 1, zero = 0
    cdef int inc = 1
    if M == 1:
        if real is float:
            sgemv(&trans, &Ncols, &K, &one, <float *> B, &ldb, <float *> A, &inc,
                  &zero, C, &inc)
        else:
            dgemv(&trans, &Ncols, &K, &one, <double *> B, &ldb, <double *> A, &inc,
                  &zero, C, &inc)
        return
    if real is float:
        sgemm(&trans, &trans, &Ncols, &M, &K, &one, <float *> B, &ldb,
              <float *> A, &lda, &zero, C, &ldc)
    else:
        dgemm(&trans, &trans, &Ncols, &M, &K, &one, <double *> B, &ldb,
              <double *> A, &lda, &zero, C, &ldc)


cdef inline void _gemm_abt_acc(int M, int Ncols, int K, const real *A, int lda,
                               const real *B, int ldb, real *C, int ldc,
                               real beta) noexcept nogil:
    """C[M, Ncols] = beta * C + A[M, K] @ B[Ncols, K]^T, all row-major.

    In BLAS's column-major terms C^T += B A^T: B is read transposed ('T'),
    A^T is A's row-major storage as it stands ('N').
    """
    cdef char tb = b'T', na = b'N'
    cdef real one = 1
    if real is float:
        sgemm(&tb, &na, &Ncols, &M, &K, &one, <float *> B, &ldb, <float *> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &na, &Ncols, &M, &K, &one, <double *> B, &ldb, <double *> A, &lda,
              &beta, C, &ldc)
