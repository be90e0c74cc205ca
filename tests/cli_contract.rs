//! The `recurrent run` command line against its contract (docs/keras-interchange.md), through
//! the real binary: a good run writes exactly the expected `out.npz`; every bad input exits
//! non-zero with ONE `error: ` line on stderr that names the file (or flag), the field, what was
//! expected and what was found, and leaves no output file (not even a stale one) and no
//! temporary file beside it.

mod common;

use common::{compare, temp_dir};
use ndarray::{ArrayD, IxDyn};
use recurrent::keras::npz;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_recurrent");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One run of the binary: copies of a fixture's input files in `in_dir` (free to be modified),
/// and an output directory of its own so that leftovers can be seen.
struct Case {
    root: PathBuf,
    layer: PathBuf,
    weights: PathBuf,
    input: PathBuf,
    mask: Option<PathBuf>,
    initial_state: Option<PathBuf>,
    out_dir: PathBuf,
}

impl Case {
    fn new(name: &str) -> Case {
        let src = fixture(name);
        assert!(src.join("layer.json").is_file(), "no fixture {name}");
        let root = temp_dir(&format!("cli-{name}"));
        let in_dir = root.join("in");
        let out_dir = root.join("out");
        std::fs::create_dir_all(&in_dir).expect("in dir");
        std::fs::create_dir_all(&out_dir).expect("out dir");
        let copy = |f: &str| -> Option<PathBuf> {
            let from = src.join(f);
            if !from.is_file() {
                return None;
            }
            let to = in_dir.join(f);
            std::fs::copy(&from, &to).expect("copy fixture file");
            Some(to)
        };
        Case {
            layer: copy("layer.json").expect("layer.json"),
            weights: copy("weights.npz").expect("weights.npz"),
            input: copy("x.npy").expect("x.npy"),
            mask: copy("mask.npy"),
            initial_state: copy("initial_state.npz"),
            out_dir,
            root,
        }
    }

    fn in_path(&self, file: &str) -> PathBuf {
        self.root.join("in").join(file)
    }

    fn output(&self) -> PathBuf {
        self.out_dir.join("out.npz")
    }

    fn want(&self, fixture_name: &str) -> BTreeMap<String, ArrayD<f32>> {
        npz::read_npz(&fixture(fixture_name).join("out.npz")).expect("fixture out.npz")
    }

    fn read_weights(&self) -> BTreeMap<String, ArrayD<f32>> {
        npz::read_npz(&self.weights).expect("weights.npz")
    }

    fn write_weights(&self, m: &BTreeMap<String, ArrayD<f32>>) {
        write_npz(&self.weights, m);
    }

    fn read_state(&self) -> BTreeMap<String, ArrayD<f32>> {
        npz::read_npz(
            self.initial_state
                .as_ref()
                .expect("fixture has initial_state.npz"),
        )
        .expect("initial_state.npz")
    }

    fn write_state(&self, m: &BTreeMap<String, ArrayD<f32>>) {
        write_npz(
            self.initial_state
                .as_ref()
                .expect("fixture has initial_state.npz"),
            m,
        );
    }

    fn read_x(&self) -> ArrayD<f32> {
        npz::read_f32(&self.input).expect("x.npy")
    }

    fn write_x(&self, x: &ArrayD<f32>) {
        ndarray_npy::write_npy(&self.input, x).expect("write x.npy");
    }

