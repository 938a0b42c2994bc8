/* test_lp_kernels_emu: runs the lp route's elementwise kernels, their real sources compiled by g++
 * (cuda/bias_gelu.cu, cuda/residual_layernorm.cu, cuda/maxpool_logits.cu, included below, never
 * copies), on the CPU under the host emulation of tests/emu/cuda_emu.h, and compares them with
 * their CPU twins with the criteria of tests/test_ops_gpu.c, adapted to host math:
 *  - k_bias_gelu_lp<__half / __nv_bfloat16> (in place on the 16-bit tensor, bias on / off),
 *    N=33 F=257 and N=1 F=64: each element within 1 ulp of the type of the twin (ops_bias_gelu
 *    on the widened input, unrounded) + 1e-6 (the kernel's erff is the host's here, the twin's a
 *    rational erf); the percentage equal to the rounded twin is printed;
 *  - k_residual_layernorm, N=41 H=129 (and N=1 H=32), x fp32 / fp16 / bf16, with bias + residual,
 *    with neither, and with out aliasing the residual: the fp32 output within 1e-6 normalized
 *    error of ops_residual_layernorm on the widened x (warp butterfly sums against sequential
 *    ones), the fp16 / bf16 copy bit-equal to cu_convert of the emulated fp32 output;
 *  - k_maxpool_logits on a ragged batch of 8 documents (lengths 1 .. 129), logits fp32 / fp16 /
 *    bf16, blocks that cover the batch or start and end inside documents (t0, v0 offsets):
 *    pooled bit-equal to ops_maxpool_logits on the widened logits.
 * Outputs start poisoned (NaN), so an element the kernel misses fails; guard elements around
 * every output must keep their bits (no stray write); the logits' padding columns and the rows
 * around the block hold 1e30, which a read outside the block would put into the max.
 * Grids: the launchers' formulas, gridDim.y capped (kYCap) so that the grid-stride loops over
 * rows / documents run more than once (tests/emu/cuda_emu.h says what is and is not emulated).
 * Usage: test_lp_kernels_emu [--quick]  (--quick: 9 of the 25 cases, every kernel and type;
 * used under the sanitizers)
 * The kernels' only hook: each .cu leaves out its host launchers under
 * SPLADEX_CUDA_EMU_KERNELS_ONLY.
 */
#include "cuda_emu.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

/* the kernels: the .cu files themselves */
#define SPLADEX_CUDA_EMU_KERNELS_ONLY 1
#include "../../cuda/bias_gelu.cu"
#include "../../cuda/maxpool_logits.cu"
#include "../../cuda/residual_layernorm.cu"

#include "cu_dtype.h"
extern "C" {
#include "ops_cpu.h"
}

enum { GUARD = 37 };            /* guard elements before and after every output */
static const unsigned kYCap = 5; /* gridDim.y at most this: the grid-stride loops run */
static const uint32_t kPoison32 = 0xffffffffu;
static const uint16_t kPoison16 = 0xffff;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float uniform(float lo, float hi) { /* xorshift64 */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (hi - lo) * (float)(uint32_t)(rng_state >> 40) / 16777216.0f;
}
static std::vector<float> random_vector(size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float &x : v) x = uniform(lo, hi);
  return v;
}

/* A buffer of n elements of E with GUARD poisoned elements on each side: data() is element 0. */
template <typename E> struct Guarded {
  std::vector<E> all;
  E poison;
  Guarded(size_t n, E p) : all(n + 2 * GUARD, p), poison(p) {}
  E *data() { return all.data() + GUARD; }
  size_t stray() const { /* guard elements that lost their poison */
    size_t bad = 0;
    for (size_t i = 0; i < GUARD; i++)
      bad += memcmp(&all[i], &poison, sizeof(E)) != 0 ||
             memcmp(&all[all.size() - 1 - i], &poison, sizeof(E)) != 0;
    return bad;
  }
};

static unsigned capped(long blocks) { return (unsigned)(blocks < kYCap ? blocks : kYCap); }

static int report(int ok, const char *what) {
  printf("%s: %s\n", what, ok ? "ok" : "FAIL");
  return ok;
}

/* ---- bias_gelu_lp ---- */

