# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython binding of the fastseq C library: owners of C handles, typed memoryviews
in, every C call under `with nogil`. Validation of sizes is the C core's job."""
from libc.stdint cimport INT32_MAX, int32_t, int64_t
from cpython.pythread cimport PyThread_get_thread_ident

import time

import errno
import os
import threading

import numpy as np

cimport numpy as cnp
cimport fastseq._cfastseq as c

from fastseq._arrays import as_float32

cnp.import_array()

CELL_RNN_TANH = c.FS_CELL_RNN_TANH
CELL_RNN_RELU = c.FS_CELL_RNN_RELU
CELL_LSTM = c.FS_CELL_LSTM
CELL_GRU = c.FS_CELL_GRU
CELL_FASTRNN = c.FS_CELL_FASTRNN
CELL_FASTGRNN = c.FS_CELL_FASTGRNN
CELL_UGRNN = c.FS_CELL_UGRNN
PARAM_COUNT = c.FS_PARAM_COUNT
# The C library's names of its enums (fs_param_name, fs_cell_name, fs_act_name)
PARAM_NAMES = tuple(c.fs_param_name(<c.fs_param>p).decode() for p in range(c.FS_PARAM_COUNT))
CELL_NAMES = {cell: c.fs_cell_name(<c.fs_cell>cell).decode()
              for cell in range(c.FS_CELL_RNN_TANH, c.FS_CELL_UGRNN + 1)}
DTYPES = {c.fs_dtype_name(d).decode(): d for d in range(4)}  # fs_dtype by name
ACTIVATIONS = {c.fs_act_name(<c.fs_act>a).decode(): a for a in range(c.FS_ACT_TANH, c.FS_ACT_HARD_TANH + 1)}
# the gate roles' choices (fs_rnn_config.act holds 1 + these; 0: the role's usual one)
ROLE_ACTIVATIONS = {c.fs_act_name(<c.fs_act>a).decode(): a
                    for a in range(c.FS_ACT_TANH, c.FS_ACT_HARD_TANH + 1)}
# The .fsq format's limits (FS_MODEL_MAX_*), which the writer must respect
MODEL_LIMITS = {"sections": c.FS_MODEL_MAX_SECTIONS, "tensors": c.FS_MODEL_MAX_TENSORS,
                "name": c.FS_MODEL_MAX_NAME, "string": c.FS_MODEL_MAX_STRING,
                "entries": c.FS_MODEL_MAX_ENTRIES, "ndim": c.FS_MODEL_MAX_NDIM, "dim": c.FS_MODEL_MAX_DIM}

_ISAS = {"generic": c.FS_ISA_GENERIC, "avx2": c.FS_ISA_AVX2, "avx512": c.FS_ISA_AVX512,
         "neon": c.FS_ISA_NEON}


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


# ---- thread safety (README "Threads"; fastseq.h conventions) ---------------------------
# C calls run with the GIL released. A gate lets many calls read one object (a model's
# weights; the process-wide ISA and thread count) while no one changes it, and lets a
# change wait until running calls are done and hold new ones back until it is complete.
# Entering and leaving are a few integer operations under the GIL (cheap on hot paths);
# only a thread that has to wait sleeps, in short naps.

cdef class Gate:
    """Readers-writer discipline under the GIL: `with gate.write():` excludes every
    reader (other threads' calls) until it ends; reentrant for the writing thread."""
    cdef int readers, depth
    cdef bint writer
    cdef unsigned long owner

    def write(self):
        return _Writing(self)


cdef inline bint _held_by_me(Gate g):
    return g.writer and g.owner == PyThread_get_thread_ident()


cdef int _enter(Gate g) except -1:
    """Start a read: wait while another thread writes (or waits to write)."""
    while g.writer and not _held_by_me(g):
        time.sleep(0.0002)
    g.readers += 1
    return 0


cdef inline void _leave(Gate g) noexcept:
    g.readers -= 1


cdef class _Writing:
    cdef Gate g

    def __cinit__(self, Gate g):
        self.g = g

    def __enter__(self):
        g = self.g
        if _held_by_me(g):
            g.depth += 1
            return self
        while g.writer:
            time.sleep(0.0002)
        g.writer, g.owner, g.depth = True, PyThread_get_thread_ident(), 1
        try:
            while g.readers:  # calls already running finish first; new ones wait
                time.sleep(0.0002)
        except BaseException:  # e.g. KeyboardInterrupt while waiting: leave it open
            g.writer, g.depth = False, 0
            raise
        return self

    def __exit__(self, *exc):
        g = self.g
        g.depth -= 1
        if g.depth == 0:
            g.writer = False
        return False


# Guards the process-wide settings (ISA, thread count): every C call that computes reads.
cdef Gate _settings = Gate()


cdef int _enter_model(Gate model_gate) except -1:
    """A call reading a model's weights and the settings."""
    _enter(_settings)
    try:
        _enter(model_gate)
    except BaseException:
        _leave(_settings)
        raise
    return 0


cdef inline void _leave_model(Gate model_gate) noexcept:
    _leave(model_gate)
    _leave(_settings)


cdef int _claim(bint *busy, str what) except -1:
    """One caller at a time on a stream or tape (their state would be interleaved)."""
    if busy[0]:
        raise RuntimeError(f"{what}: already in use by another thread; a {what} serves one "
                           f"call at a time (make one per thread)")
    busy[0] = True
    return 0


def isa():
    """Name of the kernel level in use ("generic", "avx2", "avx512" on x86-64; "neon" on aarch64)."""
    return c.fs_isa_name(c.fs_active_isa()).decode()


def set_isa(name):
    """Force a kernel level for this process: "generic", "avx2", "avx512" or "neon"."""
    if not isinstance(name, str) or name not in _ISAS:
        raise ValueError(f"isa: expected one of {sorted(_ISAS)}, got {name!r}")
    with _settings.write():  # running calls finish on the old kernels first
        check(c.fs_set_isa(_ISAS[name]))


def available_isas():
    """Kernel levels this CPU and build can run, lowest first (the active level is left alone)."""
    return [name for name, level in _ISAS.items() if c.fs_isa_supported(level)]


def c_version():
    """The C library's version string, e.g. ``"0.1.0"``."""
    return c.fs_version_string().decode()


# Stands in for an empty array: a given-but-empty buffer must reach the C core
# as a non-NULL pointer with count 0 (an error), not as NULL (meaning "absent").
cdef float _empty_f[1]
cdef int32_t _empty_i[1]


