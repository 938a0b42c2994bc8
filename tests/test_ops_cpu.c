/* test_ops_cpu: every op of ops_cpu.c against a naive double-precision loop written here, with
 * the corners that matter (T = 1 documents, blocks that start and end inside a document, top-k
 * ties broken by lower term id, threshold cuts, top_k larger than the row), then the whole CPU
 * encoder on a small random model against a naive forward pass (1 and 3 threads, several
 * batchings), and the encoder API's argument checks.
 * Legend: N tokens, B docs, H hidden, F ffn, V vocab, D head dim. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "encoder.h"
#include "err.h"
#include "model.h"
#include "ops_cpu.h"

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { /* xorshift64, uniform in [0, 1) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}
static void fill_random(float *x, size_t n, double scale, double offset) {
  for (size_t i = 0; i < n; i++) x[i] = (float)(offset + scale * (2.0 * urand() - 1.0));
}
static double max_abs_diff(const float *a, const double *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
  return m;
}

static void naive_layernorm(double *x, const float *g, const float *b, double eps, int H) {
  double mean = 0, var = 0;
  for (int i = 0; i < H; i++) mean += x[i];
  mean /= H;
  for (int i = 0; i < H; i++) var += (x[i] - mean) * (x[i] - mean);
  var /= H;
  for (int i = 0; i < H; i++) x[i] = (x[i] - mean) / sqrt(var + eps) * g[i] + b[i];
}
static double naive_gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* ---- elementwise and matmul ops ---- */

static void test_embed_linear_gelu_layernorm(void) {
  enum { N = 7, H = 12, V = 50, P = 9, F = 20, LDY = 23 };
  float word[V * H], pos[P * H], type[H], g[H], b[H], out[N * H];
  int32_t ids[N] = {0, 49, 3, 3, 17, 101 % V, 8};
  int positions[N] = {0, 1, 2, 0, 0, 1, 8};
  fill_random(word, V * H, 1, 0);
  fill_random(pos, P * H, 1, 0);
  fill_random(type, H, 1, 0);
  fill_random(g, H, 0.3, 1);
  fill_random(b, H, 0.3, 0);
  for (int with_type = 0; with_type < 2; with_type++) {
    ops_embed_layernorm(ids, positions, N, word, pos, with_type ? type : NULL, g, b, 1e-5f, H, out);
    double ref[N * H];
    for (int t = 0; t < N; t++) {
      for (int i = 0; i < H; i++)
        ref[t * H + i] = (double)word[ids[t] * H + i] + pos[positions[t] * H + i] + (with_type ? type[i] : 0);
      naive_layernorm(ref + t * H, g, b, 1e-5, H);
    }
    CHECK(max_abs_diff(out, ref, N * H) < 1e-5);
  }

  /* ops_linear with and without bias, into a wider buffer (ldy > out_features). */
  float x[N * H], w[F * H], bias[F], y[N * LDY];
  fill_random(x, N * H, 1, 0);
  fill_random(w, F * H, 1, 0);
  fill_random(bias, F, 1, 0);
  for (int with_bias = 0; with_bias < 2; with_bias++) {
    for (int i = 0; i < N * LDY; i++) y[i] = 1234.0f; /* sentinel: columns >= F untouched */
    ops_linear(x, w, with_bias ? bias : NULL, N, H, F, y, LDY);
    double worst = 0;
    int untouched = 1;
    for (int t = 0; t < N; t++) {
      for (int o = 0; o < F; o++) {
        double s = with_bias ? bias[o] : 0;
        for (int i = 0; i < H; i++) s += (double)x[t * H + i] * w[o * H + i];
        worst = fmax(worst, fabs(y[t * LDY + o] - s));
      }
      for (int o = F; o < LDY; o++) untouched &= y[t * LDY + o] == 1234.0f;
    }
    CHECK(worst < 1e-4);
    CHECK(untouched);
  }

  /* ops_bias_gelu, including large |v| and 0. */
  float act[N * F];
  fill_random(act, N * F, 6, 0);
  act[0] = 0.0f;
  act[1] = -30.0f;
  act[2] = 30.0f;
  double ref_act[N * F];
  for (int t = 0; t < N; t++)
    for (int j = 0; j < F; j++) ref_act[t * F + j] = naive_gelu((double)act[t * F + j] + bias[j]);
  ops_bias_gelu(act, bias, N, F);
  CHECK(max_abs_diff(act, ref_act, N * F) < 1e-5);
  float act2[3] = {-1.0f, 0.5f, 2.0f};
  ops_bias_gelu(act2, NULL, 1, 3);
  CHECK_NEAR(act2[0], naive_gelu(-1.0), 1e-6);
  CHECK_NEAR(act2[2], naive_gelu(2.0), 1e-6);

  /* ops_residual_layernorm: bias/residual optional; out aliasing the residual (the encoder's use). */
  float r[N * H], xr[N * H];
  fill_random(r, N * H, 1, 0);
  fill_random(xr, N * H, 1, 0);
  for (int mode = 0; mode < 4; mode++) {
    const float *bb = mode & 1 ? b : NULL;
    int use_res = mode & 2;
    double ref_ln[N * H];
    for (int t = 0; t < N; t++) {
      for (int i = 0; i < H; i++)
        ref_ln[t * H + i] = (double)xr[t * H + i] + (bb ? bb[i] : 0) + (use_res ? r[t * H + i] : 0);
      naive_layernorm(ref_ln + t * H, g, b, 1e-12, H);
    }
    float res_copy[N * H];
    memcpy(res_copy, r, sizeof r);
    ops_residual_layernorm(xr, bb, use_res ? res_copy : NULL, g, b, 1e-12f, N, H,
                           use_res ? res_copy : out);
    CHECK(max_abs_diff(use_res ? res_copy : out, ref_ln, N * H) < 1e-5);
  }
  /* A constant row: variance 0, eps keeps it finite (output = beta). */
  float flat[H], flat_out[H];
  for (int i = 0; i < H; i++) flat[i] = 3.0f;
  ops_residual_layernorm(flat, NULL, NULL, g, b, 1e-12f, 1, H, flat_out);
  for (int i = 0; i < H; i++) CHECK_NEAR(flat_out[i], b[i], 1e-6);
}

