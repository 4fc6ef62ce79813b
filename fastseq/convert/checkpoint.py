"""Checkpoint files to fastseq layers: what `fastseq convert` reads.

A checkpoint is a torch file (a pickled module or state_dict, or a TorchScript archive), a
.npz of arrays, an ONNX model or a Keras `.keras` file. Pickles are read with
`torch.load(weights_only=True)`, which runs no code from the file; torch's own recurrent
modules are allowed through it. Anything else in a pickle needs `trusted=True`.
Facts the weights cannot tell (an RNN's nonlinearity, batch_first, ...) come from the
arguments or the file, or are an error naming the argument: never a guess.
"""
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .. import cells, layers

_TENSOR_KEY = re.compile(r"^(.*?)((?:weight|bias|peephole|alpha|beta|zeta|nu)[a-z_]*_l\d+(?:_reverse)?)$")
_CELL_KEY = re.compile(r"^(.*?)((?:weight|bias)_(?:ih|hh))$")
_EDGEML_KEY = re.compile(r"^(.*?)(W|W[1-4]|U|U[1-4]|bias_(?:update|gate|[rifco])|alpha|beta|zeta|nu)$")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")
_KINDS = ("LSTM", "GRU", "RNN", "FastRNN", "FastGRNN")
_ACTS = ("tanh", "sigmoid", "relu")
_EDGEML_ACTS = _ACTS + ("quantTanh", "quantSigm", "quantSigm4")   # EdgeML's names (from_edgeml)


@dataclass
class Converted:
    """What a checkpoint gave: the layer, where in the file it was, what was left aside,
    and the source module (torch) when the conversion can be checked by running it."""
    layer: object
    where: str = ""
    ignored: list = field(default_factory=list)
    reference: object = None


@dataclass
class Facts:
    """What the weights cannot tell; None: not given."""
    kind: str = None
    input_size: int = None
    hidden_size: int = None
    num_layers: int = None
    proj_size: int = None
    bidirectional: bool = None
    bias: bool = None
    batch_first: bool = None
    nonlinearity: str = None
    gate_nonlinearity: str = None
    update_nonlinearity: str = None
    reset_after: bool = None
    layout: str = None


# ---- reading ---------------------------------------------------------------------------------

def _is_torchscript(path):
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n.endswith("/code/__torch__.py") or "/code/__torch__/" in n
                   for n in z.namelist())


def _torch_load(path, trusted):
    import torch
    import torch.nn as nn

    if trusted:
        warnings.warn(f"{path}: loading a full pickle (trusted=True): it can run any code it holds",
                      stacklevel=3)
        return torch.load(path, map_location="cpu", weights_only=False)
    # torch's recurrent modules and the plain modules models hold them in: unpickling these
    # builds the objects and sets their attributes, and runs nothing else
    safe = [nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell, nn.Sequential, nn.ModuleList,
            nn.ModuleDict, nn.Identity, nn.Linear, nn.Embedding, nn.Dropout]
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, or whatever a damaged file raises
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported (?:operand|class) ([\w.]+)", text)
        if "Weights only load failed" in text:
            what = f" (it names {found.group(1)})" if found else ""
            raise ValueError(f"{path}: the pickle holds objects other than tensors and torch's recurrent "
                             f"modules{what}; loading it could run code. If you trust the file, pass "
                             "trusted=True (fastseq convert --trust-pickle); else save module.state_dict() "
                             "and convert that") from None
        raise ValueError(f"{path}: torch.load failed: {exc}") from None


