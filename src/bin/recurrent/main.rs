//! The `recurrent` command line: `run` (the Keras interchange contract) and `bench`.

use clap::{Parser, Subcommand, ValueEnum};
use recurrent::keras::{run_files, Device, RunFiles, StorageType};
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
    /// Run one exported Keras layer on an input and write its outputs (docs/keras-interchange.md).
    Run {
        /// `layer.json`: {"class_name": ..., "config": layer.get_config()}.
        #[arg(long)]
        layer: PathBuf,
        /// `weights.npz`: the layer's weights by Keras name.
        #[arg(long)]
        weights: PathBuf,
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
            "--layer" | "--weights" | "--input" | "--mask" | "--initial-state" => {
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
            input,
            mask,
            initial_state,
            device,
            dtype,
            output,
        } => run_files(&RunFiles {
            layer,
            weights,
            input,
            mask,
            initial_state,
            output,
            device: match device {
                DeviceArg::Cpu => Device::Cpu,
                DeviceArg::Cuda => Device::Cuda,
            },
            dtype: match dtype {
                DtypeArg::F32 => StorageType::F32,
                DtypeArg::F16 => StorageType::F16,
                DtypeArg::Bf16 => StorageType::BF16,
            },
        }),
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
