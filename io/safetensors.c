/* safetensors: header validation and the tensor table (see safetensors.h). The file is trusted for
 * nothing: every number in the JSON header is checked before a pointer is formed from it. */
#include "safetensors.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"

/* A header larger than this is refused (real ones are a few hundred KB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

struct st_file {
  tensor_ref *refs;
  size_t n;
};

typedef struct {
  const char *name;
  tf_dtype dtype;
  size_t size; /* element size in bytes */
} st_dtype_info;

static const st_dtype_info st_dtypes[] = {
    {"F32", TF_F32, 4},     {"F16", TF_F16, 2},     {"BF16", TF_BF16, 2},   {"I64", TF_I64, 8},
    {"I32", TF_I32, 4},     {"F64", TF_OTHER, 8},   {"I16", TF_OTHER, 2},   {"U16", TF_OTHER, 2},
    {"I8", TF_OTHER, 1},    {"U8", TF_OTHER, 1},    {"BOOL", TF_OTHER, 1},  {"U32", TF_OTHER, 4},
    {"U64", TF_OTHER, 8},   {"F8_E4M3", TF_OTHER, 1}, {"F8_E5M2", TF_OTHER, 1},
};

/* A JSON number that is a non-negative integer below 2^53; else -1 in *ok. */
static int st_json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return 0;
  *out = (uint64_t)d;
  return 1;
}

typedef struct {
  uint64_t begin, end;
  size_t index;
} st_span;

