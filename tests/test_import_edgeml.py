"""fastseq.from_edgeml against the EdgeML package itself (edgeml-pytorch 0.3.0): every cell
fastseq can express, as a cell, a wrapper, a BaseRNN and a state_dict, on random weights,
with input size != hidden size and ==. Target: |fastseq - EdgeML| <= 1e-5 * max(1, |EdgeML|).
"""
import numpy as np
import pytest

import fastseq
from _requires import edgeml_rnn, require

torch = require("torch")
rnn = edgeml_rnn()


@pytest.fixture(autouse=True)
def edgeml_relu(monkeypatch):
    """edgeml-pytorch 0.3.0 computes relu as `torch.relu(A, 0.0)`, which today's torch
    rejects (relu takes one argument); route "relu" to what that call meant, everything
    else to the package's own gen_nonlinearity."""
    original = rnn.gen_nonlinearity

    def gen_nonlinearity(A, nonlinearity):
        return torch.relu(A) if nonlinearity == "relu" else original(A, nonlinearity)

    monkeypatch.setattr(rnn, "gen_nonlinearity", gen_nonlinearity)


def close(got, ref):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    assert got.shape == ref.shape
    assert np.all(np.abs(got - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))


def perturb(module, seed, gate_shift=0.0):
    """Random weights in place of EdgeML's init: matrices ~ 0.3 N(0, 1), biases U(-1, 1),
    scalars in the range training keeps them (so each one matters)."""
    gen = torch.Generator().manual_seed(seed)
    scalars = {"alpha": (-3.0, -1.0), "beta": (0.5, 2.0), "zeta": (-1.0, 2.0), "nu": (-5.0, -1.0)}
    with torch.no_grad():
        for name, p in module.named_parameters():
            short = name.rsplit(".", 1)[-1]
            if short in scalars:
                lo, hi = scalars[short]
                p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=gen))
            elif short.startswith("bias"):
                p.copy_(2 * torch.rand(p.shape, generator=gen) - 1 - (gate_shift if short == "bias_gate" else 0))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return module


def run_edgeml(module, x, batch_first):
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    return out[0] if isinstance(out, tuple) else out


def inputs(I, batch_first, T=40, B=3, seed=0):
    shape = (B, T, I) if batch_first else (T, B, I)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


SIZES = [(5, 9), (8, 8)]   # I != H, and I == H, where the two layouts have the same shapes


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("update", ["tanh", "sigmoid", "relu", "quantTanh", "quantSigm", "quantSigm4"])
@pytest.mark.parametrize("w_rank,u_rank", [(None, None), (3, 4)])
def test_fastrnn_cell(I, H, update, w_rank, u_rank):
    cell = perturb(rnn.FastRNNCell(I, H, update_nonlinearity=update, wRank=w_rank, uRank=u_rank), 1)
    layer = fastseq.from_edgeml(cell)
    assert type(layer) is fastseq.FastRNN and layer.w_rank == w_rank and not layer.batch_first
    x = inputs(I, False)
    close(layer(x)[0], run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False))


GRNN_NONLIN = [("sigmoid", "tanh"), ("tanh", "sigmoid"), ("relu", "tanh"), ("sigmoid", "relu"),
               ("tanh", "tanh"), ("quantSigm", "quantTanh"), ("quantSigm4", "quantSigm"),
               ("sigmoid", "quantTanh"), ("quantTanh", "quantSigm4")]
# EdgeML's names as fastseq's (the layer reports its own)
FASTSEQ_NAME = {"quantTanh": "hard_tanh", "quantSigm": "hard_sigmoid", "quantSigm4": "hard_sigmoid"}


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("gate,update", GRNN_NONLIN)
@pytest.mark.parametrize("w_rank,u_rank", [(None, None), (3, 4), (None, 2)])
def test_fastgrnn_cell(I, H, gate, update, w_rank, u_rank):
    cell = rnn.FastGRNNCell(I, H, gate_nonlinearity=gate, update_nonlinearity=update, wRank=w_rank, uRank=u_rank)
    perturb(cell, 2, gate_shift=1.5 if gate == "relu" else 0.0)   # a relu gate above 1 grows h
    layer = fastseq.from_edgeml(cell)
    assert type(layer) is fastseq.FastGRNN
    assert (layer.gate_nonlinearity, layer.update_nonlinearity) == (FASTSEQ_NAME.get(gate, gate),
                                                                    FASTSEQ_NAME.get(update, update))
    x = inputs(I, False)
    close(layer(x)[0], run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False))


