/* test_export_gpu: `spladex export ciff --device cuda` (cuSPARSE csr2csc through
 * cuda/export_transpose.h) writes the very bytes of `--device cpu`, end to end, in-process.
 *
 * The shard directory is generated with io/shard.h: 40,000 documents in shards of 16,384 (so the
 * export reads blocks of 8,192 rows and a short last one) over a 30,522-term vocabulary with
 * skewed term frequencies, empty documents, and documents whose one tf is INT32_MAX (a NaN as a
 * float32 bit pattern) or 0x7f800000 (+infinity) or 0x7fa00000 (a signaling NaN), since cuSPARSE
 * moves the tfs as floats. Each
 * device exports with --memory 2G (one postings pass) and with a small --memory (several passes,
 * so each block's CSC is read for one range of columns at a time). Exits 77 (ctest "Not Run") when
 * the CUDA device cannot be opened: no CUDA in the build, no module, no driver or no device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "commands.h"
#include "err.h"
#include "export_fixture.h"
#include "invert.h"
#include "jobfile.h"
#include "shard.h"

enum { GPU_V = 30522, GPU_SHARD = 16384, GPU_DOCS = 40000, GPU_MAX_TERMS = 160 };

static unsigned gpu_seed = 2024;
static unsigned gpu_next(void) {
  gpu_seed = gpu_seed * 1103515245u + 12345u;
  return gpu_seed >> 8;
}

/* A float w whose export weight inv_quantize(w, 100) is exactly target, or 0 if none is near. */
static float gpu_weight_for(int32_t target) {
  float w = (float)target / 100.0f;
  for (int i = 0; i < 64; i++) {
    int32_t q = inv_quantize(w, 100.0f);
    if (q == target) return w;
    w = nextafterf(w, q < target ? INFINITY : 0.0f);
  }
  return 0.0f;
}

static int compare_ids(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int write_shards(const char *dir) {
  static char vocab_buf[GPU_V][8];
  static const char *vocab[GPU_V];
  for (int v = 0; v < GPU_V; v++) {
    snprintf(vocab_buf[v], sizeof vocab_buf[v], v % 5 ? "w%05d" : "##%d", v);
    vocab[v] = vocab_buf[v];
  }
  if (fixture_write_job(dir, GPU_SHARD, GPU_DOCS)) return -1;
  float inf_weight = gpu_weight_for(0x7f800000);
  /* Not CUDA's canonical NaN (0x7fffffff, the INT32_MAX case): a value that anything touching the
   * tfs as floats would change (quieting sets bit 22; canonicalizing rewrites it). */
  float snan_weight = gpu_weight_for(0x7fa00000);
  for (int s = 0; s * GPU_SHARD < GPU_DOCS; s++) {
    char path[512];
    job_shard_path(dir, s, path, sizeof path);
    shard_meta meta = {.model = "test/model", .max_length = 256,
                       .first_doc = (int64_t)s * GPU_SHARD, .vocab_size = GPU_V, .vocab = vocab};
    shard_writer *w = NULL;
    if (shard_writer_open(path, &meta, &w)) return -1;
    for (int d = s * GPU_SHARD; d < GPU_DOCS && d < (s + 1) * GPU_SHARD; d++) {
      int32_t idx[GPU_MAX_TERMS];
      float val[GPU_MAX_TERMS];
      int nnz = 0;
      if (d % 997 == 5) {
        idx[nnz] = (int32_t)(gpu_next() % GPU_V);
        val[nnz++] = 1e30f; /* tf INT32_MAX */
      } else if (d % 1009 == 6 && inf_weight > 0) {
        idx[nnz] = (int32_t)(gpu_next() % GPU_V);
        val[nnz++] = inf_weight; /* tf 0x7f800000 */
      } else if (d % 1013 == 7 && snan_weight > 0) {
        idx[nnz] = (int32_t)(gpu_next() % GPU_V);
        val[nnz++] = snan_weight; /* tf 0x7fa00000: a signaling NaN that a float op would quiet */
      } else if (d % 211 != 0) { /* every 211th document empty */
        int want = 20 + (int)(gpu_next() % 120);
        for (int i = 0; i < want; i++) {
          /* Skewed: small ids far more often, like a Zipf over the vocabulary. */
          double u = (double)(gpu_next() % 1000000) / 1e6;
          idx[nnz++] = (int32_t)((double)GPU_V * u * u * u) % GPU_V;
        }
        qsort(idx, (size_t)nnz, sizeof *idx, compare_ids);
        int kept = 0;
        for (int i = 0; i < nnz; i++)
          if (kept == 0 || idx[i] != idx[kept - 1]) idx[kept++] = idx[i];
        nnz = kept;
        for (int i = 0; i < nnz; i++) val[i] = (float)(gpu_next() % 30000) / 10000.0f;
      }
      char id[32];
      snprintf(id, sizeof id, "doc-%d", d);
      if (shard_writer_append(w, id, idx, val, nnz)) {
        shard_writer_abort(w);
        return -1;
      }
    }
    if (shard_writer_finish(w)) return -1;
  }
  return 0;
}

static int export_ciff(const char *in, const char *out, const char *memory, const char *device) {
  char *argv[] = {"export", "ciff", "--input", (char *)in, "--output", (char *)out,
                  "--memory", (char *)memory, "--device", (char *)device, NULL};
  return cmd_export(10, argv);
}

int main(void) {
  char dir[] = "/tmp/spladex-test-export-gpu-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char shards[512], cpu[600], cuda[600], cmd[600];
  snprintf(shards, sizeof shards, "%s/shards", dir);
  snprintf(cpu, sizeof cpu, "%s/cpu.ciff", dir);
  snprintf(cuda, sizeof cuda, "%s/cuda.ciff", dir);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  mkdir(shards, 0755);
  int status = 0;
  if (write_shards(shards)) {
    fprintf(stderr, "test_export_gpu: writing the shards: %s\n", err_msg());
    status = 1;
    goto done;
  }
  /* Probe first: a device that cannot be opened is "Not Run", not a failure. */
  int rc = export_ciff(shards, cuda, "2G", "cuda");
  if (rc == ERR_DEVICE && strstr(err_msg(), "no usable CUDA device")) {
    fprintf(stderr, "test_export_gpu: skipped: %s\n", err_msg());
    status = CHECK_SKIP;
    goto done;
  }
  if (rc) fprintf(stderr, "test_export_gpu: --device cuda: %s\n", err_msg());
  CHECK(rc == 0);
  rc = export_ciff(shards, cpu, "2G", "cpu");
  if (rc) fprintf(stderr, "test_export_gpu: --device cpu: %s\n", err_msg());
  CHECK(rc == 0);
  CHECK(fixture_file_size(cpu) > 1000000);
  CHECK(fixture_same_bytes(cpu, cuda));
  /* Several passes: 4M leaves 2M for postings, a quarter or so of them per pass. */
  remove(cuda);
  rc = export_ciff(shards, cuda, "4M", "cuda:0");
  if (rc) fprintf(stderr, "test_export_gpu: --device cuda:0 --memory 4M: %s\n", err_msg());
  CHECK(rc == 0);
  CHECK(fixture_same_bytes(cpu, cuda));
  status = check_report("test_export_gpu");
done:
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
  return status;
}
