#!/usr/bin/env bash
# Runs the CUDA kernels on the CPU: kernels/emu/emu.h emulates the CUDA execution model
# (every thread of a block as a real thread, __syncthreads as a barrier, warp shuffles), and
# kernels/emu/harness.cpp launches the real kernels/*.cu on random inputs, output buffers
# filled with NaN first, and compares with a double-precision reference of the Keras
# equations (1e-5 + 1e-4*|ref|). Catches indexing, masking and reduction bugs without a GPU;
# it says nothing about timing or about the Rust launch code.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
g++ -O2 -std=c++20 -pthread -Ikernels/emu -Ikernels kernels/emu/harness.cpp -o target/kernel-emu
target/kernel-emu
