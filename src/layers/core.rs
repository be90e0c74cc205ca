//! What every recurrent layer shares: argument checks, time-major / go_backwards handling,
//! initial and stateful states, and the shape of the result.

use crate::config::SequenceOptions;
use crate::cpu::sequence::{self, Stepper};
use crate::error::fmt_shape;
use crate::layers::cells::check_shape;
use crate::{Error, Result};
use ndarray::{Array2, ArrayD, ArrayView2, ArrayView3, Axis};

/// Optional arguments of a layer call.
#[derive(Debug, Clone, Default)]
pub struct CallArgs<'a> {
    /// `(batch, time)`, true where the step is real. A masked step keeps the states and repeats
    /// the previous output (zeros before the first real step). Holes are allowed anywhere.
    pub mask: Option<ArrayView2<'a, bool>>,
    /// The initial states, flattened in Keras's order (`[h, c]`; for a stack of cells
    /// `[cells.0.h, cells.0.c, cells.1.h, ...]`), each `(batch, units)` (ConvLSTM2D:
    /// `(batch, rows, cols, filters)` or channels-first). Overrides a stateful layer's states.
    pub initial_state: Option<&'a [ArrayD<f32>]>,
    /// `constants` for user-defined cells, each `(batch, ...)`, passed unchanged to every step.
    pub constants: &'a [ArrayView2<'a, f32>],
}

/// The result of a layer call.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// `(batch, time, units)` with `return_sequences` (`(time, batch, units)` when
    /// `time_major`), else `(batch, units)`. ConvLSTM2D: `(batch, [time,] rows, cols, filters)`
    /// or channels-first.
    pub output: ArrayD<f32>,
    /// The final states, flattened in Keras's order (see [`CallArgs::initial_state`]). Keras
    /// returns them only with `return_state`; they are always filled here.
    pub states: Vec<ArrayD<f32>>,
}

/// The states a stateful layer carries between calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct Carry {
    /// Fixed at the first call (or by `reset_states` with values).
    pub batch: Option<usize>,
    /// `None` means zeros.
    pub states: Option<Vec<Array2<f32>>>,
}

impl Carry {
    /// Sets the carried states to zeros (`None`) or to `values` (checked against `widths`).
    pub(crate) fn reset(
        &mut self,
        values: Option<Vec<Array2<f32>>>,
        widths: &[usize],
        names: &[String],
    ) -> Result<()> {
        match values {
            None => self.states = None,
            Some(v) => {
                if v.len() != widths.len() {
                    return Err(Error::invalid(
                        "reset_states",
                        format!(
                            "expected {} states ({}), found {}",
                            widths.len(),
                            names.join(", "),
                            v.len()
                        ),
                    ));
                }
                let b = v.first().map(|a| a.nrows()).unwrap_or(0);
                if let Some(fixed) = self.batch {
                    if fixed != b {
                        return Err(Error::invalid(
                            "reset_states",
                            format!("the stateful layer's batch size is {fixed}, found states for batch {b}"),
                        ));
                    }
                }
                for ((a, w), n) in v.iter().zip(widths).zip(names) {
                    check_shape(&format!("reset_states {n}"), a.shape(), &[b, *w])?;
                }
                self.batch = Some(b);
                self.states = Some(v);
            }
        }
        Ok(())
    }
}

/// Flat initial states `(batch, width)` from `args` (already flattened per row by the caller),
/// the carry of a stateful layer, or zeros.
pub(crate) fn initial_states(
    given: Option<Vec<Array2<f32>>>,
    widths: &[usize],
    names: &[String],
    batch: usize,
    options: &SequenceOptions,
    carry: &mut Carry,
) -> Result<Vec<Array2<f32>>> {
    if options.stateful {
        if let Some(fixed) = carry.batch {
            if fixed != batch {
                return Err(Error::invalid(
                    "input",
                    format!("stateful layer was first called with batch size {fixed}, found batch size {batch}; call reset_states with states of the new batch size or build a new layer"),
                ));
            }
        }
        carry.batch = Some(batch);
    }
    if let Some(g) = given {
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
        return Ok(g);
    }
    if options.stateful {
        if let Some(s) = &carry.states {
            for ((a, w), n) in s.iter().zip(widths).zip(names) {
                if a.ncols() != *w {
                    return Err(Error::invalid(
                        "input",
                        format!("the stateful layer carries state {n} of width {} from its last call, this input needs width {w}; call reset_states first", a.ncols()),
                    ));
                }
            }
            return Ok(s.clone());
        }
    }
    Ok(widths.iter().map(|&w| Array2::zeros((batch, w))).collect())
}

