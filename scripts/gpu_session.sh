#!/usr/bin/env bash
# The one script a GPU session runs ON THE GPU MACHINE (no Rust toolchain, no network there).
#
# Before: build the bundle here with `bash scripts/build_gpu_bundle.sh` and carry it, e.g. with
# the device tool:   run(command="bash scripts/gpu_session.sh", carry=["target/gpu-bundle"])
#
# Usage: bash scripts/gpu_session.sh [PHASE ...]
#   info       nvidia-smi, driver, tools, the bundle's manifest and checksums
#   tests      every target/gpu-bundle/tests/gpu_* executable (GPU against CPU, Keras fixtures)
#   fixtures   every Keras fixture through `recurrent run --device cuda`, compared with its
#              out.npz by numpy (1e-5 + 1e-4 * |want|)
#   fuzz       the same for the random Keras cases of target/gpu-bundle/fuzz/ (written by
#              scripts/keras_fuzz.py --write when the bundle was built; the build prints how
#              many of them failed on the CPU, and those fail here too)
#   bench      `recurrent bench --device cuda`
#   memcheck   compute-sanitizer --tool memcheck over the GPU tests (RECURRENT_GPU_QUICK=1)
#   racecheck  compute-sanitizer --tool racecheck over the GPU tests (RECURRENT_GPU_QUICK=1)
#   initcheck  compute-sanitizer --tool initcheck over the GPU tests without output poisoning
#              (RECURRENT_GPU_NO_POISON=1: output buffers are left uninitialised as in
#              production, so a read before a write is reported)
#   paths      (not in the default list) the dense rows of issue 4's set, f32 and bf16, with
#              the time loop forced to the step kernels, the persistent kernel and (bf16) the
#              tensor-core step kernels, and 4 stacked LSTM cells (T 100: 64 x 512, 64 x 1024,
#              128 x 256) forced to step / persistent / wavefront
#              (`bench --cuda-path`), side by side with the heuristic's choice: the data for
#              tuning persistent_plan's cost model (src/cuda/dense.rs). paths.log, paths_*.jsonl
#   cudnn      (not in the default list) cuDNN through PyTorch on issue 4's shape set, f32,
#              bf16 and f16, JSON rows in cudnn_<dtype>.jsonl (benches/cudnn_reference.py)
#   compare    (not in the default list) issue 4's ratio table: cuDNN and ours side by side,
#              f32, tf32, bf16, f16 (benches/gpu_compare.py; table.md, rows.jsonl, ratios.svg
#              under compare/). Give it a call of its own: it can take the whole budget.
# Default: all of them, in this order. Each phase has a time cap, and the whole run stops
# starting phases when RECURRENT_SESSION_BUDGET_S (default 570 s; the device tool allows 600 s
# per command) is spent: skipped phases say so. If the full run does not fit, call it twice:
#   bash scripts/gpu_session.sh info tests fixtures fuzz bench
#   bash scripts/gpu_session.sh memcheck racecheck initcheck
#
# Output: every log under $OUT (default target/gpu-session/), SUMMARY.txt there, and the
# summary printed last. Exit status: 0 when every phase that ran passed, 1 otherwise.
# Environment: RECURRENT_BUNDLE (default target/gpu-bundle), RECURRENT_SESSION_BUDGET_S.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1
bundle="${RECURRENT_BUNDLE:-$root/target/gpu-bundle}"
out="${OUT:-$root/target/gpu-session}"
mkdir -p "$out"
summary="$out/SUMMARY.txt"
: >"$summary"
budget="${RECURRENT_SESSION_BUDGET_S:-570}"
start="$(date +%s)"
failed=0

phases=("$@")
if [ "${#phases[@]}" -eq 0 ]; then
    phases=(info tests fixtures fuzz bench memcheck racecheck initcheck)
fi

note() { echo "$*" | tee -a "$summary"; }
elapsed() { echo $(($(date +%s) - start)); }
remaining() { echo $((budget - $(elapsed))); }

# Runs "$@" under a timeout of min(cap, remaining budget); returns 124 on timeout.
capped() {
    local cap="$1"
    shift
    local left
    left="$(remaining)"
    local t=$((cap < left ? cap : left))
    if [ "$t" -lt 15 ]; then
        return 125
    fi
    timeout --kill-after=10 "$t" "$@"
}

if [ ! -d "$bundle" ] || [ ! -x "$bundle/recurrent" ]; then
    note "error: no bundle at $bundle: run 'bash scripts/build_gpu_bundle.sh' on the build machine and carry target/gpu-bundle"
    exit 1
