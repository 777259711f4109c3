/*
 * fc_winograd_inst.h -- instantiate the Winograd transforms
 * (fc_winograd_impl.h) for float and double, as fc_wino_*_<f32|f64>_<FC_MNAME>.
 * fc_kernels.c defines FC_M, FC_R, FC_MNAME, FC_BT, FC_AT and FC_G before each
 * inclusion; they are undefined again at the end.  Do not include it
 * anywhere else.
 */
#define FC_T float
#define FC_SFX FC_CAT(f32, FC_MNAME)
#include "fc_winograd_impl.h"
#undef FC_SFX
#undef FC_T

#define FC_T double
#define FC_SFX FC_CAT(f64, FC_MNAME)
#include "fc_winograd_impl.h"
#undef FC_SFX
#undef FC_T

#undef FC_M
#undef FC_R
#undef FC_MNAME
#undef FC_BT
#undef FC_AT
#undef FC_G
