"""Model files (``.fsq``): one layer -- its cell, configuration and weights -- or one
tree network (fastseq.TreeLSTM, fastseq.RecursiveNN) in a versioned, little-endian,
checksummed file; optionally a linear output head (a fastseq.train.SequenceModel, or a
fastseq.train.TreeModel's head on each root) and metadata, in optional sections.

    fastseq.save(layer, "model.fsq")
    layer = fastseq.load("model.fsq")       # bit-exact round trip
    tree.save("tree.fsq"); fastseq.load("tree.fsq")  # a TreeLSTM or RecursiveNN
    fastseq.save(train.SequenceModel(layer, head), "lm.fsq", metadata={"vocab": "abc"})
    model = fastseq.load("lm.fsq")          # a SequenceModel again, head included
    fastseq.io.read("lm.fsq").metadata      # {"vocab": "abc"}

The format is specified in docs/fsq-format.md. Python writes it (struct, zlib's
CRC-32, numpy); the C library is its one reader: `load`, `read` and `decode` go through
fs_model_read_file, fs_model_inspect, fs_model_load (trees: fs_tree_inspect,
fs_tree_load), fs_model_head and fs_model_metadata, so a file Python accepts is exactly a file C accepts. Any malformed,
truncated, corrupted or unsupported file raises ValueError naming the problem and where
it is.
"""
import os
import secrets
import struct
import zlib

import numpy as np

from . import _activations, _core

__all__ = ["save", "load", "read", "encode", "decode", "layer_parts", "tree_parts", "ModelFile", "Head",
           "FORMAT_VERSION"]

MAGIC = b"\x89FSQ\r\n\x1a\n"
FORMAT_VERSION = 2   # what fp32 layers are written as; a quantised layer needs version 3
QUANTISED_VERSION = 3
HEADER_BYTES = 32
SECTION_HEADER_BYTES = 24
SEC_CONFIG, SEC_TENSOR = 1, 2
SEC_HEAD, SEC_HEAD_TENSOR, SEC_METADATA = 3, 4, 5  # optional: fs_model_load skips them
FLAG_OPTIONAL = 1
VAL_INT32, VAL_FLOAT32, VAL_STRING, VAL_FLOAT64, VAL_NONE = 1, 2, 3, 4, 5
DTYPE_FLOAT32 = 1
TENSOR_DTYPES = {"int8": 2, "int4": 3, "bf16": 4}  # version 3: a quantised matrix's stored form


class QuantisedTensor:
    """A quantised weight matrix as a .fsq tensor stores it: `dtype` ("int8", "int4",
    "bf16"), torch's `shape` [rows, cols], and `data`, the C library's stored form
    (fs_rnn_get_param_raw: the scales, then the codes)."""

    def __init__(self, dtype, shape, data):
        self.dtype, self.shape, self.data = dtype, tuple(shape), bytes(data)
DATA_ALIGN = 64
# What the writer refuses to write: the C reader's limits (FS_MODEL_MAX_*)
MAX_SECTIONS, MAX_TENSORS, MAX_NAME, MAX_STRING, MAX_ENTRIES, MAX_NDIM, MAX_DIM = (
    _core.MODEL_LIMITS[k] for k in ("sections", "tensors", "name", "string", "entries", "ndim", "dim"))

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
HEAD_KINDS = ("PerStepLinear", "LastStepLinear")  # classes of fastseq.train.heads


class ModelFile:
    """What a .fsq file holds, as the C reader describes it: `kind` (the cell, C's
    fs_cell_name: "LSTM", "RNN_TANH", ...; a tree network: "TREE_CHILD_SUM",
    "TREE_NARY", "TREE_RECURSIVE", and `tree` is True), `config` (the fs_rnn_config
    fields and batch_first; a tree: its file keys), `version` (format version), `size`
    (bytes), `param_count` (floats of the layer), `head` (None, or a Head) and `metadata`
    (a dict, empty when the file has none); `raw`: the file's bytes."""

    def __init__(self, kind, config, version, size, param_count, raw, head=None, metadata=None, tree=False):
        self.kind, self.config, self.tree = kind, dict(config), tree
        self.version, self.size, self.param_count = version, size, param_count
        self.raw = raw
        self.head = head
        self.metadata = dict(metadata or {})

    def __repr__(self):
        extra = "" if self.head is None else f", head={self.head!r}"
        extra += f", metadata={sorted(self.metadata)}" if self.metadata else ""
        return (f"ModelFile(kind={self.kind!r}, config={self.config!r}, version={self.version}, "
                f"params={self.param_count}{extra})")


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


