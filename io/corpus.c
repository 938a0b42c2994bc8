/* corpus: streaming line readers for TSV, JSONL and pre-tokenized ids, plain or gzip.
 *
 * The whole file goes through zlib's gzread, which recognises the gzip magic bytes (1f 8b) and
 * reads any other file unchanged, so `.gz` needs no flag (concatenated gzip members work too).
 * Lines are read into one growing buffer: no line-length limit, memory = the longest line.
 *
 * Behaviour on odd input (the README table repeats these, one line each):
 *   - Line ends: a line ends at '\n'; one '\r' before it is stripped (CRLF files read like LF).
 *     A last line without a final newline is read like any other; a file ending in '\n' has no
 *     extra empty record after it.
 *   - A malformed line -- a TSV or ids line with no tab, an empty id, an empty line, a JSONL line
 *     that is not a JSON object or has no id or no text field, an ids line with a token that is
 *     not a decimal id in [0, vocab) or with no ids -- is an error naming file:line and the
 *     reason (ERR_INPUT). With skip_bad_lines (`--skip-bad-lines`) it is skipped instead, does not
 *     get a doc number, and is counted; the job reports the count and the first such line at the
 *     end. Never silently dropped.
 *   - TSV: the id is the bytes before the first tab, the text everything after it (later tabs
 *     stay in the text, where the tokenizer treats them as whitespace). With --text-columns the
 *     text is the asked columns (tab-separated, the id column 1) joined with one space; a line
 *     with fewer columns than one asked is malformed.
 *   - JSONL: the id is "id", else "_id", else "docid" (else "qid" under topic_keys: query files;
 *     a string, or a number written as in the file); the text is "contents" (Pyserini) when
 *     present, else "text" (else "query" under topic_keys), preceded by "title" and
 *     one space when a "title" key is present -- BEIR's rule (beir/retrieval/models/util.py
 *     extract_corpus_sentences: title + " " + text, else text; its final .strip() changes no
 *     token). With --text-fields the text is those keys' string values, joined with one space
 *     (absent, null or non-string ones left out; none: malformed). A null value counts as
 *     absent. Other keys are ignored; a repeated key: the last
 *     one wins (as Python's json). \u escapes are decoded; a lone surrogate becomes U+FFFD.
 *   - Invalid UTF-8 in a text is passed to the tokenizer unchanged: the tokenizer's documented
 *     rule applies. A doc id is stored with each maximal invalid byte sequence (Python's
 *     errors="replace" rule) replaced by U+FFFD, so the HDF5 UTF-8 strings stay valid.
 *   - NUL bytes inside a text are passed to the tokenizer, whose clean-text step drops U+0000
 *     (as HF BertNormalizer); a NUL inside an id is replaced by U+FFFD. JSONL \u0000 likewise.
 *   - A very long passage (1 MB and more) is read whole and truncated to --max-length tokens by
 *     the tokenizer; there is no line-length limit.
 *   - An empty passage (`id<TAB>` with nothing after) is kept: it is encoded as [CLS][SEP].
 *   - Duplicate ids are kept (each is a doc), counted with a hash set of 64-bit id hashes
 *     (O(N) memory: 8 bytes per slot, slots = next power of two >= 1.25 N, so 128 MB for the
 *     8.8M-passage MS MARCO collection; a false duplicate has probability about N^2 / 2^65,
 *     2e-6 at N = 8.8M) and reported at the end with the first duplicate id and its line.
 *   - Byte ranges of records in a .gz input are offsets in the uncompressed stream.
 */
#include "corpus.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "err.h"
#include "grow.h"
#include "utf8.h"

/* ---- growable byte buffer ---- */
typedef struct {
  char *p;
  size_t n, cap;
} corpus_bytes;

static int bytes_reserve(corpus_bytes *b, size_t need) {
  if (grow(&b->p, &b->cap, need, 1))
    return err_set(ERR_NOMEM, "out of memory (%zu bytes for a corpus line)", need);
  return 0;
}

