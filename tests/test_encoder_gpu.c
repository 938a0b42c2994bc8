/* test_encoder_gpu: the CUDA encoder end to end against the CPU encoder (the oracle) on the
 * fixture models, on ragged batches of random ids (lengths 1, 2, 3, odd, up to the model's max):
 *   fp32:        max abs weight error <= 1e-4 over every (doc, term), dense comparison
 *   fp16, bf16:  max |w_gpu - w_cpu| / (the doc's largest CPU weight) <= ECMP_REL_FP16 = 5e-3
 *                (fp16), ECMP_REL_BF16 = 4e-2 (bf16), and identical top-64 term sets (ties to the
 *                lower id) on >= 99% of the documents, where a term that is in one set only counts
 *                as a tie when its CPU weight lies within that bound (x the doc's largest weight)
 *                of the boundary of the CPU's set: its 64th weight, or 0 (the w > 0 threshold)
 *                when the CPU row has fewer than 64 positive weights. Precision alone can swap such
 *                terms. The strict fraction (no tie allowance) is printed too. The comparison and
 *                the corpus live in tests/encoder_compare.h, shared with
 *                tests/test_precision_emulation.c, which holds the device's precision emulated on
 *                the CPU (GEMM weights and inputs rounded exactly where encoder_cuda.cu rounds
 *                them, everything else fp32) to these very criteria, on these models and corpora.
 *                Emulated (2026-11-26, see that test's output): max rel 3.9e-4 .. 2.4e-3 (fp16),
 *                3.5e-3 .. 2.1e-2 (bf16, splade-tiny the largest); strict fractions 89-99% (fp16)
 *                and 52-84% (bf16), from near-ties at rank 64; with the tie allowance 100%
 *                everywhere. The bounds are 2.1x (fp16) and 1.9x (bf16) the largest emulated
 *                error (cutwin_attention in place of ops_attention, a mere change of fp32
 *                order, moved it by ~10%). Without the "or 0" rule splade-tiny bf16 made 98.8%:
 *                its one-token documents keep 4 positive terms on the CPU and 5 in bf16 (a term
 *                at 0.0046, 0 on the CPU), a flip at the w > 0 threshold that the 64th-weight
 *                rule took for a miss. Not yet calibrated on a GPU run (tensor-core sums, the device's
 *                erff / expf / log1pf: fp32-level differences the emulation does not have).
 *   top_k 64 + threshold 0.1 on the device (fp32): row counts equal everywhere, identical term
 *                sets on >= 99% of the documents
 * The CUDA encoder's routes are whatever SPLADEX_CUDA_DECODER (chunked | fused | wgmma),
 * SPLADEX_CUDA_ATTENTION (fp32 | mma) and SPLADEX_CUDA_ACTIVATIONS (fp32 | lp) say (the first of
 * each by default): scripts/gpu_check.sh runs this test once per route. The second routes compute
 * in fp16 / bf16 only (enc_cuda_open refuses fp32 there), so the fp32 encodings (the fp32
 * comparison and the top-k block) run on the first routes, and the output says so; so do the
 * models whose head dim the mma attention refuses (not a multiple of 16: the tiny fixtures have
 * 8), for its two route variables. The encoding is pipelined (two batches in
 * flight), and the second fixture runs with SPLADEX_CUDA_TOKEN_BLOCK=1000 (several decoder GEMMs
 * per batch).
 * A sum-pooled SparseEncoder (tests/fixtures/generated/st-sum, when present) must be refused.
 * Models: the committed fixtures tests/fixtures/models/{distilbert-st,bert-untied-st,bert-bin}
 * (vocab 1000), and when present tests/fixtures/generated/{tiny-distilbert,tiny-bert} and
 * models/splade-tiny (vocab 30522) and tests/fixtures/generated/tiny-bert-v105879 (vocab 105879,
 * above 65535 and not a multiple of the decoder tiles), tests/fixtures/generated/tiny-roberta
 * (RobertaForMaskedLM: positions after padding_idx + 1, vocab 50265). Exits 77 (ctest: Not Run) without CUDA or a device.
 * Usage: test_encoder_gpu [--quick]  (--quick: 48 documents of at most 64 tokens per model, for
 * the emulated device of the `emu` tests, CMakeLists.txt)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "cuda_twins.h"
#include "encoder.h"
#include "encoder_compare.h"
#include "err.h"
#include "model.h"

/* Documents per model and the cap on their length: ECMP_N_DOCS and 256, or with --quick 48 and
 * 64 (the emulated device of the `emu` tests runs every CUDA thread on the CPU). */
