/* test_ops_gpu: every CUDA op against its CPU twin (ops_cpu.h, cuda_twins.h, cu_dtype.h), on shapes
 * that include T = 1, odd lengths and ragged batches, at fp32 and (for the ops that write GEMM
 * operands) fp16 / bf16. Prints the normalized error ||gpu - cpu|| / ||cpu|| and the max abs
 * error of every case next to its tolerance. Outputs are poisoned (0xff bytes: NaN floats, -1
 * ints) before each run, so a value the kernel failed to write shows up as an error.
 * Exits 77 (ctest: Not Run) when built without CUDA or when no CUDA device is usable.
 * `--small`: small shapes only, for compute-sanitizer (scripts/gpu_check.sh).
 * `--bench`: once every check passed, times each op at the shapes of one batch of the real job
 *   (efficient-splade, 16384-token batches of ~80-token passages, fp16) and prints ms per call,
 *   TFLOP/s or GB/s and the op's share of a batch (bench_all below; scripts/gpu_check.sh).
 *
 * Tolerance table (normalized error unless said otherwise):
 *   op                  fp32        fp16 / bf16 copy
 *   embed_layernorm     1e-6        bit-equal to cu_convert(gpu fp32 output)
 *   residual_layernorm  1e-6        bit-equal to cu_convert(gpu fp32 output)
 *   bias_gelu           1e-6        bit-equal to cu_convert(gpu fp32 output)
 *   attention           2e-6        bit-equal to cu_convert(gpu fp32 output)
 *   linear (cuBLAS)     1e-5        1e-5 against fp32 math on the same rounded operands
 *                       (K up to 3072: summation order alone moves fp32 results by ~eps*sqrt(K));
 *                       with an fp16 / bf16 output: each element within 1 ulp of the type of
 *                       the fp32 math + 1e-5 x its rms (the lp activations route)
 *   residual_layernorm with an fp16 / bf16 x: 1e-6 against the twin on the widened x
 *   bias_gelu_lp        each element within 1 ulp of the type of the twin's fp32 result
 *                       (+ 1e-6: erff against the twin's rational erf)
 *   refusals            linear: lp output with a bias or another operand type; bias_gelu_lp:
 *                       fp32 (ERR_ARG, checked before any device call)
 *   maxpool_logits      exact       exact (fp16 / bf16 logits: the twin on the widened values)
 *   decoder_maxpool     -           1e-5 against fp32 math on the same rounded operands (the
 *                                   chunked twin cutwin_decoder_maxpool, and for small shapes the
 *                                   fused twin); exact (0) on operands on a 1/8 grid, whose sums
 *                                   are exact in fp32 in any order; fp32 operands: ERR_ARG
 *   fill, row_offsets, sparsify_gather, csr_to_csc, convert: exact
 *   sparsify_weights    same kept ids and row counts; values 1e-6 relative (log1pf may differ
 *                       by an ulp between the device and libm; inputs on a 2^-8 grid keep the
 *                       ranking identical)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef SPLADEX_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "attention.h"
#include "bias_gelu.h"
#include "convert.h"
#include "decoder_maxpool.h"
#include "csr_to_csc.h"
#include "cu_check.h"
#include "cu_dtype.h"
#include "cuda_twins.h"
#include "embed_layernorm.h"
#include "err.h"
#include "fill.h"
#include "linear.h"
#include "maxpool_logits.h"
#include "ops_cpu.h"
#include "residual_layernorm.h"
#include "row_offsets.h"
#include "sparsify_gather.h"
#include "sparsify_weights.h"

static int small_only;
static int wgmma_ok; /* decoder_maxpool_wgmma_supported() on this device */
static cudaStream_t S;
static cublasHandle_t blas;

/* ---- helpers ---- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rng_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static float rng_uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)(rng_u32() >> 8) / 16777216.0f;
}
static float *host_random(size_t n, float lo, float hi) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) p[i] = rng_uniform(lo, hi);
  return p;
}

enum { MAX_ALLOCS = 64 };
static void *allocs[MAX_ALLOCS];
static int n_allocs;

/* Device buffer of `bytes`, poisoned with 0xff bytes; NULL (and a failed check) on error. */
static void *dev_poison(size_t bytes) {
  void *d = NULL;
  if (bytes == 0) bytes = 4;
  if (n_allocs == MAX_ALLOCS || CU_CHECK(cudaMalloc(&d, bytes)) < 0 ||
      CU_CHECK(cudaMemset(d, 0xff, bytes)) < 0) {
    fprintf(stderr, "test_ops_gpu: %s\n", err_msg());
    CHECK(!"device allocation");
    return NULL;
  }
  allocs[n_allocs++] = d;
  return d;
}

static void *dev_copy(const void *h, size_t bytes) {
  void *d = dev_poison(bytes);
  if (d && bytes && CU_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)) < 0) {
    fprintf(stderr, "test_ops_gpu: %s\n", err_msg());
    CHECK(!"upload");
  }
  return d;
}

static void to_host(void *h, const void *d, size_t bytes) {
  if (CU_CHECK(cudaStreamSynchronize(S)) < 0 ||
      (bytes && CU_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)) < 0)) {
    fprintf(stderr, "test_ops_gpu: %s\n", err_msg());
    CHECK(!"download");
    memset(h, 0xff, bytes);
  }
}

static void dev_free_all(void) {
  for (int i = 0; i < n_allocs; i++) cudaFree(allocs[i]);
  n_allocs = 0;
}

/* A launcher's return code: 0 expected. */
static int launched(int rc, const char *op) {
  if (rc < 0) {
    fprintf(stderr, "test_ops_gpu: %s failed: %s\n", op, err_msg());
    CHECK(!"launch");
    return 0;
  }
  return 1;
}

/* Prints and checks the normalized error of gpu against cpu (a NaN anywhere counts as infinite). */
static void compare(const char *op, const char *prec, const char *shape, const float *gpu,
                    const float *cpu, size_t n, double tol) {
  double num = 0, den = 0, maxabs = 0;
  int nan = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isnan(gpu[i]) != !isnan(cpu[i])) nan = 1;
    if (isnan(cpu[i])) continue;
    double d = (double)gpu[i] - cpu[i];
    num += d * d;
    den += (double)cpu[i] * cpu[i];
    if (fabs(d) > maxabs) maxabs = fabs(d);
  }
  double err = nan ? INFINITY : sqrt(num / (den > 0 ? den : 1.0));
  int ok = err <= tol;
  printf("%-20s %-5s %-28s norm err %-10.3g max abs %-10.3g tol %-8.1g %s\n", op, prec, shape, err,
         maxabs, tol, ok ? "ok" : "FAIL");
  CHECK(ok);
}

/* The lp copy must be exactly the fp32 output rounded by the CPU twin. */
static void compare_lp(const char *op, cu_dtype t, const char *shape, const void *d_lp,
                       const float *gpu_f32, size_t n) {
  uint16_t *got = malloc(2 * (n ? n : 1)), *want = malloc(2 * (n ? n : 1));
  to_host(got, d_lp, 2 * n);
  cu_convert(gpu_f32, n, t, want);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += got[i] != want[i];
  printf("%-20s %-5s %-28s %zu of %zu rounded copies differ from cu_convert %s\n", op,
         cu_dtype_name(t), shape, bad, n, bad ? "FAIL" : "ok");
  CHECK(bad == 0);
  free(got), free(want);
}

/* n elements of type t (fp16 / bf16) on the device, widened into out. */
static void lp_to_host(float *out, const void *d_lp, cu_dtype t, size_t n) {
  uint16_t *h = malloc(2 * (n ? n : 1));
  to_host(h, d_lp, 2 * n);
  for (size_t i = 0; i < n; i++)
    out[i] = cu_bits_to_f32(h[i], t);
  free(h);
}

/* An fp16 / bf16 output against the fp32 result of the twin (unrounded): every element within
 * 1 ulp of t at the twin's magnitude, plus abs_tol (the fp32-level difference of the two
 * computations); prints how many equal the twin rounded (cu_round) exactly. */
static void compare_ulp(const char *op, cu_dtype t, const char *shape, const float *got,
                        const float *want, size_t n, double abs_tol) {
  size_t bad = 0, exact = 0;
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    const double w = want[i], ulp = cu_ulp(w, t);
    const double d = fabs((double)got[i] - w);
    if (!(d <= ulp + abs_tol)) bad++;
    if (d / (ulp + abs_tol) > worst) worst = d / (ulp + abs_tol);
    exact += got[i] == cu_round(want[i], t);
  }
  printf("%-20s %-5s %-28s %zu of %zu beyond 1 ulp + %.2g (worst %.2f of it), %.2f%% equal to "
         "the rounded twin %s\n", op, cu_dtype_name(t), shape, bad, n, abs_tol, worst,
         n ? 100.0 * (double)exact / (double)n : 100.0, bad ? "FAIL" : "ok");
  CHECK(bad == 0);
}

