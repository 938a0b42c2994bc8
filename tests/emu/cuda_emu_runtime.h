/* cuda_emu_runtime.h: the host side of the EMULATED CUDA device of tests/emu (nothing here ever
 * runs on a GPU, and nothing here says anything about one beyond the algorithms). It defines, with
 * the exact signatures and C linkage of the real toolkit headers, the CUDA runtime, cuBLAS and
 * cuSPARSE functions that spladex's CUDA backend (the .cu files of cuda/, compiled by g++ with
 * tests/emu/cuda_emu.h) and its GPU tests call, so that the backend runs end to end on the CPU:
 *
 *   runtime  cudaMalloc cudaFree cudaMallocAsync cudaFreeAsync cudaHostAlloc cudaMallocHost
 *            cudaFreeHost cudaMemcpy cudaMemcpyAsync cudaMemset cudaMemsetAsync cudaGetDeviceCount
 *            cudaSetDevice cudaGetDevice cudaGetDeviceProperties cudaDeviceGetAttribute
 *            cudaDeviceSynchronize cudaFuncSetAttribute cudaGetLastError cudaPeekAtLastError
 *            cudaGetErrorName cudaGetErrorString cudaStreamCreate cudaStreamCreateWithFlags
 *            cudaStreamDestroy cudaStreamSynchronize cudaEventCreate cudaEventCreateWithFlags
 *            cudaEventDestroy cudaEventRecord cudaEventSynchronize cudaEventElapsedTime
 *   cuBLAS   cublasCreate_v2 cublasDestroy_v2 cublasSetStream_v2 cublasGetStream_v2
 *            cublasSetWorkspace_v2 cublasSetMathMode cublasGemmEx cublasGetStatusName
 *            cublasGetStatusString
 *   cuSPARSE cusparseCreate cusparseDestroy cusparseSetStream cusparseGetErrorName
 *            cusparseGetErrorString cusparseCsr2cscEx2_bufferSize cusparseCsr2cscEx2
 *
 * The model is strict on purpose: it is there to catch host-side bugs of code that has not run on
 * a GPU. What is emulated:
 *  - one device (ordinal 0; any other -> cudaErrorInvalidDevice), properties of an H100-like part
 *    whose name says "CUDA EMULATED on the CPU (spladex tests/emu): not a GPU" (sm_90, 132 SMs,
 *    8 GiB, 48 KiB shared per block or 232448 bytes opted in; SPLADEX_CUDA_EMU_CC=8.0 makes it
 *    report compute capability 8.0, for the tests of what the backend refuses there). The first call that opens the
 *    device (cudaGetDeviceCount, cudaSetDevice, cudaGetDeviceProperties, an allocation or a
 *    stream, event, cuBLAS or cuSPARSE handle's creation) prints one line to stderr saying the
 *    device is emulated; nothing else is printed unless a check fails.
 *  - everything executes synchronously, in call order, on the calling host thread: an async call
 *    has done its work when it returns. Streams and events are heap handles; using or destroying
 *    one that is not live -> cudaErrorInvalidResourceHandle (NULL, cudaStreamLegacy and
 *    cudaStreamPerThread are the default streams); a destroyed handle's address is never reused,
 *    so a use after destroy is always caught. cudaEventElapsedTime is the wall time between
 *    the two records (std::chrono::steady_clock), unless an event was never recorded or was made
 *    with cudaEventDisableTiming (-> cudaErrorInvalidResourceHandle, as the runtime says).
 *  - device memory is host memory (256-byte aligned, filled with 0xff bytes, NaN as floats and -1
 *    as integers, so a read of what was never written shows), recorded in a registry; the total
 *    live size is capped at totalGlobalMem (-> cudaErrorMemoryAllocation). Pinned host memory
 *    (cudaHostAlloc / cudaMallocHost, also 0xff-filled) has its own registry. Freeing anything that
 *    is not the start of a live allocation of the right kind -> cudaErrorInvalidValue (NULL is
 *    fine); cudaMalloc of 0 bytes gives NULL.
 *  - cudaMemcpy* / cudaMemset* check the direction against the registries: a device side must be
 *    one live device allocation covering the whole range, a host side must not be device memory
 *    and, when it points into pinned memory, must stay inside that allocation. A violation returns
 *    cudaErrorInvalidValue and prints one line to stderr naming the call, the pointer and the size
 *    (a GPU would fault or corrupt memory). A count of 0 is always fine.
 *  - every failing runtime call also sets the last error (per host thread, as the runtime does):
 *    cudaGetLastError returns and clears it, cudaPeekAtLastError returns it.
 *  - cublasGemmEx, column-major as cuBLAS defines it, with CUBLAS_COMPUTE_32F, A and B both
 *    CUDA_R_32F, CUDA_R_16F or CUDA_R_16BF and C CUDA_R_32F or that 16-bit type; argument checks
 *    as cuBLAS (NULL handle -> NOT_INITIALIZED, negative sizes or a short ld -> INVALID_VALUE,
 *    other types or compute types -> NOT_SUPPORTED with a stderr line), then every operand's
 *    accessed extent must be device memory (else abort, naming A, B or C, m n k and the lds).
 *    Arithmetic: operands widened to float, the k products (each rounded to float, no FMA) summed
 *    in float in the order p = 0..k-1 from 0, times alpha, plus beta * C only when beta != 0 (C is
 *    not read when beta == 0), rounded once to C's type. alpha and beta are host floats (pointer
 *    mode host; a device pointer there aborts). Deterministic, but NOT cuBLAS's rounding: cuBLAS
 *    sums in another order (tiles, split-k, tensor-core blocks), so compare with a tolerance. A
 *    large GEMM splits its rows of C over a second host thread, joined before the call returns
 *    (same result: each element's sum is one thread's).
 *  - cusparseCsr2cscEx2 (CUDA_R_32F, NUMERIC or SYMBOLIC, base zero or one, ALG1 = DEFAULT): a
 *    stable counting sort, rows ascending within each column; the input must be a valid CSR
 *    (rowptr starts at base, non-decreasing, ends at nnz + base, columns in range), else
 *    CUSPARSE_STATUS_INVALID_VALUE and a stderr line; every array and the work buffer (of the size
 *    _bufferSize gave) must be device memory (else abort).
 *  - cudaFuncSetAttribute: the dynamic shared memory limit per function pointer (read back with
 *    cuda_emu_dynamic_smem_limit) and the carve-out hint (checked, otherwise ignored).
 * What is NOT emulated: concurrency between streams or with the host (a missing synchronization
 * does not show), timing, device memory as a separate address space (a host pointer dereferenced
 * by a kernel works here), unified or mapped memory, more than one device, any cuBLAS / cuSPARSE
 * function or type not listed above (refused, never approximated), cuBLAS math modes (stored,
 * no effect: no TF32), pointer mode device, cuBLAS's workspace use. The registries are behind a
 * mutex (the encoder's reader and writer threads may call at once); a handle (stream, event,
 * cuBLAS, cuSPARSE) must be used by one host thread at a time. C++20 (g++). */