def read(path, trusted=False):
    """The object a checkpoint file holds: a torch module (eager or TorchScript), a dict
    of arrays, an onnx.ModelProto or a Keras model."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if ext == ".onnx":
        import onnx
        return onnx.load(path)
    if ext == ".keras":
        from .keras import load_keras
        return load_keras(path)
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path}: reading a torch checkpoint needs torch (pip install torch); or save the "
                         "weights with numpy.savez(path, **state_dict) and convert the .npz") from None
    if _is_torchscript(path):
        return torch.jit.load(path, map_location="cpu")   # TorchScript: no pickle code runs
    return _torch_load(path, trusted)


def _arrays(d):
    out = {}
    for k, v in d.items():
        if hasattr(v, "detach") and hasattr(v, "numpy"):   # a tensor, duck-typed
            v = v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            out[str(k)] = v
    return out


def _unwrap(obj):
    """A module, or a dict of arrays, from what a torch file holds."""
    if hasattr(obj, "named_modules") and hasattr(obj, "state_dict"):
        return obj
    if isinstance(obj, dict):
        arrays = _arrays(obj)
        if arrays:
            return arrays
        for key in _WRAPPER_KEYS:
            if key in obj:
                return _unwrap(obj[key])
        raise ValueError(f"the checkpoint is a dict without tensors (keys: {', '.join(map(str, list(obj)[:10]))}); "
                         "save the module, or its state_dict(), with torch.save")
    raise ValueError(f"the checkpoint holds a {type(obj).__name__}; expected a torch nn.Module or a state_dict")


# ---- modules ---------------------------------------------------------------------------------

def _convert_module(m):
    """The fastseq layer or cell of a torch module, or None when it is not a recurrent one."""
    from .edgeml import from_edgeml
    from .torch import from_torch

    if type(m).__module__.startswith("edgeml_pytorch"):
        try:
            return from_edgeml(m)
        except TypeError:
            return None
    try:
        return from_torch(m)
    except TypeError:
        return None


def _from_module(root, module, facts):
    named = dict(root.named_modules())
    if module is not None:
        if module not in named:
            raise ValueError(f"module {module!r}: no such submodule; it has "
                             f"{', '.join(repr(n) for n in named if n) or 'none'}")
        found = [(module, _convert_module(named[module]))]
        if found[0][1] is None:
            raise ValueError(f"module {module!r} is a {type(named[module]).__name__}, not a recurrent "
                             "module fastseq converts")
    else:
        top = _convert_module(root)
        found = [("", top)] if top is not None else []
        if not found:
            found = [(n, c) for n, m in named.items() if n and (c := _convert_module(m)) is not None]
    if not found:
        raise ValueError(f"the checkpoint holds a {type(root).__name__} with no recurrent module fastseq can "
                         "convert (nn.LSTM, nn.GRU, nn.RNN, their cells, fastseq.torch or EdgeML modules)")
    if len(found) > 1:
        raise ValueError("the checkpoint holds several recurrent modules: "
                         f"{', '.join(repr(n) for n, _ in found)}; choose one with module=NAME (--module NAME)")
    name, layer = found[0]
    reference = named[name] if name else root
    if isinstance(layer, cells._Cell):
        layer, reference = layer.as_layer(), None   # a cell's forward is one step: no check
    _agrees(layer, facts, "the module")
    return Converted(layer, f"module {name!r}" if name else "", [], reference)


# ---- state_dicts -----------------------------------------------------------------------------

def _need(value, what, flag, choices=None):
    if value is None:
        hint = f" ({' or '.join(choices)})" if choices else ""
        raise ValueError(f"the weights do not say {what}: give {flag}{hint}")
    return value


def _select(arrays, prefix, pattern, what):
    """(prefix, tensors under it with the prefix stripped, the other keys)."""
    if prefix is None:
        prefixes = sorted({m.group(1) for k in arrays if (m := pattern.match(k))})
        if not prefixes:
            raise ValueError(f"no recurrent weights in the state_dict (expected keys like {what}; found "
                             f"{', '.join(list(arrays)[:8])}); give the prefix (--prefix) if they are named differently")
        if len(prefixes) > 1:
            raise ValueError(f"the state_dict holds several recurrent layers: "
                             f"{', '.join(repr(p.rstrip('.')) for p in prefixes)}; choose one with module=NAME "
                             "(--module NAME)")
        prefix = prefixes[0]
    picked = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)
              and (m := pattern.match(k[len(prefix):])) and not m.group(1)}
    if not picked:
        raise ValueError(f"prefix {prefix!r}: no recurrent tensors start with it")
    return prefix, picked, sorted(set(arrays) - {prefix + k for k in picked})


def _sequence_config(sd, f):
    """(kind, constructor arguments) of a fastseq/torch-named state_dict (keys `*_l0`)."""
    def shape(key):
        return tuple(sd[key].shape) if key in sd else None

    layers_seen = {int(m.group(1)) for k in sd if (m := re.search(r"_l(\d+)(?:_reverse)?$", k))}
    cfg = {"num_layers": max(layers_seen) + 1, "bidirectional": any(k.endswith("_reverse") for k in sd)}
    kind = f.kind or ("FastRNN" if "alpha_l0" in sd else "FastGRNN" if "zeta_l0" in sd else None)
    if kind in ("FastRNN", "FastGRNN"):
        w, wa = shape("weight_ih_l0"), shape("weight_ih_a_l0")
        u, ub = shape("weight_hh_l0"), shape("weight_hh_b_l0")
        cfg.update(input_size=(w or wa or (None, None))[1], hidden_size=u[0] if u else ub[0] if ub else None,
                   bias=("bias_l0" if kind == "FastRNN" else "bias_update_l0") in sd)
        if wa:
            cfg["w_rank"] = wa[0]
        if ub:
            cfg["u_rank"] = ub[1]
        if kind == "FastRNN":
            cfg["nonlinearity"] = _need(f.nonlinearity, "FastRNN's nonlinearity", "nonlinearity (--nonlinearity)", _ACTS)
        else:
            cfg["gate_nonlinearity"] = _need(f.gate_nonlinearity, "FastGRNN's gate nonlinearity",
                                             "gate_nonlinearity (--gate-nonlinearity)", _ACTS)
            cfg["update_nonlinearity"] = _need(f.update_nonlinearity, "FastGRNN's update nonlinearity",
                                               "update_nonlinearity (--update-nonlinearity)", _ACTS)
        return kind, cfg
    w, u, hr = shape("weight_ih_l0"), shape("weight_hh_l0"), shape("weight_hr_l0")
    if not w or not u:
        raise ValueError("the state_dict has no weight_ih_l0 / weight_hh_l0; check the prefix (--prefix)")
    hidden = hr[1] if hr else u[1]
    gates = w[0] // hidden if hidden else 0
    peephole = "peephole_i_l0" in sd
    if kind is None:
        kind = {4: "LSTM", 1: "RNN"}.get(gates, "LSTM" if gates == 3 and (peephole or hr) else None)
        if kind is None:
            raise ValueError(f"weight_ih_l0 {w} and weight_hh_l0 {u}: "
                             + ("3 gates fit a GRU and a coupled LSTM; give the kind (--kind GRU or --kind LSTM)"
                                if gates == 3 else "fit no LSTM, GRU or RNN; give the kind (--kind)"))
    cfg.update(input_size=w[1], hidden_size=hidden, bias="bias_ih_l0" in sd)
    if kind == "LSTM":
        cfg.update(proj_size=hr[0] if hr else 0, peephole=peephole, coupled=gates == 3)
    elif kind == "RNN":
        cfg["nonlinearity"] = _need(f.nonlinearity, "an RNN's nonlinearity", "nonlinearity (--nonlinearity)",
                                    ("tanh", "relu"))
    elif kind == "GRU" and f.reset_after is not None:
        cfg["reset_after"] = f.reset_after
    return kind, cfg


def _checked(cfg, f):
    """cfg completed by, and checked against, the given facts."""
    for key in ("input_size", "hidden_size", "num_layers", "proj_size", "bidirectional", "bias"):
        given = getattr(f, key)
        if given is not None:
            if cfg.get(key) is not None and cfg[key] != given:
                raise ValueError(f"{key}={given}, but the weights say {cfg[key]}")
            cfg[key] = given
    return cfg


def _from_arrays(arrays, prefix, f):
    if any(_TENSOR_KEY.match(k) for k in arrays):
        prefix, sd, ignored = _select(arrays, prefix, _TENSOR_KEY, "'weight_ih_l0'")
        kind, cfg = _sequence_config(sd, f)
        cfg = _checked(cfg, f)
        cfg["batch_first"] = _need(f.batch_first, "batch_first", "batch_first (--batch-first or --time-major)")
        try:
            layer = getattr(layers, kind)(**cfg)
            layer.load_state_dict(sd)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{kind}({', '.join(f'{k}={v!r}' for k, v in cfg.items())}): {exc}") from None
        return Converted(layer, f"tensors under {prefix!r}" if prefix else "", ignored)
    if any(_CELL_KEY.match(k) for k in arrays):
        return _from_cell_arrays(arrays, prefix, f)
    if any(_EDGEML_KEY.match(k) for k in arrays):
        from .edgeml import from_edgeml
        prefix, sd, ignored = _select(arrays, prefix, _EDGEML_KEY, "'W', 'U', 'bias_update'")
        cell = f.kind if f.kind in ("FastRNN", "FastGRNN") else None
        gate = f.gate_nonlinearity
        update = f.update_nonlinearity or f.nonlinearity
        if {"zeta", "nu"} <= set(sd) or cell == "FastGRNN":
            _need(gate, "FastGRNN's gate nonlinearity", "gate_nonlinearity (--gate-nonlinearity)", _EDGEML_ACTS)
        _need(update, "the update nonlinearity", "update_nonlinearity (--update-nonlinearity)", _EDGEML_ACTS)
        layer = from_edgeml(sd, cell=cell, layout=f.layout, gate_nonlinearity=gate, update_nonlinearity=update,
                            batch_first=_need(f.batch_first, "batch_first", "batch_first (--batch-first or --time-major)"))
        return Converted(layer, f"EdgeML tensors under {prefix!r}" if prefix else "EdgeML tensors", ignored)
    raise ValueError("no recurrent weights in the state_dict (expected keys like 'weight_ih_l0', a cell's "
                     f"'weight_ih', or EdgeML's 'W'; found {', '.join(list(arrays)[:8])}); give the prefix (--prefix)")


def _from_cell_arrays(arrays, prefix, f):
    """A torch cell's state_dict (weight_ih, weight_hh, bias_ih, bias_hh) as a one-layer layer."""
    prefix, sd, ignored = _select(arrays, prefix, _CELL_KEY, "'weight_ih'")
    if "weight_ih" not in sd or "weight_hh" not in sd:
        raise ValueError(f"a cell state_dict needs weight_ih and weight_hh, got {sorted(sd)}")
    hidden = sd["weight_hh"].shape[1]
    gates = sd["weight_ih"].shape[0] // hidden
    kind = f.kind or {4: "LSTM", 3: "GRU", 1: "RNN"}.get(gates)
    if kind not in ("LSTM", "GRU", "RNN"):
        raise ValueError(f"weight_ih {sd['weight_ih'].shape}, weight_hh {sd['weight_hh'].shape} fit no LSTMCell, "
                         "GRUCell or RNNCell; give the kind (--kind)")
    cfg = _checked({"input_size": sd["weight_ih"].shape[1], "hidden_size": hidden, "bias": "bias_ih" in sd}, f)
    if kind == "RNN":
        cfg["nonlinearity"] = _need(f.nonlinearity, "an RNNCell's nonlinearity", "nonlinearity (--nonlinearity)",
                                    ("tanh", "relu"))
    # a cell runs one step: the layer's input layout is the caller's choice
    cfg["batch_first"] = _need(f.batch_first, "batch_first", "batch_first (--batch-first or --time-major)")
    layer = getattr(layers, kind)(**cfg)
    layer.load_state_dict({k + "_l0": v for k, v in sd.items()})
    return Converted(layer, f"{kind}Cell tensors" + (f" under {prefix!r}" if prefix else ""), ignored)


