"""Tree networks side by side: fastseq.TreeLSTM / RecursiveNN against the fastseq.torch
reference modules (level-batched torch, autograd) on the same weights, forward and
forward+backward, one process, alternating runs; for the child-sum Tree-LSTM also against
the common torch formulation that walks the tree node by node (Tai et al.'s reference code
does; `torch_per_node_ms`). JSON lines out, then a table.

The reference batches each level, so its GEMMs do the same multiply-adds as fastseq's; the
rest of its time is Python and indexing. `ceiling` is the ratio fastseq would reach if it
ran its products (`gflop`, padding not counted) at `peak_gflops`, the better of torch's GEMM
and fastseq's on the forest's largest product ([N, I] x [I, 4H]) measured here: the
FLOP-bound limit of the ratio against this reference.

    python bench/tree.py                      # 256 trees of ~30 nodes, H = I = 128, 1 thread
    python bench/tree.py --threads 2 --reps 5
"""
import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np
import torch

import fastseq
import fastseq.torch as reference

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/tests")
from _forests import random_forest  # noqa: E402

CASES = {
    "child_sum": (lambda I, H: reference.ChildSumTreeLSTM(I, H), None),
    "nary2": (lambda I, H: reference.NaryTreeLSTM(I, H, arity=2), 2),
    "recursive2": (lambda I, H: reference.RecursiveNN(I, H, arity=2), 2),
}


def child_sum_per_node(ref, x, parent):
    """The child-sum Tree-LSTM one node at a time (children first), as torch code for trees
    is commonly written: same equations and weights as ``ref``."""
    H = ref.hidden_size
    kids = [[] for _ in parent]
    for v, p in enumerate(parent):
        if p >= 0:
            kids[p].append(v)
    h, c = [None] * len(parent), [None] * len(parent)

    def visit(v):
        for k in kids[v]:
            visit(k)
        gx = x[v] @ ref.weight_ih.T + ref.bias_ih + ref.bias_hh
        hk = torch.stack([h[k] for k in kids[v]]) if kids[v] else x.new_zeros(0, H)
        ck = torch.stack([c[k] for k in kids[v]]) if kids[v] else x.new_zeros(0, H)
        pre = gx + hk.sum(0) @ ref.weight_hh.T
        i, g, o = torch.sigmoid(pre[:H]), torch.tanh(pre[2 * H:3 * H]), torch.sigmoid(pre[3 * H:])
        f = torch.sigmoid(gx[H:2 * H] + hk @ ref.weight_hh[H:2 * H].T)
        c[v] = i * g + (f * ck).sum(0)
        h[v] = o * torch.tanh(c[v])
    for root in np.flatnonzero(parent == -1):
        visit(int(root))
    return torch.stack(h), torch.stack(c)


def products_gflop(name, parent, I, H, arity):
    """GFLOP (2 per multiply-add) of fastseq's products: forward, and forward+backward."""
    n = len(parent)
    inner = len(set(parent[parent >= 0].tolist()))  # nodes with children: the level products
    G, K = (4, H) if name == "child_sum" else ((arity + 3), arity * H) if name.startswith("nary") else (1, arity * H)
    fwd = n * I * G * H + inner * K * G * H + (n * H * H if name == "child_sum" else 0)
    # backward: dx, the weight gradients over all nodes, dh of the children (level products)
    bwd = n * G * H * I + G * H * n * (I + K) + inner * G * H * K + (2 * n * H * H if name == "child_sum" else 0)
    return 2e-9 * fwd, 2e-9 * (fwd + bwd)


def peak_gflops(n, I, H, reps):
    """The better GEMM rate, torch's or fastseq's, on [n, I] x [I, 4H] (the forest's largest
    product); fastseq's through a recursive network of n leaves (its one input product, then tanh)."""
    a, b = torch.randn(n, I), torch.randn(I, 4 * H)
    leaves = fastseq.RecursiveNN(I, 4 * H, arity=1)
    xa, roots = a.numpy(), np.full(n, -1, np.int64)
    reps = max(reps, 10)  # a short product: more tries against a noisy machine
    best = min(best_of_alternating([lambda: a @ b, lambda: leaves(xa, roots)], reps))
    return 2e-9 * n * I * 4 * H / best


