/* cuda_twins: sequential C versions of the CUDA-only algorithms (see cuda_twins.h). Each loop
 * nest follows its kernel: one iteration of an outer loop here is one thread block there. */
#include "cuda_twins.h"

#include <math.h>
#include <string.h>

#include "cu_dtype.h"
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
          uint32_t u = cu_f32_bits(row[v]);
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
          uint32_t u = cu_f32_bits(row[v]);
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

/* ---- the fused decoder + max ---- */

/* The int32 that the device reinterprets the bits as (__float_as_int): int32_t is two's
 * complement, so memcpy is the bit cast. */
static int32_t bits_int(uint32_t u) {
  int32_t i;
  memcpy(&i, &u, sizeof i);
  return i;
}

uint32_t cutwin_fmax_key(float f) {
  const uint32_t u = cu_f32_bits(f);
  return (u >> 31) ? ~u : u | 0x80000000u;
}

float cutwin_fmax_from_key(uint32_t key) {
  return cu_bits_f32((key >> 31) ? key & 0x7fffffffu : ~key);
}

float cutwin_fmax_merge(float stored, float value) {
  const uint32_t s = cu_f32_bits(stored), v = cu_f32_bits(value);
  if (!(v >> 31)) return bits_int(v) > bits_int(s) ? value : stored; /* atomicMax on int */
  return v < s ? value : stored;                                     /* atomicMin on unsigned */
}

void cutwin_fused_tile_of(int block, int n_token_tiles, int n_vocab_tiles, int *token_tile,
                          int *vocab_tile) {
  const int per_group = CUTWIN_FUSED_GROUP_TOKEN_TILES * n_vocab_tiles;
  const int group = block / per_group, local = block % per_group;
  const int first = group * CUTWIN_FUSED_GROUP_TOKEN_TILES;
  const int size = n_token_tiles - first < CUTWIN_FUSED_GROUP_TOKEN_TILES
                       ? n_token_tiles - first
                       : CUTWIN_FUSED_GROUP_TOKEN_TILES;
  *token_tile = first + local % size;
  *vocab_tile = local / size;
}

void cutwin_fused_run_epilogue(const float *tile, int ld, int t0, int m_rows, int v0, int n_cols,
                               int group, const int *doc_offsets, int n_docs, float *pooled,
                               int vocab) {
  const int group_rows = CUTWIN_FUSED_TOKEN_TILE / CUTWIN_FUSED_ROW_GROUPS;
  const int r_lo = group * group_rows;
  const int r_hi = r_lo + group_rows < m_rows ? r_lo + group_rows : m_rows;
  if (r_lo >= r_hi) return;
  /* the kernel's binary search: the last b with doc_offsets[b] <= t0 + r_lo */
  int lo = 0, hi = n_docs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (doc_offsets[mid] <= t0 + r_lo)
      lo = mid;
    else
      hi = mid - 1;
  }
  /* One iteration of c is one thread of the kernel's epilogue. */
  for (int c = 0; c < n_cols; c++) {
    int b = lo, r = r_lo;
    while (r < r_hi) {
      SPX_ASSERT(b < n_docs); /* rows below doc_offsets[n_docs] == n belong to a document */
      const int d_start = doc_offsets[b] - t0, d_end = doc_offsets[b + 1] - t0;
      const int e = d_end < r_hi ? d_end : r_hi;
      if (e > r) {
        float m = -INFINITY;
        for (; r < e; r++) {
          const float x = tile[(size_t)r * ld + c];
          m = x > m ? x : m;
        }
        float *dst = pooled + (size_t)b * vocab + v0 + c;
        if (d_start >= r_lo && d_end <= r_hi)
          *dst = m; /* the only writer of (b, v0 + c) */
        else
          *dst = cutwin_fmax_merge(*dst, m);
      }
      b++;
    }
  }
}

