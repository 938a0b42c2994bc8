/* test_export: the export's pieces (varints, quantization, JSON escaping, pass planning, the
 * per-range transpose, CIFF writer checks) and the whole `export` command in-process on a shard
 * directory written with io/shard.h, so the sanitizer build runs every line of it. The bytes
 * themselves are checked against protobuf and json by tests/py/test_export.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ciff.h"
#include "commands.h"
#include "err.h"
#include "export_jsonl.h"
#include "invert.h"
#include "jobfile.h"
#include "shard.h"

static void test_varint(void) {
  uint8_t b[10];
  CHECK(ciff_varint(0, b) == 1 && b[0] == 0);
  CHECK(ciff_varint(127, b) == 1 && b[0] == 127);
  CHECK(ciff_varint(128, b) == 2 && b[0] == 0x80 && b[1] == 1);
  CHECK(ciff_varint(300, b) == 2 && b[0] == 0xAC && b[1] == 2);
  CHECK(ciff_varint(UINT64_MAX, b) == 10 && b[9] == 1);
}

static void test_quantize(void) {
  /* Ties go to even, like np.rint; the product is rounded to float32 first. */
  CHECK(inv_quantize(0.125f, 100) == 12);
  CHECK(inv_quantize(0.375f, 100) == 38);
  CHECK(inv_quantize(0.625f, 100) == 62);
  CHECK(inv_quantize(1.0f, 100) == 100);
  CHECK(inv_quantize(0.004f, 100) == 0);
  CHECK(inv_quantize(-3.0f, 100) == 0);
  CHECK(inv_quantize(NAN, 100) == 0);
  CHECK(inv_quantize(1e30f, 100) == INT32_MAX);
  CHECK(inv_quantize(2.0f, 51.2f) == (int32_t)rintf(2.0f * 51.2f));
}

