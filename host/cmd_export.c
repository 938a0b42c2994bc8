/* cmd_export: `spladex export jsonl|ciff|csr`, a shard directory to Anserini JSONL, CIFF or the
 * BigANN'23 sparse CSR binary (DESIGN.md section 7), with PATH.meta.json beside it
 * (io/export_meta.h). CSR and jsonl --weights float write the stored float weights. All
 * stream: JSONL and CSR write each document as it is read; CIFF makes one pass to count
 * (header, df/cf, DocRecords spooled to a side file), then one pass per term range that fits
 * --memory (io/invert.h), writing each range's postings lists in byte order. The output
 * is written to PATH.tmp and published with atomic_publish (fsync, rename, fsync of the
 * directory), so PATH only ever holds a complete export, also after a power loss.
 * The CIFF postings passes transpose each block of rows on the CPU (inv_block_add_rows) or, with
 * --device cuda (or auto and a device), with cuSPARSE (cuda/export_transpose.h, reached through
 * the table of host/cuda_module.h so that this CLI never links CUDA) and inv_block_add_csc: same
 * bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atomic_file.h"
#include "ciff.h"
#include "cli.h"
#include "commands.h"
#include "cuda_module.h"
#include "err.h"
#include "export_csr.h"
#include "export_jsonl.h"
#include "export_meta.h"
#include "invert.h"

#define EXPORT_BLOCK_DOCS 8192
#define EXPORT_RESERVE_MAX ((int64_t)128 << 20)

typedef struct {
  const char *format; /* "jsonl", "ciff" or "csr" */
  const char *input;
  const char *output;
  float scale;
  const char *description;
  int64_t memory;
  int gzip;
  int float_weights; /* --weights float (jsonl), always for csr */
  int drop_special;  /* --drop-special */
  cli_device device; /* where the CIFF postings passes transpose (--device) */
} export_options;

/* The GPU transposer: libspladex_cuda.so's table (its session functions: cuda/export_transpose.h)
 * and the open session; session NULL means the CPU transposes. */
typedef struct {
  const spladex_cuda_api *cuda;
  export_transpose *session;
  char name[160]; /* "cuda:0 (NVIDIA H100 ...)" or "cpu" */
} export_transposer;

static void export_usage(FILE *to) {
  fprintf(to,
          "usage: spladex export jsonl|ciff|csr --input DIR --output PATH [--quant-scale 100]\n"
          "                      [--weights int|float] [--drop-special] [--description TEXT]\n"
          "                      [--memory 2G] [--device auto]\n\n"
          "Exports a complete shard directory (written by `spladex expand`, by one or several\n"
          "workers) with integer weights round(w * scale) (float32 product, ties to even, as\n"
          "naver/splade's Anserini export); terms whose weight rounds to 0 are left out.\n\n"
          "  jsonl   Anserini JsonVectorCollection lines\n"
          "          {\"id\", \"contents\": \"\", \"vector\"};\n"
          "          a document with no weight >= 1 gets {\"[unused993]\": 1}\n"
          "  ciff    Common Index File Format v1 (PISA's ciff2pisa, ciff-toolkit): postings\n"
          "          lists in byte order of the terms, then one DocRecord per document\n"
          "  csr     the BigANN'23 sparse track's CSR binary (int64 rows, cols, nnz; int64\n"
          "          indptr; int32 indices; float32 data; little-endian): the stored float\n"
          "          weights, columns = vocab ids, rows = documents in order\n"
          "PATH.meta.json is written beside PATH: model, scale, weights, drop-special,\n"
          "max length and counts.\n\n"
          "  --input DIR          the shard directory (job.json, shard-00000.h5 ...)\n"
          "  --output PATH        the file to write; gzip-compressed when PATH ends in .gz\n"
          "  --quant-scale S      quantization scale (default 100; Pyserini uses 51.2)\n"
          "  --weights W          jsonl weights: int (default, round(w * scale)) or float (the\n"
          "                       stored float32 weights, for Seismic, OpenSearch neural sparse)\n"
          "  --drop-special       leave out the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] (and\n"
          "                       RoBERTa's <s> <pad> </s> <unk> <mask>), as Anserini's SPLADE\n"
          "                       encoders do (default: kept, as naver's)\n"
          "  --description TEXT   CIFF header description (default names spladex and the model)\n"
          "  --memory SIZE        memory for the CIFF inversion, e.g. 512M, 2G (default 2G);\n"
          "                       less memory means more passes over the shards, same bytes\n"
          "  --device D           where ciff transposes its blocks of rows: auto | cpu | cuda |\n"
          "                       cuda:N (default auto: cuSPARSE when the CUDA backend loads and\n"
          "                       a device opens, else cpu); same bytes either way. jsonl has no\n"
          "                       transpose: it takes auto or cpu only\n");
}

