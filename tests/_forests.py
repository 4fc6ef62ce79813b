"""Random forests for the tree tests: parent arrays with shuffled node ids."""
import numpy as np


def random_forest(rng, trees, nodes_per_tree, arity=None):
    """parent [N] for `trees` random trees of about `nodes_per_tree` nodes each, ids shuffled;
    no node has more than `arity` children (None: any number)."""
    parents = []
    for _ in range(trees):
        size = int(rng.integers(1, 2 * nodes_per_tree))
        base = len(parents)
        kids = [0] * size
        parents.append(-1)
        for k in range(1, size):
            choices = [j for j in range(k) if arity is None or kids[j] < arity]
            p = int(rng.choice(choices))
            kids[p] += 1
            parents.append(base + p)
    parent = np.array(parents, dtype=np.int64)
    perm = rng.permutation(len(parent))  # new id of old node v: perm[v]
    out = np.full(len(parent), -1, dtype=np.int64)
    out[perm] = np.where(parent >= 0, perm[np.maximum(parent, 0)], -1)
    return out
