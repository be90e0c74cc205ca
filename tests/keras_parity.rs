//! Parity with real Keras 2 (tf-keras 2.21): every fixture under `tests/fixtures/`, written by
//! `scripts/keras_fixtures.py`, runs through the same code path as `recurrent run`
//! ([`recurrent::keras::run_files`]) and must match Keras within 1e-5 + 1e-4 * |want|.
//! Stateful fixtures also check the second call (states carried over) and a call after
//! `reset_states()`.

mod common;

use common::{cases_in, compare, fixture_cases, temp_dir};
use recurrent::keras::{load_layer, npz, run_files, RunFiles, StorageType};
use recurrent::layers::CallArgs;
use std::collections::BTreeMap;
use std::path::Path;

fn opt(p: &Path) -> Option<std::path::PathBuf> {
    p.is_file().then(|| p.to_path_buf())
}

/// Runs one case through the contract path; returns the largest error.
fn run_case(dir: &Path, out_dir: &Path) -> Result<f32, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let out = out_dir.join(format!("{name}.npz"));
    let files = RunFiles {
        layer: dir.join("layer.json"),
        weights: dir.join("weights.npz"),
        input: dir.join("x.npy"),
        mask: opt(&dir.join("mask.npy")),
        initial_state: opt(&dir.join("initial_state.npz")),
        output: out.clone(),
        ..Default::default()
    };
    run_files(&files).map_err(|e| format!("run failed: {e}"))?;
    let got = npz::read_npz(&out).map_err(|e| e.to_string())?;
    let want = npz::read_npz(&dir.join("out.npz")).map_err(|e| e.to_string())?;
    compare(&got, &want)
}

/// Second call and post-reset call of a stateful case on one layer object.
fn run_stateful(dir: &Path) -> Result<f32, String> {
    let mut layer = load_layer(
        &dir.join("layer.json"),
        &dir.join("weights.npz"),
        StorageType::F32,
    )
    .map_err(|e| e.to_string())?;
    assert!(
        layer.options().stateful,
        "{} has x2.npy but is not stateful",
        dir.display()
    );
    let mut worst = 0.0f32;
    let names = layer.state_names();
    let collect = |out: recurrent::layers::Output, return_state: bool| {
        let mut m = BTreeMap::new();
        if return_state {
            for (n, s) in names.iter().zip(out.states.iter()) {
                m.insert(recurrent::keras::output_state_name(n), s.clone());
            }
        }
        m.insert("output".to_string(), out.output);
        m
    };
    let rs = layer.options().return_state;
    for (x, want, reset) in [
        ("x.npy", "out.npz", false),
        ("x2.npy", "out2.npz", false),
        ("x3.npy", "out3.npz", true),
    ] {
        if reset {
            match &mut layer {
                recurrent::keras::KerasLayer::SimpleRNN(l) => l.reset_states(),
                recurrent::keras::KerasLayer::GRU(l) => l.reset_states(),
                recurrent::keras::KerasLayer::LSTM(l) => l.reset_states(),
                recurrent::keras::KerasLayer::RNN(l) => l.reset_states(),
                recurrent::keras::KerasLayer::ConvLSTM2D(l) => l.reset_states(),
                recurrent::keras::KerasLayer::CuDNNGRU(l) => l.reset_states(),
                recurrent::keras::KerasLayer::CuDNNLSTM(l) => l.reset_states(),
                recurrent::keras::KerasLayer::Bidirectional(l) => l.reset_states(),
            }
        }
        let xa = npz::read_f32(&dir.join(x)).map_err(|e| e.to_string())?;
        let out = layer
            .forward(xa.view(), &CallArgs::default())
            .map_err(|e| format!("{x}: {e}"))?;
        let got = collect(out, rs);
        let w = npz::read_npz(&dir.join(want)).map_err(|e| e.to_string())?;
        worst = worst.max(compare(&got, &w).map_err(|e| format!("{x}: {e}"))?);
    }
    Ok(worst)
}

#[test]
fn every_keras_fixture_matches_keras_within_tolerance() {
    let cases = fixture_cases();
    assert!(
        cases.len() >= 93,
        "expected the full fixture set, found {} cases",
        cases.len()
    );
    check_all(&cases, "parity");
}

/// The random option combinations of `scripts/keras_fuzz.py` (seed 1, 150 draws; the ones
/// Keras accepts), answered by Keras and kept in `tests/fixtures_fuzz/`.
#[test]
fn every_random_keras_combination_matches_keras_within_tolerance() {
    let cases = cases_in("tests/fixtures_fuzz");
    assert!(
        cases.len() >= 136,
        "expected the full corpus, found {} cases",
        cases.len()
    );
    check_all(&cases, "fuzz");
}

/// Runs every case (and the stateful ones' later calls); fails with every failing case.
fn check_all(cases: &[std::path::PathBuf], tag: &str) {
    let out_dir = temp_dir(tag);
    let mut failures = Vec::new();
    let mut worst = (0.0f32, String::new());
    for dir in cases {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut r = run_case(dir, &out_dir);
        if r.is_ok() && dir.join("x2.npy").is_file() {
            r = run_stateful(dir).and_then(|w2| r.map(|w1| w1.max(w2)));
        }
        match r {
            Ok(err) => {
                if err > worst.0 {
                    worst = (err, name.clone());
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    println!(
        "{} fixture cases, largest |got - want| = {:.3e} ({})",
        cases.len(),
        worst.0,
        worst.1
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Keras takes a `time_major` layer's mask as `(time, batch)`; the contract's `mask.npy` is
/// `(batch, time)`. Every time-major fixture with a mask (written in Keras's layout) must give
/// Keras's answer with the mask in either layout.
#[test]
fn time_major_masks_are_read_in_either_layout() {
    let out_dir = temp_dir("time-major-mask");
    let mut checked = 0;
    for dir in fixture_cases() {
        let cfg = std::fs::read_to_string(dir.join("layer.json")).expect("layer.json");
        if !cfg.contains("\"time_major\": true") || !dir.join("mask.npy").is_file() {
            continue;
        }
        let keras_layout = npz::read_mask(&dir.join("mask.npy")).expect("mask.npy");
        let contract_layout = out_dir.join("mask_batch_time.npy");
        ndarray_npy::write_npy(&contract_layout, &keras_layout.t().to_owned())
            .expect("write the transposed mask");
        for mask in [dir.join("mask.npy"), contract_layout] {
            let out = out_dir.join("out.npz");
            let files = RunFiles {
                layer: dir.join("layer.json"),
                weights: dir.join("weights.npz"),
                input: dir.join("x.npy"),
                mask: Some(mask.clone()),
                initial_state: opt(&dir.join("initial_state.npz")),
                output: out.clone(),
                ..Default::default()
            };
            run_files(&files).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let got = npz::read_npz(&out).expect("out.npz");
            let want = npz::read_npz(&dir.join("out.npz")).expect("want");
            compare(&got, &want).unwrap_or_else(|e| panic!("{} ({mask:?}): {e}", dir.display()));
        }
        checked += 1;
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(checked >= 1, "no time-major fixture with a mask");
}
