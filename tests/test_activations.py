"""Gate activations (`activations`, `activation_alpha/beta`, `clip`) of LSTM, GRU and RNN:
forward against ONNX Runtime (ONNX nodes built with onnx.helper, imported with
fastseq.from_onnx), on every ISA level; gradients against torch autograd on a small
functional torch reference written here; files, streams and argument checks.
Targets: forward |fastseq - ORT| <= 1e-5 * max(1, |ORT|); gradients <= 1e-4 relative."""
import numpy as np
import pytest

import fastseq
from _requires import require

# ---- forward against ONNX Runtime -------------------------------------------------------

ONNX_CASES = [  # (op, node attributes, extra recurrent_model arguments)
    ("LSTM", dict(activations=["HardSigmoid", "Softsign", "Relu"], activation_alpha=[0.3], activation_beta=[0.4]), {}),
    ("LSTM", dict(clip=0.7), {}),
    ("LSTM", dict(activations=["HardSigmoid", "Tanh", "Softsign"], clip=0.6), dict(peephole=True)),
    ("LSTM", dict(activations=["Sigmoid", "Softsign", "HardSigmoid"], input_forget=1, clip=1.1), {}),
    ("GRU", dict(activations=["HardSigmoid", "Softsign"], linear_before_reset=1, clip=0.5), {}),
    ("GRU", dict(activations=["HardSigmoid", "Relu"], activation_alpha=[1 / 6], linear_before_reset=0), {}),
    ("GRU", dict(clip=0.4, linear_before_reset=0), dict(lens=True)),
    ("RNN", dict(activations=["Softsign"]), {}),
    ("RNN", dict(activations=["HardSigmoid"], activation_alpha=[0.25], activation_beta=[0.45], clip=0.3), {}),
]


def _onnx_model(op, attrs, extra, D):
    from test_import_onnx import recurrent_model
    attrs = dict(attrs)
    if D == 2:  # ONNX lists activations (and their alpha, beta) per direction
        for key in ("activations", "activation_alpha", "activation_beta"):
            if key in attrs:
                attrs[key] = attrs[key] * 2
    return recurrent_model(op, D=D, **extra, **attrs)


@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("op, attrs, extra", ONNX_CASES)
def test_forward_matches_onnx_runtime(op, attrs, extra, D, isa):
    require("onnx")
    require("onnxruntime")
    from test_import_onnx import T, close, run_ort, x_input
    model = _onnx_model(op, attrs, extra, D)
    x = 3.0 * x_input()  # large enough that clip and the hard functions' corners matter
    feeds = {"X": x}
    lengths = None
    if extra.get("lens"):
        lengths = [T, 2, 5]
        feeds["seq"] = np.array(lengths, np.int32)
    y_ref, h_ref = run_ort(model, feeds)
    layer = fastseq.from_onnx(model)
    out = layer(x, lengths=lengths)  # the `isa` fixture (conftest.py) sets each level in turn
    y, h_n = out[0], out[1][0] if op == "LSTM" else out[1]
    close(y, y_ref.transpose(0, 2, 1, 3).reshape(T, x.shape[1], -1))
    close(h_n, h_ref)
    # batch 1 takes the step-by-step path (the fused steps serve the usual activations only)
    y1 = layer(x[:, :1])[0]
    close(y1, y_ref[:, :, :1].transpose(0, 2, 1, 3).reshape(T, 1, -1))


def test_onnx_attributes_map_onto_the_layer_arguments():
    require("onnx")
    layer = fastseq.from_onnx(_onnx_model(*ONNX_CASES[0], D=1))
    assert layer.activations == ("hard_sigmoid", "softsign", "relu")
    assert layer.activation_alpha[0] == pytest.approx(0.3) and layer.activation_beta[0] == pytest.approx(0.4)
    assert layer.clip is None
    assert fastseq.from_onnx(_onnx_model(*ONNX_CASES[1], D=1)).clip == pytest.approx(0.7)


