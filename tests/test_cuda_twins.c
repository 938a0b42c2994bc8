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
 *   - the fused decoder + max (cuda/decoder_maxpool.cu): the float-max merge rule against the
 *     order-preserving key and `b > a ? b : a` on special and random floats; the grid order is a
 *     bijection onto the tiles; the tile epilogue against ops_maxpool_logits on logits with NaN,
 *     +-inf, +-0 and negative-only columns, and the same bits with the tiles and runs walked in
 *     reverse (the device's order is arbitrary); the whole twin against full logits + max on ragged
 *     docs (T = 1, a doc over several token tiles, docs ending on row-group and tile edges, an
 *     empty doc, V not a multiple of the tile, more than one group of token tiles, negative
 *     logits only, all-zero rows): exact on inputs whose sums are exact in fp32, else 1e-5
 *   - the tensor-core attention's twin (cutwin_attention_mma, cuda/attention_mma.cu): with lp =
 *     fp32 against ops_attention (1e-6) on ragged docs (lengths 1 .. 512, around the 16-key
 *     chunks and the 64-key tiles), head dims 16 .. 128, 1 / 3 / 12 heads, with and without the
 *     bias; with fp16 / bf16 against ops_attention within a derived bound (and above a floor: the
 *     rounding must happen); outputs representable in lp; one document's output bit-identical
 *     when another's values change; the mma.sync m16n8k16 fragment layouts against the PTX ISA's
 *     per-element formulas, and the kernel's fragment walk (S = q k^T, P reused as the A operand
 *     of P V) simulated lane by lane against plain loops
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

/* cu_ulp is the gap to the next value of the type, for every positive finite fp16 and bf16 value
 * below the largest (the gap read off consecutive bit patterns), and cu_f32_to_bits /
 * cu_bits_to_f32 round-trip each of them. */
