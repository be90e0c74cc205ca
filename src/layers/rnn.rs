//! `RNN` over a cell or a stack of cells, and the layers that are an `RNN` over one built-in
//! cell: `SimpleRNN`, `GRU`, `LSTM`.

use crate::cell::Cell;
use crate::config::{GRUCellConfig, LSTMCellConfig, SequenceOptions, SimpleRNNCellConfig};
use crate::cpu::sequence::{Scratch, Stepper};
use crate::layers::cells::{check_shape, GRUCell, LSTMCell, SimpleRNNCell};
use crate::layers::core::{self, CallArgs, Carry, Output};
use crate::{Error, Result};
use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayView3};

/// One cell of an [`RNN`]: a built-in cell (fused path) or a user-defined [`Cell`].
pub enum AnyCell {
    /// `SimpleRNNCell`.
    SimpleRNN(SimpleRNNCell),
    /// `GRUCell`.
    GRU(GRUCell),
    /// `LSTMCell`.
    LSTM(LSTMCell),
    /// A user-defined cell (CPU only).
    User(Box<dyn Cell + Send + Sync>),
}

impl std::fmt::Debug for AnyCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyCell::SimpleRNN(c) => c.fmt(f),
            AnyCell::GRU(c) => c.fmt(f),
            AnyCell::LSTM(c) => c.fmt(f),
            AnyCell::User(c) => write!(
                f,
                "User(state_size={:?}, output_size={})",
                c.state_size(),
                c.output_size()
            ),
        }
    }
}

impl From<SimpleRNNCell> for AnyCell {
    fn from(c: SimpleRNNCell) -> Self {
        AnyCell::SimpleRNN(c)
    }
}
impl From<GRUCell> for AnyCell {
    fn from(c: GRUCell) -> Self {
        AnyCell::GRU(c)
    }
}
impl From<LSTMCell> for AnyCell {
    fn from(c: LSTMCell) -> Self {
        AnyCell::LSTM(c)
    }
}

impl AnyCell {
    /// Wraps a user-defined cell.
    pub fn user(cell: impl Cell + Send + Sync + 'static) -> Self {
        AnyCell::User(Box::new(cell))
    }

    /// Widths of the cell's states.
    pub fn state_size(&self) -> Vec<usize> {
        match self {
            AnyCell::SimpleRNN(c) => c.state_widths(),
            AnyCell::GRU(c) => c.state_widths(),
            AnyCell::LSTM(c) => c.state_widths(),
            AnyCell::User(c) => c.state_size(),
        }
    }

    /// Width of the cell's output.
    pub fn output_size(&self) -> usize {
        match self {
            AnyCell::SimpleRNN(c) => c.output_width(),
            AnyCell::GRU(c) => c.output_width(),
            AnyCell::LSTM(c) => c.output_width(),
            AnyCell::User(c) => c.output_size(),
        }
    }

    /// Width of the cell's input when fixed by its weights.
    pub fn input_size(&self) -> Option<usize> {
        match self {
            AnyCell::SimpleRNN(c) => Some(c.input_width()),
            AnyCell::GRU(c) => Some(c.input_width()),
            AnyCell::LSTM(c) => Some(c.input_width()),
            AnyCell::User(c) => c.input_size(),
        }
    }

    /// Keras's name for each state: `h` (and `c` for LSTM), then `s2`, `s3`, ... for
    /// user-defined cells with more states.
    pub fn state_names(&self) -> Vec<String> {
        (0..self.state_size().len())
            .map(|k| match k {
                0 => "h".to_string(),
                1 => "c".to_string(),
                k => format!("s{k}"),
            })
            .collect()
    }
}

/// Drives a user-defined cell through the time loop.
struct UserStepper<'a> {
    cell: &'a (dyn Cell + Send + Sync),
    index: usize,
    input_width: usize,
    constants: &'a [ArrayView2<'a, f32>],
}

