/* test_shard: the HDF5 shard writer/reader (io/shard.h), job.json (io/jobfile.h), and the
 * `info` / `verify` commands.
 *
 * Round trip with empty rows, rows crossing every writer buffer and chunk (including one row
 * larger than the 64k entry buffer), windowed and random reads, float16 data, abort and the
 * atomic finish, the cheap shard_check, corrupted files (truncated, garbage, wrong format attr,
 * broken indptr / indices) rejected with a message naming the file, and the CLI on a small job.
 *
 * Parallel compression (shard_meta.compress_threads): shards compressed on the writer's thread
 * (0) and by 1 or 3 threads hold the same rows, decoded datasets and stored chunk bytes, and the
 * same rows and decoded datasets as HDF5's own filters (-1) write (no rows, one row, exactly one
 * chunk, one chunk + 1 entry, float16, many chunks); a write failing mid-shard
 * (file size limit) gives ERR_IO naming the .tmp and leaves nothing behind.
 *
 * Also a helper for tests/py/test_shard_interop.py and test_shard_parallel.py:
 *   test_shard --write PATH [--float16] [--threads N] [--rows N]   writes a deterministic sample
 *       shard (N rows, default 50; compress_threads N, default 0: the writer's thread) to
 *       PATH and prints the expected content as JSON on stdout.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "jobfile.h"
#include "pipeline.h"
#include "shard.h"

/* ---- deterministic sample rows ---- */

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

enum { BIG_VOCAB = 80000, BIG_ROWS = 30000, HUGE_ROW = 5000, HUGE_NNZ = 70000 };

/* Row r of a sample over vocab_size terms: every 7th row empty, HUGE_ROW (when the vocab allows)
 * holds HUGE_NNZ terms; others up to 40 ascending terms. Returns nnz. */
static int sample_row(int64_t r, int vocab_size, int32_t *indices, float *values) {
  uint64_t h = mix((uint64_t)r);
  int nnz = 0;
  if (r % 7 == 3) return 0;
  if (r == HUGE_ROW && vocab_size > HUGE_NNZ + 10) {
    for (int i = 0; i < HUGE_NNZ; i++) {
      indices[i] = 5 + i;
      values[i] = (float)(i % 1000) * 0.01f + 0.125f;
    }
    return HUGE_NNZ;
  }
  int want = 1 + (int)(h % 40);
  int64_t v = (int64_t)((h >> 8) % 50);
  while (nnz < want && v < vocab_size) {
    uint64_t g = mix(h + (uint64_t)nnz);
    indices[nnz] = (int32_t)v;
    values[nnz] = (float)(g % 100000) / 1000.0f + 0.001f;
    nnz++;
    v += 1 + (int64_t)(g % (uint64_t)(vocab_size / want + 1));
  }
  return nnz;
}

static void sample_doc_id(int64_t r, char *buf, size_t cap) {
  if (r % 1000 == 17)
    snprintf(buf, cap, "文書-%lld-é", (long long)r);
  else
    snprintf(buf, cap, "doc-%lld", (long long)r);
}

/* Vocab of n terms with some non-ASCII and WordPiece-looking ones; caller frees with free_vocab. */
static char **make_vocab(int n) {
  char **vocab = malloc((size_t)n * sizeof *vocab);
  for (int v = 0; v < n; v++) {
    char buf[64];
    switch (v) {
      case 0: snprintf(buf, sizeof buf, "[PAD]"); break;
      case 1: snprintf(buf, sizeof buf, "é"); break;
      case 2: snprintf(buf, sizeof buf, "##ing"); break;
      case 3: snprintf(buf, sizeof buf, "日本"); break;
      case 4: snprintf(buf, sizeof buf, "\"quote\\"); break;
      default: snprintf(buf, sizeof buf, "t%d", v); break;
    }
    vocab[v] = strdup(buf);
  }
  return vocab;
}

static void free_vocab(char **vocab, int n) {
  for (int v = 0; v < n; v++) free(vocab[v]);
  free(vocab);
}