void cutwin_fused_tile_epilogue(const float *tile, int ld, int t0, int m_rows, int v0, int n_cols,
                                const int *doc_offsets, int n_docs, float *pooled, int vocab) {
  for (int g = 0; g < CUTWIN_FUSED_ROW_GROUPS; g++)
    cutwin_fused_run_epilogue(tile, ld, t0, m_rows, v0, n_cols, g, doc_offsets, n_docs, pooled,
                              vocab);
}

void cutwin_decoder_maxpool_fused(const float *rows, const float *decoder_w, int n, int hidden,
                                  int vocab, const int *doc_offsets, int n_docs, float *tile,
                                  float *pooled) {
  if (n <= 0 || vocab <= 0 || n_docs <= 0) return;
  const int n_tt = (n + CUTWIN_FUSED_TOKEN_TILE - 1) / CUTWIN_FUSED_TOKEN_TILE;
  const int n_vt = (vocab + CUTWIN_FUSED_VOCAB_TILE - 1) / CUTWIN_FUSED_VOCAB_TILE;
  for (int block = 0; block < n_tt * n_vt; block++) {
    int tt, vt;
    cutwin_fused_tile_of(block, n_tt, n_vt, &tt, &vt);
    const int t0 = tt * CUTWIN_FUSED_TOKEN_TILE, v0 = vt * CUTWIN_FUSED_VOCAB_TILE;
    const int m_rows = n - t0 < CUTWIN_FUSED_TOKEN_TILE ? n - t0 : CUTWIN_FUSED_TOKEN_TILE;
    const int n_cols = vocab - v0 < CUTWIN_FUSED_VOCAB_TILE ? vocab - v0 : CUTWIN_FUSED_VOCAB_TILE;
    ops_linear(rows + (size_t)t0 * hidden, decoder_w + (size_t)v0 * hidden, NULL, m_rows, hidden,
               n_cols, tile, CUTWIN_FUSED_VOCAB_TILE);
    cutwin_fused_tile_epilogue(tile, CUTWIN_FUSED_VOCAB_TILE, t0, m_rows, v0, n_cols, doc_offsets,
                               n_docs, pooled, vocab);
  }
}

/* ---- attention on tensor cores ---- */

size_t cutwin_attention_mma_scratch_floats(int head_dim) {
  /* q (QUERY_BLOCK, D), o (QUERY_BLOCK, D), k (KEY_TILE, D), v (KEY_TILE, D), m and l
   * (QUERY_BLOCK), p (KEY_TILE) */
  return (size_t)2 * CUTWIN_MMA_QUERY_BLOCK * head_dim + (size_t)2 * CUTWIN_MMA_KEY_TILE * head_dim +
         2 * CUTWIN_MMA_QUERY_BLOCK + CUTWIN_MMA_KEY_TILE;
}

int cutwin_attention_mma_supported(int head_dim) {
  return head_dim >= 16 && head_dim <= CUTWIN_MMA_MAX_HEAD_DIM && head_dim % 16 == 0;
}

float cutwin_attention_mma_rowsum(const float *p, int n_keys) {
  float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int t = 0; t < 4; t++)
    for (int nb = 0; nb < CUTWIN_MMA_KEY_TILE / 8; nb++)
      for (int e = 0; e < 2; e++) {
        const int j = 8 * nb + 2 * t + e;
        if (j < n_keys) part[t] += p[j]; /* the kernel adds p = 0 for the keys past the end */
      }
  return (part[0] + part[1]) + (part[2] + part[3]);
}

/* Rows [0, n) of one (document, head) slice of qkv, columns [col, col + D): (x + bias) * scale
 * (bias NULL: x * scale; scale 1, the keys and values: exact), rounded to lp, into dst (n, D). */