static int export_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

static double export_now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A plain progress line at most every 5 seconds (and when forced). */
typedef struct {
  double start, last;
} export_progress;

static void export_progress_line(export_progress *p, int force, const char *what, int64_t done,
                                 int64_t total) {
  double t = export_now_seconds();
  if (!force && t - p->last < 5.0) return;
  p->last = t;
  double elapsed = t - p->start;
  fprintf(stderr, "export: %s %lld/%lld docs, %.1f s, %.0f docs/s\n", what, (long long)done,
          (long long)total, elapsed, elapsed > 0 ? (double)done / elapsed : 0.0);
}

static char *export_concat(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  char *s = malloc(n + m + 1);
  if (s) {
    memcpy(s, a, n);
    memcpy(s + n, b, m + 1);
  }
  return s;
}

/* Opens the GPU transposer on CUDA device `ordinal` for n_cols term ranks: loads the CUDA module
 * and its table and opens a session (sized for one row per block until export_ciff reserves the
 * largest block of its pass 1). Returns 0 with t->session set, or ERR_DEVICE (module missing or
 * of another version, no device: the reason recorded) / ERR_ARG / ERR_NOMEM. */
static int export_transposer_open(export_transposer *t, int ordinal, int32_t n_cols) {
  char why[CUDA_MODULE_WHY_MAX];
  if (cuda_module_api(&t->cuda, why, sizeof why)) return err_set(ERR_DEVICE, "%s", why);
  return t->cuda->transpose_open(ordinal, n_cols, EXPORT_BLOCK_DOCS, 0, t->name, sizeof t->name,
                                 &t->session);
}

/* Picks where the CIFF passes transpose (--device): cpu; cuda[:N], where a failure to open is the
 * error; auto, where it is one line on stderr and the CPU. Returns 0 or an error code. */
static int export_transposer_pick(export_transposer *t, const export_options *o, int32_t n_cols) {
  snprintf(t->name, sizeof t->name, "cpu");
  if (o->device.kind == CLI_DEVICE_CPU) return 0;
  int rc = export_transposer_open(t, o->device.ordinal, n_cols);
  if (rc == 0) return 0;
  t->session = NULL;
  snprintf(t->name, sizeof t->name, "cpu");
  if (cli_device_fallback(&o->device, rc, "spladex export", "transposing on the CPU")) return 0;
  if (rc == ERR_DEVICE) return err_wrap(rc, "--device %s: no usable CUDA device", o->device.text);
  return err_wrap(rc, "--device %s", o->device.text);
}

static void export_transposer_close(export_transposer *t) {
  if (t->session) t->cuda->transpose_close(t->session);
  t->session = NULL;
}

/* One pass over the source in blocks, calling row(ctx, rows, i) for every document; progress
 * lines name the pass `what`. Returns 0 or the first error. */
static int export_each_row(inv_source *src, const char *what,
                           int (*row)(void *ctx, const inv_rows *rows, int64_t i), void *ctx) {
  int rc;
  int64_t N = inv_source_docs(src);
  export_progress p = {export_now_seconds(), export_now_seconds()};
  inv_rows rows;
  inv_source_rewind(src);
  for (;;) {
    if ((rc = inv_source_next(src, EXPORT_BLOCK_DOCS, &rows))) return rc;
    if (rows.n_docs == 0) break;
    for (int64_t i = 0; i < rows.n_docs; i++)
      if ((rc = row(ctx, &rows, i))) return rc;
    export_progress_line(&p, 0, what, rows.first_doc + rows.n_docs, N);
  }
  export_progress_line(&p, 1, what, N, N);
  return 0;
}

/* What an export wrote, for PATH.meta.json. */
typedef struct {
  int64_t nnz;   /* terms written over all documents (placeholders not counted) */
  int64_t empty; /* documents with no term */
} export_counts;

typedef struct {
  jsonl_writer *w;
  int float_weights;
  export_counts *counts;
} export_jsonl_pass;

