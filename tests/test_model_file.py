"""The .fsq model file (docs/fsq-format.md): bit-exact round trips through
fastseq.save / fastseq.load, the C reader (fs_model_inspect / fs_model_load) on files
Python wrote, the byte layout, and damaged files -- cut, flipped and crafted with valid
checksums but absurd fields -- which must give a ValueError naming the problem in Python
and an error status in C, never a crash or a read out of bounds (the C side also runs
under AddressSanitizer: tests/c/test_model_file.c and examples/run_model.c)."""
import json
import pathlib
import struct
import zlib

import numpy as np
import pytest

import fastseq
from fastseq import _core, io

import _cbuild

MAGIC = b"\x89FSQ\r\n\x1a\n"

CASES = {
    "lstm_2layer_bidir": lambda: fastseq.LSTM(5, 7, num_layers=2, bidirectional=True, seed=1),
    "lstm_nobias_batch_first": lambda: fastseq.LSTM(3, 4, bias=False, batch_first=True, seed=2),
    "lstm_proj_peephole": lambda: fastseq.LSTM(4, 6, proj_size=3, peephole=True, num_layers=2, seed=3),
    "lstm_coupled": lambda: fastseq.LSTM(4, 6, coupled=True, seed=4),
    "gru": lambda: fastseq.GRU(3, 9, seed=5),
    "gru_reset_before_bidir": lambda: fastseq.GRU(4, 5, reset_after=False, bidirectional=True, seed=6),
    "rnn_relu": lambda: fastseq.RNN(3, 4, nonlinearity="relu", seed=7),
    "rnn_tanh_nobias_3layer": lambda: fastseq.RNN(2, 3, num_layers=3, bias=False, seed=8),
    "fastrnn_lowrank": lambda: fastseq.FastRNN(4, 6, w_rank=2, u_rank=3, nonlinearity="sigmoid",
                                              alpha_init=0.1, seed=9),
    "fastgrnn_2layer": lambda: fastseq.FastGRNN(4, 6, num_layers=2, gate_nonlinearity="relu", seed=10),
    "fastgrnn_quant": lambda: fastseq.FastGRNN(4, 6, gate_nonlinearity="hard_sigmoid", gate_alpha=0.25,
                                               update_nonlinearity="softsign", u_rank=2, seed=11),
    "fastrnn_hard_tanh": lambda: fastseq.FastRNN(4, 6, nonlinearity="hard_tanh", seed=12),
    "lstm_low_rank_2layer": lambda: fastseq.LSTM(4, 6, num_layers=2, w_rank=2, u_rank=3, seed=13),
    "gru_low_rank_bidir": lambda: fastseq.GRU(3, 5, bidirectional=True, w_rank=2, u_rank=2, seed=14),
    "gru_reset_before_low_rank_w": lambda: fastseq.GRU(3, 5, reset_after=False, w_rank=2, seed=15),
    "gru_reset_before_low_rank_u": lambda: fastseq.GRU(4, 6, reset_after=False, num_layers=2, w_rank=2, u_rank=3,
                                                       seed=18),
    "ugrnn_2layer_bidir": lambda: fastseq.UGRNN(3, 5, num_layers=2, bidirectional=True, seed=16),
    "ugrnn_low_rank_acts": lambda: fastseq.UGRNN(4, 6, w_rank=2, activations=("hard_sigmoid", "softsign"), seed=17),
}


def _x(layer, T=6, B=3, seed=0):
    x = np.random.default_rng(seed).standard_normal((T, B, layer.input_size)).astype(np.float32)
    return np.ascontiguousarray(x.transpose(1, 0, 2)) if layer.batch_first else x


def _without_initialisers(config):
    return {k: v for k, v in config.items() if not k.endswith("_init")}


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _outputs(result):
    y, state = result
    return [y] + (list(state) if isinstance(state, tuple) else [state])


@pytest.fixture(params=sorted(CASES))
def case(request, tmp_path):
    layer = CASES[request.param]()
    path = tmp_path / f"{request.param}.fsq"
    fastseq.save(layer, path)
    return layer, path


# ---- round trips --------------------------------------------------------------------------

def test_round_trip_is_bit_exact(case):
    layer, path = case
    back = fastseq.load(path)
    assert type(back) is type(layer)
    # a file holds the model, not how its weights were first drawn (FastRNN's alpha_init, ...)
    assert _without_initialisers(back.config()) == _without_initialisers(layer.config())
    a, b = layer.state_dict(), back.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].shape == b[k].shape and np.array_equal(_bits(a[k]), _bits(b[k])), k
    x = _x(layer)
    for u, v in zip(_outputs(layer(x)), _outputs(back(x))):
        assert np.array_equal(_bits(u), _bits(v))
    # saving what was loaded gives the same bytes
    path2 = path.with_suffix(".again.fsq")
    fastseq.save(back, path2)
    assert path2.read_bytes() == path.read_bytes()


