// rnn.cu: the dense recurrent layers (LSTM, GRU with reset_after true and false, SimpleRNN),
// one fused kernel per time step and layer (two for GRU reset_after=false), plus the input
// projection GEMM and small helpers. No host code: launched from src/cuda through cudarc.
//
// ---- equations (Keras 2; x W + b of every step is precomputed, see "projection" below)
//   xp = x W + b                          (all steps at once, f32, gate blocks in Keras order)
//   LSTM, gates [i | f | c | o]:  z = xp + h U;  i = rec(z_i)  f = rec(z_f)  g = act(z_c)
//                                 o = rec(z_o);  c' = f c + i g;  h' = o act(c')
//   GRU reset_after=true,  gates [z | r | h], rb = recurrent bias (or 0):
//                                 hu = h U + rb;  z = rec(xp_z + hu_z)  r = rec(xp_r + hu_r)
//                                 n = act(xp_h + r hu_h);  h' = z h + (1 - z) n
//   GRU reset_after=false: kernel A  z = rec(xp_z + h U_z), r = rec(xp_r + h U_r), rh = r h
//                          kernel B  n = act(xp_h + rh U_h);  h' = z h + (1 - z) n
//   SimpleRNN:                    h' = act(xp + h U)
//   Masks (Keras): where mask[b, t] is false the row keeps its states (h' = h, c' = c) and its
//   output repeats the previous step's output (`prev_out`, zeros before the first real step);
//   where true, out = prev_out = h'.
//
// ---- memory layout (row-major everywhere, Keras's own weight layouts, nothing transposed)
//   xp        f32 (rows, G*U): row of (batch b, step) at b * xp_b_stride + xp_step_off. The
//             host picks the strides: batch-major input rows b*T+t, time-major t*B+b, and the
//             step's source time t (reversed for go_backwards), so no input is ever transposed.
//   Um        (U, ldu) recurrent_kernel (storage type W); gate g of unit j is column
//             col0 + g*U + j.
//   h_prev    (B, U), read by every block; h_next (B, U) written: ping-pong buffers.
//   c, prev_out (B, U): read and written in place, each element only by its owner thread.
//   mask      u8 (B, T) as the user gave it, element mask[b * mask_b_stride + mask_off].
//   seq       the sequence output, element (b, step, j) at b * seq_b_stride + seq_off + j
//             (batch-major or time-major, in processing order as Keras returns it).
//
// ---- thread-to-data mapping of a step kernel (block 32 x 8 = 256 threads; every entry point
//   takes a trailing `int tiled`: 0 for the mapping below, grid (ceil(U / 32), min(ceil(B / 4),
//   65535)); 1 for tiled_dense_step's GEMM-like tiling of large batches, grid (ceil(U / 16),
//   min(ceil(B / 32), 65535)); the `_tc_` variants ignore it)
//   blockIdx.x owns the 32 units j0 .. j0+31 (lane = threadIdx.x -> unit j0 + lane) for ALL
//   gates, so the whole gate update of a unit happens in one block. blockIdx.y loops over groups
//   of BR = 4 batch rows. Warp w = threadIdx.y sums k = w, w+8, w+16, ... of h[b, k] * U[k, col]
//   for its 4 rows and G gates (G*4 register accumulators; a warp's U loads are 32 consecutive
//   floats); the 8 warps' partials meet in shared memory and warps 0..3 (one batch row each)
//   add them in fixed order (deterministic), apply bias, activations, mask and state update, and
//   write h_next, c, prev_out and the step's output.
//
// ---- entry points (extern "C", dtype in the name)
//   Activations are template parameters. Instantiated by name (see src/cuda/kernels.rs):
//     pairs (act, rec):  _tanh_sigmoid, _tanh_hard_sigmoid, and _generic (ids as run-time ints)
//     single:            _tanh, _sigmoid, _hard_sigmoid, _relu, and _generic
//   Every entry point takes the activation ids as trailing ints; the compile-time variants
//   ignore them. Each exists for three weight storage types: `_f32_`, `_f16_` (__half) and
//   `_bf16_` (__nv_bfloat16), e.g. lstm_step_f16_tanh_sigmoid; gemm_bias_{f32,f16,bf16};
//   gemm_bias_tc_{f16,bf16} (the projection on tensor cores, tc_gemm.cuh); the step kernels'
//   tensor-core variants `_tc_{f16,bf16}_` (lstm_step_tc_bf16_tanh_sigmoid, ...: the recurrent
//   product with h rounded to W on tensor cores, tc_dense_step; 128 threads, grid
//   (ceil(U / 16), min(ceil(B / 64), 65535)); run only when the host is asked to);
//   convert_{f32_to_f16, f32_to_bf16, f16_to_f32, bf16_to_f32}; the `_rows` step kernels
//   (lstm_step_f32_rows, ...: one block per batch row, for softmax / log_softmax, which
//   normalise over a gate's units; see "row-wise activations" below). Helpers on f32 buffers:
//   fill_f32, permute_pf_f32, bidi_merge_f32 (Bidirectional's merge, f32 before the output's
//   one rounding to the storage type), zero_masked_steps_f32 (zero_output_for_mask).
//
// ---- storage types (f16 / bf16 storage with f32 accumulation)
//   Only the weights (W, Um, biases) are read in the storage type. xp, h, c, prev_out, the
//   GRU scratch and the sequence output are f32 in every variant: the host converts an f16 /
//   bf16 input to f32 before the projection and the returned output and states to the storage
//   type after the last step (convert_*), so rounding happens where the CPU path's f16 / bf16
//   semantics round (weights, inputs, initial states, outputs) and nowhere in between.

#include "common.cuh"
#include "tc_gemm.cuh"

namespace step {
constexpr int LANES = 32;  // units per block
constexpr int KW = 8;      // warps per block, splitting the k dimension of h U
constexpr int BR = 4;      // batch rows per pass (<= KW: warp r finishes row r)
constexpr int THREADS = LANES * KW;
static_assert(BR <= KW, "each of the first BR warps finishes one batch row");
}  // namespace step

// Runs the recurrent product of G gate blocks for every group of BR batch rows and calls
// `epi(b, j, z)` once per owned (row, unit) with z[g] = sum_k h[b, k] * Um[k, col0 + g*U + j].
// Every thread of the block must call this (it holds barriers).
template <typename W, int G, typename Epilogue>
__device__ __forceinline__ void dense_step(int B, int U, const float* __restrict__ h,
                                           const W* __restrict__ Um, int ldu, int col0,
                                           Epilogue epi) {
    using namespace step;
    __shared__ float red[KW][G][BR][LANES];
    const int lane = threadIdx.x;
    const int w = threadIdx.y;
    const int j = blockIdx.x * LANES + lane;
    const bool jok = j < U;
    const int groups = (B + BR - 1) / BR;
    for (int grp = blockIdx.y; grp < groups; grp += gridDim.y) {
        const int b0 = grp * BR;
        float acc[G][BR];
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int r = 0; r < BR; ++r) {
                acc[g][r] = 0.0f;
            }
        }
#pragma unroll 2
        for (int k = w; k < U; k += KW) {
            float hv[BR];
#pragma unroll
            for (int r = 0; r < BR; ++r) {
                hv[r] = (b0 + r < B) ? load_f32(h + (long long)(b0 + r) * U + k) : 0.0f;
            }
            const W* urow = Um + (long long)k * ldu + col0 + j;
#pragma unroll
            for (int g = 0; g < G; ++g) {
                const float u = jok ? load_f32(urow + (long long)g * U) : 0.0f;
#pragma unroll
                for (int r = 0; r < BR; ++r) {
                    acc[g][r] = fmaf(hv[r], u, acc[g][r]);
                }
            }
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int r = 0; r < BR; ++r) {
                red[w][g][r][lane] = acc[g][r];
            }
        }
        __syncthreads();
        if (w < BR) {
            const int b = b0 + w;
            if (b < B && jok) {
                float z[G];
#pragma unroll
                for (int g = 0; g < G; ++g) {
                    float s = 0.0f;
#pragma unroll
                    for (int ww = 0; ww < KW; ++ww) {
                        s += red[ww][g][w][lane];
                    }
                    z[g] = s;
                }
                epi(b, j, z);
            }
        }
        __syncthreads();
    }
}

