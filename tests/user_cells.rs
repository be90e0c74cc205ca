//! User-defined cells (the Keras docs' `MinimalRNNCell`) run by `RNN`, alone and stacked with
//! built-in cells; constants; masks; errors from misbehaving cells; the built-in cells one step
//! at a time; stateful layers; building layers from initializers.
//!
//! References are hand-written loops over the Keras 2 equations (see
//! `shared/docs/keras2-semantics.md`), not the crate's own time loop.

mod common;

use ndarray::{s, Array1, Array2, Array3, ArrayD, ArrayView2, ArrayView3, ArrayViewD, Axis, Ix2};
use recurrent::config::{GRUCellConfig, LSTMCellConfig, SequenceOptions, SimpleRNNCellConfig};
use recurrent::initializers::Initializer;
use recurrent::layers::{
    AnyCell, CallArgs, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, GRU, LSTM, RNN,
};
use recurrent::{Activation, Cell, Error, Result};

// ---------------------------------------------------------------- helpers

/// A seeded 2-D tensor from `init`.
fn w2(init: Initializer, shape: (usize, usize), seed: u64, salt: u64) -> Array2<f32> {
    init.with_seed(Some(seed))
        .generate(&[shape.0, shape.1], salt)
        .expect("generate")
        .into_dimensionality::<Ix2>()
        .expect("rank 2")
}

/// Normal weights with a large enough spread that every term matters.
fn normal(shape: (usize, usize), seed: u64, salt: u64) -> Array2<f32> {
    let init = Initializer::RandomNormal {
        mean: 0.0,
        stddev: 0.5,
        seed: None,
    };
    w2(init, shape, seed, salt)
}

fn normal1(len: usize, seed: u64, salt: u64) -> Array1<f32> {
    normal((1, len), seed, salt).row(0).to_owned()
}

/// A fixed, non-trivial input `(batch, time, features)`.
fn input(batch: usize, time: usize, features: usize, salt: usize) -> Array3<f32> {
    Array3::from_shape_fn((batch, time, features), |(b, t, f)| {
        ((b * 31 + t * 7 + f * 3 + salt * 101) as f32 * 0.37).sin()
    })
}

fn view2(a: &ArrayD<f32>) -> ArrayView2<'_, f32> {
    a.view().into_dimensionality::<Ix2>().expect("rank 2")
}

fn view3(a: &ArrayD<f32>) -> ArrayView3<'_, f32> {
    a.view().into_dimensionality().expect("rank 3")
}

/// Panics unless `got` and `want` have the same shape and every element is within `tol`.
fn assert_close(got: ArrayViewD<f32>, want: ArrayViewD<f32>, tol: f32, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        let d = (a - b).abs();
        assert!(
            d <= tol,
            "{what}[flat {i}]: got {a}, want {b} (|diff| {d} > {tol})"
        );
    }
    // Not a tautology: make sure something non-zero was compared.
    assert!(
        want.iter().any(|v| v.abs() > 1e-4),
        "{what}: the reference is all (near) zeros, the comparison proves nothing"
    );
}

fn assert_close2(got: ArrayView2<f32>, want: ArrayView2<f32>, tol: f32, what: &str) {
    assert_close(got.into_dyn(), want.into_dyn(), tol, what);
}

fn max_abs_diff(a: ArrayViewD<f32>, b: ArrayViewD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The activations the references below use, written out independently of the crate.
fn act(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => sigmoid(x),
        Activation::HardSigmoid => (0.2 * x + 0.5).clamp(0.0, 1.0),
        Activation::Linear => x,
        Activation::Relu => x.max(0.0),
        other => panic!("reference activation {other:?} not written"),
    }
}

/// `x (b, i) · w (i, o)` as plain loops.
fn matmul(x: ArrayView2<f32>, w: ArrayView2<f32>) -> Array2<f32> {
    let (b, i) = x.dim();
    let (i2, o) = w.dim();
    assert_eq!(i, i2);
    let mut y = Array2::zeros((b, o));
    for r in 0..b {
        for c in 0..o {
            let mut acc = 0.0f64;
            for k in 0..i {
                acc += x[(r, k)] as f64 * w[(k, c)] as f64;
            }
            y[(r, c)] = acc as f32;
        }
    }
    y
}

/// Whether an error message names cell `k` of an `RNN` (`cells[k]` or `cells.k`).
fn names_cell(message: &str, k: usize) -> bool {
    message.contains(&format!("cells[{k}]")) || message.contains(&format!("cells.{k}"))
}

fn err_of<T: std::fmt::Debug>(r: Result<T>, what: &str) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected an Err, got Ok({v:?})"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- user cells

/// The Keras docs' `MinimalRNNCell`: `output = h = x · kernel + h_prev · recurrent_kernel`.
#[derive(Debug, Clone)]
struct MinimalRNNCell {
    kernel: Array2<f32>,
    recurrent_kernel: Array2<f32>,
}

impl MinimalRNNCell {
    /// `kernel` from Keras's `'uniform'` (scaled up so that the states move), `recurrent_kernel`
    /// orthogonal times 0.9 (so that long loops stay bounded).
    fn build(units: usize, input_dim: usize, seed: u64) -> Self {
        let uniform = Initializer::RandomUniform {
            minval: -0.5,
            maxval: 0.5,
            seed: None,
        };
        let orth = Initializer::Orthogonal {
            gain: 0.9,
            seed: None,
        };
        MinimalRNNCell {
            kernel: w2(uniform, (input_dim, units), seed, 1),
            recurrent_kernel: w2(orth, (units, units), seed, 2),
        }
    }

    fn units(&self) -> usize {
        self.kernel.ncols()
    }
}

impl Cell for MinimalRNNCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.units()]
    }
    fn output_size(&self) -> usize {
        self.units()
    }
    fn input_size(&self) -> Option<usize> {
        Some(self.kernel.nrows())
    }
    fn call(
        &self,
        inputs: ArrayView2<f32>,
        states: &[ArrayView2<f32>],
        constants: &[ArrayView2<f32>],
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        // The `Cell` contract: a cell that does not accept constants is never given any.
        if !constants.is_empty() {
            return Err(Error::invalid(
                "MinimalRNNCell",
                "was given constants although accepts_constants() is false",
            ));
        }
        let out = inputs.dot(&self.kernel) + states[0].dot(&self.recurrent_kernel);
        Ok((out.clone(), vec![out]))
    }
}

/// `MinimalRNNCell` plus `constants[0] · constant_kernel` (the Keras docs' constants section).
#[derive(Debug, Clone)]
struct ConstantsCell {
    inner: MinimalRNNCell,
    constant_kernel: Array2<f32>,
}

impl ConstantsCell {
    fn build(units: usize, input_dim: usize, constant_dim: usize, seed: u64) -> Self {
        ConstantsCell {
            inner: MinimalRNNCell::build(units, input_dim, seed),
            constant_kernel: normal((constant_dim, units), seed, 3),
        }
    }
}

