"""The reference PyTorch modules in fastseq.torch (FastRNN, FastGRNN, PeepholeLSTM,
CoupledLSTM, ResetBeforeGRU): equations against EdgeML's cells, torch's own modules and
hand-written steps; packed-sequence semantics; shapes; parameter names; training."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import fastseq.torch as fst  # noqa: E402
from edgeml_reference import make_state_dict, run_sequence  # noqa: E402

TOL = 1e-6


def maxdiff(a, b):
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    b = b.detach().cpu().numpy() if torch.is_tensor(b) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# Factories: every module class in a small configuration; `kw` passes through.
MODULES = {
    "FastRNN": lambda I, H, **kw: fst.FastRNN(I, H, **kw),
    "FastRNN-lowrank": lambda I, H, **kw: fst.FastRNN(I, H, w_rank=3, u_rank=4, **kw),
    "FastGRNN": lambda I, H, **kw: fst.FastGRNN(I, H, **kw),
    "FastGRNN-lowrank": lambda I, H, **kw: fst.FastGRNN(I, H, w_rank=4, u_rank=3, **kw),
    "PeepholeLSTM": lambda I, H, **kw: fst.PeepholeLSTM(I, H, **kw),
    "CoupledLSTM": lambda I, H, **kw: fst.CoupledLSTM(I, H, **kw),
    "ResetBeforeGRU": lambda I, H, **kw: fst.ResetBeforeGRU(I, H, **kw),
    "UGRNN": lambda I, H, **kw: fst.UGRNN(I, H, **kw),
    "UGRNN-lowrank": lambda I, H, **kw: fst.UGRNN(I, H, w_rank=3, u_rank=4, **kw),
}
LSTMS = {"PeepholeLSTM", "CoupledLSTM"}


def make(name, I, H, seed=0, **kw):
    torch.manual_seed(seed)
    m = MODULES[name](I, H, **kw)
    if name.startswith("Fast"):  # move the scalars off their inits so each one matters
        with torch.no_grad():
            for pname, p in m.named_parameters():
                if p.numel() == 1:
                    p.add_(torch.empty_like(p).uniform_(-1, 1))
    return m


def random_state(name, m, B, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (m.num_layers * m.num_directions, B, m.hidden_size)
    h0 = 0.5 * torch.randn(shape, generator=g)
    return (h0, 0.5 * torch.randn(shape, generator=g)) if name in LSTMS else h0


# ---- import hygiene ------------------------------------------------------------------------

def test_import_fastseq_does_not_import_torch(tmp_path):
    code = ("import sys, fastseq; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'fastseq.torch' not in sys.modules, 'fastseq.torch imported'; "
            "import fastseq.torch as m; assert m.FastGRNN and 'torch' in sys.modules")
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)


# ---- EdgeML parity -------------------------------------------------------------------------

def load_edgeml(module, state_dict, cell):
    """Set a 1-layer unidirectional fastseq.torch module from an EdgeML (row layout) state_dict."""
    names = {"W": "weight_ih", "W1": "weight_ih_a", "W2": "weight_ih_b",
             "U": "weight_hh", "U1": "weight_hh_a", "U2": "weight_hh_b",
             "bias_update": "bias" if cell == "FastRNN" else "bias_update"}
    ours = {}
    for key, value in state_dict.items():
        key = key[len("cell."):] if key.startswith("cell.") else key
        value = torch.from_numpy(np.asarray(value, np.float32))
        # matrices transpose ([in, hid] -> [hid, in]); [1, H] biases and [1, 1] scalars flatten
        ours[names.get(key, key) + "_l0"] = value.T if key[0] in "WU" else value.reshape(-1)
    module.load_state_dict(ours, strict=True)


EDGEML_CASES = [
    # cell, w_rank, u_rank, gate, update, prefix
    ("FastRNN", None, None, None, "tanh", ""),
    ("FastRNN", None, None, None, "sigmoid", "cell."),
    ("FastRNN", None, None, None, "relu", ""),
    ("FastRNN", 5, 7, None, "tanh", "cell."),
    ("FastRNN", 4, None, None, "tanh", ""),
    ("FastRNN", None, 6, None, "sigmoid", ""),
    ("FastGRNN", None, None, "sigmoid", "tanh", ""),
    ("FastGRNN", None, None, "tanh", "sigmoid", "cell."),
    ("FastGRNN", None, None, "relu", "relu", ""),
    ("FastGRNN", None, None, "relu", "tanh", "cell."),
    ("FastGRNN", None, None, "sigmoid", "relu", ""),
    ("FastGRNN", 5, 7, "sigmoid", "tanh", "cell."),
    ("FastGRNN", 6, None, "tanh", "tanh", ""),
    ("FastGRNN", None, 3, "sigmoid", "sigmoid", ""),
]


@pytest.mark.parametrize("cell,w_rank,u_rank,gate,update,prefix", EDGEML_CASES)
def test_matches_edgeml_cell(cell, w_rank, u_rank, gate, update, prefix):
    I, H, T, B = 13, 37, 200, 3
    sd = make_state_dict(cell, I, H, w_rank=w_rank, u_rank=u_rank, prefix=prefix, seed=7)
    if gate == "relu":  # a relu gate can exceed 1 and blow the state up; keep it mostly below
        sd[prefix + "bias_gate"] = sd[prefix + "bias_gate"] - 1.5
    if cell == "FastRNN":
        m = fst.FastRNN(I, H, nonlinearity=update, w_rank=w_rank, u_rank=u_rank)
    else:
        m = fst.FastGRNN(I, H, gate_nonlinearity=gate, update_nonlinearity=update,
                         w_rank=w_rank, u_rank=u_rank)
    load_edgeml(m, sd, cell)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    ref_out, ref_h = run_sequence(cell, sd, x, h0, gate_nonlinearity=gate or "sigmoid",
                                  update_nonlinearity=update)
    with torch.no_grad():
        out, h_n = m(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert maxdiff(out, ref_out) <= TOL
    assert maxdiff(h_n[0], ref_h) <= TOL


def test_edgeml_col_layout_is_the_transpose():
    """The reference's 'col' layout (later EdgeML releases) is the same cell, transposed."""
    row = make_state_dict("FastGRNN", 6, 9, w_rank=3, u_rank=4, seed=2)
    col = {k: (v.T.copy() if k[0] in "WU" else v) for k, v in row.items()}
    x = np.random.default_rng(0).standard_normal((5, 2, 6))
    a, _ = run_sequence("FastGRNN", row, x)
    b, _ = run_sequence("FastGRNN", col, x, layout="col")
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_default_inits():
    H = 16
    bound = 1.0 / np.sqrt(H)
    m = fst.FastRNN(5, H, w_rank=3)
    assert m.alpha_l0.item() == -3.0 and m.beta_l0.item() == 3.0
    g = fst.FastGRNN(5, H)
    assert g.zeta_l0.item() == 1.0 and g.nu_l0.item() == -4.0
    for mod in (m, g, fst.PeepholeLSTM(5, H), fst.CoupledLSTM(5, H), fst.ResetBeforeGRU(5, H)):
        for name, p in mod.named_parameters():
            assert p.requires_grad and p.dtype == torch.float32
            if p.numel() > 1:
                assert p.abs().max().item() <= bound, name
    g2 = fst.FastGRNN(5, H, zeta_init=0.5, nu_init=-2.0)
    assert g2.zeta_l0.item() == 0.5 and g2.nu_l0.item() == -2.0


