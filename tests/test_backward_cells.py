"""Backward pass of the cell variants: LSTM with peepholes, coupled gates (CIFG) and
projection, reset-before GRU, FastRNN and FastGRNN (low-rank factors, scalar parameters,
every nonlinearity) against torch autograd on the reference modules (fastseq.torch, and
nn.LSTM(proj_size=P)), for every parameter, the input and the initial states, on every ISA."""
import numpy as np
import pytest

import fastseq

torch = pytest.importorskip("torch")
from fastseq import torch as ft  # noqa: E402  (needs torch)

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

REL = 1e-4   # max |fastseq - torch| / max |torch| per tensor
ABS = 1e-5   # ... or this absolute bound, where gradients are tiny

# name -> (constructor(I, H, L, bias, bidirectional), is an LSTM)
VARIANTS = {
    "lstm_peephole": (lambda *a: ft.PeepholeLSTM(*a[:4], bidirectional=a[4]), True),
    "lstm_coupled": (lambda *a: ft.CoupledLSTM(*a[:4], bidirectional=a[4]), True),
    "lstm_proj": (lambda *a: torch.nn.LSTM(*a[:4], bidirectional=a[4], proj_size=3), True),
    "gru_reset_before": (lambda *a: ft.ResetBeforeGRU(*a[:4], bidirectional=a[4]), False),
    "fastrnn": (lambda *a: ft.FastRNN(*a[:4], bidirectional=a[4]), False),
    "fastrnn_sigmoid_lowrank": (lambda *a: ft.FastRNN(*a[:4], bidirectional=a[4], nonlinearity="sigmoid",
                                                      w_rank=2, u_rank=3), False),
    "fastrnn_relu_u_rank": (lambda *a: ft.FastRNN(*a[:4], bidirectional=a[4], nonlinearity="relu",
                                                  u_rank=4), False),
    "fastgrnn": (lambda *a: ft.FastGRNN(*a[:4], bidirectional=a[4]), False),
    "fastgrnn_lowrank": (lambda *a: ft.FastGRNN(*a[:4], bidirectional=a[4], w_rank=3, u_rank=4), False),
    "fastgrnn_tanh_gate_sigmoid_update": (lambda *a: ft.FastGRNN(
        *a[:4], bidirectional=a[4], gate_nonlinearity="tanh", update_nonlinearity="sigmoid",
        w_rank=12), False),
    "fastgrnn_relu_update": (lambda *a: ft.FastGRNN(*a[:4], bidirectional=a[4],
                                                    update_nonlinearity="relu", u_rank=2), False),
    # EdgeML's quantSigm gate and quantTanh update
    "fastgrnn_quant": (lambda *a: ft.FastGRNN(*a[:4], bidirectional=a[4], gate_nonlinearity="hard_sigmoid",
                                              gate_alpha=0.5, gate_beta=0.5, update_nonlinearity="hard_tanh",
                                              w_rank=3), False),
    "fastrnn_softsign": (lambda *a: ft.FastRNN(*a[:4], bidirectional=a[4], nonlinearity="softsign"), False),
}


def close(name, got, want):
    got, want = np.asarray(got), want.detach().numpy()
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    err = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    assert err <= max(REL * scale, ABS), f"{name}: max abs err {err:.3g}, scale {scale:.3g}"


def run_module(tm, x, hx, lengths, batch_first):
    if isinstance(tm, torch.nn.LSTM):  # torch's packed-sequence route
        if lengths is None:
            return tm(x, hx)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        y, st = tm(packed, hx)
        T = x.shape[1 if batch_first else 0]
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=batch_first, total_length=T)
        return y, st
    return tm(x, hx, lengths=lengths)


def check(each_isa, tm, lstm, T=7, B=3, lengths=None, batch_first=False, unbatched=False,
          layer=None, seed=0):
    """Autograd's gradients of sum(y * gy) + sum(state * gs) through tm against fastseq's
    layer.backward (layer: from_torch(tm) unless given) on every ISA."""
    torch.manual_seed(seed)
    tm.batch_first = batch_first
    D = 2 if tm.bidirectional else 1
    LD, H, I = tm.num_layers * D, tm.hidden_size, tm.input_size
    R = getattr(tm, "proj_size", 0) or H
    xs = (T, I) if unbatched else ((B, T, I) if batch_first else (T, B, I))
    x = torch.randn(*xs, requires_grad=True)
    h0 = torch.randn(*((LD, R) if unbatched else (LD, B, R)), requires_grad=True)
    c0 = torch.randn(*((LD, H) if unbatched else (LD, B, H)), requires_grad=True)
    hx = (h0, c0) if lstm else h0
    y, st = run_module(tm, x, hx, lengths, batch_first)
    gy = torch.randn_like(y)
    gs = tuple(torch.randn_like(s) for s in st) if lstm else torch.randn_like(st)
    loss = (y * gy).sum() + (sum((s * g).sum() for s, g in zip(st, gs)) if lstm else (st * gs).sum())
    loss.backward()

    layer = fastseq.from_torch(tm) if layer is None else layer
    np_hx = (h0.detach(), c0.detach()) if lstm else h0.detach()
    wanted = [(k, p.grad) for k, p in tm.named_parameters()] + [("input", x.grad)]
    for isa in each_isa():
        g = layer.backward(x.detach(), gy, hx=np_hx, grad_hn=gs, lengths=lengths)
        assert set(g) == set(layer.state_dict()) | {"input", "hx"}
        for key, want in wanted:
            close(f"{isa} {key}", g[key], want)
        if lstm:
            close(f"{isa} h0", g["hx"][0], h0.grad)
            close(f"{isa} c0", g["hx"][1], c0.grad)
        else:
            close(f"{isa} h0", g["hx"], h0.grad)


