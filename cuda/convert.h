/* convert: out = x rounded to type t (fp32 copy, fp16 or bf16), on the device.
 * CPU twin: cu_convert (cu_dtype.h), same arguments in the same order, then the stream; the two
 * agree bit for bit. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_CONVERT_H
#define SPLADEX_CUDA_CONVERT_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int convert_cuda(const float *x, size_t n, cu_dtype t, void *out, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
