// rnn_persistent.cu: the dense recurrent layers (LSTM, GRU with reset_after true and false,
// SimpleRNN) as ONE persistent launch per layer and call: every time step runs inside the
// kernel, the recurrent weights stay in shared memory for the whole sequence, and the blocks
// meet at a grid barrier once per step (twice for GRU reset_after=false). Launched
// cooperatively (all blocks co-resident) from src/cuda/dense.rs when the heuristic there picks
// it; the per-step kernels of rnn.cu remain the general path. No host code.
//
// ---- equations: exactly those of rnn.cu (Keras 2 gate order, masks, prev_out), with
//   xp = x W + b precomputed for every step by gemm_bias_* before the launch.
//
// ---- work split
//   Block q of the G blocks owns the J units j0 = q*J .. j0+J-1 (the last block may own
//   fewer) for ALL gates: its C = gates*J weight columns, gate g of unit j0+jj being local
//   column g*J + jj (global column g*U + j0 + jj). So the whole state update of a unit happens
//   in one block and only h (B x U floats, and r*h for reset_after=false) crosses blocks.
//   G = 1 needs no grid barrier at all (small U: everything in one SM).
//
// ---- one step, per block (512 threads: one block per SM, so it may as well use 16 warps)
//   1. hs = h_prev (all B rows, all U units) from global memory through L2 (__ldcg: other
//      blocks wrote it, L1 is not coherent across SMs).
//   2. For each group of BR = 4 batch rows: z[r][cc] = sum_k hs[b0+r][k] * Ws[k][cc] over the
//      block's columns. Thread mapping: with nc < 512 columns, thread t takes column t % nc and
//      the k slice t / nc (k = slice, slice + KS, ...; KS = 512 / nc), the KS partial sums meet
//      in shared memory and are added in fixed slice order (deterministic); with nc >= 512 each
//      thread takes columns t, t + 512, ... over all k. Then thread (r, jj) applies bias,
//      activations, mask and state update for unit j0 + jj of row b0 + r and writes h_next,
//      c, prev_out and the step's output.
//   3. Grid barrier (arrival counter + generation word, __threadfence on both sides). The two
//      words live with the device and are reused by every launch on its stream: a launch
//      starts from the generation the previous one left (read before the first barrier, which
//      no block can pass before every block has read it) and leaves the counter at zero.
//   GRU reset_after=false: phase A (columns of z and r) writes z to shared memory and r*h to a
//   global scratch, barrier, phase B loads r*h like h and computes the candidate columns.
//
// ---- memory
//   Um        (U, gates*U) recurrent_kernel in storage type W (f32 / f16 / bf16), read once
//             into shared memory Ws[k][cc] (k-major, C columns).
//   h0, h1    f32 (B, U) each: h ping-pongs, step s reads h0 and writes h1 when s is even, the
//             other way round when odd; h0 holds the initial state, the final one is in h0
//             when T is even, else in h1 (the step kernels' ping-pong: no copies in or out).
//   c, prev_out f32 (B, U), in place, each element only by its owner thread.
//   rh        f32 (B, U) scratch, reset_after=false only.
//   xp, mask, seq: as in rnn.cu, addressed per step s by the host's strides:
//     xp  + b * xp_b_stride + t_src * xp_step_stride  (t_src = xp_reverse ? T-1-s : s)
//     mask[b * mask_b_stride + (mask_reverse ? T-1-s : s)]
//     seq + b * seq_b_stride + s * seq_step_stride
//   bar       two u32 words kept by the device (arrival counter, generation): zero when made,
//             the counter back at zero after every launch (see 3. above).
//   Dynamic shared memory, in this order (offsets 16-byte aligned; persist_smem_bytes below and
//   `persistent_smem_bytes` in src/cuda/dense.rs compute the same total):
//     Ws W[U*C] | hs f32[Bp*U] | hr f32[Bp*U] (reset_after=false) | red f32[512*BR] |
//     zs f32[BR*C] | zsave f32[Bp*J] (reset_after=false);   Bp = B rounded up to BR.
//
// ---- entry points: persistent_{lstm,gru_after,gru_before}_{f32,f16,bf16}_{tanh_sigmoid,
//   tanh_hard_sigmoid,generic}, persistent_simple_{f32,f16,bf16}_{tanh,relu,generic}.

