/* test_attention_gpu: the tensor-core attention (cuda/attention_mma.cu, k_attention_mma) against
 * its CPU twin cutwin_attention_mma (cuda_twins.h) on ragged batches (lengths 1 .. 512 around
 * the 16-key chunks and 64-key tiles), head dims 16 .. 128, fp16 and bf16 operands, the qkv input
 * in fp32 or in the operand type, with and without the staged bias. The output buffer is poisoned
 * (0xff bytes: NaN in fp16 and bf16) and has 70 rows past the batch, which must stay poisoned.
 * Criterion: every element within 1 ulp of lp of the twin's value (the two differ only in the fp32
 * summation order inside the mma and in expf's last bits, before the final rounding) and at least
 * 99% bit-equal; each case prints its max ulp distance, the share bit-equal and the normalized
 * error against the twin. The refusals (head dims, operand types) are checked without a device.
 * Exits 77 (ctest: Not Run) when built without CUDA or when no CUDA device is usable.
 * `--small`: small shapes only, for compute-sanitizer (scripts/gpu_check.sh).
 * `--bench`: once every check passed, times attention_mma_cuda against attention_cuda (the fp32
 *   route) at the job's shape: 16,384 tokens of ragged ~80-token passages, 12 heads, D 64, fp16;
 *   prints ms per call and the ratio.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef SPLADEX_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "attention.h"
#include "attention_mma.h"
#include "cu_check.h"
#include "cu_dtype.h"
#include "cuda_twins.h"
#include "err.h"

enum { TAIL_ROWS = 70 }; /* rows of out past the batch: never written */

static cudaStream_t S;
static int small_only;

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static float rng_float(float lo, float hi) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (hi - lo) * (float)((uint32_t)(rng_state >> 40)) / 16777216.0f;
}

/* A device copy of n bytes of host (NULL: poisoned with 0xff bytes); NULL and a failed check on
 * error. The caller frees it with cudaFree. */
static void *upload(const void *host, size_t n) {
  void *d = NULL;
  int rc = CU_CHECK(cudaMalloc(&d, n ? n : 4));
  if (rc == 0) rc = host ? CU_CHECK(cudaMemcpy(d, host, n, cudaMemcpyHostToDevice))
                         : CU_CHECK(cudaMemset(d, 0xff, n));
  if (rc < 0) {
    fprintf(stderr, "test_attention_gpu: %s\n", err_msg());
    CHECK(!"device buffer");
    cudaFree(d);
    return NULL;
  }
  return d;
}

/* The lp bits of x as an integer that orders like the values (for ulp distances). */
static int32_t ordered(uint16_t bits) {
  return (bits & 0x8000u) ? -(int32_t)(bits & 0x7fffu) : (int32_t)bits;
}