static int export_jsonl_row(void *ctx, const inv_rows *rows, int64_t i) {
  export_jsonl_pass *j = ctx;
  int64_t a = rows->indptr[i], b = rows->indptr[i + 1];
  int rc = j->float_weights ? jsonl_write_doc_float(j->w, rows->doc_ids[i], rows->vocab_ids + a,
                                                    rows->weights + a, b - a)
                            : jsonl_write_doc(j->w, rows->doc_ids[i], rows->vocab_ids + a,
                                              rows->tfs + a, b - a);
  j->counts->nnz += b - a;
  if (rc) return err_wrap(rc, "document %lld", (long long)(rows->first_doc + i));
  return 0;
}

static int export_jsonl(inv_source *src, const export_options *o, const char *tmp,
                        export_counts *counts) {
  int rc = 0;
  jsonl_writer *w = NULL;
  int V = inv_source_vocab_size(src);
  const char **terms = malloc((size_t)V * sizeof *terms + 1);
  if (!terms) return err_set(ERR_NOMEM, "out of memory");
  for (int v = 0; v < V; v++) terms[v] = inv_source_term(src, v);
  rc = jsonl_writer_open(tmp, o->gzip, terms, V, &w);
  if (rc) goto fail;
  export_jsonl_pass pass = {w, o->float_weights, counts};
  if ((rc = export_each_row(src, "jsonl", export_jsonl_row, &pass))) goto fail;
  int64_t empty = jsonl_writer_empty_docs(w);
  counts->empty = empty;
  rc = jsonl_writer_close(w);
  w = NULL;
  if (rc) goto fail;
  if (empty && o->float_weights)
    fprintf(stderr, "export: %lld documents have no term (written with an empty vector)\n",
            (long long)empty);
  else if (empty)
    fprintf(stderr, "export: %lld documents had no weight >= 1 and got {\"%s\": 1}\n",
            (long long)empty, JSONL_EMPTY_TERM);
fail:
  jsonl_writer_abort(w);
  free(terms);
  return rc;
}

/* The stored float weights as the BigANN'23 CSR binary (io/export_csr.h), one row per document
 * in global order, columns = vocab ids. */
typedef struct {
  csr_writer *w;
  export_counts *counts;
} export_csr_pass;

static int export_csr_row(void *ctx, const inv_rows *rows, int64_t i) {
  export_csr_pass *c = ctx;
  int64_t a = rows->indptr[i], b = rows->indptr[i + 1];
  c->counts->empty += a == b;
  return csr_write_row(c->w, rows->vocab_ids + a, rows->weights + a, b - a);
}

static int export_csr(inv_source *src, const export_options *o, const char *tmp,
                      export_counts *counts) {
  int rc = 0;
  csr_writer *w = NULL;
  int64_t N = inv_source_docs(src);
  if ((rc = csr_writer_open(tmp, o->gzip, inv_source_vocab_size(src), &w))) return rc;
  export_csr_pass pass = {w, counts};
  if ((rc = export_each_row(src, "csr", export_csr_row, &pass))) goto fail;
  counts->nnz = csr_writer_nnz(w);
  rc = csr_writer_close(w);
  w = NULL;
  if (rc) goto fail;
  fprintf(stderr, "export: csr %lld rows x %d columns, %lld nonzeros\n", (long long)N,
          inv_source_vocab_size(src), (long long)counts->nnz);
fail:
  csr_writer_abort(w);
  return rc;
}

