"""The recurrent layers: torch's constructor arguments, shapes and return values,
run by the C library."""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _activations, _core
from ._arrays import SequenceInput, as_float32, as_lengths

# Parameter names follow torch (`weight_ih_l0`, `bias_hh_l1_reverse`, ...) and fastseq.torch
# for the cells torch lacks: the C library's fs_param_name, plus a layer suffix.
_SCALARS = {"alpha", "beta", "zeta", "nu"}


_INT32_MAX = 2**31 - 1  # the C library's sizes are int32


def _positive(name, v, allow_zero=False):
    if (not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_))
            or not (0 if allow_zero else 1) <= v <= _INT32_MAX):
        raise ValueError(f"{name}: expected an integer from {0 if allow_zero else 1} to "
                         f"{_INT32_MAX}, got {v!r}")
    return int(v)


def _activation(name, value):
    if value not in _core.ACTIVATIONS:
        raise ValueError(f"{name}: expected one of {sorted(_core.ACTIVATIONS)}, got {value!r}")
    return _core.ACTIVATIONS[value]


def _layer_doc(summary, options, example, after_seed=""):
    """A layer class's numpydoc docstring: its summary, torch's shared parameters, the
    class's own keyword-only `options` (and `after_seed`, in signature order), and an
    example line."""
    return f"""{summary}

    Parameters
    ----------
    input_size, hidden_size : int
        Features of x and of h.
    num_layers : int
        Stacked layers.
    bias : bool
        Learnable biases.
    batch_first : bool
        Data as ``[B, T, I]`` instead of time-major ``[T, B, I]`` (for every call,
        training included).
    bidirectional : bool
        A reverse direction too; outputs concatenate both.
{options}    residual : bool
        Residual connections (GNMT style): every layer after the first adds its input
        to its output (needs ``num_layers >= 2``; states are unchanged).
    seed : int, optional
        Seed of the initial weights (torch's uniform initialisation).
{after_seed}
    Raises
    ------
    ValueError
        A size, option or activation out of range, or ``dropout != 0``.

    Examples
    --------
    >>> import numpy as np, fastseq
    >>> {example}
    """


_GATE_ACTS_OPTIONS = """    activations : sequence of str, optional
        Gate activations, one name per ONNX role -- LSTM (f, g, h): the gates i, f, o,
        the cell input, the cell output; GRU (f, g): the gates r, z, the candidate; RNN
        (f,). Choices: "sigmoid", "tanh", "relu", "hard_sigmoid" (max(0, min(1, alpha x +
        beta))), "softsign", "hard_tanh" (max(-1, min(1, x)), EdgeML's quantTanh). None:
        the cell's usual ones.
    activation_alpha, activation_beta : sequence of float or None, optional
        Per role, hard_sigmoid's alpha and beta (None: ONNX's 0.2 and 0.5; Keras 3's
        hard_sigmoid is alpha 1/6, beta 0.5); None for functions without them.
    clip : float, optional
        Clips the pre-activations of the gates and of the cell input / candidate (roles f,
        g) to [-clip, clip], as ONNX Runtime applies ONNX's ``clip``; None: no clipping.
"""


def _gate_defaults(usual):
    """The gate-activation entries of config() for a layer whose usual ones are `usual`."""
    return {"activations": tuple(usual), "activation_alpha": (None,) * len(usual),
            "activation_beta": (None,) * len(usual), "clip": None}


