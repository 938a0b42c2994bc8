/* export_jsonl: Anserini JsonVectorCollection lines (see export_jsonl.h). The vocabulary is
 * escaped once into an arena, so writing a document is copying pre-escaped keys and printing
 * integers into one output buffer. */
#include "export_jsonl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"
#include "gzsink.h"
#include "utf8.h"

struct jsonl_writer {
  gzsink sink; /* documents are formatted straight into sink.buffer */
  int vocab_size;
  char *key_arena;     /* every term as `"escaped": `, back to back */
  size_t *key_offset;  /* (vocab_size + 1) */
  char *id_scratch;    /* escaped doc id */
  size_t id_scratch_cap;
  int64_t docs, empty_docs;
};

size_t jsonl_escape(const char *s, jsonl_escape_style style, char *out) {
  static const char hex[] = "0123456789abcdef";
  const int dumps = style == JSONL_ESCAPE_DUMPS;
  char *o = out;
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned c = *p;
    char short_form = 0; /* the letter after the backslash, or 0 */
    switch (c) {
      case '"': short_form = '"'; break;
      case '\\': short_form = '\\'; break;
      case '\n': short_form = 'n'; break;
      case '\t': short_form = 't'; break;
      case '\b': short_form = dumps ? 'b' : 0; break;
      case '\f': short_form = dumps ? 'f' : 0; break;
      case '\r': short_form = dumps ? 'r' : 0; break;
      default: break;
    }
    if (short_form) {
      *o++ = '\\';
      *o++ = short_form;
    } else if (c < 0x20 || (c == 0x7f && !dumps)) {
      memcpy(o, "\\u00", 4);
      o[4] = hex[c >> 4];
      o[5] = hex[c & 15];
      o += 6;
    } else {
      *o++ = (char)c;
    }
  }
  *o++ = '"';
  *o = '\0';
  return (size_t)(o - out);
}

int jsonl_writer_open(const char *path, int gzip, const char *const *terms, int vocab_size,
                      jsonl_writer **out) {
  int rc = 0;
  *out = NULL;
  jsonl_writer *w = calloc(1, sizeof *w);
  if (!w) return err_set(ERR_NOMEM, "out of memory");
  w->vocab_size = vocab_size;
  w->key_offset = malloc(((size_t)vocab_size + 1) * sizeof *w->key_offset);
  size_t arena = 0;
  for (int v = 0; v < vocab_size; v++) arena += JSONL_ESCAPED_MAX(strlen(terms[v])) + 1;
  w->key_arena = malloc(arena + 1);
  if (!w->key_offset || !w->key_arena) {
    rc = err_set(ERR_NOMEM, "out of memory for the JSONL writer");
    goto fail;
  }
  size_t at = 0;
  for (int v = 0; v < vocab_size; v++) {
    if (!utf8_valid(terms[v], strlen(terms[v]))) {
      rc = err_set(ERR_FORMAT, "vocabulary term %d is not valid UTF-8", v);
      goto fail;
    }
    w->key_offset[v] = at;
    at += jsonl_escape(terms[v], JSONL_ESCAPE_DUMPS, w->key_arena + at);
    memcpy(w->key_arena + at, ": ", 2);
    at += 2;
  }
  w->key_offset[vocab_size] = at;
  if ((rc = gzsink_open(&w->sink, path, gzip))) {
    if (rc == ERR_NOMEM) rc = err_set(ERR_NOMEM, "out of memory for the JSONL writer");
    goto fail;
  }
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

size_t jsonl_format_float(float v, char *out) {
  /* The fewest significant digits that read back (strtof) as the same float32: what numpy's
   * repr of a float32 prints, 9 at most. */
  for (int digits = 6; digits < 9; digits++) {
    int len = snprintf(out, JSONL_FLOAT_MAX, "%.*g", digits, (double)v);
    if (strtof(out, NULL) == v) return (size_t)len;
  }
  return (size_t)snprintf(out, JSONL_FLOAT_MAX, "%.9g", (double)v);
}

/* One line; exactly one of weights (integers) and float_weights is not NULL. */
static int jsonl_write_any(jsonl_writer *w, const char *doc_id, const int32_t *vocab_ids,
                           const int32_t *weights, const float *float_weights, int64_t n) {
  int rc;
  size_t id_len = strlen(doc_id);
  if (!utf8_valid(doc_id, id_len))
    return err_set(ERR_FORMAT, "document %lld: id is not valid UTF-8", (long long)w->docs);
  if (grow(&w->id_scratch, &w->id_scratch_cap, JSONL_ESCAPED_MAX(id_len), 1))
    return err_set(ERR_NOMEM, "out of memory");
  size_t escaped = jsonl_escape(doc_id, JSONL_ESCAPE_DUMPS, w->id_scratch);
  if ((rc = gzsink_write(&w->sink, "{\"id\": ", 7)) ||
      (rc = gzsink_write(&w->sink, w->id_scratch, escaped)) ||
      (rc = gzsink_write(&w->sink, ", \"contents\": \"\", \"vector\": {", 29)))
    return rc;
  if (n == 0 && weights) {
    static const char empty[] = "\"" JSONL_EMPTY_TERM "\": 1";
    if ((rc = gzsink_write(&w->sink, empty, sizeof empty - 1))) return rc;
  }
  if (n == 0) w->empty_docs++;
  gzsink *out = &w->sink;
  for (int64_t i = 0; i < n; i++) {
    int32_t v = vocab_ids[i];
    SPX_ASSERT(v >= 0 && v < w->vocab_size);
    const char *key = w->key_arena + w->key_offset[v];
    size_t key_len = w->key_offset[v + 1] - w->key_offset[v];
    if (out->used + key_len + JSONL_FLOAT_MAX > out->cap && (rc = gzsink_flush(out))) return rc;
    if (key_len + JSONL_FLOAT_MAX > out->cap) { /* a giant term: not on the fast path */
      if ((rc = gzsink_write(out, ", ", i ? 2 : 0)) || (rc = gzsink_write(out, key, key_len)))
        return rc;
    } else {
      if (i) {
        out->buffer[out->used++] = ',';
        out->buffer[out->used++] = ' ';
      }
      memcpy(out->buffer + out->used, key, key_len);
      out->used += key_len;
    }
    if ((rc = gzsink_reserve(out, JSONL_FLOAT_MAX))) return rc;
    char *at = (char *)out->buffer + out->used;
    out->used +=
        weights ? jsonl_format_int(weights[i], at) : jsonl_format_float(float_weights[i], at);
  }
  if ((rc = gzsink_write(&w->sink, "}}\n", 3))) return rc;
  w->docs++;
  return 0;
}

int jsonl_write_doc(jsonl_writer *w, const char *doc_id, const int32_t *vocab_ids,
                    const int32_t *weights, int64_t n) {
  return jsonl_write_any(w, doc_id, vocab_ids, weights, NULL, n);
}

int jsonl_write_doc_float(jsonl_writer *w, const char *doc_id, const int32_t *vocab_ids,
                          const float *weights, int64_t n) {
  return jsonl_write_any(w, doc_id, vocab_ids, NULL, weights, n);
}

int64_t jsonl_writer_empty_docs(const jsonl_writer *w) { return w->empty_docs; }

int jsonl_writer_close(jsonl_writer *w) {
  int rc = gzsink_close(&w->sink);
  jsonl_writer_abort(w);
  return rc;
}

void jsonl_writer_abort(jsonl_writer *w) {
  if (!w) return;
  gzsink_abort(&w->sink);
  free(w->key_offset);
  free(w->key_arena);
  free(w->id_scratch);
  free(w);
}
