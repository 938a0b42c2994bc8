/* cmd_verify: `spladex verify DIR [--quick]`: is a shard directory a complete, consistent job?
 *
 * Judges DIR by io/shard_dir.h's rule, the one `export` refuses an incomplete directory by: the
 * expected shards (job.json's n_shards once the job has read its whole input), and shard s
 * holding docs [s * shard_size, ...). Reports, one line each on stdout:
 * a missing job.json, an unfinished job (no n_docs_total yet), missing shards (with the worker
 * I/N that owns each, when job.json records N: the one to rerun), leftover .tmp
 * (partial) shards (likewise with their worker), unexpected shards past n_shards, and inconsistent shards: unreadable, wrong
 * first_doc or n_docs, attributes disagreeing with job.json, a vocab_size differing between
 * shards, and (unless --quick) any row with a broken indptr or indices not strictly ascending or
 * outside the vocabulary, found by reading every row. Returns ERR_MISMATCH when anything was
 * reported (exit 1), 0 when the directory is complete.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "err.h"
#include "jobfile.h"
#include "shard.h"
#include "shard_dir.h"

enum { VERIFY_ROWS_PER_READ = 4096 };

static void verify_usage(FILE *to) {
  fprintf(to,
          "usage: spladex verify DIR [--quick]\n\n"
          "Checks a shard directory against its job.json: missing shards, partial (.tmp)\n"
          "shards, and inconsistent ones (attributes, sizes, and every row's indptr and\n"
          "indices). Prints one line per problem; exits 1 if there is any.\n"
          "  --quick   check attributes and sizes only, without reading the rows\n");
}

/* The reason in msg, without the leading "path: " that every shard error starts with. */
static const char *verify_reason(const char *path, const char *msg) {
  size_t n = strlen(path);
  if (!strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ') return msg + n + 2;
  return msg;
}

/* Reads every row of a shard (the reader validates each range). Returns 0 or the error. */
static int verify_rows(const char *path) {
  shard_reader *r = NULL;
  int rc = shard_reader_open(path, &r);
  if (rc < 0) return rc;
  const shard_info *info = shard_reader_info(r);
  for (int64_t row = 0; row < info->n_docs; row += VERIFY_ROWS_PER_READ) {
    int64_t n = info->n_docs - row < VERIFY_ROWS_PER_READ ? info->n_docs - row
                                                          : VERIFY_ROWS_PER_READ;
    const char *const *ids;
    const int64_t *indptr;
    const int32_t *indices;
    const float *values;
    if ((rc = shard_reader_rows(r, row, n, &ids, &indptr, &indices, &values)) < 0) break;
  }
  shard_reader_close(r);
  return rc;
}

int cmd_verify(int argc, char **argv) {
  const char *dir = NULL;
  int quick = 0, problems = 0, rc = 0;
  sdir_listing l = {0};
  job_params job;
  char path[4400];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      verify_usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      verify_usage(stderr);
      return err_set(ERR_ARG, "unknown option '%s'", argv[i]);
    } else if (!dir) {
      dir = argv[i];
    } else {
      return err_set(ERR_ARG, "one DIR only (got '%s' and '%s')", dir, argv[i]);
    }
  }
  if (!dir) {
    verify_usage(stderr);
    return err_set(ERR_ARG, "missing DIR");
  }

  int have_job = job_read(dir, &job);
  if (have_job < 0) {
    printf("%s/%s: unreadable: %s\n", dir, JOB_FILE_NAME, err_msg());
    problems++;
  } else if (have_job == 1) {
    printf("%s/%s: missing (not a spladex output directory, or the job never started)\n", dir,
           JOB_FILE_NAME);
    problems++;
  }
  const job_params *jp = have_job == 0 ? &job : NULL;
  if ((rc = sdir_list(dir, &l)) < 0) goto fail;

  for (int64_t i = 0; i < l.n_partials; i++) {
    if (jp && jp->workers > 0)
      printf("%s: partial (an interrupted write; rerunning worker %d/%d discards it)\n",
             l.partials[i].path, (int)(l.partials[i].index % jp->workers), jp->workers);
    else
      printf("%s: partial (an interrupted write; rerunning the job discards it)\n",
             l.partials[i].path);
    problems++;
  }

  /* the shards the job should have: shard_dir.h's rule, shared with `export` */
  int64_t expected = sdir_expected(&l, jp);
  if (jp && jp->n_shards >= 0) {
    if (sdir_check_job(dir, jp) < 0) {
      printf("%s\n", err_msg());
      problems++;
    }
  } else if (jp) {
    printf("%s/%s: no n_docs_total yet: the job has not finished (checked shards up to %05" PRId64
           " only)\n",
           dir, JOB_FILE_NAME, expected - 1);
    problems++;
  }

  int64_t docs = 0, checked = 0;
  sdir_tiling tiling;
  sdir_tiling_init(&tiling, jp, expected);
  for (int64_t s = 0; s < expected; s++) {
    const char *shard = sdir_find(&l, s, 0);
    if (!shard) {
      job_shard_path(dir, s, path, sizeof path);
      if (jp && jp->workers > 0) /* whose it is: the worker to rerun */
        printf("%s: missing (worker %d/%d's)\n", path, (int)(s % jp->workers), jp->workers);
      else
        printf("%s: missing\n", path);
      problems++;
      continue;
    }
    shard_info info;
    if ((rc = sdir_check_shard(&tiling, s, shard, &info)) < 0 ||
        (!quick && (rc = verify_rows(shard)) < 0)) {
      printf("%s: inconsistent: %s\n", shard, verify_reason(shard, err_msg()));
      problems++;
      continue;
    }
    docs += info.n_docs;
    checked++;
  }
  for (int64_t i = 0; i < l.n_shards; i++) {
    if (l.shards[i].index < expected) continue;
    printf("%s: unexpected (%s has n_shards = %" PRId64 ")\n", l.shards[i].path, JOB_FILE_NAME,
           expected);
    problems++;
  }
  rc = 0;
  char workers[64] = "";
  if (jp && jp->workers > 0)
    snprintf(workers, sizeof workers, ", %d worker%s", jp->workers, jp->workers == 1 ? "" : "s");
  if (problems) {
    printf("%s: %d problem%s (%" PRId64 " of %" PRId64 " shards good%s)\n", dir, problems,
           problems == 1 ? "" : "s", checked, expected, workers);
    rc = err_set(ERR_MISMATCH, "%s: %d problem%s, listed above", dir, problems,
                 problems == 1 ? "" : "s");
  } else {
    printf("%s: OK: %" PRId64 " shards, %" PRId64 " docs%s%s\n", dir, checked, docs, workers,
           quick ? " (quick: rows not read)" : "");
  }
  if (fflush(stdout) != 0 && rc == 0) rc = err_set(ERR_IO, "stdout: write failed");
fail:
  sdir_listing_free(&l);
  return rc;
}
