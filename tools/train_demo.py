"""Train the demo model bundled with fastseq: a character-level LSTM language model
(fastseq/data/demo.fsq, used by `fastseq demo`).

    python tools/train_demo.py                  # writes fastseq/data/demo.fsq
    python tools/train_demo.py --epochs 1 --out /tmp/lm.fsq

The text is the docstrings of a fixed list of standard-library modules, read from their
source files with `ast` (nothing is imported), so it ships with Python itself and is the
same on every machine with the same Python minor version; the file records that version
and the text's SHA-256. Training is fastseq's own: truncated BPTT (fastseq.train.tbptt)
over parallel streams of the text, Adam, gradient clipping -- no torch. Seeded: the same
machine, Python and fastseq give the same file.

Model: one-hot characters (a 96-symbol vocabulary: newline and printable ASCII; any
other character is read as '?') -> LSTM -> PerStepLinear to next-character logits.
The vocabulary, the Python version, the training settings, the command that reproduces the
file (every setting spelled out) and the fastseq revision (git commit of this checkout,
"-dirty" with uncommitted changes) are stored in the file's metadata section
(docs/fsq-format.md). tests/test_demo_model.py checks the shipped figure against a fresh
evaluation; FASTSEQ_RETRAIN_DEMO=1 makes it retrain too (a few minutes) and compare.
"""
import argparse
import ast
import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
import time

import numpy as np

import fastseq
from fastseq import train

VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 symbols
UNKNOWN = "?"
MAX_BYTES = 500_000  # the bundled file's size limit

# A fixed list of standard-library modules, documentation-rich and pure Python (read from
# source, so the same text on every platform). A module missing from an install is skipped
# and reported; the text's SHA-256 in the metadata tells whether two corpora agree.
MODULES = [
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "cmd", "code", "codecs", "codeop",
    "collections", "configparser", "contextlib", "copy", "cProfile", "csv", "dataclasses", "datetime",
    "decimal", "_pydecimal", "difflib", "dis", "doctest", "email.message", "enum", "filecmp",
    "fileinput", "fnmatch", "fractions", "ftplib", "functools", "genericpath", "getopt", "gettext",
    "glob", "graphlib", "gzip", "heapq", "hmac", "html.parser", "http.client", "imaplib", "inspect",
    "io", "_pyio", "ipaddress", "json", "keyword", "linecache", "locale", "logging", "mailbox",
    "netrc", "ntpath", "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle",
    "plistlib", "posixpath", "pprint", "pstats", "queue", "quopri", "random", "re", "reprlib",
    "sched", "secrets", "selectors", "shlex", "shutil", "smtplib", "socketserver", "sqlite3",
    "stat", "statistics", "string", "struct", "subprocess", "symtable", "tabnanny", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback", "turtle",
    "types", "typing", "unittest.case", "urllib.parse", "uuid", "warnings", "wave", "weakref",
    "xml.dom.minidom", "zipfile", "zipimport",
]


# ---- the text ---------------------------------------------------------------------------

def _module_source(stdlib, name):
    base = os.path.join(stdlib, *name.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _docstrings(tree):
    """Docstrings of a module and its classes and functions, in source order."""
    out = []

    def visit(node):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                out.append(doc.strip())
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def gather_docstrings(modules=MODULES):
    """(docstrings, modules used, modules missing), in the order of `modules`."""
    stdlib = sysconfig.get_paths()["stdlib"]
    parts, used, missing = [], [], []
    for name in modules:
        path = _module_source(stdlib, name)
        if path is None:
            missing.append(name)
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        parts.extend(_docstrings(tree))
        used.append(name)
    if not parts:
        raise SystemExit(f"no standard-library sources found under {stdlib}: this Python ships "
                         "without its .py files, so the demo text cannot be gathered")
    return parts, used, missing


def join(docstrings):
    return "".join(d + "\n\n" for d in docstrings)


def encode_text(text):
    """Character indices into VOCAB (uint8); characters outside it become UNKNOWN."""
    table = np.full(128, VOCAB.index(UNKNOWN), dtype=np.uint8)
    for i, ch in enumerate(VOCAB):
        table[ord(ch)] = i
    codes = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)  # non-ASCII -> '?'
    return table[codes]


