/* cuda_twins: sequential C versions of the CUDA-only algorithms (see cuda_twins.h). Each loop
 * nest follows its kernel: one iteration of an outer loop here is one thread block there. */
#include "cuda_twins.h"

#include <math.h>
#include <string.h>

#include "err.h"
#include "ops_cpu.h"

size_t cutwin_attention_scratch_floats(int head_dim) {
  return (size_t)head_dim + CUTWIN_KEY_TILE;
}

void cutwin_attention(const float *qkv, const int *doc_offsets, int n_docs, int n_heads,
                      int head_dim, float *scratch, float *out) {
  const int D = head_dim, H = n_heads * head_dim;
  const size_t ld = (size_t)3 * H;
  const float scale = 1.0f / sqrtf((float)D);
  float *o = scratch;         /* (D) one query's running output */
  float *p = scratch + D;     /* (KEY_TILE) one tile's probabilities */
  for (int b = 0; b < n_docs; b++) {
    const int start = doc_offsets[b], len = doc_offsets[b + 1] - start;
    for (int h = 0; h < n_heads; h++) {
      for (int i = 0; i < len; i++) {
        const float *q = qkv + (size_t)(start + i) * ld + (size_t)h * D;
        float m = -INFINITY, l = 0.0f;
        for (int c = 0; c < D; c++) o[c] = 0.0f;
        for (int k0 = 0; k0 < len; k0 += CUTWIN_KEY_TILE) {
          const int nk = len - k0 < CUTWIN_KEY_TILE ? len - k0 : CUTWIN_KEY_TILE;
          float tmax = -INFINITY;
          for (int j = 0; j < nk; j++) {
            const float *k = qkv + (size_t)(start + k0 + j) * ld + H + (size_t)h * D;
            float s = 0.0f;
            for (int c = 0; c < D; c++) s += (q[c] * scale) * k[c];
            p[j] = s;
            tmax = s > tmax ? s : tmax;
          }
          const float mnew = fmaxf(m, tmax);
          const float corr = expf(m - mnew); /* 0 on the first tile (m = -inf) */
          float sum = 0.0f;
          for (int j = 0; j < nk; j++) {
            p[j] = expf(p[j] - mnew);
            sum += p[j];
          }
          l = l * corr + sum;
          for (int c = 0; c < D; c++) o[c] *= corr;
          for (int j = 0; j < nk; j++) {
            const float *v = qkv + (size_t)(start + k0 + j) * ld + 2 * (size_t)H + (size_t)h * D;
            for (int c = 0; c < D; c++) o[c] += p[j] * v[c];
          }
          m = mnew;
        }
        float *dst = out + (size_t)(start + i) * H + (size_t)h * D;
        for (int c = 0; c < D; c++) dst[c] = o[c] / l;
      }
    }
  }
}

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

void cutwin_sparsify_weights(float *pooled, const float *decoder_bias, int n_docs, int vocab,
                             float threshold, int top_k, int32_t *row_nnz, float *scratch) {
  (void)scratch;
  for (int b = 0; b < n_docs; b++) {
    float *row = pooled + (size_t)b * vocab;
    /* Pass 1: weights; a term not above the threshold becomes 0. */
    int kept = 0;
    for (int v = 0; v < vocab; v++) {
      float x = row[v] + decoder_bias[v];
      float w = x > 0.0f ? log1pf(x) : 0.0f;
      if (w > threshold)
        kept++;
      else
        w = 0.0f;
      row[v] = w;
    }
    if (top_k > 0 && kept > top_k) {
      /* Kept weights are > threshold >= 0, so their bits order like their values, and every
       * dropped term is 0 (bits 0) below them: the top_k-th largest bits of the whole row are the
       * top_k-th largest kept weight. Radix select, 8 bits per pass from the top. */
      uint32_t prefix = 0, mask = 0;
      int k = top_k; /* rank still wanted among the terms that match prefix under mask */
      for (int shift = 24; shift >= 0; shift -= 8) {
        int hist[256] = {0};
        for (int v = 0; v < vocab; v++) {
          uint32_t u = float_bits(row[v]);
          if ((u & mask) == prefix) hist[(u >> shift) & 255u]++;
        }
        int digit = 255;
        for (; digit > 0; digit--) {
          if (hist[digit] >= k) break;
          k -= hist[digit];
        }
        prefix |= (uint32_t)digit << shift;
        mask |= 255u << shift;
      }
      /* prefix: bits of the cutoff; k: how many terms equal to it to keep (lowest ids first). */
      int ties_seen = 0;
      for (int v0 = 0; v0 < vocab; v0 += CUTWIN_SCAN_BLOCK) {
        int end = v0 + CUTWIN_SCAN_BLOCK < vocab ? v0 + CUTWIN_SCAN_BLOCK : vocab;
        int tile_ties = 0;
        for (int v = v0; v < end; v++) {
          uint32_t u = float_bits(row[v]);
          int rank = ties_seen + tile_ties; /* exclusive scan of the tie flags */
          if (u == prefix) tile_ties++;
          if (u < prefix || (u == prefix && rank >= k)) row[v] = 0.0f;
        }
        ties_seen += tile_ties;
      }
      kept = top_k;
    }
    row_nnz[b] = kept;
  }
}