# ---- LSTM / GRU variants against torch and hand-written steps -------------------------------

@pytest.mark.parametrize("num_layers,bidirectional,batch_first", [
    (1, False, False), (2, True, False), (2, False, True), (3, True, True)])
def test_peephole_lstm_with_zero_peepholes_is_nn_lstm(num_layers, bidirectional, batch_first):
    I, H, T, B = 11, 19, 25, 4
    torch.manual_seed(0)
    ref = torch.nn.LSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                        batch_first=batch_first)
    m = fst.PeepholeLSTM(I, H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first)
    sd = dict(ref.state_dict())
    sd.update({k: torch.zeros(H) for k, _ in m.named_parameters() if k.startswith("peephole")})
    m.load_state_dict(sd, strict=True)
    x = torch.randn((B, T, I) if batch_first else (T, B, I))
    hx = random_state("PeepholeLSTM", m, B)
    with torch.no_grad():
        out, (h, c) = m(x, hx)
        rout, (rh, rc) = ref(x, hx)
    assert maxdiff(out, rout) <= TOL and maxdiff(h, rh) <= TOL and maxdiff(c, rc) <= TOL


def test_peephole_lstm_lengths_is_packed_nn_lstm():
    I, H, T, B = 7, 10, 12, 5
    lengths = torch.tensor([12, 3, 7, 1, 12])
    torch.manual_seed(1)
    ref = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    m = fst.PeepholeLSTM(I, H, num_layers=2, bidirectional=True)
    sd = dict(ref.state_dict())
    sd.update({k: torch.zeros(H) for k, _ in m.named_parameters() if k.startswith("peephole")})
    m.load_state_dict(sd, strict=True)
    x = torch.randn(T, B, I)
    hx = random_state("PeepholeLSTM", m, B)
    with torch.no_grad():
        out, (h, c) = m(x, hx, lengths=lengths)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        rpacked, (rh, rc) = ref(packed, hx)
        rout, _ = pad_packed_sequence(rpacked, total_length=T)
    assert maxdiff(out, rout) <= TOL and maxdiff(h, rh) <= TOL and maxdiff(c, rc) <= TOL


