"""EdgeML importer: the cells of `edgeml-pytorch` 0.3.0 (and state_dicts in the layout of
either EdgeML package) to fastseq layers.

EdgeML stores matrices in two layouts, depending on the package and the cell:

- "row" (x @ W): edgeml-pytorch's FastRNNCell, LSTMLRCell, GRULRCell, and every cell of the
  TensorFlow package `edgeml` 0.2.1. W [in, hid], W1 [in, r], W2 [r, hid], U1 [hid, r], ...
- "torch" (x @ W.T): edgeml-pytorch 0.3.0's FastGRNNCell. W [hid, in], W1 [r, in],
  W2 [hid, r], U1 [r, hid], U2 [hid, r].

A module's class says which; a bare state_dict says it only when a matrix is not square.
"""
import numpy as np

from .. import layers
from .._arrays import as_float32

# edgeml-pytorch cell class -> (kind, layout of its matrices)
_CELL_CLASSES = {"FastRNNCell": ("FastRNN", "row"), "FastGRNNCell": ("FastGRNN", "torch"),
                 "LSTMLRCell": ("LSTMLR", "row"), "GRULRCell": ("GRULR", "row"),
                 "UGRNNLRCell": ("UGRNNLR", "row")}
_KINDS = ("FastRNN", "FastGRNN", "LSTMLR", "GRULR", "UGRNNLR")
_LAYOUTS = ("row", "torch")
# key prefixes of the cell inside EdgeML's wrappers (FastGRNN, ...) and BaseRNN
_PREFIXES = ("unrollRNN._RNNCell.", "_RNNCell.", "cell.")


# EdgeML's activations as fastseq activations (name, alpha, beta), per
# edgeml_pytorch.graph.rnn.gen_nonlinearity: quantTanh clamps x to [-1, 1],
# quantSigm clamps (x + 1) / 2 and quantSigm4 (x + 2) / 4 to [0, 1]
_GATE_ACTS = {"tanh": ("tanh", None, None), "sigmoid": ("sigmoid", None, None), "relu": ("relu", None, None),
              "quantTanh": ("hard_tanh", None, None), "quantSigm": ("hard_sigmoid", 0.5, 0.5),
              "quantSigm4": ("hard_sigmoid", 0.25, 0.5)}


def _activation(name, role):
    """fastseq's (name, alpha, beta) for EdgeML's nonlinearity `name`."""
    if callable(name) or name not in _GATE_ACTS:
        raise ValueError(f"{role}: expected one of {list(_GATE_ACTS)} (EdgeML's own; a callable has "
                         f"no fastseq form), got {name!r}")
    return _GATE_ACTS[name]


def _kind_name(cell):
    name = cell[:-4] if isinstance(cell, str) and cell.endswith("Cell") else cell
    if name not in _KINDS:
        raise ValueError(f"cell: expected one of {list(_KINDS)}, got {cell!r}")
    return name


def _module_facts(module):
    """(cell kind, layout, state_dict, gate nl, update nl, batch_first or None) of an
    edgeml-pytorch cell, wrapper (FastGRNN, LSTM, ...) or BaseRNN."""
    batch_first = None
    cell = module
    if hasattr(module, "_RNNCell"):                        # BaseRNN
        cell, batch_first = module._RNNCell, module._batch_first
    elif hasattr(module, "cell") and hasattr(module, "unrollRNN"):   # FastGRNN, LSTM, ...
        cell, batch_first = module.cell, module.unrollRNN._batch_first
    name = type(cell).__name__
    if name not in _CELL_CLASSES:
        raise TypeError(f"from_edgeml: expected an edgeml-pytorch cell ({', '.join(_CELL_CLASSES)}), "
                        f"a wrapper holding one, a BaseRNN or a state_dict, got {type(module).__name__}")
    kind, layout = _CELL_CLASSES[name]
    gate = getattr(cell, "_gate_nonlinearity", None)
    return kind, layout, cell.state_dict(), gate, cell._update_nonlinearity, batch_first


