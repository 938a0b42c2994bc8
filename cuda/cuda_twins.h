/* cuda_twins: plain C twins of the math that exists only on the CUDA path.
 *
 * ops_cpu.h holds the CPU twins of the ops both backends share. The device kernels reach some of
 * the same results by other routes; each route is written here once more as a sequential C
 * function with the same arguments as its CUDA launcher (minus the stream), in the same order of
 * operations, so tests/test_cuda_twins.c can check the algorithm on any machine (no GPU needed)
 * and tests/test_ops_gpu.c can check the kernel against it on a GPU:
 *   - attention as the kernel does it: an online softmax over tiles of CUTWIN_KEY_TILE keys
 *   - top-k by a 4-pass radix select on the float bits (8 bits per pass), ties to the lower id
 *   - CSR compaction by block-wide exclusive scans over tiles of CUTWIN_SCAN_BLOCK terms
 *   - the prefix sum of the row counts into indptr
 *   - the decoder in (token block x vocabulary chunk) pieces, each max-pooled into (B, V)
 *   - the CSR -> CSC transpose that cusparseCsr2cscEx2 performs
 *   - the fused decoder + max (decoder_maxpool.cu): its grid order, its (token tile x vocabulary
 *     tile) epilogue and the atomic float max that merges documents spanning tiles
 *   - attention on tensor cores (attention_mma.cu): its rounding points to fp16 / bf16, its key
 *     tiles, its row-sum order, and the register fragment layouts of mma.sync m16n8k16
 * Legend: N tokens, B documents, H hidden, V vocab, NH heads, D head dim.
 * Plain C11; always built, with or without CUDA.
 */
#ifndef SPLADEX_CUDA_TWINS_H
#define SPLADEX_CUDA_TWINS_H

#include <stddef.h>
#include <stdint.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  CUTWIN_KEY_TILE = 32,     /* keys per shared-memory tile of the attention kernel (a warp) */
  CUTWIN_SCAN_BLOCK = 512,  /* threads of the sparsify / gather kernels (one block per doc) */
  CUTWIN_VOCAB_BLOCK = 4096 /* vocabulary chunk of the decoder GEMM + segmented max */
};

/* Same contract as ops_attention (ops_cpu.h); scratch: cutwin_attention_scratch_floats(D). */
size_t cutwin_attention_scratch_floats(int head_dim);
void cutwin_attention(const float *qkv,       /* (N, 3H) */
                      const int *doc_offsets, /* (n_docs + 1) */
                      int n_docs, int n_heads, int head_dim,
                      float *scratch,
                      float *out);            /* (N, H) */

/* Same contract and same result as ops_sparsify_weights (bit for bit: same log1pf, the same kept
 * set), by the radix select of the device. scratch is unused (may be NULL). */
void cutwin_sparsify_weights(float *pooled,             /* (B, V) */
                             const float *decoder_bias, /* (V) */
                             int n_docs, int vocab, float threshold, int top_k,
                             int32_t *row_nnz,          /* (B) */
                             float *scratch);

/* indptr[0] = 0, indptr[b + 1] = indptr[b] + row_nnz[b] for b in [0, n). */
void cutwin_row_offsets(const int32_t *row_nnz, /* (n) */
                        int n,
                        int64_t *indptr);       /* (n + 1) */

/* Same contract as ops_sparsify_gather, by tiles of CUTWIN_SCAN_BLOCK terms. */
void cutwin_sparsify_gather(const float *weights,  /* (B, V) */
                            int n_docs, int vocab, float threshold,
                            const int64_t *indptr, /* (B + 1) */
                            int32_t *indices,      /* (nnz) */
                            float *values);        /* (nnz) */

/* The CUDA encoder's decoder loop: for token blocks [t0, t0 + token_block) and vocabulary chunks
 * [v0, v0 + vocab_block), logits = rows . decoder_w[v0 : v0 + vb]^T (no bias) into
 * logits (token_block, vocab_block), then ops_maxpool_logits into pooled, which must start at
 * -INFINITY. The result equals the max over each document's full logit rows. */
void cutwin_decoder_maxpool(const float *rows,      /* (N, H) the MLM head output */
                            const float *decoder_w, /* (V, H) */
                            int n, int hidden, int vocab,
                            const int *doc_offsets, /* (B + 1) */
                            int n_docs, int token_block, int vocab_block,
                            float *logits,          /* (token_block, vocab_block) */
                            float *pooled);         /* (B, V) */

/* CSR (n_rows x n_cols, nnz entries, column ids in [0, n_cols)) to CSC: colptr (n_cols + 1),
 * and per column the row ids ascending with their values, as cusparseCsr2cscEx2 with
 * CUSPARSE_CSR2CSC_ALG1 produces. */
