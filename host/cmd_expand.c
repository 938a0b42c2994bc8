/* cmd_expand: `spladex expand`, the main job: a corpus in, HDF5 shards of SPLADE vectors out.
 *
 * Parses the options (DESIGN.md section 6), loads the model, tokenizer and encoder, checks or
 * writes OUT/job.json (a rerun with other parameters is refused, naming the parameter;
 * --overwrite starts over), resolves this process's worker I/N (N is the job's, recorded in
 * job.json by its first process; --worker auto takes I from the scheduler), takes the flock()
 * locks that keep processes apart, installs SIGINT/SIGTERM handlers that ask the pipeline to stop
 * cleanly (a second signal kills at once), and runs host/pipeline.c. When the whole input was
 * read, job.json is rewritten with the doc and shard totals for `spladex verify`.
 *
 * A job on a CUDA device first checks the device: its canary (host/canary.h) encodes the input's
 * first --canary passages on the device and on the CPU encoder (fp32) and compares them; on a
 * disagreement the job stops before it creates or writes anything, naming the passage, the term
 * and both weights; on agreement one line says so and job.json records it.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "canary.h"
#include "cli.h"
#include "commands.h"
#include "corpus.h"
#include "encoder.h"
#include "err.h"
#include "jobfile.h"
#include "model.h"
#include "pipeline.h"
#include "tokenizer.h"

static atomic_int expand_stop = 0; /* lock-free: safe to store from a signal handler */

static void expand_on_signal(int sig) {
  (void)sig;
  atomic_store(&expand_stop, 1); /* SA_RESETHAND: a second signal kills at once */
}

static const char expand_usage[] =
    "usage: spladex expand --model DIR --input PATH --output DIR [options]\n"
    "\n"
    "Encodes every passage of a corpus into a SPLADE vector and writes them, in input order, to\n"
    "HDF5 shards OUT/shard-NNNNN.h5 (docs [i*S, (i+1)*S) each) plus OUT/job.json. Rerunning the\n"
    "same command after a crash or kill resumes: complete shards are kept, partial ones redone.\n"
    "\n"
    "  --model DIR          SPLADE model directory (config.json, weights, vocab.txt/tokenizer.json)\n"
    "  --input PATH         corpus file, plain or gzip (detected by its magic bytes)\n"
    "  --output DIR         output directory (created if missing)\n"
    "  --format F           tsv (id<TAB>text), jsonl (Pyserini id/contents or BEIR _id/title/text)\n"
    "                       or ids (id<TAB>space-separated token ids, as `spladex tokenize` prints);\n"
    "                       default: jsonl for *.jsonl, *.json (and .gz), else tsv\n"
    "  --text-columns C,..  tsv: the text is these columns (1-based, the id is column 1) joined\n"
    "                       with one space, e.g. 3,4 for MS MARCO docs (id url title body);\n"
    "                       default: everything after the first tab\n"
    "  --text-fields F,..   jsonl: the text is these keys' values joined with one space (absent\n"
    "                       ones left out); default: contents, else title + text\n"
    "  --max-length N       tokens per passage, [CLS] and [SEP] included (default 256); with\n"
    "                       --stride, tokens per window (up to the model's max positions)\n"
    "  --stride S           0: truncate each passage to --max-length (default); S in [1, N-2]:\n"
    "                       long documents: windows of N tokens starting S tokens apart cover\n"
    "                       the whole text, its vector the max over all of them\n"
    "  --max-windows K      with --stride: at most K windows per document (default 64); the\n"
    "                       documents over it are counted (end of run, job.json)\n"
    "  --threshold T        keep weights > T (default 0)\n"
    "  --top-k K            keep the K largest weights per passage (default 0 = all)\n"
    "  --shard-size S       docs per shard (default 100000)\n"
    "  --device D           auto | cpu | cuda | cuda:N (default auto: CUDA when built with it and\n"
    "                       a device opens, else cpu)\n"
    "  --precision P        fp32 | fp16 | bf16 (default fp16 on cuda, fp32 on cpu; cpu: fp32 only)\n"
    "  --batch-tokens N     token budget of one batch: the sum of its docs' lengths <= N (default 16384)\n"
    "  --threads N          CPU threads for tokenizing and the CPU encoder (default: all cores)\n"
    "  --canary K           on a CUDA device, first compare the input's first K passages with the\n"
    "                       CPU encoder and stop before writing anything if they disagree\n"
    "                       (default 16; 0 = no check)\n"
    "  --worker I/N         this process owns shards s with s % N == I (default 0/1); run N\n"
    "                       processes on one output directory to split the job. N is fixed\n"
    "                       in OUT/job.json by the first process: another N is refused\n"
    "  --worker auto        I from SPLADEX_WORKER, else SLURM_ARRAY_TASK_ID, else\n"
    "                       JOB_COMPLETION_INDEX (Kubernetes Indexed Job); N from job.json,\n"
    "                       else --workers N, else a Slurm array 0-(N-1)\n"
    "  --workers N          N for --worker auto before job.json exists\n"
    "  --no-lock            take no flock() locks (a file system without flock): you make sure\n"
    "                       no two processes run as one worker, nor --overwrite beside workers\n"
    "  --skip-bad-lines     skip (and count) malformed input lines instead of stopping at the first\n"
    "  --overwrite          remove OUT's shards and job.json first and start over (single\n"
    "                       process only: with --worker I/N, N > 1, empty OUT once instead)\n"
    "  --quiet              no progress output\n"
    "  --help               this text\n"
    "\n"
    "Progress on stderr: a bar on a terminal, a line every 10 s otherwise.\n";

