"""Backward pass: gradients of fastseq layers against torch autograd on the same weights,
inputs and loss, for every parameter, the input and the initial states, on every ISA."""
import numpy as np
import pytest

import fastseq
from fastseq import _core

torch = pytest.importorskip("torch")

REL = 1e-4   # max |fastseq - torch| / max |torch| per tensor
ABS = 1e-5   # ... or this absolute bound, where gradients are tiny

CELLS = {
    "LSTM": (torch.nn.LSTM, {}),
    "GRU": (torch.nn.GRU, {}),
    "RNN_TANH": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "RNN_RELU": (torch.nn.RNN, {"nonlinearity": "relu"}),
}


def close(name, got, want):
    got, want = np.asarray(got), want.detach().numpy()
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    err = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    assert err <= max(REL * scale, ABS), f"{name}: max abs err {err:.3g}, scale {scale:.3g}"
    return err / max(scale, 1e-30)


def torch_reference(cell, I, H, L, bidir, T, B, lengths, batch_first, seed=0, unbatched=False):
    """A torch module, inputs, upstream gradients and autograd's gradients."""
    cls, kw = CELLS[cell]
    torch.manual_seed(seed)
    tm = cls(I, H, L, bidirectional=bidir, batch_first=batch_first, **kw)
    D = 2 if bidir else 1
    xs = (T, I) if unbatched else ((B, T, I) if batch_first else (T, B, I))
    ss = (L * D, H) if unbatched else (L * D, B, H)
    x = torch.randn(*xs, requires_grad=True)
    h0 = torch.randn(*ss, requires_grad=True)
    c0 = torch.randn(*ss, requires_grad=True)
    hx = (h0, c0) if cell == "LSTM" else h0
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        y, st = tm(packed, hx)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=batch_first, total_length=T)
    else:
        y, st = tm(x, hx)
    gy = torch.randn_like(y)
    if cell == "LSTM":
        ghn, gcn = torch.randn_like(st[0]), torch.randn_like(st[1])
        loss = (y * gy).sum() + (st[0] * ghn).sum() + (st[1] * gcn).sum()
        gstate = (ghn, gcn)
    else:
        ghn = torch.randn_like(st)
        loss = (y * gy).sum() + (st * ghn).sum()
        gstate = ghn
    loss.backward()
    return tm, x, hx, gy, gstate


def check(each_isa, cell, I=5, H=11, L=1, bidir=False, T=7, B=3, lengths=None,
          batch_first=False, unbatched=False):
    tm, x, hx, gy, gstate = torch_reference(cell, I, H, L, bidir, T, B, lengths, batch_first,
                                            unbatched=unbatched)
    layer = fastseq.from_torch(tm)
    np_hx = tuple(h.detach() for h in hx) if cell == "LSTM" else hx.detach()
    np_gs = tuple(g for g in gstate) if cell == "LSTM" else gstate
    params = dict(tm.named_parameters())
    worst = 0.0
    for isa in each_isa():
        g = layer.backward(x.detach(), gy, hx=np_hx, grad_hn=np_gs, lengths=lengths)
        assert set(g) == set(layer.state_dict()) | {"input", "hx"}
        for key, p in params.items():
            worst = max(worst, close(f"{isa} {key}", g[key], p.grad))
        worst = max(worst, close(f"{isa} input", g["input"], x.grad))
        if cell == "LSTM":
            worst = max(worst, close(f"{isa} h0", g["hx"][0], hx[0].grad))
            worst = max(worst, close(f"{isa} c0", g["hx"][1], hx[1].grad))
        else:
            worst = max(worst, close(f"{isa} h0", g["hx"], hx.grad))
    return worst


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("L,bidir", [(1, False), (2, False), (1, True), (3, True)])
def test_gradients_match_autograd(each_isa, cell, L, bidir):
    check(each_isa, cell, L=L, bidir=bidir)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("batch_first", [False, True])
def test_gradients_with_lengths(each_isa, cell, batch_first):
    check(each_isa, cell, L=2, bidir=True, T=9, B=4, lengths=[9, 3, 1, 6], batch_first=batch_first)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradients_odd_sizes_and_long_sequence(each_isa, cell):
    # hidden sizes off the 8-unit blocks, a long sequence, a wide batch
    check(each_isa, cell, I=3, H=17, L=1, T=60, B=5)
    check(each_isa, cell, I=13, H=8, L=2, T=20, B=1, lengths=[20])


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_gradients_unbatched(each_isa, cell):
    check(each_isa, cell, L=2, bidir=True, unbatched=True)