/* The root mean square of x[0, n). */
static double rms(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return n ? sqrt(s / (double)n) : 0.0;
}

/* A ragged batch: lengths[i] tokens, offsets (B + 1). */
typedef struct {
  int n_docs, n, max_len;
  int offsets[16];
  const char *name;
} batch_shape;

static batch_shape make_shape(const char *name, const int *lens, int b) {
  batch_shape s;
  memset(&s, 0, sizeof s);
  s.name = name;
  s.n_docs = b;
  for (int i = 0; i < b; i++) {
    s.offsets[i + 1] = s.offsets[i] + lens[i];
    if (lens[i] > s.max_len) s.max_len = lens[i];
  }
  s.n = s.offsets[b];
  return s;
}

/* ---- the ops ---- */

static void test_embed_layernorm(const batch_shape *bs, int H) {
  const int V = 1000, P = 512, N = bs->n;
  char shape[64];
  snprintf(shape, sizeof shape, "%s H=%d", bs->name, H);
  int32_t *ids = malloc(sizeof(int32_t) * N);
  int *pos = malloc(sizeof(int) * N);
  for (int b = 0; b < bs->n_docs; b++)
    for (int t = bs->offsets[b]; t < bs->offsets[b + 1]; t++) {
      ids[t] = (int32_t)(rng_u32() % V);
      pos[t] = t - bs->offsets[b];
    }
  float *we = host_random((size_t)V * H, -1, 1), *pe = host_random((size_t)P * H, -1, 1);
  float *ty = host_random(H, -1, 1), *g = host_random(H, 0.5f, 1.5f), *be = host_random(H, -0.5f, 0.5f);
  float *ref = malloc(sizeof(float) * N * H), *got = malloc(sizeof(float) * N * H);
  for (int with_type = 0; with_type < 2; with_type++) {
    ops_embed_layernorm(ids, pos, N, we, pe, with_type ? ty : NULL, g, be, 1e-12f, H, ref);
    void *d_ids = dev_copy(ids, sizeof(int32_t) * N), *d_pos = dev_copy(pos, sizeof(int) * N);
    float *d_we = dev_copy(we, sizeof(float) * V * H), *d_pe = dev_copy(pe, sizeof(float) * P * H);
    float *d_ty = dev_copy(ty, sizeof(float) * H), *d_g = dev_copy(g, sizeof(float) * H);
    float *d_b = dev_copy(be, sizeof(float) * H), *d_out = dev_poison(sizeof(float) * N * H);
    void *d_lp = dev_poison(2 * (size_t)N * H);
    cu_dtype t = with_type ? CU_BF16 : CU_F16;
    if (launched(embed_layernorm_cuda(d_ids, d_pos, N, d_we, d_pe, with_type ? d_ty : NULL, d_g,
                                      d_b, 1e-12f, H, d_out, d_lp, t, S),
                 "embed_layernorm")) {
      to_host(got, d_out, sizeof(float) * N * H);
      compare("embed_layernorm", "fp32", shape, got, ref, (size_t)N * H, 1e-6);
      compare_lp("embed_layernorm", t, shape, d_lp, got, (size_t)N * H);
    }
    dev_free_all();
  }
  free(ids), free(pos), free(we), free(pe), free(ty), free(g), free(be), free(ref), free(got);
}

static void test_residual_layernorm(int N, int H) {
  char shape[64];
  snprintf(shape, sizeof shape, "N=%d H=%d", N, H);
  float *x = host_random((size_t)N * H, -2, 2), *r = host_random((size_t)N * H, -2, 2);
  float *bias = host_random(H, -1, 1), *g = host_random(H, 0.5f, 1.5f), *b = host_random(H, -0.5f, 0.5f);
  float *ref = malloc(sizeof(float) * N * H), *got = malloc(sizeof(float) * N * H);
  /* variants: bias + residual into a new buffer; no bias no residual; out aliasing residual */
  for (int variant = 0; variant < 3; variant++) {
    const float *vb = variant == 1 ? NULL : bias;
    const int use_res = variant != 1;
    memcpy(ref, variant == 2 ? r : x, sizeof(float) * N * H);
    if (variant == 2)
      ops_residual_layernorm(x, vb, ref, g, b, 1e-5f, N, H, ref); /* out = residual */
    else
      ops_residual_layernorm(x, vb, use_res ? r : NULL, g, b, 1e-5f, N, H, ref);
    float *d_x = dev_copy(x, sizeof(float) * N * H), *d_r = dev_copy(r, sizeof(float) * N * H);
    float *d_bias = dev_copy(bias, sizeof(float) * H), *d_g = dev_copy(g, sizeof(float) * H);
    float *d_b = dev_copy(b, sizeof(float) * H);
    float *d_out = variant == 2 ? d_r : dev_poison(sizeof(float) * N * H);
    void *d_lp = dev_poison(2 * (size_t)N * H);
    cu_dtype t = variant == 0 ? CU_F16 : CU_BF16;
    if (launched(residual_layernorm_cuda(d_x, CU_F32, vb ? d_bias : NULL, use_res ? d_r : NULL,
                                         d_g, d_b, 1e-5f, N, H, d_out, d_lp, t, S),
                 "residual_layernorm")) {
      to_host(got, d_out, sizeof(float) * N * H);
      compare("residual_layernorm", "fp32", shape, got, ref, (size_t)N * H, 1e-6);
      compare_lp("residual_layernorm", t, shape, d_lp, got, (size_t)N * H);
    }
    dev_free_all();
  }
  /* x in fp16 / bf16 (the lp route: a GEMM's rounded output), bias + residual */
  for (int t = CU_F16; t <= CU_BF16; t++) {
    const cu_dtype dt = (cu_dtype)t;
    float *xr = malloc(sizeof(float) * N * H);
    void *hx = malloc(2 * (size_t)N * H);
    for (size_t i = 0; i < (size_t)N * H; i++) xr[i] = cu_round(x[i], dt);
    cu_convert(x, (size_t)N * H, dt, hx);
    ops_residual_layernorm(xr, bias, r, g, b, 1e-5f, N, H, ref);
    void *d_x = dev_copy(hx, 2 * (size_t)N * H);
    float *d_r = dev_copy(r, sizeof(float) * N * H), *d_bias = dev_copy(bias, sizeof(float) * H);
    float *d_g = dev_copy(g, sizeof(float) * H), *d_b = dev_copy(b, sizeof(float) * H);
    float *d_out = dev_poison(sizeof(float) * N * H);
    void *d_lp = dev_poison(2 * (size_t)N * H);
    if (launched(residual_layernorm_cuda(d_x, dt, d_bias, d_r, d_g, d_b, 1e-5f, N, H, d_out, d_lp,
                                         dt, S),
                 "residual_layernorm lp x")) {
      to_host(got, d_out, sizeof(float) * N * H);
      compare("residual_layernorm", cu_dtype_name(dt), shape, got, ref, (size_t)N * H, 1e-6);
      compare_lp("residual_layernorm", dt, shape, d_lp, got, (size_t)N * H);
    }
    dev_free_all();
    free(xr), free(hx);
  }
  free(x), free(r), free(bias), free(g), free(b), free(ref), free(got);
}

static void test_bias_gelu(int N, int F) {
  char shape[64];
  snprintf(shape, sizeof shape, "N=%d F=%d", N, F);
  float *x = host_random((size_t)N * F, -4, 4), *bias = host_random(F, -1, 1);
  float *ref = malloc(sizeof(float) * N * F), *got = malloc(sizeof(float) * N * F);
  for (int with_bias = 0; with_bias < 2; with_bias++) {
    memcpy(ref, x, sizeof(float) * N * F);
    ops_bias_gelu(ref, with_bias ? bias : NULL, N, F);
    float *d_x = dev_copy(x, sizeof(float) * N * F), *d_bias = dev_copy(bias, sizeof(float) * F);
    void *d_lp = dev_poison(2 * (size_t)N * F);
    if (launched(bias_gelu_cuda(d_x, with_bias ? d_bias : NULL, N, F, d_lp, CU_F16, S), "bias_gelu")) {
      to_host(got, d_x, sizeof(float) * N * F);
      compare("bias_gelu", "fp32", shape, got, ref, (size_t)N * F, 1e-6);
      compare_lp("bias_gelu", CU_F16, shape, d_lp, got, (size_t)N * F);
    }
    dev_free_all();
  }
  /* bias_gelu_lp: in place on the 16-bit tensor, against the twin on the widened input */
  for (int t = CU_F16; t <= CU_BF16; t++) {
    const cu_dtype dt = (cu_dtype)t;
    void *hx = malloc(2 * (size_t)N * F);
    cu_convert(x, (size_t)N * F, dt, hx);
    for (size_t i = 0; i < (size_t)N * F; i++) ref[i] = cu_round(x[i], dt);
    ops_bias_gelu(ref, bias, N, F);
    void *d_x = dev_copy(hx, 2 * (size_t)N * F);
    float *d_bias = dev_copy(bias, sizeof(float) * F);
    if (launched(bias_gelu_lp_cuda(d_x, d_bias, N, F, dt, S), "bias_gelu_lp")) {
      lp_to_host(got, d_x, dt, (size_t)N * F);
      compare_ulp("bias_gelu_lp", dt, shape, got, ref, (size_t)N * F, 1e-6);
    }
    dev_free_all();
    free(hx);
  }
  free(x), free(bias), free(ref), free(got);
}