void cutwin_csr_to_csc(const int32_t *indptr,  /* (n_rows + 1) */
                       const int32_t *indices, /* (nnz) */
                       const float *values,    /* (nnz) */
                       int n_rows, int n_cols, int nnz,
                       int32_t *colptr,        /* (n_cols + 1) */
                       int32_t *rowind,        /* (nnz) */
                       float *cvalues);        /* (nnz) */

/* ---- the fused decoder + max of cuda/decoder_maxpool.cu ---- */

enum {
  CUTWIN_FUSED_TOKEN_TILE = 128,       /* tokens of one block tile */
  CUTWIN_FUSED_VOCAB_TILE = 128,       /* terms of one block tile */
  CUTWIN_FUSED_ROW_GROUPS = 2,         /* epilogue runs per term column: TOKEN_TILE / 2 rows each */
  CUTWIN_FUSED_GROUP_TOKEN_TILES = 32  /* grid order: token tiles per group (see the .cu) */
};

/* The order-preserving key of a float: key(a) < key(b) exactly when a < b for non-NaN a, b,
 * with -0.0 just below +0.0 (a total order: -inf < ... < -0.0 < +0.0 < ... < +inf). Positive
 * NaNs map above +inf, negative NaNs below -inf. cutwin_fmax_from_key inverts it (bit exact). */
uint32_t cutwin_fmax_key(float f);
float cutwin_fmax_from_key(uint32_t key);

/* The device's atomic float max (decoder_maxpool.cu) as one sequential step: the value that
 * *addr holds after atomic_fmax(addr, value) when it held `stored`. A value with the sign bit clear
 * goes through atomicMax on the int bits, one with it set through atomicMin on the unsigned bits.
 * For non-NaN operands this is cutwin_fmax_from_key(max(key(stored), key(value))): order-free,
 * -INFINITY its identity, +0.0 above -0.0. The kernel never merges a NaN. */
float cutwin_fmax_merge(float stored, float value);

/* Block `block` of the kernel's 1-D grid of n_token_tiles * n_vocab_tiles blocks: groups of
 * CUTWIN_FUSED_GROUP_TOKEN_TILES token tiles, the token tile fastest inside a group. */
void cutwin_fused_tile_of(int block, int n_token_tiles, int n_vocab_tiles,
                          int *token_tile, int *vocab_tile);

/* One run of the kernel's epilogue: rows [group * TOKEN_TILE / ROW_GROUPS, + TOKEN_TILE /
 * ROW_GROUPS) of the tile (clipped to m_rows), every term, as cutwin_fused_tile_epilogue below. The
 * kernel runs the runs of all tiles in no fixed order; the result must not depend on it. */
void cutwin_fused_run_epilogue(const float *tile,      /* (m_rows, ld) */
                               int ld, int t0, int m_rows, int v0, int n_cols, int group,
                               const int *doc_offsets, /* (B + 1) */
                               int n_docs,
                               float *pooled,          /* (B, V) */
                               int vocab);

/* The kernel's epilogue for one tile: tile holds the logits of rows [t0, t0 + m_rows) and terms
 * [v0, v0 + n_cols) (row r, term j at tile[r * ld + j]); for each term and each run of
 * TOKEN_TILE / ROW_GROUPS rows, the `x > m ? x : m` max from -INFINITY per document is stored
 * into pooled when the document lies wholly inside the run, else merged by cutwin_fmax_merge.
 * pooled must start at -INFINITY (as on the device). */
void cutwin_fused_tile_epilogue(const float *tile,      /* (m_rows, ld) */
                                int ld, int t0, int m_rows, int v0, int n_cols,
                                const int *doc_offsets, /* (B + 1) */
                                int n_docs,
                                float *pooled,          /* (B, V) */
                                int vocab);

/* decoder_maxpool_cuda's arguments minus the type and the stream (fp32 operands), plus `tile`,
 * the caller's scratch for one block tile's logits: the blocks in grid order, each tile's logits
 * by ops_linear, then cutwin_fused_tile_epilogue. pooled must start at -INFINITY. */
void cutwin_decoder_maxpool_fused(const float *rows,      /* (N, H) */
                                  const float *decoder_w, /* (V, H) */
                                  int n, int hidden, int vocab,
                                  const int *doc_offsets, /* (B + 1) */
                                  int n_docs,
                                  float *tile,            /* (TOKEN_TILE, VOCAB_TILE) scratch */
                                  float *pooled);         /* (B, V) */

/* ---- attention on tensor cores (cuda/attention_mma.cu) ---- */

