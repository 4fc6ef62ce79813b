"""Tree networks in .fsq files (issue 15, save / load; docs/fsq-format.md "Tree networks"):
bit-exact round trips of every kind on forests in every node order, parity of a loaded
network with the torch reference module it came from, the byte layout read back here
independently, every cut and flipped byte rejected by Python and C (and, under
AddressSanitizer, by the C test program), crafted files with valid checksums but wrong
kinds, keys, values and shapes refused with errors naming them, and `fastseq info`."""
import json
import pathlib
import struct
import zlib

import numpy as np
import pytest

import fastseq
from fastseq import _core, io, train
from fastseq.cli import main

import _cbuild
from _forests import random_forest
from _parity import excess

CASES = {  # name: (factory, the most children a node may have; None: any)
    "child_sum": (lambda: fastseq.TreeLSTM(5, 7, seed=1), None),
    "nary2": (lambda: fastseq.TreeLSTM(5, 7, "nary", arity=2, seed=2), 2),
    "nary4": (lambda: fastseq.TreeLSTM(3, 6, "nary", arity=4, seed=3), 4),
    "recursive_tanh": (lambda: fastseq.RecursiveNN(5, 7, arity=2, seed=4), 2),
    "recursive_relu": (lambda: fastseq.RecursiveNN(4, 9, arity=3, nonlinearity="relu", seed=5), 3),
}
SMALL = {  # small files for the byte-by-byte checks
    "child_sum": lambda: fastseq.TreeLSTM(2, 3, seed=6),
    "nary3": lambda: fastseq.TreeLSTM(2, 2, "nary", arity=3, seed=7),
    "recursive_relu": lambda: fastseq.RecursiveNN(2, 3, arity=2, nonlinearity="relu", seed=8),
}


def _states(out):
    return list(out) if isinstance(out, tuple) else [out]


def _renumber(parent, order):
    """The same forest with node v renamed order[v]: parent array and the rows' new places."""
    new_parent = np.full(len(parent), -1, dtype=np.int64)
    new_parent[order] = np.where(parent >= 0, order[np.maximum(parent, 0)], -1)
    return new_parent


def _depth_first(parent):
    """Each node's place when parents come before their children (pre-order by id)."""
    children = {v: [] for v in range(len(parent))}
    for v, p in enumerate(parent):
        if p >= 0:
            children[int(p)].append(v)
    seen, stack = [], [v for v in range(len(parent)) if parent[v] < 0][::-1]
    while stack:
        v = stack.pop()
        seen.append(v)
        stack.extend(children[v][::-1])
    order = np.empty(len(parent), dtype=np.int64)
    order[np.array(seen)] = np.arange(len(parent))
    return order


def _node_orders(parent, rng):
    """(name, order) of the node numberings a forest is checked in: as drawn (shuffled),
    parents before children, children before parents, and another shuffle."""
    first = _depth_first(parent)
    return [("shuffled", np.arange(len(parent))), ("parents_first", first),
            ("children_first", len(parent) - 1 - first), ("reshuffled", rng.permutation(len(parent)))]


# ---- round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_is_bit_exact_on_forests_in_every_node_order(name, tmp_path):
    factory, arity = CASES[name]
    tree = factory()
    path = tree.save(tmp_path / f"{name}.fsq")
    loaded = fastseq.load(path)
    assert type(loaded) is type(tree) and repr(loaded) == repr(tree)
    assert loaded.fastseq_config() == tree.fastseq_config()
    for key, value in tree.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key].view(np.uint32), value.view(np.uint32))
    rng = np.random.default_rng(len(name))
    parent = random_forest(rng, 9, 6, arity)
    x = rng.standard_normal((len(parent), tree.input_size)).astype(np.float32)
    for order_name, order in _node_orders(parent, rng):
        p2 = _renumber(parent, order)
        x2 = np.empty_like(x)
        x2[order] = x
        for want, got in zip(_states(tree(x2, p2)), _states(loaded(x2, p2))):
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=order_name)
        *_, tape = tree.forward_train(x2, p2)
        *_, tape2 = loaded.forward_train(x2, p2)
        dh = rng.standard_normal((len(parent), tree.hidden_size)).astype(np.float32)
        (dx, grads), (dx2, grads2) = tree.backward(tape, dh), loaded.backward(tape2, dh)
        np.testing.assert_array_equal(dx2, dx)
        for key in grads:
            np.testing.assert_array_equal(grads2[key], grads[key])


