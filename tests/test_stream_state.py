"""Streams and single-step cells against torch over whole sequences, above the threading
threshold at 1 and 2 threads on every ISA: `reset()` must clear every state (an LSTM's c
too), the `state` getter must equal torch's final states, and a state set back (on the
same stream or a fresh one) must replay the same steps torch computes from it."""
import numpy as np
import pytest

import fastseq
from _parity import THREADS, compare, excess, num_threads, run_reference
from _variants import INPUT, STEPS, VARIANTS, build, seed_of, torch

LAYERS = 2


def as_tuple(state):
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def torch_state(state):
    """A fastseq stream state (numpy) as the hx a torch module takes."""
    parts = tuple(torch.from_numpy(np.ascontiguousarray(s)) for s in as_tuple(state))
    return parts if len(parts) > 1 else parts[0]


def run_stream(stream, x):
    """Step a stream through x [T, B, I]; the outputs stacked to [T, B, features]."""
    return np.stack([stream.step(x[t].numpy()) for t in range(x.shape[0])])


def check_states(got, want, case, failures):
    got, want = as_tuple(got), as_tuple(want)
    if len(got) != len(want):
        failures.append(f"{case}: {len(got)} states, torch has {len(want)}")
    for name, g, w in zip(("h", "c"), got, want):
        if not (e := excess(g, w)) <= 1.0:
            failures.append(f"{case}: state {name} {e:.3g}x tol")


def check_outputs(got, want, case, failures):
    if not (e := excess(got, want)) <= 1.0:
        failures.append(f"{case}: outputs {e:.3g}x tol")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_stream_reset_state_and_replay_match_torch(variant, each_isa):
    module, _, H, B = build(variant, num_layers=LAYERS, seed=seed_of("stream", variant))
    layer = fastseq.from_torch(module)
    g = torch.Generator().manual_seed(seed_of("stream-x", variant))
    warm, x, more = (torch.randn(T, B, INPUT, generator=g) for T in (5, STEPS, 6))
    y_x, state_x = run_reference(torch, module, x)               # from the zero state
    y_more, state_more = run_reference(torch, module, more, state_x)  # continuing from x's end
    failures = []
    for isa in each_isa():
        for n in THREADS:
            case = f"{variant} isa={isa} threads={n}"
            with num_threads(n):
                stream = layer.stream(batch=B)
                run_stream(stream, warm)
                stream.reset()
                check_outputs(run_stream(stream, x), y_x, case + " after reset", failures)
                saved = stream.state
                check_states(saved, state_x, case + " state getter", failures)
                check_states(stream.get_state(), state_x, case + " get_state()", failures)
                first = run_stream(stream, more)
                check_outputs(first, y_more, case + " continuing", failures)
                check_states(stream.state, state_more, case + " final state", failures)
                stream.state = saved  # rewind, then replay
                replay = run_stream(stream, more)
                if not np.array_equal(replay, first):
                    failures.append(f"{case}: replay after state set differs from the first run")
                fresh = layer.stream(batch=B)
                fresh.state = torch_state(saved)  # torch tensors, on another stream
                check_outputs(run_stream(fresh, more), y_more, case + " fresh stream", failures)
    assert not failures, "\n".join(failures[:20])


def test_stream_set_state_from_torch_hx(each_isa):
    """A state that did not come from fastseq (random, as torch hx) steps like torch."""
    module, _, H, B = build("lstm", num_layers=LAYERS, seed=seed_of("hx"))
    layer = fastseq.from_torch(module)
    g = torch.Generator().manual_seed(3)
    h0, c0 = torch.randn(LAYERS, B, H, generator=g), 3 * torch.randn(LAYERS, B, H, generator=g)
    x = torch.randn(STEPS, B, INPUT, generator=g)
    y, state = run_reference(torch, module, x, (h0, c0))
    failures = []
    for isa in each_isa():
        for n in THREADS:
            with num_threads(n):
                stream = layer.stream(batch=B)
                stream.set_state(h0, c0)
                check_outputs(run_stream(stream, x), y, f"isa={isa} threads={n}", failures)
                check_states(stream.state, state, f"isa={isa} threads={n}", failures)
    assert not failures, "\n".join(failures)


CELLS = {
    "LSTMCell": (lambda I, H: torch.nn.LSTMCell(I, H), fastseq.LSTMCell, 128),
    "GRUCell": (lambda I, H: torch.nn.GRUCell(I, H), fastseq.GRUCell, 128),
    "RNNCell_tanh": (lambda I, H: torch.nn.RNNCell(I, H), fastseq.RNNCell, 256),
    "RNNCell_relu": (lambda I, H: torch.nn.RNNCell(I, H, nonlinearity="relu"),
                     lambda I, H: fastseq.RNNCell(I, H, nonlinearity="relu"), 256),
}


@pytest.mark.parametrize("batch", [3, 16], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("name", sorted(CELLS))
def test_single_step_cells_over_a_sequence(name, batch, each_isa):
    """Each step's state fed back in, as a user's loop does; B=16 is above the threshold."""
    make_torch, make_ours, H = CELLS[name]
    torch.manual_seed(seed_of("cell", name))
    cell = make_torch(INPUT, H).eval()
    ours = make_ours(INPUT, H)
    ours.load_state_dict({k: v.numpy() for k, v in cell.state_dict().items()})
    x = torch.randn(STEPS, batch, INPUT, generator=torch.Generator().manual_seed(5))
    lstm = name == "LSTMCell"
    want, state = [], None
    with torch.no_grad():
        for t in range(STEPS):
            state = cell(x[t], state)
            want.append(state)
    failures = []
    for isa in each_isa():
        for n in THREADS:
            state = None
            with num_threads(n):
                for t in range(STEPS):
                    state = ours(x[t].numpy(), state)
                    w = want[t]
                    got, ref = (state, w) if lstm else ((state,), (w,))
                    for part, (g, r) in zip("hc", zip(got, ref)):
                        if not (e := excess(g, r)) <= 1.0:
                            failures.append(f"{name} isa={isa} threads={n} step {t} {part}: {e:.3g}x tol")
    assert not failures, "\n".join(failures[:20])