typedef struct {
  const char *model_dir, *input, *output, *format, *device, *precision, *worker;
  const char *text_columns, *text_fields; /* --text-columns / --text-fields as given, or NULL */
  int max_length, top_k, batch_tokens, threads, canary, stride, max_windows;
  int workers; /* --workers N (0: not given) */
  float threshold;
  int64_t shard_size;
  int overwrite, skip_bad_lines, quiet, help, no_lock, worker_given;
} expand_args;

static int parse_args(int argc, char **argv, expand_args *a) {
  memset(a, 0, sizeof *a);
  a->max_length = 256;
  a->max_windows = 64;
  a->shard_size = 100000;
  a->batch_tokens = 16384;
  a->canary = CANARY_DEFAULT_PASSAGES;
  a->device = "auto";
  a->worker = "0/1";
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      a->help = 1;
      return 0;
    }
    if (!strcmp(arg, "--overwrite")) { a->overwrite = 1; continue; }
    if (!strcmp(arg, "--skip-bad-lines")) { a->skip_bad_lines = 1; continue; }
    if (!strcmp(arg, "--quiet")) { a->quiet = 1; continue; }
    if (!strcmp(arg, "--no-lock")) { a->no_lock = 1; continue; }
    /* options with a value: --name VALUE or --name=VALUE */
    char name[64];
    const char *value = NULL;
    const char *eq = strchr(arg, '=');
    if (strncmp(arg, "--", 2) || (eq && (size_t)(eq - arg) >= sizeof name))
      return err_set(ERR_ARG, "unexpected argument '%s' (see spladex expand --help)", arg);
    if (eq) {
      memcpy(name, arg, (size_t)(eq - arg));
      name[eq - arg] = '\0';
      value = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", arg);
      if (i + 1 >= argc) return err_set(ERR_ARG, "%s needs a value", arg);
      value = argv[++i];
    }
    int rc = 0;
    if (!strcmp(name, "--model")) a->model_dir = value;
    else if (!strcmp(name, "--input")) a->input = value;
    else if (!strcmp(name, "--output")) a->output = value;
    else if (!strcmp(name, "--format")) a->format = value;
    else if (!strcmp(name, "--text-columns")) a->text_columns = value;
    else if (!strcmp(name, "--text-fields")) a->text_fields = value;
    else if (!strcmp(name, "--device")) a->device = value;
    else if (!strcmp(name, "--precision")) a->precision = value;
    else if (!strcmp(name, "--worker")) {
      a->worker = value;
      a->worker_given = 1;
    }
    else if (!strcmp(name, "--max-length"))
      rc = cli_parse_int(name, value, 2, 100000, &a->max_length);
    else if (!strcmp(name, "--top-k")) rc = cli_parse_int(name, value, 0, INT_MAX, &a->top_k);
    else if (!strcmp(name, "--stride")) rc = cli_parse_int(name, value, 0, 100000, &a->stride);
    else if (!strcmp(name, "--max-windows"))
      rc = cli_parse_int(name, value, 1, INT_MAX, &a->max_windows);
    else if (!strcmp(name, "--batch-tokens"))
      rc = cli_parse_int(name, value, 2, INT_MAX, &a->batch_tokens);
    else if (!strcmp(name, "--threads")) rc = cli_parse_int(name, value, 0, 1024, &a->threads);
    else if (!strcmp(name, "--canary")) rc = cli_parse_int(name, value, 0, 4096, &a->canary);
    else if (!strcmp(name, "--workers"))
      rc = cli_parse_int(name, value, 1, 1000000, &a->workers);
    else if (!strcmp(name, "--shard-size"))
      rc = cli_parse_int64(name, value, 1, (int64_t)1 << 40, &a->shard_size);
    else if (!strcmp(name, "--threshold"))
      rc = cli_parse_float(name, value, 0, 0, 1e30, &a->threshold);
    else {
      return err_set(ERR_ARG, "unknown option '%s' (see spladex expand --help)", name);
    }
    if (rc < 0) return rc;
  }
  if (!a->model_dir || !a->input || !a->output)
    return err_set(ERR_ARG, "--model, --input and --output are required (see spladex expand --help)");
  if (a->stride > a->max_length - 2)
    return err_set(ERR_ARG, "--stride %d is outside [0, %d] (0, or 1 to --max-length - 2)",
                   a->stride, a->max_length - 2);
  return 0;
}

