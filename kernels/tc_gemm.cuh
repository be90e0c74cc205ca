// tc_gemm.cuh: the tensor-core GEMM of the f16 / bf16 input projections (WMMA, sm_80+).
//
//   C[M, N] (f32, row-major, ldc) = A[M, K] B[K, N] (W, ldb) + bias[N] (W)
//   A from a loader functor returning f32 (common.cuh's DenseA: the input sequence; conv_lstm.cu's
//   Im2colA: ConvLSTM2D's input convolution as an implicit GEMM).
//   W = __half or __nv_bfloat16 (exact products), or float as TF32 (operands rounded to a
//   10-bit mantissa; used only when TF32 is allowed); products on tensor cores with f32
//   accumulation.
//
// A is converted to W as it is staged in shared memory. The host uses this kernel only where
// A's values are already W values (a layer's input in its storage type, widened to f32): then
// every product is exact in f32; the tensor cores' f32 accumulation adds several products at
// a time and need not round each addition to nearest as FFMA does, so results differ from
// gemm_bias_tile by f32-level accumulation error (inside the 1e-5 + 1e-4 |ref| tolerance for
// the tested widths; gpu_half_storage includes a 512-wide input). Anywhere else it would
// round A.
//
// Block: 128 threads = 4 warps in a 2 x 2 layout over a 64 x 64 tile of C; warp (wm, wn) owns
// rows 32 wm .. +31 and columns 32 wn .. +31 as 2 x 2 WMMA 16x16x16 accumulator fragments. K
// runs in steps of 32 through shared memory: As[64][32 + 8] (W, k fastest), Bs[32][64 + 8]
// (W, n fastest); the +8 pads keep the leading dimensions multiples of 8 elements (WMMA's
// rule for 16-bit types) and shift rows across banks. Staging: thread t loads 16 elements of
// each tile, coalesced along k (A) and n (B); out-of-range elements are 0. Epilogue: the
// fragments go to Cs[64][64 + 4] (f32, in the tiles' shared memory), then each thread adds the
// bias and writes its 32 elements of C, coalesced along n, bounds-checked.
// Grid (ceil(N / 64), min(ceil(M / 64), 65535)), grid-stride over row tiles.

#pragma once

#include <mma.h>

#include <type_traits>

#include "common.cuh"

namespace tcg {
constexpr int BM = 64;
constexpr int BN = 64;
constexpr int BK = 32;
constexpr int THREADS = 128;
constexpr int LDA = BK + 8;  // As leading dimension (elements)
constexpr int LDB = BN + 8;  // Bs leading dimension
constexpr int LDC = BN + 4;  // Cs leading dimension (floats; a multiple of 4 for WMMA f32)
}  // namespace tcg

// How the tensor cores take weights of type W: S the type staged in shared memory, F the
// fragments' element type, FK the fragments' depth. f16 / bf16: 16x16x16 fragments of W.
// f32: TF32 fragments (16x16x8, operands rounded to TF32's 10-bit mantissa, f32 accumulation):
// the host uses the f32 instantiations only when TF32 is allowed (`CudaLayer::with_tf32`).
template <typename W>
struct TcOps;
template <>
struct TcOps<__half> {
    using S = __half;
    using F = __half;
    static constexpr int FK = 16;
};
template <>
struct TcOps<__nv_bfloat16> {
    using S = __nv_bfloat16;
    using F = __nv_bfloat16;
    static constexpr int FK = 16;
};
template <>
struct TcOps<float> {
    using S = float;
    using F = nvcuda::wmma::precision::tf32;
    static constexpr int FK = 8;
};

// f32 -> the staged type: round to nearest even (f16 / bf16), as is (f32, rounded to TF32 in
// the fragment, `to_tf32`).
__device__ __forceinline__ void to_w(float v, __half* p) { *p = __float2half_rn(v); }
__device__ __forceinline__ void to_w(float v, __nv_bfloat16* p) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void to_w(float v, float* p) { *p = v; }

// TF32 operand fragments: every element rounded to TF32 (WMMA's rule for precision::tf32).
template <typename W, typename Frag>
__device__ __forceinline__ void to_tf32(Frag& f) {
    if constexpr (std::is_same_v<W, float>) {
#pragma unroll
        for (int i = 0; i < f.num_elements; ++i) {
            f.x[i] = nvcuda::wmma::__float_to_tf32(f.x[i]);
        }
    }
}