def _strip(state_dict):
    """The cell's own keys: wrapper prefixes dropped; a parameter a wrapper holds twice
    (`cell.W` and `unrollRNN._RNNCell.W`) must be the same array."""
    out = {}
    for key, value in dict(state_dict).items():
        short = next((key[len(p):] for p in _PREFIXES if key.startswith(p)), key)
        arr = as_float32(value, key)
        if short in out and not np.array_equal(out[short], arr):
            raise ValueError(f"{key}: differs from another copy of {short!r} in the state_dict")
        out[short] = arr
    return out


def _kind_from_keys(sd):
    keys = set(sd)
    if {"zeta", "nu"} <= keys:
        return "FastGRNN"
    if {"alpha", "beta"} <= keys:
        return "FastRNN"
    if {"bias_i", "bias_f", "bias_c", "bias_o"} <= keys:
        return "LSTMLR"
    if "bias_r" in keys:
        return "GRULR"
    if {"bias_gate", "bias_update"} <= keys:
        return "UGRNNLR"
    raise ValueError("from_edgeml: expected the keys of an EdgeML cell (FastRNN: alpha, beta; FastGRNN: "
                     f"zeta, nu; LSTMLR: bias_i, bias_f, bias_c, bias_o; GRULR: bias_r; UGRNNLR: bias_gate, bias_update), "
                     f"got {sorted(keys)}")


def _factor_shapes(sd, name, hidden, layout):
    """Whether the W or U factors of `sd` fit `layout` with `hidden` units."""
    if name in sd:
        m = sd[name]
        return m.ndim == 2 and (m.shape[1] == hidden if layout == "row" else m.shape[0] == hidden) \
            and (name == "W" or m.shape == (hidden, hidden))
    a, b = sd.get(name + "1"), sd.get(name + "2")
    if a is None or b is None or a.ndim != 2 or b.ndim != 2:
        return False
    if layout == "torch":   # each factor is the transpose of its row form
        a, b = a.T, b.T
    ok = a.shape[1] == b.shape[0] and b.shape[1] == hidden
    return ok and (name == "W" or a.shape[0] == hidden)


def _fast_layout(sd, hidden, layout):
    fits = [lo for lo in _LAYOUTS if _factor_shapes(sd, "W", hidden, lo) and _factor_shapes(sd, "U", hidden, lo)]
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sd.items() if k[0] in "WU")
    if layout is not None:
        if layout not in _LAYOUTS:
            raise ValueError(f"layout: expected one of {list(_LAYOUTS)}, got {layout!r}")
        if layout not in fits:
            raise ValueError(f"layout={layout!r} with {hidden} hidden units: the matrices do not fit "
                             f"({shapes}); row: W [in, hid], W1 [in, r], W2 [r, hid]; torch: the transposes")
        return layout
    if not fits:
        raise ValueError(f"from_edgeml: matrices {shapes} fit neither layout for {hidden} hidden units "
                         "(row: W [in, hid], W1 [in, r], W2 [r, hid]; torch: the transposes)")
    if len(fits) == 2:
        raise ValueError(f"from_edgeml: the layout cannot be told from the shapes ({shapes}); pass "
                         "layout='row' (edgeml-pytorch FastRNNCell, TensorFlow edgeml) or layout='torch' "
                         "(edgeml-pytorch 0.3.0 FastGRNNCell)")
    return fits[0]


def _torch_factors(sd, name, layout):
    """(full, a, b) in fastseq's form: full [out, in], or b @ a with a [r, in], b [out, r]."""
    if name in sd:
        return (sd[name].T if layout == "row" else sd[name]), None, None
    one, two = sd[name + "1"], sd[name + "2"]
    return (None, one.T, two.T) if layout == "row" else (None, one, two)


