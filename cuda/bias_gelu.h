/* bias_gelu: in place x = gelu(x + bias), erf GELU, on the device.
 * CPU twin: ops_bias_gelu (ops_cpu.h), same arguments in the same order; then an optional rounded
 * copy of the result for the next GEMM (out_lp in type lp, NULL for none) and the stream.
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

#ifdef __cplusplus
}
#endif

#endif