static int bytes_append(corpus_bytes *b, const char *s, size_t n) {
  if (bytes_reserve(b, b->n + n + 1) < 0) return ERR_NOMEM;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return 0;
}

/* ---- duplicate-id set: open addressing over 64-bit hashes (0 = empty slot) ---- */
typedef struct {
  uint64_t *slots;
  size_t cap, used;
} corpus_idset;

static uint64_t id_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a, then a splitmix64 finalizer */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h ? h : 1;
}

/* Inserts h; returns 1 if it was already present, 0 if new, ERR_NOMEM. */
static int idset_insert(corpus_idset *s, uint64_t h) {
  if ((s->used + 1) * 5 > s->cap * 4) { /* keep the load <= 0.8 */
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return err_set(ERR_NOMEM, "out of memory (duplicate-id set of %zu slots)", cap);
    for (size_t i = 0; i < s->cap; i++) {
      if (!s->slots[i]) continue;
      size_t j = s->slots[i] & (cap - 1);
      while (slots[j]) j = (j + 1) & (cap - 1);
      slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  size_t j = h & (s->cap - 1);
  while (s->slots[j]) {
    if (s->slots[j] == h) return 1;
    j = (j + 1) & (s->cap - 1);
  }
  s->slots[j] = h;
  s->used++;
  return 0;
}

struct corpus {
  gzFile gz;
  char *path;
  corpus_options opt;
  int64_t file_size;
  char *buf; /* [start, end) unread bytes; one spare byte kept after end for a NUL */
  size_t cap, start, end, scanned;
  int eof;
  int64_t offset;  /* uncompressed offset of buf[start] */
  int64_t pulled;  /* uncompressed bytes gzread has returned */
  int64_t line_no; /* lines read so far */
  corpus_bytes id, text, field_id, field_contents, field_title, field_text, field_query, key;
  corpus_bytes field_sel[CORPUS_MAX_TEXT_PARTS]; /* --text-fields values of the line */
  char why[96];                                  /* a bad line's reason when it is formatted */
  corpus_idset ids;
  corpus_stats stats;
};

corpus_options corpus_options_default(void) {
  corpus_options o;
  o.format = CORPUS_TSV;
  o.skip_bad_lines = 0;
  o.count_duplicates = 1;
  o.vocab_size = 0;
  o.topic_keys = 0;
  o.n_text_columns = 0;
  o.n_text_fields = 0;
  return o;
}

int corpus_parse_text_columns(const char *spec, corpus_options *o) {
  const char *p = spec;
  o->n_text_columns = 0;
  for (;;) {
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 1 || v > 1000000 || (*end && *end != ','))
      return err_set(ERR_ARG, "--text-columns '%s': expected column numbers C[,C...] (1-based, "
                     "the id is column 1)", spec);
    if (o->n_text_columns == CORPUS_MAX_TEXT_PARTS)
      return err_set(ERR_ARG, "--text-columns '%s': at most %d columns", spec,
                     CORPUS_MAX_TEXT_PARTS);
    o->text_columns[o->n_text_columns++] = (int)v;
    if (!*end) return 0;
    p = end + 1;
  }
}

int corpus_parse_text_fields(const char *spec, corpus_options *o) {
  const char *p = spec;
  o->n_text_fields = 0;
  for (;;) {
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= CORPUS_TEXT_FIELD_MAX)
      return err_set(ERR_ARG, "--text-fields '%s': expected keys F[,F...] (each 1 to %d bytes)",
                     spec, CORPUS_TEXT_FIELD_MAX - 1);
    if (o->n_text_fields == CORPUS_MAX_TEXT_PARTS)
      return err_set(ERR_ARG, "--text-fields '%s': at most %d keys", spec, CORPUS_MAX_TEXT_PARTS);
    char *f = o->text_fields[o->n_text_fields++];
    memcpy(f, p, n);
    f[n] = '\0';
    if (!strcmp(f, "id") || !strcmp(f, "_id") || !strcmp(f, "docid"))
      return err_set(ERR_ARG, "--text-fields '%s': '%s' is an id key", spec, f);
    if (!p[n]) return 0;
    p += n + 1;
  }
}

