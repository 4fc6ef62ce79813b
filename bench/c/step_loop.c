/*
 * step_loop -- the C core alone, no Python: median µs of a forward call (or of
 * one stream step) over repetitions, for the C-level figures of the notes.
 *
 *   step_loop CELL I H B T THREADS [REPS] [stream] [int8|int4|bf16]
 *
 * CELL: rnn, lstm, gru, fastrnn, fastgrnn. Weights uniform in [-0.1, 0.1], x
 * in [-0.5, 0.5); int8, int4 (groups of 32), bf16: the model quantised
 * (fs_rnn_quantize) first. The workspace is the caller's (fs_rnn_forward_ws), the same
 * every call. FASTSEQ_ISA picks the kernel level as for the library.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "fastseq.h"

static int fail(const char *what) { return bench_fail("step_loop", what); }

int main(int argc, char **argv) {
    static const struct { const char *name; fs_cell cell; } cells[] = {
        {"rnn", FS_CELL_RNN_TANH}, {"lstm", FS_CELL_LSTM}, {"gru", FS_CELL_GRU},
        {"fastrnn", FS_CELL_FASTRNN}, {"fastgrnn", FS_CELL_FASTGRNN}};
    if (argc < 7) {
        fprintf(stderr, "usage: step_loop CELL I H B T THREADS [REPS] [stream] [int8|int4|bf16]\n");
        return 2;
    }
    fs_rnn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cell = (fs_cell)-1;
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        if (!strcmp(argv[1], cells[i].name)) cfg.cell = cells[i].cell;
    if ((int)cfg.cell < 0) {
        fprintf(stderr, "step_loop: unknown cell %s\n", argv[1]);
        return 2;
    }
    cfg.input_size = atoi(argv[2]);
    cfg.hidden_size = atoi(argv[3]);
    cfg.num_layers = 1;
    cfg.bias = 1;
    const int B = atoi(argv[4]), T = atoi(argv[5]), threads = atoi(argv[6]);
    const int reps = argc > 7 ? atoi(argv[7]) : 20;
    int stream = 0, dtype = FS_DTYPE_F32;
    for (int i = 8; i < argc; i++) {
        if (!strcmp(argv[i], "stream")) stream = 1;
        else if (!strcmp(argv[i], "int8")) dtype = FS_DTYPE_INT8;
        else if (!strcmp(argv[i], "int4")) dtype = FS_DTYPE_INT4;
        else if (!strcmp(argv[i], "bf16")) dtype = FS_DTYPE_BF16;
        else {
            fprintf(stderr, "step_loop: unknown option %s (stream, int8, int4 or bf16)\n", argv[i]);
            return 2;
        }
    }
    if (B < 1 || T < 1 || reps < 1) {
        fprintf(stderr, "step_loop: B, T and REPS must be >= 1\n");
        return 2;
    }

    fs_rnn *m = NULL;
    if (fs_rnn_create(&cfg, &m) != FS_OK) return fail("fs_rnn_create");
    size_t n_params = 0;
    fs_rnn_param_count(m, &n_params);
    float *params = malloc(n_params * sizeof(float));
    const size_t nx = (size_t)T * B * cfg.input_size, ny = (size_t)T * B * cfg.hidden_size;
    float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float));
    double *us = malloc((size_t)reps * sizeof(double));
    if (!params || !x || !y || !us) return fail("out of memory");
    srand(1);
    for (size_t i = 0; i < n_params; i++) params[i] = uniform(-0.1f, 0.1f);
    for (size_t i = 0; i < nx; i++) x[i] = uniform(-0.5f, 0.5f);
    if (fs_rnn_set_params(m, params, n_params) != FS_OK) return fail("fs_rnn_set_params");
    if (fs_set_num_threads(threads) != FS_OK) return fail("fs_set_num_threads");
    if (dtype != FS_DTYPE_F32) {
        fs_rnn *q = NULL;
        if (fs_rnn_quantize(m, dtype, dtype == FS_DTYPE_INT4 ? 32 : 0, &q) != FS_OK) return fail("fs_rnn_quantize");
        fs_rnn_free(m);
        m = q;
    }

    if (stream) { /* µs per step */
        fs_rnn_stream *s = NULL;
        if (fs_rnn_stream_create(m, B, &s) != FS_OK) return fail("fs_rnn_stream_create");
        const size_t step_x = (size_t)B * cfg.input_size, step_y = (size_t)B * cfg.hidden_size;
        for (int r = 0; r < reps; r++) {
            const double t0 = now_us();
            for (int t = 0; t < T; t++) fs_rnn_stream_step(s, x + t * step_x, step_x, y, step_y);
            us[r] = (now_us() - t0) / T;
        }
        fs_rnn_stream_free(s);
    } else { /* µs per forward call */
        fs_seq_args a;
        memset(&a, 0, sizeof a);
        a.seq_len = T, a.batch = B, a.x = x, a.x_count = nx, a.y = y, a.y_count = ny;
        size_t bytes = 0;
        if (fs_rnn_forward_workspace_size(m, T, B, &bytes) != FS_OK) return fail("workspace size");
        void *ws = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!ws || fs_rnn_forward_ws(m, &a, ws, bytes) != FS_OK) return fail("fs_rnn_forward_ws");
        for (int r = 0; r < reps; r++) {
            const double t0 = now_us();
            fs_rnn_forward_ws(m, &a, ws, bytes);
            us[r] = now_us() - t0;
        }
        free(ws);
    }
    qsort(us, (size_t)reps, sizeof(double), by_value);
    static const char *const dtype_name[] = {"f32", "int8", "int4", "bf16"};
    printf("%s %s I=%d H=%d B=%d T=%d threads=%d isa=%s: median %.2f us%s (min %.2f)\n", argv[1],
           dtype_name[dtype], cfg.input_size, cfg.hidden_size, B, T, threads, fs_isa_name(fs_active_isa()),
           us[reps / 2], stream ? " per step" : "", us[0]);
    free(params), free(x), free(y), free(us);
    fs_rnn_free(m);
    return 0;
}
