//! Layer configurations with Keras's argument names and Keras 2 defaults.
//!
//! Each layer config splits into the cell's arguments (`*CellConfig`) and the sequence
//! arguments every recurrent layer shares ([`SequenceOptions`]). Arguments that matter only for
//! training ([`TrainingOnly`]) are parsed and kept so that a config round-trips, but have no
//! effect on inference.
//!
//! Defaults: the `new` constructors use the Keras 2 signatures (`recurrent_activation =
//! hard_sigmoid`, `reset_after = false`); `tf_keras` constructors use tf.keras 2.x's later
//! defaults for LSTM / GRU (`sigmoid`, `reset_after = true`). A config imported from Keras always
//! names every argument, so import never depends on these defaults.

use crate::activation::Activation;
use crate::initializers::Initializer;

/// The arguments of the Keras `RNN` base layer, shared by every recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceOptions {
    /// Return the output of every step, `(batch, time, units)`, instead of the last one.
    pub return_sequences: bool,
    /// Also return the final states (after the output, in Keras's order).
    pub return_state: bool,
    /// Process the input (and mask) in reverse time order. Outputs stay in processing order:
    /// `output[:, t]` belongs to input step `T - 1 - t`.
    pub go_backwards: bool,
    /// Carry the final states of one call into the next call on the same layer object.
    pub stateful: bool,
    /// Keras's unrolled loop. It computes the same steps, with one difference Keras 2 has:
    /// with `zero_output_for_mask`, `go_backwards`, a mask and `return_sequences`, the
    /// unrolled loop zeroes output step `t` (processing order) where `mask[:, t]` is false,
    /// the mask read in input order, not reversed (see
    /// [`SequenceOptions::zeroes_by_reversed_mask`]).
    pub unroll: bool,
    /// Inputs and sequence outputs are `(time, batch, ...)` instead of `(batch, time, ...)`.
    pub time_major: bool,
    /// Masked steps output zeros instead of repeating the previous output (the states are kept
    /// either way). tf.keras's `RNN(..., zero_output_for_mask=True)`; its config carries the
    /// key only when it is true.
    pub zero_output_for_mask: bool,
}

impl SequenceOptions {
    /// With `zero_output_for_mask`, whether the sequence output's step `t` (processing order)
    /// is zeroed by `mask[:, T-1-t]` (true) or `mask[:, t]` (false). Keras 2's loop reverses
    /// the mask with the input under `go_backwards`, so the zeroed steps are the masked ones;
    /// its unrolled loop (`unroll=True`) zeroes the stacked outputs with the mask as given,
    /// in input order, which under `go_backwards` zeroes the mirrored steps instead
    /// (tf-keras 2.21 `backend.rnn`). The last output (`return_sequences=False`) is zeroed
    /// where the last processed step is masked, either way (without `return_sequences`
    /// tf-keras's unrolled loop fails with a shape error here when T > 1; this crate gives
    /// its while loop's answer).
    pub fn zeroes_by_reversed_mask(&self) -> bool {
        self.go_backwards && !self.unroll
    }
}

/// Arguments that only matter for training. Parsed, kept, and ignored at inference.
///
/// Regularizers and constraints are kept as the JSON Keras wrote for them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingOnly {
    /// Input dropout rate (training only).
    pub dropout: f32,
    /// Recurrent dropout rate (training only).
    pub recurrent_dropout: f32,
    /// `kernel_regularizer` as Keras serialised it.
    pub kernel_regularizer: Option<serde_json::Value>,
    /// `recurrent_regularizer` as Keras serialised it.
    pub recurrent_regularizer: Option<serde_json::Value>,
    /// `bias_regularizer` as Keras serialised it.
    pub bias_regularizer: Option<serde_json::Value>,
    /// `activity_regularizer` as Keras serialised it.
    pub activity_regularizer: Option<serde_json::Value>,
    /// `kernel_constraint` as Keras serialised it.
    pub kernel_constraint: Option<serde_json::Value>,
    /// `recurrent_constraint` as Keras serialised it.
    pub recurrent_constraint: Option<serde_json::Value>,
    /// `bias_constraint` as Keras serialised it.
    pub bias_constraint: Option<serde_json::Value>,
}

/// The three weight initializers of a recurrent cell, used only when a layer is built without
/// trained weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializers {
    /// For `kernel`; Keras default `glorot_uniform`.
    pub kernel_initializer: Initializer,
    /// For `recurrent_kernel`; Keras default `orthogonal`.
    pub recurrent_initializer: Initializer,
    /// For `bias`; Keras default `zeros`.
    pub bias_initializer: Initializer,
}