fi
chmod +x "$bundle/recurrent" "$bundle"/tests/* 2>/dev/null || true
shopt -s nullglob
test_exes=("$bundle"/tests/gpu_*)
shopt -u nullglob

export RECURRENT_REQUIRE_GPU=1
export RECURRENT_FIXTURES="$bundle/fixtures"
export RUST_BACKTRACE=1

sanitizer=""
for c in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda*/bin/compute-sanitizer \
    /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    if command -v "$c" >/dev/null 2>&1; then
        sanitizer="$(command -v "$c")"
        break
    fi
done

phase_info() {
    local log="$out/info.log"
    {
        echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "== nvidia-smi"
        nvidia-smi || echo "nvidia-smi failed"
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit \
            --format=csv || true
        echo "== nvcc: $(command -v nvcc || echo none) $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || true)"
        echo "== compute-sanitizer: ${sanitizer:-none} $("${sanitizer:-true}" --version 2>/dev/null | tail -n 1)"
        echo "== python3: $(python3 -c 'import numpy, sys; print(sys.version.split()[0], "numpy", numpy.__version__)' 2>&1)"
        echo "== glibc: $(ldd --version 2>/dev/null | head -n 1)"
        echo "== bundle manifest"
        cat "$bundle/MANIFEST.txt" 2>/dev/null || echo "no MANIFEST.txt"
        echo "== checksums"
        (cd "$bundle" && grep -E '^[0-9a-f]{64}  ' MANIFEST.txt | sha256sum -c -) || echo "CHECKSUM MISMATCH"
    } >"$log" 2>&1
    cat "$log"
    if grep -q "CHECKSUM MISMATCH\|FAILED" "$log"; then
        return 1
    fi
    nvidia-smi -L >/dev/null 2>&1
}

phase_tests() {
    local rc=0 exe name log
    if [ "${#test_exes[@]}" -eq 0 ]; then
        echo "no gpu_* test executables in $bundle/tests"
        return 1
    fi
    # Twice: the dense layers on the step kernels only (RECURRENT_CUDA_PATH=step), then with
    # the default path choice (persistent kernels where the heuristic picks them), so that a
    # fault of either kind of kernel is told apart.
    local path
    for exe in "${test_exes[@]}"; do
        for path in step auto; do
            name="$(basename "$exe")"
            log="$out/tests_${name}_$path.log"
            echo "-- $name, RECURRENT_CUDA_PATH=$path"
            RECURRENT_CUDA_PATH="$path" capped 200 "$exe" --test-threads=4 --nocapture >"$log" 2>&1
            local r=$?
            grep -E "cases, .* failed|SKIPPED|panicked|^test result|RECURRENT_TEST_SEED" "$log" | sort | uniq | head -n 60
            [ "$r" -eq 0 ] || { echo "$name ($path): exit $r (124: timeout)"; rc=1; }
        done
    done
    return "$rc"
}

compare_py() {
    cat <<'PY'
import os, sys
import numpy as np

fixtures, outputs, tag = sys.argv[1], sys.argv[2], sys.argv[3]
ok = bad = skipped = 0
worst = (0.0, "")
for name in sorted(os.listdir(fixtures)):
    d = os.path.join(fixtures, name)
    if not os.path.isfile(os.path.join(d, "layer.json")):
        continue
    got_p = os.path.join(outputs, name + ".npz")
    err_p = os.path.join(outputs, name + ".err")
    if not os.path.isfile(got_p):
        lines = open(err_p).read().strip().splitlines() if os.path.isfile(err_p) else []
        last = lines[-1] if lines else "no error message"
        if "has no CUDA path yet" in last:  # recurrent::cuda::NO_CUDA_PATH
            print(f"SKIP {name}: {last}")
            skipped += 1
        else:
            print(f"FAIL {name}: no output; {last}")
            bad += 1
        continue
    want = np.load(os.path.join(d, "out.npz"))
    got = np.load(got_p)
    problem = None
    case_worst = 0.0
    if sorted(want.files) != sorted(got.files):
        problem = f"arrays {sorted(got.files)}, want {sorted(want.files)}"
    else:
        for k in want.files:
            w = want[k].astype(np.float64)
            g = got[k].astype(np.float64)
            if w.shape != g.shape:
                problem = f"{k}: shape {g.shape}, want {w.shape}"
                break
            if np.isnan(g).any():
                problem = f"{k}: NaN in output"
                break
            err = np.abs(g - w)
            tol = 1e-5 + 1e-4 * np.abs(w)
            if (err > tol).any():
                i = int(np.argmax(err - tol))
                problem = f"{k}[flat {i}]: got {g.flat[i]}, want {w.flat[i]}"
                break
            case_worst = max(case_worst, float(err.max()) if err.size else 0.0)
    if problem:
        print(f"FAIL {name}: {problem}")
        bad += 1
    else:
        ok += 1
        if case_worst > worst[0]:
            worst = (case_worst, name)
print(f"{tag} via recurrent run --device cuda: largest error {worst[0]:.3e} ({worst[1]})")
print(f"{ok} passed, {bad} failed, {skipped} skipped")
sys.exit(1 if bad else 0)
PY
}