int corpus_parse_format(const char *name, corpus_format *out) {
  if (!strcmp(name, "tsv")) *out = CORPUS_TSV;
  else if (!strcmp(name, "jsonl")) *out = CORPUS_JSONL;
  else if (!strcmp(name, "ids")) *out = CORPUS_IDS;
  else return err_set(ERR_ARG, "--format '%s': expected tsv, jsonl or ids", name);
  return 0;
}

int corpus_open(const char *path, const corpus_options *opt, corpus **out) {
  *out = NULL;
  corpus *c = calloc(1, sizeof *c);
  if (!c) return err_set(ERR_NOMEM, "out of memory");
  c->opt = opt ? *opt : corpus_options_default();
  c->path = strdup(path);
  c->cap = 1 << 20;
  c->buf = malloc(c->cap);
  if (!c->path || !c->buf) {
    corpus_close(c);
    return err_set(ERR_NOMEM, "out of memory");
  }
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    corpus_close(c);
    return err_set(ERR_IO, "%s: %s", path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    corpus_close(c);
    return err_set(ERR_IO, "%s: is a directory", path);
  }
  c->file_size = (int64_t)st.st_size;
  c->gz = gzopen(path, "rb");
  if (!c->gz) {
    int e = errno;
    corpus_close(c);
    return err_set(ERR_IO, "%s: %s", path, e ? strerror(e) : "cannot open");
  }
  gzbuffer(c->gz, 1 << 18);
  *out = c;
  return 0;
}

void corpus_close(corpus *c) {
  if (!c) return;
  if (c->gz) gzclose(c->gz);
  free(c->path);
  free(c->buf);
  free(c->id.p);
  free(c->text.p);
  free(c->field_id.p);
  free(c->field_contents.p);
  free(c->field_title.p);
  free(c->field_text.p);
  free(c->field_query.p);
  for (int i = 0; i < CORPUS_MAX_TEXT_PARTS; i++) free(c->field_sel[i].p);
  free(c->key.p);
  free(c->ids.slots);
  free(c);
}

const corpus_stats *corpus_get_stats(const corpus *c) { return &c->stats; }

int64_t corpus_file_offset(const corpus *c) {
  z_off_t o = gzoffset(c->gz);
  return o < 0 ? 0 : (int64_t)o;
}

int64_t corpus_file_size(const corpus *c) { return c->file_size; }

int64_t corpus_read_offset(const corpus *c) { return c->pulled; }

/* Next raw line: *line points into c->buf (valid until the next call), *len includes the '\n'
 * when there is one. Returns 1, 0 at end of input, or ERR_IO. */
