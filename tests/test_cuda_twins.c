/* test_cuda_twins: the CPU twins of the CUDA-only math (cuda/cu_dtype.h, cuda/cuda_twins.h),
 * on any machine, with or without CUDA or a GPU:
 *   - fp16 rounding against the compiler's _Float16 conversion and a rounding written with
 *     doubles; bf16 rounding against the doubles version; special values
 *   - the radix-select top-k against ops_sparsify_weights, bit for bit, on random rows with ties,
 *     top_k above the row's nnz, top_k 1, thresholds
 *   - the tiled compaction and the prefix sum against ops_sparsify_gather / a plain loop
 *   - the online-softmax attention against ops_attention (ragged docs, T = 1, head dims 8..128)
 *   - the decoder in (token block x vocab chunk) pieces against a max over full logit rows
 *   - the CSR -> CSC transpose against a direct scan
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cu_dtype.h"
#include "cuda_twins.h"
#include "ops_cpu.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static float rng_uniform(float lo, float hi) { return lo + (hi - lo) * (float)(rng_u32() >> 8) / 16777216.0f; }

static float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Round-to-nearest-even to a binary format with `digits` significand bits, minimum normal
 * exponent emin (value 2^emin) and largest finite value maxval, computed in double. */
static double round_ref(double x, int digits, int emin, double maxval) {
  if (x == 0.0 || isnan(x) || isinf(x)) return x;
  int e;
  frexp(x, &e); /* |x| in [2^(e-1), 2^e) */
  int q = e - digits; /* quantum exponent */
  if (q < emin - digits + 1) q = emin - digits + 1; /* subnormal spacing */
  double scaled = ldexp(x, -q);
  double r = nearbyint(scaled); /* default mode: to nearest, ties to even */
  double y = ldexp(r, q);
  /* overflow: values at or above maxval + half an ulp go to infinity */
  double half_ulp = ldexp(1.0, (int)floor(log2(maxval)) - digits);
  if (fabs(x) >= maxval + half_ulp) return x > 0 ? INFINITY : -INFINITY;
  return y;
}

static void test_rounding(void) {
  int bad16 = 0, bad16_ref = 0, badbf = 0;
  for (int i = 0; i < 2000000; i++) {
    uint32_t u;
    if (i < 1000000)
      u = (uint32_t)i * 4294u + (uint32_t)(i & 7); /* a sweep over all exponents */
    else
      u = rng_u32();
    float f = bits_to_float(u);
    if (isnan(f)) {
      bad16 += cu_f32_to_f16_bits(f) != 0x7fffu;
      badbf += cu_f32_to_bf16_bits(f) != 0x7fffu;
      continue;
    }
    float mine = cu_f16_bits_to_f32(cu_f32_to_f16_bits(f));
    __extension__ _Float16 h = (_Float16)f;
    float cc = (float)h;
    if (!(mine == cc && signbit(mine) == signbit(cc))) {
      if (++bad16 <= 5) fprintf(stderr, "fp16: %a -> %a, _Float16 %a\n", f, mine, cc);
    }
    double ref16 = round_ref(f, 11, -14, 65504.0);
    if (!((double)mine == ref16)) {
      if (++bad16_ref <= 5) fprintf(stderr, "fp16: %a -> %a, ref %a\n", f, mine, ref16);
    }
    float bf = cu_bf16_bits_to_f32(cu_f32_to_bf16_bits(f));
    double refbf = round_ref(f, 8, -126, 0x1.fep127);
    if (!((double)bf == refbf)) {
      if (++badbf <= 5) fprintf(stderr, "bf16: %a -> %a, ref %a\n", f, bf, refbf);
    }
  }
  CHECK(bad16 == 0);
  CHECK(bad16_ref == 0);
  CHECK(badbf == 0);
  /* Special values. */
  CHECK(cu_f32_to_f16_bits(65504.0f) == 0x7bffu);
  CHECK(cu_f32_to_f16_bits(65520.0f) == 0x7c00u);
  CHECK(cu_f32_to_f16_bits(-INFINITY) == 0xfc00u);
  CHECK(cu_f32_to_f16_bits(-0.0f) == 0x8000u);
  CHECK(cu_f32_to_bf16_bits(FLT_MAX) == 0x7f80u);
  CHECK(cu_round(1.0f / 3.0f, CU_F32) == 1.0f / 3.0f);
  float src[5] = {1.5f, -2.25f, 1e-8f, 70000.0f, 0.1f}, back[5];
  uint16_t conv[5];
  cu_convert(src, 5, CU_F16, conv);
  for (int i = 0; i < 5; i++) back[i] = cu_f16_bits_to_f32(conv[i]);
  for (int i = 0; i < 5; i++) CHECK(back[i] == cu_round(src[i], CU_F16) || (isinf(back[i]) && src[i] > 65504.0f));
  printf("rounding: fp16 and bf16 twins agree with _Float16 and a double-precision reference on 2M floats\n");
}

