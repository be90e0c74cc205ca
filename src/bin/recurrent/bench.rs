//! `recurrent bench`: times layers at a named shape set or one shape from flags.

use clap::{Args, ValueEnum};
use ndarray::ArrayD;
use recurrent::config::{
    ConvLSTM2DConfig, GRUCellConfig, LSTMCellConfig, Padding, SequenceOptions, SimpleRNNCellConfig,
};
use recurrent::initializers::Initializer;
use recurrent::layers::{AnyCell, ConvLSTM2D, LSTMCell, SimpleRNN, GRU, LSTM, RNN};
use recurrent::{Error, Result};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum BenchLayer {
    Lstm,
    /// GRU with reset_after = true (cuDNN's variant).
    Gru,
    /// GRU with reset_after = false (Keras 2's default).
    GruResetBefore,
    SimpleRnn,
    ConvLstm2d,
    /// `RNN` over 4 stacked `LSTMCell`s (I -> H -> H -> H -> H).
    Lstm4,
}

impl BenchLayer {
    fn name(self) -> &'static str {
        match self {
            BenchLayer::Lstm => "lstm",
            BenchLayer::Gru => "gru",
            BenchLayer::GruResetBefore => "gru_reset_before",
            BenchLayer::SimpleRnn => "simple_rnn",
            BenchLayer::ConvLstm2d => "conv_lstm2d",
            BenchLayer::Lstm4 => "lstm4",
        }
    }
    fn gates(self) -> usize {
        match self {
            BenchLayer::Lstm | BenchLayer::ConvLstm2d | BenchLayer::Lstm4 => 4,
            BenchLayer::Gru | BenchLayer::GruResetBefore => 3,
            BenchLayer::SimpleRnn => 1,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum BenchDevice {
    Cpu,
    Cuda,
}

/// The named shape sets.
#[derive(Clone, Copy, ValueEnum)]
pub enum ShapeSet {
    /// Issue 5's CPU set (LSTM and GRU at five shapes, SimpleRNN, reset-before GRU, ConvLSTM2D).
    Cpu,
    /// Issue 4's GPU set (twelve LSTM / GRU rows, 4 stacked LSTM cells, four ConvLSTM2D rows).
    Gpu,
}

/// `--cuda-path`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum CudaPathArg {
    /// The selection heuristic.
    Auto,
    /// One fused launch per time step.
    Step,
    /// The persistent kernel where it fits.
    Persistent,
    /// Stacks of cells of one kind: every cell's steps side by side, one launch per diagonal.
    Wavefront,
    /// f16 / bf16: the tensor-core step kernels (h rounded to the storage type for the
    /// recurrent product, as cuDNN's half-precision RNNs).
    TensorCore,
}

impl CudaPathArg {
    fn name(self) -> &'static str {
        match self {
            CudaPathArg::Auto => "auto",
            CudaPathArg::Step => "step",
            CudaPathArg::Persistent => "persistent",
            CudaPathArg::Wavefront => "wavefront",
            CudaPathArg::TensorCore => "tensor-core",
        }
    }
    #[cfg(feature = "cuda")]
    fn path(self) -> recurrent::cuda::DensePath {
        use recurrent::cuda::DensePath;
        match self {
            CudaPathArg::Auto => DensePath::Auto,
            CudaPathArg::Step => DensePath::Step,
            CudaPathArg::Persistent => DensePath::Persistent,
            CudaPathArg::Wavefront => DensePath::Wavefront,
            CudaPathArg::TensorCore => DensePath::TensorCore,
        }
    }
}

/// Storage and math of a timed run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum BenchDtype {
    /// f32 storage and math (no TF32).
    F32,
    /// f32 storage, TF32 tensor cores allowed.
    Tf32,
    /// f16 storage, f32 accumulation.
    F16,
    /// bf16 storage, f32 accumulation.
    Bf16,
}

