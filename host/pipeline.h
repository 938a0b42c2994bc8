/* pipeline: the expansion job's streaming pipeline (DESIGN.md sections 3 and 5).
 *
 *   reader thread       corpus_next over the whole input; numbers every record (the global doc
 *                       number); docs of shards this worker owns and that are not complete yet
 *                       go on in chunks, all others are only counted (never tokenized)
 *   tokenizer threads   tok_encode (or parse `--format ids` lists) chunk by chunk; with a
 *                       stride, untruncated (a doc's token ids are its only buffer that grows
 *                       with its length)
 *   encoder thread      gathers a window of docs in input order, sorts it by length, cuts
 *                       batches by a token budget (the sum of their lengths <= batch_tokens:
 *                       the encoders pack documents, no padding),
 *                       runs the encoder, keeps each doc's sparse row in the window; with a
 *                       stride, a doc's windows are built batch by batch into a buffer of one
 *                       batch budget, consecutive, and a doc may span batches (enc_rows)
 *   writer (caller)     takes windows in order, so rows reach the shard in input order; opens
 *                       shard s at its first doc, closes it at its S-th doc or at the end of the
 *                       input and queues it for the publisher (at most 2 queued)
 *   publisher thread    fsyncs and renames the closed shards in order (atomic_publish), so the
 *                       writer goes on with the next shard's rows while the disk syncs
 * Queues are bounded (a ring of chunks, two windows), so memory depends on the options, never
 * on the corpus size. Only the writer touches HDF5.
 *
 * Resume: before starting, the .tmp leftovers of this worker's shards are removed (never another
 * worker's: N is the job's, fixed in job.json, and the caller holds worker I's lock, see
 * host/cmd_expand.c; under --no-lock the user vouches for it) and this
 * worker's shards with their final name are checked with shard_check() (first_doc, structure);
 * those are skipped, and the reader checks that the input still has the same docs and byte
 * range for them. A stop (the options' stop flag, set by a signal handler) or any error aborts
 * the shard being written (its .tmp is removed): only complete shards ever have a final name.
 *
 * Test-only hook: env SPLADEX_TEST_KILL_POINT=NAME:COUNT makes the process SIGKILL itself the
 * COUNT-th time it reaches point NAME: read (a doc of an owned shard was read), batch (a batch
 * was encoded, its rows not yet written), append (a row was appended to the open shard),
 * finish (a shard's rows are all written, just before it is closed and queued for fsync +
 * rename), finished (just after a shard was renamed, on the publisher thread). Used by
 * tests/sh/test_expand_kill.sh.
 */
#ifndef SPLADEX_PIPELINE_H
#define SPLADEX_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "corpus.h"
#include "encoder.h"
#include "tokenizer.h"

typedef struct {
  const char *input;        /* corpus path (plain or .gz) */
  const char *output_dir;   /* must exist */
  corpus_options corpus;    /* format, --skip-bad-lines */
  const char *model_name;   /* written to each shard's attrs */
  int max_length;           /* tokens per doc (per window with stride), [CLS] and [SEP] included */
  int stride;               /* 0: truncate to max_length; S in [1, max_length - 2]: the doc's
                               sliding windows (encoder.h, enc_window) max-pooled into its row */
  int max_windows;          /* with stride: windows encoded per doc at most (>= 1) */
  float threshold;          /* written to the attrs (the encoder applies it) */
  int top_k;                /* likewise */
  int64_t shard_size;       /* S docs per shard */
  int worker_index;         /* I of --worker I/N */
  int worker_count;         /* N */
  int batch_tokens;         /* token budget per batch (the sum of its docs' lengths), >= max_length */
  int max_batch_docs;       /* docs per batch at most */
  int window_docs;          /* docs sorted by length together (>= 64); 0 = auto: chunks are
                               taken while the window stays within 8 (batch_tokens -
                               max_length) tokens (8 nearly full batches), or
                               8 * max_batch_docs docs clamped to [256, 4096] */
  int tokenizer_threads;    /* >= 1 */
  int float16;              /* store /vectors/data as float16 */
  int shard_threads;        /* compression threads of the shard writer (shard_meta.compress_threads):
                               0 = none (the writer thread compresses); pipe_shard_threads() gives
                               the usual value */
  atomic_int *stop;         /* set to non-zero to stop (a signal handler may: atomic_int is
                               lock-free, so the store is async-signal-safe); may be NULL */
  int quiet;                /* no progress output */
} pipe_options;

