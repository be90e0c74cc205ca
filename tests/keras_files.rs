//! Keras model files (issue 7): every fixture under `tests/fixtures_files/` (written by real
//! Keras 2, tf-keras 2.21, with `scripts/keras_file_fixtures.py`) runs through the library AND
//! through the `recurrent` binary, in every format it was saved in (`model.h5`, `model.keras`,
//! `model.json` + `weights.h5`, and `layer.json` + `weights.h5` / the interchange format's
//! `weights.npz` (`forward.kernel`, ... for Bidirectional) for one-layer cases), and must
//! match Keras within 1e-5 + 1e-4 * |want|. Then the bad inputs: each is one clear error line,
//! exit code 1, and no output file (a stale one is removed).

mod common;

use common::{compare, temp_dir};
use ndarray::ArrayD;
use recurrent::keras::{load_layer, npz, output_arrays, KerasFile, StorageType};
use recurrent::layers::CallArgs;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_recurrent");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures_files")
}

/// The case directories (those with a `case.json`), sorted.
fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root())
        .expect("tests/fixtures_files exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .collect();
    v.sort();
    v
}

fn opt(p: PathBuf) -> Option<PathBuf> {
    p.is_file().then_some(p)
}

fn case_layers(dir: &Path) -> Option<Vec<String>> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    v["layers"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().to_string()
}

/// The ways a case can be given: (label, model or layer file, weights file, is a layer.json).
fn forms(dir: &Path) -> Vec<(String, PathBuf, Option<PathBuf>, bool)> {
    let mut v = Vec::new();
    for m in ["model.h5", "model.keras"] {
        if dir.join(m).is_file() {
            v.push((m.to_string(), dir.join(m), None, false));
        }
    }
    if dir.join("model.json").is_file() && dir.join("weights.h5").is_file() {
        v.push((
            "model.json+weights.h5".into(),
            dir.join("model.json"),
            Some(dir.join("weights.h5")),
            false,
        ));
    }
    if dir.join("layer.json").is_file() && dir.join("weights.h5").is_file() {
        v.push((
            "layer.json+weights.h5".into(),
            dir.join("layer.json"),
            Some(dir.join("weights.h5")),
            true,
        ));
    }
    if dir.join("layer.json").is_file() && dir.join("weights.npz").is_file() {
        v.push((
            "layer.json+weights.npz".into(),
            dir.join("layer.json"),
            Some(dir.join("weights.npz")),
            true,
        ));
    }
    v
}

struct Inputs {
    x: ArrayD<f32>,
    mask: Option<ndarray::Array2<bool>>,
    initial: Option<BTreeMap<String, ArrayD<f32>>>,
}

fn inputs(dir: &Path) -> Inputs {
    Inputs {
        x: npz::read_f32(&dir.join("x.npy")).unwrap(),
        mask: opt(dir.join("mask.npy")).map(|p| npz::read_mask(&p).unwrap()),
        initial: opt(dir.join("initial_state.npz")).map(|p| npz::read_npz(&p).unwrap()),
    }
}

fn initial_for(
    names: &[String],
    initial: &Option<BTreeMap<String, ArrayD<f32>>>,
) -> Option<Vec<ArrayD<f32>>> {
    initial.as_ref().map(|m| {
        names
            .iter()
            .map(|n| {
                m.get(n)
                    .unwrap_or_else(|| panic!("initial_state.npz lacks {n}"))
                    .clone()
            })
            .collect()
    })
}

