"""fastseq on a Cortex-M4F: a model that `fastseq export-c` wrote, built with the library's
bare-metal switch (FASTSEQ_BARE_METAL) by arm-none-eabi-gcc (newlib) into the harness in
embedded/cortex-m4, run on QEMU's mps2-an386 board, prints what Python's fastseq computes
to 1e-5 -- the whole-sequence forward in its smallest workspace and the stream a step at a
time; quantised exports (int8, int4, bf16) against the quantised layer's own Python result.
Skipped without the toolchain (fails under CI=true, where .ci/run installs it)."""
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fastseq
from fastseq.export_c import export_c

from _requires import missing

TOOL = Path(__file__).resolve().parent.parent / "tools" / "cortex_m4.py"
spec = importlib.util.spec_from_file_location("cortex_m4_tool", TOOL)
m4 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m4)

if m4.missing_tools():
    missing(f"{', '.join(m4.missing_tools())} not found (Debian: apt-get install gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi qemu-system-arm)")

DEMO = os.path.join(os.path.dirname(fastseq.__file__), "data", "demo.fsq")
CASES = {  # (layer or .fsq path, batch, steps)
    "fastgrnn_kws_rank8": (lambda: fastseq.FastGRNN(32, 32, w_rank=8, u_rank=8, seed=1), 1, 12),
    "fastgrnn_kws_full": (lambda: fastseq.FastGRNN(32, 32, seed=2), 1, 6),
    "demo_lstm": (lambda: DEMO, 1, 5),
    "gru_2layer_batch2": (lambda: fastseq.GRU(5, 12, num_layers=2, seed=3), 2, 7),
    "lstm_bidir_batch_first": (lambda: fastseq.LSTM(4, 9, bidirectional=True, batch_first=True, seed=4), 2, 6),
}
# quantised exports (the weight block a byte array in flash) against the quantised layer's
# own Python result: the KWS FastGRNN and the demo LSTM in every low-precision dtype
for _dtype in ("int8", "int4", "bf16"):
    CASES[f"fastgrnn_kws_rank8_{_dtype}"] = (
        lambda d=_dtype: fastseq.quantize(fastseq.FastGRNN(32, 32, w_rank=8, u_rank=8, seed=1), d), 1, 12)
    CASES[f"demo_lstm_{_dtype}"] = (
        lambda d=_dtype: fastseq.quantize(fastseq.io.sequence_layer(fastseq.load(DEMO)), d), 1, 5)
CASES["demo_lstm_int4_group64"] = (
    lambda: fastseq.quantize(fastseq.io.sequence_layer(fastseq.load(DEMO)), "int4", group_size=64), 1, 5)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """One build folder for every case (the library is compiled once), beside the folder
    each case exports its model into."""
    return tmp_path_factory.mktemp("cortex_m4") / "build"


def _run_case(case, tmp_path, build_dir):
    make, batch, steps = CASES[case]
    source = make()
    model_dir = build_dir.parent / "model"  # the folder the build is configured with
    export_c(source, model_dir, name="model", batch=batch, max_steps=steps)
    elf = m4.build(model_dir, build_dir)
    out = m4.run(elf)
    assert out.rstrip().endswith("done"), out
    # refused, and newlib's printf (no C99 %zu) still shows the sizes
    need = m4.target_sizes(out)["workspace_min"]
    assert re.search(rf"short workspace: .*expected at least {need} bytes, got \d+\)", out), out
    layer = fastseq.io.sequence_layer(fastseq.load(source) if isinstance(source, str) else source)
    return layer, batch, steps, m4.parse(out), elf, model_dir


@pytest.mark.parametrize("case", sorted(CASES))
def test_qemu_output_matches_python(case, tmp_path, build_dir):
    layer, batch, steps, got, _, _ = _run_case(case, tmp_path, build_dir)
    x = m4.harness_input(steps, batch, layer.input_size, layer.batch_first)
    y, state = layer(x)
    h = state[0] if isinstance(state, tuple) else state
    # forward lines: step-major, a sequence each, whatever the layout of x and y
    y_rows = np.swapaxes(y, 0, 1) if layer.batch_first else y
    assert got["forward"].shape == (steps * batch, y.shape[-1])
    np.testing.assert_allclose(got["forward"].reshape(y_rows.shape), y_rows, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["h_n"].reshape(h.shape), h, rtol=0, atol=1e-5)
    if layer.bidirectional:
        assert "step" not in got
    else:
        np.testing.assert_allclose(got["step"].reshape(y_rows.shape), y_rows, rtol=0, atol=1e-5)


