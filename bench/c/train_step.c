/*
 * train_step -- the C core alone: median µs of fs_rnn_train_forward and of
 * fs_rnn_backward (weight gradients, no input gradient: what a training step
 * of one layer runs) over repetitions, for the training figures of the notes.
 *
 *   train_step CELL I H B T THREADS [REPS]
 *
 * CELL: rnn, lstm, gru. Weights uniform in [-0.1, 0.1], x in [-0.5, 0.5).
 * FASTSEQ_ISA picks the kernel level as for the library.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "fastseq.h"

static int fail(const char *what) { return bench_fail("train_step", what); }

int main(int argc, char **argv) {
    static const struct { const char *name; fs_cell cell; } cells[] = {
        {"rnn", FS_CELL_RNN_TANH}, {"lstm", FS_CELL_LSTM}, {"gru", FS_CELL_GRU}};
    if (argc < 7) {
        fprintf(stderr, "usage: train_step CELL I H B T THREADS [REPS]\n");
        return 2;
    }
    fs_rnn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cell = (fs_cell)-1;
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        if (!strcmp(argv[1], cells[i].name)) cfg.cell = cells[i].cell;
    if ((int)cfg.cell < 0) {
        fprintf(stderr, "train_step: unknown cell %s\n", argv[1]);
        return 2;
    }
    cfg.input_size = atoi(argv[2]), cfg.hidden_size = atoi(argv[3]), cfg.num_layers = 1, cfg.bias = 1;
    const int B = atoi(argv[4]), T = atoi(argv[5]), threads = atoi(argv[6]);
    const int reps = argc > 7 ? atoi(argv[7]) : 20;
    if (B < 1 || T < 1 || reps < 1 || threads < 1) return 2;
    fs_rnn *m = NULL;
    if (fs_rnn_create(&cfg, &m) != FS_OK) return fail("create");
    if (fs_set_num_threads(threads) != FS_OK) return fail("threads");
    size_t np = 0;
    fs_rnn_param_count(m, &np);
    const size_t nx = (size_t)T * B * cfg.input_size, ny = (size_t)T * B * cfg.hidden_size;
    float *params = malloc(np * sizeof(float)), *grads = malloc(np * sizeof(float));
    float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float)), *gy = malloc(ny * sizeof(float));
    double *fwd = malloc(reps * sizeof(double)), *bwd = malloc(reps * sizeof(double));
    if (!params || !grads || !x || !y || !gy || !fwd || !bwd) return 2;
    for (size_t i = 0; i < np; i++) params[i] = uniform(-0.1f, 0.1f);
    for (size_t i = 0; i < nx; i++) x[i] = uniform(-0.5f, 0.5f);
    for (size_t i = 0; i < ny; i++) gy[i] = uniform(-1.0f, 1.0f);
    if (fs_rnn_set_params(m, params, np) != FS_OK) return fail("params");
    fs_rnn_tape *tape = NULL;
    if (fs_rnn_tape_create(m, T, B, &tape) != FS_OK) return fail("tape");
    fs_seq_args a = {0};
    a.seq_len = T, a.batch = B, a.x = x, a.x_count = nx, a.y = y, a.y_count = ny;
    fs_grad_args g = {0};
    g.grad_y = gy, g.grad_y_count = ny, g.grad_params = grads, g.grad_params_count = np;
    for (int r = -2; r < reps; r++) { /* two warm-up calls */
        const double t0 = now_us();
        if (fs_rnn_train_forward(m, &a, tape) != FS_OK) return fail("train_forward");
        const double t1 = now_us();
        if (fs_rnn_backward(m, tape, &g) != FS_OK) return fail("backward");
        const double t2 = now_us();
        if (r >= 0) fwd[r] = t1 - t0, bwd[r] = t2 - t1;
    }
    qsort(fwd, reps, sizeof(double), by_value);
    qsort(bwd, reps, sizeof(double), by_value);
    printf("%s I=%d H=%d B=%d T=%d threads=%d isa=%s: forward %.1f us, backward %.1f us (medians of %d)\n",
           argv[1], cfg.input_size, cfg.hidden_size, B, T, threads, fs_isa_name(fs_active_isa()), fwd[reps / 2],
           bwd[reps / 2], reps);
    fs_rnn_tape_free(tape);
    fs_rnn_free(m);
    free(params), free(grads), free(x), free(y), free(gy), free(fwd), free(bwd);
    return 0;
}
