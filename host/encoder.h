/* encoder: the backend-neutral SPLADE document encoder.
 *
 * A batch of token-id arrays (each already [CLS] ... [SEP], truncated, or one window of a long
 * document) goes in; one sparse row per document comes out: term ids ascending, float32 weights
 * w_v = max_t log(1 + relu(logit[t, v])) over the document's real tokens (of all its windows),
 * kept when w_v > threshold, and only the top_k largest when top_k > 0. Two implementations:
 * CPU (fp32, OpenBLAS; the oracle, encoder_cpu.c) and CUDA (cuda/, when built with it).
 * Legend: B sequences (docs or windows) in the batch, R output rows, T tokens of one sequence,
 * V vocab.
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

/* A batch is B sequences, each at most max_length tokens, each with its own positions (from 0)
 * and its own attention; by default each sequence is one document and one output row. */
typedef struct {
  int n_docs;                   /* B sequences (documents, or windows with enc_rows) */
  const int32_t *const *ids;    /* [B] pointers to each sequence's ids (T_b) */
  const int *lengths;           /* [B] T_b >= 1 each; sum <= max_batch_tokens */
} enc_batch;

/* Long documents (sliding windows, enc_window below): how a batch's sequences map to output
 * rows. Consecutive sequences may share one row: row_seqs[r] sequences in row r, whose weights
 * are the max over all of their tokens (= the max of the sequences' own SPLADE vectors),
 * thresholded and top-k'ed only after that max.
 *
 * A document may span batches: `unfinished` says that the batch's last row goes on in the next
 * batch (the encoder carries its running max, V floats, and does not return the row); the next
 * batch submitted must then set `continues`, which makes its first row that document's
 * continuation. enc_submit_rows refuses a batch that breaks that chain (ERR_ARG). */
typedef struct {
  int n_rows;                   /* R >= 1 output rows */
  const int *row_seqs;          /* [R] >= 1 each, summing to B: sequences per row */
  int continues;                /* row 0 continues the previous batch's unfinished last row */
  int unfinished;               /* the last row is carried into the next batch, not returned */
} enc_rows;

/* The sliding windows of a long document (`--stride`). The text's n tokens t[0..n), without
 * specials, are covered by windows k = 0, 1, ...: window k holds t[k*S, min(k*S + L - 2, n))
 * wrapped in [CLS] ... [SEP] (L = max_length, S = stride in [1, L - 2]); the last window is the
 * first one that reaches n; an empty text is one window. */

/* Number of windows of n tokens (>= 1). */
int64_t enc_window_count(int64_t n, int max_length, int stride);

/* Writes window k of t[0..n) into out (at most max_length ids: cls, the tokens, sep); returns its
 * length. k < enc_window_count(n, max_length, stride). */
int enc_window(const int32_t *t, int64_t n, int max_length, int stride, int64_t k, int32_t cls,
               int32_t sep, int32_t *out);

/* The batch's sparse rows in CSR form; owned by the encoder, valid until the next enc_run,
 * enc_collect or enc_close. One row per document completed in the batch: B rows without
 * enc_rows, else R, less one when the batch's last row is unfinished. */
typedef struct {
  int n_docs;              /* rows returned */
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

/* enc_submit / enc_run with the rows of enc_rows (rows NULL: one row per sequence). rows and its
 * row_seqs are borrowed like the batch (until the batch's enc_collect returns). */
int enc_submit_rows(encoder *e, const enc_batch *batch, const enc_rows *rows);
int enc_run_rows(encoder *e, const enc_batch *batch, const enc_rows *rows, enc_result *out);

/* Number of batches submitted and not yet collected. */
int enc_in_flight(const encoder *e);

/* A short description of the backend ("cpu fp32, 2 threads", "cuda:0 NVIDIA H100 fp16"). Borrowed. */
const char *enc_describe(const encoder *e);

/* Frees everything. enc_close(NULL) is a no-op. */
void enc_close(encoder *e);

/* ---- a test / benchmark hook: a backend defined outside the library ----
 * benchmarks/bench_pipeline.c drives the real `expand` pipeline (pipeline.h) with a synthetic
 * encoder that returns rows instantly, to measure the host's own ceiling. No CLI option reaches
 * this: spladex itself only opens the CPU and CUDA backends through enc_open. The backend is
 * synchronous like the CPU one: run is called from enc_collect (and enc_run) on a batch that
 * passed every check of enc_submit_rows, and fills *out (its arrays owned by state, valid until
 * the next run or close). */
typedef struct {
  int (*run)(void *state, const enc_batch *batch, const enc_rows *rows, enc_result *out);
  const char *(*describe)(const void *state);
  void (*close)(void *state); /* frees state; called by enc_close, or by a failed enc_open_custom */
} enc_custom_backend;

/* enc_open with the backend b (copied) on state (owned from now on: enc_close closes it); the
 * options and m are checked as enc_open checks them (opt->backend is ignored). Returns 0 and
 * *out, or ERR_ARG / ERR_NOMEM with a message (state closed). */
int enc_open_custom(const model *m, const enc_options *opt, const enc_custom_backend *b,
                    void *state, encoder **out);

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
