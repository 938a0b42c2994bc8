/* ops_cpu: CPU twins of the encoder ops (see ops_cpu.h for shapes and contracts).
 *
 * Matmuls go through OpenBLAS; the rest are plain loops written so that gcc vectorizes the inner
 * loop at -O2 (contiguous axpy-style inner loops, no float reductions in the hot inner loops).
 * LayerNorm statistics are accumulated in double, which is at least as accurate as torch's fp32
 * kernels, so the difference to the reference stays far below the 1e-4 parity budget.
 */
#include "ops_cpu.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "err.h"

/* Normalizes one row src (H) into dst (H); src and dst may alias. */
static void layernorm_row(const float *src, const float *gamma, const float *beta, float eps,
                          int hidden, float *dst) {
  double sum = 0.0;
  for (int i = 0; i < hidden; i++) sum += src[i];
  double mean = sum / hidden;
  double var = 0.0;
  for (int i = 0; i < hidden; i++) {
    double d = src[i] - mean;
    var += d * d;
  }
  var /= hidden;
  float rstd = (float)(1.0 / sqrt(var + (double)eps));
  float fmean = (float)mean;
  for (int i = 0; i < hidden; i++) dst[i] = (src[i] - fmean) * rstd * gamma[i] + beta[i];
}

void ops_embed_layernorm(const int32_t *ids, const int *positions, int n, const float *word_emb,
                         const float *pos_emb, const float *type_row, const float *gamma,
                         const float *beta, float eps, int hidden, float *out) {
  for (int t = 0; t < n; t++) {
    const float *w = word_emb + (size_t)ids[t] * hidden;
    const float *p = pos_emb + (size_t)positions[t] * hidden;
    float *o = out + (size_t)t * hidden;
    if (type_row)
      for (int i = 0; i < hidden; i++) o[i] = w[i] + p[i] + type_row[i];
    else
      for (int i = 0; i < hidden; i++) o[i] = w[i] + p[i];
    layernorm_row(o, gamma, beta, eps, hidden, o);
  }
}

void ops_linear(const float *x, const float *w, const float *bias, int n, int in_features,
                int out_features, float *y, int ldy) {
  if (n <= 0) return;
  SPX_ASSERT(ldy >= out_features);
  /* y (n, out) = x (n, in) * w^T, w stored (out, in) row-major. */
  if (bias) {
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * ldy, bias, sizeof(float) * out_features);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out_features, in_features, 1.0f, x,
              in_features, w, in_features, bias ? 1.0f : 0.0f, y, ldy);
}

/* Compiled twice, for AVX2 (8 lanes) and for the baseline, chosen at load time (ifunc; a clone
 * for "arch=haswell" would be chosen on Intel Haswell-family CPUs only, never on AMD).
 * The erf is written out inside the loop (a helper would not be inlined across targets): libm's
 * erff is a call per element (~5% of an encode's samples); this, without a call or a branch,
 * vectorizes. It is the rational approximation of Eigen's and XLA's float erf, x P(x^2) / Q(x^2)
 * on x clamped to [-4, 4] (erf(4) is 1 in float), clamped to [-1, 1]: max |error| 4.5e-7
 * against double erf on a 2e6-point grid of [-6, 6] (libm's erff: ~6e-8), so the GELU's error
 * stays below 1.5e-6 * max(1, |v|). */
