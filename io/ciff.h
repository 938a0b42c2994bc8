/* ciff: a streaming writer of the Common Index File Format, version 1 (osirrc/ciff
 * CommonIndexFileFormat.proto), with the protobuf encoding written by hand.
 *
 * A CIFF file is a sequence of varint-length-delimited protobuf messages: one Header, then exactly
 * Header.num_postings_lists PostingsList, then exactly Header.num_docs (num_doc_records in the
 * osirrc .proto; same field 3) DocRecord. The messages:
 *   Header       1 version int32, 2 num_postings_lists int32, 3 num_docs int32,
 *                4 total_postings_lists int32, 5 total_docs int32,
 *                6 total_terms_in_collection int64, 7 average_doclength double,
 *                8 description string
 *   PostingsList 1 term string, 2 df int64, 3 cf int64, 4 postings repeated Posting
 *   Posting      1 docid int32 (d-gap from the previous posting, the first absolute), 2 tf int32
 *   DocRecord    1 docid int32, 2 collection_docid string, 3 doclength int32
 * Fields are written in field order and fields holding their proto3 default (0, "") are left
 * out, exactly as protobuf's own serializer does, so a message parsed and serialized again by
 * protobuf gives the same bytes.
 *
 * The writer never holds more than one output buffer: each message is sized first, then encoded
 * into the buffer, which is flushed to the file (plain, or gzip through zlib) as it fills.
 */
#ifndef SPLADEX_CIFF_H
#define SPLADEX_CIFF_H

#include <stddef.h>
#include <stdint.h>

/* The Header message; version is always written as 1. */
typedef struct {
  int32_t num_postings_lists;
  int32_t num_docs;
  int32_t total_postings_lists;
  int32_t total_docs;
  int64_t total_terms_in_collection;
  double average_doclength;
  const char *description; /* NULL or "" leaves the field out */
} ciff_header;

typedef struct ciff_writer ciff_writer;

/* Encodes v as a protobuf varint into out (at least 10 bytes) and returns its length. */
size_t ciff_varint(uint64_t v, uint8_t *out);

/* Creates (truncates) path; gzip != 0 writes it gzip-compressed (level 1: fast, for big
 * exports). Returns 0 and *out, or ERR_IO naming the file. Finish with ciff_writer_close(), or
 * ciff_writer_abort() on an error path. */
int ciff_writer_open(const char *path, int gzip, ciff_writer **out);

/* Writes the Header message. Returns 0 or ERR_IO. */
int ciff_write_header(ciff_writer *w, const ciff_header *h);

/* Writes one PostingsList: term (NUL-terminated UTF-8), n postings with absolute docids
 * (strictly ascending, >= 0) and tfs (>= 1). df = n and cf = sum of tfs are computed here and
 * returned through *cf when cf is not NULL. Returns 0, ERR_ARG for docids that do not ascend or
 * a tf < 1 (naming the term), or ERR_IO. */
int ciff_write_postings_list(ciff_writer *w, const char *term, const int32_t *docids,
                             const int32_t *tfs, int64_t n, int64_t *cf);

/* Writes one DocRecord. Returns 0 or ERR_IO. */
int ciff_write_doc_record(ciff_writer *w, int32_t docid, const char *collection_docid,
                          int32_t doclength);

/* Appends the bytes of the (plain) file at path, e.g. DocRecords spooled by another writer
 * during the first pass. Returns 0 or ERR_IO naming the file. */
int ciff_writer_append_file(ciff_writer *w, const char *path);

/* Bytes written so far (before compression). */
int64_t ciff_writer_bytes(const ciff_writer *w);

/* Flushes, closes (and for gzip finishes the stream) and frees w. Returns 0 or ERR_IO naming
 * the file; w is freed either way. */
int ciff_writer_close(ciff_writer *w);

/* Closes without reporting errors and frees w (the caller removes the file).
 * ciff_writer_abort(NULL) is a no-op. */
void ciff_writer_abort(ciff_writer *w);

#endif
