/* cmd_encode: `spladex encode`, the SPLADE vector of each passage on stdout.
 *
 * Passages come from the TEXT arguments, else from stdin, one per line (--ids: each line is the
 * space-separated token ids that `spladex tokenize` prints, [CLS] ... [SEP]). They are encoded in
 * batches (up to 64 passages or --batch-tokens tokens) and printed in input order: in text mode one
 * line per passage with its top terms "term:weight" by weight descending (ties: lower id first),
 * with --json one object per line, {"n_tokens": N, "vector": {"term": w, ...}}, every kept term
 * in ascending id order, weights with %.9g (terms escaped by jsonl_escape's
 * JSONL_ESCAPE_CONTROLS style).
 * An --ids line longer than --max-length is truncated the way the tokenizer truncates
 * (tok_truncate_ids: its first max_length - 1 ids and its last id, the [SEP]).
 * With --stride S > 0 a passage is not truncated: it is cut into the sliding windows of
 * encoder.h (enc_window; an --ids line's first and last ids are its [CLS] and [SEP]), at most
 * --max-windows of them, whose rows the encoder max-pools into one vector; a passage's windows
 * may span batches (enc_rows). --json then prints {"n_tokens": N, "n_windows": K, "vector": ...}
 * with N the untruncated length ([CLS] and [SEP] included) and K the windows encoded.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "encoder.h"
#include "err.h"
#include "export_jsonl.h"
#include "grow.h"
#include "model.h"
#include "tokenizer.h"

enum { ENCODE_BATCH_DOCS = 64 };

typedef struct {
  const char *model_dir;
  int max_length;
  float threshold;
  int top_k;
  int threads;
  int json;
  int ids;
  int top;
  int batch_tokens;
  int stride;         /* --stride: 0 = truncate, else the windows' stride */
  int max_windows;    /* --max-windows */
  const char *device; /* --device as given (cli_parse_device) */
} encode_args;

typedef struct {
  float w;
  int32_t id;
} encode_term;

typedef struct {
  encode_args a;
  model *m;
  tok *t;
  encoder *e;
  tok_buffer buf;
  /* the pending batch */
  int32_t *pool;        /* (batch_tokens) ids of the pending passages, concatenated */
  int pool_used;
  const int32_t *doc_ids[ENCODE_BATCH_DOCS];
  int lengths[ENCODE_BATCH_DOCS];
  int n_docs;
  /* --stride: the pending batch's rows (documents) and the chain of a document over batches */
  int row_seqs[ENCODE_BATCH_DOCS];     /* windows per row */
  int row_tokens[ENCODE_BATCH_DOCS];   /* the row's document's untruncated length */
  int row_windows[ENCODE_BATCH_DOCS];  /* the row's document's windows encoded */
  int n_rows;
  int row_open;         /* the current document has a row in the pending batch */
  int continues;        /* the pending batch's row 0 continues the previous batch's last row */
  long long hit_max;    /* documents with more than --max-windows windows */
  char first_hit[64];   /* the first of them */
  encode_term *terms;   /* (V) text mode: one row's terms, for sorting */
  int32_t *line_ids;    /* (line_cap) --ids mode: the ids of one line */
  size_t line_n, line_cap;
  char *escaped;        /* (escaped_cap) --json: one term as a JSON string */
  size_t escaped_cap;
  long long line;       /* input line number of the last passage read (1-based) */
} encode_state;

static void encode_usage(FILE *to) {
  fprintf(to,
          "usage: spladex encode --model DIR [options] [TEXT...]\n"
          "Prints the SPLADE vector of each TEXT (or of each stdin line when there is none).\n\n"
          "  --model DIR         model directory (config.json, weights, vocab.txt or tokenizer.json)\n"
          "  --max-length N      tokens per passage, [CLS] and [SEP] included (default 256); with\n"
          "                      --stride, tokens per window\n"
          "  --stride S          0: truncate each passage to --max-length (default); S in [1, N-2]:\n"
          "                      cover the whole passage with windows of N tokens starting S tokens\n"
          "                      apart, its vector the max over all of them\n"
          "  --max-windows K     with --stride: encode at most K windows per passage (default 64)\n"
          "  --threshold T       keep terms with weight > T (default 0)\n"
          "  --top-k K           keep the K largest terms per passage (default 0 = all)\n"
          "  --threads N         CPU threads (default 0 = all cores)\n"
          "  --device D          auto | cpu | cuda | cuda:N (default cpu; auto: CUDA when built\n"
          "                      with it and a device opens, else cpu)\n"
          "  --batch-tokens N    token budget of one batch (default 8192)\n"
          "  --json              one {\"n_tokens\": N, \"vector\": {term: weight}} object per line\n"
          "  --ids               input lines are space-separated token ids (spladex tokenize)\n"
          "  --top N             terms shown per passage in text mode (default 20)\n");
}

