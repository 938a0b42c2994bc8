/* cmd_queries: `spladex queries`, a topics file encoded with a (query) model into the query file
 * of a retrieval engine, quantized exactly as `spladex export` quantizes the documents
 * (inv_quantize, io/invert.h), with PATH.meta.json beside it (io/export_meta.h). DESIGN.md
 * section 7 cites each engine's reader:
 *
 *   anserini   qid<TAB>term term term ...   each term repeated by its quantized weight: Anserini's
 *              SearchCollection -impact -pretokenized splits the query on whitespace and its
 *              BagOfWordsQueryGenerator boosts each term by its count (a BoostQuery of weight
 *              count), so the score is sum(count * impact). -topicReader TsvString (TsvInt for
 *              integer qids).
 *   pisa       qid:term term term ...       the same repetition; PISA's `queries` and
 *              `evaluate_queries` read `ID:terms` lines and with --weighted ("Weights scores by
 *              query frequency") multiply each term's score by its count; use
 *              --tokenizer whitespace and no token filters so that ## pieces stay as they are.
 *   jsonl      {"id": qid, "vector": {"term": 0.8123, ...}}   the float32 weights (shortest
 *              decimals), for Seismic and anyone's own code
 *   jsonl-int  the same with the quantized integer weights
 *
 * Terms come in ascending vocab id. In the quantized formats a term whose weight quantizes to 0
 * is left out; --drop-special leaves out [PAD] [UNK] [CLS] [SEP] [MASK] (inv_is_special_term).
 * The topics: TSV qid<TAB>text (MS MARCO queries.*.tsv) or JSONL (BEIR queries.jsonl,
 * {"_id", "text"}; Pyserini {"id", "contents"}; {"qid", "query"} under corpus_options'
 * topic_keys), plain or gzip, read by io/corpus.h with its bad-line rules (an error naming
 * file:line, or --skip-bad-lines). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "atomic_file.h"
#include "cli.h"
#include "commands.h"
#include "corpus.h"
#include "encoder.h"
#include "err.h"
#include "export_jsonl.h"
#include "export_meta.h"
#include "grow.h"
#include "gzsink.h"
#include "invert.h"
#include "model.h"
#include "tokenizer.h"

enum { QUERIES_BATCH_DOCS = 64 };

typedef enum { QF_ANSERINI, QF_PISA, QF_JSONL, QF_JSONL_INT } queries_format;

typedef struct {
  const char *model_dir, *input, *output, *format_name, *input_format, *device, *precision;
  queries_format format;
  float scale, threshold;
  int drop_special, skip_bad_lines, max_length, top_k, threads, batch_tokens;
} queries_args;

typedef struct {
  queries_args a;
  model *m;
  tok *t;
  encoder *e;
  tok_buffer buf;
  gzsink out;
  unsigned char *drop;  /* (V) 1: a special token left out under --drop-special */
  char **keys;          /* (V) the JSON string of each term (jsonl formats), else NULL */
  /* the pending batch */
  int32_t *pool;        /* (batch_tokens) ids of the pending queries, concatenated */
  int pool_used;
  const int32_t *ids[QUERIES_BATCH_DOCS];
  int lengths[QUERIES_BATCH_DOCS];
  char *qids[QUERIES_BATCH_DOCS]; /* owned copies */
  int64_t lines[QUERIES_BATCH_DOCS];
  int n_pending;
  char *escaped;        /* one escaped qid */
  size_t escaped_cap;
  int64_t written, nnz, empty, tokens;
  double start, last;   /* progress: a line every 10 s */
} queries_state;

static double queries_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void queries_progress(queries_state *s, int force) {
  double t = queries_now();
  if (!force && t - s->last < 10.0) return;
  s->last = t;
  fprintf(stderr, "queries: %lld queries, %lld tokens, %.1f s, %.0f queries/s\n",
          (long long)s->written, (long long)s->tokens, t - s->start,
          t > s->start ? (double)s->written / (t - s->start) : 0.0);
}

