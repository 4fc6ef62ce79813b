"""Model files (``.fsq``): one layer -- its kind, configuration and weights -- in a
versioned, little-endian, checksummed file that the C library loads too; optionally a
linear output head (a fastseq.train.SequenceModel) and metadata, in optional sections
that the C library skips.

    fastseq.save(layer, "model.fsq")
    layer = fastseq.load("model.fsq")       # bit-exact round trip
    fastseq.save(train.SequenceModel(layer, head), "lm.fsq", metadata={"vocab": "abc"})
    model = fastseq.load("lm.fsq")          # a SequenceModel again, head included
    fastseq.io.read("lm.fsq").metadata      # {"vocab": "abc"}

The format is specified in docs/fsq-format.md. This module is pure Python (struct,
zlib's CRC-32, numpy): no torch, no compiled code. Reading checks every length
against the bytes present before using it; any malformed, truncated, corrupted or
unsupported file raises ValueError naming the problem and where it is.
"""
import os
import secrets
import struct
import zlib

import numpy as np

__all__ = ["save", "load", "read", "encode", "decode", "ModelFile", "FORMAT_VERSION"]

MAGIC = b"\x89FSQ\r\n\x1a\n"
FORMAT_VERSION = 1
HEADER_BYTES = 32
SECTION_HEADER_BYTES = 24
SEC_CONFIG, SEC_TENSOR = 1, 2
SEC_HEAD, SEC_HEAD_TENSOR, SEC_METADATA = 3, 4, 5  # optional: the C library skips them
FLAG_OPTIONAL = 1
VAL_INT32, VAL_FLOAT32, VAL_STRING, VAL_FLOAT64, VAL_NONE = 1, 2, 3, 4, 5
DTYPE_FLOAT32 = 1
DATA_ALIGN = 64
# Limits; a reader rejects anything beyond them (the C reader has the same).
MAX_SECTIONS = 4097
MAX_TENSORS = 4096
MAX_NAME = 128
MAX_STRING = 256
MAX_ENTRIES = 64
MAX_NDIM = 8
MAX_DIM = 0x7FFFFFFF

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
_SECTION_NAMES = {SEC_CONFIG: "config", SEC_TENSOR: "tensor", SEC_HEAD: "head",
                  SEC_HEAD_TENSOR: "head tensor", SEC_METADATA: "metadata"}
HEAD_KINDS = ("PerStepLinear", "LastStepLinear")  # classes of fastseq.train.heads


class ModelFile:
    """The decoded contents of a .fsq file: `kind` (the fastseq layer class name),
    `config` (constructor keyword arguments), `tensors` (name -> float32 array, in
    file order), `version` (format version) and `size` (bytes); `head` (None, or a
    Head: the output head's kind, config and tensors) and `metadata` (a dict, empty
    when the file has none)."""

    def __init__(self, kind, config, tensors, version=FORMAT_VERSION, size=None, raw=None,
                 head=None, metadata=None):
        self.kind, self.config, self.tensors = kind, dict(config), dict(tensors)
        self.version, self.size = version, size
        self.raw = raw  # the file's bytes, when decoded from them
        self.head = head
        self.metadata = dict(metadata or {})

    @property
    def param_count(self):
        """Parameters of the layer (the head's are `head.param_count`)."""
        return sum(int(a.size) for a in self.tensors.values())

    def __repr__(self):
        extra = "" if self.head is None else f", head={self.head!r}"
        extra += f", metadata={sorted(self.metadata)}" if self.metadata else ""
        return (f"ModelFile(kind={self.kind!r}, config={self.config!r}, "
                f"tensors={len(self.tensors)}, params={self.param_count}{extra})")


class Head:
    """An output head in a .fsq file: `kind` ("PerStepLinear" or "LastStepLinear"),
    `config` (in_features, out_features, bias) and `tensors` ("weight", and "bias")."""

    def __init__(self, kind, config, tensors):
        self.kind, self.config, self.tensors = kind, dict(config), dict(tensors)

    @property
    def param_count(self):
        return sum(int(a.size) for a in self.tensors.values())

    def __repr__(self):
        return f"Head(kind={self.kind!r}, config={self.config!r}, params={self.param_count})"


# ---- writing -------------------------------------------------------------------------

def _valid_name(name):
    return 0 < len(name) <= MAX_NAME and all(ch in _NAME_CHARS for ch in name)