/* ---- attention ---- */

static void naive_attention(const float *qkv, const int *offsets, int n_docs, int NH, int D,
                            double *out) {
  int H = NH * D;
  for (int d = 0; d < n_docs; d++) {
    int s = offsets[d], T = offsets[d + 1] - s;
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        double sc[64], mx = -1e300, sum = 0;
        for (int j = 0; j < T; j++) {
          double dot = 0;
          for (int c = 0; c < D; c++)
            dot += (double)qkv[(s + i) * 3 * H + h * D + c] * qkv[(s + j) * 3 * H + H + h * D + c];
          sc[j] = dot / sqrt((double)D);
          mx = fmax(mx, sc[j]);
        }
        for (int j = 0; j < T; j++) sum += sc[j] = exp(sc[j] - mx);
        for (int c = 0; c < D; c++) {
          double o = 0;
          for (int j = 0; j < T; j++) o += sc[j] / sum * qkv[(s + j) * 3 * H + 2 * H + h * D + c];
          out[(s + i) * H + h * D + c] = o;
        }
      }
  }
}

static void test_attention(void) {
  enum { NH = 3, D = 4, H = NH * D };
  int lengths[] = {1, 2, 5, 17, 1, 9};
  enum { B = 6 };
  int offsets[B + 1] = {0};
  for (int b = 0; b < B; b++) offsets[b + 1] = offsets[b] + lengths[b];
  int N = offsets[B];
  float *qkv = malloc(sizeof(float) * N * 3 * H), *out = malloc(sizeof(float) * N * H);
  double *ref = malloc(sizeof(double) * N * H);
  float *scratch = malloc(sizeof(float) * ops_attention_scratch_floats(17, D));
  fill_random(qkv, (size_t)N * 3 * H, 2, 0);
  naive_attention(qkv, offsets, B, NH, D, ref);
  ops_fill(out, (size_t)N * H, NAN);
  ops_attention(qkv, offsets, B, NH, D, scratch, out);
  CHECK(max_abs_diff(out, ref, (size_t)N * H) < 1e-5);
  /* A T = 1 document attends only to itself: its output is its own V. */
  for (int c = 0; c < H; c++) CHECK_NEAR(out[c], qkv[2 * H + c], 1e-6);
  /* Sub-ranges with absolute offsets (how threads call it) give the same result. */
  ops_fill(out, (size_t)N * H, NAN);
  ops_attention(qkv, offsets, 2, NH, D, scratch, out);
  ops_attention(qkv, offsets + 2, 3, NH, D, scratch, out);
  ops_attention(qkv, offsets + 5, 1, NH, D, scratch, out);
  CHECK(max_abs_diff(out, ref, (size_t)N * H) < 1e-5);
  free(qkv);
  free(out);
  free(ref);
  free(scratch);
}