impl Cell for ConstantsCell {
    fn state_size(&self) -> Vec<usize> {
        self.inner.state_size()
    }
    fn output_size(&self) -> usize {
        self.inner.output_size()
    }
    fn input_size(&self) -> Option<usize> {
        self.inner.input_size()
    }
    fn accepts_constants(&self) -> bool {
        true
    }
    fn call(
        &self,
        inputs: ArrayView2<f32>,
        states: &[ArrayView2<f32>],
        constants: &[ArrayView2<f32>],
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        let c = constants
            .first()
            .ok_or_else(|| Error::invalid("ConstantsCell", "no constants given"))?;
        let (h, _) = self.inner.call(inputs, states, &[])?;
        let out = h + c.dot(&self.constant_kernel);
        Ok((out.clone(), vec![out]))
    }
}

/// What a misbehaving cell gets wrong.
#[derive(Debug, Clone, Copy)]
enum Fault {
    StateTooWide,
    TooManyStates,
    OutputTooNarrow,
}

/// A cell that declares `state_size = [units]` but breaks its promise at the first step.
#[derive(Debug, Clone)]
struct BadCell {
    units: usize,
    fault: Fault,
}

impl Cell for BadCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.units]
    }
    fn output_size(&self) -> usize {
        self.units
    }
    fn call(
        &self,
        inputs: ArrayView2<f32>,
        _states: &[ArrayView2<f32>],
        _constants: &[ArrayView2<f32>],
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        let b = inputs.nrows();
        let u = self.units;
        Ok(match self.fault {
            Fault::StateTooWide => (Array2::zeros((b, u)), vec![Array2::zeros((b, u + 1))]),
            Fault::TooManyStates => (
                Array2::zeros((b, u)),
                vec![Array2::zeros((b, u)), Array2::zeros((b, u))],
            ),
            Fault::OutputTooNarrow => (Array2::zeros((b, u - 1)), vec![Array2::zeros((b, u))]),
        })
    }
}

/// The reference loop for `MinimalRNNCell` (plus a constant term when `constant` is given),
/// with Keras's mask and go_backwards rules. Returns every step's output in processing order
/// `(batch, time, units)` and the final `h`.
fn minimal_reference(
    cell: &MinimalRNNCell,
    x: ArrayView3<f32>,
    mask: Option<ArrayView2<bool>>,
    init: Option<ArrayView2<f32>>,
    constant: Option<(ArrayView2<f32>, ArrayView2<f32>)>,
    go_backwards: bool,
) -> (Array3<f32>, Array2<f32>) {
    let (batch, time, _) = x.dim();
    let u = cell.units();
    let mut h = match init {
        Some(h0) => h0.to_owned(),
        None => Array2::zeros((batch, u)),
    };
    let mut prev_out = Array2::<f32>::zeros((batch, u));
    let mut outputs = Array3::<f32>::zeros((batch, time, u));
    let fixed = constant.map(|(c, k)| matmul(c, k));
    for step in 0..time {
        let t = if go_backwards { time - 1 - step } else { step };
        let xt = x.slice(s![.., t, ..]);
        let mut new_h =
            matmul(xt, cell.kernel.view()) + matmul(h.view(), cell.recurrent_kernel.view());
        if let Some(f) = &fixed {
            new_h += f;
        }
        for b in 0..batch {
            let real = mask.map(|m| m[(b, t)]).unwrap_or(true);
            if real {
                h.row_mut(b).assign(&new_h.row(b));
                prev_out.row_mut(b).assign(&new_h.row(b));
            }
            outputs.slice_mut(s![b, step, ..]).assign(&prev_out.row(b));
        }
    }
    (outputs, h)
}

fn opts(return_sequences: bool, go_backwards: bool) -> SequenceOptions {
    SequenceOptions {
        return_sequences,
        return_state: true,
        go_backwards,
        ..Default::default()
    }
}

// ---------------------------------------------------------------- user cell vs reference loop

fn check_minimal_against_reference(return_sequences: bool, go_backwards: bool) {
    let cell = MinimalRNNCell::build(6, 3, 11);
    let x = input(2, 5, 3, 0);
    let mut layer = RNN::new(
        AnyCell::user(cell.clone()),
        opts(return_sequences, go_backwards),
    );
    let out = layer.call(x.view()).expect("RNN over a user cell");
    let (seq, h) = minimal_reference(&cell, x.view(), None, None, None, go_backwards);
    if return_sequences {
        assert_eq!(out.output.shape(), &[2, 5, 6]);
        assert_close(out.output.view(), seq.view().into_dyn(), 1e-6, "output");
    } else {
        assert_eq!(out.output.shape(), &[2, 6]);
        assert_close(out.output.view(), h.view().into_dyn(), 1e-6, "output");
    }
    assert_eq!(out.states.len(), 1);
    assert_close(out.states[0].view(), h.view().into_dyn(), 1e-6, "state h");
    assert_eq!(layer.state_names(), vec!["h".to_string()]);
}

#[test]
fn user_minimal_cell_matches_reference_loop_with_return_sequences() {
    check_minimal_against_reference(true, false);
}

#[test]
fn user_minimal_cell_matches_reference_loop_last_output_only() {
    check_minimal_against_reference(false, false);
}

#[test]
fn user_minimal_cell_go_backwards_outputs_stay_in_processing_order() {
    check_minimal_against_reference(true, true);
    check_minimal_against_reference(false, true);
    // Processing order, not flipped back: output[:, 0] belongs to the last input step, so it is
    // the forward layer's first output on the time-reversed input.
    let cell = MinimalRNNCell::build(6, 3, 11);
    let x = input(2, 5, 3, 0);
    let mut reversed = x.clone();
    reversed.invert_axis(Axis(1));
    let back = RNN::new(AnyCell::user(cell.clone()), opts(true, true))
        .call(x.view())
        .expect("backwards");
    let fwd_on_reversed = RNN::new(AnyCell::user(cell), opts(true, false))
        .call(reversed.view())
        .expect("forwards");
    assert_close(
        back.output.view(),
        fwd_on_reversed.output.view(),
        1e-6,
        "output",
    );
}

#[test]
fn user_minimal_cell_honours_initial_state_and_time_major() {
    let cell = MinimalRNNCell::build(4, 3, 5);
    let x = input(3, 4, 3, 1);
    let h0 = normal((3, 4), 9, 0);
    let init = [h0.clone().into_dyn()];
    let args = CallArgs {
        initial_state: Some(&init),
        ..Default::default()
    };
    let (seq, h) = minimal_reference(&cell, x.view(), None, Some(h0.view()), None, false);
    let out = RNN::new(AnyCell::user(cell.clone()), opts(true, false))
        .forward(x.view(), &args)
        .expect("initial_state");
    assert_close(out.output.view(), seq.view().into_dyn(), 1e-6, "output");
    assert_close(out.states[0].view(), h.view().into_dyn(), 1e-6, "state h");

    let xt = x.view().permuted_axes([1, 0, 2]);
    let options = SequenceOptions {
        time_major: true,
        ..opts(true, false)
    };
    let out = RNN::new(AnyCell::user(cell), options)
        .forward(xt, &args)
        .expect("time_major");
    let want = seq.view().permuted_axes([1, 0, 2]);
    assert_close(
        out.output.view(),
        want.into_dyn(),
        1e-6,
        "time-major output",
    );
}

// ---------------------------------------------------------------- stack of user + built-in

