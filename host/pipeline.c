/* pipeline: reader -> tokenizer threads -> batcher/encoder -> writer (see pipeline.h).
 *
 * One mutex and one condition variable guard all the hand-offs; every wait is timed (100 ms)
 * so that a stop flag set by a signal handler, or a failure in another stage, is noticed
 * without any thread having to be woken explicitly. Hand-offs are per chunk (64 docs) and per
 * window (thousands of docs), so the lock is taken rarely.
 *
 * Order: the reader fills chunks in input order into a ring; tokenizer threads take them in
 * any order; the encoder thread consumes them strictly in ring order, so each window is a run
 * of consecutive owned docs. Sorting by length happens inside a window only, and rows are
 * stored at their window position, so the writer emits them in input order with no reorder
 * buffer. Batches stream through the encoder with up to ENC_MAX_IN_FLIGHT in flight, across
 * window boundaries: a window is handed to the writer when its last batch is collected, which
 * may be after the next window's first batch was submitted, so the device does not idle while
 * the next window is gathered. Legend: W window docs, L max_length, B batch docs, C chunk docs.
 */
#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "err.h"
#include "grow.h"
#include "jobfile.h"
#include "progress.h"
#include "shard.h"
#include "shard_dir.h"

#define PIPE_CHUNK_DOCS 64 /* C */
enum { PIPE_PUBLISH_QUEUE = 2, PIPE_PATH_MAX = 4200 };

enum { CHUNK_FREE, CHUNK_FILLED, CHUNK_TOKENIZING, CHUNK_TOKENIZED };
enum { WINDOW_FREE, WINDOW_READY };

typedef struct {
  int state;
  int n;
  int64_t doc[PIPE_CHUNK_DOCS];
  int64_t byte_start[PIPE_CHUNK_DOCS], byte_end[PIPE_CHUNK_DOCS], line[PIPE_CHUNK_DOCS];
  size_t id_off[PIPE_CHUNK_DOCS], text_off[PIPE_CHUNK_DOCS], text_len[PIPE_CHUNK_DOCS];
  char *bytes; /* ids (NUL-terminated) and texts, back to back */
  size_t bytes_n, bytes_cap;
  int32_t *ids; /* (ids_cap) doc i's len[i] token ids at tok_off[i]: i * L (stride 0, C * L
                 * allocated) or back to back, untruncated (stride: grows) */
  size_t ids_cap;
  size_t tok_off[PIPE_CHUNK_DOCS];
  int len[PIPE_CHUNK_DOCS];
} pipe_chunk;

typedef struct {
  int state;
  int n;
  int last;        /* no window follows this one */
  int64_t *doc;    /* (W) global doc numbers */
  int64_t *byte_start, *byte_end; /* (W) */
  size_t *id_off;  /* (W) into id_bytes */
  char *id_bytes;
  size_t id_n, id_cap;
  int32_t *ids;    /* (ids_cap) the docs' token ids back to back, doc p's at tok_off[p] */
  size_t *tok_off; /* (W) */
  size_t ids_n, ids_cap;
  int *len;        /* (W) */
  int64_t *row_off; /* (W) into indices / values */
  int *row_nnz;    /* (W) */
  int32_t *indices; /* (nnz) */
  float *values;    /* (nnz) */
  size_t nnz, nnz_cap;
  int encoded;      /* docs whose rows are stored; the window is READY at encoded == n */
} pipe_window;

typedef struct {
  int64_t shard;
  int64_t n_docs, input_start, input_end;
} pipe_complete;

typedef struct {
  char tmp[PIPE_PATH_MAX], path[PIPE_PATH_MAX]; /* a closed shard: atomic_publish(tmp, path) */
} pipe_publish;

typedef struct {
  const pipe_options *opt;
  const tok *t;
  encoder *enc;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pipe_chunk *chunks;
  int n_chunks;
  int64_t next_fill, next_tokenize, next_consume;
  int reader_done;
  pipe_window win[2];
  atomic_int failed; /* read without the mutex by should_stop() */
  int fail_code;
  char fail_msg[1024];
  int64_t raw_read;       /* bytes of the input file read (compressed bytes for .gz) */
  int64_t plain_read;     /* the same in uncompressed bytes (corpus_read_offset) */
  int64_t encoded_pos;    /* uncompressed offset the encoder reached (estimate within a window) */
  int64_t docs_encoded, tokens_encoded, batches_encoded;
  int64_t window_tokens; /* a window takes chunks while it stays within this many tokens */
  int64_t docs_in_input;
  corpus_stats corpus_stats;
  /* with a stride (the encoder thread's, read after it ended): see pipe_stats */
  int64_t windows_encoded, windows_min, windows_max, docs_capped, first_capped;
  char first_capped_id[256];
  pipe_timing timing; /* under the mutex (cpu_writer and finish_writer: pipe_run's) */
  /* the publisher thread's queue of closed shards, in shard order (a ring) */
  pipe_publish publish[PIPE_PUBLISH_QUEUE];
  int publish_head, publish_pending, publish_exit;
  int64_t shards_published; /* renamed to their final name in this run */
  pipe_complete *complete; /* this worker's shards already complete, ascending */
  size_t n_complete;
  /* test-only kill point */
  char kill_name[32];
  long kill_count;
  long kill_seen;
} pipe_state;

pipe_options pipe_options_default(void) {
  pipe_options o;
  memset(&o, 0, sizeof o);
  o.corpus = corpus_options_default();
  o.model_name = "";
  o.max_length = 256;
  o.shard_size = 100000;
  o.worker_count = 1;
  o.batch_tokens = 16384;
  o.max_batch_docs = 512;
  o.window_docs = 0;
  o.tokenizer_threads = 2;
  return o;
}

int pipe_shard_threads(const char *env_value, int *threads) {
  enum { MAX_THREADS = 16 }; /* the writer's own limit (shard.h) */
  if (env_value && *env_value) {
    char *end = NULL;
    errno = 0;
    long n = strtol(env_value, &end, 10);
    if (errno || *end || n < 0 || n > MAX_THREADS)
      return err_set(ERR_ARG, "SPLADEX_SHARD_THREADS is '%s', expected 0 to %d", env_value,
                     MAX_THREADS);
    *threads = (int)n;
    return 0;
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  *threads = cores - 1 > 4 ? 4 : cores - 1 < 1 ? 1 : (int)(cores - 1);
  return 0;
}

int pipe_remove_shards(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0 && errno == ENOENT) return 0;
  sdir_listing l;
  int rc = sdir_list(dir, &l);
  if (rc < 0) return rc;
  int removed = 0;
  for (int partial = 0; partial < 2 && rc == 0; partial++) {
    const sdir_file *files = partial ? l.partials : l.shards;
    int64_t n = partial ? l.n_partials : l.n_shards;
    for (int64_t i = 0; i < n && rc == 0; i++) {
      if (unlink(files[i].path) != 0)
        rc = err_set(ERR_IO, "%s: cannot remove: %s", files[i].path, strerror(errno));
      else
        removed++;
    }
  }
  sdir_listing_free(&l);
  return rc < 0 ? rc : removed;
}