static int read_line(corpus *c, char **line, size_t *len) {
  for (;;) {
    char *nl = memchr(c->buf + c->scanned, '\n', c->end - c->scanned);
    if (nl) {
      *line = c->buf + c->start;
      *len = (size_t)(nl - *line) + 1;
      c->start += *len;
      c->scanned = c->start;
      return 1;
    }
    c->scanned = c->end;
    if (c->eof) {
      if (c->end == c->start) return 0;
      *line = c->buf + c->start;
      *len = c->end - c->start;
      c->start = c->scanned = c->end;
      return 1;
    }
    if (c->start > 0) {
      memmove(c->buf, c->buf + c->start, c->end - c->start);
      c->end -= c->start;
      c->scanned -= c->start;
      c->start = 0;
    }
    if (grow(&c->buf, &c->cap, c->end + (1 << 16), 1)) /* at least 64 KiB free to read into */
      return err_set(ERR_NOMEM, "%s:%lld: out of memory for a line of %zu bytes", c->path,
                     (long long)c->line_no + 1, c->end);
    size_t want = c->cap - c->end - 1; /* keep one spare byte for a NUL after the last line */
    if (want > INT_MAX) want = INT_MAX;
    int n = gzread(c->gz, c->buf + c->end, (unsigned)want);
    if (n < 0) {
      int zerr = 0;
      const char *msg = gzerror(c->gz, &zerr);
      return err_set(ERR_IO, "%s: read failed near line %lld: %s", c->path,
                     (long long)c->line_no + 1,
                     zerr == Z_ERRNO ? strerror(errno) : (msg ? msg : "gzip error"));
    }
    if (n == 0) {
      /* gzread reports a gzip stream cut short as a plain end of file: ask gzerror */
      int zerr = Z_OK;
      gzerror(c->gz, &zerr);
      if (zerr == Z_BUF_ERROR)
        return err_set(ERR_IO, "%s: the gzip stream is truncated (after %lld uncompressed bytes)",
                       c->path, (long long)(c->offset + (int64_t)(c->end - c->start)));
      /* A file that shrank (or grew) while the job read it must not pass for a complete
       * corpus: the job would finish with the documents read before the cut. */
      struct stat now;
      int64_t consumed = corpus_file_offset(c);
      if ((stat(c->path, &now) == 0 && (int64_t)now.st_size != c->file_size) ||
          (gzdirect(c->gz) && consumed != c->file_size))
        return err_set(ERR_IO,
                       "%s: the input changed while it was read (%lld bytes when the job started, "
                       "%lld bytes now, reading ended at byte %lld); restore it and rerun",
                       c->path, (long long)c->file_size,
                       stat(c->path, &now) == 0 ? (long long)now.st_size : -1LL,
                       (long long)consumed);
      c->eof = 1;
    }
    c->end += (size_t)n;
    c->pulled += n;
  }
}

size_t corpus_sanitize_utf8(const char *s, size_t len, char *out) {
  size_t o = 0, i = 0;
  while (i < len) {
    uint32_t cp;
    size_t k = utf8_decode(s + i, len - i, &cp);
    if (cp == UTF8_INVALID || cp == 0) { /* a maximal invalid subpart, or NUL: one U+FFFD */
      o += utf8_encode(UTF8_REPLACEMENT, out + o);
    } else {
      memcpy(out + o, s + i, k);
      o += k;
    }
    i += k;
  }
  out[o] = '\0';
  return o;
}

/* ---- a flat JSON object reader: only the fields the corpus needs, lengths explicit ---- */
typedef struct {
  const char *p, *end;
  const char *err;
} json_cursor;

static void json_ws(json_cursor *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i];
    v <<= 4;
    if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static int put_utf8(corpus_bytes *b, unsigned cp) {
  char u[UTF8_MAX_BYTES];
  return bytes_append(b, u, utf8_encode(cp, u));
}

/* Reads a JSON string at j->p (which is '"') into out (when out is not NULL). Returns 0, -1
 * with j->err set on bad syntax, or ERR_NOMEM. */
