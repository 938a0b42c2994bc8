/* test_cuda_lazy: the CUDA backend is loaded lazily (host/encoder.c dlopen()s libspladex_cuda.so).
 *   - a process that does CPU work only (model load, a CPU encoder batch) has none of
 *     libspladex_cuda, libcudart, libcublas mapped (/proc/self/maps), and neither has
 *     `$SPLADEX_BIN --version` (LD_DEBUG=files lists no CUDA library);
 *   - without CUDA in the build: enc_cuda_available() is 0 and records no error;
 *   - with CUDA: SPLADEX_CUDA_LIB pointing at a missing file makes enc_open(ENC_CUDA) fail with
 *     ERR_DEVICE naming that path, and enc_cuda_available() 0 with no error recorded; then the
 *     real module loads from beside this executable (it is mapped afterwards); with no device,
 *     enc_open(ENC_CUDA) is a clean ERR_DEVICE, with one it opens;
 *   - the one entry point (cuda/cuda_api.h): a module of another ABI version (the C-built stand-in
 *     tests/cuda_module_fake.c) is refused with a message naming its path and both versions, in
 *     every build through cuda_module_open(), and with CUDA also through SPLADEX_CUDA_LIB and
 *     enc_open(ENC_CUDA) (then the refusal is not cached: the real module loads afterwards); a
 *     library without the entry point (libspladex_core.so itself) is refused naming the symbol.
 * Runs everywhere (no skip); needs neither a GPU nor nvcc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda_module.h"
#include "encoder.h"
#include "err.h"
#include "model.h"

/* 1 when a line of /proc/self/maps contains needle, 0 when none, -1 when unreadable. */
static int mapped(const char *needle) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

static void check_nothing_cuda_mapped(const char *when) {
  const char *libs[] = {"libspladex_cuda", "libcudart", "libcublas", "libcusparse"};
  for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) {
    int r = mapped(libs[i]);
    if (r != 0) fprintf(stderr, "test_cuda_lazy: %s: %s mapped = %d\n", when, libs[i], r);
    CHECK(r == 0);
  }
}

static void cpu_work(void) {
  model *m = NULL;
  CHECK(model_load("tests/fixtures/models/distilbert-st", &m) == 0);
  if (!m) {
    fprintf(stderr, "test_cuda_lazy: %s\n", err_msg());
    return;
  }
  enc_options o = enc_options_default();
  o.threads = 1;
  if (o.max_length > m->cfg.max_positions) o.max_length = m->cfg.max_positions;
  encoder *e = NULL;
  CHECK(enc_open(m, &o, &e) == 0);
  if (e) {
    int32_t ids[4] = {m->cfg.cls_id, 5, 7, m->cfg.sep_id};
    const int32_t *rows[1] = {ids};
    int len[1] = {4};
    enc_batch b = {1, rows, len};
    enc_result r;
    CHECK(enc_run(e, &b, &r) == 0);
    CHECK(r.n_docs == 1 && r.indptr[1] > 0);
  }
  enc_close(e);
  model_free(m);
}

/* `$SPLADEX_BIN --version` with LD_DEBUG=files: the number of output lines naming a CUDA library
 * or the module, or -1 when the binary is not known. */
static int cli_cuda_loads(void) {
  const char *bin = getenv("SPLADEX_BIN");
  if (!bin || !*bin) return -1;
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "LD_DEBUG=files '%s' --version 2>&1", bin);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[4096];
  int n = 0, lines = 0;
  while (fgets(line, sizeof line, p)) {
    lines++;
    if (strstr(line, "libcudart") || strstr(line, "libcublas") || strstr(line, "libcusparse") ||
        strstr(line, "libspladex_cuda"))
      n++;
  }
  int st = pclose(p);
  return st == 0 && lines > 1 ? n : -1;
}

/* The message of a refused module of another version: its path and both versions. */
static void check_version_message(const char *msg) {
  char theirs[64], ours[64];
  snprintf(theirs, sizeof theirs, "ABI version %d,", SPLADEX_CUDA_API_VERSION + 1000);
  snprintf(ours, sizeof ours, "needs version %d ", SPLADEX_CUDA_API_VERSION);
  CHECK(strstr(msg, SPLADEX_TEST_FAKE_MODULE) != NULL);
  CHECK(strstr(msg, theirs) != NULL);
  CHECK(strstr(msg, ours) != NULL);
}

/* cuda_module_open() on the stand-in of another version and on a library without the entry
 * point; in any build. Records no error. */