fn lstm_cell(config: LSTMCellConfig, input_dim: usize, seed: u64) -> LSTMCell {
    let u = config.units;
    LSTMCell::new(
        config,
        normal((input_dim, 4 * u), seed, 1),
        normal((u, 4 * u), seed, 2),
        Some(normal1(4 * u, seed, 3)),
    )
    .expect("LSTMCell::new")
}

#[test]
fn stack_of_user_and_lstm_cells_returns_flattened_states_and_matches_cell_calls() {
    let (batch, time, feat) = (3, 6, 3);
    let user = MinimalRNNCell::build(4, feat, 21);
    let lstm = lstm_cell(LSTMCellConfig::tf_keras(5), 4, 22);
    let x = input(batch, time, feat, 2);
    let mut layer = RNN::stacked(
        vec![AnyCell::user(user.clone()), AnyCell::from(lstm.clone())],
        opts(true, false),
    )
    .expect("stacked");
    assert_eq!(
        layer.state_names(),
        vec!["cells.0.h", "cells.1.h", "cells.1.c"]
    );
    let out = layer.call(x.view()).expect("stack call");

    // By hand: cell 0 then cell 1 at every step, through `Cell::call`.
    let mut h0 = Array2::<f32>::zeros((batch, 4));
    let mut h1 = Array2::<f32>::zeros((batch, 5));
    let mut c1 = Array2::<f32>::zeros((batch, 5));
    let mut seq = Array3::<f32>::zeros((batch, time, 5));
    for t in 0..time {
        let xt = x.slice(s![.., t, ..]);
        let (o0, s0) = user.call(xt, &[h0.view()], &[]).expect("user call");
        let (o1, s1) = lstm
            .call(o0.view(), &[h1.view(), c1.view()], &[])
            .expect("lstm call");
        h0 = s0[0].clone();
        h1 = s1[0].clone();
        c1 = s1[1].clone();
        seq.slice_mut(s![.., t, ..]).assign(&o1);
    }
    assert_close(out.output.view(), seq.view().into_dyn(), 1e-6, "output");
    assert_eq!(out.states.len(), 3, "states: user h, lstm h, lstm c");
    assert_eq!(out.states[0].shape(), &[batch, 4]);
    assert_close(
        out.states[0].view(),
        h0.view().into_dyn(),
        1e-6,
        "cells.0.h",
    );
    assert_close(
        out.states[1].view(),
        h1.view().into_dyn(),
        1e-6,
        "cells.1.h",
    );
    assert_close(
        out.states[2].view(),
        c1.view().into_dyn(),
        1e-6,
        "cells.1.c",
    );
    // h and c of an LSTM differ, so the order is really checked.
    assert!(max_abs_diff(out.states[1].view(), out.states[2].view()) > 1e-3);
}

#[test]
fn stacked_initial_state_is_taken_in_flattened_order() {
    let (batch, time, feat) = (2, 4, 3);
    let user = MinimalRNNCell::build(4, feat, 31);
    let lstm = lstm_cell(LSTMCellConfig::tf_keras(5), 4, 32);
    let x = input(batch, time, feat, 3);
    let init = [
        normal((batch, 4), 33, 0).into_dyn(),
        normal((batch, 5), 33, 1).into_dyn(),
        normal((batch, 5), 33, 2).into_dyn(),
    ];
    let args = CallArgs {
        initial_state: Some(&init),
        ..Default::default()
    };
    let out = RNN::stacked(
        vec![AnyCell::user(user.clone()), AnyCell::from(lstm.clone())],
        opts(false, false),
    )
    .expect("stacked")
    .forward(x.view(), &args)
    .expect("call");
    let mut h0 = view2(&init[0]).to_owned();
    let mut h1 = view2(&init[1]).to_owned();
    let mut c1 = view2(&init[2]).to_owned();
    for t in 0..time {
        let (o0, s0) = user
            .call(x.slice(s![.., t, ..]), &[h0.view()], &[])
            .unwrap();
        let (_, s1) = lstm.call(o0.view(), &[h1.view(), c1.view()], &[]).unwrap();
        h0 = s0[0].clone();
        h1 = s1[0].clone();
        c1 = s1[1].clone();
    }
    assert_close(out.output.view(), h1.view().into_dyn(), 1e-6, "output");
    assert_close(
        out.states[0].view(),
        h0.view().into_dyn(),
        1e-6,
        "cells.0.h",
    );
    assert_close(
        out.states[2].view(),
        c1.view().into_dyn(),
        1e-6,
        "cells.1.c",
    );

    // Too few initial states is an Err naming the expected states.
    let short = &init[..2];
    let args = CallArgs {
        initial_state: Some(short),
        ..Default::default()
    };
    let e = err_of(
        RNN::stacked(
            vec![AnyCell::user(user), AnyCell::from(lstm)],
            opts(false, false),
        )
        .unwrap()
        .forward(x.view(), &args),
        "two initial states for three",
    );
    assert!(e.to_string().contains("cells.1.c"), "{e}");
}

#[test]
fn single_user_cell_in_a_list_has_per_cell_state_names() {
    let layer = RNN::stacked(
        vec![AnyCell::user(MinimalRNNCell::build(3, 2, 1))],
        SequenceOptions::default(),
    )
    .unwrap();
    assert_eq!(layer.state_names(), vec!["cells.0.h"]);
    let layer = RNN::new(
        AnyCell::user(MinimalRNNCell::build(3, 2, 1)),
        SequenceOptions::default(),
    );
    assert_eq!(layer.state_names(), vec!["h"]);
}

#[test]
fn stack_whose_builtin_kernel_does_not_fit_the_user_cells_output_is_err() {
    let user = MinimalRNNCell::build(4, 3, 1);
    let lstm = lstm_cell(LSTMCellConfig::tf_keras(5), 7, 2);
    let e = err_of(
        RNN::stacked(
            vec![AnyCell::user(user), AnyCell::from(lstm)],
            SequenceOptions::default(),
        )
        .map(|_| ()),
        "LSTM kernel for width 7 after a 4-wide user cell",
    );
    assert!(names_cell(&e.to_string(), 1), "{e}");
}

// ---------------------------------------------------------------- constants

#[test]
fn constants_reach_a_cell_that_accepts_them_and_change_the_result() {
    let (batch, time, feat, cdim) = (2, 5, 3, 4);
    let cell = ConstantsCell::build(6, feat, cdim, 41);
    let x = input(batch, time, feat, 4);
    let c1 = normal((batch, cdim), 42, 0);
    let c2 = normal((batch, cdim), 43, 0);
    let mut layer = RNN::new(AnyCell::user(cell.clone()), opts(true, false));
    let mut run = |c: &Array2<f32>| {
        let constants = [c.view()];
        let args = CallArgs {
            constants: &constants,
            ..Default::default()
        };
        layer.forward(x.view(), &args).expect("call with constants")
    };
    let out1 = run(&c1);
    let out2 = run(&c2);
    let (want1, h1) = minimal_reference(
        &cell.inner,
        x.view(),
        None,
        None,
        Some((c1.view(), cell.constant_kernel.view())),
        false,
    );
    assert_close(
        out1.output.view(),
        want1.view().into_dyn(),
        1e-5,
        "output with c1",
    );
    assert_close(
        out1.states[0].view(),
        h1.view().into_dyn(),
        1e-5,
        "h with c1",
    );
    assert!(
        max_abs_diff(out1.output.view(), out2.output.view()) > 1e-3,
        "different constants must give different outputs"
    );
    let (plain, _) = minimal_reference(&cell.inner, x.view(), None, None, None, false);
    assert!(max_abs_diff(out1.output.view(), plain.view().into_dyn()) > 1e-3);
}

