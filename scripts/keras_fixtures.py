"""Keras 2 parity fixtures for the `recurrent` crate.

Generates the ground truth the crate's tests compare against: for every case a directory
`tests/fixtures/<case_name>/` in the Keras interchange layout (keras-interchange.md, the
`recurrent run` file contract): `layer.json`, `weights.npz`, `x.npy`, optional `mask.npy`,
optional `initial_state.npz`, `out.npz` (stateful cases also `x2.npy`/`out2.npz` for a
second call of the same layer object and `x3.npy`/`out3.npz` for a call after
`reset_states()`), plus two bundled demos under
`examples/keras/lstm/` and `examples/keras/conv_lstm2d/` (Keras's output there is
`keras_out.npz`).

Environment (this script installs nothing). From the repository root:

    python3 -m venv .kvenv
    .kvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0

Run (regenerates everything; `tests/fixtures/` and the two example directories are wiped and
rewritten):

    .kvenv/bin/python scripts/keras_fixtures.py

Only Keras 2 (`tf_keras`) is used, never Keras 3. The run is deterministic: numpy is seeded per
case from the case name (crc32), weights are drawn uniform(-0.6, 0.6) and set with
`layer.set_weights` after a first building call, inputs are uniform(-1, 1) (times 6 in the
"saturating" cases so `hard_sigmoid` reaches both clip ends), initial states uniform(-0.8, 0.8).
`.npz` files are written like `np.savez` (uncompressed zip of `<name>.npy` members) but with a
fixed zip timestamp so that reruns are byte-identical. TF runs on the CPU with oneDNN custom ops
off, so the reference numbers are plain Eigen float32.

CuDNNGRU / CuDNNLSTM cannot be called on a CPU. Their cases build the CuDNN layer, give it
random weights, export its config and `get_weights()`, then let Keras convert: the CuDNN layer's
model is saved with `save_weights` to a temporary .h5 and loaded into the equivalent model with
GRU(reset_after=True, sigmoid) / LSTM(sigmoid, tanh); that plain layer produces `out.npz`.
The conversion is additionally cross-checked against the documented formula (keras2-semantics.md).
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import io
import json
import shutil
import sys
import tempfile
import zipfile
import zlib

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras.src.layers import CuDNNGRU, CuDNNLSTM

L = keras.layers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
EXAMPLES = os.path.join(ROOT, "examples", "keras")

# Masks with holes: a hole in the middle, a leading masked run, a row with one real step.
MASK_HOLES_6 = np.array(
    [[1, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=bool
)
# The middle row is masked everywhere.
MASK_FULL_ROW_6 = np.array(
    [[1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1]], dtype=bool
)
# ConvLSTM2D masks, time 4.
MASK_HOLES_4 = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=bool)


# --------------------------------------------------------------------------------------------
# Writing


def savez(path, arrays):
    """np.savez equivalent (stored zip of NAME.npy members) with a fixed timestamp."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def f32(d):
    return {k: np.asarray(v, dtype=np.float32) for k, v in d.items()}


def layer_json(layer, description):
    doc = {
        "class_name": layer.__class__.__name__,
        "config": layer.get_config(),
        "description": description,
    }
    return json.dumps(doc, indent=2) + "\n"


def write_dir(path, layer, description, weights, x, out, mask=None, init=None,
              out_name="out.npz", extra=None):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "layer.json"), "w") as fh:
        fh.write(layer_json(layer, description))
    savez(os.path.join(path, "weights.npz"), f32(weights))
    np.save(os.path.join(path, "x.npy"), np.asarray(x, dtype=np.float32))
    if mask is not None:
        np.save(os.path.join(path, "mask.npy"), np.asarray(mask, dtype=bool))
    if init is not None:
        savez(os.path.join(path, "initial_state.npz"), f32(init))
    savez(os.path.join(path, out_name), f32(out))
    for fname, val in (extra or {}).items():
        if fname.endswith(".npy"):
            np.save(os.path.join(path, fname), np.asarray(val, dtype=np.float32))
        else:
            savez(os.path.join(path, fname), f32(val))


# --------------------------------------------------------------------------------------------
# Helpers over Keras layers


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def is_stack(layer):
    return isinstance(getattr(layer, "cell", None), L.StackedRNNCells)


def short(var_name):
    return var_name.split("/")[-1].split(":")[0]


def named_weights(layer):
    """Weights as the contract names them: kernel, recurrent_kernel, bias / cells.i.*."""
    out = {}
    if is_stack(layer):
        for i, cell in enumerate(layer.cell.cells):
            for w in cell.weights:
                out[f"cells.{i}.{short(w.name)}"] = w.numpy()
    else:
        for w in layer.weights:
            out[short(w.name)] = w.numpy()
    allowed = {"kernel", "recurrent_kernel", "bias"}
    assert all(k.split(".")[-1] in allowed for k in out), list(out)
    assert len(out) == len(layer.get_weights()), (list(out), len(layer.get_weights()))
    return out


def randomize_weights(layer, rng, scale=1.0):
    layer.set_weights(
        [(rng.uniform(-0.6, 0.6, w.shape) * scale).astype(np.float32)
         for w in layer.get_weights()]
    )


def state_names(layer, states, prefix):
    """Names for a (possibly nested) list of states: h, c / cells.i.h, cells.i.c."""
    names = []
    if is_stack(layer):
        for i, s in enumerate(states):
            n = len(s) if isinstance(s, (list, tuple)) else 1
            names.append([f"cells.{i}.{prefix}{k}" for k in "hc"[:n]])
    else:
        names = [f"{prefix}{k}" for k in "hc"[: len(states)]]
    return names


