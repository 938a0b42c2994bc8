/* jobfile: OUT/job.json, the parameters of an expansion job, and the shard file names.
 *
 * job.json (DESIGN.md sections 4 and 5) is written atomically (a per-process temporary file,
 * fsync, rename, fsync of the directory). The parameters are written once when the job starts; a
 * rerun compares its own parameters with them (job_compare) and is refused when any differs.
 * n_docs_total and n_shards are absent until a process has read the whole input; it then rewrites
 * job.json with the same parameters plus those two numbers, which `spladex verify` uses to tell a
 * finished job from an unfinished one. Several --worker processes may do this at once: they write
 * identical bytes, and each rename is atomic.
 *
 *   {"job_version": 1, "version": "0.1.0", "model": "...", "model_sha256": "...",
 *    "input": "/abs/path", "input_size": 123, "format": "tsv", "max_length": 256,
 *    "threshold": 0, "top_k": 0, "shard_size": 100000, "precision": "fp32", "workers": 3,
 *    "n_docs_total": 1000, "n_shards": 1, "stride": 128, "max_windows": 64,
 *    "windows": {"docs": 1000, "total": 3100, "min": 1, "max": 64, "capped": 2,
 *                "first_capped": "D17"},
 *    "canary": {"passages": 16, "device": "cuda:0 ...", "max_error": 0.0012, "relative": true,
 *               "bound": 0.005, "top64_agreement": 1}}
 * (canary: only for a job whose device was checked against the CPU; the last worker's result)
 *
 * workers is N of `--worker I/N`, fixed by the first process that creates job.json: worker I
 * owns the shards s with s % N == I, so every process of the job must use the same N
 * (host/cmd_expand.c refuses another N, naming both). A job.json without it (written before
 * workers existed) has workers 0: the next run records its own N.
 *
 * Shard s holds docs [s * shard_size, min((s + 1) * shard_size, n_docs_total)) and is named
 * shard-%05d.h5 (more digits past 99999); an unfinished one is that name plus ".tmp".
 */
#ifndef SPLADEX_JOBFILE_H
#define SPLADEX_JOBFILE_H

#include <stddef.h>
#include <stdint.h>

#define JOB_FILE_NAME "job.json"
#define JOB_FILE_VERSION 1

typedef struct {
  char version[32];        /* spladex version that runs the job */
  char model[1024];        /* model id as the user gave it (HF name or directory) */
  char model_sha256[65];   /* hex sha256 of the weights file (io/sha256.h: sha256_file_hex) */
  char input[4096];        /* input path; the caller resolves it (realpath) so reruns compare */
  int64_t input_size;      /* bytes of the input file on disk, -1 when unknown (a pipe) */
  char format[16];         /* input format: tsv | jsonl | ids */
  int max_length;
  float threshold;
  int top_k;
  int64_t shard_size;      /* docs per shard, > 0 */
  char precision[16];      /* the resolved compute precision: fp32 | fp16 | bf16 */
  int workers;             /* N of --worker I/N, >= 1; 0 when job.json predates the field */
  int64_t n_docs_total;    /* docs in the whole input, -1 until known */
  int64_t n_shards;        /* ceil(n_docs_total / shard_size), -1 until known */
  /* Long documents (`--stride`): written as "stride" and "max_windows" when stride > 0, and
   * compared; absent = 0 (truncation, max_windows then irrelevant). */
  int stride;
  int max_windows;
  /* --text-columns / --text-fields as given ("" = the default text): written when not "" and
   * compared (absent = ""). */
  char text_columns[128];
  char text_fields[1100];
  /* With a stride, the windows of the docs the last process encoded (a result, never compared
   * nor summed over runs or workers: the job's figures are the shards' windows_* attrs, shard.h;
   * written as "windows": {...} when docs > 0): docs, windows total / min / max per doc, docs
   * with more than max_windows windows and the id of the first of them (lowest doc number). */
  struct {
    int64_t docs, total, min, max, capped;
    char first_capped[256];
  } windows;
  /* The canary of a CUDA job (host/canary.h: its first passages on the device and on the CPU):
   * a result, never compared; written as "canary": {...} when passages >= 0. */
  struct {
    int passages;          /* passages compared, -1 when no canary ran */
    char device[400];      /* enc_describe of the device checked */
    double max_error;      /* the worst weight error: relative (fp16/bf16) or absolute (fp32) */
    int relative;          /* 1: max_error is relative to each passage's largest CPU weight */
    double bound;          /* the bound it was held to */
    double top_agreement;  /* fraction of passages whose top-64 terms agree (ties allowed) */
  } canary;
} job_params;

/* Empties *p: strings "", numbers 0 (workers too), input_size / n_docs_total / n_shards / canary.passages -1. */
void job_params_init(job_params *p);

/* Sets n_docs_total and n_shards = ceil(n_docs_total / shard_size) (0 shards for 0 docs). */
void job_set_totals(job_params *p, int64_t n_docs_total);

/* Writes "dir/job.json" into out[cap]. Returns 0 or ERR_ARG when it does not fit. */
int job_path(const char *dir, char *out, size_t cap);

/* Writes "dir/shard-%05d.h5" for shard into out[cap]. Returns 0 or ERR_ARG when it does not fit. */
int job_shard_path(const char *dir, int64_t shard, char *out, size_t cap);

/* Parses a file name (no directory) of the form shard-NNNNN.h5 or shard-NNNNN.h5.tmp (at least
 * 5 digits). Returns 1 and sets *shard and *partial (1 for .tmp), or 0 for any other name. */
int job_shard_index(const char *name, int64_t *shard, int *partial);

/* First global doc of shard s: s * shard_size. */
int64_t job_shard_first_doc(const job_params *p, int64_t shard);

/* Docs that shard s must hold: shard_size, or the remainder for the last shard; -1 when
 * n_docs_total is unknown (any count up to shard_size may be right for the last one);
 * 0 for a shard past the end. */
int64_t job_shard_docs(const job_params *p, int64_t shard);

/* Reads dir/job.json into *out. Returns 0, 1 when the file does not exist (out is then
 * job_params_init'ed), ERR_IO (unreadable) or ERR_FORMAT (bad JSON, a missing or mistyped
 * field: the message names the file and the field). */
int job_read(const char *dir, job_params *out);

/* Writes p to dir/job.json atomically (dir/job.json.tmp.HOST.PID, fsync, rename, fsync dir),
 * replacing any existing one. n_docs_total / n_shards are written only when >= 0.
 * Returns 0 or ERR_IO naming the file. */
int job_write(const char *dir, const job_params *p);

/* Compares the parameters of an existing job with those of a rerun, in this order: model,
 * model_sha256, input, input_size, format, text_columns, text_fields, max_length, threshold,
 * top_k, shard_size, stride, max_windows, precision, version (n_docs_total / n_shards / windows are results, not compared;
 * workers is not compared either:
 * the caller checks it first, with its own message). Returns 0 when all agree, else
 * ERR_MISMATCH with a message naming the first differing parameter and both values; *differing
 * (when not NULL) gets that parameter's name (a static string) or NULL. */
int job_compare(const job_params *job, const job_params *run, const char **differing);

#endif