// Stages rows m0 .. m0+63, k0 .. k0+31 of A (aload, f32) into As[64][LDA] as S, k fastest
// (coalesced along k), zero outside M x K. The GEMM and step tiles share the geometry (64 rows,
// K steps of 32, LDA = 40, 128 threads).
template <typename S, typename ALoad>
__device__ __forceinline__ void stage_a(S* __restrict__ As, const ALoad& aload, long long m0,
                                        int k0, long long M, int K) {
    using namespace tcg;
#pragma unroll 4
    for (int e = threadIdx.x; e < BM * BK; e += THREADS) {
        const int ak = e % BK;
        const int am = e / BK;
        const long long m = m0 + am;
        const int k = k0 + ak;
        to_w((m < M && k < K) ? aload(m, k) : 0.0f, As + am * LDA + ak);
    }
}

template <typename W, typename ALoad>
__device__ __forceinline__ void tc_gemm_bias_tile(long long M, int N, int K, const ALoad& aload,
                                                  const W* __restrict__ Bm, int ldb,
                                                  const W* __restrict__ bias, int has_bias,
                                                  float* __restrict__ C, long long ldc) {
    using namespace tcg;
    namespace wmma = nvcuda::wmma;
    using S = typename TcOps<W>::S;
    using F = typename TcOps<W>::F;
    constexpr int FK = TcOps<W>::FK;
    // The staging tiles and the epilogue's C tile share the memory (the C tile is written
    // only after the last k step's barrier).
    constexpr int STAGE_BYTES = (BM * LDA + BK * LDB) * (int)sizeof(S);
    constexpr int C_BYTES = BM * LDC * 4;
    __shared__ __align__(32) unsigned char smem[STAGE_BYTES > C_BYTES ? STAGE_BYTES : C_BYTES];
    S* As = reinterpret_cast<S*>(smem);
    S* Bs = As + BM * LDA;
    float* Cs = reinterpret_cast<float*>(smem);

    const int t = threadIdx.x;
    const int warp = t / 32;
    const int wm = warp / 2;
    const int wn = warp % 2;
    const int n0 = blockIdx.x * BN;
    const long long m_tiles = (M + BM - 1) / BM;
    for (long long mt = blockIdx.y; mt < m_tiles; mt += gridDim.y) {
        const long long m0 = mt * BM;
        wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[2][2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                wmma::fill_fragment(acc[i][j], 0.0f);
            }
        }
        for (int k0 = 0; k0 < K; k0 += BK) {
            stage_a(As, aload, m0, k0, M, K);
#pragma unroll 4
            for (int r = 0; r < (BK * BN) / THREADS; ++r) {
                const int e = t + r * THREADS;
                const int bn = e % BN;
                const int bk = e / BN;
                const int gk2 = k0 + bk;
                const int gn = n0 + bn;
                to_w((gk2 < K && gn < N) ? load_f32(Bm + (long long)gk2 * ldb + gn) : 0.0f,
                     Bs + bk * LDB + bn);
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < BK; kk += FK) {
                wmma::fragment<wmma::matrix_a, 16, 16, FK, F, wmma::row_major> a[2];
                wmma::fragment<wmma::matrix_b, 16, 16, FK, F, wmma::row_major> b[2];
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    wmma::load_matrix_sync(a[i], As + (wm * 32 + i * 16) * LDA + kk, LDA);
                    to_tf32<W>(a[i]);
                }
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    wmma::load_matrix_sync(b[j], Bs + kk * LDB + wn * 32 + j * 16, LDB);
                    to_tf32<W>(b[j]);
                }
#pragma unroll
                for (int i = 0; i < 2; ++i) {
#pragma unroll
                    for (int j = 0; j < 2; ++j) {
                        wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
                    }
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16,
                                        acc[i][j], LDC, wmma::mem_row_major);
            }
        }
        __syncthreads();
