// common.cuh: what every recurrent kernel shares.
//
//   * Keras 2 activations, chosen at COMPILE time by a template parameter (an `Act` id), with
//     one extra id, ACT_RUNTIME, that reads the activation from a run-time int instead (the
//     generic kernels; the branch is uniform across the grid, so it costs a switch, not
//     divergence). Ids must match `act_id` in src/cuda/kernels.rs.
//   * Storage types: f32, f16 (__half) and bf16 (__nv_bfloat16) are loaded to f32 with
//     `load_f32` and stored from f32 with `store_f32`; all arithmetic is f32.
//   * A tiled GEMM (C = A B + bias) whose A operand comes from a loader functor, used for the
//     input projection of all time steps (a dense A) and for ConvLSTM2D's input convolution
//     (an im2col A computed on the fly: implicit GEMM).
//
// Parity: these kernels are built without --use_fast_math. tanhf / expf / expm1f / log1pf /
// erff are CUDA's accurate versions (a few ulp), the CPU path's approximations are within 2e-7
// of the exact values, so the two agree far inside 1e-5 + 1e-4 * |ref|.

#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// ---- activations (Keras 2)

enum Act : int {
    ACT_TANH = 0,
    ACT_SIGMOID = 1,
    ACT_HARD_SIGMOID = 2,  // Keras 2: clip(0.2 x + 0.5, 0, 1) (NOT Keras 3's x / 6 + 0.5)
    ACT_RELU = 3,
    ACT_LINEAR = 4,        // also `None`
    ACT_SOFTSIGN = 5,
    ACT_SOFTPLUS = 6,
    ACT_ELU = 7,
    ACT_SELU = 8,
    ACT_EXPONENTIAL = 9,
    ACT_SWISH = 10,        // also `silu`
    ACT_GELU = 11,         // exact (erf) form, approximate=False
    ACT_RELU6 = 12,
    ACT_MISH = 13,         // x tanh(softplus(x))
    ACT_LEAKY_RELU = 14,   // tf.nn.leaky_relu, alpha 0.2
    ACT_SOFTMAX = 15,      // row-wise: only the `_rows` kernels of rnn.cu apply it
    ACT_LOG_SOFTMAX = 16,  // row-wise: only the `_rows` kernels of rnn.cu apply it
    ACT_RUNTIME = -1,      // template value: read the id from a run-time argument
};

__device__ __forceinline__ float sigmoid_f(float x) {
    // Same branch structure as the CPU reference: no overflow for either sign.
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    const float e = expf(x);
    return e / (1.0f + e);
}

__device__ __forceinline__ float softplus_f(float x) {
    if (x > 20.0f) {
        return x;
    }
    if (x < -20.0f) {
        return expf(x);
    }
    return log1pf(expf(x));
}

// One activation by id (ids as in `Act`). Unknown ids act as linear; the host never passes
// one (it maps every `Activation` variant), nor a row-wise id (softmax, log_softmax; NaN
// here) to a kernel other than the `_rows` ones, which apply those over whole rows
// (rows_activate). Inlined with a constant id, the switch folds away.
__device__ __forceinline__ float act_by_id(int id, float x) {
    switch (id) {
        case ACT_TANH: return tanhf(x);
        case ACT_SIGMOID: return sigmoid_f(x);
        // Comparisons, not fminf / fmaxf, which map NaN to the bound: Keras keeps NaN.
        case ACT_HARD_SIGMOID: {
            const float y = 0.2f * x + 0.5f;
            return y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
        }
        case ACT_RELU: return x < 0.0f ? 0.0f : x;
        case ACT_LINEAR: return x;
        case ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
        case ACT_SOFTPLUS: return softplus_f(x);
        case ACT_ELU: return x > 0.0f ? x : expm1f(x);
        case ACT_SELU: {
            const float alpha = 1.6732632f;
            const float scale = 1.050701f;
            return x > 0.0f ? scale * x : scale * alpha * expm1f(x);
        }
        case ACT_EXPONENTIAL: return expf(x);
        case ACT_SWISH: return x * sigmoid_f(x);
        case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
        case ACT_RELU6: return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
        case ACT_MISH: return x * tanhf(softplus_f(x));
        case ACT_LEAKY_RELU: return x >= 0.0f ? x : 0.2f * x;
        // Row-wise: never elementwise (only rows_activate applies them); NaN makes a misrouted
        // id loud instead of quietly linear.
        case ACT_SOFTMAX:
        case ACT_LOG_SOFTMAX: return NAN;
        default: return x;
    }
}

// The run-time path as one real function: the generic kernels call it instead of inlining
// every activation's math at every call site (keeps the PTX, and its load-time JIT, small).
__device__ __noinline__ float act_runtime(int id, float x) { return act_by_id(id, x); }