# Runs every case directory under $1 through `recurrent run --device cuda` (each capped at
# 60 s, the whole phase at $3 s) and compares with its out.npz; logs under $out/$2*.
run_cases() {
    local cases="$1" tag="$2" cap="$3" d name
    local dir="$out/$tag" phase_start
    phase_start="$(date +%s)"
    rm -rf "$dir"  # no stale output of an earlier run may pass for this one's
    mkdir -p "$dir"
    if ! ls "$cases"/*/layer.json >/dev/null 2>&1; then
        echo "no cases under $cases"
        return 1
    fi
    for d in "$cases"/*/; do
        d="${d%/}"
        [ -f "$d/layer.json" ] || continue
        name="$(basename "$d")"
        if [ $(($(date +%s) - phase_start)) -gt "$cap" ] || [ "$(remaining)" -lt 15 ]; then
            echo "time cap reached during $tag: the cases not run yet count as failed"
            break
        fi
        local args=(run --layer "$d/layer.json" --weights "$d/weights.npz" --input "$d/x.npy"
            --device cuda --output "$dir/$name.npz")
        [ -f "$d/mask.npy" ] && args+=(--mask "$d/mask.npy")
        [ -f "$d/initial_state.npz" ] && args+=(--initial-state "$d/initial_state.npz")
        capped 60 "$bundle/recurrent" "${args[@]}" >"$dir/$name.err" 2>&1
    done
    compare_py >"$out/compare_cases.py"
    python3 "$out/compare_cases.py" "$cases" "$dir" "$tag" | tee "$out/$tag.log" | tail -n 40
    return "${PIPESTATUS[0]}"
}

phase_fixtures() {
    run_cases "$bundle/fixtures" fixtures 400
}

# Random option combinations with Keras's answers: tests/fixtures_fuzz plus the draws
# scripts/keras_fuzz.py --write added when the bundle was built (see its MANIFEST.txt and
# the build's output for how many failed on the CPU).
phase_fuzz() {
    run_cases "$bundle/fuzz" fuzz 300
}

phase_bench() {
    capped 200 "$bundle/recurrent" bench --device cuda --set gpu --warmup 2 --repeats 10 >"$out/bench.log" 2>&1
    local r=$?
    tail -n 40 "$out/bench.log"
    return "$r"
}

phase_paths() {
    local rc=0 dt p
    for dt in f32 bf16; do
        local kinds="step persistent auto"
        [ "$dt" = bf16 ] && kinds="$kinds tensor-core"
        for p in $kinds; do
            capped 120 "$bundle/recurrent" bench --device cuda --set gpu --dtype "$dt" \
                --cuda-path "$p" --warmup 2 --repeats 10 --json \
                >"$out/paths_${dt}_$p.jsonl" 2>"$out/paths_${dt}_$p.err" || rc=1
        done
    done
    # Stacks: 4 LSTM cells at the issue's 64,100,512, at 64 x 1024 and at 128 x 256 (where
    # the cost model picks the wavefront), each path forced.
    for dt in f32 bf16; do
        for p in step persistent wavefront auto; do
            : >"$out/paths_stack_${dt}_$p.jsonl"
            for bh in 64:512 64:1024 128:256; do
                local sb="${bh%%:*}" h="${bh##*:}"
                capped 60 "$bundle/recurrent" bench --device cuda --layer lstm4 --batch "$sb" \
                    --seq 100 --input "$h" --units "$h" --dtype "$dt" --cuda-path "$p" \
                    --warmup 2 --repeats 10 --json \
                    >>"$out/paths_stack_${dt}_$p.jsonl" 2>>"$out/paths_stack_${dt}_$p.err" || rc=1
            done
        done
    done
    python3 - "$out" <<'PY' | tee "$out/paths.log"
import json, os, sys
out = sys.argv[1]
def rows(name):
    p = os.path.join(out, name)
    if not os.path.isfile(p):
        return {}
    r = {}
    for line in open(p):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("layer") == "conv-lstm2d":
            continue
        r[(o["layer"], o["batch"], o["seq"], o["input"], o["units"])] = (o["us_per_step"], o.get("path_used", "?"))
    return r
for dt in ("f32", "bf16"):
    s, p, a, tc = (rows(f"paths_{dt}_{k}.jsonl") for k in ("step", "persistent", "auto", "tensor-core"))
    print(f"{dt}: us per step (step / persistent / auto / tensor-core), step / persistent, what ran")
    for k in sorted(set(s) | set(p)):
        f = lambda d: f"{d[k][0]:9.2f}" if k in d else "        -"
        ratio = f"{s[k][0] / p[k][0]:6.2f}x" if k in s and k in p and p[k][0] > 0 else "     -"
        ran = f"persistent run: {p[k][1]}, auto: {a[k][1]}" if k in p and k in a else ""
        print(f"  {k[0]:<6} {k[1]:>4} {k[2]:>5} {k[3]:>5} {k[4]:>5}  {f(s)} {f(p)} {f(a)} {f(tc)}  {ratio}  {ran}")
    st, pe, wf, au = (rows(f"paths_stack_{dt}_{k}.jsonl") for k in ("step", "persistent", "wavefront", "auto"))
    print(f"{dt} stacks: us per step (step / persistent / wavefront / auto), what auto ran")
    for k in sorted(set(st) | set(wf)):
        f = lambda d: f"{d[k][0]:9.2f}" if k in d else "        -"
        print(f"  {k[0]:<6} {k[1]:>4} {k[2]:>5} {k[3]:>5} {k[4]:>5}  {f(st)} {f(pe)} {f(wf)} {f(au)}  auto: {au[k][1] if k in au else '-'}")
PY
    return "$rc"
}

