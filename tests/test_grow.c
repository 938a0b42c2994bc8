/* test_grow: io/grow.h, the one growth helper. An empty array grows to GROW_FIRST, then doubles
 * until the need fits; contents are kept; a need that fits changes nothing; a size that
 * overflows size_t is ERR_NOMEM with the array and its capacity untouched. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "grow.h"

static void test_growth(void) {
  int32_t *ids = NULL;
  size_t cap = 0;
  CHECK(grow(&ids, &cap, 1, sizeof *ids) == 0 && ids && cap == GROW_FIRST);
  for (int i = 0; i < GROW_FIRST; i++) ids[i] = i;
  int32_t *before = ids;
  CHECK(grow(&ids, &cap, GROW_FIRST, sizeof *ids) == 0 && ids == before && cap == GROW_FIRST);
  CHECK(grow(&ids, &cap, GROW_FIRST + 1, sizeof *ids) == 0 && cap == 2 * GROW_FIRST);
  CHECK(grow(&ids, &cap, 5 * GROW_FIRST, sizeof *ids) == 0 && cap == 8 * GROW_FIRST);
  int kept = 1;
  for (int i = 0; i < GROW_FIRST; i++) kept &= ids[i] == i;
  CHECK(kept);
  ids[cap - 1] = 7; /* the whole capacity is usable (ASan checks) */
  free(ids);
}

static void test_bytes(void) {
  char *text = NULL;
  size_t cap = 0;
  CHECK(grow(&text, &cap, 1000, 1) == 0 && cap == 1024);
  text[999] = 'x';
  free(text);
}

static void test_overflow(void) {
  double *values = NULL;
  size_t cap = 0;
  CHECK(grow(&values, &cap, SIZE_MAX / 4, sizeof *values) == ERR_NOMEM);
  CHECK(values == NULL && cap == 0);
  CHECK(grow(&values, &cap, 3, sizeof *values) == 0 && cap == GROW_FIRST);
  double *before = values;
  CHECK(grow(&values, &cap, SIZE_MAX, sizeof *values) == ERR_NOMEM);
  CHECK(values == before && cap == GROW_FIRST);
  free(values);
  /* need * elem wraps around to 16 bytes: refused, not a 16-byte array claiming a huge capacity */
  typedef struct {
    double a, b;
  } pair;
  pair *pairs = NULL;
  size_t pairs_cap = 0;
  CHECK(grow(&pairs, &pairs_cap, SIZE_MAX / sizeof(pair) + 2, sizeof(pair)) == ERR_NOMEM);
  CHECK(pairs == NULL && pairs_cap == 0);
  free(pairs);
}

int main(void) {
  test_growth();
  test_bytes();
  test_overflow();
  return check_report("test_grow");
}