def make(name, I=5, H=11, L=1, bias=True, bidir=False, seed=0):
    build, lstm = VARIANTS[name]
    torch.manual_seed(seed)
    return build(I, H, L, bias, bidir), lstm


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_gradients_match_autograd(each_isa, name):
    for L, bidir in [(1, False), (2, True)]:
        check(each_isa, *make(name, L=L, bidir=bidir))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_gradients_lengths_batch_first(each_isa, name):
    check(each_isa, *make(name, L=2, bidir=True), T=9, B=4, lengths=[9, 3, 1, 6], batch_first=True)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_gradients_odd_sizes_no_bias(each_isa, name):
    # hidden sizes off the 8-unit blocks, a longer sequence, no biases, one sequence
    check(each_isa, *make(name, I=3, H=17, L=2, bias=False), T=30, B=5)
    check(each_isa, *make(name, I=13, H=8, L=1, bidir=True), T=12, unbatched=True)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_to_torch_round_trip(name):
    tm, _ = make(name, L=2, bidir=True)
    back = fastseq.from_torch(tm).to_torch()
    assert type(back) is type(tm)
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy())


# ---- LSTM variants combined (no torch module has them): a functional reference ----------

def lstm_reference(sd, x, h0, c0, L, D, peephole, coupled, lengths):
    """y, h_n, c_n of fastseq's LSTM with peepholes / coupled gates / projection (DESIGN.md
    section 2), time-major, from a fastseq state_dict of tensors."""
    T = x.shape[0]
    mask = None if lengths is None else (torch.arange(T)[:, None] < torch.tensor(lengths)[None, :])
    inp, hs, cs = x, [], []
    for layer in range(L):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            p = {k[:-len(s)]: v for k, v in sd.items() if k.endswith(s)}
            h, c, ys = h0[layer * D + d], c0[layer * D + d], [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                gates = inp[t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
                parts = gates.chunk(3 if coupled else 4, -1)
                i, g, o = parts[0], parts[-2], parts[-1]
                i = torch.sigmoid(i + (p["peephole_i"] * c if peephole else 0))
                f = 1 - i if coupled else torch.sigmoid(parts[1] + (p["peephole_f"] * c if peephole else 0))
                cn = f * c + i * torch.tanh(g)
                o = torch.sigmoid(o + (p["peephole_o"] * cn if peephole else 0))
                hn = (o * torch.tanh(cn)) @ p["weight_hr"].T
                if mask is not None:
                    m = mask[t][:, None]
                    hn, cn = torch.where(m, hn, h), torch.where(m, cn, c)
                    ys[t] = torch.where(m, hn, torch.zeros_like(hn))
                else:
                    ys[t] = hn
                h, c = hn, cn
            outs.append(torch.stack(ys))
            hs.append(h)
            cs.append(c)
        inp = torch.cat(outs, -1)
    return inp, torch.stack(hs), torch.stack(cs)


@pytest.mark.parametrize("peephole,coupled", [(True, False), (False, True), (True, True)])
def test_lstm_variants_combined_with_projection(each_isa, peephole, coupled):
    L, D, I, H, P, T, B, lengths = 2, 2, 4, 9, 5, 6, 3, [6, 2, 4]
    layer = fastseq.LSTM(I, H, L, bidirectional=True, proj_size=P, peephole=peephole,
                         coupled=coupled, seed=3)
    sd = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in layer.state_dict().items()}
    torch.manual_seed(4)
    x = torch.randn(T, B, I, requires_grad=True)
    h0 = torch.randn(L * D, B, P, requires_grad=True)
    c0 = torch.randn(L * D, B, H, requires_grad=True)
    y, h_n, c_n = lstm_reference(sd, x, h0, c0, L, D, peephole, coupled, lengths)
    np.testing.assert_allclose(layer(x.detach().numpy(), (h0.detach(), c0.detach()), lengths)[0],
                               y.detach().numpy(), atol=1e-5)
    gy, gh, gc = torch.randn_like(y), torch.randn_like(h_n), torch.randn_like(c_n)
    ((y * gy).sum() + (h_n * gh).sum() + (c_n * gc).sum()).backward()
    for isa in each_isa():
        g = layer.backward(x.detach(), gy, hx=(h0.detach(), c0.detach()), grad_hn=(gh, gc),
                           lengths=lengths)
        for key, p in sd.items():
            if p.grad is None:   # p_f of a coupled LSTM: unused, zero gradient
                np.testing.assert_array_equal(g[key], 0)
            else:
                close(f"{isa} {key}", g[key], p.grad)
        close(f"{isa} input", g["input"], x.grad)
        close(f"{isa} h0", g["hx"][0], h0.grad)
        close(f"{isa} c0", g["hx"][1], c0.grad)

