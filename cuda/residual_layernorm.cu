/* residual_layernorm: one warp per row. out may alias x (fp32) or residual (so no __restrict__
 * on them): lane i reads x[i] and residual[i] before it writes out[i], and the later passes read
 * back only out[i] it wrote itself. x in fp16 / bf16 is widened by load_lp. Statistics in fp32,
 * two passes: warp_layernorm_row of common.cuh. */
#include "residual_layernorm.h"

#include "common.cuh"
#include "cu_check.h"

namespace {
const int kWarps = 8;
}  // namespace

static __global__ void k_residual_layernorm(const void *x, int x_type,
                                            const float *__restrict__ bias,
                                            const float *residual,
                                            const float *__restrict__ gamma,
                                            const float *__restrict__ beta, float eps, int n,
                                            int hidden, float *out, void *__restrict__ out_lp,
                                            int lp) {
  const int row = blockIdx.x * kWarps + (int)(threadIdx.x / 32);
  const int lane = (int)(threadIdx.x % 32);
  if (row >= n) return;
  const size_t base = (size_t)row * hidden;
  float sum = 0.0f;
  for (int i = lane; i < hidden; i += 32) {
    float v = load_lp(x, base + i, x_type);
    if (bias) v += bias[i];
    if (residual) v += residual[base + i];
    out[base + i] = v;
    sum += v;
  }
  warp_layernorm_row(out + base, hidden, lane, sum, gamma, beta, eps, out_lp, base, lp);
}

#ifndef SPLADEX_CUDA_EMU_KERNELS_ONLY /* tests/emu/test_lp_kernels_emu.cpp: the kernels alone */
extern "C" int residual_layernorm_cuda(const void *x, cu_dtype x_type, const float *bias,
                                       const float *residual,
                                       const float *gamma, const float *beta, float eps, int n,
                                       int hidden, float *out, void *out_lp, cu_dtype lp,
                                       cudaStream_t stream) {
  if (n <= 0) return 0;
  const unsigned blocks = (unsigned)((n + kWarps - 1) / kWarps);
  CU_LAUNCH(blocks, kWarps * 32, 0, stream, k_residual_layernorm)
      (x, (int)x_type, bias, residual, gamma, beta, eps, n, hidden, out, out_lp, (int)lp);
  return CU_CHECK_LAUNCH("k_residual_layernorm", stream);
}
#endif