def set_num_threads(n):
    """Maximum threads for later calls, at most MAX_THREADS; 0 restores the default
    (FASTSEQ_NUM_THREADS or OpenMP's). Small problems run on one thread whatever the
    setting."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)):
        raise TypeError(f"num_threads: expected an integer, got {n!r}")
    if not 0 <= n <= c.FS_MAX_THREADS:
        raise ValueError(f"num_threads: expected 0 (the default) to {c.FS_MAX_THREADS}, got {n}")
    with _settings.write():  # a running call keeps the count it started with
        check(c.fs_set_num_threads(<int32_t>n))


MAX_THREADS = c.FS_MAX_THREADS


def get_num_threads():
    """The maximum threads later calls may use."""
    return c.fs_get_num_threads()



# Buffers passed to the C core: numpy arrays of any shape, C-contiguous float32 (lengths:
# int32), or None; the C core checks every element count. No copies and no memoryview
# set-up: these calls sit on hot paths.

cdef int _fbuf(object a, float **ptr, size_t *n, bint write, str name) except -1:
    if a is None:
        ptr[0], n[0] = NULL, 0
        return 0
    if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISNOTSWAPPED(a)):
        raise ValueError(f"{name}: expected a C-contiguous native-byte-order float32 ndarray, "
                         f"got {type(a).__name__}"
                         + (f" of dtype {a.dtype.str}" if hasattr(a, "dtype") else ""))
    if write and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}: expected a writeable array")
    n[0] = cnp.PyArray_SIZE(a)
    ptr[0] = <float *>cnp.PyArray_DATA(a) if n[0] > 0 else _empty_f
    return 0


cdef int _ibuf(object a, const int32_t **ptr, size_t *n) except -1:
    if a is None:
        ptr[0], n[0] = NULL, 0
        return 0
    if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(a) == cnp.NPY_INT32
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISNOTSWAPPED(a)):
        raise ValueError("lengths: expected a C-contiguous native-byte-order int32 ndarray")
    n[0] = cnp.PyArray_SIZE(a)
    ptr[0] = <const int32_t *>cnp.PyArray_DATA(a) if n[0] > 0 else _empty_i
    return 0


cdef int _seq_args(c.fs_seq_args *a, x, int seq_len, int batch, bint batch_first, lengths, h0,
                   c0, y, h_n, c_n) except -1:
    """Fill fs_seq_args from numpy buffers (see _fbuf)."""
    cdef float *p
    a.seq_len, a.batch, a.batch_first = seq_len, batch, batch_first
    _fbuf(x, &p, &a.x_count, False, "x")
    a.x = p
    _ibuf(lengths, &a.lengths, &a.lengths_count)
    _fbuf(h0, &p, &a.h0_count, False, "h0")
    a.h0 = p
    _fbuf(c0, &p, &a.c0_count, False, "c0")
    a.c0 = p
    _fbuf(y, &a.y, &a.y_count, True, "y")
    _fbuf(h_n, &a.h_n, &a.h_n_count, True, "h_n")
    _fbuf(c_n, &a.c_n, &a.c_n_count, True, "c_n")
    return 0


cdef class Model:
    """A recurrent model held by the C library (fs_rnn)."""
    cdef c.fs_rnn *ptr
    cdef readonly int cell, input_size, hidden_size, num_layers, features
    cdef readonly bint bidirectional, bias
    cdef readonly Gate gate  # calls read the weights; set_param, set_params write them

    def __cinit__(self, int cell=0, int input_size=1, int hidden_size=1, int num_layers=1,
                  bint bidirectional=False, bint bias=True, int proj_size=0, bint peephole=False,
                  bint coupled=False, bint reset_before=False, int update_act=0, int gate_act=0,
                  int w_rank=0, int u_rank=0, act=(0, 0, 0), act_alpha=(0.0, 0.0, 0.0),
                  act_beta=(0.0, 0.0, 0.0), float clip=0.0, bint residual=False,
                  bint _wrapping=False):
        cdef c.fs_rnn_config cfg
        if _wrapping:  # _wrap fills in a model the C library made
            return
        cfg.cell = <c.fs_cell>cell
        cfg.input_size = input_size
        cfg.hidden_size = hidden_size
        cfg.num_layers = num_layers
        cfg.bidirectional = bidirectional
        cfg.bias = bias
        cfg.proj_size = proj_size
        cfg.peephole = peephole
        cfg.coupled = coupled
        cfg.reset_before = reset_before
        cfg.update_act = update_act
        cfg.gate_act = gate_act
        cfg.w_rank = w_rank
        cfg.u_rank = u_rank
        for i in range(3):
            cfg.act[i], cfg.act_alpha[i], cfg.act_beta[i] = act[i], act_alpha[i], act_beta[i]
        cfg.clip = clip
        cfg.dtype = 0
        cfg.group_size = 0
        cfg.residual = residual
        self.gate = Gate()
        check(c.fs_rnn_create(&cfg, &self.ptr))
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.bidirectional, self.bias = num_layers, bidirectional, bias
        self.features = proj_size if proj_size else hidden_size

    def __dealloc__(self):
        c.fs_rnn_free(self.ptr)

    def config(self):
        """The fs_rnn_config the model was created with, as a dict."""
        cdef c.fs_rnn_config cfg
        check(c.fs_rnn_get_config(self.ptr, &cfg))
        return cfg

    @property
    def dtype(self):
        """The weights' element type (fs_dtype_name): "f32", "int8", "int4" or "bf16"."""
        cdef c.fs_rnn_config cfg
        check(c.fs_rnn_get_config(self.ptr, &cfg))
        return c.fs_dtype_name(cfg.dtype).decode()

    def quantize(self, dtype, int group_size=0):
        """A new Model: this fp32 model's weights quantised (fs_rnn_quantize); dtype a name
        of DTYPES."""
        cdef c.fs_rnn *ptr = NULL
        cdef int32_t code = DTYPES.get(dtype, -1)
        cdef c.fs_status st
        _enter(self.gate)
        try:
            with nogil:
                st = c.fs_rnn_quantize(self.ptr, code, group_size, &ptr)
        finally:
            _leave(self.gate)
        check(st)
        return _wrap(ptr)

    def get_param_raw(self, int layer, int direction, int which):
        """A quantised model's weight matrix in its stored form (fs_rnn_get_param_raw), as bytes."""
        cdef size_t n = 0
        cdef c.fs_status st
        check(c.fs_rnn_param_raw_size(self.ptr, layer, direction, <c.fs_param>which, &n))
        out = bytearray(n)
        cdef unsigned char[::1] view = out
        _enter(self.gate)
        try:
            with nogil:
                st = c.fs_rnn_get_param_raw(self.ptr, layer, direction, <c.fs_param>which, &view[0], n)
        finally:
            _leave(self.gate)
        check(st)
        return bytes(out)

    def param_shape(self, int layer, int direction, int which):
        """PyTorch shape of one parameter: 2-D for matrices, 1-D for vectors and scalars."""
        cdef size_t rows = 0, cols = 0
        check(c.fs_rnn_param_shape(self.ptr, layer, direction, <c.fs_param>which, &rows, &cols))
        if c.fs_param_ndim(<c.fs_param>which) == 2:
            return (int(rows), int(cols))
        return (int(rows),)

    def has_param(self, int layer, int direction, int which):
        """Whether this configuration has the parameter."""
        cdef size_t rows = 0, cols = 0
        return c.fs_rnn_param_shape(self.ptr, layer, direction, <c.fs_param>which, &rows, &cols) == c.FS_OK

    def set_param(self, int layer, int direction, int which, data):
        """Copy one parameter in (C-contiguous float32, PyTorch layout; count checked in C)."""
        cdef float *p
        cdef size_t n
        cdef c.fs_status st
        if data is None:
            raise ValueError("data: expected an array, got None")
        _fbuf(data, &p, &n, False, "data")
        with self.gate.write():
            with nogil:
                st = c.fs_rnn_set_param(self.ptr, layer, direction, <c.fs_param>which, p, n)
        check(st)

    def get_param(self, int layer, int direction, int which):
        shape = self.param_shape(layer, direction, which)
        out = np.empty(shape, dtype=np.float32)
        cdef float *p
        cdef size_t n
        cdef c.fs_status st
        _fbuf(out, &p, &n, True, "out")
        _enter(self.gate)
        try:
            with nogil:
                st = c.fs_rnn_get_param(self.ptr, layer, direction, <c.fs_param>which, p, n)
        finally:
            _leave(self.gate)
        check(st)
        return out

    def forward(self, x, int seq_len, int batch, bint batch_first, lengths, h0, c0,
                bint unbatched=False):
        """x, h0, c0: C-contiguous float32 arrays of any shape (lengths: int32) or None;
        the C core checks every element count. Returns new arrays (y, h_n, c_n): y
        [T, B, D*R] ([B, T, D*R] batch-first), h_n [L*D, B, R], c_n [L*D, B, H] (LSTM)
        or None; unbatched (batch 1): without the batch axis."""
        cdef c.fs_seq_args a
        cdef c.fs_status st
        cdef cnp.npy_intp dims[3]
        cdef int D = 2 if self.bidirectional else 1
        cdef int nd = 2 if unbatched else 3
        if unbatched:
            dims[0], dims[1] = seq_len, D * self.features
        else:
            dims[0], dims[1], dims[2] = (batch, seq_len, D * self.features) if batch_first else \
                (seq_len, batch, D * self.features)
        y = cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)
        dims[0], dims[1], dims[2] = self.num_layers * D, batch, self.features
        if unbatched:
            dims[1] = self.features
        h_n = cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)
        c_n = None
        if self.cell == c.FS_CELL_LSTM:
            dims[nd - 1] = self.hidden_size
            c_n = cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT32, 0)
        _seq_args(&a, x, seq_len, batch, batch_first, lengths, h0, c0, y, h_n, c_n)
        _enter_model(self.gate)
        try:
            with nogil:
                st = c.fs_rnn_forward(self.ptr, &a)
        finally:
            _leave_model(self.gate)
        check(st)
        return y, h_n, c_n

    def forward_plain(self, x, bint batch_first):
        """forward without states or lengths for an x that needs no conversion: a
        C-contiguous float32 ndarray [T, B, I] ([B, T, I] batch-first) or [T, I]
        (unbatched), T and B >= 1. None for any other x: the caller's general path
        converts it or says what is wrong. (The common call, with no Python-level
        checks: they cost more than a small model's whole forward.)"""
        if not (cnp.PyArray_CheckExact(x) and cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
                and cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISNOTSWAPPED(x)):
            return None
        cdef int nd = cnp.PyArray_NDIM(x)
        if (nd != 2 and nd != 3) or cnp.PyArray_DIM(x, nd - 1) != self.input_size:
            return None
        cdef cnp.npy_intp T = cnp.PyArray_DIM(x, 0), B = 1
        if nd == 3:
            B = cnp.PyArray_DIM(x, 1)
            if batch_first:
                T, B = B, T
        if T < 1 or B < 1 or T > INT32_MAX or B > INT32_MAX:
            return None
        return self.forward(x, <int>T, <int>B, batch_first and nd == 3, None, None, None, nd == 2)


