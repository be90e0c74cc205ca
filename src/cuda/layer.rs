//! [`CudaLayer`]: a built layer's weights on the device, run with the CPU path's exact call
//! semantics (options, masks, initial and stateful states, errors).

use crate::config::{DataFormat, SequenceOptions};
use crate::cuda::conv::{self, ConvSpec, DeviceConv};
use crate::cuda::dense::{self, upload_mask, DeviceCell, SeqSpec};
use crate::cuda::device::{
    grid1, to_i32, to_i64, Buf, CudaDevice, DensePath, DeviceTensor, Module,
};
use crate::error::fmt_shape;
use crate::keras::{KerasChain, KerasLayer, StorageType};
use crate::layers::bidirectional::name_direction;
use crate::layers::cells::check_shape;
use crate::layers::core::{flatten_state, Carry};
use crate::layers::{
    Bidirectional, CallArgs, ConvLSTM2D, CuDNNGRU, CuDNNLSTM, MergeMode, Output, SimpleRNN, GRU,
    LSTM, RNN,
};
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, PushKernelArg};
use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Ix2};

/// The words that mark a layer class the CUDA path does not run (tests and scripts look for
/// them to report such cases as skipped, not failed). Every Keras class `recurrent` loads runs
/// on the GPU today; user-defined cells are refused with their own message.
pub const NO_CUDA_PATH: &str = "has no CUDA path yet";

/// A layer's outputs left on the device.
#[derive(Debug)]
pub struct DeviceOutput {
    /// As [`Output::output`].
    pub output: DeviceTensor,
    /// As [`Output::states`] (flattened in Keras's order, the user's layout).
    pub states: Vec<DeviceTensor>,
}

impl DeviceOutput {
    /// Copies everything to the host.
    pub fn to_host(&self, dev: &CudaDevice) -> Result<Output> {
        Ok(Output {
            output: dev.download(&self.output)?,
            states: self
                .states
                .iter()
                .map(|s| dev.download(s))
                .collect::<Result<Vec<_>>>()?,
        })
    }
}

enum Kind {
    Dense {
        cells: Vec<DeviceCell>,
        names: Vec<String>,
        widths: Vec<usize>,
        /// CuDNN layers refuse masks, as in Keras; the class name for the message.
        refuse_mask: Option<&'static str>,
    },
    Conv(Box<DeviceConv>),
    Bidi(Box<BidiLayer>),
}

/// `Bidirectional`: the two directions as layers of their own, and the merge.
struct BidiLayer {
    fwd: CudaLayer,
    bwd: CudaLayer,
    merge: MergeMode,
}

/// The states a stateful layer carries between calls, on the device (internal layout:
/// `(batch, width)` rows; ConvLSTM2D channels-last).
#[derive(Default)]
struct DeviceCarry {
    batch: Option<usize>,
    /// `(state, width)`; `None` means zeros.
    states: Option<Vec<(CudaSlice<f32>, usize)>>,
}

/// The initial states of one call, before the stateful carry is consulted.
enum Given {
    None,
    /// Validated, internal layout, owned by the call.
    Device(Vec<CudaSlice<f32>>),
    /// Bidirectional: the forward layer's, the backward layer's.
    Pair(Box<Given>, Box<Given>),
}

/// A recurrent layer on a CUDA device: the weights of a built [`SimpleRNN`], [`GRU`],
/// [`LSTM`], [`CuDNNGRU`], [`CuDNNLSTM`], [`RNN`] over built-in cells or [`ConvLSTM2D`],
/// uploaded once, run with the same [`SequenceOptions`], masks, `initial_state` and errors as
/// the CPU layer's `forward`.
///
/// A stateful layer keeps its carried states on the device, in this object: they start as
/// zeros (like a freshly built layer) whatever the CPU layer carried, and
/// [`CudaLayer::reset_states`] / [`CudaLayer::reset_states_to`] work as on the CPU layer.
/// User-defined cells are CPU-only: building from an `RNN` that holds one is an error.
///
/// Storage type ([`CudaLayer::into_dtype`]): f32 by default. With f16 / bf16 the weights live
/// on the device in that type (rounded to nearest even), inputs and initial states are taken
/// in it (host arrays are rounded on upload) and outputs and returned states are produced in
/// it; the recurrent state between steps, the projection and all arithmetic stay f32. That is
/// the CPU path's `--dtype f16` / `bf16` semantics (`StorageType`): results agree with the CPU
/// layer run on the same rounded weights and inputs within f32 tolerance plus one rounding of
/// the output, `1e-5 + (1e-4 + 2^-10) |ref|` for f16 and `1e-5 + (1e-4 + 2^-7) |ref|` for bf16.
pub struct CudaLayer {
    dev: CudaDevice,
    class: &'static str,
    options: SequenceOptions,
    kind: Kind,
    carry: DeviceCarry,
    dtype: StorageType,
    /// Dense time-loop path; `None`: the device's default.
    path: Option<DensePath>,
    /// The kernels that ran each dense cell's time loop in the last call.
    last_paths: Vec<DensePath>,
    /// TF32 tensor cores allowed for f32 products ([`CudaLayer::with_tf32`]).
    tf32: bool,
    /// `Auto` may run the steps on tensor cores ([`CudaLayer::with_tensor_core_steps`]).
    tc_steps: bool,
}

impl std::fmt::Debug for CudaLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaLayer")
            .field("class", &self.class)
            .field("options", &self.options)
            .finish()
    }
}

impl CudaLayer {
    fn from_rnn_as(
        dev: &CudaDevice,
        rnn: &RNN,
        class: &'static str,
        refuse_mask: Option<&'static str>,
    ) -> Result<Self> {
        let cells = rnn
            .cells()
            .iter()
            .enumerate()
            .map(|(k, c)| DeviceCell::from_any(dev, c, k, StorageType::F32))
            .collect::<Result<Vec<_>>>()?;
        let widths = rnn.cells().iter().flat_map(|c| c.state_size()).collect();
        Ok(CudaLayer {
            dev: dev.clone(),
            class,
            options: *rnn.options(),
            kind: Kind::Dense {
                cells,
                names: rnn.state_names(),
                widths,
                refuse_mask,
            },
            carry: DeviceCarry::default(),
            dtype: StorageType::F32,
            path: None,
            last_paths: Vec::new(),
            tf32: false,
            tc_steps: false,
        })
    }