@pytest.mark.parametrize("I,H", SIZES)
def test_wrappers_and_baserrn_keep_their_nonlinearities_and_batch_first(I, H):
    wrapper = perturb(rnn.FastGRNN(I, H, gate_nonlinearity="tanh", update_nonlinearity="sigmoid", wRank=3), 3)
    layer = fastseq.from_edgeml(wrapper)
    assert layer.batch_first and layer.gate_nonlinearity == "tanh"
    x = inputs(I, True)
    close(layer(x)[0], run_edgeml(wrapper, x, True))
    base = rnn.BaseRNN(perturb(rnn.FastRNNCell(I, H, update_nonlinearity="relu"), 4), batch_first=False)
    layer = fastseq.from_edgeml(base)
    assert not layer.batch_first and layer.nonlinearity == "relu"
    x = inputs(I, False)
    close(layer(x)[0], run_edgeml(base, x, False))


@pytest.mark.parametrize("I,H", SIZES)
def test_lstmlr_and_grulr_map_onto_lstm_and_reset_before_gru(I, H):
    lstm = perturb(rnn.LSTM(I, H), 5)
    layer = fastseq.from_edgeml(lstm)
    assert type(layer) is fastseq.LSTM and layer.batch_first
    x = inputs(I, True)
    with torch.no_grad():
        h_ref, c_ref = lstm(torch.from_numpy(x))
    y, (h_n, c_n) = layer(x)
    close(y, h_ref)
    close(c_n[0], c_ref[:, -1])
    gru = perturb(rnn.GRULRCell(I, H), 6)
    layer = fastseq.from_edgeml(gru)
    assert type(layer) is fastseq.GRU and not layer.reset_after
    x = inputs(I, False)
    close(layer(x)[0], run_edgeml(rnn.BaseRNN(gru, batch_first=False), x, False))


@pytest.mark.parametrize("gate, update", [("quantSigm", "quantTanh"), ("quantSigm4", "tanh"),
                                          ("sigmoid", "quantTanh")])
def test_lstmlr_and_grulr_take_edgeml_quant_activations(gate, update):
    I, H = 5, 9
    x = 3.0 * inputs(I, False)   # into the clamps' flat parts
    for seed, make in enumerate((rnn.LSTMLRCell, rnn.GRULRCell)):
        cell = perturb(make(I, H, gate_nonlinearity=gate, update_nonlinearity=update), 10 + seed)
        layer = fastseq.from_edgeml(cell)
        close(layer(x)[0], run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False))


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("w_rank,u_rank", [(3, 4), (None, 2), (4, None)])
@pytest.mark.parametrize("gate,update", [("sigmoid", "tanh"), ("quantSigm", "quantTanh")])
def test_low_rank_lstmlr_keeps_its_factors(I, H, w_rank, u_rank, gate, update):
    cell = perturb(rnn.LSTMLRCell(I, H, gate_nonlinearity=gate, update_nonlinearity=update,
                                  wRank=w_rank, uRank=u_rank), 16)
    layer = fastseq.from_edgeml(cell)
    assert (layer.w_rank, layer.u_rank) == (w_rank, u_rank)
    if w_rank:   # the shared factor kept: [rank, in] and the four gates' [4H, rank]
        assert layer.state_dict()["weight_ih_a_l0"].shape == (w_rank, I)
        assert layer.state_dict()["weight_ih_b_l0"].shape == (4 * H, w_rank)
    x = inputs(I, False)
    with torch.no_grad():
        h_ref, c_ref = rnn.BaseRNN(cell, batch_first=False)(torch.from_numpy(x))
    y, (h_n, c_n) = layer(x)
    close(y, h_ref)
    close(c_n[0], c_ref[-1])
    stream = layer.stream(batch=x.shape[1])
    close(np.stack([stream.step(x[t]) for t in range(x.shape[0])]), h_ref)


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("update", ["tanh", "quantTanh"])
@pytest.mark.parametrize("w_rank,u_rank", [(3, None), (None, 4), (3, 4)])
def test_low_rank_grulr_keeps_its_factors(tmp_path, each_isa, I, H, update, w_rank, u_rank):
    """GRULR's low-rank U also runs on r * h (n = W_3 x + U_3 U (r * h)): forward, stream
    and a file round trip on every ISA."""
    cell = perturb(rnn.GRULRCell(I, H, update_nonlinearity=update, wRank=w_rank, uRank=u_rank), 17)
    layer = fastseq.from_edgeml(cell)
    assert type(layer) is fastseq.GRU and not layer.reset_after
    assert (layer.w_rank, layer.u_rank) == (w_rank, u_rank)
    if u_rank:
        assert layer.state_dict()["weight_hh_b_l0"].shape == (3 * H, u_rank)
    x = inputs(I, False)
    ref = run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False)
    fastseq.save(layer, tmp_path / "g.fsq")
    loaded = fastseq.load(tmp_path / "g.fsq")
    assert (loaded.w_rank, loaded.u_rank) == (w_rank, u_rank)
    for _ in each_isa():
        close(layer(x)[0], ref)
        close(loaded(x)[0], ref)
        stream = loaded.stream(batch=x.shape[1])
        close(np.stack([stream.step(x[t]) for t in range(x.shape[0])]), ref)


