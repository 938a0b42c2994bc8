/* bench_pipeline: the host pipeline's ceiling (issue 18 item 4). Runs the real `spladex expand`
 * pipeline (host/pipeline.h: reader, tokenizer threads, length-sorting batcher, encoder submit /
 * collect, window hand-off, shard writer with its default compression, fsync + rename of every
 * shard, job.json) with a synthetic encoder that returns realistic rows instantly, so the
 * figure is what the host can feed a GPU at most, on the machine it runs on.
 *
 * Input: a generated MS MARCO-like TSV (id<TAB>text): DOCS passages, words per passage lognormal
 * (mean ~55, sigma 0.45, clamped to [4, 250]), words drawn Zipf-like from the tokenizer's own
 * whole-word vocabulary (BERT's vocabulary is roughly in frequency order), ~7% of them two words
 * glued (split into word pieces), capitalised sentence starts, commas, full stops and numbers.
 * Deterministic (a fixed seed): written once to DIR/corpus-DOCS.tsv and reused.
 *
 * The synthetic encoder plugs in through encoder.h's enc_open_custom (the same interface as the
 * CPU and CUDA backends, not reachable from the CLI). It returns, per passage, one row of a pool
 * of 16,384 rows made at start: NNZ +- 50 distinct term ids (mean NNZ, default 150) drawn
 * Zipf-like over V = 30522 from id 1996 (BERT's first whole word) and sorted, weights gamma(2,
 * 0.35) floats (SPLADE-like: positive, mean ~0.7, long tail). The row is picked by a hash of the
 * passage's token ids, so a run's shards are reproducible. The copy into the result is the
 * encoder thread's only work (a GPU backend's download does as much).
 *
 * Reports, per repeat, passages/s from the start of pipe_run to its return (input read to the
 * last shard closed, fsynced and renamed; job.json written after), the process's CPU time, and
 * where the time went (pipe_stats: CPU seconds per stage, seconds each stage waited for its
 * input). The output is removed after each repeat unless --keep.
 *
 * Usage: bench_pipeline [--docs N=500000] [--dir DIR=/tmp/bench_pipeline] [--model DIR=
 *   models/splade-tiny] [--repeats R=3] [--shard-size S=100000] [--threads T=min(cores, 8)]
 *   [--nnz M=150] [--batch-tokens B=16384] [--keep]
 * Shard compression threads: SPLADEX_SHARD_THREADS, resolved as `spladex expand` does.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "encoder.h"
#include "err.h"
#include "jobfile.h"
#include "model.h"
#include "pipeline.h"
#include "tokenizer.h"

enum { VOCAB = 30522, POOL_ROWS = 16384, FIRST_WORD_ID = 1996 };

/* ---- deterministic random numbers ---- */

