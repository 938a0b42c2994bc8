/* encoder_cpu: the CPU SPLADE encoder, a composition of the ops in ops_cpu.c.
 *
 * Why packed batches: documents are concatenated with no padding, so a batch of short passages
 * costs what its real tokens cost; attention is per document (ops_attention), every other op is
 * per token. Why the blocked decoder: the (N x 30522) logit tensor of a batch would be hundreds of
 * MB; a (decoder_rows x vocab_block) buffer, max-pooled straight into (B, V), never is.
 * Windows of a long document (encoder.h) are sequences for attention and one segment for the
 * max-pool: two offset arrays; an unfinished row's max is carried to the next batch (V floats).
 * Why OpenBLAS runs single-threaded under our own pool: with OpenBLAS's threads, every op between
 * two matmuls (LayerNorm, GELU, attention's softmax) left them spinning in sched_yield against
 * the pool's threads (~8% of an encode's samples, issue 18). Now every matmul is split by rows
 * (tokens) over the pool, each part one single-threaded cblas_sgemm (OpenBLAS is thread-safe for
 * concurrent calls); attention is split by documents; the decoder by vocabulary ranges, each
 * thread multiplying and max-pooling its own columns with no barrier between blocks.
 * Legend: N tokens in the batch, B docs, H hidden, F ffn, V vocab, Nb/Vb token/vocab block.
 */
#include "encoder_cpu.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "ops_cpu.h"

/* One thread's decoder block: (TOKEN_BLOCK, VOCAB_BLOCK) logits, 4 MB. */
enum { VOCAB_BLOCK = 2048, TOKEN_BLOCK = 512, COLUMN_ALIGN = 16 };

/* ---- a persistent thread pool: the caller runs part 0, workers parts 1..n-1 ----
 * A forward pass is ~10 pool runs per layer with next to nothing between them, so a worker that
 * finished spins a little (POOL_SPIN pauses, ~0.1 ms) before it sleeps on the condition variable,
 * and the caller likewise before it waits for the workers: a run then starts without a futex
 * wake-up, and a loaded machine does not take the core away between two runs. generation and
 * pending change under the mutex but are read outside it (the spins), hence the atomics. */

enum { POOL_SPIN = 4000 };

static void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

typedef void (*pool_fn)(void *arg, int part, int n_parts);

typedef struct {
  pthread_t *threads;
  int n_workers;
  int started;
  pthread_mutex_t mutex;
  pthread_cond_t start_cv, done_cv;
  unsigned long generation;
  int pending;
  int stop;
  pool_fn fn;
  void *arg;
} pool;

typedef struct {
  pool *p;
  int index;
} pool_worker_arg;

static void *pool_worker(void *varg) {
  pool_worker_arg *wa = varg;
  pool *p = wa->p;
  int index = wa->index;
  unsigned long seen = 0;
  for (;;) {
    for (int i = 0; i < POOL_SPIN && __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE) == seen; i++) pool_pause();
    pthread_mutex_lock(&p->mutex);
    while (!p->stop && p->generation == seen) pthread_cond_wait(&p->start_cv, &p->mutex);
    if (p->stop) {
      pthread_mutex_unlock(&p->mutex);
      return NULL;
    }
    seen = p->generation;
    pool_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mutex);
    fn(arg, index, p->n_workers + 1);
    pthread_mutex_lock(&p->mutex);
    if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&p->done_cv);
    pthread_mutex_unlock(&p->mutex);
  }
}

static void pool_run(pool *p, pool_fn fn, void *arg) {
  if (p->n_workers == 0) {
    fn(arg, 0, 1);
    return;
  }
  pthread_mutex_lock(&p->mutex);
  p->fn = fn;
  p->arg = arg;
  p->pending = p->n_workers;
  __atomic_add_fetch(&p->generation, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&p->start_cv);
  pthread_mutex_unlock(&p->mutex);
  fn(arg, 0, p->n_workers + 1);
  for (int i = 0; i < POOL_SPIN && __atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0; i++) pool_pause();
  pthread_mutex_lock(&p->mutex);
  while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mutex);
  pthread_mutex_unlock(&p->mutex);
}

