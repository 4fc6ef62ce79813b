"""The implementations the benchmark runs side by side: fastseq, torch, onnxruntime.

Each `make_<impl>(case, module, x, threads)` returns an `Impl`: `run()` does one timed unit
(one forward over the sequence, or all T steps of a stream) and `outputs()` returns the
same computation's results as numpy, {"y": [T, B, H], "h": [B, H], "c": [B, H] (LSTM)},
for the cross-check. All three start from a zero state and share the torch module's
weights. A missing or unable implementation raises `Skip(reason)`; nothing is ever faked.

A `train` case times one training step (forward, backward, optimizer step) of the layer
with a per-step linear head, MSE loss against `train_target(case)` and Adam(lr=TRAIN_LR);
`outputs()` takes one step from the initial weights on a fresh copy and returns the loss,
every gradient ("grad.<name>") and every updated parameter ("param.<name>").
"""
import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "FastRNN": 1, "FastGRNN": 1}
TRAIN_OUT = 1        # train cases: features of the per-step linear head (regression target)
TRAIN_LR = 1e-3
EDGEML_CELLS = ("FastRNN", "FastGRNN")   # torch peer: fastseq.torch's reference modules


class Skip(Exception):
    """This implementation cannot run this case here; the message says why."""


@dataclass
class Impl:
    run: Callable[[], object]
    outputs: Callable[[], dict]
    notes: list = field(default_factory=list)


def make_module(case, seed=0):
    """The torch module every implementation takes its weights from (torch default init)."""
    import torch
    torch.manual_seed(seed)
    if case.cell in EDGEML_CELLS:
        import fastseq.torch as reference
        return getattr(reference, case.cell)(case.I, case.H).eval()
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}.get(case.cell)
    if cls is None:
        raise Skip(f"no torch module for cell {case.cell}")
    if case.train:           # the layer plus a per-step linear head, both torch default init
        rnn = cls(case.I, case.H)
        return torch.nn.ModuleDict({"rnn": rnn, "head": torch.nn.Linear(case.H, TRAIN_OUT)})
    return cls(case.I, case.H).eval()


def train_target(case):
    """Per-step regression target [T, B, TRAIN_OUT] of a train case (same for every impl)."""
    return np.random.default_rng(2).standard_normal((case.T, case.B, TRAIN_OUT),
                                                    dtype=np.float32)


# ---------------------------------------------------------------------------- torch

def make_torch(case, module, x, threads):
    """torch at its best: of the formulations `_torch_candidates` writes for this case, the
    fastest here (timed on the spot; the note names it)."""
    import torch
    from torch_fast import pick_fastest
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x)
    if case.train:
        return _torch_train(module, xt, torch.from_numpy(train_target(case)))
    candidates = _torch_candidates(case, module, xt)
    name, timings = pick_fastest({n: (lambda f=f: f(False)) for n, f in candidates.items()})
    notes = [f"torch: {name}"]
    if len(timings) > 1:
        notes.append("picked as the fastest of " + ", ".join(
            f"{n} {t * 1e6:.0f} us" for n, t in timings.items()))
    chosen = candidates[name]

    def run():
        with torch.inference_mode():
            return chosen(False)

    def outputs():
        with torch.inference_mode():
            y, (h, c) = chosen(True)
        out = {"y": y.numpy(), "h": h.numpy()}
        if c is not None:
            out["c"] = c.numpy()
        return out

    return Impl(run, outputs, notes)