impl Stepper for UserStepper<'_> {
    fn input_width(&self) -> usize {
        self.input_width
    }
    fn state_widths(&self) -> Vec<usize> {
        self.cell.state_size()
    }
    fn output_width(&self) -> usize {
        self.cell.output_size()
    }
    fn project<'a>(
        &self,
        x: ArrayView2<'a, f32>,
        _batch: usize,
        _threads: usize,
    ) -> Result<ndarray::CowArray<'a, f32, ndarray::Ix2>> {
        Ok(x.into())
    }
    fn scratch(&self, _batch: usize, _threads: usize) -> Scratch {
        Scratch {
            chunks: Vec::new(),
            per_chunk: Vec::new(),
            shared: Vec::new(),
        }
    }
    fn step(
        &self,
        xp: ArrayView2<f32>,
        states: &[Array2<f32>],
        new_states: &mut [Array2<f32>],
        out: &mut Array2<f32>,
        _scratch: &mut Scratch,
    ) -> Result<()> {
        let views: Vec<ArrayView2<f32>> = states.iter().map(|s| s.view()).collect();
        let i = self.index;
        let (o, ns) = self
            .cell
            .call(xp, &views, self.constants)
            .map_err(|e| Error::invalid(format!("cells.{i}"), e.to_string()))?;
        check_shape(&format!("cells.{i} output"), o.shape(), out.shape())?;
        if ns.len() != new_states.len() {
            return Err(Error::invalid(
                format!("cells.{i} states"),
                format!(
                    "the cell returned {} states, its state_size has {}",
                    ns.len(),
                    new_states.len()
                ),
            ));
        }
        for (k, (dst, src)) in new_states.iter_mut().zip(ns).enumerate() {
            check_shape(&format!("cells.{i} state {k}"), src.shape(), dst.shape())?;
            *dst = src;
        }
        *out = o;
        Ok(())
    }
}

/// Keras `RNN`: runs a cell, or a stack of cells, over a sequence.
///
/// Input `(batch, time, features)` (`(time, batch, features)` with `time_major`). In a stack,
/// cell `k + 1` reads cell `k`'s output at the same step; the layer's output is the last cell's.
/// States are flattened in Keras's order: `[h, c]` for one LSTM cell,
/// `[cells.0.h, cells.0.c, cells.1.h, ...]` for a stack.
#[derive(Debug)]
pub struct RNN {
    cells: Vec<AnyCell>,
    stacked: bool,
    options: SequenceOptions,
    carry: Carry,
}

impl RNN {
    /// `RNN(cell)`: one cell, states named `h`, `c`.
    pub fn new(cell: impl Into<AnyCell>, options: SequenceOptions) -> Self {
        RNN {
            cells: vec![cell.into()],
            stacked: false,
            options,
            carry: Carry::default(),
        }
    }

    /// `RNN([cell, cell, ...])` / `RNN(StackedRNNCells(...))`: a stack, states named per cell
    /// (`cells.0.h`, ...) even for a one-element list, as Keras does.
    pub fn stacked(cells: Vec<AnyCell>, options: SequenceOptions) -> Result<Self> {
        if cells.is_empty() {
            return Err(Error::invalid(
                "cells",
                "expected at least one cell, found none",
            ));
        }
        for k in 1..cells.len() {
            if let Some(i) = cells[k].input_size() {
                let prev = cells[k - 1].output_size();
                if i != prev {
                    return Err(Error::invalid(
                        format!("cells.{k}.kernel"),
                        format!(
                            "expected {prev} input rows (the output width of cells.{}), found {i}",
                            k - 1
                        ),
                    ));
                }
            }
        }
        Ok(RNN {
            cells,
            stacked: true,
            options,
            carry: Carry::default(),
        })
    }

    /// The cells.
    pub fn cells(&self) -> &[AnyCell] {
        &self.cells
    }

    /// Whether the cells form a stack (states named per cell).
    pub fn is_stacked(&self) -> bool {
        self.stacked
    }

    /// The sequence options.
    pub fn options(&self) -> &SequenceOptions {
        &self.options
    }

    /// The names of the flattened states: `h`, `c` or `cells.0.h`, `cells.0.c`, `cells.1.h`, ...
    pub fn state_names(&self) -> Vec<String> {
        if self.stacked {
            self.cells
                .iter()
                .enumerate()
                .flat_map(|(k, c)| {
                    c.state_names()
                        .into_iter()
                        .map(move |n| format!("cells.{k}.{n}"))
                })
                .collect()
        } else {
            self.cells.iter().flat_map(|c| c.state_names()).collect()
        }
    }

    fn state_widths(&self) -> Vec<usize> {
        self.cells.iter().flat_map(|c| c.state_size()).collect()
    }

    /// Runs the layer on `x` with no mask, initial state or constants.
    pub fn call(&mut self, x: ArrayView3<f32>) -> Result<Output> {
        self.forward(x, &CallArgs::default())
    }