static int json_string(json_cursor *j, corpus_bytes *out) {
  if (out) {
    out->n = 0;
    if (bytes_reserve(out, 1) < 0) return ERR_NOMEM;
    out->p[0] = '\0';
  }
  j->p++; /* opening quote */
  for (;;) {
    const char *run = j->p;
    while (j->p < j->end && *j->p != '"' && *j->p != '\\') j->p++;
    if (out && j->p > run && bytes_append(out, run, (size_t)(j->p - run)) < 0) return ERR_NOMEM;
    if (j->p >= j->end) {
      j->err = "unterminated string";
      return -1;
    }
    if (*j->p == '"') {
      j->p++;
      return 0;
    }
    j->p++; /* backslash */
    if (j->p >= j->end) {
      j->err = "unterminated string";
      return -1;
    }
    char e = *j->p++;
    char lit = 0;
    switch (e) {
      case '"': lit = '"'; break;
      case '\\': lit = '\\'; break;
      case '/': lit = '/'; break;
      case 'b': lit = '\b'; break;
      case 'f': lit = '\f'; break;
      case 'n': lit = '\n'; break;
      case 'r': lit = '\r'; break;
      case 't': lit = '\t'; break;
      case 'u': {
        unsigned cp;
        if (j->end - j->p < 4 || hex4(j->p, &cp) < 0) {
          j->err = "bad \\u escape";
          return -1;
        }
        j->p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned lo;
          if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' && hex4(j->p + 2, &lo) == 0 &&
              lo >= 0xDC00 && lo <= 0xDFFF) {
            j->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else {
            cp = 0xFFFD; /* lone high surrogate */
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD; /* lone low surrogate */
        }
        if (out && put_utf8(out, cp) < 0) return ERR_NOMEM;
        continue;
      }
      default:
        j->err = "bad escape in string";
        return -1;
    }
    if (out && bytes_append(out, &lit, 1) < 0) return ERR_NOMEM;
  }
}

/* Skips any JSON value (nested objects and arrays included). 0 or -1 with j->err. */
static int json_skip(json_cursor *j) {
  int depth = 0;
  do {
    json_ws(j);
    if (j->p >= j->end) {
      j->err = "unexpected end of line";
      return -1;
    }
    char ch = *j->p;
    if (ch == '"') {
      if (json_string(j, NULL) < 0) return -1;
    } else if (ch == '{' || ch == '[') {
      depth++;
      j->p++;
    } else if (ch == '}' || ch == ']') {
      if (depth == 0) {
        j->err = "unexpected bracket";
        return -1;
      }
      depth--;
      j->p++;
    } else if (ch == ',' || ch == ':') {
      if (depth == 0) {
        j->err = "unexpected separator";
        return -1;
      }
      j->p++;
    } else {
      const char *s = j->p;
      while (j->p < j->end && ((*j->p && strchr("+-.eE", *j->p)) || (*j->p >= '0' && *j->p <= '9') ||
                               (*j->p >= 'a' && *j->p <= 'z')))
        j->p++;
      if (j->p == s) {
        j->err = "unexpected character";
        return -1;
      }
    }
  } while (depth > 0);
  return 0;
}

enum {
  FIELD_NONE, FIELD_ID, FIELD_UNDERSCORE_ID, FIELD_DOCID, FIELD_CONTENTS, FIELD_TITLE, FIELD_TEXT,
  FIELD_QID, FIELD_QUERY /* the last two only under topic_keys */
};

/* Fills c->id / c->text from a JSONL line. Returns 0, -1 with *why set (a bad line), or
 * ERR_NOMEM. */
