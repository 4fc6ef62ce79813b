"""A quantised layer's resident memory (issue 12): at most 1.1x its quantised weight bytes
(codes and scales, as the file stores them) plus a fixed overhead. Measured in a fresh
process as the growth of its resident set over loading the layer from a .fsq file, after
malloc_trim so that freed read buffers do not count."""
import json
import subprocess
import sys

import pytest

import fastseq

_MEASURE = r"""
import ctypes, gc, json, os, sys
import fastseq
libc = ctypes.CDLL("libc.so.6")
def rss():
    gc.collect(); libc.malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
fastseq.load(sys.argv[2])  # imports what load needs, so the fixed part is not measured twice
before = rss()
layer = fastseq.load(sys.argv[1])
print(json.dumps({"rss": rss() - before}))
"""

FIXED_OVERHEAD = 1 << 20  # the layer's Python object, its C header, allocator slack


def _quantised_bytes(layer):
    from fastseq.io import QuantisedTensor, layer_parts
    return sum(len(t.data) if isinstance(t, QuantisedTensor) else 4 * t.size
               for t in layer_parts(layer)[2].values())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm and glibc's malloc_trim")
@pytest.mark.parametrize("dtype", ["int8", "int4", "bf16"])
def test_resident_memory_of_a_loaded_quantised_layer(tmp_path, dtype):
    layer = fastseq.quantize(fastseq.LSTM(512, 1024, num_layers=1, seed=0), dtype)
    path, small = tmp_path / "q.fsq", tmp_path / "small.fsq"
    fastseq.save(layer, path)
    fastseq.save(fastseq.quantize(fastseq.LSTM(4, 8, seed=0), dtype), small)
    weights = _quantised_bytes(layer)
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(small)], capture_output=True, cwd=tmp_path,
                         text=True, check=True).stdout
    rss = json.loads(out)["rss"]
    # the fp32 layer would be 4 / (bytes per weight) times larger: this bound fails on any fp32 copy
    assert weights / 2 < rss <= 1.1 * weights + FIXED_OVERHEAD, (dtype, rss, weights)
