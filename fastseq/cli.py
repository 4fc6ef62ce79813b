"""The `fastseq` command (also `python -m fastseq`): convert, inspect, run, time and
export recurrent models stored as .fsq files.

Exit status: 0 success, 1 error (the message says what to do), 2 bad usage.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

PROG = "fastseq"


class CLIError(Exception):
    """An error the user can fix; the message says how. Exit status 1."""


class UsageError(CLIError):
    """The command line itself is wrong. Exit status 2."""


def _say(*parts):
    print(*parts, file=sys.stderr, flush=True)


def _fmt_int(n):
    return f"{n:,}"


# ---- loading models ---------------------------------------------------------------------

def _load_model(path, trees=False):
    """(ModelFile, the layer it holds). A tree network's file: the tree itself when
    `trees`, else a CLIError (the commands but `info` run sequence layers)."""
    from . import io

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file; give the path of a .fsq model "
                       f"(make one with `{PROG} convert CHECKPOINT {os.path.splitext(path)[0] or 'model'}.fsq`)")
    try:
        model_file = io.read(path)
        model = io.build(model_file, path)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    if model_file.tree:
        if not trees:
            raise CLIError(f"{path}: holds a tree network ({model_file.kind}); this command runs sequence "
                           f"layers: describe it with `{PROG} info`, run it in Python (fastseq.load)")
        return model_file, getattr(model, "tree", model)
    # a file with an output head loads as a SequenceModel; the commands run its layer
    return model_file, getattr(model, "rnn", model)


def _apply_runtime(args):
    import fastseq

    if getattr(args, "isa", None):
        try:
            fastseq.set_isa(args.isa)
        except (ValueError, RuntimeError) as exc:
            raise CLIError(f"--isa {args.isa}: {exc} (available: {', '.join(fastseq.available_isas())})") from None
    threads = getattr(args, "threads", None)
    if isinstance(threads, int) and threads > 0:
        try:
            fastseq.set_num_threads(threads)
        except (ValueError, RuntimeError) as exc:
            raise CLIError(f"--threads {threads}: {exc}") from None


# ---- convert ----------------------------------------------------------------------------

def _check_against_torch(module, layer):
    """Max |fastseq - torch| on a small random input, or None when it cannot be run."""
    try:
        import torch

        rng = np.random.default_rng(0)
        shape = (2, 7, layer.input_size) if layer.batch_first else (7, 2, layer.input_size)
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(x))[0].numpy()
        return float(np.max(np.abs(layer(x)[0] - ref)))
    except Exception:  # a custom forward: no check
        return None


_CONVERT_FACTS = ("kind", "input_size", "hidden_size", "num_layers", "proj_size", "bidirectional", "bias",
                  "batch_first", "nonlinearity", "gate_nonlinearity", "update_nonlinearity", "reset_after",
                  "layout")


def cmd_convert(args):
    import warnings

    from . import io
    from .convert.checkpoint import load_checkpoint

    facts = {k: getattr(args, k) for k in _CONVERT_FACTS if getattr(args, k) is not None}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = load_checkpoint(args.checkpoint, module=args.module, prefix=args.prefix,
                                   trusted=args.trust_pickle, **facts)
        for w in caught:
            _say(f"{PROG} convert: warning: {w.message}")
    except (ValueError, TypeError, OSError, ImportError) as exc:
        raise CLIError(str(exc)) from None
    layer = done.layer
    note = f"; {done.where}" if done.where else ""
    if done.ignored:
        note += (f"; ignored {len(done.ignored)} other tensors ({', '.join(done.ignored[:4])}"
                 f"{', ...' if len(done.ignored) > 4 else ''})")
    if done.reference is not None:
        diff = _check_against_torch(done.reference, layer)
        if diff is not None:
            note += f"; max |fastseq - torch| on a random input: {diff:.2e}"
    io.save(layer, args.output)
    params = sum(int(a.size) for a in layer.state_dict().values())
    print(f"wrote {args.output}: {layer!r}, {_fmt_int(params)} parameters, "
          f"{_fmt_int(os.path.getsize(args.output))} bytes{note}")
    return 0


# ---- info -------------------------------------------------------------------------------

def _tensor_rows(model):
    """(name, shape, count) of each tensor of a layer or tree, and their total."""
    tensors = [(k, list(v.shape), int(v.size)) for k, v in model.state_dict().items()]
    return tensors, sum(n for _, _, n in tensors)


def _stored_bytes(layer):
    """The bytes of a layer's parameters as the C library holds them, and their types in
    words: 4 per float32; a quantised matrix its codes and scales (fs_rnn_get_param_raw)."""
    from .io import QuantisedTensor, layer_parts
    tensors = layer_parts(layer)[2].values()
    quantised = [t for t in tensors if isinstance(t, QuantisedTensor)]
    floats = sum(4 * t.size for t in tensors if not isinstance(t, QuantisedTensor))
    if not quantised:
        return floats, "float32"
    codes = sum(len(t.data) for t in quantised)
    return codes + floats, (f"{layer.dtype} matrices with their scales {_fmt_int(codes)}, "
                            f"float32 vectors {_fmt_int(floats)}")


def _info_dict(args, model_file, tensors, params, stored, **facts):
    """The JSON form of `info`: the file, `facts`, tensors, stored bytes, head, metadata and
    runtime."""
    import fastseq

    info = {"file": args.model, "bytes": model_file.size, "format_version": model_file.version,
            "kind": model_file.kind, **facts,
            "tensors": [{"name": k, "shape": s, "count": n} for k, s, n in tensors],
            "parameters": params, "weight_bytes": stored[0],
            "isa": fastseq.isa(), "available_isas": fastseq.available_isas(),
            "threads": fastseq.get_num_threads()}
    head = model_file.head
    if head is not None:
        info["head"] = {"kind": head.kind, "config": head.config, "parameters": head.param_count,
                        "tensors": [{"name": k, "shape": list(v.shape), "count": int(v.size)}
                                    for k, v in head.tensors.items()]}
    if model_file.metadata:
        info["metadata"] = model_file.metadata
    return info


def _print_info(args, model_file, info, rows, tensors, params, stored, head_note):
    """The text form of `info`: the file, `rows` (label, text), tensors, head, metadata, runtime."""
    print(f"{args.model}: fastseq model file, format version {model_file.version}, "
          f"{_fmt_int(model_file.size)} bytes")
    for label, text in rows:
        print(f"  {label:<11} {text}")
    print(f"  parameters  {_fmt_int(params)} in {len(tensors)} tensors ({_fmt_int(stored[0])} bytes {stored[1]})")
    width = max(len(k) for k, _, _ in tensors)
    for k, s, n in tensors:
        print(f"    {k:<{width}}  {str(s):<14} {_fmt_int(n):>12}")
    head = model_file.head
    if head is not None:
        print(f"  head        {head.kind}({' '.join(f'{k}={v}' for k, v in head.config.items())}){head_note}, "
              f"{_fmt_int(head.param_count)} parameters")
    if model_file.metadata:
        print("  metadata    " + "\n              ".join(
            f"{k}={_short(v)}" for k, v in model_file.metadata.items()))
    print(f"  runtime     ISA {info['isa']} (available: {', '.join(info['available_isas'])}), "
          f"up to {info['threads']} threads")
    return 0


def cmd_info(args):
    model_file, layer = _load_model(args.model, trees=True)
    if model_file.tree:
        return _info_tree(args, model_file, layer)
    D = layer.num_directions
    R = layer.output_features
    tensors, params = _tensor_rows(layer)
    layout = "[B, T, {}]" if layer.batch_first else "[T, B, {}]"
    states = {"h_n": [layer.num_layers * D, "B", R]}
    if layer.mode == "LSTM":
        states["c_n"] = [layer.num_layers * D, "B", layer.hidden_size]
    stored = _stored_bytes(layer)
    info = _info_dict(args, model_file, tensors, params, stored, layer=repr(layer), dtype=layer.dtype,
                      config=layer.config(),
                      input=layout.format(layer.input_size), output=layout.format(D * R), states=states)
    if args.json:
        print(json.dumps(info))
        return 0
    rows = [("layer", repr(layer)),
            ("config", " ".join(f"{k}={v}" for k, v in info["config"].items())),
            ("input", f"{info['input']}   (unbatched: [T, {layer.input_size}])"),
            ("output", info["output"]),
            ("states", ", ".join(f"{k} {v}" for k, v in states.items()).replace("'", ""))]
    return _print_info(args, model_file, info, rows, tensors, params, stored,
                       " (not run by `run`, `bench`, `export-c` or C)")


def _info_tree(args, model_file, tree):
    """`info` on a tree network's file: the network, its inputs and outputs, tensors, head."""
    import fastseq

    tensors, params = _tensor_rows(tree)
    H = tree.hidden_size
    output = f"h [N, {H}], c [N, {H}]" if isinstance(tree, fastseq.TreeLSTM) else f"h [N, {H}]"
    stored = 4 * params, "float32"
    info = _info_dict(args, model_file, tensors, params, stored, tree=repr(tree), config=model_file.config,
                      input=f"x [N, {tree.input_size}], parent [N]", output=output)
    if args.json:
        print(json.dumps(info))
        return 0
    rows = [("tree", repr(tree)),
            ("config", " ".join(f"{k}={v}" for k, v in model_file.config.items())),
            ("input", f"{info['input']}   (a forest of N nodes; parent -1 for a root)"),
            ("output", f"{output}   (every node's state; a root's h is its tree's vector)")]
    return _print_info(args, model_file, info, rows, tensors, params, stored, " on each root's h")


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---- run --------------------------------------------------------------------------------

