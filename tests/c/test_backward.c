/*
 * test_backward.c -- training from C, only "fastseq.h": fs_rnn_train_forward +
 * fs_rnn_backward against central finite differences of the loss
 *   L = sum(gy * y) + sum(gh * h_n) (+ sum(gc * c_n) for an LSTM)
 * for every cell and variant (peepholes, coupled gates, projection, reset-before
 * GRU, FastRNN / FastGRNN with low-rank factors), two layers, bidirectional,
 * lengths; on every ISA. Also a
 * tape in caller memory reused for a shorter batch, the flat-parameter helpers,
 * the optimizers, and bad arguments.
 *
 * Exit status 0 when every check passes; each failure is printed.
 */
#include "fastseq.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t g_seed = 12345;
static const char *g_where = "";
static float frand(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}
static void fill(float *a, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) a[i] = scale * frand();
}

enum { T = 6, B = 3, I = 4, H = 5, L = 2, D = 2 };
#define NX ((size_t)T * B * I)
#define NY ((size_t)T * B * D * H)
#define NS ((size_t)L * D * B * H)

typedef struct problem {
    fs_rnn *m;
    int lstm;
    size_t ny, nh; /* y and h0 counts: D*R and R features (R = proj_size or H) */
    float x[NX], h0[NS], c0[NS], gy[NY], gh[NS], gc[NS];
    int32_t lengths[B];
} problem;

/* The loss at the model's current weights and the given x, h0, c0 (plain forward). */
static double loss_of(const problem *p) {
    float y[NY], hn[NS], cn[NS];
    fs_seq_args a = {0};
    a.seq_len = T, a.batch = B;
    a.x = p->x, a.x_count = NX, a.lengths = p->lengths, a.lengths_count = B;
    a.h0 = p->h0, a.h0_count = p->nh, a.y = y, a.y_count = p->ny, a.h_n = hn, a.h_n_count = p->nh;
    if (p->lstm) a.c0 = p->c0, a.c0_count = NS, a.c_n = cn, a.c_n_count = NS;
    if (fs_rnn_forward(p->m, &a) != FS_OK) return NAN;
    double s = 0;
    for (size_t i = 0; i < p->ny; i++) s += (double)p->gy[i] * y[i];
    for (size_t i = 0; i < p->nh; i++) s += (double)p->gh[i] * hn[i];
    for (size_t i = 0; p->lstm && i < NS; i++) s += (double)p->gc[i] * cn[i];
    return s;
}

/* |analytic - numeric| <= tol * (1 + |numeric|) for a handful of entries. */
static void check_fd(const char *what, float *v, size_t n, const float *grad, problem *p, float *params,
                     size_t n_params, int is_param) {
    const float eps = 1e-3f; /* small: a ReLU pre-activation must not cross its kink */
    for (size_t k = 0; k < 6; k++) {
        const size_t i = (k * 7919u + 13u) % n;
        const float keep = v[i];
        v[i] = keep + eps;
        if (is_param) fs_rnn_set_params(p->m, params, n_params);
        const double up = loss_of(p);
        v[i] = keep - eps;
        if (is_param) fs_rnn_set_params(p->m, params, n_params);
        const double down = loss_of(p);
        v[i] = keep;
        if (is_param) fs_rnn_set_params(p->m, params, n_params);
        const double num = (up - down) / (2.0 * eps);
        CHECK(fabs(grad[i] - num) <= 2e-2 * (1.0 + fabs(num)), "%s %s[%zu]: backward %g, finite differences %g",
              g_where, what, i, (double)grad[i], num);
    }
}