class _Recurrent:
    """Shared machinery of every layer. Subclasses set `_cell` and `mode` and pass
    their variant options (fs_rnn_config fields) to __init__."""

    _cell = None
    mode = None
    _renames = {}  # fs_param name -> this cell's name for it

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, seed=None, residual=False, **variant):
        if dropout != 0:
            raise ValueError(f"dropout: expected 0 (fastseq trains without dropout between "
                             f"layers), got {dropout}")
        self.input_size = _positive("input_size", input_size)
        self.hidden_size = _positive("hidden_size", hidden_size)
        self.num_layers = _positive("num_layers", num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.residual = bool(residual)
        self._model = _core.Model(self._cell, self.input_size, self.hidden_size, self.num_layers,
                                  self.bidirectional, self.bias, residual=self.residual, **variant)
        self._index = self._param_index()
        self._init_weights(seed)

    @classmethod
    def _from_c_model(cls, model, batch_first):
        """A layer around `model` (a loaded _core.Model), its options read from the C
        configuration; the weights stay where the C library put them."""
        cfg = model.config()
        self = cls.__new__(cls)
        self.input_size, self.hidden_size = cfg["input_size"], cfg["hidden_size"]
        self.num_layers, self.bias = cfg["num_layers"], bool(cfg["bias"])
        self.batch_first, self.bidirectional = bool(batch_first), bool(cfg["bidirectional"])
        self.residual = bool(cfg["residual"])
        self._adopt(cfg)
        self._model = model
        self._index = self._param_index()
        return self

    def _adopt(self, cfg):
        """Set this class's options from an fs_rnn_config dict."""

    _USUAL_ACTS = ()  # the gate layers' usual activation per role

    def _gate_acts(self, activations, activation_alpha, activation_beta, clip):
        """Validate the gate-activation arguments; the fs_rnn_config fields they give."""
        fields = _activations.to_config(self._USUAL_ACTS, activations, activation_alpha,
                                        activation_beta, clip)
        self._adopt_acts(fields)
        return fields

    def _adopt_acts(self, cfg):
        (self.activations, self.activation_alpha, self.activation_beta,
         self.clip) = _activations.from_config(cfg, self._USUAL_ACTS)

    def _acts_config(self):
        """The gate-activation arguments that differ from the cell's usual ones."""
        usual = _gate_defaults(self._USUAL_ACTS)
        given = {"activations": self.activations, "activation_alpha": self.activation_alpha,
                 "activation_beta": self.activation_beta, "clip": self.clip}
        return {k: v for k, v in given.items() if v != usual[k]}


    @property
    def c_model(self):
        """The C model this layer runs (fastseq._core.Model): for fastseq.train, the file
        writer and the exporters."""
        return self._model

    def param_index(self) -> Dict[str, Tuple[int, int, int]]:
        """Where each parameter lives in the C model.

        Returns
        -------
        dict
            ``{state_dict key: (layer, direction, fs_param value)}``, in state_dict order.

        Examples
        --------
        >>> list(fastseq.RNN(2, 3).param_index())[0]
        'weight_ih_l0'
        """
        return dict(self._index)

    def config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer.

        Returns
        -------
        dict
            Keyword arguments: ``type(layer)(**layer.config())`` is an equal layer.

        Examples
        --------
        >>> fastseq.GRU(2, 3).config()["hidden_size"]
        3
        """
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bias": self.bias, "batch_first": self.batch_first,
                "bidirectional": self.bidirectional, "residual": self.residual,
                **self._extra_config()}

    def _extra_config(self):
        return {}

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def output_features(self):
        """Features of h (proj_size for a projected LSTM, else hidden_size)."""
        return self._model.features

    def _scalar_init(self, name):
        raise NotImplementedError

    def _init_weights(self, seed):
        """torch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H));
        FastRNN / FastGRNN scalars from their *_init arguments."""
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        for key, (layer, d, which) in self._index.items():
            shape = self._model.param_shape(layer, d, which)
            name = _core.PARAM_NAMES[which]
            if name in _SCALARS:
                value = np.full(shape, self._scalar_init(name), dtype=np.float32)
            else:
                value = rng.uniform(-bound, bound, size=shape).astype(np.float32)
            self._model.set_param(layer, d, which, value.reshape(-1))

    # ---- parameters, by torch's names -------------------------------------------
    def _param_index(self):
        """key -> (layer, direction, fs_param), in torch's order."""
        index = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                for which, name in enumerate(_core.PARAM_NAMES):
                    if self._model.has_param(layer, d, which):
                        index[self._renames.get(name, name) + suffix] = (layer, d, which)
        return index

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Parameters under torch's key names.

        Returns
        -------
        dict of str to numpy.ndarray
            float32 copies (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...).

        Examples
        --------
        >>> sorted(fastseq.RNN(2, 3).state_dict())
        ['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']
        """
        return {k: self._model.get_param(*v) for k, v in self._index.items()}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load parameters by torch's key names; strict, and atomic for concurrent calls.

        Parameters
        ----------
        state_dict : dict
            Exactly the keys of :meth:`state_dict`; numpy arrays or torch tensors.

        Raises
        ------
        ValueError
            Unknown or missing keys, or a wrong shape (named).

        Examples
        --------
        >>> a, b = fastseq.GRU(2, 3), fastseq.GRU(2, 3)
        >>> b.load_state_dict(a.state_dict())
        """
        shapes = {k: self._model.param_shape(*v) for k, v in self._index.items()}
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
        with self._model.gate.write():  # other threads' calls see the old or the new weights
            for key, arr in arrays.items():
                self._model.set_param(*self._index[key], arr.reshape(-1))

    # ---- forward ----------------------------------------------------------------
    def _state(self, value, name, batch, unbatched, features):
        if value is None:
            return None
        arr = as_float32(value, name)
        rows = self.num_layers * self.num_directions
        expected = (rows, features) if unbatched else (rows, batch, features)
        if arr.shape != expected:
            raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
        return arr

    def _split_hx(self, hx):
        """(h0, c0) from the caller's hx; LSTM overrides."""
        return hx, None

    def _sequence(self, x):
        """x as float32 with a batch axis, plus (unbatched, batch_first, T, B)."""
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
        return x, unbatched, batch_first, T, B

    def __call__(self, x, hx=None, lengths=None):
        """Run the layer over whole sequences, like the torch module's forward.

        Parameters
        ----------
        x : array_like, torch.Tensor, PackedSequence or list of arrays
            ``[T, B, input_size]`` (``[B, T, input_size]`` if ``batch_first``) or unbatched
            ``[T, input_size]``; any real dtype (float16 / bfloat16 tensors too) becomes
            float32. A PackedSequence or a list of ``[T_i, input_size]`` sequences is
            zero-padded and its lengths used.
        hx : array_like or (array_like, array_like), optional
            Initial state ``[num_layers * num_directions, B, H]`` (LSTM: ``(h0, c0)``).
        lengths : array_like of int, optional
            ``[B]`` valid steps per sequence (packed-sequence semantics).

        Returns
        -------
        output, state
            ``output`` ``[T, B, D * H]`` (``[B, T, D * H]`` if ``batch_first``); ``state``
            ``h_n`` or, for an LSTM, ``(h_n, c_n)``. numpy float32, or torch tensors when
            `x` is a torch tensor (a PackedSequence output for a PackedSequence input).

        Raises
        ------
        ValueError
            A shape, state or lengths that does not fit, named with expected and given.
        TypeError
            A non-numeric input.

        Examples
        --------
        >>> import numpy as np
        >>> output, (h_n, c_n) = fastseq.LSTM(3, 4)(np.zeros((5, 2, 3), np.float32))
        """
        if hx is None and lengths is None:
            out = self._model.forward_plain(x, self.batch_first)
            if out is not None:
                return self._result(*out)
        seq = SequenceInput(x, lengths, self.batch_first)
        x, unbatched, batch_first, T, B = self._sequence(seq.x)
        h0 = c0 = None
        if hx is not None:
            h0, c0 = self._split_hx(hx)
            h0 = self._state(h0, "h0", B, unbatched, self.output_features)
            c0 = self._state(c0, "c0", B, unbatched, self.hidden_size)
        lens = None if seq.lengths is None else as_lengths(seq.lengths, B)
        out = self._model.forward(x, T, B, batch_first, lens, h0, c0, unbatched)
        return seq.restore(self._result(*out))

    def _result(self, y, h_n, c_n):
        return y, h_n

    def stream(self, batch: int = 1) -> Any:
        """A stateful stepper for real-time use; states stay in C between calls.

        Parameters
        ----------
        batch : int
            Sequences stepped together.

        Returns
        -------
        fastseq._core.Stream
            ``step(x_t)`` returns the last layer's new h; ``reset()``, ``state``.

        Raises
        ------
        ValueError
            A batch below 1.
        RuntimeError
            A bidirectional layer (its reverse direction needs the whole sequence).

        Examples
        --------
        >>> import numpy as np
        >>> fastseq.GRU(2, 3).stream().step(np.zeros(2, np.float32)).shape
        (3,)
        """
        return _core.Stream(self._model, _positive("batch", batch))

    def __repr__(self):
        args = [str(self.input_size), str(self.hidden_size)]
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "bidirectional": False,
                    "residual": False}
        config = self.config()
        for key, value in config.items():
            if key in ("input_size", "hidden_size") or defaults.get(key, object()) == value:
                continue
            if key not in defaults and value == type(self)._DEFAULTS.get(key):
                continue
            args.append(f"{key}={value!r}")
        text = f"{type(self).__name__}({', '.join(args)})"
        if self.dtype == "f32":
            return text
        group = self._model.config()["group_size"]
        return f"fastseq.quantize({text}, {self.dtype!r}" + (f", group_size={group})" if group else ")")

    @property
    def dtype(self) -> str:
        """The weights' element type: ``"f32"``, or ``"int8"``, ``"int4"``, ``"bf16"`` for a
        layer made by :func:`fastseq.quantize`."""
        return self._model.dtype

    _DEFAULTS = {}

    # ---- training (fastseq.train) -------------------------------------------------
    def backward(self, x: Any, grad_output: Any, hx: Any = None, grad_hn: Any = None,
                 lengths: Any = None) -> Dict[str, Any]:
        """Gradients of a loss through this layer (a training forward, then BPTT in C).

        Parameters
        ----------
        x, hx, lengths
            As for a call.
        grad_output : array_like or None
            d loss / d output, shaped like the output (None: zero).
        grad_hn : array_like or (array_like, array_like), optional
            d loss / d h_n (LSTM: a pair ``(d h_n, d c_n)``); None: zero.

        Returns
        -------
        dict
            Keyed like :meth:`state_dict`, plus ``"input"`` (like x) and ``"hx"`` (like hx;
            LSTM: a pair). numpy float32.

        Raises
        ------
        ValueError
            Shapes that do not fit (named with expected and given).

        Examples
        --------
        >>> import numpy as np
        >>> g = fastseq.RNN(2, 3).backward(np.ones((4, 1, 2)), np.ones((4, 1, 3)))
        >>> g["weight_hh_l0"].shape, g["input"].shape
        ((3, 3), (4, 1, 2))
        """
        from .train._tape import layer_backward
        return layer_backward(self, x, grad_output, hx, grad_hn, lengths)

    def __reduce__(self):
        """Pickle by value as the .fsq bytes, unpickled by the C reader (fastseq._pickle)."""
        from ._pickle import reduce_model
        return reduce_model(self)

    def to_torch(self) -> Any:
        """The equivalent torch module with this layer's weights; imports torch.

        Returns
        -------
        torch.nn.Module
            ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``, or the ``fastseq.torch`` module for the
            variants torch lacks.

        Raises
        ------
        NotImplementedError
            A variant with no torch module (a peephole + coupled LSTM).

        Examples
        --------
        >>> fastseq.GRU(2, 3).to_torch()  # doctest: +SKIP
        GRU(2, 3)
        """
        from .train.export import to_torch
        return to_torch(self)


