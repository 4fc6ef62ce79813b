"""EdgeML importer: FastRNNCell / FastGRNNCell parameters (row-vector layout,
x @ W) to a fastseq FastRNN / FastGRNN layer (column layout, W x)."""
import numpy as np

from .. import layers
from .._arrays import as_float32


def from_edgeml(source, gate_nonlinearity="sigmoid", update_nonlinearity="tanh", batch_first=False):
    """Build a one-layer FastRNN or FastGRNN from an EdgeML cell or its state_dict.

    EdgeML keys: `W` | `W1`,`W2`; `U` | `U1`,`U2`; `bias_update`, `bias_gate`
    ([1, hid]); `alpha`, `beta` (FastRNN) or `zeta`, `nu` (FastGRNN), [1, 1];
    an optional `cell.` prefix. Matrices are in EdgeML's row-vector layout:
    W [in, hid], W1 [in, r], W2 [r, hid]. The cell kind follows from the keys.
    A module's own `gate_nonlinearity` / `update_nonlinearity` attributes (EdgeML
    stores them as strings) win over the arguments."""
    if hasattr(source, "state_dict"):
        gate_nonlinearity = getattr(source, "_gate_nonlinearity", getattr(source, "gate_nonlinearity", gate_nonlinearity))
        update_nonlinearity = getattr(source, "_update_nonlinearity", getattr(source, "update_nonlinearity", update_nonlinearity))
        source = source.state_dict()
    sd = {k[5:] if k.startswith("cell.") else k: as_float32(v, k) for k, v in dict(source).items()}
    if {"zeta", "nu"} <= set(sd):
        kind = "FastGRNN"
    elif {"alpha", "beta"} <= set(sd):
        kind = "FastRNN"
    else:
        raise ValueError(f"from_edgeml: expected FastRNN keys (alpha, beta) or FastGRNN keys "
                         f"(zeta, nu), got {sorted(sd)}")

    def factors(name):
        if name in sd:
            m = sd[name]
            if m.ndim != 2:
                raise ValueError(f"{name}: expected a 2-D [in, hid] matrix, got shape {m.shape}")
            return m, None
        if name + "1" in sd and name + "2" in sd:
            a, b = sd[name + "1"], sd[name + "2"]
            if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
                raise ValueError(f"{name}1 @ {name}2: expected [in, r] and [r, hid], got {a.shape} and {b.shape}")
            return a, b
        raise ValueError(f"from_edgeml: expected {name} or {name}1 and {name}2, got keys {sorted(sd)}")

    w, w2 = factors("W")
    u, u2 = factors("U")
    in_size = w.shape[0]
    hidden = (w2 if w2 is not None else w).shape[1]
    bias = "bias_update" in sd
    common = dict(bias=bias, batch_first=batch_first, w_rank=w.shape[1] if w2 is not None else None,
                  u_rank=u.shape[1] if u2 is not None else None)
    if kind == "FastRNN":
        layer = layers.FastRNN(in_size, hidden, nonlinearity=update_nonlinearity, **common)
    else:
        layer = layers.FastGRNN(in_size, hidden, gate_nonlinearity=gate_nonlinearity,
                                update_nonlinearity=update_nonlinearity, **common)
    # row-vector x @ W1 @ W2  ==  column-vector W2^T (W1^T x)
    ours = {}
    if w2 is None:
        ours["weight_ih_l0"] = w.T
    else:
        ours["weight_ih_a_l0"], ours["weight_ih_b_l0"] = w.T, w2.T
    if u2 is None:
        ours["weight_hh_l0"] = u.T
    else:
        ours["weight_hh_a_l0"], ours["weight_hh_b_l0"] = u.T, u2.T
    scalars = ("alpha", "beta") if kind == "FastRNN" else ("zeta", "nu")
    for s in scalars:
        ours[s + "_l0"] = sd[s].reshape(1)
    if bias:
        if kind == "FastRNN":
            ours["bias_l0"] = sd["bias_update"].reshape(-1)
        else:
            ours["bias_update_l0"] = sd["bias_update"].reshape(-1)
            ours["bias_gate_l0"] = sd["bias_gate"].reshape(-1)
    layer.load_state_dict({k: np.ascontiguousarray(v) for k, v in ours.items()})
    return layer
