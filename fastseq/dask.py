"""Batch scoring on Dask: run a layer or SequenceModel over a Dask array or bag of
sequences, on a `dask.distributed` cluster (or Dask's local scheduler without one).

The model travels as its .fsq bytes, once per worker (`client.scatter(..., broadcast=True)`),
and each worker thread rebuilds it once through the C reader; results are those of a local
call on the same block. Imports dask only here (not at `import fastseq`)."""
import hashlib
import threading
from typing import Any, Optional

import numpy as np

from ._pickle import from_fsq_bytes, to_fsq_bytes

_local = threading.local()  # per worker thread: {digest: model}; a model serves one thread


def _model_from(data: bytes):
    cache = getattr(_local, "models", None)
    if cache is None:
        cache = _local.models = {}
    key = hashlib.sha256(data).digest()
    if key not in cache:
        cache.clear()  # one model per thread at a time: scoring jobs rarely interleave
        cache[key] = from_fsq_bytes(data)
    return cache[key]


def _parts(model):
    """(layer, head) of a layer or SequenceModel."""
    from .train.model import SequenceModel
    return (model.rnn, model.head) if isinstance(model, SequenceModel) else (model, None)


def _run(model, x, lengths=None):
    """The model's result on x (its layout): a layer's output, or the head's prediction."""
    layer, head = _parts(model)
    if head is None:
        return layer(x, lengths=lengths)[0]
    return model.predict(x, lengths=lengths)[0]


def _score_block(data, block):
    return _run(_model_from(data), np.ascontiguousarray(block, dtype=np.float32))


def _score_partition(data, sequences):
    """One bag partition: its sequences as one padded batch with lengths, results cut
    back to each sequence (per-step results to its own length)."""
    sequences = list(sequences)
    if not sequences:
        return []
    model = _model_from(data)
    layer, head = _parts(model)
    from .train.heads import LastStepLinear

    seqs = [np.asarray(s, dtype=np.float32) for s in sequences]
    lengths = [s.shape[0] for s in seqs]
    x = np.zeros((len(seqs), max(lengths), layer.input_size), dtype=np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
    if not layer.batch_first:
        x = np.ascontiguousarray(x.swapaxes(0, 1))
    out = _run(model, x, lengths)
    if isinstance(head, LastStepLinear):
        return list(out)
    if not layer.batch_first:
        out = out.swapaxes(0, 1)
    return [np.ascontiguousarray(out[i, :n]) for i, n in enumerate(lengths)]


def _out_shape(model, T, b):
    """Shape of the result on a block of b sequences of T steps."""
    from .train.heads import LastStepLinear
    layer, head = _parts(model)
    if isinstance(head, LastStepLinear):
        return (b, head.out_features)
    F = head.out_features if head is not None else layer.num_directions * layer.output_features
    return (b, T, F) if layer.batch_first else (T, b, F)


def score(model: Any, sequences: Any, *, client: Optional[Any] = None) -> Any:
    """Score `sequences` with `model` on Dask, in parallel over blocks of sequences.

    Parameters
    ----------
    model : fastseq layer, cell or fastseq.train.SequenceModel
        What to run. It travels as its .fsq bytes, once per worker.
    sequences : dask.array.Array or dask.bag.Bag
        An array in the layer's layout (``[T, N, I]``, or ``[N, T, I]`` if ``batch_first``;
        it is rechunked along the sequence axis only), or a bag of ``[T_i, I]`` sequences
        of any lengths.
    client : distributed.Client, optional
        The cluster; by default the current client if there is one, else Dask's local
        scheduler runs the graph (the bytes are then shipped as a delayed value).

    Returns
    -------
    dask.array.Array or dask.bag.Bag
        Lazy results, like a local call on each block: a layer's output, or a
        SequenceModel's prediction (``[N, out]`` for a last-step head). For a bag, one
        result per sequence (per-step results cut to its length).

    Raises
    ------
    TypeError
        `sequences` is neither a Dask array nor a bag.
    ValueError
        An array that is not 3-D or whose features differ from the layer's input size.

    Examples
    --------
    >>> import dask.array as da, fastseq, fastseq.dask  # doctest: +SKIP
    >>> x = da.zeros((8, 100_000, 4), chunks=(8, 10_000, 4), dtype="float32")  # doctest: +SKIP
    >>> y = fastseq.dask.score(fastseq.GRU(4, 16), x).compute()  # doctest: +SKIP
    """
    import dask
    import dask.array as da
    import dask.bag as db

    from .io import sequence_layer
    if not hasattr(model, "head"):
        model = sequence_layer(model)  # a cell, or a torch module, becomes its layer
    layer, _ = _parts(model)
    data = to_fsq_bytes(model)
    if client is None:
        try:
            from distributed import get_client
            client = get_client()
        except (ImportError, ValueError):
            client = None
    weights = (client.scatter(data, broadcast=True, hash=False) if client is not None
               else dask.delayed(data, pure=True))

    if isinstance(sequences, db.Bag):
        parts = [dask.delayed(_score_partition, pure=True)(weights, p) for p in sequences.to_delayed()]
        return db.from_delayed(parts)
    if not isinstance(sequences, da.Array):
        raise TypeError(f"sequences: expected a dask.array.Array or dask.bag.Bag, "
                        f"got {type(sequences).__name__}")
    if sequences.ndim != 3 or sequences.shape[2] != layer.input_size:
        layout = "[N, T, {0}]" if layer.batch_first else "[T, N, {0}]"
        raise ValueError(f"sequences: expected a 3-D array {layout.format(layer.input_size)} "
                         f"(the layer's layout), got shape {sequences.shape}")
    b_ax = 0 if layer.batch_first else 1
    x = sequences.rechunk({1 - b_ax: -1, 2: -1})
    T = x.shape[1 - b_ax]
    blocks = x.to_delayed().reshape(-1)
    outs = []
    for block, b in zip(blocks, x.chunks[b_ax]):
        result = dask.delayed(_score_block, pure=True)(weights, block)
        outs.append(da.from_delayed(result, shape=_out_shape(model, T, b), dtype=np.float32))
    from .train.heads import LastStepLinear
    out_ax = 0 if isinstance(_parts(model)[1], LastStepLinear) or layer.batch_first else 1
    return da.concatenate(outs, axis=out_ax)