    /// Runs the layer.
    ///
    /// * `x`: `(batch, time, features)`, or `(time, batch, features)` with `time_major`
    /// * `args.mask`: `(batch, time)`; `args.initial_state`: flattened states, each
    ///   `(batch, width)`; `args.constants`: for user-defined cells.
    pub fn forward(&mut self, x: ArrayView3<f32>, args: &CallArgs) -> Result<Output> {
        let batch = if self.options.time_major {
            x.dim().1
        } else {
            x.dim().0
        };
        let feat = x.dim().2;
        if let Some(i) = self.cells[0].input_size() {
            let expected = if self.options.time_major {
                format!("(time, batch, {i})")
            } else {
                format!("(batch, time, {i})")
            };
            if feat != i {
                return Err(Error::shape("input", expected, x.shape()));
            }
        }
        if !args.constants.is_empty() {
            let takers = self
                .cells
                .iter()
                .filter(|c| matches!(c, AnyCell::User(u) if u.accepts_constants()))
                .count();
            if takers == 0 {
                return Err(Error::invalid(
                    "constants",
                    "no cell of this RNN accepts constants",
                ));
            }
            for (j, c) in args.constants.iter().enumerate() {
                if c.nrows() != batch {
                    return Err(Error::shape(
                        format!("constants[{j}]"),
                        format!("({batch}, ...)"),
                        c.shape(),
                    ));
                }
            }
        }
        let widths = self.state_widths();
        let names = self.state_names();
        let given = match args.initial_state {
            None => None,
            Some(g) => {
                if g.len() != widths.len() {
                    return Err(Error::invalid(
                        "initial_state",
                        format!(
                            "expected {} arrays ({}), found {}",
                            widths.len(),
                            names.join(", "),
                            g.len()
                        ),
                    ));
                }
                let mut v = Vec::with_capacity(g.len());
                for ((a, w), n) in g.iter().zip(&widths).zip(&names) {
                    v.push(core::flatten_state(n, a, &[batch, *w])?);
                }
                Some(v)
            }
        };
        let init = core::initial_states(
            given,
            &widths,
            &names,
            batch,
            &self.options,
            &mut self.carry,
        )?;
        let no_constants: &[ArrayView2<f32>] = &[];
        let mut users: Vec<UserStepper> = Vec::new();
        let mut in_w = feat;
        for (k, c) in self.cells.iter().enumerate() {
            if let AnyCell::User(u) = c {
                users.push(UserStepper {
                    cell: u.as_ref(),
                    index: k,
                    input_width: in_w,
                    constants: if u.accepts_constants() {
                        args.constants
                    } else {
                        no_constants
                    },
                });
            }
            in_w = c.output_size();
        }
        let mut users_it = users.iter();
        let mut steppers: Vec<&dyn Stepper> = Vec::with_capacity(self.cells.len());
        for c in &self.cells {
            steppers.push(match c {
                AnyCell::SimpleRNN(c) => c,
                AnyCell::GRU(c) => c,
                AnyCell::LSTM(c) => c,
                AnyCell::User(_) => users_it
                    .next()
                    .ok_or_else(|| Error::invalid("cells", "internal: user cell count mismatch"))?,
            });
        }
        let (output, states) = core::run(
            &steppers,
            &self.options,
            x,
            args.mask,
            init,
            &mut self.carry,
        )?;
        Ok(Output {
            output,
            states: states.into_iter().map(|s| s.into_dyn()).collect(),
        })
    }

    /// Keras `reset_states()`: the next call of a stateful layer starts from zeros.
    pub fn reset_states(&mut self) {
        self.carry.states = None;
    }

    /// Keras `reset_states(states)`: the next call starts from `states` (flattened, each
    /// `(batch, width)`).
    pub fn reset_states_to(&mut self, states: Vec<Array2<f32>>) -> Result<()> {
        let widths = self.state_widths();
        let names = self.state_names();
        self.carry.reset(Some(states), &widths, &names)
    }

    /// The states a stateful layer will start its next call from (`None`: zeros).
    pub fn carried_states(&self) -> Option<&[Array2<f32>]> {
        self.carry.states.as_deref()
    }
}

