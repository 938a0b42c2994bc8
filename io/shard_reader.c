/* shard_reader: opens and checks HDF5 shards, and reads their rows (layout in shard.h and
 * DESIGN.md section 4).
 *
 * The reader opens the structure, checks it, and reads row ranges through a cached window of
 * indptr + doc ids; data and indices are read only for the rows asked for, and every range read
 * is validated (indptr monotone and in bounds, indices strictly ascending and below vocab_size)
 * so a corrupted file gives ERR_FORMAT, never an out-of-bounds access downstream. shard_check is
 * the reader's structure check alone, without the vocabulary or any row.
 * Legend: N rows (documents) in the shard, E stored entries (nnz), V vocabulary size.
 */
#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cu_dtype.h"
#include "err.h"
#include "shard.h"
#include "shard_format.h"

enum {
  SHARD_READ_WINDOW = 16384,    /* rows of indptr + doc ids the reader caches */
  SHARD_READ_ENTRIES = 1 << 20  /* entries (8 bytes each) the reader caches, unless asked more */
};

/* ---- HDF5 helpers ---- */

/* Reads [offset, offset + count) of a 1-D dataset into buf as mem_type. */
static herr_t shard_read_1d(hid_t dset, hid_t mem_type, int64_t offset, int64_t count, void *buf) {
  if (count <= 0) return 0;
  hsize_t start = (hsize_t)offset, n = (hsize_t)count;
  hid_t file_space = H5I_INVALID_HID, mem_space = H5I_INVALID_HID;
  herr_t status = -1;
  if ((file_space = H5Dget_space(dset)) < 0) goto fail;
  if (H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start, NULL, &n, NULL) < 0) goto fail;
  if ((mem_space = H5Screate_simple(1, &n, NULL)) < 0) goto fail;
  status = H5Dread(dset, mem_type, mem_space, file_space, H5P_DEFAULT, buf);
fail:
  shard_close_id(&mem_space);
  shard_close_id(&file_space);
  return status;
}

/* ---- structure checks shared by the reader and shard_check ---- */

typedef struct {
  hid_t file, vectors, data, indices, indptr, doc_ids, vocab;
} shard_handles;

static void shard_handles_close(shard_handles *h) {
  shard_close_id(&h->vocab);
  shard_close_id(&h->doc_ids);
  shard_close_id(&h->indptr);
  shard_close_id(&h->indices);
  shard_close_id(&h->data);
  shard_close_id(&h->vectors);
  shard_close_id(&h->file);
}

/* Opens attribute name of obj, checks it holds count values (0: scalar or one value) of class.
 * Returns the attribute id (caller closes) or a negative ERR_FORMAT with a message. */
static hid_t shard_open_attr(hid_t obj, const char *obj_name, const char *name, H5T_class_t cls,
                             hssize_t count, const char *path) {
  hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  htri_t exists = H5Aexists(obj, name);
  if (exists <= 0) {
    H5Eclear2(H5E_DEFAULT);
    err_set(ERR_FORMAT, "%s: missing attribute '%s' on %s", path, name, obj_name);
    return ERR_FORMAT;
  }
  if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (type = H5Aget_type(attr)) < 0 ||
      (space = H5Aget_space(attr)) < 0) {
    shard_close_id(&attr);
    shard_close_id(&type);
    shard_h5_error(ERR_FORMAT, path, "cannot open an attribute");
    return ERR_FORMAT;
  }
  H5T_class_t actual = H5Tget_class(type);
  hssize_t points = H5Sget_simple_extent_npoints(space);
  int class_ok = actual == cls || (cls == H5T_FLOAT && actual == H5T_INTEGER);
  shard_close_id(&type);
  shard_close_id(&space);
  if (!class_ok || points != (count ? count : 1)) {
    shard_close_id(&attr);
    err_set(ERR_FORMAT, "%s: attribute '%s' on %s has the wrong type or size", path, name,
            obj_name);
    return ERR_FORMAT;
  }
  return attr;
}

