/* cmd_info: `spladex info PATH [--json] [--top N]`: statistics of one shard or a shard directory.
 *
 * Streams every row once through shard_reader_rows in windows; memory is one df counter per
 * vocabulary term plus the reader's window, whatever the number of documents. Reports docs,
 * empty docs, nnz, terms per doc (min / mean / max), the FLOPS figure sum_v (df_v / N)^2
 * (DESIGN.md section 1), the top terms by document frequency, and with `expand --stride` the
 * windows per document summed over the shards' windows_* attrs (shard.h): the whole job's,
 * whatever runs and workers wrote the shards (job.json's "windows" is its last run's only).
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "err.h"
#include "jobfile.h"
#include "shard.h"
#include "shard_dir.h"

enum { INFO_ROWS_PER_READ = 4096 };

static void info_usage(FILE *to) {
  fprintf(to,
          "usage: spladex info PATH [--json] [--top N]\n\n"
          "PATH is one shard (.h5) or a shard directory (every shard-NNNNN.h5 in it).\n"
          "Prints docs, nnz, terms per doc (min/mean/max), the FLOPS figure\n"
          "sum over terms of (df / docs)^2, and the N terms with the highest document\n"
          "frequency (default 10).\n"
          "  --json    one JSON object on stdout instead of text\n"
          "  --top N   how many top terms to list (0: none)\n");
}

static const int64_t *info_df; /* for the qsort comparator */

static int info_compare_terms(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  if (info_df[x] != info_df[y]) return info_df[x] < info_df[y] ? 1 : -1;
  return (x > y) - (x < y);
}