static void test_linear(int N, int in, int out, int ldy, int with_bias) {
  char shape[64];
  snprintf(shape, sizeof shape, "N=%d %dx%d ld=%d%s", N, in, out, ldy, with_bias ? " +b" : "");
  float *x = host_random((size_t)N * in, -1, 1), *w = host_random((size_t)out * in, -1, 1);
  float *bias = host_random(out, -1, 1);
  float *xr = malloc(sizeof(float) * N * in), *wr = malloc(sizeof(float) * out * in);
  float *ref = malloc(sizeof(float) * N * ldy), *got = malloc(sizeof(float) * N * ldy);
  for (int t = CU_F32; t <= CU_BF16; t++) {
    const cu_dtype dt = (cu_dtype)t;
    for (size_t i = 0; i < (size_t)N * in; i++) xr[i] = cu_round(x[i], dt);
    for (size_t i = 0; i < (size_t)out * in; i++) wr[i] = cu_round(w[i], dt);
    ops_linear(xr, wr, with_bias ? bias : NULL, N, in, out, ref, ldy);
    void *hx = malloc(cu_dtype_size(dt) * N * in), *hw = malloc(cu_dtype_size(dt) * out * in);
    cu_convert(x, (size_t)N * in, dt, hx);
    cu_convert(w, (size_t)out * in, dt, hw);
    /* as the encoder does it: true fp32 for fp32, tensor cores for fp16 / bf16 */
    if (CU_CHECK_BLAS(cublasSetMathMode(blas, dt == CU_F32 ? CUBLAS_PEDANTIC_MATH
                                                           : CUBLAS_DEFAULT_MATH)) < 0)
      CHECK(!"cublasSetMathMode");
    void *d_x = dev_copy(hx, cu_dtype_size(dt) * N * in), *d_w = dev_copy(hw, cu_dtype_size(dt) * out * in);
    float *d_bias = dev_copy(bias, sizeof(float) * out), *d_y = dev_poison(sizeof(float) * N * ldy);
    if (launched(linear_cuda(d_x, d_w, with_bias ? d_bias : NULL, N, in, out, d_y, ldy, CU_F32, dt,
                             blas, S),
                 "linear")) {
      to_host(got, d_y, sizeof(float) * N * ldy);
      /* compare the written columns only: the rest of each ldy row is not the op's */
      float *g2 = malloc(sizeof(float) * N * out), *r2 = malloc(sizeof(float) * N * out);
      for (int i = 0; i < N; i++) {
        memcpy(g2 + (size_t)i * out, got + (size_t)i * ldy, sizeof(float) * out);
        memcpy(r2 + (size_t)i * out, ref + (size_t)i * ldy, sizeof(float) * out);
      }
      compare("linear", cu_dtype_name(dt), shape, g2, r2, (size_t)N * out, 1e-5);
      free(g2), free(r2);
    }
    dev_free_all();
    /* the lp route: the GEMM writes dt itself (no bias: the next op adds it) */
    if (dt != CU_F32 && !with_bias) {
      void *d_x2 = dev_copy(hx, cu_dtype_size(dt) * N * in);
      void *d_w2 = dev_copy(hw, cu_dtype_size(dt) * out * in);
      void *d_y2 = dev_poison(2 * (size_t)N * ldy);
      if (launched(linear_cuda(d_x2, d_w2, NULL, N, in, out, d_y2, ldy, dt, dt, blas, S),
                   "linear lp out")) {
        float *g2 = malloc(sizeof(float) * N * ldy), *r2 = malloc(sizeof(float) * N * out);
        lp_to_host(g2, d_y2, dt, (size_t)N * ldy);
        for (int i = 0; i < N; i++) {
          memmove(g2 + (size_t)i * out, g2 + (size_t)i * ldy, sizeof(float) * out);
          memcpy(r2 + (size_t)i * out, ref + (size_t)i * ldy, sizeof(float) * out);
        }
        compare_ulp("linear lp out", dt, shape, g2, r2, (size_t)N * out,
                    1e-5 * rms(r2, (size_t)N * out));
        free(g2), free(r2);
      }
      dev_free_all();
    }
    free(hx), free(hw);
  }
  free(x), free(w), free(bias), free(xr), free(wr), free(ref), free(got);
}

static void test_attention(const batch_shape *bs, int n_heads, int D) {
  char shape[64];
  snprintf(shape, sizeof shape, "%s NH=%d D=%d", bs->name, n_heads, D);
  const int H = n_heads * D, N = bs->n;
  float *qkv = host_random((size_t)N * 3 * H, -1, 1);
  float *ref = malloc(sizeof(float) * N * H), *twin = malloc(sizeof(float) * N * H);
  float *got = malloc(sizeof(float) * N * H);
  float *scratch = malloc(sizeof(float) * ops_attention_scratch_floats(bs->max_len, D));
  float *tscratch = malloc(sizeof(float) * cutwin_attention_scratch_floats(D));
  ops_attention(qkv, bs->offsets, bs->n_docs, n_heads, D, scratch, ref);
  cutwin_attention(qkv, bs->offsets, bs->n_docs, n_heads, D, tscratch, twin);
  float *d_qkv = dev_copy(qkv, sizeof(float) * N * 3 * H);
  int *d_off = dev_copy(bs->offsets, sizeof(int) * (bs->n_docs + 1));
  float *d_out = dev_poison(sizeof(float) * N * H);
  void *d_lp = dev_poison(2 * (size_t)N * H);
  if (launched(attention_cuda(d_qkv, d_off, bs->n_docs, n_heads, D, NULL, d_out, d_lp, CU_BF16,
                              bs->max_len, S),
               "attention")) {
    to_host(got, d_out, sizeof(float) * N * H);
    compare("attention", "fp32", shape, got, ref, (size_t)N * H, 2e-6);
    compare("attention(vs twin)", "fp32", shape, got, twin, (size_t)N * H, 2e-6);
    compare_lp("attention", CU_BF16, shape, d_lp, got, (size_t)N * H);
  }
  dev_free_all();
  free(qkv), free(ref), free(twin), free(got), free(scratch), free(tscratch);
}

static void test_maxpool(const batch_shape *bs, int V, int t0, int rows, int v0, int vb) {
  char shape[64];
  snprintf(shape, sizeof shape, "%s t0=%d rows=%d v0=%d vb=%d", bs->name, t0, rows, v0, vb);
  const int B = bs->n_docs, ld = vb + 3;
  const size_t n_logits = (size_t)rows * ld;
  float *logits = host_random(n_logits, -5, 5), *start = host_random((size_t)B * V, -5, 5);
  float *pooled = malloc(sizeof(float) * B * V), *got = malloc(sizeof(float) * B * V);
  void *typed = malloc(sizeof(float) * n_logits);
  /* fp32 logits, and fp16 / bf16 ones (the lp route): the twin on the widened values, exactly */
  for (int t = CU_F32; t <= CU_BF16; t++) {
    const cu_dtype lt = (cu_dtype)t;
    cu_convert(logits, n_logits, lt, typed);
    for (size_t i = 0; i < n_logits; i++) logits[i] = cu_round(logits[i], lt);
    memcpy(pooled, start, sizeof(float) * B * V);
    void *d_l = dev_copy(typed, cu_dtype_size(lt) * n_logits);
    float *d_p = dev_copy(pooled, sizeof(float) * B * V);
    int *d_off = dev_copy(bs->offsets, sizeof(int) * (B + 1));
    ops_maxpool_logits(logits, ld, t0, rows, v0, vb, bs->offsets, B, pooled, V);
    if (launched(maxpool_logits_cuda(d_l, lt, ld, t0, rows, v0, vb, d_off, B, d_p, V, S),
                 "maxpool_logits")) {
      to_host(got, d_p, sizeof(float) * B * V);
      compare("maxpool_logits", cu_dtype_name(lt), shape, got, pooled, (size_t)B * V, 0.0);
    }
    dev_free_all();
  }
  free(logits), free(start), free(pooled), free(got), free(typed);
}

