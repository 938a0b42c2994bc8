/* cuda_module: libspladex_cuda.so, the CUDA half of spladex, loaded on demand.
 *
 * The CUDA backend (the encoder of cuda/encoder_cuda.h, the CSR -> CSC transpose of the CIFF
 * export, ...) is a separate shared library that links cudart, cuBLAS, cuBLASLt and cuSPARSE.
 * This module dlopen()s it the first time something asks for it, so that a CPU-only run never
 * pays for loading the CUDA libraries (~0.3 to 0.7 s and ~250 MB RSS). Where it is looked for,
 * first hit wins:
 *   1. the path in the environment variable SPLADEX_CUDA_LIB, when set and non-empty (only it);
 *   2. the directory of the running executable (/proc/self/exe);
 *   3. the directory of libspladex_core.so itself (dladdr);
 *   4. the bare file name, through the dynamic loader's search (LD_LIBRARY_PATH, ld.so.cache).
 * It is opened RTLD_NOW | RTLD_LOCAL and never closed (CUDA libraries do not support unloading);
 * a failed load is not cached, so a later call tries again. Thread-safe.
 *
 * Neither function records an error (err_set): callers that probe (`--device auto`) stay quiet,
 * callers that need the module turn `why` into their own message.
 */
#ifndef SPLADEX_CUDA_MODULE_H
#define SPLADEX_CUDA_MODULE_H

#include <stddef.h>

/* Room that a `why` buffer needs for the longest reason (four candidate paths and dlerror). */
#define CUDA_MODULE_WHY_MAX 8192

/* Loads the module once. Returns 0, or ERR_DEVICE with the reason written to why (why_cap
 * bytes, NUL-terminated): built without CUDA, or the file could not be loaded (which paths were
 * tried, and the loader's message). */
int cuda_module_load(char *why, size_t why_cap);

/* The function `name` of the module, loading it first if needed. Returns 0 and *fn (cast it to
 * the function's real type), or ERR_DEVICE with the reason in why. */
int cuda_module_function(const char *name, void (**fn)(void), char *why, size_t why_cap);

#endif
