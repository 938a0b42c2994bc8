/* test_cuda_emu_runtime: the emulated CUDA runtime, cuBLAS and cuSPARSE of
 * tests/emu/cuda_emu_runtime.cpp against plain references written here: cublasGemmEx against a
 * triple loop in double (all four transpose combinations, fp32 / fp16 / bf16 operands, fp32 and
 * 16-bit outputs, odd sizes, lds above the minimum) and, for fp32, bit for bit against the in-order
 * fp32 sum the header promises; cusparseCsr2cscEx2 against a naive transpose; the argument,
 * direction and registry checks; the aborts (in a forked child, its stderr read back). CPU only:
 * nothing here runs on a GPU. */
#include "cuda_emu_runtime.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cusparse.h>

#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../check.h"

namespace {

std::mt19937 rng(12345);

float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

/* A host array of `count` values of type t (fp32, fp16 or bf16 bits) and its values widened. */
struct typed {
  cudaDataType t;
  std::vector<unsigned char> bytes;
  std::vector<double> value;
};

size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

typed random_typed(cudaDataType t, size_t count) {
  typed a{t, std::vector<unsigned char>(count * type_size(t)), std::vector<double>(count)};
  for (size_t i = 0; i < count; i++) {
    const float v = uniform(-1.0f, 1.0f);
    if (t == CUDA_R_32F) {
      memcpy(&a.bytes[i * 4], &v, 4);
      a.value[i] = v;
    } else if (t == CUDA_R_16F) {
      const __half h = __float2half_rn(v);
      memcpy(&a.bytes[i * 2], &h, 2);
      a.value[i] = __half2float(h);
    } else {
      const __nv_bfloat16 h = __float2bfloat16_rn(v);
      memcpy(&a.bytes[i * 2], &h, 2);
      a.value[i] = __bfloat162float(h);
    }
  }
  return a;
}

double read_typed(const std::vector<unsigned char> &bytes, size_t i, cudaDataType t) {
  if (t == CUDA_R_32F) {
    float v;
    memcpy(&v, &bytes[i * 4], 4);
    return v;
  }
  uint16_t bits;
  memcpy(&bits, &bytes[i * 2], 2);
  return t == CUDA_R_16F ? __half2float(std::bit_cast<__half>(bits))
                         : __bfloat162float(std::bit_cast<__nv_bfloat16>(bits));
}

void *to_device(const std::vector<unsigned char> &host) {
  void *d = nullptr;
  CHECK(cudaMalloc(&d, host.size()) == cudaSuccess);
  CHECK(cudaMemcpy(d, host.data(), host.size(), cudaMemcpyHostToDevice) == cudaSuccess);
  return d;
}

std::vector<unsigned char> to_host(const void *d, size_t bytes) {
  std::vector<unsigned char> host(bytes);
  CHECK(cudaMemcpy(host.data(), d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

/* One GemmEx against the double triple loop (and, for fp32, the in-order fp32 sum bit for bit).
 * beta_nan: beta 0 over a C full of NaN, which must not leak. */
void gemm_case(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
               cudaDataType ab, cudaDataType ct, bool beta_nan) {
  const int pad = 3;
  const int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
  const int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
  const int lda = a_rows + pad, ldb = b_rows + pad + 1, ldc = m + pad + 2;
  typed A = random_typed(ab, (size_t)lda * a_cols), B = random_typed(ab, (size_t)ldb * b_cols);
  typed C = random_typed(ct, (size_t)ldc * n);
  const float alpha = 1.25f, beta = beta_nan ? 0.0f : -0.5f;
  if (beta_nan) std::fill(C.bytes.begin(), C.bytes.end(), (unsigned char)0xff);
  void *dA = to_device(A.bytes), *dB = to_device(B.bytes), *dC = to_device(C.bytes);
  CHECK(cublasGemmEx(h, ta, tb, m, n, k, &alpha, dA, ab, lda, dB, ab, ldb, &beta, dC, ct, ldc,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
  const std::vector<unsigned char> out = to_host(dC, C.bytes.size());
  const double unit = ct == CUDA_R_32F ? 0 : ct == CUDA_R_16F ? 1.0 / 2048 : 1.0 / 256;
  int bad = 0, inexact = 0;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double sum = 0, mag = 0;
      float fsum = 0;
      for (int p = 0; p < k; p++) {
        const double a = A.value[ta == CUBLAS_OP_N ? (size_t)p * lda + i : (size_t)i * lda + p];
        const double b = B.value[tb == CUBLAS_OP_N ? (size_t)j * ldb + p : (size_t)p * ldb + j];
        sum += a * b;
        mag += fabs(a * b);
        volatile float prod = (float)a * (float)b; /* rounded: no contraction into an FMA */
        fsum = fsum + prod;
      }
      const size_t at = (size_t)j * ldc + i;
      double ref = alpha * sum;
      if (!beta_nan) ref += beta * C.value[at], mag += fabs(beta * C.value[at]);
      const double got = read_typed(out, at, ct);
      const double tol = 1e-6 * (alpha * mag + 1) + unit * fabs(ref) * 1.01;
      if (!(fabs(got - ref) <= tol) && bad++ < 3)
        fprintf(stderr, "gemm ta %d tb %d types %d->%d: C(%d,%d) = %.9g, reference %.9g\n",
                (int)ta, (int)tb, (int)ab, (int)ct, i, j, got, ref);
      if (ab == CUDA_R_32F && ct == CUDA_R_32F) {
        volatile float scaled = alpha * fsum;
        float expect = scaled;
        if (!beta_nan) {
          volatile float old = beta * (float)C.value[at];
          expect = scaled + old;
        }
        if ((float)got != expect) inexact++;
      }
    }
  for (int j = 0; j < n; j++) /* the padding rows of C (i >= m) are untouched */
    for (int i = m; i < ldc; i++)
      if (memcmp(&out[((size_t)j * ldc + i) * type_size(ct)],
                 &C.bytes[((size_t)j * ldc + i) * type_size(ct)], type_size(ct)) != 0)
        bad++;
  CHECK(bad == 0);
  CHECK(inexact == 0);
  CHECK(cudaFree(dA) == cudaSuccess && cudaFree(dB) == cudaSuccess && cudaFree(dC) == cudaSuccess);
}

void test_gemm(void) {
  cublasHandle_t h = nullptr;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  cudaStream_t s = nullptr, got = (cudaStream_t)1;
  CHECK(cublasGetStream(h, &got) == CUBLAS_STATUS_SUCCESS && got == nullptr);
  CHECK(cudaStreamCreate(&s) == cudaSuccess);
  CHECK(cublasSetStream(h, s) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasGetStream(h, &got) == CUBLAS_STATUS_SUCCESS && got == s);
  CHECK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH) == CUBLAS_STATUS_SUCCESS);
  const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T};
  const cudaDataType types[] = {CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF};
  for (cublasOperation_t ta : ops)
    for (cublasOperation_t tb : ops)
      for (cudaDataType t : types) {
        gemm_case(h, ta, tb, 37, 19, 23, t, CUDA_R_32F, false);
        if (t != CUDA_R_32F) gemm_case(h, ta, tb, 37, 19, 23, t, t, false);
      }
  gemm_case(h, CUBLAS_OP_N, CUBLAS_OP_N, 37, 19, 23, CUDA_R_32F, CUDA_R_32F, true);
  gemm_case(h, CUBLAS_OP_T, CUBLAS_OP_N, 37, 19, 23, CUDA_R_16BF, CUDA_R_16BF, true);
  gemm_case(h, CUBLAS_OP_C, CUBLAS_OP_T, 7, 5, 3, CUDA_R_32F, CUDA_R_32F, false);
  gemm_case(h, CUBLAS_OP_N, CUBLAS_OP_N, 5, 4, 0, CUDA_R_32F, CUDA_R_32F, false); /* C = beta C */
  gemm_case(h, CUBLAS_OP_T, CUBLAS_OP_N, 601, 70, 100, CUDA_R_32F, CUDA_R_32F, false); /* 2 threads */
  gemm_case(h, CUBLAS_OP_T, CUBLAS_OP_N, 601, 70, 100, CUDA_R_16F, CUDA_R_16F, false);

  /* argument checks, as cuBLAS */
  const float one = 1.0f;
  void *d = nullptr;
  CHECK(cudaMalloc(&d, 4096) == cudaSuccess);
  auto gemm = [&](cublasHandle_t hh, cublasOperation_t ta, int m, int n, int k, int lda, int ldb,
                  int ldc, cudaDataType t, cublasComputeType_t ct) {
    return cublasGemmEx(hh, ta, CUBLAS_OP_N, m, n, k, &one, d, t, lda, d, t, ldb, &one, d, t, ldc,
                        ct, CUBLAS_GEMM_DEFAULT);
  };
  CHECK(gemm(h, CUBLAS_OP_N, 4, 4, 4, 4, 4, 4, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(h, CUBLAS_OP_N, 4, 4, 4, 3, 4, 4, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_INVALID_VALUE); /* lda < m */
  CHECK(gemm(h, CUBLAS_OP_T, 8, 2, 4, 4, 4, 8, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_SUCCESS); /* T: lda >= k is enough */
  CHECK(gemm(h, CUBLAS_OP_T, 8, 2, 4, 3, 4, 8, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_INVALID_VALUE); /* T: lda < k */
  CHECK(gemm(h, CUBLAS_OP_N, 4, 4, 4, 4, 3, 4, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_INVALID_VALUE); /* ldb < k */
  CHECK(gemm(h, CUBLAS_OP_N, 4, 4, 4, 4, 4, 3, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_INVALID_VALUE); /* ldc < m */
  CHECK(gemm(h, CUBLAS_OP_N, -1, 4, 4, 4, 4, 4, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(h, CUBLAS_OP_N, 0, 4, 4, 1, 4, 1, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_SUCCESS); /* m == 0: nothing to do, ld minimum 1 */
  CHECK(gemm(nullptr, CUBLAS_OP_N, 4, 4, 4, 4, 4, 4, CUDA_R_32F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(gemm(h, CUBLAS_OP_N, 4, 4, 4, 4, 4, 4, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32) ==
        CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK(gemm(h, CUBLAS_OP_N, 4, 4, 4, 4, 4, 4, CUDA_R_64F, CUBLAS_COMPUTE_32F) ==
        CUBLAS_STATUS_NOT_SUPPORTED);
  CHECK(cublasSetWorkspace(h, d, 4096) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasSetWorkspace(h, (char *)d + 4, 1024) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(cublasSetWorkspace(h, nullptr, 0) == CUBLAS_STATUS_SUCCESS);
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(cudaStreamDestroy(s) == cudaSuccess);
}

/* csr2csc of a random m x n CSR (base 0 or 1) against a naive transpose. */
void csr2csc_case(int m, int n, int base, cusparseAction_t action) {
  std::vector<int> rowptr(1, base), colind;
  std::vector<float> val;
  for (int i = 0; i < m; i++) {
    if (i % 4 != 1) /* every fourth row empty */
      for (int j = 0; j < n; j++)
        if (j % 3 != 2 && uniform(0, 1) < 0.4f) { /* every third column empty */
          colind.push_back(j + base);
          val.push_back(uniform(-1, 1));
        }
    rowptr.push_back((int)colind.size() + base);
  }
  const int nnz = (int)colind.size();
  std::vector<int> ref_colptr(1, base), ref_rowind;
  std::vector<float> ref_val;
  for (int j = 0; j < n; j++) {
    for (int i = 0; i < m; i++)
      for (int q = rowptr[i] - base; q < rowptr[i + 1] - base; q++)
        if (colind[q] - base == j) ref_rowind.push_back(i + base), ref_val.push_back(val[q]);
    ref_colptr.push_back((int)ref_rowind.size() + base);
  }
  cusparseHandle_t h = nullptr;
  CHECK(cusparseCreate(&h) == CUSPARSE_STATUS_SUCCESS);
  int *d_rowptr, *d_colind, *d_colptr, *d_rowind;
  float *d_val, *d_cval;
  void *buffer;
  size_t bytes = 0;
  CHECK(cudaMalloc((void **)&d_rowptr, 4 * (m + 1)) == cudaSuccess);
  CHECK(cudaMalloc((void **)&d_colind, 4 * nnz) == cudaSuccess);
  CHECK(cudaMalloc((void **)&d_val, 4 * nnz) == cudaSuccess);
  CHECK(cudaMalloc((void **)&d_colptr, 4 * (n + 1)) == cudaSuccess);
  CHECK(cudaMalloc((void **)&d_rowind, 4 * nnz) == cudaSuccess);
  CHECK(cudaMalloc((void **)&d_cval, 4 * nnz) == cudaSuccess);
  CHECK(cudaMemcpy(d_rowptr, rowptr.data(), 4 * (m + 1), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d_colind, colind.data(), 4 * nnz, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d_val, val.data(), 4 * nnz, cudaMemcpyHostToDevice) == cudaSuccess);
  const cusparseIndexBase_t b = base ? CUSPARSE_INDEX_BASE_ONE : CUSPARSE_INDEX_BASE_ZERO;
  CHECK(cusparseCsr2cscEx2_bufferSize(h, m, n, nnz, d_val, d_rowptr, d_colind, d_cval, d_colptr,
                                      d_rowind, CUDA_R_32F, action, b, CUSPARSE_CSR2CSC_ALG1,
                                      &bytes) == CUSPARSE_STATUS_SUCCESS);
  CHECK(bytes > 0);
  CHECK(cudaMalloc(&buffer, bytes) == cudaSuccess);
  CHECK(cusparseCsr2cscEx2(h, m, n, nnz, d_val, d_rowptr, d_colind, d_cval, d_colptr, d_rowind,
                           CUDA_R_32F, action, b, CUSPARSE_CSR2CSC_ALG1, buffer) ==
        CUSPARSE_STATUS_SUCCESS);
  std::vector<int> colptr(n + 1), rowind(nnz);
  std::vector<float> cval(nnz);
  CHECK(cudaMemcpy(colptr.data(), d_colptr, 4 * (n + 1), cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(cudaMemcpy(rowind.data(), d_rowind, 4 * nnz, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(cudaMemcpy(cval.data(), d_cval, 4 * nnz, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(colptr == ref_colptr);
  CHECK(rowind == ref_rowind);
  if (action == CUSPARSE_ACTION_NUMERIC) CHECK(cval == ref_val);
  else /* symbolic: the values untouched (still the 0xff fill of cudaMalloc) */
    CHECK(nnz == 0 || std::isnan(cval[0]));

  /* an invalid CSR is refused: a column out of range, then a decreasing row pointer */
  if (nnz > 1) {
    const int bad_col = n + base, saved = colind[nnz - 1];
    CHECK(cudaMemcpy(d_colind + nnz - 1, &bad_col, 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cusparseCsr2cscEx2(h, m, n, nnz, d_val, d_rowptr, d_colind, d_cval, d_colptr, d_rowind,
                             CUDA_R_32F, action, b, CUSPARSE_CSR2CSC_ALG1, buffer) ==
          CUSPARSE_STATUS_INVALID_VALUE);
    CHECK(cudaMemcpy(d_colind + nnz - 1, &saved, 4, cudaMemcpyHostToDevice) == cudaSuccess);
    const int big = nnz + base + 1;
    CHECK(cudaMemcpy(d_rowptr + 1, &big, 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cusparseCsr2cscEx2(h, m, n, nnz, d_val, d_rowptr, d_colind, d_cval, d_colptr, d_rowind,
                             CUDA_R_32F, action, b, CUSPARSE_CSR2CSC_ALG1, buffer) ==
          CUSPARSE_STATUS_INVALID_VALUE);
  }
  CHECK(cusparseCsr2cscEx2(h, -1, n, nnz, d_val, d_rowptr, d_colind, d_cval, d_colptr, d_rowind,
                           CUDA_R_32F, action, b, CUSPARSE_CSR2CSC_ALG1, buffer) ==
        CUSPARSE_STATUS_INVALID_VALUE);
  CHECK(cusparseCsr2cscEx2(h, m, n, nnz, d_val, d_rowptr, d_colind, d_cval, d_colptr, d_rowind,
                           CUDA_R_32F, action, b, CUSPARSE_CSR2CSC_ALG1, nullptr) ==
        CUSPARSE_STATUS_INVALID_VALUE);
  for (void *p : {(void *)d_rowptr, (void *)d_colind, (void *)d_val, (void *)d_colptr,
                  (void *)d_rowind, (void *)d_cval, buffer})
    CHECK(cudaFree(p) == cudaSuccess);
  CHECK(cusparseDestroy(h) == CUSPARSE_STATUS_SUCCESS);
}

void test_csr2csc(void) {
  csr2csc_case(13, 11, 0, CUSPARSE_ACTION_NUMERIC);
  csr2csc_case(40, 29, 1, CUSPARSE_ACTION_NUMERIC);
  csr2csc_case(17, 9, 0, CUSPARSE_ACTION_SYMBOLIC);
}

void test_memory(void) {
  char *d = nullptr, *pinned = nullptr;
  char host[64] = {0};
  CHECK(cudaMalloc((void **)&d, 64) == cudaSuccess && d && (uintptr_t)d % 256 == 0);
  CHECK(cudaMallocHost((void **)&pinned, 64) == cudaSuccess && pinned);
  CHECK(cuda_emu_device_range(d, 64) && cuda_emu_device_range(d + 8, 56));
  CHECK(!cuda_emu_device_range(d + 8, 57) && !cuda_emu_device_range(host, 1));
  CHECK(!cuda_emu_device_range(pinned, 1));
  (void)cudaGetLastError();
  CHECK(cudaMemcpy(d, host, 64, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(host, d, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue); /* reversed */
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess); /* cleared */
  CHECK(cudaMemcpy(d, d + 32, 32, cudaMemcpyHostToDevice) == cudaErrorInvalidValue); /* src dev */
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue); /* not cleared */
  (void)cudaGetLastError();
  CHECK(cudaMemcpy(host, d, 64, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(cudaMemcpy(host, d + 1, 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue); /* overrun */
  CHECK(cudaMemcpy(d, pinned, 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(d, d + 32, 32, cudaMemcpyDeviceToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d, host, 32, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(pinned, d, 64, cudaMemcpyDefault) == cudaSuccess);
  CHECK(cudaMemcpy(d, pinned, 64, cudaMemcpyDefault) == cudaSuccess);
  CHECK(cudaMemcpy(d, pinned + 1, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue); /* past */
  CHECK(cudaMemcpy(host, pinned, 64, cudaMemcpyHostToHost) == cudaSuccess);
  CHECK(cudaMemcpy(host, d, 0, cudaMemcpyHostToDevice) == cudaSuccess); /* count 0 */
  CHECK(cudaMemcpy(d, host, 8, (cudaMemcpyKind)7) == cudaErrorInvalidMemcpyDirection);
  CHECK(cudaMemset(d, 0x11, 64) == cudaSuccess);
  CHECK(cudaMemset(host, 0, 8) == cudaErrorInvalidValue);
  CHECK(cudaMemset(d + 60, 0, 8) == cudaErrorInvalidValue);
  cudaStream_t s = nullptr;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  CHECK(cudaMemcpyAsync(host, d, 64, cudaMemcpyDeviceToHost, s) == cudaSuccess && host[5] == 0x11);
  CHECK(cudaMemsetAsync(d, 0, 64, s) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(cudaStreamDestroy(s) == cudaSuccess);
  CHECK(cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle);
  CHECK(cudaMemsetAsync(d, 0, 64, s) == cudaErrorInvalidResourceHandle); /* destroyed stream */
  void *fresh = nullptr;
  CHECK(cudaMallocAsync(&fresh, 16, nullptr) == cudaSuccess);
  CHECK(std::isnan(*(float *)fresh)); /* new device memory reads as NaN, not zero */
  CHECK(cudaFreeAsync(fresh, nullptr) == cudaSuccess);
  CHECK(cudaFree(d + 8) == cudaErrorInvalidValue); /* interior pointer */
  CHECK(cudaFreeHost(d) == cudaErrorInvalidValue); /* device memory to cudaFreeHost */
  CHECK(cudaFree(pinned) == cudaErrorInvalidValue); /* pinned memory to cudaFree */
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(cudaFree(d) == cudaErrorInvalidValue); /* twice */
  CHECK(!cuda_emu_device_range(d, 1));
  CHECK(cudaFree(nullptr) == cudaSuccess);
  CHECK(cudaFreeHost(pinned) == cudaSuccess);
  void *huge = nullptr;
  CHECK(cudaMalloc(&huge, (size_t)9 << 30) == cudaErrorMemoryAllocation); /* over 8 GiB */
  (void)cudaGetLastError();
}

void test_device(void) {
  int count = 0, dev = -1, v = 0;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == 1);
  CHECK(cudaSetDevice(0) == cudaSuccess);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaGetDevice(&dev) == cudaSuccess && dev == 0);
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(strstr(prop.name, "EMULATED") != nullptr && strstr(prop.name, "not a GPU") != nullptr);
  CHECK(prop.major == 9 && prop.minor == 0 && prop.totalGlobalMem == ((size_t)8 << 30));
  CHECK(prop.sharedMemPerBlockOptin == 232448 && prop.maxGridSize[1] == 65535);
  CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess && v == 9);
  CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == cudaSuccess &&
        v == 232448);
  CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, 0) == cudaErrorInvalidValue);
  static int kernel_a, kernel_b; /* stand-ins for two kernels' function pointers */
  CHECK(cuda_emu_dynamic_smem_limit(&kernel_a) == 49152);
  CHECK(cudaFuncSetAttribute(&kernel_a, cudaFuncAttributeMaxDynamicSharedMemorySize, 100000) ==
        cudaSuccess);
  CHECK(cuda_emu_dynamic_smem_limit(&kernel_a) == 100000);
  CHECK(cuda_emu_dynamic_smem_limit(&kernel_b) == 49152);
  CHECK(cudaFuncSetAttribute(&kernel_b, cudaFuncAttributeMaxDynamicSharedMemorySize, 232449) ==
        cudaErrorInvalidValue);
  CHECK(cudaFuncSetAttribute(&kernel_b, cudaFuncAttributePreferredSharedMemoryCarveout,
                             cudaSharedmemCarveoutMaxShared) == cudaSuccess);
  cuda_emu_record_error(cudaErrorLaunchOutOfResources);
  CHECK(cudaPeekAtLastError() == cudaErrorLaunchOutOfResources);
  CHECK(cudaGetLastError() == cudaErrorLaunchOutOfResources);
  CHECK(cudaGetLastError() == cudaSuccess);

  cudaEvent_t a = nullptr, b = nullptr, untimed = nullptr;
  float ms = -1;
  CHECK(cudaEventCreate(&a) == cudaSuccess && cudaEventCreate(&b) == cudaSuccess);
  CHECK(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming | cudaEventBlockingSync) ==
        cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, a, b) == cudaErrorInvalidResourceHandle); /* not recorded */
  CHECK(cudaEventRecord(a, nullptr) == cudaSuccess);
  CHECK(cudaEventRecord(b, nullptr) == cudaSuccess && cudaEventSynchronize(b) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, a, b) == cudaSuccess && ms >= 0 && ms < 1000);
  CHECK(cudaEventRecord(untimed, nullptr) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, a, untimed) == cudaErrorInvalidResourceHandle);
  CHECK(cudaEventDestroy(a) == cudaSuccess && cudaEventDestroy(b) == cudaSuccess);
  CHECK(cudaEventDestroy(untimed) == cudaSuccess);
  CHECK(cudaEventDestroy(a) == cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();
}

void test_names(void) {
  CHECK(strcmp(cudaGetErrorName(cudaSuccess), "cudaSuccess") == 0);
  CHECK(strcmp(cudaGetErrorName(cudaErrorInvalidValue), "cudaErrorInvalidValue") == 0);
  CHECK(strcmp(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument") == 0);
  CHECK(strcmp(cudaGetErrorName(cudaErrorMemoryAllocation), "cudaErrorMemoryAllocation") == 0);
  CHECK(strcmp(cudaGetErrorName(cudaErrorInvalidDevice), "cudaErrorInvalidDevice") == 0);
  CHECK(strcmp(cudaGetErrorName(cudaErrorInvalidConfiguration),
               "cudaErrorInvalidConfiguration") == 0);
  CHECK(strcmp(cudaGetErrorName(cudaErrorInvalidResourceHandle),
               "cudaErrorInvalidResourceHandle") == 0);
  CHECK(strcmp(cudaGetErrorName(cudaErrorLaunchOutOfResources),
               "cudaErrorLaunchOutOfResources") == 0);
  CHECK(strcmp(cudaGetErrorName((cudaError_t)12345), "cudaErrorUnknown") == 0);
  CHECK(strcmp(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") ==
        0);
  CHECK(strcmp(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED") ==
        0);
  CHECK(strcmp(cusparseGetErrorName(CUSPARSE_STATUS_INVALID_VALUE),
               "CUSPARSE_STATUS_INVALID_VALUE") == 0);
  CHECK(strlen(cublasGetStatusString(CUBLAS_STATUS_SUCCESS)) > 0);
  CHECK(strlen(cusparseGetErrorString(CUSPARSE_STATUS_NOT_SUPPORTED)) > 0);
}

/* Two host threads (the encoder's reader and writer) allocating, copying, recording events and
 * freeing at once: the registries hold (run under -fsanitize=thread to see a race). */
void test_threads(void) {
  int ok[2] = {0, 0};
  auto work = [&ok](int t) {
    cudaEvent_t e = nullptr;
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) return;
    for (int i = 0; i < 200; i++) {
      char host[96], back[96];
      memset(host, t * 50 + i % 50, sizeof host);
      void *d = nullptr;
      if (cudaMalloc(&d, sizeof host) == cudaSuccess &&
          cudaMemcpy(d, host, sizeof host, cudaMemcpyHostToDevice) == cudaSuccess &&
          cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost) == cudaSuccess &&
          memcmp(host, back, sizeof host) == 0 && cudaEventRecord(e, nullptr) == cudaSuccess &&
          cudaEventSynchronize(e) == cudaSuccess && cudaFree(d) == cudaSuccess)
        ok[t]++;
    }
    if (cudaEventDestroy(e) != cudaSuccess) ok[t] = -1;
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  CHECK(ok[0] == 200 && ok[1] == 200);
}

/* Runs body in a forked child; true when the child died of SIGABRT and its stderr holds `needle`. */
bool aborts_with(const char *needle, const std::function<void()> &body, bool report = true) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    body();
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[512];
  ssize_t got;
  while ((got = read(fds[0], buf, sizeof buf)) > 0) text.append(buf, (size_t)got);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
                  text.find(needle) != std::string::npos;
  if (!ok && report) fprintf(stderr, "expected an abort naming \"%s\"; the child said: %s\n", needle,
                   text.c_str());
  return ok;
}

void test_aborts(void) {
  void *d = nullptr;
  CHECK(cudaMalloc(&d, 1024) == cudaSuccess);
  static float host_c[64];
  const float one = 1.0f;
  CHECK(aborts_with("operand C", [&] {
    cublasHandle_t h;
    cublasCreate(&h);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_32F, 4, d, CUDA_R_32F, 4,
                 &one, host_c, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }));
  CHECK(aborts_with("operand A", [&] { /* A of 16 x 16 floats = 1024 bytes, ld 17 overruns */
    cublasHandle_t h;
    cublasCreate(&h);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 16, 1, 16, &one, d, CUDA_R_32F, 17, d, CUDA_R_32F,
                 16, &one, d, CUDA_R_32F, 16, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }));
  CHECK(aborts_with("the workspace", [&] {
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSetWorkspace(h, d, 2048); /* larger than the allocation */
  }));
  CHECK(aborts_with("my buffer", [&] {
    cuda_emu_require_device_range((char *)d + 1000, 25, "my buffer");
  }));
  CHECK(aborts_with("csrRowPtr", [&] {
    cusparseHandle_t h;
    cusparseCreate(&h);
    static int rowptr[3] = {0, 0, 0};
    cusparseCsr2cscEx2(h, 2, 2, 0, d, rowptr, (int *)d, d, (int *)d, (int *)d, CUDA_R_32F,
                       CUSPARSE_ACTION_NUMERIC, CUSPARSE_INDEX_BASE_ZERO, CUSPARSE_CSR2CSC_ALG1, d);
  }));
  CHECK(!aborts_with("never", [&] { cuda_emu_require_device_range(d, 1024, "never"); }, false));
  CHECK(cudaFree(d) == cudaSuccess);
}

} /* namespace */

int main(void) {
  test_device();
  test_names();
  test_memory();
  test_gemm();
  test_csr2csc();
  test_threads();
  test_aborts();
  return check_report("test_cuda_emu_runtime");
}