def _section(stype, payload, crc_seed, flags=0):
    head = struct.pack("<IIQI", stype, flags, len(payload), 0)
    crc = zlib.crc32(payload, zlib.crc32(head, crc_seed))
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
    if isinstance(value, QuantisedTensor):
        dtype, shape, data = TENSOR_DTYPES[value.dtype], value.shape, value.data
    else:
        arr = np.ascontiguousarray(value, dtype="<f4")
        dtype, shape, data = DTYPE_FLOAT32, arr.shape or (1,), arr.tobytes()
    if len(shape) > MAX_NDIM or any(d > MAX_DIM for d in shape):
        raise ValueError(f"tensor {name!r}: shape {shape} is beyond the format's limits "
                         f"({MAX_NDIM} dimensions of at most {MAX_DIM})")
    head = (_pack_str(name, MAX_NAME, "tensor name") + struct.pack("<II", dtype, len(shape))
            + struct.pack(f"<{len(shape)}Q", *shape))
    data_offset = len(head) + 8
    data_offset += -(payload_at + data_offset) % DATA_ALIGN
    head += struct.pack("<Q", data_offset)
    return head + bytes(data_offset - len(head)) + data


def encode(kind, config, tensors, head=None, metadata=None):
    """The bytes of a .fsq file (format version 2; 3 when `config` has a `dtype`) holding a
    layer of cell `kind` (fs_cell_name: "LSTM", "RNN_TANH", ...), configuration `config`
    (fs_rnn_config field names and batch_first; activations and dtype by name) and
    `tensors` (torch's state_dict names -> float32 arrays, or QuantisedTensor for a
    quantised layer's matrices; written in the given order); optionally an output `head` (a Head)
    and `metadata` (a dict of int / bool / float / str / None values), each in optional
    sections after the layer's. Every section's checksum starts from the file id, the
    CRC-32 of all payloads, so a section taken from another file does not verify."""
    if not isinstance(kind, str) or not _valid_name(kind):
        raise ValueError(f"kind: expected a cell name of letters, digits and '_', got {kind!r}")
    if len(tensors) > MAX_TENSORS:
        raise ValueError(f"tensors: at most {MAX_TENSORS}, got {len(tensors)}")
    parts = [(SEC_CONFIG, _pack_str(kind, MAX_NAME, "kind") + _pack_entries(config, "config"), 0)]
    at = HEADER_BYTES + SECTION_HEADER_BYTES + len(parts[0][1])

    def add(stype, payload, flags=0):
        nonlocal at
        parts.append((stype, payload, flags))
        at += SECTION_HEADER_BYTES + len(payload)

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
    if len(parts) > MAX_SECTIONS:
        raise ValueError(f"a .fsq file holds at most {MAX_SECTIONS} sections, this model needs {len(parts)}")
    file_id = 0
    for _stype, payload, _flags in parts:
        file_id = zlib.crc32(payload, file_id)
    seed = zlib.crc32(struct.pack("<I", file_id))
    version = QUANTISED_VERSION if config.get("dtype", "f32") != "f32" else FORMAT_VERSION
    header = MAGIC + struct.pack("<IIQI", version, len(parts), at, file_id)
    header += struct.pack("<I", zlib.crc32(header))
    return b"".join([header] + [_section(t, p, seed, f) for t, p, f in parts])


def sequence_layer(model):
    """The fastseq sequence layer behind what `save` and `export_c` take: a fastseq layer
    itself, the recurrent layer of a SequenceModel, a single-step cell as its one-layer
    layer (`cell.as_layer()`), or a torch module of one (converted)."""
    from . import cells, layers

    layer = model.rnn if _is_sequence_model(model) else model
    if not isinstance(layer, layers._Recurrent) and type(layer).__module__.startswith(("torch", "fastseq.torch")):
        from .convert import from_torch
        layer = from_torch(layer)
    if isinstance(layer, (cells.LSTMCell, cells.GRUCell, cells.RNNCell)):
        layer = layer.as_layer()
    if not isinstance(layer, layers._Recurrent):
        raise TypeError(f"expected a fastseq sequence layer (fastseq.LSTM, GRU, RNN, FastRNN, "
                        f"FastGRNN), a cell (LSTMCell, GRUCell, RNNCell), a "
                        f"fastseq.train.SequenceModel or the torch module of one, "
                        f"got {type(layer).__name__}")
    return layer


