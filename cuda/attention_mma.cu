/* attention_mma: block (b, h, z) computes queries [z*64, z*64 + 64) of document b, head h on
 * tensor cores (mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}, sm_80 and later).
 *
 * Kernel: k_attention_mma<D, T> (D = head dim, a multiple of 16 up to 128; T = __half or
 * __nv_bfloat16), 128 threads = 4 warps, each warp 16 queries (rows of the m16 tiles).
 *  1. The block stages its queries, (x + bias) * scale rounded to T, into the K buffer, and each
 *     warp loads its 16 x D slice into registers once: D/16 A fragments.
 *  2. For each tile of 64 keys (CUTWIN_MMA_KEY_TILE): K staged row-major (key, dim) and V
 *     transposed (dim, key), both rounded to T, rows padded by 8 elements (4 words) so that the
 *     fragment loads (8 rows x 4 words per warp) hit 32 distinct banks. Only the 16-key chunks
 *     that hold a key of the document are staged and computed; keys past the end inside the last
 *     chunk are staged as 0 and get probability exactly 0 (score -inf).
 *  3. S = q k^T: per 8-key column block nb, D/16 mma into 4 fp32 registers (C fragments). Row max
 *     and row sum: each lane's part, then the quad (4 lanes of a row) by __shfl_xor_sync 1, 2.
 *     m' = max(m, tile max), c = expf(m - m'), p = expf(S - m'), l = fmaf(l, c, sum p), O *= c.
 *  4. O += P V: the C fragments of two adjacent column blocks, rounded to T in registers, are the
 *     A fragment of one m16n8k16 (no shared memory): A register 0 = C(2kc)[0..1],
 *     1 = C(2kc)[2..3], 2 = C(2kc + 1)[0..1], 3 = C(2kc + 1)[2..3] (rows g / g + 8, keys 2t
 *     and 8 + 2t of the chunk: the layouts of cuda_twins.h).
 *  5. out = T(O / l), two adjacent columns per 32-bit store; rows past the end are not stored.
 * The order of operations is cutwin_attention_mma's (cuda_twins.c); the two differ only in the
 * fp32 summation order inside the mma and in expf's last bits.
 *
 * Resources (nvcc 13.0 -O3 -Xptxas -v, 0 bytes stack, 0 bytes spill stores / loads for every
 * instance; registers the same for __half and __nv_bfloat16; static shared memory):
 *   D          16     32     48     64     80     96    112    128
 *   sm_80     128     96    128    128    138    168    168    168   registers
 *   sm_90      96     84    128    128    138    168    168    168   registers
 *   smem     5376   9728  14080  18432  22784  27136  31488  35840   bytes
 * At D = 64: 128 registers x 128 threads, 4 blocks (16 warps) per SM by registers.
 */
#include "attention_mma.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include "err.h"
}
#include "common.cuh"
#include "cu_check.h"
#include "cuda_twins.h"

namespace {
const int kQueryBlock = CUTWIN_MMA_QUERY_BLOCK;
const int kKeyTile = CUTWIN_MMA_KEY_TILE;
const int kChunk = CUTWIN_MMA_KEY_CHUNK;
const int kWarps = kQueryBlock / 16;
const int kThreads = 32 * kWarps;
const int kPadWords = 4; /* 8 elements of padding per shared-memory row */
static_assert(kQueryBlock <= kKeyTile, "the queries are staged in the K tile's buffer");
static_assert(kChunk == 16 && kKeyTile % kChunk == 0, "chunks are the K of m16n8k16");

/* The operand type T: packing two floats into one 32-bit register (low half = lo, as .x of
 * __floats2half2_rn / __floats2bfloat162_rn) and D += A B by one mma.sync m16n8k16. */
template <typename Pair> __device__ __forceinline__ uint32_t pair_bits(Pair v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

#define ATTN_MMA_SYNC(type)                                                                     \
  asm("mma.sync.aligned.m16n8k16.row.col.f32." type "." type ".f32 {%0, %1, %2, %3}, "          \
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                                          \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                         \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1))

template <typename T> struct Operand;

template <> struct Operand<__half> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    return pair_bits(__floats2half2_rn(lo, hi));
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    ATTN_MMA_SYNC("f16");
  }
};

template <> struct Operand<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    return pair_bits(__floats2bfloat162_rn(lo, hi));
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    ATTN_MMA_SYNC("bf16");
  }
};
#undef ATTN_MMA_SYNC