static int parse_args(int argc, char **argv, encode_args *a, int *first_text, int *help) {
  memset(a, 0, sizeof *a);
  a->max_length = 256;
  a->top = 20;
  a->batch_tokens = 8192;
  a->max_windows = 64;
  a->device = "cpu";
  *help = 0;
  int i = 1;
  for (; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--")) {
      i++;
      break;
    }
    if (o[0] != '-' || o[1] != '-') break;
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      *help = 1;
      return 0;
    }
    if (!strcmp(o, "--json")) {
      a->json = 1;
      continue;
    }
    if (!strcmp(o, "--ids")) {
      a->ids = 1;
      continue;
    }
    if (i + 1 >= argc) return err_set(ERR_ARG, "%s needs a value", o);
    const char *v = argv[++i];
    int rc = 0;
    if (!strcmp(o, "--model")) {
      a->model_dir = v;
    } else if (!strcmp(o, "--max-length")) {
      rc = cli_parse_int(o, v, 2, 1 << 20, &a->max_length);
    } else if (!strcmp(o, "--threshold")) {
      rc = cli_parse_float(o, v, 0, 0, 1e30, &a->threshold);
    } else if (!strcmp(o, "--top-k")) {
      rc = cli_parse_int(o, v, 0, INT_MAX, &a->top_k);
    } else if (!strcmp(o, "--threads")) {
      rc = cli_parse_int(o, v, 0, 4096, &a->threads);
    } else if (!strcmp(o, "--top")) {
      rc = cli_parse_int(o, v, 0, INT_MAX, &a->top);
    } else if (!strcmp(o, "--batch-tokens")) {
      rc = cli_parse_int(o, v, 2, 1 << 24, &a->batch_tokens);
    } else if (!strcmp(o, "--stride")) {
      rc = cli_parse_int(o, v, 0, 1 << 20, &a->stride);
    } else if (!strcmp(o, "--max-windows")) {
      rc = cli_parse_int(o, v, 1, INT_MAX, &a->max_windows);
    } else if (!strcmp(o, "--device")) {
      a->device = v;
    } else {
      return err_set(ERR_ARG, "unknown option '%s' (see spladex encode --help)", o);
    }
    if (rc) return rc;
  }
  *first_text = i;
  if (!a->model_dir) return err_set(ERR_ARG, "--model DIR is required (see spladex encode --help)");
  if (a->stride > a->max_length - 2)
    return err_set(ERR_ARG, "--stride %d is outside [0, %d] (0, or 1 to --max-length - 2)",
                   a->stride, a->max_length - 2);
  return 0;
}

static const char *term_of(const encode_state *s, int32_t id) {
  const char *t = tok_token(s->t, id);
  return t ? t : "[?]";
}