static int parse_json_line(corpus *c, const char *s, size_t n, const char **why) {
  json_cursor j = {s, s + n, NULL};
  int have[9] = {0};
  int have_sel[CORPUS_MAX_TEXT_PARTS] = {0}; /* --text-fields */
  int id_rank = 0; /* 4 = "id", 3 = "_id", 2 = "docid", 1 = "qid": the best-ranked one wins */
  c->field_id.n = c->field_contents.n = c->field_title.n = c->field_text.n = 0;
  c->field_query.n = 0;
  json_ws(&j);
  if (j.p >= j.end || *j.p != '{') {
    *why = "not a JSON object";
    return -1;
  }
  j.p++;
  json_ws(&j);
  if (j.p < j.end && *j.p == '}') {
    j.p++;
  } else {
    for (;;) {
      json_ws(&j);
      if (j.p >= j.end || *j.p != '"') {
        *why = "expected a key string";
        return -1;
      }
      int rc = json_string(&j, &c->key);
      if (rc == ERR_NOMEM) return rc;
      if (rc < 0) {
        *why = j.err;
        return -1;
      }
      json_ws(&j);
      if (j.p >= j.end || *j.p != ':') {
        *why = "expected ':'";
        return -1;
      }
      j.p++;
      json_ws(&j);
      int field = FIELD_NONE;
      const char *k = c->key.p;
      int sel = -1; /* the --text-fields key this is (never an id key) */
      for (int f = 0; f < c->opt.n_text_fields && c->key.n == strlen(k); f++)
        if (!strcmp(k, c->opt.text_fields[f])) sel = f;
      if (sel >= 0) {
        if (j.p < j.end && *j.p == '"') {
          rc = json_string(&j, &c->field_sel[sel]);
          if (rc == ERR_NOMEM) return rc;
          if (rc < 0) {
            *why = j.err;
            return -1;
          }
          have_sel[sel] = 1;
        } else {
          have_sel[sel] = 0; /* null or not a string: left out (the last one wins) */
          if (json_skip(&j) < 0) {
            *why = j.err;
            return -1;
          }
        }
      } else if (c->key.n == strlen(k)) {
        if (!strcmp(k, "id")) field = FIELD_ID;
        else if (!strcmp(k, "_id")) field = FIELD_UNDERSCORE_ID;
        else if (!strcmp(k, "docid")) field = FIELD_DOCID;
        else if (!strcmp(k, "contents")) field = FIELD_CONTENTS;
        else if (!strcmp(k, "title")) field = FIELD_TITLE;
        else if (!strcmp(k, "text")) field = FIELD_TEXT;
        else if (c->opt.topic_keys && !strcmp(k, "qid")) field = FIELD_QID;
        else if (c->opt.topic_keys && !strcmp(k, "query")) field = FIELD_QUERY;
      }
      int is_id = field == FIELD_ID || field == FIELD_UNDERSCORE_ID || field == FIELD_DOCID ||
                  field == FIELD_QID;
      int rank = field == FIELD_ID               ? 4
                 : field == FIELD_UNDERSCORE_ID ? 3
                 : field == FIELD_DOCID         ? 2
                                                : 1;
      if (field != FIELD_NONE && j.p < j.end && *j.p == '"') {
        corpus_bytes *dst = field == FIELD_CONTENTS ? &c->field_contents
                            : field == FIELD_TITLE  ? &c->field_title
                            : field == FIELD_TEXT   ? &c->field_text
                            : field == FIELD_QUERY  ? &c->field_query
                                                    : &c->key;
        if (is_id && rank < id_rank) dst = NULL; /* a better-ranked id key was seen */
        rc = json_string(&j, dst == &c->key ? &c->key : dst);
        if (rc == ERR_NOMEM) return rc;
        if (rc < 0) {
          *why = j.err;
          return -1;
        }
        if (is_id && dst) {
          c->field_id.n = 0;
          if (bytes_append(&c->field_id, c->key.p, c->key.n) < 0) return ERR_NOMEM;
          id_rank = rank;
        }
        if (dst) have[field] = 1;
      } else if (is_id && j.p < j.end && (*j.p == '-' || (*j.p >= '0' && *j.p <= '9'))) {
        const char *start = j.p;
        if (json_skip(&j) < 0) {
          *why = j.err;
          return -1;
        }
        if (rank >= id_rank) {
          c->field_id.n = 0;
          if (bytes_append(&c->field_id, start, (size_t)(j.p - start)) < 0) return ERR_NOMEM;
          id_rank = rank;
          have[field] = 1;
        }
      } else if (sel < 0) {
        if (field != FIELD_NONE && j.end - j.p >= 4 && !memcmp(j.p, "null", 4)) have[field] = 0;
        if (json_skip(&j) < 0) {
          *why = j.err;
          return -1;
        }
      }
      json_ws(&j);
      if (j.p < j.end && *j.p == ',') {
        j.p++;
        continue;
      }
      if (j.p < j.end && *j.p == '}') {
        j.p++;
        break;
      }
      *why = "expected ',' or '}'";
      return -1;
    }
  }
  json_ws(&j);
  if (j.p != j.end) {
    *why = "text after the JSON object";
    return -1;
  }
  if (!id_rank) {
    *why = c->opt.topic_keys ? "no \"id\", \"_id\", \"docid\" or \"qid\" field"
                             : "no \"id\", \"_id\" or \"docid\" field";
    return -1;
  }
  c->id.n = 0;
  if (bytes_reserve(&c->id, 3 * c->field_id.n + 1) < 0) return ERR_NOMEM;
  c->id.n = corpus_sanitize_utf8(c->field_id.p, c->field_id.n, c->id.p);
  if (c->id.n == 0) {
    *why = "empty id";
    return -1;
  }
  c->text.n = 0;
  if (bytes_reserve(&c->text, 1) < 0) return ERR_NOMEM;
  c->text.p[0] = '\0';
  if (c->opt.n_text_fields > 0) { /* --text-fields: the present ones, joined with one space */
    int any = 0;
    for (int f = 0; f < c->opt.n_text_fields; f++) {
      if (!have_sel[f]) continue;
      if ((any && bytes_append(&c->text, " ", 1) < 0) ||
          bytes_append(&c->text, c->field_sel[f].p, c->field_sel[f].n) < 0)
        return ERR_NOMEM;
      any = 1;
    }
    if (!any) {
      *why = "none of the --text-fields keys has a string value";
      return -1;
    }
  } else if (have[FIELD_CONTENTS]) {
    if (bytes_append(&c->text, c->field_contents.p, c->field_contents.n) < 0) return ERR_NOMEM;
  } else if (have[FIELD_TEXT]) {
    if (have[FIELD_TITLE] && (bytes_append(&c->text, c->field_title.p, c->field_title.n) < 0 ||
                              bytes_append(&c->text, " ", 1) < 0))
      return ERR_NOMEM;
    if (bytes_append(&c->text, c->field_text.p, c->field_text.n) < 0) return ERR_NOMEM;
  } else if (have[FIELD_QUERY]) {
    if (bytes_append(&c->text, c->field_query.p, c->field_query.n) < 0) return ERR_NOMEM;
  } else {
    *why = c->opt.topic_keys ? "no \"contents\", \"text\" or \"query\" field"
                             : "no \"contents\" or \"text\" field";
    return -1;
  }
  return 0;
}