cdef class Stream:
    """Step-by-step runner over a Model: states live in C between calls; a step
    allocates only its output array (none when `out` is given)."""
    cdef c.fs_rnn_stream *ptr
    cdef readonly Model model
    cdef readonly int batch
    cdef bint lstm, busy
    cdef size_t n_in, n_out

    def __cinit__(self, Model model not None, int batch=1):
        _enter(_settings)  # its scratch is sized for the thread count allowed now
        try:
            check(c.fs_rnn_stream_create(model.ptr, batch, &self.ptr))
        finally:
            _leave(_settings)
        self.model, self.batch = model, batch
        self.lstm = model.cell == c.FS_CELL_LSTM
        self.n_in = <size_t>batch * model.input_size
        self.n_out = <size_t>batch * model.features

    def __dealloc__(self):
        c.fs_rnn_stream_free(self.ptr)

    def reset(self):
        """Zero every state."""
        _claim(&self.busy, "stream")
        try:
            check(c.fs_rnn_stream_reset(self.ptr))
        finally:
            self.busy = False

    def step(self, x, out=None):
        """One step: x [batch, input_size] (or [input_size] when batch is 1) ->
        the last layer's new h, [batch, hidden_size] (or [hidden_size]).
        `out`, a C-contiguous float32 array of that shape, avoids the allocation."""
        cdef cnp.npy_intp dims[2]
        if not (cnp.PyArray_CheckExact(x) and cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
                and cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISNOTSWAPPED(x)):
            x = as_float32(x, "x")
        cdef int nd = cnp.PyArray_NDIM(x)
        if not (nd == 1 or (nd == 2 and cnp.PyArray_DIM(x, 0) == self.batch)):
            raise ValueError(f"x: expected shape ({self.batch}, {self.model.input_size}) or "
                             f"({self.model.input_size},) for batch 1, got {x.shape}")
        if out is None:
            dims[0] = self.batch
            dims[1] = self.model.features
            out = cnp.PyArray_EMPTY(nd, &dims[2 - nd], cnp.NPY_FLOAT32, 0)
        elif not (cnp.PyArray_CheckExact(out) and cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
                  and cnp.PyArray_IS_C_CONTIGUOUS(out) and cnp.PyArray_ISWRITEABLE(out)
                  and cnp.PyArray_ISNOTSWAPPED(out)):
            raise ValueError(f"out: expected a writeable C-contiguous native-byte-order float32 "
                             f"ndarray, got {type(out).__name__}"
                             + (f" of dtype {out.dtype.str}" if hasattr(out, "dtype") else ""))
        elif (cnp.PyArray_NDIM(out) != nd or cnp.PyArray_DIM(out, nd - 1) != self.model.features
              or (nd == 2 and cnp.PyArray_DIM(out, 0) != self.batch)):
            # the same shape as the returned array: one of a different shape but the same
            # size would be filled in an order its shape does not say
            expected = (self.batch, self.model.features)[2 - nd:]
            raise ValueError(f"out: expected shape {expected} (like x's {x.shape}), got {out.shape}")
        cdef const float *xp = <const float *>cnp.PyArray_DATA(x)
        cdef float *yp = <float *>cnp.PyArray_DATA(out)
        cdef size_t nx = cnp.PyArray_SIZE(x), ny = cnp.PyArray_SIZE(out)
        cdef c.fs_status st
        cdef Gate gate = self.model.gate
        _claim(&self.busy, "stream")
        try:
            _enter_model(gate)
            try:
                with nogil:
                    st = c.fs_rnn_stream_step(self.ptr, xp, nx, yp, ny)
            finally:
                _leave_model(gate)
        finally:
            self.busy = False
        check(st)
        return out

    def get_state(self):
        """States: h [num_layers, batch, features], or (h, c) for an LSTM."""
        L, B = self.model.num_layers, self.batch
        h = np.empty((L, B, self.model.features), dtype=np.float32)
        cell = np.empty((L, B, self.model.hidden_size), dtype=np.float32) if self.lstm else None
        cdef float *hp
        cdef float *cp
        cdef size_t nh, nc
        _fbuf(h, &hp, &nh, True, "h")
        _fbuf(cell, &cp, &nc, True, "c")
        _claim(&self.busy, "stream")
        try:
            check(c.fs_rnn_stream_get_state(self.ptr, hp, nh, cp, nc))
        finally:
            self.busy = False
        return (h, cell) if self.lstm else h

    def set_state(self, h, cell=None):
        """Overwrite the states, h [num_layers, batch, features] and c [num_layers,
        batch, hidden] (LSTM only); None leaves that state as it is."""
        L, B = self.model.num_layers, self.batch
        arrays = []
        for name, v, shape in (("h", h, (L, B, self.model.features)),
                               ("c", cell, (L, B, self.model.hidden_size))):
            if v is not None:
                v = as_float32(v, name)
                if v.shape != shape:
                    raise ValueError(f"{name}: expected shape {shape}, got {v.shape}")
            arrays.append(v)
        cdef float *hp
        cdef float *cp
        cdef size_t nh, nc
        _fbuf(arrays[0], &hp, &nh, False, "h")
        _fbuf(arrays[1], &cp, &nc, False, "c")
        _claim(&self.busy, "stream")
        try:
            check(c.fs_rnn_stream_set_state(self.ptr, hp, nh, cp, nc))
        finally:
            self.busy = False

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