static void mma_stage(const float *qkv, size_t ld, size_t row0, int n, size_t col, int D,
                      const float *bias, float scale, cu_dtype lp, float *dst) {
  for (int r = 0; r < n; r++)
    for (int c = 0; c < D; c++) {
      float x = qkv[(row0 + (size_t)r) * ld + col + (size_t)c];
      if (bias) x += bias[col + (size_t)c];
      dst[(size_t)r * D + c] = cu_round(x * scale, lp);
    }
}

void cutwin_attention_mma(const float *qkv, const float *qkv_bias, const int *doc_offsets,
                          int n_docs, int n_heads, int head_dim, cu_dtype lp, float *scratch,
                          float *out) {
  const int D = head_dim, H = n_heads * head_dim, QB = CUTWIN_MMA_QUERY_BLOCK;
  const int KT = CUTWIN_MMA_KEY_TILE;
  const size_t ld = (size_t)3 * H;
  const float scale = 1.0f / sqrtf((float)D);
  float *qs = scratch;                 /* (QB, D) */
  float *os = qs + (size_t)QB * D;     /* (QB, D) */
  float *ks = os + (size_t)QB * D;     /* (KT, D) */
  float *vs = ks + (size_t)KT * D;     /* (KT, D) */
  float *ms = vs + (size_t)KT * D;     /* (QB) */
  float *ls = ms + QB;                 /* (QB) */
  float *p = ls + QB;                  /* (KT) */
  for (int b = 0; b < n_docs; b++) {
    const int start = doc_offsets[b], len = doc_offsets[b + 1] - start;
    for (int h = 0; h < n_heads; h++) {
      const size_t cq = (size_t)h * D, ck = (size_t)H + cq, cv = 2 * (size_t)H + cq;
      /* one iteration: one thread block (blockIdx.z = q0 / QB) */
      for (int q0 = 0; q0 < len; q0 += QB) {
        const int nq = len - q0 < QB ? len - q0 : QB;
        mma_stage(qkv, ld, (size_t)(start + q0), nq, cq, D, qkv_bias, scale, lp, qs);
        for (int r = 0; r < nq; r++) {
          ms[r] = -INFINITY;
          ls[r] = 0.0f;
        }
        memset(os, 0, sizeof(float) * (size_t)nq * D);
        for (int k0 = 0; k0 < len; k0 += KT) {
          const int nk = len - k0 < KT ? len - k0 : KT;
          mma_stage(qkv, ld, (size_t)(start + k0), nk, ck, D, qkv_bias, 1.0f, lp, ks);
          mma_stage(qkv, ld, (size_t)(start + k0), nk, cv, D, qkv_bias, 1.0f, lp, vs);
          for (int r = 0; r < nq; r++) {
            const float *q = qs + (size_t)r * D;
            float *o = os + (size_t)r * D;
            float tmax = -INFINITY;
            for (int j = 0; j < nk; j++) {
              const float *k = ks + (size_t)j * D;
              float s = 0.0f;
              for (int c = 0; c < D; c++) s += q[c] * k[c];
              p[j] = s;
              tmax = s > tmax ? s : tmax;
            }
            const float mnew = fmaxf(ms[r], tmax);
            const float corr = expf(ms[r] - mnew); /* 0 on the first tile (m = -inf) */
            for (int j = 0; j < nk; j++) p[j] = expf(p[j] - mnew);
            ls[r] = fmaf(ls[r], corr, cutwin_attention_mma_rowsum(p, nk));
            for (int c = 0; c < D; c++) o[c] *= corr;
            for (int j = 0; j < nk; j++) {
              const float pj = cu_round(p[j], lp); /* the A operand of P.V */
              const float *v = vs + (size_t)j * D;
              for (int c = 0; c < D; c++) o[c] += pj * v[c];
            }
            ms[r] = mnew;
          }
        }
        for (int r = 0; r < nq; r++) {
          float *dst = out + (size_t)(start + q0 + r) * H + cq;
          for (int c = 0; c < D; c++) dst[c] = cu_round(os[(size_t)r * D + c] / ls[r], lp);
        }
      }
    }
  }
}
