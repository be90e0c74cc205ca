//! The device handle (context, one stream, the loaded kernels), device tensors, host <-> device
//! copies and the launch helper.

use crate::keras::StorageType;
use crate::{Error, Result};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError, LaunchArgs,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `kernels/rnn.cu` as a fatbin (machine code + PTX), compiled by build.rs.
const RNN_BIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rnn.fatbin"));
/// `kernels/conv_lstm.cu` as a fatbin, compiled by build.rs.
const CONV_BIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/conv_lstm.fatbin"));
/// `kernels/rnn_persistent.cu` as a fatbin, compiled by build.rs.
const PERSIST_BIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rnn_persistent.fatbin"));

/// A module image for the driver (cuModuleLoadData reads fatbins as well as PTX).
fn image(bytes: &[u8]) -> Ptx {
    Ptx::from_binary(bytes.to_vec())
}

/// Which module (kernel file) a kernel lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Module {
    /// `kernels/rnn.cu`: dense steps, the projection GEMM, helpers.
    Rnn,
    /// `kernels/conv_lstm.cu`: ConvLSTM2D.
    Conv,
    /// `kernels/rnn_persistent.cu`: the persistent dense kernels.
    Persist,
}

/// Which kernels run the time loop of the dense layers (LSTM, GRU, SimpleRNN and stacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DensePath {
    /// The heuristic of `src/cuda/dense.rs` (`persistent_plan`): the persistent kernel where
    /// its plan is feasible and estimated faster, else one launch per step.
    #[default]
    Auto,
    /// One fused launch per time step (two for GRU reset_after=false), always.
    Step,
    /// The persistent kernel (one launch per layer call) wherever it is feasible (weights and
    /// states fit in shared memory, blocks co-resident); the step kernels elsewhere.
    Persistent,
    /// Stacks of two to eight cells of one kind (same activations): every cell's steps side by
    /// side, one launch per diagonal of (cell, step) (`src/cuda/wave.rs`), wherever that applies
    /// (not with TF32 allowed); one cell, mixed stacks and the rest as with [`DensePath::Auto`].
    /// `Auto` chooses it where its cost model estimates it faster than the cells one after
    /// another, each on its own best path (persistent or step).
    Wavefront,
    /// f16 / bf16 layers: the step kernels' tensor-core variants, whose recurrent product
    /// rounds h (and GRU's r*h) to the storage type, as cuDNN's half-precision RNNs do: results
    /// leave the CPU path's `--dtype` semantics by that rounding (never chosen by `Auto`). f32
    /// layers: the TF32 variants when TF32 is allowed (`CudaLayer::with_tf32`), else the step
    /// kernels. With f16, an |h| above 65504 (unbounded activations: relu,
    /// linear, elu, selu, softplus, exponential) becomes inf in the product, as in cuDNN.
    TensorCore,
}

/// What the persistent kernels' plan needs to know about the device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceLimits {
    /// Streaming multiprocessors.
    pub sms: usize,
    /// Dynamic shared memory one block may opt in to, bytes.
    pub max_smem: usize,
    /// Whether cooperative launches are supported.
    pub cooperative: bool,
}

/// `what failed: driver error`.
pub(crate) fn cuda_err(what: &str, e: DriverError) -> Error {
    Error::Cuda(format!("{what}: {e}"))
}

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    rnn: Arc<CudaModule>,
    conv: Arc<CudaModule>,
    /// Loaded on first use: its JIT compilation at load takes seconds, and the step path
    /// never needs it.
    persist: std::sync::OnceLock<Arc<CudaModule>>,
    limits: DeviceLimits,
    /// The default dense path (`RECURRENT_CUDA_PATH`).
    dense_path: DensePath,
    /// Fill every output buffer with NaN before the kernels write it (tests: unwritten elements
    /// show up as NaN).
    poison: AtomicBool,
    /// Synchronize after every launch and name the kernel in any error (`RECURRENT_CUDA_SYNC=1`).
    sync_each_launch: bool,
    /// One-element zero buffers passed for absent optional kernel arguments (never read or
    /// written by the kernels: a flag argument says absent) and the persistent kernels' grid
    /// barrier words; made on first use, shared by every call so that a layer call allocates
    /// and clears none of them.
    placeholders: std::sync::OnceLock<Placeholders>,
}