def _read_input(path, key, layer):
    """(x, lengths or None) from a .npy, .npz or .csv file."""
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    lengths = None
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                names = [n for n in z.files if n != "lengths"]
                if key is None:
                    if "x" in z.files:
                        key = "x"
                    elif len(names) == 1:
                        key = names[0]
                    else:
                        raise CLIError(f"{path}: holds {', '.join(z.files)}; choose the input with --key")
                if key not in z.files:
                    raise CLIError(f"{path}: no array {key!r} (it holds {', '.join(z.files)})")
                x = z[key]
                if "lengths" in z.files:
                    lengths = z["lengths"]
        elif path.endswith(".csv"):
            x = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32, comments="#")
        else:
            x = np.load(path, allow_pickle=False)
    except CLIError:
        raise
    except (ValueError, OSError) as exc:
        what = ("one step per line, input_size comma-separated numbers" if path.endswith(".csv")
                else "a numpy array saved with numpy.save / numpy.savez")
        raise CLIError(f"{path}: cannot read it ({exc}); expected {what}") from None
    if x.dtype.kind not in "fiub":
        raise CLIError(f"{path}: expected a numeric array, got dtype {x.dtype}")
    return x, lengths


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress_bar(total, unit, enabled):
    """A tqdm bar on stderr (imported here, not at `import fastseq`); without tqdm, none."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            _say("progress needs tqdm (pip install tqdm); running without it")
        else:
            return tqdm(total=total, unit=unit, desc=f"{PROG} run", file=sys.stderr)
    return _NoBar()


def _run_chunked(layer, x, lengths, progress):
    """layer(x) in pieces, reporting progress: over time carrying the state
    (unidirectional, no lengths), else over the batch. Matches one call to float
    rounding."""
    unbatched = x.ndim == 2
    bf = layer.batch_first and not unbatched
    t_axis, b_axis = (1, 0) if bf else (0, 1)
    T = x.shape[t_axis]
    B = 1 if unbatched else x.shape[b_axis]
    lstm = layer.mode == "LSTM"
    if not layer.bidirectional and lengths is None and T > 1:
        n = min(T, 20)
        bounds = np.linspace(0, T, n + 1).astype(int)
        prog = _progress_bar(T, "steps", progress)
        ys, hx = [], None
        for a, b in zip(bounds[:-1], bounds[1:]):
            piece = x[a:b] if unbatched or not bf else x[:, a:b]
            y, state = layer(piece, hx=hx)
            ys.append(y)
            hx = state
            prog.update(int(b - a))
        prog.close()
        return np.concatenate(ys, axis=0 if (unbatched or not bf) else 1), hx
    if B > 1:
        n = min(B, 20)
        bounds = np.linspace(0, B, n + 1).astype(int)
        prog = _progress_bar(B, "sequences", progress)
        ys, hs, cs = [], [], []
        for a, b in zip(bounds[:-1], bounds[1:]):
            piece = x[a:b] if bf else x[:, a:b]
            y, state = layer(piece, lengths=None if lengths is None else lengths[a:b])
            ys.append(y)
            hs.append(state[0] if lstm else state)
            if lstm:
                cs.append(state[1])
            prog.update(int(b - a))
        prog.close()
        h = np.concatenate(hs, axis=1)
        return np.concatenate(ys, axis=b_axis), ((h, np.concatenate(cs, axis=1)) if lstm else h)
    y, state = layer(x, lengths=lengths)
    prog = _progress_bar(1, "calls", progress)
    prog.update(1)
    prog.close()
    return y, state


def _run_stream(layer, args):
    if layer.bidirectional:
        raise CLIError("--stream: a bidirectional model cannot stream (its reverse direction needs the "
                       "whole sequence); run it on a file instead")
    stream = layer.stream(1)
    I = layer.input_size
    out = np.empty(layer.output_features, dtype=np.float32)
    stdout = sys.stdout
    for lineno, line in enumerate(sys.stdin, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            values = np.array(text.replace(",", " ").split(), dtype=np.float32)
        except ValueError:
            raise CLIError(f"stdin line {lineno}: expected {I} numbers separated by commas, got {text[:60]!r}") from None
        if values.size != I:
            raise CLIError(f"stdin line {lineno}: expected {I} numbers (input_size), got {values.size}")
        stream.step(values, out=out)
        stdout.write(",".join(f"{v:.9g}" for v in out.tolist()) + "\n")
        stdout.flush()
    return 0


def cmd_run(args):
    _, layer = _load_model(args.model)
    _apply_runtime(args)
    if args.stream:
        if args.input is not None:
            raise UsageError("--stream reads frames from stdin; give no INPUT file with it")
        return _run_stream(layer, args)
    if args.input is None or args.output is None:
        raise UsageError(f"run needs INPUT and -o OUTPUT.npy (or --stream); e.g. "
                       f"`{PROG} run {args.model} x.npy -o y.npy`")
    for out in (args.output, args.state):
        _check_writable(out, "-o" if out == args.output else "--state")
    x, lengths = _read_input(args.input, args.key, layer)
    I = layer.input_size
    if x.ndim not in (2, 3) or x.shape[-1] != I:
        layout = "[B, T, {0}]" if layer.batch_first else "[T, B, {0}]"
        raise CLIError(f"{args.input}: expected shape {layout.format(I)} or [T, {I}] (one sequence), "
                       f"got {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    work = 2.0 * x.size / I * sum(int(a.size) for a in layer.state_dict().values())
    progress = not args.quiet and (args.progress or work > 2e9)
    t0 = time.perf_counter()
    try:
        if progress:
            y, state = _run_chunked(layer, x, lengths, True)
        else:
            y, state = layer(x, lengths=lengths)
    except ValueError as exc:
        raise CLIError(f"{args.input}: {exc}") from None
    elapsed = time.perf_counter() - t0
    try:
        np.save(args.output, y)
        if args.state:
            arrays = {"h_n": state[0], "c_n": state[1]} if layer.mode == "LSTM" else {"h_n": state}
            np.savez(args.state, **arrays)
    except OSError as exc:
        raise CLIError(f"cannot write the output: {exc}") from None
    if not args.quiet:
        _say(f"{PROG} run: {args.input} {tuple(x.shape)} -> {args.output} {tuple(y.shape)} "
             f"in {elapsed * 1e3:.1f} ms")
    return 0


# ---- bench ------------------------------------------------------------------------------

def _check_writable(path, option):
    """Fail before the work when an output's directory is missing."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{option} {path}: the directory {folder} does not exist; create it first")
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory; give a file name")


