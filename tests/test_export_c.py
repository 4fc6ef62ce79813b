"""`fastseq export-c`: the generated NAME.c / NAME.h compile with
`-std=c99 -Wall -Wextra -Werror`, link against the C library, run on its portable path
(FASTSEQ_ISA=generic) with only the buffers the header's macros size, allocate nothing
on the heap, and match Python to 1e-5."""
import subprocess
import sys

import numpy as np
import pytest

import fastseq
from fastseq.export_c import export_c

import _cbuild

pytestmark = pytest.mark.skipif(not _cbuild.have_toolchain(), reason="cmake or a C compiler is missing")

MAIN = r"""
#include "name.h"

#include <stdio.h>
#include <stdlib.h>

/* Counts the library's heap calls while `watching` (linked with -Wl,--wrap=...). */
#ifdef WATCH_HEAP
static int watching = 0, heap_calls = 0;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n) { heap_calls += watching; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { heap_calls += watching; return __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { heap_calls += watching; return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { heap_calls += watching; return __real_aligned_alloc(a, n); }
#define WATCH(on) (watching = (on))
#else
static int heap_calls = -1;
#define WATCH(on) ((void)0)
#endif

static unsigned char model_mem[NAME_MEMORY_BYTES];
static unsigned char ws_mem[NAME_WORKSPACE_BYTES], ws_min_mem[NAME_WORKSPACE_MIN_BYTES];
#if NAME_CAN_STREAM
static unsigned char stream_mem[NAME_STREAM_BYTES];
static float ys[NAME_MAX_STEPS * NAME_BATCH * NAME_FEATURES];
#endif
static float x[(NAME_MAX_STEPS + 1) * NAME_BATCH * NAME_INPUT_SIZE];
static float y[(NAME_MAX_STEPS + 1) * NAME_BATCH * NAME_OUTPUT_SIZE];
static float y_min[NAME_MAX_STEPS * NAME_BATCH * NAME_OUTPUT_SIZE];
static float h[NAME_STATE_COUNT];

static int save(const char *path, const float *data, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f != NULL && fwrite(data, sizeof(float), n, f) == n;
    if (f != NULL) fclose(f);
    return ok;
}

int main(int argc, char **argv) {
    fs_rnn *m = NULL, *small = NULL;
    fs_status st;
    int32_t steps;
    size_t nx;
    FILE *f;
    if (argc != 7) return 2;
    steps = (int32_t)atoi(argv[1]);
    nx = (size_t)steps * NAME_BATCH * NAME_INPUT_SIZE;
    f = fopen(argv[2], "rb");
    if (f == NULL || fread(x, sizeof(float), nx, f) != nx) return 3;
    fclose(f);

    WATCH(1);
    st = name_init(model_mem, sizeof model_mem, &m);
    if (st != FS_OK) { fprintf(stderr, "init: %s\n", fs_last_error()); return 1; }
    st = name_forward(m, x, steps, y, h, ws_mem, sizeof ws_mem);
    if (st != FS_OK) { fprintf(stderr, "forward: %s\n", fs_last_error()); return 1; }
    /* the smallest workspace: the input projected a step at a time */
    st = name_forward(m, x, steps, y_min, NULL, ws_min_mem, sizeof ws_min_mem);
    if (st != FS_OK) { fprintf(stderr, "forward (min workspace): %s\n", fs_last_error()); return 1; }
#if NAME_CAN_STREAM
    {
        fs_rnn_stream *s = NULL;
        int32_t t;
        st = name_stream_init(m, stream_mem, sizeof stream_mem, &s);
        if (st != FS_OK) { fprintf(stderr, "stream_init: %s\n", fs_last_error()); return 1; }
        for (t = 0; t < steps; t++) {
            st = name_step(s, x + (size_t)t * NAME_BATCH * NAME_INPUT_SIZE, ys + (size_t)t * NAME_BATCH * NAME_FEATURES);
            if (st != FS_OK) { fprintf(stderr, "step: %s\n", fs_last_error()); return 1; }
        }
    }
#endif
    WATCH(0);
    printf("heap calls: %d\n", heap_calls);
    /* buffers one byte short of what the macros promise are refused, not overrun */
    st = name_init(model_mem, sizeof model_mem - 65, &small);
    printf("short model buffer: %d\n", (int)st);
    st = name_forward(m, x, NAME_MAX_STEPS, y, NULL, ws_min_mem, sizeof ws_min_mem - 65);
    printf("short workspace: %d\n", (int)st);
    st = name_forward(m, x, steps, y, h, ws_mem, sizeof ws_mem);
    if (st != FS_OK) return 1;
    if (!save(argv[3], y, (size_t)steps * NAME_BATCH * NAME_OUTPUT_SIZE) || !save(argv[4], h, NAME_STATE_COUNT) ||
        !save(argv[6], y_min, (size_t)steps * NAME_BATCH * NAME_OUTPUT_SIZE))
        return 4;
#if NAME_CAN_STREAM
    if (!save(argv[5], ys, (size_t)steps * NAME_BATCH * NAME_FEATURES)) return 4;
#endif
    return 0;
}
"""

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]


