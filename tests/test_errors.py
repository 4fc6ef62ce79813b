"""Bad arguments give ValueError / TypeError with messages naming what was
expected and what was given -- never a crash, including straight calls into the
Cython binding."""

import re
import subprocess
import sys

import numpy as np
import pytest

import fastseq
from fastseq import _core


def mentions_shape(msg, shape):
    """True if msg spells `shape` as (a, b, c), [a, b, c] or (a,)."""
    shape = tuple(int(s) for s in shape)
    inner = ", ".join(map(str, shape))
    forms = {f"({inner})", f"[{inner}]", str(shape), "x".join(map(str, shape)),
             " x ".join(map(str, shape))}
    return any(f in msg for f in forms)


def mentions_number(msg, n):
    # a whole number: not part of a longer one nor of a decimal ("1..5" names 5)
    return re.search(rf"(?<!\d)(?<!\d\.){n}(?!\d)(?!\.\d)", msg) is not None


def raises(exc_type, fn, *args, **kwargs):
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture
def lstm():
    return fastseq.LSTM(13, 37, num_layers=2, bidirectional=True, seed=0)


@pytest.fixture
def gru():
    return fastseq.GRU(13, 37, num_layers=2, seed=0)


def x_of(*shape):
    return np.zeros(shape, np.float32)


# ---------------------------------------------------------------- layer calls


@pytest.mark.parametrize("shape", [(13,), (2, 3, 4, 13), ()])
def test_wrong_rank(lstm, shape):
    msg = raises(ValueError, lstm, x_of(*shape))
    assert "expect" in msg.lower(), msg
    assert mentions_shape(msg, shape), msg


@pytest.mark.parametrize("shape", [(5, 2, 12), (5, 2, 14), (5, 13, 2), (5, 12)])
def test_wrong_feature_size(lstm, shape):
    msg = raises(ValueError, lstm, x_of(*shape))
    assert mentions_number(msg, 13), msg
    assert mentions_shape(msg, shape), msg


def test_wrong_feature_size_batch_first():
    m = fastseq.GRU(13, 37, batch_first=True)
    msg = raises(ValueError, m, x_of(2, 5, 12))
    assert mentions_number(msg, 13) and mentions_shape(msg, (2, 5, 12)), msg


@pytest.mark.parametrize("bad", [(4, 3, 36), (4, 2, 37), (2, 3, 37), (3, 37), (4, 3, 37, 1)])
def test_state_shape_mismatch_lstm(lstm, bad):
    x = x_of(5, 3, 13)
    good = x_of(4, 3, 37)
    for hx in ((x_of(*bad), good), (good, x_of(*bad))):
        msg = raises(ValueError, lstm, x, hx=hx)
        assert mentions_shape(msg, (4, 3, 37)), msg
        assert mentions_shape(msg, bad), msg


@pytest.mark.parametrize("bad", [(2, 3, 36), (1, 3, 37), (2, 4, 37)])
def test_state_shape_mismatch_gru(gru, bad):
    msg = raises(ValueError, gru, x_of(5, 3, 13), hx=x_of(*bad))
    assert mentions_shape(msg, (2, 3, 37)), msg
    assert mentions_shape(msg, bad), msg


def test_state_shape_mismatch_unbatched(gru):
    msg = raises(ValueError, gru, x_of(5, 13), hx=x_of(2, 36))
    assert mentions_shape(msg, (2, 37)) and mentions_shape(msg, (2, 36)), msg


def test_lstm_state_must_be_pair(lstm):
    with pytest.raises((TypeError, ValueError)):
        lstm(x_of(5, 3, 13), hx=x_of(4, 3, 37))


@pytest.mark.parametrize("lengths", [[5, 3], [5, 3, 2, 1], []])
def test_lengths_wrong_count(lstm, lengths):
    msg = raises(ValueError, lstm, x_of(5, 3, 13), lengths=lengths)
    assert mentions_number(msg, 3), msg
    assert mentions_number(msg, len(lengths)), msg


@pytest.mark.parametrize("bad", [0, 6, -1, 100])
def test_lengths_out_of_range(lstm, bad):
    msg = raises(ValueError, lstm, x_of(5, 3, 13), lengths=[5, bad, 2])
    assert mentions_number(msg, 5), msg  # the allowed upper bound T
    assert mentions_number(msg, bad), msg


def test_lengths_2d(lstm):
    with pytest.raises(ValueError):
        lstm(x_of(5, 3, 13), lengths=[[5, 2, 1]])


# ---------------------------------------------------------------- load_state_dict


def test_load_state_dict_unknown_key(lstm):
    sd = lstm.state_dict()
    sd["weight_ih_l7"] = sd["weight_ih_l0"]
    msg = raises(ValueError, lstm.load_state_dict, sd)
    assert "weight_ih_l7" in msg, msg


