/* selftest_sample: the built-in passages of `spladex selftest` (host/selftest_sample.c, written by
 * scripts/gen_selftest_sample.py): real English text (WordNet glosses) of varied length, so that
 * a node can be checked with nothing but the binary and a model. */
#ifndef SPLADEX_SELFTEST_SAMPLE_H
#define SPLADEX_SELFTEST_SAMPLE_H

extern const int selftest_sample_count;
extern const char *const selftest_sample_ids[];   /* [count] "wn-<pos>-<offset>" */
extern const char *const selftest_sample_texts[]; /* [count] UTF-8 passages */

#endif
