/* maxpool_logits: running segmented max of one (token block x vocabulary chunk) of raw decoder
 * logits into pooled (B, V), on the device; one thread per term column and document.
 * CPU twin: ops_maxpool_logits (ops_cpu.h), same arguments in the same order, then the stream.
 * doc_offsets is a device array. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_MAXPOOL_LOGITS_H
#define SPLADEX_CUDA_MAXPOOL_LOGITS_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int maxpool_logits_cuda(const float *logits,    /* (n_rows, ld) */
                        int ld, int t0, int n_rows, int v0, int vb,
                        const int *doc_offsets, /* (n_docs + 1) absolute */
                        int n_docs,
                        float *pooled,          /* (B, V) */
                        int vocab,
                        cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