int cmd_info(int argc, char **argv) {
  const char *path = NULL;
  int json = 0, top = 10, rc = 0;
  sdir_listing listing = {0};
  int64_t n_shards = 1; /* PATH itself, or the listing's shards */
  int workers = 0;      /* a directory's job.json workers (N of --worker I/N), 0 when unknown */
  static job_params job; /* a directory's job.json (stride, windows), when read */
  int have_job = 0;
  shard_reader *first = NULL, *reader = NULL;
  int64_t *df = NULL;
  int *order = NULL;
  cJSON *root = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      info_usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--top")) {
      if (i + 1 >= argc) return err_set(ERR_ARG, "--top needs a number");
      if ((rc = cli_parse_int("--top", argv[++i], 0, 1000000, &top)) < 0) return rc;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      info_usage(stderr);
      return err_set(ERR_ARG, "unknown option '%s'", argv[i]);
    } else if (!path) {
      path = argv[i];
    } else {
      return err_set(ERR_ARG, "one PATH only (got '%s' and '%s')", path, argv[i]);
    }
  }
  if (!path) {
    info_usage(stderr);
    return err_set(ERR_ARG, "missing PATH");
  }

  struct stat st;
  if (stat(path, &st) < 0) return err_set(ERR_IO, "%s: no such file or directory", path);
  if (S_ISDIR(st.st_mode)) { /* every shard with its final name, whether or not complete */
    if ((rc = sdir_list(path, &listing)) < 0) return rc;
    if (listing.n_shards == 0) {
      rc = err_set(ERR_IO, "%s: no shards (shard-NNNNN.h5) in this directory", path);
      goto fail;
    }
    n_shards = listing.n_shards;
    if (job_read(path, &job) == 0) { /* info lists; verify judges job.json */
      workers = job.workers;
      have_job = 1;
    }
  }

  int64_t docs = 0, nnz = 0, empty = 0, min_terms = INT64_MAX, max_terms = 0;
  /* the shards' windows_* attrs summed: docs of the shards that have them, shards without */
  int64_t win_docs = 0, win_shards = 0, win_total = 0, win_min = 0, win_max = 0, win_capped = 0;
  int64_t first_capped = -1;
  char first_capped_id[256] = "";
  int vocab_size = 0;
  const char *first_path = listing.n_shards ? listing.shards[0].path : path;
  for (int64_t s = 0; s < n_shards; s++) {
    const char *shard_path = listing.n_shards ? listing.shards[s].path : path;
    if ((rc = shard_reader_open(shard_path, &reader)) < 0) goto fail;
    const shard_info *meta = shard_reader_info(reader);
    if (s == 0) {
      vocab_size = meta->vocab_size;
      if (!(df = calloc((size_t)vocab_size, sizeof *df))) {
        rc = err_set(ERR_NOMEM, "out of memory for %d df counters", vocab_size);
        goto fail;
      }
    } else if (meta->vocab_size != vocab_size) {
      rc = err_set(ERR_MISMATCH, "%s: vocab_size %d differs from %s (%d)", shard_path,
                   meta->vocab_size, first_path, vocab_size);
      goto fail;
    }
    for (int64_t row = 0; row < meta->n_docs; row += INFO_ROWS_PER_READ) {
      int64_t n = meta->n_docs - row < INFO_ROWS_PER_READ ? meta->n_docs - row : INFO_ROWS_PER_READ;
      const char *const *ids;
      const int64_t *indptr;
      const int32_t *indices;
      const float *values;
      if ((rc = shard_reader_rows(reader, row, n, &ids, &indptr, &indices, &values)) < 0)
        goto fail;
      const int64_t capped_row = meta->has_windows && meta->windows.first_capped >= 0
                                     ? meta->windows.first_capped - meta->first_doc - row
                                     : -1;
      if (capped_row >= 0 && capped_row < n &&
          (first_capped < 0 || meta->windows.first_capped < first_capped)) {
        first_capped = meta->windows.first_capped;
        snprintf(first_capped_id, sizeof first_capped_id, "%s", ids[capped_row]);
      }
      for (int64_t d = 0; d < n; d++) {
        int64_t terms = indptr[d + 1] - indptr[d];
        if (terms < min_terms) min_terms = terms;
        if (terms > max_terms) max_terms = terms;
        if (!terms) empty++;
      }
      for (int64_t k = 0; k < indptr[n]; k++) df[indices[k]]++;
      nnz += indptr[n];
    }
    docs += meta->n_docs;
    if (meta->has_windows && meta->n_docs > 0) {
      const shard_windows *w = &meta->windows;
      if (win_docs == 0 || w->min < win_min) win_min = w->min;
      if (w->max > win_max) win_max = w->max;
      win_docs += meta->n_docs;
      win_shards++;
      win_total += w->total;
      win_capped += w->capped;
    }
    if (s == 0) {
      first = reader; /* kept open for the terms */
    } else {
      shard_reader_close(reader);
    }
    reader = NULL;
  }
  if (docs == 0) min_terms = 0;
  double flops = 0.0;
  if (docs > 0)
    for (int v = 0; v < vocab_size; v++) {
      double p = (double)df[v] / (double)docs;
      flops += p * p;
    }
  double mean_terms = docs ? (double)nnz / (double)docs : 0.0;
  int distinct = 0;
  for (int v = 0; v < vocab_size; v++) distinct += df[v] > 0;
  if (top > distinct) top = distinct;
  if (!(order = malloc((size_t)vocab_size * sizeof *order))) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (int v = 0; v < vocab_size; v++) order[v] = v;
  info_df = df;
  qsort(order, (size_t)vocab_size, sizeof *order, info_compare_terms);
  const shard_info *meta = shard_reader_info(first);

  if (json) {
    cJSON *terms_per_doc = NULL, *top_terms = NULL;
    if (!(root = cJSON_CreateObject())) goto nomem;
    if (!cJSON_AddStringToObject(root, "path", path) ||
        !cJSON_AddNumberToObject(root, "shards", (double)n_shards) ||
        !cJSON_AddNumberToObject(root, "docs", (double)docs) ||
        !cJSON_AddNumberToObject(root, "empty_docs", (double)empty) ||
        !cJSON_AddNumberToObject(root, "nnz", (double)nnz) ||
        !cJSON_AddNumberToObject(root, "vocab_size", vocab_size) ||
        !cJSON_AddNumberToObject(root, "distinct_terms", distinct) ||
        !(terms_per_doc = cJSON_AddObjectToObject(root, "terms_per_doc")) ||
        !cJSON_AddNumberToObject(terms_per_doc, "min", (double)min_terms) ||
        !cJSON_AddNumberToObject(terms_per_doc, "mean", mean_terms) ||
        !cJSON_AddNumberToObject(terms_per_doc, "max", (double)max_terms) ||
        !cJSON_AddNumberToObject(root, "flops", flops) ||
        !cJSON_AddStringToObject(root, "model", meta->model) ||
        !cJSON_AddNumberToObject(root, "max_length", meta->max_length) ||
        !cJSON_AddNumberToObject(root, "threshold", meta->threshold) ||
        !cJSON_AddNumberToObject(root, "top_k", meta->top_k) ||
        !(top_terms = cJSON_AddArrayToObject(root, "top_terms")))
      goto nomem;
    if (workers > 0 && !cJSON_AddNumberToObject(root, "workers", workers)) goto nomem;
    if ((have_job && job.stride > 0) || win_shards > 0) {
      cJSON *w = cJSON_AddObjectToObject(root, "windows");
      if (!w || (have_job && (!cJSON_AddNumberToObject(w, "stride", job.stride) ||
                              !cJSON_AddNumberToObject(w, "max_windows", job.max_windows))) ||
          !cJSON_AddNumberToObject(w, "shards_without", (double)(n_shards - win_shards)))
        goto nomem;
      if (win_docs > 0 &&
          (!cJSON_AddNumberToObject(w, "docs", (double)win_docs) ||
           !cJSON_AddNumberToObject(w, "total", (double)win_total) ||
           !cJSON_AddNumberToObject(w, "min", (double)win_min) ||
           !cJSON_AddNumberToObject(w, "mean", (double)win_total / (double)win_docs) ||
           !cJSON_AddNumberToObject(w, "max", (double)win_max) ||
           !cJSON_AddNumberToObject(w, "capped", (double)win_capped) ||
           !cJSON_AddNumberToObject(w, "first_capped_doc", (double)first_capped) ||
           !cJSON_AddStringToObject(w, "first_capped", first_capped_id)))
        goto nomem;
    }
    for (int i = 0; i < top; i++) {
      cJSON *item = cJSON_CreateObject();
      if (!item) goto nomem;
      cJSON_AddItemToArray(top_terms, item);
      if (!cJSON_AddStringToObject(item, "term", shard_reader_term(first, order[i])) ||
          !cJSON_AddNumberToObject(item, "id", order[i]) ||
          !cJSON_AddNumberToObject(item, "df", (double)df[order[i]]))
        goto nomem;
    }
    char *text = cJSON_PrintUnformatted(root);
    if (!text) goto nomem;
    printf("%s\n", text);
    cJSON_free(text);
  } else {
    printf("path          %s\n", path);
    printf("shards        %" PRId64 "\n", n_shards);
    if (workers > 0) printf("workers       %d (job.json: --worker I/%d)\n", workers, workers);
    printf("docs          %" PRId64 " (%" PRId64 " empty)\n", docs, empty);
    printf("nnz           %" PRId64 "\n", nnz);
    printf("terms/doc     min %" PRId64 ", mean %.2f, max %" PRId64 "\n", min_terms, mean_terms,
           max_terms);
    printf("flops         %.6g\n", flops);
    printf("vocab         %d terms, %d used\n", vocab_size, distinct);
    printf("model         %s (max_length %d, threshold %g, top_k %d)\n", meta->model,
           meta->max_length, (double)meta->threshold, meta->top_k);
    char params[64] = "";
    if (have_job && job.stride > 0)
      snprintf(params, sizeof params, " (--stride %d, --max-windows %d)", job.stride,
               job.max_windows);
    if (win_docs > 0) {
      printf("windows/doc   min %lld, mean %.2f, max %lld%s; %lld hit --max-windows",
             (long long)win_min, (double)win_total / (double)win_docs, (long long)win_max, params,
             (long long)win_capped);
      if (first_capped >= 0) printf(", first: %s (doc %lld)", first_capped_id, (long long)first_capped);
      if (win_shards < n_shards)
        printf("; %lld of %lld shards record no windows (the figures are the other shards')",
               (long long)(n_shards - win_shards), (long long)n_shards);
      printf("\n");
    } else if (params[0]) {
      printf("windows       --stride %d, --max-windows %d (the shards record no windows)\n",
             job.stride, job.max_windows);
    }
    if (top > 0) {
      printf("top terms by document frequency:\n");
      printf("  %12s  %8s  %s\n", "df", "df/docs", "term");
      for (int i = 0; i < top; i++)
        printf("  %12" PRId64 "  %8.4f  %s\n", df[order[i]],
               docs ? (double)df[order[i]] / (double)docs : 0.0, shard_reader_term(first, order[i]));
    }
  }
  if (fflush(stdout) != 0) rc = err_set(ERR_IO, "stdout: write failed");
  goto fail;
nomem:
  rc = err_set(ERR_NOMEM, "out of memory");
fail:
  cJSON_Delete(root);
  free(order);
  free(df);
  shard_reader_close(reader);
  shard_reader_close(first);
  sdir_listing_free(&listing);
  return rc;
}