impl Default for Initializers {
    fn default() -> Self {
        Initializers {
            kernel_initializer: Initializer::glorot_uniform(),
            recurrent_initializer: Initializer::orthogonal(),
            bias_initializer: Initializer::zeros(),
        }
    }
}

/// `SimpleRNNCell` arguments: `h' = activation(x W + b + h U)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleRNNCellConfig {
    /// Output and state width.
    pub units: usize,
    /// Default `tanh`.
    pub activation: Activation,
    /// Default `true`.
    pub use_bias: bool,
    /// Initializers for building without trained weights.
    pub initializers: Initializers,
    /// Training-only arguments (no effect here).
    pub training: TrainingOnly,
}

impl SimpleRNNCellConfig {
    /// Keras 2 defaults with `units`.
    pub fn new(units: usize) -> Self {
        SimpleRNNCellConfig {
            units,
            activation: Activation::Tanh,
            use_bias: true,
            initializers: Initializers::default(),
            training: TrainingOnly::default(),
        }
    }
}

/// `GRUCell` arguments. Gates `[z | r | h]`; see [`crate::layers::GRUCell`] for the equations.
#[derive(Debug, Clone, PartialEq)]
pub struct GRUCellConfig {
    /// Output and state width.
    pub units: usize,
    /// Candidate activation; default `tanh`.
    pub activation: Activation,
    /// Gate activation; Keras 2 default `hard_sigmoid` (tf.keras 2.x: `sigmoid`).
    pub recurrent_activation: Activation,
    /// Default `true`.
    pub use_bias: bool,
    /// Initializers for building without trained weights.
    pub initializers: Initializers,
    /// `false` (Keras 2 default): the reset gate multiplies `h` before the recurrent matmul
    /// (1406.1078v3). `true`: after it, with separate input and recurrent biases (1406.1078v1,
    /// cuDNN's and PyTorch's GRU; tf.keras 2.x default).
    pub reset_after: bool,
    /// Accepted (1 or 2); does not change results.
    pub implementation: u8,
    /// Training-only arguments (no effect here).
    pub training: TrainingOnly,
}

impl GRUCellConfig {
    /// Keras 2 (seed signature) defaults with `units`: `hard_sigmoid`, `reset_after = false`.
    pub fn new(units: usize) -> Self {
        GRUCellConfig {
            units,
            activation: Activation::Tanh,
            recurrent_activation: Activation::HardSigmoid,
            use_bias: true,
            initializers: Initializers::default(),
            reset_after: false,
            implementation: 1,
            training: TrainingOnly::default(),
        }
    }

    /// tf.keras 2.x defaults: `sigmoid`, `reset_after = true`, `implementation = 2`.
    pub fn tf_keras(units: usize) -> Self {
        GRUCellConfig {
            recurrent_activation: Activation::Sigmoid,
            reset_after: true,
            implementation: 2,
            ..Self::new(units)
        }
    }
}

/// `LSTMCell` arguments. Gates `[i | f | c | o]`; see [`crate::layers::LSTMCell`].
#[derive(Debug, Clone, PartialEq)]
pub struct LSTMCellConfig {
    /// Output and state width.
    pub units: usize,
    /// Cell-input and output activation; default `tanh`.
    pub activation: Activation,
    /// Gate activation; Keras 2 default `hard_sigmoid` (tf.keras 2.x: `sigmoid`).
    pub recurrent_activation: Activation,
    /// Default `true`.
    pub use_bias: bool,
    /// Initializers for building without trained weights.
    pub initializers: Initializers,
    /// Initialise the forget-gate bias to ones (initialisation only). Default `true`.
    pub unit_forget_bias: bool,
    /// Accepted (1 or 2); does not change results.
    pub implementation: u8,
    /// Training-only arguments (no effect here).
    pub training: TrainingOnly,
}

impl LSTMCellConfig {
    /// Keras 2 (seed signature) defaults with `units`: `hard_sigmoid`.
    pub fn new(units: usize) -> Self {
        LSTMCellConfig {
            units,
            activation: Activation::Tanh,
            recurrent_activation: Activation::HardSigmoid,
            use_bias: true,
            initializers: Initializers::default(),
            unit_forget_bias: true,
            implementation: 1,
            training: TrainingOnly::default(),
        }
    }

    /// tf.keras 2.x defaults: `sigmoid`, `implementation = 2`.
    pub fn tf_keras(units: usize) -> Self {
        LSTMCellConfig {
            recurrent_activation: Activation::Sigmoid,
            implementation: 2,
            ..Self::new(units)
        }
    }
}

