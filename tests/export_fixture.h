/* export_fixture: what the export tests (test_export.c, test_export_gpu.c) share: a job.json for
 * a shard directory they write with io/shard.h, and file comparisons. Static functions in a
 * header, like check.h; include it once per test. */
#ifndef SPLADEX_TEST_EXPORT_FIXTURE_H
#define SPLADEX_TEST_EXPORT_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "jobfile.h"

/* Writes dir/job.json for a finished job of n_docs documents in shards of shard_size, model
 * "test/model". Returns 0 or the jobfile error. */
static int fixture_write_job(const char *dir, int64_t shard_size, int64_t n_docs) {
  job_params job;
  job_params_init(&job);
  snprintf(job.version, sizeof job.version, "0.1.0");
  snprintf(job.model, sizeof job.model, "test/model");
  snprintf(job.format, sizeof job.format, "tsv");
  snprintf(job.precision, sizeof job.precision, "fp32");
  job.max_length = 256;
  job.shard_size = shard_size;
  job_set_totals(&job, n_docs);
  return job_write(dir, &job);
}

/* The size of path in bytes, -1 if it does not exist. */
static long fixture_file_size(const char *path) {
  struct stat st;
  return stat(path, &st) ? -1 : (long)st.st_size;
}

/* 1 when both files exist and hold the same bytes. */
static int fixture_same_bytes(const char *a, const char *b) {
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

#endif
