/* export_csr: a streaming writer of the sparse CSR binary of the BigANN'23 (NeurIPS'23) sparse
 * track, the format its SPLADE MS MARCO vectors (base_full.csr, queries.dev.csr) ship in and that
 * big-ann-benchmarks' benchmark/dataset_io.py reads with read_sparse_matrix /
 * mmap_sparse_matrix_fields and writes with write_sparse_matrix (DESIGN.md section 7):
 *
 *   int64   n_rows, n_cols, nnz
 *   int64   indptr[n_rows + 1]      indptr[0] = 0, indptr[n_rows] = nnz
 *   int32   indices[nnz]            column (vocab id) of each entry, in [0, n_cols)
 *   float32 data[nnz]               its weight
 *
 * all little-endian, no padding, no magic. Rows are written one at a time; because indptr and
 * indices precede data and the totals come first, the writer spools indptr, indices and data to
 * three side files (PATH.indptr, PATH.indices, PATH.data) and assembles PATH at close, so memory
 * stays one buffer whatever the corpus. Output is plain, or gzip (level 1) when asked
 * (base_full.csr.gz is how the track distributes it).
 */
#ifndef SPLADEX_EXPORT_CSR_H
#define SPLADEX_EXPORT_CSR_H

#include <stdint.h>

typedef struct csr_writer csr_writer;

/* Creates path (gzip-compressed when gzip != 0) for a matrix of n_cols columns; the side files
 * are created beside it. Returns 0 and *out, or ERR_IO / ERR_NOMEM naming the file. Finish with
 * csr_writer_close(), or csr_writer_abort() on an error path. */
int csr_writer_open(const char *path, int gzip, int64_t n_cols, csr_writer **out);

/* Appends one row of n entries: columns indices[] (each in [0, n_cols)) and weights data[].
 * Returns 0, ERR_ARG for a column out of range (naming it and the row), or ERR_IO. */
int csr_write_row(csr_writer *w, const int32_t *indices, const float *data, int64_t n);

/* Rows and entries written so far. */
int64_t csr_writer_rows(const csr_writer *w);
int64_t csr_writer_nnz(const csr_writer *w);

/* Writes the header and the three arrays into the file, removes the side files, closes and frees
 * w. Returns 0 or ERR_IO naming the file; w is freed either way (on an error the caller removes
 * path). */
int csr_writer_close(csr_writer *w);

/* Closes, removes the side files (not path: the caller does) and frees w.
 * csr_writer_abort(NULL) is a no-op. */
void csr_writer_abort(csr_writer *w);

#endif
