"""Shared pieces of the parity tests that compare fastseq with a torch reference
computed in the test: the tolerance rule, thread-count switching, references with
packed-sequence semantics, and the per-step work the C drivers use to pick threads."""
import contextlib

import numpy as np

import fastseq

# DESIGN.md section 2: max abs difference <= 1e-5 x max(1, |reference|), element by element.
TOL = 1e-5

# src/threads.c FS_PARALLEL_MIN_FLOPS: below this many FLOPs per step a time loop runs on one
# thread, so a parity case must sit clearly above it to reach the threaded code.
PARALLEL_MIN_FLOPS = 4.0e5
THREADS = (1, 2)  # one thread, and the split the 2-core CI machines take


def step_flops(cell, hidden_size, batch, proj_size=0, reset_before=False, coupled=False):
    """FLOPs of one step's recurrent product as the drivers estimate them
    (2 * B * gate columns * hidden rounded up to 8 * features of h), full rank or not."""
    gates = {"rnn": 1, "fastrnn": 1, "fastgrnn": 1, "gru": 2 if reset_before else 3,
             "lstm": 3 if coupled else 4}[cell]
    hp = (hidden_size + 7) // 8 * 8
    return 2.0 * batch * gates * hp * (proj_size or hidden_size)


@contextlib.contextmanager
def num_threads(n):
    """Run the block with fastseq limited to `n` threads; restore the setting after."""
    previous = fastseq.get_num_threads()
    fastseq.set_num_threads(n)
    try:
        yield n
    finally:
        fastseq.set_num_threads(previous)


def excess(got, want):
    """Largest |got - want| / (TOL * max(1, |want|)) over the elements: <= 1 passes.
    A shape mismatch or a NaN where the reference has none is infinite."""
    got = np.asarray(got)
    want = want.detach().numpy() if hasattr(want, "detach") else np.asarray(want)
    if got.shape != want.shape or got.dtype != np.float32:
        return float("inf")
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return float("inf")
    ok = ~np.isnan(want)
    g, w = got[ok].astype(np.float64), want[ok].astype(np.float64)
    if not g.size:
        return 0.0
    return float(np.max(np.abs(g - w) / (TOL * np.maximum(1.0, np.abs(w)))))


def flatten(result):
    """(output, state) or (output, (h, c)) -> [output, h(, c)]."""
    out, state = result
    return [out, *state] if isinstance(state, (tuple, list)) else [out, state]


def compare(got, want, case, failures):
    """Append `case` to `failures` when any of output / h_n / c_n is over tolerance."""
    names = ("output", "h_n", "c_n")
    got, want = flatten(got), flatten(want)
    if len(got) != len(want):
        failures.append(f"{case}: {len(got)} results, reference has {len(want)}")
        return
    bad = [f"{n} {e:.3g}x tol" for n, g, w in zip(names, got, want) if not (e := excess(g, w)) <= 1.0]
    if bad:
        failures.append(f"{case}: " + ", ".join(bad))


def failures_everywhere(each_isa, run, want, case):
    """`run()` on every ISA at each thread count, compared with `want`: the failures."""
    failures = []
    for isa in each_isa():
        for n in THREADS:
            with num_threads(n):
                compare(run(), want, f"{case} isa={isa} threads={n}", failures)
    return failures


def run_reference(torch, module, x, hx=None, lengths=None):
    """A torch module's (output, state) with packed-sequence semantics for `lengths`
    (nn.LSTM/GRU/RNN through pack_padded_sequence; fastseq.torch modules take lengths)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    with torch.no_grad():
        if lengths is None:
            return module(x, hx)
        if isinstance(module, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)):
            bf = module.batch_first
            packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=bf,
                                          enforce_sorted=False)
            y, state = module(packed, hx)
            y, _ = pad_packed_sequence(y, batch_first=bf, total_length=x.shape[1 if bf else 0])
            return y, state
        return module(x, hx, lengths=lengths)