def _compile(b, out_dir, name, watch_heap):
    main = out_dir / "main.c"
    main.write_text(MAIN.replace("NAME_", name.upper() + "_").replace("name", name))
    exe = out_dir / "prog"
    include = _cbuild.ROOT / "src" / "include"
    # compile the generated code on its own first: it must be clean C99
    _cbuild.run([b.cc, *CFLAGS, "-I", include, "-c", out_dir / f"{name}.c", "-o", out_dir / f"{name}.o"])
    wrap = ["-DWATCH_HEAP", *(f"-Wl,--wrap={f}" for f in ("malloc", "calloc", "realloc", "aligned_alloc"))]
    base = [b.cc, *CFLAGS, *b.flags, "-I", include, "-I", out_dir, main, out_dir / f"{name}.o", b.library]
    if watch_heap:
        proc = _cbuild.run(base + wrap + ["-o", exe] + b.link_flags(), check=False)
        if proc.returncode == 0:
            return exe, True
    _cbuild.run(base + ["-o", exe] + b.link_flags())
    return exe, False


CASES = {
    "lstm": (lambda: fastseq.LSTM(5, 12, num_layers=2, seed=1), 1, 37),
    "gru_bidir_batch_first": (lambda: fastseq.GRU(3, 9, bidirectional=True, batch_first=True, seed=2), 3, 11),
    "rnn_relu_nobias": (lambda: fastseq.RNN(4, 20, nonlinearity="relu", bias=False, seed=3), 2, 9),
    "lstm_proj_peephole": (lambda: fastseq.LSTM(4, 10, proj_size=6, peephole=True, seed=4), 1, 15),
    "fastgrnn_lowrank": (lambda: fastseq.FastGRNN(6, 16, w_rank=3, u_rank=4, seed=5), 2, 13),
    "lstm_gate_acts_clip": (lambda: fastseq.LSTM(5, 12, seed=6, activations=("hard_sigmoid", "softsign", "hard_tanh"),
                                                 activation_alpha=(1 / 6, None, None), clip=1.5), 2, 9),
    "fastgrnn_edgeml_quant": (lambda: fastseq.FastGRNN(6, 16, gate_nonlinearity="hard_sigmoid", gate_alpha=0.5,
                                                       gate_beta=0.5, update_nonlinearity="hard_tanh", seed=8), 2, 9),
    "lstm_low_rank": (lambda: fastseq.LSTM(5, 12, w_rank=3, u_rank=4, seed=9), 2, 9),
    "ugrnn_low_rank_quant": (lambda: fastseq.UGRNN(4, 10, u_rank=3, seed=10, activations=("hard_sigmoid", "hard_tanh"),
                                                   activation_alpha=(0.5, None), activation_beta=(0.5, None)), 2, 7),
    "gru_reset_before_low_rank_u": (lambda: fastseq.GRU(5, 12, reset_after=False, w_rank=3, u_rank=4, seed=11),
                                    2, 9),
    "gru_reset_before_gate_acts": (lambda: fastseq.GRU(3, 10, reset_after=False, seed=7,
                                                       activations=("hard_sigmoid", "relu"), clip=2.0), 1, 8),
    # quantised weights (issue 12): the block as bytes, used in place
    "lstm_int8": (lambda: fastseq.quantize(fastseq.LSTM(5, 12, num_layers=2, seed=8), "int8"), 1, 17),
    "gru_bidir_int4": (lambda: fastseq.quantize(fastseq.GRU(37, 9, bidirectional=True, seed=9), "int4"), 2, 7),
    "gru_reset_before_low_rank_u_int8": (lambda: fastseq.quantize(
        fastseq.GRU(6, 16, reset_after=False, u_rank=5, seed=12), "int8"), 2, 9),
    "fastgrnn_lowrank_bf16": (lambda: fastseq.quantize(fastseq.FastGRNN(6, 16, w_rank=3, u_rank=4, seed=10), "bf16"),
                              2, 9),
    "lstm_residual": (lambda: fastseq.LSTM(5, 8, num_layers=3, residual=True, seed=8), 2, 9),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_c_matches_python(case, tmp_path):
    b = _cbuild.build()
    make, batch, steps = CASES[case]
    layer = make()
    name = f"m_{case}"
    written = export_c(layer, tmp_path, name=name, batch=batch, max_steps=steps + 3)
    assert [p.rsplit("/", 1)[-1] for p in written] == [f"{name}.h", f"{name}.c"]
    for path in written:
        assert "generated by `fastseq export-c`" in open(path).read().split("\n", 3)[1]
    exe, watched = _compile(b, tmp_path, name, watch_heap=True)

    rng = np.random.default_rng(7)
    shape = (batch, steps, layer.input_size) if layer.batch_first else (steps, batch, layer.input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    proc = _cbuild.run([exe, steps, tmp_path / "x.bin", tmp_path / "y.bin", tmp_path / "h.bin",
                        tmp_path / "ys.bin", tmp_path / "y_min.bin"], env=_cbuild.env(FASTSEQ_ISA="generic"))
    out = proc.stdout
    if watched:
        assert "heap calls: 0" in out, out
    assert "short model buffer: 3" in out, out  # FS_ERR_SHAPE
    # (more steps than MAX_STEPS may fit: a workspace too small for the chunked input
    # projection projects a step at a time, and one layer's smallest needs no T rows)
    assert "short workspace: 3" in out, out

    y, state = layer(x)
    h = state[0] if isinstance(state, tuple) else state
    y_c = np.fromfile(tmp_path / "y.bin", np.float32).reshape(y.shape)
    h_c = np.fromfile(tmp_path / "h.bin", np.float32).reshape(h.shape)
    assert np.max(np.abs(y_c - y)) <= 1e-5
    assert np.max(np.abs(h_c - h)) <= 1e-5
    y_min = np.fromfile(tmp_path / "y_min.bin", np.float32).reshape(y.shape)
    assert np.max(np.abs(y_min - y)) <= 1e-5
    if not layer.bidirectional:
        assert not layer.batch_first or batch == 1
        ys = np.fromfile(tmp_path / "ys.bin", np.float32).reshape(y.shape)
        assert np.max(np.abs(ys - y)) <= 1e-5


def _weights_from_source(source, name):
    text = open(source).read()
    decl = f"static const FS_ALIGN64 float {name}_weights["
    body = text.split(decl, 1)[1].split("] = {", 1)[1].split("};", 1)[0]
    return np.array([float(v.strip().rstrip("f")) for v in body.split(",")], dtype=np.float32)


def test_generated_weights_are_exact(tmp_path):
    """The weight array is the library's packed block, every value read back bit for bit
    from its C literal."""
    layer = fastseq.LSTM(3, 5, seed=11)
    sd = layer.state_dict()
    sd["weight_ih_l0"][0, :3] = [1e-40, -3.0, 1.0000001]  # a subnormal, an integer, a near-one
    layer.load_state_dict(sd)
    _, source = export_c(layer, tmp_path, name="w")
    values = _weights_from_source(source, "w")
    block = np.frombuffer(fastseq._core.model_weights(layer.c_model), dtype=np.float32)
    assert np.array_equal(values.view(np.uint32), block.view(np.uint32))
    for v in (1e-40, -3.0, 1.0000001):  # each edited weight is in the block, exactly
        assert np.any(values.view(np.uint32) == np.float32(v).view(np.uint32))


@pytest.mark.parametrize("case", ["lstm", "fastgrnn_lowrank"])
def test_weights_are_not_copied_at_init(case, tmp_path):
    """Flash holds the weights once: the model's RAM (NAME_MEMORY_BYTES) is its header
    alone, and init builds the model over the const array (no fs_rnn_set_param)."""
    layer = CASES[case][0]()
    header_path, source = export_c(layer, tmp_path, name="m")
    header = open(header_path).read()
    macros = dict(line.split()[1:3] for line in header.splitlines()
                  if line.startswith("#define M_") and len(line.split()) > 2)
    ram, flash = int(macros["M_MEMORY_BYTES"]), int(macros["M_WEIGHT_BYTES"])
    param_bytes = 4 * sum(a.size for a in layer.state_dict().values())
    units = layer.num_layers * layer.num_directions
    assert ram == fastseq._core.model_header_size(layer.c_model) + 64
    assert ram <= 512 + 256 * units  # the struct and one table entry per layer and direction
    assert param_bytes <= flash <= 1.6 * param_bytes + 4096 * units  # padding to 8 hidden units
    text = open(source).read()
    assert "fs_rnn_init_static_weights(&cfg, m_weights" in text and "fs_rnn_set_param" not in text


def test_export_rejects_bad_arguments(tmp_path):
    layer = fastseq.GRU(2, 3)
    with pytest.raises(ValueError, match="C identifier"):
        export_c(layer, tmp_path, name="my-model")
    with pytest.raises(ValueError, match="max_steps"):
        export_c(layer, tmp_path, max_steps=0)
    sd = layer.state_dict()
    sd["weight_hh_l0"][0, 0] = np.nan
    layer.load_state_dict(sd)
    with pytest.raises(ValueError, match="NaN"):
        export_c(layer, tmp_path)


def test_export_c_from_a_file_via_the_cli(tmp_path):
    fastseq.save(fastseq.RNN(2, 3), tmp_path / "r.fsq")
    proc = subprocess.run([sys.executable, "-m", "fastseq", "export-c", str(tmp_path / "r.fsq"), str(tmp_path / "out"),
                           "--name", "tiny", "--max-steps", "8"], capture_output=True, text=True,
                          cwd=tmp_path)  # not the source tree, which has no compiled _core
    assert proc.returncode == 0, proc.stderr
    header = (tmp_path / "out" / "tiny.h").read_text()
    assert "#define TINY_MAX_STEPS 8" in header and "from r.fsq" in header
    assert (tmp_path / "out" / "tiny.c").exists()