    fn edit_layer(&self, f: impl FnOnce(&mut Value)) {
        let text = std::fs::read_to_string(&self.layer).expect("layer.json");
        let mut v: Value = serde_json::from_str(&text).expect("fixture layer.json is JSON");
        f(&mut v);
        std::fs::write(&self.layer, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }

    fn config(v: &mut Value) -> &mut serde_json::Map<String, Value> {
        v.get_mut("config")
            .and_then(|c| c.as_object_mut())
            .expect("config object")
    }

    /// `recurrent run` with this case's files and `extra` arguments appended.
    fn run(&self, extra: &[&str]) -> Output {
        let mut args: Vec<OsString> = vec![
            "run".into(),
            "--layer".into(),
            self.layer.clone().into(),
            "--weights".into(),
            self.weights.clone().into(),
            "--input".into(),
            self.input.clone().into(),
        ];
        if let Some(m) = &self.mask {
            args.push("--mask".into());
            args.push(m.clone().into());
        }
        if let Some(s) = &self.initial_state {
            args.push("--initial-state".into());
            args.push(s.clone().into());
        }
        args.push("--output".into());
        args.push(self.output().into());
        args.extend(extra.iter().map(OsString::from));
        Command::new(BIN)
            .args(&args)
            .output()
            .expect("run the recurrent binary")
    }

    fn out_dir_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.out_dir)
            .expect("out dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    /// Runs and expects success: exit 0, empty stderr, only `out.npz` in the output directory.
    /// Returns what was written.
    fn expect_ok(&self, extra: &[&str]) -> BTreeMap<String, ArrayD<f32>> {
        let out = self.run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "expected success, got {:?}; stderr: {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "stderr not empty: {stderr}");
        assert_eq!(
            self.out_dir_entries(),
            vec!["out.npz".to_string()],
            "the output directory holds exactly out.npz"
        );
        npz::read_npz(&self.output()).expect("read out.npz")
    }

    /// Puts a stale (valid) `out.npz` at `--output`, runs, and checks the failure contract.
    /// Every string of `needles` must be in the one error line, which is returned.
    fn expect_error(&self, extra: &[&str], needles: &[&str]) -> String {
        let stale: BTreeMap<String, ArrayD<f32>> = [(
            "output".to_string(),
            ArrayD::<f32>::from_elem(IxDyn(&[1, 2]), 7.0),
        )]
        .into_iter()
        .collect();
        write_npz(&self.output(), &stale);
        assert!(self.output().is_file());
        let out = self.run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "expected failure, got {:?}; stderr: {stderr}",
            out.status
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr, got {}: {stderr:?}",
            lines.len()
        );
        let line = lines[0];
        println!("{line}");
        assert!(
            line.starts_with("error: "),
            "stderr line does not start with `error: `: {line:?}"
        );
        for n in needles {
            assert!(line.contains(n), "error line lacks {n:?}: {line:?}");
        }
        assert!(
            !self.output().exists(),
            "a (stale) out.npz is left at --output after the failure: {line}"
        );
        let left = self.out_dir_entries();
        assert!(
            left.is_empty(),
            "leftover files in the output directory: {left:?} ({line})"
        );
        line.to_string()
    }

