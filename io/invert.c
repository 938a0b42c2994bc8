/* invert: the shard directory as a stream of quantized rows, and the per-range transpose
 * (see invert.h). The directory is checked once up front so that an export never starts on an
 * incomplete job; the shards are then read one at a time, a block of rows per call, so the
 * memory held is one reader window plus the current range's postings. */
#include "invert.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "grow.h"
#include "jobfile.h"
#include "shard.h"
#include "shard_dir.h"

/* V: vocabulary size, K: number of shards, N: number of documents, E: entries in a block. */

struct inv_source {
  char *dir;
  float scale;
  int n_shards;
  int verified;        /* job.json confirmed the number of shards and documents */
  sdir_listing listing; /* the shard files; complete, so shards[i] is shard i */
  int64_t *first_doc;  /* (K) */
  int64_t *shard_docs; /* (K) */
  int64_t n_docs;
  char model[256];
  int max_length, top_k;
  float threshold;
  int keep_all;         /* inv_source_keep_all */
  unsigned char *drop;  /* (V) 1: the term is left out (inv_source_drop_special); NULL: none */

  int vocab_size;
  char **terms;        /* (V) pointers into term_arena */
  char *term_arena;
  int32_t *rank;       /* (V) vocab id -> byte-order rank */
  int32_t *by_rank;    /* (V) rank -> vocab id */

  /* iteration */
  int current;         /* shard being read, n_shards at the end */
  shard_reader *reader;
  int64_t row;         /* next row within the current shard */
  int64_t *indptr;     /* (cap_docs + 1) */
  int64_t cap_docs;
  int32_t *vocab_ids, *ranks, *tfs; /* (cap_entries) */
  float *weights;                    /* (cap_entries) */
  int64_t cap_entries;
};

int32_t inv_quantize(float w, float scale) {
  /* A float32 product, as numpy computes float32 data * a Python scalar. */
  float p = w * scale;
  if (!(p >= 0.5f)) return 0; /* also NaN */
  if (p >= 2147483520.0f) return INT32_MAX; /* the largest float below 2^31 */
  return (int32_t)rintf(p); /* default rounding mode: to nearest, ties to even (np.rint) */
}

int inv_is_special_term(const char *term) {
  static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", /* BERT */
                                        "<s>",   "<pad>", "</s>",  "<unk>", "<mask>"}; /* RoBERTa */
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
    if (!strcmp(term, special[i])) return 1;
  return 0;
}

/* ---- vocabulary ---- */

typedef struct {
  const char *term;
  int32_t id;
} inv_term_entry;

static int inv_cmp_term(const void *a, const void *b) {
  const inv_term_entry *x = a, *y = b;
  int c = strcmp(x->term, y->term);
  if (c) return c;
  return (x->id > y->id) - (x->id < y->id);
}

static int inv_read_vocab(inv_source *s, const shard_reader *r, const char *path) {
  int rc = 0;
  inv_term_entry *entries = NULL;
  int V = s->vocab_size;
  size_t total = 0;
  for (int v = 0; v < V; v++) {
    const char *t = shard_reader_term(r, v);
    if (!t) return err_set(ERR_FORMAT, "%s: /vocab has no term %d", path, v);
    total += strlen(t) + 1;
  }
  s->term_arena = malloc(total ? total : 1);
  s->terms = malloc((size_t)V * sizeof *s->terms + 1);
  s->rank = malloc((size_t)V * sizeof *s->rank + 1);
  s->by_rank = malloc((size_t)V * sizeof *s->by_rank + 1);
  entries = malloc((size_t)V * sizeof *entries + 1);
  if (!s->term_arena || !s->terms || !s->rank || !s->by_rank || !entries) {
    rc = err_set(ERR_NOMEM, "%s: out of memory for a vocabulary of %d terms", path, V);
    goto fail;
  }
  char *p = s->term_arena;
  for (int v = 0; v < V; v++) {
    const char *t = shard_reader_term(r, v);
    size_t n = strlen(t) + 1;
    memcpy(p, t, n);
    s->terms[v] = p;
    entries[v].term = p;
    entries[v].id = v;
    p += n;
  }
  qsort(entries, (size_t)V, sizeof *entries, inv_cmp_term);
  for (int k = 0; k < V; k++) {
    s->by_rank[k] = entries[k].id;
    s->rank[entries[k].id] = k;
  }
fail:
  free(entries);
  return rc;
}