def test_c_reader_loads_python_files(case):
    layer, path = case
    data = path.read_bytes()
    desc = _core.model_inspect(data)
    sd = layer.state_dict()
    assert desc["format_version"] == io.FORMAT_VERSION == 2
    assert desc["kind"] == _core.CELL_NAMES[layer.c_model.cell]
    assert desc["batch_first"] == layer.batch_first
    assert desc["tensor_count"] == len(sd)
    assert desc["param_count"] == sum(a.size for a in sd.values())
    cfg = desc["config"]
    assert (cfg["input_size"], cfg["hidden_size"], cfg["num_layers"]) == \
        (layer.input_size, layer.hidden_size, layer.num_layers)
    assert bool(cfg["bidirectional"]) == layer.bidirectional and bool(cfg["bias"]) == layer.bias

    model = _core.model_load(data)
    for key, (lay, d, which) in layer.param_index().items():
        assert np.array_equal(_bits(model.get_param(lay, d, which)), _bits(sd[key])), key
    # the C-loaded model computes exactly what the layer computes
    x = _x(layer)
    T, B = (x.shape[1], x.shape[0]) if layer.batch_first else (x.shape[0], x.shape[1])
    outs = [m.forward(x, T, B, layer.batch_first, None, None, None) for m in (layer.c_model, model)]
    for u, v in zip(*outs):
        assert (u is None and v is None) or np.array_equal(_bits(u), _bits(v))


def test_save_accepts_a_torch_module(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.GRU(4, 6, num_layers=2, batch_first=True)
    fastseq.save(module, tmp_path / "g.fsq")
    layer = fastseq.load(tmp_path / "g.fsq")
    assert isinstance(layer, fastseq.GRU) and layer.batch_first and layer.num_layers == 2
    x = np.random.default_rng(1).standard_normal((2, 9, 4)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x))[0].numpy()
    assert np.max(np.abs(layer(x)[0] - ref)) <= 1e-5


def test_save_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="expected a fastseq sequence layer"):
        fastseq.save(object(), tmp_path / "x.fsq")
    assert not (tmp_path / "x.fsq").exists()


# ---- the byte layout -------------------------------------------------------------------------

def _sections(data):
    """[(offset, type, flags, payload offset, length)] of a well-formed file."""
    out, at = [], 32
    for _ in range(struct.unpack_from("<I", data, 12)[0]):
        stype, flags, length, _reserved, _crc = struct.unpack_from("<IIQII", data, at)
        out.append((at, stype, flags, at + 24, length))
        at += 24 + length
    return out


def test_layout_follows_the_spec(case):
    layer, path = case
    data = path.read_bytes()
    assert data[:8] == MAGIC
    version, n, size, file_id, crc = struct.unpack_from("<IIQII", data, 8)
    assert (version, size) == (2, len(data))
    assert crc == zlib.crc32(data[:28])
    sd = layer.state_dict()
    secs = _sections(data)
    assert n == len(secs) == 1 + len(sd)
    assert secs[0][1] == 1 and all(s[1] == 2 for s in secs[1:])
    assert secs[-1][3] + secs[-1][4] == len(data)
    names = []
    want_id = 0
    for _at, _stype, _flags, payload, length in secs:
        want_id = zlib.crc32(data[payload:payload + length], want_id)
    assert file_id == want_id  # the CRC-32 of every payload in order
    seed = zlib.crc32(struct.pack("<I", file_id))
    for at, _stype, _flags, payload, length in secs:
        assert struct.unpack_from("<I", data, at + 20)[0] == \
            zlib.crc32(data[payload:payload + length], zlib.crc32(data[at:at + 20], seed))
    for at, _stype, _flags, payload, length in secs[1:]:
        nlen = struct.unpack_from("<I", data, payload)[0]
        name = data[payload + 4:payload + 4 + nlen].decode()
        dtype, ndim = struct.unpack_from("<II", data, payload + 4 + nlen)
        dims = struct.unpack_from(f"<{ndim}Q", data, payload + 12 + nlen)
        offset = struct.unpack_from("<Q", data, payload + 12 + nlen + 8 * ndim)[0]
        assert dtype == 1 and (payload + offset) % 64 == 0
        assert offset + 4 * int(np.prod(dims)) == length
        arr = np.frombuffer(data, "<f4", int(np.prod(dims)), payload + offset).reshape(dims)
        assert np.array_equal(_bits(arr), _bits(sd[name]))
        names.append(name)
    assert names == list(sd)  # state_dict order


# ---- damaged files: every cut and flip ----------------------------------------------------------

def _python_rejects(data):
    try:
        io.build(io.decode(data, "f.fsq"), "f.fsq")
    except ValueError as exc:
        return str(exc)
    return None


def _c_rejects(data):
    try:
        _core.model_inspect(data)
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", ["rnn_relu", "lstm_nobias_batch_first", "fastrnn_lowrank"])
def test_every_cut_and_flip_is_rejected(name):
    layer = CASES[name]()
    data = io.encode(*io.layer_parts(layer))
    assert _python_rejects(data) is None and _c_rejects(data) is None
    for cut in range(len(data)):
        piece = data[:cut]
        assert _python_rejects(piece), f"cut to {cut} bytes was accepted by Python"
        assert _c_rejects(piece), f"cut to {cut} bytes was accepted by C"
    for at in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[at] ^= flip
            bad = bytes(bad)
            assert _python_rejects(bad), f"byte {at} ^ {flip:#x} was accepted by Python"
            assert _c_rejects(bad), f"byte {at} ^ {flip:#x} was accepted by C"


# ---- crafted files: valid checksums, bad contents ---------------------------------------------

def _pack_str(s):
    raw = s.encode()
    return struct.pack("<I", len(raw)) + raw