static void queries_usage(FILE *to) {
  fprintf(to,
          "usage: spladex queries --model DIR --input TOPICS --format F --output PATH\n"
          "                       [--quant-scale 100] [--drop-special] [--max-length N]\n"
          "                       [--threshold T] [--top-k K] [--device D] [--precision P]\n"
          "                       [--input-format auto|tsv|jsonl] [--skip-bad-lines]\n\n"
          "Encodes each topic with the model and writes the query file an engine reads, with\n"
          "weights quantized exactly as `spladex export` quantizes documents, round(w * scale)\n"
          "(float32 product, ties to even); a term whose weight rounds to 0 is left out.\n"
          "PATH.meta.json is written beside PATH.\n\n"
          "  --format F           anserini   qid<TAB>terms, each repeated by its weight (Anserini\n"
          "                                  SearchCollection -impact -pretokenized)\n"
          "                       pisa       qid:terms, each repeated by its weight (PISA\n"
          "                                  queries / evaluate_queries --weighted\n"
          "                                  --tokenizer whitespace)\n"
          "                       jsonl      {\"id\", \"vector\": {term: float weight}} (Seismic)\n"
          "                       jsonl-int  the same with the quantized integer weights\n"
          "  --model DIR          the query encoder's directory\n"
          "  --input TOPICS       qid<TAB>text lines, or JSONL {\"id\"|\"_id\"|\"qid\",\n"
          "                       \"contents\"|\"text\"|\"query\"}; plain or gzip\n"
          "  --output PATH        the file to write; gzip-compressed when PATH ends in .gz\n"
          "  --input-format F     auto (default: JSONL when the first byte is '{'), tsv or jsonl\n"
          "  --quant-scale S      quantization scale (default 100), the export's\n"
          "  --drop-special       leave out [PAD] [UNK] [CLS] [SEP] [MASK] (RoBERTa: <s> <pad> </s>\n"
          "                       <unk> <mask>)\n"
          "  --max-length N       tokens per query, [CLS] and [SEP] included (default 256)\n"
          "  --threshold T        keep terms with weight > T (default 0)\n"
          "  --top-k K            keep the K largest terms per query (default 0 = all)\n"
          "  --device D           auto | cpu | cuda | cuda:N (default auto)\n"
          "  --precision P        fp32 | fp16 | bf16 (default fp16 on CUDA, fp32 on the CPU)\n"
          "  --threads N          CPU threads (default 0 = all cores)\n"
          "  --skip-bad-lines     skip (and count) malformed topic lines instead of failing\n");
}

static int queries_parse(int argc, char **argv, queries_args *a, int *help) {
  memset(a, 0, sizeof *a);
  a->scale = 100.0f;
  a->max_length = 256;
  a->batch_tokens = 8192;
  a->device = "auto";
  a->input_format = "auto";
  *help = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      *help = 1;
      return 0;
    }
    if (!strcmp(o, "--drop-special")) {
      a->drop_special = 1;
      continue;
    }
    if (!strcmp(o, "--skip-bad-lines")) {
      a->skip_bad_lines = 1;
      continue;
    }
    if (o[0] != '-')
      return err_set(ERR_ARG, "unexpected argument '%s' (see spladex queries --help)", o);
    if (i + 1 >= argc) return err_set(ERR_ARG, "%s needs a value", o);
    const char *v = argv[++i];
    int rc = 0;
    if (!strcmp(o, "--model")) a->model_dir = v;
    else if (!strcmp(o, "--input")) a->input = v;
    else if (!strcmp(o, "--output")) a->output = v;
    else if (!strcmp(o, "--format")) a->format_name = v;
    else if (!strcmp(o, "--input-format")) a->input_format = v;
    else if (!strcmp(o, "--device")) a->device = v;
    else if (!strcmp(o, "--precision")) a->precision = v;
    else if (!strcmp(o, "--quant-scale")) rc = cli_parse_float(o, v, 0, 1, 1e9, &a->scale);
    else if (!strcmp(o, "--threshold")) rc = cli_parse_float(o, v, 0, 0, 1e30, &a->threshold);
    else if (!strcmp(o, "--max-length")) rc = cli_parse_int(o, v, 2, 1 << 20, &a->max_length);
    else if (!strcmp(o, "--top-k")) rc = cli_parse_int(o, v, 0, INT_MAX, &a->top_k);
    else if (!strcmp(o, "--threads")) rc = cli_parse_int(o, v, 0, 4096, &a->threads);
    else return err_set(ERR_ARG, "unknown option '%s' (see spladex queries --help)", o);
    if (rc) return rc;
  }
  if (!a->model_dir)
    return err_set(ERR_ARG, "--model DIR is required (see spladex queries --help)");
  if (!a->input) return err_set(ERR_ARG, "--input TOPICS is required");
  if (!a->output) return err_set(ERR_ARG, "--output PATH is required");
  if (!a->format_name)
    return err_set(ERR_ARG, "--format is required: anserini, pisa, jsonl or jsonl-int");
  if (!strcmp(a->format_name, "anserini")) a->format = QF_ANSERINI;
  else if (!strcmp(a->format_name, "pisa")) a->format = QF_PISA;
  else if (!strcmp(a->format_name, "jsonl")) a->format = QF_JSONL;
  else if (!strcmp(a->format_name, "jsonl-int")) a->format = QF_JSONL_INT;
  else
    return err_set(ERR_ARG, "--format '%s': expected anserini, pisa, jsonl or jsonl-int",
                   a->format_name);
  if (strcmp(a->input_format, "auto") && strcmp(a->input_format, "tsv") &&
      strcmp(a->input_format, "jsonl"))
    return err_set(ERR_ARG, "--input-format '%s': expected auto, tsv or jsonl", a->input_format);
  if (a->precision) {
    enc_precision p;
    if (cli_parse_precision(a->precision, &p)) return ERR_ARG;
  }
  return 0;
}

