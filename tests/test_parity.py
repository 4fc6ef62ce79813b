"""Parity of fastseq layers against torch.nn.LSTM / GRU / RNN (DESIGN.md section 2).

Target: max abs difference <= 1e-5 on output, h_n and c_n, weights from torch's
default init, sequences up to 200 steps, on every ISA.
"""

import zlib

import numpy as np
import pytest

import fastseq

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

# One torch thread: the references are small, and on a 2-core machine torch's
# thread pool fighting fastseq's OpenMP workers makes each call ~30x slower.
torch.set_num_threads(1)

TOL = 1e-5

CELLS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
SIZES = [(13, 37), (64, 64)]


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


def make_torch(cell, input_size, hidden_size, num_layers=1, bias=True,
               bidirectional=False, batch_first=False, seed=0):
    torch.manual_seed(seed)
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first,
              bidirectional=bidirectional)
    if cell == "LSTM":
        mod = torch.nn.LSTM(input_size, hidden_size, **kw)
    elif cell == "GRU":
        mod = torch.nn.GRU(input_size, hidden_size, **kw)
    else:
        nl = "tanh" if cell == "RNN_TANH" else "relu"
        mod = torch.nn.RNN(input_size, hidden_size, nonlinearity=nl, **kw)
    return mod.eval()


def make_fastseq(cell, input_size, hidden_size, num_layers=1, bias=True,
                 bidirectional=False, batch_first=False):
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first,
              bidirectional=bidirectional)
    if cell == "LSTM":
        return fastseq.LSTM(input_size, hidden_size, **kw)
    if cell == "GRU":
        return fastseq.GRU(input_size, hidden_size, **kw)
    nl = "tanh" if cell == "RNN_TANH" else "relu"
    return fastseq.RNN(input_size, hidden_size, nonlinearity=nl, **kw)


def torch_run(mod, x, hx=None, lengths=None):
    """Run a time-major torch module the way fastseq's contract describes.

    Returns numpy (output, h_n, c_n_or_None)."""
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if hx is not None:
            if isinstance(hx, tuple):
                hx = tuple(torch.from_numpy(np.asarray(h, np.float32)) for h in hx)
            else:
                hx = torch.from_numpy(np.asarray(hx, np.float32))
        if lengths is None:
            out, state = mod(xt, hx)
        else:
            T = x.shape[1] if mod.batch_first else x.shape[0]
            packed = pack_padded_sequence(xt, torch.as_tensor(lengths, dtype=torch.int64),
                                          batch_first=mod.batch_first, enforce_sorted=False)
            out, state = mod(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=mod.batch_first, total_length=T)
    if isinstance(state, tuple):
        return out.numpy(), state[0].numpy(), state[1].numpy()
    return out.numpy(), state.numpy(), None


def split(result):
    """fastseq result -> (output, h_n, c_n_or_None)."""
    out, state = result
    if isinstance(state, tuple):
        return out, state[0], state[1]
    return out, state, None


def max_diffs(got, want):
    """Dict name -> max abs difference (inf on a shape or dtype mismatch)."""
    diffs = {}
    for name, g, w in zip(("output", "h_n", "c_n"), got, want):
        if w is None and g is None:
            continue
        if g is None or w is None or not isinstance(g, np.ndarray) or g.shape != w.shape:
            diffs[name] = float("inf")
            continue
        if g.dtype != np.float32:
            diffs[name] = float("inf")
            continue
        d = np.abs(g.astype(np.float64) - w.astype(np.float64))
        diffs[name] = float(np.nanmax(d)) if d.size else 0.0
        if np.isnan(g).any() != np.isnan(w).any():
            diffs[name] = float("nan")
    return diffs


def describe(got, want):
    parts = []
    for name, g, w in zip(("output", "h_n", "c_n"), got, want):
        gs = None if g is None else getattr(g, "shape", type(g))
        ws = None if w is None else w.shape
        gd = None if g is None else getattr(g, "dtype", None)
        parts.append(f"{name}: got {gs} {gd}, want {ws}")
    return "; ".join(parts)


def random_lengths(rng, T, B):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.integers(B)] = T
    return lengths


def check(got, want, case, failures):
    diffs = max_diffs(got, want)
    bad = {k: v for k, v in diffs.items() if not v <= TOL}
    if bad:
        detail = ", ".join(f"{k} max|diff|={v:.3g}" for k, v in bad.items())
        if any(v == float("inf") for v in bad.values()):
            detail += " [" + describe(got, want) + "]"
        failures.append(f"{case}: {detail}")