@pytest.mark.parametrize("attrs, message", [
    (dict(activations=["LeakyRelu", "Tanh", "Tanh"]), "'LeakyRelu' has no fastseq form"),
    (dict(activations=["Sigmoid", "ScaledTanh", "Tanh"]), "'ScaledTanh' has no fastseq form"),
    (dict(activations=["Sigmoid", "Tanh", "Softplus"]), "'Softplus' has no fastseq form"),
    (dict(activations=["Sigmoid", "Tanh", "Tanh"], activation_alpha=[0.2]), "more values than"),
    (dict(activations=["Sigmoid", "Tanh"]), "expected 3 per direction")])
def test_what_onnx_has_and_fastseq_lacks_is_named(attrs, message):
    require("onnx")
    with pytest.raises(ValueError, match=f"LSTM node .*{message}"):
        fastseq.from_onnx(_onnx_model("LSTM", attrs, {}, D=1))


def test_directions_with_different_activations_are_refused():
    require("onnx")
    model = _onnx_model("GRU", dict(activations=["Sigmoid", "Tanh", "HardSigmoid", "Tanh"]), {}, D=1)
    for a in model.graph.node[-1].attribute:
        if a.name == "direction":
            a.s = b"bidirectional"
    from test_import_onnx import recurrent_model
    model = recurrent_model("GRU", D=2, activations=["Sigmoid", "Tanh", "HardSigmoid", "Tanh"])
    with pytest.raises(ValueError, match="different activations"):
        fastseq.from_onnx(model)


# ---- gradients against torch autograd -----------------------------------------------------

def _torch_act(name, alpha, beta):
    import torch
    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
            "softsign": lambda x: x / (1 + x.abs()), "hard_tanh": lambda x: x.clamp(-1, 1),
            # ONNX HardSigmoid (not F.hardsigmoid, which is relu6(x + 3) / 6)
            "hard_sigmoid": lambda x: (alpha * x + beta).clamp(0, 1)}[name]


