/* bench_gemm: sgemm speed of a GEMM library at the CPU encoder's shapes (issue 18).
 *
 * Every matmul of the encoder is ops_linear's y (M, N) = x (M, K) . w^T, w stored (N, K)
 * row-major: cblas_sgemm(RowMajor, NoTrans, Trans). M is the tokens of one packed batch
 * (`spladex encode` packs up to 64 passages: about 6000 tokens of MS MARCO-like passages), K/N
 * are 768 / 3072 (attention projections, FFN) and one thread's decoder block (512 tokens x 2048 terms of
 * the 30522). The same source builds against each library (one macro picks it); the build lines
 * are in benchmarks/RESULTS.md ("CPU encoder vs ONNX Runtime"):
 *   (default)             <cblas.h>: Debian's OpenBLAS
 *   -DGEMM_BLIS           BLIS (<blis.h>, its cblas_sgemm)
 *   -DGEMM_SCIPY_OPENBLAS the scipy-openblas32 wheel's libscipy_openblas.so (scipy_ prefixed)
 *   -DGEMM_DNNL           oneDNN's dnnl_sgemm (row-major; threads: OMP_NUM_THREADS)
 * Three ways to use T threads are timed for the BLAS libraries:
 *   lib    the library's own threads (set_num_threads(T)), one call from one thread;
 *   rows   T pthreads, each a single-threaded call on its own slice of M (tokens: how the CPU
 *          encoder splits its layers' matmuls since issue 18);
 *   cols   T pthreads, each a single-threaded call on its own slice of N (the rows of w: how it
 *          splits the decoder, each thread pooling its own terms).
 * Each shape runs --reps times (after one warm-up call); the best time is reported as GFLOP/s,
 * 2*M*N*K / seconds; "lib GF/cpu-s" divides by the process's CPU time instead (the library's
 * threads included, spinning too): on a shared machine, with 1 thread, the kernel's own speed.
 *
 * usage: bench_gemm [threads=2] [M=6000] [reps=5]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(GEMM_DNNL)
#include <dnnl.h>
#include <omp.h>
#define LIB_NAME "oneDNN dnnl_sgemm"
static void set_threads(int n) { omp_set_num_threads(n); }
static void sgemm_nt(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc) {
  dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}
#else
#if defined(GEMM_SCIPY_OPENBLAS)
#include <cblas.h>
#define LIB_NAME "scipy-openblas32 (OpenBLAS wheel)"
#define SGEMM scipy_cblas_sgemm
static void set_threads(int n) { scipy_openblas_set_num_threads(n); }
#elif defined(GEMM_BLIS)
#include <blis.h>
#define LIB_NAME "BLIS"
#define SGEMM cblas_sgemm
static void set_threads(int n) { bli_thread_set_num_threads(n); }
#else
#include <cblas.h>
#define LIB_NAME "OpenBLAS (Debian)"
#define SGEMM cblas_sgemm
static void set_threads(int n) { openblas_set_num_threads(n); }
#endif
#define HAVE_SPLIT 1
static void sgemm_nt(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc) {
  SGEMM(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}
#endif

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  int m, n, k, lo, hi, by_rows;
  const float *a, *b;
  float *c;
} slice;

static void *run_slice(void *arg) {
  slice *s = arg;
  if (s->by_rows)
    sgemm_nt(s->hi - s->lo, s->n, s->k, s->a + (size_t)s->lo * s->k, s->k, s->b, s->k, s->c + (size_t)s->lo * s->n, s->n);
  else
    sgemm_nt(s->m, s->hi - s->lo, s->k, s->a, s->k, s->b + (size_t)s->lo * s->k, s->k, s->c + s->lo, s->n);
  return NULL;
}

enum { MODE_LIB, MODE_ROWS, MODE_COLS };

/* y (m, n) = a (m, k) . b^T: one library call, or threads pthreads over m (rows) or n (cols). */
static void gemm(int mode, int threads, int m, int n, int k, const float *a, const float *b, float *c) {
  if (mode == MODE_LIB) {
    sgemm_nt(m, n, k, a, k, b, k, c, n);
    return;
  }
  pthread_t tid[64];
  slice s[64];
  const int len = mode == MODE_ROWS ? m : n;
  for (int t = 0; t < threads; t++) {
    /* slices of a multiple of 16 keep the micro-kernel's panels whole */
    int lo = (int)((long long)len * t / threads) & ~15, hi = t == threads - 1 ? len : (int)((long long)len * (t + 1) / threads) & ~15;
    s[t] = (slice){m, n, k, lo, hi, mode == MODE_ROWS, a, b, c};
    if (t) pthread_create(&tid[t], NULL, run_slice, &s[t]);
  }
  run_slice(&s[0]);
  for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2, M = argc > 2 ? atoi(argv[2]) : 6000, reps = argc > 3 ? atoi(argv[3]) : 5;
  if (threads < 1 || threads > 64 || M < 1 || reps < 1) {
    fprintf(stderr, "usage: bench_gemm [threads 1..64] [M] [reps]\n");
    return 2;
  }
  struct {
    const char *name;
    int m, n, k;
  } shapes[] = {
      {"attention Q/K/V/O", M, 768, 768},   {"Q|K|V fused", M, 2304, 768},   {"FFN in", M, 3072, 768},
      {"FFN out", M, 768, 3072},            {"decoder block", 512, 2048, 768}, {"decoder, all V", 512, 30522, 768},
      {"square 2048", 2048, 2048, 2048},
  };
  const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
  size_t amax = 0, bmax = 0, cmax = 0;
  for (int i = 0; i < n_shapes; i++) {
    size_t a = (size_t)shapes[i].m * shapes[i].k, b = (size_t)shapes[i].n * shapes[i].k, c = (size_t)shapes[i].m * shapes[i].n;
    amax = a > amax ? a : amax;
    bmax = b > bmax ? b : bmax;
    cmax = c > cmax ? c : cmax;
  }
  float *a = malloc(amax * sizeof(float)), *b = malloc(bmax * sizeof(float)), *c = malloc(cmax * sizeof(float));
  if (!a || !b || !c) return 1;
  srand(1);
  for (size_t i = 0; i < amax; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
  for (size_t i = 0; i < bmax; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
  printf("%s, %d threads, best of %d\n%-20s %6s %6s %6s %10s %13s %10s %10s\n", LIB_NAME, threads, reps, "shape", "M",
         "N", "K", "lib GF/s", "lib GF/cpu-s", "rows GF/s", "cols GF/s");
  for (int i = 0; i < n_shapes; i++) {
    double best[3] = {0, 0, 0}, best_cpu = 0;
#ifdef HAVE_SPLIT
    const int modes = 3;
#else
    const int modes = 1;
#endif
    for (int split = 0; split < modes; split++) {
      set_threads(split ? 1 : threads);
      for (int r = 0; r <= reps; r++) {
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        gemm(split, threads, shapes[i].m, shapes[i].n, shapes[i].k, a, b, c);
        double flop = 2.0 * shapes[i].m * shapes[i].n * shapes[i].k;
        double gf = flop / (clock_s(CLOCK_MONOTONIC) - t0) / 1e9, gf_cpu = flop / (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9;
        if (r > 0 && gf > best[split]) best[split] = gf; /* r == 0: the warm-up */
        if (r > 0 && !split && gf_cpu > best_cpu) best_cpu = gf_cpu;
      }
    }
    char rows_col[16] = "-", cols_col[16] = "-";
    if (modes > 1) {
      snprintf(rows_col, sizeof rows_col, "%.1f", best[MODE_ROWS]);
      snprintf(cols_col, sizeof cols_col, "%.1f", best[MODE_COLS]);
    }
    printf("%-20s %6d %6d %6d %10.1f %13.1f %10s %10s\n", shapes[i].name, shapes[i].m, shapes[i].n, shapes[i].k, best[0],
           best_cpu, rows_col, cols_col);
  }
  free(a);
  free(b);
  free(c);
  return 0;
}
