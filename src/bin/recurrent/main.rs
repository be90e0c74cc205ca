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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