/* Checks an ids list: decimal ids in [0, vocab) separated by spaces or tabs, at least one. */
static const char *check_ids(const char *s, size_t n, int vocab_size) {
  size_t i = 0, count = 0;
  while (i < n) {
    if (s[i] == ' ' || s[i] == '\t') {
      i++;
      continue;
    }
    int64_t v = 0;
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i] - '0');
      if (v > INT32_MAX) return "token id out of range";
      i++;
      digits++;
    }
    if (!digits || (i < n && s[i] != ' ' && s[i] != '\t')) return "a token id is not a decimal number";
    if (vocab_size > 0 && v >= vocab_size) return "token id out of the vocabulary";
    count++;
  }
  if (!count) return "no token ids";
  return NULL;
}

size_t corpus_parse_ids(const char *text, size_t len, int32_t *out, size_t cap) {
  size_t i = 0, count = 0;
  while (i < len) {
    if (text[i] < '0' || text[i] > '9') {
      i++;
      continue;
    }
    int64_t v = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
    if (count < cap) out[count] = (int32_t)v;
    count++;
  }
  return count;
}

/* --text-columns: c->text = the asked columns of line[0, n) joined with one space, or *why. */
static int tsv_columns(corpus *c, const char *line, size_t n, const char **why) {
  c->text.n = 0;
  if (bytes_reserve(&c->text, n + 1) < 0) return ERR_NOMEM;
  int n_cols = 1;
  for (size_t i = 0; i < n; i++) n_cols += line[i] == '\t';
  for (int k = 0; k < c->opt.n_text_columns; k++) {
    int want = c->opt.text_columns[k];
    if (want > n_cols) {
      snprintf(c->why, sizeof c->why, "%d column(s), --text-columns asks for column %d", n_cols,
               want);
      *why = c->why;
      return 0;
    }
    const char *p = line, *end = line + n;
    for (int col = 1; col < want; col++) p = (const char *)memchr(p, '\t', (size_t)(end - p)) + 1;
    const char *q = memchr(p, '\t', (size_t)(end - p));
    size_t len = q ? (size_t)(q - p) : (size_t)(end - p);
    if (k > 0) c->text.p[c->text.n++] = ' ';
    if (bytes_reserve(&c->text, c->text.n + len + 2) < 0) return ERR_NOMEM;
    memcpy(c->text.p + c->text.n, p, len);
    c->text.n += len;
  }
  c->text.p[c->text.n] = '\0';
  return 0;
}

