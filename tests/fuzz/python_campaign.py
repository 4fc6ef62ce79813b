"""A counted adversarial campaign against the Python side (the figures of issue 16):

1. mutated model files through both loaders: the Python reader (fastseq.io.decode +
   build, what fastseq.load runs) and the C reader (fs_model_inspect, fs_model_load);
2. bad calls to the public Python API: every entry point with each value from a pool of
   wrong types, sizes, byte orders and shapes.

A clean outcome is an exception of an expected kind (ValueError, TypeError; MemoryError
for a size that is legal but too big) or, for inputs that are valid after all (another
real dtype, another byte order), the same result as the canonical input. Anything else
-- another exception type, a different result, or a crash (run it in a child process) --
is counted as a failure and printed.

    python tests/fuzz/python_campaign.py [--files N] [--seed S]

Prints one line of counts; exit status 1 on any failure. The pytest suite runs a short
campaign (tests/test_reliability.py); the figures in the notes come from long ones.
"""
import argparse
import glob
import os
import sys

import numpy as np

import fastseq
from fastseq import _core, io, train

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "model_load")
EXPECTED = (ValueError, TypeError, MemoryError)


def _mutate(data, rng):
    """One to four byte-level edits: flip, set to an edge value, insert, delete, truncate,
    or splice a run; afterwards the checksums are recomputed half of the time."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 6))
        at = int(rng.integers(0, max(len(b), 1)))
        if op == 0 and b:
            b[at] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and len(b) >= at + 4:
            b[at:at + 4] = int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 64])).to_bytes(4, "little")
        elif op == 2:
            b[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif op == 3 and b:
            del b[at:at + int(rng.integers(1, 9))]
        elif op == 4:
            del b[at:]
        elif op == 5 and len(b) > 8:
            src = int(rng.integers(0, len(b) - 8))
            b[at:at + 8] = b[src:src + 8]
    if rng.random() < 0.5:
        _fix_checksums(b)
    return bytes(b)


def _fix_checksums(b):
    """file_size and every CRC-32 made consistent (docs/fsq-format.md), so that edits
    reach the field checks behind the checksums."""
    import zlib
    if len(b) < 32:
        return
    b[16:24] = len(b).to_bytes(8, "little")
    b[28:32] = zlib.crc32(bytes(b[:28])).to_bytes(4, "little")
    at = 32
    while len(b) - at >= 24:
        length = min(int.from_bytes(b[at + 8:at + 16], "little"), len(b) - at - 24)
        crc = zlib.crc32(bytes(b[at + 24:at + 24 + length]), zlib.crc32(bytes(b[at:at + 20])))
        b[at + 20:at + 24] = crc.to_bytes(4, "little")
        at += 24 + length


def mutated_files(n, rng, failures):
    """Returns (files tried, loaded by Python, loaded by C)."""
    seeds = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(CORPUS, "*.fsq")))]
    py_ok = c_ok = 0
    for i in range(n):
        data = _mutate(seeds[i % len(seeds)], rng)
        try:
            model = io.build(io.decode(data, "<mutated>"), "<mutated>")
            layer = model.rnn if isinstance(model, train.SequenceModel) else model
            layer(np.ones((2, 1, layer.input_size), np.float32))
            py_ok += 1
        except EXPECTED:
            pass
        except Exception as exc:  # noqa: BLE001 -- any other kind is the finding
            failures.append(f"python reader, file {i}: {exc!r}")
        try:
            _core.model_inspect(data)
            m = _core.model_load(data)
            m.forward(np.ones((2, 1, m.input_size), np.float32), 2, 1, False, None, None, None)
            c_ok += 1
        except EXPECTED + (RuntimeError,):  # FS_ERR_UNSUPPORTED: an unknown kind or key
            pass
        except Exception as exc:  # noqa: BLE001
            failures.append(f"C reader, file {i}: {exc!r}")
    return n, py_ok, c_ok


# ---- bad API calls ------------------------------------------------------------------------

def _bad_values(shape):
    """Wrong values for an array argument whose valid shape is `shape`."""
    good = np.ones(shape, np.float32)
    return [None, 1.5, "x", [], object(), -1, 2**31, 2**63, float("nan"),
            np.ones(shape, np.complex64), np.array([None] * good.size, dtype=object).reshape(shape),
            np.ones(shape[:-1] + (shape[-1] + 1,), np.float32),
            np.ones((0,) + shape[1:], np.float32), np.ones(shape + (1,), np.float32),
            np.full(shape, np.inf, np.float32)[..., :0], np.ones(shape, "U1")]


def _equivalent_values(shape):
    """Unusual but valid encodings of np.ones(shape): must give the same result."""
    return [np.ones(shape, ">f4"), np.ones(shape, np.float64), np.ones(shape, np.int64),
            np.asfortranarray(np.ones(shape, np.float32)), np.ones(shape, np.float32).tolist(),
            np.ones(shape + (2,), np.float32)[..., 0]]


def _bad_ints():
    return [None, 1.5, "2", True, -1, 0, 2**31, 2**63, float("inf"), [1], np.float32(2)]


def bad_calls(failures):
    """Returns (calls tried, calls that raised an expected error, equivalent inputs checked)."""
    tried = raised = same = 0

    def expect_error(fn, what):
        nonlocal tried, raised
        tried += 1
        try:
            fn()
        except EXPECTED:
            raised += 1
            return
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{what}: {exc!r}")
            return
        failures.append(f"{what}: accepted")

    def expect_same(fn, ref, what):
        nonlocal tried, same
        tried += 1
        try:
            got = fn()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{what}: {exc!r}")
            return
        if not np.array_equal(np.asarray(got), ref):
            failures.append(f"{what}: a different result")
        else:
            same += 1

    layers = [fastseq.LSTM(3, 4, seed=0), fastseq.GRU(3, 4, num_layers=2, seed=0),
              fastseq.RNN(3, 4, bidirectional=True, seed=0), fastseq.FastGRNN(3, 4, seed=0),
              fastseq.FastRNN(3, 4, w_rank=2, seed=0)]
    for layer in layers:
        name = type(layer).__name__
        x_shape = (5, 2, 3)
        ref = layer(np.ones(x_shape, np.float32))[0]
        for v in _bad_values(x_shape):
            expect_error(lambda: layer(v), f"{name}(x={v!r:.40})")
            expect_error(lambda: layer.backward(v, None), f"{name}.backward(x={v!r:.40})")
        for v in _equivalent_values(x_shape):
            expect_same(lambda: layer(v)[0], ref, f"{name}(x={v!r:.40})")
        for v in _bad_values((layer.num_layers * layer.num_directions, 2, 4)):
            if v is not None:
                expect_error(lambda: layer(np.ones(x_shape, np.float32), hx=v if name != "LSTM" else (v, v)),
                             f"{name}(hx={v!r:.40})")
        for v in _bad_values((2,)):
            if v is not None:
                expect_error(lambda: layer(np.ones(x_shape, np.float32), lengths=v), f"{name}(lengths={v!r:.40})")
        for v in ([0, 5], [6, 1], [1.5, 2], [-1, 2], [2**40, 1]):
            expect_error(lambda: layer(np.ones(x_shape, np.float32), lengths=v), f"{name}(lengths={v})")
        sd = layer.state_dict()
        key = next(iter(sd))
        for v in _bad_values(sd[key].shape):
            expect_error(lambda: layer.load_state_dict({**sd, key: v}), f"{name}.load_state_dict({key}={v!r:.40})")
        expect_error(lambda: layer.load_state_dict({k: sd[k] for k in list(sd)[1:]}), f"{name}.load_state_dict(missing)")
        expect_error(lambda: layer.load_state_dict({**sd, "bogus": sd[key]}), f"{name}.load_state_dict(extra)")
        if not layer.bidirectional:
            for b in _bad_ints():
                if b not in (None,) and not (isinstance(b, int) and not isinstance(b, bool) and 1 <= b < 2**31):
                    expect_error(lambda: layer.stream(b), f"{name}.stream({b!r})")
            stream = layer.stream(2)
            sref = layer.stream(2).step(np.ones((2, 3), np.float32))
            for v in _bad_values((2, 3)):
                expect_error(lambda: stream.step(v), f"{name}.stream.step({v!r:.40})")
            for v in _bad_values((2, layer.output_features))[1:]:  # out=None is fine
                expect_error(lambda: stream.step(np.ones((2, 3), np.float32), out=v),
                             f"{name}.stream.step(out={v!r:.40})")
            for v in _equivalent_values((2, 3)):
                expect_same(lambda: (stream.reset(), stream.step(v))[1], sref, f"{name}.stream.step({v!r:.40})")
            for v in _bad_values((layer.num_layers, 2, 4)):
                if v is not None:
                    expect_error(lambda: setattr(stream, "state", v if name != "LSTM" else (v, v)),
                                 f"{name}.stream.state={v!r:.40}")
    for kw in ("input_size", "hidden_size", "num_layers"):
        for v in _bad_ints():
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31):
                args = {"input_size": 3, "hidden_size": 4, "num_layers": 1, kw: v}
                for cls in (fastseq.LSTM, fastseq.GRU, fastseq.RNN, fastseq.FastRNN, fastseq.FastGRNN):
                    expect_error(lambda: cls(**args), f"{cls.__name__}({kw}={v!r})")
    for bad in ({"dropout": 0.5}, {"proj_size": -1}, {"proj_size": 4}, {"proj_size": 2**31}):
        expect_error(lambda: fastseq.LSTM(3, 4, **bad), f"LSTM({bad})")
    for bad in ({"nonlinearity": "gelu"}, {"w_rank": -1}, {"u_rank": 1.5}, {"nonlinearity": None}):
        expect_error(lambda: fastseq.FastRNN(3, 4, **bad), f"FastRNN({bad})")
    for v in _bad_ints():
        if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _core.MAX_THREADS):
            expect_error(lambda: fastseq.set_num_threads(v), f"set_num_threads({v!r})")
    for v in (None, "AVX2", "generic ", "", 1, ["avx2"], "sse4"):
        expect_error(lambda: fastseq.set_isa(v), f"set_isa({v!r})")
    for cls in (fastseq.LSTMCell, fastseq.GRUCell, fastseq.RNNCell):
        cell = cls(3, 4, seed=0)
        for v in _bad_values((2, 3)):
            expect_error(lambda: cell(v), f"{cls.__name__}({v!r:.40})")
    model = train.SequenceModel(fastseq.GRU(2, 4, batch_first=True, seed=0), train.LastStepLinear(4, 1, seed=0))
    x, y = np.ones((6, 5, 2), np.float32), np.ones((6, 1), np.float32)
    for kwargs in ({"batch_size": 0}, {"batch_size": -3}, {"batch_size": 1.5}, {"epochs": -1},
                   {"loss": "bogus"}, {"loss": 3}, {"optimizer": "bogus"}, {"lengths": [1, 2]},
                   {"lengths": [6] * 6}, {"lengths": [0] * 6}, {"lengths": "abc"}):
        expect_error(lambda: train.fit(model, x, y, progress=False, **kwargs), f"fit({kwargs})")
    for xx, yy in ((np.ones((0, 5, 2)), np.ones((0, 1))), (np.ones((6, 2)), y), (x, np.ones(5)), (x, 3.0)):
        expect_error(lambda: train.fit(model, xx, yy, progress=False), f"fit(x {np.shape(xx)}, y {np.shape(yy)})")
    expect_error(lambda: train.fit(fastseq.GRU(2, 4), x, y, progress=False), "fit(bare layer)")
    return tried, raised, same


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=2000, help="mutated model files (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    failures = []
    rng = np.random.default_rng(args.seed)
    files, py_ok, c_ok = mutated_files(args.files, rng, failures)
    calls, raised, same = bad_calls(failures)
    for f in failures[:40]:
        print("FAIL", f)
    print(f"mutated files {files} (loaded: python {py_ok}, C {c_ok}); bad API calls {calls} "
          f"(clean errors {raised}, equivalent inputs with identical results {same}); failures {len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
