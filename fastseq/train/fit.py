"""fit(...): mini-batch training of a SequenceModel over a data set, seedable and
deterministic, with a tqdm progress bar on stderr and a loss history.

Data come in the layer's own layout, like every other call: [T, N, I] time-major, or
[N, T, I] when the layer is batch_first (torch's rule)."""
import time
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from .data import check_data
from .heads import LastStepLinear
from .history import History
from .losses import make_loss, mask_from_lengths
from .model import SequenceModel
from .optim import clip_grad_norm, clip_grad_value, make_optimizer
from .progress import EpochProgress
from .tbptt import tbptt as run_tbptt
from .tree import TreeModel, fit_trees


def _check_fit_args(model, epochs, batch_size):
    if not isinstance(model, (SequenceModel, TreeModel)):
        raise TypeError(f"model: expected a fastseq.train.SequenceModel (wrap a layer: "
                        f"SequenceModel(layer, head)), got {type(model).__name__}")
    for name, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def fit(model: SequenceModel, x: Any, y: Any, *,
        loss: Union[str, Callable] = "mse",
        optimizer: Any = "adam",
        epochs: int = 1,
        batch_size: int = 32,
        lengths: Any = None,
        shuffle: bool = True,
        seed: Optional[int] = 0,
        clip_norm: Optional[float] = None,
        clip_value: Optional[float] = None,
        tbptt: Optional[Tuple[int, int]] = None,
        progress: bool = True,
        callback: Optional[Callable[[int, History], Any]] = None) -> History:
    """Train `model` by mini-batch gradient descent and return its loss history.

    Data follow the layer's layout, like ``layer(x)``, ``model.predict`` and torch:
    time-major ``[T, N, I]`` unless the layer is ``batch_first`` (``[N, T, I]``).

    Parameters
    ----------
    model : fastseq.train.SequenceModel or fastseq.train.TreeModel
        The layer and its head (a TreeModel: see :func:`fastseq.train.tree.fit_trees`).
    x : array_like
        ``[T, N, input_size]`` (``[N, T, input_size]`` if ``batch_first``); for a
        TreeModel, a sequence of single-rooted ``(features, parent)`` trees.
    y : array_like
        Targets: per sequence ``[N, ...]`` for :class:`LastStepLinear`; per step, in the
        layer's layout, for :class:`PerStepLinear` or no head. Class indices for
        ``loss="cross_entropy"``.
    loss : {"mse", "cross_entropy"} or callable
        A callable takes ``(pred, target, mask)`` and returns ``(loss, grad)``.
    optimizer : str, tuple or optimizer
        ``"adam"``, ``"sgd"``, ``("adam", {"lr": 1e-2})``, or an optimizer on `model`.
    epochs, batch_size : int
        Passes over the data; sequences per update.
    lengths : array_like of int, optional
        ``[N]`` valid steps per sequence (packed semantics; per-step losses are masked).
    shuffle : bool
        Shuffle the sequences every epoch.
    seed : int, optional
        Shuffling seed: the same seed, data and model give the same history.
    clip_norm, clip_value : float, optional
        Gradient clipping before each update (global L2 norm; per element).
    tbptt : (int, int), optional
        ``(k1, k2)``: truncated BPTT inside each batch (see :func:`tbptt`).
    progress : bool
        A progress bar per epoch on stderr (tqdm; a summary line without it).
    callback : callable, optional
        ``callback(epoch, history)`` after each epoch; a true result stops training.

    Returns
    -------
    History
        ``{"loss": [mean loss per epoch], "batch_loss": [each update's loss]}``, with
        ``.plot()``.

    Raises
    ------
    ValueError
        Shapes that do not fit the layer's layout (named with expected and given shape),
        bad lengths, epochs or batch_size, an unknown loss or optimizer name.
    TypeError
        `model` is not a SequenceModel, or `loss` is neither a name nor callable.

    Examples
    --------
    >>> import numpy as np, fastseq
    >>> from fastseq import train
    >>> model = train.SequenceModel(fastseq.LSTM(2, 8, batch_first=True), train.LastStepLinear(8, 1))
    >>> x, y = np.zeros((16, 5, 2), np.float32), np.zeros((16, 1), np.float32)
    >>> len(train.fit(model, x, y, epochs=2, progress=False)["loss"])
    2
    """
    if isinstance(model, TreeModel):  # x: a sequence of (features, parent) trees
        if lengths is not None or tbptt is not None:
            raise ValueError("fit: lengths and tbptt do not apply to a TreeModel")
        return fit_trees(model, x, y, loss=loss, optimizer=optimizer, epochs=epochs,
                         batch_size=batch_size, shuffle=shuffle, seed=seed, clip_norm=clip_norm,
                         clip_value=clip_value, progress=progress, callback=callback)
    _check_fit_args(model, epochs, batch_size)
    loss_fn = make_loss(loss)
    opt = make_optimizer(optimizer, model)
    x, y, lengths, N = check_data(model, x, y, lengths)
    if tbptt is not None and lengths is not None:
        raise ValueError("fit: tbptt with lengths is not supported")
    per_step = not isinstance(model.head, LastStepLinear)
    bf = model.rnn.batch_first
    b_ax = 0 if bf else 1

    def train_batch(idx):
        idx = np.sort(idx)
        xb = np.ascontiguousarray(np.take(x, idx, axis=b_ax))
        yb = np.ascontiguousarray(np.take(y, idx, axis=b_ax)) if per_step else y[idx]
        lb = None if lengths is None else lengths[idx]
        if tbptt is not None:
            chunk_losses, _ = run_tbptt(model, loss_fn, xb, yb, tbptt[0], tbptt[1], optimizer=opt,
                                        clip_norm=clip_norm, clip_value=clip_value)
            return float(np.mean(chunk_losses))
        model.zero_grad()
        pred, _ = model.forward(xb, None, lb)
        mask = None
        if per_step and lb is not None:
            mask = mask_from_lengths(lb, xb.shape[1] if bf else xb.shape[0], bf)
        batch_loss, grad = loss_fn(pred, yb, mask)
        model.backward(grad)
        update(model, opt, clip_norm, clip_value)
        return batch_loss
    return run_epochs(N, batch_size, epochs, shuffle, seed, progress, callback, train_batch)


def update(model, opt, clip_norm, clip_value):
    """Clip the model's gradients as asked, then take one optimizer step."""
    if clip_norm is not None:
        clip_grad_norm(model.grads, clip_norm)
    if clip_value is not None:
        clip_grad_value(model.grads, clip_value)
    opt.step()


def run_epochs(n, batch_size, epochs, shuffle, seed, progress, callback, train_batch):
    """The epoch loop over n examples in mini-batches: `train_batch(indices)` trains on one
    batch and returns its loss; progress bar, history and callback as `fit` documents."""
    rng = np.random.default_rng(seed)
    n_batches = (n + batch_size - 1) // batch_size
    bar = EpochProgress(epochs, n_batches, progress)
    history = History(loss=[], batch_loss=[])
    for epoch in range(epochs):
        t0 = time.monotonic()
        order = rng.permutation(n) if shuffle else np.arange(n)
        total, count = 0.0, 0
        bar.start_epoch(epoch)
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            batch_loss = train_batch(idx)
            history["batch_loss"].append(batch_loss)
            total += batch_loss * len(idx)
            count += len(idx)
            bar.update(total / count)
        history["loss"].append(total / count)
        bar.end_epoch(epoch, total / count, time.monotonic() - t0)
        if callback is not None and callback(epoch, history):
            break
    return history
