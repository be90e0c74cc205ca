//! The dense layers on the device: SimpleRNN, GRU (both reset variants), LSTM, and stacks of
//! them. Per cell: one projection GEMM for all steps, then per step one fused kernel (two for
//! GRU reset_after=false). See `kernels/rnn.cu` for the kernels' layouts.

use crate::activation::Activation;
use crate::cuda::device::{grid1, to_i32, to_i64, Buf, CudaDevice, Module, PushBuf};
use crate::cuda::kernels::{self, act_id, step, tile, MAX_GRID_Y};
use crate::keras::StorageType;
use crate::layers::AnyCell;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use ndarray::{Array1, Array2};

/// Which fused step a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellKind {
    Lstm,
    /// GRU, reset_after = true.
    GruAfter,
    /// GRU, reset_after = false.
    GruBefore,
    Simple,
}

impl CellKind {
    /// Gate blocks of the kernel / projection.
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::GruAfter | CellKind::GruBefore => 3,
            CellKind::Simple => 1,
        }
    }
}

/// One built-in cell with its weights on the device, in the layer's storage type.
pub(crate) struct DeviceCell {
    pub(crate) kind: CellKind,
    pub(crate) units: usize,
    pub(crate) input_dim: usize,
    act: Activation,
    rec: Activation,
    /// `(input_dim, gates * units)`.
    kernel: Buf,
    /// `(units, gates * units)`.
    recurrent: Buf,
    /// `(gates * units,)`, folded into the projection.
    bias: Option<Buf>,
    /// GRU reset_after: `(3 * units,)`.
    recurrent_bias: Option<Buf>,
}

fn up2(dev: &CudaDevice, a: &Array2<f32>, dt: StorageType) -> Result<Buf> {
    Ok(dev.upload_as(a.view().into_dyn(), dt)?.data)
}

fn up1(dev: &CudaDevice, a: &Option<Array1<f32>>, dt: StorageType) -> Result<Option<Buf>> {
    match a {
        None => Ok(None),
        Some(a) => Ok(Some(dev.upload_as(a.view().into_dyn(), dt)?.data)),
    }
}

impl DeviceCell {
    /// Uploads built-in cell `index` of a layer with its weights rounded to `dt`; user-defined
    /// cells are refused (CPU only).
    pub(crate) fn from_any(
        dev: &CudaDevice,
        cell: &AnyCell,
        index: usize,
        dt: StorageType,
    ) -> Result<Self> {
        match cell {
            AnyCell::LSTM(c) => Ok(DeviceCell {
                kind: CellKind::Lstm,
                units: c.config.units,
                input_dim: c.kernel.nrows(),
                act: c.config.activation,
                rec: c.config.recurrent_activation,
                kernel: up2(dev, &c.kernel, dt)?,
                recurrent: up2(dev, &c.recurrent_kernel, dt)?,
                bias: up1(dev, &c.bias, dt)?,
                recurrent_bias: None,
            }),
            AnyCell::GRU(c) => Ok(DeviceCell {
                kind: if c.config.reset_after {
                    CellKind::GruAfter
                } else {
                    CellKind::GruBefore
                },
                units: c.config.units,
                input_dim: c.kernel.nrows(),
                act: c.config.activation,
                rec: c.config.recurrent_activation,
                kernel: up2(dev, &c.kernel, dt)?,
                recurrent: up2(dev, &c.recurrent_kernel, dt)?,
                bias: up1(dev, &c.input_bias, dt)?,
                recurrent_bias: up1(dev, &c.recurrent_bias, dt)?,
            }),
            AnyCell::SimpleRNN(c) => Ok(DeviceCell {
                kind: CellKind::Simple,
                units: c.config.units,
                input_dim: c.kernel.nrows(),
                act: c.config.activation,
                rec: c.config.activation,
                kernel: up2(dev, &c.kernel, dt)?,
                recurrent: up2(dev, &c.recurrent_kernel, dt)?,
                bias: up1(dev, &c.bias, dt)?,
                recurrent_bias: None,
            }),
            AnyCell::User(_) => Err(Error::invalid(
                format!("cells[{index}]"),
                "user-defined cells run on the CPU only; the CUDA path runs SimpleRNNCell, GRUCell and LSTMCell",
            )),
        }
    }

