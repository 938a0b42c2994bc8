/* attention: block (b, h, z) computes queries [z*QB, z*QB + QB) of document b, head h.
 *
 * The block stages its (pre-scaled) queries in shared memory, then walks the document's keys in
 * tiles of 32 (one key per lane): K tile padded to D+1 floats per row so lane j's dot product
 * reads bank-conflict free, V tile row-major. Each warp owns QW = 4 queries and keeps, per query,
 * the running max m, the running sum l and its slice of the output (lane holds columns lane,
 * lane+32, ..: at most 4 for D <= 128) in registers: the online softmax of cutwin_attention.
 * fp32 throughout (the QKV GEMM writes fp32). No padding exists: the keys of a tile past the
 * document's end get score -inf (probability 0), and queries past the end are skipped by their
 * warp, which still takes part in every __syncthreads. */
#include "attention.h"

extern "C" {
#include "err.h"
}
#include "common.cuh"
#include "cu_check.h"
#include "cuda_twins.h"

namespace {
const int kTile = CUTWIN_KEY_TILE; /* keys per tile = warp size */
const int kQueriesPerWarp = 4;
const int kMaxSlices = ATTENTION_MAX_HEAD_DIM / 32;

/* Warps per block for head dim D: 8 (32 queries) up to D = 64, else 4 (16 queries), so the
 * shared memory stays under the default 48 KiB for every D <= 128. */
int warps_for(int head_dim) { return head_dim <= 64 ? 8 : 4; }

size_t smem_floats(int head_dim, int warps) {
  const size_t qb = (size_t)warps * kQueriesPerWarp;
  return qb * head_dim + (size_t)kTile * (head_dim + 1) + (size_t)kTile * head_dim;
}
}  // namespace

static __global__ void __launch_bounds__(256) k_attention(const float *__restrict__ qkv,
                                   const int *__restrict__ doc_offsets, int n_heads, int head_dim,
                                   float scale, float *__restrict__ out, void *__restrict__ out_lp,
                                   int lp) {
  CU_DYNAMIC_SHARED(float, smem, 16);
  const int b = blockIdx.x, h = blockIdx.y;
  const int start = doc_offsets[b], len = doc_offsets[b + 1] - start;
  const int warps = (int)(blockDim.x / 32), warp = (int)(threadIdx.x / 32);
  const int lane = (int)(threadIdx.x % 32);
  const int qb = warps * kQueriesPerWarp;
  const int q0 = (int)blockIdx.z * qb;
  if (q0 >= len) return; /* uniform over the block, before any barrier */
  const int D = head_dim, H = n_heads * head_dim;
  const size_t ld = (size_t)3 * H;
  float *qs = smem;                  /* (qb, D) */
  float *ks = qs + (size_t)qb * D;   /* (kTile, D + 1) */
  float *vs = ks + (size_t)kTile * (D + 1); /* (kTile, D) */

  for (int i = threadIdx.x; i < qb * D; i += blockDim.x) {
    const int r = i / D, c = i % D, t = q0 + r;
    qs[i] = t < len ? qkv[(size_t)(start + t) * ld + (size_t)h * D + c] * scale : 0.0f;
  }

  float m[kQueriesPerWarp], l[kQueriesPerWarp], o[kQueriesPerWarp][kMaxSlices];
#pragma unroll
  for (int qi = 0; qi < kQueriesPerWarp; qi++) {
    m[qi] = -INFINITY;
    l[qi] = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxSlices; r++) o[qi][r] = 0.0f;
  }

  for (int k0 = 0; k0 < len; k0 += kTile) {
    __syncthreads(); /* the previous tile is consumed (first pass: nothing to wait for) */
    for (int i = threadIdx.x; i < kTile * D; i += blockDim.x) {
      const int r = i / D, c = i % D, t = k0 + r;
      float kv = 0.0f, vv = 0.0f;
      if (t < len) {
        const float *row = qkv + (size_t)(start + t) * ld + (size_t)h * D + c;
        kv = row[H];
        vv = row[2 * (size_t)H];
      }
      ks[r * (D + 1) + c] = kv;
      vs[r * D + c] = vv;
    }
    __syncthreads(); /* the tile (and, the first time, the queries) are in shared memory */
    const bool key_ok = k0 + lane < len;
    const int n_keys = min(kTile, len - k0);
#pragma unroll
    for (int qi = 0; qi < kQueriesPerWarp; qi++) {
      const int r = warp * kQueriesPerWarp + qi;
      if (q0 + r >= len) continue; /* uniform over the warp */
      const float *q = qs + (size_t)r * D;
      const float *k = ks + (size_t)lane * (D + 1);
      float s = 0.0f;
      for (int c = 0; c < D; c++) s += q[c] * k[c];
      s = key_ok ? s : -INFINITY;
      const float mnew = fmaxf(m[qi], warp_max(s)); /* finite: the tile has a valid key */
      const float corr = expf(m[qi] - mnew);         /* 0 on the first tile */
      const float p = expf(s - mnew);                /* 0 for a key past the end */
      l[qi] = l[qi] * corr + warp_sum(p);
#pragma unroll
      for (int sl = 0; sl < kMaxSlices; sl++) o[qi][sl] *= corr;
      for (int j = 0; j < n_keys; j++) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int sl = 0; sl < kMaxSlices; sl++) {
          const int c = lane + 32 * sl;
          if (c < D) o[qi][sl] += pj * vs[j * D + c];
        }
      }
      m[qi] = mnew;
    }
  }

#pragma unroll
  for (int qi = 0; qi < kQueriesPerWarp; qi++) {
    const int t = q0 + warp * kQueriesPerWarp + qi;
    if (t >= len) continue;
    const float inv = 1.0f / l[qi];
    const size_t base = (size_t)(start + t) * H + (size_t)h * D;
#pragma unroll
    for (int sl = 0; sl < kMaxSlices; sl++) {
      const int c = lane + 32 * sl;
      if (c < D) {
        const float y = o[qi][sl] * inv;
        if (out) out[base + c] = y;
        if (out_lp) store_lp(out_lp, base + c, lp, y);
      }
    }
  }
}

extern "C" int attention_cuda(const float *qkv, const int *doc_offsets, int n_docs, int n_heads,
                              int head_dim, float *scratch, float *out, void *out_lp, cu_dtype lp,
                              int max_len, cudaStream_t stream) {
  (void)scratch;
  if (n_docs <= 0 || max_len <= 0) return 0;
  if (head_dim < 1 || head_dim > ATTENTION_MAX_HEAD_DIM)
    return err_set(ERR_ARG, "attention: head dim %d is outside [1, %d]", head_dim,
                   ATTENTION_MAX_HEAD_DIM);
  if (n_heads < 1 || n_heads > 65535) return err_set(ERR_ARG, "attention: %d heads", n_heads);
  const int warps = warps_for(head_dim);
  const int qb = warps * kQueriesPerWarp;
  const int z = (max_len + qb - 1) / qb;
  if (z > 65535) return err_set(ERR_ARG, "attention: max length %d is too long", max_len);
  const size_t smem = smem_floats(head_dim, warps) * sizeof(float);
  dim3 grid((unsigned)n_docs, (unsigned)n_heads, (unsigned)z);
  CU_LAUNCH(grid, warps * 32, smem, stream, k_attention)
      (qkv, doc_offsets, n_heads, head_dim, 1.0f / sqrtf((float)head_dim), out, out_lp, (int)lp);
  return CU_CHECK_LAUNCH("k_attention", stream);
}