def test_load_state_dict_missing_key(lstm):
    sd = lstm.state_dict()
    del sd["bias_hh_l1_reverse"]
    msg = raises(ValueError, lstm.load_state_dict, sd)
    assert "bias_hh_l1_reverse" in msg and "missing" in msg.lower(), msg


def test_load_state_dict_bias_into_biasless():
    m = fastseq.RNN(4, 5, bias=False)
    sd = fastseq.RNN(4, 5, bias=True).state_dict()
    msg = raises(ValueError, m.load_state_dict, sd)
    assert "bias_ih_l0" in msg or "bias_hh_l0" in msg, msg


@pytest.mark.parametrize("key, bad", [("weight_ih_l0", (148, 12)),
                                      ("weight_hh_l1_reverse", (37, 148)),
                                      ("bias_ih_l1", (147,)),
                                      ("weight_ih_l1", (148, 37))])
def test_load_state_dict_wrong_shape(lstm, key, bad):
    sd = lstm.state_dict()
    want = sd[key].shape
    sd[key] = np.zeros(bad, np.float32)
    msg = raises(ValueError, lstm.load_state_dict, sd)
    assert key in msg, msg
    assert mentions_shape(msg, want), msg
    assert mentions_shape(msg, bad), msg


def test_failed_load_keeps_model_usable(lstm):
    x = np.random.default_rng(0).standard_normal((4, 3, 13)).astype(np.float32)
    before = lstm(x)[0]
    sd = lstm.state_dict()
    sd["weight_hh_l1"] = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError):
        lstm.load_state_dict(sd)
    np.testing.assert_array_equal(lstm(x)[0], before)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("cls", [fastseq.LSTM, fastseq.GRU, fastseq.RNN])
def test_dropout_not_zero(cls):
    msg = raises(ValueError, cls, 4, 5, num_layers=2, dropout=0.5)
    assert "dropout" in msg.lower(), msg
    assert "0.5" in msg, msg


@pytest.mark.parametrize("kw", [dict(input_size=0), dict(hidden_size=0), dict(hidden_size=-3),
                                dict(num_layers=0)])
def test_bad_sizes(kw):
    args = dict(input_size=4, hidden_size=5)
    args.update(kw)
    with pytest.raises(ValueError):
        fastseq.LSTM(**args)


def test_bad_nonlinearity():
    msg = raises(ValueError, fastseq.RNN, 4, 5, nonlinearity="sigmoidal")
    assert "sigmoidal" in msg, msg


def test_from_torch_unsupported():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    for mod in (nn.Linear(3, 4), nn.Conv1d(3, 4, 2), nn.Sequential(nn.LSTM(3, 4))):
        msg = raises(TypeError, fastseq.from_torch, mod)
        assert type(mod).__name__ in msg, msg
    msg = raises(TypeError, fastseq.from_torch, "not a module")
    assert "str" in msg, msg


def test_from_torch_ignores_dropout():
    torch = pytest.importorskip("torch")
    m = fastseq.from_torch(torch.nn.GRU(3, 4, num_layers=2, dropout=0.3))
    assert m.num_layers == 2


# ---------------------------------------------------------------- the binding


I, H, L = 4, 3, 2
T, B = 5, 2


@pytest.fixture(params=["LSTM", "GRU"])
def core_model(request):
    cell = _core.CELL_LSTM if request.param == "LSTM" else _core.CELL_GRU
    m = _core.Model(cell, I, H, L, True, True)
    return request.param, m


def f32(n):
    return np.zeros(n, np.float32)


def good_args(kind):
    D = 2
    c = (lambda n: f32(n)) if kind == "LSTM" else (lambda n: None)
    return dict(x=f32(T * B * I), seq_len=T, batch=B, batch_first=False,
                lengths=None, h0=f32(L * D * B * H), c0=c(L * D * B * H))


def call(m, a):
    return m.forward(a["x"], a["seq_len"], a["batch"], a["batch_first"], a["lengths"],
                     a["h0"], a["c0"])


def test_core_forward_ok(core_model):
    kind, m = core_model
    y, h_n, c_n = call(m, good_args(kind))
    assert y.shape == (T, B, 2 * H) and h_n.shape == (L * 2, B, H)
    assert (c_n.shape == (L * 2, B, H)) if kind == "LSTM" else c_n is None
    a = good_args(kind)
    a["lengths"] = np.array([T, 1], np.int32)
    a["batch_first"] = True
    y, _, _ = call(m, a)
    assert y.shape == (B, T, 2 * H)
    assert not y[1, 1:].any()  # steps past a sequence's length are zero


