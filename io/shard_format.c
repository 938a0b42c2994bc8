/* shard_format: the HDF5 helpers shared by the shard writer and reader (see shard_format.h).
 *
 * HDF5 prints its own error stack by default; every entry point of the writer and the reader
 * switches that off for the calling thread (shard_quiet) and records one message instead, with
 * the innermost HDF5 reason appended (shard_h5_error).
 */
#include "shard_format.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

/* H5dont_atexit() (effective only before the library's first use) keeps HDF5 from closing
 * still-open files at exit: after a write failed at close time (disk full), HDF5 1.10 leaves the
 * file half-closed and its exit handler crashed on it (SIGSEGV after the error was printed); the
 * writer already removed that .tmp, so there is nothing to flush. */
void shard_quiet(void) {
  static int first = 1;
  if (first) {
    first = 0;
    H5dont_atexit();
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Keeps the innermost description, reduced to one line: a failed write's description spans
 * lines with buffer addresses; its "error message = '...'" part (strerror) is the reason. */
static herr_t shard_walk_innermost(unsigned n, const H5E_error2_t *e, void *data) {
  if (n != 0 || !e || !e->desc) return 0;
  char *out = data;
  const char *reason = strstr(e->desc, "error message = '");
  if (reason) {
    reason += strlen("error message = '");
    const char *end = strchr(reason, '\'');
    snprintf(out, 256, "%.*s", (int)(end ? end - reason : (ptrdiff_t)strlen(reason)), reason);
  } else {
    snprintf(out, 256, "%s", e->desc);
  }
  for (char *c = out; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
  return 0;
}

int shard_h5_error(int code, const char *path, const char *what) {
  char detail[256] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, shard_walk_innermost, detail);
  H5Eclear2(H5E_DEFAULT);
  if (detail[0]) return err_set(code, "%s: %s (%s)", path, what, detail);
  return err_set(code, "%s: %s", path, what);
}

herr_t shard_close_id(hid_t *id) {
  herr_t status = 0;
  if (*id < 0) return 0;
  switch (H5Iget_type(*id)) {
    case H5I_FILE: status = H5Fclose(*id); break;
    case H5I_GROUP: status = H5Gclose(*id); break;
    case H5I_DATASET: status = H5Dclose(*id); break;
    case H5I_DATATYPE: status = H5Tclose(*id); break;
    case H5I_DATASPACE: status = H5Sclose(*id); break;
    case H5I_ATTR: status = H5Aclose(*id); break;
    case H5I_GENPROP_LST: status = H5Pclose(*id); break;
    default: break;
  }
  *id = H5I_INVALID_HID;
  return status;
}

hid_t shard_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return H5I_INVALID_HID;
  }
  return t;
}

hid_t shard_half_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (t < 0) return t;
  if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
    H5Tclose(t);
    return H5I_INVALID_HID;
  }
  return t;
}