# inputs a bench may allocate (x, and y of the same order): beyond this, say so up front
_BENCH_MAX_FLOATS = 1 << 28


def _time_it(fn, min_time, repeat):
    """Median seconds per call over `repeat` rounds of enough calls to fill min_time."""
    fn()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= min_time / repeat or n >= 1 << 20:
            break
        n *= 2
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t0) / n)
    return float(np.median(rounds))


def cmd_bench(args):
    import fastseq

    _, layer = _load_model(args.model)
    if args.isa:
        _apply_runtime(argparse.Namespace(isa=args.isa))
    try:
        thread_list = [int(t) for t in str(args.threads).split(",")] if args.threads else [fastseq.get_num_threads()]
    except ValueError:
        raise UsageError(f"--threads: expected a number or a list like 1,2,4, got {args.threads!r}") from None
    T, B, I = args.steps, args.batch, layer.input_size
    if T < 1 or B < 1:
        raise UsageError("--steps and --batch must be >= 1")
    if args.repeat < 1 or not args.min_time > 0:
        raise UsageError(f"--repeat must be >= 1 and --min-time > 0, got {args.repeat} and {args.min_time}")
    D = 2 if layer.bidirectional else 1
    floats = T * B * max(I, D * layer.output_features)
    if floats > _BENCH_MAX_FLOATS:
        raise UsageError(f"--steps {T} x --batch {B}: the input and output would need "
                         f"{_fmt_int(4 * floats)} bytes each (the limit is "
                         f"{_fmt_int(4 * _BENCH_MAX_FLOATS)}); choose fewer steps or sequences")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I) if layer.batch_first else (T, B, I), dtype=np.float32)
    results = []
    previous = fastseq.get_num_threads()
    try:
        for threads in thread_list:
            try:
                fastseq.set_num_threads(threads)
            except (ValueError, RuntimeError) as exc:
                raise CLIError(f"--threads {threads}: {exc}") from None
            seq = _time_it(lambda: layer(x), args.min_time, args.repeat)
            row = {"case": "sequence", "model": args.model, "layer": repr(layer), "isa": fastseq.isa(),
                   "threads": threads, "steps": T, "batch": B,
                   "us_per_sequence_call": seq * 1e6, "us_per_step": seq * 1e6 / T}
            results.append(row)
            if not layer.bidirectional:
                stream = layer.stream(B)
                frame = np.ascontiguousarray(x[:, 0] if layer.batch_first else x[0])
                out = np.empty((B, layer.output_features), dtype=np.float32)
                step = _time_it(lambda: stream.step(frame, out=out), args.min_time, args.repeat)
                results.append({"case": "stream", "model": args.model, "layer": repr(layer),
                                "isa": fastseq.isa(), "threads": threads, "steps": 1, "batch": B,
                                "us_per_step": step * 1e6})
    finally:
        fastseq.set_num_threads(previous)
    if args.json:
        for row in results:
            print(json.dumps(row))
        return 0
    print(f"{args.model}: {layer!r}, ISA {fastseq.isa()}, batch {B}")
    print(f"  {'mode':<28} {'threads':>7} {'µs/step':>10} {'µs/call':>12}")
    for row in results:
        if row["case"] == "sequence":
            label, per_call = f"sequence of {T} steps", row["us_per_sequence_call"]
        else:
            label, per_call = "stream, one step per call", row["us_per_step"]
        print(f"  {label:<28} {row['threads']:>7} {row['us_per_step']:>10.2f} {per_call:>12.1f}")
    return 0


