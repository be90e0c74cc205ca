"""Keras model-file fixtures for the `recurrent` crate (`tests/keras_files.rs`, docs/keras-files.md).

Writes `tests/fixtures_files/<case>/` for every case, all by real Keras 2 (tf-keras 2.21 on
tensorflow-cpu 2.21):

- `model.h5`      `model.save("model.h5")`: a full Keras 2 HDF5 model file
- `model.keras`   `model.save("model.keras")`: the tf-keras 2.13+ zip (config.json + model.weights.h5)
- `weights.h5`    `model.save_weights("weights.h5")`: weights only
- `model.json`    `model.to_json()`: the config to pair with `weights.h5`
- `layer.json`    `{"class_name", "config"}` of the case's layer when the case runs one layer
                  (to pair with `weights.h5` through `recurrent run --layer ... --weights ...`)
- `weights.npz`   that layer's weights in the interchange format (keras-interchange.md:
                  `kernel`, `cells.0.kernel`, `forward.kernel`, ...), for `--layer ... --weights`
- `x.npy`, optional `mask.npy`, optional `initial_state.npz`, and `out.npz`: Keras's own result
  for the layers named in `case.json`, named as the `recurrent run` contract names them.
- `case.json`     `{"layers": [...] or null, "description": ...}`: `layers` is what to pass to
                  `--layers` (null: the default chain of the file).

The reference runs Keras on the model loaded back from `model.h5` (and checks that the model
loaded from `model.keras` agrees): each layer of the chain is called in turn with the mask that
Keras's own `compute_mask` of the previous layer gives, so mask propagation is Keras's, not an
assumption of this script. CuDNNGRU / CuDNNLSTM cannot run on a CPU: their reference is an
equivalent model with GRU(reset_after=True) / LSTM into which Keras's `load_weights` converts the
CuDNN weights of `weights.h5` (as the issue asks).

Also written:
- `chars2vec/`: the real Keras 2.2.0 weights file shipped in the chars2vec package (eng_50,
  Apache-2.0, see its NOTICE), with `model.json` (chars2vec's architecture with Keras 2.2's
  defaults: `recurrent_activation="hard_sigmoid"`), the vocabulary, a few words as `x.npy` and
  Keras's embeddings as `out.npz`. `weights.h5` is copied from an already downloaded package
  (pass its path as the first argument) or from `pip download --no-deps chars2vec==0.1.7`.
- `bad/`: files for the error cases: a Keras 1 file, Keras 3 `.keras` and `.h5` files, a model
  with an unsupported recurrent class (ConvLSTM1D) and an Embedding, a mis-shaped and a missing
  weight, a weights-only file whose `layer_names` Keras split into `layer_names0`, `layer_names1`.

Environment (installs nothing): the venv of scripts/keras_fixtures.py, plus h5py (a dependency
of tf-keras's HDF5 saving) and `keras` 3 for the Keras 3 refusal files. From the repository root:

    .kvenv/bin/python scripts/keras_file_fixtures.py [path/to/chars2vec/trained_models/eng_50/weights.h5]

Deterministic inputs and weights (numpy seeded per case from crc32 of the case name); the .h5
and .keras files themselves carry Keras's timestamps and differ byte-wise between runs.
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import glob
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib

import h5py
import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras.src.layers import CuDNNGRU, CuDNNLSTM

L = keras.layers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures_files")

MASK_3x6 = np.array([[1, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)


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


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


# --------------------------------------------------------------------------------------------
# Names as the contract gives them


def cell_state_count(cell):
    return 2 if isinstance(cell, (L.LSTMCell,)) else 1


def state_names(layer):
    """Flat state names of a layer, as in initial_state.npz: h, c / cells.i.h / forward.h ..."""
    if isinstance(layer, L.Bidirectional):
        return ["forward." + n for n in state_names(layer.forward_layer)] + [
            "backward." + n for n in state_names(layer.backward_layer)
        ]
    cell = getattr(layer, "cell", None)
    if isinstance(cell, L.StackedRNNCells):
        out = []
        for i, c in enumerate(cell.cells):
            out += [f"cells.{i}.{k}" for k in "hc"[: cell_state_count(c)]]
        return out
    n = 2 if isinstance(layer, (L.LSTM, L.ConvLSTM2D, CuDNNLSTM)) or isinstance(cell, L.LSTMCell) else 1
    return list("hc"[:n])


def out_state_name(n):
    if "." in n:
        p, last = n.rsplit(".", 1)
        return f"{p}.state_{last}"
    return f"state_{n}"


def interchange_weights(layer):
    """The layer's weights named as the interchange format names them (weights.npz)."""
    if isinstance(layer, L.Bidirectional):
        out = {"forward." + k: v for k, v in interchange_weights(layer.forward_layer).items()}
        out.update({"backward." + k: v
                    for k, v in interchange_weights(layer.backward_layer).items()})
        return out
    short = lambda w: w.name.split("/")[-1].split(":")[0]
    if is_stack(layer):
        return {f"cells.{i}.{short(w)}": w.numpy()
                for i, c in enumerate(layer.cell.cells) for w in c.weights}
    return {short(w): w.numpy() for w in layer.weights}


