"""Greedy seq2seq decoding: fastseq.Seq2Seq.greedy (encoder + the whole decode loop in C)
against torch greedy loops on the same weights. Tokens are cross-checked.

    python bench/seq2seq_greedy.py [--batch 64] [--hidden 256] [--vocab 64] [--len 20]
                                   [--threads 1 2] [--repeat 5] [--cell LSTM]

The torch peer is torch at its best: every loop below runs under torch.inference_mode
after the reference module's packed encoder (nn.LSTM / GRU over pack_padded_sequence), and
the summary compares fastseq with the fastest of them:

- ``module``: fastseq.torch.Seq2Seq.greedy, the reference module's loop (nn.LSTM / GRU
  stepped one time step at a time, nn.Linear, argmax);
- ``cell``: nn.LSTMCell / nn.GRUCell on the same weights, stepped;
- ``table``: fastseq's own trick in torch: the embedding projected through W_ih once (a
  [V, G*H] table), then per step a row gather, one addmm and the gate arithmetic;
- ``table_scripted``: the same loop in TorchScript (no Python per step). torch.compile of
  that loop was slower here (19 vs 16 ms, after 40 s of compiling), so it is not a peer.

Prints one JSON line per (implementation, threads) with the encoder's share and the FLOPs
(fastseq's minimum: valid encoder rows, recurrent + head products of the decoder), and a
summary; best of --repeat, the implementations alternating. Every output runs --len steps
(no eos): the same work for all; input lengths vary around --len.
"""
import argparse
import json
import platform
import subprocess
import time
import warnings

import numpy as np
import torch


def build(args):
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


def torch_peers(ref):
    """Torch greedy loops on the weights of `ref` (a one-layer nn.LSTM / nn.GRU decoder with
    an embedding): name -> fn(x, lengths, max_len, bos) -> [B, max_len] int64 tokens (no eos)."""
    lstm = isinstance(ref.decoder, torch.nn.LSTM)
    dec = ref.decoder
    if dec.num_layers != 1 or dec.batch_first or ref.embedding is None:
        raise ValueError("torch_peers: expected a one-layer, time-major decoder and an embedding")
    cell = (torch.nn.LSTMCell if lstm else torch.nn.GRUCell)(dec.input_size, dec.hidden_size)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(dec, name + "_l0"))
        table = ref.embedding.weight @ cell.weight_ih.T + cell.bias_ih          # [V, G*H]
        whh_t, bhh = cell.weight_hh.T.contiguous(), cell.bias_hh.clone()
        head_t, head_b = ref.head.weight.T.contiguous(), ref.head.bias.clone()
    with warnings.catch_warnings():   # torch 2.13 deprecates TorchScript; it still runs, and runs faster here
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = _lstm_table_loop if lstm else _gru_table_loop
        scripted = torch.jit.script(loop)

    def start(x, lengths):
        state = ref.initial_states(x, lengths)
        return (state[0][0], state[1][0]) if lstm else state[0]

    def module(x, lengths, max_len, bos):
        return torch.stack(ref.greedy(x, lengths, max_len=max_len, bos=bos))

    def cell_loop(x, lengths, max_len, bos):
        s = start(x, lengths)
        prev = torch.full((x.shape[1],), bos, dtype=torch.long)
        steps = []
        for _ in range(max_len):
            s = cell(ref.embedding(prev), s)
            prev = ref.head(s[0] if lstm else s).argmax(-1)
            steps.append(prev)
        return torch.stack(steps, 1)

    def table_peer(fn):
        def run(x, lengths, max_len, bos):
            s = start(x, lengths)
            h, c = s if lstm else (s, s)   # a GRU's loop ignores c
            return fn(table, whh_t, bhh, head_t, head_b, h, c, bos, max_len)
        return run

    peers = dict(module=module, cell=cell_loop, table=table_peer(loop), table_scripted=table_peer(scripted))

    def under_inference_mode(fn):
        def run(*a):
            with torch.inference_mode():
                return fn(*a)
        return run

    return {name: under_inference_mode(fn) for name, fn in peers.items()}