#pragma unroll 4
        for (int r = 0; r < (BM * BN) / THREADS; ++r) {
            const int e = t + r * THREADS;
            const int cm = e / BN;
            const int cn = e % BN;
            const long long gm = m0 + cm;
            const int gn = n0 + cn;
            if (gm < M && gn < N) {
                const float b = has_bias ? load_f32(bias + gn) : 0.0f;
                C[gm * ldc + gn] = Cs[cm * LDC + cn] + b;
            }
        }
        __syncthreads();
    }
}

// ---- the recurrent product of one step on tensor cores (rnn.cu's `_tc_` step kernels)
//
//   z[b][g][j] = sum_k W(h[b, k]) * Um[k, col0 + g*U + j]     (h rounded to W as the operand)
//
// Block: 128 threads = 4 warps; a tile of 64 batch rows (blockIdx.y, grid-stride) x 16 units
// j0 = 16 blockIdx.x .. +15 of ALL G gates. Warp w owns rows 16 w .. +15 as G accumulator
// fragments (one per gate). K in steps of 32 through shared memory: As[64][40] (h rounded to
// W, k fastest), Bs[32][16 G + 8] (gate g's 16 columns side by side). Then the fragments go to
// Cs[64][16 G + 4] (f32) and each thread calls `epi(b, j, z)` for its (row, unit) pairs, as
// rnn.cu's dense_step does: the same epilogues (bias, activations, mask, state update).
// Every thread of the block must call it (it holds barriers). Unlike dense_step, h is rounded
// to the storage type for the product: the `_tc_` kernels' results differ from the CPU path's
// by that rounding (the host runs them only when asked: DensePath::TensorCore).
namespace tcs {
constexpr int BM = 64;
constexpr int UNITS = 16;
constexpr int BK = 32;
constexpr int THREADS = 128;
constexpr int LDA = BK + 8;
static_assert(BM == tcg::BM && BK == tcg::BK && THREADS == tcg::THREADS && LDA == tcg::LDA,
              "stage_a serves both tiles");
}  // namespace tcs

// How a step tile's operands reach shared memory. The tile's loop calls, per row tile,
// `fetch(b0, 0)`, then per k step: `put(As, Bs, b0, k0)`, barrier, `fetch(b0, k0 + BK)` when
// another k step follows, the MMAs, barrier. A stager may load in `fetch` (into registers:
// the next step's loads are then in flight during this step's MMAs) or in `put`.

// Any A loader, any U: element by element in `put` (loads, rounding, stores), nothing in
// `fetch`: not pipelined. B column c of the tile: gate c / 16, unit j0 + c % 16.
template <typename W, int G, typename ALoad>
struct ScalarStage {
    using S = typename TcOps<W>::S;
    static constexpr int NC = G * tcs::UNITS;
    static constexpr int LDB = NC + 8;
    const ALoad& aload;
    const W* __restrict__ Um;
    int ldu, col0, U, K;
    long long M;
    __device__ __forceinline__ void fetch(long long, int) {}
    __device__ __forceinline__ void put(S* __restrict__ As, S* __restrict__ Bs, long long b0,
                                        int k0) const {
        using namespace tcs;
        stage_a(As, aload, b0, k0, M, K);
        const int j0 = blockIdx.x * UNITS;
#pragma unroll 4
        for (int e = threadIdx.x; e < BK * NC; e += THREADS) {
            const int bc = e % NC;
            const int bk = e / NC;
            const int g = bc / UNITS;
            const int j = j0 + bc % UNITS;
            const int k = k0 + bk;
            to_w((k < K && j < U) ? load_f32(Um + (long long)k * ldu + col0 + g * U + j) : 0.0f,
                 Bs + bk * LDB + bc);
        }
    }
};