# ---- 6. Training (backward) ------------------------------------------------------------

def param_count(Model model not None):
    """Floats in the model's flat parameter vector (layer, direction, fs_param order)."""
    cdef size_t n = 0
    check(c.fs_rnn_param_count(model.ptr, &n))
    return int(n)


def param_offset(Model model not None, int layer, int direction, int which):
    """Start of one parameter in the flat vector."""
    cdef size_t off = 0
    check(c.fs_rnn_param_offset(model.ptr, layer, direction, <c.fs_param>which, &off))
    return int(off)


def get_params(Model model not None, out):
    """Copy every parameter into `out` (float32, param_count elements), flat order."""
    cdef float *p
    cdef size_t n
    _fbuf(out, &p, &n, True, "out")
    if p == NULL:
        raise ValueError("out: expected an array, got None")
    _enter(model.gate)
    try:
        with nogil:
            st = c.fs_rnn_get_params(model.ptr, p, n)
    finally:
        _leave(model.gate)
    check(st)


def set_params(Model model not None, data):
    """Set every parameter from `data` (float32, param_count elements), flat order."""
    cdef float *p
    cdef size_t n
    _fbuf(data, &p, &n, False, "data")
    if p == NULL:
        raise ValueError("data: expected an array, got None")
    with model.gate.write():
        with nogil:
            st = c.fs_rnn_set_params(model.ptr, p, n)
    check(st)


cdef class Tape:
    """A training forward's record (fs_rnn_tape) for sequences of up to `seq_len`
    steps and `batch` sequences; keeps its Model alive."""
    cdef c.fs_rnn_tape *ptr
    cdef readonly Model model
    cdef readonly int seq_len, batch
    cdef bint busy

    def __cinit__(self, Model model not None, int seq_len, int batch):
        check(c.fs_rnn_tape_create(model.ptr, seq_len, batch, &self.ptr))
        self.model, self.seq_len, self.batch = model, seq_len, batch

    def __dealloc__(self):
        c.fs_rnn_tape_free(self.ptr)

    def forward(self, x, int seq_len, int batch, bint batch_first, lengths, h0, c0, y, h_n, c_n):
        """fs_rnn_train_forward: arrays as Model.forward (any shape, counts checked in C)."""
        cdef c.fs_seq_args a
        _seq_args(&a, x, seq_len, batch, batch_first, lengths, h0, c0, y, h_n, c_n)
        cdef Gate gate = self.model.gate
        _claim(&self.busy, "tape")
        try:
            _enter_model(gate)
            try:
                with nogil:
                    st = c.fs_rnn_train_forward(self.model.ptr, &a, self.ptr)
            finally:
                _leave_model(gate)
        finally:
            self.busy = False
        check(st)

    def backward(self, grad_y, grad_h_n, grad_c_n, grad_x, grad_h0, grad_c0, grad_params,
                 bint accumulate=False):
        """fs_rnn_backward over the recorded forward; None: zero input / not wanted."""
        cdef c.fs_grad_args g
        cdef float *p
        _fbuf(grad_y, &p, &g.grad_y_count, False, "grad_y")
        g.grad_y = p
        _fbuf(grad_h_n, &p, &g.grad_h_n_count, False, "grad_h_n")
        g.grad_h_n = p
        _fbuf(grad_c_n, &p, &g.grad_c_n_count, False, "grad_c_n")
        g.grad_c_n = p
        _fbuf(grad_x, &g.grad_x, &g.grad_x_count, True, "grad_x")
        _fbuf(grad_h0, &g.grad_h0, &g.grad_h0_count, True, "grad_h0")
        _fbuf(grad_c0, &g.grad_c0, &g.grad_c0_count, True, "grad_c0")
        _fbuf(grad_params, &g.grad_params, &g.grad_params_count, True, "grad_params")
        g.accumulate = accumulate
        cdef Gate gate = self.model.gate
        _claim(&self.busy, "tape")
        try:
            _enter_model(gate)
            try:
                with nogil:
                    st = c.fs_rnn_backward(self.model.ptr, self.ptr, &g)
            finally:
                _leave_model(gate)
        finally:
            self.busy = False
        check(st)

    def get_state(self, int t, h, c_state=None):
        """The recorded state before step t into h (and c_state), each [L, B, H]."""
        cdef float *hp
        cdef float *cp
        cdef size_t nh, nc
        _fbuf(h, &hp, &nh, True, "h")
        _fbuf(c_state, &cp, &nc, True, "c")
        _claim(&self.busy, "tape")
        try:
            check(c.fs_rnn_tape_get_state(self.ptr, t, hp, nh, cp, nc))
        finally:
            self.busy = False