#ifndef SPLADEX_CUDA_EMU_RUNTIME_H
#define SPLADEX_CUDA_EMU_RUNTIME_H

#include <cstddef>

#include <cuda_runtime_api.h>

/* True when [p, p + bytes) lies inside ONE live device allocation (bytes == 0: when p lies in
 * [begin, end] of one). Thread-safe. */
bool cuda_emu_device_range(const void *p, size_t bytes);

/* Aborts (after one stderr line naming `what`, the pointer, the size and what the pointer is:
 * host, pinned host, or which device allocation it overruns) unless cuda_emu_device_range(p, bytes).
 * For the checks where a GPU would fault: a kernel or library reading host memory or past an
 * allocation. `what` is borrowed for the call only. */
void cuda_emu_require_device_range(const void *p, size_t bytes, const char *what);

/* Sets the calling host thread's last error to e (cudaSuccess is ignored), as a bad kernel launch
 * does: the kernel launcher calls it, on the launching thread; cudaGetLastError returns and clears
 * it, cudaPeekAtLastError returns it. */
void cuda_emu_record_error(cudaError_t e);

/* The dynamic shared memory a launch of `func` (a kernel's function pointer) may ask for: 48 KiB
 * (49152 bytes), or what cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize, v)
 * last set for that pointer (v in 0..232448, the device's opt-in maximum; larger values are
 * refused there with cudaErrorInvalidValue). Thread-safe. */
size_t cuda_emu_dynamic_smem_limit(const void *func);

#endif
