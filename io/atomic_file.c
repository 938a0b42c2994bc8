/* atomic_file: fsync, rename, fsync the directory (see atomic_file.h). fsync through a new
 * descriptor flushes the file's dirty pages however it was written (HDF5, zlib, write()). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

/* fsync of the file or directory at path; -1 with errno on failure. */
static int atomic_fsync_path(const char *path, int directory) {
  int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return -1;
  int status = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return status;
}

int atomic_publish(const char *tmp_path, const char *path) {
  if (atomic_fsync_path(tmp_path, 0) < 0) {
    int rc = err_set(ERR_IO, "%s: fsync failed: %s", tmp_path, strerror(errno));
    unlink(tmp_path);
    return rc;
  }
  if (rename(tmp_path, path) < 0) {
    int rc = err_set(ERR_IO, "%s: cannot rename to %s: %s", tmp_path, path, strerror(errno));
    unlink(tmp_path);
    return rc;
  }
  /* the directory part of path: "." without a slash, "/" for a file in the root */
  const char *slash = strrchr(path, '/');
  const char *from = !slash ? "." : slash == path ? "/" : path;
  size_t length = !slash || slash == path ? 1 : (size_t)(slash - path);
  char *directory = malloc(length + 1);
  if (!directory) return err_set(ERR_NOMEM, "%s: out of memory", path);
  memcpy(directory, from, length);
  directory[length] = '\0';
  int rc = 0;
  if (atomic_fsync_path(directory, 1) < 0)
    rc = err_set(ERR_IO, "%s: fsync of the directory failed: %s", directory, strerror(errno));
  free(directory);
  return rc;
}
