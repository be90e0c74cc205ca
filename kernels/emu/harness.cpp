#include "emu.h"
#include "rnn.cu"
#include "conv_lstm.cu"
#include "rnn_persistent.cu"
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <type_traits>

static std::mt19937 rng(12345);
static float U01() { return std::uniform_real_distribution<float>(-1, 1)(rng); }
static std::vector<float> rnd(size_t n, float s) { std::vector<float> v(n); for (auto& x : v) x = U01() * s; return v; }

static double act_ref(int id, double x) {
    switch (id) {
        case 0: return std::tanh(x);
        case 1: return 1 / (1 + std::exp(-x));
        case 2: return std::fmin(std::fmax(0.2 * x + 0.5, 0), 1);
        case 3: return std::fmax(x, 0);
        case 4: return x;
        case 5: return x / (1 + std::fabs(x));
        case 6: return std::log1p(std::exp(x));
        case 7: return x > 0 ? x : std::expm1(x);
        case 8: return x > 0 ? 1.050701 * x : 1.050701 * 1.6732632 * std::expm1(x);
        case 9: return std::exp(x);
        case 10: return x / (1 + std::exp(-x));
        case 11: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
        case 12: return std::fmin(std::fmax(x, 0), 6);
        case 13: return x * std::tanh(std::log1p(std::exp(x)));
        case 14: return x >= 0 ? x : 0.2 * x;
    }
    return x;
}

// Activation `id` of a whole row: softmax (15) / log_softmax (16) over the row (Keras's last
// axis), every other id elementwise.
static void act_row(int id, std::vector<double>& v) {
    if (id == 15 || id == 16) {
        double m = -INFINITY, s = 0;
        for (double x : v) m = std::fmax(m, x);
        for (double x : v) s += std::exp(x - m);
        for (double& x : v) x = id == 15 ? std::exp(x - m) / s : x - m - std::log(s);
    } else {
        for (double& x : v) x = act_ref(id, x);
    }
}

static int failures = 0;
static int passes = 0;
// The contract's 1e-5 + 1e-4 |want|, or wider for kernels whose operands are rounded inside
// (the tensor-core steps: the reference rounds h from a double, the kernel from an f32, and
// the two can land on either side of a rounding tie: one term off by one ulp of the storage
// type, ~1e-3 relative for f16 / TF32).
static double g_abs = 1e-5, g_rel = 1e-4;
static void check(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        double e = std::fabs(got[i] - want[i]);
        if (!(e <= g_abs + g_rel * std::fabs(want[i]))) {
            printf("FAIL %s [%zu]: got %g want %g\n", what, i, got[i], want[i]);
            ++failures;
            return;
        }
        worst = std::fmax(worst, e);
    }
    printf("ok   %s (max err %.2e, %zu values)\n", what, worst, want.size());
    ++passes;
}

// The entry points of one weight storage type.
template <class Wt> struct Entries;
#define ENTRIES(DT, WT)                                                                     \
    template <> struct Entries<WT> {                                                        \
        static constexpr const char* name = #DT;                                            \
        static constexpr auto gemm = gemm_bias_##DT;                                        \
        static constexpr auto lstm = lstm_step_##DT##_generic;                              \
        static constexpr auto gru_after = gru_after_step_##DT##_generic;                    \
        static constexpr auto gru_gates = gru_before_gates_##DT##_generic;                  \
        static constexpr auto gru_update = gru_before_update_##DT##_generic;                \
        static constexpr auto simple = simple_step_##DT##_generic;                          \
        static constexpr auto r_lstm = lstm_step_##DT##_rows;                               \
        static constexpr auto r_gru_after = gru_after_step_##DT##_rows;                     \
        static constexpr auto r_gru_gates = gru_before_gates_##DT##_rows;                   \
        static constexpr auto r_gru_update = gru_before_update_##DT##_rows;                 \
        static constexpr auto r_simple = simple_step_##DT##_rows;                           \
        static constexpr auto conv_input = conv_input_##DT;                                 \
        static constexpr auto conv_step = conv_lstm_step_##DT##_tanh_hard_sigmoid;          \
        static constexpr auto conv_generic = conv_lstm_step_##DT##_generic;                 \
        static constexpr auto conv_preact = conv_lstm_preact_##DT;                          \
        static constexpr auto conv_rows_last = conv_lstm_rows_##DT##_last;                  \
        static constexpr auto conv_rows_first = conv_lstm_rows_##DT##_first;                \
        static constexpr auto p_lstm = persistent_lstm_##DT##_generic;                      \
        static constexpr auto p_gru_after = persistent_gru_after_##DT##_generic;            \
        static constexpr auto p_gru_before = persistent_gru_before_##DT##_generic;          \
        static constexpr auto p_simple = persistent_simple_##DT##_generic;                  \
    };
// The tensor-core step kernels (f16 / bf16 only).
template <class Wt> struct TcEntries;
#define TC_ENTRIES(DT, WT)                                                                  \
    template <> struct TcEntries<WT> {                                                      \
        static constexpr auto lstm = lstm_step_tc_##DT##_generic;                           \
        static constexpr auto gru_after = gru_after_step_tc_##DT##_generic;                 \
        static constexpr auto gru_gates = gru_before_gates_tc_##DT##_generic;               \
        static constexpr auto gru_update = gru_before_update_tc_##DT##_generic;             \
        static constexpr auto simple = simple_step_tc_##DT##_generic;                       \
    };
TC_ENTRIES(f32, float)  // TF32
TC_ENTRIES(f16, __half)
TC_ENTRIES(bf16, __nv_bfloat16)
ENTRIES(f32, float)
ENTRIES(f16, __half)
ENTRIES(bf16, __nv_bfloat16)
// The wavefront entries of one storage type (rnn.cu, "wavefront across the cells of a stack").
template <class Wt> struct WaveEntries;
#define WAVE_ENTRIES(DT, WT)                                                                \
    template <> struct WaveEntries<WT> {                                                    \
        static constexpr auto gemm = gemm_bias_wave_##DT;                                   \
        static constexpr auto lstm = lstm_step_wave_##DT##_generic;                         \
        static constexpr auto gru_after = gru_after_step_wave_##DT##_generic;               \
        static constexpr auto gru_gates = gru_before_gates_wave_##DT##_generic;             \
        static constexpr auto gru_update = gru_before_update_wave_##DT##_generic;           \
        static constexpr auto simple = simple_step_wave_##DT##_generic;                     \
    };
WAVE_ENTRIES(f32, float)
WAVE_ENTRIES(f16, __half)
WAVE_ENTRIES(bf16, __nv_bfloat16)

