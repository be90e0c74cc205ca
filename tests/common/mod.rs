//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ndarray::ArrayD;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The contract's f32 tolerance: |got - want| <= 1e-5 + 1e-4 * |want|.
pub fn within_tolerance(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-5 + 1e-4 * want.abs()
}

/// Compares two name -> array maps; returns the largest absolute error, or a description of
/// the first mismatch.
pub fn compare(
    got: &BTreeMap<String, ArrayD<f32>>,
    want: &BTreeMap<String, ArrayD<f32>>,
) -> Result<f32, String> {
    let gk: Vec<_> = got.keys().collect();
    let wk: Vec<_> = want.keys().collect();
    if gk != wk {
        return Err(format!("array names differ: got {gk:?}, want {wk:?}"));
    }
    let mut worst = 0.0f32;
    for (name, w) in want {
        let g = &got[name];
        if g.shape() != w.shape() {
            return Err(format!(
                "{name}: shape {:?}, want {:?}",
                g.shape(),
                w.shape()
            ));
        }
        for (i, (a, b)) in g.iter().zip(w.iter()).enumerate() {
            if !within_tolerance(*a, *b) {
                return Err(format!("{name}[flat {i}]: got {a}, want {b}"));
            }
            worst = worst.max((a - b).abs());
        }
    }
    Ok(worst)
}

/// The fixture case directories, sorted.
pub fn fixture_cases() -> Vec<PathBuf> {
    cases_in("tests/fixtures")
}

/// The case directories (those with a `layer.json`) under `dir` (relative to the crate root),
/// sorted.
pub fn cases_in(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("layer.json").is_file())
        .collect();
    v.sort();
    v
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "recurrent-test-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
