/* cmd_verify: `spladex verify DIR [--quick]`: is a shard directory a complete, consistent job?
 *
 * Reads DIR/job.json (io/jobfile.h) for the expected shards: n_shards once the job has read its
 * whole input, shard s holding docs [s * shard_size, ...). Reports, one line each on stdout:
 * a missing job.json, an unfinished job (no n_docs_total yet), missing shards, leftover .tmp
 * (partial) shards, unexpected shards past n_shards, and inconsistent shards: unreadable, wrong
 * first_doc or n_docs, attributes disagreeing with job.json, a vocab_size differing between
 * shards, and (unless --quick) any row with a broken indptr or indices not strictly ascending or
 * outside the vocabulary, found by reading every row. Returns ERR_MISMATCH when anything was
 * reported (exit 1), 0 when the directory is complete.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "err.h"
#include "jobfile.h"
#include "shard.h"

enum { VERIFY_ROWS_PER_READ = 4096 };

static void verify_usage(FILE *to) {
  fprintf(to,
          "usage: spladex verify DIR [--quick]\n\n"
          "Checks a shard directory against its job.json: missing shards, partial (.tmp)\n"
          "shards, and inconsistent ones (attributes, sizes, and every row's indptr and\n"
          "indices). Prints one line per problem; exits 1 if there is any.\n"
          "  --quick   check attributes and sizes only, without reading the rows\n");
}

typedef struct {
  int64_t *complete, *partial; /* shard indices found */
  int n_complete, n_partial, cap_complete, cap_partial;
} verify_listing;

static int verify_push(int64_t **list, int *n, int *cap, int64_t value) {
  if (*n == *cap) {
    int grown_cap = *cap ? 2 * *cap : 64;
    int64_t *grown = realloc(*list, (size_t)grown_cap * sizeof *grown);
    if (!grown) return err_set(ERR_NOMEM, "out of memory");
    *list = grown;
    *cap = grown_cap;
  }
  (*list)[(*n)++] = value;
  return 0;
}