def _section(stype, payload, flags=0):
    head = struct.pack("<IIQI", stype, flags, len(payload), 0)
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def _config(kind, entries):
    """entries: (key, value) with int -> int32, float -> float64, str -> string, None -> none;
    or (key, type, raw value bytes)."""
    out = _pack_str(kind) + struct.pack("<I", len(entries))
    for e in entries:
        if len(e) == 3:
            out += _pack_str(e[0]) + struct.pack("<I", e[1]) + e[2]
            continue
        key, v = e
        out += _pack_str(key)
        if isinstance(v, bool) or isinstance(v, int):
            out += struct.pack("<Ii", 1, int(v))
        elif isinstance(v, float):
            out += struct.pack("<Id", 4, v)
        elif isinstance(v, str):
            out += struct.pack("<I", 3) + _pack_str(v)
        else:
            out += struct.pack("<I", 5)
    return out


def _tensor(name, arr, payload_at, dims=None, extra_pad=0, pad_byte=0, dtype=1, count=None):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    dims = arr.shape if dims is None else dims
    head = _pack_str(name) + struct.pack("<II", dtype, len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
    offset = len(head) + 8
    offset += -(payload_at + offset) % 64 + extra_pad
    head += struct.pack("<Q", offset)
    return head + bytes([pad_byte]) * (offset - len(head)) + arr.tobytes()


def _file(kind, entries, tensors, version=1, magic=MAGIC, extra=b"", n_extra=0, tensor_opts=None,
          config_payload=None):
    """A .fsq file built from the spec, checksums all valid. tensors: [(name, array)]."""
    sections = [_section(1, _config(kind, entries) if config_payload is None else config_payload)]
    at = 32 + len(sections[0])
    for name, arr in tensors:
        opts = (tensor_opts or {}).get(name, {})
        sections.append(_section(2, _tensor(name, arr, at + 24, **opts)))
        at += len(sections[-1])
    body = b"".join(sections) + extra
    header = magic + struct.pack("<IIQI", version, len(sections) + n_extra, 32 + len(body), 0)
    return header + struct.pack("<I", zlib.crc32(header)) + body


RNN_ENTRIES = [("input_size", 2), ("hidden_size", 3), ("num_layers", 1), ("bias", 0),
               ("batch_first", 0), ("bidirectional", 0), ("nonlinearity", "tanh")]
W_IH = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
W_HH = np.arange(9, dtype=np.float32).reshape(3, 3) / 10
RNN_TENSORS = [("weight_ih_l0", W_IH), ("weight_hh_l0", W_HH)]


def _replace(entries, key, value):
    return [(k, value) if k == key else (k, v) for k, v in entries]


def _fix_header(data):
    data = bytearray(data)
    struct.pack_into("<I", data, 28, zlib.crc32(bytes(data[:28])))
    return bytes(data)


def _fix_section(data, at):
    data = bytearray(data)
    length = struct.unpack_from("<Q", data, at + 8)[0]
    struct.pack_into("<I", data, at + 20, zlib.crc32(bytes(data[at + 24:at + 24 + length]),
                                                     zlib.crc32(bytes(data[at:at + 20]))))
    return bytes(data)


def _good():
    return _file("RNN", RNN_ENTRIES, RNN_TENSORS)


def _first_tensor_at(data):
    return _sections(data)[1][0]


def _patch(data, at, fmt, *values, section=None):
    data = bytearray(data)
    struct.pack_into(fmt, data, at, *values)
    data = bytes(data)
    if section is not None:
        data = _fix_section(data, section)
    return _fix_header(data) if at < 32 else data


def _dims_at(data):
    t = _first_tensor_at(data)
    return t + 24 + 4 + len("weight_ih_l0") + 8


CRAFTED = {
    # name: (bytes builder, substring of the Python message, substring of the C message)
    "wrong magic": (lambda: b"NOTFSQ!!" + _good()[8:], "not a .fsq model file", "not a .fsq model file"),
    "a text file": (lambda: b"weight_ih_l0,0.1,0.2\n" * 3, "wrong magic", "wrong magic"),
    "empty": (lambda: b"", "truncated", "truncated"),
    "newer version": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS, version=4), "version 4", "version 4"),
    "truncated": (lambda: _good()[:-5], "truncated", "truncated"),
    "trailing bytes": (lambda: _good() + b"\0" * 8, "trailing bytes", "trailing bytes"),
    "header corrupted": (lambda: _good()[:13] + b"\x07" + _good()[14:], "header checksum", "header checksum"),
    "data corrupted": (lambda: _good()[:-3] + bytes([_good()[-3] ^ 0x10]) + _good()[-2:],
                       "checksum mismatch", "checksum mismatch"),
    "section length 2^60": (lambda: _patch(_good(), _first_tensor_at(_good()) + 8, "<Q", 1 << 60),
                            "runs past the end", "runs past the end"),
    "file size 2^60": (lambda: _patch(_good(), 16, "<Q", 1 << 60), "truncated", "truncated"),
    "section count 4000": (lambda: _patch(_good(), 12, "<I", 4000), "truncated", "truncated"),
    "section count 2^32-1": (lambda: _patch(_good(), 12, "<I", 0xFFFFFFFF), "out of range", "out of range"),
    "shape product overflows": (
        lambda: _patch(_good(), _dims_at(_good()), "<QQ", 0x7FFFFFFF, 0x7FFFFFFF,
                       section=_first_tensor_at(_good())), "exceeds its section", "exceeds its section"),
    "dimension 2^62": (lambda: _patch(_good(), _dims_at(_good()), "<Q", 1 << 62, section=_first_tensor_at(_good())),
                       "above the limit", "above the limit"),
    "ndim 9": (lambda: _patch(_good(), _dims_at(_good()) - 4, "<I", 9, section=_first_tensor_at(_good())),
               "dimensions", "dimensions"),
    "data offset past the section": (
        lambda: _patch(_good(), _dims_at(_good()) + 16, "<Q", 1 << 40, section=_first_tensor_at(_good())),
        "do not fill", "do not fill"),
    "misaligned data": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS,
                                      tensor_opts={"weight_ih_l0": {"extra_pad": 4}}), "aligned", "aligned"),
    "nonzero padding": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS,
                                      tensor_opts={"weight_ih_l0": {"pad_byte": 7, "extra_pad": 64}}),
                        "padding", "padding"),
    "float16 dtype": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS, tensor_opts={"weight_ih_l0": {"dtype": 2}}),
                      "dtype 2", "dtype 2"),
    "duplicate tensor": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS + [("weight_hh_l0", W_HH)]),
                         "appears twice", "appears twice"),
    "missing tensor": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS[:1]), "tensor", "tensor"),
    "unknown tensor": (lambda: _file("RNN", RNN_ENTRIES, [RNN_TENSORS[0], ("weight_xx_l0", W_HH)]),
                       "weight_xx_l0", "weight_xx_l0"),
    "tensor of a layer that does not exist": (
        lambda: _file("RNN", RNN_ENTRIES, [RNN_TENSORS[0], ("weight_hh_l1", W_HH)]), "weight_hh_l1", "weight_hh_l1"),
    "mis-shaped tensor": (lambda: _file("RNN", RNN_ENTRIES, [("weight_ih_l0", W_HH), RNN_TENSORS[1]]),
                          "expected shape [3, 2], got [3, 3]", "expected shape [3, 2], got [3, 3]"),
    "unknown kind": (lambda: _file("Transformer", RNN_ENTRIES, RNN_TENSORS), "not known", "not known"),
    "unknown key": (lambda: _file("RNN", RNN_ENTRIES + [("dropout_p", 0.5)], RNN_TENSORS), "dropout_p", "dropout_p"),
    "unknown nonlinearity": (lambda: _file("RNN", _replace(RNN_ENTRIES, "nonlinearity", "gelu"), RNN_TENSORS),
                             "gelu", "gelu"),
    "negative input_size": (lambda: _file("RNN", _replace(RNN_ENTRIES, "input_size", -5), RNN_TENSORS),
                            "input_size", "input_size"),
    "bias of 7": (lambda: _file("RNN", _replace(RNN_ENTRIES, "bias", 7), RNN_TENSORS), "bias", "bias"),
    "huge hidden_size, tiny tensors": (
        lambda: _file("RNN", _replace(RNN_ENTRIES, "hidden_size", 100000), RNN_TENSORS),
        "expected shape [100000, 2], got [3, 2]", "expected shape [100000, 2], got [3, 2]"),
    "huge num_layers": (lambda: _file("RNN", _replace(RNN_ENTRIES, "num_layers", 2**31 - 1), RNN_TENSORS),
                        "tensors", "tensors"),
    "string where an int goes": (lambda: _file("RNN", _replace(RNN_ENTRIES, "hidden_size", "3"), RNN_TENSORS),
                                 "hidden_size", "hidden_size"),
    "missing required key": (lambda: _file("RNN", RNN_ENTRIES[1:], RNN_TENSORS), "input_size", "input_size"),
    "duplicate key": (lambda: _file("RNN", RNN_ENTRIES + [("bias", 0)], RNN_TENSORS), "twice", "twice"),
    "value type 9": (lambda: _file("RNN", RNN_ENTRIES + [("zzz", 9, b"\0\0\0\0")], RNN_TENSORS),
                     "value type 9", "value type 9"),
    "key length 2^32-1": (lambda: _file("RNN", [], RNN_TENSORS, config_payload=_pack_str("RNN") + struct.pack(
        "<II", 1, 0xFFFFFFFF) + b"x"), "key", "key"),
    "entry count 2^32-1": (lambda: _file("RNN", [], RNN_TENSORS, config_payload=_pack_str("RNN") + struct.pack(
        "<I", 0xFFFFFFFF)), "entry count", "entry count"),
    "config section longer than its entries": (
        lambda: _file("RNN", [], RNN_TENSORS, config_payload=_config("RNN", RNN_ENTRIES) + b"\0\0"),
        "unexpected bytes", "unexpected bytes"),
    "hidden_size overflows the model size": (
        lambda: _file("RNN", _replace(RNN_ENTRIES, "hidden_size", 2**31 - 1), RNN_TENSORS),
        "invalid configuration", "invalid configuration"),
    "required unknown section": (lambda: _file("RNN", RNN_ENTRIES, RNN_TENSORS, extra=_section(77, b"hi"),
                                               n_extra=1), "not known", "not known"),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_file_is_rejected_with_a_clear_error(name, tmp_path):
    make, py_msg, c_msg = CRAFTED[name]
    data = make()
    path = tmp_path / "bad.fsq"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        fastseq.load(path)
    assert py_msg in str(info.value) and str(path) in str(info.value), str(info.value)
    c_error = _c_rejects(data)
    assert c_error is not None and c_msg in c_error, c_error


