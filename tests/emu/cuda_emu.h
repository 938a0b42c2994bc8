/* cuda_emu.h: a host emulation of the CUDA execution model, enough to compile a kernel's own .cu
 * source with g++ and run it on the CPU (tests/emu/test_attention_mma_emu.cpp is the manual: what
 * it checks, what is and is not emulated). Include this first (it defines SPLADEX_CUDA_EMU, under
 * which a .cu leaves out its host launchers, whose <<< >>> g++ cannot parse), then the .cu, then
 * run its kernel with cuda_emu_launch.
 *
 * Mapping: __global__ / __device__ / __host__ / __forceinline__ / __launch_bounds__ vanish;
 * __shared__ is `static` (one copy per kernel instantiation, shared by the block's threads; the
 * blocks of a grid run one after another, so one copy is enough; it is not cleared between
 * blocks, as shared memory is not); threadIdx / blockIdx / blockDim / gridDim are thread_local.
 * Each CUDA thread of a block is one std::thread. __syncthreads() is a barrier of the block's
 * threads; __shfl_xor_sync and cuda_emu_mma_m16n8k16 are warp-wide exchanges (a barrier of the
 * warp's 32 threads), so a warp proceeds in lockstep only where the kernel synchronizes it, as on
 * Volta and later (independent thread scheduling). Only full warps and the full mask
 * 0xffffffff are emulated; anything else aborts with a message, as does a barrier that can no
 * longer complete because a thread of the block (or warp) has returned (a hang or undefined
 * behaviour on a device). The barriers are sequentially consistent atomics with futex waits:
 * everything a thread wrote before a barrier happens before what every thread does after it;
 * nothing else is ordered.
 * Not emulated: timing, occupancy, the memory model beyond the barriers (a race the kernel's
 * barriers do not order may or may not show), bank conflicts, device math (expf, division,
 * conversions are the host's: glibc and cuda_fp16.h's host paths), the tensor cores' internal
 * rounding (cuda_emu_mma_m16n8k16 adds the 16 products in order in fp32, see there).
 * C++20 (g++), pthreads. Not thread-safe across launches: one cuda_emu_launch at a time.
 */
#ifndef SPLADEX_CUDA_EMU_H
#define SPLADEX_CUDA_EMU_H

#ifndef SPLADEX_CUDA_EMU
#define SPLADEX_CUDA_EMU 1
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

/* the CUDA headers first (host paths: __half / __nv_bfloat16 conversions, dim3), then the
 * execution-space qualifiers they define are replaced */
#include <cublas_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

/* The calling CUDA thread's coordinates (valid inside a kernel run by cuda_emu_launch). */
extern thread_local dim3 cuda_emu_thread_idx, cuda_emu_block_idx;
extern dim3 cuda_emu_block_dim, cuda_emu_grid_dim;
#define threadIdx cuda_emu_thread_idx
#define blockIdx cuda_emu_block_idx
#define blockDim cuda_emu_block_dim
#define gridDim cuda_emu_grid_dim

/* Barrier of the calling thread's block. */
void __syncthreads();

/* The calling lane's `bytes` bytes at mine are exchanged within its warp: after the call,
 * all[lane * bytes, + bytes) holds lane `lane`'s bytes, for the 32 lanes (all: 32 * bytes).
 * Every lane of the warp must call it (a warp barrier). bytes <= CUDA_EMU_MAX_EXCHANGE. */
enum { CUDA_EMU_MAX_EXCHANGE = 64 };
void cuda_emu_warp_exchange(const void *mine, size_t bytes, void *all);

/* Aborts with a message unless mask is 0xffffffff and lane_mask in [0, 32). */
void cuda_emu_check_shfl(unsigned mask, int lane_mask);

/* Lane (threadIdx.x % 32) ^ lane_mask's value of v. */
template <typename V> V __shfl_xor_sync(unsigned mask, V v, int lane_mask) {
  cuda_emu_check_shfl(mask, lane_mask);
  V all[32];
  cuda_emu_warp_exchange(&v, sizeof v, all);
  return all[(cuda_emu_thread_idx.x % 32) ^ (unsigned)lane_mask];
}

inline float __fmaf_rn(float a, float b, float c) { return std::fmaf(a, b, c); }
using std::max;
using std::min;

/* mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 of the calling warp, every lane
 * calling it with its fragments: d += A B, A 16 x 16 from the lanes' a[4], B 16 x 8 from their
 * b0, b1 (two 16-bit operands per register, the low half first), d the lane's 4 fp32 C/D
 * elements. The fragment placement is the PTX ISA's ("Matrix Fragments for mma.m16n8k16 with
 * floating point type"), written out here independently of cuda_twins.h's cutwin_mma_*: with
 * g = lane >> 2, t = lane % 4, a[r] holds A(g + 8 (r & 1), 2t + 8 (r >> 1) + {0, 1}), b[r] holds
 * B(2t + 8 r + {0, 1}, g), d[i] is D(g + 8 (i >> 1), 2t + (i & 1)). Each element of D is
 * d + A(row, 0) B(0, col) + ... + A(row, 15) B(15, col) added in that order in fp32 (one
 * rounding per add; the operands widen exactly): a definite model, not the tensor cores'
 * (unspecified) internal order and rounding. bf16 selects bfloat16 operands, else fp16. */
void cuda_emu_mma_m16n8k16(bool bf16, float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                           uint32_t b1);

/* Runs kernel() as a grid of grid.x * grid.y * grid.z blocks of block.x threads (block.y and
 * block.z must be 1, block.x a multiple of 32), one block after another in x, y, z order, each
 * with block.x std::threads. Returns the number of blocks run. */
long cuda_emu_launch(dim3 grid, dim3 block, const std::function<void()> &kernel);

#endif