static shard_meta sample_meta(char **vocab, int vocab_size, int64_t first_doc) {
  shard_meta m = {0};
  m.model = "rasyosef/splade-tiny";
  m.max_length = 256;
  m.threshold = 0.25f;
  m.top_k = 0;
  m.first_doc = first_doc;
  m.input_start = 1000;
  m.input_end = 98765;
  m.vocab_size = vocab_size;
  m.vocab = (const char *const *)vocab;
  return m;
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

typedef struct fixed_rows fixed_rows;
static int write_rows(const char *path, char **vocab, int vocab_size, int64_t first, int64_t n,
                      const fixed_rows *f, int float16, int threads);

/* Writes rows [first, first + n) of the sample (2 compression threads). Returns 0 or the
 * writer's error. */
static int write_sample(const char *path, char **vocab, int vocab_size, int64_t first, int64_t n,
                        int float16) {
  return write_rows(path, vocab, vocab_size, first, n, NULL, float16, 2);
}

/* Compares rows [row, row + n) read from r with the sample (first = the shard's first_doc). */
static void check_rows(shard_reader *r, int64_t first, int64_t row, int64_t n, int vocab_size,
                       int float16) {
  const char *const *ids;
  const int64_t *indptr;
  const int32_t *indices;
  const float *values;
  int32_t *want_indices = malloc(HUGE_NNZ * sizeof *want_indices);
  float *want_values = malloc(HUGE_NNZ * sizeof *want_values);
  int rc = shard_reader_rows(r, row, n, &ids, &indptr, &indices, &values);
  CHECK(rc == 0);
  if (rc == 0) {
    CHECK(indptr[0] == 0);
    int bad = 0;
    for (int64_t d = 0; d < n && bad < 5; d++) {
      char id[64];
      sample_doc_id(first + row + d, id, sizeof id);
      int nnz = sample_row(first + row + d, vocab_size, want_indices, want_values);
      if (strcmp(ids[d], id) || indptr[d + 1] - indptr[d] != nnz) {
        bad++;
        continue;
      }
      for (int k = 0; k < nnz; k++) {
        float got = values[indptr[d] + k], want = want_values[k];
        int value_ok = float16 ? fabsf(got - want) <= fabsf(want) * (1.0f / 2048.0f) : got == want;
        if (indices[indptr[d] + k] != want_indices[k] || !value_ok) {
          bad++;
          break;
        }
      }
    }
    CHECK(bad == 0);
  }
  free(want_indices);
  free(want_values);
}

static char tmpdir[256];

static void path_in(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* ---- tests ---- */

static void test_round_trip(void) {
  char **vocab = make_vocab(BIG_VOCAB);
  char path[512], tmp[520];
  path_in(path, sizeof path, "big.h5");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);

  /* before finish: only the .tmp exists */
  shard_meta m = sample_meta(vocab, BIG_VOCAB, 200000);
  shard_writer *w = NULL;
  int32_t *indices = malloc(HUGE_NNZ * sizeof *indices);
  float *values = malloc(HUGE_NNZ * sizeof *values);
  CHECK(shard_writer_open(path, &m, &w) == 0);
  for (int64_t r = 0; r < BIG_ROWS; r++) {
    char id[64];
    sample_doc_id(200000 + r, id, sizeof id);
    int nnz = sample_row(200000 + r, BIG_VOCAB, indices, values);
    if (shard_writer_append(w, id, indices, values, nnz) != 0) {
      CHECK(!"append failed");
      break;
    }
  }
  CHECK(file_exists(tmp) && !file_exists(path));
  CHECK(shard_writer_finish(w) == 0);
  CHECK(file_exists(path) && !file_exists(tmp));
  free(indices);
  free(values);

  shard_info info;
  CHECK(shard_check(path, 200000, BIG_ROWS, &info) == 0);
  CHECK(info.nnz > 3 * 65536); /* crosses several data chunks */
  CHECK(shard_check(path, 0, BIG_ROWS, NULL) == ERR_MISMATCH);
  CHECK(strstr(err_msg(), "first_doc") != NULL);
  CHECK(shard_check(path, -1, 5, NULL) == ERR_MISMATCH);
  CHECK(shard_check(path, -1, -1, NULL) == 0);

  shard_reader *r = NULL;
  CHECK(shard_reader_open(path, &r) == 0);
  if (!r) goto done;
  const shard_info *ri = shard_reader_info(r);
  CHECK(ri->n_docs == BIG_ROWS && ri->first_doc == 200000 && ri->vocab_size == BIG_VOCAB);
  CHECK(ri->format_version == 1 && ri->max_length == 256 && ri->top_k == 0);
  CHECK(ri->threshold == 0.25f && ri->input_start == 1000 && ri->input_end == 98765);
  CHECK(!strcmp(ri->model, "rasyosef/splade-tiny"));
  CHECK(ri->value_bits == 32 && ri->nnz == info.nnz);
  CHECK(!strcmp(shard_reader_term(r, 1), "é") && !strcmp(shard_reader_term(r, 3), "日本"));
  CHECK(!strcmp(shard_reader_term(r, BIG_VOCAB - 1), "t79999"));
  CHECK(shard_reader_term(r, BIG_VOCAB) == NULL && shard_reader_term(r, -1) == NULL);

  for (int64_t row = 0; row < BIG_ROWS; row += 1000) check_rows(r, 200000, row, 1000, BIG_VOCAB, 0);
  for (int64_t row = 0; row < 50; row++) check_rows(r, 200000, row, 1, BIG_VOCAB, 0);
  check_rows(r, 200000, BIG_ROWS - 1, 1, BIG_VOCAB, 0);  /* backwards jump */
  check_rows(r, 200000, 12345, 777, BIG_VOCAB, 0);
  check_rows(r, 200000, 0, BIG_ROWS, BIG_VOCAB, 0);      /* all at once */
  check_rows(r, 200000, 16380, 10, BIG_VOCAB, 0);        /* across the reader's window */
  const char *const *ids;
  const int64_t *indptr;
  const int32_t *ix;
  const float *vals;
  CHECK(shard_reader_rows(r, 5, 0, &ids, &indptr, &ix, &vals) == 0 && indptr[0] == 0);
  CHECK(shard_reader_rows(r, BIG_ROWS, 1, &ids, &indptr, &ix, &vals) == ERR_ARG);
  CHECK(shard_reader_rows(r, -1, 1, &ids, &indptr, &ix, &vals) == ERR_ARG);
  shard_reader_close(r);
  shard_reader_close(NULL);

  /* one row larger than the writer's buffer, at global doc HUGE_ROW */
  path_in(path, sizeof path, "huge.h5");
  CHECK(write_sample(path, vocab, BIG_VOCAB, HUGE_ROW - 2, 5, 0) == 0);
  CHECK(shard_reader_open(path, &r) == 0);
  if (r) {
    CHECK(shard_reader_info(r)->nnz > HUGE_NNZ);
    check_rows(r, HUGE_ROW - 2, 0, 5, BIG_VOCAB, 0);
    check_rows(r, HUGE_ROW - 2, 2, 1, BIG_VOCAB, 0);
    shard_reader_close(r);
  }
done:
  free_vocab(vocab, BIG_VOCAB);
}

static void test_float16_and_empty(void) {
  char **vocab = make_vocab(300);
  char path[512];
  shard_reader *r = NULL;
  path_in(path, sizeof path, "half.h5");
  CHECK(write_sample(path, vocab, 300, 0, 100, 1) == 0);
  CHECK(shard_reader_open(path, &r) == 0);
  if (r) {
    CHECK(shard_reader_info(r)->value_bits == 16);
    check_rows(r, 0, 0, 100, 300, 1);
    shard_reader_close(r);
  }
  /* a shard with no rows at all */
  path_in(path, sizeof path, "empty.h5");
  CHECK(write_sample(path, vocab, 300, 700, 0, 0) == 0);
  CHECK(shard_check(path, 700, 0, NULL) == 0);
  CHECK(shard_reader_open(path, &r) == 0);
  if (r) {
    const char *const *ids;
    const int64_t *indptr;
    const int32_t *ix;
    const float *vals;
    CHECK(shard_reader_info(r)->n_docs == 0 && shard_reader_info(r)->nnz == 0);
    CHECK(shard_reader_rows(r, 0, 0, &ids, &indptr, &ix, &vals) == 0 && indptr[0] == 0);
    shard_reader_close(r);
  }
  free_vocab(vocab, 300);
}

static void test_abort_and_bad_rows(void) {
  char **vocab = make_vocab(100);
  char path[512], tmp[520];
  path_in(path, sizeof path, "aborted.h5");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  shard_meta m = sample_meta(vocab, 100, 0);
  shard_writer *w = NULL;
  int32_t ix[3] = {1, 5, 9};
  float val[3] = {1, 2, 3};
  CHECK(shard_writer_open(path, &m, &w) == 0);
  CHECK(shard_writer_append(w, "a", ix, val, 3) == 0);
  CHECK(file_exists(tmp));
  shard_writer_abort(w);
  shard_writer_abort(NULL);
  CHECK(!file_exists(tmp) && !file_exists(path));

  /* a leftover .tmp (garbage) is replaced; rows breaking the rules are refused, the rest kept */
  FILE *f = fopen(tmp, "wb");
  fputs("leftover garbage", f);
  fclose(f);
  CHECK(shard_writer_open(path, &m, &w) == 0);
  int32_t descending[2] = {5, 2}, outside[2] = {5, 100}, repeated[2] = {5, 5};
  CHECK(shard_writer_append(w, "a", ix, val, 3) == 0);
  CHECK(shard_writer_append(w, "bad", descending, val, 2) == ERR_ARG);
  CHECK(strstr(err_msg(), "bad") && strstr(err_msg(), "ascending"));
  CHECK(shard_writer_append(w, "bad", outside, val, 2) == ERR_ARG);
  CHECK(strstr(err_msg(), "vocabulary") != NULL);
  CHECK(shard_writer_append(w, "bad", repeated, val, 2) == ERR_ARG);
  CHECK(shard_writer_append(w, "", NULL, NULL, 0) == 0);
  CHECK(shard_writer_set_input_range(w, 17, 4242) == 0);
  CHECK(shard_writer_finish(w) == 0);
  shard_info info;
  CHECK(shard_check(path, 0, 2, &info) == 0);
  CHECK(info.input_start == 17 && info.input_end == 4242 && info.nnz == 3);
  CHECK(!file_exists(tmp));

  /* a writer that cannot create its file */
  CHECK(shard_writer_open("/nonexistent-dir/x.h5", &m, &w) == ERR_IO && w == NULL);
  CHECK(strstr(err_msg(), "/nonexistent-dir/x.h5.tmp") != NULL);
  m.vocab_size = 0;
  CHECK(shard_writer_open(path, &m, &w) == ERR_ARG);
  free_vocab(vocab, 100);
}

static int copy_file(const char *from, const char *to, long limit) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  char buf[65536];
  size_t n;
  long total = 0;
  if (!in || !out) return -1;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
    if (limit >= 0 && total + (long)n > limit) n = (size_t)(limit - total);
    fwrite(buf, 1, n, out);
    total += (long)n;
    if (limit >= 0 && total >= limit) break;
  }
  fclose(in);
  fclose(out);
  return 0;
}