template <typename T> static int bias_gelu_case(int n, int f, bool with_bias) {
  const cu_dtype t = std::is_same<T, __half>::value ? CU_F16 : CU_BF16;
  std::vector<float> x = random_vector((size_t)n * f, -4, 4), bias = random_vector(f, -1, 1);
  Guarded<uint16_t> buf((size_t)n * f, kPoison16);
  cu_convert(x.data(), x.size(), t, buf.data());
  std::vector<float> want(x.size());
  for (size_t i = 0; i < x.size(); i++) want[i] = cu_round(x[i], t);
  const float *b = with_bias ? bias.data() : nullptr;
  ops_bias_gelu(want.data(), b, n, f);

  T *x_arg = reinterpret_cast<T *>(buf.data());
  const dim3 grid((unsigned)((f + 255) / 256), capped(n));
  cuda_emu_launch(grid, dim3(256, 1, 1), [=] { k_bias_gelu_lp<T>(x_arg, b, n, f); });

  /* within 1 ulp of t at the twin's magnitude, + 1e-6 */
  const double abs_tol = 1e-6;
  size_t beyond = 0, exact = 0;
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double w = want[i], got = cu_bits_to_f32(buf.data()[i], t);
    const double bound = cu_ulp(w, t) + abs_tol;
    const double d = fabs(got - w);
    beyond += !(d <= bound);
    worst = fmax(worst, d / bound);
    exact += buf.data()[i] == cu_f32_to_bits(want[i], t);
  }
  const size_t stray = buf.stray();
  char what[256];
  snprintf(what, sizeof what,
           "k_bias_gelu_lp<%s> N=%d F=%d bias %s grid %ux%u: %zu of %zu beyond 1 ulp + 1e-6 (worst "
           "%.2f of it), %.2f%% equal to the rounded twin, %zu stray writes",
           cu_dtype_name(t), n, f, with_bias ? "on" : "off", grid.x, grid.y, beyond, want.size(),
           worst, 100.0 * (double)exact / (double)want.size(), stray);
  return report(beyond == 0 && stray == 0, what);
}

/* ---- residual_layernorm ---- */

enum Variant { BIAS_RESIDUAL, PLAIN, OUT_IS_RESIDUAL };

static int residual_layernorm_case(int n, int h, cu_dtype x_type, Variant variant, cu_dtype lp) {
  const size_t count = (size_t)n * h;
  std::vector<float> x = random_vector(count, -2, 2), res = random_vector(count, -2, 2);
  std::vector<float> bias = random_vector(h, -1, 1), gamma = random_vector(h, 0.5f, 1.5f);
  std::vector<float> beta = random_vector(h, -0.5f, 0.5f);
  for (float &v : x) v = cu_round(v, x_type);
  std::vector<unsigned char> x_bytes(cu_dtype_size(x_type) * count);
  cu_convert(x.data(), count, x_type, x_bytes.data());
  const float *b = variant == PLAIN ? nullptr : bias.data();
  const float *r = variant == PLAIN ? nullptr : res.data();
  std::vector<float> want(count);
  ops_residual_layernorm(x.data(), b, r, gamma.data(), beta.data(), 1e-5f, n, h, want.data());

  float poison;
  memcpy(&poison, &kPoison32, sizeof poison);
  Guarded<float> out(count, poison);
  Guarded<uint16_t> out_lp(count, kPoison16);
  if (variant == OUT_IS_RESIDUAL) { /* out = residual: the kernel reads and overwrites it */
    memcpy(out.data(), res.data(), sizeof(float) * count);
    r = out.data();
  }
  const void *x_arg = x_bytes.data();
  const float *g = gamma.data(), *be = beta.data();
  float *out_arg = out.data();
  void *lp_arg = out_lp.data();
  const dim3 grid((unsigned)((n + kWarps - 1) / kWarps));
  cuda_emu_launch(grid, dim3(kWarps * 32, 1, 1), [=] {
    k_residual_layernorm(x_arg, (int)x_type, b, r, g, be, 1e-5f, n, h, out_arg, lp_arg, (int)lp);
  });

  double num = 0, den = 0, max_abs = 0;
  bool nan = false;
  for (size_t i = 0; i < count; i++) {
    const double d = (double)out.data()[i] - want[i];
    nan |= std::isnan(d);
    num += d * d, den += (double)want[i] * want[i];
    max_abs = fmax(max_abs, fabs(d));
  }
  const double err = nan ? INFINITY : sqrt(num / (den > 0 ? den : 1.0));
  std::vector<uint16_t> rounded(count);
  cu_convert(out.data(), count, lp, rounded.data());
  size_t lp_differ = 0;
  for (size_t i = 0; i < count; i++) lp_differ += rounded[i] != out_lp.data()[i];
  const size_t stray = out.stray() + out_lp.stray();
  static const char *const names[] = {"bias + residual", "no bias, no residual", "out = residual"};
  char what[256];
  snprintf(what, sizeof what,
           "k_residual_layernorm x %s N=%d H=%d %s: norm err %.3g (tol 1e-6) max abs %.3g, %zu of "
           "%zu %s copies differ from cu_convert, %zu stray writes",
           cu_dtype_name(x_type), n, h, names[variant], err, max_abs, lp_differ, count,
           cu_dtype_name(lp), stray);
  return report(err <= 1e-6 && lp_differ == 0 && stray == 0, what);
}

