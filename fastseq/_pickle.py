"""Pickling by value through the .fsq bytes: a layer or SequenceModel pickles as the bytes
`fastseq.io.encode` writes and unpickles through the C reader (`io.decode` + `io.build`),
so unpickling never runs arbitrary pickled objects, only the validated model format."""
from . import io


def to_fsq_bytes(model) -> bytes:
    """The .fsq file bytes of a layer, cell or SequenceModel (what `fastseq.save` writes)."""
    return io.encode(*io.layer_parts(model), head=io._head_part(model))


def from_fsq_bytes(data: bytes):
    """The layer or SequenceModel in .fsq bytes, read and validated by the C library."""
    return io.build(io.decode(data))


def reduce_model(model):
    """`__reduce__` for layers and SequenceModels."""
    return from_fsq_bytes, (to_fsq_bytes(model),)
