/* jobfile: read, write and compare OUT/job.json; shard file names (see jobfile.h).
 * JSON through cJSON; numbers are doubles there, so int64 fields are checked to be integral. */
#include "jobfile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "err.h"

void job_params_init(job_params *p) {
  memset(p, 0, sizeof *p);
  p->input_size = -1;
  p->n_docs_total = -1;
  p->n_shards = -1;
  p->canary.passages = -1;
}

void job_set_totals(job_params *p, int64_t n_docs_total) {
  p->n_docs_total = n_docs_total;
  p->n_shards = p->shard_size > 0 ? (n_docs_total + p->shard_size - 1) / p->shard_size : -1;
}

int job_path(const char *dir, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/%s", dir, JOB_FILE_NAME);
  if (n < 0 || (size_t)n >= cap) return err_set(ERR_ARG, "%s: path too long", dir);
  return 0;
}

int job_shard_path(const char *dir, int64_t shard, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/shard-%05" PRId64 ".h5", dir, shard);
  if (n < 0 || (size_t)n >= cap) return err_set(ERR_ARG, "%s: path too long", dir);
  return 0;
}

int job_shard_index(const char *name, int64_t *shard, int *partial) {
  if (strncmp(name, "shard-", 6)) return 0;
  const char *p = name + 6;
  int digits = 0;
  int64_t value = 0;
  while (*p >= '0' && *p <= '9') {
    if (value > (INT64_MAX - 9) / 10) return 0;
    value = value * 10 + (*p - '0');
    p++;
    digits++;
  }
  if (digits < 5) return 0;
  if (!strcmp(p, ".h5")) {
    *partial = 0;
  } else if (!strcmp(p, ".h5.tmp")) {
    *partial = 1;
  } else {
    return 0;
  }
  *shard = value;
  return 1;
}

int64_t job_shard_first_doc(const job_params *p, int64_t shard) { return shard * p->shard_size; }

int64_t job_shard_docs(const job_params *p, int64_t shard) {
  if (p->n_docs_total < 0) return -1;
  int64_t first = shard * p->shard_size;
  if (first >= p->n_docs_total) return 0;
  int64_t left = p->n_docs_total - first;
  return left < p->shard_size ? left : p->shard_size;
}

/* ---- reading ---- */

static int job_get_string(const cJSON *root, const char *key, char *out, size_t cap,
                          const char *path) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!cJSON_IsString(item))
    return err_set(ERR_FORMAT, "%s: field '%s' is missing or not a string", path, key);
  if (strlen(item->valuestring) >= cap)
    return err_set(ERR_FORMAT, "%s: field '%s' is longer than %zu bytes", path, key, cap - 1);
  strcpy(out, item->valuestring);
  return 0;
}

/* An integral number; optional fields (required 0) that are absent or null give -1. */
static int job_get_int64(const cJSON *root, const char *key, int required, int64_t *out,
                         const char *path) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!required && (!item || cJSON_IsNull(item))) {
    *out = -1;
    return 0;
  }
  if (!cJSON_IsNumber(item))
    return err_set(ERR_FORMAT, "%s: field '%s' is missing or not a number", path, key);
  double v = item->valuedouble;
  if (v != floor(v) || fabs(v) > 9007199254740992.0)
    return err_set(ERR_FORMAT, "%s: field '%s' is not an integer", path, key);
  *out = (int64_t)v;
  return 0;
}

static int job_get_int(const cJSON *root, const char *key, int *out, const char *path) {
  int64_t v = 0;
  int rc = job_get_int64(root, key, 1, &v, path);
  if (rc < 0) return rc;
  if (v < INT32_MIN || v > INT32_MAX)
    return err_set(ERR_FORMAT, "%s: field '%s' is out of range", path, key);
  *out = (int)v;
  return 0;
}