def is_stack(layer):
    return isinstance(getattr(layer, "cell", None), L.StackedRNNCells)


def random_initial_state(layer, batch, rng):
    """(keras initial_state structure, npz dict)."""
    if isinstance(layer, L.Bidirectional):
        fs, fd = random_initial_state(layer.forward_layer, batch, rng)
        bs, bd = random_initial_state(layer.backward_layer, batch, rng)
        d = {"forward." + k: v for k, v in fd.items()}
        d.update({"backward." + k: v for k, v in bd.items()})
        flat = tf.nest.flatten(fs) + tf.nest.flatten(bs)
        return flat, d
    if is_stack(layer):
        structure, d = [], {}
        for i, c in enumerate(layer.cell.cells):
            sizes = c.state_size if isinstance(c.state_size, (list, tuple)) else [c.state_size]
            vals = [rng.uniform(-0.8, 0.8, (batch, s)).astype(np.float32) for s in sizes]
            for k, v in zip("hc", vals):
                d[f"cells.{i}.{k}"] = v
            structure.append([tf.constant(v) for v in vals])
        return structure, d
    units = layer.units if hasattr(layer, "units") else layer.cell.units
    n = len(state_names(layer))
    vals = [rng.uniform(-0.8, 0.8, (batch, units)).astype(np.float32) for _ in range(n)]
    return [tf.constant(v) for v in vals], dict(zip("hc", vals))


def outputs_dict(layer, result):
    """Keras's result of the last layer -> out.npz names."""
    names = state_names(layer)
    bidi_none = isinstance(layer, L.Bidirectional) and layer.merge_mode is None
    return_state = getattr(layer, "return_state", False)
    res = list(result) if isinstance(result, (list, tuple)) else [result]
    out = {}
    if bidi_none:
        out["forward.output"], out["backward.output"] = np.asarray(res[0]), np.asarray(res[1])
        rest = res[2:]
    else:
        out["output"] = np.asarray(res[0])
        rest = res[1:]
    if return_state:
        flat = tf.nest.flatten(rest)
        assert len(flat) == len(names), (names, len(flat))
        for n, v in zip(names, flat):
            out[out_state_name(n)] = np.asarray(v)
    else:
        assert not rest
    return {k: v.astype(np.float32) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Reference


RECURRENT = (L.RNN, L.Bidirectional, CuDNNGRU, CuDNNLSTM)


def reference(model, chain, x, mask, init):
    """Calls the layers of `chain` (names, pass-through layers between them included) in turn,
    propagating the mask with Keras's own compute_mask."""
    names = [l.name for l in model.layers]
    first, last = names.index(chain[0]), names.index(chain[-1])
    y = tf.constant(x)
    m = None if mask is None else tf.constant(mask)
    result = None
    for k in range(first, last + 1):
        layer = model.layers[k]
        kwargs = {}
        if m is not None and layer._expects_mask_arg:
            kwargs["mask"] = m
        if k == first and init is not None:
            kwargs["initial_state"] = init
        result = layer(y, **kwargs) if kwargs else layer(y)
        m_next = layer.compute_mask(y, m)
        if isinstance(m_next, (list, tuple)):
            m_next = m_next[0]
        m = m_next
        y = result[0] if isinstance(result, (list, tuple)) else result
    return outputs_dict(model.get_layer(chain[-1]), result)


def randomize(model, rng):
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in ws])