macro_rules! delegate_rnn {
    ($t:ident, $cell:ident, $cfg:ident, $variant:ident) => {
        impl $t {
            /// With weights from the config's initializers, deterministic in `seed`.
            pub fn build(
                config: $cfg,
                options: SequenceOptions,
                input_dim: usize,
                seed: u64,
            ) -> Result<Self> {
                Ok(Self::from_cell(
                    $cell::build(config, input_dim, seed)?,
                    options,
                ))
            }
            /// Around an existing cell.
            pub fn from_cell(cell: $cell, options: SequenceOptions) -> Self {
                $t {
                    rnn: RNN::new(cell, options),
                }
            }
            /// The cell (config and weights).
            pub fn cell(&self) -> Option<&$cell> {
                match self.rnn.cells.first() {
                    Some(AnyCell::$variant(c)) => Some(c),
                    _ => None,
                }
            }
            /// Runs the layer on `x` `(batch, time, features)` with no mask or initial state.
            pub fn call(&mut self, x: ArrayView3<f32>) -> Result<Output> {
                self.rnn.call(x)
            }
            /// Runs the layer; see [`RNN::forward`].
            pub fn forward(&mut self, x: ArrayView3<f32>, args: &CallArgs) -> Result<Output> {
                self.rnn.forward(x, args)
            }
            /// Keras `reset_states()`: the next call of a stateful layer starts from zeros.
            pub fn reset_states(&mut self) {
                self.rnn.reset_states()
            }
            /// Keras `reset_states(states)`; see [`RNN::reset_states_to`].
            pub fn reset_states_to(&mut self, states: Vec<Array2<f32>>) -> Result<()> {
                self.rnn.reset_states_to(states)
            }
            /// The sequence options.
            pub fn options(&self) -> &SequenceOptions {
                self.rnn.options()
            }
            /// The layer as the generic [`RNN`] it is.
            pub fn as_rnn(&self) -> &RNN {
                &self.rnn
            }
            /// The layer as the generic [`RNN`] it is, mutably.
            pub fn as_rnn_mut(&mut self) -> &mut RNN {
                &mut self.rnn
            }
        }
    };
}

/// Keras `SimpleRNN`: `RNN(SimpleRNNCell)`. Input `(batch, time, input_dim)`, output
/// `(batch, [time,] units)`, state `h` `(batch, units)`.
#[derive(Debug)]
pub struct SimpleRNN {
    rnn: RNN,
}

impl SimpleRNN {
    /// From trained weights in Keras's shapes: `kernel (input_dim, units)`,
    /// `recurrent_kernel (units, units)`, `bias (units,)`.
    pub fn new(
        config: SimpleRNNCellConfig,
        options: SequenceOptions,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
    ) -> Result<Self> {
        Ok(Self::from_cell(
            SimpleRNNCell::new(config, kernel, recurrent_kernel, bias)?,
            options,
        ))
    }
}
delegate_rnn!(SimpleRNN, SimpleRNNCell, SimpleRNNCellConfig, SimpleRNN);

/// Keras `GRU`: `RNN(GRUCell)`, gates `[z | r | h]`. Input `(batch, time, input_dim)`, output
/// `(batch, [time,] units)`, state `h`. See [`GRUCell`] for both `reset_after` variants.
#[derive(Debug)]
pub struct GRU {
    rnn: RNN,
}

impl GRU {
    /// From trained weights in Keras's shapes: `kernel (input_dim, 3u)`,
    /// `recurrent_kernel (u, 3u)`, `bias (3u,)` or, with `reset_after`, `(2, 3u)`.
    pub fn new(
        config: GRUCellConfig,
        options: SequenceOptions,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<ArrayD<f32>>,
    ) -> Result<Self> {
        Ok(Self::from_cell(
            GRUCell::new(config, kernel, recurrent_kernel, bias)?,
            options,
        ))
    }
}
delegate_rnn!(GRU, GRUCell, GRUCellConfig, GRU);

/// Keras `LSTM`: `RNN(LSTMCell)`, gates `[i | f | c | o]`. Input `(batch, time, input_dim)`,
/// output `(batch, [time,] units)`, states `h`, `c`.
#[derive(Debug)]
pub struct LSTM {
    rnn: RNN,
}

impl LSTM {
    /// From trained weights in Keras's shapes: `kernel (input_dim, 4u)`,
    /// `recurrent_kernel (u, 4u)`, `bias (4u,)`.
    pub fn new(
        config: LSTMCellConfig,
        options: SequenceOptions,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
    ) -> Result<Self> {
        Ok(Self::from_cell(
            LSTMCell::new(config, kernel, recurrent_kernel, bias)?,
            options,
        ))
    }
}
delegate_rnn!(LSTM, LSTMCell, LSTMCellConfig, LSTM);
