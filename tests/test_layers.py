"""Layer behaviour that needs no torch: ISA switching, state_dict, shapes,
packed-sequence semantics, .npz round trip, NaN propagation."""

import numpy as np
import pytest

import fastseq

CELLS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]


def make(cell, input_size=13, hidden_size=37, **kw):
    if cell == "LSTM":
        return fastseq.LSTM(input_size, hidden_size, **kw)
    if cell == "GRU":
        return fastseq.GRU(input_size, hidden_size, **kw)
    nl = "tanh" if cell == "RNN_TANH" else "relu"
    return fastseq.RNN(input_size, hidden_size, nonlinearity=nl, **kw)


def split(result):
    out, state = result
    if isinstance(state, tuple):
        return out, state[0], state[1]
    return out, state, None


def gates(cell):
    return {"LSTM": 4, "GRU": 3}.get(cell, 1)


def test_isa_api():
    isas = fastseq.available_isas()
    assert "generic" in isas
    assert fastseq.isa() in isas
    assert isinstance(fastseq.__version__, str)
    with pytest.raises(ValueError):
        fastseq.set_isa("no-such-isa")


def test_isa_fixture_sets_level(isa):
    assert fastseq.isa() == isa


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_keys_and_shapes(cell, bias, bidirectional):
    I, H, L = 13, 37, 3
    m = make(cell, I, H, num_layers=L, bias=bias, bidirectional=bidirectional, seed=0)
    sd = m.state_dict()
    D = 2 if bidirectional else 1
    G = gates(cell)
    expected = {}
    for k in range(L):
        for suffix in ([""] + (["_reverse"] if bidirectional else [])):
            in_k = I if k == 0 else D * H
            expected[f"weight_ih_l{k}{suffix}"] = (G * H, in_k)
            expected[f"weight_hh_l{k}{suffix}"] = (G * H, H)
            if bias:
                expected[f"bias_ih_l{k}{suffix}"] = (G * H,)
                expected[f"bias_hh_l{k}{suffix}"] = (G * H,)
    assert sorted(sd) == sorted(expected)
    bound = 1.0 / np.sqrt(H)
    for key, shape in expected.items():
        assert sd[key].shape == shape, key
        assert sd[key].dtype == np.float32, key
        # torch-style init: U(-1/sqrt(H), 1/sqrt(H)), not all zero
        assert np.all(np.abs(sd[key]) <= bound + 1e-7), key
        assert np.any(sd[key] != 0), key


def test_seed_is_deterministic():
    a = fastseq.LSTM(8, 16, seed=3).state_dict()
    b = fastseq.LSTM(8, 16, seed=3).state_dict()
    c = fastseq.LSTM(8, 16, seed=4).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("cell", CELLS)
def test_attributes(cell):
    m = make(cell, 5, 7, num_layers=2, bias=False, batch_first=True, bidirectional=True)
    assert (m.input_size, m.hidden_size, m.num_layers) == (5, 7, 2)
    assert not m.bias
    assert m.batch_first
    assert m.bidirectional
    assert m.mode == cell
    assert isinstance(repr(m), str) and "5" in repr(m) and "7" in repr(m)


@pytest.mark.parametrize("cell", CELLS)
def test_output_shapes_and_types(cell, isa):
    T, B, I, H, L = 6, 4, 5, 7, 2
    m = make(cell, I, H, num_layers=L, bidirectional=True, seed=1)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    out, h_n, c_n = split(m(x))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (T, B, 2 * H)
    assert h_n.shape == (2 * L, B, H) and h_n.dtype == np.float32
    if cell == "LSTM":
        assert c_n.shape == (2 * L, B, H) and c_n.dtype == np.float32
    else:
        assert c_n is None
    # Output of the last layer: forward half at the last step is h_n of the
    # last layer's forward direction; reverse half at step 0 is its reverse one.
    np.testing.assert_array_equal(out[-1, :, :H], h_n[2 * (L - 1)])
    np.testing.assert_array_equal(out[0, :, H:], h_n[2 * (L - 1) + 1])