// The same product for large batches, tiled like a GEMM through shared memory (FFMA, f32;
// same results up to f32 summation order). A block (the same 32 x 8 = 256 threads, used as
// t = 32 threadIdx.y + threadIdx.x) owns 32 batch rows (blockIdx.y, grid-stride) x 16 units
// j0 = 16 blockIdx.x .. +15 of ALL G gates. K in steps of 16 through shared memory: As[k][m]
// (h rows), Bs[k][unit][g] (the G gate columns of a unit side by side, padded to GP = 1, 2 or
// 4 floats). Thread (tm = t / 16, tn = t % 16) accumulates rows 2 tm, 2 tm + 1 of unit
// j0 + tn for every gate and calls `epi` itself, straight from its registers. Per k a warp
// issues one 8-byte load of its 2 rows (2 addresses per warp: broadcast) and one GP-float
// load of its unit's gates (16 units per warp), against 2 G FMAs: 1 + max(1, GP / 2)
// shared-memory wavefronts per 2 G FMA instructions per warp, so an SM runs at ~2/3 of its
// FMA rate for LSTM, ~1/2 for GRU, ~1/4 for one gate (src/cuda/dense.rs, tiled_fma_share). 32-row
// tiles give LSTM 64 x 1024 128 blocks (the 64-row tiles of v1 gave 64: half the SMs idle).
// Grid (ceil(U / 16), min(ceil(B / 32), 65535)).
namespace tstep {
constexpr int BM = 32;
constexpr int UNITS = 16;
constexpr int BK = 16;
constexpr int THREADS = 256;
}  // namespace tstep

// Floats per unit in Bs: G rounded up to a vector width (3 -> 4).
template <int G>
struct GatePad {
    static constexpr int value = G == 1 ? 1 : G == 2 ? 2 : 4;
};

template <int N>
struct alignas(4 * N) FloatN {
    float v[N];
};

template <typename W, int G, typename Epilogue>
__device__ __forceinline__ void tiled_dense_step(int B, int U, const float* __restrict__ h,
                                                 const W* __restrict__ Um, int ldu, int col0,
                                                 Epilogue epi) {
    using namespace tstep;
    constexpr int GP = GatePad<G>::value;
    // +2: the staging store (16 lanes of one row m, k = 0..15) hits 16 different banks, and
    // each row stays 8-byte aligned for the 2-row reads.
    __shared__ __align__(16) float As[BK][BM + 2];
    __shared__ __align__(16) float Bs[BK][UNITS][GP];
    const int t = threadIdx.y * blockDim.x + threadIdx.x;
    const int tm = t / UNITS;  // row pair 0 .. 15
    const int tn = t % UNITS;
    const int j0 = blockIdx.x * UNITS;
    const int row_tiles = (B + BM - 1) / BM;
    for (int rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
        const int b0 = rt * BM;
        float acc[2][G];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
#pragma unroll
            for (int g = 0; g < G; ++g) {
                acc[i][g] = 0.0f;
            }
        }
        for (int k0 = 0; k0 < U; k0 += BK) {
#pragma unroll
            for (int r = 0; r < (BM * BK) / THREADS; ++r) {
                const int e = t + r * THREADS;
                const int ak = e % BK;
                const int am = e / BK;
                const int b = b0 + am;
                const int k = k0 + ak;
                As[ak][am] = (b < B && k < U) ? load_f32(h + (long long)b * U + k) : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < (BK * UNITS * GP + THREADS - 1) / THREADS; ++r) {
                const int e = t + r * THREADS;  // (k, gate, unit), unit fastest: coalesced
                if (e < BK * UNITS * GP) {
                    const int bk = e / (UNITS * GP);
                    const int g = (e / UNITS) % GP;
                    const int u = e % UNITS;
                    const int j = j0 + u;
                    const int k = k0 + bk;
                    Bs[bk][u][g] = (g < G && k < U && j < U)
                                       ? load_f32(Um + (long long)k * ldu + col0 + g * U + j)
                                       : 0.0f;
                }
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                const FloatN<2> a = *reinterpret_cast<const FloatN<2>*>(&As[kk][2 * tm]);
                const FloatN<GP> w = *reinterpret_cast<const FloatN<GP>*>(&Bs[kk][tn][0]);
#pragma unroll
                for (int g = 0; g < G; ++g) {
#pragma unroll
                    for (int i = 0; i < 2; ++i) {
                        acc[i][g] = fmaf(a.v[i], w.v[g], acc[i][g]);
                    }
                }
            }
            __syncthreads();
        }
        const int j = j0 + tn;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int b = b0 + 2 * tm + i;
            if (b < B && j < U) {
                epi(b, j, acc[i]);
            }
        }
    }
}

// The recurrent product of a step kernel: FFMA in f32 (dense_step; tiled_dense_step when the
// host asks with `tiled`, for large batches) or, for the `_tc_` entry points, on tensor cores
// with h rounded to W (tc_dense_step in tc_gemm.cuh; `tiled` ignored).
template <typename W, int G, bool TC, typename Epilogue>
__device__ __forceinline__ void step_product(int B, int U, const float* __restrict__ h,
                                             const W* __restrict__ Um, int ldu, int col0,
                                             int tiled, Epilogue epi) {
    if constexpr (TC) {
        tc_dense_step<W, G>(B, U, h, Um, ldu, col0, epi);
    } else {
        if (tiled) {
            tiled_dense_step<W, G>(B, U, h, Um, ldu, col0, epi);
        } else {
            dense_step<W, G>(B, U, h, Um, ldu, col0, epi);
        }
    }
}

// Whether row b is a real step (no mask, or mask true).
__device__ __forceinline__ bool is_real(const unsigned char* __restrict__ mask, int has_mask,
                                        long long mask_off, long long mask_b_stride, int b) {
    return !has_mask || mask[(long long)b * mask_b_stride + mask_off] != 0;
}

// ---- LSTM

template <typename W, int ACT, int REC, bool TC>
__device__ __forceinline__ void lstm_step_impl(
    int B, int U, const float* __restrict__ xp, long long xp_step_off, long long xp_b_stride,
    const W* __restrict__ Um, const float* __restrict__ h_prev, float* __restrict__ h_next,
    float* __restrict__ c, float* __restrict__ prev_out, const unsigned char* __restrict__ mask,
    int has_mask, long long mask_off, long long mask_b_stride, float* __restrict__ seq, int has_seq,
    long long seq_off, long long seq_b_stride, int act, int rec, int tiled) {
    step_product<W, 4, TC>(B, U, h_prev, Um, 4 * U, 0, tiled, [&](int b, int j, const float (&z)[4]) {
        const long long e = (long long)b * U + j;
        float out;
        if (is_real(mask, has_mask, mask_off, mask_b_stride, b)) {
            const float* x = xp + (long long)b * xp_b_stride + xp_step_off + j;
            float cn;
            out = lstm_update<ACT, REC>(x[0] + z[0], x[U] + z[1], x[2 * U] + z[2],
                                        x[3 * U] + z[3], load_rw(c + e), act, rec, cn);
            store_f32(c + e, cn);
            store_f32(h_next + e, out);
            store_f32(prev_out + e, out);
        } else {
            store_f32(h_next + e, load_f32(h_prev + e));
            out = load_rw(prev_out + e);
        }
        if (has_seq) {
            store_f32(seq + (long long)b * seq_b_stride + seq_off + j, out);
        }
    });
}

#define LSTM_PARAMS(W)                                                                        \
    int B, int U, const float *__restrict__ xp, long long xp_step_off, long long xp_b_stride, \
        const W *__restrict__ Um, const float *__restrict__ h_prev, float *__restrict__ h_next,       \
        float *__restrict__ c, float *__restrict__ prev_out, const unsigned char *__restrict__ mask,  \
        int has_mask, long long mask_off, long long mask_b_stride, float *__restrict__ seq,       \
        int has_seq, long long seq_off, long long seq_b_stride, int act, int rec, int tiled
#define LSTM_ARGS                                                                             \
    B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, h_next, c, prev_out, mask, has_mask,     \
        mask_off, mask_b_stride, seq, has_seq, seq_off, seq_b_stride, act, rec, tiled