impl BenchDtype {
    /// The storage type of weights, inputs and outputs (tf32 stores f32).
    #[cfg(feature = "cuda")]
    fn storage(self) -> recurrent::keras::StorageType {
        use recurrent::keras::StorageType;
        match self {
            BenchDtype::F32 | BenchDtype::Tf32 => StorageType::F32,
            BenchDtype::F16 => StorageType::F16,
            BenchDtype::Bf16 => StorageType::BF16,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BenchDtype::F32 => "f32",
            BenchDtype::Tf32 => "tf32",
            BenchDtype::F16 => "f16",
            BenchDtype::Bf16 => "bf16",
        }
    }
}

/// Flags of `recurrent bench`. With no shape flags, a named shape set runs.
#[derive(Args)]
pub struct BenchArgs {
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    device: BenchDevice,
    /// The named shape set to run without --layer (default: cpu on the CPU, gpu on CUDA).
    #[arg(long, value_enum)]
    set: Option<ShapeSet>,
    /// Storage / math: f32 everywhere; tf32, f16, bf16 are GPU dtypes (see the README).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: BenchDtype,
    /// CUDA: which kernels run the dense layers' time loop (auto: the heuristic; step: one
    /// launch per step; persistent: the persistent kernel wherever it fits).
    #[arg(long, value_enum, default_value = "auto")]
    cuda_path: CudaPathArg,
    /// CUDA, f16 / bf16 (and tf32): let `auto` run the steps on tensor cores where its cost
    /// model says they are faster, rounding h for the recurrent product as cuDNN does
    /// (`CudaLayer::with_tensor_core_steps`). Off: h stays f32 (the CPU path's semantics).
    #[arg(long)]
    tensor_core_steps: bool,
    /// One layer to time (with the shape flags); default: a named shape set.
    #[arg(long, value_enum)]
    layer: Option<BenchLayer>,
    /// Batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Time steps.
    #[arg(long)]
    seq: Option<usize>,
    /// Input features (ConvLSTM2D: input channels).
    #[arg(long)]
    input: Option<usize>,
    /// Units (ConvLSTM2D: filters).
    #[arg(long)]
    units: Option<usize>,
    /// ConvLSTM2D image rows and cols.
    #[arg(long, default_value_t = 32)]
    image: usize,
    /// ConvLSTM2D kernel size (square, padding same).
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Timed runs per shape (default 5 on the CPU; 30 on CUDA, rotating over 3 inputs).
    #[arg(long)]
    repeats: Option<usize>,
    /// Untimed runs first (default 1 on the CPU, 5 on CUDA).
    #[arg(long)]
    warmup: Option<usize>,
    /// Peak of the device in TFLOP/s for the table's "% peak" column (e.g. a dense GEMM
    /// measured on the same GPU and dtype); no column without it.
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// CPU threads (default: the number of available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object per run instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    layer: BenchLayer,
    batch: usize,
    seq: usize,
    input: usize,
    units: usize,
    image: usize,
    kernel: usize,
}

impl Shape {
    /// A dense layer's shape (B, T, I, H).
    fn dense(layer: BenchLayer, batch: usize, seq: usize, input: usize, units: usize) -> Self {
        Shape {
            layer,
            batch,
            seq,
            input,
            units,
            image: 0,
            kernel: 0,
        }
    }

    /// A ConvLSTM2D shape: B, T, channels @ image x image, filters, kernel x kernel.
    fn conv(
        batch: usize,
        seq: usize,
        input: usize,
        image: usize,
        units: usize,
        kernel: usize,
    ) -> Self {
        Shape {
            layer: BenchLayer::ConvLstm2d,
            batch,
            seq,
            input,
            units,
            image,
            kernel,
        }
    }

    /// FLOPs of one forward pass: `2 T B (I + H) gates H` (ConvLSTM2D: per pixel, with
    /// `k*k*(C + F)` in place of `I + H`).
    fn flops(&self) -> f64 {
        let g = self.layer.gates() as f64;
        let (b, t, i, h) = (
            self.batch as f64,
            self.seq as f64,
            self.input as f64,
            self.units as f64,
        );
        if self.layer == BenchLayer::ConvLstm2d {
            let px = (self.image * self.image) as f64;
            let kk = (self.kernel * self.kernel) as f64;
            2.0 * t * b * px * kk * (i + h) * g * h
        } else if self.layer == BenchLayer::Lstm4 {
            2.0 * t * b * g * h * ((i + h) + 3.0 * 2.0 * h)
        } else {
            2.0 * t * b * (i + h) * g * h
        }
    }
}