def best_of_alternating(fns, reps):
    """The best time of each function, run in turn (one of each per round) so that a
    loaded machine's slow moments fall on all of them alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [min(ts) for ts in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", type=int, default=256)
    ap.add_argument("--nodes", type=int, default=30, help="mean nodes per tree")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fastseq.set_num_threads(args.threads)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=__file__.rsplit("/", 1)[0]).stdout.strip()
    rows = []
    for name, (factory, arity) in CASES.items():
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        ref = factory(args.input, args.hidden)
        layer = (fastseq.RecursiveNN if name.startswith("recursive") else fastseq.TreeLSTM).from_torch(ref)
        parent = random_forest(rng, args.trees, args.nodes, arity)
        x = rng.standard_normal((len(parent), args.input)).astype(np.float32)
        xt = torch.from_numpy(x)
        dh = np.ones((len(parent), args.hidden), np.float32)
        flops = products_gflop(name, parent, args.input, args.hidden, arity)

        def torch_fwd():
            with torch.inference_mode():
                ref(xt, parent)

        def torch_train():
            xg = xt.clone().requires_grad_(True)
            out = ref(xg, parent)
            (out[0] if isinstance(out, tuple) else out).sum().backward()

        def fs_train():
            *_, tape = layer.forward_train(x, parent)
            layer.backward(tape, dh)

        peak = peak_gflops(len(parent), args.input, args.hidden, args.reps)
        for mode, fs_fn, t_fn, gflop in (("forward", lambda: layer(x, parent), torch_fwd, flops[0]),
                                         ("forward+backward", fs_train, torch_train, flops[1])):
            fs_s, t_s = best_of_alternating([fs_fn, t_fn], args.reps)
            extra = {}
            if name == "child_sum":
                with torch.inference_mode():  # the per-node walk computes what the module does
                    got, want = child_sum_per_node(ref, xt, parent)[0], ref(xt, parent)[0]
                    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), float((got - want).abs().max())

                def per_node():
                    if mode == "forward":
                        with torch.inference_mode():
                            child_sum_per_node(ref, xt, parent)
                    else:
                        xg = xt.clone().requires_grad_(True)
                        child_sum_per_node(ref, xg, parent)[0].sum().backward()
                node_s, = best_of_alternating([per_node], 1)
                extra = {"torch_per_node_ms": round(node_s * 1e3, 3), "ratio_per_node": round(node_s / fs_s, 1)}
            row = {"case": f"tree_{name}", "mode": mode, "nodes": len(parent), "trees": args.trees,
                   "H": args.hidden, "I": args.input, "threads": args.threads, "isa": fastseq.isa(),
                   "fastseq_ms": round(fs_s * 1e3, 3), "torch_ms": round(t_s * 1e3, 3),
                   "ratio": round(t_s / fs_s, 2), "gflop": round(gflop, 3),
                   "fastseq_gflops": round(gflop / fs_s, 1), "peak_gflops": round(peak, 1),
                   "ceiling": round(t_s / (gflop / peak), 1), "cpu": platform.processor() or platform.machine(),
                   "git": rev, **extra}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'case':<22}{'mode':<18}{'fastseq ms':>12}{'torch ms':>12}{'torch/fastseq':>15}"
          f"{'ceiling':>9}{'fastseq GFLOP/s':>17}{'per-node torch/fastseq':>24}")
    for r in rows:
        print(f"{r['case']:<22}{r['mode']:<18}{r['fastseq_ms']:>12.2f}{r['torch_ms']:>12.2f}{r['ratio']:>15.1f}"
              f"{r['ceiling']:>9.1f}{r['fastseq_gflops']:>17.1f}{r.get('ratio_per_node', ''):>24}")


if __name__ == "__main__":
    main()
