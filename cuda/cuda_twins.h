/* cuda_twins: plain C twins of the math that exists only on the CUDA path.
 *
 * ops_cpu.h holds the CPU twins of the ops both backends share. The device kernels reach some of
 * the same results by other routes; each route is written here once more as a sequential C
 * function with the same arguments as its CUDA launcher (minus the stream), in the same order of
 * operations, so tests/test_cuda_twins.c can check the algorithm on any machine (no GPU needed)
 * and tests/test_ops.c can check the kernel against it on a GPU:
 *   - attention as the kernel does it: an online softmax over tiles of CUTWIN_KEY_TILE keys
 *   - top-k by a 4-pass radix select on the float bits (8 bits per pass), ties to the lower id
 *   - CSR compaction by block-wide exclusive scans over tiles of CUTWIN_SCAN_BLOCK terms
 *   - the prefix sum of the row counts into indptr
 *   - the decoder in (token block x vocabulary chunk) pieces, each max-pooled into (B, V)
 *   - the CSR -> CSC transpose that cusparseCsr2cscEx2 performs
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

#ifdef __cplusplus
}
#endif

#endif
