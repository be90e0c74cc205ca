//! The Keras docs' `MinimalRNNCell`, written in Rust as a user-defined [`Cell`] and run by
//! [`RNN`]: alone, in a stack of two (`cells = [MinimalRNNCell(32), MinimalRNNCell(64)]`), and as
//! a variant that takes external `constants` (the docs' "passing external constants to RNNs").
//!
//! ```python
//! class MinimalRNNCell(keras.layers.Layer):
//!     def call(self, inputs, states):
//!         prev_output = states[0]
//!         h = K.dot(inputs, self.kernel)
//!         output = h + K.dot(prev_output, self.recurrent_kernel)
//!         return output, [output]
//! ```
//!
//! ```text
//! cargo run --example minimal_rnn_cell
//! ```

use ndarray::{Array2, Array3, ArrayD, ArrayView2, Ix2};
use recurrent::config::SequenceOptions;
use recurrent::initializers::Initializer;
use recurrent::layers::{AnyCell, CallArgs, RNN};
use recurrent::{Cell, Error, Result};

/// A 2-D tensor from a seeded initializer (`salt` tells the weights of one cell apart).
fn weight(init: Initializer, shape: (usize, usize), seed: u64, salt: u64) -> Result<Array2<f32>> {
    init.with_seed(Some(seed))
        .generate(&[shape.0, shape.1], salt)?
        .into_dimensionality::<Ix2>()
        .map_err(|e| Error::invalid("weight", e.to_string()))
}

/// Keras's `MinimalRNNCell`: `output = h = x · kernel + h_prev · recurrent_kernel`, no bias,
/// no activation; one state `h` of width `units`.
struct MinimalRNNCell {
    /// `(input_dim, units)`.
    kernel: Array2<f32>,
    /// `(units, units)`.
    recurrent_kernel: Array2<f32>,
}

impl MinimalRNNCell {
    /// Keras's `build(input_shape)`: `kernel` from `'uniform'` (`RandomUniform(-0.05, 0.05)`),
    /// `recurrent_kernel` orthogonal, both seeded.
    fn build(units: usize, input_dim: usize, seed: u64) -> Result<Self> {
        Ok(MinimalRNNCell {
            kernel: weight(Initializer::random_uniform(), (input_dim, units), seed, 1)?,
            recurrent_kernel: weight(Initializer::orthogonal(), (units, units), seed, 2)?,
        })
    }
}

impl Cell for MinimalRNNCell {
    fn state_size(&self) -> Vec<usize> {
        vec![self.kernel.ncols()]
    }

    fn output_size(&self) -> usize {
        self.kernel.ncols()
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.kernel.nrows())
    }

    fn call(
        &self,
        inputs: ArrayView2<f32>,
        states: &[ArrayView2<f32>],
        _constants: &[ArrayView2<f32>],
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        let prev_output = states
            .first()
            .ok_or_else(|| Error::invalid("MinimalRNNCell states", "expected [h], found []"))?;
        let h = inputs.dot(&self.kernel);
        let output = h + prev_output.dot(&self.recurrent_kernel);
        Ok((output.clone(), vec![output]))
    }
}

/// `MinimalRNNCell` with external constants, as the Keras docs' `constants` section describes
/// (and Keras's own `RNNCellWithConstants`): `h = x · kernel + constants[0] · constant_kernel +
/// h_prev · recurrent_kernel`. The constant is the same at every step.
struct MinimalRNNCellWithConstants {
    cell: MinimalRNNCell,
    /// `(constant_dim, units)`.
    constant_kernel: Array2<f32>,
}

impl MinimalRNNCellWithConstants {
    fn build(units: usize, input_dim: usize, constant_dim: usize, seed: u64) -> Result<Self> {
        Ok(MinimalRNNCellWithConstants {
            cell: MinimalRNNCell::build(units, input_dim, seed)?,
            constant_kernel: weight(
                Initializer::random_uniform(),
                (constant_dim, units),
                seed,
                3,
            )?,
        })
    }
}

impl Cell for MinimalRNNCellWithConstants {
    fn state_size(&self) -> Vec<usize> {
        self.cell.state_size()
    }

    fn output_size(&self) -> usize {
        self.cell.output_size()
    }

