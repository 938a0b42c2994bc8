/* torchbin: torch zip archive + restricted unpickler (see torchbin.h).
 *
 * Nothing in the file is trusted: the zip reader checks every offset and size against the file
 * before forming a pointer, and the unpickler is a small interpreter over a fixed set of opcodes
 * whose only "calls" are three hard-wired constructors (an empty OrderedDict, a tensor view of a
 * storage, a storage reference). Memory it allocates is bounded by the pickle's length: each
 * opcode makes at most one value, and every value is freed at once at the end. */
#include "torchbin.h"

#include <string.h>

#include <zlib.h>

#include "err.h"
#include "grow.h"

#define TB_MAX_STACK (1u << 20)
#define TB_MAX_MEMO (1u << 22)

/* ---------------------------------------------------------------- zip ---- */

typedef struct {
  const uint8_t *name; /* not NUL-terminated; points into the central directory */
  size_t name_len;
  uint16_t flags, method;
  uint32_t crc;
  uint64_t csize, usize, local_offset;
  const uint8_t *bytes; /* resolved contents (in the map or an inflated buffer), NULL until read */
} tb_entry;

struct tb_file {
  tensor_ref *refs;
  size_t n, cap;
  void **buffers; /* inflated entries, owned */
  size_t n_buffers;
};

typedef struct {
  const char *path;
  const uint8_t *data;
  size_t size;
  tb_entry *entries;
  size_t n_entries;
  tb_file *out;
} tb_zip;

static uint16_t tb_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t tb_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t tb_u64(const uint8_t *p) { return (uint64_t)tb_u32(p) | (uint64_t)tb_u32(p + 4) << 32; }

/* Reads the central directory into z->entries. */
static int tb_zip_directory(tb_zip *z) {
  const uint8_t *d = z->data;
  size_t size = z->size;
  if (size < 22) return err_set(ERR_FORMAT, "%s: zip: %zu bytes, too short for a zip archive", z->path, size);
  /* End of central directory: the last signature within the final 64 KiB + 22 bytes. */
  size_t eocd = SIZE_MAX;
  size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
  for (size_t p = size - 22 + 1; p-- > lowest;) {
    if (tb_u32(d + p) == 0x06054b50u && p + 22 + (size_t)tb_u16(d + p + 20) <= size) {
      eocd = p;
      break;
    }
  }
  if (eocd == SIZE_MAX)
    return err_set(ERR_FORMAT, "%s: zip: no end-of-central-directory record (truncated archive?)", z->path);
  uint64_t count = tb_u16(d + eocd + 10);
  uint64_t cd_size = tb_u32(d + eocd + 12);
  uint64_t cd_offset = tb_u32(d + eocd + 16);
  if (tb_u16(d + eocd + 4) != 0 || tb_u16(d + eocd + 6) != 0 || tb_u16(d + eocd + 8) != tb_u16(d + eocd + 10))
    return err_set(ERR_FORMAT, "%s: zip: multi-disk archives are not supported", z->path);
  if (count == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
    /* zip64: a locator right before the EOCD points at the zip64 EOCD record. */
    if (eocd < 20 || tb_u32(d + eocd - 20) != 0x07064b50u)
      return err_set(ERR_FORMAT, "%s: zip: zip64 fields without a zip64 locator", z->path);
    uint64_t rec = tb_u64(d + eocd - 20 + 8);
    if (rec > eocd - 20 || eocd - 20 - rec < 56 || tb_u32(d + rec) != 0x06064b50u)
      return err_set(ERR_FORMAT, "%s: zip: zip64 end-of-central-directory record out of place", z->path);
    count = tb_u64(d + rec + 32);
    cd_size = tb_u64(d + rec + 40);
    cd_offset = tb_u64(d + rec + 48);
  }
  if (cd_offset > eocd || cd_size > eocd - cd_offset)
    return err_set(ERR_FORMAT, "%s: zip: central directory [%llu, +%llu) lies outside the file", z->path,
                   (unsigned long long)cd_offset, (unsigned long long)cd_size);
  if (count > cd_size / 46)
    return err_set(ERR_FORMAT, "%s: zip: %llu entries cannot fit a %llu-byte central directory", z->path,
                   (unsigned long long)count, (unsigned long long)cd_size);
  z->entries = calloc(count ? (size_t)count : 1, sizeof *z->entries);
  if (!z->entries) return err_set(ERR_NOMEM, "%s: out of memory", z->path);
  const uint8_t *p = d + cd_offset, *end = d + cd_offset + cd_size;
  for (uint64_t i = 0; i < count; i++) {
    if ((size_t)(end - p) < 46 || tb_u32(p) != 0x02014b50u)
      return err_set(ERR_FORMAT, "%s: zip: central directory entry %llu is damaged", z->path, (unsigned long long)i);
    tb_entry *e = &z->entries[z->n_entries];
    e->flags = tb_u16(p + 8);
    e->method = tb_u16(p + 10);
    e->crc = tb_u32(p + 16);
    e->csize = tb_u32(p + 20);
    e->usize = tb_u32(p + 24);
    size_t name_len = tb_u16(p + 28), extra_len = tb_u16(p + 30), comment_len = tb_u16(p + 32);
    e->local_offset = tb_u32(p + 42);
    if ((size_t)(end - p) - 46 < name_len + extra_len + comment_len)
      return err_set(ERR_FORMAT, "%s: zip: central directory entry %llu overruns the directory", z->path,
                     (unsigned long long)i);
    e->name = p + 46;
    e->name_len = name_len;
    /* zip64 extended information: the 0xffffffff fields, in this order. */
    const uint8_t *x = p + 46 + name_len, *x_end = x + extra_len;
    while (x_end - x >= 4) {
      uint16_t id = tb_u16(x), len = tb_u16(x + 2);
      if ((size_t)(x_end - x) - 4 < len)
        return err_set(ERR_FORMAT, "%s: zip: entry '%.*s': extra field overruns its record", z->path, (int)name_len, (const char *)e->name);
      if (id == 0x0001) {
        const uint8_t *q = x + 4, *q_end = x + 4 + len;
        uint64_t *fields[3] = {&e->usize, &e->csize, &e->local_offset};
        for (int f = 0; f < 3; f++) {
          if (*fields[f] != 0xffffffffu) continue;
          if (q_end - q < 8)
            return err_set(ERR_FORMAT, "%s: zip: entry '%.*s': zip64 field missing", z->path, (int)name_len, (const char *)e->name);
          *fields[f] = tb_u64(q);
          q += 8;
        }
      }
      x += 4 + len;
    }
    if (e->flags & 1)
      return err_set(ERR_FORMAT, "%s: zip: entry '%.*s' is encrypted", z->path, (int)name_len, (const char *)e->name);
    p += 46 + name_len + extra_len + comment_len;
    z->n_entries++;
  }
  return 0;
}

