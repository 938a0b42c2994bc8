/* decoder_maxpool: the SPLADE decoder GEMM with the per-document max in its epilogue, so that the
 * (N, V) logits never reach device memory (issue 5's "fused epilogue").
 *
 * Block (token tile, vocabulary tile) computes the BM x BN = 128 x 128 logits of 128 tokens and
 * 128 terms with nvcuda::wmma m16n16k16 (fp16 or bf16 operands, fp32 accumulators): 8 warps as
 * 2 (tokens) x 4 (terms), each warp 64 x 32 = 4 x 2 fragments. The K loop walks hidden in BK = 32
 * slices through a 3-stage cp.async ring in dynamic shared memory (rows of BK + 8 halves = 80
 * bytes, so 8 consecutive rows of a fragment load, as ldmatrix reads them, fall in 8 distinct
 * 16-byte bank groups). Rows past N, terms past V and the k past hidden (hidden % 32 == 16) are
 * zero-filled by cp.async's src-size 0, so the tile math needs no bounds. The epilogue stores the
 * accumulators into the same shared memory (a 128 x 132 float tile, 67,584 bytes, larger than the
 * 61,440-byte ring; with the runs' first documents 67,592 bytes of dynamic shared memory, hence
 * cudaFuncSetAttribute), then runs CUTWIN_FUSED_ROW_GROUPS = 2 threads per term column, each
 * over 64 rows: a segmented `x > m ? x : m` max from -INFINITY per document, exactly
 * ops_maxpool_logits' comparison in the same row order. A document whose rows all lie in the
 * thread's 64 rows has no other writer and is stored; any other is merged with the atomic float
 * max below. The document of each run's first row comes from a binary search in doc_offsets.
 *
 * The merge (cutwin_fmax_merge is its C twin): for a value with the sign bit clear, atomicMax on
 * the int bits; with the sign bit set, atomicMin on the unsigned bits. Non-negative floats order
 * like their int bits and sit above every negative one (negative ints); negative floats order
 * reversed as unsigned and sit above every non-negative one (unsigned >= 0x80000000). So the merge
 * is the max under the total order -inf < ... < -0.0 < +0.0 < ... < +inf, whatever the order in
 * which the blocks arrive: the result is deterministic. -INFINITY (0xff800000) is its identity,
 * which is why pooled must hold -INFINITY on entry (and why a stored document needs no read).
 * NaN: inside a run the select keeps the running max when x is NaN, and the running max starts at
 * -INFINITY, so it is never NaN; nothing NaN is ever merged or stored, and pooled never becomes NaN
 * (as on the CPU, where ops_maxpool_logits never lets a NaN replace the max). The one difference
 * with the CPU: inside a run the first zero seen wins (as on the CPU), across runs +0.0 beats
 * -0.0; the values compare equal and sparsify (x + bias, relu, > threshold) cannot tell them apart.
 *
 * Grid order, chosen for L2 reuse: a 1-D grid walked in groups of CUTWIN_FUSED_GROUP_TOKEN_TILES
 * = 32 token tiles (4096 tokens); inside a group the token tile varies fastest, then the
 * vocabulary tile (cutwin_fused_tile_of). Neither plain order works for N = 32768 (256 x 239
 * tiles, ~264 blocks resident on an H100): with the vocabulary tile fastest, the resident blocks
 * share one or two token tiles and sweep the whole 47 MB fp16 decoder weight once per token
 * tile, more than L2 keeps (40-50 MB, in two halves), ~12 GB of weight reads; with the token tile
 * fastest, the same happens to the 50 MB of rows once per vocabulary tile. Grouped, the resident
 * blocks cover ~8 vocabulary tiles x the group's 32 token tiles: each weight tile is fetched once
 * per group and shared by 32 blocks, the group's rows (4096 x 768 x 2 = 6.3 MB) stay in L2 for
 * the group's whole sweep of the vocabulary. DRAM reads: the weight N / 4096 times (8 x 47 =
 * 375 MB), the rows about once (50 MB). An estimate, to be checked with Nsight Compute.
 *
 * Arithmetic for N = 32768 tokens, H = 768, V = 30522 (batch of ~436 MS MARCO passages):
 *   GEMM: 2 N H V = 1.54 TFLOP on either path (the fused one pads V to 239 x 128 = 30592: +0.2%).
 *   Chunked path (linear_cuda into a (16384 x 4096) fp32 logits buffer, then maxpool_logits):
 *     the logits are written and read once each, 2 x N x V x 4 = 8.0 GB of DRAM traffic, ~2.4 ms
 *     at 3.35 TB/s (H100 SXM), ~4 ms at 2 TB/s (A100), on top of the cuBLAS GEMM (~2.2 ms at
 *     700 TFLOP/s) and 268 MB of workspace.
 *   Fused path: ~0.43 GB of operand reads (above), ~53 MB of direct pooled stores (B x V x 4) and
 *     at most ~2 atomics per term per 64 rows (~31 M atomics at L2); no workspace. Its time is
 *     the GEMM's at whatever rate this mma.sync-based kernel reaches: it beats the chunked path
 *     on an H100 only above ~1.54 TFLOP / (2.2 + 2.4 ms) ~ 335 TFLOP/s sustained (a third of the
 *     fp16 dense peak, which needs wgmma that wmma does not emit), on an A100 above ~160 TFLOP/s.
 * To measure on a GPU before this becomes the default (the encoder keeps the chunked path until
 * then): wall time of both paths over MS MARCO-like batches (N 4K..32K, fp16 and bf16) on an
 * H100 and an A100; the kernel's TFLOP/s, L2 hit rate of the weight and rows, shared-memory bank
 * conflicts and the atomic count (Nsight Compute); blocks resident per SM (2 expected on both:
 * 121-128 registers x 256 threads is half the register file, 2 x 67.6 KB of shared memory fits
 * sm_80's 164 KB); test_ops_gpu against the chunked path (and its --bench times); end-to-end
 * passages/s of `spladex encode` with each path. Then: BK = 64 or a 4-stage ring. The wgmma
 * version for sm_90a is below (k_decoder_maxpool_wgmma); TMA is its next step.
 * Legend: N tokens, B documents, H hidden, V vocab.
 */
