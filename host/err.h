/* err: the one place a runtime error message is recorded.
 *
 * Library functions return int (0 ok, negative code) and, where the error happens, record one
 * message naming the file, line or tensor with err_set(). main.c prints err_msg() and is the only
 * place that calls exit(). The message buffer is thread-local, so worker threads can fail
 * independently; a pipeline stage that fails hands its message to the main thread with
 * err_set("%s", err_msg()).
 */
#ifndef SPLADEX_ERR_H
#define SPLADEX_ERR_H

#include <stdio.h>
#include <stdlib.h>

/* Error codes. Every failing library call returns one of these (always < 0). */
enum {
  ERR_OK = 0,
  ERR_IO = -1,       /* open/read/write/rename/fsync failed (errno in the message) */
  ERR_FORMAT = -2,   /* a file does not follow its format (bad header, offset, dtype, pickle op) */
  ERR_SHAPE = -3,    /* a tensor is missing or has the wrong shape */
  ERR_NOMEM = -4,    /* an allocation failed */
  ERR_ARG = -5,      /* bad command-line argument or option value */
  ERR_INPUT = -6,    /* bad corpus input (line, id, encoding) that the job refuses */
  ERR_MISMATCH = -7, /* a rerun whose parameters differ from job.json, or inconsistent shards */
  ERR_DEVICE = -8,   /* CUDA / cuBLAS failure or no device */
  ERR_INTERRUPTED = -9 /* SIGINT / SIGTERM asked the job to stop */
};

/* Records a printf-style message for the current thread, replacing any earlier one, and returns
 * code, so a failure reads `return err_set(ERR_IO, "%s: %s", path, strerror(errno));`. */
int err_set(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prepends "prefix: " to the current message (for adding context on the way up), returns code. */
int err_wrap(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The current thread's last message ("" if none). Borrowed: valid until the next err_set. */
const char *err_msg(void);

/* Clears the current thread's message. */
void err_clear(void);

/* Always-on assertion for programmer mistakes (not for bad input: those return an error). */
#define SPX_ASSERT(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "spladex: internal error: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

#endif
