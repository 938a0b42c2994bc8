/* cuda_emu.cpp: the host emulation of tests/emu/cuda_emu.h (threads, barriers, warp exchanges,
 * the m16n8k16 mma). */
#include "cuda_emu.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

thread_local dim3 cuda_emu_thread_idx, cuda_emu_block_idx;
dim3 cuda_emu_block_dim, cuda_emu_grid_dim;

namespace {

[[noreturn]] void die(const char *what) {
  fprintf(stderr, "cuda_emu: %s (block %u %u %u, thread %u)\n", what, cuda_emu_block_idx.x,
          cuda_emu_block_idx.y, cuda_emu_block_idx.z, cuda_emu_thread_idx.x);
  fflush(stderr);
  abort();
}

/* A barrier of n threads (C++20 atomic wait / notify: a futex, no mutex to re-acquire on the way
 * out). A thread that returns from the kernel leaves (leave()); a barrier that waits for a thread
 * that has left can never complete: whichever of the two comes second aborts with the message
 * (sequentially consistent: at least one of them sees the other). */
struct Barrier {
  std::atomic<int> arrived{0}, left{0};
  std::atomic<unsigned> generation{0};
  int n = 0;
  const char *what = "";

  void reset(int threads, const char *message) {
    n = threads;
    what = message;
    arrived = 0;
    left = 0;
  }
  void wait() {
    const unsigned g = generation.load();
    if (arrived.fetch_add(1) + 1 == n) {
      arrived.store(0);
      generation.fetch_add(1);
      generation.notify_all();
      return;
    }
    if (left.load()) die(what);
    while (generation.load() == g) generation.wait(g);
  }
  void leave() {
    left.fetch_add(1);
    if (arrived.load()) die(what);
  }
};

/* One warp's exchange buffers: two, used alternately, so that one barrier per exchange suffices
 * (a lane can start exchange k + 1 only after every lane has arrived at it, i.e. has read the
 * buffer of exchange k - 1, the one k + 1 reuses). */
struct Warp {
  Barrier barrier;
  unsigned char buffer[2][32][CUDA_EMU_MAX_EXCHANGE];
};

Barrier block_barrier;
std::vector<Warp> warps;
thread_local unsigned exchange_parity;

float widen(uint16_t bits, bool bf16) {
  if (bf16) {
    __nv_bfloat16_raw raw;
    raw.x = bits;
    return __bfloat162float(__nv_bfloat16(raw));
  }
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}

}  // namespace

void __syncthreads() {
  block_barrier.wait();
}

void cuda_emu_check_shfl(unsigned mask, int lane_mask) {
  if (mask != 0xffffffffu) die("__shfl_xor_sync: only the full mask 0xffffffff is emulated");
  if (lane_mask < 0 || lane_mask >= 32) die("__shfl_xor_sync: lane mask outside [0, 32)");
}

void cuda_emu_warp_exchange(const void *mine, size_t bytes, void *all) {
  if (bytes > CUDA_EMU_MAX_EXCHANGE) die("cuda_emu_warp_exchange: too many bytes");
  Warp &w = warps[cuda_emu_thread_idx.x / 32];
  const unsigned lane = cuda_emu_thread_idx.x % 32, p = exchange_parity;
  exchange_parity ^= 1u;
  memcpy(w.buffer[p][lane], mine, bytes);
  w.barrier.wait();
  for (int l = 0; l < 32; l++)
    memcpy(static_cast<unsigned char *>(all) + (size_t)l * bytes, w.buffer[p][l], bytes);
}

void cuda_emu_mma_m16n8k16(bool bf16, float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                           uint32_t b1) {
  struct Fragments {
    uint32_t a[4], b[2];
  } mine = {{a[0], a[1], a[2], a[3]}, {b0, b1}}, all[32];
  cuda_emu_warp_exchange(&mine, sizeof mine, all);
  /* the ISA's tables, forward: lane and register -> the elements (row, col), (row, col + 1) of A
   * and (k, n), (k + 1, n) of B they hold (16-bit patterns; widened below, only those used) */
  uint16_t A[16][16], B[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane >> 2, t = lane % 4;
    for (int r = 0; r < 4; r++)
      for (int half = 0; half < 2; half++)
        A[g + 8 * (r & 1)][2 * t + 8 * (r >> 1) + half] = (uint16_t)(all[lane].a[r] >> (16 * half));
    for (int r = 0; r < 2; r++)
      for (int half = 0; half < 2; half++)
        B[2 * t + 8 * r + half][g] = (uint16_t)(all[lane].b[r] >> (16 * half));
  }
  const int lane = (int)(cuda_emu_thread_idx.x % 32), g = lane >> 2, t = lane % 4;
  for (int i = 0; i < 4; i++) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; k++) acc += widen(A[row][k], bf16) * widen(B[k][col], bf16);
    d[i] = acc;
  }
}

long cuda_emu_launch(dim3 grid, dim3 block, const std::function<void()> &kernel) {
  if (block.y != 1 || block.z != 1 || block.x == 0 || block.x % 32)
    die("cuda_emu_launch: blocks of a multiple of 32 threads in x only");
  cuda_emu_grid_dim = grid;
  cuda_emu_block_dim = block;
  warps = std::vector<Warp>(block.x / 32);
  long blocks = 0;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++, blocks++) {
        block_barrier.reset((int)block.x, "__syncthreads() with a thread of the block returned (it "
                            "would hang on a device)");
        for (Warp &w : warps)
          w.barrier.reset(32, "a warp-wide operation (shuffle, mma) with a lane of the warp returned");
        std::vector<std::thread> threads;
        threads.reserve(block.x);
        for (unsigned i = 0; i < block.x; i++)
          threads.emplace_back([&kernel, i, x, y, z] {
            cuda_emu_thread_idx = dim3(i, 0, 0);
            cuda_emu_block_idx = dim3(x, y, z);
            exchange_parity = 0;
            kernel();
            warps[i / 32].barrier.leave();
            block_barrier.leave();
          });
        for (std::thread &t : threads) t.join();
      }
  return blocks;
}
