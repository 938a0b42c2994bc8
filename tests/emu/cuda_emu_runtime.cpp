/* cuda_emu_runtime.cpp: the CUDA runtime, cuBLAS and cuSPARSE calls of the EMULATED device
 * (tests/emu): what is and is not emulated is in cuda_emu_runtime.h. Not a GPU. */
#include "cuda_emu_runtime.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cusparse.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* The handles' hidden types: the headers only declare them. */
struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  unsigned flags;
  bool recorded;
  std::chrono::steady_clock::time_point when;
};
struct cublasContext {
  cudaStream_t stream;
  cublasMath_t math;
  void *workspace;
  size_t workspace_bytes;
};
struct cusparseContext {
  cudaStream_t stream;
};

namespace {

constexpr size_t kAlign = 256;
constexpr size_t kTotalGlobalMem = (size_t)8 << 30;
constexpr size_t kSmemDefault = 49152;
constexpr int kSmemOptin = 232448;
constexpr size_t kTooBig = (size_t)1 << 62;

struct registry {
  std::mutex mu;
  std::map<uintptr_t, size_t> device; /* begin -> bytes */
  std::map<uintptr_t, size_t> pinned; /* begin -> bytes */
  size_t device_live = 0;
  std::set<const void *> streams, events, blas, sparse;
  /* destroyed handles: never freed, so that a new handle never reuses a destroyed one's address
   * and a use after destroy is always caught (a few bytes per handle, reachable: no leak report) */
  std::set<const void *> retired;
  std::map<const void *, int> smem_limit; /* kernel function pointer -> bytes */
};

registry &reg() {
  static registry *r = new registry; /* never destroyed: frees at exit must still find it */
  return *r;
}

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

void open_device() {
  static std::once_flag once;
  std::call_once(once, [] {
    fprintf(stderr, "cuda_emu: the CUDA device is EMULATED on the CPU "
                    "(tests/emu/cuda_emu_runtime.cpp): not a GPU\n");
  });
}

/* The allocation of `m` holding p (begin <= p < begin + size, or p == begin for size 0), or end. */
std::map<uintptr_t, size_t>::const_iterator find_alloc(const std::map<uintptr_t, size_t> &m,
                                                       const void *p) {
  const uintptr_t a = (uintptr_t)p;
  auto it = m.upper_bound(a);
  if (it == m.begin()) return m.end();
  --it;
  if (a < it->first + it->second || a == it->first) return it;
  return m.end();
}

bool in_range(const std::map<uintptr_t, size_t> &m, const void *p, size_t bytes) {
  const uintptr_t a = (uintptr_t)p;
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  if (a < it->first || a - it->first > it->second) return false;
  return bytes <= it->second - (a - it->first);
}

/* One line describing what p is, for the messages. */
void describe(const void *p, size_t bytes, char *out, size_t cap) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = find_alloc(r.device, p);
  if (it != r.device.end()) {
    const size_t offset = (size_t)((uintptr_t)p - it->first);
    const size_t past = bytes > it->second - offset ? bytes - (it->second - offset) : 0;
    snprintf(out, cap, "device allocation [%p, +%zu) at offset %zu, %zu bytes past its end",
             (void *)it->first, it->second, offset, past);
    return;
  }
  it = find_alloc(r.pinned, p);
  if (it != r.pinned.end()) {
    snprintf(out, cap, "pinned HOST allocation [%p, +%zu)", (void *)it->first, it->second);
    return;
  }
  snprintf(out, cap, "%s", p ? "host memory (not a live device allocation)" : "NULL");
}

bool is_device(const void *p) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return find_alloc(r.device, p) != r.device.end();
}

/* A host side of a copy: not NULL, not device memory, inside its pinned allocation if in one. */
bool host_ok(const void *p, size_t bytes) {
  if (!p) return false;
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (find_alloc(r.device, p) != r.device.end()) return false;
  if (find_alloc(r.pinned, p) != r.pinned.end()) return in_range(r.pinned, p, bytes);
  return true;
}

bool stream_ok(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.streams.count(s) != 0;
}

bool live(std::set<const void *> registry::*set, const void *h) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return (r.*set).count(h) != 0;
}

bool forget(std::set<const void *> registry::*set, const void *h) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if ((r.*set).erase(h) == 0) return false;
  r.retired.insert(h);
  return true;
}

void remember(std::set<const void *> registry::*set, const void *h) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  (r.*set).insert(h);
}

/* Retires a live handle of `set`; false (and a stderr line naming the call) if h is not live. */
bool destroy_handle(std::set<const void *> registry::*set, const void *h, const char *call,
                    const char *kind) {
  if (h && forget(set, h)) return true;
  fprintf(stderr, "cuda_emu: %s(%p): not a live %s\n", call, h, kind);
  return false;
}

