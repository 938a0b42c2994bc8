/* invert: reads a shard directory doc-major and turns it term-major in bounded memory.
 *
 * Two halves, both used by `spladex export`:
 *   inv_source  the shard directory (DESIGN.md section 4) as one stream of quantized rows in
 *               global document order: refuses a directory that io/shard_dir.h does not find
 *               complete (missing shards named, tiling, one vocab_size), checks that the shards
 *               share one vocabulary, and reads them one at a time through io/shard.h.
 *   inv_block   the postings of one range of terms, filled by scattering rows into per-term slots
 *               (a CSR -> CSC transpose restricted to the range). The export makes one pass over
 *               the source per range, with ranges cut by inv_plan() so that one block fits the
 *               memory budget: memory is bounded by --memory, not by the corpus.
 *
 * Terms are addressed by rank: their position in byte order (strcmp of the UTF-8 terms), which is
 * the order CIFF writes postings lists in. Docids are global row numbers 0..N-1.
 *
 * Quantization (inv_quantize) follows naver/splade's Anserini export, which computes
 * np.rint(data * quantization_factor) on float32 data: the product is rounded to float32 and then
 * to the nearest integer with ties to even. Only weights that quantize to >= 1 are kept.
 *
 * The GPU path (`spladex export ciff --device cuda`, cuda/export_transpose.h) transposes each
 * block of rows whole with cuSPARSE csr2csc (columns = all term ranks, rows ascending within each
 * column) and hands the result to inv_block_add_csc() instead of inv_block_add_rows(): both append
 * the same (docid, tf) sequence per term, docids ascending, so the bytes written are the same
 * either way.
 */
#ifndef SPLADEX_INVERT_H
#define SPLADEX_INVERT_H

#include <stddef.h>
#include <stdint.h>

/* round(w * scale) as naver/splade does it (float32 product, ties to even); 0 for w * scale
 * below 0.5, negative or NaN; INT32_MAX for products that do not fit an int32. */
int32_t inv_quantize(float w, float scale);

/* 1 when term is one of the special tokens of the vocabularies spladex reads -- BERT's [PAD]
 * [UNK] [CLS] [SEP] [MASK] (bert-base-uncased's tokenizer_config.json and every SPLADE model
 * built on it) and RoBERTa's <s> <pad> </s> <unk> <mask> -- else 0. `--drop-special` of `spladex export` and `spladex queries` leaves these
 * terms out, by their vocabulary strings, so that both sides drop the same ids. */
int inv_is_special_term(const char *term);

/* ---- the doc-major source ---- */

typedef struct inv_source inv_source;

/* One block of consecutive documents, quantized: row i (global docid first_doc + i) has the
 * terms ranks[indptr[i] .. indptr[i+1]) with weights tfs[...] (each >= 1), in ascending vocab id
 * order; vocab ids are in ids[...] beside them. Borrowed from the source, valid until the next
 * inv_source_next / rewind / close. */
typedef struct {
  int64_t first_doc;
  int64_t n_docs;
  const char *const *doc_ids; /* (n_docs) */
  const int64_t *indptr;      /* (n_docs + 1), starts at 0 */
  const int32_t *vocab_ids;   /* (indptr[n_docs]) */
  const int32_t *ranks;       /* (indptr[n_docs]) byte-order rank of vocab_ids[j] */
  const int32_t *tfs;         /* (indptr[n_docs]) quantized weights, >= 1 (>= 0 under
                                 inv_source_keep_all) */
  const float *weights;       /* (indptr[n_docs]) the stored float weights of the same entries */
} inv_rows;

/* Opens the shard directory dir: reads job.json (io/jobfile.h) when there is one, lists the
 * shards, refuses a directory that is not complete by io/shard_dir.h's rule (the one `verify`
 * reports by: ERR_MISMATCH naming every missing shard, an unfinished job, a shard of another
 * job...), checks every shard's structure and tiling once (sdir_check_shard), and reads the
 * vocabulary of the first shard. scale is the quantization scale (> 0). Returns 0 and *out, or
 * ERR_IO / ERR_FORMAT / ERR_MISMATCH / ERR_NOMEM with the message naming the file. The caller
 * frees with inv_source_close(). */
int inv_source_open(const char *dir, float scale, inv_source **out);

/* 1 when job.json confirmed the number of shards and documents; 0 when the directory has no
 * job.json, so that only gaps (not missing trailing shards) could be detected. */
int inv_source_verified(const inv_source *s);

/* What inv_source_next keeps, set before the first pass (the defaults: every term whose weight
 * quantizes to >= 1, special tokens included).
 * inv_source_drop_special: leaves out every vocabulary term for which inv_is_special_term() holds;
 * returns how many vocabulary terms that is.
 * inv_source_keep_all: keep_all != 0 keeps every stored entry whatever its quantized weight (tfs
 * may then be 0), for the exports of float weights (csr, jsonl --weights float). */