/* The optional "canary" object of job.json into out->canary (passages -1 when absent). */
/* "stride", "max_windows" (absent: 0) and the "windows" result, if any. */
static int job_read_windows(const cJSON *root, job_params *out, const char *path) {
  int64_t stride = 0, max_windows = 0;
  int rc;
  if ((rc = job_get_int64(root, "stride", 0, &stride, path)) < 0 ||
      (rc = job_get_int64(root, "max_windows", 0, &max_windows, path)) < 0)
    return rc;
  if (stride > INT32_MAX || max_windows > INT32_MAX)
    return err_set(ERR_FORMAT, "%s: field 'stride' or 'max_windows' is out of range", path);
  out->stride = stride < 0 ? 0 : (int)stride;
  const cJSON *cols = cJSON_GetObjectItemCaseSensitive(root, "text_columns");
  const cJSON *fields = cJSON_GetObjectItemCaseSensitive(root, "text_fields");
  if ((cols && !cJSON_IsString(cols)) || (fields && !cJSON_IsString(fields)))
    return err_set(ERR_FORMAT, "%s: field 'text_columns' or 'text_fields' is not a string", path);
  snprintf(out->text_columns, sizeof out->text_columns, "%s", cols ? cols->valuestring : "");
  snprintf(out->text_fields, sizeof out->text_fields, "%s", fields ? fields->valuestring : "");
  out->max_windows = max_windows < 0 ? 0 : (int)max_windows;
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "windows");
  if (!w || cJSON_IsNull(w)) return 0;
  if (!cJSON_IsObject(w)) return err_set(ERR_FORMAT, "%s: field 'windows' is not an object", path);
  if ((rc = job_get_int64(w, "docs", 1, &out->windows.docs, path)) < 0 ||
      (rc = job_get_int64(w, "total", 1, &out->windows.total, path)) < 0 ||
      (rc = job_get_int64(w, "min", 1, &out->windows.min, path)) < 0 ||
      (rc = job_get_int64(w, "max", 1, &out->windows.max, path)) < 0 ||
      (rc = job_get_int64(w, "capped", 1, &out->windows.capped, path)) < 0 ||
      (rc = job_get_string(w, "first_capped", out->windows.first_capped,
                           sizeof out->windows.first_capped, path)) < 0)
    return rc;
  return 0;
}

static int job_read_canary(const cJSON *root, job_params *out, const char *path) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "canary");
  if (!c || cJSON_IsNull(c)) return 0;
  int64_t passages = 0;
  int rc;
  if (!cJSON_IsObject(c)) return err_set(ERR_FORMAT, "%s: field 'canary' is not an object", path);
  if ((rc = job_get_int64(c, "passages", 1, &passages, path)) < 0 ||
      (rc = job_get_string(c, "device", out->canary.device, sizeof out->canary.device, path)) < 0)
    return rc;
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "max_error");
  const cJSON *bound = cJSON_GetObjectItemCaseSensitive(c, "bound");
  const cJSON *top = cJSON_GetObjectItemCaseSensitive(c, "top64_agreement");
  const cJSON *rel = cJSON_GetObjectItemCaseSensitive(c, "relative");
  if (!cJSON_IsNumber(err) || !cJSON_IsNumber(bound) || !cJSON_IsNumber(top) ||
      !cJSON_IsBool(rel) || passages < 0 || passages > INT32_MAX)
    return err_set(ERR_FORMAT, "%s: field 'canary' lacks passages, max_error, relative, bound or "
                   "top64_agreement", path);
  out->canary.passages = (int)passages;
  out->canary.max_error = err->valuedouble;
  out->canary.bound = bound->valuedouble;
  out->canary.top_agreement = top->valuedouble;
  out->canary.relative = cJSON_IsTrue(rel);
  return 0;
}

