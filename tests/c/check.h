/* The C tests' shared pieces: assertion macros that count checks and failures,
 * print each failure with its place and the detail, and let main() exit
 * nonzero on any failure; and the plain model configuration they build on. */
#ifndef FS_TEST_CHECK_H
#define FS_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "fastseq.h"

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        g_checks++;                                                          \
        if (!(cond)) {                                                       \
            g_failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* A call's status against the expected one, with fs_last_error() on mismatch. */
#define CHECK_STATUS(call, expect)                                           \
    do {                                                                     \
        fs_status s_ = (call);                                               \
        CHECK(s_ == (expect), "%s -> %d (%s), expected %d (%s); detail: %s", \
              #call, (int)s_, fs_status_str(s_), (int)(expect),              \
              fs_status_str(expect), fs_last_error());                       \
    } while (0)

/* A plain PyTorch-style configuration: every variant field zero. */
static inline fs_rnn_config make_config(fs_cell cell, int I, int H, int L, int bidir, int bias) {
    fs_rnn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cell = cell;
    cfg.input_size = I;
    cfg.hidden_size = H;
    cfg.num_layers = L;
    cfg.bidirectional = bidir;
    cfg.bias = bias;
    return cfg;
}

#endif /* FS_TEST_CHECK_H */
