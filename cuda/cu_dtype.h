/* cu_dtype: the storage types of GEMM operands on the device and their CPU rounding twins.
 *
 * With --precision fp16 or bf16 the GEMM weights are rounded once on the host (cu_round_*) and
 * uploaded, and every activation that feeds a GEMM is rounded on the device by the op that
 * produces it (__float2half_rn / __float2bfloat16_rn). The functions here are bit-exact CPU
 * twins of those CUDA intrinsics: round to nearest, ties to even, overflow to infinity, fp16
 * subnormals kept, any NaN to the canonical 0x7fff. Everything else (LayerNorm, softmax, biases,
 * the pooled max) stays fp32. Plain C11; always built, with or without CUDA.
 */
#ifndef SPLADEX_CU_DTYPE_H
#define SPLADEX_CU_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The values equal the enc_precision values of encoder.h (ENC_FP32, ENC_FP16, ENC_BF16). */
typedef enum { CU_F32 = 0, CU_F16 = 1, CU_BF16 = 2 } cu_dtype;

/* Bytes per element: 4 for CU_F32, 2 otherwise. */
size_t cu_dtype_size(cu_dtype t);

/* "fp32", "fp16", "bf16". Static string. */
const char *cu_dtype_name(cu_dtype t);

/* The bits of f (as __float_as_uint), and the float whose bits are u (as __uint_as_float). */
uint32_t cu_f32_bits(float f);
float cu_bits_f32(uint32_t u);

/* IEEE binary16 bits of f, as __float2half_rn(f). */
uint16_t cu_f32_to_f16_bits(float f);
/* The float value of binary16 bits h (exact), as __half2float. */
float cu_f16_bits_to_f32(uint16_t h);
/* bfloat16 bits of f, as __float2bfloat16_rn(f). */
uint16_t cu_f32_to_bf16_bits(float f);
/* The float value of bfloat16 bits h (exact). */
float cu_bf16_bits_to_f32(uint16_t h);

/* The 16-bit bits of f in t and back, for t = CU_F16 or CU_BF16 (the two functions above). */
uint16_t cu_f32_to_bits(float f, cu_dtype t);
float cu_bits_to_f32(uint16_t h, cu_dtype t);

/* One ulp of t at |x|: 2^(e - 1 - m) for |x| in [2^(e-1), 2^e), m = t's mantissa bits (23, 10,
 * 7), never below t's smallest step (2^-149, 2^-24, 2^-133), which is also the ulp at 0. For the
 * tests' "within 1 ulp of the 16-bit type" bounds. */
double cu_ulp(double x, cu_dtype t);

/* f rounded to t and back to float (t == CU_F32: f itself). */
float cu_round(float f, cu_dtype t);

/* Converts n floats into out as t (4 or 2 bytes per element; out does not alias x). */
void cu_convert(const float *x, size_t n, cu_dtype t, void *out);

#ifdef __cplusplus
}
#endif

#endif