    /// An `RNN` over built-in cells (one or a stack).
    pub fn from_rnn(dev: &CudaDevice, rnn: &RNN) -> Result<Self> {
        Self::from_rnn_as(dev, rnn, "RNN", None)
    }

    /// A `SimpleRNN`.
    pub fn simple_rnn(dev: &CudaDevice, layer: &SimpleRNN) -> Result<Self> {
        Self::from_rnn_as(dev, layer.as_rnn(), "SimpleRNN", None)
    }

    /// A `GRU` (either `reset_after`).
    pub fn gru(dev: &CudaDevice, layer: &GRU) -> Result<Self> {
        Self::from_rnn_as(dev, layer.as_rnn(), "GRU", None)
    }

    /// An `LSTM`.
    pub fn lstm(dev: &CudaDevice, layer: &LSTM) -> Result<Self> {
        Self::from_rnn_as(dev, layer.as_rnn(), "LSTM", None)
    }

    /// A `CuDNNLSTM` (run through its equivalent plain LSTM cell; masks refused).
    pub fn cudnn_lstm(dev: &CudaDevice, layer: &CuDNNLSTM) -> Result<Self> {
        Self::from_rnn_as(dev, layer.as_rnn(), "CuDNNLSTM", Some("CuDNNLSTM"))
    }

    /// A `CuDNNGRU` (run through its equivalent plain GRU cell; masks refused).
    pub fn cudnn_gru(dev: &CudaDevice, layer: &CuDNNGRU) -> Result<Self> {
        Self::from_rnn_as(dev, layer.as_rnn(), "CuDNNGRU", Some("CuDNNGRU"))
    }

    /// A `ConvLSTM2D`.
    pub fn conv_lstm2d(dev: &CudaDevice, layer: &ConvLSTM2D) -> Result<Self> {
        Ok(CudaLayer {
            dev: dev.clone(),
            class: "ConvLSTM2D",
            options: layer.config().sequence,
            kind: Kind::Conv(Box::new(DeviceConv::new(dev, layer, StorageType::F32)?)),
            carry: DeviceCarry::default(),
            dtype: StorageType::F32,
            path: None,
            last_paths: Vec::new(),
            tf32: false,
            tc_steps: false,
        })
    }

    /// Any layer `recurrent run` loads.
    pub fn from_keras(dev: &CudaDevice, layer: &KerasLayer) -> Result<Self> {
        match layer {
            KerasLayer::SimpleRNN(l) => Self::simple_rnn(dev, l),
            KerasLayer::GRU(l) => Self::gru(dev, l),
            KerasLayer::LSTM(l) => Self::lstm(dev, l),
            KerasLayer::ConvLSTM2D(l) => Self::conv_lstm2d(dev, l),
            KerasLayer::CuDNNGRU(l) => Self::cudnn_gru(dev, l),
            KerasLayer::CuDNNLSTM(l) => Self::cudnn_lstm(dev, l),
            KerasLayer::RNN(l) => Self::from_rnn(dev, l),
            KerasLayer::Bidirectional(l) => Self::bidirectional(dev, l),
        }
    }

    /// A `Bidirectional` around any of the others: both directions on the device, the
    /// backward output reversed in time, masked steps zeroed (Keras's zero_output_for_mask,
    /// not for ConvLSTM2D) and the merge in one kernel (f32, before the storage type's one
    /// rounding). States: the forward layer's, then the backward layer's.
    pub fn bidirectional(dev: &CudaDevice, layer: &Bidirectional) -> Result<Self> {
        let fwd = Self::from_keras(dev, layer.forward_layer())?;
        let bwd = Self::from_keras(dev, layer.backward_layer())?;
        Ok(CudaLayer {
            dev: dev.clone(),
            class: "Bidirectional",
            options: *fwd.options(),
            kind: Kind::Bidi(Box::new(BidiLayer {
                fwd,
                bwd,
                merge: layer.merge_mode(),
            })),
            carry: DeviceCarry::default(),
            dtype: StorageType::F32,
            path: None,
            last_paths: Vec::new(),
            tf32: false,
            tc_steps: false,
        })
    }

    /// Any layer `recurrent run` loads, with weights, inputs and outputs in storage type `dtype`.
    pub fn from_keras_as(dev: &CudaDevice, layer: &KerasLayer, dtype: StorageType) -> Result<Self> {
        Self::from_keras(dev, layer)?.into_dtype(dtype)
    }

    /// The same layer in storage type `dtype` (see the type's docs): the weights converted on
    /// the device (round to nearest even, as the `half` crate does on the host). A stateful
    /// layer's carried states (kept in f32) go with it.
    ///
    /// From f16 to bf16 or back is refused (it would round rounded weights again): convert the
    /// f32 layer. Back to f32 is exact.
    pub fn into_dtype(mut self, dtype: StorageType) -> Result<Self> {
        if dtype == self.dtype {
            return Ok(self);
        }
        if self.dtype != StorageType::F32 && dtype != StorageType::F32 {
            return Err(Error::invalid(
                "dtype",
                format!(
                    "expected a conversion from f32 (this layer is {}, {} asked); build the {} layer from the f32 one",
                    self.dtype.name(),
                    dtype.name(),
                    dtype.name()
                ),
            ));
        }
        let dev = self.dev.clone();
        if let Kind::Bidi(bi) = self.kind {
            let BidiLayer { fwd, bwd, merge } = *bi;
            self.kind = Kind::Bidi(Box::new(BidiLayer {
                fwd: fwd.into_dtype(dtype)?,
                bwd: bwd.into_dtype(dtype)?,
                merge,
            }));
            self.dtype = dtype;
            return Ok(self);
        }
        self.kind = match &self.kind {
            Kind::Dense {
                cells,
                names,
                widths,
                refuse_mask,
            } => Kind::Dense {
                cells: cells
                    .iter()
                    .map(|c| c.converted(&dev, dtype))
                    .collect::<Result<Vec<_>>>()?,
                names: names.clone(),
                widths: widths.clone(),
                refuse_mask: *refuse_mask,
            },
            Kind::Conv(c) => Kind::Conv(Box::new(c.converted(&dev, dtype)?)),
            Kind::Bidi(_) => {
                return Err(Error::invalid(
                    "layer",
                    "internal: Bidirectional handled above",
                ))
            }
        };
        self.dtype = dtype;
        Ok(self)
    }