/* ---- maxpool_logits ---- */

static int maxpool_case(const std::vector<int> &offsets, int vocab, int t0, int rows, int v0,
                        int vb, cu_dtype logits_type) {
  const int n_docs = (int)offsets.size() - 1, ld = vb + 3, edge_rows = 2;
  const float outside = 1e30f; /* padding columns and the rows around the block: never read */
  std::vector<float> logits((size_t)(rows + 2 * edge_rows) * ld, outside);
  for (int t = 0; t < rows; t++)
    for (int j = 0; j < vb; j++)
      logits[(size_t)(t + edge_rows) * ld + j] = cu_round(uniform(-5, 5), logits_type);
  std::vector<unsigned char> bytes(cu_dtype_size(logits_type) * logits.size());
  cu_convert(logits.data(), logits.size(), logits_type, bytes.data());
  const float *block = logits.data() + (size_t)edge_rows * ld;
  std::vector<float> start = random_vector((size_t)n_docs * vocab, -5, 5), want = start;
  ops_maxpool_logits(block, ld, t0, rows, v0, vb, offsets.data(), n_docs, want.data(), vocab);

  Guarded<float> pooled(start.size(), -INFINITY);
  memcpy(pooled.data(), start.data(), sizeof(float) * start.size());
  const void *l_arg = bytes.data() + cu_dtype_size(logits_type) * (size_t)edge_rows * ld;
  const int *off_arg = offsets.data();
  float *p_arg = pooled.data();
  const dim3 grid((unsigned)((vb + 255) / 256), capped(n_docs));
  cuda_emu_launch(grid, dim3(256, 1, 1), [=] {
    k_maxpool_logits(l_arg, (int)logits_type, ld, t0, rows, v0, vb, off_arg, n_docs, p_arg, vocab);
  });

  size_t differ = 0;
  for (size_t i = 0; i < want.size(); i++)
    differ += memcmp(&want[i], &pooled.data()[i], sizeof(float)) != 0;
  const size_t stray = pooled.stray();
  char what[256];
  snprintf(what, sizeof what,
           "k_maxpool_logits %s %d docs t0=%d rows=%d v0=%d vb=%d grid %ux%u: %zu of %zu pooled "
           "differ from the twin, %zu stray writes",
           cu_dtype_name(logits_type), n_docs, t0, rows, v0, vb, grid.x, grid.y, differ,
           want.size(), stray);
  return report(differ == 0 && stray == 0, what);
}

int main(int argc, char **argv) {
  const bool quick = argc > 1 && !strcmp(argv[1], "--quick");
  if (argc > 1 && !quick) {
    fprintf(stderr, "usage: test_lp_kernels_emu [--quick]\n");
    return 2;
  }
  int failed = 0, cases = 0;
  auto check = [&](int ok) { cases++, failed += !ok; };

  for (int with_bias = 1; with_bias >= 0; with_bias--) {
    check(bias_gelu_case<__half>(33, 257, with_bias));
    if (!quick || with_bias) check(bias_gelu_case<__nv_bfloat16>(33, 257, with_bias));
  }
  if (!quick) {
    check(bias_gelu_case<__half>(1, 64, true));
    check(bias_gelu_case<__nv_bfloat16>(1, 64, false));
  }

  for (int xt = CU_F32; xt <= CU_BF16; xt++)
    for (int v = BIAS_RESIDUAL; v <= OUT_IS_RESIDUAL; v++)
      if (!quick || v == (xt == CU_F32 ? PLAIN : BIAS_RESIDUAL))
        check(residual_layernorm_case(41, 129, (cu_dtype)xt, (Variant)v,
                                      (xt + v) % 2 ? CU_BF16 : CU_F16));
  if (!quick) check(residual_layernorm_case(1, 32, CU_F16, BIAS_RESIDUAL, CU_BF16));

  /* the ragged batch of test_ops_gpu: lengths 1, 3, 17, 64, 2, 129, 31, 33 */
  const std::vector<int> offsets = {0, 1, 4, 21, 85, 87, 216, 247, 280};
  for (int lt = CU_F32; lt <= CU_BF16; lt++) {
    const cu_dtype t = (cu_dtype)lt;
    if (!quick) check(maxpool_case(offsets, 1000, 0, 280, 0, 1000, t));
    check(maxpool_case(offsets, 1000, 20, 50, 333, 129, t)); /* starts and ends inside docs */
    if (!quick) check(maxpool_case(offsets, 700, 86, 150, 397, 300, t));
  }
  printf("test_lp_kernels_emu: %d cases, %d failed\n", cases, failed);
  return failed ? 1 : 0;
}