# ---- the entry point -------------------------------------------------------------------------

def load_checkpoint(path, *, module=None, prefix=None, trusted=False, **facts):
    """Like `from_checkpoint`, with details: a `Converted` (layer, where in the file it
    was, the keys left aside, the source module to check against)."""
    f = Facts(**facts)
    if f.kind is not None and f.kind not in _KINDS:
        raise ValueError(f"kind: expected one of {list(_KINDS)}, got {f.kind!r}")
    obj = read(path, trusted=trusted)
    kind_of = type(obj).__module__.split(".")[0]
    if kind_of in ("onnx", "keras"):
        from .keras import from_keras
        from .onnx import from_onnx
        convert, what = (from_onnx, "ONNX node") if kind_of == "onnx" else (from_keras, "Keras layer")
        layer, where = _one(convert(obj, names=True), module, what)
        _agrees(layer, f, f"the {what}")
        return Converted(layer, where)
    obj = _unwrap(obj)
    if isinstance(obj, dict):
        if module is not None:
            if prefix is not None:
                raise ValueError("give module or prefix, not both")
            prefix = module + "."
        return _from_arrays(obj, prefix, f)
    return _from_module(obj, module, f)


def _agrees(layer, f, source):
    """Check the given facts against a layer whose file says them all (a module, an ONNX
    or Keras model): a fact is a check there, never an override."""
    config = {"kind": type(layer).__name__, **layer.config()}
    for key, given in vars(f).items():
        if given is None or key == "layout":
            continue
        if key not in config:
            raise ValueError(f"{key}={given!r}: {source} holds a {config['kind']}, which has no such option")
        if config[key] != given:
            raise ValueError(f"{key}={given!r}, but {source} says {key}={config[key]!r}")