@pytest.mark.parametrize("field, size", [
    ("x", T * B * I - 1), ("x", T * B * I + 1), ("x", 0),
    ("h0", L * 2 * B * H - 1), ("h0", B * H),
])
def test_core_forward_bad_counts(core_model, field, size):
    kind, m = core_model
    a = good_args(kind)
    a[field] = f32(size)
    msg = raises(ValueError, call, m, a)
    assert mentions_number(msg, size), msg


def test_core_forward_bad_c_counts():
    m = _core.Model(_core.CELL_LSTM, I, H, L, True, True)
    a = good_args("LSTM")
    a["c0"] = f32(3)
    with pytest.raises(ValueError):
        call(m, a)


@pytest.mark.parametrize("lengths", [[T], [T, 1, 1], [0, T], [T, T + 1], [-1, 2]])
def test_core_forward_bad_lengths(core_model, lengths):
    kind, m = core_model
    a = good_args(kind)
    a["lengths"] = np.array(lengths, np.int32)
    with pytest.raises(ValueError):
        call(m, a)


@pytest.mark.parametrize("seq_len, batch", [(0, B), (-1, B), (T, 0), (T, -2), (T + 1, B)])
def test_core_forward_bad_dims(core_model, seq_len, batch):
    kind, m = core_model
    a = good_args(kind)
    a["seq_len"], a["batch"] = seq_len, batch
    with pytest.raises(ValueError):
        call(m, a)


def test_core_forward_wrong_buffer_types(core_model):
    kind, m = core_model
    cases = {
        "x float64": ("x", np.zeros(T * B * I, np.float64)),
        "x strided": ("x", np.zeros(2 * T * B * I, np.float32)[::2]),
        "lengths int64": ("lengths", np.array([T, 1], np.int64)),
    }
    for name, (field, value) in cases.items():
        a = good_args(kind)
        a[field] = value
        try:
            call(m, a)
        except (ValueError, TypeError):
            continue
        pytest.fail(f"{kind}: forward accepted {name}")


@pytest.mark.parametrize("args", [
    (9, I, H, L, False, True), (-1, I, H, L, False, True), (_core.CELL_GRU, 0, H, L, False, True),
    (_core.CELL_GRU, I, 0, L, False, True), (_core.CELL_GRU, I, H, 0, False, True)])
def test_core_bad_config(args):
    with pytest.raises(ValueError):
        _core.Model(*args)


def test_core_set_param():
    m = _core.Model(_core.CELL_LSTM, I, H, L, True, True)
    w = np.arange(4 * H * I, dtype=np.float32)
    m.set_param(0, 1, 0, w)
    np.testing.assert_array_equal(m.get_param(0, 1, 0), w.reshape(4 * H, I))
    assert m.get_param(1, 0, 0).shape == (4 * H, 2 * H)
    assert m.get_param(1, 0, 2).shape == (4 * H,)
    bad = [
        ((0, 0, 0, f32(4 * H * I - 1)), "too few"),
        ((0, 0, 0, f32(4 * H * I + 1)), "too many"),
        ((1, 0, 0, f32(4 * H * I)), "layer 1 takes D*H inputs"),
        ((0, 0, 1, f32(4 * H * I)), "weight_hh size"),
        ((0, 0, 2, f32(4 * H + 1)), "bias size"),
        ((2, 0, 0, f32(4 * H * I)), "layer out of range"),
        ((-1, 0, 0, f32(4 * H * I)), "negative layer"),
        ((0, 2, 0, f32(4 * H * I)), "direction out of range"),
        ((0, 0, 99, f32(4 * H * I)), "unknown parameter"),
    ]
    for args, why in bad:
        try:
            m.set_param(*args[:3], args[3])
        except ValueError:
            continue
        pytest.fail(f"set_param{args[:3]} with {args[3].size} values ({why}) did not raise")
    # A failed set_param leaves the parameter as it was.
    np.testing.assert_array_equal(m.get_param(0, 1, 0), w.reshape(4 * H, I))


def test_core_set_param_unidirectional_and_biasless():
    m = _core.Model(_core.CELL_RNN_TANH, I, H, 1, False, False)
    with pytest.raises(ValueError):
        m.set_param(0, 1, 0, f32(H * I))  # no reverse direction
    with pytest.raises(ValueError):
        m.set_param(0, 0, 2, f32(H))  # no biases


def test_core_error_carries_c_message(core_model):
    kind, m = core_model
    a = good_args(kind)
    a["x"] = f32(7)
    msg = raises(ValueError, call, m, a)
    assert mentions_number(msg, T * B * I) and mentions_number(msg, 7), msg


# ---------------------------------------------------------------- import hygiene


def test_import_does_not_import_torch(tmp_path):
    code = ("import sys, fastseq; m = fastseq.LSTM(3, 4); m(__import__('numpy').zeros((2, 1, 3)));"
            "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