class LSTM(_Recurrent):
    __doc__ = _layer_doc(
        "``nn.LSTM``'s interface: ``layer(x)`` returns ``output, (h_n, c_n)``.",
        """    dropout : float
        Must be 0.
    proj_size : int
        Features of h after a projection (0: none).
    peephole : bool
        Peephole connections (p_i, p_f on c; p_o on the new c).
    coupled : bool
        Coupled input-forget gate, f = 1 - i.
    w_rank, u_rank : int, optional
        Keep W = W_b W_a and U = U_b U_a factored at these ranks, W_a and U_a shared by
        the gates (EdgeML's LSTMLR); u_rank not with proj_size.
""", "fastseq.LSTM(3, 8, num_layers=2)(np.zeros((5, 2, 3), np.float32))[0].shape\n    (5, 2, 8)", _GATE_ACTS_OPTIONS)

    _cell = _core.CELL_LSTM
    mode = "LSTM"
    _USUAL_ACTS = ("sigmoid", "tanh", "tanh")
    _DEFAULTS = {"proj_size": 0, "peephole": False, "coupled": False, "w_rank": None, "u_rank": None}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, peephole: bool = False, coupled: bool = False,
                 w_rank: Optional[int] = None, u_rank: Optional[int] = None,
                 seed: Optional[int] = None, residual: bool = False,
                 activations: Optional[Sequence[str]] = None,
                 activation_alpha: Optional[Sequence[Optional[float]]] = None,
                 activation_beta: Optional[Sequence[Optional[float]]] = None,
                 clip: Optional[float] = None) -> None:
        self.proj_size = _positive("proj_size", proj_size, allow_zero=True)
        self.peephole, self.coupled = bool(peephole), bool(coupled)
        self.w_rank, self.u_rank = w_rank, u_rank
        acts = self._gate_acts(activations, activation_alpha, activation_beta, clip)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, seed, residual, proj_size=self.proj_size, peephole=self.peephole,
                         coupled=self.coupled, **_ranks(w_rank, u_rank), **acts)

    def _extra_config(self):
        return {"proj_size": self.proj_size, "peephole": self.peephole, "coupled": self.coupled,
                **_rank_config(self), **self._acts_config()}

    def _adopt(self, cfg):
        self.proj_size, self.peephole, self.coupled = cfg["proj_size"], bool(cfg["peephole"]), bool(cfg["coupled"])
        self.w_rank, self.u_rank = cfg["w_rank"] or None, cfg["u_rank"] or None
        self._adopt_acts(cfg)

    def _split_hx(self, hx):
        if hx is None:
            return None, None
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"hx: expected a pair (h0, c0) for an LSTM, got {type(hx).__name__}")
        return hx[0], hx[1]

    def _result(self, y, h_n, c_n):
        return y, (h_n, c_n)