# ---- export-c and demo --------------------------------------------------------------------

def cmd_export_c(args):
    from .export_c import export_c

    model_file, layer = _load_model(args.model)
    if os.path.exists(args.dir) and not os.path.isdir(args.dir):
        raise CLIError(f"{args.dir}: exists and is not a directory; give a directory for model.c/.h")
    # the path goes into a comment of the generated ASCII files: escape what is not ASCII
    source = args.model.encode("ascii", "backslashreplace").decode("ascii")
    try:
        written = export_c(layer, args.dir, name=args.name, batch=args.batch, max_steps=args.max_steps,
                           threads=args.threads, source=source)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    for path in written:
        print(f"wrote {path} ({_fmt_int(os.path.getsize(path))} bytes)")
    from ._paths import get_include, get_library_dir
    out_dir = os.path.dirname(written[1]) or "."
    try:  # the C library this package ships (README: "C API")
        inc, lib = get_include(), get_library_dir()
    except FileNotFoundError:  # a source tree: build the library with CMake first
        inc, lib = "<fastseq>/src/include", "<fastseq>/build"
    print(f"compile with the fastseq C library:\n"
          f"  cc -std=c99 -I{inc} -I{out_dir} {written[1]} your_main.c -L{lib} -lfastseq -fopenmp -lm")
    return 0


