/* test_export: the export's pieces (varints, quantization, JSON escaping, pass planning, the
 * per-range transpose, CIFF writer checks) and the whole `export` command in-process on a shard
 * directory written with io/shard.h, so the sanitizer build runs every line of it. The bytes
 * themselves are checked against protobuf and json by tests/py/test_export.py.
 * The GPU path's host logic runs here without a GPU: blocks transposed by cutwin_csr_to_csc (the
 * CPU twin of cuSPARSE csr2csc, fed as cuda/export_transpose.cu feeds the device: int32 indptr,
 * ranks as columns, tfs bit-cast to floats) and appended with inv_block_add_csc give the same
 * postings as inv_block_add_rows. `--device cuda` is an ERR_DEVICE without a device and the same
 * bytes as --device cpu with one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ciff.h"
#include "commands.h"
#include "cuda_twins.h"
#include "err.h"
#include "export_fixture.h"
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
  /* --drop-special: BERT's and RoBERTa's special tokens, nothing else */
  CHECK(inv_is_special_term("[CLS]") && inv_is_special_term("[MASK]"));
  CHECK(inv_is_special_term("<s>") && inv_is_special_term("</s>") && inv_is_special_term("<mask>"));
  CHECK(!inv_is_special_term("s") && !inv_is_special_term("[unused0]") && !inv_is_special_term("<S>"));
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
  CHECK(jsonl_escape("a\"b\\c", JSONL_ESCAPE_DUMPS, out) == 9 && !strcmp(out, "\"a\\\"b\\\\c\""));
  jsonl_escape("\n\t\x01\x1f", JSONL_ESCAPE_DUMPS, out);
  CHECK(!strcmp(out, "\"\\n\\t\\u0001\\u001f\""));
  jsonl_escape("caf\xc3\xa9 ##s", JSONL_ESCAPE_DUMPS, out);
  CHECK(!strcmp(out, "\"caf\xc3\xa9 ##s\""));
  jsonl_escape("\b\f\r\x7f", JSONL_ESCAPE_DUMPS, out);
  CHECK(!strcmp(out, "\"\\b\\f\\r\x7f\""));
  jsonl_escape("\"\\\n\t\b\f\r\x01\x7f\xc3\xa9", JSONL_ESCAPE_CONTROLS, out);
  CHECK(!strcmp(out, "\"\\\"\\\\\\n\\t\\u0008\\u000c\\u000d\\u0001\\u007f\xc3\xa9\""));
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
  inv_rows rows = {10, 3, NULL, indptr, ids, ranks, tfs, NULL};
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

/* A generated source in blocks of rows, transposed per range both ways: identical postings. */
enum { CSC_DOCS = 300, CSC_RANKS = 40 };

static unsigned csc_seed = 11;
static unsigned csc_next(void) {
  csc_seed = csc_seed * 1103515245u + 12345u;
  return csc_seed >> 8;
}

/* The session's staging of one block (cuda/export_transpose.cu) with the CPU twin as the device:
 * int64 indptr -> int32, tfs bit-cast to float and back. colptr (R + 1), rowind, tfs (E). */
static void csc_transpose(const inv_rows *rows, int32_t *colptr, int32_t *rowind, int32_t *tfs) {
  int64_t nnz = rows->indptr[rows->n_docs];
  int32_t *indptr32 = malloc(((size_t)rows->n_docs + 1) * sizeof *indptr32);
  float *values = malloc((size_t)nnz * sizeof *values + 1);
  float *cvalues = malloc((size_t)nnz * sizeof *cvalues + 1);
  CHECK(indptr32 && values && cvalues);
  if (!indptr32 || !values || !cvalues) exit(1);
  for (int64_t i = 0; i <= rows->n_docs; i++) indptr32[i] = (int32_t)rows->indptr[i];
  memcpy(values, rows->tfs, (size_t)nnz * sizeof *values);
  cutwin_csr_to_csc(indptr32, rows->ranks, values, (int)rows->n_docs, CSC_RANKS, (int)nnz, colptr,
                    rowind, cvalues);
  memcpy(tfs, cvalues, (size_t)nnz * sizeof *tfs);
  free(indptr32);
  free(values);
  free(cvalues);
}