    /// `f` applied to both directions of a Bidirectional; other layers as they are.
    fn map_directions(mut self, f: impl Fn(CudaLayer) -> CudaLayer) -> Self {
        if let Kind::Bidi(bi) = self.kind {
            let BidiLayer { fwd, bwd, merge } = *bi;
            self.kind = Kind::Bidi(Box::new(BidiLayer {
                fwd: f(fwd),
                bwd: f(bwd),
                merge,
            }));
        }
        self
    }

    /// The same layer with its time loops forced to `path` (benchmarks, tests): the persistent
    /// kernel where its plan fits, the step kernels, a stack's cells side by side (wavefront),
    /// or (f16 / bf16) the step kernels' tensor-core variants.
    /// ConvLSTM2D has step and tensor-core steps (no persistent kernel); a Bidirectional passes
    /// the path to both directions.
    pub fn with_dense_path(mut self, path: DensePath) -> Self {
        self = self.map_directions(|l| l.with_dense_path(path));
        self.path = Some(path);
        self
    }

    /// f32 layers: allow TF32 tensor cores (as PyTorch's `allow_tf32`), which round both
    /// operands of a product to TF32's 10-bit mantissa (about 3 decimal digits, so results
    /// leave the f32 tolerance): every input projection and ConvLSTM2D input convolution,
    /// and the steps too with [`DensePath::TensorCore`]. Off by default; no effect on f16 /
    /// bf16 layers. A Bidirectional passes it to both directions.
    pub fn with_tf32(mut self, allow: bool) -> Self {
        self = self.map_directions(|l| l.with_tf32(allow));
        self.tf32 = allow;
        self
    }

    /// Lets [`DensePath::Auto`] run the recurrent product of each step on tensor cores where
    /// its cost model estimates them faster (large batches; the persistent kernel still wins
    /// small ones): f16 / bf16 layers then round h (and GRU's `r * h`) to the storage type for
    /// that product, as cuDNN's half-precision RNNs do, so results leave the CPU path's
    /// `--dtype` semantics by that rounding (the tolerance of [`DensePath::TensorCore`]);
    /// f32 layers need [`CudaLayer::with_tf32`] too. ConvLSTM2D takes its tensor-core step
    /// wherever a 64-row tile fills (batch x pixels >= 64). Off by default: `Auto` keeps h in
    /// f32. A Bidirectional passes it to both directions.
    pub fn with_tensor_core_steps(mut self, allow: bool) -> Self {
        self = self.map_directions(|l| l.with_tensor_core_steps(allow));
        self.tc_steps = allow;
        self
    }

    /// The kernels that ran each cell's time loop in the last call, in cell order
    /// ([`DensePath::Step`], [`DensePath::Persistent`], [`DensePath::Wavefront`] or
    /// [`DensePath::TensorCore`]; a Bidirectional's forward cells, then its backward ones;
    /// ConvLSTM2D's one cell runs Step or TensorCore; empty before the first call).
    pub fn last_dense_paths(&self) -> Vec<DensePath> {
        match &self.kind {
            Kind::Bidi(bi) => {
                let mut v = bi.fwd.last_dense_paths();
                v.extend(bi.bwd.last_dense_paths());
                v
            }
            _ => self.last_paths.clone(),
        }
    }

    /// The storage type of weights, inputs and outputs.
    pub fn dtype(&self) -> StorageType {
        self.dtype
    }