def load_grulr_factors(cell, sd):
    """A low-rank GRULRCell's matrices from a fastseq GRU's state_dict (W = weight_ih_a.T,
    W_g = the gate's rows of weight_ih_b, transposed; U likewise)."""
    with torch.no_grad():
        for name, key in (("W", "weight_ih"), ("U", "weight_hh")):
            getattr(cell, name).copy_(torch.from_numpy(sd[key + "_a_l0"].T.copy()))
            for g, rows in zip("123", np.split(sd[key + "_b_l0"], 3)):
                getattr(cell, name + g).copy_(torch.from_numpy(rows.T.copy()))
    return cell


@pytest.mark.parametrize("dtype", ["bf16"])
def test_quantised_low_rank_grulr_is_edgeml_with_the_dequantised_weights(each_isa, dtype):
    I, H = 5, 9
    cell = perturb(rnn.GRULRCell(I, H, wRank=3, uRank=4), 25)
    q = fastseq.quantize(fastseq.from_edgeml(cell), dtype)
    x = inputs(I, False)
    ref = run_edgeml(rnn.BaseRNN(load_grulr_factors(cell, q.state_dict()), batch_first=False), x, False)
    for _ in each_isa():
        close(q(x)[0], ref)


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_integer_low_rank_grulr_is_edgeml_with_quantised_activations(each_isa, monkeypatch, dtype):
    """int8 and int4 (docs/quantization.md): EdgeML's GRULRCell holding the dequantised
    weights, each product's left operand quantised per row as fastseq's integer products do
    (the input's rows twice); one step from a random h0, so every operand is the input, h0,
    or what EdgeML computes from them (x W, U h, r h)."""
    from _q8 import fake_q8, fine_q8
    I, H, B = 5, 9, 3
    cell = perturb(rnn.GRULRCell(I, H, wRank=3, uRank=4), 25)
    q = fastseq.quantize(fastseq.from_edgeml(cell), dtype)
    load_grulr_factors(cell, q.state_dict())
    gen = torch.Generator().manual_seed(28)
    x, h0 = torch.randn(1, B, I, generator=gen), torch.randn(B, H, generator=gen)
    weights = {id(p): name for name, p in cell.named_parameters()}
    plain = torch.matmul

    def matmul(a, b):
        name = weights.get(id(b))
        return plain(a if name is None else fine_q8(a) if name == "W" else fake_q8(a), b)

    monkeypatch.setattr(torch, "matmul", matmul)
    with torch.no_grad():
        ref = rnn.BaseRNN(cell, batch_first=False)(x, h0)
    monkeypatch.undo()
    for _ in each_isa():
        close(q(x.numpy(), h0.numpy()[None])[0], ref)


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("gate,update", [("sigmoid", "tanh"), ("quantSigm", "quantTanh")])
def test_low_rank_grulr_gradients_match_edgeml_autograd(each_isa, I, H, gate, update):
    """fastseq's backward of a GRULR with wRank and uRank (U_a also under r h) against
    autograd on EdgeML's GRULRCell: input, h0, both factors of W and U, the biases."""
    T, B = 10, 3
    cell = perturb(rnn.GRULRCell(I, H, gate_nonlinearity=gate, update_nonlinearity=update, wRank=3, uRank=4), 26)
    gen = torch.Generator().manual_seed(27)
    x = torch.randn(T, B, I, generator=gen).requires_grad_(True)
    h0 = torch.randn(B, H, generator=gen).requires_grad_(True)
    y = rnn.BaseRNN(cell, batch_first=False)(x, h0)
    gy = torch.randn(y.shape, generator=gen)
    (y * gy).sum().backward()
    p = dict(cell.named_parameters())
    wanted = {"input": x.grad, "hx": h0.grad[None], "weight_ih_a_l0": p["W"].grad.T, "weight_hh_a_l0": p["U"].grad.T,
              "weight_ih_b_l0": torch.cat([p["W" + g].grad.T for g in "123"]),
              "weight_hh_b_l0": torch.cat([p["U" + g].grad.T for g in "123"]),
              "bias_ih_l0": torch.cat([p[b].grad.reshape(-1) for b in ("bias_r", "bias_gate", "bias_update")])}
    layer = fastseq.from_edgeml(cell)
    for isa in each_isa():
        got = layer.backward(x.detach().numpy(), gy.numpy(), hx=h0.detach().numpy()[None])
        for key, want in wanted.items():
            want = want.detach().numpy()
            err, scale = float(np.abs(got[key] - want).max()), float(np.abs(want).max())
            assert err <= max(1e-4 * scale, 1e-5), f"{isa} {key}: max abs err {err:.3g}, scale {scale:.3g}"


