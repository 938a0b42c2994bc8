/* test_attention_mma_emu: runs the tensor-core attention kernel k_attention_mma<D, T> of
 * cuda/attention_mma.cu, its real source compiled by g++ (included below, never a copy), on the
 * CPU under the host emulation of tests/emu/cuda_emu.h, and compares its output with the CPU twin
 * cutwin_attention_mma (cuda/cuda_twins.c). No GPU needed: it runs in every ctest run and under
 * AddressSanitizer (label `c`) whenever the CUDA toolkit's headers (cuda_fp16.h) are there.
 * Usage: test_attention_mma_emu [--quick]  (--quick: 3 of the cases, used under ASan)
 *
 * What it checks, per case (head dim D, operands fp16 / bf16, qkv in fp32 / fp16 / bf16, with or
 * without the qkv bias, ragged documents of lengths 1, 2, 15, 16, 17, 63, 64, 65, 130 and one
 * case with a 512-token document):
 *  - every output element of every document is bit-equal to the twin's (lp-rounded) value;
 *  - no write outside the documents' rows: the output rows before the first and after the last
 *    document start as 0xffff (NaN in fp16 and bf16) and must still be;
 *  - no read outside them: the qkv rows there are NaN (a read would spread a NaN into the output);
 *  - the emulation itself: a __syncthreads or warp operation that a returned thread can no longer
 *    join, a partial shuffle mask, or an mma asm other than the one below aborts the test.
 * Why bit-equal holds: the emulated mma adds a fragment's 16 products in order in fp32, exactly
 * as the twin's dot products do; expf, the divisions and the fp16 / bf16 roundings are the host's
 * on both sides. On a GPU the same kernel differs from the twin in the last bits (the tensor
 * cores' summation order, CUDA's expf): tests/test_attention_gpu.c checks that with a bound.
 *
 * What this shows: the kernel's indexing (fragment placement in registers and shared memory,
 * the key-tile / chunk / ragged-end masking, the online softmax, the stores) is the twin's
 * algorithm, with the mma built from the PTX ISA's fragment tables (cuda_emu.cpp) rather than
 * from cuda_twins.h's helpers. What it does not show: anything about real hardware: timing,
 * occupancy, register spills (tests/sh/test_sass.sh), the memory model beyond the barriers (each
 * CUDA thread is a fiber run until it blocks, __syncthreads a barrier of the block, shuffles and
 * mma barriers of the warp: a race the barriers do not order does not show), warp-synchronous
 * code the kernel does not synchronize, bank conflicts, the tensor cores' own rounding, device expf.
 * The kernel's only hook: cuda/attention_mma.cu leaves out its host launchers under
 * SPLADEX_CUDA_EMU_KERNELS_ONLY (the emulated device of the `emu` tests compiles them too). Its
 * inline-asm mma.sync is caught by cuda_emu.h's `asm` macro, which checks the instruction and
 * operand text exactly and calls cuda_emu_mma_m16n8k16 with the operands the asm names (d, a,
 * b0, b1).
 */
#include "cuda_emu.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

/* the kernel: cuda/attention_mma.cu itself, without its launchers */
#define SPLADEX_CUDA_EMU_KERNELS_ONLY 1
#include "../../cuda/attention_mma.cu"

#include "cu_dtype.h"
#include "cuda_twins.h"

static uint64_t rng_state = 0x1234567887654321ull;
static float uniform(float lo, float hi) { /* xorshift64 */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (hi - lo) * (float)(uint32_t)(rng_state >> 40) / 16777216.0f;
}

enum { LEAD_ROWS = 3, TAIL_ROWS = 5, POISON = 0xffff };

/* One launch of k_attention_mma<D, T> over documents of lengths lens[0, n_docs) (packed after
 * LEAD_ROWS rows outside any document), compared with the twin. Returns 1 when it holds. */
