/* shard: one HDF5 shard of sparse document vectors (DESIGN.md section 4).
 *
 * Layout, readable by h5py + scipy and anndata's read_elem without custom code:
 *   /            attrs format="spladex-shard", format_version=1, model, max_length, threshold,
 *                top_k, first_doc, n_docs, input_start, input_end; with --stride also
 *                windows_total, windows_min, windows_max, windows_capped, first_capped_doc
 *                (int64, this shard's docs: see shard_writer_set_windows)
 *   /vectors     group, attrs encoding-type="csr_matrix", encoding-version="0.1.0",
 *                shape=[n_docs, vocab_size] (int64)
 *   /vectors/data float32 (nnz), /vectors/indices int32 (nnz) ascending per row,
 *   /vectors/indptr int64 (n_docs + 1)
 *   /doc_ids     variable-length UTF-8 strings (n_docs)
 *   /vocab       variable-length UTF-8 strings (vocab_size)
 * Chunked, shuffle + deflate (compressed in parallel by the writer's threads, see
 * shard_writer_open). A writer writes PATH.tmp, then shard_writer_finish() closes, fsyncs and
 * renames it to PATH: a file with the final name is always complete.
 * The writer is io/shard_writer.c; the reader and checker io/shard_reader.c.
 */
#ifndef SPLADEX_SHARD_H
#define SPLADEX_SHARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *model;       /* model id written to the attrs */
  int max_length;
  float threshold;
  int top_k;
  int64_t first_doc;       /* global row of this shard's row 0 */
  int64_t input_start;     /* byte range of the input this shard covers */
  int64_t input_end;
  int vocab_size;
  const char *const *vocab; /* [vocab_size] terms, borrowed during shard_writer_open */
  int float16;             /* 1: store /vectors/data as IEEE float16 (round to nearest even;
                              readers get float32 back); 0 (default): float32 */
  int compress_threads;    /* threads of the writer's own that compress the data / indices
                              chunks: N > 0 = N (at most 16); 0 = none, the calling thread
                              compresses them (the file holds the same bytes for every N >= 0);
                              less than 0: HDF5's own filters on the calling thread (the same
                              rows, other compressed bytes; also what a big-endian host gets).
                              The caller picks N (`spladex expand`: pipe_shard_threads) */
} shard_meta;

/* Windows per document (`expand --stride`) of one shard's docs: total windows encoded, min / max
 * per doc, docs that had more than --max-windows, and the global doc number of the first of them
 * (-1 when none). */
typedef struct {
  int64_t total, min, max, capped, first_capped;
} shard_windows;

typedef struct shard_writer shard_writer;

/* Creates path + ".tmp" (replacing a leftover one). Returns 0 and *out, or ERR_IO naming the file
 * (ERR_ARG for a meta without vocabulary). The writer buffers rows (64k entries, 16k indptr
 * values, 4k doc ids) and appends them to chunked datasets as it goes; memory stays bounded. With compression threads
 * (shard_meta.compress_threads), each 64k-entry chunk of /vectors/data and /vectors/indices is
 * shuffled and deflated by the writer's own threads (started at the first chunk, joined by finish
 * / abort; they make no HDF5 call) and written by the calling thread, in order, with
 * H5Dwrite_chunk: same format (shuffle + deflate 4 in the dataset's filter pipeline, any HDF5
 * reader decodes it), each byte plane of the shuffled chunk deflated in the zlib mode that suits
 * it (shard_writer.c), so the stored bytes differ from HDF5's own filters'. At most
 * 2 * (threads + 1) chunks (768 KiB each) are in flight. Call a writer's functions from one thread
 * at a time (HDF5 is not thread-safe). */
int shard_writer_open(const char *path, const shard_meta *meta, shard_writer **out);

/* Appends one document's row: nnz terms (nnz 0 = an empty row) with strictly ascending indices in
 * [0, vocab_size). Returns 0, ERR_ARG for a row breaking that rule (nothing is appended and the
 * writer stays usable), or ERR_IO (the writer is then failed: finish refuses, abort it). */
int shard_writer_append(shard_writer *w, const char *doc_id, const int32_t *indices,
                        const float *values, int nnz);

/* Sets the input byte range [input_start, input_end) recorded in the attrs, replacing the one
 * given to shard_writer_open (the pipeline learns input_end only after the shard's last doc was
 * read, which is after the writer had to open the file). Call any time before finish. Returns 0
 * or ERR_IO. */
