/* encoder: the backend-neutral API of encoder.h, dispatching to a backend through a small table.
 *
 * A backend is four functions with one opaque state: open, run, describe, close (encoder_cpu.h,
 * and cuda/encoder_cuda.h with the prefix enc_cuda_ when built with SPLADEX_HAVE_CUDA). The checks
 * every backend needs (options against the model, each batch against the options and the
 * vocabulary) live here once, so a backend's run may trust its batch.
 *
 * The CUDA backend is a separate shared library (libspladex_cuda.so, which links cudart, cuBLAS,
 * cuBLASLt and cuSPARSE) that this file dlopen()s the first time a CUDA encoder is asked for or
 * enc_cuda_available() is called, so a CPU-only run never pays for loading the CUDA libraries
 * (~0.3 to 0.7 s and ~250 MB RSS). Where it is looked for, first hit wins:
 *   1. the path in the environment variable SPLADEX_CUDA_LIB, when set and non-empty (only it);
 *   2. the directory of the running executable (/proc/self/exe);
 *   3. the directory of libspladex_core.so itself (dladdr);
 *   4. the bare file name, through the dynamic loader's search (LD_LIBRARY_PATH, ld.so.cache).
 * It is opened RTLD_NOW | RTLD_LOCAL and never closed (CUDA libraries do not support unloading);
 * a failed load is not cached, so a later call tries again.
 */
/* dladdr() is a GNU extension; this file alone asks for it. */
#define _GNU_SOURCE

#include "encoder.h"

#include <stdlib.h>
#include <string.h>

#include "encoder_cpu.h"
#include "err.h"

#ifdef SPLADEX_HAVE_CUDA
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "encoder_cuda.h"
#define ENC_WITH_CUDA 1
#ifndef SPLADEX_CUDA_MODULE
#define SPLADEX_CUDA_MODULE "libspladex_cuda.so"
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
/* The entry points of libspladex_cuda.so, resolved by dlsym. */
typedef int (*cuda_open_fn)(const model *, const enc_options *, enc_cuda **);
typedef int (*cuda_run_fn)(enc_cuda *, const enc_batch *, enc_result *);
typedef const char *(*cuda_describe_fn)(const enc_cuda *);
typedef void (*cuda_close_fn)(enc_cuda *);
typedef int (*cuda_have_device_fn)(void);
/* The pointer types above must match the declarations of encoder_cuda.h (checked without
 * referencing the symbols: a _Generic controlling expression is not evaluated). */
_Static_assert(_Generic(&enc_cuda_open, cuda_open_fn: 1, default: 0), "enc_cuda_open type");
_Static_assert(_Generic(&enc_cuda_run, cuda_run_fn: 1, default: 0), "enc_cuda_run type");
_Static_assert(_Generic(&enc_cuda_describe, cuda_describe_fn: 1, default: 0), "enc_cuda_describe type");
_Static_assert(_Generic(&enc_cuda_close, cuda_close_fn: 1, default: 0), "enc_cuda_close type");

static struct {
  pthread_mutex_t lock;
  int loaded;                     /* 1 once every symbol below is resolved; never reset */
  cuda_open_fn open;
  cuda_run_fn run;
  cuda_describe_fn describe;
  cuda_close_fn close;
  cuda_have_device_fn have_device;
} cuda_mod = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL, NULL, NULL, NULL};

/* Appends "dir/SPLADEX_CUDA_MODULE" of the file `file` to paths[*n] (when it fits). */
static void cuda_candidate_next_to(const char *file, char paths[][PATH_MAX], int *n) {
  const char *slash = strrchr(file, '/');
  if (!slash) return;
  int len = snprintf(paths[*n], PATH_MAX, "%.*s/%s", (int)(slash - file), file, SPLADEX_CUDA_MODULE);
  if (len <= 0 || len >= PATH_MAX) return;
  for (int i = 0; i < *n; i++)
    if (strcmp(paths[i], paths[*n]) == 0) return; /* the executable beside the core: once */
  (*n)++;
}

/* Loads libspladex_cuda.so once. Returns 0, or ERR_DEVICE with the reason in why (no err_set,
 * so enc_cuda_available() records nothing). Called with cuda_mod.lock held. */
