#!/usr/bin/env python3
"""cuDNN against `recurrent` on the GPU, side by side in one run: the ratio table of issue 4.

For every dtype asked for and every row of issue 4's shape set, times cuDNN through PyTorch
(`benches/cudnn_reference.py`, one process per dtype) and `recurrent bench --device cuda`
(one process per row, so that a row that fails, e.g. a dtype the CUDA path does not have yet,
costs only that row), measures the dense-GEMM peak of the GPU per dtype with `torch.matmul`,
and prints a Markdown table:

    dtype | layer | shape | cuDNN µs | ours µs | ratio = cuDNN / ours | TFLOP/s and % of peak

It also writes, under --out: `rows.jsonl` (every joined row), `table.md` and `ratios.svg` (a
bar chart of the ratios, log scale, target lines at 1 and 5). Rows where ours did not run say
why ("n/a: <error>").

On the GPU machine (PyTorch with CUDA there; the binary from scripts/build_gpu_bundle.sh):

    python3 benches/gpu_compare.py --bin target/gpu-bundle/recurrent --out target/gpu-session/compare
    python3 benches/gpu_compare.py --dtypes f32 bf16 --bin ...

Here, without a GPU, `--dry-run` runs the whole pipeline on the CPU with tiny shapes (both
engines on the CPU, wall-clock timing): it checks the plumbing, not the numbers.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cudnn_reference  # noqa: E402  (the shape set lives there)

DRY_SHAPES = [("lstm", 2, 5, 8, 16), ("gru", 1, 3, 8, 16), ("lstm4", 2, 4, 8, 16)]
DRY_CONV = [(1, 3, 2, 8, 4, 3)]


def plan(dry):
    dense = DRY_SHAPES if dry else cudnn_reference.SHAPES
    conv = DRY_CONV if dry else cudnn_reference.CONV_SHAPES
    rows = [dict(layer=l, batch=b, seq=t, input=i, units=h) for (l, b, t, i, h) in dense]
    rows += [dict(layer="conv_lstm2d", batch=b, seq=t, input=c, image=s, units=f, kernel=k)
             for (b, t, c, s, f, k) in conv]
    return rows


def key(r):
    return (r["layer"], r["batch"], r["seq"], r["input"], r["units"], r.get("image"), r.get("kernel"))


def run_json(cmd, timeout):
    """Runs cmd; returns (list of JSON objects on stdout, error text or None)."""
    def parse(text):
        rows = []
        for line in (text or "").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
        return rows

    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        # Keep the rows printed before the timeout.
        text = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout
        return parse(text), f"timed out after {timeout} s"
    except OSError as e:
        return [], str(e)
    out = parse(p.stdout)
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        return out, err
    return out, None


def cudnn_rows(args, dtype, rows):
    """cuDNN rows for one dtype, keyed like ours."""
    base = [sys.executable, os.path.join(HERE, "cudnn_reference.py"), "--json", "--dtype", dtype,
            "--device", "cpu" if args.dry_run else "cuda"]
    if args.dry_run:
        base += ["--warmup", "1", "--repeats", "3"]
    found = {}
    if args.dry_run:
        for r in rows:
            cmd = base + ["--layer", r["layer"], "--batch", str(r["batch"]), "--seq", str(r["seq"]),
                          "--input", str(r["input"]), "--units", str(r["units"])]
            if r["layer"] == "conv_lstm2d":
                cmd += ["--image", str(r["image"]), "--kernel", str(r["kernel"])]
            got, err = run_json(cmd, args.timeout)
            for g in got:
                found[key(g)] = g
            if err:
                print(f"  cudnn {dtype} {key(r)}: {err}", file=sys.stderr)
    else:
        got, err = run_json(base, args.timeout * len(rows))
        for g in got:
            found[key(g)] = g
        if err:
            print(f"  cudnn {dtype}: {err}", file=sys.stderr)
    return found


def our_row(args, dtype, r):
    cmd = [args.bin, "bench", "--device", "cpu" if args.dry_run else "cuda", "--dtype", dtype,
           "--layer", r["layer"].replace("_", "-"), "--batch", str(r["batch"]), "--seq", str(r["seq"]),
           "--input", str(r["input"]), "--units", str(r["units"]), "--json"]
    if r["layer"] == "conv_lstm2d":
        cmd += ["--image", str(r["image"]), "--kernel", str(r["kernel"])]
    if args.dry_run:
        cmd += ["--repeats", "3"]
    else:
        cmd += ["--cuda-path", args.cuda_path]
        if dtype != "f32" and not args.exact_half:
            # cuDNN rounds h to the dtype for its recurrent product in f16 / bf16 (and TF32
            # in tf32): ours may do the same where its tensor-core steps are faster.
            cmd += ["--tensor-core-steps"]
    got, err = run_json(cmd, args.timeout)
    return (got[-1] if got else None), err


def measure_peak(args, dtype):
    """Dense GEMM TFLOP/s of the GPU in this dtype (torch.matmul, 8192^3, CUDA events)."""
    if args.dry_run:
        return None
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        tdt = {"f32": torch.float32, "tf32": torch.float32, "f16": torch.float16,
               "bf16": torch.bfloat16}[dtype]
        n = 8192
        a = torch.randn((n, n), device="cuda", dtype=tdt)
        b = torch.randn((n, n), device="cuda", dtype=tdt)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        best = math.inf
        for _ in range(10):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            a @ b
            e.record()
            e.synchronize()
            best = min(best, s.elapsed_time(e) / 1e3)
        torch.backends.cuda.matmul.allow_tf32 = False
        return 2.0 * n ** 3 / best / 1e12
    except Exception as e:  # noqa: BLE001  (no peak is not fatal: the column says n/a)
        print(f"  peak {dtype}: {e}", file=sys.stderr)
        return None


def target(r, dtype):
    """Issue 4's target ratio for a row (the ratio cuDNN / ours must reach)."""
    if r["layer"] == "conv_lstm2d":
        return 3.0
    if dtype == "f16" and r["layer"] == "lstm" and (r["batch"], r["seq"], r["units"]) == (16, 1024, 768):
        return 1.2
    if dtype == "f32" and r["layer"] == "lstm" and (r["batch"], r["seq"], r["units"]) == (8, 1000, 64):
        return 1.2
    return 5.0 if r["batch"] <= 16 else 1.0