    /// The Keras class name of the layer this was built from.
    pub fn class_name(&self) -> &'static str {
        self.class
    }

    /// The sequence options.
    pub fn options(&self) -> &SequenceOptions {
        &self.options
    }

    /// The device.
    pub fn device(&self) -> &CudaDevice {
        &self.dev
    }

    /// Names of the flattened states (`h`, `c`, `cells.0.h`, ...).
    pub fn state_names(&self) -> Vec<String> {
        match &self.kind {
            Kind::Dense { names, .. } => names.clone(),
            Kind::Conv(_) => vec!["h".into(), "c".into()],
            Kind::Bidi(bi) => {
                let f = bi.fwd.state_names();
                let b = bi.bwd.state_names();
                f.iter()
                    .map(|n| format!("forward.{n}"))
                    .chain(b.iter().map(|n| format!("backward.{n}")))
                    .collect()
            }
        }
    }

    /// Keras `reset_states()`: the next call of a stateful layer starts from zeros.
    pub fn reset_states(&mut self) {
        self.carry.states = None;
        if let Kind::Bidi(bi) = &mut self.kind {
            bi.fwd.reset_states();
            bi.bwd.reset_states();
        }
    }

    /// Keras `reset_states(states)`: the next call starts from `states`, shaped as the CPU
    /// layer's `reset_states_to` takes them (`(batch, width)` each; ConvLSTM2D
    /// `(batch, rows, cols, filters)` or channels-first).
    pub fn reset_states_to(&mut self, mut states: Vec<ArrayD<f32>>) -> Result<()> {
        let names_all = self.state_names();
        let (flat, widths, names) = match &mut self.kind {
            Kind::Bidi(bi) => {
                // The forward layer's states, then the backward layer's.
                let nf = bi.split_states(states.len(), &names_all)?;
                let back = states.split_off(nf);
                bi.fwd
                    .reset_states_to(states)
                    .map_err(|e| name_direction("forward", e))?;
                return bi
                    .bwd
                    .reset_states_to(back)
                    .map_err(|e| name_direction("backward", e));
            }
            Kind::Dense { widths, names, .. } => {
                let mut flat = Vec::new();
                for (k, a) in states.into_iter().enumerate() {
                    let shape = a.shape().to_vec();
                    let name = names.get(k).cloned().unwrap_or_else(|| format!("s{k}"));
                    let a = a.into_dimensionality::<Ix2>().map_err(|_| {
                        Error::shape(format!("reset_states {name}"), "(batch, width)", &shape)
                    })?;
                    flat.push(a);
                }
                (flat, widths.clone(), names.clone())
            }
            Kind::Conv(c) => {
                let cf = c.config.data_format == DataFormat::ChannelsFirst;
                let f = c.config.filters;
                let names = vec!["h".to_string(), "c".to_string()];
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
                    flat.push(flatten_state(n, &v.to_owned(), &shape)?);
                }
                let w = flat.first().map(|a| a.ncols()).unwrap_or(0);
                (flat, vec![w, w], names)
            }
        };
        // The CPU layer's checks and messages, on a scratch host carry.
        let mut check = Carry {
            batch: self.carry.batch,
            states: None,
        };
        check.reset(Some(flat), &widths, &names)?;
        let flat = check.states.unwrap_or_default();
        let mut dev_states = Vec::with_capacity(flat.len());
        for (a, w) in flat.iter().zip(&widths) {
            dev_states.push((upload2(&self.dev, a, self.dtype)?, *w));
        }
        self.carry.batch = check.batch;
        self.carry.states = Some(dev_states);
        Ok(())
    }

    /// Runs the layer on host arrays, as the CPU layer's `forward` does.
    ///
    /// * `x`: `(batch, time, features)` (`(time, batch, features)` with `time_major`);
    ///   ConvLSTM2D: `(batch, time, rows, cols, channels)` or channels-first; rounded to the
    ///   layer's storage type on upload
    /// * `args`: mask `(batch, time)`, initial states as the CPU layer takes them (rounded to
    ///   the storage type); `constants` are refused (no built-in cell takes them).
    ///
    /// A `Bidirectional` returns what [`crate::layers::Bidirectional::forward_stacked`] does.
    pub fn forward(&mut self, x: ArrayViewD<f32>, args: &CallArgs) -> Result<Output> {
        self.check_bidi_state_count(args.initial_state.map(<[ArrayD<f32>]>::len))?;
        self.check_call(x.shape(), args.mask.is_some(), !args.constants.is_empty())?;
        let given = self.host_given(x.shape(), args.initial_state)?;
        let x_dev = self.dev.upload_as(x, self.dtype)?;
        let out = self.run(&x_dev, args.mask, given)?;
        out.to_host(&self.dev)
    }

    /// Runs the layer on a device tensor and leaves the results on the device (layers chain
    /// without host round trips). Same shapes and checks as [`CudaLayer::forward`];
    /// `initial_state` tensors are in the user's layout (not consumed). `x` and the initial
    /// states must be in the layer's storage type ([`CudaLayer::dtype`]); the outputs are.
    pub fn forward_device(
        &mut self,
        x: &DeviceTensor,
        mask: Option<ArrayView2<bool>>,
        initial_state: Option<&[DeviceTensor]>,
    ) -> Result<DeviceOutput> {
        self.check_bidi_state_count(initial_state.map(<[DeviceTensor]>::len))?;
        self.check_call(x.shape(), mask.is_some(), false)?;
        check_dtype("input", x, self.dtype)?;
        let given = self.device_given(x.shape(), initial_state)?;
        self.run(x, mask, given)
    }

    /// Bidirectional: a wrong number of initial states is the first error, as on the CPU.
    fn check_bidi_state_count(&self, n: Option<usize>) -> Result<()> {
        if let (Kind::Bidi(bi), Some(n)) = (&self.kind, n) {
            bi.split_states(n, &self.state_names())?;
        }
        Ok(())
    }

    /// The input checks that come before the states' (the CPU layer's order and messages).
    fn check_call(&self, shape: &[usize], has_mask: bool, has_constants: bool) -> Result<()> {
        match &self.kind {
            Kind::Dense {
                cells, refuse_mask, ..
            } => {
                let tm = self.options.time_major;
                dense_dims(shape, tm)?;
                if let Some(class) = refuse_mask {
                    if has_mask {
                        return Err(cudnn_mask_error(class));
                    }
                }
                check_dense_input(shape, tm, first_input(cells)?)?;
                if has_constants {
                    return Err(Error::invalid(
                        "constants",
                        "no cell of this RNN accepts constants",
                    ));
                }
                Ok(())
            }
            Kind::Conv(c) => conv_dims(c, shape).map(|_| ()),
            Kind::Bidi(bi) => {
                bi.fwd.check_call(shape, has_mask, has_constants)?;
                bi.bwd.check_call(shape, has_mask, has_constants)
            }
        }
    }

    /// Host initial states, checked and uploaded in the internal layout.
    fn host_given(&self, shape: &[usize], init: Option<&[ArrayD<f32>]>) -> Result<Given> {
        let Some(g) = init else {
            return Ok(Given::None);
        };
        match &self.kind {
            Kind::Dense { names, widths, .. } => {
                let (batch, _, _) = dense_dims(shape, self.options.time_major)?;
                check_state_count(g.len(), widths, names)?;
                let mut v = Vec::with_capacity(g.len());
                for ((a, w), n) in g.iter().zip(widths).zip(names) {
                    let flat = flatten_state(n, a, &[batch, *w])?;
                    v.push(upload2(&self.dev, &flat, self.dtype)?);
                }
                Ok(Given::Device(v))
            }
            Kind::Conv(c) => {
                let d = conv_dims(c, shape)?;
                check_conv_state_count(g.len())?;
                let mut v = Vec::new();
                for (a, n) in g.iter().zip(["h", "c"]) {
                    check_state_shape(n, a.shape(), &d.state_shape)?;
                    let a = if d.cf {
                        a.view().permuted_axes(vec![0, 2, 3, 1])
                    } else {
                        a.view()
                    };
                    let flat = flatten_state(n, &a.to_owned(), &[d.b, d.orow, d.ocol, d.f])?;
                    v.push(upload2(&self.dev, &flat, self.dtype)?);
                }
                Ok(Given::Device(v))
            }
            Kind::Bidi(bi) => bi.split_given(g, &self.state_names(), |l, part| {
                l.host_given(shape, Some(part))
            }),
        }
    }

    /// Device initial states (the user's layout, the layer's storage type), checked and
    /// copied into the internal layout as f32.
    fn device_given(&self, shape: &[usize], init: Option<&[DeviceTensor]>) -> Result<Given> {
        let Some(g) = init else {
            return Ok(Given::None);
        };
        match &self.kind {
            Kind::Dense { names, widths, .. } => {
                let (batch, _, _) = dense_dims(shape, self.options.time_major)?;
                check_state_count(g.len(), widths, names)?;
                let mut v = Vec::with_capacity(g.len());
                for ((a, w), n) in g.iter().zip(widths).zip(names) {
                    check_state_shape(n, a.shape(), &[batch, *w])?;
                    check_dtype(&format!("initial_state {n}"), a, self.dtype)?;
                    v.push(self.dev.to_f32(&a.data)?);
                }
                Ok(Given::Device(v))
            }
            Kind::Conv(c) => {
                let d = conv_dims(c, shape)?;
                check_conv_state_count(g.len())?;
                let mut v = Vec::new();
                for (a, n) in g.iter().zip(["h", "c"]) {
                    check_state_shape(n, a.shape(), &d.state_shape)?;
                    check_dtype(&format!("initial_state {n}"), a, self.dtype)?;
                    let wide = self.dev.to_f32(&a.data)?;
                    v.push(if d.cf {
                        dense::permute_pf(&self.dev, d.b, d.orow * d.ocol, d.f, &wide, false)?
                    } else {
                        wide
                    });
                }
                Ok(Given::Device(v))
            }
            Kind::Bidi(bi) => bi.split_given(g, &self.state_names(), |l, part| {
                l.device_given(shape, Some(part))
            }),
        }
    }

    /// [`CudaLayer::run_wide`], then the outputs and states in the storage type.
    fn run(
        &mut self,
        x: &DeviceTensor,
        mask: Option<ArrayView2<bool>>,
        given: Given,
    ) -> Result<DeviceOutput> {
        let out = self.run_wide(x, mask, given)?;
        narrow_output(&self.dev, out, self.dtype)
    }

    /// The stateful carry, the remaining checks, the launches, the carry update; outputs and
    /// states in f32 (Bidirectional merges before the one rounding to the storage type). `x`
    /// is in the layer's storage type or f32 (chains hand on f32 between layers).
    fn run_wide(
        &mut self,
        x: &DeviceTensor,
        mask: Option<ArrayView2<bool>>,
        given: Given,
    ) -> Result<DeviceOutput> {
        let dev = self.dev.clone();
        // The kernels read an f32 input (see kernels/rnn.cu, "storage types"); Bidirectional
        // leaves the widening to its directions.
        let widened;
        let x32: Option<&CudaSlice<f32>> = match &x.data {
            Buf::F32(s) => Some(s),
            _ if matches!(self.kind, Kind::Bidi(_)) => None,
            other => {
                widened = dev.to_f32(other)?;
                Some(&widened)
            }
        };
        let need_x32 =
            || x32.ok_or_else(|| Error::invalid("input", "internal: input not widened to f32"));
        match &mut self.kind {
            Kind::Bidi(bi) => {
                let (gf, gb) = match given {
                    Given::Pair(f, b) => (*f, *b),
                    _ => (Given::None, Given::None),
                };
                let of = bi.fwd.run_wide(x, mask, gf)?;
                let ob = bi.bwd.run_wide(x, mask, gb)?;
                bi.merge(&dev, of, ob, mask)
            }
            Kind::Dense {
                cells,
                names,
                widths,
                ..
            } => {
                let tm = self.options.time_major;
                let (batch, time, _) = dense_dims(x.shape(), tm)?;
                let init = resolve_init(
                    &dev,
                    &mut self.carry,
                    &self.options,
                    given,
                    widths,
                    names,
                    batch,
                )?;
                check_time_and_mask(time, batch, mask)?;
                let mask_dev = match mask {
                    Some(m) => Some(upload_mask(&dev, m)?),
                    None => None,
                };
                let spec = SeqSpec {
                    batch,
                    time,
                    time_major: tm,
                    go_backwards: self.options.go_backwards,
                    return_sequences: self.options.return_sequences,
                    input_in_storage: x.dtype() == self.dtype,
                    allow_tf32: self.tf32,
                    allow_tc_steps: self.tc_steps,
                };
                let path = self.path.unwrap_or_else(|| dev.dense_path());
                let r = dense::run(
                    &dev,
                    cells,
                    need_x32()?,
                    spec,
                    path,
                    mask_dev.as_ref(),
                    init,
                )?;
                self.last_paths = r.paths.clone();
                let units = cells.last().map(|c| c.units).unwrap_or(0);
                let mut output = r.output;
                if let (true, Some(m)) = (self.options.zero_output_for_mask, &mask_dev) {
                    zero_masked_steps(&dev, &mut output, m, &self.options, batch, time, units)?;
                }
                let out_shape = if spec.return_sequences {
                    if tm {
                        vec![time, batch, units]
                    } else {
                        vec![batch, time, units]
                    }
                } else {
                    vec![batch, units]
                };
                if self.options.stateful {
                    let mut keep = Vec::with_capacity(r.states.len());
                    for (s, w) in r.states.iter().zip(widths.iter()) {
                        keep.push((dev.copy_slice(s)?, *w));
                    }
                    self.carry.states = Some(keep);
                }
                let states = r
                    .states
                    .into_iter()
                    .zip(widths.iter())
                    .map(|(s, w)| DeviceTensor {
                        data: Buf::F32(s),
                        shape: vec![batch, *w],
                    })
                    .collect();
                Ok(DeviceOutput {
                    output: DeviceTensor {
                        data: Buf::F32(output),
                        shape: out_shape,
                    },
                    states,
                })
            }
            Kind::Conv(c) => {
                let d = conv_dims(c, x.shape())?;
                if self.options.time_major {
                    return Err(Error::invalid(
                        "time_major",
                        "ConvLSTM2D takes (batch, time, ...) inputs; time_major is not supported on the CUDA path",
                    ));
                }
                let width = d.orow * d.ocol * d.f;
                let names = ["h".to_string(), "c".to_string()];
                let mut init = resolve_init(
                    &dev,
                    &mut self.carry,
                    &self.options,
                    given,
                    &[width, width],
                    &names,
                    d.b,
                )?
                .into_iter();
                check_time_and_mask(d.t, d.b, mask)?;
                let mask_dev = match mask {
                    Some(m) => Some(upload_mask(&dev, m)?),
                    None => None,
                };
                let (h0, c0) = match (init.next(), init.next()) {
                    (Some(h), Some(c)) => (h, c),
                    _ => {
                        return Err(Error::invalid(
                            "initial_state",
                            "internal: two states expected",
                        ))
                    }
                };
                let spec = ConvSpec {
                    batch: d.b,
                    time: d.t,
                    channels_first: d.cf,
                    go_backwards: self.options.go_backwards,
                    return_sequences: self.options.return_sequences,
                    input_in_storage: x.dtype() == self.dtype,
                    tensor_cores: match self.path.unwrap_or_else(|| dev.dense_path()) {
                        DensePath::TensorCore => true,
                        DensePath::Auto => self.tc_steps && d.b * d.orow * d.ocol >= 64,
                        _ => false,
                    },
                    allow_tf32: self.tf32,
                };
                let r = conv::run(
                    &dev,
                    c,
                    need_x32()?,
                    spec,
                    &d.geo,
                    &d.rgeo,
                    mask_dev.as_ref(),
                    h0,
                    c0,
                )?;
                self.last_paths = vec![if r.tensor_cores {
                    DensePath::TensorCore
                } else {
                    DensePath::Step
                }];
                if self.options.stateful {
                    self.carry.states = Some(vec![
                        (dev.copy_slice(&r.h)?, width),
                        (dev.copy_slice(&r.c)?, width),
                    ]);
                }
                let p = d.orow * d.ocol;
                let (h, cst) = if d.cf {
                    (
                        dense::permute_pf(&dev, d.b, p, d.f, &r.h, true)?,
                        dense::permute_pf(&dev, d.b, p, d.f, &r.c, true)?,
                    )
                } else {
                    (r.h, r.c)
                };
                let mut out_shape = vec![d.b];
                if spec.return_sequences {
                    out_shape.push(d.t);
                }
                out_shape.extend_from_slice(&d.state_shape[1..]);
                Ok(DeviceOutput {
                    output: DeviceTensor {
                        data: Buf::F32(r.output),
                        shape: out_shape,
                    },
                    states: vec![
                        DeviceTensor {
                            data: Buf::F32(h),
                            shape: d.state_shape.clone(),
                        },
                        DeviceTensor {
                            data: Buf::F32(cst),
                            shape: d.state_shape.clone(),
                        },
                    ],
                })
            }
        }
    }
}

