/* decoder_maxpool: the SPLADE decoder GEMM fused with the max over each document's tokens, on
 * the device, without the logits ever reaching device memory:
 *   pooled[b, v] = max over t in [doc_offsets[b], doc_offsets[b + 1]) of
 *                  sum_h rows[t, h] * decoder_w[v, h]
 * with fp16 / bf16 operands on the tensor cores and fp32 accumulation, no bias (it is constant per
 * term and added once by sparsify). The comparison is ops_maxpool_logits' `x > m ? x : m` from
 * -INFINITY, so a NaN logit never becomes the max; an empty document keeps -INFINITY.
 * CPU twin: cutwin_decoder_maxpool_fused (cuda_twins.h), same tile walk and merge rule; the
 * chunked route (linear_cuda + maxpool_logits_cuda, twin cutwin_decoder_maxpool) gives the same
 * values up to the summation order of the GEMM and the sign of a zero max.
 * Legend: N tokens, B documents, H hidden, V vocab.
 * Plain C11 header. */
#ifndef SPLADEX_CUDA_DECODER_MAXPOOL_H
#define SPLADEX_CUDA_DECODER_MAXPOOL_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the fused decoder + segmented max on `stream` (asynchronous; nothing is allocated).
 * rows and decoder_w are device pointers in `dtype` (CU_F16 or CU_BF16), 16-byte aligned.
 * doc_offsets is a device array of absolute offsets, non-decreasing, doc_offsets[0] == 0 and
 * doc_offsets[n_docs] == n (not checked: it lives on the device). pooled must hold -INFINITY
 * in every element on entry (fill_cuda): a document whose rows lie within one run of the
 * epilogue is stored without reading pooled, the others are merged by an atomic float max.
 * Returns 0 (also for n == 0: nothing is launched); ERR_ARG with a message, before anything is
 * launched, for a shape or type this kernel does not handle (CU_F32, hidden not a positive
 * multiple of 16, misaligned operands, a device below compute capability 8.0, a grid too large)
 * so that the caller can fall back to the chunked cuBLAS path; ERR_DEVICE on a CUDA error. */
int decoder_maxpool_cuda(const void *rows,       /* (N, H) dtype: the MLM head output */
                         const void *decoder_w,  /* (V, H) dtype, HF layout */
                         int n, int hidden, int vocab,
                         const int *doc_offsets, /* (B + 1) absolute, device */
                         int n_docs,
                         float *pooled,          /* (B, V) fp32, -INFINITY on entry */
                         cu_dtype dtype,
                         cudaStream_t stream);

/* The same on Hopper's wgmma (k_decoder_maxpool_wgmma: the same tile, grid order, epilogue and
 * twin; SPLADEX_CUDA_DECODER=wgmma). Also ERR_ARG, before any launch, unless
 * decoder_maxpool_wgmma_supported says yes for the current device. */
int decoder_maxpool_wgmma_cuda(const void *rows, const void *decoder_w, int n, int hidden,
                               int vocab, const int *doc_offsets, int n_docs, float *pooled,
                               cu_dtype dtype, cudaStream_t stream);

/* 1 if the current device can run decoder_maxpool_wgmma_cuda: compute capability 9.0 and the code
 * the driver loaded for it built for sm_90a (asked of the device once); 0 if not, with the reason
 * in why (why_size bytes; may be NULL); < 0 (ERR_DEVICE) on a CUDA error. */
int decoder_maxpool_wgmma_supported(char *why, size_t why_size);

#ifdef __cplusplus
}
#endif

#endif