def _fast_layer(kind, sd, layout, gate, update, batch_first):
    hidden = sd["bias_update"].shape[-1]
    layout = _fast_layout(sd, hidden, layout)
    w, wa, wb = _torch_factors(sd, "W", layout)
    u, ua, ub = _torch_factors(sd, "U", layout)
    in_size = (w if w is not None else wa).shape[1]
    common = dict(batch_first=batch_first, w_rank=None if wa is None else wa.shape[0],
                  u_rank=None if ua is None else ua.shape[0])
    ours = {}
    if w is not None:
        ours["weight_ih_l0"] = w
    else:
        ours["weight_ih_a_l0"], ours["weight_ih_b_l0"] = wa, wb
    if u is not None:
        ours["weight_hh_l0"] = u
    else:
        ours["weight_hh_a_l0"], ours["weight_hh_b_l0"] = ua, ub
    u_name, u_alpha, u_beta = _activation(update, "update_nonlinearity")
    if kind == "FastRNN":
        layer = layers.FastRNN(in_size, hidden, nonlinearity=u_name, nonlinearity_alpha=u_alpha,
                               nonlinearity_beta=u_beta, **common)
        ours["bias_l0"] = sd["bias_update"].reshape(-1)
        scalars = ("alpha", "beta")
    else:
        g_name, g_alpha, g_beta = _activation(gate, "gate_nonlinearity")
        layer = layers.FastGRNN(in_size, hidden, gate_nonlinearity=g_name, gate_alpha=g_alpha, gate_beta=g_beta,
                                update_nonlinearity=u_name, update_alpha=u_alpha, update_beta=u_beta, **common)
        ours["bias_update_l0"] = sd["bias_update"].reshape(-1)
        ours["bias_gate_l0"] = sd["bias_gate"].reshape(-1)
        scalars = ("zeta", "nu")
    for s in scalars:
        ours[s + "_l0"] = sd[s].reshape(1)
    layer.load_state_dict({k: np.ascontiguousarray(v) for k, v in ours.items()})
    return layer


def _gated_layer(kind, sd, gate, update, batch_first):
    """LSTMLR / GRULR / UGRNNLR (row layout, one bias per gate) as a fastseq LSTM /
    reset-before GRU / UGRNN;
    low rank (x @ W @ W_g: W [in, r] shared by the gates, W_g [r, hid]) as w_rank / u_rank,
    weight_*_a = W.T and weight_*_b the W_g.T stacked in gate order."""
    gate_act = _activation(gate, f"{kind} gate_nonlinearity")
    update_act = _activation(update, f"{kind} update_nonlinearity")
    # gate: LSTM i, f, o / GRU r, z / UGRNN z (role f); update: the candidate and an LSTM's cell output
    roles = [gate_act, update_act] + ([update_act] if kind == "LSTMLR" else [])
    acts = dict(activations=tuple(r[0] for r in roles), activation_alpha=tuple(r[1] for r in roles),
                activation_beta=tuple(r[2] for r in roles))
    # EdgeML's gate order -> torch's (LSTM i, f, g, o; GRU r, z, n)
    if kind == "LSTMLR":
        order, biases = ("1", "2", "3", "4"), ("bias_i", "bias_f", "bias_c", "bias_o")
    elif kind == "GRULR":
        order, biases = ("1", "2", "3"), ("bias_r", "bias_gate", "bias_update")
    else:   # UGRNN: z, c
        order, biases = ("1", "2"), ("bias_gate", "bias_update")
    hidden = sd[biases[0]].shape[-1]
    ours, ranks = {}, {}
    for name, key, rank in (("W", "weight_ih", "w_rank"), ("U", "weight_hh", "u_rank")):
        stacked = np.concatenate([sd[name + g].T for g in order])
        if name in sd:   # low rank: the shared factor
            ours[key + "_a_l0"], ours[key + "_b_l0"] = sd[name].T, stacked
            ranks[rank] = sd[name].shape[1]
        else:
            ours[key + "_l0"] = stacked
    in_size = sd["W"].shape[0] if "W" in sd else sd["W1"].shape[0]
    b = np.concatenate([sd[name].reshape(-1) for name in biases])
    ours.update(bias_ih_l0=b, bias_hh_l0=np.zeros_like(b))
    if kind == "LSTMLR":
        layer = layers.LSTM(in_size, hidden, batch_first=batch_first, **ranks, **acts)
    elif kind == "GRULR":
        layer = layers.GRU(in_size, hidden, batch_first=batch_first, reset_after=False, **ranks, **acts)
    else:
        layer = layers.UGRNN(in_size, hidden, batch_first=batch_first, **ranks, **acts)
    layer.load_state_dict({k: np.ascontiguousarray(v) for k, v in ours.items()})
    return layer