/* ---- the encoder ---- */

struct enc_cpu {
  const model *m;
  enc_options opt;
  int n_threads;
  char description[64];
  /* workspaces, sized in enc_cpu_open */
  int32_t *ids;       /* (Nmax) */
  int *positions;     /* (Nmax) */
  int *offsets;       /* (Bmax + 1) sequence offsets: the attention segments */
  int *row_offsets;   /* (Bmax + 1) row offsets: the pooling segments (a row = a document) */
  float *carry;       /* (V) running max of an unfinished row (enc_batch.unfinished) */
  float *x;           /* (Nmax, H) hidden state */
  float *ctx;         /* (Nmax, H) attention output */
  float *tmp;         /* (Nmax, H) projections; the head output */
  float *big;         /* (Nmax, max(3H, F)): qkv, then the FFN activations */
  float *logits;      /* (threads, Nb, Vb) one decoder block per thread */
  float *pooled;      /* (Bmax, V) running max, then weights */
  float *scratch;     /* (threads, scratch_floats) attention / top-k scratch */
  size_t scratch_floats;
  int32_t *row_nnz;   /* (Bmax) */
  int64_t *indptr;    /* (Bmax + 1) */
  int32_t *indices;   /* (cap) */
  float *values;      /* (cap) */
  int64_t cap;
  pool pool;
  pool_worker_arg *worker_args;
  /* the step the pool is running (set before pool_run) */
  int n_tokens, n_docs;
  int n_rows, n_emit, continues; /* rows pooled, rows returned, row 0 starts from carry */
  const float *step_bias;
  const float *step_gamma, *step_beta;
  const float *lin_x, *lin_w, *lin_bias; /* job_linear's ops_linear arguments */
  float *lin_y;
  int lin_n, lin_in, lin_out, lin_ldy;
};

/* Splits [0, n) into n_parts near-equal ranges; part's range is [*lo, *hi). */
static void split_range(int n, int part, int n_parts, int *lo, int *hi) {
  *lo = (int)((long long)n * part / n_parts);
  *hi = (int)((long long)n * (part + 1) / n_parts);
}

static void job_embed(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  const model *m = e->m;
  int H = m->cfg.hidden, lo, hi;
  split_range(e->n_tokens, part, n_parts, &lo, &hi);
  ops_embed_layernorm(e->ids + lo, e->positions + lo, hi - lo, m->word_emb, m->pos_emb,
                      m->type_emb, m->emb_ln_g, m->emb_ln_b, m->cfg.ln_eps, H,
                      e->x + (size_t)lo * H);
}

/* x = LN(tmp + step_bias + x) over this part's tokens. */
static void job_residual_ln(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  int H = e->m->cfg.hidden, lo, hi;
  split_range(e->n_tokens, part, n_parts, &lo, &hi);
  ops_residual_layernorm(e->tmp + (size_t)lo * H, e->step_bias, e->x + (size_t)lo * H,
                         e->step_gamma, e->step_beta, e->m->cfg.ln_eps, hi - lo, H,
                         e->x + (size_t)lo * H);
}

/* big = gelu(big + ffn1 bias), (N, F). */
static void job_ffn_gelu(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  int F = e->m->cfg.ffn, lo, hi;
  split_range(e->n_tokens, part, n_parts, &lo, &hi);
  ops_bias_gelu(e->big + (size_t)lo * F, e->step_bias, hi - lo, F);
}

/* tmp = LN(gelu(tmp + head bias)), the MLM head transform. */
static void job_head(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  const model *m = e->m;
  int H = m->cfg.hidden, lo, hi;
  split_range(e->n_tokens, part, n_parts, &lo, &hi);
  float *t = e->tmp + (size_t)lo * H;
  ops_bias_gelu(t, m->head_b, hi - lo, H);
  ops_residual_layernorm(t, NULL, NULL, m->head_ln_g, m->head_ln_b, m->cfg.ln_eps, hi - lo, H, t);
}