#[test]
fn constants_go_only_to_the_cells_of_a_stack_that_accept_them() {
    // Cell 1 (MinimalRNNCell) returns an Err if it is handed constants.
    let (batch, time, feat, cdim) = (2, 4, 3, 2);
    let c_cell = ConstantsCell::build(5, feat, cdim, 51);
    let plain = MinimalRNNCell::build(4, 5, 52);
    let x = input(batch, time, feat, 5);
    let c = normal((batch, cdim), 53, 0);
    let constants = [c.view()];
    let args = CallArgs {
        constants: &constants,
        ..Default::default()
    };
    let out = RNN::stacked(
        vec![AnyCell::user(c_cell.clone()), AnyCell::user(plain.clone())],
        opts(true, false),
    )
    .unwrap()
    .forward(x.view(), &args)
    .expect("only cell 0 gets the constants");
    let (seq0, _) = minimal_reference(
        &c_cell.inner,
        x.view(),
        None,
        None,
        Some((c.view(), c_cell.constant_kernel.view())),
        false,
    );
    let (seq1, _) = minimal_reference(&plain, seq0.view(), None, None, None, false);
    assert_close(
        out.output.view(),
        seq1.view().into_dyn(),
        1e-5,
        "stack output",
    );
}

#[test]
fn constants_for_an_rnn_whose_only_cell_does_not_accept_them_is_err() {
    let x = input(2, 3, 3, 6);
    let c = Array2::<f32>::ones((2, 2));
    let constants = [c.view()];
    let args = CallArgs {
        constants: &constants,
        ..Default::default()
    };
    let e = err_of(
        RNN::new(
            AnyCell::user(MinimalRNNCell::build(4, 3, 1)),
            SequenceOptions::default(),
        )
        .forward(x.view(), &args),
        "constants for MinimalRNNCell",
    );
    assert!(e.to_string().contains("constants"), "{e}");
    let e = err_of(
        RNN::new(
            lstm_cell(LSTMCellConfig::tf_keras(4), 3, 1),
            SequenceOptions::default(),
        )
        .forward(x.view(), &args),
        "constants for LSTMCell",
    );
    assert!(e.to_string().contains("constants"), "{e}");
    // And a cell that needs constants but gets none reports its own error.
    let e = err_of(
        RNN::new(
            AnyCell::user(ConstantsCell::build(4, 3, 2, 1)),
            SequenceOptions::default(),
        )
        .call(x.view()),
        "ConstantsCell without constants",
    );
    assert!(e.to_string().contains("ConstantsCell"), "{e}");
}

// ---------------------------------------------------------------- masks

fn holes_mask() -> Array2<bool> {
    let rows = [
        [false, false, true, false, true, true, false],
        [true, false, false, true, false, true, true],
        [false, false, false, false, false, false, false],
        [true, true, true, true, true, true, false],
    ];
    Array2::from_shape_fn((4, 7), |(b, t)| rows[b][t])
}

#[test]
fn masked_steps_keep_states_and_repeat_previous_output_on_a_user_cell() {
    let cell = MinimalRNNCell::build(5, 3, 61);
    let x = input(4, 7, 3, 7);
    let mask = holes_mask();
    let args = CallArgs {
        mask: Some(mask.view()),
        ..Default::default()
    };
    let out = RNN::new(AnyCell::user(cell.clone()), opts(true, false))
        .forward(x.view(), &args)
        .expect("masked call");
    let (seq, h) = minimal_reference(&cell, x.view(), Some(mask.view()), None, None, false);
    assert_close(out.output.view(), seq.view().into_dyn(), 1e-6, "output");
    assert_close(out.states[0].view(), h.view().into_dyn(), 1e-6, "state h");

    let y = view3(&out.output);
    // Row 0: zeros before the first real step (t = 2), then t = 3 repeats t = 2.
    assert!(y.slice(s![0, 0..2, ..]).iter().all(|&v| v == 0.0));
    assert!(y.slice(s![0, 2, ..]).iter().any(|&v| v != 0.0));
    assert_eq!(y.slice(s![0, 3, ..]), y.slice(s![0, 2, ..]));
    // Row 1: t = 1, 2 repeat t = 0; t = 4 repeats t = 3.
    assert_eq!(y.slice(s![1, 1, ..]), y.slice(s![1, 0, ..]));
    assert_eq!(y.slice(s![1, 2, ..]), y.slice(s![1, 0, ..]));
    assert_eq!(y.slice(s![1, 4, ..]), y.slice(s![1, 3, ..]));
    // Row 2, masked everywhere: zero output, zero (initial) state.
    assert!(y.slice(s![2, .., ..]).iter().all(|&v| v == 0.0));
    assert!(view2(&out.states[0]).row(2).iter().all(|&v| v == 0.0));
    // Row 3: the final state is the state after t = 5, not after the masked t = 6.
    assert_eq!(view2(&out.states[0]).row(3), y.slice(s![3, 5, ..]));
}

#[test]
fn masked_leading_steps_output_zeros_even_with_an_initial_state() {
    let cell = MinimalRNNCell::build(5, 3, 62);
    let x = input(4, 7, 3, 8);
    let mask = holes_mask();
    let h0 = normal((4, 5), 63, 0);
    let init = [h0.clone().into_dyn()];
    let args = CallArgs {
        mask: Some(mask.view()),
        initial_state: Some(&init),
        ..Default::default()
    };
    let out = RNN::new(AnyCell::user(cell.clone()), opts(true, false))
        .forward(x.view(), &args)
        .expect("masked call with initial_state");
    let (seq, h) = minimal_reference(
        &cell,
        x.view(),
        Some(mask.view()),
        Some(h0.view()),
        None,
        false,
    );
    assert_close(out.output.view(), seq.view().into_dyn(), 1e-6, "output");
    assert_close(out.states[0].view(), h.view().into_dyn(), 1e-6, "state h");
    let y = view3(&out.output);
    assert!(y.slice(s![0, 0..2, ..]).iter().all(|&v| v == 0.0));
    // Fully masked row: zero outputs, final state = the initial state.
    assert!(y.slice(s![2, .., ..]).iter().all(|&v| v == 0.0));
    assert_eq!(view2(&out.states[0]).row(2), h0.row(2));
}

#[test]
fn go_backwards_reverses_the_mask_with_the_input_on_a_user_cell() {
    let cell = MinimalRNNCell::build(5, 3, 64);
    let x = input(4, 7, 3, 9);
    let mask = holes_mask();
    let args = CallArgs {
        mask: Some(mask.view()),
        ..Default::default()
    };
    let out = RNN::new(AnyCell::user(cell.clone()), opts(true, true))
        .forward(x.view(), &args)
        .expect("masked backwards call");
    let (seq, h) = minimal_reference(&cell, x.view(), Some(mask.view()), None, None, true);
    assert_close(out.output.view(), seq.view().into_dyn(), 1e-6, "output");
    assert_close(out.states[0].view(), h.view().into_dyn(), 1e-6, "state h");
    // Row 3 is masked only at the last input step, which is processed first: zeros there.
    let y = view3(&out.output);
    assert!(y.slice(s![3, 0, ..]).iter().all(|&v| v == 0.0));
    assert!(y.slice(s![3, 1, ..]).iter().any(|&v| v != 0.0));
}

