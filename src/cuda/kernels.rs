//! Kernel names and activation ids: which `extern "C"` entry point of `kernels/*.cu` runs a
//! given cell with given activations.
//!
//! Activations are compile-time template parameters of the kernels. The pairs
//! `(activation, recurrent_activation)` = `(tanh, sigmoid)` (tf.keras 2.x's default) and
//! `(tanh, hard_sigmoid)` (Keras 2's and ConvLSTM2D's default) have their own instantiations;
//! single-activation kernels have `tanh`, `sigmoid`, `hard_sigmoid`, `relu` where they are used.
//! Every other combination runs the `_generic` instantiation, which reads the activation ids
//! ([`act_id`], the `Act` enum of `kernels/common.cuh`) from its trailing int arguments.

use crate::activation::Activation;

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
    }
}

/// The suffix of a kernel instantiated for the pair `(act, rec)`.
fn pair_suffix(act: Activation, rec: Activation) -> &'static str {
    match (act, rec) {
        (Activation::Tanh, Activation::Sigmoid) => "tanh_sigmoid",
        (Activation::Tanh, Activation::HardSigmoid) => "tanh_hard_sigmoid",
        _ => "generic",
    }
}

/// `lstm_step_f32_*`.
pub(crate) fn lstm_step(act: Activation, rec: Activation) -> String {
    format!("lstm_step_f32_{}", pair_suffix(act, rec))
}

/// `gru_after_step_f32_*` (reset_after = true).
pub(crate) fn gru_after_step(act: Activation, rec: Activation) -> String {
    format!("gru_after_step_f32_{}", pair_suffix(act, rec))
}

/// `gru_before_gates_f32_*` (reset_after = false, kernel A: z, r, r*h); takes `rec` only.
pub(crate) fn gru_before_gates(rec: Activation) -> String {
    let s = match rec {
        Activation::Sigmoid => "sigmoid",
        Activation::HardSigmoid => "hard_sigmoid",
        _ => "generic",
    };
    format!("gru_before_gates_f32_{s}")
}

/// `gru_before_update_f32_*` (reset_after = false, kernel B: candidate and update); takes
/// `act` only.
pub(crate) fn gru_before_update(act: Activation) -> String {
    let s = match act {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
        _ => "generic",
    };
    format!("gru_before_update_f32_{s}")
}

/// `simple_step_f32_*`; takes `act` only.
pub(crate) fn simple_step(act: Activation) -> String {
    let s = match act {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
        _ => "generic",
    };
    format!("simple_step_f32_{s}")
}

/// `conv_lstm_step_f32_*`.
pub(crate) fn conv_lstm_step(act: Activation, rec: Activation) -> String {
    format!("conv_lstm_step_f32_{}", pair_suffix(act, rec))
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
}

/// The largest grid.y / row-tile grid the kernels are launched with (they loop beyond it).
pub(crate) const MAX_GRID_Y: usize = 65535;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_pairs_have_their_own_kernels_and_the_rest_go_generic() {
        assert_eq!(
            lstm_step(Activation::Tanh, Activation::Sigmoid),
            "lstm_step_f32_tanh_sigmoid"
        );
        assert_eq!(
            conv_lstm_step(Activation::Tanh, Activation::HardSigmoid),
            "conv_lstm_step_f32_tanh_hard_sigmoid"
        );
        assert_eq!(
            gru_after_step(Activation::Relu, Activation::Sigmoid),
            "gru_after_step_f32_generic"
        );
        assert_eq!(simple_step(Activation::Selu), "simple_step_f32_generic");
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
        ];
        for (a, n) in names {
            let pat = format!("    {n} = {},", act_id(a));
            assert!(src.contains(&pat), "{pat:?} not in common.cuh");
        }
    }
}
