"""Teacher forcing for generative sequence models: during training, the next input is the
true previous target; at generation time the model's own prediction is fed back."""
from typing import Any, Callable, Optional

import numpy as np

from .. import _core


def teacher_forcing_inputs(targets: Any, start: Any = None, batch_first: bool = False) -> np.ndarray:
    """Inputs for teacher forcing: step t gets ``targets[t - 1]``, step 0 gets `start`.

    Parameters
    ----------
    targets : array_like
        ``[T, B, F]`` (``[B, T, F]`` if `batch_first`): the layer's layout.
    start : array_like, optional
        Step 0's input, broadcast to one step (zeros by default).
    batch_first : bool
        The layout of `targets` and of the result (pass the layer's ``batch_first``).

    Returns
    -------
    numpy.ndarray
        float32, shaped like `targets`.

    Examples
    --------
    >>> teacher_forcing_inputs(np.ones((3, 2, 1)))[:, 0, 0].tolist()
    [0.0, 1.0, 1.0]
    """
    targets = np.asarray(targets, dtype=np.float32)
    axis = 1 if batch_first else 0
    step_shape = targets.shape[:axis] + targets.shape[axis + 1:]
    first = np.zeros(step_shape, dtype=np.float32) if start is None else \
        np.broadcast_to(np.asarray(start, dtype=np.float32), step_shape)
    rest = np.take(targets, np.arange(targets.shape[axis] - 1), axis=axis)
    return np.ascontiguousarray(np.concatenate([np.expand_dims(first, axis), rest], axis=axis))


def generate(model: Any, start: Any, steps: int, *, hx: Any = None,
             feedback: Optional[Callable[[np.ndarray], Any]] = None) -> np.ndarray:
    """Free-running generation with a SequenceModel whose head maps back to inputs.

    Parameters
    ----------
    model : SequenceModel
        A unidirectional layer with a per-step head (or none).
    start : array_like
        ``[B, I]`` first input.
    steps : int
        How many steps to produce.
    hx : array_like or tuple, optional
        Initial state ``[L, B, H]`` (LSTM: ``(h, c)``); None: zeros.
    feedback : callable, optional
        Maps a prediction ``[B, out]`` to the next input ``[B, I]``; default: identity.

    Returns
    -------
    numpy.ndarray
        Predictions ``[steps, B, out]``.

    Examples
    --------
    >>> model = SequenceModel(fastseq.GRU(1, 4), PerStepLinear(4, 1))
    >>> generate(model, np.zeros((2, 1)), 3).shape
    (3, 2, 1)
    """
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
