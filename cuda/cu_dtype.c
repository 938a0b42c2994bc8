/* cu_dtype: CPU twins of the CUDA float -> fp16 / bf16 conversions (see cu_dtype.h).
 * Bit manipulation rather than _Float16, so any C11 compiler builds it; tests/test_cuda_twins.c
 * checks it against the compiler's _Float16 and against a rounding written with doubles. */
#include "cu_dtype.h"

#include <math.h>
#include <string.h>

size_t cu_dtype_size(cu_dtype t) { return t == CU_F32 ? 4 : 2; }

const char *cu_dtype_name(cu_dtype t) {
  switch (t) {
    case CU_F16: return "fp16";
    case CU_BF16: return "bf16";
    default: return "fp32";
  }
}

uint32_t cu_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

float cu_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t cu_f32_to_f16_bits(float f) {
  const uint32_t x = cu_f32_bits(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7fffu;           /* NaN */
  if (ax >= 0x477ff000u) return sign | 0x7c00u;   /* >= 65520 (or inf): rounds to inf */
  if (ax < 0x38800000u) {                         /* below 2^-14: fp16 subnormal or zero */
    if (ax < 0x33000000u) return sign;            /* below 2^-25: rounds to zero */
    const uint32_t e = ax >> 23;                  /* 102 .. 112 */
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;              /* value / 2^-24 = m / 2^shift, shift 14 .. 24 */
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);                  /* r == 0x400 is the smallest normal: right */
  }
  const uint32_t mant = ax & 0x7fffffu;
  uint32_t r = (((ax >> 23) - 112u) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++; /* a carry into the exponent is right */
  return (uint16_t)(sign | r);
}

float cu_f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1fu) return cu_bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    /* zero or subnormal: m * 2^-24, exact in float */
    float v = (float)m * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return cu_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t cu_f32_to_bf16_bits(float f) {
  const uint32_t x = cu_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu; /* NaN */
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)((x + rounding) >> 16);             /* overflow carries into inf: right */
}

float cu_bf16_bits_to_f32(uint16_t h) { return cu_bits_f32((uint32_t)h << 16); }

uint16_t cu_f32_to_bits(float f, cu_dtype t) {
  return t == CU_F16 ? cu_f32_to_f16_bits(f) : cu_f32_to_bf16_bits(f);
}

float cu_bits_to_f32(uint16_t h, cu_dtype t) {
  return t == CU_F16 ? cu_f16_bits_to_f32(h) : cu_bf16_bits_to_f32(h);
}

double cu_ulp(double x, cu_dtype t) {
  const int mant = t == CU_F16 ? 10 : t == CU_BF16 ? 7 : 23;
  const double tiny = ldexp(1.0, t == CU_F16 ? -24 : t == CU_BF16 ? -133 : -149);
  int e = 0;
  if (x == 0.0) return tiny;
  frexp(fabs(x), &e); /* |x| = f 2^e, f in [0.5, 1) */
  return fmax(ldexp(1.0, e - 1 - mant), tiny);
}

float cu_round(float f, cu_dtype t) {
  switch (t) {
    case CU_F16: return cu_f16_bits_to_f32(cu_f32_to_f16_bits(f));
    case CU_BF16: return cu_bf16_bits_to_f32(cu_f32_to_bf16_bits(f));
    default: return f;
  }
}

void cu_convert(const float *x, size_t n, cu_dtype t, void *out) {
  if (t == CU_F32) {
    memcpy(out, x, n * sizeof(float));
    return;
  }
  uint16_t *o = out;
  if (t == CU_F16)
    for (size_t i = 0; i < n; i++) o[i] = cu_f32_to_f16_bits(x[i]);
  else
    for (size_t i = 0; i < n; i++) o[i] = cu_f32_to_bf16_bits(x[i]);
}
