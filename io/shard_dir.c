/* shard_dir: listing an output directory and the one completeness rule (see shard_dir.h).
 * Legend: K shards.
 */
#include "shard_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"

static int sdir_compare_files(const void *a, const void *b) {
  int64_t x = ((const sdir_file *)a)->index, y = ((const sdir_file *)b)->index;
  return (x > y) - (x < y);
}

/* Appends (index, dir/name) to files (n of cap). Returns 0 or ERR_NOMEM. */
static int sdir_push(sdir_file **files, int64_t *n, size_t *cap, int64_t index, const char *dir,
                     const char *name) {
  if (grow(files, cap, (size_t)*n + 1, sizeof **files))
    return err_set(ERR_NOMEM, "%s: out of memory listing shards", dir);
  size_t size = strlen(dir) + strlen(name) + 2;
  char *path = malloc(size);
  if (!path) return err_set(ERR_NOMEM, "%s: out of memory listing shards", dir);
  snprintf(path, size, "%s/%s", dir, name);
  (*files)[*n].index = index;
  (*files)[*n].path = path;
  (*n)++;
  return 0;
}

int sdir_list(const char *dir, sdir_listing *out) {
  size_t cap_shards = 0, cap_partials = 0;
  int rc = 0;
  memset(out, 0, sizeof *out);
  DIR *d = opendir(dir);
  if (!d) return err_set(ERR_IO, "%s: cannot open the directory: %s", dir, strerror(errno));
  if (!(out->dir = malloc(strlen(dir) + 1))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory listing shards", dir);
    goto fail;
  }
  strcpy(out->dir, dir);
  struct dirent *entry;
  while ((entry = readdir(d))) {
    int64_t index = 0;
    int partial = 0;
    if (!job_shard_index(entry->d_name, &index, &partial)) continue;
    rc = partial ? sdir_push(&out->partials, &out->n_partials, &cap_partials, index, dir,
                             entry->d_name)
                 : sdir_push(&out->shards, &out->n_shards, &cap_shards, index, dir, entry->d_name);
    if (rc < 0) goto fail;
  }
  closedir(d);
  if (out->n_shards)
    qsort(out->shards, (size_t)out->n_shards, sizeof *out->shards, sdir_compare_files);
  if (out->n_partials)
    qsort(out->partials, (size_t)out->n_partials, sizeof *out->partials, sdir_compare_files);
  return 0;
fail:
  closedir(d);
  sdir_listing_free(out);
  return rc;
}

void sdir_listing_free(sdir_listing *l) {
  if (!l) return;
  for (int64_t i = 0; i < l->n_shards; i++) free(l->shards[i].path);
  for (int64_t i = 0; i < l->n_partials; i++) free(l->partials[i].path);
  free(l->shards);
  free(l->partials);
  free(l->dir);
  memset(l, 0, sizeof *l);
}

const char *sdir_find(const sdir_listing *l, int64_t s, int partial) {
  const sdir_file *files = partial ? l->partials : l->shards;
  int64_t n = partial ? l->n_partials : l->n_shards;
  if (n == 0) return NULL;
  sdir_file key = {s, NULL};
  const sdir_file *hit = bsearch(&key, files, (size_t)n, sizeof *files, sdir_compare_files);
  return hit ? hit->path : NULL;
}

int64_t sdir_expected(const sdir_listing *l, const job_params *job) {
  if (job && job->n_shards >= 0) return job->n_shards;
  int64_t n = 0;
  if (l->n_shards) n = l->shards[l->n_shards - 1].index + 1;
  if (l->n_partials && l->partials[l->n_partials - 1].index + 1 > n)
    n = l->partials[l->n_partials - 1].index + 1;
  return n;
}

int sdir_check_job(const char *dir, const job_params *job) {
  if (job->n_shards < 0) return 0;
  if (job->n_docs_total < 0 || job->shard_size <= 0 ||
      job->n_shards != (job->n_docs_total + job->shard_size - 1) / job->shard_size)
    return err_set(ERR_MISMATCH,
                   "%s/%s: n_shards %lld disagrees with n_docs_total %lld and shard_size %lld",
                   dir, JOB_FILE_NAME, (long long)job->n_shards, (long long)job->n_docs_total,
                   (long long)job->shard_size);
  return 0;
}