def test_crafted_good_file_loads():
    """The hand-made file the crafted cases start from is valid, in both readers."""
    data = _good()
    layer = io.build(io.decode(data))
    assert isinstance(layer, fastseq.RNN) and not layer.bias
    assert np.array_equal(layer.state_dict()["weight_ih_l0"], W_IH)
    assert _core.model_inspect(data)["tensor_count"] == 2
    # an unknown section marked optional is skipped by both
    extra = _file("RNN", RNN_ENTRIES, RNN_TENSORS, extra=_section(77, b"metadata", flags=1), n_extra=1)
    assert isinstance(io.build(io.decode(extra)), fastseq.RNN)
    assert _core.model_inspect(extra)["tensor_count"] == 2


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastseq.load(tmp_path / "nope.fsq")


# ---- the C side on its own: the C test program and the example, under sanitizers -------------

needs_c = pytest.mark.skipif(not _cbuild.have_toolchain(), reason="cmake or a C compiler is missing")


@needs_c
def test_c_program_cuts_and_flips_python_files(tmp_path):
    b = _cbuild.build()
    paths = []
    for name in ("lstm_proj_peephole", "gru_reset_before_bidir", "fastgrnn_2layer", "rnn_relu"):
        paths.append(tmp_path / f"{name}.fsq")
        fastseq.save(CASES[name](), paths[-1])
    proc = _cbuild.run([b.program("test_model_file"), *paths], timeout=900)
    assert "0 failures" in proc.stdout, proc.stdout + proc.stderr


