//! Keras 2's `Bidirectional` wrapper (tf-keras 2.x semantics, checked against tf-keras 2.21).
//!
//! - The forward layer is the wrapped layer; the backward layer is a copy with `go_backwards`
//!   flipped, or the `backward_layer` given (its `go_backwards` must differ from the forward
//!   layer's; `stateful`, `return_sequences` and `return_state` must agree).
//! - Both see the same input and mask. `initial_state` is split: the forward layer's states
//!   first, then the backward layer's.
//! - With `return_sequences`, masked steps output zeros in each direction (Keras forces
//!   `zero_output_for_mask` on the wrapped layers; ConvLSTM2D ignores it, as in Keras), and the
//!   backward output is reversed back in time before merging.
//! - `merge_mode`: `concat` (last axis), `sum`, `mul`, `ave`, or `None` (both outputs).
//! - States (with `return_state`): the forward layer's, then the backward layer's.

use crate::keras::KerasLayer;
use crate::layers::core::{zero_masked_steps, CallArgs, Output};
use crate::{Error, Result};
use ndarray::{ArrayD, ArrayViewD, Axis};

/// How `Bidirectional` combines its two outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Concatenated along the last axis (Keras's default).
    Concat,
    /// Element-wise sum.
    Sum,
    /// Element-wise product.
    Mul,
    /// Element-wise mean.
    Ave,
    /// Not merged: both outputs are returned.
    None,
}

impl MergeMode {
    /// From Keras's config value (`"concat"`, `"sum"`, `"mul"`, `"ave"`, or null).
    pub fn from_keras(v: Option<&str>) -> Result<Self> {
        Ok(match v {
            Some("concat") => MergeMode::Concat,
            Some("sum") => MergeMode::Sum,
            Some("mul") => MergeMode::Mul,
            Some("ave") => MergeMode::Ave,
            None => MergeMode::None,
            Some(other) => {
                return Err(Error::config(
                    "config.merge_mode",
                    format!(
                        "expected \"concat\", \"sum\", \"mul\", \"ave\" or null, found \"{other}\""
                    ),
                ))
            }
        })
    }
}

/// The result of a `Bidirectional` call.
#[derive(Debug, Clone, PartialEq)]
pub struct BidirectionalOutput {
    /// The merged output; `None` with `MergeMode::None`.
    pub output: Option<ArrayD<f32>>,
    /// The forward layer's output (in input time order).
    pub forward: ArrayD<f32>,
    /// The backward layer's output, reversed back to input time order when it is a sequence.
    pub backward: ArrayD<f32>,
    /// The forward layer's final states, then the backward layer's.
    pub states: Vec<ArrayD<f32>>,
}

/// Keras `Bidirectional(layer, merge_mode, backward_layer)` around any recurrent layer
/// (`SimpleRNN`, `GRU`, `LSTM`, `ConvLSTM2D`, `CuDNNGRU`, `CuDNNLSTM`, `RNN`).
#[derive(Debug)]
pub struct Bidirectional {
    forward: KerasLayer,
    backward: KerasLayer,
    merge_mode: MergeMode,
}

impl Bidirectional {
    /// From the two directions, as Keras builds them: `backward` is the wrapped layer's copy
    /// with `go_backwards` flipped, or the `backward_layer`.
    pub fn new(forward: KerasLayer, backward: KerasLayer, merge_mode: MergeMode) -> Result<Self> {
        if matches!(forward, KerasLayer::Bidirectional(_))
            || matches!(backward, KerasLayer::Bidirectional(_))
        {
            return Err(Error::config(
                "config.layer",
                "a Bidirectional cannot wrap another Bidirectional",
            ));
        }
        let (f, b) = (forward.options(), backward.options());
        if f.go_backwards == b.go_backwards {
            return Err(Error::config(
                "config.backward_layer.config.go_backwards",
                format!(
                    "the forward and backward layers must have different go_backwards (both {})",
                    f.go_backwards
                ),
            ));
        }
        for (name, x, y) in [
            ("stateful", f.stateful, b.stateful),
            ("return_sequences", f.return_sequences, b.return_sequences),
            ("return_state", f.return_state, b.return_state),
            ("time_major", f.time_major, b.time_major),
        ] {
            if x != y {
                return Err(Error::config(
                    format!("config.backward_layer.config.{name}"),
                    format!("expected the forward layer's value {x}, found {y}"),
                ));
            }
        }
        Ok(Bidirectional {
            forward,
            backward,
            merge_mode,
        })
    }

    /// The forward layer.
    pub fn forward_layer(&self) -> &KerasLayer {
        &self.forward
    }

    /// The backward layer.
    pub fn backward_layer(&self) -> &KerasLayer {
        &self.backward
    }

    /// The forward layer, mutably (for `reset_states`).
    pub fn forward_layer_mut(&mut self) -> &mut KerasLayer {
        &mut self.forward
    }

    /// The backward layer, mutably.
    pub fn backward_layer_mut(&mut self) -> &mut KerasLayer {
        &mut self.backward
    }

    /// Keras `reset_states()` of a stateful `Bidirectional`: both directions start from zeros.
    pub fn reset_states(&mut self) {
        reset(&mut self.forward);
        reset(&mut self.backward);
    }

    /// The merge mode.
    pub fn merge_mode(&self) -> MergeMode {
        self.merge_mode
    }

    /// The sequence options (the forward layer's: `return_sequences`, `return_state`, ...).
    pub fn options(&self) -> crate::config::SequenceOptions {
        self.forward.options()
    }

    /// `forward.h`, `forward.c`, ..., `backward.h`, ...: the flattened states' names.
    pub fn state_names(&self) -> Vec<String> {
        let f = self.forward.state_names();
        let b = self.backward.state_names();
        f.iter()
            .map(|n| format!("forward.{n}"))
            .chain(b.iter().map(|n| format!("backward.{n}")))
            .collect()
    }

