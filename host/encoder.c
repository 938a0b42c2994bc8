/* encoder: the backend-neutral API of encoder.h, dispatching to a backend through a small table.
 *
 * A backend is one opaque state and a few functions: either run (synchronous: the CPU backend,
 * encoder_cpu.h), or submit + collect (asynchronous: the CUDA backend, cuda/encoder_cuda.h with
 * the prefix enc_cuda_, when built with SPLADEX_HAVE_CUDA); then describe and close. For a
 * synchronous backend this file keeps the submitted batches (borrowed) in a queue and runs the
 * oldest in enc_collect. The checks every backend needs (options against the model, each batch
 * against the options and the vocabulary) live here once, so a backend may trust its batch.
 *
 * The CUDA backend lives in libspladex_cuda.so, loaded on first use by cuda_module.h, so a
 * CPU-only run never pays for loading the CUDA libraries; its functions come from the one table
 * of cuda/cuda_api.h.
 */
#include "encoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_module.h"
#include "encoder_cpu.h"
#include "err.h"

#ifdef SPLADEX_HAVE_CUDA
#include <pthread.h>

#include "encoder_cuda.h"
#define ENC_WITH_CUDA 1
#endif

typedef struct {
  const char *name;
  /* synchronous, or NULL */
  int (*run)(void *state, const enc_batch *batch, const enc_rows *rows, enc_result *out);
  /* asynchronous, or NULL */
  int (*submit)(void *state, const enc_batch *batch, const enc_rows *rows);
  int (*collect)(void *state, enc_result *out);                      /* with submit */
  const char *(*describe)(const void *state);
  void (*close)(void *state);
} enc_backend_ops;

struct encoder {
  const enc_backend_ops *ops;
  void *state;
  const model *m;
  enc_options opt;
  int in_flight;                        /* submitted, not collected */
  int carrying;                         /* the last batch submitted left its last row unfinished */
  int head;                             /* the oldest in flight: queue[head] (run backends) */
  enc_batch queue[ENC_MAX_IN_FLIGHT];   /* borrowed batches of a run backend */
  enc_rows queue_rows[ENC_MAX_IN_FLIGHT]; /* their rows (row_seqs NULL: one row per sequence) */
  enc_backend_ops custom;               /* enc_open_custom's backend (ops points here) */
};

static int cpu_run(void *s, const enc_batch *b, const enc_rows *r, enc_result *o) {
  return enc_cpu_run(s, b, r, o);
}
static const char *cpu_describe(const void *s) { return enc_cpu_describe(s); }
static void cpu_close(void *s) { enc_cpu_close(s); }
static const enc_backend_ops cpu_ops = {"cpu", cpu_run, NULL, NULL, cpu_describe, cpu_close};

#ifdef ENC_WITH_CUDA
/* The table of libspladex_cuda.so (cuda/cuda_api.h), set by cuda_resolve(); read-only
 * afterwards (every read follows an enc_open or enc_cuda_available that resolved it). */
static const spladex_cuda_api *cuda_api;

/* Loads the module and its table. 0, or ERR_DEVICE with the reason in why; records no error.
 * Idempotent: resolving twice stores the same table. */
static int cuda_resolve(char *why, size_t why_cap) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  const spladex_cuda_api *api = NULL;
  int rc = cuda_module_api(&api, why, why_cap);
  if (rc < 0) return rc;
  pthread_mutex_lock(&lock);
  cuda_api = api;
  pthread_mutex_unlock(&lock);
  return 0;
}

static int cuda_submit(void *s, const enc_batch *b, const enc_rows *r) {
  return cuda_api->enc_submit(s, b, r);
}
static int cuda_collect(void *s, enc_result *o) { return cuda_api->enc_collect(s, o); }
static const char *cuda_describe(const void *s) { return cuda_api->enc_describe(s); }
static void cuda_close(void *s) { cuda_api->enc_close(s); }
static const enc_backend_ops cuda_ops = {"cuda", NULL, cuda_submit, cuda_collect, cuda_describe,
                                         cuda_close};

int enc_cuda_probe(char *why, size_t cap) {
  char reason[CUDA_MODULE_WHY_MAX];
  if (cuda_resolve(reason, sizeof reason) < 0) {
    snprintf(why, cap, "%s", reason);
    return 0;
  }
  /* have_device records its reason with err_set: keep the caller's message as it was */
  snprintf(reason, sizeof reason, "%s", err_msg());
  const int have = cuda_api->have_device();
  snprintf(why, cap, "%s", have ? "" : err_msg());
  err_set(0, "%s", reason);
  return have ? 1 : 0;
}
#else
int enc_cuda_probe(char *why, size_t cap) {
  snprintf(why, cap, "this spladex was built without CUDA (no CUDA backend in this build)");
  return 0;
}
#endif

