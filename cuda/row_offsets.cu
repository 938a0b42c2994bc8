/* row_offsets: one block of 256 threads scans the row counts tile by tile (int64 running total), so any n works
 * in one launch; n is at most a few thousand documents per batch. */
#include "row_offsets.h"

#include <cub/block/block_scan.cuh>

#include "common.cuh"
#include "cu_check.h"

namespace {
const int kThreads = 256;
}

static __global__ void __launch_bounds__(kThreads)
    k_row_offsets(const int32_t *__restrict__ row_nnz, int n, int64_t *__restrict__ indptr) {
  typedef cub::BlockScan<long long, kThreads> scan_t;
  __shared__ typename scan_t::TempStorage scan_storage;
  long long base = 0;
  if (threadIdx.x == 0) indptr[0] = 0;
  for (int i0 = 0; i0 < n; i0 += kThreads) {
    const int i = i0 + (int)threadIdx.x;
    const long long c = i < n ? (long long)row_nnz[i] : 0;
    long long incl, total;
    scan_t(scan_storage).InclusiveSum(c, incl, total);
    if (i < n) indptr[i + 1] = (int64_t)(base + incl);
    base += total;
    __syncthreads(); /* scan_storage is reused by the next tile */
  }
}

extern "C" int row_offsets_cuda(const int32_t *row_nnz, int n, int64_t *indptr,
                                cudaStream_t stream) {
  if (n < 0) return 0;
  CU_LAUNCH(1, kThreads, 0, stream, k_row_offsets)(row_nnz, n, indptr);
  return CU_CHECK_LAUNCH("k_row_offsets", stream);
}