static void job_pool_init(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  int V = e->m->cfg.vocab, lo, hi;
  split_range(e->n_rows, part, n_parts, &lo, &hi);
  if (lo == 0 && hi > 0 && e->continues) {
    memcpy(e->pooled, e->carry, sizeof(float) * (size_t)V);
    lo = 1;
  }
  /* a max starts at -inf, a sum (SpladePooling "sum") at 0 */
  if (hi > lo)
    ops_fill(e->pooled + (size_t)lo * V, (size_t)(hi - lo) * V, e->m->cfg.pooling == MODEL_POOL_SUM ? 0.0f : -INFINITY);
}

/* Splits [0, n) into n_parts ranges whose starts are multiples of COLUMN_ALIGN (whole panels of
 * the GEMM micro-kernel); some may be empty when n is small. */
static void split_columns(int n, int part, int n_parts, int *lo, int *hi) {
  split_range(n, part, n_parts, lo, hi);
  *lo = part == 0 ? 0 : *lo / COLUMN_ALIGN * COLUMN_ALIGN;
  *hi = part == n_parts - 1 ? n : *hi / COLUMN_ALIGN * COLUMN_ALIGN;
}

/* This part's rows (tokens) of ops_linear(lin_*). Rows, not output columns: each thread then packs
 * its own rows of x once and the whole of w, where a column split would pack all of x in every
 * thread; w is the smaller of the two whenever a batch has more tokens than w has rows. */
static void job_linear(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  int lo, hi;
  split_range(e->lin_n, part, n_parts, &lo, &hi);
  if (hi <= lo) return;
  ops_linear(e->lin_x + (size_t)lo * e->lin_in, e->lin_w, e->lin_bias, hi - lo, e->lin_in, e->lin_out,
             e->lin_y + (size_t)lo * e->lin_ldy, e->lin_ldy);
}

/* ops_linear over the pool: y (n, ldy) = x (n, in) . w^T (+ bias). */
static void linear(enc_cpu *e, const float *x, const float *w, const float *bias, int n, int in, int out,
                   float *y, int ldy) {
  e->lin_x = x;
  e->lin_w = w;
  e->lin_bias = bias;
  e->lin_n = n;
  e->lin_in = in;
  e->lin_out = out;
  e->lin_y = y;
  e->lin_ldy = ldy;
  pool_run(&e->pool, job_linear, e);
}

/* Attention of this part's documents: a contiguous run holding about 1/n_parts of the tokens. */
static void job_attention(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  const model_config *c = &e->m->cfg;
  int first = 0, end = 0;
  /* documents [first, end): those whose first token falls in this part's token range */
  int lo, hi;
  split_range(e->n_tokens, part, n_parts, &lo, &hi);
  while (first < e->n_docs && e->offsets[first] < lo) first++;
  end = first;
  while (end < e->n_docs && e->offsets[end] < hi) end++;
  if (end <= first) return;
  ops_attention(e->big, e->offsets + first, end - first, c->n_heads, c->hidden / c->n_heads,
                e->scratch + (size_t)part * e->scratch_floats, e->ctx);
}

/* The decoder fused with the pooling for this part's vocabulary range: block by block, logits
 * (TOKEN_BLOCK, VOCAB_BLOCK) in this thread's own buffer, max-pooled (or summed, SpladePooling
 * "sum") into its own columns of pooled, so no thread waits for another. */