/* gpu: the open GPU transposer, or one with session NULL for the CPU. */
static int export_ciff(inv_source *src, const export_options *o, const char *tmp,
                       export_transposer *gpu, export_counts *counts) {
  int rc = 0;
  int V = inv_source_vocab_size(src);
  int64_t N = inv_source_docs(src);
  int64_t *df = calloc((size_t)V + 1, sizeof *df); /* (V) by rank */
  int64_t *cf = calloc((size_t)V + 1, sizeof *cf); /* (V) by rank */
  inv_range *ranges = NULL;
  int n_ranges = 0;
  inv_block *block = NULL;
  ciff_writer *docs = NULL, *out = NULL;
  char *docs_path = export_concat(tmp, ".docs");
  char description[512];
  if (!df || !cf || !docs_path) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  if (N > INT32_MAX) {
    rc = err_set(ERR_FORMAT, "%s: %lld documents, more than CIFF's int32 docids allow", o->input,
                 (long long)N);
    goto fail;
  }
  export_progress p = {export_now_seconds(), export_now_seconds()};

  /* Pass 1: df and cf per term, DocRecords spooled to a side file, the header's sums. */
  if ((rc = ciff_writer_open(docs_path, 0, &docs))) goto fail;
  int64_t total_terms = 0, max_block_nnz = 0, docs_with_terms = 0;
  inv_rows rows;
  inv_source_rewind(src);
  for (;;) {
    if ((rc = inv_source_next(src, EXPORT_BLOCK_DOCS, &rows))) goto fail;
    if (rows.n_docs == 0) break;
    if (rows.indptr[rows.n_docs] > max_block_nnz) max_block_nnz = rows.indptr[rows.n_docs];
    for (int64_t i = 0; i < rows.n_docs; i++) {
      int64_t doclength = 0;
      for (int64_t j = rows.indptr[i]; j < rows.indptr[i + 1]; j++) {
        df[rows.ranks[j]]++;
        cf[rows.ranks[j]] += rows.tfs[j];
        doclength += rows.tfs[j];
      }
      if (doclength > INT32_MAX) {
        rc = err_set(ERR_FORMAT, "document %lld: length %lld does not fit CIFF's int32",
                     (long long)(rows.first_doc + i), (long long)doclength);
        goto fail;
      }
      total_terms += doclength;
      docs_with_terms += rows.indptr[i + 1] > rows.indptr[i];
      rc = ciff_write_doc_record(docs, (int32_t)(rows.first_doc + i), rows.doc_ids[i],
                                 (int32_t)doclength);
      if (rc) goto fail;
    }
    export_progress_line(&p, 0, "ciff pass 1 (counting)", rows.first_doc + rows.n_docs, N);
  }
  rc = ciff_writer_close(docs);
  docs = NULL;
  if (rc) goto fail;

  int64_t n_lists = 0, n_postings = 0;
  for (int k = 0; k < V; k++) {
    if (!df[k]) continue;
    n_lists++;
    n_postings += df[k];
    if (k > 0 && df[k - 1] &&
        !strcmp(inv_source_term(src, inv_source_term_of_rank(src, k)),
                inv_source_term(src, inv_source_term_of_rank(src, k - 1)))) {
      rc = err_set(ERR_FORMAT, "the vocabulary holds the term \"%s\" twice (ids %d and %d)",
                   inv_source_term(src, inv_source_term_of_rank(src, k)),
                   inv_source_term_of_rank(src, k - 1), inv_source_term_of_rank(src, k));
      goto fail;
    }
  }

  int64_t reserve = o->memory / 2 < EXPORT_RESERVE_MAX ? o->memory / 2 : EXPORT_RESERVE_MAX;
  rc = inv_plan(df, V, o->memory - reserve, &ranges, &n_ranges);
  if (rc) {
    for (int k = 0; k < V; k++)
      if (df[k] * INV_POSTING_BYTES > o->memory - reserve) {
        err_set(rc, "term \"%s\" has %lld postings: --memory %lld bytes leaves %lld for one "
                    "pass's postings (%d bytes each); give --memory at least %lld",
                inv_source_term(src, inv_source_term_of_rank(src, k)), (long long)df[k],
                (long long)o->memory, (long long)(o->memory - reserve), INV_POSTING_BYTES,
                (long long)(2 * df[k] * INV_POSTING_BYTES));
        break;
      }
    goto fail;
  }

  /* The postings passes read the same blocks as pass 1: room for its largest, once. */
  if (gpu->session &&
      (rc = gpu->cuda->transpose_reserve(gpu->session, EXPORT_BLOCK_DOCS, max_block_nnz)))
    goto fail;

  if (o->description) snprintf(description, sizeof description, "%s", o->description);
  else
    snprintf(description, sizeof description,
             "spladex %s export of SPLADE vectors (model %s, max_length %d), weights "
             "round(w * %g) (float32 product, ties to even; 0 left out), special tokens %s; "
             "%lld documents, %lld postings lists, %lld postings",
             SPLADEX_VERSION, inv_source_model(src), inv_source_max_length(src),
             (double)o->scale, o->drop_special ? "dropped" : "kept", (long long)N,
             (long long)n_lists, (long long)n_postings);
  counts->nnz = n_postings;
  counts->empty = N - docs_with_terms;
  ciff_header h = {
      .num_postings_lists = (int32_t)n_lists,
      .num_docs = (int32_t)N,
      .total_postings_lists = (int32_t)n_lists,
      .total_docs = (int32_t)N,
      .total_terms_in_collection = total_terms,
      .average_doclength = N ? (double)total_terms / (double)N : 0.0,
      .description = description,
  };
  if ((rc = ciff_writer_open(tmp, o->gzip, &out))) goto fail;
  if ((rc = ciff_write_header(out, &h))) goto fail;

  /* One pass per range of terms, each writing its postings lists in byte order. */
  int passes = 0, planned = 0;
  for (int r = 0; r < n_ranges; r++) planned += ranges[r].n_postings > 0;
  for (int r = 0; r < n_ranges; r++) {
    if (ranges[r].n_postings == 0) continue;
    passes++;
    if ((rc = inv_block_open(df, ranges[r], &block))) goto fail;
    inv_source_rewind(src);
    char what[64];
    snprintf(what, sizeof what, "ciff pass %d/%d (postings)", passes + 1, planned + 1);
    for (;;) {
      if ((rc = inv_source_next(src, EXPORT_BLOCK_DOCS, &rows))) goto fail;
      if (rows.n_docs == 0) break;
      if (gpu->session) {
        const int32_t *colptr, *rowind, *tfs;
        if ((rc = gpu->cuda->transpose_run(gpu->session, rows.indptr, rows.ranks, rows.tfs,
                                           rows.n_docs, &colptr, &rowind, &tfs)))
          goto fail;
        rc = inv_block_add_csc(block, rows.first_doc, colptr, rowind, tfs);
      } else {
        rc = inv_block_add_rows(block, &rows);
      }
      if (rc) goto fail;
      export_progress_line(&p, 0, what, rows.first_doc + rows.n_docs, N);
    }
    for (int32_t k = ranges[r].rank_lo; k < ranges[r].rank_hi; k++) {
      if (!df[k]) continue;
      const int32_t *docids, *tfs;
      int64_t n, list_cf;
      if ((rc = inv_block_postings(block, k, &docids, &tfs, &n))) goto fail;
      const char *term = inv_source_term(src, inv_source_term_of_rank(src, k));
      if ((rc = ciff_write_postings_list(out, term, docids, tfs, n, &list_cf))) goto fail;
      SPX_ASSERT(list_cf == cf[k]);
    }
    inv_block_free(block);
    block = NULL;
  }
  if ((rc = ciff_writer_append_file(out, docs_path))) goto fail;
  int64_t bytes = ciff_writer_bytes(out);
  rc = ciff_writer_close(out);
  out = NULL;
  if (rc) goto fail;
  export_progress_line(&p, 1, "ciff done,", N, N);
  fprintf(stderr,
          "export: ciff %lld postings lists, %lld postings, %lld documents, %d pass(es) over "
          "the shards for postings, transposed on %s, %lld bytes before compression\n",
          (long long)n_lists, (long long)n_postings, (long long)N, passes, gpu->name,
          (long long)bytes);
fail:
  inv_block_free(block);
  ciff_writer_abort(docs);
  ciff_writer_abort(out);
  if (docs_path) remove(docs_path);
  free(docs_path);
  free(ranges);
  free(df);
  free(cf);
  return rc;
}

