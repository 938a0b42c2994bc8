/* residual_layernorm: out = LayerNorm(x + bias + residual), one warp per row, on the device.
 * CPU twin: ops_residual_layernorm (ops_cpu.h), same arguments in the same order (out may alias
 * x or residual); then an optional rounded copy of out for the next GEMM (out_lp in type lp, NULL
 * for none) and the stream. Device pointers. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_RESIDUAL_LAYERNORM_H
#define SPLADEX_CUDA_RESIDUAL_LAYERNORM_H

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int residual_layernorm_cuda(const float *x,        /* (N, H) */
                            const float *bias,     /* (H) or NULL */
                            const float *residual, /* (N, H) or NULL */
                            const float *gamma, const float *beta, /* (H) */
                            float eps, int n, int hidden,
                            float *out,            /* (N, H) */
                            void *out_lp, cu_dtype lp, /* (N, H) copy in lp, or NULL */
                            cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