/* stream_ok, with a stderr line naming the call when not */
bool stream_ok_for(cudaStream_t s, const char *call) {
  if (stream_ok(s)) return true;
  fprintf(stderr, "cuda_emu: %s(%p): not a live stream\n", call, (void *)s);
  return false;
}

void *aligned_bytes(size_t bytes) {
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void *p = std::aligned_alloc(kAlign, rounded);
  if (p) memset(p, 0xff, rounded);
#if defined(__SANITIZE_ADDRESS__)
  /* under ASan (the emu_asan tests) the rounding's slack is out of bounds too */
  if (p && rounded > bytes)
    ASAN_POISON_MEMORY_REGION(static_cast<char *>(p) + bytes, rounded - bytes);
#endif
  return p;
}

cudaError_t device_alloc(void **ptr, size_t bytes) {
  open_device();
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  registry &r = reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (bytes > kTotalGlobalMem - r.device_live) return fail(cudaErrorMemoryAllocation);
    r.device_live += bytes;
  }
  void *p = aligned_bytes(bytes);
  std::lock_guard<std::mutex> lock(r.mu);
  if (!p) {
    r.device_live -= bytes;
    return fail(cudaErrorMemoryAllocation);
  }
  r.device[(uintptr_t)p] = bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t registry_free(std::map<uintptr_t, size_t> registry::*map, void *p, const char *call) {
  if (!p) return cudaSuccess;
  registry &r = reg();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = (r.*map).find((uintptr_t)p);
    if (it != (r.*map).end()) {
      if (map == &registry::device) r.device_live -= it->second;
      (r.*map).erase(it);
      std::free(p);
      return cudaSuccess;
    }
  }
  char what[160];
  describe(p, 0, what, sizeof what);
  fprintf(stderr, "cuda_emu: %s(%p): not the start of a live allocation of its kind (%s)\n", call,
          p, what);
  return fail(cudaErrorInvalidValue);
}

const char *kind_name(cudaMemcpyKind k) {
  switch (k) {
  case cudaMemcpyHostToHost: return "HostToHost";
  case cudaMemcpyHostToDevice: return "HostToDevice";
  case cudaMemcpyDeviceToHost: return "DeviceToHost";
  case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
  case cudaMemcpyDefault: return "Default";
  }
  return "?";
}

cudaError_t copy(const char *call, void *dst, const void *src, size_t count, cudaMemcpyKind kind,
                 cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (count == 0) return cudaSuccess;
  bool dst_dev, src_dev;
  switch (kind) {
  case cudaMemcpyHostToHost: dst_dev = false, src_dev = false; break;
  case cudaMemcpyHostToDevice: dst_dev = true, src_dev = false; break;
  case cudaMemcpyDeviceToHost: dst_dev = false, src_dev = true; break;
  case cudaMemcpyDeviceToDevice: dst_dev = true, src_dev = true; break;
  case cudaMemcpyDefault: dst_dev = is_device(dst), src_dev = is_device(src); break;
  default:
    fprintf(stderr, "cuda_emu: %s: copy kind %d is not a cudaMemcpyKind\n", call, (int)kind);
    return fail(cudaErrorInvalidMemcpyDirection);
  }
  const bool dst_ok = dst_dev ? cuda_emu_device_range(dst, count) : host_ok(dst, count);
  const bool src_ok = src_dev ? cuda_emu_device_range(src, count) : host_ok(src, count);
  if (!dst_ok || !src_ok) {
    const void *bad = dst_ok ? src : dst;
    char what[160];
    describe(bad, count, what, sizeof what);
    fprintf(stderr, "cuda_emu: %s(dst %p, src %p, %zu bytes, %s): the %s %p is not %s memory "
            "of %zu bytes: %s\n", call, dst, src, count, kind_name(kind),
            dst_ok ? "source" : "destination", bad,
            (dst_ok ? src_dev : dst_dev) ? "device" : "host", count, what);
    return fail(cudaErrorInvalidValue);
  }
  memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t set(const char *call, void *dst, int value, size_t count, cudaStream_t stream) {
  if (!stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (count == 0) return cudaSuccess;
  if (!cuda_emu_device_range(dst, count)) {
    char what[160];
    describe(dst, count, what, sizeof what);
    fprintf(stderr, "cuda_emu: %s(%p, %d, %zu bytes): not device memory of that size: %s\n", call,
            dst, value, count, what);
    return fail(cudaErrorInvalidValue);
  }
  memset(dst, value, count);
  return cudaSuccess;
}

} /* namespace */

/* ---- exported helpers ------------------------------------------------------------------------ */

bool cuda_emu_device_range(const void *p, size_t bytes) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  return in_range(r.device, p, bytes);
}