def _pack_str(text, limit, what):
    raw = text.encode("ascii") if isinstance(text, str) and text.isascii() else None
    if raw is None or len(raw) > limit:
        raise ValueError(f"{what}: expected an ASCII string of at most {limit} bytes, got {text!r}")
    return struct.pack("<I", len(raw)) + raw


def _pack_value(key, value):
    if isinstance(value, (bool, np.bool_)):
        return struct.pack("<Ii", VAL_INT32, int(value))
    if isinstance(value, (int, np.integer)):
        if not -2**31 <= int(value) < 2**31:
            raise ValueError(f"config {key!r}: {value} does not fit an int32")
        return struct.pack("<Ii", VAL_INT32, int(value))
    if isinstance(value, (float, np.floating)):
        return struct.pack("<Id", VAL_FLOAT64, float(value))
    if isinstance(value, str):
        return struct.pack("<I", VAL_STRING) + _pack_str(value, MAX_STRING, f"config {key!r}")
    if value is None:
        return struct.pack("<I", VAL_NONE)
    raise ValueError(f"config {key!r}: a .fsq file stores int, bool, float, str and None values, "
                     f"got {type(value).__name__}")


def _section(stype, payload, flags=0):
    head = struct.pack("<IIQI", stype, flags, len(payload), 0)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def _pack_entries(entries, what):
    """u32 count, then (key, typed value) pairs: the body of config, head and metadata."""
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"{what}: at most {MAX_ENTRIES} entries, got {len(entries)}")
    out = struct.pack("<I", len(entries))
    for key, value in entries.items():
        if not isinstance(key, str) or not _valid_name(key):
            raise ValueError(f"{what} key {key!r}: expected letters, digits, '_' or '.'")
        out += _pack_str(key, MAX_NAME, f"{what} key") + _pack_value(key, value)
    return out


def _tensor_payload(name, value, payload_at):
    """A tensor section's payload, its data 64-byte aligned given the payload's file offset."""
    if not isinstance(name, str) or not _valid_name(name):
        raise ValueError(f"tensor name {name!r}: expected letters, digits, '_' or '.', "
                         f"at most {MAX_NAME} bytes")
    arr = np.ascontiguousarray(value, dtype="<f4")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim > MAX_NDIM or any(d > MAX_DIM for d in arr.shape):
        raise ValueError(f"tensor {name!r}: shape {arr.shape} is beyond the format's limits "
                         f"({MAX_NDIM} dimensions of at most {MAX_DIM})")
    head = (_pack_str(name, MAX_NAME, "tensor name") + struct.pack("<II", DTYPE_FLOAT32, arr.ndim)
            + struct.pack(f"<{arr.ndim}Q", *arr.shape))
    data_offset = len(head) + 8
    data_offset += -(payload_at + data_offset) % DATA_ALIGN
    head += struct.pack("<Q", data_offset)
    return head + bytes(data_offset - len(head)) + arr.tobytes()


def encode(kind, config, tensors, head=None, metadata=None):
    """The bytes of a .fsq file holding layer kind `kind` (a class name in
    fastseq.layers), constructor arguments `config` and float32 `tensors`
    (name -> array, written in the given order); optionally an output `head` (a Head)
    and `metadata` (a dict of int / bool / float / str / None values), each in
    optional sections after the layer's."""
    if not isinstance(kind, str) or not _valid_name(kind):
        raise ValueError(f"kind: expected a class name of letters, digits and '_', got {kind!r}")
    if len(tensors) > MAX_TENSORS:
        raise ValueError(f"tensors: at most {MAX_TENSORS}, got {len(tensors)}")
    sections = [_section(SEC_CONFIG, _pack_str(kind, MAX_NAME, "kind") + _pack_entries(config, "config"))]
    at = HEADER_BYTES + len(sections[0])

    def add(stype, payload, flags=0):
        nonlocal at
        sections.append(_section(stype, payload, flags))
        at += len(sections[-1])

    for name, value in tensors.items():
        add(SEC_TENSOR, _tensor_payload(name, value, at + SECTION_HEADER_BYTES))
    if head is not None:
        if head.kind not in HEAD_KINDS:
            raise ValueError(f"head kind: expected one of {', '.join(HEAD_KINDS)}, got {head.kind!r}")
        add(SEC_HEAD, _pack_str(head.kind, MAX_NAME, "head kind") + _pack_entries(head.config, "head config"),
            FLAG_OPTIONAL)
        for name, value in head.tensors.items():
            add(SEC_HEAD_TENSOR, _tensor_payload(name, value, at + SECTION_HEADER_BYTES), FLAG_OPTIONAL)
    if metadata:
        add(SEC_METADATA, _pack_entries(dict(metadata), "metadata"), FLAG_OPTIONAL)
    if len(sections) > MAX_SECTIONS:
        raise ValueError(f"a .fsq file holds at most {MAX_SECTIONS} sections, this model needs {len(sections)}")
    header = MAGIC + struct.pack("<IIQI", FORMAT_VERSION, len(sections), at, 0)
    header += struct.pack("<I", zlib.crc32(header))
    return b"".join([header] + sections)


