"""Truncated BPTT: TBPTT(T, T) is full BPTT; TBPTT(k, k) is the PyTorch loop that detaches
the state every k steps; TBPTT(k1, k2 > k1) matches the same windows run in torch."""
import numpy as np
import pytest

import fastseq
from fastseq import train

torch = pytest.importorskip("torch")


def module(cell, *args, **kw):
    from fastseq import torch as ft
    return {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN,
            "LSTM_PROJ": lambda *a, **k: torch.nn.LSTM(*a, proj_size=4, **k),
            "PeepholeLSTM": ft.PeepholeLSTM, "ResetBeforeGRU": ft.ResetBeforeGRU,
            "FastGRNN": lambda *a, **k: ft.FastGRNN(*a, w_rank=2, u_rank=3, **k)}[cell](*args, **kw)


def make(cell, I=3, H=6, L=2, out=2, batch_first=False, seed=0):
    torch.manual_seed(seed)
    tm = module(cell, I, H, L, batch_first=batch_first)
    R = getattr(tm, "proj_size", 0) or H
    head = torch.nn.Linear(R, out)
    fh = train.PerStepLinear(R, out)
    fh.load_state_dict({"weight": head.weight.detach().numpy(), "bias": head.bias.detach().numpy()})
    model = train.SequenceModel(fastseq.from_torch(tm), fh)
    return tm, head, model


def data(T, B, I, out, batch_first, seed=1):
    rng = np.random.default_rng(seed)
    shape = (B, T) if batch_first else (T, B)
    return (rng.standard_normal(shape + (I,)).astype(np.float32),
            rng.standard_normal(shape + (out,)).astype(np.float32))


def detach(s):
    return tuple(v.detach() for v in s) if isinstance(s, tuple) else s.detach()


def torch_tbptt(tm, head, x, y, k1, k2, lr, batch_first=False):
    """The reference: windows [e - k2, e) from the detached state at their start, loss on
    the k1 new steps, an SGD step per window."""
    params = list(tm.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr) if lr else None
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    ax = 1 if batch_first else 0
    T = x.shape[ax]
    sl = (lambda a, lo, hi: a[:, lo:hi]) if batch_first else (lambda a, lo, hi: a[lo:hi])
    ends = list(range(k1, T, k1)) + [T]
    known, prev, losses = {0: None}, 0, []
    for i, e in enumerate(ends):
        w = max(0, e - k2)
        nxt = max(0, ends[i + 1] - k2) if i + 1 < len(ends) else None
        if opt:
            opt.zero_grad()
        if nxt is not None and w < nxt < e:
            o1, mid = tm(sl(x, w, nxt), known[w])
            o2, end = tm(sl(x, nxt, e), mid)
            out = torch.cat([o1, o2], dim=ax)
            known[nxt] = detach(mid)
        else:
            out, end = tm(sl(x, w, e), known[w])
        new = e - prev
        loss = torch.nn.functional.mse_loss(head(sl(out, e - w - new, e - w)), sl(y, e - new, e))
        loss.backward()
        if opt:
            opt.step()
        losses.append(loss.item())
        known[e] = detach(end)
        prev = e
    return losses, known[T]


