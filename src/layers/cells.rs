//! The built-in cells with their weights, in Keras's layouts.

use crate::activation::Activation;
use crate::cell::Cell;
use crate::config::{GRUCellConfig, Initializers, LSTMCellConfig, SimpleRNNCellConfig};
use crate::cpu::gates::{self, Chunk};
use crate::cpu::packed::{Init, PackedMatrix};
use crate::cpu::sequence::{for_each_chunk, plan_chunks, Scratch, Stepper};
use crate::error::fmt_shape;
use crate::{Error, Result};
use ndarray::{concatenate, s, Array1, Array2, ArrayD, ArrayView2, Axis, Ix1, Ix2};

/// Checks that `shape` equals `expected`, naming `what` in the error.
pub(crate) fn check_shape(what: &str, shape: &[usize], expected: &[usize]) -> Result<()> {
    if shape == expected {
        Ok(())
    } else {
        Err(Error::shape(what, fmt_shape(expected), shape))
    }
}

fn init2(
    init: &crate::initializers::Initializer,
    shape: (usize, usize),
    salt: u64,
    what: &str,
) -> Result<Array2<f32>> {
    init.generate(&[shape.0, shape.1], salt)?
        .into_dimensionality::<Ix2>()
        .map_err(|e| Error::invalid(what, e.to_string()))
}

fn init1(
    init: &crate::initializers::Initializer,
    len: usize,
    salt: u64,
    what: &str,
) -> Result<Array1<f32>> {
    init.generate(&[len], salt)?
        .into_dimensionality::<Ix1>()
        .map_err(|e| Error::invalid(what, e.to_string()))
}

/// `kernel (input_dim, gates*units)` and `recurrent_kernel (units, gates*units)` from the
/// initializers, deterministic in `seed`.
fn init_kernels(
    i: &Initializers,
    input_dim: usize,
    units: usize,
    gates: usize,
    seed: u64,
) -> Result<(Array2<f32>, Array2<f32>)> {
    let kernel = init2(
        &i.kernel_initializer,
        (input_dim, gates * units),
        seed * 8 + 1,
        "kernel",
    )?;
    let rec = init2(
        &i.recurrent_initializer,
        (units, gates * units),
        seed * 8 + 2,
        "recurrent_kernel",
    )?;
    Ok((kernel, rec))
}

/// LSTM-style bias with `unit_forget_bias`: `[init(u), ones(u), init(2u)]`, else `init(4u)`.
pub(crate) fn lstm_bias(
    inits: &Initializers,
    units: usize,
    unit_forget_bias: bool,
    salt: u64,
) -> Result<Array1<f32>> {
    if unit_forget_bias {
        let a = init1(&inits.bias_initializer, units, salt, "bias")?;
        let b = Array1::<f32>::ones(units);
        let c = init1(&inits.bias_initializer, 2 * units, salt + 1, "bias")?;
        concatenate(Axis(0), &[a.view(), b.view(), c.view()])
            .map_err(|e| Error::invalid("bias", e.to_string()))
    } else {
        init1(&inits.bias_initializer, 4 * units, salt, "bias")
    }
}

fn check_bias(use_bias: bool, bias: Option<&[usize]>, expected: &[usize]) -> Result<()> {
    match (use_bias, bias) {
        (true, Some(s)) => check_shape("bias", s, expected),
        (true, None) => Err(Error::MissingWeight {
            name: "bias".into(),
            expected: fmt_shape(expected),
        }),
        (false, Some(_)) => Err(Error::UnexpectedWeight {
            name: "bias".into(),
            why: "use_bias is false".into(),
        }),
        (false, None) => Ok(()),
    }
}

/// Checks the common part of every built-in cell's one-step call.
fn check_call(
    cell: &dyn Stepper,
    inputs: ArrayView2<f32>,
    states: &[ArrayView2<f32>],
    constants: &[ArrayView2<f32>],
) -> Result<()> {
    if !constants.is_empty() {
        return Err(Error::invalid(
            "constants",
            "built-in cells take no constants",
        ));
    }
    let b = inputs.nrows();
    check_shape("inputs", inputs.shape(), &[b, cell.input_width()])?;
    let widths = cell.state_widths();
    if states.len() != widths.len() {
        return Err(Error::invalid(
            "states",
            format!("expected {} arrays, found {}", widths.len(), states.len()),
        ));
    }
    for (k, (s, w)) in states.iter().zip(widths).enumerate() {
        check_shape(&format!("states[{k}]"), s.shape(), &[b, w])?;
    }
    Ok(())
}

