/* sparsify_weights: one block of CUTWIN_SCAN_BLOCK threads per document (cutwin_sparsify_weights
 * is the same algorithm, sequential):
 *   1. w = log1p(relu(pooled + bias)), w <= threshold -> 0; count the kept terms.
 *   2. if top_k > 0 and more are kept: radix select of the top_k-th largest float bits, 8 bits per
 *      pass from the top (kept weights are > 0, so their bits order like their values and the
 *      dropped zeros sort below them), with a 256-bin shared histogram per pass.
 *   3. zero every term below the cutoff, and of the terms equal to it keep the lowest ids: a
 *      block-wide exclusive scan of the tie flags over tiles of the row, in id order.
 * The row stays in global memory (about 120 KB for V = 30522) and is read 6 times at most; it is
 * L2-resident while its block runs. */
#include "sparsify_weights.h"

#include <cub/block/block_scan.cuh>

#include "common.cuh"
#include "cu_check.h"
#include "cuda_twins.h"

namespace {
const int kThreads = CUTWIN_SCAN_BLOCK;
}

static __global__ void __launch_bounds__(kThreads)
    k_sparsify_weights(float *__restrict__ pooled, const float *__restrict__ decoder_bias,
                       int vocab, float threshold, int top_k, int32_t *__restrict__ row_nnz) {
  typedef cub::BlockScan<int, kThreads> scan_t;
  __shared__ typename scan_t::TempStorage scan_storage;
  __shared__ int hist[256];
  __shared__ int s_count;
  __shared__ int s_digit, s_k;

  float *row = pooled + (size_t)blockIdx.x * vocab;
  if (threadIdx.x == 0) s_count = 0;
  __syncthreads();
  int kept = 0;
  for (int v = threadIdx.x; v < vocab; v += kThreads) {
    const float x = row[v] + decoder_bias[v];
    float w = x > 0.0f ? log1pf(x) : 0.0f;
    if (w > threshold)
      kept++;
    else
      w = 0.0f;
    row[v] = w;
  }
  atomicAdd(&s_count, kept);
  __syncthreads();
  kept = s_count;

  if (top_k > 0 && kept > top_k) {
    unsigned prefix = 0, mask = 0;
    int k = top_k;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
      __syncthreads();
      for (int v = threadIdx.x; v < vocab; v += kThreads) {
        const unsigned u = __float_as_uint(row[v]);
        if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        int digit = 255, kk = k;
        for (; digit > 0; digit--) {
          if (hist[digit] >= kk) break;
          kk -= hist[digit];
        }
        s_digit = digit;
        s_k = kk;
      }
      __syncthreads();
      prefix |= (unsigned)s_digit << shift;
      mask |= 255u << shift;
      k = s_k;
      __syncthreads(); /* hist and s_digit / s_k are rewritten by the next pass */
    }
    int ties_seen = 0;
    for (int v0 = 0; v0 < vocab; v0 += kThreads) {
      const int v = v0 + (int)threadIdx.x;
      const unsigned u = v < vocab ? __float_as_uint(row[v]) : 0u;
      const int tie = (v < vocab && u == prefix) ? 1 : 0;
      int rank, tile_ties;
      scan_t(scan_storage).ExclusiveSum(tie, rank, tile_ties);
      rank += ties_seen;
      if (v < vocab && (u < prefix || (tie && rank >= k))) row[v] = 0.0f;
      ties_seen += tile_ties;
      __syncthreads(); /* scan_storage is reused by the next tile */
    }
    kept = top_k;
  }
  if (threadIdx.x == 0) row_nnz[blockIdx.x] = kept;
}

extern "C" int sparsify_weights_cuda(float *pooled, const float *decoder_bias, int n_docs,
                                     int vocab, float threshold, int top_k, int32_t *row_nnz,
                                     float *scratch, cudaStream_t stream) {
  (void)scratch;
  if (n_docs <= 0) return 0;
  CU_LAUNCH((unsigned)n_docs, kThreads, 0, stream, k_sparsify_weights)
      (pooled, decoder_bias, vocab, threshold, top_k, row_nnz);
  return CU_CHECK_LAUNCH("k_sparsify_weights", stream);
}