static void job_decoder(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  const model *m = e->m;
  const model_config *c = &m->cfg;
  const int H = c->hidden;
  int lo, hi;
  split_columns(c->vocab, part, n_parts, &lo, &hi);
  float *logits = e->logits + (size_t)part * TOKEN_BLOCK * VOCAB_BLOCK;
  for (int t0 = 0; t0 < e->n_tokens; t0 += TOKEN_BLOCK) {
    int rows = e->n_tokens - t0 < TOKEN_BLOCK ? e->n_tokens - t0 : TOKEN_BLOCK;
    for (int v0 = lo; v0 < hi; v0 += VOCAB_BLOCK) {
      int vb = hi - v0 < VOCAB_BLOCK ? hi - v0 : VOCAB_BLOCK;
      ops_linear(e->tmp + (size_t)t0 * H, m->decoder_w + (size_t)v0 * H, NULL, rows, H, vb, logits, VOCAB_BLOCK);
      if (c->pooling == MODEL_POOL_SUM)
        ops_sumpool_logits(logits, VOCAB_BLOCK, t0, rows, v0, vb, e->row_offsets, e->n_rows, m->decoder_b,
                           c->activation == MODEL_ACT_LOG1P_RELU, e->pooled, c->vocab);
      else
        ops_maxpool_logits(logits, VOCAB_BLOCK, t0, rows, v0, vb, e->row_offsets, e->n_rows, e->pooled, c->vocab);
    }
  }
}

static void job_sparsify(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  const model_config *c = &e->m->cfg;
  int V = c->vocab, lo, hi;
  split_range(e->n_emit, part, n_parts, &lo, &hi);
  if (hi <= lo) return;
  float *rows = e->pooled + (size_t)lo * V;
  const float *bias = e->m->decoder_b; /* naver's max of log1p(relu): ops_sparsify_weights applies it */
  if (c->pooling == MODEL_POOL_MAX && c->activation == MODEL_ACT_LOG1P_RELU) {
    ops_log1p_relu_weights(rows, bias, hi - lo, V);
    bias = NULL;
  } else if (c->pooling == MODEL_POOL_SUM) {
    bias = NULL; /* the sum holds the weights already */
  }
  ops_sparsify_weights(rows, bias, hi - lo, V, e->opt.threshold, e->opt.top_k, e->row_nnz + lo,
                       e->scratch + (size_t)part * e->scratch_floats);
}

static void job_gather(void *arg, int part, int n_parts) {
  enc_cpu *e = arg;
  int V = e->m->cfg.vocab, lo, hi;
  split_range(e->n_emit, part, n_parts, &lo, &hi);
  if (hi <= lo) return;
  ops_sparsify_gather(e->pooled + (size_t)lo * V, hi - lo, V, e->opt.threshold, e->indptr + lo,
                      e->indices, e->values);
}

static void *xcalloc(size_t n, size_t size, int *failed) {
  void *p = calloc(n ? n : 1, size);
  if (!p) *failed = 1;
  return p;
}