def flatten_named(names, values):
    out = {}
    for n, v in zip(tf.nest.flatten(names), tf.nest.flatten(values)):
        out[n] = np.asarray(v)
    return out


def random_initial_state(layer, x, rng):
    """Random initial states with Keras's nesting; returns (keras_structure, npz_dict)."""
    zeros = layer.get_initial_state(tf.constant(x))
    if not is_stack(layer) and not isinstance(zeros, (list, tuple)):
        zeros = [zeros]
    values = tf.nest.map_structure(
        lambda t: tf.constant(rng.uniform(-0.8, 0.8, tuple(t.shape)).astype(np.float32)),
        list(zeros),
    )
    names = state_names(layer, values, "")
    return values, flatten_named(names, values)


def outputs_dict(layer, result):
    if not layer.return_state:
        return {"output": np.asarray(result)}
    out = {"output": np.asarray(result[0])}
    states = list(result[1:])
    out.update(flatten_named(state_names(layer, states, "state_"), states))
    return out


def call(layer, x, mask=None, init=None):
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = tf.constant(mask)
    if init is not None:
        kwargs["initial_state"] = init
    return layer(tf.constant(x), **kwargs)


def assert_finite(d, name):
    for k, v in d.items():
        assert np.all(np.isfinite(v)), f"{name}: non-finite values in {k}"


def assert_close(a, b, what, tol=1e-5):
    for k in a:
        err = np.abs(a[k] - b[k]).max()
        assert err <= tol, f"{what}: {k} differs by {err}"


def check_saturation(name, layer, x):
    """The gates' input pre-activations must reach both hard_sigmoid clip ends."""
    w = named_weights(layer)
    k = w["kernel"]
    b = w.get("bias", 0.0)
    if np.ndim(b) == 2:
        b = b[0]
    if k.ndim == 2:
        pre = x.reshape(-1, k.shape[0]) @ k + b
    else:
        cfg = layer.get_config()
        xs = x.reshape((-1,) + x.shape[2:])
        pre = tf.nn.convolution(
            xs, k, strides=cfg["strides"], padding=cfg["padding"].upper(),
            dilations=cfg["dilation_rate"],
        ).numpy() + b
    assert pre.min() < -2.5 and pre.max() > 2.5, f"{name}: not saturating {pre.min()} {pre.max()}"


# --------------------------------------------------------------------------------------------
# Case kinds

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def run_case(name, description, make, x_shape, *, mask=None, init=False, x_scale=1.0,
             stateful=False, saturating=False, w_scale=1.0):
    keras.backend.clear_session()
    rng = rng_for(name)
    x = (rng.uniform(-1.0, 1.0, x_shape) * x_scale).astype(np.float32)
    layer = make()
    call(layer, x)  # build
    randomize_weights(layer, rng, w_scale)
    if stateful:
        layer.reset_states()
    init_k, init_np = (random_initial_state(layer, x, rng) if init else (None, None))
    if saturating:
        check_saturation(name, layer, x)
    out = outputs_dict(layer, call(layer, x, mask, init_k))
    assert_finite(out, name)
    extra = {}
    if stateful:
        x2 = rng.uniform(-1.0, 1.0, x_shape).astype(np.float32)
        x3 = rng.uniform(-1.0, 1.0, x_shape).astype(np.float32)
        out2 = outputs_dict(layer, call(layer, x2))
        layer.reset_states()
        out3 = outputs_dict(layer, call(layer, x3))
        extra = {"x2.npy": x2, "out2.npz": out2, "x3.npy": x3, "out3.npz": out3}
        # cross-check against a non-stateful twin with the same weights
        cfg = dict(layer.get_config(), stateful=False, return_state=True)
        twin = layer.__class__.from_config(cfg)
        call(twin, x)
        twin.set_weights(layer.get_weights())
        r1 = twin(tf.constant(x))
        r2 = twin(tf.constant(x2), initial_state=list(r1[1:]))
        r3 = twin(tf.constant(x3))
        assert_close({"output": out2["output"]}, {"output": np.asarray(r2[0])}, name + " out2")
        assert_close({"output": out3["output"]}, {"output": np.asarray(r3[0])}, name + " out3")
    write_dir(os.path.join(FIXTURES, name), layer, description, named_weights(layer), x, out,
              mask=mask, init=init_np, extra=extra)


def cudnn_and_plain(kind, units, time, in_dim, flags, rng):
    """A CuDNNLSTM / CuDNNGRU with random weights, and the plain layer Keras converts them
    into (LSTM(sigmoid, tanh) / GRU(reset_after=True)) through save_weights / load_weights."""
    cls = CuDNNLSTM if kind == "lstm" else CuDNNGRU
    layer = cls(units, **flags)
    inp = keras.Input((time, in_dim))
    src_model = keras.Model(inp, layer(inp))
    randomize_weights(layer, rng)
    if kind == "lstm":
        plain = L.LSTM(units, activation="tanh", recurrent_activation="sigmoid", **flags)
    else:
        plain = L.GRU(units, activation="tanh", recurrent_activation="sigmoid",
                      reset_after=True, **flags)
    inp2 = keras.Input((time, in_dim))
    dst_model = keras.Model(inp2, plain(inp2))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cudnn.h5")
        src_model.save_weights(path)
        dst_model.load_weights(path)
    return layer, plain


