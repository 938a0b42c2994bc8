/* sparsify_gather: pruning, second pass, on the device: one block per document compacts the kept
 * terms (w > threshold) into the CSR arrays at indptr[b] .. indptr[b+1]-1, ids ascending.
 * CPU twin: ops_sparsify_gather (ops_cpu.h), same arguments in the same order, then the stream;
 * the kernel's tile-by-tile scan is cutwin_sparsify_gather (cuda_twins.h).
 * threshold must be >= 0 (enc_open refuses less): the weights that top-k drops are set to 0, and
 * only a threshold >= 0 keeps them out of sparsify_gather. Device pointers. Returns 0 or
 * ERR_DEVICE. */
#ifndef SPLADEX_CUDA_SPARSIFY_GATHER_H
#define SPLADEX_CUDA_SPARSIFY_GATHER_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int sparsify_gather_cuda(const float *weights,  /* (B, V) */
                         int n_docs, int vocab, float threshold,
                         const int64_t *indptr, /* (B + 1) */
                         int32_t *indices,      /* (nnz) */
                         float *values,         /* (nnz) */
                         cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
