/* export_jsonl: a streaming writer of Anserini JsonVectorCollection lines (DESIGN.md section 7),
 * the input of Pyserini / Anserini impact indexing (`--impact --pretokenized`):
 *
 *   {"id": "doc-7", "contents": "", "vector": {"the": 12, "##ing": 3}}
 *
 * one document per line, terms in ascending vocab id, integer weights. Strings are JSON-escaped
 * the way Python's json.dumps(..., ensure_ascii=False) does it (\" \\ \b \f \n \r \t, other
 * control characters as \u00XX, UTF-8 kept as is); `##` pieces are written verbatim. A document
 * without a weight >= 1 gets {"[unused993]": 1}, naver/splade's convention, so that Anserini
 * does not drop it. Output is plain, or gzip (level 1) when asked.
 */
#ifndef SPLADEX_EXPORT_JSONL_H
#define SPLADEX_EXPORT_JSONL_H

#include <stddef.h>
#include <stdint.h>

/* The term written for a document that has no weight >= 1 (with weight 1). */
#define JSONL_EMPTY_TERM "[unused993]"

typedef struct jsonl_writer jsonl_writer;

/* How jsonl_escape writes control characters. Both escape \" and \\ and keep UTF-8 as is. */
typedef enum {
  JSONL_ESCAPE_DUMPS = 0,   /* Python's json.dumps(s, ensure_ascii=False): \b \f \n \r \t, other
                               bytes < 0x20 as \u00xx, DEL kept (this file's lines) */
  JSONL_ESCAPE_CONTROLS = 1 /* \n \t, every other byte < 0x20 and DEL as \u00xx (the terms of
                               `spladex encode --json`, unchanged since it was written) */
} jsonl_escape_style;

/* The bytes jsonl_escape needs for a string of len bytes, NUL included. */
#define JSONL_ESCAPED_MAX(len) (6 * (size_t)(len) + 3)

/* Writes the JSON string literal of the NUL-terminated s (quotes included) into out, which
 * must hold JSONL_ESCAPED_MAX(strlen(s)) bytes, NUL-terminates it and returns its length
 * (without the NUL). Bytes >= 0x80 are copied as they are: valid UTF-8 (utf8_valid, io/utf8.h)
 * stays valid, which the writer below checks first. */
size_t jsonl_escape(const char *s, jsonl_escape_style style, char *out);

/* Creates (truncates) path, gzip-compressed when gzip != 0, for documents over the vocabulary
 * terms[vocab_size] (borrowed only during the call: every term is checked for UTF-8 and escaped
 * once here). Returns 0 and *out, ERR_FORMAT naming a term that is not valid UTF-8, or ERR_IO /
 * ERR_NOMEM. Finish with jsonl_writer_close(), or jsonl_writer_abort() on an error path. */
int jsonl_writer_open(const char *path, int gzip, const char *const *terms, int vocab_size,
                      jsonl_writer **out);

/* Writes one line: the document doc_id with the n terms vocab_ids[] (each in [0, vocab_size))
 * and their integer weights[]; n == 0 writes {"[unused993]": 1}. Returns 0, ERR_FORMAT if doc_id
 * is not valid UTF-8 (naming it), or ERR_IO. */
int jsonl_write_doc(jsonl_writer *w, const char *doc_id, const int32_t *vocab_ids,
                    const int32_t *weights, int64_t n);

/* The same line with float weights (--weights float, for Seismic, OpenSearch neural sparse...),
 * each written as the shortest decimal that reads back as the same float32
 * (jsonl_format_float); n == 0 writes an empty vector {} (no placeholder: float consumers take
 * empty vectors). Returns as jsonl_write_doc. */
int jsonl_write_doc_float(jsonl_writer *w, const char *doc_id, const int32_t *vocab_ids,
                          const float *weights, int64_t n);

/* The bytes jsonl_format_float may write, NUL included. */
#define JSONL_FLOAT_MAX 32

/* Writes the shortest decimal form (%.6g to %.9g) that strtof reads back as exactly v into out
 * (JSONL_FLOAT_MAX bytes), NUL-terminated; returns its length. v must be finite. */
size_t jsonl_format_float(float v, char *out);

/* Documents written so far with no term (jsonl_write_doc: given the [unused993] placeholder). */
int64_t jsonl_writer_empty_docs(const jsonl_writer *w);

/* Flushes, closes and frees w. Returns 0 or ERR_IO naming the file; w is freed either way. */
int jsonl_writer_close(jsonl_writer *w);

/* Closes without reporting errors and frees w. jsonl_writer_abort(NULL) is a no-op. */
void jsonl_writer_abort(jsonl_writer *w);

#endif