/// One step through the fused path (projection, then step), for the `Cell` impls.
fn call_via_stepper(
    cell: &dyn Stepper,
    inputs: ArrayView2<f32>,
    states: &[ArrayView2<f32>],
) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
    let b = inputs.nrows();
    let xp = cell.project(inputs, b, 1)?;
    let owned: Vec<Array2<f32>> = states.iter().map(|s| s.to_owned()).collect();
    let mut new_states: Vec<Array2<f32>> = owned.iter().map(|s| Array2::zeros(s.dim())).collect();
    let mut out = Array2::zeros((b, cell.output_width()));
    let mut scratch = cell.scratch(b, 1);
    cell.step(xp.view(), &owned, &mut new_states, &mut out, &mut scratch)?;
    Ok((out, new_states))
}

macro_rules! impl_cell_via_stepper {
    ($t:ty) => {
        impl Cell for $t {
            fn state_size(&self) -> Vec<usize> {
                Stepper::state_widths(self)
            }
            fn output_size(&self) -> usize {
                Stepper::output_width(self)
            }
            fn input_size(&self) -> Option<usize> {
                Some(Stepper::input_width(self))
            }
            fn call(
                &self,
                inputs: ArrayView2<f32>,
                states: &[ArrayView2<f32>],
                constants: &[ArrayView2<f32>],
            ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
                check_call(self, inputs, states, constants)?;
                call_via_stepper(self, inputs, states)
            }
        }
    };
}

/// `SimpleRNNCell`: `h' = activation(x W + b + h U)`; output `h'`, states `[h]`.
///
/// Weights: `kernel (input_dim, units)`, `recurrent_kernel (units, units)`, `bias (units,)`.
#[derive(Debug, Clone)]
pub struct SimpleRNNCell {
    pub(crate) config: SimpleRNNCellConfig,
    pub(crate) kernel: Array2<f32>,
    pub(crate) recurrent_kernel: Array2<f32>,
    /// `recurrent_kernel`'s gate blocks packed for the per-step product.
    pub(crate) packed: Vec<PackedMatrix>,
    /// `kernel` packed for the input projection of all steps.
    pub(crate) packed_kernel: PackedMatrix,
    pub(crate) bias: Option<Array1<f32>>,
}

impl SimpleRNNCell {
    /// A cell from trained weights in Keras's shapes (`bias` must be `None` iff `use_bias` is false).
    pub fn new(
        config: SimpleRNNCellConfig,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
    ) -> Result<Self> {
        let u = config.units;
        check_shape("kernel", kernel.shape(), &[kernel.nrows(), u])?;
        check_shape("recurrent_kernel", recurrent_kernel.shape(), &[u, u])?;
        check_bias(config.use_bias, bias.as_ref().map(|b| b.shape()), &[u])?;
        Ok(SimpleRNNCell {
            packed: pack_gates(&recurrent_kernel, 1),
            packed_kernel: PackedMatrix::pack(kernel.view()),
            config,
            kernel,
            recurrent_kernel,
            bias,
        })
    }

    /// A cell with weights drawn from the config's initializers (deterministic in `seed`).
    pub fn build(config: SimpleRNNCellConfig, input_dim: usize, seed: u64) -> Result<Self> {
        let u = config.units;
        let i = &config.initializers;
        let (kernel, rec) = init_kernels(i, input_dim, u, 1, seed)?;
        let bias = if config.use_bias {
            Some(init1(&i.bias_initializer, u, seed * 8 + 3, "bias")?)
        } else {
            None
        };
        Self::new(config, kernel, rec, bias)
    }

    /// The configuration.
    pub fn config(&self) -> &SimpleRNNCellConfig {
        &self.config
    }

    /// Keras's `get_weights()`: `[kernel, recurrent_kernel, bias?]`.
    pub fn weights(&self) -> Vec<ArrayD<f32>> {
        let mut w = vec![
            self.kernel.clone().into_dyn(),
            self.recurrent_kernel.clone().into_dyn(),
        ];
        if let Some(b) = &self.bias {
            w.push(b.clone().into_dyn());
        }
        w
    }
}