/* Random pooled rows: raw logits, some rows with heavy ties, biases small. */
static void make_pooled(float *pooled, float *bias, int B, int V, int ties) {
  for (int v = 0; v < V; v++) bias[v] = rng_uniform(-0.1f, 0.1f);
  for (int b = 0; b < B; b++) {
    for (int v = 0; v < V; v++) {
      float x = rng_uniform(-3.0f, 2.0f);
      if (ties && b % 2 == 0) {
        /* few distinct values: log1p of equal inputs gives equal weights (exact ties) */
        x = (float)(rng_u32() % 5) * 0.5f - 1.0f;
        bias[v] = 0.0f;
      }
      if (b == B - 1) x = -5.0f; /* an all-dropped row */
      pooled[(size_t)b * V + v] = x;
    }
    if (b == 1 && V > 3) { /* a row with fewer kept terms than any top_k tried */
      for (int v = 0; v < V; v++) pooled[(size_t)b * V + v] = v < 3 ? 1.0f : -5.0f;
    }
  }
}

static void test_sparsify(void) {
  const int V = 1537, B = 9; /* V not a multiple of the scan block */
  float *p0 = malloc(sizeof(float) * B * V), *p1 = malloc(sizeof(float) * B * V);
  float *p2 = malloc(sizeof(float) * B * V), *bias = malloc(sizeof(float) * V);
  float *scratch = malloc(sizeof(float) * V);
  int32_t nnz0[9], nnz1[9];
  int64_t ip0[10], ip1[10];
  const int topks[] = {0, 1, 2, 7, 64, 1536, 1537, 5000};
  const float thresholds[] = {0.0f, 0.3f};
  int cases = 0, mismatched = 0;
  for (int ties = 0; ties < 2; ties++) {
    for (size_t ti = 0; ti < sizeof topks / sizeof *topks; ti++) {
      for (size_t hi = 0; hi < 2; hi++) {
        make_pooled(p0, bias, B, V, ties);
        memcpy(p1, p0, sizeof(float) * B * V);
        ops_sparsify_weights(p0, bias, B, V, thresholds[hi], topks[ti], nnz0, scratch);
        cutwin_sparsify_weights(p1, bias, B, V, thresholds[hi], topks[ti], nnz1, NULL);
        int same = memcmp(p0, p1, sizeof(float) * B * V) == 0 &&
                   memcmp(nnz0, nnz1, sizeof nnz0) == 0;
        CHECK(same);
        mismatched += !same;
        /* compaction and prefix sum */
        ip0[0] = 0;
        for (int b = 0; b < B; b++) ip0[b + 1] = ip0[b] + nnz0[b];
        cutwin_row_offsets(nnz1, B, ip1);
        CHECK(memcmp(ip0, ip1, sizeof ip0) == 0);
        int64_t nnz = ip0[B];
        int32_t *i0 = malloc(sizeof(int32_t) * (size_t)(nnz + 1)), *i1 = malloc(sizeof(int32_t) * (size_t)(nnz + 1));
        float *v0 = malloc(sizeof(float) * (size_t)(nnz + 1)), *v1 = malloc(sizeof(float) * (size_t)(nnz + 1));
        ops_sparsify_gather(p0, B, V, thresholds[hi], ip0, i0, v0);
        cutwin_sparsify_gather(p1, B, V, thresholds[hi], ip1, i1, v1);
        CHECK(memcmp(i0, i1, sizeof(int32_t) * (size_t)nnz) == 0);
        CHECK(memcmp(v0, v1, sizeof(float) * (size_t)nnz) == 0);
        if (topks[ti] > 0)
          for (int b = 0; b < B; b++) CHECK(nnz0[b] <= topks[ti]);
        CHECK(nnz0[B - 1] == 0);
        free(i0), free(i1), free(v0), free(v1);
        cases++;
      }
    }
  }
  /* The tie rule itself: equal weights, top_k 3 keeps the three lowest ids. */
  for (int v = 0; v < V; v++) p2[v] = 1.0f, bias[v] = 0.0f;
  cutwin_sparsify_weights(p2, bias, 1, V, 0.0f, 3, nnz1, NULL);
  CHECK(nnz1[0] == 3);
  CHECK(p2[0] > 0 && p2[1] > 0 && p2[2] > 0 && p2[3] == 0.0f && p2[V - 1] == 0.0f);
  printf("sparsify: radix-select top-k + tiled compaction equal ops_sparsify_* bit for bit in %d cases (%d mismatched)\n",
         cases, mismatched);
  free(p0), free(p1), free(p2), free(bias), free(scratch);
}