static void check_cell(fs_rnn_config cfg) {
    static problem p;
    memset(&p, 0, sizeof p);
    cfg.input_size = I, cfg.hidden_size = H, cfg.num_layers = L;
    cfg.bidirectional = 1, cfg.bias = 1;
    CHECK_STATUS(fs_rnn_create(&cfg, &p.m), FS_OK);
    if (!p.m) return;
    p.lstm = cfg.cell == FS_CELL_LSTM;
    const size_t R = cfg.proj_size ? (size_t)cfg.proj_size : H;
    p.ny = (size_t)T * B * D * R, p.nh = (size_t)L * D * B * R;
    size_t n_params = 0;
    CHECK_STATUS(fs_rnn_param_count(p.m, &n_params), FS_OK);
    float *params = malloc(n_params * sizeof(float)), *gp = malloc(n_params * sizeof(float));
    fill(params, n_params, 0.4f);
    CHECK_STATUS(fs_rnn_set_params(p.m, params, n_params), FS_OK);
    fill(p.x, NX, 1.0f), fill(p.h0, NS, 0.5f), fill(p.c0, NS, 0.5f);
    fill(p.gy, NY, 1.0f), fill(p.gh, NS, 1.0f), fill(p.gc, NS, 1.0f);
    p.lengths[0] = T, p.lengths[1] = 2, p.lengths[2] = 5;

    /* the tape in caller memory, no allocation */
    size_t bytes = 0;
    CHECK_STATUS(fs_rnn_tape_size(p.m, T, B, &bytes), FS_OK);
    void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
    fs_rnn_tape *tape = NULL;
    CHECK_STATUS(fs_rnn_tape_init(p.m, T, B, mem, bytes, &tape), FS_OK);
    float y[NY], hn[NS], cn[NS], gx[NX], gh0[NS], gc0[NS];
    fs_seq_args a = {0};
    a.seq_len = T, a.batch = B, a.x = p.x, a.x_count = NX, a.lengths = p.lengths, a.lengths_count = B;
    a.h0 = p.h0, a.h0_count = p.nh, a.y = y, a.y_count = p.ny, a.h_n = hn, a.h_n_count = p.nh;
    if (p.lstm) a.c0 = p.c0, a.c0_count = NS, a.c_n = cn, a.c_n_count = NS;
    CHECK_STATUS(fs_rnn_train_forward(p.m, &a, tape), FS_OK);
    fs_grad_args g = {0};
    g.grad_y = p.gy, g.grad_y_count = p.ny, g.grad_h_n = p.gh, g.grad_h_n_count = p.nh;
    g.grad_x = gx, g.grad_x_count = NX, g.grad_h0 = gh0, g.grad_h0_count = p.nh;
    g.grad_params = gp, g.grad_params_count = n_params;
    if (p.lstm) g.grad_c_n = p.gc, g.grad_c_n_count = NS, g.grad_c0 = gc0, g.grad_c0_count = NS;
    CHECK_STATUS(fs_rnn_backward(p.m, tape, &g), FS_OK);

    check_fd("params", params, n_params, gp, &p, params, n_params, 1);
    check_fd("x", p.x, NX, gx, &p, params, n_params, 0);
    check_fd("h0", p.h0, p.nh, gh0, &p, params, n_params, 0);
    if (p.lstm) check_fd("c0", p.c0, NS, gc0, &p, params, n_params, 0);

    /* accumulate: a second pass adds the same gradients */
    float *gp2 = malloc(n_params * sizeof(float));
    memcpy(gp2, gp, n_params * sizeof(float));
    g.accumulate = 1;
    CHECK_STATUS(fs_rnn_backward(p.m, tape, &g), FS_OK);
    size_t bad = 0;
    for (size_t i = 0; i < n_params; i++) bad += fabsf(gp[i] - 2 * gp2[i]) > 1e-5f * (1 + fabsf(gp2[i]));
    CHECK(bad == 0, "accumulate: %zu of %zu gradients are not doubled", bad, n_params);

    /* the same tape serves a shorter sequence and a smaller batch; a longer one is refused */
    a.seq_len = T - 2, a.batch = B - 1, a.x_count = (size_t)(T - 2) * (B - 1) * I;
    a.y_count = (size_t)(T - 2) * (B - 1) * D * R, a.lengths = NULL, a.lengths_count = 0;
    a.h0 = a.c0 = NULL, a.h0_count = a.c0_count = 0, a.h_n = a.c_n = NULL, a.h_n_count = a.c_n_count = 0;
    CHECK_STATUS(fs_rnn_train_forward(p.m, &a, tape), FS_OK);
    a.seq_len = T + 1, a.batch = B, a.x_count = (size_t)(T + 1) * B * I, a.y_count = (size_t)(T + 1) * B * D * R;
    float *xl = calloc(a.x_count, sizeof(float)), *yl = calloc(a.y_count, sizeof(float));
    a.x = xl, a.y = yl;
    CHECK_STATUS(fs_rnn_train_forward(p.m, &a, tape), FS_ERR_SHAPE);

    /* bad arguments */
    fs_grad_args bad_g = {0};
    bad_g.grad_params = gp, bad_g.grad_params_count = n_params - 1;
    CHECK_STATUS(fs_rnn_backward(p.m, tape, &bad_g), FS_ERR_SHAPE);
    CHECK_STATUS(fs_rnn_backward(p.m, NULL, &bad_g), FS_ERR_NULL_ARG);
    fs_rnn *other = NULL;
    CHECK_STATUS(fs_rnn_create(&cfg, &other), FS_OK);
    CHECK_STATUS(fs_rnn_backward(other, tape, &g), FS_ERR_INVALID_ARG);
    fs_rnn_tape *fresh = NULL;
    CHECK_STATUS(fs_rnn_tape_create(p.m, T, B, &fresh), FS_OK);
    CHECK_STATUS(fs_rnn_backward(p.m, fresh, &g), FS_ERR_INVALID_ARG); /* nothing recorded */
    fs_rnn_tape_free(fresh);
    fs_rnn_tape_free(tape); /* made by init: a no-op */
    fs_rnn_free(other);
    free(mem), free(xl), free(yl), free(gp2), free(params), free(gp);
    fs_rnn_free(p.m);
}