def test_kws_fastgrnn_fits_the_budget(tmp_path, build_dir):
    """The streaming FastGRNN(32, 32, rank 8): weights used in place from flash, RAM only
    the model header, the stream (state and scratch, about 1 KB) and a forward workspace
    of one step; no thread-local storage, no heap in the library."""
    _, _, _, _, elf, model_dir = _run_case("fastgrnn_kws_rank8", tmp_path, build_dir)
    macros = m4.header_macros(model_dir)
    syms = m4.symbol_sizes(elf)
    target = m4.target_sizes(m4.run(elf))
    assert target["weights"] == macros["WEIGHT_BYTES"]  # the packed layout is the host's, byte for byte
    assert target["header"] + 64 <= macros["MEMORY_BYTES"]  # 64: the slack for aligning
    assert target["stream"] + 64 <= macros["STREAM_BYTES"]
    assert target["workspace_min"] + 64 <= macros["WORKSPACE_MIN_BYTES"]
    flash_end = 0x20000000  # mps2-an386: RAM starts here
    assert syms["model_weights"][0] < flash_end and syms["model_weights"][1] == macros["WEIGHT_BYTES"]
    for buffer in ("model_mem", "stream_mem", "workspace_mem"):
        assert syms[buffer][0] >= flash_end
    assert macros["STREAM_BYTES"] <= 1280, macros  # a 64-bit host's size; the target's is smaller
    assert macros["WORKSPACE_MIN_BYTES"] <= 1152, macros
    assert macros["MEMORY_BYTES"] <= 640, macros  # the header: config, unit table, scale pointers
    # the forward workspace of one step does not grow with the sequence
    long = export_c(fastseq.FastGRNN(32, 32, w_rank=8, u_rank=8), tmp_path / "long", max_steps=1000)
    assert m4.header_macros(Path(long[0]).parent)["WORKSPACE_MIN_BYTES"] == macros["WORKSPACE_MIN_BYTES"]
    sections = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                              check=True).stdout
    assert ".tdata" not in sections and ".tbss" not in sections
    library = build_dir / "fastseq" / "libfastseq.a"
    undefined = set(subprocess.run(["arm-none-eabi-nm", "-u", str(library)], capture_output=True, text=True,
                                   check=True).stdout.split())
    heap_and_host = {"malloc", "calloc", "realloc", "free", "aligned_alloc", "fopen", "getenv", "fprintf",
                     "__emutls_get_address"}
    assert not undefined & heap_and_host, undefined & heap_and_host


@pytest.mark.parametrize("dtype,shrink", [("int8", 3.5), ("int4", 5.5), ("bf16", 1.9)])
def test_quantised_weights_stay_in_flash(dtype, shrink, tmp_path, build_dir):
    """The quantised demo LSTM's weight block is the host's byte for byte, a byte array in
    flash used in place, and a fraction of the fp32 one: 8 / 4 / 16 bits a weight, plus
    the fp32 biases and the int8 / int4 scales (docs/quantization.md)."""
    _, _, _, _, elf, model_dir = _run_case(f"demo_lstm_{dtype}", tmp_path, build_dir)
    macros = m4.header_macros(model_dir)
    address, size = m4.symbol_sizes(elf)["model_weights"]
    assert m4.target_sizes(m4.run(elf))["weights"] == macros["WEIGHT_BYTES"] == size
    assert address < 0x20000000  # mps2-an386: flash below, RAM from here
    fp32 = export_c(DEMO, tmp_path / "fp32", max_steps=5)
    fp32_bytes = m4.header_macros(Path(fp32[0]).parent)["WEIGHT_BYTES"]
    assert fp32_bytes >= shrink * size, (fp32_bytes, size)
