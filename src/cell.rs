//! The cell trait: one time step of a recurrent layer, for built-in and user-defined cells.

use crate::Result;
use ndarray::{Array2, ArrayView2};

/// One step of a recurrent cell, Keras's `cell.call(inputs, states, constants)`.
///
/// Implement this for a user-defined cell and run it with [`crate::layers::RNN`], alone or
/// stacked with other cells (see `examples/minimal_rnn_cell.rs`, the Keras docs'
/// `MinimalRNNCell`). The built-in cells ([`crate::layers::SimpleRNNCell`],
/// [`crate::layers::GRUCell`], [`crate::layers::LSTMCell`]) implement it too, so they can be used
/// one step at a time; inside an `RNN` they run on a faster fused path.
///
/// User-defined cells run on the CPU only.
pub trait Cell {
    /// The width of each state, in Keras's order (`[units]` for one state, `[units, units]`
    /// for LSTM's `[h, c]`).
    fn state_size(&self) -> Vec<usize>;

    /// The width of the cell's output at one step.
    fn output_size(&self) -> usize;

    /// The width of the input at one step that this cell expects, when it is fixed (built
    /// cells); `None` to accept any width.
    fn input_size(&self) -> Option<usize> {
        None
    }

    /// Whether the cell takes `constants` (Keras's `call(..., constants=...)`). A cell that
    /// returns `false` is never given constants, and `RNN` refuses constants for it when it is
    /// the only cell.
    fn accepts_constants(&self) -> bool {
        false
    }

    /// One step for a whole batch.
    ///
    /// * `inputs`: `(batch, input_size)`
    /// * `states`: one `(batch, state_size()[k])` array per state
    /// * `constants`: the constants given to the `RNN` call, each `(batch, ...)`, unchanged
    ///   across steps (empty when none were given)
    ///
    /// Returns the output `(batch, output_size)` and the new states, same shapes as `states`.
    fn call(
        &self,
        inputs: ArrayView2<f32>,
        states: &[ArrayView2<f32>],
        constants: &[ArrayView2<f32>],
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)>;
}
