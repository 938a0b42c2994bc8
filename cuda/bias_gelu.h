/* bias_gelu: in place x = gelu(x + bias), erf GELU, on the device.
 * bias_gelu_cuda: CPU twin ops_bias_gelu (ops_cpu.h), same arguments in the same order; then an
 *   optional rounded copy of the result for the next GEMM (out_lp in type lp, NULL for none) and
 *   the stream.
 * bias_gelu_lp_cuda: the same in place on a 16-bit tensor (the lp activations route: the GEMM
 *   wrote x in lp): x = round_lp(gelu(float(x) + bias)), no fp32 copy. CPU twin: ops_bias_gelu
 *   on the widened x, then cu_round. Returns ERR_ARG when lp is fp32.
 * (cuBLASLt's GELU epilogue is the tanh approximation, not erf, so it is not used.)
 * Device pointers. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_BIAS_GELU_H
#define SPLADEX_CUDA_BIAS_GELU_H

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int bias_gelu_cuda(float *x,          /* (N, F) */
                   const float *bias, /* (F) or NULL */
                   int n, int features,
                   void *out_lp, cu_dtype lp, /* (N, F) copy in lp, or NULL */
                   cudaStream_t stream);

int bias_gelu_lp_cuda(void *x,          /* (N, F) in lp, in place */
                      const float *bias, /* (F) or NULL */
                      int n, int features, cu_dtype lp, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