// The activation `A`, fixed at compile time; with A == ACT_RUNTIME, the id `runtime_id`.
template <int A>
__device__ __forceinline__ float activate(float x, int runtime_id) {
    if constexpr (A == ACT_RUNTIME) {
        return act_runtime(runtime_id, x);
    } else {
        return act_by_id(A, x);  // constant-folded to one case
    }
}

// As `activate`, with the run-time switch inlined too (no call: kernels whose live state
// would spill around act_runtime's call, the persistent ones).
template <int A>
__device__ __forceinline__ float activate_inl(float x, int runtime_id) {
    return act_by_id(A == ACT_RUNTIME ? runtime_id : A, x);
}

// ---- row-wise activations (softmax, log_softmax), for the `_rows` kernels of rnn.cu and
// conv_lstm.cu: one block of rows::THREADS threads activates a row held in shared memory.
// Keras applies them over the last axis of a gate's tensor: softmax = exp(x - max) / sum,
// log_softmax = (x - max) - log(sum), sum = sum of exp(x - max); a NaN anywhere in the row makes
// the row NaN (as TF: x - NaN). Every other id acts elementwise.

namespace rows {
constexpr int THREADS = 256;  // the block size the host launches with (src/cuda/kernels.rs)
constexpr int MAX_FLOATS = 8192;  // gates x row length (32 KB of shared memory); src/cuda/kernels.rs
}  // namespace rows

__device__ __forceinline__ int rows_tid() { return threadIdx.y * blockDim.x + threadIdx.x; }

// Maximum that propagates NaN (fmaxf would drop it).
__device__ __forceinline__ float nan_max(float a, float b) {
    return (a != a || b != b) ? a + b : fmaxf(a, b);
}

// The block's maximum (is_max) or sum of one value per thread; every thread gets it. Tree
// order over red[rows::THREADS] (deterministic). All threads must call it.
__device__ __forceinline__ float rows_reduce(float v, bool is_max, float* red) {
    const int t = rows_tid();
    red[t] = v;
    __syncthreads();
    for (int s = rows::THREADS / 2; s > 0; s >>= 1) {
        if (t < s) {
            red[t] = is_max ? nan_max(red[t], red[t + s]) : red[t] + red[t + s];
        }
        __syncthreads();
    }
    const float r = red[0];
    __syncthreads();
    return r;
}

// v[0 .. n) = activation `id` of the row v (shared memory), row-wise for softmax /
// log_softmax, elementwise otherwise. All threads must call it; ends with a barrier.
__device__ __forceinline__ void rows_activate(float* v, int n, int id, float* red) {
    const int t = rows_tid();
    if (id == ACT_SOFTMAX || id == ACT_LOG_SOFTMAX) {
        float m = -INFINITY;
        for (int j = t; j < n; j += rows::THREADS) {
            m = nan_max(m, v[j]);
        }
        m = rows_reduce(m, true, red);
        float s = 0.0f;
        for (int j = t; j < n; j += rows::THREADS) {
            s += expf(v[j] - m);
        }
        s = rows_reduce(s, false, red);
        if (id == ACT_SOFTMAX) {
            const float inv = 1.0f / s;
            for (int j = t; j < n; j += rows::THREADS) {
                v[j] = expf(v[j] - m) * inv;
            }
        } else {
            const float ls = logf(s);
            for (int j = t; j < n; j += rows::THREADS) {
                v[j] = (v[j] - m) - ls;
            }
        }
    } else {
        for (int j = t; j < n; j += rows::THREADS) {
            v[j] = act_runtime(id, v[j]);
        }
    }
    __syncthreads();
}

// ---- LSTM's cell update (Keras gate order i, f, c, o), shared by every LSTM kernel:
//   i = rec(a_i)  f = rec(a_f)  g = act(a_c)  o = rec(a_o);  c' = f c + i g;  h' = o act(c')
// from the pre-activations a = xp + recurrent product. Returns h', writes c'. INL: inline the
// run-time activation switch too (activate_inl).
template <int ACT, int REC, bool INL = false>
__device__ __forceinline__ float lstm_update(float ai, float af, float ac, float ao, float c,
                                             int act, int rec, float& c_new) {
    auto A = [&](float v) { return INL ? activate_inl<ACT>(v, act) : activate<ACT>(v, act); };
    auto R = [&](float v) { return INL ? activate_inl<REC>(v, rec) : activate<REC>(v, rec); };
    const float i = R(ai);
    const float f = R(af);
    const float g = A(ac);
    const float o = R(ao);
    c_new = f * c + i * g;
    return o * A(c_new);
}

// ---- storage types: load to f32, store from f32