    /// The cell with its weights converted to `dt` on the device.
    pub(crate) fn converted(&self, dev: &CudaDevice, dt: StorageType) -> Result<Self> {
        let opt = |b: &Option<Buf>| -> Result<Option<Buf>> {
            b.as_ref().map(|b| dev.convert_buf(b, dt)).transpose()
        };
        Ok(DeviceCell {
            kind: self.kind,
            units: self.units,
            input_dim: self.input_dim,
            act: self.act,
            rec: self.rec,
            kernel: dev.convert_buf(&self.kernel, dt)?,
            recurrent: dev.convert_buf(&self.recurrent, dt)?,
            bias: opt(&self.bias)?,
            recurrent_bias: opt(&self.recurrent_bias)?,
        })
    }
}

/// A one-element placeholder of storage type `dt` for an absent optional weight argument.
pub(crate) fn dummy_buf(dev: &CudaDevice, dt: StorageType) -> Result<Buf> {
    Ok(match dt {
        StorageType::F32 => Buf::F32(dev.alloc_zeros(1)?),
        StorageType::F16 => Buf::F16(dev.alloc_zeros(1)?),
        StorageType::BF16 => Buf::BF16(dev.alloc_zeros(1)?),
    })
}

/// The shape of one sequence call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeqSpec {
    pub batch: usize,
    pub time: usize,
    /// Input and sequence output are `(time, batch, ...)`.
    pub time_major: bool,
    pub go_backwards: bool,
    pub return_sequences: bool,
}

/// What a stack produced.
pub(crate) struct DenseResult {
    /// `(batch, time, units)` / `(time, batch, units)` with return_sequences, else
    /// `(batch, units)` (the last real step's output per row).
    pub output: CudaSlice<f32>,
    /// Final states of every cell, flattened in Keras's order, each `(batch, units)`.
    pub states: Vec<CudaSlice<f32>>,
}

/// `c[M, N] = a[M, K] w[K, N] + bias` with `gemm_bias_{dt}` (`a`, `c` f32; `w`, `bias` in the
/// weights' storage type).
#[allow(clippy::too_many_arguments)]
pub(crate) fn project(
    dev: &CudaDevice,
    a: &CudaSlice<f32>,
    m: usize,
    k: usize,
    w: &Buf,
    n: usize,
    bias: Option<&Buf>,
    c: &mut CudaSlice<f32>,
) -> Result<()> {
    if a.len() < m * k || w.len() < k * n || c.len() < m * n {
        return Err(Error::invalid(
            "projection",
            "internal: buffer shorter than its GEMM shape",
        ));
    }
    let dt = w.dtype();
    if bias.is_some_and(|b| b.dtype() != dt) {
        return Err(Error::invalid(
            "projection",
            "internal: bias and kernel in different storage types",
        ));
    }
    let dummy = dummy_buf(dev, dt)?;
    let name = kernels::gemm_bias(dt);
    let f = dev.function(Module::Rnn, &name)?;
    let (mi, ni, ki) = (
        to_i64(m, "rows")?,
        to_i32(n, "columns")?,
        to_i32(k, "input width")?,
    );
    let (lda, ldb, ldc) = (ki as i64, ni, ni as i64);
    let has_bias = i32::from(bias.is_some());
    let bias = bias.unwrap_or(&dummy);
    let cfg = LaunchConfig {
        grid_dim: (
            n.div_ceil(tile::BN) as u32,
            m.div_ceil(tile::BM).min(MAX_GRID_Y) as u32,
            1,
        ),
        block_dim: (tile::THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // gemm_bias_{dt}(long long M, int N, int K, const float* A, long long lda, const W* Bm,
    //                int ldb, const W* bias, int has_bias, float* C, long long ldc)
    let mut l = dev.launcher(&f);
    l.arg(&mi)
        .arg(&ni)
        .arg(&ki)
        .arg(a)
        .arg(&lda)
        .buf(w)
        .arg(&ldb)
        .buf(bias)
        .arg(&has_bias)
        .arg(c)
        .arg(&ldc);
    dev.launch(l, &name, cfg)
}

/// Launch configuration of a dense step kernel.
fn step_cfg(units: usize, batch: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            units.div_ceil(step::LANES as usize) as u32,
            batch.div_ceil(step::ROWS).min(MAX_GRID_Y) as u32,
            1,
        ),
        block_dim: (step::LANES, step::WARPS, 1),
        shared_mem_bytes: 0,
    }
}

