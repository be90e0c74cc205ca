#!/usr/bin/env bash
# Installs NVIDIA's CUDA 13.0 compiler (nvcc) from NVIDIA's pip wheels into .cuda-toolchain/
# (gitignored), so that `cargo build --features cuda` can compile kernels/*.cu to PTX on a
# machine with no GPU and no CUDA toolkit. About 260 MB.
#
# Version 13.0 matches the GPU machine's driver (580, CUDA 13.0): PTX from a newer nvcc (13.1
# and later) can be refused by that driver, so the versions are pinned.
# (cuda_fp16.h needs the cccl wheel: without it nvcc fails with 'nv/target: No such file'.)
#
# Idempotent: when .cuda-toolchain already has a working nvcc, nothing is installed.
# Prints the path of nvcc as its last line. build.rs finds nvcc there by itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cuda-toolchain"

find_nvcc() {
    local p
    for p in "$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc; do
        if [ -x "$p" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

if nvcc_path="$(find_nvcc)" && "$nvcc_path" --version >/dev/null 2>&1; then
    echo "nvcc already installed: $("$nvcc_path" --version | tail -n 2 | head -n 1)" >&2
    echo "$nvcc_path"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 is needed to install the nvcc wheels" >&2
    exit 1
fi

if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" || {
        echo "error: 'python3 -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi

"$venv/bin/pip" install --disable-pip-version-check --quiet \
    nvidia-cuda-nvcc==13.0.88 \
    nvidia-nvvm==13.0.88 \
    nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 \
    "nvidia-cuda-cccl==13.0.*"

if ! nvcc_path="$(find_nvcc)"; then
    echo "error: the wheels installed but no nvcc was found under $venv/lib/python3*/site-packages/nvidia/cu13/bin" >&2
    exit 1
fi
if ! "$nvcc_path" --version >/dev/null 2>&1; then
    echo "error: $nvcc_path does not run" >&2
    exit 1
fi
echo "installed: $("$nvcc_path" --version | tail -n 2 | head -n 1)" >&2
echo "$nvcc_path"
