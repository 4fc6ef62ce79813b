/*
 * consumer.c -- a C program built against an *installed* fastseq (the wheel's
 * get_include()/get_library_dir(), or a `cmake --install` prefix through
 * find_package or pkg-config), for tests/test_packaging.py.
 *
 * One Elman RNN (tanh), one feature, two steps, weights set (bias_hh stays zero); the output is checked against
 * the recurrence computed here with libm: h1 = tanh(w x1 + b), h2 = tanh(w x2 + u h1 + b).
 * Prints "ok" and exits 0, or says what differs and exits 1.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fastseq.h"

static int check(fs_status status, const char *what) {
    if (status != FS_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, fs_status_str(status), fs_last_error());
        return 1;
    }
    return 0;
}

int main(void) {
    const float w = 0.5f, u = 0.25f, b = 0.125f, x[2] = {1.0f, -2.0f};
    fs_rnn_config config;
    memset(&config, 0, sizeof config);
    config.cell = FS_CELL_RNN_TANH;
    config.input_size = 1;
    config.hidden_size = 1;
    config.num_layers = 1;
    config.bias = 1;

    fs_rnn *model = NULL;
    if (check(fs_rnn_create(&config, &model), "fs_rnn_create")) return 1;
    float y[2] = {0.0f, 0.0f};
    fs_seq_args args;
    memset(&args, 0, sizeof args);
    args.seq_len = 2;
    args.batch = 1;
    args.x = x;
    args.x_count = 2;
    args.y = y;
    args.y_count = 2;
    int failed = check(fs_rnn_set_param(model, 0, 0, FS_PARAM_WEIGHT_IH, &w, 1), "weight_ih") ||
                 check(fs_rnn_set_param(model, 0, 0, FS_PARAM_WEIGHT_HH, &u, 1), "weight_hh") ||
                 check(fs_rnn_set_param(model, 0, 0, FS_PARAM_BIAS_IH, &b, 1), "bias_ih") ||
                 check(fs_rnn_forward(model, &args), "fs_rnn_forward");
    fs_rnn_free(model);
    if (failed) return 1;

    const double h1 = tanh((double)w * x[0] + b);
    const double h2 = tanh((double)w * x[1] + (double)u * h1 + b);
    if (fabs(y[0] - h1) > 1e-6 || fabs(y[1] - h2) > 1e-6) {
        fprintf(stderr, "fastseq %s gave y = [%.9g, %.9g], expected [%.9g, %.9g]\n",
                fs_version_string(), y[0], y[1], h1, h2);
        return 1;
    }
    printf("ok\n");
    return 0;
}