static int docs_per_model = ECMP_N_DOCS, len_cap = 256;

#ifdef SPLADEX_HAVE_CUDA
enum { TOP = ECMP_TOP };

/* The routes that refuse fp32 or a model (see above): route_env_allowed unsets those that are set
 * and that enc_cuda_open would refuse for model m in precision p, saving them into saved[] (NULL
 * where left alone); route_env_restore sets them back. */
static const char *const route_env[] = {"SPLADEX_CUDA_DECODER", "SPLADEX_CUDA_ATTENTION",
                                        "SPLADEX_CUDA_ACTIVATIONS"};
enum { N_ROUTE_ENV = sizeof route_env / sizeof route_env[0] };

static void route_env_allowed(const model *m, enc_precision p, char *saved[N_ROUTE_ENV]) {
  const int mma_ok = cutwin_attention_mma_supported(m->cfg.hidden / m->cfg.n_heads);
  int any = 0;
  for (int i = 0; i < N_ROUTE_ENV; i++) {
    const int refused = p == ENC_FP32 || (i > 0 && !mma_ok);
    const char *v = refused ? getenv(route_env[i]) : NULL;
    saved[i] = v && *v ? strdup(v) : NULL;
    if (saved[i]) unsetenv(route_env[i]), any = 1;
  }
  if (any)
    printf("test_encoder_gpu: %s runs on the default routes (%s)\n",
           p == ENC_FP32 ? "fp32" : "this model",
           p == ENC_FP32 ? "the others are fp16/bf16 only" : "head dim not a multiple of 16");
}

static void route_env_restore(char *saved[N_ROUTE_ENV]) {
  for (int i = 0; i < N_ROUTE_ENV; i++)
    if (saved[i]) setenv(route_env[i], saved[i], 1), free(saved[i]);
}

/* ecmp_encode_dense on the CUDA encoder, with the routes the precision allows. */
static int encode_cuda(const model *m, const enc_options *opt, const ecmp_corpus *c, float *dense,
                       char *desc, size_t desc_cap) {
  char *saved[N_ROUTE_ENV];
  route_env_allowed(m, opt->precision, saved);
  int rc = ecmp_encode_dense(m, opt, c, docs_per_model, dense, desc, desc_cap);
  route_env_restore(saved);
  return rc;
}

/* ---- long documents: several sequences (windows) per output row, rows split over batches ---- */

enum { WIN_SEQS = 60 }; /* the corpus's first 60 sequences (all when fewer), grouped into documents */

/* Encodes the first WIN_SEQS sequences of c as documents of 1, 3, 2, 6, 1, 4, ... sequences
 * (enc_rows) into dense rows (*n_rows, V): batches of at most 8 sequences or opt's token budget,
 * cut wherever they fill, so that documents span batches (unfinished / continues). Returns 0 or
 * the encoder's error. */
static int windows_dense(const model *m, const enc_options *opt, const ecmp_corpus *c,
                         float *dense, int *n_rows) {
  static const int pattern[] = {1, 3, 2, 6, 1, 4, 5, 2, 7, 1};
  const int seqs = c->n_docs < WIN_SEQS ? c->n_docs : WIN_SEQS;
  int doc_of[WIN_SEQS], n_docs = 0; /* the document of each sequence */
  for (int q = 0, k = 0; q < seqs; k++, n_docs++)
    for (int j = 0; j < pattern[k % 10] && q < seqs; j++) doc_of[q++] = n_docs;
  encoder *e = NULL;
  int rc = enc_open(m, opt, &e);
  if (rc < 0) return rc;
  const int V = m->cfg.vocab;
  memset(dense, 0, sizeof(float) * (size_t)n_docs * V);
  int out_row = 0, carried = 0;
  for (int q0 = 0; q0 < seqs && rc == 0;) {
    int n = 0, tokens = 0;
    while (q0 + n < seqs && n < 8 && tokens + c->lengths[q0 + n] <= opt->max_batch_tokens)
      tokens += c->lengths[q0 + n++];
    int row_seqs[8], R = 0;
    for (int i = 0; i < n; i++) {
      if (i > 0 && doc_of[q0 + i] == doc_of[q0 + i - 1]) row_seqs[R - 1]++;
      else row_seqs[R++] = 1;
    }
    const int last = q0 + n - 1;
    enc_rows rows = {R, row_seqs, carried, last + 1 < seqs && doc_of[last + 1] == doc_of[last]};
    enc_batch b = {n, (const int32_t *const *)(c->ids + q0), c->lengths + q0};
    enc_result r;
    if ((rc = enc_run_rows(e, &b, &rows, &r)) < 0) break;
    CHECK(r.n_docs == R - rows.unfinished);
    for (int i = 0; i < r.n_docs; i++, out_row++)
      for (int64_t k = r.indptr[i]; k < r.indptr[i + 1]; k++)
        dense[(size_t)out_row * V + r.indices[k]] = r.values[k];
    carried = rows.unfinished;
    q0 += n;
  }
  enc_close(e);
  *n_rows = out_row;
  return rc;
}

