/* The C tests' shared pieces: assertion macros that count checks and failures,
 * print each failure (the first 30) with its place and the detail, and let
 * main() exit nonzero on any failure; seeded test data; and the plain model
 * configuration they build on. */
#ifndef FS_TEST_CHECK_H
#define FS_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastseq.h"

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        g_checks++;                                                          \
        if (!(cond) && ++g_failures <= 30) { /* the first 30 printed */    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* Test data: xorshift64, uniform in [-scale, scale), the same sequence every run. */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static inline float urand(float scale) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0) * scale;
}

/* malloc that ends the test (exit 2) when out of memory; n = 0 allowed. */
static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

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