/// The default CPU shape set (B, T, I, H): LSTM and GRU at 1,100,128,128 · 1,100,512,512 ·
/// 16,100,256,256 · 64,50,512,512 · 256,25,1024,1024; SimpleRNN and reset-before GRU at
/// 16,100,256,256; ConvLSTM2D 4,10, 16 channels @ 32x32, 32 filters, 3x3, same.
fn default_shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    let sizes = [
        (1, 100, 128, 128),
        (1, 100, 512, 512),
        (16, 100, 256, 256),
        (64, 50, 512, 512),
        (256, 25, 1024, 1024),
    ];
    for layer in [BenchLayer::Lstm, BenchLayer::Gru] {
        for &(batch, seq, input, units) in &sizes {
            v.push(Shape::dense(layer, batch, seq, input, units));
        }
    }
    for layer in [BenchLayer::GruResetBefore, BenchLayer::SimpleRnn] {
        v.push(Shape::dense(layer, 16, 100, 256, 256));
    }
    v.push(Shape::conv(4, 10, 16, 32, 32, 3));
    v
}

/// Issue 4's GPU shape set (the same rows as `benches/cudnn_reference.py`): (B, T, I, H)
/// GRU 1,1,512,512 · LSTM 1,100,512,512 · LSTM 1,1000,256,256 · LSTM 8,1000,32,64 · GRU
/// 32,100,64,128 · LSTM 4,50,1536,1536 · GRU 4,187,2816,2816 · LSTM 16,1024,768,768 · LSTM
/// 128,25,1024,1024 · GRU 64,1500,1024,1024 · LSTM 256,50,1024,1024 · 4 stacked LSTM cells
/// 64,100,512,512; ConvLSTM2D (B, T, channels @ side x side, filters, kernel, same) 1,10,16@16,
/// 64,5 · 8,10,64@64,64,3 · 32,20,64@64,64,3 · 5,19,1@64,64,5. GRU is reset_after (cuDNN's).
fn gpu_shapes() -> Vec<Shape> {
    use BenchLayer::{Gru, Lstm, Lstm4};
    let dense = [
        (Gru, 1, 1, 512, 512),
        (Lstm, 1, 100, 512, 512),
        (Lstm, 1, 1000, 256, 256),
        (Lstm, 8, 1000, 32, 64),
        (Gru, 32, 100, 64, 128),
        (Lstm, 4, 50, 1536, 1536),
        (Gru, 4, 187, 2816, 2816),
        (Lstm, 16, 1024, 768, 768),
        (Lstm, 128, 25, 1024, 1024),
        (Gru, 64, 1500, 1024, 1024),
        (Lstm, 256, 50, 1024, 1024),
        (Lstm4, 64, 100, 512, 512),
    ];
    let conv = [
        (1, 10, 16, 16, 64, 5),
        (8, 10, 64, 64, 64, 3),
        (32, 20, 64, 64, 64, 3),
        (5, 19, 1, 64, 64, 5),
    ];
    let mut v: Vec<Shape> = dense
        .iter()
        .map(|&(layer, b, t, i, h)| Shape::dense(layer, b, t, i, h))
        .collect();
    v.extend(
        conv.iter()
            .map(|&(b, t, c, side, f, k)| Shape::conv(b, t, c, side, f, k)),
    );
    v
}

enum Built {
    Lstm(LSTM),
    Gru(GRU),
    Simple(SimpleRNN),
    Stack(RNN),
    Conv(Box<ConvLSTM2D>),
}