def assert_close(a, b, what, tol=2e-6):
    assert sorted(a) == sorted(b), (what, sorted(a), sorted(b))
    for k in a:
        err = np.abs(a[k] - b[k]).max()
        assert err <= tol, f"{what}: {k} differs by {err}"


def plain_twin(model):
    """The model with CuDNNLSTM -> LSTM, CuDNNGRU -> GRU(reset_after=True), same names."""

    def clone(layer):
        cfg = layer.get_config()
        if isinstance(layer, CuDNNLSTM):
            cfg.update(activation="tanh", recurrent_activation="sigmoid")
            return L.LSTM.from_config(cfg)
        if isinstance(layer, CuDNNGRU):
            cfg.update(activation="tanh", recurrent_activation="sigmoid", reset_after=True)
            return L.GRU.from_config(cfg)
        if isinstance(layer, L.Bidirectional):
            assert not hasattr(layer, "_backward_layer_config"), "not needed here"
            return L.Bidirectional(clone(layer.layer), merge_mode=layer.merge_mode,
                                   name=layer.name)
        return layer.__class__.from_config(cfg)

    return keras.models.clone_model(model, clone_function=clone)


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def write_case(name, description, model, x, *, chain, mask=None, init_layer=None,
               layers_arg=None, single=None, cudnn=False):
    """Saves `model` in every format and Keras's reference for `chain`."""
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    rng = rng_for(name + "/init")
    model.save(os.path.join(d, "model.h5"))
    model.save(os.path.join(d, "model.keras"))
    model.save_weights(os.path.join(d, "weights.h5"))
    with open(os.path.join(d, "model.json"), "w") as fh:
        fh.write(json.dumps(json.loads(model.to_json()), indent=1) + "\n")
    if single is not None:
        layer = model.get_layer(single)
        with open(os.path.join(d, "layer.json"), "w") as fh:
            doc = {"class_name": layer.__class__.__name__, "config": layer.get_config()}
            fh.write(json.dumps(doc, indent=2) + "\n")
        w = interchange_weights(layer)
        assert len(w) == len(layer.get_weights()), (name, list(w))
        savez(os.path.join(d, "weights.npz"), {k: v.astype(np.float32) for k, v in w.items()})
    np.save(os.path.join(d, "x.npy"), x.astype(np.float32))
    if mask is not None:
        np.save(os.path.join(d, "mask.npy"), mask.astype(bool))
    init, init_np = None, None
    if init_layer is not None:
        init, init_np = random_initial_state(model.get_layer(init_layer), x.shape[0], rng)
        savez(os.path.join(d, "initial_state.npz"), init_np)

    keras.backend.clear_session()
    if cudnn:
        # Keras's own CuDNN -> plain conversion, through load_weights of the file.
        twin = plain_twin(model)
        twin.load_weights(os.path.join(d, "weights.h5"))
        ref_model = twin
    else:
        ref_model = keras.models.load_model(os.path.join(d, "model.h5"), compile=False)
    if init_layer is not None:
        init, _ = random_initial_state(ref_model.get_layer(init_layer), x.shape[0], rng_for(name + "/init"))
    out = reference(ref_model, chain, x, mask, init)
    if not cudnn:
        k = keras.models.load_model(os.path.join(d, "model.keras"), compile=False)
        if init_layer is not None:
            init, _ = random_initial_state(k.get_layer(init_layer), x.shape[0], rng_for(name + "/init"))
        assert_close(out, reference(k, chain, x, mask, init), name + " (.keras)")
        if mask is None and init_layer is None and chain[-1] == model.layers[-1].name:
            full = model(tf.constant(x))
            assert_close(out, outputs_dict(model.get_layer(chain[-1]), full), name + " (model)")
    for v in out.values():
        assert np.all(np.isfinite(v)), name
    savez(os.path.join(d, "out.npz"), out)
    with open(os.path.join(d, "case.json"), "w") as fh:
        fh.write(json.dumps({"layers": layers_arg, "description": description}, indent=2) + "\n")
    print(f"{name}: {description}")