/* The canary's passages: the input's first k records (fewer when the input is shorter), read and
 * tokenized as the pipeline reads and tokenizes them. */
typedef struct {
  canary_passages p;
  int32_t **ids;  /* [n] (lengths[d]) */
  int *lengths;   /* [n] */
  char **names;   /* [n] the records' ids */
} expand_canary_input;

static void canary_input_free(expand_canary_input *in) {
  for (int d = 0; d < in->p.n_docs; d++) {
    if (in->ids) free(in->ids[d]);
    if (in->names) free(in->names[d]);
  }
  free(in->ids);
  free(in->lengths);
  free(in->names);
  memset(in, 0, sizeof *in);
}

static int canary_input_read(const char *path, const corpus_options *copt, const tok *t,
                             int max_length, int k, expand_canary_input *out) {
  memset(out, 0, sizeof *out);
  corpus *c = NULL;
  tok_buffer buf = {0};
  corpus_options o = *copt;
  o.count_duplicates = 0;
  int rc = 0;
  out->ids = calloc((size_t)k, sizeof *out->ids);
  out->lengths = calloc((size_t)k, sizeof *out->lengths);
  out->names = calloc((size_t)k, sizeof *out->names);
  if (!out->ids || !out->lengths || !out->names) {
    rc = err_set(ERR_NOMEM, "out of memory for the canary");
    goto fail;
  }
  if ((rc = corpus_open(path, &o, &c)) < 0) goto fail;
  while (out->p.n_docs < k) {
    corpus_record r;
    if ((rc = corpus_next(c, &r)) <= 0) break;
    const int d = out->p.n_docs;
    out->ids[d] = malloc(sizeof(int32_t) * (size_t)max_length);
    out->names[d] = strdup(r.id);
    out->p.n_docs++;
    if (!out->ids[d] || !out->names[d]) {
      rc = err_set(ERR_NOMEM, "out of memory for the canary");
      goto fail;
    }
    rc = pipe_tokenize_record(o.format, t, r.text, r.text_len, max_length, &buf, out->ids[d]);
    if (rc < 0) {
      err_wrap(rc, "%s:%lld", path, (long long)r.line);
      goto fail;
    }
    out->lengths[d] = rc;
  }
  if (rc < 0) goto fail;
  out->p.ids = (const int32_t *const *)out->ids;
  out->p.lengths = out->lengths;
  out->p.names = (const char *const *)out->names;
  rc = 0;
fail:
  corpus_close(c);
  tok_buffer_free(&buf);
  if (rc < 0) canary_input_free(out);
  return rc;
}

/* Runs the canary of a device job on the input's first a->canary passages: 0 with run->canary
 * filled (or untouched when the input is empty), or ERR_DEVICE naming the passage and term. */
static int expand_canary(const expand_args *a, const char *input, const corpus_options *copt,
                         const model *m, const tok *t, encoder *enc, const enc_options *eo,
                         const char *const *vocab, job_params *run) {
  expand_canary_input in;
  int rc = canary_input_read(input, copt, t, a->max_length, a->canary, &in);
  if (rc < 0) return err_wrap(rc, "the canary (--canary %d)", a->canary);
  if (in.p.n_docs == 0) {
    canary_input_free(&in);
    return 0;
  }
  canary_result r;
  if ((rc = canary_run(m, enc, eo, &in.p, &r)) < 0) {
    canary_input_free(&in);
    return err_wrap(rc, "the canary (--canary %d)", a->canary);
  }
  const canary_stats *s = &r.stats;
  if (!s->ok) {
    char why[2048];
    canary_describe_failure(&r, &in.p, vocab, m->cfg.vocab, why, sizeof why);
    canary_input_free(&in);
    return err_set(ERR_DEVICE, "canary: %s. Nothing was written. Check this node with `spladex "
                   "selftest --model %s --device %s` and report its output; --canary 0 skips "
                   "this check (at your own risk)", why, a->model_dir, a->device);
  }
  const double error = r.rule.relative ? s->max_rel : s->max_abs;
  if (!a->quiet)
    fprintf(stderr, "spladex expand: canary: %d passages agree with the CPU encoder: max %s weight "
            "error %.3g (bound %.3g), top-%d terms the same on %.0f%% (CPU check %.1f s)\n",
            in.p.n_docs, r.rule.relative ? "relative" : "absolute", error, r.rule.bound,
            CANARY_TOP, 100.0 * s->same_top_fraction, r.cpu_seconds);
  run->canary.passages = in.p.n_docs;
  snprintf(run->canary.device, sizeof run->canary.device, "%s", r.device);
  run->canary.max_error = error;
  run->canary.relative = r.rule.relative;
  run->canary.bound = r.rule.bound;
  run->canary.top_agreement = s->same_top_fraction;
  canary_input_free(&in);
  return 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* mkdir -p */
static int make_dirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return err_set(ERR_ARG, "--output path too long");
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p) continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return err_set(ERR_IO, "%s: cannot create the directory: %s", buf, strerror(errno));
    *p = saved;
    if (!saved) break;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return err_set(ERR_IO, "%s: not a directory", path);
  return 0;
}

