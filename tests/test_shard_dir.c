/* test_shard_dir: the shard directory rule (io/shard_dir.h) on small directories, and the
 * commands that use it agreeing on it.
 *
 * Each case builds a directory of shards (3 of 10 docs, the last 5, unless the case says
 * otherwise) and checks what sdir_check_complete and sdir_check_shard say: complete; a partial
 * .tmp; a missing middle shard; a missing trailing one with job.json (found) and without (cannot
 * be found, but a trailing .tmp is); an unfinished job.json; shards past job.json's n_shards; an
 * inconsistent job.json; bad tiling (first_doc, a short shard that is not the last, too many
 * docs), with and without job.json; mixed vocab sizes; an attribute disagreeing with job.json.
 * Then `spladex verify` and `spladex export` are run on every case (through their cmd_
 * functions): they must both accept it or both refuse it.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "commands.h"
#include "err.h"
#include "export_fixture.h"
#include "jobfile.h"
#include "shard.h"
#include "shard_dir.h"

enum { VOCAB = 16, SHARD = 10, DOCS = 25 };

static char root[64];

static const char *const *vocab_of(int size) {
  static char terms[64][16];
  static const char *vocab[64];
  for (int v = 0; v < size; v++) {
    snprintf(terms[v], sizeof terms[v], "t%d", v);
    vocab[v] = terms[v];
  }
  return vocab;
}

/* Writes dir/NAME holding docs [first, first + n) over a vocabulary of vocab_size terms. */
static int write_shard(const char *dir, const char *name, int64_t first, int64_t n,
                       int vocab_size, int top_k) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  shard_meta meta = {.model = "test/model", .max_length = 256, .top_k = top_k,
                     .first_doc = first, .vocab_size = vocab_size, .vocab = vocab_of(vocab_size)};
  shard_writer *w = NULL;
  int rc = shard_writer_open(path, &meta, &w);
  for (int64_t d = first; rc == 0 && d < first + n; d++) {
    int32_t ix[2] = {(int32_t)(d % 7), 9};
    float val[2] = {1.0f + (float)d, 0.5f};
    char id[32];
    snprintf(id, sizeof id, "doc%lld", (long long)d);
    rc = shard_writer_append(w, id, ix, val, 2);
  }
  if (rc == 0) return shard_writer_finish(w);
  shard_writer_abort(w);
  return rc;
}

/* Makes dir/job.json an unfinished job: no n_docs_total / n_shards yet. */
static int unfinish_job(const char *dir) {
  job_params job;
  int rc = job_read(dir, &job);
  if (rc != 0) return rc < 0 ? rc : ERR_IO;
  job.n_docs_total = job.n_shards = -1;
  return job_write(dir, &job);
}

/* A fresh directory root/name with job.json (finished: DOCS docs) unless job is 0, and the
 * shards 0..2 of DOCS docs except those in skip (a bit mask). Returns its path (static). */
static const char *make_dir(const char *name, int job, unsigned skip) {
  static char dir[256];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  CHECK(mkdir(dir, 0755) == 0);
  if (job) CHECK(fixture_write_job(dir, SHARD, DOCS) == 0);
  for (int s = 0; s * SHARD < DOCS; s++) {
    if (skip & (1u << s)) continue;
    char file[64];
    snprintf(file, sizeof file, "shard-%05d.h5", s);
    int64_t n = (s + 1) * SHARD <= DOCS ? SHARD : DOCS - s * SHARD;
    CHECK(write_shard(dir, file, (int64_t)s * SHARD, n, VOCAB, 0) == 0);
  }
  return dir;
}

/* Touches dir/name (an empty .tmp as an interrupted writer leaves one). */
static void touch(const char *dir, const char *name) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) fclose(f);
}

/* What the rule says about dir: sdir_check_complete, then sdir_check_shard on every shard.
 * Returns 0 or the first error (its message in err_msg()). */
static int judge(const char *dir) {
  job_params job;
  int rc = job_read(dir, &job);
  if (rc < 0) return rc;
  const job_params *jp = rc == 0 ? &job : NULL;
  sdir_listing l;
  if ((rc = sdir_list(dir, &l)) < 0) return rc;
  rc = sdir_check_complete(&l, jp);
  sdir_tiling t;
  sdir_tiling_init(&t, jp, sdir_expected(&l, jp));
  for (int64_t i = 0; rc == 0 && i < l.n_shards; i++)
    rc = sdir_check_shard(&t, l.shards[i].index, l.shards[i].path, NULL);
  sdir_listing_free(&l);
  return rc;
}

/* 1 when err_msg() holds every one of the NULL-terminated needles; prints it otherwise. */
static int says(const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  int ok = 1;
  for (const char *needle = first; needle; needle = va_arg(ap, const char *))
    if (!strstr(err_msg(), needle)) ok = 0;
  va_end(ap);
  if (!ok) fprintf(stderr, "  unexpected message: %s\n", err_msg());
  return ok;
}