int shard_writer_set_input_range(shard_writer *w, int64_t input_start, int64_t input_end);

/* Records win as the root attrs windows_total, windows_min, windows_max, windows_capped,
 * first_capped_doc, written at finish (a writer never given windows writes none of them, as
 * before: a shard without them has unknown windows, e.g. --stride 0 or an older spladex). Call
 * any time before finish. Returns 0. */
int shard_writer_set_windows(shard_writer *w, const shard_windows *win);

/* Writes n_docs, closes, fsyncs the file and its directory, renames PATH.tmp -> PATH, frees w.
 * Returns 0 or ERR_IO (w is freed and the .tmp removed either way). */
int shard_writer_finish(shard_writer *w);

/* shard_writer_finish without its publishing: writes n_docs and closes the file, leaving the
 * complete shard as PATH.tmp (neither durable nor under its final name yet), copies PATH.tmp
 * into tmp_out and PATH into path_out (cap bytes each), and frees w. The caller then publishes
 * it with atomic_publish(tmp_out, path_out) (io/atomic_file.h: fsync, rename, fsync of the
 * directory), possibly on another thread, so that the fsync does not hold up the next shard.
 * Returns 0, or ERR_IO / ERR_ARG (a path longer than cap) with w freed and the .tmp removed. */
int shard_writer_close(shard_writer *w, char *tmp_out, char *path_out, size_t cap);

/* Drops the shard: closes, removes PATH.tmp, frees w. shard_writer_abort(NULL) is a no-op. */
void shard_writer_abort(shard_writer *w);

typedef struct shard_reader shard_reader;

typedef struct {
  char model[256];
  int format_version;
  int max_length;
  float threshold;
  int top_k;
  int64_t first_doc;
  int64_t n_docs;
  int64_t nnz;
  int64_t input_start, input_end;
  int vocab_size;
  int value_bits;          /* stored dtype of /vectors/data: 32 (float32), 16 (float16) or 64 */
  int has_windows;         /* 1: the windows_* attrs are present and read into windows */
  shard_windows windows;   /* (has_windows) see shard_writer_set_windows */
} shard_info;

/* Opens a complete shard read-only and checks its structure (format attr, dataset shapes,
 * indptr[0] == 0, indptr[n_docs] == nnz). Returns 0 and *out or ERR_IO / ERR_FORMAT naming
 * the file. The caller frees with shard_reader_close(). */
int shard_reader_open(const char *path, shard_reader **out);

/* Cheap completeness check for resume: opens path and checks the attributes, the dataset types
 * and lengths, and indptr[0] == 0, indptr[n_docs] == nnz, without reading the rows or the vocab.
 * first_doc / n_docs: the expected values, or -1 for "any". Fills *info when info is not NULL.
 * Returns 0, ERR_IO (missing / unreadable), ERR_FORMAT (not a complete shard) or ERR_MISMATCH
 * (first_doc or n_docs differ), with a message naming the file. */
int shard_check(const char *path, int64_t first_doc, int64_t n_docs, shard_info *info);

/* The shard's attributes and sizes. Borrowed, valid until close. */
const shard_info *shard_reader_info(const shard_reader *r);

/* Reads rows [row, row + n). Sequential reads, even one row at a time, are cheap: a miss reads a
 * window from row on (up to max(n, 16k) rows whose entries fit in max(those of the n rows, 1M)),
 * validates it and serves the following calls from memory; the whole shard is never loaded.
 * Fills doc_ids[n] (borrowed, valid until the next call), indptr (n + 1, rebased to start at 0),
 * and indices/values (indptr[n] entries) in buffers the reader owns, valid until the next call.
 * The rows read are validated: ERR_FORMAT for a broken indptr, or indices not strictly ascending
 * or outside the vocabulary (naming the row). Returns 0, ERR_ARG (range outside the shard),
 * ERR_IO / ERR_FORMAT. */
int shard_reader_rows(shard_reader *r, int64_t row, int64_t n, const char *const **doc_ids,
                      const int64_t **indptr, const int32_t **indices, const float **values);

/* The vocabulary term of id v (borrowed, valid until close), or NULL if out of range. */
const char *shard_reader_term(const shard_reader *r, int v);

/* Closes. shard_reader_close(NULL) is a no-op. */
void shard_reader_close(shard_reader *r);

#endif