static int st_span_cmp(const void *a, const void *b) {
  const st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int st_name_cmp(const void *a, const void *b) {
  const tensor_ref *x = *(const tensor_ref *const *)a, *y = *(const tensor_ref *const *)b;
  return strcmp(x->name, y->name);
}

int st_parse(const char *path, const uint8_t *data, size_t size, st_file **out) {
  int rc = 0;
  cJSON *root = NULL;
  st_file *s = NULL;
  st_span *spans = NULL;
  const tensor_ref **sorted = NULL;
  *out = NULL;

  if (size < 8) {
    rc = err_set(ERR_FORMAT, "%s: safetensors: file is %zu bytes, shorter than the 8-byte header length", path, size);
    goto fail;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = header_len << 8 | data[i];
  if (header_len > size - 8) {
    rc = err_set(ERR_FORMAT, "%s: safetensors: header length %llu exceeds the file (%zu bytes): truncated or not a safetensors file",
                 path, (unsigned long long)header_len, size);
    goto fail;
  }
  if (header_len > ST_MAX_HEADER || header_len < 2) {
    rc = err_set(ERR_FORMAT, "%s: safetensors: implausible header length %llu", path, (unsigned long long)header_len);
    goto fail;
  }
  const char *header = (const char *)data + 8;
  const uint8_t *block = data + 8 + header_len;
  uint64_t block_size = size - 8 - header_len;
  /* The header must be one JSON object, possibly padded with trailing spaces. */
  const char *json_end = NULL;
  root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &json_end, 0);
  if (!root || !cJSON_IsObject(root)) {
    rc = err_set(ERR_FORMAT, "%s: safetensors: header is not a valid JSON object", path);
    goto fail;
  }
  for (const char *p = json_end; p && p < header + header_len; p++) {
    if (*p != ' ' && *p != '\0' && *p != '\n' && *p != '\t' && *p != '\r') {
      rc = err_set(ERR_FORMAT, "%s: safetensors: trailing bytes after the JSON header", path);
      goto fail;
    }
  }

  s = calloc(1, sizeof *s);
  if (!s) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  size_t capacity = (size_t)cJSON_GetArraySize(root);
  s->refs = calloc(capacity ? capacity : 1, sizeof *s->refs);
  spans = calloc(capacity ? capacity : 1, sizeof *spans);
  if (!s->refs || !spans) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  const cJSON *entry = NULL;
  cJSON_ArrayForEach(entry, root) {
    const char *name = entry->string;
    if (!name) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: header entry without a name", path);
      goto fail;
    }
    if (strcmp(name, "__metadata__") == 0) continue;
    if (!cJSON_IsObject(entry)) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': entry is not an object", path, name);
      goto fail;
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets)) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': needs string dtype, array shape and array data_offsets",
                   path, name);
      goto fail;
    }
    const st_dtype_info *info = NULL;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
      if (strcmp(dtype->valuestring, st_dtypes[i].name) == 0) info = &st_dtypes[i];
    if (!info) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': unknown dtype '%.32s'", path, name, dtype->valuestring);
      goto fail;
    }
    tensor_ref *t = &s->refs[s->n];
    t->dtype = info->dtype;
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TF_MAX_DIMS) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': %d dimensions (at most %d)", path, name, ndim, TF_MAX_DIMS);
      goto fail;
    }
    t->ndim = ndim;
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
      uint64_t dim = 0;
      if (!st_json_uint(cJSON_GetArrayItem(shape, d), &dim)) {
        rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': shape[%d] is not a non-negative integer", path, name, d);
        goto fail;
      }
      t->shape[d] = (int64_t)dim;
      if (dim && numel > UINT64_MAX / dim) overflow = 1;
      numel *= dim;
    }
    uint64_t begin = 0, end = 0;
    if (cJSON_GetArraySize(offsets) != 2 || !st_json_uint(cJSON_GetArrayItem(offsets, 0), &begin) ||
        !st_json_uint(cJSON_GetArrayItem(offsets, 1), &end)) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': data_offsets must be two non-negative integers", path, name);
      goto fail;
    }
    if (begin > end || end > block_size) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': data_offsets [%llu, %llu] outside the data block of %llu bytes",
                   path, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)block_size);
      goto fail;
    }
    if (overflow || numel > UINT64_MAX / info->size || numel * info->size != end - begin) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s': %llu bytes at data_offsets, but dtype %s and its shape need %s%llu",
                   path, name, (unsigned long long)(end - begin), info->name, overflow ? "more than " : "",
                   (unsigned long long)(overflow ? UINT64_MAX : numel * info->size));
      goto fail;
    }
    t->data = block + begin;
    t->nbytes = (size_t)(end - begin);
    size_t name_len = strlen(name);
    char *name_copy = malloc(name_len + 1);
    if (!name_copy) {
      rc = err_set(ERR_NOMEM, "%s: out of memory", path);
      goto fail;
    }
    memcpy(name_copy, name, name_len + 1);
    t->name = name_copy;
    spans[s->n].begin = begin;
    spans[s->n].end = end;
    spans[s->n].index = s->n;
    s->n++;
  }

  /* No two tensors may share bytes (the format forbids it; a header that lies about it is refused). */
  qsort(spans, s->n, sizeof *spans, st_span_cmp);
  for (size_t i = 1; i < s->n; i++) {
    if (spans[i].begin < spans[i - 1].end && spans[i].begin != spans[i].end && spans[i - 1].begin != spans[i - 1].end) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensors '%s' and '%s' overlap in the data block", path,
                   s->refs[spans[i - 1].index].name, s->refs[spans[i].index].name);
      goto fail;
    }
  }
  /* Refuse duplicate names (cJSON keeps both copies of a repeated key). */
  sorted = malloc((s->n ? s->n : 1) * sizeof *sorted);
  if (!sorted) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  for (size_t i = 0; i < s->n; i++) sorted[i] = &s->refs[i];
  qsort(sorted, s->n, sizeof *sorted, st_name_cmp);
  for (size_t i = 1; i < s->n; i++) {
    if (strcmp(sorted[i]->name, sorted[i - 1]->name) == 0) {
      rc = err_set(ERR_FORMAT, "%s: safetensors: tensor '%s' appears twice in the header", path, sorted[i]->name);
      goto fail;
    }
  }
  free(sorted);
  free(spans);
  cJSON_Delete(root);
  *out = s;
  return 0;

fail:
  free(sorted);
  free(spans);
  st_free(s);
  cJSON_Delete(root);
  return rc;
}

size_t st_count(const st_file *s) { return s ? s->n : 0; }

const tensor_ref *st_at(const st_file *s, size_t i) { return (s && i < s->n) ? &s->refs[i] : NULL; }

void st_free(st_file *s) {
  if (!s) return;
  if (s->refs)
    for (size_t i = 0; i < s->n; i++) free((char *)s->refs[i].name);
  free(s->refs);
  free(s);
}
