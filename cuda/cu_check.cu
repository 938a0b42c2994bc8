/* cu_check: see cu_check.h. Host code only. */
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "err.h"
}
#include "cu_check.h"

#include <cusparse.h>


extern "C" int cu_check(cudaError_t e, const char *what, const char *file, int line) {
  if (e == cudaSuccess) return 0;
  return err_set(ERR_DEVICE, "CUDA error %s (%s) in %s at %s:%d", cudaGetErrorName(e),
                 cudaGetErrorString(e), what, file, line);
}

extern "C" int cu_check_blas(cublasStatus_t s, const char *what, const char *file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return 0;
  return err_set(ERR_DEVICE, "cuBLAS error %s (%s) in %s at %s:%d", cublasGetStatusName(s),
                 cublasGetStatusString(s), what, file, line);
}

extern "C" int cu_check_sparse(int status, const char *what, const char *file, int line) {
  const cusparseStatus_t s = (cusparseStatus_t)status;
  if (s == CUSPARSE_STATUS_SUCCESS) return 0;
  return err_set(ERR_DEVICE, "cuSPARSE error %s (%s) in %s at %s:%d", cusparseGetErrorName(s),
                 cusparseGetErrorString(s), what, file, line);
}

extern "C" int cu_sync_mode(void) {
  /* A benign race: every thread computes the same value. */
  static int mode = -1;
  if (mode < 0) {
    const char *v = getenv("SPLADEX_CUDA_SYNC");
    mode = (v && strcmp(v, "1") == 0) ? 1 : 0;
  }
  return mode;
}

extern "C" int cu_check_launch(const char *kernel, cudaStream_t stream, const char *file,
                               int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    return err_set(ERR_DEVICE, "CUDA error %s (%s) launching %s at %s:%d", cudaGetErrorName(e),
                   cudaGetErrorString(e), kernel, file, line);
  if (cu_sync_mode()) {
    e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess)
      return err_set(ERR_DEVICE, "CUDA error %s (%s) running %s (SPLADEX_CUDA_SYNC=1) at %s:%d",
                     cudaGetErrorName(e), cudaGetErrorString(e), kernel, file, line);
  }
  return 0;
}

extern "C" int cu_have_device(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    err_set(ERR_DEVICE, "no CUDA device opened: %s (%s)", cudaGetErrorString(e),
            cudaGetErrorName(e));
    return 0;
  }
  if (n < 1) err_set(ERR_DEVICE, "no CUDA device opened: the CUDA runtime found no device");
  return n > 0;
}