static const tb_entry *tb_zip_find(const tb_zip *z, const char *prefix, const char *name) {
  size_t a = strlen(prefix), b = strlen(name);
  for (size_t i = 0; i < z->n_entries; i++) {
    const tb_entry *e = &z->entries[i];
    if (e->name_len == a + b && memcmp(e->name, prefix, a) == 0 && memcmp(e->name + a, name, b) == 0) return e;
  }
  return NULL;
}

/* Resolves the contents of e (stored: in place; deflated: inflated into an owned buffer) and
 * checks its CRC-32. */
static int tb_zip_read(tb_zip *z, tb_entry *e) {
  if (e->bytes) return 0;
  const uint8_t *d = z->data;
  int name_len = (int)(e->name_len > 200 ? 200 : e->name_len);
  const char *name = (const char *)e->name;
  if (e->local_offset > z->size || z->size - e->local_offset < 30 || tb_u32(d + e->local_offset) != 0x04034b50u)
    return err_set(ERR_FORMAT, "%s: zip: entry '%.*s': local header at %llu is missing or outside the file", z->path,
                   name_len, name, (unsigned long long)e->local_offset);
  uint64_t start = e->local_offset + 30 + (uint64_t)tb_u16(d + e->local_offset + 26) + tb_u16(d + e->local_offset + 28);
  if (start > z->size || e->csize > z->size - start)
    return err_set(ERR_FORMAT, "%s: zip: entry '%.*s': %llu bytes of data at %llu run past the end of the file (%zu bytes)",
                   z->path, name_len, name, (unsigned long long)e->csize, (unsigned long long)start, z->size);
  const uint8_t *src = d + start;
  uint8_t *inflated = NULL;
  if (e->method == 0) {
    if (e->csize != e->usize)
      return err_set(ERR_FORMAT, "%s: zip: stored entry '%.*s' has sizes %llu and %llu", z->path, name_len, name,
                     (unsigned long long)e->csize, (unsigned long long)e->usize);
  } else if (e->method == 8) {
    /* deflate expands at most ~1032:1; anything beyond is a lie (or a bomb) */
    if (e->usize > (e->csize + 1) * 1032 || e->usize > SIZE_MAX / 2)
      return err_set(ERR_FORMAT, "%s: zip: entry '%.*s' claims %llu bytes from %llu compressed", z->path, name_len, name,
                     (unsigned long long)e->usize, (unsigned long long)e->csize);
    void **grown = realloc(z->out->buffers, (z->out->n_buffers + 1) * sizeof *grown);
    if (!grown) return err_set(ERR_NOMEM, "%s: out of memory", z->path);
    z->out->buffers = grown;
    inflated = malloc(e->usize ? (size_t)e->usize : 1);
    if (!inflated) return err_set(ERR_NOMEM, "%s: out of memory inflating '%.*s'", z->path, name_len, name);
    z->out->buffers[z->out->n_buffers++] = inflated;
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK) return err_set(ERR_NOMEM, "%s: zlib: inflateInit failed", z->path);
    uint64_t in_left = e->csize, out_left = e->usize;
    s.next_in = (Bytef *)(uintptr_t)src;
    s.next_out = inflated;
    int zr = Z_OK;
    while (zr == Z_OK) {
      uInt in_chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
      uInt out_chunk = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
      s.avail_in = in_chunk;
      s.avail_out = out_chunk;
      zr = inflate(&s, Z_NO_FLUSH);
      in_left -= in_chunk - s.avail_in;
      out_left -= out_chunk - s.avail_out;
      if (zr == Z_OK && in_chunk == s.avail_in && out_chunk == s.avail_out) zr = Z_BUF_ERROR; /* no progress */
      if (zr == Z_BUF_ERROR && (in_left == 0 || out_left == 0)) break;
    }
    inflateEnd(&s);
    if (zr != Z_STREAM_END || out_left != 0)
      return err_set(ERR_FORMAT, "%s: zip: entry '%.*s': deflate data is corrupt or not %llu bytes", z->path, name_len,
                     name, (unsigned long long)e->usize);
    src = inflated;
  } else {
    return err_set(ERR_FORMAT, "%s: zip: entry '%.*s' uses compression method %u (only stored and deflate are supported)",
                   z->path, name_len, name, e->method);
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < e->usize;) {
    uInt chunk = e->usize - done > (1u << 30) ? (1u << 30) : (uInt)(e->usize - done);
    crc = crc32(crc, src + done, chunk);
    done += chunk;
  }
  if ((uint32_t)crc != e->crc)
    return err_set(ERR_FORMAT, "%s: zip: entry '%.*s' fails its CRC-32 check (corrupt file)", z->path, name_len, name);
  e->bytes = src;
  return 0;
}

