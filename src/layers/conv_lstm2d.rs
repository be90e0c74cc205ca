//! `ConvLSTM2D`: an LSTM whose input and recurrent transforms are 2-D convolutions.

use crate::config::{ConvLSTM2DConfig, DataFormat};
use crate::cpu::conv::ConvGeometry;
use crate::cpu::gates::{self, Chunk};
use crate::cpu::packed::PackedMatrix;
use crate::cpu::sequence::{for_each_task, plan_chunks, split_rows, Scratch, Stepper};
use crate::cpu::winograd::{self, Tiling, Winograd};
use crate::error::fmt_shape;
use crate::layers::cells::{check_shape, lstm_bias};
use crate::layers::core::{self, CallArgs, Carry, Output};
use crate::{Error, Result};
use ndarray::{
    s, Array1, Array2, Array4, ArrayD, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMut2, Ix3, Ix4,
};

/// Keras `ConvLSTM2D`, gates `[i | f | c | o]`:
/// `i = rec(W_i * x + U_i * h + b_i)`, `f`, `o` alike, `g = act(W_c * x + U_c * h + b_c)`,
/// `c' = f c + i g`, `h' = o act(c')`, where `*` is a 2-D convolution. The input convolution
/// uses the layer's `strides`, `padding`, `dilation_rate`; the recurrent one is always stride 1,
/// `same`, no dilation.
///
/// Shapes (channels_last; channels_first puts channels before rows):
/// input `(batch, time, rows, cols, channels)`, output `(batch, [time,] out_rows, out_cols,
/// filters)`, states `h`, `c` `(batch, out_rows, out_cols, filters)`; weights
/// `kernel (kh, kw, channels, 4*filters)`, `recurrent_kernel (kh, kw, filters, 4*filters)`,
/// `bias (4*filters,)`.
#[derive(Debug)]
pub struct ConvLSTM2D {
    config: ConvLSTM2DConfig,
    kernel: Array4<f32>,
    recurrent_kernel: Array4<f32>,
    bias: Option<Array1<f32>>,
    /// `recurrent_kernel` as `(kh * kw * filters, 4 * filters)`, packed for the per-step product.
    packed: PackedMatrix,
    /// `kernel` as `(kh * kw * channels, 4 * filters)`, packed for the input convolution.
    packed_kernel: PackedMatrix,
    /// 3x3 kernels for Winograd: `[kernel, recurrent_kernel]` stacked when the input
    /// convolution has strides and dilation 1 (`fused`), else `recurrent_kernel` alone.
    winograd: Option<Winograd>,
    /// Whether `winograd` includes the input convolution (computed in each step then).
    fused: bool,
    carry: Carry,
}

/// Output tiles per Winograd group (the row count of its GEMMs).
const WINOGRAD_GROUP_TILES: usize = 16;

/// The layer bound to one input size: the fused step of the time loop.
struct ConvStepper<'a> {
    layer: &'a ConvLSTM2D,
    input: ConvGeometry,
    recurrent: ConvGeometry,
    /// The tiling of the output grid when the recurrent convolution (and, with `fused`, the
    /// input one) runs through Winograd.
    tiling: Option<Tiling>,
    /// `Some(out_cols)` when a row-wise activation (`softmax`) normalises over the output
    /// columns: channels_first, where Keras's gate tensors are `(batch, filters, rows, cols)`
    /// and the last axis is `cols`. The step then runs as one chunk of whole images (im2col,
    /// no Winograd) and the gates go through [`lstm_along_cols`]. Channels_last needs nothing
    /// special: its last axis is `filters`, a row of the gate buffer.
    along_cols: Option<usize>,
}

