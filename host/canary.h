/* canary: does an encoder agree with the CPU encoder (the oracle) on a few passages?
 *
 * A CUDA `expand` job encodes its first passages on the device and on the CPU before it writes
 * anything, and stops when they disagree (cmd_expand.c); `spladex selftest` runs the same check
 * on a built-in sample of real English passages (cmd_selftest.c); tests/test_encoder_gpu.c and
 * tests/test_precision_emulation.c hold the GPU (and its emulation) to the same rules through
 * tests/encoder_compare.h. One rule, in one place:
 *
 *   weights   every (passage, term): |w_got - w_ref| <= bound, where the bound is absolute for
 *             fp32 (CANARY_ABS_FP32) and relative to the passage's largest reference weight for
 *             fp16 / bf16 (CANARY_REL_FP16 / CANARY_REL_BF16). A term kept by one row only (the
 *             other pruned it, or never had it) counts with its distance to the reference row's
 *             pruning boundary: the threshold, or the top_k-th reference weight when the
 *             reference row holds top_k terms. Without pruning that boundary is 0, so the
 *             distance is just |w_got - w_ref| with the missing weight 0.
 *   top sets  the top-CANARY_TOP terms (w > threshold, ties to the lower id) of the two rows are
 *             the same on >= CANARY_SAME_TOP_FRACTION of the passages, where a term in one set
 *             only counts as a tie when its reference weight (the device's, for a term the reference
 *             pruned) lies within the bound (the tie band)
 *             of the boundary of the reference's set: its last kept weight when the set was cut
 *             by a count (CANARY_TOP or top_k), else the threshold. Precision alone can swap such
 *             terms. The strict fraction (no ties allowed) and the band the fraction would need
 *             are measured too, for the record.
 * Why the bounds are these (2x the largest error of a bit-exact emulation of the device's
 * rounding, not yet calibrated on a GPU): tests/test_encoder_gpu.c and
 * tests/test_precision_emulation.c, header comments.
 *
 * Legend: D passages compared, V vocabulary.
 */
#ifndef SPLADEX_CANARY_H
#define SPLADEX_CANARY_H

#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "model.h"

enum {
  CANARY_TOP = 64,              /* the top-k whose term sets are compared */
  CANARY_DEFAULT_PASSAGES = 16  /* expand --canary K default */
};
#define CANARY_ABS_FP32 1e-4
#define CANARY_REL_FP16 5e-3
#define CANARY_REL_BF16 4e-2
#define CANARY_SAME_TOP_FRACTION 0.99

/* How two sets of rows are compared. */
typedef struct {
  double bound;      /* the weight bound, also the tie band */
  int relative;      /* 1: bound x the passage's largest reference weight; 0: absolute */
  float threshold;   /* both rows kept w > threshold (the encoders' option) */
  int top_k;         /* both rows kept their top_k largest (0 = all) */
} canary_rule;

/* The rule for a device that computes in precision p with the given pruning options:
 * fp32 absolute CANARY_ABS_FP32, fp16 / bf16 relative CANARY_REL_FP16 / CANARY_REL_BF16. */
canary_rule canary_rule_for(enc_precision p, float threshold, int top_k);

typedef struct {
  int n_docs;            /* D */
  double max_abs;        /* max over (passage, term) of the error above; INFINITY for a NaN */
  double max_rel;        /* the same / the passage's largest reference weight (1 when that is 0) */
  int same_top;          /* passages whose top sets agree, ties allowed */
  int same_top_strict;   /* passages whose top sets are identical */
  double same_top_fraction, same_top_strict_fraction;
  double band_needed;    /* the smallest relative tie band with which same_top_fraction would
                            reach CANARY_SAME_TOP_FRACTION (for calibrating the band) */
  int ok;                /* 1: max error (abs or rel, as the rule says) <= bound and
                            same_top_fraction >= CANARY_SAME_TOP_FRACTION */
  /* When !ok, the culprit: the first passage (in order) that breaks a rule, and its worst term. */
  int bad_doc;           /* passage index, -1 when ok */
  int bad_term;          /* vocabulary id */
  float bad_ref, bad_got;/* the two weights (0 = not kept) */
  double bad_error;      /* its error (absolute) */
  double bad_bound;      /* the absolute bound it broke (rule bound x largest weight if relative) */
  const char *bad_what;  /* "weight" or "top-64 set" (static) */
} canary_stats;

/* Compares the dense rows got (D, V) with the reference rows ref (D, V) under rule (a missing
 * term is 0). Returns 0 and *out, or ERR_NOMEM. */
int canary_compare(const float *ref, const float *got, int n_docs, int V, const canary_rule *rule,
                   canary_stats *out);

/* Marks the top-CANARY_TOP terms with w > floor of row (V) in mark (V): 1 for a kept term, 0 for
 * the others (heap of the best so far, ties to the lower id). Returns how many were marked;
 * *last gets the weight of the worst marked one (floor when none). */
int canary_top_set(const float *row, int V, float floor, unsigned char *mark, float *last);

/* ---- running the check ---- */

/* Passages to check: D token-id arrays ([CLS] ... [SEP], each within the encoders' max length)
 * and a name for each (the doc id) for the message. All borrowed. */
typedef struct {
  int n_docs;
  const int32_t *const *ids;  /* [D] (lengths[d]) */
  const int *lengths;         /* [D] */
  const char *const *names;   /* [D] */
} canary_passages;

typedef struct {
  canary_stats stats;
  canary_rule rule;       /* the rule applied */
  double device_seconds;  /* encoding the passages on the device under test */
  double cpu_seconds;     /* opening the CPU encoder and encoding the passages on it */
  char device[400];       /* enc_describe of the device under test */
} canary_result;

/* Encodes p with `device` (opened by the caller on m with device_opt, no batch in flight) and
 * with a CPU fp32 encoder opened here with device_opt's threads, pruning and lengths (batches cut
 * under device_opt's limits), and compares them under canary_rule_for(device_opt). Returns 0 and
 * *out (out->stats.ok says whether they agree), or an encoder's / ERR_NOMEM error.
 *
 * Test hook (not a user option): the environment variable SPLADEX_TEST_CANARY_FAULT=KIND:D
 * corrupts the device's rows before the comparison, so that tests can check what a wrong device
 * is told: KIND scale (passage D's largest weight x 1.5), drop (that term removed), nan (that
 * weight NaN) or swap (rows D and D + 1 exchanged); "none" corrupts nothing (a CPU job then runs
 * the canary against itself, as a test of the wiring). */
int canary_run(const model *m, encoder *device, const enc_options *device_opt,
               const canary_passages *p, canary_result *out);

/* 1 when SPLADEX_TEST_CANARY_FAULT is set (so that a CPU job runs the canary against itself). */
int canary_fault_injected(void);

/* Writes the one-line verdict on a failed check into buf[cap]: the passage (its name and
 * number), the term (from vocab, V terms), both weights, the error and the bound. */
void canary_describe_failure(const canary_result *r, const canary_passages *p,
                             const char *const *vocab, int V, char *buf, size_t cap);

#endif