static uint64_t bench_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
  bench_rng ^= bench_rng << 13;
  bench_rng ^= bench_rng >> 7;
  bench_rng ^= bench_rng << 17;
  return bench_rng;
}
static double next_unit(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
static double next_normal(void) {
  double u = next_unit(), v = next_unit();
  return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(6.283185307179586 * v);
}

/* A Zipf-like sampler over ranks [0, n): P(r) ~ 1 / (r + q)^a, by binary search in the CDF. */
typedef struct {
  double *cdf;
  int n;
} zipf;

static int zipf_init(zipf *z, int n, double q, double a) {
  z->n = n;
  if (!(z->cdf = malloc((size_t)n * sizeof *z->cdf))) return -1;
  double sum = 0;
  for (int r = 0; r < n; r++) z->cdf[r] = (sum += 1.0 / pow(r + q, a));
  for (int r = 0; r < n; r++) z->cdf[r] /= sum;
  return 0;
}

static int zipf_next(const zipf *z) {
  double u = next_unit();
  int lo = 0, hi = z->n - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (z->cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec +
         (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
}

/* ---- the corpus ---- */

/* Whole words of the vocabulary: lowercase a-z only, not a word piece; in id order. */
static int corpus_words(const tok *t, const char ***out) {
  const int V = tok_vocab_size(t);
  const char **words = malloc((size_t)V * sizeof *words);
  int n = 0;
  if (!words) return -1;
  for (int id = 0; id < V; id++) {
    const char *w = tok_token(t, id);
    if (!w || !*w) continue;
    int ok = 1;
    for (const char *c = w; *c && ok; c++) ok = *c >= 'a' && *c <= 'z';
    if (ok && (w[1] || *w == 'a')) words[n++] = w;
  }
  *out = words;
  return n;
}

static int write_corpus(const char *path, const tok *t, long docs) {
  const char **words = NULL;
  const int n_words = corpus_words(t, &words);
  zipf z = {0};
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = n_words > 100 && zipf_init(&z, n_words, 2.7, 1.0) == 0 ? fopen(tmp, "w") : NULL;
  if (!f) {
    fprintf(stderr, "bench_pipeline: cannot write %s\n", tmp);
    free(words);
    free(z.cdf);
    return -1;
  }
  bench_rng = 0x5DEECE66Dull;
  const double sigma = 0.45, mu = log(55.0) - sigma * sigma / 2;
  long total_words = 0;
  for (long d = 0; d < docs; d++) {
    int n = (int)lround(exp(mu + sigma * next_normal()));
    n = n < 4 ? 4 : n > 250 ? 250 : n;
    total_words += n;
    fprintf(f, "%ld\t", d);
    int sentence_start = 1;
    for (int i = 0; i < n; i++) {
      if (i) fputc(' ', f);
      const double u = next_unit();
      if (u < 0.03) {
        fprintf(f, "%d", (int)(next_u64() % 3000));
      } else {
        const char *w = words[zipf_next(&z)];
        if (sentence_start) {
          fputc(w[0] - 'a' + 'A', f);
          fputs(w + 1, f);
        } else {
          fputs(w, f);
        }
        if (u > 0.93) fputs(words[200 + (int)(next_u64() % (uint64_t)(n_words - 200))], f);
      }
      sentence_start = 0;
      const double p = next_unit();
      if (i + 1 == n || p < 0.06) {
        fputc('.', f);
        sentence_start = 1;
      } else if (p < 0.12) {
        fputc(',', f);
      }
    }
    fputc('\n', f);
  }
  int rc = ferror(f) | fclose(f);
  free(words);
  free(z.cdf);
  if (rc || rename(tmp, path)) {
    fprintf(stderr, "bench_pipeline: cannot write %s\n", path);
    return -1;
  }
  fprintf(stderr, "bench_pipeline: wrote %s: %ld passages, %.1f words each on average\n", path,
          docs, (double)total_words / (double)docs);
  return 0;
}

/* ---- the synthetic encoder ---- */

typedef struct {
  int32_t *pool_indices; /* (pool entries) the rows' term ids, row r at pool_off[r] */
  float *pool_values;
  int64_t pool_off[POOL_ROWS + 1];
  int64_t *indptr;       /* (max_batch_docs + 1) the result */
  int32_t *indices;      /* (max_batch_docs * (nnz + 50)) */
  float *values;
  char describe[64];
} synth;

static void synth_close(void *state) {
  synth *y = state;
  if (!y) return;
  free(y->pool_indices);
  free(y->pool_values);
  free(y->indptr);
  free(y->indices);
  free(y->values);
  free(y);
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int synth_open(int nnz, int max_batch_docs, synth **out) {
  synth *y = calloc(1, sizeof *y);
  zipf z = {0};
  unsigned char *seen = calloc(VOCAB, 1);
  const size_t cap = (size_t)POOL_ROWS * (size_t)(nnz + 50);
  const size_t row_cap = (size_t)max_batch_docs * (size_t)(nnz + 50);
  if (!y || !seen || zipf_init(&z, VOCAB - FIRST_WORD_ID, 10.0, 0.9) < 0 ||
      !(y->pool_indices = malloc(cap * sizeof(int32_t))) ||
      !(y->pool_values = malloc(cap * sizeof(float))) ||
      !(y->indptr = malloc(((size_t)max_batch_docs + 1) * sizeof(int64_t))) ||
      !(y->indices = malloc(row_cap * sizeof(int32_t))) ||
      !(y->values = malloc(row_cap * sizeof(float)))) {
    free(seen);
    free(z.cdf);
    synth_close(y);
    return -1;
  }
  bench_rng = 0x2545F4914F6CDD1Dull;
  int64_t at = 0;
  for (int r = 0; r < POOL_ROWS; r++) {
    const int n = nnz - 50 + (int)(next_u64() % 101);
    y->pool_off[r] = at;
    for (int k = 0; k < n;) {
      const int32_t id = FIRST_WORD_ID + zipf_next(&z);
      if (seen[id]) continue;
      seen[id] = 1;
      y->pool_indices[at + k++] = id;
    }
    qsort(y->pool_indices + at, (size_t)n, sizeof(int32_t), cmp_i32);
    for (int k = 0; k < n; k++) {
      seen[y->pool_indices[at + k]] = 0;
      const double g = -0.35 * (log(1.0 - next_unit()) + log(1.0 - next_unit())); /* gamma(2) */
      y->pool_values[at + k] = (float)g + 1e-3f;
    }
    at += n;
  }
  y->pool_off[POOL_ROWS] = at;
  snprintf(y->describe, sizeof y->describe, "synthetic, %d +- 50 terms per row", nnz);
  free(seen);
  free(z.cdf);
  *out = y;
  return 0;
}

static int synth_run(void *state, const enc_batch *batch, const enc_rows *rows, enc_result *out) {
  synth *y = state;
  if (rows) return err_set(ERR_ARG, "the synthetic encoder has no --stride");
  int64_t at = 0;
  y->indptr[0] = 0;
  for (int b = 0; b < batch->n_docs; b++) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the ids */
    for (int t = 0; t < batch->lengths[b]; t++) h = (h ^ (uint32_t)batch->ids[b][t]) * 1099511628211ull;
    const int r = (int)(h % POOL_ROWS);
    const int64_t from = y->pool_off[r], n = y->pool_off[r + 1] - from;
    memcpy(y->indices + at, y->pool_indices + from, (size_t)n * sizeof(int32_t));
    memcpy(y->values + at, y->pool_values + from, (size_t)n * sizeof(float));
    at += n;
    y->indptr[b + 1] = at;
  }
  out->n_docs = batch->n_docs;
  out->indptr = y->indptr;
  out->indices = y->indices;
  out->values = y->values;
  return 0;
}

static const char *synth_describe(const void *state) { return ((const synth *)state)->describe; }

/* Bytes of the files in dir. */
static double dir_bytes(const char *dir) {
  DIR *d = opendir(dir);
  double total = 0;
  struct dirent *e;
  char path[4400];
  struct stat st;
  while (d && (e = readdir(d)))
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) > 0 && stat(path, &st) == 0 &&
        S_ISREG(st.st_mode))
      total += (double)st.st_size;
  if (d) closedir(d);
  return total;
}

/* ---- main ---- */

static const char *arg_value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "bench_pipeline: %s needs a value\n", argv[*i]);
    exit(2);
  }
  return argv[++*i];
}

