// conv_lstm.cu: ConvLSTM2D. One implicit-GEMM kernel for the input convolution of every frame
// of the sequence, then ONE fused kernel per time step: the recurrent convolution (implicit
// GEMM over h, never an im2col copy or a concatenated [x, h] in device memory) with bias,
// gates, mask and state update in its epilogue. No host code.
//
// ---- equations (Keras 2 ConvLSTM2D, gates [i | f | c | o], * = 2-D convolution)
//   xp = W * x + b        input conv: the layer's strides, padding, dilation (all frames at once)
//   z  = xp + U * h       recurrent conv: ALWAYS stride 1, `same` padding, no dilation
//   i = rec(z_i)  f = rec(z_f)  g = act(z_c)  o = rec(z_o);  c' = f c + i g;  h' = o act(c')
//   masks as in rnn.cu: a masked (batch row, step) keeps h, c and repeats prev_out.
//
// ---- memory layout
//   x       the user's input (B, T, rows, cols, C) or channels-first (B, T, C, rows, cols):
//           element (frame n = b*T + t, iy, ix, ch) at n*frame_stride + iy*sy + ix*sx + ch*sc,
//           so channels-first needs no transpose either.
//   W       kernel (kh, kw, C, 4F) viewed as (kh*kw*C, 4F); row index (ky*kw + kx)*C + ch.
//   xp      f32 (B*T*P, 4F), row (b*T + t)*P + p, P = out_rows*out_cols pixels, p = oy*cols+ox.
//   RK      recurrent_kernel (kh, kw, F, 4F) viewed as (kh*kw*F, 4F).
//   h, c, prev_out   (B, P, F) channels-last inside the time loop, whatever the data format;
//           h ping-pongs between two buffers (every block reads the whole h), c and prev_out are
//           updated in place (each element by its owner thread only).
//   seq     the sequence output, element (b, step, p, f) at
//           b*seq_b_stride + seq_off + p*seq_p_stride + f*seq_f_stride (either data format).
//   mask    u8 (B, T), element mask[b*mask_b_stride + mask_off].
//
// ---- thread-to-data mapping of the step kernel (256 threads)
//   A block owns a 64-row tile of the B*P (batch row, pixel) rows and 16 filters f0..f0+15 for
//   ALL four gates (the tile's 64 GEMM columns are gate g, filter f0 + fl -> column g*F + f0+fl),
//   so each thread ends with the four gate sums of its outputs. Thread t: tf = t % 16 is the
//   filter, tm = t / 16 the rows tm + 16 i (i < 4): 16 accumulators. K = kh*kw*F runs in steps
//   of 16 through shared memory: the A tile is gathered from h_prev on the fly (zero outside the
//   image), the B tile from RK. Grid (min(row tiles, 65535), ceil(F / 16)), grid-stride on rows.
//
// ---- entry points: conv_lstm_step_{f32,f16,bf16}_{tanh_sigmoid, tanh_hard_sigmoid, generic}
//   (activation ids as trailing ints, used by _generic only), conv_input_{f32,f16,bf16},
//   conv_input_tc_{f16,bf16} (tensor cores, for inputs holding storage-type values),
//   conv_lstm_step_tc_{f16,bf16}_* (the step on tensor cores, h rounded; opt-in);
//   conv_lstm_preact_{dt} + conv_lstm_rows_{dt}_{last,first} (softmax / log_softmax, see
//   "row-wise activations" below). The
//   dtype names the storage type of the weights (W, RK, bias) only: x, xp, h, c, prev_out and
//   seq are f32 in every variant (the host converts f16 / bf16 inputs and outputs, see rnn.cu).

#include "common.cuh"
#include "tc_gemm.cuh"

namespace cstep {
constexpr int BM = 64;  // (batch row, pixel) rows per tile
constexpr int BF = 16;  // filters per tile (x 4 gates = 64 GEMM columns)
constexpr int BK = 16;
constexpr int THREADS = 256;
}  // namespace cstep