static void test_ulp(void) {
  const cu_dtype types[2] = {CU_F16, CU_BF16};
  const uint16_t last[2] = {0x7bfe, 0x7f7e}; /* one below the largest finite */
  for (int k = 0; k < 2; k++) {
    int bad = 0;
    for (uint32_t h = 0; h <= last[k]; h++) {
      const float v = cu_bits_to_f32((uint16_t)h, types[k]);
      const double gap = (double)cu_bits_to_f32((uint16_t)(h + 1), types[k]) - v;
      bad += cu_ulp(v, types[k]) != gap || cu_ulp(-v, types[k]) != gap;
      bad += cu_f32_to_bits(v, types[k]) != h;
    }
    CHECK(bad == 0);
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


/* ---- the fused decoder + max ---- */

static void test_fused_merge(void) {
  const float specials[] = {-INFINITY, -FLT_MAX, -1.5f, -FLT_MIN, -0x1p-149f, -0.0f, 0.0f,
                            0x1p-149f, FLT_MIN, 1.5f, FLT_MAX, INFINITY};
  enum { NS = sizeof specials / sizeof specials[0], NR = 4000 };
  float vals[NS + NR];
  for (int i = 0; i < NS; i++) vals[i] = specials[i];
  for (int i = NS; i < NS + NR; i++) {
    float f;
    do f = bits_to_float(rng_u32() ^ (rng_u32() << 16)); while (isnan(f));
    vals[i] = i % 3 ? f : vals[(int)(rng_u32() % (unsigned)i)]; /* repeats: a == b */
  }
  long bad_round = 0, bad_order = 0, bad_key = 0, bad_select = 0, bad_comm = 0, bad_id = 0;
  long pairs = 0;
  for (int i = 0; i < NS + NR; i++) {
    const float a = vals[i];
    uint32_t ab, mb;
    float back = cutwin_fmax_from_key(cutwin_fmax_key(a)), id = cutwin_fmax_merge(-INFINITY, a);
    memcpy(&ab, &a, 4);
    memcpy(&mb, &back, 4);
    bad_round += ab != mb;
    memcpy(&mb, &id, 4);
    bad_id += ab != mb;
    /* all pairs among the specials and the first 300 values, then random pairs */
    const int nj = i < 300 ? 300 : 20;
    for (int jj = 0; jj < nj; jj++) {
      const float b = i < 300 ? vals[jj] : vals[rng_u32() % (NS + NR)];
      pairs++;
      const uint32_t ka = cutwin_fmax_key(a), kb = cutwin_fmax_key(b);
      const int both_zero = a == 0.0f && b == 0.0f;
      if (!both_zero) bad_order += (a < b) != (ka < kb);
      else bad_order += (signbit(a) && !signbit(b)) != (ka < kb);
      const float m = cutwin_fmax_merge(a, b), m2 = cutwin_fmax_merge(b, a);
      const float mk = cutwin_fmax_from_key(ka > kb ? ka : kb);
      const float sel = b > a ? b : a;
      uint32_t u, uk, u2, us;
      memcpy(&u, &m, 4), memcpy(&uk, &mk, 4), memcpy(&u2, &m2, 4), memcpy(&us, &sel, 4);
      bad_key += u != uk;
      bad_comm += u != u2;
      bad_select += both_zero ? !(m == 0.0f) : u != us;
    }
  }
  /* the zero cases spelled out: +0 beats -0 in either order, -0 beats every negative */
  CHECK(!signbit(cutwin_fmax_merge(-0.0f, 0.0f)) && !signbit(cutwin_fmax_merge(0.0f, -0.0f)));
  CHECK(signbit(cutwin_fmax_merge(-INFINITY, -0.0f)) &&
        cutwin_fmax_merge(-INFINITY, -0.0f) == 0.0f);
  CHECK(signbit(cutwin_fmax_merge(-1.0f, -0.0f)) && signbit(cutwin_fmax_merge(-0.0f, -1.0f)));
  CHECK(cutwin_fmax_merge(-2.0f, -1.0f) == -1.0f && cutwin_fmax_merge(-1.0f, -2.0f) == -1.0f);
  CHECK(cutwin_fmax_merge(-1.0f, 2.0f) == 2.0f && cutwin_fmax_merge(2.0f, -1.0f) == 2.0f);
  CHECK(cutwin_fmax_merge(INFINITY, FLT_MAX) == INFINITY);
  printf("fused merge: %ld pairs: %ld round-trip, %ld order, %ld merge != key max, %ld merge != "
         "select (zeros: == 0), %ld not commutative, %ld identity failures\n",
         pairs, bad_round, bad_order, bad_key, bad_select, bad_comm, bad_id);
  CHECK(bad_round == 0 && bad_order == 0 && bad_key == 0 && bad_select == 0 && bad_comm == 0 &&
        bad_id == 0);
}

static void test_fused_grid_order(void) {
  const int shapes[][2] = {{1, 1},  {1, 239}, {5, 8},  {31, 5},
                           {32, 3}, {33, 7},  {70, 2}, {256, 239}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int ntt = shapes[s][0], nvt = shapes[s][1];
    unsigned char *seen = calloc((size_t)ntt * nvt, 1);
    int bad = 0;
    for (int blk = 0; blk < ntt * nvt; blk++) {
      int tt = -1, vt = -1;
      cutwin_fused_tile_of(blk, ntt, nvt, &tt, &vt);
      if (tt < 0 || tt >= ntt || vt < 0 || vt >= nvt || seen[(size_t)tt * nvt + vt]++) bad++;
      /* inside a group, the token tile is the fastest index */
      if (blk == 1 && ntt > 1) bad += !(tt == 1 && vt == 0);
    }
    CHECK(bad == 0);
    if (bad) fprintf(stderr, "fused grid order %d x %d: %d bad blocks\n", ntt, nvt, bad);
    free(seen);
  }
}

/* Tiles walked as the kernel does, each epilogue on a window of full logits (ld = V); reversed:
 * the blocks and the runs inside each block in the opposite order (the device has no order). */
static void fused_epilogue_walk(const float *logits, int N, int V, const int *off, int B,
                                float *pooled, int reversed) {
  const int ntt = (N + CUTWIN_FUSED_TOKEN_TILE - 1) / CUTWIN_FUSED_TOKEN_TILE;
  const int nvt = (V + CUTWIN_FUSED_VOCAB_TILE - 1) / CUTWIN_FUSED_VOCAB_TILE;
  for (int i = 0; i < ntt * nvt; i++) {
    int tt, vt;
    cutwin_fused_tile_of(reversed ? ntt * nvt - 1 - i : i, ntt, nvt, &tt, &vt);
    const int t0 = tt * CUTWIN_FUSED_TOKEN_TILE, v0 = vt * CUTWIN_FUSED_VOCAB_TILE;
    const int m = N - t0 < CUTWIN_FUSED_TOKEN_TILE ? N - t0 : CUTWIN_FUSED_TOKEN_TILE;
    const int c = V - v0 < CUTWIN_FUSED_VOCAB_TILE ? V - v0 : CUTWIN_FUSED_VOCAB_TILE;
    const float *tile = logits + (size_t)t0 * V + v0;
    if (!reversed)
      cutwin_fused_tile_epilogue(tile, V, t0, m, v0, c, off, B, pooled, V);
    else
      for (int g = CUTWIN_FUSED_ROW_GROUPS - 1; g >= 0; g--)
        cutwin_fused_run_epilogue(tile, V, t0, m, v0, c, g, off, B, pooled, V);
  }
}

/* lens -> offsets (B + 1); returns N. */
static int fused_offsets(const int *lens, int B, int *off) {
  off[0] = 0;
  for (int b = 0; b < B; b++) off[b + 1] = off[b] + lens[b];
  return off[B];
}

/* The ragged docs of the fused tests: doc 1 ends on the row-group edge 64, doc 2 = [64, 128)
 * fills a row group and ends on the tile edge, doc 3 = [128, 428) spans tiles 1..3, doc 4 is
 * empty, doc 5 ends on the tile edge 512 from inside row group 0 of tile 3, doc 8 = [518, 577)
 * ends one row past a group edge, doc 11 = [639, 645) starts one row before a tile edge, and the
 * last tile is ragged (N = 646). */
static const int fused_lens[] = {1, 63, 64, 300, 0, 84, 5, 1, 59, 3, 59, 6, 1};
enum { FUSED_B = 13 };

static void test_fused_epilogue(void) {
  int off[FUSED_B + 1];
  const int B = FUSED_B, N = fused_offsets(fused_lens, B, off), V = 300;
  float *logits = malloc(sizeof(float) * (size_t)N * V);
  float *ref = malloc(sizeof(float) * B * V), *got = malloc(sizeof(float) * B * V);
  float *rev = malloc(sizeof(float) * B * V);
  for (int t = 0; t < N; t++)
    for (int v = 0; v < V; v++) {
      float x = rng_uniform(-4, 4);
      const uint32_t k = rng_u32() % 64;
      if (v % 10 == 1) x = -fabsf(x) - 1.0f;           /* negative-only columns */
      if (v % 10 == 2) x = (t % 3) ? -0.0f : 0.0f;     /* zeros of both signs */
      if (v % 10 == 3) x = -0.0f;                      /* -0 only */
      if (v % 10 == 4) x = (t % 2) ? -0.0f : -1.0f;    /* -0 above negatives */
      if (v % 10 == 5) x = NAN;                        /* NaN only: stays -inf */
      if (v % 10 >= 6 || v % 10 == 0) {                /* scattered specials elsewhere */
        if (k == 0) x = NAN;
        if (k == 1) x = INFINITY;
        if (k == 2) x = -INFINITY;
      }
      logits[(size_t)t * V + v] = x;
    }
  ops_fill(ref, (size_t)B * V, -INFINITY);
  ops_fill(got, (size_t)B * V, -INFINITY);
  ops_fill(rev, (size_t)B * V, -INFINITY);
  ops_maxpool_logits(logits, V, 0, N, 0, V, off, B, ref, V);
  fused_epilogue_walk(logits, N, V, off, B, got, 0);
  fused_epilogue_walk(logits, N, V, off, B, rev, 1);
  CHECK(memcmp(got, rev, sizeof(float) * B * V) == 0); /* bit for bit, zero signs included */
  int bad = 0, nan = 0, zero_sign = 0, neg_inf = 0;
  for (int i = 0; i < B * V; i++) {
    uint32_t a, b;
    memcpy(&a, &ref[i], 4), memcpy(&b, &got[i], 4);
    nan += isnan(got[i]);
    neg_inf += got[i] == -INFINITY;
    if (a == b) continue;
    if (ref[i] == 0.0f && got[i] == 0.0f) zero_sign++;
    else bad++;
  }
  /* a column with +0 and -0 in a doc spanning tiles: +0 whatever came first (merge order) */
  for (int v = 2; v < V; v += 10) CHECK(got[3 * V + v] == 0.0f && !signbit(got[3 * V + v]));
  for (int v = 3; v < V; v += 10) CHECK(got[3 * V + v] == 0.0f && signbit(got[3 * V + v]));
  for (int v = 5; v < V; v += 10) CHECK(got[3 * V + v] == -INFINITY);
  for (int v = 0; v < V; v++) CHECK(got[4 * V + v] == -INFINITY); /* the empty doc */
  printf("fused epilogue vs ops_maxpool_logits (N=%d V=%d, NaN/inf/+-0 logits): %d differ, "
         "%d zeros differ in sign only, %d NaN, %d -inf\n", N, V, bad, zero_sign, nan, neg_inf);
  CHECK(bad == 0 && nan == 0);
  free(logits), free(ref), free(got), free(rev);
}

/* The whole twin against full logits + max. mode 0: uniform inputs; 1: inputs on a 1/8 grid
 * (|x| <= 1, H <= 64: every partial sum is a multiple of 1/64 below 2^18, exact in any order);
 * 2: the grid with rows > 0 and weights < 0 (negative logits only); 3: the grid with doc 3's
 * rows all zero (zero logits over three tiles). */
static void fused_case(const char *name, const int *lens, int B, int H, int V, int mode) {
  int *off = malloc(sizeof(int) * (B + 1));
  const int N = fused_offsets(lens, B, off);
  float *rows = malloc(sizeof(float) * (size_t)N * H), *w = malloc(sizeof(float) * (size_t)V * H);
  for (size_t i = 0; i < (size_t)N * H; i++) {
    if (mode == 0) rows[i] = rng_uniform(-1, 1);
    else if (mode == 2) rows[i] = (float)(1 + rng_u32() % 8) / 8.0f;
    else rows[i] = (float)((int)(rng_u32() % 17) - 8) / 8.0f;
  }
  if (mode == 3 && B > 3)
    for (size_t i = (size_t)off[3] * H; i < (size_t)off[4] * H; i++) rows[i] = 0.0f;
  for (size_t i = 0; i < (size_t)V * H; i++) {
    if (mode == 0) w[i] = rng_uniform(-1, 1);
    else if (mode == 2) w[i] = -(float)(1 + rng_u32() % 8) / 8.0f;
    else w[i] = (float)((int)(rng_u32() % 17) - 8) / 8.0f;
  }
  float *full = malloc(sizeof(float) * (size_t)N * V), *ref = malloc(sizeof(float) * B * V);
  float *got = malloc(sizeof(float) * B * V);
  float *tile = malloc(sizeof(float) * CUTWIN_FUSED_TOKEN_TILE * CUTWIN_FUSED_VOCAB_TILE);
  ops_linear(rows, w, NULL, N, H, V, full, V);
  ops_fill(ref, (size_t)B * V, -INFINITY);
  ops_maxpool_logits(full, V, 0, N, 0, V, off, B, ref, V);
  ops_fill(got, (size_t)B * V, -INFINITY);
  cutwin_decoder_maxpool_fused(rows, w, N, H, V, off, B, tile, got);
  double maxerr = 0;
  int neq = 0, nan = 0, positive = 0;
  for (int i = 0; i < B * V; i++) {
    nan += isnan(got[i]);
    positive += got[i] > 0;
    neq += !(got[i] == ref[i]);
    const double d = (got[i] == ref[i]) ? 0.0 : fabs((double)got[i] - ref[i]);
    maxerr = d > maxerr ? d : maxerr;
  }
  const double tol = mode == 0 ? 1e-5 : 0.0;
  printf("fused twin %-28s N=%-5d H=%-3d V=%-5d mode %d: %d of %d differ, max abs %.3g (tol %g)\n",
         name, N, H, V, mode, neq, B * V, maxerr, tol);
  CHECK(nan == 0);
  CHECK(maxerr <= tol);
  if (mode != 0) CHECK(neq == 0);
  if (mode == 2) CHECK(positive == 0);
  if (mode == 3 && B > 3)
    for (int v = 0; v < V; v++) CHECK(got[3 * V + v] == 0.0f);
  for (int b = 0; b < B; b++) /* empty docs keep -inf, the others do not */
    CHECK((off[b + 1] == off[b]) == (got[(size_t)b * V] == -INFINITY));
  free(off), free(rows), free(w), free(full), free(ref), free(got), free(tile);
}

static void test_fused_decoder(void) {
  const int one[] = {1};
  fused_case("T=1", one, 1, 32, 300, 0);
  fused_case("T=1", one, 1, 32, 300, 1);
  for (int mode = 0; mode < 4; mode++)
    fused_case("tile edges, empty doc", fused_lens, FUSED_B, 48, 1000, mode);
  /* more than one group of token tiles (N >= 4481: at least 36 tiles, groups of 32) */
  int lens[40];
  for (int b = 0; b < 40; b++) lens[b] = 1 + (int)(rng_u32() % 230);
  lens[7] = 700; /* spans six tiles */
  int n = 0;
  for (int b = 0; b < 40; b++) n += lens[b];
  if (n < 4481) lens[39] += 4481 - n;
  fused_case("40 docs, two tile groups", lens, 40, 16, 260, 0);
  fused_case("40 docs, two tile groups", lens, 40, 16, 260, 1);
}

/* Long documents (enc_rows): both decoder routes pool by row offsets, a row being several
 * consecutive sequences (windows), and a row may span batches as enc_cuda_submit does it: the
 * unfinished last row copied to carry before sparsify; the next batch pools from -inf, then
 * merges carry into its row 0 as one logit row (maxpool_logits). Preloading carry instead would
 * be wrong on the fused route, which stores a row lying within one row group without merging.
 * Values on a 1/8 grid keep every dot product exact, so all must agree bit for bit with the max
 * over the per-sequence pools. */
static void test_window_rows(void) {
  enum { S = 10, R = 4, H = 8, V = 700 };
  const int lens[S] = {64, 64, 64, 20, 64, 5, 64, 64, 64, 64};
  const int row_seqs[R] = {3, 1, 2, 4};
  int seq_off[S + 1], row_off[R + 1];
  seq_off[0] = 0;
  for (int i = 0; i < S; i++) seq_off[i + 1] = seq_off[i] + lens[i];
  row_off[0] = 0;
  for (int r = 0, q = 0; r < R; r++) {
    q += row_seqs[r];
    row_off[r + 1] = seq_off[q];
  }
  const int N = seq_off[S];
  float *rows = malloc(sizeof(float) * (size_t)N * H), *w = malloc(sizeof(float) * (size_t)V * H);
  for (size_t i = 0; i < (size_t)N * H; i++) rows[i] = (float)((int)(rng_u32() % 17) - 8) / 8.0f;
  for (size_t i = 0; i < (size_t)V * H; i++) w[i] = (float)((int)(rng_u32() % 17) - 8) / 8.0f;
  float *full = malloc(sizeof(float) * (size_t)N * V), *per_seq = malloc(sizeof(float) * S * V);
  float *ref = malloc(sizeof(float) * R * V), *got = malloc(sizeof(float) * R * V);
  float *carry = malloc(sizeof(float) * V);
  float *tile = malloc(sizeof(float) * CUTWIN_FUSED_TOKEN_TILE * CUTWIN_FUSED_VOCAB_TILE);
  float *logits = malloc(sizeof(float) * 17 * CUTWIN_VOCAB_BLOCK);
  ops_linear(rows, w, NULL, N, H, V, full, V);
  ops_fill(per_seq, (size_t)S * V, -INFINITY);
  ops_maxpool_logits(full, V, 0, N, 0, V, seq_off, S, per_seq, V);
  for (int r = 0, q = 0; r < R; r++)
    for (int v = 0; v < V; v++) {
      float m = -INFINITY;
      for (int k = 0; k < row_seqs[r]; k++) m = fmaxf(m, per_seq[(size_t)(q + k) * V + v]);
      ref[(size_t)r * V + v] = m;
      if (v == V - 1) q += row_seqs[r];
    }
  for (int route = 0; route < 2; route++) {
    /* One batch. */
    ops_fill(got, (size_t)R * V, -INFINITY);
    if (route)
      cutwin_decoder_maxpool_fused(rows, w, N, H, V, row_off, R, tile, got);
    else
      cutwin_decoder_maxpool(rows, w, N, H, V, row_off, R, 17, CUTWIN_VOCAB_BLOCK, logits, got);
    int neq = 0;
    for (int i = 0; i < R * V; i++) neq += !(got[i] == ref[i]);
    /* Two batches: rows 0-1 and the first window of row 2 (unfinished); row 2's other window and
     * row 3 (continues). Batch rows are relative: offsets start at 0 in each batch. */
    const int cut = seq_off[5]; /* sequences 0-4 | 5-9 */
    const int off1[4] = {0, row_off[1], row_off[2], cut};
    const int off2[3] = {0, row_off[3] - cut, row_off[4] - cut};
    float *b1 = malloc(sizeof(float) * 3 * V), *b2 = malloc(sizeof(float) * 2 * V);
    ops_fill(b1, (size_t)3 * V, -INFINITY);
    if (route)
      cutwin_decoder_maxpool_fused(rows, w, cut, H, V, off1, 3, tile, b1);
    else
      cutwin_decoder_maxpool(rows, w, cut, H, V, off1, 3, 17, CUTWIN_VOCAB_BLOCK, logits, b1);
    memcpy(carry, b1 + 2 * V, sizeof(float) * V);
    ops_fill(b2, (size_t)2 * V, -INFINITY);
    const float *rows2 = rows + (size_t)cut * H;
    if (route)
      cutwin_decoder_maxpool_fused(rows2, w, N - cut, H, V, off2, 2, tile, b2);
    else
      cutwin_decoder_maxpool(rows2, w, N - cut, H, V, off2, 2, 17, CUTWIN_VOCAB_BLOCK, logits, b2);
    const int unit[2] = {0, 1};
    ops_maxpool_logits(carry, V, 0, 1, 0, V, unit, 1, b2, V);
    int neq_split = 0;
    for (int i = 0; i < 2 * V; i++) neq_split += !(b1[i] == ref[i]);
    for (int i = 0; i < 2 * V; i++) neq_split += !(b2[i] == ref[2 * V + i]);
    printf("window rows, %s route: %d of %d differ in one batch, %d split over two batches\n",
           route ? "fused" : "chunked", neq, R * V, neq_split);
    CHECK(neq == 0);
    CHECK(neq_split == 0);
    free(b1), free(b2);
  }
  free(rows), free(w), free(full), free(per_seq), free(ref), free(got), free(carry), free(tile);
  free(logits);
}

/* ---- attention on tensor cores (cutwin_attention_mma) ---- */

/* The PTX ISA's element formulas for mma.m16n8k16 with .f16 / .bf16 operands and .f32
 * accumulators, written as the ISA states them (element i of a lane's fragment), against the
 * per-register helpers of cuda_twins.h; and every matrix element held exactly once per warp. */
static void test_mma_fragments(void) {
  int a_seen[16][16] = {{0}}, b_seen[16][8] = {{0}}, c_seen[16][8] = {{0}}, bad = 0;
  for (int lane = 0; lane < 32; lane++) {
    const int group = lane >> 2, tig = lane % 4;
    for (int i = 0; i < 8; i++) { /* A: a0 .. a7, two per 32-bit register, low half first */
      const int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
      const int col = i < 4 ? tig * 2 + (i & 1) : tig * 2 + (i & 1) + 8;
      bad += cutwin_mma_a_row(lane, i / 2) != row || cutwin_mma_a_col(lane, i / 2) + (i & 1) != col;
      a_seen[row][col]++;
    }
    for (int i = 0; i < 4; i++) { /* B: b0 .. b3 */
      const int row = i < 2 ? tig * 2 + (i & 1) : tig * 2 + (i & 1) + 8, col = group;
      bad += cutwin_mma_b_k(lane, i / 2) + (i & 1) != row || cutwin_mma_b_n(lane) != col;
      b_seen[row][col]++;
    }
    for (int i = 0; i < 4; i++) { /* C, D: c0 .. c3 */
      const int row = i < 2 ? group : group + 8, col = tig * 2 + (i & 1);
      bad += cutwin_mma_c_row(lane, i) != row || cutwin_mma_c_col(lane, i) != col;
      c_seen[row][col]++;
    }
  }
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) bad += a_seen[r][c] != 1 || (c < 8 && (b_seen[r][c] != 1 || c_seen[r][c] != 1));
  printf("attention_mma: m16n8k16 fragment helpers match the PTX ISA formulas (%d mismatches)\n", bad);
  CHECK(bad == 0);
}

/* One mma.sync m16n8k16 of a warp, simulated: the lanes' registers (two elements each, the low
 * half first: here a pair of floats) are scattered into A, B, C by the ISA's layout (the helpers
 * checked above), D = A B + C computed, and gathered back into the lanes' C registers. */
static void sim_mma(float d[32][4], float a[32][4][2], float b[32][2][2]) {
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; lane++) {
    for (int r = 0; r < 4; r++)
      for (int e = 0; e < 2; e++) A[cutwin_mma_a_row(lane, r)][cutwin_mma_a_col(lane, r) + e] = a[lane][r][e];
    for (int r = 0; r < 2; r++)
      for (int e = 0; e < 2; e++) B[cutwin_mma_b_k(lane, r) + e][cutwin_mma_b_n(lane)] = b[lane][r][e];
    for (int i = 0; i < 4; i++) C[cutwin_mma_c_row(lane, i)][cutwin_mma_c_col(lane, i)] = d[lane][i];
  }
  for (int lane = 0; lane < 32; lane++)
    for (int i = 0; i < 4; i++) {
      const int row = cutwin_mma_c_row(lane, i), col = cutwin_mma_c_col(lane, i);
      double acc = C[row][col];
      for (int k = 0; k < 16; k++) acc += (double)A[row][k] * B[k][col];
      d[lane][i] = (float)acc;
    }
}

