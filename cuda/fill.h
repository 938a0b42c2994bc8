/* fill: x[i] = value for i in [0, n) on the device. CPU twin: ops_fill. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_FILL_H
#define SPLADEX_CUDA_FILL_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int fill_cuda(float *x, size_t n, float value, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