def cudnn_case(name, description, kind, in_dim=3, units=5, batch=2, time=5, init=False,
               **flags):
    """CuDNN layer config + weights; reference from the plain layer Keras converts to."""
    keras.backend.clear_session()
    rng = rng_for(name)
    x = rng.uniform(-1.0, 1.0, (batch, time, in_dim)).astype(np.float32)
    layer, plain = cudnn_and_plain(kind, units, time, in_dim, flags, rng)
    weights = named_weights(layer)
    n_gates = 4 if kind == "lstm" else 3
    # cross-check Keras's conversion against the documented formula
    k, r, b = weights["kernel"], weights["recurrent_kernel"], weights["bias"]
    want_k = np.hstack([g.reshape(-1).reshape(units, in_dim).T for g in np.hsplit(k, n_gates)])
    want_r = np.hstack([g.T for g in np.hsplit(r, n_gates)])
    want_b = b[: n_gates * units] + b[n_gates * units:] if kind == "lstm" else b.reshape(2, -1)
    got = plain.get_weights()
    assert np.array_equal(got[0], want_k) and np.array_equal(got[1], want_r)
    assert np.allclose(got[2], want_b, atol=1e-7)
    init_k, init_np = (None, None)
    if init:
        init_k, init_np = random_initial_state(plain, x, rng)
    result = call(plain, x, None, init_k)
    out = outputs_dict(plain, result)
    assert_finite(out, name)
    write_dir(os.path.join(FIXTURES, name), layer, description, weights, x, out, init=init_np)


def conv_channels_first_case(name, description, x_shape, **kw):
    """ConvLSTM2D channels_first, cross-checked against channels_last on transposed data."""
    keras.backend.clear_session()
    rng = rng_for(name)
    x = rng.uniform(-1.0, 1.0, x_shape).astype(np.float32)  # (b, t, ch, rows, cols)
    x_last = np.ascontiguousarray(np.transpose(x, (0, 1, 3, 4, 2)))
    layer = L.ConvLSTM2D(data_format="channels_first", **kw)
    twin = L.ConvLSTM2D(data_format="channels_last", **kw)
    call(twin, x_last)
    randomize_weights(twin, rng)

    def to_first(a):
        a = np.asarray(a)
        return np.transpose(a, (0, 1, 4, 2, 3) if a.ndim == 5 else (0, 3, 1, 2))

    via_last = {k: to_first(v) for k, v in outputs_dict(twin, call(twin, x_last)).items()}
    how = "computed directly by Keras on the CPU"
    try:
        call(layer, x)
        layer.set_weights(twin.get_weights())
        out = outputs_dict(layer, call(layer, x))
        assert_close(out, via_last, name + " channels_first vs channels_last", tol=1e-5)
    except (tf.errors.OpError, NotImplementedError, ValueError) as e:  # CPU refused NCHW
        print(f"  {name}: channels_first refused on CPU ({type(e).__name__}); "
              "using the transposed channels_last reference", file=sys.stderr)
        if not layer.built:
            layer.build(x.shape)
        layer.set_weights(twin.get_weights())
        out = via_last
        how = ("computed by the equivalent channels_last layer with the same weights on the "
               "transposed input, outputs transposed back (TF's CPU conv refused channels_first)")
    assert_finite(out, name)
    write_dir(os.path.join(FIXTURES, name), layer, f"{description} Reference {how}.",
              named_weights(layer), x, out)


# --------------------------------------------------------------------------------------------
# SimpleRNN (input 3, units 4)

SR = dict(units=4)


@case
def simple_rnn():
    run_case("simple_rnn_default", "SimpleRNN with Keras defaults (tanh, bias), last output only.",
             lambda: L.SimpleRNN(**SR), (2, 5, 3))
    run_case("simple_rnn_return_sequences", "SimpleRNN returning the full output sequence.",
             lambda: L.SimpleRNN(return_sequences=True, **SR), (2, 5, 3))
    run_case("simple_rnn_return_state", "SimpleRNN with return_state: output and final state_h.",
             lambda: L.SimpleRNN(return_state=True, **SR), (2, 5, 3))
    run_case("simple_rnn_go_backwards_seq",
             "SimpleRNN go_backwards with return_sequences: outputs stay in processing order.",
             lambda: L.SimpleRNN(go_backwards=True, return_sequences=True, **SR), (2, 5, 3))
    run_case("simple_rnn_no_bias_seq", "SimpleRNN with use_bias=False (no bias in weights.npz).",
             lambda: L.SimpleRNN(use_bias=False, return_sequences=True, **SR), (2, 5, 3))
    run_case("simple_rnn_relu_seq", "SimpleRNN with relu activation and return_sequences.",
             lambda: L.SimpleRNN(activation="relu", return_sequences=True, **SR), (2, 5, 3))
    run_case("simple_rnn_activation_none_seq",
             "SimpleRNN built with activation=None, which Keras serializes as 'linear'.",
             lambda: L.SimpleRNN(activation=None, return_sequences=True, **SR), (2, 5, 3))
    run_case("simple_rnn_initial_state_state",
             "SimpleRNN with a given initial_state h and return_state.",
             lambda: L.SimpleRNN(return_state=True, **SR), (2, 5, 3), init=True)
    run_case("simple_rnn_go_backwards_mask_holes_seq",
             "SimpleRNN go_backwards + return_sequences with a mask with holes and a leading "
             "masked run (mask reversed with the input).",
             lambda: L.SimpleRNN(go_backwards=True, return_sequences=True, **SR), (3, 6, 3),
             mask=MASK_HOLES_6)
    run_case("simple_rnn_fully_masked_row_seq_state",
             "SimpleRNN with one batch row masked at every step and no initial_state "
             "(zeros output, zero final state for that row), return_sequences + return_state.",
             lambda: L.SimpleRNN(return_sequences=True, return_state=True, **SR), (3, 6, 3),
             mask=MASK_FULL_ROW_6)
    run_case("simple_rnn_stateful_seq",
             "Stateful SimpleRNN: out2 is a second call carrying the states of the first, out3 "
             "a call after reset_states().",
             lambda: L.SimpleRNN(stateful=True, return_sequences=True, **SR), (2, 4, 3),
             stateful=True)
    run_case("simple_rnn_time_major_seq_state",
             "SimpleRNN with time_major=True: x is (time, batch, feat), output (time, batch, "
             "units), plus return_state.",
             lambda: L.SimpleRNN(time_major=True, return_sequences=True, return_state=True,
                                 **SR), (5, 2, 3))