/* Opening must fail with code and a message naming path and containing needle. */
static void expect_open_fails(const char *path, int code, const char *needle) {
  shard_reader *r = NULL;
  err_clear();
  int rc = shard_reader_open(path, &r);
  CHECK(rc == code && r == NULL);
  CHECK(strstr(err_msg(), path) != NULL);
  if (needle && !strstr(err_msg(), needle))
    fprintf(stderr, "  message was: %s (wanted '%s')\n", err_msg(), needle);
  if (needle) CHECK(strstr(err_msg(), needle) != NULL);
  if (r) shard_reader_close(r);
}

/* Rewrites one element of a 1-D integer dataset of an existing file. */
static void poke(const char *path, const char *dataset, hsize_t at, long long value) {
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t dset = H5Dopen2(file, dataset, H5P_DEFAULT);
  hid_t space = H5Dget_space(dset);
  hsize_t one = 1;
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &at, NULL, &one, NULL);
  hid_t mem = H5Screate_simple(1, &one, NULL);
  CHECK(H5Dwrite(dset, H5T_NATIVE_LLONG, mem, space, H5P_DEFAULT, &value) >= 0);
  H5Sclose(mem);
  H5Sclose(space);
  H5Dclose(dset);
  H5Fclose(file);
}

static void set_string_attr(const char *path, const char *name, const char *value) {
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  H5Adelete(file, name);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(H5Awrite(attr, type, &value) >= 0);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(file);
}

static void test_corrupted(void) {
  char **vocab = make_vocab(500);
  char good[512], bad[512];
  struct stat st;
  path_in(good, sizeof good, "good.h5");
  path_in(bad, sizeof bad, "bad.h5");
  CHECK(write_sample(good, vocab, 500, 0, 3000, 0) == 0);
  CHECK(stat(good, &st) == 0);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

  expect_open_fails("/nonexistent/shard.h5", ERR_IO, "No such file");
  long cuts[] = {0, 100, 2048, (long)st.st_size / 2, (long)st.st_size - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    copy_file(good, bad, cuts[i]);
    expect_open_fails(bad, ERR_FORMAT, NULL);
    CHECK(shard_check(bad, 0, 3000, NULL) == ERR_FORMAT);
  }
  FILE *f = fopen(bad, "wb");
  fputs("this is not an HDF5 file at all\n", f);
  fclose(f);
  expect_open_fails(bad, ERR_FORMAT, "not a readable HDF5 file");

  copy_file(good, bad, -1);
  set_string_attr(bad, "format", "something-else");
  expect_open_fails(bad, ERR_FORMAT, "not a spladex shard");
  CHECK(strstr(err_msg(), "something-else") != NULL);

  copy_file(good, bad, -1);
  {
    hid_t file = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(file, "format_version");
    int version = 2;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "format_version", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_INT, &version);
    H5Aclose(attr);
    H5Sclose(space);
    H5Fclose(file);
  }
  expect_open_fails(bad, ERR_FORMAT, "format_version 2");

  copy_file(good, bad, -1);
  {
    hid_t file = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(file, "/vectors/indices", H5P_DEFAULT);
    H5Fclose(file);
  }
  expect_open_fails(bad, ERR_FORMAT, "indices");

  copy_file(good, bad, -1);
  {
    hid_t file = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(file, "n_docs");
    H5Fclose(file);
  }
  expect_open_fails(bad, ERR_FORMAT, "n_docs");

  /* structure fine, rows broken: found when the rows are read, naming the row */
  const char *const *ids;
  const int64_t *indptr;
  const int32_t *ix;
  const float *vals;
  shard_reader *r = NULL;
  copy_file(good, bad, -1);
  poke(bad, "/vectors/indices", 10, 1000000);
  CHECK(shard_check(bad, 0, 3000, NULL) == 0); /* cheap check does not read rows */
  CHECK(shard_reader_open(bad, &r) == 0);
  if (r) {
    CHECK(shard_reader_rows(r, 0, 100, &ids, &indptr, &ix, &vals) == ERR_FORMAT);
    CHECK(strstr(err_msg(), "outside the vocabulary") && strstr(err_msg(), "row 0"));
    CHECK(shard_reader_rows(r, 200, 100, &ids, &indptr, &ix, &vals) == 0);
    shard_reader_close(r);
  }
  copy_file(good, bad, -1);
  poke(bad, "/vectors/indptr", 1500, 5);
  CHECK(shard_reader_open(bad, &r) == 0);
  if (r) {
    CHECK(shard_reader_rows(r, 1400, 200, &ids, &indptr, &ix, &vals) == ERR_FORMAT);
    CHECK(strstr(err_msg(), "indptr") != NULL);
    shard_reader_close(r);
  }
  copy_file(good, bad, -1);
  poke(bad, "/vectors/indptr", 3000, 5);
  expect_open_fails(bad, ERR_FORMAT, "indptr");
  unlink(bad);
  free_vocab(vocab, 500);
}