phase_cudnn() {
    local rc=0 dt
    for dt in f32 bf16 f16; do
        capped 150 python3 benches/cudnn_reference.py --dtype "$dt" --json >"$out/cudnn_$dt.jsonl" 2>"$out/cudnn_$dt.err" || rc=1
        echo "cudnn $dt: $(wc -l <"$out/cudnn_$dt.jsonl") rows; $(tail -n 1 "$out/cudnn_$dt.err")"
    done
    return "$rc"
}

phase_compare() {
    capped 560 python3 benches/gpu_compare.py --bin "$bundle/recurrent" --out "$out/compare" \
        --dtypes f32 tf32 bf16 f16 >"$out/compare.log" 2>"$out/compare.err"
    local r=$?
    cat "$out/compare.log"
    tail -n 5 "$out/compare.err"
    return "$r"
}

phase_sanitizer() {
    local tool="$1" cap="$2" rc=0 exe name log
    if [ -z "$sanitizer" ]; then
        echo "compute-sanitizer not found"
        return 1
    fi
    for exe in "${test_exes[@]}"; do
        name="$(basename "$exe")"
        log="$out/${tool}_$name.log"
        local extra=()
        [ "$tool" = racecheck ] && extra=(--racecheck-report hazard)
        RECURRENT_GPU_QUICK=1 RECURRENT_GPU_NO_POISON="$([ "$tool" = initcheck ] && echo 1 || echo 0)" \
            capped "$cap" "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 99 \
            --print-limit 50 "$exe" --test-threads=1 >"$log" 2>&1
        local r=$?
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|^test result|Invalid|Uninitialized|Race|hazard|panicked" "$log" | sort | uniq -c | head -n 30
        [ "$r" -eq 0 ] || { echo "$name under $tool: exit $r (99: sanitizer errors, 124: timeout)"; rc=1; }
    done
    return "$rc"
}

for p in "${phases[@]}"; do
    if [ "$(remaining)" -lt 15 ]; then
        note "$(printf '%-10s SKIPPED (session budget of %ss spent)' "$p" "$budget")"
        continue
    fi
    t0="$(date +%s)"
    echo
    echo "==== $p ($(remaining)s of the budget left)"
    case "$p" in
        info) phase_info ;;
        tests) phase_tests ;;
        fixtures) phase_fixtures ;;
        fuzz) phase_fuzz ;;
        bench) phase_bench ;;
        memcheck) phase_sanitizer memcheck 280 ;;
        racecheck) phase_sanitizer racecheck 280 ;;
        initcheck) phase_sanitizer initcheck 280 ;;
        paths) phase_paths ;;
        cudnn) phase_cudnn ;;
        compare) phase_compare ;;
        *) echo "unknown phase '$p' (info tests fixtures fuzz bench memcheck racecheck initcheck paths cudnn compare)"; false ;;
    esac
    r=$?
    if [ "$r" -eq 0 ]; then
        status=PASS
    else
        status="FAIL (exit $r)"
        failed=1
    fi
    echo "$(printf '%-10s %-16s %4ss' "$p" "$status" $(($(date +%s) - t0)))" >>"$summary"
done

echo
echo "==== summary (logs in $out)"
cat "$summary"
for f in "$out"/tests_*.log; do
    [ -f "$f" ] && grep -hE "cases, .* failed" "$f" | sort | sed "s|^|$(basename "$f" .log): |"
done
[ -f "$out/fixtures.log" ] && tail -n 2 "$out/fixtures.log"
[ -f "$out/fuzz.log" ] && tail -n 2 "$out/fuzz.log"
exit "$failed"