/* The kernel's fragment walk for one warp and one key tile, lane by lane, with its index
 * expressions (shared memory as row-major float arrays with the kernel's row strides: K tile
 * (key, dim), V transposed (dim, key)): S = q k^T from the q registers and K rows; then P = S
 * reused as the A operand (registers 2kc | 2kc+1 of S) of O = P V. Compared with plain loops.
 * Values are small integers, so every sum is exact in any order. */
static void test_mma_warp_walk(void) {
  enum { D = 32, KT = CUTWIN_MMA_KEY_TILE, KS = D + 8, VS = KT + 8 };
  static float q[16][D], ks[KT][KS], vt[D][VS];
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < D; c++) q[r][c] = (float)((int)(rng_u32() % 7) - 3);
  for (int j = 0; j < KT; j++)
    for (int c = 0; c < D; c++) {
      ks[j][c] = (float)((int)(rng_u32() % 7) - 3);
      vt[c][j] = (float)((int)(rng_u32() % 5) - 2);
    }
  static float qa[D / 16][32][4][2], s[KT / 8][32][4], o[D / 8][32][4];
  for (int lane = 0; lane < 32; lane++) /* the q fragments, as the kernel loads them */
    for (int kk = 0; kk < D / 16; kk++)
      for (int r = 0; r < 4; r++)
        for (int e = 0; e < 2; e++)
          qa[kk][lane][r][e] = q[cutwin_mma_a_row(lane, r)][16 * kk + cutwin_mma_a_col(lane, r) + e];
  memset(s, 0, sizeof s);
  memset(o, 0, sizeof o);
  for (int nb = 0; nb < KT / 8; nb++)
    for (int kk = 0; kk < D / 16; kk++) {
      float b[32][2][2];
      for (int lane = 0; lane < 32; lane++)
        for (int r = 0; r < 2; r++)
          for (int e = 0; e < 2; e++)
            b[lane][r][e] = ks[8 * nb + cutwin_mma_b_n(lane)][16 * kk + cutwin_mma_b_k(lane, r) + e];
      sim_mma(s[nb], qa[kk], b);
    }
  int bad_s = 0, bad_o = 0;
  for (int lane = 0; lane < 32; lane++)
    for (int nb = 0; nb < KT / 8; nb++)
      for (int i = 0; i < 4; i++) {
        const int row = cutwin_mma_c_row(lane, i), key = 8 * nb + cutwin_mma_c_col(lane, i);
        float want = 0.0f;
        for (int c = 0; c < D; c++) want += q[row][c] * ks[key][c];
        bad_s += s[nb][lane][i] != want;
      }
  for (int kc = 0; kc < KT / 16; kc++) {
    float pa[32][4][2];
    for (int lane = 0; lane < 32; lane++) { /* the kernel's pack of two C fragments into A */
      pa[lane][0][0] = s[2 * kc][lane][0], pa[lane][0][1] = s[2 * kc][lane][1];
      pa[lane][1][0] = s[2 * kc][lane][2], pa[lane][1][1] = s[2 * kc][lane][3];
      pa[lane][2][0] = s[2 * kc + 1][lane][0], pa[lane][2][1] = s[2 * kc + 1][lane][1];
      pa[lane][3][0] = s[2 * kc + 1][lane][2], pa[lane][3][1] = s[2 * kc + 1][lane][3];
    }
    for (int nb = 0; nb < D / 8; nb++) {
      float b[32][2][2];
      for (int lane = 0; lane < 32; lane++)
        for (int r = 0; r < 2; r++)
          for (int e = 0; e < 2; e++)
            b[lane][r][e] = vt[8 * nb + cutwin_mma_b_n(lane)][16 * kc + cutwin_mma_b_k(lane, r) + e];
      sim_mma(o[nb], pa, b);
    }
  }
  for (int lane = 0; lane < 32; lane++)
    for (int nb = 0; nb < D / 8; nb++)
      for (int i = 0; i < 4; i++) {
        const int row = cutwin_mma_c_row(lane, i), col = 8 * nb + cutwin_mma_c_col(lane, i);
        double want = 0.0;
        for (int j = 0; j < KT; j++) {
          double sj = 0.0;
          for (int c = 0; c < D; c++) sj += (double)q[row][c] * ks[j][c];
          want += sj * vt[col][j];
        }
        bad_o += o[nb][lane][i] != (float)want;
      }
  printf("attention_mma: simulated warp walk (D=%d, %d keys): S %d and O %d elements differ from plain loops\n",
         D, KT, bad_s, bad_o);
  CHECK(bad_s == 0);
  CHECK(bad_o == 0);
}

