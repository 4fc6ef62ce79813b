/*
 * test_train_threads.c -- the training forward is the inference driver: on
 * every ISA level and for 1, 2 and 3 threads, fs_rnn_train_forward's y, h_n
 * and c_n equal fs_rnn_forward's bit for bit, and fs_rnn_backward's gradients
 * are bit-identical for every thread count. Sizes pass the threading
 * threshold (a few 1e5 FLOPs per step), with lengths, two layers, both
 * directions.
 *
 * Exit status 0 when every check passes; each failure is printed.
 */
#include "fastseq.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 7, B = 5, I = 33, H = 131 };

static uint32_t g_seed = 777;
static float frand(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

typedef struct run {
    float *y, *hn, *cn, *gp, *gx, *gh0;
} run;

static float *alloc_f(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) exit(2);
    return p;
}

static void check_config(fs_rnn_config cfg, const char *name) {
    fs_rnn *m = NULL;
    CHECK_STATUS(fs_rnn_create(&cfg, &m), FS_OK);
    if (!m) return;
    size_t np = 0;
    CHECK_STATUS(fs_rnn_param_count(m, &np), FS_OK);
    float *params = alloc_f(np);
    for (size_t i = 0; i < np; i++) params[i] = 0.2f * frand();
    CHECK_STATUS(fs_rnn_set_params(m, params, np), FS_OK);
    const size_t D = cfg.bidirectional ? 2 : 1, L = (size_t)cfg.num_layers;
    const size_t R = cfg.proj_size ? (size_t)cfg.proj_size : H, lstm = cfg.cell == FS_CELL_LSTM;
    const size_t nx = (size_t)T * B * I, ny = (size_t)T * B * D * R, nh = L * D * B * R, nc = L * D * B * H;
    float *x = alloc_f(nx), *gy = alloc_f(ny);
    for (size_t i = 0; i < nx; i++) x[i] = frand();
    for (size_t i = 0; i < ny; i++) gy[i] = frand();
    int32_t lengths[B] = {T, 3, T, 1, 5};
    fs_seq_args a = {0};
    a.seq_len = T, a.batch = B, a.x = x, a.x_count = nx, a.lengths = lengths, a.lengths_count = B;
    run ref = {0};
    static const int threads[3] = {1, 2, 3};
    for (int isa = 0; isa <= FS_ISA_NEON; isa++) {
        if (!fs_isa_supported((fs_isa)isa)) continue;
        CHECK_STATUS(fs_set_isa((fs_isa)isa), FS_OK);
        for (int ti = 0; ti < 3; ti++) {
            const fs_status ts = fs_set_num_threads(threads[ti]);
            if (ts == FS_ERR_UNSUPPORTED && threads[ti] > 1) continue; /* a build without OpenMP: one thread */
            CHECK_STATUS(ts, FS_OK);
            run r = {alloc_f(ny), alloc_f(nh), alloc_f(nc), alloc_f(np), alloc_f(nx), alloc_f(nh)};
            float *y0 = alloc_f(ny), *hn0 = alloc_f(nh), *cn0 = alloc_f(nc);
            a.y = y0, a.y_count = ny, a.h_n = hn0, a.h_n_count = nh;
            a.c_n = lstm ? cn0 : NULL, a.c_n_count = lstm ? nc : 0;
            CHECK_STATUS(fs_rnn_forward(m, &a), FS_OK);
            fs_rnn_tape *tape = NULL;
            CHECK_STATUS(fs_rnn_tape_create(m, T, B, &tape), FS_OK);
            a.y = r.y, a.h_n = r.hn, a.c_n = lstm ? r.cn : NULL;
            CHECK_STATUS(fs_rnn_train_forward(m, &a, tape), FS_OK);
            CHECK(!memcmp(y0, r.y, ny * sizeof(float)) && !memcmp(hn0, r.hn, nh * sizeof(float)) &&
                      !memcmp(cn0, r.cn, nc * sizeof(float)),
                  "%s, %s, %d threads: the training forward differs from fs_rnn_forward", name,
                  fs_isa_name((fs_isa)isa), threads[ti]);
            fs_grad_args g = {0};
            g.grad_y = gy, g.grad_y_count = ny, g.grad_params = r.gp, g.grad_params_count = np;
            g.grad_x = r.gx, g.grad_x_count = nx, g.grad_h0 = r.gh0, g.grad_h0_count = nh;
            CHECK_STATUS(fs_rnn_backward(m, tape, &g), FS_OK);
            if (ti == 0) {
                free(ref.y), free(ref.hn), free(ref.cn), free(ref.gp), free(ref.gx), free(ref.gh0);
                ref = r;
            } else {
                CHECK(!memcmp(ref.gp, r.gp, np * sizeof(float)) && !memcmp(ref.gx, r.gx, nx * sizeof(float)) &&
                          !memcmp(ref.gh0, r.gh0, nh * sizeof(float)),
                      "%s, %s: gradients on %d threads differ from 1 thread's", name, fs_isa_name((fs_isa)isa),
                      threads[ti]);
                free(r.y), free(r.hn), free(r.cn), free(r.gp), free(r.gx), free(r.gh0);
            }
            fs_rnn_tape_free(tape);
            free(y0), free(hn0), free(cn0);
        }
    }
    free(ref.y), free(ref.hn), free(ref.cn), free(ref.gp), free(ref.gx), free(ref.gh0);
    CHECK_STATUS(fs_set_num_threads(0), FS_OK);
    free(params), free(x), free(gy);
    fs_rnn_free(m);
}