    fn cleanup(self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn write_npz(path: &Path, m: &BTreeMap<String, ArrayD<f32>>) {
    let arrays: Vec<(String, ArrayD<f32>)> =
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    npz::write_npz_atomic(path, &arrays).expect("write npz");
}

fn zeros(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::zeros(IxDyn(shape))
}

/// A deterministic non-trivial array (so that runs that wrongly succeed give real numbers).
fn ramp(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect(),
    )
    .unwrap()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn names(m: &BTreeMap<String, ArrayD<f32>>) -> Vec<&str> {
    m.keys().map(|k| k.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Success
// ---------------------------------------------------------------------------------------------

#[test]
fn lstm_return_state_with_initial_state_matches_keras() {
    let name = "lstm_return_state_initial_state";
    let c = Case::new(name);
    let got = c.expect_ok(&[]);
    assert_eq!(names(&got), vec!["output", "state_c", "state_h"]);
    let worst = compare(&got, &c.want(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(worst.is_finite());
    c.cleanup();
}

#[test]
fn conv_lstm2d_return_state_matches_keras() {
    let name = "conv_lstm2d_return_state";
    let c = Case::new(name);
    let got = c.expect_ok(&[]);
    assert_eq!(names(&got), vec!["output", "state_c", "state_h"]);
    compare(&got, &c.want(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    c.cleanup();
}

#[test]
fn lstm_with_mask_matches_keras() {
    let name = "lstm_go_backwards_mask_holes_seq";
    let c = Case::new(name);
    assert!(c.mask.is_some());
    let got = c.expect_ok(&[]);
    assert_eq!(names(&got), vec!["output"]);
    compare(&got, &c.want(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    c.cleanup();
}

#[test]
fn success_replaces_a_stale_output() {
    let name = "lstm_default";
    let c = Case::new(name);
    let stale: BTreeMap<String, ArrayD<f32>> = [
        ("output".to_string(), zeros(&[9, 9])),
        ("junk".to_string(), zeros(&[1])),
    ]
    .into_iter()
    .collect();
    write_npz(&c.output(), &stale);
    let got = c.expect_ok(&[]);
    assert_eq!(names(&got), vec!["output"]);
    compare(&got, &c.want(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// 2. Bad inputs: x.npy
// ---------------------------------------------------------------------------------------------

#[test]
fn lstm_input_of_rank_2_is_rejected() {
    let c = Case::new("lstm_default");
    c.write_x(&ramp(&[10, 3]));
    let p = path_str(&c.input);
    c.expect_error(&[], &[&p, "input", "expected", "(batch, time", "(10, 3)"]);
    c.cleanup();
}

#[test]
fn lstm_input_of_wrong_feature_size_is_rejected() {
    let c = Case::new("lstm_default");
    assert_eq!(c.read_x().shape(), &[2, 5, 3]);
    c.write_x(&ramp(&[2, 5, 4]));
    let p = path_str(&c.input);
    c.expect_error(&[], &[&p, "input", "expected", "3)", "(2, 5, 4)"]);
    c.cleanup();
}

#[test]
fn conv_lstm2d_input_of_rank_4_is_rejected() {
    let c = Case::new("conv_lstm2d_return_state");
    assert_eq!(c.read_x().shape(), &[2, 3, 5, 5, 2]);
    c.write_x(&ramp(&[2, 3, 5, 5]));
    let p = path_str(&c.input);
    c.expect_error(
        &[],
        &[
            &p,
            "input",
            "expected",
            "(batch, time, rows, cols, 2)",
            "(2, 3, 5, 5)",
        ],
    );
    c.cleanup();
}

#[test]
fn conv_lstm2d_input_with_wrong_channels_is_rejected() {
    let c = Case::new("conv_lstm2d_return_state");
    c.write_x(&ramp(&[2, 3, 5, 5, 4]));
    let p = path_str(&c.input);
    c.expect_error(
        &[],
        &[
            &p,
            "input",
            "expected",
            "(batch, time, rows, cols, 2)",
            "(2, 3, 5, 5, 4)",
        ],
    );
    c.cleanup();
}

#[test]
fn input_that_is_not_an_npy_file_is_rejected() {
    let c = Case::new("lstm_default");
    let junk: Vec<u8> = (0u32..300)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&c.input, junk).unwrap();
    let p = path_str(&c.input);
    c.expect_error(&[], &[&p, "npy"]);
    c.cleanup();
}

#[test]
fn missing_input_file_is_rejected() {
    let mut c = Case::new("lstm_default");
    c.input = c.in_path("does_not_exist.npy");
    let p = path_str(&c.input);
    let line = c.expect_error(&[], &[&p]);
    assert!(
        line.to_lowercase().contains("no such file"),
        "does not say the file is missing: {line}"
    );
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// mask.npy
// ---------------------------------------------------------------------------------------------

#[test]
fn mask_of_wrong_shape_is_rejected() {
    let c = Case::new("lstm_go_backwards_mask_holes_seq");
    let m = c.mask.clone().unwrap();
    ndarray_npy::write_npy(&m, &ndarray::Array2::<bool>::from_elem((3, 5), true)).unwrap();
    let p = path_str(&m);
    c.expect_error(&[], &[&p, "mask", "expected", "(3, 6)", "(3, 5)"]);
    c.cleanup();
}

#[test]
fn mask_of_rank_1_is_rejected() {
    let c = Case::new("lstm_go_backwards_mask_holes_seq");
    let m = c.mask.clone().unwrap();
    ndarray_npy::write_npy(&m, &ndarray::Array1::<bool>::from_elem(18, true)).unwrap();
    let p = path_str(&m);
    c.expect_error(&[], &[&p, "mask", "expected", "(18,)"]);
    c.cleanup();
}

/// Keras casts a mask it is given to bool (nonzero: a real step), so int and float 0/1 masks
/// give the bool mask's outputs.
#[test]
fn integer_and_float_masks_read_as_keras_casts_them() {
    let name = "lstm_go_backwards_mask_holes_seq";
    let c = Case::new(name);
    let m = c.mask.clone().unwrap();
    let bools: ndarray::Array2<bool> = ndarray_npy::read_npy(&m).unwrap();
    for kind in ["i64", "u8", "f32", "f64 scaled"] {
        match kind {
            "i64" => ndarray_npy::write_npy(&m, &bools.mapv(i64::from)).unwrap(),
            "u8" => ndarray_npy::write_npy(&m, &bools.mapv(u8::from)).unwrap(),
            "f32" => ndarray_npy::write_npy(&m, &bools.mapv(|b| f32::from(u8::from(b)))).unwrap(),
            _ => ndarray_npy::write_npy(&m, &bools.mapv(|b| if b { 2.5f64 } else { 0.0 })).unwrap(),
        }
        let got = c.expect_ok(&[]);
        compare(&got, &c.want(name)).unwrap_or_else(|e| panic!("{kind} mask: {e}"));
    }
    c.cleanup();
}

#[test]
fn mask_that_is_not_a_numeric_npy_array_is_rejected() {
    let c = Case::new("lstm_go_backwards_mask_holes_seq");
    let m = c.mask.clone().unwrap();
    std::fs::write(&m, b"not an npy file").unwrap();
    let p = path_str(&m);
    c.expect_error(&[], &[&p, "expected", "bool"]);
    c.cleanup();
}

#[test]
fn mask_given_to_cudnn_lstm_is_rejected() {
    let mut c = Case::new("cudnn_lstm_default");
    assert_eq!(c.read_x().shape(), &[2, 5, 3]);
    let m = c.in_path("mask.npy");
    ndarray_npy::write_npy(&m, &ndarray::Array2::<bool>::from_elem((2, 5), true)).unwrap();
    c.mask = Some(m.clone());
    let p = path_str(&m);
    c.expect_error(&[], &[&p, "mask", "CuDNNLSTM", "support"]);
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// initial_state.npz
// ---------------------------------------------------------------------------------------------

#[test]
fn lstm_initial_state_without_c_is_rejected() {
    let c = Case::new("lstm_return_state_initial_state");
    let mut s = c.read_state();
    assert!(s.remove("c").is_some());
    c.write_state(&s);
    let p = path_str(c.initial_state.as_ref().unwrap());
    c.expect_error(&[], &[&p, "`c`", "missing", "expected"]);
    c.cleanup();
}

#[test]
fn initial_state_of_wrong_shape_is_rejected() {
    let c = Case::new("lstm_return_state_initial_state");
    let mut s = c.read_state();
    assert_eq!(s["h"].shape(), &[2, 4]);
    s.insert("h".into(), ramp(&[2, 5]));
    c.write_state(&s);
    let p = path_str(c.initial_state.as_ref().unwrap());
    c.expect_error(&[], &[&p, "h", "expected", "(2, 4)", "(2, 5)"]);
    c.cleanup();
}

#[test]
fn initial_state_with_an_unknown_array_is_rejected() {
    let c = Case::new("lstm_return_state_initial_state");
    let mut s = c.read_state();
    s.insert("carry_x".into(), zeros(&[2, 4]));
    c.write_state(&s);
    let p = path_str(c.initial_state.as_ref().unwrap());
    c.expect_error(&[], &[&p, "carry_x", "expected", "h, c"]);
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// weights.npz
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_kernel_is_rejected() {
    let c = Case::new("lstm_default");
    let mut w = c.read_weights();
    assert!(w.remove("kernel").is_some());
    c.write_weights(&w);
    let p = path_str(&c.weights);
    c.expect_error(&[], &[&p, "`kernel`", "missing", "expected", "16)"]);
    c.cleanup();
}

#[test]
fn recurrent_kernel_of_wrong_shape_is_rejected() {
    let c = Case::new("lstm_default");
    let mut w = c.read_weights();
    assert_eq!(w["recurrent_kernel"].shape(), &[4, 16]);
    w.insert("recurrent_kernel".into(), ramp(&[5, 16]));
    c.write_weights(&w);
    let p = path_str(&c.weights);
    c.expect_error(
        &[],
        &[&p, "recurrent_kernel", "expected", "(4, 16)", "(5, 16)"],
    );
    c.cleanup();
}

#[test]
fn bias_with_use_bias_false_is_rejected() {
    let c = Case::new("lstm_no_bias_seq");
    let mut w = c.read_weights();
    assert!(!w.contains_key("bias"));
    w.insert("bias".into(), zeros(&[16]));
    c.write_weights(&w);
    let p = path_str(&c.weights);
    c.expect_error(&[], &[&p, "`bias`", "use_bias"]);
    c.cleanup();
}

#[test]
fn unknown_extra_weight_is_rejected() {
    let c = Case::new("lstm_default");
    let mut w = c.read_weights();
    w.insert("gamma".into(), zeros(&[16]));
    c.write_weights(&w);
    let p = path_str(&c.weights);
    // What was expected: the layer's weight names.
    c.expect_error(&[], &[&p, "`gamma`", "kernel, recurrent_kernel, bias"]);
    c.cleanup();
}

#[test]
fn cudnn_lstm_bias_of_4u_is_rejected() {
    let c = Case::new("cudnn_lstm_default");
    let mut w = c.read_weights();
    assert_eq!(w["bias"].shape(), &[40]);
    w.insert("bias".into(), zeros(&[20]));
    c.write_weights(&w);
    let p = path_str(&c.weights);
    c.expect_error(&[], &[&p, "bias", "expected", "(40,)", "(20,)"]);
    c.cleanup();
}

#[test]
fn stack_whose_second_kernel_does_not_fit_the_first_output_is_rejected() {
    let c = Case::new("rnn_stack_list_seq_state");
    let mut w = c.read_weights();
    // cells.0 is LSTMCell(3): cells.1 (GRUCell(2)) must read width 3.
    assert_eq!(w["cells.1.kernel"].shape(), &[3, 6]);
    w.insert("cells.1.kernel".into(), ramp(&[4, 6]));
    c.write_weights(&w);
    let p = path_str(&c.weights);
    let line = c.expect_error(&[], &[&p, "kernel", "expect", "4", "3"]);
    assert!(
        line.contains("cells.1.kernel") || line.contains("cells[1]"),
        "does not name the second cell's kernel: {line}"
    );
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// layer.json
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_class_name_is_rejected() {
    let c = Case::new("lstm_default");
    c.edit_layer(|v| v["class_name"] = Value::from("ConvLSTM1D"));
    let p = path_str(&c.layer);
    c.expect_error(&[], &[&p, "class_name", "ConvLSTM1D", "expected", "LSTM"]);
    c.cleanup();
}

#[test]
fn unknown_activation_is_rejected() {
    let c = Case::new("lstm_default");
    c.edit_layer(|v| {
        Case::config(v).insert("activation".into(), Value::from("hard_swish"));
    });
    let p = path_str(&c.layer);
    c.expect_error(&[], &[&p, "activation", "hard_swish", "expected", "tanh"]);
    c.cleanup();
}

#[test]
fn missing_units_is_rejected() {
    let c = Case::new("lstm_default");
    c.edit_layer(|v| {
        assert!(Case::config(v).remove("units").is_some());
    });
    let p = path_str(&c.layer);
    c.expect_error(&[], &[&p, "units", "missing", "expected"]);
    c.cleanup();
}

#[test]
fn layer_json_that_is_not_json_is_rejected() {
    let c = Case::new("lstm_default");
    let text = std::fs::read_to_string(&c.layer).unwrap();
    std::fs::write(&c.layer, &text[..text.len() / 2]).unwrap();
    let p = path_str(&c.layer);
    c.expect_error(&[], &[&p, "JSON", "line"]);
    c.cleanup();
}

#[test]
fn missing_layer_file_is_rejected() {
    let mut c = Case::new("lstm_default");
    c.layer = c.in_path("no_such_layer.json");
    let p = path_str(&c.layer);
    let line = c.expect_error(&[], &[&p]);
    assert!(
        line.to_lowercase().contains("no such file"),
        "does not say the file is missing: {line}"
    );
    c.cleanup();
}

#[test]
fn conv_lstm2d_strides_and_dilation_together_are_rejected() {
    let c = Case::new("conv_lstm2d_strides2_valid_seq");
    c.edit_layer(|v| {
        let cfg = Case::config(v);
        assert_eq!(cfg["strides"], serde_json::json!([2, 2]));
        cfg.insert("dilation_rate".into(), serde_json::json!([2, 2]));
    });
    let p = path_str(&c.layer);
    c.expect_error(&[], &[&p, "strides", "dilation_rate", "(2, 2)"]);
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------------

#[cfg(not(feature = "cuda"))]
#[test]
fn device_cuda_without_the_cuda_feature_is_rejected() {
    let c = Case::new("lstm_default");
    let line = c.expect_error(&["--device", "cuda"], &["cuda", "feature"]);
    assert!(line.contains("`cuda` feature"), "{line}");
    c.cleanup();
}

/// A `cuda` build: on a machine without a driver or device `--device cuda` is one clear error
/// line; where there is a GPU it matches Keras.
#[cfg(feature = "cuda")]
#[test]
fn device_cuda_is_a_clear_error_without_a_gpu_or_matches_keras_with_one() {
    let name = "lstm_default";
    let c = Case::new(name);
    let out = c.run(&["--device", "cuda"]);
    if out.status.success() {
        let got = npz::read_npz(&c.output()).expect("out.npz");
        compare(&got, &c.want(name)).unwrap_or_else(|e| panic!("{name} on cuda: {e}"));
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.trim();
        assert!(
            line.starts_with("error: ") && line.lines().count() == 1,
            "not one error line: {line:?}"
        );
        assert!(
            line.contains("cuda") && (line.contains("driver") || line.contains("device")),
            "does not say what is missing: {line}"
        );
        assert!(!c.output().exists(), "an out.npz was written");
    }
    c.cleanup();
}

#[test]
fn invalid_dtype_is_rejected_without_output() {
    let c = Case::new("lstm_default");
    let out = c.run(&["--dtype", "f64"]);
    assert!(!out.status.success(), "--dtype f64 was accepted");
    assert!(!c.output().exists(), "an out.npz was written");
    assert!(c.out_dir_entries().is_empty());
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// 3. Non-finite weights are data, not errors
// ---------------------------------------------------------------------------------------------

#[test]
fn nan_weight_runs_and_gives_nan_output() {
    let c = Case::new("lstm_default");
    let mut w = c.read_weights();
    w.get_mut("kernel").unwrap()[[0, 0]] = f32::NAN;
    w.get_mut("recurrent_kernel").unwrap()[[1, 1]] = f32::INFINITY;
    c.write_weights(&w);
    let got = c.expect_ok(&[]);
    assert_eq!(names(&got), vec!["output"]);
    assert!(
        got["output"].iter().any(|v| v.is_nan()),
        "a NaN weight gave no NaN output: {:?}",
        got["output"]
    );
    c.cleanup();
}

// ---------------------------------------------------------------------------------------------
// 4. f16 / bf16 storage on the CPU
// ---------------------------------------------------------------------------------------------

fn half_storage_close_to_f32(dtype: &str) {
    let name = "lstm_return_state_initial_state";
    let c = Case::new(name);
    let reference = c.expect_ok(&["--dtype", "f32"]);
    compare(&reference, &c.want(name)).unwrap_or_else(|e| panic!("f32 run: {e}"));
    std::fs::remove_file(c.output()).unwrap();
    let got = c.expect_ok(&["--dtype", dtype]);
    assert_eq!(names(&got), names(&reference));
    let mut differs = false;
    for (n, want) in &reference {
        let g = &got[n];
        assert_eq!(g.shape(), want.shape(), "{dtype} {n}");
        for (i, (a, b)) in g.iter().zip(want.iter()).enumerate() {
            assert!(
                (a - b).abs() <= 1e-2 + 1e-2 * b.abs(),
                "{dtype} {n}[flat {i}]: got {a}, f32 gives {b}"
            );
            differs |= a != b;
        }
    }
    assert!(differs, "--dtype {dtype} gave bit-identical f32 results");
    c.cleanup();
}

#[test]
fn dtype_f16_stays_close_to_f32() {
    half_storage_close_to_f32("f16");
}

#[test]
fn dtype_bf16_stays_close_to_f32() {
    half_storage_close_to_f32("bf16");
}

#[test]
fn bench_of_four_stacked_lstm_cells_reports_one_json_row() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "--layer",
            "lstm4",
            "--batch",
            "2",
            "--seq",
            "3",
            "--input",
            "8",
            "--units",
            "16",
            "--repeats",
            "2",
            "--json",
        ])
        .output()
        .expect("run the binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    assert_eq!(row["layer"], "lstm4");
    assert_eq!(row["layers"], 4);
    assert_eq!(row["dtype"], "f32");
    // 2 T B gates H ((I + H) + 3 * 2H) = 2 * 3 * 2 * 4 * 16 * (24 + 96)
    let flops = 2.0 * 3.0 * 2.0 * 4.0 * 16.0 * 120.0;
    let us = row["median_us"].as_f64().expect("median_us");
    let gflops = row["gflops"].as_f64().expect("gflops");
    assert!((gflops - flops / (us * 1e3)).abs() <= 1e-9 * gflops.max(1.0));
}

#[test]
fn bench_refuses_a_gpu_dtype_on_the_cpu() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench", "--layer", "lstm", "--batch", "1", "--seq", "2", "--input", "4", "--units",
            "4", "--dtype", "bf16",
        ])
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dtype") && err.contains("bf16"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing timed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bench_refuses_a_cuda_path_on_the_cpu() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "--layer",
            "gru",
            "--batch",
            "1",
            "--seq",
            "2",
            "--input",
            "4",
            "--units",
            "4",
            "--cuda-path",
            "persistent",
        ])
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cuda-path") && err.contains("--device cuda"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
