#!/usr/bin/env python3
"""cuDNN reference timings (through PyTorch) for the GPU benchmark of `recurrent` (issue 4).

Times, on the shapes of issue 4, what a PyTorch user runs: `nn.LSTM` / `nn.GRU` (cuDNN, with
`torch.backends.cudnn.benchmark = True` and flattened weights; GRU is cuDNN's reset-after
variant, Keras's `reset_after=True`), a stack of LSTM layers as `nn.LSTM(num_layers=L)`, and
ConvLSTM2D as PyTorch users write it: per step `conv2d(cat[x_t, h])` (padding "same") and the
gate math in eager mode. Output keys match `recurrent bench --json`, so the two join row by row.

On the GPU machine (PyTorch with cuDNN is installed there, see ../shared/docs/gpu-workflow.md):

    python3 benches/cudnn_reference.py --json                      # the whole shape set, f32
    python3 benches/cudnn_reference.py --dtype bf16 --json
    python3 benches/cudnn_reference.py --layer lstm --batch 1 --seq 100 --input 512 --units 512

Here, without a GPU, `--device cpu` runs the same code with wall-clock timing (a dry run of
the script, not a reference number).

Timing: `--warmup` untimed runs (default 5), then `--repeats` runs (default 30) each timed
with CUDA events (`perf_counter` on the CPU), inputs rotating among 3 pre-made buffers;
median, min, max in µs. Dtypes: f32 (true f32: TF32 disabled for matmul and cuDNN), tf32
(enabled), f16, bf16 (weights and inputs in that dtype, as cuDNN runs them). FLOPs:
`2 T B (I + H) gates H` per layer; ConvLSTM2D `2 B T rows cols k^2 (C + F) 4F`.
"""

import argparse
import json
import statistics
import sys
import time

# (layer, B, T, I, H) of issue 4; "lstm4" is 4 stacked LSTM layers.
SHAPES = [
    ("gru", 1, 1, 512, 512),
    ("lstm", 1, 100, 512, 512),
    ("lstm", 1, 1000, 256, 256),
    ("lstm", 8, 1000, 32, 64),
    ("gru", 32, 100, 64, 128),
    ("lstm", 4, 50, 1536, 1536),
    ("gru", 4, 187, 2816, 2816),
    ("lstm", 16, 1024, 768, 768),
    ("lstm", 128, 25, 1024, 1024),
    ("gru", 64, 1500, 1024, 1024),
    ("lstm", 256, 50, 1024, 1024),
    ("lstm4", 64, 100, 512, 512),
]
# (B, T, channels, image side, filters, kernel) of issue 4's ConvLSTM2D rows.
CONV_SHAPES = [
    (1, 10, 16, 16, 64, 5),
    (8, 10, 64, 64, 64, 3),
    (32, 20, 64, 64, 64, 3),
    (5, 19, 1, 64, 64, 5),
]
DTYPES = ("f32", "tf32", "f16", "bf16")


def conv_lstm(torch, x, conv, filters):
    """ConvLSTM2D forward as PyTorch users write it; returns the last h."""
    b, t, _, rows, cols = x.shape
    h = x.new_zeros((b, filters, rows, cols))
    c = torch.zeros_like(h)
    for step in range(t):
        z = conv(torch.cat([x[:, step], h], dim=1))
        i, f, g, o = torch.chunk(z, 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h


def time_it(torch, device, fn, inputs, warmup, repeats):
    with torch.inference_mode():
        for i in range(warmup):
            fn(inputs[i % len(inputs)])
        times = []
        for i in range(repeats):
            x = inputs[i % len(inputs)]
            if device == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) * 1e3)
            else:
                t0 = time.perf_counter()
                fn(x)
                times.append((time.perf_counter() - t0) * 1e6)
    return times