// Weights in storage type Wt: `v` is rounded in place (the reference sees the stored values)
// and returned as Wt.
template <class Wt> static Wt to_wt(float f) {
    if constexpr (std::is_same_v<Wt, float>) return f;
    else if constexpr (std::is_same_v<Wt, __half>) return __float2half_rn(f);
    else return __float2bfloat16_rn(f);
}
template <class Wt> static std::vector<Wt> stored(std::vector<float>& v) {
    std::vector<Wt> w(v.size());
    for (size_t i = 0; i < v.size(); ++i) { w[i] = to_wt<Wt>(v[i]); v[i] = load_f32(&w[i]); }
    return w;
}
// An input in storage type Wt, through the convert kernels as the host does: f32 -> Wt -> f32
// (identity for f32). `x` becomes the stored values.
template <class Wt> static void store_input(std::vector<float>& x) {
    if constexpr (!std::is_same_v<Wt, float>) {
        long long n = (long long)x.size();
        std::vector<Wt> xs(x.size());
        std::vector<float> back(x.size(), NAN);
        if constexpr (std::is_same_v<Wt, __half>) {
            launch({3, 1, 1}, {64, 1, 1}, [&] { convert_f32_to_f16(n, x.data(), xs.data()); });
            launch({2, 1, 1}, {32, 1, 1}, [&] { convert_f16_to_f32(n, xs.data(), back.data()); });
        } else {
            launch({3, 1, 1}, {64, 1, 1}, [&] { convert_f32_to_bf16(n, x.data(), xs.data()); });
            launch({2, 1, 1}, {32, 1, 1}, [&] { convert_bf16_to_f32(n, xs.data(), back.data()); });
        }
        for (size_t i = 0; i < x.size(); ++i) {
            if (back[i] != load_f32(&xs[i]) || xs[i].bits != to_wt<Wt>(x[i]).bits) { printf("FAIL convert %s [%zu]\n", Entries<Wt>::name, i); ++failures; return; }
        }
        x = back;
    }
}

enum Kind { LSTM, GRUA, GRUB, SIMPLE };
static int gates(Kind k) { return k == LSTM ? 4 : k == SIMPLE ? 1 : 3; }

// The double reference of one cell over T steps: the input of processing step s, row bb,
// feature k is xin(bb, s, k) (the caller reverses go_backwards inputs); mask[bb * T + t] at
// t = back ? T-1-s : s; rw rounds the recurrent product's left operand (the tensor-core
// steps). seq is in processing order, (s * B + bb) * U + j when tm, else (bb * T + s) * U + j.
struct Ref { std::vector<double> h, c, prev, seq; };
template <class XIn, class RW>
static Ref ref_cell(Kind kind, int B, int T, int I, int U, const XIn& xin, const std::vector<float>& W, const std::vector<float>& Um, const std::vector<float>& b, const std::vector<float>& rb, const std::vector<unsigned char>& mask, bool back, const std::vector<float>& h0, const std::vector<float>& c0, int act, int rec, bool tm, const RW& rw) {
    const int GU = gates(kind) * U;
    std::vector<double> h(h0.begin(), h0.end()), c(c0.begin(), c0.end()), prev((size_t)B * U, 0), seq((size_t)B * T * U);
    for (int s = 0; s < T; ++s) {
        int ts = back ? T - 1 - s : s;
        std::vector<double> hn = h, cn = c;
        for (int bb = 0; bb < B; ++bb) {
            bool real = mask[(size_t)bb * T + ts];
            std::vector<double> xp(GU), hu(GU, 0), rh(U);
            for (int n = 0; n < GU; ++n) { double a = b[n]; for (int k = 0; k < I; ++k) a += (double)xin(bb, s, k) * W[(size_t)k * GU + n]; xp[n] = a; }
            for (int n = 0; n < GU; ++n) for (int k = 0; k < U; ++k) hu[n] += rw(h[(size_t)bb * U + k]) * Um[(size_t)k * GU + n];
            // Gate g's pre-activations, activated as one row (row-wise ids need the whole row).
            auto gate = [&](int g, int id, const std::vector<double>& extra) {
                std::vector<double> v(U);
                for (int j = 0; j < U; ++j) v[j] = xp[g * U + j] + hu[g * U + j] + (extra.empty() ? 0.0 : extra[g * U + j]);
                act_row(id, v);
                return v;
            };
            const std::vector<double> none, rbd(rb.begin(), rb.end());
            if (kind == GRUB) {
                const auto r = gate(1, rec, none);
                for (int j = 0; j < U; ++j) rh[j] = r[j] * h[(size_t)bb * U + j];
                for (int j = 0; j < U; ++j) { double a = 0; for (int k = 0; k < U; ++k) a += rw(rh[k]) * Um[(size_t)k * GU + 2 * U + j]; hu[2 * U + j] = a; }
            }
            std::vector<double> outv(U);
            if (real) {
                if (kind == LSTM) {
                    const auto i = gate(0, rec, none), f = gate(1, rec, none), g = gate(2, act, none), o = gate(3, rec, none);
                    std::vector<double> cv(U);
                    for (int j = 0; j < U; ++j) { size_t e = (size_t)bb * U + j; cn[e] = f[j] * c[e] + i[j] * g[j]; cv[j] = cn[e]; }
                    act_row(act, cv);
                    for (int j = 0; j < U; ++j) outv[j] = o[j] * cv[j];
                } else if (kind == GRUA) {
                    const auto z = gate(0, rec, rbd), r = gate(1, rec, rbd);
                    std::vector<double> n(U);
                    for (int j = 0; j < U; ++j) n[j] = xp[2 * U + j] + r[j] * (hu[2 * U + j] + rb[2 * U + j]);
                    act_row(act, n);
                    for (int j = 0; j < U; ++j) outv[j] = z[j] * h[(size_t)bb * U + j] + (1 - z[j]) * n[j];
                } else if (kind == GRUB) {
                    const auto z = gate(0, rec, none), n = gate(2, act, none);
                    for (int j = 0; j < U; ++j) outv[j] = z[j] * h[(size_t)bb * U + j] + (1 - z[j]) * n[j];
                } else {
                    outv = gate(0, act, none);
                }
            }
            for (int j = 0; j < U; ++j) {
                size_t e = (size_t)bb * U + j;
                double out;
                if (real) { out = outv[j]; hn[e] = out; prev[e] = out; } else { out = prev[e]; }
                seq[tm ? ((size_t)s * B + bb) * U + j : ((size_t)bb * T + s) * U + j] = out;
            }
        }
        h = hn; c = cn;
    }
    return {h, c, prev, seq};
}

