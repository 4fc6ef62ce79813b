#!/usr/bin/env python3
"""Mutation testing of fastseq: does the test suite notice a plausible one-line bug?

Each mutation in tools/mutations.toml replaces one exact piece of text (found exactly once
in its file) of the C core, a kernel or an importer by a plausible bug, rebuilds, runs the
fast test subset named beside it (``ctest -R`` and/or pytest arguments) and counts the
mutation as caught when a test fails (or times out); each subset first runs on the clean
tree, where it must pass. Every mutated file is restored, on
success, error or Ctrl-C, and the package is rebuilt from the clean tree at the end.

    python tools/mutate.py --list          # check the list against the code (CI), print it
    python tools/mutate.py                 # run every mutation (clean tree only)
    python tools/mutate.py NAME [NAME...]  # run some

Rebuilds: the extension with ``pip install --no-build-isolation -q .`` (pyproject's
persistent build/ dir makes it incremental, ~5 s); the C tests in a persistent CMake dir
(``--cbuild``, default /tmp/fastseq-mutate-cbuild). Run from the virtual environment the
tests use. The last run's table is in tools/README.md.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("tools/mutate.py needs Python >= 3.11 (tomllib)")

ROOT = Path(__file__).resolve().parent.parent
LIST = Path(__file__).resolve().parent / "mutations.toml"
FIELDS = {"name", "file", "original", "replacement", "why"}
TEST_TIMEOUT_S = 600


def load(path=LIST):
    """The mutations, each checked: required fields, a test to run, and its original text
    found exactly once in its file. Returns (mutations, problems)."""
    with open(path, "rb") as f:
        mutations = tomllib.load(f)["mutation"]
    problems, names = [], set()
    for m in mutations:
        name = m.get("name", "?")
        missing = FIELDS - m.keys()
        if missing:
            problems.append(f"{name}: missing {sorted(missing)}")
            continue
        if name in names:
            problems.append(f"{name}: duplicate name")
        names.add(name)
        if not m.get("pytest") and not m.get("ctest"):
            problems.append(f"{name}: names no test (pytest and/or ctest)")
        if m["original"] == m["replacement"]:
            problems.append(f"{name}: replacement equals the original")
        if "\n" in m["original"]:
            problems.append(f"{name}: original spans lines (one-line mutations only)")
        path = ROOT / m["file"]
        if not path.is_file():
            problems.append(f"{name}: {m['file']} not found")
            continue
        n = path.read_text().count(m["original"])
        if n != 1:
            problems.append(f"{name}: original text found {n} times in {m['file']}, expected exactly once")
    return mutations, problems


def run(cmd, timeout=TEST_TIMEOUT_S, env=None):
    """(returncode, combined output); returncode None on a timeout."""
    try:
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""   # bytes here even with text=True
        return None, out.decode(errors="replace") if isinstance(out, bytes) else out


def dirty():
    """Tracked files with uncommitted changes (git status lines)."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return out.strip()


def build_python():
    rc, out = run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "-q", "."])
    return rc == 0, out


def build_c(cbuild):
    if not (Path(cbuild) / "CMakeCache.txt").exists():
        rc, out = run(["cmake", "-S", str(ROOT), "-B", cbuild, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
        if rc != 0:
            return False, out
    rc, out = run(["cmake", "--build", cbuild, f"-j{os.cpu_count() or 2}"])
    return rc == 0, out


def first_failure(tool, out):
    """The first failing test named in a ctest or pytest output."""
    if tool == "ctest":
        hit = re.search(r"\d+ - (\S+) \((Failed|SEGFAULT|Subprocess aborted|Timeout|Exception)", out)
        return f"ctest {hit.group(1)}" if hit else "ctest (unnamed)"
    hit = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    return hit.group(1).split("/")[-1] if hit else "pytest (unnamed)"


def run_tests(m, cbuild):
    """(status, detail) of the tests m names on what is built now: 'caught' when one fails,
    'SURVIVED' when all pass, 'error' when they cannot run."""
    if m.get("ctest"):
        ok, out = build_c(cbuild)
        if not ok:
            return "error", "the mutant's C tests do not build:\n" + out[-2000:]
        rc, out = run(["ctest", "--test-dir", cbuild, "-R", m["ctest"], "--stop-on-failure",
                       "--output-on-failure", "--timeout", "120"])
        if rc is None:
            return "caught", "ctest (timeout)"
        if "No tests were found" in out:
            return "error", f"ctest -R {m['ctest']!r} selects no test"
        if rc != 0:
            return "caught", first_failure("ctest", out)
    if m.get("pytest"):
        rc, out = run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m["pytest"]])
        if rc is None:
            return "caught", "pytest (timeout)"
        if rc == 5:
            return "error", f"pytest {m['pytest']} selects no test"
        if rc != 0:
            return "caught", first_failure("pytest", out)
    return "SURVIVED", ""