#include "decoder_maxpool.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include <atomic>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

extern "C" {
#include "err.h"
}
#include "common.cuh"
#include "cu_check.h"
#include "cuda_twins.h"

namespace {
const int kBM = CUTWIN_FUSED_TOKEN_TILE;   /* tokens per block tile */
const int kBN = CUTWIN_FUSED_VOCAB_TILE;   /* terms per block tile */
const int kGroups = CUTWIN_FUSED_ROW_GROUPS; /* epilogue threads per term column */
const int kGroupRows = kBM / kGroups;
const int kBK = 32;                        /* hidden slice per pipeline stage */
const int kStages = 3;
const int kLdS = kBK + 8;                  /* staging row: 40 halves = 80 bytes */
const int kLdC = kBN + 4;                  /* epilogue tile row: 132 floats */
const int kThreads = 256;
const int kWarpsN = 4;
const int kWarpRows = kBM / (kThreads / 32 / kWarpsN); /* 64 */
const int kWarpCols = kBN / kWarpsN;                   /* 32 */
const int kFragM = kWarpRows / 16;
const int kFragN = kWarpCols / 16;
const int kChunksPerRow = kBK / 8;         /* 16-byte cp.async chunks per staged row */
const int kStageElems = (kBM + kBN) * kLdS;
const size_t kRingBytes = (size_t)kStages * kStageElems * 2;
const size_t kTileBytes = (size_t)kBM * kLdC * 4;
const size_t kSmemBytes = kRingBytes > kTileBytes ? kRingBytes : kTileBytes;
const size_t kDynamicBytes = kSmemBytes + kGroups * sizeof(int); /* + first_doc */

static_assert(kThreads == kBN * kGroups, "the epilogue maps one thread to (column, row group)");
static_assert(kBM % kGroups == 0, "row groups split the token tile evenly");
static_assert((kBM * kChunksPerRow) % kThreads == 0 && (kBN * kChunksPerRow) % kThreads == 0,
              "every thread issues the same number of cp.async per stage");
static_assert(kWarpRows % 16 == 0 && kWarpCols % 16 == 0 && kBK % 16 == 0, "wmma 16x16x16");
static_assert((kLdS * 2) % 16 == 0 && (kStageElems * 2) % 32 == 0 && (kBM * kLdS * 2) % 32 == 0,
              "cp.async needs 16-byte and wmma 32-byte aligned shared addresses");
static_assert(kLdC % 4 == 0, "wmma float store: ldm a multiple of 4");
static_assert(kSmemBytes % 16 == 0, "first_doc follows the ring / tile");

/* 16 bytes global -> shared, bypassing L1; src_bytes 0 writes 16 zero bytes and reads nothing. */
#ifndef SPLADEX_CUDA_EMU
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
#else /* tests/emu/cuda_emu.h: the same three, deferred copies on the CPU */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
  cuda_emu_cp_async16(smem, gmem, src_bytes);
}
__device__ __forceinline__ void cp_async_commit() { cuda_emu_cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  cuda_emu_cp_async_wait(N);
}
#endif