/* ---- worker identity and locks (DESIGN.md section 5) ----
 *
 * N is a property of the job: the first process to create OUT/job.json records its N there, and
 * every later process must use it (another N would make shard classes s % N overlap: a
 * `--worker 0/1` would own, and clear the .tmp of, every other worker's shards). Two flock()
 * locks keep processes apart; the kernel releases them when a process exits, however it exits:
 *   OUT/.spladex-job.lock          held while job.json is read, checked, written (and --overwrite
 *                                  empties OUT), so two first processes cannot record two Ns
 *   OUT/.spladex-worker-I.lock     held for the whole run by worker I: a second process with the
 *                                  same I (started twice, a requeued task while the old one still
 *                                  runs) is refused; no N in the name, so it conflicts whatever N
 *                                  the other one was started with; --overwrite refuses to run
 *                                  while any worker lock is held */

#define EXPAND_JOB_LOCK ".spladex-job.lock"
#define EXPAND_WORKER_LOCK_PREFIX ".spladex-worker-"

/* flock(), or the failure named by the test-only env SPLADEX_TEST_FLOCK_ERRNO (ENOLCK, ENOSYS or
 * EOPNOTSUPP: a file system mounted without flock support, as Lustre without -o flock). */
static int expand_flock(int fd, int op) {
  const char *fake = getenv("SPLADEX_TEST_FLOCK_ERRNO");
  if (fake && *fake) {
    errno = !strcmp(fake, "ENOSYS") ? ENOSYS : !strcmp(fake, "EOPNOTSUPP") ? EOPNOTSUPP : ENOLCK;
    return -1;
  }
  return flock(fd, op);
}

/* Opens and flock()s dir/name: exclusive, waiting for it (wait 1) or not. Returns 0 and *fd_out,
 * 1 when another process holds it (wait 0), or ERR_IO; a file system without flock gets a
 * message that says what to do. */
static int expand_lock(const char *dir, const char *name, int wait, int *fd_out) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  int rc;
  while ((rc = expand_flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB))) != 0 && errno == EINTR) {}
  if (rc == 0) {
    *fd_out = fd;
    return 0;
  }
  int e = errno;
  close(fd);
  if (e == EWOULDBLOCK) return 1;
  if (e == ENOSYS || e == EOPNOTSUPP || e == ENOLCK || e == EINVAL)
    return err_set(ERR_IO, "%s: this file system does not support flock() locks (%s). spladex "
                   "locks each worker slot so that two processes never write the same shards. "
                   "Mount it with locking (Lustre: -o flock; NFS: not -o nolock), use another "
                   "output directory, or pass --no-lock and make sure yourself that no two "
                   "processes run as the same worker and that no --overwrite runs beside workers",
                   path, strerror(e));
  return err_set(ERR_IO, "%s: cannot lock: %s", path, strerror(e));
}

/* --overwrite: refuses while any worker of the directory (any .spladex-worker-*.lock) runs. */
static int expand_check_no_worker_runs(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return err_set(ERR_IO, "%s: %s", dir, strerror(errno));
  int rc = 0;
  const size_t prefix = strlen(EXPAND_WORKER_LOCK_PREFIX);
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    if (strncmp(e->d_name, EXPAND_WORKER_LOCK_PREFIX, prefix) || !ends_with(e->d_name, ".lock"))
      continue;
    int fd = -1;
    rc = expand_lock(dir, e->d_name, 0, &fd);
    if (rc == 1)
      rc = err_set(ERR_ARG, "%s: a worker is still running (%s is locked): --overwrite would "
                   "delete its shards; stop it first", dir, e->d_name);
    if (fd >= 0) close(fd);
  }
  closedir(d);
  return rc;
}