int main(int argc, char **argv) {
  long docs = 500000, shard_size = 100000;
  const char *dir = "/tmp/bench_pipeline", *model_dir = "models/splade-tiny";
  int repeats = 3, nnz = 150, keep = 0, batch_tokens = 16384;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--docs")) docs = atol(arg_value(argc, argv, &i));
    else if (!strcmp(argv[i], "--dir")) dir = arg_value(argc, argv, &i);
    else if (!strcmp(argv[i], "--model")) model_dir = arg_value(argc, argv, &i);
    else if (!strcmp(argv[i], "--repeats")) repeats = atoi(arg_value(argc, argv, &i));
    else if (!strcmp(argv[i], "--shard-size")) shard_size = atol(arg_value(argc, argv, &i));
    else if (!strcmp(argv[i], "--threads")) threads = atoi(arg_value(argc, argv, &i));
    else if (!strcmp(argv[i], "--nnz")) nnz = atoi(arg_value(argc, argv, &i));
    else if (!strcmp(argv[i], "--batch-tokens")) batch_tokens = atoi(arg_value(argc, argv, &i));
    else if (!strcmp(argv[i], "--keep")) keep = 1;
    else {
      fprintf(stderr, "usage: bench_pipeline [--docs N] [--dir DIR] [--model DIR] [--repeats R] "
                      "[--shard-size S] [--threads T] [--nnz M] [--batch-tokens B] [--keep]\n");
      return 2;
    }
  }
  if (docs < 1 || shard_size < 1 || repeats < 1 || threads < 1 || nnz < 51 || nnz > 5000) {
    fprintf(stderr, "bench_pipeline: bad arguments (docs, shard size, repeats, threads >= 1; "
                    "nnz in [51, 5000])\n");
    return 2;
  }
  int shard_threads = 0;
  if (pipe_shard_threads(getenv("SPLADEX_SHARD_THREADS"), &shard_threads) < 0) {
    fprintf(stderr, "bench_pipeline: %s\n", err_msg());
    return 2;
  }
  tok *t = NULL;
  if (tok_open(model_dir, &t) < 0) {
    fprintf(stderr, "bench_pipeline: %s\n", err_msg());
    return 1;
  }
  if (tok_vocab_size(t) != VOCAB) {
    fprintf(stderr, "bench_pipeline: %s has %d terms; the synthetic rows need BERT's %d\n",
            model_dir, tok_vocab_size(t), VOCAB);
    return 1;
  }
  const char **vocab = malloc(VOCAB * sizeof *vocab);
  for (int v = 0; v < VOCAB; v++) vocab[v] = tok_token(t, v);

  char corpus_path[4096], out_dir[4096];
  snprintf(corpus_path, sizeof corpus_path, "%s/corpus-%ld.tsv", dir, docs);
  snprintf(out_dir, sizeof out_dir, "%s/out", dir);
  mkdir(dir, 0755);
  mkdir(out_dir, 0755);
  struct stat st;
  if (stat(corpus_path, &st) != 0 && write_corpus(corpus_path, t, docs) < 0) return 1;
  if (stat(corpus_path, &st) != 0) return 1;

  pipe_options po = pipe_options_default();
  po.input = corpus_path;
  po.output_dir = out_dir;
  po.model_name = "synthetic";
  po.shard_size = shard_size;
  po.batch_tokens = batch_tokens;
  po.tokenizer_threads = threads;
  po.shard_threads = shard_threads;
  po.quiet = 1;

  /* enc_open's checks need a model's vocabulary size and positions only */
  model m;
  memset(&m, 0, sizeof m);
  m.cfg.vocab = VOCAB;
  m.cfg.max_positions = 512;
  enc_options eo = enc_options_default();
  eo.max_batch_tokens = po.batch_tokens;
  eo.max_batch_docs = po.max_batch_docs;
  eo.max_length = po.max_length;
  synth *y = NULL;
  encoder *enc = NULL;
  const enc_custom_backend backend = {synth_run, synth_describe, synth_close};
  if (synth_open(nnz, po.max_batch_docs, &y) < 0 || enc_open_custom(&m, &eo, &backend, y, &enc) < 0) {
    fprintf(stderr, "bench_pipeline: cannot open the synthetic encoder: %s\n", err_msg());
    return 1;
  }

  char host[256] = "";
  gethostname(host, sizeof host);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  printf("bench_pipeline: %s, %.1f MB, %ld passages; %s; %d tokenizer threads, %d shard "
         "compression threads, shard size %ld, batch tokens %d; %ld cores, load %.2f\n",
         corpus_path, (double)st.st_size / 1e6, docs, enc_describe(enc), threads, shard_threads,
         shard_size, batch_tokens, cores, load[0]);
  double best = 0;
  for (int r = 0; r < repeats; r++) {
    if (pipe_remove_shards(out_dir) < 0) {
      fprintf(stderr, "bench_pipeline: %s\n", err_msg());
      return 1;
    }
    pipe_stats ps;
    const pipe_timing *tm = &ps.timing;
    const double cpu0 = cpu_seconds(), t0 = now();
    int rc = pipe_run(&po, t, enc, vocab, VOCAB, &ps);
    const double t1 = now(), cpu1 = cpu_seconds();
    job_params job;
    job_params_init(&job);
    job_set_totals(&job, ps.docs_in_input);
    if (rc < 0 || (rc = job_write(out_dir, &job)) < 0) {
      fprintf(stderr, "bench_pipeline: %s\n", err_msg());
      return 1;
    }
    const double rate = (double)ps.docs_encoded / (t1 - t0);
    if (rate > best) best = rate;
    getloadavg(load, 3);
    printf("repeat %d: %.0f passages/s (%lld passages, %lld tokens, %lld shards, %.2f s wall, "
           "%.2f s CPU, load %.2f; %.1f MB on disk)\n"
           "  CPU s: reader %.2f, tokenizers %.2f, encoder %.2f, writer %.2f, other (shard "
           "compression threads) %.2f\n"
           "  waited s: reader for a free chunk %.2f, encoder for input %.2f, writer for a "
           "window %.2f; the writer closed shards (flush, close; then queued for fsync + rename) in "
           "%.2f s\n"
           "  batches: %lld, %.1f docs and %.0f tokens each, %.1f%% of the %d-token budget\n",
           r + 1, rate, (long long)ps.docs_encoded, (long long)ps.tokens_encoded,
           (long long)ps.shards_written, t1 - t0, cpu1 - cpu0, load[0], dir_bytes(out_dir) / 1e6,
           tm->cpu_reader,
           tm->cpu_tokenizer, tm->cpu_encoder, tm->cpu_writer,
           (cpu1 - cpu0) - tm->cpu_reader - tm->cpu_tokenizer - tm->cpu_encoder - tm->cpu_writer,
           tm->wait_reader, tm->wait_encoder, tm->wait_writer, tm->finish_writer,
           (long long)ps.batches_encoded, (double)ps.docs_encoded / (double)(ps.batches_encoded ? ps.batches_encoded : 1),
           (double)ps.batch_tokens_encoded / (double)(ps.batches_encoded ? ps.batches_encoded : 1),
           100.0 * (double)ps.batch_tokens_encoded / ((double)(ps.batches_encoded ? ps.batches_encoded : 1) * batch_tokens),
           batch_tokens);
    fflush(stdout);
  }
  printf("best: %.0f passages/s\n", best);
  if (!keep) {
    pipe_remove_shards(out_dir);
    char job_file[4200];
    if (job_path(out_dir, job_file, sizeof job_file) == 0) unlink(job_file);
    rmdir(out_dir);
  }
  enc_close(enc);
  free(vocab);
  tok_free(t);
  return 0;
}