_GATE_FIELDS = ("act", "act_alpha", "act_beta", "clip")  # fs_rnn_config arrays, as file entries
_PRECISION_FIELDS = ("dtype", "group_size")  # written for quantised layers only (version 3)
# Written only when set: files without them stay what earlier versions wrote, and a reader
# that predates them refuses a file that needs them ("unknown key") instead of ignoring them.
_IF_SET_FIELDS = ("residual",)


def layer_parts(model):
    """(kind, config, tensors) of what `save` writes for `model` (see `sequence_layer`).
    kind and config come from the C model (fs_cell_name, the fs_rnn_config fields),
    tensors from the layer's state_dict."""
    layer = sequence_layer(model)
    cfg = layer.c_model.config()
    names = {v: k for k, v in _core.ACTIVATIONS.items()}
    config = {k: names[v] if k.endswith("_act") else int(v) for k, v in cfg.items()
              if k != "cell" and k not in _GATE_FIELDS + _PRECISION_FIELDS and (v or k not in _IF_SET_FIELDS)}
    config.update(_activations.file_entries(cfg))
    config["batch_first"] = int(layer.batch_first)
    tensors = layer.state_dict()
    if cfg["dtype"]:  # version 3: the matrices as stored, not dequantised
        config["dtype"], config["group_size"] = layer.dtype, cfg["group_size"]
        for key, (lay, d, which) in layer.param_index().items():
            if tensors[key].ndim == 2:
                raw = layer.c_model.get_param_raw(lay, d, which)
                tensors[key] = QuantisedTensor(layer.dtype, tensors[key].shape, raw)
    return _core.CELL_NAMES[cfg["cell"]], config, tensors


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


def _tree_of(model):
    """The tree network a save writes: a TreeLSTM / RecursiveNN itself, or a
    fastseq.train.TreeModel's tree; None for anything else."""
    from . import tree

    if _is_tree_model(model):
        model = model.tree
    return model if isinstance(model, tree._Tree) else None


def _is_tree_model(obj):
    from .train.tree import TreeModel
    return isinstance(obj, TreeModel)


def tree_parts(tree):
    """(kind, config, tensors) of a tree network's file: kind TREE_CHILD_SUM, TREE_NARY
    or TREE_RECURSIVE; config the fs_tree_config fields of the C model (input_size,
    hidden_size, arity where it has one, nonlinearity for a recursive network);
    tensors its state_dict (weight_ih, weight_hh, bias_ih, bias_hh)."""
    from .tree import file_kind_and_config

    kind, config = file_kind_and_config(tree)
    return kind, config, tree.state_dict()


def _tree_head_part(model):
    """The Head of a TreeModel: its PerStepLinear, applied to each root's h."""
    if not _is_tree_model(model):
        return None
    head = model.head
    if type(head).__name__ != "PerStepLinear":
        raise TypeError(f"save: a tree model's head is a PerStepLinear, got {type(head).__name__}")
    config = {"in_features": head.in_features, "out_features": head.out_features, "bias": head.has_bias}
    return Head("PerStepLinear", config, head.state_dict())


def save(model, path, metadata=None):
    """Write `model` to `path` as a .fsq model file: a fastseq layer, a torch nn.LSTM /
    nn.GRU / nn.RNN, or a fastseq.train.SequenceModel (layer + linear head); a tree
    network (fastseq.TreeLSTM, fastseq.RecursiveNN), or a fastseq.train.TreeModel
    (tree + head on each root).
    `metadata`: an optional dict (at most 64 entries; keys of letters, digits, '_'
    and '.'; values int, bool, float, None, or ASCII str of at most 256 bytes), read
    back by `fastseq.io.read(path).metadata`. The file is written whole, then renamed
    into place."""
    tree = _tree_of(model)
    if tree is not None:
        return write_atomic(path, encode(*tree_parts(tree), head=_tree_head_part(model), metadata=metadata))
    return write_atomic(path, encode(*layer_parts(model), head=_head_part(model), metadata=metadata))