enum {
  CUTWIN_MMA_QUERY_BLOCK = 64, /* queries per thread block: 4 warps of 16 (the M of m16n8k16) */
  CUTWIN_MMA_KEY_TILE = 64,    /* keys per shared-memory tile: one online-softmax step */
  CUTWIN_MMA_KEY_CHUNK = 16,   /* keys per P.V mma (its K); a tile's chunks past the document's
                                  end are skipped (their probabilities are exactly 0 anyway) */
  CUTWIN_MMA_MAX_HEAD_DIM = 128 /* the largest head dim (a multiple of 16) the kernel takes */
};

/* 1 when the kernel (and so the twin) supports head dim D: a multiple of 16 in [16, 128]. Plain C:
 * attention_mma_supported (attention_mma.h) is this plus the operand type; the CPU tests ask it. */
int cutwin_attention_mma_supported(int head_dim);

/* The kernel's algorithm, sequentially: for each document, head and block of QUERY_BLOCK queries,
 * q = round_lp((qkv_q + bias_q) * scale) with scale = 1.0f / sqrtf(D); then per tile of KEY_TILE
 * keys, k = round_lp(qkv_k + bias_k), v = round_lp(qkv_v + bias_v), for each query
 *   s_j = q.k_j (fp32), m' = fmaxf(m, max_j s_j), c = expf(m - m'), p_j = expf(s_j - m'),
 *   l = fmaf(l, c, rowsum), o = o * c + sum_j round_lp(p_j) v_j (fp32), m = m',
 * where rowsum adds the p_j in the kernel's order (see cutwin_attention_mma_rowsum); at the end
 * out = round_lp(o / l). m starts at -INFINITY, l and o at 0. With lp = CU_F32 nothing is
 * rounded and the result is ops_attention's up to fp32 summation order. qkv holds the kernel's
 * input widened to float (exactly, from its qkv_type); out receives the stored values as floats.
 * Rows outside the documents are not written. */
size_t cutwin_attention_mma_scratch_floats(int head_dim);
void cutwin_attention_mma(const float *qkv,       /* (N, 3H) q | k | v per row */
                          const float *qkv_bias,  /* (3H), or NULL */
                          const int *doc_offsets, /* (n_docs + 1) absolute, ascending */
                          int n_docs, int n_heads, int head_dim,
                          cu_dtype lp,            /* CU_F16, CU_BF16, or CU_F32: no rounding */
                          float *scratch,         /* cutwin_attention_mma_scratch_floats(D) */
                          float *out);            /* (N, H) */

/* The row sum of one tile's probabilities p[0, n_keys) (n_keys <= KEY_TILE) as the kernel forms
 * it: lane t of the row's quad adds p[8 nb + 2t] then p[8 nb + 2t + 1] for nb = 0, 1, ... into
 * its partial sum from 0, then two butterfly steps of shuffles give (s0 + s1) + (s2 + s3). */
float cutwin_attention_mma_rowsum(const float *p, int n_keys);

/* The register fragments of mma.sync.aligned.m16n8k16.row.col with fp16 / bf16 operands and
 * fp32 accumulators (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), as
 * the kernel indexes them; g = lane >> 2 (groupID), t = lane & 3 (threadID_in_group):
 *   A (16 x 16, row-major): 32-bit register r (0..3) holds (row, col) in its low half and
 *     (row, col + 1) in its high half: row = g + 8 (r & 1), col = 2t + 8 (r >> 1)
 *   B (16 x 8, column-major): register r (0..1) holds (k, n) low and (k + 1, n) high:
 *     k = 2t + 8r, n = g
 *   C, D (16 x 8, fp32): float i (0..3) is (row, col): row = g + 8 (i >> 1), col = 2t + (i & 1)
 * Shared by the kernel (host and device) and tests/test_cuda_twins.c, which checks them against
 * the ISA's per-element formulas and runs the kernel's fragment walk on the CPU. */
#if defined(__CUDACC__)
#define CUTWIN_FRAGMENT_FN static inline __host__ __device__
#else
#define CUTWIN_FRAGMENT_FN static inline
#endif
CUTWIN_FRAGMENT_FN int cutwin_mma_a_row(int lane, int reg) { return (lane >> 2) + 8 * (reg & 1); }
CUTWIN_FRAGMENT_FN int cutwin_mma_a_col(int lane, int reg) { return 2 * (lane & 3) + 8 * (reg >> 1); }
CUTWIN_FRAGMENT_FN int cutwin_mma_b_k(int lane, int reg) { return 2 * (lane & 3) + 8 * reg; }
CUTWIN_FRAGMENT_FN int cutwin_mma_b_n(int lane) { return lane >> 2; }
CUTWIN_FRAGMENT_FN int cutwin_mma_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
CUTWIN_FRAGMENT_FN int cutwin_mma_c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

#ifdef __cplusplus
}
#endif

#endif