// One dense cell, batch-major input (b*T + t rows), batch-major output, as dense.rs launches it,
// with weights (and the input) stored as Wt.
// persist_J > 0: the persistent kernel (rnn_persistent.cu) with J units per block instead of
// the per-step kernels. tc: the tensor-core step kernels (Wt f16 / bf16), whose product
// rounds h (and r*h) to Wt: the reference rounds them too; with Wt = float the TF32 variants,
// which round h and the recurrent weights to TF32 (the reference uses the rounded weights).
template <class Wt = float>
static void dense_case(Kind kind, int B, int T, int I, int U, bool back, bool use_mask, bool use_init, int act, int rec, bool tm, int persist_J = 0, bool tc = false, int tiled = 0) {
    auto rw = [&](double v) -> double { if constexpr (std::is_same_v<Wt, float>) return tc ? (double)nvcuda::wmma::__float_to_tf32((float)v) : v; else return tc ? (double)load_f32(std::vector<Wt>{to_wt<Wt>((float)v)}.data()) : v; };
    int G = gates(kind), GU = G * U;
    auto x = rnd((size_t)B * T * I, 1), W = rnd((size_t)I * GU, 0.5), Um = rnd((size_t)U * GU, 0.4), b = rnd(GU, 0.5), rb = rnd(kind == GRUA ? GU : 1, 0.5);
    if constexpr (std::is_same_v<Wt, float>) if (tc) for (auto& v : Um) v = nvcuda::wmma::__float_to_tf32(v);
    auto Ws = stored<Wt>(W); auto Ums = stored<Wt>(Um); auto bs = stored<Wt>(b); auto rbs = stored<Wt>(rb);
    store_input<Wt>(x);
    using E = Entries<Wt>;
    std::vector<unsigned char> mask((size_t)B * T, 1);
    if (use_mask) for (auto& m : mask) m = (rng() % 10) >= 3;
    auto h0 = use_init ? rnd((size_t)B * U, 1) : std::vector<float>((size_t)B * U, 0);
    auto c0 = use_init ? rnd((size_t)B * U, 1) : std::vector<float>((size_t)B * U, 0);
    // ---- reference (double), x row (b, t) at tm ? t*B+b : b*T+t
    auto xrow = [&](int bb, int t) { return tm ? (size_t)t * B + bb : (size_t)bb * T + t; };
    auto xin = [&](int bb, int s, int k) -> double { return x[xrow(bb, back ? T - 1 - s : s) * I + k]; };
    const Ref r = ref_cell(kind, B, T, I, U, xin, W, Um, b, rb, mask, back, h0, c0, act, rec, tm, rw);
    const std::vector<double>&h = r.h, &c = r.c, &prev = r.prev, &seq = r.seq;
    // ---- kernels, launched as dense.rs does
    std::vector<float> xp((size_t)B * T * GU), hs[2] = {h0, std::vector<float>((size_t)B * U, NAN)}, cs = c0, po((size_t)B * U, 0), sq((size_t)B * T * U, NAN), zb((size_t)B * U, NAN), rhb((size_t)B * U, NAN);
    long long M = (long long)B * T;
    launch({(unsigned)((GU + 63) / 64), (unsigned)((M + 63) / 64), 1}, {256, 1, 1}, [&] { E::gemm(M, GU, I, x.data(), I, Ws.data(), GU, bs.data(), 1, xp.data(), GU); });
    dim3 grid{(unsigned)((U + 31) / 32), (unsigned)std::min((B + 3) / 4, 65535), 1}, block{32, 8, 1};
    if (tiled == 1) grid = dim3{(unsigned)((U + tstep::UNITS - 1) / tstep::UNITS), (unsigned)std::min((B + tstep::BM - 1) / tstep::BM, 65535), 1};
    // tiled == 2: the `_rows` kernels (row-wise activations), one block per batch row.
    const bool rows = tiled == 2;
    // The host launches min(B, 65535) blocks; 3 here, so that blocks go round the grid-stride
    // loop and reuse their shared memory for a second batch row.
    if (rows) grid = dim3{1, (unsigned)std::min(B, 3), 1};
    if (persist_J > 0) {
        const int J = persist_J, blocks = (U + J - 1) / J;
        const int pk = kind == LSTM ? persist::LSTM : kind == GRUA ? persist::GRU_AFTER : kind == GRUB ? persist::GRU_BEFORE : persist::SIMPLE;
        const size_t smem = (size_t)PersistSmem(pk, (int)sizeof(Wt), B, U, J).total;
        std::vector<float> rhs((size_t)B * U, NAN);
        // The device's barrier words, carried from launch to launch as on the GPU (the first
        // launch starts near 2^32, so the generation wraps during the cases).
        static unsigned bar[2] = {0, 4294967290u};
        long long xss = tm ? (long long)B * GU : GU, xbs = tm ? GU : (long long)T * GU;
        long long sss = tm ? (long long)B * U : U, sbs = tm ? U : (long long)T * U;
        auto run = [&](auto fn) { launch_coop(blocks, 512, smem, [&] { fn(B, U, T, J, xp.data(), xss, xbs, back, Ums.data(), rbs.data(), kind == GRUA, hs[0].data(), hs[1].data(), cs.data(), po.data(), rhs.data(), mask.data(), use_mask, back, T, sq.data(), 1, sss, sbs, bar, act, rec); }); };
        if (kind == LSTM) run(E::p_lstm);
        if (kind == GRUA) run(E::p_gru_after);
        if (kind == GRUB) run(E::p_gru_before);
        if (kind == SIMPLE) run(E::p_simple);
        if (bar[0] != 0) { printf("FAIL persistent barrier counter left at %u\n", bar[0]); ++failures; }
    }
    {
        if (tc) {
            using TE = TcEntries<Wt>;
            dim3 tgrid{(unsigned)((U + 15) / 16), (unsigned)((B + 63) / 64), 1}, tblock{128, 1, 1};
            for (int s = 0; s < T; ++s) {
                int ts = back ? T - 1 - s : s;
                long long xo = tm ? (long long)ts * B * GU : (long long)ts * GU, xbs = tm ? GU : (long long)T * GU;
                long long so = tm ? (long long)s * B * U : (long long)s * U, sbs = tm ? U : (long long)T * U;
                float* hp = hs[s % 2].data(); float* hn = hs[(s + 1) % 2].data();
                if (kind == LSTM) launch(tgrid, tblock, [&] { TE::lstm(B, U, xp.data(), xo, xbs, Ums.data(), hp, hn, cs.data(), po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, rec, tiled); });
                if (kind == GRUA) launch(tgrid, tblock, [&] { TE::gru_after(B, U, xp.data(), xo, xbs, Ums.data(), rbs.data(), 1, hp, hn, po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, rec, tiled); });
                if (kind == GRUB) {
                    launch(tgrid, tblock, [&] { TE::gru_gates(B, U, xp.data(), xo, xbs, Ums.data(), hp, zb.data(), rhb.data(), rec, tiled); });
                    launch(tgrid, tblock, [&] { TE::gru_update(B, U, xp.data(), xo, xbs, Ums.data(), rhb.data(), zb.data(), hp, hn, po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, tiled); });
                }
                if (kind == SIMPLE) launch(tgrid, tblock, [&] { TE::simple(B, U, xp.data(), xo, xbs, Ums.data(), hp, hn, po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, tiled); });
            }
        }
    }
    for (int s = 0; s < (persist_J > 0 || tc ? 0 : T); ++s) {
        int ts = back ? T - 1 - s : s;
        long long xo = tm ? (long long)ts * B * GU : (long long)ts * GU, xbs = tm ? GU : (long long)T * GU;
        long long so = tm ? (long long)s * B * U : (long long)s * U, sbs = tm ? U : (long long)T * U;
        float* hp = hs[s % 2].data(); float* hn = hs[(s + 1) % 2].data();
        const auto e_lstm = rows ? E::r_lstm : E::lstm;
        const auto e_gru_after = rows ? E::r_gru_after : E::gru_after;
        const auto e_gru_gates = rows ? E::r_gru_gates : E::gru_gates;
        const auto e_gru_update = rows ? E::r_gru_update : E::gru_update;
        const auto e_simple = rows ? E::r_simple : E::simple;
        if (kind == LSTM) launch(grid, block, [&] { e_lstm(B, U, xp.data(), xo, xbs, Ums.data(), hp, hn, cs.data(), po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, rec, tiled); });
        if (kind == GRUA) launch(grid, block, [&] { e_gru_after(B, U, xp.data(), xo, xbs, Ums.data(), rbs.data(), 1, hp, hn, po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, rec, tiled); });
        if (kind == GRUB) {
            launch(grid, block, [&] { e_gru_gates(B, U, xp.data(), xo, xbs, Ums.data(), hp, zb.data(), rhb.data(), rec, tiled); });
            launch(grid, block, [&] { e_gru_update(B, U, xp.data(), xo, xbs, Ums.data(), rhb.data(), zb.data(), hp, hn, po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, tiled); });
        }
        if (kind == SIMPLE) launch(grid, block, [&] { e_simple(B, U, xp.data(), xo, xbs, Ums.data(), hp, hn, po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, so, sbs, act, tiled); });
    }
    char name[200];
    snprintf(name, sizeof name, "%s%s%s kind%d B%d T%d I%d U%d back%d mask%d init%d act%d rec%d tm%d", persist_J > 0 ? ("persistent J" + std::to_string(persist_J) + " ").c_str() : "", tc ? "tensor-core " : rows ? "rows " : tiled ? "tiled " : "", E::name, kind, B, T, I, U, back, use_mask, use_init, act, rec, tm);
    if (tc) { g_abs = 1e-3; g_rel = 1e-3; }
    check((std::string(name) + " seq").c_str(), sq, seq);
    check((std::string(name) + " h").c_str(), hs[T % 2], h);
    if (kind == LSTM) check((std::string(name) + " c").c_str(), cs, c);
    check((std::string(name) + " last").c_str(), po, prev);
    g_abs = 1e-5; g_rel = 1e-4;
}

// A stack of cells of one kind as a wavefront (rnn.cu's `_wave_` entries), launched as
// src/cuda/wave.rs does: cell 0's projection up front, then per diagonal `it` the projection of
// cells > 0 (gemm_bias_wave) and the step entry (two for GRU reset_after=false); against the
// reference run cell after cell. Units differ per cell (the grid covers the widest cell), cells
// before the last write time-major sequences into a two-step ring (checked through the next
// cell's results), the last one the user's layout (tm) if last_seq. bias: cells with biases.
template <class Wt = float>
static void wave_case(Kind kind, int B, int T, int I, std::vector<int> units, bool back, bool use_mask, bool use_init, int act, int rec, bool tm, int tiled, bool last_seq, bool bias = true) {
    using E = Entries<Wt>;
    using WE = WaveEntries<Wt>;
    const int L = (int)units.size(), G = gates(kind);
    auto x = rnd((size_t)B * T * I, 1);
    store_input<Wt>(x);
    std::vector<unsigned char> mask((size_t)B * T, 1);
    if (use_mask) for (auto& m : mask) m = (rng() % 10) >= 3;
    struct Cell { int K, U; std::vector<float> W, Um, b, rb, h0, h1, c, po, xp, seq, zb, rh; std::vector<Wt> Ws, Ums, bs, rbs; };
    std::vector<Cell> cs(L);
    std::vector<Ref> refs;
    auto xrow = [&](int bb, int t) { return tm ? (size_t)t * B + bb : (size_t)bb * T + t; };
    for (int l = 0; l < L; ++l) {
        Cell& c = cs[l];
        c.K = l == 0 ? I : units[l - 1];
        c.U = units[l];
        const int GU = G * c.U;
        c.W = rnd((size_t)c.K * GU, 0.5); c.Um = rnd((size_t)c.U * GU, 0.4); c.b = rnd(GU, 0.5); c.rb = rnd(kind == GRUA ? GU : 1, 0.5);
        if (!bias) { std::fill(c.b.begin(), c.b.end(), 0.0f); std::fill(c.rb.begin(), c.rb.end(), 0.0f); }
        c.Ws = stored<Wt>(c.W); c.Ums = stored<Wt>(c.Um); c.bs = stored<Wt>(c.b); c.rbs = stored<Wt>(c.rb);
        c.h0 = use_init ? rnd((size_t)B * c.U, 1) : std::vector<float>((size_t)B * c.U, 0);
        c.c = use_init ? rnd((size_t)B * c.U, 1) : std::vector<float>((size_t)B * c.U, 0);
        c.h1.assign((size_t)B * c.U, NAN); c.po.assign((size_t)B * c.U, 0);
        c.zb.assign((size_t)B * c.U, NAN); c.rh.assign((size_t)B * c.U, NAN);
        c.xp.assign(l == 0 ? (size_t)B * T * GU : (size_t)B * GU, NAN);
        c.seq.assign((size_t)(l + 1 < L ? 2 : T) * B * c.U, NAN);
        const bool ltm = l + 1 < L ? true : tm;
        auto ident = [](double v) { return v; };
        if (l == 0) {
            auto xin = [&](int bb, int s, int k) -> double { return x[xrow(bb, back ? T - 1 - s : s) * I + k]; };
            refs.push_back(ref_cell(kind, B, T, c.K, c.U, xin, c.W, c.Um, c.b, c.rb, mask, back, c.h0, c.c, act, rec, ltm, ident));
        } else {
            const std::vector<double>& y = refs[l - 1].seq;
            auto xin = [&](int bb, int s, int k) -> double { return (double)(float)y[((size_t)s * B + bb) * c.K + k]; };
            refs.push_back(ref_cell(kind, B, T, c.K, c.U, xin, c.W, c.Um, c.b, c.rb, mask, back, c.h0, c.c, act, rec, ltm, ident));
        }
    }
    // ---- kernels
    WaveArgs a{};
    a.B = B; a.T = T; a.n_cells = L; a.mask = mask.data(); a.has_mask = use_mask; a.mask_reverse = back; a.mask_b_stride = T; a.act = act; a.rec = rec; a.tiled = tiled;
    unsigned gx = 1, px = 1;
    for (int l = 0; l < L; ++l) {
        Cell& c = cs[l];
        WaveCell& w = a.cell[l];
        const int GU = G * c.U;
        const bool last = l + 1 == L, ltm = last ? tm : true;
        w.U = c.U; w.gu = GU; w.xp = c.xp.data();
        w.xp_step_stride = l > 0 ? 0 : tm ? (long long)B * GU : GU;
        w.xp_b_stride = l > 0 ? GU : tm ? GU : (long long)T * GU;
        w.xp_reverse = l == 0 && back;
        w.Um = c.Ums.data(); w.rb = bias ? c.rbs.data() : nullptr; w.has_rb = bias && kind == GRUA;
        w.h0 = c.h0.data(); w.h1 = c.h1.data(); w.c = c.c.data(); w.prev_out = c.po.data(); w.zbuf = c.zb.data(); w.rh = c.rh.data();
        w.seq = c.seq.data(); w.has_seq = !last || last_seq;
        w.seq_step_stride = ltm ? (long long)B * c.U : c.U;
        w.seq_b_stride = ltm ? c.U : (long long)T * c.U;
        w.in = l > 0 ? cs[l - 1].seq.data() : nullptr; w.in_step_stride = l > 0 ? (long long)B * c.K : 0; w.K = c.K;
        w.Wx = c.Ws.data(); w.bias = bias ? c.bs.data() : nullptr; w.has_bias = bias;
        gx = std::max(gx, (unsigned)((c.U + (tiled ? 15 : 31)) / (tiled ? 16 : 32)));
        if (l > 0) px = std::max(px, (unsigned)((GU + 63) / 64));
    }
    {
        const Cell& c = cs[0];
        long long M = (long long)B * T;
        int GU = G * c.U;
        launch({(unsigned)((GU + 63) / 64), (unsigned)((M + 63) / 64), 1}, {256, 1, 1}, [&] { E::gemm(M, GU, I, x.data(), I, cs[0].Ws.data(), GU, cs[0].bs.data(), 1, cs[0].xp.data(), GU); });
    }
    dim3 grid{gx, (unsigned)(tiled ? (B + tstep::BM - 1) / tstep::BM : (B + 3) / 4), (unsigned)L}, block{32, 8, 1};
    dim3 pgrid{px, (unsigned)((B + 63) / 64), (unsigned)(L - 1)}, pblock{256, 1, 1};
    for (int it = 0; it < T + L - 1; ++it) {
        if (it > 0) launch(pgrid, pblock, [&] { WE::gemm(a, it); });
        if (kind == LSTM) launch(grid, block, [&] { WE::lstm(a, it); });
        if (kind == GRUA) launch(grid, block, [&] { WE::gru_after(a, it); });
        if (kind == GRUB) {
            launch(grid, block, [&] { WE::gru_gates(a, it); });
            launch(grid, block, [&] { WE::gru_update(a, it); });
        }
        if (kind == SIMPLE) launch(grid, block, [&] { WE::simple(a, it); });
    }
    for (int l = 0; l < L; ++l) {
        const Cell& c = cs[l];
        char name[200];
        snprintf(name, sizeof name, "wavefront %s%s%s kind%d cell %d/%d B%d T%d K%d U%d back%d mask%d init%d act%d rec%d tm%d", tiled ? "tiled " : "", bias ? "" : "no bias ", Entries<Wt>::name, kind, l, L, B, T, c.K, c.U, back, use_mask, use_init, act, rec, tm);
        if (l + 1 == L && last_seq) check((std::string(name) + " seq").c_str(), c.seq, refs[l].seq);
        check((std::string(name) + " h").c_str(), T % 2 ? c.h1 : c.h0, refs[l].h);
        if (kind == LSTM) check((std::string(name) + " c").c_str(), c.c, refs[l].c);
        check((std::string(name) + " last").c_str(), c.po, refs[l].prev);
    }
}

// ConvLSTM2D, as conv.rs launches it: input conv (implicit GEMM) then the fused steps.
// tc: the tensor-core step (conv_lstm_step_tc_*), whose product rounds h to Wt (the reference
// too).
template <class Wt = float>
// act / rec: activation ids (the step kernel `_tanh_hard_sigmoid` for 0 / 2, else `_generic`);
// rows: the row-wise pair of kernels (conv_lstm_preact + conv_lstm_rows_{last,first}), whose
// activations the reference applies along the filters of a pixel (channels_last) or along the
// output columns of a (filter, output row) (channels_first), as Keras does.
static void conv_case(int B, int T, int R, int C, int Cin, int F, int kh, int kw, int sy, int sx, int dy, int dx, bool same, bool cf, bool back, bool use_mask, bool tc = false, int act = 0, int rec = 2, bool rows = false) {
    using E = Entries<Wt>;
    auto rw = [&](double v) -> double { if constexpr (std::is_same_v<Wt, float>) return v; else return tc ? (double)load_f32(std::vector<Wt>{to_wt<Wt>((float)v)}.data()) : v; };
    auto axis = [](int in, int k, int s, int d, bool same, int& out, int& pad) { int eff = (k - 1) * d + 1; if (same) { out = (in + s - 1) / s; int need = (out - 1) * s + eff; int tot = need > in ? need - in : 0; pad = tot / 2; } else { out = (in - eff) / s + 1; pad = 0; } };
    int OR, OC, pt, pl, rpt, rpl, d1, d2;
    axis(R, kh, sy, dy, same, OR, pt); axis(C, kw, sx, dx, same, OC, pl);
    axis(OR, kh, 1, 1, true, d1, rpt); axis(OC, kw, 1, 1, true, d2, rpl);
    int P = OR * OC, N4 = 4 * F;
    auto x = rnd((size_t)B * T * R * C * Cin, 1), W = rnd((size_t)kh * kw * Cin * N4, 0.3), RK = rnd((size_t)kh * kw * F * N4, 0.3), bias = rnd(N4, 0.5);
    auto Ws = stored<Wt>(W); auto RKs = stored<Wt>(RK); auto biass = stored<Wt>(bias);
    store_input<Wt>(x);
    std::vector<unsigned char> mask((size_t)B * T, 1);
    if (use_mask) for (auto& m : mask) m = (rng() % 10) >= 3;
    auto X = [&](int n, int iy, int ix, int ch) -> double { size_t fr = (size_t)n * R * C * Cin; return cf ? x[fr + ((size_t)ch * R + iy) * C + ix] : x[fr + ((size_t)iy * C + ix) * Cin + ch]; };
    // reference
    std::vector<double> h((size_t)B * P * F, 0), c = h, prev = h, seq((size_t)B * T * P * F);
    for (int s = 0; s < T; ++s) {
        int ts = back ? T - 1 - s : s;
        std::vector<double> hn = h, cn = c;
        for (int bb = 0; bb < B; ++bb) {
            std::vector<double> Z((size_t)P * N4);
            for (int oy = 0; oy < OR; ++oy) for (int ox = 0; ox < OC; ++ox) {
                int p = oy * OC + ox;
                for (int n = 0; n < N4; ++n) {
                    double a = bias[n];
                    for (int ky = 0; ky < kh; ++ky) for (int kx = 0; kx < kw; ++kx) {
                        int iy = oy * sy + ky * dy - pt, ix = ox * sx + kx * dx - pl;
                        if (iy >= 0 && iy < R && ix >= 0 && ix < C) for (int ch = 0; ch < Cin; ++ch) a += X(bb * T + ts, iy, ix, ch) * W[(((size_t)ky * kw + kx) * Cin + ch) * N4 + n];
                        int ry = oy + ky - rpt, rx = ox + kx - rpl;
                        if (ry >= 0 && ry < OR && rx >= 0 && rx < OC) for (int cf2 = 0; cf2 < F; ++cf2) a += rw(h[((size_t)bb * P + ry * OC + rx) * F + cf2]) * RK[(((size_t)ky * kw + kx) * F + cf2) * N4 + n];
                    }
                    Z[(size_t)p * N4 + n] = a;
                }
            }
            // A (P, F) tensor of this batch row activated along Keras's last axis: the filters
            // of a pixel, or (channels_first) the output columns of a (filter, output row).
            auto activate = [&](std::vector<double>& V, int id) {
                if (!cf) {
                    for (int p = 0; p < P; ++p) { std::vector<double> l(V.begin() + (size_t)p * F, V.begin() + (size_t)(p + 1) * F); act_row(id, l); std::copy(l.begin(), l.end(), V.begin() + (size_t)p * F); }
                } else {
                    for (int f = 0; f < F; ++f) for (int oy = 0; oy < OR; ++oy) {
                        std::vector<double> l(OC);
                        for (int ox = 0; ox < OC; ++ox) l[ox] = V[((size_t)oy * OC + ox) * F + f];
                        act_row(id, l);
                        for (int ox = 0; ox < OC; ++ox) V[((size_t)oy * OC + ox) * F + f] = l[ox];
                    }
                }
            };
            std::vector<double> G[4];
            for (int g = 0; g < 4; ++g) {
                G[g].resize((size_t)P * F);
                for (int p = 0; p < P; ++p) for (int f = 0; f < F; ++f) G[g][(size_t)p * F + f] = Z[(size_t)p * N4 + g * F + f];
                activate(G[g], g == 2 ? act : rec);
            }
            const bool real = mask[(size_t)bb * T + ts];
            std::vector<double> cv((size_t)P * F);
            if (real) {
                for (size_t q = 0; q < cv.size(); ++q) { size_t e = (size_t)bb * P * F + q; cn[e] = G[1][q] * c[e] + G[0][q] * G[2][q]; cv[q] = cn[e]; }
                activate(cv, act);
            }
            for (int p = 0; p < P; ++p) for (int f = 0; f < F; ++f) {
                size_t q = (size_t)p * F + f, e = (size_t)bb * P * F + q;
                double out;
                if (real) { out = G[3][q] * cv[q]; hn[e] = out; prev[e] = out; } else out = prev[e];
                seq[cf ? (((size_t)bb * T + s) * F + f) * P + p : (((size_t)bb * T + s) * P + p) * F + f] = out;
            }
        }
        h = hn; c = cn;
    }
    // kernels
    long long M = (long long)B * T * P;
    std::vector<float> xp((size_t)M * N4, NAN);
    long long fs = (long long)R * C * Cin, ssy = cf ? C : (long long)C * Cin, ssx = cf ? 1 : Cin, ssc = cf ? (long long)R * C : 1;
    launch({(unsigned)((N4 + 63) / 64), (unsigned)((M + 63) / 64), 1}, {256, 1, 1}, [&] { E::conv_input(M, N4, kh * kw * Cin, x.data(), fs, ssy, ssx, ssc, R, C, Cin, OC, P, kw, sy, sx, dy, dx, pt, pl, Ws.data(), biass.data(), 1, xp.data()); });
    if constexpr (!std::is_same_v<Wt, float>) {
        // The tensor-core implicit GEMM gives the same xp (the input holds Wt values).
        std::vector<float> xt((size_t)M * N4, NAN);
        launch({(unsigned)((N4 + 63) / 64), (unsigned)((M + 63) / 64), 1}, {128, 1, 1}, [&] {
            if constexpr (std::is_same_v<Wt, __half>) conv_input_tc_f16(M, N4, kh * kw * Cin, x.data(), fs, ssy, ssx, ssc, R, C, Cin, OC, P, kw, sy, sx, dy, dx, pt, pl, Ws.data(), biass.data(), 1, xt.data());
            else conv_input_tc_bf16(M, N4, kh * kw * Cin, x.data(), fs, ssy, ssx, ssc, R, C, Cin, OC, P, kw, sy, sx, dy, dx, pt, pl, Ws.data(), biass.data(), 1, xt.data());
        });
        check((std::string(E::name) + " conv input on tensor cores vs FFMA").c_str(), xt, std::vector<double>(xp.begin(), xp.end()));
    }
    std::vector<float> hs[2] = {std::vector<float>((size_t)B * P * F, 0), std::vector<float>((size_t)B * P * F, NAN)}, cs((size_t)B * P * F, 0), po((size_t)B * P * F, 0), sq((size_t)B * T * P * F, NAN);
    long long sbs = cf ? (long long)T * F * P : (long long)T * P * F, sps = cf ? 1 : F, sfs = cf ? P : 1;
    dim3 grid{(unsigned)std::min((B * P + 63) / 64, 65535), (unsigned)((F + 15) / 16), 1};
    for (int s = 0; s < T; ++s) {
        int ts = back ? T - 1 - s : s;
        float* hp = hs[s % 2].data(); float* hn = hs[(s + 1) % 2].data();
        if constexpr (!std::is_same_v<Wt, float>) {
            if (tc) {
                dim3 tg{(unsigned)((F + 15) / 16), (unsigned)std::min((B * P + 63) / 64, 65535), 1};
                launch(tg, {128, 1, 1}, [&] {
                    if constexpr (std::is_same_v<Wt, __half>) conv_lstm_step_tc_f16_tanh_hard_sigmoid(B, P, F, OR, OC, kh, kw, rpt, rpl, xp.data(), (long long)ts * P * N4, (long long)T * P * N4, RKs.data(), hp, hn, cs.data(), po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, (long long)s * P * F, sbs, sps, sfs, 0, 2);
                    else conv_lstm_step_tc_bf16_tanh_hard_sigmoid(B, P, F, OR, OC, kh, kw, rpt, rpl, xp.data(), (long long)ts * P * N4, (long long)T * P * N4, RKs.data(), hp, hn, cs.data(), po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, (long long)s * P * F, sbs, sps, sfs, 0, 2);
                });
                continue;
            }
        }
        const long long xo = (long long)ts * P * N4, xbs = (long long)T * P * N4;
        if (rows) {
            launch(grid, {256, 1, 1}, [&] { E::conv_preact(B, P, F, OR, OC, kh, kw, rpt, rpl, xp.data(), xo, xbs, RKs.data(), hp); });
            const long long lines = cf ? (long long)B * F * OR : (long long)B * P;
            // The host launches min(lines, 65535) blocks; 7 here, so that blocks take several
            // lines (the grid-stride loop, shared memory reused).
            launch({(unsigned)std::min(lines, 7LL), 1, 1}, {256, 1, 1}, [&] { (cf ? E::conv_rows_first : E::conv_rows_last)(B, P, F, OR, OC, kh, kw, rpt, rpl, xp.data(), xo, xbs, RKs.data(), hp, hn, cs.data(), po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, (long long)s * P * F, sbs, sps, sfs, act, rec); });
            continue;
        }
        const auto step = (act == 0 && rec == 2) ? E::conv_step : E::conv_generic;
        launch(grid, {256, 1, 1}, [&] { step(B, P, F, OR, OC, kh, kw, rpt, rpl, xp.data(), xo, xbs, RKs.data(), hp, hn, cs.data(), po.data(), mask.data(), use_mask, ts, T, sq.data(), 1, (long long)s * P * F, sbs, sps, sfs, act, rec); });
    }
    char name[200];
    snprintf(name, sizeof name, "%s%s conv B%d T%d %dx%d cin%d F%d k%dx%d s%d%d d%d%d same%d cf%d back%d mask%d act%d rec%d", tc ? "tensor-core " : rows ? "rows " : "", E::name, B, T, R, C, Cin, F, kh, kw, sy, sx, dy, dx, same, cf, back, use_mask, act, rec);
    if (tc) { g_abs = 1e-3; g_rel = 1e-3; }
    check((std::string(name) + " seq").c_str(), sq, seq);
    check((std::string(name) + " h").c_str(), hs[T % 2], h);
    check((std::string(name) + " c").c_str(), cs, c);
    check((std::string(name) + " last").c_str(), po, prev);
    g_abs = 1e-5; g_rel = 1e-4;
}

// Bidirectional's merge, against the CPU path's order of operations: zero each direction's
// masked steps in its processing order, then reverse the backward sequence, then merge.
// b_back: whether the backward direction reads the mask reversed (its loop; an unrolled
// backward layer reads it in input order: SequenceOptions::zeroes_by_reversed_mask).
static void bidi_case(int B, int T, int M, int Lf, int Lb, bool tm, bool has_time, bool f_back, int mode, int b_back_arg = -1) {
    if (!has_time) T = 1;
    auto yf = rnd((size_t)B * T * M * Lf, 1), yb = rnd((size_t)B * T * M * Lb, 1);
    std::vector<unsigned char> mask((size_t)B * T);
    for (auto& m : mask) m = (rng() % 10) >= 3;
    bool b_back = b_back_arg < 0 ? !f_back : b_back_arg != 0;
    auto idx = [&](int b, int t, int m) { return tm ? ((size_t)t * B + b) * M + m : ((size_t)b * T + t) * M + m; };
    std::vector<double> F(yf.begin(), yf.end()), G(yb.begin(), yb.end());
    if (has_time) {
        for (int b = 0; b < B; ++b) for (int s = 0; s < T; ++s) for (int m = 0; m < M; ++m) {
            if (!mask[(size_t)b * T + (f_back ? T - 1 - s : s)]) for (int l = 0; l < Lf; ++l) F[idx(b, s, m) * Lf + l] = 0;
            if (!mask[(size_t)b * T + (b_back ? T - 1 - s : s)]) for (int l = 0; l < Lb; ++l) G[idx(b, s, m) * Lb + l] = 0;
        }
        std::vector<double> R = G;  // reverse the backward sequence in time
        for (int b = 0; b < B; ++b) for (int s = 0; s < T; ++s) for (int m = 0; m < M; ++m) for (int l = 0; l < Lb; ++l) R[idx(b, s, m) * Lb + l] = G[idx(b, T - 1 - s, m) * Lb + l];
        G = R;
    }
    size_t rows = (size_t)B * T * M;
    int W = mode == 0 ? Lf + Lb : Lf;
    std::vector<double> want(mode == 4 ? 2 * rows * Lf : rows * W);
    for (size_t r = 0; r < rows; ++r) for (int l = 0; l < W; ++l) {
        double f = l < Lf ? F[r * Lf + l] : 0, g = mode == 0 ? (l >= Lf ? G[r * Lb + l - Lf] : 0) : G[r * Lb + l];
        double v = mode == 0 ? (l < Lf ? f : g) : mode == 1 ? f + g : mode == 2 ? f * g : mode == 3 ? (f + g) / 2 : f;
        want[r * W + l] = v;
        if (mode == 4) want[rows * Lf + r * Lf + l] = g;
    }
    std::vector<float> out(want.size(), NAN);
    launch({3, 1, 1}, {64, 1, 1}, [&] { bidi_merge_f32(B, T, M, Lf, Lb, tm, has_time, yf.data(), yb.data(), mask.data(), 1, f_back, b_back, 1, 1, mode, out.data()); });
    char name[160];
    snprintf(name, sizeof name, "bidi B%d T%d M%d Lf%d Lb%d tm%d time%d fback%d bback%d mode%d", B, T, M, Lf, Lb, tm, has_time, f_back, b_back, mode);
    check(name, out, want);
}

// zero_output_for_mask on a dense output, in place: the sequence (either layout, the mask read
// reversed or in input order) or the last output (zeroed by the last processed step's mask).
static void zero_steps_case(int B, int T, int U, bool tm, bool has_time, bool reversed, int last) {
    auto y = rnd((size_t)B * (has_time ? T : 1) * U, 1);
    std::vector<unsigned char> mask((size_t)B * T);
    for (auto& m : mask) m = (rng() % 10) >= 4;
    std::vector<double> want(y.begin(), y.end());
    for (int b = 0; b < B; ++b) for (int t = 0; t < (has_time ? T : 1); ++t) {
        int s = has_time ? (reversed ? T - 1 - t : t) : last;
        size_t row = has_time ? (tm ? (size_t)t * B + b : (size_t)b * T + t) : (size_t)b;
        if (!mask[(size_t)b * T + s]) for (int j = 0; j < U; ++j) want[row * U + j] = 0;
    }
    launch({2, 1, 1}, {64, 1, 1}, [&] { zero_masked_steps_f32(B, T, U, tm, has_time, reversed, last, mask.data(), y.data()); });
    char name[120];
    snprintf(name, sizeof name, "zero masked steps B%d T%d U%d tm%d time%d reversed%d last%d", B, T, U, tm, has_time, reversed, last);
    check(name, y, want);
}

// The tensor-core projection (tc_gemm.cuh, WMMA emulated in kernels/emu/mma.h) on an A
// made of Wt values, against a double reference: exact products, f32 sums.
template <class Wt>
static void tc_gemm_case(int M, int N, int K, bool bias) {
    auto A = rnd((size_t)M * K, 1), Bw = rnd((size_t)K * N, 0.5), b = rnd(N, 0.5);
    stored<Wt>(A);  // A holds Wt values, as the host requires
    if constexpr (std::is_same_v<Wt, float>) {  // TF32: the operands as the tensor cores see them
        for (auto& v : A) v = nvcuda::wmma::__float_to_tf32(v);
        for (auto& v : Bw) v = nvcuda::wmma::__float_to_tf32(v);
    }
    auto Bs = stored<Wt>(Bw); auto bs = stored<Wt>(b);
    std::vector<double> want((size_t)M * N);
    for (int m = 0; m < M; ++m) for (int n = 0; n < N; ++n) {
        double a = bias ? b[n] : 0;
        for (int k = 0; k < K; ++k) a += (double)A[(size_t)m * K + k] * Bw[(size_t)k * N + n];
        want[(size_t)m * N + n] = a;
    }
    std::vector<float> C((size_t)M * N, NAN);
    launch({(unsigned)((N + 63) / 64), (unsigned)((M + 63) / 64), 1}, {128, 1, 1}, [&] {
        if constexpr (std::is_same_v<Wt, __half>) gemm_bias_tc_f16(M, N, K, A.data(), K, Bs.data(), N, bs.data(), bias, C.data(), N);
        else if constexpr (std::is_same_v<Wt, float>) gemm_bias_tc_f32(M, N, K, A.data(), K, Bw.data(), N, b.data(), bias, C.data(), N);
        else gemm_bias_tc_bf16(M, N, K, A.data(), K, Bs.data(), N, bs.data(), bias, C.data(), N);
    });
    char name[120];
    snprintf(name, sizeof name, "tc gemm %s M%d N%d K%d bias%d", Entries<Wt>::name, M, N, K, bias);
    check(name, C, want);
}

