"""Tree networks: child-sum and N-ary Tree-LSTMs (Tai et al. 2015) and recursive networks,
over a whole forest per call, run by the C library level by level."""
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _core
from ._arrays import as_float32, is_tensor
from .layers import _positive

_KINDS = {"child_sum": _core.TREE_CHILD_SUM, "nary": _core.TREE_NARY}
_NONLINEARITIES = ("tanh", "relu")
# .fsq config kinds (docs/fsq-format.md), by fs_tree_kind
_FILE_KINDS = {_core.TREE_CHILD_SUM: "TREE_CHILD_SUM", _core.TREE_NARY: "TREE_NARY",
               _core.TREE_RECURSIVE: "TREE_RECURSIVE"}


def _as_parent(parent: Any, n: int) -> np.ndarray:
    """parent as a C-contiguous int64 vector of n entries (range and cycles: checked in C)."""
    if is_tensor(parent):
        parent = parent.detach().cpu().numpy()
    arr = np.asarray(parent)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"parent: expected {n} values (one per row of x), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"parent: expected integers (-1 for a root), got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and n and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"parent: node {int(np.argmax(arr))} has parent {int(arr.max())}, out of range")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _like(x: Any, arrays: Tuple[np.ndarray, ...]) -> Tuple[Any, ...]:
    """The results as torch tensors when x was one (torch in, torch out), else as they are."""
    if not is_tensor(x):
        return arrays
    import torch
    return tuple(torch.from_numpy(a) for a in arrays)


class TreeTape:
    """What a training forward keeps for :meth:`backward` (the forest and the C workspace)."""

    def __init__(self, x: np.ndarray, parent: np.ndarray, workspace: np.ndarray) -> None:
        self.x, self.parent, self.workspace = x, parent, workspace


