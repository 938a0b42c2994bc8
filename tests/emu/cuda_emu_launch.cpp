/* cuda_emu_launch: cuda_emu_launch_checked of tests/emu/cuda_emu.h, the launch of CU_LAUNCH
 * (cuda/common.cuh) on the emulated device: the configuration checked as the runtime checks it,
 * then the grid run at once (the emulated streams are synchronous). Linked into the emulated
 * device (libspladex_cuda_emu.so) only: it records errors in tests/emu/cuda_emu_runtime.cpp. */
#include "cuda_emu.h"

#include <cstdio>

#include "cuda_emu_runtime.h"

bool cuda_emu_launch_checked(const void *func, dim3 grid, dim3 block, size_t smem,
                             const std::function<void()> &kernel) {
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  const char *bad = NULL;
  cudaError_t e = cudaErrorInvalidConfiguration;
  if (threads == 0 || threads > 1024 || block.z > 64)
    bad = "a block of no or more than 1024 threads";
  else if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
           grid.z > 65535)
    bad = "a grid outside 1..2^31-1 x 1..65535 x 1..65535";
  else if (block.y != 1 || block.z != 1)
    bad = "a 2-D or 3-D block (not emulated)";
  else if (smem > cuda_emu_dynamic_smem_limit(func)) {
    bad = "more dynamic shared memory than the kernel's limit (cudaFuncSetAttribute)";
    e = cudaErrorInvalidValue;
  }
  if (bad) {
    fprintf(stderr, "cuda_emu: launch refused: %s (grid %u %u %u, block %u %u %u, %zu bytes)\n",
            bad, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem);
    cuda_emu_record_error(e);
    return false;
  }
  cuda_emu_launch(grid, block, kernel, smem);
  return true;
}