/* The CUDA encoder's windowed documents against the CPU encoder's, in each precision, with the
 * rule of canary.h (fp32: 1e-4 absolute; fp16 / bf16: the relative bounds and top-64 sets). */
static void check_windows(const char *dir, const model *m, const ecmp_corpus *c,
                          const enc_options *o, float *cpu, float *gpu) {
  int n_cpu = 0, n_gpu = 0;
  if (windows_dense(m, o, c, cpu, &n_cpu) < 0) {
    fprintf(stderr, "test_encoder_gpu: CPU windows on %s: %s\n", dir, err_msg());
    CHECK(!"cpu windows");
    return;
  }
  for (int p = ENC_FP32; p <= ENC_BF16; p++) {
    enc_options g = *o;
    g.backend = ENC_CUDA;
    g.precision = (enc_precision)p;
    char *saved[N_ROUTE_ENV];
    route_env_allowed(m, (enc_precision)p, saved);
    int rc = windows_dense(m, &g, c, gpu, &n_gpu);
    route_env_restore(saved);
    if (rc < 0) {
      fprintf(stderr, "test_encoder_gpu: CUDA windows on %s: %s\n", dir, err_msg());
      CHECK(!"cuda windows");
      continue;
    }
    CHECK(n_gpu == n_cpu);
    const canary_rule rule = canary_rule_for((enc_precision)p, 0.0f, 0);
    canary_stats st;
    CHECK(canary_compare(cpu, gpu, n_cpu, m->cfg.vocab, &rule, &st) == 0);
    printf("%-40s windows (%d documents of 1-7 sequences, split over batches) %s: max abs %.3g, "
           "max rel %.3g, top-%d same %.1f%%\n", dir, n_cpu, p == ENC_FP32 ? "fp32" : p == ENC_FP16 ? "fp16" : "bf16",
           st.max_abs, st.max_rel, TOP, 100.0 * st.same_top_fraction);
    CHECK(st.ok);
  }
}

