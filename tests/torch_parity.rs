//! `recurrent::interop` against real PyTorch (fixtures from scripts/torch_fixtures.py), round
//! trips through the PyTorch and cuDNN layouts, and the conversions' errors.

mod common;

use common::within_tolerance;
use ndarray::{s, Array1, Array2, ArrayD, Axis, Ix1, Ix2, Ix3};
use recurrent::config::{GRUCellConfig, LSTMCellConfig, SequenceOptions};
use recurrent::interop::{
    from_torch_state_dict, gru_cell_from_torch, gru_from_torch, gru_stack_from_torch, gru_to_torch,
    lstm_cell_from_torch, lstm_from_torch, lstm_stack_from_torch, lstm_to_torch, CudnnCanonical,
    RnnMode, TorchGruParams, TorchLstmParams,
};
use recurrent::keras::npz::{read_f32, read_npz};
use recurrent::layers::{AnyCell, GRUCell, LSTMCell, Output, GRU, LSTM, RNN};
use recurrent::{Activation, Error};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn seq_state() -> SequenceOptions {
    SequenceOptions {
        return_sequences: true,
        return_state: true,
        ..Default::default()
    }
}

struct Case {
    name: String,
    module: String,
    num_layers: usize,
    params: BTreeMap<String, ArrayD<f32>>,
    x: ndarray::Array3<f32>,
    out: BTreeMap<String, ArrayD<f32>>,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures_torch");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/fixtures_torch exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            let meta: Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("case.json")).unwrap())
                    .unwrap();
            Case {
                name: d.file_name().unwrap().to_string_lossy().into_owned(),
                module: meta["module"].as_str().unwrap().to_string(),
                num_layers: meta["num_layers"].as_u64().unwrap() as usize,
                params: read_npz(&d.join("params.npz")).unwrap(),
                x: read_f32(&d.join("x.npy"))
                    .unwrap()
                    .into_dimensionality::<Ix3>()
                    .unwrap(),
                out: read_npz(&d.join("out.npz")).unwrap(),
            }
        })
        .collect()
}

/// Largest |got - want|; panics (naming `what`) outside 1e-5 + 1e-4 * |want|.
fn compare(what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>) -> f32 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let mut worst = 0.0f32;
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        assert!(
            within_tolerance(*a, *b),
            "{what}[flat {i}]: got {a}, want {b}"
        );
        worst = worst.max((a - b).abs());
    }
    worst
}

/// Our run of a fixture: the layer built from PyTorch's state_dict through `interop`.
fn run_case(c: &Case) -> Output {
    let x = c.x.view();
    match (c.module.as_str(), c.num_layers) {
        ("LSTM", 1) => {
            let p: TorchLstmParams = from_torch_state_dict(&c.params, 0).unwrap();
            lstm_from_torch(&p, seq_state()).unwrap().call(x).unwrap()
        }
        ("GRU", 1) => {
            let p = TorchGruParams::from_state_dict(&c.params, 0).unwrap();
            gru_from_torch(&p, seq_state()).unwrap().call(x).unwrap()
        }
        ("LSTM", n) => {
            // A stack of converted cells, by hand and through the helper: the same.
            let cells = (0..n)
                .map(|k| {
                    let p: TorchLstmParams = from_torch_state_dict(&c.params, k).unwrap();
                    AnyCell::from(lstm_cell_from_torch(&p).unwrap())
                })
                .collect();
            let by_hand = RNN::stacked(cells, seq_state()).unwrap().call(x).unwrap();
            let helper = lstm_stack_from_torch(&c.params, n, seq_state())
                .unwrap()
                .call(x)
                .unwrap();
            assert_eq!(by_hand, helper, "{}", c.name);
            helper
        }
        ("GRU", n) => {
            let cells = (0..n)
                .map(|k| {
                    let p: TorchGruParams = from_torch_state_dict(&c.params, k).unwrap();
                    AnyCell::from(gru_cell_from_torch(&p).unwrap())
                })
                .collect();
            let by_hand = RNN::stacked(cells, seq_state()).unwrap().call(x).unwrap();
            let helper = gru_stack_from_torch(&c.params, n, seq_state())
                .unwrap()
                .call(x)
                .unwrap();
            assert_eq!(by_hand, helper, "{}", c.name);
            helper
        }
        (m, _) => panic!("{}: unknown module {m}", c.name),
    }
}