static void test_jobfile(void) {
  job_params a, b;
  const char *field = NULL;
  char path[600];
  job_params_init(&a);
  snprintf(a.version, sizeof a.version, "0.1.0");
  snprintf(a.model, sizeof a.model, "naver/efficient-splade-VI-BT-large-doc");
  snprintf(a.model_sha256, sizeof a.model_sha256, "%064d", 7);
  snprintf(a.input, sizeof a.input, "/data/collection \"tsv\".tsv");
  a.input_size = 3000000000LL;
  snprintf(a.format, sizeof a.format, "tsv");
  a.max_length = 256;
  a.threshold = 0.1f;
  a.top_k = 64;
  a.shard_size = 100000;
  snprintf(a.precision, sizeof a.precision, "fp16");

  CHECK(job_read(tmpdir, &b) == 1 && b.n_docs_total == -1);
  CHECK(job_write(tmpdir, &a) == 0);
  CHECK(job_read(tmpdir, &b) == 0);
  CHECK(job_compare(&a, &b, &field) == 0 && field == NULL);
  CHECK(b.threshold == 0.1f && b.input_size == 3000000000LL && b.n_docs_total == -1);
  CHECK(!strcmp(b.input, a.input));

  b.max_length = 128;
  CHECK(job_compare(&a, &b, &field) == ERR_MISMATCH && field && !strcmp(field, "max_length"));
  CHECK(strstr(err_msg(), "max_length") && strstr(err_msg(), "256") && strstr(err_msg(), "128"));
  b.top_k = 0; /* the first differing one is named */
  CHECK(job_compare(&a, &b, &field) == ERR_MISMATCH && !strcmp(field, "max_length"));
  job_read(tmpdir, &b);
  b.threshold = 0.2f;
  CHECK(job_compare(&a, &b, &field) == ERR_MISMATCH && !strcmp(field, "threshold"));
  job_read(tmpdir, &b);
  snprintf(b.model_sha256, sizeof b.model_sha256, "%064d", 8);
  CHECK(job_compare(&a, &b, &field) == ERR_MISMATCH && !strcmp(field, "model_sha256"));
  job_read(tmpdir, &b);
  snprintf(b.precision, sizeof b.precision, "fp32");
  CHECK(job_compare(&a, &b, &field) == ERR_MISMATCH && !strcmp(field, "precision"));

  job_set_totals(&a, 250001);
  CHECK(a.n_shards == 3);
  CHECK(job_write(tmpdir, &a) == 0);
  CHECK(job_read(tmpdir, &b) == 0 && b.n_docs_total == 250001 && b.n_shards == 3);
  CHECK(job_shard_docs(&b, 0) == 100000 && job_shard_docs(&b, 2) == 50001);
  CHECK(job_shard_docs(&b, 3) == 0 && job_shard_first_doc(&b, 2) == 200000);
  job_set_totals(&a, 0);
  CHECK(a.n_shards == 0);

  int64_t s = -1;
  int partial = -1;
  CHECK(job_shard_path("out", 42, path, sizeof path) == 0 && !strcmp(path, "out/shard-00042.h5"));
  CHECK(job_shard_path("out", 123456, path, sizeof path) == 0 && !strcmp(path, "out/shard-123456.h5"));
  CHECK(job_shard_index("shard-00042.h5", &s, &partial) == 1 && s == 42 && partial == 0);
  CHECK(job_shard_index("shard-123456.h5.tmp", &s, &partial) == 1 && s == 123456 && partial == 1);
  CHECK(job_shard_index("shard-42.h5", &s, &partial) == 0);
  CHECK(job_shard_index("shard-00042.h5.bak", &s, &partial) == 0);
  CHECK(job_shard_index("job.json", &s, &partial) == 0);
  CHECK(job_path("out", path, sizeof path) == 0 && !strcmp(path, "out/job.json"));

  /* malformed job.json files */
  job_path(tmpdir, path, sizeof path);
  FILE *f = fopen(path, "w");
  fputs("{\"job_version\": 1, \"version\": \"0.1.0\"}", f);
  fclose(f);
  CHECK(job_read(tmpdir, &b) == ERR_FORMAT && strstr(err_msg(), "'model'"));
  f = fopen(path, "w");
  fputs("not json", f);
  fclose(f);
  CHECK(job_read(tmpdir, &b) == ERR_FORMAT && strstr(err_msg(), path));
  unlink(path);
  /* no temporaries left behind */
  char command[700], listing[256] = "";
  snprintf(command, sizeof command, "ls '%s' | grep -c 'job.json.tmp' || true", tmpdir);
  FILE *ls = popen(command, "r");
  if (ls) {
    if (!fgets(listing, sizeof listing, ls)) listing[0] = '\0';
    pclose(ls);
  }
  CHECK(atoi(listing) == 0);
}

