/* sparsify_gather: one block of CUTWIN_SCAN_BLOCK threads per document walks its row in tiles;
 * a block-wide exclusive scan of the kept flags gives each kept term its slot, so the ids come
 * out ascending (cutwin_sparsify_gather is the same loop, sequential). */
#include "sparsify_gather.h"

#include <cub/block/block_scan.cuh>

#include "common.cuh"
#include "cu_check.h"
#include "cuda_twins.h"

namespace {
const int kThreads = CUTWIN_SCAN_BLOCK;
}

static __global__ void __launch_bounds__(kThreads)
    k_sparsify_gather(const float *__restrict__ weights, int vocab, float threshold,
                      const int64_t *__restrict__ indptr, int32_t *__restrict__ indices,
                      float *__restrict__ values) {
  typedef cub::BlockScan<int, kThreads> scan_t;
  __shared__ typename scan_t::TempStorage scan_storage;
  const float *row = weights + (size_t)blockIdx.x * vocab;
  int64_t base = indptr[blockIdx.x];
  for (int v0 = 0; v0 < vocab; v0 += kThreads) {
    const int v = v0 + (int)threadIdx.x;
    const float w = v < vocab ? row[v] : 0.0f;
    const int keep = (v < vocab && w > threshold) ? 1 : 0;
    int pos, tile_kept;
    scan_t(scan_storage).ExclusiveSum(keep, pos, tile_kept);
    if (keep) {
      indices[base + pos] = v;
      values[base + pos] = w;
    }
    base += tile_kept;
    __syncthreads(); /* scan_storage is reused by the next tile */
  }
}

extern "C" int sparsify_gather_cuda(const float *weights, int n_docs, int vocab, float threshold,
                                    const int64_t *indptr, int32_t *indices, float *values,
                                    cudaStream_t stream) {
  if (n_docs <= 0) return 0;
  CU_LAUNCH((unsigned)n_docs, kThreads, 0, stream, k_sparsify_gather)
      (weights, vocab, threshold, indptr, indices, values);
  return CU_CHECK_LAUNCH("k_sparsify_gather", stream);
}