/// Compares output and final states with PyTorch's `output`, `h_n[k]`, `c_n[k]`; returns the
/// largest error.
fn check_against_torch(c: &Case, got: &Output) -> f32 {
    let mut worst = compare(&format!("{} output", c.name), &got.output, &c.out["output"]);
    let per_cell = if c.module == "LSTM" { 2 } else { 1 };
    assert_eq!(got.states.len(), per_cell * c.num_layers, "{}", c.name);
    for k in 0..c.num_layers {
        let h = c.out["h_n"].index_axis(Axis(0), k).to_owned();
        worst = worst.max(compare(
            &format!("{} h_n[{k}]", c.name),
            &got.states[per_cell * k],
            &h,
        ));
        if c.module == "LSTM" {
            let cc = c.out["c_n"].index_axis(Axis(0), k).to_owned();
            worst = worst.max(compare(
                &format!("{} c_n[{k}]", c.name),
                &got.states[per_cell * k + 1],
                &cc,
            ));
        }
    }
    worst
}

#[test]
fn every_fixture_matches_pytorch() {
    let cs = cases();
    let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
    assert!(
        cs.len() >= 6,
        "expected the 6 PyTorch fixtures, found {names:?}"
    );
    for c in &cs {
        let worst = check_against_torch(c, &run_case(c));
        println!("{}: max |error| {worst:e}", c.name);
    }
}

/// The same fixtures, PyTorch -> Keras cell -> cuDNN canonical -> flat -> back -> run.
#[test]
fn every_fixture_matches_pytorch_through_cudnn_canonical() {
    for c in cases() {
        let cells: Vec<AnyCell> = (0..c.num_layers)
            .map(|k| {
                if c.module == "LSTM" {
                    let p: TorchLstmParams = from_torch_state_dict(&c.params, k).unwrap();
                    let can =
                        CudnnCanonical::from_lstm_cell(&lstm_cell_from_torch(&p).unwrap()).unwrap();
                    let (i, h) = p.check().unwrap();
                    let flat = can.to_flat();
                    let back = CudnnCanonical::from_flat(&flat, RnnMode::Lstm, i, h).unwrap();
                    assert_eq!(back, can);
                    AnyCell::from(back.to_lstm_cell().unwrap())
                } else {
                    let p: TorchGruParams = from_torch_state_dict(&c.params, k).unwrap();
                    let can =
                        CudnnCanonical::from_gru_cell(&gru_cell_from_torch(&p).unwrap()).unwrap();
                    let (i, h) = p.check().unwrap();
                    let back =
                        CudnnCanonical::from_flat(&can.to_flat(), RnnMode::Gru, i, h).unwrap();
                    assert_eq!(back, can);
                    AnyCell::from(back.to_gru_cell().unwrap())
                }
            })
            .collect();
        let got = RNN::stacked(cells, seq_state())
            .unwrap()
            .call(c.x.view())
            .unwrap();
        let worst = check_against_torch(&c, &got);
        println!("{} via cuDNN canonical: max |error| {worst:e}", c.name);
    }
}

