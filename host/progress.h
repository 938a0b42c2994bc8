/* progress: the expansion job's progress report on stderr.
 *
 * docs/s, tokens/s, the fraction of the input read and an ETA. On a terminal the line is a bar
 * redrawn in place (about 4 times a second); otherwise (a log file, a Slurm job) a plain line is
 * printed every interval seconds (default 10, env SPLADEX_PROGRESS_INTERVAL overrides), so logs
 * stay readable. Single-threaded: one thread calls update.
 */
#ifndef SPLADEX_PROGRESS_H
#define SPLADEX_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct progress progress;

/* Starts a report to `to` (normally stderr). total_bytes is the input size for the ETA (0 if
 * unknown). quiet = 1 prints nothing. Returns the object (NULL only when out of memory, which
 * callers may ignore: every function accepts NULL). Free with progress_free(). */
progress *progress_new(FILE *to, int64_t total_bytes, int quiet);

/* Reports the totals so far: docs and tokens encoded by this process, input bytes read (of
 * total_bytes), and shards finished. Prints only when the interval has passed. */
void progress_update(progress *p, int64_t docs, int64_t tokens, int64_t bytes_done,
                     int64_t shards_done);

/* Prints the final line (always), ending the bar on a terminal. */
void progress_finish(progress *p);

/* Seconds since progress_new. */
double progress_elapsed(const progress *p);

/* Frees. progress_free(NULL) is a no-op. */
void progress_free(progress *p);

#endif