// TC: the tensor-core variant (128 threads, tc_dense_step's launch geometry).
#define STEP_THREADS(TC) ((TC) ? tcs::THREADS : step::THREADS)

#define LSTM_ENTRY(NAME, W, A, R, TC)                                                  \
    extern "C" __global__ void __launch_bounds__(STEP_THREADS(TC), 1) NAME(LSTM_PARAMS(W)) { \
        lstm_step_impl<W, A, R, TC>(LSTM_ARGS);                                        \
    }

#define LSTM_SET(DT, W)                                                               \
    LSTM_ENTRY(lstm_step_##DT##_tanh_sigmoid, W, ACT_TANH, ACT_SIGMOID, false)         \
    LSTM_ENTRY(lstm_step_##DT##_tanh_hard_sigmoid, W, ACT_TANH, ACT_HARD_SIGMOID, false) \
    LSTM_ENTRY(lstm_step_##DT##_generic, W, ACT_RUNTIME, ACT_RUNTIME, false)
#define LSTM_TC_SET(DT, W)                                                                \
    LSTM_ENTRY(lstm_step_tc_##DT##_tanh_sigmoid, W, ACT_TANH, ACT_SIGMOID, true)         \
    LSTM_ENTRY(lstm_step_tc_##DT##_tanh_hard_sigmoid, W, ACT_TANH, ACT_HARD_SIGMOID, true) \
    LSTM_ENTRY(lstm_step_tc_##DT##_generic, W, ACT_RUNTIME, ACT_RUNTIME, true)
LSTM_SET(f32, float)
LSTM_SET(f16, __half)
LSTM_SET(bf16, __nv_bfloat16)
LSTM_TC_SET(f32, float)  // TF32
LSTM_TC_SET(f16, __half)
LSTM_TC_SET(bf16, __nv_bfloat16)

// ---- GRU, reset_after = true

template <typename W, int ACT, int REC, bool TC>
__device__ __forceinline__ void gru_after_step_impl(
    int B, int U, const float* __restrict__ xp, long long xp_step_off, long long xp_b_stride,
    const W* __restrict__ Um, const W* __restrict__ rb, int has_rb, const float* __restrict__ h_prev,
    float* __restrict__ h_next, float* __restrict__ prev_out, const unsigned char* __restrict__ mask,
    int has_mask, long long mask_off, long long mask_b_stride, float* __restrict__ seq, int has_seq,
    long long seq_off, long long seq_b_stride, int act, int rec, int tiled) {
    step_product<W, 3, TC>(B, U, h_prev, Um, 3 * U, 0, tiled, [&](int b, int j, const float (&z)[3]) {
        const long long e = (long long)b * U + j;
        float out;
        if (is_real(mask, has_mask, mask_off, mask_b_stride, b)) {
            const float* x = xp + (long long)b * xp_b_stride + xp_step_off + j;
            const float hz = z[0] + (has_rb ? load_f32(rb + j) : 0.0f);
            const float hr = z[1] + (has_rb ? load_f32(rb + U + j) : 0.0f);
            const float hh = z[2] + (has_rb ? load_f32(rb + 2 * U + j) : 0.0f);
            const float zg = activate<REC>(x[0] + hz, rec);
            const float r = activate<REC>(x[U] + hr, rec);
            const float n = activate<ACT>(x[2 * U] + r * hh, act);
            out = zg * load_f32(h_prev + e) + (1.0f - zg) * n;
            store_f32(h_next + e, out);
            store_f32(prev_out + e, out);
        } else {
            store_f32(h_next + e, load_f32(h_prev + e));
            out = load_rw(prev_out + e);
        }
        if (has_seq) {
            store_f32(seq + (long long)b * seq_b_stride + seq_off + j, out);
        }
    });
}

#define GRU_AFTER_PARAMS(W)                                                                   \
    int B, int U, const float *__restrict__ xp, long long xp_step_off, long long xp_b_stride, \
        const W *__restrict__ Um, const W *__restrict__ rb, int has_rb,                       \
        const float *__restrict__ h_prev, float *__restrict__ h_next, float *__restrict__ prev_out,       \
        const unsigned char *__restrict__ mask, int has_mask, long long mask_off,             \
        long long mask_b_stride, float *__restrict__ seq, int has_seq, long long seq_off,         \
        long long seq_b_stride, int act, int rec, int tiled
#define GRU_AFTER_ARGS                                                                      \
    B, U, xp, xp_step_off, xp_b_stride, Um, rb, has_rb, h_prev, h_next, prev_out, mask,    \
        has_mask, mask_off, mask_b_stride, seq, has_seq, seq_off, seq_b_stride, act, rec, tiled

#define GRU_AFTER_ENTRY(NAME, W, A, R, TC)                                                  \
    extern "C" __global__ void __launch_bounds__(STEP_THREADS(TC), 1) NAME(GRU_AFTER_PARAMS(W)) { \
        gru_after_step_impl<W, A, R, TC>(GRU_AFTER_ARGS);                                   \
    }

#define GRU_AFTER_SET(DT, W)                                                                     \
    GRU_AFTER_ENTRY(gru_after_step_##DT##_tanh_sigmoid, W, ACT_TANH, ACT_SIGMOID, false)         \
    GRU_AFTER_ENTRY(gru_after_step_##DT##_tanh_hard_sigmoid, W, ACT_TANH, ACT_HARD_SIGMOID, false) \
    GRU_AFTER_ENTRY(gru_after_step_##DT##_generic, W, ACT_RUNTIME, ACT_RUNTIME, false)
#define GRU_AFTER_TC_SET(DT, W)                                                                     \
    GRU_AFTER_ENTRY(gru_after_step_tc_##DT##_tanh_sigmoid, W, ACT_TANH, ACT_SIGMOID, true)         \
    GRU_AFTER_ENTRY(gru_after_step_tc_##DT##_tanh_hard_sigmoid, W, ACT_TANH, ACT_HARD_SIGMOID, true) \
    GRU_AFTER_ENTRY(gru_after_step_tc_##DT##_generic, W, ACT_RUNTIME, ACT_RUNTIME, true)
GRU_AFTER_SET(f32, float)
GRU_AFTER_SET(f16, __half)
GRU_AFTER_SET(bf16, __nv_bfloat16)
GRU_AFTER_TC_SET(f32, float)  // TF32
GRU_AFTER_TC_SET(f16, __half)
GRU_AFTER_TC_SET(bf16, __nv_bfloat16)

// ---- GRU, reset_after = false: kernel A (gates z, r and r * h), kernel B (candidate, update)

// Kernel A: columns [0, 2U) of Um. Writes z and rh = r * h (both f32) for every row,
// masked or not (kernel B applies the mask).
template <typename W, int REC, bool TC>
__device__ __forceinline__ void gru_before_gates_impl(
    int B, int U, const float* __restrict__ xp, long long xp_step_off, long long xp_b_stride,
    const W* __restrict__ Um, const float* __restrict__ h_prev, float* __restrict__ zbuf,
    float* __restrict__ rh, int rec, int tiled) {
    step_product<W, 2, TC>(B, U, h_prev, Um, 3 * U, 0, tiled, [&](int b, int j, const float (&z)[2]) {
        const long long e = (long long)b * U + j;
        const float* x = xp + (long long)b * xp_b_stride + xp_step_off + j;
        const float zg = activate<REC>(x[0] + z[0], rec);
        const float r = activate<REC>(x[U] + z[1], rec);
        zbuf[e] = zg;
        store_f32(rh + e, r * load_f32(h_prev + e));
    });
}

#define GRU_GATES_PARAMS(W)                                                                   \
    int B, int U, const float *__restrict__ xp, long long xp_step_off, long long xp_b_stride, \
        const W *__restrict__ Um, const float *__restrict__ h_prev, float *__restrict__ zbuf,     \
        float *__restrict__ rh, int rec, int tiled
#define GRU_GATES_ARGS B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, zbuf, rh, rec, tiled

#define GRU_GATES_ENTRY(NAME, W, R, TC)                                                     \
    extern "C" __global__ void __launch_bounds__(STEP_THREADS(TC), 1) NAME(GRU_GATES_PARAMS(W)) { \
        gru_before_gates_impl<W, R, TC>(GRU_GATES_ARGS);                                    \
    }

#define GRU_GATES_SET(DT, W)                                                            \
    GRU_GATES_ENTRY(gru_before_gates_##DT##_sigmoid, W, ACT_SIGMOID, false)             \
    GRU_GATES_ENTRY(gru_before_gates_##DT##_hard_sigmoid, W, ACT_HARD_SIGMOID, false)   \
    GRU_GATES_ENTRY(gru_before_gates_##DT##_generic, W, ACT_RUNTIME, false)
#define GRU_GATES_TC_SET(DT, W)                                                            \
    GRU_GATES_ENTRY(gru_before_gates_tc_##DT##_sigmoid, W, ACT_SIGMOID, true)             \
    GRU_GATES_ENTRY(gru_before_gates_tc_##DT##_hard_sigmoid, W, ACT_HARD_SIGMOID, true)   \
    GRU_GATES_ENTRY(gru_before_gates_tc_##DT##_generic, W, ACT_RUNTIME, true)
GRU_GATES_SET(f32, float)
GRU_GATES_SET(f16, __half)
GRU_GATES_SET(bf16, __nv_bfloat16)
GRU_GATES_TC_SET(f32, float)  // TF32
GRU_GATES_TC_SET(f16, __half)
GRU_GATES_TC_SET(bf16, __nv_bfloat16)

// Kernel B: columns [2U, 3U) of Um applied to rh; the state update and the mask.
template <typename W, int ACT, bool TC>
__device__ __forceinline__ void gru_before_update_impl(
    int B, int U, const float* __restrict__ xp, long long xp_step_off, long long xp_b_stride,
    const W* __restrict__ Um, const float* __restrict__ rh, const float* __restrict__ zbuf,
    const float* __restrict__ h_prev, float* __restrict__ h_next, float* __restrict__ prev_out,
    const unsigned char* __restrict__ mask, int has_mask, long long mask_off,
    long long mask_b_stride, float* __restrict__ seq, int has_seq, long long seq_off,
    long long seq_b_stride, int act, int tiled) {
    step_product<W, 1, TC>(B, U, rh, Um, 3 * U, 2 * U, tiled, [&](int b, int j, const float (&z)[1]) {
        const long long e = (long long)b * U + j;
        float out;
        if (is_real(mask, has_mask, mask_off, mask_b_stride, b)) {
            const float* x = xp + (long long)b * xp_b_stride + xp_step_off + j;
            const float n = activate<ACT>(x[2 * U] + z[0], act);
            const float zg = __ldg(zbuf + e);
            out = zg * load_f32(h_prev + e) + (1.0f - zg) * n;
            store_f32(h_next + e, out);
            store_f32(prev_out + e, out);
        } else {
            store_f32(h_next + e, load_f32(h_prev + e));
            out = load_rw(prev_out + e);
        }
        if (has_seq) {
            store_f32(seq + (long long)b * seq_b_stride + seq_off + j, out);
        }
    });
}

#define GRU_UPDATE_PARAMS(W)                                                                  \
    int B, int U, const float *__restrict__ xp, long long xp_step_off, long long xp_b_stride, \
        const W *__restrict__ Um, const float *__restrict__ rh, const float *__restrict__ zbuf,   \
        const float *__restrict__ h_prev, float *__restrict__ h_next, float *__restrict__ prev_out,       \
        const unsigned char *__restrict__ mask, int has_mask, long long mask_off,             \
        long long mask_b_stride, float *__restrict__ seq, int has_seq, long long seq_off,         \
        long long seq_b_stride, int act, int tiled
#define GRU_UPDATE_ARGS                                                                      \
    B, U, xp, xp_step_off, xp_b_stride, Um, rh, zbuf, h_prev, h_next, prev_out, mask,       \
        has_mask, mask_off, mask_b_stride, seq, has_seq, seq_off, seq_b_stride, act, tiled

#define GRU_UPDATE_ENTRY(NAME, W, A, TC)                                                     \
    extern "C" __global__ void __launch_bounds__(STEP_THREADS(TC), 1) NAME(GRU_UPDATE_PARAMS(W)) { \
        gru_before_update_impl<W, A, TC>(GRU_UPDATE_ARGS);                                   \
    }

#define GRU_UPDATE_SET(DT, W)                                                  \
    GRU_UPDATE_ENTRY(gru_before_update_##DT##_tanh, W, ACT_TANH, false)        \
    GRU_UPDATE_ENTRY(gru_before_update_##DT##_relu, W, ACT_RELU, false)        \
    GRU_UPDATE_ENTRY(gru_before_update_##DT##_generic, W, ACT_RUNTIME, false)
#define GRU_UPDATE_TC_SET(DT, W)                                                  \
    GRU_UPDATE_ENTRY(gru_before_update_tc_##DT##_tanh, W, ACT_TANH, true)        \
    GRU_UPDATE_ENTRY(gru_before_update_tc_##DT##_relu, W, ACT_RELU, true)        \
    GRU_UPDATE_ENTRY(gru_before_update_tc_##DT##_generic, W, ACT_RUNTIME, true)
GRU_UPDATE_SET(f32, float)
GRU_UPDATE_SET(f16, __half)
GRU_UPDATE_SET(bf16, __nv_bfloat16)
GRU_UPDATE_TC_SET(f32, float)  // TF32
GRU_UPDATE_TC_SET(f16, __half)
GRU_UPDATE_TC_SET(bf16, __nv_bfloat16)

// ---- SimpleRNN

template <typename W, int ACT, bool TC>
__device__ __forceinline__ void simple_step_impl(
    int B, int U, const float* __restrict__ xp, long long xp_step_off, long long xp_b_stride,
    const W* __restrict__ Um, const float* __restrict__ h_prev, float* __restrict__ h_next,
    float* __restrict__ prev_out, const unsigned char* __restrict__ mask, int has_mask,
    long long mask_off, long long mask_b_stride, float* __restrict__ seq, int has_seq,
    long long seq_off, long long seq_b_stride, int act, int tiled) {
    step_product<W, 1, TC>(B, U, h_prev, Um, U, 0, tiled, [&](int b, int j, const float (&z)[1]) {
        const long long e = (long long)b * U + j;
        float out;
        if (is_real(mask, has_mask, mask_off, mask_b_stride, b)) {
            const float* x = xp + (long long)b * xp_b_stride + xp_step_off + j;
            out = activate<ACT>(x[0] + z[0], act);
            store_f32(h_next + e, out);
            store_f32(prev_out + e, out);
        } else {
            store_f32(h_next + e, load_f32(h_prev + e));
            out = load_rw(prev_out + e);
        }
        if (has_seq) {
            store_f32(seq + (long long)b * seq_b_stride + seq_off + j, out);
        }
    });
}

#define SIMPLE_PARAMS(W)                                                                      \
    int B, int U, const float *__restrict__ xp, long long xp_step_off, long long xp_b_stride, \
        const W *__restrict__ Um, const float *__restrict__ h_prev, float *__restrict__ h_next,       \
        float *__restrict__ prev_out, const unsigned char *__restrict__ mask, int has_mask,       \
        long long mask_off, long long mask_b_stride, float *__restrict__ seq, int has_seq,        \
        long long seq_off, long long seq_b_stride, int act, int tiled
#define SIMPLE_ARGS                                                                          \
    B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, h_next, prev_out, mask, has_mask,       \
        mask_off, mask_b_stride, seq, has_seq, seq_off, seq_b_stride, act, tiled

#define SIMPLE_ENTRY(NAME, W, A, TC)                                                     \
    extern "C" __global__ void __launch_bounds__(STEP_THREADS(TC), 1) NAME(SIMPLE_PARAMS(W)) { \
        simple_step_impl<W, A, TC>(SIMPLE_ARGS);                                         \
    }

#define SIMPLE_SET(DT, W)                                              \
    SIMPLE_ENTRY(simple_step_##DT##_tanh, W, ACT_TANH, false)          \
    SIMPLE_ENTRY(simple_step_##DT##_relu, W, ACT_RELU, false)          \
    SIMPLE_ENTRY(simple_step_##DT##_generic, W, ACT_RUNTIME, false)
#define SIMPLE_TC_SET(DT, W)                                              \
    SIMPLE_ENTRY(simple_step_tc_##DT##_tanh, W, ACT_TANH, true)          \
    SIMPLE_ENTRY(simple_step_tc_##DT##_relu, W, ACT_RELU, true)          \
    SIMPLE_ENTRY(simple_step_tc_##DT##_generic, W, ACT_RUNTIME, true)
SIMPLE_SET(f32, float)
SIMPLE_SET(f16, __half)
SIMPLE_SET(bf16, __nv_bfloat16)
SIMPLE_TC_SET(f32, float)  // TF32
SIMPLE_TC_SET(f16, __half)
SIMPLE_TC_SET(bf16, __nv_bfloat16)

// ---- row-wise activations (softmax, log_softmax): the `_rows` step kernels
//   Keras applies softmax / log_softmax over the last axis of a gate's (batch, units) tensor,
//   so every unit's gate value depends on the whole row: one block owns one batch row at a
//   time (grid (1, min(B, 65535)), block rows::THREADS = 256, grid-stride over rows). The
//   row's recurrent product for all G*U columns goes to shared memory (zs: G*U <=
//   rows::MAX_FLOATS, checked by the host), each gate row is activated as a whole (block
//   reductions for the maximum and the sum: x - max, exp, sum; softmax = exp(x - max) / sum,
//   log_softmax = x - max - log(sum); a NaN anywhere in the row makes it NaN, as in TF), then
//   the state update, mask and outputs exactly as the fused kernels above. Same parameters as
//   the step kernels (`tiled` is ignored), activations by run-time id (every id, elementwise
//   ones too). A slow path (one block per row, the product from global memory): the host
//   uses it only when an activation is row-wise. Entry points: {lstm_step, gru_after_step,
//   gru_before_gates, gru_before_update, simple_step}_{f32,f16,bf16}_rows. The row helpers
//   (rows_reduce, rows_activate) are in common.cuh, shared with conv_lstm.cu.

// zs[n] = sum_k hrow[k] * Um[k, col0 + n] for n < G*U (f32, k in order); ends with a barrier.
template <typename W, int G>
__device__ __forceinline__ void rows_product(int U, const float* __restrict__ hrow,
                                             const W* __restrict__ Um, int ldu, int col0,
                                             float* zs) {
    for (int n = rows_tid(); n < G * U; n += rows::THREADS) {
        float acc = 0.0f;
        for (int k = 0; k < U; ++k) {
            acc = fmaf(load_f32(hrow + k), load_f32(Um + (long long)k * ldu + col0 + n), acc);
        }
        zs[n] = acc;
    }
    __syncthreads();
}

// The outputs of row b, unit j: h_next, prev_out (real steps) and the sequence.
__device__ __forceinline__ void rows_store(long long e, int b, int j, float out, bool real,
                                           const float* __restrict__ h_prev,
                                           float* __restrict__ h_next, float* __restrict__ prev_out,
                                           float* __restrict__ seq, int has_seq, long long seq_off,
                                           long long seq_b_stride) {
    if (real) {
        store_f32(h_next + e, out);
        store_f32(prev_out + e, out);
    } else {
        store_f32(h_next + e, load_f32(h_prev + e));
        out = load_rw(prev_out + e);
    }
    if (has_seq) {
        store_f32(seq + (long long)b * seq_b_stride + seq_off + j, out);
    }
}

#define ROWS_SHARED                              \
    __shared__ float zs[rows::MAX_FLOATS];       \
    __shared__ float red[rows::THREADS];         \
    const int t = rows_tid();                    \
    (void)tiled

// The loop of the `_rows` kernels that apply the mask: per batch row b of this block,
// `gates(b, row)` (row = b * U; all threads; only for a real row; ends with a barrier) leaves
// the row's new output where `out(row, j)` reads it, then every unit's h_next, prev_out and
// sequence element are written (rows_store), and a barrier lets the next row reuse zs.
template <typename Gates, typename Out>
__device__ __forceinline__ void rows_loop(
    int B, int U, const unsigned char* __restrict__ mask, int has_mask, long long mask_off,
    long long mask_b_stride, const float* __restrict__ h_prev, float* __restrict__ h_next,
    float* __restrict__ prev_out, float* __restrict__ seq, int has_seq, long long seq_off,
    long long seq_b_stride, Gates gates, Out out) {
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        const long long row = (long long)b * U;
        const bool real = is_real(mask, has_mask, mask_off, mask_b_stride, b);
        if (real) {
            gates(b, row);
        }
        for (int j = rows_tid(); j < U; j += rows::THREADS) {
            rows_store(row + j, b, j, real ? out(row, j) : 0.0f, real, h_prev, h_next, prev_out,
                       seq, has_seq, seq_off, seq_b_stride);
        }
        __syncthreads();
    }
}
#define ROWS_LOOP_ARGS                                                                    \
    B, U, mask, has_mask, mask_off, mask_b_stride, h_prev, h_next, prev_out, seq, has_seq, \
        seq_off, seq_b_stride

// The projected input of row b at this step (gate blocks side by side).
#define ROWS_X(b) (xp + (long long)(b) * xp_b_stride + xp_step_off)

template <typename W>
__device__ __forceinline__ void lstm_rows_impl(LSTM_PARAMS(W)) {
    ROWS_SHARED;
    auto gates = [&](int b, long long row) {
        rows_product<W, 4>(U, h_prev + row, Um, 4 * U, 0, zs);
        const float* x = ROWS_X(b);
        for (int n = t; n < 4 * U; n += rows::THREADS) {
            zs[n] += x[n];
        }
        __syncthreads();
        rows_activate(zs, U, rec, red);
        rows_activate(zs + U, U, rec, red);
        rows_activate(zs + 2 * U, U, act, red);
        rows_activate(zs + 3 * U, U, rec, red);
        for (int j = t; j < U; j += rows::THREADS) {
            const float cn = zs[U + j] * load_rw(c + row + j) + zs[j] * zs[2 * U + j];
            store_f32(c + row + j, cn);
            zs[2 * U + j] = cn;
        }
        __syncthreads();
        rows_activate(zs + 2 * U, U, act, red);  // act(c')
    };
    rows_loop(ROWS_LOOP_ARGS, gates,
              [&](long long, int j) { return zs[3 * U + j] * zs[2 * U + j]; });
}

template <typename W>
__device__ __forceinline__ void gru_after_rows_impl(GRU_AFTER_PARAMS(W)) {
    ROWS_SHARED;
    auto gates = [&](int b, long long row) {
        rows_product<W, 3>(U, h_prev + row, Um, 3 * U, 0, zs);
        const float* x = ROWS_X(b);
        for (int n = t; n < 3 * U; n += rows::THREADS) {
            const float hv = zs[n] + (has_rb ? load_f32(rb + n) : 0.0f);
            zs[n] = n < 2 * U ? x[n] + hv : hv;
        }
        __syncthreads();
        rows_activate(zs, U, rec, red);
        rows_activate(zs + U, U, rec, red);
        for (int j = t; j < U; j += rows::THREADS) {
            zs[2 * U + j] = x[2 * U + j] + zs[U + j] * zs[2 * U + j];
        }
        __syncthreads();
        rows_activate(zs + 2 * U, U, act, red);
    };
    rows_loop(ROWS_LOOP_ARGS, gates, [&](long long row, int j) {
        return zs[j] * load_f32(h_prev + row + j) + (1.0f - zs[j]) * zs[2 * U + j];
    });
}

// Kernel A of GRU reset_after=false: z and rh = r * h for every row, masked or not.
template <typename W>
__device__ __forceinline__ void gru_before_gates_rows_impl(GRU_GATES_PARAMS(W)) {
    ROWS_SHARED;
    for (int b = blockIdx.y; b < B; b += gridDim.y) {
        const long long row = (long long)b * U;
        rows_product<W, 2>(U, h_prev + row, Um, 3 * U, 0, zs);
        const float* x = ROWS_X(b);
        for (int n = t; n < 2 * U; n += rows::THREADS) {
            zs[n] += x[n];
        }
        __syncthreads();
        rows_activate(zs, U, rec, red);
        rows_activate(zs + U, U, rec, red);
        for (int j = t; j < U; j += rows::THREADS) {
            zbuf[row + j] = zs[j];
            store_f32(rh + row + j, zs[U + j] * load_f32(h_prev + row + j));
        }
        __syncthreads();
    }
}

// Kernel B of GRU reset_after=false: n = act(xp_h + rh U_h) over the row, the update, the mask.
template <typename W>
__device__ __forceinline__ void gru_before_update_rows_impl(GRU_UPDATE_PARAMS(W)) {
    ROWS_SHARED;
    auto gates = [&](int b, long long row) {
        rows_product<W, 1>(U, rh + row, Um, 3 * U, 2 * U, zs);
        const float* x = ROWS_X(b);
        for (int j = t; j < U; j += rows::THREADS) {
            zs[j] += x[2 * U + j];
        }
        __syncthreads();
        rows_activate(zs, U, act, red);
    };
    rows_loop(ROWS_LOOP_ARGS, gates, [&](long long row, int j) {
        const float zg = zbuf[row + j];
        return zg * load_f32(h_prev + row + j) + (1.0f - zg) * zs[j];
    });
}

template <typename W>
__device__ __forceinline__ void simple_rows_impl(SIMPLE_PARAMS(W)) {
    ROWS_SHARED;
    auto gates = [&](int b, long long row) {
        rows_product<W, 1>(U, h_prev + row, Um, U, 0, zs);
        const float* x = ROWS_X(b);
        for (int j = t; j < U; j += rows::THREADS) {
            zs[j] += x[j];
        }
        __syncthreads();
        rows_activate(zs, U, act, red);
    };
    rows_loop(ROWS_LOOP_ARGS, gates, [&](long long, int j) { return zs[j]; });
}

#define ROWS_SET(DT, W)                                                                         \
    extern "C" __global__ void __launch_bounds__(rows::THREADS, 1)                              \
        lstm_step_##DT##_rows(LSTM_PARAMS(W)) {                                                 \
        lstm_rows_impl<W>(LSTM_ARGS);                                                           \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(rows::THREADS, 1)                              \
        gru_after_step_##DT##_rows(GRU_AFTER_PARAMS(W)) {                                       \
        gru_after_rows_impl<W>(GRU_AFTER_ARGS);                                                 \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(rows::THREADS, 1)                              \
        gru_before_gates_##DT##_rows(GRU_GATES_PARAMS(W)) {                                     \
        gru_before_gates_rows_impl<W>(GRU_GATES_ARGS);                                          \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(rows::THREADS, 1)                              \
        gru_before_update_##DT##_rows(GRU_UPDATE_PARAMS(W)) {                                   \
        gru_before_update_rows_impl<W>(GRU_UPDATE_ARGS);                                        \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(rows::THREADS, 1)                              \
        simple_step_##DT##_rows(SIMPLE_PARAMS(W)) {                                             \
        simple_rows_impl<W>(SIMPLE_ARGS);                                                       \
    }
ROWS_SET(f32, float)
ROWS_SET(f16, __half)
ROWS_SET(bf16, __nv_bfloat16)

// ---- projection: xp = x W + b for every step at once (one launch per layer call)
// Grid (ceil(N / 64), min(ceil(M / 64), 65535)), block 256; see gemm_bias_tile in common.cuh.
// A (the input sequence) is f32; the weights and bias are in the entry's storage type.

#define GEMM_ENTRY(NAME, W)                                                                   \
    extern "C" __global__ void __launch_bounds__(gemm::THREADS)                               \
        NAME(long long M, int N, int K, const float* __restrict__ A, long long lda,          \
             const W* __restrict__ Bm, int ldb, const W* __restrict__ bias, int has_bias,     \
             float* __restrict__ C, long long ldc) {                                          \
        const DenseA<float> a{A, lda};                                                        \
        gemm_bias_tile(M, N, K, a, Bm, ldb, bias, has_bias, C, ldc);                          \
    }
GEMM_ENTRY(gemm_bias_f32, float)
GEMM_ENTRY(gemm_bias_f16, __half)
GEMM_ENTRY(gemm_bias_bf16, __nv_bfloat16)

// The same product on tensor cores (tc_gemm.cuh), for an A whose values are already W values
// (the host's rule): grid (ceil(N / 64), min(ceil(M / 64), 65535)), block 128.
#define TC_GEMM_ENTRY(NAME, W)                                                                \
    extern "C" __global__ void __launch_bounds__(tcg::THREADS)                                \
        NAME(long long M, int N, int K, const float* __restrict__ A, long long lda,          \
             const W* __restrict__ Bm, int ldb, const W* __restrict__ bias, int has_bias,     \
             float* __restrict__ C, long long ldc) {                                          \
        const DenseA<float> a{A, lda};                                                        \
        tc_gemm_bias_tile<W>(M, N, K, a, Bm, ldb, bias, has_bias, C, ldc);                    \
    }
TC_GEMM_ENTRY(gemm_bias_tc_f32, float)  // TF32: only when allowed (rounds A and W)
TC_GEMM_ENTRY(gemm_bias_tc_f16, __half)
TC_GEMM_ENTRY(gemm_bias_tc_bf16, __nv_bfloat16)

// ---- wavefront across the cells of a stack (one launch per diagonal of (cell, step))
// Cell l runs its step s = it - l in the launch of diagonal `it` (blockIdx.z = l), so all cells
// of a stack run side by side: T + L - 1 diagonals instead of L x T sequential steps. Cell 0
// reads its projection xp (all steps, computed up front as for one cell); cell l > 0 needs
// y_{l-1}(s), written by the previous diagonal, so each diagonal first runs
//   gemm_bias_wave_{dt}:  xp_l = y_{l-1}(s) W_l + b_l   (B, G*U_l), cells 1 .. L-1 (blockIdx.z =
//                         l - 1), grid (ceil(max G*U / 64), min(ceil(B / 64), 65535), L - 1)
// and then the step entry of the cells' kind, `<step name>` with `_wave_` before the dtype
// (lstm_step_wave_f32_tanh_sigmoid, gru_before_gates_wave_f16_sigmoid, ...): the same
// step_product and epilogues as the per-step entries (so the same numbers: the projection of
// row b is the same dot product in the same order as in the up-front GEMM), grid (max over cells
// of the step grid's x, its y, L). Blocks whose cell has no step at this diagonal, or whose units
// lie beyond their cell's, return at once (uniform per block). Every cell of a launch has the
// same kind, activations, storage type and `tiled` mapping; per-cell pointers and strides come
// in one WaveArgs passed by value (__grid_constant__: read in place from the parameter space).
// Layouts: xp of cell 0 as in the per-step entries (step (reverse ? T-1-s : s) at xp_step_stride);
// of cells > 0 one (B, G*U) buffer (xp_step_stride 0). h ping-pongs h0 -> h1 (step s reads h0
// when s is even). Cells before the last write their sequence time-major into a ring of two
// steps (the next cell's input: step s at in + (s % 2) * in_step_stride, row b at b * K; its
// projection reads step s one diagonal after it was written and before step s + 2 overwrites
// it), so a stack holds no more of its intermediate sequences than two steps each.
namespace wave {
constexpr int MAX_CELLS = 8;
}  // namespace wave

// Every field is 8 bytes (no padding): src/cuda/wave.rs mirrors it field by field.
struct WaveCell {
    long long U;
    long long gu;  // G * U: the width of xp rows and of W's and Um's rows
    float* xp;
    long long xp_step_stride;
    long long xp_b_stride;
    long long xp_reverse;
    const void* Um;
    const void* rb;
    long long has_rb;
    float* h0;
    float* h1;
    float* c;
    float* prev_out;
    float* zbuf;
    float* rh;
    float* seq;
    long long has_seq;
    long long seq_step_stride;
    long long seq_b_stride;
    const float* in;  // cells > 0: the previous cell's time-major sequence
    long long in_step_stride;
    long long K;
    const void* Wx;  // (K, G*U) kernel, storage type W
    const void* bias;
    long long has_bias;
};
struct WaveArgs {
    WaveCell cell[wave::MAX_CELLS];
    long long B;
    long long T;
    long long n_cells;
    const unsigned char* mask;
    long long has_mask;
    long long mask_reverse;
    long long mask_b_stride;
    long long act;
    long long rec;
    long long tiled;
};
static_assert(sizeof(WaveCell) == 25 * 8, "WaveCell: 25 eight-byte fields, as in wave.rs");
static_assert(sizeof(WaveArgs) == wave::MAX_CELLS * sizeof(WaveCell) + 10 * 8,
              "WaveArgs: the cells then 10 eight-byte fields, as in wave.rs");

// The per-step arguments of this block's cell at diagonal `it` (blockIdx.z = cell l, step
// s = it - l), in the per-step kernels' terms.
struct WaveStep {
    const WaveCell& c;
    long long xp_off, mask_off, seq_off;
    float* h_prev;
    float* h_next;
    __device__ WaveStep(const WaveArgs& a, const WaveCell& cell, long long s)
        : c(cell),
          xp_off((cell.xp_reverse ? a.T - 1 - s : s) * cell.xp_step_stride),
          mask_off(a.mask_reverse ? a.T - 1 - s : s),
          seq_off((blockIdx.z + 1 < a.n_cells ? s % 2 : s) * cell.seq_step_stride),
          h_prev(s % 2 == 0 ? cell.h0 : cell.h1),
          h_next(s % 2 == 0 ? cell.h1 : cell.h0) {}
};

// Runs `run(w)` for this block's cell and step at diagonal `it`; returns at once (uniform
// per block, before any barrier) where the cell has no step at this diagonal or the block's
// units lie beyond the cell's.
template <typename Run>
__device__ __forceinline__ void wave_step(const WaveArgs& a, int it, Run run) {
    const int l = blockIdx.z;
    if (l >= a.n_cells) return;
    const WaveCell& c = a.cell[l];
    const long long s = (long long)it - l;
    const int per_block = a.tiled ? tstep::UNITS : step::LANES;
    if (s < 0 || s >= a.T || (long long)blockIdx.x * per_block >= c.U) return;
    run(WaveStep(a, c, s));
}

template <typename W, int ACT, int REC>
__device__ __forceinline__ void lstm_wave_impl(const WaveArgs& a, int it) {
    wave_step(a, it, [&](const WaveStep& w) {
        lstm_step_impl<W, ACT, REC, false>(
            (int)a.B, (int)w.c.U, w.c.xp, w.xp_off, w.c.xp_b_stride, (const W*)w.c.Um,
            w.h_prev, w.h_next, w.c.c, w.c.prev_out, a.mask, (int)a.has_mask, w.mask_off,
            a.mask_b_stride, w.c.seq, (int)w.c.has_seq, w.seq_off, w.c.seq_b_stride,
            (int)a.act, (int)a.rec, (int)a.tiled);
    });
}

template <typename W, int ACT, int REC>
__device__ __forceinline__ void gru_after_wave_impl(const WaveArgs& a, int it) {
    wave_step(a, it, [&](const WaveStep& w) {
        gru_after_step_impl<W, ACT, REC, false>(
            (int)a.B, (int)w.c.U, w.c.xp, w.xp_off, w.c.xp_b_stride, (const W*)w.c.Um,
            (const W*)w.c.rb, (int)w.c.has_rb, w.h_prev, w.h_next, w.c.prev_out, a.mask,
            (int)a.has_mask, w.mask_off, a.mask_b_stride, w.c.seq, (int)w.c.has_seq, w.seq_off,
            w.c.seq_b_stride, (int)a.act, (int)a.rec, (int)a.tiled);
    });
}

template <typename W, int REC>
__device__ __forceinline__ void gru_gates_wave_impl(const WaveArgs& a, int it) {
    wave_step(a, it, [&](const WaveStep& w) {
        gru_before_gates_impl<W, REC, false>((int)a.B, (int)w.c.U, w.c.xp, w.xp_off,
                                             w.c.xp_b_stride, (const W*)w.c.Um, w.h_prev,
                                             w.c.zbuf, w.c.rh, (int)a.rec, (int)a.tiled);
    });
}

template <typename W, int ACT>
__device__ __forceinline__ void gru_update_wave_impl(const WaveArgs& a, int it) {
    wave_step(a, it, [&](const WaveStep& w) {
        gru_before_update_impl<W, ACT, false>(
            (int)a.B, (int)w.c.U, w.c.xp, w.xp_off, w.c.xp_b_stride, (const W*)w.c.Um, w.c.rh,
            w.c.zbuf, w.h_prev, w.h_next, w.c.prev_out, a.mask, (int)a.has_mask, w.mask_off,
            a.mask_b_stride, w.c.seq, (int)w.c.has_seq, w.seq_off, w.c.seq_b_stride,
            (int)a.act, (int)a.tiled);
    });
}

template <typename W, int ACT>
__device__ __forceinline__ void simple_wave_impl(const WaveArgs& a, int it) {
    wave_step(a, it, [&](const WaveStep& w) {
        simple_step_impl<W, ACT, false>((int)a.B, (int)w.c.U, w.c.xp, w.xp_off,
                                        w.c.xp_b_stride, (const W*)w.c.Um, w.h_prev, w.h_next,
                                        w.c.prev_out, a.mask, (int)a.has_mask, w.mask_off,
                                        a.mask_b_stride, w.c.seq, (int)w.c.has_seq, w.seq_off,
                                        w.c.seq_b_stride, (int)a.act, (int)a.tiled);
    });
}

#define WAVE_ENTRY(NAME, IMPL)                                                               \
    extern "C" __global__ void __launch_bounds__(step::THREADS, 1)                           \
        NAME(const __grid_constant__ WaveArgs a, int it) {                                   \
        IMPL(a, it);                                                                         \
    }

#define LSTM_WAVE_SET(DT, W)                                                                        \
    WAVE_ENTRY(lstm_step_wave_##DT##_tanh_sigmoid, (lstm_wave_impl<W, ACT_TANH, ACT_SIGMOID>))    \
    WAVE_ENTRY(lstm_step_wave_##DT##_tanh_hard_sigmoid,                                           \
               (lstm_wave_impl<W, ACT_TANH, ACT_HARD_SIGMOID>))                                   \
    WAVE_ENTRY(lstm_step_wave_##DT##_generic, (lstm_wave_impl<W, ACT_RUNTIME, ACT_RUNTIME>))
#define GRU_AFTER_WAVE_SET(DT, W)                                                         \
    WAVE_ENTRY(gru_after_step_wave_##DT##_tanh_sigmoid,                                   \
               (gru_after_wave_impl<W, ACT_TANH, ACT_SIGMOID>))                           \
    WAVE_ENTRY(gru_after_step_wave_##DT##_tanh_hard_sigmoid,                              \
               (gru_after_wave_impl<W, ACT_TANH, ACT_HARD_SIGMOID>))                      \
    WAVE_ENTRY(gru_after_step_wave_##DT##_generic,                                        \
               (gru_after_wave_impl<W, ACT_RUNTIME, ACT_RUNTIME>))
#define GRU_GATES_WAVE_SET(DT, W)                                                                 \
    WAVE_ENTRY(gru_before_gates_wave_##DT##_sigmoid, (gru_gates_wave_impl<W, ACT_SIGMOID>))       \
    WAVE_ENTRY(gru_before_gates_wave_##DT##_hard_sigmoid,                                         \
               (gru_gates_wave_impl<W, ACT_HARD_SIGMOID>))                                        \
    WAVE_ENTRY(gru_before_gates_wave_##DT##_generic, (gru_gates_wave_impl<W, ACT_RUNTIME>))
#define GRU_UPDATE_WAVE_SET(DT, W)                                                           \
    WAVE_ENTRY(gru_before_update_wave_##DT##_tanh, (gru_update_wave_impl<W, ACT_TANH>))     \
    WAVE_ENTRY(gru_before_update_wave_##DT##_relu, (gru_update_wave_impl<W, ACT_RELU>))     \
    WAVE_ENTRY(gru_before_update_wave_##DT##_generic, (gru_update_wave_impl<W, ACT_RUNTIME>))
#define SIMPLE_WAVE_SET(DT, W)                                                       \
    WAVE_ENTRY(simple_step_wave_##DT##_tanh, (simple_wave_impl<W, ACT_TANH>))       \
    WAVE_ENTRY(simple_step_wave_##DT##_relu, (simple_wave_impl<W, ACT_RELU>))       \
    WAVE_ENTRY(simple_step_wave_##DT##_generic, (simple_wave_impl<W, ACT_RUNTIME>))
#define WAVE_SETS(DT, W)        \
    LSTM_WAVE_SET(DT, W)        \
    GRU_AFTER_WAVE_SET(DT, W)   \
    GRU_GATES_WAVE_SET(DT, W)   \
    GRU_UPDATE_WAVE_SET(DT, W)  \
    SIMPLE_WAVE_SET(DT, W)
WAVE_SETS(f32, float)
WAVE_SETS(f16, __half)
WAVE_SETS(bf16, __nv_bfloat16)

// The projection of cells 1 .. L-1 at diagonal `it` (see above): block z runs cell z + 1.
#define GEMM_WAVE_ENTRY(NAME, W)                                                             \
    extern "C" __global__ void __launch_bounds__(gemm::THREADS)                              \
        NAME(const __grid_constant__ WaveArgs a, int it) {                                   \
        const int l = blockIdx.z + 1;                                                        \
        if (l >= a.n_cells) return;                                                          \
        const WaveCell& c = a.cell[l];                                                       \
        const long long s = (long long)it - l;                                               \
        if (s < 0 || s >= a.T || (long long)blockIdx.x * gemm::BN >= c.gu) return;           \
        const DenseA<float> x{c.in + (s % 2) * c.in_step_stride, c.K};                       \
        gemm_bias_tile(a.B, (int)c.gu, (int)c.K, x, (const W*)c.Wx, (int)c.gu,                \
                       (const W*)c.bias, (int)c.has_bias, c.xp, c.gu);                       \
    }
GEMM_WAVE_ENTRY(gemm_bias_wave_f32, float)
GEMM_WAVE_ENTRY(gemm_bias_wave_f16, __half)
GEMM_WAVE_ENTRY(gemm_bias_wave_bf16, __nv_bfloat16)

// ---- helpers

// p[0 .. n) = v (poisoning outputs with NaN in tests; zeroing is a memset on the host side).
// Grid-stride; any grid.
extern "C" __global__ void fill_f32(long long n, float v, float* __restrict__ p) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        p[i] = v;
    }
}

// Storage conversions, element i of n: f32 -> f16 / bf16 (round to nearest even, as the `half`
// crate's from_f32) and back (exact). Grid-stride; any grid.
#define CONVERT_ENTRY(NAME, S, D)                                                      \
    extern "C" __global__ void NAME(long long n, const S* __restrict__ src,             \
                                    D* __restrict__ dst) {                             \
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;    \
             i += (long long)gridDim.x * blockDim.x) {                                 \
            store_f32(dst + i, load_f32(src + i));                                     \
        }                                                                              \
    }
CONVERT_ENTRY(convert_f32_to_f16, float, __half)
CONVERT_ENTRY(convert_f32_to_bf16, float, __nv_bfloat16)
CONVERT_ENTRY(convert_f16_to_f32, __half, float)
CONVERT_ENTRY(convert_bf16_to_f32, __nv_bfloat16, float)

// Bidirectional's merge (Keras 2), one thread per element of the merged f32 output.
// Both directions' outputs are viewed as (rows, L), L their last axis (Lf forward, Lb backward).
// With a time axis (has_time) row = ((b*T + t)*M + m), or ((t*B + b)*M + m) when time_major,
// M the elements between time and the last axis (ConvLSTM2D's pixels or channels); without
// one T = 1. For output row (b, t, m) in input time order:
//   fwd = yf[row(b, t, m)]       zeroed where zero_f and mask[b, f_back ? T-1-t : t] is false
//   bwd = yb[row(b, T-1-t, m)]   zeroed where zero_b and mask[b, b_back ? t : T-1-t] is false
// (the backward layer's sequence runs in its processing order and is reversed back; Keras's
// zero_output_for_mask on the wrapped layers; without a time axis nothing is reversed or
// zeroed). mode: 0 concat (output rows of Lf + Lb), 1 sum, 2 mul, 3 ave, 4 none (out[0, n)
// the forward values, out[n, 2n) the backward ones, n = rows * Lf). Grid-stride; any grid.
extern "C" __global__ void bidi_merge_f32(int B, int T, long long M, int Lf, int Lb,
                                          int time_major, int has_time,
                                          const float* __restrict__ yf,
                                          const float* __restrict__ yb,
                                          const unsigned char* __restrict__ mask, int has_mask,
                                          int f_back, int b_back, int zero_f, int zero_b,
                                          int mode, float* __restrict__ out) {
    const int W = mode == 0 ? Lf + Lb : Lf;
    const long long rows = (long long)B * T * M;
    const long long n = rows * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / W;
        const int l = (int)(i % W);
        long long b, t, m;
        if (time_major) {
            t = row / ((long long)B * M);
            b = (row / M) % B;
        } else {
            b = row / ((long long)T * M);
            t = (row / M) % T;
        }
        m = row % M;
        const long long tb = has_time ? T - 1 - t : t;
        const long long row_b = time_major ? (tb * B + b) * M + m : (b * T + tb) * M + m;
        const bool zf = has_time && has_mask && zero_f && !mask[b * T + (f_back ? T - 1 - t : t)];
        const bool zb = has_time && has_mask && zero_b && !mask[b * T + (b_back ? t : T - 1 - t)];
        float v;
        if (mode == 0) {
            v = l < Lf ? (zf ? 0.0f : yf[row * Lf + l]) : (zb ? 0.0f : yb[row_b * Lb + (l - Lf)]);
        } else {
            const float f = zf ? 0.0f : yf[row * Lf + l];
            const float g = zb ? 0.0f : yb[row_b * Lb + l];
            switch (mode) {
                case 1: v = f + g; break;
                case 2: v = f * g; break;
                case 3: v = (f + g) / 2.0f; break;
                default:
                    v = f;
                    out[n + i] = g;
                    break;
            }
        }
        out[i] = v;
    }
}

// Keras's zero_output_for_mask on a dense layer's output, in place, one thread per element.
// With a time axis (has_time) `out` is the sequence in processing order, (B, T, U), or
// (T, B, U) when time_major; element (b, t, j) is zeroed where mask[b, reversed ? T-1-t : t]
// is false (`reversed`: Keras's loop under go_backwards; its unrolled loop reads the mask in
// input order). Without one `out` is the last output (B, U), zeroed where mask[b, last] is
// false, `last` the input step processed last. Grid-stride; any grid.
extern "C" __global__ void zero_masked_steps_f32(int B, int T, int U, int time_major,
                                                 int has_time, int reversed, int last,
                                                 const unsigned char* __restrict__ mask,
                                                 float* __restrict__ out) {
    const long long n = (long long)B * (has_time ? T : 1) * U;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / U;
        long long b, s;
        if (!has_time) {
            b = row;
            s = last;
        } else {
            const long long t = time_major ? row / B : row % T;
            b = time_major ? row % B : row / T;
            s = reversed ? T - 1 - t : t;
        }
        if (!mask[b * T + s]) out[i] = 0.0f;
    }
}

// (B, P, F) <-> (B, F, P): to_cf = 1 turns channels-last pixels (B, P, F) into channels-first
// (B, F, P); to_cf = 0 the reverse. One thread per element, indexed by the destination.
extern "C" __global__ void permute_pf_f32(int B, int P, int F, const float* __restrict__ src,
                                          float* __restrict__ dst, int to_cf) {
    const long long n = (long long)B * P * F;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long b = i / ((long long)P * F);
        const long long r = i % ((long long)P * F);
        if (to_cf) {
            const long long f = r / P;
            const long long p = r % P;
            dst[i] = src[(b * P + p) * F + f];
        } else {
            const long long p = r / F;
            const long long f = r % F;
            dst[i] = src[(b * F + f) * P + p];
        }
    }
}
