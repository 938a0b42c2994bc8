/* embed_layernorm: word + position (+ token type) embeddings and LayerNorm on the device.
 * CPU twin: ops_embed_layernorm (ops_cpu.h), same arguments in the same order; then an optional
 * rounded copy of out for the next GEMM (out_lp in type lp, NULL for none) and the stream.
 * All pointers are device pointers. Returns 0 or ERR_DEVICE (message recorded). */
#ifndef SPLADEX_CUDA_EMBED_LAYERNORM_H
#define SPLADEX_CUDA_EMBED_LAYERNORM_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int embed_layernorm_cuda(const int32_t *ids,   /* (N) validated: [0, V) */
                         const int *positions, /* (N) validated: [0, P) */
                         int n,                /* N */
                         const float *word_emb, /* (V, H) */
                         const float *pos_emb,  /* (P, H) */
                         const float *type_row, /* (H) or NULL */
                         const float *gamma, const float *beta, /* (H) */
                         float eps, int hidden,
                         float *out,            /* (N, H) */
                         void *out_lp, cu_dtype lp, /* (N, H) copy in lp, or NULL */
                         cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