/* Row-major staging of rows [0, n_rows) of a (document, head) slice: row r, columns [col, col + D)
 * of qkv row first_row + r (widened by load_lp), as (x + bias) * scale (scale 1 for the keys:
 * exact), rounded to T; rows
 * r >= n_valid are 0. dst: (n_rows, D / 2 + kPadWords) words, two elements per word. */
template <typename T>
__device__ __forceinline__ void stage_rows(uint32_t *dst, int row_words, const void *qkv,
                                           int qkv_type, size_t ld, size_t first_row, size_t col,
                                           const float *bias, int n_valid, int n_rows, int D,
                                           float scale) {
  const int pairs = D / 2;
  for (int i = (int)threadIdx.x; i < n_rows * pairs; i += kThreads) {
    const int r = i / pairs, c = 2 * (i - r * pairs);
    float x0 = 0.0f, x1 = 0.0f;
    if (r < n_valid) {
      const size_t at = (first_row + (size_t)r) * ld + col + (size_t)c;
      x0 = load_lp(qkv, at, qkv_type);
      x1 = load_lp(qkv, at + 1, qkv_type);
      if (bias) {
        x0 += bias[c];
        x1 += bias[c + 1];
      }
      x0 *= scale;
      x1 *= scale;
    }
    dst[r * row_words + c / 2] = Operand<T>::pack(x0, x1);
  }
}

/* Transposed staging of the V tile: dst (D, kKeyTile / 2 + kPadWords) words, word (c, j / 2)
 * holds keys j (low) and j + 1 (high) of column c, x + bias rounded to T; keys >= n_valid are 0.
 * Keys [0, n_keys) are written (n_keys even). */
template <typename T>
__device__ __forceinline__ void stage_v_transposed(uint32_t *dst, int row_words, const void *qkv,
                                                   int qkv_type, size_t ld, size_t first_row,
                                                   size_t col, const float *bias, int n_valid,
                                                   int n_keys, int D) {
  for (int i = (int)threadIdx.x; i < (n_keys / 2) * D; i += kThreads) {
    const int kp = i / D, c = i - kp * D, j = 2 * kp;
    float x0 = 0.0f, x1 = 0.0f;
    const size_t at = (first_row + (size_t)j) * ld + col + (size_t)c;
    if (j < n_valid) {
      x0 = load_lp(qkv, at, qkv_type);
      if (bias) x0 += bias[c];
    }
    if (j + 1 < n_valid) {
      x1 = load_lp(qkv, at + ld, qkv_type);
      if (bias) x1 += bias[c];
    }
    dst[c * row_words + kp] = Operand<T>::pack(x0, x1);
  }
}