@pytest.mark.parametrize("kind", ["child_sum", "nary", "recursive"])
def test_a_loaded_network_matches_the_torch_module_it_came_from(kind, tmp_path):
    torch = pytest.importorskip("torch")
    import fastseq.torch as reference

    torch.manual_seed(0)
    ref = {"child_sum": lambda: reference.ChildSumTreeLSTM(6, 10),
           "nary": lambda: reference.NaryTreeLSTM(6, 10, arity=3),
           "recursive": lambda: reference.RecursiveNN(6, 10, arity=2, nonlinearity="relu")}[kind]()
    path = tmp_path / "t.fsq"
    fastseq.save(fastseq.from_torch(ref), path)
    loaded = fastseq.load(path)
    rng = np.random.default_rng(1)
    parent = random_forest(rng, 12, 8, None if kind == "child_sum" else (3 if kind == "nary" else 2))
    x = rng.standard_normal((len(parent), 6)).astype(np.float32)
    with torch.no_grad():
        want = _states(ref(torch.from_numpy(x), parent))
    for got, w in zip(_states(loaded(x, parent)), want):
        assert excess(got, w) <= 1


def test_tree_model_with_head_and_metadata_round_trips(tmp_path):
    tree = fastseq.TreeLSTM(4, 6, "nary", arity=2, seed=3)
    model = train.TreeModel(tree, train.PerStepLinear(6, 3, seed=4))
    path = tmp_path / "m.fsq"
    fastseq.save(model, path, metadata={"task": "sentiment", "classes": 3})
    loaded = fastseq.load(path)
    assert isinstance(loaded, train.TreeModel) and repr(loaded.tree) == repr(tree)
    rng = np.random.default_rng(5)
    parents = [random_forest(rng, 1, n, 2) for n in (1, 4, 9)]
    trees = [(rng.standard_normal((len(p), 4)).astype(np.float32), p) for p in parents]
    np.testing.assert_array_equal(loaded.predict(trees), model.predict(trees))
    for key, value in model.head.state_dict().items():
        np.testing.assert_array_equal(loaded.head.state_dict()[key], value)
    info = io.read(path)
    assert info.tree and info.kind == "TREE_NARY" and info.metadata == {"task": "sentiment", "classes": 3}
    assert info.head.kind == "PerStepLinear" and info.head.config == {"in_features": 6, "out_features": 3,
                                                                      "bias": 1}
    with pytest.raises(RuntimeError, match=r"holds a tree network \(TREE_NARY\), not a sequence layer"):
        _core.model_load(info.raw)  # the sequence loader refuses it (FS_ERR_UNSUPPORTED)


def test_sequence_and_tree_loaders_refuse_each_others_files(tmp_path):
    data = io.encode(*io.layer_parts(fastseq.LSTM(3, 4, seed=0)))
    with pytest.raises(RuntimeError, match=r"holds a sequence layer \(LSTM\), not a tree network"):
        _core.tree_load(data)
    with pytest.raises(RuntimeError, match=r"holds a tree network \(TREE_CHILD_SUM\)"):
        _core.model_load(io.encode(*io.tree_parts(fastseq.TreeLSTM(3, 4, seed=0))))


# Files this version wrote (the fuzz seeds, tests/fuzz/corpus/model_load): they must keep
# loading as the seeded models that wrote them, bit for bit, whatever the reader becomes.
SEED_FILES = {
    "tree_child_sum.fsq": lambda: fastseq.TreeLSTM(3, 4, seed=1),
    "tree_nary3.fsq": lambda: fastseq.TreeLSTM(3, 4, "nary", arity=3, seed=2),
    "tree_recursive_relu_head.fsq": lambda: train.TreeModel(
        fastseq.RecursiveNN(3, 4, arity=2, nonlinearity="relu", seed=3), train.PerStepLinear(4, 2, seed=4)),
}


