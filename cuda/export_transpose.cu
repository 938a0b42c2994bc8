/* export_transpose: the CIFF export's CSR -> CSC transpose on the GPU, one session per export
 * (see export_transpose.h). Everything is allocated when the session opens (or grows, which the
 * export avoids by reserving the largest block of its counting pass), so a block costs three
 * host-to-device copies, one cusparseCsr2cscEx2 and three device-to-host copies on one stream,
 * plus the host loops that fill the pinned staging buffers (int64 indptr -> int32, the columns
 * range-checked so that a bad id can never make cuSPARSE write out of bounds). */
#include "export_transpose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cusparse.h>

extern "C" {
#include "err.h"
}
#include "cu_check.h"

/* R rows, C columns, E entries (see the header). */

struct export_transpose {
  int device;
  int32_t n_cols;
  int64_t cap_rows, cap_nnz; /* what the buffers below hold */
  cudaStream_t stream;
  cusparseHandle_t handle;
  char *device_arena; /* one cudaMalloc: the six arrays below */
  char *host_arena;   /* one cudaMallocHost (pinned): the same six arrays */
  void *work;         /* cuSPARSE's work buffer */
  size_t work_bytes;
  /* device */
  int32_t *d_indptr;  /* (cap_rows + 1) */
  int32_t *d_cols;    /* (cap_nnz) */
  int32_t *d_values;  /* (cap_nnz) tfs, seen by cuSPARSE as floats */
  int32_t *d_colptr;  /* (C + 1) */
  int32_t *d_rowind;  /* (cap_nnz) */
  int32_t *d_cvalues; /* (cap_nnz) */
  /* pinned host staging, same shapes */
  int32_t *h_indptr, *h_cols, *h_values, *h_colptr, *h_rowind, *h_cvalues;
};

