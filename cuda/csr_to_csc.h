/* csr_to_csc: the CSR -> CSC transpose of the CIFF export on the GPU (cusparseCsr2cscEx2,
 * CUSPARSE_CSR2CSC_ALG1: per column the row ids come out ascending).
 * CPU twin: cutwin_csr_to_csc (cuda_twins.h), same arguments in the same order, then the stream.
 * Values are moved, never combined, so int32 tfs may be passed bit-cast as floats.
 * Device pointers. It creates a cuSPARSE handle and a work buffer per call (stream-ordered
 * cudaMallocAsync) and destroys them before returning, after synchronizing the stream: meant for
 * large blocks, not a hot loop. Returns 0, ERR_ARG (sizes) or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_CSR_TO_CSC_H
#define SPLADEX_CUDA_CSR_TO_CSC_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int csr_to_csc_cuda(const int32_t *indptr,  /* (n_rows + 1) */
                    const int32_t *indices, /* (nnz) */
                    const float *values,    /* (nnz) */
                    int n_rows, int n_cols, int nnz,
                    int32_t *colptr,        /* (n_cols + 1) */
                    int32_t *rowind,        /* (nnz) */
                    float *cvalues,         /* (nnz) */
                    cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