#[test]
fn mask_of_the_wrong_shape_is_err() {
    let x = input(4, 6, 3, 0);
    let mask = holes_mask(); // (4, 7)
    let args = CallArgs {
        mask: Some(mask.view()),
        ..Default::default()
    };
    let e = err_of(
        RNN::new(
            AnyCell::user(MinimalRNNCell::build(5, 3, 1)),
            SequenceOptions::default(),
        )
        .forward(x.view(), &args),
        "mask (4, 7) for input (4, 6, 3)",
    );
    assert!(e.to_string().contains("mask"), "{e}");
}

/// A cell whose output is not its state: states `[h (units), n (1)]` with `h' = x · kernel +
/// h · recurrent_kernel` and `n' = n + 1` (a count of the steps it ran), output
/// `[tanh(h') | n']` of width `units + 1`.
#[derive(Debug, Clone)]
struct CountingCell {
    inner: MinimalRNNCell,
}

impl Cell for CountingCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.inner.units(), 1]
    }
    fn output_size(&self) -> usize {
        self.inner.units() + 1
    }
    fn call(
        &self,
        inputs: ArrayView2<f32>,
        states: &[ArrayView2<f32>],
        _constants: &[ArrayView2<f32>],
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        let (h, _) = self.inner.call(inputs, &states[..1], &[])?;
        let n = states[1].mapv(|v| v + 1.0);
        let out = ndarray::concatenate(Axis(1), &[h.mapv(f32::tanh).view(), n.view()])
            .map_err(|e| Error::invalid("CountingCell", e.to_string()))?;
        Ok((out, vec![h, n]))
    }
}

#[test]
fn masks_repeat_the_output_not_the_state_of_a_user_cell_with_two_states() {
    let u = 3;
    let cell = CountingCell {
        inner: MinimalRNNCell::build(u, 3, 65),
    };
    let x = input(4, 7, 3, 10);
    let mask = holes_mask();
    let args = CallArgs {
        mask: Some(mask.view()),
        ..Default::default()
    };
    let mut layer = RNN::new(AnyCell::user(cell.clone()), opts(true, false));
    assert_eq!(layer.state_names(), vec!["h", "c"]);
    let out = layer.forward(x.view(), &args).expect("masked call");
    let y = view3(&out.output);
    assert_eq!(y.shape(), &[4, 7, u + 1]);
    let (seq, h) = minimal_reference(&cell.inner, x.view(), Some(mask.view()), None, None, false);
    assert_close(
        y.slice(s![.., .., ..u]).into_dyn(),
        seq.mapv(f32::tanh).view().into_dyn(),
        1e-6,
        "tanh(h) part of the output",
    );
    assert_close(out.states[0].view(), h.view().into_dyn(), 1e-6, "state h");
    for b in 0..4 {
        let mut seen = 0.0f32;
        for t in 0..7 {
            if mask[(b, t)] {
                seen += 1.0;
            }
            // The count part of the output: real steps so far (0 before the first real step).
            assert_eq!(y[(b, t, u)], seen, "count output at row {b}, step {t}");
        }
        assert_eq!(
            view2(&out.states[1])[(b, 0)],
            seen,
            "count state of row {b}"
        );
    }

    // return_sequences = false: the last output (width units + 1), not a state.
    let last = RNN::new(AnyCell::user(cell.clone()), opts(false, false))
        .forward(x.view(), &args)
        .unwrap();
    assert_eq!(last.output.shape(), &[4, u + 1]);
    assert_close(
        last.output.view(),
        y.slice(s![.., 6, ..]).into_dyn(),
        1e-6,
        "last output",
    );

    // Stacked before an LSTM that reads its (units + 1)-wide output.
    let lstm = lstm_cell(LSTMCellConfig::tf_keras(2), u + 1, 66);
    let stack = RNN::stacked(
        vec![AnyCell::user(cell), AnyCell::from(lstm)],
        opts(true, false),
    )
    .unwrap();
    assert_eq!(
        stack.state_names(),
        vec!["cells.0.h", "cells.0.c", "cells.1.h", "cells.1.c"]
    );
}

// ---------------------------------------------------------------- misbehaving user cells

fn bad_cell_error(fault: Fault, position: usize) -> String {
    let x = input(2, 3, 4, 0);
    let bad = AnyCell::user(BadCell { units: 4, fault });
    let good = AnyCell::user(MinimalRNNCell::build(4, 4, 1));
    let mut layer = if position == 0 {
        RNN::new(bad, SequenceOptions::default())
    } else {
        RNN::stacked(vec![good, bad], SequenceOptions::default()).unwrap()
    };
    err_of(layer.call(x.view()), &format!("{fault:?}")).to_string()
}

#[test]
fn user_cell_returning_a_state_of_the_wrong_shape_is_err_naming_the_cell() {
    let e = bad_cell_error(Fault::StateTooWide, 0);
    assert!(names_cell(&e, 0), "{e}");
    assert!(e.contains("(2, 4)") && e.contains("(2, 5)"), "{e}");
    let e = bad_cell_error(Fault::StateTooWide, 1);
    assert!(names_cell(&e, 1), "{e}");
}

#[test]
fn user_cell_returning_too_many_states_is_err_naming_the_cell() {
    let e = bad_cell_error(Fault::TooManyStates, 1);
    assert!(names_cell(&e, 1), "{e}");
}

#[test]
fn user_cell_returning_an_output_of_the_wrong_shape_is_err_naming_the_cell() {
    let e = bad_cell_error(Fault::OutputTooNarrow, 0);
    assert!(names_cell(&e, 0) && e.contains("output"), "{e}");
}

#[test]
fn input_of_the_wrong_width_for_a_user_cells_kernel_is_err_not_a_panic() {
    // MinimalRNNCell with an input width its kernel does not fit: ndarray would panic in `dot`,
    // so the cell must be protected by RNN's input check (input_size() is Some(3)).
    let x = input(2, 3, 5, 0);
    let e = err_of(
        RNN::new(
            AnyCell::user(MinimalRNNCell::build(4, 3, 1)),
            SequenceOptions::default(),
        )
        .call(x.view()),
        "input width 5 for a kernel of 3 rows",
    );
    assert!(e.to_string().contains("input"), "{e}");
}

// ---------------------------------------------------------------- built-in cells, one step

fn one_step_options() -> SequenceOptions {
    SequenceOptions {
        return_state: true,
        ..Default::default()
    }
}

/// Runs `layer` on `x[:, None, :]` from `init`, returns (output, states).
fn layer_one_step(
    forward: impl FnOnce(ArrayView3<f32>, &CallArgs) -> Result<recurrent::layers::Output>,
    x: &Array2<f32>,
    init: &[Array2<f32>],
) -> (Array2<f32>, Vec<Array2<f32>>) {
    let x3 = x.clone().insert_axis(Axis(1));
    let init: Vec<ArrayD<f32>> = init.iter().map(|a| a.clone().into_dyn()).collect();
    let args = CallArgs {
        initial_state: Some(&init),
        ..Default::default()
    };
    let out = forward(x3.view(), &args).expect("layer on a length-1 sequence");
    (
        view2(&out.output).to_owned(),
        out.states.iter().map(|s| view2(s).to_owned()).collect(),
    )
}