/* Runs a shell command line, captures stdout into out, returns the exit status. */
static int run_capture(const char *command, char *out, size_t cap) {
  FILE *p = popen(command, "r");
  size_t n = 0;
  if (!p) return -1;
  n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli(void) {
  const char *bin = getenv("SPLADEX_BIN");
  if (!bin || !file_exists(bin)) {
    printf("test_shard: SPLADEX_BIN not set, skipping the info/verify CLI checks\n");
    return;
  }
  enum { VOCAB = 200, SHARD = 40, DOCS = 95 };
  char **vocab = make_vocab(VOCAB);
  char dir[512], path[700], command[2048];
  static char out[1 << 16];
  path_in(dir, sizeof dir, "job");
  mkdir(dir, 0755);
  job_params p;
  job_params_init(&p);
  snprintf(p.version, sizeof p.version, "0.1.0");
  snprintf(p.model, sizeof p.model, "rasyosef/splade-tiny");
  snprintf(p.model_sha256, sizeof p.model_sha256, "%064d", 1);
  snprintf(p.input, sizeof p.input, "/dev/null");
  snprintf(p.format, sizeof p.format, "tsv");
  snprintf(p.precision, sizeof p.precision, "fp32");
  p.max_length = 256;
  p.threshold = 0.25f;
  p.shard_size = SHARD;
  CHECK(job_write(dir, &p) == 0);
  for (int s = 0; s < 3; s++) {
    job_shard_path(dir, s, path, sizeof path);
    int64_t first = (int64_t)s * SHARD;
    CHECK(write_sample(path, vocab, VOCAB, first, first + SHARD <= DOCS ? SHARD : DOCS - first, 0) == 0);
  }
  /* unfinished job (no totals yet): verify says so */
  snprintf(command, sizeof command, "'%s' verify '%s'", bin, dir);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "not finished"));
  job_set_totals(&p, DOCS);
  CHECK(job_write(dir, &p) == 0);
  int status = run_capture(command, out, sizeof out);
  CHECK(status == 0 && strstr(out, "OK: 3 shards, 95 docs"));
  if (status != 0) fprintf(stderr, "verify said:\n%s", out);

  /* info --json: compare with statistics computed here from the sample */
  int64_t *df = calloc(VOCAB, sizeof *df), nnz = 0, min = 1 << 30, max = 0;
  int32_t ix[64];
  float val[64];
  for (int64_t r = 0; r < DOCS; r++) {
    int n = sample_row(r, VOCAB, ix, val);
    for (int k = 0; k < n; k++) df[ix[k]]++;
    nnz += n;
    if (n < min) min = n;
    if (n > max) max = n;
  }
  double flops = 0;
  int64_t best_df = 0;
  for (int v = 0; v < VOCAB; v++) {
    flops += ((double)df[v] / DOCS) * ((double)df[v] / DOCS);
    if (df[v] > best_df) best_df = df[v];
  }
  snprintf(command, sizeof command, "'%s' info --json --top 5 '%s'", bin, dir);
  CHECK(run_capture(command, out, sizeof out) == 0);
  cJSON *root = cJSON_Parse(out);
  CHECK(root != NULL);
  if (root) {
    cJSON *tpd = cJSON_GetObjectItem(root, "terms_per_doc");
    cJSON *top = cJSON_GetObjectItem(root, "top_terms");
    CHECK(cJSON_GetObjectItem(root, "docs")->valuedouble == DOCS);
    CHECK(cJSON_GetObjectItem(root, "nnz")->valuedouble == (double)nnz);
    CHECK(cJSON_GetObjectItem(root, "shards")->valuedouble == 3);
    CHECK_NEAR(cJSON_GetObjectItem(root, "flops")->valuedouble, flops, 1e-12);
    CHECK(tpd && cJSON_GetObjectItem(tpd, "min")->valuedouble == (double)min);
    CHECK(tpd && cJSON_GetObjectItem(tpd, "max")->valuedouble == (double)max);
    CHECK_NEAR(cJSON_GetObjectItem(tpd, "mean")->valuedouble, (double)nnz / DOCS, 1e-12);
    CHECK(cJSON_GetArraySize(top) == 5);
    cJSON *t0 = cJSON_GetArrayItem(top, 0);
    CHECK(t0 && cJSON_GetObjectItem(t0, "df")->valuedouble == (double)best_df);
    int id0 = t0 ? (int)cJSON_GetObjectItem(t0, "id")->valuedouble : 0;
    CHECK(t0 && !strcmp(cJSON_GetObjectItem(t0, "term")->valuestring, vocab[id0]));
    cJSON_Delete(root);
  }
  /* text output of one shard */
  job_shard_path(dir, 2, path, sizeof path);
  snprintf(command, sizeof command, "'%s' info '%s'", bin, path);
  CHECK(run_capture(command, out, sizeof out) == 0 && strstr(out, "docs          15"));

  /* problems: a partial .tmp, a missing shard, an inconsistent shard, a corrupted row */
  char tmp[720];
  job_shard_path(dir, 1, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  copy_file(path, tmp, 1000);
  snprintf(command, sizeof command, "'%s' verify '%s'", bin, dir);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "partial"));
  unlink(tmp);
  rename(path, tmp);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "shard-00001.h5: missing"));
  unlink(tmp);
  CHECK(write_sample(path, vocab, VOCAB, 41, SHARD, 0) == 0); /* wrong first_doc */
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "inconsistent") &&
        strstr(out, "first_doc"));
  CHECK(write_sample(path, vocab, VOCAB, 40, SHARD - 1, 0) == 0); /* wrong n_docs */
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "n_docs"));
  CHECK(write_sample(path, vocab, VOCAB, 40, SHARD, 0) == 0);
  CHECK(run_capture(command, out, sizeof out) == 0);
  poke(path, "/vectors/indices", 3, -5);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "outside the vocabulary"));
  snprintf(command, sizeof command, "'%s' verify --quick '%s'", bin, dir);
  CHECK(run_capture(command, out, sizeof out) == 0); /* quick does not read rows */
  CHECK(write_sample(path, vocab, VOCAB, 40, SHARD, 0) == 0);
  job_shard_path(dir, 3, path, sizeof path);
  CHECK(write_sample(path, vocab, VOCAB, 120, 5, 0) == 0);
  snprintf(command, sizeof command, "'%s' verify '%s'", bin, dir);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "unexpected"));
  unlink(path);
  /* an attribute disagreeing with job.json */
  p.top_k = 7;
  CHECK(job_write(dir, &p) == 0);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "'top_k'"));
  snprintf(command, sizeof command, "'%s' verify '%s/nonexistent' >/dev/null 2>&1", bin, dir);
  CHECK(run_capture(command, out, sizeof out) != 0);
  snprintf(command, sizeof command, "'%s' info '%s/nonexistent' 2>&1", bin, dir);
  CHECK(run_capture(command, out, sizeof out) == 1 && strstr(out, "nonexistent"));
  free(df);
  free_vocab(vocab, VOCAB);
}

/* ---- parallel compression: the same file as HDF5's own filters ---- */

enum { CHUNK = 65536 }; /* the data / indices chunk of io/shard_writer.c (SHARD_ENTRY_BUFFER) */

/* Row r of the "fixed" rows: every row has per_row terms except the rows from tail_row on, which
 * have tail_nnz; ascending ids spread over the vocabulary, values from a hash. Returns nnz. */
struct fixed_rows {
  int per_row, tail_row, tail_nnz, vocab_size;
};

static int fixed_row(const fixed_rows *f, int64_t r, int32_t *indices, float *values) {
  int nnz = r >= f->tail_row ? f->tail_nnz : f->per_row;
  int stride = f->vocab_size / (nnz ? nnz : 1);
  for (int k = 0; k < nnz; k++) {
    uint64_t h = mix((uint64_t)r * 1000003u + (uint64_t)k);
    indices[k] = k * stride + (int32_t)(h % (uint64_t)stride);
    values[k] = (float)(h >> 40) / 65536.0f + 0.01f;
  }
  return nnz;
}