@needs_c
@pytest.mark.parametrize("name,shape", [("lstm_2layer_bidir", (7, 3)), ("lstm_nobias_batch_first", (2, 9)),
                                        ("rnn_relu", (11,)), ("fastgrnn_2layer", (5, 1)),
                                        ("lstm_proj_peephole", (6, 2))])
def test_run_model_example_matches_python(name, shape, tmp_path):
    b = _cbuild.build()
    layer = CASES[name]()
    fastseq.save(layer, tmp_path / "m.fsq")
    x = np.random.default_rng(3).standard_normal(shape + (layer.input_size,)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _cbuild.run([b.program("run_model"), tmp_path / "m.fsq", tmp_path / "x.npy", tmp_path / "y.npy",
                 "--state", tmp_path / "h.npy"])
    y, state = layer(x)
    h = state[0] if isinstance(state, tuple) else state
    y_c, h_c = np.load(tmp_path / "y.npy"), np.load(tmp_path / "h.npy")
    assert y_c.shape == y.shape and h_c.shape == h.shape
    assert np.max(np.abs(y_c - y)) <= 1e-5 and np.max(np.abs(h_c - h)) <= 1e-5


@needs_c
def test_run_model_example_errors(tmp_path):
    b = _cbuild.build()
    exe = b.program("run_model")
    layer = fastseq.GRU(3, 4)
    fastseq.save(layer, tmp_path / "m.fsq")
    np.save(tmp_path / "x.npy", np.zeros((4, 5), np.float32))  # 5 features, not 3
    assert _cbuild.run([exe], check=False).returncode == 2
    p = _cbuild.run([exe, tmp_path / "m.fsq", tmp_path / "x.npy", tmp_path / "y.npy"], check=False)
    assert p.returncode == 1 and "expected shape [T, 3]" in p.stderr
    (tmp_path / "bad.fsq").write_bytes((tmp_path / "m.fsq").read_bytes()[:-9])
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    p = _cbuild.run([exe, tmp_path / "bad.fsq", tmp_path / "x.npy", tmp_path / "y.npy"], check=False)
    assert p.returncode == 1 and "truncated" in p.stderr
    p = _cbuild.run([exe, tmp_path / "none.fsq", tmp_path / "x.npy", tmp_path / "y.npy"], check=False)
    assert p.returncode == 1 and "cannot read the model file" in p.stderr and "none.fsq: cannot open" in p.stderr


# ---- a layer with its output head, and metadata (optional sections 3, 4, 5) ------------------

from fastseq import train  # noqa: E402

HEAD_CASES = {
    "lstm_per_step": lambda: train.SequenceModel(fastseq.LSTM(5, 7, num_layers=2, seed=11),
                                                 train.PerStepLinear(7, 4, seed=12)),
    "gru_last_step_nobias": lambda: train.SequenceModel(fastseq.GRU(3, 6, bidirectional=True, seed=13),
                                                        train.LastStepLinear(12, 2, bias=False, seed=14)),
    "rnn_per_step_batch_first": lambda: train.SequenceModel(fastseq.RNN(2, 3, batch_first=True, seed=15),
                                                            train.PerStepLinear(3, 5, seed=16)),
}
METADATA = {"model": "char_lm", "vocab": "\nab c~", "python": "3.11", "epochs": 3, "bpc": 2.25,
            "flag": True, "nothing": None}


def _model_bits_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].shape == sb[k].shape and np.array_equal(_bits(sa[k]), _bits(sb[k])), k