class GRU(_Recurrent):
    __doc__ = _layer_doc(
        "``nn.GRU``'s interface: ``layer(x)`` returns ``output, h_n``.",
        """    dropout : float
        Must be 0.
    reset_after : bool
        False: the reset-before form of Cho et al. (Keras ``reset_after=False``, ONNX
        ``linear_before_reset=0``).
    w_rank, u_rank : int, optional
        Keep W = W_b W_a and U = U_b U_a factored at these ranks, W_a and U_a shared by
        the gates (EdgeML's GRULR; with ``reset_after=False`` U_a also runs on r h, under
        U_b's n rows).
""", "fastseq.GRU(3, 8, batch_first=True)(np.zeros((2, 5, 3), np.float32))[1].shape\n    (1, 2, 8)", _GATE_ACTS_OPTIONS)

    _cell = _core.CELL_GRU
    mode = "GRU"
    _USUAL_ACTS = ("sigmoid", "tanh")
    _DEFAULTS = {"reset_after": True, "w_rank": None, "u_rank": None}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 reset_after: bool = True, w_rank: Optional[int] = None, u_rank: Optional[int] = None,
                 seed: Optional[int] = None, residual: bool = False,
                 activations: Optional[Sequence[str]] = None,
                 activation_alpha: Optional[Sequence[Optional[float]]] = None,
                 activation_beta: Optional[Sequence[Optional[float]]] = None,
                 clip: Optional[float] = None) -> None:
        self.reset_after = bool(reset_after)
        self.w_rank, self.u_rank = w_rank, u_rank
        acts = self._gate_acts(activations, activation_alpha, activation_beta, clip)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, seed, residual, reset_before=not self.reset_after, **_ranks(w_rank, u_rank),
                         **acts)

    def _extra_config(self):
        return {"reset_after": self.reset_after, **_rank_config(self), **self._acts_config()}

    def _adopt(self, cfg):
        self.reset_after = not cfg["reset_before"]
        self.w_rank, self.u_rank = cfg["w_rank"] or None, cfg["u_rank"] or None
        self._adopt_acts(cfg)