/* ---- max-pool over logit blocks ---- */

static void test_maxpool(void) {
  enum { V = 37, B = 5 };
  int lengths[B] = {1, 4, 2, 7, 1};
  int offsets[B + 1] = {0};
  for (int b = 0; b < B; b++) offsets[b + 1] = offsets[b] + lengths[b];
  int N = offsets[B];
  float *logits = malloc(sizeof(float) * N * V);
  fill_random(logits, (size_t)N * V, 3, 0);
  float ref[B * V];
  for (int b = 0; b < B; b++)
    for (int v = 0; v < V; v++) {
      float m = -INFINITY;
      for (int t = offsets[b]; t < offsets[b + 1]; t++) m = fmaxf(m, logits[t * V + v]);
      ref[b * V + v] = m;
    }
  /* Every (token block, vocab block) tiling, including blocks cutting documents in two. */
  int tbs[] = {1, 2, 3, 4, 15, 100}, vbs[] = {1, 5, 16, 37};
  for (size_t ti = 0; ti < sizeof tbs / sizeof *tbs; ti++)
    for (size_t vi = 0; vi < sizeof vbs / sizeof *vbs; vi++) {
      int tb = tbs[ti], vbk = vbs[vi];
      float pooled[B * V], block[100 * 37];
      ops_fill(pooled, B * V, -INFINITY);
      for (int t0 = 0; t0 < N; t0 += tb) {
        int rows = N - t0 < tb ? N - t0 : tb;
        for (int v0 = 0; v0 < V; v0 += vbk) {
          int vb = V - v0 < vbk ? V - v0 : vbk;
          for (int r = 0; r < rows; r++)
            for (int j = 0; j < vb; j++) block[r * 37 + j] = logits[(t0 + r) * V + v0 + j];
          ops_maxpool_logits(block, 37, t0, rows, v0, vb, offsets, B, pooled, V);
        }
      }
      int same = 1;
      for (int i = 0; i < B * V; i++) same &= pooled[i] == ref[i];
      CHECK(same);
    }
  free(logits);
}

/* ---- pruning ---- */

/* Naive: w = log1p(relu(m + bias)); keep w > threshold; top_k by (w desc, id asc). */
static int naive_prune(const float *maxlog, const float *bias, int V, float threshold, int top_k,
                       float *w) {
  int kept = 0;
  for (int v = 0; v < V; v++) {
    float x = maxlog[v] + bias[v];
    w[v] = x > 0 ? log1pf(x) : 0.0f;
    if (!(w[v] > threshold)) w[v] = 0.0f;
    kept += w[v] > 0;
  }
  while (top_k > 0 && kept > top_k) { /* drop the smallest, highest id first */
    int worst = -1;
    for (int v = 0; v < V; v++)
      if (w[v] > 0 && (worst < 0 || w[v] <= w[worst])) worst = v;
    w[worst] = 0.0f;
    kept--;
  }
  return kept;
}

static void check_prune_case(const float *maxlog, const float *bias, int B, int V, float threshold,
                             int top_k) {
  float *pooled = malloc(sizeof(float) * B * V), *scratch = malloc(sizeof(float) * V);
  float *w = malloc(sizeof(float) * V);
  int32_t *row_nnz = malloc(sizeof(int32_t) * B), *indices = malloc(sizeof(int32_t) * B * V);
  int64_t *indptr = malloc(sizeof(int64_t) * (B + 1));
  float *values = malloc(sizeof(float) * B * V);
  memcpy(pooled, maxlog, sizeof(float) * B * V);
  ops_sparsify_weights(pooled, bias, B, V, threshold, top_k, row_nnz, scratch);
  indptr[0] = 0;
  for (int b = 0; b < B; b++) indptr[b + 1] = indptr[b] + row_nnz[b];
  ops_sparsify_gather(pooled, B, V, threshold, indptr, indices, values);
  int ok = 1;
  for (int b = 0; b < B; b++) {
    int kept = naive_prune(maxlog + (size_t)b * V, bias, V, threshold, top_k, w);
    ok &= row_nnz[b] == kept;
    int64_t k = indptr[b];
    for (int v = 0; v < V; v++) {
      if (w[v] == 0) continue;
      ok &= k < indptr[b + 1] && indices[k] == v && values[k] == w[v];
      k++;
    }
    ok &= k == indptr[b + 1];
    for (int64_t j = indptr[b] + 1; j < indptr[b + 1]; j++) ok &= indices[j - 1] < indices[j];
  }
  if (!ok) fprintf(stderr, "prune case B=%d V=%d threshold=%g top_k=%d\n", B, V, threshold, top_k);
  CHECK(ok);
  free(pooled);
  free(scratch);
  free(w);
  free(row_nnz);
  free(indices);
  free(indptr);
  free(values);
}