def clip_grad_norm(grads, float max_norm):
    """Scale `grads` (float32, in place) to L2 norm <= max_norm; returns the norm before."""
    cdef float *p
    cdef size_t n
    cdef float norm = 0
    _fbuf(grads, &p, &n, True, "grads")
    with nogil:
        st = c.fs_clip_grad_norm(p, n, max_norm, &norm)
    check(st)
    return norm


def clip_grad_value(grads, float clip):
    """Clamp `grads` (float32, in place) to [-clip, clip]."""
    cdef float *p
    cdef size_t n
    _fbuf(grads, &p, &n, True, "grads")
    with nogil:
        st = c.fs_clip_grad_value(p, n, clip)
    check(st)


def sgd_step(params, grads, velocity, float lr, float momentum=0, float weight_decay=0):
    """torch.optim.SGD's update on flat float32 arrays, in place."""
    cdef float *p
    cdef float *g
    cdef float *v
    cdef size_t n_p, n_g, n_v
    _fbuf(params, &p, &n_p, True, "params")
    _fbuf(grads, &g, &n_g, False, "grads")
    _fbuf(velocity, &v, &n_v, True, "velocity")
    if n_g != n_p or (v != NULL and n_v != n_p):
        raise ValueError(f"sgd_step: params, grads, velocity sizes differ ({n_p}, {n_g}, {n_v})")
    with nogil:
        st = c.fs_sgd_step(p, g, v, n_p, lr, momentum, weight_decay)
    check(st)


def adam_step(params, grads, m, v, long long step, float lr, float beta1, float beta2, float eps,
              float weight_decay=0):
    """torch.optim.Adam's update number `step` (from 1) on flat float32 arrays, in place."""
    cdef float *p
    cdef float *g
    cdef float *mp
    cdef float *vp
    cdef size_t n_p, n_g, n_m, n_v
    _fbuf(params, &p, &n_p, True, "params")
    _fbuf(grads, &g, &n_g, False, "grads")
    _fbuf(m, &mp, &n_m, True, "m")
    _fbuf(v, &vp, &n_v, True, "v")
    if not (n_g == n_p and n_m == n_p and n_v == n_p):
        raise ValueError(f"adam_step: params, grads, m, v sizes differ ({n_p}, {n_g}, {n_m}, {n_v})")
    with nogil:
        st = c.fs_adam_step(p, g, mp, vp, n_p, step, lr, beta1, beta2, eps, weight_decay)
    check(st)


# ---- model files (.fsq) and the sizes of caller-memory objects (issue 6) ----------------

cdef unsigned char _empty_b[1]


def model_inspect(const unsigned char[::1] data not None):
    """Validate the bytes of a .fsq file with the C loader (fs_model_inspect) and return
    its description: format_version, kind, config (fs_rnn_config as a dict), batch_first,
    tensor_count, param_count. Malformed files raise ValueError with the C detail."""
    cdef c.fs_model_desc d
    cdef const unsigned char *p = &data[0] if data.shape[0] > 0 else _empty_b
    cdef size_t n = data.shape[0]
    with nogil:
        st = c.fs_model_inspect(p, n, &d)
    check(st)
    config = d.config
    return {"format_version": d.format_version, "kind": d.kind.decode("ascii"), "config": config,
            "batch_first": bool(d.batch_first), "tensor_count": d.tensor_count,
            "param_count": d.param_count, "tree": d.model_type == c.FS_MODEL_TREE}


cdef Model _wrap(c.fs_rnn *ptr):
    """A Model owning ptr (a loaded model), its fields read from the C configuration."""
    cdef c.fs_rnn_config cfg
    cdef Model m = Model.__new__(Model, _wrapping=True)
    c.fs_rnn_get_config(ptr, &cfg)
    m.ptr = ptr
    m.gate = Gate()  # __cinit__ returned before making one
    m.cell, m.input_size, m.hidden_size, m.num_layers = cfg.cell, cfg.input_size, cfg.hidden_size, cfg.num_layers
    m.bidirectional, m.bias = cfg.bidirectional, cfg.bias
    m.features = cfg.proj_size if cfg.proj_size else cfg.hidden_size
    return m


def model_load(const unsigned char[::1] data not None):
    """A Model created by the C loader (fs_model_load) from the bytes of a .fsq file."""
    cdef c.fs_rnn *ptr = NULL
    cdef const unsigned char *p = &data[0] if data.shape[0] > 0 else _empty_b
    cdef size_t n = data.shape[0]
    with nogil:
        st = c.fs_model_load(p, n, &ptr)
    check(st)
    return _wrap(ptr)


def read_model_file(path):
    """The bytes of the .fsq file at `path`, read by the C library (fs_model_read_file:
    never more than its header states). OSError when it cannot be opened; ValueError
    for a file that is not a .fsq file, truncated or with a bad header."""
    cdef bytes cpath = os.fsencode(path)
    cdef const char *cp = cpath
    cdef void *data = NULL
    cdef size_t size = 0
    with nogil:
        st = c.fs_model_read_file(cp, &data, &size)
    if st == c.FS_ERR_IO:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, c.fs_last_error().decode("utf-8", "replace"), os.fspath(path))
        raise OSError(c.fs_last_error().decode("utf-8", "replace"))
    check(st)
    try:
        return (<const char *>data)[:size]
    finally:
        c.fs_model_data_free(data)


cdef object _entry_value(c.fs_model_entry *e):
    if e.type == c.FS_VALUE_INT32:
        return e.i
    if e.type == c.FS_VALUE_FLOAT32 or e.type == c.FS_VALUE_FLOAT64:
        return e.f
    if e.type == c.FS_VALUE_STRING:
        return e.s.decode("ascii")
    return None


def model_metadata(const unsigned char[::1] data not None):
    """The metadata entries of a .fsq file (fs_model_metadata) as a dict, in file order."""
    cdef c.fs_model_entry entries[c.FS_MODEL_MAX_ENTRIES]
    cdef const unsigned char *p = &data[0] if data.shape[0] > 0 else _empty_b
    cdef size_t n = data.shape[0], count = 0
    with nogil:
        st = c.fs_model_metadata(p, n, entries, c.FS_MODEL_MAX_ENTRIES, &count)
    check(st)
    return {entries[i].key.decode("ascii"): _entry_value(&entries[i]) for i in range(count)}