/* Writes n fixed rows (or, with f NULL, sample rows [first, first + n)) with compress_threads
 * threads (0: the calling thread, < 0: HDF5's filters). Returns 0 or the writer's error. */
static int write_rows(const char *path, char **vocab, int vocab_size, int64_t first, int64_t n,
                      const fixed_rows *f, int float16, int threads) {
  shard_meta m = sample_meta(vocab, vocab_size, first);
  m.float16 = float16;
  m.compress_threads = threads;
  shard_writer *w = NULL;
  int32_t *indices = malloc(HUGE_NNZ * sizeof *indices);
  float *values = malloc(HUGE_NNZ * sizeof *values);
  int rc = shard_writer_open(path, &m, &w);
  for (int64_t r = first; rc == 0 && r < first + n; r++) {
    char id[64];
    sample_doc_id(r, id, sizeof id);
    int nnz = f ? fixed_row(f, r - first, indices, values)
                : sample_row(r, vocab_size, indices, values);
    rc = shard_writer_append(w, id, indices, values, nnz);
  }
  if (rc == 0) {
    rc = shard_writer_finish(w);
  } else {
    shard_writer_abort(w);
  }
  free(indices);
  free(values);
  return rc;
}

/* Every row of a and b read through shard_reader, one row at a time, is identical (values
 * bitwise). */
static void check_same_rows(const char *a_path, const char *b_path) {
  shard_reader *a = NULL, *b = NULL;
  CHECK(shard_reader_open(a_path, &a) == 0 && shard_reader_open(b_path, &b) == 0);
  if (!a || !b) goto done;
  const shard_info *ia = shard_reader_info(a), *ib = shard_reader_info(b);
  CHECK(ia->n_docs == ib->n_docs && ia->nnz == ib->nnz && ia->value_bits == ib->value_bits);
  int bad = 0;
  for (int64_t row = 0; row < ia->n_docs && row < ib->n_docs && bad < 5; row++) {
    const char *const *ids[2];
    const int64_t *indptr[2];
    const int32_t *ix[2];
    const float *val[2];
    if (shard_reader_rows(a, row, 1, &ids[0], &indptr[0], &ix[0], &val[0]) != 0 ||
        shard_reader_rows(b, row, 1, &ids[1], &indptr[1], &ix[1], &val[1]) != 0) {
      bad++;
      continue;
    }
    size_t nnz = (size_t)indptr[0][1];
    if (strcmp(ids[0][0], ids[1][0]) || indptr[1][1] != indptr[0][1] ||
        (nnz && (memcmp(ix[0], ix[1], nnz * sizeof *ix[0]) ||
                 memcmp(val[0], val[1], nnz * sizeof *val[0])))) {
      fprintf(stderr, "  %s and %s differ at row %lld\n", a_path, b_path, (long long)row);
      bad++;
    }
  }
  CHECK(bad == 0);
done:
  shard_reader_close(a);
  shard_reader_close(b);
}

/* Dataset name of files a and b: same type, extent, decoded contents (H5Dread through the
 * filters), and each chunk's stored bytes (H5Dread_chunk) identical, filter mask 0; the dcpl is
 * chunked with shuffle then deflate 4. Returns the number of chunks. */
static int check_same_dataset(hid_t a, hid_t b, const char *name, int check_chunks) {
  hid_t da = H5Dopen2(a, name, H5P_DEFAULT), db = H5Dopen2(b, name, H5P_DEFAULT);
  int chunks = 0;
  CHECK(da >= 0 && db >= 0);
  if (da < 0 || db < 0) goto done;
  hid_t ta = H5Dget_type(da), tb = H5Dget_type(db);
  CHECK(H5Tequal(ta, tb) > 0);
  size_t size = H5Tget_size(ta);
  H5Tclose(tb);
  hid_t sa = H5Dget_space(da), sb = H5Dget_space(db);
  hsize_t na = 0, nb = 0;
  H5Sget_simple_extent_dims(sa, &na, NULL);
  H5Sget_simple_extent_dims(sb, &nb, NULL);
  H5Sclose(sa);
  H5Sclose(sb);
  CHECK(na == nb);
  hid_t dcpl = H5Dget_create_plist(db);
  hsize_t chunk = 0;
  CHECK(H5Pget_chunk(dcpl, 1, &chunk) == 1);
  CHECK(H5Pget_nfilters(dcpl) == 2);
  unsigned flags = 0, level = 0;
  size_t n_values = 1;
  CHECK(H5Pget_filter2(dcpl, 0, &flags, &n_values, &level, 0, NULL, NULL) == H5Z_FILTER_SHUFFLE);
  n_values = 1;
  CHECK(H5Pget_filter2(dcpl, 1, &flags, &n_values, &level, 0, NULL, NULL) == H5Z_FILTER_DEFLATE);
  CHECK(level == 4);
  H5Pclose(dcpl);
  if (na == nb && na > 0 && H5Tget_class(ta) != H5T_STRING) {
    unsigned char *ba = malloc(na * size), *bb = malloc(na * size);
    hid_t mem = H5Tcopy(ta);
    CHECK(H5Dread(da, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) >= 0);
    CHECK(H5Dread(db, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) >= 0);
    CHECK(memcmp(ba, bb, na * size) == 0);
    H5Tclose(mem);
    free(ba);
    free(bb);
  }
  if (check_chunks) {
    size_t cap = chunk * size * 2 + 1024;
    unsigned char *ca = malloc(cap), *cb = malloc(cap);
    for (hsize_t offset = 0; offset < na; offset += chunk, chunks++) {
      hsize_t bytes_a = 0, bytes_b = 0;
      uint32_t mask_a = 1, mask_b = 1;
      CHECK(H5Dget_chunk_storage_size(da, &offset, &bytes_a) >= 0);
      CHECK(H5Dget_chunk_storage_size(db, &offset, &bytes_b) >= 0);
      CHECK(bytes_a == bytes_b && bytes_a > 0 && bytes_a <= cap);
      if (bytes_a != bytes_b || bytes_a == 0 || bytes_a > cap) continue;
      CHECK(H5Dread_chunk(da, H5P_DEFAULT, &offset, &mask_a, ca) >= 0);
      CHECK(H5Dread_chunk(db, H5P_DEFAULT, &offset, &mask_b, cb) >= 0);
      CHECK(mask_a == 0 && mask_b == 0);
      if (memcmp(ca, cb, (size_t)bytes_a)) {
        fprintf(stderr, "  %s chunk at %llu: stored bytes differ\n", name,
                (unsigned long long)offset);
        CHECK(!"same chunk bytes");
      }
    }
    free(ca);
    free(cb);
  }
  H5Tclose(ta);
done:
  if (da >= 0) H5Dclose(da);
  if (db >= 0) H5Dclose(db);
  return chunks;
}