/* The merge rule of the file comment (twin: cutwin_fmax_merge). */
__device__ __forceinline__ void atomic_fmax(float *addr, float value) {
  if (!(__float_as_uint(value) >> 31))
    atomicMax(reinterpret_cast<int *>(addr), __float_as_int(value));
  else
    atomicMin(reinterpret_cast<unsigned *>(addr), __float_as_uint(value));
}

/* Stages rows [t0, t0 + BM) x k [k0, k0 + BK) and terms [v0, v0 + BN) x the same k into one ring
 * slot; anything outside (N, V, hidden) becomes zeros. */
template <typename T>
__device__ __forceinline__ void load_stage(T *slot, const T *__restrict__ rows,
                                           const T *__restrict__ w, int n, int hidden, int vocab,
                                           int t0, int v0, int k0) {
  T *a = slot, *b = slot + kBM * kLdS;
#pragma unroll
  for (int i = 0; i < kBM * kChunksPerRow / kThreads; i++) {
    const int id = threadIdx.x + i * kThreads, r = id / kChunksPerRow, c = id % kChunksPerRow;
    const int t = t0 + r, k = k0 + c * 8;
    const bool ok = t < n && k < hidden;
    cp_async16(a + r * kLdS + c * 8, ok ? rows + (size_t)t * hidden + k : rows, ok ? 16 : 0);
  }
#pragma unroll
  for (int i = 0; i < kBN * kChunksPerRow / kThreads; i++) {
    const int id = threadIdx.x + i * kThreads, r = id / kChunksPerRow, c = id % kChunksPerRow;
    const int v = v0 + r, k = k0 + c * 8;
    const bool ok = v < vocab && k < hidden;
    cp_async16(b + r * kLdS + c * 8, ok ? w + (size_t)v * hidden + k : w, ok ? 16 : 0);
  }
}

/* The block's tile: tokens [t0, t0 + BM) x terms [v0, v0 + BN), in the grouped grid order of the
 * file comment (cutwin_fused_tile_of is the same formula). */
__device__ __forceinline__ void tile_origin(int n_token_tiles, int n_vocab_tiles, int *t0,
                                            int *v0) {
  const int per_group = CUTWIN_FUSED_GROUP_TOKEN_TILES * n_vocab_tiles;
  const int group = (int)blockIdx.x / per_group, local = (int)blockIdx.x % per_group;
  const int first_tt = group * CUTWIN_FUSED_GROUP_TOKEN_TILES;
  const int group_size = min(n_token_tiles - first_tt, CUTWIN_FUSED_GROUP_TOKEN_TILES);
  *t0 = (first_tt + local % group_size) * kBM;
  *v0 = (local / group_size) * kBN;
}

/* Threads 0 .. kGroups - 1 write first_doc[g], the document of row group g's first row: the last b
 * with doc_offsets[b] <= t (empty documents before t are skipped). The caller publishes it with a
 * __syncthreads before pool_tile. */
__device__ __forceinline__ void find_first_docs(const int *__restrict__ doc_offsets, int n_docs,
                                                int n, int t0, int *first_doc) {
  if (threadIdx.x >= kGroups) return;
  const int t = t0 + (int)threadIdx.x * kGroupRows;
  int lo = 0, hi = n_docs - 1;
  if (t < n) {
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (doc_offsets[mid] <= t)
        lo = mid;
      else
        hi = mid - 1;
    }
  }
  first_doc[threadIdx.x] = lo;
}

/* The epilogue on the block's fp32 logits tile (kBM x kLdC in shared memory): thread (g, c) walks
 * rows [g * 64, g * 64 + 64) of column c, one document at a time (twin:
 * cutwin_fused_tile_epilogue). */