/// cuDNN's canonical matrices are PyTorch's, cut per gate: the two exports agree.
#[test]
fn cudnn_canonical_is_pytorch_cut_per_gate() {
    for c in cases().into_iter().filter(|c| c.num_layers == 1) {
        let (wi, wh) = (&c.params["weight_ih_l0"], &c.params["weight_hh_l0"]);
        let (can, g) = if c.module == "LSTM" {
            let p: TorchLstmParams = from_torch_state_dict(&c.params, 0).unwrap();
            let cell = lstm_cell_from_torch(&p).unwrap();
            (CudnnCanonical::from_lstm_cell(&cell).unwrap(), 4)
        } else {
            let p: TorchGruParams = from_torch_state_dict(&c.params, 0).unwrap();
            let cell = gru_cell_from_torch(&p).unwrap();
            (CudnnCanonical::from_gru_cell(&cell).unwrap(), 3)
        };
        let h = wh.shape()[1];
        let wi = wi.view().into_dimensionality::<Ix2>().unwrap();
        let wh = wh.view().into_dimensionality::<Ix2>().unwrap();
        for j in 0..g {
            assert_eq!(
                can.weights[j],
                wi.slice(s![j * h..(j + 1) * h, ..]),
                "{}",
                c.name
            );
            assert_eq!(can.weights[g + j], wh.slice(s![j * h..(j + 1) * h, ..]));
        }
        if c.module == "GRU" && c.params.contains_key("bias_ih_l0") {
            // GRU keeps the two biases apart, so they come through exactly.
            let bi = c.params["bias_ih_l0"]
                .view()
                .into_dimensionality::<Ix1>()
                .unwrap();
            let bh = c.params["bias_hh_l0"]
                .view()
                .into_dimensionality::<Ix1>()
                .unwrap();
            for j in 0..g {
                assert_eq!(can.biases[j], bi.slice(s![j * h..(j + 1) * h]));
                assert_eq!(can.biases[g + j], bh.slice(s![j * h..(j + 1) * h]));
            }
        }
    }
}

fn lstm_cell(use_bias: bool, seed: u64) -> LSTMCell {
    let mut cfg = LSTMCellConfig::tf_keras(5);
    cfg.use_bias = use_bias;
    cfg.initializers.bias_initializer =
        recurrent::initializers::Initializer::random_uniform().with_seed(Some(seed));
    LSTMCell::build(cfg, 3, seed).unwrap()
}

fn gru_cell(use_bias: bool, seed: u64) -> GRUCell {
    let mut cfg = GRUCellConfig::tf_keras(5);
    cfg.use_bias = use_bias;
    cfg.initializers.bias_initializer =
        recurrent::initializers::Initializer::random_uniform().with_seed(Some(seed));
    GRUCell::build(cfg, 3, seed).unwrap()
}

#[test]
fn keras_to_torch_to_keras_is_exact() {
    for use_bias in [true, false] {
        let cell = lstm_cell(use_bias, 3);
        let t = lstm_to_torch(&cell).unwrap();
        assert_eq!(t.weight_ih.dim(), (20, 3));
        assert_eq!(t.weight_hh.dim(), (20, 5));
        assert_eq!(t.has_bias(), use_bias);
        // Through a state_dict too.
        let t2: TorchLstmParams = from_torch_state_dict(&t.to_state_dict(0), 0).unwrap();
        assert_eq!(t2, t);
        let back = lstm_cell_from_torch(&t2).unwrap();
        assert_eq!(back.weights(), cell.weights(), "LSTM use_bias={use_bias}");
        let (a, b) = (back.config(), cell.config());
        assert_eq!(
            (a.units, a.activation, a.recurrent_activation, a.use_bias),
            (b.units, b.activation, b.recurrent_activation, b.use_bias)
        );

        let cell = gru_cell(use_bias, 4);
        let t = gru_to_torch(&cell).unwrap();
        assert_eq!(t.weight_ih.dim(), (15, 3));
        let t2: TorchGruParams = from_torch_state_dict(&t.to_state_dict(1), 1).unwrap();
        assert_eq!(t2, t);
        let back = gru_cell_from_torch(&t2).unwrap();
        assert_eq!(back.weights(), cell.weights(), "GRU use_bias={use_bias}");
        // GRU keeps both biases, so torch -> Keras -> torch is exact as well.
        assert_eq!(gru_to_torch(&back).unwrap(), t);
    }
    // The GRU gate order really changes: PyTorch's first row block (r) is Keras's second (r).
    let cell = gru_cell(true, 9);
    let t = gru_to_torch(&cell).unwrap();
    let k = &cell.weights()[0];
    assert_eq!(t.weight_ih[[0, 0]], k[[0, 5]]);
    assert_eq!(t.weight_ih[[5, 0]], k[[0, 0]]);
}

