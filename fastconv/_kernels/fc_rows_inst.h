/*
 * fc_rows_inst.h -- instantiate the row kernels (fc_rows_impl.h) for float
 * and double, as fc_rows_<f32|f64>_<FC_ISA>.  fc_kernels.c defines
 * FC_VBYTES, FC_TARGET, FC_HAS_FMA and FC_ISA before each inclusion; they are undefined
 * again at the end.  Do not include it anywhere else.
 */
#define FC_T float
#define FC_ITYPE int32_t
#define FC_NAME FC_CAT(fc_rows_f32, FC_ISA)
#include "fc_rows_impl.h"
#undef FC_NAME
#undef FC_ITYPE
#undef FC_T

#define FC_T double
#define FC_ITYPE int64_t
#define FC_NAME FC_CAT(fc_rows_f64, FC_ISA)
#include "fc_rows_impl.h"
#undef FC_NAME
#undef FC_ITYPE
#undef FC_T

#undef FC_ISA
#undef FC_HAS_FMA
#undef FC_TARGET
#undef FC_VBYTES
