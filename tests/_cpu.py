"""The kernel levels this CPU supports, read from the operating system (not from fastseq),
so a build that lacks a level the CPU has cannot hide it by not listing it."""
import platform
from pathlib import Path

# fastseq level -> CPU flags it needs (src/dispatch.c cpu_has), as /proc/cpuinfo names them.
LEVEL_FLAGS = {"avx2": {"avx2", "fma"}, "avx512": {"avx2", "fma", "avx512f", "avx512vl"}}


def cpu_levels():
    """Levels ("generic" first) the CPU runs, or None where this cannot be told (not
    Linux on x86-64 or aarch64)."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return ["generic", "neon"]  # Advanced SIMD is baseline on aarch64
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if not flags:
        return None
    return ["generic"] + [level for level, need in LEVEL_FLAGS.items() if need <= flags]