/// Runs a layer loaded by `recurrent run` on the device: the CUDA twin of
/// [`KerasLayer::forward`] (a fresh [`CudaLayer`] per call: a stateful layer starts from zeros).
pub fn forward_keras(
    dev: &CudaDevice,
    layer: &KerasLayer,
    x: ArrayViewD<f32>,
    args: &CallArgs,
) -> Result<Output> {
    CudaLayer::from_keras(dev, layer)?.forward(x, args)
}

/// Runs the layers of a [`KerasChain`] on the device in storage type `dtype`, each layer's
/// output feeding the next without leaving the device: the CUDA twin of
/// [`KerasChain::forward`] (`recurrent run --model --device cuda`). `x`, the mask and the
/// initial states as for the first layer; the mask goes to every layer, as on the CPU; errors
/// of later layers name the layer.
pub fn forward_chain(
    dev: &CudaDevice,
    chain: &KerasChain,
    dtype: StorageType,
    x: ArrayViewD<f32>,
    args: &CallArgs,
) -> Result<Output> {
    let names = chain.names();
    let mut layers = Vec::with_capacity(names.len());
    for (k, (l, name)) in chain.layers().into_iter().zip(&names).enumerate() {
        let built = CudaLayer::from_keras_as(dev, l, dtype);
        layers.push(if k == 0 {
            built?
        } else {
            built.map_err(|e| Error::invalid(format!("layer `{name}`"), e.to_string()))?
        });
    }
    let n = layers.len();
    if n == 0 {
        return Err(Error::invalid("chain", "no layers"));
    }
    // The first layer on host arrays checks and rounds them as a single layer does. Between
    // layers the sequences stay f32 (the CPU chain rounds only the last layer's outputs).
    let first = &mut layers[0];
    first.check_bidi_state_count(args.initial_state.map(<[ArrayD<f32>]>::len))?;
    first.check_call(x.shape(), args.mask.is_some(), !args.constants.is_empty())?;
    let given = first.host_given(x.shape(), args.initial_state)?;
    let xd = dev.upload_as(x, dtype)?;
    let mut out = first.run_wide(&xd, args.mask, given)?;
    for (layer, name) in layers.iter_mut().zip(&names).skip(1) {
        out = (|| {
            layer.check_call(out.output.shape(), args.mask.is_some(), false)?;
            layer.run_wide(&out.output, args.mask, Given::None)
        })()
        .map_err(|e| Error::invalid(format!("layer `{name}`"), e.to_string()))?;
    }
    let out = narrow_output(dev, out, dtype)?;
    out.to_host(dev)
}

