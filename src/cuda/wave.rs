//! Stacks of dense cells as a wavefront: cell `l` runs its step `s = it - l` in the launch of
//! diagonal `it`, so the cells of a stack run side by side, `T + L - 1` diagonals instead of
//! `L x T` steps one after another (`kernels/rnn.cu`, "wavefront across the cells of a stack").
//!
//! Per diagonal: `gemm_bias_wave_{dt}` projects `y_{l-1}(s)` for every cell `l > 0` (blockIdx.z
//! = l - 1), then the cells' step entry (`lstm_step_wave_{dt}_*`, ...; two for GRU
//! reset_after=false) runs every cell's step (blockIdx.z = l). Cell 0's projection of all steps
//! is one GEMM up front, as for a single cell. The kernels are the per-step kernels' own
//! products and epilogues, so in f32 the results are the step path's bit for bit where both
//! use the same step mapping (the wavefront picks one for all cells; each projection row is
//! the same dot product in the same order). Cells before the last keep only two steps of
//! their sequence (a ring: the next cell reads step s one diagonal after it is written), so
//! a stack needs less memory than one cell after another.
//!
//! Applies to stacks of 2 to [`MAX_CELLS`] cells of one kind with the same activations and
//! storage type, without TF32; [`wavefront_plan`] decides.

use crate::activation::Activation;
use crate::cuda::dense::{
    gemm_us, persistent_plan, persistent_us, project, step_product_us, step_us, tc_step_faster,
    CellKind, DenseResult, DeviceCell, SeqSpec, TILED_MIN_BATCH,
};
use crate::cuda::device::{to_i32, Buf, CudaDevice, DensePath, DeviceLimits, Module};
use crate::cuda::kernels::{self, step, tile, MAX_GRID_Y};
use crate::keras::StorageType;
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

/// `Auto` picks the wavefront where its estimate is below this share of the cells one after
/// another.
const WAVE_MARGIN: f64 = 0.9;

/// The most cells one wavefront launch carries (`wave::MAX_CELLS` in rnn.cu).
pub(crate) const MAX_CELLS: usize = 8;

/// One cell of a wavefront launch: rnn.cu's `WaveCell`, field by field (every field 8 bytes;
/// pointers as device addresses).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct WaveCell {
    u: i64,
    gu: i64,
    xp: u64,
    xp_step_stride: i64,
    xp_b_stride: i64,
    xp_reverse: i64,
    um: u64,
    rb: u64,
    has_rb: i64,
    h0: u64,
    h1: u64,
    c: u64,
    prev_out: u64,
    zbuf: u64,
    rh: u64,
    seq: u64,
    has_seq: i64,
    seq_step_stride: i64,
    seq_b_stride: i64,
    input: u64,
    in_step_stride: i64,
    k: i64,
    wx: u64,
    bias: u64,
    has_bias: i64,
}

/// rnn.cu's `WaveArgs`: the cells, then the stack's shared arguments.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct WaveArgs {
    cell: [WaveCell; MAX_CELLS],
    b: i64,
    t: i64,
    n_cells: i64,
    mask: u64,
    has_mask: i64,
    mask_reverse: i64,
    mask_b_stride: i64,
    act: i64,
    rec: i64,
    tiled: i64,
}

// The C side's static_asserts check the same sizes.
const _: () = assert!(std::mem::size_of::<WaveCell>() == 25 * 8);
const _: () = assert!(std::mem::size_of::<WaveArgs>() == MAX_CELLS * 25 * 8 + 10 * 8);

// SAFETY: `WaveArgs` is `#[repr(C)]` with only i64 / u64 fields (no padding, no references),
// laid out as rnn.cu's `WaveArgs` (same field order, checked by
// `wave_args_mirror_the_kernels_struct`, and the same size on both sides); it is passed to the
// kernels by value. The device addresses in it point into buffers that `run` keeps alive until
// every launch is queued, on the device's one stream.
unsafe impl DeviceRepr for WaveArgs {}

/// What the wavefront's plan needs to know of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CellShape {
    pub kind: CellKind,
    pub act: Activation,
    pub rec: Activation,
    pub dtype: StorageType,
    pub units: usize,
    pub input_dim: usize,
}

