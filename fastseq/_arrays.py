"""Input normalisation: anything array-like (numpy of any real dtype, non-contiguous,
torch tensors of any float width, PackedSequence, lists of ragged sequences) to
C-contiguous float32, without importing torch unless a torch object came in.

The output rule: torch in, torch out. When `x` is a torch tensor (or a PackedSequence),
a layer or cell returns torch float32 CPU tensors (a PackedSequence output for a
PackedSequence input); otherwise numpy float32."""
import numpy as np


def is_tensor(value):
    """A torch tensor, duck-typed (torch is not imported)."""
    return hasattr(value, "detach") and hasattr(value, "numpy")


def is_packed(value):
    """A torch.nn.utils.rnn.PackedSequence, duck-typed."""
    return type(value).__name__ == "PackedSequence" and hasattr(value, "batch_sizes")


def as_float32(value, name):
    """Return `value` as a C-contiguous float32 ndarray (a copy only when needed)."""
    if type(value) is np.ndarray and value.dtype == np.float32 and value.flags.c_contiguous:
        return value  # the common case, without the generic conversions below
    if is_tensor(value):
        value = value.detach().cpu()
        if value.dtype.is_floating_point and value.dtype.itemsize < 4:
            value = value.float()  # bfloat16 has no numpy dtype; float16 widens exactly
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # numpy's "inhomogeneous shape"
        raise ValueError(f"{name}: expected a rectangular array (for sequences of different "
                         f"lengths pass a list of [T_i, features] arrays), got {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a real-valued array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_lengths(value, batch):
    """Per-sequence lengths as a C-contiguous int32 vector of `batch` entries."""
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"lengths: expected {batch} values (one per sequence), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 1 or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"lengths: expected values >= 1, got {arr.tolist()}")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _ragged(x):
    """A list of 2-D [T_i, F] sequences (arrays or tensors; nested lists only when they
    are not rectangular), or None when x is something else."""
    if not isinstance(x, (list, tuple)) or not x:
        return None
    if not all(hasattr(s, "shape") for s in x):
        try:
            np.asarray(x, dtype=np.float32)
            return None  # a rectangular nested list: an ordinary array
        except ValueError:
            pass
    seqs = [as_float32(s, f"x[{i}]") for i, s in enumerate(x)]
    if all(s.ndim < 2 for s in seqs):
        return None  # rows (or scalars) of one array
    if any(s.ndim != 2 for s in seqs) or len({s.shape[1] for s in seqs}) != 1:
        shapes = [s.shape for s in seqs]
        raise ValueError(f"x: expected a list of [T_i, features] sequences with one feature "
                         f"count, got shapes {shapes}")
    return seqs


class SequenceInput:
    """A layer's `x` and `lengths` as numpy (PackedSequence and ragged lists become a
    zero-padded array plus lengths), and `restore` to return results in x's kind."""

    def __init__(self, x, lengths, batch_first):
        self.torch = is_tensor(x) or is_packed(x) or (
            isinstance(x, (list, tuple)) and bool(x) and all(is_tensor(s) for s in x))
        self.pack_output = is_packed(x)  # torch returns a PackedSequence for one
        self.batch_first = batch_first
        own_lengths = None
        if self.pack_output:
            from torch.nn.utils.rnn import pad_packed_sequence
            x, lens = pad_packed_sequence(x, batch_first=batch_first)
            own_lengths = lens.numpy()
        else:
            seqs = _ragged(x)
            if seqs is not None:
                own_lengths = np.array([s.shape[0] for s in seqs])
                pad = np.zeros((len(seqs), int(own_lengths.max()), seqs[0].shape[1]), dtype=np.float32)
                for i, s in enumerate(seqs):
                    pad[i, :s.shape[0]] = s
                x = pad if batch_first else np.ascontiguousarray(pad.swapaxes(0, 1))
        if own_lengths is not None:
            if lengths is not None:
                raise ValueError("lengths: a PackedSequence or a list of sequences carries its "
                                 "own lengths; pass lengths=None")
            lengths = own_lengths
        self.x, self.lengths = x, lengths

    def restore(self, result):
        """`result` (nested tuples of numpy arrays) in the input's kind."""
        if not self.torch:
            return result
        import torch

        def conv(v, top):
            if isinstance(v, tuple):
                return tuple(conv(e, False) for e in v)
            if v is None:
                return None
            t = torch.from_numpy(v)
            if top and self.pack_output:
                from torch.nn.utils.rnn import pack_padded_sequence
                return pack_padded_sequence(t, torch.as_tensor(self.lengths),
                                            batch_first=self.batch_first, enforce_sorted=False)
            return t
        return tuple(conv(v, i == 0) for i, v in enumerate(result))