# ---------------------------------------------------------------------------
# The full grid. One test per (cell, num_layers, bidirectional, sizes); inside:
# bias x T x B x lengths, each torch reference computed once and compared on
# every ISA, time-major and batch_first.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"I{s[0]}H{s[1]}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("cell", CELLS)
def test_grid(cell, num_layers, bidirectional, sizes, each_isa):
    I, H = sizes
    failures = []
    ncases = 0
    for bias in (True, False):
        seed = seed_of(cell, num_layers, bidirectional, I, H, bias)
        mod = make_torch(cell, I, H, num_layers, bias, bidirectional, seed=seed)
        fs_tm = fastseq.from_torch(mod)
        fs_bf = make_fastseq(cell, I, H, num_layers, bias, bidirectional, batch_first=True)
        fs_bf.load_state_dict(mod.state_dict())
        rng = np.random.default_rng(seed)
        for T in (1, 200):
            for B in (1, 5):
                x = rng.standard_normal((T, B, I)).astype(np.float32)
                x_bf = np.ascontiguousarray(x.transpose(1, 0, 2))
                for lengths in (None, random_lengths(rng, T, B)):
                    want = torch_run(mod, x, lengths=lengths)
                    want_bf = (np.ascontiguousarray(want[0].transpose(1, 0, 2)),) + want[1:]
                    lens = None if lengths is None else lengths.tolist()
                    for isa_name in each_isa():
                        case = (f"{cell} L={num_layers} bidir={bidirectional} bias={bias} "
                                f"I={I} H={H} T={T} B={B} lengths={lens} isa={isa_name}")
                        got = split(fs_tm(x, lengths=lengths))
                        check(got, want, case + " batch_first=False", failures)
                        got = split(fs_bf(x_bf, lengths=lengths))
                        check(got, want_bf, case + " batch_first=True", failures)
                        ncases += 2
    assert ncases > 0
    assert not failures, f"{len(failures)}/{ncases} cases over tolerance {TOL}:\n" + "\n".join(
        failures[:25])


# ---------------------------------------------------------------------------
# Initial states, conversions, input forms.
# ---------------------------------------------------------------------------


def random_hx(rng, cell, num_layers, D, B, H, unbatched=False):
    shape = (num_layers * D, H) if unbatched else (num_layers * D, B, H)
    h0 = (0.5 * rng.standard_normal(shape)).astype(np.float32)
    if cell == "LSTM":
        c0 = (0.5 * rng.standard_normal(shape)).astype(np.float32)
        return (h0, c0)
    return h0


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", CELLS)
def test_initial_state(cell, use_lengths, batch_first, isa):
    I, H, L, T, B = 13, 37, 2, 17, 4
    mod = make_torch(cell, I, H, L, True, True, batch_first=batch_first,
                     seed=seed_of("hx", cell))
    fs = fastseq.from_torch(mod)
    assert fs.batch_first == batch_first
    rng = np.random.default_rng(seed_of("hx", cell, use_lengths))
    shape = (B, T, I) if batch_first else (T, B, I)
    x = rng.standard_normal(shape).astype(np.float32)
    hx = random_hx(rng, cell, L, 2, B, H)
    lengths = random_lengths(rng, T, B) if use_lengths else None
    want = torch_run(mod, x, hx=hx, lengths=lengths)
    got = split(fs(x, hx=hx, lengths=lengths))
    failures = []
    check(got, want, f"{cell} hx lengths={lengths} isa={isa}", failures)
    assert not failures, failures
    # Initial state as torch tensors works the same.
    if cell == "LSTM":
        hx_t = tuple(torch.from_numpy(h) for h in hx)
    else:
        hx_t = torch.from_numpy(hx)
    got_t = split(fs(x, hx=hx_t, lengths=lengths))
    for g, g_t in zip(got, got_t):
        if g is not None:
            np.testing.assert_array_equal(g, g_t)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_from_torch_state_dict_round_trip(cell, bias):
    mod = make_torch(cell, 13, 37, 2, bias, True, batch_first=True,
                     seed=seed_of("rt", cell, bias))
    fs = fastseq.from_torch(mod)
    assert fs.input_size == 13
    assert fs.hidden_size == 37
    assert fs.num_layers == 2
    assert fs.bias == bias
    assert fs.batch_first is True or fs.batch_first == 1
    assert fs.bidirectional is True or fs.bidirectional == 1
    assert fs.mode == cell
    assert cell.split("_")[0] in repr(fs)
    want = mod.state_dict()
    got = fs.state_dict()
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert isinstance(got[key], np.ndarray), key
        assert got[key].dtype == np.float32, key
        np.testing.assert_array_equal(got[key], value.numpy(), err_msg=key)
    # And back into torch: a fresh module loaded from fastseq's dict is identical.
    mod2 = make_torch(cell, 13, 37, 2, bias, True, batch_first=True, seed=12345)
    mod2.load_state_dict({k: torch.from_numpy(v) for k, v in got.items()})
    for key, value in mod2.state_dict().items():
        assert torch.equal(value, want[key]), key


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input(cell, batch_first, isa):
    I, H, L, T = 13, 37, 2, 11
    mod = make_torch(cell, I, H, L, True, True, batch_first=batch_first,
                     seed=seed_of("unbatched", cell))
    fs = fastseq.from_torch(mod)
    rng = np.random.default_rng(seed_of("unbatched", cell))
    x = rng.standard_normal((T, I)).astype(np.float32)  # [T, I] whatever batch_first
    failures = []
    want = torch_run(mod, x)
    got = split(fs(x))
    assert got[0].shape == (T, 2 * H)
    assert got[1].shape == (2 * L, H)
    check(got, want, f"{cell} unbatched isa={isa}", failures)
    hx = random_hx(rng, cell, L, 2, 1, H, unbatched=True)
    want = torch_run(mod, x, hx=hx)
    got = split(fs(x, hx=hx))
    check(got, want, f"{cell} unbatched with hx isa={isa}", failures)
    assert not failures, failures