@pytest.mark.parametrize("name", sorted(HEAD_CASES))
def test_sequence_model_round_trip_is_bit_exact(name, tmp_path):
    model = HEAD_CASES[name]()
    model.params += np.random.default_rng(1).standard_normal(model.params.size).astype(np.float32) * 0.01
    model.sync()
    path = tmp_path / "m.fsq"
    fastseq.save(model, path, metadata=METADATA)
    back = fastseq.load(path)
    assert isinstance(back, train.SequenceModel) and type(back.head) is type(model.head)
    assert type(back.rnn) is type(model.rnn) and back.rnn.config() == model.rnn.config()
    assert back.head.has_bias == model.head.has_bias
    _model_bits_equal(model, back)
    assert np.array_equal(_bits(back.params), _bits(model.params))
    x = _x(model.rnn)
    for u, v in zip(_outputs(model.predict(x)), _outputs(back.predict(x))):
        assert np.array_equal(_bits(u), _bits(v))
    mf = io.read(path)
    assert mf.metadata == {**METADATA, "flag": 1} and mf.head.kind == type(model.head).__name__
    assert mf.head.config == {"in_features": model.head.in_features,
                              "out_features": model.head.out_features, "bias": int(model.head.has_bias)}
    # the model loaded trains on: its parameters are one flat vector again
    assert back.params.size == model.params.size
    # saving what was loaded gives the same bytes
    fastseq.save(back, tmp_path / "again.fsq", metadata=mf.metadata)
    assert (tmp_path / "again.fsq").read_bytes() == path.read_bytes()


def test_sequence_model_file_layout(tmp_path):
    model = HEAD_CASES["lstm_per_step"]()
    path = tmp_path / "m.fsq"
    fastseq.save(model, path, metadata={"vocab": "abcd"})
    data = path.read_bytes()
    secs = _sections(data)
    n_layer = len(model.rnn.state_dict())
    assert [s[1] for s in secs] == [1] + [2] * n_layer + [3, 4, 4, 5]
    assert [s[2] for s in secs] == [0] * (1 + n_layer) + [1, 1, 1, 1]  # the new sections are optional
    for at, _stype, _flags, payload, length in secs[n_layer + 2:n_layer + 4]:  # head tensors: aligned
        nlen = struct.unpack_from("<I", data, payload)[0]
        ndim = struct.unpack_from("<I", data, payload + 8 + nlen)[0]
        offset = struct.unpack_from("<Q", data, payload + 12 + nlen + 8 * ndim)[0]
        assert (payload + offset) % 64 == 0
    # a SequenceModel without a head is saved as its layer
    plain = train.SequenceModel(fastseq.GRU(2, 3, seed=0))
    fastseq.save(plain, tmp_path / "p.fsq")
    assert isinstance(fastseq.load(tmp_path / "p.fsq"), fastseq.GRU)
    # metadata on a plain layer
    fastseq.save(fastseq.RNN(2, 3), tmp_path / "r.fsq", metadata={"note": "hi"})
    assert io.read(tmp_path / "r.fsq").metadata == {"note": "hi"}
    assert isinstance(fastseq.load(tmp_path / "r.fsq"), fastseq.RNN)


@pytest.mark.parametrize("name", sorted(HEAD_CASES))
def test_c_reader_runs_the_layer_of_a_file_with_a_head(name, tmp_path):
    model = HEAD_CASES[name]()
    data = io.encode(*io.layer_parts(model), head=io._head_part(model), metadata=METADATA)
    layer = model.rnn
    desc = _core.model_inspect(data)
    assert desc["kind"] == _core.CELL_NAMES[layer.c_model.cell]
    assert desc["tensor_count"] == len(layer.state_dict())  # the head is skipped
    assert desc["param_count"] == _core.param_count(layer.c_model)
    c_model = _core.model_load(data)
    for key, (lay, d, which) in layer.param_index().items():
        assert np.array_equal(_bits(c_model.get_param(lay, d, which)), _bits(layer.state_dict()[key])), key


@pytest.mark.parametrize("bad", [{"k": "é"}, {"k": "x" * 257}, {"bad key": 1}, {"k": [1, 2]},
                                 {f"k{i}": i for i in range(65)}, {"k": 2**40}])
def test_bad_metadata_is_refused_on_save(bad, tmp_path):
    with pytest.raises(ValueError):
        fastseq.save(fastseq.RNN(2, 3), tmp_path / "m.fsq", metadata=bad)
    assert not (tmp_path / "m.fsq").exists()


def _head_file(head_kind="PerStepLinear", head_entries=None, head_tensors=None, flags=1, order=None,
               metadata=None, n_metadata=1):
    """RNN(2, 3) + a head, built from the spec (checksums valid) with anything changed."""
    head_entries = head_entries if head_entries is not None else \
        [("in_features", 3), ("out_features", 2), ("bias", 1)]
    head_tensors = head_tensors if head_tensors is not None else \
        [("weight", np.ones((2, 3), np.float32)), ("bias", np.zeros(2, np.float32))]
    sections = [_section(1, _config("RNN", RNN_ENTRIES))]
    at = 32 + len(sections[0])
    pieces = [("t", n, a) for n, a in RNN_TENSORS] + [("h", None, None)] + [("ht", n, a) for n, a in head_tensors]
    pieces += [("m", None, None)] * n_metadata
    for kind, name, arr in (order(pieces) if order else pieces):
        if kind == "t":
            sec = _section(2, _tensor(name, arr, at + 24))
        elif kind == "h":
            sec = _section(3, _config(head_kind, head_entries), flags)
        elif kind == "ht":
            sec = _section(4, _tensor(name, arr, at + 24), flags)
        else:
            sec = _section(5, _config("x", metadata or [("vocab", "ab")])[len(_pack_str("x")):], flags)
        sections.append(sec)
        at += len(sec)
    body = b"".join(sections)
    header = MAGIC + struct.pack("<IIQI", 1, len(sections), 32 + len(body), 0)
    return header + struct.pack("<I", zlib.crc32(header)) + body


