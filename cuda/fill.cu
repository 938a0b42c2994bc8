/* fill: grid-stride constant fill (cudaMemset cannot write -INFINITY floats). */
#include "fill.h"

#include "common.cuh"
#include "cu_check.h"

static __global__ void k_fill(float *__restrict__ x, size_t n, float value) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) x[i] = value;
}

extern "C" int fill_cuda(float *x, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return 0;
  const int threads = 256;
  CU_LAUNCH(grid_stride_blocks(n, threads), threads, 0, stream, k_fill)(x, n, value);
  return CU_CHECK_LAUNCH("k_fill", stream);
}