struct Placeholders {
    f32: CudaSlice<f32>,
    u8: CudaSlice<u8>,
    /// The persistent kernels' grid barrier: arrival counter and generation, zero at first,
    /// left by each launch with the counter at zero for the next (rnn_persistent.cu).
    barrier: CudaSlice<u32>,
    /// One per storage type, as weight arguments.
    w: [Buf; 3],
}

/// A CUDA device: its context, one stream that every copy and launch of this crate goes to (so
/// stream order is the only ordering needed), and the kernels of `kernels/*.cu` (fatbins).
///
/// Cheap to clone (an `Arc`); layers built on it ([`crate::cuda::CudaLayer`]) keep a clone.
///
/// Environment: `RECURRENT_CUDA_SYNC=1` synchronizes after every kernel launch so that an
/// asynchronous fault is reported with the kernel's name (slow; for debugging).
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("ordinal", &self.inner.ctx.ordinal())
            .finish()
    }
}

impl CudaDevice {
    /// Opens device `ordinal` (0 for the first GPU) and loads the kernels.
    ///
    /// Errors (never panics): `Error::Cuda("no CUDA driver (libcuda) found")` when the driver
    /// library cannot be loaded, `"no CUDA device"` when the driver sees none, and an error
    /// naming the step that failed otherwise (context, stream, module load: a driver older than
    /// CUDA 13.0 refuses these modules).
    pub fn new(ordinal: usize) -> Result<Self> {
        // SAFETY: `is_culib_present` only tries to dlopen the driver library under its usual
        // names and closes it again; it calls no CUDA function. It must come first: with
        // dynamic loading, the first CUDA call panics when the library is missing.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::Cuda("no CUDA driver (libcuda) found".into()));
        }
        let count = match CudaContext::device_count() {
            Ok(n) => n,
            Err(e) if e.0 == CUresult::CUDA_ERROR_NO_DEVICE => {
                return Err(Error::Cuda("no CUDA device".into()))
            }
            Err(e) => return Err(cuda_err("cuInit / cuDeviceGetCount", e)),
        };
        if count <= 0 {
            return Err(Error::Cuda("no CUDA device".into()));
        }
        if ordinal >= count as usize {
            return Err(Error::Cuda(format!(
                "device {ordinal} requested, but the driver sees {count} device(s) (0 .. {})",
                count - 1
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| cuda_err(&format!("creating a context on device {ordinal}"), e))?;
        // SAFETY: every buffer of this crate is allocated, written, read and freed on the one
        // stream created below, so stream order already serializes all uses; cudarc's per-buffer
        // events (which would add an event record / wait to every launch) are not needed.
        // Disabling them affects only buffers created after this call on this context object.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| cuda_err("creating a stream", e))?;
        let rnn = ctx
            .load_module(image(RNN_BIN))
            .map_err(|e| cuda_err("loading the kernels of kernels/rnn.cu", e))?;
        let conv = ctx
            .load_module(image(CONV_BIN))
            .map_err(|e| cuda_err("loading the kernels of kernels/conv_lstm.cu", e))?;
        use cudarc::driver::sys::CUdevice_attribute as A;
        let attr = |a: A, what: &str| {
            ctx.attribute(a)
                .map_err(|e| cuda_err(&format!("reading the device's {what}"), e))
        };
        let limits = DeviceLimits {
            sms: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "SM count")?.max(1) as usize,
            max_smem: attr(
                A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                "shared memory per block",
            )?
            .max(0) as usize,
            cooperative: attr(
                A::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH,
                "cooperative launch",
            )? != 0,
        };
        let sync_each_launch = std::env::var("RECURRENT_CUDA_SYNC").is_ok_and(|v| v == "1");
        let dense_path = match std::env::var("RECURRENT_CUDA_PATH").as_deref() {
            Ok("step") => DensePath::Step,
            Ok("persistent") => DensePath::Persistent,
            Ok("tensor-core") => DensePath::TensorCore,
            Ok("wavefront") => DensePath::Wavefront,
            Ok("auto") | Ok("") | Err(_) => DensePath::Auto,
            Ok(other) => {
                return Err(Error::invalid(
                    "RECURRENT_CUDA_PATH",
                    format!(
                        "expected auto, step, persistent, wavefront or tensor-core, found {other:?}"
                    ),
                ))
            }
        };
        Ok(CudaDevice {
            inner: Arc::new(Inner {
                ctx,
                stream,
                rnn,
                conv,
                persist: std::sync::OnceLock::new(),
                limits,
                dense_path,
                poison: AtomicBool::new(false),
                sync_each_launch,
                placeholders: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> Result<String> {
        self.inner
            .ctx
            .name()
            .map_err(|e| cuda_err("cuDeviceGetName", e))
    }

    /// Which kernels run the dense layers' time loop by default on this device:
    /// [`DensePath::Auto`], or the environment's
    /// `RECURRENT_CUDA_PATH=auto|step|persistent|wavefront|tensor-core`
    /// read when the device was opened. [`crate::cuda::CudaLayer::with_dense_path`] overrides
    /// it per layer. Results agree within the f32 tolerance on every path except
    /// [`DensePath::TensorCore`] (see there).
    pub fn dense_path(&self) -> DensePath {
        self.inner.dense_path
    }

    pub(crate) fn limits(&self) -> DeviceLimits {
        self.inner.limits
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.ctx.ordinal()
    }

    /// Waits until every queued copy and kernel has finished; reports any asynchronous fault.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .stream
            .synchronize()
            .map_err(|e| cuda_err("synchronizing the stream", e))
    }

    /// Runs `work` (which queues kernels and copies on this device's stream) between two CUDA
    /// events and returns the GPU time between them in milliseconds; waits for the end event.
    pub fn time_ms(&self, work: impl FnOnce() -> Result<()>) -> Result<f64> {
        let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let ev = |what: &str| {
            self.inner
                .ctx
                .new_event(flags)
                .map_err(|e| cuda_err(&format!("creating the {what} event"), e))
        };
        let (start, end) = (ev("start")?, ev("end")?);
        start
            .record(&self.inner.stream)
            .map_err(|e| cuda_err("recording the start event", e))?;
        work()?;
        end.record(&self.inner.stream)
            .map_err(|e| cuda_err("recording the end event", e))?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(|e| cuda_err("reading the events' elapsed time", e))?;
        Ok(f64::from(ms))
    }

    /// With `true`, every output and scratch buffer that a forward pass allocates is filled with
    /// NaN before its kernels run, so that an element no kernel writes shows up as NaN (tests).
    pub fn set_poison(&self, on: bool) {
        self.inner.poison.store(on, Ordering::Relaxed);
    }

    /// Copies a host array to the device as an f32 tensor.
    pub fn upload(&self, a: ArrayViewD<f32>) -> Result<DeviceTensor> {
        self.upload_as(a, StorageType::F32)
    }

    /// Copies a host array to the device in storage type `dtype`: each element rounded to
    /// nearest-even f16 / bf16 on the host (the `half` crate), or kept as f32.
    pub fn upload_as(&self, a: ArrayViewD<f32>, dtype: StorageType) -> Result<DeviceTensor> {
        let shape = a.shape().to_vec();
        let std = a.as_standard_layout();
        let s = std.as_slice().ok_or_else(|| {
            Error::invalid(
                "upload",
                "internal: array not contiguous after as_standard_layout",
            )
        })?;
        let data = match dtype {
            StorageType::F32 => Buf::F32(self.upload_slice(s)?),
            StorageType::F16 => {
                let v: Vec<u16> = s
                    .iter()
                    .map(|&x| half::f16::from_f32(x).to_bits())
                    .collect();
                Buf::F16(self.upload_slice(&v)?)
            }
            StorageType::BF16 => {
                let v: Vec<u16> = s
                    .iter()
                    .map(|&x| half::bf16::from_f32(x).to_bits())
                    .collect();
                Buf::BF16(self.upload_slice(&v)?)
            }
        };
        Ok(DeviceTensor { data, shape })
    }

    /// Copies a device tensor to a new host array (f16 / bf16 elements widened exactly).
    pub fn download(&self, t: &DeviceTensor) -> Result<ArrayD<f32>> {
        let n = t.len();
        let v = match &t.data {
            Buf::F32(s) => self.download_slice(s, n)?,
            Buf::F16(s) => self
                .download_slice(s, n)?
                .into_iter()
                .map(|b| half::f16::from_bits(b).to_f32())
                .collect(),
            Buf::BF16(s) => self
                .download_slice(s, n)?
                .into_iter()
                .map(|b| half::bf16::from_bits(b).to_f32())
                .collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&t.shape), v)
            .map_err(|e| Error::invalid("download", e.to_string()))
    }

    /// An f32 device tensor of zeros.
    pub fn zeros(&self, shape: &[usize]) -> Result<DeviceTensor> {
        let n = shape.iter().product();
        Ok(DeviceTensor {
            data: Buf::F32(self.alloc_zeros(n)?),
            shape: shape.to_vec(),
        })
    }

    /// A copy of `t` on the device (same storage type).
    pub fn copy(&self, t: &DeviceTensor) -> Result<DeviceTensor> {
        let data = match &t.data {
            Buf::F32(s) => Buf::F32(self.copy_slice(s)?),
            Buf::F16(s) => Buf::F16(self.copy_slice(s)?),
            Buf::BF16(s) => Buf::BF16(self.copy_slice(s)?),
        };
        Ok(DeviceTensor {
            data,
            shape: t.shape.clone(),
        })
    }

    /// `t` in storage type `dtype`, converted on the device (round to nearest even into f16 /
    /// bf16, exact into f32); a copy when it already is.
    pub fn convert(&self, t: &DeviceTensor, dtype: StorageType) -> Result<DeviceTensor> {
        Ok(DeviceTensor {
            data: self.convert_buf(&t.data, dtype)?,
            shape: t.shape.clone(),
        })
    }

    // ---- crate-internal helpers

    pub(crate) fn upload_slice<T: cudarc::driver::DeviceRepr>(
        &self,
        s: &[T],
    ) -> Result<CudaSlice<T>> {
        if s.is_empty() {
            // A zero-length allocation is legal but some drivers refuse a zero-byte copy.
            return self
                .inner
                .stream
                .null()
                .map_err(|e| cuda_err("allocating an empty buffer", e));
        }
        self.inner
            .stream
            .clone_htod(s)
            .map_err(|e| cuda_err(&format!("copying {} elements to the device", s.len()), e))
    }

    /// The first `n` elements of `s` (buffers may be longer than their tensor: empty tensors
    /// keep a 1-element allocation).
    pub(crate) fn download_slice<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        s: &CudaSlice<T>,
        n: usize,
    ) -> Result<Vec<T>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > s.len() {
            return Err(Error::invalid(
                "download",
                format!("internal: {n} elements asked of a buffer of {}", s.len()),
            ));
        }
        let v = self
            .inner
            .stream
            .clone_dtoh(&s.slice(0..n))
            .map_err(|e| cuda_err(&format!("copying {n} elements to the host"), e))?;
        // The copy is queued on the stream: wait for it (and report faults of earlier kernels).
        self.synchronize()?;
        Ok(v)
    }

    pub(crate) fn alloc_zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>> {
        self.inner
            .stream
            .alloc_zeros(n.max(1))
            .map_err(|e| cuda_err(&format!("allocating {n} elements"), e))
    }

    /// The device address of `s`, for kernel arguments that carry pointers inside a struct
    /// (the wavefront's `WaveArgs`). Valid while `s` lives; event tracking is off (one stream),
    /// so the returned guard records nothing.
    pub(crate) fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        use cudarc::driver::DevicePtr;
        let (p, _guard) = s.device_ptr(&self.inner.stream);
        p
    }

    /// The device address of a [`Buf`] (see [`CudaDevice::ptr`]).
    pub(crate) fn buf_ptr(&self, b: &Buf) -> u64 {
        match b {
            Buf::F32(s) => self.ptr(s),
            Buf::F16(s) | Buf::BF16(s) => self.ptr(s),
        }
    }

    /// A buffer that kernels or copies will overwrite completely before anything reads it:
    /// left uninitialised (no clearing pass per layer call), or filled with NaN when poisoning
    /// (the GPU tests: an element read before it is written shows up as NaN in the results).
    pub(crate) fn alloc_out(&self, n: usize) -> Result<CudaSlice<f32>> {
        if self.inner.poison.load(Ordering::Relaxed) {
            let mut s = self.alloc_zeros::<f32>(n)?;
            self.fill(&mut s, f32::NAN)?;
            return Ok(s);
        }
        // SAFETY: every caller writes all `n` elements (a projection GEMM, the step kernels'
        // h_next / sequence / scratch outputs, a copy) before any kernel or copy reads them, on
        // this one stream; any f32 bit pattern is a valid value, so even a read of an unwritten
        // element would be a wrong number, not undefined behaviour on the host. The poisoned
        // GPU test runs check the "written before read" part.
        unsafe { self.inner.stream.alloc::<f32>(n.max(1)) }
            .map_err(|e| cuda_err(&format!("allocating {n} elements"), e))
    }

    fn placeholders(&self) -> Result<&Placeholders> {
        if let Some(p) = self.inner.placeholders.get() {
            return Ok(p);
        }
        let p = Placeholders {
            f32: self.alloc_zeros(1)?,
            u8: self.alloc_zeros(1)?,
            barrier: self.alloc_zeros(2)?,
            w: [
                Buf::F32(self.alloc_zeros(1)?),
                Buf::F16(self.alloc_zeros(1)?),
                Buf::BF16(self.alloc_zeros(1)?),
            ],
        };
        // Two threads may make them at once; either set serves.
        Ok(self.inner.placeholders.get_or_init(|| p))
    }

    /// The shared one-element f32 placeholder for an absent optional buffer argument (an
    /// output the kernel is told not to write, a state the cell does not have).
    pub(crate) fn placeholder_f32(&self) -> Result<&CudaSlice<f32>> {
        Ok(&self.placeholders()?.f32)
    }

    /// The device's grid-barrier words for the persistent kernels (two u32, written by the
    /// kernels; every launch on this device's one stream reuses them in turn).
    pub(crate) fn grid_barrier(&self) -> Result<&CudaSlice<u32>> {
        Ok(&self.placeholders()?.barrier)
    }

    /// The shared one-element u8 placeholder (an absent mask).
    pub(crate) fn placeholder_u8(&self) -> Result<&CudaSlice<u8>> {
        Ok(&self.placeholders()?.u8)
    }

    /// The shared one-element placeholder of storage type `dt` (an absent bias).
    pub(crate) fn placeholder(&self, dt: StorageType) -> Result<&Buf> {
        let w = &self.placeholders()?.w;
        Ok(match dt {
            StorageType::F32 => &w[0],
            StorageType::F16 => &w[1],
            StorageType::BF16 => &w[2],
        })
    }

    pub(crate) fn copy_slice<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        s: &CudaSlice<T>,
    ) -> Result<CudaSlice<T>> {
        if s.is_empty() {
            return self.alloc_zeros::<T>(0);
        }
        // SAFETY: the copy below overwrites all `s.len()` elements before anything can read
        // them (same stream); `T: ValidAsZeroBits + DeviceRepr` are plain numbers.
        let mut d = unsafe { self.inner.stream.alloc::<T>(s.len()) }
            .map_err(|e| cuda_err(&format!("allocating {} elements", s.len()), e))?;
        self.inner
            .stream
            .memcpy_dtod(s, &mut d)
            .map_err(|e| cuda_err("copying a device buffer", e))?;
        Ok(d)
    }