/// Flattens one initial state to `(batch, width)`, checking its shape is `expected`.
pub(crate) fn flatten_state(
    name: &str,
    a: &ArrayD<f32>,
    expected: &[usize],
) -> Result<Array2<f32>> {
    if a.shape() != expected {
        return Err(Error::Shape {
            what: format!("initial_state {name}"),
            expected: fmt_shape(expected),
            found: fmt_shape(a.shape()),
        });
    }
    let b = expected[0];
    let w: usize = expected[1..].iter().product();
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, w))
        .map_err(|e| Error::invalid(format!("initial_state {name}"), e.to_string()))
}

/// Runs `cells` as one layer over `x` as the user gave it (`(batch, time, f)`, or
/// `(time, batch, f)` when `time_major`). Returns the output `(batch, time, out)` /
/// `(time, batch, out)` / `(batch, out)` and the final states per cell.
pub(crate) fn run(
    cells: &[&dyn Stepper],
    options: &SequenceOptions,
    x: ArrayView3<f32>,
    mask: Option<ArrayView2<bool>>,
    init: Vec<Array2<f32>>,
    carry: &mut Carry,
) -> Result<(ArrayD<f32>, Vec<Array2<f32>>)> {
    let (batch, time) = if options.time_major {
        (x.dim().1, x.dim().0)
    } else {
        (x.dim().0, x.dim().1)
    };
    if time == 0 {
        return Err(Error::invalid(
            "input",
            "the time dimension is 0; expected at least one step",
        ));
    }
    if let Some(m) = mask {
        check_shape("mask", m.shape(), &[batch, time])?;
    }
    let x_tm = sequence::to_time_major(x, !options.time_major, options.go_backwards);
    let mask_tm = mask.map(|m| sequence::mask_to_time_major(m, options.go_backwards));
    let mut per_cell = Vec::with_capacity(cells.len());
    let mut it = init.into_iter();
    for c in cells {
        per_cell.push(it.by_ref().take(c.state_widths().len()).collect::<Vec<_>>());
    }
    // Keras's unrolled loop under go_backwards zeroes the sequence with the mask in input
    // order (SequenceOptions::zeroes_by_reversed_mask): run with repeated outputs, then zero.
    let zero_after = options.zero_output_for_mask
        && options.return_sequences
        && options.go_backwards
        && !options.zeroes_by_reversed_mask();
    let (res, states) = sequence::run_stack(
        cells,
        x_tm.view(),
        mask_tm.as_ref().map(|m| m.view()),
        per_cell,
        options.return_sequences,
        if options.zero_output_for_mask && !zero_after {
            sequence::MaskedOutput::Zeros
        } else {
            sequence::MaskedOutput::RepeatPrevious
        },
    )?;
    let mut output = if options.return_sequences {
        let o = res
            .outputs
            .ok_or_else(|| Error::invalid("return_sequences", "no outputs were kept"))?;
        if options.time_major {
            o.into_dyn()
        } else {
            o.permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned()
                .into_dyn()
        }
    } else {
        res.last.into_dyn()
    };
    if let (true, Some(m)) = (zero_after, mask) {
        let time_axis = usize::from(!options.time_major);
        zero_masked_steps(&mut output, m, false, time_axis);
    }
    let flat: Vec<Array2<f32>> = states.into_iter().flatten().collect();
    if options.stateful {
        carry.states = Some(flat.clone());
    }
    Ok((output, flat))
}

/// Splits `(n, a * b)` rows back into `(n, a, b)`-style shapes: reshapes `arr` whose first axis
/// is kept to `shape`.
pub(crate) fn reshape(arr: ArrayD<f32>, shape: &[usize], what: &str) -> Result<ArrayD<f32>> {
    arr.as_standard_layout()
        .into_owned()
        .into_shape_with_order(shape.to_vec())
        .map_err(|e| Error::invalid(what, e.to_string()))
}

/// Keras's `zero_output_for_mask`: sets to zero the outputs of masked steps. `out` is a
/// sequence output in processing order (time on `time_axis`); `mask` is `(batch, time)` in
/// input order, and step `t` is zeroed where `mask[:, T-1-t]` is false when `reversed`
/// (a `go_backwards` layer's loop), `mask[:, t]` otherwise
/// ([`SequenceOptions::zeroes_by_reversed_mask`](crate::config::SequenceOptions::zeroes_by_reversed_mask)).
pub(crate) fn zero_masked_steps(
    out: &mut ArrayD<f32>,
    mask: ArrayView2<bool>,
    reversed: bool,
    time_axis: usize,
) {
    let t_len = out.shape().get(time_axis).copied().unwrap_or(0);
    if mask.ncols() != t_len || out.ndim() < 2 {
        return;
    }
    for t in 0..t_len {
        let s = if reversed { t_len - 1 - t } else { t };
        // Without the time axis, the batch axis is first in both layouts.
        let mut step = out.index_axis_mut(Axis(time_axis), t);
        for (b, mut row) in step.axis_iter_mut(Axis(0)).enumerate() {
            if b < mask.nrows() && !mask[[b, s]] {
                row.fill(0.0);
            }
        }
    }
}
