//! The `recurrent` command line: `run` (the Keras interchange contract, or layers of a Keras
//! model file), `inspect` (the layers of a Keras file) and `bench`.

use clap::{Parser, Subcommand, ValueEnum};
use recurrent::keras::{
    run_files, run_model_files, Device, KerasFile, ModelRunFiles, RunFiles, StorageType,
};
use std::path::PathBuf;
use std::process::ExitCode;

mod bench;

#[derive(Parser)]
#[command(
    name = "recurrent",
    version,
    about = "Keras 2 recurrent layers on the CPU and NVIDIA GPUs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    F32,
    F16,
    Bf16,
}

#[derive(Subcommand)]
enum Command {
    /// Run one exported Keras layer (--layer, --weights), or layers of a Keras model file
    /// (--model [--layers]), on an input and write its outputs (docs/keras-interchange.md,
    /// docs/keras-files.md).
    Run {
        /// `layer.json`: {"class_name": ..., "config": layer.get_config()}.
        #[arg(long, required_unless_present = "model", conflicts_with = "model")]
        layer: Option<PathBuf>,
        /// `weights.npz`: the layer's weights by Keras name; or a Keras 2 `.h5` weights file
        /// (`save_weights`), matched by layer name. With --model: a `.h5` weights file for the
        /// model (needed when --model is a model config JSON).
        #[arg(long, required_unless_present = "model")]
        weights: Option<PathBuf>,
        /// A Keras model file: `.h5` (`model.save`), `.keras`, or `model.to_json()` with
        /// --weights.
        #[arg(long)]
        model: Option<PathBuf>,
        /// With --model: the layers to run as a chain, comma-separated (default: the file's one
        /// recurrent layer or one chain of consecutive recurrent layers).
        #[arg(
            long,
            value_delimiter = ',',
            requires = "model",
            conflicts_with = "layer"
        )]
        layers: Option<Vec<String>>,
        /// `x.npy`: float32 input.
        #[arg(long)]
        input: PathBuf,
        /// `mask.npy`: bool (batch, time), true = real step.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// `initial_state.npz`: h (and c); cells.0.h, ... for a stack.
        #[arg(long = "initial-state")]
        initial_state: Option<PathBuf>,
        /// Where to run.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Storage type of weights, inputs and outputs (arithmetic is f32).
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DtypeArg,
        /// `out.npz` to write (atomically; nothing is left on failure).
        #[arg(long)]
        output: PathBuf,
    },
    /// List the layers of a Keras file (.h5, .keras, model JSON): name, class, input / output
    /// shapes, weights and whether `recurrent run --model` runs them.
    Inspect {
        /// The Keras file.
        file: PathBuf,
        /// A Keras 2 `.h5` weights file (`save_weights`) for a model config JSON.
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Time the layers and print a table (µs per step, GFLOP/s).
    Bench(bench::BenchArgs),
}

/// Removes the file named by `--output` (or `--output=`) of a `run` command line that failed to
/// parse, unless it is also named as an input.
fn remove_stale_output() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("run") {
        return;
    }
    let mut output = None;
    let mut inputs = Vec::new();
    let mut it = args.iter().skip(2).peekable();
    while let Some(a) = it.next() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let value = value.or_else(|| it.peek().map(|v| v.to_string()));
        match flag.as_str() {
            "--output" => output = value,
            "--layer" | "--weights" | "--model" | "--input" | "--mask" | "--initial-state" => {
                inputs.extend(value)
            }
            _ => {}
        }
    }
    if let Some(o) = output {
        let p = PathBuf::from(&o);
        let canon = std::fs::canonicalize(&p).ok();
        let is_input = inputs
            .iter()
            .any(|i| std::fs::canonicalize(i).ok() == canon && canon.is_some());
        if p.is_file() && !is_input {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A malformed `run` command line must not leave an earlier run's output behind.
            if e.kind() != clap::error::ErrorKind::DisplayHelp
                && e.kind() != clap::error::ErrorKind::DisplayVersion
            {
                remove_stale_output();
            }
            e.exit();
        }
    };
    let result = match cli.command {
        Command::Run {
            layer,
            weights,
            model,
            layers,
            input,
            mask,
            initial_state,
            device,
            dtype,
            output,
        } => {
            let device = match device {
                DeviceArg::Cpu => Device::Cpu,
                DeviceArg::Cuda => Device::Cuda,
            };
            let dtype = match dtype {
                DtypeArg::F32 => StorageType::F32,
                DtypeArg::F16 => StorageType::F16,
                DtypeArg::Bf16 => StorageType::BF16,
            };
            match (model, layer, weights) {
                (Some(model), _, weights) => run_model_files(&ModelRunFiles {
                    model,
                    weights,
                    layers,
                    input,
                    mask,
                    initial_state,
                    output,
                    device,
                    dtype,
                }),
                (None, Some(layer), Some(weights)) => run_files(&RunFiles {
                    layer,
                    weights,
                    input,
                    mask,
                    initial_state,
                    output,
                    device,
                    dtype,
                }),
                // clap requires --layer and --weights without --model; say so if it ever lets
                // one through.
                _ => Err(recurrent::Error::invalid(
                    "run",
                    "expected --model FILE, or --layer layer.json with --weights weights.npz",
                )),
            }
        }
        Command::Inspect { file, weights } => {
            let f = match weights {
                Some(w) => KerasFile::open_with_weights(&file, w),
                None => KerasFile::open(&file),
            };
            f.map(|f| print!("{}", f.describe()))
        }
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
