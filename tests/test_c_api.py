"""Build the C library and its C tests with plain CMake (no Python involved) and
run them with ctest: the library must stand on its own for C users."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _cbuild import c_compiler

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, timeout):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{out}"
    return out


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
@pytest.mark.skipif(shutil.which("ctest") is None, reason="ctest not installed")
@pytest.mark.skipif(c_compiler() is None, reason="no C compiler")
def test_c_library_builds_and_ctest_passes(tmp_path):
    build = tmp_path / "build"
    _run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
         cwd=tmp_path, timeout=300)
    jobs = str(max(1, min(os.cpu_count() or 1, 4)))
    _run(["cmake", "--build", str(build), "--parallel", jobs], cwd=tmp_path, timeout=600)
    out = _run(["ctest", "--output-on-failure", "--timeout", "120"], cwd=build, timeout=600)
    assert "No tests were found" not in out, out
    # "100% tests passed out of N" (CMake 4) or "..., 0 tests failed out of N"
    m = re.search(r"(\d+)% tests passed(?:, (\d+) tests? failed)? out of (\d+)", out)
    assert m, out
    assert m.group(1) == "100" and int(m.group(3)) >= 1, out
    assert re.search(r"\btest_capi\b", out), f"test_capi did not run:\n{out}"