static int inv_check_vocab(const inv_source *s, const shard_reader *r, const char *path) {
  const shard_info *info = shard_reader_info(r);
  if (info->vocab_size != s->vocab_size)
    return err_set(ERR_MISMATCH, "%s: vocab_size %d, but %s has %d", path, info->vocab_size,
                   s->listing.shards[0].path, s->vocab_size);
  for (int v = 0; v < s->vocab_size; v++) {
    const char *t = shard_reader_term(r, v);
    if (!t || strcmp(t, s->terms[v]))
      return err_set(ERR_MISMATCH, "%s: vocabulary term %d is \"%s\", but \"%s\" in %s", path, v,
                     t ? t : "(none)", s->terms[v], s->listing.shards[0].path);
  }
  return 0;
}

/* ---- the source ---- */

int inv_source_open(const char *dir, float scale, inv_source **out) {
  int rc = 0;
  job_params job;
  sdir_listing listing = {0};
  shard_reader *r = NULL;
  inv_source *s = NULL;
  *out = NULL;
  if (!(scale > 0.0f) || !isfinite(scale))
    return err_set(ERR_ARG, "quantization scale %g must be a positive number", (double)scale);
  struct stat st;
  if (stat(dir, &st)) return err_set(ERR_IO, "%s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return err_set(ERR_IO, "%s: not a shard directory", dir);
  /* Complete by io/shard_dir.h's rule (the one `verify` reports by), or refused. */
  int no_job = job_read(dir, &job);
  if (no_job < 0) return no_job;
  const job_params *jp = no_job ? NULL : &job;
  if ((rc = sdir_list(dir, &listing)) < 0) return rc;
  if ((rc = sdir_check_complete(&listing, jp)) < 0) goto fail;

  s = calloc(1, sizeof *s);
  if (!s) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  int n_shards = (int)listing.n_shards;
  s->listing = listing;
  memset(&listing, 0, sizeof listing);
  s->scale = scale;
  s->n_shards = n_shards;
  s->verified = !no_job;
  s->dir = malloc(strlen(dir) + 1);
  s->first_doc = calloc((size_t)n_shards + 1, sizeof *s->first_doc);
  s->shard_docs = calloc((size_t)n_shards + 1, sizeof *s->shard_docs);
  if (!s->dir || !s->first_doc || !s->shard_docs) {
    rc = err_set(ERR_NOMEM, "out of memory");
    goto fail;
  }
  strcpy(s->dir, dir);
  s->current = n_shards;

  /* Check every shard once (structure, tiling, attributes, one vocab_size) and read the
   * vocabulary of the first. */
  sdir_tiling tiling;
  sdir_tiling_init(&tiling, jp, n_shards);
  for (int i = 0; i < n_shards; i++) {
    shard_info info;
    if ((rc = sdir_check_shard(&tiling, i, s->listing.shards[i].path, &info)) < 0) goto fail;
    s->first_doc[i] = info.first_doc;
    s->shard_docs[i] = info.n_docs;
    s->n_docs += info.n_docs;
  }
  if (n_shards > 0) {
    if ((rc = shard_reader_open(s->listing.shards[0].path, &r)) < 0) goto fail;
    const shard_info *info = shard_reader_info(r);
    s->vocab_size = info->vocab_size;
    snprintf(s->model, sizeof s->model, "%s", info->model);
    s->max_length = info->max_length;
    s->threshold = info->threshold;
    s->top_k = info->top_k;
    if ((rc = inv_read_vocab(s, r, s->listing.shards[0].path)) < 0) goto fail;
    shard_reader_close(r);
    r = NULL;
  }
  *out = s;
  return 0;
fail:
  shard_reader_close(r);
  sdir_listing_free(&listing);
  inv_source_close(s);
  return rc;
}

int inv_source_drop_special(inv_source *s) {
  int n = 0;
  if (!s->drop) {
    s->drop = calloc((size_t)s->vocab_size + 1, 1);
    if (!s->drop) return err_set(ERR_NOMEM, "out of memory");
  }
  for (int v = 0; v < s->vocab_size; v++)
    if (inv_is_special_term(s->terms[v])) {
      s->drop[v] = 1;
      n++;
    }
  return n;
}

void inv_source_keep_all(inv_source *s, int keep_all) { s->keep_all = keep_all != 0; }
int inv_source_max_length(const inv_source *s) { return s->max_length; }
float inv_source_threshold(const inv_source *s) { return s->threshold; }
int inv_source_top_k(const inv_source *s) { return s->top_k; }
int64_t inv_source_docs(const inv_source *s) { return s->n_docs; }
int inv_source_verified(const inv_source *s) { return s->verified; }
int inv_source_shards(const inv_source *s) { return s->n_shards; }
int inv_source_vocab_size(const inv_source *s) { return s->vocab_size; }
const char *inv_source_model(const inv_source *s) { return s->model; }
const char *inv_source_term(const inv_source *s, int32_t v) { return s->terms[v]; }
int32_t inv_source_term_of_rank(const inv_source *s, int32_t k) { return s->by_rank[k]; }

int inv_source_rewind(inv_source *s) {
  shard_reader_close(s->reader);
  s->reader = NULL;
  s->current = 0;
  s->row = 0;
  return 0;
}

static int inv_grow(inv_source *s, int64_t docs, int64_t entries) {
  if (docs > s->cap_docs) {
    int64_t *p = realloc(s->indptr, (size_t)(docs + 1) * sizeof *p);
    if (!p) return err_set(ERR_NOMEM, "out of memory for %lld rows", (long long)docs);
    s->indptr = p;
    s->cap_docs = docs;
  }
  if (entries > s->cap_entries) {
    int64_t cap = entries + entries / 4 + 1024;
    int32_t *a = realloc(s->vocab_ids, (size_t)cap * sizeof *a);
    if (a) s->vocab_ids = a;
    int32_t *b = realloc(s->ranks, (size_t)cap * sizeof *b);
    if (b) s->ranks = b;
    int32_t *c = realloc(s->tfs, (size_t)cap * sizeof *c);
    if (c) s->tfs = c;
    float *d = realloc(s->weights, (size_t)cap * sizeof *d);
    if (d) s->weights = d;
    if (!a || !b || !c || !d) return err_set(ERR_NOMEM, "out of memory for %lld entries", (long long)cap);
    s->cap_entries = cap;
  }
  return 0;
}

int inv_source_next(inv_source *s, int64_t max_docs, inv_rows *rows) {
  int rc = 0;
  memset(rows, 0, sizeof *rows);
  if (max_docs < 1) max_docs = 1;
  while (s->current < s->n_shards) {
    const char *path = s->listing.shards[s->current].path;
    if (!s->reader) {
      rc = shard_reader_open(path, &s->reader);
      if (rc) return rc;
      const shard_info *info = shard_reader_info(s->reader);
      if (info->first_doc != s->first_doc[s->current] ||
          info->n_docs != s->shard_docs[s->current])
        return err_set(ERR_MISMATCH, "%s: changed while being exported", path);
      rc = inv_check_vocab(s, s->reader, path);
      if (rc) return rc;
      s->row = 0;
    }
    int64_t left = s->shard_docs[s->current] - s->row;
    if (left == 0) {
      shard_reader_close(s->reader);
      s->reader = NULL;
      s->current++;
      continue;
    }
    int64_t n = left < max_docs ? left : max_docs;
    const char *const *doc_ids;
    const int64_t *indptr;
    const int32_t *indices;
    const float *values;
    rc = shard_reader_rows(s->reader, s->row, n, &doc_ids, &indptr, &indices, &values);
    if (rc) return rc;
    rc = inv_grow(s, n, indptr[n]);
    if (rc) return rc;
    int64_t kept = 0;
    s->indptr[0] = 0;
    for (int64_t i = 0; i < n; i++) {
      int32_t previous = -1;
      for (int64_t j = indptr[i]; j < indptr[i + 1]; j++) {
        int32_t v = indices[j];
        if (v <= previous || v >= s->vocab_size)
          return err_set(ERR_FORMAT,
                         "%s: row %lld: vocab index %d is out of range or not ascending", path,
                         (long long)(s->row + i), v);
        previous = v;
        if (!isfinite(values[j]))
          return err_set(ERR_FORMAT, "%s: row %lld: weight of term %d is not finite", path,
                         (long long)(s->row + i), v);
        int32_t q = inv_quantize(values[j], s->scale);
        if ((q < 1 && !s->keep_all) || (s->drop && s->drop[v])) continue;
        s->vocab_ids[kept] = v;
        s->ranks[kept] = s->rank[v];
        s->tfs[kept] = q;
        s->weights[kept] = values[j];
        kept++;
      }
      s->indptr[i + 1] = kept;
    }
    rows->first_doc = s->first_doc[s->current] + s->row;
    rows->n_docs = n;
    rows->doc_ids = doc_ids;
    rows->indptr = s->indptr;
    rows->vocab_ids = s->vocab_ids;
    rows->ranks = s->ranks;
    rows->tfs = s->tfs;
    rows->weights = s->weights;
    s->row += n;
    return 0;
  }
  return 0;
}

void inv_source_close(inv_source *s) {
  if (!s) return;
  shard_reader_close(s->reader);
  sdir_listing_free(&s->listing);
  free(s->first_doc);
  free(s->shard_docs);
  free(s->dir);
  free(s->terms);
  free(s->term_arena);
  free(s->rank);
  free(s->by_rank);
  free(s->indptr);
  free(s->vocab_ids);
  free(s->ranks);
  free(s->tfs);
  free(s->weights);
  free(s->drop);
  free(s);
}

/* ---- planning ---- */

int inv_plan(const int64_t *df_by_rank, int32_t n_ranks, int64_t budget_bytes, inv_range **ranges,
             int *n_ranges) {
  *ranges = NULL;
  *n_ranges = 0;
  int64_t budget = budget_bytes / INV_POSTING_BYTES;
  size_t cap = 0;
  int n = 0;
  inv_range *out = NULL;
  inv_range current = {0, 0, 0};
  for (int32_t k = 0; k < n_ranks; k++) {
    int64_t df = df_by_rank[k];
    if (df > budget) {
      free(out);
      return err_set(ERR_ARG,
                     "term rank %d has %lld postings (%lld bytes), more than the memory budget "
                     "of %lld bytes for one pass",
                     k, (long long)df, (long long)df * INV_POSTING_BYTES,
                     (long long)budget_bytes);
    }
    if (current.n_postings + df > budget) {
      if (grow(&out, &cap, (size_t)n + 1, sizeof *out)) goto nomem;
      out[n++] = current;
      current.rank_lo = k;
      current.n_postings = 0;
    }
    current.rank_hi = k + 1;
    current.n_postings += df;
  }
  if (grow(&out, &cap, (size_t)n + 1, sizeof *out)) goto nomem;
  out[n++] = current;
  *ranges = out;
  *n_ranges = n;
  return 0;
nomem:
  free(out);
  return err_set(ERR_NOMEM, "out of memory planning the inversion");
}

/* ---- one range's postings ---- */

struct inv_block {
  inv_range range;
  int64_t *offset; /* (width + 1) start of each term's postings */
  int64_t *fill;   /* (width) postings placed so far */
  int32_t *docids; /* (n_postings) */
  int32_t *tfs;    /* (n_postings) */
};

int inv_block_open(const int64_t *df_by_rank, inv_range r, inv_block **out) {
  *out = NULL;
  inv_block *b = calloc(1, sizeof *b);
  if (!b) return err_set(ERR_NOMEM, "out of memory");
  size_t width = (size_t)(r.rank_hi - r.rank_lo);
  b->range = r;
  b->offset = malloc((width + 1) * sizeof *b->offset);
  b->fill = calloc(width + 1, sizeof *b->fill);
  b->docids = malloc((size_t)r.n_postings * sizeof *b->docids + 1);
  b->tfs = malloc((size_t)r.n_postings * sizeof *b->tfs + 1);
  if (!b->offset || !b->fill || !b->docids || !b->tfs) {
    inv_block_free(b);
    return err_set(ERR_NOMEM, "out of memory for %lld postings (raise or lower --memory?)",
                   (long long)r.n_postings);
  }
  b->offset[0] = 0;
  for (size_t k = 0; k < width; k++) b->offset[k + 1] = b->offset[k] + df_by_rank[r.rank_lo + k];
  SPX_ASSERT(b->offset[width] == r.n_postings);
  *out = b;
  return 0;
}

int inv_block_add_rows(inv_block *b, const inv_rows *rows) {
  const int32_t lo = b->range.rank_lo, hi = b->range.rank_hi;
  for (int64_t i = 0; i < rows->n_docs; i++) {
    int32_t docid = (int32_t)(rows->first_doc + i);
    for (int64_t j = rows->indptr[i]; j < rows->indptr[i + 1]; j++) {
      int32_t k = rows->ranks[j];
      if (k < lo || k >= hi) continue;
      int64_t slot = k - lo, at = b->offset[slot] + b->fill[slot];
      if (at >= b->offset[slot + 1])
        return err_set(ERR_MISMATCH, "term rank %d: more postings than the first pass counted", k);
      b->docids[at] = docid;
      b->tfs[at] = rows->tfs[j];
      b->fill[slot]++;
    }
  }
  return 0;
}

int inv_block_add_csc(inv_block *b, int64_t first_doc, const int32_t *colptr,
                      const int32_t *rowind, const int32_t *tfs) {
  const int32_t lo = b->range.rank_lo, hi = b->range.rank_hi;
  for (int32_t k = lo; k < hi; k++) {
    int64_t slot = k - lo, n = (int64_t)colptr[k + 1] - colptr[k];
    SPX_ASSERT(n >= 0);
    if (n == 0) continue;
    int64_t at = b->offset[slot] + b->fill[slot];
    if (at + n > b->offset[slot + 1])
      return err_set(ERR_MISMATCH, "term rank %d: more postings than the first pass counted", k);
    const int32_t *rows = rowind + colptr[k];
    for (int64_t i = 0; i < n; i++) b->docids[at + i] = (int32_t)(first_doc + rows[i]);
    memcpy(b->tfs + at, tfs + colptr[k], (size_t)n * sizeof *tfs);
    b->fill[slot] += n;
  }
  return 0;
}

int inv_block_postings(const inv_block *b, int32_t k, const int32_t **docids, const int32_t **tfs,
                       int64_t *n) {
  SPX_ASSERT(k >= b->range.rank_lo && k < b->range.rank_hi);
  int64_t slot = k - b->range.rank_lo;
  if (b->fill[slot] != b->offset[slot + 1] - b->offset[slot])
    return err_set(ERR_MISMATCH, "term rank %d: fewer postings than the first pass counted", k);
  *docids = b->docids + b->offset[slot];
  *tfs = b->tfs + b->offset[slot];
  *n = b->fill[slot];
  return 0;
}

void inv_block_free(inv_block *b) {
  if (!b) return;
  free(b->offset);
  free(b->fill);
  free(b->docids);
  free(b->tfs);
  free(b);
}
