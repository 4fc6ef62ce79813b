"""fastseq.from_onnx against ONNX Runtime: files exported by torch.onnx.export (both
exporters) and graphs built with onnx.helper (every direction fastseq has, both GRU forms,
peepholes, coupled gates, sequence_lens, weights computed by constant subgraphs).
Target: |fastseq - ORT| <= 1e-5 * max(1, |ORT|).
"""
import numpy as np
import pytest

import fastseq
from _requires import require

onnx = require("onnx")
ort = require("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def close(got, ref):
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.all(np.abs(got - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))


def run_ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


# ---- graphs built with onnx.helper ----------------------------------------------------------

T, B, I, H = 7, 3, 5, 6
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_model(op, D=1, seed=0, bias=True, peephole=False, lens=False, weights="initializer",
                    extra_nodes=(), **attrs):
    """A graph with one `op` node: X [T, B, I] (and sequence_lens) in, Y and Y_h out."""
    rng = np.random.default_rng(seed)
    G = GATES[op]
    arrays = {"W": 0.4 * rng.standard_normal((D, G * H, I)), "R": 0.4 * rng.standard_normal((D, G * H, H))}
    if bias:
        arrays["B"] = 0.3 * rng.standard_normal((D, 2 * G * H))
    if peephole:
        arrays["P"] = 0.5 * rng.standard_normal((D, 3 * H))
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    inits, nodes = [], list(extra_nodes)
    for name, value in arrays.items():
        if weights == "initializer":
            inits.append(numpy_helper.from_array(value, name))
        elif weights == "constant":
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value)))
        else:   # computed: two halves sliced off one initializer and concatenated, as exporters do
            flat = np.concatenate([value.reshape(-1), np.zeros(3, np.float32)])
            half = value.size // 2
            inits += [numpy_helper.from_array(flat, name + "_flat"),
                      numpy_helper.from_array(np.array(value.shape, np.int64), name + "_shape")]
            for part, (lo, hi) in (("a", (0, half)), ("b", (half, value.size))):
                inits += [numpy_helper.from_array(np.array([lo]), f"{name}_{part}_lo"),
                          numpy_helper.from_array(np.array([hi]), f"{name}_{part}_hi")]
                nodes.append(helper.make_node("Slice", [name + "_flat", f"{name}_{part}_lo", f"{name}_{part}_hi"],
                                              [f"{name}_{part}"]))
            nodes += [helper.make_node("Concat", [name + "_a", name + "_b"], [name + "_cat"], axis=0),
                      helper.make_node("Reshape", [name + "_cat", name + "_shape"], [name])]
    inputs = ["X", "W", "R", "B" if bias else "", "seq" if lens else ""]
    if peephole:
        inputs += ["", "", "P"]
    direction = {1: "forward", 2: "bidirectional"}[D]
    nodes.append(helper.make_node(op, inputs, ["Y", "Y_h"], hidden_size=H, direction=direction, **attrs))
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])]
    if lens:
        graph_inputs.append(helper.make_tensor_value_info("seq", TensorProto.INT32, [B]))
    graph = helper.make_graph(nodes, "g", graph_inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def x_input(seed=1):
    return np.random.default_rng(seed).standard_normal((T, B, I)).astype(np.float32)


def check_against_ort(model, lengths=None):
    x = x_input()
    feeds = {"X": x}
    if lengths is not None:
        feeds["seq"] = np.array(lengths, np.int32)
    y_ref, h_ref = run_ort(model, feeds)
    layer = fastseq.from_onnx(model)
    out = layer(x, lengths=lengths)
    y, h_n = out[0], out[1][0] if isinstance(layer, fastseq.LSTM) else out[1]
    D = 2 if layer.bidirectional else 1
    close(y, y_ref.transpose(0, 2, 1, 3).reshape(T, B, D * H))   # ONNX Y: [T, D, B, H]
    close(h_n, h_ref)
    return layer


@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("case", [
    dict(op="LSTM"), dict(op="LSTM", peephole=True), dict(op="LSTM", input_forget=1),
    dict(op="LSTM", peephole=True, input_forget=1, bias=False),
    dict(op="GRU", linear_before_reset=1), dict(op="GRU", linear_before_reset=0),
    dict(op="GRU", bias=False), dict(op="RNN"), dict(op="RNN", activations=["Relu"])])
def test_helper_graphs_match_ort(D, case):
    case = dict(case)
    if case.get("activations") and D == 2:
        case["activations"] = case["activations"] * 2
    layer = check_against_ort(recurrent_model(D=D, **case))
    assert layer.bidirectional == (D == 2)
    if case.get("op") == "GRU":
        assert layer.reset_after == bool(case.get("linear_before_reset", 0))
    if case.get("input_forget"):
        assert layer.coupled


@pytest.mark.parametrize("weights", ["constant", "computed"])
def test_weights_from_constant_nodes_and_constant_subgraphs(weights):
    check_against_ort(recurrent_model("LSTM", D=2, peephole=True, weights=weights))
    check_against_ort(recurrent_model("GRU", weights=weights, linear_before_reset=1))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_sequence_lens_become_lengths(op):
    check_against_ort(recurrent_model(op, D=2, lens=True), lengths=[T, 2, 5])


def test_zero_initial_state_initializer_is_accepted_and_nonzero_is_an_error():
    model = recurrent_model("GRU", linear_before_reset=1)
    node = model.graph.node[-1]
    node.input.extend(["", "h0"] if len(node.input) == 4 else ["h0"])
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1, B, H), np.float32), "h0"))
    check_against_ort(model)
    model.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.full((1, B, H), 0.5, np.float32), "h0"))
    with pytest.raises(ValueError, match="initial_h is a non-zero constant.*pass it as hx"):
        fastseq.from_onnx(model)