/// Runs `cells` as a stack over `x` (the user's layout, `(batch, time, f)` or time-major), from
/// `init` (flattened states, each `(batch, units)`, consumed: updated in place), with `mask`
/// `(batch, time)` as u8.
pub(crate) fn run(
    dev: &CudaDevice,
    cells: &[DeviceCell],
    x: &CudaSlice<f32>,
    spec: SeqSpec,
    mask: Option<&CudaSlice<u8>>,
    init: Vec<CudaSlice<f32>>,
) -> Result<DenseResult> {
    let (b, t) = (spec.batch, spec.time);
    if cells.is_empty() {
        return Err(Error::invalid("cells", "a stack needs at least one cell"));
    }
    if let Some(m) = mask {
        if m.len() < b * t {
            return Err(Error::invalid("mask", "internal: mask buffer too short"));
        }
    }
    let mut dummy_out = dev.alloc_zeros::<f32>(1)?;
    let dummy_mask = dev.alloc_zeros::<u8>(1)?;
    let (mask_buf, has_mask) = match mask {
        Some(m) => (m, 1i32),
        None => (&dummy_mask, 0i32),
    };
    let mut init = init.into_iter();
    let mut states_out = Vec::new();
    let mut current: Option<CudaSlice<f32>> = None;
    let mut last_output = None;
    let n = cells.len();
    for (k, cell) in cells.iter().enumerate() {
        let u = cell.units;
        let g = cell.kind.gates();
        let gu = g * u;
        let first = k == 0;
        let last = k + 1 == n;
        let in_w = cell.input_dim;
        let input = match current.as_ref() {
            Some(c) => c,
            None => x,
        };
        if input.len() < b * t * in_w {
            return Err(Error::invalid(
                format!("cells[{k}] input"),
                "internal: input buffer too short",
            ));
        }
        // Projection of every step: rows in the input's own order.
        let mut xp = dev.alloc_out(b * t * gu)?;
        project(
            dev,
            input,
            b * t,
            in_w,
            &cell.kernel,
            gu,
            cell.bias.as_ref(),
            &mut xp,
        )?;

        // States: h ping-pongs (h[0] = initial), c and prev_out in place.
        let h0 = init
            .next()
            .ok_or_else(|| Error::invalid("initial_state", "internal: too few states"))?;
        let mut c_state = if cell.kind == CellKind::Lstm {
            Some(
                init.next()
                    .ok_or_else(|| Error::invalid("initial_state", "internal: too few states"))?,
            )
        } else {
            None
        };
        for (what, s) in [("h", Some(&h0)), ("c", c_state.as_ref())] {
            if let Some(s) = s {
                if s.len() < b * u {
                    return Err(Error::invalid(
                        format!("initial_state {what}"),
                        "internal: state buffer too short",
                    ));
                }
            }
        }
        let mut hs = [h0, dev.alloc_out(b * u)?];
        let mut prev_out = dev.alloc_zeros::<f32>(b * u)?;
        let keep = !last || spec.return_sequences;
        let mut seq = if keep {
            Some(dev.alloc_out(b * t * u)?)
        } else {
            None
        };
        // GRU reset_after=false scratch: z (f32) and r*h.
        let (mut zbuf, mut rh) = if cell.kind == CellKind::GruBefore {
            (Some(dev.alloc_out(b * u)?), Some(dev.alloc_out(b * u)?))
        } else {
            (None, None)
        };

        // Layouts: the first cell reads the user's input (maybe reversed); later cells read the
        // previous cell's sequence, time-major in processing order. The last cell writes the
        // user's layout; the others time-major.
        let in_tm = if first { spec.time_major } else { true };
        let in_rev = first && spec.go_backwards;
        let out_tm = if last { spec.time_major } else { true };
        let xp_bs = if in_tm { gu } else { t * gu };
        let seq_bs = if out_tm { u } else { t * u };
        let (bi, ui) = (to_i32(b, "batch")?, to_i32(u, "units")?);
        let (act, rec) = (act_id(cell.act), act_id(cell.rec));
        let cfg = step_cfg(u, b);
        let dt = cell.recurrent.dtype();
        let dummy_rb = dummy_buf(dev, dt)?;
        let names: Vec<String> = match cell.kind {
            CellKind::Lstm => vec![kernels::lstm_step(dt, cell.act, cell.rec)],
            CellKind::GruAfter => vec![kernels::gru_after_step(dt, cell.act, cell.rec)],
            CellKind::GruBefore => vec![
                kernels::gru_before_gates(dt, cell.rec),
                kernels::gru_before_update(dt, cell.act),
            ],
            CellKind::Simple => vec![kernels::simple_step(dt, cell.act)],
        };
        let funcs = names
            .iter()
            .map(|nm| dev.function(Module::Rnn, nm))
            .collect::<Result<Vec<_>>>()?;
        let xp_bs_i = to_i64(xp_bs, "xp stride")?;
        let mask_bs_i = to_i64(t, "time")?;
        let seq_bs_i = to_i64(seq_bs, "output stride")?;
        let has_seq = i32::from(seq.is_some());
        let has_rb = i32::from(cell.recurrent_bias.is_some());
        for s in 0..t {
            let t_src = if in_rev { t - 1 - s } else { s };
            let t_mask = if spec.go_backwards { t - 1 - s } else { s };
            let xp_off = to_i64(if in_tm { t_src * b * gu } else { t_src * gu }, "xp offset")?;
            let mask_off = to_i64(t_mask, "mask offset")?;
            let seq_off = to_i64(if out_tm { s * b * u } else { s * u }, "output offset")?;
            let (lo, hi) = hs.split_at_mut(1);
            let (h_prev, h_next) = if s % 2 == 0 {
                (&lo[0], &mut hi[0])
            } else {
                (&hi[0], &mut lo[0])
            };
            let seq_buf = match seq.as_mut() {
                Some(q) => q,
                None => &mut dummy_out,
            };
            match cell.kind {
                CellKind::Lstm => {
                    let c = c_state.as_mut().ok_or_else(|| {
                        Error::invalid("state", "internal: LSTM without a c state")
                    })?;
                    // lstm_step(B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, h_next, c,
                    //   prev_out, mask, has_mask, mask_off, mask_b_stride, seq, has_seq,
                    //   seq_off, seq_b_stride, act, rec)
                    let mut l = dev.launcher(&funcs[0]);
                    l.arg(&bi)
                        .arg(&ui)
                        .arg(&xp)
                        .arg(&xp_off)
                        .arg(&xp_bs_i)
                        .buf(&cell.recurrent)
                        .arg(h_prev)
                        .arg(h_next)
                        .arg(c)
                        .arg(&mut prev_out)
                        .arg(mask_buf)
                        .arg(&has_mask)
                        .arg(&mask_off)
                        .arg(&mask_bs_i)
                        .arg(seq_buf)
                        .arg(&has_seq)
                        .arg(&seq_off)
                        .arg(&seq_bs_i)
                        .arg(&act)
                        .arg(&rec);
                    dev.launch(l, &names[0], cfg)?;
                }
                CellKind::GruAfter => {
                    let rb = cell.recurrent_bias.as_ref().unwrap_or(&dummy_rb);
                    // gru_after_step(B, U, xp, xp_step_off, xp_b_stride, Um, rb, has_rb, h_prev,
                    //   h_next, prev_out, mask, has_mask, mask_off, mask_b_stride, seq,
                    //   has_seq, seq_off, seq_b_stride, act, rec)
                    let mut l = dev.launcher(&funcs[0]);
                    l.arg(&bi)
                        .arg(&ui)
                        .arg(&xp)
                        .arg(&xp_off)
                        .arg(&xp_bs_i)
                        .buf(&cell.recurrent)
                        .buf(rb)
                        .arg(&has_rb)
                        .arg(h_prev)
                        .arg(h_next)
                        .arg(&mut prev_out)
                        .arg(mask_buf)
                        .arg(&has_mask)
                        .arg(&mask_off)
                        .arg(&mask_bs_i)
                        .arg(seq_buf)
                        .arg(&has_seq)
                        .arg(&seq_off)
                        .arg(&seq_bs_i)
                        .arg(&act)
                        .arg(&rec);
                    dev.launch(l, &names[0], cfg)?;
                }
                CellKind::GruBefore => {
                    let (z, r) = match (zbuf.as_mut(), rh.as_mut()) {
                        (Some(z), Some(r)) => (z, r),
                        _ => return Err(Error::invalid("state", "internal: GRU scratch missing")),
                    };
                    // gru_before_gates(B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, zbuf,
                    //   rh, rec)
                    let mut l = dev.launcher(&funcs[0]);
                    l.arg(&bi)
                        .arg(&ui)
                        .arg(&xp)
                        .arg(&xp_off)
                        .arg(&xp_bs_i)
                        .buf(&cell.recurrent)
                        .arg(h_prev)
                        .arg(&mut *z)
                        .arg(&mut *r)
                        .arg(&rec);
                    dev.launch(l, &names[0], cfg)?;
                    // gru_before_update(B, U, xp, xp_step_off, xp_b_stride, Um, rh, zbuf,
                    //   h_prev, h_next, prev_out, mask, has_mask, mask_off, mask_b_stride, seq,
                    //   has_seq, seq_off, seq_b_stride, act)
                    let mut l = dev.launcher(&funcs[1]);
                    l.arg(&bi)
                        .arg(&ui)
                        .arg(&xp)
                        .arg(&xp_off)
                        .arg(&xp_bs_i)
                        .buf(&cell.recurrent)
                        .arg(&*r)
                        .arg(&*z)
                        .arg(h_prev)
                        .arg(h_next)
                        .arg(&mut prev_out)
                        .arg(mask_buf)
                        .arg(&has_mask)
                        .arg(&mask_off)
                        .arg(&mask_bs_i)
                        .arg(seq_buf)
                        .arg(&has_seq)
                        .arg(&seq_off)
                        .arg(&seq_bs_i)
                        .arg(&act);
                    dev.launch(l, &names[1], cfg)?;
                }
                CellKind::Simple => {
                    // simple_step(B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, h_next,
                    //   prev_out, mask, has_mask, mask_off, mask_b_stride, seq, has_seq,
                    //   seq_off, seq_b_stride, act)
                    let mut l = dev.launcher(&funcs[0]);
                    l.arg(&bi)
                        .arg(&ui)
                        .arg(&xp)
                        .arg(&xp_off)
                        .arg(&xp_bs_i)
                        .buf(&cell.recurrent)
                        .arg(h_prev)
                        .arg(h_next)
                        .arg(&mut prev_out)
                        .arg(mask_buf)
                        .arg(&has_mask)
                        .arg(&mask_off)
                        .arg(&mask_bs_i)
                        .arg(seq_buf)
                        .arg(&has_seq)
                        .arg(&seq_off)
                        .arg(&seq_bs_i)
                        .arg(&act);
                    dev.launch(l, &names[0], cfg)?;
                }
            }
        }
        let [ha, hb] = hs;
        let h_final = if t % 2 == 0 { ha } else { hb };
        states_out.push(h_final);
        if let Some(c) = c_state {
            states_out.push(c);
        }
        current = seq;
        last_output = Some(prev_out);
    }
    let output = if spec.return_sequences {
        current.ok_or_else(|| Error::invalid("return_sequences", "internal: no sequence kept"))?
    } else {
        last_output.ok_or_else(|| Error::invalid("cells", "internal: no cell ran"))?
    };
    Ok(DenseResult {
        output,
        states: states_out,
    })
}