__device__ __forceinline__ void pool_tile(const float *tile, const int *first_doc,
                                          const int *__restrict__ doc_offsets,
                                          float *__restrict__ pooled, int n, int vocab, int t0,
                                          int v0) {
  const int c = threadIdx.x % kBN, g = threadIdx.x / kBN;
  const int m_rows = min(kBM, n - t0), n_cols = min(kBN, vocab - v0);
  const int r_lo = g * kGroupRows, r_hi = min(r_lo + kGroupRows, m_rows);
  if (c >= n_cols || r_lo >= r_hi) return;
  int b = first_doc[g], r = r_lo;
  while (r < r_hi) {
    const int d_start = doc_offsets[b] - t0, d_end = doc_offsets[b + 1] - t0;
    const int e = min(d_end, r_hi);
    if (e > r) {
      float m = -INFINITY;
      for (; r < e; r++) {
        const float x = tile[r * kLdC + c];
        m = x > m ? x : m;
      }
      float *dst = pooled + (size_t)b * vocab + v0 + c;
      if (d_start >= r_lo && d_end <= r_hi)
        *dst = m; /* the only writer of (b, v0 + c) */
      else
        atomic_fmax(dst, m);
    }
    b++;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
    k_decoder_maxpool(const T *__restrict__ rows, const T *__restrict__ w, int n, int hidden,
                      int vocab, const int *__restrict__ doc_offsets, int n_docs,
                      float *__restrict__ pooled, int n_token_tiles, int n_vocab_tiles) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  CU_DYNAMIC_SHARED(unsigned char, smem, 128);
  T *ring = reinterpret_cast<T *>(smem);
  int *first_doc = reinterpret_cast<int *>(smem + kSmemBytes); /* (kGroups), past ring / tile */
  float *tile = reinterpret_cast<float *>(smem); /* reuses the ring after the K loop */

  int t0, v0;
  tile_origin(n_token_tiles, n_vocab_tiles, &t0, &v0);
  const int warp = threadIdx.x / 32;
  const int wm = warp / kWarpsN, wn = warp % kWarpsN;
  const int n_k = (hidden + kBK - 1) / kBK;

#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < n_k) load_stage(ring + s * kStageElems, rows, w, n, hidden, vocab, t0, v0, s * kBK);
    cp_async_commit(); /* empty groups too, so that wait_group counts stay uniform */
  }
  find_first_docs(doc_offsets, n_docs, n, t0, first_doc); /* published by the K loop's barrier */

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFragM][kFragN];
#pragma unroll
  for (int i = 0; i < kFragM; i++)
#pragma unroll
    for (int j = 0; j < kFragN; j++) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int kt = 0; kt < n_k; kt++) {
    cp_async_wait<kStages - 2>(); /* this thread's copies of slice kt have landed */
    __syncthreads();              /* everyone's have, and slot (kt - 1) % S is no longer read */
    const int next = kt + kStages - 1;
    if (next < n_k)
      load_stage(ring + (next % kStages) * kStageElems, rows, w, n, hidden, vocab, t0, v0,
                 next * kBK);
    cp_async_commit();

    const T *a = ring + (kt % kStages) * kStageElems;
    const T *b = a + kBM * kLdS;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bf[kFragN];
#pragma unroll
      for (int j = 0; j < kFragN; j++)
        wmma::load_matrix_sync(bf[j], b + (wn * kWarpCols + j * 16) * kLdS + kk, kLdS);
#pragma unroll
      for (int i = 0; i < kFragM; i++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> af;
        wmma::load_matrix_sync(af, a + (wm * kWarpRows + i * 16) * kLdS + kk, kLdS);
#pragma unroll
        for (int j = 0; j < kFragN; j++) wmma::mma_sync(acc[i][j], af, bf[j], acc[i][j]);
      }
    }
  }
  cp_async_wait<0>(); /* only empty groups can be pending; the ring is about to be overwritten */
  __syncthreads();

#pragma unroll
  for (int i = 0; i < kFragM; i++)
#pragma unroll
    for (int j = 0; j < kFragN; j++)
      wmma::store_matrix_sync(tile + (wm * kWarpRows + i * 16) * kLdC + wn * kWarpCols + j * 16,
                              acc[i][j], kLdC, wmma::mem_row_major);
  __syncthreads();
  pool_tile(tile, first_doc, doc_offsets, pooled, n, vocab, t0, v0);
#else
  /* wmma on bf16 and cp.async need sm_80; the launcher refuses older devices. */
  (void)rows, (void)w, (void)n, (void)hidden, (void)vocab, (void)doc_offsets, (void)n_docs;
  (void)pooled, (void)n_token_tiles, (void)n_vocab_tiles;
#endif
}

