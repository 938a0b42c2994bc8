/* cuda_emu.cpp: the host emulation of tests/emu/cuda_emu.h (fibers, barriers, warp exchanges,
 * cp.async, the m16n8k16 mma). */
#include "cuda_emu.h"

#include <sys/mman.h>
#ifndef __x86_64__
#include <ucontext.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDA_EMU_ASAN 1
#endif

dim3 cuda_emu_thread_idx, cuda_emu_block_idx;
dim3 cuda_emu_block_dim, cuda_emu_grid_dim;

/* The switch between fibers. On x86-64 an own one (the callee-saved registers pushed on the old
 * stack, the stack pointer swapped; MXCSR and the x87 control word are left alone: nothing here
 * changes the rounding modes): glibc's swapcontext also saves the signal mask, a system call per
 * switch, which made the emulation ~50x slower. Other machines use ucontext. */
#ifdef __x86_64__
extern "C" void cuda_emu_switch(void **save_sp, void *load_sp);
__asm__(R"(
.text
.p2align 4
.globl cuda_emu_switch
.type cuda_emu_switch, @function
cuda_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size cuda_emu_switch, .-cuda_emu_switch
.section .note.GNU-stack, "", @progbits
.text
)");
#endif

namespace {

[[noreturn]] void die(const char *what) {
  fprintf(stderr, "cuda_emu: %s (block %u %u %u, thread %u)\n", what, cuda_emu_block_idx.x,
          cuda_emu_block_idx.y, cuda_emu_block_idx.z, cuda_emu_thread_idx.x);
  fflush(stderr);
  abort();
}

/* A barrier of n fibers: arrivals counted, a generation that the last arrival advances; a fiber
 * waits for the generation it arrived in to pass. `done` counts the fibers that have returned:
 * a barrier with one of them can never complete (die). */
struct Barrier {
  int n = 0, arrived = 0, done = 0;
  unsigned generation = 0;
  const char *what = "";
  void reset(int threads, const char *message) {
    n = threads;
    arrived = done = 0;
    what = message;
  }
};

/* A 16-byte cp.async not yet landed: its group (the thread's commit count when issued). */
struct Copy {
  void *dst;
  const void *src;
  int bytes;
  unsigned group;
};

/* Where a suspended fiber (or the launching code) goes on: on x86-64 its saved stack pointer
 * (cuda_emu_switch), elsewhere a ucontext. */
struct Context {
#ifdef __x86_64__
  void *sp = nullptr;
#else
  ucontext_t uc;
#endif
};

/* One CUDA thread: its context and stack, what it waits for, its exchange parity (see
 * cuda_emu_warp_share) and its cp.async queue. */
enum { kStackBytes = 256 << 10 };
struct Fiber {
  Context ctx;
  void *stack = nullptr;
  Barrier *waiting = nullptr; /* the barrier it waits at, or null */
  unsigned wait_generation = 0;
  bool done = false;
  unsigned exchange_parity = 0, commits = 0;
  std::vector<Copy> copies;
  /* wgmma: operations issued and groups committed so far, fenced since the last wait; the
   * shared-memory chunks its cp.async landed that it has not fenced for the async proxy yet */
  unsigned long wg_issued = 0;
  unsigned wg_commits = 0;
  bool wg_fenced = false;
  std::vector<uint32_t> unfenced;
};

/* One warp's exchange buffers: two, used alternately, so that one barrier per exchange suffices
 * (a lane can start exchange k + 1 only after every lane has arrived at it, i.e. has read the
 * buffer of exchange k - 1, the one k + 1 reuses). */
struct Warp {
  Barrier barrier;
  unsigned char buffer[2][32][CUDA_EMU_MAX_EXCHANGE];
};

/* A wgmma recorded by its warpgroup's threads, done when its group is waited for. */
struct WgmmaOp {
  uint64_t desc_a, desc_b;
  int n;
  bool bf16;
  unsigned group;
  int issued; /* threads that have issued it */
  float *d[128];
};

/* One warpgroup's barrier (its waits) and the wgmma issued and not yet done: ops[i] is the
 * warpgroup's operation number first + i. */
struct Warpgroup {
  Barrier barrier;
  std::deque<WgmmaOp> ops;
  unsigned long first = 0;
};

Barrier block_barrier;
std::vector<Warp> warps;
std::vector<Warpgroup> warpgroups;
std::vector<Fiber> fibers;
size_t finished; /* fibers of the running block that have returned */
int current = -1; /* the running fiber, -1 outside a block */
Context launcher; /* run_block's, while the block's fibers run */
const std::function<void()> *running_kernel;
std::vector<unsigned char> dynamic_shared;
unsigned char *dynamic_base; /* its first 128-byte aligned byte */
size_t dynamic_size;          /* the launch's bytes of it */
/* per 16-byte chunk of dynamic shared memory: 1 + the thread whose cp.async landed there and
 * that has not run fence.proxy.async since, or 0 */
std::vector<int> chunk_unfenced;
#ifdef CUDA_EMU_ASAN
const void *launcher_stack;  /* the launching thread's stack, for ASan's fiber annotations */
size_t launcher_stack_size;
#endif

Fiber &self() {
  if (current < 0) die("a device function called outside a kernel");
  return fibers[(size_t)current];
}

/* Saves the running code's context in from and goes on in to, whose stack is [stack, +size)
 * (for ASan); `ending`: from is never resumed. Returns when something resumes from. */
void jump(Context &from, Context &to, const void *stack, size_t size, bool ending) {
#ifdef CUDA_EMU_ASAN
  void *fake = nullptr;
  __sanitizer_start_switch_fiber(ending ? nullptr : &fake, stack, size);
#else
  (void)stack, (void)size, (void)ending;
#endif
#ifdef __x86_64__
  cuda_emu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

bool runnable(const Fiber &f) {
  return !f.done && !(f.waiting && f.waiting->generation == f.wait_generation);
}

/* Fiber j goes on (from the context `from`). */
void resume(size_t j, Context &from, bool ending) {
  Fiber &t = fibers[j];
  t.waiting = nullptr;
  current = (int)j;
  cuda_emu_thread_idx = dim3((unsigned)j, 0, 0);
  jump(from, t.ctx, t.stack, kStackBytes, ending);
}

/* The running fiber i cannot go on (it waits at a barrier, or it has returned: `ending`): the next
 * runnable fiber after it, in thread order round the block, goes on, straight from this one (no
 * trip through a scheduler: a warp's shuffle is then one switch per lane); when every fiber has
 * returned, run_block does; when none can go on but some wait, the block would hang: die. */
void yield_from(size_t i, bool ending) {
  const size_t n = fibers.size();
  for (size_t k = 1; k <= n; k++) {
    const size_t j = (i + k) % n;
    if (runnable(fibers[j])) {
      resume(j, fibers[i].ctx, ending);
      return;
    }
  }
  if (finished < n) die("the block's threads wait at different barriers (a hang on a device)");
  current = -1;
#ifdef CUDA_EMU_ASAN
  jump(fibers[i].ctx, launcher, launcher_stack, launcher_stack_size, ending);
#else
  jump(fibers[i].ctx, launcher, nullptr, 0, ending);
#endif
}

/* The running fiber arrives at barrier b and waits for its generation to pass; the last arrival
 * advances it and goes on. */
void barrier_wait(Barrier &b) {
  if (b.done) die(b.what);
  if (++b.arrived == b.n) {
    b.arrived = 0;
    b.generation++;
    return;
  }
  Fiber &f = self();
  f.waiting = &b;
  f.wait_generation = b.generation;
  yield_from((size_t)current, false);
}

void fiber_main() {
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  (*running_kernel)();
  Fiber &f = self();
  if (!f.copies.empty()) die("a thread returned with cp.async copies it never waited for");
  Warpgroup &g = warpgroups[cuda_emu_thread_idx.x / 128];
  if (f.wg_issued != g.first) die("a thread returned with wgmma it never waited for");
  f.done = true;
  finished++;
  Barrier &w = warps[cuda_emu_thread_idx.x / 32].barrier;
  w.done++;
  g.barrier.done++;
  block_barrier.done++;
  if (w.arrived) die(w.what);
  if (g.barrier.arrived) die(g.barrier.what);
  if (block_barrier.arrived) die(block_barrier.what);
  yield_from((size_t)current, true); /* never resumed */
  abort();
}

/* Runs the block's fibers until all have returned (fiber 0 first; see yield_from). */
void run_block(dim3 block_idx) {
  const size_t n = fibers.size();
  for (size_t i = 0; i < n; i++) {
    Fiber &f = fibers[i];
    f.waiting = nullptr;
    f.done = false;
    f.exchange_parity = f.commits = 0;
    f.copies.clear();
    f.wg_issued = 0;
    f.wg_commits = 0;
    f.wg_fenced = false;
    f.unfenced.clear();
#ifdef CUDA_EMU_ASAN
    /* the previous block's fibers never returned through their frames: their redzones are
     * still poisoned */
    ASAN_UNPOISON_MEMORY_REGION(f.stack, kStackBytes);
#endif
#ifdef __x86_64__
    /* the stack as cuda_emu_switch leaves it, returning into fiber_main as if called: from
     * the 16-byte aligned top down, a null return address for fiber_main, fiber_main (what the
     * switch's ret pops), rbp rbx r12 r13 r14 r15 (0) */
    uint64_t *top = reinterpret_cast<uint64_t *>(static_cast<char *>(f.stack) + kStackBytes);
    uint64_t *sp = top - 8;
    memset(sp, 0, 8 * sizeof *sp);
    sp[6] = reinterpret_cast<uint64_t>(&fiber_main);
    f.ctx.sp = sp;
#else
    getcontext(&f.ctx.uc);
    f.ctx.uc.uc_stack.ss_sp = f.stack;
    f.ctx.uc.uc_stack.ss_size = kStackBytes;
    f.ctx.uc.uc_link = nullptr;
    makecontext(&f.ctx.uc, fiber_main, 0);
#endif
  }
  finished = 0;
  cuda_emu_block_idx = block_idx;
  resume(0, launcher, false);
  current = -1;
}

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

void __syncthreads() { barrier_wait(block_barrier); }

void cuda_emu_check_shfl(unsigned mask, int lane) {
  if (mask != 0xffffffffu) die("__shfl_sync: only the full mask 0xffffffff is emulated");
  if (lane < 0 || lane >= 32) die("__shfl_sync: a lane outside [0, 32)");
}

const unsigned char *cuda_emu_warp_share(const void *mine, size_t bytes) {
  if (bytes > CUDA_EMU_MAX_EXCHANGE) die("cuda_emu_warp_share: too many bytes");
  Warp &w = warps[cuda_emu_thread_idx.x / 32];
  if (w.barrier.n != 32) die("a warp-wide operation in a partial warp (not emulated)");
  Fiber &f = self();
  const unsigned lane = cuda_emu_thread_idx.x % 32, p = f.exchange_parity;
  f.exchange_parity ^= 1u;
  memcpy(w.buffer[p][lane], mine, bytes);
  barrier_wait(w.barrier);
  return &w.buffer[p][0][0];
}

void cuda_emu_warp_exchange(const void *mine, size_t bytes, void *all) {
  const unsigned char *shared = cuda_emu_warp_share(mine, bytes);
  for (int l = 0; l < 32; l++)
    memcpy(static_cast<unsigned char *>(all) + (size_t)l * bytes,
           shared + (size_t)l * CUDA_EMU_MAX_EXCHANGE, bytes);
}

void cuda_emu_cp_async16(void *smem, const void *gmem, int src_bytes) {
  if (src_bytes != 0 && src_bytes != 16) die("cp.async: src_bytes other than 0 or 16");
  if ((uintptr_t)smem % 16 || (src_bytes && (uintptr_t)gmem % 16))
    die("cp.async of 16 bytes: an address not 16-byte aligned");
  Fiber &f = self();
  f.copies.push_back(Copy{smem, gmem, src_bytes, f.commits});
}

void cuda_emu_cp_async_commit() { self().commits++; }

void cuda_emu_cp_async_wait(int n) {
  Fiber &f = self();
  /* groups 0 .. commits - 1 exist; all but the newest n land */
  const long limit = (long)f.commits - n;
  size_t kept = 0;
  for (const Copy &c : f.copies) {
    if ((long)c.group < limit) {
      if (c.bytes)
        memcpy(c.dst, c.src, 16);
      else
        memset(c.dst, 0, 16);
      const unsigned char *dst = static_cast<const unsigned char *>(c.dst);
      if (dst >= dynamic_base && dst < dynamic_base + dynamic_size) {
        const uint32_t chunk = (uint32_t)((dst - dynamic_base) / 16);
        chunk_unfenced[chunk] = current + 1;
        f.unfenced.push_back(chunk);
      }
    } else {
      f.copies[kept++] = c;
    }
  }
  f.copies.resize(kept);
}

void *cuda_emu_dynamic_shared() {
  self();
  return dynamic_base;
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

/* The asm statement's text (stringized, quotes and all) must be this, whitespace and quotes
 * removed, with TYPE f16 or bf16: then d, a, b0, b1 are the operands it binds. */
static std::string asm_expected(const char *type) {
  const std::string t = type;
  return "mma.sync.aligned.m16n8k16.row.col.f32." + t + "." + t +
         ".f32{%0,%1,%2,%3},{%4,%5,%6,%7},{%8,%9},{%0,%1,%2,%3};:+f(d[0]),+f(d[1]),+f(d[2]),"
         "+f(d[3]):r(a[0]),r(a[1]),r(a[2]),r(a[3]),r(b0),r(b1)";
}

void cuda_emu_asm_mma(const char *text, float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                      uint32_t b1) {
  static const std::string f16 = asm_expected("f16"), bf16 = asm_expected("bf16");
  std::string s;
  for (const char *c = text; *c; c++)
    if (*c != ' ' && *c != '"' && *c != '\\' && *c != '\n' && *c != '\t') s += *c;
  if (s != f16 && s != bf16) {
    fprintf(stderr, "cuda_emu: asm not emulated: %s\n(expected %s)\n", s.c_str(), f16.c_str());
    abort();
  }
  cuda_emu_mma_m16n8k16(s == bf16, d, a, b0, b1);
}

uint32_t cuda_emu_shared_address(const void *p) {
  self();
  const unsigned char *c = static_cast<const unsigned char *>(p);
  if (c < dynamic_base || c > dynamic_base + dynamic_size)
    die("a shared address of something outside dynamic shared memory (not emulated)");
  return (uint32_t)(c - dynamic_base);
}

void cuda_emu_fence_proxy_async() {
  Fiber &f = self();
  for (uint32_t chunk : f.unfenced)
    if (chunk_unfenced[chunk] == current + 1) chunk_unfenced[chunk] = 0;
  f.unfenced.clear();
}

void cuda_emu_wgmma_fence() { self().wg_fenced = true; }

namespace {

Warpgroup &full_warpgroup(const char *what) {
  Warpgroup &g = warpgroups[cuda_emu_thread_idx.x / 128];
  if (g.barrier.n != 128) die(what);
  return g;
}

/* Byte offset in dynamic shared memory of element (r, k) of a no-swizzle K-major operand. */
size_t operand_offset(uint64_t desc, int r, int k) {
  const size_t start = (size_t)(desc & 0x3fff) << 4, lbo = (size_t)((desc >> 16) & 0x3fff) << 4;
  const size_t sbo = (size_t)((desc >> 32) & 0x3fff) << 4;
  const size_t at = start + (size_t)(r / 8) * sbo + (size_t)(k / 8) * lbo + (size_t)(r % 8) * 16 +
                    (size_t)(k % 8) * 2;
  if (at + 2 > dynamic_size) die("wgmma: an operand element outside dynamic shared memory");
  if (chunk_unfenced[at / 16])
    die("wgmma reads shared memory that a cp.async landed without a fence.proxy.async since");
  return at;
}

void check_descriptor(uint64_t desc) {
  if ((desc >> 62) != 0) die("wgmma: a swizzled descriptor (only no swizzle is emulated)");
  if (((desc >> 49) & 7) != 0) die("wgmma: a descriptor with a base offset (not emulated)");
  const uint64_t reserved = (3ull << 14) | (3ull << 30) | (7ull << 46) | (0x3ffull << 52);
  if (desc & reserved) die("wgmma: a descriptor with reserved bits set");
}

/* D += A B for a recorded operation, on the 128 threads' accumulators. */
void wgmma_do(const WgmmaOp &op) {
  float A[64][16], B[256][16];
  for (int r = 0; r < 64; r++)
    for (int k = 0; k < 16; k++) {
      uint16_t bits;
      memcpy(&bits, dynamic_base + operand_offset(op.desc_a, r, k), 2);
      A[r][k] = widen(bits, op.bf16);
    }
  for (int c = 0; c < op.n; c++)
    for (int k = 0; k < 16; k++) {
      uint16_t bits;
      memcpy(&bits, dynamic_base + operand_offset(op.desc_b, c, k), 2);
      B[c][k] = widen(bits, op.bf16);
    }
  for (int t = 0; t < 128; t++) {
    const int w = t / 32, l = t % 32;
    for (int j = 0; j < op.n / 2; j++) {
      const int row = 16 * w + l / 4 + 8 * ((j / 2) % 2), col = 8 * (j / 4) + 2 * (l % 4) + j % 2;
      float acc = op.d[t][j];
      for (int k = 0; k < 16; k++) acc += A[row][k] * B[col][k];
      op.d[t][j] = acc;
    }
  }
}

}  // namespace

void cuda_emu_wgmma_m64nNk16(bool bf16, int n, float *d, uint64_t desc_a, uint64_t desc_b) {
  Fiber &f = self();
  Warpgroup &g = full_warpgroup("wgmma.mma_async in a partial warpgroup");
  if (n < 8 || n > 256 || n % 8) die("wgmma: n not a multiple of 8 in [8, 256]");
  if (!f.wg_fenced) die("wgmma.mma_async without a wgmma.fence since the thread's start or its "
                        "last wgmma.wait_group");
  check_descriptor(desc_a);
  check_descriptor(desc_b);
  const size_t i = (size_t)(f.wg_issued - g.first);
  if (i == g.ops.size()) {
    WgmmaOp op = {desc_a, desc_b, n, bf16, f.wg_commits, 0, {}};
    g.ops.push_back(op);
  }
  WgmmaOp &op = g.ops[i];
  if (op.desc_a != desc_a || op.desc_b != desc_b || op.n != n || op.bf16 != bf16 ||
      op.group != f.wg_commits)
    die("the threads of a warpgroup issued different wgmma (descriptors, shape, type or group)");
  op.d[cuda_emu_thread_idx.x % 128] = d;
  op.issued++;
  f.wg_issued++;
}

void cuda_emu_wgmma_commit() {
  full_warpgroup("wgmma.commit_group in a partial warpgroup");
  self().wg_commits++;
}

void cuda_emu_wgmma_wait(int n) {
  Fiber &f = self();
  Warpgroup &g = full_warpgroup("wgmma.wait_group in a partial warpgroup");
  f.wg_fenced = false;
  if (g.barrier.arrived + 1 == g.barrier.n) {
    /* the last thread of the warpgroup to wait: every thread has issued and committed the same
     * (checked per operation; the groups other than the newest n are done, in order) */
    for (int t = 0; t < 128; t++) {
      const Fiber &o = fibers[(cuda_emu_thread_idx.x / 128) * 128 + (size_t)t];
      if (o.wg_issued != f.wg_issued || o.wg_commits != f.wg_commits)
        die("the threads of a warpgroup wait with different wgmma issued or committed");
    }
    while (!g.ops.empty() && (long)g.ops.front().group < (long)f.wg_commits - n) {
      if (g.ops.front().issued != 128) die("a wgmma not issued by every thread of its warpgroup");
      wgmma_do(g.ops.front());
      g.ops.pop_front();
      g.first++;
    }
  }
  barrier_wait(g.barrier);
}

long cuda_emu_launch(dim3 grid, dim3 block, const std::function<void()> &kernel,
                     size_t dynamic_smem) {
  if (block.y != 1 || block.z != 1 || block.x == 0 || block.x > 1024)
    die("cuda_emu_launch: blocks of 1 to 1024 threads in x only");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) die("cuda_emu_launch: an empty grid");
  if (current >= 0) die("cuda_emu_launch: a launch from a kernel");
  cuda_emu_grid_dim = grid;
  cuda_emu_block_dim = block;
  running_kernel = &kernel;
#ifdef CUDA_EMU_ASAN
  pthread_attr_t attr;
  void *stack = nullptr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &stack, &launcher_stack_size);
    pthread_attr_destroy(&attr);
  }
  launcher_stack = stack;
#endif
  warps = std::vector<Warp>((block.x + 31) / 32);
  warpgroups = std::vector<Warpgroup>((block.x + 127) / 128);
  if (fibers.size() != block.x) {
    for (Fiber &f : fibers) {
#ifdef CUDA_EMU_ASAN
      /* ASan keeps the shadow of unmapped memory: whatever is mapped here next (a model file)
       * would inherit the stack's redzones */
      ASAN_UNPOISON_MEMORY_REGION(f.stack, kStackBytes);
#endif
      munmap(f.stack, kStackBytes);
    }
    fibers = std::vector<Fiber>(block.x);
    for (Fiber &f : fibers) {
      f.stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (f.stack == MAP_FAILED) die("cuda_emu_launch: no memory for the fibers' stacks");
    }
  }
  /* 128-byte aligned: a vector of 128 more, the data from the first aligned byte */
  dynamic_shared.assign(dynamic_smem + 128, 0xff);
  dynamic_base = dynamic_shared.data() + (128 - (uintptr_t)dynamic_shared.data() % 128) % 128;
  dynamic_size = dynamic_smem;
  long blocks = 0;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++, blocks++) {
        block_barrier.reset((int)block.x, "__syncthreads() with a thread of the block returned (it "
                            "would hang on a device)");
        for (size_t w = 0; w < warps.size(); w++)
          warps[w].barrier.reset((int)std::min<unsigned>(32, block.x - 32 * (unsigned)w),
                                 "a warp-wide operation (shuffle, mma) with a lane of the warp "
                                 "returned");
        for (size_t g = 0; g < warpgroups.size(); g++) {
          warpgroups[g].barrier.reset((int)std::min<unsigned>(128, block.x - 128 * (unsigned)g),
                                      "wgmma.wait_group with a thread of the warpgroup returned");
          warpgroups[g].ops.clear();
          warpgroups[g].first = 0;
        }
        memset(dynamic_base, 0xff, dynamic_smem);
        chunk_unfenced.assign(dynamic_smem / 16 + 1, 0);
        run_block(dim3(x, y, z));
      }
  running_kernel = nullptr;
  return blocks;
}