/* Shards a_path and b_path hold the same rows and decoded datasets; with same_bytes also the same
 * stored chunk bytes, want_chunks of them in /vectors/data and /vectors/indices. */
static void check_same_shards(const char *a_path, const char *b_path, int same_bytes, int64_t want_chunks) {
  check_same_rows(a_path, b_path);
  hid_t a = H5Fopen(a_path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t b = H5Fopen(b_path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(a >= 0 && b >= 0);
  if (a >= 0 && b >= 0) {
    int chunks = check_same_dataset(a, b, "vectors/data", same_bytes);
    CHECK(check_same_dataset(a, b, "vectors/indices", same_bytes) == chunks);
    if (same_bytes) CHECK(chunks == (int)want_chunks);
    check_same_dataset(a, b, "vectors/indptr", same_bytes);
    check_same_dataset(a, b, "doc_ids", 0);
  }
  if (a >= 0) H5Fclose(a);
  if (b >= 0) H5Fclose(b);
}

/* Shards compressed on the writer's thread (compress_threads 0) and by 1 and 3 compression
 * threads hold the same rows, the same decoded datasets and the same stored chunk bytes; HDF5's
 * own filters (-1) the same rows and decoded datasets (other bytes: shard_writer.c picks a zlib
 * mode per byte plane): no rows, one row, exactly one chunk, one chunk + 1 entry, several chunks
 * with a row larger than a chunk, float16 data. */
static void test_parallel_compression(void) {
  enum { VOCAB = 30522 };
  char **vocab = make_vocab(BIG_VOCAB);
  const fixed_rows one_row = {5, 1, 0, VOCAB};
  const fixed_rows one_chunk = {256, 256, 0, VOCAB};     /* 256 x 256 = 65536 entries */
  const fixed_rows chunk_plus_one = {256, 256, 1, VOCAB}; /* then one row of 1 entry */
  const fixed_rows chunks_plus_empty = {128, 1536, 0, VOCAB}; /* 3 chunks, then empty rows */
  struct {
    const char *name;
    const fixed_rows *rows; /* NULL: the sample rows */
    int64_t n;
    int float16, vocab_size;
    int64_t want_nnz;       /* -1: any */
  } cases[] = {
      {"none", &one_row, 0, 0, VOCAB, 0},
      {"one-row", &one_row, 1, 0, VOCAB, 5},
      {"one-chunk", &one_chunk, 256, 0, VOCAB, CHUNK},
      {"chunk-plus-one", &chunk_plus_one, 257, 0, VOCAB, CHUNK + 1},
      {"chunk-plus-one-half", &chunk_plus_one, 257, 1, VOCAB, CHUNK + 1},
      {"three-chunks-then-empty", &chunks_plus_empty, 1600, 0, VOCAB, 3 * CHUNK},
      {"sample", NULL, 12000, 0, BIG_VOCAB, -1}, /* the HUGE_ROW of 70000 terms at row 5000 */
  };
  const int thread_counts[] = {1, 3};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char sync_path[512], par_path[512], name[128];
    snprintf(name, sizeof name, "sync-%s.h5", cases[c].name);
    path_in(sync_path, sizeof sync_path, name);
    CHECK(write_rows(sync_path, vocab, cases[c].vocab_size, 0, cases[c].n, cases[c].rows,
                     cases[c].float16, 0) == 0);
    shard_info info;
    CHECK(shard_check(sync_path, 0, cases[c].n, &info) == 0);
    if (cases[c].want_nnz >= 0) CHECK(info.nnz == cases[c].want_nnz);
    if (!cases[c].rows) CHECK(info.nnz > 3 * CHUNK);
    {
      char hdf5_path[512];
      snprintf(name, sizeof name, "hdf5-%s.h5", cases[c].name);
      path_in(hdf5_path, sizeof hdf5_path, name);
      CHECK(write_rows(hdf5_path, vocab, cases[c].vocab_size, 0, cases[c].n, cases[c].rows,
                       cases[c].float16, -1) == 0);
      CHECK(shard_check(hdf5_path, 0, cases[c].n, NULL) == 0);
      check_same_shards(hdf5_path, sync_path, 0, -1);
    }
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
      snprintf(name, sizeof name, "par%d-%s.h5", thread_counts[t], cases[c].name);
      path_in(par_path, sizeof par_path, name);
      CHECK(write_rows(par_path, vocab, cases[c].vocab_size, 0, cases[c].n, cases[c].rows,
                       cases[c].float16, thread_counts[t]) == 0);
      CHECK(shard_check(par_path, 0, cases[c].n, NULL) == 0);
      check_same_shards(sync_path, par_path, 1, (info.nnz + CHUNK - 1) / CHUNK);
    }
    if (cases[c].rows) {
      shard_reader *r = NULL;
      CHECK(shard_reader_open(par_path, &r) == 0);
      if (r && cases[c].n > 0) {
        /* and the rows are the ones written */
        const char *const *ids;
        const int64_t *indptr;
        const int32_t *ix;
        const float *val;
        int32_t want_ix[256];
        float want_val[256];
        int64_t last = cases[c].n - 1;
        int nnz = fixed_row(cases[c].rows, last, want_ix, want_val);
        CHECK(shard_reader_rows(r, last, 1, &ids, &indptr, &ix, &val) == 0);
        CHECK(indptr[1] == nnz);
        int same = indptr[1] == nnz;
        for (int k = 0; same && k < nnz; k++) {
          float want = cases[c].float16 ? val[k] : want_val[k];
          same = ix[k] == want_ix[k] && val[k] == want;
        }
        CHECK(same);
      }
      shard_reader_close(r);
    }
  }

  /* SPLADEX_SHARD_THREADS as `spladex expand` resolves it (pipe_shard_threads): a bad value
   * is refused, naming the variable; unset or empty gives 1 to 4 threads */
  int threads = -1;
  CHECK(pipe_shard_threads("two", &threads) == ERR_ARG);
  CHECK(strstr(err_msg(), "SPLADEX_SHARD_THREADS") != NULL);
  CHECK(pipe_shard_threads("17", &threads) == ERR_ARG && pipe_shard_threads("-1", &threads) < 0);
  CHECK(pipe_shard_threads("0", &threads) == 0 && threads == 0);
  CHECK(pipe_shard_threads(NULL, &threads) == 0 && threads >= 1 && threads <= 4);
  CHECK(pipe_shard_threads("", &threads) == 0 && threads >= 1 && threads <= 4);
  CHECK(pipe_shard_threads("2", &threads) == 0 && threads == 2);
  char path[512];
  path_in(path, sizeof path, "env.h5");
  CHECK(write_rows(path, vocab, VOCAB, 0, 257, &chunk_plus_one, 0, threads) == 0);
  CHECK(shard_check(path, 0, 257, NULL) == 0);
  free_vocab(vocab, BIG_VOCAB);
}