static void test_block_add_csc(void) {
  /* Blocks of uneven sizes (one of a single row, one whose rows are all empty). */
  const int64_t sizes[] = {1, 37, 64, 5, 100, 93};
  enum { N_BLOCKS = sizeof sizes / sizeof *sizes };
  int64_t indptr[CSC_DOCS + N_BLOCKS];
  int32_t ranks[CSC_DOCS * CSC_RANKS], tfs[CSC_DOCS * CSC_RANKS], ids[CSC_DOCS * CSC_RANKS];
  inv_rows blocks[N_BLOCKS];
  int64_t df[CSC_RANKS] = {0}, doc = 0, *ip = indptr;
  int32_t *rk = ranks, *tf = tfs;
  for (int b = 0; b < N_BLOCKS; b++) {
    blocks[b] = (inv_rows){doc, sizes[b], NULL, ip, ids, rk, tf, NULL};
    ip[0] = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < sizes[b]; i++) {
      for (int32_t k = 0; k < CSC_RANKS && b != 3; k++) {
        if (csc_next() % 4) continue; /* about a quarter of the terms per document */
        rk[n] = k;
        /* tfs whose float bit patterns are NaNs, infinities and denormals travel too. */
        unsigned r = csc_next() % 50;
        tf[n] = r == 0 ? INT32_MAX : r == 1 ? 0x7f800001 : r == 2 ? 0x7f800000 : 1 + (int32_t)r;
        df[k]++;
        n++;
      }
      ip[i + 1] = n;
    }
    doc += sizes[b];
    ip += sizes[b] + 1;
    rk += n;
    tf += n;
  }
  CHECK(doc == CSC_DOCS);

  /* Several ranges, so each block's columns are picked from the middle of a CSC too. */
  inv_range *ranges = NULL;
  int n_ranges = 0;
  CHECK(inv_plan(df, CSC_RANKS, 300 * INV_POSTING_BYTES, &ranges, &n_ranges) == 0);
  CHECK(n_ranges >= 4);
  int32_t colptr[CSC_RANKS + 1], rowind[CSC_DOCS * CSC_RANKS], ctfs[CSC_DOCS * CSC_RANKS];
  int64_t compared = 0;
  for (int r = 0; r < n_ranges; r++) {
    inv_block *by_rows = NULL, *by_csc = NULL;
    CHECK(inv_block_open(df, ranges[r], &by_rows) == 0);
    CHECK(inv_block_open(df, ranges[r], &by_csc) == 0);
    if (!by_rows || !by_csc) break;
    for (int b = 0; b < N_BLOCKS; b++) {
      CHECK(inv_block_add_rows(by_rows, &blocks[b]) == 0);
      csc_transpose(&blocks[b], colptr, rowind, ctfs);
      CHECK(colptr[CSC_RANKS] == blocks[b].indptr[blocks[b].n_docs]);
      CHECK(inv_block_add_csc(by_csc, blocks[b].first_doc, colptr, rowind, ctfs) == 0);
    }
    for (int32_t k = ranges[r].rank_lo; k < ranges[r].rank_hi; k++) {
      const int32_t *d1, *t1, *d2, *t2;
      int64_t n1 = -1, n2 = -2;
      CHECK(inv_block_postings(by_rows, k, &d1, &t1, &n1) == 0);
      CHECK(inv_block_postings(by_csc, k, &d2, &t2, &n2) == 0);
      CHECK(n1 == n2 && n1 == df[k]);
      if (n1 != n2) continue;
      CHECK(!memcmp(d1, d2, (size_t)n1 * sizeof *d1) && !memcmp(t1, t2, (size_t)n1 * sizeof *t1));
      for (int64_t i = 1; i < n1; i++) CHECK(d1[i] > d1[i - 1]);
      compared += n1;
    }
    if (r == 0) {
      /* One block too many: the first term with a posting in it overflows, as with rows. */
      csc_transpose(&blocks[1], colptr, rowind, ctfs);
      CHECK(inv_block_add_csc(by_csc, blocks[1].first_doc, colptr, rowind, ctfs) == ERR_MISMATCH);
      CHECK(strstr(err_msg(), "more postings than the first pass counted") != NULL);
      CHECK(inv_block_add_rows(by_rows, &blocks[1]) == ERR_MISMATCH);
    }
    inv_block_free(by_rows);
    inv_block_free(by_csc);
  }
  int64_t total = 0;
  for (int k = 0; k < CSC_RANKS; k++) total += df[k];
  CHECK(compared == total && total > 1000);

  /* A term promised fewer postings than the blocks hold: ERR_MISMATCH from either side. */
  int64_t short_df[CSC_RANKS];
  memcpy(short_df, df, sizeof df);
  int32_t k0 = 0;
  while (k0 < CSC_RANKS && df[k0] == 0) k0++;
  short_df[k0]--;
  inv_range all = {0, CSC_RANKS, total - 1};
  inv_block *b = NULL;
  CHECK(inv_block_open(short_df, all, &b) == 0);
  int rc = 0;
  for (int i = 0; i < N_BLOCKS && rc == 0 && b; i++) {
    csc_transpose(&blocks[i], colptr, rowind, ctfs);
    rc = inv_block_add_csc(b, blocks[i].first_doc, colptr, rowind, ctfs);
  }
  CHECK(rc == ERR_MISMATCH);
  inv_block_free(b);
  free(ranges);
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