/* Weight descending, then term id ascending. */
static int by_weight_desc(const void *pa, const void *pb) {
  const encode_term *a = pa, *b = pb;
  if (a->w != b->w) return a->w > b->w ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

/* Encodes and prints the pending batch. unfinished (--stride): the current document goes on in
 * the next batch. */
static int flush_batch(encode_state *s, int unfinished) {
  if (s->n_docs == 0) return 0;
  enc_batch batch = {s->n_docs, s->doc_ids, s->lengths};
  enc_rows rows = {s->n_rows, s->row_seqs, s->continues, unfinished};
  enc_result r;
  int rc = enc_run_rows(s->e, &batch, s->a.stride > 0 ? &rows : NULL, &r);
  if (rc) return rc;
  for (int b = 0; b < r.n_docs; b++) {
    int64_t lo = r.indptr[b], hi = r.indptr[b + 1];
    if (s->a.json && s->a.stride > 0) {
      printf("{\"n_tokens\": %d, \"n_windows\": %d, \"vector\": {", s->row_tokens[b],
             s->row_windows[b]);
    } else if (s->a.json) {
      printf("{\"n_tokens\": %d, \"vector\": {", s->lengths[b]);
    }
    if (s->a.json) {
      for (int64_t k = lo; k < hi; k++) {
        if (k > lo) fputs(", ", stdout);
        const char *term = term_of(s, r.indices[k]);
        if (grow(&s->escaped, &s->escaped_cap, JSONL_ESCAPED_MAX(strlen(term)), 1))
          return err_set(ERR_NOMEM, "out of memory");
        jsonl_escape(term, JSONL_ESCAPE_CONTROLS, s->escaped);
        fputs(s->escaped, stdout);
        printf(": %.9g", (double)r.values[k]);
      }
      fputs("}}\n", stdout);
    } else {
      int n = s->a.top > 0 ? (int)(hi - lo) : 0;
      for (int k = 0; k < n; k++) {
        s->terms[k].w = r.values[lo + k];
        s->terms[k].id = r.indices[lo + k];
      }
      qsort(s->terms, (size_t)n, sizeof *s->terms, by_weight_desc);
      int shown = n < s->a.top ? n : s->a.top;
      for (int k = 0; k < shown; k++)
        printf("%s%s:%.3f", k ? " " : "", term_of(s, s->terms[k].id), (double)s->terms[k].w);
      fputc('\n', stdout);
    }
  }
  if (fflush(stdout) || ferror(stdout)) return err_set(ERR_IO, "writing to stdout: %s", strerror(errno));
  s->n_docs = 0;
  s->pool_used = 0;
  s->n_rows = 0;
  s->row_open = 0;
  s->continues = unfinished;
  return 0;
}

/* Queues one passage's ids (copied), flushing the pending batch first when it is full. */
static int add_passage(encode_state *s, const int32_t *ids, int n) {
  int32_t last = ids[n - 1];
  int kept = n < s->a.max_length ? n : s->a.max_length;
  if (s->n_docs == ENCODE_BATCH_DOCS || s->pool_used + kept > s->a.batch_tokens) {
    int rc = flush_batch(s, 0);
    if (rc) return rc;
  }
  int32_t *dst = s->pool + s->pool_used;
  memmove(dst, ids, sizeof(int32_t) * (size_t)kept);
  n = (int)tok_truncate_ids(dst, (size_t)n, last, (size_t)s->a.max_length);
  s->doc_ids[s->n_docs] = s->pool + s->pool_used;
  s->lengths[s->n_docs] = n;
  s->n_docs++;
  s->pool_used += n;
  return 0;
}

/* --stride: queues the windows of the passage t[0..n) (no specials) wrapped in cls ... sep,
 * flushing whenever the batch is full, mid-passage included (the encoder carries the row). */
static int add_windows(encode_state *s, const int32_t *t, int64_t n, int32_t cls, int32_t sep,
                       const char *where) {
  const int L = s->a.max_length, S = s->a.stride;
  int64_t count = enc_window_count(n, L, S);
  if (count > s->a.max_windows) {
    if (s->hit_max++ == 0) snprintf(s->first_hit, sizeof s->first_hit, "%s", where);
    count = s->a.max_windows;
  }
  for (int64_t k = 0; k < count; k++) {
    int64_t lo = k * S, hi = lo + L - 2 < n ? lo + L - 2 : n;
    int len = (int)(hi - (lo < hi ? lo : hi)) + 2;
    if (s->n_docs == ENCODE_BATCH_DOCS || s->pool_used + len > s->a.batch_tokens) {
      int rc = flush_batch(s, k > 0);
      if (rc) return rc;
    }
    if (!s->row_open) {
      s->row_seqs[s->n_rows] = 0;
      s->row_tokens[s->n_rows] = n + 2 > INT_MAX ? INT_MAX : (int)(n + 2);
      s->row_windows[s->n_rows] = (int)count;
      s->n_rows++;
      s->row_open = 1;
    }
    int32_t *dst = s->pool + s->pool_used;
    len = enc_window(t, n, L, S, k, cls, sep, dst);
    s->doc_ids[s->n_docs] = dst;
    s->lengths[s->n_docs] = len;
    s->n_docs++;
    s->pool_used += len;
    s->row_seqs[s->n_rows - 1]++;
  }
  s->row_open = 0;
  return 0;
}

/* Parses an --ids line into s->line_ids. */
static int parse_id_line(encode_state *s, const char *line, const char *where) {
  int vocab = s->m->cfg.vocab;
  s->line_n = 0;
  const char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) break;
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || (*end && *end != ' ' && *end != '\t')) {
      int len = 0;
      while (p[len] && p[len] != ' ' && p[len] != '\t' && len < 40) len++;
      return err_set(ERR_INPUT, "%s: '%.*s' is not a token id", where, len, p);
    }
    if (v < 0 || v >= vocab)
      return err_set(ERR_INPUT, "%s: token id %ld is outside the vocabulary [0, %d)", where, v,
                     vocab);
    if (grow(&s->line_ids, &s->line_cap, s->line_n + 1, sizeof *s->line_ids))
      return err_set(ERR_NOMEM, "%s: out of memory", where);
    s->line_ids[s->line_n++] = (int32_t)v;
    p = end;
  }
  if (s->line_n == 0)
    return err_set(ERR_INPUT, "%s: empty id line (a passage needs at least one id)", where);
  return 0;
}

