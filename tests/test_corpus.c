/* test_corpus: the corpus readers (io/corpus.c) on every odd input the README documents:
 * TSV with CRLF, a missing final newline, empty passages, extra tabs, a line with no tab (error
 * naming file:line, or skipped and counted), invalid UTF-8 in ids and texts, NUL bytes, a 1 MB
 * passage, duplicate ids; the same file gzipped; JSONL in the Pyserini and BEIR shapes with
 * escapes; pre-tokenized ids; byte ranges and line numbers of every record. The UTF-8
 * replacement cases are Python's bytes.decode("utf-8", "replace") results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "corpus.h"
#include "err.h"

static char dir[64];

static const char *write_file(const char *name, const char *data, size_t n, int gz) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, data, (unsigned)n);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
  }
  return path;
}

typedef struct {
  char id[64];
  char text[128];
  size_t text_len;
  long long line, start, end, index;
} rec_copy;

/* Reads every record (up to cap); returns the count, or the error code. */
static int read_all(const char *path, corpus_options *o, rec_copy *out, int cap, corpus_stats *st) {
  corpus *c = NULL;
  int rc = corpus_open(path, o, &c);
  if (rc < 0) return rc;
  int n = 0;
  corpus_record r;
  while ((rc = corpus_next(c, &r)) == 1) {
    if (n < cap) {
      snprintf(out[n].id, sizeof out[n].id, "%s", r.id);
      size_t k = r.text_len < sizeof out[n].text - 1 ? r.text_len : sizeof out[n].text - 1;
      memcpy(out[n].text, r.text, k);
      out[n].text[k] = '\0';
      out[n].text_len = r.text_len;
      out[n].line = r.line;
      out[n].start = r.byte_start;
      out[n].end = r.byte_end;
      out[n].index = r.index;
    }
    n++;
  }
  if (st) *st = *corpus_get_stats(c);
  corpus_close(c);
  return rc < 0 ? rc : n;
}

static void test_tsv(int gz) {
  static const char data[] =
      "d1\thello world\r\n"      /* CRLF */
      "d2\t\n"                   /* empty passage */
      "d3\tone\ttwo\n"           /* later tabs stay in the text */
      "d1\tduplicate id\n"
      "d5\tno final newline";
  const char *path = write_file(gz ? "a.tsv.gz" : "a.tsv", data, sizeof data - 1, gz);
  corpus_options o = corpus_options_default();
  rec_copy r[8];
  corpus_stats st;
  int n = read_all(path, &o, r, 8, &st);
  CHECK(n == 5);
  if (n != 5) return;
  CHECK(!strcmp(r[0].id, "d1") && !strcmp(r[0].text, "hello world") && r[0].text_len == 11);
  CHECK(!strcmp(r[1].id, "d2") && r[1].text_len == 0);
  CHECK(!strcmp(r[2].text, "one\ttwo"));
  CHECK(!strcmp(r[4].id, "d5") && !strcmp(r[4].text, "no final newline"));
  for (int i = 0; i < 5; i++) {
    CHECK(r[i].line == i + 1 && r[i].index == i);
    CHECK(r[i].start == (i ? r[i - 1].end : 0));
    /* the byte range is the line in the uncompressed input, newline included */
    CHECK(r[i].end <= (long long)sizeof data - 1 && !memcmp(data + r[i].start, r[i].id, strlen(r[i].id)));
  }
  CHECK(r[4].end == (long long)sizeof data - 1);
  CHECK(st.duplicates == 1 && strstr(st.first_duplicate, "'d1' at line 4"));
  CHECK(st.records == 5 && st.lines == 5 && st.bad_lines == 0);
}

