/* test_canary: the device-vs-CPU agreement check of host/canary.h.
 *
 * Part 1, the rule on synthetic rows: identical rows agree; each fault a wrong device could
 * produce (a perturbed weight, a missing term, a NaN, two rows in the wrong order, a spurious
 * term) is caught, and the culprit names the right passage and term; pruning flips at the
 * threshold or at the top_k boundary within the bound are ties, beyond it they are errors; the
 * relative (fp16 / bf16) and absolute (fp32) bounds are applied as documented.
 * Part 2, canary_run end to end on a committed fixture model, the CPU encoder against itself:
 * agreement without a fault, and each SPLADEX_TEST_CANARY_FAULT kind caught with the passage and
 * term the hook corrupted, in the message that expand prints.
 * Legend: D passages, V vocabulary.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canary.h"
#include "check.h"
#include "encoder.h"
#include "err.h"
#include "jobfile.h"
#include "model.h"

enum { D = 8, V = 300 };

/* Reference rows (D, V): passage d has terms at ids d + 7k with weights 2.0 - 0.01k (k < 100:
 * more than CANARY_TOP, so the top set is cut by its count). */
static void make_rows(float *ref) {
  memset(ref, 0, sizeof(float) * D * V);
  for (int d = 0; d < D; d++)
    for (int k = 0; k < 40; k++) ref[d * V + d + 7 * k] = 2.0f - 0.01f * (float)k;
}

static canary_stats compare(const float *ref, const float *got, canary_rule rule) {
  canary_stats s;
  CHECK(canary_compare(ref, got, D, V, &rule, &s) == 0);
  return s;
}

static void test_rule(void) {
  static float ref[D * V], got[D * V];
  const canary_rule fp16 = canary_rule_for(ENC_FP16, 0.0f, 0);
  const canary_rule fp32 = canary_rule_for(ENC_FP32, 0.0f, 0);
  CHECK(fp16.relative && fp16.bound == CANARY_REL_FP16);
  CHECK(!fp32.relative && fp32.bound == CANARY_ABS_FP32);
  CHECK(canary_rule_for(ENC_BF16, 0.0f, 0).bound == CANARY_REL_BF16);

  make_rows(ref);
  memcpy(got, ref, sizeof got);
  canary_stats s = compare(ref, got, fp16);
  CHECK(s.ok && s.bad_doc == -1 && s.max_abs == 0 && s.same_top_strict == D);

  /* within the bound: every weight off by 0.4 x bound x the largest weight (2.0) */
  for (int i = 0; i < D * V; i++)
    if (ref[i] != 0) got[i] = ref[i] + 0.4f * (float)CANARY_REL_FP16 * 2.0f;
  s = compare(ref, got, fp16);
  CHECK(s.ok);
  CHECK(!compare(ref, got, fp32).ok); /* 4e-3 absolute is beyond fp32's 1e-4 */

  /* a perturbed weight: passage 5, term 5 + 7*3 */
  memcpy(got, ref, sizeof got);
  got[5 * V + 26] *= 1.05f;
  s = compare(ref, got, fp16);
  CHECK(!s.ok && s.bad_doc == 5 && s.bad_term == 26 && !strcmp(s.bad_what, "weight"));
  CHECK(s.bad_ref == ref[5 * V + 26] && s.bad_got == got[5 * V + 26]);
  CHECK_NEAR(s.bad_bound, CANARY_REL_FP16 * 2.0, 1e-9);

  /* a missing term: passage 2's largest */
  memcpy(got, ref, sizeof got);
  got[2 * V + 2] = 0;
  s = compare(ref, got, fp16);
  CHECK(!s.ok && s.bad_doc == 2 && s.bad_term == 2 && s.bad_got == 0);

  /* a NaN: passage 7, term 7 + 7*10 */
  memcpy(got, ref, sizeof got);
  got[7 * V + 77] = NAN;
  s = compare(ref, got, fp16);
  CHECK(!s.ok && s.bad_doc == 7 && s.bad_term == 77 && isinf(s.max_abs));

  /* a NaN where the reference has nothing */
  memcpy(got, ref, sizeof got);
  got[1 * V + 0] = NAN;
  s = compare(ref, got, fp32);
  CHECK(!s.ok && s.bad_doc == 1 && s.bad_term == 0);

  /* two rows in the wrong order: passages 3 and 4 exchanged; the first one is named, with its
   * largest term (ref 3's id 3, weight 2.0, is 0 in the device's row 3) */
  memcpy(got, ref, sizeof got);
  memcpy(got + 3 * V, ref + 4 * V, sizeof(float) * V);
  memcpy(got + 4 * V, ref + 3 * V, sizeof(float) * V);
  s = compare(ref, got, fp16);
  CHECK(!s.ok && s.bad_doc == 3 && (s.bad_term == 3 || s.bad_term == 4));

  /* a spurious term, large, where the reference has none */
  memcpy(got, ref, sizeof got);
  got[6 * V + 299] = 1.0f;
  s = compare(ref, got, fp16);
  CHECK(!s.ok && s.bad_doc == 6 && s.bad_term == 299 && s.bad_ref == 0);

  /* pruning: threshold 0.5 on both rows; a term at 0.5 + 0.001 kept by the CPU only is a tie
   * at the threshold (fp16: band 5e-3 x 2.0 = 0.01), one at 0.5 + 0.1 is not */
  const canary_rule thr = canary_rule_for(ENC_FP16, 0.5f, 0);
  memcpy(got, ref, sizeof got);
  ref[0 * V + 298] = 0.501f;
  s = compare(ref, got, thr);
  CHECK(s.ok);
  ref[0 * V + 298] = 0.6f;
  s = compare(ref, got, thr);
  CHECK(!s.ok && s.bad_doc == 0 && s.bad_term == 298);
  make_rows(ref);

  /* top_k 10: both keep 10 terms; the device swapped the 10th for the 11th, whose weights differ
   * by 0.01 (beyond fp16's 0.01 band? 2.0 - 0.09 vs 2.0 - 0.10: exactly 0.01, float rounding
   * decides) -> make the gap clear: 0.004 (a tie) and 0.1 (an error) */
  const canary_rule topk = canary_rule_for(ENC_FP16, 0.0f, 10);
  static float rk[D * V], gk[D * V];
  memset(rk, 0, sizeof rk);
  for (int d = 0; d < D; d++)
    for (int k = 0; k < 10; k++) rk[d * V + 10 * k] = 2.0f - 0.1f * (float)k; /* 10th: 1.1 */
  memcpy(gk, rk, sizeof gk);
  gk[4 * V + 90] = 0, gk[4 * V + 95] = 1.096f; /* a term at 1.096 kept instead of 1.1 */
  s = compare(rk, gk, topk);
  CHECK(s.ok);
  CHECK(s.same_top_strict == D - 1 && s.same_top == D);
  gk[4 * V + 95] = 1.0f; /* 0.1 below the boundary: not a tie */
  s = compare(rk, gk, topk);
  CHECK(!s.ok && s.bad_doc == 4 && (s.bad_term == 95 || s.bad_term == 90));

  /* the top-set rule alone: a swap at rank 64 outside the band in 1 passage of 8 (12.5% > 1%) */
  static float rt[D * V], gt[D * V];
  memset(rt, 0, sizeof rt);
  for (int d = 0; d < D; d++)
    for (int k = 0; k < 100; k++) rt[d * V + k] = 10.0f - 0.001f * (float)k;
  memcpy(gt, rt, sizeof gt);
  /* passage 6: term 63 (rank 64) and term 64 (rank 65) exchange places, each moved by 0.002:
   * weights within the relative bf16 bound (0.4) but ranks 64/65 swapped; the tie band is
   * the bound too (0.4 x 10), so this is a tie under bf16 ... */
  gt[6 * V + 63] = rt[6 * V + 64] - 0.0005f;
  gt[6 * V + 64] = rt[6 * V + 63] + 0.0005f;
  s = compare(rt, gt, canary_rule_for(ENC_BF16, 0.0f, 0));
  CHECK(s.ok && s.same_top_strict == D - 1);
  /* ... and under fp32's 1e-4 absolute band it is neither a tie nor a small weight error */
  s = compare(rt, gt, fp32);
  CHECK(!s.ok && s.bad_doc == 6);
}