static int encode_one(encode_state *s, const char *text, size_t len, const char *where) {
  if (s->a.ids) {
    (void)len;
    int rc = parse_id_line(s, text, where);
    if (rc) return rc;
    if (s->line_n > (size_t)INT_MAX) return err_set(ERR_INPUT, "%s: too many ids", where);
    if (s->a.stride > 0) {
      if (s->line_n < 2)
        return err_set(ERR_INPUT, "%s: --stride needs id lines of at least 2 ids ([CLS] ... [SEP])",
                       where);
      const int32_t *ids = s->line_ids;
      return add_windows(s, ids + 1, (int64_t)s->line_n - 2, ids[0], ids[s->line_n - 1], where);
    }
    return add_passage(s, s->line_ids, (int)s->line_n);
  }
  int rc = tok_encode(s->t, text, len, s->a.stride > 0 ? 0 : s->a.max_length, &s->buf);
  if (rc) return err_wrap(rc, "%s", where);
  if (s->a.stride > 0) /* [CLS] t [SEP], untruncated */
    return add_windows(s, s->buf.ids + 1, (int64_t)s->buf.n - 2, s->buf.ids[0],
                       s->buf.ids[s->buf.n - 1], where);
  return add_passage(s, s->buf.ids, (int)s->buf.n);
}

int cmd_encode(int argc, char **argv) {
  encode_state s;
  memset(&s, 0, sizeof s);
  int first_text = 0, help = 0, rc;
  char *line = NULL;
  size_t line_cap = 0;
  if ((rc = parse_args(argc, argv, &s.a, &first_text, &help))) goto fail;
  if (help) {
    encode_usage(stdout);
    return 0;
  }
  if (s.a.batch_tokens < s.a.max_length) s.a.batch_tokens = s.a.max_length;
  cli_device device; /* checked before the model loads; cli_open_encoder uses the value */
  if ((rc = cli_parse_device(s.a.device, &device))) goto fail;
  if ((rc = cli_open_model(s.a.model_dir, &s.m, &s.t))) goto fail;
  if (s.a.max_length > s.m->cfg.max_positions) {
    rc = err_set(ERR_ARG, "--max-length %d exceeds the model's %d positions", s.a.max_length,
                 s.m->cfg.max_positions);
    goto fail;
  }
  enc_options opt = enc_options_default();
  opt.threads = s.a.threads;
  opt.threshold = s.a.threshold;
  opt.top_k = s.a.top_k;
  opt.max_length = s.a.max_length;
  opt.max_batch_tokens = s.a.batch_tokens;
  opt.max_batch_docs = ENCODE_BATCH_DOCS;
  /* encode has no --precision: fp32 on either device */
  if ((rc = cli_open_encoder("spladex encode", s.m, s.a.device, "fp32", &opt, &s.e))) goto fail;
  size_t V = (size_t)s.m->cfg.vocab;
  s.pool = malloc(sizeof *s.pool * (size_t)s.a.batch_tokens);
  s.terms = malloc(sizeof *s.terms * V);
  if (!s.pool || !s.terms) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }

  char where[64];
  if (first_text < argc) {
    for (int i = first_text; i < argc; i++) {
      snprintf(where, sizeof where, "argument %d", i - first_text + 1);
      if ((rc = encode_one(&s, argv[i], strlen(argv[i]), where))) goto fail;
    }
  } else {
    ssize_t n;
    while ((n = getline(&line, &line_cap, stdin)) >= 0) {
      s.line++;
      while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
      snprintf(where, sizeof where, "stdin line %lld", s.line);
      if ((rc = encode_one(&s, line, (size_t)n, where))) goto fail;
    }
    if (ferror(stdin)) {
      rc = err_set(ERR_IO, "reading stdin: %s", strerror(errno));
      goto fail;
    }
  }
  if ((rc = flush_batch(&s, 0))) goto fail;
  if (s.hit_max > 0)
    fprintf(stderr, "spladex encode: %lld passage%s had more than %d windows (--max-windows): only "
            "their first %d were encoded (the first: %s)\n", s.hit_max, s.hit_max == 1 ? "" : "s",
            s.a.max_windows, s.a.max_windows, s.first_hit);
  rc = 0;
fail:
  free(line);
  free(s.pool);
  free(s.terms);
  free(s.line_ids);
  free(s.escaped);
  tok_buffer_free(&s.buf);
  enc_close(s.e);
  tok_free(s.t);
  model_free(s.m);
  return rc;
}