int enc_cuda_available(void) {
  char why[CUDA_MODULE_WHY_MAX];
  return enc_cuda_probe(why, sizeof why);
}

enc_options enc_options_default(void) {
  enc_options o;
  memset(&o, 0, sizeof o);
  o.backend = ENC_CPU;
  o.device = 0;
  o.precision = ENC_FP32;
  o.threads = 0;
  o.threshold = 0.0f;
  o.top_k = 0;
  o.max_batch_tokens = 16384;
  o.max_batch_docs = 512;
  o.max_length = 256;
  return o;
}

/* The checks of enc_open on the options against the model. */
static int enc_check_options(const model *m, const enc_options *opt) {
  if (!m) return err_set(ERR_ARG, "enc_open: no model");
  const model_config *c = &m->cfg;
  if (opt->max_length < 1 || opt->max_length > c->max_positions)
    return err_set(ERR_ARG, "max length %d is outside [1, %d] (the model's max_position_embeddings)",
                   opt->max_length, c->max_positions);
  if (opt->max_batch_docs < 1) return err_set(ERR_ARG, "max batch docs %d < 1", opt->max_batch_docs);
  if (opt->max_batch_tokens < opt->max_length)
    return err_set(ERR_ARG, "batch token budget %d is smaller than the max length %d",
                   opt->max_batch_tokens, opt->max_length);
  if (!(opt->threshold >= 0.0f))
    return err_set(ERR_ARG, "threshold %g must be >= 0", (double)opt->threshold);
  if (opt->top_k < 0) return err_set(ERR_ARG, "top-k %d must be >= 0", opt->top_k);
  if (opt->threads < 0) return err_set(ERR_ARG, "threads %d must be >= 0", opt->threads);
  return 0;
}

int enc_open_custom(const model *m, const enc_options *opt, const enc_custom_backend *b,
                    void *state, encoder **out) {
  *out = NULL;
  int rc = enc_check_options(m, opt);
  encoder *e = rc < 0 ? NULL : calloc(1, sizeof *e);
  if (rc == 0 && !e) rc = err_set(ERR_NOMEM, "out of memory for the encoder");
  if (rc < 0) {
    b->close(state);
    return rc;
  }
  e->m = m;
  e->opt = *opt;
  e->custom = (enc_backend_ops){"custom", b->run, NULL, NULL, b->describe, b->close};
  e->ops = &e->custom;
  e->state = state;
  *out = e;
  return 0;
}

int enc_open(const model *m, const enc_options *opt, encoder **out) {
  *out = NULL;
  int rc = enc_check_options(m, opt);
  if (rc < 0) return rc;

  encoder *e = calloc(1, sizeof *e);
  if (!e) return err_set(ERR_NOMEM, "out of memory for the encoder");
  e->m = m;
  e->opt = *opt;
  switch (opt->backend) {
    case ENC_CPU: {
      enc_cpu *s = NULL;
      rc = enc_cpu_open(m, opt, &s);
      e->state = s;
      e->ops = &cpu_ops;
      break;
    }
    case ENC_CUDA: {
#ifdef ENC_WITH_CUDA
      char why[CUDA_MODULE_WHY_MAX];
      if (cuda_resolve(why, sizeof why) < 0) {
        rc = err_set(ERR_DEVICE, "%s", why);
        break;
      }
      enc_cuda *s = NULL;
      rc = cuda_api->enc_open(m, opt, &s);
      e->state = s;
      e->ops = &cuda_ops;
#else
      rc = err_set(ERR_DEVICE, "the CUDA backend was asked for, but spladex was built without CUDA (no CUDA encoder in this build)");
#endif
      break;
    }
    default:
      rc = err_set(ERR_ARG, "unknown encoder backend %d", (int)opt->backend);
  }
  if (rc < 0) {
    free(e);
    return rc;
  }
  *out = e;
  return 0;
}

/* The checks of encoder.h on one batch against the options, the vocabulary and the chain of
 * unfinished rows. */
