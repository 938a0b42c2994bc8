/* ciff: hand-written protobuf encoding of the CIFF v1 messages (see ciff.h). Every message is
 * sized before it is encoded, because its length prefix comes first; sizes are computed by the
 * same field rules the encoder follows (a field at its default is left out). */
#include "ciff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gzsink.h"

struct ciff_writer {
  gzsink sink; /* the messages are encoded straight into sink.buffer */
  int64_t bytes;
};

/* Wire types. */
enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2 };

size_t ciff_varint(uint64_t v, uint8_t *out) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

static size_t ciff_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* int32/int64 fields encode negative values as 64-bit two's complement (10 bytes). */
static uint64_t ciff_as_varint(int64_t v) { return (uint64_t)v; }

/* Size of a varint field (tag + value), 0 when the value is the default 0. */
static size_t ciff_int_field_size(int64_t v) {
  return v ? 1 + ciff_varint_size(ciff_as_varint(v)) : 0;
}

/* Size of a string / message field of length len (tag + length + bytes). */
static size_t ciff_len_field_size(size_t len) { return 1 + ciff_varint_size(len) + len; }

static void ciff_put_byte(ciff_writer *w, uint8_t b) { w->sink.buffer[w->sink.used++] = b; }

static void ciff_put_varint(ciff_writer *w, uint64_t v) {
  w->sink.used += ciff_varint(v, w->sink.buffer + w->sink.used);
}

static void ciff_put_int_field(ciff_writer *w, int field, int64_t v) {
  if (!v) return;
  ciff_put_byte(w, (uint8_t)(field << 3 | WIRE_VARINT));
  ciff_put_varint(w, ciff_as_varint(v));
}

/* Writes a length-delimited field (tag, length, bytes), flushing as needed for long strings. */
static int ciff_put_bytes_field(ciff_writer *w, int field, const char *s, size_t len) {
  int rc = gzsink_reserve(&w->sink, 11);
  if (rc) return rc;
  ciff_put_byte(w, (uint8_t)(field << 3 | WIRE_LEN));
  ciff_put_varint(w, len);
  while (len) {
    if (w->sink.used == w->sink.cap && (rc = gzsink_flush(&w->sink))) return rc;
    size_t room = w->sink.cap - w->sink.used, n = len < room ? len : room;
    memcpy(w->sink.buffer + w->sink.used, s, n);
    w->sink.used += n;
    s += n;
    len -= n;
  }
  return 0;
}

int ciff_writer_open(const char *path, int gzip, ciff_writer **out) {
  *out = NULL;
  ciff_writer *w = calloc(1, sizeof *w);
  if (!w) return err_set(ERR_NOMEM, "out of memory");
  int rc = gzsink_open(&w->sink, path, gzip);
  if (rc) {
    free(w);
    return rc;
  }
  *out = w;
  return 0;
}

int ciff_write_header(ciff_writer *w, const ciff_header *h) {
  size_t description_len = h->description ? strlen(h->description) : 0;
  int has_average = h->average_doclength != 0.0;
  size_t size = ciff_int_field_size(1) + ciff_int_field_size(h->num_postings_lists) +
                ciff_int_field_size(h->num_docs) + ciff_int_field_size(h->total_postings_lists) +
                ciff_int_field_size(h->total_docs) +
                ciff_int_field_size(h->total_terms_in_collection) + (has_average ? 9 : 0) +
                (description_len ? ciff_len_field_size(description_len) : 0);
  int rc = gzsink_reserve(&w->sink, 80);
  if (rc) return rc;
  ciff_put_varint(w, size);
  ciff_put_int_field(w, 1, 1);
  ciff_put_int_field(w, 2, h->num_postings_lists);
  ciff_put_int_field(w, 3, h->num_docs);
  ciff_put_int_field(w, 4, h->total_postings_lists);
  ciff_put_int_field(w, 5, h->total_docs);
  ciff_put_int_field(w, 6, h->total_terms_in_collection);
  if (has_average) {
    uint64_t bits;
    memcpy(&bits, &h->average_doclength, sizeof bits);
    ciff_put_byte(w, 7 << 3 | WIRE_FIXED64);
    for (int i = 0; i < 8; i++) ciff_put_byte(w, (uint8_t)(bits >> (8 * i))); /* little-endian */
  }
  if (description_len && (rc = ciff_put_bytes_field(w, 8, h->description, description_len)))
    return rc;
  w->bytes += (int64_t)(ciff_varint_size(size) + size);
  return 0;
}

