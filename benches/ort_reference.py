#!/usr/bin/env python3
"""ONNX Runtime reference timings for the CPU benchmark of `recurrent`.

Times one ONNX `LSTM` or `GRU` node under ONNX Runtime's CPU execution provider at the
shapes `recurrent bench` uses, and prints the same numbers (and, with `--json`, the same
JSON keys) as `cargo run --release -- bench`, so the two can be joined row by row
(benches/cpu_compare.sh does that).

Environment (this script installs nothing): the README's venv at the repository root,
with ONNX Runtime and onnx added to it:

    python3 -m venv .kvenv
    .kvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0   # README, for the fixtures
    .kvenv/bin/pip install onnxruntime==1.31.1 onnx                   # this script

Usage:

    .kvenv/bin/python benches/ort_reference.py                      # default set, 1 thread
    .kvenv/bin/python benches/ort_reference.py --threads 2 --json
    .kvenv/bin/python benches/ort_reference.py --layer gru --batch 16 --seq 100 \\
        --input 256 --units 256 --threads 1 --repeats 20
    .kvenv/bin/python benches/ort_reference.py --check              # numerical self-check

What is timed:

* One graph with one node: `LSTM` (gates i, o, f, c in ONNX order) or `GRU` (gates z, r, h)
  with opset 17, float32, forward direction, default activations (sigmoid / tanh, i.e.
  tf.keras 2.x's `recurrent_activation="sigmoid"`), no peepholes, no `sequence_lens`, no
  initial state. W `[1, gates*H, I]`, R `[1, gates*H, H]` and B `[1, 2*gates*H]` are random
  constant initializers (so ORT may pre-pack them at session creation, as `recurrent`
  builds its weights once outside the timed region).
* `--layer gru` is `linear_before_reset=1`, which is Keras's `reset_after=True` (tf.keras
  2.x's default and cuDNN's GRU); `--layer gru_reset_before` is `linear_before_reset=0`
  (Keras 2's `reset_after=False`).
* `layout=0`: X is `[seq, batch, input]` (time-major). Keras / `recurrent` take
  `[batch, seq, input]`; the transpose an exporter would add in front of the node is not
  part of the recurrence and is deliberately not measured here.
* The only graph output is `Y_h` (the last hidden state, `[1, batch, units]`), matching
  Keras's default `return_sequences=False`, which is what `recurrent bench` times.
  `--return-sequences` asks for `Y` (`[seq, 1, batch, units]`) instead.
* `InferenceSession.run` on the CPU execution provider with
  `SessionOptions(intra_op_num_threads=N, inter_op_num_threads=1, execution_mode=ORT_SEQUENTIAL,
  graph_optimization_level=ORT_ENABLE_ALL)`; the intra-op spin-wait setting is left at ORT's
  default. `--warmup` untimed runs (default 2), then `--repeats` timed runs (default 10)
  with `time.perf_counter`; median, min and max are reported. Inputs rotate among 3
  pre-made arrays (uniform in [-1, 1)), so no run sees the previous run's input in cache.
* FLOPs = 2*T*B*(I+H)*gates*H (the two matrix products; activations and elementwise work
  not counted), as in `recurrent bench`.

With no shape flags the default CPU shape set runs, for LSTM and GRU (reset_after):
(B, T, I, H) = 1,100,128,128 · 1,100,512,512 · 16,100,256,256 · 64,50,512,512 ·
256,25,1024,1024, at the one thread count given by `--threads` (default 1).

`--check` builds small LSTM and GRU (both reset variants) models with Y and Y_h as outputs,
runs them under ORT and compares against a NumPy implementation of the ONNX operator
equations; it prints the max absolute error per layer and exits non-zero above 1e-4.
"""

import argparse
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; kept low so any recent onnxruntime loads it
GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3}
DEFAULT_SIZES = [
    (1, 100, 128, 128),
    (1, 100, 512, 512),
    (16, 100, 256, 256),
    (64, 50, 512, 512),
    (256, 25, 1024, 1024),
]
DEFAULT_LAYERS = ["lstm", "gru"]


