/* tensorfile: maps a checkpoint file and hands it to the parser its first bytes call for
 * (safetensors.c or torchbin.c); F16/BF16 -> F32 widening lives here. */
#include "tensorfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "safetensors.h"
#include "torchbin.h"

struct tensor_file {
  void *map;
  size_t map_size;
  st_file *st;
  tb_file *tb;
};

int tf_open(const char *path, tensor_file **out) {
  int rc = 0;
  int fd = -1;
  tensor_file *f = NULL;
  *out = NULL;
  f = calloc(1, sizeof *f);
  if (!f) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  fd = open(path, O_RDONLY);
  if (fd < 0) {
    rc = err_set(ERR_IO, "%s: %s", path, strerror(errno));
    goto fail;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = err_set(ERR_IO, "%s: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = err_set(ERR_IO, "%s: not a regular file", path);
    goto fail;
  }
  if (st.st_size < 8) {
    rc = err_set(ERR_FORMAT, "%s: %lld bytes is too short for a safetensors or torch checkpoint", path,
                 (long long)st.st_size);
    goto fail;
  }
  f->map_size = (size_t)st.st_size;
  f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (f->map == MAP_FAILED) {
    f->map = NULL;
    rc = err_set(ERR_IO, "%s: mmap: %s", path, strerror(errno));
    goto fail;
  }
  const uint8_t *bytes = f->map;
  if (bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4) {
    rc = tb_parse(path, bytes, f->map_size, &f->tb);
  } else if (bytes[0] == 0x80 && bytes[1] <= 5 && bytes[2] == 0x8a && bytes[3] == 0x0a) {
    rc = err_set(ERR_FORMAT, "%s: legacy (pre-1.6, non-zip) torch checkpoint: not supported; re-save it with "
                 "torch.save (zip format) or as safetensors", path);
  } else {
    rc = st_parse(path, bytes, f->map_size, &f->st); /* its header checks refuse anything else */
  }
  if (rc) goto fail;
  close(fd);
  *out = f;
  return 0;

fail:
  if (fd >= 0) close(fd);
  tf_close(f);
  return rc;
}

void tf_close(tensor_file *f) {
  if (!f) return;
  st_free(f->st);
  tb_free(f->tb);
  if (f->map) munmap(f->map, f->map_size);
  free(f);
}

size_t tf_count(const tensor_file *f) {
  if (!f) return 0;
  return f->st ? st_count(f->st) : tb_count(f->tb);
}

const tensor_ref *tf_at(const tensor_file *f, size_t i) {
  if (!f) return NULL;
  return f->st ? st_at(f->st, i) : tb_at(f->tb, i);
}

const tensor_ref *tf_find(const tensor_file *f, const char *name) {
  size_t n = tf_count(f);
  for (size_t i = 0; i < n; i++) {
    const tensor_ref *t = tf_at(f, i);
    if (strcmp(t->name, name) == 0) return t;
  }
  return NULL;
}

size_t tf_dtype_size(tf_dtype d) {
  switch (d) {
    case TF_F32: return 4;
    case TF_F16: return 2;
    case TF_BF16: return 2;
    case TF_I64: return 8;
    case TF_I32: return 4;
    default: return 0;
  }
}

static const char *tf_dtype_name(tf_dtype d) {
  switch (d) {
    case TF_F32: return "F32";
    case TF_F16: return "F16";
    case TF_BF16: return "BF16";
    case TF_I64: return "I64";
    case TF_I32: return "I32";
    default: return "an unsupported dtype";
  }
}

/* IEEE binary16 -> binary32, exact for every input (subnormals, infinities, NaN payloads). */
static float tf_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int shift = 0;
      while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        shift++;
      }
      mantissa &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 + 1 - shift) << 23) | (mantissa << 13);
    }
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

int tf_to_f32(const tensor_ref *t, float *dst, size_t n) {
  size_t numel = 1;
  for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
  if (numel != n)
    return err_set(ERR_SHAPE, "tensor '%s': %zu elements, the destination holds %zu", t->name, numel, n);
  size_t elem = tf_dtype_size(t->dtype);
  if (t->dtype != TF_F32 && t->dtype != TF_F16 && t->dtype != TF_BF16)
    return err_set(ERR_FORMAT, "tensor '%s' has dtype %s, expected F32, F16 or BF16", t->name, tf_dtype_name(t->dtype));
  if (elem * n != t->nbytes)
    return err_set(ERR_FORMAT, "tensor '%s': %zu bytes for %zu elements", t->name, t->nbytes, n);
  const uint8_t *src = t->data;
  if (t->dtype == TF_F32) {
    if (n) memcpy(dst, src, n * 4);
  } else if (t->dtype == TF_F16) {
    for (size_t i = 0; i < n; i++) dst[i] = tf_half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
  } else {
    for (size_t i = 0; i < n; i++) {
      uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
      memcpy(&dst[i], &bits, sizeof bits);
    }
  }
  return 0;
}
