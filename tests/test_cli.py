"""The `fastseq` command: convert, info, run (files and --stream), bench, export-c, demo;
--help, exit codes (0 ok, 1 error, 2 usage) and messages that say what to do."""
import io as _io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastseq
from fastseq.cli import main


def _run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", _io.StringIO(stdin))
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def lstm_file(tmp_path):
    layer = fastseq.LSTM(5, 8, num_layers=2, seed=3)
    path = tmp_path / "lstm.fsq"
    fastseq.save(layer, path)
    return layer, path


# ---- help, usage, exit codes ------------------------------------------------------------------

def test_help_lists_every_command(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for word in ("convert", "info", "run", "bench", "export-c", "demo", "exit status"):
        assert word in out


@pytest.mark.parametrize("command", ["convert", "info", "run", "bench", "export-c", "demo"])
def test_each_command_has_help(capsys, command):
    code, out, _ = _run(capsys, command, "--help")
    assert code == 0 and "usage: fastseq " + command in out


def test_usage_errors_exit_2(capsys, lstm_file):
    assert _run(capsys)[0] == 2
    assert _run(capsys, "frobnicate")[0] == 2
    assert _run(capsys, "info")[0] == 2  # missing argument
    code, _, err = _run(capsys, "run", lstm_file[1])  # no input, no --stream
    assert code == 2 and "-o OUTPUT.npy" in err


def test_python_dash_m_and_console_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastseq", "--version"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"fastseq {fastseq.__version__}"
    script = shutil.which("fastseq")
    if script:
        proc = subprocess.run([script, "demo", "--length", "10"], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0 and "chars/s" in proc.stderr


# ---- convert ------------------------------------------------------------------------------------

def test_convert_pickled_module(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(6, 10, num_layers=2, bidirectional=True, batch_first=True)
    torch.save(module, tmp_path / "m.pt")
    code, out, err = _run(capsys, "convert", tmp_path / "m.pt", tmp_path / "m.fsq")
    assert code == 0, err
    assert "max |fastseq - torch|" in out and "wrote" in out
    layer = fastseq.load(tmp_path / "m.fsq")
    assert layer.bidirectional and layer.batch_first and layer.num_layers == 2
    x = np.random.default_rng(0).standard_normal((3, 8, 6)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x))[0].numpy()
    assert np.max(np.abs(layer(x)[0] - ref)) <= 1e-5


def test_convert_finds_the_recurrent_submodule(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.save(nn.Sequential(nn.GRU(4, 7), nn.Identity()), tmp_path / "one.pt")
    code, out, err = _run(capsys, "convert", tmp_path / "one.pt", tmp_path / "one.fsq")
    assert code == 0, err
    assert "module '0'" in out and isinstance(fastseq.load(tmp_path / "one.fsq"), fastseq.GRU)

    torch.save(nn.ModuleDict({"enc": nn.LSTM(4, 7), "dec": nn.GRU(7, 3)}), tmp_path / "two.pt")
    code, _, err = _run(capsys, "convert", tmp_path / "two.pt", tmp_path / "two.fsq")
    assert code == 1 and "several" in err and "--module" in err
    code, _, err = _run(capsys, "convert", tmp_path / "two.pt", tmp_path / "two.fsq", "--module", "dec")
    assert code == 0, err
    assert fastseq.load(tmp_path / "two.fsq").hidden_size == 3


def test_convert_state_dict_reads_sizes_from_the_weights(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    module = torch.nn.GRU(3, 6, num_layers=2, bidirectional=True, bias=False)
    torch.save({"state_dict": {**{f"rnn.{k}": v for k, v in module.state_dict().items()},
                               "head.weight": torch.zeros(2, 12)}, "epoch": 4}, tmp_path / "ckpt.pt")
    code, _, err = _run(capsys, "convert", tmp_path / "ckpt.pt", tmp_path / "g.fsq")
    assert code == 1 and "--kind GRU or --kind LSTM" in err   # 3 gates: a GRU or a coupled LSTM
    code, _, err = _run(capsys, "convert", tmp_path / "ckpt.pt", tmp_path / "g.fsq", "--kind", "GRU")
    assert code == 1 and "--batch-first or --time-major" in err   # a state_dict cannot tell
    code, out, err = _run(capsys, "convert", tmp_path / "ckpt.pt", tmp_path / "g.fsq", "--kind", "GRU",
                          "--time-major")
    assert code == 0, err
    assert "'rnn.'" in out and "head.weight" in out  # the prefix found, the rest reported
    layer = fastseq.load(tmp_path / "g.fsq")
    assert (type(layer), layer.input_size, layer.hidden_size, layer.num_layers, layer.bidirectional,
            layer.bias) == (fastseq.GRU, 3, 6, 2, True, False)
    x = np.random.default_rng(2).standard_normal((5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x))[0].numpy()
    assert np.max(np.abs(layer(x)[0] - ref)) <= 1e-5
    # explicit arguments are checked against the weights
    code, _, err = _run(capsys, "convert", tmp_path / "ckpt.pt", tmp_path / "g2.fsq", "--hidden-size", "5",
                        "--kind", "GRU", "--time-major")
    assert code == 1 and "hidden_size=5, but the weights say 6" in err


def test_convert_npz_state_dict_without_torch(capsys, tmp_path):
    layer = fastseq.LSTM(4, 9, proj_size=3, peephole=True, seed=5)
    np.savez(tmp_path / "w.npz", **layer.state_dict())
    code, _, err = _run(capsys, "convert", tmp_path / "w.npz", tmp_path / "w.fsq", "--time-major")
    assert code == 0, err
    back = fastseq.load(tmp_path / "w.fsq")
    assert back.config() == layer.config()
    x = np.random.default_rng(0).standard_normal((4, 2, 4)).astype(np.float32)
    assert np.array_equal(back(x)[0], layer(x)[0])


def test_convert_rnn_nonlinearity_and_kind(capsys, tmp_path):
    layer = fastseq.RNN(3, 4, nonlinearity="relu", seed=6)
    np.savez(tmp_path / "r.npz", **layer.state_dict())
    code, _, err = _run(capsys, "convert", tmp_path / "r.npz", tmp_path / "r.fsq", "--time-major")
    assert code == 1 and "give nonlinearity (--nonlinearity) (tanh or relu)" in err
    code, _, err = _run(capsys, "convert", tmp_path / "r.npz", tmp_path / "r.fsq", "--nonlinearity", "relu",
                        "--batch-first")
    assert code == 0, err
    assert fastseq.load(tmp_path / "r.fsq").batch_first
    assert fastseq.load(tmp_path / "r.fsq").nonlinearity == "relu"


def test_convert_errors_say_what_to_do(capsys, tmp_path):
    code, _, err = _run(capsys, "convert", tmp_path / "missing.pt", tmp_path / "x.fsq")
    assert code == 1 and "no such file" in err
    np.savez(tmp_path / "other.npz", a=np.zeros(3), b=np.ones(2))
    code, _, err = _run(capsys, "convert", tmp_path / "other.npz", tmp_path / "x.fsq")
    assert code == 1 and "weight_ih_l0" in err and "--prefix" in err


# ---- info ---------------------------------------------------------------------------------------

def test_info_text_and_json(capsys, lstm_file):
    layer, path = lstm_file
    code, out, _ = _run(capsys, "info", path)
    assert code == 0
    params = sum(a.size for a in layer.state_dict().values())
    for text in ("LSTM(5, 8, num_layers=2)", f"{params:,}", "weight_hh_l1", "[32, 8]", "ISA",
                 fastseq.isa(), f"format version {fastseq.io.FORMAT_VERSION}"):
        assert text in out
    code, out, _ = _run(capsys, "info", path, "--json")
    info = json.loads(out)
    assert code == 0 and info["parameters"] == params and info["kind"] == "LSTM"
    assert info["config"] == layer.config() and len(info["tensors"]) == 8
    assert info["bytes"] == path.stat().st_size and info["isa"] == fastseq.isa()


def test_info_on_damaged_files(capsys, lstm_file, tmp_path):
    _, path = lstm_file
    data = bytearray(path.read_bytes())
    data[300] ^= 0x20
    (tmp_path / "bad.fsq").write_bytes(bytes(data))
    code, out, err = _run(capsys, "info", tmp_path / "bad.fsq")
    assert code == 1 and "checksum mismatch" in err and "corrupted" in err and out == ""
    (tmp_path / "model.npy").write_bytes(b"\x93NUMPY not a model")
    code, _, err = _run(capsys, "info", tmp_path / "model.npy")
    assert code == 1 and "not a .fsq model file" in err and "fastseq convert" in err
    code, _, err = _run(capsys, "info", tmp_path / "nothing.fsq")
    assert code == 1 and "no such file" in err


# ---- run ----------------------------------------------------------------------------------------

def test_run_npy_with_state(capsys, lstm_file, tmp_path):
    layer, path = lstm_file
    x = np.random.default_rng(1).standard_normal((12, 3, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = _run(capsys, "run", path, tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                        "--state", tmp_path / "s.npz")
    assert code == 0, err
    y, (h, c) = layer(x)
    assert np.array_equal(np.load(tmp_path / "y.npy"), y)
    with np.load(tmp_path / "s.npz") as s:
        assert np.array_equal(s["h_n"], h) and np.array_equal(s["c_n"], c)


def test_run_npz_with_lengths_and_csv(capsys, tmp_path):
    layer = fastseq.GRU(3, 4, bidirectional=True, seed=2)
    fastseq.save(layer, tmp_path / "g.fsq")
    x = np.random.default_rng(2).standard_normal((6, 2, 3)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, lengths=np.array([6, 3]))
    code, _, err = _run(capsys, "run", tmp_path / "g.fsq", tmp_path / "in.npz", "-o", tmp_path / "y.npy")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), layer(x, lengths=[6, 3])[0])
    np.savetxt(tmp_path / "x.csv", x[:, 0], delimiter=",", fmt="%.9g", header="three features per step")
    code, _, err = _run(capsys, "run", tmp_path / "g.fsq", tmp_path / "x.csv", "-o", tmp_path / "yc.npy")
    assert code == 0, err
    assert np.max(np.abs(np.load(tmp_path / "yc.npy") - layer(x[:, 0])[0])) <= 1e-6


@pytest.mark.parametrize("bidirectional", [False, True])
def test_run_progress_splits_the_work_without_changing_it(capsys, tmp_path, bidirectional):
    layer = fastseq.LSTM(4, 6, bidirectional=bidirectional, seed=4)
    fastseq.save(layer, tmp_path / "m.fsq")
    x = np.random.default_rng(3).standard_normal((50, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = _run(capsys, "run", tmp_path / "m.fsq", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                        "--progress", "--state", tmp_path / "s.npz")
    assert code == 0 and "100%" in err
    y, (h, c) = layer(x)
    assert np.max(np.abs(np.load(tmp_path / "y.npy") - y)) <= 1e-6
    with np.load(tmp_path / "s.npz") as s:
        assert np.max(np.abs(s["h_n"] - h)) <= 1e-6 and np.max(np.abs(s["c_n"] - c)) <= 1e-6


def test_run_input_errors(capsys, lstm_file, tmp_path):
    _, path = lstm_file
    np.save(tmp_path / "x.npy", np.zeros((4, 2, 7), np.float32))
    code, _, err = _run(capsys, "run", path, tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert code == 1 and "expected shape [T, B, 5]" in err and "(4, 2, 7)" in err
    (tmp_path / "x.csv").write_text("1,2,3\n4,5\n")
    code, _, err = _run(capsys, "run", path, tmp_path / "x.csv", "-o", tmp_path / "y.npy")
    assert code == 1 and "x.csv" in err and "comma-separated" in err
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 5)), b=np.zeros((2, 5)))
    code, _, err = _run(capsys, "run", path, tmp_path / "two.npz", "-o", tmp_path / "y.npy")
    assert code == 1 and "--key" in err
    code, _, err = _run(capsys, "run", path, tmp_path / "two.npz", "-o", tmp_path / "y.npy", "--key", "b")
    assert code == 0, err


def test_run_stream_prints_one_line_per_frame(capsys, monkeypatch, lstm_file):
    layer, path = lstm_file
    x = np.random.default_rng(4).standard_normal((7, 5)).astype(np.float32)
    lines = ["# a comment", ""] + [",".join(f"{v:.9g}" for v in row) for row in x]
    code, out, err = _run(capsys, "run", path, "--stream", stdin="\n".join(lines) + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    got = np.array([[float(v) for v in line.split(",")] for line in out.strip().split("\n")], np.float32)
    assert got.shape == (7, 8)
    assert np.max(np.abs(got - layer(x)[0])) <= 1e-5


def test_run_stream_errors(capsys, monkeypatch, tmp_path, lstm_file):
    _, path = lstm_file
    code, out, err = _run(capsys, "run", path, "--stream", stdin="1,2,3,4,5\n1,2,3\n", monkeypatch=monkeypatch)
    assert code == 1 and "line 2" in err and "expected 5 numbers" in err
    assert len(out.strip().split("\n")) == 1  # the good frame was answered first
    code, _, err = _run(capsys, "run", path, "--stream", stdin="1,2,x,4,5\n", monkeypatch=monkeypatch)
    assert code == 1 and "line 1" in err
    fastseq.save(fastseq.GRU(2, 3, bidirectional=True), tmp_path / "bi.fsq")
    code, _, err = _run(capsys, "run", tmp_path / "bi.fsq", "--stream", stdin="1,2\n", monkeypatch=monkeypatch)
    assert code == 1 and "bidirectional" in err


def test_run_stream_through_a_pipe(tmp_path):
    """The real thing: a subprocess reading stdin line by line."""
    layer = fastseq.RNN(2, 3, seed=8)
    fastseq.save(layer, tmp_path / "r.fsq")
    proc = subprocess.run([sys.executable, "-m", "fastseq", "run", str(tmp_path / "r.fsq"), "--stream"],
                          input="0.5,-1\n1,2\n", capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = np.array([[float(v) for v in line.split(",")] for line in proc.stdout.split()], np.float32)
    ref = layer(np.array([[0.5, -1], [1, 2]], np.float32))[0]
    assert np.max(np.abs(got - ref)) <= 1e-5


# ---- bench and export-c ---------------------------------------------------------------------------

def test_bench_json(capsys, lstm_file):
    _, path = lstm_file
    code, out, err = _run(capsys, "bench", path, "--steps", 5, "--batch", 2, "--threads", 1, "--repeat", 1,
                          "--min-time", 0.01, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.strip().split("\n")]
    assert {r["case"] for r in rows} == {"sequence", "stream"}
    for r in rows:
        assert r["us_per_step"] > 0 and r["threads"] == 1 and r["batch"] == 2 and r["isa"] == fastseq.isa()
    code, out, _ = _run(capsys, "bench", path, "--steps", 5, "--repeat", 1, "--min-time", 0.01)
    assert code == 0 and "µs/step" in out
    code, _, err = _run(capsys, "bench", path, "--threads", "two")
    assert code == 2 and "--threads" in err


def test_export_c_command(capsys, lstm_file, tmp_path):
    _, path = lstm_file
    code, out, err = _run(capsys, "export-c", path, tmp_path / "c", "--name", "net")
    assert code == 0, err
    assert (tmp_path / "c" / "net.h").exists() and (tmp_path / "c" / "net.c").exists()
    assert "cc -std=c99" in out
    code, _, err = _run(capsys, "export-c", path, tmp_path / "c", "--name", "1net")
    assert code == 1 and "C identifier" in err


# ---- demo: the bundled character model ------------------------------------------------------------

RATE = re.compile(r"\[(\d+) characters in [\d.]+ s: [\d,]+ chars/s, [\d.]+ µs per character "
                  r"\(([\d.]+) µs per model step")


def _demo(capsys, *argv):
    code, out, err = _run(capsys, "demo", *argv)
    assert code == 0, err
    return out, err


def test_demo_model_is_bundled_and_small():
    from importlib import resources

    path = resources.files("fastseq") / "data" / "demo.fsq"
    data = path.read_bytes()
    assert len(data) <= 500_000
    mf = fastseq.io.decode(data, "demo.fsq")
    meta = mf.metadata
    assert meta["model"] == "char_lm" and len(meta["vocab"]) == mf.config["input_size"] == 96
    assert meta["python"].count(".") == 1 and mf.head.kind == "PerStepLinear"
    assert fastseq._core.model_inspect(data)["kind"] == mf.kind  # the C library reads it too


def test_demo_runs_as_a_command(tmp_path):
    """`python -m fastseq demo --length 50 --seed 0`: the prompt, then 50 characters, then
    the speed on stderr."""
    proc = subprocess.run([sys.executable, "-m", "fastseq", "demo", "--length", "50", "--seed", "0",
                           "--prompt", "Return the "], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Return the ") and proc.stdout.endswith("\n")
    assert len(proc.stdout) == len("Return the ") + 50 + 1
    m = RATE.search(proc.stderr)
    assert m and int(m.group(1)) == 50 and float(m.group(2)) > 0, proc.stderr


def test_demo_needs_no_torch(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from fastseq.cli import main\n"
            "sys.exit(main(['demo', '--length', '20']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "chars/s" in proc.stderr, proc.stderr


def test_demo_greedy_is_deterministic_and_matches_a_full_forward(capsys):
    out1, _ = _demo(capsys, "--temperature", "0", "--length", "80", "--prompt", "Return the ")
    out2, _ = _demo(capsys, "--temperature", "0", "--length", "80", "--prompt", "Return the ", "--seed", "7")
    assert out1 == out2  # greedy ignores the seed
    text = out1[:-1]
    assert len(text) == len("Return the ") + 80
    # streaming step by step == one forward over the whole text: each generated character is
    # the argmax of the head at the step before it
    from importlib import resources
    mf = fastseq.io.decode((resources.files("fastseq") / "data" / "demo.fsq").read_bytes())
    model = fastseq.io.build(mf)
    vocab = mf.metadata["vocab"]
    ids = np.array([vocab.index(c) for c in text])
    x = np.eye(len(vocab), dtype=np.float32)[ids[:-1]][:, None, :]
    logits, _ = model.predict(x)
    start = len("Return the ") - 1
    steps = logits[start:, 0]
    chosen = steps[np.arange(len(steps)), ids[start + 1:]]
    # the chosen character is the forward's argmax (up to rounding on a near-tie)
    assert np.all(chosen >= steps.max(axis=-1) - 1e-4)


def test_demo_sampling_is_seeded(capsys):
    a, _ = _demo(capsys, "--length", "60", "--seed", "1")
    b, _ = _demo(capsys, "--length", "60", "--seed", "1")
    c, _ = _demo(capsys, "--length", "60", "--seed", "2")
    assert a == b and a != c
    vocab = set(fastseq.io.decode((__import__("importlib").resources.files("fastseq") / "data" /
                                   "demo.fsq").read_bytes()).metadata["vocab"])
    assert set(a) <= vocab


def test_demo_prompt_with_unknown_characters_and_empty_prompt(capsys):
    out, err = _demo(capsys, "--prompt", "naïve\t", "--length", "5")
    assert out.startswith("naïve\t") and len(out) == len("naïve\t") + 5 + 1 and "chars/s" in err
    out, _ = _demo(capsys, "--prompt", "", "--length", "5", "--temperature", "0")
    assert len(out) == 5 + 1
    out, err = _demo(capsys, "--length", "0")
    assert "0 characters" in err


def test_demo_errors(capsys, tmp_path, lstm_file):
    code, _, err = _run(capsys, "demo", "--length", "-1")
    assert code == 2 and "--length" in err
    code, _, err = _run(capsys, "demo", "--temperature", "-0.5")
    assert code == 2 and "--temperature" in err
    code, _, err = _run(capsys, "demo", "--model", lstm_file[1])
    assert code == 1 and "not a character model" in err
    code, _, err = _run(capsys, "demo", "--model", tmp_path / "none.fsq")
    assert code == 1 and "no such file" in err


def test_info_and_run_on_a_model_with_a_head(capsys, tmp_path):
    """A file with a head: `info` shows the head and metadata; the other commands run its layer."""
    from fastseq import train

    model = train.SequenceModel(fastseq.GRU(4, 6, seed=1), train.PerStepLinear(6, 3, seed=2))
    path = tmp_path / "m.fsq"
    fastseq.save(model, path, metadata={"vocab": "abc", "note": "x" * 100})
    code, out, _ = _run(capsys, "info", path)
    assert code == 0 and "PerStepLinear" in out and "vocab='abc'" in out and "..." in out
    code, out, _ = _run(capsys, "info", path, "--json")
    info = json.loads(out)
    assert info["head"]["kind"] == "PerStepLinear" and info["metadata"]["vocab"] == "abc"
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = _run(capsys, "run", path, tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), model.rnn(x)[0])


@pytest.mark.parametrize("dtype, group, code_bytes", [
    ("int8", 0, lambda r, c, g: r * c + 4 * r),
    ("int4", 32, lambda r, c, g: r * ((c + 1) // 2) + 4 * r * -(-c // g)),
    ("bf16", 0, lambda r, c, g: 2 * r * c)])
def test_info_counts_a_quantised_layers_bytes_in_its_dtype(capsys, tmp_path, dtype, group, code_bytes):
    """`info` on a quantised file: the stored bytes of its matrices (codes and scales, as
    docs/fsq-format.md lays them out) and of its float32 vectors, not 4 bytes a parameter."""
    layer = fastseq.quantize(fastseq.GRU(40, 24, num_layers=2, seed=3), dtype)
    path = tmp_path / "q.fsq"
    fastseq.save(layer, path)
    sd = layer.state_dict()
    matrices = sum(code_bytes(*v.shape, group) for v in sd.values() if v.ndim == 2)
    vectors = sum(4 * v.size for v in sd.values() if v.ndim == 1)
    code, out, _ = _run(capsys, "info", path, "--json")
    info = json.loads(out)
    assert code == 0 and info["dtype"] == dtype and info["weight_bytes"] == matrices + vectors
    code, out, _ = _run(capsys, "info", path)
    line = next(l for l in out.splitlines() if l.strip().startswith("parameters"))
    assert f"{dtype} matrices with their scales {matrices:,}" in line and f"float32 vectors {vectors:,}" in line