    /// `s[..] = v` with the `fill_f32` kernel.
    pub(crate) fn fill(&self, s: &mut CudaSlice<f32>, v: f32) -> Result<()> {
        let n = s.len() as i64;
        let f = self.function(Module::Rnn, "fill_f32")?;
        let blocks = (s.len().div_ceil(256)).clamp(1, 4096) as u32;
        let mut l = self.launcher(&f);
        l.arg(&n).arg(&v).arg(s);
        self.launch(l, "fill_f32", grid1(blocks, 256))
    }

    /// `b` widened to a new f32 buffer (a copy when it is f32).
    pub(crate) fn to_f32(&self, b: &Buf) -> Result<CudaSlice<f32>> {
        let (src, name) = match b {
            Buf::F32(s) => return self.copy_slice(s),
            Buf::F16(s) => (s, "convert_f16_to_f32"),
            Buf::BF16(s) => (s, "convert_bf16_to_f32"),
        };
        let mut d = self.alloc_out(src.len())?;
        let n = to_i64(src.len(), "elements")?;
        let f = self.function(Module::Rnn, name)?;
        let blocks = src.len().div_ceil(256).clamp(1, 4096) as u32;
        // convert_*_to_f32(long long n, const u16* src, float* dst)
        let mut l = self.launcher(&f);
        l.arg(&n).arg(src).arg(&mut d);
        self.launch(l, name, grid1(blocks, 256))?;
        Ok(d)
    }

