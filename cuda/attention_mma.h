/* attention_mma: multi-head self-attention of a packed batch (no padding) on tensor cores, in the
 * FlashAttention-2 pattern: per (document, head, block of CUTWIN_MMA_QUERY_BLOCK queries) one
 * block of 4 warps, each warp 16 queries; S = q k^T and O += P v by mma.sync m16n8k16 with
 * fp16 or bf16 operands and fp32 accumulators; an online softmax in fp32 over key tiles of
 * CUTWIN_MMA_KEY_TILE keys (the constants and the register fragment layouts: cuda_twins.h).
 * A second route beside attention.cu (fp32 on the CUDA cores), which stays the reference. The
 * kernel's exact algorithm is cutwin_attention_mma (cuda_twins.h): the same rounding points, the
 * same key tiles, the same order of the running max / sum updates.
 *
 * Rounding (lp = the operand type, fp16 or bf16; scale = 1 / sqrtf(D) in fp32):
 *   q = lp((qkv_q + bias_q) * scale), k = lp(qkv_k + bias_k), v = lp(qkv_v + bias_v)
 *   per key tile: S = q.k^T (fp32), m' = max(m, rowmax S), c = expf(m - m'), p = expf(S - m'),
 *   l = fmaf(l, c, rowsum p), O = O * c + lp(p).v (fp32); at the end out = lp(O / l).
 * Legend: N tokens, H hidden = n_heads * D, D head dim.
 * Plain C11 (included from .c and .cu files); device pointers except the scalars.
 */
#ifndef SPLADEX_CUDA_ATTENTION_MMA_H
#define SPLADEX_CUDA_ATTENTION_MMA_H

#include <cuda_runtime_api.h>

#include "cu_dtype.h"
#include "cuda_twins.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { ATTN_MMA_MAX_HEAD_DIM = CUTWIN_MMA_MAX_HEAD_DIM };

/* Attention of documents [0, n_docs) of the packed batch, written to out_lp in lp. qkv holds the
 * GEMM output in qkv_type (fp32, fp16 or bf16); qkv_bias, if not NULL, is added while staging
 * (fp32, in fp32). max_len must be >= the longest document (it sizes the grid); documents of any
 * length in [0, max_len]. Rows of out_lp outside the documents are not written.
 * Returns 0, ERR_ARG (head_dim not a multiple of 16 in [16, 128], lp not fp16 / bf16, n_heads or
 * max_len too large for the grid) or ERR_DEVICE (the launch failed). */
int attention_mma_cuda(const void *qkv, cu_dtype qkv_type, /* (N, 3H) q | k | v per row */
                       const float *qkv_bias,              /* (3H), or NULL: already added */
                       const int *doc_offsets,             /* (n_docs + 1) absolute, ascending */
                       int n_docs, int n_heads, int head_dim,
                       void *out_lp, cu_dtype lp,          /* (N, H) in CU_F16 or CU_BF16 */
                       int max_len,
                       cudaStream_t stream);

/* 1 when attention_mma_cuda supports head_dim with operands in lp, else 0. Host only (no CUDA
 * call): the encoder asks at open to refuse an unsupported model early. */
int attention_mma_supported(int head_dim, cu_dtype lp);

#ifdef __cplusplus
}
#endif

#endif