// h rows (B x U f32) and the recurrent kernel when U % 8 == 0 (so every 16-byte chunk below
// is aligned and lies wholly inside or outside the matrices): 16-byte loads, fetched into
// registers one k step ahead. A: 64 x 32 floats = 512 chunks of 4 k, chunk c = t + 128 i
// (row c / 8, k 4 (c % 8)): a warp reads 4 rows x 128 contiguous bytes per load. B: 32 x NC
// elements of W in chunks of 16 / sizeof(W) columns (8 halves, 4 floats), chunk
// c = t + 128 i (k row c / (NC / EPC), columns EPC (c % (NC / EPC)): inside one gate's 16).
template <typename W, int G>
struct VecStage {
    using S = typename TcOps<W>::S;
    static constexpr int NC = G * tcs::UNITS;
    static constexpr int LDB = NC + 8;
    static constexpr int EPC = 16 / (int)sizeof(W);  // elements per 16-byte chunk
    static constexpr int A_CHUNKS = tcs::BM * tcs::BK / 4 / tcs::THREADS;            // 4
    static constexpr int B_ROW = NC / EPC;                                           // chunks per k row
    static constexpr int B_CHUNKS = (tcs::BK * B_ROW + tcs::THREADS - 1) / tcs::THREADS;
    static_assert(16 % EPC == 0 && (LDB * (int)sizeof(S)) % 16 == 0 &&
                      (tcs::BM * tcs::LDA * (int)sizeof(S)) % 16 == 0,
                  "16-byte chunks stay aligned in shared memory");
    const float* __restrict__ h;
    const W* __restrict__ Um;
    int ldu, col0, U;
    long long M;
    float4 a[A_CHUNKS];
    uint4 b[B_CHUNKS];
    __device__ __forceinline__ void fetch(long long b0, int k0) {
        using namespace tcs;
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            const int c = threadIdx.x + i * THREADS;
            const long long m = b0 + c / 8;
            const int k = k0 + 4 * (c % 8);
            a[i] = (m < M && k < U) ? __ldcg(reinterpret_cast<const float4*>(h + m * U + k))
                                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        const int j0 = blockIdx.x * UNITS;
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            const int c = threadIdx.x + i * THREADS;
            const int k = k0 + c / B_ROW;
            const int cc = EPC * (c % B_ROW);
            const int j = j0 + cc % UNITS;
            b[i] = (c < BK * B_ROW && k < U && j < U)
                       ? __ldg(reinterpret_cast<const uint4*>(
                             Um + (long long)k * ldu + col0 + (cc / UNITS) * U + j))
                       : make_uint4(0u, 0u, 0u, 0u);
        }
    }
    __device__ __forceinline__ void put(S* __restrict__ As, S* __restrict__ Bs, long long,
                                        int) const {
        using namespace tcs;
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            const int c = threadIdx.x + i * THREADS;
            S* p = As + (c / 8) * LDA + 4 * (c % 8);
            to_w(a[i].x, p);
            to_w(a[i].y, p + 1);
            to_w(a[i].z, p + 2);
            to_w(a[i].w, p + 3);
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            const int c = threadIdx.x + i * THREADS;
            if (c < BK * B_ROW) {
                *reinterpret_cast<uint4*>(Bs + (c / B_ROW) * LDB + EPC * (c % B_ROW)) = b[i];
            }
        }
    }
};

// The product of a tile of 64 rows m < M (A staged by `st`), K deep, U units per gate:
// epi(m, j, z) for every owned (row, unit).
template <typename W, int G>
__host__ __device__ constexpr int tc_step_smem_bytes() {
    constexpr int NC = G * tcs::UNITS;
    constexpr int STAGE = (tcs::BM * tcs::LDA + tcs::BK * (NC + 8)) *
                          (int)sizeof(typename TcOps<W>::S);
    constexpr int C = tcs::BM * (NC + 4) * 4;
    return STAGE > C ? STAGE : C;
}

