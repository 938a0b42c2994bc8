/* fuzz_shard: the HDF5 shard reader (io/shard_reader.c: shard_check, shard_reader_open,
 * shard_reader_rows, shard_reader_term) on arbitrary bytes written to a scratch file.
 * An accepted shard must read back row by row and in one window with indptr starting at 0,
 * non-decreasing, and indices strictly ascending inside [0, vocab_size) -- the reader promises to
 * validate that, so a violation reaching the caller is a bug. HDF5 itself is a system library
 * (not instrumented); a crash inside it is reported as such. */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "shard.h"

/* LeakSanitizer's built-in suppressions (a hook it calls; unused without sanitizers): libhdf5
 * 1.10.8 leaks a few object-header blocks when H5Fopen fails on a corrupted file (a bug in
 * HDF5, not in spladex: there is no handle to close). With ASan's fast unwinder the stack of
 * such a block ends in an anonymous libhdf5 frame, so the suppression names the library: in
 * these two binaries (fuzz_shard, test_fuzz_regressions) no leak of memory HDF5 allocated is
 * reported. test_shard, under the same sanitizers without this hook, still catches vlen strings
 * that shard_reader.c forgets to reclaim. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

static void fuzz_shard_rows(shard_reader *r, int64_t row, int64_t n, int vocab) {
  const char *const *ids = NULL;
  const int64_t *indptr = NULL;
  const int32_t *indices = NULL;
  const float *values = NULL;
  err_clear();
  int rc = shard_reader_rows(r, row, n, &ids, &indptr, &indices, &values);
  FUZZ_REQUIRE_MESSAGE(rc);
  if (rc != 0) return;
  FUZZ_REQUIRE(indptr[0] == 0);
  volatile float sink = 0;
  for (int64_t d = 0; d < n; d++) {
    FUZZ_REQUIRE(ids[d] != NULL);
    sink += (float)strlen(ids[d]);
    FUZZ_REQUIRE(indptr[d + 1] >= indptr[d]);
    for (int64_t k = indptr[d]; k < indptr[d + 1]; k++) {
      FUZZ_REQUIRE(indices[k] >= 0 && indices[k] < vocab);
      if (k > indptr[d]) FUZZ_REQUIRE(indices[k] > indices[k - 1]);
      sink += values[k];
    }
  }
  (void)sink;
}

static int fuzz_shard(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("shard.h5", data, size);
  shard_info info;
  err_clear();
  int rc = shard_check(path, -1, -1, &info);
  FUZZ_REQUIRE_MESSAGE(rc);
  shard_reader *r = NULL;
  err_clear();
  rc = shard_reader_open(path, &r);
  FUZZ_REQUIRE_MESSAGE(rc);
  FUZZ_REQUIRE((rc == 0) == (r != NULL));
  if (rc == 0) {
    const shard_info *si = shard_reader_info(r);
    FUZZ_REQUIRE(si->n_docs >= 0 && si->nnz >= 0 && si->vocab_size >= 0);
    for (int v = 0; v < si->vocab_size && v < 64; v++) FUZZ_REQUIRE(shard_reader_term(r, v) != NULL);
    FUZZ_REQUIRE(shard_reader_term(r, -1) == NULL && shard_reader_term(r, si->vocab_size) == NULL);
    int64_t n = si->n_docs < 4096 ? si->n_docs : 4096;
    for (int64_t row = 0; row < n; row++) fuzz_shard_rows(r, row, 1, si->vocab_size);
    if (n) fuzz_shard_rows(r, 0, n, si->vocab_size);
    const char *const *ids = NULL;
    const int64_t *indptr = NULL;
    const int32_t *indices = NULL;
    const float *values = NULL;
    err_clear();
    int outside = shard_reader_rows(r, si->n_docs, 1, &ids, &indptr, &indices, &values);
    FUZZ_REQUIRE(outside < 0 && err_msg()[0] != '\0');
  }
  shard_reader_close(r);
  return rc;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_shard(data, size);
  return 0;
}
#endif
