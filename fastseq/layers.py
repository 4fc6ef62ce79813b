"""The recurrent layers: torch's constructor arguments, shapes and return values,
run by the C library."""
import numpy as np

from . import _core
from ._arrays import as_float32, as_lengths

_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class _Recurrent:
    """Shared machinery of LSTM, GRU and RNN. Subclasses set `_cell` and `mode`."""

    _cell = None
    mode = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, seed=None):
        if dropout != 0:
            raise ValueError(f"dropout: fastseq runs inference only, expected 0, got {dropout}")
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self._model = _core.Model(self._cell, self.input_size, self.hidden_size, self.num_layers,
                                  self.bidirectional, self.bias)
        self._init_weights(seed)

    def config(self):
        """Constructor arguments that rebuild this layer: `type(layer)(**layer.config())`."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bias": self.bias, "batch_first": self.batch_first,
                "bidirectional": self.bidirectional, **self._extra_config()}

    def _extra_config(self):
        return {}

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _init_weights(self, seed):
        """torch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        for key, shape in self._param_shapes().items():
            self._set(key, rng.uniform(-bound, bound, size=shape).astype(np.float32))

    # ---- parameters, by torch's names -------------------------------------------
    def _param_index(self):
        """torch key -> (layer, direction, which), in torch's order."""
        index = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                for which, name in enumerate(_PARAMS):
                    if which >= 2 and not self.bias:
                        continue
                    index[name + suffix] = (layer, d, which)
        return index

    def _param_shapes(self):
        return {k: self._model.param_shape(*v) for k, v in self._param_index().items()}

    def _set(self, key, array):
        self._model.set_param(*self._param_index()[key], array.reshape(-1))

    def state_dict(self):
        """Parameters as float32 arrays under torch's key names."""
        return {k: self._model.get_param(*v) for k, v in self._param_index().items()}

    def load_state_dict(self, state_dict):
        """Load parameters by torch's key names (numpy arrays or torch tensors); strict."""
        shapes = self._param_shapes()
        unknown = sorted(set(state_dict) - set(shapes))
        missing = sorted(set(shapes) - set(state_dict))
        if unknown or missing:
            raise ValueError(f"load_state_dict: unknown keys {unknown}, missing keys {missing}; "
                             f"expected exactly {list(shapes)}")
        arrays = {}
        for key, shape in shapes.items():
            arr = as_float32(state_dict[key], key)
            if arr.shape != tuple(shape):
                raise ValueError(f"{key}: expected shape {tuple(shape)}, got {arr.shape}")
            arrays[key] = arr
        for key, arr in arrays.items():
            self._set(key, arr)

    # ---- forward ----------------------------------------------------------------
    def _state(self, value, name, batch, unbatched):
        if value is None:
            return None
        arr = as_float32(value, name)
        rows = self.num_layers * self.num_directions
        expected = (rows, self.hidden_size) if unbatched else (rows, batch, self.hidden_size)
        if arr.shape != expected:
            raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
        return arr.reshape(-1)

    def _split_hx(self, hx):
        """(h0, c0) from the caller's hx; LSTM overrides."""
        return hx, None

    def __call__(self, x, hx=None, lengths=None):
        x = as_float32(x, "x")
        I = self.input_size
        if x.ndim not in (2, 3) or x.shape[-1] != I:
            layout = "[B, T, {0}]" if self.batch_first else "[T, B, {0}]"
            raise ValueError(f"x: expected a 3-D input {layout.format(I)} or a 2-D unbatched "
                             f"input [T, {I}], got shape {x.shape}")
        unbatched = x.ndim == 2
        batch_first = self.batch_first and not unbatched
        if unbatched:
            x = x[:, None, :]
        T, B = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
        if T == 0 or B == 0:
            raise ValueError(f"x: expected at least one step and one sequence, got shape {x.shape}")
        h0, c0 = self._split_hx(hx)
        h0 = self._state(h0, "h0", B, unbatched)
        c0 = self._state(c0, "c0", B, unbatched)
        lens = None if lengths is None else as_lengths(lengths, B)

        DH = self.num_directions * self.hidden_size
        y = np.empty((B, T, DH) if batch_first else (T, B, DH), dtype=np.float32)
        state_shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        h_n = np.empty(state_shape, dtype=np.float32)
        c_n = np.empty(state_shape, dtype=np.float32) if self._cell == _core.CELL_LSTM else None
        self._model.forward(x.reshape(-1), T, B, batch_first, lens, h0, c0, y.reshape(-1),
                            h_n.reshape(-1), None if c_n is None else c_n.reshape(-1))
        if unbatched:
            y, h_n = y[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return self._result(y, h_n, c_n)

    def _result(self, y, h_n, c_n):
        return y, h_n

    def stream(self, batch=1):
        """A stateful stepper for real-time use: `step(x_t)` returns the last layer's
        new h; states stay in C between calls (`reset()`, `state`)."""
        return _core.Stream(self._model, batch)

    def __repr__(self):
        args = [str(self.input_size), str(self.hidden_size)]
        args += self._extra_repr()
        if self.num_layers != 1:
            args.append(f"num_layers={self.num_layers}")
        if not self.bias:
            args.append("bias=False")
        if self.batch_first:
            args.append("batch_first=True")
        if self.bidirectional:
            args.append("bidirectional=True")
        return f"{type(self).__name__}({', '.join(args)})"

    def _extra_repr(self):
        return []


class LSTM(_Recurrent):
    """nn.LSTM's interface: returns output, (h_n, c_n)."""

    _cell = _core.CELL_LSTM
    mode = "LSTM"

    def _split_hx(self, hx):
        if hx is None:
            return None, None
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"hx: expected a pair (h0, c0) for an LSTM, got {type(hx).__name__}")
        return hx[0], hx[1]

    def _result(self, y, h_n, c_n):
        return y, (h_n, c_n)


class GRU(_Recurrent):
    """nn.GRU's interface (reset gate applied after the recurrent product)."""

    _cell = _core.CELL_GRU
    mode = "GRU"


class RNN(_Recurrent):
    """nn.RNN's interface: Elman network with tanh or relu."""

    mode = "RNN_TANH"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, seed=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._cell = _core.CELL_RNN_TANH if nonlinearity == "tanh" else _core.CELL_RNN_RELU
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, seed)

    def _extra_repr(self):
        return [] if self.nonlinearity == "tanh" else ["nonlinearity='relu'"]

    def _extra_config(self):
        return {"nonlinearity": self.nonlinearity}
