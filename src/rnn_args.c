/* Checks of the sequence arguments and the copies of caller states, shared by
 * the inference driver and the training forward. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "rnn.h"
#include "rnn_args.h"

fs_status fs__check_count(const char *name, const void *ptr, size_t given, size_t expected,
                          const char *shape_fmt, ...) {
    if (!ptr || given == expected) return FS_OK;
    char shape[160];
    va_list ap;
    va_start(ap, shape_fmt);
    fs__vformat(shape, sizeof shape, shape_fmt, ap);
    va_end(ap);
    return fs__fail(FS_ERR_SHAPE, "%s: expected %zu elements %s, got %zu", name, expected, shape, given);
}

static int overlaps(const float *a, size_t na, const float *b, size_t nb) {
    return a && b && a < b + nb && b < a + na;
}

static int product3(size_t a, size_t b, size_t c, size_t *out) {
    size_t ab;
    return fs__mul(a, b, &ab) && fs__mul(ab, c, out);
}

fs_status fs__check_seq_args(const fs_rnn *m, const fs_seq_args *a) {
    if (a->seq_len < 1) return fs__fail(FS_ERR_INVALID_ARG, "seq_len: expected >= 1, got %d", (int)a->seq_len);
    if (a->batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)a->batch);
    const size_t T = (size_t)a->seq_len, B = (size_t)a->batch, R = m->r, H = (size_t)m->cfg.hidden_size;
    const size_t I = (size_t)m->cfg.input_size, D = m->dirs, DR = D * R, LD = (size_t)m->cfg.num_layers * D;
    const int lstm = m->cfg.cell == FS_CELL_LSTM;
    fs_status st;
    size_t nx, ny, nh, nc; /* element counts, checked: a 32-bit size_t overflows early */
    if (!product3(T, B, I, &nx) || !product3(T, B, DR, &ny) || !product3(LD, B, R, &nh) || !product3(LD, B, H, &nc))
        return fs__fail(FS_ERR_INVALID_ARG, "seq_len %zu x batch %zu: element counts overflow a %u-byte size_t",
                        T, B, (unsigned)sizeof(size_t));
    if (!a->x || !a->y) return fs__fail(FS_ERR_NULL_ARG, "x and y must not be NULL");
    if (a->batch_first != 0 && a->batch_first != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "batch_first: expected 0 or 1, got %d", (int)a->batch_first);
    if ((st = fs__check_count("x", a->x, a->x_count, nx, "(seq_len %zu x batch %zu x input_size %zu)",
                              T, B, I)) != FS_OK)
        return st;
    if ((st = fs__check_count("y", a->y, a->y_count, ny,
                              "(seq_len %zu x batch %zu x %zu features = %zu directions x %zu)", T, B, DR, D, R)) !=
        FS_OK)
        return st;
    const char *state = "(%zu layers x directions x batch %zu x %zu features)";
    if ((st = fs__check_count("h0", a->h0, a->h0_count, nh, state, LD, B, R)) != FS_OK) return st;
    if ((st = fs__check_count("h_n", a->h_n, a->h_n_count, nh, state, LD, B, R)) != FS_OK) return st;
    if (!lstm && (a->c0 || a->c_n))
        return fs__fail(FS_ERR_INVALID_ARG, "c0 / c_n: only an LSTM has a cell state");
    const char *cell = "(%zu layers x directions x batch %zu x hidden %zu)";
    if ((st = fs__check_count("c0", a->c0, a->c0_count, nc, cell, LD, B, H)) != FS_OK) return st;
    if ((st = fs__check_count("c_n", a->c_n, a->c_n_count, nc, cell, LD, B, H)) != FS_OK) return st;
    if (a->lengths) {
        if (a->lengths_count != B)
            return fs__fail(FS_ERR_SHAPE, "lengths: expected %zu elements (one per sequence), got %zu", B,
                            a->lengths_count);
        for (size_t b = 0; b < B; b++)
            if (a->lengths[b] < 1 || (size_t)a->lengths[b] > T)
                return fs__fail(FS_ERR_INVALID_ARG, "lengths[%zu]: expected 1..%zu, got %d", b, T,
                                (int)a->lengths[b]);
    }
    if (overlaps(a->x, a->x_count, a->y, a->y_count))
        return fs__fail(FS_ERR_INVALID_ARG, "x and y overlap: y must be a separate buffer");
    return FS_OK;
}

/* [B][n] caller rows <-> [B][stride] state rows (padding zero). */
void fs__load_state(const float *src, size_t B, size_t n, size_t stride, float *dst) {
    memset(dst, 0, B * stride * sizeof(float));
    if (src)
        for (size_t b = 0; b < B; b++) memcpy(dst + b * stride, src + b * n, n * sizeof(float));
}

void fs__store_state(const float *src, size_t B, size_t n, size_t stride, float *dst) {
    if (dst)
        for (size_t b = 0; b < B; b++) memcpy(dst + b * n, src + b * stride, n * sizeof(float));
}