/* The integer value of environment variable name: 0 when unset or empty, 1 with *out, or ERR_ARG. */
static int expand_env_int(const char *name, long *out) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < 0 || x > 1000000)
    return err_set(ERR_ARG, "--worker auto: %s is '%s', expected a number", name, v);
  *out = x;
  return 1;
}

/* Resolves the worker of this run: --worker I/N as given, or --worker auto (the usage text). job
 * is OUT/job.json, NULL when there is none (or --overwrite discards it); its workers (N), when
 * set, is the job's N: any other is refused, naming both. Fills *index and *count. */
static int expand_resolve_worker(const expand_args *a, const job_params *job, int *index,
                                 int *count) {
  const char *dir = a->output;
  const int job_n = job && job->workers > 0 ? job->workers : 0;
  char asked[128] = ""; /* the N this run asks for, and where from, for the messages */
  int n = 0, i = 0, rc;
  if (strcmp(a->worker, "auto")) {
    if (a->workers)
      return err_set(ERR_ARG, "--workers goes with --worker auto (--worker %s names N already)",
                     a->worker);
    if ((rc = cli_parse_worker(a->worker, &i, &n)) < 0) return rc;
    snprintf(asked, sizeof asked, "--worker %s%s", a->worker,
             a->worker_given ? "" : ", the default");
  } else {
    long id = 0, slurm_count = 0, slurm_min = 0, slurm_max = 0;
    const char *from = NULL, *env = getenv("SPLADEX_WORKER");
    if (env && *env) { /* I or I/N */
      from = "SPLADEX_WORKER";
      if (strchr(env, '/')) {
        if ((rc = cli_parse_worker(env, &i, &n)) < 0) return err_wrap(rc, "SPLADEX_WORKER");
        snprintf(asked, sizeof asked, "SPLADEX_WORKER=%s", env);
      } else {
        char *end = NULL;
        errno = 0;
        id = strtol(env, &end, 10);
        if (errno || end == env || *end || id < 0 || id >= 1000000)
          return err_set(ERR_ARG, "--worker auto: SPLADEX_WORKER is '%s', expected I or I/N", env);
        i = (int)id;
      }
    } else if ((rc = expand_env_int("SLURM_ARRAY_TASK_ID", &id)) != 0) {
      if (rc < 0) return rc;
      from = "SLURM_ARRAY_TASK_ID";
      i = (int)id;
      if ((rc = expand_env_int("SLURM_ARRAY_TASK_COUNT", &slurm_count)) < 0 ||
          (rc = expand_env_int("SLURM_ARRAY_TASK_MIN", &slurm_min)) < 0 ||
          (rc = expand_env_int("SLURM_ARRAY_TASK_MAX", &slurm_max)) < 0)
        return rc;
    } else if ((rc = expand_env_int("JOB_COMPLETION_INDEX", &id)) != 0) {
      if (rc < 0) return rc;
      from = "JOB_COMPLETION_INDEX";
      i = (int)id;
    } else {
      return err_set(ERR_ARG, "--worker auto: none of SPLADEX_WORKER, SLURM_ARRAY_TASK_ID or "
                     "JOB_COMPLETION_INDEX is set; pass --worker I/N");
    }
    if (n > 0 && a->workers && a->workers != n)
      return err_set(ERR_ARG, "--workers %d disagrees with %s", a->workers, asked);
    if (a->workers) {
      n = a->workers;
      snprintf(asked, sizeof asked, "--workers %d", n);
    }
    if (!n && job_n) {
      n = job_n;
    } else if (!n && slurm_count > 0) {
      /* The first use of the directory: the array must be 0..N-1, each index a worker. An array
       * with a step or a gap (--array=0-4:2), or one index resubmitted alone (--array=1) before
       * job.json exists, would give the job a wrong N. */
      if (slurm_min != 0 || slurm_max != slurm_count - 1)
        return err_set(ERR_ARG, "--worker auto: the Slurm array (task ids %ld..%ld, %ld tasks) is "
                       "not 0-%ld, and %s/%s does not fix N yet: submit the first array as "
                       "--array=0-(N-1), or pass --workers N", slurm_min, slurm_max, slurm_count,
                       slurm_count - 1, dir, JOB_FILE_NAME);
      n = (int)slurm_count;
      snprintf(asked, sizeof asked, "SLURM_ARRAY_TASK_COUNT=%d", n);
    } else if (!n) {
      return err_set(ERR_ARG, "--worker auto: %s/%s does not fix N yet and %s gives no count: "
                     "pass --workers N (a Kubernetes Indexed Job: its completions)", dir,
                     JOB_FILE_NAME, from);
    }
    if (i >= n)
      return err_set(ERR_ARG, "--worker auto: worker %d (%s) is outside the job's workers "
                     "0..%d (N = %d%s)", i, from, n - 1, n,
                     job_n && !asked[0] ? " from job.json" : "");
  }
  if (job_n && n != job_n)
    return err_set(ERR_MISMATCH, "%s/%s: the job is split over N = %d workers, but this run asks "
                   "for N = %d (%s); run its workers as --worker I/%d (0 <= I < %d) or with "
                   "--worker auto, which takes N from job.json; --overwrite starts over", dir,
                   JOB_FILE_NAME, job_n, n, asked, job_n, job_n);
  *index = i;
  *count = n;
  return 0;
}