def _layer_parts(layer):
    """(kind, config, tensors) of a fastseq layer (or a torch module, converted; or the
    recurrent layer of a SequenceModel)."""
    from . import layers

    if _is_sequence_model(layer):
        layer = layer.rnn
    if not isinstance(layer, layers._Recurrent) and type(layer).__module__.split(".")[0] in ("torch", "fastseq"):
        if type(layer).__module__.startswith(("torch", "fastseq.torch")):
            from .convert import from_torch
            layer = from_torch(layer)
    if not isinstance(layer, layers._Recurrent):
        raise TypeError(f"save: expected a fastseq sequence layer (fastseq.LSTM, GRU, RNN, FastRNN, "
                        f"FastGRNN), a fastseq.train.SequenceModel or the torch module of a layer, "
                        f"got {type(layer).__name__}")
    return type(layer).__name__, layer.config(), layer.state_dict()


def _is_sequence_model(obj):
    from .train.model import SequenceModel
    return isinstance(obj, SequenceModel)


def _head_part(model):
    """The Head of a SequenceModel (None for a layer, or a model without a head)."""
    if not _is_sequence_model(model) or model.head is None:
        return None
    head = model.head
    kind = type(head).__name__
    if kind not in HEAD_KINDS:
        raise TypeError(f"save: the head is a {kind}; a .fsq file stores {' or '.join(HEAD_KINDS)}")
    config = {"in_features": head.in_features, "out_features": head.out_features, "bias": head.has_bias}
    return Head(kind, config, head.state_dict())