// `smem`: tc_step_smem_bytes<W, G>() bytes of shared memory, 32-byte aligned, declared by the
// caller (one buffer for every staging variant a kernel instantiates).
template <typename W, int G, typename Stage, typename Epilogue>
__device__ __forceinline__ void tc_step_tile_staged(long long M, int K, int U, Stage& st,
                                                    unsigned char* smem, Epilogue epi) {
    using namespace tcs;
    namespace wmma = nvcuda::wmma;
    constexpr int NC = G * UNITS;  // the tile's columns
    constexpr int LDB = NC + 8;
    constexpr int LDC = NC + 4;
    using S = typename TcOps<W>::S;
    using F = typename TcOps<W>::F;
    constexpr int FK = TcOps<W>::FK;
    S* As = reinterpret_cast<S*>(smem);
    S* Bs = As + BM * LDA;
    float* Cs = reinterpret_cast<float*>(smem);
    const int t = threadIdx.x;
    const int warp = t / 32;
    const int j0 = blockIdx.x * UNITS;
    const long long row_tiles = (M + BM - 1) / BM;
    for (long long rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
        const long long b0 = rt * BM;
        wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[G];
#pragma unroll
        for (int g = 0; g < G; ++g) {
            wmma::fill_fragment(acc[g], 0.0f);
        }
        st.fetch(b0, 0);
        for (int k0 = 0; k0 < K; k0 += BK) {
            st.put(As, Bs, b0, k0);
            __syncthreads();
            if (k0 + BK < K) {
                st.fetch(b0, k0 + BK);  // in flight during the MMAs below (VecStage)
            }
#pragma unroll
            for (int kk = 0; kk < BK; kk += FK) {
                wmma::fragment<wmma::matrix_a, 16, 16, FK, F, wmma::row_major> a;
                wmma::load_matrix_sync(a, As + warp * 16 * LDA + kk, LDA);
                to_tf32<W>(a);
#pragma unroll
                for (int g = 0; g < G; ++g) {
                    wmma::fragment<wmma::matrix_b, 16, 16, FK, F, wmma::row_major> bf;
                    wmma::load_matrix_sync(bf, Bs + kk * LDB + g * UNITS, LDB);
                    to_tf32<W>(bf);
                    wmma::mma_sync(acc[g], a, bf, acc[g]);
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
            wmma::store_matrix_sync(Cs + warp * 16 * LDC + g * UNITS, acc[g], LDC,
                                    wmma::mem_row_major);
        }
        __syncthreads();
        for (int e = t; e < BM * UNITS; e += THREADS) {
            const int r = e / UNITS;
            const int jj = e % UNITS;
            const long long b = b0 + r;
            const int j = j0 + jj;
            if (b < M && j < U) {
                float z[G];
#pragma unroll
                for (int g = 0; g < G; ++g) {
                    z[g] = Cs[r * LDC + g * UNITS + jj];
                }
                epi(b, j, z);
            }
        }
        __syncthreads();
    }
}

// The general form: rows m < M of an A given by `aload(m, k)` (f32, rounded to W), K deep,
// U units per gate; epi(m, j, z). ConvLSTM2D's A is the implicit im2col of h (conv_lstm.cu).
template <typename W, int G, typename ALoad, typename Epilogue>
__device__ __forceinline__ void tc_step_tile(long long M, int K, int U, const ALoad& aload,
                                             const W* __restrict__ Um, int ldu, int col0,
                                             Epilogue epi) {
    __shared__ __align__(32) unsigned char smem[tc_step_smem_bytes<W, G>()];
    ScalarStage<W, G, ALoad> st{aload, Um, ldu, col0, U, K, M};
    tc_step_tile_staged<W, G>(M, K, U, st, smem, epi);
}

// h (B x U, f32, written by the previous launch) as the A of the recurrent product.
struct DenseH {
    const float* __restrict__ h;
    int U;
    __device__ __forceinline__ float operator()(long long m, int k) const {
        return load_cg(h + m * U + k);
    }
};

// The dense step: f16 / bf16 weights with U % 8 == 0 (the recurrent kernel's column offset
// keeping chunks aligned): 16-byte loads pipelined one k step ahead (VecStage); else element
// by element.
template <typename W, int G, typename Epilogue>
__device__ __forceinline__ void tc_dense_step(int B, int U, const float* __restrict__ h,
                                              const W* __restrict__ Um, int ldu, int col0,
                                              Epilogue epi) {
    __shared__ __align__(32) unsigned char smem[tc_step_smem_bytes<W, G>()];
    const auto e = [&](long long m, int j, const float (&z)[G]) { epi((int)m, j, z); };
    if constexpr (sizeof(W) == 2) {  // f16 / bf16 (TF32's fragments leave no registers for it)
        if (U % 8 == 0 && col0 % 8 == 0 && ldu % 8 == 0) {
            VecStage<W, G> st{h, Um, ldu, col0, U, B};
            tc_step_tile_staged<W, G>(B, U, U, st, smem, e);
            return;
        }
    }
    const DenseH a{h, U};
    ScalarStage<W, G, DenseH> st{a, Um, ldu, col0, U, U, B};
    tc_step_tile_staged<W, G>(B, U, U, st, smem, e);
}
