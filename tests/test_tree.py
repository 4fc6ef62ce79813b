"""Tree networks (issue 15 part 1): forward and backward parity with the torch reference
modules computed here, on every ISA and thread count, and the forest checks."""
import numpy as np
import pytest

import fastseq
from _forests import random_forest
from _parity import excess, num_threads
from _requires import require

torch = require("torch", "torch==2.13.0")
import fastseq.torch as reference  # noqa: E402

torch.set_num_threads(1)
GRAD_TOL = 10.0  # gradients: 1e-4 relative, in units of the forward's 1e-5 (excess)

# name: (reference factory, arity of the random forests (None: any))
KINDS = {
    "child_sum": (lambda I, H: reference.ChildSumTreeLSTM(I, H), None),
    "nary2": (lambda I, H: reference.NaryTreeLSTM(I, H, arity=2), 2),
    "nary3": (lambda I, H: reference.NaryTreeLSTM(I, H, arity=3), 3),
    "rnn_tanh": (lambda I, H: reference.RecursiveNN(I, H, arity=2), 2),
    "rnn_relu": (lambda I, H: reference.RecursiveNN(I, H, arity=3, nonlinearity="relu"), 3),
}


def pair(kind, I, H, seed=0):
    factory, arity = KINDS[kind]
    torch.manual_seed(seed)
    ref = factory(I, H)
    cls = fastseq.RecursiveNN if kind.startswith("rnn") else fastseq.TreeLSTM
    layer = cls.from_torch(ref)
    assert type(fastseq.from_torch(ref)) is cls
    return ref, layer, arity


def states(out):
    return list(out) if isinstance(out, tuple) else [out]


def reference_grads(ref, x, parent, seeds):
    """Reference outputs and the gradients of sum(out_k * seeds_k) by autograd."""
    xt = torch.tensor(x, requires_grad=True)
    outs = states(ref(xt, parent))
    sum(((o * torch.tensor(s)).sum() for o, s in zip(outs, seeds))).backward()
    return outs, xt.grad, {k: p.grad for k, p in ref.named_parameters()}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("sizes", [(5, 9, 6, 5), (16, 32, 48, 8)])  # I, H, trees, nodes per tree