template <int D, typename T>
__global__ void __launch_bounds__(kThreads)
    k_attention_mma(const void *__restrict__ qkv, int qkv_type, const float *__restrict__ bias,
                    const int *__restrict__ doc_offsets, int n_heads, float scale,
                    T *__restrict__ out) {
  constexpr int kRowWords = D / 2 + kPadWords;        /* K (and Q) rows: (key, dim) */
  constexpr int kVWords = kKeyTile / 2 + kPadWords;   /* V^T rows: (dim, key) */
  constexpr int kDimSteps = D / 16;                   /* the K steps of q k^T */
  constexpr int kKeyBlocks = kKeyTile / 8;            /* the N blocks of q k^T */
  constexpr int kDimBlocks = D / 8;                   /* the N blocks of P V */
  __shared__ uint32_t ks[kKeyTile * kRowWords];
  __shared__ uint32_t vt[D * kVWords];

  const int b = (int)blockIdx.x, h = (int)blockIdx.y;
  const int start = doc_offsets[b], len = doc_offsets[b + 1] - start;
  const int q0 = (int)blockIdx.z * kQueryBlock;
  if (q0 >= len) return; /* uniform over the block, before any barrier */
  const int warp = (int)(threadIdx.x / 32), lane = (int)(threadIdx.x % 32);
  const int H = n_heads * D;
  const size_t ld = (size_t)3 * H;
  const size_t cq = (size_t)h * D, ck = (size_t)H + cq, cv = 2 * (size_t)H + cq;
  const float *bq = bias ? bias + cq : nullptr;
  const float *bk = bias ? bias + ck : nullptr;
  const float *bv = bias ? bias + cv : nullptr;
  const int nq = min(kQueryBlock, len - q0);
  const int row0 = 16 * warp;         /* the warp's first query in the block */
  const bool active = row0 < nq;      /* uniform over the warp */

  /* 1. queries -> ks -> registers (A fragments, one per 16 dims) */
  stage_rows<T>(ks, kRowWords, qkv, qkv_type, ld, (size_t)(start + q0), cq, bq, nq,
                (nq + 15) / 16 * 16, D, scale);
  __syncthreads();
  uint32_t qa[kDimSteps][4];
#pragma unroll
  for (int kk = 0; kk < kDimSteps; kk++)
#pragma unroll
    for (int r = 0; r < 4; r++)
      qa[kk][r] = active ? ks[(row0 + cutwin_mma_a_row(lane, r)) * kRowWords +
                              (16 * kk + cutwin_mma_a_col(lane, r)) / 2]
                         : 0u;

  float o[kDimBlocks][4];
#pragma unroll
  for (int nb = 0; nb < kDimBlocks; nb++)
#pragma unroll
    for (int i = 0; i < 4; i++) o[nb][i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; /* rows g, g + 8 */

  for (int k0 = 0; k0 < len; k0 += kKeyTile) {
    const int nk = min(kKeyTile, len - k0);
    const int n_chunks = (nk + kChunk - 1) / kChunk;
    __syncthreads(); /* every warp is done with ks (queries or the last tile) and vt */
    stage_rows<T>(ks, kRowWords, qkv, qkv_type, ld, (size_t)(start + k0), ck, bk, nk,
                  n_chunks * kChunk, D, 1.0f);
    stage_v_transposed<T>(vt, kVWords, qkv, qkv_type, ld, (size_t)(start + k0), cv, bv, nk,
                          n_chunks * kChunk, D);
    __syncthreads();
    if (!active) continue; /* uniform over the warp; it still joins every barrier */

    /* 3. S = q k^T: s[nb] holds keys 8 nb + 2t, + 1 of rows g (i = 0, 1) and g + 8 (i = 2, 3) */
    float s[kKeyBlocks][4];
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; nb++) {
#pragma unroll
      for (int i = 0; i < 4; i++) s[nb][i] = 0.0f;
      if (nb / 2 < n_chunks) {
        const uint32_t *krow = ks + (8 * nb + cutwin_mma_b_n(lane)) * kRowWords;
#pragma unroll
        for (int kk = 0; kk < kDimSteps; kk++)
          Operand<T>::mma(s[nb], qa[kk], krow[(16 * kk + cutwin_mma_b_k(lane, 0)) / 2],
                          krow[(16 * kk + cutwin_mma_b_k(lane, 1)) / 2]);
      }
    }
    /* keys past the end (the skipped chunks included) score -inf; the tile max per row */
    float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; nb++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        if (8 * nb + cutwin_mma_c_col(lane, i) >= nk) s[nb][i] = -INFINITY;
        tmax[i >> 1] = fmaxf(tmax[i >> 1], s[nb][i]);
      }
    float corr[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
      tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(0xffffffffu, tmax[r], 1));
      tmax[r] = fmaxf(tmax[r], __shfl_xor_sync(0xffffffffu, tmax[r], 2));
      const float mnew = fmaxf(m[r], tmax[r]); /* finite: the tile holds a key of the doc */
      corr[r] = expf(m[r] - mnew);             /* 0 on the first tile */
      m[r] = mnew;
    }
    /* p = expf(s - m), summed per row in cutwin_attention_mma_rowsum's order */
#pragma unroll
    for (int nb = 0; nb < kKeyBlocks; nb++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        s[nb][i] = expf(s[nb][i] - m[i >> 1]); /* exactly 0 for a key past the end */
        sum[i >> 1] += s[nb][i];
      }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
      sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
      l[r] = __fmaf_rn(l[r], corr[r], sum[r]);
    }
#pragma unroll
    for (int nb = 0; nb < kDimBlocks; nb++)
#pragma unroll
      for (int i = 0; i < 4; i++) o[nb][i] *= corr[i >> 1];

    /* 4. O += P V, one 16-key chunk at a time: P from registers, V^T from shared memory */