#include "common.cuh"

namespace persist {
constexpr int THREADS = 512;
constexpr int BR = 4;  // batch rows per pass
constexpr int LSTM = 0;
constexpr int GRU_AFTER = 1;
constexpr int GRU_BEFORE = 2;
constexpr int SIMPLE = 3;
}  // namespace persist

__host__ __device__ constexpr int persist_gates(int kind) {
    return kind == persist::LSTM ? 4 : kind == persist::SIMPLE ? 1 : 3;
}

__host__ __device__ constexpr long long persist_align16(long long n) { return (n + 15) / 16 * 16; }

// Byte offsets of the dynamic shared memory regions (see the header).
struct PersistSmem {
    long long ws, hs, hr, red, zs, zsave, total;
    __host__ __device__ PersistSmem(int kind, int wbytes, int B, int U, int J) {
        const int C = persist_gates(kind) * J;
        const long long bp = (B + persist::BR - 1) / persist::BR * persist::BR;
        const bool before = kind == persist::GRU_BEFORE;
        ws = 0;
        hs = persist_align16(ws + (long long)U * C * wbytes);
        hr = persist_align16(hs + bp * U * 4);
        red = persist_align16(hr + (before ? bp * U * 4 : 0));
        zs = persist_align16(red + (long long)persist::THREADS * persist::BR * 4);
        zsave = persist_align16(zs + (long long)persist::BR * C * 4);
        total = persist_align16(zsave + (before ? bp * J * 4 : 0));
    }
};

// All blocks wait until every block has arrived. bar[0] counts arrivals, bar[1] is the
// generation; `gen` is this block's copy of it. Thread 0 of each block does the atomics; the
// fences before and after make the block's earlier global writes visible to, and the other
// blocks' writes visible after, the barrier (the pattern of cooperative_groups' grid sync).
__device__ __forceinline__ void grid_barrier(unsigned int* bar, unsigned int& gen) {
    __syncthreads();
    if (gridDim.x > 1) {
        if (threadIdx.x == 0) {
            __threadfence();
            const unsigned int arrived = atomicAdd(bar, 1u);
            if (arrived == gridDim.x - 1) {
                atomicExch(bar, 0u);
                __threadfence();
                atomicExch(bar + 1, gen + 1u);
            } else {
                while (spin_load(bar + 1) == gen) {
                }
            }
            __threadfence();
        }
        __syncthreads();
    }
    ++gen;
}

// Loads rows [0, B) of a (B, U) f32 buffer written by other blocks into hs (rows up to Bp
// stay as they are: zero).
__device__ __forceinline__ void load_rows(float* __restrict__ hs, const float* src, int B, int U) {
    const long long n = (long long)B * U;
    for (long long e = threadIdx.x; e < n; e += persist::THREADS) {
        hs[e] = load_cg(src + e);
    }
    __syncthreads();
}

