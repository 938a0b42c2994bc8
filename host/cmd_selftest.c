/* cmd_selftest: `spladex selftest`, a check of a node before a long job.
 *
 * Encodes the built-in sample (host/selftest_sample.c: 48 real English passages, short to long)
 * on the device asked for and on the CPU encoder in fp32 (the oracle), compares them with the
 * rule every CUDA expand job's canary uses (host/canary.h), prints the figures, and then times a
 * few full batches of the sample on the device: passages/s and tokens/s. Exit 0 only when the
 * device agrees with the CPU. `--device cpu` checks the CPU encoder against itself: a smoke test
 * of the build and the model, not of a device, and it says so. A device that does not open is an
 * error, never a quiet run on the CPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canary.h"
#include "cli.h"
#include "commands.h"
#include "encoder.h"
#include "err.h"
#include "model.h"
#include "selftest_sample.h"
#include "tokenizer.h"

static const char selftest_usage[] =
    "usage: spladex selftest --model DIR [options]\n"
    "\n"
    "Checks this node: encodes 48 built-in English passages on the device and on the CPU (fp32,\n"
    "the reference), compares them as every CUDA expand job's canary does, then times a few full\n"
    "batches. Exit 0 only when the device agrees with the CPU.\n"
    "\n"
    "  --model DIR          SPLADE model directory\n"
    "  --device D           auto | cpu | cuda | cuda:N (default auto; cpu checks the CPU encoder\n"
    "                       against itself, a smoke test of the build and the model)\n"
    "  --precision P        fp32 | fp16 | bf16 (default fp16 on cuda, fp32 on cpu)\n"
    "  --max-length N       tokens per passage (default 256)\n"
    "  --batch-tokens N     token budget of one timed batch (default 16384)\n"
    "  --batches N          full batches to time (default 8; 0 = no timing)\n"
    "  --threads N          CPU threads (default: all cores)\n"
    "  --help               this text\n";

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Times n_batches full batches (passages of the sample, cycled, up to the options' budgets) on
 * e, two in flight as the expand pipeline keeps them. Prints the rates. */
static int selftest_time(encoder *e, const enc_options *o, const canary_passages *p,
                         int n_batches) {
  enum { SLOTS = ENC_MAX_IN_FLIGHT };
  const int cap = o->max_batch_docs;
  const int32_t **ids = calloc((size_t)SLOTS * (size_t)cap, sizeof *ids);
  int *lengths = calloc((size_t)SLOTS * (size_t)cap, sizeof *lengths);
  int rc = 0;
  if (!ids || !lengths) {
    rc = err_set(ERR_NOMEM, "out of memory for the timed batches");
    goto done;
  }
  long long passages = 0, tokens = 0;
  int next = 0, submitted = 0, collected = 0;
  const double t0 = now_seconds();
  while (collected < n_batches) {
    if (submitted < n_batches && enc_in_flight(e) < SLOTS) {
      const int slot = submitted % SLOTS;
      const int32_t **bi = ids + (size_t)slot * cap;
      int *bl = lengths + (size_t)slot * cap;
      int n = 0, used = 0;
      while (n < cap && used + p->lengths[next] <= o->max_batch_tokens) {
        bi[n] = p->ids[next], bl[n] = p->lengths[next];
        used += bl[n++];
        next = (next + 1) % p->n_docs;
      }
      enc_batch b = {n, bi, bl};
      if ((rc = enc_submit(e, &b)) < 0) goto done;
      passages += n, tokens += used;
      submitted++;
      continue;
    }
    enc_result r;
    if ((rc = enc_collect(e, &r)) < 0) goto done;
    collected++;
  }
  const double dt = now_seconds() - t0;
  printf("speed: %d batches, %lld passages, %lld tokens in %.3f s: %.1f passages/s, %.0f "
         "tokens/s (model loaded, warm)\n", n_batches, passages, tokens, dt,
         dt > 0 ? passages / dt : 0.0, dt > 0 ? tokens / dt : 0.0);
done:
  free(ids);
  free(lengths);
  return rc;
}