/* The fused decoder + max against fp32 math on the same rounded operands. grid: operands k / 8,
 * |k| <= 8, so every partial sum is a multiple of 1/64 below 2^16 and exact in fp32 whatever the
 * order (the tensor cores' included): the kernel must then match to the bit (up to zero signs). */
static void test_decoder_maxpool(const batch_shape *bs, int H, int V, int grid) {
  char shape[64];
  snprintf(shape, sizeof shape, "%s H=%d V=%d%s", bs->name, H, V, grid ? " grid" : "");
  const int B = bs->n_docs, N = bs->n, tb = N < 1024 ? N : 1024;
  const int with_twin = (size_t)N * V <= ((size_t)1 << 21);
  float *x = malloc(sizeof(float) * N * H), *w = malloc(sizeof(float) * (size_t)V * H);
  for (size_t i = 0; i < (size_t)N * H; i++)
    x[i] = grid ? (float)((int)(rng_u32() % 17) - 8) / 8.0f : rng_uniform(-1, 1);
  for (size_t i = 0; i < (size_t)V * H; i++)
    w[i] = grid ? (float)((int)(rng_u32() % 17) - 8) / 8.0f : rng_uniform(-1, 1);
  float *xr = malloc(sizeof(float) * N * H), *wr = malloc(sizeof(float) * (size_t)V * H);
  float *ref = malloc(sizeof(float) * B * V), *got = malloc(sizeof(float) * B * V);
  float *twin = malloc(sizeof(float) * B * V), *init = malloc(sizeof(float) * B * V);
  float *logits = malloc(sizeof(float) * (size_t)tb * CUTWIN_VOCAB_BLOCK);
  float *tile = malloc(sizeof(float) * CUTWIN_FUSED_TOKEN_TILE * CUTWIN_FUSED_VOCAB_TILE);
  ops_fill(init, (size_t)B * V, -INFINITY);
  for (int t = CU_F16; t <= CU_BF16; t++) {
    const cu_dtype dt = (cu_dtype)t;
    for (size_t i = 0; i < (size_t)N * H; i++) xr[i] = cu_round(x[i], dt);
    for (size_t i = 0; i < (size_t)V * H; i++) wr[i] = cu_round(w[i], dt);
    ops_fill(ref, (size_t)B * V, -INFINITY);
    cutwin_decoder_maxpool(xr, wr, N, H, V, bs->offsets, B, tb, CUTWIN_VOCAB_BLOCK, logits, ref);
    void *hx = malloc(2 * (size_t)N * H), *hw = malloc(2 * (size_t)V * H);
    cu_convert(x, (size_t)N * H, dt, hx);
    cu_convert(w, (size_t)V * H, dt, hw);
    void *d_x = dev_copy(hx, 2 * (size_t)N * H), *d_w = dev_copy(hw, 2 * (size_t)V * H);
    int *d_off = dev_copy(bs->offsets, sizeof(int) * (B + 1));
    if (with_twin) {
      ops_fill(twin, (size_t)B * V, -INFINITY);
      cutwin_decoder_maxpool_fused(xr, wr, N, H, V, bs->offsets, B, tile, twin);
    }
    /* the wmma kernel, then (where the device runs it) the wgmma one: same tile, same twin */
    for (int k = 0; k < 1 + wgmma_ok; k++) {
      const char *op = k ? "decoder_maxpool_wgmma" : "decoder_maxpool";
      float *d_p = dev_copy(init, sizeof(float) * B * V); /* -inf on entry, as the contract says */
      const int rc = k ? decoder_maxpool_wgmma_cuda(d_x, d_w, N, H, V, d_off, B, d_p, dt, S)
                       : decoder_maxpool_cuda(d_x, d_w, N, H, V, d_off, B, d_p, dt, S);
      if (!launched(rc, op)) continue;
      to_host(got, d_p, sizeof(float) * B * V);
      compare(op, cu_dtype_name(dt), shape, got, ref, (size_t)B * V, grid ? 0.0 : 1e-5);
      if (with_twin) {
        char twin_op[48];
        snprintf(twin_op, sizeof twin_op, "%s(twin)", op);
        compare(twin_op, cu_dtype_name(dt), shape, got, twin, (size_t)B * V, grid ? 0.0 : 1e-5);
      }
    }
    dev_free_all();
    free(hx), free(hw);
  }
  free(x), free(w), free(xr), free(wr), free(ref), free(got), free(twin), free(init), free(logits);
  free(tile);
}

/* What the kernel does not handle comes back as ERR_ARG with a message, before any launch, so
 * that the encoder can fall back to the chunked path. */
static void test_decoder_maxpool_refusals(void) {
  char *d = dev_poison(4096);
  const int offsets[2] = {0, 10};
  int *d_off = dev_copy(offsets, sizeof offsets);
  float *d_p = dev_poison(sizeof(float) * 100);
  struct {
    const char *what;
    const void *x;
    int hidden;
    cu_dtype dt;
  } cases[] = {{"fp32 operands", d, 64, CU_F32},
               {"hidden 40", d, 40, CU_F16},
               {"hidden 8", d, 8, CU_BF16},
               {"misaligned rows", d ? d + 2 : NULL, 64, CU_F16}};
  for (int k = 0; k < 2; k++) {
    const char *op = k ? "decoder_maxpool_wgmma" : "decoder_maxpool";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] + (size_t)(k && !wgmma_ok); i++) {
      /* the wgmma kernel on a device that cannot run it: refused whatever the shape */
      const int unusable = i == sizeof cases / sizeof cases[0];
      const int c = unusable ? 1 : (int)i;
      err_clear();
      const int rc = k ? decoder_maxpool_wgmma_cuda(unusable ? d : cases[c].x, d, 10,
                                                    unusable ? 64 : cases[c].hidden, 100, d_off,
                                                    1, d_p, unusable ? CU_F16 : cases[c].dt, S)
                       : decoder_maxpool_cuda(cases[c].x, d, 10, cases[c].hidden, 100, d_off, 1,
                                              d_p, cases[c].dt, S);
      const int ok = rc == ERR_ARG && err_msg()[0] != '\0';
      printf("%-20s %-5s %-28s rc %d (%s) %s\n", op, unusable ? "fp16" : cu_dtype_name(cases[c].dt),
             unusable ? "no sm_90a code here" : cases[c].what, rc, err_msg(), ok ? "ok" : "FAIL");
      CHECK(ok);
    }
  }
  CHECK(cudaStreamSynchronize(S) == cudaSuccess);
  dev_free_all();
}

/* The lp route's launchers refuse what they do not do before any device call (NULL pointers are
 * never touched): run without a device too. */
static void check_refused(const char *what, int rc) {
  const int ok = rc == ERR_ARG && err_msg()[0] != '\0';
  printf("%-20s %-5s %-28s rc %d (%s) %s\n", "lp refusal", "-", what, rc, err_msg(),
         ok ? "ok" : "FAIL");
  CHECK(ok);
  err_clear();
}

static void test_lp_refusals(void) {
  err_clear();
  check_refused("linear fp16 out + bias", linear_cuda(NULL, NULL, (const float *)8, 4, 16, 16,
                                                      NULL, 16, CU_F16, CU_F16, NULL, NULL));
  check_refused("linear bf16 out, fp16 in", linear_cuda(NULL, NULL, NULL, 4, 16, 16, NULL, 16,
                                                        CU_BF16, CU_F16, NULL, NULL));
  check_refused("linear fp16 out, fp32 in", linear_cuda(NULL, NULL, NULL, 4, 16, 16, NULL, 16,
                                                        CU_F16, CU_F32, NULL, NULL));
  check_refused("bias_gelu_lp fp32", bias_gelu_lp_cuda(NULL, NULL, 4, 16, CU_F32, NULL));
}

