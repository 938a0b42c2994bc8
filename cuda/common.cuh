/* common: device-only helpers shared by the kernels (.cuh: CUDA C++, included by .cu files only;
 * the .h files of cuda/ are the C launcher APIs).
 *
 *   warp_sum(v), warp_max(v)  the sum / max of v over the 32 lanes of a full warp, in every lane
 *                             (butterfly __shfl_xor_sync: the same order in every lane, so every
 *                             lane holds the same bits)
 *   store_lp(p, i, lp, v)     stores v as element i of p in the storage type lp (a cu_dtype:
 *                             __float2half_rn / __float2bfloat16_rn, of which cu_dtype.h has the
 *                             CPU twins, or fp32 as is)
 */
#ifndef SPLADEX_CUDA_COMMON_CUH
#define SPLADEX_CUDA_COMMON_CUH

#include <stddef.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cu_dtype.h"

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

#endif