def make_weights(layer, input_size, units, seed):
    """Random W, R, B in ONNX layout for one direction, uniform in +-1/sqrt(units)."""
    g = GATES[layer]
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(units)
    w = rng.uniform(-s, s, (1, g * units, input_size)).astype(np.float32)
    r = rng.uniform(-s, s, (1, g * units, units)).astype(np.float32)
    b = rng.uniform(-s, s, (1, 2 * g * units)).astype(np.float32)
    return w, r, b


def build_model(layer, batch, seq, input_size, units, weights, outputs=("Y_h",)):
    """A model with one LSTM / GRU node, layout 0 ([seq, batch, input]).

    `outputs` names which of Y, Y_h (and for LSTM Y_c) become graph outputs; the others are
    left out of the node (empty output name), so ORT need not materialise them.
    """
    w, r, b = weights
    op = "LSTM" if layer == "lstm" else "GRU"
    all_outs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node_outs = [name if name in outputs else "" for name in all_outs]
    while node_outs and node_outs[-1] == "":
        node_outs.pop()
    attrs = {"hidden_size": units, "direction": "forward", "layout": 0}
    if op == "GRU":
        attrs["linear_before_reset"] = 1 if layer == "gru" else 0
    node = helper.make_node(op, ["X", "W", "R", "B"], node_outs, name=op.lower(), **attrs)
    shapes = {
        "Y": [seq, 1, batch, units],
        "Y_h": [1, batch, units],
        "Y_c": [1, batch, units],
    }
    graph = helper.make_graph(
        [node],
        f"{layer}_reference",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, input_size])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in all_outs if n in outputs],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(r, "R"),
            numpy_helper.from_array(b, "B"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="recurrent-ort-reference",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def make_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
    )


def flops(layer, batch, seq, input_size, units):
    return 2.0 * seq * batch * (input_size + units) * GATES[layer] * units


def time_shape(layer, batch, seq, input_size, units, threads, repeats, warmup, return_sequences):
    weights = make_weights(layer, input_size, units, seed=1)
    out = "Y" if return_sequences else "Y_h"
    sess = make_session(build_model(layer, batch, seq, input_size, units, weights, (out,)), threads)
    rng = np.random.default_rng(7)
    xs = [rng.uniform(-1.0, 1.0, (seq, batch, input_size)).astype(np.float32) for _ in range(3)]
    outputs = [out]
    for k in range(max(warmup, 0)):
        sess.run(outputs, {"X": xs[k % 3]})
    times = []
    for k in range(max(repeats, 1)):
        feed = {"X": xs[k % 3]}
        t0 = time.perf_counter()
        sess.run(outputs, feed)
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    median = float(np.median(times))
    return {
        "engine": "onnxruntime",
        "version": ort.__version__,
        "device": "cpu",
        "dtype": "f32",
        "threads": threads,
        "layer": layer,
        "batch": batch,
        "seq": seq,
        "input": input_size,
        "units": units,
        "median_us": median,
        "min_us": times[0],
        "max_us": times[-1],
        "us_per_step": median / seq,
        "gflops": flops(layer, batch, seq, input_size, units) / (median * 1e3),
        "repeats": max(repeats, 1),
        "warmup": max(warmup, 0),
        "return_sequences": return_sequences,
    }


# ---------------------------------------------------------------------------------------
# Numerical check against the ONNX operator equations (NumPy, float64).


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, w, r, b):
    """ONNX LSTM, forward, no peepholes; gates i, o, f, c. x [T, B, I] -> Y [T, 1, B, H], Y_h, Y_c."""
    w, r, b = w[0].astype(np.float64), r[0].astype(np.float64), b[0].astype(np.float64)
    h4 = w.shape[0]
    units = h4 // 4
    bias = b[:h4] + b[h4:]  # Wb + Rb
    seq, batch, _ = x.shape
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    ys = []
    for t in range(seq):
        z = x[t].astype(np.float64) @ w.T + h @ r.T + bias
        i, o, f, cc = (z[:, k * units : (k + 1) * units] for k in range(4))
        i, o, f, cc = _sigmoid(i), _sigmoid(o), _sigmoid(f), np.tanh(cc)
        c = f * c + i * cc
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys)[:, None], h[None], c[None]