__device__ __forceinline__ float load_f32(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_f32(const __half* p) { return __half2float(__ldg(p)); }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p) {
    return __bfloat162float(__ldg(p));
}

// Plain (non-__ldg) loads for buffers that the same kernel also writes (c, prev_out).
__device__ __forceinline__ float load_rw(const float* p) { return *p; }
__device__ __forceinline__ float load_rw(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load_rw(const __nv_bfloat16* p) { return __bfloat162float(*p); }

__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, float v) {
    *p = __float2bfloat16_rn(v);
}

// ---- across blocks (the persistent kernels of rnn_persistent.cu)
//   load_cg:   a load through L2 only, for data other blocks of the same launch wrote (L1 is
//              not coherent across SMs, and __ldg's read-only path must not see writes).
//   spin_load: a volatile load for spinning on a flag.
//   RECURRENT_DYNAMIC_SMEM(name): the launch's dynamic shared memory as `unsigned char name[]`.
// kernels/emu/emu.h defines its own versions (RECURRENT_EMU) for the CPU emulator.
#ifndef RECURRENT_EMU
__device__ __forceinline__ float load_cg(const float* p) { return __ldcg(p); }
__device__ __forceinline__ unsigned int spin_load(const unsigned int* p) {
    return *reinterpret_cast<const volatile unsigned int*>(p);
}
#define RECURRENT_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// ---- tiled GEMM: C[M, N] (row-major, ldc) = A[M, K] B[K, N] (+ bias[N])
//
// Block: 256 threads, a 64 x 64 tile of C, K in steps of 16 through shared memory.
// Thread t: tm = t / 16, tn = t % 16 owns rows tm + 16 i and columns tn + 16 j (i, j < 4), so
// that a warp's reads of the B tile hit 16 consecutive words (no bank conflict) and its reads
// of the A tile are broadcasts; its C writes are 16 consecutive floats per row.
// Loads: the A tile (64 x 16) is read with k fastest (coalesced for a row-major A), the B tile
// (16 x 64) with n fastest. Out-of-range elements read as 0 and are never written.
// Summation over k is in increasing k per element (deterministic, no split-K).

namespace gemm {
constexpr int BM = 64;
constexpr int BN = 64;
constexpr int BK = 16;
constexpr int THREADS = 256;
}  // namespace gemm

// A row-major dense A: A[m * lda + k].
template <typename T>
struct DenseA {
    const T* __restrict__ a;
    long long lda;
    __device__ __forceinline__ float operator()(long long m, int k) const {
        return load_f32(a + m * lda + k);
    }
};

template <typename ALoad, typename TB>
__device__ __forceinline__ void gemm_bias_tile(long long M, int N, int K, const ALoad& aload,
                                               const TB* __restrict__ Bm, int ldb,
                                               const TB* __restrict__ bias, int has_bias,
                                               float* __restrict__ C, long long ldc) {
    using namespace gemm;
    __shared__ float As[BK][BM + 1];  // As[k][m]; +1 breaks the k-major store's bank pattern
    __shared__ float Bs[BK][BN];      // Bs[k][n]
    const int t = threadIdx.x;
    const int tm = t / 16;
    const int tn = t % 16;
    const int n0 = blockIdx.x * BN;
    const long long m_tiles = (M + BM - 1) / BM;
    // Grid-stride over row tiles: gridDim.y is capped at 65535 by the host.
    for (long long mt = blockIdx.y; mt < m_tiles; mt += gridDim.y) {
        const long long m0 = mt * BM;
        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                acc[i][j] = 0.0f;
            }
        }
        for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int e = t + r * THREADS;
                // A tile: k fastest.
                const int ak = e % BK;
                const int am = e / BK;
                const long long gm = m0 + am;
                const int gk = k0 + ak;
                As[ak][am] = (gm < M && gk < K) ? aload(gm, gk) : 0.0f;
                // B tile: n fastest.
                const int bk = e / BN;
                const int bn = e % BN;
                const int gk2 = k0 + bk;
                const int gn = n0 + bn;
                Bs[bk][bn] =
                    (gk2 < K && gn < N) ? load_f32(Bm + (long long)gk2 * ldb + gn) : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                float av[4];
                float bv[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    av[i] = As[kk][tm + 16 * i];
                }
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    bv[j] = Bs[kk][tn + 16 * j];
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                    }
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const long long gm = m0 + tm + 16 * i;
            if (gm >= M) {
                continue;
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int gn = n0 + tn + 16 * j;
                if (gn < N) {
                    const float b = has_bias ? load_f32(bias + gn) : 0.0f;
                    C[gm * ldc + gn] = acc[i][j] + b;
                }
            }
        }
    }
}
