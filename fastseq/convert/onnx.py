"""ONNX importer: `LSTM`, `GRU` and `RNN` nodes to fastseq layers. onnx is imported by
the functions; constant subgraphs are evaluated with onnx's reference evaluator (no
onnxruntime needed)."""
import os

import numpy as np

from .. import layers

_OPS = ("LSTM", "GRU", "RNN")
# ONNX gate order -> fastseq's (torch's): LSTM i,o,f,c -> i,f,g,o; coupled i,o,c -> i,g,o;
# GRU z,r,h -> r,z,n
_LSTM_ORDER, _CIFG_ORDER, _GRU_ORDER = (0, 2, 3, 1), (0, 3, 1), (1, 0, 2)
# ops that only move data between two stacked recurrent nodes (checked numerically too)
_LAYOUT_OPS = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"}


class _Graph:
    """Producers, constants and constant folding over one ONNX graph."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.model, self.graph = model, model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.producer = {out: n for n in self.graph.node for out in n.output}
        self.inputs = {i.name for i in self.graph.input} - set(self.consts)

    def ancestors(self, name):
        """Nodes computing `name`, in graph order; None when a graph input feeds it."""
        seen, stack = set(), [name]
        while stack:
            value = stack.pop()
            if value in self.consts or value == "":
                continue
            if value in self.inputs:
                return None
            node = self.producer.get(value)
            if node is None:
                return None
            if id(node) not in seen:
                seen.add(id(node))
                stack.extend(node.input)
        return [n for n in self.graph.node if id(n) in seen]

    def constant(self, name):
        """The value of `name` when no graph input feeds it (initializer, Constant node, or
        a constant subgraph such as the Slice/Concat an exporter writes); else None."""
        if name in self.consts:
            return self.consts[name]
        nodes = self.ancestors(name)
        if nodes is None:
            return None
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        used = {i for n in nodes for i in n.input}
        graph = helper.make_graph(nodes, "constant", [], [helper.make_tensor_value_info(name, 0, None)],
                                  [t for t in self.graph.initializer if t.name in used])
        sub = helper.make_model(graph, opset_imports=self.model.opset_import)
        value = ReferenceEvaluator(sub).run(None, {})[0]
        self.consts[name] = value
        return value


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _input(node, k):
    return node.input[k] if len(node.input) > k and node.input[k] else None


def _describe(node):
    return f"{node.op_type} node {node.name or node.output[0]!r}"


# ONNX activation names (compared lower-case) -> fastseq's
_ONNX_ACTS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "hardsigmoid": "hard_sigmoid",
              "softsign": "softsign"}
_ONNX_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_ONNX_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}


def _gate_acts(node, attrs, defaults):
    """The layer's activation arguments from `activations`, `activation_alpha/beta` and
    `clip`: {} for ONNX's defaults. The alpha and beta lists are consumed in the order
    of the activations that take one (ONNX's rule), over both directions."""
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])] or list(defaults)
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    n = len(defaults)
    if len(acts) % n:
        raise ValueError(f"{_describe(node)}: attribute 'activations' {acts}: expected {n} per direction")
    groups = []
    for i in range(0, len(acts), n):
        group = []
        for a in acts[i:i + n]:
            key = a.lower()
            if key not in _ONNX_ACTS:
                raise ValueError(f"{_describe(node)}: activation {a!r} has no fastseq form yet "
                                 f"(fastseq runs {sorted(_ONNX_ACTS)}, as ONNX spells them case-insensitively)")
            alpha = alphas.pop(0) if key in _ONNX_TAKES_ALPHA and alphas else None
            beta = betas.pop(0) if key in _ONNX_TAKES_BETA and betas else None
            group.append((_ONNX_ACTS[key], alpha, beta))
        groups.append(group)
    if any(g != groups[0] for g in groups):
        raise ValueError(f"{_describe(node)}: the two directions use different activations {acts}; "
                         "a fastseq layer runs the same in both")
    if alphas or betas:
        raise ValueError(f"{_describe(node)}: activation_alpha / activation_beta have more values than "
                         f"the activations {acts} take")
    names = tuple(a for a, _, _ in groups[0])
    out = {}
    if names != tuple(a.lower() for a in defaults) or any(al is not None or be is not None
                                                           for _, al, be in groups[0]):
        out.update(activations=names, activation_alpha=tuple(al for _, al, _ in groups[0]),
                   activation_beta=tuple(be for _, _, be in groups[0]))
    if "clip" in attrs:
        out["clip"] = float(attrs["clip"])
    return out