class _Tree:
    _params = _core.TREE_PARAMS

    def __init__(self, model, seed, config):
        self._model = model
        self._config = config
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(model.hidden_size)  # torch's recurrent-layer initialisation
        for which in range(len(self._params)):
            shape = model.param_shape(which)
            model.set_param(which, rng.uniform(-bound, bound, size=shape).astype(np.float32))

    def fastseq_config(self) -> Dict[str, Any]:
        """The constructor's arguments (for files and copies).

        Returns
        -------
        dict
            Keyword arguments that rebuild this network's shape.
        """
        return dict(self._config)

    @property
    def input_size(self) -> int:
        """Features of a node's x."""
        return self._model.input_size

    @property
    def hidden_size(self) -> int:
        """Features of a node's h."""
        return self._model.hidden_size

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Parameters under their torch names.

        Returns
        -------
        dict of str to numpy.ndarray
            float32 copies of ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.
        """
        return {name: self._model.get_param(i) for i, name in enumerate(self._params)}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load parameters by name; strict.

        Parameters
        ----------
        state_dict : dict
            Exactly the keys of :meth:`state_dict`; numpy arrays or torch tensors.

        Raises
        ------
        ValueError
            Unknown or missing keys, or a wrong shape (named).
        """
        unknown = sorted(set(state_dict) - set(self._params))
        missing = sorted(set(self._params) - set(state_dict))
        if unknown or missing:
            raise ValueError(f"load_state_dict: unknown keys {unknown}, missing keys {missing}; "
                             f"expected exactly {list(self._params)}")
        arrays = []
        for i, name in enumerate(self._params):
            arr = as_float32(state_dict[name], name)
            if arr.shape != self._model.param_shape(i):
                raise ValueError(f"{name}: expected shape {self._model.param_shape(i)}, got {arr.shape}")
            arrays.append(arr)
        with self._model.gate.write():
            for i, arr in enumerate(arrays):
                self._model.set_param(i, arr)

    def _inputs(self, x, parent):
        x = as_float32(x, "x")
        if x.ndim != 2 or x.shape[1] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"x: expected shape [n_nodes >= 1, {self.input_size}], got {list(x.shape)}")
        return x, _as_parent(parent, x.shape[0])

    def forward_train(self, x: Any, parent: Any) -> Tuple[np.ndarray, Optional[np.ndarray], TreeTape]:
        """Forward that keeps a tape for :meth:`backward`.

        Parameters
        ----------
        x : array_like
            ``[N, input_size]`` node features.
        parent : array_like of int
            ``[N]``: each node's parent, -1 for a root.

        Returns
        -------
        h : numpy.ndarray
            ``[N, hidden_size]``.
        c : numpy.ndarray or None
            ``[N, hidden_size]`` cell states (None for a recursive network).
        tape : TreeTape
            For :meth:`backward`.
        """
        x, parent = self._inputs(x, parent)
        h, c, ws = self._model.forward(x, parent, True)
        return h, c, TreeTape(x, parent, ws)

    def backward(self, tape: TreeTape, grad_h: Any,
                 grad_c: Any = None) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Gradients of a loss through the forward that made `tape`.

        Parameters
        ----------
        tape : TreeTape
            From :meth:`forward_train`.
        grad_h : array_like
            ``[N, hidden_size]``: d loss / d h.
        grad_c : array_like, optional
            ``[N, hidden_size]``: d loss / d c (Tree-LSTMs; None: zero).

        Returns
        -------
        grad_x : numpy.ndarray
            ``[N, input_size]``.
        grads : dict of str to numpy.ndarray
            d loss / d each parameter, by name.
        """
        n = tape.x.shape[0]
        grad_h = as_float32(grad_h, "grad_h")
        shape = (n, self.hidden_size)
        if grad_h.shape != shape:
            raise ValueError(f"grad_h: expected shape {list(shape)}, got {list(grad_h.shape)}")
        if grad_c is not None:
            grad_c = as_float32(grad_c, "grad_c")
            if grad_c.shape != shape:
                raise ValueError(f"grad_c: expected shape {list(shape)}, got {list(grad_c.shape)}")
        dx, gw_ih, gw_hh, gb = self._model.backward(tape.x, tape.parent, grad_h, grad_c, tape.workspace)
        return dx, {"weight_ih": gw_ih, "weight_hh": gw_hh, "bias_ih": gb, "bias_hh": gb.copy()}

    def save(self, path: Any, metadata: Optional[Dict[str, Any]] = None) -> str:
        """Write this network to a .fsq model file (``fastseq.load`` reads it back bit for bit).

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; the file is written whole, then renamed into place.
        metadata : dict, optional
            Entries stored with the model (see :func:`fastseq.save`).

        Returns
        -------
        str
            The path written.
        """
        from .io import save
        return save(self, path, metadata=metadata)

    @classmethod
    def from_torch(cls, module: Any) -> "_Tree":
        """A copy of a :mod:`fastseq.torch` reference module's configuration and weights.

        Parameters
        ----------
        module : torch.nn.Module
            ``ChildSumTreeLSTM``, ``NaryTreeLSTM`` (for ``TreeLSTM``) or ``RecursiveNN``.

        Returns
        -------
        TreeLSTM or RecursiveNN
        """
        layer = cls(**module.fastseq_config())
        layer.load_state_dict({k: v.detach() for k, v in module.state_dict().items()})
        return layer


class TreeLSTM(_Tree):
    """Tree-LSTM over a forest (Tai, Socher, Manning 2015), child-sum or N-ary.

    A call takes a whole forest: ``x`` ``[N, input_size]`` node features and ``parent``
    ``[N]`` (-1 for a root), nodes in any order; the k-th child of a node is its child
    with the k-th smallest index. Gate rows i, f, g, o (N-ary: i, f_1..f_N, g, o), as
    ``torch.nn.LSTM``'s; ``b = bias_ih + bias_hh``.

    Parameters
    ----------
    input_size, hidden_size : int
        Features of x and of h.
    kind : {"child_sum", "nary"}
        Child-sum (any number of children, one forget gate per child, ``weight_hh``
        ``[4H, H]``) or N-ary (at most `arity` ordered children, ``weight_hh``
        ``[(N+3)H, N*H]``).
    arity : int, optional
        N-ary only: the most children a node may have.
    seed : int, optional
        Seed of the initial weights (``U(-1/sqrt(H), 1/sqrt(H))``).

    Raises
    ------
    ValueError
        A size or kind out of range; at call time a parent out of range, a cycle or more
        children than `arity` (naming the node).

    Examples
    --------
    >>> tree = fastseq.TreeLSTM(4, 8)
    >>> h, c = tree(np.ones((3, 4), np.float32), [2, 2, -1])  # two leaves under node 2
    >>> h.shape
    (3, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, kind: str = "child_sum", *,
                 arity: Optional[int] = None, seed: Optional[int] = None) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind: expected one of {sorted(_KINDS)}, got {kind!r}")
        if kind == "nary":
            arity = _positive("arity", arity if arity is not None else 2)
        elif arity is not None:
            raise ValueError(f"arity: a child-sum Tree-LSTM takes any number of children; "
                             f"expected None, got {arity!r}")
        self.kind = kind
        self.arity = arity
        config = {"input_size": input_size, "hidden_size": hidden_size, "kind": kind}
        if kind == "nary":
            config["arity"] = arity
        super().__init__(_core.TreeModel(_KINDS[kind], _positive("input_size", input_size),
                                         _positive("hidden_size", hidden_size), arity or 0), seed, config)

    def __call__(self, x: Any, parent: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Every node's ``(h, c)``, each ``[N, hidden_size]`` float32 (a root's h is its tree's
        vector); torch tensors when x is one."""
        h, c, _ = self._model.forward(*self._inputs(x, parent), False)
        return _like(x, (h, c))

    def __repr__(self) -> str:
        extra = f", arity={self.arity}" if self.kind == "nary" else ""
        return f"TreeLSTM({self.input_size}, {self.hidden_size}, kind={self.kind!r}{extra})"


class RecursiveNN(_Tree):
    """Recursive network over a forest: ``h = act(W x + U [h_1; ...; h_N] + b)``.

    Absent children count as zeros; the k-th child of a node is its child with the k-th
    smallest index.

    Parameters
    ----------
    input_size, hidden_size : int
        Features of x and of h.
    arity : int
        The most children a node may have (``weight_hh`` is ``[H, arity*H]``).
    nonlinearity : {"tanh", "relu"}
        The activation.
    seed : int, optional
        Seed of the initial weights (``U(-1/sqrt(H), 1/sqrt(H))``).

    Raises
    ------
    ValueError
        A size or option out of range; at call time a parent out of range, a cycle or more
        children than `arity` (naming the node).

    Examples
    --------
    >>> rnn = fastseq.RecursiveNN(4, 8)
    >>> rnn(np.ones((3, 4), np.float32), [-1, 0, 0]).shape  # node 0 is the root
    (3, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, arity: int = 2, nonlinearity: str = "tanh",
                 *, seed: Optional[int] = None) -> None:
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity: expected one of {list(_NONLINEARITIES)}, got {nonlinearity!r}")
        self.arity = _positive("arity", arity)
        self.nonlinearity = nonlinearity
        config = {"input_size": input_size, "hidden_size": hidden_size, "arity": self.arity,
                  "nonlinearity": nonlinearity}
        super().__init__(_core.TreeModel(_core.TREE_RECURSIVE, _positive("input_size", input_size),
                                         _positive("hidden_size", hidden_size), self.arity,
                                         nonlinearity == "relu"), seed, config)

    def __call__(self, x: Any, parent: Any) -> np.ndarray:
        """Every node's h, ``[N, hidden_size]`` float32; a torch tensor when x is one."""
        h, _, _ = self._model.forward(*self._inputs(x, parent), False)
        return _like(x, (h,))[0]

    def __repr__(self) -> str:
        return (f"RecursiveNN({self.input_size}, {self.hidden_size}, arity={self.arity}, "
                f"nonlinearity={self.nonlinearity!r})")