fn lstm_reference(
    cell: &LSTMCell,
    x: &Array2<f32>,
    h: &Array2<f32>,
    c: &Array2<f32>,
) -> (Array2<f32>, Array2<f32>) {
    let w = cell.weights();
    let cfg = cell.config();
    let u = cfg.units;
    let mut z = matmul(x.view(), view2(&w[0])) + matmul(h.view(), view2(&w[1]));
    if let Some(b) = w.get(2) {
        z += &b.view().into_dimensionality::<ndarray::Ix1>().unwrap();
    }
    let (rec, a) = (cfg.recurrent_activation, cfg.activation);
    let mut h2 = Array2::zeros(h.dim());
    let mut c2 = Array2::zeros(c.dim());
    for r in 0..x.nrows() {
        for j in 0..u {
            let i = act(rec, z[(r, j)]);
            let f = act(rec, z[(r, u + j)]);
            let g = act(a, z[(r, 2 * u + j)]);
            let o = act(rec, z[(r, 3 * u + j)]);
            c2[(r, j)] = f * c[(r, j)] + i * g;
            h2[(r, j)] = o * act(a, c2[(r, j)]);
        }
    }
    (h2, c2)
}

fn check_lstm_cell_one_step(config: LSTMCellConfig, batch: usize, input_dim: usize, seed: u64) {
    let u = config.units;
    let cell = lstm_cell(config.clone(), input_dim, seed);
    let w = cell.weights();
    let mut layer = LSTM::new(
        config,
        one_step_options(),
        view2(&w[0]).to_owned(),
        view2(&w[1]).to_owned(),
        Some(w[2].view().into_dimensionality().unwrap().to_owned()),
    )
    .unwrap();
    let x = normal((batch, input_dim), seed, 10);
    let h = normal((batch, u), seed, 11);
    let c = normal((batch, u), seed, 12);
    let (o, s) = cell
        .call(x.view(), &[h.view(), c.view()], &[])
        .expect("LSTMCell::call");
    assert_eq!(s.len(), 2);
    let (lo, ls) = layer_one_step(|x, a| layer.forward(x, a), &x, &[h.clone(), c.clone()]);
    assert_close2(o.view(), lo.view(), 1e-6, "output vs layer");
    assert_close2(s[0].view(), ls[0].view(), 1e-6, "h vs layer");
    assert_close2(s[1].view(), ls[1].view(), 1e-6, "c vs layer");
    let (rh, rc) = lstm_reference(&cell, &x, &h, &c);
    assert_close2(o.view(), rh.view(), 1e-5, "output vs equations");
    assert_close2(s[1].view(), rc.view(), 1e-5, "c vs equations");
}

#[test]
fn lstm_cell_call_one_step_equals_lstm_layer_on_length_one_sequence() {
    check_lstm_cell_one_step(LSTMCellConfig::tf_keras(5), 3, 4, 71);
    check_lstm_cell_one_step(LSTMCellConfig::new(5), 3, 4, 72); // hard_sigmoid
}

#[test]
fn lstm_cell_call_one_step_equals_layer_when_the_layer_splits_units_across_threads() {
    // 48 units, batch 64: one step is big enough for the layer to split it into chunks of
    // units (when more than one core is available); Cell::call runs it as one chunk.
    check_lstm_cell_one_step(LSTMCellConfig::tf_keras(48), 64, 8, 73);
}

fn gru_cell(config: GRUCellConfig, input_dim: usize, seed: u64) -> GRUCell {
    let u = config.units;
    let bias = if config.reset_after {
        normal((2, 3 * u), seed, 3).into_dyn()
    } else {
        normal1(3 * u, seed, 3).into_dyn()
    };
    GRUCell::new(
        config,
        normal((input_dim, 3 * u), seed, 1),
        normal((u, 3 * u), seed, 2),
        Some(bias),
    )
    .expect("GRUCell::new")
}

fn gru_reference(cell: &GRUCell, x: &Array2<f32>, h: &Array2<f32>) -> Array2<f32> {
    let w = cell.weights();
    let cfg = cell.config();
    let u = cfg.units;
    let (kernel, rk) = (view2(&w[0]), view2(&w[1]));
    let (bi, br): (Array1<f32>, Array1<f32>) = if cfg.reset_after {
        let b = view2(&w[2]);
        (b.row(0).to_owned(), b.row(1).to_owned())
    } else {
        (
            w[2].view().into_dimensionality().unwrap().to_owned(),
            Array1::zeros(3 * u),
        )
    };
    let xw = matmul(x.view(), kernel) + &bi;
    let (rec, a) = (cfg.recurrent_activation, cfg.activation);
    let mut out = Array2::zeros(h.dim());
    if cfg.reset_after {
        let hu = matmul(h.view(), rk) + &br;
        for r in 0..x.nrows() {
            for j in 0..u {
                let z = act(rec, xw[(r, j)] + hu[(r, j)]);
                let rr = act(rec, xw[(r, u + j)] + hu[(r, u + j)]);
                let n = act(a, xw[(r, 2 * u + j)] + rr * hu[(r, 2 * u + j)]);
                out[(r, j)] = z * h[(r, j)] + (1.0 - z) * n;
            }
        }
    } else {
        let hu = matmul(h.view(), rk.slice(s![.., ..2 * u]));
        let mut z = Array2::<f32>::zeros(h.dim());
        let mut rh = Array2::<f32>::zeros(h.dim());
        for r in 0..x.nrows() {
            for j in 0..u {
                z[(r, j)] = act(rec, xw[(r, j)] + hu[(r, j)]);
                let rr = act(rec, xw[(r, u + j)] + hu[(r, u + j)]);
                rh[(r, j)] = rr * h[(r, j)];
            }
        }
        let rhu = matmul(rh.view(), rk.slice(s![.., 2 * u..]));
        for r in 0..x.nrows() {
            for j in 0..u {
                let n = act(a, xw[(r, 2 * u + j)] + rhu[(r, j)]);
                out[(r, j)] = z[(r, j)] * h[(r, j)] + (1.0 - z[(r, j)]) * n;
            }
        }
    }
    out
}

fn check_gru_cell_one_step(config: GRUCellConfig, batch: usize, input_dim: usize, seed: u64) {
    let u = config.units;
    let cell = gru_cell(config.clone(), input_dim, seed);
    let w = cell.weights();
    let mut layer = GRU::new(
        config,
        one_step_options(),
        view2(&w[0]).to_owned(),
        view2(&w[1]).to_owned(),
        Some(w[2].clone()),
    )
    .unwrap();
    let x = normal((batch, input_dim), seed, 10);
    let h = normal((batch, u), seed, 11);
    let (o, s) = cell
        .call(x.view(), &[h.view()], &[])
        .expect("GRUCell::call");
    assert_eq!(s.len(), 1);
    let (lo, ls) = layer_one_step(|x, a| layer.forward(x, a), &x, std::slice::from_ref(&h));
    assert_close2(o.view(), lo.view(), 1e-6, "output vs layer");
    assert_close2(s[0].view(), ls[0].view(), 1e-6, "h vs layer");
    let want = gru_reference(&cell, &x, &h);
    assert_close2(o.view(), want.view(), 1e-5, "output vs equations");
}

