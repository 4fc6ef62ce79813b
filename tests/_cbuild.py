"""Builds the C library and its model-file programs once per test session, with plain
CMake in a temporary directory, for the tests of the C side (test_model_file.py,
test_export_c.py).

AddressSanitizer and UBSan are switched on when the compiler has them, so a read past
the end of a buffer fails the test instead of passing silently. Objects linked against
the library must then be linked with `build().flags` too.
"""
import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from _requires import in_ci

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


def c_compiler():
    cc = os.environ.get("CC")
    if cc and shutil.which(cc.split()[0]):
        return cc
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def missing_tools(*extra):
    """Names of the build tools (cmake, a C compiler, and `extra` programs) not on PATH."""
    gone = [name for name in ("cmake", *extra) if shutil.which(name) is None]
    return gone + ([] if c_compiler() else ["a C compiler (cc, gcc or clang)"])


def have_toolchain():
    """True when cmake and a C compiler are here; False on a developer's machine without
    them (the C tests skip); under CI=true their absence fails instead."""
    gone = missing_tools()
    if gone and in_ci():
        pytest.fail(f"CI=true: {', '.join(gone)} not found; the C tests cannot be skipped in CI",
                    pytrace=False)
    return not gone


def env(**extra):
    """Environment for running the programs: no leak checks (OpenMP's runtime keeps
    memory on purpose), sanitizer reports to stderr."""
    e = dict(os.environ)
    e["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    e["UBSAN_OPTIONS"] = "print_stacktrace=1"
    e.update(extra)
    return e


def run(cmd, timeout=600, check=True, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env=kw.pop("env", env()), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def _sanitizers_work(cc, tmp):
    src = Path(tmp) / "probe.c"
    src.write_text("#include <stdlib.h>\nint main(void){char *p = malloc(4); p[0] = 0; free(p); return 0;}\n")
    exe = Path(tmp) / "probe"
    try:
        if subprocess.run([cc, *SANITIZE, str(src), "-o", str(exe)], capture_output=True, timeout=120).returncode:
            return False
        return subprocess.run([str(exe)], capture_output=True, timeout=60, env=env()).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class Build:
    def __init__(self, path, flags, cc):
        self.path, self.flags, self.cc = Path(path), list(flags), cc

    @property
    def library(self):
        return self.path / "libfastseq.a"

    def program(self, name):
        return self.path / name

    def link_flags(self):
        """What a program linking libfastseq.a needs besides the archive."""
        cache = (self.path / "CMakeCache.txt").read_text()
        openmp = "OpenMP_C_FLAGS:STRING=-fopenmp" in cache or "-fopenmp" in cache
        return self.flags + (["-fopenmp"] if openmp else []) + ["-lm"]


@functools.lru_cache(maxsize=None)
def build():
    """The library plus run_model, test_model_file and fuzz_replay_model_load, built once
    per session."""
    cc = c_compiler()
    tmp = tempfile.mkdtemp(prefix="fastseq-cbuild-")
    atexit.register(shutil.rmtree, tmp, True)
    flags = SANITIZE if _sanitizers_work(cc, tmp) else []
    out = Path(tmp) / "build"
    run(["cmake", "-S", ROOT, "-B", out, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
         f"-DCMAKE_C_COMPILER={cc}", f"-DCMAKE_C_FLAGS={' '.join(flags)}",
         f"-DCMAKE_EXE_LINKER_FLAGS={' '.join(flags)}"], cwd=tmp)
    jobs = str(max(1, min(os.cpu_count() or 1, 8)))
    run(["cmake", "--build", out, "--parallel", jobs, "--target", "fastseq", "run_model",
         "test_model_file", "fuzz_replay_model_load"], cwd=tmp)
    return Build(out, flags, cc)