def _input_variants(x):
    """(name, converted input) pairs that all hold the same float32 values as x."""
    T, B, I = x.shape
    wide = np.zeros((T, B, 2 * I), np.float32)
    wide[:, :, ::2] = x
    fortran = np.asfortranarray(x)
    reversed_t = np.ascontiguousarray(x[::-1])[::-1]
    return [
        ("float64", x.astype(np.float64)),
        ("float16-exact", x.astype(np.float16)),  # compared against its own float32 value
        ("strided", wide[:, :, ::2]),
        ("fortran", fortran),
        ("negative-stride", reversed_t),
        ("torch", torch.from_numpy(x.copy())),
        ("torch-float64", torch.from_numpy(x.astype(np.float64))),
        ("torch-requires-grad", torch.from_numpy(x.copy()).requires_grad_(True)),
        ("torch-noncontiguous", torch.from_numpy(wide)[:, :, ::2]),
        ("list", x.tolist()),
    ]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_input_forms(cell, isa):
    I, H, T, B = 13, 37, 9, 3
    mod = make_torch(cell, I, H, 1, True, False, seed=seed_of("forms", cell))
    fs = fastseq.from_torch(mod)
    rng = np.random.default_rng(seed_of("forms"))
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    failures = []
    for name, xv in _input_variants(x):
        x32 = x.astype(np.float16).astype(np.float32) if name == "float16-exact" else x
        want = torch_run(mod, x32)
        try:
            got = split(fs(xv))
        except Exception as exc:  # report every form, not just the first
            failures.append(f"{name}: raised {type(exc).__name__}: {exc}")
            continue
        kind = torch.Tensor if name.startswith("torch") else np.ndarray  # torch in, torch out
        if not all(isinstance(v, kind) for v in got if v is not None):
            failures.append(f"{name}: expected {kind.__name__} results, got {[type(v).__name__ for v in got]}")
            continue
        got = tuple(None if v is None else np.asarray(v) for v in got)
        check(got, want, f"{cell} input {name} isa={isa}", failures)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("cell", CELLS)
def test_load_state_dict_from_npz(cell, tmp_path, isa):
    """Weights trained in torch move as a plain .npz; loading needs no torch."""
    mod = make_torch(cell, 13, 37, 2, True, True, seed=seed_of("npz", cell))
    path = tmp_path / "weights.npz"
    np.savez(path, **{k: v.numpy() for k, v in mod.state_dict().items()})
    fs = make_fastseq(cell, 13, 37, 2, True, True)
    with np.load(path) as npz:
        fs.load_state_dict(dict(npz))
    x = np.random.default_rng(1).standard_normal((20, 3, 13)).astype(np.float32)
    failures = []
    check(split(fs(x)), torch_run(mod, x), f"{cell} npz isa={isa}", failures)
    assert not failures, failures


@pytest.mark.parametrize("cell", CELLS)
def test_nan_propagates_like_torch(cell, isa):
    I, H, T, B = 13, 37, 12, 3
    mod = make_torch(cell, I, H, 2, True, True, seed=seed_of("nan", cell))
    fs = fastseq.from_torch(mod)
    x = np.random.default_rng(2).standard_normal((T, B, I)).astype(np.float32)
    x[5, 1, 3] = np.nan
    want = torch_run(mod, x)
    got = split(fs(x))
    for name, g, w in zip(("output", "h_n", "c_n"), got, want):
        if w is None:
            continue
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w),
                                      err_msg=f"{cell} {name}: NaN pattern differs from torch")
        finite = ~np.isnan(w)
        assert np.max(np.abs(g[finite] - w[finite])) <= TOL, f"{cell} {name}"