def _torch_forward(layer, params, x, hx):
    """The layer's forward in torch ops (one layer, one direction, time-major)."""
    import torch
    acts = [_torch_act(n, a, b) for n, a, b in zip(layer.activations, layer.activation_alpha,
                                                    layer.activation_beta)]
    clip = (lambda v: v.clamp(-layer.clip, layer.clip)) if layer.clip else (lambda v: v)
    f = lambda v: acts[0](clip(v))  # noqa: E731
    g = lambda v: acts[1](clip(v))  # noqa: E731
    W, U, b_i, b_h = (params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    H, ys = layer.hidden_size, []
    h, c = hx if isinstance(layer, fastseq.LSTM) else (hx, None)
    h, c = h[0], (c[0] if c is not None else None)
    for xt in x:
        gx, gh = xt @ W.T + b_i, h @ U.T + b_h
        if isinstance(layer, fastseq.LSTM):
            pre = gx + gh
            pi, pf, po = (params.get(f"peephole_{k}_l0") for k in "ifo")
            peep = (lambda p, v: 0 if p is None else p * v)  # noqa: E731
            if layer.coupled:
                i = f(pre[:, :H] + peep(pi, c))
                fg, gg, og_pre = 1 - i, g(pre[:, H:2 * H]), pre[:, 2 * H:]
            else:
                i = f(pre[:, :H] + peep(pi, c))
                fg, gg, og_pre = f(pre[:, H:2 * H] + peep(pf, c)), g(pre[:, 2 * H:3 * H]), pre[:, 3 * H:]
            c = fg * c + i * gg
            h = f(og_pre + peep(po, c)) * acts[2](c)
        elif isinstance(layer, fastseq.GRU):
            r = f(gx[:, :H] + gh[:, :H])
            z = f(gx[:, H:2 * H] + gh[:, H:2 * H])
            if layer.reset_after:
                n = g(gx[:, 2 * H:] + r * gh[:, 2 * H:])
            else:
                n = g(gx[:, 2 * H:] + (r * h) @ U[2 * H:].T + b_h[2 * H:])
            h = (1 - z) * n + z * h
        else:
            h = f(gx + gh)
        ys.append(h)
    y = torch.stack(ys)
    return (y, (h[None], c[None])) if c is not None else (y, h[None])


GRAD_CASES = {
    "lstm": lambda: fastseq.LSTM(4, 10, seed=1, activations=("hard_sigmoid", "softsign", "hard_tanh"),
                                 activation_alpha=(0.3, None, None), clip=2.5),
    "lstm_peephole": lambda: fastseq.LSTM(4, 9, seed=2, peephole=True, activations=("sigmoid", "relu", "softsign"),
                                          clip=1.5),
    "lstm_coupled": lambda: fastseq.LSTM(4, 9, seed=3, coupled=True, activations=("hard_sigmoid", "tanh", "tanh"),
                                         activation_alpha=(1 / 6, None, None)),
    "gru": lambda: fastseq.GRU(4, 11, seed=4, activations=("hard_sigmoid", "softsign"), clip=2.0),
    "gru_reset_before": lambda: fastseq.GRU(4, 11, seed=5, reset_after=False,
                                            activations=("hard_sigmoid", "hard_tanh")),
    "rnn": lambda: fastseq.RNN(4, 12, seed=6, activations=("softsign",), clip=1.0),
    "rnn_relu_hard": lambda: fastseq.RNN(4, 12, seed=7, nonlinearity="relu", activations=("hard_sigmoid",),
                                         activation_alpha=(0.4,), activation_beta=(0.3,)),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradients_match_torch_autograd(case, isa):
    torch = pytest.importorskip("torch")
    layer = GRAD_CASES[case]()
    T, B, rng = 6, 3, np.random.default_rng(8)
    x = (2.0 * rng.standard_normal((T, B, layer.input_size))).astype(np.float32)
    h0 = rng.standard_normal((1, B, layer.hidden_size)).astype(np.float32)
    lstm = isinstance(layer, fastseq.LSTM)
    hx = (h0, rng.standard_normal((1, B, layer.hidden_size)).astype(np.float32)) if lstm else h0
    params = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    tx = torch.tensor(x, requires_grad=True)
    thx = tuple(torch.tensor(v, requires_grad=True) for v in hx) if lstm else torch.tensor(hx, requires_grad=True)
    y, st = _torch_forward(layer, params, tx, thx)
    gy = torch.randn_like(y)
    gst = tuple(torch.randn_like(s) for s in st) if lstm else torch.randn_like(st)
    loss = (y * gy).sum() + (sum((s * g).sum() for s, g in zip(st, gst)) if lstm else (st * gst).sum())
    loss.backward()

    y_fs = layer(x, hx)[0]
    assert np.all(np.abs(y_fs - y.detach().numpy()) <= 1e-5 * np.maximum(1, np.abs(y.detach().numpy())))
    grads = layer.backward(x, gy.numpy(), hx=hx, grad_hn=tuple(g.numpy() for g in gst) if lstm else gst.numpy())
    want = {**{k: p.grad for k, p in params.items()}, "input": tx.grad}
    for name, ref in want.items():
        ref = ref.numpy()
        err = np.abs(np.asarray(grads[name]) - ref).max()
        assert err <= 1e-4 * max(np.abs(ref).max(), 1e-1), f"{name}: {err:.3g} vs scale {np.abs(ref).max():.3g}"
    got_hx = grads["hx"]
    for got, ref in zip(got_hx if lstm else (got_hx,), thx if lstm else (thx,)):
        ref = ref.grad.numpy()
        assert np.abs(np.asarray(got) - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1e-1)


# ---- files, streams, export, arguments ----------------------------------------------------

def test_save_load_stream_and_state_dict_keep_the_activations(tmp_path):
    layer = GRAD_CASES["lstm"]()
    path = tmp_path / "acts.fsq"
    fastseq.save(layer, path)
    loaded = fastseq.load(path)
    assert loaded.config() == layer.config()
    assert repr(loaded) == repr(layer)
    x = np.random.default_rng(0).standard_normal((5, 1, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])
    s = loaded.stream()
    steps = np.stack([s.step(x[t]) for t in range(5)])
    np.testing.assert_array_equal(steps, layer(x)[0])
    rebuilt = fastseq.LSTM(**layer.config())
    rebuilt.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(rebuilt(x)[0], layer(x)[0])
    assert fastseq.io.read(path).config["act_f"] == "hard_sigmoid"


def test_usual_activations_write_the_same_file_as_before(tmp_path):
    plain, same = fastseq.GRU(3, 5, seed=1), fastseq.GRU(3, 5, seed=1, activations=("sigmoid", "tanh"))
    fastseq.save(plain, tmp_path / "a.fsq")
    fastseq.save(same, tmp_path / "b.fsq")
    assert "act_f" not in fastseq.io.read(tmp_path / "a.fsq").config
    assert repr(same) == "GRU(3, 5)"


def test_repr_shows_only_what_differs():
    assert repr(fastseq.RNN(2, 3, nonlinearity="relu")) == "RNN(2, 3, nonlinearity='relu')"
    assert "activations=('sigmoid', 'softsign', 'tanh')" in repr(
        fastseq.LSTM(2, 3, activations=("sigmoid", "softsign", "tanh")))
    assert "clip=0.5" in repr(fastseq.GRU(2, 3, clip=0.5))


@pytest.mark.parametrize("kwargs, message", [
    (dict(activations=("sigmoid", "tanh")), "activations: expected 3 names"),
    (dict(activations=("sigmoid", "swish", "tanh")), r"activations\[1\]: expected one of"),
    (dict(activations=("sigmoid", "tanh", "tanh"), activation_alpha=(0.2, None, None)),
     r"activation_alpha\[0\]: sigmoid takes no parameter"),
    (dict(activations=("hard_sigmoid", "tanh", "tanh"), activation_beta=(float("nan"), None, None)),
     r"activation_beta\[0\]: expected a finite"),
    (dict(activation_alpha=(None, None)), "activation_alpha: expected 3 values"),
    (dict(clip=-1.0), "clip: expected None or a finite number > 0")])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastseq.LSTM(3, 4, **kwargs)


# ---- Keras 3 (torch backend) --------------------------------------------------------------

KERAS_CASES = [
    lambda kl: kl.LSTM(7, return_sequences=True, recurrent_activation="hard_sigmoid", activation="softsign"),
    lambda kl: kl.LSTM(7, return_sequences=True, activation="hard_tanh"),
    lambda kl: kl.GRU(7, return_sequences=True, recurrent_activation="hard_sigmoid", activation="relu"),
    lambda kl: kl.GRU(7, return_sequences=True, reset_after=False, recurrent_activation="hard_sigmoid"),
    lambda kl: kl.SimpleRNN(7, return_sequences=True, activation="softsign"),
    lambda kl: kl.SimpleRNN(7, return_sequences=True, activation="hard_sigmoid"),
    lambda kl: kl.Bidirectional(kl.LSTM(7, return_sequences=True, recurrent_activation="hard_sigmoid")),
]


@pytest.mark.parametrize("make", KERAS_CASES)
def test_keras_activations_match_keras(make):
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    require("torch")
    keras = require("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs on the torch backend here")
    from test_import_keras import built, close, x_input
    model = built(make(keras.layers))
    layer = fastseq.from_keras(model.layers[-1])
    x = 3.0 * x_input()  # into the hard functions' flat parts
    close(layer(x)[0], model(x))