# --------------------------------------------------------------------------------------------
# GRU reset_after=False (input 3, units 4)

G0 = dict(units=4, reset_after=False)


@case
def gru_reset_before():
    run_case("gru_reset_before_hard_sigmoid_saturating_seq",
             "GRU reset_after=False with hard_sigmoid recurrent activation and inputs scaled by "
             "6 so the gates hit both clip ends.",
             lambda: L.GRU(recurrent_activation="hard_sigmoid", return_sequences=True, **G0),
             (2, 5, 3), x_scale=6.0, saturating=True)
    run_case("gru_reset_before_seq_state",
             "GRU reset_after=False with return_sequences and return_state.",
             lambda: L.GRU(return_sequences=True, return_state=True, **G0), (2, 5, 3))
    run_case("gru_reset_before_mask_holes_state",
             "GRU reset_after=False with a mask with holes, last output and final state.",
             lambda: L.GRU(return_state=True, **G0), (3, 6, 3), mask=MASK_HOLES_6)
    run_case("gru_reset_before_go_backwards_mask_holes_seq",
             "GRU reset_after=False, go_backwards + return_sequences with a mask with holes.",
             lambda: L.GRU(go_backwards=True, return_sequences=True, **G0), (3, 6, 3),
             mask=MASK_HOLES_6)
    run_case("gru_reset_before_initial_state_state",
             "GRU reset_after=False with a given initial_state and return_state.",
             lambda: L.GRU(return_state=True, **G0), (2, 5, 3), init=True)
    run_case("gru_reset_before_no_bias_seq",
             "GRU reset_after=False with use_bias=False.",
             lambda: L.GRU(use_bias=False, return_sequences=True, **G0), (2, 5, 3))
    run_case("gru_reset_before_stateful_state",
             "Stateful GRU reset_after=False with return_state: out2 carries the first call's "
             "states, out3 follows reset_states().",
             lambda: L.GRU(stateful=True, return_state=True, **G0), (2, 4, 3), stateful=True)


# --------------------------------------------------------------------------------------------
# GRU reset_after=True (input 3, units 4 unless said)

G1 = dict(units=4, reset_after=True)


@case
def gru_reset_after():
    run_case("gru_reset_after_sigmoid_seq",
             "GRU reset_after=True with sigmoid recurrent activation (tf.keras 2 default), "
             "return_sequences; bias has shape (2, 3u).",
             lambda: L.GRU(recurrent_activation="sigmoid", return_sequences=True, **G1),
             (2, 5, 3))
    run_case("gru_reset_after_return_state",
             "GRU reset_after=True with return_state.",
             lambda: L.GRU(return_state=True, **G1), (2, 5, 3))
    run_case("gru_reset_after_go_backwards_mask_holes_seq",
             "GRU reset_after=True, go_backwards + return_sequences with a mask with holes.",
             lambda: L.GRU(go_backwards=True, return_sequences=True, **G1), (3, 6, 3),
             mask=MASK_HOLES_6)
    run_case("gru_reset_after_no_bias_seq",
             "GRU reset_after=True with use_bias=False.",
             lambda: L.GRU(use_bias=False, return_sequences=True, **G1), (2, 5, 3))
    run_case("gru_reset_after_initial_state_state",
             "GRU reset_after=True with a given initial_state and return_state.",
             lambda: L.GRU(return_state=True, **G1), (2, 5, 3), init=True)
    run_case("gru_reset_after_in7_units2_seq",
             "GRU reset_after=True with input size 7 and 2 units (non-square kernel).",
             lambda: L.GRU(2, reset_after=True, return_sequences=True), (2, 5, 7))
    run_case("gru_reset_after_fully_masked_row_initial_state_seq_state",
             "GRU reset_after=True with one row masked at every step and an initial_state: "
             "that row outputs zeros and returns its initial state.",
             lambda: L.GRU(return_sequences=True, return_state=True, **G1), (3, 6, 3),
             mask=MASK_FULL_ROW_6, init=True)


# --------------------------------------------------------------------------------------------
# LSTM (input 3, units 4)

LU = dict(units=4)


