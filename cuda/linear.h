/* linear: y[i, 0:out_features] = x[i, :] . w^T (+ bias), an HF Linear, through cublasGemmEx
 * with fp32 accumulation (CUBLAS_COMPUTE_32F: for fp32 operands that is true fp32, no TF32; for
 * fp16 / bf16 operands the tensor cores with fp32 accumulation).
 * CPU twin: ops_linear (ops_cpu.h), same arguments in the same order (y as void *), then y's
 * type y_type: CU_F32, or the operand type itself (fp16 / bf16 operands only: cuBLAS rounds the
 * fp32 sums once to y_type, cu_round of the twin's result, as torch's fp16 Linear does; bias
 * must then be NULL: the next op adds it); then the operand type of x and w (both in `dtype`),
 * the cuBLAS handle (its stream is set to `stream` if it differs; a handle whose stream is
 * already `stream` keeps its cublasSetWorkspace buffer) and the stream.
 * With bias, the rows of y are first set to the bias (a small kernel) and the GEMM adds to them,
 * as ops_linear does. Device pointers. Returns 0, ERR_ARG (a y_type / bias that is not
 * allowed) or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_LINEAR_H
#define SPLADEX_CUDA_LINEAR_H

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

int linear_cuda(const void *x,      /* (N, in_features) in dtype */
                const void *w,      /* (out_features, in_features) in dtype, HF layout */
                const float *bias,  /* (out_features) or NULL */
                int n, int in_features, int out_features,
                void *y, int ldy,   /* (N, ldy) in y_type */
                cu_dtype y_type,    /* CU_F32, or dtype (then bias is NULL) */
                cu_dtype dtype, cublasHandle_t handle,
                cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