static void test_attention(void) {
  const int lens[] = {1, 7, 33, 64, 2, 129, 31, 32};
  const int n_docs = 8;
  int offsets[9] = {0};
  for (int b = 0; b < n_docs; b++) offsets[b + 1] = offsets[b] + lens[b];
  const int N = offsets[n_docs];
  const int head_dims[] = {8, 64, 96, 128};
  for (size_t hd = 0; hd < sizeof head_dims / sizeof *head_dims; hd++) {
    const int D = head_dims[hd], NH = D >= 96 ? 2 : 3, H = NH * D;
    float *qkv = malloc(sizeof(float) * (size_t)N * 3 * H);
    float *o0 = malloc(sizeof(float) * (size_t)N * H), *o1 = malloc(sizeof(float) * (size_t)N * H);
    float *s0 = malloc(sizeof(float) * ops_attention_scratch_floats(129, D));
    float *s1 = malloc(sizeof(float) * cutwin_attention_scratch_floats(D));
    for (size_t i = 0; i < (size_t)N * 3 * H; i++) qkv[i] = rng_uniform(-1.0f, 1.0f);
    ops_attention(qkv, offsets, n_docs, NH, D, s0, o0);
    cutwin_attention(qkv, offsets, n_docs, NH, D, s1, o1);
    double num = 0, den = 0, maxerr = 0;
    for (size_t i = 0; i < (size_t)N * H; i++) {
      double d = (double)o1[i] - o0[i];
      num += d * d;
      den += (double)o0[i] * o0[i];
      maxerr = fabs(d) > maxerr ? fabs(d) : maxerr;
    }
    double nerr = sqrt(num / (den > 0 ? den : 1));
    printf("attention D=%d: online softmax vs ops_attention: normalized err %.3g, max abs %.3g\n", D,
           nerr, maxerr);
    CHECK(nerr < 2e-6);
    CHECK(maxerr < 1e-5);
    free(qkv), free(o0), free(o1), free(s0), free(s1);
  }
}