class RNN(_Recurrent):
    __doc__ = _layer_doc(
        "``nn.RNN``'s interface, an Elman network: ``layer(x)`` returns ``output, h_n``.",
        """    nonlinearity : {"tanh", "relu"}
        The activation.
    dropout : float
        Must be 0.
""", "fastseq.RNN(3, 8, nonlinearity='relu')(np.zeros((5, 3), np.float32))[0].shape\n    (5, 8)", _GATE_ACTS_OPTIONS)

    _DEFAULTS = {"nonlinearity": "tanh"}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *, seed: Optional[int] = None,
                 residual: bool = False,
                 activations: Optional[Sequence[str]] = None,
                 activation_alpha: Optional[Sequence[Optional[float]]] = None,
                 activation_beta: Optional[Sequence[Optional[float]]] = None,
                 clip: Optional[float] = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._cell = _core.CELL_RNN_TANH if nonlinearity == "tanh" else _core.CELL_RNN_RELU
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self._USUAL_ACTS = (nonlinearity,)
        acts = self._gate_acts(activations, activation_alpha, activation_beta, clip)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, seed, residual, **acts)

    def _extra_config(self):
        return {"nonlinearity": self.nonlinearity, **self._acts_config()}

    def _adopt(self, cfg):
        relu = cfg["cell"] == _core.CELL_RNN_RELU
        self.nonlinearity = "relu" if relu else "tanh"
        self._cell = _core.CELL_RNN_RELU if relu else _core.CELL_RNN_TANH
        self.mode = "RNN_RELU" if relu else "RNN_TANH"
        self._USUAL_ACTS = (self.nonlinearity,)
        self._adopt_acts(cfg)