def split_text(docs):
    """(training ids, held-out ids): every 20th docstring is held out to measure bits per
    character on unseen text."""
    return (encode_text(join(d for i, d in enumerate(docs) if i % 20 != 19)),
            encode_text(join(docs[19::20])))


# ---- provenance ----------------------------------------------------------------------------

def revision():
    """The git commit of the checkout holding this script, "-dirty" when tracked files
    differ from it; "unknown" outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*a):
        try:
            r = subprocess.run(["git", "-C", root, *a], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# settings that change the model (not --out, --print-every): the command spells each out
SETTINGS = ("hidden", "epochs", "batch", "bptt", "chunks", "lr", "lr_final", "clip", "seed",
            "max_chars", "prompt")


def command(args):
    """The command line that retrains this model, every setting explicit (so a later change
    of a default does not change what it means)."""
    opts = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(getattr(args, k)))}" for k in SETTINGS)
    return f"python tools/train_demo.py {opts}"


# ---- training ------------------------------------------------------------------------------

def bits_per_char(model, ids, streams=8):
    """Next-character cross-entropy of `model` over `ids`, in bits per character, through
    the inference forward (split into `streams` parallel pieces)."""
    V = len(VOCAB)
    n = (len(ids) - 1) // streams
    rows = np.stack([ids[s * n:s * n + n + 1] for s in range(streams)], axis=1)  # [n + 1, streams]
    x = np.eye(V, dtype=np.float32)[rows[:-1]]
    logits, _ = model.predict(x)
    nats, _ = train.CrossEntropyLoss()(logits, rows[1:].astype(np.int32))
    return nats / np.log(2.0)


def run(args):
    t_start = time.monotonic()
    docs, used, missing = gather_docstrings()
    text = join(docs)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    print(f"text: {len(docs):,} docstrings of {len(used)} standard-library modules of Python "
          f"{sys.version.split()[0]}: {len(text):,} characters, sha256 {sha[:16]}...", flush=True)
    if missing:
        print(f"  (not in this install, skipped: {', '.join(missing)})", flush=True)
    train_ids, val_ids = split_text(docs)
    if args.max_chars:
        train_ids, val_ids = train_ids[:args.max_chars], val_ids[:max(args.max_chars // 20, 2000)]

    V, H, B, K = len(VOCAB), args.hidden, args.batch, args.bptt
    rnn = fastseq.LSTM(V, H, seed=args.seed)
    model = train.SequenceModel(rnn, train.PerStepLinear(H, V, seed=args.seed + 1))
    n_params = model.params.size
    print(f"model: LSTM({V}, {H}) + PerStepLinear({H}, {V}): {n_params:,} parameters "
          f"({4 * n_params:,} bytes float32)", flush=True)
    if 4 * n_params > MAX_BYTES - 4096:
        raise SystemExit(f"--hidden {H}: the model would not fit {MAX_BYTES:,} bytes")

    opt = train.Adam(model, lr=args.lr)
    loss_fn = train.CrossEntropyLoss()
    eye = np.eye(V, dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    L = len(train_ids) // B                    # each stream's length per epoch
    window = K * args.chunks                   # steps per tbptt call (the state carries over)
    windows = (L - 1 + window - 1) // window
    total = args.epochs * sum(-(-(min((w + 1) * window, L - 1) - w * window) // K) for w in range(windows))
    print(f"training: {args.epochs} epochs x {B} streams x {L:,} steps, TBPTT({K}, {K}), "
          f"Adam lr {args.lr} -> {args.lr * args.lr_final:.2g}, clip {args.clip}; {total} updates",
          flush=True)
    updates, seen, t0 = 0, 0, time.monotonic()
    last_print = 0.0
    for epoch in range(args.epochs):
        # a fresh split each epoch: the streams start at a seeded offset into the (circular) text
        start = int(rng.integers(0, L))
        stream_ids = np.stack([np.roll(train_ids, -(start + s * L))[:L] for s in range(B)], axis=1)
        state, losses = None, []
        for w in range(windows):
            lo, hi = w * window, min((w + 1) * window, L - 1)
            x = eye[stream_ids[lo:hi]]                           # [T, B, V] one-hot
            y = stream_ids[lo + 1:hi + 1].astype(np.int32)      # next characters
            # cosine decay from lr to lr * lr_final over all updates
            frac = updates / max(total - 1, 1)
            opt.lr = args.lr * (args.lr_final + (1 - args.lr_final) * 0.5 * (1 + np.cos(np.pi * frac)))
            chunk_losses, state = train.tbptt(model, loss_fn, x, y, K, K, optimizer=opt, hx=state,
                                              clip_norm=args.clip)
            losses.extend(chunk_losses)
            updates += len(chunk_losses)
            seen += (hi - lo) * B
            now = time.monotonic()
            if now - last_print > args.print_every or w == windows - 1:
                last_print = now
                mean = float(np.mean(losses))  # this epoch's so far
                print(f"epoch {epoch + 1}/{args.epochs}  window {w + 1:>3}/{windows}  update {updates:>5}/{total}"
                      f"  loss {mean:.4f} ({mean / np.log(2):.3f} bits/char)"
                      f"  {seen / (now - t0):,.0f} chars/s  {now - t0:.0f}s", flush=True)
    train_seconds = time.monotonic() - t0
    train_loss = float(np.mean(losses))  # the last epoch's mean
    val_bpc = bits_per_char(model, val_ids)
    print(f"done in {train_seconds:.1f}s: {seen:,} characters; last epoch's training loss {train_loss:.4f} "
          f"({train_loss / np.log(2):.3f} bits/char); held-out text {val_bpc:.3f} bits/char", flush=True)

    metadata = {
        "model": "char_lm",
        "vocab": VOCAB,
        "unknown": UNKNOWN,
        "input": "one_hot",
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "python_full": sys.version.split()[0],
        "corpus": f"docstrings of {len(used)} standard-library modules (tools/train_demo.py)",
        "corpus_chars": len(text),
        "corpus_sha256": sha,
        "trainer": "tools/train_demo.py",
        "fastseq_version": fastseq.__version__,
        "fastseq_revision": revision(),
        "command": command(args),
        "hidden": H,
        "lr": args.lr,
        "lr_final": args.lr_final,
        "clip": args.clip,
        "chunks": args.chunks,
        "max_chars": args.max_chars,
        "seed": args.seed,
        "epochs": args.epochs,
        "updates": updates,
        "tbptt": K,
        "batch": B,
        "train_loss": round(train_loss, 4),
        "val_bits_per_char": round(float(val_bpc), 4),
        "default_prompt": args.prompt,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fastseq.save(model, args.out, metadata=metadata)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {size:,} bytes", flush=True)
    if size > MAX_BYTES:
        raise SystemExit(f"{args.out} is {size:,} bytes, above the {MAX_BYTES:,}-byte limit")

    # a greedy sample, as `fastseq demo --temperature 0` gives it
    stream = rnn.stream()
    x = np.zeros(V, dtype=np.float32)
    out = []
    ch = None
    for c in args.prompt:
        x[:] = 0
        x[VOCAB.index(c) if c in VOCAB else VOCAB.index(UNKNOWN)] = 1
        h = stream.step(x)
    for _ in range(200):
        logits = model.head.forward(h[None])[0]
        ch = VOCAB[int(np.argmax(logits))]
        out.append(ch)
        x[:] = 0
        x[VOCAB.index(ch)] = 1
        h = stream.step(x)
    print(f"greedy sample:\n{args.prompt}{''.join(out)}", flush=True)
    print(f"total {time.monotonic() - t_start:.1f}s", flush=True)


def parser():
    """The command line's parser (tests read recorded commands back through it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, os.pardir, "fastseq", "data", "demo.fsq")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.normpath(default_out), help="the .fsq file to write "
                   "(default fastseq/data/demo.fsq)")
    p.add_argument("--hidden", type=int, default=120, help="LSTM hidden size (default 120)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=8, help="parallel streams of the text (default 8)")
    p.add_argument("--bptt", type=int, default=64, help="TBPTT chunk length k1 = k2 (default 64)")
    p.add_argument("--chunks", type=int, default=16, help="TBPTT chunks per window of one-hot input (default 16)")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--lr-final", type=float, default=0.1, help="final lr as a fraction of --lr (default 0.1)")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-chars", type=int, default=0, help="use only the first N characters (quick runs)")
    p.add_argument("--prompt", default="Return the ", help="prompt of the greedy sample (stored as the "
                   "demo's default prompt)")
    p.add_argument("--print-every", type=float, default=5.0, help="seconds between progress lines")
    return p


def main(argv=None):
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