fn build(s: &Shape) -> Result<(Built, ArrayD<f32>)> {
    let seq = SequenceOptions::default();
    let x_shape: Vec<usize> = if s.layer == BenchLayer::ConvLstm2d {
        vec![s.batch, s.seq, s.image, s.image, s.input]
    } else {
        vec![s.batch, s.seq, s.input]
    };
    let x = Initializer::RandomUniform {
        minval: -1.0,
        maxval: 1.0,
        seed: Some(7),
    }
    .generate(&x_shape, 0)?;
    let layer = match s.layer {
        BenchLayer::Lstm => Built::Lstm(LSTM::build(
            LSTMCellConfig::tf_keras(s.units),
            seq,
            s.input,
            1,
        )?),
        BenchLayer::Gru => Built::Gru(GRU::build(
            GRUCellConfig::tf_keras(s.units),
            seq,
            s.input,
            1,
        )?),
        BenchLayer::GruResetBefore => {
            Built::Gru(GRU::build(GRUCellConfig::new(s.units), seq, s.input, 1)?)
        }
        BenchLayer::SimpleRnn => Built::Simple(SimpleRNN::build(
            SimpleRNNCellConfig::new(s.units),
            seq,
            s.input,
            1,
        )?),
        BenchLayer::ConvLstm2d => {
            let mut c = ConvLSTM2DConfig::new(s.units, (s.kernel, s.kernel));
            c.padding = Padding::Same;
            Built::Conv(Box::new(ConvLSTM2D::build(c, s.input, 1)?))
        }
        BenchLayer::Lstm4 => {
            let cells = (0..4u64)
                .map(|k| {
                    let input = if k == 0 { s.input } else { s.units };
                    let cfg = LSTMCellConfig::tf_keras(s.units);
                    LSTMCell::build(cfg, input, 1 + k).map(AnyCell::from)
                })
                .collect::<Result<Vec<_>>>()?;
            Built::Stack(RNN::stacked(cells, seq)?)
        }
    };
    Ok((layer, x))
}

fn run_once(layer: &mut Built, x: &ArrayD<f32>) -> Result<()> {
    let out = match layer {
        Built::Conv(l) => l.call(x.view())?,
        other => {
            let x3 = x
                .view()
                .into_dimensionality::<ndarray::Ix3>()
                .map_err(|e| Error::invalid("input", e.to_string()))?;
            match other {
                Built::Lstm(l) => l.call(x3)?,
                Built::Gru(l) => l.call(x3)?,
                Built::Simple(l) => l.call(x3)?,
                Built::Stack(l) => l.call(x3)?,
                Built::Conv(_) => return Err(Error::invalid("bench", "unreachable")),
            }
        }
    };
    std::hint::black_box(out.output.len());
    Ok(())
}

struct Timing {
    median_us: f64,
    min_us: f64,
    max_us: f64,
    /// CUDA: which kernels ran the dense time loops (`step`, `persistent`, `wavefront`,
    /// `tensor-core`, or
    /// `mixed` for a stack whose cells differed); `None` on the CPU and for ConvLSTM2D.
    path_used: Option<&'static str>,
}

fn time(s: &Shape, warmup: usize, repeats: usize) -> Result<Timing> {
    let (mut layer, x) = build(s)?;
    for _ in 0..warmup {
        run_once(&mut layer, &x)?; // page in weights, allocate
    }
    let mut t = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        run_once(&mut layer, &x)?;
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(Timing {
        median_us: t[t.len() / 2],
        min_us: t[0],
        max_us: t[t.len() - 1],
        path_used: None,
    })
}

