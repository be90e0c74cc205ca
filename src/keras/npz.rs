//! `.npy` / `.npz` reading and atomic `.npz` writing.
//!
//! Float arrays are read as float32; float64 files are accepted and converted (the contract
//! asks for float32, numpy's default is float64). Masks are bool, or integers / floats with
//! nonzero meaning a real step (Keras casts them so).

use crate::{Error, Result};
use ndarray::{Array2, ArrayD};
use ndarray_npy::{NpzReader, NpzWriter, ReadNpyExt, ReadNpzError};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| file_err(path, format!("cannot open: {e}")))
}

/// Reads a float `.npy` file (float32, or float64 converted) of any rank.
pub fn read_f32(path: &Path) -> Result<ArrayD<f32>> {
    let first = ArrayD::<f32>::read_npy(BufReader::new(open(path)?));
    match first {
        Ok(a) => Ok(a),
        Err(e32) => match ArrayD::<f64>::read_npy(BufReader::new(open(path)?)) {
            Ok(a) => Ok(a.mapv(|v| v as f32)),
            Err(_) => Err(file_err(path, format!("not a float32 .npy array: {e32}"))),
        },
    }
}

/// Reads a `.npy` mask of shape `(batch, time)`: bool, or any integer or float type with
/// nonzero meaning a real step, as Keras casts a mask it is given (an int 0/1 mask from
/// numpy gives the same outputs as the bool one there).
pub fn read_mask(path: &Path) -> Result<Array2<bool>> {
    let a = read_any_mask(path)?;
    let shape = a.shape().to_vec();
    a.into_dimensionality().map_err(|_| {
        file_err(
            path,
            format!(
                "mask: expected shape (batch, time), found {}",
                crate::error::fmt_shape(&shape)
            ),
        )
    })
}

/// The mask as bool whatever its element type (bool, i8 .. u64, f32, f64).
fn read_any_mask(path: &Path) -> Result<ArrayD<bool>> {
    let bools = ArrayD::<bool>::read_npy(BufReader::new(open(path)?));
    let e = match bools {
        Ok(a) => return Ok(a),
        Err(e) => e,
    };
    macro_rules! nonzero {
        ($($t:ty),*) => {$(
            if let Ok(a) = ArrayD::<$t>::read_npy(BufReader::new(open(path)?)) {
                #[allow(clippy::float_cmp)]
                return Ok(a.mapv(|v| v != (0 as $t)));
            }
        )*};
    }
    nonzero!(u8, i8, i16, u16, i32, u32, i64, u64, f32, f64);
    Err(file_err(
        path,
        format!("expected a bool (or integer / float 0-1) .npy array: {e}"),
    ))
}

/// Reads every array of a float `.npz` file into a name -> array map.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let mut z =
        NpzReader::new(open(path)?).map_err(|e| file_err(path, format!("not a .npz file: {e}")))?;
    let names = z
        .names()
        .map_err(|e| file_err(path, format!("cannot list arrays: {e}")))?;
    let mut out = BTreeMap::new();
    for n in names {
        let a: std::result::Result<ArrayD<f32>, ReadNpzError> = z.by_name(&n);
        let a = match a {
            Ok(a) => a,
            Err(e32) => match z.by_name::<ndarray::OwnedRepr<f64>, ndarray::IxDyn>(&n) {
                Ok(a) => a.mapv(|v| v as f32),
                Err(_) => {
                    return Err(file_err(
                        path,
                        format!("{n}: expected a float32 array: {e32}"),
                    ))
                }
            },
        };
        out.insert(n, a);
    }
    Ok(out)
}

/// Writes `arrays` to `path` as `.npz`, atomically: a temporary file beside it, then a rename.
/// On failure nothing is left at `path`'s temporary name.
pub fn write_npz_atomic(path: &Path, arrays: &[(String, ArrayD<f32>)]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| file_err(path, "not a file name"))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let f = File::create(&tmp).map_err(|e| file_err(path, format!("cannot create: {e}")))?;
        let mut w = NpzWriter::new(f);
        for (n, a) in arrays {
            w.add_array(n.as_str(), &a.as_standard_layout())
                .map_err(|e| file_err(path, format!("cannot write {n}: {e}")))?;
        }
        let f = w
            .finish()
            .map_err(|e| file_err(path, format!("cannot finish: {e}")))?;
        f.sync_all()
            .map_err(|e| file_err(path, format!("cannot sync: {e}")))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| file_err(path, format!("cannot rename into place: {e}")))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
