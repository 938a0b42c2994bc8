/* encoder_cpu: the CPU backend of the encoder API (fp32, OpenBLAS; the oracle).
 *
 * encoder.c dispatches enc_open/enc_run/enc_describe/enc_close here for ENC_CPU. The functions
 * have the same contracts as their enc_ counterparts in encoder.h, except that enc_cpu_run
 * trusts its batch: encoder.c has already checked the document count, the lengths and the id
 * range against the options and the model. A CUDA backend provides the same four functions with
 * the prefix enc_cuda_ (cuda/encoder_cuda.h).
 *
 * Forward pass (DistilBertForMaskedLM and BertForMaskedLM, post-LN): packed batch without padding,
 * embeddings + LayerNorm, per layer attention (per document) and FFN with erf GELU, the MLM head,
 * then the decoder matmul over blocks of the vocabulary fused with the max over each document's
 * tokens, so that no (tokens x V) logit tensor exists; then log1p(relu), threshold and top-k.
 * Threads: one pool of `threads` threads (the caller's included) runs everything: each matmul
 * split by rows (tokens), each part a single-threaded OpenBLAS call; attention split by
 * documents; the decoder split by vocabulary ranges, each thread pooling its own columns; and
 * embeddings, GELU, LayerNorm, pruning by tokens or rows. enc_cpu_open sets OpenBLAS to one
 * thread (openblas_set_num_threads is process-wide), so OpenBLAS never starts threads of its own
 * that would spin between matmuls. Every workspace is
 * allocated in enc_cpu_open; only the CSR output grows, geometrically, when a batch has more
 * non-zeros than any batch before it.
 */
#ifndef SPLADEX_ENCODER_CPU_H
#define SPLADEX_ENCODER_CPU_H

#include "encoder.h"

typedef struct enc_cpu enc_cpu;

/* Allocates the workspaces for opt's largest batch and starts the thread pool. Returns 0 and
 * *out, or ERR_ARG (options the model cannot serve) / ERR_NOMEM / ERR_DEVICE (threads) with a
 * message. m is borrowed and must outlive the encoder. Free with enc_cpu_close(). */
int enc_cpu_open(const model *m, const enc_options *opt, enc_cpu **out);

/* Encodes a batch that encoder.c validated, with its rows (NULL: one per sequence). Returns 0 and fills *out (owned by the encoder, valid
 * until the next enc_cpu_run or enc_cpu_close), or ERR_NOMEM. */
int enc_cpu_run(enc_cpu *e, const enc_batch *batch, const enc_rows *rows, enc_result *out);

/* "cpu fp32, N threads". Borrowed. */
const char *enc_cpu_describe(const enc_cpu *e);

/* Stops the pool and frees everything. enc_cpu_close(NULL) is a no-op. */
void enc_cpu_close(enc_cpu *e);

#endif