/// Convolution padding of `ConvLSTM2D`'s input convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding (Keras default).
    #[default]
    Valid,
    /// Output size `ceil(in / stride)`; an odd total puts the extra row / column at the
    /// bottom / right, as TensorFlow does.
    Same,
}

/// Where the channel axis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// `(batch, time, rows, cols, channels)` (Keras default).
    #[default]
    ChannelsLast,
    /// `(batch, time, channels, rows, cols)`.
    ChannelsFirst,
}

/// `ConvLSTM2D` arguments.
///
/// Gates `[i | f | c | o]` as in LSTM, with convolutions in place of matmuls. The input
/// convolution uses `strides`, `padding` and `dilation_rate`; the recurrent convolution is
/// always stride 1, `same`, no dilation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLSTM2DConfig {
    /// Number of output channels (the state's channels).
    pub filters: usize,
    /// `(rows, cols)` of both convolution kernels.
    pub kernel_size: (usize, usize),
    /// Input-convolution strides; default `(1, 1)`.
    pub strides: (usize, usize),
    /// Input-convolution padding; default `valid`.
    pub padding: Padding,
    /// Default `channels_last`.
    pub data_format: DataFormat,
    /// Input-convolution dilation; default `(1, 1)`. Strides and dilation both != 1 is an error.
    pub dilation_rate: (usize, usize),
    /// Default `tanh`.
    pub activation: Activation,
    /// Default `hard_sigmoid` (Keras 2 and tf.keras 2.x alike).
    pub recurrent_activation: Activation,
    /// Default `true`.
    pub use_bias: bool,
    /// Initializers for building without trained weights.
    pub initializers: Initializers,
    /// Initialise the forget-gate bias to ones (initialisation only). Default `true`.
    pub unit_forget_bias: bool,
    /// Training-only arguments (no effect here).
    pub training: TrainingOnly,
    /// The sequence arguments. `time_major` and `zero_output_for_mask` are ignored, as
    /// Keras's ConvRNN2D ignores them (inputs are always `(batch, time, ...)`; masked steps
    /// repeat the previous output).
    pub sequence: SequenceOptions,
}

impl ConvLSTM2DConfig {
    /// Keras 2 defaults with `filters` and `kernel_size`.
    pub fn new(filters: usize, kernel_size: (usize, usize)) -> Self {
        ConvLSTM2DConfig {
            filters,
            kernel_size,
            strides: (1, 1),
            padding: Padding::Valid,
            data_format: DataFormat::ChannelsLast,
            dilation_rate: (1, 1),
            activation: Activation::Tanh,
            recurrent_activation: Activation::HardSigmoid,
            use_bias: true,
            initializers: Initializers::default(),
            unit_forget_bias: true,
            training: TrainingOnly::default(),
            sequence: SequenceOptions::default(),
        }
    }
}

/// `CuDNNGRU` / `CuDNNLSTM` arguments (cuDNN's fixed math: sigmoid gates, tanh).
#[derive(Debug, Clone, PartialEq)]
pub struct CuDNNConfig {
    /// Output and state width.
    pub units: usize,
    /// Initializers for building without trained weights.
    pub initializers: Initializers,
    /// `CuDNNLSTM` only: initialise the forget-gate bias to ones. Default `true`.
    pub unit_forget_bias: bool,
    /// Regularizers and constraints (no effect here).
    pub training: TrainingOnly,
    /// The sequence arguments (`return_sequences`, `return_state`, `go_backwards`, `stateful`,
    /// `time_major`).
    pub sequence: SequenceOptions,
}

impl CuDNNConfig {
    /// Keras 2 defaults with `units`.
    pub fn new(units: usize) -> Self {
        CuDNNConfig {
            units,
            initializers: Initializers::default(),
            unit_forget_bias: true,
            training: TrainingOnly::default(),
            sequence: SequenceOptions::default(),
        }
    }
}

/// The configuration of one built-in cell.
#[derive(Debug, Clone, PartialEq)]
pub enum CellConfig {
    /// `SimpleRNNCell`.
    SimpleRNN(SimpleRNNCellConfig),
    /// `GRUCell`.
    GRU(GRUCellConfig),
    /// `LSTMCell`.
    LSTM(LSTMCellConfig),
}

impl CellConfig {
    /// The cell's `units`.
    pub fn units(&self) -> usize {
        match self {
            CellConfig::SimpleRNN(c) => c.units,
            CellConfig::GRU(c) => c.units,
            CellConfig::LSTM(c) => c.units,
        }
    }
}
