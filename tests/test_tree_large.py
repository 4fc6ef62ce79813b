"""Tree networks on forests that reach the drivers' larger paths: more nodes than one
chunk of the backward's weight-gradient products (256 nodes; the last chunk partial),
sizes that are not whole 32-column blocks, a deep chain (one node per level), a child-sum
node with many children, enough rows per level to run on threads; parity with the torch reference modules computed here, on every
ISA and 1 or 2 threads, and the same bits for any thread count."""
import numpy as np
import pytest

import fastseq
from _forests import random_forest
from _parity import excess, num_threads
from _requires import require

torch = require("torch", "torch==2.13.0")
import fastseq.torch as reference  # noqa: E402
from fastseq._torch_tree import forest_levels  # noqa: E402

torch.set_num_threads(1)
# src/tree_forest.c FS_TREE_PARALLEL_MIN_FLOPS: below it a forest runs on one thread.
PARALLEL_MIN_FLOPS = 2.0e5
GRAD_TOL = 10.0  # gradients: 1e-4 relative, in units of the forward's 1e-5 (excess)
I, H = 40, 68  # neither a whole 32-column block

# name: (reference factory, arity, gate rows G*H, recurrent inputs K)
KINDS = {
    "child_sum": (lambda: reference.ChildSumTreeLSTM(I, H), None, 4 * H, H),
    "nary2": (lambda: reference.NaryTreeLSTM(I, H, arity=2), 2, 5 * H, 2 * H),
    "nary5": (lambda: reference.NaryTreeLSTM(I, H, arity=5), 5, 8 * H, 5 * H),  # wide nodes, 8 gates
    "rnn_tanh": (lambda: reference.RecursiveNN(I, H, arity=2), 2, H, 2 * H),
}


def big_forest(rng, arity):
    """~1200 random-tree nodes, a chain of 60 (60 levels), and for a child-sum tree a
    node with 70 leaf children; ids shuffled across the whole forest."""
    parts = [random_forest(rng, 40, 30, arity), np.array([-1] + list(range(59)), np.int64)]
    if arity is None:
        parts.append(np.array([-1] + [0] * 70, np.int64))
    parent, base = [], 0
    for p in parts:
        parent.extend(np.where(p >= 0, p + base, -1).tolist())
        base += len(p)
    parent = np.array(parent, np.int64)
    perm = rng.permutation(len(parent))
    out = np.full(len(parent), -1, np.int64)
    out[perm] = np.where(parent >= 0, perm[np.maximum(parent, 0)], -1)
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_big_deep_forests_match_torch_on_every_isa_and_thread_count(kind, each_isa):
    factory, arity, rows, k = KINDS[kind]
    rng = np.random.default_rng(11)
    torch.manual_seed(1)
    ref = factory()
    layer = fastseq.from_torch(ref)
    parent = big_forest(rng, arity)
    assert len(parent) > 4 * 256
    levels = len(forest_levels(parent)[0])
    assert len(parent) / levels * rows * (I + k) >= PARALLEL_MIN_FLOPS  # threads do run
    x = rng.standard_normal((len(parent), I)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    outs = ref(xt, parent)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    seeds = [rng.standard_normal((len(parent), H)).astype(np.float32) for _ in outs]
    sum((o * torch.tensor(s)).sum() for o, s in zip(outs, seeds)).backward()
    for isa in each_isa():
        runs = []
        for threads in (1, 2, 3):
            with num_threads(threads):
                *states, tape = layer.forward_train(x, parent)
                dx, grads = layer.backward(tape, *seeds)
            states = [s for s in states if s is not None]
            runs.append(states + [dx] + [grads[k] for k in sorted(grads)])
        for got, want in zip(runs[0], outs):
            assert excess(got, want) <= 1, isa
        assert excess(dx, xt.grad) <= GRAD_TOL, isa
        for name, p in ref.named_parameters():
            assert excess(grads[name], p.grad) <= GRAD_TOL, (isa, name)
        for other in runs[1:]:
            for a, b in zip(runs[0], other):
                np.testing.assert_array_equal(a, b)
