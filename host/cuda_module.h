/* cuda_module: libspladex_cuda.so, the CUDA half of spladex, loaded on demand.
 *
 * The CUDA backend (the encoder of cuda/encoder_cuda.h, the CSR -> CSC transpose of the CIFF
 * export, ...) is a separate shared library that links cudart, cuBLAS, cuBLASLt and cuSPARSE.
 * This module dlopen()s it the first time something asks for it, so that a CPU-only run never
 * pays for loading the CUDA libraries (~0.3 to 0.7 s and ~250 MB RSS). Where it is looked for,
 * the first file that loads is the one used:
 *   1. the path in the environment variable SPLADEX_CUDA_LIB, when set and non-empty (only it);
 *   2. the directory of the running executable (/proc/self/exe);
 *   3. the directory of libspladex_core.so itself (dladdr);
 *   4. the bare file name, through the dynamic loader's search (LD_LIBRARY_PATH, ld.so.cache).
 * The host reaches the module through one symbol only, the entry point of cuda/cuda_api.h, which
 * returns the table of the module's functions and its ABI version; a module of another version
 * (or whose table has another size) is refused. It is opened RTLD_NOW | RTLD_LOCAL and never
 * closed (CUDA libraries do not support unloading); a failed or refused load is not cached, so a
 * later call tries again. Thread-safe.
 *
 * Neither function records an error (err_set): callers that probe (`--device auto`) stay quiet,
 * callers that need the module turn `why` into their own message.
 */
#ifndef SPLADEX_CUDA_MODULE_H
#define SPLADEX_CUDA_MODULE_H

#include <stddef.h>

#include "cuda_api.h"

/* Room that a `why` buffer needs for the longest reason (four candidate paths and dlerror). */
#define CUDA_MODULE_WHY_MAX 8192

/* The module's table, loading the module first if needed (the search above). Returns 0 and
 * *api (static, valid for the life of the process), or ERR_DEVICE with the reason written to why
 * (why_cap bytes, NUL-terminated): built without CUDA, the file could not be loaded (which paths
 * were tried, and the loader's message), it lacks the entry point, or it was built for another
 * ABI version (the path and both versions). */
int cuda_module_api(const spladex_cuda_api **api, char *why, size_t why_cap);

/* The step of cuda_module_api for one file, in any build (with or without CUDA): dlopen()s path,
 * looks up the entry point and checks the table's version and size. Returns 0 and *api, or
 * ERR_DEVICE with the reason in why. Caches nothing: cuda_module_api() does not use a module
 * opened here. For tests (a module of another version is refused) and diagnostics. */
int cuda_module_open(const char *path, const spladex_cuda_api **api, char *why, size_t why_cap);

#endif
