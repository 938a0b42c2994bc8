/* cuda_emu.h: a host emulation of the CUDA execution model, enough to compile a kernel's own .cu
 * source with g++ and run it on the CPU. Two uses:
 *  - a kernel test includes this, then the .cu (defining SPLADEX_CUDA_EMU_KERNELS_ONLY first,
 *    under which the .cu leaves out its host launchers), and runs the kernel with
 *    cuda_emu_launch (tests/emu/test_attention_mma_emu.cpp is the manual of that use);
 *  - the emulated device: every .cu of cuda/, launchers included, compiled by g++ with this header
 *    and linked with tests/emu/cuda_emu_runtime.cpp (the CUDA runtime, cuBLAS and cuSPARSE calls,
 *    emulated) into libspladex_cuda_emu.so, which the GPU tests load or link in place of
 *    libspladex_cuda.so (CMakeLists.txt: the `emu` tests). A launch there is CU_LAUNCH of
 *    cuda/common.cuh, which comes here (cuda_emu_launcher): it checks the launch configuration
 *    as the runtime would and runs the grid at once (the emulated streams are synchronous).
 * Nothing here runs on a GPU, and nothing here says anything about one beyond the algorithms.
 *
 * Mapping: __global__ / __device__ / __host__ / __forceinline__ / __launch_bounds__ vanish;
 * __shared__ is `static` (one copy per kernel instantiation, shared by the block's threads; the
 * blocks of a grid run one after another, so one copy is enough; it is not cleared between
 * blocks, as shared memory is not); dynamic shared memory (CU_DYNAMIC_SHARED of common.cuh) is a
 * buffer of the launch's size, filled with 0xff bytes (NaN as floats) at each block's start, so a
 * read of what the block never wrote shows. threadIdx / blockIdx / blockDim / gridDim are the
 * running CUDA thread's.
 * Each CUDA thread of a block is a fiber (its own stack, switched by an own x86-64 routine or by
 * ucontext elsewhere) of the one host thread that launches: the block's threads run in turn, each
 * until it blocks at a barrier or returns, then the next one that can. __syncthreads() is a
 * barrier of the block's threads; __shfl_xor_sync, __shfl_sync and cuda_emu_mma_m16n8k16 are
 * warp-wide exchanges (a barrier of the warp's threads), so a warp proceeds in lockstep only
 * where the kernel synchronizes it, as on Volta and later (independent thread scheduling). Only
 * the full mask 0xffffffff is emulated; anything else aborts with a message, as does a barrier
 * that can no longer complete because a thread of the block (or warp) has returned (a hang or
 * undefined behaviour on a device), or threads of a block that wait at different barriers.
 * cp.async (cuda_emu_cp_async16 / _commit / _wait) is deferred: a copy lands when the thread
 * waits for its group, so a read of the destination before the wait sees the old bytes, as it
 * may on a device. Atomics are plain read-modify-writes (one host thread runs everything).
 * Not emulated: timing, occupancy, concurrency (the fibers run one at a time, so a race the
 * kernel's barriers do not order does NOT show), bank conflicts, device math (expf, division,
 * conversions are the host's: glibc and cuda_fp16.h's host paths), the tensor cores' internal
 * rounding (cuda_emu_mma_m16n8k16 and the wmma of tests/emu/shim/mma.h add the 16 products in
 * order in fp32, see there), CUB (tests/emu/shim/cub: BlockScan with CUB's contract, not its
 * code). C++20 (g++). Not thread-safe: one launch at a time.
 */
#ifndef SPLADEX_CUDA_EMU_H
#define SPLADEX_CUDA_EMU_H

#ifndef SPLADEX_CUDA_EMU
#define SPLADEX_CUDA_EMU 1
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

/* the CUDA headers first (host paths: __half / __nv_bfloat16 conversions, dim3), then the
 * execution-space qualifiers they define are replaced */
#include <cublas_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

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

/* The running CUDA thread's coordinates (valid inside a kernel run by cuda_emu_launch). */
extern dim3 cuda_emu_thread_idx, cuda_emu_block_idx;
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

/* The calling lane publishes its `bytes` bytes (<= CUDA_EMU_MAX_EXCHANGE) to its warp, waits for
 * every lane to (a warp barrier) and gets the warp's buffer: lane l's bytes at
 * l * CUDA_EMU_MAX_EXCHANGE, valid until the caller's next warp-wide operation. */
