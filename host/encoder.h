/* encoder: the backend-neutral SPLADE document encoder.
 *
 * A batch of token-id arrays (each already [CLS] ... [SEP], truncated) goes in; one sparse row per
 * document comes out: term ids ascending, float32 weights w_v = max_t log(1 + relu(logit[t, v]))
 * over the document's real tokens, kept when w_v > threshold, and only the top_k largest when
 * top_k > 0. Two implementations: CPU (fp32, OpenBLAS; the oracle, encoder_cpu.c) and CUDA
 * (cuda/, when built with it). Legend: B docs in the batch, T tokens of one doc, V vocab.
 */
#ifndef SPLADEX_ENCODER_H
#define SPLADEX_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum { ENC_CPU = 0, ENC_CUDA = 1 } enc_backend;
typedef enum { ENC_FP32 = 0, ENC_FP16 = 1, ENC_BF16 = 2 } enc_precision;

typedef struct {
  enc_backend backend;
  int device;              /* CUDA device ordinal */
  enc_precision precision; /* CPU supports ENC_FP32 only */
  int threads;             /* CPU threads (0 = all cores) */
  float threshold;         /* keep w > threshold (default 0) */
  int top_k;               /* keep the top_k largest per doc, 0 = all */
  int max_batch_tokens;    /* upper bound on the sum of lengths of one batch (workspace size) */
  int max_batch_docs;      /* upper bound on docs per batch */
  int max_length;          /* upper bound on one doc's length (<= model max_positions) */
} enc_options;

/* Defaults: CPU, fp32, all cores, threshold 0, top_k 0, 16384 tokens, 512 docs, length 256. */
enc_options enc_options_default(void);

typedef struct {
  int n_docs;                   /* B */
  const int32_t *const *ids;    /* [B] pointers to each doc's ids (T_b) */
  const int *lengths;           /* [B] T_b >= 1 each; sum <= max_batch_tokens */
} enc_batch;

/* The batch's sparse rows in CSR form; owned by the encoder, valid until the next enc_run,
 * enc_collect or enc_close. */
typedef struct {
  int n_docs;
  const int64_t *indptr;   /* (B + 1) */
  const int32_t *indices;  /* (nnz) ascending within each row */
  const float *values;     /* (nnz) */
} enc_result;

typedef struct encoder encoder;

/* Prepares a backend for model m (borrowed: it must outlive the encoder), allocating every
 * workspace once for the largest batch the options allow. Returns 0 and *out, or ERR_DEVICE /
 * ERR_ARG / ERR_NOMEM with a message. The caller frees with enc_close(). */
int enc_open(const model *m, const enc_options *opt, encoder **out);

/* Encodes one batch: enc_submit then enc_collect. No batch may be in flight. Returns 0 and fills
 * *out, or a negative ERR_ code with a message. */
int enc_run(encoder *e, const enc_batch *batch, enc_result *out);

/* Pipelined use, so that the device never waits for the host between batches: at most
 * ENC_MAX_IN_FLIGHT batches are submitted and not yet collected; results come back in submit
 * order. The usual loop submits batch i + 1 before it collects batch i.
 *
 * enc_submit checks the batch (as enc_run does) and queues it. The CUDA backend packs and uploads
 * the ids and queues all of the batch's device work, returning before it is done; the CPU backend
 * only records the batch and encodes it in enc_collect. So the batch's arrays and the ids they
 * point to are borrowed: they must stay valid and unchanged until that batch's enc_collect
 * returns. Returns 0, ERR_ARG (already ENC_MAX_IN_FLIGHT in flight) / ERR_INPUT (a bad batch), or
 * ERR_DEVICE.
 *
 * enc_collect waits for the oldest batch in flight and fills *out with its rows (valid until the
 * next enc_collect, enc_run or enc_close). Returns 0, ERR_ARG (nothing in flight) or the
 * backend's error. After any error other than a refused batch (ERR_ARG / ERR_INPUT from
 * enc_submit) the batches still in flight are lost: close the encoder. */
enum { ENC_MAX_IN_FLIGHT = 2 };
int enc_submit(encoder *e, const enc_batch *batch);
int enc_collect(encoder *e, enc_result *out);

/* Number of batches submitted and not yet collected. */
int enc_in_flight(const encoder *e);

/* A short description of the backend ("cpu fp32, 2 threads", "cuda:0 NVIDIA H100 fp16"). Borrowed. */
const char *enc_describe(const encoder *e);

/* Frees everything. enc_close(NULL) is a no-op. */
void enc_close(encoder *e);

/* 1 when the CUDA backend can be tried: spladex was built with it, its module libspladex_cuda.so
 * loads (see encoder.c for where it is looked for) and at least one CUDA device exists; else 0.
 * Records no error. For `--device auto`. The first call loads the CUDA libraries (slow: ~0.5 s);
 * a CPU-only run should not call it. */
int enc_cuda_available(void);

/* enc_cuda_available() with the reason when it is 0: writes into why[cap] (NUL-terminated) that
 * spladex was built without CUDA, that libspladex_cuda.so could not be loaded (and why), or what
 * the CUDA runtime said ("CUDA driver version is insufficient for CUDA runtime version", no
 * device). Records no error. For the notice of `--device auto` falling back to the CPU. */
int enc_cuda_probe(char *why, size_t cap);

#endif
