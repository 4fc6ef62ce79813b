"""Input normalisation: anything array-like (numpy of any real dtype, non-contiguous,
torch tensors) to C-contiguous float32, without importing torch."""
import numpy as np


def as_float32(value, name):
    """Return `value` as a C-contiguous float32 ndarray (a copy only when needed)."""
    if type(value) is np.ndarray and value.dtype == np.float32 and value.flags.c_contiguous:
        return value  # the common case, without the generic conversions below
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, duck-typed
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a real-valued array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_lengths(value, batch):
    """Per-sequence lengths as a C-contiguous int32 vector of `batch` entries."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
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
