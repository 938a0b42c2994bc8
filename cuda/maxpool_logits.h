/* maxpool_logits: running segmented max of one (token block x vocabulary chunk) of raw decoder
 * logits into pooled (B, V), on the device; one thread per term column and document.
 * CPU twin: ops_maxpool_logits (ops_cpu.h), same arguments in the same order, except that the
 * logits come with their type (fp32, or fp16 / bf16: the lp route's decoder GEMM output, widened
 * exactly; rounding is monotonic, so the pooled max is the fp32 max rounded), then the stream.
 * doc_offsets is a device array. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_MAXPOOL_LOGITS_H
#define SPLADEX_CUDA_MAXPOOL_LOGITS_H

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int maxpool_logits_cuda(const void *logits,     /* (n_rows, ld) in logits_type */
                        cu_dtype logits_type,
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