static void test_sparsify(void) {
  enum { V = 200, B = 4 };
  float maxlog[B * V], bias[V];
  fill_random(maxlog, B * V, 2, 0);
  fill_random(bias, V, 0.5, 0);
  /* Row 1 has many exact ties (quantized values), row 2 is all negative (empty row),
   * row 3 has every term tied. */
  for (int v = 0; v < V; v++) maxlog[V + v] = (float)(v % 7) * 0.25f - bias[v] + 0.0f;
  for (int v = 0; v < V; v++) maxlog[2 * V + v] = -5.0f - bias[v] - 1.0f;
  for (int v = 0; v < V; v++) maxlog[3 * V + v] = 1.0f - bias[v];
  /* Rows 1 and 3 were built as (value - bias): recompute so m + bias is the exact value. */
  float zero_bias[V];
  memset(zero_bias, 0, sizeof zero_bias);
  for (int v = 0; v < V; v++) {
    maxlog[V + v] = (float)(v % 7) * 0.25f;
    maxlog[3 * V + v] = 1.0f;
  }
  float thresholds[] = {0.0f, 0.3f, 0.5f, 100.0f};
  int top_ks[] = {0, 1, 2, 3, 10, 29, 57, 199, 200, 5000};
  for (size_t ti = 0; ti < sizeof thresholds / sizeof *thresholds; ti++)
    for (size_t ki = 0; ki < sizeof top_ks / sizeof *top_ks; ki++) {
      check_prune_case(maxlog, bias, B, V, thresholds[ti], top_ks[ki]);
      check_prune_case(maxlog, zero_bias, B, V, thresholds[ti], top_ks[ki]);
    }
  /* The documented tie rule on a hand-made row: weights log1p(1) at ids 3, 5, 9; top_k 2 keeps
   * 3 and 5. */
  float row[12], zb[12] = {0}, scratch[12];
  int32_t nnz;
  for (int v = 0; v < 12; v++) row[v] = -1.0f;
  row[3] = row[5] = row[9] = 1.0f;
  row[7] = 0.5f;
  ops_sparsify_weights(row, zb, 1, 12, 0.0f, 2, &nnz, scratch);
  CHECK(nnz == 2);
  CHECK(row[3] > 0 && row[5] > 0 && row[9] == 0 && row[7] == 0);
  /* threshold is strict: w == threshold is dropped. */
  for (int v = 0; v < 12; v++) row[v] = -1.0f;
  row[4] = 1.0f;
  ops_sparsify_weights(row, zb, 1, 12, log1pf(1.0f), 0, &nnz, scratch);
  CHECK(nnz == 0);
}

/* ---- the whole CPU encoder against a naive forward pass ---- */

typedef struct {
  model m;
  model_layer layers[2];
} small_model;

static float *take(float **p, size_t n) {
  float *r = *p;
  *p += n;
  return r;
}