def extra_target(r, dtype):
    """Issue 4's targets that are not a ratio."""
    if dtype == "f16" and r["layer"] == "lstm" and (r["batch"], r["seq"], r["units"]) == (256, 50, 1024):
        return "and >= 40% of the f16 peak"
    return ""


def shape_text(r):
    if r["layer"] == "conv_lstm2d":
        return (f"{r['batch']},{r['seq']},{r['input']}@{r['image']}x{r['image']},"
                f"{r['units']},k{r['kernel']}")
    return f"{r['batch']},{r['seq']},{r['input']},{r['units']}"


def svg(joined, path):
    """A horizontal bar chart of the ratios (log scale), one bar per row and dtype."""
    bars = [j for j in joined if j.get("ratio")]
    w, left, bar_h, top = 760, 260, 16, 40
    h = top + bar_h * max(len(bars), 1) + 40
    lo, hi = 0.1, max([10.0] + [j["ratio"] * 1.2 for j in bars])
    x = lambda v: left + (w - left - 20) * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="20" font-size="14">cuDNN time / recurrent time (log scale; right of 1 = ours faster)</text>']
    for v, label in ((1.0, "1"), (5.0, "5")):
        out.append(f'<line x1="{x(v):.1f}" y1="{top - 6}" x2="{x(v):.1f}" y2="{h - 30}" stroke="#888" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x(v) - 3:.1f}" y="{h - 16}">{label}</text>')
    for n, j in enumerate(bars):
        y = top + n * bar_h
        r = max(j["ratio"], lo)
        color = "#2a7" if j["ratio"] >= j["target"] else "#c44"
        out.append(f'<text x="10" y="{y + 11}">{j["dtype"]} {j["layer"]} {j["shape"]}</text>')
        out.append(f'<rect x="{x(lo):.1f}" y="{y + 2}" width="{max(x(r) - x(lo), 1):.1f}" height="{bar_h - 4}" fill="{color}"/>')
        out.append(f'<text x="{x(r) + 4:.1f}" y="{y + 11}">{j["ratio"]:.2f}</text>')
    if not bars:
        out.append(f'<text x="10" y="{top + 12}">no row has both timings</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def write_report(args, joined, device_name):
    """Writes table.md and ratios.svg under --out; returns the table."""
    pct = lambda t, pk: f"{t:.2f} ({100 * t / pk:.0f}%)" if t and pk else (f"{t:.2f}" if t else "n/a")  # noqa: E731
    lines = [f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; device: {device_name or 'n/a'}",
             f"- command: `python3 benches/gpu_compare.py --dtypes {' '.join(args.dtypes)}"
             + f" --cuda-path {args.cuda_path}" + (" --exact-half" if args.exact_half else "")
             + (" --dry-run" if args.dry_run else "") + "`",
             "- ours: µs with the kernels that ran the dense time loops (step / persistent / "
             "wavefront / tensor-core); tf32 / f16 / bf16 rows "
             + ("keep h in f32 (--exact-half)" if args.exact_half else
                "may round h for the recurrent product as cuDNN does (--tensor-core-steps)"),
             "- ratio = cuDNN median / ours (> 1: ours faster); TFLOP/s with % of the dtype's "
             "measured dense-GEMM peak; target from issue 4",
             "",
             "| dtype | layer | B,T,I,H | cuDNN µs | ours µs | ratio | target | cuDNN TFLOP/s | ours TFLOP/s |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for j in joined:
        ours = (f"{j['ours_us']:.0f}" + (f" ({j['ours_path']})" if j.get("ours_path") else "")
                if j["ours_us"] else f"n/a: {j['ours_error'] or 'no row'}")
        cud = f"{j['cudnn_us']:.0f}" if j["cudnn_us"] else "n/a"
        ratio = f"{j['ratio']:.2f}" + ("" if j["ratio"] >= j["target"] else " (missed)") if j["ratio"] else "n/a"
        lines.append(f"| {j['dtype']} | {j['layer']} | {j['shape']} | {cud} | {ours} | {ratio} | "
                     f"{j['target']:g}{' ' + j['extra_target'] if j['extra_target'] else ''} | {pct(j['cudnn_tflops'], j['peak_tflops'])} | "
                     f"{pct(j['ours_tflops'], j['peak_tflops'])} |")
    peaks = sorted({(j["dtype"], j["peak_tflops"]) for j in joined if j["peak_tflops"]})
    if peaks:
        lines.append("")
        lines.append("Measured dense-GEMM peaks (torch.matmul 8192³): "
                     + ", ".join(f"{d} {pk:.0f} TFLOP/s" for d, pk in peaks))
    table = "\n".join(lines)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    svg(joined, os.path.join(args.out, "ratios.svg"))
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "recurrent"),
                   help="the recurrent binary (built with --features cuda for the GPU)")
    p.add_argument("--dtypes", nargs="+", default=["f32", "tf32", "f16", "bf16"],
                   choices=cudnn_reference.DTYPES)
    p.add_argument("--out", default=os.path.join(HERE, "..", "target", "gpu-compare"))
    p.add_argument("--timeout", type=int, default=120, help="seconds per row and engine")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, both engines on the CPU")
    p.add_argument("--cuda-path", default="auto", choices=["auto", "step", "persistent", "wavefront", "tensor-core"],
                   help="ours: which kernels run the dense time loops (recurrent bench --cuda-path)")
    p.add_argument("--exact-half", action="store_true",
                   help="ours: keep h in f32 in the tf32 / f16 / bf16 rows (no --tensor-core-steps); "
                        "by default they may round it for the recurrent product as cuDNN does")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = plan(args.dry_run)
    joined = []
    device_name = "cpu (dry run)" if args.dry_run else None
    # Rows are appended as they finish, so that a run cut short keeps what it measured.
    rows_path = os.path.join(args.out, "rows.jsonl")
    open(rows_path, "w").close()
    for dtype in args.dtypes:
        print(f"[{dtype}] cuDNN ...", file=sys.stderr, flush=True)
        ref = cudnn_rows(args, dtype, rows)
        peak = measure_peak(args, dtype)
        for r in rows:
            print(f"[{dtype}] recurrent {r['layer']} {shape_text(r)} ...", file=sys.stderr, flush=True)
            ours, err = our_row(args, dtype, r)
            c = ref.get(key(r))
            if c and not device_name:
                device_name = c.get("device_name")
            j = dict(dtype=dtype, layer=r["layer"], shape=shape_text(r), target=target(r, dtype),
                     cudnn_us=c["median_us"] if c else None, ours_us=ours["median_us"] if ours else None,
                     cudnn_tflops=c.get("tflops") if c else None,
                     ours_tflops=ours.get("tflops") if ours else None, peak_tflops=peak,
                     ours_error=err if not ours else None, cudnn_version=c.get("version") if c else None,
                     ours_path=ours.get("path_used") if ours else None)
            j["ratio"] = j["cudnn_us"] / j["ours_us"] if j["cudnn_us"] and j["ours_us"] else None
            j["extra_target"] = extra_target(r, dtype)
            joined.append(j)
            with open(rows_path, "a") as f:
                f.write(json.dumps(j) + "\n")
        write_report(args, joined, device_name)
    print(write_report(args, joined, device_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
