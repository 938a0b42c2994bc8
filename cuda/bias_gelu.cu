/* bias_gelu: elementwise over the (N, F) elements, one thread per column and row; erf GELU in
 * fp32 as ops_bias_gelu writes it (the device's erff, the CPU twin's rational erf: both within
 * 1 ulp-level of erf). k_bias_gelu keeps x fp32 (the fp32 activations route); k_bias_gelu_lp
 * reads and writes only the 16-bit copy (the lp route: no 32-bit store at all,
 * tests/sh/test_sass.sh checks its SASS). */
#include "bias_gelu.h"

extern "C" {
#include "err.h"
}

#include "common.cuh"
#include "cu_check.h"

static __device__ __forceinline__ float gelu_erf(float v) {
  return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
}

/* Block (x, y) covers 256 columns of the rows y, y + gridDim.y, ...: the bias index is the column,
 * with no 64-bit division per element. */
static __global__ void k_bias_gelu(float *__restrict__ x, const float *__restrict__ bias, int n,
                                   int features, void *__restrict__ out_lp, int lp) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= features) return;
  const float b = bias ? bias[c] : 0.0f;
  for (int r = blockIdx.y; r < n; r += gridDim.y) {
    const size_t i = (size_t)r * features + c;
    float v = x[i];
    if (bias) v += b;
    const float y = gelu_erf(v);
    x[i] = y;
    if (out_lp) store_lp(out_lp, i, lp, y);
  }
}

/* One instance per 16-bit type (__half, __nv_bfloat16), so that no fp32 load or store exists in
 * its code at all (scripts/sass_claims.txt). */
static __device__ __forceinline__ float widen(__half v) { return __half2float(v); }
static __device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
static __device__ __forceinline__ void narrow(float v, __half *out) { *out = __float2half_rn(v); }
static __device__ __forceinline__ void narrow(float v, __nv_bfloat16 *out) {
  *out = __float2bfloat16_rn(v);
}

template <typename T>
static __global__ void k_bias_gelu_lp(T *__restrict__ x, const float *__restrict__ bias, int n,
                                      int features) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= features) return;
  const float b = bias ? bias[c] : 0.0f;
  for (int r = blockIdx.y; r < n; r += gridDim.y) {
    const size_t i = (size_t)r * features + c;
    float v = widen(x[i]);
    if (bias) v += b;
    narrow(gelu_erf(v), &x[i]);
  }
}

#ifndef SPLADEX_CUDA_EMU_KERNELS_ONLY /* tests/emu/test_lp_kernels_emu.cpp: the kernels alone */
extern "C" int bias_gelu_cuda(float *x, const float *bias, int n, int features, void *out_lp,
                              cu_dtype lp, cudaStream_t stream) {
  if (n <= 0 || features <= 0) return 0;
  const int threads = 256;
  dim3 grid((unsigned)((features + threads - 1) / threads), (unsigned)(n < 65535 ? n : 65535));
  CU_LAUNCH(grid, threads, 0, stream, k_bias_gelu)(x, bias, n, features, out_lp, (int)lp);
  return CU_CHECK_LAUNCH("k_bias_gelu", stream);
}

extern "C" int bias_gelu_lp_cuda(void *x, const float *bias, int n, int features, cu_dtype lp,
                                 cudaStream_t stream) {
  if (lp != CU_F16 && lp != CU_BF16)
    return err_set(ERR_ARG, "bias_gelu_lp: %s is not a 16-bit type", cu_dtype_name(lp));
  if (n <= 0 || features <= 0) return 0;
  const int threads = 256;
  dim3 grid((unsigned)((features + threads - 1) / threads), (unsigned)(n < 65535 ? n : 65535));
  if (lp == CU_F16)
    CU_LAUNCH(grid, threads, 0, stream, k_bias_gelu_lp<__half>)
        (static_cast<__half *>(x), bias, n, features);
  else
    CU_LAUNCH(grid, threads, 0, stream, k_bias_gelu_lp<__nv_bfloat16>)
        (static_cast<__nv_bfloat16 *>(x), bias, n, features);
  return CU_CHECK_LAUNCH("k_bias_gelu_lp", stream);
}
#endif