def test_forward_and_backward_match_torch(kind, sizes, each_isa):
    I, H, trees, per_tree = sizes
    rng = np.random.default_rng(len(kind) * 100 + H)
    ref, layer, arity = pair(kind, I, H)
    parent = random_forest(rng, trees, per_tree, arity)
    x = rng.standard_normal((len(parent), I)).astype(np.float32)
    n_states = 1 if kind.startswith("rnn") else 2
    seeds = [rng.standard_normal((len(parent), H)).astype(np.float32) for _ in range(n_states)]
    outs, dx_ref, grads_ref = reference_grads(ref, x, parent, seeds)
    for isa in each_isa():
        for threads in (1, 2):
            with num_threads(threads):
                got = states(layer(x, parent))
                *train_states, tape = layer.forward_train(x, parent)
                dx, grads = layer.backward(tape, *seeds)
            for g, t, o in zip(got, train_states, outs):
                assert excess(g, o) <= 1, (isa, threads)
                np.testing.assert_array_equal(g, t)
            assert excess(dx, dx_ref) <= GRAD_TOL, (isa, threads)
            for name, want in grads_ref.items():
                assert excess(grads[name], want) <= GRAD_TOL, (isa, threads, name)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_results_are_the_same_bits_for_any_thread_count(kind, isa):
    rng = np.random.default_rng(7)
    _, layer, arity = pair(kind, 24, 64)
    parent = random_forest(rng, 64, 12, arity)
    x = rng.standard_normal((len(parent), 24)).astype(np.float32)
    dh = rng.standard_normal((len(parent), 64)).astype(np.float32)
    runs = []
    for threads in (1, 2, 3):
        with num_threads(threads):
            *st, tape = layer.forward_train(x, parent)
            dx, grads = layer.backward(tape, dh)
            runs.append([s for s in st if s is not None] + [dx] + [grads[k] for k in sorted(grads)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_torch_in_torch_out():
    ref, layer, _ = pair("child_sum", 3, 5)
    x = torch.randn(4, 3)
    h, c = layer(x, torch.tensor([-1, 0, 0, 1]))
    assert isinstance(h, torch.Tensor) and isinstance(c, torch.Tensor)
    assert excess(h.numpy(), ref(x, [-1, 0, 0, 1])[0].detach()) <= 1
    _, rnn, _ = pair("rnn_tanh", 3, 5)
    assert isinstance(rnn(x, [-1, 0, 0, 1]), torch.Tensor)


def test_node_order_does_not_matter():
    """The same forest under two numberings gives each node the same state (children
    keep their relative order, so the k-th child stays the k-th)."""
    rng = np.random.default_rng(3)
    _, layer, _ = pair("nary2", 4, 8)
    parent = np.array([-1, 0, 0, 1, 1, 2], dtype=np.int64)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    new_of = np.array([5, 3, 4, 0, 1, 2])  # old node v becomes new_of[v]; sibling order kept
    parent2 = np.full(6, -1, dtype=np.int64)
    parent2[new_of] = np.where(parent >= 0, new_of[np.maximum(parent, 0)], -1)
    x2 = np.empty_like(x)
    x2[new_of] = x
    h, c = layer(x, parent)
    h2, c2 = layer(x2, parent2)
    np.testing.assert_array_equal(h, h2[new_of])
    np.testing.assert_array_equal(c, c2[new_of])


@pytest.mark.parametrize("parent, message", [
    ([-1, 0, 5], r"parent\[2\] = 5"),
    ([-1, -2, 0], r"parent\[1\] = -2"),
    ([1, 2, 0, -1], r"node 0 is on a cycle"),
    ([-1, 1], r"node 1 is on a cycle"),
    ([-1, 0, 0, 0], r"node 0 has 3 children: expected at most the arity, 2"),
])
def test_bad_forests_name_the_node(parent, message):
    layer = fastseq.TreeLSTM(2, 4, kind="nary", arity=2)
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((len(parent), 2), np.float32), parent)


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="kind"):
        fastseq.TreeLSTM(2, 4, kind="binary")
    with pytest.raises(ValueError, match="arity"):
        fastseq.TreeLSTM(2, 4, arity=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        fastseq.RecursiveNN(2, 4, nonlinearity="sigmoid")
    layer = fastseq.RecursiveNN(2, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \[n_nodes >= 1, 2\], got \[3, 5\]"):
        layer(np.zeros((3, 5), np.float32), [-1, 0, 0])
    with pytest.raises(ValueError, match="parent: expected 3 values"):
        layer(np.zeros((3, 2), np.float32), [-1, 0])
    with pytest.raises(ValueError, match="parent: expected integers"):
        layer(np.zeros((2, 2), np.float32), [-1.0, 0.0])
    with pytest.raises(ValueError, match=r"weight_hh: expected shape \(4, 8\)"):
        layer.load_state_dict({**layer.state_dict(), "weight_hh": np.zeros((4, 4), np.float32)})


def test_random_parent_arrays_are_accepted_exactly_when_they_are_forests():
    """The C checks against the reference module's own walk (fastseq._torch_tree)."""
    from fastseq._torch_tree import forest_levels
    rng = np.random.default_rng(5)
    layer = fastseq.RecursiveNN(2, 3, arity=16)
    for _ in range(400):
        n = int(rng.integers(1, 12))
        parent = rng.integers(-2, n + 1, size=n)
        try:
            forest_levels(parent)
            valid = True
        except ValueError:
            valid = False
        x = np.ones((n, 2), np.float32)
        if valid:
            assert layer(x, parent).shape == (n, 3)
        else:
            with pytest.raises(ValueError, match=r"node \d+|parent\[\d+\]"):
                layer(x, parent)