def test_no_bias_and_partial_upstream(each_isa):
    torch.manual_seed(1)
    tm = torch.nn.LSTM(4, 6, 2, bias=False)
    x = torch.randn(5, 2, 4, requires_grad=True)
    y, (h, c) = tm(x)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    layer = fastseq.from_torch(tm)
    for _ in each_isa():
        g = layer.backward(x.detach(), gy)          # no hx, no grad_hn
        assert set(g) == {"weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1", "input", "hx"}
        for key, p in tm.named_parameters():
            close(key, g[key], p.grad)
        close("input", g["input"], x.grad)


def test_only_final_state_gradient(each_isa):
    torch.manual_seed(2)
    tm = torch.nn.GRU(3, 9)
    x = torch.randn(6, 2, 3, requires_grad=True)
    _, h = tm(x)
    gh = torch.randn_like(h)
    (h * gh).sum().backward()
    layer = fastseq.from_torch(tm)
    for _ in each_isa():
        g = layer.backward(x.detach(), None, grad_hn=gh)
        close("input", g["input"], x.grad)
        close("weight_hh_l0", g["weight_hh_l0"], tm.weight_hh_l0.grad)


def test_backward_errors():
    layer = fastseq.LSTM(4, 6)
    x = np.zeros((5, 2, 4), np.float32)
    with pytest.raises(ValueError, match="grad_output"):
        layer.backward(x, np.zeros((5, 2, 7), np.float32))
    with pytest.raises(ValueError, match="pair"):
        layer.backward(x, None, grad_hn=np.zeros((1, 2, 6), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        layer.backward(x, None, lengths=[1, 9])
    with pytest.raises(ValueError, match="x"):
        layer.backward(np.zeros((5, 2, 3), np.float32), None)


def test_c_level_checks():
    m = _core.Model(_core.CELL_GRU, 3, 4)
    tape = _core.Tape(m, 5, 2)
    x = np.zeros((5, 2, 3), np.float32)
    y = np.zeros((5, 2, 4), np.float32)
    with pytest.raises(ValueError, match="holds no forward"):
        tape.backward(None, None, None, None, None, None, None)
    with pytest.raises(ValueError, match="x: expected 30"):
        tape.forward(x[:4], 5, 2, False, None, None, None, y, None, None)
    with pytest.raises(ValueError, match="tape"):
        tape.forward(np.zeros((6, 2, 3), np.float32), 6, 2, False, None, None, None,
                     np.zeros((6, 2, 4), np.float32), None, None)
    with pytest.raises(ValueError, match="only an LSTM"):
        tape.forward(x, 5, 2, False, None, None, np.zeros(8, np.float32), y, None, None)
    tape.forward(x, 5, 2, False, None, None, None, y, None, None)
    with pytest.raises(ValueError, match="grad_params"):
        tape.backward(None, None, None, None, None, None, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="grad_y"):
        tape.backward(np.zeros(3, np.float32), None, None, None, None, None, None)


def test_flat_params_round_trip():
    layer = fastseq.GRU(3, 5, num_layers=2, bidirectional=True, seed=0)
    m = layer._model
    n = _core.param_count(m)
    assert n == sum(v.size for v in layer.state_dict().values())
    flat = np.empty(n, np.float32)
    _core.get_params(m, flat)
    sd = layer.state_dict()
    for key, (l, d, w) in layer._index.items():
        off = _core.param_offset(m, l, d, w)
        np.testing.assert_array_equal(flat[off:off + sd[key].size], sd[key].ravel())
    _core.set_params(m, flat * 2)
    np.testing.assert_array_equal(layer.state_dict()["weight_hh_l1_reverse"], 2 * sd["weight_hh_l1_reverse"])
    with pytest.raises(ValueError, match="params"):
        _core.set_params(m, flat[:-1])


def test_training_forward_matches_inference_forward(each_isa):
    """One driver: the training forward's outputs are fs_rnn_forward's, bit for bit, on every
    ISA and thread count (H = 131, B = 5: large enough to run the steps on threads)."""
    from fastseq.train import Recorder
    layer = fastseq.LSTM(33, 131, num_layers=2, bidirectional=True, seed=3)
    x = np.random.default_rng(0).standard_normal((7, 5, 33)).astype(np.float32)
    lengths = np.array([7, 2, 5, 1, 7], np.int32)
    before = fastseq.get_num_threads()
    try:
        for _ in each_isa():
            for threads in (1, 2, 3):
                fastseq.set_num_threads(threads)
                y, (h, c) = layer(x, lengths=lengths)
                y2, h2, c2 = Recorder(layer).forward(x, lengths=lengths)
                np.testing.assert_array_equal(y2, y)
                np.testing.assert_array_equal(h2, h)
                np.testing.assert_array_equal(c2, c)
    finally:
        fastseq.set_num_threads(before)
