"""Losses with their gradients: `loss, grad = loss_fn(pred, target, mask=None)`, mean
reduction like torch's defaults, computed by the C library. `mask` (pred's leading shape,
e.g. [T, B] from lengths) weights positions and restricts the mean to them."""
import numpy as np

from .. import _core


def _flat_mask(mask, lead_shape):
    """The mask broadcast to lead_shape, as a flat C-contiguous float32 vector (or None)."""
    if mask is None:
        return None
    m = np.asarray(mask, dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(m, lead_shape)).reshape(-1)


class MSELoss:
    """mean((pred - target)^2) over every element (torch.nn.MSELoss); with a mask over
    pred's leading axes, over the elements of the masked-in positions."""

    def __call__(self, pred, target, mask=None):
        pred = np.ascontiguousarray(pred, dtype=np.float32)
        target = np.ascontiguousarray(target, dtype=np.float32)
        if target.size != pred.size:
            raise ValueError(f"target: expected {pred.shape} values, got shape {target.shape}")
        m = _flat_mask(mask, pred.shape[:np.ndim(mask)] if mask is not None else ())
        cols = pred.shape[-1] if m is None else pred.size // m.size
        grad = np.empty_like(pred)
        return float(_core.mse_loss(pred, target, m, grad, cols)), grad


class CrossEntropyLoss:
    """Softmax cross-entropy over the last axis; target: integer classes of pred's leading
    shape (torch.nn.CrossEntropyLoss with class indices); mask: that shape too."""

    def __call__(self, pred, target, mask=None):
        pred = np.ascontiguousarray(pred, dtype=np.float32)
        C = pred.shape[-1]
        t = np.asarray(target)
        if t.size != pred.size // C or t.dtype.kind not in "iu":
            raise ValueError(f"target: expected {pred.size // C} class indices (shape {pred.shape[:-1]}), "
                             f"got shape {t.shape} of dtype {t.dtype}")
        t = np.ascontiguousarray(t, dtype=np.int32).reshape(-1)
        grad = np.empty_like(pred)
        loss = _core.xent_loss(pred, t, _flat_mask(mask, pred.shape[:-1]), grad, C)
        return float(loss), grad


LOSSES = {"mse": MSELoss, "cross_entropy": CrossEntropyLoss}


def make_loss(loss):
    """The loss function for a spelling: ``"mse"``, ``"cross_entropy"`` or a callable.

    Parameters
    ----------
    loss : str or callable
        A name from ``LOSSES`` or a callable ``(pred, target, mask) -> (loss, grad)``.

    Returns
    -------
    callable
        ``loss_fn(pred, target, mask=None) -> (float, numpy.ndarray)``.

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For anything else that is not callable.

    Examples
    --------
    >>> make_loss("mse")  # doctest: +ELLIPSIS
    <fastseq.train.losses.MSELoss object at ...>
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {sorted(LOSSES)} or a callable, got {loss!r}")
        return LOSSES[loss]()
    if not callable(loss):
        raise TypeError(f"loss: expected one of {sorted(LOSSES)} or a callable, got {type(loss).__name__}")
    return loss


def mask_from_lengths(lengths, T, batch_first=False):
    """[T, B] (or [B, T]) float mask: 1 where t < length."""
    lengths = np.asarray(lengths)
    m = (np.arange(T)[:, None] < lengths[None, :]).astype(np.float32)
    return m.T.copy() if batch_first else m