// ---- checks shared by the host and device entry points (the CPU path's messages)

fn cudnn_mask_error(class: &str) -> Error {
    Error::invalid(
        "mask",
        format!("{class} does not support masking (Keras raises \"Masking is not supported for CuDNN RNNs\"); use LSTM / GRU(reset_after=True) with the converted weights"),
    )
}

/// `(batch, time, features)` of a dense input (3-D required).
fn dense_dims(shape: &[usize], time_major: bool) -> Result<(usize, usize, usize)> {
    if shape.len() != 3 {
        return Err(Error::shape(
            "input",
            if time_major {
                "(time, batch, features)"
            } else {
                "(batch, time, features)"
            },
            shape,
        ));
    }
    Ok(if time_major {
        (shape[1], shape[0], shape[2])
    } else {
        (shape[0], shape[1], shape[2])
    })
}

fn check_dense_input(shape: &[usize], time_major: bool, input_dim: usize) -> Result<()> {
    if shape[2] != input_dim {
        let expected = if time_major {
            format!("(time, batch, {input_dim})")
        } else {
            format!("(batch, time, {input_dim})")
        };
        return Err(Error::shape("input", expected, shape));
    }
    Ok(())
}

/// The input width of the first cell (a layer always has one).
fn first_input(cells: &[DeviceCell]) -> Result<usize> {
    cells
        .first()
        .map(|c| c.input_dim)
        .ok_or_else(|| Error::invalid("cells", "a layer needs at least one cell"))
}

/// Keras's `zero_output_for_mask` on a dense layer's f32 output (the kernels repeat the
/// previous output at masked steps; this zeroes those steps in place): the sequence in
/// processing order, or the last output where the last processed step is masked.
fn zero_masked_steps(
    dev: &CudaDevice,
    out: &mut CudaSlice<f32>,
    mask: &CudaSlice<u8>,
    options: &SequenceOptions,
    batch: usize,
    time: usize,
    units: usize,
) -> Result<()> {
    let seq = options.return_sequences;
    let n = batch * units * if seq { time } else { 1 };
    if n == 0 {
        return Ok(());
    }
    let (bi, ti, ui) = (
        to_i32(batch, "batch")?,
        to_i32(time, "time")?,
        to_i32(units, "units")?,
    );
    let (tm, ht) = (i32::from(options.time_major), i32::from(seq));
    let reversed = i32::from(options.zeroes_by_reversed_mask());
    let last = if options.go_backwards { 0 } else { ti - 1 };
    let f = dev.function(Module::Rnn, "zero_masked_steps_f32")?;
    let blocks = n.div_ceil(256).clamp(1, 4096) as u32;
    // zero_masked_steps_f32(int B, int T, int U, int time_major, int has_time, int reversed,
    //   int last, const u8* mask, float* out)
    let mut l = dev.launcher(&f);
    l.arg(&bi)
        .arg(&ti)
        .arg(&ui)
        .arg(&tm)
        .arg(&ht)
        .arg(&reversed)
        .arg(&last)
        .arg(mask)
        .arg(out);
    dev.launch(l, "zero_masked_steps_f32", grid1(blocks, 256))
}

