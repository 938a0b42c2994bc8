/* test_encoder_gpu: the CUDA encoder end to end against the CPU encoder (the oracle) on the
 * fixture models, on ragged batches of random ids (lengths 1, 2, 3, odd, up to the model's max):
 *   fp32:        max abs weight error <= 1e-4 over every (doc, term), dense comparison
 *   fp16, bf16:  max |w_gpu - w_cpu| / (the doc's largest CPU weight) <= REL_FP16 = 5e-3 (fp16),
 *                REL_BF16 = 3e-2 (bf16), and identical top-64 term sets (ties to the lower id) on
 *                >= 99% of the documents, where a term that is in one set only counts as a tie
 *                when its CPU weight lies within that bound (x the doc's largest weight) of the
 *                CPU's 64th weight: precision alone can swap such terms. The strict fraction (no
 *                tie allowance) is printed too. Why not strict: a CPU emulation of the device's
 *                precision (GEMM operands rounded to fp16/bf16, everything else fp32; a review,
 *                2026-11-26) gave strict fractions of 97-99% (fp16) and 47-94% (bf16) on these
 *                random-weight models and on splade-tiny over real text, from near-ties at rank
 *                64, with max relative errors of 2.0e-3 (fp16) and 1.3e-2 (bf16); the bounds
 *                above are 2.5x those. Not yet calibrated on a GPU run.
 *   top_k 64 + threshold 0.1 on the device (fp32): row counts equal everywhere, identical term
 *                sets on >= 99% of the documents
 * The CUDA encoder's decoder route is whatever SPLADEX_CUDA_DECODER says (chunked by default):
 * scripts/gpu_check.sh runs this test once per route. The encoding is pipelined (two batches in
 * flight), and the second fixture runs with SPLADEX_CUDA_TOKEN_BLOCK=1000 (several decoder GEMMs
 * per batch).
 * Models: the committed fixtures tests/fixtures/models/{distilbert-st,bert-untied-st,bert-bin}
 * (vocab 1000), and when present tests/fixtures/generated/{tiny-distilbert,tiny-bert} and
 * models/splade-tiny (vocab 30522). Exits 77 (ctest: Not Run) without CUDA or a device.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "encoder.h"
#include "err.h"
#include "model.h"

#ifdef SPLADEX_HAVE_CUDA
enum { N_DOCS = 256, TOP = 64 };
#define REL_FP16 5e-3
#define REL_BF16 3e-2

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static uint32_t rng_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

typedef struct {
  int n_docs, max_len;
  int *lengths;
  int32_t **ids;
} corpus;

static corpus make_corpus(const model *m, int max_len) {
  corpus c;
  c.n_docs = N_DOCS;
  c.max_len = max_len;
  c.lengths = malloc(sizeof(int) * N_DOCS);
  c.ids = malloc(sizeof(int32_t *) * N_DOCS);
  const int V = m->cfg.vocab;
  for (int d = 0; d < N_DOCS; d++) {
    int len = d < 3 ? d + 1 : d == 3 ? max_len : 1 + (int)(rng_u32() % (uint32_t)max_len);
    if (d % 5 == 4 && len > 75) len = (40 + (int)(rng_u32() % 70)) | 1; /* odd, MS MARCO-ish */
    if (len > max_len) len = max_len;
    c.lengths[d] = len;
    c.ids[d] = malloc(sizeof(int32_t) * len);
    for (int t = 0; t < len; t++) c.ids[d][t] = (int32_t)(rng_u32() % (uint32_t)V);
    c.ids[d][0] = m->cfg.cls_id < V ? m->cfg.cls_id : 1;
    if (len > 1) c.ids[d][len - 1] = m->cfg.sep_id < V ? m->cfg.sep_id : 2;
  }
  return c;
}

static void free_corpus(corpus *c) {
  for (int d = 0; d < c->n_docs; d++) free(c->ids[d]);
  free(c->ids);
  free(c->lengths);
}

/* Encodes the corpus in batches into dense rows (N_DOCS, V), pipelined as the expand pipeline
 * does it: batch i + 1 is submitted before batch i is collected, so the CUDA encoder's two slots
 * and its copy stream are exercised. Returns 0 or an ERR_ code. */