    /// The f32 buffer `s` in storage type `dtype` (moved as is for f32, else rounded on the
    /// device into a new buffer).
    pub(crate) fn narrow(&self, s: CudaSlice<f32>, dtype: StorageType) -> Result<Buf> {
        let name = match dtype {
            StorageType::F32 => return Ok(Buf::F32(s)),
            StorageType::F16 => "convert_f32_to_f16",
            StorageType::BF16 => "convert_f32_to_bf16",
        };
        let mut d = self.alloc_zeros::<u16>(s.len())?;
        let n = to_i64(s.len(), "elements")?;
        let f = self.function(Module::Rnn, name)?;
        let blocks = s.len().div_ceil(256).clamp(1, 4096) as u32;
        // convert_f32_to_*(long long n, const float* src, u16* dst)
        let mut l = self.launcher(&f);
        l.arg(&n).arg(&s).arg(&mut d);
        self.launch(l, name, grid1(blocks, 256))?;
        Ok(match dtype {
            StorageType::F16 => Buf::F16(d),
            _ => Buf::BF16(d),
        })
    }

    /// `b` in storage type `dtype` (through f32; a copy when it already is).
    pub(crate) fn convert_buf(&self, b: &Buf, dtype: StorageType) -> Result<Buf> {
        if b.dtype() == dtype {
            return Ok(match b {
                Buf::F32(s) => Buf::F32(self.copy_slice(s)?),
                Buf::F16(s) => Buf::F16(self.copy_slice(s)?),
                Buf::BF16(s) => Buf::BF16(self.copy_slice(s)?),
            });
        }
        let wide = self.to_f32(b)?;
        self.narrow(wide, dtype)
    }

