/* shard_format: what the shard writer and reader (io/shard_writer.c, io/shard_reader.c) share
 * and callers do not: the format attribute, and the HDF5 helpers of both halves (error handling,
 * closing ids, the string and float16 types). The public API is io/shard.h.
 */
#ifndef SPLADEX_SHARD_FORMAT_H
#define SPLADEX_SHARD_FORMAT_H

#include <hdf5.h>

#define SHARD_FORMAT "spladex-shard" /* the root's format attribute */
#define SHARD_FORMAT_VERSION 1

/* Every entry point calls this first: switches HDF5's own error printing off for the calling
 * thread (and, on the first call, HDF5's exit handler; see shard_format.c). */
void shard_quiet(void);

/* Records "path: what (innermost HDF5 reason)" with err_set, clears HDF5's error stack and
 * returns code. */
int shard_h5_error(int code, const char *path, const char *what);

/* Closes *id (any kind; an invalid id is left alone) and sets it to H5I_INVALID_HID. Returns the
 * close's status: closing a dataset or a file writes what HDF5 still caches (chunks, metadata),
 * so a writer must check it. */
herr_t shard_close_id(hid_t *id);

/* The variable-length UTF-8 string type, and IEEE 754 binary16 little-endian (numpy's float16).
 * Each returns a new type that the caller closes, or H5I_INVALID_HID. */
hid_t shard_string_type(void);
hid_t shard_half_type(void);

#endif
