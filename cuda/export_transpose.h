/* export_transpose: the CSR -> CSC transpose of `spladex export ciff --device cuda`, as a session
 * on host pointers (cusparseCsr2cscEx2, CUSPARSE_CSR2CSC_ALG1: within each column the row ids
 * come out ascending, which is what io/invert.h's inv_block_add_csc() needs).
 *
 * One session per export: open() picks the device and allocates, once, the device buffers, the
 * pinned host staging buffers, one cuSPARSE handle, one stream and the cuSPARSE work buffer, sized
 * for the largest block of rows it is told about; run() then copies one block of rows to the
 * device, transposes it and copies the result back into the session's pinned buffers. The tfs
 * travel as 4-byte values that cuSPARSE moves (CUDA_R_32F) but never combines, so int32 tfs come
 * back bit for bit.
 *
 * This header is plain C with no CUDA types: it gives the function types below, which the table
 * of cuda_api.h holds; host/cmd_export.c calls the functions through that table (loaded by
 * host/cuda_module.h), so the CLI never links CUDA. The functions themselves are declared only for
 * the CUDA side (__CUDACC__, or g++ under the emulation of tests/emu/cuda_emu.h).
 *
 * The CPU twin of the transpose is cutwin_csr_to_csc (cuda_twins.h); the device-level launcher
 * beside it is csr_to_csc_cuda (csr_to_csc.h).
 *
 * Shapes: R rows (documents) in a block, C columns (term ranks, the vocabulary size), E entries.
 */
#ifndef SPLADEX_CUDA_EXPORT_TRANSPOSE_H
#define SPLADEX_CUDA_EXPORT_TRANSPOSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct export_transpose export_transpose;

/* Opens a session on CUDA device `device` for matrices of n_cols columns (1 <= n_cols <
 * INT32_MAX) and blocks of at most max_rows rows and max_nnz entries (each >= 0 and < INT32_MAX;
 * the entries are rounded up to at least n_cols so that any one row fits). Writes the device's
 * name ("cuda:0 (NVIDIA H100 80GB HBM3)") to name (name_cap bytes, NUL-terminated) when name is
 * not NULL. Returns 0 and *out, or ERR_ARG (sizes) / ERR_DEVICE (no such device, no driver, out
 * of device or pinned memory: the message names the CUDA call). Close with
 * export_transpose_close(). */
typedef int export_transpose_open_fn(int device, int32_t n_cols, int64_t max_rows, int64_t max_nnz,
                                     char *name, size_t name_cap, export_transpose **out);

/* Makes room for blocks of max_rows rows and max_nnz entries: reallocates the buffers once when
 * they are smaller, keeps them otherwise. Results of an earlier run() are invalid afterwards.
 * Returns 0, ERR_ARG or ERR_DEVICE. */
typedef int export_transpose_reserve_fn(export_transpose *t, int64_t max_rows, int64_t max_nnz);

/* Transposes one block: row i has the columns cols[indptr[i] .. indptr[i+1]) (each in
 * [0, n_cols)) with the values values[...] (int32 tfs, moved bit for bit), as inv_rows holds
 * them. A block larger than the session's buffers first grows them (as
 * export_transpose_reserve); a caller that reserved the largest block never reallocates.
 * On success *colptr (n_cols + 1, colptr[0] == 0), *rowind and *cvalues (colptr[n_cols] == nnz
 * each) point into the session's pinned buffers: borrowed, valid until the next run / reserve /
 * close. Column c holds the rows rowind[colptr[c] .. colptr[c+1]) ascending and their values.
 * Returns 0, ERR_ARG (a column out of range, an indptr that does not ascend, sizes past int32)
 * or ERR_DEVICE naming the CUDA / cuSPARSE call. */
typedef int export_transpose_run_fn(export_transpose *t,
                                    const int64_t *indptr, /* (n_rows + 1) */
                                    const int32_t *cols,   /* (E) */
                                    const int32_t *values, /* (E) */
                                    int64_t n_rows,
                                    const int32_t **colptr,   /* (C + 1) */
                                    const int32_t **rowind,   /* (E) */
                                    const int32_t **cvalues); /* (E) */

/* Synchronizes and frees everything. export_transpose_close(NULL) is a no-op. */
typedef void export_transpose_close_fn(export_transpose *t);

#if defined(__CUDACC__) || defined(SPLADEX_CUDA_EMU)
/* Defined in export_transpose.cu; C callers reach them through cuda_api.h instead (see above). */
export_transpose_open_fn export_transpose_open;
export_transpose_reserve_fn export_transpose_reserve;
export_transpose_run_fn export_transpose_run;
export_transpose_close_fn export_transpose_close;
#endif

#ifdef __cplusplus
}
#endif

#endif