    /// A kernel of `module` by its `extern "C"` name.
    pub(crate) fn function(&self, module: Module, name: &str) -> Result<CudaFunction> {
        let m = match module {
            Module::Rnn => &self.inner.rnn,
            Module::Conv => &self.inner.conv,
            Module::Persist => match self.inner.persist.get() {
                Some(m) => m,
                None => {
                    let m = self
                        .inner
                        .ctx
                        .load_module(image(PERSIST_BIN))
                        .map_err(|e| {
                            cuda_err("loading the kernels of kernels/rnn_persistent.cu", e)
                        })?;
                    // Two threads may load it at once; either module serves.
                    self.inner.persist.get_or_init(|| m)
                }
            },
        };
        m.load_function(name)
            .map_err(|e| cuda_err(&format!("kernel `{name}` not found in its module"), e))
    }

    /// A launch builder for `f` on the device's stream.
    pub(crate) fn launcher<'a>(&'a self, f: &'a CudaFunction) -> LaunchArgs<'a> {
        self.inner.stream.launch_builder(f)
    }

    /// Launches a prepared kernel; skips launches with an empty grid (nothing to compute).
    pub(crate) fn launch(
        &self,
        mut l: LaunchArgs<'_>,
        name: &str,
        cfg: LaunchConfig,
    ) -> Result<()> {
        let (g, b) = (cfg.grid_dim, cfg.block_dim);
        if g.0 == 0 || g.1 == 0 || g.2 == 0 || b.0 == 0 {
            return Ok(());
        }
        // SAFETY: every call site pushes exactly the arguments of the kernel's `extern "C"`
        // signature, in order and with the matching types (i32 = int, i64 = long long, f32 =
        // float, &CudaSlice<T> or &mut CudaSlice<T> = const T* / T*: both push the device
        // address; an output may be pushed by shared reference, as the shared placeholders are,
        // because event tracking is off and every buffer lives on this one stream), documented
        // next to each launch; every buffer is at least as long as the index range the kernel
        // touches for the sizes passed (checked by the callers).
        unsafe { l.launch(cfg) }.map_err(|e| cuda_err(&format!("launching kernel `{name}`"), e))?;
        self.after_launch(name)
    }