static int enc_check_batch(const encoder *e, const enc_batch *batch, const enc_rows *rows) {
  const enc_options *o = &e->opt;
  const int V = e->m->cfg.vocab;
  if (batch->n_docs < 0 || batch->n_docs > o->max_batch_docs)
    return err_set(ERR_ARG, "batch of %d documents (the encoder was opened for at most %d)",
                   batch->n_docs, o->max_batch_docs);
  long long total = 0;
  for (int b = 0; b < batch->n_docs; b++) {
    int len = batch->lengths[b];
    if (len < 1 || len > o->max_length)
      return err_set(ERR_INPUT, "document %d of the batch has %d tokens (allowed: 1 to %d)", b, len,
                     o->max_length);
    const int32_t *ids = batch->ids[b];
    for (int t = 0; t < len; t++)
      if (ids[t] < 0 || ids[t] >= V)
        return err_set(ERR_INPUT, "document %d of the batch: token %d has id %d, outside [0, %d)",
                       b, t, (int)ids[t], V);
    total += len;
  }
  if (total > o->max_batch_tokens)
    return err_set(ERR_ARG, "batch of %lld tokens (the encoder was opened for at most %d)", total,
                   o->max_batch_tokens);
  if (!rows) {
    if (e->carrying)
      return err_set(ERR_ARG, "the previous batch left its last row unfinished: this batch must "
                     "continue it");
    return 0;
  }
  long long seqs = 0;
  if (rows->n_rows < 1 || rows->n_rows > batch->n_docs)
    return err_set(ERR_ARG, "batch of %d rows for %d sequences", rows->n_rows, batch->n_docs);
  for (int r = 0; r < rows->n_rows; r++) {
    if (rows->row_seqs[r] < 1)
      return err_set(ERR_ARG, "row %d of the batch has %d sequences (at least 1)", r,
                     rows->row_seqs[r]);
    seqs += rows->row_seqs[r];
  }
  if (seqs != batch->n_docs)
    return err_set(ERR_ARG, "the batch's rows hold %lld sequences, the batch has %d", seqs,
                   batch->n_docs);
  if (rows->continues && !e->carrying)
    return err_set(ERR_ARG, "the batch continues a row, but the previous batch finished its rows");
  if (!rows->continues && e->carrying)
    return err_set(ERR_ARG, "the previous batch left its last row unfinished: this batch must "
                   "continue it");
  return 0;
}

int enc_submit_rows(encoder *e, const enc_batch *batch, const enc_rows *rows) {
  if (e->in_flight >= ENC_MAX_IN_FLIGHT)
    return err_set(ERR_ARG, "enc_submit: %d batches already in flight (collect one first)",
                   e->in_flight);
  int rc = enc_check_batch(e, batch, rows);
  if (rc < 0) return rc;
  if (e->ops->submit) {
    if ((rc = e->ops->submit(e->state, batch, rows)) < 0) return rc;
  } else {
    const int slot = (e->head + e->in_flight) % ENC_MAX_IN_FLIGHT;
    e->queue[slot] = *batch;
    if (rows)
      e->queue_rows[slot] = *rows;
    else
      memset(&e->queue_rows[slot], 0, sizeof e->queue_rows[slot]);
  }
  e->in_flight++;
  e->carrying = rows && rows->unfinished;
  return 0;
}

int enc_submit(encoder *e, const enc_batch *batch) { return enc_submit_rows(e, batch, NULL); }

int enc_collect(encoder *e, enc_result *out) {
  if (e->in_flight < 1) return err_set(ERR_ARG, "enc_collect: no batch in flight");
  int rc;
  if (e->ops->collect) {
    rc = e->ops->collect(e->state, out);
  } else {
    const enc_rows *rows = e->queue_rows[e->head].row_seqs ? &e->queue_rows[e->head] : NULL;
    rc = e->ops->run(e->state, &e->queue[e->head], rows, out);
    e->head = (e->head + 1) % ENC_MAX_IN_FLIGHT;
  }
  e->in_flight--;
  return rc;
}

int enc_in_flight(const encoder *e) { return e->in_flight; }

int enc_run_rows(encoder *e, const enc_batch *batch, const enc_rows *rows, enc_result *out) {
  if (e->in_flight > 0)
    return err_set(ERR_ARG, "enc_run: %d batches in flight (collect them first)", e->in_flight);
  int rc = enc_submit_rows(e, batch, rows);
  if (rc < 0) return rc;
  return enc_collect(e, out);
}

int enc_run(encoder *e, const enc_batch *batch, enc_result *out) {
  return enc_run_rows(e, batch, NULL, out);
}

int64_t enc_window_count(int64_t n, int max_length, int stride) {
  const int64_t w = max_length - 2;
  if (n <= w) return 1;
  return (n - w + stride - 1) / stride + 1;
}

int enc_window(const int32_t *t, int64_t n, int max_length, int stride, int64_t k, int32_t cls,
               int32_t sep, int32_t *out) {
  int64_t lo = k * stride, hi = lo + max_length - 2;
  if (hi > n) hi = n;
  if (lo > hi) lo = hi;
  out[0] = cls;
  memcpy(out + 1, t + lo, sizeof(int32_t) * (size_t)(hi - lo));
  out[1 + hi - lo] = sep;
  return (int)(hi - lo + 2);
}

const char *enc_describe(const encoder *e) { return e->ops->describe(e->state); }

void enc_close(encoder *e) {
  if (!e) return;
  e->ops->close(e->state);
  free(e);
}