impl ConvLSTM2D {
    /// From trained weights in Keras's shapes.
    pub fn new(
        config: ConvLSTM2DConfig,
        kernel: Array4<f32>,
        recurrent_kernel: Array4<f32>,
        bias: Option<Array1<f32>>,
    ) -> Result<Self> {
        let (kh, kw) = config.kernel_size;
        let f = config.filters;
        if kh == 0 || kw == 0 || f == 0 {
            return Err(Error::config(
                "kernel_size / filters",
                format!("expected positive sizes, found kernel_size ({kh}, {kw}), filters {f}"),
            ));
        }
        let (sy, sx) = config.strides;
        let (dy, dx) = config.dilation_rate;
        if sy == 0 || sx == 0 || dy == 0 || dx == 0 {
            return Err(Error::config(
                "strides / dilation_rate",
                "expected positive values, found 0",
            ));
        }
        if (sy != 1 || sx != 1) && (dy != 1 || dx != 1) {
            return Err(Error::config(
                "strides",
                format!("strides ({sy}, {sx}) != 1 together with dilation_rate ({dy}, {dx}) != 1 is not supported (as in Keras)"),
            ));
        }
        // Keras's ConvRNN2D ignores time_major (inputs are (batch, time, ...) either way) and
        // zero_output_for_mask (masked steps repeat the previous output); so do both paths.
        let mut config = config;
        config.sequence.time_major = false;
        config.sequence.zero_output_for_mask = false;
        let cin = kernel.shape()[2];
        check_shape("kernel", kernel.shape(), &[kh, kw, cin, 4 * f])?;
        check_shape(
            "recurrent_kernel",
            recurrent_kernel.shape(),
            &[kh, kw, f, 4 * f],
        )?;
        match (config.use_bias, &bias) {
            (true, Some(b)) => check_shape("bias", b.shape(), &[4 * f])?,
            (true, None) => {
                return Err(Error::MissingWeight {
                    name: "bias".into(),
                    expected: fmt_shape(&[4 * f]),
                })
            }
            (false, Some(_)) => {
                return Err(Error::UnexpectedWeight {
                    name: "bias".into(),
                    why: "use_bias is false".into(),
                })
            }
            (false, None) => {}
        }
        let flat = recurrent_kernel
            .view()
            .into_shape_with_order((kh * kw * f, 4 * f))
            .map_err(|e| Error::invalid("recurrent_kernel", e.to_string()))?;
        let kflat = kernel
            .view()
            .into_shape_with_order((kh * kw * cin, 4 * f))
            .map_err(|e| Error::invalid("kernel", e.to_string()))?;
        let fused = (kh, kw, sy, sx, dy, dx) == (3, 3, 1, 1, 1, 1);
        let winograd = if fused {
            Winograd::new(&[kernel.view(), recurrent_kernel.view()])
        } else {
            Winograd::new(&[recurrent_kernel.view()])
        };
        Ok(ConvLSTM2D {
            winograd,
            fused,
            packed_kernel: PackedMatrix::pack(kflat),
            packed: PackedMatrix::pack(flat),
            config,
            kernel,
            recurrent_kernel,
            bias,
            carry: Carry::default(),
        })
    }

    /// With weights from the config's initializers for `channels` input channels,
    /// deterministic in `seed`.
    pub fn build(config: ConvLSTM2DConfig, channels: usize, seed: u64) -> Result<Self> {
        let (kh, kw) = config.kernel_size;
        let f = config.filters;
        let i = &config.initializers;
        let k = i
            .kernel_initializer
            .generate(&[kh, kw, channels, 4 * f], seed * 8 + 1)?
            .into_dimensionality::<Ix4>()
            .map_err(|e| Error::invalid("kernel", e.to_string()))?;
        let r = i
            .recurrent_initializer
            .generate(&[kh, kw, f, 4 * f], seed * 8 + 2)?
            .into_dimensionality::<Ix4>()
            .map_err(|e| Error::invalid("recurrent_kernel", e.to_string()))?;
        let b = if config.use_bias {
            Some(lstm_bias(i, f, config.unit_forget_bias, seed * 8 + 3)?)
        } else {
            None
        };
        Self::new(config, k, r, b)
    }

