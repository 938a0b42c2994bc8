/* bench_shard_write: throughput of the shard writer alone (io/shard.h: HDF5, chunked, shuffle +
 * deflate 4), the one thread of `spladex expand` that every row goes through. The CUDA target is
 * 30,000 passages/s on one GPU; this says whether the writer can keep up with that on the machine
 * it runs on.
 * Rows like a real SPLADE index: NNZ terms per doc (default 128; --top-k 128 in bench_gpu.py),
 * ascending ids drawn over the 30522-term vocabulary, weights log1p of a gamma-like value;
 * doc ids "msmarco-passage-<n>". Writes DOCS docs in shards of SHARD docs into DIR (removed
 * after), reports docs/s and MB/s of raw row data (8 bytes per entry), the best of REPEATS runs,
 * and the bytes on disk per entry.
 * The writer deflates the data / indices chunks on threads of its own (io/shard_writer.c,
 * shard_meta.compress_threads); the environment variable SPLADEX_SHARD_THREADS=N sets how many,
 * resolved as `spladex expand` does (host/pipeline.h, pipe_shard_threads: default
 * min(4, cores - 1), at least 1; 0 = the writer's thread compresses).
 * Usage: bench_shard_write [DOCS=200000] [NNZ=128] [SHARD=100000] [DIR=/tmp] [REPEATS=3]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "pipeline.h"
#include "shard.h"

enum { VOCAB = 30522 };

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 32);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  const long docs = argc > 1 ? atol(argv[1]) : 200000;
  const int nnz = argc > 2 ? atoi(argv[2]) : 128;
  const long shard = argc > 3 ? atol(argv[3]) : 100000;
  const char *dir = argc > 4 ? argv[4] : "/tmp";
  const int repeats = argc > 5 ? atoi(argv[5]) : 3;
  if (docs < 1 || nnz < 1 || nnz > VOCAB || shard < 1 || repeats < 1) {
    fprintf(stderr, "usage: bench_shard_write [DOCS] [NNZ <= %d] [SHARD] [DIR] [REPEATS]\n", VOCAB);
    return 2;
  }
  int threads = 0;
  if (pipe_shard_threads(getenv("SPLADEX_SHARD_THREADS"), &threads) < 0) {
    fprintf(stderr, "bench_shard_write: %s\n", err_msg());
    return 2;
  }
  char **vocab = malloc(sizeof(char *) * VOCAB);
  char *vocab_bytes = malloc((size_t)VOCAB * 12);
  int32_t *indices = malloc(sizeof(int32_t) * (size_t)nnz);
  float *values = malloc(sizeof(float) * (size_t)nnz);
  if (!vocab || !vocab_bytes || !indices || !values) return 1;
  for (int v = 0; v < VOCAB; v++) {
    vocab[v] = vocab_bytes + (size_t)v * 12;
    snprintf(vocab[v], 12, "t%d", v);
  }
  double best = 1e30, disk_bytes = 0;
  for (int r = 0; r < repeats; r++) {
    const double t0 = now();
    for (long first = 0; first < docs; first += shard) {
      char path[4096];
      snprintf(path, sizeof path, "%s/bench-shard-%d-%ld.h5", dir, (int)getpid(), first / shard);
      shard_meta meta = {.model = "bench", .max_length = 256, .top_k = nnz, .first_doc = first,
                         .vocab_size = VOCAB, .vocab = (const char *const *)vocab,
                         .compress_threads = threads};
      shard_writer *w = NULL;
      if (shard_writer_open(path, &meta, &w) < 0) {
        fprintf(stderr, "bench_shard_write: %s\n", err_msg());
        return 1;
      }
      const long n = docs - first < shard ? docs - first : shard;
      for (long d = 0; d < n; d++) {
        /* nnz ascending ids: one per stride of the vocabulary, jittered inside it */
        const int stride = VOCAB / nnz;
        for (int k = 0; k < nnz; k++) {
          indices[k] = k * stride + (int32_t)(next_u32() % (uint32_t)stride);
          const float g = (float)(next_u32() % 10000) / 2500.0f;
          values[k] = log1pf(g * g);
        }
        char id[48];
        snprintf(id, sizeof id, "msmarco-passage-%ld", first + d);
        if (shard_writer_append(w, id, indices, values, nnz) < 0) {
          fprintf(stderr, "bench_shard_write: %s\n", err_msg());
          shard_writer_abort(w);
          return 1;
        }
      }
      if (shard_writer_finish(w) < 0) {
        fprintf(stderr, "bench_shard_write: %s\n", err_msg());
        return 1;
      }
      struct stat st;
      if (r == 0 && stat(path, &st) == 0) disk_bytes += (double)st.st_size;
      unlink(path);
    }
    const double dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("bench_shard_write: %ld docs x %d terms in shards of %ld: best of %d %.2f s, "
         "%.0f docs/s, %.1f MB/s of row data, %.2f bytes on disk per entry\n",
         docs, nnz, shard, repeats, best, docs / best, docs * (double)nnz * 8 / best / 1e6,
         disk_bytes / ((double)docs * nnz));
  free(vocab), free(vocab_bytes), free(indices), free(values);
  return 0;
}