/// `GRUCell`, gates `[z | r | h]`, output `h'`, states `[h]`.
///
/// * `reset_after = false`: `z = rec(x W_z + b_z + h U_z)`, `r = rec(x W_r + b_r + h U_r)`,
///   `n = act(x W_h + b_h + (r * h) U_h)`; bias `(3 * units,)`.
/// * `reset_after = true`: `z = rec(x W_z + b_z + h U_z + c_z)`, `r = ...`,
///   `n = act(x W_h + b_h + r * (h U_h + c_h))`; bias `(2, 3 * units)` = `[b; c]`.
/// * both: `h' = z * h + (1 - z) * n`.
///
/// Weights: `kernel (input_dim, 3 * units)`, `recurrent_kernel (units, 3 * units)`.
#[derive(Debug, Clone)]
pub struct GRUCell {
    pub(crate) config: GRUCellConfig,
    pub(crate) kernel: Array2<f32>,
    pub(crate) recurrent_kernel: Array2<f32>,
    /// `recurrent_kernel`'s gate blocks packed for the per-step product.
    pub(crate) packed: Vec<PackedMatrix>,
    /// `kernel` packed for the input projection of all steps.
    pub(crate) packed_kernel: PackedMatrix,
    pub(crate) input_bias: Option<Array1<f32>>,
    pub(crate) recurrent_bias: Option<Array1<f32>>,
}

impl GRUCell {
    /// A cell from trained weights in Keras's shapes. `bias` is `(3 * units,)` for
    /// `reset_after = false` and `(2, 3 * units)` for `reset_after = true`; `None` iff
    /// `use_bias` is false.
    pub fn new(
        config: GRUCellConfig,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<ArrayD<f32>>,
    ) -> Result<Self> {
        let u = config.units;
        check_shape("kernel", kernel.shape(), &[kernel.nrows(), 3 * u])?;
        check_shape("recurrent_kernel", recurrent_kernel.shape(), &[u, 3 * u])?;
        let expected: Vec<usize> = if config.reset_after {
            vec![2, 3 * u]
        } else {
            vec![3 * u]
        };
        check_bias(config.use_bias, bias.as_ref().map(|b| b.shape()), &expected)?;
        let (input_bias, recurrent_bias) = match bias {
            None => (None, None),
            Some(b) if config.reset_after => {
                let b = b
                    .into_dimensionality::<Ix2>()
                    .map_err(|e| Error::invalid("bias", e.to_string()))?;
                (Some(b.row(0).to_owned()), Some(b.row(1).to_owned()))
            }
            Some(b) => (
                Some(
                    b.into_dimensionality::<Ix1>()
                        .map_err(|e| Error::invalid("bias", e.to_string()))?,
                ),
                None,
            ),
        };
        Ok(GRUCell {
            packed: pack_gates(&recurrent_kernel, 3),
            packed_kernel: PackedMatrix::pack(kernel.view()),
            config,
            kernel,
            recurrent_kernel,
            input_bias,
            recurrent_bias,
        })
    }

    /// A cell with weights drawn from the config's initializers (deterministic in `seed`).
    pub fn build(config: GRUCellConfig, input_dim: usize, seed: u64) -> Result<Self> {
        let u = config.units;
        let i = &config.initializers;
        let (kernel, rec) = init_kernels(i, input_dim, u, 3, seed)?;
        let bias = if !config.use_bias {
            None
        } else if config.reset_after {
            Some(i.bias_initializer.generate(&[2, 3 * u], seed * 8 + 3)?)
        } else {
            Some(i.bias_initializer.generate(&[3 * u], seed * 8 + 3)?)
        };
        Self::new(config, kernel, rec, bias)
    }

    /// The configuration.
    pub fn config(&self) -> &GRUCellConfig {
        &self.config
    }

    /// Keras's `get_weights()`: `[kernel, recurrent_kernel, bias?]` with bias `(3u,)` or `(2, 3u)`.
    pub fn weights(&self) -> Vec<ArrayD<f32>> {
        let mut w = vec![
            self.kernel.clone().into_dyn(),
            self.recurrent_kernel.clone().into_dyn(),
        ];
        match (&self.input_bias, &self.recurrent_bias) {
            (Some(b), Some(c)) => {
                let mut m = Array2::zeros((2, b.len()));
                m.row_mut(0).assign(b);
                m.row_mut(1).assign(c);
                w.push(m.into_dyn());
            }
            (Some(b), None) => w.push(b.clone().into_dyn()),
            _ => {}
        }
        w
    }
}