static int shard_read_attr_numbers(hid_t obj, const char *obj_name, const char *name,
                                   hid_t mem_type, void *out, hssize_t count, const char *path) {
  H5T_class_t cls = H5Tget_class(mem_type);
  hid_t attr = shard_open_attr(obj, obj_name, name, cls, count, path);
  if (attr < 0) return (int)attr;
  herr_t status = H5Aread(attr, mem_type, out);
  H5Aclose(attr);
  if (status < 0) return shard_h5_error(ERR_FORMAT, path, "cannot read a numeric attribute");
  return 0;
}

/* Reads a scalar string attribute (variable or fixed length) into buf (truncated to cap - 1). */
static int shard_read_attr_string(hid_t obj, const char *obj_name, const char *name, char *buf,
                                  size_t cap, const char *path) {
  hid_t attr = shard_open_attr(obj, obj_name, name, H5T_STRING, 0, path);
  hid_t type = H5I_INVALID_HID;
  int rc = 0;
  if (attr < 0) return (int)attr;
  if ((type = H5Aget_type(attr)) < 0) goto h5fail;
  htri_t variable = H5Tis_variable_str(type);
  if (variable < 0) goto h5fail;
  if (variable) {
    char *value = NULL;
    if (H5Aread(attr, type, &value) < 0) goto h5fail;
    snprintf(buf, cap, "%s", value ? value : "");
    if (value) H5free_memory(value);
  } else {
    size_t size = H5Tget_size(type);
    char *value = calloc(1, size + 1);
    if (!value) {
      rc = err_set(ERR_NOMEM, "%s: out of memory", path);
      goto fail;
    }
    if (H5Aread(attr, type, value) < 0) {
      free(value);
      goto h5fail;
    }
    snprintf(buf, cap, "%s", value);
    free(value);
  }
  goto fail;
h5fail:
  rc = shard_h5_error(ERR_FORMAT, path, "cannot read a string attribute");
fail:
  shard_close_id(&type);
  shard_close_id(&attr);
  return rc;
}

/* Opens a 1-D dataset and checks its class and length; *length gets its length. */
static int shard_open_dataset(hid_t loc, const char *name, H5T_class_t cls, int variable_string,
                              const char *path, hid_t *out, int64_t *length) {
  hid_t dset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  int rc = 0;
  htri_t exists = H5Lexists(loc, name, H5P_DEFAULT);
  if (exists <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return err_set(ERR_FORMAT, "%s: missing dataset '%s'", path, name);
  }
  if ((dset = H5Dopen2(loc, name, H5P_DEFAULT)) < 0 || (type = H5Dget_type(dset)) < 0 ||
      (space = H5Dget_space(dset)) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot open a dataset");
    goto fail;
  }
  if (H5Tget_class(type) != cls || H5Sget_simple_extent_ndims(space) != 1 ||
      (variable_string && H5Tis_variable_str(type) <= 0)) {
    rc = err_set(ERR_FORMAT, "%s: dataset '%s' has the wrong type or rank%s", path, name,
                 variable_string ? " (expected 1-D variable-length strings)" : "");
    goto fail;
  }
  hsize_t dims = 0;
  H5Sget_simple_extent_dims(space, &dims, NULL);
  *length = (int64_t)dims;
  *out = dset;
  dset = H5I_INVALID_HID;
fail:
  shard_close_id(&space);
  shard_close_id(&type);
  shard_close_id(&dset);
  return rc;
}

/* Opens path and checks everything that can be checked without reading the rows: attributes,
 * dataset types and lengths, indptr[0] == 0 and indptr[N] == E. Fills info. */