    /// The configuration.
    pub fn config(&self) -> &ConvLSTM2DConfig {
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

    /// The weights by reference, `(kernel, recurrent_kernel, bias)`, for the CUDA path.
    #[allow(dead_code)]
    pub(crate) fn weights_ref(&self) -> (&Array4<f32>, &Array4<f32>, Option<&Array1<f32>>) {
        (&self.kernel, &self.recurrent_kernel, self.bias.as_ref())
    }

    /// Input channels the kernel expects.
    pub fn input_channels(&self) -> usize {
        self.kernel.shape()[2]
    }

    /// `(out_rows, out_cols)` for an input of `rows x cols`, or an error when the input is
    /// smaller than the (dilated) kernel under `valid` padding.
    pub fn output_size(&self, rows: usize, cols: usize) -> Result<(usize, usize)> {
        let g = self.input_geometry(rows, cols)?;
        Ok((g.out_rows, g.out_cols))
    }

    fn input_geometry(&self, rows: usize, cols: usize) -> Result<ConvGeometry> {
        let c = &self.config;
        if rows == 0 || cols == 0 {
            return Err(Error::invalid(
                "input",
                format!("an image of {rows}x{cols} has no pixels; expected at least 1x1"),
            ));
        }
        ConvGeometry::new(rows, cols, self.input_channels(), c.kernel_size, c.strides, c.dilation_rate, c.padding).ok_or_else(|| {
            Error::invalid(
                "input",
                format!(
                    "an image of {rows}x{cols} is smaller than the kernel {:?} with dilation {:?} under valid padding",
                    c.kernel_size, c.dilation_rate
                ),
            )
        })
    }

    fn stepper(&self, rows: usize, cols: usize) -> Result<ConvStepper<'_>> {
        let input = self.input_geometry(rows, cols)?;
        let f = self.config.filters;
        let recurrent = ConvGeometry::new(
            input.out_rows,
            input.out_cols,
            f,
            self.config.kernel_size,
            (1, 1),
            (1, 1),
            crate::config::Padding::Same,
        )
        .ok_or_else(|| Error::invalid("input", "empty recurrent convolution"))?;
        let c = &self.config;
        let along_cols = (c.data_format == DataFormat::ChannelsFirst
            && (c.activation.is_row_wise() || c.recurrent_activation.is_row_wise()))
        .then_some(input.out_cols);
        let tiling = match &self.winograd {
            Some(w) if along_cols.is_none() && winograd::applies(&recurrent) => {
                Some(w.tiling(recurrent))
            }
            _ => None,
        };
        Ok(ConvStepper {
            layer: self,
            tiling,
            along_cols,
            input,
            recurrent,
        })
    }

    /// Runs the layer on `x` (5-D) with no mask or initial state.
    pub fn call(&mut self, x: ArrayViewD<f32>) -> Result<Output> {
        self.forward(x, &CallArgs::default())
    }