static int export_on(const char *format, const char *in, const char *out, const char *memory,
                     const char *device) {
  char *argv[] = {"export", (char *)format, "--input", (char *)in, "--output", (char *)out,
                  "--memory", (char *)memory, "--device", (char *)device, NULL};
  int rc = cmd_export(10, argv);
  if (rc) fprintf(stderr, "export %s --device %s: %s\n", format, device, err_msg());
  return rc;
}

static int export(const char *format, const char *in, const char *out, const char *memory) {
  return export_on(format, in, out, memory, "cpu");
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
  if (fixture_write_job(dir, S, N)) return -1;
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
  CHECK(fixture_file_size(a) > 1000);
  CHECK(fixture_same_bytes(a, b));
  CHECK(fixture_file_size(c) > 0);

  /* --device: auto (the CPU here, or a GPU) and cuda give the bytes of cpu, or cuda is a clean
   * ERR_DEVICE naming the option, leaving no output; jsonl refuses cuda; bad names are refused. */
  char g[600];
  snprintf(g, sizeof g, "%s/g.ciff", dir);
  CHECK(export_on("ciff", shards, g, "2G", "auto") == 0);
  CHECK(fixture_same_bytes(a, g));
  remove(g);
  int rc = export_on("ciff", shards, g, "2K", "cuda");
  if (rc == 0) {
    CHECK(fixture_same_bytes(a, g)); /* a GPU: many passes, cuSPARSE, the same bytes */
    remove(g);
    CHECK(export_on("ciff", shards, g, "2G", "cuda:0") == 0);
    CHECK(fixture_same_bytes(a, g));
  } else {
    CHECK(rc == ERR_DEVICE);
    CHECK(strstr(err_msg(), "--device cuda") != NULL);
    CHECK(fixture_file_size(g) < 0);
  }
  remove(g);
  CHECK(export_on("ciff", shards, g, "2G", "cuda:4096") == ERR_ARG);
  CHECK(export_on("ciff", shards, g, "2G", "gpu") == ERR_ARG);
  CHECK(export_on("jsonl", shards, g, "2G", "cuda") == ERR_ARG);
  CHECK(strstr(err_msg(), "jsonl") != NULL);
  CHECK(fixture_file_size(g) < 0);
  CHECK(export_on("jsonl", shards, j, "2G", "auto") == 0);
  remove(j);

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
  CHECK(fixture_file_size(out) < 0);
  remove(a), remove(b), remove(c), remove(j);
}

int main(void) {
  char dir[] = "/tmp/spladex-test-export-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  test_varint();
  test_quantize();
  test_escape();
  test_plan_and_block();
  test_block_add_csc();
  test_ciff_writer_checks(dir);
  test_command(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
  return check_report("test_export");
}