/* ---- The sm_90a kernel: the same block tile, grid order and epilogue, the tile GEMM on wgmma ----
 *
 * k_decoder_maxpool_wgmma (issue 13 item 3; SPLADEX_CUDA_DECODER=wgmma; twin: the same
 * cutwin_decoder_maxpool_fused, as nothing but the tile GEMM's instruction differs). The 256
 * threads are two warpgroups; warpgroup g computes tile rows [64 g, 64 g + 64) x the 128 terms with
 * wgmma.mma_async m64n128k16 (fp32 accumulators: 64 registers a thread), both operands read by the
 * tensor cores straight from shared memory through matrix descriptors, so there is no ldmatrix
 * and no register file traffic for the operands. The K loop walks hidden in the same BK = 32
 * slices through a 4-stage cp.async ring (4 x 16 KB, inside the 67.6 KB that the epilogue tile
 * needs anyway): per slice, each thread waits for its copies, makes them visible to the tensor
 * cores' (async) proxy with fence.proxy.async, the block barrier publishes everyone's, the next
 * slice's copies are issued, then wgmma.fence, two wgmma (k 0-15 and 16-31), commit, and
 * wait_group 0: the slot a wgmma reads is refilled only after a later barrier, so the ring needs
 * no mbarriers.
 *
 * Shared-memory layout of a staged operand (rows x BK, K-major, no swizzle: the canonical
 * "interleaved" layout of the PTX ISA's matrix descriptors): 8 x 8 core matrices of 128
 * contiguous bytes (8 rows of 16 bytes), core matrix (row / 8, k / 8) at ((row / 8) * (BK / 8) +
 * k / 8) * 128 bytes. A descriptor then has leading-dimension byte offset (the next 8 k) 128 and
 * stride-dimension byte offset (the next 8 rows) BK / 8 * 128 = 512. The cp.async of a stage map
 * consecutive threads to consecutive 16-byte rows of one core matrix, so each warp's stores are
 * contiguous. No swizzle and no TMA: the first version to measure; TMA with the 128-byte swizzle
 * and a producer warp is the next step once a device shows where the time goes.
 *
 * Accumulator layout (PTX ISA, wgmma D fragments for .m64nNk16 with .f32): thread l of warp w in
 * the warpgroup holds d[j], j < 64, at row 16 w + l / 4 + 8 ((j / 2) % 2) and column
 * 8 (j / 4) + 2 (l % 4) + j % 2 of the warpgroup's 64 x 128 block; stored into the epilogue tile
 * in pairs (float2).
 *
 * Built where nvcc compiles for sm_90a (SPLADEX_CUDA_ARCHS has 90a; the default builds it): the
 * body is in `#if` on __CUDA_ARCH_FEAT_SM90_ALL, other builds of the kernel trap. Which code the
 * driver loaded is asked at run time (k_wgmma_probe), and the launcher refuses the route unless
 * the device is compute capability 9.0 and the loaded code has the body. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(SPLADEX_CUDA_EMU)
#define DECODER_WGMMA 1
#else
#define DECODER_WGMMA 0
#endif

const int kWgStages = 4;
const int kWgStageElems = (kBM + kBN) * kBK;            /* no padding: core matrices */
const uint32_t kWgLbo = 128;                            /* the next 8 k: the next core matrix */
const uint32_t kWgSbo = kBK / 8 * 128;                  /* the next 8 rows */
const int kWgAccum = 64 * kBN / 128;                    /* accumulators a thread: 64 */
static_assert((size_t)kWgStages * kWgStageElems * 2 <= kSmemBytes, "the ring fits under the tile");
static_assert(kThreads == 2 * 128 && kBM == 2 * 64 && kBN == 128 && kWgAccum == 64,
              "two warpgroups of m64n128, 64 accumulators a thread");
static_assert(kBK % 16 == 0 && kWgSbo < (1u << 18) && kWgLbo % 16 == 0, "descriptor fields");

#if DECODER_WGMMA
#ifndef SPLADEX_CUDA_EMU
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accesses of the accumulators across the wgmma fence / wait
 * (the asm statements above do not name them). */
__device__ __forceinline__ void fence_accumulators(float (&d)[kWgAccum]) {
#pragma unroll
  for (int i = 0; i < kWgAccum; i++) asm volatile("" : "+f"(d[i])::"memory");
}
#define WGMMA_M64N128K16(TYPE)                                                                   \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                      \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {"                 \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "          \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
               "%64, %65, p, 1, 1, 0, 0;\n}\n"                                                   \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),         \
                 "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),       \
                 "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),   \
                 "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),   \
                 "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),   \
                 "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),   \
                 "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),   \
                 "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),   \
                 "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),   \
                 "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),   \
                 "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                              \
               : "l"(desc_a), "l"(desc_b), "n"(1))
/* d += A B^T: A the 64 x 16 operand at desc_a, B the 128 x 16 one at desc_b, both K-major, fp32
 * accumulation, scale-d 1 (accumulate; the kernel zeroes d first). */
template <typename T>
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[kWgAccum], uint64_t desc_a,
                                                 uint64_t desc_b);