def single_case(name, description, make, x_shape, *, mask=None, init=False, cudnn=False):
    keras.backend.clear_session()
    rng = rng_for(name)
    x = rng.uniform(-1.0, 1.0, x_shape).astype(np.float32)
    inp = keras.Input(x_shape[1:])
    layer = make()
    y = layer(inp)
    model = keras.Model(inp, y)
    randomize(model, rng)
    write_case(name, description, model, x, chain=[layer.name], mask=mask,
               init_layer=layer.name if init else None, single=layer.name, cudnn=cudnn)


# --------------------------------------------------------------------------------------------
# Cases: every supported class, in every format


@case
def classes():
    single_case("simple_rnn", "SimpleRNN(4, return_sequences) with a mask",
                lambda: L.SimpleRNN(4, return_sequences=True), (3, 6, 3), mask=MASK_3x6)
    single_case("gru", "GRU(5) reset_after, return_state, initial_state",
                lambda: L.GRU(5, return_state=True), (2, 5, 3), init=True)
    single_case("gru_reset_before", "GRU(4, reset_after=False, hard_sigmoid, return_sequences)",
                lambda: L.GRU(4, reset_after=False, recurrent_activation="hard_sigmoid",
                              return_sequences=True), (2, 5, 3))
    single_case("lstm", "LSTM(6, return_sequences, return_state), mask and initial_state",
                lambda: L.LSTM(6, return_sequences=True, return_state=True), (3, 6, 3),
                mask=MASK_3x6, init=True)
    single_case("lstm_go_backwards", "LSTM(3, go_backwards, return_sequences, no bias)",
                lambda: L.LSTM(3, go_backwards=True, return_sequences=True, use_bias=False),
                (2, 4, 3))
    single_case("conv_lstm2d", "ConvLSTM2D(2, (2, 2), padding same, return_sequences)",
                lambda: L.ConvLSTM2D(2, (2, 2), padding="same", return_sequences=True),
                (2, 4, 3, 3, 2))
    single_case("rnn_stack", "RNN([GRUCell(3), LSTMCell(4)], return_state)",
                lambda: L.RNN([L.GRUCell(3), L.LSTMCell(4)], return_state=True), (2, 5, 3),
                init=True)
    single_case("rnn_cell", "RNN(SimpleRNNCell(3), return_sequences)",
                lambda: L.RNN(L.SimpleRNNCell(3), return_sequences=True), (2, 4, 3))
    single_case("cudnn_lstm", "CuDNNLSTM(4, return_sequences, return_state); reference: Keras's "
                "load_weights into LSTM", lambda: CuDNNLSTM(4, return_sequences=True,
                                                            return_state=True),
                (2, 5, 3), cudnn=True)
    single_case("cudnn_gru", "CuDNNGRU(3, return_sequences); reference: Keras's load_weights "
                "into GRU(reset_after=True)", lambda: CuDNNGRU(3, return_sequences=True),
                (2, 5, 4), cudnn=True)


