/* cu_check: error checking shared by every CUDA launcher, and the storage types of the backend.
 *
 * Every CUDA / cuBLAS / cuSPARSE call goes through CU_CHECK / CU_CHECK_BLAS / CU_CHECK_SPARSE,
 * and every kernel launch is followed by CU_CHECK_LAUNCH, which reads cudaGetLastError() and, in
 * debug mode (environment SPLADEX_CUDA_SYNC=1), synchronizes the stream so that an asynchronous
 * fault is reported by the launch that caused it. A failure records one message with err_set()
 * naming the call, the file and the line, and returns ERR_DEVICE.
 * Plain C11 (included from .c and .cu files).
 */
#ifndef SPLADEX_CU_CHECK_H
#define SPLADEX_CU_CHECK_H

#include <stddef.h>

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include "cu_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif


/* 0 if e == cudaSuccess, else ERR_DEVICE with "CUDA error <name> (<string>) in <what> at
 * <file>:<line>". */
int cu_check(cudaError_t e, const char *what, const char *file, int line);

/* The same for cuBLAS and cuSPARSE status values (a cusparseStatus_t passed as int, so this
 * header does not need cusparse.h, whose deprecation attributes are noisy outside -isystem). */
int cu_check_blas(cublasStatus_t s, const char *what, const char *file, int line);
int cu_check_sparse(int s, const char *what, const char *file, int line);

/* After a kernel launch: checks cudaGetLastError() and, in debug mode, synchronizes stream and
 * checks again. Returns 0 or ERR_DEVICE naming the kernel. */
int cu_check_launch(const char *kernel, cudaStream_t stream, const char *file, int line);

/* 1 when SPLADEX_CUDA_SYNC=1 was set when first asked (read once per process). */
int cu_sync_mode(void);

/* 1 when at least one usable CUDA device exists, else 0 (cudaGetDeviceCount failed or returned
 * 0) with the reason recorded by err_set ("no CUDA device opened: CUDA driver version is
 * insufficient ..."); the tests exit 77 on 0. Clears the CUDA error it may have caused. */
int cu_have_device(void);

#define CU_CHECK(call) cu_check((call), #call, __FILE__, __LINE__)
#define CU_CHECK_BLAS(call) cu_check_blas((call), #call, __FILE__, __LINE__)
#define CU_CHECK_SPARSE(call) cu_check_sparse((int)(call), #call, __FILE__, __LINE__)
#define CU_CHECK_LAUNCH(kernel, stream) cu_check_launch((kernel), (stream), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif
