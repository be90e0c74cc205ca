//! Kernel names and activation ids: which `extern "C"` entry point of `kernels/*.cu` runs a
//! given cell with given activations.
//!
//! Activations are compile-time template parameters of the kernels. The pairs
//! `(activation, recurrent_activation)` = `(tanh, sigmoid)` (tf.keras 2.x's default) and
//! `(tanh, hard_sigmoid)` (Keras 2's and ConvLSTM2D's default) have their own instantiations;
//! single-activation kernels have `tanh`, `sigmoid`, `hard_sigmoid`, `relu` where they are used.
//! Every other combination runs the `_generic` instantiation, which reads the activation ids
//! ([`act_id`], the `Act` enum of `kernels/common.cuh`) from its trailing int arguments.
//!
//! Every kernel exists for the three weight storage types, named in the middle:
//! `lstm_step_f32_tanh_sigmoid`, `lstm_step_f16_tanh_sigmoid`, `lstm_step_bf16_tanh_sigmoid`.

use crate::activation::Activation;
use crate::keras::StorageType;

/// The id of `a` in `kernels/common.cuh`'s `Act` enum. Keep the two in sync.
pub(crate) fn act_id(a: Activation) -> i32 {
    match a {
        Activation::Tanh => 0,
        Activation::Sigmoid => 1,
        Activation::HardSigmoid => 2,
        Activation::Relu => 3,
        Activation::Linear => 4,
        Activation::Softsign => 5,
        Activation::Softplus => 6,
        Activation::Elu => 7,
        Activation::Selu => 8,
        Activation::Exponential => 9,
        Activation::Swish => 10,
        Activation::Gelu => 11,
        Activation::Relu6 => 12,
        Activation::Mish => 13,
        Activation::LeakyRelu => 14,
        Activation::Softmax => 15,
        Activation::LogSoftmax => 16,
    }
}

/// Floats of shared memory a `_rows` kernel holds for one row's gate values (`gates * units`,
/// ConvLSTM2D `4 * line` must not exceed it): `rows::MAX_FLOATS` in kernels/common.cuh.
pub(crate) const ROWS_MAX_FLOATS: usize = 8192;

/// Threads per block of every `_rows` kernel (`rows::THREADS` in kernels/common.cuh: their
/// block reductions assume exactly this many).
pub(crate) const ROWS_THREADS: u32 = 256;

/// `conv_lstm_preact_{dt}`: ConvLSTM2D's recurrent convolution added into the step's xp slice
/// (row-wise activations; kernels/conv_lstm.cu).
pub(crate) fn conv_lstm_preact(dt: StorageType) -> String {
    format!("conv_lstm_preact_{}", dt.name())
}

/// `conv_lstm_rows_{dt}_{last,first}`: ConvLSTM2D's gates with row-wise activations over the
/// filters (channels_last) or the output columns (channels_first).
pub(crate) fn conv_lstm_rows(dt: StorageType, channels_first: bool) -> String {
    let axis = if channels_first { "first" } else { "last" };
    format!("conv_lstm_rows_{}_{axis}", dt.name())
}

/// The `_rows` variant of a step kernel family (`lstm_step`, `gru_after_step`,
/// `gru_before_gates`, `gru_before_update`, `simple_step`): one block per batch row, for
/// cells with a row-wise activation (softmax, log_softmax; kernels/rnn.cu).
pub(crate) fn rows_step(family: &str, dt: StorageType) -> String {
    format!("{family}_{}_rows", dt.name())
}

/// The suffix of a kernel instantiated for the pair `(act, rec)`.
fn pair_suffix(act: Activation, rec: Activation) -> &'static str {
    match (act, rec) {
        (Activation::Tanh, Activation::Sigmoid) => "tanh_sigmoid",
        (Activation::Tanh, Activation::HardSigmoid) => "tanh_hard_sigmoid",
        _ => "generic",
    }
}

/// `gemm_bias_{dt}` (the input projection; f32 input, weights in `dt`).
pub(crate) fn gemm_bias(dt: StorageType) -> String {
    format!("gemm_bias_{}", dt.name())
}

/// The tensor-core variant of a step kernel's name: `lstm_step_f16_tanh_sigmoid` ->
/// `lstm_step_tc_f16_tanh_sigmoid` (rnn.cu's `*_TC_SET`; f32 = TF32).
pub(crate) fn tensor_core(name: &str, dt: StorageType) -> String {
    let n = dt.name();
    name.replacen(&format!("_{n}_"), &format!("_tc_{n}_"), 1)
}

/// The wavefront variant of a step kernel's name: `lstm_step_f32_tanh_sigmoid` ->
/// `lstm_step_wave_f32_tanh_sigmoid` (rnn.cu's `WAVE_SETS`; see `src/cuda/wave.rs`).
pub(crate) fn wavefront(name: &str, dt: StorageType) -> String {
    let n = dt.name();
    name.replacen(&format!("_{n}_"), &format!("_wave_{n}_"), 1)
}

/// `gemm_bias_wave_{dt}`: the projections of a wavefront diagonal's cells after the first.
pub(crate) fn gemm_bias_wave(dt: StorageType) -> String {
    format!("gemm_bias_wave_{}", dt.name())
}

/// `gemm_bias_tc_{dt}`: the projection on tensor cores (`kernels/tc_gemm.cuh`; f32 = TF32).
pub(crate) fn gemm_bias_tc(dt: StorageType) -> String {
    format!("gemm_bias_tc_{}", dt.name())
}

/// `conv_input_tc_{dt}`: ConvLSTM2D's input convolution on tensor cores (f32 = TF32).
pub(crate) fn conv_input_tc(dt: StorageType) -> String {
    format!("conv_input_tc_{}", dt.name())
}

/// `conv_input_{dt}` (ConvLSTM2D's input convolution; f32 input, weights in `dt`).
pub(crate) fn conv_input(dt: StorageType) -> String {
    format!("conv_input_{}", dt.name())
}

/// `lstm_step_{dt}_*`.
pub(crate) fn lstm_step(dt: StorageType, act: Activation, rec: Activation) -> String {
    format!("lstm_step_{}_{}", dt.name(), pair_suffix(act, rec))
}

/// `gru_after_step_{dt}_*` (reset_after = true).
pub(crate) fn gru_after_step(dt: StorageType, act: Activation, rec: Activation) -> String {
    format!("gru_after_step_{}_{}", dt.name(), pair_suffix(act, rec))
}

/// `gru_before_gates_{dt}_*` (reset_after = false, kernel A: z, r, r*h); takes `rec` only.
pub(crate) fn gru_before_gates(dt: StorageType, rec: Activation) -> String {
    let s = match rec {
        Activation::Sigmoid => "sigmoid",
        Activation::HardSigmoid => "hard_sigmoid",
        _ => "generic",
    };
    format!("gru_before_gates_{}_{s}", dt.name())
}

/// `gru_before_update_{dt}_*` (reset_after = false, kernel B: candidate and update); takes
/// `act` only.
pub(crate) fn gru_before_update(dt: StorageType, act: Activation) -> String {
    let s = match act {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
        _ => "generic",
    };
    format!("gru_before_update_{}_{s}", dt.name())
}

/// `simple_step_{dt}_*`; takes `act` only.
pub(crate) fn simple_step(dt: StorageType, act: Activation) -> String {
    let s = match act {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
        _ => "generic",
    };
    format!("simple_step_{}_{s}", dt.name())
}

/// `persistent_{lstm,gru_after,gru_before,simple}_{dt}_*` (kernels/rnn_persistent.cu).
pub(crate) fn persistent(
    kind: crate::cuda::dense::CellKind,
    dt: StorageType,
    act: Activation,
    rec: Activation,
) -> String {
    use crate::cuda::dense::CellKind;
    let (fam, suffix) = match kind {
        CellKind::Lstm => ("lstm", pair_suffix(act, rec)),
        CellKind::GruAfter => ("gru_after", pair_suffix(act, rec)),
        CellKind::GruBefore => ("gru_before", pair_suffix(act, rec)),
        CellKind::Simple => (
            "simple",
            match act {
                Activation::Tanh => "tanh",
                Activation::Relu => "relu",
                _ => "generic",
            },
        ),
    };
    format!("persistent_{fam}_{}_{suffix}", dt.name())
}

/// `conv_lstm_step_{dt}_*`.
pub(crate) fn conv_lstm_step(dt: StorageType, act: Activation, rec: Activation) -> String {
    format!("conv_lstm_step_{}_{}", dt.name(), pair_suffix(act, rec))
}

/// Launch geometry of the dense step kernels (`step::` in `kernels/rnn.cu`).
pub(crate) mod step {
    /// Units per block (one per lane).
    pub const LANES: u32 = 32;
    /// Warps per block.
    pub const WARPS: u32 = 8;
    /// Batch rows per pass of a block.
    pub const ROWS: usize = 4;
}

/// Tile sizes of the GEMM and ConvLSTM2D step kernels (`gemm::` / `cstep::`).
pub(crate) mod tile {
    /// Rows per GEMM tile.
    pub const BM: usize = 64;
    /// Columns per GEMM tile.
    pub const BN: usize = 64;
    /// Filters per ConvLSTM2D step tile.
    pub const BF: usize = 16;
    /// Threads per block.
    pub const THREADS: u32 = 256;
    /// Threads per block of the tensor-core GEMM (`tcg::THREADS`; same 64 x 64 tile) and of
    /// the tensor-core step kernels (`tcs::THREADS`).
    pub const TC_THREADS: u32 = 128;
    /// Batch rows per block of the tiled FFMA step (`tstep::BM`).
    pub const TILED_ROWS: usize = 32;
    /// Units per block of the tiled FFMA step (`tstep::UNITS`).
    pub const TILED_UNITS: usize = 16;
    /// Batch rows per block of the tensor-core step kernels (`tcs::BM`).
    pub const TC_ROWS: usize = 64;
    /// Units per block of the tensor-core step kernels (`tcs::UNITS`).
    pub const TC_UNITS: usize = 16;
}

