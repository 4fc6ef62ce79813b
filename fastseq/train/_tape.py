"""A layer's training forward and backward through a reusable C tape (fs_rnn_tape), and
`layer.backward(...)` built on it."""
import threading

import numpy as np

from .. import _core
from .._arrays import as_float32, as_lengths


class Recorder:
    """Training forward + backward of one recurrent layer. The tape grows to the largest
    (T, B) seen and is reused; nothing else is allocated per call except the outputs."""

    def __init__(self, layer):
        self.layer = layer
        self.lstm = layer.mode == "LSTM"
        self._R = layer.output_features  # features of h: proj_size or hidden_size
        self._DR = layer.num_directions * self._R
        self._state_rows = layer.num_layers * layer.num_directions
        self._tape = None
        self._last = None  # (T, B, batch_first, x shape, state shape) of the recorded forward

    def _tape_for(self, T, B):
        tape = self._tape
        if tape is None or tape.seq_len < T or tape.batch < B or tape.model is not self.layer.c_model:
            T2, B2 = (T, B) if tape is None else (max(T, tape.seq_len), max(B, tape.batch))
            tape = self._tape = _core.Tape(self.layer.c_model, T2, B2)
        return tape

    def forward(self, x, h0=None, c0=None, lengths=None, batch_first=None):
        """x: C-contiguous float32 [T, B, I] ([B, T, I] if batch_first); h0, c0: [L*D, B, H]
        float32 or None; lengths: int32 [B] or None. Returns y, h_n, c_n (c_n None unless LSTM)."""
        layer = self.layer
        bf = layer.batch_first if batch_first is None else batch_first
        T, B = (x.shape[1], x.shape[0]) if bf else (x.shape[0], x.shape[1])
        y = np.empty((B, T, self._DR) if bf else (T, B, self._DR), dtype=np.float32)
        h_shape = (self._state_rows, B, self._R)
        c_shape = (self._state_rows, B, layer.hidden_size)
        h_n = np.empty(h_shape, dtype=np.float32)
        c_n = np.empty(c_shape, dtype=np.float32) if self.lstm else None
        self._tape_for(T, B).forward(x, T, B, bf, lengths, h0, c0, y, h_n, c_n)
        self._last = (T, B, bf, x.shape, h_shape, c_shape)
        return y, h_n, c_n

    def backward(self, grad_y=None, grad_h_n=None, grad_c_n=None, grad_params=None,
                 accumulate=False, want_input=True, want_state=True):
        """Gradients over the last forward. grad_params (flat, param_count floats) is filled
        (or added to, if accumulate). Returns grad_x, grad_h0, grad_c0 (None where unwanted)."""
        if self._last is None:
            raise RuntimeError("backward: run a training forward first")
        x_shape, h_shape, c_shape = self._last[3:]
        gx = np.empty(x_shape, dtype=np.float32) if want_input else None
        gh0 = np.empty(h_shape, dtype=np.float32) if want_state else None
        gc0 = np.empty(c_shape, dtype=np.float32) if want_state and self.lstm else None
        self._tape.backward(grad_y, grad_h_n, grad_c_n, gx, gh0, gc0, grad_params, accumulate)
        return gx, gh0, gc0

    def state_at(self, t):
        """The recorded state before step t of the last forward: h, or (h, c) for an LSTM,
        h [L, B, R], c [L, B, H] (unidirectional layers only)."""
        B, L = self._last[1], self.layer.num_layers
        h = np.empty((L, B, self._R), dtype=np.float32)
        c = np.empty((L, B, self.layer.hidden_size), dtype=np.float32) if self.lstm else None
        self._tape.get_state(t, h, c)
        return (h, c) if self.lstm else h


def _recorder(layer):
    """This thread's Recorder for `layer`: concurrent `layer.backward` calls each record
    on their own tape (one shared tape would be overwritten mid-call)."""
    per_thread = layer.__dict__.setdefault("_fs_recorders", threading.local())
    rec = getattr(per_thread, "rec", None)
    if rec is None:
        rec = per_thread.rec = Recorder(layer)
    return rec


def _optional(value, name, shape):
    if value is None:
        return None
    arr = as_float32(value, name)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    return arr


def layer_backward(layer, x, grad_output, hx=None, grad_hn=None, lengths=None):
    """Implementation of `layer.backward` (see _Recurrent.backward)."""
    x3, unbatched, bf, T, B = layer._sequence(x)
    lstm = layer.mode == "LSTM"
    H, R, LD = layer.hidden_size, layer.output_features, layer.num_layers * layer.num_directions
    h0, c0 = layer._split_hx(hx)
    h0 = layer._state(h0, "h0", B, unbatched, R)
    c0 = layer._state(c0, "c0", B, unbatched, H)
    lens = None if lengths is None else as_lengths(lengths, B)

    rec = _recorder(layer)
    rec.forward(np.ascontiguousarray(x3), h0, c0, lens, batch_first=bf)

    y_shape = (x3.shape[:1] if unbatched else x3.shape[:-1]) + (layer.num_directions * R,)
    h_shape = (LD, R) if unbatched else (LD, B, R)
    c_shape = (LD, H) if unbatched else (LD, B, H)
    gy = _optional(grad_output, "grad_output", y_shape)
    if lstm and grad_hn is not None:
        if not isinstance(grad_hn, (tuple, list)) or len(grad_hn) != 2:
            raise ValueError("grad_hn: expected a pair (grad_h_n, grad_c_n) for an LSTM")
        ghn, gcn = grad_hn
    else:
        ghn, gcn = grad_hn, None
    ghn = _optional(ghn, "grad_hn", h_shape)
    gcn = _optional(gcn, "grad_cn", c_shape)

    grads = np.empty(_core.param_count(layer.c_model), dtype=np.float32)
    gx, gh0, gc0 = rec.backward(gy, ghn, gcn, grads)
    out = {}
    for key, (l, d, which) in layer.param_index().items():
        off = _core.param_offset(layer.c_model, l, d, which)
        shape = layer.c_model.param_shape(l, d, which)
        out[key] = grads[off:off + int(np.prod(shape))].reshape(shape)
    if unbatched:
        gx, gh0 = gx[:, 0], gh0[:, 0]
        gc0 = None if gc0 is None else gc0[:, 0]
    out["input"] = gx
    out["hx"] = (gh0, gc0) if lstm else gh0
    return out