def _torch_candidates(case, module, xt):
    """{name: f(collect) -> (y [T, B, H] or None, (h [B, H], c [B, H] or None))}: ways to
    compute this case in torch, from a zero state."""
    import torch
    from torch_fast import scripted_edgeml
    zero = torch.zeros(case.B, case.H)
    scripted = scripted_edgeml(case.cell, module) if case.cell in EDGEML_CELLS else None

    def as_state(state):
        h, c = state if isinstance(state, tuple) else (state, None)
        return h[0], (None if c is None else c[0])

    if not case.stream:
        def whole(collect):                                # the module's own forward
            y, state = module(xt)
            return y, as_state(state)
        origin = "fastseq.torch reference" if case.cell in EDGEML_CELLS else "torch.nn"
        found = {f"{type(module).__name__} ({origin})": whole}
        if scripted is not None:
            def hoisted(collect):
                y, h = scripted(xt, zero)
                return y, (h, None)
            found["scripted, input projection hoisted"] = hoisted
        return found

    steps = [xt[t] for t in range(case.T)]                 # [B, I] each
    if case.cell in EDGEML_CELLS:
        def per_step_reference(collect):                   # the module's one-step call
            ys, h = [], zero[None]
            for s in steps:
                y, h = module(s[None], h)
                ys.append(y[0])
            return (torch.stack(ys) if collect else None), (h[0], None)
        found = {"fastseq.torch reference per step": per_step_reference}
        if scripted is not None:
            def scripted_step(collect):
                ys, h = [], zero
                for s in steps:
                    h = scripted.step(s, h)
                    ys.append(h)
                return (torch.stack(ys) if collect else None), (h, None)
            found["scripted step"] = scripted_step
        return found

    cls = {"LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell, "RNN": torch.nn.RNNCell}[case.cell]
    kw = {"nonlinearity": module.nonlinearity} if case.cell == "RNN" else {}
    cell = cls(case.I, case.H, **kw).eval()
    cell.load_state_dict({k[:-3]: v for k, v in module.state_dict().items()})   # drop "_l0"
    lstm = case.cell == "LSTM"

    def stepper(c):
        def stream(collect):
            ys, state = [], ((zero, zero) if lstm else zero)
            for s in steps:
                state = c(s, state)
                ys.append(state[0] if lstm else state)
            h, cs = state if lstm else (state, None)
            return (torch.stack(ys) if collect else None), (h, cs)
        return stream

    return {f"nn.{cls.__name__}": stepper(cell),
            f"scripted nn.{cls.__name__}": stepper(torch.jit.script(cell))}


def _torch_train(module, xt, target):
    import torch

    def trainer():                       # a fresh copy of the initial weights
        m = copy.deepcopy(module).train()
        opt = torch.optim.Adam(m.parameters(), lr=TRAIN_LR)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(m["head"](m["rnn"](xt)[0]), target)
            loss.backward()
            opt.step()
            return loss
        return m, step

    _, run = trainer()

    def outputs():
        m, step = trainer()
        out = {"loss": np.float32(step().item())}
        for name, p in m.named_parameters():
            name = name.replace("rnn.", "", 1)               # fastseq's state_dict names
            out["grad." + name] = p.grad.numpy().copy()
            out["param." + name] = p.detach().numpy().copy()
        return out

    return Impl(run, outputs)


def _as_outputs(case, y, state):
    """{"y", "h", "c"} from torch-shaped results (state: h_n or (h_n, c_n), each [1, B, H])."""
    h, c = state if isinstance(state, tuple) else (state, None)
    out = {"y": np.asarray(y, np.float32), "h": np.asarray(h, np.float32)[0]}
    if c is not None:
        out["c"] = np.asarray(c, np.float32)[0]
    return out


# ---------------------------------------------------------------------------- onnxruntime

# ONNX gate order: LSTM i,o,f,c (torch i,f,g,o); GRU z,r,h (torch r,z,n); RNN the same.
_ONNX_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}


