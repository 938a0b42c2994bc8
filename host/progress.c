/* progress: a bar on a terminal, plain periodic lines elsewhere (see progress.h). */
#include "progress.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct progress {
  FILE *to;
  int tty, quiet;
  double interval; /* seconds between prints */
  double start, last_print;
  int64_t total_bytes;
  int64_t docs, tokens, bytes, shards;
  int printed_bar;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

progress *progress_new(FILE *to, int64_t total_bytes, int quiet) {
  progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->to = to;
  p->quiet = quiet;
  p->tty = isatty(fileno(to));
  p->interval = p->tty ? 0.25 : 10.0;
  const char *env = getenv("SPLADEX_PROGRESS_INTERVAL");
  if (env && atof(env) > 0) p->interval = atof(env);
  p->start = p->last_print = now_seconds();
  p->total_bytes = total_bytes;
  return p;
}

static void format_duration(double s, char *out, size_t cap) {
  if (s < 0 || s > 1e7) {
    snprintf(out, cap, "?");
    return;
  }
  long t = (long)(s + 0.5);
  snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

static void print_line(progress *p, int final) {
  double t = now_seconds() - p->start;
  double docs_s = t > 0 ? (double)p->docs / t : 0, tok_s = t > 0 ? (double)p->tokens / t : 0;
  double frac = p->total_bytes > 0 ? (double)p->bytes / (double)p->total_bytes : 0;
  if (frac > 1) frac = 1;
  char eta[32], elapsed[32];
  format_duration(frac > 0 ? t * (1 - frac) / frac : -1, eta, sizeof eta);
  format_duration(t, elapsed, sizeof elapsed);
  if (p->tty) {
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(p->to, "\r[%s] %3.0f%%  %lld docs  %.0f docs/s  %.0f tok/s  %lld shards  %s %s\033[K",
            bar, 100 * frac, (long long)p->docs, docs_s, tok_s, (long long)p->shards,
            final ? "elapsed" : "ETA", final ? elapsed : eta);
    if (final) fputc('\n', p->to);
    p->printed_bar = !final;
  } else {
    fprintf(p->to, "spladex: %s%lld docs, %.0f docs/s, %.0f tok/s, %lld shards, input %.1f%%, %s %s\n",
            final ? "done: " : "", (long long)p->docs, docs_s, tok_s, (long long)p->shards,
            100 * frac, final ? "elapsed" : "ETA", final ? elapsed : eta);
  }
  fflush(p->to);
}

void progress_update(progress *p, int64_t docs, int64_t tokens, int64_t bytes_done,
                     int64_t shards_done) {
  if (!p) return;
  p->docs = docs;
  p->tokens = tokens;
  p->bytes = bytes_done;
  p->shards = shards_done;
  if (p->quiet) return;
  double t = now_seconds();
  if (t - p->last_print < p->interval) return;
  p->last_print = t;
  print_line(p, 0);
}

void progress_finish(progress *p) {
  if (!p || p->quiet) return;
  print_line(p, 1);
}

double progress_elapsed(const progress *p) { return p ? now_seconds() - p->start : 0; }

void progress_free(progress *p) {
  if (p && p->printed_bar && !p->quiet) {
    fputc('\n', p->to);
    fflush(p->to);
  }
  free(p);
}