// The gate math, mask and state update of one (row gm = b*P + p, filter f) with the four
// gate sums z of the recurrent convolution; writes h_next, c, prev_out and the output.
template <int ACT, int REC>
__device__ __forceinline__ void conv_lstm_update(
    long long gm, int f, const float (&z)[4], int P, int F, const float* __restrict__ xp,
    long long xp_step_off, long long xp_b_stride, const float* __restrict__ h_prev,
    float* __restrict__ h_next, float* __restrict__ c, float* __restrict__ prev_out,
    const unsigned char* __restrict__ mask, int has_mask, long long mask_off,
    long long mask_b_stride, float* __restrict__ seq, int has_seq, long long seq_off,
    long long seq_b_stride, long long seq_p_stride, long long seq_f_stride, int act, int rec) {
    const long long b = gm / P;
    const long long p = gm % P;
    const long long e = gm * F + f;
    float out;
    const bool real = !has_mask || mask[b * mask_b_stride + mask_off] != 0;
    if (real) {
        const float* x = xp + b * xp_b_stride + xp_step_off + p * 4 * F + f;
        float cn;
        out = lstm_update<ACT, REC>(x[0] + z[0], x[F] + z[1], x[2 * F] + z[2], x[3 * F] + z[3],
                                    load_rw(c + e), act, rec, cn);
        store_f32(c + e, cn);
        store_f32(h_next + e, out);
        store_f32(prev_out + e, out);
    } else {
        store_f32(h_next + e, load_f32(h_prev + e));
        out = load_rw(prev_out + e);
    }
    if (has_seq) {
        store_f32(seq + b * seq_b_stride + seq_off + p * seq_p_stride + (long long)f * seq_f_stride,
                  out);
    }
}

#define CONV_UPDATE_ARGS                                                                     \
    P, F, xp, xp_step_off, xp_b_stride, h_prev, h_next, c, prev_out, mask, has_mask, mask_off, \
        mask_b_stride, seq, has_seq, seq_off, seq_b_stride, seq_p_stride, seq_f_stride, act, rec

// The recurrent convolution of the step kernel (FFMA implicit GEMM, mapping above): calls
// `epi(gm, f, z)` once per owned (row gm = b*P + p, filter f) with the four gate sums z.
template <typename W, typename Epilogue>
__device__ __forceinline__ void conv_step_product(int B, int P, int F, int rows, int cols, int kh,
                                                  int kw, int pad_top, int pad_left,
                                                  const W* __restrict__ RK,
                                                  const float* __restrict__ h_prev, Epilogue epi) {
    using namespace cstep;
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][4][BF];
    const int t = threadIdx.x;
    const int tf = t % BF;
    const int tm = t / BF;
    const long long M = (long long)B * P;
    const int K = kh * kw * F;
    const int N4 = 4 * F;
    const int f0 = blockIdx.y * BF;
    const long long m_tiles = (M + BM - 1) / BM;
    for (long long mt = blockIdx.x; mt < m_tiles; mt += gridDim.x) {
        const long long m0 = mt * BM;
        float acc[4][4];  // [row i][gate g]
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int g = 0; g < 4; ++g) {
                acc[i][g] = 0.0f;
            }
        }
        for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int e = t + r * THREADS;
                // A: the (row, k) element of the implicit im2col of h_prev, k fastest.
                const int ak = e % BK;
                const int am = e / BK;
                const long long gm = m0 + am;
                const int gk = k0 + ak;
                float v = 0.0f;
                if (gm < M && gk < K) {
                    const long long b = gm / P;
                    const int p = (int)(gm % P);
                    const int oy = p / cols;
                    const int ox = p % cols;
                    const int cf = gk % F;
                    const int kk = gk / F;
                    const int iy = oy + kk / kw - pad_top;
                    const int ix = ox + kk % kw - pad_left;
                    if (iy >= 0 && iy < rows && ix >= 0 && ix < cols) {
                        v = load_f32(h_prev + ((b * P + (long long)iy * cols + ix) * F + cf));
                    }
                }
                As[ak][am] = v;
                // B: RK row k0 + bk, gate g, filter f0 + fl.
                const int bk = e / (4 * BF);
                const int bc = e % (4 * BF);
                const int g = bc / BF;
                const int fl = bc % BF;
                const int gk2 = k0 + bk;
                const int f = f0 + fl;
                Bs[bk][g][fl] =
                    (gk2 < K && f < F) ? load_f32(RK + (long long)gk2 * N4 + g * F + f) : 0.0f;
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
                for (int g = 0; g < 4; ++g) {
                    bv[g] = Bs[kk][g][tf];
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) {
#pragma unroll
                    for (int g = 0; g < 4; ++g) {
                        acc[i][g] = fmaf(av[i], bv[g], acc[i][g]);
                    }
                }
            }
            __syncthreads();
        }
        const int f = f0 + tf;
        if (f < F) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const long long gm = m0 + tm + 16 * i;
                if (gm < M) {
                    epi(gm, f, acc[i]);
                }
            }
        }
    }
}