/* One case: a batch of n_docs documents of lens[] tokens, n_heads heads of head_dim. */
static void run_case(const int *lens, int n_docs, int n_heads, int head_dim, cu_dtype lp,
                     cu_dtype qkv_type, int with_bias) {
  const int D = head_dim, H = n_heads * D;
  int *offsets = malloc(sizeof(int) * (n_docs + 1)), max_len = 0;
  offsets[0] = 0;
  for (int b = 0; b < n_docs; b++) {
    offsets[b + 1] = offsets[b] + lens[b];
    if (lens[b] > max_len) max_len = lens[b];
  }
  const int N = offsets[n_docs];
  const size_t nqkv = (size_t)N * 3 * H, nout = (size_t)N * H, nall = (size_t)(N + TAIL_ROWS) * H;
  float *qkv = malloc(sizeof(float) * nqkv), *bias = malloc(sizeof(float) * 3 * H);
  float *twin = malloc(sizeof(float) * nout);
  float *scratch = malloc(sizeof(float) * cutwin_attention_mma_scratch_floats(D));
  uint16_t *got = malloc(sizeof(uint16_t) * nall);
  void *qkv_bytes = malloc(cu_dtype_size(qkv_type) * nqkv);
  for (size_t i = 0; i < nqkv; i++) qkv[i] = cu_round(rng_float(-1.0f, 1.0f), qkv_type);
  for (int i = 0; i < 3 * H; i++) bias[i] = rng_float(-0.5f, 0.5f);
  cu_convert(qkv, nqkv, qkv_type, qkv_bytes);
  cutwin_attention_mma(qkv, with_bias ? bias : NULL, offsets, n_docs, n_heads, D, lp, scratch,
                       twin);

  void *d_qkv = upload(qkv_bytes, cu_dtype_size(qkv_type) * nqkv);
  float *d_bias = upload(bias, sizeof(float) * 3 * H);
  int *d_off = upload(offsets, sizeof(int) * (n_docs + 1));
  void *d_out = upload(NULL, sizeof(uint16_t) * nall);
  char name[96];
  snprintf(name, sizeof name, "%s qkv %s D=%d heads=%d bias=%d", cu_dtype_name(lp),
           cu_dtype_name(qkv_type), D, n_heads, with_bias);
  int rc = -1;
  if (d_qkv && d_bias && d_off && d_out) {
    rc = attention_mma_cuda(d_qkv, qkv_type, with_bias ? d_bias : NULL, d_off, n_docs, n_heads, D,
                            d_out, lp, max_len, S);
    if (rc == 0) rc = CU_CHECK(cudaStreamSynchronize(S));
    if (rc == 0) rc = CU_CHECK(cudaMemcpy(got, d_out, sizeof(uint16_t) * nall,
                                          cudaMemcpyDeviceToHost));
    if (rc < 0) fprintf(stderr, "test_attention_gpu: %s: %s\n", name, err_msg());
  }
  CHECK(rc == 0);
  if (rc == 0) {
    size_t equal = 0, tail_written = 0;
    int32_t max_ulp = 0;
    double num = 0, den = 0;
    for (size_t i = 0; i < nout; i++) {
      const float g = cu_bits_to_f32(got[i], lp);
      int32_t ulp = isnan(g) ? INT32_MAX
                             : abs(ordered(got[i]) - ordered(cu_f32_to_bits(twin[i], lp)));
      if (ulp > max_ulp) max_ulp = ulp;
      equal += ulp == 0;
      num += isnan(g) ? INFINITY : ((double)g - twin[i]) * ((double)g - twin[i]);
      den += (double)twin[i] * twin[i];
    }
    for (size_t i = nout; i < nall; i++) tail_written += got[i] != 0xffffu;
    const double share = (double)equal / (double)(nout ? nout : 1);
    const int ok = max_ulp <= 1 && share >= 0.99 && tail_written == 0;
    printf("attention_mma %-36s vs twin: max %d ulp, %.4f%% bit-equal, norm err %.3g, %zu "
           "stray writes %s\n",
           name, max_ulp, 100.0 * share, sqrt(num / (den > 0 ? den : 1)), tail_written,
           ok ? "ok" : "FAIL");
    CHECK(max_ulp <= 1);
    CHECK(share >= 0.99);
    CHECK(tail_written == 0);
  }
  cudaFree(d_qkv), cudaFree(d_bias), cudaFree(d_off), cudaFree(d_out);
  free(offsets), free(qkv), free(bias), free(twin), free(scratch), free(got), free(qkv_bytes);
}

static void run_all(void) {
  static const int lens[] = {1, 2, 15, 16, 17, 63, 64, 65, 130, 512};
  static const int small_lens[] = {1, 2, 15, 16, 17, 63, 64, 65};
  static const int one[] = {1};
  static const int dims[][2] = {{16, 12}, {32, 3}, {64, 12}, {128, 1}, {48, 2}, {112, 1}};
  run_case(one, 1, 1, 64, CU_F16, CU_F32, 0); /* T = 1 */
  const int n_dims = small_only ? 2 : (int)(sizeof dims / sizeof *dims);
  for (int di = 0; di < n_dims; di++)
    for (int t = CU_F16; t <= CU_BF16; t++)
      for (int variant = 0; variant < 4; variant++) {
        /* qkv in fp32 or in lp, bias or none: all four (--small: two) */
        if (small_only && variant % 3 != 0) continue;
        const cu_dtype lp = (cu_dtype)t;
        if (small_only)
          run_case(small_lens, 8, di == 0 ? 2 : 1, dims[di][0], lp, variant ? lp : CU_F32,
                   variant != 0);
        else
          run_case(lens, 10, dims[di][1], dims[di][0], lp, variant & 1 ? lp : CU_F32,
                   variant >> 1);
      }
}

