"""A recurrent layer plus an optional head, trained as one: every parameter in one flat
float32 vector `params` (the layer's, in the C library's flat order, then the head's), with
the matching `grads`. Optimizers update `params` and call `sync()`, which repacks the
layer's weights for the kernels."""
from typing import Any, Tuple

import numpy as np

from .. import _core
from .._arrays import as_float32, as_lengths
from ._tape import Recorder


class SequenceModel:
    """A recurrent layer and an optional linear head, trained as one.

    ``pred, state = model.forward(x)`` records for ``model.backward(grad_pred)``; gradients
    accumulate in ``model.grads`` like torch's (``zero_grad()``); an optimizer updates
    ``model.params``. Data in the layer's layout (time-major unless ``batch_first``).

    Parameters
    ----------
    rnn : fastseq layer
        ``fastseq.LSTM``, ``GRU``, ``RNN``, ``FastRNN`` or ``FastGRNN``.
    head : PerStepLinear or LastStepLinear, optional
        On the layer's output; its ``in_features`` must be directions x features of h.

    Raises
    ------
    ValueError
        A head whose ``in_features`` does not fit the layer.

    Examples
    --------
    >>> model = SequenceModel(fastseq.GRU(2, 8), LastStepLinear(8, 1))
    """

    def __init__(self, rnn: Any, head: Any = None):
        self.rnn, self.head = rnn, head
        out_features = rnn.num_directions * rnn.output_features
        if head is not None and head.in_features != out_features:
            raise ValueError(f"head: expected in_features {out_features} "
                             f"(directions x features of h), got {head.in_features}")
        self.n_rnn = _core.param_count(rnn.c_model)
        n = self.n_rnn + (head.num_params if head is not None else 0)
        self.params = np.empty(n, dtype=np.float32)
        self.grads = np.zeros(n, dtype=np.float32)
        _core.get_params(rnn.c_model, self.params[:self.n_rnn])
        if head is not None:
            head.bind(self.params[self.n_rnn:], self.grads[self.n_rnn:])
        self._rec = Recorder(rnn)
        self._lstm = rnn.mode == "LSTM"
        self._lengths = None

    def __reduce__(self):
        """Pickle by value as the .fsq bytes (layer + head; no optimizer state or tape),
        unpickled by the C reader."""
        from .._pickle import reduce_model
        return reduce_model(self)

    # ---- parameters ------------------------------------------------------------------
    def sync(self):
        """Push `params` into the C layer (after an update)."""
        _core.set_params(self.rnn.c_model, self.params[:self.n_rnn])

    def refresh(self):
        """Re-read the layer's parameters into `params` (after loading a state_dict into it)."""
        _core.get_params(self.rnn.c_model, self.params[:self.n_rnn])

    def zero_grad(self):
        self.grads.fill(0.0)

    def state_dict(self):
        """The layer's state_dict, plus the head's under "head.weight" / "head.bias"."""
        d = self.rnn.state_dict()
        if self.head is not None:
            d.update({"head." + k: v for k, v in self.head.state_dict().items()})
        return d

    # ---- forward / backward -------------------------------------------------------------
    def _states(self, hx, B):
        if hx is None:
            return None, None
        h0, c0 = hx if self._lstm else (hx, None)
        LD = self.rnn.num_layers * self.rnn.num_directions
        out = []
        for name, v, F in (("h0", h0, self.rnn.output_features), ("c0", c0, self.rnn.hidden_size)):
            shape = (LD, B, F)
            if v is not None:
                v = as_float32(v, name)
                if v.shape != shape:
                    raise ValueError(f"{name}: expected shape {shape}, got {v.shape}")
            out.append(v)
        return out

    def forward(self, x: Any, hx: Any = None, lengths: Any = None) -> Tuple[np.ndarray, Any]:
        """Training forward, recorded for :meth:`backward`.

        Parameters
        ----------
        x : array_like
            ``[T, B, I]`` (``[B, T, I]`` if the layer is batch_first).
        hx, lengths
            As for a layer call.

        Returns
        -------
        pred, state
            The head's output (the layer's without a head) and ``h_n`` (LSTM:
            ``(h_n, c_n)``).

        Raises
        ------
        ValueError
            An x, state or lengths whose shape does not fit the layer (named).

        Examples
        --------
        >>> import numpy as np
        >>> model = SequenceModel(fastseq.GRU(2, 8), PerStepLinear(8, 1))
        >>> pred, h_n = model.forward(np.zeros((5, 3, 2), np.float32))
        """
        x = as_float32(x, "x")
        rnn = self.rnn
        if x.ndim != 3 or x.shape[-1] != rnn.input_size:
            raise ValueError(f"x: expected a 3-D input with {rnn.input_size} features, got shape {x.shape}")
        B = x.shape[0] if rnn.batch_first else x.shape[1]
        h0, c0 = self._states(hx, B)
        self._lengths = None if lengths is None else as_lengths(lengths, B)
        y, h_n, c_n = self._rec.forward(x, h0, c0, self._lengths)
        pred = y if self.head is None else self.head.forward(y, self._lengths, rnn.batch_first)
        return pred, ((h_n, c_n) if self._lstm else h_n)

    def backward(self, grad_pred: Any, grad_state: Any = None, want_state: bool = False) -> Any:
        """Add the gradients of the last forward to ``grads``.

        Parameters
        ----------
        grad_pred : array_like
            d loss / d pred.
        grad_state : array_like or tuple, optional
            d loss / d final state, like the state (None: zero).
        want_state : bool
            Also return d loss / d initial state.

        Returns
        -------
        array, tuple or None
            d loss / d initial state when `want_state`, else None.

        Examples
        --------
        >>> import numpy as np
        >>> model = SequenceModel(fastseq.GRU(2, 8), LastStepLinear(8, 1))
        >>> pred, h_n = model.forward(np.zeros((5, 3, 2), np.float32))
        >>> model.zero_grad(); model.backward(np.ones_like(pred))
        """
        g = as_float32(grad_pred, "grad_pred")
        gy = g if self.head is None else self.head.backward(g)
        ghn = gcn = None
        if grad_state is not None:
            ghn, gcn = grad_state if self._lstm else (grad_state, None)
            ghn = None if ghn is None else as_float32(ghn, "grad_h_n")
            gcn = None if gcn is None else as_float32(gcn, "grad_c_n")
        _, gh0, gc0 = self._rec.backward(np.ascontiguousarray(gy, dtype=np.float32), ghn, gcn,
                                         self.grads[:self.n_rnn], accumulate=True,
                                         want_input=False, want_state=want_state)
        if want_state:
            return (gh0, gc0) if self._lstm else gh0
        return None

    def state_at(self, t):
        """Recorded state before step t of the last forward (see Recorder.state_at)."""
        return self._rec.state_at(t)

    def predict(self, x: Any, hx: Any = None, lengths: Any = None) -> Tuple[Any, Any]:
        """Inference through the layer's fast forward, then the head; records nothing.

        Parameters
        ----------
        x, hx, lengths
            As for a layer call (the layer's layout).

        Returns
        -------
        pred, state
            ``[N, out]`` for a last-step head, per step for a per-step head (the layer's
            output without a head), and the final state.

        Examples
        --------
        >>> import numpy as np
        >>> model = SequenceModel(fastseq.GRU(2, 8), LastStepLinear(8, 1))
        >>> model.predict(np.zeros((5, 3, 2), np.float32))[0].shape
        (3, 1)
        """
        y, state = self.rnn(x, hx, lengths)
        if self.head is None:
            return y, state
        lens = None if lengths is None else np.asarray(lengths)
        bf = self.rnn.batch_first
        return self.head.forward(np.asarray(y), lens, bf), state