/// Runs one form of a case through the library; returns the largest error.
fn run_library(
    dir: &Path,
    file: &Path,
    weights: &Option<PathBuf>,
    is_layer: bool,
) -> Result<f32, String> {
    let inp = inputs(dir);
    let want = npz::read_npz(&dir.join("out.npz")).map_err(|e| e.to_string())?;
    let got: Vec<(String, ArrayD<f32>)> = if is_layer {
        let mut layer = load_layer(file, weights.as_ref().unwrap(), StorageType::F32)
            .map_err(|e| e.to_string())?;
        let init = initial_for(&layer.state_names(), &inp.initial);
        let args = CallArgs {
            mask: inp.mask.as_ref().map(|m| m.view()),
            initial_state: init.as_deref(),
            constants: &[],
        };
        let out = layer
            .forward(inp.x.view(), &args)
            .map_err(|e| e.to_string())?;
        output_arrays(&layer, out).map_err(|e| e.to_string())?
    } else {
        let f = match weights {
            Some(w) => KerasFile::open_with_weights(file, w),
            None => KerasFile::open(file),
        }
        .map_err(|e| e.to_string())?;
        let names = match case_layers(dir) {
            Some(l) => l,
            None => f.default_layers().map_err(|e| e.to_string())?,
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut chain = f.chain(&refs).map_err(|e| e.to_string())?;
        let init = initial_for(&chain.first().state_names(), &inp.initial);
        let args = CallArgs {
            mask: inp.mask.as_ref().map(|m| m.view()),
            initial_state: init.as_deref(),
            constants: &[],
        };
        let out = chain
            .forward(inp.x.view(), &args)
            .map_err(|e| e.to_string())?;
        output_arrays(chain.last(), out).map_err(|e| e.to_string())?
    };
    compare(&got.into_iter().collect(), &want)
}

fn cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("runs the binary")
}