template <>
__device__ __forceinline__ void wgmma_m64n128k16<__half>(float (&d)[kWgAccum], uint64_t desc_a,
                                                         uint64_t desc_b) {
  WGMMA_M64N128K16("f16");
}
template <>
__device__ __forceinline__ void wgmma_m64n128k16<__nv_bfloat16>(float (&d)[kWgAccum],
                                                                uint64_t desc_a, uint64_t desc_b) {
  WGMMA_M64N128K16("bf16");
}
#undef WGMMA_M64N128K16
#else /* tests/emu/cuda_emu.h: the same, emulated (deferred to the wait, as on a device) */
__device__ __forceinline__ uint32_t smem_u32(const void *p) { return cuda_emu_shared_address(p); }
__device__ __forceinline__ void fence_proxy_async() { cuda_emu_fence_proxy_async(); }
__device__ __forceinline__ void wgmma_fence() { cuda_emu_wgmma_fence(); }
__device__ __forceinline__ void wgmma_commit() { cuda_emu_wgmma_commit(); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  cuda_emu_wgmma_wait(N);
}
__device__ __forceinline__ void fence_accumulators(float (&)[kWgAccum]) {}
template <typename T>
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[kWgAccum], uint64_t desc_a,
                                                 uint64_t desc_b) {
  cuda_emu_wgmma_m64nNk16(std::is_same<T, __nv_bfloat16>::value, kBN, d, desc_a, desc_b);
}
#endif

/* A matrix descriptor: no swizzle, base offset 0, the byte offsets above; the start address in
 * 16-byte units (bits 0-13), LBO (16-29) and SBO (32-45) likewise. */
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_address) {
  return (uint64_t)((smem_address & 0x3ffff) >> 4) | (uint64_t)(kWgLbo >> 4) << 16 |
         (uint64_t)(kWgSbo >> 4) << 32;
}

/* One operand's rows [r0, r0 + count) x k [k0, k0 + BK) into core-matrix layout at dst; rows past
 * `limit` and k past hidden become zeros (cp.async's src-size 0). */
template <typename T, int kRows>
__device__ __forceinline__ void load_core_matrices(T *dst, const T *__restrict__ src, int limit,
                                                   int hidden, int r0, int k0) {
#pragma unroll
  for (int i = 0; i < kRows * kChunksPerRow / kThreads; i++) {
    const int id = threadIdx.x + i * kThreads;
    const int row8 = id % 8, c = id / 8 % kChunksPerRow, rg = id / (8 * kChunksPerRow);
    const int r = r0 + rg * 8 + row8, k = k0 + c * 8;
    const bool ok = r < limit && k < hidden;
    cp_async16(dst + ((rg * kChunksPerRow + c) * 8 + row8) * 8,
               ok ? src + (size_t)r * hidden + k : src, ok ? 16 : 0);
  }
}
#endif /* DECODER_WGMMA */

template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
    k_decoder_maxpool_wgmma(const T *__restrict__ rows, const T *__restrict__ w, int n, int hidden,
                            int vocab, const int *__restrict__ doc_offsets, int n_docs,
                            float *__restrict__ pooled, int n_token_tiles, int n_vocab_tiles) {
#if DECODER_WGMMA
  CU_DYNAMIC_SHARED(unsigned char, smem, 128);
  T *ring = reinterpret_cast<T *>(smem);
  int *first_doc = reinterpret_cast<int *>(smem + kSmemBytes);
  float *tile = reinterpret_cast<float *>(smem);

  int t0, v0;
  tile_origin(n_token_tiles, n_vocab_tiles, &t0, &v0);
  const int wg = threadIdx.x / 128, warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32;
  const int n_k = (hidden + kBK - 1) / kBK;
  const uint32_t ring_address = smem_u32(ring);

#pragma unroll
  for (int s = 0; s < kWgStages - 1; s++) {
    if (s < n_k) {
      T *slot = ring + s * kWgStageElems;
      load_core_matrices<T, kBM>(slot, rows, n, hidden, t0, s * kBK);
      load_core_matrices<T, kBN>(slot + kBM * kBK, w, vocab, hidden, v0, s * kBK);
    }
    cp_async_commit();
  }
  find_first_docs(doc_offsets, n_docs, n, t0, first_doc); /* published by the K loop's barrier */

  float d[kWgAccum];
#pragma unroll
  for (int i = 0; i < kWgAccum; i++) d[i] = 0.0f;

  for (int kt = 0; kt < n_k; kt++) {
    cp_async_wait<kWgStages - 2>(); /* this thread's copies of slice kt have landed */
    fence_proxy_async();            /* ... and are visible to the tensor cores' proxy */
    __syncthreads(); /* everyone's are; no wgmma reads slot (kt - 1) % S (waited for below) */
    const int next = kt + kWgStages - 1;
    if (next < n_k) {
      T *slot = ring + (next % kWgStages) * kWgStageElems;
      load_core_matrices<T, kBM>(slot, rows, n, hidden, t0, next * kBK);
      load_core_matrices<T, kBN>(slot + kBM * kBK, w, vocab, hidden, v0, next * kBK);
    }
    cp_async_commit();

    /* this warpgroup's 64 rows of A start 8 core-matrix rows (8 x 512 bytes) per 64 rows in */
    const uint32_t a = ring_address + (uint32_t)((kt % kWgStages) * kWgStageElems * 2) +
                       (uint32_t)wg * (64 / 8) * kWgSbo;
    const uint32_t b = ring_address + (uint32_t)((kt % kWgStages) * kWgStageElems * 2) +
                       (uint32_t)(kBM * kBK * 2);
    fence_accumulators(d);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++) /* k 16 kk .. + 15: two core matrices on */
      wgmma_m64n128k16<T>(d, wgmma_desc(a + kk * 2 * kWgLbo), wgmma_desc(b + kk * 2 * kWgLbo));
    wgmma_commit();
    wgmma_wait<0>();
    fence_accumulators(d);
  }
  cp_async_wait<0>(); /* only empty groups can be pending; the ring is about to be overwritten */
  __syncthreads();

  const int row = wg * 64 + warp * 16 + lane / 4, col = 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < kWgAccum; j += 2) {
    const int r = row + 8 * ((j / 2) % 2), c = 8 * (j / 4) + col;
    *reinterpret_cast<float2 *>(tile + r * kLdC + c) = make_float2(d[j], d[j + 1]);
  }
  __syncthreads();
  pool_tile(tile, first_doc, doc_offsets, pooled, n, vocab, t0, v0);