int cmd_selftest(int argc, char **argv) {
  const char *model_dir = NULL, *device = "auto", *precision = NULL;
  int max_length = 256, batch_tokens = 16384, n_batches = 8, threads = 0;
  model *m = NULL;
  tok *t = NULL;
  encoder *e = NULL;
  tok_buffer buf = {0};
  int32_t **ids = NULL;
  int *lengths = NULL;
  const char **vocab = NULL;
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      fputs(selftest_usage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return err_set(ERR_ARG, "%s needs a value (see spladex selftest --help)", o);
    const char *v = argv[++i];
    if (!strcmp(o, "--model")) model_dir = v;
    else if (!strcmp(o, "--device")) device = v;
    else if (!strcmp(o, "--precision")) precision = v;
    else if (!strcmp(o, "--max-length")) rc = cli_parse_int(o, v, 2, 100000, &max_length);
    else if (!strcmp(o, "--batch-tokens")) rc = cli_parse_int(o, v, 2, 1 << 24, &batch_tokens);
    else if (!strcmp(o, "--batches")) rc = cli_parse_int(o, v, 0, 100000, &n_batches);
    else if (!strcmp(o, "--threads")) rc = cli_parse_int(o, v, 0, 1024, &threads);
    else return err_set(ERR_ARG, "unknown option '%s' (see spladex selftest --help)", o);
    if (rc < 0) return rc;
  }
  if (!model_dir) return err_set(ERR_ARG, "--model DIR is required (see spladex selftest --help)");
  if (batch_tokens < max_length)
    return err_set(ERR_ARG, "--batch-tokens %d is smaller than --max-length %d", batch_tokens,
                   max_length);

  enc_options opt = enc_options_default();
  opt.max_length = max_length;
  opt.max_batch_tokens = batch_tokens;
  opt.threads = threads;
  if ((rc = cli_require_device(device)) < 0) goto fail; /* --device cuda: fail before loading */
  if ((rc = cli_open_model(model_dir, &m, &t)) < 0) goto fail;
  if ((rc = cli_open_encoder("spladex selftest", m, device, precision, &opt, &e)) < 0) goto fail;

  /* the sample, tokenized as expand would */
  const int D = selftest_sample_count, V = m->cfg.vocab;
  ids = calloc((size_t)D, sizeof *ids);
  lengths = calloc((size_t)D, sizeof *lengths);
  vocab = calloc((size_t)V, sizeof *vocab);
  if (!ids || !lengths || !vocab) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  long long sample_tokens = 0;
  for (int d = 0; d < D; d++) {
    const char *text = selftest_sample_texts[d];
    if ((rc = tok_encode(t, text, strlen(text), max_length, &buf)) < 0) goto fail;
    if (!(ids[d] = malloc(sizeof(int32_t) * buf.n))) {
      rc = err_set(ERR_NOMEM, "out of memory");
      goto fail;
    }
    memcpy(ids[d], buf.ids, sizeof(int32_t) * buf.n);
    lengths[d] = (int)buf.n;
    sample_tokens += (long long)buf.n;
  }
  for (int v = 0; v < V; v++) {
    const char *term = tok_token(t, v);
    vocab[v] = term ? term : "?";
  }
  canary_passages p = {D, (const int32_t *const *)ids, lengths, selftest_sample_ids};

  printf("spladex selftest: %s; model %s (vocab %d); %d built-in passages, %lld tokens\n",
         enc_describe(e), m->name, V, D, sample_tokens);
  if (opt.backend == ENC_CPU)
    printf("note: --device cpu checks the CPU encoder against itself: a smoke test of this build "
           "and model, not a check of a device\n");
  canary_result r;
  if ((rc = canary_run(m, e, &opt, &p, &r)) < 0) goto fail;
  const canary_stats *s = &r.stats;
  printf("agreement: max %s weight error %.3g (bound %.3g%s), top-%d sets the same on %.1f%% of "
         "the passages (strict %.1f%%, band needed %.3g); CPU reference %.2f s, device %.3f s\n",
         r.rule.relative ? "relative" : "absolute", r.rule.relative ? s->max_rel : s->max_abs,
         r.rule.bound, r.rule.relative ? " x the passage's largest weight" : "", CANARY_TOP,
         100.0 * s->same_top_fraction, 100.0 * s->same_top_strict_fraction, s->band_needed,
         r.cpu_seconds, r.device_seconds);
  if (!s->ok) {
    char why[2048];
    canary_describe_failure(&r, &p, vocab, V, why, sizeof why);
    printf("FAILED: %s\n", why);
    rc = err_set(ERR_DEVICE, "%s", why);
    goto fail;
  }
  printf("agreement: OK\n");
  if (n_batches > 0 && (rc = selftest_time(e, &opt, &p, n_batches)) < 0) goto fail;
  rc = 0;
fail:
  for (int d = 0; ids && d < selftest_sample_count; d++) free(ids[d]);
  free(ids);
  free(lengths);
  free(vocab);
  tok_buffer_free(&buf);
  enc_close(e);
  tok_free(t);
  model_free(m);
  return rc;
}