/* The refusals need no device: nothing is launched. */
static void test_refusals(void) {
  static const int ok_dims[] = {16, 32, 48, 64, 80, 96, 112, 128};
  static const int bad_dims[] = {0, 8, 24, 72, 127, 144, 256};
  for (size_t i = 0; i < sizeof ok_dims / sizeof *ok_dims; i++) {
    CHECK(attention_mma_supported(ok_dims[i], CU_F16));
    CHECK(attention_mma_supported(ok_dims[i], CU_BF16));
    CHECK(!attention_mma_supported(ok_dims[i], CU_F32));
  }
  for (size_t i = 0; i < sizeof bad_dims / sizeof *bad_dims; i++) {
    CHECK(!attention_mma_supported(bad_dims[i], CU_F16));
    CHECK(attention_mma_cuda(NULL, CU_F32, NULL, NULL, 1, 1, bad_dims[i], NULL, CU_F16, 8, NULL) ==
          ERR_ARG);
  }
  CHECK(attention_mma_cuda(NULL, CU_F32, NULL, NULL, 1, 1, 64, NULL, CU_F32, 8, NULL) == ERR_ARG);
  CHECK(strstr(err_msg(), "attention_mma") != NULL);
  CHECK(attention_mma_cuda(NULL, (cu_dtype)7, NULL, NULL, 1, 1, 64, NULL, CU_F16, 8, NULL) ==
        ERR_ARG);
  CHECK(attention_mma_cuda(NULL, CU_F16, NULL, NULL, 1, 1, 64, NULL, CU_F16, 64 * 65536, NULL) ==
        ERR_ARG);
  printf("attention_mma: refusals checked (head dims not a multiple of 16 in [16, 128], fp32 "
         "operands, unknown qkv type, too long)\n");
}

/* ---- --bench ---- */

/* ms per call of `call` over 20 launches after 3, or -1 (and a failed check) on error. */
#define TIME_MS(ms, call)                                                                     \
  do {                                                                                        \
    cudaEvent_t t0_, t1_;                                                                     \
    int rc_ = CU_CHECK(cudaEventCreate(&t0_));                                                \
    if (rc_ == 0) rc_ = CU_CHECK(cudaEventCreate(&t1_));                                      \
    for (int i_ = 0; i_ < 3 && rc_ == 0; i_++) rc_ = (call);                                  \
    if (rc_ == 0) rc_ = CU_CHECK(cudaEventRecord(t0_, S));                                    \
    for (int i_ = 0; i_ < 20 && rc_ == 0; i_++) rc_ = (call);                                 \
    if (rc_ == 0) rc_ = CU_CHECK(cudaEventRecord(t1_, S));                                    \
    if (rc_ == 0) rc_ = CU_CHECK(cudaEventSynchronize(t1_));                                  \
    float f_ = 0;                                                                             \
    if (rc_ == 0) rc_ = CU_CHECK(cudaEventElapsedTime(&f_, t0_, t1_));                        \
    (ms) = rc_ == 0 ? f_ / 20 : -1.0;                                                         \
    if (rc_ < 0) fprintf(stderr, "test_attention_gpu: bench: %s\n", err_msg());               \
    CHECK(rc_ == 0);                                                                          \
  } while (0)