#[test]
fn torch_to_keras_to_torch_keeps_lstm_weights_and_bias_sum() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "lstm_in3_h5")
        .unwrap();
    let p: TorchLstmParams = from_torch_state_dict(&c.params, 0).unwrap();
    let back = lstm_to_torch(&lstm_cell_from_torch(&p).unwrap()).unwrap();
    assert_eq!(back.weight_ih, p.weight_ih);
    assert_eq!(back.weight_hh, p.weight_hh);
    let sum = |q: &TorchLstmParams| q.bias_ih.clone().unwrap() + q.bias_hh.clone().unwrap();
    assert_eq!(sum(&back), sum(&p));
    assert_eq!(back.bias_hh, Some(Array1::zeros(20)));
    // And the re-exported weights still give PyTorch's numbers.
    let got = lstm_from_torch(&back, seq_state())
        .unwrap()
        .call(c.x.view())
        .unwrap();
    check_against_torch(&c, &got);
}

#[test]
fn keras_to_cudnn_canonical_to_flat_and_back_is_exact() {
    for use_bias in [true, false] {
        let cell = lstm_cell(use_bias, 5);
        let can = CudnnCanonical::from_lstm_cell(&cell).unwrap();
        assert_eq!(can.check().unwrap(), (RnnMode::Lstm, 3, 5));
        assert_eq!(can.weights.len(), 8);
        assert_eq!(can.biases.len(), if use_bias { 8 } else { 0 });
        let flat = can.to_flat();
        assert_eq!(flat.len(), RnnMode::Lstm.flat_len(3, 5, use_bias));
        // Id order: W_i (5x3) first, then W_f, ...; W_i[0, :] is the Keras kernel column 0.
        assert_eq!(flat[..3], cell.weights()[0].slice(s![.., 0]).to_vec()[..]);
        let back = CudnnCanonical::from_flat(&flat, RnnMode::Lstm, 3, 5).unwrap();
        assert_eq!(back, can);
        let cell2 = back.to_lstm_cell().unwrap();
        assert_eq!(cell2.weights(), cell.weights(), "LSTM use_bias={use_bias}");

        let cell = gru_cell(use_bias, 6);
        let can = CudnnCanonical::from_gru_cell(&cell).unwrap();
        assert_eq!(can.check().unwrap(), (RnnMode::Gru, 3, 5));
        let flat = can.to_flat();
        assert_eq!(flat.len(), RnnMode::Gru.flat_len(3, 5, use_bias));
        let back = CudnnCanonical::from_flat(&flat, RnnMode::Gru, 3, 5).unwrap();
        assert_eq!(back, can);
        assert_eq!(back.to_gru_cell().unwrap().weights(), cell.weights());
        // Keras CuDNN layout and back.
        let (k, r, b) = can.to_keras_cudnn().unwrap();
        let again =
            CudnnCanonical::from_keras_cudnn(RnnMode::Gru, k.view(), r.view(), b.view()).unwrap();
        if use_bias {
            assert_eq!(again, can);
        } else {
            assert_eq!(again.weights, can.weights);
        }
    }
}

