/* test_atomic_file: atomic_publish (io/atomic_file.h) puts a closed file under its final name,
 * replacing an older file there; on a failure (no temporary file, a rename onto a directory, a
 * path in a missing directory) it returns ERR_IO naming the file and the step, and leaves no
 * temporary file and no partial final one. That it fsyncs the file and the directory is checked
 * under strace by tests/sh/test_faults.sh (the export). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "check.h"
#include "err.h"

static char dir[64];

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

/* The file's contents into buf (NUL-terminated), or "" when it cannot be read. */
static const char *read_text(const char *path, char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen(path, "rb");
  if (!f) return buf;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static void test_publish(void) {
  char tmp[128], path[128], buf[64];
  snprintf(tmp, sizeof tmp, "%s/out.txt.tmp", dir);
  snprintf(path, sizeof path, "%s/out.txt", dir);
  write_text(tmp, "first");
  CHECK(atomic_publish(tmp, path) == 0);
  CHECK(!exists(tmp));
  CHECK(!strcmp(read_text(path, buf, sizeof buf), "first"));
  write_text(tmp, "second"); /* replaces the older file */
  CHECK(atomic_publish(tmp, path) == 0);
  CHECK(!exists(tmp));
  CHECK(!strcmp(read_text(path, buf, sizeof buf), "second"));
}

/* A path without a directory part: the directory fsynced is ".". */
static void test_relative(void) {
  char cwd[512], buf[64];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(dir) == 0);
  write_text("rel.tmp", "relative");
  CHECK(atomic_publish("rel.tmp", "rel") == 0);
  CHECK(!exists("rel.tmp") && !strcmp(read_text("rel", buf, sizeof buf), "relative"));
  CHECK(chdir(cwd) == 0);
}

static void test_failures(void) {
  char tmp[128], path[128];
  /* no temporary file: the fsync step fails, nothing is created */
  snprintf(tmp, sizeof tmp, "%s/missing.tmp", dir);
  snprintf(path, sizeof path, "%s/missing", dir);
  err_clear();
  CHECK(atomic_publish(tmp, path) == ERR_IO);
  CHECK(strstr(err_msg(), "missing.tmp: fsync failed") != NULL);
  CHECK(!exists(path));
  /* the final name is a non-empty directory: the rename fails, the temporary file is removed */
  snprintf(tmp, sizeof tmp, "%s/d.tmp", dir);
  snprintf(path, sizeof path, "%s/d", dir);
  CHECK(mkdir(path, 0755) == 0);
  char inside[160];
  snprintf(inside, sizeof inside, "%s/keep", path);
  write_text(inside, "x");
  write_text(tmp, "data");
  CHECK(atomic_publish(tmp, path) == ERR_IO);
  CHECK(strstr(err_msg(), "d.tmp: cannot rename to ") != NULL);
  CHECK(!exists(tmp));
  CHECK(exists(inside));
  unlink(inside);
  rmdir(path);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/spladex-test-atomic-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_publish();
  test_relative();
  test_failures();
  char out[128];
  snprintf(out, sizeof out, "%s/out.txt", dir);
  unlink(out);
  snprintf(out, sizeof out, "%s/rel", dir);
  unlink(out);
  rmdir(dir);
  return check_report("test_atomic_file");
}