/* ---------------------------------------------------------- unpickler ---- */

typedef enum { PV_NONE, PV_BOOL, PV_INT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL, PV_STORAGE, PV_TENSOR } pv_kind;

typedef enum {
  PG_ORDERED_DICT,
  PG_REBUILD_TENSOR,
  PG_STORAGE_FLOAT,
  PG_STORAGE_HALF,
  PG_STORAGE_BFLOAT16,
  PG_STORAGE_LONG,
  PG_STORAGE_INT
} pv_global;

static const struct {
  const char *module, *name;
  pv_global id;
} tb_allowed_globals[] = {
    {"collections", "OrderedDict", PG_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", PG_REBUILD_TENSOR},
    {"torch", "FloatStorage", PG_STORAGE_FLOAT},
    {"torch", "HalfStorage", PG_STORAGE_HALF},
    {"torch", "BFloat16Storage", PG_STORAGE_BFLOAT16},
    {"torch", "LongStorage", PG_STORAGE_LONG},
    {"torch", "IntStorage", PG_STORAGE_INT},
};

typedef struct pv pv;
struct pv {
  pv_kind kind;
  int64_t i;               /* INT, BOOL; GLOBAL: its pv_global */
  const uint8_t *s;        /* STR: bytes in the pickle (not NUL-terminated) */
  size_t len;              /* STR length */
  pv **items;              /* TUPLE, LIST; DICT: key, value, key, value... */
  size_t n, cap;
  tf_dtype dtype;          /* STORAGE, TENSOR */
  const uint8_t *bytes;    /* STORAGE: its entry; TENSOR: first element */
  int64_t numel;           /* STORAGE, TENSOR */
  int ndim;                /* TENSOR */
  int64_t shape[TF_MAX_DIMS];
};

typedef struct {
  tb_zip *zip;
  const char *prefix; /* "archive/" */
  const char *entry;  /* "archive/data.pkl", for messages */
  const uint8_t *p, *end, *start;
  pv **all;           /* every value made, freed at the end */
  size_t n_all, cap_all;
  pv **stack;
  size_t depth, cap_stack;
  size_t *marks;
  size_t n_marks, cap_marks;
  pv **memo;
  size_t cap_memo, memo_count;
} tb_pickle;

static int tb_fail(tb_pickle *k, const char *what) {
  return err_set(ERR_FORMAT, "%s: %s: %s (at byte %zu)", k->zip->path, k->entry, what, (size_t)(k->p - k->start));
}

static pv *tb_new(tb_pickle *k, pv_kind kind) {
  if (grow(&k->all, &k->cap_all, k->n_all + 1, sizeof *k->all)) return NULL;
  pv *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->kind = kind;
  k->all[k->n_all++] = v;
  return v;
}

static int tb_push(tb_pickle *k, pv *v) {
  if (!v) return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
  if (k->depth >= TB_MAX_STACK) return tb_fail(k, "pickle stack too deep");
  if (grow(&k->stack, &k->cap_stack, k->depth + 1, sizeof *k->stack))
    return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
  k->stack[k->depth++] = v;
  return 0;
}

static pv *tb_pop(tb_pickle *k) {
  size_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
  if (k->depth <= floor) return NULL;
  return k->stack[--k->depth];
}

static pv *tb_top(tb_pickle *k) {
  size_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
  return k->depth > floor ? k->stack[k->depth - 1] : NULL;
}

static int tb_append(tb_pickle *k, pv *container, pv *item) {
  if (grow(&container->items, &container->cap, container->n + 1, sizeof *container->items))
    return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
  container->items[container->n++] = item;
  return 0;
}

static int tb_need(tb_pickle *k, size_t n) { return (size_t)(k->end - k->p) >= n; }

/* Copies s (len bytes) into out as printable ASCII for messages. */
static void tb_printable(const uint8_t *s, size_t len, char *out, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; i < len && j + 1 < cap; i++) out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
  out[j] = '\0';
}