static int encode_dense(const model *m, const enc_options *opt, const corpus *c, float *dense,
                        char *desc, size_t desc_cap) {
  encoder *e = NULL;
  int rc = enc_open(m, opt, &e);
  if (rc < 0) return rc;
  snprintf(desc, desc_cap, "%s", enc_describe(e));
  const int V = m->cfg.vocab;
  memset(dense, 0, sizeof(float) * (size_t)c->n_docs * V);
  int first[ENC_MAX_IN_FLIGHT], count[ENC_MAX_IN_FLIGHT], head = 0, in_flight = 0;
  int d0 = 0;
  while (d0 < c->n_docs || in_flight > 0) {
    if (d0 < c->n_docs && in_flight < ENC_MAX_IN_FLIGHT) {
      int n = 0, tokens = 0;
      while (d0 + n < c->n_docs && n < opt->max_batch_docs &&
             tokens + c->lengths[d0 + n] <= opt->max_batch_tokens)
        tokens += c->lengths[d0 + n++];
      enc_batch b = {n, (const int32_t *const *)(c->ids + d0), c->lengths + d0};
      if ((rc = enc_submit(e, &b)) < 0) break;
      const int slot = (head + in_flight++) % ENC_MAX_IN_FLIGHT;
      first[slot] = d0, count[slot] = n;
      d0 += n;
      continue;
    }
    enc_result r;
    if ((rc = enc_collect(e, &r)) < 0) break;
    const int f = first[head], n = count[head];
    head = (head + 1) % ENC_MAX_IN_FLIGHT, in_flight--;
    CHECK(r.n_docs == n);
    for (int i = 0; i < n; i++) {
      for (int64_t k = r.indptr[i]; k < r.indptr[i + 1]; k++) {
        const int in_range = r.indices[k] >= 0 && r.indices[k] < V;
        CHECK(in_range);
        if (!in_range) continue;
        if (k > r.indptr[i]) CHECK(r.indices[k] > r.indices[k - 1]);
        dense[(size_t)(f + i) * V + r.indices[k]] = r.values[k];
      }
    }
  }
  enc_close(e);
  return rc;
}

static int cmp_desc(const void *a, const void *b, const float *row) {
  int ia = *(const int *)a, ib = *(const int *)b;
  if (row[ia] != row[ib]) return row[ia] > row[ib] ? -1 : 1;
  return ia < ib ? -1 : ia > ib;
}
static const float *sort_row;
static int cmp_terms(const void *a, const void *b) { return cmp_desc(a, b, sort_row); }

/* Marks the top-TOP terms (w > 0) of row in mark (V) with 1; order (V) holds the terms by
 * decreasing weight. Returns how many were marked. */
static int top_set(const float *row, int V, int *order, unsigned char *mark) {
  for (int v = 0; v < V; v++) order[v] = v, mark[v] = 0;
  sort_row = row;
  qsort(order, (size_t)V, sizeof(int), cmp_terms);
  int i = 0;
  for (; i < TOP && i < V && row[order[i]] > 0; i++) mark[order[i]] = 1;
  return i;
}