def write_atomic(path, data):
    """Write the bytes `data` to `path` whole: into a temporary file beside it, then
    renamed into place (a reader never sees a partial file). Returns the path."""
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


# ---- reading: the C library's reader ------------------------------------------------

def decode(data, source="<bytes>"):
    """Describe the bytes of a .fsq file (a ModelFile) as the C reader sees them: the
    whole file validated, the head and metadata read. Raises ValueError, naming `source`,
    for anything malformed."""
    data = bytes(data)
    try:
        desc = _core.model_inspect(data)
        head = _core.model_head(data)
        metadata = _core.model_metadata(data)
        tree = _core.tree_inspect(data) if desc["tree"] else None
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    if tree is not None:
        from .tree import file_config

        return ModelFile(desc["kind"], file_config(tree), desc["format_version"], len(data), desc["param_count"],
                         data, None if head is None else Head(*head), metadata, tree=True)
    config = {k: v for k, v in desc["config"].items() if k not in _GATE_FIELDS + _PRECISION_FIELDS}
    if desc["config"]["dtype"]:
        config["dtype"] = {v: k for k, v in _core.DTYPES.items()}[desc["config"]["dtype"]]
        config["group_size"] = desc["config"]["group_size"]
    config.update(_activations.file_entries(desc["config"]))  # as the file spells them
    config["batch_first"] = desc["batch_first"]
    return ModelFile(desc["kind"], config, desc["format_version"], len(data), desc["param_count"], data,
                     None if head is None else Head(*head), metadata)


def read(path):
    """Describe the .fsq file at `path` (a ModelFile). The C library reads it, no more
    than its header states (fs_model_read_file)."""
    path = os.fspath(path)
    try:
        data = _core.read_model_file(path)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(str(exc)) from None  # the C message starts with the path
    return decode(data, path)


def build(model_file, source="<model>"):
    """What a ModelFile holds, built: the fastseq layer (the C loader's model, weights in
    place), or a fastseq.train.SequenceModel when the file has a head; a tree network
    (TreeLSTM, RecursiveNN), or a fastseq.train.TreeModel when the file has a head."""
    try:
        model = (_core.tree_load if model_file.tree else _core.model_load)(model_file.raw)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    if model_file.tree:
        return _assemble_tree(model, model_file.head)
    return _assemble(model, model_file.config["batch_first"], model_file.head)


def _assemble(model, batch_first, head):
    """The layer around a loaded C model, with its head (a Head) if the file has one."""
    from . import layers

    layer = layers.from_c_model(model, batch_first=bool(batch_first))
    if head is None:
        return layer
    from .train import heads
    from .train.model import SequenceModel

    cfg = head.config
    h = getattr(heads, head.kind)(cfg["in_features"], cfg["out_features"], bias=bool(cfg["bias"]), seed=0)
    h.load_state_dict(head.tensors)
    return SequenceModel(layer, h)


def _assemble_tree(model, head):
    """The TreeLSTM / RecursiveNN around a loaded C tree model, in a TreeModel with its
    head (a Head) if the file has one."""
    from .tree import from_c_model

    tree = from_c_model(model)
    if head is None:
        return tree
    from .train.heads import PerStepLinear
    from .train.tree import TreeModel

    cfg = head.config
    h = PerStepLinear(cfg["in_features"], cfg["out_features"], bias=bool(cfg["bias"]), seed=0)
    h.load_state_dict(head.tensors)
    return TreeModel(tree, h)


def load(path):
    """Read the .fsq model file at `path` and return what was saved, weights
    bit-identical: the fastseq layer (LSTM, GRU, RNN, ...), or a
    fastseq.train.SequenceModel (layer + head) when the file holds a head; a tree
    network (TreeLSTM, RecursiveNN), or a fastseq.train.TreeModel (tree + head on each
    root). Metadata: `fastseq.io.read(path).metadata`."""
    path = os.fspath(path)
    try:
        data = _core.read_model_file(path)
        desc = _core.model_inspect(data)
        model = (_core.tree_load if desc["tree"] else _core.model_load)(data)
        head = _core.model_head(data)
        _core.model_metadata(data)  # a malformed metadata section fails here too, as in `read`
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(path) else f"{path}: {message}") from None
    head = None if head is None else Head(*head)
    if desc["tree"]:
        return _assemble_tree(model, head)
    return _assemble(model, desc["batch_first"], head)