static void test_decoder_blocks(void) {
  const int H = 24, V = 9000, B = 5; /* V: two full chunks and a ragged one */
  const int lens[5] = {1, 40, 3, 77, 9};
  int offsets[6] = {0};
  for (int b = 0; b < B; b++) offsets[b + 1] = offsets[b] + lens[b];
  const int N = offsets[B];
  float *rows = malloc(sizeof(float) * N * H), *w = malloc(sizeof(float) * (size_t)V * H);
  for (int i = 0; i < N * H; i++) rows[i] = rng_uniform(-1, 1);
  for (size_t i = 0; i < (size_t)V * H; i++) w[i] = rng_uniform(-1, 1);
  /* reference: the full (N, V) logits, max per doc */
  float *full = malloc(sizeof(float) * (size_t)N * V), *ref = malloc(sizeof(float) * B * V);
  ops_linear(rows, w, NULL, N, H, V, full, V);
  for (int b = 0; b < B; b++)
    for (int v = 0; v < V; v++) {
      float m = -INFINITY;
      for (int t = offsets[b]; t < offsets[b + 1]; t++) m = fmaxf(m, full[(size_t)t * V + v]);
      ref[(size_t)b * V + v] = m;
    }
  const int token_blocks[] = {N, 17, 1};
  for (int k = 0; k < 3; k++) {
    int tb = token_blocks[k];
    float *logits = malloc(sizeof(float) * (size_t)tb * CUTWIN_VOCAB_BLOCK);
    float *pooled = malloc(sizeof(float) * B * V);
    ops_fill(pooled, (size_t)B * V, -INFINITY);
    cutwin_decoder_maxpool(rows, w, N, H, V, offsets, B, tb, CUTWIN_VOCAB_BLOCK, logits, pooled);
    double maxerr = 0;
    for (int i = 0; i < B * V; i++) {
      double d = fabs((double)pooled[i] - ref[i]);
      maxerr = d > maxerr ? d : maxerr;
    }
    printf("decoder blocks (token block %d, vocab chunk %d): max abs diff to full logits %.3g\n", tb,
           CUTWIN_VOCAB_BLOCK, maxerr);
    CHECK(maxerr < 1e-5);
    free(logits), free(pooled);
  }
  free(rows), free(w), free(full), free(ref);
}

static void test_csr_to_csc(void) {
  const int R = 50, C = 37;
  int32_t indptr[51], *indices = malloc(sizeof(int32_t) * R * C);
  float *values = malloc(sizeof(float) * R * C);
  int nnz = 0;
  indptr[0] = 0;
  for (int r = 0; r < R; r++) {
    for (int c = 0; c < C; c++)
      if (r % 7 != 3 && rng_u32() % 4 == 0) { /* some empty rows */
        indices[nnz] = c;
        values[nnz] = (float)(r * 1000 + c);
        nnz++;
      }
    indptr[r + 1] = nnz;
  }
  int32_t colptr[38], *rowind = malloc(sizeof(int32_t) * (nnz + 1));
  float *cval = malloc(sizeof(float) * (nnz + 1));
  cutwin_csr_to_csc(indptr, indices, values, R, C, nnz, colptr, rowind, cval);
  CHECK(colptr[0] == 0 && colptr[C] == nnz);
  int k = 0, bad = 0;
  for (int c = 0; c < C; c++) {
    CHECK(colptr[c] == k);
    for (int r = 0; r < R; r++)
      for (int j = indptr[r]; j < indptr[r + 1]; j++)
        if (indices[j] == c) {
          bad += !(rowind[k] == r && cval[k] == values[j]);
          k++;
        }
  }
  CHECK(k == nnz);
  CHECK(bad == 0);
  printf("csr_to_csc: %d x %d, %d non-zeros, %d wrong\n", R, C, nnz, bad);
  free(indices), free(values), free(rowind), free(cval);
}

int main(void) {
  test_rounding();
  test_sparsify();
  test_attention();
  test_decoder_blocks();
  test_csr_to_csc();
  return check_report("test_cuda_twins");
}