const unsigned char *cuda_emu_warp_share(const void *mine, size_t bytes);

/* Lane (threadIdx.x % 32) ^ lane_mask's value of v. */
template <typename V> V __shfl_xor_sync(unsigned mask, V v, int lane_mask) {
  cuda_emu_check_shfl(mask, lane_mask);
  const unsigned char *all = cuda_emu_warp_share(&v, sizeof v);
  V r;
  memcpy(&r, all + ((cuda_emu_thread_idx.x % 32) ^ (unsigned)lane_mask) * CUDA_EMU_MAX_EXCHANGE,
         sizeof r);
  return r;
}

/* Lane src_lane's value of v. */
template <typename V> V __shfl_sync(unsigned mask, V v, int src_lane) {
  cuda_emu_check_shfl(mask, src_lane);
  const unsigned char *all = cuda_emu_warp_share(&v, sizeof v);
  V r;
  memcpy(&r, all + (size_t)src_lane * CUDA_EMU_MAX_EXCHANGE, sizeof r);
  return r;
}

inline float __fmaf_rn(float a, float b, float c) { return std::fmaf(a, b, c); }
using std::max;
using std::min;
/* CUDA's integer min / max take mixed operands (an int and an enum constant) by conversion */
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

/* The C++ overload of cuda_runtime.h (declared there for nvcc only): a kernel as the function. */
template <typename F> cudaError_t cudaFuncSetAttribute(F *func, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}

/* Bit casts and atomics (plain read-modify-writes: one host thread runs every CUDA thread, and a
 * fiber never yields inside one). Each returns the old value, as CUDA's do. */
inline unsigned __float_as_uint(float x) {
  unsigned u;
  memcpy(&u, &x, sizeof u);
  return u;
}
inline int __float_as_int(float x) {
  int i;
  memcpy(&i, &x, sizeof i);
  return i;
}
inline float __uint_as_float(unsigned u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}
inline float __int_as_float(int i) {
  float x;
  memcpy(&x, &i, sizeof x);
  return x;
}
template <typename V> V atomicAdd(V *p, V v) {
  const V old = *p;
  *p = old + v;
  return old;
}
template <typename V> V atomicMax(V *p, V v) {
  const V old = *p;
  *p = std::max(old, v);
  return old;
}
template <typename V> V atomicMin(V *p, V v) {
  const V old = *p;
  *p = std::min(old, v);
  return old;
}

/* cp.async.cg.shared.global of 16 bytes (src_bytes 0: 16 zero bytes, nothing read; else 16),
 * commit_group, wait_group n: the copies of the calling thread's groups other than its newest n
 * land when it waits (in the order issued); an uncommitted copy belongs to no group yet. */
void cuda_emu_cp_async16(void *smem, const void *gmem, int src_bytes);
void cuda_emu_cp_async_commit();
void cuda_emu_cp_async_wait(int n);

/* The running launch's dynamic shared memory (CU_DYNAMIC_SHARED; 128-byte aligned). */
void *cuda_emu_dynamic_shared();

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

/* cuda/attention_mma.cu's one inline asm, the mma.sync of its ATTN_MMA_SYNC: the `asm` macro
 * below turns `asm(...)` into this call with the statement's text (stringized) and the operands
 * the asm binds (d, a, b0, b1, by name). The text, whitespace and quotes removed, must be the
 * m16n8k16 .f16 or .bf16 mma with exactly those operands, or it aborts naming it; then it is
 * cuda_emu_mma_m16n8k16. (`asm volatile(...)`, as in decoder_maxpool.cu, is not caught: such a
 * .cu has #ifdef SPLADEX_CUDA_EMU alternatives.) */
void cuda_emu_asm_mma(const char *text, float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                      uint32_t b1);
#define asm(...) cuda_emu_asm_mma(#__VA_ARGS__, d, a, b0, b1)