@case
def lstm():
    run_case("lstm_default", "LSTM with tf.keras 2 defaults (tanh, sigmoid, bias, "
             "unit_forget_bias), last output only.", lambda: L.LSTM(**LU), (2, 5, 3))
    run_case("lstm_hard_sigmoid_saturating_seq",
             "LSTM with hard_sigmoid recurrent activation and inputs scaled by 6 so the gates "
             "hit both clip ends.",
             lambda: L.LSTM(recurrent_activation="hard_sigmoid", return_sequences=True, **LU),
             (2, 5, 3), x_scale=6.0, saturating=True)
    run_case("lstm_go_backwards_mask_holes_seq",
             "LSTM go_backwards + return_sequences with a mask with holes and a leading masked "
             "run.",
             lambda: L.LSTM(go_backwards=True, return_sequences=True, **LU), (3, 6, 3),
             mask=MASK_HOLES_6)
    run_case("lstm_return_state_initial_state",
             "LSTM with given initial h, c and return_state (output, state_h, state_c).",
             lambda: L.LSTM(return_state=True, **LU), (2, 5, 3), init=True)
    run_case("lstm_fully_masked_row_initial_state_state",
             "LSTM with one row masked at every step, an initial_state and return_state: that "
             "row's output is zeros while state_h/state_c are its initial state.",
             lambda: L.LSTM(return_state=True, **LU), (3, 6, 3), mask=MASK_FULL_ROW_6,
             init=True)
    run_case("lstm_fully_masked_row_seq_state",
             "LSTM with one row masked at every step and no initial_state, return_sequences + "
             "return_state.",
             lambda: L.LSTM(return_sequences=True, return_state=True, **LU), (3, 6, 3),
             mask=MASK_FULL_ROW_6)
    run_case("lstm_no_unit_forget_bias_seq",
             "LSTM with unit_forget_bias=False (initialisation only; inference unchanged).",
             lambda: L.LSTM(unit_forget_bias=False, return_sequences=True, **LU), (2, 5, 3))
    run_case("lstm_no_bias_seq", "LSTM with use_bias=False.",
             lambda: L.LSTM(use_bias=False, return_sequences=True, **LU), (2, 5, 3))
    run_case("lstm_stateful_seq_state",
             "Stateful LSTM with return_sequences + return_state: out2 carries the first call's "
             "states, out3 follows reset_states().",
             lambda: L.LSTM(stateful=True, return_sequences=True, return_state=True, **LU),
             (2, 4, 3), stateful=True)
    run_case("lstm_time_major_mask_holes_seq_state",
             "LSTM with time_major=True and a mask with holes and a fully masked row, given as "
             "Keras takes it for a time-major layer: mask.npy is (time, batch) = (6, 3) here "
             "(the contract's (batch, time) works too), return_sequences + return_state.",
             lambda: L.LSTM(time_major=True, return_sequences=True, return_state=True, **LU),
             (6, 3, 3), mask=np.ascontiguousarray(MASK_FULL_ROW_6.T))
    run_case("lstm_time_major_seq_state",
             "LSTM with time_major=True: x is (time, batch, feat), output (time, batch, units), "
             "plus return_state.",
             lambda: L.LSTM(time_major=True, return_sequences=True, return_state=True, **LU),
             (5, 2, 3))
    acts = [
        ("relu", 1.0, 1.0), ("linear", 1.0, 1.0), ("softsign", 1.0, 1.0),
        ("softplus", 0.5, 1.0), ("elu", 1.0, 1.0), ("selu", 1.0, 1.0),
        ("exponential", 0.3, 0.25), ("swish", 1.0, 1.0), ("gelu", 1.0, 1.0),
        ("sigmoid", 1.0, 1.0), ("mish", 1.0, 1.0), ("leaky_relu", 1.0, 1.0),
    ]
    for act, x_scale, w_scale in acts:
        small = ""
        if x_scale != 1.0:
            small = f" Inputs scaled by {x_scale}"
            small += f" and weights by {w_scale}" if w_scale != 1.0 else ""
            small += " so nothing overflows."
        run_case(f"lstm_activation_{act}_seq",
                 f"LSTM with activation='{act}' (cell input and output activation), "
                 "return_sequences." + small,
                 lambda act=act: L.LSTM(activation=act, return_sequences=True, **LU),
                 (2, 5, 3), x_scale=x_scale, w_scale=w_scale)
    run_case("lstm_recurrent_activation_tanh_seq",
             "LSTM with recurrent_activation='tanh' for the gates, return_sequences.",
             lambda: L.LSTM(recurrent_activation="tanh", return_sequences=True, **LU),
             (2, 5, 3))


# --------------------------------------------------------------------------------------------
# ConvLSTM2D, x (batch, time, rows, cols, channels)