def _lstm_table_loop(table, whh_t, bhh, head_t, head_b, h, c, bos: int, max_len: int):
    prev = torch.full([h.shape[0]], bos, dtype=torch.long)
    steps = []
    for _ in range(max_len):
        i, f, g, o = (table[prev] + torch.addmm(bhh, h, whh_t)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        prev = torch.addmm(head_b, h, head_t).argmax(-1)
        steps.append(prev)
    return torch.stack(steps, 1)


def _gru_table_loop(table, whh_t, bhh, head_t, head_b, h, c, bos: int, max_len: int):
    prev = torch.full([h.shape[0]], bos, dtype=torch.long)
    steps = []
    for _ in range(max_len):
        xr, xz, xn = table[prev].chunk(3, 1)
        hr, hz, hn = torch.addmm(bhh, h, whh_t).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + r * hn) + z * h
        prev = torch.addmm(head_b, h, head_t).argmax(-1)
        steps.append(prev)
    return torch.stack(steps, 1)


def min_flops(args, lengths):
    """fastseq's products: the encoder over valid rows (input + recurrent), the decoder's
    recurrent product and head per step (its input projection is a table row)."""
    G = 4 if args.cell == "LSTM" else 3
    enc = 2 * sum(lengths) * G * args.hidden * (args.vocab + args.hidden)
    dec = 2 * args.batch * args.len * (G * args.hidden * args.hidden + args.vocab * args.hidden)
    return enc + dec


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

    import fastseq

    ref, model, x, lengths = build(args)
    xt = torch.from_numpy(x)
    steps = dict(max_len=args.len, bos=0, eos=None)
    got = np.stack(model.greedy(x, lengths, **steps))
    peers = torch_peers(ref)
    agree = {name: float(np.mean(np.all(fn(xt, lengths, args.len, 0).numpy() == got, axis=1)))
             for name, fn in peers.items()}
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = ""
    shape = dict(batch=args.batch, hidden=args.hidden, vocab=args.vocab, steps=args.len, cell=args.cell)
    flops = min_flops(args, lengths)
    for n in args.threads:
        fastseq.set_num_threads(n)
        torch.set_num_threads(n)
        runs = dict(fastseq=lambda: model.greedy(x, lengths, **steps),
                    fastseq_encode=lambda: model.encode(x, lengths),
                    **{f"torch_{name}": (lambda fn=fn: fn(xt, lengths, args.len, 0)) for name, fn in peers.items()})
        with torch.inference_mode():
            runs["torch_encode"] = lambda: ref.initial_states(xt, lengths)
            best = dict.fromkeys(runs, float("inf"))
            for _ in range(args.repeat):   # alternate, keep each one's best
                for name, fn in runs.items():
                    t0 = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - t0)
        t_fs = best["fastseq"]
        for name, t in best.items():
            extra = dict(agree=agree.get(name.removeprefix("torch_"), 1.0)) if name.startswith("torch_") else {}
            if name == "fastseq":
                extra = dict(gflops=round(flops / t / 1e9, 1), min_gflop=round(flops / 1e9, 3))
            print(json.dumps(dict(kind="case", case="seq2seq_greedy", impl=name, threads=n, isa=fastseq.isa(),
                                  us=round(t * 1e6, 1), ratio_vs_fastseq=round(t / t_fs, 2), **extra,
                                  cpu=platform.processor() or platform.machine(), git=rev, **shape)))
        peer = min((k for k in best if k.startswith("torch_") and k != "torch_encode"), key=best.get)
        print(f"# threads {n}: fastseq {t_fs * 1e3:.2f} ms (encoder {best['fastseq_encode'] * 1e3:.2f}), "
              f"fastest torch loop {peer} {best[peer] * 1e3:.2f} ms (encoder {best['torch_encode'] * 1e3:.2f}), "
              f"torch / fastseq = {best[peer] / t_fs:.2f}x; module loop {best['torch_module'] / t_fs:.2f}x; "
              f"fastseq {flops / t_fs / 1e9:.0f} GFLOP/s of its minimum products; tokens agree {agree}")


if __name__ == "__main__":
    main()
