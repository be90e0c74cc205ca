//! The `recurrent run` contract, end to end: files in, `out.npz` out, atomically.

use super::{npz, output_state_name, KerasLayer};
use crate::layers::CallArgs;
use crate::{Error, Result};
use half::{bf16, f16};
use ndarray::ArrayD;
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
    /// Rounds every element to this storage type (identity for f32).
    pub fn round(self, a: &mut ArrayD<f32>) {
        match self {
            StorageType::F32 => {}
            StorageType::F16 => a.mapv_inplace(|v| f16::from_f32(v).to_f32()),
            StorageType::BF16 => a.mapv_inplace(|v| bf16::from_f32(v).to_f32()),
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

/// Runs the contract: reads the files, runs the layer, writes `out.npz` atomically. On any
/// error nothing is left at `files.output` (a stale file from an earlier run is removed).
pub fn run_files(files: &RunFiles) -> Result<()> {
    // A failed run removes what is at --output: never let that be one of the inputs.
    let out = std::fs::canonicalize(&files.output).ok();
    let inputs = [
        Some(&files.layer),
        Some(&files.weights),
        Some(&files.input),
        files.mask.as_ref(),
        files.initial_state.as_ref(),
    ];
    for p in inputs.into_iter().flatten() {
        let same = match (&out, std::fs::canonicalize(p).ok()) {
            (Some(o), Some(i)) => *o == i,
            _ => false,
        };
        if same {
            return Err(Error::invalid(
                "--output",
                format!(
                    "{} is also an input file; choose another output path",
                    files.output.display()
                ),
            ));
        }
    }
    let r = run_inner(files);
    if r.is_err() && files.output.is_file() {
        let _ = std::fs::remove_file(&files.output);
    }
    r
}

/// Loads a layer from `layer.json` and `weights.npz` paths.
pub fn load_layer(layer: &Path, weights: &Path, dtype: StorageType) -> Result<KerasLayer> {
    let text = std::fs::read_to_string(layer).map_err(|e| Error::File {
        path: layer.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::File {
        path: layer.display().to_string(),
        message: format!("not valid JSON: {e}"),
    })?;
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

fn run_inner(files: &RunFiles) -> Result<()> {
    if files.device == Device::Cuda {
        return Err(Error::NotCompiledWithCuda);
    }
    let mut layer = load_layer(&files.layer, &files.weights, files.dtype)?;
    let mut x = npz::read_f32(&files.input)?;
    files.dtype.round(&mut x);
    let mask = match &files.mask {
        Some(p) => Some(npz::read_mask(p)?),
        None => None,
    };
    let names = layer.state_names();
    let initial = match &files.initial_state {
        None => None,
        Some(p) => {
            let mut m = npz::read_npz(p)?;
            let mut v = Vec::new();
            for n in &names {
                let mut a = m.remove(n).ok_or_else(|| Error::File {
                    path: p.display().to_string(),
                    message: format!("missing array `{n}` (expected {})", names.join(", ")),
                })?;
                files.dtype.round(&mut a);
                v.push(a);
            }
            if let Some(extra) = m.keys().next() {
                return Err(Error::File {
                    path: p.display().to_string(),
                    message: format!("unexpected array `{extra}` (expected {})", names.join(", ")),
                });
            }
            Some(v)
        }
    };
    let args = CallArgs {
        mask: mask.as_ref().map(|m| m.view()),
        initial_state: initial.as_deref(),
        constants: &[],
    };
    let out = layer.forward(x.view(), &args).map_err(|e| {
        let what = match &e {
            Error::Shape { what, .. } | Error::Invalid { what, .. } => what.clone(),
            _ => String::new(),
        };
        let path = if what.starts_with("mask") {
            files.mask.as_deref()
        } else if what.starts_with("initial_state") {
            files.initial_state.as_deref()
        } else if what.starts_with("input") {
            Some(files.input.as_path())
        } else {
            None
        };
        match path {
            Some(p) => in_file(p, e),
            None => e,
        }
    })?;
    let mut arrays = vec![("output".to_string(), out.output)];
    if layer.options().return_state {
        for (n, s) in names.iter().zip(out.states) {
            arrays.push((output_state_name(n), s));
        }
    }
    for (_, a) in arrays.iter_mut() {
        files.dtype.round(a);
    }
    npz::write_npz_atomic(&files.output, &arrays)
}