static void test_fill_convert(size_t n) {
  char shape[64];
  snprintf(shape, sizeof shape, "n=%zu", n);
  float *x = host_random(n, -70000, 70000), *got = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i += 7) x[i] *= 1e-9f; /* subnormal fp16 range too */
  float *d = dev_poison(sizeof(float) * n);
  if (launched(fill_cuda(d, n, -INFINITY, S), "fill")) {
    to_host(got, d, sizeof(float) * n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(isinf(got[i]) && got[i] < 0);
    printf("%-20s %-5s %-28s %zu wrong %s\n", "fill", "fp32", shape, bad, bad ? "FAIL" : "ok");
    CHECK(bad == 0);
  }
  float *d_x = dev_copy(x, sizeof(float) * n);
  for (int t = CU_F16; t <= CU_BF16; t++) {
    void *d_o = dev_poison(2 * n);
    if (launched(convert_cuda(d_x, n, (cu_dtype)t, d_o, S), "convert"))
      compare_lp("convert", (cu_dtype)t, shape, d_o, x, n);
  }
  dev_free_all();
  free(x), free(got);
}

static void test_sparsify(int B, int V, float threshold, int top_k) {
  char shape[64];
  snprintf(shape, sizeof shape, "B=%d V=%d thr=%g k=%d", B, V, (double)threshold, top_k);
  float *pooled = malloc(sizeof(float) * B * V), *bias = malloc(sizeof(float) * V);
  for (int v = 0; v < V; v++) bias[v] = (float)((int)(rng_u32() % 9) - 4) / 256.0f;
  for (size_t i = 0; i < (size_t)B * V; i++) pooled[i] = (float)((int)(rng_u32() % 1024) - 640) / 256.0f;
  for (int v = 0; v < V && B > 1; v++) pooled[V + v] = v % 97 == 0 ? 1.0f : -3.0f; /* sparse row */
  float *ref = malloc(sizeof(float) * B * V), *got = malloc(sizeof(float) * B * V);
  int32_t *nnz_ref = malloc(sizeof(int32_t) * B), *nnz_got = malloc(sizeof(int32_t) * B);
  float *scratch = malloc(sizeof(float) * V);
  memcpy(ref, pooled, sizeof(float) * B * V);
  ops_sparsify_weights(ref, bias, B, V, threshold, top_k, nnz_ref, scratch);
  float *d_p = dev_copy(pooled, sizeof(float) * B * V), *d_bias = dev_copy(bias, sizeof(float) * V);
  int32_t *d_nnz = dev_poison(sizeof(int32_t) * B);
  int64_t *d_indptr = dev_poison(sizeof(int64_t) * (B + 1));
  if (!launched(sparsify_weights_cuda(d_p, d_bias, B, V, threshold, top_k, d_nnz, NULL, S),
                "sparsify_weights"))
    goto done;
  to_host(got, d_p, sizeof(float) * B * V);
  to_host(nnz_got, d_nnz, sizeof(int32_t) * B);
  {
    size_t wrong_set = 0;
    double maxrel = 0;
    for (size_t i = 0; i < (size_t)B * V; i++) {
      if ((got[i] > threshold) != (ref[i] > threshold)) wrong_set++;
      if (ref[i] > 0) {
        double rel = fabs((double)got[i] - ref[i]) / ref[i];
        if (!(rel <= maxrel)) maxrel = isnan(rel) ? INFINITY : rel;
      }
    }
    int counts_equal = memcmp(nnz_ref, nnz_got, sizeof(int32_t) * B) == 0;
    int ok = wrong_set == 0 && counts_equal && maxrel <= 1e-6;
    printf("%-20s %-5s %-28s %zu kept-set diffs, counts %s, max rel %.3g %s\n", "sparsify_weights",
           "fp32", shape, wrong_set, counts_equal ? "equal" : "DIFFER", maxrel, ok ? "ok" : "FAIL");
    CHECK(ok);
  }
  /* prefix sum and compaction, on the GPU's own weights against the CPU twins */
  {
    int64_t *ip_ref = malloc(sizeof(int64_t) * (B + 1)), *ip_got = malloc(sizeof(int64_t) * (B + 1));
    cutwin_row_offsets(nnz_got, B, ip_ref);
    if (launched(row_offsets_cuda(d_nnz, B, d_indptr, S), "row_offsets")) {
      to_host(ip_got, d_indptr, sizeof(int64_t) * (B + 1));
      int same = memcmp(ip_ref, ip_got, sizeof(int64_t) * (B + 1)) == 0;
      printf("%-20s %-5s %-28s %s\n", "row_offsets", "int64", shape, same ? "ok" : "FAIL");
      CHECK(same);
    }
    int64_t nnz = ip_ref[B];
    int32_t *i_ref = malloc(sizeof(int32_t) * (nnz + 1)), *i_got = malloc(sizeof(int32_t) * (nnz + 1));
    float *v_ref = malloc(sizeof(float) * (nnz + 1)), *v_got = malloc(sizeof(float) * (nnz + 1));
    ops_sparsify_gather(got, B, V, threshold, ip_ref, i_ref, v_ref);
    int32_t *d_i = dev_poison(sizeof(int32_t) * (nnz + 1));
    float *d_v = dev_poison(sizeof(float) * (nnz + 1));
    if (launched(sparsify_gather_cuda(d_p, B, V, threshold, d_indptr, d_i, d_v, S), "sparsify_gather")) {
      to_host(i_got, d_i, sizeof(int32_t) * nnz);
      to_host(v_got, d_v, sizeof(float) * nnz);
      int same = memcmp(i_ref, i_got, sizeof(int32_t) * nnz) == 0 &&
                 memcmp(v_ref, v_got, sizeof(float) * nnz) == 0;
      printf("%-20s %-5s %-28s %lld entries %s\n", "sparsify_gather", "fp32", shape, (long long)nnz,
             same ? "ok" : "FAIL");
      CHECK(same);
    }
    free(ip_ref), free(ip_got), free(i_ref), free(i_got), free(v_ref), free(v_got);
  }
done:
  dev_free_all();
  free(pooled), free(bias), free(ref), free(got), free(nnz_ref), free(nnz_got), free(scratch);
}

static void test_csr_to_csc(int R, int C, int density_pct) {
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%d %d%%", R, C, density_pct);
  int32_t *indptr = malloc(sizeof(int32_t) * (R + 1));
  int32_t *indices = malloc(sizeof(int32_t) * ((size_t)R * C + 1));
  float *values = malloc(sizeof(float) * ((size_t)R * C + 1));
  int nnz = 0;
  indptr[0] = 0;
  for (int r = 0; r < R; r++) {
    for (int c = 0; c < C; c++)
      if ((int)(rng_u32() % 100) < density_pct) {
        indices[nnz] = c;
        values[nnz] = rng_uniform(0, 3);
        nnz++;
      }
    indptr[r + 1] = nnz;
  }
  int32_t *cp_ref = malloc(sizeof(int32_t) * (C + 1)), *cp_got = malloc(sizeof(int32_t) * (C + 1));
  int32_t *ri_ref = malloc(sizeof(int32_t) * (nnz + 1)), *ri_got = malloc(sizeof(int32_t) * (nnz + 1));
  float *cv_ref = malloc(sizeof(float) * (nnz + 1)), *cv_got = malloc(sizeof(float) * (nnz + 1));
  cutwin_csr_to_csc(indptr, indices, values, R, C, nnz, cp_ref, ri_ref, cv_ref);
  int32_t *d_ip = dev_copy(indptr, sizeof(int32_t) * (R + 1));
  int32_t *d_ix = dev_copy(indices, sizeof(int32_t) * (nnz + 1));
  float *d_v = dev_copy(values, sizeof(float) * (nnz + 1));
  int32_t *d_cp = dev_poison(sizeof(int32_t) * (C + 1)), *d_ri = dev_poison(sizeof(int32_t) * (nnz + 1));
  float *d_cv = dev_poison(sizeof(float) * (nnz + 1));
  if (launched(csr_to_csc_cuda(d_ip, d_ix, d_v, R, C, nnz, d_cp, d_ri, d_cv, S), "csr_to_csc")) {
    to_host(cp_got, d_cp, sizeof(int32_t) * (C + 1));
    to_host(ri_got, d_ri, sizeof(int32_t) * nnz);
    to_host(cv_got, d_cv, sizeof(float) * nnz);
    int same = memcmp(cp_ref, cp_got, sizeof(int32_t) * (C + 1)) == 0 &&
               memcmp(ri_ref, ri_got, sizeof(int32_t) * nnz) == 0 &&
               memcmp(cv_ref, cv_got, sizeof(float) * nnz) == 0;
    printf("%-20s %-5s %-28s %d entries %s\n", "csr_to_csc", "fp32", shape, nnz, same ? "ok" : "FAIL");
    CHECK(same);
  }
  dev_free_all();
  free(indptr), free(indices), free(values), free(cp_ref), free(cp_got), free(ri_ref), free(ri_got);
  free(cv_ref), free(cv_got);
}

