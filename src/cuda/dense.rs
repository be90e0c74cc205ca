//! The dense layers on the device: SimpleRNN, GRU (both reset variants), LSTM, and stacks of
//! them. Per cell: one projection GEMM for all steps, then per step one fused kernel (two for
//! GRU reset_after=false). See `kernels/rnn.cu` for the kernels' layouts.

use crate::activation::Activation;
use crate::cuda::device::{
    grid1, to_i32, to_i64, Buf, CudaDevice, DensePath, DeviceLimits, Launched, Module, PushBuf,
};
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
    pub(crate) act: Activation,
    pub(crate) rec: Activation,
    /// `(input_dim, gates * units)`.
    pub(crate) kernel: Buf,
    /// `(units, gates * units)`.
    pub(crate) recurrent: Buf,
    /// `(gates * units,)`, folded into the projection.
    pub(crate) bias: Option<Buf>,
    /// GRU reset_after: `(3 * units,)`.
    pub(crate) recurrent_bias: Option<Buf>,
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
        let cell = match cell {
            AnyCell::LSTM(c) => DeviceCell {
                kind: CellKind::Lstm,
                units: c.config.units,
                input_dim: c.kernel.nrows(),
                act: c.config.activation,
                rec: c.config.recurrent_activation,
                kernel: up2(dev, &c.kernel, dt)?,
                recurrent: up2(dev, &c.recurrent_kernel, dt)?,
                bias: up1(dev, &c.bias, dt)?,
                recurrent_bias: None,
            },
            AnyCell::GRU(c) => DeviceCell {
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
            },
            AnyCell::SimpleRNN(c) => DeviceCell {
                kind: CellKind::Simple,
                units: c.config.units,
                input_dim: c.kernel.nrows(),
                act: c.config.activation,
                rec: c.config.activation,
                kernel: up2(dev, &c.kernel, dt)?,
                recurrent: up2(dev, &c.recurrent_kernel, dt)?,
                bias: up1(dev, &c.bias, dt)?,
                recurrent_bias: None,
            },
            AnyCell::User(_) => {
                return Err(Error::invalid(
                    format!("cells[{index}]"),
                    "user-defined cells run on the CPU only; the CUDA path runs SimpleRNNCell, GRUCell and LSTMCell",
                ))
            }
        };
        cell.check_rows_fit(index)
    }

    /// Whether an activation of the cell is row-wise (softmax, log_softmax): its steps then run
    /// the `_rows` kernels (one block per batch row), never the persistent, tensor-core,
    /// tiled or wavefront paths.
    pub(crate) fn row_wise(&self) -> bool {
        self.act.is_row_wise() || self.rec.is_row_wise()
    }

    /// Refuses a row-wise cell too wide for the `_rows` kernels' shared memory.
    fn check_rows_fit(self, index: usize) -> Result<Self> {
        let g = self.kind.gates();
        if self.row_wise() && g * self.units > kernels::ROWS_MAX_FLOATS {
            return Err(Error::invalid(
                format!("cells[{index}] units"),
                format!(
                    "softmax / log_softmax on the GPU hold a row's {g} gates in shared memory: \
                     expected units <= {}, found {} (run this layer with --device cpu)",
                    kernels::ROWS_MAX_FLOATS / g,
                    self.units
                ),
            ));
        }
        Ok(self)
    }

    /// The names of this cell's per-step kernels, in launch order (two for GRU
    /// reset_after=false: gates, then update).
    pub(crate) fn step_names(&self) -> Vec<String> {
        let dt = self.recurrent.dtype();
        if self.row_wise() {
            let families: &[&str] = match self.kind {
                CellKind::Lstm => &["lstm_step"],
                CellKind::GruAfter => &["gru_after_step"],
                CellKind::GruBefore => &["gru_before_gates", "gru_before_update"],
                CellKind::Simple => &["simple_step"],
            };
            return families.iter().map(|f| kernels::rows_step(f, dt)).collect();
        }
        match self.kind {
            CellKind::Lstm => vec![kernels::lstm_step(dt, self.act, self.rec)],
            CellKind::GruAfter => vec![kernels::gru_after_step(dt, self.act, self.rec)],
            CellKind::GruBefore => vec![
                kernels::gru_before_gates(dt, self.rec),
                kernels::gru_before_update(dt, self.act),
            ],
            CellKind::Simple => vec![kernels::simple_step(dt, self.act)],
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

/// The shape of one sequence call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeqSpec {
    pub batch: usize,
    pub time: usize,
    /// Input and sequence output are `(time, batch, ...)`.
    pub time_major: bool,
    pub go_backwards: bool,
    pub return_sequences: bool,
    /// The input's values are values of the weights' storage type (a layer input given in
    /// it): the first cell's projection may run on tensor cores without rounding anything.
    pub input_in_storage: bool,
    /// f32 layers: TF32 tensor cores allowed (every projection; the steps too on
    /// [`DensePath::TensorCore`]), rounding both operands to TF32's 10-bit mantissa.
    pub allow_tf32: bool,
    /// [`DensePath::Auto`] may run the steps on tensor cores where [`tc_step_faster`] says
    /// so (`CudaLayer::with_tensor_core_steps`; f32 only with `allow_tf32`).
    pub allow_tc_steps: bool,
}

/// What a stack produced.
pub(crate) struct DenseResult {
    /// `(batch, time, units)` / `(time, batch, units)` with return_sequences, else
    /// `(batch, units)` (the last real step's output per row).
    pub output: CudaSlice<f32>,
    /// Final states of every cell, flattened in Keras's order, each `(batch, units)`.
    pub states: Vec<CudaSlice<f32>>,
    /// The kernels that ran each cell's time loop ([`DensePath::Step`],
    /// [`DensePath::Persistent`], [`DensePath::Wavefront`] or [`DensePath::TensorCore`]).
    pub paths: Vec<DensePath>,
}

/// `c[M, N] = a[M, K] w[K, N] + bias` with `gemm_bias_{dt}` (`a`, `c` f32; `w`, `bias` in the
/// weights' storage type), or on tensor cores with `gemm_bias_tc_{dt}` when `a_in_storage`
/// (every value of `a` is a `dt` value, so no operand is rounded; only the f32 accumulation
/// differs) and `dt` is f16 / bf16, or with `gemm_bias_tc_f32` (TF32) when `tf32` and `dt` is
/// f32.
#[allow(clippy::too_many_arguments)]
pub(crate) fn project(
    dev: &CudaDevice,
    a: &CudaSlice<f32>,
    a_in_storage: bool,
    tf32: bool,
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
    let dummy = dev.placeholder(dt)?;
    let tensor_cores = if dt == StorageType::F32 {
        tf32
    } else {
        a_in_storage
    };
    let name = if tensor_cores {
        kernels::gemm_bias_tc(dt)
    } else {
        kernels::gemm_bias(dt)
    };
    let f = dev.function(Module::Rnn, &name)?;
    let (mi, ni, ki) = (
        to_i64(m, "rows")?,
        to_i32(n, "columns")?,
        to_i32(k, "input width")?,
    );
    let (lda, ldb, ldc) = (ki as i64, ni, ni as i64);
    let has_bias = i32::from(bias.is_some());
    let bias = bias.unwrap_or(dummy);
    let cfg = LaunchConfig {
        grid_dim: (
            n.div_ceil(tile::BN) as u32,
            m.div_ceil(tile::BM).min(MAX_GRID_Y) as u32,
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
    // gemm_bias_{dt} / gemm_bias_tc_{dt}(long long M, int N, int K, const float* A, long long lda, const W* Bm,
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

/// Below this batch size the step kernels never tile (a 32-row tile would be mostly empty).
pub(crate) const TILED_MIN_BATCH: usize = 32;

/// The estimated time of one step's recurrent product, in microseconds, for `side_by_side`
/// cells of `batch` x `units` launched together (1 for one cell; the wavefront runs a stack's
/// cells side by side), with the 4-row passes (`dense_step`: 32 units per block, the weights
/// re-read from L2 for every 4 rows) or the GEMM-like tiles (`tiled_dense_step`: 32 rows x 16
/// units of every gate per block, weights read once per 32 rows). A first H100 cost model, like
/// `persistent_plan`'s (to be replaced by measurements): an SM does ~128 FMA per clock at
/// ~1.7 GHz; the 4-row passes are bound by re-reading the weights from L2 at ~5e6 bytes per us,
/// or by the FMAs of all SMs; the tiles by their FMAs in waves of one block per SM, at the
/// share of the FMA rate their shared-memory loads leave (~2/3).
pub(crate) fn step_product_us(
    batch: usize,
    units: usize,
    gates: usize,
    wbytes: usize,
    sms: usize,
    tiled: bool,
    side_by_side: usize,
) -> f64 {
    let (b, u, g) = (batch as f64, units as f64, gates as f64);
    let (sms, n) = (sms.max(1) as f64, side_by_side.max(1) as f64);
    let weights = g * u * u * wbytes as f64;
    if tiled {
        let blocks = n * (units.div_ceil(16) * batch.div_ceil(32)) as f64;
        let per_block = 32.0 * g * 16.0 * u / (tiled_fma_share(gates) * cost::SM_FMA_PER_US);
        let row_tiles = batch.div_ceil(32) as f64;
        ((blocks / sms).ceil() * per_block).max(n * row_tiles * weights / cost::L2_BYTES_PER_US)
    } else {
        let passes = batch.div_ceil(4) as f64;
        let fmas = n * b * g * u * u;
        (fmas / (sms * cost::SM_FMA_PER_US)).max(n * passes * weights / cost::L2_BYTES_PER_US)
    }
}

/// Whether the GEMM-like tiling of the step product beats the 4-row passes for one cell at
/// `batch` x `units` ([`step_product_us`]).
pub(crate) fn tiled_step_faster(
    batch: usize,
    units: usize,
    gates: usize,
    wbytes: usize,
    sms: usize,
) -> bool {
    if batch < TILED_MIN_BATCH || units == 0 {
        return false;
    }
    step_product_us(batch, units, gates, wbytes, sms, true, 1)
        < step_product_us(batch, units, gates, wbytes, sms, false, 1)
}

/// The tensor-core step's estimated time per step (us), `tc_step_tile`: 64 rows x 16 units of
/// every gate per block, K in steps of 32, ~2 blocks per SM resident. Per k step and block:
/// f16 / bf16 weights with `units % 8 == 0` fetch the next step's tiles (16-byte loads) during
/// this step's MMAs, ~0.3 us (about one L2 round trip); otherwise staging and MMAs follow each
/// other, ~0.5 us.
pub(crate) fn tc_step_us(batch: usize, units: usize, wbytes: usize, sms: usize) -> f64 {
    let k_step_us = if wbytes == 2 && units.is_multiple_of(8) {
        0.3
    } else {
        0.5
    };
    let blocks = (units.div_ceil(16) * batch.div_ceil(64)) as f64;
    let waves = (blocks / (2.0 * sms.max(1) as f64)).ceil();
    waves * units.div_ceil(32) as f64 * k_step_us
}

/// Whether the tensor-core step beats the better FFMA product at `batch` x `units`
/// (`DensePath::Auto` with tensor-core steps allowed).
pub(crate) fn tc_step_faster(
    batch: usize,
    units: usize,
    gates: usize,
    wbytes: usize,
    sms: usize,
) -> bool {
    units > 0
        && tc_step_us(batch, units, wbytes, sms) < ffma_product_us(batch, units, gates, wbytes, sms)
}

/// Threads per block of the persistent kernels (`persist::THREADS`).
pub(crate) const PERSIST_THREADS: usize = 512;
/// Batch rows per pass of the persistent kernels (`persist::BR`).
const PERSIST_BR: usize = 4;

/// Bytes per element of a storage type.
pub(crate) fn dt_bytes(dt: StorageType) -> usize {
    match dt {
        StorageType::F32 => 4,
        StorageType::F16 | StorageType::BF16 => 2,
    }
}

/// How a persistent kernel is launched for one cell and call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PersistPlan {
    /// Units per block, J.
    pub units_per_block: usize,
    /// Blocks, ceil(units / J).
    pub blocks: usize,
    /// Dynamic shared memory per block, bytes.
    pub smem: usize,
}

fn align16(n: usize) -> usize {
    n.div_ceil(16) * 16
}

/// The dynamic shared memory of a persistent block: `PersistSmem` in
/// `kernels/rnn_persistent.cu` (Ws | hs | hr | red | zs | zsave, each 16-byte aligned).
pub(crate) fn persistent_smem_bytes(
    kind: CellKind,
    wbytes: usize,
    batch: usize,
    units: usize,
    j: usize,
) -> usize {
    let c = kind.gates() * j;
    let bp = batch.div_ceil(PERSIST_BR) * PERSIST_BR;
    let before = kind == CellKind::GruBefore;
    let hs = align16(units * c * wbytes);
    let hr = align16(hs + bp * units * 4);
    let red = align16(hr + if before { bp * units * 4 } else { 0 });
    let zs = align16(red + PERSIST_THREADS * PERSIST_BR * 4);
    let zsave = align16(zs + PERSIST_BR * c * 4);
    align16(zsave + if before { bp * j * 4 } else { 0 })
}

/// The cost model of the path choices, H100 estimates to be replaced by measurements
/// (docs/PERFORMANCE.md): a grid barrier, a persistent block's multiply-adds at ~2.2e5 per us
/// (4 FMAs per shared-memory weight load, 128 lanes), h read from L2 into every block at ~1e5
/// bytes per us; the step kernels' launches (~3 us each), FFMA rate per SM and L2 bandwidth
/// (their weight re-reads).
pub(crate) mod cost {
    pub const BARRIER_US: f64 = 1.2;
    pub const BLOCK_MACS_PER_US: f64 = 2.2e5;
    pub const BLOCK_BYTES_PER_US: f64 = 1.0e5;
    pub const LAUNCH_US: f64 = 3.0;
    /// FFMA multiply-adds per us of one SM (128 per clock at ~1.7 GHz).
    pub const SM_FMA_PER_US: f64 = 128.0 * 1700.0;
    /// L2 bandwidth, bytes per us.
    pub const L2_BYTES_PER_US: f64 = 5.0e6;
}

/// The share of an SM's FMA rate the tiled step reaches with `gates` gate columns per unit:
/// per k a warp issues 2 G FMA instructions (4 per clock per SM) against one 8-byte load of
/// its h rows (1 shared-memory wavefront) and one load of its 16 units' gates, G padded to
/// GP = 1, 2, 4 floats (max(1, GP / 2) wavefronts; one per clock per SM): 2/3 for LSTM, 1/2
/// for GRU (3 gates padded to 4, or GRU reset_after=false's 2), 1/4 for one gate.
pub(crate) fn tiled_fma_share(gates: usize) -> f64 {
    let g = gates.max(1) as f64;
    let gp = match gates {
        0 | 1 => 1.0,
        2 => 2.0,
        _ => 4.0,
    };
    (g / (2.0 * (1.0 + f64::max(1.0, gp / 2.0)))).min(1.0)
}

/// The persistent launch for a cell of `kind` (weights of `wbytes` bytes) at `batch` x
/// `units`, or `None` for the step kernels: never with [`DensePath::Step`] or without
/// cooperative launches; with [`DensePath::Persistent`] whenever a plan fits (shared memory,
/// at most one block per SM); with [`DensePath::Auto`] when the cost model says it is faster.
/// Candidates: one block holding every unit (no grid barrier), and `ceil(units / SMs)` units
/// per block over up to one block per SM.
pub(crate) fn persistent_plan(
    kind: CellKind,
    wbytes: usize,
    batch: usize,
    units: usize,
    limits: DeviceLimits,
    path: DensePath,
) -> Option<PersistPlan> {
    if matches!(path, DensePath::Step | DensePath::TensorCore)
        || !limits.cooperative
        || batch == 0
        || units == 0
    {
        return None;
    }
    let plan = |j: usize| {
        let blocks = units.div_ceil(j);
        let smem = persistent_smem_bytes(kind, wbytes, batch, units, j);
        (blocks <= limits.sms && smem <= limits.max_smem).then_some(PersistPlan {
            units_per_block: j,
            blocks,
            smem,
        })
    };
    let best = [plan(units), plan(units.div_ceil(limits.sms.max(1)))]
        .into_iter()
        .flatten()
        .min_by(|a, b| {
            persistent_us(kind, batch, units, a).total_cmp(&persistent_us(kind, batch, units, b))
        })?;
    if path == DensePath::Persistent {
        return Some(best);
    }
    (persistent_us(kind, batch, units, &best) < step_us(kind, wbytes, batch, units, limits.sms))
        .then_some(best)
}

/// The persistent kernel's estimated time per step (us) under `plan`: a grid barrier (none
/// with one block), h read from L2 into every block (at a block's rate, and all blocks
/// together at L2's), the block's multiply-adds.
pub(crate) fn persistent_us(kind: CellKind, batch: usize, units: usize, p: &PersistPlan) -> f64 {
    let macs = (batch * kind.gates() * p.units_per_block * units) as f64;
    let barrier = if p.blocks > 1 { cost::BARRIER_US } else { 0.0 };
    let h_bytes = (batch * units * 4) as f64;
    let h_read =
        (h_bytes / cost::BLOCK_BYTES_PER_US).max(p.blocks as f64 * h_bytes / cost::L2_BYTES_PER_US);
    phases(kind) * (barrier + h_read) + macs / cost::BLOCK_MACS_PER_US
}

/// The faster of the two FFMA products' estimates ([`step_product_us`]; the tiles only from
/// [`TILED_MIN_BATCH`] rows), us per step.
pub(crate) fn ffma_product_us(
    batch: usize,
    units: usize,
    gates: usize,
    wbytes: usize,
    sms: usize,
) -> f64 {
    let passes = step_product_us(batch, units, gates, wbytes, sms, false, 1);
    if batch >= TILED_MIN_BATCH {
        passes.min(step_product_us(batch, units, gates, wbytes, sms, true, 1))
    } else {
        passes
    }
}

/// The step kernels' estimated time per step (us): their launches and the faster FFMA product.
pub(crate) fn step_us(
    kind: CellKind,
    wbytes: usize,
    batch: usize,
    units: usize,
    sms: usize,
) -> f64 {
    phases(kind) * cost::LAUNCH_US + ffma_product_us(batch, units, kind.gates(), wbytes, sms)
}

/// Launches per step: two for GRU reset_after=false, else one.
fn phases(kind: CellKind) -> f64 {
    if kind == CellKind::GruBefore {
        2.0
    } else {
        1.0
    }
}

/// The estimated time (us) of `count` FFMA projection GEMMs `[rows, k] x [k, cols]` launched
/// together (`gemm_bias_tile`: 64 x 64 tiles, one block per SM at a time, half the SM's FMA
/// rate; a tile of fewer rows costs a whole tile).
pub(crate) fn gemm_us(rows: usize, k: usize, cols: usize, count: usize, sms: usize) -> f64 {
    let tiles = (count * rows.div_ceil(64) * cols.div_ceil(64)) as f64;
    let per_tile = 64.0 * 64.0 * k as f64 / (0.5 * cost::SM_FMA_PER_US);
    (tiles / sms.max(1) as f64).ceil() * per_tile
}

/// The kernel of a plan, its shared memory opted in to, and the co-residency check (the
/// driver's occupancy for that shared memory, times the SMs); `None` falls back to the step
/// kernels ([`DenseResult::paths`] tells which ran).
fn prepare_persistent(
    dev: &CudaDevice,
    cell: &DeviceCell,
    plan: PersistPlan,
) -> Result<Option<(cudarc::driver::CudaFunction, String, PersistPlan)>> {
    use cudarc::driver::sys::CUfunction_attribute as F;
    let name = kernels::persistent(cell.kind, cell.recurrent.dtype(), cell.act, cell.rec);
    let func = dev.function(Module::Persist, &name)?;
    // The attribute belongs to the function (one handle per module and name), shared by every
    // thread using this device: always the device's whole opt-in limit, so that concurrent
    // calls never lower it under each other's launches.
    let smem = i32::try_from(dev.limits().max_smem)
        .map_err(|_| Error::invalid("units", "shared memory size out of range"))?;
    func.set_attribute(F::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem)
        .map_err(|e| {
            crate::cuda::device::cuda_err(
                &format!("opting `{name}` in to {smem} bytes of shared memory"),
                e,
            )
        })?;
    let per_sm = func
        .occupancy_max_active_blocks_per_multiprocessor(PERSIST_THREADS as u32, plan.smem, None)
        .map_err(|e| crate::cuda::device::cuda_err(&format!("occupancy of `{name}`"), e))?;
    if (per_sm as usize) * dev.limits().sms < plan.blocks {
        return Ok(None);
    }
    Ok(Some((func, name, plan)))
}

/// Step `s`'s (previous, next) h of a ping-pong pair: step 0 reads `hs[0]` and writes `hs[1]`.
pub(crate) fn ping_pong<T>(hs: &mut [T; 2], s: usize) -> (&T, &mut T) {
    let (lo, hi) = hs.split_at_mut(1);
    if s.is_multiple_of(2) {
        (&lo[0], &mut hi[0])
    } else {
        (&hi[0], &mut lo[0])
    }
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
/// `(batch, time)` as u8: the whole stack as a wavefront where `wave::wavefront_plan` says so,
/// else each cell's time loop on the persistent kernel or the step kernels as `path` and
/// [`persistent_plan`] decide.
pub(crate) fn run(
    dev: &CudaDevice,
    cells: &[DeviceCell],
    x: &CudaSlice<f32>,
    spec: SeqSpec,
    path: DensePath,
    mask: Option<&CudaSlice<u8>>,
    init: Vec<CudaSlice<f32>>,
) -> Result<DenseResult> {
    let (b, t) = (spec.batch, spec.time);
    if cells.is_empty() {
        return Err(Error::invalid("cells", "a stack needs at least one cell"));
    }
    let shapes: Vec<_> = cells.iter().map(crate::cuda::wave::CellShape::of).collect();
    if let Some(tiled) = crate::cuda::wave::wavefront_plan(&shapes, &spec, dev.limits(), path) {
        return crate::cuda::wave::run(dev, cells, x, spec, mask, init, tiled);
    }
    if let Some(m) = mask {
        if m.len() < b * t {
            return Err(Error::invalid("mask", "internal: mask buffer too short"));
        }
    }
    // Absent outputs (no sequence kept, no c state) and an absent mask: the device's shared
    // placeholders, which the kernels do not touch (their flags say absent).
    let dummy_out = dev.placeholder_f32()?;
    let mut paths = Vec::with_capacity(cells.len());
    let (mask_buf, has_mask) = match mask {
        Some(m) => (m, 1i32),
        None => (dev.placeholder_u8()?, 0i32),
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
            first && spec.input_in_storage,
            spec.allow_tf32,
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
        let mut prev_out = dev.alloc_zeros::<f32>(b * u)?;
        let keep = !last || spec.return_sequences;
        let seq = if keep {
            Some(dev.alloc_out(b * t * u)?)
        } else {
            None
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
        let dummy_rb = dev.placeholder(dt)?;
        let has_seq = i32::from(seq.is_some());
        let has_rb = i32::from(cell.recurrent_bias.is_some());
        let row_wise = cell.row_wise();
        let plan = if row_wise {
            None
        } else {
            persistent_plan(cell.kind, dt_bytes(dt), b, u, dev.limits(), path)
        };
        let persistent = match plan {
            Some(plan) => prepare_persistent(dev, cell, plan)?,
            None => None,
        };
        // h ping-pongs between the initial state's buffer and one more (both paths): step s
        // reads hs[s % 2], the final h is hs[T % 2]. The initial states are this call's own
        // buffers (layer.rs resolve_init: fresh zeros, uploads, or copies of a device state
        // or the stateful carry), so writing over them is safe.
        let mut hs = [h0, dev.alloc_out(b * u)?];
        let mut ran_persistent = false;
        if let Some((func, name, plan)) = persistent {
            // One cooperative launch runs every step (kernels/rnn_persistent.cu).
            let bar = dev.grid_barrier()?;
            let rh_scratch = if cell.kind == CellKind::GruBefore {
                Some(dev.alloc_out(b * u)?)
            } else {
                None
            };
            let rh = rh_scratch.as_ref().unwrap_or(dummy_out);
            // Written by the kernel when present; pushed by shared reference like the
            // placeholders (one stream, no event tracking: the pointer is all that is passed).
            let c = c_state.as_ref().unwrap_or(dummy_out);
            let seq_buf = seq.as_ref().unwrap_or(dummy_out);
            let ti = to_i32(t, "time")?;
            let ji = to_i32(plan.units_per_block, "units per block")?;
            let xp_ss = to_i64(if in_tm { b * gu } else { gu }, "xp stride")?;
            let xp_bs_i = to_i64(xp_bs, "xp stride")?;
            let xp_rev = i32::from(in_rev);
            let mask_rev = i32::from(spec.go_backwards);
            let mask_bs_i = to_i64(t, "time")?;
            let seq_ss = to_i64(if out_tm { b * u } else { u }, "output stride")?;
            let seq_bs_i = to_i64(seq_bs, "output stride")?;
            let rb = cell.recurrent_bias.as_ref().unwrap_or(dummy_rb);
            let cfg = LaunchConfig {
                grid_dim: (plan.blocks as u32, 1, 1),
                block_dim: (PERSIST_THREADS as u32, 1, 1),
                shared_mem_bytes: plan.smem as u32,
            };
            // persistent_*(int B, int U, int T, int J, const float* xp, long long
            //   xp_step_stride, long long xp_b_stride, int xp_reverse, const W* Um, const W* rb,
            //   int has_rb, float* h0, float* h1, float* c, float* prev_out, float* rh, const u8* mask,
            //   int has_mask, int mask_reverse, long long mask_b_stride, float* seq, int has_seq,
            //   long long seq_step_stride, long long seq_b_stride, unsigned* bar, int act,
            //   int rec)
            let mut l = dev.launcher(&func);
            l.arg(&bi)
                .arg(&ui)
                .arg(&ti)
                .arg(&ji)
                .arg(&xp)
                .arg(&xp_ss)
                .arg(&xp_bs_i)
                .arg(&xp_rev)
                .buf(&cell.recurrent)
                .buf(rb)
                .arg(&has_rb)
                .arg(&hs[0])
                .arg(&hs[1])
                .arg(c)
                .arg(&mut prev_out)
                .arg(rh)
                .arg(mask_buf)
                .arg(&has_mask)
                .arg(&mask_rev)
                .arg(&mask_bs_i)
                .arg(seq_buf)
                .arg(&has_seq)
                .arg(&seq_ss)
                .arg(&seq_bs_i)
                .arg(bar)
                .arg(&act)
                .arg(&rec);
            match dev.launch_cooperative(l, &name, cfg)? {
                Launched::Ran => ran_persistent = true,
                // Refused at launch (nothing ran: e.g. fewer SMs available than the occupancy
                // query said, under MPS): the step kernels below, from the untouched initial
                // state, unless the caller forced this path.
                Launched::Refused(_) if matches!(path, DensePath::Auto | DensePath::Wavefront) => {}
                Launched::Refused(e) => return Err(e),
            }
        }
        let tc_ok = (dt != StorageType::F32 || spec.allow_tf32) && !row_wise;
        let tensor_cores = tc_ok
            && match path {
                DensePath::TensorCore => true,
                DensePath::Auto => {
                    spec.allow_tc_steps
                        && tc_step_faster(b, u, cell.kind.gates(), dt_bytes(dt), dev.limits().sms)
                }
                _ => false,
            };
        paths.push(if ran_persistent {
            DensePath::Persistent
        } else if tensor_cores {
            DensePath::TensorCore
        } else {
            DensePath::Step
        });
        if !ran_persistent {
            // GRU reset_after=false scratch: z (f32) and r*h.
            let (mut zbuf, mut rh) = if cell.kind == CellKind::GruBefore {
                (Some(dev.alloc_out(b * u)?), Some(dev.alloc_out(b * u)?))
            } else {
                (None, None)
            };
            let names = cell.step_names();
            // Large batches: the GEMM-like tiling of the FFMA product (same kernels, `tiled`).
            let tiled = !tensor_cores
                && !row_wise
                && tiled_step_faster(b, u, cell.kind.gates(), dt_bytes(dt), dev.limits().sms);
            let tiled_i = i32::from(tiled);
            let cfg = if row_wise {
                // The `_rows` kernels: one block per batch row (grid-stride beyond 65535).
                LaunchConfig {
                    grid_dim: (1, b.min(MAX_GRID_Y) as u32, 1),
                    block_dim: (kernels::ROWS_THREADS, 1, 1),
                    shared_mem_bytes: 0,
                }
            } else if tiled {
                LaunchConfig {
                    grid_dim: (
                        u.div_ceil(tile::TILED_UNITS) as u32,
                        b.div_ceil(tile::TILED_ROWS).min(MAX_GRID_Y) as u32,
                        1,
                    ),
                    block_dim: (step::LANES, step::WARPS, 1),
                    shared_mem_bytes: 0,
                }
            } else {
                cfg
            };
            let (names, cfg) = if tensor_cores {
                let grid = LaunchConfig {
                    grid_dim: (
                        u.div_ceil(tile::TC_UNITS) as u32,
                        b.div_ceil(tile::TC_ROWS).min(MAX_GRID_Y) as u32,
                        1,
                    ),
                    block_dim: (tile::TC_THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                let tc = names.iter().map(|n| kernels::tensor_core(n, dt)).collect();
                (tc, grid)
            } else {
                (names, cfg)
            };
            let funcs = names
                .iter()
                .map(|nm| dev.function(Module::Rnn, nm))
                .collect::<Result<Vec<_>>>()?;
            let xp_bs_i = to_i64(xp_bs, "xp stride")?;
            let mask_bs_i = to_i64(t, "time")?;
            let seq_bs_i = to_i64(seq_bs, "output stride")?;
            for s in 0..t {
                let t_src = if in_rev { t - 1 - s } else { s };
                let t_mask = if spec.go_backwards { t - 1 - s } else { s };
                let xp_off = to_i64(if in_tm { t_src * b * gu } else { t_src * gu }, "xp offset")?;
                let mask_off = to_i64(t_mask, "mask offset")?;
                let seq_off = to_i64(if out_tm { s * b * u } else { s * u }, "output offset")?;
                let (h_prev, h_next) = ping_pong(&mut hs, s);
                let seq_buf = seq.as_ref().unwrap_or(dummy_out);
                match cell.kind {
                    CellKind::Lstm => {
                        let c = c_state.as_mut().ok_or_else(|| {
                            Error::invalid("state", "internal: LSTM without a c state")
                        })?;
                        // lstm_step(B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, h_next, c,
                        //   prev_out, mask, has_mask, mask_off, mask_b_stride, seq, has_seq,
                        //   seq_off, seq_b_stride, act, rec, tiled)
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
                            .arg(&rec)
                            .arg(&tiled_i);
                        dev.launch(l, &names[0], cfg)?;
                    }
                    CellKind::GruAfter => {
                        let rb = cell.recurrent_bias.as_ref().unwrap_or(dummy_rb);
                        // gru_after_step(B, U, xp, xp_step_off, xp_b_stride, Um, rb, has_rb, h_prev,
                        //   h_next, prev_out, mask, has_mask, mask_off, mask_b_stride, seq,
                        //   has_seq, seq_off, seq_b_stride, act, rec, tiled)
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
                            .arg(&rec)
                            .arg(&tiled_i);
                        dev.launch(l, &names[0], cfg)?;
                    }
                    CellKind::GruBefore => {
                        let (z, r) = match (zbuf.as_mut(), rh.as_mut()) {
                            (Some(z), Some(r)) => (z, r),
                            _ => {
                                return Err(Error::invalid(
                                    "state",
                                    "internal: GRU scratch missing",
                                ))
                            }
                        };
                        // gru_before_gates(B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, zbuf,
                        //   rh, rec, tiled)
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
                            .arg(&rec)
                            .arg(&tiled_i);
                        dev.launch(l, &names[0], cfg)?;
                        // gru_before_update(B, U, xp, xp_step_off, xp_b_stride, Um, rh, zbuf,
                        //   h_prev, h_next, prev_out, mask, has_mask, mask_off, mask_b_stride, seq,
                        //   has_seq, seq_off, seq_b_stride, act, tiled)
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
                            .arg(&act)
                            .arg(&tiled_i);
                        dev.launch(l, &names[1], cfg)?;
                    }
                    CellKind::Simple => {
                        // simple_step(B, U, xp, xp_step_off, xp_b_stride, Um, h_prev, h_next,
                        //   prev_out, mask, has_mask, mask_off, mask_b_stride, seq, has_seq,
                        //   seq_off, seq_b_stride, act, tiled)
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
                            .arg(&act)
                            .arg(&tiled_i);
                        dev.launch(l, &names[0], cfg)?;
                    }
                }
            }
        }
        let [ha, hb] = hs;
        states_out.push(if t % 2 == 0 { ha } else { hb });
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
        paths,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The H100's limits, for the cost-model tests.
    pub(crate) const H100: DeviceLimits = DeviceLimits {
        sms: 132,
        max_smem: 232_448,
        cooperative: true,
    };

    #[test]
    fn persistent_shared_memory_matches_the_kernels_layout() {
        // The same sizes are asserted against PersistSmem in kernels/emu/harness.cpp.
        assert_eq!(persistent_smem_bytes(CellKind::Lstm, 4, 1, 512, 4), 49_408);
        assert_eq!(
            persistent_smem_bytes(CellKind::GruBefore, 2, 5, 37, 8),
            12_976
        );
        assert_eq!(
            persistent_smem_bytes(CellKind::Simple, 4, 8, 64, 64),
            27_648
        );
    }

    #[test]
    fn the_tiled_step_is_chosen_where_weight_rereads_dominate() {
        let t = |b, u, g| tiled_step_faster(b, u, g, 4, H100.sms);
        assert!(!t(16, 1024, 4), "below the minimum batch");
        assert!(
            !t(32, 256, 4),
            "a 16-block grid loses to 64 blocks of 4-row passes"
        );
        assert!(
            !t(32, 128, 3),
            "GRU 32 x 128: small weights, L2 re-reads are cheap"
        );
        assert!(
            t(64, 1024, 4),
            "LSTM 64 x 1024: 16 re-reads of 16 MB per step"
        );
        assert!(t(256, 1024, 4));
    }

    #[test]
    fn tensor_core_steps_are_chosen_for_large_batches_only() {
        let tc = |b, u, g| tc_step_faster(b, u, g, 2, H100.sms);
        // LSTM 256 x 1024 (issue 4's f16 row): ~9.6 us against the tiles' ~58 us.
        assert!(tc(256, 1024, 4));
        assert!(tc(128, 1024, 4), "~9.6 against ~29 us");
        assert!(tc(64, 1024, 4), "~9.6 against the tiles' ~14.5 us");
        // Units not a multiple of 8: staged element by element, ~0.5 us per k step.
        assert!(!tc(64, 1020, 4), "~16 against ~14.5 us");
        // Batch 1: a 64-row tile of one real row against the 4-row passes.
        assert!(!tc(1, 512, 4));
        assert!(!tc(4, 1536, 4));
    }

    #[test]
    fn persistent_plan_follows_the_path_and_the_limits() {
        let plan = |kind, b, u, path| persistent_plan(kind, 4, b, u, H100, path);
        // Forced: LSTM 1 x 512 spreads 4 units over 128 blocks.
        let p = plan(CellKind::Lstm, 1, 512, DensePath::Persistent).expect("a plan");
        assert_eq!((p.units_per_block, p.blocks), (4, 128));
        assert!(p.smem <= H100.max_smem);
        // Small units fit one block: no grid barrier.
        let p = plan(CellKind::Lstm, 8, 64, DensePath::Persistent).expect("a plan");
        assert_eq!(p.blocks, 1);
        // The step path, or no cooperative launch: never.
        assert_eq!(plan(CellKind::Lstm, 1, 512, DensePath::Step), None);
        let no_coop = DeviceLimits {
            cooperative: false,
            ..H100
        };
        assert_eq!(
            persistent_plan(CellKind::Lstm, 4, 1, 512, no_coop, DensePath::Persistent),
            None
        );
        // States that do not fit in shared memory: the step kernels.
        assert_eq!(plan(CellKind::Lstm, 256, 1024, DensePath::Persistent), None);
        // Auto: small batches persistent, large batches with large weights not.
        assert!(plan(CellKind::Lstm, 1, 512, DensePath::Auto).is_some());
        assert!(plan(CellKind::GruAfter, 1, 512, DensePath::Auto).is_some());
        assert_eq!(plan(CellKind::Lstm, 64, 1024, DensePath::Auto), None);
    }
}