void cuda_emu_require_device_range(const void *p, size_t bytes, const char *what) {
  if (cuda_emu_device_range(p, bytes)) return;
  char is[160];
  describe(p, bytes, is, sizeof is);
  fprintf(stderr, "cuda_emu: %s: [%p, +%zu bytes) is not inside one live device allocation: %s\n",
          what, p, bytes, is);
  fflush(stderr);
  abort();
}

void cuda_emu_record_error(cudaError_t e) { fail(e); }

size_t cuda_emu_dynamic_smem_limit(const void *func) {
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.smem_limit.find(func);
  return it == r.smem_limit.end() ? kSmemDefault : (size_t)it->second;
}

/* ---- CUDA runtime ---------------------------------------------------------------------------- */

extern "C" {

cudaError_t cudaMalloc(void **devPtr, size_t size) { return device_alloc(devPtr, size); }

cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t hStream) {
  if (!stream_ok(hStream)) return fail(cudaErrorInvalidResourceHandle);
  return device_alloc(devPtr, size);
}

cudaError_t cudaFree(void *devPtr) { return registry_free(&registry::device, devPtr, "cudaFree"); }

cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t hStream) {
  if (!stream_ok(hStream)) return fail(cudaErrorInvalidResourceHandle);
  return registry_free(&registry::device, devPtr, "cudaFreeAsync");
}

cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags) {
  open_device();
  if (!pHost) return fail(cudaErrorInvalidValue);
  *pHost = nullptr;
  if (flags & ~(unsigned)(cudaHostAllocPortable | cudaHostAllocMapped |
                          cudaHostAllocWriteCombined)) return fail(cudaErrorInvalidValue);
  if (size == 0) return cudaSuccess;
  if (size > kTooBig) return fail(cudaErrorMemoryAllocation);
  void *p = aligned_bytes(size);
  if (!p) return fail(cudaErrorMemoryAllocation);
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  r.pinned[(uintptr_t)p] = size;
  *pHost = p;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) {
  return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

cudaError_t cudaFreeHost(void *ptr) { return registry_free(&registry::pinned, ptr, "cudaFreeHost"); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
  return copy("cudaMemcpy", dst, src, count, kind, nullptr);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return copy("cudaMemcpyAsync", dst, src, count, kind, stream);
}

cudaError_t cudaMemset(void *devPtr, int value, size_t count) {
  return set("cudaMemset", devPtr, value, count, nullptr);
}

cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream) {
  return set("cudaMemsetAsync", devPtr, value, count, stream);
}