def _check_attrs(node, attrs):
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction == "reverse":
        raise ValueError(f"{_describe(node)}: direction='reverse' alone has no fastseq form yet "
                         "(layers run forward, or both ways with bidirectional)")
    defaults = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}[node.op_type]
    acts = _gate_acts(node, attrs, defaults)
    nonlinearity = "tanh"
    if node.op_type == "RNN" and acts.get("activations") == ("relu",) and acts["activation_alpha"] == (None,):
        nonlinearity = "relu"  # torch's RNN_RELU: its own cell, with fused kernels
        del acts["activations"], acts["activation_alpha"], acts["activation_beta"]
    return direction == "bidirectional", nonlinearity, acts


def _node_layer(g, node):
    """One recurrent node as (layer config, per-direction fastseq tensors)."""
    attrs = _attrs(node)
    bidirectional, nonlinearity, acts = _check_attrs(node, attrs)
    H = attrs.get("hidden_size")
    weights = {}
    for k, label in ((1, "W"), (2, "R"), (3, "B"), (7, "P")):
        if node.op_type != "LSTM" and k == 7:
            continue
        name = _input(node, k)
        if name is None:
            continue
        value = g.constant(name)
        if value is None:
            raise ValueError(f"{_describe(node)}: input {label} ({name!r}) is computed from graph inputs; "
                             "fastseq needs weights that are constants")
        weights[label] = np.asarray(value, dtype=np.float32)
    if "W" not in weights or "R" not in weights:
        raise ValueError(f"{_describe(node)}: expected inputs W and R")
    W, R = weights["W"], weights["R"]
    D = 2 if bidirectional else 1
    H = H or R.shape[-1]
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[node.op_type]
    if W.ndim != 3 or W.shape[:2] != (D, G * H) or R.shape != (D, G * H, H):
        raise ValueError(f"{_describe(node)}: W {W.shape} and R {R.shape} do not fit {D} direction(s) of "
                         f"{G} gates of hidden_size {H} (expected W [{D}, {G * H}, input], R [{D}, {G * H}, {H}])")
    for label, shape in (("B", (D, 2 * G * H)), ("P", (D, 3 * H))):
        if label in weights and weights[label].shape != shape:
            raise ValueError(f"{_describe(node)}: {label}: expected shape {shape}, got {weights[label].shape}")
    for k, label in ((5, "initial_h"), (6, "initial_c")):
        name = _input(node, k)
        value = None if name is None else g.constant(name)
        if value is not None and np.any(value != 0):
            raise ValueError(f"{_describe(node)}: {label} is a non-zero constant; fastseq layers start from "
                             "zeros or from the hx you pass: pass it as hx")
    I = W.shape[2]
    coupled = bool(attrs.get("input_forget", 0))
    cfg = dict(input_size=I, hidden_size=H, bidirectional=bidirectional, bias="B" in weights,
               batch_first=_batch_first(g, node, attrs.get("layout", 0)), **acts)
    if node.op_type == "LSTM":
        order = _CIFG_ORDER if coupled else _LSTM_ORDER
        cfg.update(kind="LSTM", coupled=coupled, peephole="P" in weights)
    elif node.op_type == "GRU":
        order = _GRU_ORDER
        cfg.update(kind="GRU", reset_after=bool(attrs.get("linear_before_reset", 0)))
    else:
        order = (0,)
        cfg.update(kind="RNN", nonlinearity=nonlinearity)

    def gates(m):
        blocks = m.reshape(len(m) // H, H, *m.shape[1:])
        return np.concatenate([blocks[i] for i in order])

    directions = []
    for d in range(D):
        t = {"weight_ih": gates(W[d]), "weight_hh": gates(R[d])}
        if "B" in weights:
            n = W.shape[1]
            t["bias_ih"], t["bias_hh"] = gates(weights["B"][d][:n]), gates(weights["B"][d][n:])
        if "P" in weights:
            p_i, p_o, p_f = weights["P"][d].reshape(3, H)
            t.update(peephole_i=p_i, peephole_f=p_f, peephole_o=p_o)
        directions.append(t)
    return cfg, directions


def _data_path(g, start, end):
    """The nodes from value `end` back to value `start`, following each op's data input,
    when they are all layout ops; else None."""
    path, value = [], start
    while value != end:
        node = g.producer.get(value)
        if node is None or node.op_type not in _LAYOUT_OPS:
            return None
        path.append(node)
        value = node.input[0]
    return path


def _probe_inputs(g):
    """Random values for the graph inputs: declared sizes, 2 where a size is symbolic."""
    from onnx import helper

    rng = np.random.default_rng(0)
    feeds = {}
    for i in g.graph.input:
        if i.name in g.inputs:
            dims = [d.dim_value if d.dim_value > 0 else 2 for d in i.type.tensor_type.shape.dim]
            dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
            feeds[i.name] = rng.standard_normal(dims).astype(dtype) if dtype.kind == "f" else np.full(dims, 2, dtype)
    return feeds


def _stacked_after(g, below, above):
    """Whether `above` reads `below`'s output Y through layout ops only, and they turn
    [T, D, B, H] into [T, B, D*H] (checked by running the graph on random inputs)."""
    if not below.output or not below.output[0] or not _data_path(g, above.input[0], below.output[0]):
        return False
    from onnx.reference import ReferenceEvaluator

    probe = type(g.model)()
    probe.CopyFrom(g.model)
    for node in probe.graph.node:   # onnx's reference RNN lacks Relu; the check needs layouts only
        if node.op_type == "RNN":
            acts = [a for a in node.attribute if a.name == "activations"]
            for a in acts:
                node.attribute.remove(a)
    try:
        values = ReferenceEvaluator(probe).run(None, _probe_inputs(g), intermediate=True)
    except Exception:  # the reference evaluator cannot run the graph: keep the nodes apart
        return False
    y, x = values[below.output[0]], values[above.input[0]]
    T, D, B, H = y.shape
    return x.shape == (T, B, D * H) and np.array_equal(x, y.transpose(0, 2, 1, 3).reshape(T, B, D * H))


def _batch_first(g, node, layout):
    """layout 1, or a time-major node whose X is a graph input transposed [B, T, I] -> [T, B, I]
    (what torch exports for batch_first=True)."""
    if layout:
        return True
    producer = g.producer.get(node.input[0])
    return (producer is not None and producer.op_type == "Transpose"
            and list(_attrs(producer).get("perm", [])) == [1, 0, 2] and producer.input[0] in g.inputs)


def _build(cfgs, tensors):
    """One fastseq layer from a stack of compatible nodes."""
    cfg = dict(cfgs[0])
    kind = cfg.pop("kind")
    cfg["num_layers"] = len(cfgs)
    layer = getattr(layers, kind)(**cfg)
    sd = {}
    for l, directions in enumerate(tensors):
        for d, t in enumerate(directions):
            for k, v in t.items():
                sd[f"{k}_l{l}" + ("_reverse" if d else "")] = v
    layer.load_state_dict(sd)
    return layer


def _stackable(a, b):
    """Same options (the first layer's input layout rules the stack) and matching sizes."""
    def options(cfg):
        return {k: v for k, v in cfg.items() if k not in ("input_size", "batch_first")}

    same = options(a) == options(b)
    return same and b["input_size"] == a["hidden_size"] * (2 if a["bidirectional"] else 1)


def from_onnx(source, *, names=False):
    """Convert the LSTM, GRU and RNN nodes of an ONNX model to fastseq layers.

    Parameters
    ----------
    source : str, os.PathLike or onnx.ModelProto
        The model, or the path of a .onnx file.
    names : bool
        Return [(node name, layer), ...] (nodes stacked into one layer are named by the
        first) instead of the layers.

    Returns
    -------
    fastseq layer or list
        One layer when the recurrent nodes form a stack (each reads the one before through
        layout ops only, same kind and options: a torch-exported multi-layer or
        bidirectional LSTM); else a list of layers in graph order. The layer takes the
        node's X layout (`layout` attribute: 0 time-major, 1 batch-first); `sequence_lens`
        becomes the `lengths` argument of a call, a state input the `hx` argument.

    Raises
    ------
    ValueError
        No recurrent node, weights that are not constants, or attributes fastseq cannot
        represent yet (activations other than Sigmoid, Tanh, Relu, HardSigmoid and
        Softsign -- e.g. Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, Elu, Softplus --,
        different activations per direction, `direction='reverse'`, non-zero constant
        initial states); the message names the node. `activations`,
        `activation_alpha/beta` and `clip` map onto the layer's arguments of those names.
    """
    import onnx

    model = onnx.load(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else source
    g = _Graph(model)
    nodes = [n for n in model.graph.node if n.op_type in _OPS and n.domain in ("", "ai.onnx")]
    if not nodes:
        raise ValueError(f"from_onnx: the graph has no LSTM, GRU or RNN node (ops: "
                         f"{sorted({n.op_type for n in model.graph.node})})")
    converted = [(n, *_node_layer(g, n)) for n in nodes]
    stacked = all(_stackable(converted[i - 1][1], converted[i][1]) and _stacked_after(g, nodes[i - 1], nodes[i])
                  for i in range(1, len(nodes)))
    if stacked:
        named = [(nodes[0].name or nodes[0].output[0], _build([c for _, c, _ in converted], [t for _, _, t in converted]))]
    else:
        named = [(n.name or n.output[0], _build([c], [t])) for n, c, t in converted]
    if names:
        return named
    return named[0][1] if len(named) == 1 else [layer for _, layer in named]