template <typename W, int ACT, int REC>
__device__ __forceinline__ void conv_lstm_step_impl(
    int B, int P, int F, int rows, int cols, int kh, int kw, int pad_top, int pad_left,
    const float* __restrict__ xp, long long xp_step_off, long long xp_b_stride,
    const W* __restrict__ RK, const float* __restrict__ h_prev, float* __restrict__ h_next,
    float* __restrict__ c, float* __restrict__ prev_out, const unsigned char* __restrict__ mask,
    int has_mask, long long mask_off, long long mask_b_stride, float* __restrict__ seq, int has_seq,
    long long seq_off, long long seq_b_stride, long long seq_p_stride, long long seq_f_stride,
    int act, int rec) {
    conv_step_product<W>(B, P, F, rows, cols, kh, kw, pad_top, pad_left, RK, h_prev,
                         [&](long long gm, int f, const float (&z)[4]) {
                             conv_lstm_update<ACT, REC>(gm, f, z, CONV_UPDATE_ARGS);
                         });
}

#define CONV_STEP_PARAMS(W)                                                                   \
    int B, int P, int F, int rows, int cols, int kh, int kw, int pad_top, int pad_left,        \
        const float *__restrict__ xp, long long xp_step_off, long long xp_b_stride,           \
        const W *__restrict__ RK, const float *__restrict__ h_prev, float *__restrict__ h_next,       \
        float *__restrict__ c, float *__restrict__ prev_out, const unsigned char *__restrict__ mask,  \
        int has_mask, long long mask_off, long long mask_b_stride, float *__restrict__ seq,       \
        int has_seq, long long seq_off, long long seq_b_stride, long long seq_p_stride,       \
        long long seq_f_stride, int act, int rec
#define CONV_STEP_ARGS                                                                         \
    B, P, F, rows, cols, kh, kw, pad_top, pad_left, xp, xp_step_off, xp_b_stride, RK, h_prev, \
        h_next, c, prev_out, mask, has_mask, mask_off, mask_b_stride, seq, has_seq, seq_off,   \
        seq_b_stride, seq_p_stride, seq_f_stride, act, rec

#define CONV_STEP_ENTRY(NAME, W, A, R)                                                      \
    extern "C" __global__ void __launch_bounds__(cstep::THREADS) NAME(CONV_STEP_PARAMS(W)) { \
        conv_lstm_step_impl<W, A, R>(CONV_STEP_ARGS);                                       \
    }