static void make_small_model(small_model *s, model_arch arch) {
  enum { L = 2, H = 8, NH = 2, F = 12, V = 40, P = 16 };
  memset(s, 0, sizeof *s);
  model *m = &s->m;
  m->cfg.arch = arch;
  m->cfg.n_layers = L;
  m->cfg.hidden = H;
  m->cfg.n_heads = NH;
  m->cfg.ffn = F;
  m->cfg.vocab = V;
  m->cfg.max_positions = P;
  m->cfg.type_vocab = arch == MODEL_BERT ? 2 : 0;
  m->cfg.ln_eps = arch == MODEL_BERT ? 1e-5f : 1e-12f;
  m->cfg.cls_id = 1;
  m->cfg.sep_id = 2;
  size_t total = (size_t)V * H * 2 + P * H + 2 * H + 2 * H + (H * H + 3 * H) + V +
                 L * (4 * H * H + 4 * H + 2 * H + 2 * F * H + F + H + 2 * H);
  m->arena = malloc(sizeof(float) * total);
  m->arena_floats = total;
  float *p = m->arena;
  m->word_emb = take(&p, (size_t)V * H);
  m->pos_emb = take(&p, (size_t)P * H);
  m->type_emb = arch == MODEL_BERT ? take(&p, 2 * H) : NULL;
  m->emb_ln_g = take(&p, H);
  m->emb_ln_b = take(&p, H);
  m->layers = s->layers;
  for (int l = 0; l < L; l++) {
    model_layer *y = &s->layers[l];
    y->q_w = take(&p, H * H), y->q_b = take(&p, H), y->k_w = take(&p, H * H), y->k_b = take(&p, H);
    y->v_w = take(&p, H * H), y->v_b = take(&p, H), y->o_w = take(&p, H * H), y->o_b = take(&p, H);
    y->attn_ln_g = take(&p, H), y->attn_ln_b = take(&p, H);
    y->ffn1_w = take(&p, F * H), y->ffn1_b = take(&p, F), y->ffn2_w = take(&p, H * F);
    y->ffn2_b = take(&p, H), y->out_ln_g = take(&p, H), y->out_ln_b = take(&p, H);
  }
  m->head_w = take(&p, H * H);
  m->head_b = take(&p, H);
  m->head_ln_g = take(&p, H);
  m->head_ln_b = take(&p, H);
  m->decoder_b = take(&p, V);
  m->decoder_w = arch == MODEL_BERT ? take(&p, (size_t)V * H) : m->word_emb;
  m->decoder_tied = arch != MODEL_BERT;
  SPX_ASSERT((size_t)(p - m->arena) <= total);
  fill_random(m->arena, (size_t)(p - m->arena), 0.5, 0);
  /* LayerNorm gammas near 1. */
  float *gammas[] = {m->emb_ln_g, m->head_ln_g, s->layers[0].attn_ln_g, s->layers[0].out_ln_g,
                     s->layers[1].attn_ln_g, s->layers[1].out_ln_g};
  for (size_t i = 0; i < sizeof gammas / sizeof *gammas; i++) fill_random(gammas[i], H, 0.2, 1);
}

/* The SPLADE vector of one document, naively, in double: (V) */
static void naive_forward(const model *m, const int32_t *ids, int T, double *wout) {
  const model_config *c = &m->cfg;
  int H = c->hidden, F = c->ffn, V = c->vocab, NH = c->n_heads, D = H / NH;
  double *x = calloc((size_t)T * H, sizeof *x), *tmp = calloc((size_t)T * H, sizeof *tmp);
  double *q = calloc((size_t)T * H, sizeof *q), *k = calloc((size_t)T * H, sizeof *k);
  double *v = calloc((size_t)T * H, sizeof *v), *f = calloc((size_t)T * F, sizeof *f);
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < H; i++)
      x[t * H + i] = (double)m->word_emb[ids[t] * H + i] + m->pos_emb[t * H + i] +
                     (m->type_emb ? m->type_emb[i] : 0);
    naive_layernorm(x + t * H, m->emb_ln_g, m->emb_ln_b, c->ln_eps, H);
  }