DEMO_MODEL = "data/demo.fsq"  # inside the fastseq package; made by tools/train_demo.py


def _load_char_model(path):
    """(SequenceModel, metadata, source) of a character language model: the bundled one,
    or the .fsq file at `path`."""
    from . import io

    if path is None:
        from importlib import resources

        source = f"fastseq/{DEMO_MODEL}"
        try:
            data = (resources.files("fastseq") / DEMO_MODEL).read_bytes()
        except OSError:
            raise CLIError(f"the bundled demo model ({source}) is missing from this install; "
                           "reinstall fastseq (pip install .), or make one with "
                           "`python tools/train_demo.py` and pass it with --model") from None
        try:
            model_file = io.decode(data, source)
            model = io.build(model_file, source)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    else:
        source = path
        if not os.path.exists(path):
            raise CLIError(f"{path}: no such file")
        try:
            model_file = io.read(path)
            model = io.build(model_file, path)
        except (ValueError, OSError) as exc:
            raise CLIError(str(exc)) from None
    meta = model_file.metadata
    vocab = meta.get("vocab")
    if model_file.head is None or not isinstance(vocab, str) or not vocab:
        raise CLIError(f"{source}: not a character model: `{PROG} demo` needs a model with an output head "
                       "and a 'vocab' metadata entry (as tools/train_demo.py writes)")
    V = len(vocab)
    if model.rnn.input_size != V or model.head.out_features != V or model.rnn.bidirectional:
        raise CLIError(f"{source}: the vocabulary has {V} characters but the model reads "
                       f"{model.rnn.input_size} and writes {model.head.out_features} per step")
    return model, meta, source