    fn input_size(&self) -> Option<usize> {
        self.cell.input_size()
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
        let constant = constants.first().ok_or_else(|| {
            Error::invalid(
                "MinimalRNNCellWithConstants constants",
                "expected one constant (batch, constant_dim), found none",
            )
        })?;
        if constant.ncols() != self.constant_kernel.nrows() {
            return Err(Error::shape(
                "MinimalRNNCellWithConstants constants[0]",
                format!("(batch, {})", self.constant_kernel.nrows()),
                constant.shape(),
            ));
        }
        let (h, _) = self.cell.call(inputs, states, &[])?;
        let output = h + constant.dot(&self.constant_kernel);
        Ok((output.clone(), vec![output]))
    }
}

/// The first `n` values of row `row` of a 2-D result, for printing.
fn head(a: &ArrayD<f32>, row: usize, n: usize) -> Result<Vec<f32>> {
    let a = a
        .view()
        .into_dimensionality::<Ix2>()
        .map_err(|e| Error::invalid("head", e.to_string()))?;
    Ok(a.row(row).iter().take(n).copied().collect())
}

fn main() -> Result<()> {
    const SEED: u64 = 1234;
    let (batch, time, features) = (2, 5, 3);
    // A fixed, non-trivial input (batch 2, time 5, features 3).
    let x = Array3::from_shape_fn((batch, time, features), |(b, t, f)| {
        ((b * 31 + t * 7 + f * 3) as f32 * 0.37).sin()
    });

    // RNN(MinimalRNNCell(32))
    let cell = MinimalRNNCell::build(32, features, SEED)?;
    let options = SequenceOptions {
        return_sequences: true,
        return_state: true,
        ..Default::default()
    };
    let mut layer = RNN::new(AnyCell::user(cell), options);
    let out = layer.call(x.view())?;
    println!("RNN(MinimalRNNCell(32)), return_sequences, return_state");
    println!("  input  {:?}", x.shape());
    println!("  output {:?}", out.output.shape());
    for (name, s) in layer.state_names().iter().zip(&out.states) {
        println!("  state {name} {:?}", s.shape());
    }
    println!("  h[0, :4] = {:?}", head(&out.states[0], 0, 4)?);

    // RNN([MinimalRNNCell(32), MinimalRNNCell(64)])
    let cells = vec![
        AnyCell::user(MinimalRNNCell::build(32, features, SEED)?),
        AnyCell::user(MinimalRNNCell::build(64, 32, SEED + 1)?),
    ];
    let options = SequenceOptions {
        return_state: true,
        ..Default::default()
    };
    let mut stack = RNN::stacked(cells, options)?;
    let out = stack.call(x.view())?;
    println!("RNN([MinimalRNNCell(32), MinimalRNNCell(64)]), return_state");
    println!("  output {:?}", out.output.shape());
    for (name, s) in stack.state_names().iter().zip(&out.states) {
        println!("  state {name} {:?}", s.shape());
    }
    println!("  output[1, :4] = {:?}", head(&out.output, 1, 4)?);

    // RNN(MinimalRNNCellWithConstants(32)) called with constants=[c], then with zeros as the
    // constant (which gives the plain MinimalRNNCell's result: same seed, same kernels).
    let constant_dim = 4;
    let cell = MinimalRNNCellWithConstants::build(32, features, constant_dim, SEED)?;
    let mut layer = RNN::new(AnyCell::user(cell), SequenceOptions::default());
    let c = Array2::from_shape_fn((batch, constant_dim), |(b, k)| 0.5 - 0.25 * (b + k) as f32);
    let constants = [c.view()];
    let args = CallArgs {
        constants: &constants,
        ..Default::default()
    };
    let with = layer.forward(x.view(), &args)?;
    let zeros = Array2::<f32>::zeros((batch, constant_dim));
    let zero_constants = [zeros.view()];
    let args = CallArgs {
        constants: &zero_constants,
        ..Default::default()
    };
    let without = layer.forward(x.view(), &args)?;
    println!("RNN(MinimalRNNCellWithConstants(32)), constants [(2, {constant_dim})]");
    println!("  output {:?}", with.output.shape());
    println!(
        "  output[0, :4] with constants c     = {:?}",
        head(&with.output, 0, 4)?
    );
    println!(
        "  output[0, :4] with constants zeros = {:?}",
        head(&without.output, 0, 4)?
    );
    Ok(())
}