def numpy_gru(x, w, r, b, linear_before_reset):
    """ONNX GRU, forward; gates z, r, h. x [T, B, I] -> Y [T, 1, B, H], Y_h."""
    w, r, b = w[0].astype(np.float64), r[0].astype(np.float64), b[0].astype(np.float64)
    h3 = w.shape[0]
    units = h3 // 3
    wb, rb = b[:h3], b[h3:]
    sl = [slice(k * units, (k + 1) * units) for k in range(3)]
    seq, batch, _ = x.shape
    h = np.zeros((batch, units))
    ys = []
    for t in range(seq):
        xw = x[t].astype(np.float64) @ w.T + wb
        zt = _sigmoid(xw[:, sl[0]] + h @ r[sl[0]].T + rb[sl[0]])
        rt = _sigmoid(xw[:, sl[1]] + h @ r[sl[1]].T + rb[sl[1]])
        if linear_before_reset:
            ht = np.tanh(xw[:, sl[2]] + rt * (h @ r[sl[2]].T + rb[sl[2]]))
        else:
            ht = np.tanh(xw[:, sl[2]] + (rt * h) @ r[sl[2]].T + rb[sl[2]])
        h = (1.0 - zt) * ht + zt * h
        ys.append(h)
    return np.stack(ys)[:, None], h[None]


def check(threads):
    batch, seq, input_size, units = 3, 7, 5, 4
    rng = np.random.default_rng(11)
    x = rng.uniform(-1.0, 1.0, (seq, batch, input_size)).astype(np.float32)
    worst = 0.0
    for layer in ["lstm", "gru", "gru_reset_before"]:
        # Larger-than-usual weights so every gate leaves its linear region.
        w, r, b = (a * 3.0 for a in make_weights(layer, input_size, units, seed=5))
        outs = ("Y", "Y_h", "Y_c") if layer == "lstm" else ("Y", "Y_h")
        model = build_model(layer, batch, seq, input_size, units, (w, r, b), outs)
        got = make_session(model, threads).run(list(outs), {"X": x})
        if layer == "lstm":
            want = numpy_lstm(x, w, r, b)
        else:
            want = numpy_gru(x, w, r, b, linear_before_reset=(layer == "gru"))
        errs = {n: float(np.max(np.abs(g.astype(np.float64) - e))) for n, g, e in zip(outs, got, want)}
        err = max(errs.values())
        worst = max(worst, err)
        detail = ", ".join(f"{n} {e:.3g}" for n, e in errs.items())
        print(f"{layer:<17} B={batch} T={seq} I={input_size} H={units}: max |ORT - NumPy| = {err:.3g} ({detail})")
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, opset {OPSET}")
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer", choices=sorted(GATES), help="one layer (with the shape flags)")
    p.add_argument("--batch", type=int)
    p.add_argument("--seq", type=int)
    p.add_argument("--input", type=int)
    p.add_argument("--units", type=int)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per shape (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--return-sequences", action="store_true", help="output Y instead of Y_h")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--check", action="store_true", help="compare against NumPy and exit")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be positive")

    if a.check:
        worst = check(a.threads)
        return 0 if worst < 1e-4 else 1

    shape_flags = [a.batch, a.seq, a.input, a.units]
    if a.layer is None:
        if any(v is not None for v in shape_flags):
            p.error("shape flags need --layer")
        runs = [(layer,) + s for layer in DEFAULT_LAYERS for s in DEFAULT_SIZES]
    else:
        if any(v is None or v < 1 for v in shape_flags):
            p.error("--layer needs positive --batch, --seq, --input and --units")
        runs = [(a.layer, a.batch, a.seq, a.input, a.units)]

    if not a.json:
        print(
            f"onnxruntime {ort.__version__}, cpu, f32, {a.threads} thread(s), "
            f"median of {max(a.repeats, 1)} runs after {max(a.warmup, 0)} warm-up"
        )
        print(f"{'layer':<17} {'B':>5} {'T':>5} {'I':>6} {'H':>6} {'median ms':>12} {'us/step':>12} {'GFLOP/s':>9}")
    for layer, batch, seq, input_size, units in runs:
        r = time_shape(layer, batch, seq, input_size, units, a.threads, a.repeats, a.warmup, a.return_sequences)
        if a.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"{layer:<17} {batch:>5} {seq:>5} {input_size:>6} {units:>6} "
                f"{r['median_us'] / 1e3:>12.3f} {r['us_per_step']:>12.2f} {r['gflops']:>9.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