def test_crafted_head_file_loads():
    data = _head_file()
    model = io.build(io.decode(data, "h.fsq"), "h.fsq")
    assert isinstance(model, train.SequenceModel) and model.head.out_features == 2
    assert np.array_equal(model.head.weight, np.ones((2, 3), np.float32))
    assert io.decode(data).metadata == {"vocab": "ab"}
    assert _core.model_inspect(data)["tensor_count"] == 2


BAD_HEADS = {
    "in_features does not match the layer": (
        lambda: _head_file(head_entries=[("in_features", 4), ("out_features", 2)],
                           head_tensors=[("weight", np.ones((2, 4), np.float32)), ("bias", np.zeros(2, np.float32))]),
        "in_features 4"),
    "missing head weight": (lambda: _head_file(head_tensors=[("bias", np.zeros(2, np.float32))]), "'weight' is missing"),
    "missing head bias": (lambda: _head_file(head_tensors=[("weight", np.ones((2, 3), np.float32))]), "'bias' is missing"),
    "unexpected head tensor": (
        lambda: _head_file(head_entries=[("in_features", 3), ("out_features", 2), ("bias", 0)]), "unexpected tensor 'bias'"),
    "mis-shaped head weight": (
        lambda: _head_file(head_tensors=[("weight", np.ones((3, 3), np.float32)), ("bias", np.zeros(2, np.float32))]),
        "expected shape [2, 3], got [3, 3]"),
    "huge out_features, tiny tensors": (
        lambda: _head_file(head_entries=[("in_features", 3), ("out_features", 2**31 - 1)]),
        "expected shape [2147483647, 3], got [2, 3]"),
    "out_features 0": (lambda: _head_file(head_entries=[("in_features", 3), ("out_features", 0)]), "out_features"),
    "string out_features": (lambda: _head_file(head_entries=[("in_features", 3), ("out_features", "2")]),
                            "out_features"),
    "bias of 7": (lambda: _head_file(head_entries=[("in_features", 3), ("out_features", 2), ("bias", 7)]), "bias"),
    "unknown head key": (lambda: _head_file(head_entries=[("in_features", 3), ("out_features", 2), ("act", "relu")]),
                         "'act'"),
    "unknown head kind": (lambda: _head_file(head_kind="MLPHead"), "'MLPHead' is not known"),
    "head tensor before the head": (lambda: _head_file(order=lambda p: p[:2] + p[3:4] + p[2:3] + p[4:]),
                                    "before the head section"),
    "two metadata sections": (lambda: _head_file(n_metadata=2), "a second metadata section"),
    "duplicate head tensor": (
        lambda: _head_file(head_tensors=[("weight", np.ones((2, 3), np.float32))] * 2 + [("bias", np.zeros(2))]),
        "appears twice"),
    "metadata value type 9": (lambda: _head_file(metadata=[("zzz", 9, b"\0\0\0\0")]), "value type 9"),
}


@pytest.mark.parametrize("name", sorted(BAD_HEADS))
def test_crafted_head_file_is_rejected_by_python(name, tmp_path):
    make, msg = BAD_HEADS[name]
    path = tmp_path / "bad.fsq"
    path.write_bytes(make())
    with pytest.raises(ValueError) as info:
        fastseq.load(path)
    assert msg in str(info.value) and str(path) in str(info.value), str(info.value)


def test_head_sections_must_be_marked_optional():
    data = _head_file(flags=0)
    with pytest.raises(ValueError, match="flags must be 1"):
        io.decode(data)
    assert "flags must be 1" in _c_rejects(data)  # the one reader: Python's error is C's


def test_every_cut_and_flip_of_a_head_file_is_rejected():
    model = train.SequenceModel(fastseq.RNN(2, 3, bias=False, seed=1), train.PerStepLinear(3, 2, seed=2))
    data = io.encode(*io.layer_parts(model), head=io._head_part(model), metadata={"vocab": "ab"})
    assert _python_rejects(data) is None and _c_rejects(data) is None
    for cut in range(len(data)):
        assert _python_rejects(data[:cut]), f"cut to {cut} bytes was accepted by Python"
        assert _c_rejects(data[:cut]), f"cut to {cut} bytes was accepted by C"
    for at in range(len(data)):
        bad = bytearray(data)
        bad[at] ^= 0x01
        bad = bytes(bad)
        assert _python_rejects(bad), f"byte {at} ^ 0x01 was accepted by Python"
        assert _c_rejects(bad), f"byte {at} ^ 0x01 was accepted by C"