__attribute__((target_clones("avx2", "default")))
void ops_bias_gelu(float *x, const float *bias, int n, int features) {
  const float inv_sqrt2 = 0.70710678118654752440f;
  for (int i = 0; i < n; i++) {
    float *r = x + (size_t)i * features;
    if (bias)
      for (int j = 0; j < features; j++) r[j] += bias[j];
    for (int j = 0; j < features; j++) {
      const float v = r[j];
      float e = v * inv_sqrt2;
      e = e < -4.0f ? -4.0f : e;
      e = e > 4.0f ? 4.0f : e;
      const float e2 = e * e;
      float p = -2.72614225801306e-10f;
      p = p * e2 + 2.77068142495902e-08f;
      p = p * e2 + -2.10102402082508e-06f;
      p = p * e2 + -5.69250639462346e-05f;
      p = p * e2 + -7.34990630326855e-04f;
      p = p * e2 + -2.95459980854025e-03f;
      p = p * e2 + -1.60960333262415e-02f;
      float q = -1.45660718464996e-05f;
      q = q * e2 + -2.13374055278905e-04f;
      q = q * e2 + -1.68282697438203e-03f;
      q = q * e2 + -7.37332916720468e-03f;
      q = q * e2 + -1.42647390514189e-02f;
      float erf = e * p / q;
      erf = erf < -1.0f ? -1.0f : erf;
      erf = erf > 1.0f ? 1.0f : erf;
      r[j] = 0.5f * v * (1.0f + erf);
    }
  }
}

void ops_residual_layernorm(const float *x, const float *bias, const float *residual,
                            const float *gamma, const float *beta, float eps, int n, int hidden,
                            float *out) {
  for (int t = 0; t < n; t++) {
    const float *xr = x + (size_t)t * hidden;
    const float *rr = residual ? residual + (size_t)t * hidden : NULL;
    float *o = out + (size_t)t * hidden;
    /* Sum into o first: o may alias x or residual, and element i is read before it is written. */
    for (int i = 0; i < hidden; i++) {
      float v = xr[i];
      if (bias) v += bias[i];
      if (rr) v += rr[i];
      o[i] = v;
    }
    layernorm_row(o, gamma, beta, eps, hidden, o);
  }
}

size_t ops_attention_scratch_floats(int max_len, int head_dim) {
  (void)head_dim;
  return (size_t)max_len * max_len; /* one head's (T, T) probabilities */
}

void ops_attention(const float *qkv, const int *doc_offsets, int n_docs, int n_heads,
                   int head_dim, float *scratch, float *out) {
  const int hidden = n_heads * head_dim;
  const int ld = 3 * hidden;
  const float scale = 1.0f / sqrtf((float)head_dim);
  for (int b = 0; b < n_docs; b++) {
    const int start = doc_offsets[b];
    const int len = doc_offsets[b + 1] - start;
    float *probs = scratch; /* (T, T) */
    for (int h = 0; h < n_heads; h++) {
      const float *q = qkv + (size_t)start * ld + (size_t)h * head_dim;
      const float *k = q + hidden;
      const float *v = q + 2 * hidden;
      /* probs = scale * Q K^T, then a softmax per row, then out = probs V. */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, head_dim, scale, q, ld, k, ld,
                  0.0f, probs, len);
      for (int i = 0; i < len; i++) {
        float *row = probs + (size_t)i * len;
        float mx = row[0];
        for (int j = 1; j < len; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < len; j++) {
          row[j] = expf(row[j] - mx);
          sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < len; j++) row[j] *= inv;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, head_dim, len, 1.0f, probs, len,
                  v, ld, 0.0f, out + (size_t)start * hidden + (size_t)h * head_dim, hidden);
    }
  }
}