    /// With `RECURRENT_CUDA_SYNC=1`, waits for the kernel just launched and names it in any
    /// fault.
    fn after_launch(&self, name: &str) -> Result<()> {
        if self.inner.sync_each_launch {
            self.inner
                .stream
                .synchronize()
                .map_err(|e| cuda_err(&format!("kernel `{name}` failed"), e))?;
        }
        Ok(())
    }
}

impl CudaDevice {
    /// Launches a prepared kernel cooperatively (all blocks co-resident, as grid barriers
    /// need). [`Launched::Refused`] when the driver refused the launch itself (nothing ran: a
    /// grid that cannot be co-resident, ...); an `Err` for anything after the kernel started
    /// (a fault reported with `RECURRENT_CUDA_SYNC=1`), when its outputs may be half written.
    pub(crate) fn launch_cooperative(
        &self,
        mut l: LaunchArgs<'_>,
        name: &str,
        cfg: LaunchConfig,
    ) -> Result<Launched> {
        // SAFETY: as in `launch`: the call site pushes exactly the kernel's parameters with
        // matching types, every buffer covers the index range the kernel touches, and all
        // buffers are used on this one stream. The cooperative launch adds only the
        // co-residency requirement, which the driver checks (an error, not undefined behaviour).
        if let Err(e) = unsafe { l.launch_cooperative(cfg) } {
            return Ok(Launched::Refused(cuda_err(
                &format!("launching kernel `{name}` (cooperative)"),
                e,
            )));
        }
        self.after_launch(name)?;
        Ok(Launched::Ran)
    }
}

