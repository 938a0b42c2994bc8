/* cuda_module_fake: a stand-in for libspladex_cuda.so built from C alone (no nvcc, no CUDA), for
 * tests/test_cuda_lazy.c: it exports the entry point of cuda/cuda_api.h with a table of another
 * ABI version, which host/cuda_module.c must refuse with a message naming the file and both
 * versions. The table's functions are all NULL: a loader that accepted it would crash, not pass. */
#include "cuda_api.h"

/* Far from any real version, so the message names two distinct numbers. */
#define CUDA_MODULE_FAKE_VERSION (SPLADEX_CUDA_API_VERSION + 1000)

static const spladex_cuda_api fake = {
    .abi_version = CUDA_MODULE_FAKE_VERSION,
    .size = sizeof(spladex_cuda_api),
};

const spladex_cuda_api *spladex_cuda_api_get(void) { return &fake; }
