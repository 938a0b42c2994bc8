/* shim/mma.h: nvcuda::wmma for the host emulation of tests/emu/cuda_emu.h, in place of the
 * toolkit's <mma.h> (the emulated device's build puts tests/emu/shim first on the include path).
 * The 16 x 16 x 16 shapes only, the subset cuda/decoder_maxpool.cu uses: fragment, fill_fragment,
 * load_matrix_sync (matrix_a / matrix_b, row- or column-major), mma_sync with a float
 * accumulator, store_matrix_sync (mem_row_major / mem_col_major).
 * A fragment here is a 16 x 16 tile (widened exactly to float) of which each lane holds what its
 * share needs: the fragments' real placement in registers is unspecified by CUDA and nothing
 * reads it but these functions. mma_sync computes, and store_matrix_sync writes, only the calling
 * lane's share of the accumulator: the elements e = 16 i + j with e % 32 == lane (together the
 * warp computes every element once); its A fragment holds those rows, its B that column. Each element is c + a(i, 0) b(0, j) + ... + a(i, 15) b(15, j), added in
 * that order in fp32 (the model of cuda_emu_mma_m16n8k16: not the tensor cores' own order and
 * rounding). Not emulated: the warp-synchronous contract (every lane must call with the same
 * arguments; a divergent warp is undefined behaviour on a device and not caught here), other
 * shapes and types, the fragments' x[] and num_elements.
 */
#ifndef SPLADEX_EMU_SHIM_MMA_H
#define SPLADEX_EMU_SHIM_MMA_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "shim/mma.h: the 16 x 16 x 16 shapes only");
  float v[16][16]; /* v[row][col] of the tile (a: M x K, b: K x N, accumulator: M x N) */
};

inline float shim_widen(float x) { return x; }
inline float shim_widen(__half x) { return __half2float(x); }
inline float shim_widen(__nv_bfloat16 x) { return __bfloat162float(x); }

/* The lane's share of an accumulator: column lane % 16, rows lane / 16 + 2 t (t = 0..7); so its
 * A fragment needs those rows and its B fragment that column (the rest stays unset). */
inline int shim_col() { return (int)(threadIdx.x % 16); }
inline int shim_row0() { return (int)(threadIdx.x % 32 / 16); }

template <typename T, typename L>
void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
  for (int r = shim_row0(); r < 16; r += 2)
    for (int c = 0; c < 16; c++)
      f.v[r][c] = shim_widen(std::is_same<L, row_major>::value ? p[r * ldm + c] : p[c * ldm + r]);
}

template <typename T, typename L>
void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
  const int c = shim_col();
  for (int r = 0; r < 16; r++)
    f.v[r][c] = shim_widen(std::is_same<L, row_major>::value ? p[r * ldm + c] : p[c * ldm + r]);
}

inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float value) {
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) f.v[r][c] = value;
}

template <typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
              const fragment<matrix_a, 16, 16, 16, T, LA> &a,
              const fragment<matrix_b, 16, 16, 16, T, LB> &b,
              const fragment<accumulator, 16, 16, 16, float> &c) {
  const int j = shim_col();
  for (int i = shim_row0(); i < 16; i += 2) {
    float s = c.v[i][j];
    for (int k = 0; k < 16; k++) s += a.v[i][k] * b.v[k][j];
    d.v[i][j] = s;
  }
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                              unsigned ldm, layout_t layout) {
  const int j = shim_col();
  for (int i = shim_row0(); i < 16; i += 2) {
    p[layout == mem_row_major ? i * ldm + j : j * ldm + i] = f.v[i][j];
  }
}

}  // namespace wmma
}  // namespace nvcuda

#endif