def test_low_rank_lstmlr_gradients_match_edgeml_autograd(each_isa):
    """fastseq's backward of a low-rank LSTM against autograd on EdgeML's LSTMLRCell: the
    input, h0, c0, both factors of W and U, the biases (bound as test_backward_cells.py's)."""
    I, H, T, B = 5, 9, 10, 3
    cell = perturb(rnn.LSTMLRCell(I, H, wRank=3, uRank=4), 18)
    gen = torch.Generator().manual_seed(19)
    x = torch.randn(T, B, I, generator=gen).requires_grad_(True)
    h0 = torch.randn(B, H, generator=gen).requires_grad_(True)
    c0 = torch.randn(B, H, generator=gen).requires_grad_(True)
    y, c = rnn.BaseRNN(cell, batch_first=False)(x, h0, c0)
    gy, gc = torch.randn(y.shape, generator=gen), torch.randn(B, H, generator=gen)
    ((y * gy).sum() + (c[-1] * gc).sum()).backward()
    gates = ("1", "2", "3", "4")   # EdgeML's gate order is torch's i, f, g, o
    p = dict(cell.named_parameters())
    wanted = {"input": x.grad, "hx": (h0.grad[None], c0.grad[None]),
              "weight_ih_a_l0": p["W"].grad.T, "weight_hh_a_l0": p["U"].grad.T,
              "weight_ih_b_l0": torch.cat([p["W" + g].grad.T for g in gates]),
              "weight_hh_b_l0": torch.cat([p["U" + g].grad.T for g in gates]),
              "bias_ih_l0": torch.cat([p[b].grad.reshape(-1) for b in ("bias_i", "bias_f", "bias_c", "bias_o")])}
    layer = fastseq.from_edgeml(cell)
    for isa in each_isa():
        got = layer.backward(x.detach().numpy(), gy.numpy(), hx=(h0.detach().numpy()[None], c0.detach().numpy()[None]),
                             grad_hn=(np.zeros((1, B, H), np.float32), gc.numpy()[None]))
        for key, want in wanted.items():
            pairs = zip(got[key], want) if key == "hx" else [(got[key], want)]
            for g, w in pairs:
                w = w.detach().numpy()
                err, scale = float(np.abs(g - w).max()), float(np.abs(w).max())
                assert err <= max(1e-4 * scale, 1e-5), f"{isa} {key}: max abs err {err:.3g}, scale {scale:.3g}"


def state_dict_of(module):
    return {k: v.numpy() for k, v in module.state_dict().items()}