fn check_state_count(n: usize, widths: &[usize], names: &[String]) -> Result<()> {
    if n != widths.len() {
        return Err(Error::invalid(
            "initial_state",
            format!(
                "expected {} arrays ({}), found {}",
                widths.len(),
                names.join(", "),
                n
            ),
        ));
    }
    Ok(())
}

fn check_time_and_mask(time: usize, batch: usize, mask: Option<ArrayView2<bool>>) -> Result<()> {
    if time == 0 {
        return Err(Error::invalid(
            "input",
            "the time dimension is 0; expected at least one step",
        ));
    }
    if let Some(m) = mask {
        check_shape("mask", m.shape(), &[batch, time])?;
    }
    Ok(())
}

/// A state to the device as f32 (the kernels' state type), its values rounded to `dt` first.
fn upload2(dev: &CudaDevice, a: &Array2<f32>, dt: StorageType) -> Result<CudaSlice<f32>> {
    let rounded;
    let a = if dt == StorageType::F32 {
        a
    } else {
        rounded = a.mapv(|v| dt.round_value(v));
        &rounded
    };
    let s = a.as_standard_layout();
    match s.as_slice() {
        Some(v) => dev.upload_slice(v),
        None => Err(Error::invalid("state", "internal: not contiguous")),
    }
}

/// A device tensor handed to a layer must be in the layer's storage type.
fn check_dtype(what: &str, t: &DeviceTensor, want: StorageType) -> Result<()> {
    if t.dtype() != want {
        return Err(Error::invalid(
            what,
            format!(
                "expected a {} device tensor (the layer's storage type), found {}; convert it with CudaDevice::convert",
                want.name(),
                t.dtype().name()
            ),
        ));
    }
    Ok(())
}

/// `core::initial_states` on the device: the stateful batch check, the given states, the
/// carry (copied: the run updates its states in place), or zeros.
fn resolve_init(
    dev: &CudaDevice,
    carry: &mut DeviceCarry,
    options: &SequenceOptions,
    given: Given,
    widths: &[usize],
    names: &[String],
    batch: usize,
) -> Result<Vec<CudaSlice<f32>>> {
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
    if let Given::Device(g) = given {
        return Ok(g);
    }
    if options.stateful {
        if let Some(s) = &carry.states {
            let mut v = Vec::with_capacity(s.len());
            for ((state, have), (w, n)) in s.iter().zip(widths.iter().zip(names)) {
                if have != w {
                    return Err(Error::invalid(
                        "input",
                        format!("the stateful layer carries state {n} of width {have} from its last call, this input needs width {w}; call reset_states first"),
                    ));
                }
                v.push(dev.copy_slice(state)?);
            }
            return Ok(v);
        }
    }
    widths
        .iter()
        .map(|&w| dev.alloc_zeros::<f32>(batch * w))
        .collect()
}

/// The sizes of a ConvLSTM2D call.
struct ConvDims {
    cf: bool,
    b: usize,
    t: usize,
    f: usize,
    orow: usize,
    ocol: usize,
    geo: crate::cpu::conv::ConvGeometry,
    rgeo: crate::cpu::conv::ConvGeometry,
    /// The user's state shape: `(b, orow, ocol, f)` or `(b, f, orow, ocol)`.
    state_shape: Vec<usize>,
}

/// ConvLSTM2D's input checks (the CPU layer's messages) and geometry.
fn conv_dims(c: &DeviceConv, shape: &[usize]) -> Result<ConvDims> {
    let cf = c.config.data_format == DataFormat::ChannelsFirst;
    let cin = c.cin;
    let expected = if cf {
        format!("(batch, time, {cin}, rows, cols)")
    } else {
        format!("(batch, time, rows, cols, {cin})")
    };
    if shape.len() != 5 {
        return Err(Error::shape("input", expected, shape));
    }
    let (b, t) = (shape[0], shape[1]);
    let (rows, cols, ch) = if cf {
        (shape[3], shape[4], shape[2])
    } else {
        (shape[2], shape[3], shape[4])
    };
    if ch != cin {
        return Err(Error::shape("input", expected, shape));
    }
    let (geo, rgeo) = c.geometry(rows, cols)?;
    let f = c.config.filters;
    let (orow, ocol) = (geo.out_rows, geo.out_cols);
    let state_shape = if cf {
        vec![b, f, orow, ocol]
    } else {
        vec![b, orow, ocol, f]
    };
    Ok(ConvDims {
        cf,
        b,
        t,
        f,
        orow,
        ocol,
        geo,
        rgeo,
        state_shape,
    })
}

impl BidiLayer {
    /// The initial states split between the directions (forward first) and resolved by
    /// `given` per direction, its errors naming the direction as the CPU layer does.
    fn split_given<T>(
        &self,
        g: &[T],
        names: &[String],
        given: impl Fn(&CudaLayer, &[T]) -> Result<Given>,
    ) -> Result<Given> {
        let nf = self.split_states(g.len(), names)?;
        let f = given(&self.fwd, &g[..nf]).map_err(|e| name_direction("forward", e))?;
        let b = given(&self.bwd, &g[nf..]).map_err(|e| name_direction("backward", e))?;
        Ok(Given::Pair(Box::new(f), Box::new(b)))
    }

    /// How many of `n` flattened states belong to the forward layer; `n` must be the total.
    fn split_states(&self, n: usize, names: &[String]) -> Result<usize> {
        let nf = self.fwd.state_names().len();
        let nb = self.bwd.state_names().len();
        if n != nf + nb {
            return Err(Error::invalid(
                "initial_state",
                format!(
                    "expected {} arrays ({}), found {n}",
                    nf + nb,
                    names.join(", ")
                ),
            ));
        }
        Ok(nf)
    }

