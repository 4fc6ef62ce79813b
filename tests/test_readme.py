"""The README works verbatim: every ```python block runs as written in a fresh process in an
empty temporary folder, and so does the command-line ```sh block (on a TorchScript LSTM and
an input it prepares). The other ```sh blocks are listed below with why they are not run
here."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SH = [code for lang, code in BLOCKS if lang == "sh"]

# first line of each ```sh block that is not run here -> why
NOT_RUN = {
    "cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake":
        "the aarch64 cross build and its ctest under qemu: .ci/run runs them",
    "pip install . && fastseq demo":
        "installs the package (the suite runs against it installed); `fastseq demo` is the "
        "last line of the command-line block, run below",
    "pip install torch==2.13.0 pytest . && python -m pytest -q":
        "the test suite itself (.ci/run runs it in a fresh environment)",
    "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build && (cd build && ctest)":
        "the C build and ctest: tests/test_c_api.py and .ci/run build and run them",
    'INC=$(python -c "import fastseq; print(fastseq.get_include())")':
        "compiles the user's own main.c: tests/test_packaging.py compiles and runs a program "
        "against get_include()/get_library_dir() with the shipped pkg-config flags, and "
        "tests/test_export_c.py compiles and runs export-c output",
    "fastseq export-c model.fsq out/ --max-steps 8":
        "needs arm-none-eabi-gcc and qemu-system-arm: tests/test_cortex_m4.py builds and runs "
        "the Cortex-M4 harness the same way",
}
CLI_FIRST = "fastseq convert lstm.pt model.fsq"


def _run(cmd, cwd, timeout=300, shell=False):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, shell=shell,
                          executable="/bin/bash" if shell else None)


def test_every_sh_block_is_run_or_excused():
    firsts = [code.splitlines()[0].split("  #")[0].strip() for code in SH]
    assert sorted(firsts) == sorted(list(NOT_RUN) + [CLI_FIRST])


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-block-{i}" for i in range(len(PYTHON))])
def test_python_block_runs(code, tmp_path):
    if "import torch" in code:
        pytest.importorskip("torch")
    if "dask" in code:
        pytest.importorskip("distributed")
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    proc = _run([sys.executable, "snippet.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_command_line_block_runs(tmp_path):
    torch = pytest.importorskip("torch")
    import numpy as np
    code = next(c for c in SH if c.startswith(CLI_FIRST))
    torch.jit.script(torch.nn.LSTM(3, 8)).save(str(tmp_path / "lstm.pt"))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((20, 2, 3)).astype(np.float32))
    bindir = Path(sys.executable).parent
    proc = _run(f'export PATH="{bindir}:$PATH"; set -e\n{code}', tmp_path, shell=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "y.npy").is_file() and (tmp_path / "out" / "model.c").is_file()


def test_links_point_into_the_repository():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    assert "../shared" not in README