def test_state_dicts_need_the_layout_only_when_shapes_cannot_tell():
    for I, H in SIZES:
        cell = perturb(rnn.FastGRNNCell(I, H, wRank=3), 7)
        wrapped = {"unrollRNN._RNNCell." + k: v for k, v in state_dict_of(cell).items()}
        x = inputs(I, False)
        ref = run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False)
        close(fastseq.from_edgeml(wrapped, layout="torch")(x)[0], ref)
        close(fastseq.from_edgeml(state_dict_of(cell), cell="FastGRNN")(x)[0], ref)   # W2 [H, 3]: torch
        with pytest.raises(ValueError, match="layout='row'"):
            fastseq.from_edgeml(state_dict_of(cell), layout="row")
    square = perturb(rnn.FastGRNNCell(8, 8), 8)
    with pytest.raises(ValueError, match="cannot be told from the shapes.*layout='torch'"):
        fastseq.from_edgeml(state_dict_of(square))
    x = inputs(8, False)
    ref = run_edgeml(rnn.BaseRNN(square, batch_first=False), x, False)
    close(fastseq.from_edgeml(state_dict_of(square), layout="torch")(x)[0], ref)
    # the other layout gives other numbers: the argument matters
    assert np.abs(fastseq.from_edgeml(state_dict_of(square), layout="row")(x)[0] - ref.numpy()).max() > 1e-2
    fastrnn = perturb(rnn.FastRNNCell(8, 8, update_nonlinearity="sigmoid"), 9)
    layer = fastseq.from_edgeml(state_dict_of(fastrnn), layout="row", update_nonlinearity="sigmoid")
    close(layer(x)[0], run_edgeml(rnn.BaseRNN(fastrnn, batch_first=False), x, False))
    with pytest.raises(ValueError, match="cell='FastRNN', but the parameters are those of a FastGRNN"):
        fastseq.from_edgeml(state_dict_of(square), cell="FastRNN", layout="torch")


def test_what_fastseq_cannot_run_yet_is_a_clear_error():
    with pytest.raises(ValueError, match="update_nonlinearity: expected one of .*quantSigm4.* got <built-in"):
        fastseq.from_edgeml(rnn.FastGRNNCell(4, 6, update_nonlinearity=torch.sin))
    with pytest.raises(ValueError, match="GRULR gate_nonlinearity: expected one of"):
        fastseq.from_edgeml(rnn.GRULRCell(4, 6, gate_nonlinearity=torch.sin))
    with pytest.raises(ValueError, match="come from the module itself"):
        fastseq.from_edgeml(rnn.FastRNNCell(4, 6), layout="row")
    with pytest.raises(TypeError, match="expected an edgeml-pytorch cell"):
        fastseq.from_edgeml(torch.nn.Linear(3, 3))


def test_convert_command_takes_edgeml_state_dicts_and_trusted_pickles(tmp_path, capsys):
    from fastseq.cli import main
    cell = perturb(rnn.FastGRNNCell(8, 8, update_nonlinearity="relu"), 10)
    torch.save(cell.state_dict(), tmp_path / "sd.pt")
    x = inputs(8, False)
    ref = run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False)
    args = ["convert", str(tmp_path / "sd.pt"), str(tmp_path / "g.fsq")]
    assert main(args + ["--time-major"]) == 1
    assert "--gate-nonlinearity" in capsys.readouterr().err   # the weights cannot tell
    facts = ["--time-major", "--gate-nonlinearity", "sigmoid", "--update-nonlinearity", "relu"]
    assert main(args + facts) == 1
    assert "layout='torch'" in capsys.readouterr().err        # W [8, 8], U [8, 8]: either layout
    assert main(args + facts + ["--layout", "torch"]) == 0, capsys.readouterr().err
    close(fastseq.load(tmp_path / "g.fsq")(x)[0], ref)
    wrapper = perturb(rnn.FastGRNN(5, 9, update_nonlinearity="sigmoid"), 11)
    torch.save(wrapper, tmp_path / "wrapper.pt")
    assert main(["convert", str(tmp_path / "wrapper.pt"), str(tmp_path / "w.fsq")]) == 1
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "wrapper.pt"), str(tmp_path / "w.fsq"), "--trust-pickle"]) == 0
    x = inputs(5, True)
    close(fastseq.load(tmp_path / "w.fsq")(x)[0], run_edgeml(wrapper, x, True))
    quant = perturb(rnn.FastGRNNCell(5, 9, gate_nonlinearity="quantSigm", update_nonlinearity="quantTanh"), 24)
    torch.save(quant.state_dict(), tmp_path / "q.pt")
    assert main(["convert", str(tmp_path / "q.pt"), str(tmp_path / "q.fsq"), "--time-major",
                 "--gate-nonlinearity", "quantSigm", "--update-nonlinearity", "quantTanh"]) == 0, capsys.readouterr().err
    x = inputs(5, False)
    close(fastseq.load(tmp_path / "q.fsq")(x)[0], run_edgeml(rnn.BaseRNN(quant, batch_first=False), x, False))