#else
  /* Not built for sm_90a: the launcher refuses (k_wgmma_probe); never reached. */
  (void)rows, (void)w, (void)n, (void)hidden, (void)vocab, (void)doc_offsets, (void)n_docs;
  (void)pooled, (void)n_token_tiles, (void)n_vocab_tiles;
  __trap();
#endif
}

/* 1 where the code the driver loaded for this device has the wgmma kernel's body. */
__global__ void k_wgmma_probe(int *built) { *built = DECODER_WGMMA; }

template <typename T>
int launch(bool wgmma, const void *rows, const void *decoder_w, int n, int hidden, int vocab,
           const int *doc_offsets, int n_docs, float *pooled, int n_token_tiles,
           int n_vocab_tiles, cudaStream_t stream) {
  auto *kernel = wgmma ? k_decoder_maxpool_wgmma<T> : k_decoder_maxpool<T>;
  const char *name = wgmma ? "k_decoder_maxpool_wgmma" : "k_decoder_maxpool";
  int rc = CU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)kDynamicBytes));
  if (rc < 0) return rc;
  /* A hint: the largest shared-memory carve-out, so that two blocks of 67.6 KB fit per SM. */
  rc = CU_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                     (int)cudaSharedmemCarveoutMaxShared));
  if (rc < 0) return rc;
  const unsigned blocks = (unsigned)n_token_tiles * (unsigned)n_vocab_tiles;
  CU_LAUNCH(blocks, kThreads, kDynamicBytes, stream, kernel)
      (static_cast<const T *>(rows), static_cast<const T *>(decoder_w), n, hidden, vocab,
       doc_offsets, n_docs, pooled, n_token_tiles, n_vocab_tiles);
  return CU_CHECK_LAUNCH(name, stream);
}

/* Whether the wgmma kernel can run on device dev (the current one): 1 if it has compute
 * capability 9.0 and the code the driver loaded for it has the kernel's body (k_wgmma_probe, asked
 * once per device), else 0 with `why` set; < 0 on a CUDA error. */
int wgmma_usable(int dev, char *why, size_t why_size) {
  /* per device: 0 not asked yet, 1 has the body, 2 has not (encoders may open on several
   * threads; a race only asks twice) */
  static std::atomic<int> known[64];
  int major = 0, minor = 0, rc;
  if ((rc = CU_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev))) < 0 ||
      (rc = CU_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev))) < 0)
    return rc;
  if (major != 9 || minor != 0) {
    snprintf(why, why_size, "device %d has compute capability %d.%d; wgmma needs 9.0 (sm_90a)",
             dev, major, minor);
    return 0;
  }
  int state = dev >= 0 && dev < 64 ? known[dev].load() : 0;
  if (!state) {
    int *d_built = NULL, built = 0;
    if ((rc = CU_CHECK(cudaMalloc((void **)&d_built, sizeof(int)))) < 0) return rc;
    CU_LAUNCH(1, 1, 0, 0, k_wgmma_probe)(d_built);
    rc = CU_CHECK_LAUNCH("k_wgmma_probe", 0);
    if (rc == 0) rc = CU_CHECK(cudaMemcpy(&built, d_built, sizeof(int), cudaMemcpyDeviceToHost));
    const int freed = CU_CHECK(cudaFree(d_built));
    if (rc < 0) return rc;
    if (freed < 0) return freed;
    state = built == 1 ? 1 : 2;
    if (dev >= 0 && dev < 64) known[dev] = state;
  }
  if (state != 1)
    snprintf(why, why_size, "libspladex_cuda was not built for sm_90a (SPLADEX_CUDA_ARCHS needs "
             "90a-real), so device %d runs code without the wgmma kernel", dev);
  return state == 1;
}