def cmd_demo(args):
    import fastseq

    if args.length < 0:
        raise UsageError(f"--length {args.length}: expected a number of characters >= 0")
    if not args.temperature >= 0:
        raise UsageError(f"--temperature {args.temperature}: expected >= 0 (0: always the likeliest character)")
    model, meta, _ = _load_char_model(args.model)
    _apply_runtime(args)
    vocab = meta["vocab"]
    unknown = meta.get("unknown") if meta.get("unknown") in vocab else vocab[0]
    index = {ch: i for i, ch in enumerate(vocab)}
    prompt = args.prompt if args.prompt is not None else meta.get("default_prompt", "")
    V, H = len(vocab), model.rnn.output_features
    head, rng, temperature = model.head, np.random.default_rng(args.seed), float(args.temperature)
    noise = None

    stream = model.rnn.stream()
    x = np.zeros((1, V), dtype=np.float32)
    h = np.empty((1, H), dtype=np.float32)
    out = sys.stdout
    clock = time.perf_counter

    def step(i):
        x[0, :] = 0.0
        x[0, i] = 1.0
        stream.step(x, out=h)

    # the prompt, through the streaming API one character at a time (a newline if empty:
    # the start of a docstring)
    t0 = clock()
    for ch in prompt or "\n":
        step(index.get(ch, index[unknown]))
    prompt_s = clock() - t0
    out.write(prompt)
    out.flush()

    # sampling from softmax(logits / T) by the Gumbel-max trick: argmax(logits + T g), with
    # g = -log(-log(u)) for u uniform, is exactly such a sample; the noise is drawn in
    # blocks, ahead of the steps
    block = 1024
    model_s = 0.0
    t0 = clock()
    for k in range(args.length):
        t1 = clock()
        logits = head.forward(h)[0]
        model_s += clock() - t1
        if temperature == 0.0:
            i = int(np.argmax(logits))
        else:
            if k % block == 0:
                noise = rng.gumbel(size=(block, V)) * temperature
            i = int(np.argmax(logits + noise[k % block]))
        out.write(vocab[i])
        out.flush()
        t1 = clock()
        step(i)
        model_s += clock() - t1
    total_s = clock() - t0
    out.write("\n")
    out.flush()

    n, threads = args.length, fastseq.get_num_threads()
    rate = n / total_s if total_s > 0 else float("inf")
    per_char = 1e6 * total_s / n if n else 0.0
    per_step = 1e6 * model_s / n if n else 0.0
    _say(f"[{n} characters in {total_s:.3f} s: {rate:,.0f} chars/s, {per_char:.1f} µs per character "
         f"({per_step:.1f} µs per model step: {model.rnn!r} + linear head, streaming); "
         f"prompt of {len(prompt)} characters fed in {1e3 * prompt_s:.2f} ms; "
         f"ISA {fastseq.isa()}, {threads} thread{'s' if threads != 1 else ''}]")
    return 0


# ---- the parser -----------------------------------------------------------------------------