cudaError_t cudaGetDeviceCount(int *count) {
  open_device();
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  open_device();
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

/* The emulated device's compute capability: 9.0, or SPLADEX_CUDA_EMU_CC ("8.0", "8.6", ...), so
 * that the tests can see what the backend refuses below 9.0 (the wgmma decoder). Anything else
 * there aborts. */
static void compute_capability(int *major, int *minor) {
  const char *v = getenv("SPLADEX_CUDA_EMU_CC");
  *major = 9, *minor = 0;
  if (!v || !*v) return;
  char end = 0;
  if (sscanf(v, "%d.%d%c", major, minor, &end) != 2 || *major < 1 || *major > 20 || *minor < 0 ||
      *minor > 9) {
    fprintf(stderr, "cuda_emu: SPLADEX_CUDA_EMU_CC=%s: expected MAJOR.MINOR, e.g. 8.0\n", v);
    abort();
  }
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
  open_device();
  if (!prop) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "%s",
           "CUDA EMULATED on the CPU (spladex tests/emu): not a GPU");
  compute_capability(&prop->major, &prop->minor);
  prop->multiProcessorCount = 132;
  prop->totalGlobalMem = kTotalGlobalMem;
  prop->sharedMemPerBlock = kSmemDefault;
  prop->sharedMemPerBlockOptin = kSmemOptin;
  prop->sharedMemPerMultiprocessor = 233472;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024, prop->maxThreadsDim[1] = 1024, prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647, prop->maxGridSize[1] = 65535, prop->maxGridSize[2] = 65535;
  prop->l2CacheSize = 50 << 20;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
  if (!value) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  int major, minor;
  compute_capability(&major, &minor);
  switch (attr) {
  case cudaDevAttrComputeCapabilityMajor: *value = major; return cudaSuccess;
  case cudaDevAttrComputeCapabilityMinor: *value = minor; return cudaSuccess;
  case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kSmemOptin; return cudaSuccess;
  case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
  default:
    fprintf(stderr, "cuda_emu: cudaDeviceGetAttribute: attribute %d is not emulated\n", (int)attr);
    return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
  if (!func) return fail(cudaErrorInvalidDeviceFunction);
  switch (attr) {
  case cudaFuncAttributeMaxDynamicSharedMemorySize: {
    if (value < 0 || value > kSmemOptin) return fail(cudaErrorInvalidValue);
    registry &r = reg();
    std::lock_guard<std::mutex> lock(r.mu);
    r.smem_limit[func] = value;
    return cudaSuccess;
  }
  case cudaFuncAttributePreferredSharedMemoryCarveout:
    return value >= -1 && value <= 100 ? cudaSuccess : fail(cudaErrorInvalidValue);
  default:
    fprintf(stderr, "cuda_emu: cudaFuncSetAttribute: attribute %d is not emulated\n", (int)attr);
    return fail(cudaErrorNotSupported);
  }
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

} /* extern "C" */

namespace {
struct error_entry {
  cudaError_t code;
  const char *name, *text;
};
#define E(code, text) {code, #code, text}
constexpr error_entry kErrors[] = {
    E(cudaSuccess, "no error"),
    E(cudaErrorInvalidValue, "invalid argument"),
    E(cudaErrorMemoryAllocation, "out of memory"),
    E(cudaErrorInitializationError, "initialization error"),
    E(cudaErrorInvalidConfiguration, "invalid configuration argument"),
    E(cudaErrorInvalidDevice, "invalid device ordinal"),
    E(cudaErrorInvalidDeviceFunction, "invalid device function"),
    E(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy"),
    E(cudaErrorInvalidResourceHandle, "invalid resource handle"),
    E(cudaErrorLaunchOutOfResources, "too many resources requested for launch"),
    E(cudaErrorLaunchFailure, "unspecified launch failure"),
    E(cudaErrorIllegalAddress, "an illegal memory access was encountered"),
    E(cudaErrorNoDevice, "no CUDA-capable device is detected"),
    E(cudaErrorNotSupported, "operation not supported"),
    E(cudaErrorNotReady, "device not ready"),
    E(cudaErrorUnknown, "unknown error"),
};
#undef E
} /* namespace */

extern "C" {

const char *cudaGetErrorName(cudaError_t error) {
  for (const error_entry &e : kErrors)
    if (e.code == error) return e.name;
  return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error) {
  for (const error_entry &e : kErrors)
    if (e.code == error) return e.text;
  return "unrecognized error code";
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *pStream, unsigned int flags) {
  open_device();
  if (!pStream) return fail(cudaErrorInvalidValue);
  if (flags != cudaStreamDefault && flags != cudaStreamNonBlocking)
    return fail(cudaErrorInvalidValue);
  cudaStream_t s = new CUstream_st{flags};
  remember(&registry::streams, s);
  *pStream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *pStream) {
  return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  return destroy_handle(&registry::streams, stream, "cudaStreamDestroy", "stream")
             ? cudaSuccess
             : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  return stream_ok(stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
  open_device();
  if (!event) return fail(cudaErrorInvalidValue);
  if (flags & ~(unsigned)(cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess))
    return fail(cudaErrorInvalidValue);
  if ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming))
    return fail(cudaErrorInvalidValue);
  cudaEvent_t e = new CUevent_st{flags, false, {}};
  remember(&registry::events, e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  return destroy_handle(&registry::events, event, "cudaEventDestroy", "event")
             ? cudaSuccess
             : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event || !stream_ok(stream)) return fail(cudaErrorInvalidResourceHandle);
  registry &r = reg(); /* under the lock: one thread may record while another reads the time */
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.events.count(event)) return fail(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event || !live(&registry::events, event)) return fail(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return fail(cudaErrorInvalidValue);
  registry &r = reg();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!start || !end || !r.events.count(start) || !r.events.count(end))
    return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded || ((start->flags | end->flags) & cudaEventDisableTiming))
    return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

} /* extern "C" */

/* ---- cuBLAS ---------------------------------------------------------------------------------- */