#define CONV_STEP_SET(DT, W)                                                                \
    CONV_STEP_ENTRY(conv_lstm_step_##DT##_tanh_sigmoid, W, ACT_TANH, ACT_SIGMOID)          \
    CONV_STEP_ENTRY(conv_lstm_step_##DT##_tanh_hard_sigmoid, W, ACT_TANH, ACT_HARD_SIGMOID) \
    CONV_STEP_ENTRY(conv_lstm_step_##DT##_generic, W, ACT_RUNTIME, ACT_RUNTIME)
CONV_STEP_SET(f32, float)
CONV_STEP_SET(f16, __half)
CONV_STEP_SET(bf16, __nv_bfloat16)

// ---- row-wise activations (softmax, log_softmax): two kernels per step
//   Keras applies them over the last axis of the gate tensors: the filters of a pixel
//   (channels_last) or the output columns of a (filter, output row) (channels_first, tensors
//   (batch, filters, rows, cols)). Kernel 1, conv_lstm_preact_{dt}: the step kernel's
//   recurrent convolution with an epilogue that adds it to this step's slice of xp in place
//   (xp[row, g*F + f] += z[g]; that slice is read again only by kernel 2 of this step), same
//   grid as the step kernel. Kernel 2, conv_lstm_rows_{dt}_{last,first}: one block per row of
//   the normalised axis (grid-stride over B*P pixels, or B*F*out_rows lines of out_cols
//   pixels), its n = F or out_cols elements of the 4 gates gathered into shared memory
//   (4 n <= rows::MAX_FLOATS, checked by the host), each gate row activated as a whole
//   (rows_activate, common.cuh), then c' = f c + i g, act(c') as a row, h' = o act(c'), mask
//   and outputs as conv_lstm_update. Both take the step kernel's parameters (kernel 2 ignores
//   RK, kh, kw and the padding). A slow path, used only when an activation is row-wise.

template <typename W>
__device__ __forceinline__ void conv_lstm_preact_impl(
    int B, int P, int F, int rows, int cols, int kh, int kw, int pad_top, int pad_left,
    float* __restrict__ xp, long long xp_step_off, long long xp_b_stride, const W* __restrict__ RK,
    const float* __restrict__ h_prev) {
    conv_step_product<W>(B, P, F, rows, cols, kh, kw, pad_top, pad_left, RK, h_prev,
                         [&](long long gm, int f, const float (&z)[4]) {
                             const long long b = gm / P;
                             const long long p = gm % P;
                             float* x = xp + b * xp_b_stride + xp_step_off + p * 4 * F + f;
#pragma unroll
                             for (int g = 0; g < 4; ++g) {
                                 x[(long long)g * F] += z[g];
                             }
                         });
}

// ALONG_COLS: normalise over the output columns (channels_first), else over the filters.
template <bool ALONG_COLS>
__device__ __forceinline__ void conv_lstm_rows_impl(
    int B, int P, int F, int out_rows, int out_cols, const float* __restrict__ xp,
    long long xp_step_off, long long xp_b_stride, const float* __restrict__ h_prev,
    float* __restrict__ h_next, float* __restrict__ c, float* __restrict__ prev_out,
    const unsigned char* __restrict__ mask, int has_mask, long long mask_off,
    long long mask_b_stride, float* __restrict__ seq, int has_seq, long long seq_off,
    long long seq_b_stride, long long seq_p_stride, long long seq_f_stride, int act, int rec) {
    __shared__ float zs[rows::MAX_FLOATS];
    __shared__ float red[rows::THREADS];
    const int t = rows_tid();
    const int n = ALONG_COLS ? out_cols : F;
    const long long lines = ALONG_COLS ? (long long)B * F * out_rows : (long long)B * P;
    for (long long line = blockIdx.x; line < lines; line += gridDim.x) {
        // Element k of the line: pixel row gm = b*P + p and filter f.
        long long b, gm0;
        int f0;
        if (ALONG_COLS) {
            const long long oy = line % out_rows;
            f0 = (int)((line / out_rows) % F);
            b = line / ((long long)out_rows * F);
            gm0 = b * P + oy * out_cols;  // k: gm = gm0 + k, f = f0
        } else {
            b = line / P;
            gm0 = line;  // k: gm = gm0, f = k
            f0 = 0;
        }
        auto gm_of = [&](int k) { return ALONG_COLS ? gm0 + k : gm0; };
        auto f_of = [&](int k) { return ALONG_COLS ? f0 : k; };
        const bool real = !has_mask || mask[b * mask_b_stride + mask_off] != 0;
        if (real) {
            for (int k = t; k < n; k += rows::THREADS) {
                const long long p = gm_of(k) - b * P;
                const float* x = xp + b * xp_b_stride + xp_step_off + p * 4 * F + f_of(k);
#pragma unroll
                for (int g = 0; g < 4; ++g) {
                    zs[g * n + k] = x[(long long)g * F];
                }
            }
            __syncthreads();
            rows_activate(zs, n, rec, red);
            rows_activate(zs + n, n, rec, red);
            rows_activate(zs + 2 * n, n, act, red);
            rows_activate(zs + 3 * n, n, rec, red);
            for (int k = t; k < n; k += rows::THREADS) {
                const long long e = gm_of(k) * F + f_of(k);
                const float cn = zs[n + k] * load_rw(c + e) + zs[k] * zs[2 * n + k];
                store_f32(c + e, cn);
                zs[2 * n + k] = cn;
            }
            __syncthreads();
            rows_activate(zs + 2 * n, n, act, red);  // act(c')
        }
        for (int k = t; k < n; k += rows::THREADS) {
            const long long gm = gm_of(k);
            const int f = f_of(k);
            const long long e = gm * F + f;
            float out;
            if (real) {
                out = zs[3 * n + k] * zs[2 * n + k];
                store_f32(h_next + e, out);
                store_f32(prev_out + e, out);
            } else {
                store_f32(h_next + e, load_f32(h_prev + e));
                out = load_rw(prev_out + e);
            }
            if (has_seq) {
                const long long p = gm - b * P;
                store_f32(seq + b * seq_b_stride + seq_off + p * seq_p_stride +
                              (long long)f * seq_f_stride,
                          out);
            }
        }
        __syncthreads();
    }
}

#define CONV_ROWS_SET(DT, W)                                                                    \
    extern "C" __global__ void __launch_bounds__(cstep::THREADS)                                \
        conv_lstm_preact_##DT(int B, int P, int F, int rows, int cols, int kh, int kw,          \
                              int pad_top, int pad_left, float* __restrict__ xp,                \
                              long long xp_step_off, long long xp_b_stride,                     \
                              const W* __restrict__ RK, const float* __restrict__ h_prev) {     \
        conv_lstm_preact_impl<W>(B, P, F, rows, cols, kh, kw, pad_top, pad_left, xp,            \
                                 xp_step_off, xp_b_stride, RK, h_prev);                         \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(rows::THREADS)                                 \
        conv_lstm_rows_##DT##_last(CONV_STEP_PARAMS(W)) {                                       \
        (void)RK, (void)kh, (void)kw, (void)pad_top, (void)pad_left;                            \
        conv_lstm_rows_impl<false>(CONV_ROWS_ARGS);                                             \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(rows::THREADS)                                 \
        conv_lstm_rows_##DT##_first(CONV_STEP_PARAMS(W)) {                                      \
        (void)RK, (void)kh, (void)kw, (void)pad_top, (void)pad_left;                            \
        conv_lstm_rows_impl<true>(CONV_ROWS_ARGS);                                              \
    }
#define CONV_ROWS_ARGS                                                                       \
    B, P, F, rows, cols, xp, xp_step_off, xp_b_stride, h_prev, h_next, c, prev_out, mask,    \
        has_mask, mask_off, mask_b_stride, seq, has_seq, seq_off, seq_b_stride, seq_p_stride, \
        seq_f_stride, act, rec
CONV_ROWS_SET(f32, float)
CONV_ROWS_SET(f16, __half)
CONV_ROWS_SET(bf16, __nv_bfloat16)

// ---- the step on tensor cores (f16 / bf16 weights; h rounded to W for the product: run only
//   when the host is asked to, DensePath::TensorCore). The recurrent convolution is
//   tc_step_tile's product with A = the implicit im2col of h_prev: rows (b, p), K = kh*kw*F,
//   the 4 gates of 16 filters per block; grid (ceil(F / 16), min(ceil(B*P / 64), 65535)),
//   block 128. Same epilogue as above.

// The (row m = b*P + p, k = (ky*kw + kx)*F + ch) element of h_prev's implicit im2col.
struct HIm2col {
    const float* __restrict__ h;
    int P, F, rows, cols, kw, pad_top, pad_left;
    __device__ __forceinline__ float operator()(long long m, int k) const {
        const long long b = m / P;
        const int p = (int)(m % P);
        const int oy = p / cols;
        const int ox = p % cols;
        const int ch = k % F;
        const int kk = k / F;
        const int iy = oy + kk / kw - pad_top;
        const int ix = ox + kk % kw - pad_left;
        if (iy < 0 || iy >= rows || ix < 0 || ix >= cols) {
            return 0.0f;
        }
        return load_f32(h + ((b * P + (long long)iy * cols + ix) * F + ch));
    }
};

template <typename W, int ACT, int REC>
__device__ __forceinline__ void conv_lstm_step_tc_impl(CONV_STEP_PARAMS(W)) {
    const HIm2col a{h_prev, P, F, rows, cols, kw, pad_top, pad_left};
    tc_step_tile<W, 4>((long long)B * P, kh * kw * F, F, a, RK, 4 * F, 0,
                       [&](long long gm, int f, const float (&z)[4]) {
                           conv_lstm_update<ACT, REC>(gm, f, z, CONV_UPDATE_ARGS);
                       });
}

#define CONV_STEP_TC_ENTRY(NAME, W, A, R)                                                \
    extern "C" __global__ void __launch_bounds__(tcs::THREADS) NAME(CONV_STEP_PARAMS(W)) { \
        conv_lstm_step_tc_impl<W, A, R>(CONV_STEP_ARGS);                                 \
    }
#define CONV_STEP_TC_SET(DT, W)                                                               \
    CONV_STEP_TC_ENTRY(conv_lstm_step_tc_##DT##_tanh_sigmoid, W, ACT_TANH, ACT_SIGMOID)       \
    CONV_STEP_TC_ENTRY(conv_lstm_step_tc_##DT##_tanh_hard_sigmoid, W, ACT_TANH,               \
                       ACT_HARD_SIGMOID)                                                      \
    CONV_STEP_TC_ENTRY(conv_lstm_step_tc_##DT##_generic, W, ACT_RUNTIME, ACT_RUNTIME)
CONV_STEP_TC_SET(f32, float)  // TF32
CONV_STEP_TC_SET(f16, __half)
CONV_STEP_TC_SET(bf16, __nv_bfloat16)

// ---- input convolution of every frame: implicit GEMM
// xp[(n*P + p), :] = sum over (ky, kx, ch) of x[n, oy*sy_ + ky*dy - pad_top,
//                    ox*sx_ + kx*dx - pad_left, ch] * W[(ky*kw + kx)*C + ch, :] + bias
// Grid (ceil(4F / 64), min(ceil(M / 64), 65535)), block 256 (gemm_bias_tile in common.cuh).

template <typename T>
struct Im2colA {
    const T* __restrict__ x;
    long long frame_stride;
    long long sy;  // element strides of the input's row, column and channel axes
    long long sx;
    long long sc;
    int in_rows;
    int in_cols;
    int cin;
    int out_cols;
    int P;
    int kw;
    int stride_y;
    int stride_x;
    int dil_y;
    int dil_x;
    int pad_top;
    int pad_left;
    __device__ __forceinline__ float operator()(long long m, int k) const {
        const long long n = m / P;
        const int p = (int)(m % P);
        const int oy = p / out_cols;
        const int ox = p % out_cols;
        const int ch = k % cin;
        const int kk = k / cin;
        const int iy = oy * stride_y + (kk / kw) * dil_y - pad_top;
        const int ix = ox * stride_x + (kk % kw) * dil_x - pad_left;
        if (iy < 0 || iy >= in_rows || ix < 0 || ix >= in_cols) {
            return 0.0f;
        }
        return load_f32(x + n * frame_stride + iy * sy + ix * sx + ch * sc);
    }
};

#define CONV_INPUT_PARAMS(W)                                                                 \
    long long M, int N, int K, const float *__restrict__ x, long long frame_stride, long long sy, \
        long long sx, long long sc, int in_rows, int in_cols, int cin, int out_cols, int P,  \
        int kw, int stride_y, int stride_x, int dil_y, int dil_x, int pad_top, int pad_left, \
        const W *__restrict__ Wk, const W *__restrict__ bias, int has_bias,                  \
        float *__restrict__ xp

#define CONV_INPUT_ENTRY(NAME, W)                                                            \
    extern "C" __global__ void __launch_bounds__(gemm::THREADS) NAME(CONV_INPUT_PARAMS(W)) {  \
        const Im2colA<float> a{x,       frame_stride, sy,       sx,       sc,    in_rows,         \
                           in_cols, cin,          out_cols, P,        kw,    stride_y,        \
                           stride_x, dil_y,       dil_x,    pad_top,  pad_left};              \
        gemm_bias_tile(M, N, K, a, Wk, N, bias, has_bias, xp, (long long)N);                  \
    }

CONV_INPUT_ENTRY(conv_input_f32, float)
CONV_INPUT_ENTRY(conv_input_f16, __half)
CONV_INPUT_ENTRY(conv_input_bf16, __nv_bfloat16)

// The same implicit GEMM on tensor cores (tc_gemm.cuh), for an input whose values are already
// W values (the host's rule: a layer input in its storage type): grid as above, block 128.
#define CONV_INPUT_TC_ENTRY(NAME, W)                                                          \
    extern "C" __global__ void __launch_bounds__(tcg::THREADS) NAME(CONV_INPUT_PARAMS(W)) {    \
        const Im2colA<float> a{x,       frame_stride, sy,       sx,       sc,    in_rows,       \
                               in_cols, cin,          out_cols, P,        kw,    stride_y,      \
                               stride_x, dil_y,       dil_x,    pad_top,  pad_left};            \
        tc_gemm_bias_tile<W>(M, N, K, a, Wk, N, bias, has_bias, xp, (long long)N);            \
    }
CONV_INPUT_TC_ENTRY(conv_input_tc_f32, float)  // TF32: only when allowed
CONV_INPUT_TC_ENTRY(conv_input_tc_f16, __half)
CONV_INPUT_TC_ENTRY(conv_input_tc_bf16, __nv_bfloat16)