def _np(p):
    return p.detach().double().numpy()


def step_peephole(p, x, h, c):
    g = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, gg, o = np.split(g, 4, axis=-1)
    i = sigmoid(i + p["peephole_i"] * c)
    f = sigmoid(f + p["peephole_f"] * c)
    c = f * c + i * np.tanh(gg)
    o = sigmoid(o + p["peephole_o"] * c)      # the output gate sees the new cell
    return o * np.tanh(c), c


def step_coupled(p, x, h, c):
    g = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, gg, o = np.split(g, 3, axis=-1)
    i = sigmoid(i)
    c = (1.0 - i) * c + i * np.tanh(gg)
    return sigmoid(o) * np.tanh(c), c


def step_reset_before(p, x, h, c=None):
    H = h.shape[-1]
    wi, wh, bi, bh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    r = sigmoid(x @ wi[:H].T + bi[:H] + h @ wh[:H].T + bh[:H])
    z = sigmoid(x @ wi[H:2 * H].T + bi[H:2 * H] + h @ wh[H:2 * H].T + bh[H:2 * H])
    n = np.tanh(x @ wi[2 * H:].T + bi[2 * H:] + (r * h) @ wh[2 * H:].T + bh[2 * H:])
    return (1.0 - z) * n + z * h, None


@pytest.mark.parametrize("name,step", [("PeepholeLSTM", step_peephole),
                                       ("CoupledLSTM", step_coupled),
                                       ("ResetBeforeGRU", step_reset_before)])
def test_matches_hand_written_step(name, step):
    I, H, T, B = 9, 21, 40, 3
    m = make(name, I, H, seed=4)
    p = {k[:-len("_l0")]: _np(v) for k, v in m.named_parameters()}
    x = torch.randn(T, B, I)
    hx = random_state(name, m, B)
    h = _np(hx[0][0] if name in LSTMS else hx[0])
    c = _np(hx[1][0]) if name in LSTMS else None
    ys = []
    for t in range(T):
        h, c = step(p, _np(x[t]), h, c)
        ys.append(h)
    with torch.no_grad():
        out, state = m(x, hx)
    hn = state[0] if name in LSTMS else state
    assert maxdiff(out, np.stack(ys)) <= TOL
    assert maxdiff(hn[0], h) <= TOL
    if name in LSTMS:
        assert maxdiff(state[1][0], c) <= TOL


def test_reset_before_gru_differs_from_nn_gru():
    I, H, T, B = 8, 16, 20, 2
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H)
    m = fst.ResetBeforeGRU(I, H)
    m.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(T, B, I)
    with torch.no_grad():
        out, _ = m(x)
        rout, _ = ref(x)
    assert maxdiff(out, rout) > 1e-3


