"""PyTorch importer: eager, scripted and traced modules. torch is imported by the
functions, never at `import fastseq`."""
from types import SimpleNamespace

from .. import cells, layers, tree

_TORCH_KINDS = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
# aten op of a traced sequence module -> (kind, RNN nonlinearity)
_ATEN_SEQUENCE = {"aten::lstm": ("LSTM", None), "aten::gru": ("GRU", None),
                  "aten::rnn_tanh": ("RNN", "tanh"), "aten::rnn_relu": ("RNN", "relu")}


def _common(module):
    return dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                bidirectional=module.bidirectional)


def _builders():
    """torch class name -> function building the fastseq object (without weights) from an
    object with the module's constructor facts as attributes."""
    def lstm(m):
        return layers.LSTM(m.input_size, m.hidden_size, proj_size=m.proj_size, **_common(m))

    return {
        "LSTM": lstm,
        "GRU": lambda m: layers.GRU(m.input_size, m.hidden_size, **_common(m)),
        "RNN": lambda m: layers.RNN(m.input_size, m.hidden_size, nonlinearity=m.nonlinearity, **_common(m)),
        "LSTMCell": lambda m: cells.LSTMCell(m.input_size, m.hidden_size, bias=m.bias),
        "GRUCell": lambda m: cells.GRUCell(m.input_size, m.hidden_size, bias=m.bias),
        "RNNCell": lambda m: cells.RNNCell(m.input_size, m.hidden_size, bias=m.bias,
                                           nonlinearity=m.nonlinearity),
    }


def _reference_builders():
    """fastseq.torch module types -> builder."""
    from .. import torch as reference

    def fastrnn(m):
        return layers.FastRNN(m.input_size, m.hidden_size, nonlinearity=m.nonlinearity,
                              nonlinearity_alpha=m.nonlinearity_alpha, nonlinearity_beta=m.nonlinearity_beta,
                              w_rank=m.w_rank, u_rank=m.u_rank, **_common(m))

    def fastgrnn(m):
        return layers.FastGRNN(m.input_size, m.hidden_size, gate_nonlinearity=m.gate_nonlinearity,
                               update_nonlinearity=m.update_nonlinearity, gate_alpha=m.gate_alpha,
                               gate_beta=m.gate_beta, update_alpha=m.update_alpha, update_beta=m.update_beta,
                               w_rank=m.w_rank, u_rank=m.u_rank, **_common(m))

    def ugrnn(m):
        return layers.UGRNN(m.input_size, m.hidden_size, w_rank=m.w_rank, u_rank=m.u_rank,
                            activations=m.activations, activation_alpha=m.activation_alpha,
                            activation_beta=m.activation_beta, **_common(m))

    return {
        reference.FastRNN: fastrnn,
        reference.FastGRNN: fastgrnn,
        reference.UGRNN: ugrnn,
        reference.PeepholeLSTM: lambda m: layers.LSTM(m.input_size, m.hidden_size, peephole=True, **_common(m)),
        reference.CoupledLSTM: lambda m: layers.LSTM(m.input_size, m.hidden_size, coupled=True, **_common(m)),
        reference.ResetBeforeGRU: lambda m: layers.GRU(m.input_size, m.hidden_size, reset_after=False, **_common(m)),
        # tree networks (fastseq.tree): the reference module names its own configuration
        reference.ChildSumTreeLSTM: lambda m: tree.TreeLSTM(**m.fastseq_config()),
        reference.NaryTreeLSTM: lambda m: tree.TreeLSTM(**m.fastseq_config()),
        reference.RecursiveNN: lambda m: tree.RecursiveNN(**m.fastseq_config()),
    }


def _graph_nodes(module):
    graph = getattr(module, "inlined_graph", None)
    if graph is None:
        graph = module.graph
    return list(graph.nodes())


def _constant(value):
    node = value.node()
    return value.toIValue() if node.kind() == "prim::Constant" else None


