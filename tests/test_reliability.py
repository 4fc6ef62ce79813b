"""Hostile and careless input: byte order, settings out of range, a symlink planted where
`save` writes, malformed training arguments, CLI misuse, pickled .npy inputs. Each case
gets a clear error (or the right result), never a crash, a traceback or a silent wrong
answer."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastseq
from fastseq import train
from fastseq.cli import main


@pytest.fixture
def lstm():
    return fastseq.LSTM(5, 7, num_layers=2, seed=0)


def _big_endian(a):
    return np.ascontiguousarray(a, dtype=">f4")


# ---- byte order -------------------------------------------------------------------------

def test_big_endian_input_gives_the_native_result(lstm):
    x = np.random.default_rng(0).standard_normal((6, 3, 5)).astype(np.float32)
    y, (h, c) = lstm(x)
    y2, (h2, c2) = lstm(_big_endian(x))
    assert np.array_equal(y, y2) and np.array_equal(h, h2) and np.array_equal(c, c2)
    ref_stream, stream = lstm.stream(3), lstm.stream(3)
    for t in range(6):
        assert np.array_equal(stream.step(_big_endian(x[t])), ref_stream.step(x[t]))


def test_big_endian_out_is_refused(lstm):
    out = np.zeros((1, 7), dtype=">f4")
    with pytest.raises(ValueError, match="native-byte-order float32"):
        lstm.stream(1).step(np.ones((1, 5), np.float32), out=out)
    assert not out.any()


def test_big_endian_buffers_of_the_core_are_refused(lstm):
    from fastseq import _core
    with pytest.raises(ValueError, match="native-byte-order"):
        _core.clip_grad_value(np.ones(4, dtype=">f4"), 0.5)


@pytest.mark.parametrize("shape", [(7, 1), (1, 7, 1), (7,)])
def test_step_out_of_another_shape_is_refused(lstm, shape):
    # the same element count, but a shape that would be filled in an order it does not say
    out = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 7\)"):
        lstm.stream(1).step(np.ones((1, 5), np.float32), out=out)
    assert not out.any()


@pytest.mark.parametrize("bad", [np.array([[1 + 2j] * 5]), np.array([[None] * 5], dtype=object)])
def test_step_rejects_what_call_rejects(lstm, bad):
    with pytest.raises(TypeError, match="real-valued"):
        lstm(bad[None])
    with pytest.raises(TypeError, match="real-valued"):
        lstm.stream(1).step(bad)


# ---- settings -----------------------------------------------------------------------------

@pytest.fixture
def restore_threads():
    before = fastseq.get_num_threads()
    yield
    fastseq.set_num_threads(before)


@pytest.mark.parametrize("n", [10**6, 2**31 - 1, -1, 2**40])
def test_set_num_threads_is_bounded(restore_threads, lstm, n):
    before = fastseq.get_num_threads()
    with pytest.raises(ValueError, match=f"0 \\(the default\\) to {fastseq._core.MAX_THREADS}"):
        fastseq.set_num_threads(n)
    assert fastseq.get_num_threads() == before
    lstm(np.ones((2, 1, 5), np.float32))  # later calls still work


@pytest.mark.parametrize("n", [1.5, "2", True, None])
def test_set_num_threads_wants_an_integer(restore_threads, n):
    with pytest.raises(TypeError, match="num_threads: expected an integer"):
        fastseq.set_num_threads(n)


def test_set_num_threads_accepts_the_cap(restore_threads):
    fastseq.set_num_threads(fastseq._core.MAX_THREADS)
    assert fastseq.get_num_threads() == fastseq._core.MAX_THREADS
    fastseq.set_num_threads(np.int64(1))
    assert fastseq.get_num_threads() == 1


def _child_env(tmp_path, **env):
    script = "import fastseq; print(fastseq.get_num_threads(), fastseq.isa())"
    full = {k: v for k, v in os.environ.items() if not k.startswith("FASTSEQ_")}
    full.update(env)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=full,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    threads, isa = proc.stdout.split()
    return int(threads), isa, proc.stderr


@pytest.mark.parametrize("value", ["1e3", "4 ", "-2", "0", "99999", "two", ""])
def test_bad_fastseq_num_threads_is_reported_and_ignored(tmp_path, value):
    default, _, quiet = _child_env(tmp_path)
    threads, _, err = _child_env(tmp_path, FASTSEQ_NUM_THREADS=value)
    assert threads == default
    assert f'FASTSEQ_NUM_THREADS="{value}" ignored' in err and "warning" not in quiet


def test_good_fastseq_num_threads_is_used(tmp_path):
    threads, _, err = _child_env(tmp_path, FASTSEQ_NUM_THREADS="3")
    assert threads == 3 and err == ""


@pytest.mark.parametrize("value", ["AVX2", "generic ", "sse", ""])
def test_bad_fastseq_isa_is_reported_and_ignored(tmp_path, value):
    _, default, _ = _child_env(tmp_path)
    _, isa, err = _child_env(tmp_path, FASTSEQ_ISA=value)
    assert isa == default
    assert f'FASTSEQ_ISA="{value}" ignored' in err


def test_fastseq_isa_generic_is_used(tmp_path):
    _, isa, err = _child_env(tmp_path, FASTSEQ_ISA="generic")
    assert isa == "generic" and err == ""


def test_set_isa_wants_a_name():
    with pytest.raises(ValueError, match="isa: expected one of"):
        fastseq.set_isa(["avx2"])


# ---- argument errors ------------------------------------------------------------------------

@pytest.mark.parametrize("args, name", [((3, 2**31), "hidden_size"), ((2**31, 3), "input_size"),
                                        ((3, 4, 2**32), "num_layers")])
def test_sizes_beyond_int32_name_the_argument(args, name):
    with pytest.raises(ValueError, match=f"{name}: expected an integer from 1 to 2147483647"):
        fastseq.LSTM(*args)


def test_lstm_proj_size_beyond_int32():
    with pytest.raises(ValueError, match="proj_size: expected an integer from 0"):
        fastseq.LSTM(3, 4, proj_size=2**31)


@pytest.mark.parametrize("batch", [1.5, 0, -1, "2", 2**31])
def test_stream_batch_must_be_a_positive_integer(lstm, batch):
    with pytest.raises(ValueError, match="batch: expected an integer from 1"):
        lstm.stream(batch)


# ---- train.fit ----------------------------------------------------------------------------

@pytest.fixture
def model():
    return train.SequenceModel(fastseq.GRU(2, 4, batch_first=True, seed=0), train.LastStepLinear(4, 1, seed=0))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5, 2)).astype(np.float32), rng.standard_normal((6, 1)).astype(np.float32)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"batch_size": 0}, ValueError, "batch_size: expected an integer >= 1, got 0"),
    ({"batch_size": 2.5}, ValueError, "batch_size: expected an integer >= 1"),
    ({"epochs": -1}, ValueError, "epochs: expected an integer >= 0"),
    ({"loss": "bogus"}, ValueError, "loss: expected one of \\['cross_entropy', 'mse'\\]"),
    ({"loss": 3}, TypeError, "loss: expected one of"),
    ({"lengths": [5, 5]}, ValueError, "lengths: expected 6 values"),
    ({"lengths": [5, 5, 5, 5, 5, 9]}, ValueError, "lengths: expected values <= 5"),
    ({"lengths": [5, 5, 5, 5, 5, 0]}, ValueError, "lengths: expected values >= 1"),
])
def test_fit_argument_errors(model, data, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        train.fit(model, *data, progress=False, **kwargs)


def test_fit_with_empty_data(model):
    with pytest.raises(ValueError, match="x: expected \\[N, T, input_size\\] with N, T >= 1"):
        train.fit(model, np.zeros((0, 5, 2), np.float32), np.zeros((0, 1), np.float32), progress=False)


def test_fit_with_a_bare_layer(data):
    with pytest.raises(TypeError, match="model: expected a fastseq.train.SequenceModel"):
        train.fit(fastseq.GRU(2, 4), *data, progress=False)


# ---- save: the temporary file -----------------------------------------------------------------

def test_save_does_not_write_through_a_planted_symlink(tmp_path, lstm, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "m.fsq"
    # the name the old code used, and the first name the new code will try
    names = iter(["planted", "fresh"])
    monkeypatch.setattr("fastseq.io.secrets.token_hex", lambda n: next(names))
    os.symlink(victim, f"{target}.tmp{os.getpid()}")
    os.symlink(victim, f"{target}.planted.tmp")
    fastseq.save(lstm, target)
    assert victim.read_text() == "precious"
    assert fastseq.load(target).state_dict().keys() == lstm.state_dict().keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["victim.txt", "m.fsq", f"m.fsq.tmp{os.getpid()}", "m.fsq.planted.tmp"])


def test_save_leaves_nothing_behind_when_it_fails(tmp_path, lstm, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr("fastseq.io.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        fastseq.save(lstm, tmp_path / "m.fsq")
    assert list(tmp_path.iterdir()) == []


def test_save_gives_plain_file_permissions(tmp_path, lstm):
    umask = os.umask(0o022)
    os.umask(umask)
    fastseq.save(lstm, tmp_path / "m.fsq")
    assert (tmp_path / "m.fsq").stat().st_mode & 0o777 == 0o666 & ~umask


# ---- the command line -----------------------------------------------------------------------

def _cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def files(tmp_path, lstm):
    fastseq.save(lstm, tmp_path / "m.fsq")
    np.save(tmp_path / "x.npy", np.ones((4, 2, 5), np.float32))
    return tmp_path


def test_cli_run_into_a_missing_directory(capsys, files):
    code, _, err = _cli(capsys, "run", files / "m.fsq", files / "x.npy", "-o", files / "nope" / "y.npy")
    assert code == 1 and "does not exist; create it first" in err


@pytest.mark.parametrize("argv, message", [(["--repeat", "0"], "--repeat must be >= 1"),
                                           (["--min-time", "0"], "--min-time > 0"),
                                           (["--batch", "100000000"], "choose fewer steps or sequences")])
def test_cli_bench_bad_sizes(capsys, files, argv, message):
    code, _, err = _cli(capsys, "bench", files / "m.fsq", *argv)
    assert code == 2 and message in err


def test_cli_export_c_onto_an_existing_file(capsys, files):
    code, _, err = _cli(capsys, "export-c", files / "m.fsq", files / "x.npy")
    assert code == 1 and "exists and is not a directory" in err


def test_cli_export_c_from_a_non_ascii_path(capsys, files):
    os.rename(files / "m.fsq", files / "mödel.fsq")
    code, out, _ = _cli(capsys, "export-c", files / "mödel.fsq", files / "out")
    assert code == 0
    header = (files / "out" / "model.h").read_text(encoding="ascii")
    assert "m\\xf6del.fsq" in header


class _Boom:
    """Unpickling it would create a file: the proof that a pickle ran."""

    def __reduce__(self):
        return (open, (os.environ["FASTSEQ_TEST_MARKER"], "w"))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_cli_run_never_unpickles_its_input(capsys, files, monkeypatch, suffix):
    marker = files / "pwned"
    monkeypatch.setenv("FASTSEQ_TEST_MARKER", str(marker))
    bad = np.array([_Boom()], dtype=object)
    path = files / f"evil{suffix}"
    if suffix == ".npy":
        np.save(path, bad, allow_pickle=True)
    else:
        np.savez(path, x=bad)
    pickle.loads(pickle.dumps(_Boom())).close()
    assert marker.exists()  # the bait works
    marker.unlink()
    code, _, err = _cli(capsys, "run", files / "m.fsq", path, "-o", files / "y.npy")
    assert code == 1 and "cannot read it" in err
    assert not marker.exists()


# ---- the counted campaign (tests/fuzz/python_campaign.py), short ---------------------------

def test_python_campaign_of_mutated_files_and_bad_calls(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "fuzz", "python_campaign.py")
    proc = subprocess.run([sys.executable, script, "--files", "1500", "--seed", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "failures 0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
