/* csr_to_csc: cusparseCsr2cscEx2 with a per-call handle and stream-ordered work buffer. */
#include "csr_to_csc.h"

#include <cusparse.h>

extern "C" {
#include "err.h"
}
#include "cu_check.h"

extern "C" int csr_to_csc_cuda(const int32_t *indptr, const int32_t *indices, const float *values,
                               int n_rows, int n_cols, int nnz, int32_t *colptr, int32_t *rowind,
                               float *cvalues, cudaStream_t stream) {
  if (n_rows < 0 || n_cols < 0 || nnz < 0)
    return err_set(ERR_ARG, "csr_to_csc: bad sizes %d x %d, %d non-zeros", n_rows, n_cols, nnz);
  if (nnz == 0 || n_rows == 0) {
    /* Nothing to move: every column is empty. */
    return CU_CHECK(cudaMemsetAsync(colptr, 0, sizeof(int32_t) * ((size_t)n_cols + 1), stream));
  }
  cusparseHandle_t handle = NULL;
  void *buffer = NULL;
  size_t bytes = 0;
  int rc = CU_CHECK_SPARSE(cusparseCreate(&handle));
  if (rc < 0) return rc;
  if ((rc = CU_CHECK_SPARSE(cusparseSetStream(handle, stream))) < 0) goto fail;
  rc = CU_CHECK_SPARSE(cusparseCsr2cscEx2_bufferSize(
      handle, n_rows, n_cols, nnz, values, indptr, indices, cvalues, colptr, rowind, CUDA_R_32F,
      CUSPARSE_ACTION_NUMERIC, CUSPARSE_INDEX_BASE_ZERO, CUSPARSE_CSR2CSC_ALG1, &bytes));
  if (rc < 0) goto fail;
  if ((rc = CU_CHECK(cudaMallocAsync(&buffer, bytes ? bytes : 1, stream))) < 0) goto fail;
  rc = CU_CHECK_SPARSE(cusparseCsr2cscEx2(handle, n_rows, n_cols, nnz, values, indptr, indices,
                                          cvalues, colptr, rowind, CUDA_R_32F,
                                          CUSPARSE_ACTION_NUMERIC, CUSPARSE_INDEX_BASE_ZERO,
                                          CUSPARSE_CSR2CSC_ALG1, buffer));
  if (rc < 0) goto fail;
  rc = CU_CHECK(cudaStreamSynchronize(stream));
fail:
  if (buffer) {
    /* Checked only when nothing failed before: the first failure keeps its message. */
    cudaError_t fe = cudaFreeAsync(buffer, stream);
    if (rc == 0) rc = CU_CHECK(fe);
  }
  if (handle) cusparseDestroy(handle);
  return rc;
}