#[test]
fn gru_cell_call_one_step_equals_gru_layer_with_reset_after() {
    check_gru_cell_one_step(GRUCellConfig::tf_keras(5), 3, 4, 81);
    check_gru_cell_one_step(GRUCellConfig::tf_keras(48), 64, 8, 82);
}

#[test]
fn gru_cell_call_one_step_equals_gru_layer_with_reset_before() {
    check_gru_cell_one_step(GRUCellConfig::new(5), 3, 4, 83);
    let sigmoid = GRUCellConfig {
        recurrent_activation: Activation::Sigmoid,
        ..GRUCellConfig::new(48)
    };
    check_gru_cell_one_step(sigmoid, 64, 8, 84);
}

fn check_simple_cell_one_step(
    config: SimpleRNNCellConfig,
    batch: usize,
    input_dim: usize,
    seed: u64,
) {
    let u = config.units;
    let cell = SimpleRNNCell::new(
        config.clone(),
        normal((input_dim, u), seed, 1),
        normal((u, u), seed, 2),
        Some(normal1(u, seed, 3)),
    )
    .unwrap();
    let w = cell.weights();
    let mut layer = SimpleRNN::new(
        config.clone(),
        one_step_options(),
        view2(&w[0]).to_owned(),
        view2(&w[1]).to_owned(),
        Some(w[2].view().into_dimensionality().unwrap().to_owned()),
    )
    .unwrap();
    let x = normal((batch, input_dim), seed, 10);
    let h = normal((batch, u), seed, 11);
    let (o, s) = cell
        .call(x.view(), &[h.view()], &[])
        .expect("SimpleRNNCell::call");
    let (lo, ls) = layer_one_step(|x, a| layer.forward(x, a), &x, std::slice::from_ref(&h));
    assert_close2(o.view(), lo.view(), 1e-6, "output vs layer");
    assert_close2(s[0].view(), ls[0].view(), 1e-6, "h vs layer");
    let b = w[2].view().into_dimensionality::<ndarray::Ix1>().unwrap();
    let pre = matmul(x.view(), view2(&w[0])) + matmul(h.view(), view2(&w[1])) + b;
    let want = pre.mapv(|v| act(config.activation, v));
    assert_close2(o.view(), want.view(), 1e-5, "output vs equations");
}

#[test]
fn simple_rnn_cell_call_one_step_equals_simple_rnn_layer() {
    check_simple_cell_one_step(SimpleRNNCellConfig::new(5), 3, 4, 91);
    check_simple_cell_one_step(SimpleRNNCellConfig::new(48), 64, 8, 92);
    let relu = SimpleRNNCellConfig {
        activation: Activation::Relu,
        ..SimpleRNNCellConfig::new(6)
    };
    check_simple_cell_one_step(relu, 3, 4, 93);
}

#[test]
fn builtin_cell_call_rejects_constants_and_misshaped_states() {
    let cell = lstm_cell(LSTMCellConfig::tf_keras(4), 3, 1);
    let x = Array2::<f32>::ones((2, 3));
    let h = Array2::<f32>::zeros((2, 4));
    let c = Array2::<f32>::zeros((2, 4));
    let k = Array2::<f32>::zeros((2, 2));
    err_of(
        cell.call(x.view(), &[h.view(), c.view()], &[k.view()]),
        "constants to LSTMCell::call",
    );
    err_of(cell.call(x.view(), &[h.view()], &[]), "one state for LSTM");
    let wide = Array2::<f32>::zeros((2, 5));
    err_of(
        cell.call(x.view(), &[h.view(), wide.view()], &[]),
        "c of width 5 for 4 units",
    );
    let x4 = Array2::<f32>::ones((2, 4));
    err_of(
        cell.call(x4.view(), &[h.view(), c.view()], &[]),
        "input width 4 for a kernel of 3 rows",
    );
}

// ---------------------------------------------------------------- stateful

fn stateful_lstm(seed: u64) -> LSTM {
    let cell = lstm_cell(LSTMCellConfig::tf_keras(5), 3, seed);
    let w = cell.weights();
    LSTM::new(
        cell.config().clone(),
        SequenceOptions {
            return_sequences: true,
            return_state: true,
            stateful: true,
            ..Default::default()
        },
        view2(&w[0]).to_owned(),
        view2(&w[1]).to_owned(),
        Some(w[2].view().into_dimensionality().unwrap().to_owned()),
    )
    .unwrap()
}

#[test]
fn stateful_lstm_on_two_halves_equals_one_call_on_the_whole_sequence() {
    let x = input(2, 8, 3, 10);
    let whole = stateful_lstm(101).call(x.view()).unwrap();
    let mut layer = stateful_lstm(101);
    let a = layer.call(x.slice(s![.., ..4, ..])).unwrap();
    let b = layer.call(x.slice(s![.., 4.., ..])).unwrap();
    let w = view3(&whole.output);
    assert_close(
        a.output.view(),
        w.slice(s![.., ..4, ..]).into_dyn(),
        1e-6,
        "first half",
    );
    assert_close(
        b.output.view(),
        w.slice(s![.., 4.., ..]).into_dyn(),
        1e-6,
        "second half",
    );
    for k in 0..2 {
        assert_close(
            b.states[k].view(),
            whole.states[k].view(),
            1e-6,
            "final state",
        );
    }
    // The second half really started from carried states, not zeros.
    let fresh = stateful_lstm(101).call(x.slice(s![.., 4.., ..])).unwrap();
    assert!(max_abs_diff(b.output.view(), fresh.output.view()) > 1e-3);
}

#[test]
fn stateful_lstm_after_reset_states_equals_a_fresh_layer() {
    let x = input(2, 5, 3, 11);
    let mut layer = stateful_lstm(102);
    layer.call(x.view()).unwrap();
    let carried = layer.call(x.view()).unwrap();
    layer.reset_states();
    let after_reset = layer.call(x.view()).unwrap();
    let fresh = stateful_lstm(102).call(x.view()).unwrap();
    assert_eq!(after_reset, fresh);
    assert!(max_abs_diff(carried.output.view(), fresh.output.view()) > 1e-3);
}

#[test]
fn stateful_lstm_reset_states_to_values_equals_passing_them_as_initial_state() {
    let x = input(2, 5, 3, 12);
    let h = normal((2, 5), 103, 0);
    let c = normal((2, 5), 103, 1);
    let mut layer = stateful_lstm(104);
    layer.call(x.view()).unwrap();
    layer.reset_states_to(vec![h.clone(), c.clone()]).unwrap();
    let got = layer.call(x.view()).unwrap();
    let init = [h.into_dyn(), c.into_dyn()];
    let args = CallArgs {
        initial_state: Some(&init),
        ..Default::default()
    };
    let cell = lstm_cell(LSTMCellConfig::tf_keras(5), 3, 104);
    let mut plain = LSTM::from_cell(cell, opts(true, false));
    let want = plain.forward(x.view(), &args).unwrap();
    assert_close(got.output.view(), want.output.view(), 1e-6, "output");
    for k in 0..2 {
        assert_close(got.states[k].view(), want.states[k].view(), 1e-6, "state");
    }
}