_FAST_ACTS_DOC = ("tanh, sigmoid, relu, hard_sigmoid (max(0, min(1, alpha x + beta)); EdgeML's "
                  "quantSigm is alpha = beta = 0.5), softsign or hard_tanh (EdgeML's quantTanh)")


class FastRNN(_Recurrent):
    __doc__ = _layer_doc(
        "EdgeML's FastRNN: h' = sigmoid(alpha) act(W x + U h + b) + sigmoid(beta) h.",
        f"""    nonlinearity : str
        act: {_FAST_ACTS_DOC}.
    nonlinearity_alpha, nonlinearity_beta : float, optional
        hard_sigmoid's alpha and beta (default 0.2, 0.5); None for the other functions.
    w_rank, u_rank : int, optional
        Keep W = W_b W_a and U = U_b U_a factored at these ranks (fewer FLOPs).
    alpha_init, beta_init : float
        Initial raw alpha and beta.
""", "fastseq.FastRNN(3, 8, w_rank=2)(np.zeros((5, 1, 3), np.float32))[0].shape\n    (5, 1, 8)")

    _cell = _core.CELL_FASTRNN
    mode = "FastRNN"
    _renames = {"bias_update": "bias"}
    _DEFAULTS = {"nonlinearity": "tanh", "nonlinearity_alpha": None, "nonlinearity_beta": None,
                 "w_rank": None, "u_rank": None, "alpha_init": -3.0, "beta_init": 3.0}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, *,
                 nonlinearity: str = "tanh", nonlinearity_alpha: Optional[float] = None,
                 nonlinearity_beta: Optional[float] = None, w_rank: Optional[int] = None,
                 u_rank: Optional[int] = None, alpha_init: float = -3.0, beta_init: float = 3.0,
                 seed: Optional[int] = None, residual: bool = False) -> None:
        self.nonlinearity = nonlinearity
        self.w_rank, self.u_rank = w_rank, u_rank
        self.alpha_init, self.beta_init = float(alpha_init), float(beta_init)
        act = _activation("nonlinearity", nonlinearity)
        params = _activations.fast_to_config(
            {1: ("nonlinearity", nonlinearity, nonlinearity_alpha, nonlinearity_beta)})
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, 0.0,
                         bidirectional, seed, residual, update_act=act,
                         **_ranks(w_rank, u_rank), **params)
        self.nonlinearity_alpha, self.nonlinearity_beta = _activations.fast_from_config(params, 1, nonlinearity)

    def _scalar_init(self, name):
        return {"alpha": self.alpha_init, "beta": self.beta_init}[name]

    def _extra_config(self):
        return {"nonlinearity": self.nonlinearity, "nonlinearity_alpha": self.nonlinearity_alpha,
                "nonlinearity_beta": self.nonlinearity_beta, "w_rank": self.w_rank,
                "u_rank": self.u_rank, "alpha_init": self.alpha_init, "beta_init": self.beta_init}

    def _adopt(self, cfg):
        """Initialisers are not part of a model: a loaded layer reports the defaults."""
        self.nonlinearity = _act_name(cfg["update_act"])
        self.nonlinearity_alpha, self.nonlinearity_beta = _activations.fast_from_config(cfg, 1, self.nonlinearity)
        self.w_rank, self.u_rank = cfg["w_rank"] or None, cfg["u_rank"] or None
        self.alpha_init, self.beta_init = self._DEFAULTS["alpha_init"], self._DEFAULTS["beta_init"]


