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


def _check_fit_args(model, epochs, batch_size):
    if not isinstance(model, SequenceModel):
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
    model : fastseq.train.SequenceModel
        The layer and its head.
    x : array_like
        ``[T, N, input_size]`` (``[N, T, input_size]`` if ``batch_first``).
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
    _check_fit_args(model, epochs, batch_size)
    loss_fn = make_loss(loss)
    opt = make_optimizer(optimizer, model)
    x, y, lengths, N = check_data(model, x, y, lengths)
    if tbptt is not None and lengths is not None:
        raise ValueError("fit: tbptt with lengths is not supported")
    per_step = not isinstance(model.head, LastStepLinear)
    bf = model.rnn.batch_first
    b_ax = 0 if bf else 1
    rng = np.random.default_rng(seed)
    n_batches = (N + batch_size - 1) // batch_size
    bar = EpochProgress(epochs, n_batches, progress)
    history = History(loss=[], batch_loss=[])
    for epoch in range(epochs):
        t0 = time.monotonic()
        order = rng.permutation(N) if shuffle else np.arange(N)
        total, count = 0.0, 0
        bar.start_epoch(epoch)
        for b in range(n_batches):
            idx = np.sort(order[b * batch_size:(b + 1) * batch_size])
            xb = np.ascontiguousarray(np.take(x, idx, axis=b_ax))
            yb = np.ascontiguousarray(np.take(y, idx, axis=b_ax)) if per_step else y[idx]
            lb = None if lengths is None else lengths[idx]
            if tbptt is not None:
                chunk_losses, _ = run_tbptt(model, loss_fn, xb, yb, tbptt[0], tbptt[1], optimizer=opt,
                                            clip_norm=clip_norm, clip_value=clip_value)
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
            bar.update(total / count)
        history["loss"].append(total / count)
        bar.end_epoch(epoch, total / count, time.monotonic() - t0)
        if callback is not None and callback(epoch, history):
            break
    return history
