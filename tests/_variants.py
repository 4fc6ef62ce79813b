"""The cells and variants of the threaded parity tests, each sized so one step's recurrent
product is well above the threading threshold (test_parity_branches checks that), and
the torch module that is its reference."""
import zlib

from _requires import require

torch = require("torch", "torch==2.13.0")
import fastseq.torch as reference  # noqa: E402

# One torch thread: on a 2-core machine torch's pool fights fastseq's OpenMP workers.
torch.set_num_threads(1)

# name: (torch module factory, step_flops arguments, hidden size, batch)
VARIANTS = {
    "rnn_tanh": (lambda I, H, **kw: torch.nn.RNN(I, H, nonlinearity="tanh", **kw), ("rnn",), 256, 8),
    "rnn_relu": (lambda I, H, **kw: torch.nn.RNN(I, H, nonlinearity="relu", **kw), ("rnn",), 256, 8),
    "lstm": (lambda I, H, **kw: torch.nn.LSTM(I, H, **kw), ("lstm",), 128, 8),
    "lstm_proj": (lambda I, H, **kw: torch.nn.LSTM(I, H, proj_size=64, **kw),
                  ("lstm", {"proj_size": 64}), 128, 24),
    "lstm_peephole": (lambda I, H, **kw: reference.PeepholeLSTM(I, H, **kw), ("lstm",), 128, 8),
    "lstm_coupled": (lambda I, H, **kw: reference.CoupledLSTM(I, H, **kw),
                     ("lstm", {"coupled": True}), 128, 12),
    "gru": (lambda I, H, **kw: torch.nn.GRU(I, H, **kw), ("gru",), 128, 12),
    "gru_reset_before": (lambda I, H, **kw: reference.ResetBeforeGRU(I, H, **kw),
                         ("gru", {"reset_before": True}), 128, 16),
    "fastrnn": (lambda I, H, **kw: reference.FastRNN(I, H, **kw), ("fastrnn",), 256, 8),
    "fastrnn_lowrank": (lambda I, H, **kw: reference.FastRNN(I, H, w_rank=24, u_rank=32, **kw),
                        ("fastrnn",), 256, 8),
    "fastgrnn": (lambda I, H, **kw: reference.FastGRNN(I, H, **kw), ("fastgrnn",), 256, 8),
    "fastgrnn_lowrank_w": (lambda I, H, **kw: reference.FastGRNN(I, H, w_rank=24, **kw),
                           ("fastgrnn",), 256, 16),
    "fastgrnn_lowrank_wu": (lambda I, H, **kw: reference.FastGRNN(I, H, w_rank=24, u_rank=40, **kw),
                            ("fastgrnn",), 256, 16),
}
INPUT = 64
STEPS = 12


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


def build(variant, num_layers=1, bidirectional=False, seed=0):
    """(time-major module, batch-first twin with the same weights, hidden size, batch)."""
    factory, _, H, B = VARIANTS[variant]
    torch.manual_seed(seed)
    kw = dict(num_layers=num_layers, bidirectional=bidirectional)
    tm = factory(INPUT, H, batch_first=False, **kw).eval()
    bf = factory(INPUT, H, batch_first=True, **kw).eval()
    bf.load_state_dict(tm.state_dict())
    return tm, bf, H, B