static int tb_global(tb_pickle *k, const uint8_t *module, size_t module_len, const uint8_t *name, size_t name_len) {
  for (size_t i = 0; i < sizeof tb_allowed_globals / sizeof tb_allowed_globals[0]; i++) {
    if (strlen(tb_allowed_globals[i].module) == module_len && strlen(tb_allowed_globals[i].name) == name_len &&
        memcmp(tb_allowed_globals[i].module, module, module_len) == 0 &&
        memcmp(tb_allowed_globals[i].name, name, name_len) == 0) {
      pv *v = tb_new(k, PV_GLOBAL);
      if (v) v->i = tb_allowed_globals[i].id;
      return tb_push(k, v);
    }
  }
  char m[80], n[80], what[300];
  tb_printable(module, module_len, m, sizeof m);
  tb_printable(name, name_len, n, sizeof n);
  snprintf(what, sizeof what, "refused global '%s.%s' (only a plain state dict of tensors is accepted)", m, n);
  return tb_fail(k, what);
}

static int tb_is_str(const pv *v, const char *s) {
  return v && v->kind == PV_STR && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

/* BINPERSID: ('storage', StorageType, key, location, numel) -> the storage's zip entry. */
static int tb_persistent(tb_pickle *k, pv *pid) {
  if (!pid || pid->kind != PV_TUPLE || pid->n != 5 || !tb_is_str(pid->items[0], "storage") ||
      pid->items[1]->kind != PV_GLOBAL || pid->items[1]->i < PG_STORAGE_FLOAT || pid->items[2]->kind != PV_STR ||
      pid->items[4]->kind != PV_INT)
    return tb_fail(k, "persistent id is not ('storage', <torch storage type>, key, location, numel)");
  tf_dtype dtype = TF_OTHER;
  switch ((pv_global)pid->items[1]->i) {
    case PG_STORAGE_FLOAT: dtype = TF_F32; break;
    case PG_STORAGE_HALF: dtype = TF_F16; break;
    case PG_STORAGE_BFLOAT16: dtype = TF_BF16; break;
    case PG_STORAGE_LONG: dtype = TF_I64; break;
    case PG_STORAGE_INT: dtype = TF_I32; break;
    default: break;
  }
  const pv *key = pid->items[2];
  int64_t numel = pid->items[4]->i;
  char key_text[64], entry_name[128];
  tb_printable(key->s, key->len, key_text, sizeof key_text);
  snprintf(entry_name, sizeof entry_name, "data/%s", key_text);
  if (key->len >= sizeof key_text || memchr(key->s, '/', key->len)) return tb_fail(k, "storage key is not a plain name");
  tb_entry *e = (tb_entry *)tb_zip_find(k->zip, k->prefix, entry_name);
  if (!e) {
    char what[600];
    snprintf(what, sizeof what, "storage '%s' has no entry %s%s in the archive", key_text, k->prefix, entry_name);
    return tb_fail(k, what);
  }
  int rc = tb_zip_read(k->zip, e);
  if (rc) return rc;
  size_t elem = tf_dtype_size(dtype);
  if (numel < 0 || (uint64_t)numel > UINT64_MAX / elem || (uint64_t)numel * elem != e->usize) {
    char what[240];
    snprintf(what, sizeof what, "storage '%s' claims %lld elements of %zu bytes but its entry holds %llu bytes", key_text,
             (long long)numel, elem, (unsigned long long)e->usize);
    return tb_fail(k, what);
  }
  pv *v = tb_new(k, PV_STORAGE);
  if (v) {
    v->dtype = dtype;
    v->bytes = e->bytes;
    v->numel = numel;
  }
  return tb_push(k, v);
}

/* REDUCE of _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]). */
static int tb_rebuild_tensor(tb_pickle *k, const pv *args) {
  if (args->n != 6 && args->n != 7) return tb_fail(k, "_rebuild_tensor_v2 needs 6 or 7 arguments");
  const pv *storage = args->items[0], *offset = args->items[1], *size = args->items[2], *stride = args->items[3];
  const pv *hooks = args->items[5];
  if (storage->kind != PV_STORAGE || offset->kind != PV_INT || size->kind != PV_TUPLE || stride->kind != PV_TUPLE ||
      args->items[4]->kind != PV_BOOL || hooks->kind != PV_DICT || hooks->n != 0)
    return tb_fail(k, "_rebuild_tensor_v2 arguments are not (storage, int, tuple, tuple, bool, empty OrderedDict)");
  if (size->n > TF_MAX_DIMS || stride->n != size->n) return tb_fail(k, "tensor size and stride disagree or exceed 8 dims");
  uint64_t numel = 1, expected_stride = 1;
  int contiguous = 1, overflow = 0;
  for (size_t d = size->n; d-- > 0;) {
    if (size->items[d]->kind != PV_INT || stride->items[d]->kind != PV_INT || size->items[d]->i < 0)
      return tb_fail(k, "tensor size or stride is not a non-negative integer");
    uint64_t dim = (uint64_t)size->items[d]->i;
    if (dim != 1 && stride->items[d]->i != (int64_t)expected_stride) contiguous = 0;
    if (dim && expected_stride > UINT64_MAX / dim) overflow = 1;
    expected_stride *= dim;
    if (dim && numel > UINT64_MAX / dim) overflow = 1;
    numel *= dim;
  }
  if (overflow) return tb_fail(k, "tensor size overflows");
  if (numel && !contiguous) return tb_fail(k, "tensor is not contiguous in its storage (strides do not match its size)");
  if (offset->i < 0 || (uint64_t)offset->i > (uint64_t)storage->numel || numel > (uint64_t)storage->numel - (uint64_t)offset->i) {
    char what[200];
    snprintf(what, sizeof what, "tensor of %llu elements at offset %lld lies outside its storage of %lld elements",
             (unsigned long long)numel, (long long)offset->i, (long long)storage->numel);
    return tb_fail(k, what);
  }
  pv *v = tb_new(k, PV_TENSOR);
  if (v) {
    v->dtype = storage->dtype;
    v->bytes = storage->bytes + (size_t)offset->i * tf_dtype_size(storage->dtype);
    v->numel = (int64_t)numel;
    v->ndim = (int)size->n;
    for (size_t d = 0; d < size->n; d++) v->shape[d] = size->items[d]->i;
  }
  return tb_push(k, v);
}

/* Runs the pickle; *result gets the value STOP returned. */
static int tb_unpickle(tb_pickle *k, pv **result) {
  int rc = 0;
  while (k->p < k->end) {
    uint8_t op = *k->p;
    const uint8_t *at = k->p++;
    pv *v = NULL, *a = NULL, *b = NULL;
    uint64_t u = 0;
    switch (op) {
      case 0x80: /* PROTO */
        if (!tb_need(k, 1) || *k->p < 2 || *k->p > 5) return tb_fail(k, "unsupported pickle protocol");
        k->p++;
        break;
      case 0x95: /* FRAME: a length hint only */
        if (!tb_need(k, 8)) return tb_fail(k, "truncated pickle");
        k->p += 8;
        break;
      case '}': rc = tb_push(k, tb_new(k, PV_DICT)); break;
      case ']': rc = tb_push(k, tb_new(k, PV_LIST)); break;
      case ')': rc = tb_push(k, tb_new(k, PV_TUPLE)); break;
      case 'N': rc = tb_push(k, tb_new(k, PV_NONE)); break;
      case 0x88: /* NEWTRUE */
      case 0x89: /* NEWFALSE */
        v = tb_new(k, PV_BOOL);
        if (v) v->i = op == 0x88;
        rc = tb_push(k, v);
        break;
      case '(': /* MARK */
        if (grow(&k->marks, &k->cap_marks, k->n_marks + 1, sizeof *k->marks))
          return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
        if (k->n_marks >= TB_MAX_STACK) return tb_fail(k, "too many marks");
        k->marks[k->n_marks++] = k->depth;
        break;
      case 'X':    /* BINUNICODE */
      case 0x8c:   /* SHORT_BINUNICODE */
      case 0x8d: { /* BINUNICODE8 */
        size_t width = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
        if (!tb_need(k, width)) return tb_fail(k, "truncated pickle");
        u = width == 1 ? k->p[0] : width == 4 ? tb_u32(k->p) : tb_u64(k->p);
        k->p += width;
        if ((uint64_t)(k->end - k->p) < u) return tb_fail(k, "string runs past the end of the pickle");
        v = tb_new(k, PV_STR);
        if (v) {
          v->s = k->p;
          v->len = (size_t)u;
        }
        k->p += u;
        rc = tb_push(k, v);
        break;
      }
      case 'J': /* BININT */
      case 'K': /* BININT1 */
      case 'M': { /* BININT2 */
        size_t width = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        if (!tb_need(k, width)) return tb_fail(k, "truncated pickle");
        v = tb_new(k, PV_INT);
        if (v) v->i = width == 4 ? (int64_t)(int32_t)tb_u32(k->p) : width == 1 ? k->p[0] : tb_u16(k->p);
        k->p += width;
        rc = tb_push(k, v);
        break;
      }
      case 0x8a: { /* LONG1: little-endian two's complement, at most 8 bytes here */
        if (!tb_need(k, 1)) return tb_fail(k, "truncated pickle");
        size_t n = *k->p++;
        if (n > 8) return tb_fail(k, "integer wider than 64 bits");
        if (!tb_need(k, n)) return tb_fail(k, "truncated pickle");
        for (size_t i = 0; i < n; i++) u |= (uint64_t)k->p[i] << (8 * i);
        if (n && n < 8 && (k->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
        k->p += n;
        v = tb_new(k, PV_INT);
        if (v) memcpy(&v->i, &u, sizeof u);
        rc = tb_push(k, v);
        break;
      }
      case 'q': /* BINPUT */
      case 'r': /* LONG_BINPUT */
      case 0x94: { /* MEMOIZE */
        size_t width = op == 'q' ? 1 : op == 'r' ? 4 : 0;
        if (!tb_need(k, width)) return tb_fail(k, "truncated pickle");
        u = width == 1 ? k->p[0] : width == 4 ? tb_u32(k->p) : k->memo_count;
        k->p += width;
        v = tb_top(k);
        if (!v) return tb_fail(k, "memo store from an empty stack");
        if (u >= TB_MAX_MEMO) return tb_fail(k, "memo index too large");
        size_t old_cap = k->cap_memo;
        if (grow(&k->memo, &k->cap_memo, (size_t)u + 1, sizeof *k->memo))
          return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
        if (k->cap_memo > old_cap) memset(k->memo + old_cap, 0, (k->cap_memo - old_cap) * sizeof *k->memo);
        if (!k->memo[u]) k->memo_count++;
        k->memo[u] = v;
        break;
      }
      case 'h': /* BINGET */
      case 'j': { /* LONG_BINGET */
        size_t width = op == 'h' ? 1 : 4;
        if (!tb_need(k, width)) return tb_fail(k, "truncated pickle");
        u = width == 1 ? k->p[0] : tb_u32(k->p);
        k->p += width;
        if (u >= k->cap_memo || !k->memo[u]) return tb_fail(k, "memo get of an unset index");
        rc = tb_push(k, k->memo[u]);
        break;
      }
      case 't': /* TUPLE */
      case 'l': { /* LIST */
        if (!k->n_marks) return tb_fail(k, "TUPLE/LIST without MARK");
        size_t from = k->marks[--k->n_marks];
        v = tb_new(k, op == 't' ? PV_TUPLE : PV_LIST);
        if (!v) return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
        for (size_t i = from; i < k->depth; i++)
          if ((rc = tb_append(k, v, k->stack[i]))) return rc;
        k->depth = from;
        rc = tb_push(k, v);
        break;
      }
      case 0x85: /* TUPLE1 */
      case 0x86: /* TUPLE2 */
      case 0x87: { /* TUPLE3 */
        size_t n = (size_t)(op - 0x84);
        size_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
        if (k->depth - floor < n) return tb_fail(k, "TUPLEn on a short stack");
        v = tb_new(k, PV_TUPLE);
        if (!v) return err_set(ERR_NOMEM, "%s: out of memory unpickling", k->zip->path);
        for (size_t i = k->depth - n; i < k->depth; i++)
          if ((rc = tb_append(k, v, k->stack[i]))) return rc;
        k->depth -= n;
        rc = tb_push(k, v);
        break;
      }
      case 's': /* SETITEM */
      case 'u': /* SETITEMS */
      case 'a': /* APPEND */
      case 'e': { /* APPENDS */
        size_t from;
        if (op == 's' || op == 'a') {
          size_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
          size_t n = op == 's' ? 2 : 1;
          if (k->depth - floor < n + 1) return tb_fail(k, "SETITEM/APPEND on a short stack");
          from = k->depth - n;
        } else {
          if (!k->n_marks) return tb_fail(k, "SETITEMS/APPENDS without MARK");
          from = k->marks[--k->n_marks];
          size_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
          if (from <= floor) return tb_fail(k, "SETITEMS/APPENDS with nothing to add to");
        }
        pv *target = k->stack[from - 1];
        int is_dict = op == 's' || op == 'u';
        if (target->kind != (is_dict ? PV_DICT : PV_LIST)) return tb_fail(k, is_dict ? "SETITEM(S) on a non-dict" : "APPEND(S) on a non-list");
        if (is_dict && (k->depth - from) % 2) return tb_fail(k, "SETITEMS with an odd number of items");
        for (size_t i = from; i < k->depth; i += is_dict ? 2 : 1) {
          if (is_dict && k->stack[i]->kind == PV_STR) { /* a repeated key replaces, as in Python */
            size_t j = 0;
            for (; j < target->n; j += 2)
              if (target->items[j]->kind == PV_STR && target->items[j]->len == k->stack[i]->len &&
                  memcmp(target->items[j]->s, k->stack[i]->s, k->stack[i]->len) == 0)
                break;
            if (j < target->n) {
              target->items[j + 1] = k->stack[i + 1];
              continue;
            }
          }
          if ((rc = tb_append(k, target, k->stack[i]))) return rc;
          if (is_dict && (rc = tb_append(k, target, k->stack[i + 1]))) return rc;
        }
        k->depth = from;
        break;
      }
      case 'c': { /* GLOBAL "module\nname\n" */
        const uint8_t *module = k->p;
        const uint8_t *nl1 = memchr(module, '\n', (size_t)(k->end - module));
        if (!nl1) return tb_fail(k, "truncated GLOBAL");
        const uint8_t *name = nl1 + 1;
        const uint8_t *nl2 = memchr(name, '\n', (size_t)(k->end - name));
        if (!nl2) return tb_fail(k, "truncated GLOBAL");
        k->p = nl2 + 1;
        rc = tb_global(k, module, (size_t)(nl1 - module), name, (size_t)(nl2 - name));
        break;
      }
      case 0x93: /* STACK_GLOBAL */
        b = tb_pop(k);
        a = tb_pop(k);
        if (!a || !b || a->kind != PV_STR || b->kind != PV_STR) return tb_fail(k, "STACK_GLOBAL needs two strings");
        rc = tb_global(k, a->s, a->len, b->s, b->len);
        break;
      case 'Q': /* BINPERSID */
        rc = tb_persistent(k, tb_pop(k));
        break;
      case 'R': /* REDUCE: the only calls are the hard-wired constructors */
        b = tb_pop(k);
        a = tb_pop(k);
        if (!a || !b || b->kind != PV_TUPLE || a->kind != PV_GLOBAL) return tb_fail(k, "REDUCE of something that is not an allowed global");
        if (a->i == PG_ORDERED_DICT) {
          if (b->n != 0) return tb_fail(k, "OrderedDict called with arguments");
          rc = tb_push(k, tb_new(k, PV_DICT));
        } else if (a->i == PG_REBUILD_TENSOR) {
          rc = tb_rebuild_tensor(k, b);
        } else {
          return tb_fail(k, "refused call of a torch storage type");
        }
        break;
      case 'b': /* BUILD: only OrderedDict state (its _metadata), which is ignored */
        b = tb_pop(k);
        a = tb_top(k);
        if (!a || !b || a->kind != PV_DICT || (b->kind != PV_DICT && b->kind != PV_NONE))
          return tb_fail(k, "BUILD on something other than an OrderedDict");
        break;
      case '.': /* STOP */
        v = tb_pop(k);
        if (!v || k->depth != 0 || k->n_marks != 0) return tb_fail(k, "STOP with an unbalanced stack");
        *result = v;
        return 0;
      default: {
        char what[96];
        k->p = at;
        snprintf(what, sizeof what, "refused pickle opcode 0x%02x ('%c')", op, (op >= 0x20 && op < 0x7f) ? op : '?');
        return tb_fail(k, what);
      }
    }
    if (rc) return rc;
  }
  return tb_fail(k, "pickle ends without STOP (truncated)");
}

/* ------------------------------------------------------------- archive ---- */

int tb_parse(const char *path, const uint8_t *data, size_t size, tb_file **out) {
  int rc = 0;
  tb_zip z = {path, data, size, NULL, 0, NULL};
  tb_pickle k;
  memset(&k, 0, sizeof k);
  char prefix[256] = "", entry_name[300] = "";
  *out = NULL;
  z.out = calloc(1, sizeof *z.out);
  if (!z.out) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  if ((rc = tb_zip_directory(&z))) goto fail;

  /* The archive's one PREFIX/data.pkl names the prefix of every other record. */
  tb_entry *pkl = NULL;
  for (size_t i = 0; i < z.n_entries; i++) {
    tb_entry *e = &z.entries[i];
    if (e->name_len >= 8 && memcmp(e->name + e->name_len - 8, "data.pkl", 8) == 0 &&
        (e->name_len == 8 || e->name[e->name_len - 9] == '/') && e->name_len - 8 < sizeof prefix) {
      if (pkl) {
        rc = err_set(ERR_FORMAT, "%s: torch archive holds more than one data.pkl", path);
        goto fail;
      }
      pkl = e;
    }
  }
  if (!pkl) {
    rc = err_set(ERR_FORMAT, "%s: zip archive without a data.pkl: not a torch checkpoint", path);
    goto fail;
  }
  memcpy(prefix, pkl->name, pkl->name_len - 8);
  prefix[pkl->name_len - 8] = '\0';
  if (memchr(prefix, '\0', pkl->name_len - 8)) {
    rc = err_set(ERR_FORMAT, "%s: zip entry name with a NUL byte", path);
    goto fail;
  }
  snprintf(entry_name, sizeof entry_name, "%sdata.pkl", prefix);
  tb_entry *order = (tb_entry *)tb_zip_find(&z, prefix, "byteorder");
  if (order) {
    if ((rc = tb_zip_read(&z, order))) goto fail;
    if (!(order->usize == 6 && memcmp(order->bytes, "little", 6) == 0)) {
      rc = err_set(ERR_FORMAT, "%s: torch archive is not little-endian (%sbyteorder)", path, prefix);
      goto fail;
    }
  }
  if ((rc = tb_zip_read(&z, pkl))) goto fail;

  k.zip = &z;
  k.prefix = prefix;
  k.entry = entry_name;
  k.start = k.p = pkl->bytes;
  k.end = pkl->bytes + pkl->usize;
  pv *result = NULL;
  if ((rc = tb_unpickle(&k, &result))) goto fail;
  if (result->kind != PV_DICT) {
    rc = err_set(ERR_FORMAT, "%s: %s: the pickle is not a state dict (a dict of tensors)", path, entry_name);
    goto fail;
  }
  tb_file *t = z.out;
  t->refs = calloc(result->n / 2 + 1, sizeof *t->refs);
  if (!t->refs) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  for (size_t i = 0; i < result->n; i += 2) {
    const pv *key = result->items[i], *value = result->items[i + 1];
    if (key->kind != PV_STR || memchr(key->s, '\0', key->len)) {
      rc = err_set(ERR_FORMAT, "%s: %s: state dict key %zu is not a string", path, entry_name, i / 2);
      goto fail;
    }
    char *name = malloc(key->len + 1);
    if (!name) {
      rc = err_set(ERR_NOMEM, "%s: out of memory", path);
      goto fail;
    }
    memcpy(name, key->s, key->len);
    name[key->len] = '\0';
    tensor_ref *r = &t->refs[t->n++];
    r->name = name;
    if (value->kind != PV_TENSOR) {
      rc = err_set(ERR_FORMAT, "%s: %s: state dict entry '%.200s' is not a tensor", path, entry_name, name);
      goto fail;
    }
    r->dtype = value->dtype;
    r->ndim = value->ndim;
    memcpy(r->shape, value->shape, sizeof r->shape);
    r->data = value->bytes;
    r->nbytes = (size_t)value->numel * tf_dtype_size(value->dtype);
  }
  *out = z.out;
  z.out = NULL;

fail:
  for (size_t i = 0; i < k.n_all; i++) {
    free(k.all[i]->items);
    free(k.all[i]);
  }
  free(k.all);
  free(k.stack);
  free(k.marks);
  free(k.memo);
  free(z.entries);
  tb_free(z.out);
  return rc;
}

size_t tb_count(const tb_file *t) { return t ? t->n : 0; }

const tensor_ref *tb_at(const tb_file *t, size_t i) { return (t && i < t->n) ? &t->refs[i] : NULL; }

void tb_free(tb_file *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) free((char *)t->refs[i].name);
  free(t->refs);
  for (size_t i = 0; i < t->n_buffers; i++) free(t->buffers[i]);
  free(t->buffers);
  free(t);
}