template <int D, typename T>
static int run_case(const int *lens, int n_docs, int heads, cu_dtype qkv_type, bool with_bias) {
  const cu_dtype lp = std::is_same<T, __half>::value ? CU_F16 : CU_BF16;
  const int H = heads * D;
  std::vector<int> offsets(n_docs + 1, LEAD_ROWS);
  int max_len = 0;
  for (int b = 0; b < n_docs; b++) {
    offsets[b + 1] = offsets[b] + lens[b];
    max_len = std::max(max_len, lens[b]);
  }
  const int rows = offsets[n_docs] + TAIL_ROWS;
  std::vector<float> qkv((size_t)rows * 3 * H), bias(3 * H), twin((size_t)rows * H, 0.0f); /* (rows, 3H) */
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < 3 * H; c++)
      qkv[(size_t)r * 3 * H + c] = r < offsets[0] || r >= offsets[n_docs]
                                       ? NAN
                                       : cu_round(uniform(-1.0f, 1.0f), qkv_type);
  for (float &x : bias) x = uniform(-0.5f, 0.5f);
  std::vector<unsigned char> qkv_bytes(cu_dtype_size(qkv_type) * qkv.size());
  cu_convert(qkv.data(), qkv.size(), qkv_type, qkv_bytes.data());
  std::vector<float> scratch(cutwin_attention_mma_scratch_floats(D));
  const float *bias_or_null = with_bias ? bias.data() : nullptr;
  cutwin_attention_mma(qkv.data(), bias_or_null, offsets.data(), n_docs, heads, D, lp,
                       scratch.data(), twin.data());

  std::vector<uint16_t> out((size_t)rows * H, POISON); /* (rows, H) in lp */
  const dim3 grid((unsigned)n_docs, (unsigned)heads, (unsigned)((max_len + kQueryBlock - 1) / kQueryBlock));
  const void *qkv_arg = qkv_bytes.data();
  const int *offsets_arg = offsets.data();
  T *out_arg = reinterpret_cast<T *>(out.data());
  const float scale = 1.0f / sqrtf((float)D); /* launch()'s */
  cuda_emu_launch(grid, dim3(kThreads, 1, 1), [=] {
    k_attention_mma<D, T>(qkv_arg, (int)qkv_type, bias_or_null, offsets_arg, heads, scale, out_arg);
  });

  size_t differ = 0, stray = 0, first = (size_t)-1;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < H; c++) {
      const size_t i = (size_t)r * H + c;
      if (r < offsets[0] || r >= offsets[n_docs]) {
        stray += out[i] != POISON;
      } else if (out[i] != cu_f32_to_bits(twin[i], lp)) {
        if (!differ++) first = i;
      }
    }
  const int ok = differ == 0 && stray == 0;
  printf("k_attention_mma<%d, %s> qkv %s, %d head%s, bias %s, %d docs, %d tokens: %zu of %zu "
         "elements differ from the twin, %zu stray writes: %s\n",
         D, cu_dtype_name(lp), cu_dtype_name(qkv_type), heads, heads > 1 ? "s" : "",
         with_bias ? "on" : "off", n_docs, offsets[n_docs] - offsets[0], differ,
         (size_t)(offsets[n_docs] - offsets[0]) * H, stray, ok ? "ok" : "FAIL");
  if (differ) {
    const uint16_t want = cu_f32_to_bits(twin[first], lp);
    printf("  first: row %zu column %zu: kernel 0x%04x, twin 0x%04x (%g)\n", first / H, first % H,
           out[first], want, twin[first]);
  }
  return ok;
}

int main(int argc, char **argv) {
  const bool quick = argc > 1 && !strcmp(argv[1], "--quick");
  if (argc > 1 && !quick) {
    fprintf(stderr, "usage: test_attention_mma_emu [--quick]\n");
    return 2;
  }
  static const int ragged[] = {1, 2, 15, 16, 17, 63, 64, 65, 130};
  const int n = (int)(sizeof ragged / sizeof *ragged);
  int failed = 0, cases = 0;
  auto check = [&](int ok) { cases++, failed += !ok; };
  check(run_case<64, __half>(ragged, n, 2, CU_F32, true));
  check(run_case<64, __nv_bfloat16>(ragged, n, 1, CU_BF16, false));
  check(run_case<16, __half>(ragged, n, 3, CU_F16, false));
  if (!quick) {
    check(run_case<32, __nv_bfloat16>(ragged, n, 1, CU_F32, true));
    check(run_case<48, __half>(ragged, n, 1, CU_F32, false));
    check(run_case<128, __half>(ragged, n, 1, CU_F16, true));
    check(run_case<128, __nv_bfloat16>(ragged, n, 1, CU_F32, true));
    static const int long_doc[] = {512, 3};
    check(run_case<64, __half>(long_doc, 2, 1, CU_F32, true));
  }
  printf("test_attention_mma_emu: %d cases, %d failed\n", cases, failed);
  return failed ? 1 : 0;
}
