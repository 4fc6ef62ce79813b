"""Parity of the cells beyond torch.nn (issue 4): FastRNN, FastGRNN (full and low rank),
peephole and coupled-gate LSTM, LSTM projection, reset-before GRU, and the single-step
cells, against their PyTorch references computed here (fastseq.torch modules, nn.LSTM with
proj_size, nn.*Cell), on every ISA; plus streaming and the EdgeML importer.

Target: max abs difference <= 1e-5 on outputs and final states.
"""
import itertools
import zlib

import numpy as np
import pytest

import fastseq

torch = pytest.importorskip("torch")
import fastseq.torch as reference  # noqa: E402

from edgeml_reference import make_state_dict, run_sequence  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-5

VARIANTS = {
    "lstm_proj": lambda I, H, **kw: torch.nn.LSTM(I, H, proj_size=max(1, H // 3), **kw),
    "lstm_peephole": lambda I, H, **kw: reference.PeepholeLSTM(I, H, **kw),
    "lstm_coupled": lambda I, H, **kw: reference.CoupledLSTM(I, H, **kw),
    "gru_reset_before": lambda I, H, **kw: reference.ResetBeforeGRU(I, H, **kw),
    "fastrnn": lambda I, H, **kw: reference.FastRNN(I, H, **kw),
    "fastrnn_lowrank_sigmoid": lambda I, H, **kw: reference.FastRNN(
        I, H, w_rank=5, u_rank=6, nonlinearity="sigmoid", **kw),
    "fastgrnn": lambda I, H, **kw: reference.FastGRNN(I, H, **kw),
    "fastgrnn_lowrank_relu": lambda I, H, **kw: reference.FastGRNN(
        I, H, w_rank=4, u_rank=7, update_nonlinearity="relu", gate_nonlinearity="tanh", **kw),
}


def run_reference(module, x, lengths, batch_first):
    """The reference's (output, state) with packed-sequence semantics for `lengths`."""
    with torch.no_grad():
        if lengths is None:
            return module(x)
        if isinstance(module, torch.nn.LSTM):
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
            packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
            y, state = module(packed)
            y, _ = pad_packed_sequence(y, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
            return y, state
        return module(x, lengths=lengths)


def max_error(ours, theirs):
    (y, s), (y_ref, s_ref) = ours, theirs
    pairs = [(y, y_ref)] + (list(zip(s, s_ref)) if isinstance(s, tuple) else [(s, s_ref)])
    return max(float(np.abs(a - b.numpy()).max()) for a, b in pairs)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_matches_reference(each_isa, variant):
    """Grid: layers x bidirectional x batch_first x bias x sizes x T x B x lengths, every ISA."""
    failures = []
    grid = itertools.product([1, 2], [False, True], [False, True], [False, True],
                             [(13, 37), (64, 64)], [1, 40], [1, 5], [False, True])
    for L, bi, bf, bias, (I, H), T, B, with_lengths in grid:
        if with_lengths and B == 1:
            continue
        torch.manual_seed(zlib.crc32(repr((variant, L, bi, bf, bias, I, T, B)).encode()))
        module = VARIANTS[variant](I, H, num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
        layer = fastseq.from_torch(module)
        x = torch.randn((B, T, I) if bf else (T, B, I))
        lengths = None
        if with_lengths:
            lengths = torch.randint(1, T + 1, (B,))
            lengths[0] = T
        expected = run_reference(module, x, lengths, bf)
        for isa in each_isa():
            err = max_error(layer(x, lengths=lengths), expected)
            if not err <= TOL:
                failures.append(f"{isa} L={L} bi={bi} bf={bf} bias={bias} I={I} H={H} T={T} "
                                f"B={B} lengths={with_lengths}: {err:.2e}")
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_streams_like_the_sequence(each_isa, variant):
    torch.manual_seed(1)
    module = VARIANTS[variant](10, 20, num_layers=2)
    layer = fastseq.from_torch(module)
    x = torch.randn(30, 3, 10)
    y_ref, _ = run_reference(module, x, None, False)
    for isa in each_isa():
        stream = layer.stream(batch=3)
        ys = np.stack([stream.step(x[t].numpy()) for t in range(30)])
        assert np.abs(ys - y_ref.numpy()).max() <= TOL, isa


@pytest.mark.parametrize("cls", [torch.nn.LSTMCell, torch.nn.GRUCell, torch.nn.RNNCell])
def test_single_step_cells(each_isa, cls):
    torch.manual_seed(2)
    cell = cls(7, 9)
    ours = fastseq.from_torch(cell)
    x, h, c = torch.randn(4, 7), torch.randn(4, 9), torch.randn(4, 9)
    hx = (h, c) if cls is torch.nn.LSTMCell else h
    with torch.no_grad():
        expected = cell(x, hx)
    for isa in each_isa():
        got = ours(x, hx)
        if cls is torch.nn.LSTMCell:
            err = max(np.abs(got[0] - expected[0].numpy()).max(), np.abs(got[1] - expected[1].numpy()).max())
        else:
            err = np.abs(got - expected.numpy()).max()
        assert err <= TOL, isa
    unbatched = ours(x[0]) if cls is not torch.nn.LSTMCell else ours(x[0])[0]
    assert unbatched.shape == (9,)


@pytest.mark.parametrize("cell, w_rank, u_rank, prefix", [
    ("FastRNN", None, None, ""), ("FastGRNN", None, None, "cell."),
    ("FastRNN", 3, 4, "cell."), ("FastGRNN", 5, 2, "")])
def test_from_edgeml_matches_the_edgeml_equations(each_isa, cell, w_rank, u_rank, prefix):
    I, H, T, B = 6, 11, 50, 3
    sd = make_state_dict(cell, I, H, w_rank=w_rank, u_rank=u_rank, prefix=prefix, seed=3)
    x = np.random.default_rng(4).standard_normal((T, B, I)).astype(np.float32)
    expected, h_last = run_sequence(cell, sd, x)
    layer = fastseq.from_edgeml(sd)
    assert type(layer).__name__ == cell
    for isa in each_isa():
        y, h_n = layer(x)
        assert np.abs(y - expected).max() <= TOL, isa
        assert np.abs(h_n[0] - h_last).max() <= TOL, isa
