/* fuzz_common.h: helpers shared by the libFuzzer harnesses tests/fuzz/fuzz_<target>.c and by
 * tests/test_fuzz_regressions.c, which includes every harness with FUZZ_REPLAY defined and feeds
 * it the committed seed and regression inputs without libFuzzer.
 *
 * Each harness defines `static void fuzz_<target>(const uint8_t *data, size_t size)`: it runs the
 * input through spladex's real entry point and aborts (FUZZ_REQUIRE) when an invariant breaks --
 * a failure without an error message, a tensor pointing outside the file, an id out of range.
 * Memory errors are the sanitizers' job (ASan + UBSan in both builds).
 * Files a harness needs (readers that take a path) go to a private temporary directory, made once
 * per process under $TMPDIR (default /dev/shm when it exists, else /tmp) and removed at exit. */
#ifndef SPLADEX_FUZZ_COMMON_H
#define SPLADEX_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tensorfile.h"

#define FUZZ_REQUIRE(cond)                                                                   \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "fuzz: invariant broken: %s at %s:%d (last error: %s)\n", #cond,       \
              __FILE__, __LINE__, err_msg());                                                \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

/* A failing call must leave one message (the "one clear error" rule). */
#define FUZZ_REQUIRE_MESSAGE(rc) FUZZ_REQUIRE((rc) >= 0 || err_msg()[0] != '\0')

static char fuzz_dir_path[256];

static inline void fuzz_cleanup(void) {
  if (!fuzz_dir_path[0]) return;
  /* Only the few fixed names the harnesses write. */
  static const char *const names[] = {"input", "config.json", "model.safetensors", "shard.h5",
                                      "shard.h5.tmp"};
  char path[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", fuzz_dir_path, names[i]);
    unlink(path);
  }
  rmdir(fuzz_dir_path);
}

/* The per-process scratch directory (created on first use). */
static inline const char *fuzz_dir(void) {
  if (fuzz_dir_path[0]) return fuzz_dir_path;
  const char *base = getenv("TMPDIR");
  struct stat st;
  if (!base || !base[0]) base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
  snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/spladex-fuzz-XXXXXX", base);
  if (!mkdtemp(fuzz_dir_path)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(fuzz_cleanup);
  return fuzz_dir_path;
}

/* Writes data to fuzz_dir()/name (replacing it) and returns the path (static buffer). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror("fuzz: writing the input file");
    abort();
  }
  return path;
}

/* Checks a tensor that a checkpoint parser accepted: a sane rank and shape, nbytes equal to the
 * element size times the element count (known dtypes), every byte readable (ASan sees a read
 * outside the buffer), and converts small float tensors with tf_to_f32. */
static inline void fuzz_check_tensor(const tensor_ref *t) {
  FUZZ_REQUIRE(t && t->name);
  FUZZ_REQUIRE(t->ndim >= 0 && t->ndim <= TF_MAX_DIMS);
  size_t numel = 1;
  for (int d = 0; d < t->ndim; d++) {
    FUZZ_REQUIRE(t->shape[d] >= 0);
    numel *= (size_t)t->shape[d];
  }
  size_t elem = tf_dtype_size(t->dtype);
  if (t->dtype != TF_OTHER) FUZZ_REQUIRE(elem * numel == t->nbytes);
  FUZZ_REQUIRE(t->nbytes == 0 || t->data != NULL);
  volatile uint8_t sink = 0;
  const uint8_t *bytes = t->data;
  for (size_t i = 0; i < t->nbytes; i++) sink ^= bytes[i];
  (void)sink;
  if ((t->dtype == TF_F32 || t->dtype == TF_F16 || t->dtype == TF_BF16) && numel <= (1u << 16)) {
    float *dst = malloc((numel ? numel : 1) * sizeof *dst);
    FUZZ_REQUIRE(dst);
    int rc = tf_to_f32(t, dst, numel);
    FUZZ_REQUIRE(rc == 0);
    free(dst);
  }
}

#endif