int job_read(const char *dir, job_params *out) {
  char path[4200];
  char *text = NULL;
  cJSON *root = NULL;
  FILE *f = NULL;
  int rc = 0;
  job_params_init(out);
  if ((rc = job_path(dir, path, sizeof path)) < 0) return rc;
  if (!(f = fopen(path, "rb"))) {
    if (errno == ENOENT) return 1;
    return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  }
  /* job.json is small; refuse anything absurd rather than reading it whole */
  size_t cap = 1 << 20, used = 0;
  if (!(text = malloc(cap + 1))) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  used = fread(text, 1, cap, f);
  if (ferror(f)) {
    rc = err_set(ERR_IO, "%s: read failed: %s", path, strerror(errno));
    goto fail;
  }
  if (used == cap) {
    rc = err_set(ERR_FORMAT, "%s: larger than 1 MB, not a job file", path);
    goto fail;
  }
  text[used] = '\0';
  if (!(root = cJSON_ParseWithLength(text, used)) || !cJSON_IsObject(root)) {
    rc = err_set(ERR_FORMAT, "%s: not a JSON object", path);
    goto fail;
  }
  int64_t job_version = 0;
  if ((rc = job_get_int64(root, "job_version", 1, &job_version, path)) < 0) goto fail;
  if (job_version != JOB_FILE_VERSION) {
    rc = err_set(ERR_FORMAT, "%s: job_version %" PRId64 " is not supported (this build reads %d)",
                 path, job_version, JOB_FILE_VERSION);
    goto fail;
  }
  const cJSON *threshold = cJSON_GetObjectItemCaseSensitive(root, "threshold");
  if ((rc = job_get_string(root, "version", out->version, sizeof out->version, path)) < 0 ||
      (rc = job_get_string(root, "model", out->model, sizeof out->model, path)) < 0 ||
      (rc = job_get_string(root, "model_sha256", out->model_sha256, sizeof out->model_sha256,
                           path)) < 0 ||
      (rc = job_get_string(root, "input", out->input, sizeof out->input, path)) < 0 ||
      (rc = job_get_int64(root, "input_size", 1, &out->input_size, path)) < 0 ||
      (rc = job_get_string(root, "format", out->format, sizeof out->format, path)) < 0 ||
      (rc = job_get_int(root, "max_length", &out->max_length, path)) < 0 ||
      (rc = job_get_int(root, "top_k", &out->top_k, path)) < 0 ||
      (rc = job_get_int64(root, "shard_size", 1, &out->shard_size, path)) < 0 ||
      (rc = job_get_string(root, "precision", out->precision, sizeof out->precision, path)) < 0 ||
      (rc = job_get_int64(root, "n_docs_total", 0, &out->n_docs_total, path)) < 0 ||
      (rc = job_get_int64(root, "n_shards", 0, &out->n_shards, path)) < 0)
    goto fail;
  if (!cJSON_IsNumber(threshold)) {
    rc = err_set(ERR_FORMAT, "%s: field 'threshold' is missing or not a number", path);
    goto fail;
  }
  out->threshold = (float)threshold->valuedouble;
  int64_t workers = 0;
  if ((rc = job_get_int64(root, "workers", 0, &workers, path)) < 0) goto fail;
  if (workers == -1) workers = 0; /* absent: a job.json of a version without the field */
  if (workers < 0 || workers > INT32_MAX) {
    rc = err_set(ERR_FORMAT, "%s: field 'workers' must be positive", path);
    goto fail;
  }
  out->workers = (int)workers;
  if ((rc = job_read_canary(root, out, path)) < 0) goto fail;
  if ((rc = job_read_windows(root, out, path)) < 0) goto fail;
  if (out->shard_size <= 0) {
    rc = err_set(ERR_FORMAT, "%s: field 'shard_size' must be positive", path);
    goto fail;
  }
fail:
  if (f) fclose(f);
  free(text);
  cJSON_Delete(root);
  return rc;
}

/* ---- writing ---- */