class FastGRNN(_Recurrent):
    __doc__ = _layer_doc(
        "EdgeML's FastGRNN: z = gate(W x + U h + b_g); h~ = update(W x + U h + b_u); "
        "h' = z h + (sigmoid(zeta) (1 - z) + sigmoid(nu)) h~.",
        f"""    gate_nonlinearity, update_nonlinearity : str
        Activations of z and of h~: {_FAST_ACTS_DOC}.
    gate_alpha, gate_beta, update_alpha, update_beta : float, optional
        hard_sigmoid's alpha and beta for z and for h~ (default 0.2, 0.5); None for the
        other functions.
    w_rank, u_rank : int, optional
        Keep W and U factored at these ranks.
    zeta_init, nu_init : float
        Initial raw zeta and nu.
""", "fastseq.FastGRNN(3, 8)(np.zeros((5, 1, 3), np.float32))[0].shape\n    (5, 1, 8)")

    _cell = _core.CELL_FASTGRNN
    mode = "FastGRNN"
    _DEFAULTS = {"gate_nonlinearity": "sigmoid", "update_nonlinearity": "tanh", "gate_alpha": None,
                 "gate_beta": None, "update_alpha": None, "update_beta": None, "w_rank": None,
                 "u_rank": None, "zeta_init": 1.0, "nu_init": -4.0}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, *,
                 gate_nonlinearity: str = "sigmoid", update_nonlinearity: str = "tanh",
                 gate_alpha: Optional[float] = None, gate_beta: Optional[float] = None,
                 update_alpha: Optional[float] = None, update_beta: Optional[float] = None,
                 w_rank: Optional[int] = None, u_rank: Optional[int] = None,
                 zeta_init: float = 1.0, nu_init: float = -4.0, seed: Optional[int] = None,
                 residual: bool = False) -> None:
        self.gate_nonlinearity, self.update_nonlinearity = gate_nonlinearity, update_nonlinearity
        self.w_rank, self.u_rank = w_rank, u_rank
        self.zeta_init, self.nu_init = float(zeta_init), float(nu_init)
        gate = _activation("gate_nonlinearity", gate_nonlinearity)
        update = _activation("update_nonlinearity", update_nonlinearity)
        params = _activations.fast_to_config({0: ("gate", gate_nonlinearity, gate_alpha, gate_beta),
                                              1: ("update", update_nonlinearity, update_alpha, update_beta)})
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, 0.0,
                         bidirectional, seed, residual, gate_act=gate, update_act=update,
                         **_ranks(w_rank, u_rank), **params)
        self.gate_alpha, self.gate_beta = _activations.fast_from_config(params, 0, gate_nonlinearity)
        self.update_alpha, self.update_beta = _activations.fast_from_config(params, 1, update_nonlinearity)

    def _scalar_init(self, name):
        return {"zeta": self.zeta_init, "nu": self.nu_init}[name]

    def _extra_config(self):
        return {"gate_nonlinearity": self.gate_nonlinearity,
                "update_nonlinearity": self.update_nonlinearity, "gate_alpha": self.gate_alpha,
                "gate_beta": self.gate_beta, "update_alpha": self.update_alpha,
                "update_beta": self.update_beta, "w_rank": self.w_rank,
                "u_rank": self.u_rank, "zeta_init": self.zeta_init, "nu_init": self.nu_init}

    def _adopt(self, cfg):
        """Initialisers are not part of a model: a loaded layer reports the defaults."""
        self.gate_nonlinearity = _act_name(cfg["gate_act"])
        self.update_nonlinearity = _act_name(cfg["update_act"])
        self.gate_alpha, self.gate_beta = _activations.fast_from_config(cfg, 0, self.gate_nonlinearity)
        self.update_alpha, self.update_beta = _activations.fast_from_config(cfg, 1, self.update_nonlinearity)
        self.w_rank, self.u_rank = cfg["w_rank"] or None, cfg["u_rank"] or None
        self.zeta_init, self.nu_init = self._DEFAULTS["zeta_init"], self._DEFAULTS["nu_init"]


