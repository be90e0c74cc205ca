#!/usr/bin/env bash
# Builds, HERE (no GPU needed, only nvcc: bash scripts/install_cuda_toolchain.sh), everything the
# GPU machine runs, into target/gpu-bundle/ (ignored by git; carry it to the device machine):
#
#   target/gpu-bundle/recurrent          the CLI (release, --features cuda)
#   target/gpu-bundle/tests/gpu_*        every integration-test executable named gpu_* (release,
#                                        --features cuda), from `cargo test --no-run`
#   target/gpu-bundle/fixtures/          tests/fixtures (the Keras cases)
#   target/gpu-bundle/fixtures_files/    tests/fixtures_files (Keras model files: chains, Bidirectional)
#   target/gpu-bundle/fuzz/              random Keras cases: tests/fixtures_fuzz (seed 1), plus 180
#                                        draws at larger sizes from scripts/keras_fuzz.py --write
#                                        when the Keras venv is there (.kvenv, or
#                                        RECURRENT_KERAS_PYTHON; seed RECURRENT_FUZZ_SEED, default 2)
#   target/gpu-bundle/MANIFEST.txt       commit, build date, nvcc, file sizes and sha256
#
# The GPU machine has no Rust toolchain and no network: scripts/gpu_session.sh runs what is
# here. The bundle must stay under 60 MiB (the device tool carries at most 64 MiB); the
# executables' debug info is stripped (their symbols stay).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bundle="$root/target/gpu-bundle"
limit=$((60 * 1024 * 1024))

rm -rf "$bundle"
mkdir -p "$bundle/tests"

echo "== cargo build --release --features cuda --bin recurrent"
cargo build --release --features cuda --bin recurrent

echo "== cargo test --release --features cuda --no-run"
json="$root/target/gpu-bundle-build.json"
cargo test --release --features cuda --no-run --message-format=json >"$json"

# Integration-test executables named gpu_*: (name, path) per line.
python3 - "$json" >"$root/target/gpu-bundle-tests.txt" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m.get("target", {})
    if not m.get("profile", {}).get("test") or "test" not in t.get("kind", []):
        continue
    name = t.get("name", "")
    if name.startswith("gpu_") and name not in seen:
        seen.add(name)
        print(name, m["executable"])
PY
if [ ! -s "$root/target/gpu-bundle-tests.txt" ]; then
    echo "error: cargo test --no-run produced no gpu_* test executable" >&2
    exit 1
fi
while read -r name exe; do
    cp "$exe" "$bundle/tests/$name"
    echo "test executable: $name <- $exe"
done <"$root/target/gpu-bundle-tests.txt"

cp "$root/target/release/recurrent" "$bundle/recurrent"
cp -r "$root/tests/fixtures" "$bundle/fixtures"
cp -r "$root/tests/fixtures_files" "$bundle/fixtures_files"

# The committed corpus (seed 1, small sizes), then fresh draws at larger sizes (seed 2).
cp -r "$root/tests/fixtures_fuzz" "$bundle/fuzz"
kpy="${RECURRENT_KERAS_PYTHON:-$root/.kvenv/bin/python}"
if [ -x "$kpy" ] && "$kpy" -c "import tf_keras" >/dev/null 2>&1; then
    echo "== random Keras cases (scripts/keras_fuzz.py --write)"
    fuzz_log="$root/target/gpu-bundle-fuzz.log"
    if "$kpy" "$root/scripts/keras_fuzz.py" --cases 180 --seed "${RECURRENT_FUZZ_SEED:-2}" \
        --large-share 0.3 --write "$bundle/fuzz" >"$fuzz_log" 2>&1; then
        tail -n 1 "$fuzz_log"
    else
        grep -E "FAILED|keras_fuzz seed" "$fuzz_log" || tail -n 20 "$fuzz_log"
        echo "keras_fuzz failed (log: $fuzz_log): its failing cases, if any, are in the bundle and fail there too"
    fi
else
    echo "== no Keras venv ($kpy): only tests/fixtures_fuzz's random Keras cases in the bundle"
fi

# Debug info is most of the executables' size (profile.release has debug = 1); the symbol
# table stays, so backtraces still name functions.
strip --strip-debug "$bundle/recurrent" "$bundle"/tests/*
total="$(du -sb "$bundle" | cut -f1)"
if [ "$total" -gt "$limit" ]; then
    echo "error: target/gpu-bundle is $total bytes, over the 60 MiB limit" >&2
    du -ab "$bundle" | sort -n | tail -n 10 >&2
    exit 1
fi

nvcc_line="unknown"
for p in "$root"/.cuda-toolchain/lib/python3*/site-packages/nvidia/cu13/bin/nvcc; do
    if [ -x "$p" ]; then nvcc_line="$("$p" --version | grep -o 'release [0-9.]*, V[0-9.]*' || true)"; fi
done
{
    echo "recurrent GPU bundle"
    echo "commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    echo "nvcc: ${NVCC:-$nvcc_line}"
    echo "kernel target: ${RECURRENT_CUDA_ARCH:-compute_90}"
    echo "total bytes: $total"
    echo
    (cd "$bundle" && find . -type f ! -path './fixtures/*' ! -path './fixtures_files/*' ! -path './fuzz/*' ! -name MANIFEST.txt -print0 | sort -z | xargs -0 sha256sum)
    echo "fixtures: $(find "$bundle/fixtures" -name layer.json | wc -l) cases"
    echo "model-file fixtures: $(find "$bundle/fixtures_files" -name case.json | wc -l) cases"
    echo "random Keras cases: $(find "$bundle/fuzz" -name layer.json 2>/dev/null | wc -l)"
} >"$bundle/MANIFEST.txt"
cat "$bundle/MANIFEST.txt"
echo
echo "bundle ready: target/gpu-bundle ($total bytes). On the GPU machine: bash scripts/gpu_session.sh"
