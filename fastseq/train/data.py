"""The one data rule of training: x and per-step targets in the layer's own layout
([T, N, ...] time-major, or [N, T, ...] when batch_first), checked with errors that say
how the given shape was read."""
import numpy as np

from .._arrays import as_float32, as_lengths
from .heads import LastStepLinear


def layout_hint(rnn, shape):
    """The sentence that explains how x of `shape` was read, for shape errors."""
    if rnn.batch_first:
        return (f"x is read in the layer's layout [N, T, I] (batch_first=True): x of shape "
                f"{tuple(shape)} holds {shape[0]} sequences of {shape[1]} steps")
    return (f"x is read in the layer's layout [T, N, I] (time-major, batch_first=False, like "
            f"torch): x of shape {tuple(shape)} holds {shape[1]} sequences of {shape[0]} steps; "
            f"for sample-major [N, T, I] data build the layer with batch_first=True or pass "
            f"x.transpose(1, 0, 2)")


def check_data(model, x, y, lengths=None):
    """x, y, lengths checked against the model in the layer's layout; returns them as
    arrays plus the number of sequences N."""
    rnn = model.rnn
    x = as_float32(x, "x")
    b_ax, t_ax = (0, 1) if rnn.batch_first else (1, 0)
    layout = "[N, T, input_size]" if rnn.batch_first else "[T, N, input_size]"
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] != rnn.input_size:
        raise ValueError(f"x: expected {layout} with N, T >= 1 and input_size {rnn.input_size} "
                         f"(the layer's layout), got shape {x.shape}")
    N, T = x.shape[b_ax], x.shape[t_ax]
    y = np.asarray(y) if not hasattr(y, "detach") else y.detach().cpu().numpy()
    if isinstance(model.head, LastStepLinear):
        if y.ndim == 0 or y.shape[0] != N:
            raise ValueError(f"y: expected {N} targets (one per sequence, on axis 0), got shape "
                             f"{y.shape}; {layout_hint(rnn, x.shape)}")
    elif y.ndim < 2 or y.shape[b_ax] != N or y.shape[t_ax] != T:
        want = "[N, T, ...]" if rnn.batch_first else "[T, N, ...]"
        raise ValueError(f"y: expected per-step targets {want} with N={N}, T={T} (the layer's "
                         f"layout), got shape {y.shape}; {layout_hint(rnn, x.shape)}")
    if lengths is not None:
        lengths = as_lengths(lengths, N)
        if lengths.max() > T:
            raise ValueError(f"lengths: expected values <= {T} (the steps in x), got {lengths.max()}")
    return x, y, lengths, N