int sdir_check_complete(const sdir_listing *l, const job_params *job) {
  const char *dir = l->dir;
  int rc = 0;
  if (job && job->n_shards < 0)
    return err_set(ERR_MISMATCH,
                   "%s: %s has no n_docs_total / n_shards yet: the expand job has not finished "
                   "reading its input (finish it first)",
                   dir, JOB_FILE_NAME);
  if (job && (rc = sdir_check_job(dir, job)) < 0) return rc;
  int64_t n_shards = sdir_expected(l, job);
  if (!job && n_shards == 0)
    return err_set(ERR_MISMATCH, "%s: no shards (shard-00000.h5 ...) in this directory", dir);
  if (l->n_shards && l->shards[l->n_shards - 1].index >= n_shards)
    return err_set(ERR_MISMATCH, "%s: shard-%05lld.h5 is past the job's %lld shards (%s)", dir,
                   (long long)l->shards[l->n_shards - 1].index, (long long)n_shards,
                   JOB_FILE_NAME);
  int64_t n_missing = 0;
  for (int64_t s = 0; s < n_shards; s++) n_missing += sdir_find(l, s, 0) == NULL;
  if (n_missing == 0) return 0;
  char list[1200];
  size_t used = 0;
  int64_t named = 0;
  for (int64_t s = 0; s < n_shards && named < 16; s++) {
    if (sdir_find(l, s, 0)) continue;
    int w = snprintf(list + used, sizeof list - used, "%sshard-%05lld.h5%s", named ? ", " : "",
                     (long long)s, sdir_find(l, s, 1) ? " (only a partial .tmp)" : "");
    if (w < 0 || (size_t)w >= sizeof list - used) break;
    used += (size_t)w;
    named++;
  }
  if (named < n_missing)
    snprintf(list + used, sizeof list - used, " and %lld more", (long long)(n_missing - named));
  return err_set(ERR_MISMATCH,
                 "%s: incomplete shard directory, %lld of %lld shards missing: %s "
                 "(finish the expand job, or its missing workers, first)",
                 dir, (long long)n_missing, (long long)n_shards, list);
}

void sdir_tiling_init(sdir_tiling *t, const job_params *job, int64_t n_shards) {
  memset(t, 0, sizeof *t);
  t->job = job;
  t->n_shards = n_shards;
  if (job && job->shard_size > 0) t->shard_size = job->shard_size;
}

int sdir_check_shard(sdir_tiling *t, int64_t s, const char *path, shard_info *info) {
  shard_info local;
  shard_info *in = info ? info : &local;
  int rc = shard_check(path, -1, -1, in);
  if (rc < 0) return rc;
  const int last = s + 1 >= t->n_shards;
  int64_t size = t->shard_size;
  if (size == 0) { /* no job.json, and no shard before this one told S */
    if (!last || s == 0) {
      if (in->n_docs < 1)
        return err_set(ERR_MISMATCH, "%s: n_docs is %lld, expected at least 1", path,
                       (long long)in->n_docs);
      size = in->n_docs; /* every shard but the last holds S */
    } else if (in->first_doc > 0 && in->first_doc % s == 0) {
      size = in->first_doc / s;
    } else {
      return err_set(ERR_MISMATCH, "%s: first_doc is %lld, not a multiple of the shard number %lld",
                     path, (long long)in->first_doc, (long long)s);
    }
  }
  if (in->first_doc != s * size)
    return err_set(ERR_MISMATCH,
                   "%s: first_doc is %lld, expected %lld (shard %lld of %lld documents; a shard of "
                   "another job?)",
                   path, (long long)in->first_doc, (long long)(s * size), (long long)s,
                   (long long)size);
  int64_t want = t->job ? job_shard_docs(t->job, s) : -1; /* -1: n_docs_total unknown */
  if (want < 0 && !last) want = size;
  if (want >= 0 && in->n_docs != want)
    return err_set(ERR_MISMATCH, "%s: n_docs is %lld, expected %lld", path,
                   (long long)in->n_docs, (long long)want);
  if (want < 0 && (in->n_docs < 1 || in->n_docs > size))
    return err_set(ERR_MISMATCH, "%s: n_docs is %lld, expected 1 to %lld (the last shard)", path,
                   (long long)in->n_docs, (long long)size);
  if (t->vocab_size && in->vocab_size != t->vocab_size)
    return err_set(ERR_MISMATCH, "%s: vocab_size %d, but %s has %d", path, in->vocab_size,
                   t->vocab_path, t->vocab_size);
  if (t->job) {
    const char *field = NULL;
    if (strcmp(in->model, t->job->model)) field = "model";
    else if (in->max_length != t->job->max_length) field = "max_length";
    else if (in->threshold != t->job->threshold) field = "threshold";
    else if (in->top_k != t->job->top_k) field = "top_k";
    if (field)
      return err_set(ERR_MISMATCH, "%s: attribute '%s' disagrees with %s", path, field,
                     JOB_FILE_NAME);
  }
  if (!t->vocab_size) {
    t->vocab_size = in->vocab_size;
    t->vocab_path = path;
  }
  if (t->shard_size == 0 && (!last || s > 0)) t->shard_size = size;
  return 0;
}