static void check_refusals(void) {
  char why[CUDA_MODULE_WHY_MAX];
  static const spladex_cuda_api not_set;
  const spladex_cuda_api *api = &not_set; /* must come back NULL */
  err_set(ERR_IO, "sentinel");
  CHECK(cuda_module_open(SPLADEX_TEST_FAKE_MODULE, &api, why, sizeof why) == ERR_DEVICE);
  CHECK(api == NULL);
  printf("test_cuda_lazy: other version: %s\n", why);
  check_version_message(why);

  /* libspladex_core.so is loaded (mapped() above) and has no entry point. */
  char core[4096] = "";
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096];
  while (f && !core[0] && fgets(line, sizeof line, f)) {
    char *p = strchr(line, '/');
    if (p && strstr(p, "libspladex_core")) {
      p[strcspn(p, "\n")] = '\0';
      snprintf(core, sizeof core, "%s", p);
    }
  }
  if (f) fclose(f);
  CHECK(core[0] != '\0');
  if (core[0]) {
    CHECK(cuda_module_open(core, &api, why, sizeof why) == ERR_DEVICE);
    CHECK(api == NULL);
    printf("test_cuda_lazy: no entry point: %s\n", why);
    CHECK(strstr(why, core) != NULL);
    CHECK(strstr(why, SPLADEX_CUDA_API_SYMBOL) != NULL);
  }
  CHECK(cuda_module_open("/nonexistent-dir/libspladex_cuda.so", &api, why, sizeof why) ==
        ERR_DEVICE);
  CHECK(strstr(why, "could not be loaded") != NULL);
  CHECK(strcmp(err_msg(), "sentinel") == 0);
}

int main(void) {
  CHECK(mapped("libspladex_core") == 1); /* the core is a shared library */
  check_nothing_cuda_mapped("at start");
  cpu_work();
  check_nothing_cuda_mapped("after CPU encoding");
  int cli = cli_cuda_loads();
  if (cli != 0) fprintf(stderr, "test_cuda_lazy: spladex --version CUDA loads = %d\n", cli);
  CHECK(cli == 0);

  check_refusals();
  check_nothing_cuda_mapped("after the refused stand-in");

  err_set(ERR_IO, "sentinel");
#ifndef SPLADEX_HAVE_CUDA
  CHECK(enc_cuda_available() == 0);
  CHECK(strcmp(err_msg(), "sentinel") == 0);
#else
  /* A module that is not there: a clean ERR_DEVICE naming the path, and nothing loaded. */
  const char *bad = "/nonexistent-dir/libspladex_cuda.so";
  setenv("SPLADEX_CUDA_LIB", bad, 1);
  CHECK(enc_cuda_available() == 0);
  CHECK(strcmp(err_msg(), "sentinel") == 0);
  model *m = NULL;
  CHECK(model_load("tests/fixtures/models/distilbert-st", &m) == 0);
  enc_options o = enc_options_default();
  o.backend = ENC_CUDA;
  if (m && o.max_length > m->cfg.max_positions) o.max_length = m->cfg.max_positions;
  encoder *e = NULL;
  CHECK(m && enc_open(m, &o, &e) == ERR_DEVICE);
  CHECK(e == NULL);
  printf("test_cuda_lazy: missing module: %s\n", err_msg());
  CHECK(strstr(err_msg(), bad) != NULL);
  CHECK(strstr(err_msg(), "could not be loaded") != NULL);
  check_nothing_cuda_mapped("after a failed load");

  /* A module of another version: refused, quietly by the probe, with the message by enc_open. */
  setenv("SPLADEX_CUDA_LIB", SPLADEX_TEST_FAKE_MODULE, 1);
  err_set(ERR_IO, "sentinel");
  CHECK(enc_cuda_available() == 0);
  CHECK(strcmp(err_msg(), "sentinel") == 0);
  CHECK(m && enc_open(m, &o, &e) == ERR_DEVICE);
  CHECK(e == NULL);
  printf("test_cuda_lazy: module of another version: %s\n", err_msg());
  check_version_message(err_msg());
  check_nothing_cuda_mapped("after a refused module");
  unsetenv("SPLADEX_CUDA_LIB");

  /* The real module, from beside this executable. */
  err_set(ERR_IO, "sentinel");
  int avail = enc_cuda_available();
  CHECK(strcmp(err_msg(), "sentinel") == 0);
  CHECK(mapped("libspladex_cuda") == 1);
  CHECK(mapped("libcublas") == 1);
  printf("test_cuda_lazy: CUDA device available: %d\n", avail);
  int rc = m ? enc_open(m, &o, &e) : -1;
  if (avail) {
    CHECK(rc == 0);
    if (e) printf("test_cuda_lazy: opened %s\n", enc_describe(e));
  } else {
    CHECK(rc == ERR_DEVICE && e == NULL);
    printf("test_cuda_lazy: no device: %s\n", err_msg());
  }
  enc_close(e);
  model_free(m);
#endif
  return check_report("test_cuda_lazy");
}