@case
def bidirectional():
    single_case("bidi_concat", "Bidirectional(LSTM(4, return_sequences)), concat, with a mask",
                lambda: L.Bidirectional(L.LSTM(4, return_sequences=True)), (3, 6, 3),
                mask=MASK_3x6)
    single_case("bidi_sum", "Bidirectional(GRU(3, return_sequences), sum), with a mask",
                lambda: L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"),
                (3, 6, 3), mask=MASK_3x6)
    single_case("bidi_mul", "Bidirectional(SimpleRNN(3), mul), last output",
                lambda: L.Bidirectional(L.SimpleRNN(3), merge_mode="mul"), (2, 5, 3))
    single_case("bidi_ave", "Bidirectional(RNN([LSTMCell(3), GRUCell(2)], return_sequences), ave)",
                lambda: L.Bidirectional(L.RNN([L.LSTMCell(3), L.GRUCell(2)],
                                              return_sequences=True), merge_mode="ave"),
                (2, 5, 3))
    single_case("bidi_none", "Bidirectional(GRU(3, return_sequences, return_state), None), "
                "initial_state, mask",
                lambda: L.Bidirectional(L.GRU(3, return_sequences=True, return_state=True),
                                        merge_mode=None), (3, 6, 3), mask=MASK_3x6, init=True)
    single_case("bidi_return_state", "Bidirectional(LSTM(4, return_state)), concat, initial_state",
                lambda: L.Bidirectional(L.LSTM(4, return_state=True)), (2, 5, 3), init=True)
    single_case("bidi_backward_layer", "Bidirectional(LSTM(3), backward_layer=GRU(2, "
                "go_backwards)), concat, return_sequences, mask",
                lambda: L.Bidirectional(
                    L.LSTM(3, return_sequences=True),
                    backward_layer=L.GRU(2, return_sequences=True, go_backwards=True)),
                (3, 6, 3), mask=MASK_3x6)
    single_case("bidi_conv_lstm2d", "Bidirectional(ConvLSTM2D(2, (2, 2), return_sequences)), "
                "sum, with a mask",
                lambda: L.Bidirectional(L.ConvLSTM2D(2, (2, 2), return_sequences=True),
                                        merge_mode="sum"),
                (2, 4, 3, 3, 2), mask=np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=bool))
    single_case("bidi_unroll_mask", "Bidirectional(GRU(3, return_sequences, unroll), concat), "
                "with a mask: the unrolled backward layer zeroes its masked-output steps by the "
                "mask in input order (tf-keras backend.rnn), then the output is reversed back",
                lambda: L.Bidirectional(L.GRU(3, return_sequences=True, unroll=True)),
                (3, 6, 3), mask=MASK_3x6)
    single_case("bidi_cudnn_lstm", "Bidirectional(CuDNNLSTM(3, return_sequences)); reference: "
                "Keras's load_weights into Bidirectional(LSTM)",
                lambda: L.Bidirectional(CuDNNLSTM(3, return_sequences=True)), (2, 5, 3),
                cudnn=True)


@case
def chains():
    # Masking -> LSTM(return_sequences) -> LSTM: the default chain of the file.
    name = "chain_lstm_lstm"
    keras.backend.clear_session()
    rng = rng_for(name)
    x = rng.uniform(-1.0, 1.0, (3, 6, 3)).astype(np.float32)
    x[~MASK_3x6] = 0.0
    inp = keras.Input((6, 3))
    y = L.Masking(0.0)(inp)
    y = L.LSTM(4, return_sequences=True)(y)
    y = L.LSTM(3)(y)
    model = keras.Model(inp, y)
    randomize(model, rng)
    write_case(name, "Masking -> LSTM(4, return_sequences) -> LSTM(3); the file's default chain, "
               "mask from Masking", model, x, chain=["lstm", "lstm_1"], mask=MASK_3x6)

    # Bidirectional -> Dropout -> GRU(go_backwards) -> SimpleRNN -> Dense, with a mask.
    name = "chain_bidi_gru_rnn"
    keras.backend.clear_session()
    rng = rng_for(name)
    x = rng.uniform(-1.0, 1.0, (3, 6, 3)).astype(np.float32)
    x[~MASK_3x6] = 0.0
    inp = keras.Input((6, 3))
    y = L.Masking(0.0)(inp)
    y = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(y)
    y = L.Dropout(0.5)(y)
    y = L.GRU(4, go_backwards=True, return_sequences=True, name="back_gru")(y)
    y = L.SimpleRNN(2, name="last")(y)
    y = L.Dense(1)(y)
    model = keras.Model(inp, y)
    randomize(model, rng)
    write_case(name, "Masking -> Bidirectional(LSTM) -> Dropout -> GRU(go_backwards, "
               "return_sequences) -> SimpleRNN -> Dense; --layers bi,back_gru,last", model, x,
               chain=["bi", "back_gru", "last"], mask=MASK_3x6,
               layers_arg=["bi", "back_gru", "last"])


# --------------------------------------------------------------------------------------------
# chars2vec: a real Keras 2.2.0 file


CHARS2VEC_TAR = "chars2vec-0.1.7.tar.gz"


def chars2vec_weights():
    if len(sys.argv) > 1:
        return open(sys.argv[1], "rb").read()
    tmp = tempfile.mkdtemp()
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps",
                           "chars2vec==0.1.7", "-d", tmp])
    with tarfile.open(os.path.join(tmp, CHARS2VEC_TAR)) as t:
        data = t.extractfile("chars2vec-0.1.7/chars2vec/trained_models/eng_50/weights.h5").read()
    shutil.rmtree(tmp)
    return data


