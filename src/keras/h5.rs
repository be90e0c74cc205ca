//! Reading Keras's HDF5 files with the pure-Rust `hdf5-reader` crate (no libhdf5): string
//! attributes (fixed- or variable-length, scalar or array, split by Keras 2 into `name0`,
//! `name1`, ... when long), groups by path and float datasets.
//!
//! Every error names the file and the path inside it.

use crate::{Error, Result};
use hdf5_reader::{Datatype, Hdf5File};
use ndarray::ArrayD;

/// The 8-byte signature every HDF5 file carries (at offset 0, or 512, 1024, ... after a user
/// block).
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Whether `bytes` start an HDF5 file (signature at 0 or at a power-of-two user-block offset).
pub(crate) fn is_hdf5(bytes: &[u8]) -> bool {
    let mut off = 0usize;
    loop {
        if bytes.len() < off + 8 {
            return false;
        }
        if &bytes[off..off + 8] == SIGNATURE {
            return true;
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
}

/// An HDF5 file held in memory.
pub(crate) struct H5File {
    file: Hdf5File,
    /// How errors name the file (its path, or `m.keras: model.weights.h5`).
    display: String,
}

impl std::fmt::Debug for H5File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H5File({})", self.display)
    }
}

/// The group path without leading / trailing slashes ("" is the root).
fn clean(path: &str) -> &str {
    path.trim_matches('/')
}

impl H5File {
    /// Parses `bytes` as HDF5; `display` names the file in errors.
    pub(crate) fn from_bytes(bytes: Vec<u8>, display: &str) -> Result<Self> {
        if !is_hdf5(&bytes) {
            return Err(Error::File {
                path: display.to_string(),
                message: "not an HDF5 file (no HDF5 signature)".into(),
            });
        }
        let len = bytes.len() as u64;
        let file = Hdf5File::from_vec(bytes).map_err(|e| Error::File {
            path: display.to_string(),
            message: format!("cannot read as HDF5 (truncated or damaged?): {e}"),
        })?;
        // As libhdf5 does: a file shorter than the end address its superblock records is
        // truncated, even where the part read so far looks complete.
        let sb = file.superblock();
        let eof = sb.base_address.saturating_add(sb.eof_address);
        if sb.eof_address != u64::MAX && eof > len {
            return Err(Error::File {
                path: display.to_string(),
                message: format!("truncated HDF5 file: {len} bytes, its superblock says {eof}"),
            });
        }
        let f = H5File {
            file,
            display: display.to_string(),
        };
        // Reading the root group early turns a truncated file into an error here.
        f.group("")?;
        Ok(f)
    }

    /// The name errors use for this file.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    fn err(&self, at: &str, message: impl std::fmt::Display) -> Error {
        let at = clean(at);
        Error::File {
            path: self.display.clone(),
            message: if at.is_empty() {
                message.to_string()
            } else {
                format!("{at}: {message}")
            },
        }
    }

    fn group(&self, path: &str) -> Result<hdf5_reader::group::Group> {
        let p = clean(path);
        let r = if p.is_empty() {
            self.file.root_group()
        } else {
            self.file.group(p)
        };
        r.map_err(|e| {
            self.err(
                path,
                format!("cannot open group (truncated or damaged file?): {e}"),
            )
        })
    }

    /// Whether a group exists at `path`.
    pub(crate) fn has_group(&self, path: &str) -> bool {
        let p = clean(path);
        p.is_empty() || self.file.group(p).is_ok()
    }

    /// Whether a dataset exists at `path`.
    pub(crate) fn has_dataset(&self, path: &str) -> bool {
        self.file.dataset(clean(path)).is_ok()
    }

    /// The names of the child groups and datasets of the group at `path`.
    pub(crate) fn members(&self, path: &str) -> Result<(Vec<String>, Vec<String>)> {
        self.group(path)?
            .member_names()
            .map_err(|e| self.err(path, format!("cannot list members: {e}")))
    }

    /// A string attribute (scalar, or the only element of an array); `None` when absent.
    pub(crate) fn attr_string(&self, path: &str, name: &str) -> Result<Option<String>> {
        Ok(self.attr_strings(path, name)?.map(|v| v.join("")))
    }

    /// A string-array attribute, Keras-style: absent -> `None`; an empty numeric array (how
    /// Keras writes `weight_names` of a weightless layer) -> empty; split by Keras 2 into
    /// `name0`, `name1`, ... -> joined in order.
    pub(crate) fn attr_strings(&self, path: &str, name: &str) -> Result<Option<Vec<String>>> {
        let g = self.group(path)?;
        let attrs = g
            .attributes()
            .map_err(|e| self.err(path, format!("cannot read attributes: {e}")))?;
        let read = |a: &hdf5_reader::Attribute| -> Result<Vec<String>> {
            if a.num_elements().unwrap_or(1) == 0 {
                return Ok(Vec::new());
            }
            a.read_strings().map_err(|e| {
                self.err(
                    path,
                    format!("attribute `{}`: expected strings: {e}", a.name),
                )
            })
        };
        if let Some(a) = attrs.iter().find(|a| a.name == name) {
            return read(a).map(Some);
        }
        let mut out = Vec::new();
        let mut found = false;
        for k in 0.. {
            let chunk = format!("{name}{k}");
            match attrs.iter().find(|a| a.name == chunk) {
                Some(a) => {
                    found = true;
                    out.extend(read(a)?);
                }
                None => break,
            }
        }
        Ok(found.then_some(out))
    }

    /// The shape of the dataset at `path`.
    pub(crate) fn shape(&self, path: &str) -> Result<Vec<usize>> {
        let ds = self
            .file
            .dataset(clean(path))
            .map_err(|e| self.err(path, format!("missing or unreadable dataset: {e}")))?;
        Ok(ds.shape().iter().map(|&d| d as usize).collect())
    }

    /// A float dataset as f32 (float32 as is; float64 and float16 converted).
    pub(crate) fn read_f32(&self, path: &str) -> Result<ArrayD<f32>> {
        let ds = self
            .file
            .dataset(clean(path))
            .map_err(|e| self.err(path, format!("missing or unreadable dataset: {e}")))?;
        let bad = |e: hdf5_reader::error::Error| {
            self.err(path, format!("cannot read (truncated or damaged?): {e}"))
        };
        match ds.dtype() {
            Datatype::FloatingPoint { size: 4, .. } => ds.read_array::<f32>().map_err(bad),
            Datatype::FloatingPoint { size: 8, .. } => {
                Ok(ds.read_array::<f64>().map_err(bad)?.mapv(|v| v as f32))
            }
            Datatype::FloatingPoint { size: 2, .. } => {
                let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
                let bytes = ds.read_native_bytes().map_err(bad)?;
                let v: Vec<f32> = bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
                    .collect();
                ArrayD::from_shape_vec(shape, v).map_err(|e| self.err(path, e.to_string()))
            }
            other => Err(self.err(path, format!("expected a float dataset, found {other:?}"))),
        }
    }
}