@pytest.mark.parametrize("cell", CELLS)
def test_batch_first_is_a_transpose(cell, isa):
    T, B, I, H = 9, 3, 5, 7
    a = make(cell, I, H, num_layers=2, bidirectional=True, seed=2)
    b = make(cell, I, H, num_layers=2, bidirectional=True, batch_first=True)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    lengths = [9, 4, 1]
    ra = split(a(x, lengths=lengths))
    rb = split(b(np.ascontiguousarray(x.transpose(1, 0, 2)), lengths=lengths))
    np.testing.assert_allclose(rb[0].transpose(1, 0, 2), ra[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(rb[1], ra[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_matches_batch_of_one(cell, isa):
    T, I, H = 10, 5, 7
    m = make(cell, I, H, num_layers=2, bidirectional=True, seed=3)
    x = np.random.default_rng(2).standard_normal((T, I)).astype(np.float32)
    o1, h1, c1 = split(m(x))
    o3, h3, c3 = split(m(x[:, None, :]))
    assert o1.shape == (T, 2 * H) and h1.shape == (4, H)
    np.testing.assert_allclose(o1, o3[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(h1, h3[:, 0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_semantics(cell, isa):
    """Each sequence behaves as if run alone, truncated to its length; outputs past
    the end are zero."""
    T, I, H, L = 8, 5, 7, 2
    m = make(cell, I, H, num_layers=L, bidirectional=True, seed=4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, 3, I)).astype(np.float32)
    lengths = np.array([3, 8, 1])
    out, h_n, c_n = split(m(x, lengths=lengths))
    for b, n in enumerate(lengths):
        o_b, h_b, c_b = split(m(np.ascontiguousarray(x[:n, b:b + 1])))
        np.testing.assert_allclose(out[:n, b], o_b[:, 0], rtol=0, atol=1e-6,
                                   err_msg=f"sequence {b} length {n}")
        assert np.all(out[n:, b] == 0), f"sequence {b}: output past its end is not zero"
        np.testing.assert_allclose(h_n[:, b], h_b[:, 0], rtol=0, atol=1e-6)
        if c_n is not None:
            np.testing.assert_allclose(c_n[:, b], c_b[:, 0], rtol=0, atol=1e-6)
    # numpy ints, a list and a tuple are all accepted
    for form in (lengths.tolist(), tuple(lengths.tolist()), lengths.astype(np.int32)):
        np.testing.assert_array_equal(split(m(x, lengths=form))[0], out)


@pytest.mark.parametrize("cell", CELLS)
def test_npz_round_trip_without_torch(cell, tmp_path, isa):
    a = make(cell, 6, 9, num_layers=2, bidirectional=True, seed=5)
    path = tmp_path / "w.npz"
    np.savez(path, **a.state_dict())
    b = make(cell, 6, 9, num_layers=2, bidirectional=True, seed=6)
    with np.load(path) as npz:
        b.load_state_dict(dict(npz))
    x = np.random.default_rng(4).standard_normal((7, 2, 6)).astype(np.float32)
    for ra, rb in zip(split(a(x)), split(b(x))):
        if ra is not None:
            np.testing.assert_array_equal(ra, rb)


def test_inputs_not_modified(isa):
    m = fastseq.LSTM(5, 7, num_layers=2, bidirectional=True, seed=7)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 5)).astype(np.float32)
    h0 = rng.standard_normal((4, 3, 7)).astype(np.float32)
    c0 = rng.standard_normal((4, 3, 7)).astype(np.float32)
    copies = [x.copy(), h0.copy(), c0.copy()]
    m(x, hx=(h0, c0), lengths=[6, 2, 5])
    for before, after in zip(copies, (x, h0, c0)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("cell", CELLS)
def test_nan_in_input_propagates(cell, isa):
    """A NaN in one input row poisons that sequence from its step on, and only it."""
    T, B, I, H = 10, 3, 5, 7
    m = make(cell, I, H, seed=8)  # one layer, forward only
    x = np.random.default_rng(6).standard_normal((T, B, I)).astype(np.float32)
    x[4, 1, 2] = np.nan
    out, h_n, c_n = split(m(x))
    assert np.all(np.isnan(out[4:, 1])), "NaN did not propagate along the sequence"
    assert np.all(np.isfinite(out[:4, 1]))
    assert np.all(np.isfinite(out[:, [0, 2]])), "NaN leaked into other sequences"
    assert np.all(np.isnan(h_n[:, 1]))
    assert np.all(np.isfinite(h_n[:, [0, 2]]))
    if c_n is not None:
        assert np.all(np.isnan(c_n[:, 1]))


THREADED_MODELS = {  # every phase and input split; the plain cells big enough to pass the
    # threading threshold (4e5 FLOP per step) at batch 1 too, where one thread runs fused steps
    "LSTM": lambda: make("LSTM", 64, 256, num_layers=2, bidirectional=True, seed=9),
    "GRU": lambda: make("GRU", 64, 320, num_layers=2, bidirectional=True, seed=9),
    "RNN relu": lambda: fastseq.RNN(64, 512, nonlinearity="relu", seed=9),
    "LSTM proj batch_first": lambda: fastseq.LSTM(64, 256, proj_size=72, batch_first=True, seed=9),
    "GRU reset-before": lambda: fastseq.GRU(64, 256, reset_after=False, seed=9),
    "FastGRNN low-rank": lambda: fastseq.FastGRNN(64, 256, w_rank=24, u_rank=40, bidirectional=True, seed=9),
}


@pytest.mark.skipif(not hasattr(fastseq, "set_num_threads"), reason="no thread control yet")
@pytest.mark.parametrize("name", list(THREADED_MODELS))
def test_thread_count_does_not_change_results(name, isa):
    """Header promise: bit-identical results for any thread count."""
    m = THREADED_MODELS[name]()
    rng = np.random.default_rng(7)
    cases = [(rng.standard_normal((12, 1, 64)).astype(np.float32), None),
             (rng.standard_normal((12, 16, 64)).astype(np.float32), [12, 3] * 8)]
    if m.batch_first:
        cases = [(np.ascontiguousarray(x.transpose(1, 0, 2)), lengths) for x, lengths in cases]
    previous = fastseq.get_num_threads()
    try:
        results = {}
        for n in (1, 2, 3):
            fastseq.set_num_threads(n)
            results[n] = [split(m(x, lengths=lengths)) for x, lengths in cases]
    finally:
        fastseq.set_num_threads(previous)
    for n in (2, 3):
        for (x, _), r1, rn in zip(cases, results[1], results[n]):
            for a, b in zip(r1, rn):
                if a is not None:
                    np.testing.assert_array_equal(a, b, err_msg=f"{name}: threads 1 vs {n}, x {x.shape}")


@pytest.mark.skipif(not hasattr(fastseq, "set_num_threads"), reason="no thread control yet")
@pytest.mark.parametrize("name", ["LSTM", "GRU", "FastGRNN low-rank"])
@pytest.mark.parametrize("batch", [1, 16])  # batch 1 on one thread: the fused step
def test_thread_count_does_not_change_stream_results(name, batch, isa):
    m = THREADED_MODELS[name]()
    if m.bidirectional:
        m = type(m)(**{**m.config(), "bidirectional": False}, seed=9)
    x = np.random.default_rng(3).standard_normal((6, batch, 64)).astype(np.float32)
    previous = fastseq.get_num_threads()
    try:
        results = {}
        for n in (1, 2, 3):
            fastseq.set_num_threads(n)
            st = m.stream(batch=batch)
            results[n] = np.stack([st.step(x[t]) for t in range(len(x))])
    finally:
        fastseq.set_num_threads(previous)
    for n in (2, 3):
        np.testing.assert_array_equal(results[1], results[n], err_msg=f"{name} stream: threads 1 vs {n}")