/* ---- canary_run on a real (fixture) model ---- */

enum { N = 6 };
static int32_t canary_ids[N][40];   /* (N, up to 40) random ids, [CLS] ... [SEP] */
static const int32_t *canary_rows[N];
static int canary_lengths[N];

static int run_canary(const model *m, const char *fault, canary_result *r, char *msg, size_t cap) {
  if (fault) setenv("SPLADEX_TEST_CANARY_FAULT", fault, 1);
  else unsetenv("SPLADEX_TEST_CANARY_FAULT");
  static const char *names[N] = {"doc-a", "doc-b", "doc-c", "doc-d", "doc-e", "doc-f"};
  uint32_t x = 12345;
  for (int d = 0; d < N; d++) {
    canary_lengths[d] = 5 + 6 * d;
    for (int t = 0; t < canary_lengths[d]; t++) {
      x = x * 1664525u + 1013904223u;
      canary_ids[d][t] = (int32_t)(5 + (x >> 8) % (uint32_t)(m->cfg.vocab - 5));
    }
    canary_ids[d][0] = m->cfg.cls_id, canary_ids[d][canary_lengths[d] - 1] = m->cfg.sep_id;
    canary_rows[d] = canary_ids[d];
  }
  enc_options o = enc_options_default();
  o.max_length = 64;
  o.max_batch_tokens = 64; /* several batches */
  o.threads = 1;
  encoder *e = NULL;
  int rc = enc_open(m, &o, &e);
  CHECK(rc == 0);
  if (rc < 0) return rc;
  canary_passages p = {N, canary_rows, canary_lengths, names};
  rc = canary_run(m, e, &o, &p, r);
  enc_close(e);
  unsetenv("SPLADEX_TEST_CANARY_FAULT");
  if (rc == 0) {
    const char *vocab[1000];
    static char terms[1000][16];
    for (int v = 0; v < m->cfg.vocab && v < 1000; v++) {
      snprintf(terms[v], sizeof terms[v], "t%d", v);
      vocab[v] = terms[v];
    }
    canary_describe_failure(r, &p, vocab, m->cfg.vocab, msg, cap);
  }
  return rc;
}

