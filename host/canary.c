/* canary: one comparison rule for a device's rows against the CPU encoder's (see canary.h). */
#include "canary.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

canary_rule canary_rule_for(enc_precision p, float threshold, int top_k) {
  canary_rule r;
  r.relative = p != ENC_FP32;
  r.bound = p == ENC_FP16 ? CANARY_REL_FP16 : p == ENC_BF16 ? CANARY_REL_BF16 : CANARY_ABS_FP32;
  r.threshold = threshold;
  r.top_k = top_k;
  return r;
}

typedef struct {
  float weight;
  int term;
} canary_term;

/* 1 when a ranks before b: larger weight, ties to the lower term id (the encoders' top-k order). */
static int ranks_before(canary_term a, canary_term b) {
  return a.weight > b.weight || (a.weight == b.weight && a.term < b.term);
}

int canary_top_set(const float *row, int V, float floor, unsigned char *mark, float *last) {
  canary_term heap[CANARY_TOP]; /* the best so far; the root is the worst of them */
  int n = 0;
  for (int v = 0; v < V; v++) {
    mark[v] = 0;
    const canary_term t = {row[v], v};
    if (!(t.weight > floor)) continue;
    int i;
    if (n < CANARY_TOP) { /* sift up from the new leaf */
      for (i = n++; i > 0 && ranks_before(heap[(i - 1) / 2], t); i = (i - 1) / 2)
        heap[i] = heap[(i - 1) / 2];
      heap[i] = t;
      continue;
    }
    if (!ranks_before(t, heap[0])) continue;
    for (i = 0;;) { /* replace the root and sift down */
      int child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && ranks_before(heap[child], heap[child + 1])) child++;
      if (!ranks_before(t, heap[child])) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = t;
  }
  for (int i = 0; i < n; i++) mark[heap[i].term] = 1;
  *last = n > 0 ? heap[0].weight : floor;
  return n;
}

