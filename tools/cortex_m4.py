"""Build a model that `fastseq export-c` wrote into the Cortex-M4F harness
(embedded/cortex-m4), run it on QEMU's mps2-an386 board and read its output back;
as a script, print the flash / RAM table of the README's Cortex-M section.

    python tools/cortex_m4.py sizes        # needs arm-none-eabi-gcc, newlib, qemu-system-arm, cmake

tests/test_cortex_m4.py uses the same functions.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "embedded" / "cortex-m4"
TOOLS = ("cmake", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
        "-semihosting-config", "enable=on,target=native", "-kernel"]


def missing_tools():
    """The programs the harness needs that are not on PATH (newlib comes with the compiler's
    package on Debian: libnewlib-arm-none-eabi)."""
    return [t for t in TOOLS if shutil.which(t) is None]


def _run(cmd, timeout):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def build(model_dir, build_dir, timeout=900):
    """Configure (once per build_dir) and build the harness over model_dir/model.{h,c};
    returns the ELF's path. A build_dir reused for another model recompiles only the model
    and main.c."""
    build_dir = Path(build_dir)
    if not (build_dir / "CMakeCache.txt").exists():
        _run(["cmake", "-S", HARNESS, "-B", build_dir, f"-DMODEL_DIR={Path(model_dir).resolve()}"], timeout)
    _run(["cmake", "--build", build_dir, "-j2"], timeout)
    return build_dir / "harness.elf"


def run(elf, timeout=300):
    """The harness's output under QEMU (RuntimeError when it exits non-zero)."""
    return _run(QEMU + [elf], timeout)


def harness_input(steps, batch, input_size, batch_first):
    """The harness's fixed input (main.c), bit for bit: a 32-bit LCG's upper bits, mod 2001,
    minus 1000, over 1000, in float32."""
    n = steps * batch * input_size
    state, ks = 1, np.empty(n, dtype=np.int64)
    for i in range(n):
        state = (state * 1664525 + 1013904223) % 2**32
        ks[i] = (state >> 8) % 2001 - 1000
    x = ks.astype(np.float32) / np.float32(1000)
    return x.reshape((batch, steps, input_size) if batch_first else (steps, batch, input_size))


def parse(text):
    """{label: float32 array [lines, values]} from the harness's "label index hex..." lines."""
    rows = {}
    for line in text.splitlines():
        label, *fields = line.split()
        if label in ("forward", "h_n", "step"):
            bits = np.array([int(v, 16) for v in fields[1:]], dtype=np.uint32)
            rows.setdefault(label, []).append(bits.view(np.float32))
    return {k: np.stack(v) for k, v in rows.items()}


def target_sizes(text):
    """{weights, header, stream, workspace_min: bytes} the library on the target reported."""
    fields = next(line.split()[1:] for line in text.splitlines() if line.startswith("sizes "))
    return {k: int(v) for k, v in zip(fields[::2], fields[1::2])}


def elf_sizes(elf):
    """(text, data, bss) bytes of the ELF (arm-none-eabi-size, Berkeley format)."""
    last = _run(["arm-none-eabi-size", elf], 60).strip().splitlines()[-1].split()
    return tuple(int(v) for v in last[:3])


def text_by_origin(map_path):
    """Flash bytes (.text, .rodata, ...) of the link, by where they come from: "fastseq" (the
    library), "model" (model.c: the weights), "harness" (main.c, startup.c), "libgcc",
    "libc" (newlib), read off the linker's map."""
    text = Path(map_path).read_text().split("Linker script and memory map", 1)[1]
    sizes = {}
    for sec, size, src in re.findall(r"^ (\.\S+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)", text, re.M):
        if not re.match(r"\.(text|rodata|vectors|ARM\.exidx)", sec):
            continue
        origin = next((name for key, name in (("libfastseq", "fastseq"), ("model.c", "model"), ("main.c", "harness"),
                                              ("startup.c", "harness"), ("libgcc", "libgcc"))
                       if key in src), "libc")
        sizes[origin] = sizes.get(origin, 0) + int(size, 16)
    return sizes


def symbol_sizes(elf):
    """{symbol: (address, bytes)} of the ELF's sized symbols."""
    out = {}
    for line in _run(["arm-none-eabi-nm", "-S", elf], 60).splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return out


def header_macros(model_dir):
    """model.h's numeric #define MODEL_* values."""
    text = (Path(model_dir) / "model.h").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define MODEL_(\w+) (\d+)\b", text)}


def _size_models():
    """(label, dtype, make) of the table's rows: each model in fp32 and quantised."""
    import fastseq

    models = [
        ("FastGRNN(32, 32), W and U rank 8, stream", lambda: fastseq.FastGRNN(32, 32, w_rank=8, u_rank=8, seed=0)),
        ("FastGRNN(32, 32), full rank, stream", lambda: fastseq.FastGRNN(32, 32, seed=0)),
        ("demo LSTM (fastseq/data/demo.fsq)",
         lambda: fastseq.io.sequence_layer(fastseq.load(os.path.join(os.path.dirname(fastseq.__file__), "data",
                                                                     "demo.fsq")))),
    ]
    return [(label, dtype, lambda make=make, dtype=dtype: make() if dtype == "fp32" else fastseq.quantize(make(), dtype))
            for label, make in models for dtype in ("fp32", "int8", "int4", "bf16")]


def sizes():
    """Print one Markdown row per model and dtype: the packed weights, the harness ELF's
    text / data / bss (8 steps), and what the library on the target says the model's
    header, a stream and the smallest forward workspace take (model.h's macros, from a
    64-bit host, add more)."""
    from fastseq.export_c import export_c

    print("| model | dtype | weights (flash) | ELF text | data | bss | RAM on the M4: header + stream + workspace |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, dtype, make in _size_models():
            model_dir, build_dir = Path(tmp) / "model", Path(tmp) / "build"
            export_c(make(), model_dir, name="model", max_steps=8)
            elf = build(model_dir, build_dir)
            text, data, bss = elf_sizes(elf)
            target = target_sizes(run(elf))
            origins = text_by_origin(build_dir / "harness.map")
            print(f"| {label} | {dtype} | {target['weights']} | {text} | {data} | {bss} | {target['header']} + "
                  f"{target['stream']} + {target['workspace_min']} |")
            print(f"  {label}, {dtype}, text by origin: " + ", ".join(f"{k} {v}" for k, v in sorted(origins.items())),
                  file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["sizes"])
    parser.parse_args(argv)
    gone = missing_tools()
    if gone:
        sys.exit(f"not found: {', '.join(gone)} (Debian: apt-get install gcc-arm-none-eabi "
                 "libnewlib-arm-none-eabi qemu-system-arm cmake)")
    sizes()


if __name__ == "__main__":
    main()