/* PATH.meta.json beside the finished export (io/export_meta.h). */
static int export_write_meta(const inv_source *src, const export_options *o,
                             const export_counts *counts, int n_dropped) {
  int V = inv_source_vocab_size(src), k = 0;
  const char **dropped = malloc((size_t)n_dropped * sizeof *dropped + 1);
  if (!dropped) return err_set(ERR_NOMEM, "out of memory");
  for (int v = 0; v < V && k < n_dropped; v++)
    if (inv_is_special_term(inv_source_term(src, v))) dropped[k++] = inv_source_term(src, v);
  meta_info m = {
      .kind = "export",
      .format = o->format,
      .path = o->output,
      .source = o->input,
      .model = inv_source_model(src),
      .float_weights = o->float_weights,
      .quant_scale = o->scale,
      .drop_special = o->drop_special,
      .dropped = dropped,
      .n_dropped = k,
      .max_length = inv_source_max_length(src),
      .threshold = inv_source_threshold(src),
      .top_k = inv_source_top_k(src),
      .vocab_size = V,
      .vectors = inv_source_docs(src),
      .nnz = counts->nnz,
      .empty_vectors = counts->empty,
  };
  int rc = meta_write(&m);
  free(dropped);
  return rc;
}

int cmd_export(int argc, char **argv) {
  export_options o = {.scale = 100.0f, .memory = (int64_t)2 << 30};
  const char *device = "auto", *weights = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      export_usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--drop-special")) {
      o.drop_special = 1;
      continue;
    }
    int takes_value = !strcmp(a, "--input") || !strcmp(a, "--output") ||
                      !strcmp(a, "--quant-scale") || !strcmp(a, "--description") ||
                      !strcmp(a, "--memory") || !strcmp(a, "--device") ||
                      !strcmp(a, "--weights");
    if (takes_value) {
      if (i + 1 >= argc) return err_set(ERR_ARG, "%s needs a value", a);
      const char *v = argv[++i];
      if (!strcmp(a, "--input")) o.input = v;
      else if (!strcmp(a, "--output")) o.output = v;
      else if (!strcmp(a, "--description")) o.description = v;
      else if (!strcmp(a, "--device")) device = v;
      else if (!strcmp(a, "--weights")) weights = v;
      else if (!strcmp(a, "--quant-scale")) {
        if (cli_parse_float(a, v, 0, 1, 1e9, &o.scale)) return ERR_ARG;
      } else if (cli_parse_size(a, v, &o.memory)) {
        return ERR_ARG;
      }
    } else if (a[0] == '-' && a[1]) {
      return err_set(ERR_ARG, "unknown option %s (see spladex export --help)", a);
    } else if (!o.format) {
      o.format = a;
    } else {
      return err_set(ERR_ARG, "unexpected argument '%s' (see spladex export --help)", a);
    }
  }
  if (!o.format || (strcmp(o.format, "jsonl") && strcmp(o.format, "ciff") &&
                     strcmp(o.format, "csr")))
    return err_set(ERR_ARG, "give the format, jsonl, ciff or csr (see spladex export --help)");
  if (weights && strcmp(weights, "int") && strcmp(weights, "float"))
    return err_set(ERR_ARG, "--weights '%s': expected int or float", weights);
  if (weights && strcmp(o.format, "jsonl"))
    return err_set(ERR_ARG, "--weights is for jsonl only (ciff holds integers, csr floats)");
  o.float_weights = !strcmp(o.format, "csr") || (weights && !strcmp(weights, "float"));
  if (!o.input) return err_set(ERR_ARG, "--input DIR is required");
  if (!o.output) return err_set(ERR_ARG, "--output PATH is required");
  if (o.memory < 1024) return err_set(ERR_ARG, "--memory %lld: too small", (long long)o.memory);
  o.gzip = export_ends_with(o.output, ".gz");
  if (cli_parse_device(device, &o.device)) return ERR_ARG;
  if (strcmp(o.format, "ciff") && o.device.kind == CLI_DEVICE_CUDA)
    return err_set(ERR_ARG, "--device %s: export %s has no transpose to run on a GPU (only "
                            "ciff does); give auto or cpu, or leave --device out", o.device.text,
                   o.format);

  int rc = 0;
  inv_source *src = NULL;
  export_transposer gpu = {0};
  char *tmp = export_concat(o.output, ".tmp");
  if (!tmp) return err_set(ERR_NOMEM, "out of memory");
  if ((rc = inv_source_open(o.input, o.scale, &src))) goto fail;
  int n_dropped = 0;
  if (o.drop_special && (n_dropped = inv_source_drop_special(src)) < 0) {
    rc = n_dropped;
    goto fail;
  }
  inv_source_keep_all(src, o.float_weights);
  /* The device before any output or pass, so that --device cuda fails at once, alone. */
  if (!strcmp(o.format, "ciff") &&
      (rc = export_transposer_pick(&gpu, &o, inv_source_vocab_size(src))))
    goto fail;
  fprintf(stderr, "export: %s, %lld documents in %d shard(s), vocabulary %d, scale %g -> %s\n",
          o.input, (long long)inv_source_docs(src), inv_source_shards(src),
          inv_source_vocab_size(src), (double)o.scale, o.output);
  if (!inv_source_verified(src))
    fprintf(stderr, "export: note: %s has no job.json, so only gaps between shards can be "
                    "detected, not missing shards after the last one\n", o.input);
  if (!strcmp(o.format, "ciff"))
    fprintf(stderr, "export: ciff postings transposed on %s%s\n", gpu.name,
            gpu.session ? " with cuSPARSE csr2csc" : "");
  export_counts counts = {0, 0};
  rc = !strcmp(o.format, "jsonl") ? export_jsonl(src, &o, tmp, &counts)
       : !strcmp(o.format, "csr") ? export_csr(src, &o, tmp, &counts)
                                  : export_ciff(src, &o, tmp, &gpu, &counts);
  if (!rc) rc = atomic_publish(tmp, o.output); /* fsync, rename, fsync the directory */
  if (!rc) rc = export_write_meta(src, &o, &counts, n_dropped);
fail:
  if (rc) remove(tmp);
  export_transposer_close(&gpu);
  inv_source_close(src);
  free(tmp);
  return rc;
}