#define LIN(out, in, W, Bv, O, I)                                                   \
  for (int t = 0; t < T; t++)                                                       \
    for (int o = 0; o < (O); o++) {                                                 \
      double s_ = (Bv) ? (Bv)[o] : 0;                                               \
      for (int i = 0; i < (I); i++) s_ += (in)[t * (I) + i] * (double)(W)[o * (I) + i]; \
      (out)[t * (O) + o] = s_;                                                      \
    }
  for (int l = 0; l < c->n_layers; l++) {
    const model_layer *y = &m->layers[l];
    LIN(q, x, y->q_w, y->q_b, H, H);
    LIN(k, x, y->k_w, y->k_b, H, H);
    LIN(v, x, y->v_w, y->v_b, H, H);
    double *ctx = f; /* (T, H) fits in (T, F) since F >= H */
    for (int h = 0; h < NH; h++)
      for (int i = 0; i < T; i++) {
        double sc[64], mx = -1e300, sum = 0;
        for (int j = 0; j < T; j++) {
          double d = 0;
          for (int cc = 0; cc < D; cc++) d += q[i * H + h * D + cc] * k[j * H + h * D + cc];
          sc[j] = d / sqrt((double)D);
          mx = fmax(mx, sc[j]);
        }
        for (int j = 0; j < T; j++) sum += sc[j] = exp(sc[j] - mx);
        for (int cc = 0; cc < D; cc++) {
          double o = 0;
          for (int j = 0; j < T; j++) o += sc[j] / sum * v[j * H + h * D + cc];
          ctx[i * H + h * D + cc] = o;
        }
      }
    LIN(tmp, ctx, y->o_w, y->o_b, H, H);
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < H; i++) x[t * H + i] += tmp[t * H + i];
      naive_layernorm(x + t * H, y->attn_ln_g, y->attn_ln_b, c->ln_eps, H);
    }
    LIN(f, x, y->ffn1_w, y->ffn1_b, F, H);
    for (int i = 0; i < T * F; i++) f[i] = naive_gelu(f[i]);
    LIN(tmp, f, y->ffn2_w, y->ffn2_b, H, F);
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < H; i++) x[t * H + i] += tmp[t * H + i];
      naive_layernorm(x + t * H, y->out_ln_g, y->out_ln_b, c->ln_eps, H);
    }
  }
  LIN(tmp, x, m->head_w, m->head_b, H, H);
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < H; i++) tmp[t * H + i] = naive_gelu(tmp[t * H + i]);
    naive_layernorm(tmp + t * H, m->head_ln_g, m->head_ln_b, c->ln_eps, H);
  }
  for (int vv = 0; vv < V; vv++) {
    double best = 0;
    for (int t = 0; t < T; t++) {
      double s = m->decoder_b[vv];
      for (int i = 0; i < H; i++) s += tmp[t * H + i] * m->decoder_w[vv * H + i];
      best = fmax(best, log1p(fmax(s, 0.0)));
    }
    wout[vv] = best;
  }
#undef LIN
  free(x), free(tmp), free(q), free(k), free(v), free(f);
}

/* Rows r of n documents against the float64 reference (40 terms each). */
static void check_encoder_rows(const model *m, const enc_result *r, int n, double (*ref)[40]) {
  CHECK(r->n_docs == n);
  for (int d = 0; d < n && d < r->n_docs; d++) {
    double w[40] = {0};
    for (int64_t j = r->indptr[d]; j < r->indptr[d + 1]; j++) w[r->indices[j]] = r->values[j];
    double worst = 0;
    int same_support = 1;
    for (int vv = 0; vv < m->cfg.vocab; vv++) {
      worst = fmax(worst, fabs(w[vv] - ref[d][vv]));
      if (fabs(ref[d][vv]) > 1e-5) same_support &= w[vv] > 0;
    }
    CHECK(worst < 2e-5);
    CHECK(same_support);
  }
}