#[test]
fn converted_layers_run_like_the_originals() {
    let x = ndarray::Array3::from_shape_fn((2, 4, 3), |(b, t, f)| {
        ((b * 12 + t * 3 + f) as f32 * 0.37).sin()
    });
    let cell = lstm_cell(true, 7);
    let want = LSTM::from_cell(cell.clone(), seq_state())
        .call(x.view())
        .unwrap();
    let via_torch = lstm_from_torch(&lstm_to_torch(&cell).unwrap(), seq_state())
        .unwrap()
        .call(x.view())
        .unwrap();
    assert_eq!(via_torch, want);
    let cell = gru_cell(true, 8);
    let want = GRU::from_cell(cell.clone(), seq_state())
        .call(x.view())
        .unwrap();
    let via_cudnn = GRU::from_cell(
        CudnnCanonical::from_gru_cell(&cell)
            .unwrap()
            .to_gru_cell()
            .unwrap(),
        seq_state(),
    )
    .call(x.view())
    .unwrap();
    assert_eq!(via_cudnn, want);
}

// ---------------------------------------------------------------- errors

fn expect_err<T: std::fmt::Debug>(r: recurrent::Result<T>, needle: &str) -> Error {
    let e = r.expect_err("expected an error");
    let text = e.to_string();
    assert!(
        text.contains(needle),
        "error `{text}` does not name `{needle}`"
    );
    e
}

#[test]
fn wrong_shapes_are_errors_naming_the_field() {
    let good = lstm_to_torch(&lstm_cell(true, 1)).unwrap();
    let mut p = good.clone();
    p.weight_hh = Array2::zeros((20, 4));
    let e = expect_err(lstm_from_torch(&p, seq_state()), "weight_hh");
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let mut p = good.clone();
    p.weight_ih = Array2::zeros((16, 3));
    let e = expect_err(lstm_cell_from_torch(&p), "weight_ih");
    assert!(e.to_string().contains("(20, 3)"), "{e}");
    let mut p = good.clone();
    p.bias_ih = Some(Array1::zeros(19));
    expect_err(lstm_cell_from_torch(&p), "bias_ih");
    let mut p = good.clone();
    p.bias_hh = None;
    let e = expect_err(lstm_cell_from_torch(&p), "bias_hh");
    assert!(matches!(e, Error::MissingWeight { .. }), "{e:?}");

    // A GRU's parameters read as an LSTM's: 15 rows are not 4 * 5.
    let gru = gru_to_torch(&gru_cell(true, 2)).unwrap().to_state_dict(0);
    let e = expect_err(
        from_torch_state_dict::<TorchLstmParams>(&gru, 0),
        "weight_hh_l0",
    );
    assert!(e.to_string().contains("(20, 5)"), "{e}");
    // A state_dict entry of the wrong rank.
    let mut m = good.to_state_dict(0);
    m.insert("weight_ih_l0".into(), ArrayD::zeros(vec![60]));
    expect_err(
        from_torch_state_dict::<TorchLstmParams>(&m, 0),
        "weight_ih_l0",
    );
    let mut m = good.to_state_dict(0);
    m.insert("bias_hh_l0".into(), ArrayD::zeros(vec![20, 1]));
    expect_err(
        from_torch_state_dict::<TorchLstmParams>(&m, 0),
        "bias_hh_l0",
    );

    // cuDNN canonical.
    let e = expect_err(
        CudnnCanonical::from_flat(&[0.0; 10], RnnMode::Lstm, 3, 5),
        "flat",
    );
    assert!(e.to_string().contains("(200,)"), "{e}");
    let mut can = CudnnCanonical::from_lstm_cell(&lstm_cell(true, 1)).unwrap();
    can.weights[5] = Array2::zeros((5, 3));
    expect_err(can.to_lstm_cell(), "weights[5]");
    let mut can = CudnnCanonical::from_lstm_cell(&lstm_cell(true, 1)).unwrap();
    can.biases.pop();
    expect_err(can.to_lstm_cell(), "biases");
    let can = CudnnCanonical::from_gru_cell(&gru_cell(true, 1)).unwrap();
    expect_err(can.to_lstm_cell(), "expected LSTM parameters");
    expect_err(
        CudnnCanonical::from_keras_cudnn(
            RnnMode::Gru,
            Array2::zeros((3, 15)).view(),
            Array2::zeros((5, 15)).view(),
            Array1::zeros(15).view(),
        ),
        "bias",
    );
}