    /// Runs the layer.
    ///
    /// * `x`: `(batch, time, rows, cols, channels)` (channels_first:
    ///   `(batch, time, channels, rows, cols)`)
    /// * `args.mask`: `(batch, time)`; `args.initial_state`: `[h, c]`, each
    ///   `(batch, out_rows, out_cols, filters)` (channels_first: `(batch, filters, out_rows, out_cols)`).
    pub fn forward(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<Output> {
        let cf = self.config.data_format == DataFormat::ChannelsFirst;
        let cin = self.input_channels();
        let expected = if cf {
            format!("(batch, time, {cin}, rows, cols)")
        } else {
            format!("(batch, time, rows, cols, {cin})")
        };
        if x.ndim() != 5 {
            return Err(Error::shape("input", expected, x.shape()));
        }
        let x = if cf {
            x.permuted_axes(vec![0, 1, 3, 4, 2])
        } else {
            x
        };
        let (b, t, rows, cols, ch) = (
            x.shape()[0],
            x.shape()[1],
            x.shape()[2],
            x.shape()[3],
            x.shape()[4],
        );
        if ch != cin {
            let found = if cf {
                [b, t, ch, rows, cols]
            } else {
                [b, t, rows, cols, ch]
            };
            return Err(Error::shape("input", expected, &found));
        }
        let stepper = self.stepper(rows, cols)?;
        let (orow, ocol) = (stepper.input.out_rows, stepper.input.out_cols);
        let f = self.config.filters;
        let x3 = x
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((b, t, rows * cols * ch))
            .map_err(|e| Error::invalid("input", e.to_string()))?
            .into_dimensionality::<Ix3>()
            .map_err(|e| Error::invalid("input", e.to_string()))?;
        let state_shape: Vec<usize> = if cf {
            vec![b, f, orow, ocol]
        } else {
            vec![b, orow, ocol, f]
        };
        let names = ["h".to_string(), "c".to_string()];
        let width = orow * ocol * f;
        let given = match args.initial_state {
            None => None,
            Some(g) => {
                if g.len() != 2 {
                    return Err(Error::invalid(
                        "initial_state",
                        format!("expected 2 arrays (h, c), found {}", g.len()),
                    ));
                }
                let mut v = Vec::new();
                for (a, n) in g.iter().zip(&names) {
                    if a.shape() != state_shape.as_slice() {
                        return Err(Error::shape(
                            format!("initial_state {n}"),
                            fmt_shape(&state_shape),
                            a.shape(),
                        ));
                    }
                    let a = if cf {
                        a.view().permuted_axes(vec![0, 2, 3, 1])
                    } else {
                        a.view()
                    };
                    v.push(core::flatten_state(n, &a.to_owned(), &[b, orow, ocol, f])?);
                }
                Some(v)
            }
        };
        let options = self.config.sequence;
        let mut carry = std::mem::take(&mut self.carry);
        let result = core::initial_states(given, &[width, width], &names, b, &options, &mut carry)
            .and_then(|init| {
                let stepper = self.stepper(rows, cols)?;
                core::run(
                    &[&stepper],
                    &options,
                    ArrayView3::from(&x3),
                    args.mask,
                    init,
                    &mut carry,
                )
            });
        self.carry = carry;
        let (output, states) = result?;
        let to_user = |a: ArrayD<f32>, lead: &[usize]| -> Result<ArrayD<f32>> {
            let mut shape = lead.to_vec();
            shape.extend_from_slice(&[orow, ocol, f]);
            let a = core::reshape(a, &shape, "output")?;
            if cf {
                let n = shape.len();
                let mut perm: Vec<usize> = (0..n - 3).collect();
                perm.extend_from_slice(&[n - 1, n - 3, n - 2]);
                Ok(a.permuted_axes(perm).as_standard_layout().into_owned())
            } else {
                Ok(a)
            }
        };
        let output = if options.return_sequences {
            to_user(output, &[b, t])?
        } else {
            to_user(output, &[b])?
        };
        let states = states
            .into_iter()
            .map(|s| to_user(s.into_dyn(), &[b]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Output { output, states })
    }

    /// Keras `reset_states()`: the next call of a stateful layer starts from zeros.
    pub fn reset_states(&mut self) {
        self.carry.states = None;
    }

    /// Keras `reset_states(states)`: the next call starts from `[h, c]`, each
    /// `(batch, out_rows, out_cols, filters)` (channels_first: `(batch, filters, out_rows, out_cols)`).
    pub fn reset_states_to(&mut self, states: Vec<ArrayD<f32>>) -> Result<()> {
        let cf = self.config.data_format == DataFormat::ChannelsFirst;
        let f = self.config.filters;
        let names = ["h".to_string(), "c".to_string()];
        let mut flat = Vec::new();
        for (a, n) in states.iter().zip(&names) {
            let ok = a.ndim() == 4 && a.shape()[if cf { 1 } else { 3 }] == f;
            if !ok {
                let expected = if cf {
                    format!("(batch, {f}, rows, cols)")
                } else {
                    format!("(batch, rows, cols, {f})")
                };
                return Err(Error::shape(
                    format!("reset_states {n}"),
                    expected,
                    a.shape(),
                ));
            }
            let v = if cf {
                a.view().permuted_axes(vec![0, 2, 3, 1])
            } else {
                a.view()
            };
            let shape = v.shape().to_vec();
            flat.push(core::flatten_state(n, &v.to_owned(), &shape)?);
        }
        let w = flat.first().map(|a| a.ncols()).unwrap_or(0);
        self.carry.reset(Some(flat), &[w, w], &names)
    }
}

/// The output pixels of unit chunks, as row chunks.
fn pixel_chunks(t: &Tiling, chunks: &[Chunk]) -> Vec<Chunk> {
    let total = chunks.last().map_or(0, |c| t.pixel(c.u0 + c.len));
    chunks
        .iter()
        .map(|c| Chunk {
            u0: t.pixel(c.u0),
            len: t.pixel(c.u0 + c.len) - t.pixel(c.u0),
            units: total,
        })
        .collect()
}

/// One step's work items: each chunk with its buffers and its `rows` of `h_out` and `c_out`.
type RowTask<'s, 'o> = (
    (&'s Chunk, &'s mut Vec<Array2<f32>>),
    (ArrayViewMut2<'o, f32>, ArrayViewMut2<'o, f32>),
);

fn row_tasks<'s, 'o>(
    scratch: &'s mut Scratch,
    rows: &[Chunk],
    h_out: ArrayViewMut2<'o, f32>,
    c_out: ArrayViewMut2<'o, f32>,
) -> Vec<RowTask<'s, 'o>> {
    let h_parts = split_rows(h_out, rows);
    let c_parts = split_rows(c_out, rows);
    scratch
        .chunks
        .iter()
        .zip(scratch.per_chunk.iter_mut())
        .zip(h_parts.into_iter().zip(c_parts))
        .collect()
}

impl ConvStepper<'_> {
    /// Whether each step also computes the input convolution (stacked into its Winograd GEMMs).
    fn fused(&self) -> bool {
        self.layer.fused && self.tiling.is_some()
    }

    /// Scratch of the Winograd step: chunks of units; per chunk `V`, `M` and the gate buffer
    /// of one group.
    fn scratch_winograd(&self, w: &Winograd, t: &Tiling, batch: usize, threads: usize) -> Scratch {
        let f = self.layer.config.filters;
        let rows = batch * self.recurrent.out_pixels();
        let flops = 2.0 * rows as f64 * self.recurrent.patch_len() as f64 * (4 * f) as f64;
        let chunks = plan_chunks(t.units(batch), threads, flops, 1);
        let group = t.group(WINOGRAD_GROUP_TILES);
        let (vl, ml) = w.scratch_len(group * t.cols);
        let per_chunk = chunks
            .iter()
            .map(|_| {
                vec![
                    Array2::zeros((1, vl)),
                    Array2::zeros((1, ml)),
                    Array2::zeros((t.max_pixels(group), 4 * f)),
                ]
            })
            .collect();
        Scratch {
            chunks,
            per_chunk,
            shared: Vec::new(),
        }
    }

    /// One step through Winograd: per group of units, the recurrent convolution (fused: plus
    /// the input convolution of this step's frames `xp` and the bias; else `xp` is the
    /// projected input) into the gate buffer, then the fused gates on those pixels.
    #[allow(clippy::too_many_arguments)]
    fn step_winograd(
        &self,
        w: &Winograd,
        t: &Tiling,
        xp: ArrayView2<f32>,
        c_prev: ArrayView2<f32>,
        h_prev: &[f32],
        h_out: ArrayViewMut2<f32>,
        c_out: ArrayViewMut2<f32>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let f = self.layer.config.filters;
        let fused = self.fused();
        let rows = xp.nrows() * self.recurrent.out_pixels();
        let (frames, xp) = if fused {
            let x = xp
                .to_slice()
                .ok_or_else(|| Error::invalid("input", "internal: frames not contiguous"))?;
            (x, None)
        } else {
            let xp = xp
                .into_shape_with_order((rows, 4 * f))
                .map_err(|e| Error::invalid("input", e.to_string()))?;
            (&[][..], Some(xp))
        };
        let bias = match (fused, &self.layer.bias) {
            (true, Some(b)) => Some(
                b.as_slice()
                    .ok_or_else(|| Error::invalid("bias", "internal: not contiguous"))?,
            ),
            _ => None,
        };
        let sources_fused = [(&self.input, frames), (&self.recurrent, h_prev)];
        let sources = if fused {
            &sources_fused[..]
        } else {
            &sources_fused[1..]
        };
        let pix = pixel_chunks(t, &scratch.chunks);
        let tasks = row_tasks(scratch, &pix, h_out, c_out);
        let (act, rec) = (
            self.layer.config.activation,
            self.layer.config.recurrent_activation,
        );
        let whole = Chunk {
            u0: 0,
            len: f,
            units: f,
        };
        let internal = || Error::invalid("winograd", "internal: scratch not contiguous");
        for_each_task(tasks, |((c, bufs), (mut h_out, mut c_out))| {
            let [v, m, hu] = bufs.as_mut_slice() else {
                return Err(internal());
            };
            let v = v.as_slice_mut().ok_or_else(internal)?;
            let m = m.as_slice_mut().ok_or_else(internal)?;
            let group = t.group(WINOGRAD_GROUP_TILES);
            let (base, end) = (t.pixel(c.u0), c.u0 + c.len);
            for u0 in (c.u0..end).step_by(group) {
                let u1 = (u0 + group).min(end);
                let (p0, p1) = (t.pixel(u0), t.pixel(u1));
                w.conv_group(
                    t,
                    sources,
                    u0,
                    u1,
                    v,
                    m,
                    hu.slice_mut(s![..p1 - p0, ..]),
                    bias,
                )?;
                let local = p0 - base..p1 - base;
                gates::lstm(
                    xp.map(|xp| xp.slice_move(s![p0..p1, ..])),
                    hu,
                    c_prev.slice(s![p0..p1, ..]),
                    h_out.slice_mut(s![local.clone(), ..]),
                    c_out.slice_mut(s![local, ..]),
                    act,
                    rec,
                    whole,
                )?;
            }
            Ok(())
        })
    }
}

impl Stepper for ConvStepper<'_> {
    fn input_width(&self) -> usize {
        self.input.in_rows * self.input.in_cols * self.input.channels
    }
    fn state_widths(&self) -> Vec<usize> {
        let w = self.input.out_pixels() * self.layer.config.filters;
        vec![w, w]
    }
    fn output_width(&self) -> usize {
        self.input.out_pixels() * self.layer.config.filters
    }
    fn project<'a>(
        &self,
        x: ArrayView2<'a, f32>,
        _batch: usize,
        threads: usize,
    ) -> Result<ndarray::CowArray<'a, f32, ndarray::Ix2>> {
        if self.fused() {
            // The input convolution runs inside each step.
            return Ok(x.into());
        }
        let n = x.nrows();
        let px = self.input.out_pixels();
        let mut cols = Array2::zeros((n * px, self.input.patch_len()));
        // im2col split over threads by rows, then one GEMM for every pixel of every frame.
        let chunks = plan_chunks(
            n * px,
            threads,
            2.0 * (n * px * self.input.patch_len()) as f64 * 1e3,
            16,
        );
        let parts = split_rows(cols.view_mut(), &chunks);
        let tasks: Vec<_> = chunks.iter().zip(parts).collect();
        for_each_task(tasks, |(c, part)| self.input.im2col_rows(x, c.u0, part))?;
        let z = crate::cpu::affine(
            cols.view(),
            &self.layer.packed_kernel,
            self.layer.bias.as_ref(),
            threads,
        )?;
        z.into_shape_with_order((n, self.input.out_pixels() * 4 * self.layer.config.filters))
            .map(Into::into)
            .map_err(|e| Error::invalid("input", e.to_string()))
    }
    fn scratch(&self, batch: usize, threads: usize) -> Scratch {
        if let (Some(w), Some(t)) = (&self.layer.winograd, &self.tiling) {
            return self.scratch_winograd(w, t, batch, threads);
        }
        let rows = batch * self.recurrent.out_pixels();
        let f = self.layer.config.filters;
        let flops = 2.0 * rows as f64 * self.recurrent.patch_len() as f64 * (4 * f) as f64;
        // lstm_along_cols needs whole image rows in one chunk.
        let threads = if self.along_cols.is_some() {
            1
        } else {
            threads
        };
        let chunks = plan_chunks(rows, threads, flops, 16);
        let per_chunk = chunks
            .iter()
            .map(|c| {
                vec![
                    Array2::zeros((c.len, self.recurrent.patch_len())),
                    Array2::zeros((c.len, 4 * f)),
                ]
            })
            .collect();
        Scratch {
            chunks,
            per_chunk,
            shared: Vec::new(),
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
        let f = self.layer.config.filters;
        let rows = xp.nrows() * self.recurrent.out_pixels();
        let err = |e: ndarray::ShapeError| Error::invalid("state", e.to_string());
        let c_prev = states[1]
            .view()
            .into_shape_with_order((rows, f))
            .map_err(err)?;
        let h_prev = states[0].view();
        let (h_new, c_new) = new_states.split_at_mut(1);
        let h_out = h_new[0]
            .view_mut()
            .into_shape_with_order((rows, f))
            .map_err(err)?;
        let c_out = c_new[0]
            .view_mut()
            .into_shape_with_order((rows, f))
            .map_err(err)?;
        if let (Some(w), Some(t)) = (&self.layer.winograd, &self.tiling) {
            let h_prev = h_prev
                .as_slice()
                .ok_or_else(|| Error::invalid("state", "internal: h not contiguous"))?;
            self.step_winograd(w, t, xp, c_prev, h_prev, h_out, c_out, scratch)?;
            out.assign(&h_new[0]);
            return Ok(());
        }
        let xp = xp.into_shape_with_order((rows, 4 * f)).map_err(err)?;
        let rows = scratch.chunks.clone();
        let tasks = row_tasks(scratch, &rows, h_out, c_out);
        let (act, rec) = (
            self.layer.config.activation,
            self.layer.config.recurrent_activation,
        );
        for_each_task(tasks, |((c, bufs), (h_out, c_out))| {
            let (cols, hu) = bufs.split_at_mut(1);
            self.recurrent
                .im2col_rows(h_prev, c.u0, cols[0].view_mut())?;
            self.layer
                .packed
                .matmul_cols(cols[0].view(), 0, hu[0].view_mut())?;
            let rows = c.u0..c.u0 + c.len;
            if let Some(cols) = self.along_cols {
                return lstm_along_cols(
                    xp.slice(s![rows.clone(), ..]),
                    &mut hu[0],
                    c_prev.slice(s![rows, ..]),
                    h_out,
                    c_out,
                    act,
                    rec,
                    cols,
                );
            }
            let whole = Chunk {
                u0: 0,
                len: f,
                units: f,
            };
            gates::lstm(
                Some(xp.slice(s![rows.clone(), ..])),
                &mut hu[0],
                c_prev.slice(s![rows, ..]),
                h_out,
                c_out,
                act,
                rec,
                whole,
            )
        })?;
        out.assign(&h_new[0]);
        Ok(())
    }
}

