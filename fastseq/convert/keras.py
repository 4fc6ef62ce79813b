"""Keras 3 importer: LSTM, GRU (both reset forms), SimpleRNN, Bidirectional, and stacks of
them in a Sequential. keras is imported by the functions, never at `import fastseq`."""
import os
import sys

import numpy as np

from .. import layers

_RECURRENT = ("LSTM", "GRU", "SimpleRNN")
# Keras gate order -> fastseq's (torch's): LSTM i,f,c,o is torch's i,f,g,o; GRU z,r,h -> r,z,n
_ORDER = {"LSTM": (0, 1, 2, 3), "GRU": (1, 0, 2), "SimpleRNN": (0,)}


def load_keras(path):
    """A Keras model from a .keras file (safe_mode: no Python lambdas are deserialised).
    Keras needs a backend: torch's unless KERAS_BACKEND says another."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise ValueError(f"{path}: reading a .keras file needs keras (pip install keras)") from None
    return keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)


def _describe(layer):
    return f"Keras {type(layer).__name__} {layer.name!r}"


def _inner(layer):
    """(recurrent layer, bidirectional) of a recurrent or Bidirectional layer, or None."""
    name = type(layer).__name__
    if name == "Bidirectional":
        if layer.merge_mode != "concat":
            raise ValueError(f"{_describe(layer)}: merge_mode={layer.merge_mode!r}; fastseq concatenates "
                             "the two directions (merge_mode='concat')")
        return layer.forward_layer, True
    return (layer, False) if name in _RECURRENT else None


# Keras 3 activation names -> fastseq's, with hard_sigmoid's (alpha, beta): Keras 3
# defines it as relu6(x + 3) / 6 (Keras 2 used 0.2 x + 0.5).
_KERAS_ACTS = {"sigmoid": ("sigmoid", None), "tanh": ("tanh", None), "relu": ("relu", None),
               "softsign": ("softsign", None), "hard_tanh": ("hard_tanh", None),
               "hard_sigmoid": ("hard_sigmoid", (1.0 / 6.0, 0.5))}


def _gate_args(roles):
    """The fastseq layer's activation arguments for Keras activation names, one per role."""
    names = tuple(_KERAS_ACTS[r][0] for r in roles)
    params = [_KERAS_ACTS[r][1] for r in roles]
    return {"activations": names, "activation_alpha": tuple(p and p[0] for p in params),
            "activation_beta": tuple(p and p[1] for p in params)}


def _config(layer, bidirectional):
    """Constructor arguments of the fastseq layer for one Keras recurrent layer."""
    kind = type(layer).__name__
    cfg = layer.get_config()
    if cfg.get("go_backwards"):
        raise ValueError(f"{_describe(layer)}: go_backwards=True alone has no fastseq form yet "
                         "(layers run forward, or both ways with Bidirectional)")
    act, rec = cfg.get("activation"), cfg.get("recurrent_activation")
    for label, name in (("activation", act), ("recurrent_activation", rec)):
        if name is not None and name not in _KERAS_ACTS:
            raise ValueError(f"{_describe(layer)}: {label}={name!r} has no fastseq form yet (fastseq runs "
                             f"{', '.join(sorted(_KERAS_ACTS))})")
    kernel = layer.get_weights()[0]
    out = dict(kind={"SimpleRNN": "RNN"}.get(kind, kind), input_size=kernel.shape[0], hidden_size=cfg["units"],
               bias=bool(cfg.get("use_bias", True)), bidirectional=bidirectional, batch_first=True)
    # Keras' roles: recurrent_activation the gates (ONNX f), activation the candidate and,
    # in an LSTM, the cell output too (ONNX g, h)
    roles = {"SimpleRNN": (act,), "GRU": (rec, act), "LSTM": (rec, act, act)}[kind]
    if kind == "SimpleRNN" and act in ("tanh", "relu"):
        out["nonlinearity"] = act  # torch's RNN_TANH / RNN_RELU, with their fused kernels
    else:
        out.update(_gate_args(roles))
    if kind == "GRU":
        out["reset_after"] = bool(cfg.get("reset_after", True))
    return out


