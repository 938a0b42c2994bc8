/* export_jsonl: Anserini JsonVectorCollection lines (see export_jsonl.h). The vocabulary is
 * escaped once into an arena, so writing a document is copying pre-escaped keys and printing
 * integers into one output buffer. */
#include "export_jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "err.h"

#define JSONL_BUFFER (1 << 20)

struct jsonl_writer {
  char *path;
  gzFile file;
  char *buffer; /* (JSONL_BUFFER) */
  size_t used;
  int vocab_size;
  char *key_arena;     /* every term as `"escaped": `, back to back */
  size_t *key_offset;  /* (vocab_size + 1) */
  char *id_scratch;    /* escaped doc id */
  size_t id_scratch_cap;
  int64_t docs, empty_docs;
};

int jsonl_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
      if ((p[i] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    p += n;
  }
  return 1;
}

size_t jsonl_escape(const char *s, char *out) {
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned c = *p;
    switch (c) {
      case '"': *o++ = '\\'; *o++ = '"'; break;
      case '\\': *o++ = '\\'; *o++ = '\\'; break;
      case '\b': *o++ = '\\'; *o++ = 'b'; break;
      case '\f': *o++ = '\\'; *o++ = 'f'; break;
      case '\n': *o++ = '\\'; *o++ = 'n'; break;
      case '\r': *o++ = '\\'; *o++ = 'r'; break;
      case '\t': *o++ = '\\'; *o++ = 't'; break;
      default:
        if (c < 0x20) {
          memcpy(o, "\\u00", 4);
          o[4] = hex[c >> 4];
          o[5] = hex[c & 15];
          o += 6;
        } else {
          *o++ = (char)c;
        }
    }
  }
  *o++ = '"';
  *o = '\0';
  return (size_t)(o - out);
}

static int jsonl_flush(jsonl_writer *w) {
  if (w->used == 0) return 0;
  if (gzwrite(w->file, w->buffer, (unsigned)w->used) != (int)w->used) {
    int gz_errno = 0;
    const char *why = gzerror(w->file, &gz_errno);
    return err_set(ERR_IO, "%s: write failed: %s", w->path,
                   gz_errno == Z_ERRNO ? strerror(errno) : why);
  }
  w->used = 0;
  return 0;
}

/* Appends n bytes, flushing first if they do not fit (and writing through if n is huge). */
static int jsonl_put(jsonl_writer *w, const char *s, size_t n) {
  int rc;
  if (w->used + n > JSONL_BUFFER && (rc = jsonl_flush(w))) return rc;
  if (n > JSONL_BUFFER) {
    if (gzwrite(w->file, s, (unsigned)n) != (int)n)
      return err_set(ERR_IO, "%s: write failed", w->path);
    return 0;
  }
  memcpy(w->buffer + w->used, s, n);
  w->used += n;
  return 0;
}

int jsonl_writer_open(const char *path, int gzip, const char *const *terms, int vocab_size,
                      jsonl_writer **out) {
  int rc = 0;
  *out = NULL;
  jsonl_writer *w = calloc(1, sizeof *w);
  if (!w) return err_set(ERR_NOMEM, "out of memory");
  w->vocab_size = vocab_size;
  w->path = malloc(strlen(path) + 1);
  w->buffer = malloc(JSONL_BUFFER);
  w->key_offset = malloc(((size_t)vocab_size + 1) * sizeof *w->key_offset);
  size_t arena = 0;
  for (int v = 0; v < vocab_size; v++) arena += 6 * strlen(terms[v]) + 4;
  w->key_arena = malloc(arena + 1);
  if (!w->path || !w->buffer || !w->key_offset || !w->key_arena) {
    rc = err_set(ERR_NOMEM, "out of memory for the JSONL writer");
    goto fail;
  }
  strcpy(w->path, path);
  size_t at = 0;
  for (int v = 0; v < vocab_size; v++) {
    if (!jsonl_utf8_valid(terms[v], strlen(terms[v]))) {
      rc = err_set(ERR_FORMAT, "vocabulary term %d is not valid UTF-8", v);
      goto fail;
    }
    w->key_offset[v] = at;
    at += jsonl_escape(terms[v], w->key_arena + at);
    memcpy(w->key_arena + at, ": ", 2);
    at += 2;
  }
  w->key_offset[vocab_size] = at;
  w->file = gzopen(path, gzip ? "wb1" : "wbT");
  if (!w->file) {
    rc = err_set(ERR_IO, "%s: %s", path, errno ? strerror(errno) : "cannot open for writing");
    goto fail;
  }
  gzbuffer(w->file, 1 << 17);
  *out = w;
  return 0;
fail:
  jsonl_writer_abort(w);
  return rc;
}

