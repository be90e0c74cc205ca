#!/usr/bin/env python3
"""Keras 2 (tf-keras on TensorFlow CPU) reference timings for the ConvLSTM2D CPU benchmark.

ONNX has no ConvLSTM node, so the ConvLSTM2D row of issue 5 is measured against Keras 2
itself: one `tf_keras.layers.ConvLSTM2D` (padding "same", channels_last, tf.keras 2.x
defaults: sigmoid / tanh, return_sequences=False) called inside a `tf.function`, on the
same shape `recurrent bench --layer conv-lstm2d` uses, with TensorFlow's intra-op thread
pool set to `--threads` (inter-op 1).

Environment (installs nothing): the README's venv,

    python3 -m venv .kvenv && .kvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0

Usage:

    .kvenv/bin/python benches/keras_reference.py                    # 4,10,16@32x32,32,3x3
    .kvenv/bin/python benches/keras_reference.py --threads 2 --json
    .kvenv/bin/python benches/keras_reference.py --batch 1 --seq 10 --input 16 --image 16 \\
        --units 64 --kernel 5

`--warmup` untimed calls (default 3: the first traces the function), then `--repeats` timed
calls (default 10) with `time.perf_counter`, inputs rotating among 3 pre-made arrays; median,
min and max in µs. FLOPs are counted as in `recurrent bench`: both convolutions,
2 * B * T * rows * cols * kh * kw * (channels + filters) * 4 * filters.
"""

import argparse
import json
import os
import statistics
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=10)
    p.add_argument("--input", type=int, default=16, help="input channels")
    p.add_argument("--image", type=int, default=32, help="rows = cols")
    p.add_argument("--units", type=int, default=32, help="filters")
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_keras

    b, t, c, s, f, k = a.batch, a.seq, a.input, a.image, a.units, a.kernel
    layer = tf_keras.layers.ConvLSTM2D(f, (k, k), padding="same")
    layer.build((b, t, s, s, c))
    fn = tf.function(lambda x: layer(x))
    rng = np.random.default_rng(0)
    xs = [tf.constant(rng.uniform(-1, 1, (b, t, s, s, c)).astype(np.float32)) for _ in range(3)]
    for i in range(a.warmup):
        fn(xs[i % 3]).numpy()
    times = []
    for i in range(a.repeats):
        t0 = time.perf_counter()
        fn(xs[i % 3]).numpy()
        times.append((time.perf_counter() - t0) * 1e6)
    med = statistics.median(times)
    flops = 2.0 * b * t * s * s * k * k * (c + f) * 4 * f
    row = {
        "engine": "keras",
        "version": f"tf {tf.__version__}, tf-keras {tf_keras.__version__}",
        "layer": "conv_lstm2d",
        "batch": b,
        "seq": t,
        "input": c,
        "image": s,
        "units": f,
        "kernel": k,
        "threads": a.threads,
        "median_us": med,
        "min_us": min(times),
        "max_us": max(times),
        "gflops": flops / med / 1e3,
    }
    if a.json:
        print(json.dumps(row))
    else:
        print(
            f"keras conv_lstm2d {b},{t},{c}@{s}x{s},{f},k{k} threads {a.threads}: "
            f"median {med / 1e3:.3f} ms (min {min(times) / 1e3:.3f}, max {max(times) / 1e3:.3f}), "
            f"{row['gflops']:.1f} GFLOP/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