/* Each array starts on a 256-byte boundary (cudaMalloc's own alignment). */
static size_t export_transpose_round(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* Points the six arrays into arena (device or host) and returns the arena's size; with arena
 * NULL only the size. */
static size_t export_transpose_layout(char *arena, int64_t rows, int64_t nnz, int32_t n_cols,
                                      int32_t **indptr, int32_t **cols, int32_t **values,
                                      int32_t **colptr, int32_t **rowind, int32_t **cvalues) {
  size_t sizes[6] = {((size_t)rows + 1) * 4, (size_t)nnz * 4, (size_t)nnz * 4,
                     ((size_t)n_cols + 1) * 4, (size_t)nnz * 4, (size_t)nnz * 4};
  int32_t **slots[6] = {indptr, cols, values, colptr, rowind, cvalues};
  size_t at = 0;
  for (int i = 0; i < 6; i++) {
    if (arena) *slots[i] = (int32_t *)(arena + at);
    at += export_transpose_round(sizes[i]);
  }
  return at;
}

static int export_transpose_check_sizes(int64_t rows, int64_t nnz) {
  if (rows < 0 || nnz < 0 || rows >= INT32_MAX || nnz >= INT32_MAX)
    return err_set(ERR_ARG,
                   "export transpose: a block of %lld rows and %lld entries is past cuSPARSE's "
                   "int32 sizes",
                   (long long)rows, (long long)nnz);
  return 0;
}

/* Frees the buffers (not the handle or the stream). */
static void export_transpose_free_buffers(export_transpose *t) {
  if (t->device_arena) cudaFree(t->device_arena);
  if (t->host_arena) cudaFreeHost(t->host_arena);
  if (t->work) cudaFree(t->work);
  t->device_arena = t->host_arena = NULL;
  t->d_indptr = t->d_cols = t->d_values = t->d_colptr = t->d_rowind = t->d_cvalues = NULL;
  t->h_indptr = t->h_cols = t->h_values = t->h_colptr = t->h_rowind = t->h_cvalues = NULL;
  t->work = NULL;
  t->work_bytes = 0;
  t->cap_rows = t->cap_nnz = 0;
}

/* Makes the work buffer at least the size cuSPARSE asks for (rows, nnz) on the current arrays. */
static int export_transpose_reserve_work(export_transpose *t, int rows, int nnz) {
  size_t bytes = 0;
  int rc = CU_CHECK_SPARSE(cusparseCsr2cscEx2_bufferSize(
      t->handle, rows, t->n_cols, nnz, t->d_values, t->d_indptr, t->d_cols, t->d_cvalues,
      t->d_colptr, t->d_rowind, CUDA_R_32F, CUSPARSE_ACTION_NUMERIC, CUSPARSE_INDEX_BASE_ZERO,
      CUSPARSE_CSR2CSC_ALG1, &bytes));
  /* t->work may be NULL with work_bytes 0 (never allocated, or freed): allocate even for a
   * size of 0, so that cuSPARSE is never handed a NULL buffer. */
  if (rc < 0 || (t->work && bytes <= t->work_bytes)) return rc;
  if (t->work) {
    /* cudaFree waits for the device, so no earlier transpose still uses the old buffer. */
    if ((rc = CU_CHECK(cudaFree(t->work))) < 0) return rc;
    t->work = NULL;
    t->work_bytes = 0;
  }
  if ((rc = CU_CHECK(cudaMalloc(&t->work, bytes ? bytes : 1))) < 0) {
    err_wrap(rc, "export transpose: cuSPARSE work buffer of %zu bytes", bytes);
    t->work = NULL;
    return rc;
  }
  t->work_bytes = bytes;
  return 0;
}

extern "C" int export_transpose_reserve(export_transpose *t, int64_t max_rows, int64_t max_nnz) {
  int rc = export_transpose_check_sizes(max_rows, max_nnz);
  if (rc < 0) return rc;
  if (max_nnz < t->n_cols) max_nnz = t->n_cols; /* any one row fits */
  if (max_rows < 1) max_rows = 1;                 /* cuSPARSE sizes its buffer for m >= 1 */
  if (t->device_arena && max_rows <= t->cap_rows && max_nnz <= t->cap_nnz) return 0;
  if (max_rows < t->cap_rows) max_rows = t->cap_rows;
  if (max_nnz < t->cap_nnz) max_nnz = t->cap_nnz;
  if ((rc = CU_CHECK(cudaSetDevice(t->device))) < 0) return rc;
  if ((rc = CU_CHECK(cudaStreamSynchronize(t->stream))) < 0) return rc;
  export_transpose_free_buffers(t);
  size_t bytes = export_transpose_layout(NULL, max_rows, max_nnz, t->n_cols, NULL, NULL, NULL,
                                         NULL, NULL, NULL);
  void *arena = NULL;
  if ((rc = CU_CHECK(cudaMalloc(&arena, bytes))) < 0) {
    err_wrap(rc, "export transpose: %zu bytes of device memory for %lld rows, %lld entries", bytes,
             (long long)max_rows, (long long)max_nnz);
    return rc;
  }
  t->device_arena = (char *)arena;
  arena = NULL;
  if ((rc = CU_CHECK(cudaMallocHost(&arena, bytes))) < 0) {
    err_wrap(rc, "export transpose: %zu bytes of pinned host memory", bytes);
    export_transpose_free_buffers(t);
    return rc;
  }
  t->host_arena = (char *)arena;
  export_transpose_layout(t->device_arena, max_rows, max_nnz, t->n_cols, &t->d_indptr, &t->d_cols,
                          &t->d_values, &t->d_colptr, &t->d_rowind, &t->d_cvalues);
  export_transpose_layout(t->host_arena, max_rows, max_nnz, t->n_cols, &t->h_indptr, &t->h_cols,
                          &t->h_values, &t->h_colptr, &t->h_rowind, &t->h_cvalues);
  t->cap_rows = max_rows;
  t->cap_nnz = max_nnz;
  if ((rc = export_transpose_reserve_work(t, (int)max_rows, (int)max_nnz)) < 0) {
    export_transpose_free_buffers(t);
    return rc;
  }
  return 0;
}

extern "C" void export_transpose_close(export_transpose *t) {
  if (!t) return;
  /* Best effort: a session that failed half-way still frees what it holds. */
  cudaSetDevice(t->device);
  if (t->stream) cudaStreamSynchronize(t->stream);
  export_transpose_free_buffers(t);
  if (t->handle) cusparseDestroy(t->handle);
  if (t->stream) cudaStreamDestroy(t->stream);
  free(t);
}

extern "C" int export_transpose_open(int device, int32_t n_cols, int64_t max_rows,
                                     int64_t max_nnz, char *name, size_t name_cap,
                                     export_transpose **out) {
  *out = NULL;
  if (name && name_cap) name[0] = '\0';
  if (device < 0 || n_cols < 1 || n_cols == INT32_MAX)
    return err_set(ERR_ARG, "export transpose: device %d, %d columns", device, (int)n_cols);
  int rc = export_transpose_check_sizes(max_rows, max_nnz);
  if (rc < 0) return rc;
  int count = 0;
  if ((rc = CU_CHECK(cudaGetDeviceCount(&count))) < 0) return rc;
  if (device >= count)
    return err_set(ERR_DEVICE, "CUDA device %d does not exist (this machine has %d)", device,
                   count);
  export_transpose *t = (export_transpose *)calloc(1, sizeof *t);
  if (!t) return err_set(ERR_NOMEM, "out of memory");
  t->device = device;
  t->n_cols = n_cols;
  cudaDeviceProp prop;
  if ((rc = CU_CHECK(cudaSetDevice(device))) < 0) goto fail;
  if ((rc = CU_CHECK(cudaGetDeviceProperties(&prop, device))) < 0) goto fail;
  if (name && name_cap) snprintf(name, name_cap, "cuda:%d (%s)", device, prop.name);
  if ((rc = CU_CHECK(cudaStreamCreateWithFlags(&t->stream, cudaStreamNonBlocking))) < 0) goto fail;
  if ((rc = CU_CHECK_SPARSE(cusparseCreate(&t->handle))) < 0) goto fail;
  if ((rc = CU_CHECK_SPARSE(cusparseSetStream(t->handle, t->stream))) < 0) goto fail;
  if ((rc = export_transpose_reserve(t, max_rows, max_nnz)) < 0) goto fail;
  *out = t;
  return 0;
fail:
  export_transpose_close(t);
  return rc;
}

extern "C" int export_transpose_run(export_transpose *t, const int64_t *indptr,
                                    const int32_t *cols, const int32_t *values, int64_t n_rows,
                                    const int32_t **colptr, const int32_t **rowind,
                                    const int32_t **cvalues) {
  *colptr = *rowind = *cvalues = NULL;
  if (n_rows < 0) return err_set(ERR_ARG, "export transpose: %lld rows", (long long)n_rows);
  const int64_t base = indptr[0], nnz = indptr[n_rows] - base;
  int rc = export_transpose_check_sizes(n_rows, nnz);
  if (rc < 0) return rc;
  /* !device_arena: an earlier reserve failed and freed the buffers (cap 0 would let an empty
   * block through to the freed staging arrays). */
  if (!t->device_arena || n_rows > t->cap_rows || nnz > t->cap_nnz) {
    if ((rc = export_transpose_reserve(t, n_rows, nnz)) < 0) return rc;
  }
  if ((rc = CU_CHECK(cudaSetDevice(t->device))) < 0) return rc;

  /* Stage the block in pinned memory, checking what cuSPARSE trusts. */
  const int32_t C = t->n_cols;
  t->h_indptr[0] = 0;
  for (int64_t i = 0; i < n_rows; i++) {
    int64_t next = indptr[i + 1] - base;
    if (next < t->h_indptr[i] || next > nnz)
      return err_set(ERR_ARG, "export transpose: row %lld: indptr %lld does not ascend",
                     (long long)i, (long long)indptr[i + 1]);
    t->h_indptr[i + 1] = (int32_t)next;
  }
  const int32_t *block_cols = cols + base;
  for (int64_t j = 0; j < nnz; j++) {
    int32_t c = block_cols[j];
    if (c < 0 || c >= C)
      return err_set(ERR_ARG, "export transpose: entry %lld: column %d is outside [0, %d)",
                     (long long)j, c, C);
    t->h_cols[j] = c;
  }
  memcpy(t->h_values, values + base, (size_t)nnz * sizeof *values);

  if (nnz == 0) {
    /* Nothing to move (and cuSPARSE is not asked about empty matrices): every column is empty. */
    memset(t->h_colptr, 0, ((size_t)C + 1) * sizeof *t->h_colptr);
  } else {
    const int R = (int)n_rows, E = (int)nnz;
    if ((rc = export_transpose_reserve_work(t, R, E)) < 0) return rc;
    const struct { void *to; const void *from; size_t bytes; } in[3] = {
        {t->d_indptr, t->h_indptr, ((size_t)R + 1) * 4},
        {t->d_cols, t->h_cols, (size_t)E * 4},
        {t->d_values, t->h_values, (size_t)E * 4}};
    for (int i = 0; i < 3; i++)
      if ((rc = CU_CHECK(cudaMemcpyAsync(in[i].to, in[i].from, in[i].bytes,
                                         cudaMemcpyHostToDevice, t->stream))) < 0)
        return rc;
    /* CUDA_R_32F: 4-byte values that ALG1 only moves, so the int32 tfs survive bit for bit. */
    rc = CU_CHECK_SPARSE(cusparseCsr2cscEx2(
        t->handle, R, C, E, t->d_values, t->d_indptr, t->d_cols, t->d_cvalues, t->d_colptr,
        t->d_rowind, CUDA_R_32F, CUSPARSE_ACTION_NUMERIC, CUSPARSE_INDEX_BASE_ZERO,
        CUSPARSE_CSR2CSC_ALG1, t->work));
    if (rc < 0) return rc;
    const struct { void *to; const void *from; size_t bytes; } back[3] = {
        {t->h_colptr, t->d_colptr, ((size_t)C + 1) * 4},
        {t->h_rowind, t->d_rowind, (size_t)E * 4},
        {t->h_cvalues, t->d_cvalues, (size_t)E * 4}};
    for (int i = 0; i < 3; i++)
      if ((rc = CU_CHECK(cudaMemcpyAsync(back[i].to, back[i].from, back[i].bytes,
                                         cudaMemcpyDeviceToHost, t->stream))) < 0)
        return rc;
    if ((rc = CU_CHECK(cudaStreamSynchronize(t->stream))) < 0) return rc;
    if (t->h_colptr[0] != 0 || t->h_colptr[C] != E)
      return err_set(ERR_DEVICE,
                     "cusparseCsr2cscEx2 returned colptr[0] = %d, colptr[%d] = %d for %d entries",
                     t->h_colptr[0], C, t->h_colptr[C], E);
  }
  *colptr = t->h_colptr;
  *rowind = t->h_rowind;
  *cvalues = t->h_cvalues;
  return 0;
}