    /// Merges the two directions' f32 results (`bidi_merge_f32`): the CPU `Bidirectional`'s
    /// `forward_stacked` output and the states of both.
    fn merge(
        &self,
        dev: &CudaDevice,
        of: DeviceOutput,
        ob: DeviceOutput,
        mask: Option<ArrayView2<bool>>,
    ) -> Result<DeviceOutput> {
        let opts = self.fwd.options;
        let (fs, bs) = (of.output.shape.clone(), ob.output.shape.clone());
        let (Buf::F32(yf), Buf::F32(yb)) = (&of.output.data, &ob.output.data) else {
            return Err(Error::invalid(
                "Bidirectional",
                "internal: directions not in f32",
            ));
        };
        let (Some(&lf), Some(&lb)) = (fs.last(), bs.last()) else {
            return Err(Error::invalid("Bidirectional", "internal: scalar outputs"));
        };
        let lead_f = &fs[..fs.len() - 1];
        let lead_b = &bs[..bs.len() - 1];
        let mode = match self.merge {
            MergeMode::Concat => 0,
            MergeMode::Sum => 1,
            MergeMode::Mul => 2,
            MergeMode::Ave => 3,
            MergeMode::None => 4,
        };
        let same_shape = fs == bs;
        if mode == 4 && !same_shape {
            // The CPU stacks with ndarray::stack and reports its error.
            return Err(Error::invalid(
                "Bidirectional",
                ndarray::ShapeError::from_kind(ndarray::ErrorKind::IncompatibleShape).to_string(),
            ));
        }
        if (mode == 0 && lead_f != lead_b) || (mode != 0 && !same_shape) {
            let what = if mode == 0 {
                "cannot concatenate outputs of shapes".to_string()
            } else {
                format!(
                    "merge_mode {:?} needs outputs of one shape, found",
                    self.merge
                )
            };
            return Err(Error::invalid(
                "Bidirectional",
                format!("{what} {} and {}", fmt_shape(&fs), fmt_shape(&bs)),
            ));
        }
        // (batch, time) and the elements between time and the last axis.
        let (batch, time, has_time) = if opts.return_sequences {
            if opts.time_major {
                (fs[1], fs[0], true)
            } else {
                (fs[0], fs[1], true)
            }
        } else {
            (fs[0], 1, false)
        };
        let rows: usize = lead_f.iter().product();
        let mid = rows / (batch * time).max(1);
        let width = if mode == 0 { lf + lb } else { lf };
        let n_out = if mode == 4 {
            2 * rows * lf
        } else {
            rows * width
        };
        let mut out = dev.alloc_out(n_out)?;
        let mask_dev = match mask {
            Some(m) if has_time => Some(upload_mask(dev, m)?),
            _ => None,
        };
        let (mask_buf, has_mask) = match &mask_dev {
            Some(m) => (m, 1i32),
            None => (dev.placeholder_u8()?, 0i32),
        };
        let zero = |l: &CudaLayer| i32::from(!matches!(l.kind, Kind::Conv(_)));
        let f = dev.function(Module::Rnn, "bidi_merge_f32")?;
        let (bi, ti) = (to_i32(batch, "batch")?, to_i32(time, "time")?);
        let mi = to_i64(mid, "elements per step")?;
        let (lfi, lbi) = (to_i32(lf, "output width")?, to_i32(lb, "output width")?);
        let (tm, ht) = (i32::from(opts.time_major), i32::from(has_time));
        // Which mask step zeroes an output step (SequenceOptions::zeroes_by_reversed_mask).
        let (fb, bb) = (
            i32::from(self.fwd.options.zeroes_by_reversed_mask()),
            i32::from(self.bwd.options.zeroes_by_reversed_mask()),
        );
        let (zf, zb) = (zero(&self.fwd), zero(&self.bwd));
        let blocks = n_out.div_ceil(256).clamp(1, 4096) as u32;
        // bidi_merge_f32(int B, int T, long long M, int Lf, int Lb, int time_major,
        //   int has_time, const float* yf, const float* yb, const u8* mask, int has_mask,
        //   int f_back, int b_back, int zero_f, int zero_b, int mode, float* out)
        // (f_back / b_back: whether the mask is read reversed, as zeroes_by_reversed_mask)
        let mut l = dev.launcher(&f);
        l.arg(&bi)
            .arg(&ti)
            .arg(&mi)
            .arg(&lfi)
            .arg(&lbi)
            .arg(&tm)
            .arg(&ht)
            .arg(yf)
            .arg(yb)
            .arg(mask_buf)
            .arg(&has_mask)
            .arg(&fb)
            .arg(&bb)
            .arg(&zf)
            .arg(&zb)
            .arg(&mode)
            .arg(&mut out);
        dev.launch(l, "bidi_merge_f32", grid1(blocks, 256))?;
        let shape = if mode == 4 {
            std::iter::once(2).chain(fs.iter().copied()).collect()
        } else {
            let mut v = lead_f.to_vec();
            v.push(width);
            v
        };
        let mut states = of.states;
        states.extend(ob.states);
        Ok(DeviceOutput {
            output: DeviceTensor {
                data: Buf::F32(out),
                shape,
            },
            states,
        })
    }
}

/// An initial state of the user's layout must have exactly `expected`'s shape.
fn check_state_shape(name: &str, found: &[usize], expected: &[usize]) -> Result<()> {
    if found != expected {
        return Err(Error::shape(
            format!("initial_state {name}"),
            fmt_shape(expected),
            found,
        ));
    }
    Ok(())
}

fn check_conv_state_count(n: usize) -> Result<()> {
    if n != 2 {
        return Err(Error::invalid(
            "initial_state",
            format!("expected 2 arrays (h, c), found {n}"),
        ));
    }
    Ok(())
}

/// A result's output and states in storage type `dt`.
fn narrow_output(dev: &CudaDevice, out: DeviceOutput, dt: StorageType) -> Result<DeviceOutput> {
    Ok(DeviceOutput {
        output: narrow_tensor(dev, out.output, dt)?,
        states: out
            .states
            .into_iter()
            .map(|s| narrow_tensor(dev, s, dt))
            .collect::<Result<Vec<_>>>()?,
    })
}

/// An f32 result tensor in storage type `dt` (others unchanged).
fn narrow_tensor(dev: &CudaDevice, t: DeviceTensor, dt: StorageType) -> Result<DeviceTensor> {
    match t.data {
        Buf::F32(s) => Ok(DeviceTensor {
            data: dev.narrow(s, dt)?,
            shape: t.shape,
        }),
        other => Ok(DeviceTensor {
            data: other,
            shape: t.shape,
        }),
    }
}