def _one(named, module, what):
    """(layer, where) from [(name, layer), ...]: the one, or the one named `module`."""
    if module is not None:
        match = [(n, lay) for n, lay in named if n == module]
        if not match:
            raise ValueError(f"module {module!r}: no such {what}; the file has {', '.join(repr(n) for n, _ in named)}")
        named = match
    if len(named) > 1:
        raise ValueError(f"the file holds several recurrent layers ({', '.join(repr(n) for n, _ in named)}); "
                         "choose one with module=NAME (--module NAME)")
    name, layer = named[0]
    return layer, f"{what} {name!r}"


def from_checkpoint(path, *, module=None, prefix=None, trusted=False, **facts):
    """Read a checkpoint file and return the fastseq layer it holds.

    Parameters
    ----------
    path : str or os.PathLike
        A torch file (pickled module or state_dict, a dict holding one under 'state_dict' /
        'model', a pickled cell or a cell's state_dict, a TorchScript archive), a .npz of
        arrays, an ONNX model (.onnx) or a Keras model (.keras).
    module : str, optional
        The recurrent submodule to convert when the file holds several (e.g. "decoder.rnn";
        the key prefix "decoder.rnn." of a state_dict; an ONNX node or Keras layer name).
    prefix : str, optional
        Key prefix of the layer's tensors in a state_dict.
    trusted : bool
        Load a full pickle, which can run any code the file holds (a warning says so).
        Default: only tensors and torch's recurrent modules are unpickled.
    **facts
        What the weights cannot tell, or a check of what they do: kind ("LSTM", "GRU",
        "RNN", "FastRNN", "FastGRNN"), input_size, hidden_size, num_layers, proj_size,
        bidirectional, bias, batch_first, nonlinearity, gate_nonlinearity,
        update_nonlinearity, reset_after (GRU), layout (EdgeML: "row" or "torch").

    Returns
    -------
    fastseq layer
        A sequence layer; a cell comes back as the equivalent one-layer layer.

    Raises
    ------
    ValueError
        The file cannot be read safely, holds no (or several) recurrent layers, or a fact
        the weights cannot tell is missing (the message names the argument).
    """
    return load_checkpoint(path, module=module, prefix=prefix, trusted=trusted, **facts).layer