static int run_all(void) {
  const int l_one[] = {1};
  const int l_ragged[] = {1, 3, 17, 64, 2, 129, 31, 33};
  const int l_long[] = {512, 7, 256, 255};
  batch_shape one = make_shape("T=1", l_one, 1);
  batch_shape ragged = make_shape("ragged 8 docs", l_ragged, 8);
  batch_shape longer = make_shape("512,7,256,255", l_long, 4);
  /* for the fused decoder: docs ending on its 64-row run and 128-row tile edges, one over three
   * tiles, one ending a row past a run edge, one starting a row before a tile edge */
  const int l_edges[] = {1, 63, 64, 300, 84, 5, 1, 59, 3, 59, 6, 1};
  batch_shape edges = make_shape("tile edges 12 docs", l_edges, 12);
  /* several thousand tokens: 36 token tiles, more than one group of 32 */
  const int l_batch[] = {512, 7, 256, 255, 511, 1, 300, 128, 129, 300, 450, 380, 256, 500, 512};
  batch_shape batch = make_shape("4497 tokens 15 docs", l_batch, 15);

  test_embed_layernorm(&one, 32);
  test_embed_layernorm(&ragged, 37);
  test_residual_layernorm(1, 32);
  test_residual_layernorm(41, 129);
  test_bias_gelu(1, 64);
  test_bias_gelu(33, 257);
  test_linear(1, 32, 96, 96, 1);
  test_linear(37, 65, 33, 40, 0);
  test_attention(&one, 2, 8);
  test_attention(&ragged, 4, 8);
  test_attention(&ragged, 3, 64);
  test_attention(&ragged, 2, 96);
  test_maxpool(&ragged, 1000, 0, ragged.n, 0, 1000);
  test_maxpool(&ragged, 1000, 20, 50, 333, 129); /* a block starting and ending inside docs */
  for (int grid = 0; grid < 2; grid++) {
    test_decoder_maxpool(&one, 64, 1000, grid);
    test_decoder_maxpool(&ragged, 48, 1000, grid); /* H = 48: a half-filled last K slice */
    test_decoder_maxpool(&edges, 64, 300, grid);
    test_decoder_maxpool(&ragged, 16, 300, grid); /* one K slice, half filled */
    test_decoder_maxpool(&ragged, 32, 300, grid); /* one full K slice */
    test_decoder_maxpool(&ragged, 272, 300, grid); /* 8.5 K slices: the rings wrap */
  }
  test_decoder_maxpool_refusals();
  test_fill_convert(1);
  test_fill_convert(100003);
  test_sparsify(1, 5, 0.0f, 0);
  test_sparsify(4, 1537, 0.0f, 0);
  test_sparsify(4, 1537, 0.25f, 7);
  test_sparsify(3, 1537, 0.0f, 5000); /* top_k above every row's nnz */
  test_sparsify(2, 1537, 0.0f, 1);
  test_csr_to_csc(1, 1, 100);
  test_csr_to_csc(37, 53, 20);
  test_csr_to_csc(5, 9, 0);
  if (!small_only) {
    test_embed_layernorm(&longer, 768);
    test_residual_layernorm(1000, 768);
    test_bias_gelu(1000, 3072);
    test_linear(1000, 768, 2304, 2304, 1);
    test_linear(777, 3072, 768, 768, 0);
    test_linear(300, 768, 4096, 4096, 0);
    test_attention(&longer, 12, 64);
    test_attention(&longer, 2, 128);
    test_maxpool(&longer, 30522, 0, longer.n, 28672, 30522 - 28672);
    test_decoder_maxpool(&batch, 768, 30522, 0);
    test_decoder_maxpool(&batch, 768, 30522, 1);
    test_sparsify(16, 30522, 0.0f, 0);
    test_sparsify(16, 30522, 0.0f, 64);
    test_sparsify(8, 30522, 0.5f, 256);
    test_csr_to_csc(2000, 30522, 1);
  }
  return 0;
}

/* ---- --bench: every op timed at the job's shapes, after the checks above passed ----
 * llm.c's dev/cuda pattern: validate against the CPU first, then time. The shapes are one batch
 * of the real job: naver/efficient-splade-VI-BT-large-doc (DistilBERT: 6 layers, hidden 768,
 * 12 heads of 64, FFN 3072, vocabulary 30522) on the CLI's default 16384-token batches of
 * ~80-token passages (MS MARCO), GEMM operands in fp16 (the CLI's default precision). Each op
 * is timed with CUDA events over BENCH_REPS launches after BENCH_WARMUP; the table gives the
 * time per call, TFLOP/s (GEMMs, attention, decoder) or GB/s (the memory-bound ops: bytes that
 * must move at least once), how many calls one batch makes, and the op's share of the batch
 * (calls x ms over the sum for the default, chunked, decoder route; the fused route's row is
 * its alternative and has no share). Inputs are random; the sparsify inputs keep ~1% of the
 * vocabulary per document, near what SPLADE keeps. */
enum {
  BENCH_LAYERS = 6,
  BENCH_HIDDEN = 768,
  BENCH_HEADS = 12,
  BENCH_FFN = 3072,
  BENCH_VOCAB = 30522,
  BENCH_POSITIONS = 512,
  BENCH_DOC_TOKENS = 80,
  BENCH_DOCS = 16384 / BENCH_DOC_TOKENS, /* 204 passages, 16320 tokens */
  BENCH_WARMUP = 2,
  BENCH_REPS = 10
};

typedef struct {
  const char *op;
  const char *shape;
  int per_batch; /* calls per batch; 0: an alternative route, no share */
  double ms;     /* per call; < 0 when it failed */
  double flops;  /* per call, or 0 */
  double bytes;  /* per call, when flops is 0 */
} bench_row;

enum { BENCH_MAX_ROWS = 24 };
static bench_row bench_rows[BENCH_MAX_ROWS];
static int bench_n;
static cudaEvent_t bench_start, bench_stop;

/* Appends a row; returns it so BENCH_TIME can fill in ms. */
static bench_row *bench_add(const char *op, const char *shape, int per_batch, double flops,
                            double bytes) {
  bench_row *r = &bench_rows[bench_n < BENCH_MAX_ROWS ? bench_n++ : BENCH_MAX_ROWS - 1];
  *r = (bench_row){op, shape, per_batch, -1.0, flops, bytes};
  return r;
}

/* The mean ms of `call` (an expression that launches on S and yields the launcher's return code)
 * over BENCH_REPS launches after BENCH_WARMUP, into row->ms; -1 and a failed check on error. */
#define BENCH_TIME(row, call)                                                                   \
  do {                                                                                          \
    int bench_rc_ = 0;                                                                          \
    for (int bench_i_ = 0; bench_i_ < BENCH_WARMUP && bench_rc_ == 0; bench_i_++)               \
      bench_rc_ = (call);                                                                       \
    if (bench_rc_ == 0) bench_rc_ = CU_CHECK(cudaEventRecord(bench_start, S));                  \
    for (int bench_i_ = 0; bench_i_ < BENCH_REPS && bench_rc_ == 0; bench_i_++)                 \
      bench_rc_ = (call);                                                                       \
    if (bench_rc_ == 0) bench_rc_ = CU_CHECK(cudaEventRecord(bench_stop, S));                   \
    if (bench_rc_ == 0) bench_rc_ = CU_CHECK(cudaEventSynchronize(bench_stop));                 \
    float bench_ms_ = 0;                                                                        \
    if (bench_rc_ == 0)                                                                         \
      bench_rc_ = CU_CHECK(cudaEventElapsedTime(&bench_ms_, bench_start, bench_stop));          \
    if (launched(bench_rc_, (row)->op)) (row)->ms = bench_ms_ / BENCH_REPS;                     \
  } while (0)

/* A device buffer of n floats uniform in [lo, hi). */
static float *bench_random(size_t n, float lo, float hi) {
  float *h = host_random(n, lo, hi);
  float *d = dev_copy(h, sizeof(float) * n);
  free(h);
  return d;
}

/* A device buffer of n values uniform in [lo, hi) in dtype t (rounded by convert_cuda). */
static void *bench_random_lp(size_t n, float lo, float hi, cu_dtype t) {
  float *f = bench_random(n, lo, hi);
  void *d = dev_poison(n * cu_dtype_size(t));
  if (f && d) launched(convert_cuda(f, n, t, d, S), "convert");
  return d;
}

