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
 * Legend: N tokens, B documents, H hidden, V vocab, NH heads, D head dim.
 * Plain C11; always built, with or without CUDA.
 */
#ifndef SPLADEX_CUDA_TWINS_H
#define SPLADEX_CUDA_TWINS_H

#include <stddef.h>
#include <stdint.h>

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

#ifdef __cplusplus
}
#endif

#endif
