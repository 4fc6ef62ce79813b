"""Tests written where a mutation of tools/mutations.toml survived the suite: each names the
mutation it guards against. References are the real thing, computed here: the EdgeML
package (edgeml-pytorch 0.3.0) under torch autograd, ONNX Runtime."""
import numpy as np
import pytest

import fastseq
from _requires import edgeml_rnn, require

torch = require("torch")
rnn = edgeml_rnn()

REL, ABS = 1e-4, 1e-5   # test_backward_cells' bounds: max |ours - autograd| vs max |autograd|

# EdgeML initialises alpha = -3, beta = 3: sigma'(alpha) == sigma'(beta), so a backward that
# takes one scalar's derivative for the other's passes there. These differ.
SCALARS = {"FastRNNCell": {"alpha": -2.0, "beta": 1.2}, "FastGRNNCell": {"zeta": 0.7, "nu": -2.5}}
# the fastseq name of each EdgeML parameter, and whether EdgeML stores it transposed
# (edgeml-pytorch 0.3.0: FastRNNCell row form x @ W, FastGRNNCell torch form x @ W.T)
NAMES = {
    "FastRNNCell": {"W": ("weight_ih_l0", True), "U": ("weight_hh_l0", True), "bias_update": ("bias_l0", False),
                    "alpha": ("alpha_l0", False), "beta": ("beta_l0", False)},
    "FastGRNNCell": {"W": ("weight_ih_l0", False), "U": ("weight_hh_l0", False),
                     "bias_gate": ("bias_gate_l0", False), "bias_update": ("bias_update_l0", False),
                     "zeta": ("zeta_l0", False), "nu": ("nu_l0", False)},
}


def close(name, got, want):
    got, want = np.asarray(got, dtype=np.float64), want.detach().numpy().astype(np.float64)
    assert got.size == want.size, f"{name}: {got.shape} vs {want.shape}"
    got = got.reshape(want.shape)
    err, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
    assert err <= max(REL * scale, ABS), f"{name}: max abs err {err:.3g}, scale {scale:.3g}"


@pytest.mark.parametrize("cell_name", sorted(SCALARS))
def test_edgeml_gradients_with_unrelated_scalars(each_isa, cell_name):
    """Guards fastrnn-backward-beta-grad (and its FastGRNN twin): every gradient, the
    scalars' included, against autograd through the EdgeML cell, with sigma'(alpha) !=
    sigma'(beta) and sigma'(zeta) != sigma'(nu)."""
    I, H, T, B = 5, 9, 11, 3
    torch.manual_seed(7)
    cell = getattr(rnn, cell_name)(I, H)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if name in SCALARS[cell_name]:
                p.fill_(SCALARS[cell_name][name])
            else:
                p.copy_(0.4 * torch.randn(p.shape))
    x = torch.randn(T, B, I, requires_grad=True)
    y = rnn.BaseRNN(cell, batch_first=False)(x)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()

    layer = fastseq.from_edgeml(cell)
    for isa in each_isa():
        g = layer.backward(x.detach().numpy(), gy.numpy())
        close(f"{isa} input", g["input"], x.grad)
        for name, p in cell.named_parameters():
            ours, transposed = NAMES[cell_name][name]
            close(f"{isa} {name}", g[ours].T if transposed else g[ours], p.grad)


def test_onnx_recurrent_weight_with_a_wrong_last_axis_is_refused():
    """Guards onnx-shape-check: R [1, 4H, H + 1] fits 4 gates of H rows but not H inputs.
    ONNX Runtime refuses the model; fastseq must too, naming the node and the shapes."""
    require("onnx")
    ort = require("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    T, B, I, H = 4, 2, 3, 5
    rng = np.random.default_rng(0)
    weights = {"W": rng.standard_normal((1, 4 * H, I)), "R": rng.standard_normal((1, 4 * H, H + 1))}
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=H)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(Exception):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"X": np.zeros((T, B, I), np.float32)})
    with pytest.raises(ValueError, match=rf"LSTM.*R \(1, {4 * H}, {H + 1}\).*expected .*R \[1, {4 * H}, {H}\]"):
        fastseq.from_onnx(model)
