"""Teacher forcing for generative sequence models: during training, the next input is the
true previous target; at generation time the model's own prediction is fed back."""
import numpy as np

from .. import _core


def teacher_forcing_inputs(targets, start=None, batch_first=False):
    """Inputs for teacher forcing: step t gets targets[t - 1]; step 0 gets `start` (zeros
    by default, else broadcast to one step). targets: [T, B, F] ([B, T, F] if batch_first)."""
    targets = np.asarray(targets, dtype=np.float32)
    axis = 1 if batch_first else 0
    step_shape = targets.shape[:axis] + targets.shape[axis + 1:]
    first = np.zeros(step_shape, dtype=np.float32) if start is None else \
        np.broadcast_to(np.asarray(start, dtype=np.float32), step_shape)
    rest = np.take(targets, np.arange(targets.shape[axis] - 1), axis=axis)
    return np.ascontiguousarray(np.concatenate([np.expand_dims(first, axis), rest], axis=axis))


def generate(model, start, steps, hx=None, feedback=None):
    """Free-running generation with a SequenceModel whose head maps back to inputs.

    start     [B, I] first input
    steps     how many steps to produce
    hx        initial state, [L, B, H] (LSTM: (h, c)); None: zeros
    feedback  maps a prediction [B, out] to the next input [B, I]; default: identity
    Returns predictions [steps, B, out]."""
    rnn = model.rnn
    x = np.ascontiguousarray(np.asarray(start, dtype=np.float32).reshape(-1, rnn.input_size))
    B = x.shape[0]
    stream = _core.Stream(rnn.c_model, B)
    if hx is not None:
        stream.state = hx
    outs = []
    for _ in range(steps):
        h = stream.step(x)
        pred = h if model.head is None else model.head._linear(h)
        outs.append(pred)
        x = np.ascontiguousarray(pred if feedback is None else feedback(pred), dtype=np.float32)
    return np.stack(outs)