# ---- model files (fastseq.io): the file's kind and keys, and the network a file holds ----

def file_config(cfg: Dict[str, int]) -> Dict[str, Any]:
    """The .fsq config keys of a tree network from its fs_tree_config fields (a dict).

    Parameters
    ----------
    cfg : dict
        ``kind``, ``input_size``, ``hidden_size``, ``arity``, ``relu``.

    Returns
    -------
    dict
        ``input_size``, ``hidden_size``, ``arity`` (N-ary, recursive) and ``nonlinearity``
        (recursive), as a file stores them.
    """
    config = {"input_size": int(cfg["input_size"]), "hidden_size": int(cfg["hidden_size"])}
    if cfg["kind"] != _core.TREE_CHILD_SUM:
        config["arity"] = int(cfg["arity"])
    if cfg["kind"] == _core.TREE_RECURSIVE:
        config["nonlinearity"] = _NONLINEARITIES[int(cfg["relu"])]
    return config


def _c_config(model: Any) -> Dict[str, int]:
    return {"kind": model.kind, "input_size": model.input_size, "hidden_size": model.hidden_size,
            "arity": model.arity, "relu": int(model.relu)}


def file_kind_and_config(tree: "_Tree") -> Tuple[str, Dict[str, Any]]:
    """The .fsq config kind and keys of a tree network, read from its C model.

    Parameters
    ----------
    tree : TreeLSTM or RecursiveNN

    Returns
    -------
    kind : str
        ``TREE_CHILD_SUM``, ``TREE_NARY`` or ``TREE_RECURSIVE``.
    config : dict
        See :func:`file_config`.
    """
    cfg = _c_config(tree._model)
    return _FILE_KINDS[cfg["kind"]], file_config(cfg)


def from_c_model(model: Any) -> "_Tree":
    """The TreeLSTM or RecursiveNN around a C tree model made by the file loader, weights
    as loaded.

    Parameters
    ----------
    model : fastseq._core.TreeModel

    Returns
    -------
    TreeLSTM or RecursiveNN
    """
    config = file_config(_c_config(model))
    if model.kind == _core.TREE_RECURSIVE:
        tree = RecursiveNN.__new__(RecursiveNN)
        tree.arity, tree.nonlinearity = config["arity"], config["nonlinearity"]
    else:
        tree = TreeLSTM.__new__(TreeLSTM)
        tree.kind = "child_sum" if model.kind == _core.TREE_CHILD_SUM else "nary"
        tree.arity = config.get("arity")
        config["kind"] = tree.kind
    tree._model, tree._config = model, config
    return tree
