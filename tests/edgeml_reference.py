"""A faithful numpy re-implementation of EdgeML's FastRNNCell and FastGRNNCell (written from
DESIGN.md section 2 and the cell equations of EdgeML's `edgeml_pytorch/graph/rnn.py`; EdgeML
itself is not a dependency), for testing fastseq's EdgeML import and reference modules.

EdgeML works in row-vector form: one step maps x [B, in] and h [B, hid] to h' [B, hid] with

    FastRNN:   pre = x @ W + h @ U               (low rank: x @ W1 @ W2, h @ U1 @ U2)
               h~  = update_nl(pre + bias_update)
               h'  = sigmoid(beta) * h + sigmoid(alpha) * h~
    FastGRNN:  pre = x @ W + h @ U
               z   = gate_nl(pre + bias_gate);  h~ = update_nl(pre + bias_update)
               h'  = z * h + (sigmoid(zeta) * (1 - z) + sigmoid(nu)) * h~

state_dict keys: `W` [in, hid] | `W1` [in, r], `W2` [r, hid]; `U` [hid, hid] | `U1` [hid, r_u],
`U2` [r_u, hid]; `bias_update` (and, FastGRNN, `bias_gate`) [1, hid]; `alpha`, `beta` (FastRNN)
or `zeta`, `nu` (FastGRNN) [1, 1]. A module that wraps the cell (EdgeML's `FastRNN`,
`FastGRNN`) prefixes every key with `cell.`.

edgeml-pytorch 0.3.0's FastGRNNCell stores the matrices transposed ("col" layout, torch's:
W [hid, in], W1 [r, in], W2 [hid, r], U1 [r_u, hid], U2 [hid, r_u]) and computes x @ W.T;
`layout="col"` covers that. tests/test_import_edgeml.py checks against the package itself.
Computation is float64 unless `dtype` says otherwise.
"""
import numpy as np

CELLS = ("FastRNN", "FastGRNN")


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# EdgeML's gen_nonlinearity: the three fastseq supports plus EdgeML's quantised ones.
NONLINEARITIES = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda a: np.maximum(a, 0.0),
    "quantTanh": lambda a: np.clip(a, -1.0, 1.0),
    "quantSigm": lambda a: np.clip((a + 1.0) / 2.0, 0.0, 1.0),
    "quantSigm4": lambda a: np.clip((a + 2.0) / 4.0, 0.0, 1.0),
}


def strip_prefix(state_dict, prefix="cell."):
    """Drop `prefix` from keys that carry it (EdgeML's wrapper modules hold the cell as `cell`)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _as_array(v, dtype):
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=dtype)


def make_state_dict(cell, input_size, hidden_size, w_rank=None, u_rank=None, prefix="",
                    layout="row", seed=0):
    """A random EdgeML-style state_dict (float32 numpy arrays) for `cell` ("FastRNN" or
    "FastGRNN"). Matrices ~ 0.1 * N(0, 1) like EdgeML's init; biases ~ U(-1, 1); the scalars
    are random but in the range training keeps them (sigmoid(alpha) in [0.03, 0.3],
    sigmoid(beta) in [0.5, 0.97 - sigmoid(alpha)], zeta in [-1, 2], nu in [-5, -1]), so every
    parameter matters and the state stays bounded (except with a relu gate, whose z can
    exceed 1: shift bias_gate down for long runs). `prefix="cell."` gives a wrapped
    module's keys; `w_rank` / `u_rank` the low-rank factors; `layout="col"` the transposed
    storage of edgeml-pytorch's FastGRNNCell."""
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {CELLS}, got {cell!r}")
    if layout not in ("row", "col"):
        raise ValueError(f"layout: expected 'row' or 'col', got {layout!r}")
    rng = np.random.default_rng(seed)

    def mat(rows, cols):
        shape = (rows, cols) if layout == "row" else (cols, rows)
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)

    def scalar(lo, hi):
        return np.full((1, 1), rng.uniform(lo, hi), dtype=np.float32)

    sd = {}
    if w_rank is None:
        sd["W"] = mat(input_size, hidden_size)
    else:
        sd["W1"], sd["W2"] = mat(input_size, w_rank), mat(w_rank, hidden_size)
    if u_rank is None:
        sd["U"] = mat(hidden_size, hidden_size)
    else:
        sd["U1"], sd["U2"] = mat(hidden_size, u_rank), mat(u_rank, hidden_size)
    if cell == "FastGRNN":
        sd["bias_gate"] = rng.uniform(-1, 1, (1, hidden_size)).astype(np.float32)
    sd["bias_update"] = rng.uniform(-1, 1, (1, hidden_size)).astype(np.float32)
    if cell == "FastRNN":   # as trained FastRNNs are: sigmoid(alpha) << 1, sigmoid(beta) ~ 1 - it
        a = rng.uniform(0.03, 0.3)
        b = rng.uniform(0.5, 0.97 - a)
        sd["alpha"] = np.full((1, 1), np.log(a / (1 - a)), dtype=np.float32)
        sd["beta"] = np.full((1, 1), np.log(b / (1 - b)), dtype=np.float32)
    else:
        sd["zeta"], sd["nu"] = scalar(-1, 2), scalar(-5, -1)
    return {prefix + k: v for k, v in sd.items()}


