"""Training a tree network (fastseq.TreeLSTM, fastseq.RecursiveNN) with a linear head on
each tree's root: a batch of trees is joined into one forest, one forward and one backward
call in C per batch."""
from typing import Any, List, Sequence, Tuple

import numpy as np

from .._arrays import as_float32
from .heads import PerStepLinear
from .history import History
from .losses import make_loss
from .optim import make_optimizer


def join_trees(trees: Sequence[Tuple[Any, Any]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forest from single-rooted trees.

    Parameters
    ----------
    trees : sequence of (x, parent)
        Each ``x`` ``[n_i, I]`` and ``parent`` ``[n_i]`` with exactly one root (-1).

    Returns
    -------
    x : numpy.ndarray
        ``[sum n_i, I]`` float32.
    parent : numpy.ndarray
        ``[sum n_i]`` int64, each tree's ids shifted by the nodes before it.
    roots : numpy.ndarray
        ``[len(trees)]``: the root of tree i in the forest.

    Raises
    ------
    ValueError
        A tree without exactly one root, or x and parent of different lengths (named).
    """
    xs, parents, roots, offset = [], [], [], 0
    for i, (x, parent) in enumerate(trees):
        x = as_float32(x, f"trees[{i}] x")
        parent = np.asarray(parent)
        if x.ndim != 2 or parent.ndim != 1 or parent.shape[0] != x.shape[0]:
            raise ValueError(f"trees[{i}]: expected x [n, I] and parent [n], got shapes "
                             f"{list(x.shape)} and {list(parent.shape)}")
        if parent.dtype.kind not in "iu":
            raise ValueError(f"trees[{i}]: expected integer parents, got dtype {parent.dtype}")
        root = np.flatnonzero(parent == -1)
        if root.size != 1:
            raise ValueError(f"trees[{i}]: expected exactly one root (parent -1), got {root.size}")
        xs.append(x)
        parents.append(np.where(parent >= 0, parent + offset, parent).astype(np.int64))
        roots.append(offset + int(root[0]))
        offset += x.shape[0]
    if not xs:
        raise ValueError("trees: expected at least one tree")
    return np.concatenate(xs), np.concatenate(parents), np.array(roots, dtype=np.int64)


class TreeModel:
    """A tree network and a linear head on each root's h, trained as one.

    ``pred = model.forward(trees)`` records for ``model.backward(grad_pred)``; gradients
    accumulate in ``model.grads`` (``zero_grad()``); optimizers update ``model.params``
    (the tree's ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` flattened, then the
    head's) and call ``sync()``.

    Parameters
    ----------
    tree : fastseq.TreeLSTM or fastseq.RecursiveNN
        The network.
    head : PerStepLinear
        The linear map on each root's h (``in_features`` = the tree's hidden size).

    Raises
    ------
    ValueError
        A head whose ``in_features`` is not the tree's hidden size.

    Examples
    --------
    >>> model = TreeModel(fastseq.TreeLSTM(3, 8), PerStepLinear(8, 2))
    >>> model.forward([(np.ones((2, 3), np.float32), [-1, 0])]).shape
    (1, 2)
    """

    def __init__(self, tree: Any, head: PerStepLinear):
        if head.in_features != tree.hidden_size:
            raise ValueError(f"head: expected in_features {tree.hidden_size} (the tree's hidden "
                             f"size), got {head.in_features}")
        self.tree, self.head = tree, head
        state = tree.state_dict()
        self._names = list(state)
        self._shapes = [state[k].shape for k in self._names]
        self.n_tree = sum(v.size for v in state.values())
        n = self.n_tree + head.num_params
        self.params = np.empty(n, dtype=np.float32)
        self.grads = np.zeros(n, dtype=np.float32)
        self.params[:self.n_tree] = np.concatenate([state[k].reshape(-1) for k in self._names])
        head.bind(self.params[self.n_tree:], self.grads[self.n_tree:])

    def _split(self, flat: np.ndarray) -> List[np.ndarray]:
        out, at = [], 0
        for shape in self._shapes:
            size = int(np.prod(shape))
            out.append(flat[at:at + size].reshape(shape))
            at += size
        return out

    def sync(self) -> None:
        """Push `params` into the C tree model (after an update)."""
        self.tree.load_state_dict(dict(zip(self._names, self._split(self.params[:self.n_tree]))))

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        self.grads.fill(0.0)

    def forward(self, trees: Sequence[Tuple[Any, Any]]) -> np.ndarray:
        """Head outputs of each tree's root, ``[len(trees), out_features]``; records for backward.

        Parameters
        ----------
        trees : sequence of (x, parent)
            Single-rooted trees (see :func:`join_trees`).

        Returns
        -------
        numpy.ndarray
        """
        x, parent, self._roots = join_trees(trees)
        h, _, self._tape = self.tree.forward_train(x, parent)
        self._h_shape = h.shape
        return self.head.forward(np.ascontiguousarray(h[self._roots]))

    def backward(self, grad_pred: Any) -> None:
        """Accumulate the gradients of the last :meth:`forward` for d loss / d pred.

        Parameters
        ----------
        grad_pred : array_like
            ``[len(trees), out_features]``.
        """
        dh = np.zeros(self._h_shape, dtype=np.float32)
        dh[self._roots] = self.head.backward(grad_pred)
        _, grads = self.tree.backward(self._tape, dh)
        self.grads[:self.n_tree] += np.concatenate([grads[k].reshape(-1) for k in self._names])

    def predict(self, trees: Sequence[Tuple[Any, Any]]) -> np.ndarray:
        """Head outputs of each tree's root without recording, ``[len(trees), out_features]``.

        Parameters
        ----------
        trees : sequence of (x, parent)
            Single-rooted trees.

        Returns
        -------
        numpy.ndarray
        """
        x, parent, roots = join_trees(trees)
        out = self.tree(x, parent)
        h = out[0] if isinstance(out, tuple) else out
        return self.head.forward(np.ascontiguousarray(h[roots]))


def fit_trees(model: TreeModel, trees: Sequence[Tuple[Any, Any]], y: Any, *, loss: Any = "mse",
              optimizer: Any = "adam", epochs: int = 1, batch_size: int = 32, shuffle: bool = True,
              seed: Any = 0, clip_norm: Any = None, clip_value: Any = None, progress: bool = True,
              callback: Any = None) -> History:
    """Mini-batch training of a :class:`TreeModel` (what ``fit`` runs for one).

    Parameters
    ----------
    model : TreeModel
        The tree network and its root head.
    trees : sequence of (x, parent)
        Single-rooted trees; a batch of them runs as one forest.
    y : array_like
        One target per tree, ``[len(trees), ...]`` (class indices for cross-entropy).
    loss, optimizer, epochs, batch_size, shuffle, seed, clip_norm, clip_value, progress, callback
        As for :func:`fastseq.train.fit`.

    Returns
    -------
    History
        ``{"loss": [mean loss per epoch], "batch_loss": [each update's loss]}``.

    Raises
    ------
    ValueError
        ``y`` with a different number of rows than there are trees, or bad trees (named).
    """
    from .fit import _check_fit_args, run_epochs, update
    _check_fit_args(model, epochs, batch_size)
    loss_fn = make_loss(loss)
    opt = make_optimizer(optimizer, model)
    trees = list(trees)
    y = np.asarray(y)
    if y.shape[0] != len(trees):
        raise ValueError(f"y: expected {len(trees)} rows (one per tree), got shape {list(y.shape)}")

    def train_batch(idx):
        model.zero_grad()
        pred = model.forward([trees[i] for i in idx])
        batch_loss, grad = loss_fn(pred, y[idx], None)
        model.backward(grad)
        update(model, opt, clip_norm, clip_value)
        return batch_loss
    return run_epochs(len(trees), batch_size, epochs, shuffle, seed, progress, callback, train_batch)