def run_row(torch, a, dtype, layer, b, t, i, h, conv=None):
    dev = torch.device(a.device)
    tdt = {"f32": torch.float32, "tf32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    if a.device == "cpu" and dtype == "f16":
        tdt = torch.float32  # no f16 RNN on the CPU: the dry run uses f32
    gen = torch.Generator(device="cpu").manual_seed(0)
    if conv is None:
        layers = 4 if layer == "lstm4" else 1
        gates = 3 if layer == "gru" else 4
        cls = torch.nn.GRU if layer == "gru" else torch.nn.LSTM
        m = cls(i, h, num_layers=layers, batch_first=True).to(dev, tdt).eval()
        if a.device == "cuda":
            m.flatten_parameters()
        xs = [(torch.rand((b, t, i), generator=gen) * 2 - 1).to(dev, tdt) for _ in range(3)]
        fn = lambda x: m(x)  # noqa: E731
        flops = 2.0 * t * b * gates * h * ((i + h) + (layers - 1) * 2 * h)
        shape = {"batch": b, "seq": t, "input": i, "units": h, "layers": layers}
    else:
        side, kernel = conv
        cv = torch.nn.Conv2d(i + h, 4 * h, kernel, padding="same").to(dev, tdt).eval()
        xs = [(torch.rand((b, t, i, side, side), generator=gen) * 2 - 1).to(dev, tdt) for _ in range(3)]
        fn = lambda x: conv_lstm(torch, x, cv, h)  # noqa: E731
        flops = 2.0 * b * t * side * side * kernel * kernel * (i + h) * 4 * h
        shape = {"batch": b, "seq": t, "input": i, "image": side, "units": h, "kernel": kernel}
    times = time_it(torch, a.device, fn, xs, a.warmup, a.repeats)
    med = statistics.median(times)
    row = {
        "engine": "cudnn" if a.device == "cuda" else "torch-cpu",
        "version": f"torch {torch.__version__}, cudnn {torch.backends.cudnn.version()}",
        "layer": "conv_lstm2d" if conv else layer,
        "dtype": dtype,
        **shape,
        "median_us": med,
        "min_us": min(times),
        "max_us": max(times),
        "us_per_step": med / t,
        "tflops": flops / med / 1e6,
    }
    if a.device == "cuda":
        row["device_name"] = torch.cuda.get_device_name()
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--dtype", choices=DTYPES, default="f32")
    p.add_argument("--layer", choices=["lstm", "gru", "lstm4", "conv_lstm2d"])
    p.add_argument("--batch", type=int)
    p.add_argument("--seq", type=int)
    p.add_argument("--input", type=int, help="input features (ConvLSTM2D: channels)")
    p.add_argument("--units", type=int, help="units (ConvLSTM2D: filters)")
    p.add_argument("--image", type=int, default=64, help="ConvLSTM2D rows = cols")
    p.add_argument("--kernel", type=int, default=3, help="ConvLSTM2D kernel side")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    a = p.parse_args()

    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: PyTorch sees no CUDA device (use --device cpu for a dry run)",
              file=sys.stderr)
        return 1
    torch.backends.cudnn.benchmark = True
    tf32 = a.dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32

    if a.layer:
        if None in (a.batch, a.seq, a.input, a.units):
            print("error: --layer needs --batch, --seq, --input and --units", file=sys.stderr)
            return 2
        if a.layer == "conv_lstm2d":
            plan = [("conv_lstm2d", a.batch, a.seq, a.input, a.units, (a.image, a.kernel))]
        else:
            plan = [(a.layer, a.batch, a.seq, a.input, a.units, None)]
    else:
        plan = [(l, b, t, i, h, None) for (l, b, t, i, h) in SHAPES]
        plan += [("conv_lstm2d", b, t, c, f, (s, k)) for (b, t, c, s, f, k) in CONV_SHAPES]

    if not a.json:
        print(f"{'layer':12} {'dtype':5} {'B':>4} {'T':>5} {'I':>6} {'H':>5} {'median us':>12} {'us/step':>9} {'TFLOP/s':>8}")
    for layer, b, t, i, h, conv in plan:
        row = run_row(torch, a, a.dtype, layer, b, t, i, h, conv)
        if a.json:
            print(json.dumps(row), flush=True)
        else:
            i_txt = f"{i}@{conv[0]}" if conv else str(i)
            print(f"{row['layer']:12} {a.dtype:5} {b:>4} {t:>5} {i_txt:>6} {h:>5} "
                  f"{row['median_us']:>12.1f} {row['us_per_step']:>9.2f} {row['tflops']:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