/* Writes the decimal digits of v (> 0 or any int32) into out, returns the length. */
static size_t jsonl_format_int(int32_t v, char *out) {
  char digits[12];
  size_t n = 0;
  int64_t x = v;
  int negative = x < 0;
  if (negative) x = -x;
  do {
    digits[n++] = (char)('0' + x % 10);
    x /= 10;
  } while (x);
  size_t len = 0;
  if (negative) out[len++] = '-';
  while (n) out[len++] = digits[--n];
  return len;
}

int jsonl_write_doc(jsonl_writer *w, const char *doc_id, const int32_t *vocab_ids,
                    const int32_t *weights, int64_t n) {
  int rc;
  size_t id_len = strlen(doc_id);
  if (!jsonl_utf8_valid(doc_id, id_len))
    return err_set(ERR_FORMAT, "document %lld: id is not valid UTF-8", (long long)w->docs);
  if (6 * id_len + 3 > w->id_scratch_cap) {
    size_t cap = 6 * id_len + 64;
    char *p = realloc(w->id_scratch, cap);
    if (!p) return err_set(ERR_NOMEM, "out of memory");
    w->id_scratch = p;
    w->id_scratch_cap = cap;
  }
  size_t escaped = jsonl_escape(doc_id, w->id_scratch);
  if ((rc = jsonl_put(w, "{\"id\": ", 7)) || (rc = jsonl_put(w, w->id_scratch, escaped)) ||
      (rc = jsonl_put(w, ", \"contents\": \"\", \"vector\": {", 29)))
    return rc;
  if (n == 0) {
    static const char empty[] = "\"" JSONL_EMPTY_TERM "\": 1";
    if ((rc = jsonl_put(w, empty, sizeof empty - 1))) return rc;
    w->empty_docs++;
  }
  for (int64_t i = 0; i < n; i++) {
    int32_t v = vocab_ids[i];
    SPX_ASSERT(v >= 0 && v < w->vocab_size);
    const char *key = w->key_arena + w->key_offset[v];
    size_t key_len = w->key_offset[v + 1] - w->key_offset[v];
    if (w->used + key_len + 16 > JSONL_BUFFER && (rc = jsonl_flush(w))) return rc;
    if (key_len + 16 > JSONL_BUFFER) { /* a giant term: not on the fast path */
      if ((rc = jsonl_put(w, ", ", i ? 2 : 0)) || (rc = jsonl_put(w, key, key_len))) return rc;
    } else {
      if (i) {
        w->buffer[w->used++] = ',';
        w->buffer[w->used++] = ' ';
      }
      memcpy(w->buffer + w->used, key, key_len);
      w->used += key_len;
    }
    if (w->used + 16 > JSONL_BUFFER && (rc = jsonl_flush(w))) return rc;
    w->used += jsonl_format_int(weights[i], w->buffer + w->used);
  }
  if ((rc = jsonl_put(w, "}}\n", 3))) return rc;
  w->docs++;
  return 0;
}

int64_t jsonl_writer_docs(const jsonl_writer *w) { return w->docs; }
int64_t jsonl_writer_empty_docs(const jsonl_writer *w) { return w->empty_docs; }

int jsonl_writer_close(jsonl_writer *w) {
  int rc = jsonl_flush(w);
  int closed = gzclose(w->file);
  w->file = NULL;
  if (!rc && closed != Z_OK)
    rc = err_set(ERR_IO, "%s: close failed: %s", w->path,
                 closed == Z_ERRNO ? strerror(errno) : "zlib error");
  jsonl_writer_abort(w);
  return rc;
}

void jsonl_writer_abort(jsonl_writer *w) {
  if (!w) return;
  if (w->file) gzclose(w->file);
  free(w->path);
  free(w->buffer);
  free(w->key_offset);
  free(w->key_arena);
  free(w->id_scratch);
  free(w);
}