#pragma unroll
    for (int kc = 0; kc < kKeyTile / kChunk; kc++) {
      if (kc >= n_chunks) continue;
      const uint32_t pa[4] = {Operand<T>::pack(s[2 * kc][0], s[2 * kc][1]),
                              Operand<T>::pack(s[2 * kc][2], s[2 * kc][3]),
                              Operand<T>::pack(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                              Operand<T>::pack(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int nb = 0; nb < kDimBlocks; nb++) {
        const uint32_t *vrow = vt + (8 * nb + cutwin_mma_b_n(lane)) * kVWords;
        Operand<T>::mma(o[nb], pa, vrow[(16 * kc + cutwin_mma_b_k(lane, 0)) / 2],
                        vrow[(16 * kc + cutwin_mma_b_k(lane, 1)) / 2]);
      }
    }
  }

  /* 5. out = T(O / l): C element i of o[nb] is row g + 8 (i >> 1), column 8 nb + 2t + (i & 1) */
  if (!active) return;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int query = q0 + row0 + cutwin_mma_c_row(lane, 2 * r);
    if (query >= len) continue;
    T *dst = out + (size_t)(start + query) * H + cq;
#pragma unroll
    for (int nb = 0; nb < kDimBlocks; nb++) {
      const int c = 8 * nb + cutwin_mma_c_col(lane, 2 * r);
      *reinterpret_cast<uint32_t *>(dst + c) =
          Operand<T>::pack(o[nb][2 * r] / l[r], o[nb][2 * r + 1] / l[r]);
    }
  }
}

#ifndef SPLADEX_CUDA_EMU_KERNELS_ONLY /* tests/emu/test_attention_mma_emu.cpp: the kernel alone */
template <int D, typename T>
void launch(dim3 grid, cudaStream_t stream, const void *qkv, int qkv_type, const float *bias,
            const int *doc_offsets, int n_heads, void *out) {
  CU_LAUNCH(grid, kThreads, 0, stream, k_attention_mma<D, T>)
      (qkv, qkv_type, bias, doc_offsets, n_heads, 1.0f / sqrtf((float)D), static_cast<T *>(out));
}

template <typename T>
void launch_t(int head_dim, dim3 grid, cudaStream_t stream, const void *qkv, int qkv_type,
              const float *bias, const int *doc_offsets, int n_heads, void *out) {
  switch (head_dim) {
    case 16: launch<16, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    case 32: launch<32, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    case 48: launch<48, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    case 64: launch<64, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    case 80: launch<80, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    case 96: launch<96, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    case 112: launch<112, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
    default: launch<128, T>(grid, stream, qkv, qkv_type, bias, doc_offsets, n_heads, out); break;
  }
}
#endif
}  // namespace

#ifndef SPLADEX_CUDA_EMU_KERNELS_ONLY
extern "C" int attention_mma_supported(int head_dim, cu_dtype lp) {
  return cutwin_attention_mma_supported(head_dim) && (lp == CU_F16 || lp == CU_BF16);
}

extern "C" int attention_mma_cuda(const void *qkv, cu_dtype qkv_type, const float *qkv_bias,
                                  const int *doc_offsets, int n_docs, int n_heads, int head_dim,
                                  void *out_lp, cu_dtype lp, int max_len, cudaStream_t stream) {
  if (!attention_mma_supported(head_dim, lp))
    return err_set(ERR_ARG,
                   "attention_mma: head dim %d with %s operands is not supported (head dim a "
                   "multiple of 16 in [16, %d], operands fp16 or bf16)",
                   head_dim, cu_dtype_name(lp), ATTN_MMA_MAX_HEAD_DIM);
  if (qkv_type != CU_F32 && qkv_type != CU_F16 && qkv_type != CU_BF16)
    return err_set(ERR_ARG, "attention_mma: qkv type %d is not fp32, fp16 or bf16", (int)qkv_type);
  if (n_heads < 1 || n_heads > 65535) return err_set(ERR_ARG, "attention_mma: %d heads", n_heads);
  if (n_docs <= 0 || max_len <= 0) return 0;
  const int z = (max_len + kQueryBlock - 1) / kQueryBlock;
  if (z > 65535) return err_set(ERR_ARG, "attention_mma: max length %d is too long", max_len);
  const dim3 grid((unsigned)n_docs, (unsigned)n_heads, (unsigned)z);
  if (lp == CU_F16)
    launch_t<__half>(head_dim, grid, stream, qkv, (int)qkv_type, qkv_bias, doc_offsets, n_heads,
                     out_lp);
  else
    launch_t<__nv_bfloat16>(head_dim, grid, stream, qkv, (int)qkv_type, qkv_bias, doc_offsets,
                            n_heads, out_lp);
  return CU_CHECK_LAUNCH("k_attention_mma", stream);
}
#endif