#[test]
fn stateful_layer_called_with_another_batch_size_is_err() {
    let mut layer = stateful_lstm(105);
    layer.call(input(2, 4, 3, 0).view()).unwrap();
    let e = err_of(
        layer.call(input(3, 4, 3, 0).view()),
        "batch 3 after batch 2",
    );
    assert!(e.to_string().contains("batch"), "{e}");
    // Also after reset_states(): the batch size stays fixed (Keras).
    layer.reset_states();
    err_of(
        layer.call(input(3, 4, 3, 0).view()),
        "batch 3 after reset_states()",
    );
    // reset_states_to with states of another batch size is refused too.
    let e = err_of(
        layer.reset_states_to(vec![Array2::zeros((3, 5)), Array2::zeros((3, 5))]),
        "reset_states_to batch 3",
    );
    assert!(e.to_string().contains("batch"), "{e}");
    // The layer still works at its own batch size.
    layer.call(input(2, 4, 3, 0).view()).unwrap();
}

#[test]
fn stateful_rnn_over_a_user_cell_carries_states_between_calls() {
    let cell = MinimalRNNCell::build(4, 3, 106);
    let x = input(2, 6, 3, 13);
    let options = SequenceOptions {
        stateful: true,
        ..opts(true, false)
    };
    let mut layer = RNN::new(AnyCell::user(cell.clone()), options);
    let a = layer.call(x.slice(s![.., ..3, ..])).unwrap();
    let b = layer.call(x.slice(s![.., 3.., ..])).unwrap();
    let (seq, h) = minimal_reference(&cell, x.view(), None, None, None, false);
    assert_close(
        a.output.view(),
        seq.slice(s![.., ..3, ..]).into_dyn(),
        1e-6,
        "first",
    );
    assert_close(
        b.output.view(),
        seq.slice(s![.., 3.., ..]).into_dyn(),
        1e-6,
        "second",
    );
    assert_close(b.states[0].view(), h.view().into_dyn(), 1e-6, "h");
    assert!(layer.carried_states().is_some());
    layer.reset_states();
    assert!(layer.carried_states().is_none());
}

// ---------------------------------------------------------------- building from initializers

#[test]
fn building_layers_is_deterministic_in_the_seed_and_differs_between_seeds() {
    let weights = |seed: u64| {
        LSTM::build(
            LSTMCellConfig::tf_keras(6),
            SequenceOptions::default(),
            4,
            seed,
        )
        .unwrap()
        .cell()
        .unwrap()
        .weights()
    };
    let (a, b, c) = (weights(7), weights(7), weights(8));
    assert_eq!(a, b, "same seed, same weights");
    assert_ne!(a[0], c[0], "kernel differs between seeds");
    assert_ne!(a[1], c[1], "recurrent kernel differs between seeds");
    // Kernel and recurrent kernel are not the same draw.
    assert_ne!(
        a[0].slice(s![..4, ..6]).to_owned(),
        a[1].slice(s![..4, ..6]).to_owned()
    );

    let gru = |seed: u64| {
        GRU::build(
            GRUCellConfig::tf_keras(5),
            SequenceOptions::default(),
            3,
            seed,
        )
        .unwrap()
        .cell()
        .unwrap()
        .weights()
    };
    assert_eq!(gru(1), gru(1));
    assert_ne!(gru(1)[0], gru(2)[0]);
    let simple = |seed: u64| {
        SimpleRNN::build(
            SimpleRNNCellConfig::new(5),
            SequenceOptions::default(),
            3,
            seed,
        )
        .unwrap()
        .cell()
        .unwrap()
        .weights()
    };
    assert_eq!(simple(1), simple(1));
    assert_ne!(simple(1)[1], simple(2)[1]);

    // Built layers run and give the same result for the same seed.
    let x = input(2, 4, 4, 14);
    let run = |seed| {
        LSTM::build(
            LSTMCellConfig::tf_keras(6),
            SequenceOptions::default(),
            4,
            seed,
        )
        .unwrap()
        .call(x.view())
        .unwrap()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn built_recurrent_kernel_is_orthogonal() {
    let rnn = SimpleRNN::build(
        SimpleRNNCellConfig::new(8),
        SequenceOptions::default(),
        3,
        5,
    )
    .unwrap();
    let u = view2(&rnn.cell().unwrap().weights()[1]).to_owned();
    let utu = matmul(u.t(), u.view());
    let eye = Array2::<f32>::eye(8);
    assert_close2(utu.view(), eye.view(), 1e-5, "U^T U");
}

#[test]
fn lstm_build_with_unit_forget_bias_has_ones_in_the_forget_block() {
    let u = 6;
    let bias = |config: LSTMCellConfig| -> Array1<f32> {
        let w = LSTM::build(config, SequenceOptions::default(), 4, 3)
            .unwrap()
            .cell()
            .unwrap()
            .weights();
        w[2].view().into_dimensionality().unwrap().to_owned()
    };
    let b = bias(LSTMCellConfig::tf_keras(u));
    assert_eq!(b.len(), 4 * u);
    assert!(b.slice(s![u..2 * u]).iter().all(|&v| v == 1.0), "{b}");
    assert!(b.slice(s![..u]).iter().all(|&v| v == 0.0), "{b}");
    assert!(b.slice(s![2 * u..]).iter().all(|&v| v == 0.0), "{b}");

    let off = bias(LSTMCellConfig {
        unit_forget_bias: false,
        ..LSTMCellConfig::tf_keras(u)
    });
    assert!(off.iter().all(|&v| v == 0.0), "{off}");

    // With a random bias initializer the forget block is still ones, the rest random.
    let mut cfg = LSTMCellConfig::tf_keras(u);
    cfg.initializers.bias_initializer = Initializer::random_uniform().with_seed(Some(9));
    let r = bias(cfg);
    assert!(r.slice(s![u..2 * u]).iter().all(|&v| v == 1.0), "{r}");
    assert!(
        r.slice(s![..u]).iter().any(|&v| v != 0.0 && v != 1.0),
        "{r}"
    );
    assert!(r.slice(s![2 * u..]).iter().all(|&v| v.abs() <= 0.05), "{r}");
    assert_ne!(
        r.slice(s![2 * u..3 * u]),
        r.slice(s![..u]),
        "blocks are separate draws"
    );
}

#[test]
fn the_user_cells_initializer_draws_are_seeded() {
    let a = MinimalRNNCell::build(4, 3, 1);
    let b = MinimalRNNCell::build(4, 3, 1);
    let c = MinimalRNNCell::build(4, 3, 2);
    assert_eq!(a.kernel, b.kernel);
    assert_eq!(a.recurrent_kernel, b.recurrent_kernel);
    assert_ne!(a.kernel, c.kernel);
    assert_ne!(a.recurrent_kernel, c.recurrent_kernel);
    assert!(a.kernel.iter().all(|v| v.abs() <= 0.5));
    // Also through the shared tolerance helper, so that `common` is in use.
    assert!(common::within_tolerance(a.kernel[(0, 0)], b.kernel[(0, 0)]));
}
