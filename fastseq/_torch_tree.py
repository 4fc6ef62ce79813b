"""Reference PyTorch tree modules (re-exported by `fastseq.torch`): ChildSumTreeLSTM,
NaryTreeLSTM (Tai, Socher, Manning 2015) and RecursiveNN, written from the equations of
issue 15 / README "Tree networks", trainable with autograd. A call takes a forest:
``x`` ``[N, I]`` and ``parent`` ``[N]`` (-1 for a root); nodes run level by level, each level
batched (leaves are level 0). The k-th child of a node is its child with the k-th smallest index.
"""
import math

import numpy as np
import torch
from torch import nn


def forest_levels(parent):
    """Per level, the node ids of that level, ascending (a leaf is level 0, a node one more
    than its deepest child), and each node's rank among its siblings. ValueError for a parent
    out of range or a cycle."""
    parent = np.asarray(parent, dtype=np.int64)
    n = parent.shape[0]
    if ((parent < -1) | (parent >= n)).any():
        bad = int(np.flatnonzero((parent < -1) | (parent >= n))[0])
        raise ValueError(f"parent[{bad}] = {int(parent[bad])} is out of range")
    pending = np.bincount(parent[parent >= 0], minlength=n)
    rank = np.zeros(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.int64)
    for v in range(n):  # ascending ids: the k-th smallest child gets rank k
        if parent[v] >= 0:
            rank[v] = seen[parent[v]]
            seen[parent[v]] += 1
    level = np.zeros(n, dtype=np.int64)
    ready = [v for v in range(n) if pending[v] == 0]
    done = 0
    while ready:
        v = ready.pop()
        done += 1
        p = parent[v]
        if p >= 0:
            level[p] = max(level[p], level[v] + 1)
            pending[p] -= 1
            if pending[p] == 0:
                ready.append(p)
    if done < n:
        raise ValueError(f"parent: node {int(np.flatnonzero(pending)[0])} is on a cycle")
    return [np.flatnonzero(level == lv) for lv in range(int(level.max()) + 1)], rank


class _TreeModule(nn.Module):
    def __init__(self, input_size, hidden_size, gates, k):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, k))
        self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _run(self, x, parent, cell):
        """Runs `cell(nodes, rows_of_children...)` level by level; returns per-node states."""
        parent_t = torch.as_tensor(np.asarray(parent), dtype=torch.long)
        levels, rank = forest_levels(parent_t.numpy())
        n, H = x.shape[0], self.hidden_size
        gx = x @ self.weight_ih.T + self.bias_ih + self.bias_hh
        h = x.new_zeros(n, H)
        c = x.new_zeros(n, H)
        slot = torch.full((n,), -1, dtype=torch.long)  # a node's row within its level
        for nodes in levels:
            idx = torch.as_tensor(nodes, dtype=torch.long)
            slot[idx] = torch.arange(len(nodes))
            kids = torch.nonzero((parent_t >= 0) & torch.isin(parent_t, idx)).flatten()
            owner = slot[parent_t[kids]]  # the level row each child belongs to
            h_new, c_new = cell(idx, gx[idx], kids, owner, torch.as_tensor(rank)[kids], h, c)
            h = h.index_copy(0, idx, h_new)
            if c_new is not None:
                c = c.index_copy(0, idx, c_new)
        return h, c

    def _concat(self, m, arity, owner, krank, rows):
        """[m, arity*H]: each child's row in its parent's slot (absent children zero)."""
        out = rows.new_zeros(m * arity, rows.shape[1]).index_copy(0, owner * arity + krank, rows)
        return out.view(m, arity * rows.shape[1])


class ChildSumTreeLSTM(_TreeModule):
    """Child-sum Tree-LSTM: weight_ih [4H, I], weight_hh [4H, H], gates i, f, g, o; one
    forget gate per child; ``h, c = m(x, parent)``."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size, 4, hidden_size)

    def fastseq_config(self):
        """The arguments of the matching fastseq.TreeLSTM."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "kind": "child_sum"}

    def forward(self, x, parent):
        H = self.hidden_size
        U = self.weight_hh

        def cell(idx, gx, kids, owner, krank, h, c):
            hsum = gx.new_zeros(len(idx), H).index_add(0, owner, h[kids])
            pre = gx + hsum @ U.T
            i, g, o = torch.sigmoid(pre[:, :H]), torch.tanh(pre[:, 2 * H:3 * H]), torch.sigmoid(pre[:, 3 * H:])
            f = torch.sigmoid(gx[owner, H:2 * H] + h[kids] @ U[H:2 * H].T)
            c_new = (i * g).index_add(0, owner, f * c[kids])
            return o * torch.tanh(c_new), c_new
        return self._run(x, parent, cell)


class NaryTreeLSTM(_TreeModule):
    """N-ary Tree-LSTM: weight_ih [(N+3)H, I], weight_hh [(N+3)H, N*H], gates i, f_1..f_N, g,
    o; absent children as zeros; ``h, c = m(x, parent)``."""

    def __init__(self, input_size, hidden_size, arity=2):
        super().__init__(input_size, hidden_size, arity + 3, arity * hidden_size)
        self.arity = arity

    def fastseq_config(self):
        """The arguments of the matching fastseq.TreeLSTM."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "kind": "nary",
                "arity": self.arity}

    def forward(self, x, parent):
        H, N = self.hidden_size, self.arity

        def cell(idx, gx, kids, owner, krank, h, c):
            if (krank >= N).any():
                raise ValueError(f"a node has more than {N} children")
            m = len(idx)
            pre = gx + self._concat(m, N, owner, krank, h[kids]) @ self.weight_hh.T
            i, g, o = torch.sigmoid(pre[:, :H]), torch.tanh(pre[:, (N + 1) * H:(N + 2) * H]), \
                torch.sigmoid(pre[:, (N + 2) * H:])
            f = torch.sigmoid(pre[:, H:(N + 1) * H]).view(m, N, H)
            cc = self._concat(m, N, owner, krank, c[kids]).view(m, N, H)
            c_new = i * g + (f * cc).sum(1)
            return o * torch.tanh(c_new), c_new
        return self._run(x, parent, cell)


class RecursiveNN(_TreeModule):
    """Recursive network: weight_ih [H, I], weight_hh [H, N*H]; h = act(W x + U [h_1; ...; h_N]
    + b), absent children as zeros; ``h = m(x, parent)``."""

    def __init__(self, input_size, hidden_size, arity=2, nonlinearity="tanh"):
        super().__init__(input_size, hidden_size, 1, arity * hidden_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.arity, self.nonlinearity = arity, nonlinearity

    def fastseq_config(self):
        """The arguments of the matching fastseq.RecursiveNN."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "arity": self.arity,
                "nonlinearity": self.nonlinearity}

    def forward(self, x, parent):
        N = self.arity
        act = torch.tanh if self.nonlinearity == "tanh" else torch.relu

        def cell(idx, gx, kids, owner, krank, h, c):
            if (krank >= N).any():
                raise ValueError(f"a node has more than {N} children")
            hcat = self._concat(len(idx), N, owner, krank, h[kids])
            return act(gx + hcat @ self.weight_hh.T), None
        return self._run(x, parent, cell)[0]
