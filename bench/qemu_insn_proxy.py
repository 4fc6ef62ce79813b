"""Retired aarch64 instructions per unit of work, NEON level against the portable one, as
counted by qemu's user-mode emulator: a speed proxy for ARM where no ARM hardware is at hand.

    python bench/qemu_insn_proxy.py BUILD_DIR [--units N]

BUILD_DIR is an aarch64 build of the C library (cmake -DCMAKE_TOOLCHAIN_FILE=
cmake/aarch64-linux-gnu.cmake), whose bench program insn_cases runs a case N times.
qemu logs every translated block's instructions (-d in_asm) and every block it runs
(-d exec, nochain: no block chaining, so each run is logged); the sum over runs is the
retired instruction count. Count(N units) - count(0 units), over N, removes the setup.

A proxy, not a timing: it weighs a division like an add and a cache miss like a hit.
Instruction counts track time on in-order cores (Cortex-A53/A55) better than on
out-of-order ones, where the SIMD level's fewer, wider instructions gain less.
Standard library only; needs qemu-aarch64 on PATH and the aarch64 libraries in
/usr/aarch64-linux-gnu (Debian: gcc-aarch64-linux-gnu qemu-user).
"""
import argparse
import os
import re
import subprocess
import sys

CASES = {"stream_lstm_h128": 20, "seq_gru_h256_T100": 2, "kws_fastgrnn_h32_r8": 50, "kws_fastgrnn_h32": 50}
LEVELS = ("generic", "neon")
_IN_ADDR = re.compile(r"^0x([0-9a-f]+):")
_TRACE = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")


def count_instructions(binary, case, units, isa):
    """Guest instructions qemu-aarch64 runs for `insn_cases CASE UNITS` at kernel level `isa`."""
    read_end, write_end = os.pipe()
    cmd = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-d", "in_asm,exec,nochain",
           "-D", f"/dev/fd/{write_end}", binary, case, str(units)]
    env = dict(os.environ, FASTSEQ_ISA=isa)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)
    block_size, total, block, size = {}, 0, None, 0
    with os.fdopen(read_end) as log:
        for line in log:
            if line.startswith("Trace"):
                match = _TRACE.match(line)
                if match:
                    total += block_size.get(int(match.group(1), 16), 0)
                continue
            match = _IN_ADDR.match(line)
            if match:
                if block is None:
                    block, size = int(match.group(1), 16), 0
                size += 1
            elif block is not None:  # the end of a translated block's listing
                block_size[block] = size
                block = None
    if proc.wait() != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", help="an aarch64 build directory holding insn_cases")
    parser.add_argument("--units", type=int, default=0, help="units per case (default: per case)")
    args = parser.parse_args()
    binary = os.path.join(args.build_dir, "insn_cases")
    if not os.path.exists(binary):
        sys.exit(f"{binary}: not found (build the aarch64 tree first)")
    print(f"{'case':22} {'generic':>14} {'neon':>14}  generic/neon  (instructions per unit)")
    for case, default_units in CASES.items():
        units = args.units or default_units
        per_unit = {}
        for isa in LEVELS:
            setup = count_instructions(binary, case, 0, isa)
            per_unit[isa] = (count_instructions(binary, case, units, isa) - setup) / units
        print(f"{case:22} {per_unit['generic']:14,.0f} {per_unit['neon']:14,.0f}  "
              f"{per_unit['generic'] / per_unit['neon']:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