/* Defaults: tsv, max_length 256, threshold 0, top_k 0, shard_size 100000, worker 0/1,
 * batch_tokens 16384, max_batch_docs 512, window_docs 0 (auto), 2 tokenizer threads, no shard
 * compression threads. */
pipe_options pipe_options_default(void);

/* Where the time went (benchmarks/bench_pipeline.c): CPU seconds of each stage's threads
 * (tokenizer: all of them together; writer: the calling thread, without the shard writer's
 * compression threads) and wall seconds each stage spent waiting for its input (the reader: for
 * a free chunk; the encoder: for tokenized chunks or a free window; the writer: for a finished
 * window). */
typedef struct {
  double cpu_reader, cpu_tokenizer, cpu_encoder, cpu_writer;
  double wait_reader, wait_encoder, wait_writer;
  double finish_writer;     /* wall seconds the writer spent closing shards (flush, close) and
                               waiting for room in the publisher's queue */
} pipe_timing;

typedef struct {
  int64_t docs_in_input;    /* records in the input (the whole input, every worker) */
  int64_t shards_in_input;  /* ceil(docs_in_input / S) */
  int64_t docs_encoded;     /* docs this process encoded and wrote */
  int64_t tokens_encoded;
  int64_t shards_written;   /* shards this process finished */
  int64_t batches_encoded;  /* batches submitted to the encoder and collected */
  int64_t batch_tokens_encoded; /* the tokens of those batches (with a stride: of the windows);
                               / (batches_encoded * batch_tokens) is how full batches were */
  int64_t shards_skipped;   /* this worker's shards found complete and left untouched */
  corpus_stats corpus;      /* lines, bad lines, duplicates */
  /* with stride: the windows of the docs this process encoded */
  int64_t windows_encoded;  /* in all */
  int64_t windows_min, windows_max; /* per doc (0 when no doc) */
  int64_t docs_capped;      /* docs with more than max_windows windows (only those encoded) */
  int64_t first_capped;     /* the lowest global doc number among them, -1 when none */
  char first_capped_id[256]; /* its id (truncated), "" when none */
  double seconds;
  pipe_timing timing;
} pipe_stats;

/* The shard writer's compression threads for `spladex expand`, from the value of the environment
 * variable SPLADEX_SHARD_THREADS (the caller passes getenv's result, NULL when unset): N in 0..16
 * as given (0 = none, the writer thread compresses), or, unset or empty, min(4, online
 * cores - 1) and at least 1. Returns 0 and *threads, or ERR_ARG naming the variable. */
int pipe_shard_threads(const char *env_value, int *threads);

/* One record's ids as the pipeline encodes it: text (len bytes) tokenized by t, [CLS] ... [SEP],
 * at most max_length ids; or, for the ids format, the validated id list (corpus_next accepted it)
 * truncated by tok_truncate_ids. Writes them to ids (max_length) using buf as scratch. Returns
 * the number of ids (>= 1), or ERR_NOMEM. */
int pipe_tokenize_record(corpus_format format, const tok *t, const char *text, size_t len,
                         int max_length, tok_buffer *buf, int32_t *ids);

/* Removes every shard-N.h5 and shard-N.h5.tmp in dir (for --overwrite); other files are left
 * alone. Returns the number removed or ERR_IO. */
int pipe_remove_shards(const char *dir);

/* Runs the job. t (tokenizer) and enc (encoder) are borrowed; vocab[vocab_size] are the terms
 * written to each shard. Returns 0 and fills *stats (when not NULL), or a negative ERR_ code
 * with a message: ERR_INTERRUPTED when the stop flag was set, ERR_INPUT naming file:line,
 * ERR_MISMATCH when a complete shard does not match the input, ERR_IO, ERR_NOMEM, or the
 * encoder's error. On error the shard being written is discarded; complete shards stay. */
int pipe_run(const pipe_options *opt, const tok *t, encoder *enc, const char *const *vocab,
             int vocab_size, pipe_stats *stats);

#endif