static void bench_print(int n_tokens, cu_dtype dt) {
  double batch_ms = 0;
  for (int i = 0; i < bench_n; i++)
    if (bench_rows[i].ms > 0) batch_ms += bench_rows[i].per_batch * bench_rows[i].ms;
  printf("\nbench: one batch of efficient-splade-VI-BT-large-doc: %d passages x %d tokens = %d "
         "tokens, %d layers, hidden %d, %d heads, FFN %d, vocabulary %d, %s; mean of %d calls\n",
         BENCH_DOCS, BENCH_DOC_TOKENS, n_tokens, BENCH_LAYERS, BENCH_HIDDEN, BENCH_HEADS, BENCH_FFN,
         BENCH_VOCAB, cu_dtype_name(dt), BENCH_REPS);
  printf("%-22s %-26s %9s %10s %9s %6s\n", "op", "shape", "ms/call", "rate", "calls", "share");
  for (int i = 0; i < bench_n; i++) {
    const bench_row *r = &bench_rows[i];
    char rate[32] = "-", share[16] = "alt";
    if (r->ms > 0 && r->flops > 0)
      snprintf(rate, sizeof rate, "%.1f TFLOP/s", r->flops / (r->ms * 1e-3) / 1e12);
    else if (r->ms > 0 && r->bytes > 0)
      snprintf(rate, sizeof rate, "%.0f GB/s", r->bytes / (r->ms * 1e-3) / 1e9);
    if (r->per_batch > 0)
      snprintf(share, sizeof share, "%.1f%%",
               r->ms > 0 && batch_ms > 0 ? 100.0 * r->per_batch * r->ms / batch_ms : 0.0);
    if (r->ms < 0)
      printf("%-22s %-26s %9s %14s %5d %6s\n", r->op, r->shape, "FAILED", "-", r->per_batch, "-");
    else
      printf("%-22s %-26s %9.3f %14s %5d %6s\n", r->op, r->shape, r->ms, rate, r->per_batch, share);
  }
  if (batch_ms > 0)
    printf("bench: a batch is %.2f ms of kernels (chunked decoder): %.0f tokens/s, %.0f passages/s "
           "on the device alone\n",
           batch_ms, n_tokens / (batch_ms * 1e-3), BENCH_DOCS / (batch_ms * 1e-3));
}

static void bench_all(void) {
  const int H = BENCH_HIDDEN, F = BENCH_FFN, V = BENCH_VOCAB, B = BENCH_DOCS, L = BENCH_LAYERS;
  const int T = BENCH_DOC_TOKENS, N = B * T, heads = BENCH_HEADS;
  const cu_dtype dt = CU_F16;
  const size_t NH = (size_t)N * H, NF = (size_t)N * F, BV = (size_t)B * V;
  const double lp = 2.0; /* bytes per fp16 element */
  bench_n = 0;
  if (CU_CHECK(cudaEventCreate(&bench_start)) < 0 || CU_CHECK(cudaEventCreate(&bench_stop)) < 0) {
    fprintf(stderr, "test_ops_gpu: %s\n", err_msg());
    CHECK(!"bench events");
    return;
  }

  /* Inputs: the packed batch, the weights of one layer (every layer has the same shapes). */
  int *offsets = malloc(sizeof(int) * (B + 1));
  int32_t *ids = malloc(sizeof(int32_t) * N);
  int *pos = malloc(sizeof(int) * N);
  for (int b = 0; b <= B; b++) offsets[b] = b * T;
  for (int i = 0; i < N; i++) ids[i] = (int32_t)(rng_u32() % V), pos[i] = i % T;
  int *d_off = dev_copy(offsets, sizeof(int) * (B + 1));
  int32_t *d_ids = dev_copy(ids, sizeof(int32_t) * N);
  int *d_pos = dev_copy(pos, sizeof(int) * N);
  float *d_we = bench_random((size_t)V * H, -1, 1), *d_pe = bench_random((size_t)BENCH_POSITIONS * H, -1, 1);
  float *d_g = bench_random(F, 0.5f, 1.5f), *d_b = bench_random(F, -0.5f, 0.5f);
  void *d_wqkv = bench_random_lp((size_t)3 * H * H, -0.05f, 0.05f, dt);
  void *d_wo = bench_random_lp((size_t)H * H, -0.05f, 0.05f, dt);
  void *d_w1 = bench_random_lp((size_t)F * H, -0.05f, 0.05f, dt);
  void *d_w2 = bench_random_lp((size_t)H * F, -0.05f, 0.05f, dt);
  void *d_wdec = bench_random_lp((size_t)V * H, -0.05f, 0.05f, dt);
  float *d_bias_v = bench_random(V, 0.0f, 0.0f); /* zeros: see the pruning below */
  /* Activations: x (N, H) fp32 + lp copy, wide (N, 3H or F) fp32 + lp copy, pooled (B, V). */
  float *d_x = bench_random(NH, -1, 1), *d_res = bench_random(NH, -1, 1);
  float *d_tmp = dev_poison(sizeof(float) * NH);
  void *d_x_lp = bench_random_lp(NH, -1, 1, dt);
  float *d_wide = bench_random(NF, -1, 1);
  void *d_wide_lp = dev_poison(NF * 2);
  float *d_logits = dev_poison(sizeof(float) * (size_t)N * CUTWIN_VOCAB_BLOCK);
  float *d_pooled = dev_poison(sizeof(float) * BV);
  int32_t *d_nnz = dev_poison(sizeof(int32_t) * B);
  int64_t *d_indptr = dev_poison(sizeof(int64_t) * (B + 1));
  free(offsets), free(ids), free(pos);
  if (check_failures) {
    dev_free_all();
    return;
  }

  static char shape_nh[48], shape_nf[48], shape_qkv[48], shape_o[48], shape_f1[48], shape_f2[48];
  static char shape_att[48], shape_dec[48], shape_bv[48];
  snprintf(shape_nh, sizeof shape_nh, "(%d, %d)", N, H);
  snprintf(shape_nf, sizeof shape_nf, "(%d, %d)", N, F);
  snprintf(shape_qkv, sizeof shape_qkv, "(%d, %d) x (%d, %d)", N, H, 3 * H, H);
  snprintf(shape_o, sizeof shape_o, "(%d, %d) x (%d, %d)", N, H, H, H);
  snprintf(shape_f1, sizeof shape_f1, "(%d, %d) x (%d, %d)", N, H, F, H);
  snprintf(shape_f2, sizeof shape_f2, "(%d, %d) x (%d, %d)", N, F, H, F);
  snprintf(shape_att, sizeof shape_att, "%d docs x %d, %d heads", B, T, heads);
  snprintf(shape_dec, sizeof shape_dec, "(%d, %d) x (%d, %d)", N, H, V, H);
  snprintf(shape_bv, sizeof shape_bv, "(%d, %d)", B, V);

  bench_row *r;
  r = bench_add("embed_layernorm", shape_nh, 1, 0, NH * (4.0 * 3 + lp));
  BENCH_TIME(r, embed_layernorm_cuda(d_ids, d_pos, N, d_we, d_pe, d_g, d_g, d_b, 1e-12f, H, d_x,
                                     d_x_lp, dt, S));
  r = bench_add("linear qkv", shape_qkv, L, 2.0 * N * H * 3 * H, 0);
  BENCH_TIME(r, linear_cuda(d_x_lp, d_wqkv, d_b, N, H, 3 * H, d_wide, 3 * H, CU_F32, dt, blas, S));
  r = bench_add("attention", shape_att, L, 4.0 * N * T * H, 0);
  BENCH_TIME(r, attention_cuda(d_wide, d_off, B, heads, H / heads, NULL, d_tmp, d_x_lp, dt, T, S));
  /* the attention output projection, and the MLM head's transform (same shape) */
  r = bench_add("linear out / head", shape_o, L + 1, 2.0 * N * H * H, 0);
  BENCH_TIME(r, linear_cuda(d_x_lp, d_wo, NULL, N, H, H, d_tmp, H, CU_F32, dt, blas, S));
  /* after attention and after the FFN of every layer, and in the MLM head */
  r = bench_add("residual_layernorm", shape_nh, 2 * L + 1, 0, NH * (4.0 * 3 + lp));
  BENCH_TIME(r, residual_layernorm_cuda(d_tmp, CU_F32, d_b, d_res, d_g, d_b, 1e-12f, N, H, d_x,
                                        d_x_lp, dt, S));
  r = bench_add("linear ffn1", shape_f1, L, 2.0 * N * H * F, 0);
  BENCH_TIME(r, linear_cuda(d_x_lp, d_w1, NULL, N, H, F, d_wide, F, CU_F32, dt, blas, S));
  r = bench_add("bias_gelu", shape_nf, L, 0, NF * (4.0 * 2 + lp));
  BENCH_TIME(r, bias_gelu_cuda(d_wide, d_b, N, F, d_wide_lp, dt, S));
  r = bench_add("bias_gelu head", shape_nh, 1, 0, NH * 4.0 * 2);
  BENCH_TIME(r, bias_gelu_cuda(d_tmp, d_b, N, H, NULL, dt, S));
  r = bench_add("linear ffn2", shape_f2, L, 2.0 * N * F * H, 0);
  BENCH_TIME(r, linear_cuda(d_wide_lp, d_w2, NULL, N, F, H, d_tmp, H, CU_F32, dt, blas, S));
  /* The lp activations route's alternatives (SPLADEX_CUDA_ACTIVATIONS=lp; no share: rows to set
   * beside the fp32 route's): GEMMs that write fp16, the GELU and the LayerNorm on 16-bit data. */
  r = bench_add("linear qkv -> lp", shape_qkv, 0, 2.0 * N * H * 3 * H, 0);
  BENCH_TIME(r, linear_cuda(d_x_lp, d_wqkv, NULL, N, H, 3 * H, d_wide_lp, 3 * H, dt, dt, blas, S));
  r = bench_add("linear ffn1 -> lp", shape_f1, 0, 2.0 * N * H * F, 0);
  BENCH_TIME(r, linear_cuda(d_x_lp, d_w1, NULL, N, H, F, d_wide_lp, F, dt, dt, blas, S));
  r = bench_add("bias_gelu_lp", shape_nf, 0, 0, NF * lp * 2);
  BENCH_TIME(r, bias_gelu_lp_cuda(d_wide_lp, d_b, N, F, dt, S));
  r = bench_add("residual_layernorm lp", shape_nh, 0, 0, NH * (lp + 4.0 * 2 + lp));
  BENCH_TIME(r, residual_layernorm_cuda(d_wide_lp, dt, d_b, d_res, d_g, d_b, 1e-12f, N, H, d_x,
                                        d_x_lp, dt, S));
  r = bench_add("fill pooled", shape_bv, 1, 0, BV * 4.0);
  BENCH_TIME(r, fill_cuda(d_pooled, BV, -INFINITY, S));

  /* The decoder + max over each passage's tokens, both routes (encoder_cuda.cu): chunked cuBLAS
   * GEMMs of CUTWIN_VOCAB_BLOCK terms, each max-pooled (N fits one token block), and fused. */
  const double dec_flops = 2.0 * N * H * V;
  r = bench_add("decoder chunked", shape_dec, 1, dec_flops, 0);
  {
    int rc = 0;
    for (int rep = 0; rep < BENCH_WARMUP + BENCH_REPS && rc == 0; rep++) {
      if (rep == BENCH_WARMUP && (rc = CU_CHECK(cudaEventRecord(bench_start, S)))) break;
      for (int v0 = 0; v0 < V && rc == 0; v0 += CUTWIN_VOCAB_BLOCK) {
        const int vb = V - v0 < CUTWIN_VOCAB_BLOCK ? V - v0 : CUTWIN_VOCAB_BLOCK;
        const char *w = (const char *)d_wdec + (size_t)v0 * H * 2;
        rc = linear_cuda(d_x_lp, w, NULL, N, H, vb, d_logits, CUTWIN_VOCAB_BLOCK, CU_F32, dt,
                         blas, S);
        if (rc == 0)
          rc = maxpool_logits_cuda(d_logits, CU_F32, CUTWIN_VOCAB_BLOCK, 0, N, v0, vb, d_off, B,
                                   d_pooled, V, S);
      }
    }
    float ms = 0;
    if (rc == 0) rc = CU_CHECK(cudaEventRecord(bench_stop, S));
    if (rc == 0) rc = CU_CHECK(cudaEventSynchronize(bench_stop));
    if (rc == 0) rc = CU_CHECK(cudaEventElapsedTime(&ms, bench_start, bench_stop));
    if (launched(rc, r->op)) r->ms = ms / BENCH_REPS;
  }
  r = bench_add("decoder fused", shape_dec, 0, dec_flops, 0);
  BENCH_TIME(r, decoder_maxpool_cuda(d_x_lp, d_wdec, N, H, V, d_off, B, d_pooled, dt, S));
  if (wgmma_ok) {
    r = bench_add("decoder wgmma", shape_dec, 0, dec_flops, 0);
    BENCH_TIME(r, decoder_maxpool_wgmma_cuda(d_x_lp, d_wdec, N, H, V, d_off, B, d_pooled, dt, S));
  }

  /* Pruning, on pooled weights of which ~1% are positive. With a zero bias, log1p(relu) applied
   * again by every timed call keeps the same set: a positive weight stays positive. */
  float *h_pooled = host_random(BV, -1.0f, 0.0101f);
  int rc = CU_CHECK(cudaStreamSynchronize(S));
  if (rc == 0)
    rc = CU_CHECK(cudaMemcpy(d_pooled, h_pooled, sizeof(float) * BV, cudaMemcpyHostToDevice));
  free(h_pooled);
  r = bench_add("sparsify_weights", shape_bv, 1, 0, BV * 8.0);
  if (launched(rc, "upload of the pooled weights"))
    BENCH_TIME(r, sparsify_weights_cuda(d_pooled, d_bias_v, B, V, 0.0f, 0, d_nnz, NULL, S));
  static char shape_b[48];
  snprintf(shape_b, sizeof shape_b, "(%d)", B);
  r = bench_add("row_offsets", shape_b, 1, 0, B * 12.0);
  BENCH_TIME(r, row_offsets_cuda(d_nnz, B, d_indptr, S));
  int64_t nnz = 0;
  to_host(&nnz, d_indptr + B, sizeof nnz);
  if (nnz > 0 && nnz <= (int64_t)BV) {
    int32_t *d_i = dev_poison(sizeof(int32_t) * (size_t)nnz);
    float *d_v = dev_poison(sizeof(float) * (size_t)nnz);
    static char shape_nnz[48];
    snprintf(shape_nnz, sizeof shape_nnz, "(%d, %d), %lld kept", B, V, (long long)nnz);
    r = bench_add("sparsify_gather", shape_nnz, 1, 0, BV * 4.0 + (double)nnz * 8.0);
    BENCH_TIME(r, sparsify_gather_cuda(d_pooled, B, V, 0.0f, d_indptr, d_i, d_v, S));
  } else {
    printf("bench: sparsify kept %lld entries: not timing sparsify_gather\n", (long long)nnz);
    CHECK(!"sparsify kept entries");
  }
  bench_print(N, dt);
  dev_free_all();
  cudaEventDestroy(bench_start);
  cudaEventDestroy(bench_stop);
}
#endif