def _tensors(layer, cfg):
    """fastseq tensors (without the layer suffix) of one direction."""
    H, order = cfg["hidden_size"], _ORDER[type(layer).__name__]
    weights = layer.get_weights()

    def gates(m):   # Keras [rows, gates*H] -> [gates*H, rows] in fastseq's order
        blocks = m.reshape(m.shape[0], len(order), H)
        return np.ascontiguousarray(np.concatenate([blocks[:, g].T for g in order]))

    t = {"weight_ih": gates(weights[0]), "weight_hh": gates(weights[1])}
    if cfg["bias"]:
        bias = weights[2]
        if bias.ndim == 2:   # GRU reset_after: input and recurrent rows
            b_ih, b_hh = bias
        else:                # one bias: on the input side
            b_ih, b_hh = bias, np.zeros_like(bias)
        t["bias_ih"], t["bias_hh"] = gates(b_ih[None])[:, 0], gates(b_hh[None])[:, 0]
    return t


def _build(stack):
    """One fastseq layer from [(cfg, [tensors per direction]), ...]."""
    cfg = dict(stack[0][0])
    kind = cfg.pop("kind")
    layer = getattr(layers, kind)(num_layers=len(stack), **cfg)
    sd = {}
    for l, (_, directions) in enumerate(stack):
        for d, t in enumerate(directions):
            sd.update({f"{k}_l{l}" + ("_reverse" if d else ""): v for k, v in t.items()})
    layer.load_state_dict(sd)
    return layer


def _stackable(below, above):
    def options(cfg):
        return {k: v for k, v in cfg.items() if k != "input_size"}

    D = 2 if below["bidirectional"] else 1
    return options(below) == options(above) and above["input_size"] == D * below["hidden_size"]


def from_keras(source, *, names=False):
    """Convert Keras 3 recurrent layers to fastseq layers.

    Parameters
    ----------
    source : keras.layers.Layer, keras.Model, str or os.PathLike
        An `LSTM`, `GRU` (`reset_after` True or False), `SimpleRNN`, a `Bidirectional`
        (merge_mode "concat") of one of these, a model holding them, or a `.keras` file.
    names : bool
        Return [(Keras layer name, layer), ...] (a stack is named by its first layer).

    Returns
    -------
    fastseq layer or list
        Batch-first layers (Keras' layout). Consecutive recurrent layers of a Sequential
        with the same kind and options become one multi-layer layer; other recurrent layers
        come back as a list in model order. The fastseq layer returns every step (Keras'
        `return_sequences=False` output is its last step, h_n); `unit_forget_bias`, dropout
        and masking do not change the weights or inference without a mask.

    Raises
    ------
    ValueError
        No recurrent layer, or what fastseq cannot run yet (other activations,
        `go_backwards`, a merge mode other than concat); the message names the layer.
    """
    if isinstance(source, (str, os.PathLike)):
        source = load_keras(source)
    found = _inner(source)
    if found is not None:
        candidates, sequential = [source], False
    else:
        candidates = list(getattr(source, "layers", []))
        sequential = type(source).__name__ == "Sequential"
    groups = []     # [(name, [(cfg, directions)], last layer was recurrent)]
    previous_recurrent = False
    for item in candidates:
        inner = _inner(item)
        if inner is None:
            previous_recurrent = False
            continue
        layer, bidirectional = inner
        cfg = _config(layer, bidirectional)
        directions = [_tensors(layer, cfg)]
        if bidirectional:
            directions.append(_tensors(item.backward_layer, cfg))
        if sequential and previous_recurrent and _stackable(groups[-1][1][-1][0], cfg):
            groups[-1][1].append((cfg, directions))
        else:
            groups.append((item.name, [(cfg, directions)]))
        previous_recurrent = True
    if not groups:
        raise ValueError(f"from_keras: {type(source).__name__} holds no LSTM, GRU, SimpleRNN or Bidirectional layer")
    named = [(name, _build(stack)) for name, stack in groups]
    if names:
        return named
    return named[0][1] if len(named) == 1 else [layer for _, layer in named]
