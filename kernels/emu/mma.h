#pragma once
// Host emulation of nvcuda::wmma for kernels/emu/harness.cpp. A fragment is held whole by
// every thread of the warp (each emulated thread computes the same tile), so the kernels'
// warp-collective calls work as long as they touch fragments only through this API (as WMMA
// code must: the element mapping is unspecified). store_matrix_sync writes from lane 0 only.
// WMMA's own rules are checked: leading dimensions a multiple of 8 elements (16-bit types) or
// 4 (float), pointers 32-byte aligned.
#include <cassert>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include "cuda_bf16.h"
#include "cuda_fp16.h"
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision { struct tf32 {}; }
// cvt.rna.tf32.f32: round to a 10-bit mantissa, ties away from zero (NaN / inf unchanged).
inline float __float_to_tf32(float f) {
    uint32_t u; std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&f, &u, 4);
    return f;
}
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    static constexpr int num_elements = rows * cols;
    float x[rows * cols];
};
inline float emu_f(float v) { return v; }
inline float emu_f(__half v) { return __half2float(v); }
inline float emu_f(__nv_bfloat16 v) { return __bfloat162float(v); }
inline void emu_check(const void* p, unsigned ldm, unsigned mult) {
    assert(ldm % mult == 0 && "WMMA: leading dimension not a multiple of 8 (16-bit) / 4 (f32)");
    assert(reinterpret_cast<std::uintptr_t>(p) % 32 == 0 && "WMMA: pointer not 32-byte aligned");
}
template <class F> void fill_fragment(F& f, float v) { for (auto& e : f.x) e = v; }
template <class Use, int M, int N, int K, class T, class L>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm) {
    emu_check(p, ldm, sizeof(T) == 2 ? 8 : 4);
    using F = fragment<Use, M, N, K, T, L>;
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.x[r * F::cols + c] = emu_f(std::is_same_v<L, col_major> ? p[c * ldm + r] : p[r * ldm + c]);
}
// TF32 operands are loaded from f32 memory (rounded later with __float_to_tf32).
template <class Use, int M, int N, int K, class L>
void load_matrix_sync(fragment<Use, M, N, K, precision::tf32, L>& f, const float* p, unsigned ldm) {
    emu_check(p, ldm, 4);
    using F = fragment<Use, M, N, K, precision::tf32, L>;
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.x[r * F::cols + c] = std::is_same_v<L, col_major> ? p[c * ldm + r] : p[r * ldm + c];
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t l) {
    emu_check(p, ldm, 4);
    if (threadIdx.x % 32 != 0) return;
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c)
            (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
}
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    float out[M * N];
    for (int r = 0; r < M; ++r)
        for (int n = 0; n < N; ++n) {
            float s = c.x[r * N + n];
            for (int k = 0; k < K; ++k) s = std::fma(a.x[r * K + k], b.x[k * N + n], s);
            out[r * N + n] = s;
        }
    for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}
}  // namespace wmma
}  // namespace nvcuda