def _project(p, name, v, layout):
    """v @ M (row layout) for M = p[name] or its factors p[name + '1'], p[name + '2']."""
    if name in p:
        mats = [p[name]]
    else:
        mats = [p[name + "1"], p[name + "2"]]
    for m in mats:
        v = v @ (m if layout == "row" else m.T)
    return v


def cell_step(cell, state_dict, x, h, gate_nonlinearity="sigmoid", update_nonlinearity="tanh",
              layout="row", dtype=np.float64):
    """One EdgeML step: x [B, in], h [B, hid] -> h' [B, hid] (`gate_nonlinearity` is FastGRNN's)."""
    p = {k: _as_array(v, dtype) for k, v in strip_prefix(state_dict).items()}
    x, h = _as_array(x, dtype), _as_array(h, dtype)
    pre = _project(p, "W", x, layout) + _project(p, "U", h, layout)
    h_tilde = NONLINEARITIES[update_nonlinearity](pre + p["bias_update"])
    if cell == "FastRNN":
        return _sigmoid(p["beta"]) * h + _sigmoid(p["alpha"]) * h_tilde
    if cell == "FastGRNN":
        z = NONLINEARITIES[gate_nonlinearity](pre + p["bias_gate"])
        return z * h + (_sigmoid(p["zeta"]) * (1.0 - z) + _sigmoid(p["nu"])) * h_tilde
    raise ValueError(f"cell: expected one of {CELLS}, got {cell!r}")


def run_sequence(cell, state_dict, x, h0=None, gate_nonlinearity="sigmoid",
                 update_nonlinearity="tanh", layout="row", dtype=np.float64):
    """Run the cell over x [T, B, in] (time-major, like EdgeML's wrappers by default) from
    h0 [B, hid] (zeros if None). Returns (outputs [T, B, hid], h_T [B, hid])."""
    x = _as_array(x, dtype)
    if x.ndim != 3:
        raise ValueError(f"x: expected [T, B, in], got shape {x.shape}")
    sd = strip_prefix(state_dict)
    hidden = np.shape(sd["bias_update"])[-1]
    h = np.zeros((x.shape[1], hidden), dtype) if h0 is None else _as_array(h0, dtype)
    outs = np.zeros((x.shape[0], x.shape[1], hidden), dtype)
    for t in range(x.shape[0]):
        h = cell_step(cell, sd, x[t], h, gate_nonlinearity, update_nonlinearity, layout, dtype)
        outs[t] = h
    return outs, h