static void test_run(void) {
  model *m = NULL;
  if (model_load("tests/fixtures/models/distilbert-st", &m) < 0) {
    fprintf(stderr, "test_canary: %s\n", err_msg());
    CHECK(!"model_load");
    return;
  }
  CHECK(m->cfg.vocab <= 1000);
  canary_result r;
  char msg[2048];
  CHECK(run_canary(m, NULL, &r, msg, sizeof msg) == 0);
  CHECK(r.stats.ok && r.stats.max_abs == 0 && r.stats.n_docs == 6);
  printf("no fault: %s; max abs %g; cpu %.3f s\n", msg, r.stats.max_abs, r.cpu_seconds);

  /* what each fault must name: the largest term of the corrupted passage (from a clean run, the
   * device's rows are the CPU's rows here) */
  const char *faults[] = {"scale:2", "drop:4", "nan:0", "swap:1"};
  const int docs[] = {2, 4, 0, 1};
  for (int i = 0; i < 4; i++) {
    CHECK(run_canary(m, faults[i], &r, msg, sizeof msg) == 0);
    printf("%-8s %s\n", faults[i], msg);
    CHECK(!r.stats.ok);
    CHECK(r.stats.bad_doc == docs[i]);
    char want[64];
    snprintf(want, sizeof want, "'%s' (passage %d of 6)",
             (const char *[]){"doc-a", "doc-b", "doc-c", "doc-d", "doc-e", "doc-f"}[docs[i]],
             docs[i] + 1);
    CHECK(strstr(msg, want) != NULL);
    snprintf(want, sizeof want, "term 't%d' (id %d)", r.stats.bad_term, r.stats.bad_term);
    CHECK(strstr(msg, want) != NULL);
    CHECK(strstr(msg, "exceeds the bound 0.0001 (0.0001 absolute)") != NULL);
  }
  /* scale, drop and nan hit the passage's largest term: the culprit is that very term (found
   * here from the CPU's own row of the passage, encoded alone) */
  enc_options o = enc_options_default();
  o.max_length = 64;
  o.threads = 1;
  encoder *e = NULL;
  CHECK(enc_open(m, &o, &e) == 0);
  for (int i = 0; e && i < 3; i++) {
    const int d = docs[i];
    enc_batch b = {1, &canary_rows[d], &canary_lengths[d]};
    enc_result res;
    CHECK(enc_run(e, &b, &res) == 0);
    int top = -1;
    float best = -1;
    for (int64_t k = res.indptr[0]; k < res.indptr[1]; k++)
      if (res.values[k] > best) best = res.values[k], top = res.indices[k];
    CHECK(run_canary(m, faults[i], &r, msg, sizeof msg) == 0);
    CHECK(r.stats.bad_term == top);
  }
  enc_close(e);
  /* a bad hook value is an error, not a silent pass */
  CHECK(run_canary(m, "bogus:1", &r, msg, sizeof msg) == ERR_ARG);
  CHECK(run_canary(m, "scale:99", &r, msg, sizeof msg) == ERR_ARG);
  model_free(m);
}

/* job.json keeps the canary's record (a result: never compared) */
static void test_jobfile(void) {
  char dir[] = "/tmp/test_canary_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  job_params p, q;
  job_params_init(&p);
  CHECK(p.canary.passages == -1);
  snprintf(p.version, sizeof p.version, "x");
  snprintf(p.format, sizeof p.format, "tsv");
  snprintf(p.precision, sizeof p.precision, "fp16");
  p.max_length = 256, p.shard_size = 10;
  CHECK(job_write(dir, &p) == 0);
  CHECK(job_read(dir, &q) == 0);
  CHECK(q.canary.passages == -1);
  p.canary.passages = 16;
  snprintf(p.canary.device, sizeof p.canary.device, "cuda:0 Some GPU fp16");
  p.canary.max_error = 1.25e-3, p.canary.relative = 1, p.canary.bound = 5e-3;
  p.canary.top_agreement = 1.0;
  CHECK(job_write(dir, &p) == 0);
  CHECK(job_read(dir, &q) == 0);
  CHECK(q.canary.passages == 16 && q.canary.relative == 1);
  CHECK(!strcmp(q.canary.device, "cuda:0 Some GPU fp16"));
  CHECK(q.canary.max_error == 1.25e-3 && q.canary.bound == 5e-3 && q.canary.top_agreement == 1.0);
  job_params none = p;
  none.canary.passages = -1;
  CHECK(job_compare(&q, &none, NULL) == 0);
  char path[256];
  snprintf(path, sizeof path, "%s/job.json", dir);
  remove(path);
  rmdir(dir);
}

int main(void) {
  test_jobfile();
  test_rule();
  test_run();
  return check_report("test_canary");
}
