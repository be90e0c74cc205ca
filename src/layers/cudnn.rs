//! `CuDNNGRU` and `CuDNNLSTM`: cuDNN's math (sigmoid gates, tanh, reset-after GRU) with
//! cuDNN's weight layout, run on any device through the equivalent plain cell.

use crate::activation::Activation;
use crate::config::{CuDNNConfig, GRUCellConfig, LSTMCellConfig, SequenceOptions};
use crate::layers::cells::{GRUCell, LSTMCell};
use crate::layers::core::{CallArgs, Output};
use crate::layers::rnn::{LSTM as PlainLSTM, RNN};
use crate::weights;
use crate::{Error, Result};
use ndarray::{Array1, Array2, ArrayD, ArrayView3};

fn refuse_mask(args: &CallArgs, class: &str) -> Result<()> {
    if args.mask.is_some() {
        return Err(Error::invalid(
            "mask",
            format!("{class} does not support masking (Keras raises \"Masking is not supported for CuDNN RNNs\"); use LSTM / GRU(reset_after=True) with the converted weights"),
        ));
    }
    Ok(())
}

/// Keras `CuDNNLSTM`: an LSTM with `sigmoid` gates and `tanh`, gates `[i | f | c | o]`.
///
/// Weights as Keras's `CuDNNLSTM.get_weights()`: `kernel (input_dim, 4u)` and
/// `recurrent_kernel (u, 4u)` in cuDNN's per-gate layout (see [`crate::weights`]), and
/// `bias (8u,)` = `[input i, f, c, o | recurrent i, f, c, o]`. Masks are refused, as in Keras.
#[derive(Debug)]
pub struct CuDNNLSTM {
    config: CuDNNConfig,
    cudnn_weights: [ArrayD<f32>; 3],
    rnn: RNN,
}

impl CuDNNLSTM {
    /// From weights in the CuDNN layout.
    pub fn new(
        config: CuDNNConfig,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Array1<f32>,
    ) -> Result<Self> {
        let u = config.units;
        let k = weights::cudnn_kernel_to_plain(kernel.view(), 4, u)?;
        let r = weights::transpose_recurrent_gates(recurrent_kernel.view(), 4, u)?;
        let b = weights::cudnn_lstm_bias_to_plain(bias.view(), u)?;
        let cell = LSTMCell::new(Self::plain_cell_config(&config), k, r, Some(b))?;
        Ok(CuDNNLSTM {
            rnn: RNN::new(cell, config.sequence),
            config,
            cudnn_weights: [
                kernel.into_dyn(),
                recurrent_kernel.into_dyn(),
                bias.into_dyn(),
            ],
        })
    }

    /// With weights from the config's initializers (deterministic in `seed`); with
    /// `unit_forget_bias` the recurrent forget bias block is ones, as Keras does.
    pub fn build(config: CuDNNConfig, input_dim: usize, seed: u64) -> Result<Self> {
        let u = config.units;
        let plain = LSTMCell::build(
            LSTMCellConfig {
                use_bias: false,
                ..Self::plain_cell_config(&config)
            },
            input_dim,
            seed,
        )?;
        let inits = &config.initializers;
        let mut bias: Array1<f32> = inits
            .bias_initializer
            .generate(&[8 * u], seed * 8 + 3)?
            .into_dimensionality()
            .map_err(|e| Error::invalid("bias", e.to_string()))?;
        if config.unit_forget_bias {
            bias.slice_mut(ndarray::s![5 * u..6 * u]).fill(1.0);
        }
        let k = weights::plain_kernel_to_cudnn(plain.kernel.view(), 4, u)?;
        let r = weights::transpose_recurrent_gates(plain.recurrent_kernel.view(), 4, u)?;
        Self::new(config, k, r, bias)
    }