static const int mma_lens[] = {1, 2, 15, 16, 17, 63, 64, 65, 130, 512};
enum { MMA_DOCS = sizeof mma_lens / sizeof *mma_lens };

/* Normalized error ||a - b|| / ||b|| over n floats, and the max abs difference. */
static double norm_err(const float *a, const float *b, size_t n, double *maxabs) {
  double num = 0, den = 0;
  *maxabs = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
    if (!(fabs(d) <= *maxabs)) *maxabs = fabs(d); /* NaN: infinite */
  }
  return isnan(num) ? INFINITY : sqrt(num / (den > 0 ? den : 1));
}

/* The fp16 / bf16 bound: with u = 2^-11 (fp16) or 2^-8 (bf16), the unit roundoff, the twin
 * rounds q, k, v, p and the output once each. Each rounding moves its value by a relative error
 * uniform in [-u, u] (rms u / sqrt 3), independent across elements; the output is a weighted mean
 * of v rows (weights p / l), so the v, p and output roundings each add ~u / sqrt 3 relative to it,
 * and the q, k roundings move a score by ~u |q| |k| (a few u for |scores| <= 1 here), which moves
 * the weights by the same relative amount: at most about 1.2 u in all to first order (measured
 * 0.4 - 0.7 u on these shapes: printed below). The check allows 4 u, and requires at least u / 8
 * (the roundings must have happened: fp32 gives ~3e-7). */