/* auto: JSONL when the first byte that is not white space is '{' (gzip read through). */
static int queries_sniff(const char *path, corpus_format *out) {
  gzFile f = gzopen(path, "rb");
  if (!f) return err_set(ERR_IO, "%s: %s", path, strerror(errno ? errno : ENOENT));
  int c;
  while ((c = gzgetc(f)) == ' ' || c == '\t' || c == '\r' || c == '\n') {
  }
  gzclose(f);
  *out = c == '{' ? CORPUS_JSONL : CORPUS_TSV;
  return 0;
}

static int queries_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* Writes the pending queries' lines. */
static int queries_flush(queries_state *s) {
  if (s->n_pending == 0) return 0;
  enc_batch batch = {s->n_pending, s->ids, s->lengths};
  enc_result r;
  int rc = enc_run(s->e, &batch, &r);
  if (rc) return rc;
  const int quantized = s->a.format != QF_JSONL;
  for (int b = 0; b < r.n_docs; b++) {
    const char *qid = s->qids[b];
    int64_t terms = 0;
    if (s->a.format == QF_ANSERINI || s->a.format == QF_PISA) {
      if ((rc = gzsink_write(&s->out, qid, strlen(qid))) ||
          (rc = gzsink_write(&s->out, s->a.format == QF_PISA ? ":" : "\t", 1)))
        return rc;
    } else {
      size_t n = strlen(qid);
      if (grow(&s->escaped, &s->escaped_cap, JSONL_ESCAPED_MAX(n), 1))
        return err_set(ERR_NOMEM, "out of memory");
      n = jsonl_escape(qid, JSONL_ESCAPE_DUMPS, s->escaped);
      if ((rc = gzsink_write(&s->out, "{\"id\": ", 7)) ||
          (rc = gzsink_write(&s->out, s->escaped, n)) ||
          (rc = gzsink_write(&s->out, ", \"vector\": {", 13)))
        return rc;
    }
    for (int64_t k = r.indptr[b]; k < r.indptr[b + 1]; k++) {
      int32_t v = r.indices[k];
      if (s->drop[v]) continue;
      int32_t q = inv_quantize(r.values[k], s->a.scale);
      if (quantized && q < 1) continue;
      char number[JSONL_FLOAT_MAX];
      if (s->a.format == QF_ANSERINI || s->a.format == QF_PISA) {
        const char *term = tok_token(s->t, v);
        size_t n = strlen(term);
        for (int32_t rep = 0; rep < q; rep++) {
          if ((terms || rep) && (rc = gzsink_write(&s->out, " ", 1))) return rc;
          if ((rc = gzsink_write(&s->out, term, n))) return rc;
        }
      } else {
        size_t n = quantized ? (size_t)snprintf(number, sizeof number, "%d", q)
                             : jsonl_format_float(r.values[k], number);
        if ((terms && (rc = gzsink_write(&s->out, ", ", 2))) ||
            (rc = gzsink_write(&s->out, s->keys[v], strlen(s->keys[v]))) ||
            (rc = gzsink_write(&s->out, ": ", 2)) || (rc = gzsink_write(&s->out, number, n)))
          return rc;
      }
      terms++;
    }
    if (s->a.format == QF_JSONL || s->a.format == QF_JSONL_INT) {
      if ((rc = gzsink_write(&s->out, "}}", 2))) return rc;
    }
    if ((rc = gzsink_write(&s->out, "\n", 1))) return rc;
    if (terms == 0) {
      if (s->empty == 0)
        fprintf(stderr, "queries: query '%s' (line %lld) has no term left%s; written empty\n",
                qid, (long long)s->lines[b], quantized ? " after quantization" : "");
      s->empty++;
    }
    s->nnz += terms;
    s->written++;
    free(s->qids[b]);
    s->qids[b] = NULL;
  }
  s->tokens += s->pool_used;
  s->n_pending = 0;
  s->pool_used = 0;
  queries_progress(s, 0);
  return 0;
}