def model_head(const unsigned char[::1] data not None):
    """The output head of a .fsq file (fs_model_head): None, or (kind, config, tensors)
    with config {in_features, out_features, bias} and tensors {"weight", "bias"}."""
    cdef c.fs_model_head_desc d
    cdef const unsigned char *p = &data[0] if data.shape[0] > 0 else _empty_b
    cdef size_t n = data.shape[0]
    cdef float *wp
    cdef float *bp
    cdef size_t nw, nb
    with nogil:
        st = c.fs_model_head(p, n, &d, NULL, 0, NULL, 0)
    check(st)
    if d.kind[0] == 0:
        return None
    weight = np.empty((d.out_features, d.in_features), dtype=np.float32)
    bias = np.empty(d.out_features if d.bias else 0, dtype=np.float32)
    _fbuf(weight, &wp, &nw, True, "weight")
    _fbuf(bias, &bp, &nb, True, "bias")
    with nogil:
        st = c.fs_model_head(p, n, &d, wp, nw, bp, nb)
    check(st)
    tensors = {"weight": weight}
    if d.bias:
        tensors["bias"] = bias
    config = {"in_features": d.in_features, "out_features": d.out_features, "bias": d.bias}
    return d.kind.decode("ascii"), config, tensors


def model_weights(Model model not None):
    """A copy of the model's packed weight block (fs_rnn_weights) as bytes."""
    cdef const void *w = NULL
    cdef size_t n = 0
    check(c.fs_rnn_weights(model.ptr, &w, &n))
    return (<const char *>w)[:n]


def model_header_size(Model model not None):
    """Bytes of a model's header over caller-owned weights (fs_rnn_init_static_weights)."""
    cdef c.fs_rnn_config cfg
    cdef size_t weights = 0, header = 0
    check(c.fs_rnn_get_config(model.ptr, &cfg))
    check(c.fs_rnn_weights_size(&cfg, &weights, &header))
    return header


def model_memory_size(Model model not None):
    """Bytes fs_rnn_init_static needs for a model of this configuration."""
    cdef c.fs_rnn_config cfg
    cdef size_t n = 0
    check(c.fs_rnn_get_config(model.ptr, &cfg))
    check(c.fs_rnn_memory_size(&cfg, &n))
    return n


def stream_memory_size(Model model not None, int batch):
    """Bytes fs_rnn_stream_init_static needs (for the thread count allowed now)."""
    cdef size_t n = 0
    check(c.fs_rnn_stream_memory_size(model.ptr, batch, &n))
    return n


def forward_workspace_size(Model model not None, int seq_len, int batch):
    """Bytes of workspace fs_rnn_forward_ws needs (for the thread count allowed now)."""
    cdef size_t n = 0
    check(c.fs_rnn_forward_workspace_size(model.ptr, seq_len, batch, &n))
    return n


def forward_workspace_min_size(Model model not None, int seq_len, int batch):
    """Bytes of the smallest workspace fs_rnn_forward_ws runs in (a step's input
    projection at a time; for the thread count allowed now)."""
    cdef size_t n = 0
    check(c.fs_rnn_forward_workspace_min_size(model.ptr, seq_len, batch, &n))
    return n


# ---- 6. Training: heads and losses (sizes checked here: the C calls take shapes) -------

cdef inline size_t _size(a):
    return 0 if a is None else cnp.PyArray_SIZE(a)