# chars2vec's eng_50 vocabulary (model.pkl's char_to_ix: these characters, in this order).
C2V_CHARS = "!\"#$%&'()*+,-./0123456789:;<=>?@_abcdefghijklmnopqrstuvwxyz"
C2V_WORDS = ["keras", "kears", "rust", "recurrent", "lstm"]

C2V_NOTICE = """chars2vec eng_50 weights

`weights.h5` is `chars2vec/trained_models/eng_50/weights.h5` from the chars2vec 0.1.7 package on
PyPI (https://github.com/IntuitionEngineeringTeam/chars2vec), by Intuition Engineering
(Vladimir Chikin), licensed under the Apache License 2.0 (see LICENSE beside this file; the
package declares `license='Apache License 2.0'`). It is unmodified: a weights-only Keras 2.2.0
HDF5 file (`keras_version` 2.2.0, fixed-length string attributes) written by
`model.save_weights` in 2019.

The other files here are written by scripts/keras_file_fixtures.py:
- `model.json`: chars2vec's embedding model (chars2vec/model.py: Input(None, 59) ->
  LSTM(50, return_sequences=True) -> LSTM(50)) as `model.to_json()`, with Keras 2.2's defaults
  written out (`recurrent_activation="hard_sigmoid"`), since the weights file holds no config.
- `vocab.txt`: the 59 characters of the model's `char_to_ix`, in index order (from model.pkl).
- `x.npy`: the words in `words.txt` one-hot encoded as chars2vec does (lower case, unknown
  characters all-zero, padded at the front with zero vectors by `pad_sequences`).
- `out.npz`: Keras's (tf-keras 2.21) embeddings of those words, `output` (words, 50).
"""


@case
def chars2vec():
    d = os.path.join(OUT, "chars2vec")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "weights.h5"), "wb") as fh:
        fh.write(chars2vec_weights())
    shutil.copy("/usr/share/common-licenses/Apache-2.0", os.path.join(d, "LICENSE"))
    with open(os.path.join(d, "NOTICE.md"), "w") as fh:
        fh.write(C2V_NOTICE)
    with open(os.path.join(d, "vocab.txt"), "w") as fh:
        fh.write(C2V_CHARS + "\n")
    with open(os.path.join(d, "words.txt"), "w") as fh:
        fh.write("\n".join(C2V_WORDS) + "\n")
    keras.backend.clear_session()
    inp = keras.Input((None, len(C2V_CHARS)), name="input_1")
    y = L.LSTM(50, return_sequences=True, recurrent_activation="hard_sigmoid", implementation=1,
               name="lstm_1")(inp)
    y = L.LSTM(50, recurrent_activation="hard_sigmoid", implementation=1, name="lstm_2")(y)
    model = keras.Model(inp, y)
    model.load_weights(os.path.join(d, "weights.h5"))
    with open(os.path.join(d, "model.json"), "w") as fh:
        fh.write(json.dumps(json.loads(model.to_json()), indent=1) + "\n")
    T = max(len(w) for w in C2V_WORDS)
    x = np.zeros((len(C2V_WORDS), T, len(C2V_CHARS)), dtype=np.float32)
    for i, w in enumerate(C2V_WORDS):
        for t, ch in enumerate(w.lower()):
            j = C2V_CHARS.find(ch)
            if j >= 0:
                x[i, T - len(w) + t, j] = 1.0
    np.save(os.path.join(d, "x.npy"), x)
    out = {"output": model(tf.constant(x)).numpy().astype(np.float32)}
    savez(os.path.join(d, "out.npz"), out)
    with open(os.path.join(d, "case.json"), "w") as fh:
        fh.write(json.dumps({"layers": None, "description": "chars2vec eng_50 (Keras 2.2.0)"},
                            indent=2) + "\n")
    print("chars2vec: a real Keras 2.2.0 weights file, two LSTM(50)")


# --------------------------------------------------------------------------------------------
# Bad files


