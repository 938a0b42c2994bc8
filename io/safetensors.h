/* safetensors: parses a safetensors file that is already in memory (tensorfile.c maps it).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__": {...}}, then the data block; offsets are relative
 * to the data block. Every entry is checked: known dtype name, 0..TF_MAX_DIMS integer dims,
 * begin <= end <= data size, end - begin == element size * product(shape) without overflow, no two
 * tensors overlapping, no duplicate names. F32/F16/BF16/I64/I32 get their tf_dtype; other dtypes
 * are kept as TF_OTHER (tf_to_f32 refuses them). */
#ifndef SPLADEX_SAFETENSORS_H
#define SPLADEX_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tensorfile.h"

typedef struct st_file st_file;

/* Parses the size bytes at data (the whole file; borrowed, must outlive the result). path only
 * names the file in messages. Returns 0 and *out, or ERR_FORMAT / ERR_NOMEM with a message naming
 * the file (and tensor). The caller frees with st_free(). */
int st_parse(const char *path, const uint8_t *data, size_t size, st_file **out);

/* Number of tensors, and the i-th (borrowed, valid until st_free). */
size_t st_count(const st_file *s);
const tensor_ref *st_at(const st_file *s, size_t i);

/* Frees the tensor table (not the data). st_free(NULL) is a no-op. */
void st_free(st_file *s);

#endif