@pytest.mark.parametrize("name", sorted(SEED_FILES))
def test_files_written_by_this_version_keep_loading(name):
    path = pathlib.Path(__file__).parent / "fuzz" / "corpus" / "model_load" / name
    want, got = SEED_FILES[name](), fastseq.load(path)
    assert type(got) is type(want)
    if isinstance(want, train.TreeModel):
        assert io.read(path).metadata == {"task": "fuzz seed"}
        for key, value in want.head.state_dict().items():
            np.testing.assert_array_equal(got.head.state_dict()[key].view(np.uint32), value.view(np.uint32))
        want, got = want.tree, got.tree
    assert repr(got) == repr(want)
    for key, value in want.state_dict().items():
        np.testing.assert_array_equal(got.state_dict()[key].view(np.uint32), value.view(np.uint32))


# ---- the bytes, read back here from the spec ---------------------------------------------------

def _sections(data):
    version, count, size, file_id = struct.unpack_from("<IIQI", data, 8)
    assert data[:8] == b"\x89FSQ\r\n\x1a\n" and size == len(data) and version == 2
    assert struct.unpack_from("<I", data, 28)[0] == zlib.crc32(data[:28])
    seed = zlib.crc32(struct.pack("<I", file_id))
    at, out, ids = 32, [], 0
    for _ in range(count):
        stype, flags, length, reserved, crc = struct.unpack_from("<IIQII", data, at)
        payload = data[at + 24:at + 24 + length]
        assert reserved == 0 and crc == zlib.crc32(payload, zlib.crc32(data[at:at + 20], seed))
        ids = zlib.crc32(payload, ids)
        out.append((stype, flags, at + 24, payload))
        at += 24 + length
    assert at == len(data) and ids == file_id
    return out


def _string(buf, at):
    n = struct.unpack_from("<I", buf, at)[0]
    return buf[at + 4:at + 4 + n].decode("ascii"), at + 4 + n


def _entries(buf, at):
    n, at = struct.unpack_from("<I", buf, at)[0], at + 4
    out = {}
    for _ in range(n):
        key, at = _string(buf, at)
        vtype, at = struct.unpack_from("<I", buf, at)[0], at + 4
        if vtype == 1:
            out[key], at = struct.unpack_from("<i", buf, at)[0], at + 4
        else:
            assert vtype == 3, (key, vtype)
            out[key], at = _string(buf, at)
    assert at == len(buf)
    return out


@pytest.mark.parametrize("name,kind,config,gates,k", [
    ("child_sum", "TREE_CHILD_SUM", {"input_size": 5, "hidden_size": 7}, 4, 7),
    ("nary4", "TREE_NARY", {"input_size": 3, "hidden_size": 6, "arity": 4}, 7, 24),
    ("recursive_relu", "TREE_RECURSIVE", {"input_size": 4, "hidden_size": 9, "arity": 3, "nonlinearity": "relu"},
     1, 27),
])
def test_layout_follows_the_spec(name, kind, config, gates, k, tmp_path):
    tree = CASES[name][0]()
    data = pathlib.Path(tree.save(tmp_path / "t.fsq")).read_bytes()
    sections = _sections(data)
    assert [s[:2] for s in sections] == [(1, 0)] + [(2, 0)] * 4
    got_kind, at = _string(sections[0][3], 0)
    assert got_kind == kind and _entries(sections[0][3], at) == config
    H, I = config["hidden_size"], config["input_size"]
    shapes = {"weight_ih": (gates * H, I), "weight_hh": (gates * H, k), "bias_ih": (gates * H,),
              "bias_hh": (gates * H,)}
    state = tree.state_dict()
    for (_, _, payload_at, payload), (name_want, shape) in zip(sections[1:], shapes.items()):
        tname, at = _string(payload, 0)
        dtype, ndim = struct.unpack_from("<II", payload, at)
        dims = struct.unpack_from(f"<{ndim}Q", payload, at + 8)
        offset = struct.unpack_from("<Q", payload, at + 8 + 8 * ndim)[0]
        assert (tname, dtype, dims) == (name_want, 1, shape)
        assert (payload_at + offset) % 64 == 0 and not any(payload[at + 16 + 8 * ndim:offset])
        np.testing.assert_array_equal(np.frombuffer(payload[offset:], "<f4").reshape(shape), state[tname])