def save(model, path, metadata=None):
    """Write `model` to `path` as a .fsq model file: a fastseq layer, a torch nn.LSTM /
    nn.GRU / nn.RNN, or a fastseq.train.SequenceModel (layer + linear head).
    `metadata`: an optional dict (at most 64 entries; keys of letters, digits, '_'
    and '.'; values int, bool, float, None, or ASCII str of at most 256 bytes), read
    back by `fastseq.io.read(path).metadata`. The file is written whole, then renamed
    into place."""
    data = encode(*_layer_parts(model), head=_head_part(model), metadata=metadata)
    path = os.fspath(path)
    fd, tmp = _create_exclusive(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
    return path


def _create_exclusive(path):
    """A new temporary file beside `path` (same file system, so the rename is atomic):
    an unpredictable name, created with O_EXCL (never through a file or symlink someone
    planted there) and the permissions a plain open() would give. Returns (fd, name)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = f"{path}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not create a temporary file beside it")


# ---- reading -------------------------------------------------------------------------

class _Reader:
    """Bounded little-endian reads over data[start:end]; `fail` raises ValueError."""

    def __init__(self, data, start, end, where):
        self.data, self.at, self.end, self.where = data, start, end, where

    def fail(self, what):
        raise ValueError(f"{self.where}: {what}")

    def take(self, n, what):
        if n > self.end - self.at:
            self.fail(f"truncated: {what} needs {n} bytes, {self.end - self.at} remain")
        start = self.at
        self.at += n
        return self.data[start:self.at]

    def u32(self, what):
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what):
        return struct.unpack("<Q", self.take(8, what))[0]

    def string(self, limit, what):
        n = self.u32(what)
        if n > limit:
            self.fail(f"{what}: length {n} exceeds the limit of {limit} bytes")
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.fail(f"{what}: not ASCII")


def _check_header(data, source):
    size = len(data)
    if size < len(MAGIC):
        raise ValueError(f"{source}: truncated: {size} bytes is too short for a .fsq model file "
                         f"(the header alone is {HEADER_BYTES} bytes)")
    if bytes(data[:8]) != MAGIC:
        raise ValueError(f"{source}: not a .fsq model file: wrong magic bytes at offset 0 "
                         f"(expected {MAGIC.hex(' ')}, got {bytes(data[:8]).hex(' ')}); "
                         "convert a checkpoint with `fastseq convert`")
    if size < HEADER_BYTES:
        raise ValueError(f"{source}: truncated: {size} bytes, the header alone is {HEADER_BYTES} bytes")
    version, sections, file_size, reserved, crc = struct.unpack_from("<IIQII", data, 8)
    if version != FORMAT_VERSION:
        raise ValueError(f"{source}: format version {version} is not supported: this fastseq reads "
                         f"version {FORMAT_VERSION} (a newer fastseq may read it)")
    actual = zlib.crc32(data[:28])
    if crc != actual:
        raise ValueError(f"{source}: header checksum mismatch (stored {crc:08x}, computed {actual:08x}): "
                         "the file is corrupted")
    if reserved != 0:
        raise ValueError(f"{source}: header: reserved field is {reserved}, expected 0")
    if file_size > size:
        raise ValueError(f"{source}: truncated: the header says {file_size} bytes, got {size}")
    if file_size < size:
        raise ValueError(f"{source}: {size - file_size} trailing bytes after the end of the model "
                         f"(the header says {file_size} bytes, got {size})")
    if not 1 <= sections <= MAX_SECTIONS:
        raise ValueError(f"{source}: header: section count {sections} out of range "
                         f"(expected 1..{MAX_SECTIONS})")
    return sections


def _read_entries(r, what):
    """The u32 count and (key, typed value) entries of a config, head or metadata payload."""
    n = r.u32(f"{what} entry count")
    if n > MAX_ENTRIES:
        r.fail(f"{what} entry count {n} exceeds the limit of {MAX_ENTRIES}")
    entries = {}
    for e in range(n):
        key = r.string(MAX_NAME, f"entry {e} key")
        if not _valid_name(key):
            r.fail(f"entry {e}: key {key!r} is malformed")
        if key in entries:
            r.fail(f"key {key!r} appears twice")
        vtype = r.u32(f"entry {key!r} value type")
        if vtype == VAL_INT32:
            entries[key] = struct.unpack("<i", r.take(4, f"entry {key!r}"))[0]
        elif vtype == VAL_FLOAT32:
            entries[key] = struct.unpack("<f", r.take(4, f"entry {key!r}"))[0]
        elif vtype == VAL_FLOAT64:
            entries[key] = struct.unpack("<d", r.take(8, f"entry {key!r}"))[0]
        elif vtype == VAL_STRING:
            entries[key] = r.string(MAX_STRING, f"entry {key!r}")
        elif vtype == VAL_NONE:
            entries[key] = None
        else:
            r.fail(f"entry {key!r}: value type {vtype} unknown")
    if r.at != r.end:
        r.fail(f"{r.end - r.at} unexpected bytes after the last entry")
    return entries


def _read_config(data, start, end, where, what="layer kind"):
    """(kind, entries) of a config or head section."""
    r = _Reader(data, start, end, where)
    kind = r.string(MAX_NAME, what)
    if not _valid_name(kind):
        r.fail(f"{what} {kind!r} is malformed")
    return kind, _read_entries(r, "config" if what == "layer kind" else "head")


def _read_tensor(data, start, end, where):
    r = _Reader(data, start, end, where)
    name = r.string(MAX_NAME, "tensor name")
    if not _valid_name(name):
        r.fail(f"tensor name {name!r} is malformed")
    r.where = f"{where} ({name!r})"
    dtype, ndim = r.u32("dtype"), r.u32("ndim")
    if dtype != DTYPE_FLOAT32:
        r.fail(f"dtype {dtype} is not supported (this fastseq reads 1 = float32)")
    if not 1 <= ndim <= MAX_NDIM:
        r.fail(f"{ndim} dimensions, expected 1..{MAX_NDIM}")
    length = end - start
    dims, count = [], 1
    for d in range(ndim):
        dim = r.u64("shape")
        if dim > MAX_DIM:
            r.fail(f"dimension {d} is {dim}, above the limit {MAX_DIM}")
        dims.append(dim)
        count *= dim
    data_offset = r.u64("data offset")
    header_end = r.at - start
    if not header_end <= data_offset <= length or data_offset + 4 * count != length:
        r.fail(f"data offset {data_offset} and shape {tuple(dims)} ({count} floats) do not fill "
               f"its {length}-byte section")
    if (start + data_offset) % DATA_ALIGN:
        r.fail(f"data at file offset {start + data_offset} is not {DATA_ALIGN}-byte aligned")
    if any(data[start + header_end:start + data_offset]):
        r.fail("padding before the data is not zero")
    arr = np.frombuffer(data, dtype="<f4", count=count, offset=start + data_offset)
    return name, arr.reshape(dims)


def decode(data, source="<bytes>"):
    """Parse the bytes of a .fsq file into a ModelFile (tensors are read-only views of
    `data`). Raises ValueError, naming `source`, for anything malformed."""
    data = memoryview(data).cast("B")  # slices below are views: no copies of the weights
    n_sections = _check_header(data, source)
    size, at = len(data), HEADER_BYTES
    kind, config, tensors = None, None, {}
    head, head_tensors, metadata = None, {}, None
    for i in range(n_sections):
        if size - at < SECTION_HEADER_BYTES:
            raise ValueError(f"{source}: truncated: section {i} of {n_sections} at offset {at} needs a "
                             f"{SECTION_HEADER_BYTES}-byte header, {size - at} bytes remain")
        stype, flags, length, reserved, crc = struct.unpack_from("<IIQII", data, at)
        payload = at + SECTION_HEADER_BYTES
        where = f"{source}: section {i} ({_SECTION_NAMES.get(stype, 'unknown')}) at offset {at}"
        if length > size - payload:
            raise ValueError(f"{where}: length {length} runs past the end of the file "
                             f"({size - payload} bytes remain)")
        actual = zlib.crc32(data[payload:payload + length], zlib.crc32(data[at:at + 20]))
        if crc != actual:
            raise ValueError(f"{where}: checksum mismatch (stored {crc:08x}, computed {actual:08x}): "
                             "the file is corrupted")
        if reserved != 0:
            raise ValueError(f"{where}: reserved field is {reserved}, expected 0")
        if i == 0 and stype != SEC_CONFIG:
            raise ValueError(f"{where}: expected the config section (type 1) first, got type {stype}")
        if stype in (SEC_CONFIG, SEC_TENSOR) and flags != 0:
            raise ValueError(f"{where}: flags must be 0, got {flags}")
        if stype in (SEC_HEAD, SEC_HEAD_TENSOR, SEC_METADATA) and flags != FLAG_OPTIONAL:
            raise ValueError(f"{where}: flags must be {FLAG_OPTIONAL} (optional), got {flags}")
        if stype == SEC_CONFIG:
            if i != 0:
                raise ValueError(f"{where}: a second config section")
            kind, config = _read_config(data, payload, payload + length, where)
        elif stype == SEC_TENSOR:
            name, arr = _read_tensor(data, payload, payload + length, where)
            if name in tensors:
                raise ValueError(f"{where}: tensor {name!r} appears twice")
            tensors[name] = arr
        elif stype == SEC_HEAD:
            if head is not None:
                raise ValueError(f"{where}: a second head section")
            head = _read_config(data, payload, payload + length, where, "head kind")
        elif stype == SEC_HEAD_TENSOR:
            if head is None:
                raise ValueError(f"{where}: a head tensor before the head section")
            name, arr = _read_tensor(data, payload, payload + length, where)
            if name in head_tensors:
                raise ValueError(f"{where}: head tensor {name!r} appears twice")
            head_tensors[name] = arr
        elif stype == SEC_METADATA:
            if metadata is not None:
                raise ValueError(f"{where}: a second metadata section")
            metadata = _read_entries(_Reader(data, payload, payload + length, where), "metadata")
        elif not flags & FLAG_OPTIONAL:
            raise ValueError(f"{where}: section type {stype} is not known to this fastseq and not "
                             "marked optional; the file may come from a newer version")
        at = payload + length
    if at != size:
        raise ValueError(f"{source}: {size - at} bytes after the last section (offset {at}) are not "
                         "part of any section")
    if head is not None:
        head = Head(head[0], head[1], head_tensors)
    return ModelFile(kind, config, tensors, FORMAT_VERSION, size, data, head, metadata)


def read(path):
    """Decode the .fsq file at `path` into a ModelFile (kind, config, tensors)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return decode(data, path)


def _layer_class(kind, source):
    from . import layers

    cls = getattr(layers, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, layers._Recurrent)):
        known = sorted(n for n, c in vars(layers).items()
                       if isinstance(c, type) and issubclass(c, layers._Recurrent) and not n.startswith("_"))
        raise ValueError(f"{source}: layer kind {kind!r} is not known to this fastseq (it knows "
                         f"{', '.join(known)}); the file may come from a newer version")
    return cls


