/* linear: row-major y (N, out) = x (N, in) . w^T is, in cuBLAS' column-major terms,
 * y^T (out, N; ld ldy) = w^T (out, in) . x^T (in, N) where w (out, in) row-major is a
 * column-major (in, out) matrix with ld = in: so op(A) = T on w, op(B) = N on x. */
#include "linear.h"

#include <cublas_v2.h>

#include "common.cuh"
#include "cu_check.h"

extern "C" {
#include "err.h"
}

static __global__ void k_bias_rows(float *__restrict__ y, int ldy, const float *__restrict__ bias,
                                   int n, int out_features) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= out_features) return;
  const float v = bias[j];
  for (int i = blockIdx.y; i < n; i += gridDim.y) y[(size_t)i * ldy + j] = v;
}

static cudaDataType_t cuda_type(cu_dtype t) {
  return t == CU_F16 ? CUDA_R_16F : t == CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

extern "C" int linear_cuda(const void *x, const void *w, const float *bias, int n,
                           int in_features, int out_features, void *y, int ldy, cu_dtype y_type,
                           cu_dtype dtype, cublasHandle_t handle, cudaStream_t stream) {
  if (y_type != CU_F32 && (y_type != dtype || bias))
    return err_set(ERR_ARG, "linear: a %s output needs %s operands and no bias (here %s, %s)",
                   cu_dtype_name(y_type), cu_dtype_name(y_type), cu_dtype_name(dtype),
                   bias ? "a bias" : "no bias");
  if (n <= 0 || out_features <= 0) return 0;
  int rc;
  if (bias) {
    const int threads = 256;
    dim3 grid((unsigned)((out_features + threads - 1) / threads), (unsigned)(n < 65535 ? n : 65535));
    CU_LAUNCH(grid, threads, 0, stream, k_bias_rows)((float *)y, ldy, bias, n, out_features);
    if ((rc = CU_CHECK_LAUNCH("k_bias_rows", stream)) < 0) return rc;
  }
  /* cublasSetStream resets the handle's workspace to the default pool: only when it changes. */
  cudaStream_t current = NULL;
  if ((rc = CU_CHECK_BLAS(cublasGetStream(handle, &current))) < 0) return rc;
  if (current != stream && (rc = CU_CHECK_BLAS(cublasSetStream(handle, stream))) < 0) return rc;
  const float alpha = 1.0f, beta = bias ? 1.0f : 0.0f;
  const cudaDataType_t t = cuda_type(dtype);
  rc = CU_CHECK_BLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out_features, n, in_features,
                                  &alpha, w, t, in_features, x, t, in_features, &beta, y,
                                  cuda_type(y_type), ldy, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
  if (rc < 0) return rc;
  if (cu_sync_mode()) return CU_CHECK(cudaStreamSynchronize(stream));
  return 0;
}