static void test_encoder(model_arch arch) {
  small_model s;
  make_small_model(&s, arch);
  const model *m = &s.m;
  enum { B = 6, MAXLEN = 16 };
  int lengths[B] = {1, 2, 16, 5, 1, 9};
  int32_t ids[B][MAXLEN];
  const int32_t *ptrs[B];
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < lengths[b]; t++) ids[b][t] = (int32_t)(urand() * m->cfg.vocab);
    ptrs[b] = ids[b];
  }
  double ref[B][40];
  for (int b = 0; b < B; b++) naive_forward(m, ids[b], lengths[b], ref[b]);

  int threads_list[] = {1, 3};
  for (int ti = 0; ti < 2; ti++) {
    enc_options o = enc_options_default();
    o.threads = threads_list[ti];
    o.max_length = MAXLEN;
    o.max_batch_tokens = 64;
    o.max_batch_docs = 8;
    encoder *e = NULL;
    CHECK(enc_open(m, &o, &e) == 0);
    if (!e) break;
    /* The whole batch, then one document per batch, then one document per batch pipelined
     * (enc_submit of document d + 1 before enc_collect of document d): same vectors. */
    for (int split = 0; split < 2; split++) {
      for (int first = 0; first < B; first += split ? 1 : B) {
        int n = split ? 1 : B;
        enc_batch batch = {n, ptrs + first, lengths + first};
        enc_result r;
        CHECK(enc_run(e, &batch, &r) == 0);
        check_encoder_rows(m, &r, n, ref + first);
      }
    }
    enc_batch one[B];
    for (int d = 0; d < B; d++) one[d] = (enc_batch){1, ptrs + d, lengths + d};
    int next = 0;
    for (int d = 0; d < B; d++) {
      for (; next < B && enc_in_flight(e) < ENC_MAX_IN_FLIGHT; next++)
        CHECK(enc_submit(e, &one[next]) == 0);
      CHECK(enc_in_flight(e) == (next - d < ENC_MAX_IN_FLIGHT ? next - d : ENC_MAX_IN_FLIGHT));
      enc_result r;
      CHECK(enc_collect(e, &r) == 0);
      check_encoder_rows(m, &r, 1, ref + d);
    }
    CHECK(enc_in_flight(e) == 0);
    enc_close(e);
  }

  /* Argument checks of the API. */
  enc_options o = enc_options_default();
  o.max_length = MAXLEN;
  o.max_batch_tokens = 20;
  o.max_batch_docs = 2;
  o.threads = 1;
  encoder *e = NULL;
  CHECK(enc_open(m, &o, &e) == 0);
  if (e) {
    enc_result r;
    int32_t bad[2] = {1, 40};
    const int32_t *bp[1] = {bad};
    int two = 2, zero = 0;
    enc_batch b1 = {1, bp, &two};
    CHECK(enc_run(e, &b1, &r) == ERR_INPUT); /* id 40 outside V = 40 */
    CHECK(strstr(err_msg(), "40") != NULL);
    enc_batch b2 = {1, bp, &zero};
    CHECK(enc_run(e, &b2, &r) == ERR_INPUT); /* empty document */
    enc_batch b3 = {3, ptrs, lengths};
    CHECK(enc_run(e, &b3, &r) == ERR_ARG); /* more documents than max_batch_docs */
    enc_batch b4 = {0, ptrs, lengths};
    CHECK(enc_run(e, &b4, &r) == 0 && r.n_docs == 0 && r.indptr[0] == 0);
    /* Pipelining limits: nothing to collect; a third submit; enc_run with batches in flight;
     * a refused batch is not counted. */
    CHECK(enc_collect(e, &r) == ERR_ARG);
    enc_batch ok = {1, ptrs, lengths};
    CHECK(enc_submit(e, &ok) == 0);
    CHECK(enc_submit(e, &b1) == ERR_INPUT && enc_in_flight(e) == 1);
    CHECK(enc_submit(e, &b4) == 0 && enc_in_flight(e) == 2);
    CHECK(enc_submit(e, &ok) == ERR_ARG && strstr(err_msg(), "in flight") != NULL);
    CHECK(enc_run(e, &ok, &r) == ERR_ARG);
    CHECK(enc_collect(e, &r) == 0 && r.n_docs == 1);
    CHECK(enc_collect(e, &r) == 0 && r.n_docs == 0);
    CHECK(enc_in_flight(e) == 0 && enc_collect(e, &r) == ERR_ARG);
    CHECK(strstr(enc_describe(e), "cpu fp32") != NULL);
    enc_close(e);
  }
  enc_close(NULL);
  o.max_length = 17; /* > max_positions 16 */
  CHECK(enc_open(m, &o, &e) == ERR_ARG && e == NULL);
  o.max_length = MAXLEN;
  o.threshold = -1.0f;
  CHECK(enc_open(m, &o, &e) == ERR_ARG);
  o.threshold = 0.0f;
  o.precision = ENC_FP16;
  CHECK(enc_open(m, &o, &e) == ERR_ARG);
  o.precision = ENC_FP32;
#ifndef SPLADEX_HAVE_CUDA
  o.backend = ENC_CUDA;
  CHECK(enc_open(m, &o, &e) == ERR_DEVICE);
  CHECK(strstr(err_msg(), "without CUDA") != NULL);
#endif
  free(s.m.arena);
}

/* Windows (enc_rows): rows of several sequences are the max of the sequences' vectors, also when
 * a row spans batches (unfinished / continues), pipelined or not; the chain is enforced. */
