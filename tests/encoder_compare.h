/* encoder_compare.h: what tests/test_encoder_gpu.c (the CUDA encoder on a GPU) and
 * tests/test_precision_emulation.c (the CUDA encoder's fp16/bf16 precision emulated on the CPU)
 * share, so that both measure the same thing on the same documents: the random corpus, the dense
 * encoding of a corpus through encoder.h, and the comparison of a candidate's dense rows with the
 * CPU encoder's (the oracle).
 *
 * The criteria (issue 5: "fp16 and bf16 with identical top-64 term sets on at least 99% of
 * documents and a stated maximum relative weight error"), which host/canary.h implements once for
 * these tests, the canary of every CUDA expand job and `spladex selftest`:
 *   max rel    max over (doc, term) of |w_got - w_ref| / (the doc's largest reference weight)
 *              <= ECMP_REL_FP16 (fp16) / ECMP_REL_BF16 (bf16)
 *   top sets   the top-ECMP_TOP terms (w > 0, ties to the lower id) of the two rows identical on
 *              >= ECMP_SAME_TOP_FRACTION of the documents, where a term that is in one set only
 *              counts as a tie when its reference weight lies within rel_bound x the doc's largest
 *              reference weight of the boundary of the reference's set: its last kept (64th)
 *              weight, or 0 when the reference row has fewer than ECMP_TOP positive weights (the
 *              set is then cut by the w > 0 threshold, and a term at +0.005 in one row and 0 in
 *              the other is a flip at that threshold). An error that the weight bound allows can
 *              swap such terms. The strict fraction (no tie allowance) is measured too, and the
 *              band that the fraction would need, for the record.
 * Why the bounds are these: see the header comments of both tests.
 *
 * Test-only header: static inline functions (a test that uses some of them compiles warning-free),
 * each test one executable. Uses check.h's CHECK.
 * Legend: V vocab, D documents of the corpus.
 */
#ifndef SPLADEX_TESTS_ENCODER_COMPARE_H
#define SPLADEX_TESTS_ENCODER_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary.h"
#include "check.h"
#include "encoder.h"
#include "model.h"

enum {
  ECMP_N_DOCS = 256,      /* documents per model */
  ECMP_TOP = CANARY_TOP   /* the top-k whose term sets are compared */
};
#define ECMP_REL_FP16 CANARY_REL_FP16
#define ECMP_REL_BF16 CANARY_REL_BF16
#define ECMP_SAME_TOP_FRACTION CANARY_SAME_TOP_FRACTION

/* The maximum relative weight error allowed for precision p (ENC_FP16 or ENC_BF16; ENC_FP32 gets
 * the bf16 bound, used only for its tie band: fp32 is checked by a max abs error instead). */
static inline double ecmp_rel_bound(enc_precision p) {
  return p == ENC_FP16 ? ECMP_REL_FP16 : ECMP_REL_BF16;
}

/* ---- the models ---- */

enum { ECMP_N_MODELS = 8 };

/* The i-th model (i in [0, ECMP_N_MODELS)) both tests run, in this order, as a directory relative
 * to the repository root: the committed fixtures (vocab 1000) first, then the optional ones
 * (vocab 30522, then 105879 and RoBERTa's 50265: scripts/make_random_model.py, scripts/fetch_model.sh), for which *optional is set
 * to 1: a test skips them when absent. Static string. */
static inline const char *ecmp_model(int i, int *optional) {
  static const char *const dirs[ECMP_N_MODELS] = {
      "tests/fixtures/models/distilbert-st",     "tests/fixtures/models/bert-untied-st",
      "tests/fixtures/models/bert-bin",          "tests/fixtures/generated/tiny-distilbert",
      "tests/fixtures/generated/tiny-bert",      "models/splade-tiny",
      "tests/fixtures/generated/tiny-bert-v105879", "tests/fixtures/generated/tiny-roberta"};
  *optional = i >= 3;
  return dirs[i];
}

/* ---- the corpus ---- */

/* The xorshift64 generator of the corpus; the state runs on from one model's corpus to the next,
 * so two tests that make the corpora of the same models in the same order get the same ones. */
#define ECMP_RNG_SEED 0x853C49E6748FEA9Bull
static inline uint32_t ecmp_rng_u32(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return (uint32_t)(*state >> 16);
}

typedef struct {
  int n_docs, max_len;
  int *lengths;   /* (D) */
  int32_t **ids;  /* [D] (lengths[d]) each: [CLS] random ids [SEP] */
} ecmp_corpus;

/* n_docs (ECMP_N_DOCS but in test_encoder_gpu --quick) documents of random ids of m's vocabulary with ragged lengths (1, 2, 3, max_len,
 * then random up to max_len; every 5th one odd and MS MARCO-ish, 41..109 tokens), [CLS] first and
 * [SEP] last. Draws from *rng. Returns 0 and *out, or -1 when out of memory (then *out holds
 * nothing to free). The caller frees with ecmp_corpus_free(). */