@case
def conv_lstm2d():
    C = L.ConvLSTM2D
    run_case("conv_lstm2d_valid_3x3", "ConvLSTM2D 3x3 kernel, padding valid, last output.",
             lambda: C(3, (3, 3)), (2, 3, 6, 6, 2))
    run_case("conv_lstm2d_same_even_2x2_seq",
             "ConvLSTM2D padding same with an even 2x2 kernel (extra pad at bottom/right).",
             lambda: C(2, (2, 2), padding="same", return_sequences=True), (1, 3, 5, 5, 2))
    run_case("conv_lstm2d_same_even_4x4_state",
             "ConvLSTM2D padding same with an even 4x4 kernel, return_state.",
             lambda: C(2, (4, 4), padding="same", return_state=True), (1, 3, 6, 6, 1))
    run_case("conv_lstm2d_strides2_valid_seq",
             "ConvLSTM2D strides 2 padding valid (recurrent conv stays stride 1 same).",
             lambda: C(2, (3, 3), strides=2, return_sequences=True), (1, 3, 7, 7, 2))
    run_case("conv_lstm2d_strides2_same_seq_state",
             "ConvLSTM2D strides 2 padding same, return_sequences + return_state.",
             lambda: C(2, (3, 3), strides=2, padding="same", return_sequences=True,
                       return_state=True), (1, 3, 7, 7, 2))
    run_case("conv_lstm2d_dilation2_valid_seq",
             "ConvLSTM2D dilation_rate 2 padding valid (recurrent conv undilated).",
             lambda: C(2, (3, 3), dilation_rate=2, return_sequences=True), (1, 3, 7, 7, 2))
    run_case("conv_lstm2d_dilation2_same_state",
             "ConvLSTM2D dilation_rate 2 padding same, return_state.",
             lambda: C(2, (3, 3), dilation_rate=2, padding="same", return_state=True),
             (1, 3, 6, 6, 1))
    conv_channels_first_case(
        "conv_lstm2d_channels_first_seq_state",
        "ConvLSTM2D data_format channels_first (x is (batch, time, channels, rows, cols)), "
        "padding same, return_sequences + return_state.",
        (2, 3, 2, 5, 6), filters=3, kernel_size=(3, 3), padding="same",
        return_sequences=True, return_state=True)
    conv_channels_first_case(
        "conv_lstm2d_channels_first_valid",
        "ConvLSTM2D data_format channels_first with a (3,2) kernel, padding valid, last output.",
        (1, 3, 3, 6, 5), filters=2, kernel_size=(3, 2))
    run_case("conv_lstm2d_return_sequences",
             "ConvLSTM2D 3x3 same, return_sequences.",
             lambda: C(3, (3, 3), padding="same", return_sequences=True), (2, 3, 5, 5, 2))
    run_case("conv_lstm2d_return_state",
             "ConvLSTM2D 3x3 valid, return_state (output, state_h, state_c).",
             lambda: C(3, (3, 3), return_state=True), (2, 3, 5, 5, 2))
    run_case("conv_lstm2d_mask_holes_seq_state",
             "ConvLSTM2D with a (batch, time) mask with holes and a leading masked run, "
             "return_sequences + return_state.",
             lambda: C(2, (3, 3), padding="same", return_sequences=True, return_state=True),
             (2, 4, 4, 4, 2), mask=MASK_HOLES_4)
    run_case("conv_lstm2d_initial_state_state",
             "ConvLSTM2D padding valid with a given initial h, c (state spatial shape of the "
             "valid input conv), return_state.",
             lambda: C(2, (3, 3), return_state=True), (2, 3, 5, 5, 2), init=True)
    run_case("conv_lstm2d_go_backwards_seq",
             "ConvLSTM2D go_backwards + return_sequences (outputs in processing order).",
             lambda: C(2, (3, 3), padding="same", go_backwards=True, return_sequences=True),
             (1, 4, 4, 4, 2))
    run_case("conv_lstm2d_go_backwards_mask_holes_seq",
             "ConvLSTM2D go_backwards + return_sequences with a mask with holes.",
             lambda: C(2, (3, 3), padding="same", go_backwards=True, return_sequences=True),
             (2, 4, 4, 4, 1), mask=MASK_HOLES_4)
    run_case("conv_lstm2d_hard_sigmoid_saturating_seq",
             "ConvLSTM2D with its default hard_sigmoid recurrent activation and inputs scaled "
             "by 6 so the gates hit both clip ends.",
             lambda: C(2, (3, 3), padding="same", recurrent_activation="hard_sigmoid",
                       return_sequences=True), (1, 3, 5, 5, 3), x_scale=6.0, saturating=True)
    run_case("conv_lstm2d_no_bias_seq", "ConvLSTM2D with use_bias=False.",
             lambda: C(2, (3, 3), padding="same", use_bias=False, return_sequences=True),
             (1, 3, 5, 5, 2))
    run_case("conv_lstm2d_nonsquare_5x7_kernel_3x2_same_seq_state",
             "ConvLSTM2D on a 5x7 image with a (3,2) kernel, padding same, return_sequences + "
             "return_state.",
             lambda: C(3, (3, 2), padding="same", return_sequences=True, return_state=True),
             (1, 3, 5, 7, 2))
    run_case("conv_lstm2d_nonsquare_5x7_kernel_2x3_valid_strides_1x2_seq",
             "ConvLSTM2D on a 5x7 image with a (2,3) kernel, padding valid, strides (1,2).",
             lambda: C(2, (2, 3), strides=(1, 2), return_sequences=True), (2, 3, 5, 7, 1))


# --------------------------------------------------------------------------------------------
# Row-wise activations: softmax / log_softmax