# ---- damaged files ---------------------------------------------------------------------------

def _rejected(data):
    """(Python's error, C's error) for the bytes; None where one accepts them."""
    try:
        io.decode(data)
        py = None
    except ValueError as exc:
        py = str(exc)
    try:
        _core.tree_inspect(data)
        c = None
    except (ValueError, RuntimeError) as exc:
        c = str(exc)
    return py, c


def _small_file(name):
    tree = SMALL[name]()
    if name != "recursive_relu":
        return io.encode(*io.tree_parts(tree))
    model = train.TreeModel(tree, train.PerStepLinear(3, 2, seed=9))
    return io.encode(*io.tree_parts(tree), head=io._tree_head_part(model), metadata={"k": "v"})


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_cut_and_flip_is_rejected(name):
    data = _small_file(name)
    assert _rejected(data) == (None, None)
    for cut in range(len(data)):
        py, c = _rejected(data[:cut])
        assert py and c, f"cut to {cut} bytes was accepted ({py!r}, {c!r})"
    for at in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[at] ^= flip
            py, c = _rejected(bytes(bad))
            assert py and c, f"byte {at} ^ {flip:#x} was accepted ({py!r}, {c!r})"


needs_c = pytest.mark.skipif(not _cbuild.have_toolchain(), reason="cmake or a C compiler is missing")


@needs_c
def test_c_program_cuts_and_flips_tree_files_under_sanitizers(tmp_path):
    b = _cbuild.build()
    paths = []
    for name in sorted(SMALL):
        paths.append(tmp_path / f"{name}.fsq")
        paths[-1].write_bytes(_small_file(name))
    proc = _cbuild.run([b.program("test_model_file"), *paths], timeout=900)
    assert "0 failures" in proc.stdout, proc.stdout + proc.stderr


# ---- crafted files: valid checksums, wrong contents ----------------------------------------------

def _tensors(kind_gates_k, I=3, H=4, **override):
    gates, k = kind_gates_k
    t = {"weight_ih": np.ones((gates * H, I), np.float32), "weight_hh": np.ones((gates * H, k), np.float32),
         "bias_ih": np.zeros(gates * H, np.float32), "bias_hh": np.zeros(gates * H, np.float32)}
    t.update(override)
    return {key: v for key, v in t.items() if v is not None}