static void check_model(const char *dir) {
  model *m = NULL;
  if (model_load(dir, &m) < 0) {
    fprintf(stderr, "test_encoder_gpu: cannot load %s: %s\n", dir, err_msg());
    CHECK(!"model_load");
    return;
  }
  const int V = m->cfg.vocab;
  int max_len = m->cfg.max_positions < 256 ? m->cfg.max_positions : 256;
  corpus c = make_corpus(m, max_len);
  float *cpu = malloc(sizeof(float) * (size_t)N_DOCS * V);
  float *gpu = malloc(sizeof(float) * (size_t)N_DOCS * V);
  int *order = malloc(sizeof(int) * V);
  unsigned char *mc = malloc((size_t)V), *mg = malloc((size_t)V);
  char desc[400], cdesc[400];

  enc_options o = enc_options_default();
  o.max_length = max_len;
  o.max_batch_docs = 48;
  o.max_batch_tokens = 3000;
  o.threads = 0;
  if (encode_dense(m, &o, &c, cpu, cdesc, sizeof cdesc) < 0) {
    fprintf(stderr, "test_encoder_gpu: CPU encoder on %s: %s\n", dir, err_msg());
    CHECK(!"cpu encoder");
    goto done;
  }
  for (int p = ENC_FP32; p <= ENC_BF16; p++) {
    const double rel_bound = p == ENC_FP16 ? REL_FP16 : REL_BF16;
    enc_options g = o;
    g.backend = ENC_CUDA;
    g.precision = (enc_precision)p;
    if (encode_dense(m, &g, &c, gpu, desc, sizeof desc) < 0) {
      fprintf(stderr, "test_encoder_gpu: CUDA encoder on %s: %s\n", dir, err_msg());
      CHECK(!"cuda encoder");
      continue;
    }
    double maxabs = 0, maxrel = 0;
    int same_top = 0, same_top_strict = 0;
    for (int d = 0; d < N_DOCS; d++) {
      const float *rc = cpu + (size_t)d * V, *rg = gpu + (size_t)d * V;
      float rowmax = 0;
      for (int v = 0; v < V; v++) rowmax = rc[v] > rowmax ? rc[v] : rowmax;
      for (int v = 0; v < V; v++) {
        double diff = fabs((double)rg[v] - rc[v]);
        if (!(diff <= maxabs)) maxabs = isnan(diff) ? INFINITY : diff;
        double rel = rowmax > 0 ? diff / rowmax : diff;
        if (!(rel <= maxrel)) maxrel = isnan(rel) ? INFINITY : rel;
      }
      const int n_cpu = top_set(rc, V, order, mc);
      const float cut = n_cpu > 0 ? rc[order[n_cpu - 1]] : 0.0f; /* the CPU's last kept weight */
      top_set(rg, V, order, mg);
      int strict = 1, tied = 1;
      for (int v = 0; v < V; v++) {
        if (mc[v] == mg[v]) continue;
        strict = 0;
        if (!(fabsf(rc[v] - cut) <= rel_bound * rowmax)) tied = 0;
      }
      same_top_strict += strict;
      same_top += tied;
    }
    double frac = (double)same_top / N_DOCS, strict = (double)same_top_strict / N_DOCS;
    printf("%-40s %-34s max abs %-9.3g max rel %-9.3g top-%d identical %5.1f%% (strict %5.1f%%)\n",
           dir, desc, maxabs, maxrel, TOP, 100.0 * frac, 100.0 * strict);
    if (p == ENC_FP32) {
      CHECK(maxabs <= 1e-4);
    } else {
      CHECK(frac >= 0.99);
      CHECK(maxrel <= rel_bound);
    }
  }
  /* top-k and threshold applied on the device */
  {
    enc_options k = o;
    k.top_k = TOP;
    k.threshold = 0.1f;
    if (encode_dense(m, &k, &c, cpu, cdesc, sizeof cdesc) < 0) {
      CHECK(!"cpu encoder top-k");
      goto done;
    }
    k.backend = ENC_CUDA;
    if (encode_dense(m, &k, &c, gpu, desc, sizeof desc) < 0) {
      fprintf(stderr, "test_encoder_gpu: CUDA encoder top-k on %s: %s\n", dir, err_msg());
      CHECK(!"cuda encoder top-k");
      goto done;
    }
    int same = 0, counts = 0;
    for (int d = 0; d < N_DOCS; d++) {
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
           TOP, counts, N_DOCS, same, N_DOCS);
    CHECK(same >= 0.99 * N_DOCS);
    CHECK(counts >= 0.99 * N_DOCS);
  }
done:
  free(cpu), free(gpu), free(order), free(mc), free(mg);
  free_corpus(&c);
  model_free(m);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}
#endif

int main(void) {
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
  const char *always[] = {"tests/fixtures/models/distilbert-st", "tests/fixtures/models/bert-untied-st",
                          "tests/fixtures/models/bert-bin"};
  const char *optional[] = {"tests/fixtures/generated/tiny-distilbert",
                            "tests/fixtures/generated/tiny-bert", "models/splade-tiny"};
  for (size_t i = 0; i < sizeof always / sizeof *always; i++) {
    /* One model with a decoder token block of 1000 rows, so that documents span two decoder
     * GEMMs (the default block, 16384, is above this test's 3000-token batches). */
    if (i == 1) setenv("SPLADEX_CUDA_TOKEN_BLOCK", "1000", 1);
    check_model(always[i]);
    unsetenv("SPLADEX_CUDA_TOKEN_BLOCK");
  }
  for (size_t i = 0; i < sizeof optional / sizeof *optional; i++) {
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", optional[i]);
    if (exists(cfg))
      check_model(optional[i]);
    else
      printf("test_encoder_gpu: %s absent, not compared\n", optional[i]);
  }
  return check_report("test_encoder_gpu");
#endif
}