static void test_attention_mma(void) {
  static const int dims[][2] = {{16, 1}, {16, 12}, {32, 3}, {64, 1}, {64, 12}, {128, 3}, {128, 1}};
  int offsets[MMA_DOCS + 1] = {0};
  for (int b = 0; b < MMA_DOCS; b++) offsets[b + 1] = offsets[b] + mma_lens[b];
  const int N = offsets[MMA_DOCS];
  for (int d = 0; d <= 256; d++)
    CHECK(cutwin_attention_mma_supported(d) == (d >= 16 && d <= 128 && d % 16 == 0));
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
    const int D = dims[di][0], NH = dims[di][1], H = NH * D;
    const size_t nqkv = (size_t)N * 3 * H, nout = (size_t)N * H;
    float *qkv = malloc(sizeof(float) * nqkv), *qkvb = malloc(sizeof(float) * nqkv);
    float *bias = malloc(sizeof(float) * 3 * H);
    float *ref = malloc(sizeof(float) * nout), *refb = malloc(sizeof(float) * nout);
    float *twin = malloc(sizeof(float) * nout);
    float *s0 = malloc(sizeof(float) * ops_attention_scratch_floats(512, D));
    float *s1 = malloc(sizeof(float) * cutwin_attention_mma_scratch_floats(D));
    for (size_t i = 0; i < nqkv; i++) qkv[i] = rng_uniform(-1.0f, 1.0f);
    for (int i = 0; i < 3 * H; i++) bias[i] = rng_uniform(-0.5f, 0.5f);
    for (size_t i = 0; i < nqkv; i++) qkvb[i] = qkv[i] + bias[i % (3 * (size_t)H)];
    ops_attention(qkv, offsets, MMA_DOCS, NH, D, s0, ref);
    ops_attention(qkvb, offsets, MMA_DOCS, NH, D, s0, refb);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      const float *want = with_bias ? refb : ref;
      for (int t = 0; t < 3; t++) {
        const cu_dtype lp = (cu_dtype)t;
        /* fp32 in both cases; fp16 / bf16 alternate the bias per shape (half the time) */
        if (lp != CU_F32 && (int)((di + (size_t)t) % 2) != with_bias) continue;
        for (size_t i = 0; i < nout; i++) twin[i] = NAN;
        cutwin_attention_mma(qkv, with_bias ? bias : NULL, offsets, MMA_DOCS, NH, D, lp, s1, twin);
        double maxabs, err = norm_err(twin, want, nout, &maxabs);
        size_t unrepresentable = 0;
        for (size_t i = 0; i < nout; i++) unrepresentable += cu_round(twin[i], lp) != twin[i];
        const double u = lp == CU_F16 ? ldexp(1.0, -11) : lp == CU_BF16 ? ldexp(1.0, -8) : 0.0;
        const double hi = lp == CU_F32 ? 1e-6 : 4 * u, lo = u / 8;
        const int ok = err <= hi && (lp == CU_F32 || err >= lo) && unrepresentable == 0;
        printf("attention_mma twin %s D=%-3d heads=%-2d bias=%d vs ops_attention: norm err %.3g "
               "(%.2f u) max abs %.3g, bound %.3g%s\n",
               cu_dtype_name(lp), D, NH, with_bias, err, u > 0 ? err / u : 0.0, maxabs, hi,
               ok ? "" : "  FAIL");
        CHECK(err <= hi);
        if (lp != CU_F32) CHECK(err >= lo);
        CHECK(unrepresentable == 0);
      }
    }
    free(qkv), free(qkvb), free(bias), free(ref), free(refb), free(twin), free(s0), free(s1);
  }
}

