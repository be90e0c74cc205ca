#!/usr/bin/env bash
# Resource report of every kernel: compiles each kernels/*.cu to a cubin for a real GPU target
# (default sm_90, H100 / H200; override with RECURRENT_REPORT_ARCH=sm_80 etc.) with
# `ptxas -v`, and prints per kernel: registers, static shared memory, stack frame and spills.
# The f16 / bf16 variants (weights in half storage) are part of every file.
#
# Exits 1 when any kernel spills (spill stores or loads > 0) or nvcc fails: spills mean local
# memory traffic in the per-step kernels, which the design keeps at zero.
#
# nvcc is found like build.rs does: $NVCC, $CUDA_HOME/bin/nvcc, $CUDA_PATH/bin/nvcc, the
# repository's .cuda-toolchain (bash scripts/install_cuda_toolchain.sh), then PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch="${RECURRENT_REPORT_ARCH:-sm_90}"

find_nvcc() {
    local p
    if [ -n "${NVCC:-}" ] && [ -x "$NVCC" ]; then echo "$NVCC"; return 0; fi
    for h in "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
        if [ -n "$h" ] && [ -x "$h/bin/nvcc" ]; then echo "$h/bin/nvcc"; return 0; fi
    done
    for p in "$root"/.cuda-toolchain/lib/python3*/site-packages/nvidia/cu13/bin/nvcc; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return 0; fi
    return 1
}

if ! nvcc="$(find_nvcc)"; then
    echo "error: nvcc not found; run: bash scripts/install_cuda_toolchain.sh (or set NVCC / CUDA_HOME)" >&2
    exit 1
fi
echo "nvcc: $nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*' || true)), target $arch"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0
for src in "$root"/kernels/*.cu; do
    name="$(basename "$src" .cu)"
    log="$tmp/$name.log"
    if ! "$nvcc" -cubin -arch="$arch" -O3 -std=c++17 -I "$root/kernels" \
        -Xptxas -v -o "$tmp/$name.cubin" "$src" >"$log" 2>&1; then
        cat "$log" >&2
        echo "error: nvcc failed on $src" >&2
        exit 1
    fi
    echo
    echo "== kernels/$name.cu"
    # ptxas prints per function: 'Compiling entry function NAME' (kernels) or 'Function
    # properties for NAME' (device functions), then the stack / spill line, then 'Used N
    # registers, ... bytes smem' (kernels only).
    if ! awk '
        function flush() {
            if (fn != "") {
                printf "%-44s %5s %7s %7s %7s %7s\n", fn, regs, smem, stack, sst, sld
                if (sst + 0 > 0 || sld + 0 > 0) { spilled = 1 }
            }
            fn = ""; regs = "-"; smem = "0"; stack = "0"; sst = "0"; sld = "0"
        }
        BEGIN {
            printf "%-44s %5s %7s %7s %7s %7s\n", "function", "regs", "smem B", "stack B", "spill-st", "spill-ld"
            fn = ""; spilled = 0
        }
        /Compiling entry function/ { flush(); match($0, /'\''[^'\'']+'\''/); fn = substr($0, RSTART + 1, RLENGTH - 2); next }
        /Function properties for/ { if (fn == "" || regs != "-") { flush(); fn = $NF } ; next }
        /bytes stack frame/ {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) == "bytes" && $(i+2) == "stack") stack = $i
                if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) ~ /^stores/) sst = $i
                if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) ~ /^loads/) sld = $i
            }
            next
        }
        /Used [0-9]+ registers/ {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^registers/) regs = $i
                if ($(i+1) == "bytes" && $(i+2) ~ /^smem/) smem = $i
            }
            next
        }
        END { flush(); exit spilled }
    ' "$log"; then
        echo "error: a kernel of kernels/$name.cu spills registers (see the table)" >&2
        status=1
    fi
done
echo
if [ "$status" -eq 0 ]; then
    echo "spills: 0 in every kernel"
fi
exit "$status"
