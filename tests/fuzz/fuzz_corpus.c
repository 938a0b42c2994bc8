/* fuzz_corpus: the corpus readers (io/corpus.c: corpus_open, corpus_next, corpus_parse_ids) on
 * arbitrary bytes written to a scratch file, plain or gzip-compressed.
 * Input: byte 0 selects the reader -- bits 0-1 the format (tsv, jsonl, ids, ids with a 30522-id
 * vocabulary), bit 2 skip_bad_lines, bit 3 count_duplicates, bit 4 gzip the rest before writing
 * it -- and the rest is the file. Checked for every record: index counts up from 0, line numbers
 * and byte ranges increase and (plain files) stay inside the file, the id is NUL-terminated
 * valid UTF-8 of id_len bytes, the text is NUL-terminated at text_len, an ids record parses to at
 * least one id inside the vocabulary; a failure carries a message; the stats agree. */
#include <stdint.h>
#include <stddef.h>

#include <zlib.h>

#include "corpus.h"
#include "fuzz_common.h"

/* 1 when s[0, n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int fuzz_corpus_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k;
    unsigned cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (i + k >= n) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

static int fuzz_corpus(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  corpus_options opt = corpus_options_default();
  static const corpus_format formats[4] = {CORPUS_TSV, CORPUS_JSONL, CORPUS_IDS, CORPUS_IDS};
  opt.format = formats[data[0] & 3];
  opt.vocab_size = (data[0] & 3) == 3 ? 30522 : 0;
  opt.skip_bad_lines = (data[0] >> 2) & 1;
  opt.count_duplicates = (data[0] >> 3) & 1;
  int gzip = (data[0] >> 4) & 1;
  const uint8_t *body = data + 1;
  size_t body_size = size - 1;
  const char *path;
  if (gzip) {
    path = fuzz_write("input", NULL, 0);
    gzFile g = gzopen(path, "wb");
    FUZZ_REQUIRE(g != NULL);
    FUZZ_REQUIRE(body_size == 0 || gzwrite(g, body, (unsigned)body_size) == (int)body_size);
    FUZZ_REQUIRE(gzclose(g) == Z_OK);
  } else {
    path = fuzz_write("input", body, body_size);
  }
  corpus *c = NULL;
  err_clear();
  int rc = corpus_open(path, &opt, &c);
  FUZZ_REQUIRE_MESSAGE(rc);
  if (rc != 0) return rc;
  corpus_record rec;
  int64_t records = 0, last_line = 0, last_end = 0;
  int32_t ids[64];
  for (;;) {
    err_clear();
    rc = corpus_next(c, &rec);
    FUZZ_REQUIRE_MESSAGE(rc);
    if (rc <= 0) break;
    FUZZ_REQUIRE(rec.index == records);
    records++;
    FUZZ_REQUIRE(rec.line > last_line);
    last_line = rec.line;
    FUZZ_REQUIRE(rec.byte_start >= last_end && rec.byte_end > rec.byte_start);
    last_end = rec.byte_end;
    if (!gzip) FUZZ_REQUIRE(rec.byte_end <= (int64_t)body_size);
    FUZZ_REQUIRE(rec.id && rec.id[rec.id_len] == '\0' && strlen(rec.id) == rec.id_len && rec.id_len > 0);
    FUZZ_REQUIRE(fuzz_corpus_utf8((const unsigned char *)rec.id, rec.id_len));
    FUZZ_REQUIRE(rec.text && rec.text[rec.text_len] == '\0');
    if (opt.format == CORPUS_IDS) {
      size_t n = corpus_parse_ids(rec.text, rec.text_len, ids, 64);
      FUZZ_REQUIRE(n >= 1);
      for (size_t i = 0; i < n && i < 64; i++) {
        FUZZ_REQUIRE(ids[i] >= 0);
        if (opt.vocab_size) FUZZ_REQUIRE(ids[i] < opt.vocab_size);
      }
    }
  }
  const corpus_stats *st = corpus_get_stats(c);
  FUZZ_REQUIRE(st->records == records);
  FUZZ_REQUIRE(st->lines >= records + st->bad_lines);
  if (!opt.skip_bad_lines) FUZZ_REQUIRE(st->bad_lines == 0);
  corpus_close(c);
  return rc;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_corpus(data, size);
  return 0;
}
#endif
