/* embed_layernorm: one warp per token row; the row is summed into out, then normalized in place
 * (each lane reads back only what it wrote). Statistics in fp32 by two passes (mean, then the
 * centered variance), like torch: warp_layernorm_row of common.cuh. */
#include "embed_layernorm.h"

#include "common.cuh"
#include "cu_check.h"

namespace {
const int kWarps = 8;
}  // namespace

static __global__ void k_embed_layernorm(const int32_t *__restrict__ ids,
                                         const int *__restrict__ positions, int n,
                                         const float *__restrict__ word_emb,
                                         const float *__restrict__ pos_emb,
                                         const float *__restrict__ type_row,
                                         const float *__restrict__ gamma,
                                         const float *__restrict__ beta, float eps, int hidden,
                                         float *__restrict__ out, void *__restrict__ out_lp,
                                         int lp) {
  const int row = blockIdx.x * kWarps + (int)(threadIdx.x / 32);
  const int lane = (int)(threadIdx.x % 32);
  if (row >= n) return;
  const float *w = word_emb + (size_t)ids[row] * hidden;
  const float *p = pos_emb + (size_t)positions[row] * hidden;
  float *o = out + (size_t)row * hidden;
  float sum = 0.0f;
  for (int i = lane; i < hidden; i += 32) {
    float v = w[i] + p[i];
    if (type_row) v += type_row[i];
    o[i] = v;
    sum += v;
  }
  warp_layernorm_row(o, hidden, lane, sum, gamma, beta, eps, out_lp, (size_t)row * hidden, lp);
}

extern "C" int embed_layernorm_cuda(const int32_t *ids, const int *positions, int n,
                                    const float *word_emb, const float *pos_emb,
                                    const float *type_row, const float *gamma, const float *beta,
                                    float eps, int hidden, float *out, void *out_lp, cu_dtype lp,
                                    cudaStream_t stream) {
  if (n <= 0) return 0;
  const unsigned blocks = (unsigned)((n + kWarps - 1) / kWarps);
  CU_LAUNCH(blocks, kWarps * 32, 0, stream, k_embed_layernorm)
      (ids, positions, n, word_emb, pos_emb, type_row, gamma, beta, eps, hidden, out, out_lp,
       (int)lp);
  return CU_CHECK_LAUNCH("k_embed_layernorm", stream);
}