static inline int ecmp_corpus_make(const model *m, int n_docs, int max_len, uint64_t *rng,
                                   ecmp_corpus *out) {
  ecmp_corpus c;
  c.n_docs = n_docs;
  c.max_len = max_len;
  c.lengths = malloc(sizeof(int) * (size_t)n_docs);
  c.ids = calloc((size_t)n_docs, sizeof(int32_t *));
  const int V = m->cfg.vocab;
  if (!c.lengths || !c.ids) goto fail;
  for (int d = 0; d < n_docs; d++) {
    int len = d < 3 ? d + 1 : d == 3 ? max_len : 1 + (int)(ecmp_rng_u32(rng) % (uint32_t)max_len);
    if (d % 5 == 4 && len > 75) len = (40 + (int)(ecmp_rng_u32(rng) % 70)) | 1;
    if (len > max_len) len = max_len;
    c.lengths[d] = len;
    c.ids[d] = malloc(sizeof(int32_t) * (size_t)len);
    if (!c.ids[d]) goto fail;
    for (int t = 0; t < len; t++) c.ids[d][t] = (int32_t)(ecmp_rng_u32(rng) % (uint32_t)V);
    c.ids[d][0] = m->cfg.cls_id < V ? m->cfg.cls_id : 1;
    if (len > 1) c.ids[d][len - 1] = m->cfg.sep_id < V ? m->cfg.sep_id : 2;
  }
  *out = c;
  return 0;
fail:
  for (int d = 0; c.ids && d < n_docs; d++) free(c.ids[d]);
  free(c.ids);
  free(c.lengths);
  memset(out, 0, sizeof *out);
  return -1;
}

static inline void ecmp_corpus_free(ecmp_corpus *c) {
  for (int d = 0; c->ids && d < c->n_docs; d++) free(c->ids[d]);
  free(c->ids);
  free(c->lengths);
  memset(c, 0, sizeof *c);
}

/* How many documents from `first` on make one batch under opt's limits (max_batch_docs,
 * max_batch_tokens), greedily: the batching of ecmp_encode_dense. At least 1 when first < n_docs
 * (each document fits: its length <= max_length <= max_batch_tokens). */
static inline int ecmp_batch_size(const ecmp_corpus *c, int first, int n_docs,
                                  const enc_options *opt) {
  int n = 0, tokens = 0;
  while (first + n < n_docs && n < opt->max_batch_docs &&
         tokens + c->lengths[first + n] <= opt->max_batch_tokens)
    tokens += c->lengths[first + n++];
  return n;
}

/* ---- encoding through encoder.h ---- */

/* Encodes the first n_docs documents of c with an encoder opened on m with opt, in batches
 * (ecmp_batch_size) into dense rows (n_docs, V), pipelined as the expand pipeline does it: batch
 * i + 1 is submitted before batch i is collected, so the CUDA encoder's two slots and its copy
 * stream are exercised. Copies enc_describe() into desc. CHECKs the rows' shape (term ids in range,
 * ascending). Returns 0 or the encoder's ERR_ code (message in err_msg()). */
static inline int ecmp_encode_dense(const model *m, const enc_options *opt, const ecmp_corpus *c,
                                    int n_docs, float *dense, /* (n_docs, V) */
                                    char *desc, size_t desc_cap) {
  encoder *e = NULL;
  int rc = enc_open(m, opt, &e);
  if (rc < 0) return rc;
  snprintf(desc, desc_cap, "%s", enc_describe(e));
  const int V = m->cfg.vocab;
  memset(dense, 0, sizeof(float) * (size_t)n_docs * V);
  int first[ENC_MAX_IN_FLIGHT], count[ENC_MAX_IN_FLIGHT], head = 0, in_flight = 0;
  int d0 = 0;
  while (d0 < n_docs || in_flight > 0) {
    if (d0 < n_docs && in_flight < ENC_MAX_IN_FLIGHT) {
      const int n = ecmp_batch_size(c, d0, n_docs, opt);
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

/* ---- the comparison: host/canary.h's rule, without pruning ---- */

typedef struct {
  float weight;
  int term;
} ecmp_term;

/* 1 when a ranks before b: larger weight, ties to the lower term id (the encoder's top-k order);
 * the tests' own statement of the order, to check canary_top_set's heap against a sort. */
static inline int ecmp_ranks_before(ecmp_term a, ecmp_term b) {
  return a.weight > b.weight || (a.weight == b.weight && a.term < b.term);
}

/* Marks the top-ECMP_TOP terms with w > 0 of row in mark (V): canary_top_set with floor 0. */
static inline int ecmp_top_set(const float *row, int V, unsigned char *mark, float *last) {
  return canary_top_set(row, V, 0.0f, mark, last);
}

typedef canary_stats ecmp_stats;

/* Compares the dense rows got (n_docs, V) with the reference rows ref (n_docs, V) by
 * canary_compare with a relative bound and tie band of tie_band and no pruning (the header
 * comment's criteria). Returns 0 and *out, or -1 when out of memory. */
static inline int ecmp_compare(const float *ref, const float *got, int n_docs, int V,
                               double tie_band, ecmp_stats *out) {
  const canary_rule rule = {tie_band, 1, 0.0f, 0};
  return canary_compare(ref, got, n_docs, V, &rule, out) < 0 ? -1 : 0;
}

#endif
