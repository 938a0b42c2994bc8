/* gzsink: a buffered output file, plain or gzip, shared by the export writers (ciff,
 * export_jsonl).
 *
 * A sink is a plain struct that a writer embeds: the path (for messages), the zlib file and one
 * GZSINK_BUFFER-byte output buffer. Encoders on a hot path may write straight into
 * buffer + used after gzsink_reserve() has made room, and add what they wrote to used; everything
 * else goes through gzsink_write(). Plain output is written through zlib too (gzopen mode "wbT"),
 * so one code path serves both.
 *
 * Errors are recorded with err_set() and name the file: "PATH: write failed: why",
 * "PATH: close failed: why", "PATH: strerror" when it cannot be created.
 */
#ifndef SPLADEX_GZSINK_H
#define SPLADEX_GZSINK_H

#include <stddef.h>
#include <zlib.h>

/* The size of the output buffer: 1 MiB. */
#define GZSINK_BUFFER ((size_t)1 << 20)

typedef struct {
  char *path;             /* owned copy of the file name, for messages */
  gzFile file;            /* NULL when not open */
  unsigned char *buffer;  /* (cap) bytes not yet handed to zlib: the first used of them */
  size_t used, cap;       /* cap = GZSINK_BUFFER once open */
} gzsink;

/* Creates (truncates) path and fills *s (which may hold garbage on entry); gzip != 0 writes it
 * gzip-compressed at level 1 (fast, for big exports). Returns 0, ERR_NOMEM ("out of memory")
 * or ERR_IO naming the file. On failure *s is left empty, so gzsink_abort(s) is still safe.
 * Finish with gzsink_close(), or gzsink_abort() on an error path. */
int gzsink_open(gzsink *s, const char *path, int gzip);

/* Hands the buffered bytes to zlib and empties the buffer. Returns 0 or ERR_IO naming the file. */
int gzsink_flush(gzsink *s);

/* Makes room for n more bytes in the buffer (n <= s->cap), flushing when they do not fit, so the
 * caller may then write n bytes at s->buffer + s->used. Returns 0 or ERR_IO. */
static inline int gzsink_reserve(gzsink *s, size_t n) {
  if (s->used + n > s->cap) return gzsink_flush(s);
  return 0;
}

/* Appends the n bytes at data: into the buffer (flushing first if they do not fit), or straight
 * to zlib when n is larger than the buffer. Returns 0 or ERR_IO naming the file. */
int gzsink_write(gzsink *s, const void *data, size_t n);

/* Flushes, closes the file (for gzip, finishes the stream) and frees what s holds, leaving it
 * empty. Returns 0 or ERR_IO naming the file (the first error); s is released either way. */
int gzsink_close(gzsink *s);

/* Closes without reporting errors and frees what s holds, leaving it empty (the caller removes
 * the file). A no-op on an empty (zeroed) sink. */
void gzsink_abort(gzsink *s);

#endif