#[test]
fn activations_pytorch_lacks_are_errors() {
    // Keras 2's default LSTM (hard_sigmoid gates).
    let cell = LSTMCell::build(LSTMCellConfig::new(5), 3, 1).unwrap();
    let e = expect_err(lstm_to_torch(&cell), "recurrent_activation");
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("hard_sigmoid"), "{e}");
    expect_err(
        CudnnCanonical::from_lstm_cell(&cell),
        "recurrent_activation",
    );
    let mut cfg = LSTMCellConfig::tf_keras(5);
    cfg.activation = Activation::Relu;
    let cell = LSTMCell::build(cfg, 3, 1).unwrap();
    expect_err(lstm_to_torch(&cell), "activation");

    // A reset-before GRU (Keras 2's default), even with sigmoid gates.
    let mut cfg = GRUCellConfig::tf_keras(5);
    cfg.reset_after = false;
    let cell = GRUCell::build(cfg, 3, 1).unwrap();
    let e = expect_err(gru_to_torch(&cell), "reset_after");
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    expect_err(CudnnCanonical::from_gru_cell(&cell), "reset_after");
    let mut cfg = GRUCellConfig::tf_keras(5);
    cfg.recurrent_activation = Activation::HardSigmoid;
    let cell = GRUCell::build(cfg, 3, 1).unwrap();
    expect_err(gru_to_torch(&cell), "recurrent_activation");
}

#[test]
fn missing_and_unsupported_state_dict_entries_are_errors() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "lstm_2layer_in3_h5")
        .unwrap();
    let mut m = c.params.clone();
    m.remove("weight_ih_l1");
    let e = expect_err(lstm_stack_from_torch(&m, 2, seq_state()), "weight_ih_l1");
    assert!(matches!(e, Error::MissingWeight { .. }), "{e:?}");
    assert!(e.to_string().contains("(20, input_size)"), "{e}");
    // Layer 2 does not exist.
    expect_err(
        from_torch_state_dict::<TorchLstmParams>(&c.params, 2),
        "weight_hh_l2",
    );
    // One bias without the other.
    let mut m = c.params.clone();
    m.remove("bias_hh_l0");
    let e = expect_err(
        from_torch_state_dict::<TorchLstmParams>(&m, 0),
        "bias_hh_l0",
    );
    assert!(matches!(e, Error::MissingWeight { .. }), "{e:?}");
    // Module prefixes are not stripped for the caller.
    let prefixed: BTreeMap<String, ArrayD<f32>> = c
        .params
        .iter()
        .map(|(k, v)| (format!("lstm.{k}"), v.clone()))
        .collect();
    expect_err(
        from_torch_state_dict::<TorchLstmParams>(&prefixed, 0),
        "weight_hh_l0",
    );
    // Bidirectional and projected modules.
    let mut m = c.params.clone();
    m.insert(
        "weight_ih_l0_reverse".into(),
        c.params["weight_ih_l0"].clone(),
    );
    let e = expect_err(
        from_torch_state_dict::<TorchLstmParams>(&m, 0),
        "weight_ih_l0_reverse",
    );
    assert!(e.to_string().contains("bidirectional"), "{e}");
    assert!(matches!(e, Error::UnexpectedWeight { .. }), "{e:?}");
    let mut m = c.params.clone();
    m.insert("weight_hr_l0".into(), ArrayD::zeros(vec![5, 2]));
    expect_err(
        from_torch_state_dict::<TorchLstmParams>(&m, 0),
        "weight_hr_l0",
    );
    // A stack needs at least one layer.
    expect_err(lstm_stack_from_torch(&c.params, 0, seq_state()), "cells");
}