/* A write failing in the middle of a shard (file size limit: write() fails with EFBIG, as with
 * a full disk) with compression threads: append or finish fails with ERR_IO naming the .tmp;
 * after a failed append, finish refuses; either way no .tmp and no shard remain. Runs in a child
 * (the limit is per process). threads: compress_threads. */
static void test_parallel_write_fails(int threads) {
  char path[512], tmp[520];
  char name[64];
  snprintf(name, sizeof name, "limited-%d.h5", threads);
  path_in(path, sizeof path, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int failures = 0;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(10);
    enum { VOCAB = 2000 };
    char **vocab = make_vocab(VOCAB);
    const fixed_rows rows = {256, 1 << 30, 0, VOCAB};
    shard_meta m = sample_meta(vocab, VOCAB, 0);
    m.compress_threads = threads;
    shard_writer *w = NULL;
    int32_t ix[256];
    float val[256];
    if (shard_writer_open(path, &m, &w) != 0) _exit(11);
    int rc = 0;
    int64_t r = 0;
    for (; rc == 0 && r < 256 * 40; r++) { /* 40 chunks: ~10 MB compressed, limit 1 MB */
      int nnz = fixed_row(&rows, r, ix, val);
      rc = shard_writer_append(w, "d", ix, val, nnz);
    }
    if (rc == 0) {
      rc = shard_writer_finish(w); /* frees w either way */
      fprintf(stderr, "  (threads %d: the write failed at finish)\n", threads);
    } else {
      if (rc != ERR_IO || !strstr(err_msg(), tmp)) failures |= 1;
      fprintf(stderr, "  (threads %d: append failed at row %lld: %s)\n", threads, (long long)r,
              err_msg());
      if (shard_writer_finish(w) != ERR_IO || !strstr(err_msg(), "failed earlier")) failures |= 2;
      rc = ERR_IO;
    }
    if (rc != ERR_IO || !strstr(err_msg(), tmp)) failures |= 4;
    if (file_exists(tmp) || file_exists(path)) failures |= 8;
    free_vocab(vocab, VOCAB);
    _exit(failures);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  if (!WIFEXITED(status) || WEXITSTATUS(status))
    fprintf(stderr, "  the write-failure child exited with %d (signal %d)\n",
            WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the interop sample for tests/py/test_shard_interop.py ---- */

static int write_interop_sample(const char *path, int float16, int threads, int ROWS) {
  enum { VOCAB = 64 };
  char **vocab = make_vocab(VOCAB);
  int rc = write_rows(path, vocab, VOCAB, 0, ROWS, NULL, float16, threads);
  if (rc < 0) {
    fprintf(stderr, "test_shard --write: %s\n", err_msg());
    free_vocab(vocab, VOCAB);
    return 1;
  }
  cJSON *root = cJSON_CreateObject();
  shard_meta m = sample_meta(vocab, VOCAB, 0);
  cJSON_AddStringToObject(root, "model", m.model);
  cJSON_AddNumberToObject(root, "max_length", m.max_length);
  cJSON_AddNumberToObject(root, "threshold", m.threshold);
  cJSON_AddNumberToObject(root, "top_k", m.top_k);
  cJSON_AddNumberToObject(root, "first_doc", 0);
  cJSON_AddNumberToObject(root, "input_start", (double)m.input_start);
  cJSON_AddNumberToObject(root, "input_end", (double)m.input_end);
  cJSON_AddNumberToObject(root, "n_docs", ROWS);
  cJSON_AddNumberToObject(root, "vocab_size", VOCAB);
  cJSON_AddBoolToObject(root, "float16", float16);
  cJSON *vocab_json = cJSON_AddArrayToObject(root, "vocab");
  for (int v = 0; v < VOCAB; v++) cJSON_AddItemToArray(vocab_json, cJSON_CreateString(vocab[v]));
  cJSON *ids = cJSON_AddArrayToObject(root, "doc_ids");
  cJSON *rows = cJSON_AddArrayToObject(root, "rows");
  int32_t ix[64];
  float val[64];
  for (int r = 0; r < ROWS; r++) {
    char id[64];
    sample_doc_id(r, id, sizeof id);
    cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    int n = sample_row(r, VOCAB, ix, val);
    cJSON *row = cJSON_CreateArray(), *ri = cJSON_CreateArray(), *rv = cJSON_CreateArray();
    for (int k = 0; k < n; k++) {
      cJSON_AddItemToArray(ri, cJSON_CreateNumber(ix[k]));
      cJSON_AddItemToArray(rv, cJSON_CreateNumber(val[k])); /* the float32 value, exactly */
    }
    cJSON_AddItemToArray(row, ri);
    cJSON_AddItemToArray(row, rv);
    cJSON_AddItemToArray(rows, row);
  }
  char *text = cJSON_PrintUnformatted(root);
  printf("%s\n", text);
  cJSON_free(text);
  cJSON_Delete(root);
  free_vocab(vocab, VOCAB);
  return 0;
}

static void remove_tree(const char *dir) {
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  if (system(command) != 0) fprintf(stderr, "test_shard: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "--write")) {
    int float16 = 0, threads = 0, rows = 50;
    for (int a = 3; a < argc; a++) {
      if (!strcmp(argv[a], "--float16")) {
        float16 = 1;
      } else if (!strcmp(argv[a], "--threads") && a + 1 < argc) {
        threads = atoi(argv[++a]);
      } else if (!strcmp(argv[a], "--rows") && a + 1 < argc) {
        rows = atoi(argv[++a]);
      } else {
        fprintf(stderr, "test_shard --write PATH [--float16] [--threads N] [--rows N]\n");
        return 2;
      }
    }
    return write_interop_sample(argv[2], float16, threads, rows);
  }
  snprintf(tmpdir, sizeof tmpdir, "/tmp/spladex-test-shard-XXXXXX");
  if (!mkdtemp(tmpdir)) {
    fprintf(stderr, "test_shard: mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  test_round_trip();
  test_float16_and_empty();
  test_abort_and_bad_rows();
  test_parallel_compression();
  test_parallel_write_fails(1);
  test_parallel_write_fails(3);
  test_corrupted();
  test_jobfile();
  test_cli();
  int rc = check_report("test_shard");
  if (rc == 0) remove_tree(tmpdir);
  else fprintf(stderr, "test_shard: files kept in %s\n", tmpdir);
  return rc;
}
