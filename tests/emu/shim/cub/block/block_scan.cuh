/* shim/cub/block/block_scan.cuh: cub::BlockScan for the host emulation of tests/emu/cuda_emu.h,
 * in place of CUB's (whose warp scans are inline PTX). The contract of CUB's BlockScan for a 1-D
 * block of BLOCK_DIM_X threads, the calls cuda/ uses: InclusiveSum / ExclusiveSum (input,
 * output, block_aggregate), every thread getting the block's total as block_aggregate. Thread 0
 * adds the inputs in thread order between two barriers. Not CUB's code: what this checks is the
 * kernels' use of a block scan, not CUB. More forgiving than CUB in one way: CUB needs a
 * __syncthreads() before TempStorage is reused, this does not.
 */
#ifndef SPLADEX_EMU_SHIM_CUB_BLOCK_SCAN_CUH
#define SPLADEX_EMU_SHIM_CUB_BLOCK_SCAN_CUH

#include <cstdio>
#include <cstdlib>

namespace cub {

template <typename T, int BLOCK_DIM_X> class BlockScan {
 public:
  struct TempStorage {
    T in[BLOCK_DIM_X], out[BLOCK_DIM_X], total;
  };
  explicit BlockScan(TempStorage &storage) : s_(storage) {}
  void InclusiveSum(T input, T &output, T &block_aggregate) {
    scan(input, output, block_aggregate, true);
  }
  void ExclusiveSum(T input, T &output, T &block_aggregate) {
    scan(input, output, block_aggregate, false);
  }

 private:
  void scan(T input, T &output, T &block_aggregate, bool inclusive) {
    if (blockDim.x != (unsigned)BLOCK_DIM_X || blockDim.y != 1 || blockDim.z != 1) {
      fprintf(stderr, "shim cub::BlockScan: a block of %u threads, BLOCK_DIM_X %d\n", blockDim.x,
              BLOCK_DIM_X);
      abort();
    }
    const unsigned t = threadIdx.x;
    s_.in[t] = input;
    __syncthreads();
    if (t == 0) {
      T run = T();
      for (int i = 0; i < BLOCK_DIM_X; i++) {
        if (!inclusive) s_.out[i] = run;
        run = run + s_.in[i];
        if (inclusive) s_.out[i] = run;
      }
      s_.total = run;
    }
    __syncthreads();
    output = s_.out[t];
    block_aggregate = s_.total;
  }
  TempStorage &s_;
};

}  // namespace cub

#endif
