/*
 * insn_cases -- a few models run a given number of units (a stream step or a
 * forward call), for counting retired guest instructions under qemu
 * (bench/qemu_insn_proxy.sh): the count for N units minus the count for 0
 * units, divided by N, is the instructions per unit without the setup.
 *
 *   insn_cases CASE N
 *
 * CASE (bench/run.py's names where they exist):
 *   stream_lstm_h128      LSTM I=40 H=128, one stream step per unit
 *   seq_gru_h256_T100     GRU I=64 H=256, one forward call over T=100, B=1 per unit
 *   kws_fastgrnn_h32_r8   FastGRNN I=32 H=32, W and U of rank 8, one stream step
 *   kws_fastgrnn_h32      FastGRNN I=32 H=32, full W and U, one stream step
 * FASTSEQ_ISA picks the kernel level; one thread.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "fastseq.h"

typedef struct insn_case {
    const char *name;
    fs_cell cell;
    int I, H, T, rank, stream;
} insn_case;

static const insn_case cases[] = {
    {"stream_lstm_h128", FS_CELL_LSTM, 40, 128, 1, 0, 1},
    {"seq_gru_h256_T100", FS_CELL_GRU, 64, 256, 100, 0, 0},
    {"kws_fastgrnn_h32_r8", FS_CELL_FASTGRNN, 32, 32, 1, 8, 1},
    {"kws_fastgrnn_h32", FS_CELL_FASTGRNN, 32, 32, 1, 0, 1},
};

static int fail(const char *what) { return bench_fail("insn_cases", what); }

int main(int argc, char **argv) {
    const insn_case *c = NULL;
    for (size_t i = 0; argc == 3 && i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(argv[1], cases[i].name)) c = &cases[i];
    const int n = argc == 3 ? atoi(argv[2]) : -1;
    if (!c || n < 0) {
        fprintf(stderr, "usage: insn_cases CASE N (CASE: stream_lstm_h128, seq_gru_h256_T100, "
                        "kws_fastgrnn_h32_r8, kws_fastgrnn_h32; N >= 0)\n");
        return 2;
    }
    fs_rnn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cell = c->cell, cfg.input_size = c->I, cfg.hidden_size = c->H, cfg.num_layers = 1, cfg.bias = 1;
    cfg.w_rank = cfg.u_rank = c->rank;
    fs_rnn *m = NULL;
    if (fs_rnn_create(&cfg, &m) != FS_OK) return fail("fs_rnn_create");
    if (fs_set_num_threads(1) != FS_OK) return fail("fs_set_num_threads");
    size_t n_params = 0;
    fs_rnn_param_count(m, &n_params);
    const size_t nx = (size_t)c->T * c->I, ny = (size_t)c->T * c->H;
    float *params = malloc(n_params * sizeof(float)), *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float));
    if (!params || !x || !y) return fail("out of memory");
    srand(1);
    for (size_t i = 0; i < n_params; i++) params[i] = uniform(-0.1f, 0.1f);
    for (size_t i = 0; i < nx; i++) x[i] = uniform(-0.5f, 0.5f);
    if (fs_rnn_set_params(m, params, n_params) != FS_OK) return fail("fs_rnn_set_params");
    /* the same setup for every N, so that it cancels in the difference */
    fs_rnn_stream *s = NULL;
    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = c->T, a.batch = 1, a.x = x, a.x_count = nx, a.y = y, a.y_count = ny;
    size_t bytes = 0;
    if (fs_rnn_stream_create(m, 1, &s) != FS_OK) return fail("fs_rnn_stream_create");
    if (fs_rnn_forward_workspace_size(m, c->T, 1, &bytes) != FS_OK) return fail("workspace size");
    void *ws = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!ws) return fail("out of memory");
    for (int u = 0; u < n; u++) {
        const fs_status st = c->stream ? fs_rnn_stream_step(s, x, (size_t)c->I, y, (size_t)c->H)
                                       : fs_rnn_forward_ws(m, &a, ws, bytes);
        if (st != FS_OK) return fail(c->stream ? "fs_rnn_stream_step" : "fs_rnn_forward_ws");
    }
    printf("%s isa=%s units=%d y[0]=%.6f\n", c->name, fs_isa_name(fs_active_isa()), n, (double)y[0]);
    free(ws), free(params), free(x), free(y);
    fs_rnn_stream_free(s);
    fs_rnn_free(m);
    return 0;
}