/// Runs one form of a case through the binary; returns the largest error.
fn run_cli(
    dir: &Path,
    file: &Path,
    weights: &Option<PathBuf>,
    is_layer: bool,
    out: &Path,
) -> Result<f32, String> {
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    if is_layer {
        args.extend(["--layer".into(), file.into()]);
    } else {
        args.extend(["--model".into(), file.into()]);
        if let Some(l) = case_layers(dir) {
            args.extend(["--layers".into(), l.join(",").into()]);
        }
    }
    if let Some(w) = weights {
        args.extend(["--weights".into(), w.into()]);
    }
    args.extend(["--input".into(), dir.join("x.npy").into()]);
    if let Some(m) = opt(dir.join("mask.npy")) {
        args.extend(["--mask".into(), m.into()]);
    }
    if let Some(s) = opt(dir.join("initial_state.npz")) {
        args.extend(["--initial-state".into(), s.into()]);
    }
    args.extend(["--output".into(), out.into()]);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let o = cli(&refs);
    if !o.status.success() {
        return Err(format!(
            "exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let got = npz::read_npz(out).map_err(|e| e.to_string())?;
    let want = npz::read_npz(&dir.join("out.npz")).map_err(|e| e.to_string())?;
    compare(&got, &want)
}

#[test]
fn fixture_set_is_complete() {
    let names: Vec<String> = cases().iter().map(|p| name_of(p)).collect();
    for want in [
        "simple_rnn",
        "gru",
        "gru_reset_before",
        "lstm",
        "conv_lstm2d",
        "rnn_stack",
        "rnn_cell",
        "cudnn_lstm",
        "cudnn_gru",
        "bidi_concat",
        "bidi_sum",
        "bidi_mul",
        "bidi_ave",
        "bidi_none",
        "bidi_return_state",
        "bidi_backward_layer",
        "bidi_cudnn_lstm",
        "chain_lstm_lstm",
        "chain_bidi_gru_rnn",
        "chars2vec",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing fixture case {want}"
        );
    }
    for dir in cases() {
        if name_of(&dir) == "chars2vec" {
            continue;
        }
        for f in [
            "model.h5",
            "model.keras",
            "weights.h5",
            "model.json",
            "out.npz",
        ] {
            assert!(dir.join(f).is_file(), "{}: no {f}", dir.display());
        }
    }
}

#[test]
fn every_file_matches_keras_through_the_library() {
    let mut failures = Vec::new();
    let mut worst = (0.0f32, String::new());
    let mut n = 0;
    for dir in cases() {
        for (label, file, weights, is_layer) in forms(&dir) {
            n += 1;
            let what = format!("{}/{label}", name_of(&dir));
            match run_library(&dir, &file, &weights, is_layer) {
                Ok(e) if e >= worst.0 => worst = (e, what),
                Ok(_) => {}
                Err(e) => failures.push(format!("{what}: {e}")),
            }
        }
    }
    println!(
        "{n} file runs, largest |got - want| = {:.3e} ({})",
        worst.0, worst.1
    );
    assert!(n >= 100, "expected every case in every format, ran {n}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_file_matches_keras_through_the_cli() {
    let out_dir = temp_dir("keras-files-cli");
    let mut failures = Vec::new();
    let mut worst = (0.0f32, String::new());
    let mut n = 0;
    for dir in cases() {
        for (label, file, weights, is_layer) in forms(&dir) {
            n += 1;
            let what = format!("{}/{label}", name_of(&dir));
            let out = out_dir.join(format!("{}-{n}.npz", name_of(&dir)));
            match run_cli(&dir, &file, &weights, is_layer, &out) {
                Ok(e) if e >= worst.0 => worst = (e, what),
                Ok(_) => {}
                Err(e) => failures.push(format!("{what}: {e}")),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    println!(
        "{n} CLI runs, largest |got - want| = {:.3e} ({})",
        worst.0, worst.1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_keras_2_2_file_with_fixed_length_strings_embeds_words() {
    // chars2vec's eng_50 weights: written by Keras 2.2.0 in 2019, `|S7` layer_names.
    let dir = root().join("chars2vec");
    let f = KerasFile::open(dir.join("weights.h5")).unwrap();
    assert_eq!(f.keras_version(), Some("2.2.0"));
    assert_eq!(f.backend(), Some("tensorflow"));
    assert_eq!(f.layer_names(), ["input_1", "lstm_1", "lstm_2"]);
    let f = KerasFile::open_with_weights(dir.join("model.json"), dir.join("weights.h5")).unwrap();
    assert_eq!(f.default_layers().unwrap(), ["lstm_1", "lstm_2"]);
    let err = run_library(
        &dir,
        &dir.join("model.json"),
        &Some(dir.join("weights.h5")),
        false,
    )
    .unwrap();
    assert!(err < 1e-5, "{err}");
}

#[test]
fn inspect_lists_every_layer_with_shapes_weights_and_whether_it_runs() {
    for dir in cases() {
        for m in ["model.h5", "model.keras"] {
            let p = dir.join(m);
            if !p.is_file() {
                continue;
            }
            let o = cli(&["inspect".as_ref(), p.as_os_str()]);
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                text.contains("keras_version: 2.21.0"),
                "{}: {text}",
                p.display()
            );
            let f = KerasFile::open(&p).unwrap();
            let runs = case_layers(&dir).unwrap_or_else(|| f.default_layers().unwrap());
            for l in f.inspect() {
                assert!(text.contains(&format!("{} ({})", l.name, l.class_name)));
                let ok = l.runs.is_ok();
                let recurrent_class =
                    recurrent::keras::LAYER_CLASSES.contains(&l.class_name.as_str());
                assert_eq!(
                    ok,
                    recurrent_class,
                    "{}: {}: {:?}",
                    p.display(),
                    l.name,
                    l.runs
                );
                if runs.contains(&l.name) {
                    assert!(ok, "{}: {} does not run: {:?}", p.display(), l.name, l.runs);
                    assert!(!l.weights.is_empty());
                    assert!(
                        l.input_shape.is_some() && l.output_shape.is_some(),
                        "{}: {}",
                        p.display(),
                        l.name
                    );
                }
                for w in &l.weights {
                    assert!(text.contains(&w.path), "{}: {}", p.display(), w.path);
                }
            }
        }
    }
    // Shapes as Keras prints them; weights by their path in the file.
    let o = cli(&[
        "inspect".as_ref(),
        root().join("bidi_none/model.h5").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("output: [(None, 6, 3), (None, 6, 3)]"),
        "{text}"
    );
    assert!(
        text.contains(
            "model_weights/bidirectional/bidirectional/backward_gru/gru_cell/bias:0  (2, 9)"
        ),
        "{text}"
    );
    let o = cli(&[
        "inspect".as_ref(),
        root().join("lstm/model.keras").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("layers/lstm/cell/vars/1  (6, 24)"), "{text}");
    assert!(text.contains("output: (None, 6, 6)"), "{text}");
    let o = cli(&[
        "inspect".as_ref(),
        root().join("chars2vec/weights.h5").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.contains("keras_version: 2.2.0") && text.contains("lstm_2/lstm_2/kernel:0  (50, 200)"),
        "{text}"
    );
}

#[test]
fn keras_2_splits_long_layer_names_and_they_are_joined() {
    let bad = root().join("bad");
    let f = KerasFile::open(bad.join("chunked_names.h5")).unwrap();
    let names = f.layer_names();
    assert_eq!(names.len(), 72, "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("lstm_after_many"));
    let out_dir = temp_dir("chunked");
    let out = out_dir.join("out.npz");
    let o = cli(&[
        "run".as_ref(),
        "--layer".as_ref(),
        bad.join("chunked_names.layer.json").as_os_str(),
        "--weights".as_ref(),
        bad.join("chunked_names.h5").as_os_str(),
        "--input".as_ref(),
        bad.join("chunked_names.x.npy").as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = npz::read_npz(&out).unwrap();
    let want = npz::read_npz(&bad.join("chunked_names.out.npz")).unwrap();
    compare(&got, &want).unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
}

// ---------------------------------------------------------------------------------------------
// Bad input: one `error:` line, exit 1, nothing written (and a stale output removed).
// ---------------------------------------------------------------------------------------------

/// Runs `recurrent run --model MODEL EXTRA... --input x.npy --output out.npz` over a stale
/// `out.npz`; expects failure with one error line containing every `needle`.
fn expect_model_error(model: &Path, extra: &[&str], needles: &[&str]) -> String {
    let out_dir = temp_dir("keras-files-bad");
    let out = out_dir.join("out.npz");
    std::fs::write(&out, b"stale").unwrap();
    let x = root().join("lstm/x.npy");
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["run".as_ref(), "--model".as_ref(), model.as_os_str()];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    args.extend([
        "--input".as_ref(),
        x.as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    let o = cli(&args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{}: {err}", model.display());
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` not in: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
    assert!(left.is_empty(), "files left after a failed run: {left:?}");
    let _ = std::fs::remove_dir_all(&out_dir);
    lines[0].to_string()
}

#[test]
fn not_a_keras_file_is_an_error() {
    let d = temp_dir("not-keras");
    let p = d.join("model.h5");
    std::fs::write(&p, b"this is not HDF5\n").unwrap();
    expect_model_error(&p, &[], &["model.h5", "not a Keras file", "HDF5"]);
    std::fs::write(&p, b"").unwrap();
    expect_model_error(&p, &[], &["model.h5", "empty"]);
    // A zip that is not a .keras file (an .npz).
    let npz_file = root().join("lstm/out.npz");
    expect_model_error(&npz_file, &[], &["out.npz", "not a .keras file"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn truncated_files_are_errors_not_panics() {
    let d = temp_dir("truncated");
    for src in [
        "lstm/model.h5",
        "bidi_ave/model.keras",
        "chain_lstm_lstm/model.h5",
    ] {
        let bytes = std::fs::read(root().join(src)).unwrap();
        for frac in [1usize, 5, 20, 50, 80, 95, 99] {
            let n = bytes.len() * frac / 100;
            let p = d.join(format!("t{frac}.{}", src.rsplit('.').next().unwrap()));
            std::fs::write(&p, &bytes[..n]).unwrap();
            let line = expect_model_error(&p, &[], &[&p.display().to_string()]);
            assert!(
                line.contains("truncated")
                    || line.contains("not a readable zip")
                    || line.contains("not a Keras file"),
                "{src} cut to {frac}%: {line}"
            );
            // The library says the same, and never panics.
            assert!(KerasFile::open(&p)
                .and_then(|f| f.default_layers())
                .is_err());
        }
    }
    // A truncated weights file paired with a config.
    let bytes = std::fs::read(root().join("chars2vec/weights.h5")).unwrap();
    let w = d.join("w.h5");
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = KerasFile::open_with_weights(root().join("chars2vec/model.json"), &w).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_layer_that_is_not_there_lists_the_names() {
    let m = root().join("bad/unsupported.h5");
    expect_model_error(
        &m,
        &["--layers", "nope"],
        &[
            "no layer `nope`",
            "embedding (Embedding)",
            "lstm (LSTM)",
            "conv_lstm1d (ConvLSTM1D)",
        ],
    );
}

#[test]
fn unsupported_and_non_recurrent_classes_are_named() {
    let m = root().join("bad/unsupported.h5");
    expect_model_error(
        &m,
        &["--layers", "conv_lstm1d"],
        &["conv_lstm1d", "ConvLSTM1D", "not supported"],
    );
    expect_model_error(
        &m,
        &["--layers", "embedding,lstm"],
        &["embedding", "Embedding", "not a recurrent layer"],
    );
    // With no --layers, the one recurrent layer recurrent runs is chosen.
    let f = KerasFile::open(&m).unwrap();
    assert_eq!(f.default_layers().unwrap(), ["lstm"]);
}

#[test]
fn a_missing_or_mis_shaped_weight_names_its_path_in_the_file() {
    expect_model_error(
        &root().join("bad/missing_weight.h5"),
        &[],
        &[
            "missing_weight.h5",
            "model_weights/lstm/lstm/lstm_cell/bias:0",
            "missing",
        ],
    );
    expect_model_error(
        &root().join("bad/bad_shape.h5"),
        &[],
        &[
            "bad_shape.h5",
            "model_weights/lstm/lstm/lstm_cell/recurrent_kernel:0",
            "expected shape (2, 8)",
            "found (2, 6)",
        ],
    );
}

#[test]
fn keras_1_and_keras_3_files_are_refused() {
    expect_model_error(
        &root().join("bad/keras1.h5"),
        &[],
        &["keras1.h5", "Keras 1"],
    );
    expect_model_error(
        &root().join("bad/keras3.keras"),
        &[],
        &["keras3.keras", "Keras 3", "hard_sigmoid"],
    );
    expect_model_error(
        &root().join("bad/keras3.h5"),
        &[],
        &["keras3.h5", "Keras 3"],
    );
}

#[test]
fn chains_must_be_consecutive_recurrent_layers() {
    let m = root().join("chain_bidi_gru_rnn/model.keras");
    expect_model_error(
        &m,
        &["--layers", "bi,last"],
        &["`bi` and `last` are not consecutive", "`back_gru` (GRU)"],
    );
    expect_model_error(&m, &["--layers", "back_gru,bi"], &["not consecutive"]);
    expect_model_error(
        &m,
        &["--layers", "last,dense"],
        &["dense", "Dense", "not a recurrent layer"],
    );
    // The last LSTM returns one vector per sequence: nothing can follow it.
    let f = KerasFile::open(root().join("chain_lstm_lstm/model.h5")).unwrap();
    assert_eq!(f.default_layers().unwrap(), ["lstm", "lstm_1"]);
    // Dropout between two layers is the identity at inference: skipped.
    let f = KerasFile::open(&m).unwrap();
    assert_eq!(f.default_layers().unwrap(), ["bi", "back_gru", "last"]);
}

#[test]
fn weights_only_and_config_only_files_say_what_they_need() {
    let dir = root().join("lstm");
    expect_model_error(&dir.join("weights.h5"), &[], &["weights-only", "--weights"]);
    expect_model_error(
        &dir.join("model.json"),
        &[],
        &["without weights", "--weights"],
    );
    // A layer.json whose name is not in the weights file.
    let d = temp_dir("renamed");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("layer.json")).unwrap()).unwrap();
    v["config"]["name"] = Value::from("renamed");
    let layer = d.join("layer.json");
    std::fs::write(&layer, v.to_string()).unwrap();
    let e = load_layer(&layer, &dir.join("weights.h5"), StorageType::F32).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("no weights for layer `renamed`") && s.contains("lstm"),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn model_runs_write_the_contract_names() {
    // merge_mode None: forward.output / backward.output; states forward.state_h, ...
    let dir = root().join("bidi_none");
    let want = npz::read_npz(&dir.join("out.npz")).unwrap();
    let keys: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "backward.output",
            "backward.state_h",
            "forward.output",
            "forward.state_h"
        ]
    );
    let dir = root().join("bidi_return_state");
    let want = npz::read_npz(&dir.join("out.npz")).unwrap();
    let keys: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "backward.state_c",
            "backward.state_h",
            "forward.state_c",
            "forward.state_h",
            "output"
        ]
    );
}

#[test]
fn layers_goes_with_model_only() {
    let dir = root().join("lstm");
    let out_dir = temp_dir("layers-flag");
    let out = out_dir.join("out.npz");
    std::fs::write(&out, b"stale").unwrap();
    let o = cli(&[
        "run".as_ref(),
        "--layer".as_ref(),
        dir.join("layer.json").as_os_str(),
        "--weights".as_ref(),
        dir.join("weights.npz").as_os_str(),
        "--layers".as_ref(),
        "lstm".as_ref(),
        "--input".as_ref(),
        dir.join("x.npy").as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !out.exists(),
        "a stale output survived a malformed command line"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
