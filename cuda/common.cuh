/* common: device-only helpers shared by the kernels (.cuh: CUDA C++, included by .cu files only;
 * the .h files of cuda/ are the C launcher APIs).
 *
 *   warp_sum(v), warp_max(v)  the sum / max of v over the 32 lanes of a full warp, in every lane
 *                             (butterfly __shfl_xor_sync: the same order in every lane, so every
 *                             lane holds the same bits)
 *   store_lp(p, i, lp, v)     stores v as element i of p in the storage type lp (a cu_dtype:
 *                             __float2half_rn / __float2bfloat16_rn, of which cu_dtype.h has the
 *                             CPU twins, or fp32 as is)
 *   load_lp(p, i, t)          element i of p, stored in type t, as a float (exact)
 *   warp_layernorm_row(...)   the LayerNorm of one row held by a warp (embed_layernorm.cu,
 *                             residual_layernorm.cu)
 * and, for launchers, grid_stride_blocks(n, threads): the grid of a grid-stride loop, and
 *   CU_LAUNCH(grid, block, smem, stream, kernel)(args...)
 *                             kernel<<<grid, block, smem, stream>>>(args...) (the kernel last,
 *                             so a template's commas need no parentheses); under the emulation
 *                             of tests/emu/cuda_emu.h, which compiles these files with g++ (the
 *                             emulated device of the `emu` tests), a checked launch that runs the
 *                             grid on the CPU
 *   CU_DYNAMIC_SHARED(type, name, align)
 *                             extern __shared__ __align__(align) type name[] (the launch's
 *                             dynamic shared memory), or the emulation's buffer
 */
#ifndef SPLADEX_CUDA_COMMON_CUH
#define SPLADEX_CUDA_COMMON_CUH

#include <stddef.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cu_dtype.h"

#ifdef SPLADEX_CUDA_EMU
#define CU_LAUNCH(grid, block, smem, stream, ...) \
  cuda_emu_launcher(grid, block, smem, stream, __VA_ARGS__)
#define CU_DYNAMIC_SHARED(type, name, align) \
  type *name = static_cast<type *>(cuda_emu_dynamic_shared())
#else
#define CU_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define CU_DYNAMIC_SHARED(type, name, align) extern __shared__ __align__(align) type name[]
#endif

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ void store_lp(void *p, size_t i, int lp, float v) {
  if (lp == CU_F16)
    static_cast<__half *>(p)[i] = __float2half_rn(v);
  else if (lp == CU_BF16)
    static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
  else
    static_cast<float *>(p)[i] = v;
}

__device__ __forceinline__ float load_lp(const void *p, size_t i, int t) {
  if (t == CU_F16) return __half2float(static_cast<const __half *>(p)[i]);
  if (t == CU_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
  return static_cast<const float *>(p)[i];
}

/* The LayerNorm of the row row[0, hidden) that the calling warp has just written (lane l the
 * elements l, l + 32, ...; sum: this lane's part of their sum), in place: statistics in fp32 by
 * two passes (mean, then the centered variance), like torch and ops_cpu.h; each lane reads
 * back only what it wrote, so row may alias the kernel's inputs. When out_lp is not NULL the
 * result is also stored as elements lp_base + i of out_lp in lp (store_lp). */
__device__ __forceinline__ void warp_layernorm_row(float *row, int hidden, int lane, float sum,
                                                   const float *__restrict__ gamma,
                                                   const float *__restrict__ beta, float eps,
                                                   void *__restrict__ out_lp, size_t lp_base,
                                                   int lp) {
  const float mean = warp_sum(sum) / (float)hidden;
  float var = 0.0f;
  for (int i = lane; i < hidden; i += 32) {
    const float d = row[i] - mean;
    var += d * d;
  }
  var = warp_sum(var) / (float)hidden;
  const float rstd = 1.0f / sqrtf(var + eps);
  for (int i = lane; i < hidden; i += 32) {
    const float y = (row[i] - mean) * rstd * gamma[i] + beta[i];
    row[i] = y;
    if (out_lp) store_lp(out_lp, lp_base + i, lp, y);
  }
}

/* Host: the blocks of `threads` threads for a grid-stride loop over n > 0 elements: one per
 * `threads` elements, at most 65536 (the loop covers the rest). */
inline unsigned grid_stride_blocks(size_t n, int threads) {
  const size_t blocks = (n + (size_t)threads - 1) / (size_t)threads;
  return (unsigned)(blocks < 65536 ? blocks : 65536);
}

#endif
