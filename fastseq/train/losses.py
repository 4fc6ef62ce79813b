"""Losses with their gradients: `loss, grad = loss_fn(pred, target, mask=None)`, mean
reduction like torch's defaults, computed by the C library. `mask` (pred's leading shape,
e.g. [T, B] from lengths) weights positions and restricts the mean to them."""
from typing import Any, Tuple

import numpy as np

from .. import _core


def _flat_mask(mask, lead_shape):
    """The mask broadcast to lead_shape, as a flat C-contiguous float32 vector (or None)."""
    if mask is None:
        return None
    m = np.asarray(mask, dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(m, lead_shape)).reshape(-1)


class MSELoss:
    """Mean squared error, ``torch.nn.MSELoss``: ``loss, grad = MSELoss()(pred, target, mask)``.

    The mean of ``(pred - target)^2`` over every element; with a `mask` over pred's
    leading axes, over the elements of the masked-in positions.

    Examples
    --------
    >>> MSELoss()(np.ones((2, 1), np.float32), np.zeros((2, 1)))[0]
    1.0
    """

    def __call__(self, pred: Any, target: Any, mask: Any = None) -> Tuple[float, np.ndarray]:
        """The loss and its gradient.

        Parameters
        ----------
        pred, target : array_like
            The same number of elements.
        mask : array_like, optional
            Weights over pred's leading axes (e.g. from :func:`mask_from_lengths`).

        Returns
        -------
        (float, numpy.ndarray)
            The loss and d loss / d pred.

        Raises
        ------
        ValueError
            Sizes that differ.

        Examples
        --------
        >>> loss, grad = MSELoss()(np.zeros(3, np.float32), np.ones(3))
        """
        pred = np.ascontiguousarray(pred, dtype=np.float32)
        target = np.ascontiguousarray(target, dtype=np.float32)
        if target.size != pred.size:
            raise ValueError(f"target: expected {pred.shape} values, got shape {target.shape}")
        m = _flat_mask(mask, pred.shape[:np.ndim(mask)] if mask is not None else ())
        cols = pred.shape[-1] if m is None else pred.size // m.size
        grad = np.empty_like(pred)
        return float(_core.mse_loss(pred, target, m, grad, cols)), grad


class CrossEntropyLoss:
    """Softmax cross-entropy over the last axis (``torch.nn.CrossEntropyLoss`` with class
    indices).

    Examples
    --------
    >>> round(CrossEntropyLoss()(np.zeros((1, 2), np.float32), [1])[0], 4)
    0.6931
    """

    def __call__(self, pred: Any, target: Any, mask: Any = None) -> Tuple[float, np.ndarray]:
        """The loss and its gradient.

        Parameters
        ----------
        pred : array_like
            Logits ``[..., C]``.
        target : array_like of int
            Classes, pred's leading shape.
        mask : array_like, optional
            Weights of pred's leading shape.

        Returns
        -------
        (float, numpy.ndarray)
            The mean cross-entropy, and its gradient with respect to the logits.

        Raises
        ------
        ValueError
            A target that is not integer classes of pred's leading shape.

        Examples
        --------
        >>> loss, grad = CrossEntropyLoss()(np.zeros((2, 3), np.float32), [0, 2])
        """
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


def mask_from_lengths(lengths: Any, T: int, batch_first: bool = False) -> np.ndarray:
    """A float mask, 1 where ``t < length``.

    Parameters
    ----------
    lengths : array_like of int
        ``[B]`` valid steps.
    T : int
        Steps.
    batch_first : bool
        ``[B, T]`` instead of ``[T, B]``.

    Returns
    -------
    numpy.ndarray
        float32 ``[T, B]`` (``[B, T]``).

    Examples
    --------
    >>> mask_from_lengths([1, 2], 2).tolist()
    [[1.0, 1.0], [0.0, 1.0]]
    """
    lengths = np.asarray(lengths)
    m = (np.arange(T)[:, None] < lengths[None, :]).astype(np.float32)
    return m.T.copy() if batch_first else m