def assert_params_close(tm, head, model, tol=2e-5):
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(model.rnn.state_dict()[k], v.numpy(), atol=tol, rtol=tol, err_msg=k)
    np.testing.assert_allclose(model.head.weight, head.weight.detach().numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(model.head.bias, head.bias.detach().numpy(), atol=tol, rtol=tol)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_tbptt_T_T_is_full_bptt(cell):
    tm, head, model = make(cell)
    x, y = data(17, 3, 3, 2, False)
    mse = train.MSELoss()
    model.zero_grad()
    losses, state = train.tbptt(model, mse, x, y, k1=17, k2=17)       # accumulate, no optimizer
    tbptt_grads = model.grads.copy()
    model.zero_grad()
    pred, full_state = model.forward(x)
    loss, g = mse(pred, y)
    model.backward(g)
    np.testing.assert_allclose(tbptt_grads, model.grads, rtol=1e-6, atol=1e-7)
    assert losses == [pytest.approx(loss)]
    # and both equal torch autograd's full BPTT
    out, _ = tm(torch.from_numpy(x))
    tl = torch.nn.functional.mse_loss(head(out), torch.from_numpy(y))
    tl.backward()
    assert losses[0] == pytest.approx(tl.item(), rel=1e-5)
    names = [n for n, _ in tm.named_parameters()]
    for name in names:
        l, d, which = model.rnn._index[name]
        off = fastseq._core.param_offset(model.rnn._model, l, d, which)
        p = dict(tm.named_parameters())[name]
        got = tbptt_grads[off:off + p.numel()].reshape(p.shape)
        want = p.grad.numpy()
        assert np.abs(got - want).max() <= max(1e-4 * np.abs(want).max(), 1e-6), name
    np.testing.assert_allclose(model.head.grad_weight, head.weight.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cell,batch_first", [("LSTM", False), ("GRU", True), ("RNN", False)])
def test_tbptt_k_k_is_the_detach_every_k_loop(each_isa, cell, batch_first):
    T, B, k = 23, 3, 5                              # the last chunk is short (3 steps)
    x, y = data(T, B, 3, 2, batch_first)
    for _ in each_isa():
        tm, head, model = make(cell, batch_first=batch_first)
        ref_losses, ref_state = torch_tbptt(tm, head, x, y, k, k, lr=0.1, batch_first=batch_first)
        opt = train.SGD(model, lr=0.1)
        losses, state = train.tbptt(model, train.MSELoss(), x, y, k1=k, k2=k, optimizer=opt)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
        assert_params_close(tm, head, model)
        ref_h = ref_state[0] if cell == "LSTM" else ref_state
        got_h = state[0] if cell == "LSTM" else state
        np.testing.assert_allclose(got_h, ref_h.numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "LSTM_PROJ", "PeepholeLSTM", "ResetBeforeGRU",
                                  "FastGRNN"])
@pytest.mark.parametrize("k1,k2", [(3, 7), (4, 8), (5, 6)])
def test_tbptt_k1_k2_matches_torch_windows(cell, k1, k2):
    T, B = 20, 2
    x, y = data(T, B, 3, 2, False)
    tm, head, model = make(cell)
    ref_losses, _ = torch_tbptt(tm, head, x, y, k1, k2, lr=0.05)
    opt = train.SGD(model, lr=0.05)
    losses, _ = train.tbptt(model, train.MSELoss(), x, y, k1=k1, k2=k2, optimizer=opt)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    assert_params_close(tm, head, model)


def test_tbptt_accumulates_without_optimizer():
    tm, head, model = make("GRU")
    x, y = data(12, 2, 3, 2, False)
    model.zero_grad()
    train.tbptt(model, train.MSELoss(), x, y, k1=4, k2=4)
    ref_losses, _ = torch_tbptt(tm, head, x, y, 4, 4, lr=0)   # grads accumulate in torch too
    for name, p in tm.named_parameters():
        l, d, which = model.rnn._index[name]
        off = fastseq._core.param_offset(model.rnn._model, l, d, which)
        np.testing.assert_allclose(model.grads[off:off + p.numel()].reshape(p.shape), p.grad.numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=name)


def test_tbptt_errors():
    _, _, model = make("LSTM")
    x, y = data(10, 2, 3, 2, False)
    with pytest.raises(ValueError, match="k1 <= k2"):
        train.tbptt(model, train.MSELoss(), x, y, k1=5, k2=3)
    bi = train.SequenceModel(fastseq.LSTM(3, 4, bidirectional=True), train.PerStepLinear(8, 2))
    with pytest.raises(ValueError, match="bidirectional"):
        train.tbptt(bi, train.MSELoss(), x, y, k1=5)
    last = train.SequenceModel(fastseq.LSTM(3, 4), train.LastStepLinear(4, 2))
    with pytest.raises(ValueError, match="per-step"):
        train.tbptt(last, train.MSELoss(), x, y, k1=5)
