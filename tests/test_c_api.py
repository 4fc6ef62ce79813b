"""Build the C library and its C tests with plain CMake (no Python involved) and
run them with ctest: the library must stand on its own for C users, on every kernel
level this CPU has (a C test that skips a level the CPU supports is a failure)."""

import os
import re
import subprocess
from pathlib import Path

from _cbuild import Build, c_compiler, missing_tools
from _cpu import cpu_levels
from _requires import missing

ROOT = Path(__file__).resolve().parent.parent

# What fs_set_isa accepts, level by level: the levels this build carries and the CPU runs.
PROBE = r"""
#include <stdio.h>
#include <string.h>
#include "fastseq.h"
int main(void) {
    for (int k = 0; k < 16 && strcmp(fs_isa_name((fs_isa)k), "unknown") != 0; k++)
        if (fs_set_isa((fs_isa)k) == FS_OK) printf("%s\n", fs_isa_name((fs_isa)k));
    return 0;
}
"""


def _run(cmd, cwd, timeout):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{out}"
    return out


def test_c_library_builds_and_ctest_passes(tmp_path):
    gone = missing_tools("ctest")
    if gone:
        missing(f"{', '.join(gone)} not found: the C library's tests need them")
    build = tmp_path / "build"
    _run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
          f"-DCMAKE_C_COMPILER={c_compiler()}"], cwd=tmp_path, timeout=300)
    jobs = str(max(1, min(os.cpu_count() or 1, 4)))
    _run(["cmake", "--build", build, "--parallel", jobs], cwd=tmp_path, timeout=600)
    out = _run(["ctest", "--output-on-failure", "--verbose", "--timeout", "120"], cwd=build,
               timeout=600)
    assert "No tests were found" not in out, out
    # "100% tests passed out of N" (CMake 4) or "..., 0 tests failed out of N"
    m = re.search(r"(\d+)% tests passed(?:, (\d+) tests? failed)? out of (\d+)", out)
    assert m, out
    assert m.group(1) == "100" and int(m.group(3)) >= 1, out
    assert re.search(r"\btest_capi\b", out), f"test_capi did not run:\n{out}"

    levels = cpu_levels()
    if levels is None:
        missing("cannot read this CPU's features (x86-64 Linux only) to check the C build's levels")
    probe = tmp_path / "probe"
    (tmp_path / "probe.c").write_text(PROBE)
    _run([c_compiler(), "-I", ROOT / "src" / "include", tmp_path / "probe.c", build / "libfastseq.a",
          "-o", probe, *Build(build, [], c_compiler()).link_flags()], cwd=tmp_path, timeout=120)
    built = _run([probe], cwd=tmp_path, timeout=60).split()
    lacking = [level for level in levels if level not in built]
    assert not lacking, (f"this CPU supports {levels}; the C build runs only {built}: "
                         f"its compiler lacks flags for {lacking}, whose C tests then skip")
    # the C tests print "isa avx512: not available here, skipped", "skipped: no AVX2", ...
    skipped = [line for line in out.splitlines() if "skipped" in line and
               any(level in line.lower().replace("-", "") for level in levels[1:])]
    assert not skipped, "C tests skipped a level this CPU has:\n" + "\n".join(skipped)
