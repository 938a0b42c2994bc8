/* encoder_cuda: the CUDA backend of the encoder API (encoder.h), dispatched by encoder.c for
 * ENC_CUDA when spladex is built with SPLADEX_HAVE_CUDA. The functions have the contracts of
 * their enc_ counterparts, except that enc_cuda_submit trusts its batch (encoder.c has checked the
 * document count, lengths and ids against the options and the model).
 *
 * What it does: the weights go up once into one cudaMalloc (GEMM matrices in the precision's
 * type, fp16 by default at the CLI; embeddings, LayerNorm parameters and biases in fp32); every
 * workspace is one more cudaMalloc sized in enc_cuda_open from max_batch_tokens,
 * max_batch_docs and max_length; pinned host buffers carry the ids up and the CSR rows down. A
 * batch is packed with no padding. Per batch: embeddings + LayerNorm, per layer one QKV GEMM,
 * fused attention per (doc, head), output GEMM + residual LayerNorm, FFN GEMM + erf GELU, GEMM +
 * residual LayerNorm; the MLM head; then the decoder with the max over each document's tokens
 * into pooled (B, V) fp32, by one of two routes chosen with the environment variable
 * SPLADEX_CUDA_DECODER: `chunked` (the default) runs cuBLAS GEMMs in vocabulary chunks of
 * CUTWIN_VOCAB_BLOCK terms into an (Nb, Vb) fp32 workspace, each chunk max-pooled; `fused`
 * (fp16/bf16 only) runs cuda/decoder_maxpool.cu, where the logits never reach device memory. The
 * default stays chunked until a GPU run has timed both. Then log1p(relu(+bias)), threshold,
 * top-k, prefix sum and compaction into CSR on the device; only indptr and the kept entries are
 * copied back.
 *
 * Precision: GEMMs through cublasGemmEx with fp32 accumulation; LayerNorm, softmax, GELU, the
 * pooled max and pruning in fp32. ENC_FP32 is true fp32 (no TF32).
 *
 * Overlap: the encoder is asynchronous (enc_submit / enc_collect of encoder.h). A submit packs
 * the batch into its slot's pinned buffer and queues the upload and every kernel on one compute
 * stream, ending with the copy of indptr and an event; it returns at once. A collect waits for
 * the oldest batch's event, then copies its entries back on a second stream while the next
 * batch, already queued, computes. Two slots (ENC_MAX_IN_FLIGHT), each with its pinned ids,
 * pinned indptr and device CSR; the compute workspace is shared, as the one compute stream runs
 * the batches in order. The pipeline's reader, tokenizer and writer threads run meanwhile.
 *
 * Debug: SPLADEX_CUDA_SYNC=1 synchronizes after every launch (cu_check.h). Plain C11 header.
 */
#ifndef SPLADEX_ENCODER_CUDA_H
#define SPLADEX_ENCODER_CUDA_H

#include "encoder.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct enc_cuda enc_cuda;

/* Selects device opt->device, uploads m's weights in opt->precision and allocates every
 * workspace for opt's largest batch. Returns 0 and *out, or ERR_DEVICE (no device, a CUDA /
 * cuBLAS failure, out of device memory: the message names the call and the bytes) or ERR_ARG
 * (a model the kernels cannot serve, e.g. head dim > 128). m is borrowed and must outlive the
 * encoder. Free with enc_cuda_close(). */
int enc_cuda_open(const model *m, const enc_options *opt, enc_cuda **out);

/* Queues a batch that encoder.c validated (and counted: at most ENC_MAX_IN_FLIGHT in flight),
 * with its rows (NULL: one per sequence; windows: see enc_rows in encoder.h).
 * Does not wait for the device; the batch's arrays are read before it returns. Returns 0 or
 * ERR_DEVICE. After a device error the encoder should be closed (a CUDA context error is
 * sticky). */
int enc_cuda_submit(enc_cuda *e, const enc_batch *batch, const enc_rows *rows);

/* Waits for the oldest batch in flight and fills *out with its rows (pinned host memory owned by
 * the encoder, valid until the next enc_cuda_collect or enc_cuda_close). Returns 0 or
 * ERR_DEVICE. */
int enc_cuda_collect(enc_cuda *e, enc_result *out);

/* "cuda:0 NVIDIA H100 80GB HBM3 fp16". Borrowed. */
const char *enc_cuda_describe(const enc_cuda *e);

/* Frees device and pinned memory, the cuBLAS handle and the stream. enc_cuda_close(NULL) is a
 * no-op. */
void enc_cuda_close(enc_cuda *e);

#ifdef __cplusplus
}
#endif

#endif
