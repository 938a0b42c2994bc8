/* cuda_api: the table that spladex_cuda_api_get() hands the host (see cuda_api.h). */
#include "cuda_api.h"

#include "cu_check.h"

namespace {
/* Positional (C++17 has no designated initializers): the order of cuda_api.h. */
const spladex_cuda_api kApi = {
    SPLADEX_CUDA_API_VERSION,
    (uint32_t)sizeof(spladex_cuda_api),
    enc_cuda_open,
    enc_cuda_submit,
    enc_cuda_collect,
    enc_cuda_describe,
    enc_cuda_close,
    cu_have_device,
    export_transpose_open,
    export_transpose_reserve,
    export_transpose_run,
    export_transpose_close,
};
}  // namespace

extern "C" const spladex_cuda_api *spladex_cuda_api_get(void) { return &kApi; }