/* Size of the Posting message body for a docid gap and a tf. */
static size_t ciff_posting_size(int64_t gap, int32_t tf) {
  return ciff_int_field_size(gap) + ciff_int_field_size(tf);
}

int ciff_write_postings_list(ciff_writer *w, const char *term, const int32_t *docids,
                             const int32_t *tfs, int64_t n, int64_t *cf_out) {
  size_t term_len = strlen(term);
  /* First the sizes (and checks), then the bytes. */
  int64_t cf = 0, previous = -1;
  size_t postings_bytes = 0;
  for (int64_t i = 0; i < n; i++) {
    if (docids[i] <= previous)
      return err_set(ERR_ARG, "CIFF term \"%s\": docid %d after %lld (not ascending)", term,
                     docids[i], (long long)previous);
    if (tfs[i] < 1)
      return err_set(ERR_ARG, "CIFF term \"%s\": tf %d for docid %d", term, tfs[i], docids[i]);
    int64_t gap = i ? docids[i] - previous : docids[i];
    postings_bytes += ciff_len_field_size(ciff_posting_size(gap, tfs[i]));
    cf += tfs[i];
    previous = docids[i];
  }
  size_t size = (term_len ? ciff_len_field_size(term_len) : 0) + ciff_int_field_size(n) +
                ciff_int_field_size(cf) + postings_bytes;
  int rc = gzsink_reserve(&w->sink, 32);
  if (rc) return rc;
  ciff_put_varint(w, size);
  if (term_len && (rc = ciff_put_bytes_field(w, 1, term, term_len))) return rc;
  if ((rc = gzsink_reserve(&w->sink, 22))) return rc;
  ciff_put_int_field(w, 2, n);
  ciff_put_int_field(w, 3, cf);
  previous = 0;
  for (int64_t i = 0; i < n; i++) {
    /* A Posting is at most 1 + 1 + 11 + 11 bytes. */
    if ((rc = gzsink_reserve(&w->sink, 24))) return rc;
    int64_t gap = docids[i] - previous;
    previous = docids[i];
    ciff_put_byte(w, 4 << 3 | WIRE_LEN);
    ciff_put_varint(w, ciff_posting_size(gap, tfs[i]));
    ciff_put_int_field(w, 1, gap);
    ciff_put_int_field(w, 2, tfs[i]);
  }
  w->bytes += (int64_t)(ciff_varint_size(size) + size);
  if (cf_out) *cf_out = cf;
  return 0;
}

int ciff_write_doc_record(ciff_writer *w, int32_t docid, const char *collection_docid,
                          int32_t doclength) {
  size_t id_len = collection_docid ? strlen(collection_docid) : 0;
  size_t size = ciff_int_field_size(docid) + (id_len ? ciff_len_field_size(id_len) : 0) +
                ciff_int_field_size(doclength);
  int rc = gzsink_reserve(&w->sink, 24);
  if (rc) return rc;
  ciff_put_varint(w, size);
  ciff_put_int_field(w, 1, docid);
  if (id_len && (rc = ciff_put_bytes_field(w, 2, collection_docid, id_len))) return rc;
  if ((rc = gzsink_reserve(&w->sink, 12))) return rc;
  ciff_put_int_field(w, 3, doclength);
  w->bytes += (int64_t)(ciff_varint_size(size) + size);
  return 0;
}

int ciff_writer_append_file(ciff_writer *w, const char *path) {
  int rc = gzsink_flush(&w->sink);
  if (rc) return rc;
  FILE *f = fopen(path, "rb");
  if (!f) return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  size_t n;
  while ((n = fread(w->sink.buffer, 1, w->sink.cap, f)) > 0) {
    w->sink.used = n;
    w->bytes += (int64_t)n;
    if ((rc = gzsink_flush(&w->sink))) break;
  }
  if (!rc && ferror(f)) rc = err_set(ERR_IO, "%s: read failed: %s", path, strerror(errno));
  fclose(f);
  return rc;
}

int64_t ciff_writer_bytes(const ciff_writer *w) { return w->bytes; }

int ciff_writer_close(ciff_writer *w) {
  int rc = gzsink_close(&w->sink);
  free(w);
  return rc;
}

void ciff_writer_abort(ciff_writer *w) {
  if (!w) return;
  gzsink_abort(&w->sink);
  free(w);
}
