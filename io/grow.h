/* grow: the one growth rule for arrays that are appended to, instead of a realloc loop in every
 * module. Capacities count elements; they double (from GROW_FIRST) until the need fits, so n
 * appends cost O(n) copying in all.
 *
 *   int32_t *ids = NULL; size_t cap = 0;
 *   if (grow(&ids, &cap, n + 1, sizeof *ids)) return err_set(ERR_NOMEM, "%s: out of memory", path);
 *   ids[n++] = id;
 */
#ifndef SPLADEX_GROW_H
#define SPLADEX_GROW_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The capacity an empty array first grows to. */
#define GROW_FIRST 16

/* Makes the array whose pointer is at array_address (an int32_t **, char ** ...: the pointer is
 * read and written with memcpy, so any object pointer type works) hold at least need elements of
 * elem bytes. When *cap < need, reallocates it to *cap (or GROW_FIRST) doubled until >= need
 * (exactly need if doubling would overflow) and updates *cap; the contents are kept, new elements
 * are uninitialized. Returns 0, or ERR_NOMEM when need * elem overflows or realloc fails: then
 * the array and *cap are unchanged and nothing is recorded (the caller names what it was growing
 * with err_set). */
static inline int grow(void *array_address, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  if (elem == 0 || need > SIZE_MAX / elem) return ERR_NOMEM;
  size_t next = *cap ? *cap : GROW_FIRST;
  while (next < need) next = next > SIZE_MAX / elem / 2 ? need : next * 2;
  void *old;
  memcpy(&old, array_address, sizeof old);
  void *grown = realloc(old, next * elem);
  if (!grown) return ERR_NOMEM;
  memcpy(array_address, &grown, sizeof grown);
  *cap = next;
  return 0;
}

#endif