int main() {
    // The persistent kernels' shared memory layout: the same totals are asserted against
    // persistent_smem_bytes in src/cuda/dense.rs (the host sizes the launch with it).
    {
        const long long got[3] = {PersistSmem(persist::LSTM, 4, 1, 512, 4).total, PersistSmem(persist::GRU_BEFORE, 2, 5, 37, 8).total, PersistSmem(persist::SIMPLE, 4, 8, 64, 64).total};
        const long long want[3] = {49408, 12976, 27648};
        bool same = got[0] == want[0] && got[1] == want[1] && got[2] == want[2];
        printf("%s persistent shared memory sizes %lld %lld %lld\n", same ? "ok  " : "FAIL", got[0], got[1], got[2]);
        same ? ++passes : ++failures;
    }
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        dense_case(k, 3, 5, 4, 37, false, false, false, 0, 1, false);
        dense_case(k, 5, 4, 7, 33, true, true, true, 0, 2, false);
        dense_case(k, 6, 3, 3, 9, true, true, true, 3, 8, true);
        dense_case(k, 1, 2, 2, 70, false, true, false, 11, 5, true);
        dense_case(k, 4, 3, 5, 12, true, true, true, 13, 14, false);  // mish, leaky_relu
    }
    dense_case(LSTM, 9, 2, 65, 5, false, true, true, 10, 6, false);  // K of the GEMM > 64
    conv_case(2, 3, 7, 6, 3, 5, 3, 3, 1, 1, 1, 1, true, false, false, true);
    conv_case(2, 3, 7, 6, 3, 17, 3, 2, 1, 2, 1, 1, false, true, true, true);
    conv_case(1, 2, 6, 5, 2, 4, 2, 3, 2, 1, 1, 1, true, false, true, false);
    conv_case(2, 2, 7, 7, 2, 3, 3, 3, 1, 1, 2, 2, true, true, false, true);
    conv_case(3, 2, 9, 4, 1, 33, 4, 4, 1, 1, 1, 1, true, false, false, true);
    // f16 / bf16 weight and input storage (f32 states and math): against the same double
    // reference computed from the stored (rounded) weights and inputs.
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        dense_case<__half>(k, 5, 4, 7, 33, true, true, true, 0, 2, false);
        dense_case<__nv_bfloat16>(k, 6, 3, 3, 9, true, true, true, 3, 8, true);
    }
    conv_case<__half>(2, 3, 7, 6, 3, 17, 3, 2, 1, 2, 1, 1, false, true, true, true);
    // Persistent kernels: several blocks meeting at the grid barrier (J < U, the last block
    // partial), one block (J = U: no barrier), batch rows beyond one group of 4, half weights.
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        dense_case(k, 5, 4, 7, 37, true, true, true, 0, 2, false, 8);
        dense_case(k, 3, 5, 4, 21, false, false, false, 0, 1, true, 21);
        dense_case<__half>(k, 2, 3, 3, 19, true, true, true, 3, 8, false, 5);
    }
    dense_case(SIMPLE, 2, 3, 5, 600, false, true, true, 0, 0, false, 600);  // >= 512 columns
    // The tiled FFMA step (large batches): three row tiles (B = 70), partial unit tiles, f32
    // and bf16 weights, every kind.
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        dense_case(k, 70, 3, 5, 21, true, true, true, 0, 2, false, 0, false, 1);
        dense_case<__nv_bfloat16>(k, 5, 4, 17, 40, false, true, false, 5, 2, true, 0, false, 1);  // softsign, hard_sigmoid: bounded (an exploding pair makes f32 summation order visible)
    }
    // ConvLSTM2D's step on tensor cores: several row tiles, a partial 16-filter tile.
    conv_case<__half>(2, 3, 7, 6, 3, 17, 3, 2, 1, 2, 1, 1, false, true, true, true, true);
    conv_case<__nv_bfloat16>(3, 2, 9, 4, 1, 5, 3, 3, 1, 1, 1, 1, true, false, false, true, true);
    // TF32 step kernels (f32 weights, only when TF32 is allowed).
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE})
        dense_case<float>(k, 70, 3, 5, 21, true, true, true, 0, 2, false, 0, true);
    // Tensor-core step kernels: two row tiles (B > 64), a partial unit tile, every kind;
    // U = 21 stages element by element, U = 40 (a multiple of 8) with 16-byte loads fetched a
    // k step ahead (two k steps, the second partial).
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        dense_case<__half>(k, 70, 3, 5, 21, true, true, true, 0, 2, false, 0, true);
        dense_case<__half>(k, 70, 3, 5, 40, false, true, true, 0, 1, true, 0, true);
        dense_case<__nv_bfloat16>(k, 3, 4, 6, 40, false, true, false, 3, 8, true, 0, true);
    }

    // Wavefront across stacked cells: 2 and 3 cells of different widths (the grid covers the
    // widest), every kind, masks, go_backwards, initial states, both output layouts, the
    // tiled mapping (B > 64), half weights, the last cell without its sequence.
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        wave_case(k, 3, 5, 4, {37, 20, 45}, true, true, true, 0, 2, false, 0, true);
        wave_case(k, 2, 4, 6, {9, 33}, false, false, false, 3, 8, true, 0, false);
        wave_case(k, 70, 3, 5, {40, 17}, true, true, true, 0, 2, true, 1, true);  // 3 vs 2 unit tiles
        wave_case(k, 3, 4, 5, {12, 40}, false, true, false, 0, 1, false, 0, true, false);
        wave_case<__nv_bfloat16>(k, 4, 3, 3, {10, 12, 8}, false, true, true, 5, 2, false, 0, true);
    }
    wave_case<__half>(LSTM, 5, 6, 7, {16, 16, 16, 16}, true, true, false, 0, 1, true, 0, false);
    conv_case<__nv_bfloat16>(2, 2, 7, 7, 2, 3, 3, 3, 1, 1, 2, 2, true, false, false, true);
    for (int mode = 0; mode < 5; ++mode) {
        bidi_case(3, 4, 1, 5, mode == 0 ? 3 : 5, false, true, false, mode);
        bidi_case(2, 5, 3, 4, 4, mode % 2 == 1, true, mode == 2, mode);
        bidi_case(2, 3, 6, 2, mode == 0 ? 7 : 2, false, false, false, mode);
        bidi_case(3, 5, 2, 3, 3, mode == 3, true, false, mode, 0);  // unrolled backward layer
    }
    for (bool tm : {false, true})
        for (bool reversed : {false, true}) zero_steps_case(3, 5, 37, tm, true, reversed, 0);
    zero_steps_case(4, 6, 9, false, false, false, 0);
    zero_steps_case(4, 6, 9, false, false, false, 5);
    tc_gemm_case<__half>(70, 77, 45, true);
    tc_gemm_case<__nv_bfloat16>(130, 64, 96, false);
    tc_gemm_case<__half>(1, 5, 3, true);
    tc_gemm_case<float>(70, 77, 45, true);  // TF32
    // The `_rows` kernels (softmax 15 / log_softmax 16 over a gate's units): every kind, both
    // slots, units past the block's 256 threads, masks with fully masked steps, go_backwards,
    // initial states, time-major; an elementwise pair through them too; half weights. Last, so
    // that the cases above keep their random draws.
    for (Kind k : {LSTM, GRUA, GRUB, SIMPLE}) {
        // SimpleRNN's log_softmax feeds its unbounded output back: at U = 300 with initial
        // states it reaches -260 and f32 sums of 300 such terms leave the bound (against a
        // double reference), so it takes log_softmax at U = 37 and softmax at U = 300.
        dense_case(k, 3, 5, 4, 37, false, false, false, k == SIMPLE ? 16 : 15, 16, false, 0, false, 2);
        dense_case(k, 5, 4, 7, 300, true, true, true, k == SIMPLE ? 15 : 16, 15, true, 0, false, 2);
        dense_case(k, 2, 3, 3, 9, true, true, false, 15, 15, false, 0, false, 2);
        dense_case(k, 4, 3, 5, 12, false, true, true, 0, 2, false, 0, false, 2);
        dense_case<__nv_bfloat16>(k, 3, 3, 4, 20, false, true, true, 15, 1, false, 0, false, 2);
    }
    // ConvLSTM2D with row-wise activations (conv_lstm_preact + conv_lstm_rows_{last,first}):
    // along the filters and along the output columns, both slots, masks, go_backwards,
    // strides, lines longer than the block's 256 threads (300 filters; 300 columns), half
    // weights; and the generic step kernel with an elementwise pair.
    conv_case(2, 3, 7, 6, 3, 5, 3, 3, 1, 1, 1, 1, true, false, false, true, false, 15, 1, true);
    conv_case(2, 3, 7, 6, 3, 5, 3, 3, 1, 1, 1, 1, true, true, true, true, false, 15, 16, true);
    conv_case(2, 3, 7, 7, 2, 3, 3, 2, 2, 1, 1, 1, false, true, true, true, false, 0, 15, true);
    conv_case(1, 2, 3, 3, 2, 300, 1, 1, 1, 1, 1, 1, true, false, false, false, false, 15, 2, true);
    conv_case(1, 2, 1, 300, 1, 2, 1, 3, 1, 1, 1, 1, true, true, false, true, false, 16, 15, true);
    conv_case<__nv_bfloat16>(2, 2, 5, 5, 2, 4, 3, 3, 1, 1, 1, 1, true, true, false, true, false, 15, 1, true);
    conv_case(2, 3, 6, 5, 2, 4, 3, 3, 1, 1, 1, 1, true, false, true, true, false, 11, 5);
    printf("emulator: %d passed, %d failed\n", passes, failures);
    return failures != 0;
}