/// What became of a cooperative launch.
#[derive(Debug)]
pub(crate) enum Launched {
    /// Queued (and, with `RECURRENT_CUDA_SYNC=1`, finished without a fault).
    Ran,
    /// The driver refused it; nothing ran.
    Refused(Error),
}

/// A 1-D launch.
pub(crate) fn grid1(blocks: u32, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A device buffer in one of the storage types (f16 / bf16 as their 16-bit patterns).
pub(crate) enum Buf {
    F32(CudaSlice<f32>),
    F16(CudaSlice<u16>),
    BF16(CudaSlice<u16>),
}

impl Buf {
    /// The storage type.
    pub(crate) fn dtype(&self) -> StorageType {
        match self {
            Buf::F32(_) => StorageType::F32,
            Buf::F16(_) => StorageType::F16,
            Buf::BF16(_) => StorageType::BF16,
        }
    }

    /// The allocation's length in elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Buf::F32(s) => s.len(),
            Buf::F16(s) | Buf::BF16(s) => s.len(),
        }
    }
}

/// Pushes a [`Buf`] as a kernel's `const T*` argument (T = float, __half, __nv_bfloat16).
pub(crate) trait PushBuf<'a> {
    fn buf(&mut self, b: &'a Buf) -> &mut Self;
}

impl<'a> PushBuf<'a> for LaunchArgs<'a> {
    fn buf(&mut self, b: &'a Buf) -> &mut Self {
        match b {
            Buf::F32(s) => self.arg(s),
            Buf::F16(s) | Buf::BF16(s) => self.arg(s),
        }
    }
}

/// A tensor in device memory, row-major, with its shape and storage type (f32, or f16 / bf16:
/// see [`CudaDevice::upload_as`]).
///
/// Layer outputs stay on the device as these, so that layers can be chained without host round
/// trips ([`crate::cuda::CudaLayer::forward_device`]).
pub struct DeviceTensor {
    pub(crate) data: Buf,
    pub(crate) shape: Vec<usize>,
}

impl std::fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTensor")
            .field("shape", &self.shape)
            .field("dtype", &self.data.dtype())
            .finish()
    }
}

impl DeviceTensor {
    /// The storage type of the elements.
    pub fn dtype(&self) -> StorageType {
        self.data.dtype()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(self, shape: &[usize]) -> Result<DeviceTensor> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(Error::invalid(
                "reshape",
                format!(
                    "cannot reshape {} elements {:?} to {:?}",
                    self.len(),
                    self.shape,
                    shape
                ),
            ));
        }
        Ok(DeviceTensor {
            data: self.data,
            shape: shape.to_vec(),
        })
    }
}

/// Helpers for building launches: checked integer conversions.
pub(crate) fn to_i32(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::invalid(what, format!("{v} does not fit the kernels' 32-bit index")))
}

pub(crate) fn to_i64(v: usize, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, format!("{v} does not fit a 64-bit index")))
}