// zs[r * nc + cc] = sum_k hs[(b0 + r) * U + k] * Ws[k * C + c0 + cc], cc < nc, r < BR.
template <typename W>
__device__ __forceinline__ void block_matvec(const float* __restrict__ hs,
                                             const W* __restrict__ Ws, int U, int C, int c0,
                                             int nc, int b0, float* __restrict__ red,
                                             float* __restrict__ zs) {
    using namespace persist;
    const int t = threadIdx.x;
    const float* h0 = hs + (long long)b0 * U;
    if (nc >= THREADS) {
        for (int cc = t; cc < nc; cc += THREADS) {
            float acc[BR];
#pragma unroll
            for (int r = 0; r < BR; ++r) {
                acc[r] = 0.0f;
            }
            for (int k = 0; k < U; ++k) {
                const float w = load_rw(Ws + (long long)k * C + c0 + cc);
#pragma unroll
                for (int r = 0; r < BR; ++r) {
                    acc[r] = fmaf(h0[(long long)r * U + k], w, acc[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < BR; ++r) {
                zs[r * nc + cc] = acc[r];
            }
        }
        __syncthreads();
        return;
    }
    const int ks_n = THREADS / nc;
    const int cc = t % nc;
    const int ks = t / nc;
    if (ks < ks_n) {
        float acc[BR];
#pragma unroll
        for (int r = 0; r < BR; ++r) {
            acc[r] = 0.0f;
        }
        for (int k = ks; k < U; k += ks_n) {
            const float w = load_rw(Ws + (long long)k * C + c0 + cc);
#pragma unroll
            for (int r = 0; r < BR; ++r) {
                acc[r] = fmaf(h0[(long long)r * U + k], w, acc[r]);
            }
        }
#pragma unroll
        for (int r = 0; r < BR; ++r) {
            red[(ks * BR + r) * nc + cc] = acc[r];
        }
    }
    __syncthreads();
    for (int e = t; e < BR * nc; e += THREADS) {
        const int r = e / nc;
        const int c = e % nc;
        float s = 0.0f;
        for (int q = 0; q < ks_n; ++q) {
            s += red[(q * BR + r) * nc + c];
        }
        zs[r * nc + c] = s;
    }
    __syncthreads();
}

template <typename W, int KIND, int ACT, int REC>
__device__ __forceinline__ void persistent_impl(
    int B, int U, int T, int J, const float* __restrict__ xp, long long xp_step_stride,
    long long xp_b_stride, int xp_reverse, const W* __restrict__ Um, const W* __restrict__ rb,
    int has_rb, float* h0, float* h1, float* __restrict__ c, float* __restrict__ prev_out, float* rh,
    const unsigned char* __restrict__ mask, int has_mask, int mask_reverse,
    long long mask_b_stride, float* __restrict__ seq, int has_seq, long long seq_step_stride,
    long long seq_b_stride, unsigned int* bar, int act, int rec) {
    using namespace persist;
    constexpr int G = persist_gates(KIND);
    const int C = G * J;
    const int GU = G * U;
    const int j0 = blockIdx.x * J;
    const int t = threadIdx.x;
    const int bp = (B + BR - 1) / BR * BR;
    RECURRENT_DYNAMIC_SMEM(smem_raw);
    const PersistSmem lay(KIND, (int)sizeof(W), B, U, J);
    W* Ws = reinterpret_cast<W*>(smem_raw + lay.ws);
    float* hs = reinterpret_cast<float*>(smem_raw + lay.hs);
    float* hr = reinterpret_cast<float*>(smem_raw + lay.hr);
    float* red = reinterpret_cast<float*>(smem_raw + lay.red);
    float* zs = reinterpret_cast<float*>(smem_raw + lay.zs);
    float* zsave = reinterpret_cast<float*>(smem_raw + lay.zsave);

    // The block's weight columns, once: Ws[k][g*J + jj] = Um[k][g*U + j0 + jj] (0 past U).
    for (long long e = t; e < (long long)U * C; e += THREADS) {
        const int k = (int)(e / C);
        const int cc = (int)(e % C);
        const int g = cc / J;
        const int j = j0 + cc % J;
        store_f32(Ws + e, j < U ? load_f32(Um + (long long)k * GU + (long long)g * U + j) : 0.0f);
    }
    // Padding rows of hs / hr stay zero for the whole launch.
    for (long long e = (long long)B * U + t; e < (long long)bp * U; e += THREADS) {
        hs[e] = 0.0f;
        if (KIND == GRU_BEFORE) {
            hr[e] = 0.0f;
        }
    }
    // Only thread 0 uses `gen` (grid_barrier); the counter is at zero between launches.
    unsigned int gen = threadIdx.x == 0 ? atomicAdd(bar + 1, 0u) : 0u;
    __syncthreads();

    for (int s = 0; s < T; ++s) {
        const float* h_prev = s % 2 == 0 ? h0 : h1;
        float* h_next = s % 2 == 0 ? h1 : h0;
        const long long t_src = xp_reverse ? T - 1 - s : s;
        const long long t_mask = mask_reverse ? T - 1 - s : s;
        load_rows(hs, h_prev, B, U);

        if (KIND != GRU_BEFORE) {
            for (int b0 = 0; b0 < B; b0 += BR) {
                block_matvec(hs, Ws, U, C, 0, C, b0, red, zs);
                for (int e = t; e < BR * J; e += THREADS) {
                    const int r = e / J;
                    const int jj = e % J;
                    const int b = b0 + r;
                    const int j = j0 + jj;
                    if (b >= B || j >= U) {
                        continue;
                    }
                    const long long el = (long long)b * U + j;
                    const float* z = zs + r * C + jj;  // gate g at z[g * J]
                    float out;
                    if (!has_mask || mask[(long long)b * mask_b_stride + t_mask] != 0) {
                        const float* x = xp + (long long)b * xp_b_stride + t_src * xp_step_stride + j;
                        if (KIND == LSTM) {
                            float cn;
                            out = lstm_update<ACT, REC, true>(
                                __ldg(x) + z[0], __ldg(x + U) + z[J], __ldg(x + 2 * U) + z[2 * J],
                                __ldg(x + 3 * U) + z[3 * J], c[el], act, rec, cn);
                            c[el] = cn;
                        } else if (KIND == GRU_AFTER) {
                            const float hz = z[0] + (has_rb ? load_f32(rb + j) : 0.0f);
                            const float hh_r = z[J] + (has_rb ? load_f32(rb + U + j) : 0.0f);
                            const float hh = z[2 * J] + (has_rb ? load_f32(rb + 2 * U + j) : 0.0f);
                            const float zg = activate_inl<REC>(__ldg(x) + hz, rec);
                            const float r_ = activate_inl<REC>(__ldg(x + U) + hh_r, rec);
                            const float n = activate_inl<ACT>(__ldg(x + 2 * U) + r_ * hh, act);
                            out = zg * hs[el] + (1.0f - zg) * n;
                        } else {
                            out = activate_inl<ACT>(__ldg(x) + z[0], act);
                        }
                        h_next[el] = out;
                        prev_out[el] = out;
                    } else {
                        h_next[el] = hs[el];
                        out = prev_out[el];
                    }
                    if (has_seq) {
                        seq[(long long)b * seq_b_stride + s * seq_step_stride + j] = out;
                    }
                }
                __syncthreads();
            }
        } else {
            // Phase A: z and r; z kept here, r * h to the scratch every block reads.
            for (int b0 = 0; b0 < B; b0 += BR) {
                block_matvec(hs, Ws, U, C, 0, 2 * J, b0, red, zs);
                for (int e = t; e < BR * J; e += THREADS) {
                    const int r = e / J;
                    const int jj = e % J;
                    const int b = b0 + r;
                    const int j = j0 + jj;
                    if (b >= B || j >= U) {
                        continue;
                    }
                    const long long el = (long long)b * U + j;
                    const float* x = xp + (long long)b * xp_b_stride + t_src * xp_step_stride + j;
                    const float zg = activate_inl<REC>(__ldg(x) + zs[r * 2 * J + jj], rec);
                    const float r_ = activate_inl<REC>(__ldg(x + U) + zs[r * 2 * J + J + jj], rec);
                    zsave[b * J + jj] = zg;
                    rh[el] = r_ * hs[el];
                }
                __syncthreads();
            }
            grid_barrier(bar, gen);
            // Phase B: the candidate from (r * h) U_h, the update and the mask.
            load_rows(hr, rh, B, U);
            for (int b0 = 0; b0 < B; b0 += BR) {
                block_matvec(hr, Ws, U, C, 2 * J, J, b0, red, zs);
                for (int e = t; e < BR * J; e += THREADS) {
                    const int r = e / J;
                    const int jj = e % J;
                    const int b = b0 + r;
                    const int j = j0 + jj;
                    if (b >= B || j >= U) {
                        continue;
                    }
                    const long long el = (long long)b * U + j;
                    float out;
                    if (!has_mask || mask[(long long)b * mask_b_stride + t_mask] != 0) {
                        const float* x = xp + (long long)b * xp_b_stride + t_src * xp_step_stride + j;
                        const float n = activate_inl<ACT>(__ldg(x + 2 * U) + zs[r * J + jj], act);
                        const float zg = zsave[b * J + jj];
                        out = zg * hs[el] + (1.0f - zg) * n;
                        h_next[el] = out;
                        prev_out[el] = out;
                    } else {
                        h_next[el] = hs[el];
                        out = prev_out[el];
                    }
                    if (has_seq) {
                        seq[(long long)b * seq_b_stride + s * seq_step_stride + j] = out;
                    }
                }
                __syncthreads();
            }
        }
        grid_barrier(bar, gen);
    }
}

#define PERSIST_PARAMS(W)                                                                     \
    int B, int U, int T, int J, const float *__restrict__ xp, long long xp_step_stride,        \
        long long xp_b_stride, int xp_reverse, const W *__restrict__ Um,                      \
        const W *__restrict__ rb, int has_rb, float *h0, float *h1, float *__restrict__ c,    \
        float *__restrict__ prev_out, float *rh, const unsigned char *__restrict__ mask,      \
        int has_mask, int mask_reverse, long long mask_b_stride, float *__restrict__ seq,     \
        int has_seq, long long seq_step_stride, long long seq_b_stride, unsigned int *bar,    \
        int act, int rec
#define PERSIST_ARGS                                                                          \
    B, U, T, J, xp, xp_step_stride, xp_b_stride, xp_reverse, Um, rb, has_rb, h0, h1, c,       \
        prev_out, rh, mask, has_mask, mask_reverse, mask_b_stride, seq, has_seq,              \
        seq_step_stride, seq_b_stride, bar, act, rec

#define PERSIST_ENTRY(NAME, W, KIND, A, R)                                                  \
    extern "C" __global__ void __launch_bounds__(persist::THREADS, 1) NAME(PERSIST_PARAMS(W)) { \
        persistent_impl<W, KIND, A, R>(PERSIST_ARGS);                                       \
    }

#define PERSIST_PAIRS(FAM, KIND, DT, W)                                                       \
    PERSIST_ENTRY(persistent_##FAM##_##DT##_tanh_sigmoid, W, KIND, ACT_TANH, ACT_SIGMOID)     \
    PERSIST_ENTRY(persistent_##FAM##_##DT##_tanh_hard_sigmoid, W, KIND, ACT_TANH,             \
                  ACT_HARD_SIGMOID)                                                           \
    PERSIST_ENTRY(persistent_##FAM##_##DT##_generic, W, KIND, ACT_RUNTIME, ACT_RUNTIME)

#define PERSIST_SET(DT, W)                                                                    \
    PERSIST_PAIRS(lstm, persist::LSTM, DT, W)                                                 \
    PERSIST_PAIRS(gru_after, persist::GRU_AFTER, DT, W)                                       \
    PERSIST_PAIRS(gru_before, persist::GRU_BEFORE, DT, W)                                     \
    PERSIST_ENTRY(persistent_simple_##DT##_tanh, W, persist::SIMPLE, ACT_TANH, ACT_TANH)      \
    PERSIST_ENTRY(persistent_simple_##DT##_relu, W, persist::SIMPLE, ACT_RELU, ACT_RELU)      \
    PERSIST_ENTRY(persistent_simple_##DT##_generic, W, persist::SIMPLE, ACT_RUNTIME,          \
                  ACT_RUNTIME)
PERSIST_SET(f32, float)
PERSIST_SET(f16, __half)
PERSIST_SET(bf16, __nv_bfloat16)