/// Uploads a mask `(batch, time)` as u8 (1 = real step).
pub(crate) fn upload_mask(
    dev: &CudaDevice,
    mask: ndarray::ArrayView2<bool>,
) -> Result<CudaSlice<u8>> {
    let v: Vec<u8> = mask
        .as_standard_layout()
        .iter()
        .map(|&m| u8::from(m))
        .collect();
    dev.upload_slice(&v)
}

/// `dst = permute(src)` between `(B, P, F)` and `(B, F, P)` (`to_cf`: to channels-first).
pub(crate) fn permute_pf(
    dev: &CudaDevice,
    b: usize,
    p: usize,
    f: usize,
    src: &CudaSlice<f32>,
    to_cf: bool,
) -> Result<CudaSlice<f32>> {
    let n = b * p * f;
    if src.len() < n {
        return Err(Error::invalid("permute", "internal: buffer too short"));
    }
    let mut dst = dev.alloc_out(n)?;
    let func = dev.function(Module::Rnn, "permute_pf_f32")?;
    let (bi, pi, fi) = (
        to_i32(b, "batch")?,
        to_i32(p, "pixels")?,
        to_i32(f, "filters")?,
    );
    let to_cf = i32::from(to_cf);
    let blocks = n.div_ceil(256).clamp(1, 65535) as u32;
    // permute_pf_f32(int B, int P, int F, const float* src, float* dst, int to_cf)
    let mut l = dev.launcher(&func);
    l.arg(&bi)
        .arg(&pi)
        .arg(&fi)
        .arg(src)
        .arg(&mut dst)
        .arg(&to_cf);
    dev.launch(l, "permute_pf_f32", grid1(blocks, 256))?;
    Ok(dst)
}