/* Runs `spladex verify DIR` and `spladex export jsonl --input DIR` (stdout silenced) and checks
 * that they agree: both accept the directory (want_ok) or both refuse it. */
static void check_commands_agree(const char *dir, int want_ok) {
  char out[300];
  snprintf(out, sizeof out, "%s.jsonl", dir);
  char *verify_argv[] = {"verify", (char *)dir, NULL};
  char *export_argv[] = {"export", "jsonl", "--input", (char *)dir, "--output", out, NULL};
  fflush(stdout);
  int saved = dup(1);
  FILE *null = fopen("/dev/null", "w");
  if (null) dup2(fileno(null), 1);
  int verify_rc = cmd_verify(2, verify_argv);
  int export_rc = cmd_export(6, export_argv);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  if (null) fclose(null);
  if ((verify_rc == 0) != want_ok || (export_rc == 0) != want_ok)
    fprintf(stderr, "  %s: verify %d, export %d (want %s)\n", dir, verify_rc, export_rc,
            want_ok ? "both accept" : "both refuse");
  CHECK((verify_rc == 0) == want_ok);
  CHECK((export_rc == 0) == want_ok);
  CHECK((fixture_file_size(out) > 0) == want_ok); /* a refused export leaves no output */
}

static void test_listing(void) {
  const char *dir = make_dir("listing", 1, 0);
  touch(dir, "shard-00001.h5.tmp");
  touch(dir, "shard-1.h5");           /* too few digits: not a shard */
  touch(dir, "shard-00007.h5.bak");   /* not a shard */
  sdir_listing l;
  CHECK(sdir_list(dir, &l) == 0);
  CHECK(l.n_shards == 3 && l.n_partials == 1);
  CHECK(l.shards[0].index == 0 && l.shards[1].index == 1 && l.shards[2].index == 2);
  CHECK(strstr(l.shards[2].path, "/listing/shard-00002.h5") != NULL);
  CHECK(sdir_find(&l, 1, 1) && strstr(sdir_find(&l, 1, 1), "shard-00001.h5.tmp"));
  CHECK(sdir_find(&l, 2, 1) == NULL && sdir_find(&l, 3, 0) == NULL);
  CHECK(sdir_expected(&l, NULL) == 3);
  sdir_listing_free(&l);
  sdir_listing_free(&l); /* twice is fine */
  CHECK(sdir_list("/nonexistent/spladex", &l) == ERR_IO && says("/nonexistent/spladex", NULL));
}

static void test_rule(void) {
  const char *dir;

  dir = make_dir("complete", 1, 0);
  CHECK(judge(dir) == 0);
  check_commands_agree(dir, 1);

  dir = make_dir("complete-nojob", 0, 0);
  CHECK(judge(dir) == 0);
  /* export accepts it too (verify does not: it wants job.json), with the same bytes */
  char *export_argv[] = {"export", "jsonl", "--input", (char *)dir, "--output", "", NULL};
  char out[300], complete_out[300];
  snprintf(out, sizeof out, "%s.jsonl", dir);
  snprintf(complete_out, sizeof complete_out, "%s/complete.jsonl", root);
  export_argv[5] = out;
  CHECK(cmd_export(6, export_argv) == 0 && fixture_same_bytes(out, complete_out));

  dir = make_dir("partial", 1, 1u << 1);
  touch(dir, "shard-00001.h5.tmp");
  CHECK(judge(dir) == ERR_MISMATCH &&
        says("incomplete", "1 of 3", "shard-00001.h5 (only a partial .tmp)", NULL));
  check_commands_agree(dir, 0);

  dir = make_dir("missing-middle", 1, 1u << 1);
  CHECK(judge(dir) == ERR_MISMATCH && says("1 of 3", "shard-00001.h5", NULL));
  check_commands_agree(dir, 0);

  dir = make_dir("missing-middle-nojob", 0, 1u << 1);
  CHECK(judge(dir) == ERR_MISMATCH && says("1 of 3", "shard-00001.h5", NULL));

  dir = make_dir("missing-last", 1, 1u << 2);
  CHECK(judge(dir) == ERR_MISMATCH && says("1 of 3", "shard-00002.h5", NULL));
  check_commands_agree(dir, 0);

  /* without job.json a missing trailing shard cannot be seen: shards 0 and 1 look complete
   * (shard 1 is then the last; its 10 docs fit) */
  dir = make_dir("missing-last-nojob", 0, 1u << 2);
  CHECK(judge(dir) == 0);
  /* ... unless its .tmp is there */
  touch(dir, "shard-00002.h5.tmp");
  CHECK(judge(dir) == ERR_MISMATCH && says("shard-00002.h5 (only a partial .tmp)", NULL));

  dir = make_dir("unfinished", 1, 0);
  CHECK(unfinish_job(dir) == 0);
  CHECK(judge(dir) == ERR_MISMATCH && says("not finished", NULL));
  check_commands_agree(dir, 0);

  dir = make_dir("past-the-end", 1, 0);
  CHECK(write_shard(dir, "shard-00003.h5", 30, 5, VOCAB, 0) == 0);
  CHECK(judge(dir) == ERR_MISMATCH && says("shard-00003.h5 is past", NULL));
  check_commands_agree(dir, 0);

  dir = make_dir("empty-nojob", 0, 7u);
  CHECK(judge(dir) == ERR_MISMATCH && says("no shards", NULL));

  dir = make_dir("bad-job", 1, 0);
  {
    job_params job;
    CHECK(job_read(dir, &job) == 0);
    job.n_shards = 4;
    CHECK(job_write(dir, &job) == 0);
  }
  CHECK(judge(dir) == ERR_MISMATCH && says("n_shards 4 disagrees", NULL));
  check_commands_agree(dir, 0);
}

