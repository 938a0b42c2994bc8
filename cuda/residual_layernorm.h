/* residual_layernorm: out = LayerNorm(x + bias + residual), one warp per row, on the device.
 * CPU twin: ops_residual_layernorm (ops_cpu.h), same arguments in the same order (out may alias
 * x or residual) except that x comes with its storage type x_type (fp32, or fp16 / bf16: a GEMM's
 * rounded output, widened exactly; the sums and statistics are fp32 either way); then an optional
 * rounded copy of out for the next GEMM (out_lp in type lp, NULL for none; it must not alias x)
 * and the stream. Device pointers. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_RESIDUAL_LAYERNORM_H
#define SPLADEX_CUDA_RESIDUAL_LAYERNORM_H

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int residual_layernorm_cuda(const void *x,         /* (N, H) in x_type */
                            cu_dtype x_type,
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
