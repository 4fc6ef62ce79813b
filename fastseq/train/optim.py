"""Optimizers and gradient clipping on flat float32 vectors (the C library's updates, with
torch.optim's arithmetic). An optimizer works on anything with `params` and `grads` arrays
(a SequenceModel) and calls its `sync()` after each update."""
from typing import Any, Tuple

import numpy as np

from .. import _core


def clip_grad_norm(grads: np.ndarray, max_norm: float) -> float:
    """Scale `grads` in place to L2 norm <= `max_norm` (``torch.nn.utils.clip_grad_norm_``).

    Parameters
    ----------
    grads : numpy.ndarray
        Flat float32 gradients (``model.grads``).
    max_norm : float
        The largest norm allowed.

    Returns
    -------
    float
        The norm before clipping.

    Examples
    --------
    >>> clip_grad_norm(np.array([3, 4], np.float32), 1.0)
    5.0
    """
    return _core.clip_grad_norm(grads, float(max_norm))


def clip_grad_value(grads: np.ndarray, clip_value: float) -> None:
    """Clamp `grads` in place to ``[-clip_value, clip_value]`` (``clip_grad_value_``).

    Parameters
    ----------
    grads : numpy.ndarray
        Flat float32 gradients.
    clip_value : float
        The bound.

    Examples
    --------
    >>> g = np.array([-3, 0.5], np.float32); clip_grad_value(g, 1.0)
    """
    _core.clip_grad_value(grads, float(clip_value))


class _Optimizer:
    def __init__(self, model, lr):
        if not lr >= 0:
            raise ValueError(f"lr: expected >= 0, got {lr}")
        self.model, self.lr = model, float(lr)

    def zero_grad(self):
        self.model.grads.fill(0.0)

    def step(self):
        self._update(self.model.params, self.model.grads)
        sync = getattr(self.model, "sync", None)
        if sync is not None:
            sync()


class SGD(_Optimizer):
    """``torch.optim.SGD``'s arithmetic (dampening 0, no Nesterov), in C.

    Parameters
    ----------
    model : SequenceModel
        Anything with flat ``params`` and ``grads`` (and ``sync()``).
    lr, momentum : float
        Learning rate and momentum.
    weight_decay : float
        L2 penalty.

    Raises
    ------
    ValueError
        A negative learning rate.

    Examples
    --------
    >>> opt = SGD(SequenceModel(fastseq.GRU(2, 3)), lr=0.1, momentum=0.9)
    """

    def __init__(self, model: Any, lr: float = 0.01, momentum: float = 0.0, *,
                 weight_decay: float = 0.0):
        super().__init__(model, lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.velocity = np.zeros_like(model.params) if self.momentum else None

    def _update(self, params, grads):
        _core.sgd_step(params, grads, self.velocity, self.lr, self.momentum, self.weight_decay)


class Adam(_Optimizer):
    """``torch.optim.Adam``'s arithmetic (no amsgrad), in C.

    Parameters
    ----------
    model : SequenceModel
        What is optimised: its flat ``params`` are updated from its ``grads``.
    lr : float
        Step size (>= 0).
    betas : (float, float)
        Decay of the first and second moments.
    eps : float
        Added to the denominator.
    weight_decay : float
        Added to the gradient times the parameter (torch's L2 form, not AdamW).

    Raises
    ------
    ValueError
        ``lr < 0``.

    Examples
    --------
    >>> opt = Adam(SequenceModel(fastseq.GRU(2, 3)), lr=1e-2)
    """

    def __init__(self, model: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(model, lr)
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)
        self.m = np.zeros_like(model.params)
        self.v = np.zeros_like(model.params)
        self.t = 0

    def _update(self, params, grads):
        self.t += 1
        _core.adam_step(params, grads, self.m, self.v, self.t, self.lr, self.betas[0], self.betas[1],
                        self.eps, self.weight_decay)


def make_optimizer(spec, model):
    """An optimizer from an instance, a name ("adam", "sgd") or a (name, kwargs) pair."""
    if isinstance(spec, _Optimizer):
        return spec
    name, kwargs = (spec, {}) if isinstance(spec, str) else spec
    table = {"adam": Adam, "sgd": SGD}
    if name not in table:
        raise ValueError(f"optimizer: expected one of {sorted(table)} or an optimizer, got {name!r}")
    return table[name](model, **kwargs)