int main(int argc, char **argv) {
#ifndef SPLADEX_HAVE_CUDA
  (void)argc, (void)argv;
  printf("test_ops_gpu: built without CUDA: skipped\n");
  return CHECK_SKIP;
#else
  test_lp_refusals();
  if (!cu_have_device()) {
    printf("test_ops_gpu: no usable CUDA device (cudaGetDeviceCount failed or found none): skipped"
           " (%d checks without a device, %d failed)\n", check_count, check_failures);
    return check_failures ? 1 : CHECK_SKIP;
  }
  int bench = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--small") == 0) {
      small_only = 1;
    } else if (strcmp(argv[i], "--bench") == 0) {
      bench = 1;
    } else {
      fprintf(stderr, "usage: test_ops_gpu [--small] [--bench]\n");
      return 2;
    }
  }
  if (CU_CHECK(cudaStreamCreate(&S)) < 0 || CU_CHECK_BLAS(cublasCreate(&blas)) < 0 ||
      CU_CHECK_BLAS(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH)) < 0) {
    fprintf(stderr, "test_ops_gpu: %s\n", err_msg());
    return 1;
  }
  struct cudaDeviceProp prop;
  int dev = 0;
  cudaGetDevice(&dev);
  if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
    printf("test_ops_gpu: device %d: %s (sm_%d%d)%s\n", dev, prop.name, prop.major, prop.minor,
           cu_sync_mode() ? ", SPLADEX_CUDA_SYNC=1" : "");
  {
    char why[256] = "";
    const int rc = decoder_maxpool_wgmma_supported(why, sizeof why);
    CHECK(rc >= 0);
    wgmma_ok = rc == 1;
    if (!wgmma_ok) printf("test_ops_gpu: decoder_maxpool_wgmma not run here: %s\n", why);
#ifdef SPLADEX_BUILT_SM90A
    /* this build has sm_90a code: on a 9.0 device the wgmma kernel must be usable, or it would
     * go untested without a word */
    if (prop.major == 9 && prop.minor == 0) CHECK(wgmma_ok);
#endif
  }
  run_all();
  if (bench && check_failures)
    printf("test_ops_gpu: --bench: not timing, %d checks failed\n", check_failures);
  else if (bench)
    bench_all();
  cublasDestroy(blas);
  cudaStreamDestroy(S);
  return check_report("test_ops_gpu");
#endif
}
