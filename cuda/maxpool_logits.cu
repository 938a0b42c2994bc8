/* maxpool_logits: thread j of block (jx, by) owns column v0 + j for the documents by, by + gridDim.y,
 * ...: it reads the document's rows of the block (coalesced across the warp) and updates one
 * pooled value. Documents with no rows in [t0, t0 + n_rows) cost two loads. The comparison is
 * ops_maxpool_logits' `row > m ? row : m`, so NaNs behave the same on both backends. fp16 / bf16
 * logits (the lp route's GEMM output) are widened exactly by load_lp. */
#include "maxpool_logits.h"

#include "common.cuh"
#include "cu_check.h"

static __global__ void k_maxpool_logits(const void *__restrict__ logits, int logits_type, int ld,
                                        int t0,
                                        int n_rows, int v0, int vb,
                                        const int *__restrict__ doc_offsets, int n_docs,
                                        float *__restrict__ pooled, int vocab) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= vb) return;
  const int t_end = t0 + n_rows;
  for (int b = blockIdx.y; b < n_docs; b += gridDim.y) {
    const int s = max(doc_offsets[b], t0), e = min(doc_offsets[b + 1], t_end);
    if (s >= e) continue;
    float *dst = pooled + (size_t)b * vocab + v0 + j;
    float m = *dst;
    for (int t = s; t < e; t++) {
      const float r = load_lp(logits, (size_t)(t - t0) * ld + j, logits_type);
      m = r > m ? r : m;
    }
    *dst = m;
  }
}

#ifndef SPLADEX_CUDA_EMU_KERNELS_ONLY /* tests/emu/test_lp_kernels_emu.cpp: the kernels alone */
extern "C" int maxpool_logits_cuda(const void *logits, cu_dtype logits_type, int ld, int t0,
                                   int n_rows, int v0, int vb, const int *doc_offsets, int n_docs,
                                   float *pooled, int vocab, cudaStream_t stream) {
  if (n_rows <= 0 || vb <= 0 || n_docs <= 0) return 0;
  const int threads = 256;
  dim3 grid((unsigned)((vb + threads - 1) / threads), (unsigned)(n_docs < 65535 ? n_docs : 65535));
  CU_LAUNCH(grid, threads, 0, stream, k_maxpool_logits)
      (logits, (int)logits_type, ld, t0, n_rows, v0, vb, doc_offsets, n_docs, pooled, vocab);
  return CU_CHECK_LAUNCH("k_maxpool_logits", stream);
}
#endif