@needs_c
def test_c_program_and_example_on_a_file_with_a_head(tmp_path):
    b = _cbuild.build()
    model = HEAD_CASES["lstm_per_step"]()
    path = tmp_path / "m.fsq"
    fastseq.save(model, path, metadata=METADATA)
    proc = _cbuild.run([b.program("test_model_file"), path], timeout=900)
    assert "0 failures" in proc.stdout, proc.stdout + proc.stderr
    x = np.random.default_rng(4).standard_normal((6, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _cbuild.run([b.program("run_model"), path, tmp_path / "x.npy", tmp_path / "y.npy"])
    assert np.max(np.abs(np.load(tmp_path / "y.npy") - model.rnn(x)[0])) <= 1e-5


# ---- golden files: files written by earlier versions still load -------------------------

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden"
GOLDEN_FILES = json.loads((GOLDEN / "manifest.json").read_text())["files"]


@pytest.mark.parametrize("entry", GOLDEN_FILES, ids=[e["file"] for e in GOLDEN_FILES])
def test_golden_file_loads_as_the_model_that_wrote_it(entry):
    """tools/make_golden.py wrote these files (format version 1, fastseq 0.1.0) from seeded
    layers; rebuilding each layer from its manifest entry must give the same weights, bit
    for bit, and the same outputs as the loaded file."""
    rebuilt = getattr(fastseq, entry["class"])(**entry["args"], seed=entry["seed"])
    loaded = fastseq.load(GOLDEN / entry["file"])
    if "head" in entry:
        from fastseq.train import PerStepLinear
        head_args = {k: v for k, v in entry["head"].items() if k != "class"}
        head = PerStepLinear(**head_args)
        for key, value in head.state_dict().items():
            assert np.array_equal(_bits(loaded.head.state_dict()[key]), _bits(value)), key
        assert fastseq.io.read(GOLDEN / entry["file"]).metadata == entry["metadata"]
        loaded = loaded.rnn
    assert type(loaded) is type(rebuilt)
    assert loaded.batch_first == rebuilt.batch_first
    want, got = rebuilt.state_dict(), loaded.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert np.array_equal(_bits(got[key]), _bits(want[key])), key
    x = _x(rebuilt)
    for a, b in zip(_outputs(loaded(x)), _outputs(rebuilt(x))):
        assert np.array_equal(_bits(a), _bits(b))


# ---- one copy of the weights -------------------------------------------------------------

MEMORY_CASES = {
    "lstm": lambda I, H: fastseq.LSTM(I, H, num_layers=2),
    "lstm_proj_peephole": lambda I, H: fastseq.LSTM(I, H, proj_size=H // 2, peephole=True),
    "gru": lambda I, H: fastseq.GRU(I, H, bidirectional=True),
    "gru_reset_before": lambda I, H: fastseq.GRU(I, H, reset_after=False),
    "rnn": lambda I, H: fastseq.RNN(I, H, nonlinearity="relu"),
    "fastrnn": lambda I, H: fastseq.FastRNN(I, H, w_rank=H // 4, u_rank=H // 4),
    "fastgrnn": lambda I, H: fastseq.FastGRNN(I, H),
}
# Fixed per layer and direction: its header entry and one 64-byte alignment per array (at
# most 16). The packed matrices also pad the hidden size to a multiple of 8: at most 7 extra
# rows per gate (4 at most) of each of W_ih, W_hh (and W_hr): see `padded` below.
UNIT_OVERHEAD = 4096


@pytest.mark.parametrize("size", [(3, 5), (256, 512)], ids=["small", "large"])
@pytest.mark.parametrize("kind", sorted(MEMORY_CASES))
def test_a_loaded_model_holds_its_weights_once(kind, size, tmp_path):
    """fs_rnn_memory_size of a loaded model: its parameters once (packed), not twice."""
    layer = MEMORY_CASES[kind](*size)
    fastseq.save(layer, tmp_path / "m.fsq")
    loaded = fastseq.load(tmp_path / "m.fsq")
    param_bytes = 4 * sum(a.size for a in loaded.state_dict().values())
    units = loaded.num_layers * loaded.num_directions
    padded = 4 * 7 * 4 * (max(loaded.input_size, 2 * size[1]) + 2 * size[1]) * units
    used = _core.model_memory_size(loaded._model)
    assert used <= 1.1 * param_bytes + padded + UNIT_OVERHEAD * units, (used, param_bytes)


# ---- reads are capped by the header; sections are bound to their file --------------------

def test_dev_zero_is_refused_at_once():
    """/dev/zero never ends: the reader stops at the magic bytes, not at MemoryError."""
    if not pathlib.Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ValueError, match="wrong magic"):
        fastseq.load("/dev/zero")


def test_a_header_claiming_a_huge_size_is_truncated_not_read(tmp_path):
    """A valid header that says 1 TiB: the reader reads what is there and says truncated."""
    data = bytearray(io.encode(*io.layer_parts(fastseq.GRU(3, 4, seed=0))))
    struct.pack_into("<Q", data, 16, 1 << 40)
    struct.pack_into("<I", data, 28, zlib.crc32(bytes(data[:28])))
    path = tmp_path / "huge.fsq"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"truncated: the header says 1099511627776 bytes, got \d+"):
        fastseq.load(path)
    with pytest.raises(ValueError, match="truncated"):
        _core.read_model_file(path)


def test_a_section_from_another_file_does_not_verify(tmp_path):
    """Two files of the same shapes: a tensor section moved from one into the other is a
    checksum error (format 2 starts every section checksum from the file id)."""
    a = io.encode(*io.layer_parts(fastseq.LSTM(3, 4, seed=1)))
    b = io.encode(*io.layer_parts(fastseq.LSTM(3, 4, seed=2)))
    secs_a, secs_b = _sections(a), _sections(b)
    assert [s[4] for s in secs_a] == [s[4] for s in secs_b]  # same layout
    at, _t, _f, payload, length = secs_a[1]
    mixed = a[:at] + b[at:payload + length] + a[payload + length:]
    path = tmp_path / "mixed.fsq"
    path.write_bytes(mixed)
    with pytest.raises(ValueError, match="from another file"):
        fastseq.load(path)
    assert "from another file" in _c_rejects(mixed)
