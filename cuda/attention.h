/* attention: multi-head self-attention of a packed batch (no padding), fused per (document,
 * head, block of queries) with an online softmax over tiles of 32 keys, fp32 throughout.
 * CPU twin: ops_attention (ops_cpu.h), same arguments in the same order (scratch is unused on
 * the device: pass NULL); then an optional rounded copy of out (out_lp in lp, NULL for none),
 * max_len (>= the longest document of the batch: it sizes the grid) and the stream. The kernel's
 * own order of operations is cutwin_attention (cuda_twins.h).
 * Limits: head_dim <= ATTENTION_MAX_HEAD_DIM; any document length (<= max_len). Device pointers
 * except the scalars. Returns 0, ERR_ARG (head_dim too large) or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_ATTENTION_H
#define SPLADEX_CUDA_ATTENTION_H

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { ATTENTION_MAX_HEAD_DIM = 128 };

int attention_cuda(const float *qkv,       /* (N, 3H) q | k | v per row, biases added */
                   const int *doc_offsets, /* (n_docs + 1) absolute, ascending */
                   int n_docs, int n_heads, int head_dim,
                   float *scratch,         /* unused, NULL */
                   float *out,             /* (N, H) */
                   void *out_lp, cu_dtype lp, /* (N, H) copy in lp, or NULL */
                   int max_len,
                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
