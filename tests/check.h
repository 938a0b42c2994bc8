/* check.h: the whole test framework. CHECK(c) and CHECK_NEAR(a, b, tol) count failures and print
 * the first ones with file and line; a test's main ends with `return check_report("name");`.
 * A test that needs something absent (a GPU) returns CHECK_SKIP (77: ctest shows "Not Run"). */
#ifndef SPLADEX_CHECK_H
#define SPLADEX_CHECK_H
#include <math.h>
#include <stdio.h>

#define CHECK_SKIP 77
static int check_failures, check_count;

#define CHECK(c)                                                                          \
  do {                                                                                    \
    check_count++;                                                                        \
    if (!(c) && ++check_failures <= 20)                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);               \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                             \
  do {                                                                                    \
    double check_a_ = (a), check_b_ = (b);                                                \
    check_count++;                                                                        \
    if (!(fabs(check_a_ - check_b_) <= (tol)) && ++check_failures <= 20)                  \
      fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g, tol %g\n",         \
              __FILE__, __LINE__, #a, check_a_, #b, check_b_, (double)(tol));             \
  } while (0)

static inline int check_report(const char *name) {
  printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
  return check_failures ? 1 : 0;
}
#endif
