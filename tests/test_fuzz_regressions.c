/* test_fuzz_regressions: replays every fuzzing seed (tests/fuzz/corpus/TARGET/) and every input
 * that once found a bug (tests/fuzz/regressions/TARGET/) through the same harness functions the
 * libFuzzer builds use (tests/fuzz/fuzz_TARGET.c, included here with FUZZ_REPLAY), without
 * libFuzzer, so every ctest run -- and the AddressSanitizer + UBSan pass of scripts/test.sh --
 * checks them. Each input runs in a child process: a crash or a broken invariant names the file
 * and the others still run. A file NAME.expect next to an input holds a substring that the
 * input's error message must contain (for inputs that must be refused with a specific error).
 * Environment: SPLADEX_SOURCE_DIR (repository root; default: the working directory). */
#define FUZZ_REPLAY 1
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_corpus.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_shard.c"
#include "fuzz/fuzz_tokenizer.c"
#include "fuzz/fuzz_tokenizer_bpe.c"
#include "fuzz/fuzz_torchbin.c"

#include <dirent.h>
#include <sys/wait.h>

#include "check.h"

typedef struct {
  const char *name;
  int (*run)(const uint8_t *data, size_t size);
} replay_target;

static const replay_target replay_targets[] = {
    {"safetensors", fuzz_safetensors}, {"torchbin", fuzz_torchbin}, {"config", fuzz_config},
    {"shard", fuzz_shard},             {"tokenizer", fuzz_tokenizer}, {"corpus", fuzz_corpus},
    {"tokenizer_bpe", fuzz_tokenizer_bpe},
};

static int replay_read(const char *path, uint8_t **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *grown = realloc(buf, cap *= 2);
      if (!grown) free(buf);
      buf = grown;
    }
  }
  fclose(f);
  if (!buf) return -1;
  *data = buf;
  *size = n;
  return 0;
}

static int replay_has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Runs one input in a child. Returns 1 when the child finished normally (and met its .expect). */
static int replay_one(const replay_target *t, const char *path, int *accepted) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 0;
  }
  if (pid == 0) {
    uint8_t *data = NULL;
    size_t size = 0;
    if (replay_read(path, &data, &size) != 0) {
      fprintf(stderr, "%s: cannot read\n", path);
      exit(2);
    }
    /* The exact size, so ASan sees reads past the end, as under libFuzzer. */
    uint8_t *exact = malloc(size ? size : 1);
    if (size) memcpy(exact, data, size);
    free(data);
    int rc = t->run(exact, size);
    free(exact);
    char expect_path[4200], expect[512] = "";
    snprintf(expect_path, sizeof expect_path, "%s.expect", path);
    FILE *e = fopen(expect_path, "rb");
    if (e) {
      size_t n = fread(expect, 1, sizeof expect - 1, e);
      fclose(e);
      while (n && (expect[n - 1] == '\n' || expect[n - 1] == '\r')) n--;
      expect[n] = '\0';
      if (rc == 0 || !strstr(err_msg(), expect)) {
        fprintf(stderr, "%s: expected an error containing '%s', got rc %d, message '%s'\n", path, expect, rc,
                err_msg());
        exit(4);
      }
    }
    exit(rc == 0 ? 0 : 3);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return 0;
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3)) {
    *accepted += WEXITSTATUS(status) == 0;
    return 1;
  }
  if (WIFSIGNALED(status))
    fprintf(stderr, "FAIL %s: killed by signal %d\n", path, WTERMSIG(status));
  else
    fprintf(stderr, "FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
  return 0;
}

int main(void) {
  const char *root = getenv("SPLADEX_SOURCE_DIR");
  if (root && root[0] && chdir(root) != 0) {
    perror(root);
    return 1;
  }
  int total = 0;
  for (size_t i = 0; i < sizeof replay_targets / sizeof replay_targets[0]; i++) {
    const replay_target *t = &replay_targets[i];
    static const char *const kinds[] = {"corpus", "regressions"};
    for (size_t k = 0; k < 2; k++) {
      char dir[512];
      snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kinds[k], t->name);
      DIR *d = opendir(dir);
      if (!d) {
        CHECK(k == 1); /* every target has seeds; a regressions directory may be absent */
        continue;
      }
      int n = 0, passed = 0, accepted = 0;
      struct dirent *entry;
      while ((entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.' || replay_has_suffix(entry->d_name, ".expect") ||
            strcmp(entry->d_name, "README.md") == 0)
          continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        n++;
        int ok = replay_one(t, path, &accepted);
        passed += ok;
        CHECK(ok);
      }
      closedir(d);
      if (k == 0) CHECK(n > 0);
      printf("%-11s %-11s %3d inputs, %3d ran clean (%d accepted, %d refused with an error)\n", t->name,
             kinds[k], n, passed, accepted, passed - accepted);
      total += n;
    }
  }
  CHECK(total > 0);
  return check_report("test_fuzz_regressions");
}