namespace {

bool blas_ok(cublasHandle_t h) { return h && live(&registry::blas, h); }

int elem_size(cudaDataType t) {
  return t == CUDA_R_32F ? 4 : t == CUDA_R_16F || t == CUDA_R_16BF ? 2 : 0;
}

float widen(const void *base, size_t i, cudaDataType t) {
  if (t == CUDA_R_32F) return static_cast<const float *>(base)[i];
  if (t == CUDA_R_16F) return __half2float(static_cast<const __half *>(base)[i]);
  return __bfloat162float(static_cast<const __nv_bfloat16 *>(base)[i]);
}

void store(void *base, size_t i, cudaDataType t, float v) {
  if (t == CUDA_R_32F) static_cast<float *>(base)[i] = v;
  else if (t == CUDA_R_16F) static_cast<__half *>(base)[i] = __float2half_rn(v);
  else static_cast<__nv_bfloat16 *>(base)[i] = __float2bfloat16_rn(v);
}

constexpr int kRowBlock = 256; /* rows of C per block: the accumulators of 8 columns fit L1 */
constexpr int kColBlock = 8;

struct gemm_job {
  int m, n, k;
  const float *a;  /* op(A) packed: (row block, p, row in block), kRowBlock per (block, p) */
  const float *b;  /* op(B) (n, k): column j's k values contiguous */
  float alpha, beta;
  void *c;
  cudaDataType ctype;
  int ldc;
};

/* Rows [block_begin, block_end) blocks of C. The sum of element (i, j) runs p = 0..k-1 in order,
 * each product rounded to float before the add: no contraction into FMA here. */
#if defined(__clang__)
void gemm_rows(const gemm_job &g, int block_begin, int block_end) {
#pragma clang fp contract(off)
#else
__attribute__((optimize("fp-contract=off"))) void gemm_rows(const gemm_job &g, int block_begin,
                                                          int block_end) {
#endif
  float acc[kColBlock][kRowBlock];
  for (int blk = block_begin; blk < block_end; blk++) {
    const int i0 = blk * kRowBlock, rows = std::min(kRowBlock, g.m - i0);
    const float *ablk = g.a + (size_t)blk * g.k * kRowBlock;
    for (int j0 = 0; j0 < g.n; j0 += kColBlock) {
      const int cols = std::min(kColBlock, g.n - j0);
      for (int jj = 0; jj < cols; jj++) std::fill(acc[jj], acc[jj] + kRowBlock, 0.0f);
      for (int p = 0; p < g.k; p++) {
        const float *ap = ablk + (size_t)p * kRowBlock;
        for (int jj = 0; jj < cols; jj++) {
          const float bv = g.b[(size_t)(j0 + jj) * g.k + p];
          float *aj = acc[jj];
          for (int ii = 0; ii < kRowBlock; ii++) {
            const float prod = ap[ii] * bv;
            aj[ii] = aj[ii] + prod;
          }
        }
      }
      for (int jj = 0; jj < cols; jj++) {
        const size_t col = (size_t)(j0 + jj) * g.ldc;
        for (int ii = 0; ii < rows; ii++) {
          float v = g.alpha * acc[jj][ii];
          if (g.beta != 0.0f) {
            const float old = g.beta * widen(g.c, col + i0 + ii, g.ctype);
            v = v + old;
          }
          store(g.c, col + i0 + ii, g.ctype, v);
        }
      }
    }
  }
}

} /* namespace */

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
  open_device();
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  cublasHandle_t h = new cublasContext{nullptr, CUBLAS_DEFAULT_MATH, nullptr, 0};
  remember(&registry::blas, h);
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  return destroy_handle(&registry::blas, handle, "cublasDestroy", "cuBLAS handle")
             ? CUBLAS_STATUS_SUCCESS
             : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (!blas_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream_ok_for(streamId, "cublasSetStream")) return CUBLAS_STATUS_INVALID_VALUE;
  handle->stream = streamId;
  /* as cuBLAS documents: setting the stream returns the handle to the default workspace */
  handle->workspace = nullptr;
  handle->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *streamId) {
  if (!blas_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!streamId) return CUBLAS_STATUS_INVALID_VALUE;
  *streamId = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace,
                                     size_t workspaceSizeInBytes) {
  if (!blas_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (workspace == nullptr ? workspaceSizeInBytes != 0 : (uintptr_t)workspace % 256 != 0) {
    fprintf(stderr, "cuda_emu: cublasSetWorkspace(%p, %zu): a workspace must be 256-byte aligned "
            "(NULL only with size 0)\n", workspace, workspaceSizeInBytes);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (workspace) cuda_emu_require_device_range(workspace, workspaceSizeInBytes,
                                               "cublasSetWorkspace: the workspace");
  handle->workspace = workspace;
  handle->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!blas_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const unsigned base = (unsigned)mode & ~(unsigned)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH &&
      base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
  (void)algo;
  if (!blas_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool op_ok = (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                     (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  if (!op_ok || m < 0 || n < 0 || k < 0 || lda < std::max(1, ta ? k : m) ||
      ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m) || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (computeType != CUBLAS_COMPUTE_32F || Atype != Btype || elem_size(Atype) == 0 ||
      (Ctype != CUDA_R_32F && Ctype != Atype)) {
    fprintf(stderr, "cuda_emu: cublasGemmEx: types A %d, B %d, C %d, compute %d are not emulated "
            "(CUBLAS_COMPUTE_32F; A and B the same of 32F, 16F, 16BF; C 32F or that type)\n",
            (int)Atype, (int)Btype, (int)Ctype, (int)computeType);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (is_device(alpha) || is_device(beta)) {
    fprintf(stderr, "cuda_emu: cublasGemmEx: alpha %p / beta %p point to device memory, but the "
            "pointer mode is host\n", alpha, beta);
    fflush(stderr);
    abort();
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  char what[200];
  auto require = [&](const char *operand, const void *p, size_t elems, cudaDataType t) {
    snprintf(what, sizeof what, "cublasGemmEx operand %s (m %d n %d k %d, lda %d ldb %d ldc %d, "
             "trans %d %d)", operand, m, n, k, lda, ldb, ldc, (int)transa, (int)transb);
    cuda_emu_require_device_range(p, elems * (size_t)elem_size(t), what);
  };
  require("C", C, (size_t)(n - 1) * ldc + m, Ctype);
  if (k > 0) {
    require("A", A, ta ? (size_t)(m - 1) * lda + k : (size_t)(k - 1) * lda + m, Atype);
    require("B", B, tb ? (size_t)(k - 1) * ldb + n : (size_t)(n - 1) * ldb + k, Btype);
  }
  const int row_blocks = (m + kRowBlock - 1) / kRowBlock;
  std::vector<float> a((size_t)row_blocks * k * kRowBlock, 0.0f), b((size_t)n * k);
  for (int i = 0; i < m; i++)
    for (int p = 0; p < k; p++) {
      const size_t src = ta ? (size_t)i * lda + p : (size_t)p * lda + i;
      a[((size_t)(i / kRowBlock) * k + p) * kRowBlock + i % kRowBlock] = widen(A, src, Atype);
    }
  for (int j = 0; j < n; j++)
    for (int p = 0; p < k; p++)
      b[(size_t)j * k + p] = widen(B, tb ? (size_t)p * ldb + j : (size_t)j * ldb + p, Btype);
  const gemm_job g{m, n, k, a.data(), b.data(), *static_cast<const float *>(alpha),
                   *static_cast<const float *>(beta), C, Ctype, ldc};
  const double work = (double)m * n * (k + 1);
  if (work < 4e6 || row_blocks < 2) {
    gemm_rows(g, 0, row_blocks);
  } else {
    const int half = row_blocks / 2;
    std::thread other([&g, half, row_blocks] { gemm_rows(g, half, row_blocks); });
    gemm_rows(g, 0, half);
    other.join();
  }
  return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */

namespace {
struct status_entry {
  int code;
  const char *name, *text;
};
#define S(code, text) {code, #code, text}
constexpr status_entry kBlasStatus[] = {
    S(CUBLAS_STATUS_SUCCESS, "the operation completed successfully"),
    S(CUBLAS_STATUS_NOT_INITIALIZED, "the library was not initialized"),
    S(CUBLAS_STATUS_ALLOC_FAILED, "the resource allocation failed"),
    S(CUBLAS_STATUS_INVALID_VALUE, "an invalid numeric value was used as an argument"),
    S(CUBLAS_STATUS_ARCH_MISMATCH, "an absent device architectural feature is required"),
    S(CUBLAS_STATUS_MAPPING_ERROR, "an access to GPU memory space failed"),
    S(CUBLAS_STATUS_EXECUTION_FAILED, "the GPU program failed to execute"),
    S(CUBLAS_STATUS_INTERNAL_ERROR, "an internal operation failed"),
    S(CUBLAS_STATUS_NOT_SUPPORTED, "the functionality requested is not supported"),
    S(CUBLAS_STATUS_LICENSE_ERROR, "the functionality requested requires some license"),
};
constexpr status_entry kSparseStatus[] = {
    S(CUSPARSE_STATUS_SUCCESS, "success"),
    S(CUSPARSE_STATUS_NOT_INITIALIZED, "initialization error"),
    S(CUSPARSE_STATUS_ALLOC_FAILED, "out of memory"),
    S(CUSPARSE_STATUS_INVALID_VALUE, "invalid value"),
    S(CUSPARSE_STATUS_ARCH_MISMATCH, "architecture mismatch"),
    S(CUSPARSE_STATUS_MAPPING_ERROR, "mapping error"),
    S(CUSPARSE_STATUS_EXECUTION_FAILED, "execution failed"),
    S(CUSPARSE_STATUS_INTERNAL_ERROR, "internal error"),
    S(CUSPARSE_STATUS_MATRIX_TYPE_NOT_SUPPORTED, "matrix type not supported"),
    S(CUSPARSE_STATUS_ZERO_PIVOT, "zero pivot"),
    S(CUSPARSE_STATUS_NOT_SUPPORTED, "operation not supported"),
    S(CUSPARSE_STATUS_INSUFFICIENT_RESOURCES, "insufficient resources"),
};
#undef S

template <size_t N>
const char *status_lookup(const status_entry (&table)[N], int code, bool name,
                          const char *unknown) {
  for (const status_entry &s : table)
    if (s.code == code) return name ? s.name : s.text;
  return unknown;
}
} /* namespace */

extern "C" {

const char *cublasGetStatusName(cublasStatus_t status) {
  return status_lookup(kBlasStatus, status, true, "CUBLAS_STATUS_UNKNOWN");
}

const char *cublasGetStatusString(cublasStatus_t status) {
  return status_lookup(kBlasStatus, status, false, "unknown error");
}

/* ---- cuSPARSE -------------------------------------------------------------------------------- */

cusparseStatus_t cusparseCreate(cusparseHandle_t *handle) {
  open_device();
  if (!handle) return CUSPARSE_STATUS_INVALID_VALUE;
  cusparseHandle_t h = new cusparseContext{nullptr};
  remember(&registry::sparse, h);
  *handle = h;
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseDestroy(cusparseHandle_t handle) {
  return destroy_handle(&registry::sparse, handle, "cusparseDestroy", "cuSPARSE handle")
             ? CUSPARSE_STATUS_SUCCESS
             : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t cusparseSetStream(cusparseHandle_t handle, cudaStream_t streamId) {
  if (!handle || !live(&registry::sparse, handle)) return CUSPARSE_STATUS_NOT_INITIALIZED;
  if (!stream_ok_for(streamId, "cusparseSetStream")) return CUSPARSE_STATUS_INVALID_VALUE;
  handle->stream = streamId;
  return CUSPARSE_STATUS_SUCCESS;
}

const char *cusparseGetErrorName(cusparseStatus_t status) {
  return status_lookup(kSparseStatus, status, true, "CUSPARSE_STATUS_UNKNOWN");
}

const char *cusparseGetErrorString(cusparseStatus_t status) {
  return status_lookup(kSparseStatus, status, false, "unknown error");
}

} /* extern "C" */

namespace {

size_t csr2csc_buffer_bytes(int n) { return 256 + 4 * ((size_t)n + 1); }

/* The checks _bufferSize and Ex2 share; SUCCESS when the call may go on. */
cusparseStatus_t csr2csc_args(const char *call, cusparseHandle_t handle, int m, int n, int nnz,
                              cudaDataType valType, cusparseAction_t action,
                              cusparseIndexBase_t base, cusparseCsr2CscAlg_t alg) {
  if (!handle || !live(&registry::sparse, handle)) return CUSPARSE_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || nnz < 0 ||
      (action != CUSPARSE_ACTION_NUMERIC && action != CUSPARSE_ACTION_SYMBOLIC) ||
      (base != CUSPARSE_INDEX_BASE_ZERO && base != CUSPARSE_INDEX_BASE_ONE) ||
      alg != CUSPARSE_CSR2CSC_ALG1) {
    fprintf(stderr, "cuda_emu: %s: bad arguments (m %d n %d nnz %d, action %d, base %d, alg %d)\n",
            call, m, n, nnz, (int)action, (int)base, (int)alg);
    return CUSPARSE_STATUS_INVALID_VALUE;
  }
  if (valType != CUDA_R_32F) {
    fprintf(stderr, "cuda_emu: %s: value type %d is not emulated (CUDA_R_32F only)\n", call,
            (int)valType);
    return CUSPARSE_STATUS_NOT_SUPPORTED;
  }
  return CUSPARSE_STATUS_SUCCESS;
}

} /* namespace */

extern "C" {

cusparseStatus_t cusparseCsr2cscEx2_bufferSize(cusparseHandle_t handle, int m, int n, int nnz,
                                               const void *csrVal, const int *csrRowPtr,
                                               const int *csrColInd, void *cscVal, int *cscColPtr,
                                               int *cscRowInd, cudaDataType valType,
                                               cusparseAction_t copyValues,
                                               cusparseIndexBase_t idxBase,
                                               cusparseCsr2CscAlg_t alg, size_t *bufferSize) {
  (void)csrVal, (void)csrRowPtr, (void)csrColInd, (void)cscVal, (void)cscColPtr, (void)cscRowInd;
  cusparseStatus_t s = csr2csc_args("cusparseCsr2cscEx2_bufferSize", handle, m, n, nnz, valType,
                                    copyValues, idxBase, alg);
  if (s != CUSPARSE_STATUS_SUCCESS) return s;
  if (!bufferSize) return CUSPARSE_STATUS_INVALID_VALUE;
  *bufferSize = csr2csc_buffer_bytes(n);
  return CUSPARSE_STATUS_SUCCESS;
}

cusparseStatus_t cusparseCsr2cscEx2(cusparseHandle_t handle, int m, int n, int nnz,
                                    const void *csrVal, const int *csrRowPtr, const int *csrColInd,
                                    void *cscVal, int *cscColPtr, int *cscRowInd,
                                    cudaDataType valType, cusparseAction_t copyValues,
                                    cusparseIndexBase_t idxBase, cusparseCsr2CscAlg_t alg,
                                    void *buffer) {
  const char *call = "cusparseCsr2cscEx2";
  cusparseStatus_t s = csr2csc_args(call, handle, m, n, nnz, valType, copyValues, idxBase, alg);
  if (s != CUSPARSE_STATUS_SUCCESS) return s;
  const bool numeric = copyValues == CUSPARSE_ACTION_NUMERIC;
  if (!buffer || !csrRowPtr || !cscColPtr ||
      (nnz > 0 && (!csrColInd || !cscRowInd || (numeric && (!csrVal || !cscVal))))) {
    fprintf(stderr, "cuda_emu: %s: a NULL array or buffer (m %d n %d nnz %d)\n", call, m, n, nnz);
    return CUSPARSE_STATUS_INVALID_VALUE;
  }
  cuda_emu_require_device_range(buffer, csr2csc_buffer_bytes(n), "cusparseCsr2cscEx2 buffer");
  cuda_emu_require_device_range(csrRowPtr, 4 * ((size_t)m + 1), "cusparseCsr2cscEx2 csrRowPtr");
  cuda_emu_require_device_range(cscColPtr, 4 * ((size_t)n + 1), "cusparseCsr2cscEx2 cscColPtr");
  if (nnz > 0) {
    cuda_emu_require_device_range(csrColInd, 4 * (size_t)nnz, "cusparseCsr2cscEx2 csrColInd");
    cuda_emu_require_device_range(cscRowInd, 4 * (size_t)nnz, "cusparseCsr2cscEx2 cscRowInd");
    if (numeric) {
      cuda_emu_require_device_range(csrVal, 4 * (size_t)nnz, "cusparseCsr2cscEx2 csrVal");
      cuda_emu_require_device_range(cscVal, 4 * (size_t)nnz, "cusparseCsr2cscEx2 cscVal");
    }
  }
  const int b = idxBase == CUSPARSE_INDEX_BASE_ONE ? 1 : 0;
  if (csrRowPtr[0] != b || csrRowPtr[m] != nnz + b) {
    fprintf(stderr, "cuda_emu: %s: csrRowPtr runs %d..%d, not %d..%d (m %d, nnz %d, base %d)\n",
            call, csrRowPtr[0], csrRowPtr[m], b, nnz + b, m, nnz, b);
    return CUSPARSE_STATUS_INVALID_VALUE;
  }
  for (int i = 0; i < m; i++)
    if (csrRowPtr[i + 1] < csrRowPtr[i]) {
      fprintf(stderr, "cuda_emu: %s: csrRowPtr decreases at row %d (%d then %d)\n", call, i,
              csrRowPtr[i], csrRowPtr[i + 1]);
      return CUSPARSE_STATUS_INVALID_VALUE;
    }
  for (int q = 0; q < nnz; q++)
    if (csrColInd[q] < b || csrColInd[q] >= n + b) {
      fprintf(stderr, "cuda_emu: %s: csrColInd[%d] = %d is outside [%d, %d)\n", call, q,
              csrColInd[q], b, n + b);
      return CUSPARSE_STATUS_INVALID_VALUE;
    }
  /* counting sort by column; rows visited ascending, so each column's rows stay ascending */
  std::vector<int> next((size_t)n + 1, 0);
  for (int q = 0; q < nnz; q++) next[(size_t)(csrColInd[q] - b) + 1]++;
  for (int j = 0; j < n; j++) next[(size_t)j + 1] += next[j];
  for (int j = 0; j <= n; j++) cscColPtr[j] = next[j] + b;
  const float *in = static_cast<const float *>(csrVal);
  float *out = static_cast<float *>(cscVal);
  for (int i = 0; i < m; i++)
    for (int q = csrRowPtr[i] - b; q < csrRowPtr[i + 1] - b; q++) {
      const int at = next[csrColInd[q] - b]++;
      cscRowInd[at] = i + b;
      if (numeric) out[at] = in[q];
    }
  return CUSPARSE_STATUS_SUCCESS;
}

} /* extern "C" */
