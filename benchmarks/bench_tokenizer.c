/* bench_tokenizer: single-thread tokenization throughput of the spladex tokenizer, in process.
 * usage: bench_tokenizer MODEL TEXTFILE [MAX_LENGTH=0] [REPEATS=5]
 * Splits TEXTFILE into lines like `spladex tokenize` (at "\n", one trailing "\r" removed),
 * encodes every line REPEATS times and prints one JSON object: input bytes (line bytes without
 * the line ends), lines, ids produced (with [CLS]/[SEP]), a checksum of the ids, the load time
 * and the best encode time over the repeats. benchmarks/bench_tokenizer.py runs it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "tokenizer.h"

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_tokenizer MODEL TEXTFILE [MAX_LENGTH=0] [REPEATS=5]\n");
    return 2;
  }
  int max_length = argc > 3 ? atoi(argv[3]) : 0;
  int repeats = argc > 4 ? atoi(argv[4]) : 5;
  FILE *f = fopen(argv[2], "rb");
  if (!f) {
    perror(argv[2]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc((size_t)size + 1);
  if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "%s: read failed\n", argv[2]);
    return 1;
  }
  fclose(f);
  double t0 = bench_now();
  tok *t = NULL;
  if (tok_open(argv[1], &t) < 0) {
    fprintf(stderr, "bench_tokenizer: %s\n", err_msg());
    return 1;
  }
  double load = bench_now() - t0;
  tok_buffer buf = {0};
  double best = 1e30;
  size_t lines = 0, bytes = 0, ids = 0;
  uint64_t checksum = 0;
  for (int r = 0; r < repeats; r++) {
    lines = bytes = ids = 0;
    checksum = 0;
    double start = bench_now();
    size_t pos = 0;
    while (pos < (size_t)size) {
      char *nl = memchr(data + pos, '\n', (size_t)size - pos);
      size_t end = nl ? (size_t)(nl - data) : (size_t)size;
      size_t n = end - pos;
      if (n && data[pos + n - 1] == '\r') n--;
      if (tok_encode(t, data + pos, n, max_length, &buf) < 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err_msg());
        return 1;
      }
      for (size_t i = 0; i < buf.n; i++) checksum = checksum * 31 + (uint64_t)buf.ids[i];
      ids += buf.n;
      bytes += n;
      lines++;
      pos = end + 1;
    }
    double dt = bench_now() - start;
    if (dt < best) best = dt;
  }
  printf("{\"bytes\": %zu, \"lines\": %zu, \"ids\": %zu, \"checksum\": %llu, \"load_s\": %.6f, "
         "\"best_s\": %.6f, \"repeats\": %d, \"max_length\": %d}\n",
         bytes, lines, ids, (unsigned long long)checksum, load, best, repeats, max_length);
  tok_buffer_free(&buf);
  tok_free(t);
  free(data);
  return 0;
}