static void check_model(const char *dir, uint64_t *rng) {
  model *m = NULL;
  if (model_load(dir, &m) < 0) {
    fprintf(stderr, "test_encoder_gpu: cannot load %s: %s\n", dir, err_msg());
    CHECK(!"model_load");
    return;
  }
  const int V = m->cfg.vocab;
  int max_len = m->cfg.max_positions < len_cap ? m->cfg.max_positions : len_cap;
  ecmp_corpus c;
  float *cpu = malloc(sizeof(float) * (size_t)docs_per_model * V);
  float *gpu = malloc(sizeof(float) * (size_t)docs_per_model * V);
  char desc[400], cdesc[400];
  if (ecmp_corpus_make(m, docs_per_model, max_len, rng, &c) < 0 || !cpu || !gpu) {
    CHECK(!"out of memory");
    free(cpu), free(gpu);
    ecmp_corpus_free(&c); /* zeroed when ecmp_corpus_make failed */
    model_free(m);
    return;
  }

  enc_options o = enc_options_default();
  o.max_length = max_len;
  o.max_batch_docs = 48;
  o.max_batch_tokens = 3000;
  o.threads = 0;
  if (ecmp_encode_dense(m, &o, &c, docs_per_model, cpu, cdesc, sizeof cdesc) < 0) {
    fprintf(stderr, "test_encoder_gpu: CPU encoder on %s: %s\n", dir, err_msg());
    CHECK(!"cpu encoder");
    goto done;
  }
  for (int p = ENC_FP32; p <= ENC_BF16; p++) {
    const double rel_bound = ecmp_rel_bound((enc_precision)p);
    enc_options g = o;
    g.backend = ENC_CUDA;
    g.precision = (enc_precision)p;
    if (encode_cuda(m, &g, &c, gpu, desc, sizeof desc) < 0) {
      fprintf(stderr, "test_encoder_gpu: CUDA encoder on %s: %s\n", dir, err_msg());
      CHECK(!"cuda encoder");
      continue;
    }
    ecmp_stats st;
    if (ecmp_compare(cpu, gpu, docs_per_model, V, rel_bound, &st) < 0) {
      CHECK(!"out of memory");
      continue;
    }
    /* "band needed": the smallest tie band that would give the 99% (to calibrate the bounds). */
    printf("%-40s %-34s max abs %-9.3g max rel %-9.3g top-%d identical %5.1f%% (strict %5.1f%%, "
           "band needed %.3g)\n",
           dir, desc, st.max_abs, st.max_rel, TOP, 100.0 * st.same_top_fraction,
           100.0 * st.same_top_strict_fraction, st.band_needed);
    if (p == ENC_FP32) {
      CHECK(st.max_abs <= 1e-4);
    } else {
      CHECK(st.same_top_fraction >= ECMP_SAME_TOP_FRACTION);
      CHECK(st.max_rel <= rel_bound);
    }
  }
  check_windows(dir, m, &c, &o, cpu, gpu);
  /* top-k and threshold applied on the device */
  {
    enc_options k = o;
    k.top_k = TOP;
    k.threshold = 0.1f;
    if (ecmp_encode_dense(m, &k, &c, docs_per_model, cpu, cdesc, sizeof cdesc) < 0) {
      CHECK(!"cpu encoder top-k");
      goto done;
    }
    k.backend = ENC_CUDA;
    if (encode_cuda(m, &k, &c, gpu, desc, sizeof desc) < 0) {
      fprintf(stderr, "test_encoder_gpu: CUDA encoder top-k on %s: %s\n", dir, err_msg());
      CHECK(!"cuda encoder top-k");
      goto done;
    }
    int same = 0, counts = 0;
    for (int d = 0; d < docs_per_model; d++) {
      const float *rc = cpu + (size_t)d * V, *rg = gpu + (size_t)d * V;
      int nc = 0, ng = 0, eq = 1;
      for (int v = 0; v < V; v++) {
        nc += rc[v] > 0, ng += rg[v] > 0;
        if ((rc[v] > 0) != (rg[v] > 0)) eq = 0;
      }
      counts += nc == ng;
      same += eq;
    }
    printf("%-40s %-34s top_k %d thr 0.1: counts equal %d/%d, sets identical %d/%d\n", dir, desc,
           TOP, counts, docs_per_model, same, docs_per_model);
    CHECK(same >= 0.99 * docs_per_model);
    CHECK(counts >= 0.99 * docs_per_model);
  }
done:
  free(cpu), free(gpu);
  ecmp_corpus_free(&c);
  model_free(m);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}
#endif

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      docs_per_model = 48;
      len_cap = 64;
    } else {
      fprintf(stderr, "usage: test_encoder_gpu [--quick]\n");
      return 2;
    }
  }
#ifndef SPLADEX_HAVE_CUDA
  printf("test_encoder_gpu: built without CUDA: skipped\n");
  return CHECK_SKIP;
#else
  /* Through encoder.h only: this test links libspladex_core.so, and the CUDA module is dlopen()ed
   * by enc_cuda_available() / enc_open() like in the CLI. */
  if (!enc_cuda_available()) {
    printf("test_encoder_gpu: CUDA module not loadable or no usable CUDA device: skipped\n");
    return CHECK_SKIP;
  }
  /* A SparseEncoder whose SpladePooling sums (tests/py/test_sparse_encoder_parity.py makes it):
   * the CUDA encoder refuses it, naming the CPU, instead of max-pooling it. */
  if (exists("tests/fixtures/generated/st-sum/modules.json")) {
    model *sum = NULL;
    encoder *e = NULL;
    CHECK(model_load("tests/fixtures/generated/st-sum", &sum) == 0);
    if (sum) {
      enc_options o = enc_options_default();
      o.backend = ENC_CUDA;
      o.precision = ENC_FP16;
      CHECK(enc_open(sum, &o, &e) == ERR_ARG && e == NULL && strstr(err_msg(), "CPU only") != NULL);
      enc_close(e);
    }
    model_free(sum);
  }
  uint64_t rng = ECMP_RNG_SEED; /* runs on from one model's corpus to the next */
  for (int i = 0; i < ECMP_N_MODELS; i++) {
    int optional;
    const char *dir = ecmp_model(i, &optional);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (optional && !exists(cfg)) {
      printf("test_encoder_gpu: %s absent, not compared\n", dir);
      continue;
    }
    /* One model with a decoder token block of 1000 rows, so that documents span two decoder
     * GEMMs (the default block, 16384, is above this test's 3000-token batches). */
    if (i == 1) setenv("SPLADEX_CUDA_TOKEN_BLOCK", "1000", 1);
    check_model(dir, &rng);
    unsetenv("SPLADEX_CUDA_TOKEN_BLOCK");
  }
  return check_report("test_encoder_gpu");
#endif
}
