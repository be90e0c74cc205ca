#!/usr/bin/env bash
# CPU comparison: ONNX Runtime (benches/ort_reference.py) against `recurrent bench`, same
# shapes, same thread counts; prints a Markdown table on stdout (progress goes to stderr).
#
#   benches/cpu_compare.sh > cpu_compare.md
#   THREADS="1" REPEATS=5 benches/cpu_compare.sh
#   PYTHON=/path/to/venv/bin/python benches/cpu_compare.sh
#
# Environment (all optional):
#   PYTHON   Python with onnxruntime and onnx. Default: the README's venv at the repository
#            root, <repo>/.kvenv/bin/python, after
#              .kvenv/bin/pip install onnxruntime==1.31.1 onnx
#            (this script installs nothing).
#   THREADS  thread counts to run, default "1 2" (ORT intra_op_num_threads; ours --threads).
#   REPEATS  timed runs per shape for both engines, default 10.
#   ROUNDS   rounds per row, default 3: the two engines run alternately ROUNDS times and
#            each keeps its lowest median. This machine's cores are shared (virtual CPUs):
#            a neighbour's burst only ever slows a run down, by up to 2x on two threads,
#            so one run per engine could hand either side a ratio it did not earn.
#   LAYERS   default "lstm gru" (gru = reset_after / linear_before_reset=1);
#            gru_reset_before is also accepted.
#   SHAPES   space-separated B,T,I,H; default the CPU shape set of `recurrent bench`.
#   CONV     "1" (default) also times ConvLSTM2D 4,10,16@32x32,32 filters,3x3,same against
#            Keras 2 (benches/keras_reference.py: tf-keras in a tf.function, TensorFlow's
#            intra-op threads = the thread count; ONNX has no ConvLSTM node); "0" skips it.
#            Needs tensorflow-cpu and tf-keras in $PYTHON (the README's venv).
#
# ratio = ORT median / ours median: above 1 means `recurrent` is faster. ORT is given
# X time-major ([T, B, I], layout 0), so no transpose is timed on its side. If the Rust
# bench fails for a row (e.g. a flag it does not accept), that row shows "n/a" for ours.
set -euo pipefail

cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
ROOT=$(pwd)
PYTHON=${PYTHON:-$ROOT/.kvenv/bin/python}
THREADS=${THREADS:-"1 2"}
REPEATS=${REPEATS:-10}
ROUNDS=${ROUNDS:-3}
LAYERS=${LAYERS:-"lstm gru"}
CONV=${CONV:-1}
SHAPES=${SHAPES:-"1,100,128,128 1,100,512,512 16,100,256,256 64,50,512,512 256,25,1024,1024"}
COMMAND="THREADS=\"$THREADS\" REPEATS=$REPEATS ROUNDS=$ROUNDS LAYERS=\"$LAYERS\" SHAPES=\"$SHAPES\" CONV=$CONV PYTHON=$PYTHON benches/cpu_compare.sh"

if ! "$PYTHON" -c "import onnx, onnxruntime" 2> /dev/null; then
    echo "$PYTHON cannot import onnxruntime and onnx; set PYTHON or run" >&2
    echo "  python3 -m venv .kvenv && .kvenv/bin/pip install onnxruntime==1.31.1 onnx" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "building the release binary ..." >&2
rust_ok=1
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/recurrent
if ! cargo build --release --quiet >&2; then
    echo "cargo build --release failed: the 'ours' column will be n/a" >&2
    rust_ok=0
fi