static void test_tiling(void) {
  const char *dir;

  /* shard 1 starts at 11 instead of 10 */
  dir = make_dir("first-doc", 1, 1u << 1);
  CHECK(write_shard(dir, "shard-00001.h5", 11, SHARD, VOCAB, 0) == 0);
  CHECK(judge(dir) == ERR_MISMATCH && says("shard-00001.h5", "first_doc is 11, expected 10", NULL));
  check_commands_agree(dir, 0);

  /* a short shard that is not the last one, without job.json: sizes 10, 5, 10. Before the one
   * rule, `verify` accepted this (each shard continued the previous one) and `export` did not. */
  dir = make_dir("short-middle-nojob", 0, 6u);
  CHECK(write_shard(dir, "shard-00001.h5", 10, 5, VOCAB, 0) == 0);
  CHECK(write_shard(dir, "shard-00002.h5", 15, 10, VOCAB, 0) == 0);
  CHECK(judge(dir) == ERR_MISMATCH);
  check_commands_agree(dir, 0);

  /* the same with job.json */
  dir = make_dir("short-middle", 1, 1u << 1);
  CHECK(write_shard(dir, "shard-00001.h5", 10, 5, VOCAB, 0) == 0);
  CHECK(judge(dir) == ERR_MISMATCH && says("shard-00001.h5", "n_docs is 5, expected 10", NULL));
  check_commands_agree(dir, 0);

  /* the last shard larger than the others, without job.json */
  dir = make_dir("long-last-nojob", 0, 1u << 2);
  CHECK(write_shard(dir, "shard-00002.h5", 20, 11, VOCAB, 0) == 0);
  CHECK(judge(dir) == ERR_MISMATCH && says("shard-00002.h5", "n_docs is 11, expected 1 to 10", NULL));
  check_commands_agree(dir, 0);

  /* without job.json and shard 0 missing, the last shard's first_doc still has to be s * S */
  dir = make_dir("odd-last-nojob", 0, 7u);
  CHECK(write_shard(dir, "shard-00002.h5", 21, 4, VOCAB, 0) == 0);
  sdir_tiling t;
  sdir_tiling_init(&t, NULL, 3);
  char path[256];
  snprintf(path, sizeof path, "%s/shard-00002.h5", dir);
  CHECK(sdir_check_shard(&t, 2, path, NULL) == ERR_MISMATCH && says("not a multiple", NULL));
  CHECK(write_shard(dir, "shard-00002.h5", 20, 4, VOCAB, 0) == 0);
  CHECK(sdir_check_shard(&t, 2, path, NULL) == 0);

  /* mixed vocabulary sizes */
  dir = make_dir("vocab", 1, 1u << 2);
  CHECK(write_shard(dir, "shard-00002.h5", 20, 5, VOCAB + 1, 0) == 0);
  CHECK(judge(dir) == ERR_MISMATCH &&
        says("shard-00002.h5: vocab_size 17, but", "shard-00000.h5 has 16", NULL));
  check_commands_agree(dir, 0);

  /* an attribute disagreeing with job.json. Before the one rule, `verify` refused this and
   * `export` exported it. */
  dir = make_dir("attribute", 1, 1u << 1);
  CHECK(write_shard(dir, "shard-00001.h5", 10, SHARD, VOCAB, 7) == 0);
  CHECK(judge(dir) == ERR_MISMATCH && says("shard-00001.h5", "'top_k'", NULL));
  check_commands_agree(dir, 0);
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/spladex-test-shard-dir-XXXXXX");
  if (!mkdtemp(root)) return 1;
  test_listing();
  test_rule();
  test_tiling();
  int rc = check_report("test_shard_dir");
  if (rc == 0) {
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    if (system(command) != 0) fprintf(stderr, "test_shard_dir: could not remove %s\n", root);
  } else {
    fprintf(stderr, "test_shard_dir: files kept in %s\n", root);
  }
  return rc;
}
