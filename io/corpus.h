/* corpus: streaming readers for the expansion job's input, one record per line.
 *
 * Formats (DESIGN.md sections 3 and 6):
 *   tsv    MS MARCO collection.tsv: `id<TAB>text` (the text is everything after the first tab,
 *          or the columns of --text-columns)
 *   jsonl  one JSON object per line: Pyserini `{"id": ..., "contents": ...}`, or BEIR
 *          `{"_id": ..., "title": ..., "text": ...}` whose text is title + " " + text
 *   ids    pre-tokenized: `id<TAB>space-separated token ids` (what `spladex tokenize` prints)
 * A gzip file (any of the three) is read transparently, recognised by its magic bytes, not its
 * name. Lines may be of any length. The exact rule for every odd input (no tab, CRLF, invalid
 * UTF-8, NUL bytes, a missing final newline, empty lines, duplicate ids) is the block comment at
 * the top of corpus.c; the README table repeats it.
 *
 * Every record carries its index (0-based count of records accepted so far; in the expansion job
 * this is the global doc number), its 1-based line number, and the byte range [start, end) of its
 * line in the input, newline included. For a .gz input the offsets are in the uncompressed stream.
 */
#ifndef SPLADEX_CORPUS_H
#define SPLADEX_CORPUS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CORPUS_TSV = 0, CORPUS_JSONL = 1, CORPUS_IDS = 2 } corpus_format;

/* Columns / keys a text may be made of (--text-columns, --text-fields). */
enum { CORPUS_MAX_TEXT_PARTS = 16, CORPUS_TEXT_FIELD_MAX = 64 };

typedef struct {
  corpus_format format;
  int skip_bad_lines;    /* 1: a malformed line is counted, reported once on stderr, and skipped;
                            0 (default): it is an error naming file:line */
  int count_duplicates;  /* 1 (default): hash every id to count duplicate ids (8 bytes per slot,
                            slots = next power of two >= 1.25 * records) */
  int vocab_size;        /* format ids: each id must be in [0, vocab_size); 0 = unchecked */
  int topic_keys;        /* 1: JSONL also takes the keys of query files, "qid" (the id when there
                            is no "id", "_id" or "docid") and "query" (the text when there is no
                            "contents" or "text"); 0 (default) ignores them (spladex queries) */
  /* TSV (--text-columns): n_text_columns > 0: the text is these columns (1-based; the id is
   * column 1), in this order, joined with one space; a line with fewer columns than the largest
   * one asked is a bad line. 0 (default): everything after the first tab. */
  int n_text_columns;
  int text_columns[CORPUS_MAX_TEXT_PARTS];
  /* JSONL (--text-fields): n_text_fields > 0: the text is the string values of these keys, in
   * this order, joined with one space; an absent, null or non-string key is left out, and a line
   * with none of them is a bad line. 0 (default): the rule of contents / title + text. */
  int n_text_fields;
  char text_fields[CORPUS_MAX_TEXT_PARTS][CORPUS_TEXT_FIELD_MAX];
} corpus_options;

/* Parses --text-columns "C[,C...]" (each in [1, 1000000]) into o. Returns 0 or ERR_ARG. */
int corpus_parse_text_columns(const char *spec, corpus_options *o);

/* Parses --text-fields "F[,F...]" (non-empty keys under CORPUS_TEXT_FIELD_MAX bytes, not one of
 * the id keys id / _id / docid) into o. Returns 0 or ERR_ARG. */
int corpus_parse_text_fields(const char *spec, corpus_options *o);

/* Defaults: tsv, bad lines are errors, duplicates counted, ids unchecked, no topic keys. */
corpus_options corpus_options_default(void);

/* Parses "tsv" / "jsonl" / "ids" into *out. Returns 0 or ERR_ARG. */
int corpus_parse_format(const char *name, corpus_format *out);

typedef struct {
  int64_t index;       /* 0-based record number among accepted records */
  int64_t line;        /* 1-based line number in the (uncompressed) input */
  int64_t byte_start;  /* [byte_start, byte_end): the line, newline included */
  int64_t byte_end;
  const char *id;      /* NUL-terminated valid UTF-8 (invalid bytes replaced by U+FFFD, NUL
                          bytes too); borrowed, valid until the next corpus_next */
  size_t id_len;
  const char *text;    /* text[0, text_len): the passage (tsv, jsonl) or the id list (ids);
                          may contain NUL bytes and invalid UTF-8; also NUL-terminated;
                          borrowed, valid until the next corpus_next */
  size_t text_len;
} corpus_record;

typedef struct {
  int64_t records;     /* records returned */
  int64_t lines;       /* lines read */
  int64_t bad_lines;   /* lines skipped under skip_bad_lines */
  int64_t duplicates;  /* records whose id had been seen before (by 64-bit hash) */
  char first_duplicate[256];  /* the first duplicate id and its line, "" if none */
  char first_bad_line[512];   /* the first skipped line's message, "" if none */
} corpus_stats;

typedef struct corpus corpus;

/* Opens path (plain or gzip) for streaming. Returns 0 and *out, or ERR_IO naming the file.
 * The caller frees with corpus_close(). */
int corpus_open(const char *path, const corpus_options *opt, corpus **out);

/* Reads the next record into *rec. Returns 1 (a record), 0 (end of input), or ERR_IO /
 * ERR_INPUT with a message naming file:line (a malformed line when skip_bad_lines is 0). */
int corpus_next(corpus *c, corpus_record *rec);

/* Counters so far. Borrowed, valid until close. */
const corpus_stats *corpus_get_stats(const corpus *c);

/* Bytes consumed from the file on disk so far (compressed bytes for .gz) and its size, for
 * progress and ETA. */
int64_t corpus_file_offset(const corpus *c);
int64_t corpus_file_size(const corpus *c);

/* Uncompressed bytes read from the file so far (read ahead of the records returned included):
 * with corpus_file_offset, the compression ratio so far. */
int64_t corpus_read_offset(const corpus *c);

/* Closes. corpus_close(NULL) is a no-op. */
void corpus_close(corpus *c);

/* Parses the space-separated id list of a validated `ids` record into out[0, cap): returns the
 * number of ids (which may exceed cap: only the first cap are stored). Never fails on a record
 * that corpus_next accepted. */
size_t corpus_parse_ids(const char *text, size_t len, int32_t *out, size_t cap);

/* Appends s[0, len) to out as valid UTF-8, replacing each maximal invalid subsequence (as
 * Python's errors="replace" does) and each NUL byte by U+FFFD. out must have room for
 * 3 * len + 1 bytes; it is NUL-terminated. Returns the bytes written (without the NUL). */
size_t corpus_sanitize_utf8(const char *s, size_t len, char *out);

#endif