/* Checks the qid against what the format can carry, then tokenizes and queues the query. */
static int queries_add(queries_state *s, const corpus_record *rec) {
  int rc;
  const char *bad = NULL;
  if (s->a.format == QF_ANSERINI && strpbrk(rec->id, "\t\n\r")) bad = "a tab or newline";
  if (s->a.format == QF_PISA && strpbrk(rec->id, ":\n\r")) bad = "':' or a newline";
  if (s->a.format == QF_PISA && !rec->id[0]) bad = "nothing (an empty id)";
  if (bad)
    return err_set(ERR_INPUT, "%s:%lld: query id '%s' holds %s, which the %s query format "
                              "cannot carry", s->a.input, (long long)rec->line, rec->id, bad,
                   s->a.format_name);
  if ((rc = tok_encode(s->t, rec->text, rec->text_len, s->a.max_length, &s->buf)))
    return err_wrap(rc, "%s:%lld", s->a.input, (long long)rec->line);
  int n = (int)s->buf.n;
  if (s->n_pending == QUERIES_BATCH_DOCS || s->pool_used + n > s->a.batch_tokens)
    if ((rc = queries_flush(s))) return rc;
  memcpy(s->pool + s->pool_used, s->buf.ids, sizeof(int32_t) * (size_t)n);
  s->ids[s->n_pending] = s->pool + s->pool_used;
  s->lengths[s->n_pending] = n;
  s->lines[s->n_pending] = rec->line;
  s->qids[s->n_pending] = malloc(rec->id_len + 1);
  if (!s->qids[s->n_pending]) return err_set(ERR_NOMEM, "out of memory");
  memcpy(s->qids[s->n_pending], rec->id, rec->id_len + 1);
  s->n_pending++;
  s->pool_used += n;
  return 0;
}