int enc_cpu_open(const model *m, const enc_options *opt, enc_cpu **out) {
  *out = NULL;
  const model_config *c = &m->cfg;
  if (opt->precision != ENC_FP32) return err_set(ERR_ARG, "the CPU backend supports fp32 only");
  if (c->hidden % c->n_heads) return err_set(ERR_ARG, "hidden %d is not a multiple of %d heads",
                                             c->hidden, c->n_heads);
  enc_cpu *e = calloc(1, sizeof *e);
  if (!e) return err_set(ERR_NOMEM, "out of memory for the CPU encoder");
  e->m = m;
  e->opt = *opt;
  int threads = opt->threads;
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  e->n_threads = threads;
  snprintf(e->description, sizeof e->description, "cpu fp32, %d thread%s", threads,
           threads == 1 ? "" : "s");
  /* Our pool splits every matmul; OpenBLAS's own threads would only spin between them. */
  openblas_set_num_threads(1);

  const size_t N = (size_t)opt->max_batch_tokens, B = (size_t)opt->max_batch_docs;
  const size_t H = (size_t)c->hidden, F = (size_t)c->ffn, V = (size_t)c->vocab;
  const size_t wide = 3 * H > F ? 3 * H : F;
  const size_t head_dim = H / (size_t)c->n_heads;
  size_t sf = ops_attention_scratch_floats(opt->max_length, (int)head_dim);
  e->scratch_floats = sf > V ? sf : V;
  int failed = 0;
  e->ids = xcalloc(N, sizeof *e->ids, &failed);
  e->positions = xcalloc(N, sizeof *e->positions, &failed);
  e->offsets = xcalloc(B + 1, sizeof *e->offsets, &failed);
  e->row_offsets = xcalloc(B + 1, sizeof *e->row_offsets, &failed);
  e->carry = xcalloc(V, sizeof(float), &failed);
  e->x = xcalloc(N * H, sizeof(float), &failed);
  e->ctx = xcalloc(N * H, sizeof(float), &failed);
  e->tmp = xcalloc(N * H, sizeof(float), &failed);
  e->big = xcalloc(N * wide, sizeof(float), &failed);
  e->logits = xcalloc((size_t)threads * TOKEN_BLOCK * VOCAB_BLOCK, sizeof(float), &failed);
  e->pooled = xcalloc(B * V, sizeof(float), &failed);
  e->scratch = xcalloc((size_t)threads * e->scratch_floats, sizeof(float), &failed);
  e->row_nnz = xcalloc(B, sizeof *e->row_nnz, &failed);
  e->indptr = xcalloc(B + 1, sizeof *e->indptr, &failed);
  e->cap = 0;
  if (failed) {
    enc_cpu_close(e);
    return err_set(ERR_NOMEM, "out of memory for CPU encoder workspaces (%zu tokens, %zu docs)",
                   N, B);
  }

  pool *p = &e->pool;
  pthread_mutex_init(&p->mutex, NULL);
  pthread_cond_init(&p->start_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->started = 1;
  p->threads = calloc((size_t)threads, sizeof *p->threads);
  e->worker_args = calloc((size_t)threads, sizeof *e->worker_args);
  if (!p->threads || !e->worker_args) {
    enc_cpu_close(e);
    return err_set(ERR_NOMEM, "out of memory for the thread pool");
  }
  for (int i = 1; i < threads; i++) {
    e->worker_args[i].p = p;
    e->worker_args[i].index = i;
    if (pthread_create(&p->threads[i - 1], NULL, pool_worker, &e->worker_args[i])) {
      enc_cpu_close(e);
      return err_set(ERR_DEVICE, "cannot start CPU encoder thread %d of %d", i, threads);
    }
    p->n_workers++;
  }
  *out = e;
  return 0;
}

int enc_cpu_run(enc_cpu *e, const enc_batch *batch, const enc_rows *rows, enc_result *out) {
  const model *m = e->m;
  const int H = m->cfg.hidden, F = m->cfg.ffn, V = m->cfg.vocab;
  const int B = batch->n_docs;

  int N = 0;
  e->offsets[0] = 0;
  for (int b = 0; b < B; b++) {
    int len = batch->lengths[b];
    memcpy(e->ids + N, batch->ids[b], sizeof(int32_t) * (size_t)len);
    model_positions(m, batch->ids[b], len, e->positions + N);
    N += len;
    e->offsets[b + 1] = N;
  }
  e->n_tokens = N;
  e->n_docs = B;
  /* Pooling segments: one per row, a row being one sequence or (windows) several in a row. */
  int R = B;
  if (rows && m->cfg.pooling == MODEL_POOL_SUM && (rows->n_rows != B || rows->continues || rows->unfinished))
    return err_set(ERR_ARG, "a document of several windows cannot be sum-pooled (the model's SpladePooling): "
                   "overlapping windows would count their shared tokens twice; encode without windows");
  if (rows) {
    R = rows->n_rows;
    int seq = 0;
    e->row_offsets[0] = 0;
    for (int r = 0; r < R; r++) {
      seq += rows->row_seqs[r];
      e->row_offsets[r + 1] = e->offsets[seq];
    }
  } else {
    memcpy(e->row_offsets, e->offsets, sizeof(int) * ((size_t)B + 1));
  }
  e->n_rows = R;
  e->n_emit = R - (rows && rows->unfinished ? 1 : 0);
  e->continues = rows && rows->continues;

  pool *p = &e->pool;
  pool_run(p, job_embed, e);
  for (int l = 0; l < m->cfg.n_layers; l++) {
    const model_layer *L = &m->layers[l];
    linear(e, e->x, L->q_w, L->q_b, N, H, H, e->big, 3 * H);
    linear(e, e->x, L->k_w, L->k_b, N, H, H, e->big + H, 3 * H);
    linear(e, e->x, L->v_w, L->v_b, N, H, H, e->big + 2 * H, 3 * H);
    pool_run(p, job_attention, e);
    linear(e, e->ctx, L->o_w, NULL, N, H, H, e->tmp, H);
    e->step_bias = L->o_b;
    e->step_gamma = L->attn_ln_g;
    e->step_beta = L->attn_ln_b;
    pool_run(p, job_residual_ln, e);
    linear(e, e->x, L->ffn1_w, NULL, N, H, F, e->big, F);
    e->step_bias = L->ffn1_b;
    pool_run(p, job_ffn_gelu, e);
    linear(e, e->big, L->ffn2_w, NULL, N, F, H, e->tmp, H);
    e->step_bias = L->ffn2_b;
    e->step_gamma = L->out_ln_g;
    e->step_beta = L->out_ln_b;
    pool_run(p, job_residual_ln, e);
  }
  linear(e, e->x, m->head_w, NULL, N, H, H, e->tmp, H);
  pool_run(p, job_head, e);

  /* Decoder fused with the max over each document's tokens (job_decoder). */
  pool_run(p, job_pool_init, e);
  pool_run(p, job_decoder, e);

  /* An unfinished row's running max waits in carry for the batch that continues it. */
  if (rows && rows->unfinished)
    memcpy(e->carry, e->pooled + (size_t)(R - 1) * V, sizeof(float) * (size_t)V);
  const int R_emit = e->n_emit;
  pool_run(p, job_sparsify, e);
  e->indptr[0] = 0;
  for (int r = 0; r < R_emit; r++) e->indptr[r + 1] = e->indptr[r] + e->row_nnz[r];
  int64_t nnz = e->indptr[R_emit];
  if (nnz > e->cap) {
    /* Grows geometrically, so a long run reallocates only a few times. */
    int64_t cap = e->cap ? e->cap : 4096;
    while (cap < nnz) cap *= 2;
    int32_t *ni = realloc(e->indices, sizeof *ni * (size_t)cap);
    if (ni) e->indices = ni;
    float *nv = ni ? realloc(e->values, sizeof *nv * (size_t)cap) : NULL;
    if (nv) e->values = nv;
    if (!ni || !nv)
      return err_set(ERR_NOMEM, "out of memory for %lld non-zeros of a batch", (long long)nnz);
    e->cap = cap;
  }
  pool_run(p, job_gather, e);

  out->n_docs = R_emit;
  out->indptr = e->indptr;
  out->indices = e->indices;
  out->values = e->values;
  return 0;
}

const char *enc_cpu_describe(const enc_cpu *e) { return e->description; }

void enc_cpu_close(enc_cpu *e) {
  if (!e) return;
  pool *p = &e->pool;
  if (p->started) {
    pthread_mutex_lock(&p->mutex);
    p->stop = 1;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->start_cv);
    pthread_cond_destroy(&p->done_cv);
  }
  free(p->threads);
  free(e->worker_args);
  free(e->ids);
  free(e->positions);
  free(e->offsets);
  free(e->row_offsets);
  free(e->carry);
  free(e->x);
  free(e->ctx);
  free(e->tmp);
  free(e->big);
  free(e->logits);
  free(e->pooled);
  free(e->scratch);
  free(e->row_nnz);
  free(e->indptr);
  free(e->indices);
  free(e->values);
  free(e);
}