@pytest.mark.parametrize("attrs, message", [
    (dict(direction="reverse"), "direction='reverse'"),
    (dict(activations=["Elu", "Tanh", "Tanh"]), "activation 'Elu' has no fastseq form"),
    (dict(activations=["Sigmoid", "Affine", "Tanh"]), "activation 'Affine' has no fastseq form"),
    (dict(activations=["Sigmoid", "Tanh", "ThresholdedRelu"]), "activation 'ThresholdedRelu'")])
def test_what_fastseq_cannot_represent_is_named(attrs, message):
    model = recurrent_model("LSTM")
    node = model.graph.node[-1]
    node.name = "enc_lstm"
    for a in [a for a in node.attribute if a.name in attrs]:
        node.attribute.remove(a)
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    with pytest.raises(ValueError, match=f"LSTM node 'enc_lstm'.*{message}"):
        fastseq.from_onnx(model)


def test_weights_of_the_wrong_size_are_refused():
    model = recurrent_model("RNN")
    model.graph.node[-1].op_type = "GRU"   # W [1, H, I] for a GRU, whose W is [1, 3H, I]
    with pytest.raises(ValueError, match="GRU node.*do not fit"):
        fastseq.from_onnx(model)


def test_unconnected_nodes_come_back_as_a_list_in_graph_order():
    a = recurrent_model("LSTM", seed=1)
    b = recurrent_model("GRU", seed=2, linear_before_reset=1)
    for node in b.graph.node:
        node.input[:] = [("X2" if v == "X" else v + "_b" if v else v) for v in node.input]
        node.output[:] = [v + "_b" for v in node.output]
    for t in list(b.graph.initializer) + list(b.graph.output):
        t.name += "_b"
    graph = a.graph
    graph.node.extend(b.graph.node)
    graph.initializer.extend(b.graph.initializer)
    graph.output.extend(b.graph.output)
    graph.input.append(helper.make_tensor_value_info("X2", TensorProto.FLOAT, [T, B, I]))
    got = fastseq.from_onnx(a)
    assert [type(layer) for layer in got] == [fastseq.LSTM, fastseq.GRU]
    x, x2 = x_input(1), x_input(2)
    y, _, y2, _ = run_ort(a, {"X": x, "X2": x2})
    close(got[0](x)[0], y[:, 0])
    close(got[1](x2)[0], y2[:, 0])


# ---- files exported by torch ------------------------------------------------------------------

