/* cuda_api: the one entry point of libspladex_cuda.so, the CUDA backend module.
 *
 * The module exports one C function, spladex_cuda_api_get(), that returns a table of every
 * function the host calls in it (the encoder backend of encoder_cuda.h, the device probe, the
 * export transpose session of export_transpose.h) and the ABI version the table was built with.
 * host/cuda_module.h dlopen()s the module, looks up that single symbol and refuses a module whose
 * table has another version or size, so a libspladex_cuda.so left over from another build fails
 * with a message instead of crashing in a call whose signature changed.
 *
 * Changing the table (a member added, removed or reordered, or the signature of a function it
 * points to, or a struct those functions take: model, enc_options, enc_batch, enc_result) means
 * bumping SPLADEX_CUDA_API_VERSION.
 *
 * Plain C11 with no CUDA types: included by host/cuda_module.c, host/encoder.c, host/cmd_export.c
 * (which never link CUDA) and by cuda/cuda_api.cu, which fills the table.
 */
#ifndef SPLADEX_CUDA_API_H
#define SPLADEX_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#include "encoder_cuda.h"
#include "export_transpose.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the table below; a module and a loader of different versions do not mix. */
#define SPLADEX_CUDA_API_VERSION 2

/* The name of the entry point, for dlsym(). */
#define SPLADEX_CUDA_API_SYMBOL "spladex_cuda_api_get"

typedef struct spladex_cuda_api {
  uint32_t abi_version; /* SPLADEX_CUDA_API_VERSION of the module's build */
  uint32_t size;        /* sizeof(spladex_cuda_api) in the module's build */

  /* The encoder backend (encoder_cuda.h). */
  int (*enc_open)(const model *m, const enc_options *opt, enc_cuda **out);
  int (*enc_submit)(enc_cuda *e, const enc_batch *batch, const enc_rows *rows);
  int (*enc_collect)(enc_cuda *e, enc_result *out);
  const char *(*enc_describe)(const enc_cuda *e);
  void (*enc_close)(enc_cuda *e);

  /* 1 when at least one usable CUDA device exists, else 0 with the reason recorded by err_set
   * (cu_have_device of cu_check.h). */
  int (*have_device)(void);

  /* The CSR -> CSC transpose session of `export ciff --device cuda` (export_transpose.h). */
  export_transpose_open_fn *transpose_open;
  export_transpose_reserve_fn *transpose_reserve;
  export_transpose_run_fn *transpose_run;
  export_transpose_close_fn *transpose_close;
} spladex_cuda_api;

/* The module's table: static, never freed, the same pointer on every call. Exported by
 * libspladex_cuda.so under SPLADEX_CUDA_API_SYMBOL; the host reaches it only through
 * cuda_module_api() (host/cuda_module.h). */
typedef const spladex_cuda_api *spladex_cuda_api_get_fn(void);
spladex_cuda_api_get_fn spladex_cuda_api_get;

#ifdef __cplusplus
}
#endif

#endif