static void test_bad_lines(void) {
  static const char data[] = "a\tfine\nno tab here\n\tempty id\n\nb\tfine too\n";
  const char *path = write_file("bad.tsv", data, sizeof data - 1, 0);
  corpus_options o = corpus_options_default();
  rec_copy r[8];
  int n = read_all(path, &o, r, 8, NULL);
  CHECK(n == ERR_INPUT);
  CHECK(strstr(err_msg(), "bad.tsv:2: no tab") != NULL);
  o.skip_bad_lines = 1;
  corpus_stats st;
  n = read_all(path, &o, r, 8, &st);
  CHECK(n == 2);
  CHECK(st.bad_lines == 3 && strstr(st.first_bad_line, "bad.tsv:2") != NULL);
  CHECK(n == 2 && !strcmp(r[1].id, "b") && r[1].index == 1 && r[1].line == 5);
}

static void test_bytes(void) {
  /* invalid UTF-8 in the id (replaced) and in the text (kept), a NUL byte inside the text */
  static const char data[] = "x\xff" "y\tbad \xe2\x82 text\n" "nul\ta\0b\n";
  const char *path = write_file("bytes.tsv", data, sizeof data - 1, 0);
  corpus_options o = corpus_options_default();
  rec_copy r[4];
  int n = read_all(path, &o, r, 4, NULL);
  CHECK(n == 2);
  if (n != 2) return;
  CHECK(!strcmp(r[0].id, "x\xef\xbf\xbdy"));
  CHECK(r[0].text_len == 11 && !memcmp(r[0].text, "bad \xe2\x82 text", 11));
  CHECK(r[1].text_len == 3 && !memcmp(r[1].text, "a\0b", 3));

  char out[64];
  struct {
    const char *in;
    size_t n;
    const char *want;
  } cases[] = {
      {"\xe2\x82" "a", 3, "\xef\xbf\xbd" "a"},
      {"\xf0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"ok\xffz", 4, "ok\xef\xbf\xbdz"},
      {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
      {"a\0b", 3, "a\xef\xbf\xbd" "b"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t k = corpus_sanitize_utf8(cases[i].in, cases[i].n, out);
    CHECK(k == strlen(cases[i].want) && !strcmp(out, cases[i].want));
  }
}

static void test_long_passage(void) {
  size_t big = 1 << 20;
  char *data = malloc(big + 64);
  size_t n = (size_t)sprintf(data, "long\t");
  for (size_t i = 0; i < big; i++) data[n++] = (char)('a' + i % 26);
  n += (size_t)sprintf(data + n, "\nshort\tx\n");
  const char *path = write_file("long.tsv", data, n, 0);
  corpus *c = NULL;
  corpus_options o = corpus_options_default();
  CHECK(corpus_open(path, &o, &c) == 0);
  corpus_record r;
  CHECK(corpus_next(c, &r) == 1 && r.text_len == big && r.text[big - 1] == (char)('a' + (big - 1) % 26));
  CHECK(corpus_next(c, &r) == 1 && !strcmp(r.id, "short") && r.byte_end == (int64_t)n);
  CHECK(corpus_next(c, &r) == 0);
  corpus_close(c);
  free(data);
}

static void test_jsonl(void) {
  static const char data[] =
      "{\"id\": \"p1\", \"contents\": \"pyserini text\"}\n"
      "{\"_id\": \"b1\", \"title\": \"Title\", \"text\": \"body\", \"metadata\": {\"a\": [1, {\"b\": null}]}}\n"
      "{\"_id\": \"b2\", \"text\": \"no title\"}\n"
      "{\"_id\": \"b3\", \"title\": null, \"text\": \"null title\"}\n"
      "{\"id\": 42, \"contents\": \"caf\\u00e9 \\ud83d\\ude00 \\ud800x \\\"q\\\" a\\u0000b\"}\n"
      "  {\"contents\": \"x\", \"id\": \"ws\"}  \r\n";
  const char *path = write_file("c.jsonl", data, sizeof data - 1, 0);
  corpus_options o = corpus_options_default();
  o.format = CORPUS_JSONL;
  rec_copy r[8];
  int n = read_all(path, &o, r, 8, NULL);
  CHECK(n == 6);
  if (n != 6) return;
  CHECK(!strcmp(r[0].id, "p1") && !strcmp(r[0].text, "pyserini text"));
  CHECK(!strcmp(r[1].id, "b1") && !strcmp(r[1].text, "Title body"));
  CHECK(!strcmp(r[2].id, "b2") && !strcmp(r[2].text, "no title"));
  CHECK(!strcmp(r[3].id, "b3") && !strcmp(r[3].text, "null title"));
  CHECK(!strcmp(r[4].id, "42"));
  static const char want[] = "caf\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbdx \"q\" a\0b";
  CHECK(r[4].text_len == sizeof want - 1 && !memcmp(r[4].text, want, sizeof want - 1));
  CHECK(!strcmp(r[5].id, "ws") && !strcmp(r[5].text, "x"));

  static const char *bad[] = {
      "{\"id\": \"a\", \"contents\": \"x\"\n",      /* unterminated object */
      "{\"id\": \"a\"}\n",                          /* no text */
      "{\"contents\": \"a\"}\n",                    /* no id */
      "[1, 2]\n",                                   /* not an object */
      "{\"id\": \"a\", \"contents\": \"x\\q\"}\n",  /* bad escape */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char buf[256];
    int k = snprintf(buf, sizeof buf, "{\"id\": \"ok\", \"contents\": \"fine\"}\n%s", bad[i]);
    path = write_file("bad.jsonl", buf, (size_t)k, 0);
    n = read_all(path, &o, r, 8, NULL);
    CHECK(n == ERR_INPUT && strstr(err_msg(), "bad.jsonl:2:") != NULL);
  }
}

static void test_ids(void) {
  static const char data[] = "a\t101 7592 102\nb\t101  102 \n";
  const char *path = write_file("t.ids", data, sizeof data - 1, 0);
  corpus_options o = corpus_options_default();
  o.format = CORPUS_IDS;
  o.vocab_size = 30522;
  rec_copy r[4];
  int n = read_all(path, &o, r, 4, NULL);
  CHECK(n == 2);
  int32_t ids[8];
  CHECK(n == 2 && corpus_parse_ids(r[0].text, r[0].text_len, ids, 8) == 3 && ids[1] == 7592);
  CHECK(n == 2 && corpus_parse_ids(r[1].text, r[1].text_len, ids, 8) == 2 && ids[1] == 102);
  CHECK(corpus_parse_ids("1 2 3 4", 7, ids, 2) == 4 && ids[0] == 1 && ids[1] == 2);
  static const char *bad[] = {"a\t101 99999 102\n", "a\t101 x 102\n", "a\t\n", "a\t-1\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    path = write_file("bad.ids", bad[i], strlen(bad[i]), 0);
    n = read_all(path, &o, r, 4, NULL);
    CHECK(n == ERR_INPUT && strstr(err_msg(), "bad.ids:1:") != NULL);
  }
}

static void test_errors(void) {
  corpus *c = NULL;
  corpus_options o = corpus_options_default();
  CHECK(corpus_open("/nonexistent/corpus.tsv", &o, &c) == ERR_IO && c == NULL);
  CHECK(strstr(err_msg(), "/nonexistent/corpus.tsv") != NULL);
  corpus_format f;
  CHECK(corpus_parse_format("jsonl", &f) == 0 && f == CORPUS_JSONL);
  CHECK(corpus_parse_format("csv", &f) == ERR_ARG);
  /* a truncated gzip file is an I/O error, not a silent end of input */
  static const char data[] = "a\tsome text that will be cut off in the middle of the stream\n";
  const char *path = write_file("cut.tsv.gz", data, sizeof data - 1, 1);
  FILE *fp = fopen(path, "rb");
  char buf[256];
  size_t k = fread(buf, 1, sizeof buf, fp);
  fclose(fp);
  path = write_file("cut.tsv.gz", buf, k - 12, 0);
  rec_copy r[2];
  CHECK(read_all(path, &o, r, 2, NULL) == ERR_IO);
  CHECK(strstr(err_msg(), "cut.tsv.gz") != NULL);
  corpus_close(NULL);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/spladex-test-corpus-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_tsv(0);
  test_tsv(1);
  test_bad_lines();
  test_bytes();
  test_long_passage();
  test_jsonl();
  test_ids();
  test_errors();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return check_report("test_corpus");
}