static void check_optimizers(void) {
    float p[3] = {1, -2, 3}, g[3] = {0.5f, 0.5f, -1}, v[3] = {0}, m[3] = {0}, s[3] = {0};
    CHECK_STATUS(fs_sgd_step(p, g, v, 3, 0.1f, 0.9f, 0.0f), FS_OK);
    CHECK(fabsf(p[0] - 0.95f) < 1e-6f && fabsf(p[2] - 3.1f) < 1e-6f, "sgd: %g %g", p[0], p[2]);
    CHECK_STATUS(fs_adam_step(p, g, m, s, 3, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f), FS_OK);
    CHECK(fabsf(p[0] - 0.85f) < 1e-5f, "adam's first step moves by lr: %g", p[0]);
    CHECK_STATUS(fs_adam_step(p, g, m, s, 3, 0, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f), FS_ERR_INVALID_ARG);
    float n = 0, c[2] = {3, 4};
    CHECK_STATUS(fs_clip_grad_norm(c, 2, 1.0f, &n), FS_OK);
    CHECK(fabsf(n - 5) < 1e-6f && fabsf(c[0] - 0.6f) < 1e-5f, "clip_grad_norm: %g %g", n, c[0]);
    CHECK_STATUS(fs_clip_grad_value(c, 2, 0.7f), FS_OK);
    CHECK(c[1] == 0.7f, "clip_grad_value: %g", c[1]);
}

int main(void) {
    const fs_isa levels[] = {FS_ISA_GENERIC, FS_ISA_AVX2, FS_ISA_AVX512, FS_ISA_NEON};
    for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
        if (fs_set_isa(levels[k]) != FS_OK) continue;
        g_seed = 12345; /* every level sees the same data: a case added to the list moves no other level's */
        /* cell, proj_size, peephole, coupled, reset_before, update_act, gate_act, w_rank, u_rank */
        static const struct { const char *name; fs_rnn_config cfg; } cases[] = {
            {"RNN_TANH", {FS_CELL_RNN_TANH}},
            {"RNN_RELU", {FS_CELL_RNN_RELU}},
            {"LSTM", {FS_CELL_LSTM}},
            {"GRU", {FS_CELL_GRU}},
            {"LSTM peephole", {FS_CELL_LSTM, .peephole = 1}},
            {"LSTM coupled", {FS_CELL_LSTM, .coupled = 1}},
            {"LSTM proj", {FS_CELL_LSTM, .proj_size = 3}},
            {"LSTM peephole coupled proj", {FS_CELL_LSTM, .proj_size = 2, .peephole = 1, .coupled = 1}},
            {"GRU reset-before", {FS_CELL_GRU, .reset_before = 1}},
            {"FastRNN", {FS_CELL_FASTRNN}},
            {"FastRNN sigmoid low rank", {FS_CELL_FASTRNN, .update_act = FS_ACT_SIGMOID, .w_rank = 2, .u_rank = 3}},
            {"FastGRNN", {FS_CELL_FASTGRNN, .gate_act = FS_ACT_SIGMOID}},
            {"FastGRNN low rank", {FS_CELL_FASTGRNN, .gate_act = FS_ACT_SIGMOID, .w_rank = 3, .u_rank = 2}},
            {"FastGRNN tanh gate", {FS_CELL_FASTGRNN, .gate_act = FS_ACT_TANH, .update_act = FS_ACT_SIGMOID, .u_rank = 4}},
            {"LSTM low rank", {FS_CELL_LSTM, .w_rank = 2, .u_rank = 3}},
            {"LSTM peephole low-rank U", {FS_CELL_LSTM, .peephole = 1, .u_rank = 2}},
            {"GRU low rank", {FS_CELL_GRU, .w_rank = 3, .u_rank = 2}},
            {"GRU reset-before low-rank W", {FS_CELL_GRU, .reset_before = 1, .w_rank = 2}},
            {"GRU reset-before low-rank U", {FS_CELL_GRU, .reset_before = 1, .w_rank = 2, .u_rank = 3}},
            {"GRU reset-before low-rank U, hard_sigmoid gates",
             {FS_CELL_GRU, .reset_before = 1, .u_rank = 2, .act = {1 + FS_ACT_HARD_SIGMOID, 0, 0}}},
            {"UGRNN", {FS_CELL_UGRNN}},
            {"UGRNN low rank, hard_sigmoid gate, softsign candidate",
             {FS_CELL_UGRNN, .w_rank = 2, .u_rank = 3, .act = {1 + FS_ACT_HARD_SIGMOID, 1 + FS_ACT_SOFTSIGN}}},
            {"FastRNN softsign", {FS_CELL_FASTRNN, .update_act = FS_ACT_SOFTSIGN, .w_rank = 2}},
            /* EdgeML's quantSigm gate, quantTanh update */
            {"FastGRNN quant", {FS_CELL_FASTGRNN, .gate_act = FS_ACT_HARD_SIGMOID, .update_act = FS_ACT_HARD_TANH,
                                .act_alpha = {0.5f, 0, 0}, .act_beta = {0.5f, 0, 0}}},
            {"FastRNN hard_sigmoid", {FS_CELL_FASTRNN, .update_act = FS_ACT_HARD_SIGMOID, .act_alpha = {0, 0.25f, 0}}},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            g_where = cases[c].name;
            check_cell(cases[c].cfg);
        }
    }
    check_optimizers();
    printf("test_backward: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
