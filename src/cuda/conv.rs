//! ConvLSTM2D on the device: one implicit-GEMM launch for the input convolution of every frame,
//! then one fused launch per step (recurrent implicit-GEMM convolution + gates + mask + state
//! update). See `kernels/conv_lstm.cu` for the layouts.

use crate::config::{ConvLSTM2DConfig, Padding};
use crate::cpu::conv::ConvGeometry;
use crate::cuda::device::{to_i32, to_i64, Buf, CudaDevice, Module, PushBuf};
use crate::cuda::kernels::{self, act_id, tile, MAX_GRID_Y};
use crate::keras::StorageType;
use crate::layers::ConvLSTM2D;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// A ConvLSTM2D layer's weights on the device, in the layer's storage type.
pub(crate) struct DeviceConv {
    pub(crate) config: ConvLSTM2DConfig,
    /// Input channels.
    pub(crate) cin: usize,
    /// `(kh * kw * cin, 4F)`.
    kernel: Buf,
    /// `(kh * kw * F, 4F)`.
    recurrent: Buf,
    /// `(4F,)`.
    bias: Option<Buf>,
}

impl DeviceConv {
    /// Uploads the layer's weights rounded to `dt`.
    pub(crate) fn new(dev: &CudaDevice, layer: &ConvLSTM2D, dt: StorageType) -> Result<Self> {
        let (k, r, b) = layer.weights_ref();
        Ok(DeviceConv {
            config: layer.config().clone(),
            cin: k.shape()[2],
            kernel: dev.upload_as(k.view().into_dyn(), dt)?.data,
            recurrent: dev.upload_as(r.view().into_dyn(), dt)?.data,
            bias: match b {
                Some(b) => Some(dev.upload_as(b.view().into_dyn(), dt)?.data),
                None => None,
            },
        })
    }

    /// The layer with its weights converted to `dt` on the device.
    pub(crate) fn converted(&self, dev: &CudaDevice, dt: StorageType) -> Result<Self> {
        Ok(DeviceConv {
            config: self.config.clone(),
            cin: self.cin,
            kernel: dev.convert_buf(&self.kernel, dt)?,
            recurrent: dev.convert_buf(&self.recurrent, dt)?,
            bias: match &self.bias {
                Some(b) => Some(dev.convert_buf(b, dt)?),
                None => None,
            },
        })
    }

    /// The input and recurrent convolution geometries for `rows x cols` images, with the CPU
    /// path's error for images smaller than the kernel.
    pub(crate) fn geometry(
        &self,
        rows: usize,
        cols: usize,
    ) -> Result<(ConvGeometry, ConvGeometry)> {
        let c = &self.config;
        let input = ConvGeometry::new(
            rows,
            cols,
            self.cin,
            c.kernel_size,
            c.strides,
            c.dilation_rate,
            c.padding,
        )
        .ok_or_else(|| {
            Error::invalid(
                "input",
                format!(
                    "an image of {rows}x{cols} is smaller than the kernel {:?} with dilation {:?} under valid padding",
                    c.kernel_size, c.dilation_rate
                ),
            )
        })?;
        let recurrent = ConvGeometry::new(
            input.out_rows,
            input.out_cols,
            c.filters,
            c.kernel_size,
            (1, 1),
            (1, 1),
            Padding::Same,
        )
        .ok_or_else(|| Error::invalid("input", "empty recurrent convolution"))?;
        Ok((input, recurrent))
    }
}

/// The shape of one ConvLSTM2D call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub batch: usize,
    pub time: usize,
    pub channels_first: bool,
    pub go_backwards: bool,
    pub return_sequences: bool,
    /// The input holds values of the weights' storage type: the input convolution may run on
    /// tensor cores (`conv_input_tc_*`) without rounding anything.
    pub input_in_storage: bool,
    /// The steps on tensor cores (`conv_lstm_step_tc_*`, h rounded to the storage type for the
    /// recurrent convolution; f16 / bf16, or f32 as TF32 with `allow_tf32`):
    /// [`crate::cuda::DensePath::TensorCore`].
    pub tensor_cores: bool,
    /// f32 layers: TF32 tensor cores allowed (the input convolution; the steps with
    /// `tensor_cores`).
    pub allow_tf32: bool,
}