def linear_forward(x, weight, bias, y):
    """y[n, :] = x[n, :] weight^T + bias. weight [out, in]; x: rows*in floats; y: rows*out."""
    cdef float *xp
    cdef float *wp
    cdef float *bp
    cdef float *yp
    cdef size_t nx, nw, nb, ny
    _fbuf(x, &xp, &nx, False, "x")
    _fbuf(weight, &wp, &nw, False, "weight")
    _fbuf(bias, &bp, &nb, False, "bias")
    _fbuf(y, &yp, &ny, True, "y")
    if xp == NULL or wp == NULL or yp == NULL or weight.ndim != 2:
        raise ValueError("linear_forward: x, a 2-D weight and y are required")
    cdef size_t out = weight.shape[0], in_ = weight.shape[1]
    if in_ == 0 or nx % in_ or ny != nx // in_ * out or (bp != NULL and nb != out):
        raise ValueError(f"linear_forward: sizes x {nx}, weight ({out}, {in_}), bias {nb}, y {ny} disagree")
    with nogil:
        st = c.fs_linear_forward(nx // in_, in_, out, xp, nx, wp, nw, bp, nb, yp, ny)
    check(st)


def linear_backward(x, weight, grad_y, grad_x, grad_weight, grad_bias):
    """Backward of linear_forward: grad_x overwritten; grad_weight, grad_bias added to."""
    cdef float *xp
    cdef float *wp
    cdef float *gyp
    cdef float *gxp
    cdef float *gwp
    cdef float *gbp
    cdef size_t nx, nw, ngy, ngx, ngw, ngb
    _fbuf(x, &xp, &nx, False, "x")
    _fbuf(weight, &wp, &nw, False, "weight")
    _fbuf(grad_y, &gyp, &ngy, False, "grad_y")
    _fbuf(grad_x, &gxp, &ngx, True, "grad_x")
    _fbuf(grad_weight, &gwp, &ngw, True, "grad_weight")
    _fbuf(grad_bias, &gbp, &ngb, True, "grad_bias")
    if xp == NULL or wp == NULL or gyp == NULL or weight.ndim != 2:
        raise ValueError("linear_backward: x, a 2-D weight and grad_y are required")
    cdef size_t out = weight.shape[0], in_ = weight.shape[1]
    cdef size_t rows = nx // in_ if in_ else 0
    if (in_ == 0 or nx % in_ or ngy != rows * out or (gxp != NULL and ngx != nx)
            or (gwp != NULL and ngw != nw) or (gbp != NULL and ngb != out)):
        raise ValueError(f"linear_backward: sizes x {nx}, weight ({out}, {in_}), grad_y {ngy}, "
                         f"grad_x {ngx}, grad_weight {ngw}, grad_bias {ngb} disagree")
    with nogil:
        st = c.fs_linear_backward(rows, in_, out, xp, nx, wp, nw, gyp, ngy, gxp, ngx, gwp, ngw,
                                  gbp, ngb)
    check(st)


def mse_loss(pred, target, mask, grad, size_t cols):
    """Mean squared error over rows of `cols` values; mask: one weight per row or None;
    grad (pred's size, or None) receives the gradient. Returns the loss."""
    cdef float *pp
    cdef float *tp
    cdef float *mp
    cdef float *gp
    cdef size_t n_p, n_t, n_m, n_g
    cdef float loss = 0
    _fbuf(pred, &pp, &n_p, False, "pred")
    _fbuf(target, &tp, &n_t, False, "target")
    _fbuf(mask, &mp, &n_m, False, "mask")
    _fbuf(grad, &gp, &n_g, True, "grad")
    if pp == NULL or tp == NULL or cols == 0 or n_p % cols or n_t != n_p or \
            (mp != NULL and n_m != n_p // cols) or (gp != NULL and n_g != n_p):
        raise ValueError(f"mse_loss: sizes pred {n_p}, target {n_t}, mask {n_m}, grad {n_g} "
                         f"disagree (rows of {cols})")
    with nogil:
        st = c.fs_mse_loss(n_p // cols, cols, pp, n_p, tp, n_t, mp, n_m, gp, n_g, &loss)
    check(st)
    return loss


def xent_loss(logits, target, mask, grad, size_t classes):
    """Softmax cross-entropy over rows of `classes` logits against int32 class indices."""
    cdef float *lp
    cdef const int32_t *tp
    cdef float *mp
    cdef float *gp
    cdef size_t n_l, n_t, n_m, n_g
    cdef float loss = 0
    _fbuf(logits, &lp, &n_l, False, "logits")
    _ibuf(target, &tp, &n_t)
    _fbuf(mask, &mp, &n_m, False, "mask")
    _fbuf(grad, &gp, &n_g, True, "grad")
    if lp == NULL or tp == NULL or classes == 0 or n_l % classes or n_t != n_l // classes or \
            (mp != NULL and n_m != n_t) or (gp != NULL and n_g != n_l):
        raise ValueError(f"xent_loss: sizes logits {n_l}, target {n_t}, mask {n_m}, grad {n_g} "
                         f"disagree (rows of {classes})")
    with nogil:
        st = c.fs_softmax_xent_loss(n_t, classes, lp, n_l, tp, n_t, mp, n_m, gp, n_g, &loss)
    check(st)
    return loss


# ---- tree networks (fastseq.h section 7) -------------------------------------------------

TREE_CHILD_SUM = c.FS_TREE_CHILD_SUM
TREE_NARY = c.FS_TREE_NARY
TREE_RECURSIVE = c.FS_TREE_RECURSIVE
TREE_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # fs_tree_param order


cdef int _parent_buf(object a, const int64_t **ptr, size_t *n) except -1:
    if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(a) == cnp.NPY_INT64
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISNOTSWAPPED(a)):
        raise ValueError("parent: expected a C-contiguous native-byte-order int64 ndarray")
    n[0] = cnp.PyArray_SIZE(a)
    ptr[0] = <const int64_t *>cnp.PyArray_DATA(a)
    return 0


def _aligned_bytes(size_t n):
    """A writeable uint8 array of n bytes starting on a 64-byte boundary (FS_ALIGN)."""
    raw = np.empty(n + 64, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + n]


cdef class TreeModel:
    """A tree network held by the C library (fs_tree)."""
    cdef c.fs_tree *ptr
    cdef readonly int kind, input_size, hidden_size, arity
    cdef readonly bint relu
    cdef readonly Gate gate
    cdef object _local  # per thread: the inference workspace, kept between calls

    def __cinit__(self, int kind, int input_size, int hidden_size, int arity=0, bint relu=False):
        cdef c.fs_tree_config cfg
        cfg.kind, cfg.input_size, cfg.hidden_size = kind, input_size, hidden_size
        cfg.arity, cfg.relu = arity, relu
        self.gate = Gate()
        self._local = threading.local()
        check(c.fs_tree_create(&cfg, &self.ptr))
        self.kind, self.input_size, self.hidden_size, self.arity, self.relu = \
            kind, input_size, hidden_size, arity, relu

    def __dealloc__(self):
        c.fs_tree_free(self.ptr)

    def param_shape(self, int which):
        """PyTorch shape of parameter `which` (TREE_PARAMS order)."""
        cdef int64_t rows = 0, cols = 0
        check(c.fs_tree_param_shape(self.ptr, <c.fs_tree_param>which, &rows, &cols))
        return (int(rows), int(cols)) if which < 2 else (int(rows),)

    def set_param(self, int which, data):
        """Copy one parameter in (C-contiguous float32; count checked in C)."""
        cdef float *p
        cdef size_t n
        cdef c.fs_status st
        if data is None:
            raise ValueError("data: expected an array, got None")
        _fbuf(data, &p, &n, False, "data")
        with self.gate.write():
            with nogil:
                st = c.fs_tree_set_param(self.ptr, <c.fs_tree_param>which, p, n)
        check(st)

    def get_param(self, int which):
        """A copy of one parameter."""
        out = np.empty(self.param_shape(which), dtype=np.float32)
        cdef float *p
        cdef size_t n
        _fbuf(out, &p, &n, True, "out")
        _enter(self.gate)
        try:
            check(c.fs_tree_get_param(self.ptr, <c.fs_tree_param>which, p, n))
        finally:
            _leave(self.gate)
        return out

    def forward(self, x, parent, bint train=False):
        """x [N, I] float32, parent [N] int64 (both C-contiguous). Returns (h, c, workspace):
        c is None for a recursive network; the workspace holds the tape when train."""
        cdef const int64_t *pp
        cdef size_t npar, nx, nh, nc = 0, nbytes = 0
        cdef float *px
        cdef float *ph
        cdef float *pc = NULL
        cdef void *pws
        cdef c.fs_status st
        cdef int32_t n
        _parent_buf(parent, &pp, &npar)
        if npar < 1 or npar > INT32_MAX:
            raise ValueError(f"parent: expected 1 to {INT32_MAX} nodes, got {npar}")
        n = <int32_t>npar
        _fbuf(x, &px, &nx, False, "x")
        h = np.empty((n, self.hidden_size), dtype=np.float32)
        cc = None if self.kind == c.FS_TREE_RECURSIVE else np.empty((n, self.hidden_size), dtype=np.float32)
        _fbuf(h, &ph, &nh, True, "h")
        _fbuf(cc, &pc, &nc, True, "c")
        _enter_model(self.gate)
        try:
            check(c.fs_tree_workspace_size(self.ptr, n, train, &nbytes))
            ws = None if train else getattr(self._local, "ws", None)
            if ws is None or <size_t>ws.size < nbytes:  # a tape owns its workspace
                ws = _aligned_bytes(nbytes)
                if not train:
                    self._local.ws = ws
            nbytes = ws.size
            pws = cnp.PyArray_DATA(ws)
            with nogil:
                st = c.fs_tree_forward(self.ptr, n, px, nx, pp, npar, ph, nh, pc, nc, pws, nbytes, train)
        finally:
            _leave_model(self.gate)
        check(st)
        return h, cc, ws

    def backward(self, x, parent, dh, dc, ws):
        """Backward of forward(x, parent, train=True) whose workspace is `ws`: from dh, dc
        ([N, H] float32; dc None: zero) returns (dx, grad_weight_ih, grad_weight_hh, grad_bias)."""
        cdef const int64_t *pp
        cdef size_t npar, nx, ndh, ndc, ndx, n1, n2, n3
        cdef float *px
        cdef float *pdh
        cdef float *pdc
        cdef float *pdx
        cdef float *g1
        cdef float *g2
        cdef float *g3
        cdef c.fs_status st
        _parent_buf(parent, &pp, &npar)
        if npar < 1 or npar > INT32_MAX:
            raise ValueError(f"parent: expected 1 to {INT32_MAX} nodes, got {npar}")
        _fbuf(x, &px, &nx, False, "x")
        _fbuf(dh, &pdh, &ndh, False, "dh")
        _fbuf(dc, &pdc, &ndc, False, "dc")
        dx = np.empty((npar, self.input_size), dtype=np.float32)
        gw_ih = np.empty(self.param_shape(0), dtype=np.float32)
        gw_hh = np.empty(self.param_shape(1), dtype=np.float32)
        gb = np.empty(self.param_shape(2), dtype=np.float32)
        _fbuf(dx, &pdx, &ndx, True, "dx")
        _fbuf(gw_ih, &g1, &n1, True, "grad_weight_ih")
        _fbuf(gw_hh, &g2, &n2, True, "grad_weight_hh")
        _fbuf(gb, &g3, &n3, True, "grad_bias")
        if not (cnp.PyArray_Check(ws) and cnp.PyArray_TYPE(ws) == cnp.NPY_UINT8
                and cnp.PyArray_IS_C_CONTIGUOUS(ws)):
            raise ValueError("ws: expected the workspace a training forward returned")
        cdef void *pws = cnp.PyArray_DATA(ws)
        cdef size_t nws = cnp.PyArray_SIZE(ws)
        _enter_model(self.gate)
        try:
            with nogil:
                st = c.fs_tree_backward(self.ptr, <int32_t>npar, px, nx, pp, npar, pdh, ndh, pdc, ndc,
                                        pdx, ndx, g1, n1, g2, n2, g3, n3, pws, nws)
        finally:
            _leave_model(self.gate)
        check(st)
        return dx, gw_ih, gw_hh, gb


def tree_inspect(const unsigned char[::1] data not None):
    """The tree network's configuration in a .fsq file (fs_tree_inspect): kind, input_size,
    hidden_size, arity, relu. ValueError (the C detail) for anything else."""
    cdef c.fs_tree_config cfg
    cdef const unsigned char *p = &data[0] if data.shape[0] > 0 else _empty_b
    cdef size_t n = data.shape[0]
    with nogil:
        st = c.fs_tree_inspect(p, n, &cfg)
    check(st)
    return cfg


def tree_load(const unsigned char[::1] data not None):
    """A TreeModel created by the C loader (fs_tree_load) from the bytes of a .fsq file."""
    cdef c.fs_tree *ptr = NULL
    cdef c.fs_tree_config cfg
    cdef const unsigned char *p = &data[0] if data.shape[0] > 0 else _empty_b
    cdef size_t n = data.shape[0]
    with nogil:
        st = c.fs_tree_inspect(p, n, &cfg)
        if st == c.FS_OK:
            st = c.fs_tree_load(p, n, &ptr)
    check(st)
    # a TreeModel of the file's shape, its own (zero) model swapped for the loaded one
    cdef TreeModel m
    try:
        m = TreeModel(cfg.kind, cfg.input_size, cfg.hidden_size, cfg.arity, cfg.relu)
    except BaseException:
        c.fs_tree_free(ptr)
        raise
    c.fs_tree_free(m.ptr)
    m.ptr = ptr
    return m


# ---- sequence to sequence: decode loops in C (fastseq.h section 8) ---------------------

cdef int _decoder(c.fs_decoder *d, Model model, int vocab, head_weight, head_bias, embedding) except -1:
    cdef float *p
    cdef size_t n
    d.model, d.vocab = model.ptr, vocab
    _fbuf(head_weight, &p, &n, False, "head weight")
    d.head_weight, d.head_weight_count = p, n
    _fbuf(head_bias, &p, &n, False, "head bias")
    d.head_bias, d.head_bias_count = p, n
    _fbuf(embedding, &p, &n, False, "embedding")
    d.embedding, d.embedding_count = p, n
    return 0


def decode_tokens(Model model not None, int vocab, head_weight, head_bias, embedding, h0, c0,
                  int batch, int max_len, int bos, int eos, int beam_size=0, float length_penalty=0.0):
    """Greedy (beam_size 0) or beam decoding in C; returns tokens [batch, max_len] int32,
    lengths [batch] int32 and scores [batch] float32 (log-probabilities)."""
    cdef c.fs_decoder d
    cdef float *hp
    cdef float *cp
    cdef size_t nh, nc
    cdef c.fs_status st
    _decoder(&d, model, vocab, head_weight, head_bias, embedding)
    _fbuf(h0, &hp, &nh, False, "h0")
    _fbuf(c0, &cp, &nc, False, "c0")
    tokens = np.empty((max(batch, 0), max(max_len, 0)), dtype=np.int32)
    lengths = np.empty(max(batch, 0), dtype=np.int32)
    scores = np.empty(max(batch, 0), dtype=np.float32)
    cdef int32_t *tp = <int32_t *>cnp.PyArray_DATA(tokens)
    cdef int32_t *lp = <int32_t *>cnp.PyArray_DATA(lengths)
    cdef float *sp = <float *>cnp.PyArray_DATA(scores)
    cdef size_t nt = tokens.size, nl = lengths.size, ns = scores.size
    cdef Gate gate = model.gate
    _enter_model(gate)  # the weights, and the thread count the stream inside is sized by
    try:
        with nogil:
            if beam_size == 0:
                st = c.fs_decode_greedy(&d, batch, hp, nh, cp, nc, max_len, bos, eos, tp, nt, lp, nl,
                                        sp, ns)
            else:
                st = c.fs_decode_beam(&d, batch, beam_size, hp, nh, cp, nc, max_len, bos, eos,
                                      length_penalty, tp, nt, lp, nl, sp, ns)
    finally:
        _leave_model(gate)
    check(st)
    return tokens, lengths, scores


def decode_continuous(Model model not None, int vocab, head_weight, head_bias, h0, c0, start,
                      int batch, int max_len, int stop_channel):
    """Continuous decoding in C: outputs [batch, max_len, vocab] float32, lengths [batch] int32."""
    cdef c.fs_decoder d
    cdef float *hp
    cdef float *cp
    cdef float *xp
    cdef size_t nh, nc, nx
    cdef c.fs_status st
    _decoder(&d, model, vocab, head_weight, head_bias, None)
    _fbuf(h0, &hp, &nh, False, "h0")
    _fbuf(c0, &cp, &nc, False, "c0")
    _fbuf(start, &xp, &nx, False, "start")
    outputs = np.empty((max(batch, 0), max(max_len, 0), max(vocab, 0)), dtype=np.float32)
    lengths = np.empty(max(batch, 0), dtype=np.int32)
    cdef float *op = <float *>cnp.PyArray_DATA(outputs)
    cdef int32_t *lp = <int32_t *>cnp.PyArray_DATA(lengths)
    cdef size_t no = outputs.size, nl = lengths.size
    cdef Gate gate = model.gate
    _enter_model(gate)
    try:
        with nogil:
            st = c.fs_decode_continuous(&d, batch, hp, nh, cp, nc, xp, nx, max_len, stop_channel,
                                        op, no, lp, nl)
    finally:
        _leave_model(gate)
    check(st)
    return outputs, lengths