def try_mutation(m, cbuild):
    """run_tests on the mutant, once it is built (status 'error' when it does not build)."""
    ok, out = build_python()
    if not ok:
        return "error", "the mutant does not build:\n" + out[-2000:]
    return run_tests(m, cbuild)


def baseline(chosen, cbuild):
    """Each distinct test selection of `chosen` on the clean tree: a catch means something
    only where these pass. Returns the problems."""
    ok, out = build_python()
    if not ok:
        return ["the clean tree does not build:\n" + out[-2000:]]
    problems, seen = [], set()
    for m in chosen:
        key = (m.get("ctest"), tuple(m.get("pytest", ())))
        if key in seen:
            continue
        seen.add(key)
        status, detail = run_tests(m, cbuild)
        if status != "SURVIVED":
            problems.append(f"{m['name']}'s tests on the clean tree: {status} {detail}")
    return problems


def restore_on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--list", action="store_true", help="check the list against the code and print it")
    ap.add_argument("--cbuild", default="/tmp/fastseq-mutate-cbuild", help="persistent CMake build dir")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running each test selection on the clean tree first")
    args = ap.parse_args(argv)

    mutations, problems = load()
    if problems:
        print("tools/mutations.toml does not match the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    if args.list:
        for m in mutations:
            print(f"{m['name']:28} {m['file']:34} {m['why']}")
        print(f"{len(mutations)} mutations, every original text found exactly once")
        return 0
    unknown = set(args.names) - {m["name"] for m in mutations}
    if unknown:
        print(f"unknown mutation(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    chosen = [m for m in mutations if not args.names or m["name"] in args.names]
    if dirty():
        print("refusing to run on a dirty tree (commit or stash first):\n" + dirty(), file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, restore_on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even where it was inherited ignored
    rows = []
    try:
        problems = [] if args.no_baseline else baseline(chosen, args.cbuild)
        if problems:
            print("the named tests do not pass on the clean tree; fix that first:\n  " + "\n  ".join(problems),
                  file=sys.stderr)
            return 2
        for m in chosen:
            path = ROOT / m["file"]
            text = path.read_text()
            t0 = time.monotonic()
            try:
                path.write_text(text.replace(m["original"], m["replacement"], 1))
                status, detail = try_mutation(m, args.cbuild)
            finally:
                path.write_text(text)
            rows.append((m["name"], status, detail if status != "error" else "build/selection error",
                         time.monotonic() - t0))
            print(f"{m['name']:28} {status:8} {rows[-1][2]:60} {rows[-1][3]:6.1f}s", flush=True)
            if status == "error":
                print(detail, file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: every mutated file is restored", file=sys.stderr)
        return 130
    finally:
        if dirty():
            print("WARNING: tracked files changed during the run:\n" + dirty(), file=sys.stderr)
        print("rebuilding the clean tree ...", flush=True)
        build_python()

    print("\n| mutation | caught? | by | seconds |\n|---|---|---|---|")
    for name, status, by, sec in rows:
        print(f"| {name} | {status} | {by} | {sec:.0f} |")
    survived = [r[0] for r in rows if r[1] != "caught"]
    print(f"\n{len(rows) - len(survived)}/{len(rows)} caught" + (f"; not caught: {survived}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
