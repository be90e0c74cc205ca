//! The `recurrent run` contract, end to end: files in, `out.npz` out, atomically.

use super::{model, npz, KerasLayer};
use crate::layers::CallArgs;
use crate::{Error, Result};
use half::{bf16, f16};
use ndarray::{Array2, ArrayD};
use std::path::{Path, PathBuf};

/// Where a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU path (default).
    #[default]
    Cpu,
    /// The CUDA path (needs the `cuda` feature, a driver and a device).
    Cuda,
}

/// The storage type of weights, inputs and outputs. Arithmetic is f32 in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageType {
    /// float32 (default): matches Keras within `1e-5 + 1e-4 * |want|`.
    #[default]
    F32,
    /// float16 storage: weights, inputs, initial states and outputs rounded to f16, math in f32.
    F16,
    /// bfloat16 storage: as F16 with bf16 rounding.
    BF16,
}

impl StorageType {
    /// `f32`, `f16` or `bf16` (the CLI's `--dtype` value and the CUDA kernels' name infix).
    pub fn name(self) -> &'static str {
        match self {
            StorageType::F32 => "f32",
            StorageType::F16 => "f16",
            StorageType::BF16 => "bf16",
        }
    }

    /// `v` rounded to this storage type (nearest even; identity for f32).
    pub fn round_value(self, v: f32) -> f32 {
        match self {
            StorageType::F32 => v,
            StorageType::F16 => f16::from_f32(v).to_f32(),
            StorageType::BF16 => bf16::from_f32(v).to_f32(),
        }
    }

    /// Rounds every element to this storage type (identity for f32).
    pub fn round(self, a: &mut ArrayD<f32>) {
        if self != StorageType::F32 {
            a.mapv_inplace(|v| self.round_value(v));
        }
    }
}

/// The files of one `recurrent run`.
#[derive(Debug, Clone, Default)]
pub struct RunFiles {
    /// `layer.json`: `{"class_name": ..., "config": ...}`.
    pub layer: PathBuf,
    /// `weights.npz`: the layer's weights by Keras name.
    pub weights: PathBuf,
    /// `x.npy`: the input.
    pub input: PathBuf,
    /// `mask.npy`: optional bool `(batch, time)`.
    pub mask: Option<PathBuf>,
    /// `initial_state.npz`: optional `h`, `c` / `cells.k.h`, ...
    pub initial_state: Option<PathBuf>,
    /// `out.npz`, written only on success.
    pub output: PathBuf,
    /// The device.
    pub device: Device,
    /// The storage type.
    pub dtype: StorageType,
}

fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::File { .. } => e,
        other => Error::File {
            path: path.display().to_string(),
            message: other.to_string(),
        },
    }
}