def test_peepholes_matter():
    m = make("PeepholeLSTM", 5, 8)
    x = torch.randn(6, 2, 5)
    with torch.no_grad():
        a, _ = m(x)
        m.peephole_o_l0.zero_()
        b, _ = m(x)
    assert maxdiff(a, b) > 1e-4


# ---- packed-sequence semantics: a batch with lengths == each sequence alone ---------------

@pytest.mark.parametrize("name", list(MODULES))
def test_lengths_match_each_sequence_alone(name):
    I, H, T = 6, 9, 10
    lengths = [10, 4, 1, 7]
    B = len(lengths)
    m = make(name, I, H, num_layers=2, bidirectional=True, seed=2)
    x = torch.randn(T, B, I)
    hx = random_state(name, m, B)
    with torch.no_grad():
        out, state = m(x, hx, lengths=torch.tensor(lengths))
        for b, n in enumerate(lengths):
            hb = tuple(s[:, b:b + 1] for s in hx) if name in LSTMS else hx[:, b:b + 1]
            ob, sb = m(x[:n, b:b + 1], hb)
            assert maxdiff(out[:n, b:b + 1], ob) <= TOL
            assert float(out[n:, b].abs().max() if n < T else 0.0) == 0.0
            if name in LSTMS:
                assert maxdiff(state[0][:, b:b + 1], sb[0]) <= TOL
                assert maxdiff(state[1][:, b:b + 1], sb[1]) <= TOL
            else:
                assert maxdiff(state[:, b:b + 1], sb) <= TOL


def test_lengths_equal_to_T_is_no_lengths():
    m = make("FastGRNN", 4, 6, bidirectional=True)
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        a, ha = m(x)
        b, hb = m(x, lengths=[5, 5, 5])
    assert maxdiff(a, b) == 0.0 and maxdiff(ha, hb) == 0.0


# ---- shapes, directions, stacking ----------------------------------------------------------

@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("num_layers,bidirectional,batch_first", [
    (1, False, False), (1, True, False), (3, False, True), (2, True, True)])
def test_shapes_and_directions(name, num_layers, bidirectional, batch_first):
    I, H, T, B = 5, 7, 6, 3
    D = 2 if bidirectional else 1
    m = make(name, I, H, num_layers=num_layers, bidirectional=bidirectional,
             batch_first=batch_first)
    x = torch.randn((B, T, I) if batch_first else (T, B, I))
    with torch.no_grad():
        out, state = m(x)
    h_n = state[0] if name in LSTMS else state
    assert out.shape == ((B, T, D * H) if batch_first else (T, B, D * H))
    assert h_n.shape == (num_layers * D, B, H)
    if name in LSTMS:
        assert state[1].shape == (num_layers * D, B, H)
    tm = out.transpose(0, 1) if batch_first else out
    # the last layer's forward h_n is its output at the last step; the reverse one's at step 0
    assert maxdiff(tm[-1, :, :H], h_n[-D]) == 0.0
    if bidirectional:
        assert maxdiff(tm[0, :, H:], h_n[-1]) == 0.0
    # layer k > 0 reads D*H features
    k = num_layers - 1
    w = [p for n, p in m.named_parameters() if n.startswith("weight_ih") and n.endswith(f"_l{k}")]
    assert w[0].shape[-1] == (I if k == 0 else D * H)
    # unbatched input [T, I] and state [L*D, H]
    with torch.no_grad():
        out1, state1 = m(x[0] if batch_first else x[:, 0], None)
    h1 = state1[0] if name in LSTMS else state1
    assert out1.shape == (T, D * H) and h1.shape == (num_layers * D, H)
    assert maxdiff(out1, tm[:, 0]) <= TOL


