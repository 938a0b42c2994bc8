/* err: thread-local error message buffer (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char err_buffer[2048];

int err_set(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_buffer, sizeof err_buffer, fmt, ap);
  va_end(ap);
  return code;
}

int err_wrap(int code, const char *fmt, ...) {
  char prefix[1024];
  char previous[sizeof err_buffer];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(previous, err_buffer, sizeof previous);
  size_t n = strlen(prefix);
  if (n > sizeof err_buffer - 3) n = sizeof err_buffer - 3;
  memcpy(err_buffer, prefix, n);
  memcpy(err_buffer + n, ": ", 2);
  size_t room = sizeof err_buffer - n - 3;
  size_t m = strnlen(previous, room);
  memcpy(err_buffer + n + 2, previous, m);
  err_buffer[n + 2 + m] = '\0';
  return code;
}

const char *err_msg(void) { return err_buffer; }

void err_clear(void) { err_buffer[0] = '\0'; }
