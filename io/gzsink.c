/* gzsink: the buffered plain/gzip output file of the export writers (see gzsink.h). Both the
 * CIFF and the JSONL writer used to carry their own copy of this; the messages are theirs. */
#include "gzsink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int gzsink_open(gzsink *s, const char *path, int gzip) {
  memset(s, 0, sizeof *s);
  s->path = malloc(strlen(path) + 1);
  s->buffer = malloc(GZSINK_BUFFER);
  if (!s->path || !s->buffer) {
    gzsink_abort(s);
    return err_set(ERR_NOMEM, "out of memory");
  }
  strcpy(s->path, path);
  s->cap = GZSINK_BUFFER;
  /* "T": zlib writes the plain bytes, so one code path serves both. */
  s->file = gzopen(path, gzip ? "wb1" : "wbT");
  if (!s->file) {
    int e = errno;
    gzsink_abort(s);
    return err_set(ERR_IO, "%s: %s", path, e ? strerror(e) : "cannot open for writing");
  }
  gzbuffer(s->file, 1 << 17);
  return 0;
}

int gzsink_flush(gzsink *s) {
  if (s->used == 0) return 0;
  if (gzwrite(s->file, s->buffer, (unsigned)s->used) != (int)s->used) {
    int gz_errno = 0;
    const char *why = gzerror(s->file, &gz_errno);
    return err_set(ERR_IO, "%s: write failed: %s", s->path,
                   gz_errno == Z_ERRNO ? strerror(errno) : why);
  }
  s->used = 0;
  return 0;
}

int gzsink_write(gzsink *s, const void *data, size_t n) {
  int rc;
  if (s->used + n > s->cap && (rc = gzsink_flush(s))) return rc;
  if (n > s->cap) {
    if (gzwrite(s->file, data, (unsigned)n) != (int)n)
      return err_set(ERR_IO, "%s: write failed", s->path);
    return 0;
  }
  memcpy(s->buffer + s->used, data, n);
  s->used += n;
  return 0;
}

int gzsink_close(gzsink *s) {
  int rc = gzsink_flush(s);
  int closed = gzclose(s->file);
  s->file = NULL;
  if (!rc && closed != Z_OK)
    rc = err_set(ERR_IO, "%s: close failed: %s", s->path,
                 closed == Z_ERRNO ? strerror(errno) : "zlib error");
  gzsink_abort(s);
  return rc;
}

void gzsink_abort(gzsink *s) {
  if (s->file) gzclose(s->file);
  free(s->path);
  free(s->buffer);
  memset(s, 0, sizeof *s);
}