class UGRNN(_Recurrent):
    __doc__ = _layer_doc(
        "UGRNN (EdgeML's UGRNNLRCell), gate order z, c: z = f(W_z x + b_iz + U_z h + b_hz); "
        "c = g(W_c x + b_ic + U_c h + b_hc); h' = z h + (1 - z) c. ``layer(x)`` returns "
        "``output, h_n``; weights in torch's layout (``weight_ih`` [2H, I], ``bias_ih`` [2H], ...).",
        """    w_rank, u_rank : int, optional
        Keep W = W_b W_a and U = U_b U_a factored at these ranks, W_a and U_a shared by
        the two gates (EdgeML's wRank, uRank).
""", "fastseq.UGRNN(3, 8)(np.zeros((5, 1, 3), np.float32))[0].shape\n    (5, 1, 8)",
        """    activations : sequence of str, optional
        (f, g): the gate z and the candidate c (usual: "sigmoid", "tanh"); choices as
        LSTM's, EdgeML's quantSigm is "hard_sigmoid" with alpha = beta = 0.5.
    activation_alpha, activation_beta : sequence of float or None, optional
        Per role, hard_sigmoid's alpha and beta (None: 0.2 and 0.5).
    clip : None
        UGRNN has no clip; anything but None is an error.
""")

    _cell = _core.CELL_UGRNN
    mode = "UGRNN"
    _USUAL_ACTS = ("sigmoid", "tanh")
    _DEFAULTS = {"w_rank": None, "u_rank": None}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, *,
                 w_rank: Optional[int] = None, u_rank: Optional[int] = None, seed: Optional[int] = None,
                 activations: Optional[Sequence[str]] = None,
                 activation_alpha: Optional[Sequence[Optional[float]]] = None,
                 activation_beta: Optional[Sequence[Optional[float]]] = None,
                 clip: Optional[float] = None) -> None:
        self.w_rank, self.u_rank = w_rank, u_rank
        acts = self._gate_acts(activations, activation_alpha, activation_beta, clip)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, 0.0,
                         bidirectional, seed, **_ranks(w_rank, u_rank), **acts)

    def _extra_config(self):
        return {**_rank_config(self), **self._acts_config()}

    def _adopt(self, cfg):
        self.w_rank, self.u_rank = cfg["w_rank"] or None, cfg["u_rank"] or None
        self._adopt_acts(cfg)


def _ranks(w_rank, u_rank):
    """The fs_rnn_config fields of the low-rank options (None: full rank)."""
    return {"w_rank": _positive("w_rank", w_rank or 0, allow_zero=True),
            "u_rank": _positive("u_rank", u_rank or 0, allow_zero=True)}


def _rank_config(layer):
    """The low-rank options of an LSTM / GRU config(), only when set (a full-rank layer's
    config stays torch's)."""
    return {k: v for k, v in (("w_rank", layer.w_rank), ("u_rank", layer.u_rank)) if v is not None}


def _act_name(value):
    return next(name for name, v in _core.ACTIVATIONS.items() if v == value)


def from_c_model(model, batch_first=False):
    """The fastseq layer that runs `model` (a fastseq._core.Model, e.g. from the C model
    loader), of the class its cell calls for."""
    classes = {_core.CELL_RNN_TANH: RNN, _core.CELL_RNN_RELU: RNN, _core.CELL_LSTM: LSTM,
               _core.CELL_GRU: GRU, _core.CELL_FASTRNN: FastRNN, _core.CELL_FASTGRNN: FastGRNN,
               _core.CELL_UGRNN: UGRNN}
    return classes[model.cell]._from_c_model(model, batch_first)