static void test_escape(void) {
  char out[128];
  CHECK(jsonl_escape("a\"b\\c", out) == 9 && !strcmp(out, "\"a\\\"b\\\\c\""));
  jsonl_escape("\n\t\x01\x1f", out);
  CHECK(!strcmp(out, "\"\\n\\t\\u0001\\u001f\""));
  jsonl_escape("caf\xc3\xa9 ##s", out);
  CHECK(!strcmp(out, "\"caf\xc3\xa9 ##s\""));
  CHECK(jsonl_utf8_valid("caf\xc3\xa9", 5));
  CHECK(!jsonl_utf8_valid("\xc3", 1));         /* truncated */
  CHECK(!jsonl_utf8_valid("\xc0\xaf", 2));     /* overlong */
  CHECK(!jsonl_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
  CHECK(!jsonl_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
}

static void test_plan_and_block(void) {
  int64_t df[5] = {3, 0, 5, 2, 7};
  inv_range *r = NULL;
  int n = 0;
  CHECK(inv_plan(df, 5, 8 * INV_POSTING_BYTES, &r, &n) == 0);
  CHECK(n == 3);
  if (n == 3) {
    CHECK(r[0].rank_lo == 0 && r[0].rank_hi == 3 && r[0].n_postings == 8); /* greedy, full */
    CHECK(r[1].rank_lo == 3 && r[1].rank_hi == 4 && r[1].n_postings == 2);
    CHECK(r[2].rank_lo == 4 && r[2].rank_hi == 5 && r[2].n_postings == 7);
  }
  free(r);
  CHECK(inv_plan(df, 5, 6 * INV_POSTING_BYTES, &r, &n) == ERR_ARG); /* df 7 alone is too big */
  CHECK(inv_plan(df, 0, 64, &r, &n) == 0 && n == 1 && r[0].n_postings == 0);
  free(r);

  /* Three docs: 10 -> ranks {0, 2}, 11 -> {2}, 12 -> {1, 2}; block over ranks [1, 3). */
  int64_t df3[3] = {1, 1, 3};
  int64_t indptr[4] = {0, 2, 3, 5};
  int32_t ranks[5] = {0, 2, 2, 1, 2}, tfs[5] = {4, 5, 6, 7, 8}, ids[5] = {0};
  inv_rows rows = {10, 3, NULL, indptr, ids, ranks, tfs};
  inv_block *b = NULL;
  inv_range range = {1, 3, 4};
  CHECK(inv_block_open(df3, range, &b) == 0);
  CHECK(inv_block_add_rows(b, &rows) == 0);
  const int32_t *docids, *t;
  int64_t count;
  CHECK(inv_block_postings(b, 2, &docids, &t, &count) == 0 && count == 3);
  CHECK(docids[0] == 10 && docids[1] == 11 && docids[2] == 12 && t[0] == 5 && t[2] == 8);
  CHECK(inv_block_postings(b, 1, &docids, &t, &count) == 0 && count == 1 && docids[0] == 12);
  CHECK(inv_block_add_rows(b, &rows) == ERR_MISMATCH); /* more postings than counted */
  inv_block_free(b);
  inv_block_free(NULL);
}

static void test_ciff_writer_checks(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/check.ciff", dir);
  ciff_writer *w = NULL;
  CHECK(ciff_writer_open(path, 0, &w) == 0);
  if (!w) return;
  int32_t d[2] = {5, 5}, t[2] = {1, 1}, zero[1] = {0};
  CHECK(ciff_write_postings_list(w, "x", d, t, 2, NULL) == ERR_ARG);    /* not ascending */
  CHECK(ciff_write_postings_list(w, "x", d, zero, 1, NULL) == ERR_ARG); /* tf 0 */
  int64_t cf = 0;
  d[1] = 9;
  CHECK(ciff_write_postings_list(w, "x", d, t, 2, &cf) == 0 && cf == 2);
  CHECK(ciff_writer_close(w) == 0);
  ciff_writer_abort(NULL);
  remove(path);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) ? -1 : (long)st.st_size;
}

static int same_bytes(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

static int export(const char *format, const char *in, const char *out, const char *memory) {
  char *argv[] = {"export", (char *)format, "--input", (char *)in, "--output", (char *)out,
                  "--memory", (char *)memory, NULL};
  int rc = cmd_export(8, argv);
  if (rc) fprintf(stderr, "export %s: %s\n", format, err_msg());
  return rc;
}

/* Writes 3 shards of 40 docs (the last 25) over a 50-term vocabulary. */
static int write_shards(const char *dir) {
  enum { V = 50, S = 40, N = 105 };
  char vocab_buf[V][16];
  const char *vocab[V];
  for (int v = 0; v < V; v++) {
    snprintf(vocab_buf[v], sizeof vocab_buf[v], v % 4 ? "t%02d" : "##p%d", v);
    vocab[v] = vocab_buf[v];
  }
  job_params job;
  job_params_init(&job);
  snprintf(job.version, sizeof job.version, "0.1.0");
  snprintf(job.model, sizeof job.model, "test/model");
  snprintf(job.format, sizeof job.format, "tsv");
  snprintf(job.precision, sizeof job.precision, "fp32");
  job.max_length = 256;
  job.shard_size = S;
  job_set_totals(&job, N);
  if (job_write(dir, &job)) return -1;
  unsigned seed = 7;
  for (int s = 0; s * S < N; s++) {
    char path[512];
    job_shard_path(dir, s, path, sizeof path);
    shard_meta meta = {.model = "test/model", .max_length = 256, .first_doc = (int64_t)s * S,
                       .vocab_size = V, .vocab = vocab};
    shard_writer *w = NULL;
    if (shard_writer_open(path, &meta, &w)) return -1;
    for (int d = s * S; d < N && d < (s + 1) * S; d++) {
      int32_t idx[V];
      float val[V];
      int nnz = 0;
      for (int v = 0; v < V; v++) {
        seed = seed * 1103515245u + 12345u;
        if (d % 17 == 0 || (seed >> 16) % 5) continue; /* every 17th doc empty */
        idx[nnz] = v;
        val[nnz++] = (float)((seed >> 8) % 1000) / 400.0f;
      }
      char id[32];
      snprintf(id, sizeof id, "doc\"%d", d);
      if (shard_writer_append(w, id, idx, val, nnz)) return -1;
    }
    if (shard_writer_finish(w)) return -1;
  }
  return 0;
}

static void test_command(const char *dir) {
  char shards[512], a[600], b[600], c[600], j[600];
  snprintf(shards, sizeof shards, "%s/shards", dir);
  mkdir(shards, 0755);
  CHECK(write_shards(shards) == 0);
  snprintf(a, sizeof a, "%s/a.ciff", dir);
  snprintf(b, sizeof b, "%s/b.ciff", dir);
  snprintf(c, sizeof c, "%s/c.ciff.gz", dir);
  snprintf(j, sizeof j, "%s/d.jsonl", dir);
  CHECK(export("ciff", shards, a, "2G") == 0);
  CHECK(export("ciff", shards, b, "2K") == 0); /* many passes */
  CHECK(export("ciff", shards, c, "2K") == 0);
  CHECK(file_size(a) > 1000);
  CHECK(same_bytes(a, b));
  CHECK(file_size(c) > 0);
  CHECK(export("jsonl", shards, j, "2G") == 0);
  FILE *f = fopen(j, "r");
  int lines = 0, empty = 0;
  char line[8192];
  while (f && fgets(line, sizeof line, f)) {
    lines++;
    empty += strstr(line, "{\"[unused993]\": 1}}") != NULL;
  }
  if (f) fclose(f);
  CHECK(lines == 105);
  CHECK(empty >= 7);

  /* Refused: a missing shard is named, and no output appears. */
  char missing[600], out[600];
  snprintf(missing, sizeof missing, "%s/shard-00001.h5", shards);
  snprintf(out, sizeof out, "%s/e.ciff", dir);
  CHECK(unlink(missing) == 0);
  CHECK(export("ciff", shards, out, "2G") == ERR_MISMATCH);
  CHECK(strstr(err_msg(), "shard-00001.h5") != NULL);
  CHECK(file_size(out) < 0);
  remove(a), remove(b), remove(c), remove(j);
}

int main(void) {
  char dir[] = "/tmp/spladex-test-export-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  test_varint();
  test_quantize();
  test_escape();
  test_plan_and_block();
  test_ciff_writer_checks(dir);
  test_command(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
  return check_report("test_export");
}