    /// Runs both directions on `x` (3-D, or 5-D for ConvLSTM2D) and merges.
    ///
    /// `args.initial_state`: the forward layer's states, then the backward layer's, flattened
    /// (see [`Bidirectional::state_names`]).
    pub fn forward(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<BidirectionalOutput> {
        let nf = self.forward.state_names().len();
        let nb = self.backward.state_names().len();
        let (init_f, init_b) = match args.initial_state {
            None => (None, None),
            Some(s) => {
                if s.len() != nf + nb {
                    return Err(Error::invalid(
                        "initial_state",
                        format!(
                            "expected {} arrays ({}), found {}",
                            nf + nb,
                            self.state_names().join(", "),
                            s.len()
                        ),
                    ));
                }
                (Some(&s[..nf]), Some(&s[nf..]))
            }
        };
        let fa = CallArgs {
            mask: args.mask,
            initial_state: init_f,
            constants: args.constants,
        };
        let ba = CallArgs {
            mask: args.mask,
            initial_state: init_b,
            constants: args.constants,
        };
        let fo = self
            .forward
            .forward(x.view(), &fa)
            .map_err(|e| name_direction("forward", e))?;
        let bo = self
            .backward
            .forward(x.view(), &ba)
            .map_err(|e| name_direction("backward", e))?;
        let opts = self.forward.options();
        let mut y = fo.output;
        let mut y_rev = bo.output;
        if opts.return_sequences {
            let time_axis = if opts.time_major { 0 } else { 1 };
            if let Some(m) = args.mask {
                // Keras forces zero_output_for_mask on the wrapped layers (ConvLSTM2D ignores it).
                if !matches!(self.forward, KerasLayer::ConvLSTM2D(_)) {
                    let reversed = self.forward.options().zeroes_by_reversed_mask();
                    zero_masked_steps(&mut y, m, reversed, time_axis);
                }
                if !matches!(self.backward, KerasLayer::ConvLSTM2D(_)) {
                    let reversed = self.backward.options().zeroes_by_reversed_mask();
                    zero_masked_steps(&mut y_rev, m, reversed, time_axis);
                }
            }
            y_rev.invert_axis(Axis(time_axis));
            y_rev = y_rev.as_standard_layout().into_owned();
        }
        let output = match self.merge_mode {
            MergeMode::None => None,
            MergeMode::Concat => {
                let last = Axis(y.ndim().saturating_sub(1));
                Some(
                    ndarray::concatenate(last, &[y.view(), y_rev.view()]).map_err(|_| {
                        Error::invalid(
                            "Bidirectional",
                            format!(
                                "cannot concatenate outputs of shapes {} and {}",
                                crate::error::fmt_shape(y.shape()),
                                crate::error::fmt_shape(y_rev.shape())
                            ),
                        )
                    })?,
                )
            }
            mode => {
                if y.shape() != y_rev.shape() {
                    return Err(Error::invalid(
                        "Bidirectional",
                        format!(
                            "merge_mode {mode:?} needs outputs of one shape, found {} and {}",
                            crate::error::fmt_shape(y.shape()),
                            crate::error::fmt_shape(y_rev.shape())
                        ),
                    ));
                }
                Some(match mode {
                    MergeMode::Sum => &y + &y_rev,
                    MergeMode::Mul => &y * &y_rev,
                    _ => (&y + &y_rev) / 2.0,
                })
            }
        };
        let mut states = fo.states;
        states.extend(bo.states);
        Ok(BidirectionalOutput {
            output,
            forward: y,
            backward: y_rev,
            states,
        })
    }

    /// As [`Bidirectional::forward`], in the shape every [`KerasLayer`] returns: the merged
    /// output, or with `MergeMode::None` the two outputs stacked on a new first axis
    /// (`output[0]` forward, `output[1]` backward).
    pub fn forward_stacked(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<Output> {
        let o = self.forward(x, args)?;
        let output = match o.output {
            Some(a) => a,
            None => ndarray::stack(Axis(0), &[o.forward.view(), o.backward.view()])
                .map_err(|e| Error::invalid("Bidirectional", e.to_string()))?,
        };
        Ok(Output {
            output,
            states: o.states,
        })
    }
}

/// Names the direction in a direction's initial-state error: `initial_state (forward layer)`,
/// `initial_state forward.h` (the CUDA path's Bidirectional uses it too).
pub(crate) fn name_direction(dir: &str, e: Error) -> Error {
    match e {
        Error::Invalid { what, message } if what.starts_with("initial_state") => Error::Invalid {
            what: format!(
                "initial_state ({dir} layer) {}",
                &what["initial_state".len()..]
            )
            .trim_end()
            .to_string(),
            message,
        },
        Error::Shape {
            what,
            expected,
            found,
        } if what.starts_with("initial_state") => Error::Shape {
            what: what.replacen("initial_state ", &format!("initial_state {dir}."), 1),
            expected,
            found,
        },
        other => other,
    }
}

fn reset(l: &mut KerasLayer) {
    match l {
        KerasLayer::SimpleRNN(l) => l.reset_states(),
        KerasLayer::GRU(l) => l.reset_states(),
        KerasLayer::LSTM(l) => l.reset_states(),
        KerasLayer::ConvLSTM2D(l) => l.reset_states(),
        KerasLayer::CuDNNGRU(l) => l.reset_states(),
        KerasLayer::CuDNNLSTM(l) => l.reset_states(),
        KerasLayer::RNN(l) => l.reset_states(),
        KerasLayer::Bidirectional(l) => l.reset_states(),
    }
}
