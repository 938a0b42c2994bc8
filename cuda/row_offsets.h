/* row_offsets: indptr = exclusive prefix sum of row_nnz (indptr[0] = 0, n + 1 entries), one block
 * on the device. CPU twin: cutwin_row_offsets (cuda_twins.h), same arguments, then the stream.
 * Device pointers. Returns 0 or ERR_DEVICE. */
#ifndef SPLADEX_CUDA_ROW_OFFSETS_H
#define SPLADEX_CUDA_ROW_OFFSETS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

int row_offsets_cuda(const int32_t *row_nnz, /* (n) */
                     int n,
                     int64_t *indptr,        /* (n + 1) */
                     cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
