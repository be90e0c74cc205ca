//! The CUDA path (feature `cuda`): every built-in layer fused on an NVIDIA GPU, with the CPU
//! path's exact semantics.
//!
//! ```no_run
//! # fn main() -> recurrent::Result<()> {
//! use ndarray::Array3;
//! use recurrent::config::{LSTMCellConfig, SequenceOptions};
//! use recurrent::cuda::{CudaDevice, CudaLayer};
//! use recurrent::layers::{CallArgs, LSTM};
//!
//! let lstm = LSTM::build(LSTMCellConfig::tf_keras(64), SequenceOptions::default(), 16, 1)?;
//! let dev = CudaDevice::new(0)?; // a typed error, never a panic, without a driver or GPU
//! let mut gpu = CudaLayer::lstm(&dev, &lstm)?; // weights uploaded once
//! let x = Array3::<f32>::zeros((8, 100, 16));
//! let out = gpu.forward(x.view().into_dyn(), &CallArgs::default())?;
//! assert_eq!(out.output.shape(), &[8, 64]);
//! # Ok(()) }
//! ```
//!
//! * [`CudaDevice`]: context, one stream, the kernels of `kernels/*.cu` (fatbins compiled by
//!   build.rs with nvcc, loaded through cudarc with dynamic loading: the crate builds without
//!   any CUDA library, and a machine without a driver or device gets `Error::Cuda`).
//! * [`DeviceTensor`]: device memory with a shape and a storage type (f32, f16, bf16);
//!   [`CudaDevice::upload`] / [`CudaDevice::upload_as`] / [`CudaDevice::download`] /
//!   [`CudaDevice::convert`].
//! * [`CudaLayer`]: a built layer's weights on the device; [`CudaLayer::forward`] (host arrays
//!   in and out, the CPU `forward`'s arguments, checks and errors) and
//!   [`CudaLayer::forward_device`] (device tensors in and out, for chaining layers).
//!   [`forward_keras`] runs a [`crate::keras::KerasLayer`] (`recurrent run --device cuda`),
//!   [`forward_chain`] a [`crate::keras::KerasChain`] of a model file (`recurrent run --model
//!   --device cuda`), `Bidirectional` included ([`CudaLayer::bidirectional`]).
//!
//! Work per layer call: one GEMM projects the inputs of every step (`x W + b`; for
//! ConvLSTM2D an implicit-GEMM convolution of every frame; on tensor cores for f16 / bf16
//! inputs, and for f32 with TF32 allowed), then the time loop ([`DensePath`]): one fused kernel
//! per time step (two for GRU with `reset_after = false`) that computes the recurrent product,
//! bias, activations, mask handling and state update and writes the step's output (tiled like
//! a GEMM for large batches; tensor-core variants on request), or for the dense layers, where
//! the weights fit in shared memory, one persistent cooperative launch for every step
//! (`kernels/rnn_persistent.cu`); a stack of cells of one kind may run as a wavefront, every
//! cell's step side by side in one launch per diagonal (`src/cuda/wave.rs`). Activations are compile-time template parameters; see the
//! kernel naming in `src/cuda/kernels.rs`.
//!
//! Storage types: f32 by default; [`CudaLayer::into_dtype`] (and `recurrent run --device cuda
//! --dtype f16|bf16`) keeps the weights on the device in f16 / bf16, takes inputs and initial
//! states in that type ([`CudaDevice::upload_as`], [`DeviceTensor::dtype`]) and returns outputs
//! and states in it, with f32 recurrent state and f32 arithmetic in between: the CPU path's
//! `StorageType` semantics, with the tolerances stated on [`CudaLayer`].
//!
//! Row-wise activations (`softmax`, `log_softmax`, which Keras applies over the last axis of
//! each gate's tensor) run the `_rows` kernels, never the persistent, tensor-core, tiled or
//! wavefront paths: dense cells one block per batch row (`gates * units <= 8192`); ConvLSTM2D
//! its recurrent convolution added into the step's projected input, then one block per
//! normalised line: the filters of a pixel, or with `channels_first` the output columns of a
//! (filter, output row) (`4 * line <= 8192`). Beyond those bounds: a clear error.
//!
//! User-defined [`crate::Cell`]s run on the CPU only.

mod conv;
mod dense;
mod device;
mod kernels;
mod layer;
mod wave;

pub use device::{CudaDevice, DensePath, DeviceTensor};
pub use layer::{forward_chain, forward_keras, CudaLayer, DeviceOutput, NO_CUDA_PATH};