/// The LSTM gates of whole images in the pixel-major layout (rows = pixels `(b, r, c)` in that
/// order, `cols` pixels per image row), with every activation applied along the columns of
/// an image row for each filter: what Keras computes for channels_first, where the activations
/// see `(batch, filters, rows, cols)` tensors and a row-wise one (`softmax`) normalises over
/// `cols`. `hu` `(pixels, 4 * filters)` is the recurrent product, `xp` the projected input;
/// equations as [`gates::lstm`]. Used only for that case (gathers each column run; not fast).
#[allow(clippy::too_many_arguments)]
fn lstm_along_cols(
    xp: ArrayView2<f32>,
    hu: &mut Array2<f32>,
    c_prev: ArrayView2<f32>,
    mut h_out: ArrayViewMut2<f32>,
    mut c_out: ArrayViewMut2<f32>,
    act: crate::activation::Activation,
    rec: crate::activation::Activation,
    cols: usize,
) -> Result<()> {
    let f = c_prev.ncols();
    let pixels = c_prev.nrows();
    if cols == 0
        || !pixels.is_multiple_of(cols)
        || hu.dim() != (pixels, 4 * f)
        || xp.dim() != hu.dim()
    {
        return Err(Error::invalid(
            "state",
            "internal: gate buffers are not whole image rows",
        ));
    }
    *hu += &xp;
    let mut run = vec![0.0f32; cols];
    // Applies `a` to every run of `cols` consecutive pixels of column `col` of `v`.
    let mut along = |v: &mut ArrayViewMut2<f32>, col: usize, a: crate::activation::Activation| {
        for p0 in (0..pixels).step_by(cols) {
            for (k, r) in run.iter_mut().enumerate() {
                *r = v[[p0 + k, col]];
            }
            a.apply_slice(&mut run);
            for (k, r) in run.iter().enumerate() {
                v[[p0 + k, col]] = *r;
            }
        }
    };
    let mut z = hu.view_mut();
    for (g, a) in [rec, rec, act, rec].into_iter().enumerate() {
        for k in 0..f {
            along(&mut z, g * f + k, a);
        }
    }
    for p in 0..pixels {
        for k in 0..f {
            let v = z[[p, f + k]] * c_prev[[p, k]] + z[[p, k]] * z[[p, 2 * f + k]];
            c_out[[p, k]] = v;
            h_out[[p, k]] = v;
        }
    }
    for k in 0..f {
        along(&mut h_out, k, act);
    }
    for p in 0..pixels {
        for k in 0..f {
            h_out[[p, k]] *= z[[p, 3 * f + k]];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SequenceOptions;
    use ndarray::{Array, Array2, Axis};

    fn layer(sequence: SequenceOptions) -> Result<ConvLSTM2D> {
        let cfg = ConvLSTM2DConfig {
            sequence,
            ..ConvLSTM2DConfig::new(2, (3, 3))
        };
        let k = Array::from_shape_fn((3, 3, 1, 8), |(a, b, _, d)| (a + b + d) as f32 * 0.05 - 0.3);
        let r = Array::from_shape_fn((3, 3, 2, 8), |(a, b, c, d)| (a * b + c + d) as f32 * 0.03);
        ConvLSTM2D::new(cfg, k, r, Some(Array1::from_elem(8, 0.1)))
    }

    /// An image with no rows under `same` padding: an error, not an arithmetic underflow.
    #[test]
    fn an_empty_image_is_an_error() -> Result<()> {
        let cfg = ConvLSTM2DConfig {
            padding: crate::config::Padding::Same,
            ..ConvLSTM2DConfig::new(2, (3, 3))
        };
        let k = Array::zeros((3, 3, 1, 8));
        let r = Array::zeros((3, 3, 2, 8));
        let mut l = ConvLSTM2D::new(cfg, k, r, Some(Array1::zeros(8)))?;
        let x = Array::<f32, _>::zeros((1, 2, 0, 5, 1)).into_dyn();
        let e = l
            .forward(x.view(), &CallArgs::default())
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("0x5 has no pixels"));
        Ok(())
    }

    /// tf-keras accepts `ConvLSTM2D(time_major=True)` and reads the input as
    /// `(batch, time, ...)` all the same.
    #[test]
    fn time_major_is_ignored_as_in_keras() -> Result<()> {
        let x = Array::from_shape_fn((2, 3, 5, 5, 1), |(b, t, r, c, _)| {
            ((b * 5 + t * 7 + r * 3 + c) % 5) as f32 * 0.2 - 0.4
        })
        .into_dyn();
        let seq = SequenceOptions {
            return_sequences: true,
            ..Default::default()
        };
        let plain = layer(seq)?.forward(x.view(), &CallArgs::default())?;
        let flagged = layer(SequenceOptions {
            time_major: true,
            ..seq
        })?
        .forward(x.view(), &CallArgs::default())?;
        assert_eq!(plain.output, flagged.output);
        assert_eq!(plain.output.shape(), &[2, 3, 3, 3, 2]);
        Ok(())
    }

    /// Keras's ConvRNN2D ignores zero_output_for_mask: masked steps repeat the previous output.
    #[test]
    fn zero_output_for_mask_is_ignored_as_in_keras() -> Result<()> {
        let seq = SequenceOptions {
            return_sequences: true,
            ..Default::default()
        };
        let x = Array::from_shape_fn((1, 4, 5, 5, 1), |(_, t, r, c, _)| {
            ((t * 7 + r * 3 + c) % 5) as f32 * 0.2 - 0.4
        })
        .into_dyn();
        let mask = Array2::from_shape_vec((1, 4), vec![true, false, true, false])
            .map_err(|e| Error::invalid("mask", e.to_string()))?;
        let args = CallArgs {
            mask: Some(mask.view()),
            ..Default::default()
        };
        let plain = layer(seq)?.forward(x.view(), &args)?;
        let flagged = layer(SequenceOptions {
            zero_output_for_mask: true,
            ..seq
        })?
        .forward(x.view(), &args)?;
        assert_eq!(plain.output, flagged.output);
        let step = |t: usize| plain.output.index_axis(Axis(1), t).to_owned();
        assert_eq!(
            step(1),
            step(0),
            "a masked step repeats the previous output"
        );
        assert!(step(0).iter().any(|v| *v != 0.0));
        Ok(())
    }
}
