"""Single-step cells with nn.RNNCell / nn.LSTMCell / nn.GRUCell's interface: one
step for a batch, through the same C kernels as the layers (a one-layer model
run for one step)."""
from . import layers
from ._arrays import as_float32


class _Cell:
    _layer_cls = None

    def __init__(self, input_size, hidden_size, bias=True, seed=None, **extra):
        self._layer = self._layer_cls(input_size, hidden_size, bias=bias, seed=seed, **extra)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)

    def state_dict(self):
        """Parameters under torch's cell names (`weight_ih`, `bias_hh`, ...)."""
        return {k[:-3]: v for k, v in self._layer.state_dict().items()}

    def load_state_dict(self, state_dict):
        self._layer.load_state_dict({k + "_l0": v for k, v in state_dict.items()})

    def as_layer(self):
        """The equivalent one-layer sequence layer (``fastseq.LSTM``, ``GRU``, ``RNN``) with a
        copy of this cell's weights: what ``fastseq.save`` writes and ``export-c`` exports
        for a cell (loading such a file gives back the layer).

        Returns
        -------
        fastseq.LSTM | fastseq.GRU | fastseq.RNN
        """
        layer = self._layer_cls(self.input_size, self.hidden_size, bias=self.bias, **self._extra())
        layer.load_state_dict(self._layer.state_dict())
        return layer

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
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False") + ")"


class RNNCell(_Cell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh)."""

    _layer_cls = layers.RNN

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", seed=None):
        super().__init__(input_size, hidden_size, bias=bias, seed=seed, nonlinearity=nonlinearity)

    @property
    def nonlinearity(self):
        """``"tanh"`` or ``"relu"``."""
        return self._layer.nonlinearity

    def _extra(self):
        return {"nonlinearity": self.nonlinearity}

    def __call__(self, x, hx=None):
        unbatched, x2, (h0,) = self._run(x, [("hx", hx)])
        _, h = self._layer(x2, h0)
        return h[0, 0] if unbatched else h[0]


class GRUCell(RNNCell):
    _layer_cls = layers.GRU

    def __init__(self, input_size, hidden_size, bias=True, seed=None):
        _Cell.__init__(self, input_size, hidden_size, bias=bias, seed=seed)

    nonlinearity = None

    def _extra(self):
        return {}


class LSTMCell(_Cell):
    """Returns (h', c') like nn.LSTMCell."""

    _layer_cls = layers.LSTM

    def __call__(self, x, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"hx: expected a pair (h, c), got {type(hx).__name__}")
        h, c = hx if hx is not None else (None, None)
        unbatched, x2, (h0, c0) = self._run(x, [("h", h), ("c", c)])
        if (h0 is None) != (c0 is None):
            raise ValueError("hx: give both h and c, or neither")
        _, (h_n, c_n) = self._layer(x2, None if h0 is None else (h0, c0))
        return (h_n[0, 0], c_n[0, 0]) if unbatched else (h_n[0], c_n[0])