/* Changing one document's q, k and v values (and the rows of every other document but b) leaves
 * document b's output unchanged, bit for bit. */
static void test_attention_mma_isolation(void) {
  const int D = 32, NH = 2, H = NH * D;
  int offsets[MMA_DOCS + 1] = {0};
  for (int b = 0; b < MMA_DOCS; b++) offsets[b + 1] = offsets[b] + mma_lens[b];
  const int N = offsets[MMA_DOCS];
  const size_t nqkv = (size_t)N * 3 * H, nout = (size_t)N * H;
  float *qkv = malloc(sizeof(float) * nqkv), *bias = malloc(sizeof(float) * 3 * H);
  float *o0 = malloc(sizeof(float) * nout), *o1 = malloc(sizeof(float) * nout);
  float *s1 = malloc(sizeof(float) * cutwin_attention_mma_scratch_floats(D));
  for (size_t i = 0; i < nqkv; i++) qkv[i] = rng_uniform(-1.0f, 1.0f);
  for (int i = 0; i < 3 * H; i++) bias[i] = rng_uniform(-0.5f, 0.5f);
  cutwin_attention_mma(qkv, bias, offsets, MMA_DOCS, NH, D, CU_F16, s1, o0);
  int changed_elsewhere = 0, changed_self = 0;
  for (int b = 0; b < MMA_DOCS; b++) {
    /* document b's rows get new values (a big one too), then the others are compared */
    float *saved = malloc(sizeof(float) * (size_t)mma_lens[b] * 3 * H);
    memcpy(saved, qkv + (size_t)offsets[b] * 3 * H, sizeof(float) * (size_t)mma_lens[b] * 3 * H);
    for (size_t i = (size_t)offsets[b] * 3 * H; i < (size_t)offsets[b + 1] * 3 * H; i++)
      qkv[i] = rng_uniform(-4.0f, 4.0f);
    cutwin_attention_mma(qkv, bias, offsets, MMA_DOCS, NH, D, CU_F16, s1, o1);
    for (int c = 0; c < MMA_DOCS; c++) {
      const size_t from = (size_t)offsets[c] * H, to = (size_t)offsets[c + 1] * H;
      const int same = memcmp(o0 + from, o1 + from, sizeof(float) * (to - from)) == 0;
      if (c != b) changed_elsewhere += !same;
      else changed_self += !same;
    }
    memcpy(qkv + (size_t)offsets[b] * 3 * H, saved, sizeof(float) * (size_t)mma_lens[b] * 3 * H);
    free(saved);
  }
  printf("attention_mma twin: changing one document's values changed %d other documents' outputs, "
         "its own in %d of %d cases\n", changed_elsewhere, changed_self, MMA_DOCS);
  CHECK(changed_elsewhere == 0);
  CHECK(changed_self == MMA_DOCS); /* the check sees a change where there is one */
  free(qkv), free(bias), free(o0), free(o1), free(s1);
}

int main(void) {
  test_rounding();
  test_ulp();
  test_sparsify();
  test_attention();
  test_decoder_blocks();
  test_csr_to_csc();
  test_fused_merge();
  test_fused_grid_order();
  test_fused_epilogue();
  test_fused_decoder();
  test_window_rows();
  test_mma_fragments();
  test_mma_warp_walk();
  test_attention_mma();
  test_attention_mma_isolation();
  return check_report("test_cuda_twins");
}
