/* convert: elementwise rounding fp32 -> fp32 / fp16 / bf16, grid-stride. */
#include "convert.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cu_check.h"

static __global__ void k_convert(const float *__restrict__ x, size_t n, int t,
                                 void *__restrict__ out) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (t == CU_F16)
      static_cast<__half *>(out)[i] = __float2half_rn(x[i]);
    else if (t == CU_BF16)
      static_cast<__nv_bfloat16 *>(out)[i] = __float2bfloat16_rn(x[i]);
    else
      static_cast<float *>(out)[i] = x[i];
  }
}

extern "C" int convert_cuda(const float *x, size_t n, cu_dtype t, void *out, cudaStream_t stream) {
  if (n == 0) return 0;
  const int threads = 256;
  size_t blocks = (n + threads - 1) / threads;
  if (blocks > 65536) blocks = 65536;
  k_convert<<<(unsigned)blocks, threads, 0, stream>>>(x, n, (int)t, out);
  return CU_CHECK_LAUNCH("k_convert", stream);
}
