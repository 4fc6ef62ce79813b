"""Greedy seq2seq decoding: fastseq.Seq2Seq.greedy (encoder + the whole decode loop in C)
against a torch greedy loop (fastseq.torch.Seq2Seq.greedy: nn.LSTM encoder, nn.LSTM step,
nn.Linear, argmax per step in Python) on the same weights. Tokens are cross-checked.

    python bench/seq2seq_greedy.py [--batch 64] [--hidden 256] [--vocab 64] [--len 20]
                                   [--threads 1 2] [--repeat 5] [--cell LSTM]

Prints one JSON line per (implementation, threads) and a summary; best of --repeat,
the two implementations alternating. Every output runs --len steps (no eos): the same work
for both; input lengths vary around --len.
"""
import argparse
import json
import platform
import subprocess
import time

import numpy as np


def build(args):
    import torch
    from torch import nn

    import fastseq
    import fastseq.torch as ft

    torch.manual_seed(0)
    cell = getattr(nn, args.cell)
    ref = ft.Seq2Seq(cell(args.vocab, args.hidden), cell(args.vocab, args.hidden), nn.Linear(args.hidden, args.vocab),
                     nn.Embedding(args.vocab, args.vocab)).eval()
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.len - 5, args.len + 6, size=args.batch)
    tokens = rng.integers(0, args.vocab, size=(int(lengths.max()), args.batch))
    x = np.eye(args.vocab, dtype=np.float32)[tokens]   # one-hot inputs [T, B, V]
    return ref, fastseq.from_torch(ref), x, lengths.tolist()


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--len", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cell", default="LSTM", choices=["LSTM", "GRU"])
    args = ap.parse_args(argv)

    import torch

    import fastseq

    ref, model, x, lengths = build(args)
    xt = torch.from_numpy(x)
    steps = dict(max_len=args.len, bos=0, eos=None)
    got = model.greedy(x, lengths, **steps)
    want = ref.greedy(xt, lengths, **steps)
    agree = float(np.mean([g.tolist() == w.tolist() for g, w in zip(got, want)]))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = ""
    shape = dict(batch=args.batch, hidden=args.hidden, vocab=args.vocab, steps=args.len, cell=args.cell)
    for n in args.threads:
        fastseq.set_num_threads(n)
        torch.set_num_threads(n)
        t_fs = t_torch = float("inf")
        for _ in range(args.repeat):   # alternate, keep each one's best
            t_fs = min(t_fs, best_of(lambda: model.greedy(x, lengths, **steps), 1))
            t_torch = min(t_torch, best_of(lambda: ref.greedy(xt, lengths, **steps), 1))
        for impl, t in (("fastseq", t_fs), ("torch", t_torch)):
            print(json.dumps(dict(kind="case", case="seq2seq_greedy", impl=impl, threads=n, isa=fastseq.isa(),
                                  us=round(t * 1e6, 1), ratio_vs_fastseq=round(t / t_fs, 2), tokens_agree=agree,
                                  cpu=platform.processor() or platform.machine(), git=rev, **shape)))
        print(f"# threads {n}: fastseq {t_fs * 1e3:.2f} ms, torch loop {t_torch * 1e3:.2f} ms, "
              f"torch / fastseq = {t_torch / t_fs:.1f}x (tokens agree on {agree:.0%} of sequences)")


if __name__ == "__main__":
    main()