/// `LSTMCell`, gates `[i | f | c | o]`, output `h'`, states `[h, c]`:
/// `i = rec(x W_i + b_i + h U_i)`, `f = rec(..._f)`, `g = act(..._c)`, `o = rec(..._o)`,
/// `c' = f * c + i * g`, `h' = o * act(c')`.
///
/// Weights: `kernel (input_dim, 4 * units)`, `recurrent_kernel (units, 4 * units)`,
/// `bias (4 * units,)`.
#[derive(Debug, Clone)]
pub struct LSTMCell {
    pub(crate) config: LSTMCellConfig,
    pub(crate) kernel: Array2<f32>,
    pub(crate) recurrent_kernel: Array2<f32>,
    /// `recurrent_kernel`'s gate blocks packed for the per-step product.
    pub(crate) packed: Vec<PackedMatrix>,
    /// `kernel` packed for the input projection of all steps.
    pub(crate) packed_kernel: PackedMatrix,
    pub(crate) bias: Option<Array1<f32>>,
}

impl LSTMCell {
    /// A cell from trained weights in Keras's shapes (`bias` must be `None` iff `use_bias` is false).
    pub fn new(
        config: LSTMCellConfig,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
    ) -> Result<Self> {
        let u = config.units;
        check_shape("kernel", kernel.shape(), &[kernel.nrows(), 4 * u])?;
        check_shape("recurrent_kernel", recurrent_kernel.shape(), &[u, 4 * u])?;
        check_bias(config.use_bias, bias.as_ref().map(|b| b.shape()), &[4 * u])?;
        Ok(LSTMCell {
            packed: pack_gates(&recurrent_kernel, 4),
            packed_kernel: PackedMatrix::pack(kernel.view()),
            config,
            kernel,
            recurrent_kernel,
            bias,
        })
    }

    /// A cell with weights drawn from the config's initializers (deterministic in `seed`);
    /// `unit_forget_bias` sets the forget block of the bias to ones.
    pub fn build(config: LSTMCellConfig, input_dim: usize, seed: u64) -> Result<Self> {
        let u = config.units;
        let i = &config.initializers;
        let (kernel, rec) = init_kernels(i, input_dim, u, 4, seed)?;
        let bias = if config.use_bias {
            Some(lstm_bias(i, u, config.unit_forget_bias, seed * 8 + 3)?)
        } else {
            None
        };
        Self::new(config, kernel, rec, bias)
    }

    /// The configuration.
    pub fn config(&self) -> &LSTMCellConfig {
        &self.config
    }

    /// Keras's `get_weights()`: `[kernel, recurrent_kernel, bias?]`.
    pub fn weights(&self) -> Vec<ArrayD<f32>> {
        let mut w = vec![
            self.kernel.clone().into_dyn(),
            self.recurrent_kernel.clone().into_dyn(),
        ];
        if let Some(b) = &self.bias {
            w.push(b.clone().into_dyn());
        }
        w
    }
}

impl_cell_via_stepper!(SimpleRNNCell);
impl_cell_via_stepper!(GRUCell);
impl_cell_via_stepper!(LSTMCell);

// ---- fused steppers

/// Packs each of the `gates` column blocks of `u` `(units, gates * units)`.
fn pack_gates(u: &Array2<f32>, gates: usize) -> Vec<PackedMatrix> {
    let units = u.nrows();
    (0..gates)
        .map(|g| PackedMatrix::pack(u.slice(s![.., g * units..(g + 1) * units])))
        .collect()
}

/// `hu_chunk = h · U[:, gate blocks of the chunk]` for the first `gates` gate blocks, side by
/// side in `hu` (each `len` wide).
fn recurrent_product(
    h: ArrayView2<f32>,
    packed: &[PackedMatrix],
    gates: usize,
    c: Chunk,
    hu: &mut Array2<f32>,
) -> Result<()> {
    let mut rest = hu.view_mut();
    for p in packed.iter().take(gates) {
        let (block, tail) = rest.split_at(Axis(1), c.len);
        p.matmul_cols(h, c.u0, block)?;
        rest = tail;
    }
    Ok(())
}

