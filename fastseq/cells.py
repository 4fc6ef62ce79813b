"""Single-step cells with nn.RNNCell / nn.LSTMCell / nn.GRUCell's interface: one
step for a batch, through the same C kernels as the layers (a one-layer model
run for one step)."""
from typing import Any, Dict, Optional

import numpy as np

from . import layers
from ._arrays import as_float32, is_tensor


class _Cell:
    _layer_cls = None

    def __init__(self, input_size, hidden_size, bias=True, *, seed=None, **extra):
        self._layer = self._layer_cls(input_size, hidden_size, bias=bias, seed=seed, **extra)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Parameters under torch's cell names.

        Returns
        -------
        dict of str to numpy.ndarray
            ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` (float32 copies).

        Examples
        --------
        >>> sorted(fastseq.GRUCell(2, 3).state_dict())
        ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih']
        """
        return {k[:-3]: v for k, v in self._layer.state_dict().items()}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load parameters by torch's cell names (numpy arrays or torch tensors); strict.

        Parameters
        ----------
        state_dict : dict
            Exactly the keys of :meth:`state_dict`, with their shapes.

        Raises
        ------
        ValueError
            Unknown or missing keys, or a wrong shape.

        Examples
        --------
        >>> a, b = fastseq.RNNCell(2, 3), fastseq.RNNCell(2, 3)
        >>> b.load_state_dict(a.state_dict())
        """
        self._layer.load_state_dict({k + "_l0": v for k, v in state_dict.items()})

    def as_layer(self):
        """The equivalent one-layer sequence layer with a copy of this cell's weights.

        What ``fastseq.save`` writes and ``export-c`` exports for a cell (loading such a
        file gives back the layer).

        Returns
        -------
        fastseq.LSTM or fastseq.GRU or fastseq.RNN
            The layer.

        Examples
        --------
        >>> fastseq.LSTMCell(2, 3).as_layer()
        LSTM(2, 3)
        """
        layer = self._layer_cls(self.input_size, self.hidden_size, bias=self.bias, **self._extra())
        layer.load_state_dict(self._layer.state_dict())
        return layer

    def to_torch(self):
        """The equivalent torch cell (``nn.LSTMCell``, ``nn.GRUCell``, ``nn.RNNCell``) with
        this cell's weights; imports torch.

        Returns
        -------
        torch.nn.Module
            The torch cell.

        Examples
        --------
        >>> fastseq.GRUCell(2, 3).to_torch()  # doctest: +SKIP
        GRUCell(2, 3)
        """
        import torch
        cls = getattr(torch.nn, type(self).__name__)
        module = cls(self.input_size, self.hidden_size, bias=self.bias, **self._extra())
        module.load_state_dict({k: torch.from_numpy(v) for k, v in self.state_dict().items()},
                               strict=True)
        return module

    def backward(self, x: Any, grad_hx: Any, hx: Any = None) -> Dict[str, Any]:
        """Gradients of a loss through one step (BPTT over one step in C).

        Parameters
        ----------
        x : array_like
            The step's input ``[B, input_size]`` or ``[input_size]``.
        grad_hx : array_like or (array_like, array_like)
            d loss / d of the cell's result: d h' (LSTMCell: a pair ``(d h', d c')``,
            either may be None for zero), shaped like the result.
        hx : array_like or (array_like, array_like), optional
            The state the step started from, as for a call (None: zeros).

        Returns
        -------
        dict
            Keyed like :meth:`state_dict`, plus ``"input"`` (like `x`) and ``"hx"`` (like
            `hx`; LSTMCell: a pair).

        Raises
        ------
        ValueError
            Shapes that do not fit.

        Examples
        --------
        >>> import numpy as np
        >>> cell = fastseq.RNNCell(2, 3)
        >>> g = cell.backward(np.ones((4, 2), np.float32), np.ones((4, 3), np.float32))
        >>> g["weight_ih"].shape, g["input"].shape
        ((3, 2), (4, 2))
        """
        lstm = isinstance(self, LSTMCell)
        states = list(hx) if lstm and hx is not None else [hx] if not lstm else [None, None]
        if lstm and (not isinstance(grad_hx, (tuple, list)) or len(grad_hx) != 2):
            raise ValueError("grad_hx: expected a pair (grad_h, grad_c) for an LSTMCell")
        grads = list(grad_hx) if lstm else [grad_hx]
        names = ("h", "c") if lstm else ("hx",)
        unbatched, x2, states = self._run(x, list(zip(names, states)))
        B = x2.shape[1]
        grads = [self._state(g, "grad_" + n, B, unbatched) for n, g in zip(names, grads)]
        if lstm and (states[0] is None) != (states[1] is None):
            raise ValueError("hx: give both h and c, or neither")
        state = None if states[0] is None else (tuple(states) if lstm else states[0])
        out = self._layer.backward(x2, None, hx=state, grad_hn=tuple(grads) if lstm else grads[0])
        result = {k[:-3]: v for k, v in out.items() if k not in ("input", "hx")}
        squeeze = (lambda a: a[0, 0]) if unbatched else (lambda a: a[0])
        result["input"] = squeeze(out["input"])
        hx_out = out["hx"]
        result["hx"] = tuple(squeeze(a) for a in hx_out) if lstm else squeeze(hx_out)
        return result

    def _extra(self):
        return {}

    def _state(self, value, name, batch, unbatched):
        if value is None:
            return None
        arr = as_float32(value, name)
        expected = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if arr.shape != expected:
            raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
        return arr.reshape(1, batch, self.hidden_size)

    def _run(self, x, states):
        x = as_float32(x, "x")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected [B, {self.input_size}] or [{self.input_size}], got shape {x.shape}")
        unbatched = x.ndim == 1
        x2 = x.reshape(1, -1, self.input_size)
        B = x2.shape[1]
        states = [self._state(v, n, B, unbatched) for n, v in states]
        return unbatched, x2, states

    def __repr__(self):
        text = f"{type(self).__name__}({self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False") + ")"
        return text if self.dtype == "f32" else f"fastseq.quantize({text}, {self.dtype!r})"

    @property
    def dtype(self) -> str:
        """The weights' element type: ``"f32"``, or that of :func:`fastseq.quantize`."""
        return self._layer.dtype


def _like_input(x, value):
    """torch in, torch out: `value` (an array) as a torch tensor when x was one."""
    if not is_tensor(x):
        return value
    import torch
    return torch.from_numpy(value)


class RNNCell(_Cell):
    """One step of an Elman cell, ``nn.RNNCell``'s interface:
    h' = act(W_ih x + b_ih + W_hh h + b_hh).

    Parameters
    ----------
    input_size, hidden_size : int
        Features of x and of h.
    bias : bool
        Learnable biases ``b_ih``, ``b_hh``.
    nonlinearity : {"tanh", "relu"}
        The activation.
    seed : int, optional
        Seed of the initial weights (torch's uniform init).

    Raises
    ------
    ValueError
        A size or nonlinearity out of range.

    Examples
    --------
    >>> import numpy as np
    >>> cell = fastseq.RNNCell(3, 4, seed=0)
    >>> cell(np.zeros((2, 3), np.float32)).shape
    (2, 4)
    """

    _layer_cls = layers.RNN

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, seed: Optional[int] = None):
        super().__init__(input_size, hidden_size, bias=bias, seed=seed, nonlinearity=nonlinearity)

    @property
    def nonlinearity(self):
        """``"tanh"`` or ``"relu"``."""
        return self._layer.nonlinearity

    def _extra(self):
        return {"nonlinearity": self.nonlinearity}

    def __call__(self, x: Any, hx: Any = None) -> Any:
        """One step.

        Parameters
        ----------
        x : array_like
            ``[B, input_size]`` or unbatched ``[input_size]``.
        hx : array_like, optional
            ``[B, hidden_size]`` (or ``[hidden_size]``); None: zeros.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            h', shaped like `hx`; a torch tensor when `x` is one.

        Raises
        ------
        ValueError
            Shapes that do not fit.

        Examples
        --------
        >>> import numpy as np
        >>> h = fastseq.RNNCell(3, 4)(np.zeros((2, 3), np.float32))
        """
        unbatched, x2, (h0,) = self._run(x, [("hx", hx)])
        _, h = self._layer(x2, h0)
        return _like_input(x, h[0, 0] if unbatched else h[0])


class GRUCell(RNNCell):
    """One step of a GRU, ``nn.GRUCell``'s interface (gate order r, z, n).

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of the input and of the state.
    bias : bool
        Whether the cell has ``b_ih`` and ``b_hh``.
    seed : int, optional
        Initial weights' random seed (torch's uniform initialisation).

    Raises
    ------
    ValueError
        A size that is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> fastseq.GRUCell(3, 4)(np.zeros(3, np.float32)).shape
    (4,)
    """

    _layer_cls = layers.GRU

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 seed: Optional[int] = None):
        _Cell.__init__(self, input_size, hidden_size, bias=bias, seed=seed)

    nonlinearity = None

    def _extra(self):
        return {}


class LSTMCell(_Cell):
    """One step of an LSTM, ``nn.LSTMCell``'s interface: returns ``(h', c')``.

    Parameters
    ----------
    input_size, hidden_size : int
        Features of x and of h.
    bias : bool
        Learnable biases.
    seed : int, optional
        Seed of the initial weights.

    Raises
    ------
    ValueError
        A size out of range.

    Examples
    --------
    >>> import numpy as np
    >>> h, c = fastseq.LSTMCell(3, 4)(np.zeros((2, 3), np.float32))
    >>> h.shape, c.shape
    ((2, 4), (2, 4))
    """

    _layer_cls = layers.LSTM

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 seed: Optional[int] = None):
        super().__init__(input_size, hidden_size, bias=bias, seed=seed)

    def __call__(self, x: Any, hx: Any = None) -> Any:
        """One step.

        Parameters
        ----------
        x : array_like
            ``[B, input_size]`` or unbatched ``[input_size]``.
        hx : (array_like, array_like), optional
            ``(h, c)``, each ``[B, hidden_size]``; None: zeros.

        Returns
        -------
        (h', c')
            numpy float32, or torch tensors when `x` is one.

        Raises
        ------
        ValueError
            Shapes that do not fit, or only one of h and c.

        Examples
        --------
        >>> import numpy as np
        >>> h, c = fastseq.LSTMCell(3, 4)(np.zeros(3, np.float32))
        """
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"hx: expected a pair (h, c), got {type(hx).__name__}")
        h, c = hx if hx is not None else (None, None)
        unbatched, x2, (h0, c0) = self._run(x, [("h", h), ("c", c)])
        if (h0 is None) != (c0 is None):
            raise ValueError("hx: give both h and c, or neither")
        _, (h_n, c_n) = self._layer(x2, None if h0 is None else (h0, c0))
        h_n, c_n = (h_n[0, 0], c_n[0, 0]) if unbatched else (h_n[0], c_n[0])
        return _like_input(x, h_n), _like_input(x, c_n)
