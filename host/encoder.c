/* encoder: the backend-neutral API of encoder.h, dispatching to a backend through a small table.
 *
 * A backend is four functions with one opaque state: open, run, describe, close (encoder_cpu.h,
 * and cuda/encoder_cuda.h with the prefix enc_cuda_ when built with SPLADEX_HAVE_CUDA). The checks
 * every backend needs (options against the model, each batch against the options and the
 * vocabulary) live here once, so a backend's run may trust its batch.
 */
#include "encoder.h"

#include <stdlib.h>
#include <string.h>

#include "encoder_cpu.h"
#include "err.h"
/* The CUDA backend plugs in when the build has CUDA and cuda/encoder_cuda.h exists (it declares
 * enc_cuda_open/run/describe/close with the contracts of encoder_cpu.h). */
#if defined(SPLADEX_HAVE_CUDA) && defined(__has_include)
#if __has_include("encoder_cuda.h")
#include "encoder_cuda.h"
#define ENC_WITH_CUDA 1
#endif
#endif

typedef struct {
  const char *name;
  int (*run)(void *state, const enc_batch *batch, enc_result *out);
  const char *(*describe)(const void *state);
  void (*close)(void *state);
} enc_backend_ops;

struct encoder {
  const enc_backend_ops *ops;
  void *state;
  const model *m;
  enc_options opt;
};

static int cpu_run(void *s, const enc_batch *b, enc_result *o) { return enc_cpu_run(s, b, o); }
static const char *cpu_describe(const void *s) { return enc_cpu_describe(s); }
static void cpu_close(void *s) { enc_cpu_close(s); }
static const enc_backend_ops cpu_ops = {"cpu", cpu_run, cpu_describe, cpu_close};

#ifdef ENC_WITH_CUDA
static int cuda_run(void *s, const enc_batch *b, enc_result *o) { return enc_cuda_run(s, b, o); }
static const char *cuda_describe(const void *s) { return enc_cuda_describe(s); }
static void cuda_close(void *s) { enc_cuda_close(s); }
static const enc_backend_ops cuda_ops = {"cuda", cuda_run, cuda_describe, cuda_close};
#endif

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

int enc_open(const model *m, const enc_options *opt, encoder **out) {
  *out = NULL;
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

  encoder *e = calloc(1, sizeof *e);
  if (!e) return err_set(ERR_NOMEM, "out of memory for the encoder");
  e->m = m;
  e->opt = *opt;
  int rc = 0;
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
      enc_cuda *s = NULL;
      rc = enc_cuda_open(m, opt, &s);
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

int enc_run(encoder *e, const enc_batch *batch, enc_result *out) {
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
  return e->ops->run(e->state, batch, out);
}

const char *enc_describe(const encoder *e) { return e->ops->describe(e->state); }

void enc_close(encoder *e) {
  if (!e) return;
  e->ops->close(e->state);
  free(e);
}