/* The first document that owns row t0: the last b with doc_offsets[b] <= t0 (binary search). */
static int first_doc_of_row(const int *doc_offsets, int n_docs, int t0) {
  int lo = 0, hi = n_docs - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (doc_offsets[mid] <= t0)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

void ops_maxpool_logits(const float *logits, int ld, int t0, int n_rows, int v0, int vb,
                        const int *doc_offsets, int n_docs, float *pooled, int vocab) {
  if (n_rows <= 0) return;
  int lo = first_doc_of_row(doc_offsets, n_docs, t0);
  const int t_end = t0 + n_rows;
  for (int b = lo; b < n_docs && doc_offsets[b] < t_end; b++) {
    int s = doc_offsets[b] > t0 ? doc_offsets[b] : t0;
    int e = doc_offsets[b + 1] < t_end ? doc_offsets[b + 1] : t_end;
    float *dst = pooled + (size_t)b * vocab + v0;
    for (int t = s; t < e; t++) {
      const float *row = logits + (size_t)(t - t0) * ld;
      for (int j = 0; j < vb; j++) dst[j] = row[j] > dst[j] ? row[j] : dst[j];
    }
  }
}

void ops_sumpool_logits(const float *logits, int ld, int t0, int n_rows, int v0, int vb,
                        const int *doc_offsets, int n_docs, const float *decoder_bias, int log1p_twice,
                        float *pooled, int vocab) {
  if (n_rows <= 0) return;
  int lo = first_doc_of_row(doc_offsets, n_docs, t0);
  const float *bias = decoder_bias + v0;
  const int t_end = t0 + n_rows;
  for (int b = lo; b < n_docs && doc_offsets[b] < t_end; b++) {
    int s = doc_offsets[b] > t0 ? doc_offsets[b] : t0;
    int e = doc_offsets[b + 1] < t_end ? doc_offsets[b + 1] : t_end;
    float *dst = pooled + (size_t)b * vocab + v0;
    for (int t = s; t < e; t++) {
      const float *row = logits + (size_t)(t - t0) * ld;
      for (int j = 0; j < vb; j++) {
        float x = row[j] + bias[j];
        if (x > 0.0f) dst[j] += log1p_twice ? log1pf(log1pf(x)) : log1pf(x);
      }
    }
  }
}

void ops_log1p_relu_weights(float *pooled, const float *decoder_bias, int n_docs, int vocab) {
  for (int b = 0; b < n_docs; b++) {
    float *row = pooled + (size_t)b * vocab;
    for (int v = 0; v < vocab; v++) {
      float x = row[v] + decoder_bias[v];
      row[v] = x > 0.0f ? log1pf(log1pf(x)) : 0.0f;
    }
  }
}

void ops_fill(float *x, size_t n, float value) {
  for (size_t i = 0; i < n; i++) x[i] = value;
}

/* The k-th largest (1-based) of a[0, n), 1 <= k <= n; reorders a (Hoare quickselect). */
static float kth_largest(float *a, int n, int k) {
  int lo = 0, hi = n - 1, target = k - 1;
  while (lo < hi) {
    float pivot = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        float tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
        i++;
        j--;
      }
    }
    if (target <= j)
      hi = j;
    else if (target >= i)
      lo = i;
    else
      return a[target];
  }
  return a[target];
}

void ops_sparsify_weights(float *pooled, const float *decoder_bias, int n_docs, int vocab,
                          float threshold, int top_k, int32_t *row_nnz, float *scratch) {
  for (int b = 0; b < n_docs; b++) {
    float *row = pooled + (size_t)b * vocab;
    int kept = 0;
    for (int v = 0; v < vocab; v++) {
      float w = row[v];
      if (decoder_bias) {
        float x = row[v] + decoder_bias[v];
        w = x > 0.0f ? log1pf(x) : 0.0f;
      }
      if (w > threshold) {
        row[v] = w;
        scratch[kept++] = w;
      } else {
        row[v] = 0.0f;
      }
    }
    if (top_k > 0 && kept > top_k) {
      /* Keep every w > cutoff and, among w == cutoff, the lowest term ids until top_k. */
      float cutoff = kth_largest(scratch, kept, top_k);
      int above = 0;
      for (int v = 0; v < vocab; v++) above += row[v] > cutoff;
      int ties_left = top_k - above;
      for (int v = 0; v < vocab; v++) {
        if (row[v] > cutoff) continue;
        if (row[v] == cutoff && ties_left > 0) {
          ties_left--;
          continue;
        }
        row[v] = 0.0f;
      }
      kept = top_k;
    }
    row_nnz[b] = kept;
  }
}

void ops_sparsify_gather(const float *weights, int n_docs, int vocab, float threshold,
                         const int64_t *indptr, int32_t *indices, float *values) {
  for (int b = 0; b < n_docs; b++) {
    const float *row = weights + (size_t)b * vocab;
    int64_t k = indptr[b];
    for (int v = 0; v < vocab; v++) {
      if (row[v] > threshold) {
        indices[k] = v;
        values[k] = row[v];
        k++;
      }
    }
    SPX_ASSERT(k == indptr[b + 1]);
  }
}
