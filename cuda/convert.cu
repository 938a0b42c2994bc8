/* convert: elementwise rounding fp32 -> fp32 / fp16 / bf16, grid-stride. */
#include "convert.h"

#include "common.cuh"
#include "cu_check.h"

static __global__ void k_convert(const float *__restrict__ x, size_t n, int t,
                                 void *__restrict__ out) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    store_lp(out, i, t, x[i]);
}

extern "C" int convert_cuda(const float *x, size_t n, cu_dtype t, void *out, cudaStream_t stream) {
  if (n == 0) return 0;
  const int threads = 256;
  CU_LAUNCH(grid_stride_blocks(n, threads), threads, 0, stream, k_convert)(x, n, (int)t, out);
  return CU_CHECK_LAUNCH("k_convert", stream);
}