def test_parameter_names():
    def names(m):
        return [n for n, _ in m.named_parameters()]

    assert names(fst.FastRNN(3, 4)) == ["weight_ih_l0", "weight_hh_l0", "bias_l0", "alpha_l0",
                                        "beta_l0"]
    assert names(fst.FastRNN(3, 4, bias=False, w_rank=2, u_rank=1, bidirectional=True)) == [
        "weight_ih_a_l0", "weight_ih_b_l0", "weight_hh_a_l0", "weight_hh_b_l0", "alpha_l0", "beta_l0",
        "weight_ih_a_l0_reverse", "weight_ih_b_l0_reverse", "weight_hh_a_l0_reverse",
        "weight_hh_b_l0_reverse", "alpha_l0_reverse", "beta_l0_reverse"]
    g = fst.FastGRNN(3, 4, num_layers=2, w_rank=2)
    assert names(g) == [f"{b}_l{k}" for k in range(2) for b in (
        "weight_ih_a", "weight_ih_b", "weight_hh", "bias_gate", "bias_update", "zeta", "nu")]
    assert g.weight_ih_a_l0.shape == (2, 3) and g.weight_ih_b_l0.shape == (4, 2)
    assert g.weight_ih_a_l1.shape == (2, 4) and g.zeta_l1.shape == (1,)
    p = fst.PeepholeLSTM(3, 4)
    assert names(p) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                        "peephole_i_l0", "peephole_f_l0", "peephole_o_l0"]
    assert p.weight_ih_l0.shape == (16, 3) and p.peephole_f_l0.shape == (4,)
    c = fst.CoupledLSTM(3, 4, bias=False)
    assert names(c) == ["weight_ih_l0", "weight_hh_l0"] and c.weight_hh_l0.shape == (12, 4)
    r = fst.ResetBeforeGRU(3, 4, num_layers=2, bidirectional=True)
    assert set(names(r)) == set(dict(torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
                                     .named_parameters()))


def test_attributes_and_repr():
    m = fst.FastGRNN(3, 4, num_layers=2, bidirectional=True, gate_nonlinearity="tanh",
                     update_nonlinearity="relu", w_rank=2)
    assert (m.input_size, m.hidden_size, m.num_layers, m.bias, m.batch_first, m.bidirectional) \
        == (3, 4, 2, True, False, True)
    assert (m.gate_nonlinearity, m.update_nonlinearity, m.w_rank, m.u_rank) == ("tanh", "relu", 2, None)
    assert repr(m) == ("FastGRNN(3, 4, num_layers=2, bidirectional=True, w_rank=2, "
                       "gate_nonlinearity='tanh', update_nonlinearity='relu')")
    assert fst.FastRNN(3, 4, nonlinearity="relu").nonlinearity == "relu"


def test_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        fst.FastRNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="gate_nonlinearity"):
        fst.FastGRNN(3, 4, gate_nonlinearity="gelu")
    with pytest.raises(ValueError, match="update_nonlinearity: softsign takes no alpha"):
        fst.FastGRNN(3, 4, update_nonlinearity="softsign", update_alpha=0.5)
    with pytest.raises(ValueError, match="w_rank"):
        fst.FastGRNN(3, 4, w_rank=0)
    with pytest.raises(ValueError, match="hidden_size"):
        fst.CoupledLSTM(3, 0)
    m = fst.PeepholeLSTM(3, 4)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match="input features"):
        m(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="3-D"):
        m(torch.randn(5))
    with pytest.raises(ValueError, match="tuple"):
        m(x, torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="h0"):
        m(x, (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[5])
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[0, 5])
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[6, 5])


# ---- training ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODULES))
def test_trains(name):
    I, H, T, B = 5, 8, 12, 8
    m = make(name, I, H, num_layers=2, bidirectional=True, seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, I, generator=g)
    target = 0.5 * torch.randn(B, 2 * H, generator=g)
    lengths = torch.tensor([12, 12, 9, 5, 12, 3, 8, 12])
    opt = torch.optim.Adam(m.parameters(), lr=5e-2)
    idx = (lengths - 1).view(1, B, 1).expand(1, B, 2 * H)

    def loss_fn():
        out, _ = m(x, lengths=lengths)
        return torch.nn.functional.mse_loss(out.gather(0, idx)[0], target)

    first = None
    for _ in range(25):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if first is None:
            first = loss.item()
            missing = [n for n, p in m.named_parameters() if p.grad is None or
                       not torch.isfinite(p.grad).all()]
            assert not missing, missing
        opt.step()
    assert loss_fn().item() < 0.85 * first