@pytest.mark.parametrize("make", [lambda: rnn.FastGRNN(5, 9, gate_nonlinearity="quantSigm4",
                                                       update_nonlinearity="quantTanh", uRank=3),
                                  # (EdgeML's FastRNN wrapper passes its cell an argument it refuses)
                                  lambda: rnn.BaseRNN(rnn.FastRNNCell(5, 9, update_nonlinearity="quantSigm",
                                                                      wRank=2), batch_first=True)])
def test_quant_activations_survive_save_load_and_streaming(tmp_path, make):
    wrapper = perturb(make(), 12)
    x = 2.0 * inputs(5, True)   # into the clamps' flat parts
    ref = run_edgeml(wrapper, x, True)
    layer = fastseq.from_edgeml(wrapper)
    fastseq.save(layer, tmp_path / "q.fsq")
    loaded = fastseq.load(tmp_path / "q.fsq")
    assert loaded.config() == layer.config() | {k: v for k, v in loaded.config().items() if k.endswith("_init")}
    close(loaded(x)[0], ref)
    stream = loaded.stream(batch=x.shape[0])
    steps = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    close(steps, ref)


@pytest.mark.parametrize("kind, gate, update", [("FastGRNN", "quantSigm", "quantTanh"),
                                                ("FastGRNN", "quantTanh", "quantSigm4"),
                                                ("FastRNN", None, "quantSigm"), ("FastRNN", None, "quantTanh")])
def test_quant_activation_gradients_match_edgeml_autograd(each_isa, kind, gate, update):
    """fastseq's backward through quantTanh / quantSigm against torch autograd on EdgeML's
    own cell: the input, h0, the biases, the scalars and the full-rank matrices.
    Bound: test_backward_cells.py's (1e-4 of the largest |gradient|, or 1e-5)."""
    I, H, T, B = 5, 9, 12, 3
    if kind == "FastGRNN":
        cell = perturb(rnn.FastGRNNCell(I, H, gate_nonlinearity=gate, update_nonlinearity=update), 13)
        names = {"W": "weight_ih_l0", "U": "weight_hh_l0", "bias_gate": "bias_gate_l0",
                 "bias_update": "bias_update_l0", "zeta": "zeta_l0", "nu": "nu_l0"}
        layout = lambda m: m                    # noqa: E731  (torch layout: W [H, I])
    else:
        cell = perturb(rnn.FastRNNCell(I, H, update_nonlinearity=update), 14)
        names = {"W": "weight_ih_l0", "U": "weight_hh_l0", "bias_update": "bias_l0", "alpha": "alpha_l0",
                 "beta": "beta_l0"}
        layout = lambda m: m.T                  # noqa: E731  (row layout: W [I, H])
    gen = torch.Generator().manual_seed(15)
    x = (1.5 * torch.randn(T, B, I, generator=gen)).requires_grad_(True)
    h0 = torch.randn(B, H, generator=gen).requires_grad_(True)
    y = rnn.BaseRNN(cell, batch_first=False)(x, h0)
    gy = torch.randn(y.shape, generator=gen)
    (y * gy).sum().backward()
    layer = fastseq.from_edgeml(cell)
    wanted = [("input", x.grad), ("hx", h0.grad[None])]
    wanted += [(names[k], layout(p.grad) if p.grad.ndim == 2 and k in ("W", "U") else p.grad.reshape(-1))
               for k, p in cell.named_parameters()]
    for isa in each_isa():
        got = layer.backward(x.detach().numpy(), gy.numpy(), hx=h0.detach().numpy()[None])
        for key, want in wanted:
            want = want.detach().numpy()
            err, scale = float(np.abs(got[key] - want).max()), float(np.abs(want).max())
            assert err <= max(1e-4 * scale, 1e-5), f"{isa} {key}: max abs err {err:.3g}, scale {scale:.3g}"


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("w_rank,u_rank", [(None, None), (3, 4)])
# (gates onto (0, 1): with a tanh gate, 1 - z reaches 2 and the cell amplifies rounding --
# EdgeML's own fp32 then differs from its float64 run by up to 8e-5 at |h| 6)
@pytest.mark.parametrize("gate,update", [("sigmoid", "tanh"), ("quantSigm", "quantTanh"), ("sigmoid", "relu")])
def test_ugrnn_is_a_fastseq_cell(I, H, w_rank, u_rank, gate, update):
    cell = perturb(rnn.UGRNNLRCell(I, H, gate_nonlinearity=gate, update_nonlinearity=update,
                                   wRank=w_rank, uRank=u_rank), 20)
    layer = fastseq.from_edgeml(cell)
    assert type(layer) is fastseq.UGRNN and (layer.w_rank, layer.u_rank) == (w_rank, u_rank)
    x = inputs(I, False)
    ref = run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False)
    close(layer(x)[0], ref)
    stream = layer.stream(batch=x.shape[1])
    close(np.stack([stream.step(x[t]) for t in range(x.shape[0])]), ref)


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("w_rank,u_rank", [(None, None), (3, 4)])
@pytest.mark.parametrize("gate,update", [("sigmoid", "tanh"), ("quantSigm4", "quantTanh")])
def test_ugrnn_to_torch_and_back(I, H, w_rank, u_rank, gate, update):
    """fastseq.torch.UGRNN (to_torch) computes EdgeML's UGRNNLRCell; from_torch reads it back."""
    from fastseq.torch import UGRNN as ReferenceUGRNN
    cell = perturb(rnn.UGRNNLRCell(I, H, gate_nonlinearity=gate, update_nonlinearity=update,
                                   wRank=w_rank, uRank=u_rank), 24)
    x = inputs(I, False)
    ref = run_edgeml(rnn.BaseRNN(cell, batch_first=False), x, False)
    module = fastseq.from_edgeml(cell).to_torch()
    assert type(module) is ReferenceUGRNN and (module.w_rank, module.u_rank) == (w_rank, u_rank)
    with torch.no_grad():
        close(module(torch.from_numpy(x))[0].numpy(), ref)
    back = fastseq.from_torch(module)
    assert type(back) is fastseq.UGRNN and (back.w_rank, back.u_rank) == (w_rank, u_rank)
    close(back(x)[0], ref)