torch_cases = [
    ("LSTM", dict(num_layers=2, bidirectional=True)), ("LSTM", dict(batch_first=True, num_layers=2)),
    ("GRU", dict(num_layers=3)), ("GRU", dict(bidirectional=True, bias=False)),
    ("RNN", dict(nonlinearity="relu", num_layers=2)), ("RNN", dict(bidirectional=True))]


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("kind, kwargs", torch_cases)
def test_torch_exports_match_ort(tmp_path, dynamo, kind, kwargs):
    torch = require("torch")
    if dynamo:
        require("onnxscript")
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(I, H, **kwargs).eval()
    shape = (B, T, I) if kwargs.get("batch_first") else (T, B, I)
    x = torch.randn(shape)
    path = tmp_path / "m.onnx"
    torch.onnx.export(module, (x,), str(path), dynamo=dynamo, input_names=["x"])
    model = onnx.load(str(path))
    if dynamo and kind == "RNN":   # the dynamo exporter unrolls nn.RNN into MatMul/Add steps
        if not any(n.op_type == "RNN" for n in model.graph.node):
            with pytest.raises(ValueError, match="no LSTM, GRU or RNN node"):
                fastseq.from_onnx(str(path))
            return
    layer = fastseq.from_onnx(str(path))
    assert not isinstance(layer, list), layer   # the torch stack is one fastseq layer
    assert (layer.num_layers, layer.bidirectional, layer.batch_first) == (
        kwargs.get("num_layers", 1), kwargs.get("bidirectional", False), kwargs.get("batch_first", False))
    ref = run_ort(model, {model.graph.input[0].name: x.numpy()})[0]
    close(layer(x.numpy())[0], ref)


def test_convert_command_takes_onnx(tmp_path):
    from fastseq.cli import main
    model = recurrent_model("LSTM", D=2, peephole=True)
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert main(["convert", str(tmp_path / "m.onnx"), str(tmp_path / "m.fsq"), "--batch-first"]) == 1
    assert main(["convert", str(tmp_path / "m.onnx"), str(tmp_path / "m.fsq"), "--time-major"]) == 0
    x = x_input()
    y_ref = run_ort(model, {"X": x})[0]
    close(fastseq.load(tmp_path / "m.fsq")(x)[0], y_ref.transpose(0, 2, 1, 3).reshape(T, B, 2 * H))


def test_import_fastseq_loads_no_framework():
    import subprocess
    import sys
    code = ("import sys, fastseq, fastseq.convert; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnx', 'onnxruntime', 'keras', "
            "'onnxscript', 'edgeml_pytorch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_convert_command_picks_one_of_several_nodes(tmp_path, capsys):
    from fastseq.cli import main
    a = recurrent_model("GRU", seed=3, linear_before_reset=1)
    a.graph.node[-1].name = "first"
    extra = helper.make_node("RNN", ["X", "W_rnn", "R_rnn"], ["Y2"], hidden_size=H, name="second")   # own weights
    a.graph.node.append(extra)
    a.graph.output.append(helper.make_tensor_value_info("Y2", TensorProto.FLOAT, None))
    rng = np.random.default_rng(5)
    a.graph.initializer.extend([
        numpy_helper.from_array((0.4 * rng.standard_normal((1, H, I))).astype(np.float32), "W_rnn"),
        numpy_helper.from_array((0.4 * rng.standard_normal((1, H, H))).astype(np.float32), "R_rnn")])
    onnx.save(a, str(tmp_path / "two.onnx"))
    assert main(["convert", str(tmp_path / "two.onnx"), str(tmp_path / "x.fsq")]) == 1
    assert "'first', 'second'" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "two.onnx"), str(tmp_path / "x.fsq"), "--module", "second"]) == 0
    x = x_input()
    y2 = run_ort(a, {"X": x})[2]
    close(fastseq.load(tmp_path / "x.fsq")(x)[0], y2[:, 0])


def test_batch_first_layout_attribute():
    """layout=1 ([B, T, I] in, Y [B, T, D, H]): ONNX Runtime refuses it ("Batchwise recurrent
    operations (layout == 1) are not supported"), so the reference is onnx's own evaluator."""
    from onnx.reference import ReferenceEvaluator
    model = recurrent_model("GRU", D=2, linear_before_reset=1, layout=1)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [B, T, I]))
    x = np.ascontiguousarray(x_input().transpose(1, 0, 2))
    y_ref, h_ref = ReferenceEvaluator(model).run(None, {"X": x})
    layer = fastseq.from_onnx(model)
    assert layer.batch_first
    y, h_n = layer(x)
    close(y, y_ref.reshape(B, T, 2 * H))
    close(h_n, h_ref.transpose(1, 0, 2))