KERAS3_SNIPPET = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"; os.environ["CUDA_VISIBLE_DEVICES"] = ""
import keras
assert keras.__version__.startswith("3."), keras.__version__
m = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(2)])
m.save(os.path.join(sys.argv[1], "keras3.keras"))
m.save(os.path.join(sys.argv[1], "keras3.h5"))
"""


@case
def bad():
    d = os.path.join(OUT, "bad")
    os.makedirs(d, exist_ok=True)
    # Keras 3 files (the `keras` package, Keras 3): refused.
    subprocess.check_call([sys.executable, "-c", KERAS3_SNIPPET, d])

    # A Keras 1 full-model file: no keras_version attribute, Keras 1 config and weight names.
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "LSTM", "config": {"name": "lstm_1", "output_dim": 2, "input_dim": 3,
                                          "inner_activation": "hard_sigmoid",
                                          "batch_input_shape": [None, 4, 3]}}]}
    with h5py.File(os.path.join(d, "keras1.h5"), "w") as f:
        f.attrs["model_config"] = json.dumps(cfg).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"lstm_1"])
        lg = g.create_group("lstm_1")
        names = [f"lstm_1_{w}_{gate}".encode() for gate in "icfo" for w in "WUb"]
        lg.attrs["weight_names"] = np.array(names)
        for n in names:
            shape = {"W": (3, 2), "U": (2, 2), "b": (2,)}[n.decode().split("_")[2]]
            lg.create_dataset(n.decode(), data=np.zeros(shape, np.float32))

    # Embedding(mask_zero) -> ConvLSTM1D is not run; an Embedding is not recurrent.
    keras.backend.clear_session()
    rng = rng_for("bad/unsupported")
    inp = keras.Input((5,))
    y = L.Embedding(7, 4, mask_zero=True, name="embedding")(inp)
    y = L.LSTM(3, return_sequences=True, name="lstm")(y)
    y = L.Reshape((5, 3, 1))(y)
    y = L.ConvLSTM1D(2, 2, name="conv_lstm1d")(y)
    m = keras.Model(inp, y)
    randomize(m, rng)
    m.save(os.path.join(d, "unsupported.h5"))

    # An LSTM model whose recurrent_kernel has the wrong shape, and one whose bias is missing.
    keras.backend.clear_session()
    m = keras.Sequential([keras.Input((4, 3)), L.LSTM(2, name="lstm")])
    m.save(os.path.join(d, "bad_shape.h5"))
    shutil.copy(os.path.join(d, "bad_shape.h5"), os.path.join(d, "missing_weight.h5"))
    with h5py.File(os.path.join(d, "bad_shape.h5"), "a") as f:
        p = "model_weights/lstm/lstm/lstm_cell/recurrent_kernel:0"
        del f[p]
        f.create_dataset(p, data=np.zeros((2, 6), np.float32))
    with h5py.File(os.path.join(d, "missing_weight.h5"), "a") as f:
        del f["model_weights/lstm/lstm/lstm_cell/bias:0"]

    # Many layers with long names: Keras splits `layer_names` into layer_names0, layer_names1.
    keras.backend.clear_session()
    rng = rng_for("bad/chunked")
    inp = keras.Input((4, 3))
    y = inp
    for i in range(70):
        y = L.Activation("linear", name=f"identity_{i:02d}_" + "x" * 1000)(y)
    y = L.LSTM(2, name="lstm_after_many")(y)
    m = keras.Model(inp, y)
    randomize(m, rng)
    m.save_weights(os.path.join(d, "chunked_names.h5"))
    with h5py.File(os.path.join(d, "chunked_names.h5"), "r") as f:
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs, list(f.attrs)
    with open(os.path.join(d, "chunked_names.layer.json"), "w") as fh:
        lay = m.get_layer("lstm_after_many")
        fh.write(json.dumps({"class_name": "LSTM", "config": lay.get_config()}, indent=2) + "\n")
    x = rng.uniform(-1, 1, (2, 4, 3)).astype(np.float32)
    np.save(os.path.join(d, "chunked_names.x.npy"), x)
    savez(os.path.join(d, "chunked_names.out.npz"), {"output": lay(tf.constant(x)).numpy()})
    print("bad: keras1.h5, keras3.keras, keras3.h5, unsupported.h5, bad_shape.h5, "
          "missing_weight.h5, chunked_names.h5")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for fn in CASES:
        fn()


if __name__ == "__main__":
    main()
