"""PyTorch parity fixtures for `recurrent::interop` (tests/torch_parity.rs).

For every case a directory `tests/fixtures_torch/<case>/` with

* `case.json`  -- the module: `module` (LSTM / GRU), `input_size`, `hidden_size`, `num_layers`,
                  `bias`, `batch_first` (always true), and the torch version that wrote it;
* `params.npz` -- the module's `state_dict()` under PyTorch's own names (`weight_ih_l0`,
                  `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `..._l1`), float32;
* `x.npy`      -- the input, batch first `(batch, time, input_size)`, float32;
* `out.npz`    -- `output` `(batch, time, hidden_size)`, `h_n` `(num_layers, batch,
                  hidden_size)` and, for LSTM, `c_n`, float32, from the module's forward pass
                  with zero initial states.

Environment (this script installs nothing): the repository's Keras venv with CPU-run PyTorch
added from PyPI,

    /work/.kvenv/bin/pip install torch        # torch 2.15.0 wrote the committed fixtures

Run from the repository root (rewrites every case directory it knows):

    /work/.kvenv/bin/python scripts/torch_fixtures.py

Deterministic: numpy is seeded per case from the case name (crc32); every parameter is drawn
uniform(-0.6, 0.6) (a little wider than PyTorch's default 1/sqrt(hidden) so the gates leave their
linear range) and copied into the module, inputs are uniform(-2, 2). PyTorch runs on the CPU in
float32 with one thread. As a second, independent check the script recomputes each case in
float64 NumPy from PyTorch's documented nn.LSTM / nn.GRU equations and asserts agreement.
`.npz` files are stored zips with a fixed timestamp, so reruns are byte-identical.
"""

import io
import json
import os
import sys
import zipfile
import zlib

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures_torch")
BATCH, TIME = 2, 4

# name: (module, input_size, hidden_size, num_layers, bias)
CASES = {
    "lstm_in3_h5": ("LSTM", 3, 5, 1, True),
    "lstm_in3_h5_nobias": ("LSTM", 3, 5, 1, False),
    "gru_in3_h5": ("GRU", 3, 5, 1, True),
    "gru_in3_h5_nobias": ("GRU", 3, 5, 1, False),
    "lstm_2layer_in3_h5": ("LSTM", 3, 5, 2, True),
    "gru_2layer_in3_h5": ("GRU", 3, 5, 2, True),
}


def savez(path, arrays):
    """np.savez equivalent (stored zip of NAME.npy members) with a fixed timestamp."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in sorted(arrays.items()):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_reference(module, params, x, num_layers, bias):
    """PyTorch's documented equations, float64, zero initial states, batch first."""
    seq = x.astype(np.float64)
    hs, cs = [], []
    for k in range(num_layers):
        w_ih = params[f"weight_ih_l{k}"].astype(np.float64)
        w_hh = params[f"weight_hh_l{k}"].astype(np.float64)
        hidden = w_hh.shape[1]
        b_ih = params[f"bias_ih_l{k}"].astype(np.float64) if bias else np.zeros(w_ih.shape[0])
        b_hh = params[f"bias_hh_l{k}"].astype(np.float64) if bias else np.zeros(w_ih.shape[0])
        h = np.zeros((seq.shape[0], hidden))
        c = np.zeros((seq.shape[0], hidden))
        outs = []
        for t in range(seq.shape[1]):
            gi = seq[:, t] @ w_ih.T + b_ih
            gh = h @ w_hh.T + b_hh
            if module == "LSTM":
                # rows i, f, g, o
                i, f, g, o = np.split(gi + gh, 4, axis=1)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(c)
            else:
                # rows r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
                ir, iz, inn = np.split(gi, 3, axis=1)
                hr, hz, hn = np.split(gh, 3, axis=1)
                r = sigmoid(ir + hr)
                z = sigmoid(iz + hz)
                n = np.tanh(inn + r * hn)
                h = (1.0 - z) * n + z * h
            outs.append(h)
        seq = np.stack(outs, axis=1)
        hs.append(h)
        cs.append(c)
    out = {"output": seq, "h_n": np.stack(hs)}
    if module == "LSTM":
        out["c_n"] = np.stack(cs)
    return out


def write_case(name, module, input_size, hidden, num_layers, bias):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    cls = getattr(torch.nn, module)
    net = cls(input_size, hidden, num_layers=num_layers, bias=bias, batch_first=True)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.6, 0.6, size=tuple(p.shape)).astype(np.float32)))
    x = rng.uniform(-2.0, 2.0, size=(BATCH, TIME, input_size)).astype(np.float32)
    with torch.no_grad():
        res = net(torch.from_numpy(x))
    output, state = res
    out = {"output": output.numpy()}
    if module == "LSTM":
        out["h_n"], out["c_n"] = state[0].numpy(), state[1].numpy()
    else:
        out["h_n"] = state.numpy()
    params = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}

    ref = numpy_reference(module, params, x, num_layers, bias)
    for k, want in ref.items():
        err = np.max(np.abs(out[k].astype(np.float64) - want))
        if err > 1e-5:
            sys.exit(f"{name}: torch and the numpy equations disagree on {k} by {err}")

    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    savez(os.path.join(d, "params.npz"), params)
    with open(os.path.join(d, "x.npy"), "wb") as f:
        np.lib.format.write_array(f, x, allow_pickle=False)
    savez(os.path.join(d, "out.npz"), {k: v.astype(np.float32) for k, v in out.items()})
    meta = {
        "module": module,
        "input_size": input_size,
        "hidden_size": hidden,
        "num_layers": num_layers,
        "bias": bias,
        "batch_first": True,
        "torch_version": torch.__version__.split("+")[0],
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        f.write(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: {sorted(params)} -> {sorted(out)}")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, spec in CASES.items():
        write_case(name, *spec)


if __name__ == "__main__":
    main()