impl CellShape {
    pub(crate) fn of(c: &DeviceCell) -> Self {
        CellShape {
            kind: c.kind,
            act: c.act,
            rec: c.rec,
            dtype: c.recurrent.dtype(),
            units: c.units,
            input_dim: c.input_dim,
        }
    }
}

/// Whether a stack runs as a wavefront, and with which step mapping (`Some(tiled)`), or `None`
/// for the per-cell paths of `dense::run`. Never with [`DensePath::Step`] /
/// [`DensePath::TensorCore`] / [`DensePath::Persistent`], TF32, one cell, more than
/// [`MAX_CELLS`], or cells that differ in kind, activations, storage type, or whose widths do
/// not chain. Forced ([`DensePath::Wavefront`]) wherever it applies; with [`DensePath::Auto`]
/// where the cost model estimates it at least 10% faster than the cells one after another (each
/// on the persistent kernel or the step kernels, as `persistent_plan` would choose).
pub(crate) fn wavefront_plan(
    cells: &[CellShape],
    spec: &SeqSpec,
    limits: DeviceLimits,
    path: DensePath,
) -> Option<bool> {
    let n = cells.len();
    let first = cells.first()?;
    let same = cells.iter().all(|c| {
        c.kind == first.kind && c.act == first.act && c.rec == first.rec && c.dtype == first.dtype
    });
    let chained = cells.windows(2).all(|w| w[1].input_dim == w[0].units);
    if !matches!(path, DensePath::Auto | DensePath::Wavefront)
        || spec.allow_tf32
        || first.act.is_row_wise()
        || first.rec.is_row_wise()
        || !(2..=MAX_CELLS).contains(&n)
        || !same
        || !chained
        || spec.batch == 0
    {
        return None;
    }
    let (b, t, sms) = (spec.batch, spec.time, limits.sms);
    let kind = first.kind;
    let g = kind.gates();
    let wbytes = crate::cuda::dense::dt_bytes(first.dtype);
    let widest = cells.iter().map(|c| c.units).max().unwrap_or(0);
    // One diagonal: every cell's step side by side, with the better mapping.
    let product = |tiled| step_product_us(b, widest, g, wbytes, sms, tiled, n);
    let tiled = b >= TILED_MIN_BATCH && product(true) < product(false);
    if path == DensePath::Wavefront {
        return Some(tiled);
    }
    if spec.allow_tc_steps
        && first.dtype != StorageType::F32
        && cells
            .iter()
            .any(|c| tc_step_faster(b, c.units, g, wbytes, sms))
    {
        // Some cell would take tensor-core steps one after another; the wavefront's steps
        // are FFMA (the two are not modelled against each other yet).
        return None;
    }
    let launches = if kind == CellKind::GruBefore {
        3.0
    } else {
        2.0
    };
    let projections: f64 = cells[1..]
        .iter()
        .map(|c| gemm_us(b, c.input_dim, g * c.units, n - 1, sms) / (n - 1) as f64)
        .sum();
    let diagonal = launches * crate::cuda::dense::cost::LAUNCH_US + product(tiled) + projections;
    let wave = (t + n - 1) as f64 * diagonal;
    // One cell after another: each its best time loop, plus the up-front projection GEMMs of
    // cells 1.. (cell 0's is the same on both sides).
    let sequential: f64 = cells
        .iter()
        .map(|c| {
            let per_step = match persistent_plan(kind, wbytes, b, c.units, limits, DensePath::Auto)
            {
                Some(p) => persistent_us(kind, b, c.units, &p),
                None => step_us(kind, wbytes, b, c.units, sms),
            };
            t as f64 * per_step
        })
        .sum::<f64>()
        + cells[1..]
            .iter()
            .map(|c| gemm_us(b * t, c.input_dim, g * c.units, 1, sms))
            .sum::<f64>();
    // The newer, less measured path must be estimated clearly faster.
    (wave < WAVE_MARGIN * sequential).then_some(tiled)
}