/* ---- shared state helpers ---- */

static int should_stop(pipe_state *s) {
  return atomic_load(&s->failed) || (s->opt->stop && atomic_load(s->opt->stop));
}

/* Records the first failure (the calling thread's err_msg) and wakes everyone. Returns code. */
static int pipe_fail(pipe_state *s, int code) {
  pthread_mutex_lock(&s->mu);
  if (!s->failed) {
    s->failed = 1;
    s->fail_code = code;
    snprintf(s->fail_msg, sizeof s->fail_msg, "%s", err_msg()[0] ? err_msg() : "failed");
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return code;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Adds the calling thread's CPU time to *stage (a field of s->timing), under the mutex. */
static void stage_cpu(pipe_state *s, double *stage) {
  const double cpu = thread_cpu_now();
  pthread_mutex_lock(&s->mu);
  *stage += cpu;
  pthread_mutex_unlock(&s->mu);
}

/* Waits on the condition for at most 100 ms; the caller holds the mutex and rechecks. */
static void timed_wait(pipe_state *s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 100 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

/* timed_wait, adding the wall time waited to *waited (a pipe_state field). */
static void timed_wait_counted(pipe_state *s, double *waited) {
  const double t0 = mono_now();
  timed_wait(s);
  *waited += mono_now() - t0;
}

static void kill_point(pipe_state *s, const char *name) {
  if (!s->kill_name[0] || strcmp(s->kill_name, name)) return;
  pthread_mutex_lock(&s->mu);
  long seen = ++s->kill_seen;
  pthread_mutex_unlock(&s->mu);
  if (seen == s->kill_count) {
    fprintf(stderr, "spladex: test kill point %s:%ld reached, raising SIGKILL\n", name, seen);
    fflush(stderr);
    kill(getpid(), SIGKILL);
  }
}

static const pipe_complete *find_complete(const pipe_state *s, int64_t shard) {
  size_t lo = 0, hi = s->n_complete;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->complete[mid].shard < shard) lo = mid + 1;
    else hi = mid;
  }
  return lo < s->n_complete && s->complete[lo].shard == shard ? &s->complete[lo] : NULL;
}

/* ---- reader ---- */

static int chunk_add(pipe_chunk *ch, const corpus_record *r) {
  size_t need = ch->bytes_n + r->id_len + 1 + r->text_len + 1;
  if (grow(&ch->bytes, &ch->bytes_cap, need, 1))
    return err_set(ERR_NOMEM, "out of memory (%zu bytes of a reader chunk)", need);
  int i = ch->n++;
  ch->doc[i] = r->index;
  ch->byte_start[i] = r->byte_start;
  ch->byte_end[i] = r->byte_end;
  ch->line[i] = r->line;
  ch->id_off[i] = ch->bytes_n;
  memcpy(ch->bytes + ch->bytes_n, r->id, r->id_len + 1);
  ch->bytes_n += r->id_len + 1;
  ch->text_off[i] = ch->bytes_n;
  ch->text_len[i] = r->text_len;
  memcpy(ch->bytes + ch->bytes_n, r->text, r->text_len);
  ch->bytes[ch->bytes_n + r->text_len] = '\0';
  ch->bytes_n += r->text_len + 1;
  return 0;
}

/* Waits for the next ring slot to be free; NULL when stopping. */
static pipe_chunk *chunk_acquire(pipe_state *s) {
  pthread_mutex_lock(&s->mu);
  pipe_chunk *ch = &s->chunks[s->next_fill % s->n_chunks];
  while (ch->state != CHUNK_FREE && !should_stop(s)) timed_wait_counted(s, &s->timing.wait_reader);
  pthread_mutex_unlock(&s->mu);
  if (should_stop(s)) return NULL;
  ch->n = 0;
  ch->bytes_n = 0;
  return ch;
}

static void chunk_publish(pipe_state *s, pipe_chunk *ch, const corpus *c) {
  pthread_mutex_lock(&s->mu);
  ch->state = CHUNK_FILLED;
  s->next_fill++;
  s->raw_read = corpus_file_offset(c);
  s->plain_read = corpus_read_offset(c);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* A complete shard being skipped must match what the input has now. */
static int check_skipped(const pipe_state *s, const pipe_complete *c, int64_t seen,
                         int64_t start, int64_t end) {
  char path[4096];
  job_shard_path(s->opt->output_dir, c->shard, path, sizeof path);
  if (seen != c->n_docs || start != c->input_start || end != c->input_end)
    return err_set(ERR_MISMATCH,
                   "%s holds %lld docs from input bytes [%lld, %lld) but %s now has %lld docs "
                   "at [%lld, %lld) for that shard: the input changed; rerun with --overwrite",
                   path, (long long)c->n_docs, (long long)c->input_start, (long long)c->input_end,
                   s->opt->input, (long long)seen, (long long)start, (long long)end);
  return 0;
}

static void reader_run(pipe_state *s) {
  const pipe_options *o = s->opt;
  corpus *c = NULL;
  pipe_chunk *ch = NULL;
  int rc = corpus_open(o->input, &o->corpus, &c);
  int64_t cur_shard = -1, seen = 0, shard_start = 0, shard_end = 0;
  const pipe_complete *skipping = NULL; /* the complete shard being skipped, if any */
  int owned_todo = 0;
  if (rc < 0) goto fail;
  corpus_record r;
  for (;;) {
    rc = corpus_next(c, &r);
    if (rc < 0) goto fail;
    if (rc == 0) break;
    int64_t shard = r.index / o->shard_size;
    if (shard != cur_shard) {
      if (skipping && (rc = check_skipped(s, skipping, seen, shard_start, shard_end)) < 0) goto fail;
      if (ch && ch->n) {
        chunk_publish(s, ch, c);
        ch = NULL;
      }
      cur_shard = shard;
      seen = 0;
      shard_start = r.byte_start;
      owned_todo = 0;
      skipping = NULL;
      if (shard % o->worker_count == o->worker_index) {
        skipping = find_complete(s, shard);
        owned_todo = !skipping;
      }
    }
    seen++;
    shard_end = r.byte_end;
    if (owned_todo) {
      if (!ch && !(ch = chunk_acquire(s))) goto stopped;
      if ((rc = chunk_add(ch, &r)) < 0) goto fail;
      kill_point(s, "read");
      if (ch->n == PIPE_CHUNK_DOCS) {
        chunk_publish(s, ch, c);
        ch = NULL;
      }
    } else if ((r.index & 4095) == 0) {
      pthread_mutex_lock(&s->mu);
      s->raw_read = corpus_file_offset(c);
      s->plain_read = corpus_read_offset(c);
      pthread_mutex_unlock(&s->mu);
      if (should_stop(s)) goto stopped;
    }
  }
  if (skipping && (rc = check_skipped(s, skipping, seen, shard_start, shard_end)) < 0) goto fail;
  if (ch && ch->n) chunk_publish(s, ch, c);
  ch = NULL;
  pthread_mutex_lock(&s->mu);
  s->docs_in_input = corpus_get_stats(c)->records;
  s->corpus_stats = *corpus_get_stats(c);
  s->raw_read = corpus_file_size(c);
  s->plain_read = corpus_read_offset(c);
  s->reader_done = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  corpus_close(c);
  return;
fail:
  pipe_fail(s, rc);
stopped:
  corpus_close(c);
}

static void *reader_main(void *arg) {
  pipe_state *s = arg;
  reader_run(s);
  stage_cpu(s, &s->timing.cpu_reader);
  return NULL;
}

/* ---- tokenizer threads ---- */

int pipe_tokenize_record(corpus_format format, const tok *t, const char *text, size_t len,
                         int max_length, tok_buffer *buf, int32_t *ids) {
  if (format == CORPUS_IDS) {
    size_t n = corpus_parse_ids(text, len, ids, (size_t)max_length);
    if (n > (size_t)max_length) {
      /* the line's last id, which tok_truncate_ids keeps */
      size_t end = len;
      while (end > 0 && (text[end - 1] < '0' || text[end - 1] > '9')) end--;
      size_t start = end;
      while (start > 0 && text[start - 1] >= '0' && text[start - 1] <= '9') start--;
      int32_t last = 0;
      corpus_parse_ids(text + start, end - start, &last, 1);
      n = tok_truncate_ids(ids, n, last, (size_t)max_length);
    }
    return (int)n;
  }
  int rc = tok_encode(t, text, len, max_length, buf);
  if (rc < 0) return rc;
  memcpy(ids, buf->ids, buf->n * sizeof *ids);
  return (int)buf->n;
}

/* With a stride: the record's ids untruncated, [CLS] ... [SEP] (an ids record: its own first and
 * last ids), appended to ch->ids at `at`. Returns their number (>= 2), or ERR_INPUT / ERR_NOMEM. */
static int tokenize_untruncated(corpus_format format, const tok *t, const char *text, size_t len,
                                tok_buffer *buf, pipe_chunk *ch, size_t at) {
  size_t n;
  if (format == CORPUS_IDS) {
    n = corpus_parse_ids(text, len, NULL, 0);
    if (n < 2)
      return err_set(ERR_INPUT, "an id list of %zu id(s): --stride needs [CLS] ... [SEP], at "
                     "least 2 ids", n);
  } else {
    int rc = tok_encode(t, text, len, 0, buf);
    if (rc < 0) return rc;
    n = buf->n;
  }
  if (n > (size_t)INT32_MAX / 2) return err_set(ERR_INPUT, "a document of %zu tokens", n);
  if (grow(&ch->ids, &ch->ids_cap, at + n, sizeof *ch->ids))
    return err_set(ERR_NOMEM, "out of memory (%zu token ids of a chunk)", at + n);
  if (format == CORPUS_IDS)
    corpus_parse_ids(text, len, ch->ids + at, n);
  else
    memcpy(ch->ids + at, buf->ids, n * sizeof *ch->ids);
  return (int)n;
}

static void tokenizer_run(pipe_state *s) {
  const pipe_options *o = s->opt;
  tok_buffer buf = {0};
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->next_tokenize == s->next_fill && !s->reader_done && !should_stop(s)) timed_wait(s);
    if (should_stop(s) || s->next_tokenize == s->next_fill) break;
    pipe_chunk *ch = &s->chunks[s->next_tokenize % s->n_chunks];
    s->next_tokenize++;
    ch->state = CHUNK_TOKENIZING;
    pthread_mutex_unlock(&s->mu);
    size_t at = 0;
    for (int i = 0; i < ch->n; i++) {
      const char *text = ch->bytes + ch->text_off[i];
      int rc;
      if (o->stride > 0) {
        ch->tok_off[i] = at;
        rc = tokenize_untruncated(o->corpus.format, s->t, text, ch->text_len[i], &buf, ch, at);
        if (rc > 0) at += (size_t)rc;
      } else {
        ch->tok_off[i] = (size_t)i * o->max_length;
        rc = pipe_tokenize_record(o->corpus.format, s->t, text, ch->text_len[i], o->max_length,
                                  &buf, ch->ids + ch->tok_off[i]);
      }
      if (rc < 0) {
        err_wrap(rc, "%s:%lld", o->input, (long long)ch->line[i]);
        pipe_fail(s, rc);
        tok_buffer_free(&buf);
        return;
      }
      ch->len[i] = rc;
    }
    pthread_mutex_lock(&s->mu);
    ch->state = CHUNK_TOKENIZED;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  tok_buffer_free(&buf);
}

static void *tokenizer_main(void *arg) {
  pipe_state *s = arg;
  tokenizer_run(s);
  stage_cpu(s, &s->timing.cpu_tokenizer);
  return NULL;
}

/* ---- batcher + encoder thread ---- */

typedef struct {
  int len, pos;
} pipe_order;

static int order_cmp(const void *a, const void *b) {
  const pipe_order *x = a, *y = b;
  if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
  return x->pos - y->pos;
}

static int window_take_chunk(pipe_state *s, pipe_window *w, const pipe_chunk *ch) {
  (void)s;
  for (int i = 0; i < ch->n; i++) {
    int p = w->n++;
    const char *id = ch->bytes + ch->id_off[i];
    size_t id_len = strlen(id);
    if (grow(&w->id_bytes, &w->id_cap, w->id_n + id_len + 1, 1))
      return err_set(ERR_NOMEM, "out of memory (doc ids of the window)");
    w->id_off[p] = w->id_n;
    memcpy(w->id_bytes + w->id_n, id, id_len + 1);
    w->id_n += id_len + 1;
    w->doc[p] = ch->doc[i];
    w->byte_start[p] = ch->byte_start[i];
    w->byte_end[p] = ch->byte_end[i];
    w->len[p] = ch->len[i];
    const size_t n = (size_t)ch->len[i];
    if (grow(&w->ids, &w->ids_cap, w->ids_n + n, sizeof *w->ids))
      return err_set(ERR_NOMEM, "out of memory (%zu token ids of the window)", w->ids_n + n);
    w->tok_off[p] = w->ids_n;
    memcpy(w->ids + w->ids_n, ch->ids + ch->tok_off[i], n * sizeof(int32_t));
    w->ids_n += n;
  }
  return 0;
}

/* One batch submitted to the encoder and not yet collected: order[at .. at + n) of window w. */
typedef struct {
  pipe_window *w;
  int wi;                   /* w == &s->win[wi] */
  const pipe_order *order;  /* the window's order */
  int at, n;
  int64_t tokens;
  enc_rows rows;            /* with a stride: its rows (row_seqs in the ctx's slot) */
} pipe_flight;

/* The encoder thread's state. Batches stream through the encoder across window boundaries:
 * the first batches of window k + 1 are submitted while the last ones of window k are still in
 * flight, so the device does not wait while the next window is gathered and sorted. */
typedef struct {
  pipe_state *s;
  pipe_order *order[2];   /* (W) per window buffer */
  const int32_t **ids;    /* (ENC_MAX_IN_FLIGHT, B): each batch in flight has its own */
  int *lengths;           /* (ENC_MAX_IN_FLIGHT, B) */
  int32_t *seq_ids;       /* with a stride: (ENC_MAX_IN_FLIGHT, batch_tokens) the batch's windows */
  int *row_seqs;          /* with a stride: (ENC_MAX_IN_FLIGHT, B) windows per row */
  pipe_flight flight[ENC_MAX_IN_FLIGHT];
  int head, in_flight;    /* flight[head] is the oldest */
  int pending[2];         /* batches in flight per window buffer */
} pipe_encoder_ctx;

/* Stores the collected rows of flight f at their window positions. */
static int window_store(pipe_window *w, const pipe_flight *f, const enc_result *res) {
  const int b = f->n;
  if (res->n_docs != b) return err_set(ERR_DEVICE, "encoder returned %d rows for %d docs", res->n_docs, b);
  size_t nnz = (size_t)res->indptr[b];
  /* values follows indices' capacity; nothing is reallocated for a batch without entries
   * (realloc(p, 0) would free values: a batch of empty rows, or of no row) */
  size_t cap = w->nnz_cap;
  if (nnz > 0 && grow(&w->indices, &cap, w->nnz + nnz, sizeof *w->indices))
    return err_set(ERR_NOMEM, "out of memory (window rows)");
  if (cap != w->nnz_cap) {
    float *values = realloc(w->values, cap * sizeof(float));
    if (!values) return err_set(ERR_NOMEM, "out of memory (window rows)");
    w->values = values;
    w->nnz_cap = cap;
  }
  for (int i = 0; i < b; i++) {
    int pos = f->order[f->at + i].pos;
    int64_t from = res->indptr[i], count = res->indptr[i + 1] - res->indptr[i];
    w->row_off[pos] = (int64_t)w->nnz;
    w->row_nnz[pos] = (int)count;
    if (count > 0) {
      memcpy(w->indices + w->nnz, res->indices + from, (size_t)count * sizeof(int32_t));
      memcpy(w->values + w->nnz, res->values + from, (size_t)count * sizeof(float));
    }
    w->nnz += (size_t)count;
  }
  return 0;
}

/* Hands window w to the writer. */
static void window_publish(pipe_state *s, pipe_window *w) {
  pthread_mutex_lock(&s->mu);
  w->state = WINDOW_READY;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Collects the oldest batch in flight, stores its rows, and publishes its window when that was
 * the window's last batch (batches are collected in submit order, so windows publish in order). */
static int encoder_collect_one(pipe_encoder_ctx *x) {
  pipe_state *s = x->s;
  enc_result res;
  int rc = enc_collect(s->enc, &res);
  if (rc < 0) return rc;
  const pipe_flight *f = &x->flight[x->head];
  x->head = (x->head + 1) % ENC_MAX_IN_FLIGHT;
  x->in_flight--;
  x->pending[f->wi]--;
  kill_point(s, "batch");
  pipe_window *w = f->w;
  if ((rc = window_store(w, f, &res)) < 0) return rc;
  const int done = f->at + f->n;
  pthread_mutex_lock(&s->mu);
  s->docs_encoded += f->n;
  s->tokens_encoded += f->tokens;
  s->batches_encoded++;
  s->encoded_pos = w->byte_start[0] +
                   (int64_t)((double)(w->byte_end[w->n - 1] - w->byte_start[0]) * done / w->n);
  pthread_mutex_unlock(&s->mu);
  w->encoded += f->n;
  if (w->encoded == w->n) window_publish(s, w);
  return 0;
}

/* Waits for a free flight slot (collecting the oldest batch while ENC_MAX_IN_FLIGHT are in
 * flight) and points ids / lengths at its arrays. Returns the slot, or a negative ERR_ code. */
static int flight_slot(pipe_encoder_ctx *x, const int32_t ***ids, int **lengths) {
  while (x->in_flight == ENC_MAX_IN_FLIGHT) {
    int rc = encoder_collect_one(x);
    if (rc < 0) return rc;
  }
  const int slot = (x->head + x->in_flight) % ENC_MAX_IN_FLIGHT;
  const size_t B = (size_t)x->s->opt->max_batch_docs;
  *ids = x->ids + (size_t)slot * B;
  *lengths = x->lengths + (size_t)slot * B;
  return slot;
}

/* Records doc pos of window w, of `count` windows before --max-windows, in the stride stats. */
static void window_stats(pipe_state *s, const pipe_window *w, int pos, int64_t count) {
  const int64_t N = s->opt->max_windows, used = count < N ? count : N;
  if (s->windows_encoded == 0 || used < s->windows_min) s->windows_min = used;
  if (used > s->windows_max) s->windows_max = used;
  s->windows_encoded += used;
  if (count > N) {
    s->docs_capped++;
    if (s->first_capped < 0 || w->doc[pos] < s->first_capped) {
      s->first_capped = w->doc[pos];
      snprintf(s->first_capped_id, sizeof s->first_capped_id, "%s", w->id_bytes + w->id_off[pos]);
    }
  }
}

/* window_submit with a stride: each doc of t[0..n) (its ids without [CLS] / [SEP]) is its first
 * max_windows windows (enc_window), consecutive sequences of one row; the windows are built into
 * the slot's seq_ids (one batch budget), and a doc whose windows do not fit the batch goes on in
 * the next one (enc_rows unfinished / continues). A flight returns the rows of the docs it
 * completes: order[at .. at + n). */
static int window_submit_strided(pipe_encoder_ctx *x, int wi) {
  pipe_state *s = x->s;
  const pipe_options *o = s->opt;
  pipe_window *w = &s->win[wi];
  const pipe_order *order = x->order[wi];
  const int L = o->max_length, S = o->stride;
  int at = 0;          /* the doc (order index) of the next window */
  int64_t k = 0;       /* its next window */
  int64_t count = 0;   /* its windows to encode */
  while (at < w->n) {
    if (should_stop(s)) return 0;
    const int32_t **ids;
    int *lengths;
    const int slot = flight_slot(x, &ids, &lengths);
    if (slot < 0) return slot;
    int *row_seqs = x->row_seqs + (size_t)slot * o->max_batch_docs;
    int32_t *seq = x->seq_ids + (size_t)slot * o->batch_tokens;
    const int first = at, continues = k > 0;
    int b = 0, rows = 0;
    int64_t used = 0;
    while (at < w->n && b < o->max_batch_docs) {
      const int pos = order[at].pos;
      const int32_t *line = w->ids + w->tok_off[pos]; /* [CLS] t [SEP] */
      const int64_t n = w->len[pos] - 2;
      const int64_t all = k == 0 ? enc_window_count(n, L, S) : 0;
      if (k == 0) count = all < o->max_windows ? all : o->max_windows;
      const int64_t lo = k * S, hi = lo + L - 2 < n ? lo + L - 2 : n;
      const int len = (int)(hi - lo) + 2;
      if (b > 0 && used + len > o->batch_tokens) break; /* the token budget (packed, no padding) */
      if (k == 0) window_stats(s, w, pos, all);
      if (k == 0 || b == 0) row_seqs[rows++] = 0;
      enc_window(line + 1, n, L, S, k, line[0], line[n + 1], seq + used);
      ids[b] = seq + used;
      lengths[b] = len;
      used += len;
      row_seqs[rows - 1]++;
      b++;
      if (++k == count) {
        at++;
        k = 0;
      }
    }
    const int unfinished = k > 0;
    x->flight[slot] = (pipe_flight){w, wi, order, first, rows - unfinished, used,
                                    {rows, row_seqs, continues, unfinished}};
    enc_batch batch = {b, ids, lengths};
    int rc = enc_submit_rows(s->enc, &batch, &x->flight[slot].rows);
    if (rc < 0) return rc;
    x->in_flight++;
    x->pending[wi]++;
  }
  return 0;
}

/* Submits window wi's documents longest first, in batches of at most max_batch_docs docs and
 * batch_tokens tokens (their lengths' sum: the encoders pack documents without padding),
 * collecting the oldest batch whenever ENC_MAX_IN_FLIGHT are in flight (batch i + 1 is submitted
 * before batch i is collected). Returns with the window's last batches possibly still in flight;
 * on a stop request it returns 0 early. */
static int window_submit(pipe_encoder_ctx *x, int wi) {
  pipe_state *s = x->s;
  const pipe_options *o = s->opt;
  pipe_window *w = &s->win[wi];
  pipe_order *order = x->order[wi];
  for (int i = 0; i < w->n; i++) order[i].len = w->len[i], order[i].pos = i;
  qsort(order, (size_t)w->n, sizeof *order, order_cmp);
  w->nnz = 0;
  w->encoded = 0;
  if (o->stride > 0) return window_submit_strided(x, wi);
  for (int at = 0; at < w->n;) {
    if (should_stop(s)) return 0;
    const int32_t **ids;
    int *lengths;
    const int slot = flight_slot(x, &ids, &lengths);
    if (slot < 0) return slot;
    int b = 0;
    int64_t batch_tokens = 0;
    while (at + b < w->n && b < o->max_batch_docs &&
           (b == 0 || batch_tokens + order[at + b].len <= o->batch_tokens)) {
      const pipe_order *d = &order[at + b];
      ids[b] = w->ids + w->tok_off[d->pos];
      lengths[b] = d->len;
      batch_tokens += d->len;
      b++;
    }
    enc_batch batch = {b, ids, lengths};
    int rc = enc_submit(s->enc, &batch);
    if (rc < 0) return rc;
    x->flight[slot] = (pipe_flight){w, wi, order, at, b, batch_tokens, {0, NULL, 0, 0}};
    x->in_flight++;
    x->pending[wi]++;
    at += b;
  }
  return 0;
}

static void encoder_run(pipe_encoder_ctx *x) {
  pipe_state *s = x->s;
  const pipe_options *o = s->opt;
  int rc = 0;
  for (int64_t k = 0;; k++) {
    const int wi = (int)(k % 2);
    pipe_window *w = &s->win[wi];
    int end = 0;
    /* This buffer last held window k - 2: its last batches may still be in flight (when window
     * k - 1 was one batch), and it cannot be published, written and freed before they are
     * collected. */
    while (x->pending[wi] > 0 && !should_stop(s))
      if ((rc = encoder_collect_one(x)) < 0) goto fail;
    pthread_mutex_lock(&s->mu);
    while (w->state != WINDOW_FREE && !should_stop(s)) timed_wait_counted(s, &s->timing.wait_encoder);
    w->n = 0;
    w->id_n = 0;
    w->ids_n = 0;
    while (!should_stop(s) && w->n < o->window_docs && (int64_t)w->ids_n < s->window_tokens) {
      pipe_chunk *ch = &s->chunks[s->next_consume % s->n_chunks];
      int ready = s->next_consume < s->next_fill && ch->state == CHUNK_TOKENIZED;
      if (!ready && s->reader_done && s->next_consume == s->next_fill) {
        end = 1;
        break;
      }
      if (!ready) {
        timed_wait_counted(s, &s->timing.wait_encoder);
        continue;
      }
      if (w->n + ch->n > o->window_docs) break;
      int64_t chunk_tokens = 0;
      for (int i = 0; i < ch->n; i++) chunk_tokens += ch->len[i];
      if (w->n > 0 && (int64_t)w->ids_n + chunk_tokens > s->window_tokens) break;
      pthread_mutex_unlock(&s->mu);
      rc = window_take_chunk(s, w, ch);
      pthread_mutex_lock(&s->mu);
      if (rc < 0) break;
      ch->state = CHUNK_FREE;
      s->next_consume++;
      pthread_cond_broadcast(&s->cv);
    }
    int stop = should_stop(s);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) goto fail;
    if (stop) return;
    w->last = end; /* read by the writer only after the window is READY (under the mutex) */
    if ((rc = window_submit(x, wi)) < 0) goto fail;
    if (should_stop(s)) return;
    if (end || w->n == 0) {
      /* The input ended (or, defensively, nothing came): collect everything, which publishes
       * the windows still waiting; an empty window has no batch to publish it. */
      while (x->in_flight > 0 && !should_stop(s))
        if ((rc = encoder_collect_one(x)) < 0) goto fail;
      if (should_stop(s)) return;
      if (w->n == 0) window_publish(s, w);
      if (end) return;
    }
  }
fail:
  pipe_fail(s, rc);
}

static void *encoder_main(void *arg) {
  pipe_encoder_ctx *x = arg;
  encoder_run(x);
  stage_cpu(x->s, &x->s->timing.cpu_encoder);
  return NULL;
}

/* ---- publisher thread ----
 * The fsync of a finished shard (~0.1 s for 70 MB on a local disk, more on a network file
 * system) happens here, so that the writer goes on with the next shard's rows meanwhile. Shards
 * are published in the order they were closed; the thread drains its queue even after a failure
 * elsewhere (a closed shard is complete) and exits when told to with nothing queued. */
static void *publisher_main(void *arg) {
  pipe_state *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->publish_pending && !s->publish_exit) timed_wait(s);
    if (!s->publish_pending) break;
    const pipe_publish *p = &s->publish[s->publish_head];
    pthread_mutex_unlock(&s->mu);
    const int rc = atomic_publish(p->tmp, p->path);
    if (rc < 0)
      pipe_fail(s, rc);
    else
      kill_point(s, "finished");
    pthread_mutex_lock(&s->mu);
    s->publish_head = (s->publish_head + 1) % PIPE_PUBLISH_QUEUE;
    s->publish_pending--;
    if (rc == 0) s->shards_published++;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* The encoder's position in file bytes (compressed bytes for .gz: the uncompressed position
 * scaled by the reader's compression ratio so far), for the progress fraction and ETA.
 * The caller holds the mutex. */
static int64_t progress_bytes(const pipe_state *s) {
  if (s->plain_read <= 0) return 0;
  return (int64_t)((double)s->encoded_pos * (double)s->raw_read / (double)s->plain_read);
}

/* ---- writer (the calling thread) ---- */

typedef struct {
  pipe_state *s;
  const char *const *vocab;
  int vocab_size;
  shard_writer *w;
  int64_t shard, n, input_start, input_end;
  shard_windows windows; /* with a stride: the open shard's docs' windows (its windows_* attrs) */
  int64_t docs_written, tokens;
  double finish_seconds; /* closing shards and queueing them for the publisher */
} pipe_writer;

static int writer_finish(pipe_writer *pw) {
  int rc = shard_writer_set_input_range(pw->w, pw->input_start, pw->input_end);
  if (rc < 0) return rc;
  if (pw->s->opt->stride > 0 && (rc = shard_writer_set_windows(pw->w, &pw->windows)) < 0)
    return rc;
  kill_point(pw->s, "finish");
  shard_writer *w = pw->w;
  pw->w = NULL;
  pipe_state *s = pw->s;
  const double t0 = mono_now();
  pthread_mutex_lock(&s->mu);
  while (s->publish_pending == PIPE_PUBLISH_QUEUE) timed_wait(s); /* the publisher drains it */
  pipe_publish *p = &s->publish[(s->publish_head + s->publish_pending) % PIPE_PUBLISH_QUEUE];
  pthread_mutex_unlock(&s->mu);
  rc = shard_writer_close(w, p->tmp, p->path, sizeof p->path);
  if (rc == 0) {
    pthread_mutex_lock(&s->mu);
    s->publish_pending++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  pw->finish_seconds += mono_now() - t0;
  return rc;
}

static int writer_row(pipe_writer *pw, const pipe_window *win, int i) {
  const pipe_options *o = pw->s->opt;
  int64_t doc = win->doc[i], shard = doc / o->shard_size;
  int rc;
  if (!pw->w) {
    SPX_ASSERT(doc == shard * o->shard_size);
    char path[4096];
    if ((rc = job_shard_path(o->output_dir, shard, path, sizeof path)) < 0) return rc;
    shard_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.model = o->model_name;
    meta.max_length = o->max_length;
    meta.threshold = o->threshold;
    meta.top_k = o->top_k;
    meta.first_doc = doc;
    meta.input_start = meta.input_end = win->byte_start[i];
    meta.vocab_size = pw->vocab_size;
    meta.vocab = pw->vocab;
    meta.float16 = o->float16;
    meta.compress_threads = o->shard_threads;
    if ((rc = shard_writer_open(path, &meta, &pw->w)) < 0) return rc;
    pw->shard = shard;
    pw->n = 0;
    pw->input_start = win->byte_start[i];
    pw->windows = (shard_windows){0, 0, 0, 0, -1};
  }
  SPX_ASSERT(shard == pw->shard && doc == shard * o->shard_size + pw->n);
  rc = shard_writer_append(pw->w, win->id_bytes + win->id_off[i], win->indices + win->row_off[i],
                           win->values + win->row_off[i], win->row_nnz[i]);
  if (rc < 0) return err_wrap(rc, "doc %lld", (long long)doc);
  kill_point(pw->s, "append");
  pw->n++;
  pw->docs_written++;
  pw->tokens += win->len[i];
  pw->input_end = win->byte_end[i];
  if (o->stride > 0) { /* the count window_stats saw: the doc's ids are [CLS] t [SEP] */
    const int64_t all = enc_window_count(win->len[i] - 2, o->max_length, o->stride);
    const int64_t used = all < o->max_windows ? all : o->max_windows;
    shard_windows *sw = &pw->windows;
    if (pw->n == 1 || used < sw->min) sw->min = used;
    if (used > sw->max) sw->max = used;
    sw->total += used;
    if (all > o->max_windows && sw->capped++ == 0) sw->first_capped = doc;
  }
  if (pw->n == o->shard_size) return writer_finish(pw);
  return 0;
}

/* Removes this worker's .tmp leftovers and records its complete shards, ascending. */
static int scan_output(pipe_state *s) {
  const pipe_options *o = s->opt;
  sdir_listing l;
  int rc = sdir_list(o->output_dir, &l);
  if (rc < 0) return rc;
  size_t cap = 0;
  for (int64_t i = 0; i < l.n_partials; i++) {
    const char *path = l.partials[i].path;
    if (l.partials[i].index % o->worker_count != o->worker_index) continue;
    if (unlink(path) != 0 && errno != ENOENT) {
      rc = err_set(ERR_IO, "%s: cannot remove a leftover: %s", path, strerror(errno));
      goto done;
    }
  }
  for (int64_t i = 0; i < l.n_shards; i++) {
    int64_t shard = l.shards[i].index;
    const char *path = l.shards[i].path;
    if (shard % o->worker_count != o->worker_index) continue;
    shard_info info;
    if ((rc = shard_check(path, shard * o->shard_size, -1, &info)) < 0) {
      err_wrap(rc, "a shard with its final name is not complete (remove it to recompute it, or "
                   "rerun with --overwrite)");
      goto done;
    }
    if (info.n_docs < 1 || info.n_docs > o->shard_size) {
      rc = err_set(ERR_MISMATCH, "%s: holds %lld docs, more than --shard-size %lld", path,
                   (long long)info.n_docs, (long long)o->shard_size);
      goto done;
    }
    if (grow(&s->complete, &cap, s->n_complete + 1, sizeof *s->complete)) {
      rc = err_set(ERR_NOMEM, "%s: out of memory listing complete shards", o->output_dir);
      goto done;
    }
    pipe_complete *c = &s->complete[s->n_complete++];
    c->shard = shard;
    c->n_docs = info.n_docs;
    c->input_start = info.input_start;
    c->input_end = info.input_end;
  }
done:
  sdir_listing_free(&l);
  return rc;
}

static void parse_kill_point(pipe_state *s) {
  const char *env = getenv("SPLADEX_TEST_KILL_POINT");
  if (!env || !*env) return;
  const char *colon = strchr(env, ':');
  size_t n = colon ? (size_t)(colon - env) : strlen(env);
  if (n >= sizeof s->kill_name) n = sizeof s->kill_name - 1;
  memcpy(s->kill_name, env, n);
  s->kill_name[n] = '\0';
  s->kill_count = colon ? atol(colon + 1) : 1;
  if (s->kill_count < 1) s->kill_count = 1;
}

static void free_state(pipe_state *s) {
  if (s->chunks)
    for (int i = 0; i < s->n_chunks; i++) {
      free(s->chunks[i].bytes);
      free(s->chunks[i].ids);
    }
  free(s->chunks);
  for (int k = 0; k < 2; k++) {
    pipe_window *w = &s->win[k];
    free(w->doc);
    free(w->byte_start);
    free(w->byte_end);
    free(w->id_off);
    free(w->id_bytes);
    free(w->ids);
    free(w->tok_off);
    free(w->len);
    free(w->row_off);
    free(w->row_nnz);
    free(w->indices);
    free(w->values);
  }
  free(s->complete);
}

int pipe_run(const pipe_options *opt, const tok *t, encoder *enc, const char *const *vocab,
             int vocab_size, pipe_stats *stats) {
  pipe_options o = *opt;
  if (o.shard_size < 1 || o.worker_count < 1 || o.worker_index < 0 ||
      o.worker_index >= o.worker_count || o.max_length < 2 || o.batch_tokens < o.max_length ||
      o.max_batch_docs < 1 || o.tokenizer_threads < 1 || o.stride < 0 ||
      o.stride > o.max_length - 2 || (o.stride > 0 && o.max_windows < 1))
    return err_set(ERR_ARG, "pipeline: bad options (shard size %lld, worker %d/%d, max length %d, "
                            "batch tokens %d, stride %d, max windows %d)", (long long)o.shard_size,
                   o.worker_index, o.worker_count, o.max_length, o.batch_tokens, o.stride,
                   o.max_windows);
  int64_t window_tokens = INT64_MAX;
  if (o.window_docs <= 0) {
    /* auto: 8 batches by tokens, so that sorting by length pays off; each batch of a sorted
     * window stops less than max_length tokens short of its budget, so a window of
     * 8 (batch_tokens - max_length) tokens is 8 nearly full batches, not 8 full ones and a ninth
     * nearly empty one */
    window_tokens = 8 * (int64_t)(o.batch_tokens - o.max_length);
    if (window_tokens < o.batch_tokens) window_tokens = o.batch_tokens;
    int64_t w = 8 * (int64_t)o.max_batch_docs;
    o.window_docs = (int)(w < 256 ? 256 : w > 4096 ? 4096 : w);
  }
  if (o.window_docs < PIPE_CHUNK_DOCS) o.window_docs = PIPE_CHUNK_DOCS;
  if (o.tokenizer_threads > 64) o.tokenizer_threads = 64;

  const double writer_cpu0 = thread_cpu_now();
  pipe_state s;
  memset(&s, 0, sizeof s);
  s.opt = &o;
  s.window_tokens = window_tokens;
  s.t = t;
  s.enc = enc;
  s.first_capped = -1;
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  parse_kill_point(&s);

  pthread_t reader, encoder_thread, publisher, tokenizers[64];
  int n_tokenizers = 0, reader_started = 0, encoder_started = 0, publisher_started = 0;
  pipe_encoder_ctx x;
  memset(&x, 0, sizeof x);
  x.s = &s;
  pipe_writer pw;
  memset(&pw, 0, sizeof pw);
  pw.s = &s;
  pw.vocab = vocab;
  pw.vocab_size = vocab_size;
  progress *prog = NULL;
  int rc = 0;
  int64_t size_hint = 0;
  struct stat st;
  if (stat(o.input, &st) == 0) size_hint = (int64_t)st.st_size;

  if ((rc = scan_output(&s)) < 0) goto done;

  size_t W = (size_t)o.window_docs, L = (size_t)o.max_length;
  s.n_chunks = 4 * o.tokenizer_threads + 4;
  s.chunks = calloc((size_t)s.n_chunks, sizeof *s.chunks);
  x.order[0] = malloc(W * sizeof *x.order[0]);
  x.order[1] = malloc(W * sizeof *x.order[1]);
  x.ids = malloc((size_t)ENC_MAX_IN_FLIGHT * (size_t)o.max_batch_docs * sizeof *x.ids);
  x.lengths = malloc((size_t)ENC_MAX_IN_FLIGHT * (size_t)o.max_batch_docs * sizeof *x.lengths);
  if (o.stride > 0) {
    x.seq_ids = malloc((size_t)ENC_MAX_IN_FLIGHT * (size_t)o.batch_tokens * sizeof *x.seq_ids);
    x.row_seqs = malloc((size_t)ENC_MAX_IN_FLIGHT * (size_t)o.max_batch_docs * sizeof *x.row_seqs);
  }
  if (!s.chunks || !x.order[0] || !x.order[1] || !x.ids || !x.lengths ||
      (o.stride > 0 && (!x.seq_ids || !x.row_seqs))) {
    rc = err_set(ERR_NOMEM, "out of memory (pipeline buffers)");
    goto done;
  }
  for (int i = 0; i < s.n_chunks; i++)
    if (!(s.chunks[i].ids = malloc((s.chunks[i].ids_cap = PIPE_CHUNK_DOCS * L) * sizeof(int32_t)))) {
      rc = err_set(ERR_NOMEM, "out of memory (pipeline buffers)");
      goto done;
    }
  for (int k = 0; k < 2; k++) {
    pipe_window *w = &s.win[k];
    w->doc = malloc(W * sizeof *w->doc);
    w->byte_start = malloc(W * sizeof *w->byte_start);
    w->byte_end = malloc(W * sizeof *w->byte_end);
    w->id_off = malloc(W * sizeof *w->id_off);
    w->ids = malloc((w->ids_cap = W * L) * sizeof *w->ids);
    w->tok_off = malloc(W * sizeof *w->tok_off);
    w->len = malloc(W * sizeof *w->len);
    w->row_off = malloc(W * sizeof *w->row_off);
    w->row_nnz = malloc(W * sizeof *w->row_nnz);
    if (!w->doc || !w->byte_start || !w->byte_end || !w->id_off || !w->ids || !w->tok_off ||
        !w->len || !w->row_off || !w->row_nnz) {
      rc = err_set(ERR_NOMEM, "out of memory (pipeline window of %zu docs)", W);
      goto done;
    }
  }

  prog = progress_new(stderr, size_hint, o.quiet);
  if (pthread_create(&publisher, NULL, publisher_main, &s) != 0) {
    rc = err_set(ERR_NOMEM, "cannot start the shard publisher thread");
    goto done;
  }
  publisher_started = 1;
  if (pthread_create(&reader, NULL, reader_main, &s) != 0) {
    rc = err_set(ERR_NOMEM, "cannot start the reader thread");
    goto done;
  }
  reader_started = 1;
  for (; n_tokenizers < o.tokenizer_threads; n_tokenizers++)
    if (pthread_create(&tokenizers[n_tokenizers], NULL, tokenizer_main, &s) != 0) {
      rc = pipe_fail(&s, err_set(ERR_NOMEM, "cannot start a tokenizer thread"));
      goto done;
    }
  if (pthread_create(&encoder_thread, NULL, encoder_main, &x) != 0) {
    rc = pipe_fail(&s, err_set(ERR_NOMEM, "cannot start the encoder thread"));
    goto done;
  }
  encoder_started = 1;

  for (int64_t k = 0;; k++) {
    pipe_window *w = &s.win[k % 2];
    pthread_mutex_lock(&s.mu);
    while (w->state != WINDOW_READY && !should_stop(&s)) {
      timed_wait_counted(&s, &s.timing.wait_writer);
      int64_t docs = s.docs_encoded, tokens = s.tokens_encoded, bytes = progress_bytes(&s);
      int64_t shards = s.shards_published;
      pthread_mutex_unlock(&s.mu);
      progress_update(prog, docs, tokens, bytes, shards);
      pthread_mutex_lock(&s.mu);
    }
    pthread_mutex_unlock(&s.mu);
    if (should_stop(&s)) break;
    for (int i = 0; i < w->n; i++) {
      if ((rc = writer_row(&pw, w, i)) < 0) {
        pipe_fail(&s, rc);
        goto done;
      }
      if ((i & 255) == 255) {
        if (should_stop(&s)) goto done;
        pthread_mutex_lock(&s.mu);
        int64_t docs = s.docs_encoded, tokens = s.tokens_encoded, bytes = progress_bytes(&s);
        int64_t shards = s.shards_published;
        pthread_mutex_unlock(&s.mu);
        progress_update(prog, docs, tokens, bytes, shards);
      }
    }
    pthread_mutex_lock(&s.mu);
    int last = w->last;
    w->state = WINDOW_FREE;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    if (last) break;
  }
  if (!should_stop(&s) && pw.w) {
    /* the input ended inside this worker's last shard: it is the corpus's last shard */
    if ((rc = writer_finish(&pw)) < 0) pipe_fail(&s, rc);
  }

done:
  if (rc < 0 || should_stop(&s)) {
    if (!s.failed) {
      if (o.stop && atomic_load(o.stop)) {
        pthread_mutex_lock(&s.mu);
        s.failed = 1;
        s.fail_code = ERR_INTERRUPTED;
        snprintf(s.fail_msg, sizeof s.fail_msg, "interrupted");
        pthread_mutex_unlock(&s.mu);
      } else {
        pipe_fail(&s, rc < 0 ? rc : ERR_IO);
      }
    }
    pthread_mutex_lock(&s.mu);
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
  }
  if (reader_started) pthread_join(reader, NULL);
  for (int i = 0; i < n_tokenizers; i++) pthread_join(tokenizers[i], NULL);
  if (encoder_started) pthread_join(encoder_thread, NULL);
  if (publisher_started) { /* publishes what is queued first */
    pthread_mutex_lock(&s.mu);
    s.publish_exit = 1;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(publisher, NULL);
  }
  shard_writer_abort(pw.w); /* a shard still open now is incomplete: drop its .tmp */
  pw.w = NULL;

  if (!s.failed && s.docs_in_input == 0)
    pipe_fail(&s, err_set(ERR_INPUT, "%s: no records in the input", o.input));
  if (s.failed) {
    rc = s.fail_code;
    if (rc == ERR_INTERRUPTED)
      err_set(rc, "interrupted: %lld shard(s) finished in this run, the shard in progress was "
                  "discarded; rerun the same command to resume", (long long)s.shards_published);
    else
      err_set(rc, "%s", s.fail_msg);
  } else {
    rc = 0;
    progress_update(prog, pw.docs_written, pw.tokens, s.raw_read, s.shards_published);
    progress_finish(prog);
  }
  if (stats) {
    memset(stats, 0, sizeof *stats);
    stats->docs_in_input = s.docs_in_input;
    stats->shards_in_input = (s.docs_in_input + o.shard_size - 1) / o.shard_size;
    stats->docs_encoded = pw.docs_written;
    stats->tokens_encoded = pw.tokens;
    stats->shards_written = s.shards_published;
    stats->batches_encoded = s.batches_encoded;
    stats->batch_tokens_encoded = s.tokens_encoded;
    int64_t skipped = 0;
    for (size_t i = 0; i < s.n_complete; i++)
      if (s.complete[i].shard < stats->shards_in_input) skipped++;
    stats->shards_skipped = skipped;
    stats->corpus = s.corpus_stats;
    stats->windows_encoded = s.windows_encoded;
    stats->windows_min = s.windows_min;
    stats->windows_max = s.windows_max;
    stats->docs_capped = s.docs_capped;
    stats->first_capped = s.first_capped;
    snprintf(stats->first_capped_id, sizeof stats->first_capped_id, "%s", s.first_capped_id);
    stats->seconds = progress_elapsed(prog);
    stats->timing = s.timing;
    stats->timing.cpu_writer = thread_cpu_now() - writer_cpu0;
    stats->timing.finish_writer = pw.finish_seconds;
  }
  progress_free(prog);
  free(x.order[0]);
  free(x.order[1]);
  free(x.ids);
  free(x.lengths);
  free(x.seq_ids);
  free(x.row_seqs);
  free_state(&s);
  pthread_mutex_destroy(&s.mu);
  pthread_cond_destroy(&s.cv);
  return rc;
}
