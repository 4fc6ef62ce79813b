"""Truncated back-propagation through time, TBPTT(k1, k2): every k1 steps, back-propagate
through the last k2 >= k1 steps, carrying the state across chunks.

At each update point e (k1, 2 k1, ..., and T), the window [e - k2, e) is run forward from
the (detached) state at its start; the loss covers the k1 new steps [e - k1, e) only; the
gradient flows back through the whole window. TBPTT(T, T) is full BPTT; TBPTT(k, k) is the
usual loop that detaches the state every k steps."""
import numpy as np

from .heads import LastStepLinear
from .optim import clip_grad_norm, clip_grad_value


def _time_slice(a, lo, hi, batch_first):
    return a[:, lo:hi] if batch_first else a[lo:hi]


def tbptt(model, loss_fn, x, target, k1, k2=None, optimizer=None, hx=None, clip_norm=None,
          clip_value=None):
    """Run TBPTT(k1, k2) over one batch of long sequences.

    model      a SequenceModel with a per-step head (or none), unidirectional
    x, target  [T, B, ...] ([B, T, ...] if the layer is batch_first); target per step
    optimizer  stepped after each chunk (gradients zeroed before it); None: the chunks'
               gradients accumulate in model.grads (nothing is zeroed)
    hx         initial state (None: zeros)
    Returns (list of the chunks' losses, final state)."""
    rnn = model.rnn
    if isinstance(model.head, LastStepLinear):
        raise ValueError("tbptt: needs a per-step head (PerStepLinear) or none, got LastStepLinear")
    if rnn.bidirectional:
        raise ValueError("tbptt: a bidirectional layer needs the whole sequence; use full BPTT")
    bf = rnn.batch_first
    x = np.asarray(x, dtype=np.float32)
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