/// Times the layer of `s` on the GPU: weights (in `storage`) and 3 different inputs uploaded
/// once, `warmup` untimed forward passes, then `repeats` passes, each on the next input and
/// timed with CUDA events around it (GPU time; the host-side launch cost counts where the GPU
/// waits for it).
#[cfg(feature = "cuda")]
fn time_cuda(
    dev: &recurrent::cuda::CudaDevice,
    s: &Shape,
    storage: recurrent::keras::StorageType,
    args: &BenchArgs,
    warmup: usize,
    repeats: usize,
) -> Result<Timing> {
    use recurrent::cuda::CudaLayer;
    let (layer, x) = build(s)?;
    let g = match &layer {
        Built::Lstm(l) => CudaLayer::lstm(dev, l)?,
        Built::Gru(l) => CudaLayer::gru(dev, l)?,
        Built::Simple(l) => CudaLayer::simple_rnn(dev, l)?,
        Built::Stack(l) => CudaLayer::from_rnn(dev, l)?,
        Built::Conv(l) => CudaLayer::conv_lstm2d(dev, l)?,
    };
    let mut g = g
        .into_dtype(storage)?
        .with_dense_path(args.cuda_path.path())
        .with_tf32(args.dtype == BenchDtype::Tf32)
        .with_tensor_core_steps(args.tensor_core_steps);
    let inputs = (0..3)
        .map(|k| dev.upload_as(x.mapv(|v| v * (1.0 - 0.1 * k as f32)).view(), storage))
        .collect::<Result<Vec<_>>>()?;
    for k in 0..warmup {
        g.forward_device(&inputs[k % 3], None, None)?;
    }

    dev.synchronize()?;
    let mut t = Vec::with_capacity(repeats.max(1));
    for k in 0..repeats.max(1) {
        let xd = &inputs[k % 3];
        let ms = dev.time_ms(|| g.forward_device(xd, None, None).map(|_| ()))?;
        t.push(ms * 1e3);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    use recurrent::cuda::DensePath;
    let used = g.last_dense_paths();
    let mut kinds: Vec<&'static str> = Vec::new();
    for (p, n) in [
        (DensePath::Step, "step"),
        (DensePath::Persistent, "persistent"),
        (DensePath::Wavefront, "wavefront"),
        (DensePath::TensorCore, "tensor-core"),
    ] {
        if used.contains(&p) {
            kinds.push(n);
        }
    }
    let path_used = match kinds.as_slice() {
        [] => None,
        [one] => Some(*one),
        _ => Some("mixed"),
    };
    Ok(Timing {
        median_us: t[t.len() / 2],
        min_us: t[0],
        max_us: t[t.len() - 1],
        path_used,
    })
}

/// Runs `recurrent bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let on_gpu = matches!(args.device, BenchDevice::Cuda);
    if !on_gpu && args.cuda_path != CudaPathArg::Auto {
        return Err(Error::invalid(
            "--cuda-path",
            format!(
                "chooses CUDA kernels; expected it with --device cuda, found --cuda-path {} with --device cpu",
                args.cuda_path.name()
            ),
        ));
    }
    if !on_gpu && args.tensor_core_steps {
        return Err(Error::invalid(
            "--tensor-core-steps",
            "chooses CUDA kernels; expected it with --device cuda, found it with --device cpu",
        ));
    }
    if !on_gpu && args.dtype != BenchDtype::F32 {
        return Err(Error::invalid(
            "--dtype",
            format!(
                "the CPU path computes in f32; expected f32, found {} (a GPU dtype: --device cuda)",
                args.dtype.name()
            ),
        ));
    }
    #[cfg(feature = "cuda")]
    let storage = args.dtype.storage();
    #[cfg(not(feature = "cuda"))]
    if matches!(args.device, BenchDevice::Cuda) {
        return Err(Error::NotCompiledWithCuda);
    }
    #[cfg(feature = "cuda")]
    let cuda = match args.device {
        BenchDevice::Cuda => Some(recurrent::cuda::CudaDevice::new(0)?),
        BenchDevice::Cpu => None,
    };
    #[cfg(feature = "cuda")]
    let device_name = match &cuda {
        Some(d) => format!("cuda ({})", d.name()?),
        None => "cpu".to_string(),
    };
    #[cfg(not(feature = "cuda"))]
    let device_name = "cpu".to_string();
    // Arithmetic is f32 for every storage type; tf32 allows TF32 tensor cores on the GPU (the
    // projections, and the steps with --cuda-path tensor-core).
    let math = if on_gpu && args.dtype == BenchDtype::Tf32 {
        "tf32"
    } else {
        "f32"
    };
    let repeats = args.repeats.unwrap_or(if on_gpu { 30 } else { 5 }).max(1);
    let warmup = args.warmup.unwrap_or(if on_gpu { 5 } else { 1 });
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(Error::invalid(
                "--threads",
                "expected a positive integer, found 0",
            ));
        }
        recurrent::cpu::set_num_threads(t);
    }
    let threads = recurrent::cpu::num_threads();
    if args.layer.is_some() && args.set.is_some() {
        return Err(Error::invalid(
            "--set",
            "expected either a named shape set or --layer with shape flags, found both",
        ));
    }
    let shapes = match args.layer {
        None => {
            if args.batch.is_some()
                || args.seq.is_some()
                || args.input.is_some()
                || args.units.is_some()
            {
                return Err(Error::invalid("--layer", "shape flags need --layer (lstm, gru, gru-reset-before, simple-rnn, conv-lstm2d, lstm4)"));
            }
            match args
                .set
                .unwrap_or(if on_gpu { ShapeSet::Gpu } else { ShapeSet::Cpu })
            {
                ShapeSet::Cpu => default_shapes(),
                ShapeSet::Gpu => gpu_shapes(),
            }
        }
        Some(layer) => {
            let need = |v: Option<usize>, flag: &str| {
                v.filter(|&n| n > 0)
                    .ok_or_else(|| Error::invalid(flag, "expected a positive integer with --layer"))
            };
            vec![Shape {
                layer,
                batch: need(args.batch, "--batch")?,
                seq: need(args.seq, "--seq")?,
                input: need(args.input, "--input")?,
                units: need(args.units, "--units")?,
                image: args.image,
                kernel: args.kernel,
            }]
        }
    };
    let dtype = args.dtype.name();
    if !args.json {
        println!(
            "recurrent bench, device {device_name}, {dtype}, {threads} CPU thread(s), median of {repeats} runs after {warmup} warm-up(s)"
        );
        let peak_col = if args.peak_tflops.is_some() {
            format!(" {:>7}", "% peak")
        } else {
            String::new()
        };
        let path_col = if on_gpu {
            format!("  {}", "kernels")
        } else {
            String::new()
        };
        println!(
            "{:<17} {:>5} {:>5} {:>6} {:>6} {:>12} {:>12} {:>9}{peak_col}{path_col}",
            "layer", "B", "T", "I", "H", "median ms", "us/step", "GFLOP/s"
        );
    }
    for s in &shapes {
        #[cfg(feature = "cuda")]
        let t = match &cuda {
            Some(dev) => time_cuda(dev, s, storage, args, warmup, repeats)?,
            None => time(s, warmup, repeats)?,
        };
        #[cfg(not(feature = "cuda"))]
        let t = time(s, warmup, repeats)?;
        let gflops = s.flops() / (t.median_us * 1e3);
        let per_step = t.median_us / s.seq as f64;
        let peak = args.peak_tflops.map(|p| 100.0 * gflops / (p * 1e3));
        if args.json {
            let mut o = serde_json::json!({
                "device": device_name, "dtype": dtype, "math": math, "threads": threads,
                "layer": s.layer.name(), "batch": s.batch, "seq": s.seq, "input": s.input, "units": s.units,
                "median_us": t.median_us, "min_us": t.min_us, "max_us": t.max_us,
                "us_per_step": per_step, "gflops": gflops, "tflops": gflops / 1e3,
                "repeats": repeats, "warmup": warmup,
            });
            if on_gpu {
                o["path"] = args.cuda_path.name().into();
                o["tensor_core_steps"] = args.tensor_core_steps.into();
            }
            if let Some(p) = t.path_used {
                o["path_used"] = p.into();
            }
            if s.layer == BenchLayer::ConvLstm2d {
                o["image"] = s.image.into();
                o["kernel"] = s.kernel.into();
            } else {
                o["layers"] = (if s.layer == BenchLayer::Lstm4 { 4 } else { 1 }).into();
            }
            if let Some(p) = peak {
                o["percent_of_peak"] = p.into();
            }
            println!("{o}");
        } else {
            let (i, h) = if s.layer == BenchLayer::ConvLstm2d {
                (
                    format!("{}@{}", s.input, s.image),
                    format!("{}k{}", s.units, s.kernel),
                )
            } else {
                (s.input.to_string(), s.units.to_string())
            };
            let peak = peak.map_or(String::new(), |p| format!(" {p:>7.1}"));
            let path = t.path_used.map_or(String::new(), |p| format!("  {p}"));
            println!(
                "{:<17} {:>5} {:>5} {:>6} {:>6} {:>12.3} {:>12.2} {:>9.2}{}{}",
                s.layer.name(),
                s.batch,
                s.seq,
                i,
                h,
                t.median_us / 1e3,
                per_step,
                gflops,
                peak,
                path
            );
        }
    }
    Ok(())
}
