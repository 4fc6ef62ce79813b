"""Output heads on a recurrent layer's output: a linear map per step, or on each sequence's
last valid step. Parameters are views into the owning model's flat vector once bound."""
from typing import Optional

import numpy as np

from .. import _core


def _head_doc(summary, example, result):
    """A head class's numpydoc docstring."""
    return f"""{summary}

    Parameters
    ----------
    in_features, out_features : int
        Features in (directions x features of h) and out.
    bias : bool
        A learnable bias.
    seed : int, optional
        Seed of the initial weights.

    Raises
    ------
    ValueError
        A size below 1.

    Examples
    --------
    >>> {example}
    {result}
    """


class _LinearHead:
    """y = x W^T + b with W [out_features, in_features] (torch's nn.Linear layout and init)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 seed: Optional[int] = None):
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features, out_features: expected positive, got {in_features}, {out_features}")
        self.in_features, self.out_features, self.has_bias = int(in_features), int(out_features), bool(bias)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        flat = rng.uniform(-bound, bound, size=self.num_params).astype(np.float32)
        self.bind(flat, np.zeros_like(flat))

    @property
    def num_params(self):
        return self.out_features * (self.in_features + (1 if self.has_bias else 0))

    def bind(self, params, grads):
        """Make weight/bias (and their grads) views into `params` / `grads` (same size),
        keeping the current values."""
        n = self.out_features * self.in_features
        if getattr(self, "_params", None) is not None:
            params[:] = self._params
        self._params, self._grads = params, grads
        self.weight = params[:n].reshape(self.out_features, self.in_features)
        self.grad_weight = grads[:n].reshape(self.out_features, self.in_features)
        self.bias = params[n:] if self.has_bias else None
        self.grad_bias = grads[n:] if self.has_bias else None

    def state_dict(self):
        d = {"weight": self.weight.copy()}
        if self.has_bias:
            d["bias"] = self.bias.copy()
        return d

    def load_state_dict(self, d):
        self.weight[:] = np.asarray(d["weight"], dtype=np.float32)
        if self.has_bias:
            self.bias[:] = np.asarray(d["bias"], dtype=np.float32)

    def _linear(self, x):
        """x [..., in] (C-contiguous float32) -> [..., out], through the C library."""
        y = np.empty(x.shape[:-1] + (self.out_features,), dtype=np.float32)
        _core.linear_forward(x, self.weight, self.bias, y)
        return y

    def _linear_backward(self, x, g):
        """Accumulate dW, db from x [..., in] and g [..., out]; return d x."""
        gx = np.empty(x.shape, dtype=np.float32)
        _core.linear_backward(x, self.weight, g, gx, self.grad_weight, self.grad_bias)
        return gx


class PerStepLinear(_LinearHead):
    __doc__ = _head_doc("A linear map applied at every step: ``[T, B, F] -> [T, B, out]`` (any "
                        "leading shape), ``nn.Linear``'s layout and initialisation.",
                        "PerStepLinear(8, 2).weight.shape", "(2, 8)")

    def forward(self, y, lengths=None, batch_first=False):
        self._x = np.ascontiguousarray(y, dtype=np.float32)
        return self._linear(self._x)

    def backward(self, grad):
        """d loss / d (layer output) for d loss / d (head output); accumulates parameter grads."""
        return self._linear_backward(self._x, np.ascontiguousarray(grad, dtype=np.float32))


class LastStepLinear(_LinearHead):
    __doc__ = _head_doc("A linear map on each sequence's last valid step (t = length - 1, or "
                        "T - 1): ``[T, B, F]`` (``[B, T, F]`` if batch_first) ``-> [B, out]``.",
                        "LastStepLinear(8, 1).num_params", "9")

    def forward(self, y, lengths=None, batch_first=False):
        B = y.shape[0] if batch_first else y.shape[1]
        T = y.shape[1] if batch_first else y.shape[0]
        last = np.full(B, T - 1) if lengths is None else np.asarray(lengths, dtype=np.int64) - 1
        rows = np.arange(B)
        self._where = (rows, last) if batch_first else (last, rows)
        self._y_shape = y.shape
        self._x = np.ascontiguousarray(y[self._where], dtype=np.float32)
        return self._linear(self._x)

    def backward(self, grad):
        gx = self._linear_backward(self._x, np.ascontiguousarray(grad, dtype=np.float32))
        full = np.zeros(self._y_shape, dtype=np.float32)
        full[self._where] = gx
        return full
