/* sparsify_weights: pruning, first pass, on the device: one block of CUTWIN_SCAN_BLOCK threads per
 * document computes w = log1p(relu(pooled + bias)), drops w <= threshold, and for top_k > 0 keeps
 * the top_k largest by a radix select on the float bits, ties to the lower term id.
 * CPU twin: ops_sparsify_weights (ops_cpu.h), same arguments in the same order (scratch unused:
 * NULL), then the stream; the kernel's own algorithm is cutwin_sparsify_weights (cuda_twins.h).
 * threshold must be >= 0 (enc_open refuses less): the weights that top-k drops are set to 0, and
 * only a threshold >= 0 keeps them out of sparsify_gather. Device pointers. Returns 0 or
 * ERR_DEVICE. */
#ifndef SPLADEX_CUDA_SPARSIFY_WEIGHTS_H
#define SPLADEX_CUDA_SPARSIFY_WEIGHTS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int sparsify_weights_cuda(float *pooled,             /* (B, V) */
                          const float *decoder_bias, /* (V) */
                          int n_docs, int vocab, float threshold, int top_k,
                          int32_t *row_nnz,          /* (B) */
                          float *scratch,            /* unused, NULL */
                          cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