def test_ugrnn_wrapper_state_dict_file_and_gradients(tmp_path, each_isa):
    I, H, T, B = 5, 9, 11, 3
    wrapper = perturb(rnn.UGRNN(I, H, gate_nonlinearity="quantSigm4", wRank=3), 21)
    x = inputs(I, True, T=T, B=B)
    ref = run_edgeml(wrapper, x, True)
    layer = fastseq.from_edgeml(wrapper)
    assert layer.batch_first
    close(layer(x)[0], ref)
    from_sd = fastseq.from_edgeml(state_dict_of(wrapper), cell="UGRNNLR", gate_nonlinearity="quantSigm4",
                                  batch_first=True)
    close(from_sd(x)[0], ref)
    fastseq.save(layer, tmp_path / "u.fsq")
    close(fastseq.load(tmp_path / "u.fsq")(x)[0], ref)
    # gradients: autograd through EdgeML's cell against fastseq's backward
    cell = wrapper.cell
    xt = torch.from_numpy(x).requires_grad_(True)
    h0 = torch.randn(B, H, generator=torch.Generator().manual_seed(22)).requires_grad_(True)
    y = rnn.BaseRNN(cell, batch_first=True)(xt, h0)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(23))
    (y * gy).sum().backward()
    p = dict(cell.named_parameters())
    wanted = {"input": xt.grad, "hx": h0.grad[None], "weight_ih_a_l0": p["W"].grad.T,
              "weight_ih_b_l0": torch.cat([p["W1"].grad.T, p["W2"].grad.T]),
              "weight_hh_l0": torch.cat([p["U1"].grad.T, p["U2"].grad.T]),
              "bias_ih_l0": torch.cat([p["bias_gate"].grad.reshape(-1), p["bias_update"].grad.reshape(-1)])}
    for isa in each_isa():
        got = layer.backward(x, gy.numpy(), hx=h0.detach().numpy()[None])
        for key, want in wanted.items():
            want = want.detach().numpy()
            err, scale = float(np.abs(got[key] - want).max()), float(np.abs(want).max())
            assert err <= max(1e-4 * scale, 1e-5), f"{isa} {key}: max abs err {err:.3g}, scale {scale:.3g}"