/// The largest grid.y / row-tile grid the kernels are launched with (they loop beyond it).
pub(crate) const MAX_GRID_Y: usize = 65535;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_pairs_have_their_own_kernels_and_the_rest_go_generic() {
        use StorageType::{BF16, F16, F32};
        assert_eq!(
            lstm_step(F32, Activation::Tanh, Activation::Sigmoid),
            "lstm_step_f32_tanh_sigmoid"
        );
        assert_eq!(
            conv_lstm_step(BF16, Activation::Tanh, Activation::HardSigmoid),
            "conv_lstm_step_bf16_tanh_hard_sigmoid"
        );
        assert_eq!(
            gru_after_step(F16, Activation::Relu, Activation::Sigmoid),
            "gru_after_step_f16_generic"
        );
        assert_eq!(
            simple_step(F32, Activation::Selu),
            "simple_step_f32_generic"
        );
        assert_eq!(gemm_bias(BF16), "gemm_bias_bf16");
    }

    #[test]
    fn every_kernel_name_the_host_asks_for_is_an_entry_point_of_the_sources() {
        use crate::cuda::dense::CellKind;
        // The names are built at run time: check each against the `extern "C"` entries that
        // the kernel sources instantiate (the macro sets expand `NAME_##DT##_suffix`).
        let rnn = include_str!("../../kernels/rnn.cu");
        let conv = include_str!("../../kernels/conv_lstm.cu");
        let acts = [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::HardSigmoid,
            Activation::Relu,
            Activation::Selu,
        ];
        for dt in [StorageType::F32, StorageType::F16, StorageType::BF16] {
            let n = dt.name();
            for a in acts {
                for r in acts {
                    for (name, set, src) in [
                        (lstm_step(dt, a, r), "LSTM_SET", rnn),
                        (gru_after_step(dt, a, r), "GRU_AFTER_SET", rnn),
                        (gru_before_gates(dt, r), "GRU_GATES_SET", rnn),
                        (gru_before_update(dt, a), "GRU_UPDATE_SET", rnn),
                        (simple_step(dt, a), "SIMPLE_SET", rnn),
                        (conv_lstm_step(dt, a, r), "CONV_STEP_SET", conv),
                    ] {
                        // `lstm_step_f16_tanh_sigmoid` is the `lstm_step_##DT##_tanh_sigmoid`
                        // entry of the set `LSTM_SET`, instantiated as `LSTM_SET(f16, __half)`.
                        let generic = name.replacen(&format!("_{n}_"), "_##DT##_", 1);
                        assert!(
                            src.contains(&generic),
                            "{name}: `{generic}` not in the source"
                        );
                        let inst = format!("\n{set}({n}, ");
                        assert!(
                            src.contains(&inst),
                            "{name}: `{set}({n}, ...)` not instantiated"
                        );
                        if !name.starts_with("conv") {
                            // The wavefront variant: `lstm_step_wave_##DT##_...` in WAVE_SETS.
                            let w = wavefront(&name, dt);
                            let generic = w.replacen(&format!("_wave_{n}_"), "_wave_##DT##_", 1);
                            assert!(src.contains(&generic), "{w}: `{generic}` not in the source");
                            assert!(
                                src.contains(&format!("\nWAVE_SETS({n}, ")),
                                "{w}: `WAVE_SETS({n}, ...)` not instantiated"
                            );
                        }
                        {
                            // The tensor-core variant (TF32 for f32): `lstm_step_tc_##DT##_...`
                            // in LSTM_TC_SET.
                            let tc = tensor_core(&name, dt);
                            let generic = tc.replacen(&format!("_tc_{n}_"), "_tc_##DT##_", 1);
                            let tc_set = set.replacen("_SET", "_TC_SET", 1);
                            assert!(
                                src.contains(&generic),
                                "{tc}: `{generic}` not in the source"
                            );
                            assert!(
                                src.contains(&format!("\n{tc_set}({n}, ")),
                                "{tc}: `{tc_set}({n}, ...)` not instantiated"
                            );
                        }
                    }
                }
            }
            // The persistent kernels: `persistent_##FAM##_##DT##_<suffix>` in PERSIST_PAIRS
            // (lstm, gru_after, gru_before) or PERSIST_SET (simple), for every dtype.
            let persist = include_str!("../../kernels/rnn_persistent.cu");
            assert!(persist.contains(&format!("\nPERSIST_SET({n}, ")));
            for kind in [
                CellKind::Lstm,
                CellKind::GruAfter,
                CellKind::GruBefore,
                CellKind::Simple,
            ] {
                for a in acts {
                    for r in acts {
                        let name = persistent(kind, dt, a, r);
                        let generic = name.replacen(&format!("_{n}_"), "_##DT##_", 1);
                        let fam = match kind {
                            CellKind::Lstm => "lstm",
                            CellKind::GruAfter => "gru_after",
                            CellKind::GruBefore => "gru_before",
                            CellKind::Simple => "simple",
                        };
                        let in_pairs = generic.replacen(
                            &format!("persistent_{fam}_"),
                            "persistent_##FAM##_",
                            1,
                        );
                        let found = if kind == CellKind::Simple {
                            persist.contains(&generic)
                        } else {
                            persist.contains(&in_pairs)
                                && persist.contains(&format!("PERSIST_PAIRS({fam}, "))
                        };
                        assert!(found, "{name} is not instantiated in rnn_persistent.cu");
                    }
                }
            }
            {
                let tc = gemm_bias_tc(dt);
                assert!(rnn.contains(&format!("({tc},")), "{tc} not instantiated");
                let tc = conv_input_tc(dt);
                assert!(conv.contains(&format!("({tc},")), "{tc} not instantiated");
            }
            for name in [gemm_bias(dt), gemm_bias_wave(dt), conv_input(dt)] {
                let src = if name.starts_with("gemm") { rnn } else { conv };
                assert!(
                    src.contains(&format!("({name},")),
                    "{name} not instantiated"
                );
            }
        }
    }

    #[test]
    fn row_wise_cells_name_rows_entry_points_and_the_shared_memory_bound_matches() {
        let rnn = include_str!("../../kernels/rnn.cu");
        for family in [
            "lstm_step",
            "gru_after_step",
            "gru_before_gates",
            "gru_before_update",
            "simple_step",
        ] {
            assert_eq!(
                rows_step(family, StorageType::BF16),
                format!("{family}_bf16_rows")
            );
            let entry = format!("{family}_##DT##_rows(");
            assert!(rnn.contains(&entry), "{entry} not in ROWS_SET");
        }
        for (dt, w) in [
            ("f32", "float"),
            ("f16", "__half"),
            ("bf16", "__nv_bfloat16"),
        ] {
            assert!(
                rnn.contains(&format!("ROWS_SET({dt}, {w})")),
                "ROWS_SET({dt})"
            );
        }
        let conv = include_str!("../../kernels/conv_lstm.cu");
        for (dt, w) in [
            ("f32", "float"),
            ("f16", "__half"),
            ("bf16", "__nv_bfloat16"),
        ] {
            assert!(
                conv.contains(&format!("CONV_ROWS_SET({dt}, {w})")),
                "CONV_ROWS_SET({dt})"
            );
        }
        for name in [
            conv_lstm_preact(StorageType::F16).replace("_f16", "_##DT"),
            conv_lstm_rows(StorageType::F32, false).replace("_f32_", "_##DT##_"),
            conv_lstm_rows(StorageType::BF16, true).replace("_bf16_", "_##DT##_"),
        ] {
            assert!(
                conv.contains(&format!("{name}(")),
                "{name} not in CONV_ROWS_SET"
            );
        }
        let common = include_str!("../../kernels/common.cuh");
        let ns = &common[common.find("namespace rows {").expect("namespace rows")..];
        let ns = &ns[..ns.find('}').unwrap_or(ns.len())];
        for decl in [
            format!("constexpr int MAX_FLOATS = {ROWS_MAX_FLOATS};"),
            format!("constexpr int THREADS = {ROWS_THREADS};"),
        ] {
            assert!(
                ns.contains(&decl),
                "{decl} not in common.cuh's namespace rows"
            );
        }
    }

    #[test]
    fn activation_ids_match_the_act_enum_of_common_cuh() {
        // The enum in kernels/common.cuh, parsed from the source: `ACT_<NAME> = <id>,`.
        let src = include_str!("../../kernels/common.cuh");
        let names = [
            (Activation::Tanh, "ACT_TANH"),
            (Activation::Sigmoid, "ACT_SIGMOID"),
            (Activation::HardSigmoid, "ACT_HARD_SIGMOID"),
            (Activation::Relu, "ACT_RELU"),
            (Activation::Linear, "ACT_LINEAR"),
            (Activation::Softsign, "ACT_SOFTSIGN"),
            (Activation::Softplus, "ACT_SOFTPLUS"),
            (Activation::Elu, "ACT_ELU"),
            (Activation::Selu, "ACT_SELU"),
            (Activation::Exponential, "ACT_EXPONENTIAL"),
            (Activation::Swish, "ACT_SWISH"),
            (Activation::Gelu, "ACT_GELU"),
            (Activation::Relu6, "ACT_RELU6"),
            (Activation::Mish, "ACT_MISH"),
            (Activation::LeakyRelu, "ACT_LEAKY_RELU"),
            (Activation::Softmax, "ACT_SOFTMAX"),
            (Activation::LogSoftmax, "ACT_LOG_SOFTMAX"),
        ];
        for (a, n) in names {
            let pat = format!("    {n} = {},", act_id(a));
            assert!(src.contains(&pat), "{pat:?} not in common.cuh");
        }
    }
}
