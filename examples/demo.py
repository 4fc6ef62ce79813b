"""fastseq in one minute: convert a PyTorch LSTM, run it, compare, time it.

    pip install torch==2.13.0 . && python examples/demo.py
"""
import time

import numpy as np
import torch

import fastseq


def best_us(fn, repeat=20):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e6


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    fastseq.set_num_threads(1)
    model = torch.nn.LSTM(input_size=40, hidden_size=128, num_layers=2).eval()
    layer = fastseq.from_torch(model)
    x = torch.randn(100, 1, 40)

    with torch.inference_mode():
        ref, (ref_h, ref_c) = model(x)
    out, (h_n, c_n) = layer(x.numpy())
    diff = max(np.abs(out - ref.numpy()).max(), np.abs(h_n - ref_h.numpy()).max(),
               np.abs(c_n - ref_c.numpy()).max())
    print(f"fastseq {fastseq.__version__}, kernels: {fastseq.isa()}")
    print(f"model: {layer}")
    print(f"output {out.shape}, h_n {h_n.shape}, c_n {c_n.shape}; max |fastseq - torch| = {diff:.2e}")

    with torch.inference_mode():
        t_torch = best_us(lambda: model(x))
    t_fast = best_us(lambda: layer(x.numpy()))
    print(f"sequence of 100 steps: torch {t_torch:8.1f} us   fastseq {t_fast:8.1f} us   ({t_torch / t_fast:.1f}x)")

    # streaming: one call per step, state carried between calls
    frames = x.numpy()[:, 0]
    stream = layer.stream()
    state = None

    def torch_stream():
        nonlocal state
        with torch.inference_mode():
            for f in frames:
                _, state = model(torch.from_numpy(f)[None, None], state)

    def fastseq_stream():
        for f in frames:
            stream.step(f)

    t_torch = best_us(torch_stream, 5) / len(frames)
    t_fast = best_us(fastseq_stream, 5) / len(frames)
    print(f"streaming, per step:   torch {t_torch:8.1f} us   fastseq {t_fast:8.1f} us   ({t_torch / t_fast:.1f}x)")


if __name__ == "__main__":
    main()