int cmd_expand(int argc, char **argv) {
  expand_args a;
  model *m = NULL;
  tok *t = NULL;
  encoder *enc = NULL;
  const char **vocab = NULL;
  int lock_fd = -1, job_lock_fd = -1;
  int rc = parse_args(argc, argv, &a);
  if (rc < 0) return rc;
  if (a.help) {
    fputs(expand_usage, stdout);
    return 0;
  }

  pipe_options po = pipe_options_default();
  job_params run;
  job_params_init(&run);
  struct sigaction sa, old_int, old_term;
  int handlers = 0;

  /* ---- options that need no model ---- */
  const char *format = a.format;
  if (!format)
    format = (ends_with(a.input, ".jsonl") || ends_with(a.input, ".jsonl.gz") ||
              ends_with(a.input, ".json") || ends_with(a.input, ".json.gz"))
                 ? "jsonl"
                 : "tsv";
  if ((rc = corpus_parse_format(format, &po.corpus.format)) < 0) goto fail;
  if (a.text_columns && po.corpus.format != CORPUS_TSV) {
    rc = err_set(ERR_ARG, "--text-columns is for --format tsv (this input is %s)", format);
    goto fail;
  }
  if (a.text_fields && po.corpus.format != CORPUS_JSONL) {
    rc = err_set(ERR_ARG, "--text-fields is for --format jsonl (this input is %s)", format);
    goto fail;
  }
  if (a.text_columns && (rc = corpus_parse_text_columns(a.text_columns, &po.corpus)) < 0) goto fail;
  if (a.text_fields && (rc = corpus_parse_text_fields(a.text_fields, &po.corpus)) < 0) goto fail;
  if (strcmp(a.worker, "auto") &&
      (rc = cli_parse_worker(a.worker, &po.worker_index, &po.worker_count)) < 0)
    goto fail;
  if ((rc = pipe_shard_threads(getenv("SPLADEX_SHARD_THREADS"), &po.shard_threads)) < 0) goto fail;
  if (a.overwrite && po.worker_count > 1) {
    /* Every worker would delete every other worker's shards (and job.json under their feet). */
    rc = err_set(ERR_ARG, "--overwrite cannot be combined with --worker %s: it would delete the "
                 "other workers' shards; empty %s once before starting the workers", a.worker,
                 a.output);
    goto fail;
  }
  if (a.batch_tokens < a.max_length) {
    rc = err_set(ERR_ARG, "--batch-tokens %d is smaller than --max-length %d", a.batch_tokens,
                 a.max_length);
    goto fail;
  }
  /* --device and --precision checked before the model loads (cli_open_encoder uses them) */
  cli_device device;
  enc_precision precision;
  if ((rc = cli_parse_device(a.device, &device)) < 0) goto fail;
  if (a.precision && (rc = cli_parse_precision(a.precision, &precision)) < 0) goto fail;
  char input_path[PATH_MAX];
  if (!realpath(a.input, input_path)) {
    rc = err_set(ERR_IO, "%s: %s", a.input, strerror(errno));
    goto fail;
  }
  struct stat st;
  if (stat(input_path, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = err_set(ERR_IO, "%s: not a regular file", a.input);
    goto fail;
  }

  /* ---- model, tokenizer, encoder ---- */
  if ((rc = cli_require_device(a.device)) < 0) goto fail; /* --device cuda: fail before loading */
  if ((rc = cli_open_model(a.model_dir, &m, &t)) < 0) goto fail;
  if (a.max_length > m->cfg.max_positions) {
    rc = err_set(ERR_ARG, "--max-length %d exceeds the model's %d positions", a.max_length,
                 m->cfg.max_positions);
    goto fail;
  }
  enc_options eo = enc_options_default();
  eo.threads = a.threads;
  eo.threshold = a.threshold;
  eo.top_k = a.top_k;
  eo.max_batch_tokens = a.batch_tokens;
  eo.max_batch_docs = po.max_batch_docs;
  eo.max_length = a.max_length;
  if ((rc = cli_open_encoder("spladex expand", m, a.device, a.precision, &eo, &enc)) < 0) goto fail;

  /* ---- job.json ---- */
  snprintf(run.version, sizeof run.version, "%s", SPLADEX_VERSION);
  snprintf(run.model, sizeof run.model, "%s", m->name);
  snprintf(run.model_sha256, sizeof run.model_sha256, "%s", m->weights_sha256);
  snprintf(run.input, sizeof run.input, "%s", input_path);
  run.input_size = (int64_t)st.st_size;
  snprintf(run.format, sizeof run.format, "%s", format);
  run.max_length = a.max_length;
  run.threshold = a.threshold;
  run.top_k = a.top_k;
  run.shard_size = a.shard_size;
  run.stride = a.stride;
  snprintf(run.text_columns, sizeof run.text_columns, "%s", a.text_columns ? a.text_columns : "");
  snprintf(run.text_fields, sizeof run.text_fields, "%s", a.text_fields ? a.text_fields : "");
  run.max_windows = a.stride > 0 ? a.max_windows : 0;
  snprintf(run.precision, sizeof run.precision, "%s", cli_precision_name(eo.precision));

  int V = m->cfg.vocab;
  vocab = calloc((size_t)V, sizeof *vocab);
  if (!vocab) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (int i = 0; i < V; i++) {
    const char *term = tok_token(t, i);
    vocab[i] = term ? term : "";
  }
  po.corpus.skip_bad_lines = a.skip_bad_lines;
  po.corpus.vocab_size = V;
  /* ---- the device's canary, before anything is created or written ---- */
  if (a.canary > 0 && (eo.backend == ENC_CUDA || canary_fault_injected()) &&
      (rc = expand_canary(&a, input_path, &po.corpus, m, t, enc, &eo, vocab, &run)) < 0)
    goto fail;

  if ((rc = make_dirs(a.output)) < 0) goto fail;
  /* job.json and the worker's identity under the job lock (see expand_lock) */
  if (!a.no_lock && (rc = expand_lock(a.output, EXPAND_JOB_LOCK, 1, &job_lock_fd)) < 0) goto fail;
  job_params existing;
  rc = job_read(a.output, &existing);
  if (rc < 0) goto fail;
  if (a.overwrite) rc = 1; /* the existing job is discarded below */
  if ((rc = expand_resolve_worker(&a, rc == 0 ? &existing : NULL, &po.worker_index,
                                  &po.worker_count)) < 0)
    goto fail;
  run.workers = po.worker_count;
  if (a.overwrite && po.worker_count > 1) {
    rc = err_set(ERR_ARG, "--overwrite cannot be combined with --worker %s (N = %d): it would "
                 "delete the other workers' shards; empty %s once before starting the workers",
                 a.worker, po.worker_count, a.output);
    goto fail;
  }
  if (a.overwrite) {
    char path[4096];
    if (!a.no_lock && (rc = expand_check_no_worker_runs(a.output)) < 0) goto fail;
    if ((rc = pipe_remove_shards(a.output)) < 0) goto fail;
    if ((rc = job_path(a.output, path, sizeof path)) < 0) goto fail;
    if (unlink(path) != 0 && errno != ENOENT) {
      rc = err_set(ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
      goto fail;
    }
  }
  rc = a.overwrite ? 1 : job_read(a.output, &existing);
  if (rc < 0) goto fail;
  if (rc == 0 && existing.workers == 0) { /* a job.json of an older version: record N now */
    existing.workers = run.workers;
    if ((rc = job_write(a.output, &existing)) < 0) goto fail;
  }
  if (rc == 1) {
    if ((rc = job_write(a.output, &run)) < 0) goto fail;
  } else {
    if ((rc = job_compare(&existing, &run, NULL)) < 0) {
      char why[1024];
      snprintf(why, sizeof why, "%s", err_msg());
      err_set(rc, "%s/%s: %s; rerun with the job's parameters to resume it, or add --overwrite "
                  "to start over", a.output, JOB_FILE_NAME, why);
      goto fail;
    }
    /* a CPU worker keeps the canary a device worker recorded; a checked device records its own */
    if (run.canary.passages < 0) {
      run.canary = existing.canary;
    } else { /* the job as it stands (its totals too, if known) with this run's canary */
      job_params updated = existing;
      updated.canary = run.canary;
      if ((rc = job_write(a.output, &updated)) < 0) goto fail;
    }
  }
  if (!a.no_lock) {
    char name[64];
    snprintf(name, sizeof name, EXPAND_WORKER_LOCK_PREFIX "%d.lock", po.worker_index);
    if ((rc = expand_lock(a.output, name, 0, &lock_fd)) == 1) {
      lock_fd = -1;
      rc = err_set(ERR_ARG, "%s: another spladex expand is already running as worker %d/%d on "
                   "this output directory (%s is locked)", a.output, po.worker_index,
                   po.worker_count, name);
    }
    if (rc < 0) goto fail;
  } else if (!a.quiet) {
    fprintf(stderr, "spladex expand: --no-lock: no locks taken; make sure no other process runs "
            "as worker %d/%d on %s, and no --overwrite\n", po.worker_index, po.worker_count,
            a.output);
  }
  if (job_lock_fd >= 0) close(job_lock_fd);
  job_lock_fd = -1;

  /* ---- the pipeline ---- */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 1) cores = 1;
  po.input = input_path;
  po.output_dir = a.output;
  po.model_name = m->name;
  po.max_length = a.max_length;
  po.stride = a.stride;
  po.max_windows = a.max_windows;
  po.threshold = a.threshold;
  po.top_k = a.top_k;
  po.shard_size = a.shard_size;
  po.batch_tokens = a.batch_tokens;
  po.tokenizer_threads = a.threads > 0 ? a.threads : (int)(cores < 8 ? cores : 8);
  po.stop = &expand_stop;
  po.quiet = a.quiet;

  if (!a.quiet)
    fprintf(stderr, "spladex expand: %s -> %s, worker %d/%d, %s, shard size %lld\n", a.input,
            a.output, po.worker_index, po.worker_count, enc_describe(enc), (long long)a.shard_size);
  atomic_store(&expand_stop, 0);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = expand_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  handlers = 1;

  pipe_stats ps;
  memset(&ps, 0, sizeof ps);
  rc = pipe_run(&po, t, enc, vocab, V, &ps);
  if (ps.corpus.duplicates)
    fprintf(stderr, "spladex expand: warning: %lld duplicate id(s) in the input (first: %s); "
            "each is kept as its own doc\n", (long long)ps.corpus.duplicates,
            ps.corpus.first_duplicate);
  if (ps.corpus.bad_lines)
    fprintf(stderr, "spladex expand: warning: %lld malformed line(s) skipped (first: %s)\n",
            (long long)ps.corpus.bad_lines, ps.corpus.first_bad_line);
  if (ps.docs_capped)
    fprintf(stderr, "spladex expand: %lld document(s) had more than %d windows (--max-windows): "
            "only their first %d were encoded (first: %s)\n", (long long)ps.docs_capped,
            a.max_windows, a.max_windows, ps.first_capped_id);
  if (rc < 0) goto fail;

  job_set_totals(&run, ps.docs_in_input);
  if (a.stride > 0 && ps.docs_encoded > 0) {
    run.windows.docs = ps.docs_encoded;
    run.windows.total = ps.windows_encoded;
    run.windows.min = ps.windows_min;
    run.windows.max = ps.windows_max;
    run.windows.capped = ps.docs_capped;
    snprintf(run.windows.first_capped, sizeof run.windows.first_capped, "%s", ps.first_capped_id);
  }
  if ((rc = job_write(a.output, &run)) < 0) goto fail;
  if (!a.quiet)
    fprintf(stderr, "spladex expand: %lld docs in the input (%lld shards); this process wrote "
            "%lld shard(s) (%lld docs, %lld tokens) in %.1f s; %lld shard(s) were already "
            "complete\n", (long long)ps.docs_in_input, (long long)ps.shards_in_input,
            (long long)ps.shards_written, (long long)ps.docs_encoded,
            (long long)ps.tokens_encoded, ps.seconds, (long long)ps.shards_skipped);
  if (!a.quiet && a.stride > 0 && ps.docs_encoded > 0)
    fprintf(stderr, "spladex expand: windows per document this process encoded: min %lld, "
            "mean %.2f, max %lld (--max-length %d --stride %d); %lld document(s) hit "
            "--max-windows %d (the whole job's: spladex info)\n",
            (long long)ps.windows_min, (double)ps.windows_encoded / (double)ps.docs_encoded,
            (long long)ps.windows_max, a.max_length, a.stride, (long long)ps.docs_capped,
            a.max_windows);
  rc = 0;

fail:
  if (job_lock_fd >= 0) close(job_lock_fd);
  if (lock_fd >= 0) close(lock_fd);
  if (handlers) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
  }
  free(vocab);
  enc_close(enc);
  tok_free(t);
  model_free(m);
  return rc;
}