/// What one call produced.
pub(crate) struct ConvResult {
    /// The output in the user's layout: `(B, T, rows, cols, F)` / `(B, T, F, rows, cols)` with
    /// return_sequences, else `(B, rows, cols, F)` / `(B, F, rows, cols)`.
    pub output: CudaSlice<f32>,
    /// Final `h`, `c`, channels-last `(B, P, F)` whatever the data format.
    pub h: CudaSlice<f32>,
    pub c: CudaSlice<f32>,
    /// The steps ran on the tensor-core kernels.
    pub tensor_cores: bool,
}

/// Runs the layer over `x` (the user's `(B, T, rows, cols, C)` or channels-first input) from
/// `h0`, `c0` (channels-last `(B, P, F)`, consumed) with `mask` `(B, T)` as u8.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    dev: &CudaDevice,
    conv: &DeviceConv,
    x: &CudaSlice<f32>,
    spec: ConvSpec,
    geo: &ConvGeometry,
    rgeo: &ConvGeometry,
    mask: Option<&CudaSlice<u8>>,
    h0: CudaSlice<f32>,
    c0: CudaSlice<f32>,
) -> Result<ConvResult> {
    let (b, t) = (spec.batch, spec.time);
    let f = conv.config.filters;
    let (kh, kw) = conv.config.kernel_size;
    let cin = conv.cin;
    let p = geo.out_pixels();
    let n4 = 4 * f;
    let frame_len = geo.in_rows * geo.in_cols * cin;
    if x.len() < b * t * frame_len || h0.len() < b * p * f || c0.len() < b * p * f {
        return Err(Error::invalid(
            "input",
            "internal: buffer shorter than its shape",
        ));
    }
    if let Some(m) = mask {
        if m.len() < b * t {
            return Err(Error::invalid("mask", "internal: mask buffer too short"));
        }
    }

    // ---- input convolution of every frame (frames b*T + t, the input's own order)
    let m_rows = b * t * p;
    let mut xp = dev.alloc_out(m_rows * n4)?;
    let dt = conv.recurrent.dtype();
    {
        let dummy = dev.placeholder(dt)?;
        let tensor_cores = if dt == StorageType::F32 {
            spec.allow_tf32
        } else {
            spec.input_in_storage
        };
        let input_name = if tensor_cores {
            kernels::conv_input_tc(dt)
        } else {
            kernels::conv_input(dt)
        };
        let func = dev.function(Module::Conv, &input_name)?;
        let (sy, sx, sc) = if spec.channels_first {
            (geo.in_cols, 1, geo.in_rows * geo.in_cols)
        } else {
            (geo.in_cols * cin, cin, 1)
        };
        let mi = to_i64(m_rows, "rows")?;
        let ni = to_i32(n4, "4 * filters")?;
        let ki = to_i32(kh * kw * cin, "kernel patch")?;
        let frame_stride = to_i64(frame_len, "frame")?;
        let (sy, sx, sc) = (
            to_i64(sy, "row stride")?,
            to_i64(sx, "col stride")?,
            to_i64(sc, "channel stride")?,
        );
        let in_rows = to_i32(geo.in_rows, "rows")?;
        let in_cols = to_i32(geo.in_cols, "cols")?;
        let cin_i = to_i32(cin, "channels")?;
        let out_cols = to_i32(geo.out_cols, "output cols")?;
        let pi = to_i32(p, "pixels")?;
        let kwi = to_i32(kw, "kernel cols")?;
        let (st_y, st_x) = (
            to_i32(geo.strides.0, "strides")?,
            to_i32(geo.strides.1, "strides")?,
        );
        let (dl_y, dl_x) = (
            to_i32(geo.dilation.0, "dilation_rate")?,
            to_i32(geo.dilation.1, "dilation_rate")?,
        );
        let (pt, pl) = (
            to_i32(geo.pad_top, "padding")?,
            to_i32(geo.pad_left, "padding")?,
        );
        let has_bias = i32::from(conv.bias.is_some());
        let bias = conv.bias.as_ref().unwrap_or(dummy);
        let cfg = LaunchConfig {
            grid_dim: (
                n4.div_ceil(tile::BN) as u32,
                m_rows.div_ceil(tile::BM).min(MAX_GRID_Y) as u32,
                1,
            ),
            block_dim: (
                if tensor_cores {
                    tile::TC_THREADS
                } else {
                    tile::THREADS
                },
                1,
                1,
            ),
            shared_mem_bytes: 0,
        };
        // conv_input_{dt} / conv_input_tc_{dt}(long long M, int N, int K, const float* x, long long frame_stride,
        //   long long sy, long long sx, long long sc, int in_rows, int in_cols, int cin,
        //   int out_cols, int P, int kw, int stride_y, int stride_x, int dil_y, int dil_x,
        //   int pad_top, int pad_left, const W* Wk, const W* bias, int has_bias, float* xp)
        let mut l = dev.launcher(&func);
        l.arg(&mi)
            .arg(&ni)
            .arg(&ki)
            .arg(x)
            .arg(&frame_stride)
            .arg(&sy)
            .arg(&sx)
            .arg(&sc)
            .arg(&in_rows)
            .arg(&in_cols)
            .arg(&cin_i)
            .arg(&out_cols)
            .arg(&pi)
            .arg(&kwi)
            .arg(&st_y)
            .arg(&st_x)
            .arg(&dl_y)
            .arg(&dl_x)
            .arg(&pt)
            .arg(&pl)
            .buf(&conv.kernel)
            .buf(bias)
            .arg(&has_bias)
            .arg(&mut xp);
        dev.launch(l, &input_name, cfg)?;
    }

    // ---- the time loop
    // Absent mask and sequence output: the device's shared placeholders (flags say absent).
    let dummy_out = dev.placeholder_f32()?;
    let (mask_buf, has_mask) = match mask {
        Some(m) => (m, 1i32),
        None => (dev.placeholder_u8()?, 0i32),
    };
    let mut hs = [h0, dev.alloc_out(b * p * f)?];
    let mut c = c0;
    let mut prev_out = dev.alloc_zeros::<f32>(b * p * f)?;
    let seq = if spec.return_sequences {
        Some(dev.alloc_out(b * t * p * f)?)
    } else {
        None
    };
    let row_wise =
        conv.config.activation.is_row_wise() || conv.config.recurrent_activation.is_row_wise();
    let step_tc = spec.tensor_cores && (dt != StorageType::F32 || spec.allow_tf32) && !row_wise;
    // Row-wise activations: per step the recurrent convolution added into xp in place
    // (conv_lstm_preact), then the gates one normalised line per block (conv_lstm_rows).
    let rows_kernels = if row_wise {
        let line = if spec.channels_first { rgeo.in_cols } else { f };
        if 4 * line > kernels::ROWS_MAX_FLOATS {
            let what = if spec.channels_first {
                "output columns (channels_first: softmax runs along them)"
            } else {
                "filters"
            };
            return Err(Error::invalid(
                "activation",
                format!(
                    "softmax / log_softmax on the GPU hold a line's 4 gates in shared memory: \
                     expected at most {} {what}, found {line} (run this layer with --device cpu)",
                    kernels::ROWS_MAX_FLOATS / 4
                ),
            ));
        }
        let lines = if spec.channels_first {
            b * f * rgeo.in_rows
        } else {
            b * p
        };
        let rows_name = kernels::conv_lstm_rows(dt, spec.channels_first);
        let preact_name = kernels::conv_lstm_preact(dt);
        Some((
            dev.function(Module::Conv, &preact_name)?,
            preact_name,
            dev.function(Module::Conv, &rows_name)?,
            rows_name,
            LaunchConfig {
                grid_dim: (lines.min(MAX_GRID_Y) as u32, 1, 1),
                block_dim: (kernels::ROWS_THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
        ))
    } else {
        None
    };
    let name =
        kernels::conv_lstm_step(dt, conv.config.activation, conv.config.recurrent_activation);
    let name = if step_tc {
        kernels::tensor_core(&name, dt)
    } else {
        name
    };
    let func = dev.function(Module::Conv, &name)?;
    let (act, rec) = (
        act_id(conv.config.activation),
        act_id(conv.config.recurrent_activation),
    );
    let bi = to_i32(b, "batch")?;
    let pi = to_i32(p, "pixels")?;
    let fi = to_i32(f, "filters")?;
    let rows = to_i32(rgeo.in_rows, "rows")?;
    let cols = to_i32(rgeo.in_cols, "cols")?;
    let (khi, kwi) = (to_i32(kh, "kernel rows")?, to_i32(kw, "kernel cols")?);
    let (pt, pl) = (
        to_i32(rgeo.pad_top, "padding")?,
        to_i32(rgeo.pad_left, "padding")?,
    );
    let xp_bs = to_i64(t * p * n4, "xp stride")?;
    let mask_bs = to_i64(t, "time")?;
    let (seq_bs, seq_ps, seq_fs) = if spec.channels_first {
        (t * f * p, 1, p)
    } else {
        (t * p * f, f, 1)
    };
    let (seq_bs, seq_ps, seq_fs) = (
        to_i64(seq_bs, "output stride")?,
        to_i64(seq_ps, "output stride")?,
        to_i64(seq_fs, "output stride")?,
    );
    let has_seq = i32::from(seq.is_some());
    let cfg = if step_tc {
        // tc_step_tile: 16 filters (x 4 gates) by 64 rows per block.
        LaunchConfig {
            grid_dim: (
                f.div_ceil(tile::TC_UNITS) as u32,
                (b * p).div_ceil(tile::TC_ROWS).min(MAX_GRID_Y) as u32,
                1,
            ),
            block_dim: (tile::TC_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    } else {
        LaunchConfig {
            grid_dim: (
                (b * p).div_ceil(tile::BM).min(MAX_GRID_Y) as u32,
                f.div_ceil(tile::BF) as u32,
                1,
            ),
            block_dim: (tile::THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    };
    for s in 0..t {
        let t_src = if spec.go_backwards { t - 1 - s } else { s };
        let xp_off = to_i64(t_src * p * n4, "xp offset")?;
        let mask_off = to_i64(t_src, "mask offset")?;
        let seq_off = to_i64(s * p * f, "output offset")?;
        let (h_prev, h_next) = crate::cuda::dense::ping_pong(&mut hs, s);
        let seq_buf = seq.as_ref().unwrap_or(dummy_out);
        let (func, name, cfg) = match &rows_kernels {
            Some((pre, pre_name, rows_fn, rows_name, rows_cfg)) => {
                // conv_lstm_preact(int B, int P, int F, int rows, int cols, int kh, int kw,
                //   int pad_top, int pad_left, float* xp, long long xp_step_off,
                //   long long xp_b_stride, const W* RK, const float* h_prev)
                let mut l = dev.launcher(pre);
                l.arg(&bi)
                    .arg(&pi)
                    .arg(&fi)
                    .arg(&rows)
                    .arg(&cols)
                    .arg(&khi)
                    .arg(&kwi)
                    .arg(&pt)
                    .arg(&pl)
                    .arg(&mut xp)
                    .arg(&xp_off)
                    .arg(&xp_bs)
                    .buf(&conv.recurrent)
                    .arg(h_prev);
                dev.launch(l, pre_name, cfg)?;
                (rows_fn, rows_name, *rows_cfg)
            }
            None => (&func, &name, cfg),
        };
        // conv_lstm_step / conv_lstm_rows(int B, int P, int F, int rows, int cols, int kh, int kw, int pad_top,
        //   int pad_left, const float* xp, long long xp_step_off, long long xp_b_stride,
        //   const W* RK, const float* h_prev, float* h_next, float* c, float* prev_out,
        //   const u8* mask, int has_mask, long long mask_off, long long mask_b_stride,
        //   float* seq, int has_seq, long long seq_off, long long seq_b_stride,
        //   long long seq_p_stride, long long seq_f_stride, int act, int rec)
        let mut l = dev.launcher(func);
        l.arg(&bi)
            .arg(&pi)
            .arg(&fi)
            .arg(&rows)
            .arg(&cols)
            .arg(&khi)
            .arg(&kwi)
            .arg(&pt)
            .arg(&pl)
            .arg(&xp)
            .arg(&xp_off)
            .arg(&xp_bs)
            .buf(&conv.recurrent)
            .arg(h_prev)
            .arg(h_next)
            .arg(&mut c)
            .arg(&mut prev_out)
            .arg(mask_buf)
            .arg(&has_mask)
            .arg(&mask_off)
            .arg(&mask_bs)
            .arg(seq_buf)
            .arg(&has_seq)
            .arg(&seq_off)
            .arg(&seq_bs)
            .arg(&seq_ps)
            .arg(&seq_fs)
            .arg(&act)
            .arg(&rec);
        dev.launch(l, name, cfg)?;
    }
    let [ha, hb] = hs;
    let h = if t % 2 == 0 { ha } else { hb };
    let output = match seq {
        Some(q) => q,
        None if spec.channels_first => {
            crate::cuda::dense::permute_pf(dev, b, p, f, &prev_out, true)?
        }
        None => prev_out,
    };
    Ok(ConvResult {
        output,
        h,
        c,
        tensor_cores: step_tc,
    })
}