    fn plain_cell_config(config: &CuDNNConfig) -> LSTMCellConfig {
        LSTMCellConfig {
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            use_bias: true,
            initializers: config.initializers.clone(),
            unit_forget_bias: config.unit_forget_bias,
            ..LSTMCellConfig::new(config.units)
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CuDNNConfig {
        &self.config
    }

    /// Keras's `get_weights()` in the CuDNN layout: `[kernel, recurrent_kernel, bias (8u,)]`.
    pub fn weights(&self) -> Vec<ArrayD<f32>> {
        self.cudnn_weights.to_vec()
    }

    /// The equivalent plain `LSTM(sigmoid, tanh)`, as Keras's `load_weights` converts it.
    pub fn to_plain(&self, options: SequenceOptions) -> Result<PlainLSTM> {
        match self.rnn.cells().first() {
            Some(crate::layers::AnyCell::LSTM(c)) => Ok(PlainLSTM::from_cell(c.clone(), options)),
            _ => Err(Error::invalid("CuDNNLSTM", "internal: not an LSTM cell")),
        }
    }

    /// Runs the layer; see [`RNN::forward`]. Masks are refused.
    pub fn forward(&mut self, x: ArrayView3<f32>, args: &CallArgs) -> Result<Output> {
        refuse_mask(args, "CuDNNLSTM")?;
        self.rnn.forward(x, args)
    }
}

/// Keras `CuDNNGRU`: a GRU with `reset_after = true`, `sigmoid` gates and `tanh`, gates
/// `[z | r | h]`.
///
/// Weights as Keras's `CuDNNGRU.get_weights()`: `kernel (input_dim, 3u)` and
/// `recurrent_kernel (u, 3u)` in cuDNN's per-gate layout, `bias (6u,)` =
/// `[input z, r, h | recurrent z, r, h]`. Masks are refused, as in Keras.
#[derive(Debug)]
pub struct CuDNNGRU {
    config: CuDNNConfig,
    cudnn_weights: [ArrayD<f32>; 3],
    rnn: RNN,
}

impl CuDNNGRU {
    /// From weights in the CuDNN layout.
    pub fn new(
        config: CuDNNConfig,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Array1<f32>,
    ) -> Result<Self> {
        let u = config.units;
        let k = weights::cudnn_kernel_to_plain(kernel.view(), 3, u)?;
        let r = weights::transpose_recurrent_gates(recurrent_kernel.view(), 3, u)?;
        let b = weights::cudnn_gru_bias_to_plain(bias.view(), u)?;
        let cell = GRUCell::new(Self::plain_cell_config(&config), k, r, Some(b.into_dyn()))?;
        Ok(CuDNNGRU {
            rnn: RNN::new(cell, config.sequence),
            config,
            cudnn_weights: [
                kernel.into_dyn(),
                recurrent_kernel.into_dyn(),
                bias.into_dyn(),
            ],
        })
    }

    /// With weights from the config's initializers (deterministic in `seed`).
    pub fn build(config: CuDNNConfig, input_dim: usize, seed: u64) -> Result<Self> {
        let u = config.units;
        let plain = GRUCell::build(
            GRUCellConfig {
                use_bias: false,
                ..Self::plain_cell_config(&config)
            },
            input_dim,
            seed,
        )?;
        let bias: Array1<f32> = config
            .initializers
            .bias_initializer
            .generate(&[6 * u], seed * 8 + 3)?
            .into_dimensionality()
            .map_err(|e| Error::invalid("bias", e.to_string()))?;
        let k = weights::plain_kernel_to_cudnn(plain.kernel.view(), 3, u)?;
        let r = weights::transpose_recurrent_gates(plain.recurrent_kernel.view(), 3, u)?;
        Self::new(config, k, r, bias)
    }

    fn plain_cell_config(config: &CuDNNConfig) -> GRUCellConfig {
        GRUCellConfig {
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            use_bias: true,
            reset_after: true,
            initializers: config.initializers.clone(),
            ..GRUCellConfig::new(config.units)
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CuDNNConfig {
        &self.config
    }

    /// Keras's `get_weights()` in the CuDNN layout: `[kernel, recurrent_kernel, bias (6u,)]`.
    pub fn weights(&self) -> Vec<ArrayD<f32>> {
        self.cudnn_weights.to_vec()
    }

    /// Runs the layer; see [`RNN::forward`]. Masks are refused.
    pub fn forward(&mut self, x: ArrayView3<f32>, args: &CallArgs) -> Result<Output> {
        refuse_mask(args, "CuDNNGRU")?;
        self.rnn.forward(x, args)
    }
}

macro_rules! cudnn_common {
    ($t:ident) => {
        impl $t {
            /// Runs the layer on `x` `(batch, time, features)` with no initial state.
            pub fn call(&mut self, x: ArrayView3<f32>) -> Result<Output> {
                self.rnn.call(x)
            }
            /// Keras `reset_states()`.
            pub fn reset_states(&mut self) {
                self.rnn.reset_states()
            }
            /// Keras `reset_states(states)`.
            pub fn reset_states_to(&mut self, states: Vec<Array2<f32>>) -> Result<()> {
                self.rnn.reset_states_to(states)
            }
            /// The sequence options.
            pub fn options(&self) -> &SequenceOptions {
                self.rnn.options()
            }
            /// The layer as the generic [`RNN`] over the equivalent plain cell.
            pub fn as_rnn(&self) -> &RNN {
                &self.rnn
            }
        }
    };
}
cudnn_common!(CuDNNLSTM);
cudnn_common!(CuDNNGRU);