static int double_order(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* |x| for an error, with NaN as +infinity (so that every comparison with a bound fails). */
static double error_of(double x) { return isnan(x) ? INFINITY : fabs(x); }

int canary_compare(const float *ref, const float *got, int n_docs, int V, const canary_rule *rule,
                   canary_stats *out) {
  canary_stats s;
  memset(&s, 0, sizeof s);
  s.n_docs = n_docs;
  s.bad_doc = -1;
  s.bad_term = -1;
  unsigned char *mark_ref = malloc((size_t)V), *mark_got = malloc((size_t)V);
  double *doc_gap = malloc(sizeof(double) * (size_t)(n_docs > 0 ? n_docs : 1)); /* (D) */
  int rc = ERR_NOMEM;
  if (!mark_ref || !mark_got || !doc_gap) {
    err_set(ERR_NOMEM, "out of memory comparing %d passages", n_docs);
    goto fail;
  }
  /* The first passage that breaks the weight rule, and the first whose top set disagrees. */
  int weight_doc = -1, weight_term = -1, set_doc = -1, set_term = -1;
  double weight_err = 0, weight_bound = 0, set_err = 0, set_bound = 0;
  for (int d = 0; d < n_docs; d++) {
    const float *r = ref + (size_t)d * V, *g = got + (size_t)d * V;
    float rowmax = 0, kept_min = INFINITY;
    int kept = 0;
    for (int v = 0; v < V; v++) {
      if (r[v] > rowmax) rowmax = r[v];
      if (r[v] != 0) kept++, kept_min = r[v] < kept_min ? r[v] : kept_min;
    }
    const double band = rule->relative ? rule->bound * rowmax : rule->bound; /* absolute */
    /* Where the reference row was pruned: its top_k-th weight when it holds top_k terms, else
     * the threshold. A term kept by one row only is measured from there. */
    const double prune_cut = rule->top_k > 0 && kept >= rule->top_k ? kept_min : rule->threshold;
    double doc_err = 0;
    int doc_term = -1;
    for (int v = 0; v < V; v++) {
      const int in_ref = r[v] != 0, in_got = g[v] != 0; /* NaN counts as kept */
      double e;
      if (in_ref == in_got) e = error_of((double)g[v] - r[v]);
      else e = error_of((in_ref ? r[v] : g[v]) - prune_cut);
      if (!(e <= s.max_abs)) s.max_abs = e;
      const double rel = rowmax > 0 ? e / rowmax : e;
      if (!(rel <= s.max_rel)) s.max_rel = rel;
      if (!(e <= doc_err)) doc_err = e, doc_term = v;
    }
    if (weight_doc < 0 && !(doc_err <= band)) {
      weight_doc = d, weight_term = doc_term, weight_err = doc_err, weight_bound = band;
    }
    /* The boundary of the reference's top set: its last kept weight when a count cut it
     * (CANARY_TOP, or top_k), else the threshold (a term just above it in one row and pruned in
     * the other is a precision flip there). */
    float last, unused;
    const int n_ref = canary_top_set(r, V, rule->threshold, mark_ref, &last);
    const double set_cut =
        n_ref == CANARY_TOP || (rule->top_k > 0 && n_ref == rule->top_k) ? last : rule->threshold;
    canary_top_set(g, V, rule->threshold, mark_got, &unused);
    int strict = 1, tied = 1, worst = -1;
    double worst_gap = -1;
    doc_gap[d] = 0; /* the largest relative gap of a term in one set only */
    for (int v = 0; v < V; v++) {
      if (mark_ref[v] == mark_got[v]) continue;
      strict = 0;
      /* measured on the reference's weight; a term the reference pruned (0) on the device's */
      const double gap = error_of((r[v] != 0 ? r[v] : g[v]) - set_cut);
      if (!(gap <= band)) tied = 0;
      if (!(gap <= worst_gap)) worst_gap = gap, worst = v;
      const double rel_gap = rowmax > 0 ? gap / rowmax : gap > 0 ? INFINITY : 0;
      if (!(rel_gap <= doc_gap[d])) doc_gap[d] = rel_gap;
    }
    s.same_top_strict += strict;
    s.same_top += tied;
    if (set_doc < 0 && !tied) set_doc = d, set_term = worst, set_err = worst_gap, set_bound = band;
  }
  s.same_top_fraction = n_docs > 0 ? (double)s.same_top / n_docs : 1.0;
  s.same_top_strict_fraction = n_docs > 0 ? (double)s.same_top_strict / n_docs : 1.0;
  if (n_docs > 0) {
    qsort(doc_gap, (size_t)n_docs, sizeof(double), double_order);
    int k = 1; /* the fewest passages that make the fraction */
    while (k < n_docs && !((double)k / n_docs >= CANARY_SAME_TOP_FRACTION)) k++;
    s.band_needed = doc_gap[k - 1];
  }
  const int weights_ok = rule->relative ? s.max_rel <= rule->bound : s.max_abs <= rule->bound;
  const int sets_ok = s.same_top_fraction >= CANARY_SAME_TOP_FRACTION;
  s.ok = weights_ok && sets_ok;
  if (!weights_ok && weight_doc >= 0) {
    s.bad_doc = weight_doc, s.bad_term = weight_term, s.bad_error = weight_err;
    s.bad_bound = weight_bound, s.bad_what = "weight";
  } else if (!s.ok && set_doc >= 0) {
    s.bad_doc = set_doc, s.bad_term = set_term, s.bad_error = set_err;
    s.bad_bound = set_bound, s.bad_what = "top-64 set";
  }
  if (s.bad_doc >= 0) {
    s.bad_ref = ref[(size_t)s.bad_doc * V + s.bad_term];
    s.bad_got = got[(size_t)s.bad_doc * V + s.bad_term];
  }
  *out = s;
  rc = 0;
fail:
  free(mark_ref);
  free(mark_got);
  free(doc_gap);
  return rc;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Encodes every passage of p with e (opened with opt) into dense rows (D, V), in batches cut
 * greedily under opt's limits. Returns 0 or the encoder's error. */
static int encode_dense(encoder *e, const enc_options *opt, const canary_passages *p, int V,
                        float *dense) {
  memset(dense, 0, sizeof(float) * (size_t)p->n_docs * (size_t)V);
  for (int d0 = 0; d0 < p->n_docs;) {
    int n = 0, tokens = 0;
    while (d0 + n < p->n_docs && n < opt->max_batch_docs &&
           tokens + p->lengths[d0 + n] <= opt->max_batch_tokens)
      tokens += p->lengths[d0 + n++];
    if (n == 0)
      return err_set(ERR_ARG, "canary passage %d has %d tokens, over the batch budget %d", d0,
                     p->lengths[d0], opt->max_batch_tokens);
    enc_batch b = {n, p->ids + d0, p->lengths + d0};
    enc_result r;
    int rc = enc_run(e, &b, &r);
    if (rc < 0) return rc;
    for (int i = 0; i < n; i++)
      for (int64_t k = r.indptr[i]; k < r.indptr[i + 1]; k++)
        if (r.indices[k] >= 0 && r.indices[k] < V)
          dense[(size_t)(d0 + i) * V + r.indices[k]] = r.values[k];
    d0 += n;
  }
  return 0;
}

int canary_fault_injected(void) {
  const char *f = getenv("SPLADEX_TEST_CANARY_FAULT");
  return f && *f;
}

/* The test hook of canary.h: corrupts the device's rows got (D, V) as SPLADEX_TEST_CANARY_FAULT
 * says. Returns 0, or ERR_ARG for a value it does not understand. */
static int inject_fault(float *got, int n_docs, int V) {
  const char *f = getenv("SPLADEX_TEST_CANARY_FAULT");
  if (!f || !*f || !strcmp(f, "none")) return 0;
  char kind[16];
  int d = -1;
  if (sscanf(f, "%15[a-z]:%d", kind, &d) != 2 || d < 0 || d >= n_docs ||
      (!strcmp(kind, "swap") && d + 1 >= n_docs))
    return err_set(ERR_ARG, "SPLADEX_TEST_CANARY_FAULT '%s': expected scale|drop|nan|swap:D with "
                   "D a passage of the %d checked", f, n_docs);
  float *row = got + (size_t)d * V;
  int top = 0;
  for (int v = 1; v < V; v++)
    if (row[v] > row[top]) top = v;
  if (!strcmp(kind, "scale")) row[top] *= 1.5f;
  else if (!strcmp(kind, "drop")) row[top] = 0;
  else if (!strcmp(kind, "nan")) row[top] = NAN;
  else if (!strcmp(kind, "swap")) {
    float *next = row + V;
    for (int v = 0; v < V; v++) {
      const float t = row[v];
      row[v] = next[v], next[v] = t;
    }
  } else {
    return err_set(ERR_ARG, "SPLADEX_TEST_CANARY_FAULT '%s': unknown kind '%s'", f, kind);
  }
  fprintf(stderr, "spladex: test hook SPLADEX_TEST_CANARY_FAULT=%s corrupted the device's rows\n",
          f);
  return 0;
}

int canary_run(const model *m, encoder *device, const enc_options *device_opt,
               const canary_passages *p, canary_result *out) {
  memset(out, 0, sizeof *out);
  const int V = m->cfg.vocab, D = p->n_docs;
  float *ref = malloc(sizeof(float) * (size_t)(D > 0 ? D : 1) * (size_t)V); /* (D, V) */
  float *got = malloc(sizeof(float) * (size_t)(D > 0 ? D : 1) * (size_t)V); /* (D, V) */
  encoder *cpu = NULL;
  int rc;
  if (!ref || !got) {
    rc = err_set(ERR_NOMEM, "out of memory for the canary's %d x %d rows", D, V);
    goto fail;
  }
  snprintf(out->device, sizeof out->device, "%s", enc_describe(device));
  double t0 = now_seconds();
  if ((rc = encode_dense(device, device_opt, p, V, got)) < 0) goto fail;
  out->device_seconds = now_seconds() - t0;

  /* The oracle: the same options on the CPU in fp32, its workspace sized for the passages. */
  enc_options c = *device_opt;
  c.backend = ENC_CPU;
  c.precision = ENC_FP32;
  c.device = 0;
  long long tokens = 0;
  for (int d = 0; d < D; d++) tokens += p->lengths[d];
  if (c.max_batch_docs > D && D > 0) c.max_batch_docs = D;
  if (tokens < c.max_batch_tokens) c.max_batch_tokens = (int)tokens;
  if (c.max_batch_tokens < c.max_length) c.max_batch_tokens = c.max_length;
  t0 = now_seconds();
  if ((rc = enc_open(m, &c, &cpu)) < 0) goto fail;
  if ((rc = encode_dense(cpu, &c, p, V, ref)) < 0) goto fail;
  out->cpu_seconds = now_seconds() - t0;

  if ((rc = inject_fault(got, D, V)) < 0) goto fail;
  out->rule = canary_rule_for(device_opt->precision, device_opt->threshold, device_opt->top_k);
  rc = canary_compare(ref, got, D, V, &out->rule, &out->stats);
fail:
  enc_close(cpu);
  free(ref);
  free(got);
  return rc;
}

void canary_describe_failure(const canary_result *r, const canary_passages *p,
                             const char *const *vocab, int V, char *buf, size_t cap) {
  const canary_stats *s = &r->stats;
  if (s->ok || s->bad_doc < 0) {
    snprintf(buf, cap, "the device agrees with the CPU");
    return;
  }
  const char *term = s->bad_term >= 0 && s->bad_term < V && vocab ? vocab[s->bad_term] : "?";
  const char *name = p->names ? p->names[s->bad_doc] : "?";
  snprintf(buf, cap,
           "the device (%s) disagrees with the CPU encoder on passage '%s' (passage %d of %d), "
           "term '%s' (id %d): device weight %.9g, CPU weight %.9g; its %s error %.3g exceeds "
           "the bound %.3g (%.3g%s)%s",
           r->device, name, s->bad_doc + 1, s->n_docs, term, s->bad_term, (double)s->bad_got,
           (double)s->bad_ref, s->bad_what, s->bad_error, s->bad_bound, r->rule.bound,
           r->rule.relative ? " x the passage's largest CPU weight" : " absolute",
           !strcmp(s->bad_what, "weight") ? ""
                                          : "; the top-64 terms of the two differ beyond ties");
}