def build(model_file, source="<model>"):
    """The fastseq layer a ModelFile describes, weights loaded.

    Before anything is allocated, the C library's reader checks the configuration
    against the tensors present (fs_model_inspect): every tensor the layer needs, with
    its exact shape, must be in the file, so a file cannot make fastseq build a model
    larger than itself."""
    from . import _core

    cls = _layer_class(model_file.kind, source)
    raw = model_file.raw
    if raw is None:
        raw = encode(model_file.kind, model_file.config, model_file.tensors)
    try:
        _core.model_inspect(raw)
    except (ValueError, RuntimeError, MemoryError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    try:
        layer = cls(**model_file.config)
    except TypeError as exc:
        raise ValueError(f"{source}: config {model_file.config} does not fit fastseq.{cls.__name__}: "
                         f"{exc}") from None
    except ValueError as exc:
        raise ValueError(f"{source}: invalid configuration: {exc}") from None
    try:
        layer.load_state_dict(model_file.tensors)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    if model_file.head is None:
        return layer
    return _build_head_model(layer, model_file.head, source)


def _build_head_model(layer, head, source):
    """SequenceModel(layer, head), the head's shapes checked against the tensors present
    before anything is allocated."""
    from .train import heads
    from .train.model import SequenceModel

    where = f"{source}: head"
    if head.kind not in HEAD_KINDS:
        raise ValueError(f"{where}: kind {head.kind!r} is not known to this fastseq (it knows "
                         f"{', '.join(HEAD_KINDS)}); the file may come from a newer version")
    cfg = dict(head.config)
    unknown = sorted(set(cfg) - {"in_features", "out_features", "bias"})
    if unknown:
        raise ValueError(f"{where}: unknown config key {unknown[0]!r}")
    for key in ("in_features", "out_features"):
        v = cfg.get(key)
        if type(v) is not int or v < 1:
            raise ValueError(f"{where}: {key}: expected an int32 >= 1, got {v!r}")
    bias = cfg.get("bias", 1)
    if bias not in (0, 1) or type(bias) is not int:
        raise ValueError(f"{where}: bias: expected 0 or 1, got {bias!r}")
    want_in = layer.num_directions * layer.output_features
    if cfg["in_features"] != want_in:
        raise ValueError(f"{where}: in_features {cfg['in_features']} does not match the layer's "
                         f"{want_in} output features")
    shapes = {"weight": (cfg["out_features"], cfg["in_features"])}
    if bias:
        shapes["bias"] = (cfg["out_features"],)
    for name in head.tensors:
        if name not in shapes:
            raise ValueError(f"{where}: unexpected tensor {name!r} (a {head.kind} with bias={bias} has "
                             f"{', '.join(shapes)})")
    for name, shape in shapes.items():
        if name not in head.tensors:
            raise ValueError(f"{where}: tensor {name!r} is missing")
        got = tuple(head.tensors[name].shape)
        if got != shape:
            raise ValueError(f"{where}: tensor {name!r}: expected shape {list(shape)}, got {list(got)}")
    h = getattr(heads, head.kind)(cfg["in_features"], cfg["out_features"], bias=bool(bias), seed=0)
    h.load_state_dict(head.tensors)
    try:
        return SequenceModel(layer, h)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def load(path):
    """Read the .fsq model file at `path` and return what was saved, weights
    bit-identical: the fastseq layer (LSTM, GRU, RNN, ...), or a
    fastseq.train.SequenceModel (layer + head) when the file holds a head.
    Metadata: `fastseq.io.read(path).metadata`."""
    path = os.fspath(path)
    return build(read(path), path)
