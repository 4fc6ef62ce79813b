"""Truncated back-propagation through time, TBPTT(k1, k2): every k1 steps, back-propagate
through the last k2 >= k1 steps, carrying the state across chunks.

At each update point e (k1, 2 k1, ..., and T), the window [e - k2, e) is run forward from
the (detached) state at its start; the loss covers the k1 new steps [e - k1, e) only; the
gradient flows back through the whole window. TBPTT(T, T) is full BPTT; TBPTT(k, k) is the
usual loop that detaches the state every k steps."""
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, Union

import numpy as np

from .data import check_data
from .heads import LastStepLinear
from .losses import make_loss
from .optim import clip_grad_norm, clip_grad_value

if TYPE_CHECKING:
    from .model import SequenceModel


def _time_slice(a, lo, hi, batch_first):
    return a[:, lo:hi] if batch_first else a[lo:hi]


def tbptt(model: "SequenceModel", loss_fn: Union[str, Callable], x: Any, target: Any, k1: int,
          k2: Optional[int] = None, *, optimizer: Any = None, hx: Any = None,
          clip_norm: Optional[float] = None, clip_value: Optional[float] = None) -> Tuple[List[float], Any]:
    """Run truncated BPTT(k1, k2) over one batch of long sequences.

    Parameters
    ----------
    model : fastseq.train.SequenceModel
        A unidirectional layer with a per-step head (:class:`PerStepLinear`) or none.
    loss_fn : {"mse", "cross_entropy"} or callable
        The same spellings as :func:`fit`; a callable ``(pred, target, mask) -> (loss, grad)``.
    x, target : array_like
        ``[T, B, ...]`` (``[B, T, ...]`` if the layer is ``batch_first``); target per step.
    k1, k2 : int
        Update every `k1` steps through the last `k2` >= `k1` steps (default ``k2 = k1``).
    optimizer : optimizer, optional
        Stepped after each chunk (gradients zeroed before it); None: the chunks'
        gradients accumulate in ``model.grads`` (nothing is zeroed).
    hx : array or (array, array), optional
        Initial state (None: zeros).
    clip_norm, clip_value : float, optional
        Gradient clipping before each update.

    Returns
    -------
    (list of float, state)
        The chunks' losses and the final state.

    Raises
    ------
    ValueError
        A last-step head, a bidirectional layer, ``k1 > k2``, or x / target shapes that do
        not fit the layer's layout.

    Examples
    --------
    >>> import numpy as np, fastseq
    >>> from fastseq import train
    >>> model = train.SequenceModel(fastseq.GRU(2, 4), train.PerStepLinear(4, 1))
    >>> x, y = np.zeros((30, 3, 2), np.float32), np.zeros((30, 3, 1), np.float32)
    >>> losses, h = train.tbptt(model, "mse", x, y, 10)
    >>> len(losses)
    3
    """
    rnn = model.rnn
    if isinstance(model.head, LastStepLinear):
        raise ValueError("tbptt: needs a per-step head (PerStepLinear) or none, got LastStepLinear")
    if rnn.bidirectional:
        raise ValueError("tbptt: a bidirectional layer needs the whole sequence; use full BPTT")
    loss_fn = make_loss(loss_fn)
    x, target, _, _ = check_data(model, x, target)
    bf = rnn.batch_first
    T = x.shape[1] if bf else x.shape[0]
    k2 = k1 if k2 is None else k2
    if not (1 <= k1 <= k2):
        raise ValueError(f"tbptt: expected 1 <= k1 <= k2, got k1={k1}, k2={k2}")
    ends = list(range(k1, T, k1)) + [T]
    known = {0: hx}  # detached states at window starts, each from the latest forward over it
    losses, prev = [], 0
    for i, e in enumerate(ends):
        w = max(0, e - k2)
        if optimizer is not None:
            model.zero_grad()
        pred, state = model.forward(np.ascontiguousarray(_time_slice(x, w, e, bf)), known[w])
        new = e - prev
        p_new = _time_slice(pred, e - w - new, e - w, bf)
        loss, g = loss_fn(p_new, _time_slice(target, e - new, e, bf))
        grad = np.zeros_like(pred)
        if bf:
            grad[:, e - w - new:] = g
        else:
            grad[e - w - new:] = g
        model.backward(grad)
        if clip_norm is not None:
            clip_grad_norm(model.grads, clip_norm)
        if clip_value is not None:
            clip_grad_value(model.grads, clip_value)
        if optimizer is not None:
            optimizer.step()
        losses.append(loss)
        known[e] = state
        if i + 1 < len(ends):
            w_next = max(0, ends[i + 1] - k2)
            if w < w_next < e:  # inside this window: the latest forward's state, off the tape
                known[w_next] = model.state_at(w_next - w)
        prev = e
    return losses, known[T]
