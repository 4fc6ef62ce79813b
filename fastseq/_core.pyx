# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython binding of the fastseq C library: owners of C handles, typed memoryviews
in, every C call under `with nogil`. Validation of sizes is the C core's job."""
from libc.stdint cimport int32_t

import numpy as np

cimport numpy as cnp
cimport fastseq._cfastseq as c

cnp.import_array()

CELL_RNN_TANH = c.FS_CELL_RNN_TANH
CELL_RNN_RELU = c.FS_CELL_RNN_RELU
CELL_LSTM = c.FS_CELL_LSTM
CELL_GRU = c.FS_CELL_GRU

_ISAS = {"generic": c.FS_ISA_GENERIC, "avx2": c.FS_ISA_AVX2}


cdef int check(c.fs_status status) except -1:
    """Turn a status code into one exception type per kind, with the C detail."""
    if status == c.FS_OK:
        return 0
    detail = c.fs_last_error().decode("utf-8", "replace") or c.fs_status_str(status).decode()
    if status == c.FS_ERR_NOMEM:
        raise MemoryError(detail)
    if status == c.FS_ERR_UNSUPPORTED:
        raise RuntimeError(detail)
    raise ValueError(detail)


def isa():
    """Name of the kernel level in use ("avx2", "generic")."""
    return c.fs_isa_name(c.fs_active_isa()).decode()


def set_isa(name):
    """Force a kernel level for this process: "generic" or "avx2"."""
    if name not in _ISAS:
        raise ValueError(f"isa: expected one of {sorted(_ISAS)}, got {name!r}")
    check(c.fs_set_isa(_ISAS[name]))


def available_isas():
    """Kernel levels this CPU and build can run, lowest first."""
    current = isa()
    found = []
    for name, level in _ISAS.items():
        if c.fs_set_isa(level) == c.FS_OK:
            found.append(name)
    check(c.fs_set_isa(_ISAS[current]))
    return found


# Stands in for an empty array: a given-but-empty buffer must reach the C core
# as a non-NULL pointer with count 0 (an error), not as NULL (meaning "absent").
cdef float _empty_f[1]
cdef int32_t _empty_i[1]


def set_num_threads(int n):
    """Maximum threads for later calls; 0 restores the default (FASTSEQ_NUM_THREADS or
    OpenMP's). Small problems run on one thread whatever the setting."""
    check(c.fs_set_num_threads(n))


def get_num_threads():
    """The maximum threads later calls may use."""
    return c.fs_get_num_threads()


cdef inline const float *fptr(const float[::1] a):
    if a is None:
        return NULL
    return &a[0] if a.shape[0] > 0 else _empty_f


cdef inline float *wptr(float[::1] a):
    if a is None:
        return NULL
    return &a[0] if a.shape[0] > 0 else _empty_f


cdef inline size_t count(a):
    return a.shape[0] if a is not None else 0


cdef class Model:
    """A recurrent model held by the C library (fs_rnn)."""
    cdef c.fs_rnn *ptr
    cdef readonly int cell, input_size, hidden_size, num_layers
    cdef readonly bint bidirectional, bias

    def __cinit__(self, int cell, int input_size, int hidden_size, int num_layers=1,
                  bint bidirectional=False, bint bias=True):
        cdef c.fs_rnn_config cfg
        cfg.cell = <c.fs_cell>cell
        cfg.input_size = input_size
        cfg.hidden_size = hidden_size
        cfg.num_layers = num_layers
        cfg.bidirectional = bidirectional
        cfg.bias = bias
        check(c.fs_rnn_create(&cfg, &self.ptr))
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.bidirectional, self.bias = num_layers, bidirectional, bias

    def __dealloc__(self):
        c.fs_rnn_free(self.ptr)

    def param_shape(self, int layer, int direction, int which):
        cdef size_t rows = 0, cols = 0
        check(c.fs_rnn_param_shape(self.ptr, layer, direction, <c.fs_param>which, &rows, &cols))
        if which < 2:
            return (int(rows), int(cols))
        return (int(rows),)

    def set_param(self, int layer, int direction, int which, const float[::1] data not None):
        cdef const float *p = fptr(data)
        cdef size_t n = data.shape[0]
        with nogil:
            st = c.fs_rnn_set_param(self.ptr, layer, direction, <c.fs_param>which, p, n)
        check(st)

    def get_param(self, int layer, int direction, int which):
        shape = self.param_shape(layer, direction, which)
        out = np.empty(shape, dtype=np.float32)
        cdef float[::1] flat = out.reshape(-1)
        cdef float *p = wptr(flat)
        cdef size_t n = flat.shape[0]
        with nogil:
            st = c.fs_rnn_get_param(self.ptr, layer, direction, <c.fs_param>which, p, n)
        check(st)
        return out

    def forward(self, const float[::1] x, int seq_len, int batch, bint batch_first,
                const int32_t[::1] lengths, const float[::1] h0, const float[::1] c0,
                float[::1] y, float[::1] h_n, float[::1] c_n):
        """Flat float32 buffers in and out; the C core checks every count."""
        cdef c.fs_seq_args a
        a.seq_len, a.batch, a.batch_first = seq_len, batch, batch_first
        a.x, a.x_count = fptr(x), count(x)
        a.lengths = NULL if lengths is None else (&lengths[0] if lengths.shape[0] > 0 else _empty_i)
        a.lengths_count = count(lengths)
        a.h0, a.h0_count = fptr(h0), count(h0)
        a.c0, a.c0_count = fptr(c0), count(c0)
        a.y, a.y_count = wptr(y), count(y)
        a.h_n, a.h_n_count = wptr(h_n), count(h_n)
        a.c_n, a.c_n_count = wptr(c_n), count(c_n)
        with nogil:
            st = c.fs_rnn_forward(self.ptr, &a)
        check(st)