/// The device buffers of one cell in the wavefront; kept alive until the result is built.
struct CellBufs {
    xp: CudaSlice<f32>,
    h: [CudaSlice<f32>; 2],
    c: Option<CudaSlice<f32>>,
    prev_out: CudaSlice<f32>,
    seq: Option<CudaSlice<f32>>,
    /// GRU reset_after=false scratch: z and r*h.
    scratch: Option<[CudaSlice<f32>; 2]>,
}

/// Runs `cells` over `x` as a wavefront with the step mapping `tiled` (from
/// [`wavefront_plan`]); arguments and result as `dense::run`'s.
pub(crate) fn run(
    dev: &CudaDevice,
    cells: &[DeviceCell],
    x: &CudaSlice<f32>,
    spec: SeqSpec,
    mask: Option<&CudaSlice<u8>>,
    init: Vec<CudaSlice<f32>>,
    tiled: bool,
) -> Result<DenseResult> {
    let (b, t, n) = (spec.batch, spec.time, cells.len());
    let first = cells
        .first()
        .ok_or_else(|| Error::invalid("cells", "a stack needs at least one cell"))?;
    if n > MAX_CELLS {
        return Err(Error::invalid(
            "cells",
            format!("internal: a wavefront carries at most {MAX_CELLS} cells, found {n}"),
        ));
    }
    if x.len() < b * t * first.input_dim {
        return Err(Error::invalid(
            "cells[0] input",
            "internal: input buffer too short",
        ));
    }
    if let Some(m) = mask {
        if m.len() < b * t {
            return Err(Error::invalid("mask", "internal: mask buffer too short"));
        }
    }
    let dt = first.recurrent.dtype();
    // The kernels index with these as ints (the step kernels' own argument types).
    to_i32(b, "batch")?;
    to_i32(t + n, "time")?;
    for c in cells {
        to_i32(c.kind.gates() * c.units, "units")?;
        to_i32(c.input_dim, "input width")?;
    }
    let dummy_mask = dev.placeholder_u8()?;
    let dummy = dev.placeholder_f32()?;
    let dummy_w = dev.placeholder(dt)?;
    let mut init = init.into_iter();
    let mut next_state = |what: &str, len: usize| -> Result<CudaSlice<f32>> {
        let s = init
            .next()
            .ok_or_else(|| Error::invalid("initial_state", "internal: too few states"))?;
        if s.len() < len {
            return Err(Error::invalid(
                format!("initial_state {what}"),
                "internal: state buffer too short",
            ));
        }
        Ok(s)
    };

    // Buffers: cell 0's projection of every step now; one (B, G*U) projection per later cell.
    let mut bufs = Vec::with_capacity(n);
    for (k, cell) in cells.iter().enumerate() {
        let (u, gu) = (cell.units, cell.kind.gates() * cell.units);
        let xp = if k == 0 {
            let mut xp = dev.alloc_out(b * t * gu)?;
            project(
                dev,
                x,
                spec.input_in_storage,
                false,
                b * t,
                cell.input_dim,
                &cell.kernel,
                gu,
                cell.bias.as_ref(),
                &mut xp,
            )?;
            xp
        } else {
            dev.alloc_out(b * gu)?
        };
        let h0 = next_state("h", b * u)?;
        let c = if cell.kind == CellKind::Lstm {
            Some(next_state("c", b * u)?)
        } else {
            None
        };
        // Cells before the last: a ring of two steps (the next cell's projection reads step s
        // one diagonal after it is written); the last: its whole sequence when returned.
        let last = k + 1 == n;
        bufs.push(CellBufs {
            xp,
            h: [h0, dev.alloc_out(b * u)?],
            c,
            prev_out: dev.alloc_zeros::<f32>(b * u)?,
            seq: if !last {
                Some(dev.alloc_out(2 * b * u)?)
            } else if spec.return_sequences {
                Some(dev.alloc_out(b * t * u)?)
            } else {
                None
            },
            scratch: if cell.kind == CellKind::GruBefore {
                Some([dev.alloc_out(b * u)?, dev.alloc_out(b * u)?])
            } else {
                None
            },
        });
    }

    // The launch arguments: layouts as in dense::run (cell 0 reads the user's input, maybe
    // reversed; cells before the last write time-major sequences; the last the user's layout).
    let ptr = |s: &Option<CudaSlice<f32>>| dev.ptr(s.as_ref().unwrap_or(dummy));
    let mut args = WaveArgs {
        cell: [WaveCell::default(); MAX_CELLS],
        b: b as i64,
        t: t as i64,
        n_cells: n as i64,
        mask: dev.ptr(mask.unwrap_or(dummy_mask)),
        has_mask: i64::from(mask.is_some()),
        mask_reverse: i64::from(spec.go_backwards),
        mask_b_stride: t as i64,
        act: i64::from(kernels::act_id(first.act)),
        rec: i64::from(kernels::act_id(first.rec)),
        tiled: i64::from(tiled),
    };
    for (k, (cell, q)) in cells.iter().zip(&bufs).enumerate() {
        let (u, gu) = (cell.units, cell.kind.gates() * cell.units);
        let last = k + 1 == n;
        let in_tm = k > 0 || spec.time_major;
        let out_tm = !last || spec.time_major;
        let opt_w = |w: &Option<Buf>| w.as_ref().map_or(dev.buf_ptr(dummy_w), |w| dev.buf_ptr(w));
        args.cell[k] = WaveCell {
            u: u as i64,
            gu: gu as i64,
            xp: dev.ptr(&q.xp),
            xp_step_stride: if k > 0 {
                0
            } else if in_tm {
                (b * gu) as i64
            } else {
                gu as i64
            },
            xp_b_stride: if in_tm { gu } else { t * gu } as i64,
            xp_reverse: i64::from(k == 0 && spec.go_backwards),
            um: dev.buf_ptr(&cell.recurrent),
            rb: opt_w(&cell.recurrent_bias),
            has_rb: i64::from(cell.recurrent_bias.is_some()),
            h0: dev.ptr(&q.h[0]),
            h1: dev.ptr(&q.h[1]),
            c: ptr(&q.c),
            prev_out: dev.ptr(&q.prev_out),
            zbuf: q
                .scratch
                .as_ref()
                .map_or(dev.ptr(dummy), |s| dev.ptr(&s[0])),
            rh: q
                .scratch
                .as_ref()
                .map_or(dev.ptr(dummy), |s| dev.ptr(&s[1])),
            seq: ptr(&q.seq),
            has_seq: i64::from(q.seq.is_some()),
            seq_step_stride: if out_tm { b * u } else { u } as i64,
            seq_b_stride: if out_tm { u } else { t * u } as i64,
            input: if k > 0 { ptr(&bufs[k - 1].seq) } else { 0 },
            in_step_stride: (b * cell.input_dim) as i64,
            k: cell.input_dim as i64,
            wx: dev.buf_ptr(&cell.kernel),
            bias: opt_w(&cell.bias),
            has_bias: i64::from(cell.bias.is_some()),
        };
    }

    // Grids: the widest cell's step grid and projection columns, one z slice per cell.
    let widest = cells.iter().map(|c| c.units).max().unwrap_or(0);
    let rows = |per: usize| b.div_ceil(per).min(MAX_GRID_Y) as u32;
    let step_cfg = LaunchConfig {
        grid_dim: if tiled {
            (
                widest.div_ceil(tile::TILED_UNITS) as u32,
                rows(tile::TILED_ROWS),
                n as u32,
            )
        } else {
            (
                widest.div_ceil(step::LANES as usize) as u32,
                rows(step::ROWS),
                n as u32,
            )
        },
        block_dim: (step::LANES, step::WARPS, 1),
        shared_mem_bytes: 0,
    };
    let widest_gu = cells[1..]
        .iter()
        .map(|c| c.kind.gates() * c.units)
        .max()
        .unwrap_or(0);
    let proj_cfg = LaunchConfig {
        grid_dim: (
            widest_gu.div_ceil(tile::BN) as u32,
            rows(tile::BM),
            (n - 1) as u32,
        ),
        block_dim: (tile::THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let proj_name = kernels::gemm_bias_wave(dt);
    let proj = dev.function(Module::Rnn, &proj_name)?;
    let names: Vec<String> = first
        .step_names()
        .iter()
        .map(|nm| kernels::wavefront(nm, dt))
        .collect();
    let funcs = names
        .iter()
        .map(|nm| dev.function(Module::Rnn, nm))
        .collect::<Result<Vec<_>>>()?;
    for it in 0..t + n - 1 {
        let it_i = to_i32(it, "time")?;
        if it > 0 {
            // gemm_bias_wave_{dt}(WaveArgs a, int it)
            let mut l = dev.launcher(&proj);
            l.arg(&args).arg(&it_i);
            dev.launch(l, &proj_name, proj_cfg)?;
        }
        for (f, nm) in funcs.iter().zip(&names) {
            // <kind>_wave_{dt}_*(WaveArgs a, int it)
            let mut l = dev.launcher(f);
            l.arg(&args).arg(&it_i);
            dev.launch(l, nm, step_cfg)?;
        }
    }

    // Results: every cell's final h (h0 after an even number of steps) and c, the last cell's
    // sequence or last output.
    let mut states = Vec::with_capacity(2 * n);
    let mut output = None;
    for (k, q) in bufs.into_iter().enumerate() {
        let [h0, h1] = q.h;
        states.push(if t % 2 == 0 { h0 } else { h1 });
        if let Some(c) = q.c {
            states.push(c);
        }
        if k + 1 == n {
            output = Some(if spec.return_sequences {
                q.seq.ok_or_else(|| {
                    Error::invalid("return_sequences", "internal: no sequence kept")
                })?
            } else {
                q.prev_out
            });
        }
    }
    // The buffers dropped here (projections, scratch, the h not returned) are freed in
    // stream order, after the launches that use them.
    Ok(DenseResult {
        output: output.ok_or_else(|| Error::invalid("cells", "internal: no cell ran"))?,
        states,
        paths: vec![DensePath::Wavefront; n],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::dense::tests::H100;

    fn stack(kind: CellKind, n: usize, input: usize, units: usize) -> Vec<CellShape> {
        (0..n)
            .map(|k| CellShape {
                kind,
                act: Activation::Tanh,
                rec: Activation::Sigmoid,
                dtype: StorageType::F32,
                units,
                input_dim: if k == 0 { input } else { units },
            })
            .collect()
    }

    fn spec(batch: usize, time: usize) -> SeqSpec {
        SeqSpec {
            batch,
            time,
            time_major: false,
            go_backwards: false,
            return_sequences: false,
            input_in_storage: false,
            allow_tf32: false,
            allow_tc_steps: false,
        }
    }

    #[test]
    fn the_wavefront_runs_stacks_that_underfill_the_gpu_one_cell_at_a_time() {
        use DensePath::{Auto, Persistent, Step, TensorCore, Wavefront};
        let plan = |cells: &[CellShape], b, t, path| wavefront_plan(cells, &spec(b, t), H100, path);
        // 4 stacked LSTM cells 128 x 256: one cell's step fills 32 of 132 SMs (16 x 4 tiles),
        // side by side 128; estimated ~2.4 ms against ~3.0 ms one after another (T 100),
        // ~0.53 against ~0.60 ms at T 20 (gpu_wavefront_path's Auto case).
        let narrow = stack(CellKind::Lstm, 4, 256, 256);
        assert_eq!(plan(&narrow, 128, 100, Auto), Some(true));
        assert_eq!(plan(&narrow, 128, 20, Auto), Some(true));
        // 4 x LSTM 64 x 1024: one cell's tiled step already fills the GPU (128 blocks); the
        // projections cost the same either way: one after another (~12.7 against ~14.5 ms).
        let wide = stack(CellKind::Lstm, 4, 1024, 1024);
        assert_eq!(plan(&wide, 64, 100, Auto), None);
        // The row, 4 x LSTM 64,100,512,512: the persistent kernel per cell (~7 us per
        // step, ~4.2 ms with the projections) against the wavefront's ~4.1 ms: within the
        // margin, so per cell; `gpu_session.sh paths` times both.
        let four = stack(CellKind::Lstm, 4, 512, 512);
        assert_eq!(plan(&four, 64, 100, Auto), None);
        // Batch 1: the persistent kernel per cell (a 1-row projection GEMM per diagonal costs
        // a whole 64-row tile).
        assert_eq!(plan(&four, 1, 100, Auto), None);
        // Forced: wherever it applies, with the better mapping.
        assert_eq!(plan(&four, 1, 100, Wavefront), Some(false));
        assert_eq!(plan(&four, 64, 100, Wavefront), Some(true));
        for p in [Step, Persistent, TensorCore] {
            assert_eq!(plan(&four, 64, 100, p), None, "{p:?}");
        }
        // Not for one cell, mixed stacks, TF32, row-wise activations, more cells than a launch
        // carries.
        assert_eq!(plan(&four[..1], 64, 100, Wavefront), None);
        let mut mixed = four.clone();
        mixed[2].kind = CellKind::GruAfter;
        assert_eq!(plan(&mixed, 64, 100, Wavefront), None);
        let mut acts = four.clone();
        acts[1].rec = Activation::HardSigmoid;
        assert_eq!(plan(&acts, 64, 100, Wavefront), None);
        // Row-wise activations run the `_rows` step kernels, never a wavefront.
        for a in [Activation::Softmax, Activation::LogSoftmax] {
            let mut rows = four.clone();
            rows.iter_mut().for_each(|c| c.act = a);
            assert_eq!(plan(&rows, 64, 100, Wavefront), None, "{a:?}");
            assert_eq!(plan(&rows, 128, 100, Auto), None, "{a:?}");
        }
        let mut tf32 = spec(64, 100);
        tf32.allow_tf32 = true;
        assert_eq!(wavefront_plan(&four, &tf32, H100, Wavefront), None);
        let nine = stack(CellKind::Lstm, MAX_CELLS + 1, 512, 512);
        assert_eq!(plan(&nine, 64, 100, Wavefront), None);
        assert!(plan(&nine[..MAX_CELLS], 64, 100, Wavefront).is_some());
    }

    /// The field names of a C struct's body in `src`, in order (`long long U;` -> `U`).
    fn c_fields(src: &str, name: &str) -> Vec<String> {
        let start = src
            .find(&format!("struct {name} {{"))
            .unwrap_or_else(|| panic!("struct {name} not in rnn.cu"));
        let body = &src[start..];
        let body = &body[body.find('{').unwrap_or(0) + 1..body.find("};").unwrap_or(0)];
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter(|l| l.ends_with(';'))
            .map(|l| {
                let decl = l.trim_end_matches(';');
                let last = decl.rsplit([' ', '*']).next().unwrap_or("");
                last.split('[').next().unwrap_or("").to_string()
            })
            .collect()
    }

    #[test]
    fn wave_args_mirror_the_kernels_struct() {
        // The Rust fields, in order, named as in C (lower case; `in` is a Rust keyword).
        let rust_cell = [
            "u",
            "gu",
            "xp",
            "xp_step_stride",
            "xp_b_stride",
            "xp_reverse",
            "um",
            "rb",
            "has_rb",
            "h0",
            "h1",
            "c",
            "prev_out",
            "zbuf",
            "rh",
            "seq",
            "has_seq",
            "seq_step_stride",
            "seq_b_stride",
            "input",
            "in_step_stride",
            "k",
            "wx",
            "bias",
            "has_bias",
        ];
        let rust_args = [
            "cell",
            "b",
            "t",
            "n_cells",
            "mask",
            "has_mask",
            "mask_reverse",
            "mask_b_stride",
            "act",
            "rec",
            "tiled",
        ];
        let src = include_str!("../../kernels/rnn.cu");
        let norm = |f: &String| {
            let f = f.to_lowercase();
            if f == "in" {
                "input".to_string()
            } else {
                f
            }
        };
        let cell: Vec<String> = c_fields(src, "WaveCell").iter().map(norm).collect();
        assert_eq!(cell, rust_cell);
        let args: Vec<String> = c_fields(src, "WaveArgs").iter().map(norm).collect();
        assert_eq!(args, rust_args);
        assert!(src.contains(&format!("constexpr int MAX_CELLS = {MAX_CELLS};")));
    }
}