static int shard_open_structure(const char *path, shard_handles *h, shard_info *info) {
  struct stat st;
  int rc = 0;
  memset(info, 0, sizeof *info);
  h->file = h->vectors = h->data = h->indices = h->indptr = h->doc_ids = h->vocab =
      H5I_INVALID_HID;
  if (stat(path, &st) < 0) return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return err_set(ERR_IO, "%s: not a regular file", path);
  if ((h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
    return shard_h5_error(ERR_FORMAT, path, "not a readable HDF5 file (truncated or corrupted?)");

  char format[64] = "";
  if (H5Aexists(h->file, "format") <= 0) {
    H5Eclear2(H5E_DEFAULT);
    rc = err_set(ERR_FORMAT, "%s: not a spladex shard (no 'format' attribute)", path);
    goto fail;
  }
  if ((rc = shard_read_attr_string(h->file, "/", "format", format, sizeof format, path)) < 0)
    goto fail;
  if (strcmp(format, SHARD_FORMAT)) {
    rc = err_set(ERR_FORMAT, "%s: not a spladex shard (format is '%s', expected '%s')", path,
                 format, SHARD_FORMAT);
    goto fail;
  }
  int32_t format_version = 0, max_length = 0, top_k = 0;
  if ((rc = shard_read_attr_numbers(h->file, "/", "format_version", H5T_NATIVE_INT32,
                                    &format_version, 0, path)) < 0)
    goto fail;
  if (format_version != SHARD_FORMAT_VERSION) {
    rc = err_set(ERR_FORMAT, "%s: shard format_version %d is not supported (this build reads %d)",
                 path, (int)format_version, SHARD_FORMAT_VERSION);
    goto fail;
  }
  info->format_version = format_version;
  if ((rc = shard_read_attr_string(h->file, "/", "model", info->model, sizeof info->model,
                                   path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "max_length", H5T_NATIVE_INT32, &max_length, 0,
                                    path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "threshold", H5T_NATIVE_FLOAT, &info->threshold,
                                    0, path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "top_k", H5T_NATIVE_INT32, &top_k, 0, path)) <
          0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "first_doc", H5T_NATIVE_INT64, &info->first_doc,
                                    0, path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "n_docs", H5T_NATIVE_INT64, &info->n_docs, 0,
                                    path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "input_start", H5T_NATIVE_INT64,
                                    &info->input_start, 0, path)) < 0 ||
      (rc = shard_read_attr_numbers(h->file, "/", "input_end", H5T_NATIVE_INT64, &info->input_end,
                                    0, path)) < 0)
    goto fail;
  info->max_length = max_length;
  info->top_k = top_k;
  if (info->n_docs < 0 || info->first_doc < 0) {
    rc = err_set(ERR_FORMAT, "%s: negative n_docs or first_doc attribute", path);
    goto fail;
  }
  htri_t has_windows = H5Aexists(h->file, "windows_total"); /* absent: unknown (shard.h) */
  if (has_windows < 0) H5Eclear2(H5E_DEFAULT);
  if (has_windows > 0) {
    shard_windows *w = &info->windows;
    if ((rc = shard_read_attr_numbers(h->file, "/", "windows_total", H5T_NATIVE_INT64, &w->total,
                                      0, path)) < 0 ||
        (rc = shard_read_attr_numbers(h->file, "/", "windows_min", H5T_NATIVE_INT64, &w->min, 0,
                                      path)) < 0 ||
        (rc = shard_read_attr_numbers(h->file, "/", "windows_max", H5T_NATIVE_INT64, &w->max, 0,
                                      path)) < 0 ||
        (rc = shard_read_attr_numbers(h->file, "/", "windows_capped", H5T_NATIVE_INT64,
                                      &w->capped, 0, path)) < 0 ||
        (rc = shard_read_attr_numbers(h->file, "/", "first_capped_doc", H5T_NATIVE_INT64,
                                      &w->first_capped, 0, path)) < 0)
      goto fail;
    if (w->total < 0 || w->min < 0 || w->max < w->min || w->capped < 0 || w->capped > info->n_docs ||
        (w->capped > 0) != (w->first_capped >= 0)) {
      rc = err_set(ERR_FORMAT, "%s: inconsistent windows_* attributes", path);
      goto fail;
    }
    info->has_windows = 1;
  }

  if (H5Lexists(h->file, "vectors", H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    rc = err_set(ERR_FORMAT, "%s: missing group 'vectors'", path);
    goto fail;
  }
  if ((h->vectors = H5Gopen2(h->file, "vectors", H5P_DEFAULT)) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot open group 'vectors'");
    goto fail;
  }
  char encoding[64] = "";
  int64_t shape[2] = {0, 0};
  if ((rc = shard_read_attr_string(h->vectors, "/vectors", "encoding-type", encoding,
                                   sizeof encoding, path)) < 0)
    goto fail;
  if (strcmp(encoding, "csr_matrix")) {
    rc = err_set(ERR_FORMAT, "%s: /vectors encoding-type is '%s', expected 'csr_matrix'", path,
                 encoding);
    goto fail;
  }
  if ((rc = shard_read_attr_numbers(h->vectors, "/vectors", "shape", H5T_NATIVE_INT64, shape, 2,
                                    path)) < 0)
    goto fail;
  if (shape[0] != info->n_docs || shape[1] <= 0 || shape[1] > INT32_MAX) {
    rc = err_set(ERR_FORMAT, "%s: /vectors shape [%lld, %lld] disagrees with n_docs %lld", path,
                 (long long)shape[0], (long long)shape[1], (long long)info->n_docs);
    goto fail;
  }
  info->vocab_size = (int)shape[1];

  int64_t data_length = 0, indices_length = 0, indptr_length = 0, ids_length = 0, vocab_length = 0;
  if ((rc = shard_open_dataset(h->vectors, "data", H5T_FLOAT, 0, path, &h->data, &data_length)) <
          0 ||
      (rc = shard_open_dataset(h->vectors, "indices", H5T_INTEGER, 0, path, &h->indices,
                               &indices_length)) < 0 ||
      (rc = shard_open_dataset(h->vectors, "indptr", H5T_INTEGER, 0, path, &h->indptr,
                               &indptr_length)) < 0 ||
      (rc = shard_open_dataset(h->file, "doc_ids", H5T_STRING, 1, path, &h->doc_ids,
                               &ids_length)) < 0 ||
      (rc = shard_open_dataset(h->file, "vocab", H5T_STRING, 1, path, &h->vocab, &vocab_length)) <
          0)
    goto fail;
  hid_t data_type = H5Dget_type(h->data);
  size_t value_size = data_type >= 0 ? H5Tget_size(data_type) : 0;
  if (data_type >= 0) H5Tclose(data_type);
  if (value_size != 2 && value_size != 4 && value_size != 8) {
    rc = err_set(ERR_FORMAT, "%s: /vectors/data has %zu-byte values (expected float16/32/64)",
                 path, value_size);
    goto fail;
  }
  info->value_bits = (int)(8 * value_size);
  if (data_length != indices_length || indptr_length != info->n_docs + 1 ||
      ids_length != info->n_docs || vocab_length != info->vocab_size) {
    rc = err_set(ERR_FORMAT,
                 "%s: dataset lengths disagree (data %lld, indices %lld, indptr %lld, doc_ids "
                 "%lld, vocab %lld; n_docs %lld, vocab_size %d)",
                 path, (long long)data_length, (long long)indices_length, (long long)indptr_length,
                 (long long)ids_length, (long long)vocab_length, (long long)info->n_docs,
                 info->vocab_size);
    goto fail;
  }
  info->nnz = data_length;
  int64_t first = -1, last = -1;
  if (shard_read_1d(h->indptr, H5T_NATIVE_INT64, 0, 1, &first) < 0 ||
      shard_read_1d(h->indptr, H5T_NATIVE_INT64, info->n_docs, 1, &last) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot read /vectors/indptr");
    goto fail;
  }
  if (first != 0 || last != info->nnz) {
    rc = err_set(ERR_FORMAT, "%s: /vectors/indptr runs from %lld to %lld, expected 0 to %lld",
                 path, (long long)first, (long long)last, (long long)info->nnz);
    goto fail;
  }
  return 0;
fail:
  shard_handles_close(h);
  return rc;
}

int shard_check(const char *path, int64_t first_doc, int64_t n_docs, shard_info *info) {
  shard_quiet();
  shard_handles h;
  shard_info local;
  shard_info *out = info ? info : &local;
  int rc = shard_open_structure(path, &h, out);
  if (rc < 0) return rc;
  shard_handles_close(&h);
  if (first_doc >= 0 && out->first_doc != first_doc)
    return err_set(ERR_MISMATCH, "%s: first_doc is %lld, expected %lld", path,
                   (long long)out->first_doc, (long long)first_doc);
  if (n_docs >= 0 && out->n_docs != n_docs)
    return err_set(ERR_MISMATCH, "%s: n_docs is %lld, expected %lld", path,
                   (long long)out->n_docs, (long long)n_docs);
  return 0;
}

/* ---- reader ---- */

static char shard_empty_string[1] = "";

struct shard_reader {
  char *path;
  shard_handles h;
  shard_info info;
  hid_t string_type;
  hid_t value_type;          /* memory type for /vectors/data (float, or the half type) */
  char **vocab;              /* (V) HDF5-allocated strings, shard_empty_string for NULL */
  /* the cached window: rows [window_start, window_start + window_rows), validated */
  int64_t window_start, window_rows;
  int64_t *window_indptr;    /* (window_rows + 1) absolute offsets into data / indices */
  char **window_ids;         /* (window_rows) HDF5-allocated strings */
  int64_t window_cap;        /* rows allocated in window_indptr / window_ids */
  int32_t *window_indices;   /* (window_entries) from offset window_indptr[0] */
  float *window_values;      /* (window_entries) */
  uint16_t *window_half;     /* (window_entries), float16 files only */
  int64_t window_entries_cap;
  int64_t *out_indptr;       /* (out_rows_cap + 1) the rows asked for, rebased to 0 */
  int64_t out_rows_cap;
};

static void shard_free_strings(char **strings, int64_t n) {
  if (!strings) return;
  for (int64_t i = 0; i < n; i++)
    if (strings[i] && strings[i] != shard_empty_string) H5free_memory(strings[i]);
}

/* Reads n strings at offset of a vlen string dataset into out (NULL entries become ""). */
static herr_t shard_read_strings(hid_t dset, hid_t string_type, int64_t offset, int64_t n,
                                 char **out) {
  for (int64_t i = 0; i < n; i++) out[i] = NULL;
  herr_t status = shard_read_1d(dset, string_type, offset, n, out);
  for (int64_t i = 0; i < n; i++)
    if (!out[i]) out[i] = shard_empty_string;
  return status;
}

void shard_reader_close(shard_reader *r) {
  if (!r) return;
  shard_quiet();
  if (r->vocab) shard_free_strings(r->vocab, r->info.vocab_size);
  if (r->window_ids) shard_free_strings(r->window_ids, r->window_rows);
  shard_handles_close(&r->h);
  shard_close_id(&r->string_type);
  shard_close_id(&r->value_type);
  free(r->vocab);
  free(r->window_indptr);
  free(r->window_ids);
  free(r->window_indices);
  free(r->window_values);
  free(r->window_half);
  free(r->out_indptr);
  free(r->path);
  free(r);
}

int shard_reader_open(const char *path, shard_reader **out) {
  shard_quiet();
  *out = NULL;
  int rc = 0;
  shard_reader *r = calloc(1, sizeof *r);
  if (!r) return err_set(ERR_NOMEM, "%s: out of memory", path);
  r->h.file = r->h.vectors = r->h.data = r->h.indices = r->h.indptr = r->h.doc_ids = r->h.vocab =
      H5I_INVALID_HID;
  r->string_type = r->value_type = H5I_INVALID_HID;
  r->window_rows = -1; /* nothing cached */
  if (!(r->path = malloc(strlen(path) + 1))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  strcpy(r->path, path);
  if ((rc = shard_open_structure(path, &r->h, &r->info)) < 0) goto fail;
  if ((r->string_type = shard_string_type()) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot make the HDF5 string type");
    goto fail;
  }
  if (r->info.value_bits == 16) {
    if ((r->value_type = shard_half_type()) < 0) {
      rc = shard_h5_error(ERR_FORMAT, path, "cannot make the HDF5 float16 type");
      goto fail;
    }
  } else if ((r->value_type = H5Tcopy(H5T_NATIVE_FLOAT)) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot make the HDF5 float type");
    goto fail;
  }
  if (!(r->vocab = calloc((size_t)r->info.vocab_size, sizeof *r->vocab))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  if (shard_read_strings(r->h.vocab, r->string_type, 0, r->info.vocab_size, r->vocab) < 0) {
    rc = shard_h5_error(ERR_FORMAT, path, "cannot read /vocab");
    goto fail;
  }
  *out = r;
  return 0;
fail:
  shard_reader_close(r);
  return rc;
}

const shard_info *shard_reader_info(const shard_reader *r) { return &r->info; }

const char *shard_reader_term(const shard_reader *r, int v) {
  if (v < 0 || v >= r->info.vocab_size) return NULL;
  return r->vocab[v];
}

/* Makes the window cover rows [row, row + n). On a miss it reads, from row on, up to
 * max(n, SHARD_READ_WINDOW) rows, cut so their entries stay within
 * max(entries of the n rows, SHARD_READ_ENTRIES): indptr, doc ids, indices and values, and
 * validates them all (indptr monotone and in bounds, indices ascending and below V). */
static int shard_load_window(shard_reader *r, int64_t row, int64_t n) {
  if (r->window_rows >= 0 && row >= r->window_start &&
      row + n <= r->window_start + r->window_rows)
    return 0;
  int64_t rows = n > SHARD_READ_WINDOW ? n : SHARD_READ_WINDOW;
  if (rows > r->info.n_docs - row) rows = r->info.n_docs - row;
  if (r->window_ids) shard_free_strings(r->window_ids, r->window_rows);
  r->window_rows = -1;
  if (rows > r->window_cap) {
    free(r->window_indptr);
    free(r->window_ids);
    r->window_indptr = malloc((size_t)(rows + 1) * sizeof *r->window_indptr);
    r->window_ids = calloc((size_t)rows, sizeof *r->window_ids);
    r->window_cap = 0;
    if (!r->window_indptr || !r->window_ids)
      return err_set(ERR_NOMEM, "%s: out of memory for %lld rows", r->path, (long long)rows);
    r->window_cap = rows;
  }
  int64_t *p = r->window_indptr;
  if (shard_read_1d(r->h.indptr, H5T_NATIVE_INT64, row, rows + 1, p) < 0)
    return shard_h5_error(ERR_FORMAT, r->path, "cannot read /vectors/indptr");
  for (int64_t i = 0; i < rows; i++) {
    if (p[i] < 0 || p[i + 1] < p[i] || p[i + 1] > r->info.nnz)
      return err_set(ERR_FORMAT, "%s: broken /vectors/indptr at row %lld (%lld -> %lld, nnz %lld)",
                     r->path, (long long)(row + i), (long long)p[i], (long long)p[i + 1],
                     (long long)r->info.nnz);
  }
  int64_t limit = p[n] - p[0] > SHARD_READ_ENTRIES ? p[n] - p[0] : SHARD_READ_ENTRIES;
  while (rows > n && p[rows] - p[0] > limit) rows--;
  int64_t entries = p[rows] - p[0];
  if (entries > r->window_entries_cap) {
    free(r->window_indices);
    free(r->window_values);
    free(r->window_half);
    r->window_half = NULL;
    r->window_entries_cap = 0;
    r->window_indices = malloc((size_t)entries * sizeof *r->window_indices);
    r->window_values = malloc((size_t)entries * sizeof *r->window_values);
    if (r->info.value_bits == 16) r->window_half = malloc((size_t)entries * sizeof *r->window_half);
    if (!r->window_indices || !r->window_values || (r->info.value_bits == 16 && !r->window_half))
      return err_set(ERR_NOMEM, "%s: out of memory for %lld entries", r->path, (long long)entries);
    r->window_entries_cap = entries;
  }
  if (entries > 0) {
    if (shard_read_1d(r->h.indices, H5T_NATIVE_INT32, p[0], entries, r->window_indices) < 0)
      return shard_h5_error(ERR_FORMAT, r->path, "cannot read /vectors/indices");
    void *target = r->info.value_bits == 16 ? (void *)r->window_half : (void *)r->window_values;
    if (shard_read_1d(r->h.data, r->value_type, p[0], entries, target) < 0)
      return shard_h5_error(ERR_FORMAT, r->path, "cannot read /vectors/data");
    if (r->info.value_bits == 16)
      for (int64_t i = 0; i < entries; i++)
        r->window_values[i] = cu_f16_bits_to_f32(r->window_half[i]);
  }
  const int32_t *ix = r->window_indices;
  for (int64_t d = 0; d < rows; d++) {
    for (int64_t k = p[d] - p[0]; k < p[d + 1] - p[0]; k++) {
      int32_t v = ix[k];
      if (v < 0 || v >= r->info.vocab_size || (k > p[d] - p[0] && v <= ix[k - 1]))
        return err_set(ERR_FORMAT, "%s: row %lld: term index %d at entry %lld is %s", r->path,
                       (long long)(row + d), (int)v, (long long)(p[0] + k),
                       v < 0 || v >= r->info.vocab_size ? "outside the vocabulary"
                                                        : "not ascending");
    }
  }
  if (shard_read_strings(r->h.doc_ids, r->string_type, row, rows, r->window_ids) < 0) {
    for (int64_t i = 0; i < rows; i++) r->window_ids[i] = NULL;
    return shard_h5_error(ERR_FORMAT, r->path, "cannot read /doc_ids");
  }
  r->window_start = row;
  r->window_rows = rows;
  return 0;
}

int shard_reader_rows(shard_reader *r, int64_t row, int64_t n, const char *const **doc_ids,
                      const int64_t **indptr, const int32_t **indices, const float **values) {
  static const char *const no_ids[1] = {NULL};
  shard_quiet();
  if (row < 0 || n < 0 || row + n > r->info.n_docs)
    return err_set(ERR_ARG, "%s: rows [%lld, %lld) are outside the shard's %lld rows", r->path,
                   (long long)row, (long long)(row + n), (long long)r->info.n_docs);
  int rc = 0;
  if (!r->out_indptr || n > r->out_rows_cap) {
    free(r->out_indptr);
    r->out_rows_cap = 0;
    if (!(r->out_indptr = malloc((size_t)(n + 1) * sizeof *r->out_indptr)))
      return err_set(ERR_NOMEM, "%s: out of memory", r->path);
    r->out_rows_cap = n;
  }
  r->out_indptr[0] = 0;
  *doc_ids = no_ids;
  *indptr = r->out_indptr;
  *indices = r->window_indices;
  *values = r->window_values;
  if (n == 0) return 0;
  if ((rc = shard_load_window(r, row, n)) < 0) return rc;
  const int64_t *p = r->window_indptr + (row - r->window_start);
  int64_t begin = p[0] - r->window_indptr[0];
  for (int64_t i = 0; i <= n; i++) r->out_indptr[i] = p[i] - p[0];
  *doc_ids = (const char *const *)(r->window_ids + (row - r->window_start));
  *indices = r->window_indices + begin;
  *values = r->window_values + begin;
  return 0;
}