def onnx_model(case, module, with_state):
    """One-layer ONNX LSTM/GRU/RNN holding `module`'s weights; T and B are dynamic.
    with_state: the graph takes initial_h (and initial_c) as inputs, for streaming."""
    from onnx import TensorProto, helper, numpy_helper
    H, I = case.H, case.I
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}

    def reorder(w):
        return np.concatenate([w[g * H:(g + 1) * H] for g in _ONNX_ORDER[case.cell]])

    W = reorder(sd["weight_ih_l0"])[None]                  # [1, G*H, I]
    R = reorder(sd["weight_hh_l0"])[None]                  # [1, G*H, H]
    B = np.concatenate([reorder(sd["bias_ih_l0"]), reorder(sd["bias_hh_l0"])])[None]
    inits = [numpy_helper.from_array(np.ascontiguousarray(a, np.float32), n)
             for a, n in ((W, "W"), (R, "R"), (B, "B"))]

    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f32, ["T", "N", I])]
    node_in = ["X", "W", "R", "B"]
    states = ["initial_h", "initial_c"] if case.cell == "LSTM" else ["initial_h"]
    if with_state:
        node_in += [""] + states                           # "" = no sequence_lens
        inputs += [helper.make_tensor_value_info(s, f32, [1, "N", H]) for s in states]
    outs = ["Y", "Y_h", "Y_c"] if case.cell == "LSTM" else ["Y", "Y_h"]
    outputs = [helper.make_tensor_value_info("Y", f32, ["T", 1, "N", H])]
    outputs += [helper.make_tensor_value_info(o, f32, [1, "N", H]) for o in outs[1:]]
    attrs = {"hidden_size": H}
    if case.cell == "GRU":
        attrs["linear_before_reset"] = 1                   # torch's GRU form
    node = helper.make_node(case.cell, node_in, outs, **attrs)
    graph = helper.make_graph([node], f"bench_{case.cell}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def ort_int8(model):
    """`model` through onnxruntime.quantization.quantize_dynamic(weight_type=QInt8): ORT's
    dynamic int8 (DynamicQuantizeLSTM for an LSTM; a GRU or RNN stays fp32)."""
    import os
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(model, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return onnx.load(dst)


def make_ort(case, module, x, threads, int8=False):
    if case.train:
        raise Skip("no training (inference runtime)")
    if case.cell in EDGEML_CELLS:
        raise Skip(f"ONNX has no {case.cell} operator")
    try:
        import onnxruntime as ort
        model = onnx_model(case, module, with_state=case.stream)   # needs the onnx package
        if int8:
            model = ort_int8(model)
    except ImportError as e:
        raise Skip(f"onnx/onnxruntime not importable ({e})")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    lstm = case.cell == "LSTM"
    zero = np.zeros((1, case.B, case.H), np.float32)
    steps = [np.ascontiguousarray(x[t:t + 1]) for t in range(case.T)]
    state_names = ["Y_h", "Y_c"] if lstm else ["Y_h"]

    def stream(collect):
        feeds = {"initial_h": zero, "initial_c": zero} if lstm else {"initial_h": zero}
        ys = []
        for s in steps:
            feeds["X"] = s
            st = sess.run(state_names, feeds)
            feeds["initial_h"] = st[0]
            if lstm:
                feeds["initial_c"] = st[1]
            if collect:
                ys.append(st[0])                           # y_t is h_t
        return ys, st

    def run():
        if case.stream:
            return stream(False)
        return sess.run(None, {"X": x})

    def outputs():
        if case.stream:
            ys, st = stream(True)
            return _as_outputs(case, np.concatenate(ys), tuple(st) if lstm else st[0])
        res = sess.run(None, {"X": x})
        return _as_outputs(case, res[0][:, 0], tuple(res[1:]) if lstm else res[1])

    return Impl(run, outputs)


# ---------------------------------------------------------------------------- fastseq

def make_fastseq(case, module, x, threads):
    try:
        import fastseq
    except ImportError as e:
        raise Skip(f"fastseq not importable ({e})")
    notes = []
    if hasattr(fastseq, "set_num_threads"):
        fastseq.set_num_threads(threads)
    else:
        notes.append("no set_num_threads")
    if case.train:
        return Impl(*_fastseq_train(case, module, x), notes)
    layer = fastseq.from_torch(module)
    steps = [np.ascontiguousarray(x[t]) for t in range(case.T)]     # [B, I] each

    if not case.stream:
        def run():
            return layer(x)

        def outputs():
            y, state = layer(x)
            return _as_outputs(case, y, state)
        return Impl(run, outputs, notes)

    if hasattr(layer, "stream"):
        st = layer.stream(batch=case.B)

        def stream(collect):
            if hasattr(st, "reset"):
                st.reset()
            if collect:                                    # step may return a view of
                return [np.array(st.step(s)) for s in steps]  # state it overwrites next
            for s in steps:
                st.step(s)

        def outputs():
            ys = stream(True)
            y = np.stack([np.asarray(v, np.float32).reshape(case.B, -1) for v in ys])
            return _as_outputs(case, y, st.state)          # states [1, B, H], as torch's
        return Impl(lambda: stream(False), outputs, notes)

    notes.append("no stream API")                          # layer(x_t[None], hx) per step
    seq = [np.ascontiguousarray(x[t:t + 1]) for t in range(case.T)]

    def stream_fallback(collect):
        hx, ys = None, []
        for s in seq:
            y, hx = layer(s, hx)
            if collect:
                ys.append(y)
        return ys, hx

    def outputs():
        ys, hx = stream_fallback(True)
        return _as_outputs(case, np.concatenate(ys), hx)
    return Impl(lambda: stream_fallback(False), outputs, notes)


def _fastseq_train(case, module, x):
    """One step as fastseq.train.fit takes it (zero_grad, forward, loss, backward, step)."""
    import fastseq
    from fastseq import train
    target = train_target(case)
    head_sd = {k: v.detach().numpy() for k, v in module["head"].state_dict().items()}

    def trainer():                       # a fresh copy of the initial weights
        head = train.PerStepLinear(case.H, TRAIN_OUT)
        head.load_state_dict(head_sd)
        model = train.SequenceModel(fastseq.from_torch(module["rnn"]), head)
        loss_fn, opt = train.MSELoss(), train.Adam(model, lr=TRAIN_LR)

        def step():
            model.zero_grad()
            pred, _ = model.forward(x)
            loss, grad = loss_fn(pred, target)
            model.backward(grad)
            opt.step()
            return loss
        return model, step

    _, run = trainer()

    def outputs():
        model, step = trainer()
        before = model.state_dict()
        if not np.array_equal(np.concatenate([v.ravel() for v in before.values()]),
                              model.params):                  # how to name model.grads
            raise RuntimeError("model.params is not laid out like state_dict()")
        out = {"loss": np.float32(step())}
        off = 0
        for name, v in model.state_dict().items():
            out["grad." + name] = model.grads[off:off + v.size].reshape(v.shape).copy()
            out["param." + name] = v
            off += v.size
        return out

    return run, outputs


MAKERS = {"fastseq": make_fastseq, "torch": make_torch, "onnxruntime": make_ort}
