/* tensorfile: one read-only view over the tensors of a checkpoint file, whatever its format:
 * safetensors (st_, io/safetensors.c) or a torch zip archive pytorch_model.bin (tb_, io/torchbin.c).
 *
 * A tensor_file owns the mapping of the file; every tensor_ref it hands out is borrowed and valid
 * until tf_close(). Tensor data is little-endian and row-major (C-contiguous), as both formats
 * store it; a torch tensor that is not contiguous in its storage is refused with ERR_FORMAT.
 */
#ifndef SPLADEX_TENSORFILE_H
#define SPLADEX_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TF_F32 = 0, TF_F16 = 1, TF_BF16 = 2, TF_I64 = 3, TF_I32 = 4, TF_OTHER = 99 } tf_dtype;

#define TF_MAX_DIMS 8

typedef struct {
  const char *name;             /* e.g. "distilbert.embeddings.word_embeddings.weight" */
  tf_dtype dtype;
  int ndim;
  int64_t shape[TF_MAX_DIMS];
  const void *data;             /* borrowed; element count = product of shape */
  size_t nbytes;
} tensor_ref;

typedef struct tensor_file tensor_file;

/* Opens path as safetensors or torch zip (decided by the file's first bytes, not its name),
 * validates every header offset against the file size. Returns 0 and *out, or a negative ERR_
 * code with a message naming the file (and tensor). The caller frees with tf_close(). */
int tf_open(const char *path, tensor_file **out);

/* Closes and unmaps. tf_close(NULL) is a no-op. */
void tf_close(tensor_file *f);

/* Number of tensors, and the i-th (0 <= i < tf_count). */
size_t tf_count(const tensor_file *f);
const tensor_ref *tf_at(const tensor_file *f, size_t i);

/* The tensor called name, or NULL. Borrowed. */
const tensor_ref *tf_find(const tensor_file *f, const char *name);

/* Copies tensor t into dst as float32 (F32 copied, F16/BF16 widened exactly); n is the
 * element count dst holds and must equal t's. Returns 0 or ERR_SHAPE/ERR_FORMAT with a message. */
int tf_to_f32(const tensor_ref *t, float *dst, size_t n);

/* Size in bytes of one element of dtype (0 for TF_OTHER). */
size_t tf_dtype_size(tf_dtype d);

#endif