: > "$tmp/plan"
for n in $THREADS; do
    for layer in $LAYERS; do
        for shape in $SHAPES; do
            IFS=, read -r b t i h <<< "$shape"
            key="$layer.$b.$t.$i.$h.$n"
            echo "$key" >> "$tmp/plan"
            for round in $(seq "$ROUNDS"); do
                echo "[$key] round $round: onnxruntime ..." >&2
                if ! "$PYTHON" benches/ort_reference.py --layer "$layer" --batch "$b" \
                    --seq "$t" --input "$i" --units "$h" --threads "$n" --repeats "$REPEATS" \
                    --json >> "$tmp/ort.$key" 2> "$tmp/ort.$key.err"; then
                    echo "  onnxruntime failed: $(tail -n 1 "$tmp/ort.$key.err")" >&2
                fi
                if [ "$rust_ok" = 1 ]; then
                    echo "[$key] round $round: recurrent ..." >&2
                    # clap spells the value gru-reset-before; the JSON says gru_reset_before.
                    if ! "$BIN" bench --layer "${layer//_/-}" --batch "$b" --seq "$t" \
                        --input "$i" --units "$h" --threads "$n" --repeats "$REPEATS" --json \
                        >> "$tmp/ours.$key" 2> "$tmp/ours.$key.err"; then
                        echo "  recurrent bench failed: $(tail -n 1 "$tmp/ours.$key.err")" >&2
                    fi
                fi
            done
        done
    done
    if [ "$CONV" = 1 ]; then
        key="conv_lstm2d.4.10.16.32.$n"
        echo "$key" >> "$tmp/plan"
        for round in $(seq "$ROUNDS"); do
            echo "[$key] round $round: keras ..." >&2
            if ! "$PYTHON" benches/keras_reference.py --batch 4 --seq 10 --input 16 --image 32 \
                --units 32 --kernel 3 --threads "$n" --repeats "$REPEATS" --json \
                >> "$tmp/ort.$key" 2> "$tmp/ort.$key.err"; then
                echo "  keras failed: $(tail -n 1 "$tmp/ort.$key.err")" >&2
            fi
            if [ "$rust_ok" = 1 ]; then
                echo "[$key] round $round: recurrent ..." >&2
                if ! "$BIN" bench --layer conv-lstm2d --batch 4 --seq 10 --input 16 --image 32 \
                    --units 32 --kernel 3 --threads "$n" --repeats "$REPEATS" --json \
                    >> "$tmp/ours.$key" 2> "$tmp/ours.$key.err"; then
                    echo "  recurrent bench failed: $(tail -n 1 "$tmp/ours.$key.err")" >&2
                fi
            fi
        done
    fi
done

CPU_MODEL=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
CPU_COUNT=$(nproc --all)
export CPU_MODEL CPU_COUNT COMMAND ROUNDS
"$PYTHON" - "$tmp" <<'EOF'
import datetime, json, os, subprocess, sys

tmp = sys.argv[1]

def load(path):
    """The round with the lowest median (see ROUNDS)."""
    try:
        with open(path) as f:
            runs = [json.loads(l) for l in f if l.strip().startswith("{")]
        return min(runs, key=lambda r: r["median_us"]) if runs else None
    except (OSError, ValueError, KeyError):
        return None

def rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return "?"

rows, ort_version, keras_version = [], None, None
for key in open(os.path.join(tmp, "plan")).read().split():
    layer, b, t, i, h, n = key.split(".")
    ort = load(os.path.join(tmp, "ort." + key))
    ours = load(os.path.join(tmp, "ours." + key))
    if ort and layer == "conv_lstm2d":
        keras_version = ort.get("version", keras_version)
    elif ort:
        ort_version = ort.get("version", ort_version)
    o = f"{ort['median_us']:.0f}" if ort else "n/a"
    u = f"{ours['median_us']:.0f}" if ours else "n/a"
    if ours and int(ours.get("threads", n)) != int(n):
        u += f" ({ours['threads']} thr)"
    ratio = f"{ort['median_us'] / ours['median_us']:.2f}" if ort and ours else "n/a"
    if layer == "conv_lstm2d":
        # The reference is Keras (tf-keras), not ORT; I and H are channels@image and filters.
        rows.append(f"| conv_lstm2d (vs Keras) | {b} | {t} | {i}@{h}x{h} | 32, 3x3 | {n} | {o} | {u} | {ratio} |")
        continue
    rows.append(f"| {layer} | {b} | {t} | {i} | {h} | {n} | {o} | {u} | {ratio} |")

print("# CPU: ONNX Runtime vs recurrent")
print()
print(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
print(f"- machine: {os.environ['CPU_MODEL']}, {os.environ['CPU_COUNT']} cores")
print(f"- onnxruntime {ort_version or 'n/a'}; Keras: {keras_version or 'n/a'}; recurrent at {rev()}")
print(f"- command: `{os.environ['COMMAND']}`")
print(f"- µs per forward pass: the median of the timed runs, lowest of {os.environ['ROUNDS']} alternating rounds;")
print("  ratio = ORT / ours (> 1: ours faster);")
print("  the conv_lstm2d rows compare with Keras 2 (tf-keras in a tf.function): ratio = Keras / ours")
print()
print("| layer | B | T | I | H | threads | reference µs | ours µs | ratio |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
print("\n".join(rows))
EOF
