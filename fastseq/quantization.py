"""Quantised copies of layers: int8, int4 and bf16 weights for inference
(docs/quantization.md). The C library quantises (fs_rnn_quantize); this module
checks the arguments and wraps the result in a layer of the same class."""
from typing import Any, Optional

from . import _core

_GROUPS = (32, 64)


def quantize(layer: Any, dtype: str = "int8", *, group_size: Optional[int] = None) -> Any:
    """A quantised copy of a layer: same class, same API, inference only.

    Parameters
    ----------
    layer : fastseq layer or cell
        An fp32 ``LSTM``, ``GRU``, ``RNN``, ``FastRNN``, ``FastGRNN`` or ``LSTMCell``,
        ``GRUCell``, ``RNNCell`` (left untouched).
    dtype : {"int8", "int4", "bf16"}
        int8: symmetric, one scale per output row, and the products quantise their
        activation rows on the fly (per row) and multiply in integers; int4: symmetric, one
        scale per group of ``group_size`` inputs and output row, the products as int8's
        (integer sums per group); bf16: fp32 rounded to nearest even.
    group_size : int, optional
        int4 only: 32 (default) or 64.

    Returns
    -------
    layer
        A new layer of ``type(layer)``; its weights read back dequantised (``state_dict``),
        its ``dtype`` is ``dtype``. Training it raises (train the fp32 layer, then quantise).

    Raises
    ------
    ValueError
        An unknown dtype, a group size other than 32 / 64 (or one given for int8 / bf16), or
        an already quantised layer.
    TypeError
        Not a fastseq layer.

    Examples
    --------
    >>> q = fastseq.quantize(fastseq.LSTM(4, 8), "int8")
    >>> q.dtype
    'int8'
    """
    from .cells import _Cell
    from .layers import _Recurrent

    if isinstance(layer, _Cell):  # a cell runs a one-layer layer: quantise that
        cell = object.__new__(type(layer))
        cell.__dict__.update(layer.__dict__)
        cell._layer = quantize(layer._layer, dtype, group_size=group_size)
        return cell
    if not isinstance(layer, _Recurrent):
        raise TypeError(f"layer: expected a fastseq layer (LSTM, GRU, RNN, FastRNN, FastGRNN) or cell, "
                        f"got {type(layer).__name__}")
    if dtype not in ("int8", "int4", "bf16"):
        raise ValueError(f"dtype: expected 'int8', 'int4' or 'bf16', got {dtype!r}")
    if dtype == "int4":
        group_size = 32 if group_size is None else group_size
        if group_size not in _GROUPS:
            raise ValueError(f"group_size: expected 32 or 64 for int4, got {group_size!r}")
    elif group_size is not None:
        raise ValueError(f"group_size: only int4 has groups, got group_size={group_size!r} for {dtype}")
    if layer.dtype != "f32":
        raise ValueError(f"layer: expected an fp32 layer, got a {layer.dtype} one (quantise the fp32 original)")
    model = layer.c_model.quantize(dtype, group_size or 0)
    return type(layer)._from_c_model(model, layer.batch_first)