int job_write(const char *dir, const job_params *p) {
  char path[4200], tmp[4300];
  cJSON *root = NULL;
  char *text = NULL;
  int fd = -1, rc = 0;
  if ((rc = job_path(dir, path, sizeof path)) < 0) return rc;
  /* unique per process even across nodes sharing the directory (a Slurm array) */
  char host[64] = "host";
  if (gethostname(host, sizeof host) < 0) snprintf(host, sizeof host, "host");
  host[sizeof host - 1] = '\0';
  for (char *c = host; *c; c++)
    if (*c == '/') *c = '_';
  snprintf(tmp, sizeof tmp, "%s.tmp.%s.%ld", path, host, (long)getpid());
  if (!(root = cJSON_CreateObject())) goto nomem;
  /* the threshold goes through a double; cJSON prints the shortest form that reads back equal */
  if (!cJSON_AddNumberToObject(root, "job_version", JOB_FILE_VERSION) ||
      !cJSON_AddStringToObject(root, "version", p->version) ||
      !cJSON_AddStringToObject(root, "model", p->model) ||
      !cJSON_AddStringToObject(root, "model_sha256", p->model_sha256) ||
      !cJSON_AddStringToObject(root, "input", p->input) ||
      !cJSON_AddNumberToObject(root, "input_size", (double)p->input_size) ||
      !cJSON_AddStringToObject(root, "format", p->format) ||
      !cJSON_AddNumberToObject(root, "max_length", p->max_length) ||
      !cJSON_AddNumberToObject(root, "threshold", (double)p->threshold) ||
      !cJSON_AddNumberToObject(root, "top_k", p->top_k) ||
      !cJSON_AddNumberToObject(root, "shard_size", (double)p->shard_size) ||
      !cJSON_AddStringToObject(root, "precision", p->precision))
    goto nomem;
  if (p->workers > 0 && !cJSON_AddNumberToObject(root, "workers", p->workers)) goto nomem;
  if (p->text_columns[0] && !cJSON_AddStringToObject(root, "text_columns", p->text_columns))
    goto nomem;
  if (p->text_fields[0] && !cJSON_AddStringToObject(root, "text_fields", p->text_fields))
    goto nomem;
  if (p->stride > 0 && (!cJSON_AddNumberToObject(root, "stride", p->stride) ||
                        !cJSON_AddNumberToObject(root, "max_windows", p->max_windows)))
    goto nomem;
  if (p->stride > 0 && p->windows.docs > 0) {
    cJSON *w = cJSON_AddObjectToObject(root, "windows");
    if (!w || !cJSON_AddNumberToObject(w, "docs", (double)p->windows.docs) ||
        !cJSON_AddNumberToObject(w, "total", (double)p->windows.total) ||
        !cJSON_AddNumberToObject(w, "min", (double)p->windows.min) ||
        !cJSON_AddNumberToObject(w, "max", (double)p->windows.max) ||
        !cJSON_AddNumberToObject(w, "capped", (double)p->windows.capped) ||
        !cJSON_AddStringToObject(w, "first_capped", p->windows.first_capped))
      goto nomem;
  }
  if (p->n_docs_total >= 0 &&
      (!cJSON_AddNumberToObject(root, "n_docs_total", (double)p->n_docs_total) ||
       !cJSON_AddNumberToObject(root, "n_shards", (double)p->n_shards)))
    goto nomem;
  if (p->canary.passages >= 0) {
    cJSON *c = cJSON_AddObjectToObject(root, "canary");
    if (!c || !cJSON_AddNumberToObject(c, "passages", p->canary.passages) ||
        !cJSON_AddStringToObject(c, "device", p->canary.device) ||
        !cJSON_AddNumberToObject(c, "max_error", p->canary.max_error) ||
        !cJSON_AddBoolToObject(c, "relative", p->canary.relative) ||
        !cJSON_AddNumberToObject(c, "bound", p->canary.bound) ||
        !cJSON_AddNumberToObject(c, "top64_agreement", p->canary.top_agreement))
      goto nomem;
  }
  if (!(text = cJSON_Print(root))) goto nomem;
  size_t length = strlen(text);
  if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
    rc = err_set(ERR_IO, "%s: %s", tmp, strerror(errno));
    goto fail;
  }
  for (size_t done = 0; done < length;) {
    ssize_t n = write(fd, text + done, length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = err_set(ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
      goto fail;
    }
    done += (size_t)n;
  }
  if (write(fd, "\n", 1) != 1) {
    rc = err_set(ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    goto fail;
  }
  if (close(fd) < 0) {
    fd = -1;
    rc = err_set(ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    goto fail;
  }
  fd = -1;
  rc = atomic_publish(tmp, path); /* fsync, rename, fsync OUT; tmp is gone either way */
  goto done;
nomem:
  rc = err_set(ERR_NOMEM, "%s: out of memory", path);
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
done:
  cJSON_free(text);
  cJSON_Delete(root);
  return rc;
}

/* ---- comparing ---- */

static int job_differs(const char *name, const char *job_value, const char *run_value,
                       int quote, const char **differing) {
  if (differing) *differing = name;
  const char *q = quote ? "'" : "";
  return err_set(ERR_MISMATCH,
                 "parameter '%s' differs: job.json has %s%s%s, this run has %s%s%s",
                 name, q, job_value, q, q, run_value, q);
}

int job_compare(const job_params *job, const job_params *run, const char **differing) {
  char a[64], b[64];
  if (differing) *differing = NULL;
#define JOB_STRING(field)                                                  \
  if (strcmp(job->field, run->field)) return job_differs(#field, job->field, run->field, 1, differing);
#define JOB_NUMBER(field, fmt, cast)                                       \
  if (job->field != run->field) {                                          \
    snprintf(a, sizeof a, fmt, (cast)job->field);                          \
    snprintf(b, sizeof b, fmt, (cast)run->field);                          \
    return job_differs(#field, a, b, 0, differing);                        \
  }
  JOB_STRING(model)
  JOB_STRING(model_sha256)
  JOB_STRING(input)
  JOB_NUMBER(input_size, "%lld", long long)
  JOB_STRING(format)
  JOB_STRING(text_columns)
  JOB_STRING(text_fields)
  JOB_NUMBER(max_length, "%d", int)
  JOB_NUMBER(threshold, "%.9g", double)
  JOB_NUMBER(top_k, "%d", int)
  JOB_NUMBER(shard_size, "%lld", long long)
  JOB_NUMBER(stride, "%d", int)
  JOB_NUMBER(max_windows, "%d", int)
  JOB_STRING(precision)
  JOB_STRING(version)
#undef JOB_STRING
#undef JOB_NUMBER
  return 0;
}