/// Refuses an `--output` that names one of the inputs (a failed run removes what is there).
fn check_output_is_not_an_input(output: &Path, inputs: &[Option<&PathBuf>]) -> Result<()> {
    let out = std::fs::canonicalize(output).ok();
    for p in inputs.iter().flatten() {
        let same = match (&out, std::fs::canonicalize(p).ok()) {
            (Some(o), Some(i)) => *o == i,
            _ => false,
        };
        if same {
            return Err(Error::invalid(
                "--output",
                format!(
                    "{} is also an input file; choose another output path",
                    output.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Runs `f`; on failure removes what is at `output` (a stale result of an earlier run).
fn or_remove_output(output: &Path, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let r = f();
    if r.is_err() && output.is_file() {
        let _ = std::fs::remove_file(output);
    }
    r
}

/// Runs the contract: reads the files, runs the layer, writes `out.npz` atomically. On any
/// error nothing is left at `files.output` (a stale file from an earlier run is removed).
pub fn run_files(files: &RunFiles) -> Result<()> {
    // A failed run removes what is at --output: never let that be one of the inputs.
    check_output_is_not_an_input(
        &files.output,
        &[
            Some(&files.layer),
            Some(&files.weights),
            Some(&files.input),
            files.mask.as_ref(),
            files.initial_state.as_ref(),
        ],
    )?;
    or_remove_output(&files.output, || run_inner(files))
}

/// Loads a layer from `layer.json` and `weights.npz` paths. The weights may also be a Keras 2
/// HDF5 file (`save_weights` or `model.save`): the layer's weights are found by its
/// `config.name` (see [`model::load_layer_h5`]).
pub fn load_layer(layer: &Path, weights: &Path, dtype: StorageType) -> Result<KerasLayer> {
    let text = std::fs::read_to_string(layer).map_err(|e| Error::File {
        path: layer.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::File {
        path: layer.display().to_string(),
        message: format!("not valid JSON: {e}"),
    })?;
    if is_hdf5_file(weights) {
        return model::load_layer_h5(&json, &layer.display().to_string(), weights, dtype);
    }
    // Config errors belong to layer.json, weight errors to weights.npz.
    let mut w = npz::read_npz(weights)?;
    for a in w.values_mut() {
        dtype.round(a);
    }
    KerasLayer::from_keras(&json, w).map_err(|e| match e {
        Error::Config { .. } | Error::UnknownClass { .. } | Error::UnknownActivation { .. } => {
            in_file(layer, e)
        }
        other => in_file(weights, other),
    })
}

fn is_hdf5_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| super::h5::is_hdf5(&head))
        .unwrap_or(false)
}

/// Reads `initial_state.npz`: exactly the arrays `names`, in that order.
fn read_initial_state(p: &Path, names: &[String], dtype: StorageType) -> Result<Vec<ArrayD<f32>>> {
    let mut m = npz::read_npz(p)?;
    let mut v = Vec::new();
    for n in names {
        let mut a = m.remove(n).ok_or_else(|| Error::File {
            path: p.display().to_string(),
            message: format!("missing array `{n}` (expected {})", names.join(", ")),
        })?;
        dtype.round(&mut a);
        v.push(a);
    }
    if let Some(extra) = m.keys().next() {
        return Err(Error::File {
            path: p.display().to_string(),
            message: format!("unexpected array `{extra}` (expected {})", names.join(", ")),
        });
    }
    Ok(v)
}

/// Names the input file at fault in a call error (`input`, `mask`, `initial_state`).
fn locate_call_error(
    e: Error,
    input: &Path,
    mask: Option<&Path>,
    initial_state: Option<&Path>,
) -> Error {
    let what = match &e {
        Error::Shape { what, .. } | Error::Invalid { what, .. } => what.clone(),
        _ => String::new(),
    };
    let path = if what.starts_with("mask") {
        mask
    } else if what.starts_with("initial_state") {
        initial_state
    } else if what.starts_with("input") {
        Some(input)
    } else {
        None
    };
    match path {
        Some(p) => in_file(p, e),
        None => e,
    }
}

/// Runs `layer` on the device the user chose. The CPU gets weights, input and states already
/// rounded to `dtype` and computes in f32; the CUDA path stores them in `dtype` on the device
/// (the same values) and computes in f32.
fn forward_on(
    device: Device,
    dtype: StorageType,
    layer: &mut KerasLayer,
    x: ndarray::ArrayViewD<f32>,
    args: &CallArgs,
) -> Result<crate::layers::Output> {
    match device {
        Device::Cpu => {
            // Weights, input and states were rounded to `dtype` when they were loaded.
            let _ = dtype;
            layer.forward(x, args)
        }
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            let dev = crate::cuda::CudaDevice::new(0)?;
            crate::cuda::CudaLayer::from_keras_as(&dev, layer, dtype)?.forward(x, args)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(Error::NotCompiledWithCuda),
    }
}

/// `mask.npy` is `(batch, time)`. Keras itself takes a `time_major` layer's mask as
/// `(time, batch)`, so for such a layer a mask of shape `(time, batch)` (and not also
/// `(batch, time)`, which only a square one is) is read that way and transposed. Any other
/// shape is left for the layer's own check to report.
fn time_major_mask(mask: Array2<bool>, layer: &KerasLayer, x_shape: &[usize]) -> Array2<bool> {
    match x_shape {
        [t, b, ..] if layer.options().time_major && t != b && mask.dim() == (*t, *b) => {
            mask.reversed_axes().as_standard_layout().into_owned()
        }
        _ => mask,
    }
}

fn run_inner(files: &RunFiles) -> Result<()> {
    #[cfg(not(feature = "cuda"))]
    if files.device == Device::Cuda {
        return Err(Error::NotCompiledWithCuda);
    }
    let mut layer = load_layer(&files.layer, &files.weights, files.dtype)?;
    let mut x = npz::read_f32(&files.input)?;
    files.dtype.round(&mut x);
    let mask = match &files.mask {
        Some(p) => Some(time_major_mask(npz::read_mask(p)?, &layer, x.shape())),
        None => None,
    };
    let names = layer.state_names();
    let initial = match &files.initial_state {
        None => None,
        Some(p) => Some(read_initial_state(p, &names, files.dtype)?),
    };
    let args = CallArgs {
        mask: mask.as_ref().map(|m| m.view()),
        initial_state: initial.as_deref(),
        constants: &[],
    };
    let out = forward_on(files.device, files.dtype, &mut layer, x.view(), &args).map_err(|e| {
        locate_call_error(
            e,
            &files.input,
            files.mask.as_deref(),
            files.initial_state.as_deref(),
        )
    })?;
    let mut arrays = model::output_arrays(&layer, out)?;
    for (_, a) in arrays.iter_mut() {
        files.dtype.round(a);
    }
    npz::write_npz_atomic(&files.output, &arrays)
}

/// The files of `recurrent run --model`: a Keras model file and the layers to run.
#[derive(Debug, Clone, Default)]
pub struct ModelRunFiles {
    /// The model: `.h5` (`model.save`), `.keras`, or a model config JSON (`model.to_json()`,
    /// then `weights` is needed).
    pub model: PathBuf,
    /// A Keras 2 HDF5 weights file (`save_weights`) for the model, matched by layer name.
    pub weights: Option<PathBuf>,
    /// The layers to run as a chain; `None`: the file's one recurrent layer or one chain.
    pub layers: Option<Vec<String>>,
    /// `x.npy`: the first layer's input.
    pub input: PathBuf,
    /// `mask.npy`: optional bool `(batch, time)`, for the first layer (propagated as Keras does).
    pub mask: Option<PathBuf>,
    /// `initial_state.npz`: the first layer's states, named as the contract names them.
    pub initial_state: Option<PathBuf>,
    /// `out.npz`: the last layer's outputs, written only on success.
    pub output: PathBuf,
    /// The device.
    pub device: Device,
    /// The storage type.
    pub dtype: StorageType,
}

/// `recurrent run --model`: runs layers of a Keras model file as a chain and writes the last
/// layer's `out.npz` atomically; on any error nothing is left at `files.output`.
pub fn run_model_files(files: &ModelRunFiles) -> Result<()> {
    check_output_is_not_an_input(
        &files.output,
        &[
            Some(&files.model),
            files.weights.as_ref(),
            Some(&files.input),
            files.mask.as_ref(),
            files.initial_state.as_ref(),
        ],
    )?;
    or_remove_output(&files.output, || run_model_inner(files))
}

fn run_model_inner(files: &ModelRunFiles) -> Result<()> {
    #[cfg(not(feature = "cuda"))]
    if files.device == Device::Cuda {
        return Err(Error::NotCompiledWithCuda);
    }
    let file = match &files.weights {
        Some(w) => model::KerasFile::open_with_weights(&files.model, w)?,
        None => model::KerasFile::open(&files.model)?,
    };
    let names = match &files.layers {
        Some(l) => l.clone(),
        None => file.default_layers()?,
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut chain = file.chain_with(&refs, files.dtype)?;
    let mut x = npz::read_f32(&files.input)?;
    files.dtype.round(&mut x);
    let mask = match &files.mask {
        Some(p) => Some(time_major_mask(
            npz::read_mask(p)?,
            chain.first(),
            x.shape(),
        )),
        None => None,
    };
    let initial = match &files.initial_state {
        None => None,
        Some(p) => Some(read_initial_state(
            p,
            &chain.first().state_names(),
            files.dtype,
        )?),
    };
    let args = CallArgs {
        mask: mask.as_ref().map(|m| m.view()),
        initial_state: initial.as_deref(),
        constants: &[],
    };
    let out = match files.device {
        Device::Cpu => chain.forward(x.view(), &args),
        #[cfg(feature = "cuda")]
        Device::Cuda => crate::cuda::CudaDevice::new(0)
            .and_then(|dev| crate::cuda::forward_chain(&dev, &chain, files.dtype, x.view(), &args)),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(Error::NotCompiledWithCuda),
    }
    .map_err(|e| {
        locate_call_error(
            e,
            &files.input,
            files.mask.as_deref(),
            files.initial_state.as_deref(),
        )
    })?;
    let mut arrays = model::output_arrays(chain.last(), out)?;
    for (_, a) in arrays.iter_mut() {
        files.dtype.round(a);
    }
    npz::write_npz_atomic(&files.output, &arrays)
}