_EPILOG = f"""\
examples:
  {PROG} convert lstm.pt model.fsq             a pickled nn.LSTM / nn.GRU / nn.RNN (or a module holding one)
  {PROG} convert weights.pt model.fsq --kind GRU --time-major
                                                a state_dict (sizes are read from the weights)
  {PROG} convert vad.jit model.fsq --module rnn  a TorchScript archive; also .onnx, .keras, .npz
  {PROG} info model.fsq                        layers, shapes, parameters, ISA
  {PROG} run model.fsq x.npy -o y.npy          x: [T, B, input_size] (.npy / .npz / .csv)
  {PROG} run model.fsq --stream < frames.csv   one comma-separated frame per line in, one output line out
  {PROG} bench model.fsq --steps 100 --threads 1,2
  {PROG} export-c model.fsq out/               model.c / model.h: weights as C arrays, no heap, no files
  {PROG} demo --prompt "Return the " --length 200   text from the bundled character model, streaming

exit status: 0 success, 1 error, 2 bad usage
"""


def build_parser():
    from . import __version__

    p = argparse.ArgumentParser(prog=PROG, description="fastseq: run recurrent neural networks (LSTM, GRU, "
                                "RNN, FastRNN, FastGRNN) fast on a CPU, from Python or plain C.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("convert", help="convert a torch, ONNX, Keras or EdgeML checkpoint to a .fsq model",
                       description="Convert a checkpoint to a .fsq model file. CHECKPOINT is a torch file (a "
                       "pickled module or cell, a state_dict, a dict holding one under 'state_dict' / 'model', a "
                       "TorchScript archive), a .npz of arrays, an ONNX model (.onnx) or a Keras model (.keras). "
                       "Pickles are read without running code from the file (torch.load weights_only=True; "
                       "torch's recurrent modules are allowed); --trust-pickle lifts that for files you trust. "
                       "Sizes are read from the weights; what they cannot tell (batch_first, an RNN's "
                       "nonlinearity, ...) comes from the options below or is an error naming the option.")
    c.add_argument("checkpoint", help="torch (.pt/.pth/.jit), .npz, .onnx or .keras file")
    c.add_argument("output", help="the .fsq file to write")
    c.add_argument("--kind", choices=["LSTM", "GRU", "RNN", "FastRNN", "FastGRNN"],
                   help="layer kind of a state_dict (default: from the weights when they tell)")
    c.add_argument("--input-size", type=int)
    c.add_argument("--hidden-size", type=int)
    c.add_argument("--num-layers", type=int)
    c.add_argument("--proj-size", type=int, help="LSTM projection size")
    c.add_argument("--bidirectional", action="store_true", default=None)
    c.add_argument("--no-bias", dest="bias", action="store_false", default=None, help="the layer has no biases")
    c.add_argument("--batch-first", dest="batch_first", action="store_true", default=None,
                   help="inputs are [B, T, I] (a state_dict cannot tell)")
    c.add_argument("--time-major", dest="batch_first", action="store_false",
                   help="inputs are [T, B, I] (a state_dict cannot tell)")
    edgeml_acts = ["tanh", "relu", "sigmoid", "quantTanh", "quantSigm", "quantSigm4"]
    c.add_argument("--nonlinearity", choices=edgeml_acts,
                   help="RNN / FastRNN activation (a state_dict cannot tell; quant*: EdgeML state_dicts)")
    c.add_argument("--gate-nonlinearity", choices=edgeml_acts, help="FastGRNN gate activation")
    c.add_argument("--update-nonlinearity", choices=edgeml_acts,
                   help="FastRNN / FastGRNN update activation")
    c.add_argument("--reset-before", dest="reset_after", action="store_false", default=None,
                   help="a GRU state_dict is of the reset-before form (default: torch's reset-after)")
    c.add_argument("--layout", choices=["row", "torch"],
                   help="EdgeML matrices: row (x @ W, W [in, hid]) or torch (x @ W.T), when shapes cannot tell")
    c.add_argument("--prefix", help="key prefix of the layer's tensors in a state_dict, e.g. 'encoder.rnn.'")
    c.add_argument("--module", help="the recurrent submodule (or state_dict prefix, ONNX node, Keras layer) "
                   "to convert when the file holds several, e.g. 'decoder.rnn'")
    c.add_argument("--trust-pickle", action="store_true",
                   help="load a full pickle: it can run any code in the file; only for files you trust")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("info", help="describe a .fsq model: layers, shapes, parameters, ISA",
                       description="Describe a .fsq model file: its layer, configuration, input and output "
                       "shapes, every tensor, the parameter count and the ISA fastseq runs it with.")
    i.add_argument("model", help=".fsq model file")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=cmd_info)

    r = sub.add_parser("run", help="run a model on an input file, or on frames from stdin",
                       description="Run a .fsq model. INPUT is a .npy, a .npz (array 'x' or --key; an "
                       "optional 'lengths' array gives per-sequence lengths) or a .csv (one step per line, "
                       "input_size comma-separated numbers). The output sequence is written with numpy.save. "
                       "With --stream, frames are read from stdin (one CSV line per step) and each output "
                       "is printed as one CSV line as soon as it is computed.")
    r.add_argument("model", help=".fsq model file")
    r.add_argument("input", nargs="?", help="input .npy / .npz / .csv")
    r.add_argument("-o", "--output", help="where to write the output (.npy)")
    r.add_argument("--key", help="array name in a .npz input (default 'x' or its only array)")
    r.add_argument("--state", help="also write the final states (h_n, and c_n for an LSTM) to this .npz")
    r.add_argument("--stream", action="store_true", help="read frames from stdin, print outputs per line")
    r.add_argument("--threads", type=int, help="maximum threads")
    r.add_argument("--isa", help="force a kernel level (generic, avx2, ...)")
    r.add_argument("--progress", action="store_true", help="always report progress (default: for long runs)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", help="time a model: µs per step and per sequence",
                       description="Time one model on random input: a whole sequence per call, and "
                       "streaming (one step per call, unidirectional models).")
    b.add_argument("model", help=".fsq model file")
    b.add_argument("--steps", type=int, default=100, help="sequence length (default 100)")
    b.add_argument("--batch", type=int, default=1, help="sequences per call (default 1)")
    b.add_argument("--threads", help="thread count, or a list like 1,2,4 (default: the current maximum)")
    b.add_argument("--isa", help="force a kernel level (generic, avx2, ...)")
    b.add_argument("--repeat", type=int, default=5, help="timing rounds; the median is reported (default 5)")
    b.add_argument("--min-time", type=float, default=0.5, help="seconds to spend per measurement (default 0.5)")
    b.add_argument("--json", action="store_true", help="print JSON lines")
    b.set_defaults(func=cmd_bench)

    e = sub.add_parser("export-c", help="write model.c / model.h to run the model with no heap and no files",
                       description="Write DIR/NAME.c and DIR/NAME.h: the weights as static const float arrays "
                       "and functions that build the model, a stream and a forward pass in caller-provided "
                       "buffers whose sizes are macros in NAME.h. Link with the fastseq C library.")
    e.add_argument("model", help=".fsq model file")
    e.add_argument("dir", help="output directory (created if missing)")
    e.add_argument("--name", default="model", help="file and symbol prefix (default 'model')")
    e.add_argument("--batch", type=int, default=1, help="sequences per call the buffers are sized for (default 1)")
    e.add_argument("--max-steps", type=int, default=100,
                   help="longest sequence NAME_forward accepts; sizes its workspace (default 100)")
    e.add_argument("--threads", type=int, default=1, help="threads the buffers are sized for (default 1)")
    e.set_defaults(func=cmd_export_c)

    d = sub.add_parser("demo", help="generate text with the bundled character model, streaming",
                       description="Generate text with the demo model bundled with fastseq: a small "
                       "character-level LSTM that fastseq trained itself (truncated BPTT, "
                       "tools/train_demo.py) on the docstrings of Python's standard library. The "
                       "prompt goes through the streaming API (layer.stream()) one character at a "
                       "time; then each new character is sampled from softmax(head(h) / T) and fed "
                       "back, printed as it comes. The speed is reported on stderr at the end.")
    d.add_argument("--prompt", metavar="TEXT", help="text to start from (default: the model's own, "
                   "\"Return the \")")
    d.add_argument("--length", metavar="N", type=int, default=300, help="characters to generate (default 300)")
    d.add_argument("--temperature", metavar="T", type=float, default=0.7,
                   help="sampling temperature; 0: always the likeliest character (default 0.7)")
    d.add_argument("--seed", metavar="S", type=int, default=0,
                   help="sampling seed (default 0: the same text each run)")
    d.add_argument("--model", metavar="PATH", help="another character model .fsq (default: the bundled one)")
    d.add_argument("--threads", metavar="N", type=int, default=1,
                   help="threads (default 1: the fastest for one stream)")
    d.add_argument("--isa", help="force a kernel level (generic, avx2, ...)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except CLIError as exc:
        _say(f"{PROG} {args.command}: error: {exc}")
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