/* Hopper's warpgroup MMA (cuda/decoder_maxpool.cu's k_decoder_maxpool_wgmma), emulated from the
 * PTX ISA ("Asynchronous Warpgroup Level Matrix Multiply-Accumulate"), independently of the
 * kernel's own layout helpers. A warpgroup is 128 consecutive threads of the block, all of which
 * must make each of these calls (.sync.aligned; a partial warpgroup aborts).
 *  - cuda_emu_shared_address(p): p's address in the shared window (dynamic shared memory from 0),
 *    as __cvta_generic_to_shared gives it; anything else aborts.
 *  - cuda_emu_fence_proxy_async(): fence.proxy.async.shared::cta. The copies that the calling
 *    thread's cp.async have landed become visible to the tensor cores (the async proxy); a wgmma
 *    that reads a 16-byte chunk landed by a cp.async its writer has not fenced since aborts (the
 *    emulation's rule: cp.async writes through the generic proxy).
 *  - cuda_emu_wgmma_fence(): wgmma.fence.sync.aligned; required before a thread's first wgmma
 *    after its start or its last wait (the accumulators are touched between), else abort.
 *  - cuda_emu_wgmma_m64nNk16(bf16, n, d, desc_a, desc_b): wgmma.mma_async.sync.aligned
 *    .m64n{n}k16.f32.{f16,bf16}, scale-d 1, both operands from shared memory, K-major (trans 0),
 *    scales 1. d is the thread's n / 2 accumulators; thread l of warp w of the warpgroup holds
 *    d[j] = D(16 w + l / 4 + 8 ((j / 2) % 2), 8 (j / 4) + 2 (l % 4) + j % 2). Descriptors: start
 *    address bits 0-13, leading-dimension byte offset 16-29, stride-dimension byte offset 32-45
 *    (each in 16-byte units), base offset 49-51 and layout 62-63 must be 0 (no swizzle: the only
 *    layout emulated), and every thread must pass the same ones. Element (r, k) of the no-swizzle
 *    K-major operand is at start + (r / 8) SBO + (k / 8) LBO + (r % 8) 16 + (k % 8) 2 bytes (8 x 16
 *    byte core matrices). The operation is recorded, not done: it is done when its group is
 *    waited for, so a kernel that changes the operands or reads d before waiting sees it go wrong,
 *    as it may on a device. The sums: like cuda_emu_mma_m16n8k16, k in order in fp32.
 *  - cuda_emu_wgmma_commit(): wgmma.commit_group; cuda_emu_wgmma_wait(n): wgmma.wait_group n
 *    (a warpgroup barrier; the groups other than the newest n are done). A thread that returns with
 *    wgmma it has not waited for aborts. */
uint32_t cuda_emu_shared_address(const void *p);
void cuda_emu_fence_proxy_async();
void cuda_emu_wgmma_fence();
void cuda_emu_wgmma_m64nNk16(bool bf16, int n, float *d, uint64_t desc_a, uint64_t desc_b);
void cuda_emu_wgmma_commit();
void cuda_emu_wgmma_wait(int n);

/* Runs kernel() as a grid of grid.x * grid.y * grid.z blocks of block.x threads (block.y and
 * block.z must be 1), one block after another in x, y, z order, each with block.x fibers, with
 * dynamic_smem bytes of dynamic shared memory. Aborts on a configuration no device runs. Returns
 * the number of blocks run. */
long cuda_emu_launch(dim3 grid, dim3 block, const std::function<void()> &kernel,
                     size_t dynamic_smem = 0);

/* CU_LAUNCH(grid, block, smem, stream, kernel)(args...) of cuda/common.cuh under the emulation:
 * the launch configuration is checked as the runtime checks it (block size 1..1024 threads in x
 * only, grid within 2^31 - 1 x 65535 x 65535, dynamic shared memory within the kernel's limit:
 * 48 KiB unless cudaFuncSetAttribute raised it); a bad one records the runtime's error (for
 * cudaGetLastError, as a failed <<< >>> does) and runs nothing. Else the grid runs at once. */
bool cuda_emu_launch_checked(const void *func, dim3 grid, dim3 block, size_t smem,
                             const std::function<void()> &kernel);

template <typename... P> struct CudaEmuLauncher {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  template <typename... A> void operator()(A &&...args) const {
    cuda_emu_launch_checked(reinterpret_cast<const void *>(kernel), grid, block, smem,
                            [&] { kernel(args...); });
  }
};
template <typename... P>
CudaEmuLauncher<P...> cuda_emu_launcher(dim3 grid, dim3 block, size_t smem, cudaStream_t,
                                        void (*kernel)(P...)) {
  return CudaEmuLauncher<P...>{kernel, grid, block, smem};
}

#endif
