/* bias_gelu: elementwise over the (N, F) elements, one thread per column and row; erf GELU in
 * fp32 exactly as ops_bias_gelu writes it. */
#include "bias_gelu.h"

#include "common.cuh"
#include "cu_check.h"

/* Block (x, y) covers 256 columns of the rows y, y + gridDim.y, ...: the bias index is the column,
 * with no 64-bit division per element. */
static __global__ void k_bias_gelu(float *__restrict__ x, const float *__restrict__ bias, int n,
                                   int features, void *__restrict__ out_lp, int lp) {
  const float inv_sqrt2 = 0.70710678118654752440f;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= features) return;
  const float b = bias ? bias[c] : 0.0f;
  for (int r = blockIdx.y; r < n; r += gridDim.y) {
    const size_t i = (size_t)r * features + c;
    float v = x[i];
    if (bias) v += b;
    const float y = 0.5f * v * (1.0f + erff(v * inv_sqrt2));
    x[i] = y;
    if (out_lp) store_lp(out_lp, i, lp, y);
  }
}

extern "C" int bias_gelu_cuda(float *x, const float *bias, int n, int features, void *out_lp,
                              cu_dtype lp, cudaStream_t stream) {
  if (n <= 0 || features <= 0) return 0;
  const int threads = 256;
  dim3 grid((unsigned)((features + threads - 1) / threads), (unsigned)(n < 65535 ? n : 65535));
  k_bias_gelu<<<grid, threads, 0, stream>>>(x, bias, n, features, out_lp, (int)lp);
  return CU_CHECK_LAUNCH("k_bias_gelu", stream);
}
