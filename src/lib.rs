//! # recurrent
//!
//! Keras 2's recurrent layers with Keras 2's exact semantics, on the CPU (this path: the
//! reference and the CPU-only fallback) and, with the `cuda` feature, on NVIDIA GPUs.
//!
//! ```
//! use ndarray::Array3;
//! use recurrent::config::{LSTMCellConfig, SequenceOptions};
//! use recurrent::layers::LSTM;
//!
//! // An LSTM with 8 units over 4 input features, weights from Keras's initializers.
//! let options = SequenceOptions { return_sequences: true, ..Default::default() };
//! let mut lstm = LSTM::build(LSTMCellConfig::tf_keras(8), options, 4, 42)?;
//! let x = Array3::<f32>::zeros((2, 5, 4)); // (batch, time, features)
//! let out = lstm.call(x.view())?;
//! assert_eq!(out.output.shape(), &[2, 5, 8]); // (batch, time, units)
//! assert_eq!(out.states.len(), 2); // [h, c]
//! # Ok::<(), recurrent::Error>(())
//! ```
//!
//! Layout: [`layers`] is the public layer API, [`config`] the Keras-named configs,
//! [`weights`] the CuDNN weight layouts, [`keras`] the import of Keras exports (the
//! `recurrent run` contract), `cpu` the CPU path.

pub mod activation;
pub mod cell;
pub mod config;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
pub mod initializers;
pub mod interop;
pub mod keras;
pub mod layers;
pub mod weights;

pub use activation::Activation;
pub use cell::Cell;
pub use error::{Error, Result};

/// The README's Rust code blocks, compiled and run as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
