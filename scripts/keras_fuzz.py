"""Randomised parity sweep: many random Keras 2 layer configurations through `recurrent run`.

The fixtures (`scripts/keras_fixtures.py`) pin one case per option; this sweep draws random
combinations of them (layer class, sizes down to 1, every Keras 2 activation for both slots,
use_bias, unit_forget_bias, reset_after, implementation, dropout values that inference ignores,
go_backwards, return_sequences, return_state, stateful, unroll, time_major, masks with holes
and fully masked rows, initial states, zero_output_for_mask, stacks of mixed cells, CuDNN
layers, ConvLSTM2D kernel / strides / dilation / padding / data_format), lets real Keras 2
compute the reference, and runs the release binary on the exported files exactly as a user
would (`recurrent run --layer --weights --input [--mask] [--initial-state] --device --output`).

Every element must satisfy |got - want| <= 1e-5 + 1e-4 * |want| (f32; the bound of
keras-interchange.md), with the same output names and shapes. A combination that Keras itself
refuses, or whose Keras output is not finite, is counted as skipped and never compared.

Environment: the venv of keras_fixtures.py (tensorflow-cpu 2.21.0, tf-keras 2.21.0). From the
repository root:

    cargo build --release
    .kvenv/bin/python scripts/keras_fuzz.py --cases 300 --seed 1 [--device cuda]

The corpus `tests/fixtures_fuzz/` (checked by tests/keras_parity.rs without Keras) is

    rm -rf tests/fixtures_fuzz
    .kvenv/bin/python scripts/keras_fuzz.py --cases 150 --seed 1 --large-share 0 \
        --write tests/fixtures_fuzz

(deterministic: the same files on every run; 136 cases, the other 14 draws Keras refused or
were skipped: empty or non-finite outputs, magnitudes over ILL_CONDITIONED, combinations not
drawn).

Failing cases are kept under `--keep` (default target/keras-fuzz/failed/<case>/) in the
interchange layout with Keras's `out.npz`, so `recurrent run` can be rerun on them by hand.
Exit status: 0 when every compared case is within the bound, 1 otherwise.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras_fixtures as kf  # noqa: E402  (sets TF's environment before importing it)
import keras_file_fixtures as kff  # noqa: E402  (Bidirectional's interchange names)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras, L = kf.keras, kf.L

ACTIVATIONS = ["tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign", "softplus",
               "elu", "selu", "swish", "gelu", "exponential", "relu6", "mish", "leaky_relu",
               "softmax", "log_softmax", None]
# Bounded pairs keep long random sequences finite; unbounded ones still appear, and a case
# whose Keras output is not finite is skipped.
BOUNDED = ["tanh", "sigmoid", "hard_sigmoid", "softsign"]


# Cases whose Keras outputs exceed this magnitude are not compared (see make_case).
ILL_CONDITIONED = 1e4


class Refused(Exception):
    """Keras rejected the combination (or produced non-finite numbers): not a test case."""


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def chance(rng, p):
    return bool(rng.random() < p)


def activation(rng):
    return pick(rng, BOUNDED) if chance(rng, 0.6) else pick(rng, ACTIVATIONS)


def random_mask(rng, batch, time_):
    m = rng.random((batch, time_)) < 0.65
    if batch > 1 and chance(rng, 0.3):
        m[int(rng.integers(batch))] = False  # a fully masked row
    return m


def dense_cell_kwargs(rng, kind):
    kw = dict(activation=activation(rng), use_bias=chance(rng, 0.8))
    if kind != "simple":
        kw["recurrent_activation"] = activation(rng)
        kw["implementation"] = int(rng.integers(1, 3))
    if kind == "gru":
        kw["reset_after"] = chance(rng, 0.5)
    if kind == "lstm":
        kw["unit_forget_bias"] = chance(rng, 0.7)
    if chance(rng, 0.2):
        kw["dropout"] = 0.25
        kw["recurrent_dropout"] = 0.1
    return kw


CELLS = {"simple": L.SimpleRNNCell, "gru": L.GRUCell, "lstm": L.LSTMCell}
LAYERS = {"simple": L.SimpleRNN, "gru": L.GRU, "lstm": L.LSTM}


def loop_kwargs(rng, dense=True):
    kw = dict(return_sequences=chance(rng, 0.5), return_state=chance(rng, 0.5),
              go_backwards=chance(rng, 0.35))
    if dense and chance(rng, 0.15):
        kw["unroll"] = True  # Keras refuses unroll for ConvLSTM2D
    if dense and chance(rng, 0.1):
        kw["time_major"] = True
    return kw


def draw_dense(rng, large):
    """SimpleRNN / GRU / LSTM / RNN over one cell or a stack."""
    batch, time_, feat = int(rng.integers(1, 5)), int(rng.integers(1, 8)), int(rng.integers(1, 10))
    hi = 10
    if large:  # the sizes where the GPU path switches mappings (tiles, persistent kernel)
        batch, time_, feat = int(rng.integers(1, 70)), int(rng.integers(1, 24)), int(rng.integers(1, 80))
        hi = 140
    kw = loop_kwargs(rng)
    if chance(rng, 0.2):
        kw["zero_output_for_mask"] = True  # every RNN subclass takes it through **kwargs
    stateful = chance(rng, 0.1)
    if stateful:
        kw["stateful"] = True
    family = pick(rng, ["simple", "gru", "lstm", "rnn", "rnn"])
    if family == "rnn":
        n = int(rng.integers(1, 4))
        cells = [CELLS[k](int(rng.integers(1, hi)), **dense_cell_kwargs(rng, k))
                 for k in (pick(rng, list(CELLS)) for _ in range(n))]
        cell = cells[0] if n == 1 and chance(rng, 0.5) else cells
        if isinstance(cell, list) and chance(rng, 0.3):
            cell = L.StackedRNNCells(cell)
        make = lambda: L.RNN(cell, **kw)  # noqa: E731
        what = f"RNN[{', '.join(type(c).__name__ for c in (cells))}]"
    else:
        ckw = dense_cell_kwargs(rng, family)
        units = int(rng.integers(1, hi))
        make = lambda: LAYERS[family](units, **ckw, **kw)  # noqa: E731
        what = f"{LAYERS[family].__name__}({units}, {ckw})"
    time_major = kw.get("time_major", False)
    shape = (time_, batch, feat) if time_major else (batch, time_, feat)
    mask = random_mask(rng, batch, time_) if chance(rng, 0.4) else None
    if mask is not None and time_major:
        # Keras takes (time, batch) here, and so does `run`, except for a square mask, which
        # it reads as the contract's (batch, time): no mask for those draws.
        mask = np.ascontiguousarray(mask.T) if time_ != batch else None
    init = chance(rng, 0.35)
    return make, shape, mask, init, f"{what} {kw}"


def draw_conv(rng):
    batch, time_ = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    rows, cols, ch = int(rng.integers(2, 8)), int(rng.integers(2, 8)), int(rng.integers(1, 4))
    kh, kw_ = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    padding = pick(rng, ["valid", "same"])
    strides, dilation = (1, 1), (1, 1)
    if chance(rng, 0.3):
        strides = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    elif chance(rng, 0.3):
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    kw = dict(filters=int(rng.integers(1, 5)), kernel_size=(kh, kw_), strides=strides,
              padding=padding, dilation_rate=dilation, activation=activation(rng),
              recurrent_activation=activation(rng), use_bias=chance(rng, 0.8),
              unit_forget_bias=chance(rng, 0.7), **loop_kwargs(rng, dense=False))
    first = chance(rng, 0.25)
    shape = (batch, time_, ch, rows, cols) if first else (batch, time_, rows, cols, ch)
    mask = random_mask(rng, batch, time_) if chance(rng, 0.3) else None
    init = chance(rng, 0.3)
    if first:
        kw["data_format"] = "channels_first"
    return (lambda: L.ConvLSTM2D(**kw)), shape, mask, init, f"ConvLSTM2D {kw}"


def as_float64(cfg):
    """A layer config with every dtype (cells' too) set to float64."""
    if isinstance(cfg, dict):
        return {k: ("float64" if k == "dtype" else as_float64(v)) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [as_float64(v) for v in cfg]
    return cfg


def perturbed(x, seed):
    """`x` times (1 + 1e-7 N(0, 1)): about one float32 ulp of noise, seeded."""
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    return (x * (1.0 + 1e-7 * noise)).astype(np.float32)


def float64_outputs(ref, x, mask, init_k, post=lambda a: a):
    """A closure computing `ref`'s outputs in float64 (same weights): the exact answer that
    tells an ill-conditioned case (Keras's own float32 result far from it) from a bug. With
    `noise_seed` it computes them in float32 on a perturbed input instead (`perturbed`):
    how far one ulp of input noise moves Keras's own answer."""

    def run(noise_seed=None):
        exact = noise_seed is None
        cfg = ref.get_config()
        twin = ref.__class__.from_config(as_float64(cfg) if exact else cfg)
        xin = (tf.constant(x, dtype=tf.float64) if exact
               else tf.constant(perturbed(x, noise_seed)))
        twin(xin)
        twin.set_weights([w.astype(np.float64 if exact else np.float32)
                          for w in ref.get_weights()])
        if getattr(twin, "stateful", False):
            twin.reset_states()
        init = init_k
        if init_k is not None and exact:
            init = tf.nest.map_structure(lambda t: tf.cast(t, tf.float64), init_k)
        out = kf.outputs_dict(twin, kf.call(twin, xin, mask, init))
        return {k: post(v) for k, v in out.items()}

    return run


def conditioned_weights(layer, rng):
    """Random weights scaled by fan-in so that large layers are not chaotic: uniform with
    the recurrent kernel's spectral radius about 0.9 and pre-activations of order 1."""
    ws = []
    for w in layer.get_weights():
        fan_in = int(np.prod(w.shape[:-1])) if w.ndim >= 2 else 1
        a = min(0.6, 0.9 * np.sqrt(3.0 / fan_in))
        ws.append(rng.uniform(-a, a, w.shape).astype(np.float32))
    layer.set_weights(ws)


def keras_reference(make, x, mask, init, rng, large=False):
    """Build, randomise, call; returns (layer, weights, out, init_npz, float64 closure)."""
    layer = make()
    cfg = layer.get_config()
    if isinstance(layer, L.ConvLSTM2D) and cfg.get("data_format") == "channels_first":
        return conv_channels_first(layer, cfg, x, mask, init, rng)
    kf.call(layer, x)
    (conditioned_weights if large else kf.randomize_weights)(layer, rng)
    if getattr(layer, "stateful", False):
        layer.reset_states()
    init_k, init_np = kf.random_initial_state(layer, x, rng) if init else (None, None)
    out = kf.outputs_dict(layer, kf.call(layer, x, mask, init_k))
    return layer, kf.named_weights(layer), out, init_np, float64_outputs(layer, x, mask, init_k)


def conv_channels_first(layer, cfg, x, mask, init, rng):
    """The channels_first layer itself computes the reference (tf-keras runs it on the CPU,
    transposing around each convolution); its weights and initial states are drawn through
    the channels_last twin. The twin's transposed outputs are the same numbers for every
    elementwise activation, but not for softmax / log_softmax, which Keras applies over the
    last axis of `(batch, filters, rows, cols)` gate tensors: `cols` here, `filters` in the
    twin."""
    twin = L.ConvLSTM2D.from_config(dict(cfg, data_format="channels_last", name="twin"))
    x_last = np.ascontiguousarray(np.transpose(x, (0, 1, 3, 4, 2)))
    kf.call(twin, x_last)
    kf.randomize_weights(twin, rng)
    init_k, init_np = (None, None)
    if init:
        _, init_last = kf.random_initial_state(twin, x_last, rng)
        init_np = {k: np.transpose(v, (0, 3, 1, 2)) for k, v in init_last.items()}
        init_k = [tf.constant(init_np[k]) for k in ("h", "c")]
    layer.build(x.shape)
    layer.set_weights(twin.get_weights())
    out = kf.outputs_dict(layer, kf.call(layer, x, mask, init_k))
    exact = float64_outputs(layer, x, mask, init_k)
    return layer, kf.named_weights(layer), out, init_np, exact


def draw_bidi(rng, large):
    """Bidirectional around a dense layer or a ConvLSTM2D, any merge_mode."""
    if chance(rng, 0.2):
        make, shape, mask, _, label = draw_conv(rng)
    else:
        make, shape, mask, _, label = draw_dense(rng, large)
    merge = pick(rng, ["concat", "sum", "mul", "ave", None])
    init = chance(rng, 0.3)

    def make_bidi():
        inner = make()
        if inner.stateful or inner.time_major or getattr(inner, "data_format", "") == \
                "channels_first":
            raise Refused("not drawn for Bidirectional: stateful / time_major / channels_first")
        return L.Bidirectional(inner, merge_mode=merge)

    return make_bidi, shape, mask, init, f"Bidirectional(merge_mode={merge}) over {label}"


def bidi_reference(make, x, mask, init, rng, large):
    layer = make()
    kf.call(layer, x)
    (conditioned_weights if large else kf.randomize_weights)(layer, rng)
    if init and isinstance(layer.forward_layer, L.ConvLSTM2D):
        raise Refused("not drawn: initial states for a Bidirectional ConvLSTM2D")
    init_k, init_np = kff.random_initial_state(layer, x.shape[0], rng) if init else (None, None)
    out = kff.outputs_dict(layer, kf.call(layer, x, mask, init_k))

    def exact(noise_seed=None):  # as float64_outputs' closure
        f64 = noise_seed is None
        cfg = layer.get_config()
        twin = L.Bidirectional.from_config(as_float64(cfg) if f64 else cfg)
        xin = tf.constant(x, dtype=tf.float64) if f64 else tf.constant(perturbed(x, noise_seed))
        twin(xin)
        twin.set_weights([w.astype(np.float64 if f64 else np.float32)
                          for w in layer.get_weights()])
        init = init_k
        if init_k is not None and f64:
            init = [tf.cast(t, tf.float64) for t in init_k]
        return kff.outputs_dict(twin, kf.call(twin, xin, mask, init))

    return layer, kff.interchange_weights(layer), out, init_np, exact


def draw_cudnn(rng):
    kind = pick(rng, ["lstm", "gru"])
    batch, time_ = int(rng.integers(1, 5)), int(rng.integers(1, 8))
    in_dim, units = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    flags = dict(return_sequences=chance(rng, 0.5), return_state=chance(rng, 0.5),
                 go_backwards=chance(rng, 0.35), time_major=chance(rng, 0.15))
    init = chance(rng, 0.35)
    shape = (time_, batch, in_dim) if flags["time_major"] else (batch, time_, in_dim)
    return kind, shape, units, flags, init


def cudnn_reference(kind, x, units, flags, init, rng):
    """CuDNN config + weights; the reference is the plain layer after Keras's conversion."""
    time_, in_dim = x.shape[0 if flags["time_major"] else 1], x.shape[2]
    layer, plain = kf.cudnn_and_plain(kind, units, time_, in_dim, flags, rng)
    init_k, init_np = kf.random_initial_state(plain, x, rng) if init else (None, None)
    out = kf.outputs_dict(plain, kf.call(plain, x, None, init_k))
    return layer, kf.named_weights(layer), out, init_np, float64_outputs(plain, x, None, init_k)


def make_case(index, seed, path, large_share):
    """Draws case `index`, computes Keras's answer, writes it under `path`; returns a label
    and a closure computing the same layer in float64."""
    keras.backend.clear_session()
    rng = np.random.default_rng([seed, index])
    family = pick(rng, ["dense"] * 6 + ["conv"] * 2 + ["cudnn", "bidi"])
    large = chance(rng, large_share)
    mask = None
    try:
        if family == "cudnn":
            kind, shape, units, flags, init = draw_cudnn(rng)
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            layer, weights, out, init_np, exact = cudnn_reference(kind, x, units, flags, init,
                                                                  rng)
            label = f"CuDNN{kind.upper()}({units}) {flags} init={init}"
        else:
            draw = {"dense": lambda: draw_dense(rng, large), "conv": lambda: draw_conv(rng),
                    "bidi": lambda: draw_bidi(rng, large)}[family]
            make, shape, mask, init, label = draw()
            x = (rng.uniform(-1, 1, shape) * pick(rng, [1.0, 1.0, 3.0])).astype(np.float32)
            reference = bidi_reference if family == "bidi" else keras_reference
            layer, weights, out, init_np, exact = reference(make, x, mask, init, rng, large)
            label += f" x{shape} mask={mask is not None} init={init}"
    except (ValueError, TypeError, NotImplementedError, tf.errors.OpError) as e:
        why = " ".join(str(e).split())
        raise Refused(f"{type(e).__name__}: {why[:100]} ... {why[-120:]}") from e
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise Refused(f"Keras output {k} not finite")
        if v.size == 0:  # e.g. a valid convolution wider than the image: we refuse it clearly
            raise Refused(f"Keras output {k} is empty, shape {v.shape}")
        if np.abs(v).max() > ILL_CONDITIONED:
            # Unbounded activations (exponential, relu, swish, ...) blow the states up, and
            # then float32 rounding differences of one ulp grow without bound: no summation
            # order reproduces another's numbers there.
            raise Refused(f"ill-conditioned: Keras output {k} reaches {np.abs(v).max():.3g}")
    kf.write_dir(path, layer, label, weights, x, out, mask=mask, init=init_np)
    return label, exact


def excess(got, want):
    """Largest amount by which |got - want| exceeds 1e-5 + 1e-4 * |want| (<= 0: within)."""
    e = np.abs(got - want) - (1e-5 + 1e-4 * np.abs(want))
    return float(e.max()) if e.size else 0.0


def run_ours(binary, path, device, dtype):
    cmd = [binary, "run", "--layer", os.path.join(path, "layer.json"),
           "--weights", os.path.join(path, "weights.npz"),
           "--input", os.path.join(path, "x.npy"),
           "--device", device, "--dtype", dtype,
           "--output", os.path.join(path, "ours.npz")]
    for flag, name in (("--mask", "mask.npy"), ("--initial-state", "initial_state.npz")):
        if os.path.exists(os.path.join(path, name)):
            cmd += [flag, os.path.join(path, name)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return f"exit {res.returncode}: {res.stderr.strip()[:300]}"
    want = dict(np.load(os.path.join(path, "out.npz")))
    got = dict(np.load(os.path.join(path, "ours.npz")))
    if set(got) != set(want):
        return f"output names {sorted(got)} != Keras {sorted(want)}"
    for k, w in want.items():
        if got[k].shape != w.shape:
            return f"{k}: shape {got[k].shape} != Keras {w.shape}"
    bad = [f"{k} max |diff| {np.abs(got[k] - w).max():.3g}"
           for k, w in want.items() if excess(got[k], w) > 0]
    return "; ".join(bad) or None


def time_axis(path, key):
    """The time axis of out.npz's array `key` (a sequence output), or None."""
    with open(os.path.join(path, "layer.json")) as fh:
        cfg = json.load(fh)["config"]
    cfg = cfg.get("layer", {}).get("config", cfg)  # Bidirectional: the wrapped layer's
    if not key.endswith("output") or not cfg.get("return_sequences"):
        return None
    return 0 if cfg.get("time_major") else 1


def ill_conditioned(path, exact):
    """Whether a difference from Keras is float32 rounding amplified by the dynamics rather
    than a difference of semantics. Every element of ours outside the bound around Keras's
    must either be within the bound around the float64 answer `exact()`, or no farther from
    it than twice Keras's own largest float32 error at the same time step (the whole array
    for states and last outputs) plus the bound, or no farther from Keras's than twice the
    largest change that one ulp of input noise makes in Keras's own float32 answer at that
    time step (`exact(noise_seed)`, three seeds) plus the bound. Rounding errors grow step by
    step in an ill-conditioned run; a semantic bug shows where Keras is still accurate and
    insensitive to noise. Returns (verdict, description)."""
    want = dict(np.load(os.path.join(path, "out.npz")))
    got = dict(np.load(os.path.join(path, "ours.npz")))
    ref = exact()
    noisy = [exact(noise_seed=s) for s in range(3)]
    verdict, keras_err, ours_err, spread = True, 0.0, 0.0, 0.0
    for k in want:
        w, g, r = want[k], got[k], np.asarray(ref[k], dtype=np.float64)
        ax = time_axis(path, k)
        others = tuple(a for a in range(w.ndim) if a != ax)

        def per_step(a):
            return np.abs(a).max(axis=others, keepdims=True, initial=0)

        scale = per_step(w - r)
        noise = np.max([per_step(np.asarray(n[k], dtype=np.float64) - w) for n in noisy],
                       axis=0)
        bound = 1e-5 + 1e-4 * np.abs(r)
        outside = np.abs(g - w) > 1e-5 + 1e-4 * np.abs(w)
        ok = ((np.abs(g - r) <= 2 * scale + bound)
              | (np.abs(g - w) <= 2 * noise + 1e-5 + 1e-4 * np.abs(w)))
        verdict = verdict and bool(np.all(ok[outside]))
        keras_err = max(keras_err, float(np.abs(w - r).max(initial=0)))
        ours_err = max(ours_err, float(np.abs(g - r).max(initial=0)))
        spread = max(spread, float(noise.max(initial=0)))
    return verdict, (f"float64 answer: Keras f32 off by {keras_err:.3g}, ours by {ours_err:.3g}; "
                     f"one ulp of input noise moves Keras's answer by up to {spread:.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="f32", choices=["f32"])
    ap.add_argument("--bin", default=os.path.join(kf.ROOT, "target", "release", "recurrent"))
    ap.add_argument("--keep", default=os.path.join(kf.ROOT, "target", "keras-fuzz", "failed"))
    ap.add_argument("--large-share", type=float, default=0.15,
                    help="share of dense cases drawn at sizes up to batch 69, time 23, units 139")
    ap.add_argument("--write", metavar="DIR",
                    help="also copy every compared case (failing ones too; not the skipped "
                         "or ill-conditioned ones) into DIR, fixture layout, one directory "
                         "fuzz_<seed>_<i> each: the corpus tests/fixtures_fuzz/ and the GPU "
                         "bundle's cases (scripts/gpu_session.sh fuzz)")
    ap.add_argument("--activations", metavar="NAMES",
                    help="comma-separated Keras names: draw every activation slot from these "
                         "only (e.g. softmax,log_softmax,tanh to sweep the row-wise ones)")
    args = ap.parse_args()
    if args.activations:
        global ACTIVATIONS, BOUNDED
        ACTIVATIONS = BOUNDED = [None if n in ("None", "null") else n
                                 for n in args.activations.split(",")]
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin}: not found or not executable (cargo build --release first)")
    started = time.time()
    passed, skipped, unstable, failed = 0, 0, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.cases):
            path = os.path.join(tmp, f"fuzz_{args.seed}_{i}")
            try:
                label, exact = make_case(i, args.seed, path, args.large_share)
            except Refused as e:
                skipped += 1
                print(f"case {i}: skipped ({e})")
                continue
            problem = run_ours(args.bin, path, args.device, args.dtype)
            if problem is not None and "max |diff|" in problem:
                verdict, how = ill_conditioned(path, exact)
                if verdict:
                    unstable += 1
                    print(f"case {i}: ill-conditioned, not compared ({problem}; {how})")
                    continue
                problem += f"; {how}"
            if args.write:  # every compared case, failing ones too: the corpus must show them
                shutil.copytree(path, os.path.join(args.write, os.path.basename(path)),
                                ignore=shutil.ignore_patterns("ours.npz"), dirs_exist_ok=True)
            if problem is None:
                passed += 1
                continue
            failed.append(i)
            keep = os.path.join(args.keep, os.path.basename(path))
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(path, keep)
            print(f"case {i}: FAILED {problem}\n    {label}\n    kept in {keep}")
    print(f"keras_fuzz seed {args.seed} device {args.device}: {passed} passed, "
          f"{len(failed)} failed, {skipped} skipped (Keras refused or non-finite or empty), "
          f"{unstable} ill-conditioned (see ill_conditioned) "
          f"in {time.time() - started:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
