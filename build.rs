//! Build script.
//!
//! Without the `cuda` feature it does nothing but declare what it depends on: the crate builds
//! and tests on a machine with no CUDA at all.
//!
//! With `cuda` it compiles every `kernels/*.cu` to a fatbin in `OUT_DIR` (`<stem>.fatbin`,
//! embedded by `src/cuda` with `include_bytes!`): machine code for the target GPU plus its PTX,
//! so the driver loads the kernels without JIT-compiling them on that GPU. Only `nvcc` is needed, at build time; no GPU, driver or CUDA
//! library. `nvcc` is looked up, in this order, at:
//!
//! 1. `$NVCC` (a path to the nvcc executable),
//! 2. `$CUDA_HOME/bin/nvcc`, then `$CUDA_PATH/bin/nvcc`,
//! 3. the repository's `.cuda-toolchain/lib/python3*/site-packages/nvidia/cu13/bin/nvcc`, which
//!    `bash scripts/install_cuda_toolchain.sh` installs from NVIDIA's pinned pip wheels
//!    (CUDA 13.0, matching the GPU machine's driver),
//! 4. `nvcc` on `$PATH`.
//!
//! Environment:
//! * `RECURRENT_CUDA_ARCH`: the target passed as `-arch=`; default `sm_90` (Hopper, H100 /
//!   H200: sm_90 machine code and compute_90 PTX). Any value nvcc accepts with `-fatbin` from
//!   sm_80 on (the bf16 tensor-core kernels need it; older targets are refused), e.g. `sm_80`
//!   for A100, `sm_89` for Ada, or `compute_90` for PTX only. On a GPU without matching
//!   machine code the driver JIT-compiles the PTX at load time (same or newer architecture than
//!   the target; seconds per module, cached by the driver).
//!
//! Flags: `-fatbin -O3 -std=c++17 -I kernels`. Never `--use_fast_math`: the GPU path must match
//! the CPU reference within 1e-5 + 1e-4 * |ref|, and fast-math's approximate `expf` / division
//! would eat into that.
//!
//! Without nvcc a `cuda` build fails with one message saying how to get it. This script never
//! panics: every failure prints its reason to stderr and exits with status 1.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const ENV_VARS: &[&str] = &[
    "NVCC",
    "CUDA_HOME",
    "CUDA_PATH",
    "RECURRENT_CUDA_ARCH",
    "CARGO_FEATURE_CUDA",
];

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels");
    for v in ENV_VARS {
        println!("cargo:rerun-if-env-changed={v}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let manifest = match env::var_os("CARGO_MANIFEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => fail("CARGO_MANIFEST_DIR is not set (build.rs must run under cargo)"),
    };
    let out_dir = match env::var_os("OUT_DIR") {
        Some(d) => PathBuf::from(d),
        None => fail("OUT_DIR is not set (build.rs must run under cargo)"),
    };
    let kernels = manifest.join("kernels");
    let (sources, headers) = kernel_files(&kernels);
    for f in sources.iter().chain(headers.iter()) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if sources.is_empty() {
        fail(&format!(
            "feature `cuda`: no kernels/*.cu files found in {}",
            kernels.display()
        ));
    }
    let nvcc = match find_nvcc(&manifest) {
        Some(p) => p,
        None => fail(
            "feature `cuda` needs nvcc (the CUDA 13.0 compiler) to build the kernels, and none was found.\n  \
             Install it into the repository (no GPU needed, about 260 MB of pip wheels):\n      \
             bash scripts/install_cuda_toolchain.sh\n  \
             or point to an installed one with NVCC=/path/to/nvcc, or CUDA_HOME / CUDA_PATH (bin/nvcc), \
             or put nvcc on PATH.\n  \
             Build without `--features cuda` for the CPU path only.",
        ),
    };
    let arch = env::var("RECURRENT_CUDA_ARCH").unwrap_or_else(|_| "sm_90".to_string());
    if arch.is_empty() || !arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        fail(&format!(
            "RECURRENT_CUDA_ARCH={arch:?} is not an nvcc architecture name (expected e.g. compute_90, sm_90, sm_80)"
        ));
    }
    // The tensor-core kernels use bf16 WMMA fragments, which exist from sm_80 (A100) on.
    let digits: String = arch.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.parse::<u32>().is_ok_and(|n| n < 80) {
        fail(&format!(
            "RECURRENT_CUDA_ARCH={arch}: the kernels need sm_80 or newer (bf16 tensor-core fragments); use sm_80, sm_86, sm_89, sm_90 or a compute_ equivalent"
        ));
    }
    for src in &sources {
        compile(&nvcc, src, &kernels, &out_dir, &arch);
    }
}

/// `kernels/*.cu` and `kernels/*.cuh`, each sorted.
fn kernel_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => fail(&format!(
            "feature `cuda`: cannot read {}: {e}",
            dir.display()
        )),
    };
    let mut sources = Vec::new();
    let mut headers = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("cu") => sources.push(p),
            Some("cuh") => headers.push(p),
            _ => {}
        }
    }
    sources.sort();
    headers.sort();
    (sources, headers)
}

/// A regular file with an execute bit (any file on non-unix hosts).
fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The nvcc to use (see the header for the order), or `None`.
fn find_nvcc(manifest: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC") {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Some(p);
        }
        fail(&format!(
            "NVCC={} does not name an nvcc executable",
            p.display()
        ));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(home) = env::var_os(var) {
            let p = PathBuf::from(home).join("bin").join("nvcc");
            if is_executable(&p) {
                return Some(p);
            }
        }
    }
    let lib = manifest.join(".cuda-toolchain").join("lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/nvidia/cu13/bin").join("nvcc"))
            .filter(|p| is_executable(p))
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return Some(p);
        }
    }
    let path: OsString = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join("nvcc"))
        .find(|p| is_executable(p))
}

fn compile(nvcc: &Path, src: &Path, include: &Path, out_dir: &Path, arch: &str) {
    let stem = match src.file_stem() {
        Some(s) => s.to_string_lossy().to_string(),
        None => fail(&format!("kernel file without a name: {}", src.display())),
    };
    let out = out_dir.join(format!("{stem}.fatbin"));
    let result = Command::new(nvcc)
        .arg("-fatbin")
        .arg(format!("-arch={arch}"))
        .arg("-O3")
        .arg("-std=c++17")
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(&out)
        .arg(src)
        .output();
    match result {
        Err(e) => fail(&format!("cannot run {}: {e}", nvcc.display())),
        Ok(o) if !o.status.success() => fail(&format!(
            "nvcc failed on {} ({}):\n{}{}",
            src.display(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Ok(o) => {
            // nvcc warnings would otherwise vanish into cargo's captured output.
            let stderr = String::from_utf8_lossy(&o.stderr);
            if !stderr.trim().is_empty() {
                fail(&format!(
                    "nvcc printed warnings on {} (the kernels are kept warning-free):\n{stderr}",
                    src.display()
                ));
            }
        }
    }
}