def from_edgeml(source, *, cell=None, layout=None, gate_nonlinearity=None, update_nonlinearity=None,
                batch_first=None):
    """Build a one-layer fastseq layer from an EdgeML cell, wrapper or state_dict.

    Parameters
    ----------
    source : torch.nn.Module or mapping
        An edgeml-pytorch 0.3.0 cell (`FastRNNCell`, `FastGRNNCell`, `LSTMLRCell`,
        `GRULRCell`, `UGRNNLRCell`), a wrapper holding one (`FastRNN`, `FastGRNN`, `LSTM`,
        `GRU`, `UGRNN`), a `BaseRNN`, or a state_dict of any of these (keys with or without the wrappers'
        `cell.` / `_RNNCell.` prefixes; numpy arrays or tensors).
    cell : str, optional
        "FastRNN", "FastGRNN", "LSTMLR", "GRULR" or "UGRNNLR": checked against the keys of
        a state_dict.
    layout : {"row", "torch"}, optional
        How a FastRNN / FastGRNN state_dict stores its matrices: "row" (x @ W, W [in, hid]:
        edgeml-pytorch's FastRNNCell, the TensorFlow package) or "torch" (x @ W.T,
        W [hid, in]: edgeml-pytorch 0.3.0's FastGRNNCell). Needed when the shapes cannot
        tell (every matrix square). A module's class says it; giving it then is an error.
    gate_nonlinearity, update_nonlinearity : str, optional
        For a state_dict: one of EdgeML's "tanh", "sigmoid", "relu", "quantTanh", "quantSigm",
        "quantSigm4" (default EdgeML's: sigmoid, tanh).
        A module's own are read from it; giving them then is an error.
    batch_first : bool, optional
        Input layout of the fastseq layer; default: a wrapper's or BaseRNN's own (EdgeML's
        default is True), False for a cell or a state_dict.

    Returns
    -------
    FastRNN, FastGRNN, LSTM, GRU or UGRNN
        Low-rank factors kept (`w_rank`, `u_rank`); LSTMLRCell as an LSTM, GRULRCell as a
        reset-before GRU (`reset_after=False`), UGRNNLRCell as a UGRNN.

    Raises
    ------
    ValueError
        Unknown keys or shapes, an ambiguous layout or a callable nonlinearity.
    """
    if hasattr(source, "state_dict") and hasattr(source, "named_modules"):
        given = {"layout": layout, "gate_nonlinearity": gate_nonlinearity,
                 "update_nonlinearity": update_nonlinearity}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ValueError(f"from_edgeml: {', '.join(extra)} come from the module itself; give them "
                             "only with a state_dict")
        kind, layout, sd, gate, update, module_batch_first = _module_facts(source)
        sd = _strip(sd)
        if batch_first is None:
            batch_first = bool(module_batch_first)
    else:
        sd = _strip(source)
        kind = _kind_from_keys(sd)
        gate = gate_nonlinearity or "sigmoid"
        update = update_nonlinearity or "tanh"
    if cell is not None and _kind_name(cell) != kind:
        raise ValueError(f"cell={cell!r}, but the parameters are those of a {kind} cell")
    batch_first = bool(batch_first)
    if kind in ("FastRNN", "FastGRNN"):
        return _fast_layer(kind, sd, layout, gate, update, batch_first)
    if layout not in (None, "row"):
        raise ValueError(f"layout={layout!r}: {kind} cells store their matrices in row layout only")
    return _gated_layer(kind, sd, gate, update, batch_first)