/* SGD and Adam over arrays long enough to run on threads: the same bits for 1, 2 and 3. */
static void check_optimizers(void) {
    enum { N = 100003 };
    float *p0 = alloc_f(N), *g = alloc_f(N), *out[3][5]; /* params SGD, Adam; velocity; m, v */
    for (size_t i = 0; i < N; i++) p0[i] = frand(), g[i] = frand();
    for (int t = 0; t < 3; t++) {
        const fs_status ts = fs_set_num_threads(t + 1); /* unsupported without OpenMP: one thread again */
        CHECK(ts == FS_OK || (ts == FS_ERR_UNSUPPORTED && t > 0), "fs_set_num_threads(%d): %s", t + 1, fs_last_error());
        for (int q = 0; q < 5; q++) out[t][q] = alloc_f(N);
        memcpy(out[t][0], p0, N * sizeof(float));
        memcpy(out[t][1], p0, N * sizeof(float));
        for (int step = 1; step <= 3; step++) {
            CHECK_STATUS(fs_sgd_step(out[t][0], g, out[t][2], N, 0.1f, 0.9f, 0.01f), FS_OK);
            CHECK_STATUS(fs_adam_step(out[t][1], g, out[t][3], out[t][4], N, step, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f),
                         FS_OK);
        }
        if (t > 0)
            CHECK(!memcmp(out[t][0], out[0][0], N * sizeof(float)) && !memcmp(out[t][1], out[0][1], N * sizeof(float)),
                  "optimizer steps on %d threads differ from 1 thread's", t + 1);
    }
    for (int t = 0; t < 3; t++)
        for (int q = 0; q < 5; q++) free(out[t][q]);
    CHECK_STATUS(fs_set_num_threads(0), FS_OK);
    free(p0), free(g);
}

int main(void) {
    const fs_isa start = fs_active_isa();
    fs_rnn_config base = {0};
    base.input_size = I, base.hidden_size = H, base.num_layers = 2, base.bidirectional = 1, base.bias = 1;
    fs_rnn_config c = base;
    c.cell = FS_CELL_LSTM;
    check_config(c, "LSTM");
    c.proj_size = 37;
    check_config(c, "LSTM proj");
    c = base, c.cell = FS_CELL_LSTM, c.peephole = 1;
    check_config(c, "LSTM peephole");
    c = base, c.cell = FS_CELL_GRU;
    check_config(c, "GRU");
    c.reset_before = 1;
    check_config(c, "GRU reset-before");
    c = base, c.cell = FS_CELL_RNN_TANH;
    check_config(c, "RNN");
    c = base, c.cell = FS_CELL_FASTGRNN, c.w_rank = 9, c.u_rank = 17;
    check_config(c, "FastGRNN low rank");
    fs_set_isa(start);
    check_optimizers();
    printf("test_train_threads: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
