"""fit(...): mini-batch training of a SequenceModel over a data set, seedable and
deterministic, with a simple progress bar on stderr and a loss history."""
import sys
import time

import numpy as np

from .._arrays import as_lengths
from .heads import LastStepLinear
from .losses import CrossEntropyLoss, MSELoss, mask_from_lengths
from .model import SequenceModel
from .optim import clip_grad_norm, clip_grad_value, make_optimizer
from .tbptt import tbptt as run_tbptt

_LOSSES = {"mse": MSELoss, "cross_entropy": CrossEntropyLoss}


class Progress:
    """`epoch 3/10 [########----------] 40/100 loss 0.01234`, redrawn at most 10 times a
    second on one stderr line; a summary line per epoch."""

    def __init__(self, epochs, batches, enabled=True, stream=None, width=20):
        self.epochs, self.batches, self.enabled, self.width = epochs, batches, enabled, width
        self.stream = stream if stream is not None else sys.stderr
        self._last = 0.0

    def update(self, epoch, batch, loss, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        done = int(self.width * batch / max(self.batches, 1))
        bar = "#" * done + "-" * (self.width - done)
        self.stream.write(f"\repoch {epoch + 1}/{self.epochs} [{bar}] {batch}/{self.batches} loss {loss:.5g}")
        self.stream.flush()

    def end_epoch(self, epoch, loss, seconds):
        if not self.enabled:
            return
        self.update(epoch, self.batches, loss, force=True)
        self.stream.write(f"  ({seconds:.1f}s)\n")
        self.stream.flush()


def _check_fit_args(model, loss, epochs, batch_size):
    """fit's arguments that need no data; returns the loss function."""
    if not isinstance(model, SequenceModel):
        raise TypeError(f"model: expected a fastseq.train.SequenceModel (wrap a layer: "
                        f"SequenceModel(layer, head)), got {type(model).__name__}")
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"loss: expected one of {sorted(_LOSSES)} or a callable, got {loss!r}")
        loss = _LOSSES[loss]()
    elif not callable(loss):
        raise TypeError(f"loss: expected one of {sorted(_LOSSES)} or a callable, got {type(loss).__name__}")
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return loss


def _to_layout(a, batch_first):
    """Sample-major [N', T, ...] batch -> the layer's layout."""
    return np.ascontiguousarray(a if batch_first else np.swapaxes(a, 0, 1))


def fit(model, x, y, loss="mse", optimizer="adam", epochs=1, batch_size=32, lengths=None,
        shuffle=True, seed=0, clip_norm=None, clip_value=None, tbptt=None, progress=True,
        callback=None):
    """Train `model` (a SequenceModel) and return its history.

    x        [N, T, I] sequences, sample-major whatever the layer's layout
    y        targets: per step [N, T, ...] for a per-step head (or none); per sequence
             [N, ...] for LastStepLinear. Class indices for cross-entropy.
    loss     "mse", "cross_entropy", or a callable (pred, target, mask) -> (loss, grad)
    optimizer  "adam", "sgd", ("adam", {"lr": 1e-2}), or an optimizer on `model`
    lengths  [N] valid steps per sequence (packed semantics; per-step losses are masked)
    seed     shuffling seed: the same seed, data and model give the same history
    clip_norm / clip_value  gradient clipping before each update
    tbptt    (k1, k2): truncated BPTT within each batch instead of full BPTT
    callback called as callback(epoch, history) after each epoch; True stops training
    Returns {"loss": mean loss per epoch, "batch_loss": every update's loss}."""
    loss_fn = _check_fit_args(model, loss, epochs, batch_size)
    opt = make_optimizer(optimizer, model)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x: expected [N, T, input_size] with N, T >= 1 (sample-major), "
                         f"got shape {x.shape}")
    N = x.shape[0]
    if y.ndim == 0 or y.shape[0] != N:
        raise ValueError(f"y: expected {N} targets (one per sequence), got shape {y.shape}")
    if lengths is not None:
        lengths = as_lengths(lengths, N)
        if lengths.max() > x.shape[1]:
            raise ValueError(f"lengths: expected values <= {x.shape[1]} (the steps in x), "
                             f"got {lengths.max()}")
    per_step = not isinstance(model.head, LastStepLinear)
    bf = model.rnn.batch_first
    rng = np.random.default_rng(seed)
    n_batches = (N + batch_size - 1) // batch_size
    bar = Progress(epochs, n_batches, progress)
    history = {"loss": [], "batch_loss": []}
    for epoch in range(epochs):
        t0 = time.monotonic()
        order = rng.permutation(N) if shuffle else np.arange(N)
        total, count = 0.0, 0
        for b in range(n_batches):
            idx = np.sort(order[b * batch_size:(b + 1) * batch_size])
            xb = _to_layout(x[idx], bf)
            yb = _to_layout(y[idx], bf) if per_step else y[idx]
            lb = None if lengths is None else lengths[idx]
            if tbptt is not None:
                if lb is not None:
                    raise ValueError("fit: tbptt with lengths is not supported")
                chunk_losses, _ = run_tbptt(model, loss_fn, xb, yb, tbptt[0], tbptt[1], opt, None,
                                            clip_norm, clip_value)
                batch_loss = float(np.mean(chunk_losses))
            else:
                model.zero_grad()
                pred, _ = model.forward(xb, None, lb)
                mask = None
                if per_step and lb is not None:
                    mask = mask_from_lengths(lb, xb.shape[1] if bf else xb.shape[0], bf)
                batch_loss, grad = loss_fn(pred, yb, mask)
                model.backward(grad)
                if clip_norm is not None:
                    clip_grad_norm(model.grads, clip_norm)
                if clip_value is not None:
                    clip_grad_value(model.grads, clip_value)
                opt.step()
            history["batch_loss"].append(batch_loss)
            total += batch_loss * len(idx)
            count += len(idx)
            bar.update(epoch, b + 1, total / count)
        history["loss"].append(total / count)
        bar.end_epoch(epoch, total / count, time.monotonic() - t0)
        if callback is not None and callback(epoch, history):
            break
    return history