/// Scratch with one `(batch, gates * len)` buffer per chunk of `units`. With a row-wise
/// activation among `acts` (`softmax` normalises over all units of a gate) the step is one
/// chunk of all units.
fn gate_scratch(
    batch: usize,
    units: usize,
    gates: usize,
    threads: usize,
    acts: &[Activation],
) -> Scratch {
    let flops = 2.0 * batch as f64 * units as f64 * (gates * units) as f64;
    let threads = if acts.iter().any(|a| a.is_row_wise()) {
        1
    } else {
        threads
    };
    let chunks = plan_chunks(units, threads, flops, 16);
    let per_chunk = chunks
        .iter()
        .map(|c| vec![Array2::zeros((batch, gates * c.len))])
        .collect();
    Scratch {
        chunks,
        per_chunk,
        shared: Vec::new(),
    }
}

/// The `Stepper` methods every dense built-in cell shares: widths from `units`, and the input
/// projection `x W + b` of all steps through the packed kernel (`$bias` is the input bias
/// field), unless the cell's `projects_in_step(batch)` says that its step does it.
macro_rules! dense_stepper_common {
    ($bias:ident) => {
        fn input_width(&self) -> usize {
            self.kernel.nrows()
        }
        fn output_width(&self) -> usize {
            self.config.units
        }
        fn project<'a>(
            &self,
            x: ArrayView2<'a, f32>,
            batch: usize,
            threads: usize,
        ) -> Result<ndarray::CowArray<'a, f32, ndarray::Ix2>> {
            if self.projects_in_step(batch) {
                return Ok(x.into());
            }
            crate::cpu::affine(x, &self.packed_kernel, self.$bias.as_ref(), threads).map(Into::into)
        }
    };
}

impl SimpleRNNCell {
    /// Always false: the input projection runs once for all steps.
    fn projects_in_step(&self, _batch: usize) -> bool {
        false
    }
}

impl GRUCell {
    /// Always false: the input projection runs once for all steps.
    fn projects_in_step(&self, _batch: usize) -> bool {
        false
    }
}

/// Batch rows from which the LSTM step computes `x_t W + b` itself (see
/// [`LSTMCell::projects_in_step`]).
const LSTM_IN_STEP_MIN_BATCH: usize = 8;

impl LSTMCell {
    /// Whether each step computes its own input product `x_t W + b` (into the gate buffer,
    /// then `h U` accumulated onto it) instead of reading it from a projection of all steps.
    /// From a few batch rows up the per-step product runs at the kernel's full rate, and the
    /// `(steps * batch, 4 * units)` projection is never written to and read back from memory,
    /// nor added to the gates in a separate pass; at batch 1 the projection of all steps is
    /// one efficient GEMM while a per-step one would re-read `W` each step. Needs whole
    /// 16-column panels per gate (`units % 16 == 0`).
    fn projects_in_step(&self, batch: usize) -> bool {
        batch >= LSTM_IN_STEP_MIN_BATCH && self.config.units.is_multiple_of(16)
    }
}

impl Stepper for SimpleRNNCell {
    dense_stepper_common!(bias);
    fn state_widths(&self) -> Vec<usize> {
        vec![self.config.units]
    }
    fn scratch(&self, batch: usize, threads: usize) -> Scratch {
        gate_scratch(
            batch,
            self.config.units,
            1,
            threads,
            &[self.config.activation],
        )
    }
    fn step(
        &self,
        xp: ArrayView2<f32>,
        states: &[Array2<f32>],
        new_states: &mut [Array2<f32>],
        out: &mut Array2<f32>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let h = states[0].view();
        let act = self.config.activation;
        let outs = [new_states[0].view_mut()];
        for_each_chunk(
            &scratch.chunks,
            &mut scratch.per_chunk,
            outs,
            |c, bufs, [h_out]| {
                recurrent_product(h, &self.packed, 1, *c, &mut bufs[0])?;
                gates::simple(xp, &mut bufs[0], h_out, act, *c)
            },
        )?;
        out.assign(&new_states[0]);
        Ok(())
    }
}