static int verify_compare_int64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int verify_list(const char *dir, verify_listing *l) {
  DIR *d = opendir(dir);
  struct dirent *entry;
  int rc = 0;
  if (!d) return err_set(ERR_IO, "%s: cannot open the directory", dir);
  while ((entry = readdir(d))) {
    int64_t shard = 0;
    int partial = 0;
    if (!job_shard_index(entry->d_name, &shard, &partial)) continue;
    rc = partial ? verify_push(&l->partial, &l->n_partial, &l->cap_partial, shard)
                 : verify_push(&l->complete, &l->n_complete, &l->cap_complete, shard);
    if (rc < 0) break;
  }
  closedir(d);
  if (rc < 0) return rc;
  if (l->n_complete)
    qsort(l->complete, (size_t)l->n_complete, sizeof *l->complete, verify_compare_int64);
  if (l->n_partial)
    qsort(l->partial, (size_t)l->n_partial, sizeof *l->partial, verify_compare_int64);
  return 0;
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
  verify_listing l = {0};
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
  have_job = have_job == 0;
  if ((rc = verify_list(dir, &l)) < 0) goto fail;

  for (int i = 0; i < l.n_partial; i++) {
    job_shard_path(dir, l.partial[i], path, sizeof path);
    printf("%s.tmp: partial (an interrupted write; rerunning the job discards it)\n", path);
    problems++;
  }

  int64_t expected = -1; /* shards the job should have */
  if (have_job && job.n_shards >= 0) {
    expected = job.n_shards;
    if (job.n_docs_total < 0 || job.n_shards != (job.n_docs_total + job.shard_size - 1) / job.shard_size) {
      printf("%s/%s: n_shards %" PRId64 " disagrees with n_docs_total %" PRId64
             " and shard_size %" PRId64 "\n",
             dir, JOB_FILE_NAME, job.n_shards, job.n_docs_total, job.shard_size);
      problems++;
    }
  } else {
    expected = l.n_complete ? l.complete[l.n_complete - 1] + 1 : 0;
    if (have_job) {
      printf("%s/%s: no n_docs_total yet: the job has not finished (checked shards up to %05" PRId64
             " only)\n",
             dir, JOB_FILE_NAME, expected - 1);
      problems++;
    }
  }

  int64_t docs = 0, next_first = 0, checked = 0;
  int vocab_size = -1, found = 0;
  for (int64_t s = 0; s < expected; s++) {
    job_shard_path(dir, s, path, sizeof path);
    while (found < l.n_complete && l.complete[found] < s) found++;
    if (found >= l.n_complete || l.complete[found] != s) {
      printf("%s: missing\n", path);
      problems++;
      next_first = -1; /* without job.json the next first_doc is unknown */
      continue;
    }
    shard_info info;
    int64_t first_doc = have_job ? job_shard_first_doc(&job, s) : next_first;
    int64_t n_docs = -1;
    if (have_job) {
      n_docs = job_shard_docs(&job, s);
      if (n_docs < 0 && s + 1 < expected) n_docs = job.shard_size; /* only the last may be short */
    }
    if ((rc = shard_check(path, first_doc, n_docs, &info)) < 0) {
      printf("%s: inconsistent: %s\n", path, err_msg());
      problems++;
      next_first = -1;
      continue;
    }
    next_first = info.first_doc + info.n_docs;
    int bad = 0;
    if (have_job) {
      const char *field = NULL;
      if (strcmp(info.model, job.model)) field = "model";
      else if (info.max_length != job.max_length) field = "max_length";
      else if (info.threshold != job.threshold) field = "threshold";
      else if (info.top_k != job.top_k) field = "top_k";
      else if (job.n_docs_total < 0 && info.n_docs > job.shard_size) field = "n_docs";
      if (field) {
        printf("%s: inconsistent: attribute '%s' disagrees with %s\n", path, field, JOB_FILE_NAME);
        bad = 1;
      }
    }
    if (!bad && vocab_size >= 0 && info.vocab_size != vocab_size) {
      printf("%s: inconsistent: vocab_size %d, earlier shards have %d\n", path, info.vocab_size,
             vocab_size);
      bad = 1;
    }
    if (!bad && !quick && (rc = verify_rows(path)) < 0) {
      printf("%s: inconsistent: %s\n", path, err_msg());
      bad = 1;
    }
    if (bad) {
      problems++;
      continue;
    }
    if (vocab_size < 0) vocab_size = info.vocab_size;
    docs += info.n_docs;
    checked++;
  }
  for (int i = 0; i < l.n_complete; i++) {
    if (l.complete[i] < expected) continue;
    job_shard_path(dir, l.complete[i], path, sizeof path);
    printf("%s: unexpected (%s has n_shards = %" PRId64 ")\n", path, JOB_FILE_NAME, expected);
    problems++;
  }
  if (!problems && have_job && job.n_docs_total >= 0 && docs != job.n_docs_total) {
    printf("%s: the shards hold %" PRId64 " docs, %s says %" PRId64 "\n", dir, docs,
           JOB_FILE_NAME, job.n_docs_total);
    problems++;
  }
  rc = 0;
  if (problems) {
    printf("%s: %d problem%s (%" PRId64 " of %" PRId64 " shards good)\n", dir, problems,
           problems == 1 ? "" : "s", checked, expected);
    rc = err_set(ERR_MISMATCH, "%s: %d problem%s, listed above", dir, problems,
                 problems == 1 ? "" : "s");
  } else {
    printf("%s: OK: %" PRId64 " shards, %" PRId64 " docs%s\n", dir, checked, docs,
           quick ? " (quick: rows not read)" : "");
  }
  if (fflush(stdout) != 0 && rc == 0) rc = err_set(ERR_IO, "stdout: write failed");
fail:
  free(l.complete);
  free(l.partial);
  return rc;
}