def _traced_facts(module, kind, sd):
    """Constructor facts of a traced module (which keeps no attributes): sizes from the
    weights, the rest from the aten op its forward calls."""
    if kind.endswith("Cell"):
        facts = dict(input_size=sd["weight_ih"].shape[1], hidden_size=sd["weight_hh"].shape[1],
                     bias="bias_ih" in sd)
        if kind == "RNNCell":
            ops = {n.kind() for n in _graph_nodes(module)}
            acts = [a for a in ("tanh", "relu") if f"aten::{a}" in ops or f"aten::{a}_" in ops]
            if len(acts) != 1:
                raise ValueError("a traced RNNCell: cannot tell its nonlinearity from the graph "
                                 f"(tanh or relu ops found: {acts}); script it instead of tracing")
            facts["nonlinearity"] = acts[0]
        return facts
    node = next((n for n in _graph_nodes(module) if n.kind() in _ATEN_SEQUENCE), None)
    if node is None or _ATEN_SEQUENCE[node.kind()][0] != kind:
        raise ValueError(f"a traced {kind}: its graph has no {kind} op to read batch_first from; "
                         "script the module (torch.jit.script) instead of tracing it")
    # aten::lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
    has_biases, num_layers, _, _, bidirectional, batch_first = (_constant(v) for v in list(node.inputs())[3:9])
    if None in (has_biases, num_layers, bidirectional, batch_first):
        raise ValueError(f"a traced {kind}: its {node.kind()} op has non-constant arguments")
    hr = sd.get("weight_hr_l0")
    facts = dict(input_size=sd["weight_ih_l0"].shape[1],
                 hidden_size=hr.shape[1] if hr is not None else sd["weight_hh_l0"].shape[1],
                 proj_size=hr.shape[0] if hr is not None else 0, num_layers=num_layers,
                 bias=has_biases, batch_first=batch_first, bidirectional=bidirectional)
    if kind == "RNN":
        facts["nonlinearity"] = _ATEN_SEQUENCE[node.kind()][1]
    return facts


def _script_facts(module):
    """(kind, facts) of a TorchScript nn.LSTM / GRU / RNN or cell, scripted or traced."""
    kind = module.original_name
    if kind not in _TORCH_KINDS:
        raise TypeError(f"from_torch: a TorchScript {kind}; expected a scripted or traced nn.LSTM, "
                        "nn.GRU, nn.RNN or one of their Cell forms")
    names = ["input_size", "hidden_size", "bias"]
    if not kind.endswith("Cell"):
        names += ["num_layers", "batch_first", "bidirectional"] + (["proj_size"] if kind == "LSTM" else [])
    if kind.startswith("RNN"):
        names.append("nonlinearity")
    sd = module.state_dict()
    if all(hasattr(module, n) for n in names):   # scripted: the attributes are kept
        return kind, {n: getattr(module, n) for n in names}
    return kind, _traced_facts(module, kind, sd)


def from_torch(module):
    """Convert a torch module to the equivalent fastseq layer or cell, weights included.

    Parameters
    ----------
    module : torch.nn.Module or torch.jit.ScriptModule
        nn.LSTM (with proj_size), nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell (eager,
        scripted with torch.jit.script, traced with torch.jit.trace, or loaded with
        torch.jit.load), or a reference module of fastseq.torch (FastRNN, FastGRNN,
        PeepholeLSTM, CoupledLSTM, ResetBeforeGRU, Seq2Seq; ChildSumTreeLSTM, NaryTreeLSTM and
        RecursiveNN give a TreeLSTM or RecursiveNN).

    Returns
    -------
    fastseq layer or cell
        LSTM, GRU, RNN, FastRNN, FastGRNN or UGRNN; LSTMCell, GRUCell or RNNCell for a cell;
        fastseq.Seq2Seq for a fastseq.torch.Seq2Seq.
        Dropout is a training-time effect and is dropped.
    """
    import torch

    from ..torch import Seq2Seq as ReferenceSeq2Seq
    if isinstance(module, ReferenceSeq2Seq):
        from ..seq2seq import Seq2Seq
        return Seq2Seq.from_torch(module)
    from .. import torch as reference
    if isinstance(module, reference.ResidualStack):
        return _from_residual_stack(module)
    if isinstance(module, torch.jit.ScriptModule):
        kind, facts = _script_facts(module)
        target = _builders()[kind](SimpleNamespace(**facts))
    else:
        build = _reference_builders().get(type(module))
        name = type(module).__name__
        if build is None and name in _TORCH_KINDS and type(module) is getattr(torch.nn, name):
            build = _builders()[name]
        if build is None:
            raise TypeError("from_torch: expected nn.LSTM, nn.GRU, nn.RNN, their Cell forms (eager or "
                            f"TorchScript) or a fastseq.torch module, got {type(module).__name__}")
        target = build(module)
    target.load_state_dict(module.state_dict())
    return target


def _from_residual_stack(stack):
    """A fastseq layer with residual=True from a fastseq.torch.ResidualStack: its layers
    converted one by one, their weights renamed to layer k."""
    parts = [from_torch(m) for m in stack.layers]
    first = parts[0]
    target = type(first)(**{**first.config(), "num_layers": len(parts), "residual": True})
    target.load_state_dict({key.replace("_l0", f"_l{k}"): v for k, part in enumerate(parts)
                            for key, v in part.state_dict().items()})
    return target