static int cuda_load_locked(char *why, size_t why_cap) {
  if (cuda_mod.loaded) return 0;
  char paths[4][PATH_MAX];
  int n = 0;
  const char *env = getenv("SPLADEX_CUDA_LIB");
  if (env && *env) {
    snprintf(paths[n++], PATH_MAX, "%s", env);
  } else {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
      exe[len] = '\0';
      cuda_candidate_next_to(exe, paths, &n);
    }
    Dl_info info;
    if (dladdr(&cuda_mod, &info) && info.dli_fname)
      cuda_candidate_next_to(info.dli_fname, paths, &n);
    snprintf(paths[n++], PATH_MAX, "%s", SPLADEX_CUDA_MODULE);
  }
  void *h = NULL;
  char first_err[1024] = "";
  size_t off = 0;
  char tried[4 * PATH_MAX + 64] = "";
  for (int i = 0; i < n && !h; i++) {
    /* A candidate path that does not exist is skipped quietly; one that exists but fails to load
     * (a missing libcublas, say) is the error worth reporting. The bare name always goes to
     * dlopen. */
    int is_path = strchr(paths[i], '/') != NULL;
    off += (size_t)snprintf(tried + off, sizeof tried - off, "%s%s", i ? ", " : "", paths[i]);
    if (off >= sizeof tried) off = sizeof tried - 1;
    if (is_path && access(paths[i], F_OK) != 0 && !(env && *env)) continue;
    h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (!h && !first_err[0]) {
      const char *d = dlerror();
      snprintf(first_err, sizeof first_err, "%s", d ? d : "unknown dlopen error");
    }
  }
  if (!h) {
    snprintf(why, why_cap, "the CUDA backend module %s could not be loaded: %s (tried: %s)",
             SPLADEX_CUDA_MODULE, first_err, tried);
    return ERR_DEVICE;
  }
  struct {
    const char *name;
    void *dst;
    size_t size;
  } syms[] = {
      {"enc_cuda_open", &cuda_mod.open, sizeof cuda_mod.open},
      {"enc_cuda_run", &cuda_mod.run, sizeof cuda_mod.run},
      {"enc_cuda_describe", &cuda_mod.describe, sizeof cuda_mod.describe},
      {"enc_cuda_close", &cuda_mod.close, sizeof cuda_mod.close},
      {"cu_have_device", &cuda_mod.have_device, sizeof cuda_mod.have_device},
  };
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
    (void)dlerror();
    void *p = dlsym(h, syms[i].name);
    if (!p) {
      const char *d = dlerror();
      snprintf(why, why_cap, "the CUDA backend module %s lacks %s: %s", SPLADEX_CUDA_MODULE,
               syms[i].name, d ? d : "null symbol");
      /* The handle stays open (closing CUDA libraries is unsafe); nothing else is kept. */
      return ERR_DEVICE;
    }
    /* ISO C has no object-to-function pointer conversion; POSIX guarantees the representation. */
    memcpy(syms[i].dst, &p, syms[i].size);
  }
  cuda_mod.loaded = 1;
  return 0;
}

/* Loads the module; 0, or ERR_DEVICE with the reason in why. */
static int cuda_load(char *why, size_t why_cap) {
  pthread_mutex_lock(&cuda_mod.lock);
  int rc = cuda_load_locked(why, why_cap);
  pthread_mutex_unlock(&cuda_mod.lock);
  return rc;
}

static int cuda_run(void *s, const enc_batch *b, enc_result *o) { return cuda_mod.run(s, b, o); }
static const char *cuda_describe(const void *s) { return cuda_mod.describe(s); }
static void cuda_close(void *s) { cuda_mod.close(s); }
static const enc_backend_ops cuda_ops = {"cuda", cuda_run, cuda_describe, cuda_close};

int enc_cuda_available(void) {
  char why[PATH_MAX * 5];
  if (cuda_load(why, sizeof why) < 0) return 0;
  return cuda_mod.have_device() ? 1 : 0;
}
#else
int enc_cuda_available(void) { return 0; }
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
      char why[PATH_MAX * 5];
      if (cuda_load(why, sizeof why) < 0) {
        rc = err_set(ERR_DEVICE, "%s", why);
        break;
      }
      enc_cuda *s = NULL;
      rc = cuda_mod.open(m, opt, &s);
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