cdef class Stream:
    """Step-by-step runner over a Model: states live in C between calls; a step
    allocates only its output array (none when `out` is given)."""
    cdef c.fs_rnn_stream *ptr
    cdef readonly Model model
    cdef readonly int batch
    cdef bint lstm
    cdef size_t n_in, n_out

    def __cinit__(self, Model model not None, int batch=1):
        check(c.fs_rnn_stream_create(model.ptr, batch, &self.ptr))
        self.model, self.batch = model, batch
        self.lstm = model.cell == c.FS_CELL_LSTM
        self.n_in = <size_t>batch * model.input_size
        self.n_out = <size_t>batch * model.hidden_size

    def __dealloc__(self):
        c.fs_rnn_stream_free(self.ptr)

    def reset(self):
        """Zero every state."""
        check(c.fs_rnn_stream_reset(self.ptr))

    def step(self, x, out=None):
        """One step: x [batch, input_size] (or [input_size] when batch is 1) ->
        the last layer's new h, [batch, hidden_size] (or [hidden_size]).
        `out`, a C-contiguous float32 array of that size, avoids the allocation."""
        cdef cnp.npy_intp dims[2]
        if not (cnp.PyArray_CheckExact(x) and cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
                and cnp.PyArray_IS_C_CONTIGUOUS(x)):
            x = np.ascontiguousarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x,
                                     dtype=np.float32)
        cdef int nd = cnp.PyArray_NDIM(x)
        if not (nd == 1 or (nd == 2 and cnp.PyArray_DIM(x, 0) == self.batch)):
            raise ValueError(f"x: expected shape ({self.batch}, {self.model.input_size}) or "
                             f"({self.model.input_size},) for batch 1, got {x.shape}")
        if out is None:
            dims[0] = self.batch
            dims[1] = self.model.hidden_size
            out = cnp.PyArray_EMPTY(nd, &dims[2 - nd], cnp.NPY_FLOAT32, 0)
        elif not (cnp.PyArray_CheckExact(out) and cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
                  and cnp.PyArray_IS_C_CONTIGUOUS(out) and cnp.PyArray_ISWRITEABLE(out)):
            raise ValueError(f"out: expected a writeable C-contiguous float32 ndarray, got {type(out).__name__}")
        cdef const float *xp = <const float *>cnp.PyArray_DATA(x)
        cdef float *yp = <float *>cnp.PyArray_DATA(out)
        cdef size_t nx = cnp.PyArray_SIZE(x), ny = cnp.PyArray_SIZE(out)
        cdef c.fs_status st
        with nogil:
            st = c.fs_rnn_stream_step(self.ptr, xp, nx, yp, ny)
        check(st)
        return out

    def get_state(self):
        """States as arrays [num_layers, batch, hidden]: h, or (h, c) for an LSTM."""
        shape = (self.model.num_layers, self.batch, self.model.hidden_size)
        h = np.empty(shape, dtype=np.float32)
        cell = np.empty(shape, dtype=np.float32) if self.lstm else None
        cdef float[::1] hv = h.reshape(-1)
        cdef float[::1] cv = None if cell is None else cell.reshape(-1)
        check(c.fs_rnn_stream_get_state(self.ptr, wptr(hv), count(hv), wptr(cv), count(cv)))
        return (h, cell) if self.lstm else h

    def set_state(self, h, cell=None):
        """Overwrite the states, each [num_layers, batch, hidden] (c: LSTM only);
        None leaves that state as it is."""
        shape = (self.model.num_layers, self.batch, self.model.hidden_size)
        arrays = []
        for name, v in (("h", h), ("c", cell)):
            if v is not None:
                v = np.ascontiguousarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v,
                                         dtype=np.float32)
                if v.shape != shape:
                    raise ValueError(f"{name}: expected shape {shape}, got {v.shape}")
                v = v.reshape(-1)
            arrays.append(v)
        cdef const float[::1] hv = arrays[0]
        cdef const float[::1] cv = arrays[1]
        check(c.fs_rnn_stream_set_state(self.ptr, fptr(hv), count(hv), fptr(cv), count(cv)))

    @property
    def state(self):
        """h, or (h, c) for an LSTM, each [num_layers, batch, hidden]; assignable."""
        return self.get_state()

    @state.setter
    def state(self, value):
        if self.lstm:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ValueError("state: expected a pair (h, c) for an LSTM")
            self.set_state(value[0], value[1])
        else:
            self.set_state(value)
