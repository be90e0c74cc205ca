//! The public layer API: Keras 2's recurrent layers and cells.
//!
//! | Keras class | type | input | states |
//! |---|---|---|---|
//! | `SimpleRNN` | [`SimpleRNN`] | `(batch, time, input_dim)` | `h` |
//! | `GRU` | [`GRU`] | `(batch, time, input_dim)` | `h` |
//! | `LSTM` | [`LSTM`] | `(batch, time, input_dim)` | `h`, `c` |
//! | `ConvLSTM2D` | [`ConvLSTM2D`] | `(batch, time, rows, cols, channels)` | `h`, `c` |
//! | `CuDNNGRU` | [`CuDNNGRU`] | `(batch, time, input_dim)` | `h` |
//! | `CuDNNLSTM` | [`CuDNNLSTM`] | `(batch, time, input_dim)` | `h`, `c` |
//! | `RNN` | [`RNN`] over [`AnyCell`]s | `(batch, time, input_dim)` | per cell |
//! | `Bidirectional` | [`Bidirectional`] around any of them | the wrapped layer's | `forward.*`, `backward.*` |

pub(crate) mod bidirectional;
pub(crate) mod cells;
mod conv_lstm2d;
pub(crate) mod core;
mod cudnn;
mod rnn;

pub use self::core::{CallArgs, Output};
pub use bidirectional::{Bidirectional, BidirectionalOutput, MergeMode};
pub use cells::{GRUCell, LSTMCell, SimpleRNNCell};
pub use conv_lstm2d::ConvLSTM2D;
pub use cudnn::{CuDNNGRU, CuDNNLSTM};
pub use rnn::{AnyCell, SimpleRNN, GRU, LSTM, RNN};