impl Stepper for GRUCell {
    dense_stepper_common!(input_bias);
    fn state_widths(&self) -> Vec<usize> {
        vec![self.config.units]
    }
    fn scratch(&self, batch: usize, threads: usize) -> Scratch {
        let u = self.config.units;
        let acts = [self.config.activation, self.config.recurrent_activation];
        if self.config.reset_after {
            gate_scratch(batch, u, 3, threads, &acts)
        } else {
            let mut s = gate_scratch(batch, u, 2, threads, &acts);
            for (c, bufs) in s.chunks.iter().zip(s.per_chunk.iter_mut()) {
                bufs.push(Array2::zeros((batch, c.len)));
            }
            s.shared.push(Array2::zeros((batch, u)));
            s
        }
    }
    fn step(
        &self,
        xp: ArrayView2<f32>,
        states: &[Array2<f32>],
        new_states: &mut [Array2<f32>],
        out: &mut Array2<f32>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let act = self.config.activation;
        let rec = self.config.recurrent_activation;
        let h = states[0].view();
        if self.config.reset_after {
            let rb = match &self.recurrent_bias {
                Some(b) => Some(
                    b.as_slice()
                        .ok_or_else(|| Error::invalid("bias", "internal: not contiguous"))?,
                ),
                None => None,
            };
            let outs = [new_states[0].view_mut()];
            for_each_chunk(
                &scratch.chunks,
                &mut scratch.per_chunk,
                outs,
                |c, bufs, [h_out]| {
                    recurrent_product(h, &self.packed, 3, *c, &mut bufs[0])?;
                    gates::gru_after(xp, &mut bufs[0], rb, h, h_out, act, rec, *c)
                },
            )?;
        } else {
            let (shared, chunks) = (&mut scratch.shared, &scratch.chunks);
            let rh = &mut shared[0];
            {
                let outs = [rh.view_mut()];
                for_each_chunk(chunks, &mut scratch.per_chunk, outs, |c, bufs, [rh_out]| {
                    recurrent_product(h, &self.packed, 2, *c, &mut bufs[0])?;
                    gates::gru_before_gates(xp, &mut bufs[0], h, rh_out, rec, *c)
                })?;
            }
            let rh = rh.view();
            let outs = [new_states[0].view_mut()];
            for_each_chunk(chunks, &mut scratch.per_chunk, outs, |c, bufs, [h_out]| {
                let (zbuf, rhu) = bufs.split_at_mut(1);
                self.packed[2].matmul_cols(rh, c.u0, rhu[0].view_mut())?;
                gates::gru_before_update(xp, &zbuf[0], &mut rhu[0], h, h_out, act, *c)
            })?;
        }
        out.assign(&new_states[0]);
        Ok(())
    }
}

impl Stepper for LSTMCell {
    dense_stepper_common!(bias);
    fn state_widths(&self) -> Vec<usize> {
        vec![self.config.units, self.config.units]
    }
    fn scratch(&self, batch: usize, threads: usize) -> Scratch {
        let acts = [self.config.activation, self.config.recurrent_activation];
        gate_scratch(batch, self.config.units, 4, threads, &acts)
    }
    fn step(
        &self,
        xp: ArrayView2<f32>,
        states: &[Array2<f32>],
        new_states: &mut [Array2<f32>],
        out: &mut Array2<f32>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let (act, rec) = (self.config.activation, self.config.recurrent_activation);
        let (h, c_prev) = (states[0].view(), states[1].view());
        let (h_new, c_new) = new_states.split_at_mut(1);
        let in_step = self.projects_in_step(xp.nrows());
        let bias = match &self.bias {
            Some(b) => Some(
                b.as_slice()
                    .ok_or_else(|| Error::invalid("bias", "internal: not contiguous"))?,
            ),
            None => None,
        };
        let outs = [h_new[0].view_mut(), c_new[0].view_mut()];
        let chunks = &scratch.chunks;
        for_each_chunk(
            chunks,
            &mut scratch.per_chunk,
            outs,
            |c, bufs, [h_out, c_out]| {
                if !in_step {
                    recurrent_product(h, &self.packed, 4, *c, &mut bufs[0])?;
                    return gates::lstm(Some(xp), &mut bufs[0], c_prev, h_out, c_out, act, rec, *c);
                }
                // `xp` is `x_t`: per gate, `x_t W + b` then `+= h U`, in the chunk's block.
                let mut rest = bufs[0].view_mut();
                for (g, p) in self.packed.iter().enumerate() {
                    let n0 = g * c.units + c.u0;
                    let init = bias.map_or(Init::Zero, |b| Init::Bias(&b[n0..n0 + c.len]));
                    let (mut block, tail) = rest.split_at(Axis(1), c.len);
                    self.packed_kernel
                        .matmul_cols_init(xp, n0, block.view_mut(), init)?;
                    p.matmul_cols_init(h, c.u0, block, Init::Accumulate)?;
                    rest = tail;
                }
                gates::lstm(None, &mut bufs[0], c_prev, h_out, c_out, act, rec, *c)
            },
        )?;
        out.assign(&h_new[0]);
        Ok(())
    }
}