void cutwin_row_offsets(const int32_t *row_nnz, int n, int64_t *indptr) {
  indptr[0] = 0;
  for (int i = 0; i < n; i++) indptr[i + 1] = indptr[i] + row_nnz[i];
}

void cutwin_sparsify_gather(const float *weights, int n_docs, int vocab, float threshold,
                            const int64_t *indptr, int32_t *indices, float *values) {
  for (int b = 0; b < n_docs; b++) {
    const float *row = weights + (size_t)b * vocab;
    int64_t base = indptr[b];
    for (int v0 = 0; v0 < vocab; v0 += CUTWIN_SCAN_BLOCK) {
      int end = v0 + CUTWIN_SCAN_BLOCK < vocab ? v0 + CUTWIN_SCAN_BLOCK : vocab;
      int64_t pos = 0; /* exclusive scan of the kept flags within the tile */
      for (int v = v0; v < end; v++) {
        if (row[v] > threshold) {
          indices[base + pos] = v;
          values[base + pos] = row[v];
          pos++;
        }
      }
      base += pos;
    }
    SPX_ASSERT(base == indptr[b + 1]);
  }
}

void cutwin_decoder_maxpool(const float *rows, const float *decoder_w, int n, int hidden,
                            int vocab, const int *doc_offsets, int n_docs, int token_block,
                            int vocab_block, float *logits, float *pooled) {
  for (int t0 = 0; t0 < n; t0 += token_block) {
    const int nr = n - t0 < token_block ? n - t0 : token_block;
    for (int v0 = 0; v0 < vocab; v0 += vocab_block) {
      const int vb = vocab - v0 < vocab_block ? vocab - v0 : vocab_block;
      ops_linear(rows + (size_t)t0 * hidden, decoder_w + (size_t)v0 * hidden, NULL, nr, hidden,
                 vb, logits, vocab_block);
      ops_maxpool_logits(logits, vocab_block, t0, nr, v0, vb, doc_offsets, n_docs, pooled, vocab);
    }
  }
}

void cutwin_csr_to_csc(const int32_t *indptr, const int32_t *indices, const float *values,
                       int n_rows, int n_cols, int nnz, int32_t *colptr, int32_t *rowind,
                       float *cvalues) {
  (void)nnz;
  for (int c = 0; c <= n_cols; c++) colptr[c] = 0;
  for (int r = 0; r < n_rows; r++)
    for (int32_t j = indptr[r]; j < indptr[r + 1]; j++) colptr[indices[j] + 1]++;
  for (int c = 0; c < n_cols; c++) colptr[c + 1] += colptr[c];
  /* A stable counting sort: rows in ascending order land in ascending order per column. The
   * running fill position of column c is colptr[c] + (entries of c placed so far); colptr is
   * restored by shifting once at the end. */
  for (int r = 0; r < n_rows; r++) {
    for (int32_t j = indptr[r]; j < indptr[r + 1]; j++) {
      int32_t dst = colptr[indices[j]]++;
      rowind[dst] = r;
      cvalues[dst] = values[j];
    }
  }
  for (int c = n_cols; c > 0; c--) colptr[c] = colptr[c - 1];
  colptr[0] = 0;
}