static void bench(void) {
  enum { TOKENS = 16384, HEADS = 12, D = 64, H = HEADS * D, MAX_DOCS = 512 };
  int offsets[MAX_DOCS + 1], n_docs = 0, max_len = 0;
  offsets[0] = 0;
  while (n_docs < MAX_DOCS) { /* ragged 40 .. 120 tokens (mean ~80) until 16,384 tokens */
    int len = 40 + (int)rng_float(0.0f, 81.0f);
    if (len > 120) len = 120;
    if (offsets[n_docs] + len > TOKENS) len = TOKENS - offsets[n_docs];
    if (len <= 0) break;
    offsets[n_docs + 1] = offsets[n_docs] + len;
    if (len > max_len) max_len = len;
    n_docs++;
  }
  const int N = offsets[n_docs];
  const size_t nqkv = (size_t)N * 3 * H;
  float *qkv = malloc(sizeof(float) * nqkv), *bias = malloc(sizeof(float) * 3 * H);
  uint16_t *qkv16 = malloc(sizeof(uint16_t) * nqkv);
  for (size_t i = 0; i < nqkv; i++) qkv[i] = rng_float(-1.0f, 1.0f);
  for (int i = 0; i < 3 * H; i++) bias[i] = 0.0f;
  cu_convert(qkv, nqkv, CU_F16, qkv16);
  float *d_qkv = upload(qkv, sizeof(float) * nqkv), *d_bias = upload(bias, sizeof(float) * 3 * H);
  void *d_qkv16 = upload(qkv16, sizeof(uint16_t) * nqkv);
  int *d_off = upload(offsets, sizeof(int) * (n_docs + 1));
  float *d_out = upload(NULL, sizeof(float) * (size_t)N * H);
  void *d_lp = upload(NULL, sizeof(uint16_t) * (size_t)N * H);
  double ms_fp32 = -1, ms_mma16 = -1, ms_mma32 = -1;
  if (d_qkv && d_bias && d_qkv16 && d_off && d_out && d_lp) {
    TIME_MS(ms_fp32, attention_cuda(d_qkv, d_off, n_docs, HEADS, D, NULL, d_out, d_lp, CU_F16,
                                    max_len, S));
    TIME_MS(ms_mma16, attention_mma_cuda(d_qkv16, CU_F16, d_bias, d_off, n_docs, HEADS, D, d_lp,
                                         CU_F16, max_len, S));
    TIME_MS(ms_mma32, attention_mma_cuda(d_qkv, CU_F32, d_bias, d_off, n_docs, HEADS, D, d_lp,
                                         CU_F16, max_len, S));
  }
  double flops = 0; /* q k^T and P V over the documents' own keys */
  for (int b = 0; b < n_docs; b++) {
    const double len = offsets[b + 1] - offsets[b];
    flops += 4.0 * len * len * H;
  }
  printf("\nbench attention: %d passages, %d tokens (max %d), %d heads, D %d, fp16 out\n", n_docs,
         N, max_len, HEADS, D);
  printf("bench attention_cuda (fp32 route, fp32 qkv)   %8.4f ms  %6.2f TFLOP/s\n", ms_fp32,
         ms_fp32 > 0 ? flops / (ms_fp32 * 1e9) : 0.0);
  printf("bench attention_mma_cuda (fp16 qkv + bias)    %8.4f ms  %6.2f TFLOP/s  %.2fx faster\n",
         ms_mma16, ms_mma16 > 0 ? flops / (ms_mma16 * 1e9) : 0.0,
         ms_mma16 > 0 ? ms_fp32 / ms_mma16 : 0.0);
  printf("bench attention_mma_cuda (fp32 qkv + bias)    %8.4f ms  %6.2f TFLOP/s  %.2fx faster\n",
         ms_mma32, ms_mma32 > 0 ? flops / (ms_mma32 * 1e9) : 0.0,
         ms_mma32 > 0 ? ms_fp32 / ms_mma32 : 0.0);
  cudaFree(d_qkv), cudaFree(d_bias), cudaFree(d_qkv16), cudaFree(d_off), cudaFree(d_out);
  cudaFree(d_lp);
  free(qkv), free(bias), free(qkv16);
}
#endif

int main(int argc, char **argv) {
#ifndef SPLADEX_HAVE_CUDA
  (void)argc, (void)argv;
  printf("test_attention_gpu: built without CUDA: skipped\n");
  return CHECK_SKIP;
#else
  int want_bench = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--small") == 0) {
      small_only = 1;
    } else if (strcmp(argv[i], "--bench") == 0) {
      want_bench = 1;
    } else {
      fprintf(stderr, "usage: test_attention_gpu [--small] [--bench]\n");
      return 2;
    }
  }
  test_refusals();
  if (!cu_have_device()) {
    printf("test_attention_gpu: no usable CUDA device: skipped (%d checks without a device, %d "
           "failed)\n", check_count, check_failures);
    return check_failures ? 1 : CHECK_SKIP;
  }
  if (CU_CHECK(cudaStreamCreate(&S)) < 0) {
    fprintf(stderr, "test_attention_gpu: %s\n", err_msg());
    return 1;
  }
  run_all();
  if (want_bench && check_failures)
    printf("test_attention_gpu: --bench: not timing, %d checks failed\n", check_failures);
  else if (want_bench)
    bench();
  cudaStreamDestroy(S);
  return check_report("test_attention_gpu");
#endif
}