@case
def row_wise_activations():
    """Keras applies softmax / log_softmax over the last axis of each gate's tensor: a gate's
    units (dense cells), filters (ConvLSTM2D channels_last) or the output columns
    (channels_first, whose gate tensors are (b, filters, rows, cols)). The channels_first
    cases run that layer itself in Keras (a channels_last twin would normalise over
    filters)."""
    C = L.ConvLSTM2D
    run_case("lstm_activation_softmax_mask_holes_seq_state",
             "LSTM(7) with activation='softmax' (over the 7 units of the cell gate and of c'), "
             "a mask with holes and a fully masked row, return_sequences + return_state.",
             lambda: L.LSTM(7, activation="softmax", return_sequences=True,
                            return_state=True), (3, 6, 4), mask=MASK_FULL_ROW_6)
    run_case("lstm_recurrent_activation_log_softmax_seq",
             "LSTM(5) with recurrent_activation='log_softmax' (i, f, o each normalised over "
             "their own 5 units), return_sequences.",
             lambda: L.LSTM(5, recurrent_activation="log_softmax", return_sequences=True),
             (2, 4, 3))
    run_case("gru_reset_before_softmax_pair_seq_state",
             "GRU(6, reset_after=False) with activation='log_softmax' and "
             "recurrent_activation='softmax' (z and r each over their units), go_backwards, "
             "return_sequences + return_state.",
             lambda: L.GRU(6, activation="log_softmax", recurrent_activation="softmax",
                           reset_after=False, go_backwards=True, return_sequences=True,
                           return_state=True), (2, 5, 3))
    run_case("gru_reset_after_softmax_seq",
             "GRU(4, reset_after=True) with activation='softmax', return_sequences.",
             lambda: L.GRU(4, activation="softmax", return_sequences=True), (2, 5, 3))
    run_case("simple_rnn_log_softmax_initial_state_state",
             "SimpleRNN(5) with activation='log_softmax', an initial state, return_state.",
             lambda: L.SimpleRNN(5, activation="log_softmax", return_state=True), (2, 4, 3),
             init=True)
    run_case("rnn_stack_softmax_cells_seq",
             "RNN over [LSTMCell(4, activation='softmax'), GRUCell(3, "
             "recurrent_activation='softmax')], return_sequences.",
             lambda: L.RNN([L.LSTMCell(4, activation="softmax"),
                            L.GRUCell(3, recurrent_activation="softmax")],
                           return_sequences=True), (2, 4, 3))
    run_case("conv_lstm2d_softmax_channels_last_seq_state",
             "ConvLSTM2D(3) channels_last with activation='softmax' (over the 3 filters of "
             "each pixel), padding same, return_sequences + return_state.",
             lambda: C(3, (3, 3), padding="same", activation="softmax",
                       return_sequences=True, return_state=True), (2, 3, 5, 4, 2))
    run_case("conv_lstm2d_softmax_channels_first_mask_holes_seq_state",
             "ConvLSTM2D(3) channels_first with activation='softmax' and "
             "recurrent_activation='log_softmax': Keras normalises over the output columns "
             "(the last axis of (b, filters, rows, cols)), not over filters. Padding same, a "
             "mask with holes, return_sequences + return_state.",
             lambda: C(3, (3, 3), padding="same", activation="softmax",
                       recurrent_activation="log_softmax", data_format="channels_first",
                       return_sequences=True, return_state=True), (2, 4, 2, 5, 6),
             mask=MASK_HOLES_4)
    run_case("conv_lstm2d_softmax_channels_first_strides2_valid",
             "ConvLSTM2D(2) channels_first, a (3,2) kernel with strides 2, padding valid, "
             "activation='softmax' over the 3 output columns, last output.",
             lambda: C(2, (3, 2), strides=2, activation="softmax",
                       data_format="channels_first"), (1, 3, 2, 7, 7))


# --------------------------------------------------------------------------------------------
# RNN over cells (input 3)


def stack3():
    return [L.LSTMCell(3), L.GRUCell(2), L.SimpleRNNCell(4)]