int cmd_queries(int argc, char **argv) {
  queries_state s;
  memset(&s, 0, sizeof s);
  corpus *c = NULL;
  char *tmp = NULL;
  const char **dropped = NULL;
  int help = 0, rc, V = 0, n_dropped = 0;
  if ((rc = queries_parse(argc, argv, &s.a, &help))) goto fail;
  if (help) {
    queries_usage(stdout);
    return 0;
  }
  if (s.a.batch_tokens < s.a.max_length) s.a.batch_tokens = s.a.max_length;
  cli_device device; /* checked before the model loads; cli_open_encoder uses the value */
  if ((rc = cli_parse_device(s.a.device, &device))) goto fail;
  corpus_options copt = corpus_options_default();
  copt.skip_bad_lines = s.a.skip_bad_lines;
  copt.topic_keys = 1; /* {"qid", "query"} too */
  if (!strcmp(s.a.input_format, "auto")) rc = queries_sniff(s.a.input, &copt.format);
  else rc = corpus_parse_format(s.a.input_format, &copt.format);
  if (rc) goto fail;
  if ((rc = cli_open_model(s.a.model_dir, &s.m, &s.t))) goto fail;
  if (s.a.max_length > s.m->cfg.max_positions) {
    rc = err_set(ERR_ARG, "--max-length %d exceeds the model's %d positions", s.a.max_length,
                 s.m->cfg.max_positions);
    goto fail;
  }
  V = s.m->cfg.vocab;
  s.drop = calloc((size_t)V + 1, 1);
  s.pool = malloc(sizeof *s.pool * (size_t)s.a.batch_tokens);
  dropped = malloc(sizeof *dropped * (size_t)V + 1);
  if (!s.drop || !s.pool || !dropped) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (int v = 0; v < V; v++) {
    const char *term = tok_token(s.t, v);
    if (!term) {
      rc = err_set(ERR_FORMAT, "%s: the vocabulary has no token %d", s.a.model_dir, v);
      goto fail;
    }
    if (s.a.drop_special && inv_is_special_term(term)) {
      s.drop[v] = 1;
      dropped[n_dropped++] = term;
    }
    if ((s.a.format == QF_ANSERINI || s.a.format == QF_PISA) && !s.drop[v] &&
        (!term[0] || strpbrk(term, " \t\n\r"))) {
      /* a whitespace-split query cannot hold it; no BERT vocabulary has one */
      rc = err_set(ERR_FORMAT, "%s: vocabulary token %d ('%s') is empty or holds white space, "
                               "which the %s format cannot carry", s.a.model_dir, v, term,
                   s.a.format_name);
      goto fail;
    }
  }
  if (s.a.format == QF_JSONL || s.a.format == QF_JSONL_INT) {
    s.keys = calloc((size_t)V + 1, sizeof *s.keys);
    if (!s.keys) {
      rc = err_set(ERR_NOMEM, "out of memory");
      goto fail;
    }
    for (int v = 0; v < V; v++) {
      const char *term = tok_token(s.t, v);
      if (!(s.keys[v] = malloc(JSONL_ESCAPED_MAX(strlen(term))))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto fail;
      }
      jsonl_escape(term, JSONL_ESCAPE_DUMPS, s.keys[v]);
    }
  }
  enc_options opt = enc_options_default();
  opt.threads = s.a.threads;
  opt.threshold = s.a.threshold;
  opt.top_k = s.a.top_k;
  opt.max_length = s.a.max_length;
  opt.max_batch_tokens = s.a.batch_tokens;
  opt.max_batch_docs = QUERIES_BATCH_DOCS;
  if ((rc = cli_open_encoder("spladex queries", s.m, s.a.device, s.a.precision, &opt, &s.e)))
    goto fail;
  if ((rc = corpus_open(s.a.input, &copt, &c))) goto fail;
  s.start = s.last = queries_now();
  size_t n = strlen(s.a.output);
  if (!(tmp = malloc(n + 5))) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  memcpy(tmp, s.a.output, n);
  memcpy(tmp + n, ".tmp", 5);
  if ((rc = gzsink_open(&s.out, tmp, queries_ends_with(s.a.output, ".gz")))) goto fail;
  fprintf(stderr, "queries: %s (%s) with %s -> %s (%s, scale %g%s)\n", s.a.input,
          copt.format == CORPUS_JSONL ? "jsonl" : "tsv", s.a.model_dir, s.a.output,
          s.a.format_name, (double)s.a.scale, s.a.drop_special ? ", special tokens dropped" : "");
  corpus_record rec;
  while ((rc = corpus_next(c, &rec)) == 1)
    if ((rc = queries_add(&s, &rec))) goto fail;
  if (rc < 0) goto fail;
  if ((rc = queries_flush(&s))) goto fail;
  queries_progress(&s, 1);
  if ((rc = gzsink_close(&s.out))) goto fail;
  if ((rc = atomic_publish(tmp, s.a.output))) goto fail; /* fsync, rename, fsync the directory */
  const corpus_stats *st = corpus_get_stats(c);
  if (st->bad_lines)
    fprintf(stderr, "queries: skipped %lld bad line(s), the first: %s\n",
            (long long)st->bad_lines, st->first_bad_line);
  if (st->duplicates)
    fprintf(stderr, "queries: warning: %lld duplicate query id(s), the first: %s\n",
            (long long)st->duplicates, st->first_duplicate);
  fprintf(stderr, "queries: %lld queries, %lld terms, %lld empty -> %s\n", (long long)s.written,
          (long long)s.nnz, (long long)s.empty, s.a.output);
  meta_info meta = {
      .kind = "queries",
      .format = s.a.format_name,
      .path = s.a.output,
      .source = s.a.input,
      .model = s.a.model_dir,
      .float_weights = s.a.format == QF_JSONL,
      .quant_scale = s.a.scale,
      .drop_special = s.a.drop_special,
      .dropped = dropped,
      .n_dropped = n_dropped,
      .max_length = s.a.max_length,
      .threshold = s.a.threshold,
      .top_k = s.a.top_k,
      .vocab_size = V,
      .vectors = s.written,
      .nnz = s.nnz,
      .empty_vectors = s.empty,
  };
  rc = meta_write(&meta);
fail:
  gzsink_abort(&s.out); /* a no-op once closed */
  if (rc && tmp) remove(tmp);
  for (int b = 0; b < QUERIES_BATCH_DOCS; b++) free(s.qids[b]);
  if (s.keys)
    for (int v = 0; v < V; v++) free(s.keys[v]);
  free(s.keys);
  free(s.drop);
  free(s.pool);
  free(s.escaped);
  free(dropped);
  free(tmp);
  corpus_close(c);
  tok_buffer_free(&s.buf);
  enc_close(s.e);
  tok_free(s.t);
  model_free(s.m);
  return rc;
}
