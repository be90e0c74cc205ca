//! `recurrent bench`: times layers at a default shape set or one shape from flags.

use clap::{Args, ValueEnum};
use ndarray::ArrayD;
use recurrent::config::{
    ConvLSTM2DConfig, GRUCellConfig, LSTMCellConfig, Padding, SequenceOptions, SimpleRNNCellConfig,
};
use recurrent::initializers::Initializer;
use recurrent::layers::{ConvLSTM2D, SimpleRNN, GRU, LSTM};
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
}

impl BenchLayer {
    fn name(self) -> &'static str {
        match self {
            BenchLayer::Lstm => "lstm",
            BenchLayer::Gru => "gru",
            BenchLayer::GruResetBefore => "gru_reset_before",
            BenchLayer::SimpleRnn => "simple_rnn",
            BenchLayer::ConvLstm2d => "conv_lstm2d",
        }
    }
    fn gates(self) -> usize {
        match self {
            BenchLayer::Lstm | BenchLayer::ConvLstm2d => 4,
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

/// Flags of `recurrent bench`. With no shape flags, the default shape set runs.
#[derive(Args)]
pub struct BenchArgs {
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    device: BenchDevice,
    /// One layer to time (with the shape flags); default: the default shape set.
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
    /// Timed runs per shape (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
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
            v.push(Shape {
                layer,
                batch,
                seq,
                input,
                units,
                image: 0,
                kernel: 0,
            });
        }
    }
    for layer in [BenchLayer::GruResetBefore, BenchLayer::SimpleRnn] {
        v.push(Shape {
            layer,
            batch: 16,
            seq: 100,
            input: 256,
            units: 256,
            image: 0,
            kernel: 0,
        });
    }
    v.push(Shape {
        layer: BenchLayer::ConvLstm2d,
        batch: 4,
        seq: 10,
        input: 16,
        units: 32,
        image: 32,
        kernel: 3,
    });
    v
}

enum Built {
    Lstm(LSTM),
    Gru(GRU),
    Simple(SimpleRNN),
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
}

fn time(s: &Shape, repeats: usize) -> Result<Timing> {
    let (mut layer, x) = build(s)?;
    run_once(&mut layer, &x)?; // warm-up: page in weights, allocate
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
    })
}

/// Times the layer of `s` on the GPU: weights and input uploaded once, then `repeats` forward
/// passes after one warm-up, each followed by a device synchronisation before the clock stops.
#[cfg(feature = "cuda")]
fn time_cuda(dev: &recurrent::cuda::CudaDevice, s: &Shape, repeats: usize) -> Result<Timing> {
    use recurrent::cuda::CudaLayer;
    let (layer, x) = build(s)?;
    let mut g = match &layer {
        Built::Lstm(l) => CudaLayer::lstm(dev, l)?,
        Built::Gru(l) => CudaLayer::gru(dev, l)?,
        Built::Simple(l) => CudaLayer::simple_rnn(dev, l)?,
        Built::Conv(l) => CudaLayer::conv_lstm2d(dev, l)?,
    };
    let xd = dev.upload(x.view())?;
    g.forward_device(&xd, None, None)?;
    dev.synchronize()?;
    let mut t = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        g.forward_device(&xd, None, None)?;
        dev.synchronize()?;
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(Timing {
        median_us: t[t.len() / 2],
        min_us: t[0],
        max_us: t[t.len() - 1],
    })
}

/// Runs `recurrent bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
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
    let shapes = match args.layer {
        None => {
            if args.batch.is_some()
                || args.seq.is_some()
                || args.input.is_some()
                || args.units.is_some()
            {
                return Err(Error::invalid("--layer", "shape flags need --layer (lstm, gru, gru-reset-before, simple-rnn, conv-lstm2d)"));
            }
            default_shapes()
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
    if !args.json {
        println!(
            "recurrent bench, device {device_name}, f32, {threads} CPU thread(s), median of {} runs after 1 warm-up",
            args.repeats.max(1)
        );
        println!(
            "{:<17} {:>5} {:>5} {:>6} {:>6} {:>12} {:>12} {:>9}",
            "layer", "B", "T", "I", "H", "median ms", "us/step", "GFLOP/s"
        );
    }
    for s in &shapes {
        #[cfg(feature = "cuda")]
        let t = match &cuda {
            Some(dev) => time_cuda(dev, s, args.repeats)?,
            None => time(s, args.repeats)?,
        };
        #[cfg(not(feature = "cuda"))]
        let t = time(s, args.repeats)?;
        let gflops = s.flops() / (t.median_us * 1e3);
        let per_step = t.median_us / s.seq as f64;
        if args.json {
            let mut o = serde_json::json!({
                "device": device_name, "dtype": "f32", "threads": threads,
                "layer": s.layer.name(), "batch": s.batch, "seq": s.seq, "input": s.input, "units": s.units,
                "median_us": t.median_us, "min_us": t.min_us, "max_us": t.max_us,
                "us_per_step": per_step, "gflops": gflops, "repeats": args.repeats.max(1),
            });
            if s.layer == BenchLayer::ConvLstm2d {
                o["image"] = s.image.into();
                o["kernel"] = s.kernel.into();
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
            println!(
                "{:<17} {:>5} {:>5} {:>6} {:>6} {:>12.3} {:>12.2} {:>9.2}",
                s.layer.name(),
                s.batch,
                s.seq,
                i,
                h,
                t.median_us / 1e3,
                per_step,
                gflops
            );
        }
    }
    Ok(())
}