int inv_source_drop_special(inv_source *s);
void inv_source_keep_all(inv_source *s, int keep_all);

/* The first shard's expansion settings (the shard attributes max_length, threshold, top_k), for
 * the records that an export writes beside itself. */
int inv_source_max_length(const inv_source *s);
float inv_source_threshold(const inv_source *s);
int inv_source_top_k(const inv_source *s);

/* Number of documents (N), of shards, the vocabulary size and the model id from the shards. */
int64_t inv_source_docs(const inv_source *s);
int inv_source_shards(const inv_source *s);
int inv_source_vocab_size(const inv_source *s);
const char *inv_source_model(const inv_source *s);

/* The term of vocab id v (borrowed, valid until close), and the vocab id of byte-order rank k (a
 * permutation of [0, vocab_size)). */
const char *inv_source_term(const inv_source *s, int32_t v);
int32_t inv_source_term_of_rank(const inv_source *s, int32_t k);

/* Starts a new pass from document 0. Returns 0. */
int inv_source_rewind(inv_source *s);

/* Reads the next block of at most max_docs documents (never across a shard boundary) into
 * *rows; rows->n_docs == 0 at the end. Each shard's vocabulary is checked against the first
 * one's when it is opened. Returns 0 or ERR_IO / ERR_FORMAT / ERR_MISMATCH naming the shard
 * (and row for a weight that is not finite). */
int inv_source_next(inv_source *s, int64_t max_docs, inv_rows *rows);

/* Closes the current shard and frees everything. inv_source_close(NULL) is a no-op. */
void inv_source_close(inv_source *s);

/* ---- planning the passes ---- */

/* One pass: the term ranks [rank_lo, rank_hi) and their n_postings postings. */
typedef struct {
  int32_t rank_lo, rank_hi;
  int64_t n_postings;
} inv_range;

/* Bytes that one posting takes in an inv_block (docid + tf). */
#define INV_POSTING_BYTES 8

/* Cuts the ranks [0, n_ranks) into consecutive ranges whose postings (df_by_rank[k] each) fit
 * budget_bytes at INV_POSTING_BYTES each; ranks with df 0 go with their neighbours. One term
 * whose postings alone exceed the budget is an ERR_ARG naming the rank (the caller names the term
 * and asks for a larger --memory). Returns 0 and *ranges (the caller frees with free()) with
 * *n_ranges >= 1 (a single empty range if there are no postings), or ERR_ARG / ERR_NOMEM. */
int inv_plan(const int64_t *df_by_rank, int32_t n_ranks, int64_t budget_bytes, inv_range **ranges,
             int *n_ranges);

/* ---- one range's postings ---- */

typedef struct inv_block inv_block;

/* Allocates the postings of range r: df_by_rank is indexed by global rank (n_ranks entries, only
 * [r.rank_lo, r.rank_hi) is read). Returns 0 and *out or ERR_NOMEM. Free with inv_block_free(). */
int inv_block_open(const int64_t *df_by_rank, inv_range r, inv_block **out);

/* Appends the entries of rows whose rank falls in the block's range to their terms' postings.
 * Rows must come in ascending docid order over the whole pass (then each term's docids ascend).
 * Returns 0, or ERR_MISMATCH if a term gets more postings than df_by_rank promised (the source
 * changed between passes). This is the in-memory transpose a GPU path may replace. */
int inv_block_add_rows(inv_block *b, const inv_rows *rows);

/* The same as inv_block_add_rows() for a block of rows already transposed (CSC, one column per
 * term rank): the rows are the documents first_doc, first_doc + 1, ...; column k holds the row
 * numbers rowind[colptr[k] .. colptr[k+1]) (ascending, relative to first_doc) and their tfs.
 * colptr is indexed by global rank and read only for [rank_lo, rank_hi]; each of the block's
 * terms gets its column appended as one contiguous copy. Blocks must come in ascending docid
 * order over the whole pass, as for inv_block_add_rows(). Returns 0, or ERR_MISMATCH if a term
 * gets more postings than df_by_rank promised (same check and message as inv_block_add_rows). */
int inv_block_add_csc(inv_block *b, int64_t first_doc,
                      const int32_t *colptr, /* (n_ranks + 1), n_ranks >= rank_hi */
                      const int32_t *rowind, /* (colptr[n_ranks]) */
                      const int32_t *tfs);   /* (colptr[n_ranks]) */

/* The postings of rank k (rank_lo <= k < rank_hi): *n entries, docids ascending (absolute) and
 * their tfs. Borrowed, valid until inv_block_free. Returns 0, or ERR_MISMATCH if the term got
 * fewer postings than promised. */
int inv_block_postings(const inv_block *b, int32_t k, const int32_t **docids, const int32_t **tfs,
                       int64_t *n);

/* Frees. inv_block_free(NULL) is a no-op. */
void inv_block_free(inv_block *b);

#endif