int run(bool wgmma, const void *rows, const void *decoder_w, int n, int hidden, int vocab,
        const int *doc_offsets, int n_docs, float *pooled, cu_dtype dtype, cudaStream_t stream) {
  const char *who = wgmma ? "decoder_maxpool_wgmma" : "decoder_maxpool";
  if (dtype != CU_F16 && dtype != CU_BF16)
    return err_set(ERR_ARG, "%s: operand type %s is not supported (fp16 or bf16 only; use the "
                   "chunked cuBLAS path)", who, cu_dtype_name(dtype));
  if (hidden < 16 || hidden % 16 != 0)
    return err_set(ERR_ARG, "%s: hidden size %d is not a positive multiple of 16", who, hidden);
  if (n < 0 || vocab < 1)
    return err_set(ERR_ARG, "%s: bad shape (%d tokens, %d terms)", who, n, vocab);
  if (n == 0) return 0;
  if (n_docs < 1) return err_set(ERR_ARG, "%s: %d tokens in %d documents", who, n, n_docs);
  if (((uintptr_t)rows | (uintptr_t)decoder_w) % 16 != 0)
    return err_set(ERR_ARG, "%s: the rows or the decoder weight are not 16-byte aligned", who);
  const long long n_token_tiles = (n + (long long)kBM - 1) / kBM;
  const long long n_vocab_tiles = (vocab + (long long)kBN - 1) / kBN;
  if (n_token_tiles * n_vocab_tiles > INT_MAX ||
      (long long)CUTWIN_FUSED_GROUP_TOKEN_TILES * n_vocab_tiles > INT_MAX)
    return err_set(ERR_ARG, "%s: %d tokens x %d terms need too many blocks", who, n, vocab);
  int dev = 0, major = 0, rc;
  if ((rc = CU_CHECK(cudaGetDevice(&dev))) < 0) return rc;
  if ((rc = CU_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev))) < 0)
    return rc;
  if (major < 8)
    return err_set(ERR_ARG, "%s: device %d has compute capability %d.x (8.0 or later needed)",
                   who, dev, major);
  if (wgmma) {
    char why[200] = "";
    if ((rc = wgmma_usable(dev, why, sizeof why)) < 0) return rc;
    if (rc == 0) return err_set(ERR_ARG, "%s: %s", who, why);
  }
  if (dtype == CU_F16)
    return launch<__half>(wgmma, rows, decoder_w, n, hidden, vocab, doc_offsets, n_docs, pooled,
                          (int)n_token_tiles, (int)n_vocab_tiles, stream);
  return launch<__nv_bfloat16>(wgmma, rows, decoder_w, n, hidden, vocab, doc_offsets, n_docs,
                               pooled, (int)n_token_tiles, (int)n_vocab_tiles, stream);
}
} /* namespace */

extern "C" int decoder_maxpool_cuda(const void *rows, const void *decoder_w, int n, int hidden,
                                    int vocab, const int *doc_offsets, int n_docs, float *pooled,
                                    cu_dtype dtype, cudaStream_t stream) {
  return run(false, rows, decoder_w, n, hidden, vocab, doc_offsets, n_docs, pooled, dtype, stream);
}

extern "C" int decoder_maxpool_wgmma_cuda(const void *rows, const void *decoder_w, int n,
                                          int hidden, int vocab, const int *doc_offsets,
                                          int n_docs, float *pooled, cu_dtype dtype,
                                          cudaStream_t stream) {
  return run(true, rows, decoder_w, n, hidden, vocab, doc_offsets, n_docs, pooled, dtype, stream);
}

extern "C" int decoder_maxpool_wgmma_supported(char *why, size_t why_size) {
  char scratch[8];
  if (!why || why_size == 0) why = scratch, why_size = sizeof scratch;
  why[0] = '\0';
  int dev = 0;
  const int rc = CU_CHECK(cudaGetDevice(&dev));
  return rc < 0 ? rc : wgmma_usable(dev, why, why_size);
}