int corpus_next(corpus *c, corpus_record *rec) {
  for (;;) {
    char *line = NULL;
    size_t len = 0;
    int64_t start = c->offset;
    int rc = read_line(c, &line, &len);
    if (rc <= 0) return rc;
    c->offset += (int64_t)len;
    c->line_no++;
    c->stats.lines++;
    size_t n = len;
    if (n && line[n - 1] == '\n') n--;
    if (n && line[n - 1] == '\r') n--;
    line[n] = '\0'; /* over the '\r' / '\n', or the spare byte after the last line */

    const char *why = NULL;
    if (n == 0) {
      why = "empty line";
    } else if (c->opt.format == CORPUS_JSONL) {
      rc = parse_json_line(c, line, n, &why);
      if (rc < -1) return err_wrap(rc, "%s:%lld", c->path, (long long)c->line_no);
      if (rc == 0) {
        rec->text = c->text.p;
        rec->text_len = c->text.n;
      }
    } else {
      const char *tab = memchr(line, '\t', n);
      if (!tab) {
        why = "no tab between the id and the text";
      } else if (tab == line) {
        why = "empty id";
      } else {
        size_t id_len = (size_t)(tab - line);
        if (bytes_reserve(&c->id, 3 * id_len + 1) < 0) return ERR_NOMEM;
        c->id.n = corpus_sanitize_utf8(line, id_len, c->id.p);
        rec->text = tab + 1;
        rec->text_len = n - id_len - 1;
        if (c->opt.format == CORPUS_TSV && c->opt.n_text_columns > 0) {
          rc = tsv_columns(c, line, n, &why);
          if (rc < 0) return rc;
          rec->text = c->text.p;
          rec->text_len = c->text.n;
        }
        if (c->opt.format == CORPUS_IDS) why = check_ids(rec->text, rec->text_len, c->opt.vocab_size);
      }
    }
    if (why) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s:%lld: %s", c->path, (long long)c->line_no, why);
      if (!c->opt.skip_bad_lines)
        return err_set(ERR_INPUT, "%s (use --skip-bad-lines to skip such lines)", msg);
      if (!c->stats.bad_lines) snprintf(c->stats.first_bad_line, sizeof c->stats.first_bad_line, "%s", msg);
      c->stats.bad_lines++;
      continue;
    }
    rec->id = c->id.p;
    rec->id_len = c->id.n;
    rec->index = c->stats.records++;
    rec->line = c->line_no;
    rec->byte_start = start;
    rec->byte_end = c->offset;
    if (c->opt.count_duplicates) {
      rc = idset_insert(&c->ids, id_hash(rec->id, rec->id_len));
      if (rc < 0) return rc;
      if (rc == 1) {
        if (!c->stats.duplicates)
          snprintf(c->stats.first_duplicate, sizeof c->stats.first_duplicate, "'%.200s' at line %lld",
                   rec->id, (long long)rec->line);
        c->stats.duplicates++;
      }
    }
    return 1;
  }
}