static void test_encoder_windows(model_arch arch) {
  small_model s;
  make_small_model(&s, arch);
  const model *m = &s.m;
  const int V = m->cfg.vocab;
  enum { NS = 7, MAXLEN = 16 };
  int lengths[NS] = {16, 16, 3, 16, 16, 9, 1};
  int32_t ids[NS][MAXLEN];
  const int32_t *ptrs[NS];
  double seq_ref[NS][40];
  for (int b = 0; b < NS; b++) {
    for (int t = 0; t < lengths[b]; t++) ids[b][t] = (int32_t)(urand() * V);
    ptrs[b] = ids[b];
    naive_forward(m, ids[b], lengths[b], seq_ref[b]);
  }
  /* Documents: sequences {0, 1}, {2}, {3, 4, 5}, {6}. */
  const int doc_first[4] = {0, 2, 3, 6}, doc_n[4] = {2, 1, 3, 1};
  double ref[4][40];
  for (int d = 0; d < 4; d++)
    for (int v = 0; v < V; v++) {
      ref[d][v] = 0;
      for (int k = 0; k < doc_n[d]; k++) ref[d][v] = fmax(ref[d][v], seq_ref[doc_first[d] + k][v]);
    }
  enc_options o = enc_options_default();
  o.threads = 2;
  o.max_length = MAXLEN;
  o.max_batch_tokens = 96;
  o.max_batch_docs = 8;
  encoder *e = NULL;
  CHECK(enc_open(m, &o, &e) == 0);
  if (!e) return;
  enc_result r;
  /* One batch. */
  enc_batch all = {NS, ptrs, lengths};
  enc_rows all_rows = {4, doc_n, 0, 0};
  CHECK(enc_run_rows(e, &all, &all_rows, &r) == 0);
  check_encoder_rows(m, &r, 4, ref);
  /* Document 2 split over batches: [0 1 | 2 | 3] (unfinished), [4 5 | 6] (continues). */
  enc_batch b1 = {4, ptrs, lengths}, b2 = {3, ptrs + 4, lengths + 4};
  const int seqs1[3] = {2, 1, 1}, seqs2[2] = {2, 1};
  enc_rows r1 = {3, seqs1, 0, 1}, r2 = {2, seqs2, 1, 0};
  for (int pipelined = 0; pipelined < 2; pipelined++) {
    if (pipelined) {
      CHECK(enc_submit_rows(e, &b1, &r1) == 0);
      CHECK(enc_submit_rows(e, &b2, &r2) == 0);
      CHECK(enc_collect(e, &r) == 0);
    } else {
      CHECK(enc_run_rows(e, &b1, &r1, &r) == 0);
    }
    check_encoder_rows(m, &r, 2, ref);
    if (!pipelined) CHECK(enc_run_rows(e, &b2, &r2, &r) == 0);
    if (pipelined) CHECK(enc_collect(e, &r) == 0);
    check_encoder_rows(m, &r, 2, ref + 2);
  }
  /* Document 2 over three batches of one sequence each: no row, no row, its row. */
  const int one = 1;
  for (int k = 0; k < 3; k++) {
    enc_batch b = {1, ptrs + 3 + k, lengths + 3 + k};
    enc_rows rr = {1, &one, k > 0, k < 2};
    CHECK(enc_run_rows(e, &b, &rr, &r) == 0);
    if (k < 2) CHECK(r.n_docs == 0 && r.indptr[0] == 0);
  }
  check_encoder_rows(m, &r, 1, ref + 2);
  /* The chain and the rows are checked. */
  enc_rows cont = {1, &one, 1, 0}, unf = {1, &one, 0, 1};
  enc_batch b = {1, ptrs, lengths};
  CHECK(enc_run_rows(e, &b, &cont, &r) == ERR_ARG); /* nothing to continue */
  CHECK(strstr(err_msg(), "continues") != NULL);
  CHECK(enc_run_rows(e, &b, &unf, &r) == 0 && r.n_docs == 0);
  CHECK(enc_run(e, &b, &r) == ERR_ARG); /* must continue the carried row */
  CHECK(strstr(err_msg(), "unfinished") != NULL);
  CHECK(enc_run_rows(e, &b, &unf, &r) == ERR_ARG);
  const int bad_seqs[2] = {1, 1}, zero_seqs[1] = {0};
  enc_rows bad = {2, bad_seqs, 1, 0}, zero_row = {1, zero_seqs, 1, 0};
  CHECK(enc_run_rows(e, &b, &bad, &r) == ERR_ARG);     /* 2 rows for 1 sequence */
  CHECK(enc_run_rows(e, &b, &zero_row, &r) == ERR_ARG); /* a row of no sequence */
  CHECK(enc_run_rows(e, &b, &cont, &r) == 0 && r.n_docs == 1);
  double seq0[1][40];
  for (int v = 0; v < V; v++) seq0[0][v] = seq_ref[0][v];
  check_encoder_rows(m, &r, 1, seq0);
  enc_close(e);
  free(s.m.arena);
}

int main(void) {
  test_embed_linear_gelu_layernorm();
  test_attention();
  test_maxpool();
  test_sparsify();
  test_encoder(MODEL_DISTILBERT);
  test_encoder(MODEL_BERT);
  test_encoder_windows(MODEL_DISTILBERT);
  test_encoder_windows(MODEL_BERT);
  return check_report("test_ops_cpu");
}
