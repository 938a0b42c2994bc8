/* export_csr: the BigANN'23 sparse CSR binary (see export_csr.h). The three arrays are spooled
 * to side files in their final little-endian byte form and concatenated behind the header at
 * close through a gzsink, so plain and gzip output take one path. */
#include "export_csr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gzsink.h"

enum { CSR_SIDES = 3 }; /* indptr, indices, data */
static const char *const csr_side_suffix[CSR_SIDES] = {".indptr", ".indices", ".data"};

struct csr_writer {
  char *path;
  int gzip;
  int64_t n_cols, n_rows, nnz;
  char *side_path[CSR_SIDES];
  FILE *side[CSR_SIDES];
  unsigned char buffer[8 * 1024];
};

static void csr_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void csr_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int csr_side_write(csr_writer *w, int side, const unsigned char *p, size_t n) {
  if (n && fwrite(p, 1, n, w->side[side]) != n)
    return err_set(ERR_IO, "%s: write failed: %s", w->side_path[side], strerror(errno));
  return 0;
}

int csr_writer_open(const char *path, int gzip, int64_t n_cols, csr_writer **out) {
  *out = NULL;
  csr_writer *w = calloc(1, sizeof *w);
  if (!w) return err_set(ERR_NOMEM, "out of memory");
  w->gzip = gzip;
  w->n_cols = n_cols;
  size_t n = strlen(path);
  w->path = malloc(n + 1);
  if (!w->path) goto nomem;
  memcpy(w->path, path, n + 1);
  for (int k = 0; k < CSR_SIDES; k++) {
    size_t m = strlen(csr_side_suffix[k]);
    if (!(w->side_path[k] = malloc(n + m + 1))) goto nomem;
    memcpy(w->side_path[k], path, n);
    memcpy(w->side_path[k] + n, csr_side_suffix[k], m + 1);
    if (!(w->side[k] = fopen(w->side_path[k], "wb"))) {
      int rc = err_set(ERR_IO, "%s: %s", w->side_path[k], strerror(errno));
      csr_writer_abort(w);
      return rc;
    }
  }
  unsigned char zero[8];
  csr_le64(zero, 0);
  int rc = csr_side_write(w, 0, zero, 8); /* indptr[0] */
  if (rc) {
    csr_writer_abort(w);
    return rc;
  }
  *out = w;
  return 0;
nomem:
  csr_writer_abort(w);
  return err_set(ERR_NOMEM, "out of memory");
}

int csr_write_row(csr_writer *w, const int32_t *indices, const float *data, int64_t n) {
  int rc = 0;
  const size_t per = sizeof w->buffer / 4;
  for (int64_t j = 0; j < n; j++)
    if (indices[j] < 0 || indices[j] >= w->n_cols)
      return err_set(ERR_ARG, "%s: row %lld: column %d outside [0, %lld)", w->path,
                     (long long)w->n_rows, indices[j], (long long)w->n_cols);
  for (int64_t j = 0; j < n;) {
    size_t k = 0;
    for (; k < per && j + (int64_t)k < n; k++)
      csr_le32(w->buffer + 4 * k, (uint32_t)indices[j + (int64_t)k]);
    if ((rc = csr_side_write(w, 1, w->buffer, 4 * k))) return rc;
    j += (int64_t)k;
  }
  for (int64_t j = 0; j < n;) {
    size_t k = 0;
    for (; k < per && j + (int64_t)k < n; k++) {
      uint32_t bits;
      memcpy(&bits, &data[j + (int64_t)k], 4);
      csr_le32(w->buffer + 4 * k, bits);
    }
    if ((rc = csr_side_write(w, 2, w->buffer, 4 * k))) return rc;
    j += (int64_t)k;
  }
  w->nnz += n;
  w->n_rows++;
  unsigned char end[8];
  csr_le64(end, (uint64_t)w->nnz);
  return csr_side_write(w, 0, end, 8);
}

int64_t csr_writer_rows(const csr_writer *w) { return w->n_rows; }
int64_t csr_writer_nnz(const csr_writer *w) { return w->nnz; }

int csr_writer_close(csr_writer *w) {
  int rc = 0;
  gzsink out = {0};
  for (int k = 0; k < CSR_SIDES; k++) {
    int failed = fclose(w->side[k]);
    w->side[k] = NULL;
    if (failed && !rc)
      rc = err_set(ERR_IO, "%s: close failed: %s", w->side_path[k], strerror(errno));
  }
  if (rc) goto fail;
  if ((rc = gzsink_open(&out, w->path, w->gzip))) goto fail;
  unsigned char header[24];
  csr_le64(header, (uint64_t)w->n_rows);
  csr_le64(header + 8, (uint64_t)w->n_cols);
  csr_le64(header + 16, (uint64_t)w->nnz);
  if ((rc = gzsink_write(&out, header, sizeof header))) goto fail;
  for (int k = 0; k < CSR_SIDES; k++) {
    FILE *f = fopen(w->side_path[k], "rb");
    if (!f) {
      rc = err_set(ERR_IO, "%s: %s", w->side_path[k], strerror(errno));
      goto fail;
    }
    size_t n;
    while ((n = fread(w->buffer, 1, sizeof w->buffer, f)) > 0)
      if ((rc = gzsink_write(&out, w->buffer, n))) break;
    int read_error = ferror(f);
    fclose(f);
    if (rc) goto fail;
    if (read_error) {
      rc = err_set(ERR_IO, "%s: read failed", w->side_path[k]);
      goto fail;
    }
  }
  rc = gzsink_close(&out);
fail:
  gzsink_abort(&out);
  csr_writer_abort(w);
  return rc;
}

void csr_writer_abort(csr_writer *w) {
  if (!w) return;
  for (int k = 0; k < CSR_SIDES; k++) {
    if (w->side[k]) fclose(w->side[k]);
    if (w->side_path[k]) remove(w->side_path[k]);
    free(w->side_path[k]);
  }
  free(w->path);
  free(w);
}