@case
def rnn_cells():
    run_case("rnn_simple_rnn_cell_seq", "RNN(SimpleRNNCell(4)) with return_sequences.",
             lambda: L.RNN(L.SimpleRNNCell(4), return_sequences=True), (2, 5, 3))
    run_case("rnn_gru_cell_reset_before_state",
             "RNN(GRUCell(4, reset_after=False)) with return_state.",
             lambda: L.RNN(L.GRUCell(4, reset_after=False), return_state=True), (2, 5, 3))
    run_case("rnn_gru_cell_reset_after_seq_state",
             "RNN(GRUCell(4, reset_after=True)) with return_sequences + return_state.",
             lambda: L.RNN(L.GRUCell(4, reset_after=True), return_sequences=True,
                           return_state=True), (2, 5, 3))
    run_case("rnn_lstm_cell_state", "RNN(LSTMCell(4)) with return_state (h, c).",
             lambda: L.RNN(L.LSTMCell(4), return_state=True), (2, 5, 3))
    run_case("rnn_stack_list_seq_state",
             "RNN over the list [LSTMCell(3), GRUCell(2), SimpleRNNCell(4)] (Keras wraps it in "
             "StackedRNNCells), return_sequences + return_state with states nested per cell.",
             lambda: L.RNN(stack3(), return_sequences=True, return_state=True), (2, 5, 3))
    run_case("rnn_stacked_rnn_cells_seq_state",
             "RNN over an explicit StackedRNNCells([LSTMCell(3), GRUCell(2), SimpleRNNCell(4)]), "
             "return_sequences + return_state.",
             lambda: L.RNN(L.StackedRNNCells(stack3()), return_sequences=True,
                           return_state=True), (2, 5, 3))
    run_case("rnn_stack_go_backwards_mask_holes_seq_state",
             "RNN over [LSTMCell, GRUCell, SimpleRNNCell] with go_backwards, a mask with holes, "
             "return_sequences + return_state.",
             lambda: L.RNN(stack3(), go_backwards=True, return_sequences=True,
                           return_state=True), (3, 6, 3), mask=MASK_HOLES_6)
    run_case("rnn_stack_initial_state_state",
             "RNN over [LSTMCell, GRUCell, SimpleRNNCell] with a nested initial_state "
             "[[h0, c0], h1, h2] and return_state.",
             lambda: L.RNN(stack3(), return_state=True), (2, 5, 3), init=True)
    run_case("rnn_stack_single_lstm_cell_state",
             "RNN over the one-element list [LSTMCell(4)]: Keras wraps it in StackedRNNCells, "
             "so weights and states are named cells.0.*.",
             lambda: L.RNN([L.LSTMCell(4)], return_state=True), (2, 5, 3))
    run_case("rnn_zero_output_for_mask_seq_state",
             "RNN(LSTMCell(4), zero_output_for_mask=True): masked steps output zeros (states "
             "kept), with a mask with holes, return_sequences + return_state.",
             lambda: L.RNN(L.LSTMCell(4), return_sequences=True, return_state=True,
                           zero_output_for_mask=True), (3, 6, 3), mask=MASK_HOLES_6)
    run_case("rnn_zero_output_for_mask_last_masked_state",
             "RNN(GRUCell(3), zero_output_for_mask=True, go_backwards=True) without "
             "return_sequences: the output is zeros when the last processed step is masked.",
             lambda: L.RNN(L.GRUCell(3), go_backwards=True, return_state=True,
                           zero_output_for_mask=True), (3, 6, 3), mask=MASK_HOLES_6)
    run_case("rnn_unroll_zero_output_for_mask_go_backwards_seq_state",
             "RNN(GRUCell(3), unroll=True, zero_output_for_mask=True, go_backwards=True) with "
             "a mask with holes, return_sequences + return_state: Keras's unrolled loop zeroes "
             "output step t (processing order) where mask[:, t] is false, the mask in input "
             "order (its while loop reads it reversed).",
             lambda: L.RNN(L.GRUCell(3), unroll=True, go_backwards=True, return_sequences=True,
                           return_state=True, zero_output_for_mask=True), (3, 6, 3),
             mask=MASK_HOLES_6)
    run_case("lstm_unroll_zero_output_for_mask_seq",
             "LSTM(4, unroll=True, zero_output_for_mask=True) (the RNN base argument through "
             "**kwargs) with a mask with holes, return_sequences: masked steps output zeros.",
             lambda: L.LSTM(4, unroll=True, return_sequences=True, zero_output_for_mask=True),
             (3, 6, 3), mask=MASK_HOLES_6)
    run_case("simple_rnn_zero_output_for_mask_go_backwards_seq",
             "SimpleRNN(4, zero_output_for_mask=True, go_backwards=True) with a mask with "
             "holes, return_sequences: the zeroed steps follow the reversed mask.",
             lambda: L.SimpleRNN(4, go_backwards=True, return_sequences=True,
                                 zero_output_for_mask=True), (3, 6, 3), mask=MASK_HOLES_6)


# --------------------------------------------------------------------------------------------
# CuDNN layers (input 3, units 5)


@case
def cudnn():
    for kind, title, plain in (("lstm", "CuDNNLSTM", "LSTM(sigmoid, tanh)"),
                               ("gru", "CuDNNGRU", "GRU(reset_after=True, sigmoid, tanh)")):
        ref = (f"reference computed by {plain} after Keras's own load_weights conversion "
               "from the CuDNN weights")
        cudnn_case(f"cudnn_{kind}_default",
                   f"{title} with input 3 and 5 units, last output; {ref}.", kind)
        cudnn_case(f"cudnn_{kind}_return_sequences",
                   f"{title} with return_sequences; {ref}.", kind, return_sequences=True)
        cudnn_case(f"cudnn_{kind}_return_state",
                   f"{title} with return_state; {ref}.", kind, return_state=True)
        cudnn_case(f"cudnn_{kind}_go_backwards_seq",
                   f"{title} with go_backwards + return_sequences; {ref}.", kind,
                   go_backwards=True, return_sequences=True)
        cudnn_case(f"cudnn_{kind}_initial_state_state",
                   f"{title} with a given initial_state and return_state; {ref}.", kind,
                   init=True, return_state=True)


# --------------------------------------------------------------------------------------------
# Bundled demos


def examples():
    for sub, make, shape, desc in (
        ("lstm", lambda: L.LSTM(units=8, return_sequences=True), (2, 5, 4),
         "Demo: LSTM(units=8, return_sequences=True) on x of shape (2, 5, 4)."),
        ("conv_lstm2d",
         lambda: L.ConvLSTM2D(filters=4, kernel_size=(3, 3), padding="same",
                              return_sequences=True), (1, 4, 8, 8, 2),
         "Demo: ConvLSTM2D(filters=4, kernel 3x3, padding same, return_sequences=True) on x of "
         "shape (1, 4, 8, 8, 2)."),
    ):
        keras.backend.clear_session()
        rng = rng_for("example_" + sub)
        x = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        layer = make()
        call(layer, x)
        randomize_weights(layer, rng)
        out = outputs_dict(layer, call(layer, x))
        path = os.path.join(EXAMPLES, sub)
        shutil.rmtree(path, ignore_errors=True)
        write_dir(path, layer, desc, named_weights(layer), x, out, out_name="keras_out.npz")


def main():
    print(f"tensorflow {tf.__version__}, tf-keras {keras.__version__}")
    shutil.rmtree(FIXTURES, ignore_errors=True)
    os.makedirs(FIXTURES)
    for group in CASES:
        group()
    examples()
    names = sorted(os.listdir(FIXTURES))
    size = sum(os.path.getsize(os.path.join(dp, f))
               for dp, _, fs in os.walk(FIXTURES) for f in fs)
    print(f"wrote {len(names)} cases to {FIXTURES} ({size} bytes) and 2 examples")


if __name__ == "__main__":
    main()