NARY = {"input_size": 3, "hidden_size": 4, "arity": 2}
NARY_T = (5, 8)  # gates N + 3, recursive inputs N * H
CRAFTED = {  # name: (kind, config, tensors, C exception, message)
    "unknown_kind": ("TREE_FOREST", NARY, _tensors(NARY_T), RuntimeError,
                     "layer kind 'TREE_FOREST' is not known"),
    "unknown_key": ("TREE_NARY", {**NARY, "dropout": 1}, _tensors(NARY_T), RuntimeError,
                    "config key 'dropout' is not known for a TREE_NARY"),
    "a_layer_key": ("TREE_NARY", {**NARY, "num_layers": 1}, _tensors(NARY_T), RuntimeError,
                    "config key 'num_layers' is not known for a TREE_NARY"),
    "arity_of_child_sum": ("TREE_CHILD_SUM", NARY, _tensors((4, 4)), RuntimeError,
                           "config key 'arity' is not known for a TREE_CHILD_SUM"),
    "unknown_nonlinearity": ("TREE_RECURSIVE", {**NARY, "nonlinearity": "sigmoid"}, _tensors((1, 8)),
                             RuntimeError, "key 'nonlinearity': value 'sigmoid' is not one this fastseq knows"),
    "missing_arity": ("TREE_NARY", {"input_size": 3, "hidden_size": 4}, _tensors(NARY_T), ValueError,
                      "required key 'arity' is missing"),
    "missing_nonlinearity": ("TREE_RECURSIVE", NARY, _tensors((1, 8)), ValueError,
                             "required key 'nonlinearity' is missing"),
    "arity_too_large": ("TREE_NARY", {**NARY, "arity": 65}, _tensors(NARY_T), ValueError,
                        "key 'arity': expected 1..64, got 65"),
    "hidden_size_zero": ("TREE_NARY", {**NARY, "hidden_size": 0}, _tensors(NARY_T), ValueError,
                         "key 'hidden_size': expected 1..2147483647, got 0"),
    "weight_hh_shape": ("TREE_NARY", NARY, _tensors(NARY_T, weight_hh=np.ones((20, 4), np.float32)), ValueError,
                        r"tensor 'weight_hh': expected shape \[20, 8\], got \[20, 4\]"),
    "bias_as_matrix": ("TREE_NARY", NARY, _tensors(NARY_T, bias_ih=np.ones((20, 1), np.float32)), ValueError,
                       r"tensor 'bias_ih': expected shape \[20\], got \[20, 1\]"),
    "missing_tensor": ("TREE_NARY", NARY, _tensors(NARY_T, bias_hh=None), ValueError,
                       "the file has 3 tensors, a TREE_NARY with this configuration has 4"),
    "layer_tensor_name": ("TREE_NARY", NARY, {"weight_ih_l0" if k == "weight_ih" else k: v
                                              for k, v in _tensors(NARY_T).items()}, ValueError,
                          "tensor 'weight_ih_l0' is not a parameter of a TREE_NARY"),
    "quantised_tensor": ("TREE_NARY", NARY, _tensors(NARY_T, weight_ih=io.QuantisedTensor(
        "int8", (20, 3), bytes(20 * 4 + 60))), RuntimeError, "dtype 2 is not supported here"),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_file_is_refused_naming_the_problem(name, tmp_path):
    kind, config, tensors, c_error, message = CRAFTED[name]
    data = io.encode(kind, config, tensors)
    with pytest.raises(c_error, match=message):  # RuntimeError: FS_ERR_UNSUPPORTED
        _core.tree_inspect(data)
    with pytest.raises(c_error, match=message):
        _core.tree_load(data)
    (tmp_path / "t.fsq").write_bytes(data)
    with pytest.raises(ValueError, match=message):
        fastseq.load(tmp_path / "t.fsq")


class _Pairs(list):
    """(name, tensor) pairs for io.encode, which a dict could not hold: a name twice."""

    def items(self):
        return list(self)


def test_a_tensor_twice_is_refused():
    tensors = _tensors(NARY_T)
    data = io.encode("TREE_NARY", NARY, _Pairs([("weight_ih", tensors["weight_ih"]), *tensors.items()]))
    with pytest.raises(ValueError, match="tensor section 2 at offset [0-9]+: weight_ih appears twice"):
        _core.tree_inspect(data)


@pytest.mark.parametrize("head_kind,in_features,message", [
    ("LastStepLinear", 4, "a tree network's head is PerStepLinear .on each root's h., got 'LastStepLinear'"),
    ("PerStepLinear", 5, "in_features 5 does not match the tree's 4 output features"),
])
def test_a_head_that_does_not_fit_the_tree_is_refused(head_kind, in_features, message, tmp_path):
    head = io.Head(head_kind, {"in_features": in_features, "out_features": 2, "bias": 0},
                   {"weight": np.ones((2, in_features), np.float32)})
    data = io.encode("TREE_NARY", NARY, _tensors(NARY_T), head=head)
    _core.tree_inspect(data)  # the tree itself is fine: the head section is optional
    with pytest.raises(ValueError, match=message):
        _core.model_head(data)
    (tmp_path / "t.fsq").write_bytes(data)
    with pytest.raises(ValueError, match=message):
        fastseq.load(tmp_path / "t.fsq")


# ---- the command line --------------------------------------------------------------------------

def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_describes_a_tree_file(capsys, tmp_path):
    model = train.TreeModel(fastseq.RecursiveNN(4, 9, arity=3, nonlinearity="relu", seed=1),
                            train.PerStepLinear(9, 2, seed=2))
    path = tmp_path / "t.fsq"
    fastseq.save(model, path, metadata={"task": "demo"})
    code, out, err = _cli(capsys, "info", path)
    assert code == 0 and err == ""
    assert "tree        RecursiveNN(4, 9, arity=3, nonlinearity='relu')" in out
    assert "config      input_size=4 hidden_size=9 arity=3 nonlinearity=relu" in out
    assert "input       x [N, 4], parent [N]" in out and "output      h [N, 9]" in out
    assert "weight_hh  [9, 27]" in out and "parameters  297 in 4 tensors" in out
    assert "head        PerStepLinear(in_features=9 out_features=2 bias=1) on each root's h" in out
    assert "task='demo'" in out
    code, out, _ = _cli(capsys, "info", "--json", path)
    info = json.loads(out)
    assert code == 0 and info["kind"] == "TREE_RECURSIVE" and info["tree"].startswith("RecursiveNN(")
    assert info["config"] == {"input_size": 4, "hidden_size": 9, "arity": 3, "nonlinearity": "relu"}
    assert [t["name"] for t in info["tensors"]] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert info["parameters"] == 9 * 4 + 9 * 27 + 9 + 9 and info["head"]["parameters"] == 20


def test_info_of_a_child_sum_tree_lists_both_states(capsys, tmp_path):
    fastseq.TreeLSTM(3, 5, seed=0).save(tmp_path / "t.fsq")
    code, out, _ = _cli(capsys, "info", tmp_path / "t.fsq")
    assert code == 0 and "output      h [N, 5], c [N, 5]" in out and "weight_hh  [20, 5]" in out


def test_other_commands_refuse_a_tree_file_with_exit_1(capsys, tmp_path):
    path = tmp_path / "t.fsq"
    fastseq.TreeLSTM(3, 5, "nary", arity=2, seed=0).save(path)
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    for argv in (["run", path, tmp_path / "x.npy", "-o", tmp_path / "y.npy"], ["bench", path],
                 ["export-c", path, tmp_path / "out"]):
        code, out, err = _cli(capsys, *argv)
        assert code == 1 and out == "", argv
        assert "holds a tree network (TREE_NARY)" in err and "fastseq info" in err, err


def test_info_on_a_damaged_tree_file_exits_1(capsys, tmp_path):
    data = bytearray(io.encode(*io.tree_parts(fastseq.TreeLSTM(3, 5, seed=0))))
    data[200] ^= 0x10
    (tmp_path / "t.fsq").write_bytes(bytes(data))
    code, out, err = _cli(capsys, "info", tmp_path / "t.fsq")
    assert code == 1 and out == "" and "checksum mismatch" in err


@needs_c
def test_fuzz_replay_runs_crafted_tree_files_under_sanitizers(tmp_path):
    """The fuzz target's replay (tests/fuzz/fuzz_model_load.c) on every crafted file and the
    seed corpus: each loaded as it is and with its checksums recomputed, a tree that loads
    run forward and backward on a forest drawn from its bytes; errors are fine, a crash or a
    sanitizer report is not."""
    b = _cbuild.build()
    for name, (kind, config, tensors, _, _) in CRAFTED.items():
        (tmp_path / f"{name}.fsq").write_bytes(io.encode(kind, config, tensors))
    for name in SMALL:
        (tmp_path / f"{name}.fsq").write_bytes(_small_file(name))
    corpus = pathlib.Path(__file__).parent / "fuzz" / "corpus" / "model_load"
    assert len(list(corpus.glob("tree_*.fsq"))) == 3  # the tree seeds the fuzzer starts from
    proc = _cbuild.run([b.program("fuzz_replay_model_load"), tmp_path, corpus], timeout=900)  # exit 0: no report
    inputs = len(CRAFTED) + len(SMALL) + len(list(corpus.iterdir()))
    assert f"replay: {inputs} inputs, 0 unreadable" in proc.stdout, proc.stdout + proc.stderr
